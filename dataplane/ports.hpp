#pragma once
// Port bring-up: queues per worker, symmetric RSS where the device has it,
// the MTU (jumbo frames: rx scatter, multi-segment tx), offloads masked to
// what the device supports, link wait. Init code: returns
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
  bool rx_scatter = false;  // frames larger than one mbuf arrive as chains
};

// The DPDK port of cfg.ports[index]: a PCI device the EAL probed, or a vdev
// probed now. Errors name the port's key in the configuration file.
Result<std::uint16_t> open_port(const config::Config& cfg, std::size_t index);

// Configures and starts cfg.ports[index] (device port_id) for `workers`
// workers: its MTU, rx scatter where its frames outgrow one mbuf of `pool`,
// multi-segment tx where any port's may. Errors about what the device
// refuses name the key in the configuration file.
Result<PortInfo> setup_port(const config::Config& cfg, std::size_t index, std::uint16_t port_id,
                            std::uint16_t workers, rte_mempool* pool);

}  // namespace ctlb::dataplane
