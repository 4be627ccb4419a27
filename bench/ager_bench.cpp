// Cost of ctlb-control's ager: one Ager::scan over a full flow table, in
// nanoseconds of wall time per table entry, with 1 and 2 TBB threads.
//
// The table is full (every handle in use, inserted through the real index),
// with a mix of connection states; ~1% of the entries are expired at the
// scan's clock, the rest are idle for less than their timeout. The poster
// accepts every request (a ring with room); nothing frees the entries, so
// every scan finds the same 1% again.
//
//   ns/entry     wall ns of one scan / entries (the arena's threads together)
//   expired      requests posted per scan
//   Mentries/s   entries scanned per second
//
// Tables are built once per process (10M IPv4 entries: ~1.05 GiB) in 2 MiB
// aligned memory advised for transparent huge pages, as the dataplane's
// tables sit in hugepage memzones. CTLB_BENCH_THP=0 uses 4 KiB pages.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <type_traits>
#include <vector>

#include "control/ager.hpp"
#include "dataplane/flow/flow_key.hpp"
#include "dataplane/flow/flow_table.hpp"

namespace {

using namespace ctlb;
using flow::FlowTable;
using flow::Handle;
using flow::V4;
using flow::V6;
using tcp::CtState;
using tcp::EpState;

constexpr Millis kNow = 2'000'000'000u;
const tcp::Timeouts kTimeouts = tcp::default_timeouts();

bool use_thp() {
  const char* e = std::getenv("CTLB_BENCH_THP");
  return !(e && e[0] == '0');
}

struct FreeDeleter {
  void operator()(void* p) const noexcept { std::free(p); }
};

std::unique_ptr<void, FreeDeleter> huge_region(std::size_t bytes) {
  constexpr std::size_t kHuge = 2u << 20;
  const std::size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, size);
  if (p == nullptr) {
    std::fprintf(stderr, "ager_bench: cannot allocate %zu bytes\n", size);
    std::abort();
  }
  if (use_thp()) madvise(p, size, MADV_HUGEPAGE);
  return std::unique_ptr<void, FreeDeleter>(p);
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

flow::KeyV4 key_of(V4, std::uint32_t i) {
  return flow::KeyV4{{i * 2654435761u, 0x0a000000u + (i >> 16)}, {static_cast<std::uint16_t>(i), 443}};
}
flow::KeyV6 key_of(V6, std::uint32_t i) {
  flow::KeyV6 k{};
  k.addr[0][0] = 0x20;
  const std::uint32_t x = i * 2654435761u;
  std::memcpy(&k.addr[0][12], &x, 4);
  k.addr[1][0] = 0x20;
  k.addr[1][15] = 1;
  k.port[0] = static_cast<std::uint16_t>(i);
  k.port[1] = static_cast<std::uint16_t>(i >> 16);
  return k;
}

struct Look {
  CtState ct;
  EpState initiator, responder;
};

// A plausible mix of a busy box: mostly ESTABLISHED, a long TIME_WAIT tail.
Look look_of(std::uint64_t r) {
  const unsigned p = static_cast<unsigned>(r % 100);
  if (p < 70) return {CtState::Established, EpState::Established, EpState::Established};
  if (p < 85) return {CtState::TimeWait, EpState::TimeWait, EpState::Closed};
  if (p < 88) return {CtState::SynSent, EpState::SynSent, EpState::Listen};
  if (p < 90) return {CtState::SynRecv, EpState::SynSent, EpState::SynReceived};
  if (p < 93) return {CtState::FinWait, EpState::FinWait2, EpState::CloseWait};
  if (p < 95) return {CtState::CloseWait, EpState::CloseWait, EpState::FinWait2};
  if (p < 97) return {CtState::LastAck, EpState::TimeWait, EpState::LastAck};
  return {CtState::Close, EpState::Closed, EpState::Closed};
}

template <class F>
struct FullTable {
  std::unique_ptr<void, FreeDeleter> mem;
  FlowTable<F> table;
  std::uint64_t expired = 0;  // at kNow

