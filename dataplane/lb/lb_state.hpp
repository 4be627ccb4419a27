#pragma once
// The load balancer's state as the workers read it: VIPs, backend slots,
// Maglev tables, the ports' connected prefixes and gateways, and small hash
// indices to classify a packet (to a VIP, or from a backend). Plain data in
// one block of shared memory (no pointers: ctlb-control, another process,
// writes new generations of it), so that the same functions serve the
// dataplane, ctlb-control and the unit tests.
//
// Backend slots are never compacted: a flow entry stores its backend's slot
// index (flow::Cold::backend), and a connection keeps its backend until it
// is over, whatever happens to the pool. A removed backend keeps its slot
// (state Removed) for the connections it still has; re-adding the same
// backend to the same VIP brings the slot back.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dataplane/common/bytes.hpp"
#include "dataplane/flow/crc32c.hpp"
#include "dataplane/lb/maglev.hpp"
#include "dataplane/lb/nat.hpp"

namespace ctlb::lb {

inline constexpr std::uint32_t kMaxVips = static_cast<std::uint32_t>(config::kMaxVips);
inline constexpr std::uint32_t kMaxSlots = static_cast<std::uint32_t>(config::kMaxBackends);
inline constexpr std::uint32_t kMaxPorts = static_cast<std::uint32_t>(config::kMaxPorts);
inline constexpr std::uint32_t kMaxPrefixes = static_cast<std::uint32_t>(config::kMaxPortAddresses);  // per port
inline constexpr std::uint16_t kNoPort = 0xffff;
inline constexpr std::uint32_t kVipIndexSize = 256;    // > 2 x kMaxVips, a power of two
inline constexpr std::uint32_t kSlotIndexSize = 4096;  // > 2 x kMaxSlots, a power of two
inline constexpr std::uint32_t kNoVip = 0xffffffffu;
// IPv4 classification indices (State::vip4_index, slot4_index): sizes as
// powers of two, > 2 x kMaxVips and > 2 x kMaxSlots.
inline constexpr unsigned kVip4IndexBits = 7;
inline constexpr unsigned kSlot4IndexBits = 11;
inline constexpr std::uint16_t kSlot4Multi = 0x8000;  // in a slot4_index value: more slots have this endpoint

enum class SlotState : std::uint8_t { Free = 0, Active, Draining, Down, Removed };

inline const char* slot_state_name(SlotState s) noexcept {
  switch (s) {
    case SlotState::Free: return "free";
    case SlotState::Active: return "active";
    case SlotState::Draining: return "draining";
    case SlotState::Down: return "down";
    case SlotState::Removed: return "removed";
  }
  return "?";
}

struct BackendSlot {
  std::uint8_t addr[16];
  std::uint8_t nexthop[16];  // the backend itself when connected, else the gateway
  std::uint16_t port;        // TCP port
  std::uint16_t vip;         // index of its VIP
  std::uint16_t out_port;    // port index it is reached through
  std::uint8_t family;       // 4 or 6
  SlotState state;
  std::uint32_t weight;
  // IPv4 (backend and VIP): the checksum changes of the NAT rewrites, VIP
  // to backend on the way in, backend to VIP on the way out (fill_slot()).
  NatChange4 nat_in;
  NatChange4 nat_out;
  // Its VIP's port, and IPv4 address (network order): what a return packet
  // is rewritten to and tracked as, from the slot's line that
  // classification read, not the VipSlot's.
  std::uint16_t vip_port;
  std::uint8_t vip_addr4[4];
  std::uint8_t pad[6];
};
static_assert(sizeof(BackendSlot) == 64);

struct VipSlot {
  std::uint8_t addr[16];
  std::uint16_t port;
  std::uint8_t family;  // 0: unused
  std::uint8_t pad;
  std::uint32_t table_size;
  std::uint32_t table_offset;  // in entries, from the start of the tables
  char name[config::kMaxVipName + 1];
  std::uint8_t reserved[36];
};
static_assert(sizeof(VipSlot) == 128);

// An IPv4 endpoint in a classification index: the address in host order
// (as packet::AckSegment has it), the TCP port, and what it is (0: an
// empty cell). One 8-byte cell holds all a lookup compares.
struct Endpoint4 {
  std::uint32_t addr;
  std::uint16_t port;
  std::uint16_t value;  // vip4_index: VIP + 1; slot4_index: slot + 1, | kSlot4Multi
};
static_assert(sizeof(Endpoint4) == 8);

struct PortPrefix {
  std::uint8_t family;  // 0: unused
  std::uint8_t len;
  std::uint8_t addr[16];
};

struct PortRoute {
  PortPrefix prefixes[kMaxPrefixes];
  std::uint8_t gateway_v4[4];
  std::uint8_t gateway_v6[16];
  std::uint8_t has_gateway_v4;
  std::uint8_t has_gateway_v6;
  std::uint8_t mac[6];
};

// An IPv4 route compiled from the ports (see State::routes_v4), in host
// byte order: `addr & mask == net` matches.
struct Route4 {
  std::uint32_t net;
  std::uint32_t mask;
  std::uint16_t port;
  std::uint8_t via_gateway;  // 1: the port's IPv4 gateway is the next hop; 0: the destination itself
  std::uint8_t pad;
};
inline constexpr std::uint32_t kMaxRoutes4 = kMaxPorts * kMaxPrefixes + 1;

// One generation of the state. The Maglev tables (std::uint16_t slot
// indices, kNoBackend for none) follow it in memory: see tables().
struct alignas(64) State {
  std::uint64_t generation;
  std::uint32_t vip_count;
  std::uint32_t slot_count;     // slots ever used (high-water mark)
  std::uint32_t table_entries;  // sum of the VIPs' table sizes
  std::uint32_t port_count;
  PortRoute ports[kMaxPorts];
  // What route() does for IPv4, compiled from `ports` by init_state(): the
  // connected IPv4 prefixes, longest first (equal lengths in port order),
  // then the first port's gateway as 0.0.0.0/0. The first match is the route.
  // Valid because the ports change only with a restart (init_state); a
  // reload that changed them in place would have to compile it again.
  Route4 routes_v4[kMaxRoutes4];
  std::uint32_t route_v4_count;
  std::uint32_t pad0;
  VipSlot vips[kMaxVips];
  BackendSlot slots[kMaxSlots];
  std::uint16_t vip_index[kVipIndexSize];    // hash of (address, port) -> VIP + 1; 0 empty
  std::uint16_t slot_index[kSlotIndexSize];  // hash of (address, port) -> slot + 1; 0 empty; repeats allowed
  // The same for IPv4 endpoints, with the endpoint in the cell itself: a
  // lookup is one multiply and, in the common case, one cell, where the
  // indices above take two CRC32 steps, the cell, and the VIP or slot to
  // compare. An endpoint of several slots (a backend in several VIPs' pools)
  // has one cell: one of its slots, marked kSlot4Multi.
  Endpoint4 vip4_index[1u << kVip4IndexBits];
  Endpoint4 slot4_index[1u << kSlot4IndexBits];

