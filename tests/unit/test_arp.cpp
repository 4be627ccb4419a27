// lb::arp: parse (good, every truncation length, unsupported, bad op, not
// ARP, VLAN tags), the reply made in place and built requests, byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/lb/arp.hpp"
#include "frame_builder.hpp"

namespace {

using namespace ctlb::lb;
using ctlb::config::Mac;
using ctlb_test::Bytes;
using ctlb_test::Tag;

const Mac kRequesterMac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
const Mac kOurMac{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
const std::uint8_t kRequesterIp[4] = {192, 0, 2, 10};
const std::uint8_t kOurIp[4] = {192, 0, 2, 1};

struct Body {
  std::uint16_t htype = 1;
  std::uint16_t ptype = 0x0800;
  std::uint8_t hlen = 6;
  std::uint8_t plen = 4;
  std::uint16_t op = 1;
  Mac sha = kRequesterMac;
  std::vector<std::uint8_t> spa{kRequesterIp, kRequesterIp + 4};
  Mac tha{};
  std::vector<std::uint8_t> tpa{kOurIp, kOurIp + 4};

  Bytes build() const {
    Bytes b;
    ctlb_test::put16(b, htype);
    ctlb_test::put16(b, ptype);
    ctlb_test::put8(b, hlen);
    ctlb_test::put8(b, plen);
    ctlb_test::put16(b, op);
    b.insert(b.end(), sha.begin(), sha.end());
    b.insert(b.end(), spa.begin(), spa.end());
    b.insert(b.end(), tha.begin(), tha.end());
    b.insert(b.end(), tpa.begin(), tpa.end());
    return b;
  }
};

// A frame from the requester: Ethernet source = sha, broadcast destination.
Bytes arp_frame(const Body& body, std::vector<Tag> tags = {}, std::size_t pad_to = 60) {
  Bytes f{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  f.insert(f.end(), body.sha.begin(), body.sha.end());
  for (const Tag& t : tags) {
    ctlb_test::put16(f, t.tpid);
    ctlb_test::put16(f, t.tci);
  }
  ctlb_test::put16(f, 0x0806);
  ctlb_test::append(f, body.build());
  while (f.size() < pad_to) f.push_back(0);
  return f;
}

const std::vector<std::vector<Tag>> kTagCases = {
    {},
    {{0x8100, 0x0064}},
    {{0x88a8, 0x0010}, {0x8100, 0x0064}},
};

arp::Parse parse(const Bytes& f, arp::Packet& p) { return arp::parse(f.data(), f.size(), p); }

TEST(Arp, ParsesARequestWithZeroOneOrTwoTags) {
  for (const auto& tags : kTagCases) {
    const Bytes f = arp_frame(Body{}, tags);
    arp::Packet p{};
    ASSERT_EQ(parse(f, p), arp::Parse::Ok) << tags.size() << " tags";
    EXPECT_EQ(p.op, arp::kOpRequest);
    EXPECT_EQ(p.sha, kRequesterMac);
    EXPECT_EQ(0, std::memcmp(p.spa, kRequesterIp, 4));
    EXPECT_EQ(p.tha, Mac{});
    EXPECT_EQ(0, std::memcmp(p.tpa, kOurIp, 4));
    EXPECT_EQ(p.arp_offset, 14 + 4 * tags.size());
  }
}

TEST(Arp, ParsesAReply) {
  Body b;
  b.op = 2;
  b.tha = kOurMac;
  arp::Packet p{};
  ASSERT_EQ(parse(arp_frame(b), p), arp::Parse::Ok);
  EXPECT_EQ(p.op, arp::kOpReply);
  EXPECT_EQ(p.tha, kOurMac);
}

TEST(Arp, ParsesTheFrameBuilderRequestAndUnpaddedFrames) {
  arp::Packet p{};
  ASSERT_EQ(parse(ctlb_test::arp_request(), p), arp::Parse::Ok);
  EXPECT_EQ(p.arp_offset, 14);
  // Padding is not required: 42 bytes are a whole request.
  const Bytes f = arp_frame(Body{}, {}, 0);
  ASSERT_EQ(f.size(), 42u);
  EXPECT_EQ(parse(f, p), arp::Parse::Ok);
}

TEST(Arp, EveryTruncationLengthIsTruncated) {
  for (const auto& tags : kTagCases) {
    const Bytes f = arp_frame(Body{}, tags);
    const std::size_t whole = 14 + 4 * tags.size() + 28;
    for (std::size_t len = 0; len <= f.size(); ++len) {
      arp::Packet p{};
      const arp::Parse r = arp::parse(f.data(), len, p);
      EXPECT_EQ(r, len < whole ? arp::Parse::Truncated : arp::Parse::Ok) << tags.size() << " tags, len " << len;
    }
  }
}

TEST(Arp, UnsupportedHardwareOrProtocol) {
  std::vector<Body> bodies(4);
  bodies[0].htype = 6;  // IEEE 802
  bodies[1].ptype = 0x86dd;
  bodies[2].hlen = 8;
  bodies[3].plen = 16;
  for (const auto& tags : kTagCases) {
    for (const Body& b : bodies) {
      const Bytes f = arp_frame(b, tags);
      const std::size_t fixed = 14 + 4 * tags.size() + 8;
      for (std::size_t len = 0; len <= f.size(); ++len) {
        arp::Packet p{};
        EXPECT_EQ(arp::parse(f.data(), len, p), len < fixed ? arp::Parse::Truncated : arp::Parse::Unsupported)
            << "len " << len;
      }
    }
  }
}

TEST(Arp, OperationsOtherThanRequestAndReplyAreBadOp) {
  for (std::uint16_t op : {0, 3, 4, 8, 9, 0xffff}) {
    Body b;
    b.op = op;
    for (const auto& tags : kTagCases) {
      arp::Packet p{};
      EXPECT_EQ(parse(arp_frame(b, tags), p), arp::Parse::BadOp) << "op " << op;
    }
  }
}

TEST(Arp, OtherFramesAreNotArp) {
  arp::Packet p{};
  EXPECT_EQ(parse(ctlb_test::tcp4_frame(ctlb_test::Tcp{}), p), arp::Parse::NotArp);
  EXPECT_EQ(parse(ctlb_test::tcp6_frame(ctlb_test::Tcp{}), p), arp::Parse::NotArp);
  EXPECT_EQ(parse(ctlb_test::tcp4_frame(ctlb_test::Tcp{}, {}, {{0x8100, 5}}), p), arp::Parse::NotArp);
  // RARP has its own ethertype.
  Bytes rarp = arp_frame(Body{});
  ctlb_test::set16(rarp, 12, 0x8035);
  EXPECT_EQ(parse(rarp, p), arp::Parse::NotArp);
  // Three tags are one more than we take.
  const Bytes deep = arp_frame(Body{}, {{0x88a8, 1}, {0x8100, 2}, {0x8100, 3}});
  EXPECT_EQ(parse(deep, p), arp::Parse::NotArp);
}

TEST(Arp, AcceptsTheTagTypesTheFrameParserAccepts) {
  for (std::uint16_t tpid : {0x8100, 0x88a8, 0x9100}) {
    arp::Packet p{};
    EXPECT_EQ(parse(arp_frame(Body{}, {{tpid, 7}}), p), arp::Parse::Ok) << std::hex << tpid;
  }
}

TEST(Arp, ReplyInPlaceIsExact) {
  for (const auto& tags : kTagCases) {
    Bytes f = arp_frame(Body{}, tags);
    f.back() = 0x5a;  // padding is left as it was
    arp::Packet req{};
    ASSERT_EQ(parse(f, req), arp::Parse::Ok);
    arp::make_reply_in_place(f.data(), req, kOurMac);

    Bytes want(kRequesterMac.begin(), kRequesterMac.end());
    want.insert(want.end(), kOurMac.begin(), kOurMac.end());
    for (const Tag& t : tags) {
      ctlb_test::put16(want, t.tpid);
      ctlb_test::put16(want, t.tci);
    }
    ctlb_test::append(want, {0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02});
    want.insert(want.end(), kOurMac.begin(), kOurMac.end());
    want.insert(want.end(), kOurIp, kOurIp + 4);
    want.insert(want.end(), kRequesterMac.begin(), kRequesterMac.end());
    want.insert(want.end(), kRequesterIp, kRequesterIp + 4);
    while (want.size() < 59) want.push_back(0);
    want.push_back(0x5a);
    EXPECT_EQ(f, want) << tags.size() << " tags";

    arp::Packet rep{};
    ASSERT_EQ(parse(f, rep), arp::Parse::Ok);
    EXPECT_EQ(rep.op, arp::kOpReply);
    EXPECT_EQ(rep.sha, kOurMac);
    EXPECT_EQ(rep.tha, kRequesterMac);
  }
}

TEST(Arp, ReplyGoesToTheSenderHardwareAddress) {
  // A request whose Ethernet source differs from its sender hardware address
  // (a proxy or a bridge): the reply goes to the sender, as Linux does.
  Bytes f = arp_frame(Body{});
  const Mac bridge{0x02, 0x99, 0x99, 0x99, 0x99, 0x99};
  std::copy(bridge.begin(), bridge.end(), f.begin() + 6);
  arp::Packet req{};
  ASSERT_EQ(parse(f, req), arp::Parse::Ok);
  arp::make_reply_in_place(f.data(), req, kOurMac);
  EXPECT_TRUE(std::equal(kRequesterMac.begin(), kRequesterMac.end(), f.begin()));
}

Bytes expected_request(std::uint16_t tci) {
  Bytes want(6, 0xff);
  want.insert(want.end(), kOurMac.begin(), kOurMac.end());
  if (tci) {
    ctlb_test::put16(want, 0x8100);
    ctlb_test::put16(want, tci);
  }
  ctlb_test::append(want, {0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01});
  want.insert(want.end(), kOurMac.begin(), kOurMac.end());
  want.insert(want.end(), kOurIp, kOurIp + 4);
  want.insert(want.end(), 6, 0);
  want.insert(want.end(), kRequesterIp, kRequesterIp + 4);
  want.resize(60, 0);
  return want;
}

TEST(Arp, BuildRequestIsExact) {
  for (std::uint16_t tci : {0, 100, 0x2064, 0xffff}) {
    Bytes buf(128, 0xcc);
    const std::size_t n = arp::build_request(buf.data(), buf.size(), kOurMac, kOurIp, kRequesterIp, tci);
    ASSERT_EQ(n, 60u);
    EXPECT_EQ(Bytes(buf.begin(), buf.begin() + 60), expected_request(tci)) << "tci " << tci;
    EXPECT_TRUE(std::all_of(buf.begin() + 60, buf.end(), [](std::uint8_t b) { return b == 0xcc; }));
    arp::Packet p{};
    ASSERT_EQ(arp::parse(buf.data(), n, p), arp::Parse::Ok);
    EXPECT_EQ(p.op, arp::kOpRequest);
    EXPECT_EQ(p.arp_offset, tci ? 18 : 14);
  }
}

TEST(Arp, BuildRequestNeedsSixtyBytes) {
  Bytes buf(60, 0xcc);
  EXPECT_EQ(arp::build_request(buf.data(), 59, kOurMac, kOurIp, kRequesterIp, 0), 0u);
  EXPECT_EQ(arp::build_request(buf.data(), 0, kOurMac, kOurIp, kRequesterIp, 7), 0u);
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](std::uint8_t b) { return b == 0xcc; }));
  EXPECT_EQ(arp::build_request(buf.data(), 60, kOurMac, kOurIp, kRequesterIp, 7), 60u);
}

