// lb::NeighbourTable: insert and lookup (IPv4, IPv6), a full table, the
// states (resolution, ageing, probing, failure, static entries), counters, and
// a writer flipping a MAC while a reader checks that it never sees a torn one.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <type_traits>
#include <vector>

#include "dataplane/lb/neighbour.hpp"

namespace {

using namespace ctlb::lb;
using ctlb::config::Mac;

// Slots in heap memory aligned as a memzone would be.
struct Slots {
  explicit Slots(std::uint32_t n) : v(n) {}
  std::vector<NeighbourSlot> v;
  NeighbourSlot* data() { return v.data(); }
};

struct Fixture {
  explicit Fixture(std::uint32_t capacity = 64) : slots(capacity), table(slots.data(), capacity) { table.clear(); }
  Slots slots;
  NeighbourTable table;
};

std::vector<std::uint8_t> v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) { return {a, b, c, d}; }
std::vector<std::uint8_t> v6(std::uint16_t last) {
  std::vector<std::uint8_t> a{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  a[14] = static_cast<std::uint8_t>(last >> 8);
  a[15] = static_cast<std::uint8_t>(last);
  return a;
}

const Mac kMacA{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
const Mac kMacB{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};

constexpr std::uint64_t kRetry = 1000;
constexpr std::uint32_t kMaxProbes = 3;
constexpr std::uint64_t kReachable = 60000;

TEST(Neighbour, SlotLayout) {
  EXPECT_EQ(sizeof(NeighbourSlot), 64u);
  EXPECT_EQ(alignof(NeighbourSlot), 64u);
  EXPECT_EQ(offsetof(NeighbourSlot, version), 0u);
  EXPECT_TRUE(std::is_standard_layout_v<NeighbourSlot>);
}

TEST(Neighbour, CapacityMustBeAPowerOfTwo) {
  Slots s(48);
  NeighbourTable bad(s.data(), 48);
  EXPECT_FALSE(bad.valid());
  const auto a = v4(10, 0, 0, 1);
  EXPECT_EQ(bad.find_or_add(4, a.data(), 0, 0), kNoSlot);
  Mac m{};
  EXPECT_FALSE(bad.lookup(4, a.data(), m));
  EXPECT_FALSE(NeighbourTable(s.data(), 0).valid());
  EXPECT_FALSE(NeighbourTable(nullptr, 16).valid());
  EXPECT_TRUE(NeighbourTable(s.data(), 32).valid());
  EXPECT_TRUE(NeighbourTable(s.data(), 1).valid());
}

TEST(Neighbour, NewEntryIsIncompleteAndNotUsable) {
  Fixture f;
  const auto a = v4(10, 0, 0, 1);
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 3, 500);
  ASSERT_NE(i, kNoSlot);
  const NeighbourSlot& s = f.table.slot(i);
  EXPECT_EQ(s.family, 4);
  EXPECT_EQ(s.state, NeighbourState::Incomplete);
  EXPECT_EQ(s.port, 3);
  EXPECT_EQ(s.next_probe_ms, 500u);
  EXPECT_EQ(s.updated_ms, 500u);
  EXPECT_EQ(s.probes_sent, 0);
  EXPECT_EQ(0, std::memcmp(s.address, a.data(), 4));
  for (int k = 4; k < 16; ++k) EXPECT_EQ(s.address[k], 0);
  EXPECT_EQ(s.version % 2, 0u);
  Mac m{};
  EXPECT_FALSE(f.table.lookup(4, a.data(), m));
  EXPECT_EQ(f.table.find_or_add(4, a.data(), 7, 900), i);  // found, unchanged
  EXPECT_EQ(f.table.slot(i).port, 3);
  EXPECT_EQ(f.table.find(4, a.data()), i);
  EXPECT_EQ(f.table.counters().added, 1u);
}

TEST(Neighbour, InsertAndLookupIpv4AndIpv6) {
  Fixture f(256);
  std::vector<std::uint32_t> slots;
  for (std::uint16_t k = 0; k < 50; ++k) {
    const auto a4 = v4(192, 0, 2, static_cast<std::uint8_t>(k));
    const auto a6 = v6(k);
    const std::uint32_t i4 = f.table.find_or_add(4, a4.data(), 0, 0);
    const std::uint32_t i6 = f.table.find_or_add(6, a6.data(), 1, 0);
    ASSERT_NE(i4, kNoSlot);
    ASSERT_NE(i6, kNoSlot);
    f.table.set_resolved(i4, Mac{0x02, 4, 0, 0, 0, static_cast<std::uint8_t>(k)}, 1);
    f.table.set_resolved(i6, Mac{0x02, 6, 0, 0, 0, static_cast<std::uint8_t>(k)}, 1);
    slots.push_back(i4);
    slots.push_back(i6);
  }
  EXPECT_EQ(std::set<std::uint32_t>(slots.begin(), slots.end()).size(), 100u);
  for (std::uint16_t k = 0; k < 50; ++k) {
    Mac m{};
    ASSERT_TRUE(f.table.lookup(4, v4(192, 0, 2, static_cast<std::uint8_t>(k)).data(), m));
    EXPECT_EQ(m, (Mac{0x02, 4, 0, 0, 0, static_cast<std::uint8_t>(k)}));
    ASSERT_TRUE(f.table.lookup(6, v6(k).data(), m));
    EXPECT_EQ(m, (Mac{0x02, 6, 0, 0, 0, static_cast<std::uint8_t>(k)}));
  }
  Mac m{};
  EXPECT_FALSE(f.table.lookup(4, v4(192, 0, 2, 200).data(), m));
  EXPECT_FALSE(f.table.lookup(6, v6(200).data(), m));
  EXPECT_EQ(f.table.counters().added, 100u);
  EXPECT_EQ(f.table.counters().learned, 100u);
  EXPECT_EQ(f.table.counters().resolved, 100u);
}

TEST(Neighbour, FamiliesDoNotMix) {
  Fixture f;
  // The IPv4 address 32.1.13.184 and the first bytes of 2001:db8:: are equal.
  const auto a6 = v6(0);
  const std::uint32_t i6 = f.table.find_or_add(6, a6.data(), 0, 0);
  f.table.set_resolved(i6, kMacA, 0);
  Mac m{};
  EXPECT_FALSE(f.table.lookup(4, a6.data(), m));
  const std::uint32_t i4 = f.table.find_or_add(4, a6.data(), 0, 0);
  EXPECT_NE(i4, i6);
  f.table.set_resolved(i4, kMacB, 0);
  ASSERT_TRUE(f.table.lookup(4, a6.data(), m));
  EXPECT_EQ(m, kMacB);
  ASSERT_TRUE(f.table.lookup(6, a6.data(), m));
  EXPECT_EQ(m, kMacA);
  EXPECT_EQ(f.table.find_or_add(5, a6.data(), 0, 0), kNoSlot);
  EXPECT_FALSE(f.table.lookup(0, a6.data(), m));
}

TEST(Neighbour, FullTable) {
  Fixture f(16);
  std::vector<std::vector<std::uint8_t>> addrs;
  for (std::uint8_t k = 0; k < 16; ++k) {
    addrs.push_back(v4(10, 1, 0, k));
    const std::uint32_t i = f.table.find_or_add(4, addrs.back().data(), 0, 0);
    ASSERT_NE(i, kNoSlot) << int(k);
    f.table.set_resolved(i, Mac{2, 0, 0, 0, 0, k}, 0);
  }
  const auto extra = v4(10, 1, 0, 99);
  EXPECT_EQ(f.table.find_or_add(4, extra.data(), 0, 0), kNoSlot);
  EXPECT_EQ(f.table.counters().table_full, 1u);
  EXPECT_EQ(f.table.find(4, extra.data()), kNoSlot);
  Mac m{};
  EXPECT_FALSE(f.table.lookup(4, extra.data(), m));
  // Everything already in stays reachable.
  for (std::uint8_t k = 0; k < 16; ++k) {
    ASSERT_TRUE(f.table.lookup(4, addrs[k].data(), m));
    EXPECT_EQ(m, (Mac{2, 0, 0, 0, 0, k}));
    EXPECT_NE(f.table.find_or_add(4, addrs[k].data(), 0, 0), kNoSlot);
  }
  EXPECT_EQ(f.table.counters().table_full, 1u);
}

TEST(Neighbour, ProbeLimitBoundsABigTable) {
  // Half full with runs of consecutive addresses (the worst case for a weak
  // hash): nothing refused within the probe limit.
  Fixture f(4096);
  for (std::uint32_t k = 0; k < 1024; ++k) {
    const auto a = v4(10, 2, static_cast<std::uint8_t>(k >> 8), static_cast<std::uint8_t>(k));
    ASSERT_NE(f.table.find_or_add(4, a.data(), 0, 0), kNoSlot) << k;
  }
  for (std::uint32_t k = 0; k < 1024; ++k) {
    ASSERT_NE(f.table.find_or_add(6, v6(static_cast<std::uint16_t>(k)).data(), 0, 0), kNoSlot) << k;
  }
  EXPECT_EQ(f.table.counters().table_full, 0u);
  EXPECT_EQ(f.table.counters().added, 2048u);
}

TEST(Neighbour, ResolutionAndProbingSchedule) {
  Fixture f;
  const auto a = v4(10, 0, 0, 9);
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 0, 1000);
  EXPECT_EQ(f.table.next_due(0, 999), kNoSlot);
  ASSERT_EQ(f.table.next_due(0, 1000), i);
  EXPECT_EQ(f.table.next_due(i + 1, 1000), kNoSlot);
  // Probe 1 at t=1000, 2 at 2000, 3 at 3000; at 4000 it fails.
  for (std::uint32_t p = 1; p <= kMaxProbes; ++p) {
    const std::uint64_t now = 1000 * p;
    ASSERT_EQ(f.table.next_due(0, now), i) << p;
    EXPECT_TRUE(f.table.mark_probe_sent(i, now, kRetry, kMaxProbes));
    EXPECT_EQ(f.table.slot(i).probes_sent, p);
    EXPECT_EQ(f.table.slot(i).next_probe_ms, now + kRetry);
    EXPECT_EQ(f.table.next_due(0, now + kRetry - 1), kNoSlot);
  }
  ASSERT_EQ(f.table.next_due(0, 4000), i);
  EXPECT_FALSE(f.table.mark_probe_sent(i, 4000, kRetry, kMaxProbes));
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Failed);
  EXPECT_EQ(f.table.counters().failed, 1u);
  EXPECT_EQ(f.table.next_due(0, 100000), kNoSlot);  // failed entries are not probed
  Mac m{};
  EXPECT_FALSE(f.table.lookup(4, a.data(), m));
  // Asked for again within the hold-down: stays Failed; after it: resolves again.
  EXPECT_EQ(f.table.find_or_add(4, a.data(), 0, 4999), i);
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Failed);
  EXPECT_EQ(f.table.find_or_add(4, a.data(), 0, 5000), i);
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Incomplete);
  EXPECT_EQ(f.table.slot(i).probes_sent, 0);
  EXPECT_EQ(f.table.next_due(0, 5000), i);
  EXPECT_TRUE(f.table.mark_probe_sent(i, 5000, kRetry, kMaxProbes));
  // The answer comes.
  f.table.set_resolved(i, kMacA, 5100);
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Reachable);
  EXPECT_EQ(f.table.slot(i).probes_sent, 0);
  ASSERT_TRUE(f.table.lookup(4, a.data(), m));
  EXPECT_EQ(m, kMacA);
  EXPECT_EQ(f.table.next_due(0, 1000000), kNoSlot);
  EXPECT_EQ(f.table.counters().resolved, 1u);
  // A probe is not counted for a Reachable entry.
  EXPECT_FALSE(f.table.mark_probe_sent(i, 6000, kRetry, kMaxProbes));
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Reachable);
}

