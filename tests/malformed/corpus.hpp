#pragma once
// The malformed-packet corpus (issue 6, item 3): frames built byte by byte
// with tests/unit/frame_builder.hpp, each with the parse result it must get.
//
// Expectations do not come from the parser. Sweeps (every cut of every
// header, every value of a length field) take them from a model that knows
// where each header of a shape starts and ends, computed from what the
// shape asked the builder for; single cases name them by hand.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/packet/parse.hpp"
#include "tests/unit/frame_builder.hpp"

namespace ctlb_malformed {

using namespace ctlb_test;
using ctlb::packet::ParseResult;

inline constexpr long kUnchecked = -1;

struct Case {
  std::string name;
  Bytes frame;         // the bytes at hand (a first segment, a snaplen-cut capture)
  std::size_t wire;    // bytes on the wire, >= frame.size()
  ParseResult want;
  long payload = kUnchecked;  // want == Tcp: the TCP payload length
};

// A frame copied into a heap buffer of exactly its size (none for an empty
// one), so that ASan reports any read past its end.
class ExactCopy {
 public:
  explicit ExactCopy(const Bytes& f) : len_(f.size()), buf_(new std::uint8_t[f.size()]) {
    if (len_) std::memcpy(buf_.get(), f.data(), len_);
  }
  const std::uint8_t* data() const noexcept { return buf_.get(); }
  std::size_t size() const noexcept { return len_; }

 private:
  std::size_t len_;
  std::unique_ptr<std::uint8_t[]> buf_;
};

inline ParseResult parse_exact(const Case& c, ctlb::packet::PacketView& v) {
  const ExactCopy copy(c.frame);
  return ctlb::packet::parse_frame(copy.data(), copy.size(), c.wire, v);
}

// ---- shapes: good frames whose every header the sweeps cut ------------------

struct Shape {
  std::string name;
  std::vector<Tag> tags;
  bool v6 = false;
  Ipv4 ip4;
  Ipv6 ip6;
  Tcp tcp;
  std::size_t pad_to = 0;  // Ethernet padding

