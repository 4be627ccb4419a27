#!/usr/bin/env bash
# The README's first command: ctlb balancing real Linux TCP, live, between
# network namespaces on this machine (no NIC needed), in about 25 seconds once
# built.
#
#   [client 198.18.1.2] c0 == d0 [dp: ctlb-dataplane, net_af_packet on d0, d1] d1 == s0 [sw: br0] == b1 198.18.2.11
#                                                                                                  == b2 198.18.2.12
#                                                                                                  == b3 198.18.2.13
#
# The client sends HTTP requests, one TCP connection each, to the VIP
# 198.18.100.1:80 for 20 s while `ctlbctl watch` shows the rates; after 10 s
# backend b3 is drained (no new connections, open ones finish). At the end the
# dataplane's counters, the per-backend split ctlb counted and the one the
# client saw. Everything it creates (namespaces, processes, temporary files,
# DPDK run-time files) is removed when it ends, also on Ctrl-C.
#
# The topology is that of tests/e2e/lb_e2e_test.py, whose backend server and
# request code it runs. The offline demo (a capture through `ctlbctl trace`)
# is scripts/demo_offline.sh.
#
#   scripts/demo.sh        (as root; CTLB_BUILD_DIR picks the build directory, default build)
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
  echo "scripts/demo.sh must run as root: it creates network namespaces, reserves hugepages" >&2
  echo "and runs DPDK (try: sudo scripts/demo.sh)" >&2
  exit 1
fi

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

BUILD_DIR=${CTLB_BUILD_DIR:-build}
PY=/usr/bin/python3

# Quiet unless it fails: then the tool's own output.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    ctlb_log "failed: $*"
    exit 1
  fi
}

ctlb_install_packages
ctlb_log "building ctlb-dataplane, ctlb-control and ctlbctl in $BUILD_DIR (a minute the first time)"
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  quiet meson setup "$BUILD_DIR" --buildtype=release
fi
quiet ninja -C "$BUILD_DIR" config/ctlb-dataplane control/ctlb-control control/ctlbctl
ctlb_setup_hugepages
DATAPLANE=$BUILD_DIR/config/ctlb-dataplane
CONTROL=$BUILD_DIR/control/ctlb-control
CTLBCTL=$BUILD_DIR/control/ctlbctl

LOAD_SECONDS=20
DRAIN_AT=10          # seconds into the load (a watch refresh)
CONCURRENCY=8
CLIENT=198.18.1.2
DP_CLIENT_SIDE=198.18.1.1
DP_BACKEND_SIDE=198.18.2.1
VIP=198.18.100.1
VIP_NAME=web
VIP_PORT=80
BACKEND_PORT=8080
BACKENDS=(b1 b2 b3)
declare -A ADDRESS=([b1]=198.18.2.11 [b2]=198.18.2.12 [b3]=198.18.2.13)
declare -A WEIGHT=([b1]=1 [b2]=2 [b3]=1)
DRAINED=b3

# Unique per run: two demos (or a demo and the e2e test) never share a name.
declare -A NS
for role in client dp sw "${BACKENDS[@]}"; do
  NS[$role]=ctlbdemo-$role-$$
done
PREFIX=ctlb-demo-$$
TMP=
PIDS=()          # every process started, in order
CLEANED=0

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
say() { printf '  %s\n' "$*"; }

