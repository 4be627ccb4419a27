// control::trace_capture() and `ctlbctl trace` on small pcaps written here
// (classic pcap format, LINKTYPE_ETHERNET).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "control/json.hpp"
#include "control/trace.hpp"
#include "dataplane/packet/packet_view.hpp"
#include "frame_builder.hpp"

#ifndef CTLBCTL_PATH
#error "CTLBCTL_PATH must name the built ctlbctl (tests/unit/meson.build)"
#endif

namespace {

using namespace ctlb_test;
using ctlb::control::TraceOptions;
using ctlb::control::TraceOutput;
using ctlb::tcp::CtState;
using ctlb::tcp::EpState;
using ctlb::tcp::Verdict;
namespace fs = std::filesystem;
namespace tf = ctlb::packet::tcpflag;

// ---- pcap writer ------------------------------------------------------------

void le16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void le32(Bytes& b, std::uint32_t v) {
  le16(b, static_cast<std::uint16_t>(v));
  le16(b, static_cast<std::uint16_t>(v >> 16));
}

class Pcap {
 public:
  explicit Pcap(std::uint32_t linktype = 1) {
    le32(bytes_, 0xa1b2c3d4u);  // microsecond timestamps, written little-endian
    le16(bytes_, 2);
    le16(bytes_, 4);
    le32(bytes_, 0);  // thiszone
    le32(bytes_, 0);  // sigfigs
    le32(bytes_, 65535);
    le32(bytes_, linktype);
  }
  // ts in microseconds since the epoch.
  void add(std::uint64_t ts_us, const Bytes& frame) {
    le32(bytes_, static_cast<std::uint32_t>(ts_us / 1'000'000));
    le32(bytes_, static_cast<std::uint32_t>(ts_us % 1'000'000));
    le32(bytes_, static_cast<std::uint32_t>(frame.size()));
    le32(bytes_, static_cast<std::uint32_t>(frame.size()));
    append(bytes_, frame);
    ++count_;
  }
  void write(const std::string& path, std::size_t cut = 0) const {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes_.data()), static_cast<std::streamsize>(bytes_.size() - cut));
  }
  std::size_t count() const { return count_; }

 private:
  Bytes bytes_;
  std::size_t count_ = 0;
};

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "ctlb-trace-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

// ---- the capture ------------------------------------------------------------

struct Host {
  std::uint8_t a[4];
};

Bytes tcp_frame(Host src, std::uint16_t sport, Host dst, std::uint16_t dport, std::uint8_t flags, std::uint32_t seq,
                std::uint32_t ack, std::size_t len = 0) {
  Tcp t;
  t.sport = sport;
  t.dport = dport;
  t.seq = seq;
  t.ack = ack;
  t.flags = flags;
  t.window = 64000;
  t.payload_len = len;
  Ipv4 ip;
  std::memcpy(ip.src, src.a, 4);
  std::memcpy(ip.dst, dst.a, 4);
  return tcp4_frame(t, ip, {}, 60);
}

constexpr Host kClient{{10, 0, 0, 1}}, kServer{{10, 0, 0, 2}}, kHighClient{{10, 0, 0, 9}}, kOther{{10, 0, 0, 3}};
constexpr std::uint8_t S = tf::kSyn, A = tf::kAck, F = tf::kFin, R = tf::kRst, P = tf::kPsh;
constexpr std::uint64_t kT0 = 1'700'000'000ull * 1'000'000;  // capture start, us

struct Expect {
  std::string flow, dir, flags;
  CtState state;
  EpState initiator, responder;
  Verdict verdict;
  std::string reason;
};

// Four connections and some untracked frames:
//  A 10.0.0.1:40001 > 10.0.0.2:80  handshake, 4-way close: TIME_WAIT
//  B 10.0.0.9:40002 > 10.0.0.2:80  handshake, client FIN acked, then silence: CLOSE_WAIT (stuck)
//  C 10.0.0.3:50000 > 10.0.0.2:443 a lone SYN: SYN_SENT (half-open, stuck)
//  D 10.0.0.1:40003 > 10.0.0.2:80  handshake, client RST: CLOSE
// then a UDP datagram, a malformed frame and, 62 s after the start, an ARP.
struct Scenario {
  Pcap pcap;
  std::vector<Expect> expect;

