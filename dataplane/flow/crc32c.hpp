#pragma once
// CRC32C (Castagnoli) over 4- and 8-byte words: the SSE4.2 instruction where
// the build targets it (DPDK's Debian build requires it), a table otherwise.
#include <cstdint>
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace ctlb::flow {

namespace detail {
struct Crc32cTable {
  std::uint32_t t[256];
  constexpr Crc32cTable() : t{} {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
  }
};
inline constexpr Crc32cTable kCrc32cTable{};

constexpr std::uint32_t crc32c_bytes_sw(std::uint32_t crc, std::uint64_t v, int n) noexcept {
  for (int i = 0; i < n; ++i) {
    crc = kCrc32cTable.t[(crc ^ static_cast<std::uint8_t>(v)) & 0xff] ^ (crc >> 8);
    v >>= 8;
  }
  return crc;
}
}  // namespace detail

inline std::uint32_t crc32c_u32(std::uint32_t crc, std::uint32_t v) noexcept {
#if defined(__SSE4_2__)
  return _mm_crc32_u32(crc, v);
#else
  return detail::crc32c_bytes_sw(crc, v, 4);
#endif
}

inline std::uint32_t crc32c_u64(std::uint32_t crc, std::uint64_t v) noexcept {
#if defined(__SSE4_2__)
  return static_cast<std::uint32_t>(_mm_crc32_u64(crc, v));
#else
  return detail::crc32c_bytes_sw(crc, v, 8);
#endif
}

}  // namespace ctlb::flow
