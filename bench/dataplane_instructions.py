#!/usr/bin/env python3
"""Instructions per packet of ctlb-dataplane's worker path, counted, not timed.

Runs the real ctlb-dataplane (real EAL, --no-huge, one worker) under valgrind's
callgrind on a throughput scenario's capture, read once from the file by
net_pcap (no infinite_rx), into net_null, collecting only inside
process_burst() and process_burst_lb() (and what they call: parse, tracking,
NAT, the tx of full buffers). It waits until the worker has received every
packet of the capture and stops the dataplane. Two captures of the same 10k
flows are counted, with R and 2R request/response rounds after the same
handshakes: the difference of their counts over the difference of their
packets is the cost of an established flow's data packet, the steady state
that bench/throughput.sh's rates measure; the whole 2R capture's count per
packet (handshakes included) is printed beside it. The same capture gives the same count
on any host, however slow or noisy, so two builds can be compared to the
instruction (bench/throughput.sh cannot resolve changes under about 15 % on a
shared VM). What the count leaves out: the rx burst (net_pcap's copy, which
testpmd pays too), the final flush, the poll loop. Instructions are not cycles:
cache misses do not show. Valgrind counts each iteration of a rep-prefixed
instruction (memset of a large array becomes rep stosb) as one instruction.

Usage: bench/dataplane_instructions.py [--build DIR] [--baseline-dataplane BIN]
         [--scenarios established-10k,lb-established-10k] [--rounds N] [--detail]
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput  # noqa: E402  (scenarios, captures, configurations, telemetry)

# Collection is toggled on entering and leaving each function named: exactly
# these two. The patterns also match their lambdas, so an out-of-line lambda
# would toggle collection off inside them: out_of_line_lambdas() refuses a
# binary that has one.
COLLECT = ["ctlb::dataplane::process_burst(*", "ctlb::dataplane::process_burst_lb(*"]
MBUFS = 65536  # the capture is read from the file, not held in the pool


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def out_of_line_lambdas(binary):
    """Functions inside process_burst()/process_burst_lb() that the compiler left out of line (a lambda's
    operator()): their names match COLLECT too, so entering one toggles collection off and its
    instructions would silently go uncounted."""
    out = subprocess.run(["nm", "-C", binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        name = line.split(" ", 2)[-1]
        if any(name.startswith(c[:-1]) for c in COLLECT) and "::{lambda" in name:
            found.append(name)
    return found


def scenario(name, rounds):
    for s in throughput.SCENARIOS:
        if s["name"] == name:
            if s["kind"] != "established":
                raise throughput.RunError(f"{name}: only established scenarios are counted "
                                          "(a capture read once must leave the flows established)")
            s = dict(s)
            gen = list(s["gen"])
            gen[gen.index("--rounds") + 1] = str(rounds)
            s["gen"] = gen
            s["capture"] = f"instructions-{name}-r{rounds}"
            return s
    raise throughput.RunError(f"unknown scenario {name} (established ones: " +
                              ", ".join(s["name"] for s in throughput.SCENARIOS if s["kind"] == "established") + ")")


def collected(outfile):
    """The instructions callgrind collected (only inside process_burst*, toggled per thread: the worker's) and
    its annotation by function, inclusive."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", outfile],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+PROGRAM TOTALS", line)
        if m:
            return int(m.group(1).replace(",", "")), out
    return 0, out


