#!/usr/bin/env python3
"""Fault test (issue 6, item 5): ctlb-control killed (SIGKILL) and restarted
under live traffic, with real Linux TCP through net_af_packet on veths in
namespaces this test creates (ctlbtest.VethTopology).

  1. Connections are set up: two half-closed ones the server holds
     (CLOSE_WAIT) and two open ones (ESTABLISHED). ctlbctl flows is recorded.
  2. ctlb-control is killed with SIGKILL. ctlbctl says it is not running
     (exit 3). Forwarding goes on: five new connections complete and the open
     ones exchange data; the dataplane's own telemetry shows every counter
     moving (packets, TCP packets, connections created) and the five in
     TIME_WAIT. Nothing ages them while the control process is dead: past
     their timeout they are still there and flows_expired has not moved.
  3. ctlb-control is started again. It re-attaches to the same tables: the
     counters continue from where they were (not reset), every connection
     from step 1 is there with the same connection and endpoint states, and
     the ager resumes: the five TIME_WAIT entries that timed out while it was
     dead are expired (flows_expired +5) within two intervals.
  4. Tracking goes on under the new control: an open connection closed by
     the client reaches TIME_WAIT and is aged; the other still carries data.
No fixed sleeps: waits poll a condition against a deadline; the one
observation window (step 2) is bounded by the timeout it observes.

usage: control_restart_test.py CTLB_DATAPLANE CTLB_CONTROL CTLBCTL
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib  # noqa: E402
from faultlib import ctlbtest  # noqa: E402

PID = os.getpid()
CLIENT, SERVER, PORT = "198.18.30.1", "198.18.30.2", 8080
PREFIX = f"ctlb-fc-{PID}"
INTERVAL_MS = 200
TIME_WAIT_S = 1

CONFIG = f"""mode: inline
file_prefix: {PREFIX}
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
  timeouts:
    time_wait: {TIME_WAIT_S}
control:
  socket: {{socket}}
  metrics: ""
"""

# The server answers each line with "ok". GET: it then closes first (the
# connection ends in TIME_WAIT). HOLD: once the client has closed, it never
# closes (CLOSE_WAIT). Anything else: it closes when the client does.
SERVER_CODE = f"""
import socket, threading
held = []
def serve(c):
    first = None
    for line in c.makefile("rb"):
        first = first or line.strip()
        c.sendall(b"ok\\n")
        if line.strip() == b"GET":
            break
    if first == b"HOLD":
        held.append(c)
    else:
        c.close()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("{SERVER}", {PORT}))
