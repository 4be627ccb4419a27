#!/usr/bin/env python3
"""Integration test (mode lb): the real ctlb-dataplane as a NAT load balancer
on two net_pcap ports, "clients" and "backends", each with its own addresses
and static neighbours for every next hop (no ARP resolution needed). VIPs:
web, IPv4, three backends of weights 1, 2 and 3; web6, IPv6, two backends;
alt, IPv4, two backends, one of them shared with web. Captures are generated
with scapy (some IPv4 headers carry an option, short frames are padded to 60
bytes); ctlb-control runs beside the dataplane for `ctlbctl lb --json`.

Cross-port ordering. net_pcap reads each port's rx file as fast as it can, so
nothing orders the clients file against the backends file: a backend's
SYN-ACK may be processed before or after its client's SYN. The test is built
so that what it asserts does not depend on that interleaving:

 1. Pick run (one worker, then two). clients_in.pcap: 6000 SYNs, ARP
    requests for the VIP and for the clients port's own address (answered),
    for an address of the prefix that is not ours and for the backends port's
    address (not answered on this port), two TCP packets to no VIP, one UDP
    packet to a VIP. backends_in.pcap: a backend's ARP requests for the
    backends port's address and the VIP (answered) and for the clients port's
    address (not). No TCP on the backends side, so every counter is exact:
    lb_new_connections, flows, arp_*, lb_dropped_*, per-backend counters of
    `ctlbctl lb --json`. backends_out.pcap tells which backend each
    connection got (the frame must be its SYN rewritten); the split is
    compared with the Maglev table share ctlbctl reports, which is compared
    with the weights; ARP replies are compared byte for byte. The two-worker
    run must pick exactly the same backends (determinism across runs and
    worker counts) and track each connection once.
 2. Conversation runs (one worker, then two): the full client side (SYN, ACK,
    request, ACK of the response, FIN, last ACK; a quarter of them add a late
    RST after it, another quarter send a RST in its place) and the full
    backend side (SYN-ACK, response, FIN-ACK), the latter written for the
    backend each connection got in run 1. With invalid_policy forward and
    unknown_flows loose, every packet is forwarded and rewritten the same way
    in any interleaving: an entry made by the client's SYN holds the Maglev
    pick, an entry picked up from the backend side holds the backend it came
    from, and run 1 made those equal. Asserted: each output capture equals, as a
    multiset and in order per connection, the input rewritten by scapy (dst ->
    backend on the way in, src -> VIP on the way out, TTL - 1, MACs from the
    neighbour table, checksums recomputed from scratch) and every checksum
    verifies; the SYNs go to run 1's backends; port counters; no drop
    counter; one flow entry per connection over all workers; per-backend
    packets, bytes and entries; with two workers, the same packets as with
    one. The files are laid out in blocks so that, read at the same pace,
    the natural interleaving is causal; only when the tracker then found
    every packet valid (which proves each SYN-ACK came after its SYN) does
    the test also require lb_new_connections == connections, every
    connection in TIME_WAIT or, after a RST, CLOSE, and the late RSTs alone
    counted as reason rst_after_close and per backend as late_resets (all
    RSTs as resets in any interleaving). Otherwise those are only bounded,
    and the alt connections on the shared backend are left out of the exact
    checks: a reply from a backend that serves two VIPs, seen before its
    connection's entry, cannot tell which VIP it answers for (the entry
    decides).
 3. Table full (one worker, tracking capacity 1024): 1024 connections picked
    up mid-stream, each with a data segment and an ACK each way, which makes
    its entry ASSURED in any interleaving (one side opens it, the other's
    first packet is the reply, the packet after that assures it), so the
    table fills with entries that are never evicted. Only then 64 more SYNs
    arrive, through a third port reading a veth in a namespace this test
    creates (rx_iface_in), sent by the test once telemetry shows the two
    files handled. Each must be forwarded to its Maglev backend, untracked:
    lb_untracked_table_full == 64 exactly.

Every run waits (no fixed sleep) until telemetry shows every received packet
accounted for (sent, dropped and counted, or ARP needing no answer). At the
end nothing may be left behind: no /var/run/dpdk/<prefix>, no hugepage files
of the prefix, no process, no namespace.

usage: lb_pcap_test.py CTLB_DATAPLANE CTLBCTL CTLB_CONTROL
"""

import glob
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctlbtest  # noqa: E402

PID = os.getpid()
PREFIX = f"ctlb-lb-{PID}"
NETNS = f"ctlblb-{PID}"
SEED = 20261121

# net_pcap names its ports' MACs 02:'p':'c':'a':'p':N, N counting the ports a
# process creates, in the order of the configuration.
PORT_MAC = [f"02:70:63:61:70:{i:02x}" for i in range(3)]
CLIENTS, BACKENDS = 0, 1

GW4, GW4_MAC = "198.18.1.254", "02:00:00:00:01:fe"
GW6, GW6_MAC = "2001:db8:1::fe", "02:00:00:00:01:fd"
OWN4_CLIENTS, OWN4_BACKENDS = "198.18.1.1", "198.18.2.1"
VIP4 = ("198.18.100.1", 80)
VIP6 = ("2001:db8:100::1", 443)
VIP_ALT = ("198.18.100.2", 80)
# (address, port, weight, MAC)
POOL4 = [("198.18.2.11", 8080, 1, "02:00:00:00:02:0b"), ("198.18.2.12", 8080, 2, "02:00:00:00:02:0c"),
         ("198.18.2.13", 8080, 3, "02:00:00:00:02:0d")]
POOL6 = [("2001:db8:2::11", 8443, 1, "02:00:00:00:02:11"), ("2001:db8:2::12", 8443, 1, "02:00:00:00:02:12")]
POOL_ALT = [POOL4[0], ("198.18.2.14", 8080, 1, "02:00:00:00:02:0e")]  # .11 serves both web and alt
VIPS = {"web": (VIP4, POOL4), "web6": (VIP6, POOL6), "alt": (VIP_ALT, POOL_ALT)}
BACKEND_MAC = {(a, p): mac for a, p, _, mac in POOL4 + POOL6 + POOL_ALT}  # addresses written compressed
SHARED = {(POOL4[0][0], POOL4[0][1])}

# SYNs of run 1 per VIP (all the test's client endpoints), of which full
# conversations (run 2), and of web's, table fillers and late SYNs (run 3).
N_PICK = {"web": 4000, "web6": 1000, "alt": 1000}
N_CONV = {"web": 240, "web6": 60, "alt": 60}
N_FILL, N_LATE = 1024, 64

failures = []
processes = []  # every process the test starts, to check none is left


def check(cond, message):
    if cond:
        print(f"ok: {message}")
    else:
        failures.append(message)
        print(f"FAIL: {message}")


def norm(addr):
    return ipaddress.ip_address(addr).compressed


# ---------------------------------------------------------------- frames

def scapy():
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.packet import Raw
    return Ether, IP, IPv6, TCP, UDP, ARP, Raw


def pad60(b):
    return b + bytes(60 - len(b)) if len(b) < 60 else b


