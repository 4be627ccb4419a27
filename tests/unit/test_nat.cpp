// lb::rewrite_dst/rewrite_src/decrement_ttl/set_macs: incremental checksum
// updates checked against a full recomputation on random frames (IPv4 with
// options, IPv6 with extension headers, VLAN tags, odd payloads, Ethernet
// padding), the 0x0000/0xffff checksum edge cases, exact inverse rewrites and
// wrong checksums that must stay wrong by the same amount.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "dataplane/lb/nat.hpp"
#include "dataplane/packet/checksum.hpp"
#include "dataplane/packet/parse.hpp"
#include "frame_builder.hpp"

namespace {

using ctlb::load_be16;
using ctlb::store_be16;
using ctlb::packet::IpFamily;
using ctlb::packet::PacketView;
using ctlb::packet::ParseResult;
using ctlb_test::Bytes;

PacketView parse_tcp(const Bytes& f) {
  PacketView v;
  const ParseResult r = ctlb::packet::parse_frame(f.data(), f.size(), v);
  EXPECT_EQ(r, ParseResult::Tcp);
  return v;
}

std::size_t addr_len(const PacketView& v) { return v.family == IpFamily::V4 ? 4 : 16; }
std::size_t src_at(const PacketView& v) { return v.l3_offset + (v.family == IpFamily::V4 ? 12u : 8u); }
std::size_t dst_at(const PacketView& v) { return v.l3_offset + (v.family == IpFamily::V4 ? 16u : 24u); }
std::size_t tcp_csum_at(const PacketView& v) { return v.l4_offset + 16u; }
std::size_t ip_csum_at(const PacketView& v) { return v.l3_offset + 10u; }

// One's complement sum of the pseudo-header and the segment as they are in
// the frame (addresses from the frame bytes, not from a possibly stale view).
std::uint32_t tcp_sum(const Bytes& f, const PacketView& v) {
  std::uint32_t sum = ctlb::packet::ones_sum(f.data() + src_at(v), addr_len(v));
  sum = ctlb::packet::ones_sum(f.data() + dst_at(v), addr_len(v), sum);
  sum += 6;
  sum += v.l4_len & 0xffff;
  sum += v.l4_len >> 16;
  return ctlb::packet::ones_sum(f.data() + v.l4_offset, v.l4_len, sum);
}

// The checksum a sender computes from scratch.
std::uint16_t full_tcp_checksum(Bytes f, const PacketView& v) {
  store_be16(f.data() + tcp_csum_at(v), 0);
  return static_cast<std::uint16_t>(~ctlb::packet::fold(tcp_sum(f, v)));
}

std::uint16_t full_ip_checksum(Bytes f, const PacketView& v) {
  store_be16(f.data() + ip_csum_at(v), 0);
  const std::size_t ihl = v.l4_offset - v.l3_offset;
  return static_cast<std::uint16_t>(~ctlb::packet::fold(ctlb::packet::ones_sum(f.data() + v.l3_offset, ihl)));
}

// What a receiver's verification sums to (0xffff: good); a wrong checksum
// must give the same residue after a rewrite as before.
std::uint16_t tcp_residue(const Bytes& f, const PacketView& v) { return ctlb::packet::fold(tcp_sum(f, v)); }

void fill_checksums(Bytes& f) {
  const PacketView v = parse_tcp(f);
  if (v.family == IpFamily::V4) store_be16(f.data() + ip_csum_at(v), full_ip_checksum(f, v));
  store_be16(f.data() + tcp_csum_at(v), full_tcp_checksum(f, v));
}

// A frame with everything that moves offsets drawn at random, and random
// header fields and payload bytes; both checksums correct.
Bytes random_frame(std::mt19937& rng, bool v6) {
  auto pick = [&](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  std::vector<ctlb_test::Tag> tags;
  const std::uint32_t ntags = pick(0, 2);
  for (std::uint32_t i = 0; i < ntags; ++i)
    tags.push_back({static_cast<std::uint16_t>(i == 0 && ntags == 2 ? 0x88a8 : 0x8100),
                    static_cast<std::uint16_t>(pick(0, 0xffff))});
  ctlb_test::Tcp t;
  t.sport = static_cast<std::uint16_t>(pick(0, 0xffff));
  t.dport = static_cast<std::uint16_t>(pick(0, 0xffff));
  t.seq = pick(0, 0xffffffffu);
  t.ack = pick(0, 0xffffffffu);
  t.flags = static_cast<std::uint8_t>(pick(0, 0xff));
  t.window = static_cast<std::uint16_t>(pick(0, 0xffff));
  const std::uint32_t nops = pick(0, 10);
  for (std::uint32_t i = 0; i < nops; ++i) t.options.push_back(1);
  if (pick(0, 1)) ctlb_test::append(t.options, ctlb_test::opt_timestamp(pick(0, 0xffffffffu), pick(0, 0xffffffffu)));
  t.payload_len = pick(0, 3) == 0 ? pick(0, 3) : pick(0, 301);
  Bytes f;
  if (v6) {
    ctlb_test::Ipv6 ip;
    for (auto& b : ip.src) b = static_cast<std::uint8_t>(pick(0, 255));
    for (auto& b : ip.dst) b = static_cast<std::uint8_t>(pick(0, 255));
    ip.hop_limit = static_cast<std::uint8_t>(pick(0, 255));
    const std::uint32_t nexts = pick(0, 3);
    static constexpr std::uint8_t kTypes[] = {0, 43, 60, 44};
    for (std::uint32_t i = 0; i < nexts; ++i) ip.exts.push_back({kTypes[pick(0, 3)], pick(0, 2), 0});
    f = ctlb_test::tcp6_frame(t, ip, tags);
  } else {
    ctlb_test::Ipv4 ip;
    for (auto& b : ip.src) b = static_cast<std::uint8_t>(pick(0, 255));
    for (auto& b : ip.dst) b = static_cast<std::uint8_t>(pick(0, 255));
    ip.ttl = static_cast<std::uint8_t>(pick(0, 255));
    ip.ihl_words = static_cast<int>(pick(5, 15));
    ip.frag_field = pick(0, 1) ? 0x4000 : 0;
    f = ctlb_test::tcp4_frame(t, ip, tags, pick(0, 1) ? 60 : 0);
  }
  const PacketView v = parse_tcp(f);
  for (std::size_t i = v.l4_offset + v.header_len; i < v.l4_offset + v.l4_len; ++i)
    f[i] = static_cast<std::uint8_t>(pick(0, 255));
  if (v.family == IpFamily::V4) store_be16(f.data() + v.l3_offset + 4, static_cast<std::uint16_t>(pick(0, 0xffff)));
  fill_checksums(f);
  return f;
}

struct Endpoint {
  std::uint8_t addr[16];
  std::uint16_t port;
};

Endpoint random_endpoint(std::mt19937& rng) {
  Endpoint e{};
  for (auto& b : e.addr) b = static_cast<std::uint8_t>(rng());
  e.port = static_cast<std::uint16_t>(rng());
  return e;
}

enum class Side { Src, Dst };

void rewrite(Bytes& f, const PacketView& v, Side side, const Endpoint& e) {
  if (side == Side::Dst) ctlb::lb::rewrite_dst(f.data(), v, e.addr, e.port);
  else ctlb::lb::rewrite_src(f.data(), v, e.addr, e.port);
}

// What the frame must look like after the rewrite: the fields set by hand,
// both checksums recomputed in full.
Bytes expected_after(Bytes f, const PacketView& v, Side side, const Endpoint& e) {
  std::memcpy(f.data() + (side == Side::Dst ? dst_at(v) : src_at(v)), e.addr, addr_len(v));
  store_be16(f.data() + v.l4_offset + (side == Side::Dst ? 2 : 0), e.port);
  if (v.family == IpFamily::V4) store_be16(f.data() + ip_csum_at(v), full_ip_checksum(f, v));
  store_be16(f.data() + tcp_csum_at(v), full_tcp_checksum(f, v));
  return f;
}

void check_rewrite(const Bytes& original, Side side, const Endpoint& e) {
  const PacketView v = parse_tcp(original);
  Bytes f = original;
  rewrite(f, v, side, e);
  ASSERT_EQ(f, expected_after(original, v, side, e));
  const PacketView after = parse_tcp(f);
  if (after.family == IpFamily::V4) {
    EXPECT_TRUE(ctlb::packet::ipv4_header_checksum_ok(f.data(), after));
  }
  EXPECT_TRUE(ctlb::packet::tcp_checksum_ok(f.data(), after));
  EXPECT_EQ(side == Side::Dst ? after.dport : after.sport, e.port);
}

// Sets the 16-bit word at `filler` so that the frame's TCP checksum becomes
// `target` (the full computation of it), then fills the checksum in.
void force_tcp_checksum(Bytes& f, std::size_t filler, std::uint16_t target) {
  const PacketView v = parse_tcp(f);
  store_be16(f.data() + filler, 0);
  store_be16(f.data() + tcp_csum_at(v), 0);
  // Want sum + w = ~target (mod 0xffff); sum folds to 1..0xffff.
  const std::uint32_t sum = ctlb::packet::fold(tcp_sum(f, v)) % 0xffffu;
  const std::uint32_t want = static_cast<std::uint16_t>(~target) % 0xffffu;
  store_be16(f.data() + filler, static_cast<std::uint16_t>((want + 0xffffu - sum) % 0xffffu));
  store_be16(f.data() + tcp_csum_at(v), full_tcp_checksum(f, v));
  ASSERT_EQ(load_be16(f.data() + tcp_csum_at(v)), target);
}

void force_ip_checksum(Bytes& f, std::uint16_t target) {
  const PacketView v = parse_tcp(f);
  const std::size_t filler = v.l3_offset + 4;  // the IP identification
  store_be16(f.data() + filler, 0);
  store_be16(f.data() + ip_csum_at(v), 0);
  const std::size_t ihl = v.l4_offset - v.l3_offset;
  const std::uint32_t sum = ctlb::packet::fold(ctlb::packet::ones_sum(f.data() + v.l3_offset, ihl)) % 0xffffu;
  const std::uint32_t want = static_cast<std::uint16_t>(~target) % 0xffffu;
  store_be16(f.data() + filler, static_cast<std::uint16_t>((want + 0xffffu - sum) % 0xffffu));
  store_be16(f.data() + ip_csum_at(v), full_ip_checksum(f, v));
  ASSERT_EQ(load_be16(f.data() + ip_csum_at(v)), target);
}

Bytes payload_frame4(std::size_t payload = 8) {
  ctlb_test::Tcp t;
  t.payload_len = payload;
  Bytes f = ctlb_test::tcp4_frame(t);
  fill_checksums(f);
  return f;
}

// fold() folds twice, not until nothing is left above 16 bits: the same as
// folding in a loop for every 32-bit sum, the largest ones included.
TEST(Checksum, TwoFoldsAreEnoughForEvery32BitSum) {
  auto looped = [](std::uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(sum);
  };
  std::uint32_t x = 0x9e3779b9u;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1664525u + 1013904223u;
    ASSERT_EQ(ctlb::packet::fold(x), looped(x)) << std::hex << x;
  }
  for (std::uint32_t edge : {0u, 0xffffu, 0x10000u, 0x1fffeu, 0x1ffffu, 0xfffeffffu, 0xffff0000u, 0xffffffffu})
    EXPECT_EQ(ctlb::packet::fold(edge), looped(edge)) << std::hex << edge;
}

TEST(Nat, RewriteMatchesFullRecomputationOnRandomFrames) {
  std::mt19937 rng(20240611);
  for (int i = 0; i < 4000; ++i) {
    const Bytes f = random_frame(rng, i % 2 == 1);
    check_rewrite(f, i % 4 < 2 ? Side::Dst : Side::Src, random_endpoint(rng));
    if (HasFatalFailure()) return;
  }
}

// What the worker does (one IPv4 header checksum update for the address and
// the TTL) ends exactly as the two separate calls, whose results are
// checked against full recomputation above and below; frames whose TTL or
// hop limit forbids forwarding are not given to it.
TEST(Nat, RewriteAndTtlInOneIsRewriteThenDecrement) {
  std::mt19937 rng(1207);
  int done = 0;
  for (int i = 0; i < 6000; ++i) {
    const Bytes original = random_frame(rng, i % 2 == 1);
    const PacketView v = parse_tcp(original);
    const Side side = i % 4 < 2 ? Side::Dst : Side::Src;
    const Endpoint e = random_endpoint(rng);
    Bytes two = original;
    rewrite(two, v, side, e);
    const bool forwarded = ctlb::lb::decrement_ttl(two.data(), v);
    ASSERT_EQ(ctlb::lb::ttl_allows_forwarding(v), forwarded) << "frame " << i;
    if (!forwarded) continue;
    Bytes one = original;
    if (side == Side::Dst) ctlb::lb::rewrite_dst_and_ttl(one.data(), v, e.addr, e.port);
    else ctlb::lb::rewrite_src_and_ttl(one.data(), v, e.addr, e.port);
    ASSERT_EQ(one, two) << "frame " << i;
    ++done;
  }
  EXPECT_GT(done, 5000);  // random TTLs: a few are 0 or 1
}

// A frame parse_ack_segment() accepts (untagged IPv4 without options, ACK
// set, no SYN/FIN/RST/URG), its fields and payload at random; both checksums
// correct.
Bytes random_ack_frame(std::mt19937& rng) {
  auto pick = [&](std::uint32_t lo, std::uint32_t hi) { return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng); };
  ctlb_test::Tcp t;
  t.sport = static_cast<std::uint16_t>(pick(0, 0xffff));
  t.dport = static_cast<std::uint16_t>(pick(0, 0xffff));
  t.seq = pick(0, 0xffffffffu);
  t.ack = pick(0, 0xffffffffu);
  t.flags = static_cast<std::uint8_t>(ctlb::packet::tcpflag::kAck | (pick(0, 0xff) & 0xc8));  // PSH, ECE, CWR
  t.window = static_cast<std::uint16_t>(pick(0, 0xffff));
  if (pick(0, 1)) {
    t.options = {1, 1};
    ctlb_test::append(t.options, ctlb_test::opt_timestamp(pick(0, 0xffffffffu), pick(0, 0xffffffffu)));
  }
  t.payload_len = pick(0, 300);
  ctlb_test::Ipv4 ip;
  for (auto& b : ip.src) b = static_cast<std::uint8_t>(pick(0, 255));
  for (auto& b : ip.dst) b = static_cast<std::uint8_t>(pick(0, 255));
  ip.ttl = static_cast<std::uint8_t>(pick(0, 255));
  ip.frag_field = pick(0, 1) ? 0x4000 : 0;
  Bytes f = ctlb_test::tcp4_frame(t, ip, {}, pick(0, 1) ? 60 : 0);
  const PacketView v = parse_tcp(f);
  for (std::size_t i = v.l4_offset + v.header_len; i < v.l4_offset + v.l4_len; ++i)
    f[i] = static_cast<std::uint8_t>(pick(0, 255));
  fill_checksums(f);
  return f;
}

