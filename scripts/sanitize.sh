#!/usr/bin/env bash
# ASan + UBSan build of ctlb and its tests (issue 6, item 2).
#
#   scripts/sanitize.sh [--build-dir DIR] [meson test arguments...]
#
# Configures (once) a separate build directory (default build-asan) with gcc,
# -Db_sanitize=address,undefined and -fno-sanitize-recover=all, builds it and
# runs `meson test` there. Without meson test arguments it runs every suite
# but those in SANITIZE_EXCLUDED_SUITES; with arguments it passes them as
# they are (e.g. `--suite unit` or a test name). A second run rebuilds only
# what changed. Exits non-zero when a test fails or when any sanitizer report
# was written, with a one-line summary of the reports.
#
# How the reports are caught. ASAN_OPTIONS/UBSAN_OPTIONS/LSAN_OPTIONS
# (below) are exported to meson test, which passes them on; the Python
# integration, e2e, faults, reload and flood tests start ctlb-dataplane,
# ctlb-control and ctlbctl with the paths meson gives them and an inherited
# environment. Before the run every executable a test names is checked to be
# this build's and linked with libasan and libubsan; after it, the number of
# instrumented processes of each executable that exited normally is printed
# (ASan's atexit statistics), the proof that they are the ones that ran.
# Reports go to files under DIR/sanitizer-logs/ (log_path), not only to
# stderr: a report of a process that was expected to fail anyway (a bad
# config), or whose output a test does not show, is not lost. Any file there
# that holds more than ASan's exit statistics fails the run. UBSan's report
# itself can only go to stderr with gcc (see UBSAN_OPTIONS below); its
# SUMMARY line reaches the file, and -fno-sanitize-recover=all ends the
# process at the first one.
#
# DPDK under ASan. Debian's librte_* are not instrumented, and memory from
# rte_malloc/rte_mempool/memzones (hugepages) is invisible to ASan: an
# out-of-bounds access inside an mbuf or a memzone (flow tables, counters,
# LB state in ctlb-dataplane) is not caught there; the heap, stack and
# globals of our own code are, and the unit, fuzz, malformed and flood tests
# put the same flow tables and LB state on the ASan heap (aligned_alloc), so
# the table and parser code is checked there. EAL's default base-virtaddr
# hint (4 GiB) lies in ASan's shadow gap, so the kernel refuses the hint and
# EAL takes the address it is given ("Base virtual address hint ... not
# respected", a debug message), as it does whenever a hint is taken; EAL
# maps nothing with MAP_FIXED there, and the secondary (ctlb-control)
# attaches at the addresses the primary chose. No EAL argument nor ASan
# option is needed for that. One leak inside DPDK is suppressed
# (tests/sanitize/lsan.supp says why); leaks of our own code fail the run.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=build-asan
if [[ "${1:-}" == "--build-dir" ]]; then
  BUILD_DIR=$2
  shift 2
fi

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# Suites left out of the default run (every other suite the tree defines
# runs, so that a new one is sanitized without a change here):
# conformance-kernel replays the scenarios against the kernel's conntrack and
# runs none of our code.
SANITIZE_EXCLUDED_SUITES=(conformance-kernel)

# -O1 -g1: half the compile time of -O2 -g (measured on the largest files)
# with stack traces that still name file and line. _GLIBCXX_ASSERTIONS adds
# libstdc++'s bounds checks (operator[] on vectors, spans, strings).
SETUP_OPTIONS=(
  -Doptimization=1
  -Ddebug=true
  -Db_sanitize=address,undefined
  -Db_lundef=false
  -Dbenchmarks=false
  "-Dcpp_args=-g1 -fsanitize=float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS -D_GLIBCXX_SANITIZE_VECTOR"
)

ctlb_install_packages
ctlb_setup_hugepages

build_start=$SECONDS
# Configure once. When this script's options changed, set the directory up
# again from nothing (meson keeps options given before, even with --wipe);
# only a directory this script made (it holds the options stamp) is removed.
options_stamp="$BUILD_DIR/ctlb-sanitize-options"
wanted_options=$(printf '%s\n' "${SETUP_OPTIONS[@]}")
if [[ -f "$BUILD_DIR/build.ninja" && ! -f $options_stamp ]]; then
  ctlb_log "$BUILD_DIR is a build directory scripts/sanitize.sh did not make; give another --build-dir"
  exit 2
fi
if [[ -f $options_stamp && "$(cat "$options_stamp")" != "$wanted_options" ]]; then
  ctlb_log "sanitizer build options changed: setting up $BUILD_DIR again"
  rm -rf "$BUILD_DIR"
fi
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  CC=gcc CXX=g++ meson setup "$BUILD_DIR" "${SETUP_OPTIONS[@]}"
  printf '%s\n' "$wanted_options" >"$options_stamp"
fi
nice -n 5 ninja -C "$BUILD_DIR"
build_seconds=$((SECONDS - build_start))

