#include "dataplane/worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include <cstring>

#include "dataplane/packet/parse_mbuf.hpp"

namespace ctlb::dataplane {

namespace {

inline std::uint32_t owner_of(std::uint32_t hash, std::uint32_t workers) noexcept {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(hash) * workers) >> 32);
}

inline std::uint32_t flow_hash(const packet::PacketView& v) noexcept {
  if (v.family == packet::IpFamily::V4) {
    flow::KeyV4 k;
    flow::make_key(v, k);
    return flow::hash_key(k);
  }
  flow::KeyV6 k;
  flow::make_key(v, k);
  return flow::hash_key(k);
}

// Sends a port's tx buffer; what the device refuses is freed and counted.
inline void send_buffer(WorkerContext& w, std::uint16_t port_index) noexcept {
  TxBuffer& b = w.tx[port_index];
  const std::uint16_t sent = rte_eth_tx_burst(w.port_ids[port_index], w.tx_queue, b.pkts, b.count);
  shm::PortCounters& pc = w.counters.ports[port_index];
  for (std::uint16_t i = 0; i < sent; ++i) pc.tx_bytes += rte_pktmbuf_pkt_len(b.pkts[i]);
  pc.tx_packets += sent;
  pc.tx_dropped += b.count - sent;
  if (sent < b.count) rte_pktmbuf_free_bulk(b.pkts + sent, b.count - sent);
  b.count = 0;
}

inline void enqueue_tx(WorkerContext& w, std::uint16_t port_index, rte_mbuf* m) noexcept {
  TxBuffer& b = w.tx[port_index];
  if (b.count == sizeof(b.pkts) / sizeof(b.pkts[0])) send_buffer(w, port_index);
  b.pkts[b.count++] = m;
}

inline void forward(WorkerContext& w, rte_mbuf* m) noexcept {
  const std::uint16_t in = m->port;  // port index, set at rx
  const std::uint16_t out = in < w.port_count ? w.peer_of[in] : kNoPeer;
  if (out == kNoPeer) {
    ++w.counters.dropped_no_peer;
    rte_pktmbuf_free(m);
    return;
  }
  enqueue_tx(w, out, m);
}

void drain_expiry(WorkerContext& w, std::uint64_t now_ms) noexcept {
  shm::ExpiryRequest reqs[64];
  const unsigned n = rte_ring_dequeue_burst_elem(w.expiry, reqs, sizeof(shm::ExpiryRequest), 64, nullptr);
  const flow::Clock clock{now_ms};
  for (unsigned i = 0; i < n; ++i) {
    if (reqs[i].family == 4)
      w.tracker->expire(w.tracker->table_v4(), reqs[i].handle, reqs[i].version, clock);
    else
      w.tracker->expire(w.tracker->table_v6(), reqs[i].handle, reqs[i].version, clock);
  }
  w.counters.expiry_requests += n;
}

void publish(WorkerContext& w) noexcept {
  w.counters.tracker = w.tracker->counters();
  std::memcpy(&w.header->counters[w.index], &w.counters, sizeof(w.counters));
}

inline std::uint64_t clock_ms(const shm::Header& h) noexcept {
  return (rte_rdtsc() - h.start_tsc) * 1000 / h.tsc_hz;
}

}  // namespace

