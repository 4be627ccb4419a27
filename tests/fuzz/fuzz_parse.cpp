// Fuzz target: the frame parser (dataplane/packet/parse.hpp) on arbitrary
// bytes, and the NAT rewrite (dataplane/lb/nat.hpp) of what it accepts.
//
// The frame is copied into heap buffers of exactly the size given to
// parse_frame(), so that AddressSanitizer reports any read past the bytes
// at hand. Invariants checked on every outcome:
//  - the result is a known ParseResult; L2 fields (VLAN count, l3_offset,
//    ether_type) agree with the bytes;
//  - once L3 was read: family matches the ethertype, l3_offset < l4_offset
//    <= bytes at hand, l4_offset + l4_len <= bytes on the wire, and IPv4/IPv6
//    addresses, TTL and lengths are the ones in the header;
//  - a TCP result: header_len in 20..60, a multiple of 4, at hand and within
//    the IP payload; ports, seq, ack, flags, window re-read from the bytes;
//    payload_len = l4_len - header_len; no options without option bytes;
//    the same view when more bytes are said to be on the wire; the same view
//    from only the headers at hand (a snaplen capture); not TCP when even
//    one header byte is missing;
//  - parse_ack_segment() (the in-place path's parser) accepts exactly the
//    frames that parse_frame() reads as an untagged IPv4 data or ACK segment
//    without IP options, fragmentation or TCP options other than NOP, NOP,
//    timestamps (is_ack_segment), with the same values, whatever the wire
//    length;
//  - rewriting the destination and source (address, port) and decrementing
//    the TTL keeps the IPv4 header and TCP checksums' sums unchanged (a valid
//    checksum stays valid, a wrong one stays wrong by the same amount), and
//    writes the fields asked for.
#include <cstdint>
#include <cstring>
#include <vector>

#include "../unit/view_compare.hpp"
#include "dataplane/common/bytes.hpp"
#include "dataplane/lb/nat.hpp"
#include "dataplane/packet/checksum.hpp"
#include "dataplane/packet/parse.hpp"
#include "fuzz_check.hpp"

