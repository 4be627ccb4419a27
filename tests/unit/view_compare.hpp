#pragma once
// Comparing parsed views field by field (padding excluded), for the parser's
// unit tests and its fuzz target.
#include <cstddef>
#include <cstring>

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

}  // namespace ctlb_test
