#!/usr/bin/env python3
"""End-to-end test of the load balancer: real binaries, real Linux TCP, real
HTTP servers, in network namespaces this test creates and removes.

  [client 198.18.1.2] c0 == d0 [dp: ctlb-dataplane, net_af_packet on d0, d1] d1 == s0 [sw: br0] == e0 [b1 198.18.2.11]
                                                                                             == e0 [b2 198.18.2.12]
                                                                                             == e0 [b3 198.18.2.13]

The client reaches the VIP 198.18.100.1:80 on-link (it ARPs for the VIP and the
dataplane answers); the backends' default route is the dataplane's address
198.18.2.1. The dataplane rewrites the destination to the chosen backend and
the source of the answers back to the VIP; the client's address is kept.

  warm-up   one request must get through.
  phase 1   3000 requests, 16 at a time, one connection each: all succeed and
            each backend's share is within 10% (relative) of its weight's.
  phase 2   2000 short requests and 32 slow ones (5 s); after 500 are done,
            b3 is drained. Zero failures; no request started after the drain
            returned was served by b3; every connection b3 accepted belongs to
            a request started before the drain returned (b3's accept() may log
            a connection whose handshake finished before the drain slightly
            after it returned, so the accept log is matched to the requests by
            client port rather than compared by time); slow requests on b3
            open across the drain finish normally.
  counts    each backend's accept log matches, connection by connection (client
            port), the requests the client says it served.
  ctlb      `ctlbctl lb --json` counts new connections per backend as the client
            did and shows b3 draining; TIME_WAIT (and CLOSE) entries of the finished
            connections are there, then aged by ctlb-control within the timeout
            and two ager intervals (the expired counter rises by as many); one
            flow per request and none left; no packet invalid or dropped by the
            load balancer other than while ARP resolves a backend; both
            processes stop cleanly.
  captures  on the backend side (s0, the bridge port facing the dataplane) and
            on the client (c0): every IPv4 header checksum and every TCP
            checksum is valid; towards backends dst is 198.18.2.1x:8080 and src
            the client, towards the client src is 198.18.100.1:80; one SYN'd
            connection per request; tcpdump dropped nothing; no endpoint
            resets a connection except late, after a finished close (see
            judge_resets), and `lb --json` counts as many resets per backend
            as the captures show the dataplane forwarded; the late ones are
            those ctlb counts as reason rst_after_close, and per backend as
            late_resets.

--kernel-standin runs everything but ctlb: ns dp becomes a Linux router with
nftables DNAT (numgen random, weights 1:2:1), the drain replaces the rule.
It validates the harness itself; the ctlbctl checks are skipped.

The client closes second (HTTP/1.0: the server closes first), so it keeps no
TIME_WAIT and Linux reuses its ports within tens of milliseconds: a few hundred
SYNs per run land on TIME_WAIT entries of the tracker (and of the backends), and
must be balanced as new connections (after the drain, never to b3).

No fixed sleeps: every wait polls a condition against a deadline.

usage: lb_e2e_test.py CTLB_DATAPLANE CTLB_CONTROL CTLBCTL
       lb_e2e_test.py --kernel-standin [--keep]
"""

import argparse
import collections
import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import ctlbtest  # noqa: E402

PID = os.getpid()
NS = {role: f"ctlbe2e-{role}-{PID}" for role in ("client", "dp", "sw", "b1", "b2", "b3")}
PREFIX = f"ctlb-e2e-{PID}"

CLIENT = "198.18.1.2"
DP_CLIENT_SIDE, DP_BACKEND_SIDE = "198.18.1.1", "198.18.2.1"
VIP, VIP_PORT, VIP_NAME = "198.18.100.1", 80, "web"
BACKEND_PORT = 8080
BACKENDS = {"b1": ("198.18.2.11", 1), "b2": ("198.18.2.12", 2), "b3": ("198.18.2.13", 1)}
DRAINED = "b3"
BY_ADDRESS = {addr: name for name, (addr, _w) in BACKENDS.items()}

TIME_WAIT_S = 3
INTERVAL_MS = 200
METRICS_PORT = 20000 + PID % 20000
PHASE1, PHASE2, CONCURRENCY, DRAIN_AFTER = 3000, 2000, 16, 500
SLOW, SLOW_DELAY_MS = 32, 5000
SPLIT_TOLERANCE = 0.10
PHASE_TIMEOUT = 120.0

CONFIG = f"""mode: lb
file_prefix: {PREFIX}
lcores:
  main: 0
  workers: [1]
mempool:
  mbufs: 4095
  cache: 64
ports:
  - name: clients
    devargs: net_af_packet0,iface=d0,qpairs=1,blocksz=4096,framesz=2048,framecnt=512
    addresses: [{DP_CLIENT_SIDE}/24]
  - name: backends
    devargs: net_af_packet1,iface=d1,qpairs=1,blocksz=4096,framesz=2048,framecnt=512
    addresses: [{DP_BACKEND_SIDE}/24]
tracking:
  capacity_v4: 16384
  capacity_v6: 1024
  timeouts:
    time_wait: {TIME_WAIT_S}
    close: {TIME_WAIT_S}
lb:
  vips:
    - name: {VIP_NAME}
      address: {VIP}
      port: {VIP_PORT}
      backends:
""" + "".join(f"        - {{address: {a}, port: {BACKEND_PORT}, weight: {w}}}\n" for a, w in BACKENDS.values()) + """\
control:
  socket: {socket}
  metrics: 127.0.0.1:""" + str(METRICS_PORT) + "\n"


