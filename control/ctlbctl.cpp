// ctlbctl: the operator's command-line client.
//
// Exit codes: 0 success, 1 the command failed (unreadable capture, an error
// from ctlb-control, ...), 2 bad usage (unknown command or option, bad value),
// 3 ctlb-control is not running (its socket is missing or refuses).
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iomanip>
#include <map>
#include <sstream>
#include <thread>

#include "config/loader.hpp"
#include "control/client.hpp"
#include "control/format.hpp"
#include "control/trace.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotRunning = 3;
constexpr const char* kDefaultSocket = "/run/ctlb/control.sock";

constexpr std::string_view kUsage =
    "usage: ctlbctl COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  trace FILE.pcap   track the TCP connections of a capture offline (no DPDK needed)\n"
    "                    and print, per packet, the flow, direction, flags, connection\n"
    "                    state, both endpoint states, the verdict and its reason\n"
    "  stats             counters of the running dataplane (ports, tracking, states, ager)\n"
    "  flows             tracked connections, with both endpoint states, age and idle time\n"
    "                    (in mode lb also the backend of each)\n"
    "  stuck             CLOSE_WAIT, FIN_WAIT_2 and half-open connections idle too long,\n"
    "                    with the side that holds them\n"
    "  watch             a refreshing view of rates and states, like top\n"
    "  lb                mode lb: VIPs and their backends (state, weight, Maglev share,\n"
    "                    connections now and since start, bytes each way, resets and\n"
    "                    of those the late ones: after both sides had closed, or after\n"
    "                    an earlier RST; the time within which 99 % of SYNs got their\n"
    "                    SYN-ACK)\n"
    "  neighbours        mode lb: the ARP/static neighbour table (address, port, state, MAC)\n"
    "  backend OP VIP BACKEND [WEIGHT]\n"
    "                    change a VIP's pool at run time; OP is add (WEIGHT, default 1),\n"
    "                    remove, drain (no new connections), down, or weight (WEIGHT);\n"
    "                    VIP is its name or ADDRESS:PORT, BACKEND is ADDRESS:PORT.\n"
    "                    Returns once every worker uses the new pool; connections\n"
    "                    already open keep their backend to the end.\n"
    "  reload            ctlb-control reads its configuration file again and applies it\n"
    "                    as a whole or not at all: in mode lb each VIP's pool (backends\n"
    "                    added or removed, weight, state; run-time backend changes the\n"
    "                    file does not have are undone), in every mode\n"
    "                    tracking.new_flow_limit. Any other change needs a restart of\n"
    "                    ctlb-dataplane: the reload is then refused, one line per changed\n"
    "                    key (FILE:LINE:COL: KEY: changed from OLD to NEW), as it is for a\n"
    "                    file with an error, and nothing changes (exit code 1). Prints\n"
    "                    what changed. SIGHUP to ctlb-control does the same\n"
    "                    (docs/reload.md).\n"
    "  help              this text\n"
    "\n"
    "live commands (stats, flows, stuck, watch, lb, neighbours, backend, reload) talk to\n"
    "ctlb-control:\n"
    "  --socket PATH         its socket (default /run/ctlb/control.sock)\n"
    "  --config FILE         or take control.socket from the configuration file\n"
    "  --json                print ctlb-control's JSON answer\n"
    "flows options:\n"
    "  --state S             connection state (ESTABLISHED, CLOSE_WAIT, TIME_WAIT, ...)\n"
    "  --initiator-state S   initiator's endpoint state (FIN_WAIT_2, ...)\n"
    "  --responder-state S   responder's endpoint state (CLOSE_WAIT, ...)\n"
    "  --older-than SECS     opened at least SECS ago\n"
    "  --port N              either endpoint's port\n"
    "  --vip VIP             mode lb: connections to this VIP (name or ADDRESS:PORT)\n"
    "  --backend BACKEND     mode lb: connections on this backend (ADDRESS:PORT or\n"
    "                        [IPv6-ADDRESS]:PORT), in every VIP it serves unless --vip\n"
    "  --limit N             at most N rows (default 100)\n"
    "stuck options:\n"
    "  --threshold SECS      idle time that counts as stuck (default 60)\n"
    "  --vip, --backend, --limit  as for flows\n"
    "watch options:\n"
    "  --interval SECS       refresh period (default 1)\n"
    "  --count N             stop after N refreshes (default: until Ctrl-C)\n"
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
    "exit codes: 0 success, 1 the command failed, 2 bad usage, 3 ctlb-control not running\n";

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


