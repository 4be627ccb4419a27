// The configuration reload of ctlb-control (control/reload.hpp), without
// EAL: configurations loaded from YAML text by the real loader, LB states
// built by lb::init_state in heap blocks laid out as the shared LB zone.
//  - diff: every class of restart-only key gives its exact line (file, line,
//    column of the new value, key, old and new value); pool changes give
//    the exact change list; nothing is a change where only the text moved;
//  - with_live_pools + apply_pool: a reload makes the pools what the file
//    says (run-time changes undone), the Maglev tables equal a fresh start's;
//  - Reloader: all or nothing over the zone and the header: on a load
//    error, a restart-only change, a failed pool change or a grace period
//    that does not come, every byte of the LB zone and header is unchanged.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "control/reload.hpp"

namespace {

namespace config = ctlb::config;
namespace lb = ctlb::lb;
namespace shm = ctlb::shm;
namespace reload = ctlb::control::reload;

constexpr const char* kFile = "reload.yaml";

// Line numbers matter: the expected errors name them.
const std::string kBase = R"(mode: lb
file_prefix: ctlb-reload
lcores:
  main: 0
  workers: [1, 2]
mempool:
  mbufs: 8191
ports:
  - name: clients
    devargs: net_null0
    addresses: [198.18.1.1/24]
    gateway: 198.18.1.254
  - name: backends
    devargs: net_null1
    addresses: [198.18.2.1/24, "2001:db8:2::1/64"]
tracking:
  capacity_v4: 4096
  capacity_v6: 1024
  timeouts:
    established: 3600
lb:
  arp:
    retries: 3
  neighbours:
    - {address: 198.18.1.254, mac: "02:00:00:00:01:fe", port: clients}
  vips:
    - name: web
      address: 198.18.100.1
      port: 80
      table_size: 251
      backends:
        - {address: 198.18.2.11, port: 8080}
        - {address: 198.18.2.12, port: 8080, weight: 2}
        - {address: 198.18.2.13, port: 8080, state: draining}
    - name: web6
      address: "2001:db8:100::1"
      port: 443
      table_size: 257
      backends:
        - {address: "2001:db8:2::11", port: 8443}
control:
  socket: /tmp/ctlb-reload-unit.sock
  metrics: ""
)";

// kBase with `from` (which must occur exactly once) replaced by `to`.
std::string edit(const std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "not in the text: " << from;
  EXPECT_EQ(text.find(from, at + 1), std::string::npos) << "more than once in the text: " << from;
  if (at == std::string::npos) return text;
  return text.substr(0, at) + to + text.substr(at + from.size());
}

config::Config load(const std::string& text) {
  auto r = config::load_string(text, kFile);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : config::Config{};
}

std::vector<std::string> errors_of(const std::string& next) { return reload::diff(load(kBase), load(next)).errors; }

std::vector<std::string> changes_of(const std::string& next) {
  const config::Config running = load(kBase);
  const reload::Diff d = reload::diff(running, load(next));
  EXPECT_EQ(d.errors, std::vector<std::string>{});
  return reload::summary(running, d);
}

std::string restart(const std::string& where_and_what) {
  return std::string(kFile) + ":" + where_and_what + ": needs a restart of ctlb-dataplane";
}

using Lines = std::vector<std::string>;

// ---------------------------------------------------------------- restart-only keys

TEST(ReloadDiff, SameFileChangesNothing) {
  const reload::Diff d = reload::diff(load(kBase), load(kBase));
  EXPECT_EQ(d.errors, Lines{});
  EXPECT_TRUE(d.changes_nothing());
}

