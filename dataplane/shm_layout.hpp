#pragma once
// The contract between ctlb-dataplane (DPDK primary) and ctlb-control (DPDK
// secondary): memzone and ring names, and the plain structs inside them.
// Plain data only: no pointers, no virtual tables (the processes map
// libraries and hugepages at different addresses). Bump kShmLayoutVersion on
// any change; the control process refuses a mismatch.
#include <cstdint>

#include "dataplane/flow/tracker.hpp"

namespace ctlb::shm {

inline constexpr std::uint64_t kShmMagic = 0x63746c62'73686d31ull;  // "ctlbshm1"
inline constexpr std::uint32_t kShmLayoutVersion = 2;  // 2: transitions, handshake histograms
inline constexpr std::uint32_t kMaxWorkers = 64;
inline constexpr std::uint32_t kMaxPorts = 16;
inline constexpr std::uint32_t kNameLen = 32;  // RTE_MEMZONE_NAMESIZE

inline constexpr char kHeaderZone[] = "ctlb_header";
// Per worker: "ctlb_w<N>_v4", "ctlb_w<N>_v6" (flow tables), "ctlb_w<N>_exp"
// (expiry-request ring, multi-producer, single consumer: the worker).

// An expiry request: the control process saw this entry expired at this version.
struct ExpiryRequest {
  std::uint32_t handle;
  std::uint32_t version;
  std::uint8_t family;  // 4 or 6
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
  X(expiry_requests, "expiry_requests", "expiry requests received from the control process")

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
  char port_names[kMaxPorts][kNameLen];
  WorkerInfo workers[kMaxWorkers];
  WorkerCounters counters[kMaxWorkers];
};

}  // namespace ctlb::shm
