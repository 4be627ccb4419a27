#!/usr/bin/python3
"""Splits a capture of TCP connections into its two directions, for a traffic
generator with one port on each side of ctlb (see README.md):

    split_directions.py flows.pcap [--c2s FILE] [--s2c FILE] [--other c2s|s2c|drop]
                       [--total-mpps R --link-gbps L]

writes FILE-c2s.pcap (client -> server packets, for the generator port cabled
to ctlb's client-side port) and FILE-s2c.pcap (server -> client), each in the
order of the input, with the input's timestamps. The client of a connection
is the sender of its first SYN (or the receiver of its first SYN-ACK); for a
connection picked up mid-stream, the side with the higher port (an ephemeral
port) is the client. Non-TCP frames go where --other says (default: dropped,
and counted). Prints the packet counts and the share of each direction: set
the generator's per-port rates in that ratio so that both files advance
together, and the mean frame size of each file. With --total-mpps and
--link-gbps it also prints pktgen's `set <port> rate <percent>` for each port
(pktgen paces a pcap by the file's mean frame size plus 24 bytes of preamble,
gap and FCS).

Reads classic pcap (microsecond or nanosecond, either byte order), Ethernet
link type, 802.1Q/802.1ad tags, IPv4 and IPv6 (extension headers skipped).
Standard library only; streams the input, keeps one entry per connection.
"""

import argparse
import os
import struct
import sys

MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",  # microseconds
    b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">",  # nanoseconds
}
LINKTYPE_ETHERNET = 1
IPV6_EXT = {0, 43, 60, 51}  # hop-by-hop, routing, destination options, AH (fragments: 44, not followed)


class SplitError(Exception):
    pass


def tcp_tuple(frame):
    """Returns (src, sport, dst, dport, flags) of a TCP frame, else None."""
    off, etype = 14, None
    if len(frame) < 14:
        return None
    etype = struct.unpack_from(">H", frame, 12)[0]
    for _ in range(2):
        if etype in (0x8100, 0x88A8, 0x9100):
            if len(frame) < off + 4:
                return None
            etype = struct.unpack_from(">H", frame, off + 2)[0]
            off += 4
    if etype == 0x0800:
        if len(frame) < off + 20 or frame[off] >> 4 != 4:
            return None
        ihl = (frame[off] & 15) * 4
        frag = struct.unpack_from(">H", frame, off + 6)[0] & 0x1FFF
        if frame[off + 9] != 6 or frag != 0:
            return None
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        off += ihl
    elif etype == 0x86DD:
        if len(frame) < off + 40:
            return None
        nxt = frame[off + 6]
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        off += 40
        for _ in range(8):
            if nxt not in IPV6_EXT or len(frame) < off + 2:
                break
            length = (frame[off + 1] + 2) * 4 if nxt == 51 else (frame[off + 1] + 1) * 8
            nxt = frame[off]
            off += length
        if nxt != 6:
            return None
    else:
        return None
    if len(frame) < off + 14:
        return None
    sport, dport = struct.unpack_from(">HH", frame, off)
    return src, sport, dst, dport, frame[off + 13]


def read_records(f, path):
    head = f.read(24)
    if len(head) < 24 or head[:4] not in MAGICS:
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            raise SplitError(f"{path}: pcapng is not supported; convert it with: editcap -F pcap IN OUT")
        raise SplitError(f"{path}: not a pcap file")
    endian = MAGICS[head[:4]]
    linktype = struct.unpack_from(endian + "I", head, 20)[0] & 0x0FFFFFFF
    if linktype != LINKTYPE_ETHERNET:
        raise SplitError(f"{path}: link type {linktype}, expected Ethernet (1)")
    rec = struct.Struct(endian + "IIII")
    index = 0
    while True:
        h = f.read(16)
        if not h:
            return
        if len(h) < 16:
            raise SplitError(f"{path}: truncated record header after packet {index}")
        _, _, incl, _ = rec.unpack(h)
        data = f.read(incl)
        if len(data) < incl:
            raise SplitError(f"{path}: truncated packet {index + 1}")
        index += 1
        yield head, h, data


