#pragma once
// One worker's connection tracker: parsed packet -> flow key -> table entry
// -> TCP state machine -> verdict, with every outcome counted. The workers,
// the micro-benchmarks and `ctlbctl trace` all run this same code.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "dataplane/common/uninitialised.hpp"
#include "dataplane/flow/flow_key.hpp"
#include "dataplane/flow/flow_table.hpp"
#include "dataplane/packet/packet_view.hpp"
#include "dataplane/packet/parse.hpp"
#include "dataplane/packet/parse_result.hpp"
#include "dataplane/tcp/tcp_tracker.hpp"

namespace ctlb::flow {

// X(field, name, description)
#define CTLB_TRACKER_COUNTERS(X)                                                         \
  X(tcp_packets, "tcp_packets", "TCP segments tracked")                                  \
  X(fast_path, "fast_path", "of tcp_packets: in-window segments of established connections, done in place") \
  X(accepted, "accepted", "TCP segments with verdict accept")                            \
  X(invalid, "invalid", "TCP segments with verdict invalid")                             \
  X(flows_created, "flows_created", "connections opened")                                \
  X(flows_reopened, "flows_reopened", "of flows_created: re-opened by a SYN on a closed tuple") \
  X(flows_destroyed, "flows_destroyed", "connections ended at once (RST before any reply)") \
  X(flows_expired, "flows_expired", "connections freed by an expiry request")            \
  X(flows_reclaimed, "flows_reclaimed", "expired connections freed inline to make room") \
  X(flows_evicted, "flows_evicted", "live connections evicted to make room")             \
  X(untracked_table_full, "untracked_table_full", "new connections not tracked: no room")  \
  X(new_flows_rate_limited, "new_flows_rate_limited", "packets that would open a connection over tracking.new_flow_limit (dropped)")

// Handshake timing histograms: bucket b counts latencies below
// kHandshakeBucketMs[b] (the last bucket: everything above).
inline constexpr std::size_t kHandshakeBuckets = 12;
inline constexpr std::uint32_t kHandshakeBucketMs[kHandshakeBuckets - 1] = {1,   2,   5,    10,   20,  50,
                                                                              100, 200, 500, 1000, 3000};

constexpr std::size_t handshake_bucket(std::uint32_t ms) noexcept {
  std::size_t b = 0;
  while (b < kHandshakeBuckets - 1 && ms >= kHandshakeBucketMs[b]) ++b;
  return b;
}

struct TrackerCounters {
#define CTLB_X(f, n, d) std::uint64_t f;
  CTLB_TRACKER_COUNTERS(CTLB_X)
#undef CTLB_X
  std::uint64_t parse[packet::kParseResultCount];
  std::uint64_t reasons[tcp::kReasonCount];
  std::int64_t flows_in_state[tcp::kCtStateCount];  // gauge
  std::uint64_t transitions[tcp::kCtStateCount][tcp::kCtStateCount];  // [from][to], from != to
  std::uint64_t syn_to_synack[kHandshakeBuckets];  // SYN seen -> SYN-ACK seen, ms
  std::uint64_t synack_to_ack[kHandshakeBuckets];  // SYN-ACK seen -> handshake's ACK seen, ms
  std::uint64_t syn_to_synack_ms_sum;
  std::uint64_t synack_to_ack_ms_sum;
};

// Connections whose handshake has not completed (SYN_SENT, SYN_RECV,
// SYN_SENT2): what a SYN flood fills the table with. Gauges summed over
// workers can be briefly negative; so can this.
inline std::int64_t half_open_flows(const TrackerCounters& c) noexcept {
  return c.flows_in_state[static_cast<std::size_t>(tcp::CtState::SynSent)] +
         c.flows_in_state[static_cast<std::size_t>(tcp::CtState::SynRecv)] +
         c.flows_in_state[static_cast<std::size_t>(tcp::CtState::SynSent2)];
}

struct TrackResult {
  tcp::Verdict verdict = tcp::Verdict::Accept;
  tcp::Reason reason = tcp::Reason::Ok;
  tcp::Dir dir = tcp::Dir::Orig;
  tcp::CtState state = tcp::CtState::None;  // after the packet (None: no entry)
  tcp::EpState initiator = tcp::EpState::Closed;
  tcp::EpState responder = tcp::EpState::Closed;
  bool initiator_is_lo = true;  // to print the flow in its original direction
  Handle handle = kNoHandle;
  std::uint32_t hash = 0;  // of the flow's canonical key: the same in both directions and on every instance
  std::uint32_t syn_to_synack_ms = kNoTiming;  // set by the SYN-ACK that answered the SYN
  // The load balancer's backend stored in the entry (kNoBackend: none yet,
  // or no entry). Kept when the packet ended the connection (a RST that
  // destroyed it), so that the packet can still follow it.
  std::uint16_t backend = kNoBackend;
  static constexpr std::uint32_t kNoTiming = 0xffffffffu;
};

// Clock of the tracker: milliseconds since an epoch of the caller's choice.
struct Clock {
  std::uint64_t ms;
  Millis now() const noexcept { return static_cast<Millis>(ms); }
  std::uint32_t seconds() const noexcept { return static_cast<std::uint32_t>(ms / 1000); }
};

class Tracker {
 public:
  Tracker(FlowTable<V4> v4, FlowTable<V6> v6, const tcp::Config& cfg) noexcept
      : v4_(v4),
        v6_(v6),
        cfg_(cfg),
        policy_{&cfg_.timeouts},
        est_caps_(tcp::detail::state_caps(tcp::CtState::Established, cfg)) {}