// Mode lb's common case, rewritten without a view: for every frame that
// parse_ack_segment() accepts, the AckSegment forms of the TTL check and the
// one-step rewrite do exactly what the PacketView forms do.
TEST(Nat, AckSegmentFormsAreTheViewForms) {
  std::mt19937 rng(20261207);
  int done = 0;
  for (int i = 0; i < 4000; ++i) {
    const Bytes original = random_ack_frame(rng);
    ctlb::packet::AckSegment a;
    ASSERT_TRUE(ctlb::packet::parse_ack_segment(original.data(), original.size(), original.size(), a)) << i;
    const PacketView v = parse_tcp(original);
    ASSERT_EQ(ctlb::lb::ttl_allows_forwarding(original.data(), a), ctlb::lb::ttl_allows_forwarding(v)) << i;
    if (!ctlb::lb::ttl_allows_forwarding(v)) continue;
    const Endpoint e = random_endpoint(rng);
    Bytes by_view = original, by_segment = original;
    if (i % 2) {
      ctlb::lb::rewrite_dst_and_ttl(by_view.data(), v, e.addr, e.port);
      ctlb::lb::rewrite_dst_and_ttl(by_segment.data(), a, e.addr, e.port);
    } else {
      ctlb::lb::rewrite_src_and_ttl(by_view.data(), v, e.addr, e.port);
      ctlb::lb::rewrite_src_and_ttl(by_segment.data(), a, e.addr, e.port);
    }
    ASSERT_NE(by_view, original) << i;
    ASSERT_EQ(by_segment, by_view) << i;
    ++done;
  }
  EXPECT_GT(done, 3800);
}

