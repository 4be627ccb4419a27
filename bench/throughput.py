#!/usr/bin/python3
"""Throughput harness of ctlb-dataplane against dpdk-testpmd (run it through
bench/throughput.sh, which builds the tools and reserves hugepages).

Both forward the same capture the same way on one worker core: the rx port is
net_pcap replaying the capture from memory (infinite_rx=1), the peer port is
net_null (no-rx=1: it only swallows what is sent to it). testpmd in io mode is
the ceiling of this set-up: what is left of a core when a packet is only
received and sent. Runs alternate ctlb and testpmd; the table gives medians
and the spread (min-max) of the repetitions.

Scenarios named lb-* run ctlb in mode lb (NAT to backends chosen by Maglev)
on a capture written for it (ctlb_flowgen --lb-backends: one VIP address,
ports 80 and 443, answers from the backends ctlb picks): port west (net_pcap)
receives, and every output frame leaves through port east (net_null), whose
connected prefix holds the backends and whose gateway leads to the clients;
static neighbours for the gateway and every backend stand in for ARP. The
configuration's VIPs and pools come from the capture's summary, so they are
the ones the capture was written for. testpmd forwards the same capture.

Scenarios named flood-* measure a SYN flood (issue 6): the capture of
flood-baseline (10k established flows) with 1.25M SYNs from distinct random
sources in 198.18.0.0/15 spread among its data rounds (ctlb_flowgen
--flood-syns; the established packets are the baseline's byte for byte),
against a table of 1M flows (capacity_v4), replayed until at least 10M flood
SYNs have reached ctlb; flood-10M without a new-flow limit, flood-10M-limited
with tracking.new_flow_limit. Choosing one brings flood-baseline along. They
report total and established packets per second (the flood's positions in a
pass are known, so every sample interval's established packets are), the
ratio of established throughput to the baseline's, and per run the counters
that show the flood (flows_ESTABLISHED, flows_half_open, flows_evicted,
new_flows_rate_limited, untracked_table_full), the flow tables' memzones and
the process's allocated hugepage heap at the start and end of the window.
A flood run fails unless: tx + new_flows_rate_limited == rx (nothing else
dropped), no packet invalid, every established flow still there at the end,
none evicted (no ESTABLISHED/SYN_RECV -> NONE transition), picked up again
(NONE -> ESTABLISHED) or opened a second time (one SYN_SENT -> SYN_RECV per
flow: flood entries never see a SYN-ACK), and >= 10M flood SYNs received.

Repetitions go round the chosen scenarios (and ctlb and testpmd within
each), so a slow spell of a shared host spreads over all of them.

Rates come from counters read over DPDK telemetry (ctlb: /ctlb/stats,
testpmd: /ethdev/stats,0), sampled every few milliseconds:
  * established, lifecycle, flood: packets over a fixed window after a
    warm-up (flood: and until 10M flood SYNs); for established and flood
    captures only the intervals that lie inside the data rounds of a pass
    count (the handshakes are a prefix of the capture and replay as
    re-synchronisations, not established-only traffic);
  * syn (connection set-up rate): flows_created per second during the first
    pass of a capture of distinct SYNs, between 10 % and 90 % of the flows
    (after the first pass the SYNs are retransmissions).
Standard library only.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------- scenarios

CAPACITY_V4 = 2097152
CAPACITY_V6 = 65536
SMALL = ["--request", "32", "--response", "32", "--payload", "32"]  # frames of 66..98 bytes
LB_BACKENDS = 16
# One VIP address (ports 80 and 443: two VIPs), LB_BACKENDS backends each.
LB = ["--servers", "1", "--lb-backends", str(LB_BACKENDS)]
FLOOD_CAPACITY = 1 << 20  # the table the flood hits (capacity_v4)
FLOOD_FLOWS = 10000
FLOOD_ROUNDS = 25
# Distinct flood SYNs per pass: more than the table holds, so that every pass floods it afresh; the capture
# (handshakes, data rounds and flood: 1.78M packets) is replayed from mbufs of 448 bytes, about 0.8 GiB.
FLOOD_SYNS = 1250000
FLOOD_TARGET = 10000000  # flood SYNs each ctlb run must receive
# Per worker. The burst (0.2 s worth) lets the established flows' 10k handshakes at the start through.
FLOOD_LIMIT = {"rate": 100000, "burst": 20000}
FLOOD_ESTABLISHED = ["--mode", "established", "--concurrent", str(FLOOD_FLOWS), "--rounds", str(FLOOD_ROUNDS)] + SMALL


SCENARIOS = [
    {"name": "syn-1M", "kind": "syn",
     "what": "connection set-up: 1M distinct SYNs, cps over the first pass",
     "gen": ["--mode", "syn", "--connections", "1000000"]},
    {"name": "established-10k", "kind": "established",
     "what": "established-only: 10k flows, 50 rounds of 32-byte request + response",
     "gen": ["--mode", "established", "--concurrent", "10000", "--rounds", "50"] + SMALL},
    {"name": "established-1M", "kind": "established",
     "what": "established-only: 1M flows, 2 rounds of 32-byte request + response",
     "gen": ["--mode", "established", "--concurrent", "1000000", "--rounds", "2"] + SMALL},
    {"name": "lifecycle-10k", "kind": "lifecycle",
     "what": "mixed life-cycles: 100k connections, 10k at a time, 45/45/10 client FIN/server FIN/RST",
     "gen": ["--mode", "lifecycle", "--concurrent", "10000", "--connections", "100000"] + SMALL},
    {"name": "lifecycle-1M", "kind": "lifecycle",
     "what": "mixed life-cycles: 1M connections, all at a time, 45/45/10 client FIN/server FIN/RST",
     "gen": ["--mode", "lifecycle", "--concurrent", "1000000", "--connections", "1000000"] + SMALL},
    {"name": "lb-established-10k", "kind": "established", "mode": "lb",
     "what": f"mode lb, NAT both ways: 10k flows to 2 VIPs x {LB_BACKENDS} backends, established-only, "
             "50 rounds of 32-byte request + response",
     "gen": ["--mode", "established", "--concurrent", "10000", "--rounds", "50"] + SMALL + LB},
    {"name": "lb-lifecycle-10k", "kind": "lifecycle", "mode": "lb",
     "what": f"mode lb, NAT both ways: 100k connections to 2 VIPs x {LB_BACKENDS} backends, 10k at a time, "
             "45/45/10 client FIN/server FIN/RST",
     "gen": ["--mode", "lifecycle", "--concurrent", "10000", "--connections", "100000"] + SMALL + LB},
    # SYN flood (issue 6): the same established flows with and without a flood of SYNs from distinct random
    # sources, against a table of 1M flows. The established packets of the flood capture are those of the
    # baseline's, byte for byte; flood-* replay until FLOOD_TARGET flood SYNs have gone through.
    {"name": "flood-baseline", "kind": "established", "capacity_v4": FLOOD_CAPACITY,
     "what": f"established-only, the flood scenarios' baseline: {FLOOD_FLOWS // 1000}k flows, {FLOOD_ROUNDS} rounds "
             f"of 32-byte request + response, table of {FLOOD_CAPACITY >> 20}M flows",
     "gen": FLOOD_ESTABLISHED},
    {"name": "flood-10M", "kind": "flood", "baseline": "flood-baseline", "capacity_v4": FLOOD_CAPACITY,
     "capture": "flood-10M",
     "what": f"SYN flood, no new-flow limit: flood-baseline's packets with {FLOOD_SYNS / 1e6:g}M SYNs of distinct "
             f"random sources per pass spread among them, >= {FLOOD_TARGET // 1000000}M flood SYNs per run",
     "gen": FLOOD_ESTABLISHED + ["--flood-syns", str(FLOOD_SYNS)]},
    {"name": "flood-10M-limited", "kind": "flood", "baseline": "flood-baseline", "capacity_v4": FLOOD_CAPACITY,
     "capture": "flood-10M", "new_flow_limit": FLOOD_LIMIT,
     "what": f"SYN flood as flood-10M, with tracking.new_flow_limit {{rate: {FLOOD_LIMIT['rate']}, "
             f"burst: {FLOOD_LIMIT['burst']}}}",
     "gen": FLOOD_ESTABLISHED + ["--flood-syns", str(FLOOD_SYNS)]},
]

# Mode lb: the ports' addresses. East holds the backends (198.19.1.0/24,
# 2001:2:0:3::/64) in its prefixes and the gateway towards the clients
# (198.18.0.0/16, 2001:2:0:1::/64: no connected prefix); west only receives.
LB_WEST = ["198.19.255.253/30"]
LB_EAST_V4, LB_GATEWAY_V4 = "198.19.254.1/16", "198.19.254.254"
LB_EAST_V6, LB_GATEWAY_V6 = "2001:2:0:3::fffe/64", "2001:2:0:3::fffd"
LB_DROPS = ["lb_dropped_no_vip", "lb_dropped_not_tcp", "lb_dropped_malformed", "lb_dropped_no_backend",
            "lb_dropped_unknown_flow", "lb_dropped_no_route", "lb_dropped_no_neighbour", "lb_dropped_ttl",
            "lb_dropped_backend_mismatch", "lb_untracked_table_full", "neighbour_msgs_dropped"]

INVALID_REASONS = ["bad_flags", "bad_checksum", "not_new", "no_pickup", "bad_transition",
                   "rst_before_ack", "seq_over_window", "ack_over_sent"]
MALFORMED = ["eth_truncated", "vlan_truncated", "vlan_too_deep", "ipv4_truncated", "ipv4_bad_version",
             "ipv4_bad_ihl", "ipv4_header_overrun", "ipv4_total_len_too_small", "ipv4_total_len_overrun",
             "ipv6_truncated", "ipv6_bad_version", "ipv6_payload_overrun", "ipv6_ext_truncated",
             "ipv6_ext_too_many", "tcp_truncated", "tcp_bad_data_offset", "tcp_data_offset_overrun"]
STATES = ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",
          "SYN_SENT2"]

HEADROOM = 128  # RTE_PKTMBUF_HEADROOM
EXTRA_MBUFS = 65536


class RunError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- telemetry

class Telemetry:
    """A client of a DPDK primary's telemetry v2 socket."""

    def __init__(self, prefix, proc, deadline):
        path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
        while True:
            if proc.poll() is not None:
                raise RunError(f"exited with code {proc.returncode} before its telemetry socket appeared")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                sock.connect(path)
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise RunError(f"telemetry socket {path} did not appear")
                time.sleep(0.02)
        self.sock = sock
        self.sock.settimeout(5.0)
        self.sock.recv(16384)  # greeting

    def query(self, cmd):
        self.sock.send(cmd.encode())
        reply = json.loads(self.sock.recv(1 << 20).decode())
        return reply.get(cmd.split(",")[0])

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- helpers