  // The in-place path for in-window segments of established connections is
  // on by default; tests turn it off to compare it with the general path.
  void set_fast_path(bool on) noexcept { fast_path_ = on; }

  // The budget of new connections (tracking.new_flow_limit): a token bucket
  // of `burst` tokens refilled at `rate` per second; rate 0: no limit. A
  // packet that would open a connection with the bucket empty gets verdict
  // Drop and reason RateLimited, and creates nothing. Changing the limit
  // starts with a full bucket.
  void set_new_flow_limit(std::uint32_t rate, std::uint32_t burst) noexcept {
    if (rate == limit_rate_ && burst == limit_burst_) return;
    limit_rate_ = rate;
    limit_burst_ = burst;
    tokens_milli_ = static_cast<std::uint64_t>(burst) * 1000;
    refilled_ms_ = kNeverRefilled;
  }
  std::uint32_t new_flow_rate() const noexcept { return limit_rate_; }
  std::uint32_t new_flow_burst() const noexcept { return limit_burst_; }

  TrackerCounters& counters() noexcept { return counters_; }
  const TrackerCounters& counters() const noexcept { return counters_; }
  FlowTable<V4>& table_v4() noexcept { return v4_; }
  FlowTable<V6>& table_v6() noexcept { return v6_; }
  const tcp::Config& config() const noexcept { return cfg_; }
  const EvictionPolicy& policy() const noexcept { return policy_; }

  static constexpr unsigned kMaxBurst = 32;

  // Tracks one parsed TCP segment (parse result Tcp).
  TrackResult track(const packet::PacketView& v, Clock clock) noexcept {
    TrackResult r;
    bool fast;
    if (v.family == packet::IpFamily::V4) {
      KeyV4 k;
      const Side side = make_key(v, k);
      fast = track_one(v4_, v, k, hash_key(k), side, kNoHandle, clock, r);
    } else {
      KeyV6 k;
      const Side side = make_key(v, k);
      fast = track_one(v6_, v, k, hash_key(k), side, kNoHandle, clock, r);
    }
    count_fast(fast ? 1 : 0);
    return r;
  }

  // Tracks up to kMaxBurst segments, overlapping their memory accesses: keys
  // and hashes first (buckets prefetched), then each primary bucket's
  // signature match (entry and cold record prefetched), then the state
  // machine in packet order. Equivalent to track() on each in turn: hints are
  // re-checked, so packets of one connection in the same burst stay in order.
  void track_burst(const packet::PacketView* const* v, unsigned n, Clock clock, TrackResult* out) noexcept {
    track_burst(v, n, clock, out, [](unsigned, TrackResult&) noexcept {});
  }

  // The same, calling after(i, out[i]) right after packet i is tracked and
  // before packet i + 1 is: what it writes into the entry (the load
  // balancer's backend) is in place before a later packet of the burst can
  // free the entry or reuse its handle.
  template <class After>
  void track_burst(const packet::PacketView* const* v, unsigned n, Clock clock, TrackResult* out,
                   After&& after) noexcept {
    BurstKeys keys;
    for (unsigned i = 0; i < n; ++i) prepare(*v[i], keys, i);
    track_prepared(v, n, keys, clock, out, after);
  }

  // A burst's keys, hashes and sides. A caller that parses a burst itself
  // fills them with prepare() as each segment is parsed, so that the fetch
  // of its bucket overlaps the parsing of the rest, then tracks the burst
  // with track_prepared(). Plain arrays, left uninitialised.
  struct BurstKeys {
    KeyV4 k4[kMaxBurst];
    KeyV6 k6[kMaxBurst];
    std::uint32_t hash[kMaxBurst];
    Side side[kMaxBurst];
    bool v6[kMaxBurst];
    Handle hint[kMaxBurst];  // from find_candidates()
  };

