#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) in
# build-fuzz/ and runs them. See --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALL_TARGETS=(parse tracker config api)

usage() {
  cat <<'EOF'
usage: scripts/fuzz.sh [--seconds N] [--jobs J] [--merge] [--build-only] [TARGET...]

Builds the fuzz targets of tests/fuzz (parse, tracker, config, api) with
clang, libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer
(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all) in
build-fuzz/, then runs each TARGET named (default: all four) in turn.

  --seconds N   run each target for N seconds (libFuzzer -max_total_time).
                Without it each target runs until interrupted (Ctrl-C ends
                that target and goes on with the next one).
  --jobs J      J fuzzing processes per target (libFuzzer -fork=J), default 1.
                With 2 cores, keep it at 1 or 2.
  --merge       afterwards, merge what each run found into the committed
                corpus tests/fuzz/corpus/<target>/ (libFuzzer -merge=1: only
                inputs that add coverage are kept). Without it the committed
                seeds are never modified.
  --build-only  configure and build, run nothing.
  -h, --help    this text.

Each target works on a copy of its committed corpus in
build-fuzz/corpus/<target>/ (kept between runs, so coverage accumulates);
crashes, leaks, timeouts (25 s per input) and out-of-memory (2 GiB) inputs
are written to build-fuzz/artifacts/<target>/. For each target one line
gives the executions, exec/s, coverage (cov: edges, ft: features) and the
corpus size; the script exits 1 if any target failed, printing the
reproducer's path and how to replay it, 2 on a usage or build error.
tests/fuzz/<target>.dict, where present, is the target's dictionary.
scripts/test.sh runs `scripts/fuzz.sh --seconds 60` (no terminal needed).

Replay a reproducer: build-fuzz/tests/fuzz/fuzz_<target> FILE
(or, in the normal build, build/tests/fuzz/fuzz_<target> FILE). A fixed
bug's reproducer goes into tests/fuzz/corpus/<target>/, named after the bug,
so that `meson test --suite fuzz` replays it on every build.

Environment: CXX (default clang++-14, else clang++), CTLB_FUZZ_BUILD (the
build directory, default build-fuzz), CTLB_FUZZ_TRACE=1 (fuzz_tracker prints
one line per segment).
EOF
}

SECONDS_EACH=""
JOBS=1
MERGE=0
BUILD_ONLY=0
TARGETS=()
while (($#)); do
  case $1 in
    --seconds) SECONDS_EACH=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --seconds=*) SECONDS_EACH=${1#*=}; shift ;;
    --jobs) JOBS=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --jobs=*) JOBS=${1#*=}; shift ;;
    --merge) MERGE=1; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
if [[ -n $SECONDS_EACH && ! $SECONDS_EACH =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: --seconds takes a positive number of seconds" >&2
  exit 2
fi
if [[ ! $JOBS =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: --jobs takes a positive number" >&2
  exit 2
fi
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  if [[ ! " ${ALL_TARGETS[*]} " == *" $t "* ]]; then
    echo "fuzz.sh: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
done

log() { printf 'fuzz: %s\n' "$*" >&2; }

# ---- build ------------------------------------------------------------------
if [[ -z ${CXX:-} ]]; then
  if command -v clang++-14 >/dev/null; then CXX=clang++-14; else CXX=clang++; fi
fi
if ! command -v "$CXX" >/dev/null; then
  log "$CXX not found: install clang-14 and libclang-rt-14-dev (scripts/lib.sh lists them)"
  exit 2
fi
BUILD=${CTLB_FUZZ_BUILD:-$ROOT/build-fuzz}
cd "$ROOT"
if [[ ! -f $BUILD/build.ninja ]]; then
  log "configuring $BUILD with $CXX"
  setup_log=$(mktemp)
  # Only the fuzz targets are built (named below), yet the whole project is
  # configured: warnings of clang in code it never compiles here do not
  # matter, so -Werror stays off in this directory.
  CXX=$CXX meson setup "$BUILD" \
    -Dfuzzing=true -Dbenchmarks=false -Dwerror=false \
    -Dbuildtype=debugoptimized -Db_ndebug=false \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer" \
    -Dcpp_link_args="-fno-sanitize-recover=all" >"$setup_log" 2>&1 || {
    cat "$setup_log" >&2
    rm -rf "$BUILD" "$setup_log"
    log "meson setup failed"
    exit 2
  }
  rm -f "$setup_log"
fi
NINJA_TARGETS=()
for t in "${TARGETS[@]}"; do NINJA_TARGETS+=("tests/fuzz/fuzz_$t"); done
start=$(date +%s)
if ! ninja -C "$BUILD" "${NINJA_TARGETS[@]}" >"$BUILD/fuzz-build.log" 2>&1; then
  cat "$BUILD/fuzz-build.log" >&2
  log "build failed"
  exit 2
fi
log "built ${TARGETS[*]} in $(($(date +%s) - start)) s"
((BUILD_ONLY)) && exit 0

# ---- run --------------------------------------------------------------------
SYMBOLIZER=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
[[ -z $SYMBOLIZER && -x /usr/lib/llvm-14/bin/llvm-symbolizer ]] && SYMBOLIZER=/usr/lib/llvm-14/bin/llvm-symbolizer
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
[[ -n $SYMBOLIZER ]] && export ASAN_SYMBOLIZER_PATH=$SYMBOLIZER

# Largest input per target: frames up to a jumbo frame with IPv6 extension
# headers; configurations and request sessions of a few KiB.
max_len() {
  case $1 in
    parse) echo 20000 ;;
    tracker) echo 8192 ;;
    config) echo 8192 ;;
    api) echo 4096 ;;
  esac
}

