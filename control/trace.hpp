#pragma once
// Offline tracking of a capture: `ctlbctl trace FILE.pcap`. The capture's
// timestamps drive the tracker's clock; the tracker is the dataplane's own.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "dataplane/packet/parse_result.hpp"
#include "dataplane/tcp/tcp_types.hpp"

namespace ctlb::control {

struct TraceOptions {
  std::string path;
  bool json = false;
  bool summary_only = false;
  bool verify_checksum = false;  // like nf_conntrack_checksum=1 (off: captures taken on
                                 // a sending host carry offloaded, unfinished checksums)
  std::uint32_t stuck_after_s = 30;
  std::uint32_t capacity = 1u << 18;  // flows per address family
  tcp::Config tcp;
};

// One packet as the tracker saw it.
struct TraceRecord {
  std::uint64_t index;  // 1-based, as Wireshark numbers frames
  double ts;            // capture timestamp, seconds
  packet::ParseResult parse;
  bool tracked;         // a TCP segment that went through the tracker
  std::string flow;     // original direction "initiator > responder", empty if untracked
  std::string dir;      // "orig" | "reply" | ""
  std::string flags;
  tcp::CtState state;
  tcp::EpState initiator, responder;
  tcp::Verdict verdict;
  std::string reason;
};

struct TraceStuckFlow {
  std::string flow;
  std::string kind;
  std::string holder;  // "initiator" | "responder"
  std::string state, initiator, responder;
  double idle_s;
  std::string why;
};

struct TraceSummary {
  std::uint64_t packets = 0;
  std::uint64_t tcp_packets = 0;
  std::uint64_t invalid = 0;
  std::uint64_t flows_created = 0;
  bool truncated = false;
  std::string truncated_message;
  std::uint64_t parse[packet::kParseResultCount] = {};
  std::uint64_t invalid_by_reason[tcp::kReasonCount] = {};
  std::uint64_t flows_by_state[tcp::kCtStateCount] = {};
  std::vector<TraceStuckFlow> stuck;
};

struct TraceOutput {
  std::vector<TraceRecord> records;
  TraceSummary summary;
};

// Runs the tracker over a capture. On a file that cannot be read at all,
// returns false with a one-line message in `error`.
bool trace_capture(const TraceOptions& opts, TraceOutput& out, std::string& error,
                   std::ostream* stream_records = nullptr);

// The ctlbctl command: prints records and summary; returns the exit code.
int run_trace_command(const TraceOptions& opts, std::ostream& out, std::ostream& err);

void print_record(const TraceRecord& r, bool json, std::ostream& out);
void print_summary(const TraceSummary& s, bool json, std::ostream& out);

}  // namespace ctlb::control