TEST(ReloadDiff, CommentsAndLayoutAreNoChange) {
  // Other bytes (a new digest), the same configuration: nothing to apply.
  std::string moved = "# reloaded\n" + edit(kBase, "  capacity_v4: 4096\n  capacity_v6: 1024\n",
                                            "  capacity_v6: 1024   # v6\n  capacity_v4: 4096\n");
  moved = edit(moved,
               "        - {address: 198.18.2.11, port: 8080}\n        - {address: 198.18.2.12, port: 8080, weight: 2}\n",
               "        - {address: 198.18.2.12, weight: 2, port: 8080}\n        - {address: 198.18.2.11, port: 8080}\n");
  const config::Config a = load(kBase), b = load(moved);
  EXPECT_NE(a.digest, b.digest);
  const reload::Diff d = reload::diff(a, b);
  EXPECT_EQ(d.errors, Lines{});
  EXPECT_TRUE(d.changes_nothing());
}

TEST(ReloadDiff, TopLevelKeys) {
  EXPECT_EQ(errors_of(edit(kBase, "file_prefix: ctlb-reload", "file_prefix: other")),
            Lines{restart("2:14: file_prefix: changed from ctlb-reload to other")});
  EXPECT_EQ(errors_of(edit(kBase, "  main: 0", "  main: 3")), Lines{restart("4:9: lcores.main: changed from 0 to 3")});
  EXPECT_EQ(errors_of(edit(kBase, "workers: [1, 2]", "workers: [1, 2, 3]")),
            Lines{restart("5:12: lcores.workers: changed from [1, 2] to [1, 2, 3]")});
  EXPECT_EQ(errors_of(edit(kBase, "workers: [1, 2]\n", "workers: [1, 2]\n  map: \"0@0,1@1,2@1\"\n")),
            Lines{restart("6:8: lcores.map: changed from (none) to 0@0,1@1,2@1")});
  EXPECT_EQ(errors_of(edit(kBase, "mempool:\n", "eal_args: [--no-huge]\nmempool:\n")),
            Lines{restart("6:11: eal_args: changed from [] to [--no-huge]")});
  EXPECT_EQ(errors_of(edit(kBase, "mbufs: 8191", "mbufs: 16383")),
            Lines{restart("7:10: mempool.mbufs: changed from 8191 to 16383")});
}

TEST(ReloadDiff, Ports) {
  EXPECT_EQ(errors_of(edit(kBase, "devargs: net_null1", "devargs: net_null9")),
            Lines{restart("14:14: ports[1].devargs: changed from net_null1 to net_null9")});
  EXPECT_EQ(errors_of(edit(kBase, "addresses: [198.18.1.1/24]", "addresses: [198.18.1.1/23]")),
            Lines{restart("11:16: ports[0].addresses: changed from [198.18.1.1/24] to [198.18.1.1/23]")});
  EXPECT_EQ(errors_of(edit(kBase, "gateway: 198.18.1.254", "gateway: [198.18.1.254]\n    rx_descriptors: 512")),
            Lines{restart("13:21: ports[0].rx_descriptors: changed from 1024 to 512")});
  EXPECT_EQ(errors_of(edit(kBase, "gateway: 198.18.1.254", "gateway: 198.18.1.254\n    mtu: 9000")),
            Lines{restart("13:10: ports[0].mtu: changed from 1500 to 9000")});
  // A port more: the list, at the list.
  EXPECT_EQ(errors_of(edit(kBase, "tracking:\n", "  - {name: mgmt, devargs: net_null2, addresses: [192.0.2.1/24]}\ntracking:\n")),
            Lines{restart("9:3: ports: changed from 2 ports to 3 ports")});
}

