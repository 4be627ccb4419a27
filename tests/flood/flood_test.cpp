// SYN floods through the real tracker (issue 6, item 4), without EAL: the
// per-worker new-flow limit (a token bucket) and the table's behaviour when
// a flood fills it: established connections keep working, half-open entries
// are the ones evicted, the table never grows.
#include <gtest/gtest.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

#include "dataplane/flow/tracker.hpp"
#include "tests/unit/table_util.hpp"

namespace {

using ctlb::flow::Clock;
using ctlb::flow::Tracker;
using ctlb::flow::TrackResult;
using ctlb::packet::IpFamily;
using ctlb::packet::PacketView;
using ctlb::tcp::CtState;
using ctlb::tcp::Reason;
using ctlb::tcp::Verdict;
namespace flag = ctlb::packet::tcpflag;

constexpr std::uint8_t kServer[4] = {198, 19, 0, 1};

// A segment between client (addr, port) and the server's port 80.
PacketView segment(std::uint32_t client, std::uint16_t cport, bool from_client, std::uint8_t flags,
                   std::uint32_t seq, std::uint32_t ack, std::uint16_t payload = 0) {
  PacketView v;
  v.family = IpFamily::V4;
  const std::uint8_t c[4] = {static_cast<std::uint8_t>(client >> 24), static_cast<std::uint8_t>(client >> 16),
                             static_cast<std::uint8_t>(client >> 8), static_cast<std::uint8_t>(client)};
  std::memcpy(from_client ? v.src : v.dst, c, 4);
  std::memcpy(from_client ? v.dst : v.src, kServer, 4);
  v.sport = from_client ? cport : 80;
  v.dport = from_client ? 80 : cport;
  v.seq = seq;
  v.ack = ack;
  v.flags = flags;
  v.window = 65535;
  v.header_len = 20;
  v.payload_len = payload;
  return v;
}

PacketView syn(std::uint32_t client, std::uint16_t cport) {
  return segment(client, cport, true, flag::kSyn, 1000, 0);
}

struct Rig {
  ctlb_test::HeapTable<ctlb::flow::V4> t4;
  ctlb_test::HeapTable<ctlb::flow::V6> t6;
  Tracker tr;
  explicit Rig(std::uint32_t capacity) : t4(capacity), t6(1024), tr(t4.table, t6.table, ctlb::tcp::Config{}) {}
  const ctlb::flow::TrackerCounters& c() const { return tr.counters(); }
  std::int64_t in_state(CtState s) const { return c().flows_in_state[static_cast<std::size_t>(s)]; }
};

// A complete connection of the legitimate clients (10.x), left established.
struct Established {
  std::uint32_t client;
  std::uint16_t port;
  std::uint32_t cseq = 5000, sseq = 9000;

