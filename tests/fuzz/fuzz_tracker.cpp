// Fuzz target: sequences of TCP segments through the connection tracker
// (dataplane/flow/tracker.hpp: flow table + TCP state machine), with small
// tables so that eviction and inline reclaim happen, expiry requests as the
// control process sends them, and a clock that jumps (and wraps).
//
// The input is decoded into operations (see decode below): segments over 32
// IPv4 and 32 IPv6 tuples, with fuzzed flags, seq/ack (relative to what each
// side sent so far, or absolute), window, options, payload length and VLAN
// tag, built as real frames and parsed by parse_frame; clock steps; expiry
// requests with current or stale versions; an ager sweep; burst boundaries.
//
// Two trackers see the same operations: A, as a worker runs it (segments in
// bursts of up to 32, the in-place fast path on; bursts alternately through
// track_burst, as mode lb, and from the frames through track_frames, as
// inline mode), and B,
// the reference (one track() call per segment, fast path off). After every
// segment, expiry request and sweep:
//  - A and B agree: the same TrackResult, byte-identical tables (entries,
//    index, free list, table stats), the same counters (fast_path aside);
//  - tables: every live entry is found by its key, is in exactly one index
//    slot, under its key's signature, in one of its key's two buckets; no key
//    is present twice; free entries form one list of capacity - used
//    entries; live <= capacity; versions even (no writer left inside);
//  - gauges: flows_in_state[s] is the number of live entries in state s
//    (none in NONE), and follows the transition counts minus expiries;
//  - counters: accepted + invalid = tcp_packets = sum of reasons; live =
//    created - reopened - destroyed - expired - reclaimed - evicted; the tables' stats
//    agree with the tracker's (inserts, erases, evictions, reclaims, refusals,
//    expiries); handshake histograms count the SYN_SENT->SYN_RECV and
//    SYN_RECV->ESTABLISHED transitions;
//  - one segment changes at most its own connection's entry and takes the
//    place of at most one other (an eviction or a reclaim, counted, never of
//    an assured ESTABLISHED connection that has not expired); handles are
//    stable for a connection's life; an INVALID or ignored segment changes
//    neither the connection state nor the endpoint states; the TrackResult describes the entry (key,
//    state, endpoint states, direction), and no entry after NONE;
//  - window tracking is monotonic where nf_conntrack keeps it so: within a
//    connection, td_end, td_maxend and td_maxack of each direction never go
//    back, except when the direction is first seen, at a (re)initialising
//    SYN, at a SYN-ACK answering an ignored SYN (the kernel restarts both
//    directions from it, whatever the window check says next), and for the
//    overshoot work-around (IgnoredOvershoot / Liberal);
//  - a new or re-opened connection reports no backend; any other segment,
//    also one that ends its connection, reports the backend the load
//    balancer's step stored in the entry (the harness stores one, as the
//    worker does, right after a new connection's segment);
//  - an expiry request frees only an expired, unchanged entry (which is
//    then not findable) and leaves any other entry untouched; after a sweep
//    no expired entry is left.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "../unit/frame_builder.hpp"
#include "../unit/table_util.hpp"
#include "dataplane/common/seq.hpp"
#include "dataplane/flow/tracker.hpp"
#include "dataplane/packet/parse.hpp"
#include "fuzz_check.hpp"

