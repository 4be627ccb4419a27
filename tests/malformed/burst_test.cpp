// Malformed frames in the same bursts as good connections, through the real
// parsers and Tracker::track_frames the way a worker runs them
// (dataplane/worker.cpp, process_burst): the good connections' verdicts,
// states and table entries are exactly those they get alone, and every bad
// frame is counted under its reason and forwarded or dropped by policy.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "corpus.hpp"
#include "dataplane/flow/tracker.hpp"
#include "tests/unit/table_util.hpp"

namespace {

using namespace ctlb_malformed;
using ctlb::flow::Clock;
using ctlb::flow::Tracker;
using ctlb::flow::TrackResult;
using ctlb::flow::V4;
using ctlb::flow::V6;
using ctlb::packet::PacketView;
namespace tf = ctlb::packet::tcpflag;

// ---- good connections -----------------------------------------------------------

struct Conversation {
  std::string name;
  bool v6 = false;
  std::vector<Tag> tags;
  std::vector<Ext> exts;  // IPv6
  int ihl_words = 5;      // IPv4
  std::uint8_t client_last = 1;
  std::uint16_t cport = 40000;
  std::uint16_t sport = 80;
  std::uint32_t cisn = 1000;
  std::uint32_t sisn = 5000;
  std::size_t c_data = 100;  // payload bytes each way
  std::size_t s_data = 200;
  bool rst_close = false;

  Bytes segment(bool from_client, std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, std::size_t payload,
                Bytes options = {}) const {
    Tcp t;
    t.sport = from_client ? cport : sport;
    t.dport = from_client ? sport : cport;
    t.seq = seq;
    t.ack = ack;
    t.flags = flags;
    t.window = (flags & tf::kSyn) ? 64240 : 502;  // scaled by 2^7 after the handshake
    t.options = std::move(options);
    t.payload_len = payload;
    std::uint8_t c[16] = {}, s[16] = {};
    if (v6) {
      const std::uint8_t prefix[4] = {0x20, 0x01, 0x0d, 0xb8};
      std::memcpy(c, prefix, 4);
      std::memcpy(s, prefix, 4);
      c[5] = 0x18;
      s[5] = 0x19;
      c[15] = client_last;
      s[15] = 1;
      Ipv6 ip;
      std::memcpy(ip.src, from_client ? c : s, 16);
      std::memcpy(ip.dst, from_client ? s : c, 16);
      ip.exts = exts;
      return ether(kEtherIpv6, ip.build(t.build()), tags, 60);
    }
    const std::uint8_t c4[4] = {198, 18, 0, client_last}, s4[4] = {198, 19, 0, 1};
    Ipv4 ip;
    std::memcpy(ip.src, from_client ? c4 : s4, 4);
    std::memcpy(ip.dst, from_client ? s4 : c4, 4);
    ip.ihl_words = ihl_words;
    return ether(kEtherIpv4, ip.build(t.build()), tags, 60);  // short frames padded to the Ethernet minimum
  }

