#!/usr/bin/env bash
# Instructions per packet of the tracker's micro-benchmarks, counted under
# valgrind: deterministic, so that a change can be judged on a shared host
# where times vary by +-20 % from run to run. See --help.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  cat <<'USAGE'
usage: bench/instructions.sh [--baseline BUILD_DIR] [--iterations N] [BENCHMARK...]

Runs each micro-benchmark of bench/micro.cpp named (default: fixed/BM_Parse,
fixed/BM_KeyHash, fixed/BM_TrackerEstablished/10000,
fixed/BM_TrackerEstablishedBurst32/10000,
fixed/BM_TrackerEstablishedPipelined32/10000; the same with /1000000 also
exist, slower to set up) twice under valgrind (cachegrind, no cache
simulation), with exactly N and 2N iterations (CTLB_MICRO_ITERATIONS), and
prints (instructions of the 2N run - those of the N run) / (N x packets per
iteration): the instructions per packet of the timed loop alone, set-up
excluded. Burst and pipelined benchmarks take 32 packets an iteration.

  --baseline DIR   also count DIR/bench/ctlb_micro (another build, e.g. of an
                   earlier revision) and print the ratio.
  --iterations N   default 4096.

Instructions are not cycles: cache misses and dependency stalls do not show
here. It tells whether a change does less work, not whether it is faster.
Environment: CTLB_BUILD_DIR (default: build).
USAGE
}

build=${CTLB_BUILD_DIR:-$root/build}
baseline=""
iters=4096
names=()
while (($#)); do
  case $1 in
    --baseline) baseline=${2:?--baseline needs a build directory}; shift 2 ;;
    --iterations) iters=${2:?--iterations needs a number}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "instructions: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
if ! [[ $iters =~ ^[1-9][0-9]*$ ]]; then
  echo "instructions: --iterations must be a positive integer (got '$iters')" >&2
  exit 2
fi
if ((${#names[@]} == 0)); then
  names=(fixed/BM_Parse fixed/BM_KeyHash fixed/BM_TrackerEstablished/10000
    fixed/BM_TrackerEstablishedBurst32/10000 fixed/BM_TrackerEstablishedPipelined32/10000)
fi
if ! command -v valgrind >/dev/null; then
  echo "instructions: valgrind is not installed (apt-get install valgrind)" >&2
  exit 1
fi

ninja -C "$build" bench/ctlb_micro >&2
bins=("$build/bench/ctlb_micro")
if [[ -n $baseline ]]; then
  if [[ ! -x $baseline/bench/ctlb_micro ]]; then
    echo "instructions: $baseline/bench/ctlb_micro: not found (build it: ninja -C $baseline bench/ctlb_micro)" >&2
    exit 1
  fi
  bins+=("$baseline/bench/ctlb_micro")
fi

# Instructions of one run of benchmark $2 of binary $1 with $3 iterations.
count() {
  local out
  out=$(CTLB_MICRO_ITERATIONS=$3 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$1" --benchmark_filter="^$2/iterations:" 2>&1) || { echo "instructions: $1 $2 failed:" >&2; echo "$out" >&2; return 1; }
  if ! grep -q "^$2/iterations:" <<<"$out"; then
    echo "instructions: $1 has no benchmark $2 (names start with fixed/; an older build may lack them)" >&2
    return 1
  fi
  if grep -q "ERROR OCCURRED" <<<"$out"; then
    echo "instructions: $2 reported an error:" >&2
    grep -A1 "ERROR OCCURRED" <<<"$out" >&2
    return 1
  fi
  local ir
  ir=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' <<<"$out" | tr -d ,)
  if ! [[ $ir =~ ^[0-9]+$ ]]; then
    echo "instructions: no instruction count in valgrind's output for $1 $2:" >&2
    tail -5 <<<"$out" >&2
    return 1
  fi
  echo "$ir"
}

echo "current: $build; baseline: ${baseline:-none}"
printf '%-48s %14s' "benchmark (instructions per packet)" "current"
[[ -n $baseline ]] && printf ' %14s %8s' "baseline" "ratio"
printf '\n'
for name in "${names[@]}"; do
  # Packets per iteration: the batched benchmarks take 32.
  per=32
  [[ $name == *Burst32* || $name == *Pipelined32* ]] || per=1
  vals=()
  for b in "${bins[@]}"; do
    a=$(count "$b" "$name" "$iters")
    z=$(count "$b" "$name" $((2 * iters)))
    if ((z <= a)); then
      echo "instructions: $name: $((2 * iters)) iterations counted no more than $iters ($z <= $a)" >&2
      exit 1
    fi
    vals+=("$(awk -v a="$a" -v z="$z" -v n="$iters" -v p="$per" 'BEGIN { printf "%.1f", (z - a) / (n * p) }')")
  done
  printf '%-48s %14s' "$name" "${vals[0]}"
  if [[ -n $baseline ]]; then
    printf ' %14s %8s' "${vals[1]}" "$(awk -v x="${vals[0]}" -v y="${vals[1]}" 'BEGIN { printf "%.3f", x / y }')"
  fi
  printf '\n'
done
