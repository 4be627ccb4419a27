// packet::parse_frame() on frames built byte by byte (frame_builder.hpp).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>

#include "dataplane/packet/parse.hpp"
#include "frame_builder.hpp"
#include "view_compare.hpp"

namespace {

using namespace ctlb_test;
using ctlb::packet::Fragment;
using ctlb::packet::IpFamily;
using ctlb::packet::PacketView;
using ctlb::packet::ParseResult;
namespace tf = ctlb::packet::tcpflag;

ParseResult parse(const Bytes& f, PacketView& v) { return ctlb::packet::parse_frame(f.data(), f.size(), v); }

ParseResult parse(const Bytes& f) {
  PacketView v;
  return parse(f, v);
}

// Parses from a heap buffer of exactly `len` bytes, so that a sanitizer or
// valgrind catches any read past the end.
ParseResult parse_exact(const Bytes& f, std::size_t len, PacketView& v) {
  std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[len == 0 ? 1 : len]);
  if (len) std::memcpy(buf.get(), f.data(), len);
  const std::uint8_t* p = len == 0 ? nullptr : buf.get();
  return ctlb::packet::parse_frame(p, len, v);
}

std::string rname(ParseResult r) { return std::string(ctlb::packet::name(r)); }

#define EXPECT_PARSE(frame, expected) EXPECT_EQ(rname(parse(frame)), rname(expected))

// A SYN with every option the parser understands, ECE and CWR set.
Tcp rich_syn() {
  Tcp t;
  t.sport = 43210;
  t.dport = 443;
  t.seq = 0xfedcba98;
  t.ack = 0x01020304;
  t.flags = tf::kSyn | tf::kEce | tf::kCwr;
  t.window = 64240;
  Bytes o = opt_mss(1460);
  append(o, opt_sack_perm());
  append(o, opt_timestamp(111, 0));
  append(o, opt_nop());
  append(o, opt_wscale(7));
  t.options = o;  // 4 + 2 + 10 + 1 + 3 = 20 bytes
  return t;
}

// ---- good frames ------------------------------------------------------------

TEST(ParseGood, Ipv4TcpEveryField) {
  Tcp t = rich_syn();
  t.payload_len = 0;
  Ipv4 ip;
  ip.ttl = 57;
  const Bytes f = tcp4_frame(t, ip);
  ASSERT_EQ(f.size(), 14u + 20 + 40);
  PacketView v;
  ASSERT_EQ(parse(f, v), ParseResult::Tcp);
  EXPECT_EQ(v.ether_type, 0x0800);
  EXPECT_EQ(v.vlan_count, 0);
  EXPECT_EQ(v.family, IpFamily::V4);
  EXPECT_EQ(v.fragment, Fragment::None);
  EXPECT_EQ(v.l4_proto, 6);
  EXPECT_EQ(v.ttl, 57);
  EXPECT_EQ(v.l3_offset, 14);
  EXPECT_EQ(v.l4_offset, 34);
  EXPECT_EQ(v.l4_len, 40u);
  const std::uint8_t src[4] = {10, 0, 0, 1}, dst[4] = {10, 0, 0, 2};
  EXPECT_EQ(std::memcmp(v.src, src, 4), 0);
  EXPECT_EQ(std::memcmp(v.dst, dst, 4), 0);
  EXPECT_EQ(v.sport, 43210);
  EXPECT_EQ(v.dport, 443);
  EXPECT_EQ(v.seq, 0xfedcba98u);
  EXPECT_EQ(v.ack, 0x01020304u);
  EXPECT_EQ(v.window, 64240);
  EXPECT_EQ(v.flags, tf::kSyn | tf::kEce | tf::kCwr);
  EXPECT_TRUE(v.has(tf::kSyn));
  EXPECT_TRUE(v.has(tf::kEce));
  EXPECT_TRUE(v.has(tf::kCwr));
  EXPECT_FALSE(v.has(tf::kAck));
  EXPECT_EQ(v.header_len, 40);
  EXPECT_EQ(v.payload_len, 0u);
  EXPECT_TRUE(v.options.has_mss);
  EXPECT_EQ(v.options.mss, 1460);
  EXPECT_TRUE(v.options.has_wscale);
  EXPECT_EQ(v.options.wscale, 7);
  EXPECT_TRUE(v.options.sack_permitted);
  EXPECT_EQ(v.options.sack_blocks, 0);
  EXPECT_FALSE(v.options.malformed);
}

TEST(ParseGood, EveryFlagBitReported) {
  for (int f = 0; f < 256; ++f) {
    Tcp t;
    t.flags = static_cast<std::uint8_t>(f);
    PacketView v;
    ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
    EXPECT_EQ(v.flags, f);
  }
}

TEST(ParseGood, PayloadLengthFromIpNotFromEthernetPadding) {
  // A bare ACK is 54 bytes; on the wire it is padded to 60.
  Tcp t;
  t.flags = tf::kAck;
  const Bytes f = tcp4_frame(t, Ipv4{}, {}, 60);
  ASSERT_EQ(f.size(), 60u);
  PacketView v;
  ASSERT_EQ(parse(f, v), ParseResult::Tcp);
  EXPECT_EQ(v.l4_len, 20u);
  EXPECT_EQ(v.header_len, 20);
  EXPECT_EQ(v.payload_len, 0u);

  // Same with a 3-byte payload and padding after it.
  t.payload_len = 3;
  const Bytes g = tcp4_frame(t, Ipv4{}, {}, 64);
  ASSERT_EQ(parse(g, v), ParseResult::Tcp);
  EXPECT_EQ(v.payload_len, 3u);
}

