"""Shared pieces of the fault tests (issue 6, item 5): frames and captures
built here (TCP connections with exact sequence numbers, UDP filler), the
check/report convention. The dataplane runner, telemetry client, pcap I/O,
polling with a deadline and clean-up come from tests/integration/ctlbtest.py.
Standard library only."""

import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import ctlbtest  # noqa: E402  (also re-exported for the tests)

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


Checks = ctlbtest.Checks


def _ipv4(src, dst, proto, ident, payload):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0,
                     bytes(src), bytes(dst))
    ip = ip[:10] + struct.pack("!H", 0xFFFF - ctlbtest.ones_complement_sum(ip)) + ip[12:]
    return ip


def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload=b"", window=65535, ident=0):
    """An Ethernet/IPv4/TCP frame with valid checksums. src, dst: 4-tuple of
    ints; flags: a string of S, A, F, R, P."""
    bits = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}
    fl = sum(bits[c] for c in flags)
    options = struct.pack("!BBH", 2, 4, 1460) if "S" in flags else b""
    off = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF if "A" in flags else 0,
                      off << 4, fl, window, 0, 0) + options + payload
    pseudo = struct.pack("!4s4sBBH", bytes(src), bytes(dst), 0, 6, len(tcp))
    csum = 0xFFFF - ctlbtest.ones_complement_sum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = _ipv4(src, dst, 6, ident, tcp)
    return MAC_B + MAC_A + b"\x08\x00" + ip + tcp


def udp_frame(i, src=(198, 18, 90, 1), dst=(198, 18, 90, 2)):
    """A small UDP frame numbered i (the number is in its payload)."""
    payload = struct.pack("!I", i) + b"f" * 18
    udp = struct.pack("!HHHH", 9000, 9001, 8 + len(payload), 0) + payload
    return MAC_B + MAC_A + b"\x08\x00" + _ipv4(src, dst, 17, i, udp) + udp


# How a generated connection ends, and the connection state the tracker
# (like nf_conntrack) leaves it in.
ENDINGS = {"fin": "TIME_WAIT", "half": "CLOSE_WAIT", "open": "ESTABLISHED", "rst": "CLOSE"}


def connection(index, ending, server=(198, 18, 2, 2), dport=80):
    """The frames of one connection from client 198.18.(1+index/60000).x:
    handshake, a request and a response, then the ending."""
    client = (198, 18, 1 + (index // 250) % 200, 1 + index % 250)
    sport = 10000 + index % 50000
    ic, isv = (index * 7919) & 0xFFFFFFFF, (index * 104729 + 12345) & 0xFFFFFFFF
    c = lambda seq, ack, flags, data=b"": tcp_frame(client, server, sport, dport, seq, ack, flags, data)  # noqa: E731
    s = lambda seq, ack, flags, data=b"": tcp_frame(server, client, dport, sport, seq, ack, flags, data)  # noqa: E731
    frames = [c(ic, 0, "S"), s(isv, ic + 1, "SA"), c(ic + 1, isv + 1, "A"),
              c(ic + 1, isv + 1, "PA", b"q" * 100), s(isv + 1, ic + 101, "PA", b"r" * 300),
              c(ic + 101, isv + 301, "A")]
    if ending == "fin":
        frames += [c(ic + 101, isv + 301, "FA"), s(isv + 301, ic + 102, "FA"), c(ic + 102, isv + 302, "A")]
    elif ending == "half":
        frames += [c(ic + 101, isv + 301, "FA"), s(isv + 301, ic + 102, "A")]
    elif ending == "rst":
        frames += [c(ic + 101, isv + 301, "R")]
    return frames


def connections_capture(count, concurrent=64, first=0):
    """Frames of `count` connections, `concurrent` of them interleaved at a
    time, with endings in the order fin, half, open, rst; returns (frames,
    {state: connections})."""
    endings = list(ENDINGS)
    frames, expected = [], {}
    for start in range(first, first + count, concurrent):
        group = [connection(i, endings[i % len(endings)]) for i in range(start, min(start + concurrent, first + count))]
        for i in range(start, min(start + concurrent, first + count)):
            expected[ENDINGS[endings[i % len(endings)]]] = expected.get(ENDINGS[endings[i % len(endings)]], 0) + 1
        for step in range(max(len(g) for g in group)):
            frames.extend(g[step] for g in group if step < len(g))
    return frames, expected


def write_capture(path, frames):
    ctlbtest.write_pcap(path, [(1700000000 + i // 1000000, i % 1000000, f) for i, f in enumerate(frames)])


def flow_states(stats):
    """{state: connections} from a /ctlb/stats or final-counters dict (non-zero only)."""
    return {k[6:]: v for k, v in stats.items() if k.startswith("flows_") and k[6:].isupper() and v}


def trace_states(ctlbctl, capture):
    """What `ctlbctl trace` says the capture leaves: ({state: connections}, connections created)."""
    out = subprocess.run([ctlbctl, "trace", capture, "--json"], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    summary = json.loads(out[-1])["summary"]
    return {k: v for k, v in summary["flows_by_state"].items() if v}, summary["flows"]


def is_subsequence(small, big):
    """True when `small` is `big` with some elements left out, order kept."""
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def trace_flows(ctlbctl, capture):
    """{flow: (state, initiator, responder)} after the capture, as `ctlbctl
    trace` tracks it: the last record of each connection the table holds."""
    out = subprocess.run([ctlbctl, "trace", capture, "--json"], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    flows = {}
    for line in out[:-1]:
        r = json.loads(line)
        if r.get("flow") and r.get("state") not in (None, "", "NONE"):
            flows[r["flow"]] = (r["state"], r["initiator"], r["responder"])
    return flows


def table_flows(ctlbctl, sock):
    """{flow: (state, initiator, responder)} of every entry, from ctlb-control."""
    r = subprocess.run([ctlbctl, "flows", "--json", "--limit", "100000", "--socket", sock], check=True,
                       capture_output=True, text=True)
    answer = json.loads(r.stdout)
    assert not answer["truncated"], "more than 100000 flows"
    return {f["flow"]: (f["state"], f["initiator"], f["responder"]) for f in answer["flows"]}