  explicit FullTable(std::uint32_t entries)
      : mem(huge_region(FlowTable<F>::bytes_needed(entries))), table(FlowTable<F>::create(mem.get(), entries)) {
    const flow::EvictionPolicy policy{&kTimeouts};
    for (std::uint32_t i = 0; i < entries; ++i) {
      const auto key = key_of(F{}, i);
      const flow::InsertResult r = table.insert(key, flow::hash_key(key), kNow, policy);
      if (r.status != flow::InsertStatus::Inserted) {
        std::fprintf(stderr, "ager_bench: insert %u of %u refused\n", i, entries);
        std::abort();
      }
      const std::uint64_t rnd = mix(i ^ 0x5eedULL);
      const Look l = look_of(rnd);
      auto& e = table.entry(r.handle);
      FlowTable<F>::write_begin(e);
      e.status.ct_state = static_cast<std::uint32_t>(l.ct);
      e.status.initiator = static_cast<std::uint32_t>(l.initiator);
      e.status.responder = static_cast<std::uint32_t>(l.responder);
      e.status.assured = l.ct == CtState::Established ? 1 : 0;
      const Millis timeout = tcp::timeout_of(e.status, kTimeouts);
      const std::uint64_t r2 = mix(rnd);
      if (r2 % 100 == 0) {
        e.last_seen = kNow - timeout - static_cast<Millis>(r2 % 1000);  // expired, up to 1 s ago
        ++expired;
      } else {
        e.last_seen = kNow - static_cast<Millis>(r2 % timeout);  // idle < timeout
      }
      FlowTable<F>::write_end(e);
    }
  }
};

template <class F>
FullTable<F>& table_of(std::uint32_t entries) {
  static std::map<std::uint32_t, std::unique_ptr<FullTable<F>>> cache;
  auto& t = cache[entries];
  if (!t) t = std::make_unique<FullTable<F>>(entries);
  return *t;
}

template <class F>
void scan_bench(benchmark::State& state) {
  const auto entries = static_cast<std::uint32_t>(state.range(0));
  const auto threads = static_cast<unsigned>(state.range(1));
  FullTable<F>& t = table_of<F>(entries);
  control::WorkerTables w{0, nullptr, nullptr};
  if constexpr (std::is_same_v<F, V4>) w.v4 = &t.table;
  else w.v6 = &t.table;
  const std::vector<control::WorkerTables> workers = {w};

  std::uint64_t posted = 0;
  const control::PostBurst post = [&posted](std::uint32_t, const shm::ExpiryRequest* reqs, unsigned n) {
    benchmark::DoNotOptimize(reqs);
    posted += n;
    return n;
  };
  control::Ager ager(kTimeouts, threads);
  ager.scan(workers, kNow, post);  // warm-up: request buffers grow once
  posted = 0;
  const std::uint64_t warm_ns = ager.stats().total_scan_ns;
  for (auto _ : state) {
    const control::ScanStats s = ager.scan(workers, kNow, post);
    benchmark::DoNotOptimize(s.expired);
  }
  const auto& st = ager.stats();
  const auto scans = static_cast<double>(state.iterations());
  const double scan_ns = static_cast<double>(st.total_scan_ns - warm_ns) / scans;
  state.counters["ns/entry"] = scan_ns / entries;
  state.counters["Mentries/s"] = entries / scan_ns * 1e3;
  state.counters["scan_ms"] = scan_ns / 1e6;
  state.counters["expired"] = static_cast<double>(posted) / scans;
  state.counters["expired_expected"] = static_cast<double>(t.expired);
  if (ager.stats().entries_in_use != entries || posted / state.iterations() != t.expired)
    state.SkipWithError("scan did not see the table as built");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * entries);
}

void BM_AgerScanV4(benchmark::State& state) { scan_bench<V4>(state); }
BENCHMARK(BM_AgerScanV4)
    ->ArgNames({"entries", "threads"})
    ->Args({1'000'000, 1})
    ->Args({1'000'000, 2})
    ->Args({10'000'000, 1})
    ->Args({10'000'000, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_AgerScanV6(benchmark::State& state) { scan_bench<V6>(state); }
BENCHMARK(BM_AgerScanV6)
    ->ArgNames({"entries", "threads"})
    ->Args({1'000'000, 1})
    ->Args({1'000'000, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
