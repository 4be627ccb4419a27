#pragma once
// The configuration as plain structs: what config/loader.cpp produces from
// one YAML file, validated completely before anything starts. No yaml-cpp
// here, so the dataplane can include it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/tcp/tcp_types.hpp"

namespace ctlb::config {

enum class Mode : std::uint8_t { Inline, Lb };
enum class InvalidPolicy : std::uint8_t { Forward, Drop };

// An IPv4 or IPv6 address, bytes in network order (IPv4: the first 4).
struct IpAddr {
  std::uint8_t family = 0;  // 4 or 6; 0: none
  std::array<std::uint8_t, 16> bytes = {};
  bool operator==(const IpAddr&) const = default;
};

// An address of the box with its connected prefix ("198.18.1.1/24").
struct Prefix {
  IpAddr addr;
  std::uint8_t len = 0;
};

using Mac = std::array<std::uint8_t, 6>;

// ports[i].mtu: 68 is IPv4's minimum (RFC 791); 65535 is the most ethdev
// takes (a uint16_t). Each device's own limit is checked at start.
inline constexpr std::uint16_t kDefaultMtu = 1500;
inline constexpr std::uint16_t kMinMtu = 68;
inline constexpr std::uint16_t kMaxMtu = 65535;

struct Port {
  std::string name;
  std::string pci;      // PCI address ("0000:3b:00.0"), or
  std::string devargs;  // a vdev ("net_pcap0,rx_pcap=in.pcap,...")
  std::string peer;     // inline mode: where this port's packets go
  // lb mode: the box's own addresses on this port (it answers ARP for them;
  // their prefixes are the port's connected subnets) and the next hops for
  // destinations outside every connected subnet (at most one per family).
  std::vector<Prefix> addresses;
  IpAddr gateway_v4;
  IpAddr gateway_v6;
  std::uint16_t rx_descriptors = 1024;
  std::uint16_t tx_descriptors = 1024;
  std::uint32_t link_wait_ms = 5000;
  // The largest IP packet on the link (Ethernet payload, without the
  // Ethernet header, VLAN tags or CRC). Above what one mbuf's data room
  // holds, frames arrive as chains of mbufs (rx scatter).
  std::uint16_t mtu = kDefaultMtu;
};

struct Mempool {
  std::uint32_t mbufs = 16383;  // per NUMA socket
  std::uint32_t cache = 256;
  std::uint16_t data_room = 2176;  // RTE_MBUF_DEFAULT_BUF_SIZE
};

// A worker's budget of new connections (a token bucket): at most `rate`
// per second on average and `burst` at once; packets that would open a
// connection over it are dropped and counted. rate 0: no limit.
struct NewFlowLimit {
  std::uint32_t rate = 0;
  std::uint32_t burst = 0;
  bool operator==(const NewFlowLimit&) const = default;
};

struct Tracking {
  std::uint32_t capacity_v4 = 1u << 20;  // flows per worker
  std::uint32_t capacity_v6 = 1u << 16;
  NewFlowLimit new_flow_limit;  // per worker; reloadable
  InvalidPolicy invalid_policy = InvalidPolicy::Forward;
  tcp::Config tcp;
};

// lb mode (DESIGN.md section 7). Limits of the shared LB state.
inline constexpr std::size_t kMaxVips = 64;
inline constexpr std::size_t kMaxBackends = 1024;  // backend slots over all VIPs
inline constexpr std::uint32_t kMaxTableSize = 1048573;  // largest Maglev table (a prime)
inline constexpr std::size_t kMaxVipName = 63;  // longer than any default name ("[IPv6]:PORT")
// What the shared-memory layout and the LB state hold (shm::kMaxWorkers,
// shm::kMaxPorts, lb::kMaxPrefixes are these): the loader refuses more.
inline constexpr std::size_t kMaxWorkers = 64;
inline constexpr std::size_t kMaxPorts = 16;
inline constexpr std::size_t kMaxPortAddresses = 4;  // per port, mode lb
enum class BackendState : std::uint8_t { Active, Draining, Down };
enum class UnknownFlows : std::uint8_t { Loose, Strict };

struct Backend {
  IpAddr address;
  std::uint16_t port = 0;
  std::uint32_t weight = 1;  // 1..65535
  BackendState state = BackendState::Active;
};

struct Vip {
  std::string name;  // unique; defaults to "ADDRESS:PORT"
  IpAddr address;
  std::uint16_t port = 0;
  std::uint32_t table_size = 65537;  // Maglev slots, a prime
  std::vector<Backend> backends;
};

// A static neighbour: overrides ARP for that address on that port.
struct Neighbour {
  IpAddr address;
  Mac mac = {};
  std::string port;  // port name
};

struct Arp {
  std::uint32_t retry_ms = 1000;       // between requests for an unresolved address
  std::uint32_t retries = 3;           // requests before the address is marked failed
  std::uint32_t reachable_ms = 60000;  // a resolved entry is refreshed after this
};

struct Lb {
  std::vector<Vip> vips;
  std::vector<Neighbour> neighbours;
  UnknownFlows unknown_flows = UnknownFlows::Loose;  // non-SYN packet with no entry: Maglev and track, or drop
  Arp arp;
};

struct Control {
  std::string socket = "/run/ctlb/control.sock";
  std::string metrics = "127.0.0.1:9273";
};

struct Config {
  std::string file;  // where it was read from
  Mode mode = Mode::Inline;
  std::string file_prefix = "ctlb";
  std::uint32_t main_lcore = 0;
  std::vector<std::uint32_t> worker_lcores;
  std::string lcore_map;  // optional EAL --lcores mapping, e.g. "0@0,1@1,2@1" (more lcores than CPUs: tests only)
  std::vector<std::string> eal_args;  // extra EAL arguments, passed as they are
  Mempool mempool;
  std::vector<Port> ports;
  Tracking tracking;
  Lb lb;  // mode lb only
  Control control;
  std::string digest;  // of the file's bytes, to match the two processes
  // Where each key's value is in the file (line and column from 1), by the
  // dotted path errors name it by ("tracking.capacity_v4",
  // "lb.vips[0].backends[1]"): a reload names the line of each change.
  struct Mark {
    std::uint32_t line = 0;
    std::uint32_t column = 0;
  };
  std::map<std::string, Mark> marks;
};

// "FILE:LINE:COLUMN" of a key's value in `c`'s file, or of its nearest
// parent that the file has (a key it does not set, or no longer has), or
// "FILE" alone.
inline std::string key_location(const Config& c, std::string key) {
  for (;;) {
    const auto at = c.marks.find(key);
    if (at != c.marks.end())
      return c.file + ":" + std::to_string(at->second.line) + ":" + std::to_string(at->second.column);
    const auto cut = key.find_last_of(".[");
    if (cut == std::string::npos) return c.file;
    key.resize(cut);
  }
}

// One error line about a key, in the loader's format, for what only the
// host can refuse (config/host_check.hpp, the dataplane's start-up):
//   FILE:LINE:COLUMN: KEY: expected EXPECTED (found 'VALUE')
// A key the file does not set is placed at its nearest parent that it
// does, and its value is the default: (found nothing, the default is VALUE).
inline std::string key_error(const Config& c, const std::string& key, const std::string& expected,
                             const std::string& value) {
  const bool set = c.marks.count(key) != 0;
  return key_location(c, key) + ": " + key + ": expected " + expected +
         (set ? " (found '" + value + "')" : " (found nothing, the default is " + value + ")");
}

}  // namespace ctlb::config