def run_quiet(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RunError(f"{' '.join(cmd)} failed ({p.returncode}): {(p.stderr or p.stdout).strip()}")
    return p.stdout


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


NR_HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"


def mbuf_bytes(data_room):
    # mempool object: header (one cache line) + struct rte_mbuf (2 lines) + data room, in cache lines
    return 64 + 128 + (data_room + 63) // 64 * 64


def pow2_at_least(n):
    p = 1
    while p < n:
        p <<= 1
    return p


def table_bytes(capacity_v4, capacity_v6=CAPACITY_V6):
    """Bytes of one worker's flow tables (index, entries, IPv4 cold records), as docs/tracking.md lays them out."""
    buckets = pow2_at_least((capacity_v4 * 2 + 7) // 8) * 64 + pow2_at_least((capacity_v6 * 2 + 7) // 8) * 64
    return buckets + capacity_v4 * (64 + 16) + capacity_v6 * 128


def hugepage_need(meta, data_room, dut, capacity_v4=CAPACITY_V4):
    """Bytes of hugepage memory a run needs (estimate with slack)."""
    mbufs = meta["packets"] + EXTRA_MBUFS
    need = mbufs * mbuf_bytes(data_room) + 8 * pow2_at_least(meta["packets"] + 1)
    if dut.startswith("ctlb"):
        need += table_bytes(capacity_v4)
    return need + (160 << 20)


def flood_received(meta, rx):
    """Flood SYNs among the first rx packets of a flood capture replayed in a loop: in each pass, of the
    positions j = 0.. of the data phase (after the handshakes), the first j hold floor(j M / T) flood SYNs
    (M flood SYNs, T data packets and flood SYNs: FloodSpread in flowgen.cpp)."""
    f = meta["flood"]
    P, H, M = meta["output_packets"], meta["data_start"], f["syns"]
    T = M + f["data_packets"]
    j = min(max(rx % P - H, 0), T)
    return rx // P * M + j * M // T


def verify_flood_capture(meta, base):
    """Checks that a flood capture without its flood SYNs is its baseline capture, record for record (pcap headers
    and frames), and that every flood SYN is a SYN."""
    with open(meta["pcap"], "rb") as f:
        flood = f.read()
    with open(base["pcap"], "rb") as f:
        plain = f.read()
    H, M = meta["data_start"], meta["flood"]["syns"]
    T = M + meta["flood"]["data_packets"]
    o, b, i, syns = 24, 24, 0, 0
    while o < len(flood):
        length = int.from_bytes(flood[o + 8:o + 12], "little")
        end = o + 16 + length
        j = i - H
        if j >= 0 and (j + 1) * M // T > j * M // T:
            if flood[o + 16 + 47] != 0x02:  # TCP flags of an IPv4 frame without options: SYN only
                raise RunError(f"{meta['pcap']}: packet {i} should be a flood SYN")
            syns += 1
        else:
            n = end - o
            if flood[o:end] != plain[b:b + n]:
                raise RunError(f"{meta['pcap']}: packet {i} differs from {base['pcap']}'s packet {i - syns}")
            b += n
        o, i = end, i + 1
    if b != len(plain) or syns != M:
        raise RunError(f"{meta['pcap']}: {syns} flood SYNs, {i - syns} other packets; expected {M} and "
                       f"{base['output_packets']} ({base['pcap']})")


def heap_allocated(tel):
    """Bytes allocated in the DPDK process's hugepage heaps (memzones, mempools, rings), over telemetry."""
    try:
        total = 0
        for heap in tel.query("/eal/heap_list") or []:
            info = tel.query(f"/eal/heap_info,{heap}")
            total += int(info["Alloc_size"])
        return total
    except (KeyError, TypeError, ValueError, OSError):
        return None


def table_zone_bytes(tel):
    """Bytes of ctlb's flow-table memzones (ctlb_w<N>_v4, ctlb_w<N>_v6), over telemetry."""
    try:
        total = 0
        for zone in tel.query("/eal/memzone_list") or []:
            info = tel.query(f"/eal/memzone_info,{zone}")
            name = info.get("Name", "")
            if name.startswith("ctlb_w") and (name.endswith("_v4") or name.endswith("_v6")):
                total += int(info["Length"])
        return total
    except (KeyError, TypeError, ValueError, OSError, AttributeError):
        return None


def median_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


# ---------------------------------------------------------------- the harness

class Harness:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.cache = os.path.join(self.build, "bench")
        self.work = os.path.join(self.cache, "throughput-run")
        os.makedirs(self.work, exist_ok=True)
        self.flowgen = os.path.join(self.build, "bench", "ctlb_flowgen")
        self.tsc_tool = os.path.join(self.build, "bench", "ctlb_tsc_hz")
        self.dataplane = os.path.join(self.build, "config", "ctlb-dataplane")
        self.control = os.path.join(self.build, "control", "ctlb-control")
        self.duts = ("ctlb",) + (("ctlb+ager",) if args.with_ager else ()) + \
            (("ctlb-base",) if args.baseline_dataplane else ()) + ("testpmd",)
        self.baseline = os.path.abspath(args.baseline_dataplane) if args.baseline_dataplane else None
        self.testpmd = args.testpmd
        for tool in (self.flowgen, self.tsc_tool, self.dataplane, self.testpmd) + \
                ((self.control,) if args.with_ager else ()) + ((self.baseline,) if self.baseline else ()):
            if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
                raise RunError(f"{tool}: not found (bench/throughput.sh builds the tools)")
        self.all_cpus = os.sched_getaffinity(0)
        self.run_counter = 0
        self.raised_hugepages = None  # (original, ours)

    # -- pcaps

    def capture(self, scn):
        """Generates the scenario's capture unless a cached one matches; returns its summary."""
        base = os.path.join(self.cache, f"flows-{scn.get('capture', scn['name'])}")  # scenarios may share one
        pcap, meta_path = base + ".pcap", base + ".json"
        gen = scn["gen"] + ["--seed", str(self.args.seed)]
        args = " ".join(gen + ["--output", pcap, "--summary-json", meta_path])
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            fresh = (meta.get("args") == args and os.path.getsize(pcap) > 24
                     and os.path.getmtime(pcap) >= os.path.getmtime(self.flowgen))
        except (OSError, ValueError):
            fresh = False
        if not fresh:
            log(f"throughput: generating {pcap}")
            t0 = time.monotonic()
            out = run_quiet([self.flowgen] + args.split(" "))
            log(f"  {out.strip()} ({time.monotonic() - t0:.1f} s)")
            with open(meta_path) as f:
                meta = json.load(f)
            meta["generated"] = True
        meta["pcap"] = pcap
        data_room = max(256, HEADROOM + (meta["max_frame"] + 63) // 64 * 64)
        meta["data_room"] = data_room
        return meta

    # -- hugepages

    def ensure_hugepages(self, need_bytes):
        """Raises the 2 MB hugepage reservation so that need_bytes are free; never lowers it."""
        mi = meminfo()
        free = mi["HugePages_Free"] * 2048 * 1024
        if free >= need_bytes:
            return True
        deficit_pages = (need_bytes - free + (2 << 20) - 1) // (2 << 20)
        try:
            with open(NR_HUGEPAGES) as f:
                current = int(f.read())
        except OSError:
            return False
        avail = mi.get("MemAvailable", 0) * 1024
        if deficit_pages * (2 << 20) > avail - (2 << 30):
            log(f"throughput: {need_bytes >> 20} MiB of hugepages needed, {free >> 20} MiB free and only "
                f"{avail >> 20} MiB of memory available: not raising the reservation")
            return False
        target = current + deficit_pages
        try:
            with open(NR_HUGEPAGES, "w") as f:
                f.write(str(target))
            with open(NR_HUGEPAGES) as f:
                got = int(f.read())
        except OSError as e:
            log(f"throughput: cannot raise the hugepage reservation: {e}")
            return False
        if self.raised_hugepages is None:
            self.raised_hugepages = (current, got)
        else:
            self.raised_hugepages = (self.raised_hugepages[0], got)
        log(f"throughput: hugepages raised from {current} to {got} (2 MB pages) for {need_bytes >> 20} MiB")
        return meminfo()["HugePages_Free"] * 2048 * 1024 >= need_bytes

    def restore_hugepages(self):
        if self.raised_hugepages is None or os.environ.get("CTLB_KEEP_HUGEPAGES") == "1":
            return
        original, ours = self.raised_hugepages
        try:
            with open(NR_HUGEPAGES) as f:
                current = int(f.read())
            if current == ours:  # nobody changed it since: give back what we added
                with open(NR_HUGEPAGES, "w") as f:
                    f.write(str(original))
                log(f"throughput: hugepage reservation back to {original} (CTLB_KEEP_HUGEPAGES=1 keeps it)")
        except OSError:
            pass

    # -- one run

    def _popen(self, cmd, logf, stdin=None):
        return subprocess.Popen(cmd, stdin=stdin, stdout=logf, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.sched_setaffinity(0, self.all_cpus))

    def run(self, dut, scn, meta, rep):
        self.run_counter += 1
        prefix = f"ctlb-bench-{os.getpid()}-{self.run_counter}"
        logpath = os.path.join(self.work, f"{scn['name']}-{dut}-{rep}.log")
        mbufs = meta["packets"] + EXTRA_MBUFS
        if dut.startswith("ctlb"):
            config = os.path.join(self.work, f"{scn['name']}-{dut}.yaml")
            with open(config, "w") as f:
                f.write(ctlb_config(scn, prefix, mbufs, meta, self.work))
            cmd = [self.baseline if dut == "ctlb-base" else self.dataplane, "--config", config]
        else:
            cmd = [self.testpmd, "-l", "0,1", "--main-lcore", "0", "--file-prefix", prefix, "--no-pci",
                   "--huge-unlink", "--vdev", f"net_pcap0,rx_pcap={meta['pcap']},infinite_rx=1",
                   "--vdev", "net_null0,no-rx=1", "--", "--forward-mode=io", "--no-flush-rx", "--nb-cores=1",
                   "--rxq=1", "--txq=1", f"--total-num-mbufs={mbufs}", f"--mbuf-size={meta['data_room']}",
                   "--auto-start"]
        logf = open(logpath, "w+")
        logf.write(" ".join(cmd) + "\n")
        logf.flush()
        proc = self._popen(cmd, logf, stdin=subprocess.PIPE if dut == "testpmd" else None)
        tel = None
        control = None
        result = {"dut": dut, "rep": rep, "log": logpath}
        try:
            tel = Telemetry(prefix, proc, time.monotonic() + 120)
            if dut == "ctlb+ager":
                # The control process attaches and ages every second on the main
                # lcore's CPU, as deployed; it waits for the dataplane itself.
                control = self._popen([self.control, "--config", config], logf)
            result.update(self._measure(dut, scn, meta, tel, proc))
        finally:
            if tel:
                tel.close()
            if control:
                control.send_signal(signal.SIGTERM)
                try:
                    control.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    control.kill()
                    control.wait()
            rc = self._stop(dut, proc)
            logf.flush()
            logf.seek(0)
            output = logf.read()
            logf.close()
            self._cleanup_runtime(prefix)
        if rc != 0:
            raise RunError(f"{dut} exited with code {rc} (log: {logpath}):\n" + output[-2000:])
        if dut.startswith("ctlb"):
            final = parse_ctlb_final(output)
            if final:
                result["final"] = final
            if scn["kind"] == "flood":
                stats = final or (result["end"]["stats"] if result.get("end") else {})
                result["flood_rx"] = flood_received(meta, stats.get("port_west_rx_packets", 0))
        else:
            result["final_fwd"] = parse_testpmd_final(output)
        return result

    def _stop(self, dut, proc, wait_s=60):
        """Asks the DUT to exit; after wait_s seconds asks again, 20 s later kills it."""
        if proc.poll() is None:
            try:
                if dut == "testpmd":
                    proc.stdin.write(b"\n")  # "Press enter to exit"
                    proc.stdin.close()
                else:
                    proc.send_signal(signal.SIGTERM)
            except (BrokenPipeError, OSError):
                pass
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return proc.returncode

    @staticmethod
    def _cleanup_runtime(prefix):
        d = f"/var/run/dpdk/{prefix}"
        if os.path.isdir(d):
            for name in os.listdir(d):
                try:
                    os.unlink(os.path.join(d, name))
                except OSError:
                    pass
            try:
                os.rmdir(d)
            except OSError:
                pass

    def _reader(self, dut, tel):
        if dut.startswith("ctlb"):
            def read():
                s = tel.query("/ctlb/stats")
                t = time.monotonic()
                if not isinstance(s, dict) or "port_west_rx_packets" not in s:
                    return None
                return {"t": t, "rx": s["port_west_rx_packets"], "created": s.get("flows_created", 0),
                        "reopened": s.get("flows_reopened", 0), "stats": s}
        else:
            # net_pcap counts the packets it reads while loading the capture into memory, then
            # zeroes the counter before forwarding starts: forwarding has started once port 1
            # (net_null) has sent something.
            def read():
                s = tel.query("/ethdev/stats,0")
                t = time.monotonic()
                s1 = tel.query("/ethdev/stats,1")
                if not isinstance(s, dict) or "ipackets" not in s or not isinstance(s1, dict):
                    return None
                return {"t": t, "rx": s["ipackets"] if s1.get("opackets", 0) > 0 else 0, "stats": s}
        return read

    def _measure(self, dut, scn, meta, tel, proc):
        read = self._reader(dut, tel)
        P = meta["output_packets"]
        deadline = time.monotonic() + 120
        # Wait for the first packets (the capture is loaded before forwarding starts).
        first = None
        while True:
            if proc.poll() is not None:
                raise RunError(f"{dut} exited with code {proc.returncode} before forwarding")
            s = read()
            if s is not None and s["rx"] > 0:
                first = s
                break
            if time.monotonic() > deadline:
                raise RunError(f"{dut}: no packet received within 120 s")
            time.sleep(0.001)
        out = {}
        samples = [first]
        if scn["kind"] == "syn" and dut.startswith("ctlb"):
            # Connection set-up: the first pass, sampled densely.
            n = meta["connections"]
            limit = time.monotonic() + 60
            while samples[-1]["created"] < n and samples[-1]["rx"] < 1.2 * P and time.monotonic() < limit:
                time.sleep(self.args.syn_interval)
                s = read()
                if s is not None:
                    samples.append(s)
            lo, hi = 0.1 * n, 0.9 * n
            inside = [s for s in samples if lo <= s["created"] <= hi]
            if len(inside) < 3:
                raise RunError(f"ctlb: too few samples inside the first pass ({len(inside)}): "
                               "raise the capture size or lower --syn-interval")
            dt = inside[-1]["t"] - inside[0]["t"]
            out["cps"] = (inside[-1]["created"] - inside[0]["created"]) / dt
            out["pps"] = (inside[-1]["rx"] - inside[0]["rx"]) / dt
            out["window_s"] = dt
            out["samples"] = len(inside)
            time.sleep(0.05)
            out["end"] = read()
        else:
            flood = scn["kind"] == "flood"
            t_begin = first["t"] + self.args.warmup
            while time.monotonic() < t_begin:
                time.sleep(0.01)
            s = None
            while s is None:
                s = read()
            samples = [s]
            if flood and dut.startswith("ctlb"):
                out["memory_begin"] = heap_allocated(tel)
            t_end = samples[0]["t"] + self.args.window
            # A flood run of ctlb goes on until FLOOD_TARGET flood SYNs have been received.
            more_flood = (lambda rx: flood_received(meta, rx) < FLOOD_TARGET) if flood and dut.startswith("ctlb") \
                else (lambda rx: False)
            flood_deadline = t_end + 300
            while samples[-1]["t"] < t_end or more_flood(samples[-1]["rx"]):
                if samples[-1]["t"] > flood_deadline:
                    raise RunError(f"{dut}: fewer than {FLOOD_TARGET} flood SYNs received within "
                                   f"{self.args.window + 300:.0f} s")
                if proc.poll() is not None:
                    break
                time.sleep(self.args.interval)
                s = read()
                if s is not None:
                    samples.append(s)
            if proc.poll() is not None:
                raise RunError(f"{dut} exited with code {proc.returncode} while measured")
            a, b = samples[0], samples[-1]
            if (scn["kind"] == "established" and meta["data_start"] > 0) or flood:
                # Only the intervals inside the data rounds of one pass (in a flood capture the flood SYNs
                # are among the data rounds; the handshake prefix has none).
                lo, num, den, used, est = meta["data_start"], 0, 0.0, 0, 0
                for x, y in zip(samples, samples[1:]):
                    if x["rx"] // P != y["rx"] // P or x["rx"] % P < lo:
                        continue
                    num += y["rx"] - x["rx"]
                    den += y["t"] - x["t"]
                    used += 1
                    if flood:
                        est += (y["rx"] - flood_received(meta, y["rx"])) - (x["rx"] - flood_received(meta, x["rx"]))
                if den <= 0:
                    raise RunError(f"{dut}: no sample interval inside the data rounds")
                out["pps"] = num / den
                out["window_s"] = den
                out["samples"] = used
                if flood:
                    out["est_pps"] = est / den
                    if dut.startswith("ctlb"):
                        out["memory_end"] = heap_allocated(tel)
                        out["table_zones"] = table_zone_bytes(tel)
            else:
                out["pps"] = (b["rx"] - a["rx"]) / (b["t"] - a["t"])
                out["window_s"] = b["t"] - a["t"]
                out["samples"] = len(samples) - 1
            if dut.startswith("ctlb"):  # flows_reopened is a part of flows_created
                out["cps"] = (b["created"] - a["created"]) / (b["t"] - a["t"])
            if flood and dut.startswith("ctlb"):
                # Stop in the data rounds, well before the next pass's handshakes (where the established flows
                # re-synchronise through SYN_RECV), so that the final counters show them all ESTABLISHED.
                settle = time.monotonic() + 10
                while not meta["data_start"] <= b["rx"] % P < P - P // 5 and time.monotonic() < settle:
                    time.sleep(0.001)
                    b = read() or b
            out["end"] = b
        if dut == "testpmd":
            out["port1"] = tel.query("/ethdev/stats,1")
        out["passes"] = out["end"]["rx"] / P
        return out

    # -- everything

    def main(self):
        args = self.args
        names = [s["name"] for s in SCENARIOS]
        chosen = SCENARIOS if not args.scenarios else []
        for name in (args.scenarios.split(",") if args.scenarios else []):
            if name not in names:
                raise RunError(f"unknown scenario '{name}' (expected some of: {', '.join(names)})")
            chosen.append(next(s for s in SCENARIOS if s["name"] == name))
        if args.capacity:  # the flow table of every scenario that does not size its own (the flood's)
            chosen = [s if "capacity_v4" in s else {**s, "capacity_v4": args.capacity} for s in chosen]
        for scn in list(chosen):  # a flood scenario's ratio needs its baseline in the same invocation
            if scn.get("baseline") and scn["baseline"] not in [c["name"] for c in chosen]:
                chosen.insert(chosen.index(scn), next(s for s in SCENARIOS if s["name"] == scn["baseline"]))
        tsc_hz = int(run_quiet([self.tsc_tool]).strip())
        load = os.getloadavg()[0]
        cpu = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip() or "unknown"
        log(f"throughput: {cpu}, {os.cpu_count()} CPUs, TSC {tsc_hz / 1e9:.3f} GHz, rev {rev}, load {load:.2f}, "
            f"{args.reps} repetition(s), warm-up {args.warmup} s, window {args.window} s")
        metas, unwritten = {}, {}
        for s in chosen:
            try:
                metas[s["name"]] = self.capture(s)
            except RunError as e:  # e.g. a flow generator built without --lb-backends: the others still run
                log(f"throughput: skipping {s['name']}: {e}")
                unwritten[s["name"]] = str(e).splitlines()[-1].split("): ", 1)[-1]
        for s in chosen:  # a new flood capture must hold its baseline's packets, or the ratio compares apples with pears
            base = s.get("baseline")
            if metas.get(s["name"], {}).get("generated") and base in metas:
                t0 = time.monotonic()
                verify_flood_capture(metas[s["name"]], metas[base])
                log(f"  {os.path.basename(metas[s['name']]['pcap'])}: its established packets are those of "
                    f"{os.path.basename(metas[base]['pcap'])}, byte for byte ({time.monotonic() - t0:.1f} s)")
        os.sched_setaffinity(0, {min(self.all_cpus)})  # keep the sampling off the worker core

        results, active = {}, []
        for scn in chosen:
            if scn["name"] in unwritten:
                results[scn["name"]] = {"skipped": "no capture (below)", "why": unwritten[scn["name"]], "failed": True}
                continue
            meta = metas[scn["name"]]
            need = max(hugepage_need(meta, meta["data_room"], d, scn.get("capacity_v4", CAPACITY_V4))
                       for d in ("ctlb", "testpmd"))
            if not self.ensure_hugepages(need):
                log(f"throughput: skipping {scn['name']}: needs {need >> 20} MiB of free hugepages")
                results[scn["name"]] = {"skipped": f"needs {need >> 20} MiB of free hugepages"}
                continue
            results[scn["name"]] = {"meta": meta, "runs": {d: [] for d in self.duts}, "errors": [], "need": need}
            active.append(scn)
        # Repetitions go round the scenarios, and the DUTs within each, so that a slow spell of the host
        # spreads over all of them (the flood scenarios are compared with their baseline). ctlb and
        # ctlb-base swap places every other repetition: run against itself (the same binary as both), the
        # one run first came out about 5 % slower (runs paired 0.64-1.05, median 0.95, --reps 5).
        for rep in range(1, args.reps + 1):
            order = self.duts
            if self.baseline and rep % 2 == 0:
                order = tuple("ctlb-base" if d == "ctlb" else "ctlb" if d == "ctlb-base" else d for d in self.duts)
            for scn in active:
                res = results[scn["name"]]
                meta = res["meta"]
                for dut in order:
                    try:
                        if not self.ensure_hugepages(res["need"]):
                            raise RunError(f"needs {res['need'] >> 20} MiB of free hugepages")
                        r = self.run(dut, scn, meta, rep)
                        res["runs"][dut].append(r)
                        extra = f", {r['cps'] / 1e6:.3f} M conn/s" if r.get("cps") else ""
                        if r.get("est_pps") is not None:
                            extra += f", established {r['est_pps'] / 1e6:.2f} Mpps"
                        if r.get("flood_rx") is not None:
                            extra += f", {r['flood_rx'] / 1e6:.1f}M flood SYNs"
                        log(f"  {scn['name']:16} {dut:8} #{rep}: {r['pps'] / 1e6:7.2f} Mpps{extra} "
                            f"({r['samples']} intervals, {r['window_s']:.2f} s, {r['passes']:.1f} passes)")
                    except RunError as e:
                        res["errors"].append(f"{dut} #{rep}: {e}")
                        log(f"  {scn['name']:16} {dut:8} #{rep}: FAILED: {e}")

        report = summarize(chosen, results, tsc_hz)
        header = (f"ctlb throughput harness: {cpu}, TSC {tsc_hz / 1e9:.3f} GHz, rev {rev}, load {load:.2f} at start; "
                  f"{args.reps} run(s) of each DUT per scenario, alternated; warm-up {args.warmup} s, "
                  f"window {args.window} s" +
                  (f"; flow table capacity {args.capacity} (--capacity)" if args.capacity else ""))
        text = render(header, chosen, report)
        print(text)
        out_json = os.path.join(self.cache, "throughput.json")
        with open(out_json, "w") as f:
            json.dump({"header": header, "tsc_hz": tsc_hz, "report": report,
                       "runs": {k: {d: [strip_run(r) for r in v.get("runs", {}).get(d, [])]
                                    for d in self.duts} for k, v in results.items()}},
                      f, indent=1, default=str)
        with open(os.path.join(self.cache, "throughput.txt"), "w") as f:
            f.write(text + "\n")
        log(f"throughput: results in {out_json} and {os.path.join(self.cache, 'throughput.txt')}")
        failed = any(r.get("errors") or r.get("failed") for r in results.values()) or \
            any(e.get("ctlb", {}).get("checks") or e.get("ctlb-base", {}).get("checks") for e in report.values())
        return 1 if failed else 0


def ctlb_config(scn, prefix, mbufs, meta, work, eal_args="[--huge-unlink]", replay=True):
    """ctlb-dataplane's configuration for a scenario: one worker on lcore 1, the capture read by net_pcap on
    port west (replayed from memory, infinite_rx, unless replay is False: then read once, from the file),
    port east a net_null sink."""
    rx = f"net_pcap0,rx_pcap={meta['pcap']}" + (",infinite_rx=1" if replay else "")
    if scn.get("mode") == "lb":
        return lb_config(prefix, mbufs, meta, work, eal_args, rx, scn.get("capacity_v4", CAPACITY_V4))
    limit = scn.get("new_flow_limit")
    return (config_head("inline", prefix, mbufs, meta, eal_args, rx) +
            "    peer: east\n"
            "  - name: east\n"
            "    devargs: net_null0,no-rx=1\n"
            "    peer: west\n"
            f"tracking: {{capacity_v4: {scn.get('capacity_v4', CAPACITY_V4)}, capacity_v6: {CAPACITY_V6}, "
            "invalid_policy: forward" +
            ("" if not limit else f", new_flow_limit: {{rate: {limit['rate']}, burst: {limit['burst']}}}") + "}\n"
            f"control: {{socket: {work}/control-{prefix}.sock, metrics: ''}}\n")


def config_head(mode, prefix, mbufs, meta, eal_args, rx):
    """What every ctlb configuration of the harness starts with, up to port west's devargs."""
    return ("# generated by bench/throughput.py\n"
            f"mode: {mode}\n"
            f"file_prefix: {prefix}\n"
            "lcores: {main: 0, workers: [1]}\n"
            f"eal_args: {eal_args}\n"
            f"mempool: {{mbufs: {mbufs}, data_room: {meta['data_room']}}}\n"
            "ports:\n"
            "  - name: west\n"
            f"    devargs: {rx}\n")


def lb_config(prefix, mbufs, meta, work, eal_args, rx, capacity_v4=CAPACITY_V4):
    """ctlb's configuration in mode lb for a capture written with --lb-backends: the VIPs and pools of its
    summary, every output frame through port east."""
    lb = meta.get("lb")
    if not lb:
        raise RunError(f"{meta['pcap']}: not a capture for mode lb (no lb in its summary)")
    v6 = any(":" in v["address"] for v in lb["vips"])
    v4 = any(":" not in v["address"] for v in lb["vips"])
    east, gateways = [], []
    if v4:
        east.append(LB_EAST_V4)
        gateways.append(LB_GATEWAY_V4)
    if v6:
        east.append(LB_EAST_V6)
        gateways.append(LB_GATEWAY_V6)
    neighbours = [{"address": g, "mac": "02:00:00:00:fe:%02x" % i, "port": "east"} for i, g in enumerate(gateways)]
    backends = sorted({b["address"] for v in lb["vips"] for b in v["backends"]})
    for i, a in enumerate(backends):
        neighbours.append({"address": a, "mac": "02:00:00:01:%02x:%02x" % (i >> 8, i & 0xff), "port": "east"})
    # No names: a VIP's default name is its ADDRESS:PORT, as in the summary.
    vips = [{"address": v["address"], "port": v["port"], "table_size": v["table_size"],
             "backends": [{"address": b["address"], "port": b["port"], "weight": b["weight"]}
                          for b in v["backends"]]} for v in lb["vips"]]
    # YAML reads JSON: the lists go in as JSON.
    return (config_head("lb", prefix, mbufs, meta, eal_args, rx) +
            f"    addresses: {json.dumps(LB_WEST)}\n"
            "  - name: east\n"
            "    devargs: net_null0,no-rx=1\n"
            f"    addresses: {json.dumps(east)}\n"
            f"    gateway: {json.dumps(gateways)}\n"
            f"tracking: {{capacity_v4: {capacity_v4}, capacity_v6: {CAPACITY_V6}, invalid_policy: forward}}\n"
            "lb:\n"
            f"  neighbours: {json.dumps(neighbours)}\n"
            f"  vips: {json.dumps(vips)}\n"
            f"control: {{socket: {work}/control-{prefix}.sock, metrics: ''}}\n")


def strip_run(r):
    """A run for the JSON report: the end snapshot keeps only its nonzero counters."""
    r = dict(r)
    if r.get("end"):
        end = dict(r["end"])
        end["stats"] = {k: v for k, v in (end.get("stats") or {}).items() if v}
        r["end"] = end
    return r


def parse_ctlb_final(output):
    final, inside = {}, False
    for line in output.splitlines():
        if line.startswith("ctlb: final counters"):
            inside = True
        elif inside and line.startswith("  "):
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                final[parts[0]] = int(parts[1])
        elif inside:
            inside = False
    return final


def parse_testpmd_final(output):
    """RX-dropped / TX-dropped per port from testpmd's forward statistics at exit."""
    out = {}
    port = None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("----") and "Forward statistics for port" in line:
            port = line.split("port")[1].split()[0]
        elif port is not None and line.startswith("RX-packets:"):
            f = line.split()
            out[f"port{port}_rx_dropped"] = int(f[3])
        elif port is not None and line.startswith("TX-packets:"):
            f = line.split()
            out[f"port{port}_tx_dropped"] = int(f[3])
            port = None
    return out


# ---------------------------------------------------------------- report

def run_stats(r):
    """A ctlb run's counters at its end: those printed at exit are the last word (they list the nonzero ones
    only); the last telemetry snapshot stands in when the exit output is missing."""
    return dict(r.get("final") or (r["end"]["stats"] if r.get("end") else {}))


def summarize(chosen, results, tsc_hz):
    rows = {}
    for scn in chosen:
        res = results[scn["name"]]
        if "skipped" in res:
            rows[scn["name"]] = {k: res[k] for k in ("skipped", "why") if k in res}
            continue
        meta = res["meta"]
        entry = {"what": scn["what"], "kind": scn["kind"], "packets_per_pass": meta["output_packets"],
                 "data_start": meta["data_start"], "connections": meta["connections"],
                 "errors": res["errors"]}
        if meta.get("flood"):
            entry["meta_flood"] = meta["flood"]
        for dut in res["runs"]:
            runs = res["runs"][dut]
            med, lo, hi = median_spread([r["pps"] for r in runs])
            d = {"runs": len(runs), "mpps": med and med / 1e6, "mpps_min": lo and lo / 1e6,
                 "mpps_max": hi and hi / 1e6, "cycles_per_packet": med and tsc_hz / med}
            if dut == "ctlb" and runs:
                cmed, clo, chi = median_spread([r.get("cps") for r in runs])
                d.update({"cps": cmed, "cps_min": clo, "cps_max": chi})
                last = runs[-1]
                stats = run_stats(last)
                d["flows"] = {"created": stats.get("flows_created", 0), "reopened": stats.get("flows_reopened", 0),
                              "evicted": stats.get("flows_evicted", 0), "reclaimed": stats.get("flows_reclaimed", 0)}
                d["states"] = {s: stats.get(f"flows_{s}", 0) for s in STATES if stats.get(f"flows_{s}", 0)}
                drops = {}
                for k in ("untracked_table_full", "port_west_tx_dropped", "port_east_tx_dropped", "dropped_invalid",
                          "forwarded_invalid", "invalid", "handover_dropped", "dropped_no_peer"):
                    if stats.get(k):
                        drops[k] = stats[k]
                for r in INVALID_REASONS:
                    if stats.get(f"reason_{r}"):
                        drops[f"reason_{r}"] = stats[f"reason_{r}"]
                for p in MALFORMED:
                    if stats.get(f"parse_{p}"):
                        drops[f"parse_{p}"] = stats[f"parse_{p}"]
                for k in LB_DROPS:
                    if stats.get(k):
                        drops[k] = stats[k]
                d["drops"] = drops
                if scn.get("mode") == "lb":
                    d["lb_new_connections"] = stats.get("lb_new_connections", 0)
                d["busy_fraction"] = (stats.get("busy_loops", 0) / stats["loops"]) if stats.get("loops") else None
                d["counters"] = {k: v for k, v in stats.items() if v}
                d["checks"] = checks(scn, meta, stats, final=bool(last.get("final")))
                if scn["kind"] == "flood":
                    d["flood"] = flood_summary(scn, meta, runs)
                if scn.get("mode") == "lb" or scn["kind"] == "flood":
                    # Mode lb and floods: every run, not only the last, or a run that dropped packets could
                    # pass unseen.
                    for r in runs[:-1]:
                        d["checks"] += [f"run #{r['rep']}: {p}" for p in checks(scn, meta, run_stats(r), bool(r.get("final")))]
            if dut == "ctlb-base" and runs:
                # Checked as ctlb is, every run: a rate of a baseline that dropped packets means nothing.
                d["checks"] = []
                for r in runs:
                    d["checks"] += [f"ctlb-base run #{r['rep']}: {p}"
                                    for p in checks(scn, meta, run_stats(r), bool(r.get("final")))]
            if dut == "testpmd" and runs:
                last = runs[-1]
                drops = {k: v for k, v in last.get("final_fwd", {}).items() if v}
                p0 = last["end"]["stats"] if last.get("end") else {}
                p1 = last.get("port1") or {}
                for k, src in (("port0_imissed", p0.get("imissed")), ("port0_rx_nombuf", p0.get("rx_nombuf")),
                               ("port1_oerrors", p1.get("oerrors"))):
                    if src:
                        drops[k] = src
                d["drops"] = drops
            entry[dut] = d
        c, t = entry["ctlb"], entry["testpmd"]
        if entry.get("ctlb+ager", {}).get("mpps") and c.get("mpps"):
            entry["ager_ratio"] = entry["ctlb+ager"]["mpps"] / c["mpps"]
        b = entry.get("ctlb-base", {})
        if b.get("mpps") and c.get("mpps"):
            entry["speedup_vs_base"] = c["mpps"] / b["mpps"]
        if b.get("mpps") and t.get("mpps"):
            entry["base_ratio"] = b["mpps"] / t["mpps"]
            entry["base_own_cycles"] = b["cycles_per_packet"] - t["cycles_per_packet"]
        if c.get("mpps") and t.get("mpps"):
            entry["ratio"] = c["mpps"] / t["mpps"]
            entry["ctlb_own_cycles"] = c["cycles_per_packet"] - t["cycles_per_packet"]
        rows[scn["name"]] = entry
    for scn in chosen:  # flood: established packets per second against the baseline's (all established)
        e = rows[scn["name"]]
        base = rows.get(scn.get("baseline", ""), {})
        fl = e.get("ctlb", {}).get("flood")
        if not fl or not base.get("ctlb", {}).get("mpps") or fl["est_mpps"] is None:
            continue
        b = base["ctlb"]
        fl["baseline_mpps"] = b["mpps"]
        # Each flood run against the baseline run of the same repetition (made a minute apart at most: the
        # repetitions go round the scenarios), which cancels most of a shared host's slow spells.
        base_pps = {r["rep"]: r["pps"] for r in results[scn["baseline"]]["runs"]["ctlb"]}
        ratios = [r["est_pps"] / base_pps[r["rep"]] for r in results[scn["name"]]["runs"]["ctlb"]
                  if r.get("est_pps") and base_pps.get(r["rep"])]
        fl["ratio"], fl["ratio_min"], fl["ratio_max"] = median_spread(ratios)
        fl["ratio_pairs"] = len(ratios)
        # A pass's data phase costs T x (cycles per packet) during the flood and D x (the baseline's) for its
        # established packets alone: what is left is the flood SYNs' cost. Own cycles: ctlb minus testpmd on the
        # same capture (net_pcap's copy costs more on the larger flood capture).
        meta = e["meta_flood"]
        T, D, M = meta["syns"] + meta["data_packets"], meta["data_packets"], meta["syns"]
        fl["cycles_per_flood_syn"] = (T * e["ctlb"]["cycles_per_packet"] - D * b["cycles_per_packet"]) / M
        if e.get("ctlb_own_cycles") is not None and base.get("ctlb_own_cycles") is not None:
            fl["own_cycles_per_flood_syn"] = (T * e["ctlb_own_cycles"] - D * base["ctlb_own_cycles"]) / M
    return rows


def flood_summary(scn, meta, runs):
    """A flood scenario's figures over its ctlb runs: established Mpps, flood SYNs received, the counters that show
    the flood (end of each run), the tables' memory and the hugepage heap at the start and end of the window."""
    med, lo, hi = median_spread([r.get("est_pps") for r in runs])
    out = {"est_mpps": med and med / 1e6, "est_mpps_min": lo and lo / 1e6, "est_mpps_max": hi and hi / 1e6,
           "share": meta["flood"]["syns"] / (meta["flood"]["syns"] + meta["flood"]["data_packets"]),
           "limit": scn.get("new_flow_limit"), "runs": []}
    for r in runs:
        stats = run_stats(r)
        out["runs"].append({
            "rep": r["rep"], "flood_syns_received": r.get("flood_rx"),
            "flows_ESTABLISHED": stats.get("flows_ESTABLISHED", 0), "flows_SYN_RECV": stats.get("flows_SYN_RECV", 0),
            "flows_half_open": stats.get("flows_half_open", 0), "flows_created": stats.get("flows_created", 0),
            "flows_evicted": stats.get("flows_evicted", 0),
            "new_flows_rate_limited": stats.get("new_flows_rate_limited", 0),
            "untracked_table_full": stats.get("untracked_table_full", 0),
            "table_bytes": r.get("table_zones"), "heap_begin": r.get("memory_begin"), "heap_end": r.get("memory_end")})
    return out


def checks(scn, meta, stats, final=True):
    """What a correct run shows; a failed check is a finding to report. `final`: the counters printed at
    exit (every packet received has been handled), not a snapshot taken while running."""
    if scn["kind"] == "flood":
        return flood_checks(scn, meta, stats, final)
    problems = []
    if stats.get("untracked_table_full"):
        problems.append(f"untracked_table_full={stats['untracked_table_full']} with {meta['connections']} "
                        f"connections per pass and capacity {scn.get('capacity_v4', CAPACITY_V4)}")
    if stats.get("invalid"):
        problems.append(f"invalid={stats['invalid']}")
    for k in ("port_west_tx_dropped", "port_east_tx_dropped", "handover_dropped", "dropped_no_peer"):
        if stats.get(k):
            problems.append(f"{k}={stats[k]}")
    created = stats.get("flows_created", 0)
    if scn["kind"] in ("syn", "established") and created != meta["connections"]:
        problems.append(f"flows_created={created}, expected {meta['connections']}")
    if scn["kind"] == "lifecycle" and created < meta["connections"] and stats.get("port_west_rx_packets", 0) > \
            meta["output_packets"]:
        problems.append(f"flows_created={created} after a full pass, expected {meta['connections']}")
    if scn["kind"] == "established":
        # Stopped inside a replayed handshake prefix, some flows are re-synchronising (SYN_RECV).
        live = stats.get("flows_ESTABLISHED", 0) + stats.get("flows_SYN_RECV", 0)
        if live != meta["connections"]:
            problems.append(f"flows_ESTABLISHED + flows_SYN_RECV = {live} at the end, expected {meta['connections']}")
    if scn.get("mode") == "lb":
        problems += lb_checks(scn, meta, stats, final)
    total_states = sum(stats.get(f"flows_{s}", 0) for s in STATES)
    if total_states > max(created, meta["connections"]):
        problems.append(f"the flows-by-state gauges add up to {total_states}, more than the "
                        f"{max(created, meta['connections'])} connections")
    return problems


def flood_checks(scn, meta, stats, final):
    """A flood run: no packet of an established flow dropped, invalid or untracked, none of them lost its entry,
    and at least FLOOD_TARGET flood SYNs received. Inline with invalid_policy forward, the only packets ctlb may
    drop are those over the new-flow limit, and only a packet without an entry can be one; an established flow
    that lost its entry would show as a transition out of ESTABLISHED or SYN_RECV (eviction), a pick-up
    (NONE -> ESTABLISHED), a second handshake (SYN_SENT -> SYN_RECV more than once per flow: flood entries never
    see a SYN-ACK) or a missing flow at the end."""
    problems = []
    n = meta["connections"]
    rx = stats.get("port_west_rx_packets", 0)
    tx = stats.get("port_east_tx_packets", 0)
    limited = stats.get("new_flows_rate_limited", 0)
    flood = flood_received(meta, rx)
    if not final:
        problems.append("no final counters (exit output missing): the packet balance is unchecked")
    elif tx + limited != rx:
        problems.append(f"port_east_tx_packets {tx} + new_flows_rate_limited {limited} != port_west_rx_packets {rx}: "
                        f"{rx - tx - limited} packets lost besides the rate-limited SYNs")
    if limited > flood:
        problems.append(f"new_flows_rate_limited {limited} > the {flood} flood SYNs received")
    for k in ("invalid", "dropped_invalid", "forwarded_invalid", "port_west_tx_dropped", "port_east_tx_dropped",
              "handover_dropped", "dropped_no_peer", "port_east_rx_packets"):
        if stats.get(k):
            problems.append(f"{k}={stats[k]} (the baseline has 0)")
    # The harness stops a run inside the data rounds, where no established flow re-synchronises.
    if stats.get("flows_ESTABLISHED", 0) != n:
        problems.append(f"flows_ESTABLISHED={stats.get('flows_ESTABLISHED', 0)} at the end, expected the {n} "
                        "established flows")
    for k, why in (("transition_ESTABLISHED_NONE", "established flows evicted"),
                   ("transition_SYN_RECV_NONE", "re-synchronising established flows evicted"),
                   ("transition_NONE_ESTABLISHED", "established flows picked up again: they had lost their entry")):
        if stats.get(k):
            problems.append(f"{k}={stats[k]}: {why}")
    if stats.get("transition_SYN_SENT_SYN_RECV", 0) != n:
        problems.append(f"transition_SYN_SENT_SYN_RECV={stats.get('transition_SYN_SENT_SYN_RECV', 0)}, expected {n} "
                        "(one handshake per established flow; fewer: handshakes refused, more: flows opened again after "
                        "losing their entry)")
    if flood < FLOOD_TARGET:
        problems.append(f"{flood} flood SYNs received, fewer than {FLOOD_TARGET}")
    if scn.get("new_flow_limit"):
        if not limited:
            problems.append("new_flows_rate_limited=0: the new-flow limit never acted")
    else:
        if limited:
            problems.append(f"new_flows_rate_limited={limited} without a limit")
        if not stats.get("flows_evicted"):
            problems.append("flows_evicted=0: the flood never filled the table")
    if stats.get("flows_half_open", 0) + stats.get("flows_ESTABLISHED", 0) > scn.get("capacity_v4", CAPACITY_V4):
        problems.append("more flows than the table's capacity")
    return problems


def lb_checks(scn, meta, stats, final):
    """Mode lb: nothing dropped, a backend for every connection, every frame out through east."""
    problems = [f"{k}={stats[k]}" for k in LB_DROPS if stats.get(k)]
    # With static neighbours no packet waits for a next hop.
    for k in ("dropped_invalid", "forwarded_invalid", "arp_dropped", "port_west_tx_packets", "lb_waited_for_neighbour"):
        if stats.get(k):
            problems.append(f"{k}={stats[k]}")
    new = stats.get("lb_new_connections", 0)
    created = stats.get("flows_created", 0)
    # A reopened tuple (lifecycle replays) is a new connection: it chooses its backend again.
    if new != created:
        problems.append(f"lb_new_connections={new}, flows_created={created}: not every connection got a backend")
    if scn["kind"] in ("syn", "established") and new != meta["connections"]:
        problems.append(f"lb_new_connections={new}, expected {meta['connections']}")
    rx = stats.get("port_west_rx_packets", 0)
    out = stats.get("port_east_tx_packets", 0) - stats.get("slow_tx_sent", 0)
    if rx == 0 or (final and out != rx) or (not final and out < rx - 1024):
        problems.append(f"port_east_tx_packets={out} (without the main lcore's ARP) for "
                        f"port_west_rx_packets={rx}: not every frame went out through east")
    return problems


def fmt_rate(med, lo, hi, unit=1.0, digits=2):
    if med is None:
        return "-"
    return f"{med / unit:.{digits}f} ({lo / unit:.{digits}f}-{hi / unit:.{digits}f})"


def fmt_count(n):
    if n >= 10_000_000:
        return f"{n / 1e6:.0f}M"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)


def render(header, chosen, report):
    lines = [header, ""]
    cols = ["scenario", "DUT", "Mpps median (min-max)", "cycles/pkt", "ctlb/testpmd", "conn/s median (min-max)",
            "flows tracked", "drops by reason"]
    table = []
    for scn in chosen:
        e = report[scn["name"]]
        if "skipped" in e:
            table.append([scn["name"], "-", "skipped: " + e["skipped"], "", "", "", "", ""])
            continue
        for dut in [k for k in ("ctlb", "ctlb+ager", "ctlb-base", "testpmd") if k in e]:
            d = e[dut]
            if not d["runs"]:
                table.append([scn["name"], dut, "FAILED", "", "", "", "", ""])
                continue
            cyc = f"{d['cycles_per_packet']:.0f}"
            ratio = ""
            if dut == "ctlb" and e.get("ratio"):
                ratio = f"{e['ratio']:.2f}"
                cyc += f" (+{e['ctlb_own_cycles']:.0f})"
            if dut == "ctlb" and d.get("checks"):
                ratio = (ratio + " " if ratio else "") + "CHECK FAILED"
            if dut == "ctlb+ager" and e.get("ager_ratio"):
                ratio = f"x{e['ager_ratio']:.3f} of ctlb"
            if dut == "ctlb-base":
                if e.get("base_ratio"):
                    ratio = f"{e['base_ratio']:.2f}"
                    cyc += f" (+{e['base_own_cycles']:.0f})"
                if e.get("speedup_vs_base"):
                    ratio = (ratio + " " if ratio else "") + f"(ctlb x{e['speedup_vs_base']:.3f} of it)"
                if d.get("checks"):
                    ratio = (ratio + " " if ratio else "") + "CHECK FAILED"
            cps = fmt_rate(d.get("cps"), d.get("cps_min"), d.get("cps_max"), 1e6, 3) + " M" if d.get("cps") else ""
            if dut == "ctlb" and "flows" in d:
                f = d["flows"]
                flows = f"created {fmt_count(f['created'])}"
                if f["reopened"]:
                    flows += f" (reopened {fmt_count(f['reopened'])})"
                if f["evicted"]:
                    flows += f", evicted {fmt_count(f['evicted'])}"
                flows += "; " + " ".join(f"{k}={fmt_count(v)}" for k, v in d["states"].items())
                if "lb_new_connections" in d:
                    flows += f"; lb new {fmt_count(d['lb_new_connections'])}"
            else:
                flows = "-"
            drops = (", ".join(f"{k}={v}" for k, v in d["drops"].items()) or "none") if "drops" in d else "-"
            table.append([scn["name"] if dut == "ctlb" else "", dut,
                          fmt_rate(d["mpps"], d["mpps_min"], d["mpps_max"]) + (f" [{d['runs']}]" if d["runs"] else ""),
                          cyc, ratio, cps, flows, drops])
    widths = [max(len(r[i]) for r in table + [cols]) for i in range(len(cols))]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    lines.append(fmt.format(*cols).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for r in table:
        lines.append(fmt.format(*r).rstrip())
    lines.append("")
    lines.append("[n]: runs that gave a result. cycles/pkt: TSC cycles per packet of the one worker core "
                 "(TSC Hz / pps); (+N): ctlb's own work, ctlb minus testpmd.")
    lines.append("ctlb+ager (--with-ager): the same ctlb run with ctlb-control attached, aging every second; "
                 "x: its rate as a fraction of plain ctlb's.")
    if any("ctlb-base" in report[s["name"]] for s in chosen if "skipped" not in report[s["name"]]):
        lines.append("ctlb-base (--baseline-dataplane): another ctlb-dataplane binary (e.g. an earlier revision) on the "
                     "same config, alternated with the others; x: ctlb's rate as a fraction of its.")
    lines.append("conn/s: syn: flows_created per second over the first pass (10-90 % of the flows); "
                 "lifecycle: flows_created (reopened tuples included) per second in the window.")
    lines.append("flows tracked and drops: ctlb's counters at the end of its last run "
                 "(states are gauges at that moment); testpmd: RX/TX-dropped, imissed, rx_nombuf, oerrors.")
    lines += render_flood(chosen, report)
    lines.append("")
    for scn in chosen:
        e = report[scn["name"]]
        if "skipped" in e:
            if e.get("why"):
                lines.append(f"{scn['name']}: skipped: {e['why']}")
            continue
        note = f"{scn['name']}: {scn['what']}; {e['packets_per_pass']} packets per pass"
        if scn["kind"] == "established":
            note += (f", handshakes are packets 0..{e['data_start'] - 1} (a prefix), rates count only "
                     f"sample intervals inside the data rounds")
        lines.append(note)
        for p in e["ctlb"].get("checks", []) + e.get("ctlb-base", {}).get("checks", []):
            lines.append(f"  CHECK FAILED: {p}")
        for err in e["errors"]:
            lines.append(f"  ERROR: {err.splitlines()[0]}")
    return "\n".join(lines)


def render_flood(chosen, report):
    """The SYN-flood table: established throughput during the flood against the baseline, and what the
    counters show at the end of the runs (min-max over the runs)."""
    rows = []
    for scn in chosen:
        e = report[scn["name"]]
        fl = e.get("ctlb", {}).get("flood") if "skipped" not in e else None
        if not fl:
            continue
        c = e["ctlb"]

        def span(key, unit=1, fmt=fmt_count):
            vals = [r[key] for r in fl["runs"] if r.get(key) is not None]
            if not vals:
                return "-"
            lo, hi = (min(vals) / unit, max(vals) / unit) if unit != 1 else (min(vals), max(vals))
            return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}-{fmt(hi)}"

        mib = lambda v: f"{v:.0f}"  # noqa: E731
        limit = fl["limit"]
        rows.append([scn["name"], f"{limit['rate']}/s, burst {limit['burst']}" if limit else "none",
                     fmt_rate(c["mpps"], c["mpps_min"], c["mpps_max"]),
                     fmt_rate(fl["est_mpps"], fl["est_mpps_min"], fl["est_mpps_max"]),
                     (f"{fl['ratio']:.3f} ({fl['ratio_min']:.3f}-{fl['ratio_max']:.3f})" if fl.get("ratio") else "-"),
                     f"{c['cycles_per_packet']:.0f}" + (f" (+{e['ctlb_own_cycles']:.0f})" if e.get("ctlb_own_cycles")
                                                        else ""),
                     (f"{fl['cycles_per_flood_syn']:.0f}" if fl.get("cycles_per_flood_syn") else "-") +
                     (f" (+{fl['own_cycles_per_flood_syn']:.0f})" if fl.get("own_cycles_per_flood_syn") else ""),
                     span("flood_syns_received"), span("flows_ESTABLISHED"), span("flows_half_open"),
                     span("flows_evicted"), span("new_flows_rate_limited"), span("untracked_table_full"),
                     span("table_bytes", 1 << 20, mib),
                     f"{span('heap_begin', 1 << 20, mib)} / {span('heap_end', 1 << 20, mib)}",
                     "CHECK FAILED" if c.get("checks") else "ok"])
    if not rows:
        return []
    cols = ["flood scenario", "new-flow limit", "total Mpps", "established Mpps", "est. vs baseline",
            "cycles/pkt", "cycles/flood SYN", "flood SYNs", "ESTABLISHED", "half-open", "evicted", "rate-limited",
            "untracked", "tables MiB", "heap MiB start / end", "checks"]
    widths = [max(len(r[i]) for r in rows + [cols]) for i in range(len(cols))]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    first = next(s for s in chosen if report[s["name"]].get("ctlb", {}).get("flood"))
    fl0 = report[first["name"]]["ctlb"]["flood"]
    lines = ["", fmt.format(*cols).rstrip(), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r).rstrip() for r in rows]
    lines.append(f"Flood SYNs are {100 * fl0['share']:.1f} % of the data phase's packets. established Mpps: packets of "
                 "the established flows per second (intervals inside the data rounds); est. vs baseline: that over "
                 "the rate of the baseline run of the same repetition (every packet established there), median "
                 "(min-max) of those ratios. cycles/flood SYN: (packets of a "
                 "pass's data phase x cycles/pkt - its established packets x the baseline's cycles/pkt) / flood "
                 "SYNs; (+N): the same with ctlb's own cycles (ctlb minus testpmd on the same capture). Counters: "
                 "ctlb's at the end of each run (min-max). tables: the flow tables' memzones; heap: the DPDK "
                 "process's allocated hugepage memory when the window starts and at its end (bounded: equal).")
    return lines


def main():
    ap = argparse.ArgumentParser(description="ctlb vs testpmd throughput on net_pcap -> net_null, one worker core")
    ap.add_argument("--build", default=os.environ.get("CTLB_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--quick", action="store_true", help="1 repetition, short windows (a smoke run)")
    ap.add_argument("--with-ager", action="store_true",
                    help="also run ctlb with ctlb-control attached and aging (DUT ctlb+ager), alternated with the others")
    ap.add_argument("--reps", type=int, help="runs of each DUT per scenario (default 3, --quick 1)")
    ap.add_argument("--warmup", type=float, help="seconds after the first packet before measuring (default 1)")
    ap.add_argument("--window", type=float, help="measuring window in seconds (default 3)")
    ap.add_argument("--interval", type=float, default=0.01, help="sampling interval in seconds (default 0.01)")
    ap.add_argument("--syn-interval", type=float, default=0.002,
                    help="sampling interval during the first pass of the syn scenario (default 0.002)")
    ap.add_argument("--scenarios", help="comma list of: " + ", ".join(s["name"] for s in SCENARIOS))
    ap.add_argument("--seed", type=int, default=1, help="flow generator seed (default 1)")
    ap.add_argument("--testpmd", default="/usr/bin/dpdk-testpmd")
    ap.add_argument("--capacity", type=int, metavar="N",
                    help="IPv4 flow table capacity of every scenario but the flood's (default 2097152, a power "
                         "of two): how much of ctlb's cost is the index's size, e.g. page walks on a guest whose "
                         "host maps its memory with 4 KiB pages (build/bench/ctlb_tlb_reach tells)")
    ap.add_argument("--baseline-dataplane", metavar="BINARY",
                    help="also run this ctlb-dataplane (e.g. an earlier revision's build) as DUT ctlb-base, "
                         "alternated with the others, to compare two revisions in one invocation")
    args = ap.parse_args()
    if args.capacity is not None and (args.capacity < 1024 or args.capacity & (args.capacity - 1)):
        ap.error(f"--capacity must be a power of two >= 1024 (found {args.capacity})")
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.warmup is None:
        args.warmup = 0.3 if args.quick else 1.0
    if args.window is None:
        args.window = 1.0 if args.quick else 3.0
    if args.reps < 1 or args.window <= 0 or args.warmup < 0 or args.interval <= 0:
        ap.error("--reps must be >= 1, --window and --interval > 0, --warmup >= 0")
    if os.geteuid() != 0:
        print("throughput: needs root (DPDK hugepages)", file=sys.stderr)
        return 1
    h = None
    try:
        h = Harness(args)
        return h.main()
    except RunError as e:
        print(f"throughput: {e}", file=sys.stderr)
        return 1
    finally:
        if h:
            h.restore_hugepages()


if __name__ == "__main__":
    sys.exit(main())
