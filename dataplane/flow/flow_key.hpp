#pragma once
// The canonical flow key: the lower (address, port) endpoint first, so both
// directions of a connection give the same key and the same CRC32C hash.
// The direction of one packet is kept beside the key, not in it.
#include <cstdint>
#include <cstring>

#include "dataplane/common/bytes.hpp"
#include "dataplane/flow/crc32c.hpp"
#include "dataplane/packet/packet_view.hpp"

namespace ctlb::flow {

inline constexpr std::uint32_t kHashSeed = 0x9e3779b9u;

// Addresses are kept as host-order words so that comparing and printing them
// needs no further conversion.
struct KeyV4 {
  std::uint32_t addr[2];  // [0] = lower endpoint
  std::uint16_t port[2];

  // Bytewise: no padding (asserted below); two loads a side, not four fields.
  friend bool operator==(const KeyV4& a, const KeyV4& b) noexcept { return std::memcmp(&a, &b, sizeof a) == 0; }
};
static_assert(sizeof(KeyV4) == 12);

struct KeyV6 {
  std::uint8_t addr[2][16];
  std::uint16_t port[2];

  friend bool operator==(const KeyV6& a, const KeyV6& b) noexcept { return std::memcmp(&a, &b, sizeof a) == 0; }
};
static_assert(sizeof(KeyV6) == 36);

// Which endpoint of the key sent the packet.
enum class Side : std::uint8_t { Lo = 0, Hi = 1 };

inline std::uint32_t hash_key(const KeyV4& k) noexcept {
  std::uint64_t a;
  std::memcpy(&a, k.addr, 8);
  std::uint32_t p;
  std::memcpy(&p, k.port, 4);
  return crc32c_u32(crc32c_u64(kHashSeed, a), p);
}

inline std::uint32_t hash_key(const KeyV6& k) noexcept {
  std::uint64_t w[4];
  std::memcpy(w, k.addr, 32);
  std::uint32_t p;
  std::memcpy(&p, k.port, 4);
  std::uint32_t h = kHashSeed;
  for (std::uint64_t x : w) h = crc32c_u64(h, x);
  return crc32c_u32(h, p);
}

// The canonical key of an IPv4 segment from src:sport to dst:dport (host
// order), and which side sent it.
inline Side make_key_v4(std::uint32_t src_addr, std::uint16_t sport, std::uint32_t dst_addr, std::uint16_t dport,
                        KeyV4& k) noexcept {
  // Branch-free: with both directions in the traffic the comparison is a coin
  // toss, and a mispredicted branch costs more than the selects.
  const std::uint64_t src = (static_cast<std::uint64_t>(src_addr) << 16) | sport;
  const std::uint64_t dst = (static_cast<std::uint64_t>(dst_addr) << 16) | dport;
  const bool src_lo = src <= dst;
  const std::uint64_t lo = src_lo ? src : dst;
  const std::uint64_t hi = src_lo ? dst : src;
  k.addr[0] = static_cast<std::uint32_t>(lo >> 16);
  k.addr[1] = static_cast<std::uint32_t>(hi >> 16);
  k.port[0] = static_cast<std::uint16_t>(lo);
  k.port[1] = static_cast<std::uint16_t>(hi);
  return src_lo ? Side::Lo : Side::Hi;
}

// Builds the canonical key of a parsed TCP packet and says which side sent it.
inline Side make_key(const packet::PacketView& v, KeyV4& k) noexcept {
  return make_key_v4(load_be32(v.src), v.sport, load_be32(v.dst), v.dport, k);
}

inline Side make_key(const packet::AckSegment& s, KeyV4& k) noexcept {
  return make_key_v4(s.src, s.sport, s.dst, s.dport, k);
}

inline Side make_key(const packet::PacketView& v, KeyV6& k) noexcept {
  const int c = std::memcmp(v.src, v.dst, 16);
  const bool src_lo = c < 0 || (c == 0 && v.sport <= v.dport);
  const std::uint8_t* lo = src_lo ? v.src : v.dst;
  const std::uint8_t* hi = src_lo ? v.dst : v.src;
  std::memcpy(k.addr[0], lo, 16);
  std::memcpy(k.addr[1], hi, 16);
  k.port[0] = src_lo ? v.sport : v.dport;
  k.port[1] = src_lo ? v.dport : v.sport;
  return src_lo ? Side::Lo : Side::Hi;
}

}  // namespace ctlb::flow
