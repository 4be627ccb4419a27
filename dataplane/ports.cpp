#include "dataplane/ports.hpp"

#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace ctlb::dataplane {

namespace {

// A Toeplitz key of repeated 0x6d5a hashes (src, dst) and (dst, src) alike,
// so both directions of a connection land on the same queue.
std::uint8_t kSymmetricRssKey[40] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

std::string errstr(int rc) { return rte_strerror(rc < 0 ? -rc : rc); }

}  // namespace

Result<std::uint16_t> open_port(const config::Config& cfg, std::size_t index) {
  const config::Port& p = cfg.ports[index];
  const std::string key = "ports[" + std::to_string(index) + "]";
  std::uint16_t id = 0;
  if (!p.pci.empty()) {
    if (rte_eth_dev_get_port_by_name(p.pci.c_str(), &id) != 0)
      return Error{config::key_error(cfg, key + ".pci",
                                     "a PCI device bound to a driver DPDK can use (vfio-pci, igb_uio or "
                                     "uio_pci_generic: see dpdk-devbind.py --status)",
                                     p.pci)};
    return id;
  }
  // A vdev is probed here rather than by the EAL's --vdev, so that a driver
  // this DPDK does not have, or arguments its driver refuses, name the port.
  const std::string name = p.devargs.substr(0, p.devargs.find(','));
  rte_devargs da{};
  const int parsed = rte_devargs_parse(&da, name.c_str());  // finds the bus whose driver takes the name
  std::free(da.data);
  if (parsed != 0)
    return Error{config::key_error(cfg, key + ".devargs",
                                   "vdev arguments starting with the name of a driver this DPDK has, like "
                                   "net_pcap0 or net_null0",
                                   p.devargs)};
  if (rte_dev_probe(p.devargs.c_str()) != 0)
    return Error{config::key_error(cfg, key + ".devargs",
                                   "vdev arguments that its driver accepts (it refused them: DPDK's log says why)",
                                   p.devargs)};
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0)
    return Error{config::key_error(cfg, key + ".devargs", "an Ethernet device (" + name + " is not one)", p.devargs)};
  return id;
}

Result<PortInfo> setup_port(const config::Port& p, std::uint16_t port_id, std::uint16_t workers, rte_mempool* pool) {
  PortInfo info;
  info.port_id = port_id;
  rte_eth_dev_info dev{};
  int rc = rte_eth_dev_info_get(port_id, &dev);
  if (rc != 0) return Error{"port " + p.name + ": cannot query the device: " + errstr(rc)};
  info.driver = dev.driver_name ? dev.driver_name : "?";
  if (dev.max_tx_queues < workers)
    return Error{"port " + p.name + " (" + info.driver + "): " + std::to_string(workers) +
                 " workers need one tx queue each, the device has " + std::to_string(dev.max_tx_queues)};
  info.rx_queues = static_cast<std::uint16_t>(std::min<unsigned>(workers, dev.max_rx_queues));
  info.tx_queues = workers;

  rte_eth_conf conf{};
  if (info.rx_queues > 1 && dev.flow_type_rss_offloads != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_key = kSymmetricRssKey;
    conf.rx_adv_conf.rss_conf.rss_key_len = sizeof kSymmetricRssKey;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV6_TCP) & dev.flow_type_rss_offloads;
    info.symmetric_rss = info.rx_queues == workers && dev.hash_key_size == sizeof kSymmetricRssKey;
  }
  // Offloads we would use where present; masked to what the device has.
  const std::uint64_t want_tx = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
  conf.txmode.offloads = want_tx & dev.tx_offload_capa;
  std::printf("ctlb: port %s: driver %s, %u rx / %u tx queues, RSS %s, tx offloads 0x%llx of wanted 0x%llx\n",
              p.name.c_str(), info.driver.c_str(), info.rx_queues, info.tx_queues,
              workers == 1 ? "not needed (one worker)"
              : info.symmetric_rss ? "symmetric"
              : (conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS ? "on, not one queue per worker (software hand-over)"
                                                          : "unsupported (software hand-over)"),
              static_cast<unsigned long long>(conf.txmode.offloads), static_cast<unsigned long long>(want_tx));

  rc = rte_eth_dev_configure(port_id, info.rx_queues, info.tx_queues, &conf);
  if (rc != 0) return Error{"port " + p.name + ": configure failed: " + errstr(rc)};
  std::uint16_t rxd = p.rx_descriptors;
  std::uint16_t txd = p.tx_descriptors;
  rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rxd, &txd);
  if (rc != 0) return Error{"port " + p.name + ": descriptor counts refused: " + errstr(rc)};
  const int socket = rte_eth_dev_socket_id(port_id);
  const unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
  for (std::uint16_t q = 0; q < info.rx_queues; ++q) {
    rc = rte_eth_rx_queue_setup(port_id, q, rxd, sock, nullptr, pool);
    if (rc != 0) return Error{"port " + p.name + ": rx queue " + std::to_string(q) + ": " + errstr(rc)};
  }
  rte_eth_txconf txconf = dev.default_txconf;
  txconf.offloads = conf.txmode.offloads;
  for (std::uint16_t q = 0; q < info.tx_queues; ++q) {
    rc = rte_eth_tx_queue_setup(port_id, q, txd, sock, &txconf);
    if (rc != 0) return Error{"port " + p.name + ": tx queue " + std::to_string(q) + ": " + errstr(rc)};
  }
  rc = rte_eth_dev_start(port_id);
  if (rc != 0) return Error{"port " + p.name + ": start failed: " + errstr(rc)};
  // A bump in the wire forwards every frame, whatever its destination MAC.
  rc = rte_eth_promiscuous_enable(port_id);
  if (rc != 0 && rc != -ENOTSUP)
    std::printf("ctlb: port %s: promiscuous mode not enabled: %s\n", p.name.c_str(), errstr(rc).c_str());

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(p.link_wait_ms);
  for (;;) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) {
      info.link_up = true;
      std::printf("ctlb: port %s: link up, %u Mbps\n", p.name.c_str(), link.link_speed);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::printf("ctlb: port %s: link still down after %u ms, continuing\n", p.name.c_str(), p.link_wait_ms);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return info;
}

}  // namespace ctlb::dataplane
