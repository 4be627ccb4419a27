#!/usr/bin/env bash
# Records scripts/data/demo.pcap: real Linux TCP traffic (the kernel's own TCP
# stacks, nothing crafted) between two network namespaces this script creates,
# joined by a veth pair and captured with tcpdump on the client's end.
#
#   client ns ctlbdemo-c-PID  eth0 198.18.1.2/24  2001:2:0:1::2/64
#   server ns ctlbdemo-s-PID  eth0 198.18.1.1/24  2001:2:0:1::1/64
#
# The capture holds, in this order:
#   - a half-open handshake: SYNs to 198.18.1.1:8082, which the server ns
#     drops with an nftables rule (the client retransmits, then gives up);
#   - a stuck CLOSE_WAIT: a server on :8081 that answers, reads until EOF and
#     never calls close(); the client closes and sits in FIN_WAIT_2;
#   - a refused connection: SYN to the closed port :8083, answered by RST;
#   - 12 HTTP/1.0 exchanges: the response has no Content-Length, the server
#     closes first and ends in TIME_WAIT;
#   - a 64 KiB download over IPv4 (window scaling, many full-size segments);
#   - a client that aborts an established connection with RST (SO_LINGER 0);
#   - ~35 s without TCP traffic, so that the CLOSE_WAIT and the half-open
#     handshake are idle long enough for `ctlbctl trace --stuck-after 30`;
#   - 4 HTTP/1.1 keep-alive connections with 2 requests each (the client
#     closes first: TIME_WAIT on the client);
#   - a 24 KiB download and a small HTTP/1.0 exchange over IPv6;
#   - a UDP datagram "ctlb demo capture: end" (the script's end marker).
# Besides TCP: ARP, IPv6 neighbour discovery and MLD reports of the veths.
#
# Needs root, iproute2, nftables, tcpdump, curl, python3 and (for valid
# checksums in the capture) ethtool. Takes about 40 s.
# Exit status 0 only if the capture is complete and its checksums are valid.
#
# usage: scripts/make_demo_capture.sh [OUTPUT.pcap]   (default scripts/data/demo.pcap)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/scripts/data/demo.pcap}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

# How long the CLOSE_WAIT / half-open connections stay idle at the end.
IDLE_CLOSE_WAIT_S=35
IDLE_HALF_OPEN_S=32

NS_C=ctlbdemo-c-$$
NS_S=ctlbdemo-s-$$
VETH_C=ctlbdc$$
VETH_S=ctlbds$$
C4=198.18.1.2
S4=198.18.1.1
C6=2001:2:0:1::2
S6=2001:2:0:1::1
HTTP_PORT=80
CLOSE_WAIT_PORT=8081
DROPPED_PORT=8082
CLOSED_PORT=8083
MARKER_PORT=9 # UDP end-of-capture marker

