#pragma once
// The tracker's clock: milliseconds on a 32-bit counter. Every age is a
// modular difference, so the counter may wrap (after 49.7 days) as long as no
// entry stays unaged for that long; the longest timeout is 5 days.
#include <cstdint>

namespace ctlb {

using Millis = std::uint32_t;

constexpr std::uint32_t elapsed_ms(Millis now, Millis then) noexcept { return now - then; }

}  // namespace ctlb
