#pragma once
// A sequence lock over a 32-bit version in shared memory: one writer (odd
// while it writes), readers on other cores or in other processes that retry
// until they copied a version-stable snapshot. The flow table and the
// neighbour table use it.
#include <atomic>
#include <cstdint>

namespace ctlb::seqlock {

// Always inlined: they sit on the per-packet path (the flow table's in-place
// update), where a call would also spill what the caller holds in registers.
[[gnu::always_inline]] inline void write_begin(std::uint32_t& version) noexcept {
  std::atomic_ref<std::uint32_t> v(version);
  v.store(version + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

[[gnu::always_inline]] inline void write_end(std::uint32_t& version) noexcept {
  std::atomic_ref<std::uint32_t> v(version);
  v.store(version + 1, std::memory_order_release);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Runs copy() until no write overlapped it, at most `attempts` times.
// Returns the (even) version it copied at, through *seen, and true; false if
// the writer kept writing.
template <class Copy>
bool read(std::uint32_t& version, Copy&& copy, int attempts, std::uint32_t* seen = nullptr) noexcept {
  std::atomic_ref<std::uint32_t> v(version);
  for (int a = 0; a < attempts; ++a) {
    const std::uint32_t v1 = v.load(std::memory_order_acquire);
    if (v1 & 1u) {
      cpu_relax();
      continue;
    }
    copy();
    std::atomic_thread_fence(std::memory_order_acquire);
    if (v.load(std::memory_order_relaxed) == v1) {
      if (seen) *seen = v1;
      return true;
    }
  }
  return false;
}

}  // namespace ctlb::seqlock