struct LiveOptions {
  std::string socket = kDefaultSocket;
  bool json = false;
};

// Options every live command takes; returns false (after printing) on error.
// Consumed options are removed from args.
bool parse_live_options(std::vector<std::string_view>& args, LiveOptions& o, int& rc) {
  std::vector<std::string_view> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") {
      o.json = true;
    } else if (args[i] == "--socket" && i + 1 < args.size()) {
      o.socket = std::string(args[++i]);
    } else if (args[i] == "--config" && i + 1 < args.size()) {
      auto cfg = ctlb::config::load_file(std::string(args[++i]));
      if (!cfg) {
        std::cerr << "ctlbctl: " << cfg.error().message << '\n';
        rc = kExitUsage;
        return false;
      }
      o.socket = cfg.value().control.socket;
    } else {
      rest.push_back(args[i]);
    }
  }
  args = rest;
  return true;
}

int call(const LiveOptions& o, const ctlb::control::Json& request, ctlb::control::Json& answer) {
  auto r = ctlb::control::call_control(o.socket, request);
  if (r.status == ctlb::control::CallStatus::NotRunning) {
    std::cerr << "ctlbctl: " << r.error << '\n';
    return kExitNotRunning;
  }
  if (r.status != ctlb::control::CallStatus::Ok) {
    std::cerr << "ctlbctl: " << r.error << '\n';
    return kExitFailed;
  }
  const auto* ok = r.answer.get("ok");
  if (!ok || !ok->is_bool() || !ok->as_bool()) {
    const auto* e = r.answer.get("error");
    std::cerr << "ctlbctl: ctlb-control: " << (e && e->is_string() ? e->as_string() : "failed") << '\n';
    return kExitFailed;
  }
  answer = std::move(r.answer);
  return kExitOk;
}

std::uint64_t num(const ctlb::control::Json& stats, const std::string& key) {
  const auto* v = stats.get(key);
  return v && v->is_number() ? static_cast<std::uint64_t>(v->as_number()) : 0;
}

std::string str(const ctlb::control::Json& row, const std::string& key) {
  const auto* v = row.get(key);
  if (!v) return "";
  if (v->is_string()) return v->as_string();
  if (v->is_number()) {
    std::ostringstream ss;
    ss << v->as_number();
    return ss.str();
  }
  return "";
}

// The time within which 99 % of a backend's SYNs got their SYN-ACK through
// ctlb (format_handshake_p99): a backend whose listen queue overflows drops
// SYNs and shows ">=3 s" or "<3 s" (answered after the client's
// retransmission) here first.
std::string synack_p99(const ctlb::control::Json& backend) {
  const auto* h = backend.get("syn_to_synack_buckets");
  if (!h || !h->is_array()) return "-";
  std::vector<std::uint64_t> counts;
  for (const auto& n : h->as_array()) counts.push_back(n.is_number() ? static_cast<std::uint64_t>(n.as_number()) : 0);
  return ctlb::control::format_handshake_p99(counts);
}