srv.listen(64)
print("listening", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# The client: one command per stdin line, "done" after each.
#   get PORT    a connection from PORT: GET, the answer, the server's close
#   hold PORT   HOLD, the answer, then the client's FIN (half-closed)
#   open PORT   OPEN, the answer; the connection stays open
#   ping PORT   a line and its answer on the open connection
#   close PORT  the client closes the open connection
CLIENT_CODE = f"""
import socket, sys
conns = {{}}
def connect(port, word):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("{CLIENT}", port))
    s.settimeout(10)
    s.connect(("{SERVER}", {PORT}))
    s.sendall(word + b"\\n")
    assert s.recv(3) == b"ok\\n"
    return s
for line in sys.stdin:
    cmd, port = line.split()
    port = int(port)
    if cmd == "get":
        s = connect(port, b"GET")
        while s.recv(100):
            pass
        s.close()
    elif cmd == "hold":
        conns[port] = connect(port, b"HOLD")
        conns[port].shutdown(socket.SHUT_WR)
    elif cmd == "open":
        conns[port] = connect(port, b"OPEN")
    elif cmd == "ping":
        conns[port].sendall(b"PING\\n")
        assert conns[port].recv(3) == b"ok\\n"
    elif cmd == "close":
        conns.pop(port).close()
    print("done", flush=True)
"""

check = faultlib.Checks()
TOPO = ctlbtest.VethTopology("ctlbfc", CLIENT, SERVER)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    if not shutil.which("ethtool"):
        ctlbtest.skip("needs ethtool")
    dataplane, control, ctlbctl = (os.path.abspath(a) for a in sys.argv[1:4])
    procs = ctlbtest.Processes()
    tmp = tempfile.mkdtemp(prefix="ctlb-fc-")
    sock = os.path.join(tmp, "control.sock")
    cfg = os.path.join(tmp, "ctlb.yaml")
    t_start = time.monotonic()
    try:
        try:
            TOPO.setup()
        except subprocess.CalledProcessError as e:
            ctlbtest.skip(f"cannot create namespaces/veths: {e.stderr.strip()}")
        with open(cfg, "w") as f:
            f.write(CONFIG.replace("{socket}", sock))
        dp = ctlbtest.Dataplane.__new__(ctlbtest.Dataplane)  # started in the dataplane's namespace
        dp.prefix, dp.config = PREFIX, cfg
        dp.log = open(os.path.join(tmp, "dataplane.log"), "w+")
        dp.proc = procs.start(["ip", "netns", "exec", TOPO.dataplane, dataplane, "--config", cfg],
                              stdout=dp.log, stderr=subprocess.STDOUT)
        dp.wait_ready()
        ctl_log = open(os.path.join(tmp, "control.log"), "w+")

        def start_control():
            return procs.start(["ip", "netns", "exec", TOPO.dataplane, control, "--config", cfg,
                                "--interval-ms", str(INTERVAL_MS)], stdout=ctl_log, stderr=subprocess.STDOUT)

        ctl = start_control()
        ctlbtest.wait_until(lambda: ctlbtest.ctlbctl_stats(ctlbctl, sock), 20, "ctlb-control to answer")
        server = procs.start(["ip", "netns", "exec", TOPO.server, sys.executable, "-c", SERVER_CODE],
                             stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"
        client = procs.start(["ip", "netns", "exec", TOPO.client, sys.executable, "-c", CLIENT_CODE],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def do(cmd, port):
            client.stdin.write(f"{cmd} {port}\n")
            client.stdin.flush()
            assert client.stdout.readline().strip() == "done", f"client: {cmd} {port} failed"

        def telemetry():
            return dp.wait_for(lambda s: True, timeout=5)

        # 1. Connections that must outlive the control process.
        for cmd, port in (("hold", 41001), ("hold", 41002), ("open", 42001), ("open", 42002)):
            do(cmd, port)
        ctlbtest.wait_until(lambda: (lambda s: s and s["flows_CLOSE_WAIT"] == 2 and s["flows_ESTABLISHED"] == 2)(
            ctlbtest.ctlbctl_stats(ctlbctl, sock)), 10, "2 CLOSE_WAIT and 2 ESTABLISHED")
        before = faultlib.table_flows(ctlbctl, sock)
        stats0 = ctlbtest.ctlbctl_stats(ctlbctl, sock)
        check(sorted(s for s, _, _ in before.values()) == ["CLOSE_WAIT", "CLOSE_WAIT", "ESTABLISHED", "ESTABLISHED"],
              f"before the kill: {len(before)} connections {sorted(before.values())}")

        # 2. SIGKILL: forwarding and tracking go on, nothing ages.
        ctl.send_signal(signal.SIGKILL)
        ctl.wait()
        r = subprocess.run([ctlbctl, "stats", "--socket", sock], capture_output=True, text=True)
        check(r.returncode == 3 and "ctlb-control is not running" in r.stderr,
              f"control killed: ctlbctl says so (exit {r.returncode}: {r.stderr.strip()})")
        t1 = telemetry()
        for port in range(43001, 43006):
            do("get", port)
        for port in (42001, 42002, 42001):
            do("ping", port)
        t2 = dp.wait_for(lambda s: s["flows_TIME_WAIT"] == 5, timeout=10)
        t_closed = time.monotonic()
        moving = ["port_client_rx_packets", "port_server_rx_packets", "port_client_tx_packets",
                  "port_server_tx_packets", "tcp_packets"]
        check(all(t2[k] > t1[k] for k in moving) and t2["flows_created"] == t1["flows_created"] + 5,
              "control dead: forwarding goes on, counters move: " +
              ", ".join(f"{k} {t1[k]} -> {t2[k]}" for k in moving + ["flows_created"]))
        # Past the TIME_WAIT timeout and three ager intervals, still there:
        # only ctlb-control ages (the dataplane needs no ager to forward).
        window = TIME_WAIT_S + 3 * INTERVAL_MS / 1000
        while time.monotonic() - t_closed < window:
            t3 = telemetry()
            if t3["flows_TIME_WAIT"] != 5 or t3["flows_expired"] != t2["flows_expired"]:
                break
            time.sleep(0.05)
        check(t3["flows_TIME_WAIT"] == 5 and t3["flows_expired"] == t2["flows_expired"] == stats0["flows_expired"],
              f"control dead: {window:.1f} s after the closes the 5 TIME_WAIT entries are still tracked, none "
              f"expired ({t3['flows_TIME_WAIT']} TIME_WAIT, flows_expired {t3['flows_expired']})")

        # 3. Restart: same tables, counters continue, the ager resumes.
        t_restart = time.monotonic()
        ctl = start_control()
        s1 = ctlbtest.wait_until(lambda: ctlbtest.ctlbctl_stats(ctlbctl, sock), 20,
                                 "the restarted ctlb-control to answer")
        check(all(s1[k] >= t3[k] for k in moving + ["flows_created"]) and s1["flows_created"] == stats0["flows_created"] + 5,
              "restarted control: the counters continue, not reset: " +
              ", ".join(f"{k} {stats0[k]} -> {s1[k]}" for k in moving + ["flows_created"]))
        s2 = ctlbtest.wait_until(lambda: (lambda s: s if s["flows_TIME_WAIT"] == 0 else None)(
            ctlbtest.ctlbctl_stats(ctlbctl, sock)), 10, "the restarted ager to expire the TIME_WAIT entries")
        aged = time.monotonic() - t_restart
        check(s2["flows_expired"] == stats0["flows_expired"] + 5 and s2["ager_scans"] >= 1,
              f"restarted control: the ager resumed and expired the 5 entries that timed out while it was dead "
              f"({aged:.2f} s after the restart, flows_expired {stats0['flows_expired']} -> {s2['flows_expired']})")
        after = faultlib.table_flows(ctlbctl, sock)
        check(after == before, f"restarted control: the same {len(after)} connections with the same connection and "
                               f"endpoint states: {sorted(after.values())}")

        # 4. Tracking under the new control.
        do("close", 42001)
        t_close = time.monotonic()
        ctlbtest.wait_until(lambda: ctlbtest.ctlbctl_stats(ctlbctl, sock)["flows_TIME_WAIT"] == 1, 10,
                            "the closed connection in TIME_WAIT")
        s3 = ctlbtest.wait_until(lambda: (lambda s: s if s["flows_TIME_WAIT"] == 0 else None)(
            ctlbtest.ctlbctl_stats(ctlbctl, sock)), TIME_WAIT_S + 5, "the new control to age it")
        took = time.monotonic() - t_close
        do("ping", 42002)
        rows = faultlib.table_flows(ctlbctl, sock)
        check(s3["flows_expired"] == s2["flows_expired"] + 1 and took <= TIME_WAIT_S + 2 * INTERVAL_MS / 1000 + 1.0 and
              sorted(v[0] for v in rows.values()) == ["CLOSE_WAIT", "CLOSE_WAIT", "ESTABLISHED"],
              f"after the restart: a connection closed by the client reached TIME_WAIT and was aged {took:.2f} s "
              f"later; the others remain ({sorted(v[0] for v in rows.values())})")

        ctl.send_signal(signal.SIGTERM)
        check(ctl.wait(timeout=10) == 0, "ctlb-control stops cleanly")
        rc, final = dp.stop()
        check(rc == 0 and final.get("invalid", 0) == 0 and final.get("port_client_tx_dropped", 0) == 0 and
              final.get("port_server_tx_dropped", 0) == 0,
              f"the dataplane stops cleanly (rc {rc}); no packet invalid or dropped")
    except Exception as e:  # report, then clean up
        check.error(e)
        for name in ("dataplane.log", "control.log"):
            path = os.path.join(tmp, name)
            if os.path.exists(path):
                print(f"--- {name}:\n" + open(path).read()[-3000:])
    finally:
        procs.stop_all()
        TOPO.teardown()
        ctlbtest.remove_dpdk_files(PREFIX)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"took {time.monotonic() - t_start:.1f} s")
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
