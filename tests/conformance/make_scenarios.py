#!/usr/bin/python3
"""Deterministically generate the TCP conntrack conformance scenarios.

Every scenario is a small pcap (Ethernet II, LINKTYPE_ETHERNET) written to
scenarios/NAME.pcap.  The packets look like Linux TCP traffic (Linux SYN
options, window sizes, timestamps) between a client in 198.18.1.0/24 /
2001:2:0:1::/64 and a server in 198.18.2.0/24 / 2001:2:0:2::/64 (RFC 2544 /
RFC 5180 benchmark ranges).  Packet i (0-based) of every file carries the
timestamp 1700000000.000000 + i ms.

Usage: /usr/bin/python3 make_scenarios.py [--outdir DIR] [--list] [--check]
  --check   regenerate in memory and compare with the files in --outdir
            (exit 1 if anything differs, 77 if scapy is missing)

The output is byte-for-byte reproducible: ISNs and timestamp values are
derived from the scenario name, nothing depends on the clock or on a RNG.
Requires scapy (only to assemble packets and compute checksums).
"""

import argparse
import hashlib
import os
import struct
import sys

try:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.packet import Raw
except ImportError:                      # meson: exit 77 = skipped
    print("SKIP: scapy is not installed for this python (use /usr/bin/python3)", file=sys.stderr)
    sys.exit(77)

CLIENT4, SERVER4 = "198.18.1.2", "198.18.2.2"
CLIENT6, SERVER6 = "2001:2:0:1::2", "2001:2:0:2::2"
CLIENT_MAC, CLIENT_GW_MAC = "02:c7:1b:00:01:02", "02:c7:1b:00:01:01"
SERVER_MAC, SERVER_GW_MAC = "02:c7:1b:00:02:02", "02:c7:1b:00:02:01"
SERVER_PORT = 80
T0 = 1700000000          # first packet timestamp (seconds)
STEP_US = 1000           # +1 ms per packet

F, S, R, P, A, U, E, C = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
M32 = 0xFFFFFFFF


def h32(*parts):
    """Stable 32-bit value derived from the given strings."""
    d = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return struct.unpack("!I", d[:4])[0]


def http_request(path="/index.html"):
    return (f"GET {path} HTTP/1.1\r\nHost: 198.18.2.2\r\n"
            "User-Agent: ctlb-conformance/1\r\nAccept: */*\r\n\r\n").encode()


def http_response(body_len=300):
    body = bytes((0x41 + i % 26) for i in range(body_len))
    return (b"HTTP/1.1 200 OK\r\nServer: conformance\r\nContent-Length: "
            + str(body_len).encode() + b"\r\n\r\n" + body)


def blob(n, tag=0):
    return bytes(((i * 7 + tag) & 0x7F) | 0x20 for i in range(n))


class Side:
    def __init__(self, ip, port, isn, mac, gw_mac, tsval, wscale, syn_win, win):
        self.ip, self.port, self.isn = ip, port, isn & M32
        self.mac, self.gw_mac = mac, gw_mac
        self.nxt = self.isn          # next sequence number to send
        self.tsval = tsval & M32
        self.ts_recent = 0           # last TSval received from the peer
        self.wscale = wscale         # None: no window scale option offered
        self.syn_win, self.win = syn_win, win
        self.ip_id = h32(ip, port, "ipid") & 0xFFFF


