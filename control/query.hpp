#pragma once
// What the operator asks of a running dataplane, answered from the shared
// memory alone (counters in the header, flow tables read with their seqlock):
// stats, flows with filters, stuck connections, and the Prometheus text.
// Pure code over memory: ctlb-control serves it, the unit tests run it on
// heap tables.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/json.hpp"
#include "dataplane/flow/flow_table.hpp"
#include "dataplane/shm_layout.hpp"
#include "dataplane/stats.hpp"

namespace ctlb::control {

struct WorkerView {
  flow::FlowTable<flow::V4> v4;
  flow::FlowTable<flow::V6> v6;
};

struct View {
  const shm::Header* header = nullptr;
  std::vector<WorkerView> workers;
  tcp::Timeouts timeouts;
};

struct FlowFilter {
  std::optional<tcp::CtState> state;
  std::optional<tcp::EpState> initiator;
  std::optional<tcp::EpState> responder;
  std::optional<std::uint32_t> older_than_s;  // age (since the connection opened)
  std::optional<std::uint16_t> port;          // either endpoint's port
  // Mode lb: only connections whose backend slot is set here (the slots of
  // a VIP, a backend, or a backend in one VIP: select_backends() in
  // control/lb_admin.hpp); nullopt: any.
  std::optional<std::vector<bool>> backend_slots;
  std::uint32_t limit = 100;
};

// Every flow entry in use, read consistently: fn(worker, handle, entry, cold).
template <class F, class Fn>
void for_each_flow(const flow::FlowTable<F>& table, Fn&& fn) {
  if (!table.valid()) return;
  typename F::Entry e;
  flow::Cold c;
  for (flow::Handle h = 0; h < table.capacity(); ++h) {
    if (table.entry(h).status.ct_state == 0) continue;
    if (!table.read(h, e, c) || e.status.ct_state == 0) continue;
    fn(h, e, c);
  }
}

// Names to enum values ("ESTABLISHED", "CLOSE_WAIT", ...); nullopt if unknown.
std::optional<tcp::CtState> parse_ct_state(const std::string& name);
std::optional<tcp::EpState> parse_ep_state(const std::string& name);

// {"flows": [...], "matched": N, "truncated": bool}. With the live LB state
// (mode lb), each row also names its connection's "vip" and "backend"
// (ADDRESS:PORT), both null for a connection that has no backend.
Json query_flows(const View& v, const FlowFilter& f, std::uint64_t now_ms, const lb::State* lb = nullptr);
// {"stuck": [...], "threshold_s": N}; rows as query_flows's, and with
// `backend_slots` only those whose backend slot is set there.
Json query_stuck(const View& v, std::uint32_t threshold_s, std::uint64_t now_ms, std::uint32_t limit,
                 const lb::State* lb = nullptr, const std::optional<std::vector<bool>>& backend_slots = std::nullopt);
// {"stats": {name: value, ...}, "workers": N, "ports": [...]}, plus `extra`
// (the control process's own counters).
Json query_stats(const View& v, const std::vector<shm::Stat>& extra);
// Prometheus text exposition format 0.0.4, `ctlb_` names, HELP and TYPE.
std::string prometheus_text(const View& v, const std::vector<shm::Stat>& extra);

}  // namespace ctlb::control
