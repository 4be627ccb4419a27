// Maglev table quality (issue 5), at the default M = 65537 with N = 100
// unless said otherwise: balance, disruption when a backend goes, comes or
// changes weight, weights, determinism independent of configuration order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "dataplane/lb/maglev.hpp"

namespace {

using ctlb::lb::BackendId;
using ctlb::lb::build_maglev;
using ctlb::lb::kDefaultTableSize;
using ctlb::lb::kNoBackend;
using ctlb::lb::MaglevBackend;

MaglevBackend backend(std::uint32_t ipv4, std::uint16_t port, std::uint32_t weight = 1) {
  MaglevBackend b{};
  b.id.addr[10] = b.id.addr[11] = 0xff;  // ::ffff:a.b.c.d
  b.id.addr[12] = static_cast<std::uint8_t>(ipv4 >> 24);
  b.id.addr[13] = static_cast<std::uint8_t>(ipv4 >> 16);
  b.id.addr[14] = static_cast<std::uint8_t>(ipv4 >> 8);
  b.id.addr[15] = static_cast<std::uint8_t>(ipv4);
  b.id.port = port;
  b.weight = weight;
  return b;
}

std::vector<MaglevBackend> pool(int n) {
  std::vector<MaglevBackend> p;
  for (int i = 0; i < n; ++i) p.push_back(backend(0xC6130000u + static_cast<std::uint32_t>(i) + 1, 8080));
  return p;
}

std::vector<std::uint16_t> build(const std::vector<MaglevBackend>& p, std::uint32_t m = kDefaultTableSize) {
  std::vector<std::uint16_t> t(m);
  EXPECT_TRUE(build_maglev(p, t));
  return t;
}

std::vector<int> counts(const std::vector<std::uint16_t>& t, std::size_t n) {
  std::vector<int> c(n, 0);
  for (auto b : t) {
    EXPECT_NE(b, kNoBackend);
    if (b != kNoBackend) ++c[b];
  }
  return c;
}

// Fraction of slots whose backend differs; both tables index the same pool
// positions (a removed backend keeps its position with weight 0, an added one
// goes at the end).
double moved(const std::vector<std::uint16_t>& before, const std::vector<std::uint16_t>& after) {
  std::size_t n = 0;
  for (std::size_t s = 0; s < before.size(); ++s) n += before[s] != after[s];
  return static_cast<double>(n) / static_cast<double>(before.size());
}

TEST(Maglev, BalanceWithin1PercentFor100Backends) {
  const auto c = counts(build(pool(100)), 100);
  const auto [lo, hi] = std::minmax_element(c.begin(), c.end());
  EXPECT_LE(static_cast<double>(*hi) / *lo, 1.01) << *lo << ".." << *hi;
  EXPECT_LE(*hi - *lo, 1) << "every backend owns the floor or the ceiling of M/N";
}

// Worst fraction of slots that change backend when one of n goes down, over
// `samples` different removed backends spread over the pool; in units of 1/n.
double worst_removal(int n, std::uint32_t m, int samples) {
  auto p = pool(n);
  const auto before = build(p, m);
  double worst = 0;
  for (int k = 0; k < samples; ++k) {
    const int gone = k * n / samples;
    auto q = p;
    q[static_cast<std::size_t>(gone)].weight = 0;  // down: no slots
    const auto after = build(q, m);
    for (std::size_t s = 0; s < before.size(); ++s) {
      if (before[s] == gone) {
        EXPECT_NE(after[s], gone) << "slot " << s;
      }
    }
    const double f = moved(before, after) * n;
    EXPECT_GE(f, 0.99) << "the removed backend's own slots must move";
    worst = std::max(worst, f);
  }
  return worst;
}

// Lockstep walks move about 1.28/N on average at N = 100 (classic Maglev
// turns: 1.57/N). The issue asked for under 1.2/N; maglev.hpp explains why
// neither this nor the alternatives measured reach it at M = 65537.
// Measured worst over these 20 removals: 1.31/N.
TEST(Maglev, RemovingOneOf100MovesUnder1Point35OverN) {
  EXPECT_LT(worst_removal(100, kDefaultTableSize, 20), 1.35);
}

// The issue's 1.2/N holds at the default table up to about 60 backends
// (M / N >= ~1100): mean over 20 removals 1.13/N at N = 50, worst 1.15/N;
// 1.17/N (worst 1.21) at 60, 1.21/N at 70.
TEST(Maglev, RemovingOneOf50MovesUnder1Point2OverN) {
  EXPECT_LT(worst_removal(50, kDefaultTableSize, 20), 1.2);
}

TEST(Maglev, RemovingOneOf10MovesUnder1Point05OverN) {
  EXPECT_LT(worst_removal(10, kDefaultTableSize, 10), 1.05);  // measured 1.02
}

// The extra shrinks with the table: measured 1.09/N at 10 x 65537 (turns: 1.15/N).
TEST(Maglev, RemovingOneOf100WithALargeTableMovesUnder1Point15OverN) {
  EXPECT_LT(worst_removal(100, 655373, 5), 1.15);
}

// Adding a backend to 100: it takes its share from the others, who keep the
// rest. 10 different added backends; in units of 1/(N+1). Measured worst
// 1.36 (turns: 1.63).
TEST(Maglev, AddingOneTo100MovesUnder1Point4OverNPlus1) {
  const auto p = pool(100);
  const auto before = build(p);
  for (std::uint32_t k = 0; k < 10; ++k) {
    auto q = p;
    q.push_back(backend(0x0A000000u + k * 977 + 3, 9090));
    const auto after = build(q);
    const auto c = counts(after, 101);
    EXPECT_GE(c[100], 648) << "the new backend gets its share";
    EXPECT_LT(moved(before, after) * 101, 1.4) << "added 10.0.x.x #" << k;
  }
}

// One backend of 100 going from weight 1 to 2: its share goes from 1/100 to
// 2/101, the least that can move is 0.98/N. 10 different backends; measured
// worst 1.33/N (turns: 1.62/N).
TEST(Maglev, DoublingOneWeightOf100MovesUnder1Point4OverN) {
  const auto p = pool(100);
  const auto before = build(p);
  for (int k = 0; k < 10; ++k) {
    auto q = p;
    q[static_cast<std::size_t>(k * 10)].weight = 2;
    const auto after = build(q);
    EXPECT_LT(moved(before, after) * 100, 1.4) << "backend " << k * 10;
  }
}

TEST(Maglev, WeightsAreHonoured) {
  auto p = pool(4);
  for (std::uint32_t i = 0; i < 4; ++i) p[i].weight = i + 1;  // 1:2:3:4
  const auto t = build(p);
  const auto c = counts(t, 4);
  for (std::uint32_t i = 0; i < 4; ++i) {
    const double exact = static_cast<double>(t.size()) * (i + 1) / 10.0;
    EXPECT_NEAR(c[i], exact, exact * 0.01) << "backend " << i;
    EXPECT_LT(std::abs(c[i] - exact), 1.0) << "floor or ceiling of the share, backend " << i;
  }
}

TEST(Maglev, WeightsWithinOnePercentOfTheirShareFor100Backends) {
  auto p = pool(100);
  std::mt19937 rng(5);
  std::uint64_t total = 0;
  for (auto& b : p) total += b.weight = 1 + rng() % 10;
  const auto t = build(p);
  const auto c = counts(t, 100);
  for (std::size_t i = 0; i < 100; ++i) {
    const double exact = static_cast<double>(t.size()) * p[i].weight / static_cast<double>(total);
    EXPECT_NEAR(c[i], exact, exact * 0.01) << "backend " << i << " weight " << p[i].weight;
  }
}

TEST(Maglev, ExtremeWeightsStillFillEverySlot) {
  auto p = pool(3);
  p[0].weight = 65535;
  const auto c = counts(build(p, 101), 3);  // shares 100.997, 0.0015, 0.0015
  EXPECT_GE(c[0], 100);
  EXPECT_EQ(c[0] + c[1] + c[2], 101);
}

TEST(Maglev, MoreBackendsThanSlotsGiveOneSlotEach) {
  const auto c = counts(build(pool(200), 101), 200);
  EXPECT_EQ(*std::max_element(c.begin(), c.end()), 1);
  EXPECT_EQ(std::count(c.begin(), c.end(), 1), 101);
}

TEST(Maglev, SameTableWhateverTheConfigurationOrder) {
  auto p = pool(100);
  p[5].weight = 3;
  p[17].weight = 0;
  const auto t1 = build(p);
  auto q = p;
  std::shuffle(q.begin(), q.end(), std::mt19937(7));
  const auto t2 = build(q);
  // Map slots back to identities: the same backend owns the same slots.
  for (std::size_t s = 0; s < t1.size(); ++s)
    ASSERT_EQ(std::memcmp(&p[t1[s]].id, &q[t2[s]].id, sizeof(BackendId)), 0) << "slot " << s;
}

// FNV-1a over the table's entries, low byte first.
std::uint64_t fingerprint(const std::vector<std::uint16_t>& t) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (auto b : t) {
    h = (h ^ (b & 0xff)) * 0x100000001b3ull;
    h = (h ^ (b >> 8)) * 0x100000001b3ull;
  }
  return h;
}

