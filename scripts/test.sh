#!/usr/bin/env bash
# The README's test command: installs what is missing (Debian 12, as root),
# prepares hugepages, builds, and runs the whole suite with `meson test`;
# then the hardening stages of issue 6: the unit, config, integration and
# other suites again in an ASan+UBSan build (scripts/sanitize.sh), and every
# libFuzzer target for a bounded time (scripts/fuzz.sh, CTLB_FUZZ_SECONDS
# each, default 60). Idempotent: a second run installs nothing and rebuilds
# only what changed.
#
#   scripts/test.sh [--build-dir DIR] [meson test arguments...]
#
# With meson test arguments (e.g. `--suite unit`) only that part of the main
# build's suite runs, without the hardening stages. CTLB_HARDENING=0 skips
# them too.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=build
if [[ "${1:-}" == "--build-dir" ]]; then
  BUILD_DIR=$2
  shift 2
fi

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ctlb_install_packages
ctlb_setup_hugepages

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  meson setup "$BUILD_DIR" --buildtype=release
fi
ninja -C "$BUILD_DIR"

set +e
meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@"
rc=$?
set -e

# One closing line any CI reader understands.
/usr/bin/python3 - "$BUILD_DIR/meson-logs/testlog.json" <<'PY'
import json, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0, "TIMEOUT": 0, "ERROR": 0, "EXPECTEDFAIL": 0, "UNEXPECTEDPASS": 0}
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        counts[r["result"]] = counts.get(r["result"], 0) + 1
        if r["result"] == "SKIP":
            tail = (r.get("stdout") or "").strip().splitlines()[-1:] or ["(no reason printed)"]
            print(f"skipped: {r['name']}: {tail[0]}")
failed = counts["FAIL"] + counts["TIMEOUT"] + counts["ERROR"] + counts["UNEXPECTEDPASS"]
print(f"{counts['OK'] + counts['EXPECTEDFAIL']} passed, {failed} failed, {counts['SKIP']} skipped")
PY

if (($# == 0)) && [[ ${CTLB_HARDENING:-1} != 0 ]]; then
  stage() {
    local name=$1 start=$SECONDS
    shift
    ctlb_log "hardening stage: $name"
    if "$@"; then
      printf 'hardening: %s passed (%d s)\n' "$name" $((SECONDS - start))
    else
      printf 'hardening: %s FAILED (%d s)\n' "$name" $((SECONDS - start))
      rc=1
    fi
  }
  stage "sanitizers (ASan+UBSan)" bash scripts/sanitize.sh
  stage "fuzzing (${CTLB_FUZZ_SECONDS:-60} s per target)" bash scripts/fuzz.sh --seconds "${CTLB_FUZZ_SECONDS:-60}"
fi
exit $rc
