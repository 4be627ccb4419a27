#!/usr/bin/env python3
"""Integration test (issue 6, faults): reloading the configuration of a
running ctlb (mode lb) with `ctlbctl reload` and SIGHUP.

The real ctlb-dataplane runs in a network namespace this test creates, on two
net_af_packet ports over veth pairs (clients: cl1==cl0, backends: be1==be0);
ctlb-control beside it; the test itself enters the namespace and plays the
clients (frames sent on cl0) and the backends (frames read and sent on be0).
Static neighbours give every next hop be0's or cl0's MAC: no ARP is needed.

Forwarding is observed with probes: for a fixed set of client endpoints, a
SYN to the VIP then a RST; which backend each SYN reaches (its destination
after NAT, read on be0) is the Maglev pick of the live pool; the RST closes
the entry, so the next probe picks again.

 1. Pool A (.11 .12 .13), probe: every pick in A, each backend picked. An
    established connection C (real handshake through the NAT), whose backend
    Bc is then removed; a run-time `backend weight` on another backend.
 2. Good reload (file B: Bc removed, X draining, Y weight 3, .14 added): the
    exact change list (the run-time weight undone), `ctlbctl lb` shows it,
    the probe's picks are all in {Y, .14} and use both, C keeps going to Bc
    both ways, the header digest is B's.
 3. Reloads that fail: (i) a YAML syntax error, (ii) an invalid value,
    (iii) a restart-only change (with a pool change: neither applies), also
    with --json: exit code 1, the exact message on stderr, the exact lines;
    after each, `ctlbctl lb` (text and JSON), the digest and the probe's
    picks are exactly as before.
 4. Counters config_reloads / config_reload_errors in stats and Prometheus.
 5. tracking.new_flow_limit through a reload: {rate 1, burst 5} lets 5 (or
    6) of 20 new SYNs through and counts the rest; SIGHUP with file C (no
    limit, Bc back, .14 removed) applies it (the log says what changed) and
    all 20 new SYNs pass; SIGHUP with a restart-only change is refused and
    logged, nothing changes.
 6. ctlb-control restarted: with a file that is not the running one it
    refuses to attach (digest); with C it attaches, and shows the same pool.
No fixed sleeps: every wait polls a condition against a deadline. Nothing is
left behind (processes, namespace, DPDK files).

usage: reload_test.py CTLB_DATAPLANE CTLB_CONTROL CTLBCTL
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import ctlbtest  # noqa: E402

PID = os.getpid()
PREFIX = f"ctlb-rl-{PID}"
NETNS = f"ctlbrl-{PID}"
METRICS = "127.0.0.1:9273"  # inside this test's namespace

MAC = {"cl0": "02:00:00:00:01:fe", "cl1": "02:00:00:00:01:01", "be0": "02:00:00:00:02:fe", "be1": "02:00:00:00:02:01"}
GATEWAY = "198.18.1.254"
VIP, VIP_PORT = "198.18.100.1", 80
BACKEND_PORT = 8080
B11, B12, B13, B14 = "198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14"
PROBES = [(f"203.0.113.{1 + i % 250}", 20000 + i) for i in range(240)]

check = ctlbtest.Checks()
failures = check.failures
processes = []


# ---------------------------------------------------------------- namespace

libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def netns_setup():
    sh("ip", "netns", "add", NETNS)
    ns = ["ip", "netns", "exec", NETNS]
    for key in ("all", "default"):
        sh(*ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
    for a, b in (("cl0", "cl1"), ("be0", "be1")):
        sh(*ns, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
    for dev in ("cl0", "cl1", "be0", "be1"):
        sh(*ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
        sh(*ns, "ip", "link", "set", dev, "address", MAC[dev])
        sh(*ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off")
        sh(*ns, "ip", "link", "set", dev, "up")
    sh(*ns, "ip", "link", "set", "lo", "up")


# ---------------------------------------------------------------- frames

SYN, RST, ACK, PSH = 0x02, 0x04, 0x10, 0x08


def mac_bytes(m):
    return bytes(int(x, 16) for x in m.split(":"))


def tcp_frame(src_mac, dst_mac, src, dst, sport, dport, flags, seq, ack=0, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    tcp += payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", 0xFFFF ^ ctlbtest.ones_complement_sum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, socket.inet_aton(src),
                     socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", 0xFFFF ^ ctlbtest.ones_complement_sum(ip)) + ip[12:]
    frame = mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00" + ip + tcp
    return frame + bytes(max(0, 60 - len(frame)))


def parse(frame):
    """(src, sport, dst, dport, flags, payload) of an Ethernet/IPv4/TCP frame, or None."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 15) * 4
    total = struct.unpack("!H", frame[16:18])[0]
    t = 14 + ihl
    sport, dport = struct.unpack("!HH", frame[t:t + 4])
    off = (frame[t + 12] >> 4) * 4
    return (socket.inet_ntoa(frame[26:30]), sport, socket.inet_ntoa(frame[30:34]), dport, frame[t + 13],
            frame[t + off:14 + total])


