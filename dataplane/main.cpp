// ctlb-dataplane: the DPDK primary. Owns ports, mempools, workers and the
// shared memory that ctlb-control attaches to.
//
//   ctlb-dataplane --config FILE.yaml [-- EAL arguments]
//
// Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 1 when start-up fails
// (bad configuration, no hugepages, a port that cannot start, ...), 2 bad usage.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memzone.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_telemetry.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/host_check.hpp"
#include "config/loader.hpp"
#include "dataplane/neighbour_service.hpp"
#include "dataplane/ports.hpp"
#include "dataplane/stats.hpp"
#include "dataplane/worker.hpp"

namespace {

using namespace ctlb;

constexpr std::string_view kUsage =
    "usage: ctlb-dataplane --config FILE.yaml [-- EAL arguments]\n"
    "\n"
    "Runs the ctlb dataplane: poll-mode workers that track every TCP connection\n"
    "crossing the configured ports (see config/examples/). EAL arguments after\n"
    "'--' are appended to those built from the configuration (lcores, file\n"
    "prefix, vdevs, PCI allow-list).\n"
    "\n"
    "  --config FILE   the YAML configuration (required)\n"
    "  --help          this text\n"
    "\n"
    "Stop it with SIGINT or SIGTERM: rx stops, tx is flushed, the final counters\n"
    "are printed, exit code 0. Start-up errors print one line and exit 1.\n"
    "DPDK telemetry: /ctlb/stats, /ctlb/workers (dpdk-telemetry.py -f PREFIX).\n";

std::atomic<bool> g_stop{false};
shm::Header* g_header = nullptr;

void on_signal(int) { g_stop.store(true); }

int fail(const std::string& message) {
  std::fprintf(stderr, "ctlb-dataplane: %s\n", message.c_str());
  return 1;
}

// Free 2 MB and 1 GB hugepages, from sysfs.
std::uint64_t free_hugepage_bytes() {
  std::uint64_t total = 0;
  for (const auto& [dir, size] : {std::pair{"hugepages-2048kB", 2ull << 20}, std::pair{"hugepages-1048576kB", 1ull << 30}}) {
    std::ifstream f(std::string("/sys/kernel/mm/hugepages/") + dir + "/free_hugepages");
    std::uint64_t n = 0;
    if (f >> n) total += n * size;
  }
  return total;
}

std::vector<std::string> eal_arguments(const config::Config& c, const std::vector<std::string>& extra) {
  std::vector<std::string> a{"ctlb-dataplane"};
  std::string lcores = std::to_string(c.main_lcore);
  for (auto l : c.worker_lcores) lcores += "," + std::to_string(l);
  if (!c.lcore_map.empty()) lcores = c.lcore_map;
  a.insert(a.end(), {c.lcore_map.empty() ? "-l" : "--lcores", lcores, "--main-lcore", std::to_string(c.main_lcore), "--file-prefix", c.file_prefix,
                     "--proc-type", "primary"});
  bool any_pci = false;  // vdevs are probed after start (dataplane::open_port)
  for (const auto& p : c.ports) {
    if (!p.pci.empty()) {
      a.insert(a.end(), {"-a", p.pci});
      any_pci = true;
    }
  }
  if (!any_pci) a.push_back("--no-pci");
  a.insert(a.end(), c.eal_args.begin(), c.eal_args.end());
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// DPDK telemetry: the summed counters, and a line per worker.
int telemetry_stats(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  if (!g_header) return 0;
  for (const auto& s : shm::collect_stats(*g_header)) rte_tel_data_add_dict_u64(d, s.name.c_str(), s.value);
  return 0;
}

int telemetry_workers(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  if (!g_header) return 0;
  for (std::uint32_t w = 0; w < g_header->worker_count; ++w) {
    rte_tel_data* wd = rte_tel_data_alloc();
    if (!wd) return -ENOMEM;
    rte_tel_data_start_dict(wd);
    rte_tel_data_add_dict_u64(wd, "lcore", g_header->workers[w].lcore);
    for (const auto& s : shm::collect_stats(*g_header, w, w + 1))
      if (s.name == "loops" || s.name == "busy_loops" || s.name == "tcp_packets" || s.name == "handover_out" ||
          s.name == "handover_in" || s.name == "flows_created" || s.name == "invalid")
        rte_tel_data_add_dict_u64(wd, s.name.c_str(), s.value);
    rte_tel_data_add_dict_container(d, ("worker" + std::to_string(w)).c_str(), wd, 0);
  }
  return 0;
}

void print_final_counters(const shm::Header& h) {
  std::printf("ctlb: final counters\n");
  for (const auto& s : shm::collect_stats(h))
    if (s.value != 0) std::printf("  %-32s %llu\n", s.name.c_str(), static_cast<unsigned long long>(s.value));
  std::fflush(stdout);
}

// The ports' own counters (mbufs the PMD could not get, frames the device
// missed, errors), copied into the shared header for every exporter. Read on
// the main lcore, never by a worker: a PMD may make a syscall for them.
void sample_device_counters(shm::Header& h, const std::vector<dataplane::PortInfo>& ports) {
  for (std::size_t i = 0; i < ports.size(); ++i) {
    rte_eth_stats s{};
    if (rte_eth_stats_get(ports[i].port_id, &s) != 0) continue;
    shm::DeviceCounters& d = h.devices[i];
    d.rx_nombuf = s.rx_nombuf;
    d.rx_missed = s.imissed;
    d.rx_errors = s.ierrors;
    d.tx_errors = s.oerrors;
  }
}
inline constexpr std::uint64_t kDeviceSampleMs = 50;

struct Runtime {
  std::vector<dataplane::WorkerContext*> workers;
  std::vector<std::uint16_t> port_ids;
};

// After rte_eal_cleanup(): removes what the EAL leaves behind for this file
// prefix, its runtime directory and its hugepage files, so that stopping
// and starting again leaks no hugepages. A secondary still attached keeps
// its mappings (unlinked files live on while mapped).
// Mount points of the hugetlbfs file systems the EAL can take hugepages from.
std::vector<std::string> hugetlbfs_mounts() {
  std::vector<std::string> out;
  std::ifstream mounts("/proc/mounts");
  std::string dev, dir, type, rest;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest))
    if (type == "hugetlbfs") out.push_back(dir);
  return out;
}