TEST(ReloadDiff, Tracking) {
  // The issue's example.
  EXPECT_EQ(errors_of(edit(kBase, "capacity_v4: 4096", "capacity_v4: 8192")),
            Lines{restart("17:16: tracking.capacity_v4: changed from 4096 to 8192")});
  // A key gone from the file: back to its default, at its parent.
  EXPECT_EQ(errors_of(edit(kBase, "  capacity_v6: 1024\n", "")),
            Lines{restart("17:3: tracking.capacity_v6: changed from 1024 to 65536")});
  EXPECT_EQ(errors_of(edit(kBase, "  capacity_v6: 1024\n", "  capacity_v6: 1024\n  invalid_policy: drop\n  liberal: true\n")),
            Lines({restart("19:19: tracking.invalid_policy: changed from forward to drop"),
                   restart("20:12: tracking.liberal: changed from false to true")}));
  EXPECT_EQ(errors_of(edit(kBase, "    established: 3600", "    established: 7200")),
            Lines{restart("20:18: tracking.timeouts.established: changed from 3600 to 7200")});
  // msl_seconds sets time_wait: named there.
  EXPECT_EQ(errors_of(edit(kBase, "  timeouts:\n", "  msl_seconds: 60\n  timeouts:\n")),
            Lines{restart("19:16: tracking.timeouts.time_wait: changed from 240 to 120")});
}

TEST(ReloadDiff, LoadBalancerKeys) {
  EXPECT_EQ(errors_of(edit(kBase, "lb:\n", "lb:\n  unknown_flows: strict\n")),
            Lines{restart("22:18: lb.unknown_flows: changed from loose to strict")});
  EXPECT_EQ(errors_of(edit(kBase, "retries: 3", "retries: 5")),
            Lines{restart("23:14: lb.arp.retries: changed from 3 to 5")});
  EXPECT_EQ(errors_of(edit(kBase, "02:00:00:00:01:fe", "02:00:00:00:01:fd")),
            Lines{restart("25:36: lb.neighbours[0].mac: changed from 02:00:00:00:01:fe to 02:00:00:00:01:fd")});
  EXPECT_EQ(errors_of(edit(kBase, "  vips:\n",
                           "    - {address: 198.18.2.20, mac: \"02:00:00:00:02:14\", port: backends}\n  vips:\n")),
            Lines{restart("25:5: lb.neighbours: changed from 1 static neighbours to 2 static neighbours")});
}

TEST(ReloadDiff, Vips) {
  EXPECT_EQ(errors_of(edit(kBase, "address: 198.18.100.1", "address: 198.18.100.9")),
            Lines{restart("28:16: lb.vips[0].address: changed from 198.18.100.1 to 198.18.100.9")});
  EXPECT_EQ(errors_of(edit(kBase, "      port: 80\n", "      port: 8000\n")),
            Lines{restart("29:13: lb.vips[0].port: changed from 80 to 8000")});
  EXPECT_EQ(errors_of(edit(kBase, "table_size: 251", "table_size: 65537")),
            Lines{restart("30:19: lb.vips[0].table_size: changed from 251 to 65537")});
  // A VIP more, a VIP less (a rename is both).
  EXPECT_EQ(errors_of(edit(kBase, "control:\n",
                           "    - {name: api, address: 198.18.100.2, port: 80, backends: []}\ncontrol:\n")),
            Lines{restart("41:7: lb.vips[2]: VIP api (198.18.100.2:80) added")});
  EXPECT_EQ(errors_of(edit(kBase, "    - name: web6\n", "    - name: www6\n")),
            Lines({restart("35:7: lb.vips[1]: VIP www6 ([2001:db8:100::1]:443) added"),
                   restart("27:5: lb.vips: VIP web6 ([2001:db8:100::1]:443) removed")}));
}

TEST(ReloadDiff, ControlAddresses) {
  EXPECT_EQ(errors_of(edit(kBase, "metrics: \"\"", "metrics: 127.0.0.1:9999")),
            Lines{restart("43:12: control.metrics: changed from (none) to 127.0.0.1:9999")});
  EXPECT_EQ(errors_of(edit(kBase, "ctlb-reload-unit.sock", "other.sock")),
            Lines{restart("42:11: control.socket: changed from /tmp/ctlb-reload-unit.sock to /tmp/other.sock")});
}