TEST(Neighbour, ZeroMaxProbesFailsAtOnce) {
  Fixture f;
  const auto a = v4(10, 0, 0, 9);
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 0, 0);
  EXPECT_FALSE(f.table.mark_probe_sent(i, 0, kRetry, 0));
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Failed);
}

TEST(Neighbour, AgeingToStaleThenReprobed) {
  Fixture f;
  const auto a = v6(7);
  const std::uint32_t i = f.table.find_or_add(6, a.data(), 0, 0);
  f.table.set_resolved(i, kMacA, 10000);
  EXPECT_EQ(f.table.age(10000 + kReachable - 1, kReachable), 0u);
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Reachable);
  EXPECT_EQ(f.table.age(10000 + kReachable, kReachable), 1u);
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Stale);
  // Still usable while being re-probed.
  Mac m{};
  ASSERT_TRUE(f.table.lookup(6, a.data(), m));
  EXPECT_EQ(m, kMacA);
  const std::uint64_t t = 10000 + kReachable;
  ASSERT_EQ(f.table.next_due(0, t), i);
  EXPECT_TRUE(f.table.mark_probe_sent(i, t, kRetry, kMaxProbes));
  EXPECT_EQ(f.table.age(t + 10 * kReachable, kReachable), 0u);  // Stale does not age further
  // Confirmed: Reachable again, not a new resolution.
  f.table.set_resolved(i, kMacB, t + 5);
  ASSERT_TRUE(f.table.lookup(6, a.data(), m));
  EXPECT_EQ(m, kMacB);
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Reachable);
  EXPECT_EQ(f.table.counters().resolved, 1u);
  EXPECT_EQ(f.table.counters().learned, 2u);
}

