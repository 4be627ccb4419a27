#pragma once
// Port bring-up: queues per worker, symmetric RSS where the device has it,
// offloads masked to what the device supports, link wait. Init code: returns
// errors, never exits.
#include <rte_mempool.h>

#include <cstdint>
#include <string>

#include "config/config.hpp"
#include "dataplane/common/result.hpp"

namespace ctlb::dataplane {

struct PortInfo {
  std::uint16_t port_id = 0;
  std::uint16_t rx_queues = 0;
  std::uint16_t tx_queues = 0;
  bool symmetric_rss = false;  // every worker has an rx queue and RSS keeps both directions together
  std::string driver;
  bool link_up = false;
};

// The DPDK port of cfg.ports[index]: a PCI device the EAL probed, or a vdev
// probed now. Errors name the port's key in the configuration file.
Result<std::uint16_t> open_port(const config::Config& cfg, std::size_t index);

// Configures and starts a port for `workers` workers.
Result<PortInfo> setup_port(const config::Port& p, std::uint16_t port_id, std::uint16_t workers, rte_mempool* pool);

}  // namespace ctlb::dataplane
