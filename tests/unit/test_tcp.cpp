// The TCP state machine through flow::Tracker, with PacketViews filled by
// hand. Expectations are Linux nf_conntrack's (net/netfilter/
// nf_conntrack_proto_tcp.c) for the connection state and verdicts, and RFC
// 793's for the endpoint states.
#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <memory>
#include <string>

#include "dataplane/flow/tracker.hpp"
#include "table_util.hpp"

namespace {

using namespace ctlb;
using flow::Clock;
using flow::TrackResult;
using packet::PacketView;
using tcp::CtState;
using tcp::EpState;
using tcp::Reason;
using tcp::Verdict;
namespace tf = packet::tcpflag;

constexpr std::uint8_t S = tf::kSyn, A = tf::kAck, F = tf::kFin, R = tf::kRst, P = tf::kPsh;
constexpr std::uint8_t SA = S | A, FA = F | A, RA = R | A, PA = P | A;

constexpr std::uint32_t kDay = 24 * 3600 * 1000u;

struct Options {
  int wscale = -1;  // -1: no window scale option
  bool sack_perm = false;
  std::uint16_t mss = 0;
};

// A connection between a client and a server through one Tracker.
class Conn {
 public:
  explicit Conn(const tcp::Config& cfg = tcp::Config{}, bool client_is_lo = true, bool v6 = false)
      : t4_(256), t6_(256), tracker_(t4_.table, t6_.table, cfg), v6_(v6) {
    client_addr_ = client_is_lo ? 1 : 9;
    server_addr_ = 2;
  }

  std::uint64_t now_ms = 1'000'000;

  PacketView seg(bool from_client, std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, std::uint32_t len = 0,
                 std::uint16_t win = 65535, const Options& o = {}) const {
    PacketView v;
    v.family = v6_ ? packet::IpFamily::V6 : packet::IpFamily::V4;
    std::uint8_t c[16] = {}, s[16] = {};
    if (v6_) {
      c[0] = s[0] = 0x20;
      c[15] = client_addr_;
      s[15] = server_addr_;
    } else {
      c[0] = s[0] = 10;
      c[3] = client_addr_;
      s[3] = server_addr_;
    }
    std::memcpy(from_client ? v.src : v.dst, c, 16);
    std::memcpy(from_client ? v.dst : v.src, s, 16);
    v.sport = from_client ? 40000 : 80;
    v.dport = from_client ? 80 : 40000;
    v.l4_proto = 6;
    v.seq = seq;
    v.ack = ack;
    v.window = win;
    v.flags = flags;
    v.payload_len = len;
    v.header_len = 20;
    if (o.wscale >= 0) {
      v.options.has_wscale = true;
      v.options.wscale = static_cast<std::uint8_t>(o.wscale);
      v.header_len += 4;
    }
    if (o.mss) {
      v.options.has_mss = true;
      v.options.mss = o.mss;
      v.header_len += 4;
    }
    if (o.sack_perm) {
      v.options.sack_permitted = true;
      v.header_len += 4;
    }
    return v;
  }

  TrackResult c(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, std::uint32_t len = 0,
                std::uint16_t win = 65535, const Options& o = {}) {
    return tracker_.track(seg(true, flags, seq, ack, len, win, o), Clock{now_ms});
  }
  TrackResult s(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, std::uint32_t len = 0,
                std::uint16_t win = 65535, const Options& o = {}) {
    return tracker_.track(seg(false, flags, seq, ack, len, win, o), Clock{now_ms});
  }

  flow::Tracker& tracker() { return tracker_; }
  const flow::TrackerCounters& counters() const { return tracker_.counters(); }
  std::uint32_t flows() {
    return tracker_.table_v4().size() + tracker_.table_v6().size();
  }
  const tcp::Status& status(flow::Handle h) {
    return v6_ ? tracker_.table_v6().entry(h).status : tracker_.table_v4().entry(h).status;
  }
  // The timeout in force for the flow, in ms.
  Millis timeout(flow::Handle h) { return tcp::timeout_of(status(h), tracker_.config().timeouts); }

