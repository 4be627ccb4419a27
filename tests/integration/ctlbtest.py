"""Helpers for ctlb's integration tests: run the real ctlb-dataplane on the
real EAL, talk to its DPDK telemetry socket, read and write pcap files.
Standard library only (runs with Debian's /usr/bin/python3)."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

SKIP = 77  # meson's exit code for a skipped test


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def require_dpdk_environment():
    if os.geteuid() != 0:
        skip("needs root for DPDK hugepages")
    free = 0
    for d, size in (("hugepages-2048kB", 2 << 20), ("hugepages-1048576kB", 1 << 30)):
        try:
            with open(f"/sys/kernel/mm/hugepages/{d}/free_hugepages") as f:
                free += int(f.read()) * size
        except OSError:
            pass
    if free < (256 << 20):
        skip(f"needs at least 256 MiB of free hugepages, {free >> 20} MiB free (scripts/test.sh reserves them)")


class Checks:
    """Collects a test's results: each check prints ok/FAIL, `failures`
    lists the failed ones, the exit code follows."""

    def __init__(self):
        self.failures = []
        self.passed = 0

    def __call__(self, cond, message):
        if cond:
            self.passed += 1
            print(f"ok: {message}", flush=True)
        else:
            self.failures.append(message)
            print(f"FAIL: {message}", flush=True)
        return cond

    def error(self, e):
        self(False, f"{type(e).__name__}: {e}")

    def finish(self):
        print(f"{self.passed} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


def position(text, needle, skip=0):
    """LINE:COLUMN (from 1) of the first occurrence of needle in text, plus
    `skip` characters: where a configuration error names a key."""
    at = text.index(needle) + skip
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return f"{line}:{column}"


def wait_until(predicate, timeout, what, interval=0.02):
    """Polls predicate() until it returns a true value, which is returned;
    raises TimeoutError naming `what` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Processes:
    """Processes a test started (subprocess.Popen), killed by PID and reaped
    at the end, the last started first."""

    def __init__(self):
        self.items = []

    def start(self, *args, **kw):
        p = subprocess.Popen(*args, **kw)
        self.items.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.items):
            if p.poll() is None:
                p.kill()
                p.wait()


def free_tcp_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's
    choice), e.g. for ctlb-control's metrics listener."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ctlbctl_json(ctlbctl, sock, *args):
    """Runs `ctlbctl ARGS --json --socket SOCK` and returns its parsed answer;
    raises RuntimeError (exit code and stderr) when ctlbctl fails."""
    r = subprocess.run([ctlbctl, *args, "--json", "--socket", sock], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ctlbctl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def ctlbctl_stats(ctlbctl, sock):
    """The counters of `ctlbctl stats --json` as a dict, or None while
    ctlb-control does not answer (ctlbctl exits non-zero)."""
    try:
        return ctlbctl_json(ctlbctl, sock, "stats")["stats"]
    except RuntimeError:
        return None


def scrape_prometheus(address):
    """GET http://ADDRESS/metrics (ADDRESS: host:port) and return {series: value},
    series being the metric name with its labels as exposed."""
    import urllib.request
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def dpdk_leftovers(prefix):
    """What DPDK processes of this file prefix left behind: the runtime
    directory and hugepage files (empty once cleaned up)."""
    import glob
    left = glob.glob(f"/var/run/dpdk/{prefix}")
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mount, fstype = line.split()[:3]
            if fstype == "hugetlbfs":
                left += glob.glob(os.path.join(mount, f"{prefix}map_*"))
    return left


def ones_complement_sum(data):
    """RFC 1071 sum of 16-bit words, folded: 0xFFFF over a block that holds
    its own valid checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def read_pcap(path):
    """Returns (linktype, [(ts_sec, ts_usec, bytes), ...])."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file")
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        out.append((sec, usec, data[off:off + incl]))
        off += incl
    return linktype, out


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for sec, usec, frame in frames:
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            f.write(frame)


class Telemetry:
    """A client of the DPDK telemetry v2 socket of a primary process."""

    def __init__(self, prefix, deadline):
        path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"telemetry socket {path} did not appear")
                time.sleep(0.02)
        self.sock.recv(16384)  # the greeting

    def query(self, cmd):
        self.sock.send(cmd.encode())
        return json.loads(self.sock.recv(1 << 20).decode())[cmd]

    def close(self):
        self.sock.close()


