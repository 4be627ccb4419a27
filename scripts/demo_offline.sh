#!/usr/bin/env bash
# The offline demo: ctlb's tracker over a bundled capture of real Linux TCP
# traffic (scripts/data/demo.pcap, made by scripts/make_demo_capture.sh); it
# needs no NIC, no hugepages and no running dataplane. `ctlbctl trace` runs the
# same parser, flow table and state machine the workers run, with the
# capture's timestamps as the clock. The live load-balancer demo is
# scripts/demo.sh.
#
#   scripts/demo_offline.sh [CAPTURE.pcap]
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

CAPTURE=${1:-scripts/data/demo.pcap}
BUILD_DIR=build

ctlb_install_packages
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  meson setup "$BUILD_DIR" --buildtype=release >/dev/null
fi
ninja -C "$BUILD_DIR" control/ctlbctl >/dev/null
CTLBCTL=$BUILD_DIR/control/ctlbctl

if [[ ! -f $CAPTURE ]]; then
  ctlb_log "no capture at $CAPTURE"
  exit 1
fi

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

bold "== ctlb tracks every TCP connection of $CAPTURE =="
echo "(ctlbctl trace: per packet the flow, direction, flags, conntrack state,"
echo " both endpoints' RFC 793 states, the verdict and its reason)"

# Pick two connections from the JSON output: the first that ends in TIME_WAIT
# (a normal life), and the first one reported stuck in CLOSE_WAIT.
read -r normal_flow stuck_flow < <("$CTLBCTL" trace "$CAPTURE" --json --stuck-after 30 | /usr/bin/python3 -c '
import json, sys
last, order, stuck = {}, [], ""
for line in sys.stdin:
    r = json.loads(line)
    if "summary" in r:
        c = [x for x in r["summary"]["stuck"] if x["kind"] == "close_wait"]
        stuck = c[0]["flow"] if c else ""
    elif r["flow"]:
        if r["flow"] not in last:
            order.append(r["flow"])
        last[r["flow"]] = r["state"]
normal = next((f for f in order if last[f] == "TIME_WAIT"), "")
print(normal.replace(" ", "_") or "-", stuck.replace(" ", "_") or "-")
')

show_flow() {
  "$CTLBCTL" trace "$CAPTURE" | awk -v f="$1" 'index($0, " " f " ") > 0'
}
if [[ $normal_flow != - ]]; then
  bold "-- a normal connection, handshake to TIME_WAIT: ${normal_flow//_/ } --"
  show_flow "${normal_flow//_/ }"
fi
if [[ $stuck_flow != - ]]; then
  bold "-- the seeds' stuck CLOSE_WAIT: ${stuck_flow//_/ } --"
  echo "(the client closed; the server application never calls close())"
  show_flow "${stuck_flow//_/ }"
fi

bold "-- summary --"
"$CTLBCTL" trace "$CAPTURE" --summary --stuck-after 30