TEST(ReloadDiff, ModeChange) {
  const std::string inline_text = R"(mode: inline
file_prefix: ctlb-reload
lcores: {main: 0, workers: [1, 2]}
mempool: {mbufs: 8191}
ports:
  - {name: clients, devargs: net_null0, peer: backends}
  - {name: backends, devargs: net_null1, peer: clients}
tracking: {capacity_v4: 4096, capacity_v6: 1024, timeouts: {established: 3600}}
control: {socket: /tmp/ctlb-reload-unit.sock, metrics: ""}
)";
  EXPECT_EQ(reload::diff(load(kBase), load(inline_text)).errors,
            Lines({restart("1:7: mode: changed from lb to inline"),
                   restart("6:47: ports[0].peer: changed from (none) to backends"),
                   restart("6:5: ports[0].addresses: changed from [198.18.1.1/24] to []"),
                   restart("6:5: ports[0].gateway: changed from 198.18.1.254 to (none)"),
                   restart("7:48: ports[1].peer: changed from (none) to clients"),
                   restart("7:5: ports[1].addresses: changed from [198.18.2.1/24, 2001:db8:2::1/64] to []")}));
}

TEST(ReloadDiff, EveryChangedKeyIsNamed) {
  std::string t = edit(kBase, "capacity_v4: 4096", "capacity_v4: 8192");
  t = edit(t, "mbufs: 8191", "mbufs: 16383");
  t = edit(t, "        - {address: 198.18.2.11, port: 8080}\n", "");  // a pool change as well: refused with the rest
  const reload::Diff d = reload::diff(load(kBase), load(t));
  EXPECT_EQ(d.errors, Lines({restart("7:10: mempool.mbufs: changed from 8191 to 16383"),
                             restart("17:16: tracking.capacity_v4: changed from 4096 to 8192")}));
  EXPECT_EQ(d.pool.size(), 1u);
}

// ---------------------------------------------------------------- run-time changes

TEST(ReloadDiff, PoolChanges) {
  EXPECT_EQ(changes_of(edit(kBase, "        - {address: 198.18.2.12, port: 8080, weight: 2}\n",
                            "        - {address: 198.18.2.12, port: 8080, weight: 2}\n"
                            "        - {address: 198.18.2.14, port: 8080, weight: 3}\n"
                            "        - {address: 198.18.2.15, port: 8081, state: down}\n")),
            Lines({"vip web: backend 198.18.2.14:8080 added (weight 3)",
                   "vip web: backend 198.18.2.15:8081 added (weight 1, down)"}));
  EXPECT_EQ(changes_of(edit(kBase, "        - {address: 198.18.2.11, port: 8080}\n", "")),
            Lines{"vip web: backend 198.18.2.11:8080 removed"});
  EXPECT_EQ(changes_of(edit(kBase, "port: 8080, weight: 2}", "port: 8080, weight: 5}")),
            Lines{"vip web: backend 198.18.2.12:8080 weight 2 -> 5"});
  EXPECT_EQ(changes_of(edit(kBase, "port: 8080, state: draining}", "port: 8080}")),
            Lines{"vip web: backend 198.18.2.13:8080 state draining -> active"});
  EXPECT_EQ(changes_of(edit(kBase, "port: 8080, weight: 2}", "port: 8080, weight: 4, state: down}")),
            Lines{"vip web: backend 198.18.2.12:8080 weight 2 -> 4, state active -> down"});
  EXPECT_EQ(changes_of(edit(kBase, "        - {address: \"2001:db8:2::11\", port: 8443}\n",
                            "        - {address: \"2001:db8:2::12\", port: 8443}\n")),
            Lines({"vip web6: backend [2001:db8:2::12]:8443 added (weight 1)",
                   "vip web6: backend [2001:db8:2::11]:8443 removed"}));
  // An empty pool is a pool.
  EXPECT_EQ(changes_of(edit(kBase, "      backends:\n        - {address: \"2001:db8:2::11\", port: 8443}\n",
                            "      backends: []\n")),
            Lines{"vip web6: backend [2001:db8:2::11]:8443 removed"});
}