 private:
  ctlb_test::HeapTable<flow::V4> t4_;
  ctlb_test::HeapTable<flow::V6> t6_;
  flow::Tracker tracker_;
  bool v6_;
  std::uint8_t client_addr_, server_addr_;
};

std::string str(CtState s) { return std::string(tcp::name(s)); }
std::string str(EpState s) { return std::string(tcp::name(s)); }
std::string str(Reason r) { return std::string(tcp::name(r)); }

// Checks verdict, conntrack state and both endpoint states of one result.
::testing::AssertionResult Is(const TrackResult& r, Verdict verdict, CtState state, EpState initiator,
                              EpState responder) {
  if (r.verdict == verdict && r.state == state && r.initiator == initiator && r.responder == responder)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got " << (r.verdict == Verdict::Accept ? "accept" : "invalid") << "/" << str(r.reason) << " "
         << str(r.state) << " initiator=" << str(r.initiator) << " responder=" << str(r.responder) << ", expected "
         << (verdict == Verdict::Accept ? "accept" : "invalid") << " " << str(state) << " initiator=" << str(initiator)
         << " responder=" << str(responder);
}

::testing::AssertionResult Accepted(const TrackResult& r, CtState state, EpState initiator, EpState responder) {
  return Is(r, Verdict::Accept, state, initiator, responder);
}

::testing::AssertionResult Invalid(const TrackResult& r, Reason why) {
  if (r.verdict == Verdict::Invalid && r.reason == why) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << (r.verdict == Verdict::Accept ? "accept" : "invalid") << "/"
                                       << str(r.reason) << ", expected invalid/" << str(why);
}

// Client ISN 1000, server ISN 5000.
constexpr std::uint32_t kC = 1000, kS = 5000;

// SYN, SYN-ACK, ACK, checking each step. Returns the handle.
flow::Handle handshake(Conn& k) {
  TrackResult r = k.c(S, kC, 0);
  EXPECT_TRUE(Accepted(r, CtState::SynSent, EpState::SynSent, EpState::Listen));
  EXPECT_EQ(r.reason, Reason::Ok);
  EXPECT_EQ(r.dir, tcp::Dir::Orig);
  EXPECT_NE(r.handle, flow::kNoHandle);
  const flow::Handle h = r.handle;
  r = k.s(SA, kS, kC + 1);
  EXPECT_TRUE(Accepted(r, CtState::SynRecv, EpState::Established, EpState::SynReceived));
  EXPECT_EQ(r.dir, tcp::Dir::Reply);
  EXPECT_EQ(r.handle, h);
  r = k.c(A, kC + 1, kS + 1);
  EXPECT_TRUE(Accepted(r, CtState::Established, EpState::Established, EpState::Established));
  EXPECT_EQ(r.dir, tcp::Dir::Orig);
  return h;
}

// Handshake, 100 bytes client -> server, 200 bytes server -> client, all
// acknowledged. Client next seq kC + 101, server next seq kS + 201.
flow::Handle established(Conn& k) {
  const flow::Handle h = handshake(k);
  EXPECT_TRUE(Accepted(k.c(PA, kC + 1, kS + 1, 100), CtState::Established, EpState::Established,
                       EpState::Established));
  EXPECT_TRUE(Accepted(k.s(PA, kS + 1, kC + 101, 200), CtState::Established, EpState::Established,
                       EpState::Established));
  EXPECT_TRUE(Accepted(k.c(A, kC + 101, kS + 201), CtState::Established, EpState::Established,
                       EpState::Established));
  return h;
}
constexpr std::uint32_t kCn = kC + 101, kSn = kS + 201;

// ---- handshake and close ----------------------------------------------------

class HandshakeAndClose : public ::testing::TestWithParam<bool> {};

TEST_P(HandshakeAndClose, ClientClosesFirst) {
  Conn k(tcp::Config{}, /*client_is_lo=*/GetParam());
  const flow::Handle h = established(k);
  EXPECT_EQ(k.status(h).initiator_is_lo, GetParam() ? 1u : 0u);
  TrackResult r = k.c(FA, kCn, kSn);
  EXPECT_TRUE(Accepted(r, CtState::FinWait, EpState::FinWait1, EpState::CloseWait));
  r = k.s(A, kSn, kCn + 1);
  EXPECT_TRUE(Accepted(r, CtState::CloseWait, EpState::FinWait2, EpState::CloseWait));
  r = k.s(FA, kSn, kCn + 1);
  EXPECT_TRUE(Accepted(r, CtState::LastAck, EpState::TimeWait, EpState::LastAck));
  r = k.c(A, kCn + 1, kSn + 1);
  EXPECT_TRUE(Accepted(r, CtState::TimeWait, EpState::TimeWait, EpState::Closed));
  EXPECT_EQ(r.handle, h);

  const auto& c = k.counters();
  EXPECT_EQ(c.tcp_packets, 10u);
  EXPECT_EQ(c.accepted, 10u);
  EXPECT_EQ(c.invalid, 0u);
  EXPECT_EQ(c.flows_created, 1u);
  EXPECT_EQ(c.reasons[static_cast<int>(Reason::Ok)], 10u);
  for (std::size_t i = 0; i < tcp::kCtStateCount; ++i)
    EXPECT_EQ(c.flows_in_state[i], i == static_cast<std::size_t>(CtState::TimeWait) ? 1 : 0) << i;
}

TEST_P(HandshakeAndClose, ServerClosesFirst) {
  Conn k(tcp::Config{}, GetParam());
  established(k);
  EXPECT_TRUE(Accepted(k.s(FA, kSn, kCn), CtState::FinWait, EpState::CloseWait, EpState::FinWait1));
  EXPECT_TRUE(Accepted(k.c(A, kCn, kSn + 1), CtState::CloseWait, EpState::CloseWait, EpState::FinWait2));
  EXPECT_TRUE(Accepted(k.c(FA, kCn, kSn + 1), CtState::LastAck, EpState::LastAck, EpState::TimeWait));
  EXPECT_TRUE(Accepted(k.s(A, kSn + 1, kCn + 1), CtState::TimeWait, EpState::Closed, EpState::TimeWait));
}

INSTANTIATE_TEST_SUITE_P(ClientLowerOrHigher, HandshakeAndClose, ::testing::Bool());

TEST(TcpClose, FinPiggybackedOnAck) {
  Conn k;
  established(k);
  EXPECT_TRUE(Accepted(k.c(FA, kCn, kSn), CtState::FinWait, EpState::FinWait1, EpState::CloseWait));
  // The server's FIN acknowledges the client's FIN: the client reaches
  // FIN_WAIT_2 and, with the FIN, TIME_WAIT.
  EXPECT_TRUE(Accepted(k.s(FA, kSn, kCn + 1), CtState::LastAck, EpState::TimeWait, EpState::LastAck));
  EXPECT_TRUE(Accepted(k.c(A, kCn + 1, kSn + 1), CtState::TimeWait, EpState::TimeWait, EpState::Closed));
}

// RFC 793 simultaneous close: both FINs cross, neither acknowledging the
// other's, so each side goes FIN_WAIT_1 -> CLOSING -> TIME_WAIT.
// (A FIN whose ACK does not cover the peer's FIN is the crossing one.)
TEST(TcpClose, SimultaneousCloseEndpoints) {
  Conn k;
  established(k);
  EXPECT_TRUE(Accepted(k.c(FA, kCn, kSn), CtState::FinWait, EpState::FinWait1, EpState::CloseWait));
  // Sent before the client's FIN arrived: acknowledges kCn, not kCn + 1.
  EXPECT_TRUE(Accepted(k.s(FA, kSn, kCn), CtState::LastAck, EpState::Closing, EpState::Closing));
  EXPECT_TRUE(Accepted(k.c(A, kCn + 1, kSn + 1), CtState::TimeWait, EpState::Closing, EpState::TimeWait));
  EXPECT_TRUE(Accepted(k.s(A, kSn + 1, kCn + 1), CtState::TimeWait, EpState::TimeWait, EpState::TimeWait));
}

// The conntrack side of the simultaneous close (nf_conntrack: FIN_WAIT, then
// the reply FIN -> LAST_ACK, the ACKs -> TIME_WAIT), and what the endpoint
// inference does get right: the initiator is CLOSING then TIME_WAIT.
TEST(TcpClose, SimultaneousCloseConntrack) {
  Conn k;
  established(k);
  TrackResult r = k.c(FA, kCn, kSn);
  EXPECT_EQ(r.state, CtState::FinWait);
  r = k.s(FA, kSn, kCn);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.state, CtState::LastAck);
  EXPECT_EQ(r.initiator, EpState::Closing);
  r = k.c(A, kCn + 1, kSn + 1);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.state, CtState::TimeWait);
  r = k.s(A, kSn + 1, kCn + 1);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.state, CtState::TimeWait);
  EXPECT_EQ(r.initiator, EpState::TimeWait);
}