  // Segment i of a burst: its key, side and hash (returned: the flow hash
  // that owner steering uses too), its primary bucket prefetched; with
  // kPrefetch false, not yet: prefetch_buckets() then fetches the burst's
  // buckets together.
  template <bool kPrefetch = true>
  [[gnu::always_inline]] std::uint32_t prepare(const packet::PacketView& v, BurstKeys& b, unsigned i) noexcept {
    b.v6[i] = v.family != packet::IpFamily::V4;
    if (!b.v6[i]) {
      b.side[i] = make_key(v, b.k4[i]);
      b.hash[i] = hash_key(b.k4[i]);
      if constexpr (kPrefetch) v4_.prefetch_bucket(b.hash[i]);
    } else {
      b.side[i] = make_key(v, b.k6[i]);
      b.hash[i] = hash_key(b.k6[i]);
      if constexpr (kPrefetch) v6_.prefetch_bucket(b.hash[i]);
    }
    return b.hash[i];
  }
  template <bool kPrefetch = true>
  [[gnu::always_inline]] std::uint32_t prepare(const packet::AckSegment& s, BurstKeys& b, unsigned i) noexcept {
    b.v6[i] = false;
    b.side[i] = make_key(s, b.k4[i]);
    b.hash[i] = hash_key(b.k4[i]);
    if constexpr (kPrefetch) v4_.prefetch_bucket(b.hash[i]);
    return b.hash[i];
  }

  // The primary buckets of segments 0..n-1, prepared without their
  // prefetch, fetched back to back. For a caller whose parse runs between
  // prepare()s: a prefetch whose page is not in the TLB holds up retirement
  // until the page walk is done, and a long parse between two of them keeps
  // their walks from overlapping; issued together, they do.
  [[gnu::always_inline]] void prefetch_buckets(unsigned n, const BurstKeys& b) const noexcept {
    for (unsigned i = 0; i < n; ++i) {
      if (!b.v6[i]) v4_.prefetch_bucket(b.hash[i]);
      else v6_.prefetch_bucket(b.hash[i]);
    }
  }

  // track_burst() of segments prepared (keys[i] from prepare(*v[i], keys, i)).
  template <class After>
  void track_prepared(const packet::PacketView* const* v, unsigned n, BurstKeys& keys, Clock clock,
                      TrackResult* out, After&& after) noexcept {
    find_candidates(n, keys);
    track_candidates(v, n, keys, clock, out, after);
  }

  // The two halves of track_prepared(), for a caller that keeps several
  // bursts in flight: the first reads each prepared segment's bucket (which
  // should have arrived by now) and prefetches its candidate entry; the
  // second tracks. Hints are re-checked, so bursts tracked in between do
  // no harm.
  void find_candidates(unsigned n, BurstKeys& keys) const noexcept {
    for (unsigned i = 0; i < n; ++i)
      keys.hint[i] = keys.v6[i] ? v6_.candidate(keys.hash[i]) : v4_.candidate(keys.hash[i]);
  }

  template <class After>
  void track_candidates(const packet::PacketView* const* v, unsigned n, const BurstKeys& keys, Clock clock,
                        TrackResult* out, After&& after) noexcept {
    const std::uint32_t* hash = keys.hash;
    const Handle* hint = keys.hint;
    // Segments done in place are counted once for the burst.
    std::uint32_t fast = 0;
    for (unsigned i = 0; i < n; ++i) {
      fast += v[i]->family == packet::IpFamily::V4
                  ? track_one(v4_, *v[i], keys.k4[i], hash[i], keys.side[i], hint[i], clock, out[i])
                  : track_one(v6_, *v[i], keys.k6[i], hash[i], keys.side[i], hint[i], clock, out[i]);
      after(i, out[i]);
    }
    count_fast(fast);
  }

