#pragma once
// What only the host can refuse in a configuration that loaded: lcores the
// process may not run on, PCI devices that are not there, flow tables and
// mbufs that do not fit in the free hugepage memory. Checked before the EAL
// starts, so that the error is one line naming the file, line and key like
// the loader's, and nothing is left behind. Pure logic over HostFacts:
// read_host_facts() fills them from the running host, tests inject them.
//
// What the EAL alone can tell (a vdev driver this DPDK does not have, a PCI
// device no DPDK driver holds, memory the EAL itself takes) is checked after
// it starts, in the dataplane, with the same kind of line (config::key_error).
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "dataplane/common/result.hpp"

namespace ctlb::config {

// An EAL --lcores mapping ("0@0,1@1,2@1", "(1-3)@(0,1)", "4-5"): each lcore
// and the CPUs it may run on. Without '@' a group's lcores run on the CPUs
// of the same numbers, as the EAL reads it. nullopt when malformed or when
// an lcore is mapped twice.
using LcoreMap = std::map<std::uint32_t, std::vector<std::uint32_t>>;
std::optional<LcoreMap> parse_lcore_map(std::string_view text);

// "0-3,8,10-11"
std::string cpu_list_text(const std::vector<std::uint32_t>& cpus);

struct HostFacts {
  std::vector<std::uint32_t> cpus;  // CPUs this process may run on (its affinity), ascending
  std::uint32_t max_lcores = 0;     // lcore ids are below it (RTE_MAX_LCORE of this DPDK)
  std::optional<std::set<std::string>> pci_devices;  // under /sys/bus/pci/devices; nullopt: unknown
  std::optional<std::uint64_t> hugepage_free_bytes;  // free, not reserved; nullopt: not checked (--no-huge)
};

// The running host's facts (sched_getaffinity, sysfs).
HostFacts read_host_facts();

// The hugepage memory a configuration needs at least: what the dataplane
// reserves at start, without what the EAL takes for itself.
struct MemoryNeed {
  std::uint32_t workers = 0;
  std::uint64_t table_v4 = 0;  // one worker's IPv4 flow table
  std::uint64_t table_v6 = 0;  // one worker's IPv6 flow table
  std::uint64_t mbufs = 0;     // one mbuf pool with its ring
  std::uint64_t lb = 0;        // mode lb: two generations of the LB state

  std::uint64_t total() const { return workers * (table_v4 + table_v6) + mbufs + lb; }
};
MemoryNeed memory_need(const Config& c);

// The first thing the host refuses, as one error line; nullopt when none.
std::optional<Error> check_host(const Config& c, const HostFacts& host);

}  // namespace ctlb::config
