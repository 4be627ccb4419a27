#pragma once
// Heap-backed flow tables for the unit tests.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
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

}  // namespace ctlb_test