  std::uint16_t* tables() noexcept { return reinterpret_cast<std::uint16_t*>(this + 1); }
  const std::uint16_t* tables() const noexcept { return reinterpret_cast<const std::uint16_t*>(this + 1); }
  std::span<const std::uint16_t> table(std::uint32_t vip) const noexcept {
    return {tables() + vips[vip].table_offset, vips[vip].table_size};
  }
};

// Bytes of a State with its tables, rounded to a cache line.
constexpr std::size_t state_bytes(std::uint32_t table_entries) noexcept {
  return (sizeof(State) + table_entries * sizeof(std::uint16_t) + 63) & ~std::size_t{63};
}

inline std::uint32_t table_entries_of(const config::Config& c) noexcept {
  std::uint32_t n = 0;
  for (const auto& v : c.lb.vips) n += v.table_size;
  return n;
}

namespace detail {

inline std::uint32_t endpoint_hash(std::uint8_t family, const std::uint8_t* addr, std::uint16_t port) noexcept {
  std::uint32_t h = flow::crc32c_u32(0x6c62u ^ family, port);
  std::uint32_t w;
  for (int i = 0; i < (family == 4 ? 4 : 16); i += 4) {
    std::memcpy(&w, addr + i, 4);
    h = flow::crc32c_u32(h, w);
  }
  return h;
}

inline bool same_addr(std::uint8_t family, const std::uint8_t* a, const std::uint8_t* b) noexcept {
  return ip_equal(family, a, b);
}

inline bool in_prefix(const PortPrefix& p, std::uint8_t family, const std::uint8_t* addr) noexcept {
  return p.family == family && ip_prefix_equal(family, p.addr, addr, p.len);
}

}  // namespace detail

// ------------------------------------------------------------ lookups (workers)

// The VIP with this address and TCP port, or kNoVip.
inline std::uint32_t find_vip(const State& s, std::uint8_t family, const std::uint8_t* addr,
                              std::uint16_t port) noexcept {
  std::uint32_t i = detail::endpoint_hash(family, addr, port) & (kVipIndexSize - 1);
  for (std::uint32_t probes = 0; probes < kVipIndexSize; ++probes, i = (i + 1) & (kVipIndexSize - 1)) {
    const std::uint16_t e = s.vip_index[i];
    if (!e) return kNoVip;
    const VipSlot& v = s.vips[e - 1];
    if (v.port == port && v.family == family && detail::same_addr(family, v.addr, addr)) return e - 1u;
  }
  return kNoVip;
}

// Calls f(slot index) for every backend slot with this address and port
// (one per VIP it belongs to) until f returns true; returns whether it did.
template <class F>
bool for_each_slot(const State& s, std::uint8_t family, const std::uint8_t* addr, std::uint16_t port, F&& f) noexcept {
  std::uint32_t i = detail::endpoint_hash(family, addr, port) & (kSlotIndexSize - 1);
  for (std::uint32_t probes = 0; probes < kSlotIndexSize; ++probes, i = (i + 1) & (kSlotIndexSize - 1)) {
    const std::uint16_t e = s.slot_index[i];
    if (!e) return false;
    const BackendSlot& b = s.slots[e - 1];
    if (b.port == port && b.family == family && detail::same_addr(family, b.addr, addr) && f(e - 1u)) return true;
  }
  return false;
}

namespace detail {

// The first cell of (addr, port) in an index of 2^kBits cells: the top bits
// of a multiplicative hash, which every bit of the address and port moves.
template <unsigned kBits>
inline std::uint32_t endpoint4_cell(std::uint32_t addr, std::uint16_t port) noexcept {
  const std::uint64_t key = std::uint64_t{addr} << 16 | port;
  return static_cast<std::uint32_t>((key * 0x9E3779B97F4A7C15ull) >> (64 - kBits));
}

// Building an index (never full): the cell holding (addr, port), or the
// empty cell where it goes.
template <unsigned kBits>
inline Endpoint4& endpoint4_cell_of(Endpoint4* index, std::uint32_t addr, std::uint16_t port) noexcept {
  constexpr std::uint32_t kMask = (1u << kBits) - 1;
  std::uint32_t i = endpoint4_cell<kBits>(addr, port);
  while (index[i].value && !(index[i].addr == addr && index[i].port == port)) i = (i + 1) & kMask;
  return index[i];
}

// The value of (addr, port) in an index of 2^kBits cells, or 0.
template <unsigned kBits>
inline std::uint16_t find_endpoint4(const Endpoint4* index, std::uint32_t addr, std::uint16_t port) noexcept {
  constexpr std::uint32_t kMask = (1u << kBits) - 1;
  std::uint32_t i = endpoint4_cell<kBits>(addr, port);
  for (std::uint32_t probes = 0; probes <= kMask; ++probes, i = (i + 1) & kMask) {
    const Endpoint4& e = index[i];
    if (e.value == 0) return 0;
    if (e.addr == addr && e.port == port) return e.value;
  }
  return 0;
}

}  // namespace detail

// IPv4: the VIP with this address (host order) and port, or kNoVip.
// Answers as find_vip().
inline std::uint32_t find_vip4(const State& s, std::uint32_t addr, std::uint16_t port) noexcept {
  const std::uint16_t v = detail::find_endpoint4<kVip4IndexBits>(s.vip4_index, addr, port);
  return v ? v - 1u : kNoVip;
}

// IPv4: a backend slot with this address and port (kNoVip: none), and in
// `multi` whether there are more (for_each_slot() finds them all).
inline std::uint32_t find_slot4(const State& s, std::uint32_t addr, std::uint16_t port, bool& multi) noexcept {
  const std::uint16_t v = detail::find_endpoint4<kSlot4IndexBits>(s.slot4_index, addr, port);
  multi = (v & kSlot4Multi) != 0;
  return v ? (v & ~kSlot4Multi) - 1u : kNoVip;
}

namespace detail {

// route() from the ports' prefixes and gateways themselves: IPv6's, and
// what init_state() compiles routes_v4 from.
inline bool route_by_ports(const State& s, std::uint8_t family, const std::uint8_t* addr, std::uint16_t& out_port,
                           const std::uint8_t*& nexthop) noexcept {
  int best = -1;
  for (std::uint32_t p = 0; p < s.port_count; ++p)
    for (const PortPrefix& pre : s.ports[p].prefixes)
      if (detail::in_prefix(pre, family, addr) && pre.len > best) {
        best = pre.len;
        out_port = static_cast<std::uint16_t>(p);
        nexthop = addr;
      }
  if (best >= 0) return true;
  for (std::uint32_t p = 0; p < s.port_count; ++p) {
    const PortRoute& r = s.ports[p];
    if (family == 4 && r.has_gateway_v4) {
      out_port = static_cast<std::uint16_t>(p);
      nexthop = r.gateway_v4;
      return true;
    }
    if (family == 6 && r.has_gateway_v6) {
      out_port = static_cast<std::uint16_t>(p);
      nexthop = r.gateway_v6;
      return true;
    }
  }
  return false;
}

// Fills s.routes_v4 from s.ports (see State).
inline void compile_routes_v4(State& s) noexcept {
  std::uint32_t n = 0;
  for (int len = 32; len >= 0; --len)
    for (std::uint32_t p = 0; p < s.port_count; ++p)
      for (const PortPrefix& pre : s.ports[p].prefixes)
        if (pre.family == 4 && pre.len == len) {
          const std::uint32_t mask = ipv4_prefix_mask(static_cast<unsigned>(len));
          s.routes_v4[n++] = Route4{load_be32(pre.addr) & mask, mask, static_cast<std::uint16_t>(p), 0, 0};
        }
  for (std::uint32_t p = 0; p < s.port_count; ++p)
    if (s.ports[p].has_gateway_v4) {
      s.routes_v4[n++] = Route4{0, 0, static_cast<std::uint16_t>(p), 1, 0};
      break;
    }
  s.route_v4_count = n;
}

}  // namespace detail

// Where a destination is sent: the port of the longest matching connected
// prefix and the destination itself as next hop (`nexthop` = `addr`, the
// same pointer), else the port with the family's gateway and the gateway
// (a pointer into s.ports). False: no route. IPv4 (every return
// packet's client, in the common case) from the compiled routes_v4.
inline bool route(const State& s, std::uint8_t family, const std::uint8_t* addr, std::uint16_t& out_port,
                  const std::uint8_t*& nexthop) noexcept {
  if (family != 4) return detail::route_by_ports(s, family, addr, out_port, nexthop);
  const std::uint32_t a = load_be32(addr);
  for (std::uint32_t i = 0; i < s.route_v4_count; ++i) {
    const Route4& r = s.routes_v4[i];
    if ((a & r.mask) == r.net) {
      out_port = r.port;
      nexthop = r.via_gateway ? s.ports[r.port].gateway_v4 : addr;
      return true;
    }
  }
  return false;
}

// True if the address is one of the box's own on that port, or a VIP's
// (answered on every port).
inline bool is_local_address(const State& s, std::uint16_t port, std::uint8_t family, const std::uint8_t* addr) noexcept {
  if (port < s.port_count)
    for (const PortPrefix& pre : s.ports[port].prefixes)
      if (pre.family == family && detail::same_addr(family, pre.addr, addr)) return true;
  for (std::uint32_t v = 0; v < s.vip_count; ++v)
    if (s.vips[v].family == family && detail::same_addr(family, s.vips[v].addr, addr)) return true;
  return false;
}

// The source address for requests (ARP) out of a port towards `target`: the
// port's address whose prefix holds the target, else its first of the family.
inline const std::uint8_t* source_address(const State& s, std::uint16_t port, std::uint8_t family,
                                          const std::uint8_t* target) noexcept {
  const PortPrefix* first = nullptr;
  for (const PortPrefix& pre : s.ports[port].prefixes) {
    if (pre.family != family) continue;
    if (detail::in_prefix(pre, family, target)) return pre.addr;
    if (!first) first = &pre;
  }
  return first ? first->addr : nullptr;
}

// ------------------------------------------------------------ building (off the workers)

// Rebuilds the hash indices from the VIPs and slots.
inline void rebuild_indices(State& s) noexcept {
  std::memset(s.vip_index, 0, sizeof s.vip_index);
  std::memset(s.slot_index, 0, sizeof s.slot_index);
  for (std::uint32_t v = 0; v < s.vip_count; ++v) {
    const VipSlot& vs = s.vips[v];
    std::uint32_t i = detail::endpoint_hash(vs.family, vs.addr, vs.port) & (kVipIndexSize - 1);
    while (s.vip_index[i]) i = (i + 1) & (kVipIndexSize - 1);
    s.vip_index[i] = static_cast<std::uint16_t>(v + 1);
  }
  for (std::uint32_t b = 0; b < s.slot_count; ++b) {
    const BackendSlot& bs = s.slots[b];
    if (bs.state == SlotState::Free) continue;
    std::uint32_t i = detail::endpoint_hash(bs.family, bs.addr, bs.port) & (kSlotIndexSize - 1);
    while (s.slot_index[i]) i = (i + 1) & (kSlotIndexSize - 1);
    s.slot_index[i] = static_cast<std::uint16_t>(b + 1);
  }
  std::memset(s.vip4_index, 0, sizeof s.vip4_index);
  std::memset(s.slot4_index, 0, sizeof s.slot4_index);
  for (std::uint32_t v = 0; v < s.vip_count; ++v) {
    const VipSlot& vs = s.vips[v];
    if (vs.family != 4) continue;
    const std::uint32_t addr = load_be32(vs.addr);
    // VIP endpoints are unique (init_state()), so the cell is an empty one.
    detail::endpoint4_cell_of<kVip4IndexBits>(s.vip4_index, addr, vs.port) =
        Endpoint4{addr, vs.port, static_cast<std::uint16_t>(v + 1)};
  }
  for (std::uint32_t b = 0; b < s.slot_count; ++b) {
    const BackendSlot& bs = s.slots[b];
    if (bs.state == SlotState::Free || bs.family != 4) continue;
    const std::uint32_t addr = load_be32(bs.addr);
    Endpoint4& cell = detail::endpoint4_cell_of<kSlot4IndexBits>(s.slot4_index, addr, bs.port);
    if (cell.value) cell.value |= kSlot4Multi;
    else cell = Endpoint4{addr, bs.port, static_cast<std::uint16_t>(b + 1)};
  }
}

// Rebuilds one VIP's Maglev table from its Active backends (draining, down
// and removed ones take no new connections).
inline void rebuild_table(State& s, std::uint32_t vip) {
  std::vector<MaglevBackend> pool;
  std::vector<std::uint16_t> slot_of;
  for (std::uint32_t b = 0; b < s.slot_count; ++b) {
    const BackendSlot& bs = s.slots[b];
    if (bs.vip != vip || bs.state != SlotState::Active || bs.weight == 0) continue;
    MaglevBackend m{};
    if (bs.family == 4) {
      m.id.addr[10] = m.id.addr[11] = 0xff;  // ::ffff:a.b.c.d
      std::memcpy(m.id.addr + 12, bs.addr, 4);
    } else {
      std::memcpy(m.id.addr, bs.addr, 16);
    }
    m.id.port = bs.port;
    m.weight = bs.weight;
    pool.push_back(m);
    slot_of.push_back(static_cast<std::uint16_t>(b));
  }
  const VipSlot& v = s.vips[vip];
  std::span<std::uint16_t> t(s.tables() + v.table_offset, v.table_size);
  build_maglev(pool, t);
  for (auto& e : t)
    if (e != kNoBackend) e = slot_of[e];
}

inline void set_addr(std::uint8_t* out, const config::IpAddr& a) noexcept {
  std::memcpy(out, a.bytes.data(), a.family == 4 ? 4 : 16);
}

// Puts a backend into its slot (of VIP `vip`, already filled): address,
// route, NAT checksum changes and state. False: no route.
inline bool fill_slot(State& s, std::uint32_t b, std::uint32_t vip, const config::Backend& be) noexcept {
  BackendSlot& bs = s.slots[b];
  bs = BackendSlot{};
  set_addr(bs.addr, be.address);
  bs.family = be.address.family;
  bs.port = be.port;
  bs.vip = static_cast<std::uint16_t>(vip);
  bs.weight = be.weight;
  bs.state = be.state == config::BackendState::Active     ? SlotState::Active
             : be.state == config::BackendState::Draining ? SlotState::Draining
                                                          : SlotState::Down;
  const VipSlot& vs = s.vips[vip];
  bs.vip_port = vs.port;
  if (bs.family == 4 && vs.family == 4) {
    bs.nat_in = nat_change4(vs.addr, vs.port, bs.addr, bs.port);
    bs.nat_out = nat_change4(bs.addr, bs.port, vs.addr, vs.port);
    std::memcpy(bs.vip_addr4, vs.addr, 4);
  }
  const std::uint8_t* nh = nullptr;
  if (!route(s, bs.family, bs.addr, bs.out_port, nh)) return false;
  std::memcpy(bs.nexthop, nh, 16);
  if (bs.family == 4) std::memset(bs.nexthop + 4, 0, 12);
  return true;
}

// Builds generation 1 from a validated configuration (mode lb). `macs` are
// the ports' MAC addresses. `s` must have room for state_bytes(table_entries_of(c)).
inline std::string init_state(State& s, const config::Config& c, std::span<const config::Mac> macs) {
  std::memset(static_cast<void*>(&s), 0, sizeof(State));
  s.generation = 1;
  if (c.ports.size() > kMaxPorts) return "too many ports";
  s.port_count = static_cast<std::uint32_t>(c.ports.size());
  for (std::size_t p = 0; p < c.ports.size(); ++p) {
    PortRoute& r = s.ports[p];
    const auto& cp = c.ports[p];
    if (cp.addresses.size() > kMaxPrefixes) return "port " + cp.name + ": at most 4 addresses";
    for (std::size_t i = 0; i < cp.addresses.size(); ++i) {
      r.prefixes[i].family = cp.addresses[i].addr.family;
      r.prefixes[i].len = cp.addresses[i].len;
      set_addr(r.prefixes[i].addr, cp.addresses[i].addr);
    }
    if (cp.gateway_v4.family == 4) {
      r.has_gateway_v4 = 1;
      std::memcpy(r.gateway_v4, cp.gateway_v4.bytes.data(), 4);
    }
    if (cp.gateway_v6.family == 6) {
      r.has_gateway_v6 = 1;
      std::memcpy(r.gateway_v6, cp.gateway_v6.bytes.data(), 16);
    }
    if (p < macs.size()) std::memcpy(r.mac, macs[p].data(), 6);
  }
  detail::compile_routes_v4(s);
  if (c.lb.vips.size() > kMaxVips) return "too many VIPs";
  std::uint32_t offset = 0;
  for (std::size_t v = 0; v < c.lb.vips.size(); ++v) {
    const config::Vip& cv = c.lb.vips[v];
    VipSlot& vs = s.vips[v];
    set_addr(vs.addr, cv.address);
    vs.family = cv.address.family;
    vs.port = cv.port;
    vs.table_size = cv.table_size;
    vs.table_offset = offset;
    offset += cv.table_size;
    std::snprintf(vs.name, sizeof vs.name, "%s", cv.name.c_str());
    for (const config::Backend& be : cv.backends) {
      if (s.slot_count == kMaxSlots) return "too many backends";
      if (!fill_slot(s, s.slot_count, static_cast<std::uint32_t>(v), be))
        return "VIP " + cv.name + ": a backend has no route";
      ++s.slot_count;
    }
  }
  s.vip_count = static_cast<std::uint32_t>(c.lb.vips.size());
  s.table_entries = offset;
  rebuild_indices(s);
  for (std::uint32_t v = 0; v < s.vip_count; ++v) rebuild_table(s, v);
  return {};
}

// ------------------------------------------------------------ run-time changes

enum class Op : std::uint8_t { Add, Remove, Drain, Down, Weight };

// Parses "198.18.2.11:8080" or "[2001:db8::11]:8080".
inline bool parse_endpoint(const std::string& text, config::IpAddr& addr, std::uint16_t& port) {
  std::string host, p;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find("]:");
    if (close == std::string::npos) return false;
    host = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return false;
    host = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return false;
  if (host.find('\0') != std::string::npos) return false;  // inet_pton would ignore what follows it
  const unsigned long v = std::stoul(p);
  if (v == 0 || v > 65535) return false;
  port = static_cast<std::uint16_t>(v);
  addr = config::IpAddr{};
  if (inet_pton(AF_INET, host.c_str(), addr.bytes.data()) == 1) addr.family = 4;
  else if (inet_pton(AF_INET6, host.c_str(), addr.bytes.data()) == 1) addr.family = 6;
  else return false;
  return true;
}

// "198.18.2.11" / "2001:db8::11".
inline std::string address_text(std::uint8_t family, const std::uint8_t* addr) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, buf, sizeof buf);
  return buf;
}