void print_stats(const ctlb::control::Json& a) {
  const auto& stats = *a.get("stats");
  std::cout << "ports:\n";
  for (const auto& p : a.get("ports")->as_array()) {
    const std::string n = "port_" + p.as_string() + "_";
    std::cout << "  " << std::left << std::setw(12) << p.as_string() << std::right << " rx " << std::setw(12)
              << num(stats, n + "rx_packets") << " pkts " << std::setw(14) << num(stats, n + "rx_bytes")
              << " B   tx " << std::setw(12) << num(stats, n + "tx_packets") << " pkts " << std::setw(14)
              << num(stats, n + "tx_bytes") << " B   tx dropped " << num(stats, n + "tx_dropped") << '\n';
    // What the device lost before a worker saw it: shown when not zero.
    const std::uint64_t nombuf = num(stats, n + "rx_nombuf"), missed = num(stats, n + "rx_missed"),
                        rx_errors = num(stats, n + "rx_errors"), tx_errors = num(stats, n + "tx_errors");
    if (nombuf || missed || rx_errors || tx_errors)
      std::cout << "  " << std::setw(12) << "" << " device: rx no mbuf " << nombuf << ", rx missed " << missed
                << ", rx errors " << rx_errors << ", tx errors " << tx_errors << '\n';
  }
  std::cout << "tracking:\n";
  for (const char* k : {"tcp_packets", "accepted", "invalid", "fast_path", "flows_created", "flows_reopened",
                        "flows_destroyed", "flows_expired", "flows_reclaimed", "flows_evicted",
                        "untracked_table_full", "forwarded_untracked", "forwarded_invalid", "dropped_invalid",
                        "handover_out", "handover_dropped"})
    std::cout << "  " << std::left << std::setw(24) << k << std::right << std::setw(14) << num(stats, k) << '\n';
  std::cout << "connections by state:\n ";
  bool any = false;
  for (const auto& [k, v] : stats.as_object()) {
    if (k.rfind("flows_", 0) != 0 || k.rfind("flows_endpoints_", 0) == 0) continue;
    const std::string st = k.substr(6);
    if (st.empty() || !std::isupper(static_cast<unsigned char>(st[0])) || !v.as_number()) continue;
    std::cout << ' ' << st << '=' << static_cast<std::uint64_t>(v.as_number());
    any = true;
  }
  std::cout << (any ? "\n" : " none\n");
  for (const auto& [prefix, title] : {std::pair{"reason_", "verdict reasons:"}, std::pair{"parse_", "frames by parse result:"}}) {
    bool header = false;
    for (const auto& [k, v] : stats.as_object()) {
      if (k.rfind(prefix, 0) != 0 || !v.as_number()) continue;
      if (!header) std::cout << title << '\n';
      header = true;
      std::cout << "  " << std::left << std::setw(32) << k.substr(std::string(prefix).size()) << std::right
                << std::setw(14) << static_cast<std::uint64_t>(v.as_number()) << '\n';
    }
  }
  std::cout << "ager: " << num(stats, "ager_scans") << " scans, " << num(stats, "ager_requests_posted")
            << " expiry requests (" << num(stats, "expire_requests_done") << " freed, "
            << num(stats, "expire_requests_refused") << " refused: entry changed), last scan "
            << num(stats, "ager_scan_ns_last") / 1000 << " us, lag max " << num(stats, "ager_lag_ms_max") << " ms\n";
}

void print_flows(const ctlb::control::Json& a, bool stuck) {
  const auto& rows = stuck ? a.get("stuck")->as_array() : a.get("flows")->as_array();
  const bool lb = !rows.empty() && rows.front().get("backend");  // mode lb: rows name their backend
  auto backend_of = [](const ctlb::control::Json& r) {
    const auto* b = r.get("backend");
    return b && b->is_string() ? b->as_string() : std::string("-");
  };
  std::size_t backend_width = 7;  // "BACKEND"; an IPv6 endpoint is up to 47 characters
  for (const auto& r : rows) backend_width = std::max(backend_width, backend_of(r).size());
  const int pad = stuck ? static_cast<int>(backend_width) : 0;  // the last column: no trailing spaces
  std::cout << std::left << std::setw(48) << "FLOW (initiator > responder)" << std::setw(13) << "STATE" << std::setw(14)
            << "INITIATOR" << std::setw(14) << "RESPONDER" << std::right << std::setw(8) << "AGE" << std::setw(9)
            << "IDLE";
  if (lb) std::cout << "  " << std::left << std::setw(pad) << "BACKEND" << std::right;
  if (stuck) std::cout << "  HOLDER     WHY";
  std::cout << '\n';
  for (const auto& r : rows) {
    std::cout << std::left << std::setw(48) << str(r, "flow") << std::setw(13) << str(r, "state") << std::setw(14)
              << str(r, "initiator") << std::setw(14) << str(r, "responder") << std::right << std::setw(7)
              << str(r, "age_s") << "s" << std::setw(8) << std::fixed << std::setprecision(1)
              << r.get("idle_s")->as_number() << "s";
    std::cout.unsetf(std::ios::fixed);
    if (lb) std::cout << "  " << std::left << std::setw(pad) << backend_of(r) << std::right;
    if (stuck) std::cout << "  " << std::left << std::setw(10) << str(r, "holder") << ' ' << str(r, "why");
    std::cout << std::right << '\n';
  }
  const auto matched = static_cast<std::uint64_t>(a.get("matched")->as_number());
  std::cout << matched << (stuck ? " stuck connection" : " connection") << (matched == 1 ? "" : "s");
  if (matched > rows.size()) std::cout << " (" << rows.size() << " shown)";
  std::cout << '\n';
}

