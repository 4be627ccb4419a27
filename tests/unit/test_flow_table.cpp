// flow::FlowTable: index, handles, free list, making room, expiry requests,
// attach, memory budget and the seqlock.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <pthread.h>
#include <sched.h>
#include <vector>

#include "dataplane/flow/flow_table.hpp"
#include "table_util.hpp"

namespace {

using namespace ctlb::flow;
using ctlb::Millis;
using ctlb::tcp::CtState;
using ctlb_test::HeapTable;

const ctlb::tcp::Timeouts kTimeouts = ctlb::tcp::default_timeouts();
const EvictionPolicy kPolicy{&kTimeouts};

using ctlb_test::key4;
using ctlb_test::key6;

template <class F>
void set_state(FlowTable<F>& t, Handle h, CtState s, bool assured, Millis last_seen) {
  auto& e = t.entry(h);
  FlowTable<F>::write_begin(e);
  e.status.ct_state = static_cast<std::uint32_t>(s);
  e.status.assured = assured ? 1 : 0;
  e.last_seen = last_seen;
  FlowTable<F>::write_end(e);
}

template <class F>
Handle insert_live(FlowTable<F>& t, const typename F::Key& k, Millis now = 1000) {
  const InsertResult r = t.insert(k, hash_key(k), now, kPolicy);
  if (r.handle != kNoHandle) set_state(t, r.handle, CtState::Established, true, now);
  return r.handle;
}

template <class F>
std::uint32_t version_of(const FlowTable<F>& t, Handle h) {
  typename F::Entry e;
  Cold c;
  EXPECT_TRUE(t.read(h, e, c));
  return e.version;
}

// ---- layout and memory budget -----------------------------------------------

TEST(FlowTableLayout, EntrySizes) {
  EXPECT_EQ(sizeof(EntryV4), 64u);
  EXPECT_EQ(alignof(EntryV4), 64u);
  EXPECT_EQ(sizeof(EntryV6), 128u);
  EXPECT_EQ(sizeof(Cold), 16u);
  EXPECT_EQ(sizeof(Bucket), 64u);
}

TEST(FlowTableLayout, AtMost96BytesPerIpv4Flow) {
  // Product requirement: <= 96 bytes per IPv4 flow, index included. The
  // table header (one fixed block per table) is not per flow.
  for (std::uint32_t cap : {1u << 10, 1u << 16, 1u << 20, 1u << 23}) {
    const std::size_t bytes = FlowTable<V4>::bytes_needed(cap);
    EXPECT_LE(bytes - sizeof(TableHeader), 96ull * cap) << cap;
    EXPECT_LE(bytes / cap, 96u) << cap;
  }
}

// The partial-key cuckoo needs a power-of-two bucket count, so for other
// capacities the index rounds up: at most 32 bytes per flow instead of 16.
// The configuration only accepts power-of-two capacities (96 bytes per flow,
// above); the table itself takes any capacity within this bound.
TEST(FlowTableLayout, AnyCapacityCostsAtMost112BytesPerIpv4Flow) {
  for (std::uint32_t cap : {1'000'000u, 3'000'000u, (1u << 20) + 1}) {
    const std::size_t bytes = FlowTable<V4>::bytes_needed(cap);
    EXPECT_LE(bytes - sizeof(TableHeader), 112ull * cap) << cap << ": " << double(bytes) / cap << " bytes per flow";
  }
}

TEST(FlowTableLayout, RegionsAreCacheLineAligned) {
  HeapTable<V4> t4(1000);
  const TableHeader& h = t4.table.header();
  EXPECT_EQ(h.buckets_offset % 64, 0u);
  EXPECT_EQ(h.entries_offset % 64, 0u);
  EXPECT_EQ(h.cold_offset % 16, 0u);
  EXPECT_EQ(h.total_bytes, t4.bytes);
  EXPECT_LE(h.cold_offset + 16ull * 1000, h.total_bytes);
  EXPECT_EQ(t4.table.bucket_count() & (t4.table.bucket_count() - 1), 0u);
  EXPECT_GE(t4.table.bucket_count() * kSlotsPerBucket, 2u * 1000);
}

// ---- basics -----------------------------------------------------------------

TEST(FlowTableBasics, InsertLookupErase) {
  HeapTable<V4> t(1024);
  FlowTable<V4>& tb = t.table;
  ASSERT_TRUE(tb.valid());
  EXPECT_EQ(tb.capacity(), 1024u);
  EXPECT_EQ(tb.size(), 0u);
  const KeyV4 k = key4(1), other = key4(2);
  EXPECT_EQ(tb.lookup(k, hash_key(k)), kNoHandle);

  const InsertResult r = tb.insert(k, hash_key(k), 5, kPolicy);
  ASSERT_EQ(r.status, InsertStatus::Inserted);
  ASSERT_LT(r.handle, 1024u);
  EXPECT_EQ(tb.size(), 1u);
  EXPECT_EQ(tb.lookup(k, hash_key(k)), r.handle);
  EXPECT_EQ(tb.lookup(other, hash_key(other)), kNoHandle);
  // A new entry: the key, everything else zero, an even version.
  const EntryV4& e = tb.entry(r.handle);
  EXPECT_EQ(e.key, k);
  EXPECT_EQ(e.status.ct_state, 0u);
  EXPECT_EQ(e.last_seen, 0u);
  EXPECT_EQ(e.version % 2, 0u);
  EXPECT_EQ(tb.cold(r.handle).last_seq, 0u);

  // Same signature and bucket, different key: must not match.
  KeyV4 same_hash_other_key = k;
  same_hash_other_key.port[1] = 444;
  EXPECT_EQ(tb.lookup(same_hash_other_key, hash_key(k)), kNoHandle);

  tb.erase(r.handle);
  EXPECT_EQ(tb.size(), 0u);
  EXPECT_EQ(tb.lookup(k, hash_key(k)), kNoHandle);
  EXPECT_EQ(tb.entry(r.handle).status.ct_state, 0u);
  EXPECT_EQ(tb.stats().inserts, 1u);
  EXPECT_EQ(tb.stats().erases, 1u);
}

TEST(FlowTableBasics, LookupBulkAgreesWithLookup) {
  HeapTable<V4> t(2048);
  FlowTable<V4>& tb = t.table;
  for (std::uint32_t i = 0; i < 1500; i += 2) ASSERT_NE(insert_live(tb, key4(i)), kNoHandle);
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    const unsigned n = 1 + rng() % 32;
    KeyV4 keys[32];
    std::uint32_t hashes[32];
    Handle out[32];
    for (unsigned i = 0; i < n; ++i) {
      keys[i] = key4(rng() % 3000);  // even < 1500: hits; the rest misses
      hashes[i] = hash_key(keys[i]);
      out[i] = 0xdead;
    }
    tb.lookup_bulk(keys, hashes, n, out);
    for (unsigned i = 0; i < n; ++i) {
      ASSERT_EQ(out[i], tb.lookup(keys[i], hashes[i])) << round << "/" << i;
      const std::uint32_t id = keys[i].port[0];
      if (id < 1500 && id % 2 == 0) {
        ASSERT_NE(out[i], kNoHandle);
        ASSERT_EQ(tb.entry(out[i]).key, keys[i]);
      } else {
        ASSERT_EQ(out[i], kNoHandle);
      }
    }
  }
}