TEST(TcpClose, HalfCloseDataAfterFin) {
  Conn k;
  established(k);
  EXPECT_TRUE(Accepted(k.c(FA, kCn, kSn), CtState::FinWait, EpState::FinWait1, EpState::CloseWait));
  EXPECT_TRUE(Accepted(k.s(A, kSn, kCn + 1), CtState::CloseWait, EpState::FinWait2, EpState::CloseWait));
  // The server keeps sending; the client (FIN_WAIT_2) acknowledges.
  std::uint32_t sseq = kSn;
  for (int i = 0; i < 4; ++i) {
    TrackResult r = k.s(PA, sseq, kCn + 1, 1000);
    EXPECT_TRUE(Accepted(r, CtState::CloseWait, EpState::FinWait2, EpState::CloseWait)) << i;
    EXPECT_EQ(r.reason, Reason::Ok);
    sseq += 1000;
    r = k.c(A, kCn + 1, sseq);
    EXPECT_TRUE(Accepted(r, CtState::CloseWait, EpState::FinWait2, EpState::CloseWait)) << i;
  }
  EXPECT_TRUE(Accepted(k.s(FA, sseq, kCn + 1), CtState::LastAck, EpState::TimeWait, EpState::LastAck));
  EXPECT_TRUE(Accepted(k.c(A, kCn + 1, sseq + 1), CtState::TimeWait, EpState::TimeWait, EpState::Closed));
  EXPECT_EQ(k.counters().invalid, 0u);
}

// ---- RST --------------------------------------------------------------------

