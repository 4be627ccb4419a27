// ctlb-control: the control process, a DPDK secondary of ctlb-dataplane.
//
//   ctlb-control --config FILE.yaml [--interval-ms N] [--threads N]
//
// Attaches to the dataplane's shared memory (same file prefix), ages expired
// entries (it posts expiry requests; the workers free), exports counters over
// Prometheus HTTP and answers ctlbctl on a Unix socket. It never writes a flow
// entry, so it may be killed and restarted at any time without disturbing
// forwarding. If the dataplane is not up it waits; if the dataplane stops, it
// re-executes itself to attach to the next one. SIGHUP (or `ctlbctl reload`)
// reloads the configuration file: pools and the new-flow limit change at run
// time, anything else is refused and nothing changes (control/reload.hpp).
//
// Exit codes: 0 on SIGINT/SIGTERM, 1 on a start-up error (bad configuration,
// layout or configuration mismatch with the dataplane, socket in use), 2 bad usage.
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/personality.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_memzone.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/loader.hpp"
#include "control/ager.hpp"
#include "control/api.hpp"
#include "control/query.hpp"
#include "control/reload.hpp"
#include "control/server.hpp"

namespace {

using namespace ctlb;
using namespace ctlb::control;

constexpr std::string_view kUsage =
    "usage: ctlb-control --config FILE.yaml [--interval-ms N] [--threads N]\n"
    "\n"
    "The control process of ctlb: attaches to a running ctlb-dataplane (DPDK\n"
    "secondary, same file prefix), ages expired connections (TIME_WAIT above all)\n"
    "every interval, serves the JSON API for ctlbctl on control.socket (mode 0660)\n"
    "and Prometheus metrics on http://control.metrics/metrics.\n"
    "\n"
    "  --config FILE      the dataplane's configuration file (required; must be the same file)\n"
    "  --interval-ms N    ager interval, default 1000\n"
    "  --threads N        ager threads (TBB), default 1\n"
    "  --help             this text\n"
    "\n"
    "SIGHUP, like 'ctlbctl reload', reloads the configuration file: in mode lb each\n"
    "VIP's pool (backends added or removed, weight, state) and in every mode\n"
    "tracking.new_flow_limit are applied at run time; a file with an error, or with\n"
    "any other change (those need a restart of ctlb-dataplane), is refused as a\n"
    "whole and the running configuration is kept. Each outcome is logged.\n";

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void on_signal(int) { g_stop.store(true); }
void on_hangup(int) { g_reload.store(true); }

void log_reload(const reload::Outcome& r) {
  if (r.ok) {
    std::printf("ctlb-control: reloaded %s (digest %s): %zu change%s\n", r.file.c_str(), r.digest.c_str(),
                r.changes.size(), r.changes.size() == 1 ? "" : "s");
    for (const auto& c : r.changes) std::printf("ctlb-control:   %s\n", c.c_str());
  } else {
    std::printf("ctlb-control: reload of %s refused, the running configuration is unchanged:\n", r.file.c_str());
    for (const auto& e : r.errors) std::printf("ctlb-control:   %s\n", e.c_str());
  }
  std::fflush(stdout);
}

int fail(const std::string& m) {
  std::fprintf(stderr, "ctlb-control: %s\n", m.c_str());
  return 1;
}

// The primary holds a write lock on its runtime config file while it lives,
// and writes ctlb.ready once its ports, tables and rings all exist.
bool primary_alive(const std::string& prefix) {
  const std::string dir = "/var/run/dpdk/" + prefix;
  const int fd = ::open((dir + "/config").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  const bool locked = ::fcntl(fd, F_GETLK, &lk) == 0 && lk.l_type != F_UNLCK;
  ::close(fd);
  return locked && ::access((dir + "/ctlb.ready").c_str(), F_OK) == 0;
}

// A secondary maps the primary's memory at the same addresses; without
// address-space randomisation its own libraries are less likely to be in the
// way (DPDK's advice for multi-process). Re-executes once with it off.
void disable_aslr(char** argv) {
  const int current = ::personality(0xffffffff);
  if (current == -1 || (current & ADDR_NO_RANDOMIZE)) return;
  if (::personality(static_cast<unsigned long>(current) | ADDR_NO_RANDOMIZE) == -1) return;
  ::execv("/proc/self/exe", argv);  // on failure: carry on with ASLR
}

bool parse_uint(const char* s, unsigned min, unsigned max, unsigned& out) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(s, &end, 10);
  if (!*s || *end || v < min || v > max) return false;
  out = static_cast<unsigned>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  disable_aslr(argv);
  std::string config_path;
  unsigned interval_ms = 1000;
  unsigned threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage.data(), stdout);
      return 0;
    }
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--interval-ms" && i + 1 < argc) {
      if (!parse_uint(argv[++i], 10, 3'600'000, interval_ms)) {
        std::fprintf(stderr, "ctlb-control: --interval-ms expects 10..3600000\n");
        return 2;
      }
    } else if (a == "--threads" && i + 1 < argc) {
      if (!parse_uint(argv[++i], 1, 256, threads)) {
        std::fprintf(stderr, "ctlb-control: --threads expects 1..256\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "ctlb-control: unknown argument '%s'\n%s", argv[i], kUsage.data());
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "ctlb-control: --config FILE is required\n%s", kUsage.data());
    return 2;
  }
  auto loaded = config::load_file(config_path);
  if (!loaded) return fail(loaded.error().message);
  const config::Config& cfg = loaded.value();

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hangup;
  sigaction(SIGHUP, &hup, nullptr);

  // Wait for the dataplane: a secondary cannot start without its primary.
  if (!primary_alive(cfg.file_prefix)) {
    std::printf("ctlb-control: waiting for ctlb-dataplane (file prefix %s)\n", cfg.file_prefix.c_str());
    std::fflush(stdout);
    while (!primary_alive(cfg.file_prefix)) {
      if (g_stop.load()) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  std::vector<std::string> eal = {"ctlb-control", "--proc-type", "secondary", "--file-prefix", cfg.file_prefix,
                                  "--no-pci",     "--no-telemetry", "-l", std::to_string(cfg.main_lcore),
                                  "--log-level",  "lib.eal:warning"};
  std::vector<char*> eal_argv;
  for (auto& s : eal) eal_argv.push_back(s.data());
  eal_argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(eal.size()), eal_argv.data()) < 0)
    return fail(std::string("cannot attach to ctlb-dataplane: ") + rte_strerror(rte_errno));

  const rte_memzone* hz = rte_memzone_lookup(shm::kHeaderZone);
  if (!hz) return fail("the dataplane's shared header is missing (is it a ctlb-dataplane with this file prefix?)");
  const auto* header = static_cast<const shm::Header*>(hz->addr);
  if (header->magic != shm::kShmMagic || header->layout_version != shm::kShmLayoutVersion)
    return fail("shared layout version " + std::to_string(header->layout_version) + ", this ctlb-control expects " +
                std::to_string(shm::kShmLayoutVersion) + ": run ctlb-control from the same build as ctlb-dataplane");
  if (cfg.digest != header->config_digest)
    return fail("configuration " + config_path + " (digest " + cfg.digest +
                ") is not the one the dataplane runs (digest " + header->config_digest +
                "): start ctlb-control with the same file");

  View view;
  view.header = header;
  view.timeouts = cfg.tracking.tcp.timeouts;
  std::vector<flow::FlowTable<flow::V4>> t4(header->worker_count);
  std::vector<flow::FlowTable<flow::V6>> t6(header->worker_count);
  std::vector<rte_ring*> rings(header->worker_count);
  std::vector<WorkerTables> ager_tables;
  for (std::uint32_t w = 0; w < header->worker_count; ++w) {
    const shm::WorkerInfo& wi = header->workers[w];
    const rte_memzone* z4 = rte_memzone_lookup(wi.table_v4);
    const rte_memzone* z6 = rte_memzone_lookup(wi.table_v6);
    rings[w] = rte_ring_lookup(wi.expiry_ring);
    if (!z4 || !z6 || !rings[w]) return fail("worker " + std::to_string(w) + "'s shared tables or ring are missing");
    t4[w] = flow::FlowTable<flow::V4>::attach(z4->addr);
    t6[w] = flow::FlowTable<flow::V6>::attach(z6->addr);
    if (!t4[w].valid() || !t6[w].valid()) return fail("worker " + std::to_string(w) + "'s flow tables have another layout");
  }
  for (std::uint32_t w = 0; w < header->worker_count; ++w) {
    view.workers.push_back({t4[w], t6[w]});
    ager_tables.push_back({w, &t4[w], &t6[w]});
  }

  // Mode lb: the published LB state, its QSBR variable, the backend counters.
  LbView lb_view;
  rte_rcu_qsbr* qsbr = nullptr;
  if (header->lb_mode) {
    const rte_memzone* lz = rte_memzone_lookup(shm::kLbZone);
    if (!lz) return fail("the dataplane runs in mode lb but its LB state is missing");
    lb_view.zone = static_cast<shm::LbZone*>(lz->addr);
    if (lb_view.zone->magic != shm::kShmMagic || lb_view.zone->layout_version != shm::kShmLayoutVersion)
      return fail("the LB state has another layout: run ctlb-control from the same build as ctlb-dataplane");
    const rte_memzone* nz = rte_memzone_lookup(shm::kNeighbourZone);
    if (!nz) return fail("the dataplane runs in mode lb but its neighbour table is missing");
    lb_view.neighbours = static_cast<lb::NeighbourSlot*>(nz->addr);
    lb_view.neighbour_capacity = shm::kNeighbourCapacity;
    qsbr = reinterpret_cast<rte_rcu_qsbr*>(static_cast<std::uint8_t*>(lz->addr) + lb_view.zone->qsbr_offset);
    for (std::uint32_t w = 0; w < header->worker_count; ++w) {
      const rte_memzone* cz = rte_memzone_lookup(header->workers[w].lb_counters);
      if (!cz) return fail("worker " + std::to_string(w) + "'s backend counters are missing");
      lb_view.counters.push_back(static_cast<const shm::BackendCounters*>(cz->addr));
    }
  }
  // A grace period: every worker has finished the loop it was in (DPDK QSBR).
  const GraceWait grace = [&] {
    const std::uint64_t token = rte_rcu_qsbr_start(qsbr);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (rte_rcu_qsbr_check(qsbr, token, false) != 1) {
      if (std::chrono::steady_clock::now() > deadline || !header->running) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return true;
  };
  // One publisher of the LB state at a time: backend commands (API thread)
  // and reloads (API thread or SIGHUP in the main loop); readers of the live
  // state (queries, metrics) hold it too.
  std::mutex publish_mutex;
  LbHooks lb_hooks;
  lb_hooks.view = &lb_view;
  lb_hooks.state_mutex = &publish_mutex;
  lb_hooks.change = [&](lb::Op op, const std::string& vip, const std::string& backend, std::uint32_t weight) {
    std::lock_guard lock(publish_mutex);
    const std::string err = publish_change(*lb_view.zone, op, vip, backend, weight, grace);
    std::printf("ctlb-control: backend %s %s %s: %s\n",
                op == lb::Op::Add ? "add" : op == lb::Op::Remove ? "remove" : op == lb::Op::Drain ? "drain"
                                  : op == lb::Op::Down ? "down" : "weight",
                vip.c_str(), backend.c_str(), err.empty() ? "published" : err.c_str());
    std::fflush(stdout);
    return err;
  };

  reload::Reloader reloader(cfg, {static_cast<shm::Header*>(hz->addr), lb_view.zone, grace});
  const ReloadHook do_reload = [&] {
    std::lock_guard lock(publish_mutex);
    reload::Outcome r = reloader.reload(config::load_file(config_path));
    log_reload(r);
    return r;
  };

  Server server;
  if (auto r = server.open(cfg.control.socket, cfg.control.metrics); !r) return fail(r.error().message);

  Ager ager(cfg.tracking.tcp.timeouts, threads);
  std::mutex stats_mutex;
  AgerStats ager_stats;
  auto now_ms = [header] {
    return shm::tracker_clock_ms(rte_rdtsc(), header->start_tsc, header->tsc_hz);
  };
  auto extra_stats = [&] {
    std::vector<shm::Stat> s;
    std::lock_guard lock(stats_mutex);
    s.push_back({"ager_scans", ager_stats.scans});
    s.push_back({"ager_entries_scanned", ager_stats.entries_scanned});
    s.push_back({"ager_entries_in_use", ager_stats.entries_in_use});
    s.push_back({"ager_expired", ager_stats.expired});
    s.push_back({"ager_requests_posted", ager_stats.requests_posted});
    s.push_back({"ager_requests_dropped_ring_full", ager_stats.requests_dropped_ring_full});
    s.push_back({"ager_scan_ns_last", ager_stats.last_scan_ns});
    s.push_back({"ager_scan_ns_max", ager_stats.max_scan_ns});
    s.push_back({"ager_scan_ns", ager_stats.total_scan_ns});
    s.push_back({"ager_lag_ms_max", ager_stats.lag_ms_max});
    s.push_back({"config_reloads", reloader.reloads()});
    s.push_back({"config_reload_errors", reloader.errors()});
    for (std::size_t b = 0; b < kLagBucketCount; ++b)
      s.push_back({"ager_lag_bucket_" + std::to_string(b), ager_stats.lag_histogram[b]});
    std::uint64_t done = 0, stale = 0;
    for (std::uint32_t w = 0; w < header->worker_count; ++w) {
      done += t4[w].stats().expire_done + t6[w].stats().expire_done;
      stale += t4[w].stats().expire_stale + t6[w].stats().expire_stale;
    }
    std::uint64_t used4 = 0, cap4 = 0, used6 = 0, cap6 = 0;
    for (std::uint32_t w = 0; w < header->worker_count; ++w) {
      used4 += t4[w].size();
      cap4 += t4[w].capacity();
      used6 += t6[w].size();
      cap6 += t6[w].capacity();
    }
    s.push_back({"table_v4_in_use", used4});
    s.push_back({"table_v4_capacity", cap4});
    s.push_back({"table_v6_in_use", used6});
    s.push_back({"table_v6_capacity", cap6});
    s.push_back({"expire_requests_done", done});
    s.push_back({"expire_requests_refused", stale});
    for (std::size_t i = 0; i < tcp::kEpStateCount; ++i)
      for (std::size_t j = 0; j < tcp::kEpStateCount; ++j)
        if (const auto n = ager_stats.states.endpoints[i][j])
          s.push_back({"flows_endpoints_" + std::string(tcp::kEpStateNames[i]) + "_" +
                           std::string(tcp::kEpStateNames[j]),
                       n});
    return s;
  };

  std::thread api_thread([&] {
    Handlers h;
    h.api = [&](const std::string& line) {
      return handle_api(line, view, extra_stats(), now_ms(), lb_hooks, do_reload);
    };
    h.metrics = [&] {
      std::string text = prometheus_text(view, extra_stats());
      std::lock_guard lock(publish_mutex);  // the LB state is read: see LbHooks::state_mutex
      return text + prometheus_lb(lb_view, view);
    };
    server.run(h, g_stop);
  });

  std::printf("ctlb-control: attached to ctlb-dataplane pid %u (%u workers), socket %s, metrics %s\n",
              header->dataplane_pid, header->worker_count, cfg.control.socket.c_str(), cfg.control.metrics.c_str());
  std::fflush(stdout);

  const PostBurst post = [&](std::uint32_t worker, const shm::ExpiryRequest* reqs, unsigned n) -> unsigned {
    return rte_ring_enqueue_burst_elem(rings[worker], reqs, sizeof(shm::ExpiryRequest), n, nullptr);
  };
  bool dataplane_gone = false;
  auto next = std::chrono::steady_clock::now();
  while (!g_stop.load()) {
    if (!header->running || !primary_alive(cfg.file_prefix)) {
      dataplane_gone = true;
      break;
    }
    ager.scan(ager_tables, static_cast<Millis>(now_ms()), post);
    {
      std::lock_guard lock(stats_mutex);
      ager_stats = ager.stats();
    }
    next += std::chrono::milliseconds(interval_ms);
    while (!g_stop.load() && std::chrono::steady_clock::now() < next) {
      if (g_reload.exchange(false)) do_reload();
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<unsigned>(interval_ms, 50)));
    }
  }
  g_stop.store(true);
  api_thread.join();
  server.close();
  if (dataplane_gone) {
    std::printf("ctlb-control: ctlb-dataplane stopped; waiting to attach to the next one\n");
    std::fflush(stdout);
    rte_eal_cleanup();
    // DPDK's files (and the locks on them) must not survive into the new
    // image: the next primary needs them.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execv("/proc/self/exe", argv);
    return fail(std::string("cannot restart: ") + std::strerror(errno));
  }
  rte_eal_cleanup();
  return 0;
}