// A change folded ahead (fold_change) applied to every checksum value gives
// what the whole sum gives (apply_change), the sums that fold to zero or
// to 0xffff included.
TEST(Nat, FoldedChangeIsTheWholeSumForEveryChecksum) {
  std::vector<std::uint64_t> sums = {0, 1, 0xfffe, 0xffff, 0x10000, 0x1fffe, 0xffffffffu, 0x1fffffffeull,
                                     0xfffeffffull, 0x3fffffffcull};
  std::mt19937_64 rng(1624);
  for (int i = 0; i < 40; ++i) sums.push_back(rng() >> (i % 2 ? 29 : 0) & 0x3ffffffffull);  // up to 4 32-bit terms
  for (const std::uint64_t sum : sums) {
    const std::uint16_t c = ctlb::lb::detail::fold_change(sum);
    ASSERT_NE(c, 0) << std::hex << sum;
    for (std::uint32_t hc = 0; hc <= 0xffff; ++hc) {
      std::uint8_t field[2];
      ctlb::store_raw16(field, static_cast<std::uint16_t>(hc));
      ctlb::lb::detail::update_checksum_folded(field, c);
      ASSERT_EQ(ctlb::load_raw16(field), ctlb::lb::detail::apply_change(static_cast<std::uint16_t>(hc), sum))
          << std::hex << "sum " << sum << " checksum " << hc;
    }
  }
}