  // A burst of frames, parsed and tracked, as inline mode runs it: an
  // AckSegment (packet::parse_ack_segment) goes straight to the in-place
  // path, any other frame, or one the in-place path turns down, is parsed
  // whole (parse_frame) for the general path. Every parse result is counted.
  // keep(i, hash) is asked for each TCP segment as soon as its flow hash is
  // known; false: the caller took the frame (handed it to another worker),
  // it is not tracked or counted here. done(i, parse result, r) is then
  // called for each kept frame in order, right after it is tracked: r is
  // null for a frame that is not a TCP segment; else r->verdict is set, and
  // with kResults the whole result (without it, a segment done in place
  // reports only its verdict, Accept). Tracked exactly as track() one by one.
  // n <= kMaxBurst.
  template <bool kResults, class Keep, class Done>
  void track_frames(const packet::Frame* f, unsigned n, Clock clock, Keep&& keep, Done&& done) noexcept {
    enum class Kind : std::uint8_t { Gone, Other, Ack, View };
    Uninitialised<packet::PacketView, kMaxBurst> views;
    Uninitialised<packet::AckSegment, kMaxBurst> acks;  // by TCP slot
    packet::ParseResult other[kMaxBurst];
    Kind kind[kMaxBurst];
    unsigned slot[kMaxBurst];
    BurstKeys keys;
    unsigned tcp = 0;
    std::uint64_t ack_segments = 0;
    for (unsigned i = 0; i < n; ++i) {
      if (i + 1 < n) __builtin_prefetch(f[i + 1].data);
      if (packet::parse_ack_segment(f[i].data, f[i].len, f[i].wire_len, acks[tcp])) {
        if (!keep(i, prepare<false>(acks[tcp], keys, tcp))) {
          kind[i] = Kind::Gone;
          continue;
        }
        kind[i] = Kind::Ack;
        ++ack_segments;
      } else {
        const packet::ParseResult res = packet::parse_frame(f[i].data, f[i].len, f[i].wire_len, views[i]);
        if (res != packet::ParseResult::Tcp) {
          kind[i] = Kind::Other;
          other[i] = res;
          count_parse(res);
          continue;
        }
        if (!keep(i, prepare<false>(views[i], keys, tcp))) {
          kind[i] = Kind::Gone;
          continue;
        }
        kind[i] = Kind::View;
        count_parse(res);
      }
      slot[i] = tcp++;
    }
    counters_.parse[static_cast<std::size_t>(packet::ParseResult::Tcp)] += ack_segments;
    prefetch_buckets(tcp, keys);  // together, so that their page walks overlap
    find_candidates(tcp, keys);

    std::uint32_t fast = 0;
    Uninitialised<TrackResult, 1> result;
    TrackResult& r = result[0];
    for (unsigned i = 0; i < n; ++i) {
      if (kind[i] == Kind::Gone) continue;
      if (kind[i] == Kind::Other) {
        done(i, other[i], static_cast<const TrackResult*>(nullptr));
        continue;
      }
      const unsigned t = slot[i];
      if (kind[i] == Kind::Ack) {
        if (in_place<kResults>(keys, t, acks[t], clock, r)) {
          ++fast;
          done(i, packet::ParseResult::Tcp, static_cast<const TrackResult*>(&r));
          continue;
        }
        // The whole view (parse_frame() says Tcp for every AckSegment) for the general path.
        packet::parse_frame(f[i].data, f[i].len, f[i].wire_len, views[i]);
        general_after_in_place(keys, t, views[i], clock, r);
      } else {
        fast += track_prepared_one(keys, t, views[i], clock, r);
      }
      done(i, packet::ParseResult::Tcp, static_cast<const TrackResult*>(&r));
    }
    count_fast(fast);
  }

  // Slot t of a prepared burst (find_candidates() done), for a caller that
  // runs its own burst loop. An AckSegment (prepared from it) first tries
  // the in-place path: in_place() returns true when done (count it with
  // count_in_place() at the end of the burst; kResults as track_frames());
  // when it returns false the segment's whole view (parse_frame() of its
  // frame) goes to general_after_in_place(). A segment prepared from its
  // view goes to track_prepared_one(), which returns true when it was done
  // in place. Together: what track() does.
  template <bool kResults>
  [[gnu::always_inline]] bool in_place(const BurstKeys& keys, unsigned t, const packet::AckSegment& ack, Clock clock,
                                       TrackResult& r) noexcept {
    const Handle h = v4_.lookup(keys.k4[t], keys.hash[t], keys.hint[t]);
    if (h == kNoHandle || !fast_path_ ||
        !track_established<kResults>(v4_, h, ack, keys.side[t], clock.now(), keys.hash[t], r))
      return false;
    if constexpr (!kResults) r.verdict = tcp::Verdict::Accept;
    return true;
  }
  void general_after_in_place(const BurstKeys& keys, unsigned t, const packet::PacketView& v, Clock clock,
                              TrackResult& r) noexcept {
    // As track_one() once its fast path said no (the lookup is repeated: rare).
    const Handle h = v4_.lookup(keys.k4[t], keys.hash[t], keys.hint[t]);
    r = track_in(v4_, v, keys.k4[t], keys.hash[t], keys.side[t], h, clock);
    count_result(r);
  }
  [[gnu::always_inline]] bool track_prepared_one(const BurstKeys& keys, unsigned t, const packet::PacketView& v,
                                                 Clock clock, TrackResult& r) noexcept {
    return keys.v6[t] ? track_one(v6_, v, keys.k6[t], keys.hash[t], keys.side[t], keys.hint[t], clock, r)
                      : track_one(v4_, v, keys.k4[t], keys.hash[t], keys.side[t], keys.hint[t], clock, r);
  }

  // Counts the segments in_place() and track_prepared_one() did in place (once per burst).
  void count_in_place(std::uint32_t n) noexcept { count_fast(n); }

  // Counts a TCP segment refused before tracking (e.g. a bad checksum) and
  // reports the state of its connection, which it does not change.
  TrackResult reject(const packet::PacketView& v, tcp::Reason why) noexcept {
    ++counters_.tcp_packets;
    ++counters_.invalid;
    ++counters_.reasons[static_cast<std::size_t>(why)];
    TrackResult r = v.family == packet::IpFamily::V4 ? peek(v4_, v) : peek(v6_, v);
    r.verdict = tcp::Verdict::Invalid;
    r.reason = why;
    return r;
  }

  void count_parse(packet::ParseResult p) noexcept { ++counters_.parse[static_cast<std::size_t>(p)]; }

