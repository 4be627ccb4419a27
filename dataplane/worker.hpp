#pragma once
// A poll-mode worker: owns one rx queue per port (where the port has one for
// it), one tx queue per port, its flow tables and its counters. Nothing in
// its loop locks, allocates, makes a syscall or throws.
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <cstdint>

#include "config/config.hpp"
#include "dataplane/flow/tracker.hpp"
#include "dataplane/lb/lb_state.hpp"
#include "dataplane/lb/neighbour.hpp"
#include "dataplane/shm_layout.hpp"

namespace ctlb::dataplane {

inline constexpr unsigned kBurst = 32;
inline constexpr std::uint16_t kNoPeer = 0xffff;

struct RxQueue {
  std::uint16_t port_index;  // index in the config's port list
  std::uint16_t port_id;     // DPDK port id
  std::uint16_t queue;
};

struct TxBuffer {
  std::uint16_t count;
  rte_mbuf* pkts[kBurst * 2];
};

struct alignas(64) WorkerContext {
  std::uint32_t index = 0;
  std::uint32_t worker_count = 1;
  bool steer_in_software = false;  // hand packets to their owner through rings
  config::InvalidPolicy invalid_policy = config::InvalidPolicy::Forward;

  RxQueue rx[shm::kMaxPorts] = {};
  std::uint32_t rx_count = 0;
  std::uint16_t port_count = 0;
  std::uint16_t port_ids[shm::kMaxPorts] = {};
  std::uint16_t peer_of[shm::kMaxPorts] = {};  // port index -> peer port index
  std::uint16_t tx_queue = 0;                  // this worker's tx queue on every port

  rte_ring* handover_in[shm::kMaxWorkers] = {};   // from worker w to me (single producer)
  rte_ring* handover_out[shm::kMaxWorkers] = {};  // from me to worker w
  rte_ring* expiry = nullptr;

  flow::Tracker* tracker = nullptr;
  shm::Header* header = nullptr;  // running flag, clock epoch, published counters

  // Mode lb (DESIGN.md section 7).
  bool lb_mode = false;
  bool lb_strict = false;                // unknown flows dropped, not picked up
  shm::LbZone* lb_zone = nullptr;
  const lb::State* lb = nullptr;         // the generation this loop uses
  rte_rcu_qsbr* qsbr = nullptr;          // reported quiescent after each loop
  lb::NeighbourTable neighbours;         // a view of the main lcore's table (a reader's)
  lb::NeighbourCache neighbour_cache;    // on-link clients' MACs, checked against the table per packet
  // The Ethernet addresses towards each backend slot's next hop (a slot's
  // address, so its next hop and port, never change: lb_state.hpp) and
  // towards each port's gateway (index 0: IPv4, 1: IPv6), checked against
  // the table per packet.
  lb::HopMemo slot_hops[lb::kMaxSlots];
  lb::HopMemo gateway_hops[2][shm::kMaxPorts];
  rte_ring* neighbour_ring = nullptr;    // messages to the main lcore
  rte_ring* slow_tx = nullptr;           // worker 0: packets the main lcore sends
  shm::BackendCounters* backend_counters = nullptr;  // [lb::kMaxSlots]
  std::uint8_t last_resolve[16] = {};    // last address asked for, to not flood the ring
  std::uint64_t last_resolve_ms = 0;
  // Packets waiting for their next hop's MAC (as Linux queues a few per
  // unresolved neighbour): sent when it resolves, dropped after the wait.
  struct Waiting {
    rte_mbuf* m;
    std::uint64_t deadline_ms;
    std::uint16_t port;
    std::uint8_t family;
    std::uint8_t nexthop[16];
  };
  static constexpr std::uint32_t kMaxWaiting = 64;
  static constexpr std::uint64_t kWaitMs = 1000;
  Waiting waiting[kMaxWaiting] = {};
  std::uint32_t waiting_count = 0;

  shm::WorkerCounters counters = {};  // local, copied to the header between bursts
  TxBuffer tx[shm::kMaxPorts] = {};
};

// The lcore entry point (rte_eal_remote_launch); arg is a WorkerContext*.
int worker_main(void* arg);

// Runs one burst through parse, ownership, tracking and tx buffering. Exposed
// for the throughput harness and tests; worker_main calls it.
void process_burst(WorkerContext& w, rte_mbuf** pkts, unsigned n, std::uint64_t now_ms, bool from_handover);

// The same for mode lb: classify (to a VIP, from a backend, ARP), steer by
// the client's endpoint, track, choose the backend at the SYN, NAT.
void process_burst_lb(WorkerContext& w, rte_mbuf** pkts, unsigned n, std::uint64_t now_ms, bool from_handover);

// Mode lb: sends the packets whose next hop has resolved since, drops those
// that waited too long. worker_main calls it at the top of each loop.
void send_waiting(WorkerContext& w, std::uint64_t now_ms);

// The tracker clock now (milliseconds since the dataplane started).
inline std::uint64_t clock_ms(const shm::Header& h) noexcept {
  return shm::tracker_clock_ms(rte_rdtsc(), h.start_tsc, h.tsc_hz);
}

// Sends what the tx buffers hold; frees and counts what the devices refuse.
void flush_tx(WorkerContext& w);

// At stop, once every worker has returned (the main lcore owns the contexts
// then): the packets other workers handed to this one after its last loop
// are tracked and sent like any others, so that none is lost uncounted.
void finish_handovers(WorkerContext& w, std::uint64_t now_ms);

}  // namespace ctlb::dataplane