// The worker's rewrite with the changes computed ahead (lb::NatChange4, per
// backend) is the rewrite that sums them per packet, bit for bit: on random
// frames, on frames whose checksums are forced to the edge values 0x0000,
// 0x0001 and 0xfffe before it (a full computation never gives 0xffff), on
// frames whose checksums are wrong or a stored 0xffff, and where only the
// port changes.
TEST(Nat, ChangesComputedAheadAreTheRewrite) {
  std::mt19937 rng(20261207);
  auto pick = [&](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  static constexpr std::uint16_t kEdges[] = {0x0000, 0x0001, 0xfffe, 0x8000};
  int done = 0, edges = 0;
  for (int i = 0; i < 8000; ++i) {
    Bytes original = random_ack_frame(rng);
    PacketView v = parse_tcp(original);
    const int kind = static_cast<int>(pick(0, 3));
    if (kind == 1) {
      force_ip_checksum(original, kEdges[pick(0, 3)]);
      force_tcp_checksum(original, v.l4_offset + 4, kEdges[pick(0, 3)]);  // the sequence number's first word
      ++edges;
    } else if (kind == 2) {
      auto wrong = [&] { return static_cast<std::uint16_t>(pick(0, 3) == 0 ? 0xffff : pick(0, 0xffff)); };
      store_be16(original.data() + ip_csum_at(v), wrong());
      store_be16(original.data() + tcp_csum_at(v), wrong());
    }
    v = parse_tcp(original);
    ctlb::packet::AckSegment a;
    ASSERT_TRUE(ctlb::packet::parse_ack_segment(original.data(), original.size(), original.size(), a)) << i;
    if (!ctlb::lb::ttl_allows_forwarding(v)) continue;
    Endpoint to = random_endpoint(rng);
    if (kind == 3)  // the port alone changes
      std::memcpy(to.addr, original.data() + (i % 2 ? dst_at(v) : src_at(v)), 4);
    Bytes summed = original, ahead = original;
    if (i % 2) {
      const ctlb::lb::NatChange4 c = ctlb::lb::nat_change4(original.data() + dst_at(v), v.dport, to.addr, to.port);
      ctlb::lb::rewrite_dst_and_ttl(summed.data(), v, to.addr, to.port);
      ctlb::lb::rewrite_dst_and_ttl(ahead.data(), a, to.addr, to.port, c);
    } else {
      const ctlb::lb::NatChange4 c = ctlb::lb::nat_change4(original.data() + src_at(v), v.sport, to.addr, to.port);
      ctlb::lb::rewrite_src_and_ttl(summed.data(), v, to.addr, to.port);
      ctlb::lb::rewrite_src_and_ttl(ahead.data(), a, to.addr, to.port, c);
    }
    ASSERT_EQ(ahead, summed) << "frame " << i << " kind " << kind;
    ++done;
  }
  EXPECT_GT(done, 7600);
  EXPECT_GT(edges, 1800);
}

TEST(Nat, RewriteThenInverseRestoresTheFrame) {
  std::mt19937 rng(7);
  for (int i = 0; i < 4000; ++i) {
    const Bytes original = random_frame(rng, i % 2 == 1);
    const PacketView v = parse_tcp(original);
    const Side side = i % 4 < 2 ? Side::Dst : Side::Src;
    Endpoint back{};
    std::memcpy(back.addr, original.data() + (side == Side::Dst ? dst_at(v) : src_at(v)), addr_len(v));
    back.port = side == Side::Dst ? v.dport : v.sport;
    Bytes f = original;
    rewrite(f, v, side, random_endpoint(rng));
    rewrite(f, v, side, back);
    ASSERT_EQ(f, original) << "frame " << i;
  }
}

TEST(Nat, SameAddressAndPortLeavesTheFrameAsItWas) {
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    const Bytes original = random_frame(rng, i % 2 == 1);
    const PacketView v = parse_tcp(original);
    Endpoint same{};
    std::memcpy(same.addr, v.dst, 16);
    same.port = v.dport;
    Bytes f = original;
    rewrite(f, v, Side::Dst, same);
    ASSERT_EQ(f, original);
  }
}