  // The load balancer's backend of a connection (kNoBackend: none chosen
  // yet). Set by the owner; readers see it under the entry's seqlock.
  std::uint16_t backend(packet::IpFamily f, Handle h) const noexcept {
    return f == packet::IpFamily::V4 ? v4_.cold(h).backend : v6_.cold(h).backend;
  }
  void set_backend(packet::IpFamily f, Handle h, std::uint16_t b) noexcept {
    if (f == packet::IpFamily::V4) set_backend_in(v4_, h, b);
    else set_backend_in(v6_, h, b);
  }

  // The entry of a segment's connection, without changing anything.
  Handle find(const packet::PacketView& v) noexcept {
    return v.family == packet::IpFamily::V4 ? find_in(v4_, v) : find_in(v6_, v);
  }

  template <class F>
  ExpireStatus expire(FlowTable<F>& table, Handle h, std::uint32_t version, Clock clock) noexcept {
    if (h >= table.capacity()) return ExpireStatus::BadHandle;
    const auto state = table.entry(h).status.ct_state;
    const ExpireStatus s = table.expire(h, version, clock.now(), policy_);
    if (s == ExpireStatus::Expired) {
      ++counters_.flows_expired;
      --counters_.flows_in_state[state];
    }
    return s;
  }

  static void load(const EntryV4& e, const Cold& c, tcp::State& s) noexcept { load_common(e, c, s); }
  static void load(const EntryV6& e, const Cold& c, tcp::State& s) noexcept { load_common(e, c, s); }

 private:
  template <class F>
  static void set_backend_in(FlowTable<F>& table, Handle h, std::uint16_t b) noexcept {
    auto& e = table.entry(h);
    FlowTable<F>::write_begin(e);
    table.cold(h).backend = b;
    FlowTable<F>::write_end(e);
  }

  template <class F>
  static Handle find_in(FlowTable<F>& table, const packet::PacketView& v) noexcept {
    typename F::Key key;
    make_key(v, key);
    return table.lookup(key, hash_key(key));
  }

  template <class E>
  static void load_common(const E& e, const Cold& c, tcp::State& s) noexcept {
    s.last_seen = e.last_seen;
    s.st = e.status;
    s.last_end = e.last_end;
    s.track = e.track;
    s.last_seq = c.last_seq;
    s.last_ack = c.last_ack;
    s.last_win = c.last_win;
  }

  // Writes a connection's state back under the entry's seqlock. A new
  // connection (`created` set) also gets its creation time and no backend.
  template <class F>
  static void store(FlowTable<F>& table, Handle h, const tcp::State& s, const Clock* created = nullptr) noexcept {
    auto& e = table.entry(h);
    Cold& c = table.cold(h);
    FlowTable<F>::write_begin(e);
    if (created) {
      c.created_s = created->seconds();
      c.backend = kNoBackend;
    }
    e.last_seen = s.last_seen;
    e.status = s.st;
    e.last_end = s.last_end;
    e.track = s.track;
    c.last_seq = s.last_seq;
    c.last_ack = s.last_ack;
    c.last_win = s.last_win;
    FlowTable<F>::write_end(e);
  }

  void gauge_move(tcp::CtState from, tcp::CtState to) noexcept {
    if (from == to) return;
    ++counters_.transitions[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)];
    if (from != tcp::CtState::None) --counters_.flows_in_state[static_cast<std::size_t>(from)];
    if (to != tcp::CtState::None) ++counters_.flows_in_state[static_cast<std::size_t>(to)];
  }

  static void fill(TrackResult& r, const tcp::State& s) noexcept {
    r.state = s.ct();
    r.initiator = s.initiator();
    r.responder = s.responder();
    r.initiator_is_lo = s.st.initiator_is_lo;
  }

  template <class F>
  TrackResult peek(FlowTable<F>& table, const packet::PacketView& v) noexcept {
    TrackResult r;
    typename F::Key key;
    const Side side = make_key(v, key);
    r.initiator_is_lo = side == Side::Lo;
    const Handle h = table.lookup(key, hash_key(key));
    if (h == kNoHandle) return r;
    tcp::State s;
    load(table.entry(h), table.cold(h), s);
    fill(r, s);
    r.handle = h;
    r.dir = ((side == Side::Lo) == static_cast<bool>(s.st.initiator_is_lo)) ? tcp::Dir::Orig : tcp::Dir::Reply;
    return r;
  }

  void count_result(const TrackResult& r) noexcept {
    ++counters_.tcp_packets;
    ++counters_.reasons[static_cast<std::size_t>(r.reason)];
    if (r.verdict == tcp::Verdict::Accept) ++counters_.accepted;
    else if (r.verdict == tcp::Verdict::Invalid) ++counters_.invalid;
    else ++counters_.new_flows_rate_limited;
  }

  // Fast-path segments are counted by the caller (count_fast()), the
  // rest here. Inlined in the burst loop: the fast path is the common case;
  // the general path is a call.
  template <class F>
  [[gnu::always_inline]] inline bool track_one(FlowTable<F>& table, const packet::PacketView& v,
                                               const typename F::Key& key, std::uint32_t hash, Side side, Handle hint,
                                               Clock clock, TrackResult& r) noexcept {
    const Handle h = table.lookup(key, hash, hint);
    if (h != kNoHandle && fast_path_ && track_established(table, h, v, side, clock.now(), hash, r)) return true;
    r = track_in(table, v, key, hash, side, h, clock);
    count_result(r);
    return false;
  }