def tcp_frame(src_mac, dst_mac, src, dst, sport, dport, flags, seq, ack, payload=b"", ttl=64, ipid=0,
              window=502, options=(), ip_options=False):
    Ether, IP, IPv6, TCP, _, _, Raw = scapy()
    from scapy.layers.inet import IPOption_Router_Alert
    if ":" in src:
        l3 = IPv6(src=src, dst=dst, hlim=ttl)
    else:
        l3 = IP(src=src, dst=dst, ttl=ttl, id=ipid, flags="DF", options=[IPOption_Router_Alert()] if ip_options else [])
    p = Ether(src=src_mac, dst=dst_mac) / l3 / TCP(sport=sport, dport=dport, flags=flags, seq=seq % 2**32,
                                                   ack=ack % 2**32, window=window, options=list(options))
    if payload:
        p = p / Raw(payload)
    return pad60(bytes(p))


def arp_request(target, sender=GW4, sender_mac=GW4_MAC):
    Ether, _, _, _, _, ARP, _ = scapy()
    return pad60(bytes(Ether(src=sender_mac, dst="ff:ff:ff:ff:ff:ff") /
                       ARP(op=1, hwsrc=sender_mac, psrc=sender, hwdst="00:00:00:00:00:00", pdst=target)))


def arp_reply_expected(request, port_mac):
    """The reply an ARP responder must send for `request`, built by scapy:
    same length (the request's padding kept), op 2, our MAC as sender."""
    Ether, _, _, _, _, ARP, _ = scapy()
    req = Ether(request)
    a = req[ARP]
    rep = Ether(src=port_mac, dst=a.hwsrc) / ARP(op=2, hwsrc=port_mac, psrc=a.pdst, hwdst=a.hwsrc, pdst=a.psrc)
    raw = bytes(rep)
    return raw + request[len(raw):]


def rewrite(frame, src_mac, dst_mac, src=None, sport=None, dst=None, dport=None):
    """What a NAT must make of `frame`: the given fields replaced, TTL or hop
    limit - 1, checksums recomputed from scratch by scapy."""
    Ether, IP, IPv6, TCP, _, _, _ = scapy()
    p = Ether(frame)
    p.src, p.dst = src_mac, dst_mac
    l3 = p[IP] if IP in p else p[IPv6]
    if src:
        l3.src = src
    if dst:
        l3.dst = dst
    if IP in p:
        l3.ttl -= 1
        del l3.chksum
    else:
        l3.hlim -= 1
    t = p[TCP]
    if sport:
        t.sport = sport
    if dport:
        t.dport = dport
    del t.chksum
    return bytes(p)


def parse(frame):
    """(family, src, sport, dst, dport, flags, ttl) of an Ethernet/IP/TCP frame, or None."""
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype == 0x0800:
        ihl = (frame[14] & 15) * 4
        if frame[23] != 6:
            return None
        t = 14 + ihl
        return (4, socket.inet_ntop(socket.AF_INET, frame[26:30]), struct.unpack("!H", frame[t:t + 2])[0],
                socket.inet_ntop(socket.AF_INET, frame[30:34]), struct.unpack("!H", frame[t + 2:t + 4])[0],
                frame[t + 13], frame[22])
    if ethertype == 0x86DD and frame[20] == 6:
        t = 54
        return (6, socket.inet_ntop(socket.AF_INET6, frame[22:38]), struct.unpack("!H", frame[t:t + 2])[0],
                socket.inet_ntop(socket.AF_INET6, frame[38:54]), struct.unpack("!H", frame[t + 2:t + 4])[0],
                frame[t + 13], frame[21])
    return None


def checksums_ok(frame):
    """IPv4 header checksum and TCP checksum verify (ones' complement sums)."""
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype == 0x0800:
        ihl = (frame[14] & 15) * 4
        total = struct.unpack("!H", frame[16:18])[0]
        if ctlbtest.ones_complement_sum(frame[14:14 + ihl]) != 0xFFFF:
            return False
        seg = frame[14 + ihl:14 + total]
        pseudo = frame[26:34] + struct.pack("!BBH", 0, 6, len(seg))
    else:
        plen = struct.unpack("!H", frame[18:20])[0]
        seg = frame[54:54 + plen]
        pseudo = frame[22:54] + struct.pack("!IxxxB", len(seg), 6)
    return ctlbtest.ones_complement_sum(pseudo + seg) == 0xFFFF


# ---------------------------------------------------------------- connections

class Conn:
    """One client connection to a VIP: its client endpoint, ISNs, sizes."""

    def __init__(self, vip_name, client, cport, rng):
        (vip, vport), _ = VIPS[vip_name]
        self.vip_name = vip_name
        self.family = 6 if ":" in vip else 4
        family = self.family
        self.client, self.cport = norm(client), cport
        self.vip, self.vport = norm(vip), vport
        self.gw_mac = GW4_MAC if family == 4 else GW6_MAC
        self.isn_c, self.isn_s = rng.getrandbits(32), rng.getrandbits(32)
        self.request = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
        self.response = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 1400)))
        self.ttl = rng.choice([64, 128, 255, 2])  # 2: still forwarded, with TTL 1
        self.ipid = rng.getrandbits(16)
        self.window = rng.randint(100, 65535)
        self.ip_options = family == 4 and rng.random() < 0.04  # a Router Alert option in every IPv4 header
        self.backend = None  # (address, port): learned in run 1

    @property
    def key(self):
        return (self.family, self.client, self.cport)

    def _c(self, flags, seq, ack, payload=b"", n=0, options=()):
        return tcp_frame(self.gw_mac, PORT_MAC[CLIENTS], self.client, self.vip, self.cport, self.vport, flags,
                         seq, ack, payload, self.ttl, (self.ipid + n) & 0xFFFF, self.window, options, self.ip_options)

    def _s(self, flags, seq, ack, payload=b"", n=0, options=()):
        baddr, bport = self.backend
        return tcp_frame(BACKEND_MAC[self.backend], PORT_MAC[BACKENDS], baddr, self.client, bport, self.cport, flags,
                         seq, ack, payload, 64, (self.ipid ^ 0x5555) + n & 0xFFFF, 1000, options, self.ip_options)

    def syn(self):
        return self._c("S", self.isn_c, 0, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])

    @property
    def late_rst(self):
        """A quarter of the conversations end as real stacks sometimes do: the
        client, closed, answers a stray segment (a retransmitted FIN) with a
        RST after its last ACK, a late reset (reason rst_after_close)."""
        return self.cport % 4 == 0

    @property
    def aborted(self):
        """Another quarter end with the client's RST in place of its last
        ACK (an abortive close, as SO_LINGER 0 makes): a reset, not a late one."""
        return self.cport % 4 == 1

    def client_side(self):
        """Phases of the client's packets: SYN | ACK, request | ACK of the response | FIN | last ACK (or
        a RST) | a late RST or nothing."""
        c, s, q, r = self.isn_c, self.isn_s, len(self.request), len(self.response)
        return [[self.syn()],
                [self._c("A", c + 1, s + 1, n=1), self._c("PA", c + 1, s + 1, self.request, n=2)],
                [self._c("A", c + 1 + q, s + 1 + r, n=3)],
                [self._c("FA", c + 1 + q, s + 1 + r, n=4)],
                [self._c("R" if self.aborted else "A", c + 2 + q, 0 if self.aborted else s + 2 + r, n=5)],
                [self._c("R", c + 2 + q, 0, n=6)] if self.late_rst else []]

    def backend_side(self):
        """Phases of the backend's packets: SYN-ACK | response | FIN-ACK."""
        c, s, q, r = self.isn_c, self.isn_s, len(self.request), len(self.response)
        return [[self._s("SA", s, c + 1, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])],
                [self._s("PA", s + 1, c + 1 + q, self.response, n=1)],
                [self._s("FA", s + 1 + r, c + 2 + q, n=2)]]

    def filler(self):
        """A connection picked up mid-stream: a data segment and an ACK each
        way. Whichever side comes first opens the entry; the other side's
        first packet is the reply, and the packet after it makes the entry
        ASSURED (as nf_conntrack: a valid answer to a picked-up connection),
        in every interleaving of the two sides."""
        c, s, q, r = self.isn_c, self.isn_s, min(100, len(self.request)), min(100, len(self.response))
        return ([self._c("PA", c, s, self.request[:q], n=1), self._c("A", c + q, s + r, n=2)],
                [self._s("PA", s, c + q, self.response[:r], n=1), self._s("A", s + r, c + q, n=2)])

    def inbound(self, frame):
        baddr, bport = self.backend
        return rewrite(frame, PORT_MAC[BACKENDS], BACKEND_MAC[self.backend], dst=baddr, dport=bport)

    def outbound(self, frame):
        return rewrite(frame, PORT_MAC[CLIENTS], self.gw_mac, src=self.vip, sport=self.vport)


