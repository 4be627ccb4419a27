#!/usr/bin/env bash
# The README's first command. Until the live dataplane lands, the demo runs
# ctlb's tracker offline over a bundled capture of real Linux TCP traffic
# (scripts/data/demo.pcap, made by scripts/make_demo_capture.sh): the same
# parser, flow table and state machine the workers run, with the capture's
# timestamps as the clock.
#
#   scripts/demo.sh [CAPTURE.pcap]
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
bold "-- the first connection, packet by packet --"
"$CTLBCTL" trace "$CAPTURE" | head -n 12

# The seeds' classic incident: a server that never calls close().
stuck_flow=$("$CTLBCTL" trace "$CAPTURE" --json --stuck-after 30 | tail -n 1 |
  /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]["stuck"]; c=[x for x in s if x["kind"]=="close_wait"]; print(c[0]["flow"] if c else "")')
if [[ -n $stuck_flow ]]; then
  bold "-- a connection that gets stuck: $stuck_flow --"
  "$CTLBCTL" trace "$CAPTURE" | grep -F -- "$stuck_flow" || true
fi

bold "-- summary --"
"$CTLBCTL" trace "$CAPTURE" --summary --stuck-after 30