TEST(Neighbour, StaleWithoutAnswerFails) {
  Fixture f;
  const auto a = v4(10, 0, 0, 3);
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 0, 0);
  f.table.set_resolved(i, kMacA, 0);
  ASSERT_EQ(f.table.age(kReachable, kReachable), 1u);
  std::uint64_t now = kReachable;
  for (std::uint32_t p = 0; p < kMaxProbes; ++p, now += kRetry) {
    ASSERT_EQ(f.table.next_due(0, now), i);
    EXPECT_TRUE(f.table.mark_probe_sent(i, now, kRetry, kMaxProbes));
    Mac m{};
    EXPECT_TRUE(f.table.lookup(4, a.data(), m));
  }
  ASSERT_EQ(f.table.next_due(0, now), i);
  EXPECT_FALSE(f.table.mark_probe_sent(i, now, kRetry, kMaxProbes));
  Mac m{};
  EXPECT_FALSE(f.table.lookup(4, a.data(), m));
  EXPECT_EQ(f.table.counters().failed, 1u);
}

TEST(Neighbour, StaticIsNotOverwrittenByLearningNorAgedNorProbed) {
  Fixture f;
  const auto a = v4(10, 0, 0, 254);
  const std::uint32_t i = f.table.set_static(4, a.data(), 2, kMacA, 0);
  ASSERT_NE(i, kNoSlot);
  EXPECT_EQ(f.table.slot(i).state, NeighbourState::Static);
  EXPECT_EQ(f.table.slot(i).port, 2);
  EXPECT_EQ(f.table.next_due(0, 0), kNoSlot);
  f.table.set_resolved(i, kMacB, 10);
  EXPECT_EQ(f.table.age(10 * kReachable, kReachable), 0u);
  EXPECT_FALSE(f.table.mark_probe_sent(i, 10, kRetry, kMaxProbes));
  EXPECT_EQ(f.table.next_due(0, 10 * kReachable), kNoSlot);
  Mac m{};
  ASSERT_TRUE(f.table.lookup(4, a.data(), m));
  EXPECT_EQ(m, kMacA);
  EXPECT_EQ(f.table.counters().learned, 0u);
  // The configuration may change it.
  EXPECT_EQ(f.table.set_static(4, a.data(), 1, kMacB, 20), i);
  ASSERT_TRUE(f.table.lookup(4, a.data(), m));
  EXPECT_EQ(m, kMacB);
  EXPECT_EQ(f.table.slot(i).port, 1);
}

