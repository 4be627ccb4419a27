#include "control/lb_admin.hpp"

#include <cstdio>
#include <cstring>

namespace ctlb::control {

std::string publish(shm::LbZone& z, const std::function<std::string(lb::State&)>& edit, const GraceWait& wait) {
  const std::uint32_t active = shm::lb_active(z);
  const lb::State& live = *shm::lb_generation(z, active);
  if (!wait()) return "the workers did not leave the previous generation in time; nothing changed";
  lb::State& next = *shm::lb_generation(z, active ^ 1);
  std::memcpy(static_cast<void*>(&next), &live, z.state_bytes);
  const std::string err = edit(next);
  if (!err.empty()) return err;
  __atomic_store_n(&z.active, active ^ 1, __ATOMIC_RELEASE);
  ++z.published;
  if (!wait())  // live all the same; the next publish waits for them first
    std::fprintf(stderr, "ctlb-control: published, but not every worker had switched after the wait\n");
  return {};
}

namespace {

// An operator's VIP and backend arguments (the backend commands', flows'
// and stuck's), or the error to answer.
std::string vip_argument(const lb::State& s, const std::string& vip, std::uint32_t& v) {
  v = lb::vip_by_name(s, vip);
  return v == lb::kNoVip ? "no VIP '" + vip + "' (give its name or ADDRESS:PORT)" : std::string();
}

std::string backend_argument(const std::string& backend, config::IpAddr& addr, std::uint16_t& port) {
  return lb::parse_endpoint(backend, addr, port)
             ? std::string()
             : "backend '" + backend + "': expected ADDRESS:PORT or [IPv6-ADDRESS]:PORT";
}

}  // namespace

std::string publish_change(shm::LbZone& z, lb::Op op, const std::string& vip, const std::string& backend,
                           std::uint32_t weight, const GraceWait& wait) {
  config::IpAddr addr;
  std::uint16_t port = 0;
  std::uint32_t v = lb::kNoVip;
  if (std::string err = backend_argument(backend, addr, port); !err.empty()) return err;
  if (std::string err = vip_argument(*shm::live_lb_generation(z), vip, v); !err.empty()) return err;
  return publish(z, [&](lb::State& next) { return lb::apply(next, op, v, addr, port, weight); }, wait);
}

std::string select_backends(const lb::State& s, const std::string* vip, const std::string* backend,
                            std::optional<std::vector<bool>>& slots) {
  std::uint32_t v = lb::kNoVip;
  config::IpAddr addr;
  std::uint16_t port = 0;
  if (vip)
    if (std::string err = vip_argument(s, *vip, v); !err.empty()) return err;
  if (backend)
    if (std::string err = backend_argument(*backend, addr, port); !err.empty()) return err;
  auto in_vip = [&](std::uint32_t b) {
    return s.slots[b].state != lb::SlotState::Free && (!vip || s.slots[b].vip == v);
  };
  std::vector<bool> chosen(s.slot_count, false);
  if (backend) {
    bool any = false;
    lb::for_each_slot(s, addr.family, addr.bytes.data(), port, [&](std::uint32_t b) {
      if (in_vip(b)) chosen[b] = any = true;
      return false;
    });
    if (!any)
      return "no backend " + *backend + (vip ? " in VIP '" + std::string(s.vips[v].name) + "'" : " in any VIP") +
             " (ctlbctl lb lists them)";
  } else {
    for (std::uint32_t b = 0; b < s.slot_count; ++b) chosen[b] = in_vip(b);  // none for an empty pool
  }
  slots = std::move(chosen);
  return {};
}

namespace {

struct Connections {
  std::uint64_t entries = 0;
  std::uint64_t active = 0;  // SYN_SENT, SYN_RECV, ESTABLISHED, SYN_SENT2
};

bool is_active(std::uint32_t ct) {
  const auto s = static_cast<tcp::CtState>(ct);
  return s == tcp::CtState::SynSent || s == tcp::CtState::SynRecv || s == tcp::CtState::Established ||
         s == tcp::CtState::SynSent2;
}

std::vector<Connections> count_connections(const View& v, std::uint32_t slots) {
  std::vector<Connections> out(slots);
  auto add = [&](flow::Handle, const auto& e, const flow::Cold& c) {
    if (c.backend >= slots) return;
    ++out[c.backend].entries;
    if (is_active(e.status.ct_state)) ++out[c.backend].active;
  };
  for (const auto& w : v.workers) {
    for_each_flow(w.v4, add);
    for_each_flow(w.v6, add);
  }
  return out;
}

void add(shm::BackendCounters& s, const shm::BackendCounters& b) {
  s.new_connections += b.new_connections;
  s.packets_in += b.packets_in;
  s.bytes_in += b.bytes_in;
  s.packets_out += b.packets_out;
  s.bytes_out += b.bytes_out;
  s.resets += b.resets;
  s.late_resets += b.late_resets;
  for (std::size_t i = 0; i < flow::kHandshakeBuckets; ++i) s.syn_to_synack[i] += b.syn_to_synack[i];
  s.syn_to_synack_ms_sum += b.syn_to_synack_ms_sum;
}

shm::BackendCounters sum_counters(const LbView& lv, std::uint32_t slot) {
  shm::BackendCounters s{};
  for (const auto* c : lv.counters)
    if (c) add(s, c[slot]);
  return s;
}

}  // namespace

Json query_lb(const LbView& lv, const View& v) {
  Json::Object root;
  if (!lv.zone) {
    root["vips"] = Json::Array{};
    root["mode"] = "inline";
    return Json(std::move(root));
  }
  const lb::State& s = *shm::live_lb_generation(*lv.zone);
  const auto conns = count_connections(v, s.slot_count);
  Json::Array vips;
  for (std::uint32_t i = 0; i < s.vip_count; ++i) {
    const lb::VipSlot& vs = s.vips[i];
    Json::Object vo;
    vo["name"] = std::string(vs.name);
    vo["address"] = lb::address_text(vs.family, vs.addr);
    vo["port"] = vs.port;
    vo["table_size"] = vs.table_size;
    std::vector<std::uint32_t> share(s.slot_count, 0);
    for (std::uint16_t e : s.table(i))
      if (e < s.slot_count) ++share[e];
    Json::Array backends;
    shm::BackendCounters total{};
    Connections total_conns;
    for (std::uint32_t b = 0; b < s.slot_count; ++b) {
      const lb::BackendSlot& bs = s.slots[b];
      if (bs.vip != i || bs.state == lb::SlotState::Free) continue;
      const shm::BackendCounters c = sum_counters(lv, b);
      add(total, c);
      total_conns.entries += conns[b].entries;
      total_conns.active += conns[b].active;
      Json::Object bo;
      bo["address"] = lb::address_text(bs.family, bs.addr);
      bo["port"] = bs.port;
      bo["weight"] = bs.weight;
      bo["state"] = lb::slot_state_name(bs.state);
      bo["table_share"] = vs.table_size ? static_cast<double>(share[b]) / vs.table_size : 0.0;
      bo["new_connections"] = c.new_connections;
      bo["connections"] = conns[b].entries;
      bo["active_connections"] = conns[b].active;
      bo["packets_in"] = c.packets_in;
      bo["bytes_in"] = c.bytes_in;
      bo["packets_out"] = c.packets_out;
      bo["bytes_out"] = c.bytes_out;
      bo["resets"] = c.resets;
      bo["late_resets"] = c.late_resets;
      Json::Array hist;
      for (auto n : c.syn_to_synack) hist.push_back(n);
      bo["syn_to_synack_buckets"] = std::move(hist);
      bo["syn_to_synack_ms_sum"] = c.syn_to_synack_ms_sum;
      backends.push_back(Json(std::move(bo)));
    }
    vo["backends"] = std::move(backends);
    // The VIP's totals: the sums over its backends (removed ones included).
    vo["new_connections"] = total.new_connections;
    vo["connections"] = total_conns.entries;
    vo["active_connections"] = total_conns.active;
    vo["packets_in"] = total.packets_in;
    vo["bytes_in"] = total.bytes_in;
    vo["packets_out"] = total.packets_out;
    vo["bytes_out"] = total.bytes_out;
    vo["resets"] = total.resets;
    vo["late_resets"] = total.late_resets;
    vips.push_back(Json(std::move(vo)));
  }
  root["mode"] = "lb";
  root["generation"] = s.generation;
  root["published"] = lv.zone->published;
  root["vips"] = std::move(vips);
  return Json(std::move(root));
}

Json query_neighbours(const LbView& lv, const shm::Header& h, std::uint64_t now_ms) {
  static constexpr const char* kStates[] = {"none", "incomplete", "reachable", "stale", "failed", "static"};
  Json::Array rows;
  const lb::NeighbourTable table(lv.neighbours, lv.neighbour_capacity);
  for (std::uint32_t i = 0; i < lv.neighbour_capacity; ++i) {
    lb::NeighbourSlot n;
    if (lv.neighbours[i].family == 0 || !table.read(i, n) || n.family == 0) continue;
    Json::Object o;
    o["address"] = lb::address_text(n.family, n.address);
    o["port"] = n.port < h.port_count ? std::string(h.port_names[n.port]) : std::to_string(n.port);
    const auto st = static_cast<std::size_t>(n.state);
    o["state"] = st < std::size(kStates) ? kStates[st] : "?";
    char mac[18];
    std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", n.mac[0], n.mac[1], n.mac[2], n.mac[3], n.mac[4],
                  n.mac[5]);
    const bool known = n.state == lb::NeighbourState::Reachable || n.state == lb::NeighbourState::Stale ||
                       n.state == lb::NeighbourState::Static;
    o["mac"] = known ? std::string(mac) : std::string();
    o["probes"] = static_cast<std::uint32_t>(n.probes_sent);
    o["updated_s_ago"] = now_ms > n.updated_ms ? (now_ms - n.updated_ms) / 1000.0 : 0.0;
    rows.push_back(Json(std::move(o)));
  }
  Json::Object root;
  root["neighbours"] = std::move(rows);
  return Json(std::move(root));
}