  void open(Tracker& tr, std::uint64_t ms) {
    ASSERT_EQ(tr.track(segment(client, port, true, flag::kSyn, cseq, 0), Clock{ms}).verdict, Verdict::Accept);
    ASSERT_EQ(tr.track(segment(client, port, false, flag::kSyn | flag::kAck, sseq, cseq + 1), Clock{ms}).verdict,
              Verdict::Accept);
    ++cseq;
    ++sseq;
    const TrackResult r = tr.track(segment(client, port, true, flag::kAck, cseq, sseq), Clock{ms});
    ASSERT_EQ(r.state, CtState::Established);
  }
  // A request and its answer; both must pass as ESTABLISHED.
  void exchange(Tracker& tr, std::uint64_t ms, int& bad) {
    const TrackResult a = tr.track(segment(client, port, true, flag::kAck | flag::kPsh, cseq, sseq, 32), Clock{ms});
    cseq += 32;
    const TrackResult b = tr.track(segment(client, port, false, flag::kAck | flag::kPsh, sseq, cseq, 64), Clock{ms});
    sseq += 64;
    for (const TrackResult& r : {a, b})
      if (r.verdict != Verdict::Accept || r.state != CtState::Established || r.handle == ctlb::flow::kNoHandle) ++bad;
  }
  // Client FIN, server FIN-ACK, client ACK: TIME_WAIT.
  void close(Tracker& tr, std::uint64_t ms) {
    tr.track(segment(client, port, true, flag::kFin | flag::kAck, cseq, sseq), Clock{ms});
    ++cseq;
    tr.track(segment(client, port, false, flag::kFin | flag::kAck, sseq, cseq), Clock{ms});
    ++sseq;
    const TrackResult r = tr.track(segment(client, port, true, flag::kAck, cseq, sseq), Clock{ms});
    ASSERT_EQ(r.state, CtState::TimeWait);
  }
};

// Flood sources: distinct (address, port) pairs in 198.18.0.0/15 from a
// full-period LCG, so no source repeats within 2^32 draws.
struct Sources {
  std::uint32_t x = 12345;
  void next(std::uint32_t& addr, std::uint16_t& port) {
    x = x * 1664525u + 1013904223u;
    addr = 0xC6120000u | (x & 0x1ffffu);  // 198.18.0.0/15
    port = static_cast<std::uint16_t>(1024 + (x >> 17) % 60000);
  }
};

TEST(NewFlowLimit, TokenBucket) {
  Rig g(4096);
  g.tr.set_new_flow_limit(1000, 10);  // 1 per ms, 10 at once
  std::uint16_t port = 1;
  auto flood = [&](int n, std::uint64_t ms) {
    int created = 0;
    for (int i = 0; i < n; ++i) {
      const TrackResult r = g.tr.track(syn(0xC6120001u, port++), Clock{ms});
      if (r.verdict == Verdict::Accept) {
        EXPECT_NE(r.handle, ctlb::flow::kNoHandle);
        ++created;
      } else {
        EXPECT_EQ(r.verdict, Verdict::Drop);
        EXPECT_EQ(r.reason, Reason::RateLimited);
        EXPECT_EQ(r.handle, ctlb::flow::kNoHandle);
      }
    }
    return created;
  };
  EXPECT_EQ(flood(20, 1000), 10);  // the burst
  EXPECT_EQ(g.c().new_flows_rate_limited, 10u);
  EXPECT_EQ(g.c().reasons[static_cast<std::size_t>(Reason::RateLimited)], 10u);
  EXPECT_EQ(g.c().invalid, 0u);
  EXPECT_EQ(g.c().flows_created, 10u);
  EXPECT_EQ(g.t4.table.size(), 10u);
  EXPECT_EQ(flood(10, 1000), 0);  // no time passed
  EXPECT_EQ(flood(10, 1005), 5);  // 5 ms: 5 tokens
  EXPECT_EQ(flood(30, 100'000), 10);  // a long pause refills up to the burst only
  EXPECT_EQ(g.c().tcp_packets, g.c().accepted + g.c().invalid + g.c().new_flows_rate_limited);
}

TEST(NewFlowLimit, FractionsOfATokenAccumulate) {
  Rig g(4096);
  // One token every 3.33 ms. (With a burst of 1 the bucket would overflow
  // between two 1-ms checks and lose the fractions: that is what a burst is.)
  g.tr.set_new_flow_limit(300, 2);
  int created = 0;
  std::uint16_t port = 1;
  for (std::uint64_t ms = 0; ms < 1000; ++ms)
    if (g.tr.track(syn(0xC6120002u, port++), Clock{10'000 + ms}).verdict == Verdict::Accept) ++created;
  EXPECT_GE(created, 300);  // 2 (the burst) + 999 ms x 0.3
  EXPECT_LE(created, 302);
}

TEST(NewFlowLimit, OnlyNewConnectionsSpendTokens) {
  Rig g(4096);
  g.tr.set_new_flow_limit(1, 1);
  Established e{0x0A000001u, 40000};
  e.open(g.tr, 5000);  // spends the only token
  int bad = 0;
  for (int i = 0; i < 100; ++i) e.exchange(g.tr, 5000, bad);
  EXPECT_EQ(bad, 0);
  // A retransmitted SYN of a known connection is not a new one either.
  EXPECT_NE(g.tr.track(segment(e.client, e.port, true, flag::kSyn, 4999, 0), Clock{5000}).verdict, Verdict::Drop);
  EXPECT_EQ(g.c().new_flows_rate_limited, 0u);
  EXPECT_EQ(g.tr.track(syn(0xC6120003u, 1), Clock{5000}).verdict, Verdict::Drop);
  EXPECT_EQ(g.c().new_flows_rate_limited, 1u);
}

TEST(NewFlowLimit, OffByDefaultAndChangeable) {
  Rig g(16384);
  EXPECT_EQ(g.tr.new_flow_rate(), 0u);
  std::uint16_t port = 1;
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(g.tr.track(syn(0xC6120004u, port++), Clock{1}).verdict, Verdict::Accept);
  g.tr.set_new_flow_limit(10, 2);
  EXPECT_EQ(g.tr.track(syn(0xC6120004u, port++), Clock{1}).verdict, Verdict::Accept);
  EXPECT_EQ(g.tr.track(syn(0xC6120004u, port++), Clock{1}).verdict, Verdict::Accept);
  EXPECT_EQ(g.tr.track(syn(0xC6120004u, port++), Clock{1}).verdict, Verdict::Drop);
  g.tr.set_new_flow_limit(10, 2);  // the same limit again: the bucket is not refilled
  EXPECT_EQ(g.tr.track(syn(0xC6120004u, port++), Clock{1}).verdict, Verdict::Drop);
  g.tr.set_new_flow_limit(0, 0);  // off again
  EXPECT_EQ(g.tr.track(syn(0xC6120004u, port++), Clock{1}).verdict, Verdict::Accept);
}

// Runs `syns` flood SYNs (in bursts of 32 through track_burst, as a worker
// does) with a round of exchanges on every established connection after
// each `every` of them; returns the exchanges that did not pass.
int flood(Rig& g, std::vector<Established>& conns, int syns, int every, std::uint64_t ms_per_round) {
  Sources src;
  std::uint64_t ms = 100'000;
  int bad = 0;
  std::vector<PacketView> views(32);
  const PacketView* ptrs[32];
  TrackResult out[32];
  for (int sent = 0; sent < syns;) {
    for (int b = 0; b < every && sent < syns; b += 32) {
      const unsigned n = static_cast<unsigned>(std::min(32, syns - sent));
      for (unsigned i = 0; i < n; ++i) {
        std::uint32_t a;
        std::uint16_t p;
        src.next(a, p);
        views[i] = syn(a, p);
        ptrs[i] = &views[i];
      }
      g.tr.track_burst(ptrs, n, Clock{ms}, out);
      sent += static_cast<int>(n);
    }
    for (auto& e : conns) e.exchange(g.tr, ms, bad);
    ms += ms_per_round;
  }
  return bad;
}

TEST(SynFlood, EstablishedConnectionsKeepWorkingAndHalfOpenGoFirst) {
  constexpr std::uint32_t kCapacity = 4096;
  Rig g(kCapacity);
  std::vector<Established> conns;
  for (std::uint16_t i = 0; i < 500; ++i) conns.push_back({0x0A000000u + i, static_cast<std::uint16_t>(40000 + i)});
  for (auto& e : conns) e.open(g.tr, 99'000);
  ASSERT_EQ(g.in_state(CtState::Established), 500);
  // Connections that ended before the flood: TIME_WAIT outranks half-open.
  for (std::uint16_t i = 0; i < 200; ++i) {
    Established done{0x0B000000u + i, static_cast<std::uint16_t>(30000 + i)};
    done.open(g.tr, 99'000);
    done.close(g.tr, 99'000);
  }
  ASSERT_EQ(g.in_state(CtState::TimeWait), 200);

  EXPECT_EQ(flood(g, conns, 200'000, 256, 1), 0) << "packets of established connections failed during the flood";

  const auto& c = g.c();
  EXPECT_EQ(g.in_state(CtState::Established), 500);
  // A full table makes room among the new key's two buckets only; a pair
  // with no half-open entry in it is rare (3 times in this run).
  EXPECT_GE(g.in_state(CtState::TimeWait), 190);
  EXPECT_LE(g.t4.table.size(), kCapacity);  // bounded: the table never grows
  EXPECT_GT(c.flows_evicted, 100'000u);     // the flood replaced itself
  // Evictions took half-open entries (SYN_SENT), never an established one.
  const auto to_none = [&](CtState s) {
    return c.transitions[static_cast<std::size_t>(s)][static_cast<std::size_t>(CtState::None)];
  };
  EXPECT_EQ(to_none(CtState::SynSent) + to_none(CtState::TimeWait), c.flows_evicted + c.flows_reclaimed);
  EXPECT_LE(to_none(CtState::TimeWait), 10u);
  EXPECT_EQ(to_none(CtState::Established), 0u);
  EXPECT_EQ(static_cast<std::uint64_t>(g.in_state(CtState::SynSent) + g.in_state(CtState::TimeWait)) + 500,
            g.t4.table.size());
  EXPECT_EQ(c.flows_created, 700 + 200'000 - c.untracked_table_full);
  EXPECT_EQ(c.invalid, 0u);
}

TEST(SynFlood, NewFlowLimitKeepsTheTableFromFilling) {
  constexpr std::uint32_t kCapacity = 4096;
  Rig g(kCapacity);
  g.tr.set_new_flow_limit(1000, 600);  // per second; the established ones fit the burst
  std::vector<Established> conns;
  for (std::uint16_t i = 0; i < 500; ++i) conns.push_back({0x0A000000u + i, static_cast<std::uint16_t>(40000 + i)});
  for (auto& e : conns) e.open(g.tr, 99'000);
  ASSERT_EQ(g.in_state(CtState::Established), 500);

  // The flood starts 1 s later (the bucket is full again: 600 tokens) and
  // lasts 782 rounds of 1 ms (782 tokens more).
  EXPECT_EQ(flood(g, conns, 200'000, 256, 1), 0);
  const auto& c = g.c();
  EXPECT_EQ(g.in_state(CtState::Established), 500);
  EXPECT_LE(c.flows_created, 500u + 600u + 782u);
  EXPECT_GE(c.flows_created, 500u + 600u + 780u);
  EXPECT_EQ(c.new_flows_rate_limited, 200'000u + 500u - c.flows_created);
  EXPECT_EQ(c.flows_evicted, 0u);  // the limit, not eviction, kept the table from filling
  EXPECT_EQ(c.untracked_table_full, 0u);
  EXPECT_EQ(c.invalid, 0u);
}

}  // namespace
