#pragma once
// NAT rewriting of a parsed, unfragmented TCP packet in place: addresses and
// ports with incremental checksum updates (RFC 1624), TTL / hop limit, and the
// Ethernet addresses. No loop over the payload: a rewrite touches the changed
// fields and the two checksum fields only.
//
// The updates are exact: for a packet whose checksums verified, the result is
// bit for bit what a full recomputation gives (never 0xffff, the one's
// complement "negative zero" that a full computation cannot produce here). A
// checksum that was wrong stays wrong by the same amount, so a receiver still
// drops the packet. The one value not restored by the inverse rewrite is a
// stored 0xffff: it reads back as 0x0000, the same one's complement number.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/common/bytes.hpp"
#include "dataplane/packet/checksum.hpp"
#include "dataplane/packet/packet_view.hpp"

namespace ctlb::lb {

namespace detail {

inline constexpr std::size_t kIpv4Ttl = 8;
inline constexpr std::size_t kIpv4Checksum = 10;
inline constexpr std::size_t kIpv4Src = 12;
inline constexpr std::size_t kIpv4Dst = 16;
inline constexpr std::size_t kIpv6HopLimit = 7;
inline constexpr std::size_t kIpv6Src = 8;
inline constexpr std::size_t kIpv6Dst = 24;
inline constexpr std::size_t kTcpSport = 0;
inline constexpr std::size_t kTcpDport = 2;
inline constexpr std::size_t kTcpChecksum = 16;

// The sums below are over words as they lie in memory (load_raw*), not
// converted from network byte order: a one's complement sum comes out the
// same in either byte order, byte-swapped (RFC 1071 section 2(B)), and the
// checksum field is read and written the same way, so no swap is needed.

// Sum of ~m + m' over `words` 32-bit words changing from old_bytes to
// new_bytes. A 32-bit one's complement word is two 16-bit ones (2^16 = 1 in
// one's complement), so the sum folds to the 16-bit one later.
inline std::uint64_t change_sum(const std::uint8_t* old_bytes, const std::uint8_t* new_bytes, int words) noexcept {
  std::uint64_t sum = 0;
  for (int i = 0; i < words; ++i) {
    sum += static_cast<std::uint32_t>(~load_raw32(old_bytes + 4 * i));
    sum += load_raw32(new_bytes + 4 * i);
  }
  return sum;
}

inline std::uint64_t change_sum16(std::uint16_t old_v, std::uint16_t new_v) noexcept {
  return static_cast<std::uint16_t>(~old_v) + static_cast<std::uint64_t>(new_v);
}

// RFC 1624 eqn. 3 over a sum of changes: HC' = ~(~HC + sum(~m) + sum(m')).
// The sum is zero only when every term is (HC = 0xffff, m = 0xffff, m' = 0);
// it then stands for one's complement zero, whose folded form is 0xffff, so
// the result is 0x0000 as a full recomputation would give, not 0xffff.
inline std::uint16_t apply_change(std::uint16_t hc, std::uint64_t changes) noexcept {
  std::uint64_t sum = static_cast<std::uint16_t>(~hc) + changes;
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  const std::uint16_t folded = packet::fold(static_cast<std::uint32_t>(sum));
  return folded ? static_cast<std::uint16_t>(~folded) : std::uint16_t{0};
}

// Decrements the IPv4 TTL of the header at `ip` (the caller checked it is
// above 1); returns the change for the header checksum (in memory order).
inline std::uint64_t decrement_ipv4_ttl(std::uint8_t* ip) noexcept {
  // TTL is the first byte of the 16-bit word it shares with the protocol: in
  // memory order on this little-endian host (bytes.hpp) the word m is
  // TTL + 256 x protocol, so m' = m - 1 (no borrow: TTL > 1) and the change
  // ~m + m' is always 0xffff - m + m - 1.
  --ip[kIpv4Ttl];
  return 0xfffe;
}

// A checksum field updated by a sum of changes (in memory order).
inline void update_checksum(std::uint8_t* field, std::uint64_t changes) noexcept {
  store_raw16(field, apply_change(load_raw16(field), changes));
}

// A sum of changes folded to 16 bits once, ahead of time: the same one's
// complement number (the same residue mod 0xffff), never 0x0000 (a zero sum
// becomes 0xffff, the same number), so that update_checksum_folded() gives
// exactly what apply_change() gives with the whole sum.
inline std::uint16_t fold_change(std::uint64_t changes) noexcept {
  changes = (changes & 0xffffffffu) + (changes >> 32);
  changes = (changes & 0xffffffffu) + (changes >> 32);
  const std::uint16_t folded = packet::fold(static_cast<std::uint32_t>(changes));
  return folded ? folded : std::uint16_t{0xffff};
}

// apply_change() of a change from fold_change(): ~HC + C is 1..0x1fffe, so
// one fold leaves 1..0xffff, the one's complement number apply_change()
// folds to (its zero case, HC = 0xffff with no change, is ~HC + 0xffff =
// 0xffff here, and gives 0x0000 as there).
inline void update_checksum_folded(std::uint8_t* field, std::uint16_t change) noexcept {
  const std::uint32_t sum = static_cast<std::uint16_t>(~load_raw16(field)) + static_cast<std::uint32_t>(change);
  store_raw16(field, static_cast<std::uint16_t>(~((sum & 0xffff) + (sum >> 16))));
}

// kTtl: also decrements the TTL / hop limit (the caller checked v.ttl > 1),
// in the same IPv4 header checksum update as the address.
template <bool kTtl>
inline void rewrite_endpoint(std::uint8_t* frame, packet::IpFamily family, std::size_t l3_offset,
                             std::size_t l4_offset, const std::uint8_t* addr, std::uint16_t port,
                             std::size_t v4_addr_at, std::size_t v6_addr_at, std::size_t port_at) noexcept {
  std::uint8_t* ip = frame + l3_offset;
  std::uint8_t* tcp = frame + l4_offset;
  std::uint64_t tcp_changes;
  if (family == packet::IpFamily::V4) {
    std::uint8_t* field = ip + v4_addr_at;
    tcp_changes = change_sum(field, addr, 1);
    std::uint64_t ip_changes = tcp_changes;
    if constexpr (kTtl) ip_changes += decrement_ipv4_ttl(ip);
    update_checksum(ip + kIpv4Checksum, ip_changes);
    std::memcpy(field, addr, 4);
  } else if (family == packet::IpFamily::V6) {
    std::uint8_t* field = ip + v6_addr_at;
    tcp_changes = change_sum(field, addr, 4);
    std::memcpy(field, addr, 16);
    if constexpr (kTtl) --ip[kIpv6HopLimit];
  } else {
    return;
  }
  std::uint8_t new_port[2];
  store_be16(new_port, port);
  tcp_changes += change_sum16(load_raw16(tcp + port_at), load_raw16(new_port));
  update_checksum(tcp + kTcpChecksum, tcp_changes);
  std::memcpy(tcp + port_at, new_port, 2);
}

}  // namespace detail

// Rewrites the IP destination address (4 or 16 bytes after v.family) and the
// TCP destination port of the frame `v` was parsed from (parse_frame returned
// Tcp, not a fragment). `addr` must not point into the frame. `v` is not
// updated: its dst/dport now describe the frame as it was.
inline void rewrite_dst(std::uint8_t* frame, const packet::PacketView& v, const std::uint8_t* addr,
                        std::uint16_t port) noexcept {
  detail::rewrite_endpoint<false>(frame, v.family, v.l3_offset, v.l4_offset, addr, port, detail::kIpv4Dst,
                                  detail::kIpv6Dst, detail::kTcpDport);
}

// The same for the source address and port.
inline void rewrite_src(std::uint8_t* frame, const packet::PacketView& v, const std::uint8_t* addr,
                        std::uint16_t port) noexcept {
  detail::rewrite_endpoint<false>(frame, v.family, v.l3_offset, v.l4_offset, addr, port, detail::kIpv4Src,
                                  detail::kIpv6Src, detail::kTcpSport);
}

// Whether the TTL / hop limit the packet came with lets it be forwarded
// (decrement_ttl() would succeed).
inline bool ttl_allows_forwarding(const packet::PacketView& v) noexcept { return v.ttl > 1; }

// rewrite_dst() / rewrite_src() and decrement_ttl() in one: the frame ends
// as after the two calls, with one IPv4 header checksum update instead of
// two. Only for a packet that ttl_allows_forwarding().
inline void rewrite_dst_and_ttl(std::uint8_t* frame, const packet::PacketView& v, const std::uint8_t* addr,
                                std::uint16_t port) noexcept {
  detail::rewrite_endpoint<true>(frame, v.family, v.l3_offset, v.l4_offset, addr, port, detail::kIpv4Dst,
                                 detail::kIpv6Dst, detail::kTcpDport);
}

inline void rewrite_src_and_ttl(std::uint8_t* frame, const packet::PacketView& v, const std::uint8_t* addr,
                                std::uint16_t port) noexcept {
  detail::rewrite_endpoint<true>(frame, v.family, v.l3_offset, v.l4_offset, addr, port, detail::kIpv4Src,
                                 detail::kIpv6Src, detail::kTcpSport);
}

// The same for a frame parse_ack_segment() accepted (untagged IPv4 without
// options: the IP header at 14, TCP at 34), which needs no PacketView. The
// AckSegment's fields are not read (mode lb changes them).
inline bool ttl_allows_forwarding(const std::uint8_t* frame, const packet::AckSegment&) noexcept {
  return frame[14 + detail::kIpv4Ttl] > 1;
}
inline void rewrite_dst_and_ttl(std::uint8_t* frame, const packet::AckSegment&, const std::uint8_t* addr,
                                std::uint16_t port) noexcept {
  detail::rewrite_endpoint<true>(frame, packet::IpFamily::V4, 14, 34, addr, port, detail::kIpv4Dst, detail::kIpv6Dst,
                                 detail::kTcpDport);
}
inline void rewrite_src_and_ttl(std::uint8_t* frame, const packet::AckSegment&, const std::uint8_t* addr,
                                std::uint16_t port) noexcept {
  detail::rewrite_endpoint<true>(frame, packet::IpFamily::V4, 14, 34, addr, port, detail::kIpv4Src, detail::kIpv6Src,
                                 detail::kTcpSport);
}

// The checksum changes of one IPv4 NAT rewrite, known ahead of the packet:
// address and port A to B (A: what the frame holds, which classification
// checked), TTL decremented. Computed once per backend (lb::BackendSlot)
// for both directions, so that the common case's rewrite loads and sums
// nothing but the two checksum fields.
struct NatChange4 {
  std::uint16_t ip;   // IPv4 header checksum: address and TTL (folded, memory order)
  std::uint16_t tcp;  // TCP checksum: address and port
};

// A: `from_addr`/`from_port`, B: `to_addr`/`to_port` (4-byte addresses,
// host-order ports).
inline NatChange4 nat_change4(const std::uint8_t* from_addr, std::uint16_t from_port, const std::uint8_t* to_addr,
                              std::uint16_t to_port) noexcept {
  std::uint8_t from_p[2], to_p[2];
  store_be16(from_p, from_port);
  store_be16(to_p, to_port);
  const std::uint64_t addr = detail::change_sum(from_addr, to_addr, 1);
  // The TTL's change, as decrement_ipv4_ttl() returns it.
  return {detail::fold_change(addr + 0xfffe),
          detail::fold_change(addr + detail::change_sum16(load_raw16(from_p), load_raw16(to_p)))};
}

namespace detail {

// The rewrite below, of the address at IP offset `addr_at` and the port at
// TCP offset `port_at`.
inline void rewrite_endpoint4(std::uint8_t* frame, const std::uint8_t* addr, std::uint16_t port, NatChange4 c,
                              std::size_t addr_at, std::size_t port_at) noexcept {
  std::uint8_t* ip = frame + 14;
  std::uint8_t* tcp = frame + 34;
  --ip[kIpv4Ttl];
  update_checksum_folded(ip + kIpv4Checksum, c.ip);
  std::memcpy(ip + addr_at, addr, 4);
  update_checksum_folded(tcp + kTcpChecksum, c.tcp);
  store_be16(tcp + port_at, port);
}

}  // namespace detail

// rewrite_dst_and_ttl() / rewrite_src_and_ttl() of a frame
// parse_ack_segment() accepted whose destination (source) is A of `c`:
// writes B and applies c. Bit for bit what the forms above give for the
// same frame (tests/unit/test_nat.cpp).
inline void rewrite_dst_and_ttl(std::uint8_t* frame, const packet::AckSegment&, const std::uint8_t* addr,
                                std::uint16_t port, NatChange4 c) noexcept {
  detail::rewrite_endpoint4(frame, addr, port, c, detail::kIpv4Dst, detail::kTcpDport);
}
inline void rewrite_src_and_ttl(std::uint8_t* frame, const packet::AckSegment&, const std::uint8_t* addr,
                                std::uint16_t port, NatChange4 c) noexcept {
  detail::rewrite_endpoint4(frame, addr, port, c, detail::kIpv4Src, detail::kTcpSport);
}

// Decrements the IPv4 TTL (updating the header checksum) or the IPv6 hop
// limit. Returns false, leaving the frame as it was, when the TTL is 0 or 1:
// the packet must not be forwarded.
inline bool decrement_ttl(std::uint8_t* frame, const packet::PacketView& v) noexcept {
  std::uint8_t* ip = frame + v.l3_offset;
  if (v.family == packet::IpFamily::V4) {
    if (ip[detail::kIpv4Ttl] <= 1) return false;
    detail::update_checksum(ip + detail::kIpv4Checksum, detail::decrement_ipv4_ttl(ip));
    return true;
  }
  if (v.family == packet::IpFamily::V6) {
    if (ip[detail::kIpv6HopLimit] <= 1) return false;
    --ip[detail::kIpv6HopLimit];
    return true;
  }
  return false;
}

// Sets the Ethernet destination and source addresses (offset 0); VLAN tags
// and everything after them stay.
inline void set_macs(std::uint8_t* frame, const std::uint8_t* dst, const std::uint8_t* src) noexcept {
  std::memcpy(frame, dst, 6);
  std::memcpy(frame + 6, src, 6);
}

}  // namespace ctlb::lb