namespace {

namespace flow = ctlb::flow;
namespace tcp = ctlb::tcp;
namespace packet = ctlb::packet;
using ctlb::seq_before;
using ctlb_fuzz::Reader;

constexpr int kTuples = 32;

struct Tuple {
  std::uint8_t client[16];
  std::uint8_t server[16];
  std::uint16_t cport;
  std::uint16_t sport;
};

// Clients below and above the servers' addresses, so that the initiator is
// the key's lower endpoint for some tuples and the higher for others.
Tuple make_tuple(bool v6, int t) {
  Tuple u{};
  if (!v6) {
    const std::uint8_t c[4] = {198, 18, static_cast<std::uint8_t>(t % 2 ? 3 : 0), static_cast<std::uint8_t>(10 + t)};
    const std::uint8_t s[4] = {198, 18, 1, static_cast<std::uint8_t>(1 + t % 3)};
    std::memcpy(u.client, c, 4);
    std::memcpy(u.server, s, 4);
  } else {
    const std::uint8_t c[16] = {0x20, 0x01, 0x0d, 0xb8, 0, static_cast<std::uint8_t>(t % 2 ? 3 : 0), 0, 0,
                                0,    0,    0,    0,    0, 0, 0, static_cast<std::uint8_t>(10 + t)};
    const std::uint8_t s[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                static_cast<std::uint8_t>(1 + t % 3)};
    std::memcpy(u.client, c, 16);
    std::memcpy(u.server, s, 16);
  }
  u.cport = static_cast<std::uint16_t>(40000 + t % 8);  // tuples share ports too
  u.sport = static_cast<std::uint16_t>(t % 4 == 3 ? 443 : 80);
  return u;
}

template <class F>
using Heap = ctlb_test::HeapTable<F>;

const char* state_name(std::uint32_t s) { return s < tcp::kCtStateCount ? tcp::kCtStateNames[s].data() : "?"; }
const char* ep_name(std::uint32_t s) { return s < tcp::kEpStateCount ? tcp::kEpStateNames[s].data() : "?"; }

std::uint32_t segment_end(const packet::PacketView& v) {
  return v.seq + v.payload_len + ((v.flags & packet::tcpflag::kSyn) ? 1u : 0u) +
         ((v.flags & packet::tcpflag::kFin) ? 1u : 0u);
}

// ---------------------------------------------------------------- table checks

template <class F>
struct Live {
  flow::Handle handle;
  typename F::Entry entry;
  flow::Cold cold;
};

template <class F>
std::vector<Live<F>> live_entries(const flow::FlowTable<F>& t) {
  std::vector<Live<F>> out;
  for (flow::Handle h = 0; h < t.capacity(); ++h)
    if (t.entry(h).status.ct_state != 0) out.push_back({h, t.entry(h), t.cold(h)});
  return out;
}

template <class F>
const Live<F>* find_key(const std::vector<Live<F>>& v, const typename F::Key& k) {
  for (const auto& e : v)
    if (e.entry.key == k) return &e;
  return nullptr;
}

// The table's own structure; adds its live entries per state to `in_state`.
template <class F>
void check_table(flow::FlowTable<F>& t, const char* fam, std::int64_t* in_state) {
  const std::uint32_t cap = t.capacity();
  std::uint32_t live = 0;
  std::vector<int> slots_of(cap, 0);
  auto* buckets = reinterpret_cast<const flow::Bucket*>(reinterpret_cast<const std::uint8_t*>(&t.header()) +
                                                        t.header().buckets_offset);
  for (std::uint32_t b = 0; b < t.bucket_count(); ++b) {
    for (int s = 0; s < flow::kSlotsPerBucket; ++s) {
      if (buckets[b].sig[s] == 0) continue;
      const flow::Handle h = buckets[b].handle[s];
      FUZZ_CHECK(h < cap, "%s bucket %u slot %d: handle %u >= capacity %u", fam, b, s, h, cap);
      const auto& e = t.entry(h);
      FUZZ_CHECK(e.status.ct_state != 0, "%s bucket %u slot %d points at free entry %u", fam, b, s, h);
      const std::uint32_t hash = flow::hash_key(e.key);
      const std::uint16_t sig = flow::FlowTable<F>::signature(hash);
      FUZZ_CHECK(buckets[b].sig[s] == sig, "%s entry %u indexed under signature %04x, its key's is %04x", fam, h,
                 buckets[b].sig[s], sig);
      const std::uint32_t p = t.primary(hash);
      FUZZ_CHECK(b == p || b == t.alternate(p, sig), "%s entry %u in bucket %u, not one of its key's (%u, %u)", fam,
                 h, b, p, t.alternate(p, sig));
      ++slots_of[h];
    }
  }
  for (flow::Handle h = 0; h < cap; ++h) {
    const auto& e = t.entry(h);
    FUZZ_CHECK(e.version % 2 == 0, "%s entry %u has odd version %u (a write left open)", fam, h, e.version);
    if (e.status.ct_state == 0) {
      FUZZ_CHECK(slots_of[h] == 0, "%s free entry %u is in the index", fam, h);
      continue;
    }
    ++live;
    FUZZ_CHECK(e.status.ct_state < tcp::kCtStateCount && e.status.initiator < tcp::kEpStateCount &&
                   e.status.responder < tcp::kEpStateCount,
               "%s entry %u: state %u / %u / %u out of range", fam, h, e.status.ct_state, e.status.initiator,
               e.status.responder);
    FUZZ_CHECK(slots_of[h] == 1, "%s live entry %u is in %d index slots", fam, h, slots_of[h]);
    const flow::Handle found = t.lookup(e.key, flow::hash_key(e.key));
    FUZZ_CHECK(found == h, "%s live entry %u: its key looks up %u (a key present twice?)", fam, h, found);
    ++in_state[e.status.ct_state];
  }
  FUZZ_CHECK(live == t.size() && live <= cap, "%s: %u live entries, size() %u, capacity %u", fam, live, t.size(), cap);
  // The free list: every free entry exactly once.
  std::uint32_t free_count = 0;
  std::vector<bool> seen(cap, false);
  for (flow::Handle h = t.header().free_head; h != flow::kNoHandle; h = t.entry(h).last_end) {
    FUZZ_CHECK(h < cap && !seen[h] && t.entry(h).status.ct_state == 0, "%s free list broken at %u", fam, h);
    seen[h] = true;
    ++free_count;
  }
  FUZZ_CHECK(free_count == cap - live, "%s free list has %u entries, %u expected", fam, free_count, cap - live);
  const flow::TableStats& st = t.stats();
  FUZZ_CHECK(st.inserts - st.erases - st.evicted - st.reclaimed_expired == live,
             "%s stats: inserts %llu erases %llu evicted %llu reclaimed %llu, live %u", fam,
             static_cast<unsigned long long>(st.inserts), static_cast<unsigned long long>(st.erases),
             static_cast<unsigned long long>(st.evicted), static_cast<unsigned long long>(st.reclaimed_expired),
             live);
}

// ---------------------------------------------------------------- the harness

class Harness {
 public:
  Harness(std::uint32_t cap4, std::uint32_t cap6, const tcp::Config& cfg, std::uint64_t start_ms)
      : a4_(cap4), a6_(cap6), b4_(cap4), b6_(cap6), a_(a4_.table, a6_.table, cfg), b_(b4_.table, b6_.table, cfg),
        clock_ms_(start_ms) {
    a_.set_fast_path(true);
    b_.set_fast_path(false);
    for (int f = 0; f < 2; ++f)
      for (int t = 0; t < kTuples; ++t) {
        tuples_[f][t] = make_tuple(f == 1, t);
        // Sequence numbers start anywhere, some right below the wrap.
        nxt_[f][t][0] = (t % 5 == 0) ? 0xffffff00u + static_cast<std::uint32_t>(t) : 1000u * static_cast<std::uint32_t>(t + 1);
        nxt_[f][t][1] = 0x80000000u + 7777u * static_cast<std::uint32_t>(t);
      }
    snapshot();
  }

  void run(Reader& in) {
    int ops = 0;
    while (!in.empty() && ops++ < 2000) {
      const std::uint8_t op = in.u8();
      switch (op % 16) {
        case 10:
          flush();
          reject(in);
          break;
        case 11:
          flush();
          clock_ms_ += in.u8();
          break;
        case 12:
          flush();
          clock_ms_ += static_cast<std::uint64_t>(in.u16()) * 1000u;
          break;
        case 13:
          flush();
          expire_one(in);
          break;
        case 14:
          flush();
          sweep();
          break;
        case 15:
          flush();
          break;
        default:
          add_segment(in);
          if (pending_ == flow::Tracker::kMaxBurst) flush();
          break;
      }
    }
    flush();
  }

