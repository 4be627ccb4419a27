#pragma once
// The configuration as plain structs: what config/loader.cpp produces from
// one YAML file, validated completely before anything starts. No yaml-cpp
// here, so the dataplane can include it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/tcp/tcp_types.hpp"

namespace ctlb::config {

enum class Mode : std::uint8_t { Inline, Lb };
enum class InvalidPolicy : std::uint8_t { Forward, Drop };

struct Port {
  std::string name;
  std::string pci;      // PCI address ("0000:3b:00.0"), or
  std::string devargs;  // a vdev ("net_pcap0,rx_pcap=in.pcap,...")
  std::string peer;     // inline mode: where this port's packets go
  std::uint16_t rx_descriptors = 1024;
  std::uint16_t tx_descriptors = 1024;
  std::uint32_t link_wait_ms = 5000;
};

struct Mempool {
  std::uint32_t mbufs = 16383;  // per NUMA socket
  std::uint32_t cache = 256;
  std::uint16_t data_room = 2176;  // RTE_MBUF_DEFAULT_BUF_SIZE
};

struct Tracking {
  std::uint32_t capacity_v4 = 1u << 20;  // flows per worker
  std::uint32_t capacity_v6 = 1u << 16;
  InvalidPolicy invalid_policy = InvalidPolicy::Forward;
  tcp::Config tcp;
};

struct Control {
  std::string socket = "/run/ctlb/control.sock";
  std::string metrics = "127.0.0.1:9273";
};

struct Config {
  std::string file;  // where it was read from
  Mode mode = Mode::Inline;
  std::string file_prefix = "ctlb";
  std::uint32_t main_lcore = 0;
  std::vector<std::uint32_t> worker_lcores;
  std::string lcore_map;  // optional EAL --lcores mapping, e.g. "0@0,1@1,2@1" (more lcores than CPUs: tests only)
  std::vector<std::string> eal_args;  // extra EAL arguments, passed as they are
  Mempool mempool;
  std::vector<Port> ports;
  Tracking tracking;
  Control control;
  std::string digest;  // of the file's bytes, to match the two processes
};

}  // namespace ctlb::config
