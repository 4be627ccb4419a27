#pragma once
// The ager of ctlb-control: one pass over every worker's flow tables finds
// the entries whose timeout has run out and asks their owner to free them.
//
// The ager only reads: each entry in use is copied with the table's seqlock
// (FlowTable::read) and judged with the rule of EvictionPolicy::expired at the
// control's clock (an entry last seen after that clock, i.e. during the
// scan, is not expired). An expired entry becomes an ExpiryRequest {handle, version
// seen, family} for the owning worker's expiry ring; the worker frees it only
// if its version is unchanged and it is still expired by the worker's clock
// (FlowTable::expire), so a request that races with traffic (a SYN reopening
// a TIME_WAIT tuple, a late ACK) is refused there and costs nothing.
//
// The scan runs in a tbb::task_arena of a fixed number of threads, in slices
// of handles of one (worker, family) table. Requests are collected per slice
// and posted after the parallel part, from the calling thread, in table order
// (worker, IPv4 then IPv6, handle): the poster needs no thread safety and is
// called once per slice with a burst.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "dataplane/common/time.hpp"
#include "dataplane/flow/flow_table.hpp"
#include "dataplane/shm_layout.hpp"
#include "dataplane/tcp/tcp_types.hpp"

namespace ctlb::control {

// Ages are modular differences on the 32-bit clock; one above this is an
// entry last seen after the control's `now` (the workers write last_seen with
// their own reading of the clock while the ager scans), not one 25 days old.
// No timeout comes near it (the longest default is 5 days).
inline constexpr Millis kMaxAgeMs = 0x7fffffffu;

// One worker's tables, as attached by ctlb-control. Either may be null.
struct WorkerTables {
  std::uint32_t worker;  // index of the owner: where its requests go
  flow::FlowTable<flow::V4>* v4;
  flow::FlowTable<flow::V6>* v6;
};

// Aging lag: how long after its timeout ran out an entry was found expired.
// Buckets: [0, 1 s), [1 s, 2 s), [2 s, 5 s), [5 s, 10 s), [10 s, inf).
inline constexpr std::size_t kLagBucketCount = 5;
inline constexpr std::array<Millis, kLagBucketCount - 1> kLagBucketUpperMs = {1000, 2000, 5000, 10000};
constexpr std::size_t lag_bucket(Millis lag_ms) noexcept {
  std::size_t b = 0;
  while (b < kLagBucketUpperMs.size() && lag_ms >= kLagBucketUpperMs[b]) ++b;
  return b;
}

// Entries in use per state, both views, as one scan saw them.
struct StateCounts {
  std::array<std::uint64_t, tcp::kCtStateCount> ct{};  // by CtState
  // [initiator][responder] by EpState.
  std::array<std::array<std::uint64_t, tcp::kEpStateCount>, tcp::kEpStateCount> endpoints{};
  std::uint64_t out_of_range = 0;  // a state field beyond its enum (never, unless memory is corrupt)

  std::uint64_t of(tcp::CtState s) const noexcept { return ct[static_cast<std::size_t>(s)]; }
  std::uint64_t of(tcp::EpState initiator, tcp::EpState responder) const noexcept {
    return endpoints[static_cast<std::size_t>(initiator)][static_cast<std::size_t>(responder)];
  }
  void add(const StateCounts& o) noexcept;
};

// What one scan did.
struct ScanStats {
  std::uint64_t entries_scanned = 0;  // handles visited
  std::uint64_t entries_in_use = 0;   // of those, a consistent copy in use
  std::uint64_t read_failed = 0;      // in use, but the owner kept writing it: skipped
  std::uint64_t seen_after_now = 0;   // in use, last_seen after the scan's clock: not expired
  std::uint64_t expired = 0;          // found expired (= posted + dropped)
  std::uint64_t requests_posted = 0;
  std::uint64_t requests_dropped_ring_full = 0;
  std::uint64_t scan_ns = 0;          // wall time of the scan, posting included
  Millis lag_ms_max = 0;
  std::array<std::uint64_t, kLagBucketCount> lag_histogram{};
  StateCounts states;
};

// Since the Ager was made: plain counters for export. Fields marked "last
// scan" are gauges of the latest scan; the others accumulate.
struct AgerStats {
  std::uint64_t scans = 0;
  std::uint64_t entries_scanned = 0;
  std::uint64_t entries_in_use = 0;  // last scan
  std::uint64_t read_failed = 0;
  std::uint64_t seen_after_now = 0;
  std::uint64_t expired = 0;
  std::uint64_t requests_posted = 0;
  std::uint64_t requests_dropped_ring_full = 0;
  std::uint64_t last_scan_ns = 0;
  std::uint64_t total_scan_ns = 0;
  std::uint64_t max_scan_ns = 0;
  Millis lag_ms_max = 0;  // last scan
  std::array<std::uint64_t, kLagBucketCount> lag_histogram{};
  StateCounts states;  // last scan: flows currently in each state
};

// Posts one request to a worker's expiry ring; false: ring full.
using PostOne = std::function<bool(std::uint32_t worker, const shm::ExpiryRequest& req)>;
// Posts up to n requests (rte_ring_enqueue_burst_elem); returns how many were
// taken, the rest count as dropped (ring full).
using PostBurst = std::function<unsigned(std::uint32_t worker, const shm::ExpiryRequest* reqs, unsigned n)>;

using shm::tracker_clock_ms;  // the tracker's clock, as the workers compute it

class Ager {
 public:
  static constexpr std::uint32_t kDefaultSliceHandles = 16384;

  // threads: size of the TBB arena (>= 1). slice_handles: handles per task.
  Ager(const tcp::Timeouts& timeouts, unsigned threads, std::uint32_t slice_handles = kDefaultSliceHandles);
  ~Ager();
  Ager(const Ager&) = delete;
  Ager& operator=(const Ager&) = delete;

  // One pass over all tables at the control's clock `now`.
  ScanStats scan(std::span<const WorkerTables> workers, Millis now, const PostBurst& post);
  ScanStats scan(std::span<const WorkerTables> workers, Millis now, const PostOne& post);

  const AgerStats& stats() const noexcept { return stats_; }
  const tcp::Timeouts& timeouts() const noexcept { return timeouts_; }
  void set_timeouts(const tcp::Timeouts& t) noexcept { timeouts_ = t; }
  unsigned threads() const noexcept { return threads_; }

 private:
  struct Slice;
  struct Arena;

  void plan(std::span<const WorkerTables> workers);
  void run_slices(Millis now);
  ScanStats finish(std::chrono::steady_clock::time_point t0, const PostBurst& post);

  tcp::Timeouts timeouts_;
  unsigned threads_;
  std::uint32_t slice_handles_;
  std::unique_ptr<Arena> arena_;
  std::vector<Slice> slices_;  // reused from scan to scan (their request buffers too)
  std::size_t slice_count_ = 0;
  AgerStats stats_;
};

}  // namespace ctlb::control
