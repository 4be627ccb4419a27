#pragma once
// The control socket's protocol: one JSON request per line, one JSON answer
// per line. Requests:
//   {"cmd":"ping"}
//   {"cmd":"stats"}
//   {"cmd":"flows", "state":"CLOSE_WAIT", "initiator":"FIN_WAIT_2", "responder":"CLOSE_WAIT",
//    "older_than_s":60, "port":80, "limit":100}            (every filter optional)
//   {"cmd":"stuck", "threshold_s":60, "limit":100}
// Answers carry "ok": true and the result's fields, or "ok": false and
// "error": a one-line reason.
#include <cstdint>
#include <string>
#include <vector>

#include "control/query.hpp"

namespace ctlb::control {

inline constexpr std::uint32_t kMaxLimit = 100000;

std::string handle_api(const std::string& request_line, const View& view, const std::vector<shm::Stat>& extra,
                       std::uint64_t now_ms);

}  // namespace ctlb::control
