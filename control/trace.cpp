#include "control/trace.hpp"

#include <pcap/pcap.h>

#include <cstdlib>
#include <memory>
#include <ostream>

#include "control/format.hpp"
#include "control/query.hpp"
#include "control/stuck.hpp"
#include "dataplane/flow/tracker.hpp"
#include "dataplane/packet/checksum.hpp"
#include "dataplane/packet/parse.hpp"

namespace ctlb::control {

namespace {

struct AlignedFree {
  void operator()(void* p) const noexcept { std::free(p); }
};
using Region = std::unique_ptr<void, AlignedFree>;

Region allocate(std::size_t bytes) {
  const std::size_t rounded = (bytes + 63) / 64 * 64;
  return Region(std::aligned_alloc(64, rounded));
}

template <class F>
void summarise_table(const flow::FlowTable<F>& table, Millis now, std::uint32_t stuck_after_ms, TraceSummary& s) {
  for_each_flow(table, [&](flow::Handle, const auto& e, const flow::Cold&) {
    ++s.flows_by_state[e.status.ct_state];
    const std::uint32_t idle = elapsed_ms(now, e.last_seen);
    if (auto stuck = classify_stuck(e.status, idle, stuck_after_ms)) {
      s.stuck.push_back(TraceStuckFlow{
          format_key(e.key, e.status.initiator_is_lo),
          name(stuck->kind),
          stuck->holder_is_initiator ? "initiator" : "responder",
          std::string(tcp::name(static_cast<tcp::CtState>(e.status.ct_state))),
          std::string(tcp::name(static_cast<tcp::EpState>(e.status.initiator))),
          std::string(tcp::name(static_cast<tcp::EpState>(e.status.responder))),
          idle / 1000.0,
          stuck->why,
      });
    }
  });
}

}  // namespace

bool trace_capture(const TraceOptions& opts, TraceOutput& out, std::string& error, std::ostream* stream_records) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* pc = pcap_open_offline_with_tstamp_precision(opts.path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, errbuf);
  if (!pc) {
    error = "cannot read capture " + opts.path + ": " + errbuf;
    return false;
  }
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> guard(pc, pcap_close);
  if (pcap_datalink(pc) != DLT_EN10MB) {
    error = "unsupported link type in " + opts.path + ": " + pcap_datalink_val_to_name(pcap_datalink(pc)) +
            " (expected Ethernet)";
    return false;
  }
  if (opts.capacity == 0) {
    error = "capacity must be at least 1";
    return false;
  }

  Region mem4 = allocate(flow::FlowTable<flow::V4>::bytes_needed(opts.capacity));
  Region mem6 = allocate(flow::FlowTable<flow::V6>::bytes_needed(opts.capacity));
  if (!mem4 || !mem6) {
    error = "out of memory for " + std::to_string(opts.capacity) + " flows";
    return false;
  }
  flow::Tracker tracker(flow::FlowTable<flow::V4>::create(mem4.get(), opts.capacity),
                        flow::FlowTable<flow::V6>::create(mem6.get(), opts.capacity), opts.tcp);