 private:
  flow::Clock clock() const { return flow::Clock{clock_ms_}; }

  // Builds one segment's frame from the input and parses it, as a worker would.
  // The frame (headers; the payload is on the wire only) goes to *frame_out.
  bool build(Reader& in, packet::PacketView& v, ctlb_test::Bytes* frame_out = nullptr,
             std::uint32_t* wire_out = nullptr) {
    const std::uint8_t sel = in.u8();
    const int t = sel & 31;
    const int f = (sel >> 5) & 1;
    const int d = (sel >> 6) & 1;  // 0: client -> server
    const bool vlan = sel >> 7;
    const std::uint8_t flags = in.u8();
    const std::uint8_t modes = in.u8();
    const std::uint8_t wbyte = in.u8();
    const std::uint8_t opt = in.u8();
    const std::uint8_t plen = in.u8();
    const Tuple& u = tuples_[f][t];
    std::uint32_t& mine = nxt_[f][t][d];
    const std::uint32_t theirs = nxt_[f][t][1 - d];

    ctlb_test::Tcp seg;
    seg.sport = d == 0 ? u.cport : u.sport;
    seg.dport = d == 0 ? u.sport : u.cport;
    switch (modes & 7) {
      case 0: seg.seq = mine; break;
      case 1: seg.seq = mine + in.u8(); break;
      case 2: seg.seq = mine - in.u8(); break;
      case 3: seg.seq = mine + in.u16() * 16u; break;
      case 4: seg.seq = mine - in.u16() * 16u; break;
      case 5: seg.seq = in.u32(); break;
      case 6: seg.seq = mine - 1; break;  // keep-alive
      default: seg.seq = mine + 0x40000000u; break;  // a new incarnation of the tuple
    }
    switch ((modes >> 3) & 7) {
      case 1: seg.ack = theirs - in.u8(); break;
      case 2: seg.ack = theirs + in.u8(); break;
      case 3: seg.ack = in.u32(); break;
      case 4: seg.ack = 0; break;
      case 5: seg.ack = theirs - in.u16() * 16u; break;
      default: seg.ack = theirs; break;
    }
    seg.flags = flags;
    seg.window = static_cast<std::uint16_t>(wbyte * 257u);
    if (opt & 0x01) ctlb_test::append(seg.options, ctlb_test::opt_mss(1460));
    if (opt & 0x02) ctlb_test::append(seg.options, ctlb_test::opt_wscale(in.u8() & 15));
    if (opt & 0x04) ctlb_test::append(seg.options, ctlb_test::opt_sack_perm());
    if (opt & 0x08) {
      ctlb_test::append(seg.options, ctlb_test::Bytes{1, 1});
      ctlb_test::append(seg.options, ctlb_test::opt_timestamp(clock_ms_ & 0xffffffffu, 0));
    }
    if (opt & 0x10) {
      const int blocks = 1 + ((opt >> 5) & 3);
      ctlb_test::Bytes b{5, static_cast<std::uint8_t>(2 + 8 * blocks)};
      for (int i = 0; i < blocks; ++i) {
        const std::uint32_t right = seg.ack + in.u8() * 64u;
        ctlb_test::put32(b, right - 100);
        ctlb_test::put32(b, right);
      }
      if (seg.options.size() + b.size() <= 40) ctlb_test::append(seg.options, b);
    }
    if ((opt & 0x80) && seg.options.size() < 38) ctlb_test::append(seg.options, ctlb_test::Bytes{5, 40});  // overruns
    while (seg.options.size() > 40) seg.options.pop_back();

    std::size_t payload = plen < 200 ? plen : (plen - 199u) * 1200u;
    const std::size_t l3_header = f == 0 ? 20 : 40;
    const std::size_t tcp_header = 20 + (seg.options.size() + 3) / 4 * 4;
    payload = std::min<std::size_t>(payload, 65535 - tcp_header - (f == 0 ? l3_header : 0));
    const ctlb_test::Bytes l4 = seg.build();  // header only: the payload is on the wire, not at hand
    ctlb_test::Bytes frame;
    if (f == 0) {
      ctlb_test::Ipv4 ip;
      std::memcpy(ip.src, d == 0 ? u.client : u.server, 4);
      std::memcpy(ip.dst, d == 0 ? u.server : u.client, 4);
      ip.total_len = static_cast<int>(l3_header + tcp_header + payload);
      frame = ctlb_test::ether(ctlb_test::kEtherIpv4, ip.build(l4), vlan ? std::vector<ctlb_test::Tag>{{0x8100, 7}}
                                                                        : std::vector<ctlb_test::Tag>{});
    } else {
      ctlb_test::Ipv6 ip;
      std::memcpy(ip.src, d == 0 ? u.client : u.server, 16);
      std::memcpy(ip.dst, d == 0 ? u.server : u.client, 16);
      ip.payload_len = static_cast<int>(tcp_header + payload);
      frame = ctlb_test::ether(ctlb_test::kEtherIpv6, ip.build(l4), vlan ? std::vector<ctlb_test::Tag>{{0x8100, 7}}
                                                                        : std::vector<ctlb_test::Tag>{});
    }
    const packet::ParseResult r = packet::parse_frame(frame.data(), frame.size(), frame.size() + payload, v);
    FUZZ_CHECK(r == packet::ParseResult::Tcp, "the harness built a frame the parser calls %s",
               packet::name(r).data());
    FUZZ_CHECK(v.payload_len == payload && v.seq == seg.seq && v.flags == flags, "parsed view differs from the frame");
    const std::uint32_t end = segment_end(v);
    if (ctlb::seq_after(end, mine)) mine = end;
    if (wire_out) *wire_out = static_cast<std::uint32_t>(frame.size() + payload);
    if (frame_out) *frame_out = std::move(frame);
    return true;
  }

