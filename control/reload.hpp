#pragma once
// Reloading the configuration file in ctlb-control (`ctlbctl reload`, the
// API's {"cmd":"reload"}, SIGHUP): the file is loaded and validated again,
// compared with the running configuration, and either applied as a whole or
// refused as a whole.
//
// What changes at run time: each VIP's pool (backends added, removed, their
// weight and state), published as one new generation of the LB state, and
// tracking.new_flow_limit (read by every worker at each loop). Everything
// else needs a restart of ctlb-dataplane, and a reload that changes it is
// refused with one line per changed key:
//   FILE:LINE:COL: KEY: changed from OLD to NEW: needs a restart of ctlb-dataplane
//
// The comparison (diff) and the pool edit (apply_pool) are pure functions
// over configurations and lb::State blocks, so the unit tests run them
// without EAL; Reloader does the rest over the shared header and LB zone.
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "control/lb_admin.hpp"
#include "dataplane/common/result.hpp"
#include "dataplane/lb/lb_state.hpp"
#include "dataplane/shm_layout.hpp"

namespace ctlb::control::reload {

// One change to a VIP's pool.
struct PoolChange {
  enum class Kind : std::uint8_t { Add, Remove, Update };
  Kind kind = Kind::Add;
  std::string vip;          // the VIP's name
  config::Backend backend;  // Add, Update: as the new file has it; Remove: as it was
  config::Backend before;   // Update: as it was
  std::string where;        // "FILE:LINE:COL" of the backend in the new file (Add, Update)
};

struct Diff {
  // Changes a reload cannot make, one line each (the reload is then refused).
  std::vector<std::string> errors;
  std::vector<PoolChange> pool;
  std::optional<config::NewFlowLimit> new_flow_limit;  // set when it changes

  bool changes_nothing() const { return pool.empty() && !new_flow_limit; }
};

// Compares the running configuration with the one loaded again. `running`
// holds the pools the workers use now (see with_live_pools); positions in
// errors are those of `next` (its file and marks).
Diff diff(const config::Config& running, const config::Config& next);

// One line per change, as the reply and the log say them:
//   "vip web: backend 198.18.2.13:8080 added (weight 1)"
//   "tracking.new_flow_limit: changed from no limit to 1000 per second (burst 100)"
std::vector<std::string> summary(const config::Config& running, const Diff& d);

// `c` with each VIP's pool replaced by the pool of the live LB state (ctlbctl
// backend ... may have changed it since the file was loaded): a reload makes
// the pools what the file says, whatever was changed at run time.
config::Config with_live_pools(config::Config c, const lb::State& live);

// Applies pool changes to `s` (a copy of the live generation), each with
// lb::apply. Returns one line per change that failed (empty: all applied).
std::vector<std::string> apply_pool(lb::State& s, const std::vector<PoolChange>& changes);

// What a reload changes in the running system.
struct Target {
  shm::Header* header = nullptr;  // the digest and the new-flow limit
  shm::LbZone* zone = nullptr;    // mode lb only
  GraceWait wait;                 // QSBR grace period (mode lb)
};

struct Outcome {
  bool ok = false;
  std::string file;
  std::vector<std::string> changes;  // ok: one line per change (none: the file changes nothing that runs)
  std::vector<std::string> errors;   // !ok: why, one line each; nothing changed
  std::string digest;                // the running configuration's digest after the call
};

// Writes tracking.new_flow_limit where the workers read it (shm::Header).
void publish_new_flow_limit(shm::Header& h, const config::NewFlowLimit& l);

// ctlb-control's running configuration and its reloads. Not thread-safe:
// the caller serialises reloads with other publishers of the LB state.
class Reloader {
 public:
  Reloader(config::Config running, Target target) : running_(std::move(running)), target_(std::move(target)) {}

  // `next`: the configuration file loaded again, or why it could not be.
  // All or nothing: on any error the running configuration, the LB state
  // and the digest are left exactly as they were.
  Outcome reload(Result<config::Config> next);

  const config::Config& running() const { return running_; }
  std::uint64_t reloads() const { return reloads_.load(std::memory_order_relaxed); }
  std::uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

 private:
  Outcome refuse(Outcome o);

  config::Config running_;
  Target target_;
  std::atomic<std::uint64_t> reloads_{0};
  std::atomic<std::uint64_t> errors_{0};
};

}  // namespace ctlb::control::reload
