#!/usr/bin/env python3
"""Integration test (issue 4): ctlb-control and ctlbctl against a live
ctlb-dataplane, with real Linux TCP through net_af_packet on veths in
namespaces this test creates (same topology as afpacket_tcp_test.py).

Checks, with short timeouts in the test configuration:
  - ctlbctl with no control process fails clearly (exit 3);
  - ctlbctl flows --state CLOSE_WAIT finds exactly the half-closed connections;
  - ctlbctl stuck names the responder holding a CLOSE_WAIT;
  - TIME_WAIT entries disappear within timeout + 2 ager intervals, and the
    expired counter matches;
  - a new connection reusing a TIME_WAIT tuple (server-side TIME_WAIT, client
    reconnects from the same port) is not aged away;
  - Prometheus counters equal the dataplane's telemetry counters;
  - kill -9 of ctlb-control leaves forwarding running, and a restarted
    control resumes aging.
No fixed sleeps: every wait polls a condition against a deadline.

usage: control_test.py CTLB_DATAPLANE CTLB_CONTROL CTLBCTL
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctlbtest  # noqa: E402

PID = os.getpid()
CLIENT, SERVER = "198.18.20.1", "198.18.20.2"
PREFIX = f"ctlb-ct-{PID}"
INTERVAL_MS = 200
TIME_WAIT_S = 2
METRICS_PORT = 20000 + PID % 20000

failures = []


def check(cond, message):
    if cond:
        print(f"ok: {message}")
    else:
        failures.append(message)
        print(f"FAIL: {message}")


TOPO = ctlbtest.VethTopology("ctlbct", CLIENT, SERVER)


def in_ns(ns, *cmd):
    return TOPO.in_ns(ns, *cmd)


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
  metrics: 127.0.0.1:{METRICS_PORT}
"""

# A server in its namespace: "GET" gets a reply and a close (server-side
# TIME_WAIT); "HOLD" is answered, then the server never closes (CLOSE_WAIT
# once the client closes).
SERVER_CODE = f"""
import socket, threading
held = []
def serve(c):
    data = b""
    while not data.endswith(b"\\\\n"):
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    c.sendall(b"ok\\\\n")
    if data.startswith(b"HOLD"):
        held.append(c)
    else:
        c.close()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("{SERVER}", 8080))
srv.listen(64)
print("listening", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# A client: one request per line on stdin ("GET PORT" or "HOLD PORT"), each
# from the given source port; prints "done" after each.
CLIENT_CODE = f"""
import socket, sys
for line in sys.stdin:
    kind, port = line.split()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("{CLIENT}", int(port)))
    s.settimeout(10)
    s.connect(("{SERVER}", 8080))
    s.sendall(kind.encode() + b"\\\\n")
    got = b""
    while not got.endswith(b"\\\\n"):
        got += s.recv(100)
    if kind == "GET":
        while s.recv(100):
            pass
    s.close()
    print("done", flush=True)
"""


def ctlbctl(ctlbctl_bin, sock, *args):
    r = subprocess.run([ctlbctl_bin, *args, "--socket", sock], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def stats(ctlbctl_bin, sock):
    rc, out, err = ctlbctl(ctlbctl_bin, sock, "stats", "--json")
    if rc != 0:
        return None
    return json.loads(out)["stats"]


PCAP_CONFIG = """mode: inline
file_prefix: {prefix}
lcores:
  main: 0
  workers: [1]
mempool:
  mbufs: 4095
  cache: 64
ports:
  - name: west
    devargs: net_pcap0,rx_pcap={capture},tx_pcap={out}
    peer: east
  - name: east
    devargs: net_pcap1,rx_pcap={empty},tx_pcap={out2}
    peer: west
tracking:
  capacity_v4: 4096
  capacity_v6: 1024
  timeouts:
    time_wait: {time_wait}
control:
  socket: {socket}
  metrics: ""