class Scenario:
    def __init__(self, name, doc):
        self.name, self.doc = name, doc
        self.frames = []             # raw Ethernet frames

    def add(self, frame):
        self.frames.append(frame)

    def conn(self, cport, **kw):
        return Conn(self, cport, **kw)

    def pcap_bytes(self):
        # pcap global header: magic, v2.4, thiszone, sigfigs, snaplen, LINKTYPE_ETHERNET
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
        for i, fr in enumerate(self.frames):
            us = i * STEP_US
            out.append(struct.pack("<IIII", T0 + us // 1000000, us % 1000000, len(fr), len(fr)))
            out.append(fr)
        return b"".join(out)


class Conn:
    """One TCP 4-tuple; builds Linux-looking segments and tracks seq/ack.

    By default a segment carries seq = sender.nxt and ack = everything the
    peer has sent so far; both can be overridden (seq=/ack=) for crossing
    segments, retransmissions and deliberately bogus packets.  The sender's
    nxt only advances when the segment starts at nxt (advance=None) or when
    advance=True is forced.
    """

    def __init__(self, sc, cport, v6=False, vlan=None, sport=SERVER_PORT,
                 c_wscale=7, s_wscale=7, ts=True, sack=True, tag=""):
        self.sc, self.v6, self.vlan = sc, v6, vlan
        key = (sc.name, cport, tag)
        c_ip, s_ip = (CLIENT6, SERVER6) if v6 else (CLIENT4, SERVER4)
        self.c = Side(c_ip, cport, h32(*key, "c-isn"), CLIENT_MAC, CLIENT_GW_MAC,
                      h32(*key, "c-ts"), c_wscale, 64240, 502)
        self.s = Side(s_ip, sport, h32(*key, "s-isn"), SERVER_MAC, SERVER_GW_MAC,
                      h32(*key, "s-ts"), s_wscale, 65160, 509)
        self.ts, self.sack = ts, sack

    def side(self, who):
        return (self.c, self.s) if who == "c" else (self.s, self.c)

    @property
    def scaled(self):
        return self.c.wscale is not None and self.s.wscale is not None

    def reisn(self, who, isn):
        me, _ = self.side(who)
        me.isn = me.nxt = isn & M32

    def pkt(self, who, flags, payload=b"", seq=None, ack=None, win=None,
            opts=None, advance=None, urg=0):
        me, peer = self.side(who)
        if seq is None:
            seq = me.nxt
        seq &= M32
        if ack is None:
            ack = peer.nxt if flags & A else 0
        ack &= M32
        syn = bool(flags & S)
        if win is None:
            if syn:
                win = me.syn_win
            elif self.scaled:
                win = me.win
            else:
                win = min(me.syn_win, 65535)
        me.tsval = (me.tsval + 1) & M32
        if opts is None:
            opts = []
            if syn:
                opts.append(("MSS", 1460))
                if self.sack:
                    opts.append(("SAckOK", b""))
                if self.ts:
                    opts.append(("Timestamp", (me.tsval, me.ts_recent if flags & A else 0)))
                elif self.sack:
                    opts += [("NOP", None), ("NOP", None)]
                if me.wscale is not None:
                    opts += [("NOP", None), ("WScale", me.wscale)]
            elif self.ts and not flags & R:
                opts = [("NOP", None), ("NOP", None), ("Timestamp", (me.tsval, me.ts_recent))]
        peer.ts_recent = me.tsval
        tcp = TCP(sport=me.port, dport=peer.port, seq=seq, ack=ack, flags=flags,
                  window=win, options=opts, urgptr=urg)
        if self.v6:
            ip = IPv6(src=me.ip, dst=peer.ip, hlim=64, fl=h32(me.ip, me.port) & 0xFFFFF)
        else:
            me.ip_id = (me.ip_id + 1) & 0xFFFF
            ip = IP(src=me.ip, dst=peer.ip, ttl=64, flags="DF", id=me.ip_id)
        l3 = ip / tcp
        if payload:
            l3 = l3 / Raw(payload)
        if self.vlan is not None:
            frame = Ether(src=me.mac, dst=me.gw_mac) / Dot1Q(vlan=self.vlan) / l3
        else:
            frame = Ether(src=me.mac, dst=me.gw_mac) / l3
        self.sc.add(bytes(frame))
        length = len(payload) + (1 if syn else 0) + (1 if flags & F else 0)
        if advance is None:
            advance = seq == me.nxt
        if advance:
            end = (seq + length) & M32
            if ((end - me.nxt) & M32) < 0x80000000:
                me.nxt = end
        return seq

    # --- convenience wrappers -------------------------------------------
    def syn(self, who="c", **kw):
        return self.pkt(who, S, **kw)

    def synack(self, who="s", **kw):
        return self.pkt(who, S | A, **kw)

    def ack(self, who, **kw):
        return self.pkt(who, A, **kw)

    def data(self, who, payload, **kw):
        return self.pkt(who, P | A, payload, **kw)

    def fin(self, who, **kw):
        return self.pkt(who, F | A, **kw)

    def rst(self, who, ack=True, **kw):
        return self.pkt(who, R | A if ack else R, **kw)

    def handshake(self):
        self.syn("c")
        self.synack("s")
        self.ack("c")

    def exchange(self, req=None, resp=None):
        """HTTP-ish request/response: request, response, ACK of the response."""
        self.data("c", http_request() if req is None else req)
        self.data("s", http_response() if resp is None else resp)
        self.ack("c")

    def close_4way(self, first="c"):
        other = "s" if first == "c" else "c"
        self.fin(first)
        self.ack(other)
        self.fin(other)
        self.ack(first)


SCENARIOS = []


def scenario(doc):
    def deco(fn):
        SCENARIOS.append((fn.__name__, doc, fn))
        return fn
    return deco


# ---------------------------------------------------------------- basics
@scenario("3-way handshake, request/response, client FIN, ACK, server FIN, ACK (4-way close)")
def handshake_close_client_first(sc):
    k = sc.conn(40001)
    k.handshake()
    k.exchange()
    k.close_4way("c")


@scenario("3-way handshake, request/response, server closes first (4-way close)")
def handshake_close_server_first(sc):
    k = sc.conn(40002)
    k.handshake()
    k.exchange()
    k.close_4way("s")


@scenario("3-segment close: client FIN, server FIN piggybacked on the ACK of the client FIN, client ACK")
def close_fin_ack_combined(sc):
    k = sc.conn(40003)
    k.handshake()
    k.exchange()
    k.fin("c")
    k.fin("s")
    k.ack("c")


@scenario("simultaneous close: both FINs cross (neither acknowledges the other FIN), then both ACKs")
def simultaneous_close(sc):
    k = sc.conn(40004)
    k.handshake()
    k.exchange()
    c_fin = k.fin("c")
    k.fin("s", ack=c_fin)            # sent before the client's FIN arrived
    k.ack("c")
    k.ack("s")


@scenario("half close: client FIN, server keeps sending 4 data segments the client ACKs, server FIN, client ACK")
def half_close_data(sc):
    k = sc.conn(40005)
    k.handshake()
    k.data("c", http_request("/stream"))
    k.fin("c")
    k.ack("s")
    k.data("s", http_response(600))
    k.data("s", blob(1000, 1))
    k.ack("c")
    k.data("s", blob(1000, 2))
    k.data("s", blob(500, 3))
    k.ack("c")
    k.fin("s")
    k.ack("c")


# ---------------------------------------------------------------- RST
@scenario("SYN answered by RST|ACK seq 0 ack isn+1 (closed port)")
def rst_syn_sent(sc):
    k = sc.conn(40010)
    k.syn("c")
    k.pkt("s", R | A, seq=0, win=0, opts=[])


@scenario("SYN answered by RST|ACK with a wrong ack (isn+1000), then the correct RST|ACK")
def rst_syn_sent_wrong_ack(sc):
    k = sc.conn(40011)
    isn = k.syn("c")
    k.pkt("s", R | A, seq=0, ack=isn + 1000, win=0, opts=[])
    k.pkt("s", R | A, seq=0, ack=isn + 1, win=0, opts=[])


@scenario("SYN, SYN-ACK, then the client resets (RST seq=isn+1, no ACK flag)")
def rst_syn_recv(sc):
    k = sc.conn(40012)
    k.syn("c")
    k.synack("s")
    k.rst("c", ack=False, win=0)


@scenario("established with data, then RST|ACK with the exact next seq from the client")
def rst_established_client(sc):
    k = sc.conn(40013)
    k.handshake()
    k.exchange()
    k.rst("c", win=0)


@scenario("established with data, then RST|ACK with the exact next seq from the server")
def rst_established_server(sc):
    k = sc.conn(40014)
    k.handshake()
    k.exchange()
    k.rst("s", win=0)


@scenario("server sends data and immediately a RST at the end of that data (not yet ACKed: RST train)")
def rst_after_data_train(sc):
    k = sc.conn(40015)
    k.handshake()
    k.exchange()
    k.data("c", http_request("/next"))
    k.data("s", http_response(200))
    k.rst("s", win=0)


@scenario("client FIN (FIN_WAIT), then an exact RST from the server")
def rst_fin_wait(sc):
    k = sc.conn(40016)
    k.handshake()
    k.exchange()
    k.fin("c")
    k.rst("s", win=0)


@scenario("client FIN, server ACK (CLOSE_WAIT), then an exact RST from the server")
def rst_close_wait(sc):
    k = sc.conn(40017)
    k.handshake()
    k.exchange()
    k.fin("c")
    k.ack("s")
    k.rst("s", win=0)


@scenario("client FIN, server ACK, server FIN (LAST_ACK), then an exact RST from the client")
def rst_last_ack(sc):
    k = sc.conn(40018)
    k.handshake()
    k.exchange()
    k.fin("c")
    k.ack("s")
    k.fin("s")
    k.rst("c", ack=False, win=0)


@scenario("4-way close to TIME_WAIT, then an exact RST from the server")
def rst_time_wait(sc):
    k = sc.conn(40019)
    k.handshake()
    k.exchange()
    k.close_4way("c")
    k.rst("s", ack=False, win=0)


@scenario("established; RST seq +1G and -1G outside the window; valid ACK/data; then the exact RST")
def rst_out_of_window(sc):
    k = sc.conn(40020)
    k.handshake()
    k.exchange()
    k.rst("c", seq=k.c.nxt + 0x40000000, win=0)
    k.rst("c", seq=k.c.nxt - 0x40000000, win=0)
    k.data("c", http_request("/still-alive"))
    k.data("s", http_response(100))
    k.ack("c")
    k.rst("c", win=0)


@scenario("established; RST below the next seq (invalid), RST in window but not exact (kept), challenge ACK, exact RST")
def rst_inexact_seq(sc):
    k = sc.conn(40021)
    k.handshake()
    k.exchange()
    k.rst("c", seq=k.c.nxt - 10, win=0)
    k.rst("c", seq=k.c.nxt + 1000, win=0)
    k.ack("s")                       # the server's RFC 5961 challenge ACK
    k.rst("c", win=0)                # RST with seq = ack of the challenge ACK


# ---------------------------------------------------------------- windows
@scenario("established; data beyond the window, data under the lower bound, in-window retransmission, "
          "ACK of unsent data, too-old ACK; then normal traffic and close")
def data_out_of_window(sc):
    k = sc.conn(40030)
    k.handshake()
    k.exchange()
    k.data("c", blob(300, 1), seq=k.c.nxt + 200000)           # beyond the server's window
    k.data("c", blob(300, 2), seq=k.c.nxt - 100000)           # far below: long-acked data
    req = http_request()
    k.data("c", req[:100], seq=k.c.nxt - len(req))            # plain retransmission (in window)
    k.ack("c", ack=k.s.nxt + 100000)                          # ACKs data never sent
    k.ack("c", ack=k.s.nxt - 100000)                          # ACK far below (too old)
    k.exchange(req=http_request("/after"), resp=http_response(200))
    k.close_4way("c")


@scenario("established; FIN with a bogus seq far outside the window, then a normal 4-way close")
def fin_out_of_window(sc):
    k = sc.conn(40031)
    k.handshake()
    k.exchange()
    k.fin("c", seq=k.c.nxt + 0x20000000)
    k.close_4way("c")


@scenario("wscale 7 both ways; 18 x 1448 byte server segments ACKed by the client; "
          "then a segment 100000 bytes ahead that fits only the scaled window; close")
def window_scale_data(sc):
    k = sc.conn(40032)
    k.handshake()
    k.data("c", http_request("/bulk"))
    for i in range(18):
        k.data("s", blob(1448, i))
        if i % 2 == 1:
            k.ack("c", win=1024)
    k.data("s", blob(1448, 99), seq=k.s.nxt + 100000)         # c window: 1024 << 7 = 131072
    k.ack("c", win=1024)                                       # dup ACK (hole)
    k.close_4way("c")


@scenario("only the client offers wscale (scaling off both ways); data within the raw window; "
          "a segment 150000 bytes ahead (would fit only if the client's wscale 7 were applied); close")
def no_window_scale_one_side(sc):
    k = sc.conn(40033, s_wscale=None)
    k.handshake()
    k.data("c", http_request("/bulk"))
    for i in range(6):
        k.data("s", blob(1448, i))
        if i % 2 == 1:
            k.ack("c", win=64240)
    k.data("s", blob(1448, 99), seq=k.s.nxt + 150000)
    k.ack("c", win=64240)
    k.close_4way("c")


@scenario("client with a small unscaled window (2920); the server sends 4 x 1448 bytes, the 4th starts "
          "beyond the right edge by less than a window (kernel lets it through), client ACKs all, close")
def data_overshoot_window(sc):
    k = sc.conn(40036, c_wscale=None)
    k.c.syn_win = 2920
    k.handshake()
    k.data("c", http_request("/overshoot"))
    for i in range(4):
        k.data("s", blob(1448, i))            # 4th: seq = ack + 4344 > ack + 2920
    k.ack("c")
    k.close_4way("s")


@scenario("client advertises a zero window; server sends a 1 byte zero-window probe, then data after the window opens")
def zero_window_probe(sc):
    k = sc.conn(40034)
    k.handshake()
    k.data("c", http_request("/big"))
    k.data("s", http_response(1200))
    k.ack("c", win=0)
    probe = blob(1, 5)
    k.data("s", probe, advance=False)                          # probe: seq = nxt, 1 byte
    k.ack("c", win=0)                                          # probe not accepted
    k.ack("c", win=502)                                        # window update
    k.data("s", blob(1000, 6))
    k.ack("c")
    k.close_4way("s")


@scenario("established, idle; keepalive probes (seq = nxt-1, no data) from both sides and their ACKs")
def keepalive(sc):
    k = sc.conn(40035)
    k.handshake()
    k.exchange()
    k.ack("c", seq=k.c.nxt - 1)
    k.ack("s")
    k.ack("s", seq=k.s.nxt - 1)
    k.ack("c")
    k.close_4way("c")


# ---------------------------------------------------------------- pick-up
@scenario("a SYN-ACK with no prior SYN, then the ACK (loose pick-up) and data")
def synack_without_syn(sc):
    k = sc.conn(40040)
    k.synack("s", ack=k.c.nxt + 1)
    k.c.nxt += 1
    k.ack("c")
    k.exchange()


@scenario("mid-stream ACK with no prior state (loose pick-up), then data in both directions")
def ack_without_connection(sc):
    k = sc.conn(40041)
    k.c.nxt += 123456
    k.s.nxt += 654321
    k.ack("c")
    k.data("s", blob(800, 1))
    k.ack("c")
    k.data("c", blob(200, 2))
    k.ack("s")


@scenario("first seen packet is a data segment from the server, then client ACK and more data")
def data_without_connection_reply_first(sc):
    k = sc.conn(40042)
    k.c.nxt += 5000
    k.s.nxt += 90000
    k.data("s", blob(1000, 1))
    k.ack("c")
    k.data("c", blob(100, 2))
    k.data("s", blob(500, 3))
    k.ack("c")


@scenario("loose pick-up, then far out-of-window data both ways (picked-up connections are checked liberally)")
def pickup_then_out_of_window(sc):
    k = sc.conn(40043)
    k.c.nxt += 777
    k.s.nxt += 888888
    k.ack("c")
    k.data("s", blob(500, 1))
    k.data("s", blob(500, 2), seq=k.s.nxt + 5000000)
    k.data("c", blob(100, 3), seq=k.c.nxt + 5000000)
    k.ack("c")
    k.rst("c", seq=k.c.nxt + 0x40000000, win=0)
    k.rst("c", win=0)


# ---------------------------------------------------------------- retransmissions
@scenario("SYN, retransmitted SYN, SYN-ACK, ACK")
def retransmitted_syn(sc):
    k = sc.conn(40050)
    isn = k.syn("c")
    k.syn("c", seq=isn)
    k.synack("s")
    k.ack("c")
    k.exchange()


@scenario("handshake with a retransmitted SYN-ACK and duplicate ACK, a retransmitted data segment, a retransmitted FIN")
def retransmitted_synack_and_data(sc):
    k = sc.conn(40051)
    k.syn("c")
    s_isn = k.synack("s")
    k.synack("s", seq=s_isn)
    k.ack("c")
    k.ack("c")
    req = http_request()
    seq = k.data("c", req)
    k.data("c", req, seq=seq)
    k.data("s", http_response())
    k.ack("c")
    fin = k.fin("c")
    k.fin("c", seq=fin)
    k.ack("s")
    k.fin("s")
    k.ack("c")


# ---------------------------------------------------------------- reopen
@scenario("4-way close to TIME_WAIT, then a new SYN on the same tuple with a higher ISN, SYN-ACK, ACK")
def syn_on_time_wait(sc):
    k = sc.conn(40060)
    k.handshake()
    k.exchange()
    k.close_4way("c")
    k.reisn("c", k.c.nxt + 250000)
    k.reisn("s", h32(sc.name, "s-isn2"))
    k.handshake()
    k.exchange()


@scenario("server resets an established connection, then the client sends a new SYN on the same tuple and the handshake")
def syn_on_close_after_rst(sc):
    k = sc.conn(40061)
    k.handshake()
    k.exchange()
    k.rst("s", win=0)
    k.reisn("c", k.c.nxt + 250000)
    k.reisn("s", h32(sc.name, "s-isn2"))
    k.handshake()
    k.exchange()


@scenario("client resets an established connection, then sends a new SYN on the same tuple and the handshake")
def syn_on_close_after_client_rst(sc):
    k = sc.conn(40062)
    k.handshake()
    k.exchange()
    k.rst("c", win=0)
    k.reisn("c", k.c.nxt + 250000)
    k.reisn("s", h32(sc.name, "s-isn2"))
    k.handshake()
    k.exchange()


@scenario("established; new SYN from the client (ignored), the server's SYN-ACK for it (resync), ACK, data")
def syn_in_established(sc):
    k = sc.conn(40063)
    k.handshake()
    k.exchange()
    k.reisn("c", h32(sc.name, "c-isn2"))
    k.reisn("s", h32(sc.name, "s-isn2"))
    k.handshake()
    k.exchange()


@scenario("established; client restarted: new SYN, server challenge ACK, client RST for it, SYN again, handshake")
def syn_in_established_challenge_ack(sc):
    k = sc.conn(40064)
    k.handshake()
    k.exchange()
    old_c_nxt = k.c.nxt
    k.reisn("c", h32(sc.name, "c-isn2"))
    new_isn = k.syn("c")
    k.ack("s", ack=old_c_nxt)                       # challenge ACK for the stale connection
    k.pkt("c", R, seq=old_c_nxt, ack=0, win=0, opts=[], advance=False)
    k.syn("c", seq=new_isn)                         # SYN retransmission
    k.reisn("s", h32(sc.name, "s-isn2"))
    k.synack("s")
    k.ack("c")
    k.exchange()


@scenario("SYN to a server that still has the old connection: server challenge ACK, client RST, "
          "SYN retransmitted, handshake, data")
def syn_to_stale_server_challenge_ack(sc):
    k = sc.conn(40067)
    k.reisn("s", h32(sc.name, "stale-server"))
    stale_ack = h32(sc.name, "stale-client")           # what the server expects from the old client
    isn = k.syn("c")
    k.ack("s", ack=stale_ack)                           # challenge ACK for the stale connection
    k.pkt("c", R, seq=stale_ack, ack=0, win=0, opts=[], advance=False)
    k.syn("c", seq=isn)                                 # SYN retransmission after 1 s
    k.reisn("s", h32(sc.name, "s-isn2"))
    k.synack("s")
    k.ack("c")
    k.exchange()


@scenario("simultaneous open: both SYNs cross, both SYN-ACKs, both ACKs, data")
def simultaneous_open(sc):
    k = sc.conn(40065, sport=40066)
    c_isn = k.syn("c")
    s_isn = k.syn("s")
    k.synack("c", seq=c_isn)
    k.synack("s", seq=s_isn)
    k.ack("c")
    k.ack("s")
    k.data("c", blob(100, 1))
    k.data("s", blob(200, 2))
    k.ack("c")


# ---------------------------------------------------------------- flags
@scenario("flag combinations on fresh tuples (SYN|FIN, SYN|RST, FIN, none, XMAS, RST|FIN, SYN|FIN|ACK, "
          "FIN|ACK, RST, ACK|URG..., SYN|ECE|CWR) and inside an established connection")
def invalid_flags(sc):
    fresh = [
        ("synfin", S | F), ("synrst", S | R), ("fin", F), ("null", 0),
        ("xmas", F | P | U), ("rstfin", R | F), ("synfinack", S | F | A),
        ("finack", F | A), ("rst", R), ("pshonly", P), ("synurg", S | U),
        ("synececwr", S | E | C),
    ]
    for i, (tag, flags) in enumerate(fresh):
        k = sc.conn(40100 + i, tag=tag)
        k.pkt("c", flags, urg=1 if flags & U else 0)
    k = sc.conn(40120, tag="est")
    k.handshake()
    k.exchange()
    for flags in (S | F, F, 0, F | P | U, R | F, S | F | A):
        k.pkt("c", flags, advance=False, urg=1 if flags & U else 0)
    k.pkt("s", P | A | U, http_response(50), urg=5)            # URG data: valid
    k.ack("c")
    k.close_4way("c")


# ---------------------------------------------------------------- IPv6 / VLAN
@scenario("IPv6: handshake, request/response, 4-way close")
def ipv6_handshake_close(sc):
    k = sc.conn(40201, v6=True)
    k.handshake()
    k.exchange()
    k.close_4way("c")


@scenario("IPv6: handshake, data, client RST, new SYN on the same tuple, handshake, data")
def ipv6_rst_and_reopen(sc):
    k = sc.conn(40202, v6=True)
    k.handshake()
    k.exchange()
    k.rst("c", win=0)
    k.reisn("c", k.c.nxt + 300000)
    k.reisn("s", h32(sc.name, "s-isn2"))
    k.handshake()
    k.exchange()


@scenario("802.1Q VLAN 100 tagged: handshake, request/response, 4-way close (kernel side replays it untagged)")
def vlan_handshake(sc):
    k = sc.conn(40301, vlan=100)
    k.handshake()
    k.exchange()
    k.close_4way("c")


def build_all():
    out = []
    for name, doc, fn in SCENARIOS:
        sc = Scenario(name, doc)
        fn(sc)
        assert 0 < len(sc.frames) < 40, (name, len(sc.frames))
        out.append(sc)
    return out


def readme_text(scs):
    lines = ["# Conformance scenarios\n\n",
             "Generated by `../make_scenarios.py` (do not edit the pcaps by hand). "
             "One line per scenario: `name` (packets): what it does.\n",
             "The kernel's state/verdict for each packet is in `../expected/NAME.expect`.\n\n"]
    lines += [f"- `{sc.name}` ({len(sc.frames)} pkts): {sc.doc}\n" for sc in scs]
    return "".join(lines)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outdir", default=os.path.join(here, "scenarios"))
    ap.add_argument("--list", action="store_true", help="only list scenario names")
    ap.add_argument("--check", action="store_true",
                    help="compare the generated files with those in --outdir, write nothing")
    args = ap.parse_args()
    scs = build_all()
    if args.list:
        for sc in scs:
            print(sc.name)
        return 0
    files = {sc.name + ".pcap": sc.pcap_bytes() for sc in scs}
    files["README.md"] = readme_text(scs).encode()
    if args.check:
        bad = []
        for name, data in files.items():
            path = os.path.join(args.outdir, name)
            try:
                with open(path, "rb") as f:
                    if f.read() != data:
                        bad.append(f"{name}: differs")
            except FileNotFoundError:
                bad.append(f"{name}: missing")
        if os.path.isdir(args.outdir):
            bad += [f"{n}: not generated by this script" for n in sorted(os.listdir(args.outdir))
                    if n.endswith(".pcap") and n not in files]
        for b in bad:
            print(b)
        print(f"{len(scs)} scenarios, {len(bad)} problems")
        return 1 if bad else 0
    os.makedirs(args.outdir, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(args.outdir, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(scs)} scenarios to {args.outdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