class Wire:
    """A raw socket on one of the test's veth ends."""

    def __init__(self, iface):
        self.iface = iface
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.bind((iface, 0))

    def send(self, frame):
        self.s.send(frame)

    def drain(self):
        self.s.setblocking(False)
        try:
            while True:
                self.s.recv(65535)
        except BlockingIOError:
            pass
        finally:
            self.s.setblocking(True)

    def collect(self, want, count, timeout=5.0):
        """TCP frames received (not sent) here for which want(parsed) holds,
        until `count` of them or the deadline."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.s.settimeout(left)
            try:
                frame, addr = self.s.recvfrom(65535)
            except socket.timeout:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            p = parse(frame)
            if p and want(p):
                out.append(p)
        self.s.settimeout(None)
        return out

    def close(self):
        self.s.close()


def client_frame(client, cport, flags, seq, ack=0, payload=b""):
    return tcp_frame(MAC["cl0"], MAC["cl1"], client, VIP, cport, VIP_PORT, flags, seq, ack, payload)


def isn(client, cport):
    return (sum(socket.inet_aton(client)) * 65537 + cport * 7919) & 0xFFFFFFFF


def probe(wires, endpoints=PROBES, batch=48):
    """{(client, port): backend address} from a SYN and a RST per endpoint."""
    cl, be = wires
    picks = {}
    for i in range(0, len(endpoints), batch):
        part = endpoints[i:i + batch]
        mine = set(part)
        be.drain()
        for c, p in part:
            s = isn(c, p)
            cl.send(client_frame(c, p, SYN, s))
            cl.send(client_frame(c, p, RST, s + 1))
        for src, sport, dst, dport, flags, _ in be.collect(lambda t: (t[0], t[1]) in mine, 2 * len(part)):
            if flags & SYN:
                picks[(src, sport)] = dst if dport == BACKEND_PORT else f"{dst}:{dport}"
    return picks


def new_syns(wires, endpoints):
    """SYNs only (the connections stay half-open); returns the backends they reached."""
    cl, be = wires
    be.drain()
    for c, p in endpoints:
        cl.send(client_frame(c, p, SYN, isn(c, p)))
    mine = set(endpoints)
    return [t[2] for t in be.collect(lambda t: (t[0], t[1]) in mine and t[4] & SYN, len(endpoints), timeout=3.0)]


# ---------------------------------------------------------------- configuration

TEMPLATE = """mode: lb
file_prefix: {prefix}
lcores:
  main: 0
  workers: [1]
mempool:
  mbufs: 4095
  cache: 64
ports:
  - name: clients
    devargs: net_af_packet0,iface=cl1,qpairs=1,blocksz=4096,framesz=2048,framecnt=1024
    addresses: [198.18.1.1/24]
    gateway: {gateway}
  - name: backends
    devargs: net_af_packet1,iface=be1,qpairs=1,blocksz=4096,framesz=2048,framecnt=1024
    addresses: [198.18.2.1/24]