TEST(ReloadDiff, NewFlowLimit) {
  const std::string limited = edit(kBase, "  capacity_v6: 1024\n", "  capacity_v6: 1024\n  new_flow_limit: {rate: 1000}\n");
  EXPECT_EQ(changes_of(limited),
            Lines{"tracking.new_flow_limit: changed from no limit to 1000 per second (burst 100)"});
  const reload::Diff d = reload::diff(load(limited), load(kBase));
  EXPECT_EQ(d.errors, Lines{});
  ASSERT_TRUE(d.new_flow_limit.has_value());
  EXPECT_EQ(d.new_flow_limit->rate, 0u);
  EXPECT_EQ(reload::summary(load(limited), d),
            Lines{"tracking.new_flow_limit: changed from 1000 per second (burst 100) to no limit"});
}

// ---------------------------------------------------------------- the LB state

const std::vector<config::Mac> kMacs = {{0x02, 0, 0, 0, 0, 0x01}, {0x02, 0, 0, 0, 0, 0x02}};

// An LB zone in a heap block as the dataplane lays it out in shared memory:
// the zone header, then two generations; generation 0 live.
class Zone {
 public:
  explicit Zone(const config::Config& c) {
    state_bytes_ = lb::state_bytes(lb::table_entries_of(c));
    bytes_ = 128 + 2 * state_bytes_;
    mem_ = static_cast<std::uint8_t*>(std::aligned_alloc(64, bytes_));
    std::memset(mem_, 0, bytes_);
    zone().magic = shm::kShmMagic;
    zone().state_bytes = static_cast<std::uint32_t>(state_bytes_);
    zone().state_offset[0] = 128;
    zone().state_offset[1] = 128 + state_bytes_;
    EXPECT_EQ(lb::init_state(*shm::lb_generation(zone(), 0), c, kMacs), "");
  }
  ~Zone() { std::free(mem_); }
  Zone(const Zone&) = delete;
  Zone& operator=(const Zone&) = delete;

  shm::LbZone& zone() { return *reinterpret_cast<shm::LbZone*>(mem_); }
  lb::State& live() { return *shm::lb_generation(zone(), shm::lb_active(zone())); }
  std::vector<std::uint8_t> snapshot() const { return {mem_, mem_ + bytes_}; }

 private:
  std::size_t state_bytes_ = 0, bytes_ = 0;
  std::uint8_t* mem_ = nullptr;
};

// Per VIP and table entry, the backend's endpoint: what a new connection gets.
std::map<std::string, std::vector<std::string>> picks(const lb::State& s) {
  std::map<std::string, std::vector<std::string>> out;
  for (std::uint32_t v = 0; v < s.vip_count; ++v) {
    auto& t = out[s.vips[v].name];
    for (std::uint16_t e : s.table(v))
      t.push_back(e == lb::kNoBackend ? "-" : lb::endpoint_text(s.slots[e].family, s.slots[e].addr, s.slots[e].port));
  }
  return out;
}

// Per VIP, its backends (not removed) with weight and state.
std::map<std::string, std::string> pools(const lb::State& s) {
  std::map<std::string, std::string> out;
  for (std::uint32_t b = 0; b < s.slot_count; ++b) {
    const lb::BackendSlot& bs = s.slots[b];
    if (bs.state == lb::SlotState::Free || bs.state == lb::SlotState::Removed) continue;
    out[std::string(s.vips[bs.vip].name) + " " + lb::endpoint_text(bs.family, bs.addr, bs.port)] =
        std::to_string(bs.weight) + " " + lb::slot_state_name(bs.state);
  }
  return out;
}