template <class F, class KeyFn>
void fill_to_capacity(std::uint32_t cap, KeyFn key) {
  HeapTable<F> t(cap);
  FlowTable<F>& tb = t.table;
  std::vector<Handle> handles(cap);
  std::set<Handle> distinct;
  for (std::uint32_t i = 0; i < cap; ++i) {
    const auto k = key(i);
    const InsertResult r = tb.insert(k, hash_key(k), 1000, kPolicy);
    ASSERT_EQ(r.status, InsertStatus::Inserted) << "key " << i << " of " << cap;
    set_state(tb, r.handle, CtState::Established, true, 1000);
    handles[i] = r.handle;
    distinct.insert(r.handle);
  }
  EXPECT_EQ(tb.size(), cap);
  EXPECT_EQ(distinct.size(), cap);
  EXPECT_GT(tb.stats().cuckoo_moves, 0u) << "the fill should have needed cuckoo moves";
  // Every key findable, by the handle it got at insert time (cuckoo moves
  // relocate index slots, never entries).
  for (std::uint32_t i = 0; i < cap; ++i) {
    const auto k = key(i);
    ASSERT_EQ(tb.lookup(k, hash_key(k)), handles[i]) << i;
  }
  // Full, nothing evictable: refused and counted.
  const auto extra = key(cap + 7);
  const InsertResult r = tb.insert(extra, hash_key(extra), 1000, kPolicy);
  EXPECT_EQ(r.status, InsertStatus::Refused);
  EXPECT_EQ(r.handle, kNoHandle);
  EXPECT_EQ(tb.stats().insert_refused, 1u);
  EXPECT_EQ(tb.size(), cap);

  // Erase everything in random order; every erase must find its slot.
  std::vector<std::uint32_t> order(cap);
  for (std::uint32_t i = 0; i < cap; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(cap));
  for (std::uint32_t n = 0; n < cap; ++n) {
    const std::uint32_t i = order[n];
    tb.erase(handles[i]);
    const auto k = key(i);
    ASSERT_EQ(tb.lookup(k, hash_key(k)), kNoHandle);
    if (n % 997 == 0 && n + 1 < cap) {
      // A key not erased yet is still there.
      const std::uint32_t j = order[n + 1];
      ASSERT_EQ(tb.lookup(key(j), hash_key(key(j))), handles[j]);
    }
  }
  EXPECT_EQ(tb.size(), 0u);
  // No stale index slot remains: a full refill succeeds.
  for (std::uint32_t i = 0; i < cap; ++i) {
    const auto k = key(i + cap);
    ASSERT_EQ(tb.insert(k, hash_key(k), 1000, kPolicy).status, InsertStatus::Inserted) << i;
  }
}