  void add_segment(Reader& in) {
    packet::PacketView& v = views_[pending_];
    v = packet::PacketView{};
    build(in, v, &frames_[pending_], &wires_[pending_]);
    ++pending_;
  }

  void reject(Reader& in) {
    packet::PacketView v;
    build(in, v);
    const flow::TrackResult ra = a_.reject(v, tcp::Reason::BadChecksum);
    const flow::TrackResult rb = b_.reject(v, tcp::Reason::BadChecksum);
    compare_results(ra, rb, "reject");
    FUZZ_CHECK(ra.verdict == tcp::Verdict::Invalid, "reject() accepted a segment");
    after_op("reject");
  }

  // A burst through A's track_burst; B and every check run on each segment
  // right after A tracked it.
  void flush() {
    if (!pending_) return;
    const packet::PacketView* ptrs[flow::Tracker::kMaxBurst];
    for (unsigned i = 0; i < pending_; ++i) ptrs[i] = &views_[i];
    // Filled with garbage, as the worker's uninitialised results are: a
    // result field the tracker does not write differs from B's.
    flow::TrackResult out[flow::Tracker::kMaxBurst];
    std::memset(static_cast<void*>(out), 0xa5, sizeof out);
    burst_fast_start_ = a_.counters().fast_path;
    burst_lag_ = 0;
    auto after = [&](unsigned i, flow::TrackResult& ra) noexcept {
      const flow::TrackResult rb = b_.track(views_[i], clock());
      if (trace()) print(views_[i], ra);
      compare_results(ra, rb, "track");
      if (views_[i].family == packet::IpFamily::V4) check_segment<flow::V4>(a4_.table, prev4_, views_[i], ra);
      else check_segment<flow::V6>(a6_.table, prev6_, views_[i], ra);
      // The load balancer's step: a new connection gets a backend, written
      // before the next segment of the burst is tracked.
      if (ra.handle != flow::kNoHandle && ra.backend == flow::kNoBackend) {
        const auto backend = static_cast<std::uint16_t>(ra.hash % 1000);
        a_.set_backend(views_[i].family, ra.handle, backend);
        b_.set_backend(views_[i].family, rb.handle, backend);
      }
      after_op("track", i + 1);
    };
    // Every other burst as inline mode tracks it: from the frames, data and
    // ACK segments of IPv4 connections read by parse_ack_segment().
    frames_next_ = !frames_next_;
    if (frames_next_) {
      packet::Frame frames[flow::Tracker::kMaxBurst];
      for (unsigned i = 0; i < pending_; ++i)
        frames[i] = {frames_[i].data(), static_cast<std::uint32_t>(frames_[i].size()), wires_[i]};
      unsigned next = 0;
      flow::TrackerCounters before_parse = a_.counters();
      a_.track_frames<true>(
          frames, pending_, clock(), [](unsigned, std::uint32_t) noexcept { return true; },
          [&](unsigned i, packet::ParseResult res, const flow::TrackResult* r) noexcept {
            FUZZ_CHECK(i == next++ && res == packet::ParseResult::Tcp && r, "track_frames: frame %u of %u (%s)", i,
                       pending_, packet::name(res).data());
            flow::TrackResult ra = *r;
            after(i, ra);
          });
      FUZZ_CHECK(next == pending_, "track_frames reported %u of %u frames", next, pending_);
      before_parse.parse[static_cast<std::size_t>(packet::ParseResult::Tcp)] += pending_;
      FUZZ_CHECK(std::memcmp(before_parse.parse, a_.counters().parse, sizeof before_parse.parse) == 0,
                 "track_frames: parse results not counted as %u TCP segments", pending_);
    } else {
      a_.track_burst(ptrs, pending_, clock(), out, after);
    }
    after_op("burst", 0, true);
    pending_ = 0;
  }

  void expire_one(Reader& in) {
    const std::uint8_t sel = in.u8();
    const std::uint8_t mode = in.u8();
    if (sel & 0x80) expire_in<flow::V6>(a6_.table, b6_.table, sel & 0x7f, mode);
    else expire_in<flow::V4>(a4_.table, b4_.table, sel & 0x7f, mode);
    after_op("expire");
  }

  template <class F>
  void expire_in(flow::FlowTable<F>& ta, flow::FlowTable<F>& tb, std::uint32_t pick, std::uint8_t mode) {
    const flow::Handle h = pick % (ta.capacity() + 2);  // sometimes past the end
    std::uint32_t version = mode;
    typename F::Entry before{};
    flow::Cold cold{};
    if (h < ta.capacity()) {
      FUZZ_CHECK(ta.read(h, before, cold), "seqlock read of entry %u failed with no writer", h);
      switch (mode & 3) {
        case 0: version = before.version; break;
        case 1: version = before.version - 2; break;
        case 2: version = before.version + 2; break;
        default: break;
      }
    }
    const flow::ExpireStatus sa = a_.expire(ta, h, version, clock());
    const flow::ExpireStatus sb = b_.expire(tb, h, version, clock());
    FUZZ_CHECK(sa == sb, "expire of %u: A %d, B %d", h, static_cast<int>(sa), static_cast<int>(sb));
    if (h >= ta.capacity()) {
      FUZZ_CHECK(sa == flow::ExpireStatus::BadHandle, "expire of handle %u past capacity %u gave %d", h,
                 ta.capacity(), static_cast<int>(sa));
      return;
    }
    if (sa == flow::ExpireStatus::Expired) {
      FUZZ_CHECK(version == before.version && a_.policy().expired(before.status, before.last_seen, clock().now()),
                 "expired entry %u: version %u (read %u), state %s", h, version, before.version,
                 state_name(before.status.ct_state));
      ++expired_in_[before.status.ct_state];
      FUZZ_CHECK(ta.entry(h).status.ct_state == 0, "expired entry %u still live", h);
      FUZZ_CHECK(ta.lookup(before.key, flow::hash_key(before.key)) == flow::kNoHandle,
                 "the key of expired entry %u is still found", h);
    } else {
      FUZZ_CHECK(std::memcmp(&ta.entry(h), &before, sizeof before) == 0, "a refused expiry (%d) changed entry %u",
                 static_cast<int>(sa), h);
      if (before.status.ct_state != 0 && version == before.version)
        FUZZ_CHECK(!a_.policy().expired(before.status, before.last_seen, clock().now()),
                   "expiry of unchanged, expired entry %u refused (%d)", h, static_cast<int>(sa));
    }
  }

