#!/usr/bin/env python3
"""Fault test (issue 6, item 5): SIGTERM to ctlb-dataplane under full load.

The dataplane forwards a capture of 1000 TCP connections replayed from
memory without end (net_pcap infinite_rx) into net_null, as fast as it can.
Once millions of packets have gone through, it gets SIGTERM. It must:
  - exit with code 0 within a deadline, saying it stops and printing its
    final counters, with no error line;
  - account for every packet it received: rx = tx + every counted drop,
    exactly (with two workers, packets handed to the other worker in the
    last instant included: hand-overs out = in);
  - leave its connection table consistent: exactly the capture's 1000
    connections tracked, every TCP packet tracked once;
  - leave nothing behind: no /var/run/dpdk/<prefix>, no hugepage file of
    its prefix.
Run with one worker, then three times with two (software hand-over between
them; packets caught in a hand-over ring at the stop were lost uncounted
before ctlb-dataplane handled them after its workers returned, in about three
runs of four).

usage: sigterm_test.py CTLB_DATAPLANE
"""

import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib  # noqa: E402
from faultlib import ctlbtest  # noqa: E402

PID = os.getpid()
CONNECTIONS = 1000
LOAD_PACKETS = 2_000_000
EXIT_DEADLINE_S = 5.0

CONFIG = """mode: inline
file_prefix: {prefix}
lcores:
  main: 0
  workers: {workers}
{lcore_map}mempool:
  mbufs: 16383
  cache: 64
ports:
  - name: west
    devargs: net_pcap0,rx_pcap={capture},infinite_rx=1{west_tx}
    peer: east
  - name: east
    devargs: net_null0,no-rx=1
    peer: west
tracking:
  capacity_v4: 4096
  capacity_v6: 1024
  invalid_policy: forward
"""

check = faultlib.Checks()

# Every counter that stands for a packet received and not sent.
DROPS = ("port_east_tx_dropped", "dropped_invalid", "dropped_no_peer", "handover_dropped")


def run(dataplane, tmp, capture, workers, round_):
    name = f"SIGTERM under load, {workers} worker{'s' if workers > 1 else ''}, run {round_}"
    prefix = f"ctlb-fs-{workers}-{round_}-{PID}"
    cfg = CONFIG.format(prefix=prefix, workers=list(range(1, workers + 1)), capture=capture,
                        lcore_map="" if workers == 1 else
                        "  map: \"0@0," + ",".join(f"{w}@1" for w in range(1, workers + 1)) + "\"\n",
                        west_tx="".join(",tx_pcap=/dev/null" for _ in range(workers)))
    dp = ctlbtest.Dataplane(dataplane, cfg, tmp, prefix)
    try:
        dp.wait_ready()  # ports named and started: the counters have their keys
        live = dp.wait_for(lambda s: s["port_west_rx_packets"] >= LOAD_PACKETS, timeout=60)
        t0 = time.monotonic()
        dp.proc.send_signal(signal.SIGTERM)
        rc = dp.proc.wait(timeout=30)
        took = time.monotonic() - t0
        left = ctlbtest.dpdk_leftovers(prefix)
        _, final = dp.stop()  # the process has exited: parses the final counters only
    finally:
        dp.kill()
        ctlbtest.remove_dpdk_files(prefix)
    out = dp.output()
    check(rc == 0 and took <= EXIT_DEADLINE_S,
          f"{name}: exit code {rc} {took:.2f} s after SIGTERM (deadline {EXIT_DEADLINE_S} s)")
    check("ctlb: stopping" in out and "ctlb: final counters" in out and
          not any(line.startswith("ctlb-dataplane:") or "EAL: Error" in line for line in out.splitlines()),
          f"{name}: says it stops, prints its final counters, no error line")
    v = lambda k: final.get(k, 0)  # noqa: E731 (non-zero values only are printed)
    rx = v("port_west_rx_packets")
    dropped = sum(v(k) for k in DROPS)
    check(rx >= live["port_west_rx_packets"] and rx == v("port_east_tx_packets") + dropped,
          f"{name}: every packet accounted for: {rx} received = {v('port_east_tx_packets')} sent + {dropped} "
          f"counted drops ({', '.join(f'{k} {v(k)}' for k in DROPS if v(k))})")
    check(v("port_west_rx_bytes") >= v("port_east_tx_bytes") and v("port_west_rx_nombuf") == 0,
          f"{name}: bytes in {v('port_west_rx_bytes')} >= out {v('port_east_tx_bytes')}, no mbuf shortage")
    if workers > 1:
        check(v("handover_out") == v("handover_in") > 0,
              f"{name}: every packet handed over was handled: out {v('handover_out')} = in {v('handover_in')}")
    tracked = v("tcp_packets")
    check(tracked == rx - v("handover_dropped"), f"{name}: every TCP packet received tracked once ({tracked})")
    states = faultlib.flow_states(final)
    check(sum(states.values()) == CONNECTIONS,
          f"{name}: the table holds exactly the capture's {CONNECTIONS} connections: {states}")
    check(not left, f"{name}: nothing left behind (runtime directory, hugepage files): {left}")
    print(f"{name}: {rx} packets in {took:.2f} s to exit", flush=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    dataplane = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="ctlb-fs-")
    t0 = time.monotonic()
    try:
        frames, _ = faultlib.connections_capture(CONNECTIONS)
        capture = os.path.join(tmp, "tcp.pcap")
        faultlib.write_capture(capture, frames)
        for workers, round_ in ((1, 1), (2, 1), (2, 2), (2, 3)):
            try:
                run(dataplane, tmp, capture, workers, round_)
            except Exception as e:  # report, then the next case
                check.error(e)
                log = os.path.join(tmp, "dataplane.log")
                if os.path.exists(log):
                    print("--- dataplane.log:\n" + open(log).read()[-3000:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"took {time.monotonic() - t0:.1f} s")
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