// Frames whose own checksums are at the edges, rewritten to many endpoints.
TEST(Nat, EdgeChecksumsBeforeTheRewrite) {
  std::mt19937 rng(23);
  for (bool v6 : {false, true}) {
    for (std::uint16_t before : {0x0000, 0x0001, 0x7fff, 0xfffe}) {
      ctlb_test::Tcp t;
      t.payload_len = 9;
      Bytes f = v6 ? ctlb_test::tcp6_frame(t) : ctlb_test::tcp4_frame(t);
      const PacketView v = parse_tcp(f);
      force_tcp_checksum(f, v.l4_offset + 20, before);
      if (!v6) force_ip_checksum(f, before);
      ASSERT_FALSE(HasFatalFailure());
      ASSERT_EQ(load_be16(f.data() + tcp_csum_at(v)), before);
      for (int i = 0; i < 200; ++i) {
        check_rewrite(f, i % 2 ? Side::Src : Side::Dst, random_endpoint(rng));
        ASSERT_FALSE(HasFatalFailure());
      }
    }
  }
}

// Rewrites whose result lands on an edge value, 0x0000 above all: RFC 1624
// eqn. 3 must give it, never its negative-zero twin 0xffff.
TEST(Nat, EdgeChecksumsAfterTheRewrite) {
  for (bool v6 : {false, true}) {
    for (std::uint16_t after : {0x0000, 0x0001, 0x7fff, 0xfffe}) {
      ctlb_test::Tcp t;
      t.payload_len = 4;
      Bytes f = v6 ? ctlb_test::tcp6_frame(t) : ctlb_test::tcp4_frame(t);
      const PacketView v = parse_tcp(f);
      const Endpoint e{{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5}, 443};
      Bytes target = expected_after(f, v, Side::Dst, e);
      force_tcp_checksum(target, v.l4_offset + 20, after);
      ASSERT_FALSE(HasFatalFailure());
      f[v.l4_offset + 20] = target[v.l4_offset + 20];
      f[v.l4_offset + 21] = target[v.l4_offset + 21];
      fill_checksums(f);
      ctlb::lb::rewrite_dst(f.data(), v, e.addr, e.port);
      EXPECT_EQ(load_be16(f.data() + tcp_csum_at(v)), after);
      EXPECT_EQ(f, target);
    }
  }
}

