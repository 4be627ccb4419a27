// The tracker's in-place path for established connections must make exactly
// the changes of the general path (tcp::track on a copy). Random traffic on a
// few established connections, out-of-window and retransmitted segments,
// zero windows and SACK included, goes through two trackers, one with the
// fast path and one without; after every packet the results and the stored
// entries (hot and cold) must be identical, byte for byte. A third tracker
// gets the same traffic as frames, in bursts of random length, through
// track_frames() (inline mode's path: data and ACK segments read by
// parse_ack_segment() and done in place, the rest parsed whole); after each
// burst its results are the general path's and its tables are the first
// tracker's, byte for byte; frames it hands over (keep() false) are neither
// tracked nor counted until given to it again.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "dataplane/common/bytes.hpp"
#include "dataplane/flow/tracker.hpp"
#include "frame_builder.hpp"
#include "table_util.hpp"

namespace {

using ctlb::flow::Clock;
using ctlb::flow::Tracker;
using ctlb::flow::TrackResult;
using ctlb::flow::V4;
using ctlb::flow::V6;
using ctlb::packet::PacketView;
namespace tf = ctlb::packet::tcpflag;

struct Pair {
  ctlb_test::HeapTable<V4> a4{1024}, b4{1024}, c4{1024};
  ctlb_test::HeapTable<V6> a6{64}, b6{64}, c6{64};
  Tracker fast;
  Tracker general;
  Tracker frames;  // track_frames(), fast path on
  explicit Pair(const ctlb::tcp::Config& cfg)
      : fast{a4.table, a6.table, cfg}, general{b4.table, b6.table, cfg}, frames{c4.table, c6.table, cfg} {
    general.set_fast_path(false);
  }
};

struct Side {
  std::uint32_t next;  // next sequence number to send
  std::uint16_t window;
};

struct Conn {
  std::uint32_t client_addr;
  std::uint16_t client_port;
  Side side[2];  // [0] client, [1] server
};

constexpr std::uint32_t kServer = 0xC6120202;  // 198.18.2.2

PacketView segment(const Conn& c, bool from_client, std::uint8_t flags, std::uint32_t seq, std::uint32_t ack,
                   std::uint32_t len, std::uint16_t win) {
  PacketView v;
  v.family = ctlb::packet::IpFamily::V4;
  const std::uint32_t s = from_client ? c.client_addr : kServer;
  const std::uint32_t d = from_client ? kServer : c.client_addr;
  ctlb::store_be32(v.src, s);
  ctlb::store_be32(v.dst, d);
  v.sport = from_client ? c.client_port : 80;
  v.dport = from_client ? 80 : c.client_port;
  v.flags = flags;
  v.seq = seq;
  v.ack = ack;
  v.window = win;
  v.header_len = 20;
  v.payload_len = len;
  return v;
}

// The frame of a hand-built IPv4 view: its options as bytes; a data or ACK
// segment without SACK blocks gets NOP, NOP, timestamps when `timestamps`.
ctlb_test::Bytes frame_of(const PacketView& v, bool timestamps) {
  ctlb_test::Tcp t;
  t.sport = v.sport;
  t.dport = v.dport;
  t.seq = v.seq;
  t.ack = v.ack;
  t.flags = v.flags;
  t.window = v.window;
  t.payload_len = v.payload_len;
  if (v.options.has_wscale) ctlb_test::append(t.options, ctlb_test::opt_wscale(v.options.wscale));
  if (v.options.sack_permitted) ctlb_test::append(t.options, ctlb_test::opt_sack_perm());
  for (unsigned b = 0; b < v.options.sack_blocks; ++b)
    ctlb_test::append(t.options, ctlb_test::opt_sack({{v.options.sack_right[b] - 100, v.options.sack_right[b]}}));
  if (t.options.empty() && timestamps) {
    t.options = ctlb_test::opt_nop();
    ctlb_test::append(t.options, ctlb_test::opt_nop());
    ctlb_test::append(t.options, ctlb_test::opt_timestamp(12345, 678));
  }
  ctlb_test::Ipv4 ip;
  std::memcpy(ip.src, v.src, 4);
  std::memcpy(ip.dst, v.dst, 4);
  return ctlb_test::tcp4_frame(t, ip);
}

void expect_same(const TrackResult& a, const TrackResult& b, int i) {
  ASSERT_EQ(a.verdict, b.verdict) << "packet " << i;
  ASSERT_EQ(a.reason, b.reason) << "packet " << i;
  ASSERT_EQ(a.dir, b.dir) << "packet " << i;
  ASSERT_EQ(a.state, b.state) << "packet " << i;
  ASSERT_EQ(a.initiator, b.initiator) << "packet " << i;
  ASSERT_EQ(a.responder, b.responder) << "packet " << i;
  ASSERT_EQ(a.handle, b.handle) << "packet " << i;
}

void same_as_general_path(const ctlb::tcp::Config& cfg) {
  Pair p(cfg);
  std::mt19937_64 rng(20261121);
  std::vector<Conn> conns;
  std::uint64_t now = 1000;
  int fast_hits = 0;
  for (int i = 0; i < 8; ++i) {
    Conn c{0xC6120100u + 2 + static_cast<std::uint32_t>(i), static_cast<std::uint16_t>(40000 + i),
           {{1000u * (i + 1), 502}, {0x80000000u + 777u * i, 509}}};
    // Handshake with window scaling on both sides (scale 7).
    auto handshake = [&](Tracker& t) {
      PacketView syn = segment(c, true, tf::kSyn, c.side[0].next, 0, 0, 64240);
      syn.header_len = 24;
      syn.options.has_wscale = true;
      syn.options.wscale = 7;
      syn.options.sack_permitted = true;
      t.track(syn, Clock{now});
      PacketView synack = segment(c, false, tf::kSyn | tf::kAck, c.side[1].next, c.side[0].next + 1, 0, 65160);
      synack.header_len = 24;
      synack.options = syn.options;
      t.track(synack, Clock{now});
      t.track(segment(c, true, tf::kAck, c.side[0].next + 1, c.side[1].next + 1, 0, 502), Clock{now});
    };
    handshake(p.fast);
    handshake(p.general);
    handshake(p.frames);
    c.side[0].next += 1;
    c.side[1].next += 1;
    conns.push_back(c);
  }
  PacketView last{};
  // The frames tracker's burst so far: frames, and the general path's results.
  std::vector<ctlb_test::Bytes> burst;
  std::vector<TrackResult> expected;
  std::mt19937_64 burst_rng(7);  // its own: the traffic is what it was without the third tracker
  unsigned burst_len = 1;
  int ack_segments = 0;
  std::size_t handed_over = 0;
  // Every burst goes through track_frames twice, as two workers would take
  // it: first the connections this worker owns (keep() refuses the others,
  // as hand-overs), then, as the other worker, the frames handed over. Each
  // connection's packets stay in order. Every other burst as the worker
  // runs it (kResults false: a segment done in place reports its verdict only).
  unsigned bursts = 0;
  auto flush = [&](int i) {
    std::vector<ctlb::packet::Frame> frames;
    for (const auto& f : burst)
      frames.push_back({f.data(), static_cast<std::uint32_t>(f.size()), static_cast<std::uint32_t>(f.size())});
    const std::uint32_t refused_parity = bursts & 2 ? 1 : 2;  // 2: refuse none
    const bool whole = bursts++ % 2 == 0;
    std::vector<ctlb::packet::Frame> handed;
    std::vector<unsigned> handed_index;
    unsigned done_count = 0;
    std::vector<bool> done(burst.size(), false);
    auto check = [&](unsigned k, ctlb::packet::ParseResult res, const TrackResult* r) {
      ASSERT_FALSE(done[k]) << "frame " << k << " reported twice";
      done[k] = true;
      ++done_count;
      ASSERT_EQ(res, ctlb::packet::ParseResult::Tcp);
      ASSERT_NE(r, nullptr);
      ASSERT_EQ(r->verdict, expected[k].verdict) << "packet " << i;
      if (!whole) return;
      expect_same(*r, expected[k], i);
      EXPECT_EQ(r->backend, expected[k].backend);
      EXPECT_EQ(r->hash, expected[k].hash);
    };
    auto run = [&](const ctlb::packet::Frame* f, unsigned n, auto keep, auto done_fn) {
      if (whole) p.frames.track_frames<true>(f, n, Clock{now}, keep, done_fn);
      else p.frames.track_frames<false>(f, n, Clock{now}, keep, done_fn);
    };
    run(
        frames.data(), static_cast<unsigned>(frames.size()),
        [&](unsigned k, std::uint32_t hash) {
          if ((hash & 1) != refused_parity) return true;
          handed.push_back(frames[k]);
          handed_index.push_back(k);
          return false;
        },
        [&](unsigned k, ctlb::packet::ParseResult res, const TrackResult* r) { check(k, res, r); });
    if (::testing::Test::HasFatalFailure()) return;
    for (unsigned k : handed_index) ASSERT_FALSE(done[k]) << "a frame handed over was tracked";
    run(
        handed.data(), static_cast<unsigned>(handed.size()), [](unsigned, std::uint32_t) { return true; },
        [&](unsigned h, ctlb::packet::ParseResult res, const TrackResult* r) { check(handed_index[h], res, r); });
    if (::testing::Test::HasFatalFailure()) return;
    handed_over += handed.size();
    ASSERT_EQ(done_count, burst.size());
    ASSERT_EQ(std::memcmp(p.c4.mem.get(), p.a4.mem.get(), p.a4.bytes), 0)
        << "frames tracker's IPv4 table differs after the burst ending with packet " << i;
    burst.clear();
    expected.clear();
    burst_len = 1 + static_cast<unsigned>(burst_rng() % Tracker::kMaxBurst);
  };
  for (int i = 0; i < 200000; ++i) {
    const std::uint64_t step = rng() % 3;
    if (burst.empty()) now += step;  // one time for a burst, as a worker has
    Conn& c = conns[rng() % conns.size()];
    const bool from_client = rng() & 1;
    Side& me = c.side[from_client ? 0 : 1];
    Side& peer = c.side[from_client ? 1 : 0];
    PacketView v;
    const unsigned kind = rng() % 100;
    if (kind < 5 && last.family != ctlb::packet::IpFamily::None) {
      v = last;  // exact retransmission of the previous segment
    } else {
      std::uint32_t len = (rng() % 3 == 0) ? 0 : static_cast<std::uint32_t>(rng() % 1449);
      std::uint32_t seq = me.next;
      std::uint32_t ack = peer.next;
      std::uint16_t win = me.window;
      if (kind < 10) seq += static_cast<std::uint32_t>(rng() % 4000000) - 2000000;  // maybe out of window
      else if (kind < 14) ack += static_cast<std::uint32_t>(rng() % 200000) - 100000;
      else if (kind < 17) seq -= static_cast<std::uint32_t>(rng() % 3000);            // old data
      if (kind >= 17 && kind < 20) win = 0;
      else if (kind >= 20 && kind < 25) win = static_cast<std::uint16_t>(rng());
      std::uint8_t flags = tf::kAck;
      if (len) flags |= tf::kPsh;
      if (kind == 25) flags |= tf::kEce;
      if (kind == 26) flags |= tf::kUrg;
      v = segment(c, from_client, flags, seq, ack, len, win);
      if (kind == 27 || kind == 28) {  // SACK blocks
        v.header_len = 32;
        v.options.sack_blocks = 1;
        v.options.sack_right[0] = ack + static_cast<std::uint32_t>(rng() % 5000);
      }
      if (kind >= 30 && seq == me.next) me.next += len;  // the stream moves on
      if (kind >= 30 && rng() % 50 == 0) me.window = static_cast<std::uint16_t>(400 + rng() % 200);
    }
    last = v;
    const TrackResult a = p.fast.track(v, Clock{now});
    const TrackResult b = p.general.track(v, Clock{now});
    expect_same(a, b, i);
    if (::testing::Test::HasFatalFailure()) return;
    burst.push_back(frame_of(v, burst_rng() & 1));
    expected.push_back(b);
    ctlb::packet::AckSegment seg;
    ack_segments += ctlb::packet::parse_ack_segment(burst.back().data(), burst.back().size(), burst.back().size(), seg);
    if (burst.size() == burst_len) {
      flush(i);
      if (::testing::Test::HasFatalFailure()) return;
    }
    if (a.handle != ctlb::flow::kNoHandle) {
      const auto& ea = p.a4.table.entry(a.handle);
      const auto& eb = p.b4.table.entry(b.handle);
      ASSERT_EQ(std::memcmp(&ea, &eb, sizeof ea), 0) << "hot entry differs after packet " << i;
      ASSERT_EQ(std::memcmp(&p.a4.table.cold(a.handle), &p.b4.table.cold(b.handle), sizeof(ctlb::flow::Cold)), 0)
          << "cold record differs after packet " << i;
    }
  }
  if (!burst.empty()) flush(200000);
  if (::testing::Test::HasFatalFailure()) return;
  for (std::size_t r = 0; r < ctlb::tcp::kReasonCount; ++r) {
    EXPECT_EQ(p.fast.counters().reasons[r], p.general.counters().reasons[r]) << ctlb::tcp::kReasonNames[r];
    EXPECT_EQ(p.frames.counters().reasons[r], p.general.counters().reasons[r]) << ctlb::tcp::kReasonNames[r];
  }
  EXPECT_EQ(p.frames.counters().fast_path, p.fast.counters().fast_path);
  EXPECT_EQ(p.frames.counters().tcp_packets, p.fast.counters().tcp_packets);
  EXPECT_EQ(p.frames.counters().parse[static_cast<std::size_t>(ctlb::packet::ParseResult::Tcp)], 200000u);
  EXPECT_GT(ack_segments, 150000);  // most went through parse_ack_segment
  EXPECT_GT(handed_over, 10000u);
  // The traffic must really have exercised both paths.
  fast_hits = static_cast<int>(p.fast.counters().fast_path);
  EXPECT_GT(fast_hits, 100000);
  EXPECT_EQ(p.general.counters().fast_path, 0u);
  EXPECT_GT(p.fast.counters().invalid, 500u);
  EXPECT_GT(p.fast.counters().tcp_packets - p.fast.counters().fast_path, 5000u);
}

// The fast path edits Status as a word at the positions of tcp::status_bits;
// they must be where the compiler put the bitfields (gcc also checks this at
// compile time; clang, which builds the fuzz targets, cannot).
TEST(StatusWord, FieldsWhereTheBitfieldsAre) {
  namespace sb = ctlb::tcp::status_bits;
  using ctlb::tcp::Status;
  using ctlb::tcp::status_word;
  auto one = [](auto set) {
    Status s{};
    set(s);
    return status_word(s);
  };
  EXPECT_EQ(one([](Status& s) { s.ct_state = 15; }), sb::kCtState.mask());
  EXPECT_EQ(one([](Status& s) { s.initiator = 15; }), sb::kInitiator.mask());
  EXPECT_EQ(one([](Status& s) { s.responder = 15; }), sb::kResponder.mask());
  EXPECT_EQ(one([](Status& s) { s.initiator_is_lo = 1; }), sb::kInitiatorIsLo.mask());
  EXPECT_EQ(one([](Status& s) { s.seen_reply = 1; }), sb::kSeenReply.mask());
  EXPECT_EQ(one([](Status& s) { s.assured = 1; }), sb::kAssured.mask());
  EXPECT_EQ(one([](Status& s) { s.timeout_class = 1; }), sb::kTimeoutClass.mask());
  EXPECT_EQ(one([](Status& s) { s.timeout_cap = 3; }), sb::kTimeoutCap.mask());
  EXPECT_EQ(one([](Status& s) { s.last_index = 7; }), sb::kLastIndex.mask());
  EXPECT_EQ(one([](Status& s) { s.last_dir = 1; }), sb::kLastDir.mask());
  EXPECT_EQ(one([](Status& s) { s.last_flags = 15; }), sb::kLastFlags.mask());
  EXPECT_EQ(one([](Status& s) { s.last_wscale = 15; }), sb::kLastWscale.mask());
  EXPECT_EQ(one([](Status& s) { s.retrans = 3; }), sb::kRetrans.mask());
  const Status back = ctlb::tcp::status_of_word(sb::kRetrans.value(2) | sb::kLastIndex.value(5));
  EXPECT_EQ(back.retrans, 2u);
  EXPECT_EQ(back.last_index, 5u);
  EXPECT_EQ(back.ct_state, 0u);
}

TEST(FastPath, SameAsGeneralPath) { same_as_general_path(ctlb::tcp::Config{}); }

// The fast path works out choose_timeout()'s caps for ESTABLISHED once per
// tracker; with other timeouts some caps never apply. Here ESTABLISHED is no
// longer than the retransmission and unacknowledged-data timeouts (no cap
// at all), then between them, each with another max_retrans.
TEST(FastPath, SameAsGeneralPathWhateverTheTimeouts) {
  using ctlb::tcp::CtState;
  using ctlb::tcp::TimeoutClass;
  auto with = [](std::uint32_t established_s, std::uint32_t retrans_s, std::uint32_t unack_s, std::uint8_t max) {
    ctlb::tcp::Config cfg{};
    cfg.timeouts.ms[static_cast<std::size_t>(CtState::Established)] = established_s * 1000u;
    cfg.timeouts.ms[static_cast<std::size_t>(TimeoutClass::Retrans)] = retrans_s * 1000u;
    cfg.timeouts.ms[static_cast<std::size_t>(TimeoutClass::Unack)] = unack_s * 1000u;
    cfg.max_retrans = max;
    return cfg;
  };
  for (const ctlb::tcp::Config& cfg : {with(200, 300, 300, 1), with(250, 200, 300, 2), with(250, 300, 200, 0)}) {
    SCOPED_TRACE(testing::Message() << "established " << cfg.timeouts.of(CtState::Established) << " ms, retrans "
                                    << cfg.timeouts.of(TimeoutClass::Retrans) << " ms, unack "
                                    << cfg.timeouts.of(TimeoutClass::Unack) << " ms, max_retrans "
                                    << int{cfg.max_retrans});
    same_as_general_path(cfg);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace
