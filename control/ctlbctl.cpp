// ctlbctl: the operator's command-line client.
//
// Exit codes: 0 success, 1 the command failed (unreadable capture, ...),
// 2 bad usage (unknown command or option, bad value).
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "control/trace.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;

constexpr std::string_view kUsage =
    "usage: ctlbctl COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  trace FILE.pcap   track the TCP connections of a capture offline (no DPDK needed)\n"
    "                    and print, per packet, the flow, direction, flags, connection\n"
    "                    state, both endpoint states, the verdict and its reason\n"
    "  help              this text\n"
    "\n"
    "trace options:\n"
    "  --json                one JSON object per packet, then {\"summary\": ...}\n"
    "  --summary             print the summary only\n"
    "  --stuck-after SECS    idle time after which CLOSE_WAIT, FIN_WAIT_2 and half-open\n"
    "                        connections are reported as stuck (default 30)\n"
    "  --capacity N          flow table capacity per address family (default 262144)\n"
    "  --verify-checksum     TCP segments with a bad checksum are invalid (as with\n"
    "                        nf_conntrack_checksum=1); off by default because captures\n"
    "                        taken on a sending host carry offloaded checksums\n"
    "  --liberal             window tracking like nf_conntrack_tcp_be_liberal=1\n"
    "  --no-pickup           do not pick up connections mid-stream (tcp_loose=0)\n"
    "  --msl SECS            maximum segment lifetime; TIME_WAIT lasts 2 x MSL (default 120)\n"
    "\n"
    "exit codes: 0 success, 1 the command failed, 2 bad usage\n";

bool parse_u32(std::string_view text, std::uint32_t min, std::uint32_t max, std::uint32_t& out) {
  if (text.empty() || text.size() > 10) return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v < min || v > max) return false;
  out = static_cast<std::uint32_t>(v);
  return true;
}

int usage_error(const std::string& message) {
  std::cerr << "ctlbctl: " << message << "\n(run 'ctlbctl help' for usage)\n";
  return kExitUsage;
}

int cmd_trace(const std::vector<std::string_view>& args) {
  ctlb::control::TraceOptions opts;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    auto value = [&](std::string_view opt) -> std::string_view {
      if (i + 1 >= args.size()) return {};
      (void)opt;
      return args[++i];
    };
    if (a == "--json") {
      opts.json = true;
    } else if (a == "--summary") {
      opts.summary_only = true;
    } else if (a == "--verify-checksum") {
      opts.verify_checksum = true;
    } else if (a == "--liberal") {
      opts.tcp.liberal = true;
    } else if (a == "--no-pickup") {
      opts.tcp.loose = false;
    } else if (a == "--stuck-after") {
      if (!parse_u32(value(a), 0, 86400 * 30, opts.stuck_after_s))
        return usage_error("--stuck-after expects seconds (0..2592000)");
    } else if (a == "--capacity") {
      if (!parse_u32(value(a), 1, 1u << 26, opts.capacity))
        return usage_error("--capacity expects a flow count (1..67108864)");
    } else if (a == "--msl") {
      std::uint32_t msl = 0;
      if (!parse_u32(value(a), 1, 3600, msl)) return usage_error("--msl expects seconds (1..3600)");
      opts.tcp.timeouts = ctlb::tcp::default_timeouts(msl);
    } else if (a.starts_with("--")) {
      return usage_error("trace: unknown option '" + std::string(a) + "'");
    } else if (opts.path.empty()) {
      opts.path = std::string(a);
    } else {
      return usage_error("trace: more than one capture given");
    }
  }
  if (opts.path.empty()) return usage_error("trace: missing FILE.pcap");
  return ctlb::control::run_trace_command(opts, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const std::string_view cmd = argv[1];
  std::vector<std::string_view> args(argv + 2, argv + argc);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsage;
    return kExitOk;
  }
  if (cmd == "trace") return cmd_trace(args);
  return usage_error("unknown command '" + std::string(cmd) + "'");
}