  TraceSummary& sum = out.summary;
  std::int64_t first_us = -1;
  std::uint64_t now_ms = 0;
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  for (;;) {
    const int rc = pcap_next_ex(pc, &hdr, &data);
    if (rc == PCAP_ERROR_BREAK) break;  // end of file
    if (rc != 1) {
      sum.truncated = true;
      sum.truncated_message = pcap_geterr(pc);
      break;
    }
    ++sum.packets;
    const std::int64_t ts_us = static_cast<std::int64_t>(hdr->ts.tv_sec) * 1'000'000 + hdr->ts.tv_usec;
    if (first_us < 0) first_us = ts_us;
    // The clock never runs backwards, whatever the capture says.
    const std::int64_t rel_ms = (ts_us - first_us) / 1000;
    if (rel_ms > static_cast<std::int64_t>(now_ms)) now_ms = static_cast<std::uint64_t>(rel_ms);

    TraceRecord rec{};
    rec.index = sum.packets;
    rec.ts = static_cast<double>(ts_us) / 1e6;
    packet::PacketView v;
    rec.parse = packet::parse_frame(data, hdr->caplen, hdr->len, v);
    tracker.count_parse(rec.parse);
    rec.verdict = tcp::Verdict::Accept;
    rec.state = tcp::CtState::None;
    rec.initiator = rec.responder = tcp::EpState::Closed;
    if (rec.parse == packet::ParseResult::Tcp) {
      const bool bad_checksum = opts.verify_checksum && v.fragment == packet::Fragment::None &&
                                hdr->caplen >= hdr->len && !packet::tcp_checksum_ok(data, v);
      const flow::TrackResult r = bad_checksum ? tracker.reject(v, tcp::Reason::BadChecksum)
                                               : tracker.track(v, flow::Clock{now_ms});
      rec.tracked = true;
      rec.flow = format_flow(v, r.dir == tcp::Dir::Orig);
      rec.dir = r.dir == tcp::Dir::Orig ? "orig" : "reply";
      rec.flags = format_flags(v.flags);
      rec.state = r.state;
      rec.initiator = r.initiator;
      rec.responder = r.responder;
      rec.verdict = r.verdict;
      rec.reason = std::string(tcp::name(r.reason));
      if (r.verdict == tcp::Verdict::Invalid) ++sum.invalid_by_reason[static_cast<std::size_t>(r.reason)];
    } else {
      rec.tracked = false;
      rec.reason = std::string(packet::name(rec.parse));
      if (packet::is_malformed(rec.parse)) rec.verdict = tcp::Verdict::Invalid;
    }
    if (stream_records) print_record(rec, opts.json, *stream_records);
    else out.records.push_back(std::move(rec));
  }
  const auto& c = tracker.counters();
  sum.tcp_packets = c.tcp_packets;
  sum.invalid = c.invalid;
  sum.flows_created = c.flows_created;
  for (std::size_t i = 0; i < packet::kParseResultCount; ++i) sum.parse[i] = c.parse[i];
  const std::uint32_t stuck_ms = opts.stuck_after_s * 1000u;
  summarise_table(tracker.table_v4(), static_cast<Millis>(now_ms), stuck_ms, sum);
  summarise_table(tracker.table_v6(), static_cast<Millis>(now_ms), stuck_ms, sum);
  return true;
}

void print_record(const TraceRecord& r, bool json, std::ostream& out) {
  const std::string_view verdict = r.verdict == tcp::Verdict::Accept    ? "accept"
                                   : r.verdict == tcp::Verdict::Invalid ? "invalid"
                                                                        : "drop";
  if (json) {
    out << "{\"index\":" << r.index << ",\"ts\":" << std::fixed;
    out.precision(6);
    out << r.ts << ",\"flow\":\"" << json_escape(r.flow) << "\",\"dir\":\"" << r.dir << "\",\"flags\":\""
        << r.flags << "\",\"state\":\"" << (r.tracked ? tcp::name(r.state) : "") << "\",\"initiator\":\""
        << (r.tracked ? tcp::name(r.initiator) : "") << "\",\"responder\":\""
        << (r.tracked ? tcp::name(r.responder) : "") << "\",\"verdict\":\"" << verdict << "\",\"reason\":\""
        << json_escape(r.reason) << "\"}\n";
    return;
  }
  out << '#' << r.index << ' ';
  if (!r.tracked) {
    out << "untracked " << verdict << ' ' << r.reason << '\n';
    return;
  }
  out << r.flow << ' ' << r.dir << ' ' << r.flags << " state=" << tcp::name(r.state)
      << " initiator=" << tcp::name(r.initiator) << " responder=" << tcp::name(r.responder) << ' ' << verdict
      << ' ' << r.reason << '\n';
}