def nft_rule(names):
    """The stand-in's DNAT: numgen random over one slot per unit of weight."""
    slots = [BACKENDS[n][0] for n in names for _ in range(BACKENDS[n][1])]
    mapping = ", ".join(f"{i} : {a}" for i, a in enumerate(slots))
    return (f"ip daddr {VIP} tcp dport {VIP_PORT} dnat to numgen random mod {len(slots)} "
            f"map {{ {mapping} }} : {BACKEND_PORT}")


class Checks:
    def __init__(self):
        self.passed, self.failed = 0, []

    def __call__(self, cond, message):
        if cond:
            self.passed += 1
            print(f"ok: {message}", flush=True)
        else:
            self.failed.append(message)
            print(f"FAIL: {message}", flush=True)
        return cond


def sh(*cmd, input=None):
    r = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def in_ns(role, *cmd, input=None):
    return sh("ip", "netns", "exec", NS[role], *cmd, input=input)


def wait_until(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class Lines:
    """Lines of a child's stdout, read with a deadline."""

    def __init__(self, proc):
        self.proc, self.fd, self.buf, self.eof = proc, proc.stdout.fileno(), b"", False

    def next(self, deadline):
        """The next line, or None at end of output."""
        while b"\n" not in self.buf:
            if self.eof:
                line, self.buf = self.buf, b""
                return line.decode() if line else None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no output from the child in time")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 65536)
                if chunk:
                    self.buf += chunk
                else:
                    self.eof = True
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


class Processes:
    """Every process this test starts, ended by PID (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.items = []

    def start(self, name, argv, **kw):
        proc = subprocess.Popen(argv, **kw)
        self.items.append((name, proc))
        return proc

    @staticmethod
    def end(proc, sig=signal.SIGTERM, timeout=10.0):
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def end_all(self):
        for _name, proc in reversed(self.items):
            self.end(proc, timeout=5.0)


class Capture:
    """tcpdump writing a pcap in a namespace; readiness from its 'listening on'."""

    def __init__(self, procs, tmp, role, iface):
        self.path = os.path.join(tmp, f"{role}-{iface}.pcap")
        self.errpath = os.path.join(tmp, f"{role}-{iface}.tcpdump.log")
        self.err = open(self.errpath, "w")
        self.proc = procs.start(f"tcpdump {role}/{iface}",
                                ["ip", "netns", "exec", NS[role], "tcpdump", "-i", iface, "-n", "-s", "0", "-U",
                                 "-B", "16384", "-Z", "root", "-w", self.path],
                                stdout=subprocess.DEVNULL, stderr=self.err)

    def wait_ready(self, timeout=15.0):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tcpdump exited: {open(self.errpath).read().strip()}")
            return "listening on" in open(self.errpath).read()
        wait_until(ready, timeout, f"tcpdump on {self.path}")

    def stop(self):
        """Stops it; returns the number of packets the kernel dropped."""
        Processes.end(self.proc, signal.SIGINT, timeout=15.0)
        self.err.close()
        for line in open(self.errpath):
            if "dropped by kernel" in line:
                return int(line.split()[0])
        raise RuntimeError(f"tcpdump printed no statistics: {open(self.errpath).read().strip()}")


def setup_topology():
    for role, ns in NS.items():
        sh("ip", "netns", "add", ns)
        in_ns(role, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", "c0", "netns", NS["client"], "type", "veth", "peer", "name", "d0", "netns", NS["dp"])
    sh("ip", "link", "add", "d1", "netns", NS["dp"], "type", "veth", "peer", "name", "s0", "netns", NS["sw"])
    veths = [("client", "c0"), ("dp", "d0"), ("dp", "d1"), ("sw", "s0")]
    for i, name in enumerate(BACKENDS, 1):
        sh("ip", "link", "add", "e0", "netns", NS[name], "type", "veth", "peer", "name", f"p{i}", "netns", NS["sw"])
        veths += [(name, "e0"), ("sw", f"p{i}")]
    # Checksums complete in software on every hop, no segmentation or
    # coalescing: the wire carries what a NIC would.
    for role, dev in veths:
        in_ns(role, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off")
        in_ns(role, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
    # No STP, no multicast snooping: the bridge itself sends nothing (its IGMP
    # reports would be the only non-TCP IPv4 in the backend-side capture).
    sh("ip", "-n", NS["sw"], "link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0")
    for i in range(len(BACKENDS) + 1):
        sh("ip", "-n", NS["sw"], "link", "set", "s0" if i == 0 else f"p{i}", "master", "br0", "up")
    sh("ip", "-n", NS["sw"], "link", "set", "br0", "up")
    sh("ip", "-n", NS["client"], "addr", "add", f"{CLIENT}/24", "dev", "c0")
    sh("ip", "-n", NS["client"], "link", "set", "c0", "up")
    sh("ip", "-n", NS["client"], "route", "add", f"{VIP}/32", "dev", "c0")
    for name, (addr, _w) in BACKENDS.items():
        sh("ip", "-n", NS[name], "addr", "add", f"{addr}/24", "dev", "e0")
        sh("ip", "-n", NS[name], "link", "set", "e0", "up")
        sh("ip", "-n", NS[name], "route", "add", "default", "via", DP_BACKEND_SIDE)
    # The dataplane's namespace: no addresses, so its kernel answers nothing.
    in_ns("dp", "sysctl", "-qw", "net.ipv4.ip_forward=0")
    for dev in ("d0", "d1"):
        sh("ip", "-n", NS["dp"], "link", "set", dev, "up")


def setup_kernel_standin():
    """ns dp as a Linux router doing what the load balancer does: answer ARP
    for the VIP, DNAT to a backend by weight, un-NAT the answers."""
    sh("ip", "-n", NS["dp"], "addr", "add", f"{DP_CLIENT_SIDE}/24", "dev", "d0")
    sh("ip", "-n", NS["dp"], "addr", "add", f"{VIP}/32", "dev", "d0")
    sh("ip", "-n", NS["dp"], "addr", "add", f"{DP_BACKEND_SIDE}/24", "dev", "d1")
    in_ns("dp", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    in_ns("dp", "nft", "-f", "-", input=f"""table ip e2e {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    {nft_rule(BACKENDS)}
  }}
}}
""")


def drain_kernel_standin():
    # One nft transaction: connections already tracked keep their mapping.
    in_ns("dp", "nft", "-f", "-", input=f"flush chain ip e2e prerouting\n"
          f"add rule ip e2e prerouting {nft_rule([n for n in BACKENDS if n != DRAINED])}\n")


class Ctlb:
    """ctlb-dataplane and ctlb-control in ns dp, and ctlbctl."""

    def __init__(self, procs, tmp, dataplane, control, ctlbctl):
        self.procs, self.tmp, self.ctlbctl_bin = procs, tmp, ctlbctl
        self.dataplane_bin, self.control_bin = dataplane, control
        self.sock = os.path.join(tmp, "control.sock")
        self.config = os.path.join(tmp, "ctlb.yaml")
        with open(self.config, "w") as f:
            f.write(CONFIG.replace("{socket}", self.sock))

    def start(self):
        dp_log = open(os.path.join(self.tmp, "dataplane.log"), "w+")
        proc = self.procs.start("ctlb-dataplane", ["ip", "netns", "exec", NS["dp"], self.dataplane_bin,
                                                   "--config", self.config], stdout=dp_log, stderr=subprocess.STDOUT)
        self.dp = ctlbtest.Dataplane.__new__(ctlbtest.Dataplane)
        self.dp.prefix, self.dp.proc, self.dp.log = PREFIX, proc, dp_log
        self.dp.wait_ready(timeout=60.0)
        self.control = self.procs.start("ctlb-control", ["ip", "netns", "exec", NS["dp"], self.control_bin, "--config",
                                                         self.config, "--interval-ms", str(INTERVAL_MS)],
                                        stdout=open(os.path.join(self.tmp, "control.log"), "w"),
                                        stderr=subprocess.STDOUT)

        def answering():
            if self.control.poll() is not None:
                raise RuntimeError(f"ctlb-control exited with {self.control.returncode}")
            return self.stats()
        wait_until(answering, 30, "ctlb-control to answer")

    def ctl(self, *args):
        r = subprocess.run([self.ctlbctl_bin, *args, "--socket", self.sock], capture_output=True, text=True,
                           timeout=60)
        return r.returncode, r.stdout, r.stderr

    def ctl_json(self, *args):
        rc, out, err = self.ctl(*args, "--json")
        if rc != 0:
            raise RuntimeError(f"ctlbctl {' '.join(args)} --json: exit {rc}: {err.strip()}")
        return json.loads(out)

    def stats(self):
        rc, out, _ = self.ctl("stats", "--json")
        return json.loads(out)["stats"] if rc == 0 else None

    def drain(self):
        rc, out, err = self.ctl("backend", "drain", VIP_NAME, f"{BACKENDS[DRAINED][0]}:{BACKEND_PORT}")
        if rc != 0:
            raise RuntimeError(f"ctlbctl backend drain: exit {rc}: {err.strip()} {out.strip()}")

    def lb_backends(self):
        """{backend name: its row} of VIP web in `ctlbctl lb --json`."""
        lb = self.ctl_json("lb")
        vips = [v for v in lb["vips"] if v["name"] == VIP_NAME]
        if len(vips) != 1 or vips[0]["address"] != VIP or vips[0]["port"] != VIP_PORT:
            raise RuntimeError(f"ctlbctl lb --json has no VIP {VIP_NAME} {VIP}:{VIP_PORT}: {lb}")
        rows = {}
        for b in vips[0]["backends"]:
            if b["port"] != BACKEND_PORT or b["address"] not in BY_ADDRESS:
                raise RuntimeError(f"ctlbctl lb --json lists an unknown backend {b}")
            rows[BY_ADDRESS[b["address"]]] = b
        return rows

    def stop(self):
        """SIGTERM to control, then to the dataplane; (control rc, dataplane rc, final counters)."""
        ctl_rc = Processes.end(self.control)
        dp_rc, final = self.dp.stop()
        return ctl_rc, dp_rc, final


def start_load(procs, tmp, name, requests, concurrency, path="/", timeout=10.0):
    out = os.path.join(tmp, f"{name}.json")
    proc = procs.start(f"http_load {name}", ["ip", "netns", "exec", NS["client"], sys.executable,
                                             os.path.join(HERE, "http_load.py"), "--host", VIP, "--port",
                                             str(VIP_PORT), "--path", path, "--requests", str(requests),
                                             "--concurrency", str(concurrency), "--timeout", str(timeout),
                                             "--out", out], stdout=subprocess.PIPE, bufsize=0)
    return proc, Lines(proc), out


def finish_load(proc, lines, out, deadline):
    while lines.next(deadline) is not None:
        pass
    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator exited with {proc.returncode}")
    with open(out) as f:
        return json.load(f)


def run_load(procs, tmp, name, requests, concurrency, path="/", timeout=10.0):
    proc, lines, out = start_load(procs, tmp, name, requests, concurrency, path, timeout)
    t0 = time.monotonic()
    records = finish_load(proc, lines, out, t0 + PHASE_TIMEOUT)
    return records, time.monotonic() - t0


def served(records):
    return collections.Counter(r["backend"] for r in records if r["ok"])


def failures_of(records):
    bad = [r for r in records if not r["ok"]]
    return len(bad), collections.Counter(r["error"] for r in bad).most_common(3)


def read_accept_log(path):
    """[(monotonic time, peer address, peer port)] of one backend's accept log."""
    out = []
    with open(path) as f:
        for line in f:
            t, addr, port = line.split()
            out.append((float(t), addr, int(port)))
    return out


