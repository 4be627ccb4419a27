#pragma once
// parse_frame() on an rte_mbuf: headers are read from the first segment
// (drivers put them there), lengths are checked against the whole chain.
#include <rte_mbuf.h>

#include "dataplane/packet/parse.hpp"

namespace ctlb::packet {

inline ParseResult parse_mbuf(const rte_mbuf* m, PacketView& v) noexcept {
  return parse_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), rte_pktmbuf_data_len(m), rte_pktmbuf_pkt_len(m), v);
}

}  // namespace ctlb::packet
