#pragma once
// Network byte order is converted here and nowhere else: every multi-byte
// field read from a packet goes through these loads.
#include <bit>
#include <cstdint>
#include <cstring>

namespace ctlb {

static_assert(std::endian::native == std::endian::little, "the byte swaps below assume a little-endian host");

inline std::uint16_t load_be16(const std::uint8_t* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_bswap16(v);
}

inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_bswap32(v);
}

inline void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
  v = __builtin_bswap16(v);
  std::memcpy(p, &v, sizeof v);
}

inline void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, sizeof v);
}

// Fields as they lie in memory, unconverted: for one's complement sums,
// which come out the same in either byte order (RFC 1071 section 2(B)), so
// an incremental checksum update needs no swap (lb/nat.hpp).
inline std::uint16_t load_raw16(const std::uint8_t* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline std::uint32_t load_raw32(const std::uint8_t* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store_raw16(std::uint8_t* p, std::uint16_t v) noexcept { std::memcpy(p, &v, sizeof v); }

// The word load_raw32() reads from the bytes b0 b1 b2 b3: to test several
// header bytes with one load, mask and compare, without a swap.
constexpr std::uint32_t raw_word(std::uint8_t b0, std::uint8_t b1, std::uint8_t b2, std::uint8_t b3) noexcept {
  return static_cast<std::uint32_t>(b0) | static_cast<std::uint32_t>(b1) << 8 | static_cast<std::uint32_t>(b2) << 16 |
         static_cast<std::uint32_t>(b3) << 24;
}

inline std::uint64_t load_be64(const std::uint8_t* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_bswap64(v);
}

// Equality of two IP addresses of a family (4: 4 bytes, else 16), with
// fixed-width loads rather than a call to memcmp of a variable length.
inline bool ip_equal(std::uint8_t family, const std::uint8_t* a, const std::uint8_t* b) noexcept {
  std::uint64_t x[2], y[2];
  if (family == 4) {
    std::uint32_t u, v;
    std::memcpy(&u, a, 4);
    std::memcpy(&v, b, 4);
    return u == v;
  }
  std::memcpy(x, a, 16);
  std::memcpy(y, b, 16);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

// The netmask of an IPv4 prefix of `len` bits (len <= 32), host byte order.
inline std::uint32_t ipv4_prefix_mask(unsigned len) noexcept {
  return len == 0 ? 0 : ~std::uint32_t{0} << (32 - len);
}

// True if the first `len` bits of a and b agree (len <= 32 for family 4,
// <= 128 otherwise).
inline bool ip_prefix_equal(std::uint8_t family, const std::uint8_t* a, const std::uint8_t* b, unsigned len) noexcept {
  if (family == 4) {
    const std::uint32_t mask = ipv4_prefix_mask(len);
    return ((load_be32(a) ^ load_be32(b)) & mask) == 0;
  }
  const std::uint64_t hi = len == 0 ? 0 : len >= 64 ? ~std::uint64_t{0} : ~std::uint64_t{0} << (64 - len);
  const std::uint64_t lo = len <= 64 ? 0 : len >= 128 ? ~std::uint64_t{0} : ~std::uint64_t{0} << (128 - len);
  return ((load_be64(a) ^ load_be64(b)) & hi) == 0 && ((load_be64(a + 8) ^ load_be64(b + 8)) & lo) == 0;
}

}  // namespace ctlb