  void count_fast(std::uint32_t n) noexcept {
    counters_.tcp_packets += n;
    counters_.fast_path += n;
    counters_.accepted += n;
    counters_.reasons[static_cast<std::size_t>(tcp::Reason::Ok)] += n;
  }

  // The general path, for a segment whose entry (kNoHandle: none) was looked up.
  template <class F>
  [[gnu::noinline]] TrackResult track_in(FlowTable<F>& table, const packet::PacketView& v,
                                         const typename F::Key& key, std::uint32_t hash, Side side, Handle h,
                                         Clock clock) noexcept {
    TrackResult r;
    r.hash = hash;
    const Millis now = clock.now();
    if (h != kNoHandle) r.backend = table.cold(h).backend;
    tcp::State s;
    if (h != kNoHandle) {
      load(table.entry(h), table.cold(h), s);
      fill(r, s);
      r.handle = h;
      r.dir = ((side == Side::Lo) == static_cast<bool>(s.st.initiator_is_lo)) ? tcp::Dir::Orig : tcp::Dir::Reply;
    } else {
      r.initiator_is_lo = side == Side::Lo;
    }
    if (!tcp::valid_flags(v.flags)) {
      r.verdict = tcp::Verdict::Invalid;
      r.reason = tcp::Reason::BadFlags;
      return r;
    }
    if (h == kNoHandle) return open(table, key, hash, side, v, clock, r);

    const tcp::CtState before = s.ct();
    const Millis renewed = s.last_seen;  // the SYN's time (a retransmitted SYN does not renew it)
    const tcp::Outcome o = tcp::track(s, v, r.dir, now, cfg_);
    if (o.verdict == tcp::Verdict::Accept) {
      const std::uint32_t ms = elapsed_ms(now, renewed);
      if (before == tcp::CtState::SynSent && s.ct() == tcp::CtState::SynRecv) {
        ++counters_.syn_to_synack[handshake_bucket(ms)];
        counters_.syn_to_synack_ms_sum += ms;
        r.syn_to_synack_ms = ms;
      } else if (before == tcp::CtState::SynRecv && s.ct() == tcp::CtState::Established) {
        ++counters_.synack_to_ack[handshake_bucket(ms)];
        counters_.synack_to_ack_ms_sum += ms;
      }
    }
    r.verdict = o.verdict;
    r.reason = o.reason;
    switch (o.action) {
      case tcp::Action::Store:
      case tcp::Action::Drop:
        store(table, h, s);
        gauge_move(before, s.ct());
        fill(r, s);
        return r;
      case tcp::Action::Destroy:
        gauge_move(before, tcp::CtState::None);
        table.erase(h);
        ++counters_.flows_destroyed;
        r.state = tcp::CtState::None;
        r.initiator = r.responder = tcp::EpState::Closed;  // a RST ended it
        r.handle = kNoHandle;
        return r;
      case tcp::Action::Reopen: {
        // The old connection is over; the SYN's sender initiates the new one.
        gauge_move(before, tcp::CtState::None);
        ++counters_.flows_reopened;
        tcp::open_connection(s, v, side == Side::Lo, now, cfg_);
        const tcp::Outcome o2 = tcp::track(s, v, tcp::Dir::Orig, now, cfg_);
        store(table, h, s, &clock);  // a new connection: it chooses its backend afresh
        r.backend = kNoBackend;
        ++counters_.flows_created;
        gauge_move(tcp::CtState::None, s.ct());
        r.dir = tcp::Dir::Orig;
        r.verdict = o2.verdict;
        r.reason = tcp::Reason::Reopened;
        fill(r, s);
        return r;
      }
    }
    return r;
  }

  // The common case, done in place: an ACK or data segment (no SYN, FIN, RST
  // or URG, no SACK blocks to read) of an assured ESTABLISHED connection whose
  // endpoints are both ESTABLISHED, that passes the window check. It makes
  // exactly the changes tcp::track() makes for such a segment (the unit test
  // FastPath.SameAsGeneralPath compares the two on random traffic); anything
  // else, including a failed window check, returns false untouched and takes
  // the general path.
  //
  // The segment is a PacketView or an AckSegment (which has no SACK
  // blocks); kFill: also write the result (else r is not touched).
  static std::uint8_t sack_blocks_of(const packet::PacketView& v) noexcept { return v.options.sack_blocks; }
  static std::uint8_t sack_blocks_of(const packet::AckSegment&) noexcept { return 0; }