  void tcp(std::uint64_t t_us, bool orig, Host c, std::uint16_t cport, Host s, std::uint16_t sport, std::uint8_t flags,
           std::uint32_t seq, std::uint32_t ack, Expect e, std::size_t len = 0) {
    pcap.add(kT0 + t_us, orig ? tcp_frame(c, cport, s, sport, flags, seq, ack, len)
                              : tcp_frame(s, sport, c, cport, flags, seq, ack, len));
    expect.push_back(std::move(e));
  }
  void other(std::uint64_t t_us, const Bytes& frame, const std::string& reason, Verdict v) {
    pcap.add(kT0 + t_us, frame);
    expect.push_back(Expect{"", "", "", CtState::None, EpState::Closed, EpState::Closed, v, reason});
  }

  Scenario() {
    const Verdict ok = Verdict::Accept;
    using C = CtState;
    using E = EpState;
    const std::string fa = "10.0.0.1:40001 > 10.0.0.2:80";
    tcp(0, true, kClient, 40001, kServer, 80, S, 100, 0, {fa, "orig", "S", C::SynSent, E::SynSent, E::Listen, ok, "ok"});
    tcp(1000, false, kClient, 40001, kServer, 80, S | A, 900, 101,
        {fa, "reply", "SA", C::SynRecv, E::Established, E::SynReceived, ok, "ok"});
    tcp(2000, true, kClient, 40001, kServer, 80, A, 101, 901,
        {fa, "orig", ".", C::Established, E::Established, E::Established, ok, "ok"});
    tcp(3000, true, kClient, 40001, kServer, 80, F | A, 101, 901,
        {fa, "orig", "FA", C::FinWait, E::FinWait1, E::CloseWait, ok, "ok"});
    tcp(4000, false, kClient, 40001, kServer, 80, A, 901, 102,
        {fa, "reply", ".", C::CloseWait, E::FinWait2, E::CloseWait, ok, "ok"});
    tcp(5000, false, kClient, 40001, kServer, 80, F | A, 901, 102,
        {fa, "reply", "FA", C::LastAck, E::TimeWait, E::LastAck, ok, "ok"});
    tcp(6000, true, kClient, 40001, kServer, 80, A, 102, 902,
        {fa, "orig", ".", C::TimeWait, E::TimeWait, E::Closed, ok, "ok"});

    const std::string fb = "10.0.0.9:40002 > 10.0.0.2:80";
    tcp(1'000'000, true, kHighClient, 40002, kServer, 80, S, 7000, 0,
        {fb, "orig", "S", C::SynSent, E::SynSent, E::Listen, ok, "ok"});
    tcp(1'001'000, false, kHighClient, 40002, kServer, 80, S | A, 8000, 7001,
        {fb, "reply", "SA", C::SynRecv, E::Established, E::SynReceived, ok, "ok"});
    tcp(1'002'000, true, kHighClient, 40002, kServer, 80, A, 7001, 8001,
        {fb, "orig", ".", C::Established, E::Established, E::Established, ok, "ok"});
    // Out of window: invalid, recorded with its reason.
    tcp(1'003'000, true, kHighClient, 40002, kServer, 80, P | A, 7001 + 50'000'000, 8001,
        {fb, "orig", "PA", C::Established, E::Established, E::Established, Verdict::Invalid, "seq_over_window"}, 100);
    tcp(2'000'000, true, kHighClient, 40002, kServer, 80, F | A, 7001, 8001,
        {fb, "orig", "FA", C::FinWait, E::FinWait1, E::CloseWait, ok, "ok"});
    tcp(2'001'000, false, kHighClient, 40002, kServer, 80, A, 8001, 7002,
        {fb, "reply", ".", C::CloseWait, E::FinWait2, E::CloseWait, ok, "ok"});

    tcp(2'500'000, true, kOther, 50000, kServer, 443, S, 1, 0,
        {"10.0.0.3:50000 > 10.0.0.2:443", "orig", "S", C::SynSent, E::SynSent, E::Listen, ok, "ok"});

    const std::string fd = "10.0.0.1:40003 > 10.0.0.2:80";
    tcp(3'000'000, true, kClient, 40003, kServer, 80, S, 500, 0, {fd, "orig", "S", C::SynSent, E::SynSent, E::Listen, ok, "ok"});
    tcp(3'001'000, false, kClient, 40003, kServer, 80, S | A, 600, 501,
        {fd, "reply", "SA", C::SynRecv, E::Established, E::SynReceived, ok, "ok"});
    tcp(3'002'000, true, kClient, 40003, kServer, 80, A, 501, 601,
        {fd, "orig", ".", C::Established, E::Established, E::Established, ok, "ok"});
    tcp(3'003'000, true, kClient, 40003, kServer, 80, R | A, 501, 601,
        {fd, "orig", "RA", C::Close, E::Closed, E::Closed, ok, "ok"});
    // An invalid flag combination on a new tuple.
    tcp(3'004'000, true, kClient, 40004, kServer, 80, S | F, 1, 0,
        {"10.0.0.1:40004 > 10.0.0.2:80", "orig", "SF", C::None, E::Closed, E::Closed, Verdict::Invalid, "bad_flags"});

    Ipv4 udp_ip;
    udp_ip.proto = kProtoUdp;
    other(4'000'000, ether(kEtherIpv4, udp_ip.build(udp(5353, 5353, 20))), "non_tcp", ok);
    Bytes bad = tcp_frame(kClient, 1, kServer, 2, A, 0, 0);
    bad[14] = 0x44;  // IHL 4
    other(5'000'000, bad, "ipv4_bad_ihl", Verdict::Invalid);
    other(62'000'000, arp_request(), "not_ip", ok);
  }
};

