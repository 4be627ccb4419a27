#pragma once
// ctlbctl's side of the control socket: one request line, one answer line.
#include <optional>
#include <string>

#include "control/json.hpp"

namespace ctlb::control {

enum class CallStatus { Ok, NotRunning, Failed };

struct CallResult {
  CallStatus status;
  std::string error;  // one line, when not Ok
  Json answer;        // when Ok (may itself say "ok": false)
};

CallResult call_control(const std::string& socket_path, const Json& request, int timeout_ms = 5000);

}  // namespace ctlb::control