failed=()
declare -A summary
for t in "${TARGETS[@]}"; do
  bin=$BUILD/tests/fuzz/fuzz_$t
  seeds=$ROOT/tests/fuzz/corpus/$t
  work=$BUILD/corpus/$t
  artifacts=$BUILD/artifacts/$t
  mkdir -p "$work" "$artifacts"
  cp -n "$seeds"/* "$work"/ 2>/dev/null || true
  logf=$BUILD/fuzz-$t.log
  args=(-max_len="$(max_len "$t")" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/" "$work")
  [[ -n $SECONDS_EACH ]] && args=(-max_total_time="$SECONDS_EACH" "${args[@]}")
  # Keys and values of the format (YAML keys, request fields) where one exists.
  [[ -f $ROOT/tests/fuzz/$t.dict ]] && args=(-dict="$ROOT/tests/fuzz/$t.dict" "${args[@]}")
  ((JOBS > 1)) && args=(-fork="$JOBS" -ignore_crashes=0 -ignore_ooms=0 -ignore_timeouts=0 "${args[@]}")
  if [[ -n $SECONDS_EACH ]]; then how="$SECONDS_EACH s"; else how="until interrupted (Ctrl-C)"; fi
  log "$t: $how, corpus $work (log $logf)"
  before=$(find "$artifacts" -type f | wc -l)
  # Ctrl-C reaches the fuzzer (it stops and prints its stats); the script
  # notes it and goes on with the next target.
  interrupted=0
  trap 'interrupted=1' INT
  set +e
  "$bin" "${args[@]}" >"$logf" 2>&1
  rc=$?
  set -e
  trap - INT
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logf" | tail -1 | grep -o '[0-9]*$' || echo "?")
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$logf" | tail -1 | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED|RELOAD)' "$logf" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo "?")
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo "?")
  corpus=$(find "$work" -type f | wc -l)
  line=$(printf '%-8s execs %-10s exec/s %-7s cov %-6s ft %-7s corpus %s' "$t" "$execs" "$speed" "$cov" "$ft" "$corpus")
  after=$(find "$artifacts" -type f | wc -l)
  # libFuzzer exits 0 at -max_total_time, 72 when interrupted (SIGINT), and
  # otherwise non-zero after writing the reproducer of a crash, leak,
  # timeout or out-of-memory input.
  if { ((rc != 0)) && ! { ((interrupted)) && ((rc == 72)); }; } || ((after > before)); then
    repro=$(grep -o "Test unit written to .*" "$logf" | tail -1 | sed 's/Test unit written to //')
    [[ -z $repro ]] && repro=$(ls -t "$artifacts"/* 2>/dev/null | head -1)
    failed+=("$t")
    summary[$t]="$line  FAILED (exit $rc)"
    log "$t FAILED (exit $rc): $(grep -m1 -E 'ERROR: |fuzz invariant broken|runtime error|deadly signal' "$logf" || echo 'see the log')"
    log "  reproducer: ${repro:-none written}; log: $logf"
    [[ -n $repro ]] && log "  replay: $bin $repro"
  else
    summary[$t]=$line
  fi
  if ((MERGE)); then
    log "$t: merging new inputs into $seeds"
    "$bin" -merge=1 -max_len="$(max_len "$t")" -timeout=25 -rss_limit_mb=2048 "$seeds" "$work" \
      >"$BUILD/merge-$t.log" 2>&1 || log "$t: merge failed, see $BUILD/merge-$t.log"
  fi
done

echo "fuzz summary (${SECONDS_EACH:+$SECONDS_EACH s per target, }libFuzzer + ASan + UBSan):"
for t in "${TARGETS[@]}"; do echo "  ${summary[$t]}"; done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (reproducers in $BUILD/artifacts/)"
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, no crash, leak or timeout"