def check_split(check, counts, total, what):
    weights = sum(w for _a, w in BACKENDS.values())
    parts = []
    ok = True
    for name, (_a, w) in BACKENDS.items():
        expected = w / weights
        share = counts.get(name, 0) / total if total else 0
        ok = ok and abs(share - expected) <= SPLIT_TOLERANCE * expected
        parts.append(f"{name} {counts.get(name, 0)} ({share:.1%}, weight {expected:.1%})")
    check(ok, f"{what}: split within {SPLIT_TOLERANCE:.0%} of the weights: " + ", ".join(parts))


def check_capture(check, capture_check, path, dropped, side, total_by_backend):
    packets, problems, summary = capture_check.check(path)
    check(dropped == 0, f"{side} capture: tcpdump dropped {dropped} packets")
    check(summary.get("tcp", 0) > 0 and not problems,
          f"{side} capture: every IPv4 and TCP checksum valid ({summary}; scapy agrees on the sample)"
          + ("" if not problems else f": {len(problems)} problems, first {problems[:3]}"))
    backend_addrs = set(BY_ADDRESS)
    wrong, not_tcp = [], []
    syns = collections.defaultdict(set)  # (client port, ISN): a retransmitted SYN is the same connection
    for p in packets:
        if p["problem"]:
            continue
        if p["proto"] != 6:
            not_tcp.append(f"{p['src']} > {p['dst']} proto {p['proto']}")
            continue
        s, sp, d, dp = p["src"], p["sport"], p["dst"], p["dport"]
        if side == "backend":
            good = ((s == CLIENT and d in backend_addrs and dp == BACKEND_PORT) or
                    (s in backend_addrs and sp == BACKEND_PORT and d == CLIENT))
        else:
            good = (s == CLIENT and d == VIP and dp == VIP_PORT) or (s == VIP and sp == VIP_PORT and d == CLIENT)
        if not good:
            wrong.append(f"{s}:{sp} > {d}:{dp}")
        if s == CLIENT and p["flags"] & 0x12 == 0x02:  # SYN without ACK: a connection opened
            syns[BY_ADDRESS.get(d, "client")].add((sp, p["seq"]))
    check(not not_tcp, f"{side} capture: only TCP in IPv4" + (f" (found {not_tcp[:3]})" if not_tcp else ""))
    if side == "backend":
        check(not wrong, f"{side} capture: towards backends dst 198.18.2.1x:{BACKEND_PORT} src {CLIENT}, towards "
                         f"the client src a backend:{BACKEND_PORT}" + (f"; wrong: {wrong[:3]}" if wrong else ""))
        opened = {n: len(syns.get(n, ())) for n in BACKENDS}
        check(opened == dict(total_by_backend),
              f"backend capture: connections opened per backend {opened} equal the requests served "
              f"{dict(total_by_backend)}")
    else:
        check(not wrong, f"{side} capture: towards the VIP dst {VIP}:{VIP_PORT}, towards the client src "
                         f"{VIP}:{VIP_PORT}" + (f"; wrong: {wrong[:3]}" if wrong else ""))
        opened = len(syns.get("client", ()))
        check(opened == sum(total_by_backend.values()),
              f"client capture: {opened} connections opened for {sum(total_by_backend.values())} requests")
    return packets


