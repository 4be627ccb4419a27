#!/usr/bin/env bash
# The README's test command: installs what is missing (Debian 12, as root),
# prepares hugepages, builds, and runs the whole suite with `meson test`.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#
#   scripts/test.sh [--build-dir DIR] [meson test arguments...]
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
exit $rc