std::string prometheus_lb(const LbView& lv, const View& v) {
  if (!lv.zone) return {};
  const lb::State& s = *shm::live_lb_generation(*lv.zone);
  const auto conns = count_connections(v, s.slot_count);
  struct Metric {
    const char* name;
    const char* type;
    const char* help;
  };
  static constexpr Metric kMetrics[] = {
      {"ctlb_lb_backend_new_connections_total", "counter", "Connections given this backend at their SYN"},
      {"ctlb_lb_backend_connections", "gauge", "Flow entries that use this backend"},
      {"ctlb_lb_backend_active_connections", "gauge", "Of those, connections not yet closing"},
      {"ctlb_lb_backend_bytes_in_total", "counter", "Bytes from clients to this backend"},
      {"ctlb_lb_backend_bytes_out_total", "counter", "Bytes from this backend to clients"},
      {"ctlb_lb_backend_resets_total", "counter", "RST segments of this backend's connections"},
      {"ctlb_lb_backend_late_resets_total", "counter",
       "Of those, RSTs after both sides had closed or after an earlier RST (reason rst_after_close): harmless"},
      {"ctlb_lb_backend_weight", "gauge", "Maglev weight (0: no new connections)"},
      {"ctlb_lb_backend_up", "gauge", "1 if the backend takes new connections"},
  };
  std::string out;
  for (std::size_t m = 0; m < std::size(kMetrics); ++m) {
    out += std::string("# HELP ") + kMetrics[m].name + " " + kMetrics[m].help + "\n";
    out += std::string("# TYPE ") + kMetrics[m].name + " " + kMetrics[m].type + "\n";
    for (std::uint32_t b = 0; b < s.slot_count; ++b) {
      const lb::BackendSlot& bs = s.slots[b];
      if (bs.state == lb::SlotState::Free) continue;
      const shm::BackendCounters c = sum_counters(lv, b);
      const std::uint64_t values[] = {c.new_connections, conns[b].entries, conns[b].active, c.bytes_in, c.bytes_out,
                                      c.resets,          c.late_resets,    bs.weight,
                                      bs.state == lb::SlotState::Active && bs.weight > 0 ? 1u : 0u};
      static_assert(std::size(values) == std::size(kMetrics), "a value for every metric");
      out += std::string(kMetrics[m].name) + "{vip=\"" + s.vips[bs.vip].name + "\",backend=\"" +
             lb::endpoint_text(bs.family, bs.addr, bs.port) + "\",state=\"" + lb::slot_state_name(bs.state) +
             "\"} " + std::to_string(values[m]) + "\n";
    }
  }
  return out;
}

}  // namespace ctlb::control
