#!/usr/bin/python3
"""Replay conformance scenarios through the real Linux nf_conntrack.

For every packet of scenarios/NAME.pcap this records the kernel's conntrack
state of the packet's connection after the packet, and whether the kernel
classified the packet INVALID (nft `ct state invalid` counter).

  kernel_replay.py --record [NAMES...]   (re)write expected/NAME.expect
  kernel_replay.py --check  [NAMES...]   replay and compare with expected/
  kernel_replay.py --show   [NAMES...]   replay and print, write nothing
     -v          print every packet with the conntrack entry's status/flags
     --explain   also print nf_conntrack's own log message for flagged or
                 ignored packets (nfnetlink_log inside the router namespace)

NAMES are scenario names (the pcap file stem) or NAME@VARIANT; without NAMES
all scenarios plus the built-in variant list are used.  Variants:
  @loose0   net.netfilter.nf_conntrack_tcp_loose=0
  @liberal  net.netfilter.nf_conntrack_tcp_be_liberal=1

Topology (created per run, always deleted again, names contain our PID):

   ns ctlbconf-a-PID            ns ctlbconf-r-PID              ns ctlbconf-b-PID
   [va] <---- veth ----> [ra]  router + conntrack  [rb] <---- veth ----> [vb]
   client side 198.18.1.0/24                        server side 198.18.2.0/24
               2001:2:0:1::/64                                  2001:2:0:2::/64

A packet from the client side is written with an AF_PACKET socket on va (src
MAC = va, dst MAC = ra), the router forwards it (conntrack + nft counters in
its forward chain) out of rb towards vb, where an AF_PACKET socket on vb sees
it arrive; only then (conntrack has confirmed the entry by then) the nft
counters and the conntrack table are read over netlink (cross-checked with
conntrack(8) and nft(8) at the end of every scenario).  a and b do not own
the scenario addresses and drop everything in nftables, so their stacks
never answer.

Exit status: 0 ok, 1 mismatch (--check), 2 error, 77 cannot run here (skip).
Needs root, network namespaces, ip(8), nft(8), conntrack(8), nf_conntrack.
Only the Python standard library is used.
"""

import argparse
import ctypes
import ipaddress
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN_DIR = os.path.join(HERE, "scenarios")
EXP_DIR = os.path.join(HERE, "expected")

# Variants: name -> sysctl overrides, and the scenarios they are recorded for.
DEFAULT_SYSCTLS = {"tcp_loose": 1, "be_liberal": 0}
VARIANTS = {
    "loose0": {"tcp_loose": 0},
    "liberal": {"be_liberal": 1},
}
VARIANT_SCENARIOS = {
    "loose0": ["synack_without_syn", "ack_without_connection",
               "data_without_connection_reply_first", "pickup_then_out_of_window"],
    "liberal": ["data_out_of_window", "rst_out_of_window", "fin_out_of_window",
                "no_window_scale_one_side"],
}

SIDE_NETS = {
    "a": [ipaddress.ip_network("198.18.1.0/24"), ipaddress.ip_network("2001:2:0:1::/64")],
    "b": [ipaddress.ip_network("198.18.2.0/24"), ipaddress.ip_network("2001:2:0:2::/64")],
}
ALLOWED = [ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("2001:2::/48")]
ROUTER_ADDRS = {"a": ["198.18.1.1/24", "2001:2:0:1::1/64"],
                "b": ["198.18.2.1/24", "2001:2:0:2::1/64"]}
# fixed MACs; every namespace is private so they cannot clash with anything
MACS = {"va": "02:c7:1b:0a:00:01", "ra": "02:c7:1b:0a:00:fe",
        "vb": "02:c7:1b:0b:00:01", "rb": "02:c7:1b:0b:00:fe"}

TCP_STATES = ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
              "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"]
NFT_TABLE = "ctlbconf"
PKT_DEADLINE = 3.0           # seconds to wait for one forwarded packet

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR, EXIT_SKIP = 0, 1, 2, 77


class Skip(Exception):
    """The environment cannot run the replay (meson SKIP)."""


class ReplayError(Exception):
    pass


# --------------------------------------------------------------------------
# pcap / packet parsing (no scapy needed)

