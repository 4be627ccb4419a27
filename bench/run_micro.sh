#!/usr/bin/env bash
# Builds and runs the micro-benchmarks (3 repetitions, aggregates only) and
# prints a table of the medians. Extra arguments go to ctlb_micro, e.g.
#   bench/run_micro.sh --benchmark_filter='Lookup'
# The benchmark's own console output goes to stderr, the median table to
# stdout, the JSON report to $CTLB_BUILD_DIR/bench/micro.json.
#
# Environment: CTLB_BUILD_DIR (default: build), CTLB_BENCH_CPU (CPU to pin
# to with taskset; default: the last CPU; "none" to not pin), CTLB_BENCH_THP=0
# (tables on 4 KiB pages instead of transparent huge pages).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${CTLB_BUILD_DIR:-$root/build}
cd "$root"

if [[ ! -f $build/build.ninja ]]; then
  meson setup "$build" -Dbenchmarks=true >&2
fi
# Only the benchmark target: the rest of the tree need not build for this.
ninja -C "$build" bench/ctlb_micro >&2

cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
cpu_family=$(lscpu | sed -n 's/^CPU family:[[:space:]]*//p' | head -n1)
cpu_modelno=$(lscpu | sed -n 's/^Model:[[:space:]]*//p' | head -n1)
ncpu=$(nproc)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
load=$(cut -d' ' -f1 /proc/loadavg)

pin=()
pin_cpu=${CTLB_BENCH_CPU:-$((ncpu - 1))}
if [[ $pin_cpu != none ]] && command -v taskset >/dev/null; then
  pin=(taskset -c "$pin_cpu")
fi

echo "== ctlb_micro on ${cpu_model} (family ${cpu_family} model ${cpu_modelno}), ${ncpu} CPUs," \
  "pinned to CPU ${pin_cpu}, rev ${rev}, load ${load}, THP ${CTLB_BENCH_THP:-1} =="
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "   warning: load average ${load}: other work on this machine may disturb the results"
fi

json=$build/bench/micro.json
"${pin[@]}" "$build/bench/ctlb_micro" \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out="$json" --benchmark_out_format=json "$@" >&2

python3 - "$json" <<'EOF'
import json, sys

with open(sys.argv[1]) as f:
    report = json.load(f)
rows = [b for b in report["benchmarks"] if b.get("aggregate_name") == "median"]
print("median of %d repetitions; ns/pkt = CPU ns per packet (or per table op), "
      "cycles/pkt = TSC ticks (%.0f MHz nominal)"
      % (rows[0]["repetitions"] if rows else 0, report["context"].get("mhz_per_cpu", 0)))
head = "%-34s %9s %11s %9s  %s" % ("benchmark", "ns/pkt", "cycles/pkt", "Mpps", "other counters")
print(head)
print("-" * len(head))
skip = {"ns/pkt", "cycles/pkt", "items_per_second"}
for b in rows:
    name = b["run_name"]
    if b.get("error_occurred"):
        print("%-34s ERROR: %s" % (name, b.get("error_message", "")))
        continue
    extra = " ".join("%s=%.4g" % (k, b[k]) for k in sorted(b)
                     if isinstance(b[k], float) and k not in skip and k not in
                     ("real_time", "cpu_time", "iterations"))
    ns = b.get("ns/pkt")
    cyc = b.get("cycles/pkt")
    ips = b.get("items_per_second")
    print("%-34s %9s %11s %9s  %s" % (
        name,
        "%.2f" % ns if ns is not None else "-",
        "%.1f" % cyc if cyc is not None else "-",
        "%.1f" % (ips / 1e6) if ips else "-",
        extra))
EOF
