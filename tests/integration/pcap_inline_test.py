#!/usr/bin/env python3
"""Integration test (issue 3, 8a and 8b): captures through the real
ctlb-dataplane on the real EAL, net_pcap rx -> tracking -> net_pcap tx.

For each capture: every packet is forwarded (policy forward) byte for byte
and in order, or exactly the packets `ctlbctl trace` calls invalid are
dropped (policy drop); the connection states the dataplane ends with equal
those of `ctlbctl trace` on the same capture. Then the same with two workers
and software hand-over: same states, each connection tracked once.

usage: pcap_inline_test.py CTLB_DATAPLANE CTLBCTL CAPTURE...
"""

import os
import sys
import tempfile
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctlbtest  # noqa: E402

CONFIG = """mode: inline
file_prefix: {prefix}
lcores:
  main: 0
  workers: {workers}
{lcore_map}mempool:
  mbufs: 4095
  cache: 64
ports:
  - name: west
    devargs: net_pcap{n0},rx_pcap={capture},{west_tx}
    peer: east
  - name: east
    devargs: net_pcap{n1},rx_pcap={empty},{east_tx}
    peer: west
tracking:
  capacity_v4: 4096
  capacity_v6: 1024
  invalid_policy: {policy}
"""

failures = []


def check(cond, message):
    if not cond:
        failures.append(message)
        print(f"FAIL: {message}")


def run_case(dataplane, ctlbctl, capture, policy, workers, tmp):
    name = f"{os.path.basename(capture)} policy={policy} workers={workers}"
    prefix = f"ctlb-it-{os.getpid()}"
    _, frames = ctlbtest.read_pcap(capture)
    records, summary = ctlbtest.trace_json(ctlbctl, capture)
    empty = os.path.join(tmp, "empty.pcap")
    ctlbtest.write_pcap(empty, [])
    outs = [os.path.join(tmp, f"east-{q}.pcap") for q in range(workers)]
    west_outs = [os.path.join(tmp, f"west-{q}.pcap") for q in range(workers)]
    cfg = CONFIG.format(
        prefix=prefix, workers=list(range(1, workers + 1)), capture=capture, empty=empty, policy=policy,
        lcore_map="" if workers == 1 else "  map: \"0@0," + ",".join(f"{w}@1" for w in range(1, workers + 1)) + "\"\n",
        n0=0, n1=1,
        west_tx=",".join(f"tx_pcap={p}" for p in west_outs),
        east_tx=",".join(f"tx_pcap={p}" for p in outs))
    dp = ctlbtest.Dataplane(dataplane, cfg, tmp, prefix)
    try:
        n = len(frames)
        dropped = sum(1 for r in records if r["verdict"] == "invalid") if policy == "drop" else 0
        dp.wait_for(lambda s: s["port_west_rx_packets"] == n and
                    s["port_east_tx_packets"] + s["dropped_invalid"] + s["port_east_tx_dropped"] == n)
        rc, final = dp.stop()
    finally:
        dp.kill()
        ctlbtest.remove_dpdk_files(prefix)
    check(rc == 0, f"{name}: exit code {rc}")
    sent = []
    for out in outs:
        sent.extend(f for _, _, f in ctlbtest.read_pcap(out)[1])
    expected = [f for (_, _, f), r in zip(frames, records) if not (policy == "drop" and r["verdict"] == "invalid")]
    if workers == 1:
        check(sent == expected, f"{name}: forwarded frames differ from the expected ({len(sent)} vs {len(expected)})")
    else:
        # Two tx queues: the order across queues is free, the multiset is not.
        check(Counter(sent) == Counter(expected), f"{name}: forwarded frames differ as a multiset")
    check(final.get("dropped_invalid", 0) == dropped, f"{name}: dropped_invalid {final.get('dropped_invalid', 0)} != {dropped}")
    for state, count in summary["flows_by_state"].items():
        check(final.get(f"flows_{state}", 0) == count,
              f"{name}: flows in {state}: dataplane {final.get(f'flows_{state}', 0)}, trace {count}")
    states_dp = {k[6:]: v for k, v in final.items() if k.startswith("flows_") and k[6:].isupper()}
    check(sum(states_dp.values()) == sum(summary["flows_by_state"].values()),
          f"{name}: tracked connections {states_dp} vs trace {summary['flows_by_state']}")
    check(final.get("flows_created", 0) == summary["flows"],
          f"{name}: connections created {final.get('flows_created', 0)} vs trace {summary['flows']} (none twice)")
    if workers > 1:
        check(final.get("handover_out", 0) == final.get("handover_in", 0),
              f"{name}: hand-over out {final.get('handover_out', 0)} != in {final.get('handover_in', 0)}")
    print(f"ok: {name}: {len(frames)} packets, {len(sent)} forwarded, hand-overs {final.get('handover_out', 0)}, "
          f"states {summary['flows_by_state']}")


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    dataplane, ctlbctl, captures = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3:]
    for capture in captures:
        for policy, workers in (("forward", 1), ("drop", 1), ("forward", 2)):
            with tempfile.TemporaryDirectory(prefix="ctlb-it-") as tmp:
                run_case(dataplane, ctlbctl, os.path.abspath(capture), policy, workers, tmp)
    total = len(captures) * 3
    print(f"{total - len(set(f.split(':')[0] for f in failures))} passed, "
          f"{len(set(f.split(':')[0] for f in failures))} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