TEST(Neighbour, StaticOverridesALearnedEntry) {
  Fixture f;
  const auto a = v4(10, 0, 0, 5);
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 0, 0);
  f.table.set_resolved(i, kMacA, 0);
  EXPECT_EQ(f.table.set_static(4, a.data(), 0, kMacB, 1), i);
  Mac m{};
  ASSERT_TRUE(f.table.lookup(4, a.data(), m));
  EXPECT_EQ(m, kMacB);
}

TEST(Neighbour, ReadGivesAConsistentCopyWithAnEvenVersion) {
  Fixture f;
  const auto a = v6(1);
  const std::uint32_t i = f.table.find_or_add(6, a.data(), 4, 77);
  f.table.set_resolved(i, kMacA, 88);
  NeighbourSlot copy{};
  ASSERT_TRUE(f.table.read(i, copy));
  EXPECT_EQ(copy.version % 2, 0u);
  EXPECT_GT(copy.version, 0u);
  EXPECT_EQ(copy.family, 6);
  EXPECT_EQ(copy.state, NeighbourState::Reachable);
  EXPECT_EQ(copy.port, 4);
  EXPECT_EQ(copy.updated_ms, 88u);
  EXPECT_EQ(0, std::memcmp(copy.mac, kMacA.data(), 6));
  // A slot stuck mid-write (a writer that died) is refused, not waited for.
  NeighbourSlot& raw = f.slots.v[i];
  ++raw.version;
  EXPECT_FALSE(f.table.read(i, copy, 8));
  Mac m{};
  EXPECT_FALSE(f.table.lookup(6, a.data(), m, 8));
  --raw.version;
  EXPECT_TRUE(f.table.lookup(6, a.data(), m, 8));
}

