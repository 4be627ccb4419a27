#include "control/ager.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <stdexcept>

namespace ctlb::control {

void StateCounts::add(const StateCounts& o) noexcept {
  for (std::size_t i = 0; i < ct.size(); ++i) ct[i] += o.ct[i];
  for (std::size_t i = 0; i < endpoints.size(); ++i)
    for (std::size_t j = 0; j < endpoints[i].size(); ++j) endpoints[i][j] += o.endpoints[i][j];
  out_of_range += o.out_of_range;
}

struct Ager::Arena {
  explicit Arena(unsigned threads) : arena(static_cast<int>(threads)) {}
  tbb::task_arena arena;
};

// A range of handles of one table; written by the one task that scans it.
struct alignas(64) Ager::Slice {
  std::uint32_t worker = 0;
  std::uint8_t family = 0;
  void* table = nullptr;  // FlowTable<V4>* or FlowTable<V6>*, by family
  flow::Handle begin = 0;
  flow::Handle end = 0;
  std::vector<shm::ExpiryRequest> requests;
  ScanStats stats;
};

namespace {

template <class F>
void scan_slice(const flow::FlowTable<F>& table, flow::Handle begin, flow::Handle end, Millis now,
                const tcp::Timeouts& timeouts, std::vector<shm::ExpiryRequest>& requests, ScanStats& s) noexcept {
  const flow::EvictionPolicy policy{&timeouts};
  typename F::Entry e;
  flow::Cold cold;
  s.entries_scanned += end - begin;
  for (flow::Handle h = begin; h < end; ++h) {
    // Most of a table is in use, but a free entry costs no copy.
    if (table.entry(h).status.ct_state == 0) continue;
    if (!table.read(h, e, cold)) {
      ++s.read_failed;
      continue;
    }
    const tcp::Status st = e.status;
    if (st.ct_state == 0) continue;  // freed between the check and the copy
    ++s.entries_in_use;
    if (st.ct_state < tcp::kCtStateCount && st.initiator < tcp::kEpStateCount && st.responder < tcp::kEpStateCount) {
      ++s.states.ct[st.ct_state];
      ++s.states.endpoints[st.initiator][st.responder];
    } else {
      ++s.states.out_of_range;
    }
    // Seen after `now` (touched during the scan, or the worker's clock a
    // little ahead): the modular age would read ~49 days. Not expired.
    const Millis idle = elapsed_ms(now, e.last_seen);
    if (idle > kMaxAgeMs) {
      ++s.seen_after_now;
      continue;
    }
    if (!policy.expired(st, e.last_seen, now)) continue;
    const Millis lag = idle - tcp::timeout_of(st, timeouts);
    s.lag_ms_max = std::max(s.lag_ms_max, lag);
    ++s.lag_histogram[lag_bucket(lag)];
    ++s.expired;
    requests.push_back(shm::ExpiryRequest{h, e.version, static_cast<std::uint8_t>(F::kFamily)});
  }
}

}  // namespace

Ager::Ager(const tcp::Timeouts& timeouts, unsigned threads, std::uint32_t slice_handles)
    : timeouts_(timeouts), threads_(threads), slice_handles_(slice_handles) {
  if (threads == 0) throw std::invalid_argument("ager: threads must be at least 1");
  if (slice_handles == 0) throw std::invalid_argument("ager: slice_handles must be at least 1");
  arena_ = std::make_unique<Arena>(threads);
}

Ager::~Ager() = default;

void Ager::plan(std::span<const WorkerTables> workers) {
  slice_count_ = 0;
  auto add = [this](std::uint32_t worker, std::uint8_t family, void* table, std::uint32_t capacity) {
    for (std::uint32_t b = 0; b < capacity; b += std::min(slice_handles_, capacity - b)) {
      if (slice_count_ == slices_.size()) slices_.emplace_back();
      Slice& s = slices_[slice_count_++];
      s.worker = worker;
      s.family = family;
      s.table = table;
      s.begin = b;
      s.end = b + std::min(slice_handles_, capacity - b);
      s.requests.clear();  // keeps its capacity: steady scans do not allocate
      s.stats = ScanStats{};
    }
  };
  for (const WorkerTables& w : workers) {
    if (w.v4 != nullptr && w.v4->valid()) add(w.worker, 4, w.v4, w.v4->capacity());
    if (w.v6 != nullptr && w.v6->valid()) add(w.worker, 6, w.v6, w.v6->capacity());
  }
}

void Ager::run_slices(Millis now) {
  const tcp::Timeouts& timeouts = timeouts_;
  Slice* slices = slices_.data();
  arena_->arena.execute([&] {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, slice_count_), [&](const tbb::blocked_range<std::size_t>& r) {
      for (std::size_t i = r.begin(); i != r.end(); ++i) {
        Slice& s = slices[i];
        if (s.family == 4)
          scan_slice(*static_cast<const flow::FlowTable<flow::V4>*>(s.table), s.begin, s.end, now, timeouts,
                     s.requests, s.stats);
        else
          scan_slice(*static_cast<const flow::FlowTable<flow::V6>*>(s.table), s.begin, s.end, now, timeouts,
                     s.requests, s.stats);
      }
    });
  });
}

