// Fuzz target: the YAML configuration loader (config/loader.hpp,
// load_string) on arbitrary text.
//
// It must return, never throw (an escaping exception aborts the target) nor
// crash. Invariants:
//  - a refusal is one line, "fuzz.yaml:LINE:COLUMN: " then a non-empty
//    reason, with LINE and COLUMN from 1 and LINE inside the text (+1 for a
//    mark at its very end);
//  - an accepted configuration is one the rest of ctlb can start from, as
//    the loader promises ("validated completely before anything starts"):
//    workers and ports present, lcores unique and not the main one, port
//    names unique, inline peers that exist, power-of-two capacities, no more
//    ports and workers than the shared-memory layout holds, and in mode lb
//    the load balancer's state (lb::init_state: routes of every backend,
//    prefixes per port, VIP and backend slots) builds without an error, and
//    the digest of the text is set.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "dataplane/lb/lb_state.hpp"
#include "dataplane/shm_layout.hpp"
#include "fuzz_check.hpp"

namespace {

namespace config = ctlb::config;

constexpr const char* kName = "fuzz.yaml";

// "fuzz.yaml:LINE:COL: reason": returns false if not of that form.
bool parse_location(const std::string& m, unsigned long& line, unsigned long& col) {
  const std::string head = std::string(kName) + ":";
  if (m.rfind(head, 0) != 0) return false;
  const char* p = m.c_str() + head.size();
  char* end = nullptr;
  if (*p < '0' || *p > '9') return false;
  line = std::strtoul(p, &end, 10);
  if (*end != ':' || end[1] < '0' || end[1] > '9') return false;
  col = std::strtoul(end + 1, &end, 10);
  return end[0] == ':' && end[1] == ' ' && end[2] != '\0';
}

void check_error(const std::string& yaml, const std::string& m) {
  FUZZ_CHECK(m.find_first_of("\n\r") == std::string::npos, "error message is not one line: [%s]", m.c_str());
  unsigned long line = 0, col = 0;
  FUZZ_CHECK(parse_location(m, line, col), "error message not of the form %s:LINE:COLUMN: ...: [%s]", kName,
             m.c_str());
  std::size_t lines = 1;
  for (char c : yaml) lines += c == '\n';
  FUZZ_CHECK(line >= 1 && col >= 1 && line <= lines + 1, "error location %lu:%lu outside a %zu-line text: [%s]", line,
             col, lines, m.c_str());
}

void check_config(const config::Config& c) {
  FUZZ_CHECK(!c.worker_lcores.empty() && !c.ports.empty(), "accepted without workers or ports");
  FUZZ_CHECK(c.worker_lcores.size() <= ctlb::shm::kMaxWorkers, "accepted %zu workers (the layout holds %u)",
             c.worker_lcores.size(), ctlb::shm::kMaxWorkers);
  FUZZ_CHECK(c.ports.size() <= ctlb::shm::kMaxPorts, "accepted %zu ports (the layout holds %u)", c.ports.size(),
             ctlb::shm::kMaxPorts);
  std::set<std::uint32_t> lcores(c.worker_lcores.begin(), c.worker_lcores.end());
  FUZZ_CHECK(lcores.size() == c.worker_lcores.size() && !lcores.count(c.main_lcore), "worker lcores repeat");
  std::set<std::string> names;
  for (const auto& p : c.ports) {
    FUZZ_CHECK(!p.name.empty() && names.insert(p.name).second, "port name '%s' empty or repeated", p.name.c_str());
    FUZZ_CHECK(p.pci.empty() != p.devargs.empty(), "port %s: both or neither of pci and devargs", p.name.c_str());
  }
  if (c.mode == config::Mode::Inline)
    for (const auto& p : c.ports)
      FUZZ_CHECK(names.count(p.peer) && p.peer != p.name, "port %s: peer '%s'", p.name.c_str(), p.peer.c_str());
  for (std::uint32_t cap : {c.tracking.capacity_v4, c.tracking.capacity_v6})
    FUZZ_CHECK(cap && !(cap & (cap - 1)), "capacity %u not a power of two", cap);
  if (c.mode != config::Mode::Lb) return;
  FUZZ_CHECK(!c.lb.vips.empty(), "mode lb accepted without VIPs");
  for (const auto& v : c.lb.vips) FUZZ_CHECK(v.table_size >= 7, "VIP %s: table size %u", v.name.c_str(), v.table_size);
  // The state the dataplane builds at start from this configuration.
  const std::size_t bytes = ctlb::lb::state_bytes(ctlb::lb::table_entries_of(c));
  void* mem = std::aligned_alloc(64, bytes);
  std::memset(mem, 0, bytes);
  std::vector<config::Mac> macs(c.ports.size(), config::Mac{0x02, 0, 0, 0, 0, 1});
  const std::string err = ctlb::lb::init_state(*static_cast<ctlb::lb::State*>(mem), c, macs);
  std::free(mem);
  FUZZ_CHECK(err.empty(), "an accepted configuration fails lb::init_state: %s", err.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  const auto r = config::load_string(yaml, kName);
  if (!r.ok()) {
    check_error(yaml, r.error().message);
    return 0;
  }
  FUZZ_CHECK(r.value().digest.size() == 16, "digest '%s'", r.value().digest.c_str());
  check_config(r.value());
  return 0;
}
