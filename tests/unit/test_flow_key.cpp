// flow::make_key(), hash_key() and the CRC32C primitives.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <utility>

#include "dataplane/flow/crc32c.hpp"
#include "dataplane/flow/flow_key.hpp"

namespace {

using ctlb::flow::KeyV4;
using ctlb::flow::KeyV6;
using ctlb::flow::Side;
using ctlb::packet::IpFamily;
using ctlb::packet::PacketView;

PacketView v4(std::uint32_t src, std::uint16_t sport, std::uint32_t dst, std::uint16_t dport) {
  PacketView v;
  v.family = IpFamily::V4;
  const std::uint8_t s[4] = {static_cast<std::uint8_t>(src >> 24), static_cast<std::uint8_t>(src >> 16),
                             static_cast<std::uint8_t>(src >> 8), static_cast<std::uint8_t>(src)};
  const std::uint8_t d[4] = {static_cast<std::uint8_t>(dst >> 24), static_cast<std::uint8_t>(dst >> 16),
                             static_cast<std::uint8_t>(dst >> 8), static_cast<std::uint8_t>(dst)};
  std::memcpy(v.src, s, 4);
  std::memcpy(v.dst, d, 4);
  v.sport = sport;
  v.dport = dport;
  return v;
}

struct A6 {
  std::uint8_t b[16];
};

A6 a6(std::uint8_t first, std::uint8_t last) {
  A6 a{};
  a.b[0] = first;
  a.b[15] = last;
  return a;
}

PacketView v6(const A6& src, std::uint16_t sport, const A6& dst, std::uint16_t dport) {
  PacketView v;
  v.family = IpFamily::V6;
  std::memcpy(v.src, src.b, 16);
  std::memcpy(v.dst, dst.b, 16);
  v.sport = sport;
  v.dport = dport;
  return v;
}

PacketView reversed(const PacketView& p) {
  PacketView r = p;
  std::memcpy(r.src, p.dst, 16);
  std::memcpy(r.dst, p.src, 16);
  r.sport = p.dport;
  r.dport = p.sport;
  return r;
}

// Bitwise CRC32C (Castagnoli, reflected polynomial 0x82F63B78), no pre/post
// inversion: what the SSE4.2 crc32 instruction computes over bytes in memory
// order.
std::uint32_t crc_ref(std::uint32_t crc, const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return crc;
}

TEST(Crc32c, ReferenceMatchesTheStandardCheckValue) {
  // CRC-32C("123456789") = 0xE3069283 (RFC 3720 / the CRC catalogue), with
  // the usual ~0 initial value and final inversion.
  const char* s = "123456789";
  EXPECT_EQ(~crc_ref(~0u, s, 9), 0xE3069283u);
}

TEST(Crc32c, KnownAnswer32And64) {
  // Words are hashed in memory (little-endian) byte order.
  const std::uint32_t w32 = 0x31323334u;  // bytes "4321"
  EXPECT_EQ(ctlb::flow::crc32c_u32(~0u, w32), crc_ref(~0u, "4321", 4));
  const std::uint64_t w64 = 0x3837363534333231ull;  // bytes "12345678"
  EXPECT_EQ(ctlb::flow::crc32c_u64(~0u, w64), crc_ref(~0u, "12345678", 8));
  // Chaining: "12345678" then "9" through the byte reference equals the check value.
  EXPECT_EQ(~crc_ref(ctlb::flow::crc32c_u64(~0u, w64), "9", 1), 0xE3069283u);

  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; ++i) {
    const auto crc = static_cast<std::uint32_t>(rng());
    const std::uint64_t x = rng();
    const auto x32 = static_cast<std::uint32_t>(x);
    ASSERT_EQ(ctlb::flow::crc32c_u32(crc, x32), crc_ref(crc, &x32, 4));
    ASSERT_EQ(ctlb::flow::crc32c_u64(crc, x), crc_ref(crc, &x, 8));
    // The table fallback computes the same as the instruction.
    ASSERT_EQ(ctlb::flow::detail::crc32c_bytes_sw(crc, x32, 4), crc_ref(crc, &x32, 4));
    ASSERT_EQ(ctlb::flow::detail::crc32c_bytes_sw(crc, x, 8), crc_ref(crc, &x, 8));
  }
}