  // The control process's ager: every expired entry, with the version it read.
  void sweep() {
    sweep_in<flow::V4>(a4_.table, b4_.table);
    sweep_in<flow::V6>(a6_.table, b6_.table);
    after_op("sweep");
    none_expired(a4_.table, "IPv4");
    none_expired(a6_.table, "IPv6");
  }

  template <class F>
  void none_expired(const flow::FlowTable<F>& t, const char* fam) const {
    for (flow::Handle h = 0; h < t.capacity(); ++h)
      FUZZ_CHECK(t.entry(h).status.ct_state == 0 ||
                     !a_.policy().expired(t.entry(h).status, t.entry(h).last_seen, clock().now()),
                 "%s entry %u still expired after a sweep", fam, h);
  }

  template <class F>
  void sweep_in(flow::FlowTable<F>& ta, flow::FlowTable<F>& tb) {
    for (flow::Handle h = 0; h < ta.capacity(); ++h) {
      typename F::Entry e;
      flow::Cold c;
      if (ta.entry(h).status.ct_state == 0 || !ta.read(h, e, c)) continue;
      if (!a_.policy().expired(e.status, e.last_seen, clock().now())) continue;
      const flow::ExpireStatus sa = a_.expire(ta, h, e.version, clock());
      const flow::ExpireStatus sb = b_.expire(tb, h, e.version, clock());
      FUZZ_CHECK(sa == flow::ExpireStatus::Expired && sb == sa, "sweep: expiry of expired entry %u gave %d / %d", h,
                 static_cast<int>(sa), static_cast<int>(sb));
      ++expired_in_[e.status.ct_state];
    }
  }

  // CTLB_FUZZ_TRACE=1: one line per segment on stderr, to read a reproducer.
  static bool trace() {
    static const bool on = std::getenv("CTLB_FUZZ_TRACE") != nullptr;
    return on;
  }

  void print(const packet::PacketView& v, const flow::TrackResult& r) const {
    std::fprintf(stderr, "t=%llu IPv%d %u>%u flags %02x seq %u ack %u win %u len %u: %s %s, %s (%s/%s) handle %u\n",
                 static_cast<unsigned long long>(clock_ms_), static_cast<int>(v.family), v.sport, v.dport, v.flags,
                 v.seq, v.ack, v.window, v.payload_len, r.verdict == tcp::Verdict::Accept ? "ACCEPT" : "INVALID",
                 tcp::name(r.reason).data(), tcp::name(r.state).data(), tcp::name(r.initiator).data(),
                 tcp::name(r.responder).data(), r.handle);
  }

  static void compare_results(const flow::TrackResult& a, const flow::TrackResult& b, const char* what) {
    FUZZ_CHECK(a.verdict == b.verdict && a.reason == b.reason && a.dir == b.dir && a.state == b.state &&
                   a.initiator == b.initiator && a.responder == b.responder &&
                   a.initiator_is_lo == b.initiator_is_lo && a.handle == b.handle && a.hash == b.hash &&
                   a.syn_to_synack_ms == b.syn_to_synack_ms && a.backend == b.backend,
               "%s: burst+fast path (A) and one-by-one general path (B) disagree: reason %s / %s, state %s / %s, "
               "handle %u / %u",
               what, tcp::name(a.reason).data(), tcp::name(b.reason).data(), tcp::name(a.state).data(),
               tcp::name(b.state).data(), a.handle, b.handle);
  }