TEST(Neighbour, TwoViewsOfTheSameMemory) {
  // The writer's and a reader's tables are separate views: nothing of the
  // table but the slots is shared.
  Fixture f;
  const NeighbourTable reader(f.slots.data(), 64);
  const auto a = v4(172, 16, 0, 1);
  f.table.set_resolved(f.table.find_or_add(4, a.data(), 0, 0), kMacB, 0);
  Mac m{};
  ASSERT_TRUE(reader.lookup(4, a.data(), m));
  EXPECT_EQ(m, kMacB);
}

// Runs look() on another thread, over and over, while this thread sets slot
// i's MAC to y, x, y, ... `flips` times; look() runs once more after the
// last flip.
template <class Look>
void flip_under_reader(Fixture& f, std::uint32_t i, const Mac& x, const Mac& y, int flips, Look&& look) {
  std::atomic<bool> writer_done{false};
  std::atomic<bool> reader_started{false};
  std::thread reader([&] {
    reader_started.store(true, std::memory_order_release);
    for (bool last = false; !last;) {
      last = writer_done.load(std::memory_order_acquire);
      look();
    }
  });
  while (!reader_started.load(std::memory_order_acquire)) {
  }
  for (int n = 0; n < flips; ++n) f.table.set_resolved(i, n % 2 ? x : y, static_cast<std::uint64_t>(n));
  writer_done.store(true, std::memory_order_release);
  reader.join();
}