TEST(FlowTableFill, Ipv4Capacity4096) {
  fill_to_capacity<V4>(4096, [](std::uint32_t i) { return key4(i, 0x5a5a); });
}

TEST(FlowTableFill, Ipv4Capacity65536RandomKeys) {
  std::mt19937 rng(11);
  std::vector<KeyV4> keys;
  std::set<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>> seen;
  while (keys.size() < 2 * 65536 + 8) {
    const auto a0 = static_cast<std::uint32_t>(rng());
    const auto a1 = static_cast<std::uint32_t>(rng());
    const auto p = static_cast<std::uint32_t>(rng());
    KeyV4 k{{a0, a1}, {static_cast<std::uint16_t>(p), static_cast<std::uint16_t>(p >> 16)}};
    if (seen.insert({k.addr[0], k.addr[1], (std::uint32_t(k.port[0]) << 16) | k.port[1]}).second) keys.push_back(k);
  }
  fill_to_capacity<V4>(65536, [&](std::uint32_t i) { return keys[i]; });
}

TEST(FlowTableFill, Ipv6Capacity4096) { fill_to_capacity<V6>(4096, key6); }

TEST(FlowTableBasics, NonPowerOfTwoCapacityUsesEveryHandle) {
  fill_to_capacity<V4>(1000, [](std::uint32_t i) { return key4(i, 77); });
}

TEST(FlowTableBasics, FreeListReusesErasedHandle) {
  HeapTable<V4> t(64);
  FlowTable<V4>& tb = t.table;
  const Handle a = insert_live(tb, key4(1));
  const Handle b = insert_live(tb, key4(2));
  const Handle c = insert_live(tb, key4(3));
  ASSERT_NE(a, b);
  ASSERT_NE(b, c);
  tb.erase(b);
  EXPECT_EQ(tb.size(), 2u);
  const Handle d = insert_live(tb, key4(4));
  EXPECT_EQ(d, b);
  EXPECT_EQ(tb.lookup(key4(4), hash_key(key4(4))), b);
  EXPECT_EQ(tb.lookup(key4(2), hash_key(key4(2))), kNoHandle);
  EXPECT_EQ(tb.lookup(key4(1), hash_key(key4(1))), a);
  EXPECT_EQ(tb.lookup(key4(3), hash_key(key4(3))), c);

  // Full table: an erase makes exactly that handle available again.
  for (std::uint32_t i = 10; tb.size() < tb.capacity(); ++i) ASSERT_NE(insert_live(tb, key4(i)), kNoHandle);
  EXPECT_EQ(tb.insert(key4(999), hash_key(key4(999)), 1000, kPolicy).status, InsertStatus::Refused);
  tb.erase(c);
  const InsertResult r = tb.insert(key4(999), hash_key(key4(999)), 1000, kPolicy);
  EXPECT_EQ(r.status, InsertStatus::Inserted);
  EXPECT_EQ(r.handle, c);
}

TEST(FlowTableBasics, EraseBumpsVersionAndNewEntryIsZeroed) {
  HeapTable<V4> t(16);
  FlowTable<V4>& tb = t.table;
  const Handle h = insert_live(tb, key4(1));
  tb.cold(h).last_seq = 1234;
  tb.entry(h).track.end[0] = 99;
  const std::uint32_t v0 = version_of(tb, h);
  tb.erase(h);
  const std::uint32_t v1 = tb.entry(h).version;
  EXPECT_NE(v0, v1);
  EXPECT_EQ(v1 % 2, 0u);
  const Handle h2 = insert_live(tb, key4(2));
  ASSERT_EQ(h2, h);
  EXPECT_EQ(tb.cold(h).last_seq, 0u);
  EXPECT_EQ(tb.entry(h).track.end[0], 0u);
  EXPECT_NE(tb.entry(h).version, v1);
}