  // What one segment did to its table, against the snapshot before it.
  template <class F>
  void check_segment(flow::FlowTable<F>& t, const std::vector<Live<F>>& before, const packet::PacketView& v,
                     const flow::TrackResult& r) {
    typename F::Key key;
    const flow::Side side = flow::make_key(v, key);
    const auto after = live_entries(t);
    const Live<F>* was = find_key(before, key);
    const Live<F>* now = find_key(after, key);
    const auto& c = a_.counters();

    // The result describes the entry.
    if (r.state == tcp::CtState::None) {
      FUZZ_CHECK(r.handle == flow::kNoHandle && !now, "result NONE but handle %u, entry %s", r.handle,
                 now ? "present" : "absent");
    } else {
      FUZZ_CHECK(now && r.handle == now->handle, "result %s with handle %u, but the key is at %u",
                 tcp::name(r.state).data(), r.handle, now ? now->handle : flow::kNoHandle);
      const tcp::Status& st = now->entry.status;
      FUZZ_CHECK(st.ct_state == static_cast<std::uint32_t>(r.state) &&
                     st.initiator == static_cast<std::uint32_t>(r.initiator) &&
                     st.responder == static_cast<std::uint32_t>(r.responder) &&
                     st.initiator_is_lo == static_cast<std::uint32_t>(r.initiator_is_lo),
                 "result (%s) differs from the entry (%s)", tcp::name(r.state).data(), state_name(st.ct_state));
      const bool orig = (side == flow::Side::Lo) == static_cast<bool>(st.initiator_is_lo);
      FUZZ_CHECK((r.dir == tcp::Dir::Orig) == orig, "result direction %d, entry says %s", static_cast<int>(r.dir),
                 orig ? "orig" : "reply");
    }
    if (was && now) {
      FUZZ_CHECK(was->handle == now->handle, "a connection moved from handle %u to %u", was->handle, now->handle);
      const bool ignored = r.reason == tcp::Reason::IgnoredOutOfSync || r.reason == tcp::Reason::IgnoredChallengeAck ||
                           r.reason == tcp::Reason::IgnoredOldData || r.reason == tcp::Reason::IgnoredOvershoot;
      if (r.verdict == tcp::Verdict::Invalid || ignored) {
        const tcp::Status& b = was->entry.status;
        const tcp::Status& a = now->entry.status;
        FUZZ_CHECK(b.ct_state == a.ct_state && b.initiator == a.initiator && b.responder == a.responder,
                   "an %s segment (%s) changed the state %s (%s/%s) -> %s (%s/%s)",
                   r.verdict == tcp::Verdict::Invalid ? "INVALID" : "ignored", tcp::name(r.reason).data(),
                   state_name(b.ct_state), ep_name(b.initiator), ep_name(b.responder), state_name(a.ct_state),
                   ep_name(a.initiator), ep_name(a.responder));
      }
      if (r.reason != tcp::Reason::Reopened) check_windows(was->entry, now->entry.track, v, r);
    }
    if (!was && now) FUZZ_CHECK(prev_counters_.flows_created + 1 == c.flows_created, "a new entry not counted");
    // The backend: none for a new (or re-opened) connection, else the
    // entry's, also when the segment ended the connection.
    const bool fresh = !was || r.reason == tcp::Reason::Reopened || (now && now->handle != was->handle);
    if (fresh) FUZZ_CHECK(r.backend == flow::kNoBackend, "a new connection reports backend %u", r.backend);
    else FUZZ_CHECK(r.backend == was->cold.backend, "result backend %u, the connection's is %u", r.backend,
                    was->cold.backend);

    // Every other connection: untouched, or evicted/reclaimed in its favour.
    int vanished = 0;
    for (const auto& b : before) {
      if (b.entry.key == key) continue;
      const Live<F>* a = find_key(after, b.entry.key);
      if (a) {
        FUZZ_CHECK(a->handle == b.handle && std::memcmp(&a->entry, &b.entry, sizeof b.entry) == 0 &&
                       std::memcmp(&a->cold, &b.cold, sizeof b.cold) == 0,
                   "a segment of another connection changed entry %u", b.handle);
        continue;
      }
      ++vanished;
      FUZZ_CHECK(now && !was && now->handle == b.handle,
                 "entry %u (%s) vanished without being replaced by the segment's new connection", b.handle,
                 state_name(b.entry.status.ct_state));
      const bool expired = a_.policy().expired(b.entry.status, b.entry.last_seen, clock().now());
      FUZZ_CHECK(expired || flow::EvictionPolicy::score(b.entry.status) >= 0,
                 "evicted entry %u: unexpired %s%s", b.handle, state_name(b.entry.status.ct_state),
                 b.entry.status.assured ? " (assured)" : "");
      FUZZ_CHECK(c.flows_evicted + c.flows_reclaimed == prev_counters_.flows_evicted + prev_counters_.flows_reclaimed + 1,
                 "eviction of entry %u not counted", b.handle);
      if (expired) FUZZ_CHECK(c.flows_reclaimed == prev_counters_.flows_reclaimed + 1, "reclaim not counted as one");
    }
    FUZZ_CHECK(vanished <= 1, "%d connections vanished for one segment", vanished);
  }

  // Window edges of one connection across one segment (see the top comment).
  template <class E>
  static void check_windows(const E& before, const tcp::Track& a, const packet::PacketView& v,
                            const flow::TrackResult& r) {
    const tcp::Track& b = before.track;
    const bool syn = v.flags & packet::tcpflag::kSyn;
    if (syn && (r.state == tcp::CtState::SynSent || r.state == tcp::CtState::SynRecv ||
                r.state == tcp::CtState::SynSent2))
      return;  // a SYN (re)initialises its sender's window
    const tcp::Status& st = before.status;
    if (syn && (v.flags & packet::tcpflag::kAck) && st.last_index == static_cast<std::uint32_t>(tcp::Index::Syn) &&
        st.last_dir != static_cast<std::uint32_t>(tcp::idx(r.dir)) && v.ack == before.last_end)
      return;  // a SYN-ACK answering an ignored SYN: both windows restart from it, as in nf_conntrack
    const bool overshoot = r.reason == tcp::Reason::IgnoredOvershoot || r.reason == tcp::Reason::Liberal;
    for (int d = 0; d < 2; ++d) {
      if (b.maxwin[d] == 0) continue;  // first seen now
      const bool sender = d == tcp::idx(r.dir);
      if (!(overshoot && sender))
        FUZZ_CHECK(!seq_before(a.end[d], b.end[d]), "td_end[%d] went back %u -> %u (%s)", d, b.end[d], a.end[d],
                   tcp::name(r.reason).data());
      FUZZ_CHECK(!seq_before(a.maxend[d], b.maxend[d]), "td_maxend[%d] went back %u -> %u (%s)", d, b.maxend[d],
                 a.maxend[d], tcp::name(r.reason).data());
      if ((b.flags[d] & tcp::dirflag::kMaxAckSet) && (a.flags[d] & tcp::dirflag::kMaxAckSet))
        FUZZ_CHECK(!seq_before(a.maxack[d], b.maxack[d]), "td_maxack[%d] went back %u -> %u (%s)", d, b.maxack[d],
                   a.maxack[d], tcp::name(r.reason).data());
    }
  }