log() { printf 'make_demo_capture: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[[ $EUID -eq 0 ]] || die "must run as root (creates network namespaces)"
for tool in ip nft tcpdump curl ss; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

T_START=$EPOCHREALTIME
TMP=         # scratch directory (helper programs, logs, the capture in progress)
PIDS=()      # background processes this script started
NETNS=()     # namespaces this script created
VETH_MADE=0

cleanup() {
  local rc=$? pid ns
  trap - EXIT INT TERM
  # `jobs -p` too: a signal may land between `cmd &` and `PIDS+=("$!")`
  PIDS+=($(jobs -p))
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for ns in "${NETNS[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  if ((VETH_MADE)) && ip link show "$VETH_C" >/dev/null 2>&1; then
    ip link del "$VETH_C" 2>/dev/null || true
  fi
  if [[ -n $TMP ]]; then rm -rf "$TMP"; fi
  if ((rc != 0)); then
    log "failed (exit $rc); cleaned up"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
TMP=$(mktemp -d /tmp/ctlbdemo.XXXXXX)

# Foreground only: `in_c cmd &` would fork a subshell and $! would not be
# the command's PID. Background commands use `ip netns exec` directly (it
# execs the command, so $! is the command itself).
in_c() { ip netns exec "$NS_C" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }
now() { printf '%s\n' "$EPOCHREALTIME"; }

# wait_until TIMEOUT_S DESCRIPTION COMMAND...: polls COMMAND every 20 ms
# until it succeeds, or fails after TIMEOUT_S seconds.
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline
  deadline=$(awk -v t="$EPOCHREALTIME" -v d="$timeout" 'BEGIN { printf "%.6f", t + d }')
  until "$@"; do
    if awk -v t="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(t > d) }'; then
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.02
  done
}

# sleep_until EPOCH: lets time pass in the capture (the point, not a sync).
sleep_until() {
  local left
  left=$(awk -v t="$EPOCHREALTIME" -v d="$1" 'BEGIN { x = d - t; printf "%.3f", (x > 0 ? x : 0) }')
  # in the background, so that a signal to this script is handled at once
  sleep "$left" &
  PIDS+=("$!")
  wait "$!"
}

# --------------------------------------------------------------------------
# helper programs
# --------------------------------------------------------------------------
mkdir -p "$TMP/www"
# small pages for the normal exchanges, two larger files for the bulk downloads
for i in $(seq 1 12); do
  printf '<html><body><h1>page %d</h1><p>ctlb demo capture</p></body></html>\n' "$i" >"$TMP/www/page$i.html"
done
for i in 1 2 3 4; do
  printf '{"item": %d, "status": "ok"}\n' "$i" >"$TMP/www/item$i.json"
done
printf '<html><body>hello over IPv6</body></html>\n' >"$TMP/www/v6.html"
"$PY" - "$TMP/www" <<'EOF'
import sys
root = sys.argv[1]
def blob(path, size):
    line = b"ctlb demo bulk data - the quick brown fox jumps over the lazy dog 0123456789\n"
    with open(path, "wb") as f:
        f.write((line * (size // len(line) + 1))[:size])
blob(root + "/big4.bin", 64 * 1024)
blob(root + "/big6.bin", 24 * 1024)
EOF

cat >"$TMP/server.py" <<'EOF'
# Server side: a dual-stack HTTP/1.1 file server on :80, and on :8081 a
# server that answers one request, reads until EOF and never closes.
import functools, http.server, socket, sys, threading

root, s4, http_port, cw_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive for 1.1 clients, close for 1.0 ones
    def send_header(self, keyword, value):
        # HTTP/1.0 style: no Content-Length, the end of the body is the
        # server's FIN, so the server always closes first.
        if keyword.lower() == "content-length" and self.request_version == "HTTP/1.0":
            return
        super().send_header(keyword, value)
    def log_message(self, fmt, *args):
        sys.stderr.write("http: " + (fmt % args) + "\n")

class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

forgotten = []  # keeps the CLOSE_WAIT sockets alive: close() is never called

def close_wait_server():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((s4, cw_port))
    ls.listen(8)
    while True:
        c, _ = ls.accept()
        forgotten.append(c)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        body = b"you will never see my FIN\n"
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        while c.recv(4096):   # read until the client's FIN ...
            pass
        sys.stderr.write("close-wait: got EOF, not closing\n")  # ... and forget to close

threading.Thread(target=close_wait_server, daemon=True).start()
httpd = Server(("::", http_port), functools.partial(Handler, directory=root))
httpd.serve_forever()
EOF

cat >"$TMP/client.py" <<'EOF'
# Client-side scenarios that curl cannot produce.
import socket, struct, sys, time

def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed before the response headers")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed inside the response body")
        body += chunk
    return head.split(b"\r\n")[0].decode()

what, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if what == "half-open":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(float(sys.argv[4]))
    try:
        s.connect((host, port))
        raise SystemExit("half-open: unexpectedly connected")
    except socket.timeout:
        print("half-open: no SYN-ACK, gave up")
    s.close()  # a socket in SYN_SENT closes silently: no RST on the wire
elif what == "close-wait":
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"GET /report HTTP/1.0\r\nHost: %s\r\n\r\n" % host.encode())
    print("close-wait:", read_response(s))
    s.close()  # FIN; the peer ACKs it but never sends its own: FIN_WAIT_2
elif what == "refused":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
        raise SystemExit("refused: unexpectedly connected")
    except ConnectionRefusedError:
        print("refused: RST received")
    s.close()
elif what == "abort":
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"GET /page1.html HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
    print("abort:", read_response(s))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # linger 0: RST instead of FIN
else:
    raise SystemExit("unknown scenario " + what)
EOF

cat >"$TMP/check.py" <<'EOF'
# Checks a capture: every frame fits the MTU and every IPv4 header checksum
# and TCP checksum is valid (so that TX checksum offload did not leave
# partial checksums in the capture). Prints packet and TCP counts.
import struct, sys

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s

f = open(sys.argv[1], "rb").read()
magic, = struct.unpack("<I", f[:4])
assert magic == 0xA1B2C3D4, "not a little-endian microsecond pcap"
linktype, = struct.unpack("<I", f[20:24])
assert linktype == 1, "not Ethernet"
off, n, tcp, bad = 24, 0, 0, []
while off < len(f):
    _, _, incl, orig = struct.unpack("<IIII", f[off:off + 16])
    frame = f[off + 16:off + 16 + incl]
    off += 16 + incl
    n += 1
    if incl != orig:
        bad.append((n, "truncated frame"))
    if len(frame) > 1514:
        bad.append((n, "frame of %d bytes: larger than the MTU (GRO/TSO?)" % len(frame)))
    etype, = struct.unpack("!H", frame[12:14])
    ip = frame[14:]
    if etype == 0x0800:
        ihl = (ip[0] & 15) * 4
        total, = struct.unpack("!H", ip[2:4])
        if csum(ip[:ihl]) != 0xFFFF:
            bad.append((n, "bad IPv4 header checksum"))
        if ip[9] != 6:
            continue
        seg = ip[ihl:total]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    elif etype == 0x86DD:
        plen, = struct.unpack("!H", ip[4:6])
        if ip[6] != 6:
            continue
        seg = ip[40:40 + plen]
        pseudo = ip[8:40] + struct.pack("!IxxxB", len(seg), 6)
    else:
        continue
    tcp += 1
    if csum(pseudo + seg) != 0xFFFF:
        bad.append((n, "bad TCP checksum"))
for i, why in bad[:20]:
    print("packet %d: %s" % (i, why))
print("%d packets, %d TCP, %d problems" % (n, tcp, len(bad)))
sys.exit(1 if bad else 0)
EOF

# --------------------------------------------------------------------------
# namespaces, veth pair, addresses, firewall rule
# --------------------------------------------------------------------------
log "creating namespaces $NS_C and $NS_S"
# (noted before they exist: a signal right after a command must not leak it)
NETNS+=("$NS_C" "$NS_S")
ip netns add "$NS_C"
ip netns add "$NS_S"
VETH_MADE=1
ip link add "$VETH_C" type veth peer name "$VETH_S"
ip link set "$VETH_C" netns "$NS_C"
ip link set "$VETH_S" netns "$NS_S"

setup_side() { # NS VETH ADDR4 ADDR6
  ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
    net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.all.router_solicitations=0
  ip -n "$1" link set lo up
  ip -n "$1" link set "$2" name eth0
  # no IPv6 router solicitations: less noise in the capture
  ip netns exec "$1" sysctl -q -w net.ipv6.conf.eth0.accept_ra=0 net.ipv6.conf.eth0.router_solicitations=0
  ip -n "$1" addr add "$3/24" dev eth0
  ip -n "$1" addr add "$4/64" dev eth0 nodad
  if command -v ethtool >/dev/null; then
    # no TX checksum offload (valid checksums in the capture), no GRO/TSO
    # (one frame on the wire = one frame in the capture)
    ip netns exec "$1" ethtool -K eth0 tx off gro off tso off gso off >/dev/null 2>&1 ||
      ip netns exec "$1" ethtool -K eth0 tx off >/dev/null
  else
    log "warning: ethtool not found (apt-get install ethtool): TCP checksums in the capture will be partial"
  fi
  ip -n "$1" link set eth0 up
}
setup_side "$NS_C" "$VETH_C" "$C4" "$C6"
setup_side "$NS_S" "$VETH_S" "$S4" "$S6"

# The half-open handshake: the server silently drops SYNs to this port.
in_s nft -f - <<EOF
table inet ctlbdemo {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport $DROPPED_PORT drop
    udp dport $MARKER_PORT drop
  }
}
EOF

link_up() { ip -n "$1" -o link show eth0 | grep -q 'state UP'; }
wait_until 5 "veth up" link_up "$NS_C"
wait_until 5 "veth up" link_up "$NS_S"

# --------------------------------------------------------------------------
# capture and server
# --------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
PCAP_TMP=$TMP/demo.pcap
ip netns exec "$NS_C" tcpdump -i eth0 -n -s 0 -U --immediate-mode -Z root -w "$PCAP_TMP" 2>"$TMP/tcpdump.log" &
TCPDUMP_PID=$!
PIDS+=("$TCPDUMP_PID")
tcpdump_ready() {
  kill -0 "$TCPDUMP_PID" 2>/dev/null || die "tcpdump exited: $(cat "$TMP/tcpdump.log")"
  grep -q 'listening on' "$TMP/tcpdump.log"
}
wait_until 10 "tcpdump to start" tcpdump_ready

ip netns exec "$NS_S" "$PY" "$TMP/server.py" "$TMP/www" "$S4" "$HTTP_PORT" "$CLOSE_WAIT_PORT" 2>"$TMP/server.log" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
listening() {
  kill -0 "$SERVER_PID" 2>/dev/null || die "server exited: $(cat "$TMP/server.log")"
  local l
  l=$(in_s ss -Hltn)
  grep -q ":$HTTP_PORT " <<<"$l" && grep -q "$S4:$CLOSE_WAIT_PORT " <<<"$l"
}
wait_until 10 "the server ports to listen" listening

CURL=(curl -sS --fail --noproxy '*' --max-time 10)

# --------------------------------------------------------------------------
# traffic
# --------------------------------------------------------------------------
log "half-open handshake to $S4:$DROPPED_PORT (dropped, retransmitted)"
ip netns exec "$NS_C" "$PY" "$TMP/client.py" half-open "$S4" "$DROPPED_PORT" 3.5 >"$TMP/half-open.log" 2>&1 &
HALF_PID=$!
PIDS+=("$HALF_PID")
wait_until 5 "the half-open SYN" bash -c "ip netns exec '$NS_C' ss -Htn state syn-sent | grep -q ':$DROPPED_PORT'"

log "CLOSE_WAIT: the server on :$CLOSE_WAIT_PORT never closes"
in_c "$PY" "$TMP/client.py" close-wait "$S4" "$CLOSE_WAIT_PORT"
in_close_wait() { in_s ss -Htn state close-wait | grep -q ":$CLOSE_WAIT_PORT"; }
in_fin_wait_2() { in_c ss -Htn state fin-wait-2 | grep -q ":$CLOSE_WAIT_PORT"; }
wait_until 5 "the server in CLOSE_WAIT" in_close_wait
wait_until 5 "the client in FIN_WAIT_2" in_fin_wait_2
T_CLOSE_WAIT=$(now)

log "connection refused on :$CLOSED_PORT"
in_c "$PY" "$TMP/client.py" refused "$S4" "$CLOSED_PORT"

log "12 HTTP/1.0 exchanges (server closes first)"
for i in $(seq 1 12); do
  in_c "${CURL[@]}" --http1.0 -o /dev/null "http://$S4/page$i.html"
done

log "bulk download over IPv4"
in_c "${CURL[@]}" --http1.1 -o /dev/null "http://$S4/big4.bin"

log "client abort with RST (SO_LINGER 0)"
in_c "$PY" "$TMP/client.py" abort "$S4" "$HTTP_PORT"

wait "$HALF_PID" || die "half-open client failed: $(cat "$TMP/half-open.log")"
T_HALF_OPEN=$(now)
cat "$TMP/half-open.log" >&2

# --------------------------------------------------------------------------
# idle time, so that the stuck connections are reported as stuck. An
# offline tracker's clock is the capture's timestamps, so the idle time only
# counts if traffic follows it: the rest of the exchanges come afterwards.
# --------------------------------------------------------------------------
DEADLINE=$(awk -v a="$T_CLOSE_WAIT" -v ia="$IDLE_CLOSE_WAIT_S" -v b="$T_HALF_OPEN" -v ib="$IDLE_HALF_OPEN_S" \
  'BEGIN { x = a + ia; y = b + ib; printf "%.6f", (x > y ? x : y) }')
log "letting the CLOSE_WAIT and the half-open connection idle ($(awk -v d="$DEADLINE" -v t="$EPOCHREALTIME" 'BEGIN { printf "%.0f", d - t }') s)"
sleep_until "$DEADLINE"
in_close_wait || die "the server socket left CLOSE_WAIT during the idle time"
in_fin_wait_2 || die "the client socket left FIN_WAIT_2 during the idle time"

log "4 HTTP/1.1 keep-alive connections, 2 requests each (client closes first)"
for i in 1 3; do
  in_c "${CURL[@]}" --http1.1 -o /dev/null -o /dev/null "http://$S4/item$i.json" "http://$S4/item$((i + 1)).json"
done
for i in 5 7; do
  in_c "${CURL[@]}" --http1.1 -o /dev/null -o /dev/null "http://$S4/page$i.html" "http://$S4/page$((i + 1)).html"
done

log "bulk download and a small exchange over IPv6"
in_c "${CURL[@]}" --http1.1 -g -o /dev/null "http://[$S6]/big6.bin"
in_c "${CURL[@]}" --http1.0 -g -o /dev/null "http://[$S6]/v6.html"

# --------------------------------------------------------------------------
# stop the capture once every closing handshake is on the wire
# --------------------------------------------------------------------------
# The last packet of a connection is an ACK of the final FIN; once no socket
# is left in a closing state (besides the deliberately stuck pair), it has
# crossed the client's veth, where tcpdump listens.
quiet() {
  ! in_c ss -Htn state syn-sent state syn-recv state established state fin-wait-1 state closing \
    state last-ack | grep -q . &&
    ! in_s ss -Htn state syn-recv state established state fin-wait-1 state fin-wait-2 state closing \
      state last-ack | grep -q .
}
wait_until 10 "all connections to finish closing" quiet
# Then an end marker (UDP, silently dropped by the server): once tcpdump
# has written it, it has written everything before it.
in_c "$PY" -c 'import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"ctlb demo capture: end", (sys.argv[1], int(sys.argv[2])))' \
  "$S4" "$MARKER_PORT"
marker_written() {
  kill -0 "$TCPDUMP_PID" 2>/dev/null || die "tcpdump exited early: $(cat "$TMP/tcpdump.log")"
  grep -q 'ctlb demo capture: end' "$PCAP_TMP"
}
wait_until 10 "tcpdump to write the end marker" marker_written

# On SIGTERM tcpdump flushes and prints its statistics.
kill -TERM "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
grep -qx '0 packets dropped by kernel' "$TMP/tcpdump.log" || die "tcpdump dropped packets: $(cat "$TMP/tcpdump.log")"

"$PY" "$TMP/check.py" "$PCAP_TMP" >&2 || die "capture check failed"
cp "$PCAP_TMP" "$OUT"
log "wrote $OUT ($(stat -c %s "$OUT") bytes) in $(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"

CTLBCTL=$ROOT/build/control/ctlbctl
if [[ -x $CTLBCTL ]]; then
  "$CTLBCTL" trace "$OUT" --summary --stuck-after 30
fi
