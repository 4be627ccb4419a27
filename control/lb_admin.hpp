#pragma once
// The load balancer as ctlb-control sees it: the published LB state
// (shm::LbZone), per-worker backend counters, and run-time changes to the
// pools. Pure code over memory, so the unit tests run it on heap blocks;
// ctlb-control supplies the QSBR grace-period wait.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/json.hpp"
#include "control/query.hpp"
#include "dataplane/lb/lb_state.hpp"
#include "dataplane/lb/neighbour.hpp"
#include "dataplane/shm_layout.hpp"

namespace ctlb::control {

struct LbView {
  shm::LbZone* zone = nullptr;                          // null: not in mode lb
  std::vector<const shm::BackendCounters*> counters;  // per worker, [lb::kMaxSlots]
  lb::NeighbourSlot* neighbours = nullptr;             // the dataplane's neighbour table (read only here)
  std::uint32_t neighbour_capacity = 0;
};

// Waits until every worker has passed a quiescent state since the call
// (none still reads a generation it read before); false on timeout.
using GraceWait = std::function<bool()>;

// Publishes an edit of the LB state: waits for a grace period (nobody
// still reads the spare generation), copies the live generation into the
// spare one, lets `edit` change it there, makes it live, and waits for a
// grace period again so that on success every worker uses it. Returns an
// error message (edit's, or the first wait's: nothing published), empty on
// success.
std::string publish(shm::LbZone& z, const std::function<std::string(lb::State&)>& edit, const GraceWait& wait);

// One change to a VIP's pool, published (publish). Returns an error
// message, empty on success.
std::string publish_change(shm::LbZone& z, lb::Op op, const std::string& vip, const std::string& backend,
                           std::uint32_t weight, const GraceWait& wait);

// The backend slots of the flows an operator asks for (`ctlbctl flows --vip
// VIP --backend BACKEND`, either or both; VIP a name or ADDRESS:PORT,
// BACKEND ADDRESS:PORT or [IPv6-ADDRESS]:PORT): every slot of the VIP, every
// VIP's slot of the backend (one serving several VIPs has one slot in
// each), or the backend's slot in the VIP; removed backends included, as
// their connections may still be open. Sets `slots` (indexed by slot) and
// returns "", or returns an error message for an unknown VIP, a malformed
// backend, or a backend that is in none of the VIPs asked about.
std::string select_backends(const lb::State& s, const std::string* vip, const std::string* backend,
                            std::optional<std::vector<bool>>& slots);

// {"vips": [{name, address, port, table_size, generation, backends: [...]}]}
// with per-backend counters summed over workers, and the connections each
// backend has now (entries in the flow tables: all, and not yet closing).
Json query_lb(const LbView& lv, const View& v);

// {"neighbours": [{address, port, state, mac, probes, updated_s_ago}]}: the
// dataplane's ARP/static neighbour table; port names from the header.
Json query_neighbours(const LbView& lv, const shm::Header& h, std::uint64_t now_ms);

// Prometheus lines for the VIPs and backends (appended to the metrics).
std::string prometheus_lb(const LbView& lv, const View& v);

}  // namespace ctlb::control
