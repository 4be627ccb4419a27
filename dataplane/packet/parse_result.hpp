#pragma once
// Every outcome of parsing one frame: one list generates the enum, the
// counter names and their descriptions (exported by the dataplane, printed
// by `ctlbctl trace`).
#include <array>
#include <cstdint>
#include <string_view>

namespace ctlb::packet {

// X(enumerator, counter name, description)
#define CTLB_PARSE_RESULTS(X)                                                                    \
  X(Tcp, "tcp", "TCP segment parsed")                                                            \
  X(NotIp, "not_ip", "frame is neither IPv4 nor IPv6 (ARP, LLDP, ...)")                          \
  X(NonTcp, "non_tcp", "IP packet carrying another protocol than TCP")                           \
  X(IpFragment, "ip_fragment", "non-first IP fragment: no TCP header to track")                  \
  X(EthTruncated, "eth_truncated", "frame shorter than an Ethernet header")                      \
  X(VlanTruncated, "vlan_truncated", "frame ends inside an 802.1Q/802.1ad tag")                  \
  X(VlanTooDeep, "vlan_too_deep", "more than two stacked VLAN tags")                             \
  X(Ipv4Truncated, "ipv4_truncated", "fewer than 20 bytes of IPv4 header")                       \
  X(Ipv4BadVersion, "ipv4_bad_version", "IPv4 ethertype but IP version is not 4")                \
  X(Ipv4BadIhl, "ipv4_bad_ihl", "IPv4 header length (IHL) below 5 words")                        \
  X(Ipv4HeaderOverrun, "ipv4_header_overrun", "IPv4 header length (IHL) past the frame")         \
  X(Ipv4TotalLenTooSmall, "ipv4_total_len_too_small", "IPv4 total length below header length")   \
  X(Ipv4TotalLenOverrun, "ipv4_total_len_overrun", "IPv4 total length past the frame")           \
  X(Ipv6Truncated, "ipv6_truncated", "fewer than 40 bytes of IPv6 header")                       \
  X(Ipv6BadVersion, "ipv6_bad_version", "IPv6 ethertype but IP version is not 6")                \
  X(Ipv6PayloadOverrun, "ipv6_payload_overrun", "IPv6 payload length past the frame")            \
  X(Ipv6ExtTruncated, "ipv6_ext_truncated", "IPv6 extension header past the payload")            \
  X(Ipv6ExtTooMany, "ipv6_ext_too_many", "more than 8 IPv6 extension headers (loop guard)")      \
  X(TcpTruncated, "tcp_truncated", "fewer than 20 bytes of TCP header")                          \
  X(TcpBadDataOffset, "tcp_bad_data_offset", "TCP data offset below 5 words")                    \
  X(TcpDataOffsetOverrun, "tcp_data_offset_overrun", "TCP data offset past the IP payload")

enum class ParseResult : std::uint8_t {
#define CTLB_X(e, name, desc) e,
  CTLB_PARSE_RESULTS(CTLB_X)
#undef CTLB_X
};

inline constexpr std::size_t kParseResultCount = 0
#define CTLB_X(e, name, desc) +1
    CTLB_PARSE_RESULTS(CTLB_X)
#undef CTLB_X
    ;

inline constexpr std::array<std::string_view, kParseResultCount> kParseResultNames = {
#define CTLB_X(e, name, desc) name,
    CTLB_PARSE_RESULTS(CTLB_X)
#undef CTLB_X
};

inline constexpr std::array<std::string_view, kParseResultCount> kParseResultDescriptions = {
#define CTLB_X(e, name, desc) desc,
    CTLB_PARSE_RESULTS(CTLB_X)
#undef CTLB_X
};

constexpr std::string_view name(ParseResult r) noexcept {
  return kParseResultNames[static_cast<std::size_t>(r)];
}

// A malformed frame, as opposed to a well-formed one we do not track.
constexpr bool is_malformed(ParseResult r) noexcept { return r >= ParseResult::EthTruncated; }

}  // namespace ctlb::packet