def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ReplayError(f"{path}: not a pcap file")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ReplayError(f"{path}: bad pcap magic")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    if linktype != 1:
        raise ReplayError(f"{path}: linktype {linktype}, expected 1 (Ethernet)")
    off, frames = 24, []
    while off + 16 <= len(data):
        _, _, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        if incl != orig:
            raise ReplayError(f"{path}: truncated packet {len(frames) + 1}")
        frames.append(data[off:off + incl])
        off += incl
    return frames


class Pkt:
    """Parsed Ethernet/[802.1Q]/IPv4|IPv6/TCP frame."""

    def __init__(self, frame):
        off = 12
        ethertype = struct.unpack("!H", frame[off:off + 2])[0]
        while ethertype in (0x8100, 0x88A8):       # strip VLAN tags
            off += 4
            ethertype = struct.unpack("!H", frame[off:off + 2])[0]
        l3 = frame[off + 2:]
        if ethertype == 0x0800:
            ihl = (l3[0] & 0x0F) * 4
            tot = struct.unpack("!H", l3[2:4])[0]
            if l3[9] != 6:
                raise ReplayError("not TCP")
            self.family = socket.AF_INET
            self.src, self.dst = l3[12:16], l3[16:20]
            self.l3 = l3[:tot]
            self.l4 = l3[ihl:tot]
        elif ethertype == 0x86DD:
            plen = struct.unpack("!H", l3[4:6])[0]
            if l3[6] != 6:
                raise ReplayError("IPv6 extension headers are not supported")
            self.family = socket.AF_INET6
            self.src, self.dst = l3[8:24], l3[24:40]
            self.l3 = l3[:40 + plen]
            self.l4 = l3[40:40 + plen]
        else:
            raise ReplayError(f"ethertype 0x{ethertype:04x} is not IP")
        self.ethertype = ethertype
        self.sport, self.dport, self.seq, self.ack = struct.unpack("!HHII", self.l4[:12])
        self.flags = self.l4[13]
        self.sip = ipaddress.ip_address(self.src)
        self.dip = ipaddress.ip_address(self.dst)

    def key(self):
        return (self.family, self.src, self.sport, self.dst, self.dport)

    def rkey(self):
        return (self.family, self.dst, self.dport, self.src, self.sport)

    def describe(self):
        names = "FSRPAUEC"
        fl = "".join(n for i, n in enumerate(names) if self.flags & (1 << i)) or "-"
        hl = (self.l4[12] >> 4) * 4
        return (f"{self.sip}:{self.sport} > {self.dip}:{self.dport} [{fl}] "
                f"seq={self.seq} ack={self.ack} len={len(self.l4) - hl}")


def side_of(addr):
    for side, nets in SIDE_NETS.items():
        if any(addr in n for n in nets):
            return side
    return None


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


# --------------------------------------------------------------------------
# netlink (conntrack table and nft named counters)

NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFNL_SUBSYS_CTNETLINK, NFNL_SUBSYS_NFTABLES = 1, 10
IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_DELETE = 1, 2
NFT_MSG_GETOBJ, NFT_OBJECT_COUNTER = 19, 1
NFPROTO_INET = 1
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO = 1, 2, 3, 4
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTOINFO_TCP = 1
CTA_PROTOINFO_TCP_STATE, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL = 1, 2
CTA_PROTOINFO_TCP_WSCALE_REPLY, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL = 3, 4
CTA_PROTOINFO_TCP_FLAGS_REPLY = 5
NFTA_OBJ_TABLE, NFTA_OBJ_NAME, NFTA_OBJ_TYPE, NFTA_OBJ_DATA = 1, 2, 3, 4
NFTA_COUNTER_PACKETS = 2
NLA_F_NESTED = 0x8000


def nla(atype, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, atype) + payload + b"\0" * ((4 - n % 4) % 4)


def parse_nla(buf):
    out, off = {}, 0
    while off + 4 <= len(buf):
        n, t = struct.unpack("=HH", buf[off:off + 4])
        if n < 4:
            break
        out[t & 0x3FFF] = buf[off + 4:off + n]
        off += (n + 3) & ~3
    return out