def count(h, binary, tag, scn, meta, work, detail):
    """Runs one pass of the capture; returns (instructions counted, packets, final counters)."""
    prefix = f"ctlb-instr-{os.getpid()}-{os.path.basename(os.path.dirname(os.path.dirname(binary)))}"
    config = os.path.join(work, f"{scn['name']}-{tag}.yaml")
    mb = throughput.table_bytes(scn.get("capacity_v4", throughput.CAPACITY_V4)) >> 20
    mb += (MBUFS * throughput.mbuf_bytes(meta["data_room"]) >> 20) + 512
    with open(config, "w") as f:
        f.write(throughput.ctlb_config(scn, prefix, MBUFS, meta, work,
                                       eal_args=f"[--no-huge, -m, '{mb}']", replay=False))
    outfile = os.path.join(work, f"callgrind-{scn['name']}-{tag}.out")
    for name in os.listdir(work):
        if name.startswith(os.path.basename(outfile)):
            os.unlink(os.path.join(work, name))
    logpath = os.path.join(work, f"{scn['name']}-{tag}.log")
    cmd = (["valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}", "--collect-atstart=no"] +
           [f"--toggle-collect={c}" for c in COLLECT] + [binary, "--config", config])
    with open(logpath, "w+") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        tel = None
        try:
            tel = throughput.Telemetry(prefix, proc, time.monotonic() + 600)
            tel.sock.settimeout(120)  # valgrind runs one thread at a time: replies come late
            deadline = time.monotonic() + 3600
            while True:
                try:
                    s = tel.query("/ctlb/stats")
                except TimeoutError:
                    # A loaded host can hold a reply past the timeout. The next query reads
                    # that late reply (older counters, which only delays the stop).
                    log("  telemetry reply later than 120 s (host busy?); asking again")
                    s = None
                rx = s.get("port_west_rx_packets", 0) if isinstance(s, dict) else 0
                if rx >= meta["packets"]:
                    break
                if proc.poll() is not None:
                    raise throughput.RunError(f"ctlb-dataplane exited ({proc.returncode}); log: {logpath}")
                if time.monotonic() > deadline:
                    raise throughput.RunError(f"only {rx} of {meta['packets']} packets received in an hour")
                time.sleep(1)
        finally:
            if tel:
                tel.close()
            # Under valgrind the exit (a mode lb teardown, callgrind writing its counts) can take
            # longer than the harness's usual 60 s; a SIGKILL would lose the counts.
            h._stop("ctlb", proc, wait_s=600)
            h._cleanup_runtime(prefix)
        logf.seek(0)
        output = logf.read()
    if proc.returncode != 0:
        raise throughput.RunError(f"ctlb-dataplane exited with code {proc.returncode} (log: {logpath}):\n" +
                                  output[-2000:])
    final = throughput.parse_ctlb_final(output)
    problems = throughput.checks(scn, meta, final)
    if problems:
        raise throughput.RunError(f"{scn['name']}: " + "; ".join(problems) + f" (log: {logpath})")
    # The worker's thread writes its own part file when it has one; take every part.
    parts = [os.path.join(work, n) for n in os.listdir(work) if n.startswith(os.path.basename(outfile))]
    instr, annotated = 0, ""
    for part in parts:
        n, out = collected(part)
        instr += n
        if n:
            annotated = out
    packets = final.get("port_west_rx_packets", 0)
    if not instr or packets != meta["packets"]:
        raise throughput.RunError(f"{scn['name']}: counted {instr} instructions over {packets} packets "
                                  f"(expected {meta['packets']}); log: {logpath}")
    if detail:
        print(f"\n{scn['name']} ({binary}): where process_burst's instructions go, per packet "
              f"(callgrind_annotate {outfile})")
        for line in annotated.splitlines():
            m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)", line)
            # Under 100 %: not the thread's frames above process_burst.
            if m and 1.0 <= float(m.group(2)) < 100.0:
                print(f"  {int(m.group(1).replace(',', '')) / packets:8.1f}  {m.group(3)[:150]}")
    return instr, packets, final


