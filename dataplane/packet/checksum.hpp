#pragma once
// Internet checksums (RFC 1071) in software: verification of IPv4 header and
// TCP checksums where the NIC did not check them, and incremental updates
// (RFC 1624) for address rewriting.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/packet/packet_view.hpp"

namespace ctlb::packet {

// One's complement sum of a byte range, folded to 32 bits (not yet to 16).
inline std::uint32_t ones_sum(const std::uint8_t* p, std::size_t len, std::uint32_t sum = 0) noexcept {
  while (len >= 2) {
    sum += static_cast<std::uint32_t>((p[0] << 8) | p[1]);
    p += 2;
    len -= 2;
  }
  if (len) sum += static_cast<std::uint32_t>(p[0] << 8);
  return sum;
}

// Two folds are enough for any 32-bit sum: the first leaves at most
// 0xffff + 0xffff = 0x1fffe, the second at most 0xffff.
inline std::uint16_t fold(std::uint32_t sum) noexcept {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

// One's complement sum of the IPv4 header, its checksum field included:
// 0xffff once folded if the checksum verifies.
inline std::uint32_t ipv4_header_sum(const std::uint8_t* frame, const PacketView& v) noexcept {
  return ones_sum(frame + v.l3_offset, static_cast<std::size_t>(v.l4_offset - v.l3_offset));
}

// One's complement sum of the TCP pseudo-header (addresses from `v`) and
// segment, its checksum field included: 0xffff once folded if the checksum
// verifies. `v` must come from parse_frame() returning Tcp on the same
// frame, unfragmented.
inline std::uint32_t tcp_sum(const std::uint8_t* frame, const PacketView& v) noexcept {
  const std::size_t addr_len = v.family == IpFamily::V4 ? 4 : 16;
  std::uint32_t sum = ones_sum(v.src, addr_len);
  sum = ones_sum(v.dst, addr_len, sum);
  sum += 6;  // protocol
  sum += v.l4_len & 0xffff;
  sum += v.l4_len >> 16;
  return ones_sum(frame + v.l4_offset, v.l4_len, sum);
}

// True if the IPv4 header checksum verifies.
inline bool ipv4_header_checksum_ok(const std::uint8_t* frame, const PacketView& v) noexcept {
  return fold(ipv4_header_sum(frame, v)) == 0xffff;
}

// True if the TCP checksum verifies (see tcp_sum()).
inline bool tcp_checksum_ok(const std::uint8_t* frame, const PacketView& v) noexcept {
  return fold(tcp_sum(frame, v)) == 0xffff;
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 16-bit field changing m -> m'.
inline std::uint16_t checksum_update16(std::uint16_t hc, std::uint16_t old_v, std::uint16_t new_v) noexcept {
  std::uint32_t sum = static_cast<std::uint16_t>(~hc);
  sum += static_cast<std::uint16_t>(~old_v);
  sum += new_v;
  return static_cast<std::uint16_t>(~fold(sum));
}

inline std::uint16_t checksum_update32(std::uint16_t hc, std::uint32_t old_v, std::uint32_t new_v) noexcept {
  hc = checksum_update16(hc, static_cast<std::uint16_t>(old_v >> 16), static_cast<std::uint16_t>(new_v >> 16));
  return checksum_update16(hc, static_cast<std::uint16_t>(old_v), static_cast<std::uint16_t>(new_v));
}

}  // namespace ctlb::packet