// ---- making room when full --------------------------------------------------

// Capacity 8 has 2 buckets, and every key's two candidate buckets are those
// two: once the 8 handles are used, every entry is a candidate victim.
struct Full8 {
  HeapTable<V4> t{8};
  std::vector<Handle> h;
  Full8() {
    EXPECT_EQ(t.table.bucket_count(), 2u);
    for (std::uint32_t i = 0; i < 8; ++i) {
      const KeyV4 k = key4(100 + i);
      h.push_back(t.table.insert(k, hash_key(k), 0, kPolicy).handle);
      EXPECT_NE(h.back(), kNoHandle);
    }
  }
  FlowTable<V4>& tb() { return t.table; }
  bool present(std::uint32_t i) { return tb().lookup(key4(100 + i), hash_key(key4(100 + i))) == h[i]; }
};

TEST(FlowTableFull, ExpiredEntryReclaimedBeforeLiveOneEvicted) {
  Full8 f;
  const Millis now = 1'000'000;
  for (int i = 0; i < 8; ++i) set_state(f.tb(), f.h[i], CtState::Established, true, now);
  // A live CLOSE (the best eviction candidate) and an expired TIME_WAIT.
  set_state(f.tb(), f.h[2], CtState::Close, false, now - 1000);
  set_state(f.tb(), f.h[5], CtState::TimeWait, false, now - 240'000);  // exactly 2 x MSL old
  const std::uint32_t scanned_version = version_of(f.tb(), f.h[5]);

  const KeyV4 k = key4(1);
  InsertResult r = f.tb().insert(k, hash_key(k), now, kPolicy);
  EXPECT_EQ(r.status, InsertStatus::ReclaimedExpired);
  EXPECT_EQ(r.handle, f.h[5]);
  EXPECT_EQ(r.victim.ct_state, static_cast<std::uint32_t>(CtState::TimeWait));
  EXPECT_EQ(f.tb().stats().reclaimed_expired, 1u);
  EXPECT_EQ(f.tb().stats().evicted, 0u);
  EXPECT_FALSE(f.present(5));
  EXPECT_TRUE(f.present(2));
  EXPECT_EQ(f.tb().lookup(k, hash_key(k)), f.h[5]);
  EXPECT_EQ(f.tb().size(), 8u);
  // An expiry request for the old flow, scanned before the reuse, must fail.
  set_state(f.tb(), r.handle, CtState::TimeWait, false, 0);
  EXPECT_EQ(f.tb().expire(r.handle, scanned_version, now, kPolicy), ExpireStatus::Changed);
  set_state(f.tb(), r.handle, CtState::Established, true, now);

  // Nothing expired any more: the live CLOSE goes.
  const KeyV4 k2 = key4(2);
  r = f.tb().insert(k2, hash_key(k2), now, kPolicy);
  EXPECT_EQ(r.status, InsertStatus::Evicted);
  EXPECT_EQ(r.handle, f.h[2]);
  EXPECT_EQ(r.victim.ct_state, static_cast<std::uint32_t>(CtState::Close));
  EXPECT_EQ(f.tb().stats().evicted, 1u);
  EXPECT_FALSE(f.present(2));
  EXPECT_EQ(f.tb().lookup(k2, hash_key(k2)), f.h[2]);
}

TEST(FlowTableFull, OldestExpiredReclaimedFirst) {
  Full8 f;
  const Millis now = 10'000'000;
  for (int i = 0; i < 8; ++i) set_state(f.tb(), f.h[i], CtState::Close, false, now - 20'000 - 1000 * i);
  const KeyV4 k = key4(1);
  const InsertResult r = f.tb().insert(k, hash_key(k), now, kPolicy);
  EXPECT_EQ(r.status, InsertStatus::ReclaimedExpired);
  EXPECT_EQ(r.handle, f.h[7]);
}

TEST(FlowTableFull, EvictionOrder) {
  Full8 f;
  const Millis now = 50'000;
  // Every entry fresh (nothing expired).
  set_state(f.tb(), f.h[0], CtState::Established, true, now);
  set_state(f.tb(), f.h[1], CtState::SynRecv, false, now);
  set_state(f.tb(), f.h[2], CtState::Established, false, now);  // not assured: evictable last
  set_state(f.tb(), f.h[3], CtState::Close, false, now);
  set_state(f.tb(), f.h[4], CtState::SynSent, false, now - 10);  // half-open: the older first
  set_state(f.tb(), f.h[5], CtState::TimeWait, false, now);
  set_state(f.tb(), f.h[6], CtState::FinWait, false, now);
  set_state(f.tb(), f.h[7], CtState::Established, true, now);

  // Half-open first (a SYN flood's entries), then closed, closing, unassured.
  const int expected_order[] = {4, 1, 3, 5, 6, 2};
  std::uint32_t next_key = 1;
  for (int idx : expected_order) {
    const KeyV4 k = key4(next_key++);
    const InsertResult r = f.tb().insert(k, hash_key(k), now, kPolicy);
    ASSERT_EQ(r.status, InsertStatus::Evicted) << "expected to evict entry " << idx;
    EXPECT_EQ(r.handle, f.h[idx]) << "expected to evict entry " << idx;
    EXPECT_FALSE(f.present(static_cast<std::uint32_t>(idx)));
    set_state(f.tb(), r.handle, CtState::Established, true, now);
  }
  EXPECT_EQ(f.tb().stats().evicted, 6u);
  EXPECT_TRUE(f.present(0));
  EXPECT_TRUE(f.present(7));
  // Only assured ESTABLISHED left: refused, counted, nothing changed.
  const KeyV4 k = key4(next_key);
  const InsertResult r = f.tb().insert(k, hash_key(k), now, kPolicy);
  EXPECT_EQ(r.status, InsertStatus::Refused);
  EXPECT_EQ(r.handle, kNoHandle);
  EXPECT_EQ(f.tb().stats().insert_refused, 1u);
  EXPECT_EQ(f.tb().size(), 8u);
  EXPECT_TRUE(f.present(0));
  EXPECT_EQ(f.tb().lookup(k, hash_key(k)), kNoHandle);
}

TEST(FlowTableFull, EvictionScores) {
  using S = ctlb::tcp::Status;
  auto score = [](CtState s, bool assured) {
    S st{};
    st.ct_state = static_cast<std::uint32_t>(s);
    st.assured = assured;
    return EvictionPolicy::score(st);
  };
  EXPECT_EQ(score(CtState::SynSent2, false), score(CtState::SynSent, false));
  EXPECT_EQ(score(CtState::SynRecv, false), score(CtState::SynSent, false));
  EXPECT_GT(score(CtState::SynRecv, false), score(CtState::Close, false));
  EXPECT_GT(score(CtState::Close, false), score(CtState::TimeWait, false));
  EXPECT_GT(score(CtState::TimeWait, false), score(CtState::LastAck, false));
  EXPECT_EQ(score(CtState::LastAck, false), score(CtState::FinWait, false));
  EXPECT_EQ(score(CtState::CloseWait, false), score(CtState::FinWait, false));
  EXPECT_GT(score(CtState::FinWait, false), score(CtState::Established, false));
  // An assured connection back in SYN_RECV is re-synchronising, not a flood's.
  EXPECT_LT(score(CtState::SynRecv, true), score(CtState::FinWait, false));
  EXPECT_GE(score(CtState::SynRecv, true), 0);
  EXPECT_GE(score(CtState::Established, false), 0);
  EXPECT_LT(score(CtState::Established, true), 0);
}

TEST(FlowTableFull, SameScoreLongestIdleFirst) {
  Full8 f;
  const Millis now = 100'000;
  for (int i = 0; i < 8; ++i) set_state(f.tb(), f.h[i], CtState::Established, true, now);
  set_state(f.tb(), f.h[1], CtState::TimeWait, false, now - 10);
  set_state(f.tb(), f.h[4], CtState::TimeWait, false, now - 5000);
  set_state(f.tb(), f.h[6], CtState::TimeWait, false, now - 20);
  const InsertResult r = f.tb().insert(key4(1), hash_key(key4(1)), now, kPolicy);
  EXPECT_EQ(r.status, InsertStatus::Evicted);
  EXPECT_EQ(r.handle, f.h[4]);
}

// ---- expiry requests --------------------------------------------------------

TEST(FlowTableExpire, RefusesChangedOrLiveFreesExpired) {
  HeapTable<V4> t(64);
  FlowTable<V4>& tb = t.table;
  const KeyV4 k = key4(9);
  const Handle h = tb.insert(k, hash_key(k), 0, kPolicy).handle;
  set_state(tb, h, CtState::Close, false, 1000);  // CLOSE: 10 s
  std::uint32_t v = version_of(tb, h);

  EXPECT_EQ(tb.expire(h, v, 10'999, kPolicy), ExpireStatus::NotExpired);
  EXPECT_EQ(tb.stats().expire_stale, 1u);
  EXPECT_EQ(tb.size(), 1u);

  // Written after the scan (a packet renewed it): the old version is stale,
  // even though by now the entry would be expired.
  set_state(tb, h, CtState::Close, false, 2000);
  EXPECT_EQ(tb.expire(h, v, 50'000, kPolicy), ExpireStatus::Changed);
  EXPECT_EQ(tb.stats().expire_stale, 2u);
  EXPECT_EQ(tb.lookup(k, hash_key(k)), h);

  v = version_of(tb, h);
  EXPECT_EQ(tb.expire(h, v, 12'000, kPolicy), ExpireStatus::Expired);
  EXPECT_EQ(tb.stats().expire_done, 1u);
  EXPECT_EQ(tb.stats().expire_stale, 2u);
  EXPECT_EQ(tb.stats().erases, 1u);
  EXPECT_EQ(tb.size(), 0u);
  EXPECT_EQ(tb.lookup(k, hash_key(k)), kNoHandle);

  // Again: nothing left to free.
  EXPECT_EQ(tb.expire(h, v, 12'000, kPolicy), ExpireStatus::Free);
  EXPECT_EQ(tb.expire(tb.capacity(), 0, 12'000, kPolicy), ExpireStatus::BadHandle);
  EXPECT_EQ(tb.stats().expire_done, 1u);
  EXPECT_EQ(tb.size(), 0u);
}

TEST(FlowTableExpire, ClockWrapsAround) {
  HeapTable<V4> t(16);
  FlowTable<V4>& tb = t.table;
  const Handle h = insert_live(tb, key4(1));
  set_state(tb, h, CtState::Close, false, 0xffffff00u);
  const std::uint32_t v = version_of(tb, h);
  EXPECT_EQ(tb.expire(h, v, 0x00000100u, kPolicy), ExpireStatus::NotExpired);  // 512 ms later
  EXPECT_EQ(tb.expire(h, v, 0xffffff00u + 10'000u, kPolicy), ExpireStatus::Expired);
}

// ---- attach -----------------------------------------------------------------

TEST(FlowTableAttach, SeesTheSameEntries) {
  HeapTable<V4> t(256);
  FlowTable<V4>& tb = t.table;
  std::vector<Handle> hs;
  for (std::uint32_t i = 0; i < 100; ++i) hs.push_back(insert_live(tb, key4(i)));
  FlowTable<V4> other = FlowTable<V4>::attach(t.mem.get());
  ASSERT_TRUE(other.valid());
  EXPECT_EQ(other.capacity(), 256u);
  EXPECT_EQ(other.size(), 100u);
  for (std::uint32_t i = 0; i < 100; ++i) EXPECT_EQ(other.lookup(key4(i), hash_key(key4(i))), hs[i]);
  // Writes through one are seen through the other.
  const Handle h = other.insert(key4(500), hash_key(key4(500)), 0, kPolicy).handle;
  EXPECT_EQ(tb.lookup(key4(500), hash_key(key4(500))), h);
  EXPECT_EQ(tb.size(), 101u);
}

TEST(FlowTableAttach, RejectsGarbageAndOtherLayouts) {
  const std::size_t bytes = FlowTable<V4>::bytes_needed(64);
  ctlb_test::Region garbage = ctlb_test::aligned_region(bytes);
  std::memset(garbage.get(), 0xA5, bytes);
  EXPECT_FALSE(FlowTable<V4>::attach(garbage.get()).valid());
  std::memset(garbage.get(), 0, bytes);
  EXPECT_FALSE(FlowTable<V4>::attach(garbage.get()).valid());

  HeapTable<V4> t4(64);
  EXPECT_FALSE(FlowTable<V6>::attach(t4.mem.get()).valid());  // wrong family
  HeapTable<V6> t6(64);
  EXPECT_FALSE(FlowTable<V4>::attach(t6.mem.get()).valid());
  EXPECT_TRUE(FlowTable<V6>::attach(t6.mem.get()).valid());
  t4.table.header().layout_version += 1;
  EXPECT_FALSE(FlowTable<V4>::attach(t4.mem.get()).valid());
  t4.table.header().layout_version -= 1;
  t4.table.header().entry_size = 96;
  EXPECT_FALSE(FlowTable<V4>::attach(t4.mem.get()).valid());
}

// ---- IPv6 -------------------------------------------------------------------

TEST(FlowTableV6, BasicsAndColdInsideEntry) {
  HeapTable<V6> t(128);
  FlowTable<V6>& tb = t.table;
  EXPECT_EQ(tb.header().cold_offset, 0u);
  const KeyV6 a = key6(1), b = key6(2);
  const Handle ha = insert_live(tb, a);
  const Handle hb = insert_live(tb, b);
  ASSERT_NE(ha, kNoHandle);
  ASSERT_NE(hb, kNoHandle);
  EXPECT_EQ(tb.lookup(a, hash_key(a)), ha);
  EXPECT_EQ(tb.lookup(b, hash_key(b)), hb);
  EXPECT_EQ(&tb.cold(ha), &tb.entry(ha).cold);
  KeyV6 c = a;
  c.addr[1][3] ^= 1;
  EXPECT_EQ(tb.lookup(c, hash_key(c)), kNoHandle);
  tb.erase(ha);
  EXPECT_EQ(tb.lookup(a, hash_key(a)), kNoHandle);
  EXPECT_EQ(tb.lookup(b, hash_key(b)), hb);
  KeyV6 keys[2] = {a, b};
  std::uint32_t hashes[2] = {hash_key(a), hash_key(b)};
  Handle out[2];
  tb.lookup_bulk(keys, hashes, 2, out);
  EXPECT_EQ(out[0], kNoHandle);
  EXPECT_EQ(out[1], hb);
}

// ---- seqlock ----------------------------------------------------------------

TEST(FlowTableSeqlock, ReadFailsWhileWriting) {
  HeapTable<V4> t(16);
  FlowTable<V4>& tb = t.table;
  const Handle h = insert_live(tb, key4(1));
  EntryV4 e;
  Cold c;
  FlowTable<V4>::write_begin(tb.entry(h));
  EXPECT_EQ(tb.entry(h).version % 2, 1u);
  EXPECT_FALSE(tb.read(h, e, c, 8));
  tb.entry(h).last_seen = 4242;
  tb.cold(h).last_ack = 77;
  FlowTable<V4>::write_end(tb.entry(h));
  ASSERT_TRUE(tb.read(h, e, c));
  EXPECT_EQ(e.version, tb.entry(h).version);
  EXPECT_EQ(e.version % 2, 0u);
  EXPECT_EQ(e.last_seen, 4242u);
  EXPECT_EQ(c.last_ack, 77u);
  EXPECT_EQ(e.key, key4(1));
}

// Every field of the entry and its cold record encodes the same n. The cold
// record is written first: a reader copies the entry first, so a copy that
// straddles a write sees a new cold record beside an old entry.
void write_all(EntryV4& e, Cold& c, std::uint32_t n) {
  c.created_s = n;
  c.last_seq = n + 7;
  c.last_ack = ~n;
  c.last_win = static_cast<std::uint16_t>(n >> 3);
  c.backend = static_cast<std::uint16_t>(n >> 5);
  e.last_seen = n;
  e.key.addr[0] = n;
  e.key.addr[1] = ~n;
  e.key.port[0] = static_cast<std::uint16_t>(n);
  e.key.port[1] = static_cast<std::uint16_t>(n >> 16);
  e.status.ct_state = 1 + n % 9;
  e.last_end = n * 3;
  for (int d = 0; d < 2; ++d) {
    e.track.end[d] = n + d;
    e.track.maxend[d] = n + 10 + d;
    e.track.maxwin[d] = n ^ 0x5555u;
    e.track.maxack[d] = n - d;
    e.track.scale[d] = static_cast<std::uint8_t>(n);
    e.track.flags[d] = static_cast<std::uint8_t>(n >> 8);
  }
}

bool consistent(const EntryV4& e, const Cold& c) {
  const std::uint32_t n = e.last_seen;
  bool ok = e.key.addr[0] == n && e.key.addr[1] == ~n && e.key.port[0] == static_cast<std::uint16_t>(n) &&
            e.key.port[1] == static_cast<std::uint16_t>(n >> 16) && e.status.ct_state == 1 + n % 9 &&
            e.last_end == n * 3;
  for (int d = 0; d < 2; ++d) {
    ok = ok && e.track.end[d] == n + d && e.track.maxend[d] == n + 10 + d && e.track.maxwin[d] == (n ^ 0x5555u) &&
         e.track.maxack[d] == n - d && e.track.scale[d] == static_cast<std::uint8_t>(n) &&
         e.track.flags[d] == static_cast<std::uint8_t>(n >> 8);
  }
  return ok && c.created_s == n && c.last_seq == n + 7 && c.last_ack == ~n &&
         c.last_win == static_cast<std::uint16_t>(n >> 3) && c.backend == static_cast<std::uint16_t>(n >> 5);
}

struct RaceResult {
  std::uint64_t reads_ok = 0;
  std::uint64_t reads_failed = 0;
  std::uint64_t torn = 0;
  std::uint64_t values_seen = 0;  // changes of n seen by the reader: proof the threads overlapped
};

// Pins the calling thread to the `which`-th CPU it may run on, so that the
// reader and the writer really run at the same time (a new thread otherwise
// often starts on its creator's CPU and the race is over before it moves).
void pin_self(int which) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  int seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ == which) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pthread_setaffinity_np(pthread_self(), sizeof one, &one);
      return;
    }
  }
}

// A writer thread rewrites `entries` entries while a reader thread copies
// them with read(). With `seqlock` false the writer does not call
// write_begin()/write_end() (a compiler barrier keeps its stores in order and
// per iteration): exactly what it would do if they were no-ops.
//
// The writer makes at least `min_writes` writes and goes on (up to
// `max_writes`) until the reader has seen `want_values` different values,
// and, if `until_torn`, one torn copy: on a loaded machine the two threads
// may overlap late. The reader publishes its counts now and then.
RaceResult race(bool seqlock, int entries, std::uint32_t min_writes, std::uint32_t max_writes,
                std::uint64_t want_values, bool until_torn) {
  HeapTable<V4> t(64);
  FlowTable<V4>& tb = t.table;
  std::vector<Handle> hs;
  for (int i = 0; i < entries; ++i) {
    hs.push_back(insert_live(tb, key4(static_cast<std::uint32_t>(i))));
    FlowTable<V4>::write_begin(tb.entry(hs.back()));
    write_all(tb.entry(hs.back()), tb.cold(hs.back()), 0);
    FlowTable<V4>::write_end(tb.entry(hs.back()));
  }
  std::atomic<bool> reader_ready{false};
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> shared_values{0}, shared_torn{0};
  RaceResult res;
  std::thread reader([&] {
    pin_self(0);
    EntryV4 e;
    Cold c;
    std::uint32_t last = 0;
    reader_ready.store(true, std::memory_order_release);
    std::uint64_t i = 0;
    while (!done.load(std::memory_order_acquire)) {
      if ((++i & 255) == 0) {
        shared_values.store(res.values_seen, std::memory_order_relaxed);
        shared_torn.store(res.torn, std::memory_order_relaxed);
      }
      if (!tb.read(hs[i % hs.size()], e, c)) {
        ++res.reads_failed;
        continue;
      }
      ++res.reads_ok;
      if (!consistent(e, c)) ++res.torn;
      if (e.last_seen != last) {
        ++res.values_seen;
        last = e.last_seen;
      }
    }
  });
  std::thread writer([&] {
    pin_self(1);
    // Start writing only once the reader runs (a spin, not a sleep).
    while (!reader_ready.load(std::memory_order_acquire)) {
    }
    for (std::uint32_t n = 1; n <= max_writes; ++n) {
      const Handle h = hs[n % hs.size()];
      EntryV4& e = tb.entry(h);
      if (seqlock) FlowTable<V4>::write_begin(e);
      else std::atomic_signal_fence(std::memory_order_seq_cst);
      write_all(e, tb.cold(h), n);
      if (seqlock) FlowTable<V4>::write_end(e);
      else std::atomic_signal_fence(std::memory_order_seq_cst);
      if (n >= min_writes && (n & 0xffff) == 0 && shared_values.load(std::memory_order_relaxed) >= want_values &&
          (!until_torn || shared_torn.load(std::memory_order_relaxed) > 0))
        break;
    }
    done.store(true, std::memory_order_release);
  });
  writer.join();
  reader.join();
  return res;
}

TEST(FlowTableSeqlock, ConcurrentReaderNeverSeesTornCopy) {
  const bool two_cpus = std::thread::hardware_concurrency() >= 2;
  for (int entries : {1, 4}) {
    const RaceResult r = race(true, entries, 2'000'000, 40'000'000, two_cpus ? 20'000 : 0, false);
    EXPECT_EQ(r.torn, 0u) << "read() returned " << r.torn << " inconsistent copies out of " << r.reads_ok;
    EXPECT_GT(r.reads_ok, 10'000u) << "the reader barely ran (failed reads: " << r.reads_failed << ")";
    if (two_cpus) {
      EXPECT_GE(r.values_seen, 1'000u) << "reader and writer hardly overlapped";
    }
  }
}

// The control experiment that shows the test above can fail: the same race
// with the writer not bumping the version (write_begin/write_end as no-ops)
// gives torn copies that read() accepts. Needs two CPUs running at once.
TEST(FlowTableSeqlock, WithoutSeqlockTheSameRaceTearsCopies) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs 2 CPUs";
  const RaceResult r = race(false, 1, 2'000'000, 40'000'000, 20'000, true);
  EXPECT_GE(r.values_seen, 1'000u) << "reader and writer hardly overlapped";
  EXPECT_GT(r.torn, 0u) << "no torn copy out of " << r.reads_ok << " unsynchronised reads";
}

}  // namespace
