// The control process's pure parts: the JSON reader/writer of the control
// socket, and the queries (flows, stuck, stats, Prometheus) over flow tables
// and a shared header, here on the heap.
#include <gtest/gtest.h>

#include <memory>

#include "control/json.hpp"
#include "control/api.hpp"
#include "control/format.hpp"
#include "control/query.hpp"
#include "dataplane/common/bytes.hpp"
#include "dataplane/flow/tracker.hpp"
#include "table_util.hpp"

namespace {

using ctlb::control::Json;
namespace tf = ctlb::packet::tcpflag;

TEST(Json, RoundTrip) {
  const std::string text = R"({"a":[1,2.5,"x\"y",true,false,null],"b":{"c":-3}})";
  auto j = Json::parse(text);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->dump(), text);
  EXPECT_EQ(j->get("b")->get("c")->as_number(), -3);
  EXPECT_EQ(j->get("a")->as_array()[2].as_string(), "x\"y");
  EXPECT_EQ(j->get("missing"), nullptr);
  EXPECT_TRUE(Json::parse(R"({"a":[1,2.5,-3e2,{"b":null}],"c":"x\"y","d":true})"));
  EXPECT_EQ(Json::parse("-0.5e1")->as_number(), -5);
  EXPECT_EQ(Json::parse("0")->as_number(), 0);
}

TEST(Json, UnicodeEscapes) {
  auto j = Json::parse(R"("caf\u00e9 \u2713")");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->as_string(), "caf\xc3\xa9 \xe2\x9c\x93");
}

TEST(Json, RejectsMalformedWithOffset) {
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "tru", "\"abc", "{\"a\":1}x", "01x", "[\"\x01\"]",
                          R"({"a":1,})", R"({"a":1 "b":2})", R"({"a":nan})", R"({a:1})", R"({"a":01})",
                          R"({"a":1,"a":2})"}) {
    std::string err;
    EXPECT_FALSE(Json::parse(bad, &err)) << bad;
    EXPECT_NE(err.find("at byte"), std::string::npos) << bad << ": " << err;
  }
  std::string deep(100, '[');
  EXPECT_FALSE(Json::parse(deep));
}

// A tracker on heap tables plus a heap header that claims one worker.
struct Fixture {
  ctlb_test::HeapTable<ctlb::flow::V4> t4{1024};
  ctlb_test::HeapTable<ctlb::flow::V6> t6{64};
  ctlb::flow::Tracker tracker{t4.table, t6.table, ctlb::tcp::Config{}};
  std::unique_ptr<ctlb::shm::Header> header = std::make_unique<ctlb::shm::Header>();
  ctlb::control::View view;

  Fixture() {
    header->worker_count = 1;
    header->port_count = 1;
    std::snprintf(header->port_names[0], ctlb::shm::kNameLen, "west");
    view.header = header.get();
    view.workers.push_back({t4.table, t6.table});
    view.timeouts = ctlb::tcp::default_timeouts();
  }

  void seg(std::uint16_t client_port, bool from_client, std::uint8_t flags, std::uint32_t seq, std::uint32_t ack,
           std::uint64_t now_ms) {
    ctlb::packet::PacketView v;
    v.family = ctlb::packet::IpFamily::V4;
    ctlb::store_be32(from_client ? v.src : v.dst, 0xC6120102);
    ctlb::store_be32(from_client ? v.dst : v.src, 0xC6120202);
    v.sport = from_client ? client_port : 80;
    v.dport = from_client ? 80 : client_port;
    v.flags = flags;
    v.seq = seq;
    v.ack = ack;
    v.window = 500;
    v.header_len = 20;
    tracker.track(v, ctlb::flow::Clock{now_ms});
    header->counters[0].tracker = tracker.counters();
  }

  // Handshake, then the client closes and the server never does: CLOSE_WAIT.
  void half_closed(std::uint16_t port, std::uint64_t t) {
    seg(port, true, tf::kSyn, 100, 0, t);
    seg(port, false, tf::kSyn | tf::kAck, 900, 101, t);
    seg(port, true, tf::kAck, 101, 901, t);
    seg(port, true, tf::kFin | tf::kAck, 101, 901, t);
    seg(port, false, tf::kAck, 901, 102, t);
  }
  void established(std::uint16_t port, std::uint64_t t) {
    seg(port, true, tf::kSyn, 100, 0, t);
    seg(port, false, tf::kSyn | tf::kAck, 900, 101, t);
    seg(port, true, tf::kAck, 101, 901, t);
  }
};

