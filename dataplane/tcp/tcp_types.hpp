#pragma once
// Types of the TCP tracker: the two views of a connection (nf_conntrack's
// connection state and the RFC 793 endpoint states), verdict reasons, timeouts
// and the per-connection tracking state. Plain data: these structs live in
// shared memory and are read by ctlb-control.
#include <array>
#include <bit>
#include <cstdint>
#include <string_view>

#include "dataplane/common/time.hpp"

namespace ctlb::tcp {

// Connection state, with Linux nf_conntrack's names, values and semantics.
#define CTLB_CT_STATES(X)                                        \
  X(None, "NONE")                                                \
  X(SynSent, "SYN_SENT")                                         \
  X(SynRecv, "SYN_RECV")                                         \
  X(Established, "ESTABLISHED")                                  \
  X(FinWait, "FIN_WAIT")                                         \
  X(CloseWait, "CLOSE_WAIT")                                     \
  X(LastAck, "LAST_ACK")                                         \
  X(TimeWait, "TIME_WAIT")                                       \
  X(Close, "CLOSE")                                              \
  X(SynSent2, "SYN_SENT2")

enum class CtState : std::uint8_t {
#define CTLB_X(e, n) e,
  CTLB_CT_STATES(CTLB_X)
#undef CTLB_X
};
inline constexpr std::size_t kCtStateCount = 10;
inline constexpr std::array<std::string_view, kCtStateCount> kCtStateNames = {
#define CTLB_X(e, n) n,
    CTLB_CT_STATES(CTLB_X)
#undef CTLB_X
};
constexpr std::string_view name(CtState s) noexcept { return kCtStateNames[static_cast<std::size_t>(s)]; }

// Endpoint states, RFC 793 names as the seeds use them.
#define CTLB_EP_STATES(X)      \
  X(Closed, "CLOSED")          \
  X(Listen, "LISTEN")          \
  X(SynSent, "SYN_SENT")       \
  X(SynReceived, "SYN_RECEIVED") \
  X(Established, "ESTABLISHED") \
  X(FinWait1, "FIN_WAIT_1")    \
  X(FinWait2, "FIN_WAIT_2")    \
  X(CloseWait, "CLOSE_WAIT")   \
  X(Closing, "CLOSING")        \
  X(LastAck, "LAST_ACK")       \
  X(TimeWait, "TIME_WAIT")

enum class EpState : std::uint8_t {
#define CTLB_X(e, n) e,
  CTLB_EP_STATES(CTLB_X)
#undef CTLB_X
};
inline constexpr std::size_t kEpStateCount = 11;
inline constexpr std::array<std::string_view, kEpStateCount> kEpStateNames = {
#define CTLB_X(e, n) n,
    CTLB_EP_STATES(CTLB_X)
#undef CTLB_X
};
constexpr std::string_view name(EpState s) noexcept { return kEpStateNames[static_cast<std::size_t>(s)]; }

// Direction of a packet relative to the connection: Orig is the initiator's.
enum class Dir : std::uint8_t { Orig = 0, Reply = 1 };
constexpr Dir other(Dir d) noexcept { return d == Dir::Orig ? Dir::Reply : Dir::Orig; }
constexpr int idx(Dir d) noexcept { return static_cast<int>(d); }

// Accept: forward. Invalid: forwarded or dropped by the invalid-packet
// policy. Drop: dropped whatever that policy (a new connection over the
// worker's new-flow limit).
enum class Verdict : std::uint8_t { Accept, Invalid, Drop };

// Why a packet got its verdict. Accept reasons first.
// X(enumerator, name, verdict-is-invalid, description)
#define CTLB_TCP_REASONS(X)                                                                        \
  X(Ok, "ok", false, "in window, state updated")                                                   \
  X(Reopened, "reopened", false, "SYN reopened a closed or TIME_WAIT tuple as a new connection")   \
  X(IgnoredOutOfSync, "ignored_out_of_sync", false,                                                \
    "packet may belong to a connection we are out of sync with: passed, state unchanged")          \
  X(IgnoredChallengeAck, "ignored_challenge_ack", false, "RFC 5961 challenge ACK: passed, state unchanged") \
  X(IgnoredOldData, "ignored_old_data", false,                                                     \
    "retransmission of already acknowledged data or overly delayed ACK: passed, state unchanged")  \
  X(IgnoredOvershoot, "ignored_overshoot", false,                                                  \
    "sender exceeded the receive window slightly: passed, end recorded, state unchanged")          \
  X(Liberal, "liberal", false, "out of window but accepted: liberal tracking")                    \
  X(BadFlags, "bad_flags", true, "invalid TCP flag combination")                                   \
  X(BadChecksum, "bad_checksum", true, "TCP checksum does not verify")                            \
  X(NotNew, "not_new", true, "packet cannot open a connection (FIN, RST, SYN-ACK without SYN)")    \
  X(NoPickup, "no_pickup", true, "mid-stream packet without a connection and pick-up disabled")   \
  X(BadTransition, "bad_transition", true, "flags not allowed in the connection's state")         \
  X(RstBeforeAck, "rst_before_ack", true, "RST sequence number below the highest acknowledged")  \
  X(SeqOverWindow, "seq_over_window", true, "sequence number over the receiver's window")         \
  X(AckOverSent, "ack_over_sent", true, "acknowledges data never sent")                            \
  X(NoEntry, "untracked_table_full", false, "no table room: passed untracked")                     \
  X(RateLimited, "new_flow_rate_limited", false, "would open a connection over the worker's new-flow limit: dropped") \
  X(RstAfterClose, "rst_after_close", false,                                                       \
    "RST on a connection already over (TIME_WAIT, or CLOSE after a RST): an answer to a stray segment")

enum class Reason : std::uint8_t {
#define CTLB_X(e, n, inv, d) e,
  CTLB_TCP_REASONS(CTLB_X)
#undef CTLB_X
};
inline constexpr std::size_t kReasonCount = 0
#define CTLB_X(e, n, inv, d) +1
    CTLB_TCP_REASONS(CTLB_X)
#undef CTLB_X
    ;
inline constexpr std::array<std::string_view, kReasonCount> kReasonNames = {
#define CTLB_X(e, n, inv, d) n,
    CTLB_TCP_REASONS(CTLB_X)
#undef CTLB_X
};
inline constexpr std::array<std::string_view, kReasonCount> kReasonDescriptions = {
#define CTLB_X(e, n, inv, d) d,
    CTLB_TCP_REASONS(CTLB_X)
#undef CTLB_X
};
constexpr std::string_view name(Reason r) noexcept { return kReasonNames[static_cast<std::size_t>(r)]; }

// Timeout classes: one per connection state, plus nf_conntrack's two caps.
enum class TimeoutClass : std::uint8_t {
  // 0..9 are the CtState values.
  Retrans = 10,  // too many retransmissions or a zero window
  Unack = 11,    // data not yet acknowledged, or a picked-up connection
};
inline constexpr std::size_t kTimeoutClassCount = 12;

struct Timeouts {
  std::array<Millis, kTimeoutClassCount> ms;

