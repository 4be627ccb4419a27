#include "control/query.hpp"

#include <algorithm>
#include <cstdio>
#include <tuple>

#include "control/format.hpp"
#include "control/stuck.hpp"
#include "dataplane/lb/lb_state.hpp"

namespace ctlb::control {

std::optional<tcp::CtState> parse_ct_state(const std::string& name) {
  for (std::size_t i = 1; i < tcp::kCtStateCount; ++i)
    if (tcp::kCtStateNames[i] == name) return static_cast<tcp::CtState>(i);
  return std::nullopt;
}

std::optional<tcp::EpState> parse_ep_state(const std::string& name) {
  for (std::size_t i = 0; i < tcp::kEpStateCount; ++i)
    if (tcp::kEpStateNames[i] == name) return static_cast<tcp::EpState>(i);
  return std::nullopt;
}

namespace {

std::uint32_t age_s(const flow::Cold& c, std::uint64_t now_ms) {
  const std::uint64_t now_s = now_ms / 1000;
  return now_s > c.created_s ? static_cast<std::uint32_t>(now_s - c.created_s) : 0;
}

template <class E>
Json flow_row(std::uint32_t worker, const E& e, const flow::Cold& c, std::uint64_t now_ms,
              const tcp::Timeouts& timeouts, int family, const lb::State* lb) {
  Json::Object o;
  o["flow"] = format_key(e.key, e.status.initiator_is_lo);
  o["family"] = family;
  o["worker"] = worker;
  o["state"] = tcp::name(static_cast<tcp::CtState>(e.status.ct_state));
  o["initiator"] = tcp::name(static_cast<tcp::EpState>(e.status.initiator));
  o["responder"] = tcp::name(static_cast<tcp::EpState>(e.status.responder));
  o["age_s"] = age_s(c, now_ms);
  o["idle_s"] = elapsed_ms(static_cast<Millis>(now_ms), e.last_seen) / 1000.0;
  o["timeout_s"] = tcp::timeout_of(e.status, timeouts) / 1000.0;
  if (lb) {
    // Slots are never given to another backend (a removed one keeps its
    // own), so the slot in the entry still names the backend it chose.
    const bool known = c.backend < lb->slot_count && lb->slots[c.backend].state != lb::SlotState::Free;
    const lb::BackendSlot* b = known ? &lb->slots[c.backend] : nullptr;
    o["vip"] = b ? Json(std::string(lb->vips[b->vip].name)) : Json(nullptr);
    o["backend"] = b ? Json(lb::endpoint_text(b->family, b->addr, b->port)) : Json(nullptr);
  }
  return Json(std::move(o));
}

bool on_backend(const std::optional<std::vector<bool>>& slots, const flow::Cold& c) {
  return !slots || (c.backend < slots->size() && (*slots)[c.backend]);
}

template <class E>
bool matches(const FlowFilter& f, const E& e, const flow::Cold& c, std::uint64_t now_ms) {
  if (f.state && e.status.ct_state != static_cast<std::uint32_t>(*f.state)) return false;
  if (f.initiator && e.status.initiator != static_cast<std::uint32_t>(*f.initiator)) return false;
  if (f.responder && e.status.responder != static_cast<std::uint32_t>(*f.responder)) return false;
  if (f.older_than_s && age_s(c, now_ms) < *f.older_than_s) return false;
  if (f.port && e.key.port[0] != *f.port && e.key.port[1] != *f.port) return false;
  return on_backend(f.backend_slots, c);
}

}  // namespace

Json query_flows(const View& v, const FlowFilter& f, std::uint64_t now_ms, const lb::State* lb) {
  Json::Array rows;
  std::uint64_t matched = 0;
  for (std::uint32_t w = 0; w < v.workers.size(); ++w) {
    auto visit = [&](int family) {
      return [&, family](flow::Handle, const auto& e, const flow::Cold& c) {
        if (!matches(f, e, c, now_ms)) return;
        ++matched;
        if (rows.size() < f.limit) rows.push_back(flow_row(w, e, c, now_ms, v.timeouts, family, lb));
      };
    };
    for_each_flow(v.workers[w].v4, visit(4));
    for_each_flow(v.workers[w].v6, visit(6));
  }
  Json::Object o;
  o["flows"] = Json(std::move(rows));
  o["matched"] = matched;
  o["truncated"] = matched > f.limit;
  return Json(std::move(o));
}

Json query_stuck(const View& v, std::uint32_t threshold_s, std::uint64_t now_ms, std::uint32_t limit,
                 const lb::State* lb, const std::optional<std::vector<bool>>& backend_slots) {
  Json::Array rows;
  std::uint64_t matched = 0;
  for (std::uint32_t w = 0; w < v.workers.size(); ++w) {
    auto visit = [&](int family) {
      return [&, family](flow::Handle, const auto& e, const flow::Cold& c) {
        if (!on_backend(backend_slots, c)) return;
        const std::uint32_t idle = elapsed_ms(static_cast<Millis>(now_ms), e.last_seen);
        const auto stuck = classify_stuck(e.status, idle, threshold_s * 1000u);
        if (!stuck) return;
        ++matched;
        if (rows.size() >= limit) return;
        Json row = flow_row(w, e, c, now_ms, v.timeouts, family, lb);
        Json::Object o = row.as_object();
        o["kind"] = name(stuck->kind);
        o["holder"] = stuck->holder_is_initiator ? "initiator" : "responder";
        o["why"] = stuck->why;
        rows.push_back(Json(std::move(o)));
      };
    };
    for_each_flow(v.workers[w].v4, visit(4));
    for_each_flow(v.workers[w].v6, visit(6));
  }
  Json::Object o;
  o["stuck"] = Json(std::move(rows));
  o["matched"] = matched;
  o["threshold_s"] = threshold_s;
  return Json(std::move(o));
}

Json query_stats(const View& v, const std::vector<shm::Stat>& extra) {
  Json::Object stats;
  if (v.header)
    for (const auto& s : shm::collect_stats(*v.header)) stats[s.name] = s.value;
  for (const auto& s : extra) stats[s.name] = s.value;
  Json::Array ports;
  if (v.header)
    for (std::uint32_t p = 0; p < v.header->port_count; ++p) ports.push_back(Json(v.header->port_names[p]));
  Json::Object o;
  o["stats"] = Json(std::move(stats));
  o["workers"] = v.header ? v.header->worker_count : 0u;
  o["ports"] = Json(std::move(ports));
  return Json(std::move(o));
}

namespace {

void metric(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP ctlb_" + name + " " + help + "\n# TYPE ctlb_" + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, const std::string& labels, std::uint64_t value) {
  out += "ctlb_" + name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += " " + std::to_string(value) + "\n";
}

}  // namespace

std::string prometheus_text(const View& v, const std::vector<shm::Stat>& extra) {
  std::string out;
  if (v.header) {
    const shm::Header& h = *v.header;
    const shm::WorkerCounters s = shm::sum_counters(h);
    struct PortMetric {
      const char* name;
      std::uint64_t shm::PortCounters::*field;
      const char* help;
    };
    static constexpr PortMetric kPort[] = {
        {"port_rx_packets_total", &shm::PortCounters::rx_packets, "Packets received on the port."},
        {"port_rx_bytes_total", &shm::PortCounters::rx_bytes, "Bytes received on the port."},
        {"port_tx_packets_total", &shm::PortCounters::tx_packets, "Packets sent on the port."},
        {"port_tx_bytes_total", &shm::PortCounters::tx_bytes, "Bytes sent on the port."},
        {"port_tx_dropped_total", &shm::PortCounters::tx_dropped, "Packets the device refused to send (dropped)."},
    };
    for (const auto& m : kPort) {
      metric(out, m.name, "counter", m.help);
      for (std::uint32_t p = 0; p < h.port_count; ++p)
        sample(out, m.name, std::string("port=\"") + h.port_names[p] + "\"", s.ports[p].*m.field);
    }
    struct DeviceMetric {
      const char* name;
      std::uint64_t shm::DeviceCounters::*field;
      const char* help;
    };
    static constexpr DeviceMetric kDevice[] = {
        {"port_rx_nombuf_total", &shm::DeviceCounters::rx_nombuf,
         "Frames the device could not receive: the mbuf pool was empty (rte_eth_stats rx_nombuf)."},
        {"port_rx_missed_total", &shm::DeviceCounters::rx_missed,
         "Frames the device dropped, its rx ring full (rte_eth_stats imissed)."},
        {"port_rx_errors_total", &shm::DeviceCounters::rx_errors, "Erroneous frames received (rte_eth_stats ierrors)."},
        {"port_tx_errors_total", &shm::DeviceCounters::tx_errors, "Failed transmissions (rte_eth_stats oerrors)."},
    };
    for (const auto& m : kDevice) {
      metric(out, m.name, "counter", m.help);
      for (std::uint32_t p = 0; p < h.port_count; ++p)
        sample(out, m.name, std::string("port=\"") + h.port_names[p] + "\"", h.devices[p].*m.field);
    }
#define CTLB_X(f, n, d)                                              \
  metric(out, std::string(n) + "_total", "counter", d);              \
  sample(out, std::string(n) + "_total", "", s.f);
    CTLB_WORKER_COUNTERS(CTLB_X)
#undef CTLB_X
#define CTLB_X(f, n, d)                                              \
  metric(out, std::string(n) + "_total", "counter", d);              \
  sample(out, std::string(n) + "_total", "", s.tracker.f);
    CTLB_TRACKER_COUNTERS(CTLB_X)
#undef CTLB_X
    metric(out, "packets_by_parse_result_total", "counter", "Frames by parse result (malformed ones by reason).");
    for (std::size_t i = 0; i < packet::kParseResultCount; ++i)
      sample(out, "packets_by_parse_result_total", "result=\"" + std::string(packet::kParseResultNames[i]) + "\"",
             s.tracker.parse[i]);
    metric(out, "tcp_verdicts_total", "counter", "TCP segments by verdict reason (invalid ones by why).");
    for (std::size_t i = 0; i < tcp::kReasonCount; ++i)
      sample(out, "tcp_verdicts_total", "reason=\"" + std::string(tcp::kReasonNames[i]) + "\"",
             s.tracker.reasons[i]);
    metric(out, "flows", "gauge", "Connections currently tracked, by connection state.");
    for (std::size_t i = 1; i < tcp::kCtStateCount; ++i) {
      const std::int64_t n = s.tracker.flows_in_state[i];
      sample(out, "flows", "state=\"" + std::string(tcp::kCtStateNames[i]) + "\"",
             n < 0 ? 0 : static_cast<std::uint64_t>(n));
    }
    {
      const std::int64_t n = flow::half_open_flows(s.tracker);
      metric(out, "flows_half_open", "gauge",
             "Connections whose handshake has not completed (SYN_SENT, SYN_RECV, SYN_SENT2): what a SYN flood fills "
             "the table with.");
      sample(out, "flows_half_open", "", n < 0 ? 0 : static_cast<std::uint64_t>(n));
    }
    metric(out, "state_transitions_total", "counter", "Connection state changes, from and to.");
    for (std::size_t i = 0; i < tcp::kCtStateCount; ++i)
      for (std::size_t j = 0; j < tcp::kCtStateCount; ++j)
        if (s.tracker.transitions[i][j])
          sample(out, "state_transitions_total",
                 "from=\"" + std::string(tcp::kCtStateNames[i]) + "\",to=\"" + std::string(tcp::kCtStateNames[j]) + "\"",
                 s.tracker.transitions[i][j]);
    for (const auto& [name, counts, sum_ms, help] :
         {std::tuple{"handshake_syn_synack_seconds", s.tracker.syn_to_synack, s.tracker.syn_to_synack_ms_sum,
                     "Time from a SYN to its SYN-ACK."},
          std::tuple{"handshake_synack_ack_seconds", s.tracker.synack_to_ack, s.tracker.synack_to_ack_ms_sum,
                     "Time from a SYN-ACK to the handshake's final ACK."}}) {
      metric(out, name, "histogram", help);
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b < flow::kHandshakeBuckets; ++b) {
        cumulative += counts[b];
        char le[32];
        if (b < flow::kHandshakeBuckets - 1) std::snprintf(le, sizeof le, "%g", flow::kHandshakeBucketMs[b] / 1000.0);
        else std::snprintf(le, sizeof le, "+Inf");
        sample(out, std::string(name) + "_bucket", std::string("le=\"") + le + "\"", cumulative);
      }
      char sum[32];
      std::snprintf(sum, sizeof sum, "%.3f", static_cast<double>(sum_ms) / 1000.0);
      out += "ctlb_" + std::string(name) + "_sum " + sum + "\n";
      sample(out, std::string(name) + "_count", "", cumulative);
    }
    metric(out, "workers", "gauge", "Dataplane workers.");
    sample(out, "workers", "", h.worker_count);
  }
  for (const auto& e : extra) {
    const bool gauge = e.name.find("last") != std::string::npos || e.name.find("max") != std::string::npos ||
                       e.name.find("capacity") != std::string::npos ||
                       e.name.rfind("flows_", 0) == 0 || e.name.find("in_use") != std::string::npos;
    const std::string name = gauge ? e.name : e.name + "_total";
    metric(out, name, gauge ? "gauge" : "counter", "ctlb-control: " + e.name + ".");
    sample(out, name, "", e.value);
  }
  return out;
}

}  // namespace ctlb::control