namespace {

using ctlb::load_be16;
using ctlb::load_be32;
using ctlb::packet::Fragment;
using ctlb::packet::IpFamily;
using ctlb::packet::PacketView;
using ctlb::packet::ParseResult;
using ctlb_test::same_meaning;
using ctlb_test::same_view;

using Bytes = std::vector<std::uint8_t>;

const char* rname(ParseResult r) {
  const auto i = static_cast<std::size_t>(r);
  return i < ctlb::packet::kParseResultCount ? ctlb::packet::kParseResultNames[i].data() : "?";
}

ParseResult parse(const Bytes& frame, std::size_t len, std::size_t wire, PacketView& v) {
  // A heap block of exactly `len` bytes: the parser may read nothing beyond.
  Bytes exact(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(len));
  v = PacketView{};
  return ctlb::packet::parse_frame(exact.data(), len, wire, v);
}

// Results reached only after the Ethernet/VLAN stage set l3_offset.
bool past_l2(ParseResult r) {
  return r != ParseResult::EthTruncated && r != ParseResult::VlanTruncated && r != ParseResult::VlanTooDeep;
}

// Results for which the IP stage set family, addresses and the L4 fields.
bool l4_known(ParseResult r) {
  switch (r) {
    case ParseResult::Tcp:
    case ParseResult::NonTcp:
    case ParseResult::IpFragment:
    case ParseResult::TcpTruncated:
    case ParseResult::TcpBadDataOffset:
    case ParseResult::TcpDataOffsetOverrun:
      return true;
    default:
      return false;
  }
}

void check_view(const Bytes& f, std::size_t len, std::size_t wire, ParseResult r, const PacketView& v) {
  FUZZ_CHECK(static_cast<std::size_t>(r) < ctlb::packet::kParseResultCount, "result %d", static_cast<int>(r));
  if (len < 14) {
    FUZZ_CHECK(r == ParseResult::EthTruncated, "%zu-byte frame gave %s", len, rname(r));
    return;
  }
  if (!past_l2(r)) return;
  FUZZ_CHECK(v.vlan_count <= 2, "vlan_count %u", v.vlan_count);
  FUZZ_CHECK(v.l3_offset == 14 + 4u * v.vlan_count, "l3_offset %u with %u tags", v.l3_offset, v.vlan_count);
  FUZZ_CHECK(v.l3_offset <= len, "l3_offset %u past %zu bytes", v.l3_offset, len);
  FUZZ_CHECK(v.ether_type == load_be16(f.data() + v.l3_offset - 2), "ether_type %04x", v.ether_type);
  for (unsigned t = 0; t < v.vlan_count; ++t)
    FUZZ_CHECK(v.vlan_tci[t] == (load_be16(f.data() + 14 + 4 * t) & 0x0fff), "vlan %u tci %03x", t, v.vlan_tci[t]);
  if (r == ParseResult::NotIp) {
    FUZZ_CHECK(v.ether_type != 0x0800 && v.ether_type != 0x86DD, "NotIp for ethertype %04x", v.ether_type);
    return;
  }
  if (!l4_known(r)) return;
  const std::uint8_t* ip = f.data() + v.l3_offset;
  FUZZ_CHECK(v.family == (v.ether_type == 0x0800 ? IpFamily::V4 : IpFamily::V6), "family %d for ethertype %04x",
             static_cast<int>(v.family), v.ether_type);
  FUZZ_CHECK(v.l3_offset < v.l4_offset && v.l4_offset <= len, "l3 %u l4 %u len %zu", v.l3_offset, v.l4_offset, len);
  FUZZ_CHECK(static_cast<std::size_t>(v.l4_offset) + v.l4_len <= wire, "l4 %u + %u past the wire length %zu",
             v.l4_offset, v.l4_len, wire);
  if (v.family == IpFamily::V4) {
    const unsigned ihl = (ip[0] & 0x0f) * 4u;
    FUZZ_CHECK((ip[0] >> 4) == 4 && static_cast<unsigned>(v.l4_offset - v.l3_offset) == ihl, "ihl %u, l4 - l3 = %u", ihl,
               v.l4_offset - v.l3_offset);
    FUZZ_CHECK(v.l4_len == load_be16(ip + 2) - ihl, "l4_len %u, total %u", v.l4_len, load_be16(ip + 2));
    FUZZ_CHECK(std::memcmp(v.src, ip + 12, 4) == 0 && std::memcmp(v.dst, ip + 16, 4) == 0, "IPv4 addresses");
    FUZZ_CHECK(v.ttl == ip[8] && v.l4_proto == ip[9], "ttl/proto");
    const std::uint16_t frag = load_be16(ip + 6);
    const Fragment want = (frag & 0x1fff) ? Fragment::Later : (frag & 0x2000) ? Fragment::First : Fragment::None;
    FUZZ_CHECK(v.fragment == want, "fragment %d for %04x", static_cast<int>(v.fragment), frag);
  } else {
    FUZZ_CHECK((ip[0] >> 4) == 6, "IPv6 version");
    FUZZ_CHECK(static_cast<std::size_t>(v.l4_offset) + v.l4_len == v.l3_offset + 40u + load_be16(ip + 4),
               "IPv6 l4 %u + %u vs payload %u", v.l4_offset, v.l4_len, load_be16(ip + 4));
    FUZZ_CHECK(std::memcmp(v.src, ip + 8, 16) == 0 && std::memcmp(v.dst, ip + 24, 16) == 0, "IPv6 addresses");
    FUZZ_CHECK(v.ttl == ip[7], "hop limit");
  }
  if (r == ParseResult::IpFragment) FUZZ_CHECK(v.fragment == Fragment::Later, "IpFragment of a first fragment");
  if (r != ParseResult::Tcp) {
    if (r != ParseResult::NonTcp && r != ParseResult::IpFragment)
      FUZZ_CHECK(v.l4_proto == 6, "%s for protocol %u", rname(r), v.l4_proto);
    return;
  }
  const std::uint8_t* tcp = f.data() + v.l4_offset;
  FUZZ_CHECK(v.l4_proto == 6 && v.fragment != Fragment::Later, "Tcp for proto %u fragment %d", v.l4_proto,
             static_cast<int>(v.fragment));
  FUZZ_CHECK(v.header_len >= 20 && v.header_len <= 60 && v.header_len % 4 == 0, "header_len %u", v.header_len);
  FUZZ_CHECK(v.header_len == (tcp[12] >> 4) * 4u, "header_len %u vs data offset %u", v.header_len, tcp[12] >> 4);
  FUZZ_CHECK(static_cast<std::size_t>(v.l4_offset) + v.header_len <= len, "TCP header past the bytes at hand");
  FUZZ_CHECK(v.header_len <= v.l4_len && v.payload_len == v.l4_len - v.header_len, "payload %u l4 %u hdr %u",
             v.payload_len, v.l4_len, v.header_len);
  FUZZ_CHECK(v.sport == load_be16(tcp) && v.dport == load_be16(tcp + 2) && v.seq == load_be32(tcp + 4) &&
                 v.ack == load_be32(tcp + 8) && v.flags == tcp[13] && v.window == load_be16(tcp + 14),
             "TCP fields differ from the header bytes");
  FUZZ_CHECK(v.options.sack_blocks <= 4, "%u SACK blocks", v.options.sack_blocks);
  if (v.header_len == 20)
    FUZZ_CHECK(!v.options.has_mss && !v.options.has_wscale && !v.options.sack_permitted && !v.options.malformed &&
                   v.options.sack_blocks == 0,
               "options without option bytes");
}

void check_ack_segment(const Bytes& f, std::size_t len, std::size_t wire, ParseResult r, const PacketView& v) {
  const Bytes exact(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(len));  // nothing to read past
  ctlb::packet::AckSegment s;
  std::memset(&s, 0xa5, sizeof s);  // every field must be written
  const bool got = ctlb::packet::parse_ack_segment(exact.data(), len, wire, s);
  FUZZ_CHECK(got == ctlb_test::is_ack_segment(exact.data(), r, v), "parse_ack_segment %s a frame parse_frame calls %s",
             got ? "accepted" : "refused", rname(r));
  if (got) FUZZ_CHECK(ctlb_test::same_segment(s, v), "parse_ack_segment read other values than parse_frame");
}

// One's complement zero has two forms.
std::uint16_t norm(std::uint16_t s) { return s == 0 ? 0xffff : s; }

std::uint16_t ipv4_header_residue(const std::uint8_t* frame, const PacketView& v) {
  return norm(ctlb::packet::fold(ctlb::packet::ipv4_header_sum(frame, v)));
}

// The TCP checksum's sum over the pseudo-header (addresses as now in the
// frame) and the segment bytes at hand.
std::uint16_t tcp_sum(const std::uint8_t* frame, const PacketView& v, std::size_t at_hand) {
  const std::uint8_t* ip = frame + v.l3_offset;
  std::uint32_t sum = 0;
  if (v.family == IpFamily::V4) sum = ctlb::packet::ones_sum(ip + 12, 8);
  else sum = ctlb::packet::ones_sum(ip + 8, 32);
  sum += 6 + (v.l4_len & 0xffff) + (v.l4_len >> 16);
  sum = ctlb::packet::ones_sum(frame + v.l4_offset, at_hand, sum);
  return norm(ctlb::packet::fold(sum));
}

void check_nat(const Bytes& f, std::size_t len, const PacketView& v) {
  if (v.fragment != Fragment::None) return;
  Bytes frame(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(len));
  std::uint8_t* p = frame.data();
  const std::size_t at_hand = std::min<std::size_t>(v.l4_len, len - v.l4_offset);
  const std::uint16_t tcp_before = tcp_sum(p, v, at_hand);
  const std::uint16_t ip_before = v.family == IpFamily::V4 ? ipv4_header_residue(p, v) : 0;
  // New endpoints derived from the frame itself, so that every value occurs.
  std::uint8_t addr[16];
  for (int i = 0; i < 16; ++i) addr[i] = static_cast<std::uint8_t>(p[(i * 7 + 3) % len] ^ (0x5a + i));
  const auto port = static_cast<std::uint16_t>(load_be16(p + v.l4_offset) * 40503u + 1);
  const std::size_t alen = v.family == IpFamily::V4 ? 4 : 16;
  const std::size_t dst_at = v.l3_offset + (v.family == IpFamily::V4 ? 16 : 24);
  const std::size_t src_at = v.l3_offset + (v.family == IpFamily::V4 ? 12 : 8);

  ctlb::lb::rewrite_dst(p, v, addr, port);
  FUZZ_CHECK(std::memcmp(p + dst_at, addr, alen) == 0 && load_be16(p + v.l4_offset + 2) == port,
             "rewrite_dst did not write the destination");
  FUZZ_CHECK(tcp_sum(p, v, at_hand) == tcp_before, "rewrite_dst changed the TCP checksum sum %04x -> %04x",
             tcp_before, tcp_sum(p, v, at_hand));
  if (v.family == IpFamily::V4)
    FUZZ_CHECK(ipv4_header_residue(p, v) == ip_before, "rewrite_dst changed the IPv4 header sum");

  ctlb::lb::rewrite_src(p, v, addr, static_cast<std::uint16_t>(port ^ 0x8001));
  FUZZ_CHECK(std::memcmp(p + src_at, addr, alen) == 0 &&
                 load_be16(p + v.l4_offset) == static_cast<std::uint16_t>(port ^ 0x8001),
             "rewrite_src did not write the source");
  FUZZ_CHECK(tcp_sum(p, v, at_hand) == tcp_before, "rewrite_src changed the TCP checksum sum");
  if (v.family == IpFamily::V4)
    FUZZ_CHECK(ipv4_header_residue(p, v) == ip_before, "rewrite_src changed the IPv4 header sum");

  const std::uint8_t ttl = p[v.l3_offset + (v.family == IpFamily::V4 ? 8 : 7)];
  const bool ok = ctlb::lb::decrement_ttl(p, v);
  const std::uint8_t after = p[v.l3_offset + (v.family == IpFamily::V4 ? 8 : 7)];
  FUZZ_CHECK(ok == (ttl > 1) && after == (ok ? ttl - 1 : ttl), "decrement_ttl %u -> %u (%d)", ttl, after, ok);
  if (v.family == IpFamily::V4)
    FUZZ_CHECK(ipv4_header_residue(p, v) == ip_before, "decrement_ttl changed the IPv4 header sum");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes f(data, data + size);
  PacketView v;
  const ParseResult r = parse(f, size, size, v);
  check_view(f, size, size, r, v);
  {
    PacketView g;
    std::memset(static_cast<void*>(&g), 0xa5, sizeof g);
    const ParseResult rg = ctlb::packet::parse_frame(Bytes(f).data(), size, size, g);
    FUZZ_CHECK(rg == r && same_meaning(v, g, r), "parsed over 0xa5 bytes: %s, a field it means not written",
               rname(rg));
  }

  check_ack_segment(f, size, size, r, v);

  // More on the wire than at hand (a chained mbuf, a snaplen capture).
  for (std::size_t extra : {std::size_t{1}, std::size_t{70000}}) {
    PacketView w;
    const ParseResult rw = parse(f, size, size + extra, w);
    check_view(f, size, size + extra, rw, w);
    check_ack_segment(f, size, size + extra, rw, w);
    if (r == ParseResult::Tcp)
      FUZZ_CHECK(rw == ParseResult::Tcp && same_view(v, w), "a TCP frame gave %s with %zu more bytes on the wire",
                 rname(rw), extra);
  }
  if (r != ParseResult::Tcp) return 0;

  // Only the headers at hand, the rest on the wire: the same view.
  const std::size_t headers = v.l4_offset + static_cast<std::size_t>(v.header_len);
  PacketView h;
  const ParseResult rh = parse(f, headers, size, h);
  FUZZ_CHECK(rh == ParseResult::Tcp && same_view(v, h), "headers alone (%zu of %zu bytes) gave %s", headers, size,
             rname(rh));
  // One header byte missing: never TCP, always a malformed-frame reason.
  PacketView s;
  const ParseResult rs = parse(f, headers - 1, size, s);
  check_view(f, headers - 1, size, rs, s);
  FUZZ_CHECK(rs != ParseResult::Tcp && ctlb::packet::is_malformed(rs), "%zu of %zu header bytes gave %s",
             headers - 1, headers, rname(rs));

  check_nat(f, size, v);
  return 0;
}