TEST(Arp, GratuitousAsksForItsOwnAddress) {
  Bytes buf(60);
  ASSERT_EQ(arp::build_gratuitous(buf.data(), buf.size(), kOurMac, kOurIp, 0), 60u);
  arp::Packet p{};
  ASSERT_EQ(arp::parse(buf.data(), buf.size(), p), arp::Parse::Ok);
  EXPECT_EQ(p.op, arp::kOpRequest);
  EXPECT_EQ(p.sha, kOurMac);
  EXPECT_EQ(0, std::memcmp(p.spa, kOurIp, 4));
  EXPECT_EQ(0, std::memcmp(p.tpa, kOurIp, 4));
}

TEST(Arp, ARequestAnsweredByTheOtherSide) {
  // Our request, answered in place by a peer, parses as its reply to us.
  Bytes buf(60);
  ASSERT_EQ(arp::build_request(buf.data(), buf.size(), kOurMac, kOurIp, kRequesterIp, 42), 60u);
  arp::Packet req{};
  ASSERT_EQ(arp::parse(buf.data(), buf.size(), req), arp::Parse::Ok);
  arp::make_reply_in_place(buf.data(), req, kRequesterMac);
  arp::Packet rep{};
  ASSERT_EQ(arp::parse(buf.data(), buf.size(), rep), arp::Parse::Ok);
  EXPECT_EQ(rep.op, arp::kOpReply);
  EXPECT_EQ(rep.sha, kRequesterMac);
  EXPECT_EQ(0, std::memcmp(rep.spa, kRequesterIp, 4));
  EXPECT_EQ(rep.tha, kOurMac);
  EXPECT_EQ(0, std::memcmp(rep.tpa, kOurIp, 4));
  EXPECT_TRUE(std::equal(kOurMac.begin(), kOurMac.end(), buf.begin()));
}

}  // namespace
