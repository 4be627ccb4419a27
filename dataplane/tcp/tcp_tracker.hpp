#pragma once
// The TCP state machine: a pure function of (connection state, packet view,
// direction, now, config) -> (new state, verdict). It knows nothing of tables,
// clocks or I/O. Its connection state follows Linux nf_conntrack
// (net/netfilter/nf_conntrack_proto_tcp.c) transition for transition, so that
// for the same packets ctlb and the kernel agree on the state and on which
// packets are INVALID (tests/conformance checks that against the kernel).
// On top it infers the RFC 793 state of each endpoint.
#include <algorithm>
#include <cstdint>

#include "dataplane/common/seq.hpp"
#include "dataplane/packet/packet_view.hpp"
#include "dataplane/tcp/tcp_types.hpp"

namespace ctlb::tcp {

// What the caller must do with the flow entry after a packet.
enum class Action : std::uint8_t {
  Store,    // write the state back (it may be unchanged)
  Destroy,  // accepted, then the connection is gone (RST before any reply)
  Reopen,   // the packet opens a new connection on this tuple: re-create and run again
  Drop,     // a new connection the packet could not open: do not store
};

struct Outcome {
  Verdict verdict = Verdict::Accept;
  Reason reason = Reason::Ok;
  CtState old_state = CtState::None;
  CtState new_state = CtState::None;
  Action action = Action::Store;
};

namespace detail {

using packet::tcpflag::kAck;
using packet::tcpflag::kCwr;
using packet::tcpflag::kEce;
using packet::tcpflag::kFin;
using packet::tcpflag::kPsh;
using packet::tcpflag::kRst;
using packet::tcpflag::kSyn;
using packet::tcpflag::kUrg;

inline constexpr std::uint8_t kIV = 10;  // invalid transition
inline constexpr std::uint8_t kIG = 11;  // ignore: we may be out of sync

// nf_conntrack's transition table [dir][index][state], same values.
//                                     NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
inline constexpr std::uint8_t kTransitions[2][6][10] = {
    {
        /* Orig  syn    */ {1, 1, kIG, kIG, kIG, kIG, kIG, 1, 1, 9},
        /* Orig  synack */ {kIV, kIV, 2, kIV, kIV, kIV, kIV, kIV, kIV, 2},
        /* Orig  fin    */ {kIV, kIV, 4, 4, 6, 6, 6, 7, 8, kIV},
        /* Orig  ack    */ {3, kIV, 3, 3, 5, 5, 7, 7, 8, kIV},
        /* Orig  rst    */ {kIV, 8, 8, 8, 8, 8, 8, 8, 8, 8},
        /* Orig  none   */ {kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV},
    },
    {
        /* Reply syn    */ {kIV, 9, kIV, kIV, kIV, kIV, kIV, 1, kIV, 9},
        /* Reply synack */ {kIV, 2, kIG, kIG, kIG, kIG, kIG, kIG, kIG, 2},
        /* Reply fin    */ {kIV, kIV, 4, 4, 6, 6, 6, 7, 8, kIV},
        /* Reply ack    */ {kIV, kIG, 2, 3, 5, 5, 7, 7, 8, kIG},
        /* Reply rst    */ {kIV, 8, 8, 8, 8, 8, 8, 8, 8, 8},
        /* Reply none   */ {kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV},
    },
};

inline Index index_of(std::uint8_t flags) noexcept {
  if (flags & kRst) return Index::Rst;
  if (flags & kSyn) return (flags & kAck) ? Index::SynAck : Index::Syn;
  if (flags & kFin) return Index::Fin;
  if (flags & kAck) return Index::Ack;
  return Index::None;
}

inline std::uint32_t segment_end(const packet::PacketView& p) noexcept {
  return p.seq + p.payload_len + ((p.flags & kSyn) ? 1u : 0u) + ((p.flags & kFin) ? 1u : 0u);
}

inline std::uint32_t max_ack_window(std::uint32_t maxwin) noexcept { return maxwin > 66000 ? maxwin : 66000; }

// Window scale and SACK-permitted of a SYN or SYN-ACK. Like the kernel, a
// header without options leaves the direction's flags alone.
inline void apply_options(const packet::PacketView& p, Track& t, int d) noexcept {
  if (p.header_len <= 20) return;
  t.scale[d] = 0;
  t.flags[d] &= dirflag::kBeLiberal;
  if (p.options.sack_permitted) t.flags[d] |= dirflag::kSackPerm;
  if (p.options.has_wscale) {
    t.scale[d] = std::min<std::uint8_t>(p.options.wscale, 14);
    t.flags[d] |= dirflag::kWindowScale;
  }
}

inline void init_sender(const packet::PacketView& p, Track& t, int d, std::uint32_t end, std::uint32_t win) noexcept {
  const int od = 1 - d;
  t.end[d] = t.maxend[d] = end;
  t.maxwin[d] = win == 0 ? 1 : win;
  apply_options(p, t, d);
  // RFC 1323: scaling is on only if both sides offered it.
  if (!((t.flags[d] & dirflag::kWindowScale) && (t.flags[od] & dirflag::kWindowScale))) {
    t.scale[d] = 0;
    t.scale[od] = 0;
  }
}

// nf_conntrack's four bounds for an in-window segment: seq at most the
// receiver's right edge (I), end not below what the receiver already took in
// (II), (s)ack neither beyond what was sent (III) nor too far behind (IV).
[[gnu::always_inline]] inline bool passes_window(const Track& t, int d, std::uint32_t seq, std::uint32_t end,
                                                 std::uint32_t sack) noexcept {
  const int od = 1 - d;
  const bool in_recv_win = t.maxwin[od] == 0 || seq_after(end, t.end[d] - t.maxwin[od] - 1);
  return seq_before(seq, t.maxend[d] + 1) && in_recv_win && seq_before(sack, t.end[od] + 1) &&
         seq_after(sack, t.end[od] - max_ack_window(t.maxwin[d]) - 1);
}

// What an in-window segment teaches about both directions (`win` scaled).
[[gnu::always_inline]] inline void advance_window(Track& t, int d, std::uint32_t end, std::uint32_t ack,
                                                  std::uint32_t sack, std::uint32_t win, bool has_ack) noexcept {
  const int od = 1 - d;
  const std::uint32_t swin = win + (sack - ack);
  if (t.maxwin[d] < swin) t.maxwin[d] = swin;
  if (seq_after(end, t.end[d])) {
    t.end[d] = end;
    t.flags[d] |= dirflag::kDataUnacked;
  }
  if (has_ack) {
    if (!(t.flags[d] & dirflag::kMaxAckSet)) {
      t.maxack[d] = ack;
      t.flags[d] |= dirflag::kMaxAckSet;
    } else if (seq_after(ack, t.maxack[d])) {
      t.maxack[d] = ack;
    }
  }
  if (t.maxwin[od] != 0 && seq_after(end, t.maxend[d])) t.maxwin[od] += end - t.maxend[d];
  if (seq_after(sack + win, t.maxend[od] - 1)) {
    t.maxend[od] = sack + win;
    if (win == 0) ++t.maxend[od];
  }
  if (ack == t.end[od]) t.flags[od] &= ~dirflag::kDataUnacked;
}

struct WindowCheck {
  enum Kind : std::uint8_t { Accept, Ignore, Invalid } kind;
  Reason reason;
};

inline bool is_established(const State& s) noexcept {
  return s.ct() == CtState::Established && s.st.assured;
}

inline bool can_early_drop(CtState s) noexcept {
  return s == CtState::FinWait || s == CtState::LastAck || s == CtState::TimeWait ||
         s == CtState::Close || s == CtState::CloseWait;
}

// nf_conntrack's tcp_in_window(): sequence and window checks of one segment,
// updating both directions' tracking when it passes.
inline WindowCheck in_window(State& s, const packet::PacketView& p, Dir dir, Index index,
                             const Config& cfg) noexcept {
  Track& t = s.track;
  const int d = idx(dir);
  const int od = 1 - d;
  const bool syn = p.flags & kSyn;
  const bool has_ack = p.flags & kAck;
  const bool rst = p.flags & kRst;
  std::uint32_t seq = p.seq;
  std::uint32_t ack = p.ack;
  std::uint32_t sack = ack;
  std::uint32_t end = segment_end(p);
  std::uint32_t win = p.window;
  const std::uint16_t win_raw = p.window;

  if (t.flags[od] & dirflag::kSackPerm) {
    for (int i = 0; i < p.options.sack_blocks; ++i)
      if (seq_after(p.options.sack_right[i], sack)) sack = p.options.sack_right[i];
  }

  if (t.maxwin[d] == 0) {
    if (syn) {
      // SYN-ACK answering a SYN, or the reply's SYN in a simultaneous open.
      init_sender(p, t, d, end, win);
      if (!has_ack) return {WindowCheck::Accept, Reason::Ok};
    } else {
      // Mid-stream: the history is lost, take what this packet tells.
      t.end[d] = end;
      const std::uint32_t swin = win << t.scale[d];
      t.maxwin[d] = swin == 0 ? 1 : swin;
      t.maxend[d] = end + t.maxwin[d];
      if (t.maxwin[od] == 0) {
        t.end[od] = t.maxend[od] = sack;
      } else if (sack == t.end[od] + 1) {
        ++t.end[od];  // likely the answer to a keep-alive
      }
    }
  } else if (syn && seq_after(end, t.end[d]) &&
             (s.ct() == CtState::SynSent || s.ct() == CtState::SynRecv)) {
    // RFC 793: a re-initialised TCP may reuse the tuple with higher sequence numbers.
    init_sender(p, t, d, end, win);
    if (dir == Dir::Reply && !has_ack) return {WindowCheck::Accept, Reason::Ok};
  }

  if (!has_ack) {
    ack = sack = t.end[od];
  } else if (rst && ack == 0) {
    ack = sack = t.end[od];  // broken stacks send RST|ACK with a zero ack
  }

  // Segments without data are checked by their ACK only; RSTs always by their
  // sequence number, except the seq 0 RST answering a SYN.
  if (seq == end && (!rst || (seq == 0 && s.ct() == CtState::SynSent))) seq = end = t.end[d];

  if (passes_window(t, d, seq, end, sack)) {
    if (!syn) win <<= t.scale[d];
    advance_window(t, d, end, ack, sack, win, has_ack);

    if (index == Index::Ack) {
      if (s.st.last_dir == static_cast<std::uint32_t>(d) && s.last_seq == seq && s.last_ack == ack &&
          s.last_end == end && s.last_win == win_raw) {
        if (s.st.retrans < 3) ++s.st.retrans;
      } else {
        s.st.last_dir = static_cast<std::uint32_t>(d);
        s.last_seq = seq;
        s.last_ack = ack;
        s.last_end = end;
        s.last_win = win_raw;
        s.st.retrans = 0;
      }
    }
    return {WindowCheck::Accept, Reason::Ok};
  }

  // Out of window. Liberal tracking passes it on (after the side effects).
  const bool liberal = (t.flags[d] & dirflag::kBeLiberal) || cfg.liberal;
  auto fail = [liberal](WindowCheck::Kind kind, Reason why) -> WindowCheck {
    if (liberal) return {WindowCheck::Accept, Reason::Liberal};
    return {kind, why};
  };
  if (!seq_before(seq, t.maxend[d] + 1)) {
    const std::uint32_t overshot = end - t.maxend[d] + 1;
    const bool ack_ok = seq_after(sack, t.end[od] - max_ack_window(t.maxwin[d]) - 1);
    const bool in_recv_win = t.maxwin[od] != 0 && seq_after(end, t.end[d] - t.maxwin[od] - 1);
    if (in_recv_win && ack_ok && overshot <= t.maxwin[od] && seq_before(sack, t.end[od] + 1)) {
      // Some stacks send a little more than the window allows; record the
      // end so that the peer's ACK of it is not "over the upper bound".
      t.end[d] = end;
      t.flags[d] |= dirflag::kDataUnacked;
      return fail(WindowCheck::Ignore, Reason::IgnoredOvershoot);
    }
    return fail(WindowCheck::Invalid, Reason::SeqOverWindow);
  }
  if (!seq_before(sack, t.end[od] + 1)) return fail(WindowCheck::Invalid, Reason::AckOverSent);
  return fail(WindowCheck::Ignore, Reason::IgnoredOldData);
}

// RFC 793 endpoint states, inferred assuming every packet that passes the box
// reaches its receiver. Called for packets that passed the window check.
inline void update_endpoints(State& s, const packet::PacketView& p, Dir dir, CtState new_state) noexcept {
  const int d = idx(dir);
  const int od = 1 - d;
  EpState sender = dir == Dir::Orig ? s.initiator() : s.responder();
  EpState receiver = dir == Dir::Orig ? s.responder() : s.initiator();
  const bool syn = p.flags & kSyn;
  const bool ack = p.flags & kAck;
  const bool fin = p.flags & kFin;
  const bool rst = p.flags & kRst;
  Track& t = s.track;

  if (rst) {
    if (new_state == CtState::Close) sender = receiver = EpState::Closed;
  } else if (syn && !ack) {
    if (receiver == EpState::SynSent) {
      // Crossing SYNs: simultaneous open, each side will get the other's SYN.
      sender = receiver = EpState::SynReceived;
    } else if (sender != EpState::SynSent && sender != EpState::SynReceived) {
      sender = EpState::SynSent;
      if (receiver != EpState::SynReceived) receiver = EpState::Listen;
    }
  } else if (syn) {  // SYN-ACK
    if (sender != EpState::Established) sender = EpState::SynReceived;
    if (receiver == EpState::SynSent || receiver == EpState::SynReceived) receiver = EpState::Established;
  } else {
    const bool acks_receiver_fin =
        ack && (t.flags[od] & dirflag::kFinSeen) && !seq_before(p.ack, t.end[od]);
    if (ack) {
      if (receiver == EpState::SynReceived || receiver == EpState::SynSent) {
        receiver = EpState::Established;
      } else if (acks_receiver_fin) {
        if (receiver == EpState::FinWait1) receiver = EpState::FinWait2;
        else if (receiver == EpState::Closing) receiver = EpState::TimeWait;
        else if (receiver == EpState::LastAck) receiver = EpState::Closed;
      }
      if (sender == EpState::SynSent || sender == EpState::SynReceived) sender = EpState::Established;
    }
    if (fin) {
      t.flags[d] |= dirflag::kFinSeen;
      // A FIN that does not acknowledge the peer's FIN crossed it: the sender
      // had not received it yet (simultaneous close), it will be CLOSING.
      const bool peer_fin_unacked = (t.flags[od] & dirflag::kFinSeen) && !acks_receiver_fin;
      if (sender == EpState::CloseWait) sender = peer_fin_unacked ? EpState::Closing : EpState::LastAck;
      else if (sender == EpState::Established || sender == EpState::SynReceived) sender = EpState::FinWait1;
      if (receiver == EpState::Established || receiver == EpState::SynReceived) receiver = EpState::CloseWait;
      else if (receiver == EpState::FinWait1) receiver = EpState::Closing;
      else if (receiver == EpState::FinWait2) receiver = EpState::TimeWait;
    }
  }
  if (dir == Dir::Orig) {
    s.st.initiator = static_cast<std::uint32_t>(sender);
    s.st.responder = static_cast<std::uint32_t>(receiver);
  } else {
    s.st.responder = static_cast<std::uint32_t>(sender);
    s.st.initiator = static_cast<std::uint32_t>(receiver);
  }
}

inline void set_timeout(Status& st, CtState state) noexcept {
  st.ct_state = static_cast<std::uint32_t>(state);
  st.timeout_class = 0;
}
inline void cap_timeout(Status& st, TimeoutClass c) noexcept {
  st.timeout_class = 1;
  st.timeout_cap = c == TimeoutClass::Retrans ? 0 : 1;
}
inline void cap_timeout_close(Status& st) noexcept {
  st.timeout_class = 1;
  st.timeout_cap = 2;
}

// What of the configuration choose_cap() needs for a state: a cap applies
// only where it is shorter than the state's own timeout. Worked out per
// packet by choose_timeout(), once by the tracker's ESTABLISHED fast path.
struct StateCaps {
  std::uint8_t max_retrans;  // cfg.max_retrans within 1..3
  bool retrans;              // the state's timeout is longer than Retrans
  bool unack;                // ... than Unack
};
inline StateCaps state_caps(CtState state, const Config& cfg) noexcept {
  const Millis state_timeout = cfg.timeouts.of(state);
  return {std::clamp<std::uint8_t>(cfg.max_retrans, 1, 3), state_timeout > cfg.timeouts.of(TimeoutClass::Retrans),
          state_timeout > cfg.timeouts.of(TimeoutClass::Unack)};
}

// nf_conntrack's choice of timeout after an in-window packet: the
// retransmission cap, the CLOSE timeout after a RST, the unacknowledged-data
// cap, the zero-window cap, else (None) the state's own. `retrans` and
// `last_win` are the values after the packet.
enum class Cap : std::uint8_t { None, Retrans, Close, Unack };
inline Cap choose_cap(const StateCaps& caps, Index index, bool data_unacked, std::uint32_t retrans,
                      std::uint16_t last_win) noexcept {
  if (retrans >= caps.max_retrans && caps.retrans) return Cap::Retrans;
  if (index == Index::Rst) return Cap::Close;
  if (data_unacked && caps.unack) return Cap::Unack;
  if (last_win == 0 && caps.retrans) return Cap::Retrans;
  return Cap::None;
}

// That choice recorded in `st`, whose state becomes `state`.
inline void choose_timeout(Status& st, CtState state, Index index, bool data_unacked, std::uint32_t retrans,
                           std::uint16_t last_win, const Config& cfg) noexcept {
  set_timeout(st, state);
  switch (choose_cap(state_caps(state, cfg), index, data_unacked, retrans, last_win)) {
    case Cap::Retrans: cap_timeout(st, TimeoutClass::Retrans); break;
    case Cap::Close: cap_timeout_close(st); break;
    case Cap::Unack: cap_timeout(st, TimeoutClass::Unack); break;
    case Cap::None: break;
  }
}

}  // namespace detail

// nf_conntrack's tcp_error(): PSH, ECE and CWR aside, only these combinations are valid.
inline bool valid_flags(std::uint8_t flags) noexcept {
  using namespace packet::tcpflag;
  switch (flags & ~(kEce | kCwr | kPsh)) {
    case kSyn:
    case kSyn | kUrg:
    case kSyn | kAck:
    case kRst:
    case kRst | kAck:
    case kFin | kAck:
    case kFin | kAck | kUrg:
    case kAck:
    case kAck | kUrg:
      return true;
    default:
      return false;
  }
}

// nf_conntrack's tcp_new(): may this packet open a connection? On success `s`
// holds a fresh connection whose Orig side sent `p`; then run track().
inline Reason open_connection(State& s, const packet::PacketView& p, bool initiator_is_lo, Millis now,
                              const Config& cfg) noexcept {
  const Index index = detail::index_of(p.flags);
  const std::uint8_t next = detail::kTransitions[0][static_cast<int>(index)][0];
  if (next >= detail::kIV) return Reason::NotNew;
  const bool is_syn = next == static_cast<std::uint8_t>(CtState::SynSent);
  if (!is_syn && !cfg.loose) return Reason::NoPickup;
  s = State{};
  s.last_seen = now;
  Track& t = s.track;
  t.end[0] = detail::segment_end(p);
  t.maxwin[0] = p.window == 0 ? 1 : p.window;
  if (is_syn) {
    t.maxend[0] = t.end[0];
    detail::apply_options(p, t, 0);
  } else {
    t.maxend[0] = t.end[0] + t.maxwin[0];
    // Mid-stream: assume SACK and track liberally, the window scale is unknown.
    t.flags[0] = t.flags[1] = dirflag::kSackPerm | dirflag::kBeLiberal;
    s.st.initiator = static_cast<std::uint32_t>(EpState::Established);
    s.st.responder = static_cast<std::uint32_t>(EpState::Established);
  }
  s.st.initiator_is_lo = initiator_is_lo ? 1 : 0;
  s.st.last_index = static_cast<std::uint32_t>(Index::None);
  return Reason::Ok;
}

// nf_conntrack's tcp_packet() for a packet of an existing (or just opened)
// connection. Flags must have passed valid_flags().
inline Outcome track(State& s, const packet::PacketView& p, Dir dir, Millis now, const Config& cfg) noexcept {
  using namespace detail;
  Status& st = s.st;
  Track& t = s.track;
  const int d = idx(dir);
  const int od = 1 - d;
  const Index index = index_of(p.flags);
  CtState old_state = s.ct();
  std::uint8_t next = kTransitions[d][static_cast<int>(index)][static_cast<int>(old_state)];
  Outcome out;
  out.old_state = old_state;
  out.new_state = old_state;

  auto pass_unchanged = [&](Reason why) {
    out.reason = why;
    if (dir == Dir::Reply) st.seen_reply = 1;
    return out;
  };
  auto invalid = [&](Reason why) {
    out.verdict = Verdict::Invalid;
    out.reason = why;
    return out;
  };

  bool skip_window_check = false;
  int restart_endpoints = -1;  // the direction whose SYN we ignored, when this SYN-ACK answers it
  switch (next) {
    case static_cast<std::uint8_t>(CtState::SynSent):
      if (old_state < CtState::TimeWait) break;
      // A SYN on a closed tuple: reopen if the old connection really ended.
      if (((t.flags[d] | t.flags[od]) & dirflag::kCloseInit) ||
          (st.last_dir == static_cast<std::uint32_t>(d) && st.last_index == static_cast<std::uint32_t>(Index::Rst))) {
        out.reason = Reason::Reopened;
        out.new_state = CtState::SynSent;
        out.action = Action::Reopen;
        return out;
      }
      [[fallthrough]];
    case kIG: {
      if (index == Index::SynAck && st.last_index == static_cast<std::uint32_t>(Index::Syn) &&
          st.last_dir != static_cast<std::uint32_t>(d) && p.ack == s.last_end) {
        // This SYN-ACK answers a SYN we ignored: both ends agree on a new
        // connection, get in sync from what we noted of that SYN.
        old_state = CtState::SynSent;
        next = static_cast<std::uint8_t>(CtState::SynRecv);
        const int ld = static_cast<int>(st.last_dir);
        t.end[ld] = t.maxend[ld] = s.last_end;
        t.maxwin[ld] = s.last_win == 0 ? 1 : s.last_win;
        t.scale[ld] = static_cast<std::uint8_t>(st.last_wscale);
        st.last_flags &= ~lastflag::kExpChallengeAck;
        t.flags[ld] = static_cast<std::uint8_t>(st.last_flags & (lastflag::kWindowScale | lastflag::kSackPerm));
        t.end[d] = t.maxend[d] = t.maxwin[d] = t.maxack[d] = 0;
        t.scale[d] = t.flags[d] = 0;
        // The endpoints start over as a fresh handshake, once the SYN-ACK
        // has passed the window check (an INVALID one changes no state).
        restart_endpoints = ld;
        break;
      }
      st.last_index = static_cast<std::uint32_t>(index);
      st.last_dir = static_cast<std::uint32_t>(d);
      s.last_seq = p.seq;
      s.last_end = segment_end(p);
      s.last_win = p.window;
      if (index == Index::Syn && dir == Dir::Orig) {
        st.last_flags = 0;
        st.last_wscale = 0;
        if (p.header_len > 20) {
          if (p.options.has_wscale) {
            st.last_flags |= lastflag::kWindowScale;
            st.last_wscale = std::min<std::uint8_t>(p.options.wscale, 14);
          }
          if (p.options.sack_permitted) st.last_flags |= lastflag::kSackPerm;
        }
        // Its answer may be an RFC 5961 challenge ACK, which must not be
        // taken for the ACK of our last FIN.
        if (old_state == CtState::LastAck) st.last_flags |= lastflag::kExpChallengeAck;
      }
      if (old_state == CtState::SynSent && index == Index::Ack && dir == Dir::Reply) s.last_ack = p.ack;
      return pass_unchanged(Reason::IgnoredOutOfSync);
    }
    case kIV:
      return invalid(Reason::BadTransition);
    case static_cast<std::uint8_t>(CtState::TimeWait):
      if (old_state == CtState::LastAck && index == Index::Ack && st.last_dir != static_cast<std::uint32_t>(d) &&
          st.last_index == static_cast<std::uint32_t>(Index::Syn) && (st.last_flags & lastflag::kExpChallengeAck)) {
        st.last_flags &= ~lastflag::kExpChallengeAck;
        return pass_unchanged(Reason::IgnoredChallengeAck);
      }
      break;
    case static_cast<std::uint8_t>(CtState::SynSent2):
      st.last_flags |= lastflag::kSimultaneousOpen;  // the table alone cannot follow it
      break;
    case static_cast<std::uint8_t>(CtState::SynRecv):
      if (dir == Dir::Reply && index == Index::Ack && (st.last_flags & lastflag::kSimultaneousOpen))
        next = static_cast<std::uint8_t>(CtState::Established);
      break;
    case static_cast<std::uint8_t>(CtState::Close): {
      if (index != Index::Rst) break;
      if (can_early_drop(old_state)) {
        skip_window_check = true;  // the tuple may have been reused already
        break;
      }
      if ((t.flags[od] & dirflag::kMaxAckSet) && st.last_index != static_cast<std::uint32_t>(Index::Syn)) {
        const std::uint32_t seq = p.seq;
        if (seq == 0 && !is_established(s)) break;
        if (seq_before(seq, t.maxack[od]) && !cfg.ignore_invalid_rst) return invalid(Reason::RstBeforeAck);
        if (!is_established(s) || seq == t.maxack[od]) break;
        // A RST following our last ACK train exactly is fine.
        if (st.last_index == static_cast<std::uint32_t>(Index::Ack) && st.last_dir == static_cast<std::uint32_t>(d) &&
            seq == s.last_end)
          break;
        // In window but not exact: keep the state, the peer will send a challenge ACK.
        next = static_cast<std::uint8_t>(old_state);
      }
      if (((st.seen_reply && st.last_index == static_cast<std::uint32_t>(Index::Syn)) ||
           (!st.assured && st.last_index == static_cast<std::uint32_t>(Index::Ack))) &&
          p.ack == s.last_end) {
        skip_window_check = true;  // RST answering a SYN or ACK we let through
        break;
      }
      if (old_state == CtState::SynSent && st.last_index == static_cast<std::uint32_t>(Index::Ack) &&
          st.last_dir == static_cast<std::uint32_t>(Dir::Reply) && p.seq == s.last_ack) {
        skip_window_check = true;  // RST answering a challenge ACK
      }
      break;
    }
    default:
      break;
  }

  if (!skip_window_check) {
    const WindowCheck w = in_window(s, p, dir, index, cfg);
    if (w.kind == WindowCheck::Ignore) return pass_unchanged(w.reason);
    if (w.kind == WindowCheck::Invalid) {
      // An out-of-window FIN/RST answering the peer's FIN/RST of an assured
      // connection shortens its timeout: the two sides are out of sync.
      if (st.assured && (index == Index::Rst || index == Index::Fin)) {
        if (st.last_dir != static_cast<std::uint32_t>(d) &&
            (st.last_index == static_cast<std::uint32_t>(Index::Fin) ||
             st.last_index == static_cast<std::uint32_t>(Index::Rst))) {
          const Millis idle = elapsed_ms(now, s.last_seen);
          const Millis total = timeout_of(st, cfg.timeouts);
          const Millis remaining = idle >= total ? 0 : total - idle;
          if (remaining >= 120'000 && remaining > cfg.timeouts.of(TimeoutClass::Unack)) {
            cap_timeout(st, TimeoutClass::Unack);
            s.last_seen = now;
          }
        } else {
          st.last_index = static_cast<std::uint32_t>(index);
          st.last_dir = static_cast<std::uint32_t>(d);
        }
      }
      return invalid(w.reason);
    }
    out.reason = w.reason;
  }

  // In window from here on.
  // The connection was over (both sides had closed, or a RST had ended it):
  // the RST answers a segment that came after (a late retransmission, a
  // reordered one), not a connection cut short. Counted apart so that an
  // operator can tell the two kinds of reset.
  if (index == Index::Rst && (old_state == CtState::TimeWait || old_state == CtState::Close) &&
      out.reason == Reason::Ok)
    out.reason = Reason::RstAfterClose;
  const CtState new_state = static_cast<CtState>(next);
  st.last_index = static_cast<std::uint32_t>(index);
  st.last_dir = static_cast<std::uint32_t>(d);
  if (old_state != new_state && new_state == CtState::FinWait) t.flags[d] |= dirflag::kCloseInit;
  if (restart_endpoints >= 0) {
    const bool orig_sent_syn = restart_endpoints == idx(Dir::Orig);
    st.initiator = static_cast<std::uint32_t>(orig_sent_syn ? EpState::SynSent : EpState::Listen);
    st.responder = static_cast<std::uint32_t>(orig_sent_syn ? EpState::Listen : EpState::SynSent);
  }
  update_endpoints(s, p, dir, new_state);
  out.new_state = new_state;

  const bool data_unacked = ((t.flags[0] | t.flags[1]) & dirflag::kDataUnacked) != 0;
  Status next_st = st;
  choose_timeout(next_st, new_state, index, data_unacked, st.retrans, s.last_win, cfg);

  if (!st.seen_reply) {
    if (p.flags & kRst) {
      // Only a RST came back, or the initiator gave up: nothing was
      // established, forget the connection at once.
      st = next_st;
      out.action = Action::Destroy;
      return out;
    }
    if (index == Index::Syn && old_state == CtState::SynSent) {
      // A retransmitted SYN does not renew the timeout (port reuse could keep
      // the entry alive for ever), but the state is stored.
      st.ct_state = next_st.ct_state;
      if (dir == Dir::Reply) st.seen_reply = 1;
      return out;
    }
    if (new_state == CtState::Established && timeout_of(next_st, cfg.timeouts) > cfg.timeouts.of(TimeoutClass::Unack))
      cap_timeout(next_st, TimeoutClass::Unack);
    // The kernel marks the first reply after this function, as do we.
    if (dir == Dir::Reply) next_st.seen_reply = 1;
  } else if (!st.assured && (old_state == CtState::SynRecv || old_state == CtState::Established) &&
             new_state == CtState::Established) {
    next_st.assured = 1;  // a valid ACK after SYN_RECV, or an answer to a picked-up connection
  }
  st = next_st;
  s.last_seen = now;
  return out;
}

}  // namespace ctlb::tcp
