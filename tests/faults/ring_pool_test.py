#!/usr/bin/env python3
"""Fault tests (issue 6, item 5): tx ring full and mbuf pool exhausted, on
the real EAL with real vdevs. No mocks, no sleeps as synchronisation.

One topology, run twice with different mempools:

  west (net_pcap: 6000 TCP connections, 45000 frames)  -> east (net_pcap tx file), and back
  in1, in2 (net_pcap: 20000 UDP frames each)           -> ring (net_ring), read back -> in1's tx file

The ring port's tx ring (1023 slots, one per queue) is filled by two ports
and read by one worker's rx at the rate of one: it fills up and refuses
packets. (A net_ring port's rx and tx share one ring, and ctlb polls every
port it has, so a ring with no reader at all cannot be configured; a reader
at half the writers' rate fills it just as surely.)

  1. tx ring full (16383 mbufs): the ring refuses about half the flood; each
     refused packet is counted in port_ring_tx_dropped and freed (in1 + in2
     received = ring sent + ring dropped, exactly), the ring drains once the
     flood is over (ring received = ring sent = in1's tx file), no mbuf is
     lost, and the TCP pair beside it is untouched: every frame forwarded
     byte for byte, in order, connection states equal `ctlbctl trace` of the
     input, nothing invalid.
  2. mbuf pool exhausted (1023 mbufs, no cache): the ring holds every mbuf,
     the pcap ports cannot allocate; each frame they lose is counted in
     port_<name>_rx_nombuf (frames in each capture = received + rx_nombuf,
     exactly). The TCP port loses frames too: what the tracker saw is exactly
     what east sent (a subsequence of the input missing rx_nombuf frames),
     the connection states equal `ctlbctl trace` of east's output, and once
     the flood is over forwarding resumes (the input's last 10000 frames all
     reach east, in order). ctlb-control shows the same counters:
     `ctlbctl stats` (text and JSON) and Prometheus (ctlb_port_rx_nombuf_total).

usage: ring_pool_test.py CTLB_DATAPLANE CTLB_CONTROL CTLBCTL
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib  # noqa: E402
from faultlib import ctlbtest  # noqa: E402

PID = os.getpid()
FLOOD = 20000
CONNECTIONS = 6000
RECOVERY_TAIL = 10000
STOP_DEADLINE_S = 10

CONFIG = """mode: inline
file_prefix: {prefix}
lcores:
  main: 0
  workers: [1]
mempool:
  mbufs: {mbufs}
  cache: {cache}
ports:
  - name: in1
    devargs: net_pcap0,rx_pcap={tmp}/flood1.pcap,tx_pcap={tmp}/in1-out.pcap
    peer: ring
  - name: in2
    devargs: net_pcap1,rx_pcap={tmp}/flood2.pcap,tx_pcap={tmp}/in2-out.pcap
    peer: ring
  - name: ring
    devargs: net_ring0
    peer: in1
  - name: west
    devargs: net_pcap2,rx_pcap={tmp}/tcp.pcap,tx_pcap={tmp}/west-out.pcap
    peer: east
  - name: east
    devargs: net_pcap3,rx_pcap={tmp}/empty.pcap,tx_pcap={tmp}/east-out.pcap
    peer: west
tracking:
  capacity_v4: 16384
  capacity_v6: 1024
  invalid_policy: forward
control:
  socket: {tmp}/control.sock
  metrics: 127.0.0.1:{metrics}
