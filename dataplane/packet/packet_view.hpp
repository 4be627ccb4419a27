#pragma once
// The compact view of one frame that every later stage works on. All fields
// are in host byte order; addresses keep their wire bytes.
//
// parse_frame() writes every field that its result makes meaningful, so the
// dataplane parses into uninitialised views: for Tcp, all of them except the
// last 12 bytes of IPv4 addresses and VLAN IDs past vlan_count; for NotIp,
// ether_type (tests/unit ParseWrites checks it). The zero defaults below are
// for views built by hand.
#include <cstdint>

#include "dataplane/packet/parse_result.hpp"

namespace ctlb::packet {

enum class IpFamily : std::uint8_t { None = 0, V4 = 4, V6 = 6 };

enum class Fragment : std::uint8_t {
  None,   // not fragmented
  First,  // offset 0 with more fragments: the TCP header is here, the length is partial
  Later,  // offset > 0: no TCP header
};

// TCP flag bits as on the wire (byte 13 of the header).
namespace tcpflag {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kUrg = 0x20;
inline constexpr std::uint8_t kEce = 0x40;
inline constexpr std::uint8_t kCwr = 0x80;
}  // namespace tcpflag

struct TcpOptions {
  std::uint16_t mss = 0;
  std::uint8_t wscale = 0;       // as sent (not clamped)
  bool has_mss = false;
  bool has_wscale = false;
  bool sack_permitted = false;
  bool malformed = false;        // an option overran the header: parsing stopped there
  std::uint8_t sack_blocks = 0;  // number of SACK blocks (max 4)
  std::uint32_t sack_right[4] = {};  // right edges of the SACK blocks
};

struct PacketView {
  // L2
  std::uint16_t ether_type = 0;  // innermost ethertype
  std::uint8_t vlan_count = 0;
  std::uint16_t vlan_tci[2] = {};
  // L3
  IpFamily family = IpFamily::None;
  Fragment fragment = Fragment::None;
  std::uint8_t l4_proto = 0;
  std::uint8_t ttl = 0;  // TTL or hop limit
  std::uint16_t l3_offset = 0;
  std::uint16_t l4_offset = 0;
  std::uint32_t l4_len = 0;  // IP payload after all extension headers, from the IP length fields
  std::uint8_t src[16] = {};  // IPv4 uses the first 4 bytes
  std::uint8_t dst[16] = {};
  // L4 (TCP)
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint16_t window = 0;
  std::uint8_t flags = 0;
  std::uint8_t header_len = 0;  // TCP data offset in bytes
  std::uint32_t payload_len = 0;
  TcpOptions options;

  bool has(std::uint8_t flag) const noexcept { return (flags & flag) != 0; }
};

// The common case of a tracked connection's traffic, read straight from
// the frame without a PacketView: a data or pure-ACK segment (ACK, with PSH,
// ECE or CWR at most) in untagged Ethernet, IPv4 without options or
// fragmentation, TCP with no options or only NOP, NOP, timestamps. What the
// tracker's in-place path reads, and no more.
struct AckSegment {
  std::uint32_t src;  // host order
  std::uint32_t dst;
  std::uint16_t sport;
  std::uint16_t dport;
  std::uint32_t seq;
  std::uint32_t ack;
  std::uint32_t payload_len;
  std::uint16_t window;
  std::uint8_t flags;
};

// A frame as the parsers take it: `len` bytes at hand from `data`,
// `wire_len` on the wire (more with a chained mbuf or a snaplen capture).
struct Frame {
  const std::uint8_t* data;
  std::uint32_t len;
  std::uint32_t wire_len;
};

}  // namespace ctlb::packet
