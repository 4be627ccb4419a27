#pragma once
// TCP sequence-space comparisons (RFC 793 modular arithmetic).
#include <cstdint>

namespace ctlb {

constexpr bool seq_before(std::uint32_t a, std::uint32_t b) noexcept {
  return static_cast<std::int32_t>(a - b) < 0;
}
constexpr bool seq_after(std::uint32_t a, std::uint32_t b) noexcept { return seq_before(b, a); }

}  // namespace ctlb