// A chained mbuf or a snaplen-limited capture: only the first bytes are at
// hand, the lengths describe the whole frame.
TEST(ParseGood, HeadersAtHandPayloadOnTheWire) {
  Tcp t;
  t.payload_len = 1000;
  const Bytes f = tcp4_frame(t);
  const Bytes head(f.begin(), f.begin() + 54);  // Ethernet + IPv4 + TCP headers
  PacketView v;
  ASSERT_EQ(parse_frame(head.data(), head.size(), f.size(), v), ParseResult::Tcp);
  EXPECT_EQ(v.payload_len, 1000u);
  // Without the wire length the same bytes are a truncated frame.
  EXPECT_EQ(parse_frame(head.data(), head.size(), v), ParseResult::Ipv4TotalLenOverrun);
  // Headers must be at hand: cut inside the TCP header it is truncated.
  const Bytes cut(f.begin(), f.begin() + 44);
  EXPECT_EQ(parse_frame(cut.data(), cut.size(), f.size(), v), ParseResult::TcpTruncated);
  // The wire length does not excuse an IP length past the frame.
  EXPECT_EQ(parse_frame(head.data(), head.size(), f.size() - 1, v), ParseResult::Ipv4TotalLenOverrun);
}

TEST(ParseGood, Ipv4WithOptions) {
  Tcp t;
  t.payload_len = 100;
  Ipv4 ip;
  ip.ihl_words = 15;  // 40 bytes of IP options
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t, ip), v), ParseResult::Tcp);
  EXPECT_EQ(v.l4_offset, 14 + 60);
  EXPECT_EQ(v.l4_len, 120u);
  EXPECT_EQ(v.sport, 40000);
  EXPECT_EQ(v.payload_len, 100u);
}

TEST(ParseGood, Ipv4DontFragmentIsNotAFragment) {
  Tcp t;
  Ipv4 ip;
  ip.frag_field = 0x4000;  // DF only
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t, ip), v), ParseResult::Tcp);
  EXPECT_EQ(v.fragment, Fragment::None);
  ip.frag_field = 0;
  ASSERT_EQ(parse(tcp4_frame(t, ip), v), ParseResult::Tcp);
  EXPECT_EQ(v.fragment, Fragment::None);
}

TEST(ParseGood, Ipv6TcpEveryField) {
  Tcp t = rich_syn();
  t.flags = tf::kSyn | tf::kAck | tf::kEce;
  t.payload_len = 7;
  Ipv6 ip;
  ip.hop_limit = 33;
  PacketView v;
  const Bytes f = tcp6_frame(t, ip);
  ASSERT_EQ(parse(f, v), ParseResult::Tcp);
  EXPECT_EQ(v.ether_type, 0x86DD);
  EXPECT_EQ(v.family, IpFamily::V6);
  EXPECT_EQ(v.fragment, Fragment::None);
  EXPECT_EQ(v.ttl, 33);
  EXPECT_EQ(v.l4_proto, 6);
  EXPECT_EQ(v.l3_offset, 14);
  EXPECT_EQ(v.l4_offset, 54);
  EXPECT_EQ(v.l4_len, 47u);
  EXPECT_EQ(std::memcmp(v.src, ip.src, 16), 0);
  EXPECT_EQ(std::memcmp(v.dst, ip.dst, 16), 0);
  EXPECT_EQ(v.sport, 43210);
  EXPECT_EQ(v.dport, 443);
  EXPECT_EQ(v.seq, 0xfedcba98u);
  EXPECT_EQ(v.ack, 0x01020304u);
  EXPECT_EQ(v.flags, tf::kSyn | tf::kAck | tf::kEce);
  EXPECT_EQ(v.header_len, 40);
  EXPECT_EQ(v.payload_len, 7u);
  EXPECT_EQ(v.options.mss, 1460);
  EXPECT_EQ(v.options.wscale, 7);
  EXPECT_TRUE(v.options.sack_permitted);
}

TEST(ParseGood, Ipv6ExtensionHeadersSkipped) {
  Tcp t;
  t.sport = 1234;
  t.payload_len = 5;
  Ipv6 ip;
  ip.exts = {Ext{0, 0}, Ext{43, 1}, Ext{60, 2}};  // 8 + 16 + 24 = 48 bytes
  PacketView v;
  ASSERT_EQ(parse(tcp6_frame(t, ip), v), ParseResult::Tcp);
  EXPECT_EQ(v.l4_offset, 14 + 40 + 48);
  EXPECT_EQ(v.l4_len, 25u);
  EXPECT_EQ(v.sport, 1234);
  EXPECT_EQ(v.payload_len, 5u);

  // Exactly 8 extension headers is the limit, and still parses.
  ip.exts.assign(8, Ext{60, 0});
  ASSERT_EQ(parse(tcp6_frame(t, ip), v), ParseResult::Tcp);
  EXPECT_EQ(v.l4_offset, 14 + 40 + 64);
  EXPECT_EQ(v.sport, 1234);
}

TEST(ParseGood, SingleVlan) {
  Tcp t;
  t.seq = 42;
  PacketView v;
  // PCP 5, DEI 1, VID 100: only the VID is kept.
  ASSERT_EQ(parse(tcp4_frame(t, Ipv4{}, {{0x8100, 0xB064}}), v), ParseResult::Tcp);
  EXPECT_EQ(v.vlan_count, 1);
  EXPECT_EQ(v.vlan_tci[0], 100);
  EXPECT_EQ(v.ether_type, 0x0800);
  EXPECT_EQ(v.l3_offset, 18);
  EXPECT_EQ(v.l4_offset, 38);
  EXPECT_EQ(v.seq, 42u);
}