void print_lb(const ctlb::control::Json& a) {
  for (const auto& v : a.get("vips")->as_array()) {
    std::cout << "VIP " << str(v, "name") << "  " << str(v, "address") << ':' << str(v, "port") << "  (Maglev "
              << str(v, "table_size") << " slots)  " << num(v, "new_connections") << " connections, "
              << num(v, "active_connections") << " active, " << num(v, "bytes_in") << " B in, "
              << num(v, "bytes_out") << " B out\n";
    std::cout << "  " << std::left << std::setw(26) << "BACKEND" << std::setw(10) << "STATE" << std::right
              << std::setw(7) << "WEIGHT" << std::setw(8) << "SHARE" << std::setw(10) << "NEW" << std::setw(9)
              << "ACTIVE" << std::setw(9) << "ENTRIES" << std::setw(14) << "BYTES IN" << std::setw(14)
              << "BYTES OUT" << std::setw(8) << "RESETS" << std::setw(6) << "LATE" << std::setw(13) << "SYN-ACK p99"
              << '\n';
    for (const auto& b : v.get("backends")->as_array()) {
      const std::string ep = str(b, "address").find(':') != std::string::npos
                                 ? "[" + str(b, "address") + "]:" + str(b, "port")
                                 : str(b, "address") + ":" + str(b, "port");
      std::ostringstream share;
      share << std::fixed << std::setprecision(1) << b.get("table_share")->as_number() * 100 << '%';
      std::cout << "  " << std::left << std::setw(26) << ep << std::setw(10) << str(b, "state") << std::right
                << std::setw(7) << str(b, "weight") << std::setw(8) << share.str() << std::setw(10)
                << num(b, "new_connections") << std::setw(9) << num(b, "active_connections") << std::setw(9)
                << num(b, "connections") << std::setw(14) << num(b, "bytes_in") << std::setw(14)
                << num(b, "bytes_out") << std::setw(8) << num(b, "resets") << std::setw(6) << num(b, "late_resets")
                << std::setw(13) << synack_p99(b) << '\n';
    }
  }
}

void print_neighbours(const ctlb::control::Json& a) {
  std::cout << std::left << std::setw(40) << "ADDRESS" << std::setw(12) << "PORT" << std::setw(12) << "STATE"
            << std::setw(19) << "MAC" << std::right << std::setw(7) << "PROBES" << std::setw(10) << "UPDATED" << '\n';
  const auto& rows = a.get("neighbours")->as_array();
  for (const auto& r : rows) {
    std::ostringstream ago;
    ago << std::fixed << std::setprecision(1) << r.get("updated_s_ago")->as_number() << "s";
    std::cout << std::left << std::setw(40) << str(r, "address") << std::setw(12) << str(r, "port") << std::setw(12)
              << str(r, "state") << std::setw(19) << (str(r, "mac").empty() ? "-" : str(r, "mac")) << std::right
              << std::setw(7) << num(r, "probes") << std::setw(10) << ago.str() << '\n';
  }
  std::cout << rows.size() << (rows.size() == 1 ? " neighbour\n" : " neighbours\n");
}

