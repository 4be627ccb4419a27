#pragma once
// Frame parser: Ethernet, 802.1Q/802.1ad (two tags), IPv4 (options,
// fragments), IPv6 (extension headers), TCP (flags, options). Pure code over
// a byte span: the dataplane feeds it mbuf data, tests and `trace` feed it
// buffers. It never reads outside [data, data + len). Inline because it is
// the first stage of every packet.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/common/bytes.hpp"
#include "dataplane/packet/packet_view.hpp"

namespace ctlb::packet {

namespace detail {

inline constexpr std::uint16_t kEtherIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherIpv6 = 0x86DD;
inline constexpr std::uint16_t kEtherVlan = 0x8100;
inline constexpr std::uint16_t kEtherQinQ = 0x88A8;
inline constexpr std::uint16_t kEtherQinQOld = 0x9100;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr int kMaxIpv6ExtHeaders = 8;

inline bool is_vlan_ethertype(std::uint16_t t) noexcept {
  return t == kEtherVlan || t == kEtherQinQ || t == kEtherQinQOld;
}

}  // namespace detail

// Parses TCP options like the Linux stack does: EOL ends, NOP is one byte,
// every other option has a length >= 2 that must fit. A bad length stops
// parsing and marks the options malformed; it does not make the segment bad.
inline void parse_tcp_options(const std::uint8_t* p, std::size_t len, TcpOptions& out) noexcept {
  std::size_t i = 0;
  while (i < len) {
    const std::uint8_t kind = p[i];
    if (kind == 0) return;  // EOL
    if (kind == 1) {        // NOP
      ++i;
      continue;
    }
    if (i + 1 >= len) {
      out.malformed = true;
      return;
    }
    const std::uint8_t size = p[i + 1];
    if (size < 2 || size > len - i) {
      out.malformed = true;
      return;
    }
    const std::uint8_t* body = p + i + 2;
    switch (kind) {
      case 2:  // MSS
        if (size == 4) {
          out.mss = load_be16(body);
          out.has_mss = true;
        }
        break;
      case 3:  // window scale
        if (size == 3) {
          out.wscale = body[0];
          out.has_wscale = true;
        }
        break;
      case 4:  // SACK permitted
        if (size == 2) out.sack_permitted = true;
        break;
      case 5:  // SACK blocks
        if (size >= 10 && (size - 2) % 8 == 0) {
          const int blocks = (size - 2) / 8;
          for (int b = 0; b < blocks && out.sack_blocks < 4; ++b)
            out.sack_right[out.sack_blocks++] = load_be32(body + b * 8 + 4);
        }
        break;
      default:
        break;
    }
    i += size;
  }
}

namespace detail {

// l4_len: the IP payload length; captured: how much of it is at hand.
inline ParseResult parse_tcp(const std::uint8_t* l4, std::uint32_t l4_len, std::size_t captured,
                             PacketView& v) noexcept {
  if (l4_len < 20 || captured < 20) return ParseResult::TcpTruncated;
  v.sport = load_be16(l4);
  v.dport = load_be16(l4 + 2);
  v.seq = load_be32(l4 + 4);
  v.ack = load_be32(l4 + 8);
  const std::uint8_t doff = l4[12] >> 4;
  v.flags = l4[13];
  v.window = load_be16(l4 + 14);
  if (doff < 5) return ParseResult::TcpBadDataOffset;
  v.header_len = static_cast<std::uint8_t>(doff * 4);
  if (v.header_len > l4_len) return ParseResult::TcpDataOffsetOverrun;
  if (v.header_len > captured) return ParseResult::TcpTruncated;
  v.payload_len = l4_len - v.header_len;
  v.options = TcpOptions{};
  // Most segments carry only NOP, NOP, timestamps: nothing in it we use.
  if (v.header_len == 32 && load_be32(l4 + 20) == 0x0101080au) return ParseResult::Tcp;
  if (v.header_len > 20) parse_tcp_options(l4 + 20, v.header_len - 20u, v.options);
  return ParseResult::Tcp;
}

// avail: bytes at hand from the IP header on; wire: bytes on the wire.
inline ParseResult parse_ipv4(const std::uint8_t* ip, std::size_t avail, std::size_t wire, PacketView& v) noexcept {
  if (avail < 20) return ParseResult::Ipv4Truncated;
  std::uint32_t ihl = 20;
  if (ip[0] != 0x45) [[unlikely]] {  // version 4 with options, or not version 4
    if ((ip[0] >> 4) != 4) return ParseResult::Ipv4BadVersion;
    ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20) return ParseResult::Ipv4BadIhl;
    if (ihl > avail) return ParseResult::Ipv4HeaderOverrun;
  }
  const std::uint32_t total = load_be16(ip + 2);
  if (total < ihl) return ParseResult::Ipv4TotalLenTooSmall;
  if (total > wire) return ParseResult::Ipv4TotalLenOverrun;  // trailing padding is fine
  v.family = IpFamily::V4;
  v.ttl = ip[8];
  v.l4_proto = ip[9];
  std::memcpy(v.src, ip + 12, 4);
  std::memcpy(v.dst, ip + 16, 4);
  const std::uint16_t frag = load_be16(ip + 6);
  v.fragment = Fragment::None;
  if (frag & 0x3fff) [[unlikely]]  // an offset or more fragments (DF is 0x4000)
    v.fragment = (frag & 0x1fff) != 0 ? Fragment::Later : Fragment::First;
  v.l4_offset = static_cast<std::uint16_t>(v.l3_offset + ihl);
  v.l4_len = total - ihl;
  if (v.fragment == Fragment::Later) return ParseResult::IpFragment;
  if (v.l4_proto != kProtoTcp) return ParseResult::NonTcp;
  return parse_tcp(ip + ihl, v.l4_len, avail - ihl, v);
}

inline ParseResult parse_ipv6(const std::uint8_t* ip, std::size_t avail, std::size_t wire, PacketView& v) noexcept {
  if (avail < 40) return ParseResult::Ipv6Truncated;
  if ((ip[0] >> 4) != 6) return ParseResult::Ipv6BadVersion;
  const std::uint32_t payload = load_be16(ip + 4);
  if (40 + payload > wire) return ParseResult::Ipv6PayloadOverrun;
  v.family = IpFamily::V6;
  v.ttl = ip[7];
  std::memcpy(v.src, ip + 8, 16);
  std::memcpy(v.dst, ip + 24, 16);
  std::uint8_t next = ip[6];
  std::uint32_t off = 40;  // from the start of the IPv6 header
  const std::uint32_t end = 40 + payload;
  v.fragment = Fragment::None;
  for (int n = 0;; ++n) {
    if (next != 0 && next != 43 && next != 44 && next != 60) break;
    if (n == kMaxIpv6ExtHeaders) return ParseResult::Ipv6ExtTooMany;
    if (off + 8 > end || off + 8 > avail) return ParseResult::Ipv6ExtTruncated;
    const std::uint8_t* ext = ip + off;
    if (next == 44) {  // fragment header: fixed 8 bytes
      const std::uint16_t frag = load_be16(ext + 2);
      const std::uint16_t frag_offset = frag >> 3;
      const bool more = (frag & 1) != 0;
      if (frag_offset != 0) {
        v.fragment = Fragment::Later;
      } else if (more) {
        v.fragment = Fragment::First;
      }
      next = ext[0];
      off += 8;
    } else {
      const std::uint32_t ext_len = (ext[1] + 1u) * 8u;
      if (off + ext_len > end || off + ext_len > avail) return ParseResult::Ipv6ExtTruncated;
      next = ext[0];
      off += ext_len;
    }
    if (v.fragment == Fragment::Later) {
      v.l4_proto = next;
      v.l4_offset = static_cast<std::uint16_t>(v.l3_offset + off);
      v.l4_len = end - off;
      return ParseResult::IpFragment;
    }
  }
  v.l4_proto = next;
  v.l4_offset = static_cast<std::uint16_t>(v.l3_offset + off);
  v.l4_len = end - off;
  if (next != kProtoTcp) return ParseResult::NonTcp;
  return parse_tcp(ip + off, v.l4_len, avail - off, v);
}

}  // namespace detail