const std::string kNext = edit(edit(edit(kBase, "        - {address: 198.18.2.11, port: 8080}\n", ""),
                                    "port: 8080, weight: 2}", "port: 8080, weight: 2, state: draining}"),
                               "port: 8080, state: draining}",
                               "port: 8080, weight: 3}\n        - {address: 198.18.2.14, port: 8080}");

TEST(ReloadApply, PoolsBecomeWhatTheFileSaysAsAFreshStartBuildsThem) {
  const config::Config running = load(kBase);
  const config::Config next = load(kNext);
  Zone z(running);
  lb::State& s = z.live();
  // Run-time changes since the file was loaded: .12 down, .20 added.
  config::IpAddr a12 = running.lb.vips[0].backends[1].address, a20 = a12;
  a20.bytes[3] = 20;
  ASSERT_EQ(lb::apply(s, lb::Op::Down, 0, a12, 8080, 0), "");
  ASSERT_EQ(lb::apply(s, lb::Op::Add, 0, a20, 8080, 1), "");

  const config::Config now = reload::with_live_pools(running, s);
  ASSERT_EQ(now.lb.vips[0].backends.size(), 4u);
  const reload::Diff d = reload::diff(now, next);
  EXPECT_EQ(d.errors, Lines{});
  EXPECT_EQ(reload::summary(now, d), Lines({"vip web: backend 198.18.2.12:8080 state down -> draining",
                                            "vip web: backend 198.18.2.13:8080 weight 1 -> 3, state draining -> active",
                                            "vip web: backend 198.18.2.14:8080 added (weight 1)",
                                            "vip web: backend 198.18.2.11:8080 removed",
                                            "vip web: backend 198.18.2.20:8080 removed"}));
  EXPECT_EQ(reload::apply_pool(s, d.pool), Lines{});

  Zone fresh(next);
  EXPECT_EQ(pools(s), pools(fresh.live()));
  EXPECT_EQ(picks(s), picks(fresh.live()));
  // Removed backends keep their slots for the connections they still have.
  std::uint32_t removed = 0;
  for (std::uint32_t b = 0; b < s.slot_count; ++b) removed += s.slots[b].state == lb::SlotState::Removed;
  EXPECT_EQ(removed, 2u);
  // Reloading the same file again changes nothing.
  EXPECT_TRUE(reload::diff(reload::with_live_pools(next, s), next).changes_nothing());
}

TEST(ReloadApply, RefusedChangeNamesItsLine) {
  // 198.18.100.1:80 is web's VIP itself (reachable through the gateway, so
  // the loader takes it): lb::apply refuses it as a backend.
  const std::string t = edit(kBase, "state: draining}\n", "state: draining}\n        - {address: 198.18.100.1, port: 80}\n");
  const config::Config running = load(kBase);
  Zone z(running);
  const reload::Diff d = reload::diff(running, load(t));
  ASSERT_EQ(d.errors, Lines{});
  EXPECT_EQ(reload::apply_pool(z.live(), d.pool),
            Lines{"reload.yaml:35:11: vip web: backend 198.18.100.1:80 added (weight 1): the backend is a VIP's "
                  "address and port"});
}

// ---------------------------------------------------------------- Reloader: all or nothing

struct Running {
  config::Config running = load(kBase);
  Zone z{running};
  shm::Header header{};
  int waits = 0;
  bool grace = true;
  reload::Reloader reloader{running, {&header, &z.zone(), [this] { ++waits; return grace; }}};

  Running() { std::snprintf(header.config_digest, sizeof header.config_digest, "%s", running.digest.c_str()); }

  std::vector<std::uint8_t> header_bytes() const {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&header);
    return {p, p + sizeof header};
  }
};