TEST(Neighbour, ConcurrentReaderNeverSeesATornMac) {
  Fixture f(16);
  // Fill the neighbourhood so the reader probes past other slots too.
  for (std::uint8_t k = 0; k < 12; ++k) {
    const auto other = v4(10, 9, 9, k);
    f.table.set_resolved(f.table.find_or_add(4, other.data(), 0, 0), Mac{2, 2, 2, 2, 2, k}, 0);
  }
  const auto a = v4(10, 0, 0, 1);
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 0, 0);
  ASSERT_NE(i, kNoSlot);
  const Mac x{0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
  const Mac y{0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa};  // differs from x in every byte
  f.table.set_resolved(i, x, 0);

  std::uint64_t seen_x = 0, seen_y = 0, torn = 0, missed = 0;
  const NeighbourTable view(f.slots.data(), 16);
  flip_under_reader(f, i, x, y, 200000, [&] {
    Mac m{};
    if (!view.lookup(4, a.data(), m, 1 << 20)) {
      ++missed;
      return;
    }
    if (m == x) ++seen_x;
    else if (m == y) ++seen_y;
    else ++torn;
  });
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(missed, 0u);
  EXPECT_GT(seen_x + seen_y, 0u);
  EXPECT_EQ(f.slots.v[i].version % 2, 0u);
}

TEST(Neighbour, ConcurrentReaderWhileTheWriterAddsEntries) {
  // Slots being claimed under a reader: every lookup of an added address
  // either misses (not resolved yet) or returns exactly its MAC.
  constexpr std::uint32_t kCap = 1024;
  Fixture f(kCap);
  constexpr std::uint32_t kN = 700;
  std::atomic<std::uint32_t> published{0};
  std::atomic<bool> done{false};
  std::uint64_t wrong = 0, hits = 0;
  auto addr_of = [](std::uint32_t k) { return v4(10, 3, static_cast<std::uint8_t>(k >> 8), static_cast<std::uint8_t>(k)); };
  auto mac_of = [](std::uint32_t k) { return Mac{2, static_cast<std::uint8_t>(k >> 8), static_cast<std::uint8_t>(k), 0x5a, 0xa5, 1}; };
  std::thread reader([&] {
    const NeighbourTable view(f.slots.data(), kCap);
    for (std::uint32_t round = 0; !done.load(std::memory_order_acquire); ++round) {
      const std::uint32_t upto = published.load(std::memory_order_acquire);
      for (std::uint32_t k = 0; k < kN; ++k) {
        Mac m{};
        const bool found = view.lookup(4, addr_of(k).data(), m, 1 << 20);
        if (k < upto && !found) ++wrong;  // published: must be there
        if (found && m != mac_of(k)) ++wrong;
        hits += found;
      }
    }
  });
  for (std::uint32_t k = 0; k < kN; ++k) {
    const std::uint32_t i = f.table.find_or_add(4, addr_of(k).data(), 0, 0);
    EXPECT_NE(i, kNoSlot);
    if (i == kNoSlot) break;
    f.table.set_resolved(i, mac_of(k), 0);
    published.store(k + 1, std::memory_order_release);
  }
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(wrong, 0u);
}

std::uint8_t family_of(const std::vector<std::uint8_t>& a) { return static_cast<std::uint8_t>(a.size() == 4 ? 4 : 6); }