TEST(ParseGood, QinQ) {
  Tcp t;
  t.dport = 8080;
  for (std::uint16_t outer : {0x88A8, 0x9100, 0x8100}) {
    PacketView v;
    ASSERT_EQ(parse(tcp6_frame(t, Ipv6{}, {{outer, 0x0FFE}, {0x8100, 0x2001}}), v), ParseResult::Tcp) << outer;
    EXPECT_EQ(v.vlan_count, 2);
    EXPECT_EQ(v.vlan_tci[0], 0xFFE);
    EXPECT_EQ(v.vlan_tci[1], 0x001);
    EXPECT_EQ(v.ether_type, 0x86DD);
    EXPECT_EQ(v.l3_offset, 22);
    EXPECT_EQ(v.family, IpFamily::V6);
    EXPECT_EQ(v.dport, 8080);
  }
}

TEST(ParseGood, VlanCountResetBetweenFrames) {
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(Tcp{}, Ipv4{}, {{0x8100, 5}}), v), ParseResult::Tcp);
  ASSERT_EQ(parse(tcp4_frame(Tcp{}), v), ParseResult::Tcp);
  EXPECT_EQ(v.vlan_count, 0);
  EXPECT_EQ(v.l3_offset, 14);
}

TEST(ParseGood, SackBlocks) {
  Tcp t;
  t.flags = tf::kAck;
  t.options = opt_nop();
  append(t.options, opt_nop());
  append(t.options, opt_sack({{100, 200}, {300, 400}, {0xfffffff0u, 0x10}}));
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_FALSE(v.options.malformed);
  ASSERT_EQ(v.options.sack_blocks, 3);
  EXPECT_EQ(v.options.sack_right[0], 200u);
  EXPECT_EQ(v.options.sack_right[1], 400u);
  EXPECT_EQ(v.options.sack_right[2], 0x10u);

  // Four blocks: 34 bytes, the most that fits in 40 bytes of options.
  t.options = opt_sack({{1, 2}, {3, 4}, {5, 6}, {7, 8}});
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_EQ(v.header_len, 20 + 36);
  ASSERT_EQ(v.options.sack_blocks, 4);
  EXPECT_EQ(v.options.sack_right[3], 8u);
}

TEST(ParseGood, OptionsResetBetweenFrames) {
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(rich_syn()), v), ParseResult::Tcp);
  ASSERT_TRUE(v.options.has_wscale);
  Tcp plain;
  ASSERT_EQ(parse(tcp4_frame(plain), v), ParseResult::Tcp);
  EXPECT_FALSE(v.options.has_wscale);
  EXPECT_FALSE(v.options.has_mss);
  EXPECT_FALSE(v.options.sack_permitted);
  EXPECT_EQ(v.header_len, 20);
}

TEST(ParseGood, TimestampOnlyAndOtherTwelveByteOptions) {
  // NOP, NOP, timestamps: the usual data segment; nothing in it is kept.
  Tcp t;
  t.flags = tf::kAck;
  t.payload_len = 9;
  t.options = opt_nop();
  append(t.options, opt_nop());
  append(t.options, opt_timestamp(1, 2));
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(rich_syn()), v), ParseResult::Tcp);  // options set by a previous frame
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_EQ(v.header_len, 32);
  EXPECT_EQ(v.payload_len, 9u);
  EXPECT_FALSE(v.options.has_mss);
  EXPECT_FALSE(v.options.has_wscale);
  EXPECT_FALSE(v.options.sack_permitted);
  EXPECT_FALSE(v.options.malformed);
  // Another 12 bytes of options (same header length) are all parsed.
  t.options = opt_mss(1200);
  append(t.options, opt_nop());
  append(t.options, opt_wscale(2));
  append(t.options, opt_sack_perm());
  append(t.options, opt_nop());
  append(t.options, opt_nop());
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_EQ(v.header_len, 32);
  EXPECT_EQ(v.options.mss, 1200);
  EXPECT_EQ(v.options.wscale, 2);
  EXPECT_TRUE(v.options.sack_permitted);
  // NOP, NOP, SACK with one block: also 12 bytes.
  t.options = opt_nop();
  append(t.options, opt_nop());
  append(t.options, opt_sack({{10, 20}}));
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  ASSERT_EQ(v.options.sack_blocks, 1);
  EXPECT_EQ(v.options.sack_right[0], 20u);
}

TEST(ParseGood, OptionsWithWrongLengthsAreIgnoredNotMalformed) {
  // MSS with length 3 and window scale with length 4 are well-formed TLVs
  // the kernel does not take as MSS / window scale.
  Tcp t;
  t.flags = tf::kSyn;
  t.options = Bytes{2, 3, 5, 3, 4, 7, 7};
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_FALSE(v.options.malformed);
  EXPECT_FALSE(v.options.has_mss);
  EXPECT_FALSE(v.options.has_wscale);
}

TEST(ParseGood, EolEndsOptions) {
  Tcp t;
  t.flags = tf::kSyn;
  t.options = opt_eol();
  append(t.options, opt_wscale(3));
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_FALSE(v.options.has_wscale);
  EXPECT_FALSE(v.options.malformed);
}

// ---- malformed TCP options: still TCP ---------------------------------------