tracking:
  capacity_v4: {capacity}
  capacity_v6: 1024
{limit}lb:
  neighbours:
    - {{address: {gateway}, mac: "{cl0}", port: clients}}
{neighbours}  vips:
    - name: web
      address: {vip}
      port: {vip_port}
      backends:
{pool}control:
  socket: {socket}
  metrics: {metrics}
"""


def config_text(tmp, pool, limit=None, capacity=4096):
    """pool: [(address, weight, state)]; limit: (rate, burst) or None."""
    return TEMPLATE.format(
        prefix=PREFIX, gateway=GATEWAY, cl0=MAC["cl0"], capacity=capacity,
        limit=f"  new_flow_limit: {{rate: {limit[0]}, burst: {limit[1]}}}\n" if limit else "",
        neighbours="".join(f"    - {{address: {a}, mac: \"{MAC['be0']}\", port: backends}}\n"
                           for a in (B11, B12, B13, B14)),
        vip=VIP, vip_port=VIP_PORT,
        pool="".join(f"        - {{address: {a}, port: {BACKEND_PORT}, weight: {w}, state: {s}}}\n" for a, w, s in pool),
        socket=os.path.join(tmp, "control.sock"), metrics=METRICS)


def digest(text):
    h = 1469598103934665603
    for b in text.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def position(text, anchor, value):
    """"LINE:COL" of `value` inside `anchor`, which occurs on one line only."""
    lines = [i for i, l in enumerate(text.splitlines()) if anchor in l]
    assert len(lines) == 1, (anchor, lines)
    line = text.splitlines()[lines[0]]
    return f"{lines[0] + 1}:{line.index(anchor) + anchor.index(value) + 1}"


class Control:
    def __init__(self, binary, ctlbctl, tmp, config):
        self.binary, self.ctlbctl, self.tmp, self.config = binary, ctlbctl, tmp, config
        self.sock = os.path.join(tmp, "control.sock")
        self.proc = None
        self.log = None

    def start(self, config=None):
        self.log = open(os.path.join(self.tmp, "control.log"), "a+")
        self.proc = subprocess.Popen([self.binary, "--config", config or self.config, "--interval-ms", "200"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        processes.append(self.proc)
        return self.proc

    def wait_attached(self):
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"ctlb-control exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return self.api("ping").get("ok")
            except OSError:
                return False
        ctlbtest.wait_until(up, 30, "ctlb-control to answer")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, cmd):
        """One request on the control socket, as ctlbctl sends it."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.sock)
            s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def digest(self):
        return self.api("ping")["config_digest"]

    def ctl(self, *args):
        return subprocess.run([self.ctlbctl, *args, "--socket", self.sock], capture_output=True, text=True)

    def json(self, *args):
        return ctlbtest.ctlbctl_json(self.ctlbctl, self.sock, *args)

    def stats(self):
        return self.json("stats")["stats"]

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def pool_of(lb_json):
    """{address: (state, weight)} of VIP web."""
    vip = lb_json["vips"][0]
    return {b["address"]: (b["state"], b["weight"]) for b in vip["backends"]}


def structure(lb_json):
    """The published state in `ctlbctl lb --json`: generation, VIPs, backends."""
    return (lb_json["generation"], lb_json["published"],
            [(v["name"], v["address"], v["port"], v["table_size"],
              [(b["address"], b["port"], b["state"], b["weight"], b["table_share"]) for b in v["backends"]])
             for v in lb_json["vips"]])


