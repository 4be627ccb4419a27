#include "dataplane/stats.hpp"

#include <algorithm>

namespace ctlb::shm {

WorkerCounters sum_counters(const Header& h, std::uint32_t first, std::uint32_t last) {
  last = std::min(last, h.worker_count);
  WorkerCounters sum{};
  for (std::uint32_t w = first; w < last; ++w) {
    const WorkerCounters& c = h.counters[w];
#define CTLB_X(f, n, d) sum.f += c.f;
    CTLB_WORKER_COUNTERS(CTLB_X)
#undef CTLB_X
#define CTLB_X(f, n, d) sum.tracker.f += c.tracker.f;
    CTLB_TRACKER_COUNTERS(CTLB_X)
#undef CTLB_X
    for (std::uint32_t p = 0; p < h.port_count; ++p) {
      sum.ports[p].rx_packets += c.ports[p].rx_packets;
      sum.ports[p].rx_bytes += c.ports[p].rx_bytes;
      sum.ports[p].tx_packets += c.ports[p].tx_packets;
      sum.ports[p].tx_bytes += c.ports[p].tx_bytes;
      sum.ports[p].tx_dropped += c.ports[p].tx_dropped;
    }
    for (std::size_t i = 0; i < packet::kParseResultCount; ++i) sum.tracker.parse[i] += c.tracker.parse[i];
    for (std::size_t i = 0; i < tcp::kReasonCount; ++i) sum.tracker.reasons[i] += c.tracker.reasons[i];
    for (std::size_t i = 0; i < tcp::kCtStateCount; ++i) {
      sum.tracker.flows_in_state[i] += c.tracker.flows_in_state[i];
      for (std::size_t j = 0; j < tcp::kCtStateCount; ++j) sum.tracker.transitions[i][j] += c.tracker.transitions[i][j];
    }
    for (std::size_t b = 0; b < flow::kHandshakeBuckets; ++b) {
      sum.tracker.syn_to_synack[b] += c.tracker.syn_to_synack[b];
      sum.tracker.synack_to_ack[b] += c.tracker.synack_to_ack[b];
    }
    sum.tracker.syn_to_synack_ms_sum += c.tracker.syn_to_synack_ms_sum;
    sum.tracker.synack_to_ack_ms_sum += c.tracker.synack_to_ack_ms_sum;
  }
  return sum;
}

std::vector<Stat> collect_stats(const Header& h, std::uint32_t first, std::uint32_t last) {
  const WorkerCounters sum = sum_counters(h, first, last);
  std::vector<Stat> out;
  for (std::uint32_t p = 0; p < h.port_count; ++p) {
    const std::string port = std::string("port_") + h.port_names[p] + "_";
    out.push_back({port + "rx_packets", sum.ports[p].rx_packets});
    out.push_back({port + "rx_bytes", sum.ports[p].rx_bytes});
    out.push_back({port + "tx_packets", sum.ports[p].tx_packets});
    out.push_back({port + "tx_bytes", sum.ports[p].tx_bytes});
    out.push_back({port + "tx_dropped", sum.ports[p].tx_dropped});
    const DeviceCounters& d = h.devices[p];  // the port's own, not per worker
    out.push_back({port + "rx_nombuf", d.rx_nombuf});
    out.push_back({port + "rx_missed", d.rx_missed});
    out.push_back({port + "rx_errors", d.rx_errors});
    out.push_back({port + "tx_errors", d.tx_errors});
  }
#define CTLB_X(f, n, d) out.push_back({n, sum.f});
  CTLB_WORKER_COUNTERS(CTLB_X)
#undef CTLB_X
#define CTLB_X(f, n, d) out.push_back({n, sum.tracker.f});
  CTLB_TRACKER_COUNTERS(CTLB_X)
#undef CTLB_X
  for (std::size_t i = 1; i < packet::kParseResultCount; ++i)
    out.push_back({"parse_" + std::string(packet::kParseResultNames[i]), sum.tracker.parse[i]});
  for (std::size_t i = 0; i < tcp::kReasonCount; ++i)
    out.push_back({"reason_" + std::string(tcp::kReasonNames[i]), sum.tracker.reasons[i]});
  for (std::size_t i = 0; i < tcp::kCtStateCount; ++i)
    for (std::size_t j = 0; j < tcp::kCtStateCount; ++j)
      if (sum.tracker.transitions[i][j])
        out.push_back({"transition_" + std::string(tcp::kCtStateNames[i]) + "_" + std::string(tcp::kCtStateNames[j]),
                       sum.tracker.transitions[i][j]});
  for (std::size_t b = 0; b < flow::kHandshakeBuckets; ++b) {
    const std::string le = b < flow::kHandshakeBuckets - 1 ? std::to_string(flow::kHandshakeBucketMs[b]) + "ms" : "inf";
    out.push_back({"handshake_syn_synack_lt_" + le, sum.tracker.syn_to_synack[b]});
    out.push_back({"handshake_synack_ack_lt_" + le, sum.tracker.synack_to_ack[b]});
  }
  for (std::size_t i = 1; i < tcp::kCtStateCount; ++i) {
    const std::int64_t v = sum.tracker.flows_in_state[i];
    out.push_back({"flows_" + std::string(tcp::kCtStateNames[i]), v < 0 ? 0 : static_cast<std::uint64_t>(v)});
  }
  const std::int64_t half_open = flow::half_open_flows(sum.tracker);
  out.push_back({"flows_half_open", half_open < 0 ? 0 : static_cast<std::uint64_t>(half_open)});
  return out;
}

}  // namespace ctlb::shm
