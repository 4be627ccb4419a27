#pragma once
// Comparing parsed views field by field (padding excluded), for the parser's
// unit tests and its fuzz target.
#include <cstddef>
#include <cstring>

#include "dataplane/common/bytes.hpp"
#include "dataplane/packet/packet_view.hpp"
#include "dataplane/packet/parse_result.hpp"

namespace ctlb_test {

inline bool same_view(const ctlb::packet::PacketView& a, const ctlb::packet::PacketView& b) {
  static_assert(sizeof(ctlb::packet::PacketView) == 96, "a field was added: compare it here");
  return a.ether_type == b.ether_type && a.vlan_count == b.vlan_count &&
         std::memcmp(a.vlan_tci, b.vlan_tci, sizeof a.vlan_tci) == 0 && a.family == b.family &&
         a.fragment == b.fragment && a.l4_proto == b.l4_proto && a.ttl == b.ttl && a.l3_offset == b.l3_offset &&
         a.l4_offset == b.l4_offset && a.l4_len == b.l4_len && std::memcmp(a.src, b.src, 16) == 0 &&
         std::memcmp(a.dst, b.dst, 16) == 0 && a.sport == b.sport && a.dport == b.dport && a.seq == b.seq &&
         a.ack == b.ack && a.window == b.window && a.flags == b.flags && a.header_len == b.header_len &&
         a.payload_len == b.payload_len && a.options.mss == b.options.mss &&
         a.options.wscale == b.options.wscale && a.options.has_mss == b.options.has_mss &&
         a.options.has_wscale == b.options.has_wscale && a.options.sack_permitted == b.options.sack_permitted &&
         a.options.malformed == b.options.malformed && a.options.sack_blocks == b.options.sack_blocks &&
         std::memcmp(a.options.sack_right, b.options.sack_right, sizeof a.options.sack_right) == 0;
}

// The dataplane parses into uninitialised views (packet_view.hpp): what a
// result makes meaningful must be the same whatever the view held before.
// Tcp: every field but an IPv4 address's last 12 bytes and VLAN IDs past
// vlan_count; NotIp: ether_type; any other result: nothing.
inline bool same_meaning(const ctlb::packet::PacketView& a, const ctlb::packet::PacketView& b,
                         ctlb::packet::ParseResult r) {
  using ctlb::packet::ParseResult;
  if (r == ParseResult::NotIp) return a.ether_type == b.ether_type;
  if (r != ParseResult::Tcp) return true;
  const std::size_t alen = a.family == ctlb::packet::IpFamily::V4 ? 4 : 16;
  bool same = a.vlan_count == b.vlan_count && a.vlan_count <= 2;
  for (int i = 0; same && i < a.vlan_count; ++i) same = a.vlan_tci[i] == b.vlan_tci[i];
  ctlb::packet::PacketView x = a, y = b;  // the rest compared whole, the don't-cares equalised
  std::memcpy(x.vlan_tci, y.vlan_tci, sizeof x.vlan_tci);
  std::memcpy(x.src + alen, y.src + alen, 16 - alen);
  std::memcpy(x.dst + alen, y.dst + alen, 16 - alen);
  return same && same_view(x, y);
}

// What parse_ack_segment() must accept, from what parse_frame() made of the
// frame: an untagged IPv4 TCP segment without IP options or fragmentation,
// flags ACK (PSH, ECE, CWR allowed), TCP options none or NOP, NOP,
// timestamps (a 32-byte header starting 01 01 08 0a).
inline bool is_ack_segment(const std::uint8_t* frame, ctlb::packet::ParseResult r,
                           const ctlb::packet::PacketView& v) {
  namespace tf = ctlb::packet::tcpflag;
  if (r != ctlb::packet::ParseResult::Tcp || v.vlan_count != 0 || v.family != ctlb::packet::IpFamily::V4 ||
      v.l4_offset != 14 + 20 || v.fragment != ctlb::packet::Fragment::None)
    return false;
  if ((v.flags & ~(tf::kPsh | tf::kEce | tf::kCwr)) != tf::kAck) return false;
  return v.header_len == 20 || (v.header_len == 32 && ctlb::load_be32(frame + v.l4_offset + 20) == 0x0101080au);
}

// An AckSegment says what the view of the same frame says, and the view has
// no option the tracker would act on.
inline bool same_segment(const ctlb::packet::AckSegment& s, const ctlb::packet::PacketView& v) {
  static_assert(sizeof(ctlb::packet::AckSegment) == 28, "a field was added: compare it here");
  return s.src == ctlb::load_be32(v.src) && s.dst == ctlb::load_be32(v.dst) && s.sport == v.sport &&
         s.dport == v.dport && s.seq == v.seq && s.ack == v.ack && s.payload_len == v.payload_len &&
         s.window == v.window && s.flags == v.flags && !v.options.has_mss && !v.options.has_wscale &&
         !v.options.sack_permitted && !v.options.malformed && v.options.sack_blocks == 0;
}

}  // namespace ctlb_test
