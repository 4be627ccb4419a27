// control::Ager: which entries a scan finds expired, what it posts, what it
// counts, and that the worker side (FlowTable::expire) frees only entries that
// are unchanged since the scan.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "control/ager.hpp"
#include "dataplane/flow/flow_key.hpp"
#include "table_util.hpp"

namespace {

using namespace ctlb::flow;
using ctlb::Millis;
using ctlb::control::Ager;
using ctlb::control::ScanStats;
using ctlb::control::WorkerTables;
using ctlb::shm::ExpiryRequest;
using ctlb::tcp::CtState;
using ctlb::tcp::EpState;
using ctlb_test::HeapTable;

const ctlb::tcp::Timeouts kTimeouts = ctlb::tcp::default_timeouts();
const EvictionPolicy kPolicy{&kTimeouts};
constexpr Millis kDay = 24u * 3600u * 1000u;

using ctlb_test::key4;
using ctlb_test::key6;

KeyV4 key_of(V4, std::uint32_t i) { return key4(i); }
KeyV6 key_of(V6, std::uint32_t i) { return key6(i); }

WorkerTables tables_of(std::uint32_t worker, FlowTable<V4>& t) { return {worker, &t, nullptr}; }
WorkerTables tables_of(std::uint32_t worker, FlowTable<V6>& t) { return {worker, nullptr, &t}; }

struct Look {
  CtState ct = CtState::Established;
  EpState initiator = EpState::Established;
  EpState responder = EpState::Established;
  bool capped = false;  // timeout_class 1
  std::uint32_t cap = 0;
};

// What the owning worker does when a packet changes an entry.
template <class F>
void write_entry(FlowTable<F>& t, Handle h, const Look& l, Millis last_seen) {
  auto& e = t.entry(h);
  FlowTable<F>::write_begin(e);
  e.status.ct_state = static_cast<std::uint32_t>(l.ct);
  e.status.initiator = static_cast<std::uint32_t>(l.initiator);
  e.status.responder = static_cast<std::uint32_t>(l.responder);
  e.status.timeout_class = l.capped ? 1 : 0;
  e.status.timeout_cap = l.cap;
  e.last_seen = last_seen;
  FlowTable<F>::write_end(e);
}

template <class F>
Handle add(FlowTable<F>& t, std::uint32_t key_index, const Look& l, Millis last_seen) {
  const auto key = key_of(F{}, key_index);
  const InsertResult r = t.insert(key, hash_key(key), last_seen, kPolicy);
  EXPECT_EQ(r.status, InsertStatus::Inserted);
  write_entry(t, r.handle, l, last_seen);
  return r.handle;
}

template <class F>
std::uint32_t version_of(const FlowTable<F>& t, Handle h) {
  typename F::Entry e;
  Cold c;
  EXPECT_TRUE(t.read(h, e, c));
  return e.version;
}

// A posted request, with the worker it went to; ordered for sets.
using Posted = std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, int>;  // worker, handle, version, family
Posted posted(std::uint32_t worker, const ExpiryRequest& r) { return {worker, r.handle, r.version, r.family}; }

struct Collector {
  std::vector<Posted> all;
  std::size_t accept_left = SIZE_MAX;  // refuses once this many were taken