def make_connections():
    rng = random.Random(SEED)
    seen = set()
    conns = []

    def client4():
        net = rng.choice(["203.0.113", "198.51.100", "192.0.2"])
        return f"{net}.{rng.randrange(1, 255)}"

    def client6():
        return f"2001:db8:c::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}"

    by_vip = {}
    for vip_name, n in N_PICK.items():
        family = 6 if vip_name == "web6" else 4
        by_vip[vip_name] = []
        while len(by_vip[vip_name]) < n:
            addr = client4() if family == 4 else client6()
            port = rng.randrange(1024, 65536)
            if (family, norm(addr), port) in seen:
                continue
            seen.add((family, norm(addr), port))
            by_vip[vip_name].append(Conn(vip_name, addr, port, rng))
        conns += by_vip[vip_name]
    conv = [c for name, n in N_CONV.items() for c in by_vip[name][:n]]
    web = by_vip["web"][N_CONV["web"]:]
    fill, late = web[:N_FILL], web[N_FILL:N_FILL + N_LATE]
    rng.shuffle(conns)  # the VIPs mixed in the pick run
    return conns, conv, fill, late


# ---------------------------------------------------------------- running

CONFIG = """mode: lb
file_prefix: {prefix}
lcores:
  main: 0
  workers: {workers}
{lcore_map}mempool:
  mbufs: 16383
  cache: 128
ports:
  - name: clients
    devargs: net_pcap0,rx_pcap={clients_in},{clients_tx}
    addresses: [{own4_clients}/24, "2001:db8:1::1/64"]
    gateway: [{gw4}, "{gw6}"]
  - name: backends
    devargs: net_pcap1,rx_pcap={backends_in},{backends_tx}
    addresses: [{own4_backends}/24, "2001:db8:2::1/64"]
{late_port}tracking:
  capacity_v4: {capacity}
  capacity_v6: 4096
  invalid_policy: forward
  timeouts:  # a RST's CLOSE (10 s by default) outlives any slow run's queries
    close: 600
lb:
  unknown_flows: loose
  neighbours:
    - {{address: {gw4}, mac: "{gw4_mac}", port: clients}}
    - {{address: "{gw6}", mac: "{gw6_mac}", port: clients}}
{backend_neighbours}  vips:
    - name: web
      address: {vip4}
      port: {vip4_port}
      backends:
{pool4}    - name: web6
      address: "{vip6}"
      port: {vip6_port}
      table_size: 65537
      backends:
{pool6}    - name: alt
      address: {vip_alt}
      port: {vip_alt_port}
      backends:
{pool_alt}control:
  socket: {socket}
  metrics: ""
"""

LATE_PORT = """  - name: late
    devargs: net_pcap2,rx_iface_in=lt1,tx_pcap={late_out}
    addresses: [198.18.3.1/24]
"""


def config_text(tmp, workers, capacity=16384, late=False):
    q = range(workers)
    return CONFIG.format(
        prefix=PREFIX, workers=list(range(1, workers + 1)),
        lcore_map="" if workers == 1 else "  map: \"0@0," + ",".join(f"{w}@1" for w in range(1, workers + 1)) + "\"\n",
        clients_in=os.path.join(tmp, "clients_in.pcap"), backends_in=os.path.join(tmp, "backends_in.pcap"),
        clients_tx=",".join(f"tx_pcap={os.path.join(tmp, f'clients_out-{i}.pcap')}" for i in q),
        backends_tx=",".join(f"tx_pcap={os.path.join(tmp, f'backends_out-{i}.pcap')}" for i in q),
        own4_clients=OWN4_CLIENTS, own4_backends=OWN4_BACKENDS, gw4=GW4, gw6=GW6, gw4_mac=GW4_MAC, gw6_mac=GW6_MAC,
        late_port=LATE_PORT.format(late_out=os.path.join(tmp, "late_out.pcap")) if late else "",
        capacity=capacity,
        backend_neighbours="".join(f"    - {{address: \"{a}\", mac: \"{m}\", port: backends}}\n"
                                   for a, m in sorted({(a, m) for a, _, _, m in POOL4 + POOL6 + POOL_ALT})),
        vip4=VIP4[0], vip4_port=VIP4[1], vip6=VIP6[0], vip6_port=VIP6[1],
        pool4="".join(f"        - {{address: {a}, port: {p}, weight: {w}}}\n" for a, p, w, _ in POOL4),
        pool6="".join(f"        - {{address: \"{a}\", port: {p}, weight: {w}}}\n" for a, p, w, _ in POOL6),
        vip_alt=VIP_ALT[0], vip_alt_port=VIP_ALT[1],
        pool_alt="".join(f"        - {{address: {a}, port: {p}, weight: {w}}}\n" for a, p, w, _ in POOL_ALT),
        socket=os.path.join(tmp, "control.sock"))


def accounted(s):
    """Packets whose fate is known: sent, refused by a device, dropped and
    counted, or ARP that needed no answer. Equals rx once all are handled."""
    n = 0
    for k, v in s.items():
        if k.startswith("port_") and (k.endswith("_tx_packets") or k.endswith("_tx_dropped")):
            n += v
        elif k.startswith("lb_dropped_"):
            n += v
    return (n - s["slow_tx_sent"] + s["dropped_invalid"] + s["arp_dropped"] + s["arp_received"] -
            s["arp_requests_answered"] + s["handover_dropped"])


def rx_total(s):
    return sum(v for k, v in s.items() if k.startswith("port_") and k.endswith("_rx_packets"))