  std::vector<Bytes> frames() const {
    Bytes syn_options = opt_mss(1460);
    append(syn_options, opt_sack_perm());
    append(syn_options, opt_nop());
    append(syn_options, opt_wscale(7));
    const std::uint32_t c = cisn, s = sisn;
    const auto cd = static_cast<std::uint32_t>(c_data), sd = static_cast<std::uint32_t>(s_data);
    std::vector<Bytes> out = {
        segment(true, tf::kSyn, c, 0, 0, syn_options),
        segment(false, tf::kSyn | tf::kAck, s, c + 1, 0, syn_options),
        segment(true, tf::kAck, c + 1, s + 1, 0),
        segment(true, tf::kPsh | tf::kAck, c + 1, s + 1, c_data),
        segment(false, tf::kAck, s + 1, c + 1 + cd, 0),
        segment(false, tf::kPsh | tf::kAck, s + 1, c + 1 + cd, s_data),
        segment(true, tf::kAck, c + 1 + cd, s + 1 + sd, 0),
    };
    if (rst_close) {
      out.push_back(segment(true, tf::kRst | tf::kAck, c + 1 + cd, s + 1 + sd, 0));
    } else {
      out.push_back(segment(true, tf::kFin | tf::kAck, c + 1 + cd, s + 1 + sd, 0));
      out.push_back(segment(false, tf::kFin | tf::kAck, s + 1 + sd, c + 2 + cd, 0));
      out.push_back(segment(true, tf::kAck, c + 2 + cd, s + 2 + sd, 0));
    }
    return out;
  }
};

std::vector<Conversation> conversations() {
  std::vector<Conversation> out;
  Conversation a{"ipv4_padded"};
  a.client_last = 1;
  out.push_back(a);
  Conversation b{"dot1q_ipv4_options_jumbo"};
  b.client_last = 2;
  b.tags = {{0x8100, 100}};
  b.ihl_words = 6;
  b.s_data = 9000 - 18 - 24 - 20;  // a 9000-byte frame
  out.push_back(b);
  Conversation c{"qinq_ipv4_rst"};
  c.client_last = 3;
  c.tags = {{0x88A8, 10}, {0x8100, 20}};
  c.rst_close = true;
  out.push_back(c);
  Conversation d{"ipv6_exts_jumbo"};
  d.client_last = 4;
  d.v6 = true;
  d.exts = {Ext{0, 0}, Ext{60, 1}};
  d.c_data = 9000 - 14 - 40 - 24 - 20;
  out.push_back(d);
  Conversation e{"dot1q_ipv6_rst"};
  e.client_last = 5;
  e.v6 = true;
  e.tags = {{0x8100, 200}};
  e.rst_close = true;
  out.push_back(e);
  Conversation f{"ipv4_same_port_as_corpus"};  // the corpus's ports, other addresses
  f.client_last = 6;
  f.cport = 40000;
  f.sport = 80;
  f.cisn = 0xfffffff0;  // sequence numbers wrap
  out.push_back(f);
  return out;
}

// The connections' packets, one step of each in turn.
std::vector<Case> good_packets(std::vector<std::size_t>* last_of_conversation = nullptr) {
  std::vector<std::vector<Bytes>> per;
  for (const Conversation& c : conversations()) per.push_back(c.frames());
  std::vector<Case> out;
  if (last_of_conversation) last_of_conversation->assign(per.size(), 0);
  for (std::size_t step = 0;; ++step) {
    bool any = false;
    for (std::size_t k = 0; k < per.size(); ++k) {
      if (step >= per[k].size()) continue;
      any = true;
      if (last_of_conversation) (*last_of_conversation)[k] = out.size();
      out.push_back(Case{"good", per[k][step], per[k][step].size(), ParseResult::Tcp});
    }
    if (!any) break;
  }
  return out;
}

// ---- a worker over byte buffers -------------------------------------------------

struct Fate {
  ParseResult parse = ParseResult::Tcp;
  bool tracked = false;
  TrackResult r;
  std::uint32_t payload = 0;
  bool forwarded = false;
};

struct WorkerCounters {
  std::uint64_t forwarded_untracked = 0;
  std::uint64_t forwarded_invalid = 0;
  std::uint64_t dropped_invalid = 0;
};

// Zeroed table memory, so that two runs' tables compare byte for byte.
template <class F>
struct ZeroedTable {
  std::size_t bytes;
  ctlb_test::Region mem;
  ctlb::flow::FlowTable<F> table;
  explicit ZeroedTable(std::uint32_t capacity)
      : bytes(ctlb::flow::FlowTable<F>::bytes_needed(capacity)),
        mem(ctlb_test::aligned_region(bytes)),
        table((std::memset(mem.get(), 0, bytes), ctlb::flow::FlowTable<F>::create(mem.get(), capacity))) {}
};

// What process_burst() in dataplane/worker.cpp does with an rx burst, one
// worker, mode inline: Tracker::track_frames (which parses each frame,
// counts its result and tracks the TCP segments), then forward or drop each
// one in order. Before each TCP segment the burst also holds a segment of
// another connection that this worker hands over (keep() refuses it), so
// the tracker's slot for it is reused at once, as in a worker with
// software steering.
class Worker {
 public:
  explicit Worker(bool drop_invalid) : drop_invalid_(drop_invalid) {}

  std::vector<Fate> run(const std::vector<const Case*>& frames, unsigned burst) {
    std::vector<Fate> fates(frames.size());
    for (std::size_t at = 0; at < frames.size(); at += burst) {
      const unsigned n = static_cast<unsigned>(std::min<std::size_t>(burst, frames.size() - at));
      process_burst(&frames[at], n, &fates[at]);
    }
    return fates;
  }

