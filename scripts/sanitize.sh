#!/usr/bin/env bash
# ASan + UBSan build of ctlb and its tests (issue 6, item 2).
#
#   scripts/sanitize.sh [--build-dir DIR] [meson test arguments...]
#
# Configures (once) a separate build directory (default build-asan) with gcc,
# -Db_sanitize=address,undefined and -fno-sanitize-recover=all, builds it and
# runs `meson test` there. Without meson test arguments it runs the suites in
# SANITIZE_SUITES (those the tree defines); with arguments it passes them as
# they are (e.g. `--suite unit` or a test name). A second run rebuilds only
# what changed. Exits non-zero when a test fails or when any sanitizer report
# was written, with a one-line summary of the reports.
#
# How the reports are caught. ASAN_OPTIONS/UBSAN_OPTIONS (below) are exported
# to meson test, which passes them to the tests; the Python integration and
# e2e tests start ctlb-dataplane, ctlb-control and ctlbctl with the paths
# meson gives them (this build directory, checked before the run) and an
# inherited environment. Every report goes to a file under
# DIR/sanitizer-logs/ (log_path), not only to stderr: a report of a process a
# test kills, or of one that was expected to fail anyway (a bad config), is
# then not lost. Any file there fails the run.
#
# DPDK under ASan. Debian's librte_* are not instrumented: memory from
# rte_malloc/rte_mempool/memzones (hugepages) is invisible to ASan, so
# out-of-bounds accesses inside an mbuf or a memzone are not caught; the
# heap, stack and globals of our own code are. EAL's default base-virtaddr
# hint (4 GiB) lies in ASan's shadow gap, which is reserved, so the kernel
# places the memseg lists elsewhere, in the ordinary mmap area, which is what
# EAL does anyway when a hint is refused; nothing is mapped at a fixed address
# in that range, and the secondary (ctlb-control) attaches at the addresses
# the primary chose. See the ASan options below for what DPDK needs.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=build-asan
if [[ "${1:-}" == "--build-dir" ]]; then
  BUILD_DIR=$2
  shift 2
fi

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# Suites run by default. conformance-kernel is left out: it replays the
# scenarios against the kernel's conntrack and runs none of our code.
SANITIZE_SUITES=(unit config conformance integration e2e fuzz malformed faults reload flood)

# -O1 -g1: half the compile time of -O2 -g (measured on the largest files)
# with stack traces that still name file and line. _GLIBCXX_ASSERTIONS adds
# libstdc++'s bounds checks (operator[] on vectors, spans, strings).
SETUP_OPTIONS=(
  -Doptimization=1
  -Ddebug=true
  -Db_sanitize=address,undefined
  -Db_lundef=false
  -Dbenchmarks=false
  "-Dcpp_args=-g1 -fno-sanitize-recover=all -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS"
)

ctlb_install_packages
ctlb_setup_hugepages

# Configure once; reconfigure only when this script's options changed.
options_stamp="$BUILD_DIR/ctlb-sanitize-options"
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  CC=gcc CXX=g++ meson setup "$BUILD_DIR" "${SETUP_OPTIONS[@]}"
  printf '%s\n' "${SETUP_OPTIONS[@]}" >"$options_stamp"
elif [[ "$(printf '%s\n' "${SETUP_OPTIONS[@]}")" != "$(cat "$options_stamp" 2>/dev/null)" ]]; then
  meson configure "$BUILD_DIR" "${SETUP_OPTIONS[@]}"
  printf '%s\n' "${SETUP_OPTIONS[@]}" >"$options_stamp"
fi
nice -n 5 ninja -C "$BUILD_DIR"

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
#   detect_stack_use_after_return catches a pointer to a dead stack frame.
#   Nothing is needed for DPDK's memory: EAL reserves its address space
#   without MAP_FIXED and so never lands on ASan's shadow (see the header).
# UBSan: halt_on_error with -fno-sanitize-recover=all: the first report ends
#   the process with a non-zero exit code, print_stacktrace says where.
ASAN_OPTIONS="log_path=$LOG_DIR/asan:log_exe_name=1:atexit=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1"
UBSAN_OPTIONS="log_path=$LOG_DIR/ubsan:log_exe_name=1:halt_on_error=1:print_stacktrace=1"
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
    for arg in t["cmd"]:
        path = os.path.realpath(arg)
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
  defined=$(meson introspect --tests "$BUILD_DIR" | /usr/bin/python3 -c \
    'import json,sys; print(" ".join(sorted({s for t in json.load(sys.stdin) for s in t["suite"]})))')
  args=()
  for s in "${SANITIZE_SUITES[@]}"; do
    if [[ " $defined " == *" ctlb:$s "* || " $defined " == *" $s "* ]]; then
      args+=(--suite "$s")
    fi
  done
  set -- "${args[@]}"
fi

set +e
meson test -C "$BUILD_DIR" --no-rebuild --print-errorlogs --num-processes 2 "$@"
rc=$?
set -e

# One closing line: test results and sanitizer reports.
set +e
/usr/bin/python3 - "$BUILD_DIR/meson-logs/testlog.json" "$LOG_DIR" <<'PY'
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
    exe = os.path.basename(path).split(".")[1] if os.path.basename(path).count(".") >= 2 else "?"
    ran[exe] = ran.get(exe, 0) + 1
    if all(stats_line.match(l) or not l.strip() for l in text.splitlines()):
        continue
    print(f"==== {path}", file=sys.stderr)
    print(text, file=sys.stderr)
    summary = re.findall(r"^SUMMARY: .*$", text, re.M)
    first = summary[0] if summary else next((l for l in text.splitlines() if "runtime error" in l or "ERROR:" in l),
                                            text.strip().splitlines()[0])
    reports.append(f"{os.path.basename(path)}: {first.strip()}")
print("sanitize: instrumented processes that exited normally: " +
      (", ".join(f"{exe} {n}" for exe, n in sorted(ran.items())) or "none"))
line = f"sanitize: {passed} passed, {failed} failed, {counts.get('SKIP', 0)} skipped"
if reports:
    line += f"; {len(reports)} sanitizer report(s): " + " | ".join(reports)
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