def seq_after(a, b):
    return 0 < (a - b) % (1 << 32) < (1 << 31)


def tcp_segments(packets):
    """The well-formed TCP segments of a capture (capture_check.check()'s packets)."""
    return [p for p in packets if not p["problem"] and p["proto"] == 6]


def rst_segments(packets):
    """The RSTs among them."""
    return [p for p in tcp_segments(packets) if p["flags"] & 0x04]


def flag_names(flags):
    return "".join(c for bit, c in ((0x02, "S"), (0x10, "."), (0x08, "P"), (0x01, "F"), (0x04, "R")) if flags & bit)


def judge_resets(packets_by_side):
    """Every reset an endpoint sent, judged in the capture next to it (the
    client's on c0, a backend's on s0): late when the connection was over for
    its sender (it had sent its FIN and seen it acknowledged, and acknowledged
    the peer's FIN), its answer to a stray segment of a finished connection.
    That happens with real stacks: a backend's tail-loss probe retransmits its
    FIN while the ACK that ends the connection is on its way, and the veth and
    bridge path (each sending CPU queues its own packets) may deliver the two
    in either order (seen reordered before s0 and between s0 and the
    dataplane), so the client, closed by the ACK, resets the FIN that follows.
    ctlb counts these as reason rst_after_close. A reset anywhere else (a
    connection cut short, a backend answering a segment of a connection it
    never had) is not late.

    Returns (late, other, lines): late holds (side, client port, seq, server
    address) of each late reset, other a description of each other reset,
    lines each reset's connection history on both sides, for the log."""
    # (side, client port, server address: a backend on s0, the VIP on c0) ->
    # the state of the latest connection between them
    connections = {}
    late, other, ports = [], [], set()
    for side, packets in packets_by_side.items():
        for p in tcp_segments(packets):
            from_client = p["src"] == CLIENT
            port = p["sport"] if from_client else p["dport"]
            me, peer = ("client", "server") if from_client else ("server", "client")
            judged_here = p["flags"] & 0x04 and side == ("client" if from_client else "backend")  # its sender's side
            key = (side, port, p["dst"] if from_client else p["src"])
            if from_client and p["flags"] & 0x12 == 0x02:
                c = connections.get(key)
                if c is None or c["isn"] != p["seq"]:  # a new connection (not a retransmitted SYN)
                    connections[key] = {"isn": p["seq"], "fin": {}, "fin_acked": set()}
            c = connections.get(key)
            if c is None:  # no SYN between them: a reset is of a connection this server never had
                if judged_here:
                    other.append(f"{side} capture, from {p['src']} with no connection (client port {port})")
                    ports.add(port)
                continue
            if p["flags"] & 0x10 and peer in c["fin"] and seq_after(p["ack"], c["fin"][peer]):
                c["fin_acked"].add(peer)
            if p["flags"] & 0x01:
                c["fin"].setdefault(me, (p["seq"] + p["payload"]) % (1 << 32))
            if judged_here:
                where = f"{side} capture, from the {me} (client port {port})"
                ports.add(port)
                if me in c["fin_acked"] and peer in c["fin_acked"]:
                    late.append((side, port, p["seq"], key[2]))
                else:
                    other.append(where)
    lines = []
    for port in sorted(ports)[:4]:
        lines.append(f"client port {port}:")
        history = [(p["time"], side, p) for side, packets in packets_by_side.items() for p in tcp_segments(packets)
                   if port in (p["sport"], p["dport"])]
        for t, side, p in sorted(history, key=lambda e: e[0]):
            lines.append(f"  {t:.6f} {side:7} {p['src']}:{p['sport']} > {p['dst']}:{p['dport']} "
                         f"[{flag_names(p['flags'])}] seq {p['seq']} ack {p['ack']} len {p['payload']}")
    return late, other, lines