TEST(ParseOptions, ZeroLengthOptionIsMalformed) {
  Tcp t;
  t.flags = tf::kSyn;
  t.options = opt_mss(1400);
  append(t.options, Bytes{8, 0, 0, 0});  // option length 0
  append(t.options, opt_wscale(5));
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_TRUE(v.options.malformed);
  EXPECT_TRUE(v.options.has_mss);   // parsed before the bad option
  EXPECT_FALSE(v.options.has_wscale);  // not after it
  EXPECT_EQ(v.sport, 40000);
}

TEST(ParseOptions, OptionOverrunningHeaderIsMalformed) {
  Tcp t;
  t.flags = tf::kSyn;
  t.options = Bytes{1, 1, 3, 9};  // window scale claiming 9 bytes in a 4-byte area
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_TRUE(v.options.malformed);
  EXPECT_FALSE(v.options.has_wscale);
}

TEST(ParseOptions, KindWithoutLengthByteIsMalformed) {
  Tcp t;
  t.flags = tf::kSyn;
  t.options = Bytes{1, 1, 1, 2};  // MSS kind in the last byte
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_TRUE(v.options.malformed);
  EXPECT_FALSE(v.options.has_mss);
}

TEST(ParseOptions, LengthOneIsMalformed) {
  Tcp t;
  t.flags = tf::kSyn;
  t.options = Bytes{4, 1, 1, 1};
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_TRUE(v.options.malformed);
  EXPECT_FALSE(v.options.sack_permitted);
}

// ---- non-TCP and fragments --------------------------------------------------

TEST(ParseOther, UdpAndIcmpAreNonTcp) {
  Ipv4 ip;
  ip.proto = kProtoUdp;
  PacketView v;
  ASSERT_EQ(parse(ether(kEtherIpv4, ip.build(udp(53, 5353, 10))), v), ParseResult::NonTcp);
  EXPECT_EQ(v.family, IpFamily::V4);
  EXPECT_EQ(v.l4_proto, 17);
  ip.proto = kProtoIcmp;
  ASSERT_EQ(parse(ether(kEtherIpv4, ip.build(icmp_echo())), v), ParseResult::NonTcp);
  EXPECT_EQ(v.l4_proto, 1);
  Ipv6 ip6;
  ip6.next = kProtoUdp;
  ip6.exts = {Ext{0, 0}};
  ASSERT_EQ(parse(ether(kEtherIpv6, ip6.build(udp(1, 2, 3))), v), ParseResult::NonTcp);
  EXPECT_EQ(v.family, IpFamily::V6);
  EXPECT_EQ(v.l4_proto, 17);
  EXPECT_EQ(v.l4_offset, 14 + 48);
}

TEST(ParseOther, ArpIsNotIp) {
  PacketView v;
  ASSERT_EQ(parse(arp_request(), v), ParseResult::NotIp);
  EXPECT_EQ(v.ether_type, 0x0806);
  EXPECT_EQ(v.family, IpFamily::None);
  // Also behind a VLAN tag.
  Bytes tagged = ether(0x88CC, Bytes(46, 0), {{0x8100, 7}});
  ASSERT_EQ(parse(tagged, v), ParseResult::NotIp);
  EXPECT_EQ(v.vlan_count, 1);
  EXPECT_EQ(v.ether_type, 0x88CC);
}

TEST(ParseOther, Ipv4FirstFragmentIsTracked) {
  Tcp t;
  t.sport = 5555;
  t.payload_len = 64;
  Ipv4 ip;
  ip.frag_field = 0x2000;  // MF, offset 0
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t, ip), v), ParseResult::Tcp);
  EXPECT_EQ(v.fragment, Fragment::First);
  EXPECT_EQ(v.sport, 5555);
  EXPECT_EQ(v.payload_len, 64u);
}

TEST(ParseOther, Ipv4LaterFragment) {
  Ipv4 ip;
  for (std::uint16_t field : {0x2001, 0x0001, 0x1fff, 0x20b9}) {  // with and without MF
    ip.frag_field = field;
    PacketView v;
    ASSERT_EQ(parse(ether(kEtherIpv4, ip.build(Bytes(24, 0x55))), v), ParseResult::IpFragment) << field;
    EXPECT_EQ(v.fragment, Fragment::Later);
    EXPECT_EQ(v.family, IpFamily::V4);
  }
  EXPECT_FALSE(ctlb::packet::is_malformed(ParseResult::IpFragment));
}

TEST(ParseOther, Ipv6FragmentHeader) {
  Tcp t;
  t.dport = 22;
  Ipv6 ip;
  PacketView v;
  // First fragment: offset 0, M = 1.
  ip.exts = {Ext{44, 0, 0x0001}};
  ASSERT_EQ(parse(tcp6_frame(t, ip), v), ParseResult::Tcp);
  EXPECT_EQ(v.fragment, Fragment::First);
  EXPECT_EQ(v.dport, 22);
  EXPECT_EQ(v.l4_offset, 14 + 48);
  // Later fragment: offset 185 (x 8 bytes), M = 1 and M = 0.
  for (std::uint16_t field : {static_cast<std::uint16_t>(185 << 3 | 1), static_cast<std::uint16_t>(185 << 3)}) {
    ip.exts = {Ext{0, 0}, Ext{44, 0, field}};
    ASSERT_EQ(parse(tcp6_frame(t, ip), v), ParseResult::IpFragment);
    EXPECT_EQ(v.fragment, Fragment::Later);
    EXPECT_EQ(v.l4_proto, 6);
  }
  // Atomic fragment (offset 0, M = 0): a whole packet.
  ip.exts = {Ext{44, 0, 0}};
  ASSERT_EQ(parse(tcp6_frame(t, ip), v), ParseResult::Tcp);
  EXPECT_EQ(v.fragment, Fragment::None);
}