class Netlink:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.seq = int(time.time()) & 0xFFFF

    def close(self):
        self.sock.close()

    def request(self, mtype, flags, family, attrs=b""):
        self.seq += 1
        body = struct.pack("=BBH", family, 0, 0) + attrs
        msg = struct.pack("=IHHII", 16 + len(body), mtype, flags, self.seq, 0) + body
        self.sock.send(msg)
        replies = []
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                ln, t, fl, sq, _ = struct.unpack("=IHHII", data[off:off + 16])
                payload = data[off + 16:off + ln]
                off += (ln + 3) & ~3
                if sq != self.seq:
                    continue
                if t == NLMSG_DONE:
                    return replies
                if t == NLMSG_ERROR:
                    err = struct.unpack("=i", payload[:4])[0]
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return replies          # ACK
                replies.append((t, payload[4:]))   # strip nfgenmsg
                # ctnetlink marks even single replies NLM_F_MULTI (without a
                # trailing NLMSG_DONE): only dumps are really multipart here
                if (flags & NLM_F_DUMP) != NLM_F_DUMP and not flags & NLM_F_ACK:
                    return replies

    def counter(self, name):
        attrs = (nla(NFTA_OBJ_TABLE, NFT_TABLE.encode() + b"\0")
                 + nla(NFTA_OBJ_NAME, name.encode() + b"\0")
                 + nla(NFTA_OBJ_TYPE, struct.pack("!I", NFT_OBJECT_COUNTER)))
        rep = self.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ,
                           NLM_F_REQUEST, NFPROTO_INET, attrs)
        obj = parse_nla(rep[0][1])
        data = parse_nla(obj[NFTA_OBJ_DATA])
        return struct.unpack("!Q", data[NFTA_COUNTER_PACKETS])[0]

    def _entry(self, payload):
        a = parse_nla(payload)
        orig = self._tuple(a.get(CTA_TUPLE_ORIG, b""))
        if orig is None:
            return None
        ent = {"orig": orig, "reply": self._tuple(a.get(CTA_TUPLE_REPLY, b"")),
               "status": struct.unpack("!I", a[CTA_STATUS])[0] if CTA_STATUS in a else 0,
               "state": "NONE", "flags": (0, 0), "wscale": (0, 0)}
        tcp = parse_nla(parse_nla(a.get(CTA_PROTOINFO, b"")).get(CTA_PROTOINFO_TCP, b""))
        if CTA_PROTOINFO_TCP_STATE in tcp:
            st = tcp[CTA_PROTOINFO_TCP_STATE][0]
            ent["state"] = TCP_STATES[st] if st < len(TCP_STATES) else f"STATE{st}"
        if CTA_PROTOINFO_TCP_FLAGS_ORIGINAL in tcp:
            ent["flags"] = (tcp[CTA_PROTOINFO_TCP_FLAGS_ORIGINAL][0],
                            tcp.get(CTA_PROTOINFO_TCP_FLAGS_REPLY, b"\0")[0])
        if CTA_PROTOINFO_TCP_WSCALE_ORIGINAL in tcp:
            ent["wscale"] = (tcp[CTA_PROTOINFO_TCP_WSCALE_ORIGINAL][0],
                             tcp.get(CTA_PROTOINFO_TCP_WSCALE_REPLY, b"\0")[0])
        return ent

    def ct_dump(self):
        """All TCP conntrack entries of this namespace (walks the whole hash: slow)."""
        rep = self.request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
                           NLM_F_REQUEST | NLM_F_DUMP, socket.AF_UNSPEC)
        return [e for e in (self._entry(p) for _, p in rep) if e]

    def ct_get(self, key):
        """The entry whose original or reply tuple is key, or None (hash lookup)."""
        family, src, sport, dst, dport = key
        if family == socket.AF_INET:
            ip = nla(CTA_IP_V4_SRC, src) + nla(CTA_IP_V4_DST, dst)
        else:
            ip = nla(CTA_IP_V6_SRC, src) + nla(CTA_IP_V6_DST, dst)
        proto = (nla(CTA_PROTO_NUM, b"\x06") + nla(CTA_PROTO_SRC_PORT, struct.pack("!H", sport))
                 + nla(CTA_PROTO_DST_PORT, struct.pack("!H", dport)))
        tup = nla(CTA_TUPLE_IP | NLA_F_NESTED, ip) + nla(CTA_TUPLE_PROTO | NLA_F_NESTED, proto)
        try:
            rep = self.request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, NLM_F_REQUEST,
                               family, nla(CTA_TUPLE_ORIG | NLA_F_NESTED, tup))
        except FileNotFoundError:
            return None
        ents = [e for e in (self._entry(p) for _, p in rep) if e]
        return ents[0] if ents else None

    @staticmethod
    def _tuple(buf):
        t = parse_nla(buf)
        ip, proto = parse_nla(t.get(CTA_TUPLE_IP, b"")), parse_nla(t.get(CTA_TUPLE_PROTO, b""))
        if proto.get(CTA_PROTO_NUM, b"\0")[0] != 6:
            return None
        if CTA_IP_V4_SRC in ip:
            fam, s, d = socket.AF_INET, ip[CTA_IP_V4_SRC], ip[CTA_IP_V4_DST]
        elif CTA_IP_V6_SRC in ip:
            fam, s, d = socket.AF_INET6, ip[CTA_IP_V6_SRC], ip[CTA_IP_V6_DST]
        else:
            return None
        return (fam, s, struct.unpack("!H", proto[CTA_PROTO_SRC_PORT])[0],
                d, struct.unpack("!H", proto[CTA_PROTO_DST_PORT])[0])

    def ct_flush(self):
        self.request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
                     NLM_F_REQUEST | NLM_F_ACK, socket.AF_UNSPEC)