class Run:
    """One ctlb-dataplane (and ctlb-control) on this run's captures."""

    def __init__(self, name, binaries, workers, clients_in, backends_in, capacity=16384, late=False):
        self.name, self.binaries = name, binaries
        self.tmp = tempfile.mkdtemp(prefix="ctlb-lb-")
        ctlbtest.write_pcap(os.path.join(self.tmp, "clients_in.pcap"),
                            [(1, i, f) for i, f in enumerate(clients_in)])
        ctlbtest.write_pcap(os.path.join(self.tmp, "backends_in.pcap"),
                            [(1, i, f) for i, f in enumerate(backends_in)])
        self.config = config_text(self.tmp, workers, capacity, late)
        self.dp = None
        self.control = None
        self.late = late

    def start(self):
        dataplane = self.binaries[0]
        cmd = [dataplane, "--config", os.path.join(self.tmp, "ctlb.yaml")]
        if self.late:
            with open(os.path.join(self.tmp, "ctlb.yaml"), "w") as f:
                f.write(self.config)
            self.dp = ctlbtest.Dataplane.__new__(ctlbtest.Dataplane)
            self.dp.prefix = PREFIX
            self.dp.config = os.path.join(self.tmp, "ctlb.yaml")
            self.dp.log = open(os.path.join(self.tmp, "dataplane.log"), "w+")
            self.dp.proc = subprocess.Popen(["ip", "netns", "exec", NETNS] + cmd, cwd=self.tmp, stdout=self.dp.log,
                                            stderr=subprocess.STDOUT)
        else:
            self.dp = ctlbtest.Dataplane(dataplane, self.config, self.tmp, PREFIX)
        processes.append(self.dp.proc)
        self.dp.wait_ready()

    def wait_handled(self, n_rx, timeout=60.0):
        return self.dp.wait_for(lambda s: rx_total(s) == n_rx and accounted(s) == n_rx, timeout)

    def start_control(self):
        control = self.binaries[2]
        self.control_log = open(os.path.join(self.tmp, "control.log"), "w+")
        self.control = subprocess.Popen([control, "--config", self.dp.config, "--interval-ms", "1000"],
                                        stdout=self.control_log, stderr=subprocess.STDOUT)
        processes.append(self.control)
        deadline = time.monotonic() + 30
        while True:
            rc, out, err = self.ctl("lb", "--json")
            if rc == 0:
                return json.loads(out)
            if self.control.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ctlbctl lb: exit {rc} {err.strip()}")
            time.sleep(0.05)

    def ctl(self, *args):
        """ctlbctl ARGS against this run's ctlb-control: (exit code, stdout, stderr)."""
        r = subprocess.run([self.binaries[1], *args, "--socket", os.path.join(self.tmp, "control.sock")],
                           capture_output=True, text=True)
        return r.returncode, r.stdout, r.stderr

    def stop(self):
        """Stops control, then the dataplane; returns (exit code, final counters)."""
        if self.control and self.control.poll() is None:
            self.control.send_signal(signal.SIGTERM)
            try:
                self.control.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.control.kill()
                self.control.wait()
        rc, final = self.dp.stop()
        return rc, final

    def outputs(self, port):
        """Frames sent out of a port, one list per tx queue (worker)."""
        names = ["clients", "backends", "late"]
        files = sorted(glob.glob(os.path.join(self.tmp, f"{names[port]}_out*.pcap")))
        return [[f for _, _, f in ctlbtest.read_pcap(p)[1]] for p in files]

    def cleanup(self):
        if self.control and self.control.poll() is None:
            self.control.kill()
            self.control.wait()
        if self.dp:
            self.dp.kill()
        ctlbtest.remove_dpdk_files(PREFIX)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def complete(self, total, ask=None):
        """Starts, waits until `total` frames are handled, asks ctlbctl lb
        (and ask(self), kept as self.answers, if given), stops. Returns
        (lb_json, final, clients_out, backends_out), or None after recording
        the failure; always cleans up."""
        try:
            self.start()
            self.wait_handled(total)
            lb_json = self.start_control()
            self.answers = ask(self) if ask else None
            rc, final = self.stop()
            check(rc == 0, f"{self.name}: dataplane exit code {rc}")
            return lb_json, final, self.outputs(CLIENTS), self.outputs(BACKENDS)
        except Exception as e:
            failures.append(f"{self.name}: {type(e).__name__}: {e}")
            print(f"FAIL: {self.name}: {type(e).__name__}: {e}\n{self.log_tail()}")
            return None
        finally:
            self.cleanup()

    def log_tail(self):
        out = ""
        for name in ("dataplane.log", "control.log"):
            path = os.path.join(self.tmp, name)
            if os.path.exists(path):
                out += f"--- {name}:\n" + open(path).read()[-3000:]
        return out


def lb_backends(lb_json):
    """{(vip name, address, port): backend object} from ctlbctl lb --json."""
    out = {}
    for v in lb_json["vips"]:
        for b in v["backends"]:
            out[(v["name"], norm(b["address"]), b["port"])] = b
    return out


def gauges(final):
    return {k[6:]: v for k, v in final.items() if k.startswith("flows_") and k[6:].isupper()}


# ---------------------------------------------------------------- run 1: picks

def pick_inputs(conns):
    """The pick run's clients_in: SYNs, ARP and packets that must be dropped."""
    syns = [c.syn() for c in conns]
    Ether, IP, _, TCP, UDP, _, _ = scapy()
    junk_no_vip = [tcp_frame(GW4_MAC, PORT_MAC[0], "203.0.113.9", "198.18.100.9", 4000, 80, "S", 1, 0),
                   tcp_frame(GW4_MAC, PORT_MAC[0], "203.0.113.9", VIP4[0], 4001, 81, "S", 1, 0)]
    udp = pad60(bytes(Ether(src=GW4_MAC, dst=PORT_MAC[0]) / IP(src="203.0.113.9", dst=VIP4[0]) /
                      UDP(sport=4002, dport=80)))
    arp_vip, arp_own = arp_request(VIP4[0]), arp_request(OWN4_CLIENTS)
    arp_other = arp_request("198.18.1.77")          # in our prefix, not ours
    arp_wrong_port = arp_request(OWN4_BACKENDS)     # ours, but on the other port
    third = len(syns) // 3
    frames = ([arp_vip] + syns[:third] + junk_no_vip + [arp_other] + syns[third:2 * third] + [udp, arp_own] +
              syns[2 * third:] + [arp_wrong_port])
    # A backend asks for its gateway (the backends port's own address) and for
    # the VIP (answered on every port), and for the clients port's address
    # (not answered on this port).
    b_addr, _, _, b_mac = POOL4[0]
    b_gw, b_vip, b_other = (arp_request(t, b_addr, b_mac) for t in (OWN4_BACKENDS, VIP4[0], OWN4_CLIENTS))
    return frames, [arp_vip, arp_own], [b_gw, b_other, b_vip], [b_gw, b_vip]


