#pragma once
// The control socket's protocol: one JSON request per line, one JSON answer
// per line. Requests:
//   {"cmd":"ping"}
//   {"cmd":"stats"}
//   {"cmd":"flows", "state":"CLOSE_WAIT", "initiator":"FIN_WAIT_2", "responder":"CLOSE_WAIT",
//    "older_than_s":60, "port":80, "limit":100}            (every filter optional)
//   {"cmd":"stuck", "threshold_s":60, "limit":100}
//   {"cmd":"lb"}                                             (mode lb: VIPs, backends, counters)
//   {"cmd":"neighbours"}                                     (mode lb: the ARP/static neighbour table)
//   {"cmd":"backend", "op":"add|remove|drain|down|weight", "vip":"web" or "ADDR:PORT",
//    "backend":"ADDR:PORT", "weight":N}                       (weight: add and weight only)
//   {"cmd":"reload"}    re-reads ctlb-control's configuration file and applies it as a whole or
//                       not at all (control/reload.hpp): {"ok":true, "file", "digest", "changes":[...]}
//                       or {"ok":false, "error", "errors":[...], "file", "digest"} (nothing changed)
// Answers carry "ok": true and the result's fields, or "ok": false and
// "error": a one-line reason.
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "control/lb_admin.hpp"
#include "control/query.hpp"
#include "control/reload.hpp"

namespace ctlb::control {

inline constexpr std::uint32_t kMaxLimit = 100000;

// Mode lb: the LB state to report, and how to publish a change (ctlb-control
// supplies the grace-period wait).
struct LbHooks {
  const LbView* view = nullptr;
  // Held while a query reads the live LB state: publishers (backend changes,
  // reloads, also from the main thread on SIGHUP) hold it too, so two
  // publishes cannot overwrite a generation under a reader (their grace
  // periods wait for the workers, not for this thread). Null: no lock.
  std::mutex* state_mutex = nullptr;
  std::function<std::string(lb::Op, const std::string& vip, const std::string& backend, std::uint32_t weight)> change;
};

// Reloads the configuration (ctlb-control serialises it with LB changes).
using ReloadHook = std::function<reload::Outcome()>;

std::string handle_api(const std::string& request_line, const View& view, const std::vector<shm::Stat>& extra,
                       std::uint64_t now_ms, const LbHooks& lb = {}, const ReloadHook& reload = {});

}  // namespace ctlb::control