  Bytes build() const {
    return v6 ? ether(kEtherIpv6, ip6.build(tcp.build()), tags, pad_to)
              : ether(kEtherIpv4, ip4.build(tcp.build()), tags, pad_to);
  }
};

// Where a shape's headers are, from what it asked for.
struct Layout {
  std::size_t n_tags = 0;
  bool v6 = false;
  std::size_t l3 = 0;      // IP header
  std::size_t ip_hdr = 0;  // IPv4: IHL bytes; IPv6: 40
  std::vector<std::pair<std::size_t, std::size_t>> exts;  // IPv6 extension headers: (offset, length)
  std::size_t l4 = 0;      // TCP header
  std::size_t tcp_hdr = 0;
  std::size_t payload = 0;
  std::size_t ip_end = 0;  // end of the IP packet
  std::size_t size = 0;    // frame, with padding
};

inline Layout layout(const Shape& s) {
  Layout l;
  l.n_tags = s.tags.size();
  l.v6 = s.v6;
  l.l3 = 14 + 4 * l.n_tags;
  std::size_t off = l.l3;
  if (s.v6) {
    l.ip_hdr = 40;
    off += 40;
    for (const Ext& e : s.ip6.exts) {
      const std::size_t len = e.type == 44 ? 8 : (e.len8 + 1) * 8;
      l.exts.emplace_back(off, len);
      off += len;
    }
  } else {
    l.ip_hdr = static_cast<std::size_t>(s.ip4.ihl_words) * 4;
    off += l.ip_hdr;
  }
  l.l4 = off;
  l.tcp_hdr = 20 + (s.tcp.options.size() + 3) / 4 * 4;
  l.payload = s.tcp.payload_len;
  l.ip_end = l.l4 + l.tcp_hdr + l.payload;
  l.size = std::max(l.ip_end, s.pad_to);
  return l;
}

struct Expect {
  ParseResult result;
  long payload = kUnchecked;
};

// Ethernet and VLAN tags: the frame must hold each tag and the type after it.
inline std::optional<ParseResult> expect_l2(const Layout& l, std::size_t len) {
  if (len < 14) return ParseResult::EthTruncated;
  for (std::size_t i = 0; i < l.n_tags; ++i)
    if (len < 18 + 4 * i) return ParseResult::VlanTruncated;
  return std::nullopt;
}

// The IPv6 extension headers must be at hand (within the first `len` bytes).
inline bool exts_at_hand(const Layout& l, std::size_t len) {
  for (auto [at, ext_len] : l.exts)
    if (len < at + 8 || len < at + ext_len) return false;
  return true;
}

// The frame cut at `len` bytes, lengths unchanged: the IP length fields now
// point past the end (unless only padding was cut).
inline Expect expect_cut(const Layout& l, std::size_t len) {
  if (auto r = expect_l2(l, len)) return {*r};
  const std::size_t avail = len - l.l3;
  if (!l.v6) {
    if (avail < 20) return {ParseResult::Ipv4Truncated};
    if (avail < l.ip_hdr) return {ParseResult::Ipv4HeaderOverrun};
    if (len < l.ip_end) return {ParseResult::Ipv4TotalLenOverrun};
  } else {
    if (avail < 40) return {ParseResult::Ipv6Truncated};
    if (len < l.ip_end) return {ParseResult::Ipv6PayloadOverrun};
  }
  return {ParseResult::Tcp, static_cast<long>(l.payload)};
}

// The first `len` bytes at hand, the whole frame on the wire (a chained
// mbuf, a snaplen-limited capture): every header must be at hand.
inline Expect expect_at_hand(const Layout& l, std::size_t len) {
  if (auto r = expect_l2(l, len)) return {*r};
  const std::size_t avail = len - l.l3;
  if (!l.v6) {
    if (avail < 20) return {ParseResult::Ipv4Truncated};
    if (avail < l.ip_hdr) return {ParseResult::Ipv4HeaderOverrun};
  } else {
    if (avail < 40) return {ParseResult::Ipv6Truncated};
    if (!exts_at_hand(l, len)) return {ParseResult::Ipv6ExtTruncated};
  }
  if (len < l.l4 + l.tcp_hdr) return {ParseResult::TcpTruncated};
  return {ParseResult::Tcp, static_cast<long>(l.payload)};
}

// The frame cut at `len` (>= the end of the fixed IP header) with the IP
// length field rewritten to match: the IP layer is consistent, what follows
// it is short.
inline Expect expect_consistent_cut(const Layout& l, std::size_t len) {
  if (l.v6 && !exts_at_hand(l, len)) return {ParseResult::Ipv6ExtTruncated};
  const std::size_t tcp = len - l.l4;
  if (tcp < 20) return {ParseResult::TcpTruncated};
  if (tcp < l.tcp_hdr) return {ParseResult::TcpDataOffsetOverrun};
  return {ParseResult::Tcp, static_cast<long>(tcp - l.tcp_hdr)};
}

// ---- the shapes ---------------------------------------------------------------

// A SYN's options: MSS, NOP, window scale, SACK permitted, timestamps, NOP,
// NOP, two SACK blocks: 40 bytes, the most a TCP header holds. The pieces'
// (kind, offset, length) let the options sweep know what a cut leaves.
struct OptionPiece {
  std::uint8_t kind;
  std::size_t at;
  std::size_t len;
};

inline std::vector<OptionPiece> full_option_pieces() {
  return {{2, 0, 4}, {1, 4, 1}, {3, 5, 3}, {4, 8, 2}, {8, 10, 10}, {1, 20, 1}, {1, 21, 1}, {5, 22, 18}};
}

inline Bytes full_options() {
  Bytes o = opt_mss(1460);
  append(o, opt_nop());
  append(o, opt_wscale(7));
  append(o, opt_sack_perm());
  append(o, opt_timestamp(0x01020304, 0));
  append(o, opt_nop());
  append(o, opt_nop());
  append(o, opt_sack({{1000, 2000}, {3000, 4000}}));
  return o;
}

inline Tcp syn_with(Bytes options, std::size_t payload = 0) {
  Tcp t;
  t.sport = 40001;
  t.dport = 443;
  t.seq = 0x11223344;
  t.flags = 0x02;
  t.options = std::move(options);
  t.payload_len = payload;
  return t;
}

inline std::vector<Shape> shapes() {
  std::vector<Shape> out;
  {
    Shape s{"ipv4_tcp"};
    s.tcp.payload_len = 10;
    out.push_back(s);
  }
  {
    Shape s{"ipv4_padded_ack"};
    s.pad_to = 60;  // a bare ACK: 54 bytes, padded on the wire
    out.push_back(s);
  }
  {
    Shape s{"ipv4_max_options"};  // 40 bytes of IP options, 40 of TCP options
    s.ip4.ihl_words = 15;
    s.tcp = syn_with(full_options(), 3);
    out.push_back(s);
  }
  {
    Shape s{"dot1q_ipv4_options"};
    s.tags = {{0x8100, 100}};
    s.ip4.ihl_words = 6;
    s.tcp = syn_with(opt_mss(1400), 7);
    out.push_back(s);
  }
  {
    Shape s{"qinq_ipv4"};
    s.tags = {{0x88A8, 10}, {0x8100, 20}};
    s.tcp.payload_len = 1;
    s.pad_to = 68;
    out.push_back(s);
  }
  {
    Shape s{"qinq9100_ipv6"};
    s.tags = {{0x9100, 30}, {0x8100, 40}};
    s.v6 = true;
    s.tcp.payload_len = 5;
    out.push_back(s);
  }
  {
    Shape s{"ipv6_tcp_options"};
    s.v6 = true;
    s.tcp = syn_with(full_options(), 2);
    out.push_back(s);
  }
  {
    Shape s{"ipv6_hop_by_hop"};
    s.v6 = true;
    s.ip6.exts = {Ext{0, 0}};
    s.tcp.payload_len = 4;
    out.push_back(s);
  }
  {
    Shape s{"ipv6_routing"};
    s.v6 = true;
    s.ip6.exts = {Ext{43, 2}};
    s.tcp.payload_len = 4;
    out.push_back(s);
  }
  {
    Shape s{"ipv6_fragment_first"};  // offset 0, more fragments: the TCP header is here
    s.v6 = true;
    s.ip6.exts = {Ext{44, 0, 0x0001}};
    s.tcp.payload_len = 16;
    out.push_back(s);
  }
  {
    Shape s{"ipv6_destination_options"};
    s.v6 = true;
    s.ip6.exts = {Ext{60, 1}};
    s.tcp.payload_len = 4;
    out.push_back(s);
  }
  {
    Shape s{"dot1q_ipv6_ext_chain"};  // all four kinds, as RFC 8200 orders them
    s.tags = {{0x8100, 7}};
    s.v6 = true;
    s.ip6.exts = {Ext{0, 0}, Ext{60, 0}, Ext{43, 1}, Ext{44, 0, 0}, Ext{60, 2}};
    s.tcp = syn_with(opt_mss(1220), 6);
    out.push_back(s);
  }
  return out;
}

// ---- the corpus -----------------------------------------------------------------

inline void add(std::vector<Case>& out, std::string name, Bytes frame, ParseResult want, long payload = kUnchecked,
                std::size_t wire = 0) {
  const std::size_t w = std::max(wire, frame.size());
  out.push_back(Case{std::move(name), std::move(frame), w, want, payload});
}

inline Bytes cut(const Bytes& f, std::size_t len) {
  return Bytes(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(len));
}

// Every header of every shape truncated at every byte, three ways.
inline void add_truncations(std::vector<Case>& out) {
  for (const Shape& s : shapes()) {
    const Layout l = layout(s);
    const Bytes full = s.build();
    for (std::size_t len = 0; len < full.size(); ++len) {
      const Expect e = expect_cut(l, len);
      add(out, s.name + "/cut" + std::to_string(len), cut(full, len), e.result, e.payload);
      const Expect h = expect_at_hand(l, len);
      add(out, s.name + "/at_hand" + std::to_string(len), cut(full, len), h.result, h.payload, full.size());
    }
    add(out, s.name + "/whole", full, ParseResult::Tcp, static_cast<long>(l.payload));
    for (std::size_t len = l.l3 + l.ip_hdr; len <= l.ip_end; ++len) {
      Bytes f = cut(full, len);
      if (l.v6) set16(f, l.l3 + 4, static_cast<std::uint16_t>(len - l.l3 - 40));
      else set16(f, l.l3 + 2, static_cast<std::uint16_t>(len - l.l3));
      const Expect e = expect_consistent_cut(l, len);
      add(out, s.name + "/consistent_cut" + std::to_string(len), std::move(f), e.result, e.payload);
    }
  }
}

// Every value of the IPv4 IHL, the IPv4 total length, the IPv6 payload
// length and the TCP data offset.
inline void add_length_sweeps(std::vector<Case>& out) {
  // IHL 0..15 over a 20-byte header and a 20-byte TCP header (total 40); with
  // 24 bytes of padding every IHL fits in the frame, without it IHL > 10
  // runs past the frame.
  for (std::size_t pad : {0u, 24u}) {
    const Bytes base = ether(kEtherIpv4, Ipv4{}.build(Tcp{}.build()), {}, pad ? 14 + 40 + pad : 0);
    for (int ihl = 0; ihl < 16; ++ihl) {
      Bytes f = base;
      f[14] = static_cast<std::uint8_t>(0x40 | ihl);
      const std::size_t avail = f.size() - 14, hdr = static_cast<std::size_t>(ihl) * 4;
      ParseResult want;
      long payload = kUnchecked;
      if (ihl < 5) want = ParseResult::Ipv4BadIhl;
      else if (hdr > avail) want = ParseResult::Ipv4HeaderOverrun;
      else if (hdr > 40) want = ParseResult::Ipv4TotalLenTooSmall;
      else if (40 - hdr < 20) want = ParseResult::TcpTruncated;
      else want = ParseResult::Tcp, payload = 0;
      add(out, "ihl" + std::to_string(ihl) + (pad ? "/padded" : ""), std::move(f), want, payload);
    }
  }
  // Total length 0..70 over IHL 6 (24 bytes), TCP data offset 6 (24 bytes)
  // and 8 bytes of payload: 56 bytes of IP; with and without 10 bytes of
  // Ethernet padding (which a larger total length may claim).
  for (std::size_t pad : {0u, 10u}) {
    Ipv4 ip;
    ip.ihl_words = 6;
    Tcp t;
    t.options = opt_mss(1000);
    t.payload_len = 8;
    const Bytes base = ether(kEtherIpv4, ip.build(t.build()), {}, pad ? 14 + 56 + pad : 0);
    const std::size_t wire_ip = base.size() - 14;
    for (std::size_t total = 0; total <= 70; ++total) {
      Bytes f = base;
      set16(f, 16, static_cast<std::uint16_t>(total));
      ParseResult want;
      long payload = kUnchecked;
      if (total < 24) want = ParseResult::Ipv4TotalLenTooSmall;
      else if (total > wire_ip) want = ParseResult::Ipv4TotalLenOverrun;
      else if (total - 24 < 20) want = ParseResult::TcpTruncated;
      else if (total - 24 < 24) want = ParseResult::TcpDataOffsetOverrun;
      else want = ParseResult::Tcp, payload = static_cast<long>(total - 48);
      add(out, "ipv4_total_len" + std::to_string(total) + (pad ? "/padded" : ""), std::move(f), want, payload);
    }
  }
  // IPv6 payload length 0..42 over a hop-by-hop header (8), TCP with data
  // offset 6 (24) and 8 bytes of payload: 40 bytes.
  {
    Ipv6 ip;
    ip.exts = {Ext{0, 0}};
    Tcp t;
    t.options = opt_wscale(2);
    t.payload_len = 8;
    const Bytes base = ether(kEtherIpv6, ip.build(t.build()));
    for (std::size_t len = 0; len <= 42; ++len) {
      Bytes f = base;
      set16(f, 18, static_cast<std::uint16_t>(len));
      ParseResult want;
      long payload = kUnchecked;
      if (len > 40) want = ParseResult::Ipv6PayloadOverrun;
      else if (len < 8) want = ParseResult::Ipv6ExtTruncated;
      else if (len - 8 < 20) want = ParseResult::TcpTruncated;
      else if (len - 8 < 24) want = ParseResult::TcpDataOffsetOverrun;
      else want = ParseResult::Tcp, payload = static_cast<long>(len - 32);
      add(out, "ipv6_payload_len" + std::to_string(len), std::move(f), want, payload);
    }
  }
  // TCP data offset 0..15 over 40 bytes of TCP (8 of options, 12 of payload).
  for (int doff = 0; doff < 16; ++doff) {
    Tcp t;
    t.options = opt_mss(536);
    append(t.options, opt_wscale(1));
    t.payload_len = 12;
    t.data_offset_words = doff;
    ParseResult want;
    long payload = kUnchecked;
    if (doff < 5) want = ParseResult::TcpBadDataOffset;
    else if (doff * 4 > 40) want = ParseResult::TcpDataOffsetOverrun;
    else want = ParseResult::Tcp, payload = 40 - doff * 4;
    add(out, "tcp_data_offset" + std::to_string(doff), tcp4_frame(t), want, payload);
    add(out, "tcp6_data_offset" + std::to_string(doff), tcp6_frame(t), want, payload);
  }
}

// Frames named one by one.
inline void add_singles(std::vector<Case>& out) {
  const Bytes good4 = tcp4_frame(Tcp{});
  // Ethernet.
  add(out, "zero_length", Bytes{}, ParseResult::EthTruncated);
  add(out, "zero_length_on_the_wire_64", Bytes{}, ParseResult::EthTruncated, kUnchecked, 64);
  add(out, "ethertype_ipv4_only", cut(good4, 14), ParseResult::Ipv4Truncated);
  add(out, "ethertype_ipv6_only", ether(kEtherIpv6, {}), ParseResult::Ipv6Truncated);
  add(out, "ethertype_vlan_only", ether(0x8100, {}), ParseResult::VlanTruncated);
  add(out, "arp", arp_request(), ParseResult::NotIp);
  add(out, "lldp", ether(0x88CC, Bytes(46, 0)), ParseResult::NotIp);
  add(out, "ieee802_3_length_field", ether(0x002E, Bytes(46, 0)), ParseResult::NotIp);
  // VLAN tags.
  add(out, "three_tags", tcp4_frame(Tcp{}, Ipv4{}, {{0x88A8, 1}, {0x8100, 2}, {0x8100, 3}}), ParseResult::VlanTooDeep);
  add(out, "three_8100_tags", tcp4_frame(Tcp{}, Ipv4{}, {{0x8100, 1}, {0x8100, 2}, {0x8100, 3}}),
      ParseResult::VlanTooDeep);
  add(out, "three_9100_tags_no_payload", ether(0x9100, {}, {{0x9100, 1}, {0x9100, 2}}), ParseResult::VlanTooDeep);
  add(out, "four_tags", tcp4_frame(Tcp{}, Ipv4{}, {{0x88A8, 1}, {0x8100, 2}, {0x8100, 3}, {0x8100, 4}}),
      ParseResult::VlanTooDeep);
  add(out, "vlan_arp", ether(kEtherArp, Bytes(28, 0), {{0x8100, 5}}, 64), ParseResult::NotIp);
  // IPv4 header.
  for (int version : {0, 5, 6, 15}) {
    Ipv4 ip;
    ip.version = version;
    add(out, "ipv4_version" + std::to_string(version), tcp4_frame(Tcp{}, ip), ParseResult::Ipv4BadVersion);
  }
  add(out, "ipv6_packet_behind_ipv4_ethertype", ether(kEtherIpv4, Ipv6{}.build(Tcp{}.build())),
      ParseResult::Ipv4BadVersion);
  // IPv4 fragments: length checks come first; later fragments are not tracked.
  {
    Ipv4 ip;
    ip.frag_field = 0x2000 | 185;  // MF, offset 185 x 8
    add(out, "ipv4_later_fragment", ether(kEtherIpv4, ip.build(Bytes(64, 0x55))), ParseResult::IpFragment);
    ip.frag_field = 185;  // last fragment
    add(out, "ipv4_last_fragment", ether(kEtherIpv4, ip.build(Bytes(3, 0x55))), ParseResult::IpFragment);
    ip.total_len = 200;
    add(out, "ipv4_fragment_total_len_overrun", ether(kEtherIpv4, ip.build(Bytes(8, 0))),
        ParseResult::Ipv4TotalLenOverrun);
    Ipv4 first;
    first.frag_field = 0x2000;
    first.total_len = 20 + 8;  // RFC 1858's tiny fragment: 8 bytes of TCP header
    add(out, "ipv4_tiny_first_fragment", tcp4_frame(Tcp{}, first), ParseResult::TcpTruncated);
    first.total_len = 20 + 20;  // the TCP header is there, its options are not
    Tcp t;
    t.options = opt_mss(1460);
    add(out, "ipv4_first_fragment_options_cut", tcp4_frame(t, first), ParseResult::TcpDataOffsetOverrun);
  }
  // Other protocols.
  {
    Ipv4 ip;
    ip.proto = kProtoUdp;
    add(out, "ipv4_udp", ether(kEtherIpv4, ip.build(udp(53, 53, 12))), ParseResult::NonTcp);
    ip.proto = kProtoIcmp;
    add(out, "ipv4_icmp", ether(kEtherIpv4, ip.build(icmp_echo())), ParseResult::NonTcp);
    Ipv6 ip6;
    ip6.next = kProtoUdp;
    ip6.exts = {Ext{0, 0}, Ext{60, 0}};
    add(out, "ipv6_udp_after_exts", ether(kEtherIpv6, ip6.build(udp(1, 2, 3))), ParseResult::NonTcp);
    ip6.exts.clear();
    ip6.next = 59;  // no next header
    add(out, "ipv6_no_next_header", ether(kEtherIpv6, ip6.build({})), ParseResult::NonTcp);
  }
  // IPv6 header.
  for (int version : {0, 4, 15}) {
    Ipv6 ip;
    ip.version = version;
    add(out, "ipv6_version" + std::to_string(version), tcp6_frame(Tcp{}, ip), ParseResult::Ipv6BadVersion);
  }
  add(out, "ipv4_packet_behind_ipv6_ethertype", ether(kEtherIpv6, Ipv4{}.build(Tcp{}.build())),
      ParseResult::Ipv6BadVersion);
  add(out, "short_ipv4_packet_behind_ipv6_ethertype", ether(kEtherIpv6, Ipv4{}.build({})),
      ParseResult::Ipv6Truncated);
  {
    Ipv6 ip;
    ip.payload_len = 0xffff;
    add(out, "ipv6_payload_len_max", tcp6_frame(Tcp{}, ip), ParseResult::Ipv6PayloadOverrun);
  }
  // IPv6 extension-header chains: loops and limits.
  {
    Ipv6 ip;
    ip.exts.assign(8, Ext{60, 0});
    add(out, "ipv6_8_destination_options", tcp6_frame(Tcp{}, ip), ParseResult::Tcp, 0);
    ip.exts.assign(9, Ext{60, 0});  // each one's next header is the same type: a loop
    add(out, "ipv6_9_destination_options_loop", tcp6_frame(Tcp{}, ip), ParseResult::Ipv6ExtTooMany);
    ip.exts.assign(9, Ext{0, 0});
    add(out, "ipv6_9_hop_by_hop_loop", tcp6_frame(Tcp{}, ip), ParseResult::Ipv6ExtTooMany);
    ip.exts.assign(9, Ext{44, 0, 0});  // atomic fragment headers
    add(out, "ipv6_9_fragment_headers", tcp6_frame(Tcp{}, ip), ParseResult::Ipv6ExtTooMany);
    ip.exts = {Ext{0, 0},  Ext{60, 0}, Ext{43, 0}, Ext{60, 0},   Ext{43, 0},
               Ext{60, 0}, Ext{43, 0}, Ext{60, 0}, Ext{44, 0, 0}};
    add(out, "ipv6_9_mixed", tcp6_frame(Tcp{}, ip), ParseResult::Ipv6ExtTooMany);
    ip.exts.assign(1000, Ext{60, 0});  // 8000 bytes of the same header, in a jumbo frame
    add(out, "ipv6_1000_extension_headers", tcp6_frame(Tcp{}, ip), ParseResult::Ipv6ExtTooMany);
    ip.exts.assign(8, Ext{0, 0});
    ip.next = kProtoUdp;
    add(out, "ipv6_8_exts_udp", ether(kEtherIpv6, ip.build(udp(7, 7, 1))), ParseResult::NonTcp);
    ip.next = kProtoTcp;
    ip.exts = {Ext{0, 0}, Ext{44, 0, 8 << 3}};  // offset 8 x 8: a later fragment
    add(out, "ipv6_later_fragment_after_hop_by_hop", ether(kEtherIpv6, ip.build(Bytes(16, 0x55))),
        ParseResult::IpFragment);
  }
  // IPv6 extension headers overrunning the payload or the frame.
  {
    Ipv6 ip;
    ip.next = 0;  // hop-by-hop claiming 2048 bytes, 8 present
    add(out, "ipv6_hop_by_hop_len255", ether(kEtherIpv6, ip.build(Bytes{6, 255, 1, 4, 0, 0, 0, 0})),
        ParseResult::Ipv6ExtTruncated);
    ip.next = 43;  // routing header claiming 32 bytes, 24 present
    Bytes routing(24, 0);
    routing[0] = kProtoTcp;
    routing[1] = 3;
    add(out, "ipv6_routing_len3_in_24", ether(kEtherIpv6, ip.build(routing)), ParseResult::Ipv6ExtTruncated);
    ip.next = 44;  // fragment header, 7 of its 8 bytes
    add(out, "ipv6_fragment_header_7_bytes", ether(kEtherIpv6, ip.build(Bytes{6, 0, 0, 0, 0, 0, 1})),
        ParseResult::Ipv6ExtTruncated);
    ip.next = 60;
    add(out, "ipv6_destination_options_empty_payload", ether(kEtherIpv6, ip.build({})),
        ParseResult::Ipv6ExtTruncated);
    Ipv6 in_frame;
    in_frame.exts = {Ext{0, 2}};  // 24 bytes, payload length says 16 (inside the frame)
    in_frame.payload_len = 16;
    add(out, "ipv6_ext_past_payload_len", tcp6_frame(Tcp{}, in_frame), ParseResult::Ipv6ExtTruncated);
  }
  // TCP header.
  {
    Ipv4 ip;
    ip.total_len = 20 + 19;
    add(out, "tcp_19_bytes", tcp4_frame(Tcp{}, ip), ParseResult::TcpTruncated);
    Ipv6 ip6;
    ip6.payload_len = 0;
    add(out, "tcp6_0_bytes", tcp6_frame(Tcp{}, ip6), ParseResult::TcpTruncated);
  }
  // Jumbo frames (9000 bytes) and the largest IPv4 packet.
  {
    Tcp t;
    t.flags = 0x18;
    t.payload_len = 9000 - 54;
    add(out, "jumbo_ipv4_9000", tcp4_frame(t), ParseResult::Tcp, 8946);
    const Bytes j4 = tcp4_frame(t);
    add(out, "jumbo_ipv4_9000_first_2048_at_hand", cut(j4, 2048), ParseResult::Tcp, 8946, 9000);
    add(out, "jumbo_ipv4_9000_headers_at_hand", cut(j4, 54), ParseResult::Tcp, 8946, 9000);
    add(out, "jumbo_ipv4_9000_cut_at_8999", cut(j4, 8999), ParseResult::Ipv4TotalLenOverrun);
    add(out, "jumbo_ipv4_on_wire_8999", cut(j4, 2048), ParseResult::Ipv4TotalLenOverrun, kUnchecked, 8999);
    t.payload_len = 9000 - 18 - 20 - 20;
    add(out, "jumbo_dot1q_ipv4_9000", tcp4_frame(t, Ipv4{}, {{0x8100, 3}}), ParseResult::Tcp, 8942);
    Ipv6 ip6;
    ip6.exts = {Ext{0, 0}, Ext{60, 255}};  // 8 + 2048 bytes of extension headers
    t.payload_len = 9000 - 14 - 40 - 8 - 2048 - 20;
    const Bytes j6 = tcp6_frame(t, ip6);
    add(out, "jumbo_ipv6_9000_2056_ext_bytes", j6, ParseResult::Tcp, 6870);
    add(out, "jumbo_ipv6_exts_past_first_2048", cut(j6, 2048), ParseResult::Ipv6ExtTruncated, kUnchecked, 9000);
    add(out, "jumbo_ipv6_tcp_header_cut_at_hand", cut(j6, 2120), ParseResult::TcpTruncated, kUnchecked,
        9000);
    Tcp max;
    max.payload_len = 65535 - 40;
    add(out, "ipv4_total_len_65535", tcp4_frame(max), ParseResult::Tcp, 65495);
  }
  // Ethernet padding: not part of the IP packet, whatever its bytes.
  {
    Tcp t;
    t.payload_len = 2;
    Bytes f = tcp4_frame(t);
    f.resize(60, 0xff);
    add(out, "ipv4_padding_ff", f, ParseResult::Tcp, 2);
    Bytes g = tcp6_frame(t);
    g.resize(g.size() + 30, 0xee);
    add(out, "ipv6_trailing_bytes", g, ParseResult::Tcp, 2);
    add(out, "qinq_ipv4_padded_64", tcp4_frame(Tcp{}, Ipv4{}, {{0x88A8, 1}, {0x8100, 2}}, 64), ParseResult::Tcp, 0);
  }
}

// TCP options: malformed ones stop option parsing (like Linux), the segment
// stays a TCP segment. What each case must leave in PacketView::options.
struct OptionCase {
  std::string name;
  Bytes options;  // padded with EOL to the data offset
  bool malformed;
  long mss = kUnchecked;     // kUnchecked: no MSS
  long wscale = kUnchecked;  // kUnchecked: no window scale
  bool sack_permitted = false;
  int sack_blocks = 0;
};

inline std::vector<OptionCase> option_cases() {
  std::vector<OptionCase> out;
  auto cat = [](std::initializer_list<Bytes> parts) {
    Bytes b;
    for (const Bytes& p : parts) append(b, p);
    return b;
  };
  out.push_back({"length0_after_mss", cat({opt_mss(1400), Bytes{8, 0, 0, 0}, opt_wscale(5)}), true, 1400});
  out.push_back({"length0_first", cat({Bytes{2, 0}, opt_mss(1400)}), true});
  out.push_back({"length1", cat({Bytes{4, 1}, opt_sack_perm()}), true});
  out.push_back({"length1_nop_kind", cat({opt_wscale(3), Bytes{99, 1}}), true, kUnchecked, 3});
  out.push_back({"wscale_past_header", Bytes{1, 1, 3, 9}, true});
  out.push_back({"length255", cat({opt_sack_perm(), Bytes{8, 255}}), true, kUnchecked, kUnchecked, true});
  out.push_back({"kind_without_length", Bytes{1, 1, 1, 2}, true});
  out.push_back({"kind_without_length_40", cat({Bytes(39, 1), Bytes{3}}), true});
  out.push_back({"timestamp_past_header", cat({opt_mss(9000), Bytes{8, 10, 0, 0}}), true, 9000});
  out.push_back({"mss_length3", Bytes{2, 3, 5, 0}, false});
  out.push_back({"mss_length5", Bytes{2, 5, 5, 0xb4, 0}, false});
  out.push_back({"mss_length2", cat({Bytes{2, 2}, opt_wscale(4)}), false, kUnchecked, 4});
  out.push_back({"wscale_length2", cat({Bytes{3, 2}, opt_mss(512)}), false, 512});
  out.push_back({"wscale_length4", cat({Bytes{3, 4, 7, 7}, opt_sack_perm()}), false, kUnchecked, kUnchecked, true});
  out.push_back({"wscale_15_as_sent", opt_wscale(15), false, kUnchecked, 15});
  out.push_back({"sack_perm_length3", cat({Bytes{4, 3, 0}, opt_mss(1300)}), false, 1300});
  out.push_back({"sack_length9", cat({Bytes{5, 9}, Bytes(7, 0)}), false});
  out.push_back({"sack_length11", cat({Bytes{5, 11}, Bytes(9, 0), opt_wscale(2)}), false, kUnchecked, 2});
  out.push_back({"sack_length2_no_blocks", cat({Bytes{5, 2}, opt_sack_perm()}), false, kUnchecked, kUnchecked, true});
  out.push_back({"sack_4_blocks", cat({Bytes{1, 1}, opt_sack({{1, 2}, {3, 4}, {5, 6}, {7, 8}})}), false,
                 kUnchecked, kUnchecked, false, 4});
  out.push_back({"sack_5_blocks_overrun", cat({Bytes{5, 42}, Bytes(38, 0)}), true});
  out.push_back({"unknown_kind_skipped", cat({Bytes{254, 4, 0xf9, 0x89}, opt_mss(1200)}), false, 1200});
  out.push_back({"eol_then_garbage", cat({opt_eol(), Bytes{3, 0, 0}}), false});
  out.push_back({"forty_nops", Bytes(40, 1), false});
  out.push_back({"all_of_them", full_options(), false, 1460, 7, true, 2});
  return out;
}

inline std::vector<Case> corpus() {
  std::vector<Case> out;
  add_truncations(out);
  add_length_sweeps(out);
  add_singles(out);
  return out;
}

}  // namespace ctlb_malformed