TEST(Nat, Ipv4HeaderChecksumEdgeValues) {
  for (std::uint16_t after : {0x0000, 0x0001, 0xfffe}) {
    Bytes f = payload_frame4();
    const PacketView v = parse_tcp(f);
    const Endpoint e{{198, 51, 100, 9}, 80};
    Bytes target = expected_after(f, v, Side::Src, e);
    force_ip_checksum(target, after);
    ASSERT_FALSE(HasFatalFailure());
    f[v.l3_offset + 4] = target[v.l3_offset + 4];
    f[v.l3_offset + 5] = target[v.l3_offset + 5];
    fill_checksums(f);
    ctlb::lb::rewrite_src(f.data(), v, e.addr, e.port);
    EXPECT_EQ(f, target);
    EXPECT_EQ(load_be16(f.data() + ip_csum_at(v)), after);
  }
}

// Every term of RFC 1624's sum zero: checksum field 0xffff (negative zero,
// which verifies like 0x0000), old words all ones, new words all zeros.
TEST(Nat, StoredNegativeZeroChecksumBecomesZeroAndStillVerifies) {
  ctlb_test::Tcp t;
  t.dport = 0xffff;
  t.payload_len = 6;
  ctlb_test::Ipv4 ip;
  for (auto& b : ip.dst) b = 0xff;
  Bytes f = ctlb_test::tcp4_frame(t, ip);
  const PacketView v = parse_tcp(f);
  force_tcp_checksum(f, v.l4_offset + 20, 0x0000);
  ASSERT_FALSE(HasFatalFailure());
  fill_checksums(f);
  store_be16(f.data() + tcp_csum_at(v), 0xffff);
  ASSERT_TRUE(ctlb::packet::tcp_checksum_ok(f.data(), v));
  const Endpoint zero{};
  Bytes g = f;
  ctlb::lb::rewrite_dst(g.data(), v, zero.addr, 0);
  EXPECT_EQ(g, expected_after(f, v, Side::Dst, zero));
  EXPECT_EQ(load_be16(g.data() + tcp_csum_at(v)), 0x0000);
  EXPECT_TRUE(ctlb::packet::tcp_checksum_ok(g.data(), parse_tcp(g)));
}

