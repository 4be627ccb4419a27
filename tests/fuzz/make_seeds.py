#!/usr/bin/python3
"""Writes the committed seed corpora of the fuzz targets (tests/fuzz/corpus/).

  parse    every distinct frame of tests/conformance/scenarios/*.pcap, plus
           crafted frames: VLAN/QinQ, IPv4 options and fragments, IPv6
           extension headers and fragments, TCP options, UDP, ARP.
  tracker  each conformance scenario re-encoded in fuzz_tracker.cpp's input
           format (absolute seq/ack, its window, options, payload length and
           clock steps), and a few synthetic sessions: many SYNs into a small
           table (eviction), expiry requests and sweeps, bursts over several
           tuples, IPv6.
  config   config/examples/*.yaml and small configurations with one error each.
  api      sample requests of the control socket (one request per line).

Reproducers of fixed bugs are added beside these by hand (named after the
bug) and are not written here. Run from anywhere: ./tests/fuzz/make_seeds.py
"""
import glob
import os
import shutil
import struct
import sys

from scapy.all import (ARP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, rdpcap, raw)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
SCENARIOS = sorted(glob.glob(os.path.join(ROOT, "tests", "conformance", "scenarios", "*.pcap")))


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def clean(target):
    """Removes the generated seeds (seed-*), keeping reproducers of fixed bugs."""
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        for f in glob.glob(os.path.join(d, "seed-*")):
            os.remove(f)


# ---------------------------------------------------------------- parse

def parse_seeds():
    clean("parse")
    seen = set()
    for pcap in SCENARIOS:
        base = os.path.basename(pcap)[:-5]
        for i, p in enumerate(rdpcap(pcap)):
            # One frame per shape: family, VLAN, flags, option kinds, data or not.
            tcp = p[TCP] if p.haslayer(TCP) else None
            shape = (p.haslayer(IPv6), p.haslayer(Dot1Q), int(tcp.flags) if tcp else -1,
                     tuple(k for k, _ in tcp.options) if tcp else (), bool(tcp and len(bytes(tcp.payload))))
            if shape in seen:
                continue
            seen.add(shape)
            write("parse", f"seed-{base}-{i:02d}", raw(p))
    mac = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    tcp_opts = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 0))]
    crafted = {
        "vlan-ipv4-syn-options": Ether(**mac) / Dot1Q(vlan=7) / IP(src="198.18.0.1", dst="198.18.1.1") /
        TCP(sport=40000, dport=80, flags="S", seq=1000, options=tcp_opts),
        "qinq-ipv6-ack-sack": Ether(**mac) / Dot1AD(vlan=10) / Dot1Q(vlan=20) /
        IPv6(src="2001:db8::1", dst="2001:db8::2") /
        TCP(sport=40000, dport=80, flags="A", seq=1, ack=2, options=[("NOP", None), ("NOP", None),
                                                                       ("SAck", (100, 200, 300, 400))]) / (b"x" * 10),
        "ipv4-options-data": Ether(**mac) / IP(src="198.18.0.1", dst="198.18.1.1", options=b"\x01\x01\x01\x00") /
        TCP(sport=40000, dport=80, flags="PA", seq=5, ack=6) / (b"y" * 100),
        "ipv4-first-fragment": Ether(**mac) / IP(src="198.18.0.1", dst="198.18.1.1", flags="MF", frag=0) /
        TCP(sport=40000, dport=80, flags="A"),
        "ipv4-later-fragment": Ether(**mac) / IP(src="198.18.0.1", dst="198.18.1.1", proto=6, frag=100) / (b"z" * 40),
        "ipv6-ext-chain": Ether(**mac) / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() /
        IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / TCP(sport=1, dport=2, flags="S"),
        "ipv6-fragment-first": Ether(**mac) / IPv6(src="2001:db8::1", dst="2001:db8::2") /
        IPv6ExtHdrFragment(offset=0, m=1) / TCP(sport=1, dport=2, flags="A"),
        "ipv6-fragment-later": Ether(**mac) / IPv6(src="2001:db8::1", dst="2001:db8::2") /
        IPv6ExtHdrFragment(offset=20, m=0, nh=6) / (b"w" * 16),
        "ipv4-udp": Ether(**mac) / IP(src="198.18.0.1", dst="198.18.1.1") / UDP(sport=53, dport=53) / b"q",
        "arp": Ether(**mac) / ARP(psrc="198.18.0.1", pdst="198.18.0.2"),
    }
    for name, p in crafted.items():
        write("parse", f"seed-{name}", raw(p))
    # Frames the parser must refuse: header fields that lie.
    syn = raw(Ether(**mac) / IP(src="198.18.0.1", dst="198.18.1.1") / TCP(sport=40000, dport=80, flags="S"))
    write("parse", "seed-truncated-tcp", syn[:40])
    bad_ihl = bytearray(syn)
    bad_ihl[14] = 0x44
    write("parse", "seed-ipv4-ihl4", bytes(bad_ihl))
    bad_doff = bytearray(syn)
    bad_doff[14 + 20 + 12] = 0xf0
    write("parse", "seed-tcp-doff-overrun", bytes(bad_doff))
    write("parse", "seed-empty", b"")