  // The fast path's precondition on the status word: ESTABLISHED, both
  // endpoints ESTABLISHED, the reply seen, assured.
  struct EstablishedWord {
    static constexpr std::uint32_t kEst = static_cast<std::uint32_t>(tcp::CtState::Established);
    static constexpr std::uint32_t kEpEst = static_cast<std::uint32_t>(tcp::EpState::Established);
    static constexpr std::uint32_t kWhenMask = tcp::status_bits::kCtState.mask() | tcp::status_bits::kInitiator.mask() |
                                               tcp::status_bits::kResponder.mask() |
                                               tcp::status_bits::kSeenReply.mask() | tcp::status_bits::kAssured.mask();
    static constexpr std::uint32_t kWhen =
        tcp::status_bits::kCtState.value(kEst) | tcp::status_bits::kInitiator.value(kEpEst) |
        tcp::status_bits::kResponder.value(kEpEst) | tcp::status_bits::kSeenReply.value(1) |
        tcp::status_bits::kAssured.value(1);
  };

  template <bool kFill = true, class F, class Segment>
  [[gnu::always_inline]] inline bool track_established(FlowTable<F>& table, Handle h, const Segment& v, Side side,
                                                       Millis now, std::uint32_t hash, TrackResult& r) noexcept {
    using namespace packet::tcpflag;
    namespace sb = tcp::status_bits;
    auto& e = table.entry(h);
    const std::uint32_t sw = tcp::status_word(e.status);
    if ((sw & EstablishedWord::kWhenMask) != EstablishedWord::kWhen) return false;
    // An AckSegment is one by construction (packet::parse_ack_segment()).
    if constexpr (!std::is_same_v<Segment, packet::AckSegment>)
      if ((v.flags & ~(kEce | kCwr | kPsh)) != kAck) return false;
    // Orig when the sender is the endpoint that initiated (Side::Lo is 0).
    const std::uint32_t initiator_is_lo = (sw >> sb::kInitiatorIsLo.shift) & 1u;
    const bool reply = (static_cast<std::uint32_t>(side) ^ 1u ^ initiator_is_lo) != 0;
    // The rest with the direction a constant: each direction's fields are
    // read and written at fixed offsets.
    return reply ? established_in<1, kFill>(table, h, e, sw, v, now, hash, r)
                 : established_in<0, kFill>(table, h, e, sw, v, now, hash, r);
  }

  // track_established() for a segment of direction D (tcp::Dir) of entry e,
  // whose status word sw passed the precondition.
  template <int D, bool kFill, class F, class Segment>
  [[gnu::always_inline]] inline bool established_in(FlowTable<F>& table, Handle h, typename F::Entry& e,
                                                    std::uint32_t sw, const Segment& v, Millis now, std::uint32_t hash,
                                                    TrackResult& r) noexcept {
    namespace sb = tcp::status_bits;
    // timeout_cap keeps its value unless a cap is chosen (as in tcp::detail::set_timeout()).
    constexpr std::uint32_t kChanged =
        sb::kTimeoutClass.mask() | sb::kLastIndex.mask() | sb::kLastDir.mask() | sb::kRetrans.mask();
    constexpr std::uint32_t kCapField = sb::kTimeoutCap.mask();
    constexpr std::uint32_t kAckIndex = sb::kLastIndex.value(static_cast<std::uint32_t>(tcp::Index::Ack));
    constexpr std::uint32_t kDirBits = static_cast<std::uint32_t>(D) << sb::kLastDir.shift;
    constexpr int kRetransShift = sb::kRetrans.shift;
    constexpr std::uint32_t kCapRetrans = sb::kTimeoutClass.value(1) | sb::kTimeoutCap.value(0);
    constexpr std::uint32_t kCapUnack = sb::kTimeoutClass.value(1) | sb::kTimeoutCap.value(1);
    constexpr int od = 1 - D;
    static_assert(sb::kRetrans.shift + sb::kRetrans.width == 32);

    tcp::Track& t = e.track;
    if ((t.flags[0] | t.flags[1]) & tcp::dirflag::kFinSeen) return false;
    // A direction whose window was never set (a picked-up connection whose
    // reply so far was only ignored, e.g. an out-of-sync SYN-ACK): the
    // general path initialises it from this segment.
    if (t.maxwin[D] == 0) return false;
    if ((t.flags[od] & tcp::dirflag::kSackPerm) && sack_blocks_of(v)) return false;

    std::uint32_t seq = v.seq;
    std::uint32_t end = v.seq + v.payload_len;
    const std::uint32_t ack = v.ack;
    if (seq == end) seq = end = t.end[D];  // no data: checked by its ACK only
    if (!tcp::detail::passes_window(t, D, seq, end, ack)) return false;

    Cold& c = table.cold(h);
    FlowTable<F>::write_begin(e);
    tcp::detail::advance_window(t, D, end, ack, ack, static_cast<std::uint32_t>(v.window) << t.scale[D], true);

    // As tcp::track(): an identical segment in the same direction counts as
    // a retransmission; then tcp::detail::choose_cap() for ESTABLISHED
    // after an ACK (retransmissions, unacknowledged data, zero window).
    const std::uint32_t old_retrans = sw >> kRetransShift;  // the top field
    const bool same = (sw & sb::kLastDir.mask()) == kDirBits && c.last_seq == seq && c.last_ack == ack &&
                      e.last_end == end && c.last_win == v.window;
    const std::uint32_t retrans = same ? (old_retrans < 3 ? old_retrans + 1 : 3) : 0;
    std::uint32_t nw = (sw & ~kChanged) | kAckIndex | kDirBits | (retrans << kRetransShift);
    const tcp::detail::Cap cap = tcp::detail::choose_cap(
        est_caps_, tcp::Index::Ack, (t.flags[0] | t.flags[1]) & tcp::dirflag::kDataUnacked, retrans, v.window);
    if (cap == tcp::detail::Cap::Retrans) nw = (nw & ~kCapField) | kCapRetrans;
    else if (cap == tcp::detail::Cap::Unack) nw = (nw & ~kCapField) | kCapUnack;  // Close: only after a RST
    c.last_seq = seq;
    c.last_ack = ack;
    c.last_win = v.window;
    e.last_end = end;
    e.status = tcp::status_of_word(nw);
    e.last_seen = now;
    FlowTable<F>::write_end(e);
    if constexpr (!kFill) return true;

    r.verdict = tcp::Verdict::Accept;
    r.reason = tcp::Reason::Ok;
    r.dir = static_cast<tcp::Dir>(D);
    r.state = tcp::CtState::Established;
    r.initiator = r.responder = tcp::EpState::Established;
    r.initiator_is_lo = ((sw >> sb::kInitiatorIsLo.shift) & 1u) != 0;
    r.handle = h;
    r.hash = hash;
    r.syn_to_synack_ms = TrackResult::kNoTiming;
    r.backend = c.backend;
    static_assert(sizeof(TrackResult) == 24, "a field was added: write it above (callers pass uninitialised results)");
    return true;
  }

