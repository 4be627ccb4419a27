#pragma once
// A small byte-by-byte frame builder for the unit tests: Ethernet (+ VLAN
// tags), IPv4 (+ options, fragments), IPv6 (+ extension headers), TCP (+
// options), UDP, ICMP, ARP. Every length field is computed here, by hand,
// from the bytes actually emitted, so that a test can then break exactly one
// of them.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace ctlb_test {

using Bytes = std::vector<std::uint8_t>;

inline void put8(Bytes& b, std::uint8_t v) { b.push_back(v); }
inline void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
inline void put32(Bytes& b, std::uint32_t v) {
  put16(b, static_cast<std::uint16_t>(v >> 16));
  put16(b, static_cast<std::uint16_t>(v));
}
inline void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }
inline void set16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

// ---- TCP --------------------------------------------------------------------

// Option helpers: each returns the raw option bytes.
inline Bytes opt_mss(std::uint16_t mss) {
  Bytes b{2, 4};
  put16(b, mss);
  return b;
}
inline Bytes opt_wscale(std::uint8_t s) { return Bytes{3, 3, s}; }
inline Bytes opt_sack_perm() { return Bytes{4, 2}; }
inline Bytes opt_nop() { return Bytes{1}; }
inline Bytes opt_eol() { return Bytes{0}; }
inline Bytes opt_sack(std::initializer_list<std::pair<std::uint32_t, std::uint32_t>> blocks) {
  Bytes b{5, static_cast<std::uint8_t>(2 + 8 * blocks.size())};
  for (auto [l, r] : blocks) {
    put32(b, l);
    put32(b, r);
  }
  return b;
}
inline Bytes opt_timestamp(std::uint32_t val, std::uint32_t ecr) {
  Bytes b{8, 10};
  put32(b, val);
  put32(b, ecr);
  return b;
}

struct Tcp {
  std::uint16_t sport = 40000;
  std::uint16_t dport = 80;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0x10;
  std::uint16_t window = 65535;
  Bytes options;                 // raw; padded with EOL (0) to a multiple of 4
  std::size_t payload_len = 0;   // payload bytes 0xAB
  int data_offset_words = -1;    // -1: from the header actually emitted

  Bytes build() const {
    Bytes opts = options;
    while (opts.size() % 4) opts.push_back(0);
    Bytes b;
    put16(b, sport);
    put16(b, dport);
    put32(b, seq);
    put32(b, ack);
    const int doff = data_offset_words >= 0 ? data_offset_words : static_cast<int>((20 + opts.size()) / 4);
    put8(b, static_cast<std::uint8_t>(doff << 4));
    put8(b, flags);
    put16(b, window);
    put16(b, 0);  // checksum (not verified by the parser)
    put16(b, 0);  // urgent pointer
    append(b, opts);
    b.insert(b.end(), payload_len, 0xAB);
    return b;
  }
};

inline Bytes udp(std::uint16_t sport, std::uint16_t dport, std::size_t payload) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, static_cast<std::uint16_t>(8 + payload));
  put16(b, 0);
  b.insert(b.end(), payload, 0x11);
  return b;
}

