#include "dataplane/ports.hpp"

#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include <algorithm>
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

// The largest frame of a port: its MTU with the Ethernet header, two VLAN
// tags (QinQ) and the CRC around it. The CRC counts though drivers strip
// it: some write it into the buffer first.
constexpr std::uint32_t kFrameOverhead = RTE_ETHER_HDR_LEN + 2 * RTE_VLAN_HLEN + RTE_ETHER_CRC_LEN;

std::uint32_t largest_frame(const config::Port& p) { return p.mtu + kFrameOverhead; }

// The largest MTU ethdev lets the device take, by rte_eth_dev_configure's
// own rule: at most max_mtu, and the MTU with the device's L2 overhead at
// most max_rx_pktlen. (net_af_packet: 1500, its max_rx_pktlen is 1518.)
std::uint32_t device_max_mtu(const rte_eth_dev_info& dev) {
  const std::uint32_t overhead = dev.max_mtu != UINT16_MAX && dev.max_rx_pktlen > dev.max_mtu
                                     ? dev.max_rx_pktlen - dev.max_mtu
                                     : RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
  const std::uint32_t by_frame = dev.max_rx_pktlen > overhead ? dev.max_rx_pktlen - overhead : 0;
  return std::min<std::uint32_t>(dev.max_mtu, by_frame);
}

// The way out when a frame must fit in fewer mbufs: the data room that
// holds `bytes` after the headroom (mempool.data_room takes at most 65535).
std::string raise_data_room(std::uint32_t bytes) {
  const std::uint32_t room = bytes + RTE_PKTMBUF_HEADROOM;
  if (room > 65535) return "lower the MTU";
  return "raise mempool.data_room to " + std::to_string(room) + " or lower the MTU";
}

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

