#!/usr/bin/env python3
"""SYN flood through the real ctlb-dataplane (issue 6, item 4): real EAL,
net_pcap rx -> tracking -> net_pcap tx, ctlb-control beside it.

The capture: 64 connections open (3-way handshakes), then 20,000 SYNs from
distinct random sources in 198.18.0.0/15 interleaved with request/response
rounds of the 64 connections, against a table of 1024 IPv4 entries.

  * no limit: every frame is forwarded in order (policy forward), the
    connections' packets all pass as ESTABLISHED (fast path), the table stays
    at its capacity, the flood evicts only half-open entries (64 stay
    ESTABLISHED), and `ctlbctl stats` and Prometheus show flows_half_open and
    flows_evicted;
  * tracking.new_flow_limit {rate: 100, burst: 200}: the connections' packets
    all come out byte for byte, the SYNs over the limit are dropped and
    counted (new_flows_rate_limited, equal to the SYNs missing from the
    output), the connections created stay within burst + rate x run time, and
    nothing is evicted.

usage: syn_flood_test.py CTLB_DATAPLANE CTLB_CONTROL CTLBCTL
"""

import os
import random
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import ctlbtest  # noqa: E402

CONNECTIONS = 64
FLOOD_SYNS = 20000
ROUND_EVERY = 250  # flood SYNs between two rounds of the connections
CAPACITY = 1024
SERVER = bytes([198, 19, 0, 1])
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")

CONFIG = """mode: inline
file_prefix: {prefix}
lcores:
  main: 0
  workers: [1]
  map: "0@0,1@1"
mempool:
  mbufs: 8191
  cache: 64
ports:
  - name: west
    devargs: net_pcap0,rx_pcap={capture},tx_pcap={west_out}
    peer: east
  - name: east
    devargs: net_pcap1,rx_pcap={empty},tx_pcap={east_out}
    peer: west
tracking:
  capacity_v4: {capacity}
  capacity_v6: 1024
  invalid_policy: forward
{limit}control:
  socket: {socket}
  metrics: 127.0.0.1:{metrics}
"""

check = ctlbtest.Checks()
failures = check.failures


def checksum(data):
    return 0xFFFF - ctlbtest.ones_complement_sum(data) & 0xFFFF