// One random change of the kinds the writer makes, to `a` or to the whole
// table: learned (often with a new MAC), aged, probed until Failed, made
// static. Returns true when a MAC was set.
bool random_change(Fixture& f, std::mt19937& rng, const std::vector<std::uint8_t>& a, std::uint64_t now) {
  const std::uint8_t fam = family_of(a);
  switch (rng() % 8) {
    case 0:
    case 1: {
      const std::uint32_t i = f.table.find_or_add(fam, a.data(), 0, now);
      if (i == kNoSlot) return false;
      f.table.set_resolved(i, Mac{2, 0, 0, 0, static_cast<std::uint8_t>(rng() % 4), a.back()}, now);
      return true;
    }
    case 2:
      f.table.age(now, kReachable);
      return false;
    case 3:  // probes: Stale or Incomplete entries end Failed
      for (auto i = f.table.next_due(0, now); i != kNoSlot; i = f.table.next_due(i + 1, now))
        f.table.mark_probe_sent(i, now, kRetry, kMaxProbes);
      return false;
    case 4:
      if (rng() % 8 == 0) f.table.set_static(fam, a.data(), 1, Mac{2, 0, 0, 0, 9, a.back()}, now);
      return false;
    default:  // a run of lookups: mostly hits on unchanged slots
      return false;
  }
}

// The worker's memo: after every kind of change the writer makes, a lookup
// through the cache answers exactly as the table does. 160 addresses (IPv4
// and IPv6) share the cache's 64 entries, so entries are also evicted and
// refilled. A cache that kept a MAC or a state past a change fails it.
TEST(NeighbourCache, AnswersAsTheTableThroughEveryChange) {
  Fixture f(256);
  NeighbourCache cache;
  std::mt19937 rng(12345);
  std::vector<std::vector<std::uint8_t>> addrs;
  for (std::uint8_t k = 0; k < 80; ++k) addrs.push_back(v4(10, 1, k / 16, k));
  for (std::uint16_t k = 0; k < 80; ++k) addrs.push_back(v6(k));
  std::uint64_t now = 0;
  std::uint64_t found = 0, mac_changes = 0;
  for (int step = 0; step < 20000; ++step) {
    now += rng() % 2000;
    mac_changes += random_change(f, rng, addrs[rng() % addrs.size()], now);
    for (int q = 0; q < 8; ++q) {
      const auto& b = addrs[rng() % addrs.size()];
      Mac from_table{}, from_cache{};
      const bool t = f.table.lookup(family_of(b), b.data(), from_table);
      const bool c = cache.lookup(f.table, family_of(b), b.data(), from_cache);
      ASSERT_EQ(c, t) << "step " << step;
      if (t) {
        ASSERT_EQ(from_cache, from_table) << "step " << step;
        ++found;
      }
    }
  }
  EXPECT_GT(found, 10000u);  // the comparison covered usable entries, not only misses
  EXPECT_GT(mac_changes, 1000u);
  Mac m{};
  EXPECT_FALSE(cache.lookup(f.table, 5, addrs[0].data(), m));  // no such family
}