def write_config(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- the test

def run(binaries, tmp, wires):
    dataplane_bin, control_bin, ctlbctl_bin = binaries
    cl, be = wires
    pool_a = [(B11, 1, "active"), (B12, 1, "active"), (B13, 1, "active")]
    text_a = config_text(tmp, pool_a)
    dp = ctlbtest.Dataplane(dataplane_bin, text_a, tmp, PREFIX)
    processes.append(dp.proc)
    config = dp.config
    control = Control(control_bin, ctlbctl_bin, tmp, config)
    try:
        dp.wait_ready()
        control.start()
        control.wait_attached()

        # 1. Pool A.
        m0 = probe(wires)
        check(len(m0) == len(PROBES) and set(m0.values()) == {B11, B12, B13},
              f"pool A: {len(m0)}/{len(PROBES)} probes forwarded, to {sorted(set(m0.values()))}")
        check(control.digest() == digest(text_a), "the header's digest is file A's")

        # C: a connection established through the NAT.
        c_client, c_port, c_isn, s_isn = "198.51.100.7", 40000, 7000, 9000
        be.drain()
        cl.send(client_frame(c_client, c_port, SYN, c_isn))
        got = be.collect(lambda t: (t[0], t[1]) == (c_client, c_port), 1)
        if not got:
            raise RuntimeError("connection C: its SYN did not reach a backend")
        bc = got[0][2]
        cl.drain()
        be.send(tcp_frame(MAC["be0"], MAC["be1"], bc, c_client, BACKEND_PORT, c_port, SYN | ACK, s_isn, c_isn + 1))
        got = cl.collect(lambda t: (t[2], t[3]) == (c_client, c_port), 1)
        check(got and (got[0][0], got[0][1]) == (VIP, VIP_PORT), f"C: the SYN-ACK of {bc} reaches the client from the VIP")
        cl.send(client_frame(c_client, c_port, ACK, c_isn + 1, s_isn + 1))
        x, y = sorted(a for a in (B11, B12, B13) if a != bc)
        r = control.ctl("backend", "weight", "web", f"{y}:{BACKEND_PORT}", "5")
        check(r.returncode == 0, f"run-time change: backend weight web {y}:{BACKEND_PORT} 5 ({r.stderr.strip()})")

        # 2. Good reload: B.
        pool_b = [(x, 1, "draining"), (y, 3, "active"), (B14, 2, "active")]
        text_b = config_text(tmp, pool_b)
        write_config(config, text_b)
        t0 = time.monotonic()
        r = control.ctl("reload")
        took = time.monotonic() - t0
        want = (f"reloaded {config} (digest {digest(text_b)}): 4 changes\n"
                f"  vip web: backend {x}:8080 state active -> draining\n"
                f"  vip web: backend {y}:8080 weight 5 -> 3\n"
                f"  vip web: backend {B14}:8080 added (weight 2)\n"
                f"  vip web: backend {bc}:8080 removed\n")
        check(r.returncode == 0 and r.stdout == want and r.stderr == "",
              f"good reload ({took * 1000:.0f} ms): exit {r.returncode}, the exact change list"
              f"{'' if r.stdout == want else ': got ' + repr(r.stdout) + ' ' + repr(r.stderr)}")
        lb_b = control.json("lb")
        want_pool = {x: ("draining", 1), y: ("active", 3), B14: ("active", 2), bc: ("removed", 1)}
        check(pool_of(lb_b) == want_pool, f"ctlbctl lb shows pool B: {pool_of(lb_b)}")
        bc_row = [b for b in lb_b["vips"][0]["backends"] if b["address"] == bc][0]
        check(bc_row["active_connections"] == 1, f"removed {bc} still has C ({bc_row['active_connections']} active)")
        check(control.digest() == digest(text_b), "the header's digest is file B's")
        m1 = probe(wires)
        check(len(m1) == len(PROBES) and set(m1.values()) == {y, B14},
              f"new connections follow pool B: {len(m1)}/{len(PROBES)} to {sorted(set(m1.values()))} "
              f"(wanted {sorted({y, B14})})")
        share = {b["address"]: round(b["table_share"], 2) for b in lb_b["vips"][0]["backends"]}
        check(share == {x: 0, y: 0.6, B14: 0.4, bc: 0}, f"Maglev table shares follow the weights 3:2 ({share})")
        be.drain()
        cl.send(client_frame(c_client, c_port, ACK | PSH, c_isn + 1, s_isn + 1, b"hello"))
        got = be.collect(lambda t: (t[0], t[1]) == (c_client, c_port), 1)
        check(got and got[0][2] == bc and got[0][5] == b"hello", f"C's data still goes to removed {bc}")
        cl.drain()
        be.send(tcp_frame(MAC["be0"], MAC["be1"], bc, c_client, BACKEND_PORT, c_port, ACK | PSH, s_isn + 1, c_isn + 6,
                          b"world"))
        got = cl.collect(lambda t: (t[2], t[3]) == (c_client, c_port), 1)
        check(got and (got[0][0], got[0][1]) == (VIP, VIP_PORT) and got[0][5] == b"world",
              f"C's reply from {bc} reaches the client from the VIP")

        # 3. Reloads that fail leave everything as it was.
        def refused(name, text, want_errors, json_too=False):
            write_config(config, text)
            before = (control.ctl("lb").stdout, structure(control.json("lb")), control.digest())
            r = control.ctl("reload", *(["--json"] if json_too else []))
            want_err = "ctlbctl: reload refused, the running configuration is unchanged:\n" + \
                       "".join(e + "\n" for e in want_errors)
            check(r.returncode == 1 and r.stderr == want_err,
                  f"{name}: exit {r.returncode}, stderr says why{'' if r.stderr == want_err else ': ' + repr(r.stderr)}")
            if json_too:
                a = json.loads(r.stdout)
                check(a.get("ok") is False and a.get("errors") == want_errors and a.get("digest") == digest(text_b),
                      f"{name}: --json: ok false, the errors, the running digest ({a})")
            after = (control.ctl("lb").stdout, structure(control.json("lb")), control.digest())
            check(after[0] == before[0], f"{name}: ctlbctl lb prints exactly what it printed before")
            check(after[1] == before[1], f"{name}: the LB state is the same generation, VIPs and backends")
            check(after[2] == before[2] == digest(text_b), f"{name}: the digest is still file B's")
            m = probe(wires)
            check(m == m1, f"{name}: forwarding is unchanged: every probe goes where it went after B "
                           f"({sum(1 for k in m1 if m.get(k) != m1[k])} differ)")

        broken = text_b.replace(f"weight: 3, state: active}}", "weight: 3, state: active")
        refused("(i) YAML syntax error", broken,
                [f"{config}:{position(broken, f'{{address: {B14}, port', '{')}: not valid YAML: end of map flow not found"])
        bad = text_b.replace("weight: 3,", "weight: 0,")
        refused("(ii) invalid value", bad,
                [f"{config}:{position(bad, 'weight: 0,', '0')}: lb.vips[0].backends[1].weight: expected an integer "
                 f"in 1..65535 (found '0')"])
        restart_only = config_text(tmp, pool_a, capacity=8192)  # and pool A again: refused with it
        refused("(iii) restart-only change", restart_only,
                [f"{config}:{position(restart_only, 'capacity_v4: 8192', '8192')}: tracking.capacity_v4: changed from 4096 "
                 f"to 8192: needs a restart of ctlb-dataplane"])
        two = config_text(tmp, pool_b, capacity=8192).replace("workers: [1]", "workers: [1, 2]")
        refused("(iii') two restart-only changes, --json", two,
                [f"{config}:{position(two, 'workers: [1, 2]', '[')}: lcores.workers: changed from [1] to [1, 2]: needs a "
                 f"restart of ctlb-dataplane",
                 f"{config}:{position(two, 'capacity_v4: 8192', '8192')}: tracking.capacity_v4: changed from 4096 to 8192: "
                 f"needs a restart of ctlb-dataplane"], json_too=True)

        # 4. Counters.
        s = control.stats()
        check((s.get("config_reloads"), s.get("config_reload_errors")) == (1, 4),
              f"stats: config_reloads {s.get('config_reloads')}, config_reload_errors {s.get('config_reload_errors')}")
        p = ctlbtest.scrape_prometheus(METRICS)
        check((p.get("ctlb_config_reloads_total"), p.get("ctlb_config_reload_errors_total")) == (1, 4),
              f"Prometheus: ctlb_config_reloads_total {p.get('ctlb_config_reloads_total')}, "
              f"ctlb_config_reload_errors_total {p.get('ctlb_config_reload_errors_total')}")
        log = control.output()
        check(f"ctlb-control: reload of {config} refused, the running configuration is unchanged:\n"
              f"ctlb-control:   {config}:{position(restart_only, 'capacity_v4: 8192', '8192')}: tracking.capacity_v4: "
              f"changed from 4096 to 8192: needs a restart of ctlb-dataplane\n" in log,
              "ctlb-control logs each refusal with its reason")

        # 5. The new-flow limit, on with ctlbctl reload...
        text_l = config_text(tmp, pool_b, limit=(1, 5))
        write_config(config, text_l)
        r = control.ctl("reload")
        check(r.returncode == 0 and r.stdout.endswith(
            "1 change\n  tracking.new_flow_limit: changed from no limit to 1 per second (burst 5)\n"),
            f"reload: new_flow_limit on ({r.stdout.strip()!r} {r.stderr.strip()!r})")
        s0 = control.stats()

        def handled():  # every SYN either given a backend or rate-limited
            s = control.stats()
            d = {k: s[k] - s0[k] for k in ("lb_new_connections", "new_flows_rate_limited")}
            return d if sum(d.values()) >= 20 else None

        burst = [(f"192.0.2.{i + 1}", 30000 + i) for i in range(20)]
        be.drain()
        for c, p in burst:
            cl.send(client_frame(c, p, SYN, isn(c, p)))
        d = ctlbtest.wait_until(handled, 10, "the 20 SYNs to be handled")
        new, limited = d["lb_new_connections"], d["new_flows_rate_limited"]
        seen = be.collect(lambda t: (t[0], t[1]) in set(burst) and t[4] & SYN, new)
        check(5 <= new <= 6 and limited == 20 - new and len(seen) == new,
              f"limit {{rate 1, burst 5}}: {new} of 20 new SYNs through ({len(seen)} seen), {limited} rate-limited")

        # ... and off with SIGHUP, with pool C.
        pool_c = [(x, 1, "active"), (y, 3, "active"), (bc, 1, "active")]
        text_c = config_text(tmp, pool_c)
        write_config(config, text_c)
        control.proc.send_signal(signal.SIGHUP)
        want_log = (f"ctlb-control: reloaded {config} (digest {digest(text_c)}): 4 changes\n"
                    f"ctlb-control:   vip web: backend {x}:8080 state draining -> active\n"
                    f"ctlb-control:   vip web: backend {bc}:8080 added (weight 1)\n"
                    f"ctlb-control:   vip web: backend {B14}:8080 removed\n"
                    f"ctlb-control:   tracking.new_flow_limit: changed from 1 per second (burst 5) to no limit\n")
        try:
            ctlbtest.wait_until(lambda: want_log in control.output(), 10, "the SIGHUP reload in the log")
            check(True, "SIGHUP: ctlb-control reloads and logs the exact change list")
        except TimeoutError:
            check(False, f"SIGHUP: the log has the change list; log:\n{control.output()}")
        lb_c = control.json("lb")
        check(pool_of(lb_c) == {x: ("active", 1), y: ("active", 3), bc: ("active", 1), B14: ("removed", 2)},
              f"SIGHUP: ctlbctl lb shows pool C: {pool_of(lb_c)}")
        passed = new_syns(wires, [(f"192.0.2.{i + 1}", 31000 + i) for i in range(20)])
        check(len(passed) == 20, f"no limit again: {len(passed)} of 20 new SYNs through")
        m2 = probe(wires)
        check(len(m2) == len(PROBES) and set(m2.values()) == {x, y, bc},
              f"new connections follow pool C: to {sorted(set(m2.values()))}")

        bad_hup = text_c.replace("iface=be1,", "iface=be1,qdisc_bypass=0,")
        write_config(config, bad_hup)
        before = (structure(control.json("lb")), control.digest())
        errors0 = control.stats()["config_reload_errors"]
        control.proc.send_signal(signal.SIGHUP)
        ctlbtest.wait_until(lambda: control.stats()["config_reload_errors"] == errors0 + 1, 10,
                            "the refused SIGHUP reload")
        devargs_at = position(bad_hup, "devargs: net_af_packet1", "net_af_packet1")
        check(f"ctlb-control:   {config}:{devargs_at}: ports[1].devargs: changed from "
              f"net_af_packet1,iface=be1,qpairs=1,blocksz=4096,framesz=2048,framecnt=1024 to "
              f"net_af_packet1,iface=be1,qdisc_bypass=0,qpairs=1,blocksz=4096,framesz=2048,framecnt=1024: needs a "
              f"restart of ctlb-dataplane\n" in control.output(), "SIGHUP with a restart-only change: refused, logged")
        after = (structure(control.json("lb")), control.digest())
        check(after == before and after[1] == digest(text_c), "SIGHUP refused: LB state and digest unchanged")
        check(probe(wires) == m2, "SIGHUP refused: forwarding unchanged")

        # 6. ctlb-control restarted.
        lb_before = structure(control.json("lb"))
        control.stop()
        check(control.proc.returncode == 0, f"ctlb-control stopped with SIGTERM: exit {control.proc.returncode}")
        proc = control.start()  # the file on disk is still the refused one
        rc = proc.wait(timeout=30)
        check(rc == 1 and f"(digest {digest(bad_hup)}) is not the one the dataplane runs (digest {digest(text_c)})"
              in control.output(), f"a ctlb-control with the refused file does not attach (exit {rc})")
        write_config(config, text_c)
        control.start()
        control.wait_attached()
        check(control.digest() == digest(text_c),
              "after the reloads, a restarted ctlb-control attaches with the reloaded file")
        check(structure(control.json("lb")) == lb_before, "the restarted ctlb-control shows the same LB state")
        check(probe(wires) == m2, "forwarding unchanged across the restart of ctlb-control")

        control.stop()
        rc, final = dp.stop()
        check(rc == 0, f"ctlb-dataplane stopped with SIGTERM: exit {rc}")
        drops = {k: v for k, v in final.items() if v and k in ("lb_dropped_no_backend", "lb_dropped_no_route",
                                                                 "lb_dropped_no_neighbour", "handover_dropped")}
        check(not drops, f"no packet dropped for want of a backend, route or neighbour ({drops or 'none'})")
    except Exception as e:
        failures.append(f"{type(e).__name__}: {e}")
        print(f"FAIL: {type(e).__name__}: {e}\n--- dataplane:\n{dp.output()[-3000:]}")
        if control.log:
            print(f"--- control:\n{control.output()[-3000:]}")
    finally:
        control.stop()
        dp.kill()


def leftovers():
    left = [f"process {p.args}" for p in processes if p.poll() is None]
    left += ctlbtest.dpdk_leftovers(PREFIX)
    if NETNS in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        left.append(f"netns {NETNS}")
    return left


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    binaries = tuple(os.path.abspath(a) for a in sys.argv[1:4])  # dataplane, control, ctlbctl
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="ctlb-reload-")
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    wires = None
    try:
        try:
            netns_setup()
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            ctlbtest.skip(f"cannot create a namespace with veths: {getattr(e, 'stderr', e)}")
        setns(f"/var/run/netns/{NETNS}")
        wires = (Wire("cl0"), Wire("be0"))
        run(binaries, tmp, wires)
    finally:
        if wires:
            for w in wires:
                w.close()
        if libc.setns(home, CLONE_NEWNET) != 0:
            print("FAIL: cannot go back to the test's own namespace")
        os.close(home)
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
        ctlbtest.remove_dpdk_files(PREFIX)
        shutil.rmtree(tmp, ignore_errors=True)
    left = leftovers()
    check(not left, f"nothing left behind ({left})")
    print(f"{len(failures)} failed checks, {time.monotonic() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