def tcp_frame(src, dst, sport, dport, flags, seq, ack, payload=b""):
    """An Ethernet/IPv4/TCP frame with valid checksums."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    frame = (MAC_B + MAC_A if src != SERVER else MAC_A + MAC_B) + b"\x08\x00" + ip + tcp
    return frame + b"\0" * max(0, 60 - len(frame))


SYN, ACK, PSH = 0x02, 0x10, 0x08


def make_capture():
    """Returns (frames, is_flood flags)."""
    rng = random.Random(6)
    frames, flood = [], []
    conns = []
    for i in range(CONNECTIONS):
        client = bytes([10, 0, i // 250, 1 + i % 250])
        c = {"addr": client, "port": 40000 + i, "cseq": rng.getrandbits(32), "sseq": rng.getrandbits(32)}
        conns.append(c)
        frames += [tcp_frame(client, SERVER, c["port"], 80, SYN, c["cseq"], 0),
                   tcp_frame(SERVER, client, 80, c["port"], SYN | ACK, c["sseq"], (c["cseq"] + 1) & 0xFFFFFFFF),
                   tcp_frame(client, SERVER, c["port"], 80, ACK, (c["cseq"] + 1) & 0xFFFFFFFF,
                             (c["sseq"] + 1) & 0xFFFFFFFF)]
        c["cseq"] = (c["cseq"] + 1) & 0xFFFFFFFF
        c["sseq"] = (c["sseq"] + 1) & 0xFFFFFFFF
        flood += [False] * 3
    sources = set()
    for n in range(FLOOD_SYNS):
        while True:
            a = 0xC6120000 | rng.getrandbits(17)  # 198.18.0.0/15
            p = rng.randrange(1024, 65536)
            if (a, p) not in sources and (a >> 8) != 0xC61300:  # not the server's /24
                sources.add((a, p))
                break
        frames.append(tcp_frame(struct.pack("!I", a), SERVER, p, 80, SYN, rng.getrandbits(32), 0))
        flood.append(True)
        if (n + 1) % ROUND_EVERY == 0:
            for c in conns:
                frames.append(tcp_frame(c["addr"], SERVER, c["port"], 80, ACK | PSH, c["cseq"], c["sseq"], b"q" * 32))
                c["cseq"] = (c["cseq"] + 32) & 0xFFFFFFFF
                frames.append(tcp_frame(SERVER, c["addr"], 80, c["port"], ACK | PSH, c["sseq"], c["cseq"], b"r" * 64))
                c["sseq"] = (c["sseq"] + 64) & 0xFFFFFFFF
                flood += [False, False]
    return frames, flood


def run(name, binaries, frames, flood, limit):
    dataplane, control, ctlbctl = binaries
    prefix = f"ctlb-flood-{os.getpid()}"
    n = len(frames)
    with tempfile.TemporaryDirectory(prefix="ctlb-flood-") as tmp:
        capture = os.path.join(tmp, "in.pcap")
        ctlbtest.write_pcap(capture, [(1, i % 1000000, f) for i, f in enumerate(frames)])
        empty = os.path.join(tmp, "empty.pcap")
        ctlbtest.write_pcap(empty, [])
        sock = os.path.join(tmp, "control.sock")
        metrics = ctlbtest.free_tcp_port()
        limit_text = f"  new_flow_limit: {{rate: {limit[0]}, burst: {limit[1]}}}\n" if limit else ""
        cfg = CONFIG.format(prefix=prefix, capture=capture, empty=empty, capacity=CAPACITY, limit=limit_text,
                            west_out=os.path.join(tmp, "west_out.pcap"), east_out=os.path.join(tmp, "east_out.pcap"),
                            socket=sock, metrics=metrics)
        dp = ctlbtest.Dataplane(dataplane, cfg, tmp, prefix)
        ctl = None
        try:
            t0 = time.monotonic()
            dp.wait_ready()
            dp.wait_for(lambda s: s["port_west_rx_packets"] == n and
                        s["port_east_tx_packets"] + s["new_flows_rate_limited"] + s["port_east_tx_dropped"] == n,
                        timeout=60)
            elapsed = time.monotonic() - t0  # an upper bound of the time the tokens had to refill
            ctl = subprocess.Popen([control, "--config", dp.config], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            st = ctlbtest.wait_until(lambda: ctlbtest.ctlbctl_stats(ctlbctl, sock), 30, "ctlbctl stats to answer")
            prom = ctlbtest.scrape_prometheus(f"127.0.0.1:{metrics}")
            ctl.terminate()
            ctl.wait(timeout=10)
            rc, final = dp.stop()
        finally:
            if ctl and ctl.poll() is None:
                ctl.kill()
                ctl.wait()
            dp.kill()
            ctlbtest.remove_dpdk_files(prefix)
        out = [f for _, _, f in ctlbtest.read_pcap(os.path.join(tmp, "east_out.pcap"))[1]]

    check(rc == 0, f"{name}: exit code {rc}")
    legit = [f for f, fl in zip(frames, flood) if not fl]
    legit_set = set(legit)
    out_legit = [f for f in out if f in legit_set]
    out_flood = len(out) - len(out_legit)
    check(out_legit == legit, f"{name}: the connections' packets out ({len(out_legit)}) differ from those in "
                              f"({len(legit)})")
    limited = final.get("new_flows_rate_limited", 0)
    check(out_flood + limited == FLOOD_SYNS, f"{name}: flood SYNs out {out_flood} + rate-limited {limited} != "
                                             f"{FLOOD_SYNS}")
    check(final.get("flows_ESTABLISHED", 0) == CONNECTIONS,
          f"{name}: flows_ESTABLISHED {final.get('flows_ESTABLISHED', 0)} != {CONNECTIONS}")
    rounds = FLOOD_SYNS // ROUND_EVERY
    check(final.get("fast_path", 0) == 2 * CONNECTIONS * rounds,
          f"{name}: fast_path {final.get('fast_path', 0)} != {2 * CONNECTIONS * rounds} (every data packet in window)")
    check(final.get("invalid", 0) == 0, f"{name}: invalid {final.get('invalid', 0)}")
    tracked = sum(v for k, v in final.items() if k.startswith("flows_") and k[6:].isupper())
    check(tracked <= CAPACITY, f"{name}: {tracked} connections tracked in a table of {CAPACITY}")
    half_open = final.get("flows_half_open", 0)
    check(half_open == tracked - CONNECTIONS, f"{name}: flows_half_open {half_open} != tracked {tracked} - "
                                              f"{CONNECTIONS}")
    # ctlbctl stats and Prometheus show the flood as the final counters do.
    for key in ("flows_half_open", "flows_evicted", "new_flows_rate_limited", "flows_created"):
        check(st.get(key) == final.get(key, 0), f"{name}: ctlbctl stats {key} {st.get(key)} != final "
                                                f"{final.get(key, 0)}")
    check(prom.get("ctlb_flows_half_open") == half_open,
          f"{name}: Prometheus ctlb_flows_half_open {prom.get('ctlb_flows_half_open')} != {half_open}")
    check(prom.get("ctlb_flows_evicted_total") == final.get("flows_evicted", 0),
          f"{name}: Prometheus ctlb_flows_evicted_total {prom.get('ctlb_flows_evicted_total')}")
    check(prom.get("ctlb_new_flows_rate_limited_total") == limited,
          f"{name}: Prometheus ctlb_new_flows_rate_limited_total {prom.get('ctlb_new_flows_rate_limited_total')}")
    created = final.get("flows_created", 0)
    evicted = final.get("flows_evicted", 0) + final.get("flows_reclaimed", 0)
    if limit is None:
        check(limited == 0, f"{name}: {limited} rate-limited without a limit")
        check(evicted > FLOOD_SYNS // 2, f"{name}: only {evicted} evictions: the flood should replace itself")
        check(tracked == CAPACITY or final.get("untracked_table_full", 0) == 0,
              f"{name}: table not full ({tracked}) but {final.get('untracked_table_full', 0)} untracked")
        check(created + final.get("untracked_table_full", 0) == CONNECTIONS + FLOOD_SYNS,
              f"{name}: created {created} + untracked != every SYN")
    else:
        rate, burst = limit
        bound = burst + rate * elapsed
        check(limited > 0, f"{name}: nothing rate-limited")
        check(CONNECTIONS < created <= bound, f"{name}: {created} connections created, limit allows {bound:.0f}")
        check(created + limited == CONNECTIONS + FLOOD_SYNS, f"{name}: created {created} + limited {limited}")
        check(evicted == 0, f"{name}: {evicted} evictions with the limit on")
    print(f"ok: {name}: {n} frames in {elapsed:.2f} s, {len(out)} out, created {created}, evicted {evicted}, "
          f"rate-limited {limited}, half-open {half_open}, established {final.get('flows_ESTABLISHED', 0)}",
          flush=True)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    binaries = [os.path.abspath(a) for a in sys.argv[1:4]]
    frames, flood = make_capture()
    run("no limit", binaries, frames, flood, None)
    run("new_flow_limit 100/s burst 200", binaries, frames, flood, (100, 200))
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