TEST(Reloader, AppliesAndPublishesOnce) {
  Running r;
  const std::string t = edit(kNext, "  capacity_v6: 1024\n", "  capacity_v6: 1024\n  new_flow_limit: {rate: 500, burst: 20}\n");
  const auto next = config::load_string(t, kFile);
  ASSERT_TRUE(next.ok());
  const reload::Outcome o = r.reloader.reload(next);
  EXPECT_TRUE(o.ok);
  EXPECT_EQ(o.errors, Lines{});
  EXPECT_EQ(o.changes, Lines({"vip web: backend 198.18.2.12:8080 state active -> draining",
                              "vip web: backend 198.18.2.13:8080 weight 1 -> 3, state draining -> active",
                              "vip web: backend 198.18.2.14:8080 added (weight 1)",
                              "vip web: backend 198.18.2.11:8080 removed",
                              "tracking.new_flow_limit: changed from no limit to 500 per second (burst 20)"}));
  EXPECT_EQ(o.digest, next.value().digest);
  EXPECT_STREQ(r.header.config_digest, next.value().digest.c_str());
  EXPECT_EQ(r.header.new_flow_rate, 500u);
  EXPECT_EQ(r.header.new_flow_burst, 20u);
  EXPECT_EQ(r.z.zone().published, 1u);  // one generation for all the changes
  EXPECT_EQ(shm::lb_active(r.z.zone()), 1u);
  EXPECT_EQ(r.waits, 2);  // before writing the spare generation, and after the flip
  Zone fresh(next.value());
  EXPECT_EQ(pools(r.z.live()), pools(fresh.live()));
  EXPECT_EQ(picks(r.z.live()), picks(fresh.live()));
  EXPECT_EQ(r.reloader.reloads(), 1u);
  EXPECT_EQ(r.reloader.errors(), 0u);
  EXPECT_EQ(r.reloader.running().digest, next.value().digest);

  // The same file again: nothing to change, nothing published.
  const reload::Outcome again = r.reloader.reload(config::load_string(t, kFile));
  EXPECT_TRUE(again.ok);
  EXPECT_EQ(again.changes, Lines{});
  EXPECT_EQ(r.z.zone().published, 1u);
  // No limit again: the rate goes to 0 (the burst means nothing then).
  const reload::Outcome back = r.reloader.reload(config::load_string(kNext, kFile));
  EXPECT_EQ(back.changes, Lines{"tracking.new_flow_limit: changed from 500 per second (burst 20) to no limit"});
  EXPECT_EQ(r.header.new_flow_rate, 0u);
  EXPECT_EQ(r.reloader.reloads(), 3u);
}

// Every refusal leaves each byte of the zone and header as it was.
void expect_refused(Running& r, ctlb::Result<config::Config> next, const Lines& errors) {
  const auto zone_before = r.z.snapshot();
  const auto header_before = r.header_bytes();
  const std::string digest = r.reloader.running().digest;
  const std::uint64_t failed = r.reloader.errors();
  const reload::Outcome o = r.reloader.reload(std::move(next));
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.errors, errors);
  EXPECT_EQ(o.changes, Lines{});
  EXPECT_EQ(o.digest, digest);
  EXPECT_EQ(r.reloader.running().digest, digest);
  EXPECT_EQ(r.reloader.errors(), failed + 1);
  EXPECT_EQ(r.reloader.reloads(), 0u);
  EXPECT_TRUE(r.header_bytes() == header_before) << "the header changed";
  const auto zone_after = r.z.snapshot();
  const auto& zone = *reinterpret_cast<const shm::LbZone*>(zone_before.data());
  // The live generation and the zone header are untouched; the spare one
  // may have been written (nobody reads it).
  const std::size_t live_at = zone.state_offset[zone.active], bytes = zone.state_bytes;
  EXPECT_EQ(std::memcmp(zone_before.data(), zone_after.data(), sizeof(shm::LbZone)), 0) << "the zone header changed";
  EXPECT_EQ(std::memcmp(zone_before.data() + live_at, zone_after.data() + live_at, bytes), 0)
      << "the live generation changed";
}

