#!/usr/bin/env python3
"""Jumbo frames (ports[i].mtu) through the real ctlb-dataplane on the real EAL.

Topology, in namespaces this test creates (and removes), every veth at MTU 9000:

  [ns client 198.18.30.1] c0 == c1 [ns dp: ctlb-dataplane] s1 == s0 [ns server 198.18.30.2]

1. A real Linux TCP connection with MTU 9000 on both sides (MSS 8948 with
   timestamps): the client sends 1 MiB, the server answers with its SHA-256
   and 1 MiB of its own, both byte-exact, through ctlb (mode inline,
   invalid_policy drop) with mtu 9000 on ports net_pcap iface=c1 / iface=s1
   and a data room that holds a whole 9026-byte frame. The dataplane's log
   shows the MTU ethdev holds (9000); its counters show one flow, tracked to
   TIME_WAIT, no invalid packet, nothing dropped, and frames that average
   over 2600 bytes (1 MiB each way at MTU 1500 would take over 700 frames).
2. net_ring (it has rx scatter and multi-segment tx) with mtu 9000 and the
   default data room: rx scatter on, frames up to 5 mbufs of 2048 bytes,
   multi-segment tx asked for and granted on both ports, mbuf fast free
   no longer asked for.
3. What the start refuses, one stderr line each: mtu 9000 on net_pcap with
   the default data room (no rx scatter: raise mempool.data_room to 9154),
   and mtu 9000 on net_af_packet.

Why not net_af_packet for (1): DPDK 22.11's net_af_packet reports
max_rx_pktlen 1518 (RTE_ETHER_MAX_LEN), and rte_eth_dev_configure refuses
any MTU whose frame exceeds it (MTU + 18 > 1518), so it cannot be given MTU
9000 at all; (3) asserts ctlb's error for it. (Its rx path ignores the
ethdev MTU: with framesz over 9014 it does carry jumbo frames at mtu 1500.)
net_pcap on a live interface has no such limit, hence (1) runs on it.

usage: jumbo_mtu_test.py CTLB_DATAPLANE
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import ctlbtest  # noqa: E402

PID = os.getpid()
CLIENT, SERVER, PORT = "198.18.30.1", "198.18.30.2", 9000
MTU = 9000
PAYLOAD = 1 << 20
TOPO = ctlbtest.VethTopology("ctlbjm", CLIENT, SERVER)
check = ctlbtest.Checks()
failures = check.failures
position = ctlbtest.position


def config(prefix, ports, mempool="  mbufs: 2047\n"):
    """An inline configuration of two ports: (name, devargs, extra keys)."""
    (a, da, xa), (b, db, xb) = ports
    return (f"mode: inline\nfile_prefix: {prefix}\nlcores:\n  main: 0\n  workers: [1]\n"
            f"mempool:\n{mempool}"
            f"ports:\n"
            f"  - name: {a}\n    devargs: {da}\n    peer: {b}\n    link_wait_ms: 100\n{xa}"
            f"  - name: {b}\n    devargs: {db}\n    peer: {a}\n    link_wait_ms: 100\n{xb}"
            f"tracking:\n  capacity_v4: 4096\n  capacity_v6: 1024\n  invalid_policy: drop\n")




def start(dataplane, tmp, name, text, prefix):
    """The dataplane in the namespace of c1 and s1; returns a ctlbtest.Dataplane."""
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    log = open(os.path.join(tmp, f"{name}.log"), "w+")
    dp = ctlbtest.Dataplane.__new__(ctlbtest.Dataplane)
    dp.prefix, dp.log = prefix, log
    dp.proc = subprocess.Popen(["ip", "netns", "exec", TOPO.dataplane, dataplane, "--config", path],
                               stdout=log, stderr=subprocess.STDOUT)
    return dp


def port_lines(output):
    return {m.group(1): m.group(0) for m in re.finditer(r"^ctlb: port (\w+): driver .*$", output, re.M)}


SERVER_CODE = f"""
import hashlib, os, socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("{SERVER}", {PORT}))
srv.listen(1)
print("listening", flush=True)
c, _ = srv.accept()
c.settimeout(30)
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
reply = os.urandom({PAYLOAD})
c.sendall(h.digest() + reply)
c.close()
print(n, h.hexdigest(), hashlib.sha256(reply).hexdigest(), flush=True)
"""

CLIENT_CODE = f"""
import hashlib, os, socket
data = os.urandom({PAYLOAD})
s = socket.create_connection(("{SERVER}", {PORT}), timeout=30)
mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    got += b
s.close()
print(mss, hashlib.sha256(data).hexdigest(), got[:32].hex(), len(got) - 32, hashlib.sha256(got[32:]).hexdigest(),
      flush=True)