TEST(Nat, WrongChecksumsStayWrongByTheSameAmount) {
  std::mt19937 rng(99);
  for (int i = 0; i < 2000; ++i) {
    Bytes f = random_frame(rng, i % 2 == 1);
    const PacketView v = parse_tcp(f);
    // Any stored value but the correct one and its negative-zero twin.
    const std::uint16_t correct = load_be16(f.data() + tcp_csum_at(v));
    std::uint16_t wrong;
    do wrong = static_cast<std::uint16_t>(rng());
    while (wrong == correct || wrong == 0xffff);
    store_be16(f.data() + tcp_csum_at(v), wrong);
    ASSERT_FALSE(ctlb::packet::tcp_checksum_ok(f.data(), v));
    const std::uint16_t residue = tcp_residue(f, v);
    std::uint16_t ip_residue = 0;
    if (v.family == IpFamily::V4) {
      f[ip_csum_at(v)] ^= 0x5a;
      if (load_be16(f.data() + ip_csum_at(v)) == 0xffff) f[ip_csum_at(v) + 1] ^= 1;  // not negative zero
      ip_residue = ctlb::packet::fold(ctlb::packet::ones_sum(f.data() + v.l3_offset, v.l4_offset - v.l3_offset));
    }
    const Bytes before = f;
    const Side side = i % 4 < 2 ? Side::Dst : Side::Src;
    rewrite(f, v, side, random_endpoint(rng));
    const PacketView after = parse_tcp(f);
    EXPECT_FALSE(ctlb::packet::tcp_checksum_ok(f.data(), after));
    EXPECT_EQ(tcp_residue(f, after), residue);
    if (v.family == IpFamily::V4) {
      EXPECT_FALSE(ctlb::packet::ipv4_header_checksum_ok(f.data(), after));
      EXPECT_EQ(ctlb::packet::fold(ctlb::packet::ones_sum(f.data() + v.l3_offset, v.l4_offset - v.l3_offset)),
                ip_residue);
    }
    // And the wrong value comes back exactly with the inverse rewrite.
    Endpoint back{};
    std::memcpy(back.addr, before.data() + (side == Side::Dst ? dst_at(v) : src_at(v)), addr_len(v));
    back.port = side == Side::Dst ? v.dport : v.sport;
    rewrite(f, v, side, back);
    ASSERT_EQ(f, before);
  }
}

TEST(Nat, DstThenSrcRewriteOfTheSameFrame) {
  std::mt19937 rng(5);
  for (int i = 0; i < 500; ++i) {
    const Bytes original = random_frame(rng, i % 2 == 1);
    const PacketView v = parse_tcp(original);
    const Endpoint d = random_endpoint(rng);
    const Endpoint s = random_endpoint(rng);
    Bytes f = original;
    ctlb::lb::rewrite_dst(f.data(), v, d.addr, d.port);
    ctlb::lb::rewrite_src(f.data(), v, s.addr, s.port);
    Bytes want = expected_after(original, v, Side::Dst, d);
    want = expected_after(want, v, Side::Src, s);
    ASSERT_EQ(f, want);
  }
}

TEST(Nat, DecrementTtlIpv4UpdatesTheHeaderChecksum) {
  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) {
    const Bytes original = random_frame(rng, false);
    const PacketView v = parse_tcp(original);
    Bytes f = original;
    const bool ok = ctlb::lb::decrement_ttl(f.data(), v);
    if (v.ttl <= 1) {
      EXPECT_FALSE(ok);
      EXPECT_EQ(f, original);
      continue;
    }
    ASSERT_TRUE(ok);
    Bytes want = original;
    want[v.l3_offset + 8] = static_cast<std::uint8_t>(v.ttl - 1);
    store_be16(want.data() + ip_csum_at(v), full_ip_checksum(want, v));
    ASSERT_EQ(f, want);
    EXPECT_TRUE(ctlb::packet::ipv4_header_checksum_ok(f.data(), v));
  }
}

