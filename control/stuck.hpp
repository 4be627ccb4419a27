#pragma once
// The operational troubles the seeds describe, recognised from a flow entry:
// a CLOSE_WAIT that never ends (the application never calls close()), a long
// FIN_WAIT_2, and half-open handshakes. Shared by `trace` and the live CLI.
#include <cstdint>
#include <optional>
#include <string>

#include "dataplane/tcp/tcp_types.hpp"

namespace ctlb::control {

enum class StuckKind : std::uint8_t { CloseWait, FinWait2, HalfOpen };

struct Stuck {
  StuckKind kind;
  bool holder_is_initiator;  // the side whose inaction keeps the connection open
  std::string why;
};

inline const char* name(StuckKind k) {
  switch (k) {
    case StuckKind::CloseWait: return "close_wait";
    case StuckKind::FinWait2: return "fin_wait_2";
    case StuckKind::HalfOpen: return "half_open";
  }
  return "?";
}

// A connection idle for at least `threshold_ms` in one of those states.
inline std::optional<Stuck> classify_stuck(const tcp::Status& st, std::uint32_t idle_ms, std::uint32_t threshold_ms) {
  using tcp::EpState;
  if (idle_ms < threshold_ms) return std::nullopt;
  const auto init = static_cast<EpState>(st.initiator);
  const auto resp = static_cast<EpState>(st.responder);
  if (resp == EpState::CloseWait)
    return Stuck{StuckKind::CloseWait, false,
                 "responder in CLOSE_WAIT: it received the initiator's FIN but its application has not closed"};
  if (init == EpState::CloseWait)
    return Stuck{StuckKind::CloseWait, true,
                 "initiator in CLOSE_WAIT: it received the responder's FIN but its application has not closed"};
  if (init == EpState::FinWait2)
    return Stuck{StuckKind::FinWait2, false, "initiator in FIN_WAIT_2 waiting for the responder's FIN"};
  if (resp == EpState::FinWait2)
    return Stuck{StuckKind::FinWait2, true, "responder in FIN_WAIT_2 waiting for the initiator's FIN"};
  const auto ct = static_cast<tcp::CtState>(st.ct_state);
  if (ct == tcp::CtState::SynSent || ct == tcp::CtState::SynSent2)
    return Stuck{StuckKind::HalfOpen, false, "SYN sent, no SYN-ACK from the responder"};
  if (ct == tcp::CtState::SynRecv)
    return Stuck{StuckKind::HalfOpen, true, "SYN-ACK sent, the initiator's final ACK never came"};
  return std::nullopt;
}

}  // namespace ctlb::control