# shellcheck disable=SC2317 # reached from the EXIT trap
alive() {
  # Gone, a zombie (exited, not yet reaped) or being reaped: not alive.
  local stat
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  stat=${stat##*) } # the state follows the command name in parentheses
  [[ ${stat%% *} != [ZXx] ]]
}

# shellcheck disable=SC2317
stop_processes() {
  # Last started first: the client, then ctlb-control before the dataplane
  # it is attached to, then the backends.
  local i pid deadline=$((SECONDS + 10))
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    alive "$pid" && kill -TERM "$pid" 2>/dev/null
    while alive "$pid" && ((SECONDS < deadline)); do
      sleep 0.05
    done
    if alive "$pid"; then
      ctlb_log "process $pid did not stop on SIGTERM within 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  return 0
}

# shellcheck disable=SC2317
cleanup() {
  set +e
  trap '' INT TERM # a second Ctrl-C must not leave half of it behind
  ((CLEANED)) && return
  CLEANED=1
  stop_processes
  for role in "${!NS[@]}"; do
    ip netns del "${NS[$role]}" 2>/dev/null
  done
  # What DPDK leaves for the file prefix (tests/integration/ctlbtest.py's
  # remove_dpdk_files): the run-time directory and hugepage files.
  rm -rf "/var/run/dpdk/$PREFIX"
  local mount fstype
  while read -r _ mount fstype _; do
    [[ $fstype == hugetlbfs ]] && rm -f "$mount/${PREFIX}map_"*
  done </proc/mounts
  [[ -n $TMP ]] && rm -rf "$TMP"
  ctlb_log "cleaned up: processes stopped, namespaces, temporary and DPDK files removed"
}
trap cleanup EXIT
trap 'echo; ctlb_log "interrupted; cleaning up"; exit 130' INT
trap 'ctlb_log "terminated; cleaning up"; exit 143' TERM

fail() {
  ctlb_log "$*"
  local f
  for f in dataplane.log control.log; do
    if [[ -s $TMP/$f ]]; then
      echo "--- $f (last lines):" >&2
      tail -n 20 "$TMP/$f" >&2
    fi
  done
  exit 1
}

# For what runs in the foreground only: started with & through this function,
# $! would be a subshell's PID, not the program's (`ip netns exec` execs it).
in_ns() {
  local role=$1
  shift
  ip netns exec "${NS[$role]}" "$@"
}

# Polls a command until it succeeds (every 50 ms), or fails after SECS.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after $secs s waiting for $what"
    sleep 0.05
  done
}

TMP=$(mktemp -d /tmp/ctlb-demo.XXXXXX)
SOCKET=$TMP/control.sock
CONFIG=$TMP/ctlb.yaml

bold "== ctlb load-balances real Linux TCP between network namespaces =="
say "namespaces ctlbdemo-{client,dp,sw,$(IFS=,; echo "${BACKENDS[*]}")}-$$, DPDK file prefix $PREFIX, work dir $TMP"