// ---- one test per malformed reason ------------------------------------------

TEST(ParseMalformed, EthTruncated) {
  PacketView v;
  EXPECT_EQ(ctlb::packet::parse_frame(nullptr, 0, v), ParseResult::EthTruncated);
  Bytes f = tcp4_frame(Tcp{});
  f.resize(13);
  EXPECT_PARSE(f, ParseResult::EthTruncated);
}

TEST(ParseMalformed, VlanTruncated) {
  Bytes f = tcp4_frame(Tcp{}, Ipv4{}, {{0x8100, 1}});
  f.resize(17);  // tag, but not the inner ethertype
  EXPECT_PARSE(f, ParseResult::VlanTruncated);
  Bytes g = tcp4_frame(Tcp{}, Ipv4{}, {{0x88A8, 1}, {0x8100, 2}});
  g.resize(21);
  EXPECT_PARSE(g, ParseResult::VlanTruncated);
}

TEST(ParseMalformed, ThreeTags) {
  EXPECT_PARSE(tcp4_frame(Tcp{}, Ipv4{}, {{0x88A8, 1}, {0x8100, 2}, {0x8100, 3}}), ParseResult::VlanTooDeep);
}

TEST(ParseMalformed, Ipv4Truncated) {
  Bytes f = tcp4_frame(Tcp{});
  f.resize(14 + 19);
  EXPECT_PARSE(f, ParseResult::Ipv4Truncated);
  EXPECT_PARSE(ether(kEtherIpv4, {}), ParseResult::Ipv4Truncated);
}

TEST(ParseMalformed, Ipv4BadVersion) {
  Ipv4 ip;
  ip.version = 6;
  EXPECT_PARSE(tcp4_frame(Tcp{}, ip), ParseResult::Ipv4BadVersion);
}

TEST(ParseMalformed, Ipv4BadIhl) {
  Ipv4 ip;
  ip.ihl_words = 4;
  EXPECT_PARSE(tcp4_frame(Tcp{}, ip), ParseResult::Ipv4BadIhl);
}

TEST(ParseMalformed, Ipv4HeaderOverrun) {
  // IHL 15 (60 bytes) in a 40-byte IP packet.
  Bytes f = tcp4_frame(Tcp{});
  f[14] = 0x4f;
  EXPECT_PARSE(f, ParseResult::Ipv4HeaderOverrun);
}

TEST(ParseMalformed, Ipv4TotalLenTooSmall) {
  Ipv4 ip;
  ip.total_len = 19;
  EXPECT_PARSE(tcp4_frame(Tcp{}, ip), ParseResult::Ipv4TotalLenTooSmall);
  ip.ihl_words = 6;
  ip.total_len = 23;
  EXPECT_PARSE(tcp4_frame(Tcp{}, ip), ParseResult::Ipv4TotalLenTooSmall);
}

TEST(ParseMalformed, Ipv4TotalLenOverrun) {
  Ipv4 ip;
  ip.total_len = 41;  // 40 bytes present
  EXPECT_PARSE(tcp4_frame(Tcp{}, ip), ParseResult::Ipv4TotalLenOverrun);
}

TEST(ParseMalformed, Ipv6Truncated) {
  Bytes f = tcp6_frame(Tcp{});
  f.resize(14 + 39);
  EXPECT_PARSE(f, ParseResult::Ipv6Truncated);
}

TEST(ParseMalformed, Ipv6BadVersion) {
  Ipv6 ip;
  ip.version = 4;
  EXPECT_PARSE(tcp6_frame(Tcp{}, ip), ParseResult::Ipv6BadVersion);
}

TEST(ParseMalformed, Ipv6PayloadOverrun) {
  Ipv6 ip;
  ip.payload_len = 21;  // 20 bytes present
  EXPECT_PARSE(tcp6_frame(Tcp{}, ip), ParseResult::Ipv6PayloadOverrun);
}

TEST(ParseMalformed, Ipv6ExtTruncated) {
  // Fewer than 8 bytes left for the extension header.
  Ipv6 ip;
  ip.next = 0;
  EXPECT_PARSE(ether(kEtherIpv6, ip.build(Bytes{6, 0, 1, 0})), ParseResult::Ipv6ExtTruncated);
  // Header length field larger than the payload: 24 bytes claimed, 8 present.
  ip.next = 60;
  EXPECT_PARSE(ether(kEtherIpv6, ip.build(Bytes{6, 2, 1, 4, 0, 0, 0, 0})), ParseResult::Ipv6ExtTruncated);
  // A fragment header cut short.
  ip.next = 44;
  EXPECT_PARSE(ether(kEtherIpv6, ip.build(Bytes{6, 0, 0, 1})), ParseResult::Ipv6ExtTruncated);
  // The payload length, not the frame, bounds the extension headers.
  Ipv6 ip2;
  ip2.exts = {Ext{0, 1}};  // 16 bytes
  ip2.payload_len = 8;
  Bytes f = ether(kEtherIpv6, ip2.build(Tcp{}.build()));
  EXPECT_PARSE(f, ParseResult::Ipv6ExtTruncated);
}

TEST(ParseMalformed, Ipv6NineExtensionHeaders) {
  Ipv6 ip;
  ip.exts.assign(9, Ext{60, 0});
  EXPECT_PARSE(tcp6_frame(Tcp{}, ip), ParseResult::Ipv6ExtTooMany);
}