TEST(Nat, DecrementTtlIpv4ChecksumEdgeValues) {
  for (std::uint16_t after : {0x0000, 0x0001, 0xfeff, 0xfffe}) {
    for (std::uint8_t ttl : {2, 64, 255}) {
      ctlb_test::Ipv4 ip;
      ip.ttl = ttl;
      ctlb_test::Tcp t;
      Bytes f = ctlb_test::tcp4_frame(t, ip);
      const PacketView v = parse_tcp(f);
      Bytes target = f;
      target[v.l3_offset + 8] = static_cast<std::uint8_t>(ttl - 1);
      force_ip_checksum(target, after);
      ASSERT_FALSE(HasFatalFailure());
      f[v.l3_offset + 4] = target[v.l3_offset + 4];
      f[v.l3_offset + 5] = target[v.l3_offset + 5];
      fill_checksums(f);
      target[tcp_csum_at(v)] = f[tcp_csum_at(v)];
      target[tcp_csum_at(v) + 1] = f[tcp_csum_at(v) + 1];
      ASSERT_TRUE(ctlb::lb::decrement_ttl(f.data(), v));
      EXPECT_EQ(f, target) << "ttl " << int(ttl) << " checksum " << after;
    }
  }
}

TEST(Nat, DecrementTtlRefusesOneAndZero) {
  for (bool v6 : {false, true}) {
    for (std::uint8_t ttl : {0, 1}) {
      ctlb_test::Tcp t;
      ctlb_test::Ipv4 ip4;
      ip4.ttl = ttl;
      ctlb_test::Ipv6 ip6;
      ip6.hop_limit = ttl;
      Bytes f = v6 ? ctlb_test::tcp6_frame(t, ip6) : ctlb_test::tcp4_frame(t, ip4);
      fill_checksums(f);
      const Bytes original = f;
      EXPECT_FALSE(ctlb::lb::decrement_ttl(f.data(), parse_tcp(f)));
      EXPECT_EQ(f, original);
    }
  }
}

TEST(Nat, DecrementHopLimitIpv6) {
  std::mt19937 rng(13);
  for (int i = 0; i < 500; ++i) {
    const Bytes original = random_frame(rng, true);
    const PacketView v = parse_tcp(original);
    Bytes f = original;
    const bool ok = ctlb::lb::decrement_ttl(f.data(), v);
    Bytes want = original;
    if (v.ttl > 1) want[v.l3_offset + 7] = static_cast<std::uint8_t>(v.ttl - 1);
    EXPECT_EQ(ok, v.ttl > 1);
    ASSERT_EQ(f, want);
    // The hop limit is not in the pseudo-header.
    EXPECT_TRUE(ctlb::packet::tcp_checksum_ok(f.data(), parse_tcp(f)));
  }
}

TEST(Nat, SetMacsKeepsVlanTagsAndTheRest) {
  std::mt19937 rng(17);
  for (int i = 0; i < 100; ++i) {
    const Bytes original = random_frame(rng, i % 2 == 1);
    const std::array<std::uint8_t, 6> dst{0x0a, 0x0b, 0x0c, 0x0d, 0x0e, static_cast<std::uint8_t>(i)};
    const std::array<std::uint8_t, 6> src{0x02, 0x42, 0xac, 0x11, 0x00, static_cast<std::uint8_t>(i + 1)};
    Bytes f = original;
    ctlb::lb::set_macs(f.data(), dst.data(), src.data());
    Bytes want = original;
    std::copy(dst.begin(), dst.end(), want.begin());
    std::copy(src.begin(), src.end(), want.begin() + 6);
    ASSERT_EQ(f, want);
    const PacketView before = parse_tcp(original);
    const PacketView after = parse_tcp(f);
    EXPECT_EQ(after.vlan_count, before.vlan_count);
    EXPECT_EQ(after.vlan_tci[0], before.vlan_tci[0]);
    EXPECT_EQ(after.vlan_tci[1], before.vlan_tci[1]);
  }
}

}  // namespace