// Instances behind ECMP must build the same table from the same pool, across
// processes, builds and versions: a fingerprint of the table pins it. If the
// construction changes on purpose, every instance has to be upgraded together.
TEST(Maglev, SameTableInEveryProcess) {
  auto p = pool(100);
  p[3].weight = 4;
  const auto t = build(p);
  EXPECT_EQ(build(p), t);
  EXPECT_EQ(fingerprint(t), 0xc35626d2c69d57a9ull) << std::hex << fingerprint(t);
}

// The same pin for an equal-weight pool, which build_maglev() fills by a
// faster route (two passes a round, then first arrivals) than weighted ones.
TEST(Maglev, SameEqualWeightTableInEveryProcess) {
  const auto t = build(pool(100));
  EXPECT_EQ(fingerprint(t), 0x0d55e77c0fd33630ull) << std::hex << fingerprint(t);
}

// The construction as maglev.hpp states it, one step at a time: walkers in
// identity order, each round every live walker steps (weighted: a step per
// lightest live weight of credit), taking the free slot under it while it
// has room, or one spare slot if its share has a fraction and spares are
// left; a walker that can take no more leaves at that step.
std::vector<std::uint16_t> stepwise(const std::vector<MaglevBackend>& p, std::uint32_t m) {
  struct W {
    std::uint32_t slot, skip, room, weight, credit;
    std::uint16_t backend;
    bool round_up;
  };
  std::vector<std::uint16_t> t(m, kNoBackend);
  std::vector<std::uint16_t> order;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i].weight == 0) continue;
    order.push_back(static_cast<std::uint16_t>(i));
    total += p[i].weight;
  }
  std::sort(order.begin(), order.end(),
            [&](std::uint16_t a, std::uint16_t b) { return ctlb::lb::detail::id_less(p[a].id, p[b].id); });
  std::vector<W> live;
  std::uint64_t due = 0;
  for (const auto i : order) {
    const std::uint64_t share = std::uint64_t{m} * p[i].weight;
    W w{static_cast<std::uint32_t>(ctlb::lb::detail::hash_id(p[i].id, 0x6d61676c65763031ull) % m),
        static_cast<std::uint32_t>(ctlb::lb::detail::hash_id(p[i].id, 0x6d61676c65763032ull) % (m - 1)) + 1,
        static_cast<std::uint32_t>(share / total), p[i].weight, 0, i, share % total != 0};
    while (std::gcd(w.skip, m) != 1) w.skip = w.skip % (m - 1) + 1;
    due += w.room;
    if (w.room > 0 || w.round_up) live.push_back(w);
  }
  std::uint64_t spare = m - due, filled = 0;
  while (filled < m && !live.empty()) {
    std::uint32_t lightest = ~0u;
    for (const W& w : live) lightest = std::min(lightest, w.weight);
    std::vector<W> next;
    for (W w : live) {
      bool more = true;
      std::uint64_t credit = std::uint64_t{w.credit} + w.weight;
      for (; more && credit >= lightest; credit -= lightest) {
        const std::uint32_t c = w.slot;
        w.slot = static_cast<std::uint32_t>((std::uint64_t{c} + w.skip) % m);
        if (t[c] == kNoBackend && (w.room > 0 || (w.round_up && spare > 0))) {
          if (w.room > 0) {
            --w.room;
          } else {
            --spare;
            w.round_up = false;
          }
          t[c] = w.backend;
          ++filled;
        }
        more = w.room > 0 || (w.round_up && spare > 0);
      }
      w.credit = static_cast<std::uint32_t>(credit);
      if (more) next.push_back(w);
    }
    live = std::move(next);
  }
  return t;
}