// A HopMemo per next hop, used as the worker does (valid() or else fill()),
// answers what the table answers through every change the table goes
// through, its 12 bytes the table's MAC then the port's.
TEST(HopMemo, AnswersAsTheTableThroughEveryChange) {
  Fixture f(256);
  std::mt19937 rng(4242);
  std::vector<std::vector<std::uint8_t>> addrs;
  for (std::uint8_t k = 0; k < 40; ++k) addrs.push_back(v4(10, 2, 0, k));
  for (std::uint16_t k = 0; k < 40; ++k) addrs.push_back(v6(k));
  std::vector<HopMemo> memos(addrs.size());
  const std::uint8_t src[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  std::uint64_t now = 0, found = 0, hits = 0;
  for (int step = 0; step < 20000; ++step) {
    now += rng() % 2000;
    random_change(f, rng, addrs[rng() % addrs.size()], now);
    for (int q = 0; q < 8; ++q) {
      const std::size_t k = rng() % addrs.size();
      Mac from_table{};
      const bool t = f.table.lookup(family_of(addrs[k]), addrs[k].data(), from_table);
      const bool hit = memos[k].valid(f.table);
      const bool m = hit || memos[k].fill(f.table, family_of(addrs[k]), addrs[k].data(), src);
      ASSERT_EQ(m, t) << "step " << step;
      if (!t) continue;
      ASSERT_EQ(0, std::memcmp(memos[k].macs(), from_table.data(), 6)) << "step " << step;
      ASSERT_EQ(0, std::memcmp(memos[k].macs() + 6, src, 6)) << "step " << step;
      ++found;
      hits += hit;
    }
  }
  EXPECT_GT(found, 10000u);
  EXPECT_GT(hits, found / 2);  // mostly answered from the memo, not refilled
}

// A memo never filled is not valid, even where the table's slot 0 has the
// version a memo starts with (0: zeroed memory, before any clear()).
TEST(HopMemo, EmptyMemoIsNeverValid) {
  {
    Slots zeroed(16);
    const NeighbourTable fresh(zeroed.data(), 16);
    ASSERT_TRUE(fresh.unchanged(0, 0));
    EXPECT_FALSE(HopMemo{}.valid(fresh));
  }
  Fixture f(16);
  HopMemo memo;
  EXPECT_FALSE(memo.valid(f.table));
  const auto a = v4(10, 0, 0, 7);
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 0, 0);
  f.table.set_resolved(i, kMacA, 0);
  EXPECT_FALSE(memo.valid(f.table));
  const std::uint8_t src[6] = {};
  EXPECT_FALSE(memo.fill(f.table, 4, v4(10, 0, 0, 8).data(), src));  // not in the table
  EXPECT_FALSE(memo.valid(f.table));
  ASSERT_TRUE(memo.fill(f.table, 4, a.data(), src));
  EXPECT_TRUE(memo.valid(f.table));
  f.table.clear();
  EXPECT_FALSE(memo.valid(f.table));
}

// clear() is a write like any other: a slot refilled after it never comes
// back to the version a cache read it at. (Were versions reset to 0, the
// two writes below would bring the slot back to the cached version with
// another MAC.)
TEST(NeighbourCache, ClearedAndRefilledSlotIsNotTheCachedOne) {
  Fixture f(16);
  NeighbourCache cache;
  const auto a = v4(10, 0, 0, 7);
  f.table.set_resolved(f.table.find_or_add(4, a.data(), 0, 0), kMacA, 0);
  Mac m{};
  ASSERT_TRUE(cache.lookup(f.table, 4, a.data(), m));
  EXPECT_EQ(m, kMacA);
  f.table.clear();
  EXPECT_FALSE(cache.lookup(f.table, 4, a.data(), m));
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 0, 0);
  f.table.set_resolved(i, kMacB, 0);
  ASSERT_TRUE(cache.lookup(f.table, 4, a.data(), m));
  EXPECT_EQ(m, kMacB);
}

// A reader on another thread answering through its cache while the writer
// changes the MAC: never a torn MAC, and once the writer is done the cache
// gives the last MAC written, not the one it held.
TEST(NeighbourCache, ConcurrentReaderSeesEveryChange) {
  Fixture f(16);
  const auto a = v4(10, 0, 0, 1);
  const std::uint32_t i = f.table.find_or_add(4, a.data(), 0, 0);
  ASSERT_NE(i, kNoSlot);
  const Mac x{0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
  const Mac y{0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa};
  const Mac z{0x02, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a};  // before the flips
  f.table.set_resolved(i, z, 0);
  constexpr int kFlips = 100000;
  std::uint64_t torn = 0, missed = 0, seen = 0;
  Mac last_seen{};
  const NeighbourTable view(f.slots.data(), 16);
  NeighbourCache cache;
  flip_under_reader(f, i, x, y, kFlips, [&] {
    Mac m{};
    if (!cache.lookup(view, 4, a.data(), m, 1 << 20)) {
      ++missed;
      return;
    }
    ++seen;
    if (m != x && m != y && m != z) ++torn;
    last_seen = m;
  });
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(missed, 0u);
  EXPECT_GT(seen, 0u);
  EXPECT_EQ(last_seen, (kFlips - 1) % 2 ? x : y);  // looked at after the last flip
}

}  // namespace
