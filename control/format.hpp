#pragma once
// Text helpers shared by ctlbctl's outputs: addresses, tuples, flags, JSON.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "dataplane/flow/flow_key.hpp"
#include "dataplane/flow/tracker.hpp"
#include "dataplane/packet/packet_view.hpp"

namespace ctlb::control {

std::string format_ipv4(std::uint32_t host_order);
std::string format_ipv6(const std::uint8_t addr[16]);
// "198.18.1.2:40000" or "[2001:2::1]:80"
std::string format_endpoint(const packet::PacketView& v, bool source);
// The flow in its original direction: "initiator > responder".
std::string format_flow(const packet::PacketView& v, bool packet_is_orig);
// A flow key in its original direction: "initiator > responder".
std::string format_key(const flow::KeyV4& k, bool initiator_is_lo);
std::string format_key(const flow::KeyV6& k, bool initiator_is_lo);
// tcpdump-like flags: S, SA, F, FA, R, RA, P, ., U, E, W.
std::string format_flags(std::uint8_t flags);
std::string json_escape(std::string_view s);
// The time within which 99 % of the handshakes of a histogram (counts per
// flow::kHandshakeBucketMs bucket, flow::kHandshakeBuckets of them) fell:
// the upper bound of the bucket that reaches 99 %, "<1 ms", "<200 ms",
// "<3 s", or ">=3 s" for the last one; "-" when it is empty or not that size.
std::string format_handshake_p99(std::span<const std::uint64_t> buckets);

}  // namespace ctlb::control