class KernelLog:
    """nfnetlink_log listener (group 0) for the nf_conntrack "log_invalid" messages.

    Only used with --explain: the router namespace binds nfnetlink_log as its
    IPv4/IPv6 logger and sets nf_conntrack_log_invalid=255, so the reason why
    the tracker flagged or ignored a packet arrives here as the log prefix.
    """
    NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 4, 0, 1
    NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_QTHRESH, NFULA_PREFIX = 1, 2, 5, 10

    def __init__(self):
        self.nl = Netlink()
        cfg = (self.NFNL_SUBSYS_ULOG << 8) | self.NFULNL_MSG_CONFIG
        self.nl.request(cfg, NLM_F_REQUEST | NLM_F_ACK, socket.AF_UNSPEC,
                        nla(self.NFULA_CFG_CMD, b"\x01"))                        # BIND group 0
        self.nl.request(cfg, NLM_F_REQUEST | NLM_F_ACK, socket.AF_UNSPEC,
                        nla(self.NFULA_CFG_MODE, struct.pack("!IBB", 0, 1, 0))  # COPY_META
                        + nla(self.NFULA_CFG_QTHRESH, struct.pack("!I", 1)))
        self.nl.sock.setblocking(False)

    def read(self):
        out = []
        while True:
            try:
                data = self.nl.sock.recv(1 << 16)
            except BlockingIOError:
                return out
            off = 0
            while off + 16 <= len(data):
                ln, t = struct.unpack("=IH", data[off:off + 6])
                if t == (self.NFNL_SUBSYS_ULOG << 8) | self.NFULNL_MSG_PACKET:
                    a = parse_nla(data[off + 20:off + ln])
                    if self.NFULA_PREFIX in a:
                        out.append(a[self.NFULA_PREFIX].rstrip(b"\0").decode(errors="replace").strip())
                off += (ln + 3) & ~3

    def close(self):
        self.nl.close()


# --------------------------------------------------------------------------
# namespaces / topology

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def run(cmd, stdin=None, check=True):
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise ReplayError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}")
    return p