  ZeroedTable<V4> t4{4096};
  ZeroedTable<V6> t6{1024};
  Tracker tracker{t4.table, t6.table, ctlb::tcp::Config{}};
  WorkerCounters counters;

 private:
  void process_burst(const Case* const* frames, unsigned n, Fate* fates) {
    std::vector<ExactCopy> copies;
    std::vector<int> index;  // of each frame given to the tracker: the case, or -1 for another connection's
    std::vector<std::uint32_t> wire;
    copies.reserve(2 * n);
    for (unsigned i = 0; i < n; ++i) {
      PacketView v;
      if (parse_exact(*frames[i], v) == ParseResult::Tcp) {
        Bytes other = frames[i]->frame;
        other[v.l4_offset] ^= 0x55;  // another connection's segment, handed over
        copies.emplace_back(other);
        index.push_back(-1);
        wire.push_back(static_cast<std::uint32_t>(frames[i]->wire));
      }
      copies.emplace_back(frames[i]->frame);
      index.push_back(static_cast<int>(i));
      wire.push_back(static_cast<std::uint32_t>(frames[i]->wire));
    }
    // Bursts of at most kMaxBurst frames, as the worker's.
    for (std::size_t at = 0; at < copies.size(); at += Tracker::kMaxBurst) {
      const unsigned m = static_cast<unsigned>(std::min<std::size_t>(Tracker::kMaxBurst, copies.size() - at));
      ctlb::packet::Frame burst[Tracker::kMaxBurst];
      for (unsigned k = 0; k < m; ++k)
        burst[k] = {copies[at + k].data(), static_cast<std::uint32_t>(copies[at + k].size()), wire[at + k]};
      tracker.track_frames<true>(
          burst, m, Clock{kNowMs}, [&](unsigned k, std::uint32_t) { return index[at + k] >= 0; },
          [&](unsigned k, ParseResult res, const TrackResult* r) {
            ASSERT_GE(index[at + k], 0) << "a segment handed over was tracked";
            Fate& f = fates[index[at + k]];
            f.parse = res;
            if (r) {
              f.tracked = true;
              f.r = *r;
              PacketView v;
              parse_exact(*frames[index[at + k]], v);
              f.payload = v.payload_len;
            }
            decide(f);
          });
    }
  }

  void decide(Fate& f) {
    bool invalid;
    if (f.tracked) {
      invalid = f.r.verdict == ctlb::tcp::Verdict::Invalid;
    } else if (ctlb::packet::is_malformed(f.parse)) {
      invalid = true;
    } else {
      ++counters.forwarded_untracked;
      f.forwarded = true;
      return;
    }
    if (invalid && drop_invalid_) {
      ++counters.dropped_invalid;
      return;
    }
    if (invalid) ++counters.forwarded_invalid;
    f.forwarded = true;
  }