def late_by_backend(late, packets_by_side):
    """The backend of each late reset (see judge_resets): the sender's, when
    a backend sent it (judged on s0); when the client did (judged on c0, to
    the VIP), the destination of the same RST (port and sequence number) on
    s0; "?" if it never passed."""
    counted = collections.Counter()
    for side, port, seq, server in late:
        if side == "backend":
            counted[BY_ADDRESS.get(server, server)] += 1
            continue
        to = [p["dst"] for p in rst_segments(packets_by_side["backend"])
              if p["src"] == CLIENT and p["sport"] == port and p["seq"] == seq]
        counted[BY_ADDRESS.get(to[0], to[0]) if to else "?"] += 1
    return counted


def resets_forwarded(packets_by_side):
    """Resets the dataplane sent, per backend: the client's towards a backend
    (on s0) and the backends' towards the client (on c0, from the VIP; their
    backend is the one whose RST with the same port and sequence number
    passed s0; "?" if none did)."""
    counted = collections.Counter()
    from_backends = collections.defaultdict(list)  # (client port, seq) -> the backends that sent such a RST
    for p in rst_segments(packets_by_side["backend"]):
        if p["src"] == CLIENT:
            counted[BY_ADDRESS.get(p["dst"], p["dst"])] += 1
        else:
            from_backends[(p["dport"], p["seq"])].append(BY_ADDRESS.get(p["src"], p["src"]))
    for r in rst_segments(packets_by_side["client"]):
        if r["src"] == VIP:
            senders = from_backends.get((r["dport"], r["seq"]))
            counted[senders.pop(0) if senders else "?"] += 1
    return counted