// Parses a frame of which the first `len` bytes are at hand and `wire_len`
// were on the wire (more with a chained mbuf or a snaplen-limited capture):
// headers must be at hand, lengths are checked against the wire.
inline ParseResult parse_frame(const std::uint8_t* data, std::size_t len, std::size_t wire_len,
                               PacketView& v) noexcept {
  if (wire_len < len) wire_len = len;
  if (len < 14) return ParseResult::EthTruncated;
  std::size_t off = 12;
  std::uint16_t type = load_be16(data + off);
  v.vlan_count = 0;
  if (type != detail::kEtherIpv4) [[unlikely]] {  // untagged IPv4 first
    while (detail::is_vlan_ethertype(type)) {
      if (v.vlan_count == 2) return ParseResult::VlanTooDeep;
      if (off + 6 > len) return ParseResult::VlanTruncated;
      v.vlan_tci[v.vlan_count++] = static_cast<std::uint16_t>(load_be16(data + off + 2) & 0x0fff);
      off += 4;
      type = load_be16(data + off);
    }
  }
  off += 2;
  v.ether_type = type;
  v.l3_offset = static_cast<std::uint16_t>(off);
  v.family = IpFamily::None;
  if (type == detail::kEtherIpv4) return detail::parse_ipv4(data + off, len - off, wire_len - off, v);
  if (type == detail::kEtherIpv6) return detail::parse_ipv6(data + off, len - off, wire_len - off, v);
  return ParseResult::NotIp;
}