void remove_runtime_files(const std::string& prefix, const std::string& runtime_dir) {
  std::error_code ec;
  std::filesystem::remove_all(runtime_dir, ec);
  for (const auto& dir : hugetlbfs_mounts())
    for (const auto& f : std::filesystem::directory_iterator(dir, ec))
      if (f.path().filename().string().rfind(prefix + "map_", 0) == 0) std::filesystem::remove(f.path(), ec);
}

// The runtime directory the EAL creates for a file prefix (as
// eal_create_runtime_dir does), known before rte_eal_init.
std::string eal_runtime_dir(const std::string& prefix) {
  const char* base = "/var/run";
  if (getuid() != 0) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    base = xdg ? xdg : "/tmp";
  }
  return std::string(base) + "/dpdk/" + prefix;
}

// Mode lb: the published LB state (generation 1 from the configuration) with
// its QSBR variable, the neighbour table and its rings, per-worker backend
// counters; the workers get pointers to all of it.
Result<std::unique_ptr<dataplane::NeighbourService>> setup_lb(const config::Config& cfg, shm::Header& header,
                                                               const std::vector<dataplane::PortInfo>& ports,
                                                               std::vector<dataplane::WorkerContext*>& ctxs,
                                                               rte_mempool* pool) {
  const std::uint32_t entries = lb::table_entries_of(cfg);
  const std::size_t sb = lb::state_bytes(entries);
  const std::size_t qsbr_bytes = rte_rcu_qsbr_get_memsize(shm::kQsbrThreads);
  const std::size_t head = (sizeof(shm::LbZone) + 63) & ~std::size_t{63};
  const std::size_t total = head + 2 * sb + qsbr_bytes;
  const rte_memzone* z = rte_memzone_reserve_aligned(shm::kLbZone, total, SOCKET_ID_ANY, 0, 64);
  if (!z) {
    std::size_t vip = 0;  // the largest table: its key
    for (std::size_t i = 1; i < cfg.lb.vips.size(); ++i)
      if (cfg.lb.vips[i].table_size > cfg.lb.vips[vip].table_size) vip = i;
    return Error{config::key_error(cfg, "lb.vips[" + std::to_string(vip) + "].table_size",
                                   "a table size that fits in the free hugepage memory (the LB state, two generations "
                                   "of every VIP's Maglev table, " +
                                       std::to_string((total + (1u << 20) - 1) >> 20) + " MiB, could not be reserved)",
                                   std::to_string(cfg.lb.vips[vip].table_size))};
  }
  std::memset(z->addr, 0, total);
  auto* zone = new (z->addr) shm::LbZone{};
  zone->magic = shm::kShmMagic;
  zone->layout_version = shm::kShmLayoutVersion;
  zone->state_bytes = static_cast<std::uint32_t>(sb);
  zone->state_offset[0] = head;
  zone->state_offset[1] = head + sb;
  zone->qsbr_offset = head + 2 * sb;
  std::vector<config::Mac> macs;
  for (const auto& p : ports) {
    rte_ether_addr a;
    rte_eth_macaddr_get(p.port_id, &a);
    config::Mac m;
    std::memcpy(m.data(), a.addr_bytes, 6);
    macs.push_back(m);
  }
  auto* state0 = reinterpret_cast<lb::State*>(static_cast<std::uint8_t*>(z->addr) + head);
  const std::string err = lb::init_state(*state0, cfg, macs);
  if (!err.empty()) return Error{"LB state: " + err};
  zone->active = 0;
  auto* qsbr = reinterpret_cast<rte_rcu_qsbr*>(static_cast<std::uint8_t*>(z->addr) + zone->qsbr_offset);
  if (rte_rcu_qsbr_init(qsbr, shm::kQsbrThreads) != 0 ||
      rte_rcu_qsbr_thread_register(qsbr, shm::kQsbrMainLcore) != 0)
    return Error{"cannot initialise the QSBR variable"};

  const rte_memzone* nz = rte_memzone_reserve_aligned(
      shm::kNeighbourZone, sizeof(lb::NeighbourSlot) * shm::kNeighbourCapacity, SOCKET_ID_ANY, 0, 64);
  if (!nz) return Error{std::string("cannot reserve the neighbour table: ") + rte_strerror(rte_errno)};
  std::memset(nz->addr, 0, nz->len);
  auto* slots = static_cast<lb::NeighbourSlot*>(nz->addr);
  rte_ring* msgs = rte_ring_create_elem(shm::kNeighbourRing, sizeof(shm::NeighbourMsg), 4096, SOCKET_ID_ANY, RING_F_SC_DEQ);
  rte_ring* slow = rte_ring_create(shm::kSlowTxRing, 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (!msgs || !slow) return Error{std::string("cannot create the neighbour rings: ") + rte_strerror(rte_errno)};

  for (std::size_t w = 0; w < ctxs.size(); ++w) {
    shm::WorkerInfo& wi = header.workers[w];
    std::snprintf(wi.lb_counters, shm::kNameLen, "ctlb_w%zu_lb", w);
    const rte_memzone* cz = rte_memzone_reserve_aligned(wi.lb_counters, sizeof(shm::BackendCounters) * lb::kMaxSlots,
                                                        static_cast<int>(wi.socket), 0, 64);
    if (!cz) return Error{std::string("cannot reserve the backend counters: ") + rte_strerror(rte_errno)};
    std::memset(cz->addr, 0, cz->len);
    dataplane::WorkerContext& c = *ctxs[w];
    c.lb_mode = true;
    c.lb_strict = cfg.lb.unknown_flows == config::UnknownFlows::Strict;
    c.lb_zone = zone;
    c.lb = state0;
    c.qsbr = qsbr;
    c.neighbours = lb::NeighbourTable(slots, shm::kNeighbourCapacity);
    c.neighbour_ring = msgs;
    c.slow_tx = w == 0 ? slow : nullptr;
    c.backend_counters = static_cast<shm::BackendCounters*>(cz->addr);
    if (rte_rcu_qsbr_thread_register(qsbr, static_cast<unsigned>(w)) != 0)
      return Error{"cannot register worker " + std::to_string(w) + " with the QSBR variable"};
  }
  header.lb_mode = 1;
  return std::make_unique<dataplane::NeighbourService>(cfg, zone, qsbr, slots, shm::kNeighbourCapacity, msgs, slow,
                                                      pool);
}

int run(const config::Config& cfg, const std::vector<std::string>& extra_eal) {
  bool no_huge = false;
  for (const auto& a : extra_eal) no_huge = no_huge || a == "--no-huge";
  for (const auto& a : cfg.eal_args) no_huge = no_huge || a == "--no-huge";
  if (!no_huge && free_hugepage_bytes() == 0)
    return fail(
        "no free hugepages: reserve some (echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) "
        "and mount hugetlbfs (mount -t hugetlbfs nodev /dev/hugepages)");
  bool huge_dir = false;
  for (const auto* list : {&extra_eal, &cfg.eal_args})
    for (const auto& a : *list) huge_dir = huge_dir || a == "--huge-dir" || a.rfind("--huge-dir=", 0) == 0;
  if (!no_huge && !huge_dir && hugetlbfs_mounts().empty())
    return fail(
        "no hugetlbfs mounted: the EAL maps its hugepages from one (mount -t hugetlbfs nodev /dev/hugepages)");
  // What only this host can refuse (lcores, PCI devices, hugepage memory),
  // before the EAL starts: one line naming the key, nothing left behind.
  config::HostFacts host = config::read_host_facts();
  if (no_huge) host.hugepage_free_bytes.reset();
  if (auto e = config::check_host(cfg, host)) return fail(e->message);
  // DPDK's log goes to stdout with ours: stderr carries only the error line.
  rte_openlog_stream(stdout);

  std::vector<std::string> args = eal_arguments(cfg, extra_eal);
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  // rte_eal_init writes its fatal alert to stderr itself: during the call
  // stderr goes to stdout with the rest of DPDK's log, and our line stays
  // the only one on stderr. A failed init leaves its runtime directory (and
  // maybe hugepage files) behind: removed, unless the directory was there
  // before (it may be a running primary's of the same prefix).
  const std::string runtime_dir = eal_runtime_dir(cfg.file_prefix);
  std::error_code runtime_dir_ec;
  const bool had_runtime_dir = std::filesystem::exists(runtime_dir, runtime_dir_ec);
  std::fflush(stdout);
  const int saved_stderr = dup(STDERR_FILENO);
  if (saved_stderr >= 0) dup2(STDOUT_FILENO, STDERR_FILENO);
  const int eal_rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
  const int eal_errno = rte_errno;
  std::fflush(stdout);
  std::fflush(stderr);
  if (saved_stderr >= 0) {
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
  }
  if (eal_rc < 0) {
    if (!had_runtime_dir) remove_runtime_files(cfg.file_prefix, runtime_dir);
    return fail(std::string("EAL initialisation failed: ") + rte_strerror(eal_errno) +
                (eal_errno == ENOMEM ? " (no hugepage memory left for the EAL itself: reserve more hugepages, or "
                                       "raise the hugetlbfs mount's size limit)"
                                     : " (the EAL's log on stdout says why)"));
  }
  struct EalGuard {
    std::string prefix;
    std::string runtime_dir;
    ~EalGuard() {
      rte_eal_cleanup();
      remove_runtime_files(prefix, runtime_dir);
    }
  } eal_guard{cfg.file_prefix, rte_eal_get_runtime_dir()};

  const auto workers = static_cast<std::uint16_t>(cfg.worker_lcores.size());
  if (workers > shm::kMaxWorkers) return fail("at most " + std::to_string(shm::kMaxWorkers) + " workers");
  if (cfg.ports.size() > shm::kMaxPorts) return fail("at most " + std::to_string(shm::kMaxPorts) + " ports");
  for (std::size_t w = 0; w < cfg.worker_lcores.size(); ++w)
    if (!rte_lcore_is_enabled(cfg.worker_lcores[w]))
      return fail(config::key_error(cfg, "lcores.workers[" + std::to_string(w) + "]", "an lcore the EAL has enabled",
                                    std::to_string(cfg.worker_lcores[w])));

  // Shared header first: the control process finds everything from it.
  const rte_memzone* hz = rte_memzone_reserve(shm::kHeaderZone, sizeof(shm::Header), SOCKET_ID_ANY, 0);
  if (!hz) return fail(std::string("cannot reserve the shared header: ") + rte_strerror(rte_errno));
  auto* header = new (hz->addr) shm::Header{};
  header->magic = shm::kShmMagic;
  header->layout_version = shm::kShmLayoutVersion;
  header->worker_count = workers;
  header->port_count = static_cast<std::uint32_t>(cfg.ports.size());
  for (std::size_t i = 0; i < cfg.ports.size(); ++i)  // named before telemetry can read the counters
    std::snprintf(header->port_names[i], shm::kNameLen, "%s", cfg.ports[i].name.c_str());
  header->dataplane_pid = static_cast<std::uint32_t>(getpid());
  std::snprintf(header->config_digest, sizeof header->config_digest, "%s", cfg.digest.c_str());
  header->tsc_hz = rte_get_tsc_hz();
  header->start_tsc = rte_rdtsc();
  header->new_flow_rate = cfg.tracking.new_flow_limit.rate;
  header->new_flow_burst = cfg.tracking.new_flow_limit.burst;
  header->running = 1;
  g_header = header;
  // As early as the header exists: a telemetry client never sees the
  // commands missing once the socket is up for long.
  rte_telemetry_register_cmd("/ctlb/stats", telemetry_stats, "ctlb counters summed over workers. No parameters");
  rte_telemetry_register_cmd("/ctlb/workers", telemetry_workers, "ctlb per-worker counters. No parameters");

  // Ports and one mbuf pool per NUMA socket that has a port.
  std::map<int, rte_mempool*> pools;
  std::vector<dataplane::PortInfo> ports;
  bool software_steering = false;
  for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
    auto id = dataplane::open_port(cfg, i);
    if (!id) return fail(id.error().message);
    int socket = rte_eth_dev_socket_id(id.value());
    if (socket < 0) socket = 0;
    if (!pools.count(socket)) {
      const std::string name = "ctlb_mbuf_s" + std::to_string(socket);
      rte_mempool* mp = rte_pktmbuf_pool_create(name.c_str(), cfg.mempool.mbufs, cfg.mempool.cache, 0,
                                                cfg.mempool.data_room, socket);
      if (!mp)
        return fail(config::key_error(cfg, "mempool.mbufs",
                                      "a number of mbufs that fits in the free hugepage memory (the pool on socket " +
                                          std::to_string(socket) + " could not be created: " +
                                          rte_strerror(rte_errno) + ")",
                                      std::to_string(cfg.mempool.mbufs)));
      pools[socket] = mp;
    }
    auto info = dataplane::setup_port(cfg, i, id.value(), workers, pools[socket]);
    if (!info) return fail(info.error().message);
    // Mode lb: NAT changes the tuple, so RSS cannot keep a connection's two
    // directions together; the client's endpoint decides the owner.
    software_steering = software_steering || (workers > 1 && (!info.value().symmetric_rss || cfg.mode == config::Mode::Lb));
    ports.push_back(info.value());
  }
  if (workers > 1)
    std::printf("ctlb: %u workers, ownership by %s\n", workers,
                software_steering ? "software hand-over (rings between workers)" : "symmetric RSS");

  // Workers: tables, rings, contexts, on each worker's NUMA socket.
  std::vector<dataplane::WorkerContext*> ctxs;
  for (std::uint16_t w = 0; w < workers; ++w) {
    const unsigned lcore = cfg.worker_lcores[w];
    const int socket = static_cast<int>(rte_lcore_to_socket_id(lcore));
    shm::WorkerInfo& wi = header->workers[w];
    wi.lcore = lcore;
    wi.socket = static_cast<std::uint32_t>(socket);
    std::snprintf(wi.table_v4, shm::kNameLen, "ctlb_w%u_v4", w);
    std::snprintf(wi.table_v6, shm::kNameLen, "ctlb_w%u_v6", w);
    std::snprintf(wi.expiry_ring, shm::kNameLen, "ctlb_w%u_exp", w);
    const std::size_t b4 = flow::FlowTable<flow::V4>::bytes_needed(cfg.tracking.capacity_v4);
    const std::size_t b6 = flow::FlowTable<flow::V6>::bytes_needed(cfg.tracking.capacity_v6);
    const rte_memzone* z4 = rte_memzone_reserve_aligned(wi.table_v4, b4, socket, 0, 64);
    const rte_memzone* z6 = rte_memzone_reserve_aligned(wi.table_v6, b6, socket, 0, 64);
    if (!z4 || !z6)
      return fail(config::key_error(cfg, !z4 ? "tracking.capacity_v4" : "tracking.capacity_v6",
                                    "a capacity whose flow tables fit in the free hugepage memory (worker " +
                                        std::to_string(w) + "'s " + (!z4 ? "IPv4" : "IPv6") + " table of " +
                                        std::to_string(((!z4 ? b4 : b6) + (1u << 20) - 1) >> 20) +
                                        " MiB could not be reserved)",
                                    std::to_string(!z4 ? cfg.tracking.capacity_v4 : cfg.tracking.capacity_v6)));
    rte_ring* exp = rte_ring_create_elem(wi.expiry_ring, sizeof(shm::ExpiryRequest), 8192, socket, RING_F_SC_DEQ);
    if (!exp) return fail(std::string("cannot create ring ") + wi.expiry_ring + ": " + rte_strerror(rte_errno));

    void* mem = rte_zmalloc_socket("ctlb_worker", sizeof(dataplane::WorkerContext) + sizeof(flow::Tracker), 64, socket);
    if (!mem) return fail("cannot allocate worker " + std::to_string(w) + "'s context");
    auto* ctx = new (mem) dataplane::WorkerContext{};
    ctx->tracker = new (static_cast<std::uint8_t*>(mem) + sizeof(dataplane::WorkerContext))
        flow::Tracker(flow::FlowTable<flow::V4>::create(z4->addr, cfg.tracking.capacity_v4),
                      flow::FlowTable<flow::V6>::create(z6->addr, cfg.tracking.capacity_v6), cfg.tracking.tcp);
    ctx->index = w;
    ctx->worker_count = workers;
    ctx->steer_in_software = software_steering;
    ctx->invalid_policy = cfg.tracking.invalid_policy;
    ctx->expiry = exp;
    ctx->header = header;
    ctx->tx_queue = w;
    ctx->port_count = static_cast<std::uint16_t>(ports.size());
    for (std::size_t i = 0; i < ports.size(); ++i) {
      ctx->port_ids[i] = ports[i].port_id;
      ctx->peer_of[i] = dataplane::kNoPeer;
      for (std::size_t j = 0; j < cfg.ports.size(); ++j)
        if (cfg.ports[j].name == cfg.ports[i].peer) ctx->peer_of[i] = static_cast<std::uint16_t>(j);
      if (w < ports[i].rx_queues)
        ctx->rx[ctx->rx_count++] = {static_cast<std::uint16_t>(i), ports[i].port_id, w};
    }
    ctxs.push_back(ctx);
  }
  std::unique_ptr<dataplane::NeighbourService> neighbour_service;
  if (cfg.mode == config::Mode::Lb) {
    auto svc = setup_lb(cfg, *header, ports, ctxs, pools.begin()->second);
    if (!svc) return fail(svc.error().message);
    neighbour_service = std::move(svc.value());
  }
  if (software_steering) {
    for (std::uint16_t from = 0; from < workers; ++from) {
      for (std::uint16_t to = 0; to < workers; ++to) {
        if (from == to) continue;
        const std::string name = "ctlb_h" + std::to_string(from) + "_" + std::to_string(to);
        rte_ring* r = rte_ring_create(name.c_str(), 4096, static_cast<int>(header->workers[to].socket),
                                      RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!r) return fail("cannot create hand-over ring " + name + ": " + rte_strerror(rte_errno));
        ctxs[from]->handover_out[to] = r;
        ctxs[to]->handover_in[from] = r;
      }
    }
  }

  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  for (std::uint16_t w = 0; w < workers; ++w) {
    const int rc = rte_eal_remote_launch(dataplane::worker_main, ctxs[w], cfg.worker_lcores[w]);
    if (rc != 0) {
      header->running = 0;
      rte_eal_mp_wait_lcore();
      return fail("cannot launch worker on lcore " + std::to_string(cfg.worker_lcores[w]));
    }
  }
  // Mode lb: resolve the backends' and gateways' next hops before saying
  // ready (at most a second), so that the first connections find them.
  if (neighbour_service) {
    const std::uint64_t until = dataplane::clock_ms(*header) + 1000;
    neighbour_service->poll(dataplane::clock_ms(*header));
    while (neighbour_service->resolving() && dataplane::clock_ms(*header) < until && !g_stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      neighbour_service->poll(dataplane::clock_ms(*header));
    }
    std::printf("ctlb: neighbours %s\n", neighbour_service->resolving() ? "still resolving after 1 s (see ctlbctl neighbours)"
                                                                         : "resolved");
  }
  // Tell ctlb-control that everything it attaches to exists now.
  const std::string ready = std::string(rte_eal_get_runtime_dir()) + "/ctlb.ready";
  if (std::FILE* f = std::fopen(ready.c_str(), "w")) {
    std::fprintf(f, "%d\n", static_cast<int>(getpid()));
    std::fclose(f);
  }
  std::printf("ctlb: running, %u worker%s, file prefix %s, config digest %s\n", workers, workers > 1 ? "s" : "",
              cfg.file_prefix.c_str(), cfg.digest.c_str());
  std::fflush(stdout);

  // The main lcore waits for a stop signal; in mode lb it runs the
  // neighbour service (ARP) meanwhile.
  std::uint64_t next_device_sample_ms = 0;
  while (!g_stop.load()) {
    if (const std::uint64_t now = dataplane::clock_ms(*header); now >= next_device_sample_ms) {
      sample_device_counters(*header, ports);
      next_device_sample_ms = now + kDeviceSampleMs;
    }
    if (neighbour_service) {
      neighbour_service->poll(dataplane::clock_ms(*header));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::printf("ctlb: stopping\n");
  std::remove(ready.c_str());
  header->running = 0;  // workers stop rx, flush tx and publish their counters
  rte_eal_mp_wait_lcore();
  for (auto* c : ctxs) dataplane::finish_handovers(*c, dataplane::clock_ms(*header));
  sample_device_counters(*header, ports);  // final: the workers have stopped
  for (const auto& p : ports) {
    rte_eth_dev_stop(p.port_id);
    rte_eth_dev_close(p.port_id);
  }
  print_final_counters(*header);
  if (neighbour_service) {  // the main lcore's own, printed like the workers' (non-zero ones)
    const auto& n = neighbour_service->counters();
    for (const auto& [name, value] : {std::pair{"neighbour_requests_sent", n.requests_sent},
                                      std::pair{"neighbour_requests_failed", n.requests_failed},
                                      std::pair{"neighbour_learned", n.learned}, std::pair{"neighbour_ignored", n.ignored},
                                      std::pair{"neighbour_ipv6_unresolvable", n.ipv6_unresolvable}})
      if (value) std::printf("  %-32s %llu\n", name, static_cast<unsigned long long>(value));
    std::fflush(stdout);
  }
  g_header = nullptr;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> extra_eal;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--") {
      extra_eal.assign(argv + i + 1, argv + argc);
      break;
    }
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage.data(), stdout);
      return 0;
    }
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else {
      std::fprintf(stderr, "ctlb-dataplane: unknown argument '%s'\n%s", argv[i], kUsage.data());
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "ctlb-dataplane: --config FILE is required\n%s", kUsage.data());
    return 2;
  }
  auto cfg = ctlb::config::load_file(config_path);
  if (!cfg) return fail(cfg.error().message);
  return run(cfg.value(), extra_eal);
}
