// Fuzz target: the control socket's JSON API (control/api.cpp handle_api,
// control/json.cpp, and in mode lb control/lb_admin.cpp's publish_change
// with lb::apply), on the raw bytes a client sends.
//
// The dataplane is replaced by memory laid out as it lays it out, on the
// heap (as tests/unit/test_control.cpp does): flow tables filled by a real
// tracker with connections in several states, a shared header with its
// counters, the load balancer's zone (two generations of lb::State built by
// lb::init_state from a mode-lb configuration loaded by the real loader),
// per-worker backend counters and a neighbour table. The zone is restored
// before every input, so that an input is a reproducible session.
//
// The input is what clients send: Server::run answers each connection's
// first line (up to '\n') with one line. Each line of the input is taken as
// one such request, in order (at most 32), so that changes to the pools
// (backend add/remove/drain/down/weight) build on each other. Invariants:
//  - every answer is one line of valid JSON: an object with "ok" a boolean,
//    and when false a non-empty one-line "error" string;
//  - a query (anything but a successful backend change) changes nothing in
//    the LB zone; a refused change leaves the live generation as it was;
//  - a successful change publishes exactly one new generation (generation
//    +1, published +1, the other half live), for a VIP and backend named
//    without a NUL (which C functions would silently cut short);
//  - the live LB state stays consistent: every Maglev entry is an active,
//    weighted backend of its own VIP (none is empty while the VIP has one),
//    every backend slot is found by its address and port, every VIP by its
//    name;
//  - the Prometheus text (with the LB lines) is HELP/TYPE/sample lines only.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../unit/table_util.hpp"
#include "config/loader.hpp"
#include "control/api.hpp"
#include "control/json.hpp"
#include "control/lb_admin.hpp"
#include "control/query.hpp"
#include "dataplane/common/bytes.hpp"
#include "dataplane/flow/tracker.hpp"
#include "fuzz_check.hpp"

namespace {

namespace control = ctlb::control;
namespace flow = ctlb::flow;
namespace lb = ctlb::lb;
namespace shm = ctlb::shm;
namespace tf = ctlb::packet::tcpflag;
using control::Json;

constexpr std::uint64_t kNowMs = 600'000;

constexpr const char* kLbYaml = R"(mode: lb
lcores: {main: 0, workers: [1]}
ports:
  - name: clients
    devargs: net_null0
    addresses: [198.18.1.1/24, 2001:db8:1::1/64]
    gateway: 198.18.1.254
  - name: backends
    devargs: net_null1
    addresses: [198.18.2.1/24, 2001:db8:2::1/64]
    gateway: 2001:db8:2::fe
lb:
  vips:
    - name: web
      address: 198.18.100.1
      port: 80
      table_size: 13
      backends:
        - {address: 198.18.2.11, port: 8080}
        - {address: 198.18.2.12, port: 8080, weight: 2}
        - {address: 198.18.2.13, port: 8080, state: draining}
    - name: web6
      address: 2001:db8:100::1
      port: 443
      table_size: 7
      backends:
        - {address: "2001:db8:2::11", port: 8443}
    - address: 198.18.100.1
      port: 8080
      table_size: 251
      backends:
        - {address: 198.18.2.11, port: 8080, state: down}
        - {address: 10.9.9.9, port: 80}
)";

struct Fixture {
  ctlb_test::HeapTable<flow::V4> t4{64};
  ctlb_test::HeapTable<flow::V6> t6{16};
  flow::Tracker tracker{t4.table, t6.table, ctlb::tcp::Config{}};
  std::unique_ptr<shm::Header> header = std::make_unique<shm::Header>();
  control::View view;
  std::vector<shm::Stat> extra{{"ager_scans", 4}, {"ager_expired", 2}};

  std::size_t zone_bytes = 0;
  ctlb_test::Region zone_mem;
  shm::LbZone* zone = nullptr;
  std::vector<std::uint8_t> pristine;
  std::vector<shm::BackendCounters> counters = std::vector<shm::BackendCounters>(lb::kMaxSlots);
  std::vector<lb::NeighbourSlot> neighbours = std::vector<lb::NeighbourSlot>(16);
  control::LbView lb_view;
  control::LbHooks hooks;