// True when the frame (len bytes at hand, wire_len on the wire) is an
// AckSegment (packet_view.hpp), read into `s`; then parse_frame() returns
// Tcp for it with the same values and no options it would act on. False
// for everything else, which parse_frame() handles, whatever it is.
inline bool parse_ack_segment(const std::uint8_t* data, std::size_t len, std::size_t wire_len,
                              AckSegment& s) noexcept {
  using namespace tcpflag;
  if (wire_len < len) wire_len = len;
  if (len < 14 + 20 + 20) return false;
  // Header bytes are tested as they lie in memory, several with one load.
  // Bytes 12..14: ethertype 0x0800, then version 4 with a 20-byte header
  // (byte 15, TOS and ECN, is anything).
  if ((load_raw32(data + 12) & raw_word(0xff, 0xff, 0xff, 0)) != raw_word(0x08, 0x00, 0x45, 0)) return false;
  const std::uint8_t* ip = data + 14;
  // IP bytes 6..9: neither MF nor a fragment offset (DF is anything), the
  // TTL anything, protocol TCP.
  if ((load_raw32(ip + 6) & raw_word(0x3f, 0xff, 0, 0xff)) != raw_word(0, 0, 0, detail::kProtoTcp)) return false;
  const std::uint32_t total = load_be16(ip + 2);
  if (total > wire_len - 14) return false;
  const std::uint8_t* tcp = ip + 20;
  const std::uint8_t flags = tcp[13];
  if ((flags & ~(kPsh | kEce | kCwr)) != kAck) return false;
  const std::uint32_t header_len = (tcp[12] >> 4) * 4u;
  if (header_len == 32) {
    // NOP, NOP, then timestamps (kind 8, length 10).
    if (len < 14 + 20 + 32 || load_raw32(tcp + 20) != raw_word(1, 1, 8, 10)) return false;
  } else if (header_len != 20) {
    return false;
  }
  if (total < 20 + header_len) return false;
  s.src = load_be32(ip + 12);
  s.dst = load_be32(ip + 16);
  s.sport = load_be16(tcp);
  s.dport = load_be16(tcp + 2);
  s.seq = load_be32(tcp + 4);
  s.ack = load_be32(tcp + 8);
  s.payload_len = total - 20 - header_len;
  s.window = load_be16(tcp + 14);
  s.flags = flags;
  return true;
}

// A whole frame in one buffer.
inline ParseResult parse_frame(const std::uint8_t* data, std::size_t len, PacketView& v) noexcept {
  return parse_frame(data, len, len, v);
}

}  // namespace ctlb::packet
