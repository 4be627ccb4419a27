#pragma once
// Mode lb: the neighbour (ARP) service the dataplane's main lcore runs
// between its other duties. It is the only writer of the neighbour table:
// it installs the static entries, resolves every backend's and gateway's
// next hop ahead of traffic, learns from the ARP packets the workers pass on,
// resolves what the workers ask for, re-probes stale entries, and gives up
// (Failed) after the configured number of unanswered requests. ARP requests
// leave through worker 0's tx queues (a ring), so no port needs an extra
// queue. IPv6 next hops need static entries (neighbour discovery is not
// implemented); a request for one is counted and ignored.
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <cstdint>

#include "config/config.hpp"
#include "dataplane/lb/neighbour.hpp"
#include "dataplane/shm_layout.hpp"

namespace ctlb::dataplane {

struct NeighbourServiceCounters {
  std::uint64_t requests_sent = 0;
  std::uint64_t requests_failed = 0;  // no mbuf, ring full, no source address
  std::uint64_t learned = 0;
  std::uint64_t ignored = 0;          // learned for an address we have no use for
  std::uint64_t ipv6_unresolvable = 0;
};

class NeighbourService {
 public:
  NeighbourService(const config::Config& cfg, shm::LbZone* zone, rte_rcu_qsbr* qsbr, lb::NeighbourSlot* slots,
                   std::uint32_t capacity, rte_ring* messages, rte_ring* slow_tx, rte_mempool* pool);

  // Does what is due at now_ms (the tracker clock): messages, probes, ageing.
  // It reads the LB state as a QSBR reader (thread id shm::kQsbrMainLcore),
  // online only during the call, so a publisher never waits on its sleep.
  void poll(std::uint64_t now_ms);

  const NeighbourServiceCounters& counters() const noexcept { return counters_; }

  // True while some wanted address is still being resolved (Incomplete).
  bool resolving() const noexcept;

 private:
  void want(std::uint8_t family, const std::uint8_t* addr, std::uint16_t port, std::uint64_t now_ms);
  void send_request(const lb::NeighbourSlot& s);

  config::Arp arp_;
  void poll_online(std::uint64_t now_ms);

  shm::LbZone* zone_;
  rte_rcu_qsbr* qsbr_;
  lb::NeighbourTable table_;
  rte_ring* messages_;
  rte_ring* slow_tx_;
  rte_mempool* pool_;
  std::uint64_t last_generation_ = 0;
  std::uint64_t next_age_ms_ = 0;
  NeighbourServiceCounters counters_;
};

}  // namespace ctlb::dataplane
