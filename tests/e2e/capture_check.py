#!/usr/bin/env python3
"""Checksums and addresses of the IPv4/TCP packets in an Ethernet pcap, for the
end-to-end load-balancer test.

Every IPv4 header checksum and every TCP checksum (pseudo-header included) is
verified on every packet by a one's-complement sum over the bytes as captured.
scapy recomputes both checksums on a sample of the packets (all of them up to
`scapy_sample`), and the two verdicts must agree; a packet with one byte
changed must fail both ways, so the check cannot pass vacuously.

usage: capture_check.py FILE.pcap   (prints what it found)
"""

import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import ctlbtest  # noqa: E402

LINKTYPE_ETHERNET = 1
ETH_IPV4 = 0x0800
IPPROTO_TCP = 6
SYN, ACK, RST, FIN = 0x02, 0x10, 0x04, 0x01


def parse(frame):
    """One Ethernet frame: None if not IPv4, else a dict with the addresses,
    ports, TCP flags and whether each checksum is valid (tcp_ok None when not
    TCP); "problem" names a malformed or truncated packet."""
    if len(frame) < 14 or struct.unpack("!H", frame[12:14])[0] != ETH_IPV4:
        return None
    ip = frame[14:]
    out = {"problem": None, "ip_ok": False, "tcp_ok": None, "proto": None, "src": None, "dst": None,
           "sport": None, "dport": None, "seq": None, "ack": None, "flags": 0, "payload": 0}
    if len(ip) < 20 or ip[0] >> 4 != 4:
        out["problem"] = "not an IPv4 header"
        return out
    ihl = (ip[0] & 0x0F) * 4
    total_len = struct.unpack("!H", ip[2:4])[0]
    if ihl < 20 or total_len < ihl or len(ip) < total_len:
        out["problem"] = f"truncated or bad lengths (ihl {ihl}, total {total_len}, captured {len(ip)})"
        return out
    out["ip_ok"] = ctlbtest.ones_complement_sum(ip[:ihl]) == 0xFFFF
    out["proto"] = ip[9]
    out["src"], out["dst"] = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    frag = struct.unpack("!H", ip[6:8])[0]
    if frag & 0x3FFF:  # MF or a fragment offset
        out["problem"] = "IPv4 fragment"
        return out
    if ip[9] != IPPROTO_TCP:
        return out
    seg = ip[ihl:total_len]
    if len(seg) < 20:
        out["problem"] = "TCP header truncated"
        return out
    pseudo = ip[12:20] + struct.pack("!BBH", 0, IPPROTO_TCP, len(seg))
    out["tcp_ok"] = ctlbtest.ones_complement_sum(pseudo + seg) == 0xFFFF
    out["sport"], out["dport"], out["seq"], out["ack"] = struct.unpack("!HHII", seg[:12])
    out["flags"] = seg[13]
    out["payload"] = len(seg) - (seg[12] >> 4) * 4
    return out


def same_checksum(computed, stored):
    """One's-complement arithmetic has two zeros: a checksum updated
    incrementally (RFC 1624, as ctlb's NAT does) may be 0xFFFF where one
    computed afresh is 0x0000, and receivers accept both (RFC 1624 section 3)."""
    return computed == stored or {computed, stored} == {0x0000, 0xFFFF}


def scapy_valid(frame):
    """(ip_ok, tcp_ok) by scapy: decode, drop both checksums, rebuild, compare."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    pkt = Ether(frame)
    stored_ip, stored_tcp = pkt[IP].chksum, pkt[TCP].chksum
    del pkt[IP].chksum
    del pkt[TCP].chksum
    rebuilt = Ether(bytes(pkt))
    return same_checksum(rebuilt[IP].chksum, stored_ip), same_checksum(rebuilt[TCP].chksum, stored_tcp)


def check(path, scapy_sample=400, seed=0):
    """Returns (packets, problems, summary): packets are the parsed IPv4
    packets with their pcap time; problems a list of strings (empty when every
    checksum is valid and scapy agrees)."""
    linktype, frames = ctlbtest.read_pcap(path)
    problems = []
    if linktype != LINKTYPE_ETHERNET:
        return [], [f"{path}: link type {linktype}, expected Ethernet"], {}
    packets, tcp_frames, other = [], [], 0
    for sec, usec, frame in frames:
        p = parse(frame)
        if p is None:
            other += 1
            continue
        p["time"] = sec + usec / 1e6
        packets.append(p)
        where = f"{path} packet {len(packets) + other}"
        if p["problem"]:
            problems.append(f"{where}: {p['problem']}")
            continue
        if not p["ip_ok"]:
            problems.append(f"{where}: bad IPv4 header checksum ({p['src']} > {p['dst']})")
        if p["tcp_ok"] is False:
            problems.append(f"{where}: bad TCP checksum ({p['src']}:{p['sport']} > {p['dst']}:{p['dport']})")
        if p["tcp_ok"] is not None:
            tcp_frames.append(frame)

    # scapy's recomputation agrees with the sum above on a sample.
    rng = random.Random(seed)
    sample = tcp_frames if len(tcp_frames) <= scapy_sample else rng.sample(tcp_frames, scapy_sample)
    disagree = 0
    for frame in sample:
        p = parse(frame)
        if scapy_valid(frame) != (p["ip_ok"], p["tcp_ok"]):
            disagree += 1
    if disagree:
        problems.append(f"{path}: scapy's recomputed checksums disagree on {disagree} of {len(sample)} packets")
    # One changed byte (in the TCP sequence number) must be caught both ways.
    if tcp_frames:
        bad = bytearray(tcp_frames[0])
        ihl = (bad[14] & 0x0F) * 4
        bad[14 + ihl + 4] ^= 0x5A
        if parse(bytes(bad))["tcp_ok"] or scapy_valid(bytes(bad))[1]:
            problems.append("the checksum check accepts a corrupted packet")
    summary = {"frames": len(frames), "ipv4": len(packets), "tcp": len(tcp_frames), "other": other,
               "scapy_checked": len(sample)}
    return packets, problems, summary


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    _packets, problems, summary = check(sys.argv[1])
    print(summary)
    for p in problems[:20]:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