void process_burst(WorkerContext& w, rte_mbuf** pkts, unsigned n, std::uint64_t now_ms, bool from_handover) {
  packet::PacketView views[kBurst];
  packet::ParseResult results[kBurst];
  bool mine[kBurst];
  for (unsigned i = 0; i < n; ++i) {
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
    rte_mbuf* m = pkts[i];
    results[i] = packet::parse_mbuf(m, views[i]);
    mine[i] = true;
    if (w.steer_in_software && !from_handover && results[i] == packet::ParseResult::Tcp) {
      const std::uint32_t owner = owner_of(flow_hash(views[i]), w.worker_count);
      if (owner != w.index) {
        mine[i] = false;
        if (rte_ring_enqueue(w.handover_out[owner], m) == 0) {
          ++w.counters.handover_out;
        } else {
          ++w.counters.handover_dropped;
          rte_pktmbuf_free(m);
        }
      }
    }
  }
  // Track the burst's TCP segments together, then act on each packet in order.
  const packet::PacketView* tcp_views[kBurst];
  unsigned tcp_index[kBurst];
  unsigned tcp_count = 0;
  for (unsigned i = 0; i < n; ++i) {
    if (!mine[i]) continue;
    w.tracker->count_parse(results[i]);
    if (results[i] == packet::ParseResult::Tcp) {
      tcp_index[tcp_count] = i;
      tcp_views[tcp_count++] = &views[i];
    }
  }
  flow::TrackResult tracked[kBurst];
  if (tcp_count) w.tracker->track_burst(tcp_views, tcp_count, flow::Clock{now_ms}, tracked);
  unsigned t = 0;
  for (unsigned i = 0; i < n; ++i) {
    if (!mine[i]) continue;
    rte_mbuf* m = pkts[i];
    bool invalid;
    if (t < tcp_count && tcp_index[t] == i) {
      invalid = tracked[t++].verdict == tcp::Verdict::Invalid;
    } else if (packet::is_malformed(results[i])) {
      invalid = true;
    } else {
      ++w.counters.forwarded_untracked;
      forward(w, m);
      continue;
    }
    if (invalid) {
      if (w.invalid_policy == config::InvalidPolicy::Drop) {
        ++w.counters.dropped_invalid;
        rte_pktmbuf_free(m);
        continue;
      }
      ++w.counters.forwarded_invalid;
    }
    forward(w, m);
  }
}

void flush_tx(WorkerContext& w) {
  for (std::uint16_t p = 0; p < w.port_count; ++p)
    if (w.tx[p].count) send_buffer(w, p);
}

int worker_main(void* arg) {
  WorkerContext& w = *static_cast<WorkerContext*>(arg);
  rte_mbuf* pkts[kBurst];
  std::uint32_t idle_loops = 0;
  while (w.header->running) {
    const std::uint64_t now_ms = clock_ms(*w.header);
    bool busy = false;
    for (std::uint32_t q = 0; q < w.rx_count; ++q) {
      const RxQueue& rq = w.rx[q];
      const std::uint16_t n = rte_eth_rx_burst(rq.port_id, rq.queue, pkts, kBurst);
      if (!n) continue;
      busy = true;
      shm::PortCounters& pc = w.counters.ports[rq.port_index];
      pc.rx_packets += n;
      for (std::uint16_t i = 0; i < n; ++i) {
        pc.rx_bytes += rte_pktmbuf_pkt_len(pkts[i]);
        pkts[i]->port = rq.port_index;  // from here on: the config's port index
      }
      process_burst(w, pkts, n, now_ms, false);
    }
    if (w.steer_in_software) {
      for (std::uint32_t from = 0; from < w.worker_count; ++from) {
        if (from == w.index) continue;
        const unsigned n = rte_ring_dequeue_burst(w.handover_in[from], reinterpret_cast<void**>(pkts), kBurst, nullptr);
        if (!n) continue;
        busy = true;
        w.counters.handover_in += n;
        process_burst(w, pkts, n, now_ms, true);
      }
    }
    flush_tx(w);
    ++w.counters.loops;
    if (busy) {
      ++w.counters.busy_loops;
      idle_loops = 0;
    }
    // Between bursts: expiry requests and counters, every 64 loops or when idle.
    if ((w.counters.loops & 63) == 0 || (!busy && ++idle_loops == 1)) {
      drain_expiry(w, now_ms);
      publish(w);
    }
  }
  flush_tx(w);
  publish(w);
  return 0;
}

}  // namespace ctlb::dataplane
