#pragma once
// What every fuzz target uses: an invariant check that names the broken
// invariant on stderr and traps (libFuzzer then saves the reproducer; the
// corpus-replay test of the normal build fails), and a reader that turns the
// fuzzer's bytes into values, yielding zeros once they run out.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#define FUZZ_CHECK(cond, ...)                                                                   \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                        \
      std::fprintf(stderr, "\n");                                                               \
      std::fflush(stderr);                                                                      \
      __builtin_trap();                                                                         \
    }                                                                                           \
  } while (0)

namespace ctlb_fuzz {

class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : p_(data), n_(size) {}

  bool empty() const { return i_ >= n_; }
  std::size_t left() const { return i_ < n_ ? n_ - i_ : 0; }

  std::uint8_t u8() { return i_ < n_ ? p_[i_++] : 0; }
  std::uint16_t u16() {
    const std::uint16_t hi = u8();
    return static_cast<std::uint16_t>(hi << 8 | u8());
  }
  std::uint32_t u32() {
    const std::uint32_t hi = u16();
    return hi << 16 | u16();
  }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t i_ = 0;
};

}  // namespace ctlb_fuzz