  Fixture() {
    header->worker_count = 1;
    header->port_count = 2;
    header->lb_mode = 1;
    std::snprintf(header->port_names[0], shm::kNameLen, "clients");
    std::snprintf(header->port_names[1], shm::kNameLen, "backends");
    view.header = header.get();
    view.workers.push_back({t4.table, t6.table});
    view.timeouts = ctlb::tcp::default_timeouts();
    flows();
    header->counters[0].tracker = tracker.counters();

    auto cfg = ctlb::config::load_string(kLbYaml, "fuzz-lb.yaml");
    FUZZ_CHECK(cfg.ok(), "the fixture's configuration: %s", cfg.ok() ? "" : cfg.error().message.c_str());
    const std::size_t sb = lb::state_bytes(lb::table_entries_of(cfg.value()));
    const std::size_t head = (sizeof(shm::LbZone) + 63) & ~std::size_t{63};
    zone_bytes = head + 2 * sb;
    zone_mem = ctlb_test::aligned_region(zone_bytes);
    std::memset(zone_mem.get(), 0, zone_bytes);
    zone = new (zone_mem.get()) shm::LbZone{};
    zone->state_bytes = static_cast<std::uint32_t>(sb);
    zone->state_offset[0] = head;
    zone->state_offset[1] = head + sb;
    const std::vector<ctlb::config::Mac> macs = {{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}};
    const std::string err = lb::init_state(*shm::lb_generation(*zone, 0), cfg.value(), macs);
    FUZZ_CHECK(err.empty(), "the fixture's lb::init_state: %s", err.c_str());
    std::memcpy(static_cast<void*>(shm::lb_generation(*zone, 1)), shm::lb_generation(*zone, 0), sb);
    pristine.assign(static_cast<std::uint8_t*>(zone_mem.get()), static_cast<std::uint8_t*>(zone_mem.get()) + zone_bytes);

    for (std::uint32_t s = 0; s < 6; ++s) {
      counters[s].new_connections = 10 + s;
      counters[s].packets_in = 100 * s;
      counters[s].syn_to_synack[s % flow::kHandshakeBuckets] = 3;
    }
    lb::NeighbourTable nt(neighbours.data(), static_cast<std::uint32_t>(neighbours.size()));
    nt.clear();
    const std::uint8_t a1[4] = {198, 18, 2, 11}, a2[4] = {198, 18, 2, 12}, a3[4] = {198, 18, 1, 254};
    const std::uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11};
    nt.set_static(4, a1, 1, {2, 0, 0, 0, 2, 11}, kNowMs - 5000);
    nt.set_resolved(nt.find_or_add(4, a2, 1, kNowMs - 1000), {2, 0, 0, 0, 2, 12}, kNowMs - 900);
    nt.find_or_add(4, a3, 0, kNowMs);
    nt.find_or_add(6, a6, 9, kNowMs + 5000);  // a port index the header does not name, updated "later"
    lb_view.zone = zone;
    lb_view.counters = {counters.data(), nullptr};
    lb_view.neighbours = neighbours.data();
    lb_view.neighbour_capacity = static_cast<std::uint32_t>(neighbours.size());
    hooks.view = &lb_view;
    hooks.change = [this](lb::Op op, const std::string& vip, const std::string& backend, std::uint32_t weight) {
      return control::publish_change(*zone, op, vip, backend, weight, [] { return true; });
    };
  }

  void seg(bool v6, std::uint16_t cport, bool from_client, std::uint8_t flags, std::uint32_t seq, std::uint32_t ack,
           std::uint64_t now_ms) {
    ctlb::packet::PacketView v;
    v.family = v6 ? ctlb::packet::IpFamily::V6 : ctlb::packet::IpFamily::V4;
    std::uint8_t client[16] = {198, 18, 1, 2}, server[16] = {198, 18, 100, 1};
    if (v6) {
      const std::uint8_t c6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
      const std::uint8_t s6[16] = {0x20, 0x01, 0x0d, 0xb8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
      std::memcpy(client, c6, 16);
      std::memcpy(server, s6, 16);
    }
    std::memcpy(from_client ? v.src : v.dst, client, 16);
    std::memcpy(from_client ? v.dst : v.src, server, 16);
    v.sport = from_client ? cport : 80;
    v.dport = from_client ? 80 : cport;
    v.flags = flags;
    v.seq = seq;
    v.ack = ack;
    v.window = 500;
    v.header_len = 20;
    const flow::TrackResult r = tracker.track(v, flow::Clock{now_ms});
    if (r.handle != flow::kNoHandle && r.backend == flow::kNoBackend)
      tracker.set_backend(v.family, r.handle, static_cast<std::uint16_t>(cport % 7 == 6 ? 999 : cport % 5));
  }

  // Connections in several states (both endpoint views), some with a
  // backend slot, one with a slot number beyond any.
  void flows() {
    for (bool v6 : {false, true}) {
      for (std::uint16_t p = 40000; p < 40014; ++p) {
        const std::uint64_t t = 1000 + 20'000 * (p - 40000);
        seg(v6, p, true, tf::kSyn, 100, 0, t);
        if (p % 7 == 1) continue;  // SYN_SENT
        seg(v6, p, false, tf::kSyn | tf::kAck, 900, 101, t + 1);
        if (p % 7 == 2) continue;  // SYN_RECV
        seg(v6, p, true, tf::kAck, 101, 901, t + 2);
        if (p % 7 == 3) continue;  // ESTABLISHED
        seg(v6, p, true, tf::kFin | tf::kAck, 101, 901, t + 3);
        seg(v6, p, false, tf::kAck, 901, 102, t + 4);
        if (p % 7 == 4) continue;  // CLOSE_WAIT
        seg(v6, p, false, tf::kFin | tf::kAck, 901, 102, t + 5);
        if (p % 7 == 5) continue;  // LAST_ACK
        seg(v6, p, true, tf::kAck, 102, 902, t + 6);  // TIME_WAIT
      }
    }
  }

  const lb::State& live() const { return *shm::live_lb_generation(*zone); }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void check_lb_state(const lb::State& s) {
  FUZZ_CHECK(s.vip_count <= lb::kMaxVips && s.slot_count <= lb::kMaxSlots, "vip_count %u slot_count %u", s.vip_count,
             s.slot_count);
  for (std::uint32_t v = 0; v < s.vip_count; ++v) {
    bool has_active = false;
    for (std::uint32_t b = 0; b < s.slot_count; ++b)
      has_active = has_active || (s.slots[b].vip == v && s.slots[b].state == lb::SlotState::Active &&
                                  s.slots[b].weight > 0);
    for (std::uint16_t e : s.table(v)) {
      if (e == lb::kNoBackend) {
        FUZZ_CHECK(!has_active, "VIP %s: an empty Maglev entry while it has an active backend", s.vips[v].name);
        continue;
      }
      FUZZ_CHECK(e < s.slot_count && s.slots[e].vip == v && s.slots[e].state == lb::SlotState::Active &&
                     s.slots[e].weight > 0,
                 "VIP %s: Maglev entry %u is not an active weighted backend of it", s.vips[v].name, e);
    }
    FUZZ_CHECK(lb::vip_by_name(s, s.vips[v].name) == v, "VIP %s not found by its name", s.vips[v].name);
    if (s.vips[v].family == 4)
      FUZZ_CHECK(lb::find_vip4(s, ctlb::load_be32(s.vips[v].addr), s.vips[v].port) == v,
                 "VIP %s not found in the IPv4 index", s.vips[v].name);
  }
  for (std::uint32_t b = 0; b < s.slot_count; ++b) {
    const lb::BackendSlot& bs = s.slots[b];
    if (bs.state == lb::SlotState::Free) continue;
    FUZZ_CHECK(bs.vip < s.vip_count && (bs.family == 4 || bs.family == 6), "slot %u: vip %u family %u", b, bs.vip,
               bs.family);
    FUZZ_CHECK(lb::for_each_slot(s, bs.family, bs.addr, bs.port, [&](std::uint32_t i) { return i == b; }),
               "slot %u (%s) not found by its address and port", b,
               lb::endpoint_text(bs.family, bs.addr, bs.port).c_str());
    const lb::VipSlot& vs = s.vips[bs.vip];
    FUZZ_CHECK(bs.vip_port == vs.port && (bs.family != 4 || std::memcmp(bs.vip_addr4, vs.addr, 4) == 0),
               "slot %u: its copy of VIP %s's endpoint differs", b, vs.name);
    if (bs.family == 4) {  // the worker's IPv4 index: a slot of this endpoint, multi if it has more
      unsigned n = 0;
      lb::for_each_slot(s, 4, bs.addr, bs.port, [&](std::uint32_t) { return ++n, false; });
      bool multi = false;
      const std::uint32_t found = lb::find_slot4(s, ctlb::load_be32(bs.addr), bs.port, multi);
      FUZZ_CHECK(found < s.slot_count && s.slots[found].port == bs.port &&
                     std::memcmp(s.slots[found].addr, bs.addr, 4) == 0 && multi == (n > 1),
                 "slot %u (%s): the IPv4 index says slot %u, multi %d, for %u slots", b,
                 lb::endpoint_text(bs.family, bs.addr, bs.port).c_str(), found, multi, n);
    }
  }
}

// Returns the answer's "ok".
bool check_answer(const std::string& request, const std::string& answer) {
  FUZZ_CHECK(!answer.empty() && answer.find('\n') == std::string::npos, "answer is not one line: [%s]",
             answer.c_str());
  std::string err;
  const auto j = Json::parse(answer, &err);
  FUZZ_CHECK(j && j->is_object(), "answer is not a JSON object (%s): [%s] for [%s]", err.c_str(), answer.c_str(),
             request.c_str());
  const Json* ok = j->get("ok");
  FUZZ_CHECK(ok && ok->is_bool(), "answer without a boolean \"ok\": [%s]", answer.c_str());
  if (ok->as_bool()) return true;
  const Json* e = j->get("error");
  FUZZ_CHECK(e && e->is_string() && !e->as_string().empty(), "refusal without an error: [%s]", answer.c_str());
  FUZZ_CHECK(e->as_string().find_first_of("\n\r") == std::string::npos, "error is not one line: [%s]",
             answer.c_str());
  return false;
}

void check_prometheus(const std::string& text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    FUZZ_CHECK(nl != std::string::npos, "Prometheus text does not end with a newline");
    const std::string line = text.substr(pos, nl - pos);
    FUZZ_CHECK(line.rfind("# HELP ctlb_", 0) == 0 || line.rfind("# TYPE ctlb_", 0) == 0 || line.rfind("ctlb_", 0) == 0,
               "Prometheus line [%s]", line.c_str());
    pos = nl + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Fixture& f = fixture();
  std::memcpy(f.zone_mem.get(), f.pristine.data(), f.zone_bytes);
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::uint8_t> before(f.zone->state_bytes);
  bool changed = false;
  std::size_t pos = 0;
  for (int n = 0; n < 32 && pos <= input.size(); ++n) {
    const std::size_t nl = input.find('\n', pos);
    const std::string line = input.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? input.size() + 1 : nl + 1;

    const std::uint32_t active = shm::lb_active(*f.zone);
    const std::uint64_t generation = f.live().generation;
    const std::uint64_t published = f.zone->published;
    const std::size_t live_at = f.zone->state_offset[active];
    const auto* zone_bytes = static_cast<const std::uint8_t*>(f.zone_mem.get());
    std::memcpy(before.data(), zone_bytes + live_at, before.size());

    const std::string answer = control::handle_api(line, f.view, f.extra, kNowMs, f.hooks);
    const bool ok = check_answer(line, answer);
    const bool published_one = f.zone->published != published;
    if (published_one) {
      changed = true;
      FUZZ_CHECK(ok && f.zone->published == published + 1 && shm::lb_active(*f.zone) == (active ^ 1) &&
                     f.live().generation == generation + 1,
                 "a change published %llu generations (answer ok: %d)",
                 static_cast<unsigned long long>(f.zone->published - published), ok);
      check_lb_state(f.live());
      // What was changed is what was named: no part of a name or address
      // ignored (a NUL cuts a C string short).
      const auto req = Json::parse(line);
      for (const char* key : {"vip", "backend"}) {
        const Json* v = req ? req->get(key) : nullptr;
        FUZZ_CHECK(v && v->is_string() && v->as_string().find('\0') == std::string::npos,
                   "a change was published for a %s with a NUL in it: [%s]", key, line.c_str());
      }
    } else {
      FUZZ_CHECK(shm::lb_active(*f.zone) == active, "live generation switched without a publish");
      FUZZ_CHECK(std::memcmp(before.data(), zone_bytes + live_at, before.size()) == 0,
                 "a request that published nothing changed the live generation: [%s]", line.c_str());
    }
  }
  if (changed || size % 16 == 0) {
    check_prometheus(control::prometheus_text(f.view, f.extra) + control::prometheus_lb(f.lb_view, f.view));
  }
  return 0;
}
