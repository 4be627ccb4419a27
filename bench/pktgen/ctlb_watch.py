#!/usr/bin/python3
"""Prints ctlb-dataplane's rates once a second while it runs, from its DPDK
telemetry socket (/ctlb/stats):

    ctlb_watch.py [--prefix FILE_PREFIX] [--interval SECONDS] [--count N]

One line per interval: rx and tx Mpps per port, connections opened per
second, the live connections by state, and every counter of trouble that
moved (tx drops, invalid packets by reason, untracked_table_full, evictions,
malformed frames). FILE_PREFIX is the configuration's file_prefix (default
ctlb). Standard library only; run it as root next to the dataplane.
"""

import argparse
import json
import socket
import sys
import time

TROUBLE = ("untracked_table_full", "flows_evicted", "flows_reclaimed", "dropped_invalid", "forwarded_invalid",
           "handover_dropped", "dropped_no_peer")
STATES = ("SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",
          "SYN_SENT2")
ACCEPT_REASONS = ("ok", "reopened", "ignored_out_of_sync", "ignored_challenge_ack", "ignored_old_data",
                  "ignored_overshoot", "liberal", "untracked_table_full", "rst_after_close")


def connect(prefix):
    path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except OSError as e:
        raise SystemExit(f"ctlb_watch: cannot connect to {path}: {e} (is ctlb-dataplane running with "
                         f"file_prefix {prefix}? run as root)")
    sock.recv(16384)
    return sock


def query(sock):
    sock.send(b"/ctlb/stats")
    stats = json.loads(sock.recv(1 << 20).decode()).get("/ctlb/stats")
    if not isinstance(stats, dict):
        raise SystemExit("ctlb_watch: /ctlb/stats gave no counters (not a ctlb-dataplane?)")
    return time.monotonic(), stats


def short(n):
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def main():
    ap = argparse.ArgumentParser(description="ctlb-dataplane rates from its telemetry, once a second")
    ap.add_argument("--prefix", default="ctlb", help="the configuration's file_prefix (default ctlb)")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--count", type=int, default=0, help="lines to print (default: until interrupted)")
    args = ap.parse_args()
    sock = connect(args.prefix)
    t0, s0 = query(sock)
    ports = sorted({k[len("port_"):-len("_rx_packets")] for k in s0 if k.startswith("port_") and
                    k.endswith("_rx_packets")})
    printed = 0
    try:
        while not args.count or printed < args.count:
            time.sleep(args.interval)
            t1, s1 = query(sock)
            dt = t1 - t0
            rate = lambda k: (s1.get(k, 0) - s0.get(k, 0)) / dt  # noqa: E731
            parts = []
            for p in ports:
                parts.append(f"{p} rx {rate(f'port_{p}_rx_packets') / 1e6:.2f} tx "
                             f"{rate(f'port_{p}_tx_packets') / 1e6:.2f} Mpps")
            parts.append(f"new {short(rate('flows_created'))}/s")
            live = " ".join(f"{st}={short(s1[f'flows_{st}'])}" for st in STATES if s1.get(f"flows_{st}"))
            parts.append(live or "no connections")
            trouble = []
            for p in ports:
                k = f"port_{p}_tx_dropped"
                if s1.get(k, 0) != s0.get(k, 0):
                    trouble.append(f"{k} +{s1[k] - s0.get(k, 0)}")
            for k in TROUBLE:
                if s1.get(k, 0) != s0.get(k, 0):
                    trouble.append(f"{k} +{s1[k] - s0.get(k, 0)}")
            for k, v in s1.items():
                if v == s0.get(k, 0):
                    continue
                if (k.startswith("reason_") and k[len("reason_"):] not in ACCEPT_REASONS) or \
                        (k.startswith("parse_") and k not in ("parse_not_ip", "parse_non_tcp", "parse_ip_fragment")):
                    trouble.append(f"{k} +{v - s0.get(k, 0)}")
            if trouble:
                parts.append("TROUBLE: " + ", ".join(trouble))
            print(time.strftime("%H:%M:%S") + "  " + " | ".join(parts), flush=True)
            t0, s0 = t1, s1
            printed += 1
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as e:
        print(f"ctlb_watch: {e} (did the dataplane stop?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