def run_picks(binaries, conns, workers):
    frames, arp_answered, backend_frames, backend_arp_answered = pick_inputs(conns)
    run = Run(f"pick/{workers}w", binaries, workers, frames, backend_frames)
    name = run.name
    picks = {}
    done = run.complete(len(frames) + len(backend_frames))
    if done is None:
        return None
    lb_json, final, clients_out, backends_out = done

    by_key = {c.key: c for c in conns}
    n = len(conns)
    # Every SYN left the backends port exactly once, rewritten to a backend of its VIP.
    all_out = [f for q in backends_out for f in q]
    backend_replies = [f for f in all_out if f[12:14] == b"\x08\x06"]
    all_out = [f for f in all_out if f[12:14] != b"\x08\x06"]
    bad_rewrite, bad_sum, unknown, twice = [], 0, 0, 0
    for frame in all_out:
        t = parse(frame)
        c = by_key.get((t[0], norm(t[1]), t[2])) if t else None
        if c is None:
            unknown += 1
            continue
        if c.key in picks:
            twice += 1
        picks[c.key] = (norm(t[3]), t[4])
        pool = [(norm(a), p) for a, p, _, _ in VIPS[c.vip_name][1]]
        if picks[c.key] not in pool:
            bad_rewrite.append(f"{c.key} -> {picks[c.key]} (not in the pool)")
            continue
        c.backend = picks[c.key]
        if frame != c.inbound(c.syn()):
            bad_rewrite.append(f"{c.key}: {frame.hex()} != {c.inbound(c.syn()).hex()}")
        bad_sum += not checksums_ok(frame)
    check(len(all_out) == n and unknown == 0 and twice == 0 and len(picks) == n,
          f"{name}: each of the {n} SYNs left the backends port once ({len(all_out)} sent, {unknown} unknown, "
          f"{twice} twice)")
    check(not bad_rewrite, f"{name}: every SYN is the client's with dst -> its backend, TTL - 1, MACs, checksums "
                           f"({len(bad_rewrite)} differ{': ' + bad_rewrite[0] if bad_rewrite else ''})")
    check(bad_sum == 0, f"{name}: every IPv4 header and TCP checksum out of the backends port verifies "
                        f"({bad_sum} bad)")
    if workers == 1:
        order = [parse(f)[:3] for f in all_out]
        check([(t[0], norm(t[1]), t[2]) for t in order] == [c.key for c in conns],
              f"{name}: one worker keeps the order of the SYNs")
    # ARP: the requests for the VIP and for the port's own address are answered, byte for byte.
    replies = [f for q in clients_out for f in q]
    expected = [arp_reply_expected(r, PORT_MAC[CLIENTS]) for r in arp_answered]
    check(Counter(replies) == Counter(expected),
          f"{name}: the clients port sent exactly the two ARP replies (VIP, own address), byte for byte "
          f"({[r.hex() for r in replies]})")
    expected = [arp_reply_expected(r, PORT_MAC[BACKENDS]) for r in backend_arp_answered]
    check(Counter(backend_replies) == Counter(expected),
          f"{name}: the backends port answered a backend's ARP for its own address and for the VIP, not for the "
          f"clients port's address, byte for byte ({[r.hex() for r in backend_replies]})")
    # Counters: exactly what the captures imply.
    want = {"lb_new_connections": n, "flows_created": n, "tcp_packets": n, "arp_requests_answered": 4,
            "arp_received": 7, "arp_dropped": 0, "lb_dropped_no_vip": 2, "lb_dropped_not_tcp": 1,
            "lb_dropped_malformed": 0, "lb_dropped_no_backend": 0, "lb_dropped_unknown_flow": 0,
            "lb_dropped_no_route": 0, "lb_dropped_no_neighbour": 0, "lb_dropped_ttl": 0,
            "lb_dropped_backend_mismatch": 0, "lb_untracked_table_full": 0, "slow_tx_sent": 0,
            "port_clients_rx_packets": len(frames), "port_clients_tx_packets": 2,
            "port_backends_tx_packets": n + 2, "port_backends_rx_packets": 3, "handover_dropped": 0,
            "invalid": 0, "dropped_invalid": 0, "forwarded_invalid": 0}
    got = {k: final.get(k, 0) for k in want}
    differ = {k: f"{got[k]} (wanted {want[k]})" for k in want if got[k] != want[k]}
    check(not differ, f"{name}: counters exact ({differ or ', '.join(f'{k}={v}' for k, v in got.items() if v)})")
    g = gauges(final)
    check(g == {"SYN_SENT": n}, f"{name}: one entry per connection, all SYN_SENT ({g})")
    if workers > 1:
        check(final.get("handover_out", 0) == final.get("handover_in", 0) > 0,
              f"{name}: hand-overs out {final.get('handover_out', 0)} == in {final.get('handover_in', 0)} > 0")
    # The split follows the Maglev table shares, which follow the weights.
    lbb = lb_backends(lb_json)
    for vip_name, (_, pool) in VIPS.items():
        mine = [c for c in conns if c.vip_name == vip_name]
        total = len(mine)
        counts = Counter(c.backend for c in mine)
        wsum = sum(w for _, _, w, _ in pool)
        for a, p, w, _ in pool:
            b = lbb.get((vip_name, norm(a), p))
            if b is None:
                check(False, f"{name}: ctlbctl lb --json lists {vip_name} {a}:{p}")
                continue
            got_share = counts[(norm(a), p)] / total
            check(abs(b["table_share"] - w / wsum) < 0.01,
                  f"{name}: {vip_name} {a}:{p} weight {w}/{wsum}: Maglev share {b['table_share']:.4f}")
            check(abs(got_share - b["table_share"]) <= 0.10 * b["table_share"],
                  f"{name}: {vip_name} {a}:{p} got {counts[(norm(a), p)]} of {total} connections "
                  f"({got_share:.4f}), within 10% of its share {b['table_share']:.4f}")
            syn_bytes = sum(len(c.syn()) for c in mine if c.backend == (norm(a), p))
            want_b = {"new_connections": counts[(norm(a), p)], "connections": counts[(norm(a), p)],
                      "active_connections": counts[(norm(a), p)], "packets_in": counts[(norm(a), p)],
                      "bytes_in": syn_bytes, "packets_out": 0, "bytes_out": 0, "resets": 0, "state": "active",
                      "weight": w}
            got_b = {k: b.get(k) for k in want_b}
            check(got_b == want_b, f"{name}: ctlbctl lb {vip_name} {a}:{p}: {got_b}"
                                   f"{'' if got_b == want_b else ' wanted ' + str(want_b)}")
    return picks


# ---------------------------------------------------------------- run 2: conversations

PAD_FRAME = bytes.fromhex("0200000001fe" + "027063617000" + "88b5") + bytes(46)  # not IP: lb_dropped_not_tcp


def conversation_inputs(conv):
    """The two files in blocks of equal size (the largest phase and 32 more,
    a multiple of the 32-packet rx burst), a phase per block, the
    other file padded with non-IP frames meanwhile: clients SYN | - | ACK,
    request | - | ACK, FIN | - | last ACK, late RST, backends - | SYN-ACK | - |
    response | - | FIN-ACK | -. Read at the same pace, every packet comes a
    block after the one it answers: the natural interleaving is the causal
    one, a real conversation. Nothing asserted relies on it."""
    client_phases = [c.client_side() for c in conv]
    backend_phases = [c.backend_side() for c in conv]
    block_size = (2 * len(conv) + 31) // 32 * 32 + 32

    def blocks(phase_lists, phases, at):
        out = []
        for k in range(7):
            block = [f for p in phases[at.index(k)] for ph in phase_lists for f in ph[p]] if k in at else []
            out += block + [PAD_FRAME] * (block_size - len(block))
        return out

    clients = blocks(client_phases, [[0], [1], [2, 3], [4, 5]], [0, 2, 4, 6])
    backends = blocks(backend_phases, [[0], [1], [2]], [1, 3, 5])
    return clients, backends, client_phases, backend_phases