  // Checks after every operation, then a new snapshot.
  // Within a burst (`in_burst` segments of it tracked so far), A has not yet
  // counted the burst's fast-path segments: track_burst() adds them once at
  // its end. The lag must be the same in the packet, accepted and Ok counts,
  // grow by one with each segment A did in place (B counts every segment as
  // it goes) and by none otherwise; at the burst's end (`burst_end`) there is
  // none, and A's fast_path count has grown by exactly the last lag.
  void after_op(const char* what, std::uint64_t in_burst = 0, bool burst_end = false) {
    FUZZ_CHECK(a4_.bytes == b4_.bytes && std::memcmp(a4_.mem.get(), b4_.mem.get(), a4_.bytes) == 0,
               "%s: IPv4 tables of A (burst, fast path) and B (one by one) differ%s", what, diff(a4_, b4_).c_str());
    FUZZ_CHECK(std::memcmp(a6_.mem.get(), b6_.mem.get(), a6_.bytes) == 0,
               "%s: IPv6 tables of A (burst, fast path) and B (one by one) differ%s", what, diff(a6_, b6_).c_str());
    const flow::TrackerCounters& c = a_.counters();
    flow::TrackerCounters cb = b_.counters();
    const std::uint64_t lag = cb.tcp_packets - c.tcp_packets;
    FUZZ_CHECK(cb.tcp_packets >= c.tcp_packets && lag <= in_burst,
               "%s: A counted %llu TCP segments, B %llu, %llu of the burst tracked", what,
               static_cast<unsigned long long>(c.tcp_packets), static_cast<unsigned long long>(cb.tcp_packets),
               static_cast<unsigned long long>(in_burst));
    if (in_burst) {
      FUZZ_CHECK(c.fast_path == burst_fast_start_, "%s: A's fast_path counted before the end of the burst", what);
      FUZZ_CHECK(lag == burst_lag_ || lag == burst_lag_ + 1, "%s: lag of A's counts went from %llu to %llu", what,
                 static_cast<unsigned long long>(burst_lag_), static_cast<unsigned long long>(lag));
      burst_lag_ = lag;
    }
    if (burst_end)
      FUZZ_CHECK(c.fast_path == burst_fast_start_ + burst_lag_, "%s: A counted %llu segments done in place, not %llu",
                 what, static_cast<unsigned long long>(c.fast_path - burst_fast_start_),
                 static_cast<unsigned long long>(burst_lag_));
    cb.tcp_packets -= lag;
    cb.accepted -= lag;
    cb.reasons[static_cast<std::size_t>(tcp::Reason::Ok)] -= lag;
    cb.fast_path = c.fast_path;
    // track_frames() also counts parse results (checked in flush()); B parses nothing.
    std::memcpy(cb.parse, c.parse, sizeof c.parse);
    FUZZ_CHECK(std::memcmp(&c, &cb, sizeof c) == 0, "%s: counters of A and B differ", what);

    std::int64_t in_state[tcp::kCtStateCount] = {};
    check_table(a4_.table, "IPv4", in_state);
    check_table(a6_.table, "IPv6", in_state);
    std::int64_t live = 0;
    for (std::size_t s = 0; s < tcp::kCtStateCount; ++s) {
      live += in_state[s];
      FUZZ_CHECK(c.flows_in_state[s] == in_state[s], "flows_in_state[%s] = %lld, %lld live entries in it",
                 state_name(static_cast<std::uint32_t>(s)), static_cast<long long>(c.flows_in_state[s]),
                 static_cast<long long>(in_state[s]));
      std::int64_t in = 0, out = 0;
      for (std::size_t o = 0; o < tcp::kCtStateCount; ++o) {
        in += static_cast<std::int64_t>(c.transitions[o][s]);
        out += static_cast<std::int64_t>(c.transitions[s][o]);
      }
      if (s != 0)
        FUZZ_CHECK(in - out - static_cast<std::int64_t>(expired_in_[s]) == in_state[s],
                   "transitions into %s (%lld) - out (%lld) - expired (%llu) != %lld live",
                   state_name(static_cast<std::uint32_t>(s)), static_cast<long long>(in), static_cast<long long>(out),
                   static_cast<unsigned long long>(expired_in_[s]), static_cast<long long>(in_state[s]));
    }
    std::uint64_t reasons = 0;
    for (auto n : c.reasons) reasons += n;
    FUZZ_CHECK(c.accepted + c.invalid == c.tcp_packets && reasons == c.tcp_packets,
               "accepted %llu + invalid %llu, reasons %llu, tcp_packets %llu",
               static_cast<unsigned long long>(c.accepted), static_cast<unsigned long long>(c.invalid),
               static_cast<unsigned long long>(reasons), static_cast<unsigned long long>(c.tcp_packets));
    FUZZ_CHECK(c.fast_path <= c.accepted && c.flows_reopened <= c.flows_created, "fast_path/reopened counts");
    // A re-opened connection is counted as created and keeps its entry.
    const std::int64_t expect_live = static_cast<std::int64_t>(c.flows_created - c.flows_reopened - c.flows_destroyed -
                                                               c.flows_expired - c.flows_reclaimed - c.flows_evicted);
    FUZZ_CHECK(live == expect_live, "%lld live entries, counters say %lld", static_cast<long long>(live),
               static_cast<long long>(expect_live));
    std::uint64_t into_none = 0, from_none = 0;
    for (std::size_t s = 0; s < tcp::kCtStateCount; ++s) {
      into_none += c.transitions[s][0];
      from_none += c.transitions[0][s];
    }
    FUZZ_CHECK(from_none == c.flows_created, "transitions from NONE %llu, flows_created %llu",
               static_cast<unsigned long long>(from_none), static_cast<unsigned long long>(c.flows_created));
    FUZZ_CHECK(into_none == c.flows_destroyed + c.flows_reclaimed + c.flows_evicted + c.flows_reopened,
               "transitions into NONE %llu", static_cast<unsigned long long>(into_none));
    const flow::TableStats& s4 = a4_.table.stats();
    const flow::TableStats& s6 = a6_.table.stats();
    FUZZ_CHECK(s4.evicted + s6.evicted == c.flows_evicted && s4.reclaimed_expired + s6.reclaimed_expired ==
                                                                 c.flows_reclaimed,
               "table evictions/reclaims differ from the tracker's");
    FUZZ_CHECK(s4.expire_done + s6.expire_done == c.flows_expired, "table expiries differ from the tracker's");
    FUZZ_CHECK(s4.insert_refused + s6.insert_refused == c.untracked_table_full, "refused inserts differ");
    FUZZ_CHECK(s4.erases + s6.erases == c.flows_destroyed + c.flows_expired, "erases differ from destroyed+expired");
    std::uint64_t h1 = 0, h2 = 0;
    for (std::size_t b = 0; b < flow::kHandshakeBuckets; ++b) {
      h1 += c.syn_to_synack[b];
      h2 += c.synack_to_ack[b];
    }
    using tcp::CtState;
    FUZZ_CHECK(h1 == c.transitions[static_cast<int>(CtState::SynSent)][static_cast<int>(CtState::SynRecv)] &&
                   h2 == c.transitions[static_cast<int>(CtState::SynRecv)][static_cast<int>(CtState::Established)],
               "handshake histograms (%llu, %llu) differ from the transitions", static_cast<unsigned long long>(h1),
               static_cast<unsigned long long>(h2));
    snapshot();
  }