TEST(Query, FlowsFilterByStateEndpointAgePortAndLimit) {
  Fixture f;
  f.half_closed(40001, 1'000);
  f.half_closed(40002, 1'000);
  f.established(40003, 50'000);
  ctlb::control::FlowFilter all;
  EXPECT_EQ(ctlb::control::query_flows(f.view, all, 60'000).get("matched")->as_number(), 3);

  ctlb::control::FlowFilter cw;
  cw.state = ctlb::tcp::CtState::CloseWait;
  Json r = ctlb::control::query_flows(f.view, cw, 60'000);
  ASSERT_EQ(r.get("flows")->as_array().size(), 2u);
  const Json& row = r.get("flows")->as_array()[0];
  EXPECT_EQ(row.get("state")->as_string(), "CLOSE_WAIT");
  EXPECT_EQ(row.get("initiator")->as_string(), "FIN_WAIT_2");
  EXPECT_EQ(row.get("responder")->as_string(), "CLOSE_WAIT");
  EXPECT_EQ(row.get("flow")->as_string().rfind("198.18.1.2:4000", 0), 0u);
  EXPECT_EQ(row.get("age_s")->as_number(), 59);
  EXPECT_EQ(row.get("idle_s")->as_number(), 59);

  ctlb::control::FlowFilter resp;
  resp.responder = ctlb::tcp::EpState::Established;
  EXPECT_EQ(ctlb::control::query_flows(f.view, resp, 60'000).get("matched")->as_number(), 1);

  ctlb::control::FlowFilter old;
  old.older_than_s = 30;
  EXPECT_EQ(ctlb::control::query_flows(f.view, old, 60'000).get("matched")->as_number(), 2);

  ctlb::control::FlowFilter port;
  port.port = 40003;
  EXPECT_EQ(ctlb::control::query_flows(f.view, port, 60'000).get("matched")->as_number(), 1);

  ctlb::control::FlowFilter one;
  one.limit = 1;
  Json lim = ctlb::control::query_flows(f.view, one, 60'000);
  EXPECT_EQ(lim.get("flows")->as_array().size(), 1u);
  EXPECT_TRUE(lim.get("truncated")->as_bool());
}

TEST(Query, StuckFindsCloseWaitWithTheHolder) {
  Fixture f;
  f.half_closed(40001, 1'000);
  f.established(40003, 1'000);
  Json r = ctlb::control::query_stuck(f.view, 30, 60'000, 100);
  ASSERT_EQ(r.get("stuck")->as_array().size(), 1u);
  const Json& s = r.get("stuck")->as_array()[0];
  EXPECT_EQ(s.get("kind")->as_string(), "close_wait");
  EXPECT_EQ(s.get("holder")->as_string(), "responder");
  // Not idle long enough yet: nothing.
  EXPECT_EQ(ctlb::control::query_stuck(f.view, 30, 20'000, 100).get("stuck")->as_array().size(), 0u);
}

TEST(Query, StatsAndPrometheusAgree) {
  Fixture f;
  f.established(40003, 1'000);
  f.header->counters[0].ports[0].rx_packets = 7;
  Json s = ctlb::control::query_stats(f.view, {{"ager_scans", 4}});
  EXPECT_EQ(s.get("stats")->get("tcp_packets")->as_number(), 3);
  EXPECT_EQ(s.get("stats")->get("flows_ESTABLISHED")->as_number(), 1);
  EXPECT_EQ(s.get("stats")->get("port_west_rx_packets")->as_number(), 7);
  EXPECT_EQ(s.get("stats")->get("ager_scans")->as_number(), 4);
  const std::string text = ctlb::control::prometheus_text(f.view, {{"ager_scans", 4}});
  EXPECT_NE(text.find("# TYPE ctlb_tcp_packets_total counter\nctlb_tcp_packets_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("ctlb_flows{state=\"ESTABLISHED\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ctlb_port_rx_packets_total{port=\"west\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("ctlb_ager_scans_total 4\n"), std::string::npos);
  EXPECT_NE(text.find("# HELP ctlb_invalid_total "), std::string::npos);
  // Every sample line is preceded by its HELP and TYPE.
  std::size_t samples = 0, types = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    const std::string line = text.substr(pos, nl - pos);
    if (line.rfind("# TYPE ", 0) == 0) ++types;
    else if (line.rfind("ctlb_", 0) == 0) ++samples;
    else EXPECT_EQ(line.rfind("# HELP ", 0), 0u) << line;
    pos = nl + 1;
  }
  EXPECT_GT(samples, types);
  EXPECT_GT(types, 20u);
}

}  // namespace

namespace {

std::string api(const Fixture& f, const std::string& line) {
  return ctlb::control::handle_api(line, f.view, {}, 60'000);
}

TEST(Api, AnswersAndValidates) {
  Fixture f;
  f.half_closed(40001, 1'000);
  auto ok = Json::parse(api(f, R"({"cmd":"flows","state":"CLOSE_WAIT","responder":"CLOSE_WAIT","limit":5})"));
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->get("ok")->as_bool());
  EXPECT_EQ(ok->get("flows")->as_array().size(), 1u);
  auto stuck = Json::parse(api(f, R"({"cmd":"stuck","threshold_s":30})"));
  EXPECT_EQ(stuck->get("stuck")->as_array().size(), 1u);
  auto stats = Json::parse(api(f, R"({"cmd":"stats"})"));
  EXPECT_EQ(stats->get("stats")->get("flows_created")->as_number(), 1);
  EXPECT_TRUE(Json::parse(api(f, R"({"cmd":"ping"})"))->get("ok")->as_bool());

  const std::pair<const char*, const char*> bad[] = {
      {"not json", "request is not valid JSON: expected a value at byte 0"},
      {"[1]", "request must be a JSON object"},
      {R"({"x":1})", "request needs \"cmd\": ping, stats, flows, stuck, lb, neighbours, backend or reload"},
      {R"({"cmd":"drop"})", "unknown cmd 'drop' (expected ping, stats, flows, stuck, lb, neighbours, backend or reload)"},
      {R"({"cmd":"stats","verbose":true})", "unknown field \"verbose\""},
      {R"({"cmd":"flows","state":"HALF_OPEN"})",
       "unknown state 'HALF_OPEN' (expected one of: SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, "
       "TIME_WAIT, CLOSE, SYN_SENT2)"},
      {R"({"cmd":"flows","port":70000})", "\"port\" must be an integer in 0..65535"},
      {R"({"cmd":"flows","limit":-1})", "\"limit\" must be an integer in 0..100000"},
      {R"({"cmd":"flows","backend":"198.18.2.11:8080"})", "\"vip\" and \"backend\" need the dataplane in mode lb"},
      {R"({"cmd":"stuck","vip":"web"})", "\"vip\" and \"backend\" need the dataplane in mode lb"},
      {R"({"cmd":"stuck","threshold_s":"60"})", "\"threshold_s\" must be an integer in 0..8640000"},
  };
  for (const auto& [req, message] : bad) {
    auto a = Json::parse(api(f, req));
    ASSERT_TRUE(a) << req;
    EXPECT_FALSE(a->get("ok")->as_bool()) << req;
    EXPECT_EQ(a->get("error")->as_string(), message) << req;
  }
}

}  // namespace

namespace {

TEST(Query, TransitionsAndHandshakeTiming) {
  Fixture f;
  f.seg(40010, true, tf::kSyn, 100, 0, 1'000);
  f.seg(40010, false, tf::kSyn | tf::kAck, 900, 101, 1'015);  // 15 ms: bucket "< 20 ms"
  f.seg(40010, true, tf::kAck, 101, 901, 1'018);              // 3 ms: bucket "< 5 ms"
  const auto& c = f.tracker.counters();
  using ctlb::tcp::CtState;
  EXPECT_EQ(c.transitions[static_cast<int>(CtState::None)][static_cast<int>(CtState::SynSent)], 1u);
  EXPECT_EQ(c.transitions[static_cast<int>(CtState::SynSent)][static_cast<int>(CtState::SynRecv)], 1u);
  EXPECT_EQ(c.transitions[static_cast<int>(CtState::SynRecv)][static_cast<int>(CtState::Established)], 1u);
  EXPECT_EQ(c.syn_to_synack[ctlb::flow::handshake_bucket(15)], 1u);
  EXPECT_EQ(ctlb::flow::handshake_bucket(15), 4u);
  EXPECT_EQ(c.synack_to_ack[2], 1u);
  const std::string text = ctlb::control::prometheus_text(f.view, {});
  EXPECT_NE(text.find("ctlb_state_transitions_total{from=\"SYN_SENT\",to=\"SYN_RECV\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE ctlb_handshake_syn_synack_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("ctlb_handshake_syn_synack_seconds_bucket{le=\"0.01\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("ctlb_handshake_syn_synack_seconds_bucket{le=\"0.02\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ctlb_handshake_syn_synack_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ctlb_handshake_syn_synack_seconds_sum 0.015\n"), std::string::npos);
  EXPECT_NE(text.find("ctlb_handshake_synack_ack_seconds_count 1\n"), std::string::npos);
}

}  // namespace

namespace {

// ctlbctl lb's SYN-ACK p99: the bound of the bucket that reaches 99 % of the
// handshakes (buckets: <1, <2, <5, <10, <20, <50, <100, <200, <500, <1000,
// <3000 ms, >=3000 ms).
TEST(Format, HandshakeP99IsTheBucketThatReaches99Percent) {
  using ctlb::control::format_handshake_p99;
  std::vector<std::uint64_t> h(ctlb::flow::kHandshakeBuckets, 0);
  EXPECT_EQ(format_handshake_p99(h), "-");                              // none yet
  EXPECT_EQ(format_handshake_p99(std::vector<std::uint64_t>(3, 1)), "-");  // not a histogram of ours
  h[0] = 1;
  EXPECT_EQ(format_handshake_p99(h), "<1 ms");
  h[0] = 99;
  h[7] = 1;  // 1 in 100 took 100..199 ms: within 99 %, the first bucket still holds
  EXPECT_EQ(format_handshake_p99(h), "<1 ms");
  h[7] = 2;  // 2 in 101: 99 % needs 100, the first bucket holds 99
  EXPECT_EQ(format_handshake_p99(h), "<200 ms");
  h[7] = 0;
  h[10] = 50;  // a SYN dropped and retransmitted: 1..3 s
  EXPECT_EQ(format_handshake_p99(h), "<3 s");
  h[10] = 0;
  h[11] = 2;
  EXPECT_EQ(format_handshake_p99(h), ">=3 s");
  h[9] = 1000;  // 99 % of 1101 is 1090: reached within 500..999 ms
  EXPECT_EQ(format_handshake_p99(h), "<1 s");
}

}  // namespace