// build_maglev() takes shortcuts (a bitmap of taken slots, two passes a
// round, the last slots by first arrival): the tables must be the ones the
// plain construction gives, for any pool. Random pools: equal weights
// (the shortcut's case) and weighted, pools larger than the table, IPv4 and
// IPv6 identities; table sizes down to 2, primes and composites (the
// configuration asks for a prime, the function takes any M with skips
// coprime to it). `arrivals_below`: build() turns to arrivals for the last
// M / 256 slots; with 1 for the whole fill, so that they meet every
// situation the rounds do.
void expect_stepwise_tables(std::uint32_t arrivals_below, int pools) {
  std::mt19937_64 rng(20261208 + arrivals_below);
  const std::uint32_t sizes[] = {2, 3, 101, 1009, 65537, 4096, 65536};
  for (int round = 0; round < pools; ++round) {
    const std::uint32_t m = sizes[rng() % 7];
    const std::size_t n = rng() % 5 == 0 ? rng() % 1200 : rng() % 120;
    const int weights = static_cast<int>(rng() % 4);  // 0, 1: all equal; 2: 0..5; 3: 1..65535
    std::vector<MaglevBackend> p(n);
    for (auto& b : p) {
      b = {};
      const std::uint64_t hi = rng(), lo = rng();
      std::memcpy(b.id.addr, &hi, 8);
      std::memcpy(b.id.addr + 8, &lo, 8);
      if (rng() % 2 == 0) {
        std::memset(b.id.addr, 0, 10);
        b.id.addr[10] = b.id.addr[11] = 0xff;
      }
      b.id.port = static_cast<std::uint16_t>(rng());
      b.weight = weights < 2 ? 1 + static_cast<std::uint32_t>(weights) * 6
                 : weights == 2 ? static_cast<std::uint32_t>(rng() % 6)
                                : 1 + static_cast<std::uint32_t>(rng() % 65535);
    }
    std::vector<std::uint16_t> t(m);
    ASSERT_TRUE(ctlb::lb::detail::build(p, t, arrivals_below));
    ASSERT_EQ(t, stepwise(p, m)) << "pool " << round << ": M " << m << ", N " << n;
  }
}