def endpoint_text(addr, port):
    """As ctlb writes an endpoint: 198.18.2.11:8080, [2001:db8:2::11]:8443."""
    return f"[{norm(addr)}]:{port}" if ":" in addr else f"{norm(addr)}:{port}"


def ask_flows(run):
    """`ctlbctl flows` in mode lb: every flow with its VIP and backend, the
    flows of each backend in each VIP (--vip --backend), of the backend that
    serves two VIPs in both (--backend), the text table, and refusals; stuck
    with the same options."""
    def flows(*args):
        rc, out, err = run.ctl("flows", "--json", "--limit", "100000", *args)
        if rc != 0:
            raise RuntimeError(f"ctlbctl flows {' '.join(args)}: exit {rc} {err.strip()}")
        return json.loads(out)
    shared = endpoint_text(*next(iter(SHARED)))
    return {"all": flows(),
            "each": {(vip_name, endpoint_text(a, p)): flows("--vip", vip_name, "--backend", endpoint_text(a, p))
                     for vip_name, (_, pool) in VIPS.items() for a, p, _, _ in pool},
            "shared": flows("--backend", shared),
            "text": run.ctl("flows", "--vip", "web", "--limit", "2"),
            "lb_text": run.ctl("lb"),
            "no_vip": run.ctl("flows", "--vip", "nosuch"),
            "stuck_no_vip": run.ctl("stuck", "--vip", "nosuch"),
            "stuck": run.ctl("stuck", "--json", "--threshold", "0", "--backend", shared),
            "not_in_vip": run.ctl("flows", "--vip", "web6", "--backend", shared)}


HANDSHAKE_BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 3000]  # flow::kHandshakeBucketMs


def synack_p99(buckets):
    """ctlbctl lb's SYN-ACK p99 of a backend's histogram, worked out here."""
    total = sum(buckets)
    if not total:
        return "-"
    seen = 0
    for b, n in enumerate(buckets):
        seen += n
        if seen * 100 >= total * 99:
            break
    ms = HANDSHAKE_BOUNDS_MS[min(b, len(HANDSHAKE_BOUNDS_MS) - 1)]
    text = f"{ms} ms" if ms < 1000 else f"{ms // 1000} s"
    return (">=" if b == len(HANDSHAKE_BOUNDS_MS) else "<") + text


def check_lb_text(name, lb_json, answers):
    """ctlbctl lb's table: each backend's row ends with its SYN-ACK p99, as
    its histogram in lb --json gives it."""
    rc, out, _ = answers["lb_text"]
    lines = out.splitlines()
    want, got = {}, {}
    for v in lb_json["vips"]:
        header = next((i for i, line in enumerate(lines) if line.startswith(f"VIP {v['name']} ")), None)
        for b in v["backends"]:
            ep = endpoint_text(b["address"], b["port"])
            want[(v["name"], ep)] = synack_p99(b["syn_to_synack_buckets"])
            row = next((line for line in lines[header + 2:] if line.split()[:1] == [ep]), "") if header is not None \
                else ""
            cells = row.split()
            got[(v["name"], ep)] = " ".join(cells[-2:]) if cells[-1:] in (["ms"], ["s"]) else (cells or ["?"])[-1]
    check(rc == 0 and "SYN-ACK p99" in out and got == want and all(w != "-" for w in want.values()),
          f"{name}: ctlbctl lb shows each backend's SYN-ACK p99 {got}{'' if got == want else ' wanted ' + str(want)}")


def check_flows(name, answers, conv, ambiguous):
    """ask_flows()'s answers against the connections: each one's entry names
    its VIP and the backend it went to, each filter finds exactly its own."""
    if answers is None:
        return
    rows = {}  # (client address, port) -> [(vip, backend)]
    for r in answers["all"]["flows"]:
        for ep in r["flow"].split(" > "):
            host, port = ep.rsplit(":", 1)
            rows.setdefault((norm(host.strip("[]")), int(port)), []).append((r["vip"], r["backend"]))
    checked = [c for c in conv if c.key not in ambiguous]
    wrong = [(c.client, c.cport, rows.get((c.client, c.cport))) for c in checked
             if rows.get((c.client, c.cport)) != [(c.vip_name, endpoint_text(*c.backend))]]
    check(not wrong, f"{name}: ctlbctl flows names each connection's VIP and backend ({len(checked)} connections"
                     f"{', wrong: ' + str(wrong[:3]) if wrong else ''})")
    # The shared backend's counts are left out when connections were (as the per-backend counters are).
    pools = [(vip_name, (norm(a), p)) for vip_name, (_, pool) in VIPS.items() for a, p, _, _ in pool
             if not (ambiguous and (norm(a), p) in SHARED)]
    counts = {(v, endpoint_text(*b)): sum(c.vip_name == v and c.backend == b for c in checked) for v, b in pools}
    got = {k: answers["each"][k]["matched"] for k in counts}
    only_own = all(r["vip"] == k[0] and r["backend"] == k[1] for k, a in answers["each"].items() for r in a["flows"])
    wanted = "" if got == counts else f" wanted {counts}"
    check(got == counts and only_own,
          f"{name}: ctlbctl flows --vip V --backend B finds exactly each backend's connections in each VIP "
          f"{got}{wanted}")
    shared = endpoint_text(*next(iter(SHARED)))
    want_shared = sum(c.backend in SHARED for c in conv)
    check(ambiguous or answers["shared"]["matched"] == want_shared,
          f"{name}: ctlbctl flows --backend {shared} finds its connections in both VIPs it serves "
          f"({answers['shared']['matched']} of {want_shared})")
    rc, out, _ = answers["text"]
    lines = out.splitlines()
    check(rc == 0 and len(lines) == 4 and "BACKEND" in lines[0] and all(
        any(endpoint_text(a, p) in line for a, p, _, _ in POOL4) for line in lines[1:3]),
          f"{name}: ctlbctl flows --vip web shows a BACKEND column: {lines[:2]}")
    # stuck takes the same selection (none of these connections is stuck: all closed).
    rc, out, err = answers["stuck"]
    check(rc == 0 and json.loads(out)["matched"] == 0, f"{name}: ctlbctl stuck --backend {shared}: exit {rc} {out[:80]}")
    for key, want in (("no_vip", "no VIP 'nosuch' (give its name or ADDRESS:PORT)"),
                      ("stuck_no_vip", "no VIP 'nosuch' (give its name or ADDRESS:PORT)"),
                      ("not_in_vip", f"no backend {shared} in VIP 'web6' (ctlbctl lb lists them)")):
        rc, _, err = answers[key]
        check(rc == 1 and want in err, f"{name}: ctlbctl refuses ({key}): exit {rc}, {err.strip()!r}")