"""


def transfer(dataplane, tmp):
    prefix = f"ctlb-jm-{PID}"
    text = config(prefix, [("client", "net_pcap0,iface=c1", f"    mtu: {MTU}\n"),
                           ("server", "net_pcap1,iface=s1", f"    mtu: {MTU}\n")],
                  # 9088 bytes after the headroom: a 9026-byte frame in one mbuf
                  mempool="  mbufs: 2047\n  cache: 64\n  data_room: 9216\n")
    dp = start(dataplane, tmp, "transfer", text, prefix)
    procs = [dp.proc]
    try:
        dp.wait_ready()
        lines = port_lines(dp.output())
        for name in ("client", "server"):
            check(f"MTU {MTU} (frames up to 9026 bytes: one mbuf of 9088)" in lines.get(name, ""),
                  f"port {name}: ethdev holds MTU {MTU}, frames in one mbuf: {lines.get(name)}")
            check("tx offloads 0x0 of wanted 0x10000" in lines.get(name, ""),
                  f"port {name}: no chains, so mbuf fast free is what is wanted (not multi-segment tx)")

        server = subprocess.Popen(["ip", "netns", "exec", TOPO.server, sys.executable, "-c", SERVER_CODE],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(server)
        if server.stdout.readline().strip() != "listening":
            raise RuntimeError("server did not start")
        t0 = time.monotonic()
        client = subprocess.run(["ip", "netns", "exec", TOPO.client, sys.executable, "-c", CLIENT_CODE],
                                capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - t0
        out, _ = server.communicate(timeout=30)
        check(client.returncode == 0 and server.returncode == 0,
              f"client and server finished (rc {client.returncode}, {server.returncode}) {client.stderr.strip()}")
        if client.returncode == 0 and server.returncode == 0:
            mss, sent, echoed, got_len, got = client.stdout.split()
            n, received, reply = out.split()
            check(int(mss) >= MTU - 40 - 12, f"TCP MSS {mss}: the connection runs at MTU {MTU}")
            check(int(n) == PAYLOAD and received == sent and echoed == sent,
                  f"client -> server: {n} bytes, SHA-256 equal on both sides")
            check(int(got_len) == PAYLOAD and got == reply, f"server -> client: {got_len} bytes, SHA-256 equal")
            print(f"transfer: 2 x {PAYLOAD} bytes in {elapsed:.2f} s")

        # Closed by FINs: it reaches TIME_WAIT (a RST after that, which one
        # end may send, takes it on to CLOSE, as nf_conntrack does).
        stats = dp.wait_for(lambda s: s.get("transition_LAST_ACK_TIME_WAIT", 0) == 1 or s["invalid"] > 0, timeout=30)
        check(stats.get("transition_LAST_ACK_TIME_WAIT", 0) == 1 and stats["flows_created"] == 1 and
              stats["flows_TIME_WAIT"] + stats["flows_CLOSE"] == 1,
              f"one flow, tracked to TIME_WAIT (created {stats['flows_created']})")
        for key in ("invalid", "dropped_invalid", "dropped_no_peer", "handover_dropped", "port_client_tx_dropped",
                    "port_server_tx_dropped"):
            check(stats[key] == 0, f"{key} = {stats[key]}")
        for port in ("client", "server"):
            pkts, nbytes = stats[f"port_{port}_rx_packets"], stats[f"port_{port}_rx_bytes"]
            check(nbytes >= PAYLOAD and nbytes / pkts > 2600,
                  f"port {port}: {pkts} frames, {nbytes} bytes in (average {nbytes // max(pkts, 1)}): jumbo frames")
        check(stats["tcp_packets"] >= stats["port_client_rx_packets"] + stats["port_server_rx_packets"]
              - stats.get("parse_not_ip", 0) - stats.get("parse_non_tcp", 0),
              f"every TCP frame tracked ({stats['tcp_packets']} TCP packets)")
        rc, _final = dp.stop()
        check(rc == 0, f"dataplane exit code {rc}")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        ctlbtest.remove_dpdk_files(prefix)


def scatter(dataplane, tmp):
    prefix = f"ctlb-jm-ring-{PID}"
    dp = start(dataplane, tmp, "ring",
               config(prefix, [("a", "net_ring0", f"    mtu: {MTU}\n"), ("b", "net_ring1", "")]), prefix)
    try:
        dp.wait_ready()
        lines = port_lines(dp.output())
        check("MTU 9000 (frames up to 9026 bytes: rx scatter, up to 5 mbufs of 2048), rx offloads 0x2000, "
              "tx offloads 0x8000 of wanted 0x8000" in lines.get("a", ""),
              f"net_ring mtu 9000, data room 2176: rx scatter and multi-segment tx: {lines.get('a')}")
        check("MTU 1500 (frames up to 1526 bytes: one mbuf of 2048), rx offloads 0x0, "
              "tx offloads 0x8000 of wanted 0x8000" in lines.get("b", ""),
              f"its peer at mtu 1500 may send the chains: multi-segment tx, no fast free: {lines.get('b')}")
        rc, _ = dp.stop()
        check(rc == 0, f"dataplane exit code {rc}")
    finally:
        dp.kill()
        ctlbtest.remove_dpdk_files(prefix)


def refused(dataplane, tmp):
    cases = [
        ("pcap", "net_pcap0,iface=c1", "",
         "expected an MTU whose largest frame (the MTU + 26 bytes of Ethernet header, two VLAN tags and CRC) fits "
         "in one mbuf of 2048 bytes (mempool.data_room 2176 less 128 of headroom: an MTU of at most 2022), as "
         "net_pcap cannot receive a frame in several mbufs (no rx scatter): raise mempool.data_room to 9154 or "
         "lower the MTU (found '9000')"),
        ("afpacket", "net_af_packet0,iface=c1,qpairs=1,blocksz=16384,framesz=10240,framecnt=64",
         "  data_room: 10368\n",
         "expected an MTU in 46..1500, what net_af_packet takes (its largest frame is 1518 bytes) (found '9000')"),
    ]
    for name, devargs, room, expected in cases:
        prefix = f"ctlb-jm-{name}-{PID}"
        text = config(prefix, [("client", devargs, f"    mtu: {MTU}\n"), ("server", "net_null0", "")],
                      mempool="  mbufs: 2047\n" + room)
        path = os.path.join(tmp, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(text)
        try:
            r = subprocess.run(["ip", "netns", "exec", TOPO.dataplane, dataplane, "--config", path],
                               capture_output=True, text=True, timeout=60)
        finally:
            ctlbtest.remove_dpdk_files(prefix)
        line = f"ctlb-dataplane: {path}:{position(text, 'mtu: 9000', 5)}: ports[0].mtu: {expected}"
        check(r.returncode == 1 and r.stderr == line + "\n",
              f"{name}: exit 1 (got {r.returncode}), one line: {line}" +
              ("" if r.stderr == line + "\n" else f"\n  got: {r.stderr!r}"))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    for tool in ("ip", "ethtool"):
        if not shutil.which(tool):
            ctlbtest.skip(f"needs {tool}")
    dataplane = os.path.abspath(sys.argv[1])
    try:
        try:
            TOPO.setup()
            for ns, dev in ((TOPO.client, "c0"), (TOPO.server, "s0"), (TOPO.dataplane, "c1"),
                            (TOPO.dataplane, "s1")):
                TOPO.in_ns(ns, "ip", "link", "set", dev, "mtu", str(MTU))
        except subprocess.CalledProcessError as e:
            ctlbtest.skip(f"cannot create namespaces/veths: {e.stderr.strip()}")
        with tempfile.TemporaryDirectory(prefix="ctlb-jm-") as tmp:
            transfer(dataplane, tmp)
            scatter(dataplane, tmp)
            refused(dataplane, tmp)
    finally:
        TOPO.teardown()
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