TraceOptions options(const std::string& path) {
  TraceOptions o;
  o.path = path;
  o.capacity = 1024;
  return o;
}

// ---- trace_capture ------------------------------------------------------------

TEST(TraceCapture, RecordsPerPacket) {
  TempDir dir;
  Scenario sc;
  const std::string path = dir.file("mixed.pcap");
  sc.pcap.write(path);
  TraceOutput out;
  std::string error;
  ASSERT_TRUE(ctlb::control::trace_capture(options(path), out, error)) << error;
  ASSERT_EQ(out.records.size(), sc.expect.size());
  for (std::size_t i = 0; i < sc.expect.size(); ++i) {
    const auto& r = out.records[i];
    const Expect& e = sc.expect[i];
    SCOPED_TRACE("packet " + std::to_string(i + 1));
    EXPECT_EQ(r.index, i + 1);
    EXPECT_EQ(r.tracked, !e.flow.empty());
    EXPECT_EQ(r.flow, e.flow);
    EXPECT_EQ(r.dir, e.dir);
    EXPECT_EQ(r.flags, e.flags);
    EXPECT_EQ(r.verdict, e.verdict);
    EXPECT_EQ(r.reason, e.reason);
    if (r.tracked) {
      EXPECT_EQ(ctlb::tcp::name(r.state), ctlb::tcp::name(e.state));
      EXPECT_EQ(ctlb::tcp::name(r.initiator), ctlb::tcp::name(e.initiator));
      EXPECT_EQ(ctlb::tcp::name(r.responder), ctlb::tcp::name(e.responder));
    }
  }
  EXPECT_DOUBLE_EQ(out.records[0].ts, 1'700'000'000.0);
  EXPECT_NEAR(out.records[1].ts, 1'700'000'000.001, 1e-6);
}

TEST(TraceCapture, SummaryCountsAndStuckFlows) {
  TempDir dir;
  Scenario sc;
  const std::string path = dir.file("mixed.pcap");
  sc.pcap.write(path);
  TraceOptions opts = options(path);
  opts.stuck_after_s = 30;
  TraceOutput out;
  std::string error;
  ASSERT_TRUE(ctlb::control::trace_capture(opts, out, error)) << error;
  const auto& s = out.summary;
  EXPECT_EQ(s.packets, sc.pcap.count());
  EXPECT_EQ(s.tcp_packets, sc.pcap.count() - 3);
  EXPECT_EQ(s.invalid, 2u);
  EXPECT_EQ(s.flows_created, 4u);
  EXPECT_FALSE(s.truncated);
  EXPECT_EQ(s.invalid_by_reason[static_cast<int>(ctlb::tcp::Reason::SeqOverWindow)], 1u);
  EXPECT_EQ(s.invalid_by_reason[static_cast<int>(ctlb::tcp::Reason::BadFlags)], 1u);
  EXPECT_EQ(s.parse[static_cast<int>(ctlb::packet::ParseResult::NonTcp)], 1u);
  EXPECT_EQ(s.parse[static_cast<int>(ctlb::packet::ParseResult::NotIp)], 1u);
  EXPECT_EQ(s.parse[static_cast<int>(ctlb::packet::ParseResult::Ipv4BadIhl)], 1u);
  std::uint64_t flows = 0;
  for (std::size_t i = 0; i < ctlb::tcp::kCtStateCount; ++i) flows += s.flows_by_state[i];
  EXPECT_EQ(flows, 4u);
  EXPECT_EQ(s.flows_by_state[static_cast<int>(CtState::TimeWait)], 1u);
  EXPECT_EQ(s.flows_by_state[static_cast<int>(CtState::CloseWait)], 1u);
  EXPECT_EQ(s.flows_by_state[static_cast<int>(CtState::SynSent)], 1u);
  EXPECT_EQ(s.flows_by_state[static_cast<int>(CtState::Close)], 1u);

  ASSERT_EQ(s.stuck.size(), 2u);
  const ctlb::control::TraceStuckFlow* cw = nullptr;
  const ctlb::control::TraceStuckFlow* half = nullptr;
  for (const auto& st : s.stuck) (st.kind == "close_wait" ? cw : half) = &st;
  ASSERT_NE(cw, nullptr);
  ASSERT_NE(half, nullptr);
  EXPECT_EQ(cw->flow, "10.0.0.9:40002 > 10.0.0.2:80");
  EXPECT_EQ(cw->holder, "responder");
  EXPECT_EQ(cw->state, "CLOSE_WAIT");
  EXPECT_EQ(cw->initiator, "FIN_WAIT_2");
  EXPECT_EQ(cw->responder, "CLOSE_WAIT");
  EXPECT_NEAR(cw->idle_s, 62.0 - 2.001, 0.002);
  EXPECT_EQ(half->kind, "half_open");
  EXPECT_EQ(half->flow, "10.0.0.3:50000 > 10.0.0.2:443");
  EXPECT_EQ(half->state, "SYN_SENT");
  EXPECT_NEAR(half->idle_s, 59.5, 0.002);

  // A higher threshold: nothing is stuck.
  opts.stuck_after_s = 61;
  TraceOutput later;
  ASSERT_TRUE(ctlb::control::trace_capture(opts, later, error)) << error;
  EXPECT_TRUE(later.summary.stuck.empty());
}

TEST(TraceCapture, MissingFileIsAOneLineError) {
  TempDir dir;
  TraceOutput out;
  std::string error;
  EXPECT_FALSE(ctlb::control::trace_capture(options(dir.file("nope.pcap")), out, error));
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_NE(error.find("nope.pcap"), std::string::npos) << error;
  EXPECT_TRUE(out.records.empty());
}

TEST(TraceCapture, NonPcapFileIsAOneLineError) {
  TempDir dir;
  const std::string path = dir.file("notes.pcap");
  std::ofstream(path) << "this is a text file, not a capture\nsecond line\n";
  TraceOutput out;
  std::string error;
  EXPECT_FALSE(ctlb::control::trace_capture(options(path), out, error));
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_TRUE(out.records.empty());
}

TEST(TraceCapture, NonEthernetLinkTypeIsAnError) {
  TempDir dir;
  Pcap raw(101);  // LINKTYPE_RAW
  Ipv4 ip;
  raw.add(kT0, ip.build(Tcp{}.build()));
  const std::string path = dir.file("raw.pcap");
  raw.write(path);
  TraceOutput out;
  std::string error;
  EXPECT_FALSE(ctlb::control::trace_capture(options(path), out, error));
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_FALSE(error.empty());
}

TEST(TraceCapture, TruncatedLastPacket) {
  TempDir dir;
  Pcap p;
  p.add(kT0, tcp_frame(kClient, 1234, kServer, 80, S, 10, 0));
  p.add(kT0 + 1000, tcp_frame(kServer, 80, kClient, 1234, S | A, 20, 11));
  p.add(kT0 + 2000, tcp_frame(kClient, 1234, kServer, 80, A, 11, 21));
  p.add(kT0 + 3000, tcp_frame(kClient, 1234, kServer, 80, P | A, 11, 21, 100));
  const std::string path = dir.file("cut.pcap");
  p.write(path, 30);  // the last record loses 30 of its 154 bytes
  TraceOutput out;
  std::string error;
  ASSERT_TRUE(ctlb::control::trace_capture(options(path), out, error)) << error;
  EXPECT_TRUE(out.summary.truncated);
  EXPECT_FALSE(out.summary.truncated_message.empty());
  ASSERT_EQ(out.records.size(), 3u);
  EXPECT_EQ(out.summary.packets, 3u);
  for (const auto& r : out.records) {
    EXPECT_TRUE(r.tracked);
    EXPECT_EQ(r.verdict, Verdict::Accept);
  }
  EXPECT_EQ(out.records[2].state, CtState::Established);
  EXPECT_EQ(out.summary.flows_by_state[static_cast<int>(CtState::Established)], 1u);

  // Cut inside the last record's header: the same.
  p.write(path, 154 + 8);
  TraceOutput out2;
  ASSERT_TRUE(ctlb::control::trace_capture(options(path), out2, error)) << error;
  EXPECT_TRUE(out2.summary.truncated);
  EXPECT_EQ(out2.records.size(), 3u);
}

TEST(TraceCapture, Ipv6AndVlanFlows) {
  TempDir dir;
  Pcap p;
  Tcp syn;
  syn.sport = 40000;
  syn.dport = 80;
  syn.seq = 1;
  syn.flags = S;
  Ipv6 ip6;  // 2001:db8::1 > 2001:db8::2
  p.add(kT0, tcp6_frame(syn, ip6, {{0x8100, 100}}));
  Tcp synack;
  synack.sport = 80;
  synack.dport = 40000;
  synack.seq = 1000;
  synack.ack = 2;
  synack.flags = S | A;
  Ipv6 back = ip6;
  std::swap(back.src, back.dst);
  p.add(kT0 + 10, tcp6_frame(synack, back, {{0x88A8, 7}, {0x8100, 100}}));
  const std::string path = dir.file("v6.pcap");
  p.write(path);
  TraceOutput out;
  std::string error;
  ASSERT_TRUE(ctlb::control::trace_capture(options(path), out, error)) << error;
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(out.records[0].flow, "[2001:db8::1]:40000 > [2001:db8::2]:80");
  EXPECT_EQ(out.records[1].flow, "[2001:db8::1]:40000 > [2001:db8::2]:80");
  EXPECT_EQ(out.records[1].dir, "reply");
  EXPECT_EQ(out.records[1].state, CtState::SynRecv);
  EXPECT_EQ(out.summary.flows_by_state[static_cast<int>(CtState::SynRecv)], 1u);
}

// ctlbctl's JSON is checked with the control socket's strict parser
// (control/json.hpp: rejects trailing commas, duplicate names, leading zeros).
using ctlb::control::Json;

// ---- the ctlbctl binary -------------------------------------------------------

struct CmdResult {
  int exit_code = -1;
  std::vector<std::string> out, err;
};

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> v;
  for (std::string line; std::getline(f, line);) v.push_back(line);
  return v;
}

CmdResult ctlbctl(const TempDir& dir, const std::string& args) {
  const std::string out = dir.file("stdout.txt"), err = dir.file("stderr.txt");
  const std::string cmd = std::string("'") + CTLBCTL_PATH + "' " + args + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  CmdResult r;
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.out = lines_of(out);
  r.err = lines_of(err);
  return r;
}

std::string field(const Json& j, const std::string& key) {
  if (!j.is_object()) return "<not an object>";
  const Json* v = j.get(key);
  if (!v) return "<missing>";
  if (v->is_string()) return v->as_string();
  return "<not a string>";
}

TEST(CtlbctlTrace, JsonLinesAndSummary) {
  TempDir dir;
  Scenario sc;
  const std::string path = dir.file("mixed.pcap");
  sc.pcap.write(path);
  const CmdResult r = ctlbctl(dir, "trace '" + path + "' --json");
  ASSERT_EQ(r.exit_code, 0) << (r.err.empty() ? "" : r.err[0]);
  EXPECT_TRUE(r.err.empty());
  ASSERT_EQ(r.out.size(), sc.expect.size() + 1);
  for (std::size_t i = 0; i < sc.expect.size(); ++i) {
    SCOPED_TRACE("line " + std::to_string(i + 1) + ": " + r.out[i]);
    const auto parsed = Json::parse(r.out[i]);
    ASSERT_TRUE(parsed);
    const Json& j = *parsed;
    ASSERT_TRUE(j.is_object());
    for (const char* k : {"index", "flow", "dir", "flags", "state", "initiator", "responder", "verdict", "reason"})
      EXPECT_TRUE(j.get(k)) << k;
    const Json* index = j.get("index");
    ASSERT_TRUE(index && index->is_number());
    EXPECT_EQ(index->as_number(), static_cast<double>(i + 1));
    const Expect& e = sc.expect[i];
    EXPECT_EQ(field(j, "flow"), e.flow);
    EXPECT_EQ(field(j, "dir"), e.dir);
    EXPECT_EQ(field(j, "flags"), e.flags);
    EXPECT_EQ(field(j, "verdict"), e.verdict == Verdict::Accept ? "accept" : "invalid");
    EXPECT_EQ(field(j, "reason"), e.reason);
    if (!e.flow.empty()) {
      EXPECT_EQ(field(j, "state"), ctlb::tcp::name(e.state));
      EXPECT_EQ(field(j, "initiator"), ctlb::tcp::name(e.initiator));
      EXPECT_EQ(field(j, "responder"), ctlb::tcp::name(e.responder));
    } else {
      EXPECT_EQ(field(j, "state"), "");
    }
  }
  const std::string& last = r.out.back();
  ASSERT_EQ(last.rfind("{\"summary\":", 0), 0u) << last;
  const auto sum = Json::parse(last);
  ASSERT_TRUE(sum) << last;
  const Json& s = *sum->get("summary");
  EXPECT_EQ(s.get("packets")->as_number(), static_cast<double>(sc.pcap.count()));
  EXPECT_EQ(s.get("flows")->as_number(), 4.0);
  EXPECT_EQ(s.get("truncated")->as_bool(), false);
  const Json& by_state = *s.get("flows_by_state");
  EXPECT_EQ(by_state.get("TIME_WAIT")->as_number(), 1.0);
  EXPECT_EQ(by_state.get("CLOSE_WAIT")->as_number(), 1.0);
  const Json::Array& stuck = s.get("stuck")->as_array();
  ASSERT_EQ(stuck.size(), 2u);
  bool found_close_wait = false;
  for (const Json& st : stuck) {
    if (field(st, "kind") != "close_wait") continue;
    found_close_wait = true;
    EXPECT_EQ(field(st, "holder"), "responder");
    EXPECT_EQ(field(st, "flow"), "10.0.0.9:40002 > 10.0.0.2:80");
  }
  EXPECT_TRUE(found_close_wait);
}

TEST(CtlbctlTrace, TextOutputAndSummaryOnly) {
  TempDir dir;
  Scenario sc;
  const std::string path = dir.file("mixed.pcap");
  sc.pcap.write(path);
  CmdResult r = ctlbctl(dir, "trace '" + path + "'");
  ASSERT_EQ(r.exit_code, 0);
  ASSERT_GT(r.out.size(), sc.expect.size());
  EXPECT_EQ(r.out[0], "#1 10.0.0.1:40001 > 10.0.0.2:80 orig S state=SYN_SENT initiator=SYN_SENT responder=LISTEN accept ok");
  r = ctlbctl(dir, "trace '" + path + "' --summary --json");
  ASSERT_EQ(r.exit_code, 0);
  ASSERT_EQ(r.out.size(), 1u);
  EXPECT_EQ(r.out[0].rfind("{\"summary\":", 0), 0u);
  EXPECT_TRUE(Json::parse(r.out[0])) << r.out[0];
}

TEST(CtlbctlTrace, TruncatedCaptureWarnsAndSucceeds) {
  TempDir dir;
  Pcap p;
  p.add(kT0, tcp_frame(kClient, 1234, kServer, 80, S, 10, 0));
  p.add(kT0 + 1000, tcp_frame(kServer, 80, kClient, 1234, S | A, 20, 11));
  const std::string path = dir.file("cut.pcap");
  p.write(path, 10);
  const CmdResult r = ctlbctl(dir, "trace '" + path + "' --json");
  EXPECT_EQ(r.exit_code, 0);
  ASSERT_EQ(r.out.size(), 2u);
  const auto j = Json::parse(r.out[1]);
  ASSERT_TRUE(j) << r.out[1];
  EXPECT_EQ(j->get("summary")->get("truncated")->as_bool(), true);
  EXPECT_EQ(r.err.size(), 1u);
}

TEST(CtlbctlTrace, MissingFileExitsOneWithOneStderrLine) {
  TempDir dir;
  const CmdResult r = ctlbctl(dir, "trace '" + dir.file("missing.pcap") + "' --json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.size(), 1u);
  EXPECT_TRUE(r.out.empty());
}

TEST(CtlbctlTrace, UnknownOptionExitsTwo) {
  TempDir dir;
  Scenario sc;
  const std::string path = dir.file("mixed.pcap");
  sc.pcap.write(path);
  CmdResult r = ctlbctl(dir, "trace '" + path + "' --bogus");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(r.err.empty());
  EXPECT_TRUE(r.out.empty());
  r = ctlbctl(dir, "trace");
  EXPECT_EQ(r.exit_code, 2);
  r = ctlbctl(dir, "frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  r = ctlbctl(dir, "trace '" + path + "' --stuck-after abc");
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