  ctlb::control::PostOne one() {
    return [this](std::uint32_t w, const ExpiryRequest& r) {
      if (accept_left == 0) return false;
      --accept_left;
      all.push_back(posted(w, r));
      return true;
    };
  }
  std::set<Posted> set() const { return {all.begin(), all.end()}; }
};

Look ct_look(CtState s) { return Look{s, EpState::Established, EpState::Established, false, 0}; }

// ---- which entries expire ----------------------------------------------------

// For every state and every capped timeout class: idle == timeout expires,
// idle == timeout - 1 does not; in both families, for two workers.
TEST(AgerExpiry, BoundaryOfEveryTimeoutBothFamilies) {
  HeapTable<V4> w0v4(1024), w1v4(1024);
  HeapTable<V6> w0v6(1024), w1v6(1024);
  const Millis now = 1'000'000'000u;
  std::vector<Look> looks;
  for (std::uint32_t s = 1; s < ctlb::tcp::kCtStateCount; ++s) looks.push_back(ct_look(static_cast<CtState>(s)));
  for (std::uint32_t cap = 0; cap < 3; ++cap)
    looks.push_back(Look{CtState::Established, EpState::Established, EpState::Established, true, cap});

  std::set<Posted> expected;
  std::uint32_t key = 0;
  std::size_t in_use = 0;
  auto populate = [&](auto& table, std::uint32_t worker, int family) {
    for (const Look& l : looks) {
      ctlb::tcp::Status st{};
      st.ct_state = static_cast<std::uint32_t>(l.ct);
      st.timeout_class = l.capped ? 1 : 0;
      st.timeout_cap = l.cap;
      const Millis timeout = ctlb::tcp::timeout_of(st, kTimeouts);
      ASSERT_GT(timeout, 0u);
      const Handle at = add(table, ++key, l, now - timeout);
      add(table, ++key, l, now - timeout + 1);
      add(table, ++key, l, now);  // just seen
      in_use += 3;
      expected.insert({worker, at, version_of(table, at), family});
    }
  };
  populate(w0v4.table, 0, 4);
  populate(w0v6.table, 0, 6);
  populate(w1v4.table, 1, 4);
  populate(w1v6.table, 1, 6);
  const std::vector<WorkerTables> workers = {{0, &w0v4.table, &w0v6.table}, {1, &w1v4.table, &w1v6.table}};

  Ager ager(kTimeouts, 2, 100);
  Collector c;
  const ScanStats s = ager.scan(workers, now, c.one());
  EXPECT_EQ(c.set(), expected);
  EXPECT_EQ(c.all.size(), expected.size());
  EXPECT_EQ(s.entries_scanned, 4u * 1024u);
  EXPECT_EQ(s.entries_in_use, in_use);
  EXPECT_EQ(s.expired, expected.size());
  EXPECT_EQ(s.requests_posted, expected.size());
  EXPECT_EQ(s.requests_dropped_ring_full, 0u);
  EXPECT_EQ(s.read_failed, 0u);
  EXPECT_EQ(s.lag_ms_max, 0u);
  EXPECT_EQ(s.lag_histogram[0], expected.size());
  for (const Posted& p : c.all) EXPECT_EQ(std::get<2>(p) % 2, 0u) << "an odd version is a write in progress";

  // Requests go in table order: worker, IPv4 before IPv6, handle.
  EXPECT_TRUE(std::is_sorted(c.all.begin(), c.all.end(), [](const Posted& a, const Posted& b) {
    return std::tie(std::get<0>(a), std::get<3>(a), std::get<1>(a)) <
           std::tie(std::get<0>(b), std::get<3>(b), std::get<1>(b));
  }));

  // One millisecond earlier, nothing has expired yet; the entries seen at
  // `now` are then seen after the scan's clock, and not ~49 days old.
  Collector none;
  const ScanStats early = ager.scan(workers, now - 1, none.one());
  EXPECT_EQ(early.expired, 0u);
  EXPECT_EQ(early.seen_after_now, looks.size() * 4);
  EXPECT_TRUE(none.all.empty());
}

// A worker writes last_seen from its own reading of the clock, while the
// ager scans at the `now` it read before: such an entry is fresh, not old.
TEST(AgerExpiry, EntrySeenAfterTheScansClockIsNotExpired) {
  HeapTable<V4> t(64);
  const Millis now = 3'000'000;
  add(t.table, 1, ct_look(CtState::TimeWait), now + 1);
  add(t.table, 2, ct_look(CtState::Close), now + 5000);
  const Handle old = add(t.table, 3, ct_look(CtState::Close), now - 10'000);
  const std::vector<WorkerTables> workers = {{0, &t.table, nullptr}};
  Ager ager(kTimeouts, 1);
  Collector c;
  const ScanStats s = ager.scan(workers, now, c.one());
  EXPECT_EQ(c.set(), (std::set<Posted>{{0, old, version_of(t.table, old), 4}}));
  EXPECT_EQ(s.seen_after_now, 2u);
  EXPECT_EQ(s.lag_ms_max, 0u);
  EXPECT_EQ(ager.stats().seen_after_now, 2u);
}

// The clock is a wrapping 32-bit counter: ages are modular differences.
TEST(AgerExpiry, AgesAcrossClockWrap) {
  HeapTable<V4> t(64);
  const Millis now = 1000;  // shortly after the wrap
  const Millis tw = kTimeouts.of(CtState::TimeWait);
  const Handle expired = add(t.table, 1, ct_look(CtState::TimeWait), now - tw);
  add(t.table, 2, ct_look(CtState::TimeWait), now - tw + 1);
  const std::vector<WorkerTables> workers = {{3, &t.table, nullptr}};
  Ager ager(kTimeouts, 1);
  Collector c;
  ager.scan(workers, now, c.one());
  EXPECT_EQ(c.set(), (std::set<Posted>{{3, expired, version_of(t.table, expired), 4}}));
}

// The timeouts are the ager's own: a shorter TIME_WAIT (smaller MSL) ages sooner.
TEST(AgerExpiry, UsesItsTimeouts) {
  HeapTable<V4> t(64);
  const Millis now = 10'000'000;
  const Handle h = add(t.table, 1, ct_look(CtState::TimeWait), now - 60'000);
  const std::vector<WorkerTables> workers = {{0, &t.table, nullptr}};
  Ager ager(kTimeouts, 1);
  Collector c;
  EXPECT_EQ(ager.scan(workers, now, c.one()).expired, 0u);
  ager.set_timeouts(ctlb::tcp::default_timeouts(30));  // TIME_WAIT 60 s
  EXPECT_EQ(ager.scan(workers, now, c.one()).expired, 1u);
  EXPECT_EQ(c.set(), (std::set<Posted>{{0, h, version_of(t.table, h), 4}}));
}

TEST(AgerExpiry, LagHistogramAndMax) {
  HeapTable<V6> t(64);
  const Millis now = 50'000'000;
  const Millis close = kTimeouts.of(CtState::Close);
  const Millis lags[] = {0, 999, 1000, 1999, 2000, 4999, 5000, 9999, 10000, 50000};
  std::uint32_t k = 0;
  for (Millis lag : lags) add(t.table, ++k, ct_look(CtState::Close), now - close - lag);
  add(t.table, ++k, ct_look(CtState::Close), now - close + 1);  // not expired: no lag
  const std::vector<WorkerTables> workers = {{0, nullptr, &t.table}};
  Ager ager(kTimeouts, 2, 4);
  Collector c;
  const ScanStats s = ager.scan(workers, now, c.one());
  EXPECT_EQ(s.expired, 10u);
  EXPECT_EQ(s.lag_ms_max, 50000u);
  EXPECT_EQ(s.lag_histogram, (std::array<std::uint64_t, 5>{2, 2, 2, 2, 2}));

  // The histogram accumulates; the maximum is the last scan's.
  ager.scan(workers, now, c.one());
  ager.scan(workers, now - 10000, c.one());  // only lag 10000 -> 0, 50000 -> 40000 are expired
  const auto& st = ager.stats();
  EXPECT_EQ(st.scans, 3u);
  EXPECT_EQ(st.lag_histogram, (std::array<std::uint64_t, 5>{5, 4, 4, 4, 5}));
  EXPECT_EQ(st.lag_ms_max, 40000u);
  EXPECT_EQ(st.expired, 22u);
  EXPECT_EQ(st.requests_posted, 22u);
  EXPECT_EQ(st.entries_scanned, 3u * 64u);
  EXPECT_EQ(st.entries_in_use, 11u);
  EXPECT_GT(st.total_scan_ns, 0u);
  EXPECT_GE(st.total_scan_ns, st.max_scan_ns);
  EXPECT_GE(st.max_scan_ns, st.last_scan_ns);
}

// ---- posting -------------------------------------------------------------------

TEST(AgerPost, RefusedRequestsAreCountedAndPostedAgainNextScan) {
  HeapTable<V4> t(256);
  const Millis now = 5'000'000;
  std::set<Posted> expected;
  for (std::uint32_t i = 0; i < 40; ++i) {
    const Handle h = add(t.table, i, ct_look(CtState::Close), now - 20'000);
    expected.insert({7, h, version_of(t.table, h), 4});
  }
  for (std::uint32_t i = 40; i < 60; ++i) add(t.table, i, ct_look(CtState::Established), now - 20'000);
  const std::vector<WorkerTables> workers = {{7, &t.table, nullptr}};
  Ager ager(kTimeouts, 2, 16);

  Collector full;
  full.accept_left = 15;  // the ring takes 15, then is full
  const ScanStats s1 = ager.scan(workers, now, full.one());
  EXPECT_EQ(s1.expired, 40u);
  EXPECT_EQ(s1.requests_posted, 15u);
  EXPECT_EQ(s1.requests_dropped_ring_full, 25u);
  EXPECT_EQ(full.all.size(), 15u);

  // Nothing is remembered: the next scan finds all of them again.
  Collector c;
  const ScanStats s2 = ager.scan(workers, now, c.one());
  EXPECT_EQ(s2.requests_posted, 40u);
  EXPECT_EQ(c.set(), expected);
  EXPECT_EQ(ager.stats().requests_posted, 55u);
  EXPECT_EQ(ager.stats().requests_dropped_ring_full, 25u);
}

TEST(AgerPost, BurstPosterGetsBatchesOfOneWorkerAndPartialTakesCount) {
  HeapTable<V4> a(512), b(512);
  HeapTable<V6> b6(128);
  const Millis now = 5'000'000;
  std::map<std::uint32_t, std::set<Posted>> expected;
  std::uint32_t k = 0;
  auto fill = [&](auto& table, std::uint32_t worker, int family, std::uint32_t n) {
    for (std::uint32_t i = 0; i < n; ++i) {
      const Handle h = add(table, ++k, ct_look(CtState::TimeWait), now - 300'000);
      expected[worker].insert({worker, h, version_of(table, h), family});
    }
  };
  fill(a.table, 0, 4, 300);
  fill(b.table, 1, 4, 200);
  fill(b6.table, 1, 6, 50);
  const std::vector<WorkerTables> workers = {{0, &a.table, nullptr}, {1, &b.table, &b6.table}};

  std::map<std::uint32_t, std::set<Posted>> got;
  unsigned calls = 0;
  std::uint64_t offered = 0;
  Ager ager(kTimeouts, 2, 128);
  // Takes half of every burst (rounded up), as a nearly full ring would.
  const ScanStats s = ager.scan(workers, now, ctlb::control::PostBurst([&](std::uint32_t w, const ExpiryRequest* r, unsigned n) {
    ++calls;
    offered += n;
    EXPECT_GT(n, 0u);
    for (unsigned i = 0; i < n; ++i) got[w].insert(posted(w, r[i]));
    return (n + 1) / 2;
  }));
  EXPECT_EQ(got, expected);  // every request offered once, to its own worker
  EXPECT_EQ(offered, 550u);
  EXPECT_LT(calls, 550u / 8);  // in bursts, not one by one
  EXPECT_EQ(s.requests_posted + s.requests_dropped_ring_full, 550u);
  EXPECT_GE(s.requests_posted, 275u);
  EXPECT_LE(s.requests_posted, 275u + calls);

  // A poster claiming more than it was offered cannot inflate the counters.
  const ScanStats s2 = ager.scan(workers, now, ctlb::control::PostBurst([](std::uint32_t, const ExpiryRequest*, unsigned n) {
    return n + 5;
  }));
  EXPECT_EQ(s2.requests_posted, 550u);
  EXPECT_EQ(s2.requests_dropped_ring_full, 0u);
}

// ---- end to end: scan -> request -> worker ---------------------------------------

template <class F>
ExpireStatus apply(FlowTable<F>& t, const Posted& p, Millis worker_now) {
  return t.expire(std::get<1>(p), std::get<2>(p), worker_now, kPolicy);
}

TEST(AgerEndToEnd, WorkerFreesOnlyEntriesUnchangedSinceTheScan) {
  HeapTable<V4> t(256);
  Millis now = 100'000'000;
  const Millis tw = kTimeouts.of(CtState::TimeWait);
  std::vector<Handle> plain;
  for (std::uint32_t i = 0; i < 20; ++i) plain.push_back(add(t.table, i, ct_look(CtState::TimeWait), now - tw - 5));
  const Handle touched = add(t.table, 100, ct_look(CtState::LastAck), now - 40'000);
  const Handle reopened = add(t.table, 101, Look{CtState::TimeWait, EpState::TimeWait, EpState::Closed}, now - tw);
  const Handle recycled = add(t.table, 102, ct_look(CtState::Close), now - 11'000);
  const Handle live = add(t.table, 103, ct_look(CtState::Established), now - 11'000);
  const std::vector<WorkerTables> workers = {{0, &t.table, nullptr}};

  Ager ager(kTimeouts, 2, 32);
  Collector c;
  ager.scan(workers, now, c.one());
  ASSERT_EQ(c.all.size(), 23u);

  // Between the scan and the worker's turn, traffic changes three of them:
  now += 3;
  // a late segment renews the LAST_ACK entry's timeout,
  write_entry(t.table, touched, ct_look(CtState::LastAck), now);
  // a SYN reopens the TIME_WAIT tuple as a new connection (the entry is
  // re-initialised in place, as the tracker does),
  write_entry(t.table, reopened, Look{CtState::SynSent, EpState::SynSent, EpState::Listen}, now);
  // and the CLOSE entry is freed and its handle taken by a new flow.
  t.table.erase(recycled);
  const auto k = key4(999);
  ASSERT_EQ(t.table.insert(k, hash_key(k), now, kPolicy).handle, recycled);
  write_entry(t.table, recycled, ct_look(CtState::SynSent), now);

  std::map<ExpireStatus, int> outcome;
  for (const Posted& p : c.all) ++outcome[apply(t.table, p, now)];
  EXPECT_EQ(outcome[ExpireStatus::Expired], 20);
  EXPECT_EQ(outcome[ExpireStatus::Changed], 3);
  EXPECT_EQ(t.table.stats().expire_done, 20u);
  EXPECT_EQ(t.table.stats().expire_stale, 3u);
  for (Handle h : plain) EXPECT_EQ(t.table.entry(h).status.ct_state, 0u);
  EXPECT_EQ(t.table.entry(reopened).status.ct_state, static_cast<std::uint32_t>(CtState::SynSent));
  EXPECT_EQ(t.table.entry(recycled).key, k);
  EXPECT_EQ(t.table.entry(live).status.ct_state, static_cast<std::uint32_t>(CtState::Established));
  EXPECT_EQ(t.table.size(), 4u);

  // Replaying the same requests frees nothing more.
  for (const Posted& p : c.all) EXPECT_NE(apply(t.table, p, now), ExpireStatus::Expired);
  EXPECT_EQ(t.table.size(), 4u);

  // The next scan finds nothing: the survivors are fresh.
  Collector again;
  const ScanStats s = ager.scan(workers, now, again.one());
  EXPECT_TRUE(again.all.empty());
  EXPECT_EQ(s.entries_in_use, 4u);
}

// The worker judges by its own clock too: a request from a control clock
// that runs ahead is refused, and posted again by a later scan.
TEST(AgerEndToEnd, WorkerClockBehindRefusesThenALaterScanSucceeds) {
  HeapTable<V6> t(64);
  const Millis now = 7'000'000;
  const Handle h = add(t.table, 1, ct_look(CtState::SynRecv), now - kTimeouts.of(CtState::SynRecv));
  const std::vector<WorkerTables> workers = {{0, nullptr, &t.table}};
  Ager ager(kTimeouts, 1);
  Collector c;
  ager.scan(workers, now, c.one());
  ASSERT_EQ(c.all.size(), 1u);
  EXPECT_EQ(apply(t.table, c.all[0], now - 1), ExpireStatus::NotExpired);
  EXPECT_EQ(t.table.entry(h).status.ct_state, static_cast<std::uint32_t>(CtState::SynRecv));
  Collector c2;
  ager.scan(workers, now + 1000, c2.one());
  ASSERT_EQ(c2.all.size(), 1u);
  EXPECT_EQ(apply(t.table, c2.all[0], now + 1000), ExpireStatus::Expired);
  EXPECT_EQ(t.table.size(), 0u);
}

// ---- flows in each state ---------------------------------------------------------------

TEST(AgerStates, CountsBothViewsOfEntriesInUse) {
  HeapTable<V4> t4(256);
  HeapTable<V6> t6(256);
  const Millis now = 9'000'000;
  std::uint32_t k = 0;
  auto put = [&](auto& table, int n, const Look& l) {
    std::vector<Handle> hs;
    for (int i = 0; i < n; ++i) hs.push_back(add(table, ++k, l, now));
    return hs;
  };
  put(t4.table, 5, Look{CtState::Established, EpState::Established, EpState::Established});
  put(t6.table, 2, Look{CtState::Established, EpState::Established, EpState::Established});
  put(t4.table, 3, Look{CtState::FinWait, EpState::FinWait2, EpState::CloseWait});
  put(t6.table, 4, Look{CtState::TimeWait, EpState::TimeWait, EpState::Closed});
  put(t4.table, 1, Look{CtState::TimeWait, EpState::Closed, EpState::TimeWait});
  const auto syn = put(t4.table, 6, Look{CtState::SynSent, EpState::SynSent, EpState::Listen});
  put(t6.table, 2, Look{CtState::SynSent2, EpState::SynSent, EpState::SynSent});
  for (int i = 0; i < 3; ++i) t4.table.erase(syn[i]);  // freed: not counted

  const std::vector<WorkerTables> workers = {{0, &t4.table, &t6.table}};
  Ager ager(kTimeouts, 2, 8);
  Collector c;
  const ScanStats s = ager.scan(workers, now, c.one());
  EXPECT_EQ(s.entries_in_use, 20u);
  const auto& st = ager.stats().states;
  EXPECT_EQ(st.of(CtState::Established), 7u);
  EXPECT_EQ(st.of(CtState::FinWait), 3u);
  EXPECT_EQ(st.of(CtState::TimeWait), 5u);
  EXPECT_EQ(st.of(CtState::SynSent), 3u);
  EXPECT_EQ(st.of(CtState::SynSent2), 2u);
  EXPECT_EQ(st.of(CtState::None), 0u);
  EXPECT_EQ(st.of(EpState::Established, EpState::Established), 7u);
  EXPECT_EQ(st.of(EpState::FinWait2, EpState::CloseWait), 3u);
  EXPECT_EQ(st.of(EpState::TimeWait, EpState::Closed), 4u);
  EXPECT_EQ(st.of(EpState::Closed, EpState::TimeWait), 1u);
  EXPECT_EQ(st.of(EpState::SynSent, EpState::Listen), 3u);
  EXPECT_EQ(st.of(EpState::SynSent, EpState::SynSent), 2u);
  std::uint64_t ct_sum = 0, ep_sum = 0;
  for (auto n : st.ct) ct_sum += n;
  for (const auto& row : st.endpoints)
    for (auto n : row) ep_sum += n;
  EXPECT_EQ(ct_sum, 20u);
  EXPECT_EQ(ep_sum, 20u);
  EXPECT_EQ(st.out_of_range, 0u);
  EXPECT_TRUE(c.all.empty());

  // A gauge: the next scan replaces it.
  t4.table.erase(syn[3]);
  ager.scan(workers, now, c.one());
  EXPECT_EQ(ager.stats().states.of(CtState::SynSent), 2u);
  EXPECT_EQ(ager.stats().entries_in_use, 19u);
}

// ---- threads --------------------------------------------------------------------------

TEST(AgerThreads, OneTwoAndFourThreadsFindTheSameAsABruteForceScan) {
  constexpr std::uint32_t kWorkers = 3;
  std::vector<std::unique_ptr<HeapTable<V4>>> v4;
  std::vector<std::unique_ptr<HeapTable<V6>>> v6;
  std::vector<WorkerTables> workers;
  std::mt19937 rng(12345);
  const Millis now = 2'000'000'000u;
  std::set<Posted> expected;
  std::uint32_t key = 0;
  auto fill = [&](auto& table, std::uint32_t worker, int family) {
    const std::uint32_t n = table.capacity() * 3 / 4;
    std::vector<Handle> handles;
    for (std::uint32_t i = 0; i < n; ++i) {
      Look l;
      l.ct = static_cast<CtState>(1 + rng() % (ctlb::tcp::kCtStateCount - 1));
      l.initiator = static_cast<EpState>(rng() % ctlb::tcp::kEpStateCount);
      l.responder = static_cast<EpState>(rng() % ctlb::tcp::kEpStateCount);
      l.capped = rng() % 8 == 0;
      l.cap = rng() % 3;
      // Idle times around the timeouts: 0 .. 400 s.
      handles.push_back(add(table, ++key, l, now - rng() % 400'000));
    }
    for (std::uint32_t i = 0; i < n / 5; ++i) table.erase(handles[i * 5]);  // holes
    for (Handle h = 0; h < table.capacity(); ++h) {
      const auto& e = table.entry(h);
      if (e.status.ct_state != 0 && kPolicy.expired(e.status, e.last_seen, now))
        expected.insert({worker, h, e.version, family});
    }
  };
  for (std::uint32_t w = 0; w < kWorkers; ++w) {
    v4.push_back(std::make_unique<HeapTable<V4>>(3000 + w * 500));
    v6.push_back(std::make_unique<HeapTable<V6>>(1000 + w * 100));
    fill(v4.back()->table, w, 4);
    fill(v6.back()->table, w, 6);
    workers.push_back({w, &v4.back()->table, &v6.back()->table});
  }
  ASSERT_GT(expected.size(), 1000u);

  std::vector<ScanStats> stats;
  std::vector<std::set<Posted>> found;
  for (unsigned threads : {1u, 2u, 4u}) {
    Ager ager(kTimeouts, threads, 97);
    Collector c;
    stats.push_back(ager.scan(workers, now, c.one()));
    EXPECT_EQ(c.all.size(), c.set().size()) << "no request twice";
    found.push_back(c.set());
  }
  for (std::size_t i = 0; i < found.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(found[i], expected);
    EXPECT_EQ(stats[i].entries_scanned, stats[0].entries_scanned);
    EXPECT_EQ(stats[i].entries_in_use, stats[0].entries_in_use);
    EXPECT_EQ(stats[i].expired, expected.size());
    EXPECT_EQ(stats[i].requests_posted, expected.size());
    EXPECT_EQ(stats[i].lag_ms_max, stats[0].lag_ms_max);
    EXPECT_EQ(stats[i].lag_histogram, stats[0].lag_histogram);
    EXPECT_EQ(stats[i].states.ct, stats[0].states.ct);
    EXPECT_EQ(stats[i].states.endpoints, stats[0].states.endpoints);
    EXPECT_EQ(stats[i].read_failed, 0u);
  }
}

// ---- the seqlock ------------------------------------------------------------------------

// An entry the owner is in the middle of writing (odd version) is skipped and
// counted, never judged on half-written fields.
TEST(AgerSeqlock, EntryBeingWrittenIsSkippedAndCounted) {
  HeapTable<V4> t(64);
  const Millis now = 9'000'000;
  const Handle h = add(t.table, 1, ct_look(CtState::Established), now);
  auto& e = t.table.entry(h);
  FlowTable<V4>::write_begin(e);
  e.status.ct_state = static_cast<std::uint32_t>(CtState::Close);  // half written: looks long expired
  e.last_seen = now - kDay;
  const std::vector<WorkerTables> workers = {{0, &t.table, nullptr}};
  Ager ager(kTimeouts, 1);
  Collector c;
  const ScanStats s = ager.scan(workers, now, c.one());
  EXPECT_TRUE(c.all.empty());
  EXPECT_EQ(s.read_failed, 1u);
  EXPECT_EQ(s.entries_in_use, 0u);
  FlowTable<V4>::write_end(e);
  const ScanStats s2 = ager.scan(workers, now, c.one());
  EXPECT_EQ(s2.read_failed, 0u);
  EXPECT_EQ(c.set(), (std::set<Posted>{{0, h, version_of(t.table, h), 4}}));
}

// The owner flips entries between two states, neither of them expired:
//   A: TIME_WAIT seen just now;  B: ESTABLISHED seen a day ago.
// Each flip passes through a mix that looks expired (TIME_WAIT seen a day
// ago), so a torn read would post a request, and through a connection state
// that does not match the endpoint states, which the state counts would
// show. (Without the seqlock, i.e. copying the live entry, this test fails
// in most runs.) Meanwhile other entries stay
// expired and must be posted by every scan.
template <class F>
void concurrent_writer_never_torn() {
  constexpr std::uint32_t kFlipping = 512;
  constexpr std::uint32_t kStale = 64;
  constexpr int kScans = 3000;
  HeapTable<F> t(1024);
  const Millis now = 500'000'000;
  const Look a{CtState::TimeWait, EpState::TimeWait, EpState::Closed};
  const Look b{CtState::Established, EpState::Established, EpState::Established};
  std::vector<Handle> flipping;
  std::set<Handle> flipping_set;
  for (std::uint32_t i = 0; i < kFlipping; ++i) flipping.push_back(add(t.table, i, a, now));
  flipping_set.insert(flipping.begin(), flipping.end());
  std::set<Handle> stale;
  const Look closed{CtState::Close, EpState::Closed, EpState::Closed};
  for (std::uint32_t i = 0; i < kStale; ++i) stale.insert(add(t.table, 10'000 + i, closed, now - kDay));

  std::atomic<bool> stop{false};
  std::atomic<bool> started{false};
  std::atomic<std::uint64_t> flips{0};
  std::thread writer([&] {
    bool to_b = true;
    std::uint64_t n = 0;
    started.store(true, std::memory_order_release);
    while (!stop.load(std::memory_order_relaxed)) {
      for (Handle h : flipping) {
        auto& e = t.table.entry(h);
        FlowTable<F>::write_begin(e);
        // Store order chosen so that the intermediate looks expired.
        if (to_b) {
          e.last_seen = now - kDay;
          std::atomic_signal_fence(std::memory_order_seq_cst);
          e.status.ct_state = static_cast<std::uint32_t>(b.ct);
          std::atomic_signal_fence(std::memory_order_seq_cst);
          e.status.initiator = static_cast<std::uint32_t>(b.initiator);
          e.status.responder = static_cast<std::uint32_t>(b.responder);
        } else {
          e.status.ct_state = static_cast<std::uint32_t>(a.ct);
          std::atomic_signal_fence(std::memory_order_seq_cst);
          e.status.initiator = static_cast<std::uint32_t>(a.initiator);
          e.status.responder = static_cast<std::uint32_t>(a.responder);
          std::atomic_signal_fence(std::memory_order_seq_cst);
          e.last_seen = now;
        }
        FlowTable<F>::write_end(e);
        ++n;
      }
      to_b = !to_b;
      flips.store(n, std::memory_order_relaxed);
    }
  });
  while (!started.load(std::memory_order_acquire)) {
  }

  const std::vector<WorkerTables> workers = {tables_of(0, t.table)};
  Ager ager(kTimeouts, 2, 64);
  std::uint64_t torn = 0, stale_missed = 0, miscounted = 0, read_failed = 0;
  for (int i = 0; i < kScans; ++i) {
    std::set<Handle> got;
    const ScanStats s = ager.scan(workers, now, ctlb::control::PostOne([&](std::uint32_t, const ExpiryRequest& r) {
      if (flipping_set.count(r.handle)) ++torn;
      got.insert(r.handle);
      return true;
    }));
    if (got != stale) ++stale_missed;
    // Every flipping entry is either read whole (A or B) or skipped.
    const auto& st = s.states;
    if (st.of(CtState::TimeWait) + st.of(CtState::Established) + s.read_failed != kFlipping ||
        st.of(EpState::TimeWait, EpState::Closed) != st.of(CtState::TimeWait) ||
        st.of(EpState::Established, EpState::Established) != st.of(CtState::Established) ||
        s.entries_in_use + s.read_failed != kFlipping + kStale)
      ++miscounted;
    read_failed += s.read_failed;
  }
  stop.store(true);
  writer.join();
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(stale_missed, 0u);
  EXPECT_EQ(miscounted, 0u);
  EXPECT_GT(flips.load(), 0u);
  ::testing::Test::RecordProperty("flips", static_cast<int>(std::min<std::uint64_t>(flips.load(), INT32_MAX)));
  ::testing::Test::RecordProperty("read_failed", static_cast<int>(read_failed));
}

TEST(AgerSeqlock, ConcurrentWriterNeverShowsATornEntryV4) { concurrent_writer_never_torn<V4>(); }
TEST(AgerSeqlock, ConcurrentWriterNeverShowsATornEntryV6) { concurrent_writer_never_torn<V6>(); }

// ---- odds and ends ----------------------------------------------------------------------

TEST(AgerMisc, TrackerClockIsTheWorkersFormula) {
  const std::uint64_t hz = 2'100'000'000;
  const std::uint64_t start = 123'456'789'000;
  EXPECT_EQ(ctlb::control::tracker_clock_ms(start, start, hz), 0u);
  EXPECT_EQ(ctlb::control::tracker_clock_ms(start + hz * 5 / 2, start, hz), 2500u);
  EXPECT_EQ(ctlb::control::tracker_clock_ms(start + hz - 1, start, hz), 999u);
}

TEST(AgerMisc, LagBuckets) {
  using ctlb::control::lag_bucket;
  EXPECT_EQ(lag_bucket(0), 0u);
  EXPECT_EQ(lag_bucket(999), 0u);
  EXPECT_EQ(lag_bucket(1000), 1u);
  EXPECT_EQ(lag_bucket(4999), 2u);
  EXPECT_EQ(lag_bucket(9999), 3u);
  EXPECT_EQ(lag_bucket(10000), 4u);
  EXPECT_EQ(lag_bucket(0xffffffffu), 4u);
}

TEST(AgerMisc, RejectsZeroThreadsAndEmptySlices) {
  EXPECT_THROW(Ager(kTimeouts, 0), std::invalid_argument);
  EXPECT_THROW(Ager(kTimeouts, 1, 0), std::invalid_argument);
}

TEST(AgerMisc, NoTablesNoWork) {
  Ager ager(kTimeouts, 2);
  Collector c;
  const ScanStats s = ager.scan(std::vector<WorkerTables>{{0, nullptr, nullptr}}, 1000, c.one());
  EXPECT_EQ(s.entries_scanned, 0u);
  EXPECT_EQ(ager.stats().scans, 1u);
}

}  // namespace