Result<PortInfo> setup_port(const config::Config& cfg, std::size_t index, std::uint16_t port_id,
                            std::uint16_t workers, rte_mempool* pool) {
  const config::Port& p = cfg.ports[index];
  const std::string mtu_key = "ports[" + std::to_string(index) + "].mtu";
  const std::string mtu_text = std::to_string(p.mtu);
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

  // The MTU, checked as rte_eth_dev_configure would, so that a refusal
  // names the key and the device's limit. Where the file does not set it
  // and the device takes less than 1500, it gets its most, as ethdev's own
  // default does.
  const std::uint32_t max_mtu = device_max_mtu(dev);
  const std::uint16_t mtu = !cfg.marks.count(mtu_key) && p.mtu > max_mtu && max_mtu >= dev.min_mtu
                                ? static_cast<std::uint16_t>(max_mtu)
                                : p.mtu;
  if (mtu < dev.min_mtu || mtu > max_mtu)
    return Error{config::key_error(
        cfg, mtu_key,
        "an MTU in " + std::to_string(dev.min_mtu) + ".." + std::to_string(max_mtu) + ", what " + info.driver +
            " takes" +
            (max_mtu < dev.max_mtu ? " (its largest frame is " + std::to_string(dev.max_rx_pktlen) + " bytes)" : ""),
        mtu_text)};
  conf.rxmode.mtu = mtu;

  // Jumbo frames. A frame larger than one mbuf's room arrives as a chain
  // of mbufs (rx scatter), and whichever port it leaves by must send a
  // chain (multi-segment tx). Headers are read from the first segment,
  // lengths from pkt_len: the workers need nothing more.
  const std::uint32_t room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
  const std::uint32_t frame = mtu + kFrameOverhead;
  const std::uint32_t segments = (frame + room - 1) / room;
  const bool jumbo = mtu > config::kDefaultMtu;  // the file claims frames over the standard size
  const std::string too_big = "an MTU whose largest frame (the MTU + " + std::to_string(kFrameOverhead) +
                              " bytes of Ethernet header, two VLAN tags and CRC) fits in one mbuf of " +
                              std::to_string(room) + " bytes (mempool.data_room " +
                              std::to_string(rte_pktmbuf_data_room_size(pool)) + " less " +
                              std::to_string(RTE_PKTMBUF_HEADROOM) + " of headroom: an MTU of at most " +
                              std::to_string(room - kFrameOverhead) + "), as " + info.driver + " cannot ";
  if (frame > room) {
    if (dev.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) {
      conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
      info.rx_scatter = true;
    } else if (jumbo) {
      return Error{config::key_error(cfg, mtu_key, too_big + "receive a frame in several mbufs (no rx scatter): " +
                                                       raise_data_room(frame),
                                     mtu_text)};
    } else {
      // As before the MTU was configurable: a standard-size frame over a
      // small data room is the driver's own affair (net_pcap chains it,
      // net_af_packet checks its framesz against the room).
      std::printf("ctlb: port %s: frames over %u bytes do not fit in one mbuf and %s has no rx scatter\n",
                  p.name.c_str(), room, info.driver.c_str());
    }
    if (jumbo && !(dev.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS))
      return Error{config::key_error(cfg, mtu_key, too_big + "send a frame in several mbufs (no multi-segment tx): " +
                                                       raise_data_room(frame),
                                     mtu_text)};
    const std::uint32_t max_segments = std::min(dev.rx_desc_lim.nb_mtu_seg_max, dev.tx_desc_lim.nb_mtu_seg_max);
    if (jumbo && segments > max_segments)
      return Error{config::key_error(
          cfg, mtu_key,
          "an MTU whose largest frame (the MTU + " + std::to_string(kFrameOverhead) + " bytes) " + info.driver +
              " can carry: it takes at most " + std::to_string(max_segments) + " mbufs per frame and this one needs " +
              std::to_string(segments) + " of " + std::to_string(room) +
              " bytes: " + raise_data_room((frame + max_segments - 1) / max_segments),
          mtu_text)};
  }
  // Chains reach this port's tx where any port's frames outgrow one mbuf.
  // Fast free then no longer holds (it needs direct, unchained mbufs of one
  // pool with refcnt 1), and multi-segment tx costs the Intel PMDs their
  // vector tx path, so it is asked for only then.
  bool chains = false;
  for (const config::Port& q : cfg.ports) chains = chains || largest_frame(q) > room;
  const std::uint64_t want_tx = chains ? RTE_ETH_TX_OFFLOAD_MULTI_SEGS : RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
  conf.txmode.offloads = want_tx & dev.tx_offload_capa;

  rc = rte_eth_dev_configure(port_id, info.rx_queues, info.tx_queues, &conf);
  if (rc != 0) return Error{"port " + p.name + ": configure failed: " + errstr(rc)};
  // rte_eth_dev_configure refuses an offload the device lacks, so what was
  // asked for is what it took; the MTU is read back from ethdev.
  std::uint16_t took_mtu = 0;
  rc = rte_eth_dev_get_mtu(port_id, &took_mtu);
  if (rc != 0) return Error{"port " + p.name + ": cannot read its MTU back: " + errstr(rc)};
  std::printf("ctlb: port %s: driver %s, %u rx / %u tx queues, RSS %s, MTU %u (frames up to %u bytes: %s), "
              "rx offloads 0x%llx, tx offloads 0x%llx of wanted 0x%llx\n",
              p.name.c_str(), info.driver.c_str(), info.rx_queues, info.tx_queues,
              workers == 1 ? "not needed (one worker)"
              : info.symmetric_rss ? "symmetric"
              : (conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS ? "on, not one queue per worker (software hand-over)"
                                                          : "unsupported (software hand-over)"),
              took_mtu, frame,
              frame <= room     ? ("one mbuf of " + std::to_string(room)).c_str()
              : info.rx_scatter ? ("rx scatter, up to " + std::to_string(segments) + " mbufs of " +
                                   std::to_string(room)).c_str()
                                : "no rx scatter",
              static_cast<unsigned long long>(conf.rxmode.offloads),
              static_cast<unsigned long long>(conf.txmode.offloads), static_cast<unsigned long long>(want_tx));
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