void print_summary(const TraceSummary& s, bool json, std::ostream& out) {
  if (json) {
    out << "{\"summary\":{\"packets\":" << s.packets << ",\"tcp_packets\":" << s.tcp_packets
        << ",\"invalid\":" << s.invalid << ",\"flows\":" << s.flows_created << ",\"truncated\":"
        << (s.truncated ? "true" : "false");
    if (s.truncated) out << ",\"truncated_message\":\"" << json_escape(s.truncated_message) << '"';
    out << ",\"flows_by_state\":{";
    bool first = true;
    for (std::size_t i = 1; i < tcp::kCtStateCount; ++i) {
      if (!s.flows_by_state[i]) continue;
      out << (first ? "" : ",") << '"' << tcp::kCtStateNames[i] << "\":" << s.flows_by_state[i];
      first = false;
    }
    out << "},\"invalid_by_reason\":{";
    first = true;
    for (std::size_t i = 0; i < tcp::kReasonCount; ++i) {
      if (!s.invalid_by_reason[i]) continue;
      out << (first ? "" : ",") << '"' << tcp::kReasonNames[i] << "\":" << s.invalid_by_reason[i];
      first = false;
    }
    out << "},\"untracked\":{";
    first = true;
    for (std::size_t i = 1; i < packet::kParseResultCount; ++i) {
      if (!s.parse[i]) continue;
      out << (first ? "" : ",") << '"' << packet::kParseResultNames[i] << "\":" << s.parse[i];
      first = false;
    }
    out << "},\"stuck\":[";
    first = true;
    for (const auto& st : s.stuck) {
      out << (first ? "" : ",") << "{\"flow\":\"" << json_escape(st.flow) << "\",\"kind\":\"" << st.kind
          << "\",\"holder\":\"" << st.holder << "\",\"state\":\"" << st.state << "\",\"initiator\":\""
          << st.initiator << "\",\"responder\":\"" << st.responder << "\",\"idle_s\":" << st.idle_s
          << ",\"why\":\"" << json_escape(st.why) << "\"}";
      first = false;
    }
    out << "]}}\n";
    return;
  }
  out << "\nsummary: " << s.packets << " packets, " << s.tcp_packets << " TCP, " << s.invalid << " invalid, "
      << s.flows_created << " connections\n";
  if (s.truncated) out << "  capture truncated: " << s.truncated_message << '\n';
  out << "  connections by final state:";
  for (std::size_t i = 1; i < tcp::kCtStateCount; ++i)
    if (s.flows_by_state[i]) out << ' ' << tcp::kCtStateNames[i] << '=' << s.flows_by_state[i];
  out << '\n';
  bool any = false;
  for (std::size_t i = 0; i < tcp::kReasonCount; ++i) {
    if (!s.invalid_by_reason[i]) continue;
    if (!any) out << "  invalid packets by reason:\n";
    any = true;
    out << "    " << tcp::kReasonNames[i] << ": " << s.invalid_by_reason[i] << "  (" << tcp::kReasonDescriptions[i]
        << ")\n";
  }
  any = false;
  for (std::size_t i = 1; i < packet::kParseResultCount; ++i) {
    if (!s.parse[i]) continue;
    if (!any) out << "  untracked packets:\n";
    any = true;
    out << "    " << packet::kParseResultNames[i] << ": " << s.parse[i] << "  ("
        << packet::kParseResultDescriptions[i] << ")\n";
  }
  if (s.stuck.empty()) {
    out << "  stuck connections: none\n";
  } else {
    out << "  stuck connections (" << s.stuck.size() << "):\n";
    for (const auto& st : s.stuck) {
      out << "    " << st.flow << "  " << st.kind << "  initiator=" << st.initiator << " responder=" << st.responder
          << " idle " << st.idle_s << " s: " << st.why << '\n';
    }
  }
}

int run_trace_command(const TraceOptions& opts, std::ostream& out, std::ostream& err) {
  TraceOutput result;
  std::string error;
  if (!trace_capture(opts, result, error, opts.summary_only ? nullptr : &out)) {
    err << "ctlbctl trace: " << error << '\n';
    return 1;
  }
  if (result.summary.truncated)
    err << "ctlbctl trace: warning: capture truncated after packet " << result.summary.packets << ": "
        << result.summary.truncated_message << '\n';
  print_summary(result.summary, opts.json, out);
  return 0;
}

}  // namespace ctlb::control