class Topology:
    def __init__(self):
        pid = os.getpid()
        self.ns = {k: f"ctlbconf-{k}-{pid}" for k in ("r", "a", "b")}
        self.created = []
        self.socks = {}
        self.nl = None
        self.klog = None
        self.orig_ns = None

    # -- setup -----------------------------------------------------------
    def nsexec(self, ns, *cmd, **kw):
        return run(["ip", "netns", "exec", self.ns[ns]] + list(cmd), **kw)

    def setup(self, addrs, explain=False):
        for k in ("r", "a", "b"):
            p = run(["ip", "netns", "add", self.ns[k]], check=False)
            if p.returncode != 0:
                if k == "r":
                    raise Skip(f"cannot create network namespaces: {p.stderr.strip()}")
                raise ReplayError(p.stderr.strip())
            self.created.append(self.ns[k])
        R = self.ns["r"]
        for side in ("a", "b"):
            v, r = "v" + side, "r" + side
            run(["ip", "-n", self.ns[side], "link", "add", v, "address", MACS[v], "type", "veth",
                 "peer", "name", r, "address", MACS[r], "netns", R])
        # end hosts: no IPv6, no addresses, drop everything that reaches the stack
        for side in ("a", "b"):
            self.nsexec(side, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.ip_forward=0")
            run(["ip", "-n", self.ns[side], "link", "set", "v" + side, "up"])
            run(["ip", "-n", self.ns[side], "link", "set", "lo", "up"])
            self.nsexec(side, "nft", "-f", "-", stdin=(
                "table inet ctlbconf_drop {\n"
                "  chain pre { type filter hook prerouting priority -400; policy drop; }\n"
                "  chain input { type filter hook input priority 0; policy drop; }\n"
                "  chain output { type filter hook output priority 0; policy drop; }\n"
                "}\n"))
        # router
        self.nsexec("r", "sysctl", "-q", "-w",
                    "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.all.accept_ra=0",
                    "net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.all.autoconf=0",
                    "net.ipv6.conf.default.autoconf=0")
        for side in ("a", "b"):
            r = "r" + side
            self.nsexec("r", "sysctl", "-q", "-w", f"net.ipv4.conf.{r}.rp_filter=0",
                        f"net.ipv6.conf.{r}.accept_dad=0", f"net.ipv6.conf.{r}.accept_ra=0",
                        f"net.ipv6.conf.{r}.autoconf=0", f"net.ipv6.conf.{r}.forwarding=1")
            for a in ROUTER_ADDRS[side]:
                extra = ["nodad"] if ":" in a else []
                run(["ip", "-n", R, "addr", "add", a, "dev", r] + extra)
            run(["ip", "-n", R, "link", "set", r, "up"])
        run(["ip", "-n", R, "link", "set", "lo", "up"])
        # connected routes exist through the addresses; make them explicit anyway
        for side in ("a", "b"):
            for net in SIDE_NETS[side]:
                run(["ip", "-n", R, "route", "replace", str(net), "dev", "r" + side])
        # permanent neighbours for every scenario address: no ARP / ND ever
        for addr in sorted(addrs, key=str):
            side = side_of(addr)
            run(["ip", "-n", R, "neigh", "replace", str(addr), "lladdr", MACS["v" + side],
                 "dev", "r" + side, "nud", "permanent"])
        probe = self.nsexec("r", "nft", "-f", "-", check=False, stdin=(
            "table inet ctlbconf_probe {\n"
            "  chain c { type filter hook forward priority 0; ct state invalid counter; }\n"
            "}\ndelete table inet ctlbconf_probe\n"))
        if probe.returncode != 0:
            raise Skip(f"nftables conntrack support not usable: {probe.stderr.strip()}")
        self.nsexec("r", "nft", "-f", "-", stdin=(
            f"table inet {NFT_TABLE} {{\n"
            "  counter tcp_pkts { }\n"
            "  counter tcp_invalid { }\n"
            "  chain forward_hook {\n"
            "    type filter hook forward priority 0; policy accept;\n"
            "    meta l4proto tcp counter name \"tcp_pkts\"\n"
            "    meta l4proto tcp ct state invalid counter name \"tcp_invalid\"\n"
            "  }\n"
            "}\n"))
        if self.nsexec("r", "sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose",
                       check=False).returncode != 0:
            raise Skip("nf_conntrack sysctls missing in the router namespace")
        # sockets: AF_PACKET on va / vb, netlink in r
        self.orig_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            for side in ("a", "b"):
                fd = os.open(f"/run/netns/{self.ns[side]}", os.O_RDONLY)
                try:
                    setns(fd)
                    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
                    s.bind(("v" + side, 0))
                    s.setblocking(False)
                    self.socks[side] = s
                finally:
                    os.close(fd)
            fd = os.open(f"/run/netns/{R}", os.O_RDONLY)
            try:
                setns(fd)
                self.nl = Netlink()
                if explain:
                    self.nsexec("r", "sysctl", "-q", "-w", "net.netfilter.nf_log.2=nfnetlink_log",
                                "net.netfilter.nf_log.10=nfnetlink_log",
                                "net.netfilter.nf_conntrack_log_invalid=255")
                    self.klog = KernelLog()
            finally:
                os.close(fd)
        finally:
            setns(self.orig_ns)

    def read_sysctl(self, name):
        return int(self.nsexec("r", "sysctl", "-n", f"net.netfilter.{name}").stdout.strip())

    def set_conntrack_sysctls(self, tcp_loose, be_liberal):
        vals = [f"net.netfilter.nf_conntrack_tcp_loose={tcp_loose}",
                f"net.netfilter.nf_conntrack_tcp_be_liberal={be_liberal}",
                "net.netfilter.nf_conntrack_checksum=1"]
        p = self.nsexec("r", "sysctl", "-n", "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst",
                        check=False)
        if p.returncode == 0:
            vals.append("net.netfilter.nf_conntrack_tcp_ignore_invalid_rst=0")
        self.nsexec("r", "sysctl", "-q", "-w", *vals)
        got = (self.read_sysctl("nf_conntrack_tcp_loose"),
               self.read_sysctl("nf_conntrack_tcp_be_liberal"))
        if got != (tcp_loose, be_liberal):
            raise ReplayError(f"sysctls did not stick: {got}")

    # -- teardown --------------------------------------------------------
    def cleanup(self):
        for s in self.socks.values():
            s.close()
        self.socks = {}
        if self.nl:
            self.nl.close()
            self.nl = None
        if self.klog:
            self.klog.close()
            self.klog = None
        if self.orig_ns is not None:
            try:
                setns(self.orig_ns)
            except OSError:
                pass
            os.close(self.orig_ns)
            self.orig_ns = None
        for name in reversed(self.created):
            run(["ip", "netns", "del", name], check=False)
        self.created = []


# --------------------------------------------------------------------------
# replay

class Replayer:
    def __init__(self, topo):
        self.topo = topo
        self.nl = topo.nl

    def flush(self):
        self.nl.ct_flush()
        deadline = time.monotonic() + 2.0
        while self.nl.ct_dump():
            if time.monotonic() > deadline:
                raise ReplayError("conntrack table not empty after flush")
            self.nl.ct_flush()

    def drain(self):
        for s in self.topo.socks.values():
            while True:
                try:
                    s.recv(65535)
                except BlockingIOError:
                    break

    def wait_forwarded(self, sock, pkt, deadline):
        """Block until the router has forwarded pkt out to sock's veth."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                continue
            while True:
                try:
                    data, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                try:
                    got = Pkt(data)
                except (ReplayError, struct.error, IndexError):
                    continue
                if got.key() == pkt.key() and got.l4 == pkt.l4:
                    return True

    def crosscheck(self, name, pkt, ent):
        """Compare the last netlink answers with conntrack(8) and nft(8) output."""
        fam = "ipv6" if pkt.family == socket.AF_INET6 else "ipv4"
        out = self.topo.nsexec("r", "conntrack", "-L", "-p", "tcp", "-f", fam).stdout
        want = {pkt.key(), pkt.rkey()}
        found = "NONE"
        for line in out.splitlines():
            tok = line.split()
            kv = {}
            for t in tok:
                k, _, v = t.partition("=")
                if v and k not in kv:
                    kv[k] = v
            try:
                key = (pkt.family, ipaddress.ip_address(kv["src"]).packed, int(kv["sport"]),
                       ipaddress.ip_address(kv["dst"]).packed, int(kv["dport"]))
            except (KeyError, ValueError):
                continue
            if key in want:
                found = next((t for t in tok if t in TCP_STATES), "NONE")
        mine = ent["state"] if ent else "NONE"
        if found != mine:
            raise ReplayError(f"{name}: conntrack -L says {found}, netlink said {mine}")
        out = self.topo.nsexec("r", "nft", "list", "counter", "inet", NFT_TABLE, "tcp_invalid").stdout
        tok = out.split()
        nft_inv = int(tok[tok.index("packets") + 1])
        if nft_inv != self.nl.counter("tcp_invalid"):
            raise ReplayError(f"{name}: nft list counter disagrees with netlink ({nft_inv})")

    def lookup(self, pkt):
        ent = self.nl.ct_get(pkt.key())
        if ent and ent["orig"] not in (pkt.key(), pkt.rkey()):
            raise ReplayError(f"conntrack returned a foreign entry for {pkt.describe()}")
        return ent

    def replay(self, name, frames, verbose=False):
        self.flush()
        results = []
        tcp_before = self.nl.counter("tcp_pkts")
        inv_before = self.nl.counter("tcp_invalid")
        for i, frame in enumerate(frames, 1):
            pkt = Pkt(frame)
            side = side_of(pkt.sip)
            other = "b" if side == "a" else "a"
            out = (mac_bytes(MACS["r" + side]) + mac_bytes(MACS["v" + side])
                   + struct.pack("!H", pkt.ethertype) + pkt.l3)
            self.drain()
            if self.topo.klog:
                self.topo.klog.read()
            self.topo.socks[side].send(out)
            deadline = time.monotonic() + PKT_DEADLINE
            forwarded = self.wait_forwarded(self.topo.socks[other], pkt, deadline)
            while True:                       # poll the tcp counter against a deadline
                tcp = self.nl.counter("tcp_pkts")
                if tcp >= tcp_before + 1:
                    break
                if time.monotonic() > deadline:
                    raise ReplayError(f"{name}: packet {i} never reached the router's "
                                      f"forward chain: {pkt.describe()}")
            if tcp != tcp_before + 1:
                raise ReplayError(f"{name}: packet {i}: tcp counter moved by {tcp - tcp_before}")
            if not forwarded:
                print(f"warning: {name}: packet {i} counted but not forwarded", file=sys.stderr)
            inv = self.nl.counter("tcp_invalid")
            verdict = "invalid" if inv > inv_before else "accept"
            tcp_before, inv_before = tcp, inv
            ent = self.lookup(pkt)
            state = ent["state"] if ent else "NONE"
            results.append((i, state, verdict))
            if verbose:
                extra = ""
                if ent:
                    d = "orig" if ent["orig"] == pkt.key() else "reply"
                    extra = (f"  [{d} status=0x{ent['status']:x} "
                             f"flags={ent['flags'][0]:#x}/{ent['flags'][1]:#x} "
                             f"wscale={ent['wscale'][0]}/{ent['wscale'][1]}]")
                print(f"  {i:3d} {state:<11} {verdict:<7} {pkt.describe()}{extra}")
                if self.topo.klog:
                    for msg in self.topo.klog.read():
                        print(f"        kernel: {msg}")
        if frames:
            self.crosscheck(name, pkt, ent)
        return results


# --------------------------------------------------------------------------
# expectation files

def header(name, sysctls):
    return (f"# scenario {name} recorded from Linux {os.uname().release} nf_conntrack "
            f"(tcp_loose={sysctls['tcp_loose']} be_liberal={sysctls['be_liberal']}) "
            f"by kernel_replay.py\n# index state verdict\n")


def exp_path(name):
    return os.path.join(EXP_DIR, name + ".expect")


HEADER_RE = re.compile(r"^# scenario (\S+) recorded from Linux (\S+) nf_conntrack "
                       r"\(tcp_loose=(\d+) be_liberal=(\d+)\)")


def read_expect(path):
    """-> (header dict or None, [(index, state, verdict)])"""
    rows, hdr = [], None
    with open(path) as f:
        for ln in f:
            ln = ln.strip()
            m = HEADER_RE.match(ln)
            if m:
                hdr = {"name": m.group(1), "kernel": m.group(2),
                       "tcp_loose": int(m.group(3)), "be_liberal": int(m.group(4))}
            if not ln or ln.startswith("#"):
                continue
            idx, state, verdict = ln.split()
            rows.append((int(idx), state, verdict))
    return hdr, rows


def all_jobs():
    names = sorted(f[:-5] for f in os.listdir(SCEN_DIR) if f.endswith(".pcap"))
    jobs = list(names)
    for var, scen in VARIANT_SCENARIOS.items():
        jobs += [f"{s}@{var}" for s in scen if s in names]
    return jobs


def job_config(job):
    base, _, var = job.partition("@")
    cfg = dict(DEFAULT_SYSCTLS)
    if var:
        if var not in VARIANTS:
            raise ReplayError(f"unknown variant @{var} (known: {', '.join(VARIANTS)})")
        cfg.update(VARIANTS[var])
    return base, cfg


def preflight():
    if os.geteuid() != 0:
        raise Skip("must run as root (creates network namespaces)")
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool in ("ip", "nft", "conntrack"):
        if not shutil.which(tool):
            raise Skip(f"{tool} binary not found")
    if not os.path.exists("/proc/self/ns/net"):
        raise Skip("no network namespace support")
    if not hasattr(socket, "AF_PACKET") or not hasattr(socket, "AF_NETLINK"):
        raise Skip("no AF_PACKET/AF_NETLINK sockets")


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def main():
    ap = argparse.ArgumentParser(description="Replay conformance scenarios through Linux nf_conntrack.")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help="write expected/NAME.expect")
    mode.add_argument("--check", action="store_true", help="compare with expected/NAME.expect")
    mode.add_argument("--show", action="store_true", help="only print the kernel's answers")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every packet")
    ap.add_argument("--explain", action="store_true",
                    help="with -v: also print nf_conntrack's log message (why a packet was "
                         "flagged INVALID or ignored), via nfnetlink_log in the router namespace")
    ap.add_argument("names", nargs="*", help="scenario names, optionally NAME@VARIANT")
    args = ap.parse_args()
    verbose = args.verbose or args.explain

    try:
        preflight()
        jobs = args.names or all_jobs()
        loaded = []
        addrs = set()
        for job in jobs:
            base, cfg = job_config(job)
            path = os.path.join(SCEN_DIR, base + ".pcap")
            if not os.path.exists(path):
                raise ReplayError(f"no such scenario: {path}")
            frames = read_pcap(path)
            for fr in frames:
                p = Pkt(fr)
                for a in (p.sip, p.dip):
                    if not any(a in n for n in ALLOWED) or side_of(a) is None:
                        raise ReplayError(f"{base}: address {a} outside the allowed ranges")
                if side_of(p.sip) == side_of(p.dip):
                    raise ReplayError(f"{base}: packet {p.describe()} does not cross the router")
                addrs.update((p.sip, p.dip))
            loaded.append((job, base, cfg, frames))
    except Skip as e:
        print(f"SKIP: {e}", file=sys.stderr)
        return EXIT_SKIP
    except ReplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    topo = Topology()
    t0 = time.monotonic()
    failures, npkts, kernels = [], 0, set()
    try:
        topo.setup(addrs, explain=args.explain)
        rep = Replayer(topo)
        if args.record:
            os.makedirs(EXP_DIR, exist_ok=True)
        cur = None
        for job, base, cfg, frames in loaded:
            if cur != cfg:
                topo.set_conntrack_sysctls(cfg["tcp_loose"], cfg["be_liberal"])
                cur = cfg
            if verbose:
                print(f"{job}: (tcp_loose={cfg['tcp_loose']} be_liberal={cfg['be_liberal']})")
            res = rep.replay(job, frames, verbose)
            npkts += len(res)
            if args.record:
                with open(exp_path(job), "w") as f:
                    f.write(header(job, cfg))
                    for i, st, v in res:
                        f.write(f"{i} {st} {v}\n")
                print(f"recorded {job} ({len(res)} packets)")
            elif args.check:
                path = exp_path(job)
                if not os.path.exists(path):
                    failures.append(job)
                    print(f"FAIL {job}: no expectation file {os.path.relpath(path)}")
                    continue
                hdr, exp = read_expect(path)
                diffs = []
                if hdr is None:
                    diffs.append("  expectation file has no header line")
                elif (hdr["tcp_loose"], hdr["be_liberal"]) != (cfg["tcp_loose"], cfg["be_liberal"]):
                    diffs.append(f"  header says tcp_loose={hdr['tcp_loose']} be_liberal="
                                 f"{hdr['be_liberal']}, this run used {cfg}")
                elif hdr["kernel"] != os.uname().release:
                    kernels.add(hdr["kernel"])
                for k in range(max(len(exp), len(res))):
                    e = exp[k] if k < len(exp) else None
                    g = res[k] if k < len(res) else None
                    if e != g:
                        es = f"{e[1]} {e[2]}" if e else "(nothing)"
                        gs = f"{g[1]} {g[2]}" if g else "(nothing)"
                        idx = (e or g)[0]
                        diffs.append(f"  packet {idx}: expected {es}, kernel says {gs}")
                if diffs:
                    failures.append(job)
                    print(f"FAIL {job}")
                    print("\n".join(diffs))
                else:
                    print(f"ok   {job} ({len(res)} packets)")
            elif not verbose:
                print(f"{job}: " + " ".join(f"{st}/{v[0]}" for _, st, v in res))
    except Skip as e:
        print(f"SKIP: {e}", file=sys.stderr)
        return EXIT_SKIP
    except ReplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        topo.cleanup()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    dt = time.monotonic() - t0
    print(f"{len(loaded)} scenario runs, {npkts} packets, {dt:.1f}s, Linux {os.uname().release}")
    if kernels:
        print(f"note: expectations were recorded on Linux {', '.join(sorted(kernels))}")
    if failures:
        print(f"{len(failures)} mismatching: {' '.join(failures)}")
        return EXIT_MISMATCH
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
