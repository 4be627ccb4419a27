#include "config/host_check.hpp"

#include <rte_build_config.h>
#include <rte_mbuf_core.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dataplane/flow/flow_table.hpp"
#include "dataplane/lb/lb_state.hpp"

namespace ctlb::config {

namespace {

// set := N | N-M | '(' N[-M] {',' N[-M]} ')'
class LcoreMapParser {
 public:
  explicit LcoreMapParser(std::string_view s) : s_(s) {}

  std::optional<LcoreMap> parse() {
    LcoreMap out;
    do {
      auto lcores = set();
      if (!lcores) return std::nullopt;
      std::vector<std::uint32_t> cpus = *lcores;  // without '@': the same numbers
      if (take('@')) {
        auto on = set();
        if (!on) return std::nullopt;
        cpus = *on;
      }
      for (std::uint32_t l : *lcores)
        if (!out.emplace(l, cpus).second) return std::nullopt;
    } while (take(','));
    if (i_ != s_.size()) return std::nullopt;
    return out;
  }

 private:
  bool take(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  std::optional<std::uint32_t> number() {
    const std::size_t start = i_;
    std::uint32_t v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9' && i_ - start < 4)
      v = v * 10 + static_cast<std::uint32_t>(s_[i_++] - '0');
    if (i_ == start || v > 1023 || (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9')) return std::nullopt;
    return v;
  }

  bool range(std::vector<std::uint32_t>& out) {
    const auto a = number();
    if (!a) return false;
    std::uint32_t b = *a;
    if (take('-')) {
      const auto end = number();
      if (!end) return false;
      b = *end;
    }
    for (std::uint32_t v = std::min(*a, b); v <= std::max(*a, b); ++v) out.push_back(v);
    return true;
  }

  std::optional<std::vector<std::uint32_t>> set() {
    std::vector<std::uint32_t> out;
    if (take('(')) {
      do
        if (!range(out)) return std::nullopt;
      while (take(','));
      if (!take(')')) return std::nullopt;
    } else if (!range(out)) {
      return std::nullopt;
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

bool allowed(const HostFacts& host, std::uint32_t cpu) {
  return std::binary_search(host.cpus.begin(), host.cpus.end(), cpu);
}

std::string cpus_text(const HostFacts& host) {
  return (host.cpus.size() == 1 ? "CPU " : "CPUs ") + cpu_list_text(host.cpus);
}

std::optional<Error> check_lcores(const Config& c, const HostFacts& host) {
  const std::string limit = "below " + std::to_string(host.max_lcores) + ", this DPDK's RTE_MAX_LCORE";
  if (!c.lcore_map.empty()) {
    const auto map = parse_lcore_map(c.lcore_map);
    if (!map) return Error{key_error(c, "lcores.map", "an EAL --lcores mapping like 0@0,1@1,2@1", c.lcore_map)};
    for (const auto& [lcore, cpus] : *map) {
      if (lcore >= host.max_lcores) return Error{key_error(c, "lcores.map", "lcore ids " + limit, c.lcore_map)};
      for (std::uint32_t cpu : cpus)
        if (!allowed(host, cpu))
          return Error{key_error(c, "lcores.map",
                                 "a mapping onto CPUs this process may run on (" + cpus_text(host) + "; CPU " +
                                     std::to_string(cpu) + " is not one)",
                                 c.lcore_map)};
    }
    return std::nullopt;
  }
  // Without a mapping, lcore N runs on CPU N.
  std::vector<std::pair<std::string, std::uint32_t>> lcores{{"lcores.main", c.main_lcore}};
  for (std::size_t i = 0; i < c.worker_lcores.size(); ++i)
    lcores.emplace_back("lcores.workers[" + std::to_string(i) + "]", c.worker_lcores[i]);
  for (const auto& [key, lcore] : lcores) {
    if (lcore >= host.max_lcores) return Error{key_error(c, key, "an lcore id " + limit, std::to_string(lcore))};
    if (!allowed(host, lcore))
      return Error{key_error(c, key, "an lcore this process may run on (" + cpus_text(host) + ")",
                             std::to_string(lcore))};
  }
  return std::nullopt;
}

std::optional<Error> check_ports(const Config& c, const HostFacts& host) {
  if (!host.pci_devices) return std::nullopt;
  for (std::size_t i = 0; i < c.ports.size(); ++i) {
    const std::string& pci = c.ports[i].pci;
    if (!pci.empty() && !host.pci_devices->count(pci))
      return Error{key_error(c, "ports[" + std::to_string(i) + "].pci", "a PCI device present on this host", pci)};
  }
  return std::nullopt;
}

std::uint64_t mib_up(std::uint64_t bytes) { return (bytes + (1u << 20) - 1) >> 20; }

std::optional<Error> check_memory(const Config& c, const HostFacts& host) {
  if (!host.hugepage_free_bytes) return std::nullopt;
  const std::uint64_t free = *host.hugepage_free_bytes;
  const MemoryNeed need = memory_need(c);
  if (need.total() <= free) return std::nullopt;
  // In MiB rounded up, the sum of what it shows: still more than the free
  // MiB rounded down.
  const std::uint64_t tables = mib_up(need.table_v4 + need.table_v6);
  std::string sum = std::to_string(need.workers) + (need.workers == 1 ? " worker x " : " workers x ") +
                    std::to_string(tables) + " MiB of flow tables + " + std::to_string(mib_up(need.mbufs)) +
                    " MiB of mbufs";
  if (need.lb) sum += " + " + std::to_string(mib_up(need.lb)) + " MiB of LB state";
  sum += " = " + std::to_string(need.workers * tables + mib_up(need.mbufs) + mib_up(need.lb)) + " MiB > " +
         std::to_string(free >> 20) + " MiB free";
  // Blame the largest part.
  const std::uint64_t v4 = need.workers * need.table_v4;
  const std::uint64_t v6 = need.workers * need.table_v6;
  const std::uint64_t largest = std::max({v4, v6, need.mbufs, need.lb});
  if (largest == v4)
    return Error{key_error(c, "tracking.capacity_v4",
                           "a capacity whose flow tables fit in the free hugepage memory (" + sum + ")",
                           std::to_string(c.tracking.capacity_v4))};
  if (largest == v6)
    return Error{key_error(c, "tracking.capacity_v6",
                           "a capacity whose flow tables fit in the free hugepage memory (" + sum + ")",
                           std::to_string(c.tracking.capacity_v6))};
  if (largest == need.mbufs)
    return Error{key_error(c, "mempool.mbufs", "a number of mbufs that fits in the free hugepage memory (" + sum + ")",
                           std::to_string(c.mempool.mbufs))};
  std::size_t vip = 0;
  for (std::size_t i = 1; i < c.lb.vips.size(); ++i)
    if (c.lb.vips[i].table_size > c.lb.vips[vip].table_size) vip = i;
  return Error{key_error(c, "lb.vips[" + std::to_string(vip) + "].table_size",
                         "a table size that fits in the free hugepage memory (" + sum + ")",
                         std::to_string(c.lb.vips[vip].table_size))};
}

std::uint64_t align64(std::uint64_t n) { return (n + 63) & ~std::uint64_t{63}; }

}  // namespace

std::optional<LcoreMap> parse_lcore_map(std::string_view text) { return LcoreMapParser(text).parse(); }

std::string cpu_list_text(const std::vector<std::uint32_t>& cpus) {
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(cpus[i]);
    if (j > i) out += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out.empty() ? "none" : out;
}

MemoryNeed memory_need(const Config& c) {
  MemoryNeed n;
  n.workers = static_cast<std::uint32_t>(c.worker_lcores.size());
  n.table_v4 = flow::FlowTable<flow::V4>::bytes_needed(c.tracking.capacity_v4);
  n.table_v6 = flow::FlowTable<flow::V6>::bytes_needed(c.tracking.capacity_v6);
  // A pool's object: a cache line of header, then the mbuf and its data
  // room; its ring holds a pointer per mbuf (a power of two of them). One
  // pool at least (one per NUMA socket with a port).
  std::uint64_t ring = 1;
  while (ring < std::uint64_t{c.mempool.mbufs} + 1) ring <<= 1;
  n.mbufs = std::uint64_t{c.mempool.mbufs} * (64 + align64(sizeof(rte_mbuf) + c.mempool.data_room)) + ring * 8;
  if (c.mode == Mode::Lb) n.lb = 2 * lb::state_bytes(lb::table_entries_of(c));
  return n;
}

std::optional<Error> check_host(const Config& c, const HostFacts& host) {
  if (auto e = check_lcores(c, host)) return e;
  if (auto e = check_ports(c, host)) return e;
  return check_memory(c, host);
}

HostFacts read_host_facts() {
  HostFacts h;
  h.max_lcores = RTE_MAX_LCORE;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (std::uint32_t cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set)) h.cpus.push_back(cpu);
  std::error_code ec;
  std::filesystem::directory_iterator pci("/sys/bus/pci/devices", ec);
  if (!ec) {
    h.pci_devices.emplace();
    for (const auto& d : pci) h.pci_devices->insert(d.path().filename().string());
  }
  std::uint64_t free = 0;
  for (const auto& d : std::filesystem::directory_iterator("/sys/kernel/mm/hugepages", ec)) {
    const std::string name = d.path().filename().string();  // hugepages-2048kB
    unsigned long long kb = 0;
    if (std::sscanf(name.c_str(), "hugepages-%llukB", &kb) != 1) continue;
    std::uint64_t pages = 0, reserved = 0;
    std::ifstream(d.path() / "free_hugepages") >> pages;
    std::ifstream(d.path() / "resv_hugepages") >> reserved;
    if (pages > reserved) free += (pages - reserved) * kb * 1024;
  }
  h.hugepage_free_bytes = free;
  return h;
}

}  // namespace ctlb::config
