#include "dataplane/neighbour_service.hpp"

#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/lb/arp.hpp"
#include "dataplane/worker.hpp"

namespace ctlb::dataplane {

NeighbourService::NeighbourService(const config::Config& cfg, shm::LbZone* zone, rte_rcu_qsbr* qsbr,
                                   lb::NeighbourSlot* slots, std::uint32_t capacity, rte_ring* messages,
                                   rte_ring* slow_tx, rte_mempool* pool)
    : arp_(cfg.lb.arp), zone_(zone), qsbr_(qsbr), table_(slots, capacity), messages_(messages), slow_tx_(slow_tx), pool_(pool) {
  for (const auto& n : cfg.lb.neighbours)
    for (std::size_t p = 0; p < cfg.ports.size(); ++p)
      if (cfg.ports[p].name == n.port)
        table_.set_static(n.address.family, n.address.bytes.data(), static_cast<std::uint16_t>(p), n.mac, 0);
}

void NeighbourService::want(std::uint8_t family, const std::uint8_t* addr, std::uint16_t port, std::uint64_t now_ms) {
  if (family == 6) {
    // No neighbour discovery: an IPv6 next hop must be configured statically.
    if (table_.find(6, addr) == lb::kNoSlot) ++counters_.ipv6_unresolvable;
    return;
  }
  table_.find_or_add(family, addr, port, now_ms);
}

void NeighbourService::send_request(const lb::NeighbourSlot& s) {
  const lb::State& st = *shm::live_lb_generation(*zone_);
  const std::uint8_t* src = s.port < st.port_count ? lb::source_address(st, s.port, 4, s.address) : nullptr;
  rte_mbuf* m = src ? rte_pktmbuf_alloc(pool_) : nullptr;
  if (!m) {
    ++counters_.requests_failed;
    return;
  }
  config::Mac mac;
  std::memcpy(mac.data(), st.ports[s.port].mac, 6);
  auto* buf = rte_pktmbuf_mtod(m, std::uint8_t*);
  const std::size_t len = lb::arp::build_request(buf, rte_pktmbuf_tailroom(m), mac, src, s.address, 0);
  if (len == 0) {
    rte_pktmbuf_free(m);
    ++counters_.requests_failed;
    return;
  }
  m->data_len = m->pkt_len = static_cast<std::uint32_t>(len);
  m->port = s.port;  // port index: worker 0 sends it there
  if (rte_ring_enqueue(slow_tx_, m) != 0) {
    rte_pktmbuf_free(m);
    ++counters_.requests_failed;
    return;
  }
  ++counters_.requests_sent;
}

bool NeighbourService::resolving() const noexcept {
  for (std::uint32_t i = 0; i < table_.capacity(); ++i)
    if (table_.slot(i).state == lb::NeighbourState::Incomplete) return true;
  return false;
}

void NeighbourService::poll(std::uint64_t now_ms) {
  rte_rcu_qsbr_thread_online(qsbr_, shm::kQsbrMainLcore);
  poll_online(now_ms);
  rte_rcu_qsbr_thread_offline(qsbr_, shm::kQsbrMainLcore);
}

void NeighbourService::poll_online(std::uint64_t now_ms) {
  const lb::State& st = *shm::live_lb_generation(*zone_);
  // Every next hop the pools need, resolved ahead of traffic (again after
  // each published change: a new backend may have been added).
  if (st.generation != last_generation_) {
    last_generation_ = st.generation;
    for (std::uint32_t b = 0; b < st.slot_count; ++b) {
      const lb::BackendSlot& bs = st.slots[b];
      if (bs.state != lb::SlotState::Free) want(bs.family, bs.nexthop, bs.out_port, now_ms);
    }
    for (std::uint32_t p = 0; p < st.port_count; ++p)
      if (st.ports[p].has_gateway_v4) want(4, st.ports[p].gateway_v4, static_cast<std::uint16_t>(p), now_ms);
  }
  shm::NeighbourMsg msgs[64];
  unsigned n;
  while ((n = rte_ring_dequeue_burst_elem(messages_, msgs, sizeof(shm::NeighbourMsg), 64, nullptr)) > 0) {
    for (unsigned i = 0; i < n; ++i) {
      const shm::NeighbourMsg& m = msgs[i];
      if (m.kind == shm::NeighbourMsg::kResolve) {
        want(m.family, m.addr, m.port, now_ms);
        continue;
      }
      // Learned from ARP: updates an address we have, on the port it is on;
      // a request for our address may add its sender if it is on a
      // connected prefix of that port (clients, backends, routers). Never a
      // group, zero or foreign-port MAC.
      static constexpr std::uint8_t kZeroMac[6] = {};
      if ((m.mac[0] & 1) || std::memcmp(m.mac, kZeroMac, 6) == 0) {
        ++counters_.ignored;
        continue;
      }
      std::uint32_t slot = table_.find(m.family, m.addr);
      if (slot != lb::kNoSlot && table_.slot(slot).port != m.port) {
        ++counters_.ignored;
        continue;
      }
      if (slot == lb::kNoSlot && m.kind == shm::NeighbourMsg::kLearnRequest) {
        std::uint16_t out_port;
        const std::uint8_t* nh;
        if (lb::route(st, m.family, m.addr, out_port, nh) && nh == m.addr && out_port == m.port)
          slot = table_.find_or_add(m.family, m.addr, m.port, now_ms);
      }
      if (slot == lb::kNoSlot) {
        ++counters_.ignored;
        continue;
      }
      config::Mac mac;
      std::memcpy(mac.data(), m.mac, 6);
      table_.set_resolved(slot, mac, now_ms);
      ++counters_.learned;
    }
  }
  if (now_ms >= next_age_ms_) {
    table_.age(now_ms, arp_.reachable_ms);
    next_age_ms_ = now_ms + 1000;
  }
  for (auto i = table_.next_due(0, now_ms); i != lb::kNoSlot; i = table_.next_due(i + 1, now_ms)) {
    if (table_.slot(i).family != 4) continue;
    if (table_.mark_probe_sent(i, now_ms, arp_.retry_ms, arp_.retries)) send_request(table_.slot(i));
  }
}

}  // namespace ctlb::dataplane
