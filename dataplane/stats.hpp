#pragma once
// Sums the workers' published counters into one flat list of named values:
// what DPDK telemetry, the final print-out and ctlb-control export.
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/shm_layout.hpp"

namespace ctlb::shm {

struct Stat {
  std::string name;
  std::uint64_t value;
};

// The counters of workers [first, last) added up.
WorkerCounters sum_counters(const Header& h, std::uint32_t first = 0, std::uint32_t last = kMaxWorkers);

// Counters of workers [first, last) (all by default), zero values included,
// and each port's device counters (the same for any range of workers).
std::vector<Stat> collect_stats(const Header& h, std::uint32_t first = 0, std::uint32_t last = kMaxWorkers);

}  // namespace ctlb::shm