def main():
    ap = argparse.ArgumentParser(description="end-to-end test of ctlb's load balancer")
    ap.add_argument("binaries", nargs="*", metavar="CTLB_DATAPLANE CTLB_CONTROL CTLBCTL")
    ap.add_argument("--kernel-standin", action="store_true",
                    help="a Linux router with nftables DNAT in place of ctlb (validates the harness)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, captures, records)")
    args = ap.parse_args()
    standin = args.kernel_standin
    if not standin and len(args.binaries) != 3:
        ap.error("needs CTLB_DATAPLANE CTLB_CONTROL CTLBCTL (or --kernel-standin)")

    if os.geteuid() != 0:
        ctlbtest.skip("needs root (network namespaces)")
    if not standin:
        ctlbtest.require_dpdk_environment()
    for tool in ["ip", "ethtool", "tcpdump", "sysctl"] + (["nft"] if standin else []):
        if not shutil.which(tool):
            ctlbtest.skip(f"needs {tool}")
    try:
        import capture_check
        importlib.import_module("scapy.layers.inet")
    except ImportError as e:
        ctlbtest.skip(f"needs scapy for {sys.executable}: {e}")
    binaries = [os.path.abspath(b) for b in args.binaries]

    check = Checks()
    procs = Processes()
    tmp = tempfile.mkdtemp(prefix="ctlb-e2e-")
    ctlb = None
    t_start = time.monotonic()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    summary = {}
    try:
        try:
            setup_topology()
        except RuntimeError as e:
            ctlbtest.skip(f"cannot create the namespaces and veths: {e}")
        captures = {"backend": Capture(procs, tmp, "sw", "s0"), "client": Capture(procs, tmp, "client", "c0")}
        for c in captures.values():
            c.wait_ready()
        servers = {}
        for name, (addr, _w) in BACKENDS.items():
            servers[name] = procs.start(f"server {name}", ["ip", "netns", "exec", NS[name], sys.executable,
                                                           os.path.join(HERE, "backend_server.py"), "--name", name,
                                                           "--bind", addr, "--port", str(BACKEND_PORT), "--log",
                                                           os.path.join(tmp, f"{name}-accept.log")],
                                        stdout=subprocess.PIPE, bufsize=0)
            if Lines(servers[name]).next(time.monotonic() + 15) != "listening":
                raise RuntimeError(f"backend {name} did not start")
        if standin:
            setup_kernel_standin()
            print("ns dp: Linux router with nftables DNAT (kernel stand-in)", flush=True)
        else:
            ctlb = Ctlb(procs, tmp, *binaries)
            ctlb.start()
            print("ctlb-dataplane ready, ctlb-control answering", flush=True)
        all_records = []

        # Warm-up: the path works end to end (ARP for the VIP, the backends, the gateway).
        warm, _ = run_load(procs, tmp, "warmup", 1, 1, timeout=20.0)
        all_records += warm
        if not check(warm[0]["ok"], f"warm-up request through the VIP: {warm[0]['backend'] or warm[0]['error']}"):
            raise RuntimeError("the VIP does not answer; nothing else can be checked")

        # Phase 1: the split follows the weights.
        p1, p1_secs = run_load(procs, tmp, "phase1", PHASE1, CONCURRENCY)
        all_records += p1
        n_bad, errors = failures_of(p1)
        check(len(p1) == PHASE1 and n_bad == 0, f"phase 1: {len(p1)} requests, {n_bad} failed {errors} "
                                                f"({p1_secs:.1f} s, {len(p1) / p1_secs:.0f}/s)")
        check(set(served(p1)) <= set(BACKENDS), f"phase 1: answers only from {sorted(BACKENDS)}")
        check_split(check, served(p1), PHASE1, "phase 1")
        summary["phase 1"] = f"{PHASE1} requests in {p1_secs:.1f} s, " + \
            ", ".join(f"{n} {served(p1).get(n, 0)}" for n in BACKENDS)
        if ctlb:
            rows = ctlb.lb_backends()
            counted = {n: rows[n]["new_connections"] for n in rows}
            check(counted == {n: served(all_records).get(n, 0) for n in BACKENDS},
                  f"lb --json new_connections {counted} equal the requests served so far")
            check(all(rows[n]["state"] == "active" and rows[n]["weight"] == BACKENDS[n][1] for n in BACKENDS),
                  "lb --json: every backend active with its configured weight")

        # Phase 2: drain b3 mid-run. Slow requests are open across the drain.
        slow_proc, slow_lines, slow_out = start_load(procs, tmp, "phase2-slow", SLOW, SLOW,
                                                     path=f"/?delay_ms={SLOW_DELAY_MS}", timeout=30.0)
        fast_proc, fast_lines, fast_out = start_load(procs, tmp, "phase2", PHASE2, CONCURRENCY)
        t_p2 = time.monotonic()
        deadline = t_p2 + PHASE_TIMEOUT
        while True:
            line = fast_lines.next(deadline)
            if line is None:
                raise RuntimeError("phase 2 ended before the drain")
            if line.startswith("done ") and int(line.split()[1]) >= DRAIN_AFTER:
                break
        t_drain_start = time.monotonic()
        (drain_kernel_standin if standin else ctlb.drain)()
        t_drain_return = time.monotonic()
        slow_open_at_drain = slow_proc.poll() is None
        p2 = finish_load(fast_proc, fast_lines, fast_out, deadline)
        slow = finish_load(slow_proc, slow_lines, slow_out, deadline)
        p2_secs = time.monotonic() - t_p2
        all_records += p2 + slow
        drain_ms = (t_drain_return - t_drain_start) * 1000
        print(f"drained {DRAINED} after {DRAIN_AFTER} requests: the drain took {drain_ms:.1f} ms", flush=True)

        n_bad, errors = failures_of(p2 + slow)
        check(len(p2) == PHASE2 and len(slow) == SLOW and n_bad == 0,
              f"phase 2: {len(p2)} + {len(slow)} slow requests, {n_bad} failed {errors} ({p2_secs:.1f} s)")
        after = [r for r in p2 + slow if r["start"] > t_drain_return]
        on_drained = [r for r in after if r["backend"] == DRAINED]
        check(len(after) >= DRAIN_AFTER, f"phase 2: {len(after)} requests started after the drain returned")
        check(not on_drained, f"phase 2: no request started after the drain returned was served by {DRAINED} "
                              f"({len(on_drained)} were)")
        across = [r for r in slow if r["backend"] == DRAINED and r["start"] < t_drain_start
                  and r["end"] > t_drain_return]
        check(slow_open_at_drain and across,
              f"phase 2: {len(across)} slow requests on {DRAINED} were open across the drain and finished normally")
        after_split = served(after)
        summary["phase 2"] = (f"{PHASE2}+{SLOW} requests in {p2_secs:.1f} s; after the drain "
                              + ", ".join(f"{n} {after_split.get(n, 0)}" for n in BACKENDS))

        # Every connection a backend accepted is a request the client made
        # (client port), and for b3 one started before the drain returned.
        by_port = collections.defaultdict(list)
        for r in all_records:
            if r["port"] is not None:
                by_port[r["port"]].append(r)
        totals = served(all_records)
        accepted_after, unmatched, drained_late = 0, [], []
        for name in BACKENDS:
            log = read_accept_log(os.path.join(tmp, f"{name}-accept.log"))
            check(collections.Counter(p for _t, _a, p in log) ==
                  collections.Counter(r["port"] for r in all_records if r["backend"] == name)
                  and all(a == CLIENT for _t, a, _p in log),
                  f"{name}'s accept log: {len(log)} connections from {CLIENT}, the same client ports as the "
                  f"{totals.get(name, 0)} requests it served")
            for t, _a, port in log:
                candidates = [r for r in by_port.get(port, []) if r["start"] <= t]
                if not candidates:
                    unmatched.append((name, port))
                    continue
                request = max(candidates, key=lambda r: r["start"])
                if name == DRAINED and t > t_drain_return:
                    accepted_after += 1
                    if request["start"] > t_drain_return:
                        drained_late.append(port)
        check(not unmatched, f"every accepted connection is a request of the client (unmatched {unmatched[:3]})")
        check(not drained_late,
              f"{DRAINED} accepted no connection of a request started after the drain returned "
              f"({accepted_after} accepts logged after it, all of earlier requests)"
              + (f"; late ports {drained_late[:5]}" if drained_late else ""))

        if ctlb:
            rows = ctlb.lb_backends()
            counted = {n: rows[n]["new_connections"] for n in rows}
            check(counted == {n: totals.get(n, 0) for n in BACKENDS},
                  f"lb --json new_connections {counted} equal the client's count per backend")
            states = {n: rows[n]["state"] for n in rows}
            check(states == {n: "draining" if n == DRAINED else "active" for n in BACKENDS},
                  f"lb --json states {states}")
            check(all(rows[n]["bytes_in"] > 0 and rows[n]["bytes_out"] > 0 for n in BACKENDS),
                  "lb --json: bytes both ways on every backend: "
                  + ", ".join(f"{n} in {rows[n]['bytes_in']} out {rows[n]['bytes_out']}" for n in BACKENDS))

            # TIME_WAIT entries of the finished connections, aged by ctlb-control.
            t_last = max(r["end"] for r in all_records)
            s0 = ctlb.stats()
            tw = ctlb.ctl_json("flows", "--state", "TIME_WAIT", "--limit", "100000")["flows"]
            check(len(tw) > 0 and s0["flows_TIME_WAIT"] > 0,
                  f"flows --state TIME_WAIT lists {len(tw)} entries after the run (stats {s0['flows_TIME_WAIT']})")
            limit = TIME_WAIT_S + 2 * INTERVAL_MS / 1000
            # A late reset (see judge_resets) moves its entry to CLOSE, whose
            # timeout is TIME_WAIT's here.
            wait_until(lambda: (lambda st: st["flows_TIME_WAIT"] + st["flows_CLOSE"] == 0)(ctlb.stats()), limit + 5,
                       "TIME_WAIT and CLOSE entries to be aged")
            took = time.monotonic() - t_last
            s1 = ctlb.stats()
            left = ctlb.ctl_json("flows", "--state", "TIME_WAIT")["flows"]
            check(not left and took <= limit + 1.0,
                  f"TIME_WAIT entries aged {took:.2f} s after the last request (timeout {TIME_WAIT_S} s + 2 intervals)")
            check(s1["flows_expired"] - s0["flows_expired"] >= s0["flows_TIME_WAIT"],
                  f"expired counter rose by {s1['flows_expired'] - s0['flows_expired']} "
                  f"(>= the {s0['flows_TIME_WAIT']} TIME_WAIT entries)")
            # The client reuses ports within milliseconds (it closes second, so
            # keeps no TIME_WAIT): some SYNs re-open TIME_WAIT entries.
            left = {k: v for k, v in s1.items() if k.startswith("flows_") and k[6:].isupper() and v}
            check(s1["flows_created"] == len(all_records) and not left,
                  f"one flow per request ({s1['flows_created']} for {len(all_records)}, {s1['flows_reopened']} "
                  f"re-opened a TIME_WAIT entry), none left in the table {left}")

        # The counters once every connection is over (late resets come after
        # its last request), read while the captures still run.
        rows_end, stats_end = (ctlb.lb_backends(), ctlb.stats()) if ctlb else (None, None)
        dropped = {side: c.stop() for side, c in captures.items()}
        packets_by_side = {side: check_capture(check, capture_check, c.path, dropped[side], side,
                                               {n: totals.get(n, 0) for n in BACKENDS})
                           for side, c in captures.items()}
        late, other, history = judge_resets(packets_by_side)
        check(not other, f"captures: no connection reset other than late ones after a finished close ({len(late)} "
                         f"late)" + (f"; reset: {other[:3]}" if other else ""))
        if late or other:
            print("\n".join(history), flush=True)
        if ctlb:
            counted = {n: rows_end[n]["resets"] for n in BACKENDS}
            forwarded = resets_forwarded(packets_by_side)
            check(counted == {n: forwarded.get(n, 0) for n in BACKENDS} and set(forwarded) <= set(BACKENDS),
                  f"lb --json resets {counted} equal the resets the captures show forwarded {dict(forwarded)}")
            # ctlb tells late resets apart by itself: a RST on a TIME_WAIT (or CLOSE) entry.
            check(stats_end["reason_rst_after_close"] == len(late),
                  f"stats reason_rst_after_close {stats_end['reason_rst_after_close']} equals the late resets in "
                  f"the captures ({len(late)})")
            counted_late = {n: rows_end[n]["late_resets"] for n in BACKENDS}
            judged_late = late_by_backend(late, packets_by_side)
            check(counted_late == {n: judged_late.get(n, 0) for n in BACKENDS} and set(judged_late) <= set(BACKENDS),
                  f"lb --json late_resets {counted_late} equal the late resets in the captures, per backend "
                  f"{dict(judged_late)}")

        if ctlb:
            ctl_rc, dp_rc, final = ctlb.stop()
            check(ctl_rc == 0, f"ctlb-control stops on SIGTERM (rc {ctl_rc})")
            check(dp_rc == 0, f"ctlb-dataplane stops cleanly (rc {dp_rc})")
            # Final counters are printed when non-zero. Only the first packets
            # towards a backend wait for ARP (the SYN is retransmitted).
            bad = {k: v for k, v in final.items() if k in ("invalid", "dropped_invalid", "forwarded_invalid")
                   or (k.startswith("lb_dropped_") and k != "lb_dropped_no_neighbour")}
            check(not bad and final.get("lb_dropped_no_neighbour", 0) <= len(BACKENDS) * 3,
                  f"no packet invalid or dropped by the load balancer {bad}, "
                  f"{final.get('lb_dropped_no_neighbour', 0)} waiting for ARP")

        summary["requests"] = f"{len(all_records)} in all, " + ", ".join(f"{n} {totals.get(n, 0)}" for n in BACKENDS)
        summary["drain"] = f"{drain_ms:.1f} ms for `{'nft' if standin else 'ctlbctl backend drain'}`"
    except (Exception, KeyboardInterrupt) as e:
        check.failed.append(f"{type(e).__name__}: {e}")
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        for name in ("dataplane.log", "control.log", "sw-s0.tcpdump.log", "client-c0.tcpdump.log"):
            path = os.path.join(tmp, name)
            if os.path.exists(path) and os.path.getsize(path):
                print(f"--- {name}:\n" + open(path).read()[-3000:])
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.end_all()
        for ns in NS.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if not standin:
            ctlbtest.remove_dpdk_files(PREFIX)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    summary["run"] = f"{time.monotonic() - t_start:.1f} s" + (" (kernel stand-in)" if standin else "")
    print("summary:")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    print(f"{check.passed} passed, {len(check.failed)} failed")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