"""

check = faultlib.Checks()


def settled(tcp_frames):
    """The run is over when every capture has been read to its end and the
    ring has drained (device counters included: rx_nombuf frames are read
    from the file too)."""
    def done(s):
        return (s["port_west_rx_packets"] + s["port_west_rx_nombuf"] == tcp_frames and
                s["port_east_tx_packets"] == s["port_west_rx_packets"] and
                all(s[f"port_{p}_rx_packets"] + s[f"port_{p}_rx_nombuf"] == FLOOD for p in ("in1", "in2")) and
                s["port_ring_rx_packets"] == s["port_ring_tx_packets"] and
                s["port_ring_tx_packets"] + s["port_ring_tx_dropped"] ==
                s["port_in1_rx_packets"] + s["port_in2_rx_packets"] and
                s["port_in1_tx_packets"] == s["port_ring_rx_packets"])
    return done


def start(dataplane, tmp, name, mbufs, cache):
    prefix = f"ctlb-fp-{name}-{PID}"
    cfg = CONFIG.format(prefix=prefix, mbufs=mbufs, cache=cache, tmp=tmp, metrics=ctlbtest.free_tcp_port())
    return ctlbtest.Dataplane(dataplane, cfg, tmp, prefix)


def stop(dp, name):
    t0 = time.monotonic()
    rc, final = dp.stop(timeout=STOP_DEADLINE_S)
    took = time.monotonic() - t0
    check(rc == 0, f"{name}: the dataplane stops with exit code 0 after the fault ({rc}, {took:.2f} s)")
    return final


def common_accounting(final, name):
    """Every frame of every capture is accounted for, on every port."""
    v = lambda k: final.get(k, 0)  # noqa: E731 (final counters list non-zero values only)
    for p in ("in1", "in2"):
        check(v(f"port_{p}_rx_packets") + v(f"port_{p}_rx_nombuf") == FLOOD,
              f"{name}: {p}: {FLOOD} frames in = {v(f'port_{p}_rx_packets')} received + "
              f"{v(f'port_{p}_rx_nombuf')} rx_nombuf")
    received = v("port_in1_rx_packets") + v("port_in2_rx_packets")
    check(received == v("port_ring_tx_packets") + v("port_ring_tx_dropped"),
          f"{name}: ring: {received} flood frames received = {v('port_ring_tx_packets')} sent into the ring + "
          f"{v('port_ring_tx_dropped')} refused (tx_dropped)")
    check(v("port_ring_rx_packets") == v("port_ring_tx_packets") == v("port_in1_tx_packets"),
          f"{name}: the ring drained: {v('port_ring_rx_packets')} read back = sent into it = sent on in1")
    check(v("forwarded_untracked") == received + v("port_ring_rx_packets"),
          f"{name}: every UDP frame forwarded untracked once per port it entered ({v('forwarded_untracked')})")
    check(v("dropped_no_peer") == v("handover_dropped") == v("dropped_invalid") == 0,
          f"{name}: no other drop")


def tcp_states(final, ctlbctl, capture, name):
    states, created = faultlib.trace_states(ctlbctl, capture)
    got = faultlib.flow_states(final)
    check(got == states and final.get("flows_created", 0) == created,
          f"{name}: connection states {got}, {final.get('flows_created', 0)} created = `ctlbctl trace` of "
          f"{os.path.basename(capture)}: {states}, {created} created")


def ring_full(dataplane, ctlbctl, tmp, tcp_frames):
    name = "tx ring full"
    dp = start(dataplane, tmp, "ring", 16383, 64)
    try:
        dp.wait_ready()  # ports named and started: the counters have their keys
        t0 = time.monotonic()
        dp.wait_for(settled(len(tcp_frames)), timeout=60)
        took = time.monotonic() - t0
        final = stop(dp, name)
    finally:
        dp.kill()
        ctlbtest.remove_dpdk_files(dp.prefix)
    v = lambda k: final.get(k, 0)  # noqa: E731
    print(f"{name}: settled in {took:.2f} s; ring sent {v('port_ring_tx_packets')}, refused "
          f"{v('port_ring_tx_dropped')}", flush=True)
    check(v("port_ring_tx_dropped") > FLOOD // 4,
          f"{name}: the ring filled up and refused packets ({v('port_ring_tx_dropped')} counted in tx_dropped)")
    check(all(v(f"port_{p}_rx_nombuf") == 0 for p in ("west", "east", "in1", "in2", "ring")),
          f"{name}: no mbuf shortage (16383 mbufs): refused packets were freed")
    common_accounting(final, name)
    out = [f for _, _, f in ctlbtest.read_pcap(os.path.join(tmp, "in1-out.pcap"))[1]]
    flood = {faultlib.udp_frame(i) for i in range(FLOOD)}
    check(len(out) == v("port_in1_tx_packets") and all(f in flood for f in out),
          f"{name}: in1's tx file holds the {len(out)} flood frames read back from the ring")
    east = [f for _, _, f in ctlbtest.read_pcap(os.path.join(tmp, "east-out.pcap"))[1]]
    check(east == tcp_frames, f"{name}: the TCP port beside the full ring forwarded all {len(tcp_frames)} frames "
                              f"byte for byte and in order ({len(east)})")
    check(v("invalid") == 0, f"{name}: no TCP packet invalid")
    tcp_states(final, ctlbctl, os.path.join(tmp, "tcp.pcap"), name)


def pool_exhausted(dataplane, control, ctlbctl, tmp, tcp_frames):
    name = "mbuf pool exhausted"
    dp = start(dataplane, tmp, "pool", 1023, 0)
    ctl = None
    sock = os.path.join(tmp, "control.sock")
    try:
        dp.wait_ready()  # ports named and started: the counters have their keys
        t0 = time.monotonic()
        live = dp.wait_for(settled(len(tcp_frames)), timeout=60)
        took = time.monotonic() - t0
        # ctlb-control attached to the dataplane after the fault shows the
        # device counters too: ctlbctl stats (JSON and text) and Prometheus.
        ctl = subprocess.Popen([control, "--config", dp.config], stdout=open(os.path.join(tmp, "control.log"), "w"),
                               stderr=subprocess.STDOUT)
        shown = ctlbtest.wait_until(lambda: ctlbtest.ctlbctl_stats(ctlbctl, sock), 20, "ctlb-control to answer")
        text = subprocess.run([ctlbctl, "stats", "--socket", sock], capture_output=True, text=True).stdout
        table = faultlib.table_flows(ctlbctl, sock)
        metrics_addr = [l.split()[1] for l in open(dp.config) if l.strip().startswith("metrics:")][0]
        body = urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5).read().decode()
        prom = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                k, val = line.rsplit(" ", 1)
                prom[k] = float(val)
        ctl.send_signal(signal.SIGTERM)
        check(ctl.wait(timeout=10) == 0, f"{name}: ctlb-control stops cleanly")
        final = stop(dp, name)
    finally:
        if ctl and ctl.poll() is None:
            ctl.kill()
            ctl.wait()
        dp.kill()
        ctlbtest.remove_dpdk_files(dp.prefix)
    v = lambda k: final.get(k, 0)  # noqa: E731
    nombuf = {p: v(f"port_{p}_rx_nombuf") for p in ("west", "in1", "in2")}
    print(f"{name}: settled in {took:.2f} s; rx_nombuf {nombuf}", flush=True)
    check(nombuf["west"] > 0 and sum(nombuf.values()) > 0,
          f"{name}: the pool ran dry and the ports counted what they could not receive: rx_nombuf {nombuf}")
    common_accounting(final, name)
    check(v("port_west_rx_packets") + nombuf["west"] == len(tcp_frames),
          f"{name}: west: {len(tcp_frames)} TCP frames in = {v('port_west_rx_packets')} received + "
          f"{nombuf['west']} rx_nombuf")
    east = [f for _, _, f in ctlbtest.read_pcap(os.path.join(tmp, "east-out.pcap"))[1]]
    check(len(east) == v("port_west_rx_packets") == v("port_east_tx_packets") and
          faultlib.is_subsequence(east, tcp_frames),
          f"{name}: east sent every TCP frame west received ({len(east)}), in order, none altered")
    check(east[-RECOVERY_TAIL:] == tcp_frames[-RECOVERY_TAIL:],
          f"{name}: forwarding resumed once the flood was over: the last {RECOVERY_TAIL} TCP frames all reached "
          f"east")
    tcp_states(final, ctlbctl, os.path.join(tmp, "east-out.pcap"), name)
    expected = faultlib.trace_flows(ctlbctl, os.path.join(tmp, "east-out.pcap"))
    wrong = [f for f in set(expected) | set(table) if expected.get(f) != table.get(f)]
    check(not wrong and len(table) == sum(faultlib.flow_states(final).values()),
          f"{name}: each of the {len(table)} entries (`ctlbctl flows`) has the state and endpoint states `ctlbctl "
          f"trace` gives it; differing: {wrong[:5]}")
    # The exporters agree with the final counters (the dataplane was idle).
    keys = [f"port_{p}_rx_nombuf" for p in ("west", "in1", "in2")] + ["port_ring_tx_dropped", "port_west_rx_packets"]
    check(all(live[k] == shown[k] == v(k) for k in keys),
          f"{name}: telemetry, ctlbctl stats --json and the final counters agree: " +
          ", ".join(f"{k}={shown[k]}" for k in keys))
    check(f"device: rx no mbuf {nombuf['west']}," in text, f"{name}: ctlbctl stats shows west's rx no mbuf "
                                                          f"({nombuf['west']})")
    check(all(prom.get(f'ctlb_port_rx_nombuf_total{{port="{p}"}}') == nombuf[p] for p in nombuf) and
          prom.get('ctlb_port_rx_nombuf_total{port="ring"}') == 0,
          f"{name}: Prometheus ctlb_port_rx_nombuf_total per port = {nombuf}")


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    dataplane, control, ctlbctl = (os.path.abspath(a) for a in sys.argv[1:4])
    tmp = tempfile.mkdtemp(prefix="ctlb-fp-")
    t0 = time.monotonic()
    try:
        tcp_frames, _ = faultlib.connections_capture(CONNECTIONS)
        faultlib.write_capture(os.path.join(tmp, "tcp.pcap"), tcp_frames)
        ctlbtest.write_pcap(os.path.join(tmp, "empty.pcap"), [])
        flood = [faultlib.udp_frame(i) for i in range(FLOOD)]
        faultlib.write_capture(os.path.join(tmp, "flood1.pcap"), flood)
        faultlib.write_capture(os.path.join(tmp, "flood2.pcap"), flood)
        for case in (lambda: ring_full(dataplane, ctlbctl, tmp, tcp_frames),
                     lambda: pool_exhausted(dataplane, control, ctlbctl, tmp, tcp_frames)):
            try:
                case()
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