def run_conversation(binaries, conv, workers, reference):
    clients_in, backends_in, client_phases, backend_phases = conversation_inputs(conv)
    run = Run(f"conversation/{workers}w", binaries, workers, clients_in, backends_in)
    name = run.name
    done = run.complete(len(clients_in) + len(backends_in), ask=ask_flows)
    if done is None:
        return None
    lb_json, final, clients_out, backends_out = done

    n = len(conv)
    # The tracker finds every packet valid only if each SYN-ACK came after
    # its SYN (one before would be INVALID: no entry, not a SYN): then every
    # backend packet found its connection's entry. Otherwise a reply from the
    # backend shared by web and alt that came before its connection's entry
    # cannot tell which VIP it answers for (docs/lb.md: the entry decides);
    # those connections are then left out of the exact checks.
    causal = final.get("invalid", 0) == 0
    ambiguous = set() if causal else {c.key for c in conv if c.vip_name != "web" and c.backend in SHARED}
    checked = [c for c in conv if c.key not in ambiguous]
    print(f"info: {name}: {'causal interleaving: every packet valid' if causal else 'interleaving not causal'}; "
          f"final states {gauges(final)}, invalid {final.get('invalid', 0)}")
    want_in = {c.key: [c.inbound(f) for ph in cp for f in ph] for c, cp in zip(conv, client_phases)}
    want_out = {c.key: [c.outbound(f) for ph in bp for f in ph] for c, bp in zip(conv, backend_phases)}
    # Per connection, in order (one worker owns it: one tx queue, one order).
    got_in, got_out = defaultdict(list), defaultdict(list)
    stray = 0
    for q, got, client_at in ((backends_out, got_in, 1), (clients_out, got_out, 3)):
        for f in q_frames(q):
            t = parse(f)
            if t is None:
                stray += 1
            else:
                got[(t[0], norm(t[client_at]), t[client_at + 1])].append(f)
    all_in = q_frames(backends_out)
    all_out = q_frames(clients_out)
    check(Counter(all_in) == Counter(f for v in want_in.values() for f in v),
          f"{name}: the backends port sent exactly the {sum(map(len, want_in.values()))} client packets, dst -> "
          f"backend, TTL - 1, MACs, checksums recomputed ({len(all_in)} sent)")
    check(Counter(f for k, v in got_out.items() if k not in ambiguous for f in v) ==
          Counter(f for c in checked for f in want_out[c.key]),
          f"{name}: the clients port sent exactly the {sum(len(want_out[c.key]) for c in checked)} backend packets, "
          f"src -> VIP (also from the backend that web and alt share), TTL - 1, MACs, checksums recomputed "
          f"({len(all_out)} sent{f', {len(ambiguous)} connections left out' if ambiguous else ''})")
    check(stray == 0 and all(got_in[c.key] == want_in[c.key] for c in conv) and
          all(got_out[c.key] == want_out[c.key] for c in checked),
          f"{name}: each connection's packets left in their order, each way")
    bad = sum(not checksums_ok(f) for f in all_in + all_out)
    check(bad == 0, f"{name}: every IPv4 header and TCP checksum in both output captures verifies ({bad} bad)")
    syn_backends = {c.key: (norm(parse(got_in[c.key][0])[3]), parse(got_in[c.key][0])[4])
                    for c in conv if got_in.get(c.key)}
    check(all(syn_backends.get(c.key) == reference[c.key] for c in conv),
          f"{name}: every connection's SYN went to the backend run 1 picked for it (determinism across runs)")
    same_backend = all(len({(norm(parse(f)[3]), parse(f)[4]) for f in got_in.get(c.key, [])}) == 1 for c in conv)
    check(same_backend, f"{name}: all packets of a connection go to one backend")

    pads = clients_in.count(PAD_FRAME) + backends_in.count(PAD_FRAME)
    check(final.get("lb_dropped_not_tcp", 0) == pads, f"{name}: the {pads} padding frames (not IP) are dropped and "
                                                      f"counted ({final.get('lb_dropped_not_tcp', 0)})")
    zero = ["lb_dropped_no_vip", "lb_dropped_malformed", "lb_dropped_no_backend",
            "lb_dropped_unknown_flow", "lb_dropped_no_route", "lb_dropped_no_neighbour", "lb_dropped_ttl",
            "lb_dropped_backend_mismatch", "lb_untracked_table_full", "dropped_invalid", "handover_dropped",
            "slow_tx_sent", "arp_received", "flows_destroyed", "flows_evicted"]
    nonzero = {k: final.get(k, 0) for k in zero if final.get(k, 0)}
    check(not nonzero, f"{name}: no drop counter moved ({nonzero or 'all 0'})")
    want_ports = {"port_clients_rx_packets": len(clients_in), "port_backends_rx_packets": len(backends_in),
                  "port_backends_tx_packets": sum(map(len, want_in.values())),
                  "port_clients_tx_packets": sum(map(len, want_out.values()))}
    got_ports = {k: final.get(k, 0) for k in want_ports}
    check(got_ports == want_ports, f"{name}: port counters {got_ports}")
    g = gauges(final)
    entries = sum(g.values())
    check(n <= entries <= n + len(ambiguous), f"{name}: one flow entry per connection over all workers, none "
                                              f"tracked twice ({entries} entries for {n} connections: {g})")
    new = final.get("lb_new_connections", 0)
    n_late = sum(c.late_rst for c in conv)
    n_reset = sum(c.late_rst or c.aborted for c in conv)
    if causal:
        # Every packet valid: a real conversation, seen through NAT as nf_conntrack would see it unNATed;
        # a RST, late or not, moves its entry to CLOSE; only the late ones are counted as rst_after_close.
        want_g = {"TIME_WAIT": n - n_reset, "CLOSE": n_reset}
        check(new == n and g == want_g,
              f"{name}: every connection new at its SYN ({new}), at the end in TIME_WAIT, or CLOSE after a RST "
              f"({g}{'' if g == want_g else ', wanted ' + str(want_g)})")
        late = final.get("reason_rst_after_close", 0)
        check(late == n_late, f"{name}: the {n_late} late RSTs counted as reason rst_after_close ({late})")
    else:
        check(0 < new <= n, f"{name}: lb_new_connections {new} <= {n} (the rest picked up from the backend side)")
    # In any interleaving: per backend, late resets are some of its resets, and all of them are the
    # tracker's rst_after_close (no packet is dropped here, so every late RST was forwarded and counted).
    lb_rows = [b for v in lb_json["vips"] for b in v["backends"]]
    late_sum = sum(b["late_resets"] for b in lb_rows)
    check(all(b["late_resets"] <= b["resets"] for b in lb_rows) and
          late_sum == final.get("reason_rst_after_close", 0),
          f"{name}: per backend late_resets <= resets, and their sum {late_sum} == reason_rst_after_close "
          f"{final.get('reason_rst_after_close', 0)}")
    if workers > 1:
        check(final.get("handover_out", 0) == final.get("handover_in", 0) > 0,
              f"{name}: hand-overs out {final.get('handover_out', 0)} == in {final.get('handover_in', 0)} > 0")
    check_flows(name, run.answers, conv, ambiguous)
    if run.answers:
        check_lb_text(name, lb_json, run.answers)
    # Per backend and VIP: packets, bytes, entries, whatever the interleaving.
    lbb = lb_backends(lb_json)
    for vip_name, (_, pool) in VIPS.items():
        for a, p, _, _ in pool:
            mine = [c for c in conv if c.vip_name == vip_name and c.backend == (norm(a), p)]
            if not causal and (norm(a), p) in SHARED:
                continue  # replies may have been counted for the other VIP's slot
            b = lbb.get((vip_name, norm(a), p), {})
            want_b = {"packets_in": sum(len(want_in[c.key]) for c in mine),
                      "bytes_in": sum(len(f) for c in mine for ph in c.client_side() for f in ph),
                      "packets_out": sum(len(want_out[c.key]) for c in mine),
                      "bytes_out": sum(len(f) for c in mine for ph in c.backend_side() for f in ph),
                      "connections": len(mine), "resets": sum(c.late_rst or c.aborted for c in mine)}
            if causal:
                want_b["new_connections"] = len(mine)
                want_b["active_connections"] = 0  # all in TIME_WAIT or CLOSE
                want_b["late_resets"] = sum(c.late_rst for c in mine)
            got_b = {k: b.get(k) for k in want_b}
            check(got_b == want_b and b.get("new_connections", -1) <= len(mine),
                  f"{name}: ctlbctl lb {vip_name} {a}:{p}: {got_b}"
                  f"{'' if got_b == want_b else ' wanted ' + str(want_b)}")
    return Counter(all_in), Counter(all_out)