ScanStats Ager::finish(std::chrono::steady_clock::time_point t0, const PostBurst& post) {
  ScanStats total;
  for (std::size_t i = 0; i < slice_count_; ++i) {
    Slice& s = slices_[i];
    total.entries_scanned += s.stats.entries_scanned;
    total.entries_in_use += s.stats.entries_in_use;
    total.read_failed += s.stats.read_failed;
    total.seen_after_now += s.stats.seen_after_now;
    total.expired += s.stats.expired;
    total.lag_ms_max = std::max(total.lag_ms_max, s.stats.lag_ms_max);
    for (std::size_t b = 0; b < kLagBucketCount; ++b) total.lag_histogram[b] += s.stats.lag_histogram[b];
    total.states.add(s.stats.states);
    if (s.requests.empty()) continue;
    const auto n = static_cast<unsigned>(s.requests.size());
    const unsigned taken = std::min(post(s.worker, s.requests.data(), n), n);
    total.requests_posted += taken;
    total.requests_dropped_ring_full += n - taken;
  }
  total.scan_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());

  stats_.scans += 1;
  stats_.entries_scanned += total.entries_scanned;
  stats_.entries_in_use = total.entries_in_use;
  stats_.read_failed += total.read_failed;
  stats_.seen_after_now += total.seen_after_now;
  stats_.expired += total.expired;
  stats_.requests_posted += total.requests_posted;
  stats_.requests_dropped_ring_full += total.requests_dropped_ring_full;
  stats_.last_scan_ns = total.scan_ns;
  stats_.total_scan_ns += total.scan_ns;
  stats_.max_scan_ns = std::max(stats_.max_scan_ns, total.scan_ns);
  stats_.lag_ms_max = total.lag_ms_max;
  for (std::size_t b = 0; b < kLagBucketCount; ++b) stats_.lag_histogram[b] += total.lag_histogram[b];
  stats_.states = total.states;
  return total;
}

ScanStats Ager::scan(std::span<const WorkerTables> workers, Millis now, const PostBurst& post) {
  const auto t0 = std::chrono::steady_clock::now();
  plan(workers);
  run_slices(now);
  return finish(t0, post);
}

ScanStats Ager::scan(std::span<const WorkerTables> workers, Millis now, const PostOne& post) {
  return scan(workers, now, PostBurst([&post](std::uint32_t worker, const shm::ExpiryRequest* reqs, unsigned n) {
                unsigned taken = 0;
                for (unsigned i = 0; i < n; ++i) taken += post(worker, reqs[i]) ? 1u : 0u;
                return taken;
              }));
}

}  // namespace ctlb::control
