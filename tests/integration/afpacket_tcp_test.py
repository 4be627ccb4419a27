#!/usr/bin/env python3
"""Integration test (issue 3, 8c): real Linux TCP through ctlb-dataplane.

Topology, all in namespaces this test creates (and removes):

  [ns client 198.18.10.1] c0 == c1 [ns dp: ctlb-dataplane, net_af_packet on c1 and s1] s1 == s0 [ns server 198.18.10.2]

The dataplane forwards inline between its two af_packet ports. A real HTTP
server and real clients exchange data through it; the test checks, from the
dataplane's telemetry, that a held-open connection is ESTABLISHED, that
finished connections reach TIME_WAIT as the kernel endpoints close them, and
that no packet of real traffic was called invalid.

usage: afpacket_tcp_test.py CTLB_DATAPLANE
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctlbtest  # noqa: E402

PID = os.getpid()
CLIENT, SERVER, PORT = "198.18.10.1", "198.18.10.2", 8080
REQUESTS = 10

CONFIG = f"""mode: inline
file_prefix: ctlb-af-{PID}
lcores:
  main: 0
  workers: [1]
mempool:
  mbufs: 4095
  cache: 64
ports:
  - name: client
    devargs: net_af_packet0,iface=c1,qpairs=1,blocksz=4096,framesz=2048,framecnt=512
    peer: server
  - name: server
    devargs: net_af_packet1,iface=s1,qpairs=1,blocksz=4096,framesz=2048,framecnt=512
    peer: client
tracking:
  capacity_v4: 4096
  capacity_v6: 1024
  invalid_policy: forward
"""


TOPO = ctlbtest.VethTopology("ctlbit", CLIENT, SERVER)


class Netns:
    """Runs a Python snippet in a namespace as a child process."""

    @staticmethod
    def python(ns, code, **kw):
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code], **kw)


SERVER_CODE = f"""
import socket, threading
def serve(c):
    data = b""
    while not data.endswith(b"\\n"):
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    if data.startswith(b"GET"):
        c.sendall(b"x" * 20000)
    c.close()          # the server closes first: it ends in TIME_WAIT
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("{SERVER}", {PORT}))
srv.listen(64)
print("listening", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT_CODE = f"""
import socket, sys
for i in range({REQUESTS}):
    s = socket.create_connection(("{SERVER}", {PORT}), timeout=10)
    s.sendall(b"GET\\n")
    got = 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
    s.close()
    assert got == 20000, got
print("done", flush=True)
"""

HOLD_CODE = f"""
import socket, sys
s = socket.create_connection(("{SERVER}", {PORT}), timeout=10)
print("connected", flush=True)
sys.stdin.readline()      # hold the connection open until told
s.sendall(b"BYE\\n")
s.recv(10)
s.close()
"""


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    for tool in ("ip", "ethtool"):
        if not shutil.which(tool):
            ctlbtest.skip(f"needs {tool}")
    dataplane = os.path.abspath(sys.argv[1])
    failures = []
    procs = []
    try:
        try:
            TOPO.setup()
        except subprocess.CalledProcessError as e:
            ctlbtest.skip(f"cannot create namespaces/veths: {e.stderr.strip()}")
        with tempfile.TemporaryDirectory(prefix="ctlb-af-") as tmp:
            cfg_path = os.path.join(tmp, "ctlb.yaml")
            with open(cfg_path, "w") as f:
                f.write(CONFIG)
            log = open(os.path.join(tmp, "dp.log"), "w+")
            dp_proc = subprocess.Popen(["ip", "netns", "exec", TOPO.dataplane, dataplane, "--config", cfg_path],
                                       stdout=log, stderr=subprocess.STDOUT)
            procs.append(dp_proc)
            dp = ctlbtest.Dataplane.__new__(ctlbtest.Dataplane)
            dp.prefix, dp.proc, dp.log = f"ctlb-af-{PID}", dp_proc, log
            dp.wait_ready()

            server = Netns.python(TOPO.server, SERVER_CODE, stdout=subprocess.PIPE, text=True)
            procs.append(server)
            if server.stdout.readline().strip() != "listening":
                raise RuntimeError("server did not start")

            # A connection held open: the tracker must show it ESTABLISHED.
            hold = Netns.python(TOPO.client, HOLD_CODE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(hold)
            if hold.stdout.readline().strip() != "connected":
                raise RuntimeError("client could not connect through the dataplane")
            stats = dp.wait_for(lambda s: s["flows_ESTABLISHED"] == 1)
            print(f"ok: held connection is ESTABLISHED (flows_created={stats['flows_created']})")

            client = Netns.python(TOPO.client, CLIENT_CODE, stdout=subprocess.PIPE, text=True)
            procs.append(client)
            out, _ = client.communicate(timeout=60)
            if client.returncode != 0 or out.strip() != "done":
                failures.append(f"client requests failed through the dataplane (rc {client.returncode})")
            stats = dp.wait_for(lambda s: s["flows_TIME_WAIT"] >= REQUESTS, timeout=30)
            print(f"ok: {REQUESTS} closed connections in TIME_WAIT")

            hold.stdin.write("\n")
            hold.stdin.flush()
            hold.wait(timeout=30)
            stats = dp.wait_for(lambda s: s["flows_ESTABLISHED"] == 0 and s["flows_TIME_WAIT"] == REQUESTS + 1)
            print("ok: the held connection closed into TIME_WAIT")
            for key in ("invalid", "handover_dropped", "port_client_tx_dropped", "port_server_tx_dropped"):
                if stats[key] != 0:
                    failures.append(f"{key} = {stats[key]} for well-formed kernel traffic")
            if stats["flows_created"] != REQUESTS + 1:
                failures.append(f"flows_created = {stats['flows_created']}, expected {REQUESTS + 1}")
            rc, final = dp.stop()
            if rc != 0:
                failures.append(f"dataplane exit code {rc}")
            print(f"dataplane final: rx client {final.get('port_client_rx_packets')}, "
                  f"rx server {final.get('port_server_rx_packets')}, tcp {final.get('tcp_packets')}")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
                p.wait()
        TOPO.teardown()
        ctlbtest.remove_dpdk_files(f"ctlb-af-{PID}")
    for f in failures:
        print(f"FAIL: {f}")
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