TEST(Crc32c, HashKeyIsCrcOfTheKeyBytes) {
  KeyV4 k4{{0x0a000001u, 0xc0a80102u}, {40000, 443}};
  EXPECT_EQ(ctlb::flow::hash_key(k4), crc_ref(ctlb::flow::kHashSeed, &k4, sizeof k4));
  KeyV6 k6{};
  for (int i = 0; i < 16; ++i) {
    k6.addr[0][i] = static_cast<std::uint8_t>(i * 7);
    k6.addr[1][i] = static_cast<std::uint8_t>(255 - i);
  }
  k6.port[0] = 1;
  k6.port[1] = 65535;
  EXPECT_EQ(ctlb::flow::hash_key(k6), crc_ref(ctlb::flow::kHashSeed, &k6, sizeof k6));
}

TEST(FlowKey, V4BothDirectionsSameKeyOppositeSide) {
  const PacketView fwd = v4(0x0a000001, 40000, 0x0a000002, 80);
  KeyV4 a, b;
  const Side sa = ctlb::flow::make_key(fwd, a);
  const Side sb = ctlb::flow::make_key(reversed(fwd), b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(ctlb::flow::hash_key(a), ctlb::flow::hash_key(b));
  EXPECT_NE(sa, sb);
  // 10.0.0.1 is the lower endpoint, in host order.
  EXPECT_EQ(sa, Side::Lo);
  EXPECT_EQ(a.addr[0], 0x0a000001u);
  EXPECT_EQ(a.addr[1], 0x0a000002u);
  EXPECT_EQ(a.port[0], 40000);
  EXPECT_EQ(a.port[1], 80);
}

TEST(FlowKey, V4OrderIsNumericOnTheAddress) {
  // 9.255.255.255 < 10.0.0.0 although its last bytes are larger.
  const PacketView p = v4(0x0a000000, 1, 0x09ffffff, 2);
  KeyV4 k;
  EXPECT_EQ(ctlb::flow::make_key(p, k), Side::Hi);
  EXPECT_EQ(k.addr[0], 0x09ffffffu);
  EXPECT_EQ(k.port[0], 2);
  EXPECT_EQ(k.port[1], 1);
}

TEST(FlowKey, V4EqualAddressesOrderedByPort) {
  const PacketView p = v4(0x7f000001, 5000, 0x7f000001, 80);
  KeyV4 a, b;
  EXPECT_EQ(ctlb::flow::make_key(p, a), Side::Hi);
  EXPECT_EQ(ctlb::flow::make_key(reversed(p), b), Side::Lo);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.port[0], 80);
  EXPECT_EQ(a.port[1], 5000);
}

TEST(FlowKey, V4DifferentTuplesDifferentKeysAndHashes) {
  const PacketView base = v4(0x0a000001, 40000, 0x0a000002, 80);
  const PacketView others[] = {
      v4(0x0a000001, 40001, 0x0a000002, 80), v4(0x0a000001, 40000, 0x0a000002, 81),
      v4(0x0a000003, 40000, 0x0a000002, 80), v4(0x0a000001, 40000, 0x0a000004, 80),
      v4(0x0a000001, 80, 0x0a000002, 40000),  // ports swapped between the hosts
  };
  KeyV4 k0;
  ctlb::flow::make_key(base, k0);
  for (const PacketView& o : others) {
    KeyV4 k;
    ctlb::flow::make_key(o, k);
    EXPECT_NE(k, k0);
    // Keys that differ in one field (a burst of <= 32 bits) always have
    // different CRCs; the swapped-ports key differs in two fields, checked too.
    EXPECT_NE(ctlb::flow::hash_key(k), ctlb::flow::hash_key(k0));
  }
}