  template <class F>
  static std::string diff(const Heap<F>& a, const Heap<F>& b) {
    const auto* pa = static_cast<const std::uint8_t*>(a.mem.get());
    const auto* pb = static_cast<const std::uint8_t*>(b.mem.get());
    for (std::size_t i = 0; i < a.bytes; ++i) {
      if (pa[i] == pb[i]) continue;
      const auto& h = *reinterpret_cast<const flow::TableHeader*>(pa);
      char buf[160];
      if (i < h.buckets_offset) std::snprintf(buf, sizeof buf, " (header byte %zu)", i);
      else if (i < h.entries_offset) std::snprintf(buf, sizeof buf, " (index byte %zu)", i - h.buckets_offset);
      flow::Handle e = flow::kNoHandle;
      if (i >= h.entries_offset && (!h.cold_offset || i < h.cold_offset)) {
        e = static_cast<flow::Handle>((i - h.entries_offset) / sizeof(typename F::Entry));
        std::snprintf(buf, sizeof buf, " (entry %u, byte %zu)", e, (i - h.entries_offset) % sizeof(typename F::Entry));
      } else if (i >= h.entries_offset) {
        e = static_cast<flow::Handle>((i - h.cold_offset) / sizeof(flow::Cold));
        std::snprintf(buf, sizeof buf, " (cold %u, byte %zu)", e, (i - h.cold_offset) % sizeof(flow::Cold));
      }
      std::string out = buf;
      if (e != flow::kNoHandle) out += "\n  A: " + describe(a.table, e) + "\n  B: " + describe(b.table, e);
      return out;
    }
    return "";
  }

  template <class F>
  static std::string describe(const flow::FlowTable<F>& t, flow::Handle h) {
    const auto& e = t.entry(h);
    const auto& c = t.cold(h);
    const tcp::Track& k = e.track;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "v%u seen %u %s assured %u reply %u last idx %u dir %u retrans %u | last_end %u seq %u ack %u "
                  "win %u | end %u/%u maxend %u/%u maxwin %u/%u maxack %u/%u scale %u/%u flags %02x/%02x",
                  e.version, e.last_seen, state_name(e.status.ct_state), e.status.assured, e.status.seen_reply,
                  e.status.last_index, e.status.last_dir, e.status.retrans, e.last_end, c.last_seq, c.last_ack,
                  c.last_win, k.end[0], k.end[1], k.maxend[0], k.maxend[1], k.maxwin[0], k.maxwin[1], k.maxack[0],
                  k.maxack[1], k.scale[0], k.scale[1], k.flags[0], k.flags[1]);
    return buf;
  }

  void snapshot() {
    prev4_ = live_entries(a4_.table);
    prev6_ = live_entries(a6_.table);
    prev_counters_ = a_.counters();
  }

  Heap<flow::V4> a4_;
  Heap<flow::V6> a6_;
  Heap<flow::V4> b4_;
  Heap<flow::V6> b6_;
  flow::Tracker a_;
  flow::Tracker b_;
  std::uint64_t clock_ms_;
  Tuple tuples_[2][kTuples];
  std::uint32_t nxt_[2][kTuples][2];  // next sequence number of [family][tuple][client, server]
  packet::PacketView views_[flow::Tracker::kMaxBurst];
  ctlb_test::Bytes frames_[flow::Tracker::kMaxBurst];  // views_' frames
  std::uint32_t wires_[flow::Tracker::kMaxBurst];
  bool frames_next_ = false;
  unsigned pending_ = 0;
  std::uint64_t expired_in_[tcp::kCtStateCount] = {};
  std::vector<Live<flow::V4>> prev4_;
  std::vector<Live<flow::V6>> prev6_;
  flow::TrackerCounters prev_counters_{};
  std::uint64_t burst_fast_start_ = 0;  // A's fast_path when the burst began
  std::uint64_t burst_lag_ = 0;         // A's segments done in place so far in the burst
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in(data, size);
  const std::uint8_t knobs = in.u8();
  const std::uint32_t cap4 = 1 + in.u8() % 24;
  const std::uint32_t cap6 = 1 + in.u8() % 12;
  const std::uint8_t shrink = in.u8() % 20;
  const std::uint32_t start = in.u32();
  tcp::Config cfg;
  cfg.liberal = knobs & 1;
  cfg.loose = !(knobs & 2);
  cfg.ignore_invalid_rst = knobs & 4;
  cfg.max_retrans = static_cast<std::uint8_t>((knobs >> 3) & 3);
  // Shorter timeouts (in proportion) so that clock steps expire entries.
  for (auto& ms : cfg.timeouts.ms) ms = std::max<ctlb::Millis>(ms >> shrink, ms ? 1 : 0);
  Harness h(cap4, cap6, cfg, start);
  h.run(in);
  return 0;
}