def main():
    ap = argparse.ArgumentParser(description="Split a TCP capture into client->server and server->client pcaps.")
    ap.add_argument("input", help="the capture (e.g. from ctlb_flowgen)")
    ap.add_argument("--c2s", help="client -> server output (default: INPUT-c2s.pcap)")
    ap.add_argument("--s2c", help="server -> client output (default: INPUT-s2c.pcap)")
    ap.add_argument("--other", choices=("c2s", "s2c", "drop"), default="drop",
                    help="where frames that are not TCP go (default: drop)")
    ap.add_argument("--total-mpps", type=float, help="both directions together, in Mpps (for pktgen's rates)")
    ap.add_argument("--link-gbps", type=float, help="link speed of the generator ports, in Gbit/s")
    args = ap.parse_args()
    if (args.total_mpps is None) != (args.link_gbps is None) or \
            (args.total_mpps is not None and (args.total_mpps <= 0 or args.link_gbps <= 0)):
        print("split_directions: --total-mpps and --link-gbps go together and must be positive", file=sys.stderr)
        return 2
    stem = args.input[:-5] if args.input.endswith(".pcap") else args.input
    c2s_path = args.c2s or stem + "-c2s.pcap"
    s2c_path = args.s2c or stem + "-s2c.pcap"
    if len({os.path.abspath(p) for p in (args.input, c2s_path, s2c_path)}) != 3:
        print("split_directions: the outputs must differ from each other and from the input", file=sys.stderr)
        return 2

    clients = {}  # canonical flow -> client endpoint (address, port)
    counts = {"c2s": 0, "s2c": 0, "other": 0, "picked_up": 0}
    frame_bytes = {"c2s": 0, "s2c": 0}
    try:
        with open(args.input, "rb") as f, open(c2s_path + ".tmp", "wb") as out_c, open(s2c_path + ".tmp", "wb") as out_s:
            header_written = False
            for head, rh, data in read_records(f, args.input):
                if not header_written:
                    out_c.write(head)
                    out_s.write(head)
                    header_written = True
                t = tcp_tuple(data)
                if t is None:
                    counts["other"] += 1
                    if args.other == "drop":
                        continue
                    (out_c if args.other == "c2s" else out_s).write(rh + data)
                    continue
                src, sport, dst, dport, flags = t
                a, b = (src, sport), (dst, dport)
                key = (a, b) if a <= b else (b, a)
                client = clients.get(key)
                if client is None:
                    syn, ack = flags & 0x02, flags & 0x10
                    if syn and not ack:
                        client = a
                    elif syn and ack:
                        client = b
                    else:  # mid-stream: the ephemeral (higher) port is the client's
                        counts["picked_up"] += 1
                        client = a if (sport, src) > (dport, dst) else b
                    clients[key] = client
                side = "c2s" if a == client else "s2c"
                counts[side] += 1
                frame_bytes[side] += len(data)
                (out_c if side == "c2s" else out_s).write(rh + data)
            if not header_written:
                raise SplitError(f"{args.input}: no packets")
        os.replace(c2s_path + ".tmp", c2s_path)
        os.replace(s2c_path + ".tmp", s2c_path)
    except (SplitError, OSError) as e:
        for p in (c2s_path + ".tmp", s2c_path + ".tmp"):
            try:
                os.unlink(p)
            except OSError:
                pass
        print(f"split_directions: {e}", file=sys.stderr)
        return 1
    total = counts["c2s"] + counts["s2c"]
    share = counts["c2s"] / total if total else 0.0

    def mean(side):
        return frame_bytes[side] / counts[side] if counts[side] else 0.0
    print(f"{c2s_path}: {counts['c2s']} packets (client -> server, {100 * share:.1f} %), "
          f"mean frame {mean('c2s'):.1f} bytes")
    print(f"{s2c_path}: {counts['s2c']} packets (server -> client, {100 * (1 - share):.1f} %), "
          f"mean frame {mean('s2c'):.1f} bytes")
    print(f"{len(clients)} connections; {counts['picked_up']} without a SYN or SYN-ACK first (direction by port); "
          f"{counts['other']} non-TCP frames {'dropped' if args.other == 'drop' else 'to ' + args.other}")
    if total:
        print(f"rates: give the client->server port {share:.3f} and the server->client port {1 - share:.3f} of the "
              f"total packet rate so that both files advance together")
    if total and args.total_mpps:
        for port, side, sh in ((0, "c2s", share), (1, "s2c", 1 - share)):
            pps = args.total_mpps * 1e6 * sh
            pct = 100.0 * pps * (mean(side) + 24) * 8 / (args.link_gbps * 1e9)
            note = "" if pct <= 100 else "  (over line rate: lower --total-mpps)"
            print(f"pktgen: set {port} rate {pct:.2f}    # {side}: {pps / 1e6:.3f} Mpps of {mean(side):.1f}-byte "
                  f"frames on {args.link_gbps:g} Gbit/s{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