TEST(ParseMalformed, TcpTruncated) {
  // The frame is long enough but the IP length leaves 19 bytes of TCP.
  Ipv4 ip;
  ip.total_len = 20 + 19;
  EXPECT_PARSE(tcp4_frame(Tcp{}, ip), ParseResult::TcpTruncated);
  Ipv6 ip6;
  ip6.payload_len = 0;
  EXPECT_PARSE(tcp6_frame(Tcp{}, ip6), ParseResult::TcpTruncated);
}

TEST(ParseMalformed, TcpBadDataOffset) {
  for (int doff : {0, 4}) {
    Tcp t;
    t.data_offset_words = doff;
    EXPECT_PARSE(tcp4_frame(t), ParseResult::TcpBadDataOffset) << doff;
  }
}

TEST(ParseMalformed, TcpDataOffsetOverrun) {
  Tcp t;
  t.data_offset_words = 15;  // 60 bytes of header
  t.payload_len = 39;        // 59 bytes of TCP in all
  EXPECT_PARSE(tcp4_frame(t), ParseResult::TcpDataOffsetOverrun);
  t.payload_len = 40;  // exactly the header: fine, no payload
  PacketView v;
  ASSERT_EQ(parse(tcp4_frame(t), v), ParseResult::Tcp);
  EXPECT_EQ(v.header_len, 60);
  EXPECT_EQ(v.payload_len, 0u);
}

TEST(ParseMalformed, EveryMalformedReasonIsCoveredAndClassified) {
  // The tests above cover every reason from EthTruncated on; make sure the
  // list did not grow without a test and that the well-formed ones are not
  // classified as malformed.
  EXPECT_EQ(ctlb::packet::kParseResultCount, 21u);
  EXPECT_FALSE(ctlb::packet::is_malformed(ParseResult::Tcp));
  EXPECT_FALSE(ctlb::packet::is_malformed(ParseResult::NotIp));
  EXPECT_FALSE(ctlb::packet::is_malformed(ParseResult::NonTcp));
  EXPECT_FALSE(ctlb::packet::is_malformed(ParseResult::IpFragment));
  EXPECT_TRUE(ctlb::packet::is_malformed(ParseResult::EthTruncated));
  EXPECT_TRUE(ctlb::packet::is_malformed(ParseResult::TcpDataOffsetOverrun));
}

// ---- truncation sweeps ------------------------------------------------------

// What a frame cut at `len` must parse as, given where its headers are.
struct Layout {
  std::size_t l3;      // IP header start
  std::size_t ip_hdr;  // IPv4 header bytes (IHL) or IPv6 40
  bool v6;
};

ParseResult expected_cut(const Layout& l, std::size_t len, std::size_t n_tags) {
  if (len < 14) return ParseResult::EthTruncated;
  if (n_tags > 0 && len < 12 + 4 * n_tags + 2) return ParseResult::VlanTruncated;
  const std::size_t avail = len - l.l3;
  if (!l.v6) {
    if (avail < 20) return ParseResult::Ipv4Truncated;
    if (avail < l.ip_hdr) return ParseResult::Ipv4HeaderOverrun;
    return ParseResult::Ipv4TotalLenOverrun;
  }
  if (avail < 40) return ParseResult::Ipv6Truncated;
  return ParseResult::Ipv6PayloadOverrun;
}

void sweep(const Bytes& frame, const Layout& l, std::size_t n_tags) {
  PacketView v;
  for (std::size_t len = 0; len < frame.size(); ++len) {
    const ParseResult r = parse_exact(frame, len, v);
    EXPECT_TRUE(ctlb::packet::is_malformed(r)) << "cut at " << len << ": " << rname(r);
    EXPECT_EQ(rname(r), rname(expected_cut(l, len, n_tags))) << "cut at " << len;
  }
  ASSERT_EQ(parse_exact(frame, frame.size(), v), ParseResult::Tcp);
}

TEST(ParseTruncation, Ipv4VlanEveryCut) {
  Tcp t = rich_syn();
  t.payload_len = 30;
  Ipv4 ip;
  ip.ihl_words = 7;
  const Bytes f = tcp4_frame(t, ip, {{0x8100, 9}});
  sweep(f, Layout{18, 28, false}, 1);
}

TEST(ParseTruncation, Ipv6QinQEveryCut) {
  Tcp t = rich_syn();
  t.options = opt_sack({{1, 2}, {3, 4}});
  t.payload_len = 12;
  Ipv6 ip;
  ip.exts = {Ext{0, 0}, Ext{44, 0, 0x0001}, Ext{60, 1}};
  const Bytes f = tcp6_frame(t, ip, {{0x88A8, 1}, {0x8100, 2}});
  sweep(f, Layout{22, 40, true}, 2);
}

