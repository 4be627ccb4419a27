#include "dataplane/worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include <cstring>

#include "dataplane/common/uninitialised.hpp"
#include "dataplane/lb/arp.hpp"
#include "dataplane/lb/nat.hpp"
#include "dataplane/packet/parse_mbuf.hpp"

namespace ctlb::dataplane {

namespace {

inline std::uint32_t owner_of(std::uint32_t hash, std::uint32_t workers) noexcept {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(hash) * workers) >> 32);
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

// Gives a packet to the worker that owns its connection (counted).
inline void hand_over(WorkerContext& w, std::uint32_t owner, rte_mbuf* m) noexcept {
  if (rte_ring_enqueue(w.handover_out[owner], m) == 0) {
    ++w.counters.handover_out;
  } else {
    ++w.counters.handover_dropped;
    rte_pktmbuf_free(m);
  }
}

// Forwards packets that all came in on one port to its peer: one peer
// lookup and one copy into the peer's tx buffer for them all.
inline void forward_from_one_port(WorkerContext& w, rte_mbuf** m, unsigned n) noexcept {
  if (n == 0) return;
  const std::uint16_t in = m[0]->port;  // port index, set at rx
  const std::uint16_t out = in < w.port_count ? w.peer_of[in] : kNoPeer;
  if (out == kNoPeer) {
    w.counters.dropped_no_peer += n;
    rte_pktmbuf_free_bulk(m, n);
    return;
  }
  TxBuffer& b = w.tx[out];
  static_assert(sizeof(b.pkts) / sizeof(b.pkts[0]) >= kBurst, "an emptied tx buffer takes a whole burst");
  if (b.count + n > sizeof(b.pkts) / sizeof(b.pkts[0])) send_buffer(w, out);
  std::memcpy(b.pkts + b.count, m, n * sizeof m[0]);
  b.count = static_cast<std::uint16_t>(b.count + n);
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

}  // namespace

static_assert(kBurst <= flow::Tracker::kMaxBurst, "a burst's segments are prepared in one Tracker::BurstKeys");

// Inline mode: the tracker parses and tracks the burst (Tracker::track_frames:
// data and ACK segments of IPv4 connections straight from the frame, the
// rest through the whole parser); each frame is then forwarded or dropped in
// order. The forwarded frames are gathered: an rx burst's (worker_main calls
// this per rx queue: one port) go to the peer's tx buffer together,
// handed-over frames, from any port, one by one.
void process_burst(WorkerContext& w, rte_mbuf** pkts, unsigned n, std::uint64_t now_ms, bool from_handover) {
  packet::Frame frames[kBurst];
  for (unsigned i = 0; i < n; ++i)
    frames[i] = {rte_pktmbuf_mtod(pkts[i], const std::uint8_t*), rte_pktmbuf_data_len(pkts[i]),
                 rte_pktmbuf_pkt_len(pkts[i])};
  const bool steer = w.steer_in_software && !from_handover;
  auto keep = [&](unsigned i, std::uint32_t hash) noexcept {
    if (!steer) return true;
    const std::uint32_t owner = owner_of(hash, w.worker_count);
    if (owner == w.index) return true;
    hand_over(w, owner, pkts[i]);
    return false;
  };
  rte_mbuf* out[kBurst];  // forwarded, in order
  unsigned out_count = 0;
  auto send = [&](rte_mbuf* m) noexcept { out[out_count++] = m; };
  auto done = [&](unsigned i, packet::ParseResult res, const flow::TrackResult* r) noexcept {
    rte_mbuf* m = pkts[i];
    bool invalid;
    if (r) {
      if (r->verdict == tcp::Verdict::Drop) {  // over the new-flow limit: counted by the tracker
        rte_pktmbuf_free(m);
        return;
      }
      invalid = r->verdict == tcp::Verdict::Invalid;
    } else if (packet::is_malformed(res)) {
      invalid = true;
    } else {
      ++w.counters.forwarded_untracked;
      send(m);
      return;
    }
    if (invalid) {
      if (w.invalid_policy == config::InvalidPolicy::Drop) {
        ++w.counters.dropped_invalid;
        rte_pktmbuf_free(m);
        return;
      }
      ++w.counters.forwarded_invalid;
    }
    send(m);
  };
  w.tracker->track_frames<false>(frames, n, flow::Clock{now_ms}, keep, done);
  if (!from_handover) {
    forward_from_one_port(w, out, out_count);
  } else {
    for (unsigned k = 0; k < out_count; ++k) forward_from_one_port(w, out + k, 1);  // each from its own port
  }
}

// ---------------------------------------------------------------- mode lb

namespace {

enum class LbDir : std::uint8_t { None, In, Out };

struct LbMeta {
  LbDir dir;
  std::uint8_t multi;   // Out: the backend is in several VIPs
  std::uint32_t vip;
  std::uint32_t slot;   // Out: the backend slot the packet came from
};

// Which way a TCP segment goes: In, to a VIP (address and port); Out, from
// a backend slot (one of them, `multi` if the backend is in several VIPs).
// False for neither. IPv4 (addresses in host order), from the IPv4
// indices: the two lookups are independent, so a return packet's second one
// need not wait for the first.
inline bool classify4(const lb::State& s, std::uint32_t src, std::uint16_t sport, std::uint32_t dst,
                      std::uint16_t dport, LbMeta& mt) noexcept {
  mt = LbMeta{LbDir::None, 0, lb::kNoVip, 0};
  const std::uint32_t vip = lb::find_vip4(s, dst, dport);
  if (vip != lb::kNoVip) {
    mt.dir = LbDir::In;
    mt.vip = vip;
    return true;
  }
  bool multi;
  const std::uint32_t slot = lb::find_slot4(s, src, sport, multi);
  if (slot == lb::kNoVip) return false;
  mt.dir = LbDir::Out;
  mt.multi = multi;
  mt.slot = slot;
  mt.vip = s.slots[slot].vip;
  return true;
}
// The same for either family (IPv6: the general indices).
inline bool classify(const lb::State& s, std::uint8_t family, const std::uint8_t* src, std::uint16_t sport,
                     const std::uint8_t* dst, std::uint16_t dport, LbMeta& mt) noexcept {
  if (family == 4) return classify4(s, load_be32(src), sport, load_be32(dst), dport, mt);
  mt = LbMeta{LbDir::None, 0, lb::kNoVip, 0};
  const std::uint32_t vip = lb::find_vip(s, family, dst, dport);
  if (vip != lb::kNoVip) {
    mt.dir = LbDir::In;
    mt.vip = vip;
    return true;
  }
  unsigned found = 0;
  lb::for_each_slot(s, family, src, sport, [&](std::uint32_t slot) {
    if (found++ == 0) mt.slot = slot;
    return found > 1;
  });
  if (!found) return false;
  mt.dir = LbDir::Out;
  mt.multi = found > 1;
  mt.vip = s.slots[mt.slot].vip;
  return true;
}

// A return packet as the tracker sees it, from the VIP: the tracker keys
// the connection by client and VIP in both directions.
inline void from_vip(const lb::State& s, std::uint32_t vip, packet::PacketView& tv) noexcept {
  std::memcpy(tv.src, s.vips[vip].addr, 16);
  tv.sport = s.vips[vip].port;
}
// An AckSegment's, from the copy of its VIP's endpoint in the backend slot
// it came from (IPv4).
inline void from_vip(const lb::BackendSlot& b, packet::AckSegment& a) noexcept {
  a.src = load_be32(b.vip_addr4);
  a.sport = b.vip_port;
}
// A copy of a return packet's view (bytewise: fields its parse left
// unwritten are copied, not read), from the VIP.
inline void copy_from_vip(const lb::State& s, std::uint32_t vip, const packet::PacketView& v,
                          packet::PacketView& tv) noexcept {
  std::memcpy(static_cast<void*>(&tv), &v, sizeof v);
  from_vip(s, vip, tv);
}

inline void send_neighbour_msg(WorkerContext& w, const shm::NeighbourMsg& msg) noexcept {
  if (rte_ring_enqueue_elem(w.neighbour_ring, const_cast<shm::NeighbourMsg*>(&msg), sizeof msg) != 0) ++w.counters.neighbour_msgs_dropped;
}

// Asks the main lcore to resolve a next hop, at most once per 100 ms for
// the same address. Out of line, as the cache's miss: the burst loop inlines
// only the cache's hit.
[[gnu::noinline]] void ask_to_resolve(WorkerContext& w, std::uint8_t family, const std::uint8_t* addr,
                                      std::uint16_t port, std::uint64_t now_ms) noexcept {
  const std::size_t len = family == 4 ? 4 : 16;
  if (now_ms - w.last_resolve_ms < 100 && std::memcmp(w.last_resolve, addr, len) == 0) return;
  shm::NeighbourMsg msg{};
  msg.kind = shm::NeighbourMsg::kResolve;
  msg.family = family;
  msg.port = port;
  std::memcpy(msg.addr, addr, len);
  send_neighbour_msg(w, msg);
  std::memcpy(w.last_resolve, addr, len);
  w.last_resolve_ms = now_ms;
}

// Writes the Ethernet addresses towards a next hop out of `out_port` into
// the frame; on a miss, asks for the next hop to be resolved and returns
// false (the frame unchanged). `hop`: the memo kept for this next hop (a
// backend slot's, a gateway's), or null for a client on a connected prefix,
// looked up through the worker's cache by address (backends and gateways
// have their memos, so many clients evicting each other there cost no one
// else a miss).
inline bool set_next_hop_macs(WorkerContext& w, const lb::State& s, lb::HopMemo* hop, std::uint8_t family,
                              const std::uint8_t* nexthop, std::uint16_t out_port, std::uint8_t* frame,
                              std::uint64_t now_ms) noexcept {
  if (hop) {
    if (hop->valid(w.neighbours) || hop->fill(w.neighbours, family, nexthop, s.ports[out_port].mac)) {
      std::memcpy(frame, hop->macs(), 12);
      return true;
    }
  } else {
    config::Mac mac;
    if (w.neighbour_cache.lookup(w.neighbours, family, nexthop, mac)) {
      lb::set_macs(frame, mac.data(), s.ports[out_port].mac);
      return true;
    }
  }
  ask_to_resolve(w, family, nexthop, out_port, now_ms);
  return false;
}

// An ARP frame: answered in place when it asks for one of our addresses
// (a port's own on that port, a VIP's on any port); what it tells about its
// sender goes to the neighbour service.
void handle_arp(WorkerContext& w, rte_mbuf* m) noexcept {
  std::uint8_t* frame = rte_pktmbuf_mtod(m, std::uint8_t*);
  lb::arp::Packet a;
  if (lb::arp::parse(frame, rte_pktmbuf_data_len(m), a) != lb::arp::Parse::Ok) {
    ++w.counters.arp_dropped;
    rte_pktmbuf_free(m);
    return;
  }
  ++w.counters.arp_received;
  const std::uint16_t port = m->port;
  const bool for_us = a.op == 1 && port < w.lb->port_count && lb::is_local_address(*w.lb, port, 4, a.tpa);
  static constexpr std::uint8_t kZero[4] = {};
  // Learned from: replies (to update what we asked for) and requests for
  // our addresses (their senders will want answers); not from other
  // hosts' requests, nor from an unset sender (address probes).
  if ((a.op == 2 || for_us) && std::memcmp(a.spa, kZero, 4) != 0) {
    shm::NeighbourMsg msg{};
    msg.kind = a.op == 2 ? shm::NeighbourMsg::kLearn : shm::NeighbourMsg::kLearnRequest;
    msg.family = 4;
    msg.port = port;
    std::memcpy(msg.addr, a.spa, 4);
    std::memcpy(msg.mac, a.sha.data(), 6);
    send_neighbour_msg(w, msg);
  }
  if (for_us) {
    config::Mac mac;
    std::memcpy(mac.data(), w.lb->ports[port].mac, 6);
    lb::arp::make_reply_in_place(frame, a, mac);
    ++w.counters.arp_requests_answered;
    enqueue_tx(w, port, m);
    return;
  }
  rte_pktmbuf_free(m);
}

inline void drop(rte_mbuf* m, std::uint64_t& counter) noexcept {
  ++counter;
  rte_pktmbuf_free(m);
}

// Sends a frame from our port to the next hop's MAC.
inline void send_to(WorkerContext& w, const lb::State& s, std::uint16_t out_port, const config::Mac& mac,
                    rte_mbuf* m) noexcept {
  lb::set_macs(rte_pktmbuf_mtod(m, std::uint8_t*), mac.data(), s.ports[out_port].mac);
  enqueue_tx(w, out_port, m);
}

}  // namespace

void process_burst_lb(WorkerContext& w, rte_mbuf** pkts, unsigned n, std::uint64_t now_ms, bool from_handover) {
  const lb::State& s = *w.lb;
  // Left uninitialised: parse_frame() writes every field its result makes
  // meaningful, the tracker writes every result whole.
  Uninitialised<packet::PacketView, kBurst> views;
  LbMeta meta[kBurst];
  unsigned keep[kBurst];  // packets this worker tracks, in order
  unsigned kept = 0;
  // The common case, a data or ACK segment of untagged IPv4 without IP
  // options (packet::parse_ack_segment()), is classified, tracked and
  // rewritten from the frame without a view: acks[k] with lite[k] set (k: the
  // tracked packet's index). Its view is parsed only if the tracker's general
  // path needs it. A return packet's acks[k] has the VIP as its source (the
  // tracker's key): it no longer describes the frame, which is read from the
  // mbuf from then on.
  Uninitialised<packet::AckSegment, kBurst> acks;
  bool lite[kBurst];
  // As the tracker sees them: return traffic from the VIP, each a copy of
  // the parsed view with the VIP as its source.
  Uninitialised<packet::PacketView, kBurst> tviews;
  const packet::PacketView* tracked_views[kBurst];
  flow::Tracker::BurstKeys keys;
  const bool steer = w.steer_in_software && !from_handover;
  // Owner in mode lb: from the client's endpoint alone, which both
  // directions carry unchanged through NAT.
  auto owner = [&](std::uint8_t family, bool client_is_src, const std::uint8_t* src, std::uint16_t sport,
                   const std::uint8_t* dst, std::uint16_t dport) noexcept {
    return owner_of(lb::detail::endpoint_hash(family, client_is_src ? src : dst, client_is_src ? sport : dport),
                    w.worker_count);
  };

  for (unsigned i = 0; i < n; ++i) {
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
    rte_mbuf* m = pkts[i];
    packet::AckSegment& a = acks[kept];
    if (packet::parse_ack_segment(rte_pktmbuf_mtod(m, const std::uint8_t*), rte_pktmbuf_data_len(m),
                                  rte_pktmbuf_pkt_len(m), a)) {
      const std::uint8_t* ip = rte_pktmbuf_mtod_offset(m, const std::uint8_t*, 14);
      LbMeta& mt = meta[i];
      if (!classify4(s, a.src, a.sport, a.dst, a.dport, mt)) {
        w.tracker->count_parse(packet::ParseResult::Tcp);
        drop(m, w.counters.lb_dropped_no_vip);
        continue;
      }
      if (!mt.multi) {  // a backend of several VIPs takes the whole path below (rare)
        if (steer) {
          const std::uint32_t o = owner(4, mt.dir == LbDir::In, ip + 12, a.sport, ip + 16, a.dport);
          if (o != w.index) {
            hand_over(w, o, m);
            continue;
          }
        }
        w.tracker->count_parse(packet::ParseResult::Tcp);
        if (mt.dir == LbDir::Out) from_vip(s.slots[mt.slot], a);
        w.tracker->prepare<false>(a, keys, kept);
        lite[kept] = true;
        keep[kept++] = i;
        continue;
      }
    }
    packet::PacketView& v = views[i];
    const packet::ParseResult res = packet::parse_mbuf(m, v);
    if (res != packet::ParseResult::Tcp) {
      w.tracker->count_parse(res);
      if (res == packet::ParseResult::NotIp && v.ether_type == lb::arp::kEtherArp) handle_arp(w, m);
      else if (packet::is_malformed(res)) drop(m, w.counters.lb_dropped_malformed);
      else drop(m, w.counters.lb_dropped_not_tcp);
      continue;
    }
    if (v.fragment != packet::Fragment::None) {
      w.tracker->count_parse(res);
      drop(m, w.counters.lb_dropped_not_tcp);
      continue;
    }
    const std::uint8_t family = v.family == packet::IpFamily::V4 ? 4 : 6;
    LbMeta& mt = meta[i];
    if (!classify(s, family, v.src, v.sport, v.dst, v.dport, mt)) {
      w.tracker->count_parse(res);
      drop(m, w.counters.lb_dropped_no_vip);
      continue;
    }
    if (steer) {
      const std::uint32_t o = owner(family, mt.dir == LbDir::In, v.src, v.sport, v.dst, v.dport);
      if (o != w.index) {
        hand_over(w, o, m);
        continue;
      }
    }
    w.tracker->count_parse(res);
    tracked_views[kept] = &v;
    if (mt.dir == LbDir::Out) {
      packet::PacketView& tv = tviews[kept];
      copy_from_vip(s, mt.vip, v, tv);
      tracked_views[kept] = &tv;
      if (mt.multi) {
        // The backend serves several VIPs: find the connection that uses it.
        // With none, the VIP is unknown: picking one could pick up the
        // connection under the wrong VIP, so the packet is dropped.
        const bool found = lb::for_each_slot(s, family, v.src, v.sport, [&](std::uint32_t slot) {
          from_vip(s, s.slots[slot].vip, tv);
          const flow::Handle h = w.tracker->find(tv);
          if (h != flow::kNoHandle && w.tracker->backend(v.family, h) == slot) {
            mt.slot = slot;
            mt.vip = s.slots[slot].vip;
            return true;
          }
          return false;
        });
        if (!found) {
          drop(m, w.counters.lb_dropped_unknown_flow);
          continue;
        }
        from_vip(s, mt.vip, tv);
      }
    }
    w.tracker->prepare<false>(*tracked_views[kept], keys, kept);
    lite[kept] = false;
    keep[kept++] = i;
  }

  // The backend is decided right after each packet is tracked, before a
  // later packet of the burst can end the connection and hand its entry to
  // another one. True: a new connection's, picked by Maglev.
  auto decide = [&](unsigned k, flow::TrackResult& r) noexcept {
    if (r.handle == flow::kNoHandle || r.backend != lb::kNoBackend) return false;
    const LbMeta& mt = meta[keep[k]];
    std::uint16_t b;
    if (mt.dir == LbDir::In) {
      b = lb::maglev_pick(s.table(mt.vip), r.hash);  // a new connection (SYN or picked up): its backend, for good
      if (b == lb::kNoBackend) return false;
    } else {
      b = static_cast<std::uint16_t>(mt.slot);  // picked up from the backend's side
    }
    w.tracker->set_backend(lite[k] ? packet::IpFamily::V4 : views[keep[k]].family, r.handle, b);
    r.backend = b;
    return mt.dir == LbDir::In;
  };
  // Then each packet goes on its way (dropped, rewritten and sent, or held
  // for its next hop's MAC) right after it is tracked.
  auto forward = [&](unsigned k, const flow::TrackResult& r, bool picked) noexcept __attribute__((always_inline)) {
    const unsigned i = keep[k];
    rte_mbuf* m = pkts[i];
    const bool is_lite = lite[k];
    const packet::PacketView& v = views[i];  // read only if !is_lite
    const LbMeta& mt = meta[i];
    const std::uint8_t family = is_lite || v.family == packet::IpFamily::V4 ? 4 : 6;
    if (r.verdict == tcp::Verdict::Drop) {  // over the new-flow limit: counted by the tracker
      rte_pktmbuf_free(m);
      return;
    }
    const bool invalid = r.verdict == tcp::Verdict::Invalid;
    std::uint8_t* frame = rte_pktmbuf_mtod(m, std::uint8_t*);
    const std::uint8_t* dst = is_lite ? frame + 14 + 16 : v.dst;  // the IP destination
    std::uint16_t out_port;
    const std::uint8_t* nexthop;
    const std::uint8_t* new_addr;  // the NAT rewrite, done once the packet is sure to go
    std::uint16_t new_port;
    lb::NatChange4 nat;  // its checksum changes, for an AckSegment (IPv4)
    lb::HopMemo* hop;    // the next hop's memo, if it has one
    std::uint32_t slot = r.backend;  // also set when this packet (a RST) just ended its connection

    if (mt.dir == LbDir::In) {
      if (slot == lb::kNoBackend) {
        if (r.handle != flow::kNoHandle || invalid || r.reason != tcp::Reason::NoEntry) {
          drop(m, r.handle != flow::kNoHandle ? w.counters.lb_dropped_no_backend : w.counters.lb_dropped_unknown_flow);
          return;
        }
        // Table full: forward by Maglev, untracked, rather than drop.
        slot = lb::maglev_pick(s.table(mt.vip), r.hash);
        if (slot == lb::kNoBackend) {
          drop(m, w.counters.lb_dropped_no_backend);
          return;
        }
        ++w.counters.lb_untracked_table_full;
      } else if (picked) {
        ++w.backend_counters[slot].new_connections;
        ++w.counters.lb_new_connections;
      }
      const lb::BackendSlot& b = s.slots[slot];
      new_addr = b.addr;
      new_port = b.port;
      nat = b.nat_in;
      out_port = b.out_port;
      nexthop = b.nexthop;
      hop = &w.slot_hops[slot];
    } else {
      if (slot == lb::kNoBackend) {
        // No entry: untracked (table full), unless policy says otherwise.
        if (invalid && (w.lb_strict || w.invalid_policy == config::InvalidPolicy::Drop)) {
          drop(m, w.counters.lb_dropped_unknown_flow);
          return;
        }
        slot = mt.slot;
      } else if (slot != mt.slot) {
        drop(m, w.counters.lb_dropped_backend_mismatch);
        return;
      }
      if (!lb::route(s, family, dst, out_port, nexthop)) {
        drop(m, w.counters.lb_dropped_no_route);
        return;
      }
      const lb::BackendSlot& b = s.slots[slot];  // slot == mt.slot: its VIP is mt.vip
      new_addr = family == 4 ? b.vip_addr4 : s.vips[mt.vip].addr;
      new_port = b.vip_port;
      nat = b.nat_out;
      hop = nexthop != dst ? &w.gateway_hops[family == 6][out_port] : nullptr;  // a gateway, or on link
    }
    if (invalid) {
      if (w.invalid_policy == config::InvalidPolicy::Drop) {
        drop(m, w.counters.dropped_invalid);
        return;
      }
      ++w.counters.forwarded_invalid;
    }
    if (is_lite ? !lb::ttl_allows_forwarding(frame, acks[k]) : !lb::ttl_allows_forwarding(v)) {
      drop(m, w.counters.lb_dropped_ttl);
      return;
    }
    if (is_lite) {
      if (mt.dir == LbDir::In) lb::rewrite_dst_and_ttl(frame, acks[k], new_addr, new_port, nat);
      else lb::rewrite_src_and_ttl(frame, acks[k], new_addr, new_port, nat);
    } else if (mt.dir == LbDir::In) {
      lb::rewrite_dst_and_ttl(frame, v, new_addr, new_port);
    } else {
      lb::rewrite_src_and_ttl(frame, v, new_addr, new_port);
    }
    // Counted as forwarded from here: sent now, or held for the neighbour.
    shm::BackendCounters& bc = w.backend_counters[slot];
    if (mt.dir == LbDir::In) {
      ++bc.packets_in;
      bc.bytes_in += rte_pktmbuf_pkt_len(m);
    } else {
      ++bc.packets_out;
      bc.bytes_out += rte_pktmbuf_pkt_len(m);
      if (r.syn_to_synack_ms != flow::TrackResult::kNoTiming) {
        ++bc.syn_to_synack[flow::handshake_bucket(r.syn_to_synack_ms)];
        bc.syn_to_synack_ms_sum += r.syn_to_synack_ms;
      }
    }
    if (!is_lite && v.has(packet::tcpflag::kRst)) {  // never an AckSegment
      ++bc.resets;
      bc.late_resets += r.reason == tcp::Reason::RstAfterClose;
    }
    if (!set_next_hop_macs(w, s, hop, family, nexthop, out_port, frame, now_ms)) {
      if (w.waiting_count == WorkerContext::kMaxWaiting) {
        drop(m, w.counters.lb_dropped_no_neighbour);
        return;
      }
      WorkerContext::Waiting& q = w.waiting[w.waiting_count++];
      q.m = m;
      q.deadline_ms = now_ms + WorkerContext::kWaitMs;
      q.port = out_port;
      q.family = family;
      std::memcpy(q.nexthop, nexthop, family == 4 ? 4 : 16);
      ++w.counters.lb_waited_for_neighbour;
      return;
    }
    enqueue_tx(w, out_port, m);
  };
  // As Tracker::track_prepared(), with an AckSegment's view parsed only for
  // the general path.
  if (kept) {
    // The burst's buckets are fetched here together, not one by one in the
    // parse loop above: there a prefetch whose page missed the TLB held up
    // retirement through its page walk while the next packet's parse and
    // classification filled the window, so walks hardly overlapped (on a
    // guest whose memory the host maps with 4 KiB pages, every bucket of a
    // large table is a walk). Inline mode's Tracker::track_frames() does the
    // same (README, Performance).
    w.tracker->prefetch_buckets(kept, keys);
    w.tracker->find_candidates(kept, keys);
    const flow::Clock clock{now_ms};
    std::uint32_t fast = 0;
    Uninitialised<flow::TrackResult, 1> result;
    flow::TrackResult& r = result[0];
    for (unsigned k = 0; k < kept; ++k) {
      if (!lite[k]) {
        fast += w.tracker->track_prepared_one(keys, k, *tracked_views[k], clock, r);
      } else if (w.tracker->in_place<true>(keys, k, acks[k], clock, r)) {
        ++fast;
      } else {
        const unsigned i = keep[k];
        packet::parse_mbuf(pkts[i], views[i]);  // Tcp, as for every AckSegment
        const packet::PacketView* tv = &views[i];
        if (meta[i].dir == LbDir::Out) {
          copy_from_vip(s, meta[i].vip, views[i], tviews[k]);
          tv = &tviews[k];
        }
        w.tracker->general_after_in_place(keys, k, *tv, clock, r);
      }
      const bool picked = decide(k, r);
      forward(k, r, picked);
    }
    w.tracker->count_in_place(fast);
  }
}

void send_waiting(WorkerContext& w, std::uint64_t now_ms) {
  std::uint32_t kept = 0;
  for (std::uint32_t i = 0; i < w.waiting_count; ++i) {
    WorkerContext::Waiting& q = w.waiting[i];
    config::Mac mac;
    if (w.neighbour_cache.lookup(w.neighbours, q.family, q.nexthop, mac)) send_to(w, *w.lb, q.port, mac, q.m);
    else if (now_ms >= q.deadline_ms) drop(q.m, w.counters.lb_dropped_no_neighbour);
    else w.waiting[kept++] = q;
  }
  w.waiting_count = kept;
}

void flush_tx(WorkerContext& w) {
  for (std::uint16_t p = 0; p < w.port_count; ++p)
    if (w.tx[p].count) send_buffer(w, p);
}

namespace {

// Tracks and sends what the other workers handed to this one: a burst from
// each ring per poll loop, or, at stop, until every ring is empty. Returns
// whether any packet came.
inline bool take_handovers(WorkerContext& w, rte_mbuf** pkts, std::uint64_t now_ms, bool until_empty) {
  bool any = false;
  for (std::uint32_t from = 0; from < w.worker_count; ++from) {
    if (from == w.index) continue;
    do {
      const unsigned n = rte_ring_dequeue_burst(w.handover_in[from], reinterpret_cast<void**>(pkts), kBurst, nullptr);
      if (!n) break;
      any = true;
      w.counters.handover_in += n;
      if (w.lb_mode) process_burst_lb(w, pkts, n, now_ms, true);
      else process_burst(w, pkts, n, now_ms, true);
    } while (until_empty);
  }
  return any;
}

// The end of a worker's life: what waits for a neighbour is dropped
// (counted), tx flushed, counters published, off the LB state's readers.
void finish(WorkerContext& w) {
  for (std::uint32_t i = 0; i < w.waiting_count; ++i) drop(w.waiting[i].m, w.counters.lb_dropped_no_neighbour);
  w.waiting_count = 0;
  flush_tx(w);
  publish(w);
  if (w.lb_mode) rte_rcu_qsbr_thread_offline(w.qsbr, w.index);
}

}  // namespace

int worker_main(void* arg) {
  WorkerContext& w = *static_cast<WorkerContext*>(arg);
  rte_mbuf* pkts[kBurst];
  std::uint32_t idle_loops = 0;
  if (w.lb_mode) rte_rcu_qsbr_thread_online(w.qsbr, w.index);
  while (w.header->running) {
    const std::uint64_t now_ms = clock_ms(*w.header);
    bool busy = false;
    // A reload may change it. The rate first (acquire): ctlb-control writes
    // the burst before the rate (control/reload.cpp), so a new rate never
    // comes with an old burst (a burst of 0: no new connection at all).
    const std::uint32_t new_flow_rate = __atomic_load_n(&w.header->new_flow_rate, __ATOMIC_ACQUIRE);
    w.tracker->set_new_flow_limit(new_flow_rate, w.header->new_flow_burst);
    if (w.lb_mode) {
      w.lb = shm::live_lb_generation(*w.lb_zone);
      if (w.waiting_count) send_waiting(w, now_ms);
      if (w.slow_tx) {
        const unsigned n = rte_ring_dequeue_burst(w.slow_tx, reinterpret_cast<void**>(pkts), kBurst, nullptr);
        for (unsigned i = 0; i < n; ++i) enqueue_tx(w, pkts[i]->port, pkts[i]);
        w.counters.slow_tx_sent += n;
      }
    }
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
      if (w.lb_mode) process_burst_lb(w, pkts, n, now_ms, false);
      else process_burst(w, pkts, n, now_ms, false);
    }
    if (w.steer_in_software && take_handovers(w, pkts, now_ms, false)) busy = true;
    flush_tx(w);
    if (w.lb_mode) rte_rcu_qsbr_quiescent(w.qsbr, w.index);  // done with this loop's LB state
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
  finish(w);
  return 0;
}

void finish_handovers(WorkerContext& w, std::uint64_t now_ms) {
  if (!w.steer_in_software) return;
  rte_mbuf* pkts[kBurst];
  if (w.lb_mode) {
    rte_rcu_qsbr_thread_online(w.qsbr, w.index);  // in the worker's place
    w.lb = shm::live_lb_generation(*w.lb_zone);
  }
  take_handovers(w, pkts, now_ms, true);
  finish(w);
}

}  // namespace ctlb::dataplane