setup_topology() {
  local role ns dev i name
  for role in "${!NS[@]}"; do
    ns=${NS[$role]}
    ip netns add "$ns"
    in_ns "$role" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  ip link add c0 netns "${NS[client]}" type veth peer name d0 netns "${NS[dp]}"
  ip link add d1 netns "${NS[dp]}" type veth peer name s0 netns "${NS[sw]}"
  local veths=(client:c0 dp:d0 dp:d1 sw:s0)
  i=0
  for name in "${BACKENDS[@]}"; do
    i=$((i + 1))
    ip link add e0 netns "${NS[$name]}" type veth peer name "p$i" netns "${NS[sw]}"
    veths+=("$name:e0" "sw:p$i")
  done
  # Checksums complete in software on every hop and no segmentation or
  # coalescing: AF_PACKET hands the dataplane what a NIC would.
  for dev in "${veths[@]}"; do
    in_ns "${dev%%:*}" ethtool -K "${dev#*:}" tx off tso off gso off gro off >/dev/null
  done
  ip -n "${NS[sw]}" link add br0 type bridge stp_state 0 mcast_snooping 0
  ip -n "${NS[sw]}" link set s0 master br0 up
  for ((i = 1; i <= ${#BACKENDS[@]}; i++)); do
    ip -n "${NS[sw]}" link set "p$i" master br0 up
  done
  ip -n "${NS[sw]}" link set br0 up
  ip -n "${NS[client]}" addr add "$CLIENT/24" dev c0
  ip -n "${NS[client]}" link set c0 up
  ip -n "${NS[client]}" route add "$VIP/32" dev c0
  for name in "${BACKENDS[@]}"; do
    ip -n "${NS[$name]}" addr add "${ADDRESS[$name]}/24" dev e0
    ip -n "${NS[$name]}" link set e0 up
    ip -n "${NS[$name]}" route add default via "$DP_BACKEND_SIDE"
  done
  # ns dp has no addresses: its kernel answers nothing, ctlb answers all.
  in_ns dp sysctl -qw net.ipv4.ip_forward=0
  ip -n "${NS[dp]}" link set d0 up
  ip -n "${NS[dp]}" link set d1 up
}
setup_topology || fail "cannot create the namespaces and veths"
say "client   $CLIENT/24 on c0; the VIP $VIP is on-link (the dataplane answers its ARP)"
say "dp       ctlb-dataplane in mode lb, net_af_packet on d0 (clients, $DP_CLIENT_SIDE) and d1 (backends, $DP_BACKEND_SIDE)"
say "sw       bridge br0 joining d1's peer s0 and the backends; veth offloads off, IPv6 off everywhere"
say "backends $(for b in "${BACKENDS[@]}"; do printf '%s %s:%s weight %s, ' "$b" "${ADDRESS[$b]}" "$BACKEND_PORT" "${WEIGHT[$b]}"; done | sed 's/, $//')"

for name in "${BACKENDS[@]}"; do
  ip netns exec "${NS[$name]}" "$PY" tests/e2e/backend_server.py --name "$name" --bind "${ADDRESS[$name]}" \
    --port "$BACKEND_PORT" --log "$TMP/$name-accept.log" >"$TMP/$name.out" 2>&1 &
  PIDS+=($!)
done
for name in "${BACKENDS[@]}"; do
  wait_for 15 "backend $name" grep -qx listening "$TMP/$name.out"
done
say "HTTP servers (tests/e2e/backend_server.py) listening in ${BACKENDS[*]}; each answers with its name"

{
  cat <<EOF
mode: lb
file_prefix: $PREFIX
lcores:
  main: 0
  workers: [1]
mempool:
  mbufs: 4095
  cache: 64
ports:
  - name: clients
    devargs: net_af_packet0,iface=d0,qpairs=1,blocksz=4096,framesz=2048,framecnt=512
    addresses: [$DP_CLIENT_SIDE/24]
  - name: backends
    devargs: net_af_packet1,iface=d1,qpairs=1,blocksz=4096,framesz=2048,framecnt=512
    addresses: [$DP_BACKEND_SIDE/24]
tracking:
  capacity_v4: 65536
  capacity_v6: 1024
  timeouts:
    time_wait: 5
lb:
  vips:
    - name: $VIP_NAME
      address: $VIP
      port: $VIP_PORT
      backends:
EOF
  for name in "${BACKENDS[@]}"; do
    echo "        - {address: ${ADDRESS[$name]}, port: $BACKEND_PORT, weight: ${WEIGHT[$name]}}"
  done
  cat <<EOF
control:
  socket: $SOCKET
  metrics: 127.0.0.1:9274
EOF
} >"$CONFIG"

# shellcheck disable=SC2317 # called by wait_for
dataplane_ready() {
  alive "${PIDS[-1]}" || fail "ctlb-dataplane exited during start-up"
  [[ -e /var/run/dpdk/$PREFIX/ctlb.ready ]]
}
ip netns exec "${NS[dp]}" "$DATAPLANE" --config "$CONFIG" >"$TMP/dataplane.log" 2>&1 &
PIDS+=($!)
wait_for 60 "ctlb-dataplane to start" dataplane_ready
say "ctlb-dataplane ready (config $CONFIG; time_wait 5 s, so the ager shows in the watch)"

# shellcheck disable=SC2317
control_answering() {
  alive "${PIDS[-1]}" || fail "ctlb-control exited during start-up"
  "$CTLBCTL" stats --socket "$SOCKET" >/dev/null 2>&1
}
ip netns exec "${NS[dp]}" "$CONTROL" --config "$CONFIG" --interval-ms 200 >"$TMP/control.log" 2>&1 &
PIDS+=($!)
wait_for 30 "ctlb-control to answer" control_answering
say "ctlb-control answering on $SOCKET (ager every 200 ms)"

ip netns exec "${NS[client]}" "$PY" scripts/demo/client_load.py --host "$VIP" --port "$VIP_PORT" --duration "$LOAD_SECONDS" \
  --concurrency "$CONCURRENCY" --out "$TMP/load.json" >"$TMP/load.out" 2>&1 &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
say "client: HTTP GETs to $VIP:$VIP_PORT for $LOAD_SECONDS s, $CONCURRENCY at a time, a new connection each"
say "watch: \`ctlbctl watch --interval 1 --count $LOAD_SECONDS\`; $DRAINED is drained after $DRAIN_AT s"

DRAIN_NOTE="$DRAINED will be drained at $DRAIN_AT s"
DRAIN_MONOTONIC=
drain() {
  local t0 t1 us out
  t0=${EPOCHREALTIME/./}
  out=$("$CTLBCTL" backend drain "$VIP_NAME" "${ADDRESS[$DRAINED]}:$BACKEND_PORT" --socket "$SOCKET" 2>&1) ||
    fail "ctlbctl backend drain failed: $out"
  t1=${EPOCHREALTIME/./}
  us=$((t1 - t0))
  # The client's records carry CLOCK_MONOTONIC: note the drain on that clock.
  DRAIN_MONOTONIC=$("$PY" -c 'import time; print(time.monotonic())')
  "$CTLBCTL" lb --json --socket "$SOCKET" >"$TMP/lb-at-drain.json" || fail "ctlbctl lb --json failed"
  # Its connections then, shown after the run (watch has the screen now).
  "$CTLBCTL" flows --backend "${ADDRESS[$DRAINED]}:$BACKEND_PORT" --limit 4 --socket "$SOCKET" \
    >"$TMP/flows-at-drain.txt" || fail "ctlbctl flows --backend failed"
  # shellcheck disable=SC2016 # the backquotes are text
  DRAIN_NOTE=$(printf 'drained %s %s:%s at %d s (`ctlbctl backend drain` took %d.%d ms): no new connections, open ones finish' \
    "$DRAINED" "${ADDRESS[$DRAINED]}" "$BACKEND_PORT" "$DRAIN_AT" "$((us / 1000))" "$((us % 1000 / 100))")
}

# watch refreshes the screen; each refresh gets a line saying where the demo
# is. Not on a terminal (a log), the screen clearing becomes a separator.
CLEAR=$'\033[H\033[2J'
exec {watch_fd}< <(exec "$CTLBCTL" watch --interval 1 --count "$LOAD_SECONDS" --socket "$SOCKET")
PIDS+=($!)
frame=0
while IFS= read -r -u "$watch_fd" line; do
  if [[ $line == *"ctlb watch  ("* ]]; then
    frame=$((frame + 1))
    if ((frame == DRAIN_AT + 1)); then
      drain
    fi
    if [[ ! -t 1 ]]; then
      line=${line//$CLEAR/}
      printf -- '---------------------------------------- %d s\n' "$((frame - 1))"
    fi
    printf '%s\n' "$line"
    printf 'demo: load %d s of %d; %s\n' "$((frame - 1))" "$LOAD_SECONDS" "$DRAIN_NOTE"
  else
    printf '%s\n' "$line"
  fi
done
exec {watch_fd}<&-

[[ -n $DRAIN_MONOTONIC ]] || fail "ctlbctl watch ended before the drain (see above)"
if ! wait "$LOAD_PID"; then
  fail "the client exited with an error: $(tail -n 5 "$TMP/load.out")"
fi

bold "-- ctlbctl stats: the dataplane's counters --"
"$CTLBCTL" stats --socket "$SOCKET"
bold "-- ctlbctl lb: the per-backend split ctlb counted --"
"$CTLBCTL" lb --socket "$SOCKET"
"$CTLBCTL" lb --json --socket "$SOCKET" >"$TMP/lb-final.json"
bold "-- ctlbctl flows --backend ${ADDRESS[$DRAINED]}:$BACKEND_PORT: $DRAINED's connections when it was drained, and now --"
cat "$TMP/flows-at-drain.txt"
"$CTLBCTL" flows --backend "${ADDRESS[$DRAINED]}:$BACKEND_PORT" --limit 4 --socket "$SOCKET"
bold "-- the client's view (tests/e2e/http_load.py's records) --"
weights=()
for b in "${BACKENDS[@]}"; do
  weights+=("$b=${ADDRESS[$b]}:${WEIGHT[$b]}")
done
set +e
"$PY" scripts/demo/summary.py --records "$TMP/load.json" --lb-at-drain "$TMP/lb-at-drain.json" \
  --lb-final "$TMP/lb-final.json" --drain-monotonic "$DRAIN_MONOTONIC" --drained "$DRAINED" "${weights[@]}"
rc=$?
set -e
exit $rc
