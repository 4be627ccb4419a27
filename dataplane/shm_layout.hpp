#pragma once
// The contract between ctlb-dataplane (DPDK primary) and ctlb-control (DPDK
// secondary): memzone and ring names, and the plain structs inside them.
// Plain data only: no pointers, no virtual tables (the processes map
// libraries and hugepages at different addresses). Bump kShmLayoutVersion on
// any change; the control process refuses a mismatch.
#include <cstdint>

#include "dataplane/flow/tracker.hpp"
#include "dataplane/lb/lb_state.hpp"

namespace ctlb::shm {

inline constexpr std::uint64_t kShmMagic = 0x63746c62'73686d31ull;  // "ctlbshm1"
inline constexpr std::uint32_t kShmLayoutVersion = 11;  // 2: transitions, handshake histograms; 3: lb mode; 4: new-flow limit; 5: device counters; 6: compiled IPv4 routes in lb::State; 7: NAT checksum changes in lb::BackendSlot; 8: IPv4 classification indices in lb::State; 9: the VIP endpoint in lb::BackendSlot; 10: the rst_after_close reason; 11: late resets per backend
inline constexpr std::uint32_t kMaxWorkers = static_cast<std::uint32_t>(config::kMaxWorkers);
inline constexpr std::uint32_t kMaxPorts = static_cast<std::uint32_t>(config::kMaxPorts);
inline constexpr std::uint32_t kNameLen = 32;  // RTE_MEMZONE_NAMESIZE

inline constexpr char kHeaderZone[] = "ctlb_header";
// Per worker: "ctlb_w<N>_v4", "ctlb_w<N>_v6" (flow tables), "ctlb_w<N>_exp"
// (expiry-request ring, multi-producer, single consumer: the worker).

// Mode lb only:
//   "ctlb_lb"         LbZone: two generations of lb::State and the QSBR
//                     variable through which ctlb-control publishes changes;
//   "ctlb_neigh"      NeighbourZone: the ARP/static neighbour table (written
//                     by the dataplane's main lcore only);
//   "ctlb_neigh_msg"  ring of NeighbourMsg, workers -> main lcore;
//   "ctlb_slow_tx"    ring of mbufs the main lcore sends (ARP requests)
//                     through worker 0's tx queues;
//   "ctlb_w<N>_lb"    BackendCounters[lb::kMaxSlots] of worker N.
inline constexpr char kLbZone[] = "ctlb_lb";
inline constexpr char kNeighbourZone[] = "ctlb_neigh";
inline constexpr char kNeighbourRing[] = "ctlb_neigh_msg";
inline constexpr char kSlowTxRing[] = "ctlb_slow_tx";
inline constexpr std::uint32_t kNeighbourCapacity = 4096;
inline constexpr std::uint32_t kQsbrThreads = kMaxWorkers + 1;
inline constexpr std::uint32_t kQsbrMainLcore = kMaxWorkers;  // its QSBR thread id

// The published LB state: workers read generation `active` for a whole
// loop and then report a quiescent state (DPDK QSBR, thread id = worker
// index). The writer fills the other generation, flips `active`, and waits
// for every worker to pass a quiescent state before it may write the old
// one again.
struct alignas(64) LbZone {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t state_bytes;     // bytes of one generation (lb::state_bytes)
  std::uint64_t state_offset[2];  // from the start of the zone
  std::uint64_t qsbr_offset;      // rte_rcu_qsbr for kQsbrThreads: the workers, then the main lcore
  std::uint64_t published;        // changes published since start
  volatile std::uint32_t active;  // 0 or 1
};

// Generation `which` (0 or 1) of the LB state, and the live one.
inline lb::State* lb_generation(LbZone& z, std::uint32_t which) noexcept {
  return reinterpret_cast<lb::State*>(reinterpret_cast<std::uint8_t*>(&z) + z.state_offset[which & 1]);
}
inline std::uint32_t lb_active(const LbZone& z) noexcept { return __atomic_load_n(&z.active, __ATOMIC_ACQUIRE) & 1; }
inline const lb::State* live_lb_generation(const LbZone& z) noexcept {
  return lb_generation(const_cast<LbZone&>(z), lb_active(z));
}

// A message from a worker to the main lcore's neighbour service.
struct NeighbourMsg {
  std::uint8_t kind;  // kLearn / kLearnRequest: (addr, mac) from an ARP reply / a request to us; kResolve: a worker needs addr's MAC
  std::uint8_t family;
  std::uint16_t port;  // port index
  std::uint8_t addr[16];
  std::uint8_t mac[6];
  std::uint8_t pad[6];
  static constexpr std::uint8_t kLearn = 1;         // a reply: updates an address we asked for
  static constexpr std::uint8_t kResolve = 2;
  static constexpr std::uint8_t kLearnRequest = 3;  // a request for one of our addresses: may add its sender
};
static_assert(sizeof(NeighbourMsg) == 32);

// Per worker and backend slot; written in place by the worker.
struct BackendCounters {
  std::uint64_t new_connections;
  std::uint64_t packets_in;   // client -> backend
  std::uint64_t bytes_in;
  std::uint64_t packets_out;  // backend -> client
  std::uint64_t bytes_out;
  std::uint64_t resets;       // RST segments, either way
  std::uint64_t late_resets;  // of those, reason rst_after_close: after both sides had closed or an earlier RST
  std::uint64_t syn_to_synack[flow::kHandshakeBuckets];
  std::uint64_t syn_to_synack_ms_sum;
};

// An expiry request: the control process saw this entry expired at this version.
struct ExpiryRequest {
  std::uint32_t handle;
  std::uint32_t version;
  std::uint8_t family;  // 4 or 6
};

// Per-port counters of the device itself (rte_eth_stats), sampled by the
// main lcore: what the PMD or the NIC lost before any worker saw it.
struct DeviceCounters {
  std::uint64_t rx_nombuf;  // rx mbuf allocation failures: the mbuf pool was empty
  std::uint64_t rx_missed;  // imissed: the device dropped frames (rx ring full)
  std::uint64_t rx_errors;  // ierrors: erroneous frames received
  std::uint64_t tx_errors;  // oerrors: failed transmissions
};

// Per-port counters of one worker.
struct PortCounters {
  std::uint64_t rx_packets;
  std::uint64_t rx_bytes;
  std::uint64_t tx_packets;
  std::uint64_t tx_bytes;
  std::uint64_t tx_dropped;  // refused by the device (tx ring full)
};

#define CTLB_WORKER_COUNTERS(X)                                                                   \
  X(loops, "loops", "poll-loop iterations")                                                       \
  X(busy_loops, "busy_loops", "iterations that received packets")                                 \
  X(handover_out, "handover_out", "packets handed to their owner worker")                         \
  X(handover_in, "handover_in", "packets received from another worker")                          \
  X(handover_dropped, "handover_dropped", "hand-over ring full: packet dropped")                  \
  X(dropped_invalid, "dropped_invalid", "INVALID packets dropped by policy")                      \
  X(forwarded_invalid, "forwarded_invalid", "INVALID packets forwarded by policy")                \
  X(forwarded_untracked, "forwarded_untracked", "non-TCP or non-IP packets forwarded untracked")   \
  X(dropped_no_peer, "dropped_no_peer", "packets of a port without a peer (dropped)")             \
  X(expiry_requests, "expiry_requests", "expiry requests received from the control process")               \
  X(lb_new_connections, "lb_new_connections", "lb: connections given a backend")                           \
  X(lb_untracked_table_full, "lb_untracked_table_full", "lb: forwarded by Maglev untracked: table full")   \
  X(lb_dropped_no_vip, "lb_dropped_no_vip", "lb: TCP packets neither to a VIP nor from a backend")          \
  X(lb_dropped_not_tcp, "lb_dropped_not_tcp", "lb: IP packets other than unfragmented TCP (dropped)")       \
  X(lb_dropped_malformed, "lb_dropped_malformed", "lb: malformed packets (dropped)")                        \
  X(lb_dropped_no_backend, "lb_dropped_no_backend", "lb: new connection to a VIP with no active backend")   \
  X(lb_dropped_unknown_flow, "lb_dropped_unknown_flow", "lb: packets of no tracked connection (strict)")    \
  X(lb_dropped_no_route, "lb_dropped_no_route", "lb: no route to the destination")                          \
  X(lb_waited_for_neighbour, "lb_waited_for_neighbour", "lb: packets held until their next hop resolved")  \
  X(lb_dropped_no_neighbour, "lb_dropped_no_neighbour", "lb: next hop unresolved for 1 s, or too many waiting") \
  X(lb_dropped_ttl, "lb_dropped_ttl", "lb: TTL or hop limit expired")                                       \
  X(lb_dropped_backend_mismatch, "lb_dropped_backend_mismatch", "lb: from a backend the connection does not use") \
  X(arp_requests_answered, "arp_requests_answered", "ARP requests for our addresses answered")              \
  X(arp_received, "arp_received", "ARP packets received (learned from)")                                    \
  X(arp_dropped, "arp_dropped", "ARP packets malformed or not for us")                                      \
  X(neighbour_msgs_dropped, "neighbour_msgs_dropped", "messages to the neighbour service lost (ring full)") \
  X(slow_tx_sent, "slow_tx_sent", "packets sent for the main lcore (ARP requests)")

// Everything one worker publishes. Written by that worker only, between
// bursts; readers tolerate a counter being a burst behind.
struct alignas(64) WorkerCounters {
#define CTLB_X(f, n, d) std::uint64_t f;
  CTLB_WORKER_COUNTERS(CTLB_X)
#undef CTLB_X
  PortCounters ports[kMaxPorts];
  flow::TrackerCounters tracker;
};

struct WorkerInfo {
  std::uint32_t lcore;
  std::uint32_t socket;
  char table_v4[kNameLen];
  char table_v6[kNameLen];
  char expiry_ring[kNameLen];
  char lb_counters[kNameLen];  // lb mode: "ctlb_w<N>_lb"
};

struct alignas(64) Header {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t worker_count;
  std::uint32_t port_count;
  std::uint32_t dataplane_pid;
  char config_digest[24];
  std::uint64_t tsc_hz;
  std::uint64_t start_tsc;  // the tracker clock's epoch: ms = (tsc - start_tsc) * 1000 / tsc_hz
  volatile std::uint32_t running;
  std::uint32_t lb_mode;  // 1: the lb zones and rings exist
  // tracking.new_flow_limit, per worker: set by the dataplane at start and
  // by ctlb-control on a reload; each worker applies it at its next loop.
  volatile std::uint32_t new_flow_rate;
  volatile std::uint32_t new_flow_burst;
  char port_names[kMaxPorts][kNameLen];
  WorkerInfo workers[kMaxWorkers];
  WorkerCounters counters[kMaxWorkers];
  DeviceCounters devices[kMaxPorts];  // written by the dataplane's main lcore only
};

// The tracker's clock, as every process computes it from the header's TSC
// epoch: milliseconds since the dataplane started.
constexpr std::uint64_t tracker_clock_ms(std::uint64_t tsc, std::uint64_t start_tsc, std::uint64_t tsc_hz) noexcept {
  return (tsc - start_tsc) * 1000 / tsc_hz;
}

}  // namespace ctlb::shm