LOG_DIR="$PWD/$BUILD_DIR/sanitizer-logs"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# ASan: log_path (+ log_exe_name: asan.EXE.PID) keeps every report, see
#   above; atexit=1 makes every instrumented process that exits normally also
#   write its allocator statistics there: the count of those files per
#   executable is printed at the end, the proof that the instrumented
#   binaries ran. detect_leaks (the default, said here on purpose): LSan runs
#   at the exit of each such process, and a leak of our own code fails the
#   run (DPDK's own: tests/sanitize/lsan.supp). check_initialization_order
#   and strict_init_order catch static-init order bugs;
#   detect_stack_use_after_return catches a pointer to a dead stack frame;
#   strict_string_checks checks that strings given to libc are terminated.
#   Nothing is needed for DPDK's memory: EAL reserves its address space
#   without MAP_FIXED and so never lands on ASan's shadow (see the header).
# UBSan: halt_on_error with -fno-sanitize-recover=all: the first report ends
#   the process with a non-zero exit code, print_stacktrace says where.
#   With gcc, ASan and UBSan are two runtimes that share one exported
#   __sanitizer_set_report_path (libasan's, GCC bug 94328): UBSan's log_path
#   ends up as ASan's, while UBSan's own report still goes to stderr. So
#   UBSAN_OPTIONS repeats ASan's log_path (another value, or none, would move
#   or undo ASan's), and print_summary=1 sends UBSan's one-line SUMMARY
#   through ASan's report file: that line fails the run; the full UBSan
#   report is in the test's output (or the log of the process it started).
ASAN_OPTIONS="log_path=$LOG_DIR/asan:log_exe_name=1:atexit=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:strict_string_checks=1"
UBSAN_OPTIONS="log_path=$LOG_DIR/asan:log_exe_name=1:print_summary=1:halt_on_error=1:print_stacktrace=1"
LSAN_OPTIONS="suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS

# Every executable a test runs (the command and any argument that is a file
# of a build directory) must be this build's, and instrumented.
/usr/bin/python3 - "$BUILD_DIR" <<'PY'
import json, os, subprocess, sys
build = os.path.realpath(sys.argv[1])
tests = json.loads(subprocess.run(["meson", "introspect", "--tests", build],
                                  check=True, capture_output=True, text=True).stdout)
bad, checked = [], set()
for t in tests:
    cwd = t.get("workdir") or build  # meson runs a test there; relative arguments are from there
    for arg in t["cmd"]:
        path = os.path.realpath(os.path.join(cwd, arg))
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            continue
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        if not path.startswith(build + os.sep):
            if path.startswith(os.path.realpath(".") + os.sep):
                bad.append(f"{t['name']}: runs {arg}, not a file of {build}")
            continue
        if path in checked:
            continue
        checked.add(path)
        dyn = subprocess.run(["readelf", "-d", "-W", path], check=True, capture_output=True, text=True).stdout
        if "libasan.so" not in dyn or "libubsan.so" not in dyn:
            bad.append(f"{t['name']}: {arg} is not linked with libasan and libubsan")
if bad:
    print("sanitize: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"sanitize: {len(checked)} instrumented executables under test: " +
      " ".join(sorted(os.path.relpath(p, build) for p in checked)))
PY

if (($# == 0)); then
  args=()
  for s in "${SANITIZE_EXCLUDED_SUITES[@]}"; do
    args+=(--no-suite "$s")
  done
  set -- "${args[@]}"
fi

test_start=$SECONDS
set +e
meson test -C "$BUILD_DIR" --no-rebuild --print-errorlogs --num-processes 2 "$@"
rc=$?
test_seconds=$((SECONDS - test_start))
set -e

# One closing line: test results and sanitizer reports.
set +e
/usr/bin/python3 - "$BUILD_DIR/meson-logs/testlog.json" "$LOG_DIR" "$build_seconds" "$test_seconds" <<'PY'
import glob, json, os, re, sys
counts = {}
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        counts[r["result"]] = counts.get(r["result"], 0) + 1
failed = sum(counts.get(k, 0) for k in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"))
passed = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
# A file holds a report unless every line of it is ASan's exit statistics
# (atexit=1); any other line, known or not, counts as a report.
stats_line = re.compile(r"^(AddressSanitizer exit stats:|Stats: |  mallocs by size class|\s+\d+ \(\s*\d+\): mapped:"
                        r"|Quarantine limits:|Global quarantine stats:)")
reports, ran = [], {}
for path in sorted(glob.glob(os.path.join(sys.argv[2], "*"))):
    with open(path, errors="replace") as f:
        text = f.read()
    exe = os.path.basename(path).split(".", 1)[-1].rsplit(".", 1)[0]  # asan.EXE.PID
    ran[exe] = ran.get(exe, 0) + 1
    if all(stats_line.match(l) or not l.strip() for l in text.splitlines()):
        continue
    if len(reports) < 3:  # the first ones in full; all of them are in the directory
        print(f"==== {path}", file=sys.stderr)
        print(text, file=sys.stderr)
    summary = re.findall(r"^SUMMARY: .*$", text, re.M)
    first = summary[0] if summary else next((l for l in text.splitlines() if "runtime error" in l or "ERROR:" in l),
                                            text.strip().splitlines()[0])
    reports.append(f"{exe}: {first.strip()}")
if reports:
    print(f"sanitize: all reports: {sys.argv[2]}", file=sys.stderr)
print("sanitize: instrumented processes seen (exit statistics or a report): " +
      (", ".join(f"{exe} {n}" for exe, n in sorted(ran.items())) or "none"))
line = f"sanitize: build {sys.argv[3]} s, tests {sys.argv[4]} s: {passed} passed, {failed} failed, {counts.get('SKIP', 0)} skipped"
if reports:
    kinds = {}
    for r in reports:
        kinds[r] = kinds.get(r, 0) + 1
    line += f"; {len(reports)} sanitizer report(s): " + " | ".join(f"{n} x {r}" for r, n in kinds.items())
else:
    line += "; no sanitizer report"
print(line)
sys.exit(1 if reports else 0)
PY
reports_rc=$?
set -e
if ((rc == 0 && reports_rc != 0)); then
  rc=1
fi
exit $rc