  // One clock for every burst: a packet's timestamps do not depend on how
  // many other frames shared its bursts.
  static constexpr std::uint64_t kNowMs = 1'000'000;
  bool drop_invalid_;
};

// The good packets alone, then the same packets with `bad` frames between
// them at places drawn from `seed`. Returns where each good packet went.
struct Mixed {
  std::vector<const Case*> frames;
  std::vector<std::size_t> good_at;  // index in `frames` of good packet i
};

Mixed mix(const std::vector<Case>& good, const std::vector<const Case*>& bad, std::uint64_t seed) {
  Mixed m;
  std::vector<char> is_good(good.size() + bad.size(), 0);
  std::fill(is_good.begin(), is_good.begin() + static_cast<std::ptrdiff_t>(good.size()), 1);
  std::mt19937_64 rng(seed);
  std::shuffle(is_good.begin(), is_good.end(), rng);
  std::size_t g = 0, b = 0;
  for (const char take_good : is_good) {
    if (take_good) {
      m.good_at.push_back(m.frames.size());
      m.frames.push_back(&good[g++]);
    } else {
      m.frames.push_back(bad[b++]);
    }
  }
  return m;
}

std::string describe(const Fate& f) {
  return std::string(ctlb::packet::name(f.parse)) + " tracked=" + std::to_string(f.tracked) +
         " verdict=" + std::to_string(static_cast<int>(f.r.verdict)) + " reason=" +
         std::string(ctlb::tcp::name(f.r.reason)) + " state=" + std::to_string(static_cast<int>(f.r.state)) +
         " handle=" + std::to_string(f.r.handle) + " forwarded=" + std::to_string(f.forwarded);
}

void expect_same_fate(const Fate& alone, const Fate& mixed, bool same_handle, std::size_t i) {
  const bool same = alone.parse == mixed.parse && alone.tracked == mixed.tracked &&
                    alone.r.verdict == mixed.r.verdict && alone.r.reason == mixed.r.reason &&
                    alone.r.dir == mixed.r.dir && alone.r.state == mixed.r.state &&
                    alone.r.initiator == mixed.r.initiator && alone.r.responder == mixed.r.responder &&
                    alone.r.initiator_is_lo == mixed.r.initiator_is_lo && alone.r.hash == mixed.r.hash &&
                    alone.r.backend == mixed.r.backend && alone.r.syn_to_synack_ms == mixed.r.syn_to_synack_ms &&
                    (!same_handle || alone.r.handle == mixed.r.handle) && alone.payload == mixed.payload &&
                    alone.forwarded == mixed.forwarded;
  EXPECT_TRUE(same) << "good packet " << i << ": alone " << describe(alone) << ", mixed " << describe(mixed);
}

std::vector<Case> corpus_where(bool tcp) {
  std::vector<Case> out;
  for (Case& c : corpus())
    if ((c.want == ParseResult::Tcp) == tcp) out.push_back(std::move(c));
  return out;
}

// The good connections alone: every packet valid, each connection ends
// where its last packet takes it.
TEST(MalformedBurst, GoodConnectionsAlone) {
  std::vector<std::size_t> last;
  const std::vector<Case> good = good_packets(&last);
  std::vector<const Case*> frames;
  for (const Case& c : good) frames.push_back(&c);
  Worker w(true);
  const std::vector<Fate> fates = w.run(frames, 32);
  for (std::size_t i = 0; i < fates.size(); ++i) {
    ASSERT_TRUE(fates[i].tracked) << i;
    EXPECT_EQ(fates[i].r.verdict, ctlb::tcp::Verdict::Accept) << i << ": " << describe(fates[i]);
    EXPECT_TRUE(fates[i].forwarded) << i;
  }
  const std::vector<Conversation> convs = conversations();
  for (std::size_t k = 0; k < convs.size(); ++k)
    EXPECT_EQ(fates[last[k]].r.state,
              convs[k].rst_close ? ctlb::tcp::CtState::Close : ctlb::tcp::CtState::TimeWait)
        << convs[k].name;
  // The jumbo segments were tracked with their whole payload.
  std::vector<std::uint32_t> payloads;
  for (const Fate& f : fates) payloads.push_back(f.payload);
  EXPECT_NE(std::find(payloads.begin(), payloads.end(), 9000u - 18 - 24 - 20), payloads.end());
  EXPECT_NE(std::find(payloads.begin(), payloads.end(), 9000u - 14 - 40 - 24 - 20), payloads.end());
  EXPECT_EQ(w.counters.dropped_invalid, 0u);
}

// Every malformed or untracked frame of the corpus between the good packets:
// the good packets' fates, all tracker counters but the parse results, and
// the flow tables byte for byte are those of the good packets alone; the
// parse results grow by exactly the corpus's reasons; bad frames are dropped
// (policy drop) or forwarded (policy forward), untracked ones forwarded.
TEST(MalformedBurst, BadFramesLeaveGoodConnectionsExactlyAsAlone) {
  const std::vector<Case> good = good_packets();
  const std::vector<Case> bad_cases = corpus_where(false);
  std::array<std::uint64_t, ctlb::packet::kParseResultCount> bad_counts{};
  std::uint64_t malformed = 0;
  for (const Case& c : bad_cases) {
    ++bad_counts[static_cast<std::size_t>(c.want)];
    malformed += ctlb::packet::is_malformed(c.want);
  }
  for (const bool drop : {true, false}) {
    for (const unsigned burst : {32u, 5u}) {
      for (const std::size_t stride : {std::size_t{1}, std::size_t{40}}) {
        SCOPED_TRACE(std::string("policy ") + (drop ? "drop" : "forward") + ", burst " + std::to_string(burst) +
                     ", every " + std::to_string(stride) + " corpus frame(s)");
        std::vector<const Case*> bad;
        std::array<std::uint64_t, ctlb::packet::kParseResultCount> counts{};
        std::uint64_t bad_malformed = 0;
        for (std::size_t i = 0; i < bad_cases.size(); i += stride) {
          bad.push_back(&bad_cases[i]);
          ++counts[static_cast<std::size_t>(bad_cases[i].want)];
          bad_malformed += ctlb::packet::is_malformed(bad_cases[i].want);
        }
        if (stride == 1) {
          ASSERT_EQ(counts, bad_counts);
          ASSERT_EQ(bad_malformed, malformed);
        }
        std::vector<const Case*> alone_frames;
        for (const Case& c : good) alone_frames.push_back(&c);
        Worker alone(drop), mixed(drop);
        const std::vector<Fate> a = alone.run(alone_frames, burst);
        const Mixed m = mix(good, bad, 20261121 + burst + stride);
        const std::vector<Fate> b = mixed.run(m.frames, burst);

        for (std::size_t i = 0; i < good.size(); ++i) expect_same_fate(a[i], b[m.good_at[i]], true, i);
        std::size_t bad_seen = 0;
        for (std::size_t j = 0, g = 0; j < m.frames.size(); ++j) {
          if (g < m.good_at.size() && m.good_at[g] == j) {
            ++g;
            continue;
          }
          const Case& c = *m.frames[j];
          const Fate& f = b[j];
          ++bad_seen;
          EXPECT_EQ(f.parse, c.want) << c.name;
          EXPECT_FALSE(f.tracked) << c.name;
          EXPECT_EQ(f.forwarded, !drop || !ctlb::packet::is_malformed(c.want)) << c.name;
        }
        EXPECT_EQ(bad_seen, bad.size());

        // Counters: the parse results grow by the bad frames' reasons, nothing else moves.
        ctlb::flow::TrackerCounters tc = mixed.tracker.counters();
        for (std::size_t r = 0; r < ctlb::packet::kParseResultCount; ++r) {
          EXPECT_EQ(tc.parse[r], alone.tracker.counters().parse[r] + counts[r]) << ctlb::packet::kParseResultNames[r];
          tc.parse[r] = alone.tracker.counters().parse[r];
        }
        EXPECT_EQ(std::memcmp(&tc, &alone.tracker.counters(), sizeof tc), 0) << "tracker counters differ";
        EXPECT_EQ(mixed.counters.dropped_invalid, alone.counters.dropped_invalid + (drop ? bad_malformed : 0));
        EXPECT_EQ(mixed.counters.forwarded_invalid, alone.counters.forwarded_invalid + (drop ? 0 : bad_malformed));
        EXPECT_EQ(mixed.counters.forwarded_untracked,
                  alone.counters.forwarded_untracked + (bad.size() - bad_malformed));

        // The tables, byte for byte.
        EXPECT_EQ(std::memcmp(alone.t4.mem.get(), mixed.t4.mem.get(), alone.t4.bytes), 0) << "IPv4 table differs";
        EXPECT_EQ(std::memcmp(alone.t6.mem.get(), mixed.t6.mem.get(), alone.t6.bytes), 0) << "IPv6 table differs";
      }
    }
  }
}

// TCP segments of the corpus that parse (cuts in the padding, odd options,
// length sweeps that land on a valid segment, jumbo frames), and SYNs with
// each malformed option, on tuples of their own between the good packets:
// they get entries of their own, the good connections' packets and entries
// are as alone.
TEST(MalformedBurst, OddTcpSegmentsLeaveGoodConnectionsAsAlone) {
  const std::vector<Case> good = good_packets();
  std::vector<Case> odd_cases = corpus_where(true);
  std::uint16_t port = 1;
  for (const OptionCase& oc : option_cases()) {
    Tcp syn = syn_with(oc.options);
    syn.sport = port++;
    odd_cases.push_back(Case{oc.name, tcp4_frame(syn), 0, ParseResult::Tcp});
    odd_cases.back().wire = odd_cases.back().frame.size();
    odd_cases.push_back(Case{oc.name, tcp6_frame(syn), 0, ParseResult::Tcp});
    odd_cases.back().wire = odd_cases.back().frame.size();
  }
  std::vector<const Case*> odd;
  for (const Case& c : odd_cases) odd.push_back(&c);
  std::vector<const Case*> alone_frames;
  for (const Case& c : good) alone_frames.push_back(&c);
  for (const bool drop : {true, false}) {
    SCOPED_TRACE(drop ? "policy drop" : "policy forward");
    Worker alone(drop), mixed(drop);
    const std::vector<Fate> a = alone.run(alone_frames, 32);
    const Mixed m = mix(good, odd, 7);
    const std::vector<Fate> b = mixed.run(m.frames, 32);
    for (std::size_t i = 0; i < good.size(); ++i) expect_same_fate(a[i], b[m.good_at[i]], false, i);
    std::uint64_t odd_tracked = 0;
    for (const Fate& f : b) odd_tracked += f.tracked;
    EXPECT_EQ(odd_tracked, good.size() + odd.size()) << "every odd segment reaches the state machine";
    EXPECT_EQ(mixed.tracker.counters().parse[0], alone.tracker.counters().parse[0] + odd.size());
    EXPECT_EQ(mixed.tracker.counters().flows_evicted, 0u);
    // Each good connection's entry, found by its first packet, is as alone.
    for (std::size_t i = 0; i < good.size(); ++i) {
      PacketView v;
      ASSERT_EQ(parse_exact(good[i], v), ParseResult::Tcp);
      const ctlb::flow::Handle ha = alone.tracker.find(v), hb = mixed.tracker.find(v);
      ASSERT_EQ(ha == ctlb::flow::kNoHandle, hb == ctlb::flow::kNoHandle) << i;
      if (ha == ctlb::flow::kNoHandle) continue;  // a RST ended it
      if (v.family == ctlb::packet::IpFamily::V4) {
        EXPECT_EQ(std::memcmp(&alone.t4.table.entry(ha), &mixed.t4.table.entry(hb), sizeof(ctlb::flow::EntryV4)), 0);
        EXPECT_EQ(std::memcmp(&alone.t4.table.cold(ha), &mixed.t4.table.cold(hb), sizeof(ctlb::flow::Cold)), 0);
      } else {
        EXPECT_EQ(std::memcmp(&alone.t6.table.entry(ha), &mixed.t6.table.entry(hb), sizeof(ctlb::flow::EntryV6)), 0);
      }
    }
  }
}

// A 9000-byte segment whose first 2048 bytes are at hand (a chained mbuf's
// first segment) is tracked with its whole payload: the receiver's ACK of
// all of it is valid, one byte more is not.
TEST(MalformedJumbo, ChainedFrameTrackedWithWirePayload) {
  for (const bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "ipv6" : "ipv4");
    Conversation conv{"jumbo"};
    conv.v6 = v6;
    conv.c_data = v6 ? 9000 - 14 - 40 - 20 : 9000 - 14 - 20 - 20;
    const std::vector<Bytes> frames = conv.frames();
    ASSERT_EQ(frames[3].size(), 9000u);
    Worker w(true);
    std::vector<Case> cases;
    for (const Bytes& f : frames) {
      const std::size_t at_hand = std::min<std::size_t>(f.size(), 2048);
      cases.push_back(Case{"jumbo", Bytes(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(at_hand)), f.size(),
                           ParseResult::Tcp});
    }
    std::vector<const Case*> first_four = {&cases[0], &cases[1], &cases[2], &cases[3]};
    const std::vector<Fate> f = w.run(first_four, 32);
    ASSERT_EQ(f[3].parse, ParseResult::Tcp);
    EXPECT_EQ(f[3].payload, conv.c_data);
    EXPECT_EQ(f[3].r.verdict, ctlb::tcp::Verdict::Accept);
    // The server's ACK of one byte more than was sent: invalid, state unchanged.
    const Bytes over = conv.segment(false, tf::kAck, conv.sisn + 1,
                                    conv.cisn + 1 + static_cast<std::uint32_t>(conv.c_data) + 1, 0);
    const Case over_case{"ack_over", over, over.size(), ParseResult::Tcp};
    const std::vector<Fate> o = w.run({&over_case}, 32);
    EXPECT_EQ(o[0].r.verdict, ctlb::tcp::Verdict::Invalid) << describe(o[0]);
    // The right ACK, and the rest of the connection.
    std::vector<const Case*> rest;
    for (std::size_t i = 4; i < cases.size(); ++i) rest.push_back(&cases[i]);
    const std::vector<Fate> r = w.run(rest, 32);
    for (const Fate& x : r) EXPECT_EQ(x.r.verdict, ctlb::tcp::Verdict::Accept) << describe(x);
    EXPECT_EQ(r.back().r.state, ctlb::tcp::CtState::TimeWait);
  }
}

}  // namespace