TEST(FlowKey, V4ManyRandomFlowsBothDirections) {
  std::mt19937 rng(1);
  std::set<std::pair<std::uint64_t, std::uint32_t>> seen;
  for (int i = 0; i < 20000; ++i) {
    const PacketView p = v4(rng(), static_cast<std::uint16_t>(rng()), rng(), static_cast<std::uint16_t>(rng()));
    KeyV4 a, b;
    const Side sa = ctlb::flow::make_key(p, a);
    const Side sb = ctlb::flow::make_key(reversed(p), b);
    ASSERT_EQ(a, b);
    ASSERT_EQ(ctlb::flow::hash_key(a), ctlb::flow::hash_key(b));
    ASSERT_NE(sa, sb);
    ASSERT_TRUE(a.addr[0] < a.addr[1] || (a.addr[0] == a.addr[1] && a.port[0] <= a.port[1]));
  }
}

TEST(FlowKey, V6BothDirectionsSameKeyOppositeSide) {
  const PacketView fwd = v6(a6(0x20, 2), 443, a6(0x20, 1), 50000);
  KeyV6 a, b;
  const Side sa = ctlb::flow::make_key(fwd, a);
  const Side sb = ctlb::flow::make_key(reversed(fwd), b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(ctlb::flow::hash_key(a), ctlb::flow::hash_key(b));
  EXPECT_EQ(sa, Side::Hi);
  EXPECT_EQ(sb, Side::Lo);
  EXPECT_EQ(a.addr[0][15], 1);
  EXPECT_EQ(a.port[0], 50000);
  EXPECT_EQ(a.port[1], 443);
}

TEST(FlowKey, V6OrderIsByFirstDifferingByte) {
  // 0x01..ff is below 0x02..00: the first byte decides.
  const PacketView p = v6(a6(0x02, 0x00), 1, a6(0x01, 0xff), 2);
  KeyV6 k;
  EXPECT_EQ(ctlb::flow::make_key(p, k), Side::Hi);
  EXPECT_EQ(k.addr[0][0], 0x01);
  EXPECT_EQ(k.port[0], 2);
}

TEST(FlowKey, V6EqualAddressesOrderedByPort) {
  const PacketView p = v6(a6(0xfe, 1), 9, a6(0xfe, 1), 8);
  KeyV6 a, b;
  EXPECT_EQ(ctlb::flow::make_key(p, a), Side::Hi);
  EXPECT_EQ(ctlb::flow::make_key(reversed(p), b), Side::Lo);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.port[0], 8);
}

TEST(FlowKey, V6DifferentTuplesDifferentKeysAndHashes) {
  const PacketView base = v6(a6(0x20, 1), 1000, a6(0x20, 2), 80);
  const PacketView others[] = {v6(a6(0x20, 1), 1001, a6(0x20, 2), 80), v6(a6(0x21, 1), 1000, a6(0x20, 2), 80),
                               v6(a6(0x20, 1), 1000, a6(0x20, 3), 80), v6(a6(0x20, 1), 1000, a6(0x20, 2), 8080)};
  KeyV6 k0;
  ctlb::flow::make_key(base, k0);
  for (const PacketView& o : others) {
    KeyV6 k;
    ctlb::flow::make_key(o, k);
    EXPECT_NE(k, k0);
    EXPECT_NE(ctlb::flow::hash_key(k), ctlb::flow::hash_key(k0));
  }
  // The same addresses seen as IPv4 and IPv6 are different flows in
  // different tables; nothing to compare, but the IPv6 key keeps all 16 bytes.
  KeyV6 k;
  PacketView low_bytes = base;
  low_bytes.src[8] = 0x99;  // a byte an IPv4-sized copy would drop
  ctlb::flow::make_key(low_bytes, k);
  EXPECT_NE(k, k0);
}

}  // namespace