int cmd_lb(std::string_view cmd, std::vector<std::string_view> args) {
  using ctlb::control::Json;
  LiveOptions o;
  int rc = kExitOk;
  if (!parse_live_options(args, o, rc)) return rc;
  for (auto a : args)
    if (a.size() > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9'))
      return usage_error(std::string(cmd) + ": unknown option '" + std::string(a) + "'");
  Json::Object req;
  req["cmd"] = std::string(cmd);
  if (cmd == "lb" || cmd == "neighbours") {
    if (!args.empty()) return usage_error(std::string(cmd) + ": unexpected argument '" + std::string(args[0]) + "'");
  } else {
    if (args.size() < 3 || args.size() > 4)
      return usage_error("backend: expected OP VIP BACKEND [WEIGHT] (OP: add, remove, drain, down, weight)");
    const std::string_view op = args[0];
    if (op != "add" && op != "remove" && op != "drain" && op != "down" && op != "weight")
      return usage_error("backend: unknown OP '" + std::string(op) + "' (expected add, remove, drain, down or weight)");
    req["op"] = std::string(op);
    req["vip"] = std::string(args[1]);
    req["backend"] = std::string(args[2]);
    if (args.size() == 4) {
      if (op != "add" && op != "weight") return usage_error("backend: WEIGHT goes with add or weight only");
      std::uint32_t w = 0;
      if (!parse_u32(args[3], op == "add" ? 1 : 0, 65535, w))
        return usage_error(std::string("backend: WEIGHT expects ") + (op == "add" ? "1" : "0") + "..65535");
      req["weight"] = w;
    } else if (op == "weight") {
      return usage_error("backend weight: missing WEIGHT");
    }
  }
  Json answer;
  rc = call(o, Json(std::move(req)), answer);
  if (rc != kExitOk) return rc;
  if (o.json) std::cout << answer.dump() << '\n';
  else if (cmd == "neighbours") print_neighbours(answer);
  else print_lb(answer);
  return kExitOk;
}

int cmd_live(std::string_view cmd, std::vector<std::string_view> args) {
  using ctlb::control::Json;
  LiveOptions o;
  int rc = kExitOk;
  if (!parse_live_options(args, o, rc)) return rc;
  Json::Object req;
  req["cmd"] = std::string(cmd);
  std::uint32_t interval = 1, count = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    const bool has_value = i + 1 < args.size();
    std::uint32_t n = 0;
    if (cmd == "flows" && (a == "--state" || a == "--initiator-state" || a == "--responder-state") && has_value) {
      req[a == "--state" ? "state" : (a == "--initiator-state" ? "initiator" : "responder")] = std::string(args[++i]);
    } else if (cmd == "flows" && a == "--older-than" && has_value) {
      if (!parse_u32(args[++i], 0, 100 * 86400, n)) return usage_error("--older-than expects seconds");
      req["older_than_s"] = n;
    } else if (cmd == "flows" && a == "--port" && has_value) {
      if (!parse_u32(args[++i], 0, 65535, n)) return usage_error("--port expects 0..65535");
      req["port"] = n;
    } else if ((cmd == "flows" || cmd == "stuck") && (a == "--vip" || a == "--backend") && has_value) {
      req[a == "--vip" ? "vip" : "backend"] = std::string(args[++i]);
    } else if ((cmd == "flows" || cmd == "stuck") && a == "--limit" && has_value) {
      if (!parse_u32(args[++i], 1, 100000, n)) return usage_error("--limit expects 1..100000");
      req["limit"] = n;
    } else if (cmd == "stuck" && a == "--threshold" && has_value) {
      if (!parse_u32(args[++i], 0, 100 * 86400, n)) return usage_error("--threshold expects seconds");
      req["threshold_s"] = n;
    } else if (cmd == "watch" && a == "--interval" && has_value) {
      if (!parse_u32(args[++i], 1, 3600, interval)) return usage_error("--interval expects 1..3600 seconds");
    } else if (cmd == "watch" && a == "--count" && has_value) {
      if (!parse_u32(args[++i], 1, 1u << 30, count)) return usage_error("--count expects a positive number");
    } else {
      return usage_error(std::string(cmd) + ": unknown option '" + std::string(a) + "'");
    }
  }
  if (cmd != "watch") {
    Json answer;
    rc = call(o, Json(std::move(req)), answer);
    if (rc != kExitOk) return rc;
    if (o.json) std::cout << answer.dump() << '\n';
    else if (cmd == "stats") print_stats(answer);
    else print_flows(answer, cmd == "stuck");
    return kExitOk;
  }
  // watch: rates from successive stats, until Ctrl-C or --count.
  std::signal(SIGINT, [](int) { std::_Exit(0); });
  Json::Object stats_req;
  stats_req["cmd"] = "stats";
  const Json request(std::move(stats_req));
  std::map<std::string, std::uint64_t> before;
  for (std::uint32_t round = 0; count == 0 || round < count; ++round) {
    Json answer;
    rc = call(o, request, answer);
    if (rc != kExitOk) return rc;
    if (o.json) {
      std::cout << answer.dump() << std::endl;
    } else {
      const auto& stats = *answer.get("stats");
      std::cout << "\033[H\033[2J" << "ctlb watch  (every " << interval << " s, Ctrl-C to quit)\n\n";
      auto rate = [&](const std::string& k) {
        const std::uint64_t now = num(stats, k);
        const std::uint64_t prev = before.count(k) ? before[k] : now;
        before[k] = now;
        return (now - prev) / interval;
      };
      std::cout << "tcp packets/s " << rate("tcp_packets") << "   invalid/s " << rate("invalid")
                << "   new connections/s " << rate("flows_created") << "   expired/s " << rate("flows_expired")
                << "\n\n";
      print_stats(answer);
      // Mode lb: the VIPs and backends too (an inline dataplane says no).
      Json::Object lb_req;
      lb_req["cmd"] = "lb";
      auto lb = ctlb::control::call_control(o.socket, Json(std::move(lb_req)));
      const auto* ok = lb.answer.get("ok");
      if (lb.status == ctlb::control::CallStatus::Ok && ok && ok->is_bool() && ok->as_bool()) {
        std::cout << '\n';
        print_lb(lb.answer);
      }
      std::cout.flush();
    }
    if (count == 0 || round + 1 < count) std::this_thread::sleep_for(std::chrono::seconds(interval));
  }
  return kExitOk;
}