TEST(Maglev, SameTableAsTheStepByStepConstruction) { expect_stepwise_tables(ctlb::lb::detail::kArrivalsBelow, 300); }

TEST(Maglev, SameTableAsTheStepByStepConstructionAllByArrivals) { expect_stepwise_tables(1, 50); }

// Arrivals from a point in the middle of the fill: walkers then start them
// with stopped walkers not yet gone and spare slots partly used up.
TEST(Maglev, SameTableAsTheStepByStepConstructionByArrivalsFromMidway) {
  for (const std::uint32_t from : {2u, 8u}) expect_stepwise_tables(from, 60);
}

// The largest table the configuration allows (1048573 slots), where the
// fill's arithmetic (arrivals mod M) has the most room to go wrong.
TEST(Maglev, SameTableAsTheStepByStepConstructionAtTheLargestSize) {
  constexpr std::uint32_t kLargest = 1048573;
  auto p = pool(100);
  EXPECT_EQ(build(p, kLargest), stepwise(p, kLargest)) << "equal weights";
  p.resize(10);
  for (std::size_t i = 0; i < p.size(); ++i) p[i].weight = 1 + static_cast<std::uint32_t>(i % 3);
  EXPECT_EQ(build(p, kLargest), stepwise(p, kLargest)) << "weights 1..3";
}

TEST(Maglev, ZeroWeightGetsNothingAndAllZeroIsEmpty) {
  auto p = pool(3);
  p[1].weight = 0;
  for (auto b : build(p)) {
    EXPECT_NE(b, 1);
    EXPECT_NE(b, kNoBackend);
  }
  for (auto& b : p) b.weight = 0;
  for (auto b : build(p, 101)) EXPECT_EQ(b, kNoBackend);
  for (auto b : build({}, 101)) EXPECT_EQ(b, kNoBackend);
}

TEST(Maglev, PickSpreadsFlowHashesOverTheTable) {
  const auto t = build(pool(5), 1009);
  std::map<std::uint16_t, int> seen;
  std::mt19937 rng(1);
  for (int i = 0; i < 50000; ++i) ++seen[ctlb::lb::maglev_pick(t, static_cast<std::uint32_t>(rng()))];
  ASSERT_EQ(seen.size(), 5u);
  for (const auto& [b, c] : seen) EXPECT_NEAR(c, 10000, 600) << "backend " << b;
}

}  // namespace