TEST(Reloader, RefusesAsAWhole) {
  Running r;
  // Not valid YAML.
  expect_refused(r, config::load_string(edit(kBase, "port: 8080, weight: 2}", "port: 8080, weight: 2"), kFile),
                 Lines{"reload.yaml:35:5: not valid YAML: illegal block entry"});
  // Valid YAML, a value the loader refuses.
  expect_refused(r, config::load_string(edit(kBase, "weight: 2}", "weight: 0}"), kFile),
                 Lines{"reload.yaml:33:54: lb.vips[0].backends[1].weight: expected an integer in 1..65535 (found '0')"});
  // A file that cannot be read.
  expect_refused(r, config::load_file("/nonexistent/ctlb.yaml"),
                 Lines{"/nonexistent/ctlb.yaml: cannot open the configuration file"});
  // A restart-only change with a pool change: neither is applied.
  std::string t = edit(kNext, "capacity_v4: 4096", "capacity_v4: 8192");
  expect_refused(r, config::load_string(t, kFile),
                 Lines{restart("17:16: tracking.capacity_v4: changed from 4096 to 8192")});
  // A pool change lb::apply refuses, after others that it would accept.
  t = edit(kNext, "{address: 198.18.2.14, port: 8080}\n",
           "{address: 198.18.2.14, port: 8080}\n        - {address: 198.18.100.1, port: 80}\n");
  expect_refused(r, config::load_string(t, kFile),
                 Lines{"reload.yaml:35:11: vip web: backend 198.18.100.1:80 added (weight 1): the backend is a VIP's "
                       "address and port"});
  // The workers do not pass a quiescent state in time.
  r.grace = false;
  expect_refused(r, config::load_string(kNext, kFile),
                 Lines{"the workers did not leave the previous generation in time; nothing changed"});
  EXPECT_EQ(r.reloader.errors(), 6u);
  // And then a good reload still goes through.
  r.grace = true;
  EXPECT_TRUE(r.reloader.reload(config::load_string(kNext, kFile)).ok);
  EXPECT_EQ(r.z.zone().published, 1u);
}

TEST(Reloader, InlineModeHasOnlyTheLimit) {
  const std::string text = R"(mode: inline
lcores: {main: 0, workers: [1]}
ports:
  - {name: a, devargs: net_null0, peer: b}
  - {name: b, devargs: net_null1, peer: a}
tracking:
  capacity_v4: 4096
)";
  const config::Config running = load(text);
  shm::Header header{};
  reload::Reloader reloader(running, {&header, nullptr, [] { return true; }});
  const std::string limited = edit(text, "  capacity_v4: 4096\n", "  capacity_v4: 4096\n  new_flow_limit: {rate: 20000}\n");
  const reload::Outcome o = reloader.reload(config::load_string(limited, kFile));
  EXPECT_TRUE(o.ok);
  EXPECT_EQ(o.changes, Lines{"tracking.new_flow_limit: changed from no limit to 20000 per second (burst 2000)"});
  EXPECT_EQ(header.new_flow_rate, 20000u);
  EXPECT_EQ(header.new_flow_burst, 2000u);
  EXPECT_STREQ(header.config_digest, o.digest.c_str());
  const shm::Header before = header;
  const reload::Outcome refused = reloader.reload(config::load_string(edit(limited, "peer: b}", "peer: a}"), kFile));
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.errors, Lines{"reload.yaml:4:41: ports[0].peer: expected another port's name (found 'a')"});
  EXPECT_EQ(std::memcmp(&before, &header, sizeof header), 0);
  const reload::Outcome swapped =
      reloader.reload(config::load_string(edit(edit(limited, "peer: b}", "peer: c}"), "{name: b,", "{name: c,"), kFile));
  EXPECT_EQ(swapped.errors, Lines({restart("4:41: ports[0].peer: changed from b to c"),
                                   restart("5:12: ports[1].name: changed from b to c")}));
  EXPECT_EQ(std::memcmp(&before, &header, sizeof header), 0);
}

}  // namespace