// reload: the answer's changes, or why nothing changed (stderr, exit 1).
int cmd_reload(std::vector<std::string_view> args) {
  using ctlb::control::Json;
  LiveOptions o;
  int rc = kExitOk;
  if (!parse_live_options(args, o, rc)) return rc;
  if (!args.empty()) return usage_error("reload: unexpected argument '" + std::string(args[0]) + "'");
  Json::Object req;
  req["cmd"] = "reload";
  // Generous: a reload may rebuild many Maglev tables and waits for the workers.
  auto r = ctlb::control::call_control(o.socket, Json(std::move(req)), 120000);
  if (r.status != ctlb::control::CallStatus::Ok) {
    std::cerr << "ctlbctl: " << r.error << '\n';
    return r.status == ctlb::control::CallStatus::NotRunning ? kExitNotRunning : kExitFailed;
  }
  const Json& a = r.answer;
  const auto* ok = a.get("ok");
  const bool done = ok && ok->is_bool() && ok->as_bool();
  if (o.json) std::cout << a.dump() << '\n';
  if (!done) {
    const auto* errors = a.get("errors");
    if (errors && errors->is_array()) {
      std::cerr << "ctlbctl: reload refused, the running configuration is unchanged:\n";
      for (const auto& e : errors->as_array()) std::cerr << (e.is_string() ? e.as_string() : e.dump()) << '\n';
    } else {
      const auto* e = a.get("error");
      std::cerr << "ctlbctl: ctlb-control: " << (e && e->is_string() ? e->as_string() : "failed") << '\n';
    }
    return kExitFailed;
  }
  if (!o.json) {
    const auto& changes = a.get("changes")->as_array();
    std::cout << "reloaded " << str(a, "file") << " (digest " << str(a, "digest") << "): ";
    if (changes.empty()) std::cout << "nothing to change\n";
    else std::cout << changes.size() << (changes.size() == 1 ? " change\n" : " changes\n");
    for (const auto& c : changes) std::cout << "  " << c.as_string() << '\n';
  }
  return kExitOk;
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
  if (cmd == "stats" || cmd == "flows" || cmd == "stuck" || cmd == "watch") return cmd_live(cmd, args);
  if (cmd == "lb" || cmd == "neighbours" || cmd == "backend") return cmd_lb(cmd, args);
  if (cmd == "reload") return cmd_reload(args);
  return usage_error("unknown command '" + std::string(cmd) + "'");
}
