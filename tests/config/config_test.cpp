// The configuration loader: good files load into the structs, and every class
// of error gives one line naming the file, line, key and what was expected.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "config/host_check.hpp"
#include "config/loader.hpp"
#include "dataplane/flow/flow_table.hpp"

namespace {

using ctlb::config::IpAddr;
using ctlb::config::load_file;
using ctlb::config::load_string;

const std::string kGood = R"(mode: inline
lcores:
  main: 0
  workers: [1, 2]
ports:
  - name: a
    devargs: net_null0
    peer: b
  - name: b
    pci: "0000:3b:00.1"
    peer: a
    rx_descriptors: 2048
tracking:
  capacity_v4: 4096
  invalid_policy: drop
  msl_seconds: 60
  timeouts:
    close_wait: 30
)";

std::string error_of(const std::string& yaml) {
  auto r = load_string(yaml, "test.yaml");
  EXPECT_FALSE(r.ok()) << "expected an error for:\n" << yaml;
  return r.ok() ? "" : r.error().message;
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(Config, GoodFileLoads) {
  auto r = load_string(kGood, "test.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& c = r.value();
  EXPECT_EQ(c.worker_lcores, (std::vector<std::uint32_t>{1, 2}));
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].devargs, "net_null0");
  EXPECT_EQ(c.ports[1].pci, "0000:3b:00.1");
  EXPECT_EQ(c.ports[1].rx_descriptors, 2048);
  EXPECT_EQ(c.ports[0].peer, "b");
  EXPECT_EQ(c.tracking.capacity_v4, 4096u);
  EXPECT_EQ(c.tracking.invalid_policy, ctlb::config::InvalidPolicy::Drop);
  EXPECT_EQ(c.tracking.tcp.timeouts.of(ctlb::tcp::CtState::TimeWait), 120'000u);  // 2 x MSL
  EXPECT_EQ(c.tracking.tcp.timeouts.of(ctlb::tcp::CtState::CloseWait), 30'000u);
  EXPECT_EQ(c.tracking.tcp.timeouts.of(ctlb::tcp::CtState::Established), 432'000'000u);
  EXPECT_EQ(c.digest.size(), 16u);
}

TEST(Config, DefaultTimeWaitIsTwiceMsl) {
  auto r = load_string(replace(kGood, "  msl_seconds: 60\n", ""), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().tracking.tcp.timeouts.of(ctlb::tcp::CtState::TimeWait), 240'000u);
}

TEST(Config, UnknownKey) {
  EXPECT_EQ(error_of(replace(kGood, "  invalid_policy: drop", "  invalid_polcy: drop")),
            "test.yaml:15:3: tracking.invalid_polcy: unknown key (expected one of: capacity_v4, capacity_v6, "
            "invalid_policy, liberal, pickup, ignore_invalid_rst, max_retrans, msl_seconds, timeouts, new_flow_limit)");
}

TEST(Config, NewFlowLimit) {
  {
    auto r = load_string(kGood, "t.yaml");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r.value().tracking.new_flow_limit.rate, 0u);  // no limit by default
  }
  {
    auto r = load_string(kGood + "  new_flow_limit:\n    rate: 50000\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r.value().tracking.new_flow_limit.rate, 50000u);
    EXPECT_EQ(r.value().tracking.new_flow_limit.burst, 5000u);  // a tenth of a second
  }
  {
    auto r = load_string(kGood + "  new_flow_limit: {rate: 5, burst: 100}\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r.value().tracking.new_flow_limit.rate, 5u);
    EXPECT_EQ(r.value().tracking.new_flow_limit.burst, 100u);
  }
  EXPECT_EQ(error_of(kGood + "  new_flow_limit: {burst: 100}\n"),
            "test.yaml:19:19: tracking.new_flow_limit.rate: missing, expected new connections per second per "
            "worker (0: no limit)");
  EXPECT_EQ(error_of(kGood + "  new_flow_limit: {rate: 0, burst: 100}\n"),
            "test.yaml:19:36: tracking.new_flow_limit.burst: expected no burst when rate is 0 (no limit) "
            "(found '100')");
  EXPECT_EQ(error_of(kGood + "  new_flow_limit: {rate: 10, burst: 0}\n"),
            "test.yaml:19:37: tracking.new_flow_limit.burst: expected an integer in 1..1000000000 (found '0')");
}

TEST(Config, WrongType) {
  EXPECT_EQ(error_of(replace(kGood, "capacity_v4: 4096", "capacity_v4: lots")),
            "test.yaml:14:16: tracking.capacity_v4: expected an integer in 1024..134217728 (found 'lots')");
}

TEST(Config, CapacityNotPowerOfTwo) {
  EXPECT_EQ(error_of(replace(kGood, "capacity_v4: 4096", "capacity_v4: 5000")),
            "test.yaml:14:16: tracking.capacity_v4: expected a power of two between 1024 and 134217728 "
            "(found '5000')");
}

TEST(Config, MissingRequiredKey) {
  EXPECT_EQ(error_of(replace(kGood, "  main: 0\n", "")),
            "test.yaml:3:3: lcores.main: missing, expected an lcore id");
}

TEST(Config, PortNeedsExactlyOneOfPciOrDevargs) {
  EXPECT_EQ(error_of(replace(kGood, "    devargs: net_null0\n", "")),
            "test.yaml:6:5: ports[0]: expected exactly one of pci (a PCI address) or devargs (a vdev) "
            "(found a mapping)");
}

TEST(Config, BadPciAddress) {
  EXPECT_EQ(error_of(replace(kGood, "0000:3b:00.1", "3b:00:1")),
            "test.yaml:10:10: ports[1].pci: expected a PCI address like 0000:3b:00.0 (found '3b:00:1')");
}

TEST(Config, PeerMustExist) {
  EXPECT_EQ(error_of(replace(kGood, "peer: b", "peer: c")),
            "test.yaml:8:11: ports[0].peer: expected the name of a configured port (found 'c')");
}

TEST(Config, DuplicatePortName) {
  EXPECT_EQ(error_of(replace(kGood, "name: b", "name: a")),
            "test.yaml:9:11: ports[1].name: expected a port name not already used (found 'a')");
}

TEST(Config, PciAddressIsCanonical) {
  auto r = load_string(replace(kGood, "0000:3b:00.1", "0:3B:0.1"), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().ports[1].pci, "0000:3b:00.1");  // as sysfs and DPDK name it
}

TEST(Config, DeviceUsedByTwoPorts) {
  EXPECT_EQ(error_of(replace(kGood, "0000:3b:00.1", "0000:3b:00.1\"\n    peer: a\n  - name: c\n    pci: \"0:3b:0.1")),
            "test.yaml:13:10: ports[2].pci: expected a device no other port uses (ports[1] is 0000:3b:00.1) "
            "(found '0:3b:0.1')");
  EXPECT_EQ(error_of(replace(kGood, "pci: \"0000:3b:00.1\"", "devargs: net_null0,size=128")),
            "test.yaml:10:14: ports[1].devargs: expected a device no other port uses (ports[0] is net_null0) "
            "(found 'net_null0,size=128')");
}

TEST(Config, WorkerOnMainLcore) {
  EXPECT_EQ(error_of(replace(kGood, "workers: [1, 2]", "workers: [0, 2]")),
            "test.yaml:4:13: lcores.workers[0]: expected a worker lcore other than the main lcore (found '0')");
}

TEST(Config, BadEnum) {
  EXPECT_EQ(error_of(replace(kGood, "invalid_policy: drop", "invalid_policy: reject")),
            "test.yaml:15:19: tracking.invalid_policy: expected forward | drop (found 'reject')");
}

TEST(Config, NotYaml) {
  const std::string e = error_of("ports: [a, b\n");
  EXPECT_EQ(e.rfind("test.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
}

TEST(Config, MissingFile) {
  auto r = load_file("/nonexistent/ctlb.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "/nonexistent/ctlb.yaml: cannot open the configuration file");
}

TEST(Config, ShippedExamplesLoad) {
  for (const char* name : {"pcap-inline.yaml", "nic-inline.yaml", "afpacket-inline.yaml", "lb-afpacket.yaml"}) {
    auto r = load_file(std::string(CONFIG_EXAMPLES_DIR) + "/" + name);
    EXPECT_TRUE(r.ok()) << name << ": " << (r.ok() ? "" : r.error().message);
  }
}


// ---- mode lb ----

// Every lb key, both gateway forms, an IPv6 VIP, a backend behind the gateway,
// and tracking after lb (the order of sections does not matter).
const std::string kGoodLb = R"(mode: lb
lcores:
  main: 0
  workers: [1]
ports:
  - name: clients
    devargs: net_null0
    addresses: [198.18.1.1/24, "2001:db8:1::1/64"]
    gateway: 198.18.1.254
  - name: backends
    devargs: net_null1
    addresses: [198.18.2.1/24, "2001:db8:2::1/64"]
    gateway: ["2001:db8:2::fe"]
lb:
  unknown_flows: strict
  arp: {retry_ms: 500, retries: 5, reachable_ms: 30000}
  neighbours:
    - {address: 198.18.2.11, mac: "02:00:00:00:02:0B", port: backends}
  vips:
    - name: web
      address: 198.18.100.1
      port: 80
      table_size: 251
      backends:
        - {address: 198.18.2.11, port: 8080, weight: 3, state: draining}
        - {address: 198.18.2.12, port: 8080}
        - {address: 203.0.113.7, port: 8443, state: down}
    - address: "2001:db8:100::1"
      port: 443
      backends:
        - {address: "2001:db8:2::11", port: 443}
    - address: 198.18.100.2
      port: 22
      backends: []
tracking:
  pickup: false
)";

IpAddr v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  IpAddr ip;
  ip.family = 4;
  ip.bytes[0] = a;
  ip.bytes[1] = b;
  ip.bytes[2] = c;
  ip.bytes[3] = d;
  return ip;
}

// 2001:db8:NET::HOST
IpAddr v6(std::uint16_t net, std::uint16_t host) {
  IpAddr ip;
  ip.family = 6;
  ip.bytes[0] = 0x20;
  ip.bytes[1] = 0x01;
  ip.bytes[2] = 0x0d;
  ip.bytes[3] = 0xb8;
  ip.bytes[4] = static_cast<std::uint8_t>(net >> 8);
  ip.bytes[5] = static_cast<std::uint8_t>(net);
  ip.bytes[14] = static_cast<std::uint8_t>(host >> 8);
  ip.bytes[15] = static_cast<std::uint8_t>(host);
  return ip;
}

TEST(ConfigLb, GoodFileLoads) {
  using namespace ctlb::config;
  auto r = load_string(kGoodLb, "test.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = r.value();
  EXPECT_EQ(c.mode, Mode::Lb);
  ASSERT_EQ(c.ports.size(), 2u);
  const Port& clients = c.ports[0];
  EXPECT_EQ(clients.name, "clients");
  EXPECT_EQ(clients.peer, "");
  ASSERT_EQ(clients.addresses.size(), 2u);
  EXPECT_EQ(clients.addresses[0].addr, v4(198, 18, 1, 1));
  EXPECT_EQ(clients.addresses[0].len, 24);
  EXPECT_EQ(clients.addresses[1].addr, v6(1, 1));
  EXPECT_EQ(clients.addresses[1].len, 64);
  EXPECT_EQ(clients.gateway_v4, v4(198, 18, 1, 254));
  EXPECT_EQ(clients.gateway_v6, IpAddr{});
  const Port& backends = c.ports[1];
  ASSERT_EQ(backends.addresses.size(), 2u);
  EXPECT_EQ(backends.addresses[0].addr, v4(198, 18, 2, 1));
  EXPECT_EQ(backends.addresses[1].addr, v6(2, 1));
  EXPECT_EQ(backends.gateway_v4, IpAddr{});
  EXPECT_EQ(backends.gateway_v6, v6(2, 0xfe));

  const Lb& lb = c.lb;
  EXPECT_EQ(lb.unknown_flows, UnknownFlows::Strict);
  EXPECT_FALSE(c.tracking.tcp.loose);
  EXPECT_EQ(lb.arp.retry_ms, 500u);
  EXPECT_EQ(lb.arp.retries, 5u);
  EXPECT_EQ(lb.arp.reachable_ms, 30000u);
  ASSERT_EQ(lb.neighbours.size(), 1u);
  EXPECT_EQ(lb.neighbours[0].address, v4(198, 18, 2, 11));
  EXPECT_EQ(lb.neighbours[0].mac, (Mac{0x02, 0, 0, 0, 0x02, 0x0b}));
  EXPECT_EQ(lb.neighbours[0].port, "backends");

  ASSERT_EQ(lb.vips.size(), 3u);
  const Vip& web = lb.vips[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.address, v4(198, 18, 100, 1));
  EXPECT_EQ(web.port, 80);
  EXPECT_EQ(web.table_size, 251u);
  ASSERT_EQ(web.backends.size(), 3u);
  EXPECT_EQ(web.backends[0].address, v4(198, 18, 2, 11));
  EXPECT_EQ(web.backends[0].port, 8080);
  EXPECT_EQ(web.backends[0].weight, 3u);
  EXPECT_EQ(web.backends[0].state, BackendState::Draining);
  EXPECT_EQ(web.backends[1].address, v4(198, 18, 2, 12));
  EXPECT_EQ(web.backends[1].weight, 1u);
  EXPECT_EQ(web.backends[1].state, BackendState::Active);
  EXPECT_EQ(web.backends[2].address, v4(203, 0, 113, 7));
  EXPECT_EQ(web.backends[2].port, 8443);
  EXPECT_EQ(web.backends[2].state, BackendState::Down);

  const Vip& https6 = lb.vips[1];
  EXPECT_EQ(https6.name, "[2001:db8:100::1]:443");
  EXPECT_EQ(https6.address, v6(0x100, 1));
  EXPECT_EQ(https6.port, 443);
  EXPECT_EQ(https6.table_size, 65537u);
  ASSERT_EQ(https6.backends.size(), 1u);
  EXPECT_EQ(https6.backends[0].address, v6(2, 0x11));
  EXPECT_EQ(https6.backends[0].port, 443);

  const Vip& ssh = lb.vips[2];
  EXPECT_EQ(ssh.name, "198.18.100.2:22");
  EXPECT_TRUE(ssh.backends.empty());
}

TEST(ConfigLb, DefaultsAndPickupFollowsUnknownFlows) {
  auto r = load_string(replace(replace(replace(kGoodLb, "  unknown_flows: strict\n", ""),
                                       "  arp: {retry_ms: 500, retries: 5, reachable_ms: 30000}\n", ""),
                               "tracking:\n  pickup: false\n", ""),
                       "test.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& c = r.value();
  EXPECT_EQ(c.lb.unknown_flows, ctlb::config::UnknownFlows::Loose);
  EXPECT_TRUE(c.tracking.tcp.loose);
  EXPECT_EQ(c.lb.arp.retry_ms, 1000u);
  EXPECT_EQ(c.lb.arp.retries, 3u);
  EXPECT_EQ(c.lb.arp.reachable_ms, 60000u);
}

TEST(ConfigLb, ExampleLoads) {
  using namespace ctlb::config;
  auto r = load_file(std::string(CONFIG_EXAMPLES_DIR) + "/lb-afpacket.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = r.value();
  EXPECT_EQ(c.mode, Mode::Lb);
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].gateway_v4, v4(198, 18, 1, 254));
  ASSERT_EQ(c.lb.vips.size(), 1u);
  const Vip& vip = c.lb.vips[0];
  EXPECT_EQ(vip.address, v4(198, 18, 100, 1));
  EXPECT_EQ(vip.port, 80);
  ASSERT_EQ(vip.backends.size(), 3u);
  for (std::uint8_t i = 0; i < 3; ++i) {
    EXPECT_EQ(vip.backends[i].address, v4(198, 18, 2, static_cast<std::uint8_t>(11 + i)));
    EXPECT_EQ(vip.backends[i].port, 8080);
  }
  EXPECT_TRUE(c.tracking.tcp.loose);
}

TEST(ConfigLb, LbSectionRequiredInModeLb) {
  const auto at = kGoodLb.find("lb:\n");
  const auto end = kGoodLb.find("tracking:\n");
  std::string yaml = kGoodLb;
  yaml.erase(at, end - at);
  EXPECT_EQ(error_of(yaml), "test.yaml:1:1: lb: missing, expected a mapping with vips (mode lb)");
}

TEST(ConfigLb, LbSectionOnlyInModeLb) {
  EXPECT_EQ(error_of(kGood + "lb:\n  vips: []\n"),
            "test.yaml:20:3: lb: expected no lb section in mode inline (it is only in mode lb) (found a mapping)");
}

TEST(ConfigLb, AddressesOnlyInModeLb) {
  EXPECT_EQ(error_of(replace(kGood, "    peer: b\n", "    peer: b\n    addresses: [198.18.1.1/24]\n")),
            "test.yaml:9:16: ports[0].addresses: expected no addresses in mode inline (addresses and gateway are "
            "only in mode lb) (found a list)");
}

TEST(ConfigLb, GatewayOnlyInModeLb) {
  EXPECT_EQ(error_of(replace(kGood, "    peer: b\n", "    peer: b\n    gateway: 198.18.1.254\n")),
            "test.yaml:9:14: ports[0].gateway: expected no gateway in mode inline (addresses and gateway are only "
            "in mode lb) (found '198.18.1.254')");
}

TEST(ConfigLb, PeerRejectedInModeLb) {
  EXPECT_EQ(error_of(replace(kGoodLb, "    devargs: net_null1\n", "    devargs: net_null1\n    peer: clients\n")),
            "test.yaml:12:11: ports[1].peer: expected no peer in mode lb (it forwards by address, not to a peer "
            "port) (found 'clients')");
}

TEST(ConfigLb, PortNeedsAddresses) {
  EXPECT_EQ(error_of(replace(kGoodLb, "    addresses: [198.18.2.1/24, \"2001:db8:2::1/64\"]\n", "")),
            "test.yaml:10:5: ports[1].addresses: missing, expected a list of the port's own addresses with prefix "
            "lengths, like [198.18.1.1/24]");
  EXPECT_EQ(error_of(replace(kGoodLb, "[198.18.2.1/24, \"2001:db8:2::1/64\"]", "[]")),
            "test.yaml:12:16: ports[1].addresses: expected at least one address (mode lb: the port's own "
            "addresses) (found a list)");
}

TEST(ConfigLb, BadAddress) {
  EXPECT_EQ(error_of(replace(kGoodLb, "address: 198.18.100.1", "address: 198.18.100.256")),
            "test.yaml:21:16: lb.vips[0].address: expected an IPv4 or IPv6 address (found '198.18.100.256')");
  EXPECT_EQ(error_of(replace(kGoodLb, "gateway: 198.18.1.254", "gateway: gw.example")),
            "test.yaml:9:14: ports[0].gateway: expected an IPv4 or IPv6 address (found 'gw.example')");
}

TEST(ConfigLb, BadPrefix) {
  EXPECT_EQ(error_of(replace(kGoodLb, "[198.18.1.1/24,", "[198.18.1.1,")),
            "test.yaml:8:17: ports[0].addresses[0]: expected an address with its prefix length, like "
            "198.18.1.1/24 or 2001:db8::1/64 (found '198.18.1.1')");
  EXPECT_EQ(error_of(replace(kGoodLb, "[198.18.1.1/24,", "[198.18.1.1/33,")),
            "test.yaml:8:17: ports[0].addresses[0]: expected an IPv4 address with a prefix length in 0..32 "
            "(found '198.18.1.1/33')");
  EXPECT_EQ(error_of(replace(kGoodLb, "\"2001:db8:1::1/64\"", "\"2001:db8:1::1/129\"")),
            "test.yaml:8:32: ports[0].addresses[1]: expected an IPv6 address with a prefix length in 0..128 "
            "(found '2001:db8:1::1/129')");
}

TEST(ConfigLb, BadMac) {
  EXPECT_EQ(error_of(replace(kGoodLb, "\"02:00:00:00:02:0B\"", "\"02:00:00:00:02\"")),
            "test.yaml:18:35: lb.neighbours[0].mac: expected a MAC address like 02:00:00:00:02:0b "
            "(found '02:00:00:00:02')");
  EXPECT_EQ(error_of(replace(kGoodLb, "\"02:00:00:00:02:0B\"", "\"02-00-00-00-02-0B\"")),
            "test.yaml:18:35: lb.neighbours[0].mac: expected a MAC address like 02:00:00:00:02:0b "
            "(found '02-00-00-00-02-0B')");
  EXPECT_EQ(error_of(replace(kGoodLb, "\"02:00:00:00:02:0B\"", "\"02:00:00:00:02:0g\"")),
            "test.yaml:18:35: lb.neighbours[0].mac: expected a MAC address like 02:00:00:00:02:0b "
            "(found '02:00:00:00:02:0g')");
}

TEST(ConfigLb, NeighbourMacMustBeUnicast) {
  EXPECT_EQ(error_of(replace(kGoodLb, "\"02:00:00:00:02:0B\"", "\"01:00:5e:00:00:01\"")),
            "test.yaml:18:35: lb.neighbours[0].mac: expected a unicast MAC address (not multicast, broadcast or "
            "zero) (found '01:00:5e:00:00:01')");
  EXPECT_EQ(error_of(replace(kGoodLb, "\"02:00:00:00:02:0B\"", "\"ff:ff:ff:ff:ff:ff\"")),
            "test.yaml:18:35: lb.neighbours[0].mac: expected a unicast MAC address (not multicast, broadcast or "
            "zero) (found 'ff:ff:ff:ff:ff:ff')");
}

TEST(ConfigLb, AddressConfiguredTwice) {
  EXPECT_EQ(error_of(replace(kGoodLb, "[198.18.2.1/24,", "[198.18.1.1/16,")),
            "test.yaml:12:17: ports[1].addresses[0]: expected an address not already configured "
            "(ports[0].addresses[0] has it) (found '198.18.1.1/16')");
}

TEST(ConfigLb, VipIsNotAPortAddress) {
  EXPECT_EQ(error_of(replace(kGoodLb, "address: 198.18.100.2", "address: 198.18.2.1")),
            "test.yaml:32:16: lb.vips[2].address: expected a VIP address, not one of the ports' own addresses "
            "(found '198.18.2.1')");
}

TEST(ConfigLb, OneGatewayPerFamily) {
  EXPECT_EQ(error_of(replace(kGoodLb, "[\"2001:db8:2::fe\"]", "[\"2001:db8:2::fe\", 198.18.2.254]")),
            "test.yaml:13:33: ports[1].gateway[1]: expected at most one IPv4 gateway over all ports "
            "(ports[0].gateway is one) (found '198.18.2.254')");
  EXPECT_EQ(error_of(replace(kGoodLb, "[\"2001:db8:2::fe\"]", "[\"2001:db8:2::fe\", \"2001:db8:2::fd\"]")),
            "test.yaml:13:33: ports[1].gateway[1]: expected at most one IPv6 gateway over all ports "
            "(ports[1].gateway[0] is one) (found '2001:db8:2::fd')");
}

TEST(ConfigLb, GatewayInsideThePortsPrefix) {
  EXPECT_EQ(error_of(replace(kGoodLb, "gateway: 198.18.1.254", "gateway: 198.18.2.254")),
            "test.yaml:9:14: ports[0].gateway: expected an address inside one of this port's IPv4 prefixes "
            "(found '198.18.2.254')");
  EXPECT_EQ(error_of(replace(kGoodLb, "gateway: 198.18.1.254", "gateway: 198.18.1.1")),
            "test.yaml:9:14: ports[0].gateway: expected a next hop, not one of the port's own addresses "
            "(found '198.18.1.1')");
}

TEST(ConfigLb, DuplicateVip) {
  EXPECT_EQ(error_of(replace(kGoodLb, "address: 198.18.100.2\n      port: 22",
                             "address: 198.18.100.1\n      port: 80")),
            "test.yaml:32:16: lb.vips[2].address: expected a VIP address and port not already used (lb.vips[0] is "
            "198.18.100.1:80) (found '198.18.100.1')");
}

TEST(ConfigLb, DuplicateVipName) {
  EXPECT_EQ(error_of(replace(kGoodLb, "    - address: 198.18.100.2\n",
                             "    - name: web\n      address: 198.18.100.2\n")),
            "test.yaml:32:13: lb.vips[2].name: expected a VIP name not already used (lb.vips[0] has it) "
            "(found 'web')");
  // A name that looks like ADDRESS:PORT could name another VIP: refused.
  EXPECT_EQ(error_of(replace(kGoodLb, "name: web", "name: 198.18.100.2:22")),
            "test.yaml:20:13: lb.vips[0].name: expected a name of 1..63 characters without spaces or ':' "
            "(ADDRESS:PORT already names every VIP) (found '198.18.100.2:22')");
  // Longer than the shared state keeps (63): refused, not cut.
  const std::string long_name(64, 'n');
  EXPECT_EQ(error_of(replace(kGoodLb, "name: web", "name: " + long_name)),
            "test.yaml:20:13: lb.vips[0].name: expected a name of 1..63 characters without spaces or ':' "
            "(ADDRESS:PORT already names every VIP) (found '" + long_name + "')");
  EXPECT_TRUE(load_string(replace(kGoodLb, "name: web", "name: " + std::string(63, 'n')), "test.yaml"));
}

// VIPs or backends beyond the limits, appended to kGoodLb's list of VIPs.
std::string with_extra_vips(std::size_t vips, std::size_t backends_each) {
  std::string extra;
  for (std::size_t i = 0; i < vips; ++i) {
    extra += "    - address: 198.18.101.1\n      port: " + std::to_string(1000 + i) + "\n";
    if (backends_each == 0) {
      extra += "      backends: []\n";
      continue;
    }
    extra += "      backends:\n";
    for (std::size_t b = 0; b < backends_each; ++b)
      extra += "        - {address: 198.18.2.20, port: " + std::to_string(1 + b) + "}\n";
  }
  return replace(kGoodLb, "tracking:\n", extra + "tracking:\n");
}

TEST(ConfigLb, AtMostMaxVips) {
  ASSERT_TRUE(load_string(with_extra_vips(ctlb::config::kMaxVips - 3, 0), "test.yaml").ok());
  EXPECT_EQ(error_of(with_extra_vips(ctlb::config::kMaxVips - 2, 0)),
            "test.yaml:218:7: lb.vips[64]: expected at most 64 VIPs (found a mapping)");
}

TEST(ConfigLb, AtMostMaxBackendsOverAllVips) {
  // kGoodLb has 4 backends; 4 more VIPs of 255 make 1024. With 256 each, the
  // 1025th is the 253rd of the last VIP.
  ASSERT_TRUE(load_string(with_extra_vips(4, 255), "test.yaml").ok());
  EXPECT_EQ(error_of(with_extra_vips(4, 256)),
            "test.yaml:1067:11: lb.vips[6].backends[252]: expected at most 1024 backends over all VIPs "
            "(found a mapping)");
}

TEST(ConfigLb, BackendHasTheVipsFamily) {
  EXPECT_EQ(error_of(replace(kGoodLb, "{address: 198.18.2.12, port: 8080}",
                             "{address: \"2001:db8:2::12\", port: 8080}")),
            "test.yaml:26:21: lb.vips[0].backends[1].address: expected an IPv4 address, the VIP's family "
            "(found '2001:db8:2::12')");
  EXPECT_EQ(error_of(replace(kGoodLb, "{address: \"2001:db8:2::11\", port: 443}", "{address: 198.18.2.11, port: 443}")),
            "test.yaml:31:21: lb.vips[1].backends[0].address: expected an IPv6 address, the VIP's family "
            "(found '198.18.2.11')");
}

TEST(ConfigLb, DuplicateBackend) {
  EXPECT_EQ(error_of(replace(kGoodLb, "{address: 198.18.2.12, port: 8080}", "{address: 198.18.2.11, port: 8080}")),
            "test.yaml:26:21: lb.vips[0].backends[1].address: expected a backend not already in this VIP's pool "
            "(backends[0] is 198.18.2.11:8080) (found '198.18.2.11')");
  // The same address on another port is another backend.
  EXPECT_TRUE(load_string(replace(kGoodLb, "{address: 198.18.2.12, port: 8080}", "{address: 198.18.2.11, port: 8081}"),
                          "test.yaml")
                  .ok());
}

TEST(ConfigLb, BackendNeedsAddressAndPort) {
  EXPECT_EQ(error_of(replace(kGoodLb, "{address: 198.18.2.12, port: 8080}", "{port: 8080}")),
            "test.yaml:26:11: lb.vips[0].backends[1].address: missing, expected the backend's IPv4 or IPv6 address");
  EXPECT_EQ(error_of(replace(kGoodLb, "{address: 198.18.2.12, port: 8080}", "{address: 198.18.2.12}")),
            "test.yaml:26:11: lb.vips[0].backends[1].port: missing, expected the backend's TCP port");
}

TEST(ConfigLb, BackendWeightAndState) {
  EXPECT_EQ(error_of(replace(kGoodLb, "weight: 3", "weight: 0")),
            "test.yaml:25:54: lb.vips[0].backends[0].weight: expected an integer in 1..65535 (found '0')");
  EXPECT_EQ(error_of(replace(kGoodLb, "state: draining", "state: drained")),
            "test.yaml:25:64: lb.vips[0].backends[0].state: expected active | draining | down (found 'drained')");
}

TEST(ConfigLb, TableSizeIsAPrimeInRange) {
  EXPECT_EQ(error_of(replace(kGoodLb, "table_size: 251", "table_size: 65536")),
            "test.yaml:23:19: lb.vips[0].table_size: expected a prime in 7..1048573, like 65537 (found '65536')");
  EXPECT_EQ(error_of(replace(kGoodLb, "table_size: 251", "table_size: 5")),
            "test.yaml:23:19: lb.vips[0].table_size: expected a prime in 7..1048573, like 65537 (found '5')");
  EXPECT_EQ(error_of(replace(kGoodLb, "table_size: 251", "table_size: 1048583")),  // prime, too large
            "test.yaml:23:19: lb.vips[0].table_size: expected a prime in 7..1048573, like 65537 (found '1048583')");
  EXPECT_TRUE(load_string(replace(kGoodLb, "table_size: 251", "table_size: 1048573"), "test.yaml").ok());
  EXPECT_TRUE(load_string(replace(kGoodLb, "table_size: 251", "table_size: 7"), "test.yaml").ok());
}

TEST(ConfigLb, BackendMustBeReachable) {
  // 203.0.113.7 is reachable only through the IPv4 gateway.
  EXPECT_EQ(error_of(replace(kGoodLb, "    gateway: 198.18.1.254\n", "")),
            "test.yaml:26:21: lb.vips[0].backends[2].address: expected an address inside a port's prefix, or a "
            "gateway for IPv4 (found '203.0.113.7')");
  // 2001:db8:3::11 is outside both IPv6 prefixes and there is no IPv6 gateway.
  EXPECT_EQ(error_of(replace(replace(kGoodLb, "    gateway: [\"2001:db8:2::fe\"]\n", ""), "\"2001:db8:2::11\"",
                             "\"2001:db8:3::11\"")),
            "test.yaml:30:21: lb.vips[1].backends[0].address: expected an address inside a port's prefix, or a "
            "gateway for IPv6 (found '2001:db8:3::11')");
}

TEST(ConfigLb, BackendIsNotAPortAddress) {
  EXPECT_EQ(error_of(replace(kGoodLb, "{address: 198.18.2.12, port: 8080}", "{address: 198.18.2.1, port: 8080}")),
            "test.yaml:26:21: lb.vips[0].backends[1].address: expected a backend's address, not one of the ports' "
            "own addresses (found '198.18.2.1')");
}

TEST(ConfigLb, NeighbourPortMustExist) {
  EXPECT_EQ(error_of(replace(kGoodLb, "port: backends}", "port: servers}")),
            "test.yaml:18:62: lb.neighbours[0].port: expected the name of a configured port (found 'servers')");
}

TEST(ConfigLb, NeighbourInsideItsPortsPrefix) {
  EXPECT_EQ(error_of(replace(kGoodLb, "port: backends}", "port: clients}")),
            "test.yaml:18:17: lb.neighbours[0].address: expected an address inside one of the IPv4 prefixes of "
            "port clients (found '198.18.2.11')");
  EXPECT_EQ(error_of(replace(kGoodLb, "{address: 198.18.2.11, mac:", "{address: 198.18.2.1, mac:")),
            "test.yaml:18:17: lb.neighbours[0].address: expected a neighbour's address, not one of the ports' own "
            "addresses (found '198.18.2.1')");
}

TEST(ConfigLb, NeighbourListedTwice) {
  const std::string line = "    - {address: 198.18.2.11, mac: \"02:00:00:00:02:0B\", port: backends}\n";
  EXPECT_EQ(error_of(replace(kGoodLb, line, line + line)),
            "test.yaml:19:17: lb.neighbours[1].address: expected an address not already a static neighbour on this "
            "port (lb.neighbours[0] is) (found '198.18.2.11')");
}

TEST(ConfigLb, ArpRanges) {
  EXPECT_EQ(error_of(replace(kGoodLb, "retry_ms: 500", "retry_ms: 5")),
            "test.yaml:16:19: lb.arp.retry_ms: expected an integer in 10..60000 (found '5')");
  EXPECT_EQ(error_of(replace(kGoodLb, "retries: 5", "retries: 11")),
            "test.yaml:16:33: lb.arp.retries: expected an integer in 1..10 (found '11')");
  EXPECT_EQ(error_of(replace(kGoodLb, "reachable_ms: 30000", "reachable_ms: 3600001")),
            "test.yaml:16:50: lb.arp.reachable_ms: expected an integer in 1000..3600000 (found '3600001')");
}

TEST(ConfigLb, UnknownFlowsIsLooseOrStrict) {
  EXPECT_EQ(error_of(replace(kGoodLb, "unknown_flows: strict", "unknown_flows: drop")),
            "test.yaml:15:18: lb.unknown_flows: expected loose | strict (found 'drop')");
}

TEST(ConfigLb, AtLeastOneVip) {
  const auto at = kGoodLb.find("    - name: web\n");
  const auto end = kGoodLb.find("tracking:\n");
  std::string yaml = kGoodLb;
  yaml.replace(at, end - at, "");
  EXPECT_EQ(error_of(replace(yaml, "  vips:\n", "  vips: []\n")),
            "test.yaml:19:9: lb.vips: expected at least one VIP (found a list)");
}

TEST(ConfigLb, PickupMustMatchUnknownFlows) {
  // tracking after lb
  EXPECT_EQ(error_of(replace(kGoodLb, "pickup: false", "pickup: true")),
            "test.yaml:36:11: tracking.pickup: expected false, or no pickup: in mode lb it follows "
            "lb.unknown_flows (strict) (found 'true')");
  // tracking before lb, unknown_flows by default loose
  std::string yaml = replace(replace(kGoodLb, "tracking:\n  pickup: false\n", ""), "  unknown_flows: strict\n", "");
  yaml = replace(yaml, "lb:\n", "tracking:\n  pickup: false\nlb:\n");
  EXPECT_EQ(error_of(yaml),
            "test.yaml:15:11: tracking.pickup: expected true, or no pickup: in mode lb it follows "
            "lb.unknown_flows (loose) (found 'false')");
}

// ---- What only the host can refuse (config/host_check.hpp), with injected
// facts: the same one-line format, naming the key's line in the file. ----

namespace host {

using ctlb::config::check_host;
using ctlb::config::Config;
using ctlb::config::HostFacts;
using ctlb::config::memory_need;

Config loaded(const std::string& yaml) {
  auto r = load_string(yaml, "test.yaml");
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? r.value() : Config{};
}

// Two CPUs, kGood's PCI device present, 1 GiB of free hugepages.
HostFacts small_host() {
  HostFacts h;
  h.cpus = {0, 1, 2};
  h.max_lcores = 128;
  h.pci_devices = std::set<std::string>{"0000:00:1f.0", "0000:3b:00.1"};
  h.hugepage_free_bytes = 1ull << 30;
  return h;
}

std::string host_error(const std::string& yaml, const HostFacts& facts) {
  const auto e = check_host(loaded(yaml), facts);
  EXPECT_TRUE(e.has_value()) << "expected a host error for:\n" << yaml;
  return e ? e->message : "";
}

TEST(ConfigHost, GoodConfigPasses) {
  const auto e = check_host(loaded(kGood), small_host());
  EXPECT_FALSE(e.has_value()) << e->message;
}

TEST(ConfigHost, LcoreNotAvailable) {
  HostFacts h = small_host();
  h.cpus = {0, 1};
  EXPECT_EQ(host_error(kGood, h),
            "test.yaml:4:16: lcores.workers[1]: expected an lcore this process may run on (CPUs 0-1) (found '2')");
  h.cpus = {1, 2, 3, 5};
  EXPECT_EQ(host_error(kGood, h),
            "test.yaml:3:9: lcores.main: expected an lcore this process may run on (CPUs 1-3,5) (found '0')");
  h.cpus = {0, 2};
  EXPECT_EQ(host_error(kGood, h),
            "test.yaml:4:13: lcores.workers[0]: expected an lcore this process may run on (CPUs 0,2) (found '1')");
}

TEST(ConfigHost, LcoreAboveRteMaxLcore) {
  HostFacts h = small_host();
  for (std::uint32_t cpu = 0; cpu < 256; ++cpu) h.cpus.push_back(cpu);
  EXPECT_EQ(host_error(replace(kGood, "workers: [1, 2]", "workers: [1, 200]"), h),
            "test.yaml:4:16: lcores.workers[1]: expected an lcore id below 128, this DPDK's RTE_MAX_LCORE "
            "(found '200')");
}

// With lcores.map (more lcores than CPUs, as tests run), the CPUs the
// mapping names are checked, not the lcore ids.
TEST(ConfigHost, LcoreMapChecksItsCpus) {
  HostFacts h = small_host();
  h.cpus = {0, 1};
  const std::string mapped = replace(kGood, "workers: [1, 2]", "workers: [1, 2, 3]\n  map: \"0@0,(1-3)@1\"");
  EXPECT_FALSE(check_host(loaded(mapped), h).has_value());
  EXPECT_EQ(host_error(replace(mapped, "0@0,(1-3)@1", "0@0,1@1,(2-3)@(1,7)"), h),
            "test.yaml:5:8: lcores.map: expected a mapping onto CPUs this process may run on (CPUs 0-1; CPU 7 "
            "is not one) (found '0@0,1@1,(2-3)@(1,7)')");
  h.cpus = {1};
  EXPECT_EQ(host_error(mapped, h),
            "test.yaml:5:8: lcores.map: expected a mapping onto CPUs this process may run on (CPU 1; CPU 0 is "
            "not one) (found '0@0,(1-3)@1')");
}

TEST(ConfigHost, PortNotFound) {
  HostFacts h = small_host();
  h.pci_devices = std::set<std::string>{"0000:00:1f.0", "0000:3b:00.0"};
  EXPECT_EQ(host_error(kGood, h),
            "test.yaml:10:10: ports[1].pci: expected a PCI device present on this host (found '0000:3b:00.1')");
  h.pci_devices.reset();  // sysfs unreadable: the EAL will tell
  EXPECT_FALSE(check_host(loaded(kGood), h).has_value());
}

TEST(ConfigHost, MemoryNeed) {
  const Config c = loaded(replace(kGood, "rx_descriptors: 2048", "rx_descriptors: 2048\nmempool:\n  mbufs: 4095"));
  const auto n = memory_need(c);
  EXPECT_EQ(n.workers, 2u);
  EXPECT_EQ(n.table_v4, ctlb::flow::FlowTable<ctlb::flow::V4>::bytes_needed(4096));
  EXPECT_EQ(n.table_v6, ctlb::flow::FlowTable<ctlb::flow::V6>::bytes_needed(65536));
  // 4095 x (a 64-byte header + the 128-byte mbuf and its 2176 bytes of data
  // room) + a ring of 4096 pointers.
  EXPECT_EQ(n.mbufs, 4095u * (64 + 128 + 2176) + 4096u * 8);
  EXPECT_EQ(n.lb, 0u);
  EXPECT_EQ(n.total(), 2 * (n.table_v4 + n.table_v6) + n.mbufs);
}

std::uint64_t mib_up(std::uint64_t bytes) { return (bytes + (1u << 20) - 1) >> 20; }

// What the line shows: each part in MiB rounded up, and their sum.
std::uint64_t shown_total(const ctlb::config::MemoryNeed& n) {
  return n.workers * mib_up(n.table_v4 + n.table_v6) + mib_up(n.mbufs) + mib_up(n.lb);
}

TEST(ConfigHost, CapacityTooLargeForMemory) {
  const std::string yaml = replace(kGood, "capacity_v4: 4096", "capacity_v4: 134217728");
  const auto n = memory_need(loaded(yaml));
  const std::uint64_t tables = n.table_v4 + n.table_v6;
  ASSERT_GT(tables, 8ull << 30);  // 128 Mi flows of 64 bytes at least
  EXPECT_EQ(host_error(yaml, small_host()),
            "test.yaml:14:16: tracking.capacity_v4: expected a capacity whose flow tables fit in the free hugepage "
            "memory (2 workers x " + std::to_string(mib_up(tables)) + " MiB of flow tables + " +
                std::to_string(mib_up(n.mbufs)) + " MiB of mbufs = " + std::to_string(shown_total(n)) +
                " MiB > 1024 MiB free) (found '134217728')");
  // Fits: no error. No hugepages to check against (--no-huge): no error.
  HostFacts big = small_host();
  big.hugepage_free_bytes = n.total();
  EXPECT_FALSE(check_host(loaded(yaml), big).has_value());
  big.hugepage_free_bytes = n.total() - 1;
  EXPECT_TRUE(check_host(loaded(yaml), big).has_value());
  big.hugepage_free_bytes.reset();
  EXPECT_FALSE(check_host(loaded(yaml), big).has_value());
}

TEST(ConfigHost, DefaultCapacityTooLargeForMemory) {
  // capacity_v6 not in the file: its default (65536) is blamed where its
  // section starts, and the line says it is the default.
  HostFacts h = small_host();
  const std::string yaml = replace(replace(kGood, "capacity_v4: 4096", "capacity_v4: 1024"), "rx_descriptors: 2048",
                                   "rx_descriptors: 2048\nmempool:\n  mbufs: 1023");
  const auto n = memory_need(loaded(yaml));
  h.hugepage_free_bytes = 1u << 20;
  EXPECT_EQ(host_error(yaml, h),
            "test.yaml:16:3: tracking.capacity_v6: expected a capacity whose flow tables fit in the free hugepage "
            "memory (2 workers x " + std::to_string(mib_up(n.table_v4 + n.table_v6)) + " MiB of flow tables + " +
                std::to_string(mib_up(n.mbufs)) + " MiB of mbufs = " + std::to_string(shown_total(n)) +
                " MiB > 1 MiB free) (found nothing, the default is 65536)");
}

TEST(ConfigHost, MbufsTooManyForMemory) {
  const std::string yaml =
      replace(kGood, "rx_descriptors: 2048", "rx_descriptors: 2048\nmempool:\n  mbufs: 1048575");
  const auto n = memory_need(loaded(yaml));
  EXPECT_EQ(host_error(yaml, small_host()),
            "test.yaml:14:10: mempool.mbufs: expected a number of mbufs that fits in the free hugepage memory "
            "(2 workers x " + std::to_string(mib_up(n.table_v4 + n.table_v6)) + " MiB of flow tables + " +
                std::to_string(mib_up(n.mbufs)) + " MiB of mbufs = " + std::to_string(shown_total(n)) +
                " MiB > 1024 MiB free) (found '1048575')");
}

TEST(ConfigHost, LbTablesTooLargeForMemory) {
  const std::string yaml = replace(replace(kGoodLb, "table_size: 251", "table_size: 1048573"), "tracking:\n",
                                   "mempool:\n  mbufs: 1023\ntracking:\n  capacity_v4: 1024\n  capacity_v6: 1024\n");
  const auto n = memory_need(loaded(yaml));
  EXPECT_GT(n.lb, 4u << 20);  // two generations of 2-byte Maglev slots
  HostFacts h = small_host();
  h.cpus = {0, 1};
  h.hugepage_free_bytes = 4u << 20;
  EXPECT_EQ(host_error(yaml, h),
            "test.yaml:23:19: lb.vips[0].table_size: expected a table size that fits in the free hugepage memory "
            "(1 worker x " + std::to_string(mib_up(n.table_v4 + n.table_v6)) + " MiB of flow tables + " +
                std::to_string(mib_up(n.mbufs)) + " MiB of mbufs + " + std::to_string(mib_up(n.lb)) +
                " MiB of LB state = " + std::to_string(shown_total(n)) + " MiB > 4 MiB free) (found '1048573')");
}

TEST(ConfigHost, KeyErrorOfADefault) {
  Config c = loaded(kGood);
  EXPECT_EQ(ctlb::config::key_error(c, "mempool.mbufs", "something", "16383"),
            "test.yaml: mempool.mbufs: expected something (found nothing, the default is 16383)");
  EXPECT_EQ(ctlb::config::key_error(c, "ports[1].pci", "something", "0000:3b:00.1"),
            "test.yaml:10:10: ports[1].pci: expected something (found '0000:3b:00.1')");
}

// ports[i].mtu: 1500 unless set; 68..65535 (the device's own limit is the
// dataplane's to check, at start).
TEST(Config, PortMtu) {
  const Config c = loaded(replace(kGood, "rx_descriptors: 2048", "rx_descriptors: 2048\n    mtu: 9000"));
  EXPECT_EQ(c.ports[0].mtu, 1500);
  EXPECT_EQ(c.ports[1].mtu, 9000);
  EXPECT_EQ(loaded(replace(kGood, "peer: b", "peer: b\n    mtu: 68")).ports[0].mtu, 68);
  EXPECT_EQ(loaded(replace(kGood, "peer: b", "peer: b\n    mtu: 65535")).ports[0].mtu, 65535);
  const std::string expected =
      "expected an MTU in 68..65535 (bytes of IP packet per Ethernet frame, like 1500 or 9000; the device's own "
      "limit is checked at start)";
  EXPECT_EQ(error_of(replace(kGood, "peer: b", "peer: b\n    mtu: 67")),
            "test.yaml:9:10: ports[0].mtu: " + expected + " (found '67')");
  EXPECT_EQ(error_of(replace(kGood, "peer: b", "peer: b\n    mtu: 65536")),
            "test.yaml:9:10: ports[0].mtu: " + expected + " (found '65536')");
  EXPECT_EQ(error_of(replace(kGood, "rx_descriptors: 2048", "rx_descriptors: 2048\n    mtu: jumbo")),
            "test.yaml:13:10: ports[1].mtu: " + expected + " (found 'jumbo')");
  EXPECT_EQ(error_of(replace(kGood, "rx_descriptors: 2048", "rx_descriptors: 2048\n    mtu: -1")),
            "test.yaml:13:10: ports[1].mtu: " + expected + " (found '-1')");
  EXPECT_EQ(error_of(replace(kGood, "rx_descriptors: 2048", "rx_descriptors: 2048\n    mtu: [9000]")),
            "test.yaml:13:10: ports[1].mtu: " + expected + " (found a list)");
  // How the dataplane names a port's MTU the file leaves at its default.
  EXPECT_EQ(ctlb::config::key_error(loaded(kGood), "ports[1].mtu", "at most 1000", "1500"),
            "test.yaml:9:5: ports[1].mtu: expected at most 1000 (found nothing, the default is 1500)");
}

// nic-inline.yaml's commented jumbo example, uncommented, loads.
TEST(Config, NicExampleJumboLoads) {
  std::ifstream in(std::string(CONFIG_EXAMPLES_DIR) + "/nic-inline.yaml");
  std::stringstream text;
  text << in.rdbuf();
  std::string yaml = replace(text.str(), "  # data_room: 2176", "  data_room: 2176");
  for (int port = 0; port < 2; ++port) yaml = replace(yaml, "    # mtu: 9000", "    mtu: 9000");
  const Config c = loaded(yaml);
  EXPECT_EQ(c.mempool.data_room, 2176);
  EXPECT_EQ(c.ports[0].mtu, 9000);
  EXPECT_EQ(c.ports[1].mtu, 9000);
}

// ---- lcores.map: the EAL's --lcores syntax ----

TEST(ConfigLcoreMap, Parses) {
  using ctlb::config::LcoreMap;
  using ctlb::config::parse_lcore_map;
  EXPECT_EQ(parse_lcore_map("0@0,1@1,2@1"), (LcoreMap{{0, {0}}, {1, {1}}, {2, {1}}}));
  EXPECT_EQ(parse_lcore_map("(1-3)@(0,1)"), (LcoreMap{{1, {0, 1}}, {2, {0, 1}}, {3, {0, 1}}}));
  EXPECT_EQ(parse_lcore_map("4-5"), (LcoreMap{{4, {4, 5}}, {5, {4, 5}}}));  // a group runs on its own numbers
  EXPECT_EQ(parse_lcore_map("7,(0,6)@2-3"), (LcoreMap{{0, {2, 3}}, {6, {2, 3}}, {7, {7}}}));
  for (const char* bad : {"", "1@", "@1", "1,,2", "(1", "1)", "1,1", "0-2,2@1", "1@(2", "1024", "1--2", "(1,)"})
    EXPECT_FALSE(parse_lcore_map(bad).has_value()) << bad;
  EXPECT_EQ(ctlb::config::cpu_list_text({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(ctlb::config::cpu_list_text({}), "none");
}

TEST(ConfigLcoreMap, LoaderChecksIt) {
  EXPECT_EQ(error_of(replace(kGood, "workers: [1, 2]", "workers: [1, 2]\n  map: \"0@0,1@1,1@0\"")),
            "test.yaml:5:8: lcores.map: expected an EAL --lcores mapping like 0@0,1@1,2@1, each lcore once "
            "(found '0@0,1@1,1@0')");
  EXPECT_EQ(error_of(replace(kGood, "workers: [1, 2]", "workers: [1, 2]\n  map: \"0@0,1@1\"")),
            "test.yaml:4:16: lcores.workers[1]: expected an lcore that lcores.map maps (found '2')");
  EXPECT_EQ(error_of(replace(kGood, "workers: [1, 2]", "workers: [1, 2]\n  map: \"(1-2)@1\"")),
            "test.yaml:3:9: lcores.main: expected an lcore that lcores.map maps (found '0')");
}

}  // namespace host

}  // namespace
