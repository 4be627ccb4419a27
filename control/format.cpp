#include "control/format.hpp"

#include <arpa/inet.h>

#include <cstdio>

namespace ctlb::control {

std::string format_ipv4(std::uint32_t a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
  return buf;
}

std::string format_ipv6(const std::uint8_t addr[16]) {
  char buf[INET6_ADDRSTRLEN];
  if (!inet_ntop(AF_INET6, addr, buf, sizeof buf)) return "?";
  return buf;
}

std::string format_endpoint(const packet::PacketView& v, bool source) {
  const std::uint8_t* a = source ? v.src : v.dst;
  const std::uint16_t port = source ? v.sport : v.dport;
  if (v.family == packet::IpFamily::V4)
    return format_ipv4(load_be32(a)) + ":" + std::to_string(port);
  return "[" + format_ipv6(a) + "]:" + std::to_string(port);
}

std::string format_flow(const packet::PacketView& v, bool packet_is_orig) {
  const std::string s = format_endpoint(v, true);
  const std::string d = format_endpoint(v, false);
  return packet_is_orig ? s + " > " + d : d + " > " + s;
}

std::string format_key(const flow::KeyV4& k, bool initiator_is_lo) {
  const int i = initiator_is_lo ? 0 : 1;
  return format_ipv4(k.addr[i]) + ":" + std::to_string(k.port[i]) + " > " + format_ipv4(k.addr[1 - i]) + ":" +
         std::to_string(k.port[1 - i]);
}

std::string format_key(const flow::KeyV6& k, bool initiator_is_lo) {
  const int i = initiator_is_lo ? 0 : 1;
  return "[" + format_ipv6(k.addr[i]) + "]:" + std::to_string(k.port[i]) + " > [" + format_ipv6(k.addr[1 - i]) +
         "]:" + std::to_string(k.port[1 - i]);
}

std::string format_flags(std::uint8_t f) {
  using namespace packet::tcpflag;
  std::string s;
  if (f & kSyn) s += 'S';
  if (f & kFin) s += 'F';
  if (f & kRst) s += 'R';
  if (f & kPsh) s += 'P';
  if (f & kUrg) s += 'U';
  if (f & kEce) s += 'E';
  if (f & kCwr) s += 'W';
  if (f & kAck) s += (s.empty() ? "." : "A");
  if (s.empty()) s = "none";
  return s;
}

std::string json_escape(std::string_view in) {
  std::string out;
  out.reserve(in.size() + 2);
  for (char c : in) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string format_handshake_p99(std::span<const std::uint64_t> buckets) {
  if (buckets.size() != flow::kHandshakeBuckets) return "-";
  std::uint64_t total = 0;
  for (const std::uint64_t n : buckets) total += n;
  if (total == 0) return "-";
  const std::uint64_t want = total - total / 100;  // ceil(0.99 * total)
  std::uint64_t seen = 0;
  std::size_t b = 0;
  while ((seen += buckets[b]) < want) ++b;  // reaches `want` at the last bucket at the latest
  const bool last = b + 1 == flow::kHandshakeBuckets;
  const std::uint32_t ms = flow::kHandshakeBucketMs[last ? b - 1 : b];
  const std::string bound = ms < 1000 ? std::to_string(ms) + " ms" : std::to_string(ms / 1000) + " s";
  return (last ? ">=" : "<") + bound;
}

}  // namespace ctlb::control