// "198.18.2.11:8080" / "[2001:db8::11]:8080".
inline std::string endpoint_text(std::uint8_t family, const std::uint8_t* addr, std::uint16_t port) {
  const std::string a = address_text(family, addr);
  return family == 4 ? a + ":" + std::to_string(port) : "[" + a + "]:" + std::to_string(port);
}

// The VIP named `name`, or given as ADDRESS:PORT / [ADDRESS]:PORT; kNoVip.
inline std::uint32_t vip_by_name(const State& s, const std::string& name) {
  for (std::uint32_t v = 0; v < s.vip_count; ++v)
    if (name == s.vips[v].name) return v;
  config::IpAddr a;
  std::uint16_t port = 0;
  if (!parse_endpoint(name, a, port)) return kNoVip;
  return find_vip(s, a.family, a.bytes.data(), port);
}

// Applies one change to `s` (a copy of the live generation) and rebuilds
// what it affects. Returns an error message, empty on success. `weight` is
// used by Add and Weight. A removed backend keeps its slot (its connections
// still need its address); re-adding it to the same VIP brings it back.
inline std::string apply(State& s, Op op, std::uint32_t vip, const config::IpAddr& addr, std::uint16_t port,
                         std::uint32_t weight) {
  if (vip >= s.vip_count) return "no such VIP";
  const VipSlot& vs = s.vips[vip];
  if (addr.family != vs.family) return "the backend's address family differs from the VIP's";
  std::uint32_t slot = kNoVip;
  for_each_slot(s, addr.family, addr.bytes.data(), port, [&](std::uint32_t b) {
    if (s.slots[b].vip != vip) return false;
    slot = b;
    return true;
  });
  const bool present = slot != kNoVip && s.slots[slot].state != SlotState::Removed;
  switch (op) {
    case Op::Add: {
      if (present) return "the backend is already in the VIP (use weight, or remove it first)";
      if (weight == 0 || weight > 65535) return "weight must be 1..65535";
      for (std::uint32_t p = 0; p < s.port_count; ++p)
        for (const PortPrefix& pre : s.ports[p].prefixes)
          if (pre.family == addr.family && detail::same_addr(addr.family, pre.addr, addr.bytes.data()))
            return "the address is one of the box's own (port addresses)";
      if (find_vip(s, addr.family, addr.bytes.data(), port) != kNoVip) return "the backend is a VIP's address and port";
      const bool fresh = slot == kNoVip;
      if (fresh) {
        if (s.slot_count == kMaxSlots) return "no free backend slot (at most " + std::to_string(kMaxSlots) + ")";
        slot = s.slot_count;
      }
      const BackendSlot before = s.slots[slot];
      config::Backend be;
      be.address = addr;
      be.port = port;
      be.weight = weight;
      if (!fill_slot(s, slot, vip, be)) {
        s.slots[slot] = before;
        return "no route to the backend's address (no connected prefix, no gateway)";
      }
      if (fresh) ++s.slot_count;
      break;
    }
    case Op::Remove:
      if (!present) return "no such backend in the VIP";
      s.slots[slot].state = SlotState::Removed;
      break;
    case Op::Drain:
      if (!present) return "no such backend in the VIP";
      s.slots[slot].state = SlotState::Draining;
      break;
    case Op::Down:
      if (!present) return "no such backend in the VIP";
      s.slots[slot].state = SlotState::Down;
      break;
    case Op::Weight:
      if (!present) return "no such backend in the VIP";
      if (weight > 65535) return "weight must be 0..65535";
      s.slots[slot].weight = weight;
      if (weight > 0 && s.slots[slot].state != SlotState::Active) s.slots[slot].state = SlotState::Active;
      break;
  }
  ++s.generation;
  rebuild_indices(s);
  rebuild_table(s, vip);
  return {};
}

}  // namespace ctlb::lb