def q_frames(queues):
    return [f for q in queues for f in q]


# ---------------------------------------------------------------- run 3: table full

def netns_setup():
    sh = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True, text=True)  # noqa: E731
    sh("ip", "netns", "add", NETNS)
    ns = ["ip", "netns", "exec", NETNS]
    for key in ("all", "default"):
        sh(*ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1")
    sh(*ns, "ip", "link", "add", "lt0", "type", "veth", "peer", "name", "lt1")
    for dev in ("lt0", "lt1"):
        sh(*ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
        sh(*ns, "ip", "link", "set", dev, "up")


def netns_teardown():
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)


SENDER = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("lt0", 0))
data = sys.stdin.buffer.read()
i = 0
while i < len(data):
    n = int.from_bytes(data[i:i + 2], "big")
    s.send(data[i + 2:i + 2 + n])
    i += 2 + n
"""


def run_table_full(binaries, fill, late):
    pairs = [c.filler() for c in fill]
    clients_in = [f for k in range(2) for p in pairs for f in p[0][k:k + 1]]
    backends_in = [f for k in range(2) for p in pairs for f in p[1][k:k + 1]]
    run = Run("table-full/1w", binaries, 1, clients_in, backends_in, capacity=N_FILL, late=True)
    name = run.name
    try:
        try:
            netns_setup()
        except subprocess.CalledProcessError as e:
            print(f"SKIP: {name}: cannot create a namespace and a veth: {e.stderr.strip()}")
            return
        run.start()
        filled = run.wait_handled(4 * N_FILL)
        check(filled["flows_created"] == N_FILL and filled.get("flows_ESTABLISHED", 0) == N_FILL and
              filled["untracked_table_full"] == 0 and filled["lb_untracked_table_full"] == 0,
              f"{name}: the {N_FILL} picked-up connections fill the table (created {filled['flows_created']}, "
              f"ESTABLISHED {filled.get('flows_ESTABLISHED')}, untracked {filled['lb_untracked_table_full']})")
        syns = [c.syn() for c in late]
        subprocess.run(["ip", "netns", "exec", NETNS, sys.executable, "-c", SENDER], check=True,
                       input=b"".join(len(f).to_bytes(2, "big") + f for f in syns))
        run.wait_handled(4 * N_FILL + N_LATE)
        rc, final = run.stop()
        check(rc == 0, f"{name}: dataplane exit code {rc}")
        backends_out = [f for q in run.outputs(BACKENDS) for f in q]
        clients_out = [f for q in run.outputs(CLIENTS) for f in q]
        late_out = [f for q in run.outputs(2) for f in q]
    except Exception as e:
        failures.append(f"{name}: {type(e).__name__}: {e}")
        print(f"FAIL: {name}: {type(e).__name__}: {e}\n{run.log_tail()}")
        return
    finally:
        run.cleanup()
        netns_teardown()

    want = Counter([c.inbound(f) for c, p in zip(fill, pairs) for f in p[0]] +
                   [c.inbound(s) for c, s in zip(late, syns)])
    check(Counter(backends_out) == want,
          f"{name}: the {N_FILL} fillers' packets and the {N_LATE} late SYNs left the backends port, each to its "
          f"Maglev backend ({len(backends_out)} sent)")
    want = Counter(c.outbound(f) for c, p in zip(fill, pairs) for f in p[1])
    check(Counter(clients_out) == want, f"{name}: the fillers' backend packets left the clients port from the VIP "
                                        f"({len(clients_out)} sent)")
    bad = sum(not checksums_ok(f) for f in backends_out + clients_out)
    check(bad == 0, f"{name}: every checksum verifies ({bad} bad)")
    check(not late_out, f"{name}: nothing left through the late port")
    got = {k: final.get(k, 0) for k in ("lb_untracked_table_full", "untracked_table_full", "flows_created",
                                        "flows_evicted", "flows_ESTABLISHED", "port_late_rx_packets")}
    want_c = {"lb_untracked_table_full": N_LATE, "untracked_table_full": N_LATE, "flows_created": N_FILL,
              "flows_evicted": 0, "flows_ESTABLISHED": N_FILL, "port_late_rx_packets": N_LATE}
    check(got == want_c, f"{name}: table full: the late SYNs are forwarded untracked and counted {got}"
                         f"{'' if got == want_c else ' wanted ' + str(want_c)}")
    new = final.get("lb_new_connections", 0)
    check(new == filled["lb_new_connections"] <= N_FILL,
          f"{name}: lb_new_connections {new}, as before the late SYNs ({filled['lb_new_connections']}): they are "
          f"no tracked connections")


# ---------------------------------------------------------------- main

def leftovers():
    left = [f"process {p.args}" for p in processes if p.poll() is None]
    if os.path.exists(f"/var/run/dpdk/{PREFIX}"):
        left.append(f"/var/run/dpdk/{PREFIX}")
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mount, fstype = line.split()[:3]
            if fstype == "hugetlbfs":
                left += glob.glob(os.path.join(mount, f"{PREFIX}map_*"))
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if NETNS in r.stdout:
        left.append(f"netns {NETNS}")
    return left


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    try:
        import scapy.all  # noqa: F401
    except ImportError:
        ctlbtest.skip("needs scapy (python3-scapy)")
    binaries = tuple(os.path.abspath(a) for a in sys.argv[1:4])  # dataplane, ctlbctl, control
    t0 = time.monotonic()
    conns, conv, fill, late = make_connections()
    try:
        picks = run_picks(binaries, conns, 1)
        if picks is not None:  # the later runs need each connection's backend
            picks2 = run_picks(binaries, conns, 2)
            if picks2 is not None:
                diff = sum(1 for k in picks if picks2.get(k) != picks[k])
                check(diff == 0, f"pick/2w: the same backend for every connection as pick/1w ({diff} differ)")
            one = run_conversation(binaries, conv, 1, picks)
            two = run_conversation(binaries, conv, 2, picks)
            if one and two:
                check(one == two, "conversation: two workers sent the same packets as one, each way")
            run_table_full(binaries, fill, late)
    finally:
        ctlbtest.remove_dpdk_files(PREFIX)
        netns_teardown()
    left = leftovers()
    check(not left, f"nothing left behind ({left})")
    print(f"{len(failures)} failed checks, {time.monotonic() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
