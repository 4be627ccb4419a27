// The malformed-packet corpus through the real parser, each frame from a
// heap buffer of exactly its size: every header truncated at every byte,
// every value of every length field, loops and overruns of IPv6 extension
// headers, zero-length and jumbo frames, Ethernet padding, TCP options.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "corpus.hpp"
#include "dataplane/flow/tracker.hpp"
#include "tests/unit/table_util.hpp"

namespace {

using namespace ctlb_malformed;
using ctlb::packet::PacketView;

// The counter names are an interface (ctlbctl stats, Prometheus, the final
// counters): spelled out here, not taken from the list that generates them.
const std::map<ParseResult, std::string> kCounterName = {
    {ParseResult::Tcp, "tcp"},
    {ParseResult::NotIp, "not_ip"},
    {ParseResult::NonTcp, "non_tcp"},
    {ParseResult::IpFragment, "ip_fragment"},
    {ParseResult::EthTruncated, "eth_truncated"},
    {ParseResult::VlanTruncated, "vlan_truncated"},
    {ParseResult::VlanTooDeep, "vlan_too_deep"},
    {ParseResult::Ipv4Truncated, "ipv4_truncated"},
    {ParseResult::Ipv4BadVersion, "ipv4_bad_version"},
    {ParseResult::Ipv4BadIhl, "ipv4_bad_ihl"},
    {ParseResult::Ipv4HeaderOverrun, "ipv4_header_overrun"},
    {ParseResult::Ipv4TotalLenTooSmall, "ipv4_total_len_too_small"},
    {ParseResult::Ipv4TotalLenOverrun, "ipv4_total_len_overrun"},
    {ParseResult::Ipv6Truncated, "ipv6_truncated"},
    {ParseResult::Ipv6BadVersion, "ipv6_bad_version"},
    {ParseResult::Ipv6PayloadOverrun, "ipv6_payload_overrun"},
    {ParseResult::Ipv6ExtTruncated, "ipv6_ext_truncated"},
    {ParseResult::Ipv6ExtTooMany, "ipv6_ext_too_many"},
    {ParseResult::TcpTruncated, "tcp_truncated"},
    {ParseResult::TcpBadDataOffset, "tcp_bad_data_offset"},
    {ParseResult::TcpDataOffsetOverrun, "tcp_data_offset_overrun"},
};

std::string counter(ParseResult r) { return std::string(ctlb::packet::name(r)); }

TEST(MalformedCorpus, CounterNamesAndClasses) {
  ASSERT_EQ(ctlb::packet::kParseResultCount, kCounterName.size()) << "a parse result without a corpus entry";
  for (const auto& [r, name] : kCounterName) {
    EXPECT_EQ(counter(r), name);
    const bool well_formed = r == ParseResult::Tcp || r == ParseResult::NotIp || r == ParseResult::NonTcp ||
                             r == ParseResult::IpFragment;
    EXPECT_EQ(ctlb::packet::is_malformed(r), !well_formed) << name;
  }
}

// Every case: the exact result, its counter, and for TCP the payload length.
// The frame then goes where the worker sends it: its result counted, the
// tracker only for a TCP segment.
TEST(MalformedCorpus, EveryFrameGetsItsReason) {
  const std::vector<Case> cases = corpus();
  ctlb_test::HeapTable<ctlb::flow::V4> t4(4096);
  ctlb_test::HeapTable<ctlb::flow::V6> t6(1024);
  ctlb::flow::Tracker tracker(t4.table, t6.table, ctlb::tcp::Config{});
  std::array<std::uint64_t, ctlb::packet::kParseResultCount> want_counts{};
  std::uint64_t tcp = 0;
  int failures = 0;
  for (const Case& c : cases) {
    PacketView v;
    const ParseResult r = parse_exact(c, v);
    ++want_counts[static_cast<std::size_t>(c.want)];
    const bool ok = r == c.want && (c.want != ParseResult::Tcp || c.payload == kUnchecked ||
                                    static_cast<long>(v.payload_len) == c.payload);
    if (!ok && ++failures <= 40)
      ADD_FAILURE() << c.name << " (" << c.frame.size() << " bytes at hand, " << c.wire << " on the wire): got "
                    << counter(r) << " payload " << v.payload_len << ", want " << kCounterName.at(c.want)
                    << " payload " << c.payload;
    tracker.count_parse(r);
    if (r == ParseResult::Tcp) {
      tracker.track(v, ctlb::flow::Clock{1000});
      ++tcp;
    }
  }
  EXPECT_EQ(failures, 0) << "of " << cases.size() << " cases";
  for (std::size_t i = 0; i < ctlb::packet::kParseResultCount; ++i)
    EXPECT_EQ(tracker.counters().parse[i], want_counts[i]) << ctlb::packet::kParseResultNames[i];
  EXPECT_EQ(tracker.counters().tcp_packets, tcp) << "only TCP segments reach the state machine";
}

TEST(MalformedCorpus, CoversEveryReason) {
  std::map<ParseResult, int> seen;
  const std::vector<Case> cases = corpus();
  for (const Case& c : cases) ++seen[c.want];
  for (const auto& [r, name] : kCounterName) EXPECT_GT(seen[r], 0) << name << " has no case";
  std::string summary;
  for (const auto& [r, n] : seen) summary += " " + kCounterName.at(r) + "=" + std::to_string(n);
  std::printf("malformed corpus: %zu frames:%s\n", cases.size(), summary.c_str());
}

// The model the sweeps use must describe the frames the builder makes.
TEST(MalformedCorpus, ShapeLayoutsMatchTheFrames) {
  for (const Shape& s : shapes()) {
    const Layout l = layout(s);
    const Bytes f = s.build();
    EXPECT_EQ(l.size, f.size()) << s.name;
    PacketView v;
    ASSERT_EQ(parse_exact(Case{s.name, f, f.size(), ParseResult::Tcp}, v), ParseResult::Tcp) << s.name;
    EXPECT_EQ(v.l3_offset, l.l3) << s.name;
    EXPECT_EQ(v.l4_offset, l.l4) << s.name;
    EXPECT_EQ(v.header_len, l.tcp_hdr) << s.name;
    EXPECT_EQ(v.payload_len, l.payload) << s.name;
  }
}

// ---- TCP options ------------------------------------------------------------

void expect_options(const OptionCase& oc, const PacketView& v, const char* family) {
  SCOPED_TRACE(std::string(family) + " " + oc.name);
  EXPECT_EQ(v.options.malformed, oc.malformed);
  EXPECT_EQ(v.options.has_mss, oc.mss != kUnchecked);
  if (oc.mss != kUnchecked) {
    EXPECT_EQ(v.options.mss, oc.mss);
  }
  EXPECT_EQ(v.options.has_wscale, oc.wscale != kUnchecked);
  if (oc.wscale != kUnchecked) {
    EXPECT_EQ(v.options.wscale, oc.wscale);
  }
  EXPECT_EQ(v.options.sack_permitted, oc.sack_permitted);
  EXPECT_EQ(v.options.sack_blocks, oc.sack_blocks);
}

// Bad options stop option parsing (as in Linux's tcp_options()); the segment
// is still TCP, tracked with what was read before the bad option.
TEST(MalformedOptions, EachCase) {
  for (const OptionCase& oc : option_cases()) {
    Tcp t = syn_with(oc.options, 5);
    const std::size_t hdr = 20 + (oc.options.size() + 3) / 4 * 4;
    for (bool v6 : {false, true}) {
      const Bytes f = v6 ? tcp6_frame(t) : tcp4_frame(t);
      const Case c{oc.name, f, f.size(), ParseResult::Tcp};
      PacketView v;
      ASSERT_EQ(counter(parse_exact(c, v)), "tcp") << oc.name;
      EXPECT_EQ(v.header_len, hdr) << oc.name;
      EXPECT_EQ(v.payload_len, 5u) << oc.name;
      expect_options(oc, v, v6 ? "ipv6" : "ipv4");
    }
  }
}

// The 40-byte option area of full_options() behind every shorter data
// offset: options cut by the header end are malformed exactly when one
// straddles it; what lies past the header is payload.
TEST(MalformedOptions, EveryDataOffsetOverTheOptions) {
  const std::vector<OptionPiece> pieces = full_option_pieces();
  for (int words = 5; words <= 15; ++words) {
    const std::size_t area = static_cast<std::size_t>(words) * 4 - 20;
    Tcp t = syn_with(full_options(), 6);
    t.data_offset_words = words;
    const Bytes f = tcp4_frame(t);
    const Case c{"doff", f, f.size(), ParseResult::Tcp};
    PacketView v;
    ASSERT_EQ(counter(parse_exact(c, v)), "tcp") << words;
    EXPECT_EQ(v.header_len, 20 + area);
    EXPECT_EQ(v.payload_len, 6 + 40 - area);
    bool straddles = false;
    auto inside = [&](std::uint8_t kind) {
      for (const OptionPiece& p : pieces)
        if (p.kind == kind) return p.at + p.len <= area;
      return false;
    };
    for (const OptionPiece& p : pieces) straddles |= p.at < area && area < p.at + p.len;
    SCOPED_TRACE("option area " + std::to_string(area));
    EXPECT_EQ(v.options.malformed, straddles);
    EXPECT_EQ(v.options.has_mss, inside(2));
    EXPECT_EQ(v.options.has_wscale, inside(3));
    EXPECT_EQ(v.options.sack_permitted, inside(4));
    EXPECT_EQ(v.options.sack_blocks, inside(5) ? 2 : 0);
  }
}

}  // namespace