inline Bytes icmp_echo() {
  return Bytes{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
}

// ---- IP ---------------------------------------------------------------------

inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;

struct Ipv4 {
  std::uint8_t src[4] = {10, 0, 0, 1};
  std::uint8_t dst[4] = {10, 0, 0, 2};
  std::uint8_t proto = kProtoTcp;
  std::uint8_t ttl = 64;
  int version = 4;
  int ihl_words = 5;             // options beyond 5 words are NOP-filled
  std::uint16_t frag_field = 0x4000;  // DF, offset 0
  int total_len = -1;            // -1: header + payload

  Bytes build(const Bytes& payload) const {
    Bytes b;
    put8(b, static_cast<std::uint8_t>((version << 4) | (ihl_words & 0x0f)));
    put8(b, 0);  // DSCP/ECN
    const std::size_t hdr = static_cast<std::size_t>(ihl_words < 5 ? 5 : ihl_words) * 4;
    put16(b, static_cast<std::uint16_t>(total_len >= 0 ? total_len : static_cast<int>(hdr + payload.size())));
    put16(b, 0x1234);  // id
    put16(b, frag_field);
    put8(b, ttl);
    put8(b, proto);
    put16(b, 0);  // checksum
    b.insert(b.end(), src, src + 4);
    b.insert(b.end(), dst, dst + 4);
    while (b.size() < hdr) b.push_back(1);  // NOP options
    append(b, payload);
    return b;
  }
};

// An IPv6 extension header: type (0, 43, 60: length in 8-byte units beyond
// the first 8; 44: fixed 8 bytes).
struct Ext {
  std::uint8_t type;
  std::size_t len8 = 0;          // hdr ext len field (0, 43, 60)
  std::uint16_t frag_field = 0;  // 44 only: offset << 3 | M
};

struct Ipv6 {
  std::uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  std::uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  std::uint8_t next = kProtoTcp;  // upper-layer protocol after the extension headers
  std::uint8_t hop_limit = 63;
  int version = 6;
  std::vector<Ext> exts;
  int payload_len = -1;  // -1: extension headers + payload

  Bytes build(const Bytes& payload) const {
    Bytes ext_bytes;
    for (std::size_t i = 0; i < exts.size(); ++i) {
      const std::uint8_t nh = i + 1 < exts.size() ? exts[i + 1].type : next;
      const Ext& e = exts[i];
      if (e.type == 44) {
        put8(ext_bytes, nh);
        put8(ext_bytes, 0);
        put16(ext_bytes, e.frag_field);
        put32(ext_bytes, 0xdeadbeef);  // identification
      } else {
        put8(ext_bytes, nh);
        put8(ext_bytes, static_cast<std::uint8_t>(e.len8));
        // PadN filling the remaining 6 + 8 * len8 bytes.
        const std::size_t rest = 6 + 8 * e.len8;
        put8(ext_bytes, 1);
        put8(ext_bytes, static_cast<std::uint8_t>(rest - 2));
        ext_bytes.insert(ext_bytes.end(), rest - 2, 0);
      }
    }
    Bytes b;
    put32(b, static_cast<std::uint32_t>(version) << 28);
    put16(b, static_cast<std::uint16_t>(payload_len >= 0 ? payload_len
                                                         : static_cast<int>(ext_bytes.size() + payload.size())));
    put8(b, exts.empty() ? next : exts[0].type);
    put8(b, hop_limit);
    b.insert(b.end(), src, src + 16);
    b.insert(b.end(), dst, dst + 16);
    append(b, ext_bytes);
    append(b, payload);
    return b;
  }
};

// ---- Ethernet ---------------------------------------------------------------

inline constexpr std::uint16_t kEtherIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherIpv6 = 0x86DD;
inline constexpr std::uint16_t kEtherArp = 0x0806;

struct Tag {
  std::uint16_t tpid;  // 0x8100, 0x88A8, 0x9100
  std::uint16_t tci;
};

inline Bytes ether(std::uint16_t type, const Bytes& l3, std::vector<Tag> tags = {}, std::size_t pad_to = 0) {
  Bytes b{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
  for (const Tag& t : tags) {
    put16(b, t.tpid);
    put16(b, t.tci);
  }
  put16(b, type);
  append(b, l3);
  while (b.size() < pad_to) b.push_back(0);  // Ethernet padding
  return b;
}

inline Bytes arp_request() {
  Bytes a;
  put16(a, 1);
  put16(a, 0x0800);
  put8(a, 6);
  put8(a, 4);
  put16(a, 1);
  a.insert(a.end(), {0x02, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2});
  return ether(kEtherArp, a, {}, 60);
}

// Convenience: a whole IPv4/TCP frame.
inline Bytes tcp4_frame(const Tcp& t, const Ipv4& ip = Ipv4{}, std::vector<Tag> tags = {}, std::size_t pad_to = 0) {
  return ether(kEtherIpv4, ip.build(t.build()), std::move(tags), pad_to);
}
inline Bytes tcp6_frame(const Tcp& t, const Ipv6& ip = Ipv6{}, std::vector<Tag> tags = {}) {
  return ether(kEtherIpv6, ip.build(t.build()), std::move(tags));
}

}  // namespace ctlb_test