  Millis of(CtState s) const noexcept { return ms[static_cast<std::size_t>(s)]; }
  Millis of(TimeoutClass c) const noexcept { return ms[static_cast<std::size_t>(c)]; }
};

inline constexpr std::uint32_t kDefaultMslSeconds = 120;

// nf_conntrack's defaults, except TIME_WAIT = 2 x MSL = 240 s (the seeds).
constexpr Timeouts default_timeouts(std::uint32_t msl_seconds = kDefaultMslSeconds) noexcept {
  Timeouts t{};
  auto set = [&t](std::size_t i, std::uint32_t seconds) { t.ms[i] = seconds * 1000u; };
  set(static_cast<std::size_t>(CtState::None), 0);
  set(static_cast<std::size_t>(CtState::SynSent), 120);
  set(static_cast<std::size_t>(CtState::SynRecv), 60);
  set(static_cast<std::size_t>(CtState::Established), 5 * 24 * 3600);
  set(static_cast<std::size_t>(CtState::FinWait), 120);
  set(static_cast<std::size_t>(CtState::CloseWait), 60);
  set(static_cast<std::size_t>(CtState::LastAck), 30);
  set(static_cast<std::size_t>(CtState::TimeWait), 2 * msl_seconds);
  set(static_cast<std::size_t>(CtState::Close), 10);
  set(static_cast<std::size_t>(CtState::SynSent2), 120);
  set(static_cast<std::size_t>(TimeoutClass::Retrans), 300);
  set(static_cast<std::size_t>(TimeoutClass::Unack), 300);
  return t;
}

struct Config {
  Timeouts timeouts = default_timeouts();
  bool liberal = false;           // nf_conntrack_tcp_be_liberal: only RSTs are window-checked
  bool loose = true;              // nf_conntrack_tcp_loose: pick up connections mid-stream
  bool ignore_invalid_rst = false;  // nf_conntrack_tcp_ignore_invalid_rst
  std::uint8_t max_retrans = 3;   // nf_conntrack_tcp_max_retrans
};

// Per-direction window tracking flags (nf_conntrack's values where shared).
namespace dirflag {
inline constexpr std::uint8_t kWindowScale = 0x01;
inline constexpr std::uint8_t kSackPerm = 0x02;
inline constexpr std::uint8_t kCloseInit = 0x04;   // this side closed first
inline constexpr std::uint8_t kBeLiberal = 0x08;
inline constexpr std::uint8_t kDataUnacked = 0x10;
inline constexpr std::uint8_t kMaxAckSet = 0x20;
inline constexpr std::uint8_t kFinSeen = 0x40;     // ours: this side sent a FIN (endpoint states)
}  // namespace dirflag

// Flags remembered from the last ignored packet (nf_conntrack's last_flags).
namespace lastflag {
inline constexpr std::uint8_t kWindowScale = 0x01;
inline constexpr std::uint8_t kSackPerm = 0x02;
inline constexpr std::uint8_t kExpChallengeAck = 0x04;
inline constexpr std::uint8_t kSimultaneousOpen = 0x08;
}  // namespace lastflag

// nf_conntrack's packet classes, rows of the transition table.
enum class Index : std::uint8_t { Syn = 0, SynAck = 1, Fin = 2, Ack = 3, Rst = 4, None = 5 };

// Window tracking of both directions, laid out as arrays so that the struct
// packs to 36 bytes (it is most of a flow entry's cache line).
struct Track {
  std::uint32_t end[2];     // highest seq + len sent
  std::uint32_t maxend[2];  // highest ack + window seen from the peer
  std::uint32_t maxwin[2];  // largest window advertised
  std::uint32_t maxack[2];  // highest ack sent
  std::uint8_t scale[2];
  std::uint8_t flags[2];    // dirflag::
};
static_assert(sizeof(Track) == 36);

// Everything else of a connection in 32 bits. ct_state None marks a free entry.
struct Status {
  std::uint32_t ct_state : 4;       // CtState
  std::uint32_t initiator : 4;      // EpState of the Orig side
  std::uint32_t responder : 4;      // EpState of the Reply side
  std::uint32_t initiator_is_lo : 1;  // Orig side is the key's lower endpoint
  std::uint32_t seen_reply : 1;
  std::uint32_t assured : 1;
  std::uint32_t timeout_class : 1;  // 0: the state's own; 1: see timeout_cap
  std::uint32_t timeout_cap : 2;    // 0 Retrans, 1 Unack, 2 Close
  std::uint32_t last_index : 3;     // Index of the last packet that passed
  std::uint32_t last_dir : 1;
  std::uint32_t last_flags : 4;     // lastflag::
  std::uint32_t last_wscale : 4;
  std::uint32_t retrans : 2;        // saturating count of identical retransmissions
};
static_assert(sizeof(Status) == 4);

// Status as one word, for the fast path's masked compares and updates (each
// bitfield access on its own is a load, shift and mask).
inline std::uint32_t status_word(Status s) noexcept { return std::bit_cast<std::uint32_t>(s); }
inline Status status_of_word(std::uint32_t w) noexcept { return std::bit_cast<Status>(w); }

// Where each field of Status lies in its word: the x86-64 ABI (gcc and
// clang) allocates bitfields from the least significant bit in declaration
// order. Checked against the bitfields at compile time where the compiler can
// (gcc; clang 14 cannot bit_cast bitfields in a constant expression) and by
// the unit test StatusWord.FieldsWhereTheBitfieldsAre everywhere.
namespace status_bits {
struct Field {
  int shift;
  int width;
  constexpr std::uint32_t mask() const noexcept { return ((1u << width) - 1u) << shift; }
  constexpr std::uint32_t value(std::uint32_t v) const noexcept { return (v << shift) & mask(); }
};
inline constexpr Field kCtState{0, 4};
inline constexpr Field kInitiator{4, 4};
inline constexpr Field kResponder{8, 4};
inline constexpr Field kInitiatorIsLo{12, 1};
inline constexpr Field kSeenReply{13, 1};
inline constexpr Field kAssured{14, 1};
inline constexpr Field kTimeoutClass{15, 1};
inline constexpr Field kTimeoutCap{16, 2};
inline constexpr Field kLastIndex{18, 3};
inline constexpr Field kLastDir{21, 1};
inline constexpr Field kLastFlags{22, 4};
inline constexpr Field kLastWscale{26, 4};
inline constexpr Field kRetrans{30, 2};
}  // namespace status_bits

#if defined(__GNUC__) && !defined(__clang__)
static_assert(std::bit_cast<std::uint32_t>(Status{.ct_state = 15}) == status_bits::kCtState.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.initiator = 15}) == status_bits::kInitiator.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.responder = 15}) == status_bits::kResponder.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.initiator_is_lo = 1}) == status_bits::kInitiatorIsLo.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.seen_reply = 1}) == status_bits::kSeenReply.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.assured = 1}) == status_bits::kAssured.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.timeout_class = 1}) == status_bits::kTimeoutClass.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.timeout_cap = 3}) == status_bits::kTimeoutCap.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.last_index = 7}) == status_bits::kLastIndex.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.last_dir = 1}) == status_bits::kLastDir.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.last_flags = 15}) == status_bits::kLastFlags.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.last_wscale = 15}) == status_bits::kLastWscale.mask());
static_assert(std::bit_cast<std::uint32_t>(Status{.retrans = 3}) == status_bits::kRetrans.mask());
#endif

// The working copy of one connection's TCP state. Flow entries store it split
// into a hot and a cold part; the state machine sees it whole.
struct State {
  Millis last_seen;  // when the timeout was last renewed
  Status st;
  std::uint32_t last_end;
  std::uint32_t last_seq;
  std::uint32_t last_ack;
  std::uint16_t last_win;
  Track track;

  CtState ct() const noexcept { return static_cast<CtState>(st.ct_state); }
  EpState initiator() const noexcept { return static_cast<EpState>(st.initiator); }
  EpState responder() const noexcept { return static_cast<EpState>(st.responder); }
};

// The timeout in force for a connection, from its stored class.
inline Millis timeout_of(const Status& st, const Timeouts& t) noexcept {
  if (st.timeout_class == 0) return t.ms[st.ct_state];
  switch (st.timeout_cap) {
    case 0: return t.of(TimeoutClass::Retrans);
    case 1: return t.of(TimeoutClass::Unack);
    default: return t.of(CtState::Close);
  }
}

}  // namespace ctlb::tcp