TEST(TcpRst, InEstablishedClosesBothEndpoints) {
  for (bool from_client : {true, false}) {
    Conn k;
    const flow::Handle h = established(k);
    const TrackResult r = from_client ? k.c(RA, kCn, kSn) : k.s(RA, kSn, kCn);
    EXPECT_TRUE(Accepted(r, CtState::Close, EpState::Closed, EpState::Closed)) << from_client;
    EXPECT_EQ(k.timeout(h), 10'000u);  // CLOSE: 10 s
    EXPECT_EQ(k.flows(), 1u);          // kept until it times out (a reply was seen)
  }
}

// The e2e test's late reset: the server closed first, the connection reached
// TIME_WAIT, then the server's FIN came again (a tail-loss probe overtaken by
// the last ACK) and the client, closed, answered it with a RST whose
// sequence number is the probe's ACK. Accepted (the tuple may be reused) and
// told apart from a reset of an open connection.
TEST(TcpRst, AfterBothSidesClosedIsRstAfterClose) {
  Conn k;
  established(k);
  EXPECT_TRUE(Accepted(k.s(FA, kSn, kCn), CtState::FinWait, EpState::CloseWait, EpState::FinWait1));
  EXPECT_TRUE(Accepted(k.c(A, kCn, kSn + 1), CtState::CloseWait, EpState::CloseWait, EpState::FinWait2));
  EXPECT_TRUE(Accepted(k.c(FA, kCn, kSn + 1), CtState::LastAck, EpState::LastAck, EpState::TimeWait));
  EXPECT_TRUE(Accepted(k.s(A, kSn + 1, kCn + 1), CtState::TimeWait, EpState::Closed, EpState::TimeWait));
  const TrackResult probe = k.s(FA, kSn, kCn);
  EXPECT_EQ(probe.verdict, Verdict::Accept) << str(probe.reason);
  const TrackResult r = k.c(R, kCn, 0);
  EXPECT_TRUE(Accepted(r, CtState::Close, EpState::Closed, EpState::Closed));
  EXPECT_EQ(r.reason, Reason::RstAfterClose) << str(r.reason);
  EXPECT_EQ(k.counters().reasons[static_cast<int>(Reason::RstAfterClose)], 1u);
  // The probe again (its retransmission timer), the client's RST again: the
  // entry is in CLOSE now, and the RST is as late as the first.
  k.s(FA, kSn, kCn);
  const TrackResult again = k.c(R, kCn, 0);
  EXPECT_TRUE(Accepted(again, CtState::Close, EpState::Closed, EpState::Closed));
  EXPECT_EQ(again.reason, Reason::RstAfterClose) << str(again.reason);
}

// Resets before the connection is over keep reason ok: in ESTABLISHED (a
// second RST after it is late), and in LAST_ACK (one FIN each way, the last
// not yet acknowledged).
TEST(TcpRst, BeforeBothSidesClosedIsOk) {
  {
    Conn k;
    established(k);
    const TrackResult r = k.c(RA, kCn, kSn);
    EXPECT_TRUE(Accepted(r, CtState::Close, EpState::Closed, EpState::Closed));
    EXPECT_EQ(r.reason, Reason::Ok) << str(r.reason);
    // The peer's RST after it: the connection is already over.
    const TrackResult after = k.s(RA, kSn, kCn);
    EXPECT_EQ(after.verdict, Verdict::Accept) << str(after.reason);
    EXPECT_EQ(after.reason, Reason::RstAfterClose) << str(after.reason);
  }
  {
    Conn k;
    established(k);
    ASSERT_EQ(k.s(FA, kSn, kCn).state, CtState::FinWait);
    ASSERT_EQ(k.c(FA, kCn, kSn + 1).state, CtState::LastAck);
    const TrackResult r = k.c(RA, kCn + 1, kSn + 1);
    EXPECT_EQ(r.verdict, Verdict::Accept) << str(r.reason);
    EXPECT_EQ(r.state, CtState::Close);
    EXPECT_EQ(r.reason, Reason::Ok) << str(r.reason);
    EXPECT_EQ(k.counters().reasons[static_cast<int>(Reason::RstAfterClose)], 0u);
  }
}

TEST(TcpRst, FarOutsideIsInvalidAndStateUnchanged) {
  Conn k;
  established(k);
  // Far above the window: over the receiver's window.
  TrackResult r = k.c(RA, kCn + 1'000'000'000u, kSn);
  EXPECT_TRUE(Invalid(r, Reason::SeqOverWindow));
  EXPECT_EQ(r.state, CtState::Established);
  EXPECT_EQ(r.initiator, EpState::Established);
  EXPECT_EQ(r.responder, EpState::Established);
  // Far below: below the highest ACK the server sent.
  r = k.c(RA, kCn - 1'000'000'000u, kSn);
  EXPECT_TRUE(Invalid(r, Reason::RstBeforeAck));
  EXPECT_EQ(r.state, CtState::Established);
  // Traffic goes on; then the exact RST closes.
  EXPECT_TRUE(Accepted(k.s(A, kSn, kCn), CtState::Established, EpState::Established, EpState::Established));
  EXPECT_TRUE(Accepted(k.c(R, kCn, 0), CtState::Close, EpState::Closed, EpState::Closed));
  EXPECT_EQ(k.counters().invalid, 2u);
  EXPECT_EQ(k.counters().reasons[static_cast<int>(Reason::SeqOverWindow)], 1u);
  EXPECT_EQ(k.counters().reasons[static_cast<int>(Reason::RstBeforeAck)], 1u);
}

TEST(TcpRst, InWindowButInexactKeepsEstablished) {
  // nf_conntrack: a RST in the window but not at the exact next sequence
  // number keeps the state (the peer answers with a challenge ACK, RFC 5961).
  Conn k;
  established(k);
  const TrackResult r = k.c(RA, kCn + 10, kSn);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_TRUE(Accepted(r, CtState::Established, EpState::Established, EpState::Established));
}

TEST(TcpRst, BeforeAnyReplyDestroysTheEntry) {
  Conn k;
  ASSERT_EQ(k.c(S, kC, 0).state, CtState::SynSent);
  // Closed port: RST|ACK seq 0 ack isn+1.
  const TrackResult r = k.s(RA, 0, kC + 1);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.state, CtState::None);
  EXPECT_EQ(r.handle, flow::kNoHandle);
  EXPECT_EQ(k.flows(), 0u);
  EXPECT_EQ(k.counters().flows_destroyed, 1u);
  EXPECT_EQ(k.counters().flows_in_state[static_cast<int>(CtState::SynSent)], 0);
}

// When a RST ends a connection that never saw a reply (Action::Destroy), the
// endpoints are reported after the packet: both CLOSED, as when a reply was
// seen.
TEST(TcpRst, BeforeAnyReplyReportsBothClosed) {
  Conn k;
  ASSERT_EQ(k.c(S, kC, 0).state, CtState::SynSent);
  const TrackResult r = k.s(RA, 0, kC + 1);
  EXPECT_EQ(str(r.state), str(CtState::None));
  EXPECT_EQ(str(r.initiator), str(EpState::Closed));
  EXPECT_EQ(str(r.responder), str(EpState::Closed));
}

TEST(TcpOpen, AckFromInitiatorBeforeSynAckIsBadTransition) {
  // nf_conntrack: ORIGINAL ack in SYN_SENT -> sIV.
  Conn k;
  k.c(S, kC, 0);
  const TrackResult r = k.c(A, kC + 1, kS + 1);
  EXPECT_TRUE(Invalid(r, Reason::BadTransition));
  EXPECT_TRUE(Is(r, Verdict::Invalid, CtState::SynSent, EpState::SynSent, EpState::Listen));
}

TEST(TcpOpen, ReplyAckInSynSentIsIgnored) {
  // nf_conntrack: REPLY ack in SYN_SENT -> sIG (e.g. a challenge ACK from a
  // server that still has an old connection): passed, state unchanged.
  Conn k;
  k.c(S, kC, 0);
  const TrackResult r = k.s(A, kS + 1, 12345);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.reason, Reason::IgnoredOutOfSync);
  EXPECT_TRUE(Accepted(r, CtState::SynSent, EpState::SynSent, EpState::Listen));
}

// ---- window checks ----------------------------------------------------------

TEST(TcpWindow, DataBeyondWindowInvalidStateUnchanged) {
  Conn k;
  const flow::Handle h = established(k);
  const tcp::Track before = k.tracker().table_v4().entry(h).track;
  const TrackResult r = k.c(PA, kCn + 10'000'000, kSn, 100);
  EXPECT_TRUE(Invalid(r, Reason::SeqOverWindow));
  EXPECT_EQ(r.state, CtState::Established);
  EXPECT_EQ(r.initiator, EpState::Established);
  const tcp::Track after = k.tracker().table_v4().entry(h).track;
  EXPECT_EQ(std::memcmp(&before, &after, sizeof before), 0) << "window tracking changed by an invalid segment";
  // In-window data still passes.
  EXPECT_TRUE(Accepted(k.c(PA, kCn, kSn, 100), CtState::Established, EpState::Established, EpState::Established));
}

TEST(TcpWindow, AckOfUnsentDataInvalid) {
  Conn k;
  established(k);
  const TrackResult r = k.c(A, kCn, kSn + 100'000);
  EXPECT_TRUE(Invalid(r, Reason::AckOverSent));
  EXPECT_EQ(r.state, CtState::Established);
  EXPECT_EQ(k.counters().reasons[static_cast<int>(Reason::AckOverSent)], 1u);
}

TEST(TcpWindow, ScaledWindowBothSides) {
  Conn k;
  EXPECT_EQ(k.c(S, kC, 0, 0, 64240, {.wscale = 7, .sack_perm = true, .mss = 1460}).state, CtState::SynSent);
  EXPECT_EQ(k.s(SA, kS, kC + 1, 0, 65160, {.wscale = 7, .sack_perm = true, .mss = 1460}).state, CtState::SynRecv);
  // Window 1000 << 7 = 128000 bytes.
  EXPECT_EQ(k.c(A, kC + 1, kS + 1, 0, 1000).state, CtState::Established);
  // 100000 bytes ahead: inside the scaled window only.
  const TrackResult r = k.s(PA, kS + 1 + 100'000, kC + 1, 100, 509);
  EXPECT_TRUE(Accepted(r, CtState::Established, EpState::Established, EpState::Established));
  EXPECT_EQ(r.reason, Reason::Ok);
}

TEST(TcpWindow, ScaleOfferedByOneSideOnlyIsOff) {
  Conn k;
  EXPECT_EQ(k.c(S, kC, 0, 0, 64240, {.wscale = 7, .mss = 1460}).state, CtState::SynSent);
  EXPECT_EQ(k.s(SA, kS, kC + 1, 0, 65160, {.mss = 1460}).state, CtState::SynRecv);
  // Scaling is off both ways: the client's window is 1000 bytes.
  EXPECT_EQ(k.c(A, kC + 1, kS + 1, 0, 1000).state, CtState::Established);
  const TrackResult r = k.s(PA, kS + 1 + 100'000, kC + 1, 100, 509);
  EXPECT_TRUE(Invalid(r, Reason::SeqOverWindow));
  EXPECT_EQ(r.state, CtState::Established);
  // Within the raw window: fine.
  EXPECT_EQ(k.s(PA, kS + 1, kC + 1, 900, 509).verdict, Verdict::Accept);
}

TEST(TcpWindow, LiberalAcceptsOutOfWindowData) {
  tcp::Config cfg;
  cfg.liberal = true;
  Conn k(cfg);
  established(k);
  TrackResult r = k.c(PA, kCn + 10'000'000, kSn, 100);
  EXPECT_TRUE(Accepted(r, CtState::Established, EpState::Established, EpState::Established));
  EXPECT_EQ(r.reason, Reason::Liberal);
  // The RST check against the highest ACK is not a window check: still invalid.
  r = k.s(R, kSn - 1'000'000'000u, 0);
  EXPECT_TRUE(Invalid(r, Reason::RstBeforeAck));
}

// ---- opening ----------------------------------------------------------------

TEST(TcpOpen, SynAckWithoutSynIsNotNew) {
  Conn k;
  const TrackResult r = k.s(SA, kS, kC + 1);
  EXPECT_TRUE(Invalid(r, Reason::NotNew));
  EXPECT_EQ(r.state, CtState::None);
  EXPECT_EQ(k.flows(), 0u);
  EXPECT_EQ(k.counters().flows_created, 0u);
  EXPECT_EQ(k.counters().invalid, 1u);
  EXPECT_EQ(k.counters().reasons[static_cast<int>(Reason::NotNew)], 1u);
  // Same for a FIN|ACK and a RST without connection.
  EXPECT_TRUE(Invalid(k.c(FA, kC, kS), Reason::NotNew));
  EXPECT_TRUE(Invalid(k.c(R, kC, 0), Reason::NotNew));
  EXPECT_EQ(k.flows(), 0u);
}

TEST(TcpOpen, BareAckPickedUpWhenLoose) {
  Conn k;
  TrackResult r = k.c(A, kCn, kSn);
  EXPECT_TRUE(Accepted(r, CtState::Established, EpState::Established, EpState::Established));
  EXPECT_EQ(k.counters().flows_created, 1u);
  // Without a reply, a picked-up ESTABLISHED gets the short (unacknowledged) timeout.
  EXPECT_EQ(k.timeout(r.handle), 300'000u);
  EXPECT_EQ(k.s(A, kSn, kCn).state, CtState::Established);
  r = k.c(PA, kCn, kSn, 10);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(k.s(A, kSn, kCn + 10).state, CtState::Established);
  // Replies seen in both directions: assured, full timeout.
  EXPECT_EQ(k.status(r.handle).assured, 1u);
  EXPECT_EQ(k.timeout(r.handle), 5 * kDay);
}

TEST(TcpOpen, NoPickupWhenNotLoose) {
  tcp::Config cfg;
  cfg.loose = false;
  Conn k(cfg);
  const TrackResult r = k.c(A, kCn, kSn);
  EXPECT_TRUE(Invalid(r, Reason::NoPickup));
  EXPECT_EQ(k.flows(), 0u);
  EXPECT_EQ(k.counters().reasons[static_cast<int>(Reason::NoPickup)], 1u);
  // A SYN still opens.
  EXPECT_EQ(k.c(S, kC, 0).state, CtState::SynSent);
}

TEST(TcpOpen, RetransmittedSynKeepsSynSentAndDoesNotRenewTimeout) {
  Conn k;
  const TrackResult first = k.c(S, kC, 0);
  ASSERT_EQ(first.state, CtState::SynSent);
  const Millis created = k.tracker().table_v4().entry(first.handle).last_seen;
  k.now_ms += 3000;
  const TrackResult again = k.c(S, kC, 0);
  EXPECT_TRUE(Accepted(again, CtState::SynSent, EpState::SynSent, EpState::Listen));
  EXPECT_EQ(again.handle, first.handle);
  EXPECT_EQ(k.tracker().table_v4().entry(first.handle).last_seen, created);
  EXPECT_EQ(k.counters().flows_created, 1u);
  // The handshake completes as usual.
  EXPECT_EQ(k.s(SA, kS, kC + 1).state, CtState::SynRecv);
  EXPECT_EQ(k.c(A, kC + 1, kS + 1).state, CtState::Established);
}

TEST(TcpOpen, SynOnTimeWaitReopens) {
  Conn k;
  const flow::Handle h = established(k);
  k.c(FA, kCn, kSn);
  k.s(FA, kSn, kCn + 1);
  ASSERT_EQ(k.c(A, kCn + 1, kSn + 1).state, CtState::TimeWait);
  k.now_ms += 1000;
  const std::uint32_t isn2 = kCn + 100'000;
  TrackResult r = k.c(S, isn2, 0);
  EXPECT_TRUE(Accepted(r, CtState::SynSent, EpState::SynSent, EpState::Listen));
  EXPECT_EQ(r.reason, Reason::Reopened);
  EXPECT_EQ(r.dir, tcp::Dir::Orig);
  EXPECT_EQ(r.handle, h);
  EXPECT_EQ(k.counters().flows_reopened, 1u);
  EXPECT_EQ(k.counters().flows_in_state[static_cast<int>(CtState::TimeWait)], 0);
  EXPECT_EQ(k.counters().flows_in_state[static_cast<int>(CtState::SynSent)], 1);
  EXPECT_EQ(k.timeout(h), 120'000u);
  // The new connection's handshake.
  const std::uint32_t sisn2 = 777'777;
  EXPECT_TRUE(Accepted(k.s(SA, sisn2, isn2 + 1), CtState::SynRecv, EpState::Established, EpState::SynReceived));
  EXPECT_TRUE(Accepted(k.c(A, isn2 + 1, sisn2 + 1), CtState::Established, EpState::Established,
                       EpState::Established));
}

TEST(TcpOpen, SimultaneousOpen) {
  Conn k;
  EXPECT_TRUE(Accepted(k.c(S, kC, 0), CtState::SynSent, EpState::SynSent, EpState::Listen));
  // The server's SYN (no ACK) crosses the client's.
  TrackResult r = k.s(S, kS, 0);
  EXPECT_TRUE(Accepted(r, CtState::SynSent2, EpState::SynReceived, EpState::SynReceived));
  EXPECT_EQ(r.dir, tcp::Dir::Reply);
  // Each answers the other's SYN with a SYN-ACK.
  r = k.c(SA, kC, kS + 1);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.state, CtState::SynRecv);
  r = k.s(SA, kS, kC + 1);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.state, CtState::SynRecv);
  r = k.c(A, kC + 1, kS + 1);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.state, CtState::Established);
  r = k.s(A, kS + 1, kC + 1);
  EXPECT_TRUE(Accepted(r, CtState::Established, EpState::Established, EpState::Established));
  EXPECT_EQ(k.counters().invalid, 0u);
}

TEST(TcpOpen, SynInEstablishedIgnoredThenSynAckResyncs) {
  // The client restarted and opens again with a new ISN; the server lost
  // its state too and answers with a SYN-ACK. nf_conntrack ignores the SYN
  // (it may be out of sync), then takes the SYN-ACK that acknowledges it as
  // a new handshake.
  Conn k;
  established(k);
  const std::uint32_t isn2 = 3'000'000'000u, sisn2 = 123'456;
  TrackResult r = k.c(S, isn2, 0);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.reason, Reason::IgnoredOutOfSync);
  EXPECT_TRUE(Accepted(r, CtState::Established, EpState::Established, EpState::Established));
  r = k.s(SA, sisn2, isn2 + 1);
  EXPECT_TRUE(Accepted(r, CtState::SynRecv, EpState::Established, EpState::SynReceived));
  r = k.c(A, isn2 + 1, sisn2 + 1);
  EXPECT_TRUE(Accepted(r, CtState::Established, EpState::Established, EpState::Established));
  EXPECT_EQ(k.c(PA, isn2 + 1, sisn2 + 1, 10).verdict, Verdict::Accept);
}

TEST(TcpOpen, SynAfterOwnRstReopensButNotAfterPeerRst) {
  {
    Conn k;
    established(k);
    ASSERT_EQ(k.c(RA, kCn, kSn).state, CtState::Close);
    const TrackResult r = k.c(S, kCn + 5000, 0);
    EXPECT_EQ(r.reason, Reason::Reopened);
    EXPECT_TRUE(Accepted(r, CtState::SynSent, EpState::SynSent, EpState::Listen));
  }
  {
    // The server reset it: nf_conntrack ignores the client's SYN on the
    // CLOSE entry (no FIN was seen and the RST came from the other side).
    Conn k;
    established(k);
    ASSERT_EQ(k.s(RA, kSn, kCn).state, CtState::Close);
    const TrackResult r = k.c(S, kCn + 5000, 0);
    EXPECT_EQ(r.verdict, Verdict::Accept);
    EXPECT_EQ(r.reason, Reason::IgnoredOutOfSync);
    EXPECT_EQ(r.state, CtState::Close);
  }
}

TEST(TcpRst, InSynRecvCloses) {
  Conn k;
  k.c(S, kC, 0);
  k.s(SA, kS, kC + 1);
  const TrackResult r = k.c(R, kC + 1, 0);
  EXPECT_TRUE(Accepted(r, CtState::Close, EpState::Closed, EpState::Closed));
  EXPECT_EQ(k.flows(), 1u);  // a reply was seen: kept for the CLOSE timeout
}

// ---- flags ------------------------------------------------------------------

TEST(TcpFlags, InvalidCombinations) {
  const std::uint8_t bad[] = {S | F, 0, F, S | R, R | F, F | tf::kUrg | P, S | F | A, F | P};
  for (std::uint8_t f : bad) {
    Conn k;
    const TrackResult r = k.c(f, kC, 0);
    EXPECT_TRUE(Invalid(r, Reason::BadFlags)) << int(f);
    EXPECT_EQ(k.flows(), 0u) << int(f);
  }
  // Inside a connection: invalid, state unchanged.
  Conn k;
  established(k);
  for (std::uint8_t f : bad) {
    const TrackResult r = k.c(f, kCn, kSn);
    EXPECT_TRUE(Invalid(r, Reason::BadFlags)) << int(f);
    EXPECT_EQ(r.state, CtState::Established) << int(f);
  }
  EXPECT_EQ(k.counters().reasons[static_cast<int>(Reason::BadFlags)], std::size(bad));
  EXPECT_TRUE(Accepted(k.c(A, kCn, kSn), CtState::Established, EpState::Established, EpState::Established));
}

TEST(TcpFlags, EcnAndPushAndUrgAreFine) {
  for (std::uint8_t f : {std::uint8_t(S | tf::kEce | tf::kCwr), std::uint8_t(S | tf::kUrg), std::uint8_t(S | P)}) {
    Conn k;
    EXPECT_EQ(k.c(f, kC, 0).state, CtState::SynSent) << int(f);
  }
  Conn k;
  handshake(k);
  EXPECT_EQ(k.c(PA | tf::kEce | tf::kCwr | tf::kUrg, kC + 1, kS + 1, 10).verdict, Verdict::Accept);
}

TEST(TcpFlags, ValidFlagsTable) {
  // nf_conntrack's tcp_valid_flags, PSH/ECE/CWR masked.
  int valid = 0;
  for (int f = 0; f < 256; ++f) {
    const std::uint8_t core = static_cast<std::uint8_t>(f & ~(tf::kPsh | tf::kEce | tf::kCwr));
    const bool expect = core == S || core == (S | tf::kUrg) || core == SA || core == R || core == RA ||
                        core == FA || core == (FA | tf::kUrg) || core == A || core == (A | tf::kUrg);
    EXPECT_EQ(tcp::valid_flags(static_cast<std::uint8_t>(f)), expect) << f;
    valid += expect;
  }
  EXPECT_EQ(valid, 9 * 8);
}

// ---- timeouts ---------------------------------------------------------------

TEST(TcpTimeouts, DefaultsAndMsl) {
  const tcp::Timeouts t = tcp::default_timeouts();
  EXPECT_EQ(t.of(CtState::TimeWait), 240'000u);  // 2 x MSL, MSL 120 s
  EXPECT_EQ(t.of(CtState::Established), 5 * kDay);
  EXPECT_EQ(t.of(CtState::SynSent), 120'000u);
  EXPECT_EQ(t.of(CtState::SynRecv), 60'000u);
  EXPECT_EQ(t.of(CtState::FinWait), 120'000u);
  EXPECT_EQ(t.of(CtState::CloseWait), 60'000u);
  EXPECT_EQ(t.of(CtState::LastAck), 30'000u);
  EXPECT_EQ(t.of(CtState::Close), 10'000u);
  EXPECT_EQ(t.of(tcp::TimeoutClass::Unack), 300'000u);
  EXPECT_EQ(t.of(tcp::TimeoutClass::Retrans), 300'000u);
  EXPECT_EQ(tcp::default_timeouts(60).of(CtState::TimeWait), 120'000u);
  EXPECT_EQ(tcp::default_timeouts(60).of(CtState::Established), 5 * kDay);
}

TEST(TcpTimeouts, AlongAConnection) {
  Conn k;
  TrackResult r = k.c(S, kC, 0);
  const flow::Handle h = r.handle;
  EXPECT_EQ(k.timeout(h), 120'000u);
  k.s(SA, kS, kC + 1);
  EXPECT_EQ(k.timeout(h), 60'000u);
  k.c(A, kC + 1, kS + 1);
  EXPECT_EQ(k.timeout(h), 5 * kDay);
  // Unacknowledged data: 300 s, until acknowledged.
  k.c(PA, kC + 1, kS + 1, 100);
  EXPECT_EQ(k.timeout(h), 300'000u);
  k.s(A, kS + 1, kC + 101);
  EXPECT_EQ(k.timeout(h), 5 * kDay);
  k.s(PA, kS + 1, kC + 101, 50);
  EXPECT_EQ(k.timeout(h), 300'000u);
  k.c(A, kC + 101, kS + 51);
  EXPECT_EQ(k.timeout(h), 5 * kDay);
  // Close.
  k.c(FA, kC + 101, kS + 51);
  EXPECT_EQ(k.timeout(h), 120'000u);
  k.s(A, kS + 51, kC + 102);
  EXPECT_EQ(k.timeout(h), 60'000u);
  k.s(FA, kS + 51, kC + 102);
  EXPECT_EQ(k.timeout(h), 30'000u);
  r = k.c(A, kC + 102, kS + 52);
  ASSERT_EQ(r.state, CtState::TimeWait);
  EXPECT_EQ(k.timeout(h), 240'000u);
}

TEST(TcpTimeouts, TimeWaitFollowsMsl) {
  tcp::Config cfg;
  cfg.timeouts = tcp::default_timeouts(60);
  Conn k(cfg);
  const flow::Handle h = established(k);
  k.c(FA, kCn, kSn);
  k.s(FA, kSn, kCn + 1);
  ASSERT_EQ(k.c(A, kCn + 1, kSn + 1).state, CtState::TimeWait);
  EXPECT_EQ(k.timeout(h), 120'000u);
}

TEST(TcpTimeouts, ExpiryThroughTheTracker) {
  Conn k;
  const flow::Handle h = established(k);
  k.c(FA, kCn, kSn);
  k.s(FA, kSn, kCn + 1);
  k.c(A, kCn + 1, kSn + 1);
  auto& table = k.tracker().table_v4();
  flow::EntryV4 e;
  flow::Cold c;
  ASSERT_TRUE(table.read(h, e, c));
  const std::uint64_t closed_at = k.now_ms;
  EXPECT_EQ(k.tracker().expire(table, h, e.version, Clock{closed_at + 239'999}), flow::ExpireStatus::NotExpired);
  EXPECT_EQ(k.flows(), 1u);
  EXPECT_EQ(k.tracker().expire(table, h, e.version, Clock{closed_at + 240'000}), flow::ExpireStatus::Expired);
  EXPECT_EQ(k.flows(), 0u);
  EXPECT_EQ(k.counters().flows_expired, 1u);
  EXPECT_EQ(k.counters().flows_in_state[static_cast<int>(CtState::TimeWait)], 0);
}

TEST(TcpTimeouts, ReopenAfterScanWinsOverExpiry) {
  Conn k;
  const flow::Handle h = established(k);
  k.c(FA, kCn, kSn);
  k.s(FA, kSn, kCn + 1);
  k.c(A, kCn + 1, kSn + 1);
  auto& table = k.tracker().table_v4();
  flow::EntryV4 e;
  flow::Cold c;
  ASSERT_TRUE(table.read(h, e, c));  // the ager's scan
  k.now_ms += 240'000;
  ASSERT_EQ(k.c(S, kCn + 50'000, 0).reason, Reason::Reopened);
  EXPECT_EQ(k.tracker().expire(table, h, e.version, Clock{k.now_ms}), flow::ExpireStatus::Changed);
  EXPECT_EQ(k.flows(), 1u);
  EXPECT_EQ(k.counters().flows_expired, 0u);
}

TEST(TcpTimeouts, RetransmissionsAndZeroWindowCaps) {
  // Distinct values for the two caps, so that the test tells them apart.
  tcp::Config cfg;
  cfg.timeouts.ms[static_cast<int>(tcp::TimeoutClass::Retrans)] = 111'000;
  cfg.timeouts.ms[static_cast<int>(tcp::TimeoutClass::Unack)] = 222'000;
  Conn k(cfg);
  const flow::Handle h = established(k);
  // Unacknowledged data: the Unack cap.
  k.c(PA, kCn, kSn, 100);
  EXPECT_EQ(k.timeout(h), 222'000u);
  // The same segment again and again: after max_retrans (3) identical
  // retransmissions, the Retrans cap (nf_conntrack_tcp_timeout_max_retrans).
  k.c(PA, kCn, kSn, 100);
  k.c(PA, kCn, kSn, 100);
  EXPECT_EQ(k.timeout(h), 222'000u);
  k.c(PA, kCn, kSn, 100);
  EXPECT_EQ(k.timeout(h), 111'000u);
  // Acknowledged: back to ESTABLISHED's own timeout.
  k.s(A, kSn, kCn + 100);
  EXPECT_EQ(k.timeout(h), 5 * kDay);
  // A zero window advertised: the Retrans cap too.
  k.c(A, kCn + 100, kSn, 0, 0);
  EXPECT_EQ(k.timeout(h), 111'000u);
  k.c(A, kCn + 100, kSn, 0, 1000);
  EXPECT_EQ(k.timeout(h), 5 * kDay);
}

TEST(TcpTimeouts, OutOfWindowRstAnswersShortenAssuredTimeout) {
  // nf_tcp_handle_invalid(): an out-of-window RST answering the peer's
  // out-of-window RST on an assured connection cuts the timeout to Unack.
  Conn k;
  const flow::Handle h = established(k);
  ASSERT_EQ(k.timeout(h), 5 * kDay);
  EXPECT_TRUE(Invalid(k.c(RA, kCn + 1'000'000'000u, kSn), Reason::SeqOverWindow));
  EXPECT_EQ(k.timeout(h), 5 * kDay);
  EXPECT_TRUE(Invalid(k.s(RA, kSn + 1'000'000'000u, kCn), Reason::SeqOverWindow));
  EXPECT_EQ(k.timeout(h), 300'000u);
  EXPECT_EQ(k.status(h).ct_state, static_cast<std::uint32_t>(CtState::Established));
}

// ---- IPv6 and counters ------------------------------------------------------

TEST(TcpV6, HandshakeAndCloseInTheV6Table) {
  Conn k(tcp::Config{}, true, /*v6=*/true);
  const flow::Handle h = established(k);
  EXPECT_EQ(k.tracker().table_v6().size(), 1u);
  EXPECT_EQ(k.tracker().table_v4().size(), 0u);
  EXPECT_TRUE(Accepted(k.c(FA, kCn, kSn), CtState::FinWait, EpState::FinWait1, EpState::CloseWait));
  EXPECT_TRUE(Accepted(k.s(FA, kSn, kCn + 1), CtState::LastAck, EpState::TimeWait, EpState::LastAck));
  EXPECT_TRUE(Accepted(k.c(A, kCn + 1, kSn + 1), CtState::TimeWait, EpState::TimeWait, EpState::Closed));
  EXPECT_EQ(k.timeout(h), 240'000u);
}

TEST(TcpCounters, MoveAsExpected) {
  Conn k;
  established(k);  // 6 packets
  k.c(PA, kCn + 10'000'000, kSn, 100);  // invalid: seq over window
  k.c(S | F, kCn, 0);                   // invalid: bad flags
  const auto& c = k.counters();
  EXPECT_EQ(c.tcp_packets, 8u);
  EXPECT_EQ(c.accepted, 6u);
  EXPECT_EQ(c.invalid, 2u);
  EXPECT_EQ(c.flows_created, 1u);
  EXPECT_EQ(c.reasons[static_cast<int>(Reason::Ok)], 6u);
  EXPECT_EQ(c.reasons[static_cast<int>(Reason::SeqOverWindow)], 1u);
  EXPECT_EQ(c.reasons[static_cast<int>(Reason::BadFlags)], 1u);
  EXPECT_EQ(c.flows_in_state[static_cast<int>(CtState::Established)], 1);
}

// An expiry request with a bad handle is refused without reading outside the
// table (a -fsanitize=address build reported the read before it was fixed).
TEST(TcpCounters, ExpireWithBadHandleIsRefused) {
  Conn k;
  auto& table = k.tracker().table_v6();
  EXPECT_EQ(k.tracker().expire(table, table.capacity(), 0, Clock{k.now_ms}), flow::ExpireStatus::BadHandle);
  EXPECT_EQ(k.tracker().expire(table, 1u << 30, 0, Clock{k.now_ms}), flow::ExpireStatus::BadHandle);
}

TEST(TcpCounters, TableFullPassesUntracked) {
  // A 2-entry table (capacity 2 still has 2 buckets): the third new
  // connection finds two assured ESTABLISHED flows and passes untracked.
  ctlb_test::HeapTable<flow::V4> t4(2);
  ctlb_test::HeapTable<flow::V6> t6(2);
  flow::Tracker tr(t4.table, t6.table, tcp::Config{});
  auto pkt = [](std::uint16_t sport, std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, bool from_client) {
    PacketView v;
    v.family = packet::IpFamily::V4;
    const std::uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
    std::memcpy(from_client ? v.src : v.dst, a, 4);
    std::memcpy(from_client ? v.dst : v.src, b, 4);
    v.sport = from_client ? sport : 80;
    v.dport = from_client ? 80 : sport;
    v.seq = seq;
    v.ack = ack;
    v.flags = flags;
    v.window = 65535;
    v.header_len = 20;
    return v;
  };
  for (std::uint16_t port : {1000, 1001}) {
    tr.track(pkt(port, S, kC, 0, true), Clock{1});
    tr.track(pkt(port, SA, kS, kC + 1, false), Clock{1});
    tr.track(pkt(port, A, kC + 1, kS + 1, true), Clock{1});
    ASSERT_EQ(tr.track(pkt(port, A, kC + 1, kS + 1, true), Clock{1}).state, CtState::Established);
  }
  const TrackResult r = tr.track(pkt(1002, S, kC, 0, true), Clock{2});
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_EQ(r.reason, Reason::NoEntry);
  EXPECT_EQ(r.handle, flow::kNoHandle);
  EXPECT_EQ(tr.counters().untracked_table_full, 1u);
  EXPECT_EQ(tr.counters().flows_created, 2u);
}

}  // namespace