"""


def capture_phase(dataplane, control, ctlbctl_bin, capture, tmp, procs):
    """The capture's connections through net_pcap; the control process ages
    its TIME_WAIT entries and finds its half-closed ones."""
    records, summary = ctlbtest.trace_json(ctlbctl_bin, capture)
    expected = summary["flows_by_state"]
    final_state = {}
    for r in records:
        if r["flow"]:
            final_state[r["flow"]] = r["state"]
    sock = os.path.join(tmp, "pcap-control.sock")
    empty = os.path.join(tmp, "empty.pcap")
    ctlbtest.write_pcap(empty, [])
    prefix = f"ctlb-ctp-{PID}"
    cfg = os.path.join(tmp, "pcap.yaml")
    with open(cfg, "w") as f:
        f.write(PCAP_CONFIG.format(prefix=prefix, capture=capture, out=os.path.join(tmp, "o1.pcap"), empty=empty,
                                   out2=os.path.join(tmp, "o2.pcap"), time_wait=TIME_WAIT_S, socket=sock))
    log = open(os.path.join(tmp, "pcap-dp.log"), "w+")
    dp = ctlbtest.Dataplane.__new__(ctlbtest.Dataplane)
    dp.prefix, dp.log = prefix, log
    dp.proc = procs.start([dataplane, "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    n = len(ctlbtest.read_pcap(capture)[1])
    dp.wait_for(lambda s: s["port_west_rx_packets"] == n)
    t_done = time.monotonic()
    ctl = procs.start([control, "--config", cfg, "--interval-ms", str(INTERVAL_MS)],
                      stdout=open(os.path.join(tmp, "pcap-control.log"), "w"), stderr=subprocess.STDOUT)
    first = ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock), 20, "ctlb-control on the capture's dataplane")
    check(first["flows_CLOSE_WAIT"] == expected.get("CLOSE_WAIT", 0) and expected.get("CLOSE_WAIT", 0) >= 1,
          f"the capture's CLOSE_WAIT connections are tracked ({expected.get('CLOSE_WAIT', 0)})")
    rc, out, _ = ctlbctl(ctlbctl_bin, sock, "flows", "--state", "CLOSE_WAIT", "--json")
    flows = sorted(f["flow"] for f in json.loads(out)["flows"])
    half_closed = sorted(f for f, state in final_state.items() if state == "CLOSE_WAIT")
    check(rc == 0 and flows == half_closed, f"flows --state CLOSE_WAIT finds exactly the capture's half-closed "
                                            f"connections {flows}")
    tw = expected.get("TIME_WAIT", 0)
    ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock)["flows_TIME_WAIT"] == 0,
               TIME_WAIT_S + 2 * INTERVAL_MS / 1000 + 3, "the capture's TIME_WAIT entries to be aged")
    took = time.monotonic() - t_done
    s = stats(ctlbctl_bin, sock)
    check(tw >= 10 and s["flows_expired"] >= tw and took <= TIME_WAIT_S + 2 * INTERVAL_MS / 1000 + 1.0,
          f"the capture's {tw} TIME_WAIT entries aged {took:.2f} s after the capture (timeout {TIME_WAIT_S} s + 2 "
          f"intervals), expired counter {s['flows_expired']}")
    ctl.send_signal(signal.SIGTERM)
    ctl.wait(timeout=10)
    rc, _ = dp.stop()
    check(rc == 0, "the capture's dataplane stops cleanly")


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    ctlbtest.require_dpdk_environment()
    if not shutil.which("ethtool"):
        ctlbtest.skip("needs ethtool")
    dataplane, control, ctlbctl_bin = (os.path.abspath(a) for a in sys.argv[1:4])
    procs = ctlbtest.Processes()
    tmp = tempfile.mkdtemp(prefix="ctlb-ct-")
    sock = os.path.join(tmp, "control.sock")
    try:
        try:
            TOPO.setup()
        except subprocess.CalledProcessError as e:
            ctlbtest.skip(f"cannot create namespaces/veths: {e.stderr.strip()}")
        cfg = os.path.join(tmp, "ctlb.yaml")
        with open(cfg, "w") as f:
            f.write(CONFIG.replace("{socket}", sock))

        capture_phase(dataplane, control, ctlbctl_bin,
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "data",
                                   "demo.pcap"), tmp, procs)

        rc, _, err = ctlbctl(ctlbctl_bin, sock, "stats")
        check(rc == 3 and "ctlb-control is not running" in err, f"ctlbctl without control: exit {rc}, '{err.strip()}'")

        dp_log = open(os.path.join(tmp, "dp.log"), "w+")
        dp = procs.start(["ip", "netns", "exec", TOPO.dataplane, dataplane, "--config", cfg], stdout=dp_log, stderr=subprocess.STDOUT)
        dpx = ctlbtest.Dataplane.__new__(ctlbtest.Dataplane)
        dpx.prefix, dpx.proc, dpx.log = PREFIX, dp, dp_log
        dpx.wait_ready()

        ctl_log = open(os.path.join(tmp, "control.log"), "w+")

        def start_control():
            return procs.start(["ip", "netns", "exec", TOPO.dataplane, control, "--config", cfg, "--interval-ms", str(INTERVAL_MS)],
                               stdout=ctl_log, stderr=subprocess.STDOUT)

        ctl = start_control()
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock), 20, "ctlb-control to answer")
        check(oct(os.stat(sock).st_mode & 0o777) == "0o660", "control socket mode 0660")

        server = procs.start(["ip", "netns", "exec", TOPO.server, sys.executable, "-c", SERVER_CODE],
                             stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"
        client = procs.start(["ip", "netns", "exec", TOPO.client, sys.executable, "-c", CLIENT_CODE],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def request(kind, port):
            client.stdin.write(f"{kind} {port}\n")
            client.stdin.flush()
            assert client.stdout.readline().strip() == "done", f"{kind} {port} failed"

        # A control process started with another configuration is refused.
        other = os.path.join(tmp, "other.yaml")
        with open(other, "w") as f:
            f.write(CONFIG.replace("{socket}", sock + ".other").replace(f"time_wait: {TIME_WAIT_S}", "time_wait: 99"))
        r = subprocess.run(["ip", "netns", "exec", TOPO.dataplane, control, "--config", other], capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 1 and "is not the one the dataplane runs" in r.stderr,
              f"a control with another configuration is refused (exit {r.returncode}: {r.stderr.strip()[:120]})")

        # watch: one JSON object per refresh, as many as asked.
        r = subprocess.run([ctlbctl_bin, "watch", "--count", "2", "--interval", "1", "--json", "--socket", sock],
                           capture_output=True, text=True, timeout=30)
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        check(r.returncode == 0 and len(lines) == 2 and all("tcp_packets" in x["stats"] for x in lines),
              "watch --count 2 --json prints two refreshes")

        # Two half-closed connections: the server holds them in CLOSE_WAIT.
        request("HOLD", 41001)
        request("HOLD", 41002)
        ctlbtest.wait_until(lambda: (stats(ctlbctl_bin, sock) or {}).get("flows_CLOSE_WAIT") == 2, 10, "2 CLOSE_WAIT")
        rc, out, _ = ctlbctl(ctlbctl_bin, sock, "flows", "--state", "CLOSE_WAIT", "--json")
        flows = json.loads(out)["flows"]
        ports = sorted(int(f["flow"].split(" > ")[0].rsplit(":", 1)[1]) for f in flows)
        check(rc == 0 and ports == [41001, 41002] and all(f["responder"] == "CLOSE_WAIT" and
                                                         f["initiator"] == "FIN_WAIT_2" for f in flows),
              f"flows --state CLOSE_WAIT finds exactly the half-closed connections ({ports})")
        rc, out, _ = ctlbctl(ctlbctl_bin, sock, "stuck", "--threshold", "0", "--json")
        stuck = json.loads(out)["stuck"]
        check(rc == 0 and len(stuck) == 2 and all(s["holder"] == "responder" and s["kind"] == "close_wait" for s in stuck),
              "stuck names the responder holding each CLOSE_WAIT")
        rc, out, _ = ctlbctl(ctlbctl_bin, sock, "flows", "--state", "BOGUS")
        check(rc == 1, "flows with an unknown state fails with exit 1")

        # TIME_WAIT aging: 5 connections the server closes first.
        before = stats(ctlbctl_bin, sock)
        for port in range(42001, 42006):
            request("GET", port)
        t_closed = time.monotonic()
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock)["flows_TIME_WAIT"] == 5, 10, "5 TIME_WAIT")
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock)["flows_TIME_WAIT"] == 0,
                   TIME_WAIT_S + 2 * INTERVAL_MS / 1000 + 3, "TIME_WAIT entries to be aged")
        aged_after = time.monotonic() - t_closed
        after = stats(ctlbctl_bin, sock)
        check(after["flows_expired"] - before["flows_expired"] == 5,
              f"5 TIME_WAIT entries expired, counter +{after['flows_expired'] - before['flows_expired']}")
        check(aged_after <= TIME_WAIT_S + 2 * INTERVAL_MS / 1000 + 1.0,
              f"aged {aged_after:.2f} s after close (timeout {TIME_WAIT_S} s + 2 intervals)")

        # A new connection on a TIME_WAIT tuple is not aged away.
        request("GET", 43001)
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock)["flows_TIME_WAIT"] == 1, 10, "TIME_WAIT on 43001")
        request("HOLD", 43001)  # same 4-tuple: the tracker re-opens it
        s = ctlbtest.wait_until(lambda: (lambda x: x if x["flows_CLOSE_WAIT"] == 3 else None)(stats(ctlbctl_bin, sock)), 10,
                       "the reused tuple to be tracked again")
        check(s["flows_reopened"] >= 1, "the SYN on the TIME_WAIT tuple re-opened it")
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock)["ager_scans"] >= s["ager_scans"] + int(3 * TIME_WAIT_S * 1000 / INTERVAL_MS),
                   30, "ager scans past the TIME_WAIT timeout")
        rc, out, _ = ctlbctl(ctlbctl_bin, sock, "flows", "--port", "43001", "--json")
        rows = json.loads(out)["flows"]
        check(len(rows) == 1 and rows[0]["state"] == "CLOSE_WAIT", "the reused connection survived the ager")

        # Prometheus equals telemetry. The endpoints may still send a stray
        # packet (a retransmission, ARP), so telemetry is read before and
        # after the scrape: a counter must lie between the two readings.
        tel = ctlbtest.Telemetry(PREFIX, time.monotonic() + 5)
        t = tel.query("/ctlb/stats")
        # The scrape runs where ctlb-control listens: the dataplane's namespace.
        body = in_ns(TOPO.dataplane, sys.executable, "-c",
                     "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                     f"'http://127.0.0.1:{METRICS_PORT}/metrics', timeout=5).read().decode())").stdout
        prom = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                prom[name] = float(value)
        pairs = [("ctlb_tcp_packets_total", "tcp_packets"), ("ctlb_flows_created_total", "flows_created"),
                 ("ctlb_flows_expired_total", "flows_expired"), ('ctlb_flows{state="CLOSE_WAIT"}', "flows_CLOSE_WAIT"),
                 ('ctlb_port_rx_packets_total{port="client"}', "port_client_rx_packets")]
        t_after = tel.query("/ctlb/stats")
        tel.close()
        check(all(prom.get(p) is not None and t[k] <= prom[p] <= t_after[k] for p, k in pairs),
              "Prometheus counters equal the dataplane's telemetry (read before and after the scrape): " +
              ", ".join(f"{k}={t[k]}..{t_after[k]}/{prom.get(p)}" for p, k in pairs))

        # kill -9 of the control process: forwarding goes on, a new control resumes aging.
        ctl.send_signal(signal.SIGKILL)
        ctl.wait()
        request("GET", 44001)
        check(True, "a connection completes through the dataplane with ctlb-control killed")
        ctl = start_control()
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock), 20, "the restarted ctlb-control to answer")
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock)["flows_TIME_WAIT"] == 0, TIME_WAIT_S + 5,
                   "the restarted control to age the new TIME_WAIT")
        check(True, "the restarted control aged the TIME_WAIT entry")

        # The dataplane restarts: the control process re-attaches to the new one.
        rc, final = dpx.stop()
        check(rc == 0 and final.get("invalid", 0) == 0, f"dataplane stops cleanly, no invalid packet (rc {rc})")
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock) is None, 10, "ctlb-control to notice the dataplane stopped")
        dp_log2 = open(os.path.join(tmp, "dp2.log"), "w+")
        dp2 = procs.start(["ip", "netns", "exec", TOPO.dataplane, dataplane, "--config", cfg], stdout=dp_log2, stderr=subprocess.STDOUT)
        dpx.proc, dpx.log = dp2, dp_log2
        s2 = ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock), 30, "ctlb-control to re-attach to the new dataplane")
        check(s2["flows_created"] == 0 and ctl.poll() is None, "ctlb-control re-attached to the restarted dataplane")
        request("GET", 45001)
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock)["flows_TIME_WAIT"] == 1, 10, "a connection on the new dataplane")
        ctlbtest.wait_until(lambda: stats(ctlbctl_bin, sock)["flows_TIME_WAIT"] == 0, TIME_WAIT_S + 5,
                   "aging on the new dataplane")
        check(True, "aging resumed on the restarted dataplane")

        ctl.send_signal(signal.SIGTERM)
        check(ctl.wait(timeout=10) == 0 and not os.path.exists(sock), "ctlb-control stops on SIGTERM, socket removed")
        rc, final = dpx.stop()
        check(rc == 0, f"the second dataplane stops cleanly (rc {rc})")
    except Exception as e:  # report, then clean up
        failures.append(f"{type(e).__name__}: {e}")
        print(f"FAIL: {type(e).__name__}: {e}")
        for name in ("dp.log", "dp2.log", "control.log", "pcap-dp.log", "pcap-control.log"):
            path = os.path.join(tmp, name)
            if os.path.exists(path):
                print(f"--- {name}:\n" + open(path).read()[-3000:])
    finally:
        procs.stop_all()
        TOPO.teardown()
        for prefix in (PREFIX, f"ctlb-ctp-{PID}"):
            ctlbtest.remove_dpdk_files(prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
