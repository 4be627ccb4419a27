#pragma once
// ARP for IPv4 over Ethernet (RFC 826): parsing, answering a request in place
// and building requests, with 0, 1 or 2 VLAN tags before the ARP ethertype
// (the tag types the frame parser accepts). Pure code over bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "config/config.hpp"
#include "dataplane/common/bytes.hpp"
#include "dataplane/packet/parse.hpp"

namespace ctlb::lb::arp {

inline constexpr std::uint16_t kEtherArp = 0x0806;
inline constexpr std::uint16_t kHtypeEthernet = 1;
inline constexpr std::uint16_t kPtypeIpv4 = 0x0800;
inline constexpr std::uint16_t kOpRequest = 1;
inline constexpr std::uint16_t kOpReply = 2;
inline constexpr std::size_t kArpLen = 28;       // Ethernet/IPv4 ARP body
inline constexpr std::size_t kMinFrameLen = 60;  // Ethernet minimum without FCS
inline constexpr int kMaxVlanTags = 2;

// Offsets inside the ARP body.
namespace off {
inline constexpr std::size_t kHtype = 0;
inline constexpr std::size_t kPtype = 2;
inline constexpr std::size_t kHlen = 4;
inline constexpr std::size_t kPlen = 5;
inline constexpr std::size_t kOp = 6;
inline constexpr std::size_t kSha = 8;
inline constexpr std::size_t kSpa = 14;
inline constexpr std::size_t kTha = 18;
inline constexpr std::size_t kTpa = 24;
}  // namespace off

struct Packet {
  std::uint16_t op;
  config::Mac sha;
  std::uint8_t spa[4];
  config::Mac tha;
  std::uint8_t tpa[4];
  std::uint16_t arp_offset;  // of the ARP body in the frame
};

enum class Parse : std::uint8_t {
  Ok,
  NotArp,       // another ethertype (or more than two VLAN tags)
  Truncated,    // the frame ends before the ethertype or the ARP body does
  Unsupported,  // not Ethernet/IPv4 (htype, ptype, hlen, plen)
  BadOp,        // neither request nor reply
};

// Checks in this order: ethertype, the 8 fixed bytes (htype, ptype, lengths),
// the whole body, the operation.
inline Parse parse(const std::uint8_t* frame, std::size_t len, Packet& out) noexcept {
  std::size_t type_at = 12;
  for (int tags = 0;; ++tags) {
    if (type_at + 2 > len) return Parse::Truncated;
    const std::uint16_t type = load_be16(frame + type_at);
    if (type == kEtherArp) break;
    if (tags == kMaxVlanTags || !packet::detail::is_vlan_ethertype(type)) return Parse::NotArp;
    type_at += 4;
  }
  const std::size_t at = type_at + 2;
  if (at + 8 > len) return Parse::Truncated;
  const std::uint8_t* a = frame + at;
  if (load_be16(a + off::kHtype) != kHtypeEthernet || load_be16(a + off::kPtype) != kPtypeIpv4 ||
      a[off::kHlen] != 6 || a[off::kPlen] != 4)
    return Parse::Unsupported;
  if (at + kArpLen > len) return Parse::Truncated;
  const std::uint16_t op = load_be16(a + off::kOp);
  if (op != kOpRequest && op != kOpReply) return Parse::BadOp;
  out.op = op;
  std::memcpy(out.sha.data(), a + off::kSha, 6);
  std::memcpy(out.spa, a + off::kSpa, 4);
  std::memcpy(out.tha.data(), a + off::kTha, 6);
  std::memcpy(out.tpa, a + off::kTpa, 4);
  out.arp_offset = static_cast<std::uint16_t>(at);
  return Parse::Ok;
}

// Turns the frame holding `request` (parsed from it, asking for an address
// of ours) into the reply, in place: Ethernet to the requester's hardware
// address from our_mac, VLAN tags kept, op 2, sender (our_mac, the address
// asked for), target (the requester). The frame's length and padding stay.
inline void make_reply_in_place(std::uint8_t* frame, const Packet& request, const config::Mac& our_mac) noexcept {
  std::memcpy(frame, request.sha.data(), 6);
  std::memcpy(frame + 6, our_mac.data(), 6);
  std::uint8_t* a = frame + request.arp_offset;
  store_be16(a + off::kOp, kOpReply);
  std::memcpy(a + off::kSha, our_mac.data(), 6);
  std::memcpy(a + off::kSpa, request.tpa, 4);
  std::memcpy(a + off::kTha, request.sha.data(), 6);
  std::memcpy(a + off::kTpa, request.spa, 4);
}

// A broadcast request "who has target_ip, tell src_ip" from src_mac, in one
// 802.1Q tag when vlan_tci is not 0, zero-padded to 60 bytes. Returns the
// frame length, or 0 if cap is below it.
inline std::size_t build_request(std::uint8_t* buf, std::size_t cap, const config::Mac& src_mac,
                                 const std::uint8_t src_ip[4], const std::uint8_t target_ip[4],
                                 std::uint16_t vlan_tci) noexcept {
  if (cap < kMinFrameLen) return 0;
  std::memset(buf, 0, kMinFrameLen);
  std::memset(buf, 0xff, 6);
  std::memcpy(buf + 6, src_mac.data(), 6);
  std::size_t at = 12;
  if (vlan_tci != 0) {
    store_be16(buf + at, packet::detail::kEtherVlan);
    store_be16(buf + at + 2, vlan_tci);
    at += 4;
  }
  store_be16(buf + at, kEtherArp);
  std::uint8_t* a = buf + at + 2;
  store_be16(a + off::kHtype, kHtypeEthernet);
  store_be16(a + off::kPtype, kPtypeIpv4);
  a[off::kHlen] = 6;
  a[off::kPlen] = 4;
  store_be16(a + off::kOp, kOpRequest);
  std::memcpy(a + off::kSha, src_mac.data(), 6);
  std::memcpy(a + off::kSpa, src_ip, 4);
  // Target hardware address: zeros, as Linux sends it.
  std::memcpy(a + off::kTpa, target_ip, 4);
  return kMinFrameLen;
}

// A gratuitous ARP (a request for our own address) announcing ip at mac.
inline std::size_t build_gratuitous(std::uint8_t* buf, std::size_t cap, const config::Mac& mac,
                                    const std::uint8_t ip[4], std::uint16_t vlan_tci) noexcept {
  return build_request(buf, cap, mac, ip, ip, vlan_tci);
}

}  // namespace ctlb::lb::arp