  template <class F>
  TrackResult open(FlowTable<F>& table, const typename F::Key& key, std::uint32_t hash, Side side,
                   const packet::PacketView& v, Clock clock, TrackResult& r) noexcept {
    tcp::State s;
    const Millis now = clock.now();
    const tcp::Reason why = tcp::open_connection(s, v, side == Side::Lo, now, cfg_);
    if (why != tcp::Reason::Ok) {
      r.verdict = tcp::Verdict::Invalid;
      r.reason = why;
      return r;
    }
    const tcp::Outcome o = tcp::track(s, v, tcp::Dir::Orig, now, cfg_);
    r.dir = tcp::Dir::Orig;
    r.verdict = o.verdict;
    r.reason = o.reason;
    if (o.verdict == tcp::Verdict::Invalid || o.action == tcp::Action::Destroy) return r;
    if (limit_rate_ != 0 && !take_token(clock.ms)) {
      r.verdict = tcp::Verdict::Drop;
      r.reason = tcp::Reason::RateLimited;
      return r;
    }
    const InsertResult ins = table.insert(key, hash, now, policy_);
    if (ins.status == InsertStatus::Refused) {
      ++counters_.untracked_table_full;
      r.reason = tcp::Reason::NoEntry;
      return r;
    }
    if (ins.status != InsertStatus::Inserted) {
      gauge_move(static_cast<tcp::CtState>(ins.victim.ct_state), tcp::CtState::None);
      if (ins.status == InsertStatus::Evicted) ++counters_.flows_evicted;
      else ++counters_.flows_reclaimed;
    }
    store(table, ins.handle, s, &clock);
    ++counters_.flows_created;
    gauge_move(tcp::CtState::None, s.ct());
    r.handle = ins.handle;
    fill(r, s);
    return r;
  }

  // Refills the bucket for the time since the last refill (in thousandths
  // of a token, so that no fraction is lost) and takes one token.
  bool take_token(std::uint64_t now_ms) noexcept {
    const std::uint64_t cap = static_cast<std::uint64_t>(limit_burst_) * 1000;
    if (refilled_ms_ == kNeverRefilled || now_ms < refilled_ms_) {
      refilled_ms_ = now_ms;
    } else if (now_ms > refilled_ms_) {
      const std::uint64_t add = (now_ms - refilled_ms_) * limit_rate_;
      tokens_milli_ = std::min(cap, tokens_milli_ + add);
      refilled_ms_ = now_ms;
    }
    if (tokens_milli_ < 1000) return false;
    tokens_milli_ -= 1000;
    return true;
  }

  static constexpr std::uint64_t kNeverRefilled = ~std::uint64_t{0};

  FlowTable<V4> v4_;
  FlowTable<V6> v6_;
  tcp::Config cfg_;
  EvictionPolicy policy_;
  bool fast_path_ = true;
  tcp::detail::StateCaps est_caps_;  // for the fast path's choose_cap()
  std::uint32_t limit_rate_ = 0;
  std::uint32_t limit_burst_ = 0;
  std::uint64_t tokens_milli_ = 0;
  std::uint64_t refilled_ms_ = kNeverRefilled;
  TrackerCounters counters_{};
};

}  // namespace ctlb::flow
