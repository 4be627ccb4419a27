#pragma once
// Heap-backed flow tables for the unit tests.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dataplane/flow/flow_table.hpp"

namespace ctlb_test {

struct AlignedFree {
  void operator()(void* p) const noexcept { std::free(p); }
};
using Region = std::unique_ptr<void, AlignedFree>;

inline Region aligned_region(std::size_t bytes) {
  return Region(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
}

template <class F>
struct HeapTable {
  Region mem;
  std::size_t bytes;
  ctlb::flow::FlowTable<F> table;

  explicit HeapTable(std::uint32_t capacity)
      : mem(aligned_region(ctlb::flow::FlowTable<F>::bytes_needed(capacity))),
        bytes(ctlb::flow::FlowTable<F>::bytes_needed(capacity)),
        table(ctlb::flow::FlowTable<F>::create(mem.get(), capacity)) {}
};

// Distinct keys: addr[0] = i * odd constant is a bijection on 32 bits.
inline ctlb::flow::KeyV4 key4(std::uint32_t i, std::uint32_t salt = 0) {
  return ctlb::flow::KeyV4{{i * 2654435761u, 0x0a000000u ^ salt}, {static_cast<std::uint16_t>(i), 443}};
}

inline ctlb::flow::KeyV6 key6(std::uint32_t i) {
  ctlb::flow::KeyV6 k{};
  k.addr[0][0] = 0x20;
  const std::uint32_t x = i * 2654435761u;
  std::memcpy(&k.addr[0][12], &x, 4);
  k.addr[1][0] = 0x20;
  k.addr[1][15] = 1;
  k.port[0] = static_cast<std::uint16_t>(i);
  k.port[1] = 80;
  return k;
}

}  // namespace ctlb_test