# ---------------------------------------------------------------- tracker

class TrackerInput:
    """fuzz_tracker.cpp's input format (see its decode in Harness::run/build)."""

    def __init__(self, knobs=0, cap4=8, cap6=4, shrink=0, start=0):
        self.b = bytearray([knobs, cap4 - 1, cap6 - 1, shrink]) + struct.pack(">I", start)

    def seg(self, tuple_=0, v6=False, from_server=False, flags=0x10, seq=None, ack=None, window=65535,
            mss=False, wscale=None, sackperm=False, ts=False, sack_blocks=0, payload=0, vlan=False, op=0):
        sel = tuple_ | (0x20 if v6 else 0) | (0x40 if from_server else 0) | (0x80 if vlan else 0)
        seq_mode = 0 if seq is None else 5
        ack_mode = 0 if ack is None else (4 if ack == 0 else 3)
        modes = seq_mode | ack_mode << 3
        opt = (1 if mss else 0) | (2 if wscale is not None else 0) | (4 if sackperm else 0) | (8 if ts else 0)
        if sack_blocks:
            opt |= 0x10 | (sack_blocks - 1) << 5
        plen = payload if payload < 200 else min(255, 199 + (payload + 1199) // 1200)
        self.b += bytes([op, sel, flags, modes, min(255, round(window / 257)), opt, plen])
        if seq_mode == 5:
            self.b += struct.pack(">I", seq & 0xffffffff)
        if ack_mode == 3:
            self.b += struct.pack(">I", ack & 0xffffffff)
        if wscale is not None:
            self.b.append(wscale)
        for _ in range(sack_blocks):
            self.b.append(1)
        return self

    def reject(self, **kw):
        return self.seg(op=10, **kw)

    def step_ms(self, ms):
        while ms > 0:
            if ms >= 1000:
                s = min(ms // 1000, 65535)
                self.b += bytes([12]) + struct.pack(">H", s)
                ms -= s * 1000
            else:
                self.b += bytes([11, min(ms, 255)])
                ms -= min(ms, 255)
        return self

    def expire(self, handle, v6=False, mode=0):
        self.b += bytes([13, handle | (0x80 if v6 else 0), mode])
        return self

    def sweep(self):
        self.b.append(14)
        return self

    def flush(self):
        self.b.append(15)
        return self


def scenario_to_tracker(pcap):
    pkts = [p for p in rdpcap(pcap) if p.haslayer(TCP)]
    if not pkts:
        return None
    first = pkts[0]
    l3 = IPv6 if first.haslayer(IPv6) else IP
    client = (first[l3].src, first[TCP].sport)
    t = TrackerInput(cap4=8, cap6=4)
    last = float(pkts[0].time)
    for p in pkts:
        gap = int(round((float(p.time) - last) * 1000))
        last = float(p.time)
        if gap > 0:
            t.flush()
            t.step_ms(gap)
        tcp = p[TCP]
        opts = dict((k, v) for k, v in tcp.options if isinstance(k, str))
        t.seg(tuple_=0, v6=l3 is IPv6, from_server=(p[l3].src, tcp.sport) != client, flags=int(tcp.flags),
              seq=tcp.seq, ack=tcp.ack if tcp.ack else 0, window=tcp.window, mss="MSS" in opts,
              wscale=opts.get("WScale"), sackperm="SAckOK" in opts, ts="Timestamp" in opts,
              payload=len(bytes(tcp.payload)), vlan=p.haslayer(Dot1Q))
    t.flush().step_ms(300_000).sweep()
    return bytes(t.b)


def tracker_seeds():
    clean("tracker")
    for pcap in SCENARIOS:
        data = scenario_to_tracker(pcap)
        if data:
            write("tracker", "seed-" + os.path.basename(pcap)[:-5], data)
    S, SA, A, FA, R, PA = 0x02, 0x12, 0x10, 0x11, 0x04, 0x18

    def session(t, tup, v6=False, close=True, data=3):
        t.seg(tup, v6, flags=S, ack=0, mss=True, wscale=7, sackperm=True, ts=True)
        t.seg(tup, v6, True, flags=SA, mss=True, wscale=7, sackperm=True, ts=True)
        t.seg(tup, v6, flags=A, ts=True)
        for i in range(data):
            t.seg(tup, v6, bool(i % 2), flags=PA, payload=100 * (i + 1), ts=True)
            t.seg(tup, v6, not bool(i % 2), flags=A, ts=True)
        if close:
            t.seg(tup, v6, flags=FA)
            t.seg(tup, v6, True, flags=FA)
            t.seg(tup, v6, flags=A)
        return t

    # Sessions over several tuples, interleaved in bursts, both families.
    t = TrackerInput(cap4=16, cap6=8)
    for tup in range(6):
        session(t, tup, v6=tup % 2 == 1, close=tup % 3 != 0)
    t.flush().step_ms(30_000).expire(0).expire(1, mode=1).sweep()
    write("tracker", "seed-synthetic-sessions", bytes(t.b))

    # A SYN flood on a 4-entry table with established connections in it.
    t = TrackerInput(cap4=4, cap6=2, shrink=10)
    session(t, 0, close=False)
    session(t, 1, close=False)
    for tup in range(2, 32):
        t.seg(tup, flags=S, ack=0)
    t.flush().step_ms(200).sweep()
    for tup in range(2, 12):
        t.seg(tup, v6=True, flags=S, ack=0)
    write("tracker", "seed-synthetic-syn-flood", bytes(t.b))

    # Established data on the fast path, window scale, SACK blocks, zero window, RST.
    t = TrackerInput(cap4=8, cap6=4)
    session(t, 3, close=False, data=8)
    t.seg(3, flags=A, sack_blocks=2)
    t.seg(3, from_server=True, flags=A, window=0)
    t.seg(3, flags=R)
    t.reject(tuple_=4, flags=S, ack=0)
    write("tracker", "seed-synthetic-fast-path-rst", bytes(t.b))

    # Liberal tracking, no pick-up, TIME_WAIT reopen, timeouts shrunk, expiry of every handle.
    t = TrackerInput(knobs=0x1 | 0x2 | 0x4 | 0x18, cap4=2, cap6=1, shrink=16, start=0xfffff000)
    session(t, 5)
    t.seg(5, flags=S, seq=0x12345678, ack=0)
    t.seg(6, flags=A)
    for h in range(4):
        t.expire(h, mode=h)
    t.step_ms(5000)
    for h in range(4):
        t.expire(h)
    write("tracker", "seed-synthetic-liberal-reopen-wrap", bytes(t.b))


# ---------------------------------------------------------------- config

CONFIG_ERRORS = {
    "unknown-key": "lcores: {main: 0, workers: [1]}\nports: [{name: a, devargs: net_null0, peer: b}, "
                   "{name: b, devargs: net_null1, peer: a}]\nspeed: 10\n",
    "wrong-type": "lcores: {main: zero, workers: [1]}\nports: []\n",
    "missing-key": "ports:\n  - name: a\n    devargs: net_null0\n",
    "capacity": "lcores: {main: 0, workers: [1]}\nports: [{name: a, devargs: net_null0, peer: b}, "
                "{name: b, devargs: net_null1, peer: a}]\ntracking: {capacity_v4: 1000}\n",
    "duplicate-vip": "mode: lb\nlcores: {main: 0, workers: [1]}\nports:\n  - {name: a, devargs: net_null0, "
                     "addresses: [198.18.1.1/24]}\nlb:\n  vips:\n    - {address: 198.18.100.1, port: 80, "
                     "backends: []}\n    - {address: 198.18.100.1, port: 80, backends: []}\n",
    "backend-unreachable": "mode: lb\nlcores: {main: 0, workers: [1]}\nports:\n  - {name: a, devargs: net_null0, "
                           "addresses: [198.18.1.1/24]}\nlb:\n  vips:\n    - address: 198.18.100.1\n      port: 80\n"
                           "      backends: [{address: 10.0.0.1, port: 80}]\n",
    "not-yaml": "lcores: {main: 0, workers: [1\nports: [",
    "timeouts-newflow": "lcores: {main: 0, workers: [1, 2]}\nports: [{name: a, devargs: net_null0, peer: b}, "
                        "{name: b, devargs: net_null1, peer: a}]\ntracking:\n  liberal: true\n  timeouts: "
                        "{established: 3600, time_wait: 60}\n  new_flow_limit: {rate: 1000, burst: 50}\n",
}


def config_seeds():
    clean("config")
    for y in sorted(glob.glob(os.path.join(ROOT, "config", "examples", "*.yaml"))):
        shutil.copyfile(y, os.path.join(CORPUS, "config", "seed-example-" + os.path.basename(y)[:-5]))
    for name, text in CONFIG_ERRORS.items():
        write("config", "seed-" + name, text.encode())


# ---------------------------------------------------------------- api

API_REQUESTS = {
    "ping": ['{"cmd":"ping"}'],
    "stats": ['{"cmd":"stats"}'],
    "flows": ['{"cmd":"flows","state":"CLOSE_WAIT","initiator":"FIN_WAIT_2","responder":"CLOSE_WAIT",'
              '"older_than_s":60,"port":80,"limit":100}', '{"cmd":"flows"}'],
    "stuck": ['{"cmd":"stuck","threshold_s":60,"limit":10}'],
    "lb": ['{"cmd":"lb"}', '{"cmd":"neighbours"}'],
    "backend-ops": ['{"cmd":"backend","op":"add","vip":"web","backend":"198.18.2.20:8080","weight":3}',
                    '{"cmd":"backend","op":"drain","vip":"198.18.100.1:80","backend":"198.18.2.11:8080"}',
                    '{"cmd":"backend","op":"weight","vip":"web","backend":"198.18.2.20:8080","weight":0}',
                    '{"cmd":"backend","op":"down","vip":"web","backend":"198.18.2.12:8080"}',
                    '{"cmd":"backend","op":"remove","vip":"web","backend":"198.18.2.12:8080"}',
                    '{"cmd":"backend","op":"add","vip":"web","backend":"198.18.2.12:8080"}',
                    '{"cmd":"backend","op":"add","vip":"web6","backend":"[2001:db8:2::12]:8443"}',
                    '{"cmd":"lb"}'],
    "errors": ['not json', '[1]', '{"x":1}', '{"cmd":"drop"}', '{"cmd":"stats","verbose":true}',
               '{"cmd":"flows","state":"HALF_OPEN"}', '{"cmd":"flows","port":70000}',
               '{"cmd":"stuck","threshold_s":"60"}', '{"cmd":"backend","op":"add","vip":"nope","backend":"1.2.3.4:5"}',
               '{"cmd":"backend","op":"weight","vip":"web","backend":"198.18.2.11:8080"}',
               '{"cmd":"backend","op":"add","vip":"web","backend":"198.18.1.1:80"}',
               '{"a":"\\u00e9\\n","b":[1,2.5e3,-0.5,true,false,null,{}],"c":{"d":[]}}'],
}


def api_seeds():
    clean("api")
    for name, lines in API_REQUESTS.items():
        write("api", "seed-" + name, ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    which = sys.argv[1:] or ["parse", "tracker", "config", "api"]
    for w in which:
        {"parse": parse_seeds, "tracker": tracker_seeds, "config": config_seeds, "api": api_seeds}[w]()
    for w in which:
        print(w, len(os.listdir(os.path.join(CORPUS, w))), "files")