def main():
    ap = argparse.ArgumentParser(description="instructions per packet of ctlb-dataplane's worker path "
                                             "(callgrind on the real dataplane, one pass of a capture)")
    ap.add_argument("--build", default=os.path.join(throughput.ROOT, "build"))
    ap.add_argument("--baseline-dataplane", metavar="BINARY",
                    help="also count this ctlb-dataplane (e.g. an earlier revision's build) and print the ratio")
    ap.add_argument("--scenarios", default="established-10k,lb-established-10k",
                    help="comma list of established scenarios of bench/throughput.py")
    ap.add_argument("--rounds", type=int, default=5,
                    help="request/response rounds R: captures of R and 2R rounds are counted (default 5: "
                         "130k and 230k packets, the 10k flows' 30k handshake packets in both)")
    ap.add_argument("--detail", action="store_true", help="also print the inclusive count of each function "
                                                           "that takes 1 %% or more")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    for tool in ("valgrind", "callgrind_annotate"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            log(f"dataplane_instructions: {tool} not found (apt-get install valgrind)")
            return 1
    build = os.path.abspath(args.build)
    binaries = [os.path.join(build, "config", "ctlb-dataplane")]
    if args.baseline_dataplane:
        binaries.append(os.path.abspath(args.baseline_dataplane))
    for b in binaries:
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            log(f"dataplane_instructions: {b}: not found")
            return 1
        lambdas = out_of_line_lambdas(b)
        if lambdas:
            log(f"dataplane_instructions: {b}: out of line, so not counted (mark them always_inline): " +
                "; ".join(lambdas))
            return 1
    work = os.path.join(build, "bench", "instructions-run")
    os.makedirs(work, exist_ok=True)
    rows = []
    try:
        # For its captures (ctlb_flowgen); testpmd is not run.
        h = throughput.Harness(argparse.Namespace(build=build, with_ager=False, baseline_dataplane=None,
                                                  testpmd=sys.executable, seed=1))
        for name in args.scenarios.split(","):
            # R and 2R rounds: the difference is R rounds of data alone, the steady state that
            # bench/throughput.sh measures (its rates leave out the handshakes).
            runs = []
            for rounds in (args.rounds, 2 * args.rounds):
                scn = scenario(name.strip(), rounds)
                meta = h.capture(scn)
                for b, tag in zip(binaries, ("current", "baseline")):
                    log(f"dataplane_instructions: {scn['name']} ({rounds} rounds, {meta['packets']} packets) "
                        f"under callgrind: {b}")
                    t0 = time.monotonic()
                    instr, packets, final = count(h, b, tag, scn, meta, work, args.detail)
                    log(f"  {instr / packets:.1f} instructions per packet ({time.monotonic() - t0:.0f} s; fast path "
                        f"{final.get('fast_path', 0)} of {final.get('tcp_packets', 0)} TCP segments)")
                    runs.append((rounds, tag, instr, packets))
            vals = []
            for tag in ("current", "baseline")[:len(binaries)]:
                (_, _, i1, p1), (_, _, i2, p2) = [r for r in runs if r[1] == tag]
                vals.append(((i2 - i1) / (p2 - p1), i2 / p2))
            rows.append((name.strip(), vals))
    except throughput.RunError as e:
        log(f"dataplane_instructions: {e}")
        return 1
    print(f"\nctlb-dataplane worker path: instructions per packet (process_burst and what it calls) of 10k "
          f"established flows' data packets ({2 * args.rounds} rounds minus {args.rounds}); all: of the whole "
          f"{2 * args.rounds}-round capture, handshakes included")
    head = f"{'scenario':<22} {'data':>9}"
    if len(binaries) > 1:
        head += f" {'baseline':>9} {'ratio':>6}"
    head += f" {'all':>9}" + (f" {'baseline':>9}" if len(binaries) > 1 else "")
    print(head)
    for name, vals in rows:
        line = f"{name:<22} {vals[0][0]:>9.1f}"
        if len(vals) > 1:
            line += f" {vals[1][0]:>9.1f} {vals[0][0] / vals[1][0]:>6.3f}"
        line += f" {vals[0][1]:>9.1f}" + (f" {vals[1][1]:>9.1f}" if len(vals) > 1 else "")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