// Cuts where the IP length fields are rewritten to match the cut, so that the
// IP layer is consistent and the extension headers / TCP header are what is
// short: exercises the inner length checks on exactly-sized buffers.
TEST(ParseTruncation, Ipv4ConsistentLengthEveryCut) {
  Tcp t = rich_syn();  // 40-byte TCP header
  t.payload_len = 10;
  const Bytes full = tcp4_frame(t);
  const std::size_t l3 = 14, l4 = 34;
  PacketView v;
  for (std::size_t len = l3 + 20; len <= full.size(); ++len) {
    Bytes f(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    set16(f, l3 + 2, static_cast<std::uint16_t>(len - l3));
    const ParseResult r = parse_exact(f, f.size(), v);
    const std::size_t tcp = len - l4;
    if (tcp < 20) {
      EXPECT_EQ(rname(r), rname(ParseResult::TcpTruncated)) << len;
    } else if (tcp < 40) {
      EXPECT_EQ(rname(r), rname(ParseResult::TcpDataOffsetOverrun)) << len;
    } else {
      ASSERT_EQ(rname(r), rname(ParseResult::Tcp)) << len;
      EXPECT_EQ(v.payload_len, tcp - 40) << len;
      EXPECT_EQ(v.options.wscale, 7);
    }
  }
}

TEST(ParseTruncation, Ipv6ConsistentLengthEveryCut) {
  Tcp t;
  t.payload_len = 4;
  Ipv6 ip;
  ip.exts = {Ext{0, 1}, Ext{44, 0, 0}};  // 16 + 8 bytes
  const Bytes full = tcp6_frame(t, ip);
  const std::size_t l3 = 14, ext_end = 14 + 40 + 24;
  PacketView v;
  for (std::size_t len = l3 + 40; len <= full.size(); ++len) {
    Bytes f(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    set16(f, l3 + 4, static_cast<std::uint16_t>(len - l3 - 40));
    const ParseResult r = parse_exact(f, f.size(), v);
    if (len < ext_end) {
      EXPECT_EQ(rname(r), rname(ParseResult::Ipv6ExtTruncated)) << len;
    } else if (len - ext_end < 20) {
      EXPECT_EQ(rname(r), rname(ParseResult::TcpTruncated)) << len;
    } else {
      ASSERT_EQ(rname(r), rname(ParseResult::Tcp)) << len;
      EXPECT_EQ(v.payload_len, len - ext_end - 20) << len;
    }
  }
}

// ---- what the parser writes -------------------------------------------------

// The dataplane parses into uninitialised views (dataplane/worker.cpp): what
// a result makes meaningful (ctlb_test::same_meaning) must come from the
// frame. Parsed over two different fillings, the views must agree on it.
void expect_written_whole(const Bytes& f, const std::string& what) {
  for (std::size_t len = 0; len <= f.size(); ++len) {
    PacketView a, b;
    std::memset(static_cast<void*>(&a), 0x00, sizeof a);
    std::memset(static_cast<void*>(&b), 0xa5, sizeof b);
    const ParseResult ra = parse_exact(f, len, a);
    ASSERT_EQ(ra, parse_exact(f, len, b)) << what << " cut at " << len;
    EXPECT_TRUE(ctlb_test::same_meaning(a, b, ra)) << what << " cut at " << len << ": " << rname(ra);
  }
}

TEST(ParseWrites, EveryFieldItsResultMeansWhateverWasThereBefore) {
  Tcp syn = rich_syn();
  syn.payload_len = 20;
  Ipv4 ip4;
  ip4.ihl_words = 6;
  expect_written_whole(tcp4_frame(syn, ip4), "IPv4 SYN with options");
  expect_written_whole(tcp4_frame(syn, Ipv4{}, {{0x88A8, 1}, {0x8100, 2}}), "IPv4 QinQ");
  Tcp ts;  // the common data segment: NOP, NOP, timestamps
  ts.flags = tf::kAck | tf::kPsh;
  ts.options = opt_nop();
  append(ts.options, opt_nop());
  append(ts.options, opt_timestamp(7, 8));
  ts.payload_len = 32;
  expect_written_whole(tcp4_frame(ts), "IPv4 timestamps only");
  Tcp sack;
  sack.flags = tf::kAck;
  sack.options = opt_sack({{1, 2}, {3, 4}, {5, 6}});
  expect_written_whole(tcp4_frame(sack, Ipv4{}, {{0x8100, 3}}), "IPv4 SACK, one tag");
  Tcp bare;
  bare.flags = tf::kAck;
  expect_written_whole(tcp4_frame(bare), "IPv4 no options");
  Ipv6 ip6;
  ip6.exts = {Ext{0, 1}, Ext{60, 0}};
  expect_written_whole(tcp6_frame(syn, ip6), "IPv6 with extension headers");
  Ipv6 frag6;
  frag6.exts = {Ext{44, 0, 0x0001}};  // first fragment
  expect_written_whole(tcp6_frame(bare, frag6), "IPv6 first fragment");
  expect_written_whole(ether(kEtherArp, Bytes(28, 1)), "ARP");
}

// ---- parse_ack_segment: the in-place path's parser ---------------------------

TEST(AckSegment, ReadsADataSegmentWithTimestamps) {
  Tcp t;
  t.sport = 40001;
  t.dport = 8080;
  t.seq = 0x89abcdef;
  t.ack = 0x01234567;
  t.flags = tf::kAck | tf::kPsh;
  t.window = 502;
  t.options = opt_nop();
  append(t.options, opt_nop());
  append(t.options, opt_timestamp(7, 8));
  t.payload_len = 100;
  Ipv4 ip;
  ip.src[0] = 198, ip.src[1] = 18, ip.src[2] = 0, ip.src[3] = 1;
  const Bytes f = tcp4_frame(t, ip, {}, 0);
  ctlb::packet::AckSegment s{};
  ASSERT_TRUE(ctlb::packet::parse_ack_segment(f.data(), f.size(), f.size(), s));
  EXPECT_EQ(s.src, 0xC6120001u);
  EXPECT_EQ(s.dst, 0x0A000002u);
  EXPECT_EQ(s.sport, 40001);
  EXPECT_EQ(s.dport, 8080);
  EXPECT_EQ(s.seq, 0x89abcdefu);
  EXPECT_EQ(s.ack, 0x01234567u);
  EXPECT_EQ(s.payload_len, 100u);
  EXPECT_EQ(s.window, 502);
  EXPECT_EQ(s.flags, tf::kAck | tf::kPsh);
  // Only the headers at hand, the payload on the wire: the same segment.
  ctlb::packet::AckSegment h{};
  ASSERT_TRUE(ctlb::packet::parse_ack_segment(f.data(), 14 + 20 + 32, f.size(), h));
  EXPECT_EQ(h.payload_len, 100u);
  // Not a SYN, a FIN, a RST, nor a segment without ACK.
  for (int flags : {tf::kSyn | tf::kAck, tf::kFin | tf::kAck, tf::kRst | tf::kAck, int{tf::kPsh}, tf::kUrg | tf::kAck}) {
    Tcp o = t;
    o.flags = static_cast<std::uint8_t>(flags);
    const Bytes g = tcp4_frame(o, ip);
    EXPECT_FALSE(ctlb::packet::parse_ack_segment(g.data(), g.size(), g.size(), s)) << flags;
  }
}

// On random frames near the common case (tags, IPv6, IP options, fragments,
// other protocols, every flag, other TCP options, wrong lengths, cuts):
// parse_ack_segment() accepts exactly the frames that parse_frame() reads as
// such a segment (is_ack_segment), with the same values.
TEST(AckSegment, AcceptsExactlyWhatParseFrameReadsAsOne) {
  std::mt19937_64 rng(20261207);
  auto pick = [&](unsigned n) { return static_cast<unsigned>(rng() % n); };
  int accepted = 0, refused_tcp = 0;
  for (int iter = 0; iter < 60000; ++iter) {
    Tcp t;
    t.sport = static_cast<std::uint16_t>(rng());
    t.dport = static_cast<std::uint16_t>(rng());
    t.seq = static_cast<std::uint32_t>(rng());
    t.ack = static_cast<std::uint32_t>(rng());
    t.window = static_cast<std::uint16_t>(rng());
    t.flags = pick(2) ? static_cast<std::uint8_t>(tf::kAck | (rng() & (tf::kPsh | tf::kEce | tf::kCwr)))
                      : static_cast<std::uint8_t>(rng());
    switch (pick(6)) {
      case 0: break;
      case 1:
      case 2:
        t.options = opt_nop();
        append(t.options, opt_nop());
        append(t.options, opt_timestamp(static_cast<std::uint32_t>(rng()), 1));
        break;
      case 3:  // twelve bytes, but not NOP, NOP, timestamps
        t.options = opt_timestamp(1, 2);
        append(t.options, opt_nop());
        append(t.options, opt_nop());
        break;
      case 4: t.options = opt_sack({{1, 2}}); break;
      default: t.options = opt_mss(1460); break;
    }
    t.payload_len = pick(4) ? pick(64) : 0;
    if (pick(16) == 0) t.data_offset_words = static_cast<int>(pick(16));
    Ipv4 ip;
    if (pick(8) == 0) ip.ihl_words = 6;
    if (pick(8) == 0) ip.frag_field = static_cast<std::uint16_t>(pick(2) ? 0x2000 : (rng() & 0xffff));
    if (pick(16) == 0) ip.proto = kProtoUdp;
    if (pick(16) == 0) ip.version = 6;
    const std::size_t l4 = 20 + ((t.options.size() + 3) & ~std::size_t{3}) + t.payload_len;
    if (pick(8) == 0) ip.total_len = static_cast<int>(ip.ihl_words * 4 + l4) + static_cast<int>(pick(41)) - 20;
    std::vector<Tag> tags;
    if (pick(10) == 0) tags.push_back({0x8100, 5});
    Bytes f = pick(12) == 0 ? tcp6_frame(t, Ipv6{}, tags) : tcp4_frame(t, ip, tags, pick(4) == 0 ? 64 : 0);
    if (pick(3) == 0) f[15] = static_cast<std::uint8_t>(rng());   // an untagged frame's TOS / ECN bits
    if (pick(40) == 0) f[14] = static_cast<std::uint8_t>(rng());  // its version and IHL
    if (pick(40) == 0) f[13] = static_cast<std::uint8_t>(rng());  // its ethertype's low byte
    std::size_t len = f.size();
    if (pick(6) == 0) len = pick(static_cast<unsigned>(f.size()) + 1);
    const std::size_t wire = len + (pick(4) == 0 ? pick(100) : 0);

    std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[len == 0 ? 1 : len]);  // nothing to read past
    if (len) std::memcpy(buf.get(), f.data(), len);
    PacketView v;
    const ParseResult r = ctlb::packet::parse_frame(buf.get(), len, wire, v);
    ctlb::packet::AckSegment s;
    std::memset(&s, 0xa5, sizeof s);
    const bool got = ctlb::packet::parse_ack_segment(buf.get(), len, wire, s);
    const bool want = is_ack_segment(buf.get(), r, v);
    ASSERT_EQ(got, want) << "iteration " << iter << ": parse_frame " << rname(r) << ", " << len << " of "
                         << f.size() << " bytes";
    if (got) {
      ASSERT_TRUE(same_segment(s, v)) << "iteration " << iter;
      ++accepted;
    } else if (r == ParseResult::Tcp) {
      ++refused_tcp;
    }
  }
  // Both kinds well represented: the comparison above is not vacuous.
  EXPECT_GT(accepted, 5000);
  EXPECT_GT(refused_tcp, 10000);
}

}  // namespace