class Dataplane:
    """ctlb-dataplane started with a configuration, stopped with SIGTERM."""

    def __init__(self, binary, config_text, workdir, prefix):
        self.prefix = prefix
        self.config = os.path.join(workdir, "ctlb.yaml")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.log = open(os.path.join(workdir, "dataplane.log"), "w+")
        self.proc = subprocess.Popen([binary, "--config", self.config], cwd=workdir,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait_for(self, predicate, timeout=30.0):
        """Polls /ctlb/stats until predicate(stats) holds; returns the stats."""
        deadline = time.monotonic() + timeout
        tel = None
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dataplane exited early with {self.proc.returncode}:\n{self.output()}")
                if tel is None:
                    tel = Telemetry(self.prefix, deadline)
                stats = tel.query("/ctlb/stats")
                # null until the dataplane has registered its commands
                if stats and predicate(stats):
                    return stats
                if time.monotonic() > deadline:
                    raise TimeoutError(f"condition not met; last stats: {stats}")
                time.sleep(0.01)
        finally:
            if tel:
                tel.close()

    def wait_ready(self, timeout=30.0):
        """Waits for ctlb.ready: ports started, tables and rings in place."""
        deadline = time.monotonic() + timeout
        path = f"/var/run/dpdk/{self.prefix}/ctlb.ready"
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"dataplane exited early with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear")
            time.sleep(0.01)

    def stop(self, timeout=30.0):
        """SIGTERM; returns (exit code, final counters printed)."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        final = {}
        in_final = False
        for line in self.output().splitlines():
            if line.startswith("ctlb: final counters"):
                in_final = True
            elif in_final and line.startswith("  "):
                name, value = line.split()
                final[name] = int(value)
        return rc, final

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def trace_json(ctlbctl, capture, *args):
    """Runs `ctlbctl trace --json` and returns (records, summary)."""
    out = subprocess.run([ctlbctl, "trace", capture, "--json", *args], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    records = [json.loads(l) for l in out[:-1]]
    summary = json.loads(out[-1])["summary"]
    return records, summary


class VethTopology:
    """Three namespaces this test creates: a client and a server host, and
    the dataplane's namespace between them, joined by veth pairs c0==c1 and
    s1==s0 (the dataplane owns c1 and s1 through net_af_packet). Offloads are
    off: the dataplane moves frames between sockets, nothing completes
    checksums or segments on the way."""

    def __init__(self, tag, client_addr, server_addr):
        pid = os.getpid()
        self.client, self.server, self.dataplane = (f"{tag}-c-{pid}", f"{tag}-s-{pid}", f"{tag}-d-{pid}")
        self.client_addr, self.server_addr = client_addr, server_addr

    @staticmethod
    def sh(*cmd, check=True):
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def in_ns(self, ns, *cmd):
        return self.sh("ip", "netns", "exec", ns, *cmd)

    def setup(self):
        for ns in (self.client, self.server, self.dataplane):
            self.sh("ip", "netns", "add", ns)
        self.sh("ip", "link", "add", "c0", "netns", self.client, "type", "veth", "peer", "name", "c1",
                "netns", self.dataplane)
        self.sh("ip", "link", "add", "s0", "netns", self.server, "type", "veth", "peer", "name", "s1",
                "netns", self.dataplane)
        for ns, dev, addr in ((self.client, "c0", self.client_addr), (self.server, "s0", self.server_addr)):
            self.in_ns(ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            self.in_ns(ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off")
            self.in_ns(ns, "ip", "link", "set", dev, "up")
            self.in_ns(ns, "ip", "link", "set", "lo", "up")
        for dev in ("c1", "s1"):
            self.in_ns(self.dataplane, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off")
            self.in_ns(self.dataplane, "ip", "link", "set", dev, "up")
        self.in_ns(self.dataplane, "ip", "link", "set", "lo", "up")  # ctlb-control's metrics listen there

    def teardown(self):
        for ns in (self.client, self.server, self.dataplane):
            self.sh("ip", "netns", "del", ns, check=False)


def remove_dpdk_files(prefix):
    """Removes what DPDK processes of this test's file prefix left behind (the
    runtime directory, hugepage files), once none of them runs any more."""
    import glob
    import shutil as _shutil
    _shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mount, fstype = line.split()[:3]
            if fstype == "hugetlbfs":
                for path in glob.glob(os.path.join(mount, f"{prefix}map_*")):
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
