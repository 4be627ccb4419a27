// The configuration loader: good files load into the structs, and every class
// of error gives one line naming the file, line, key and what was expected.
#include <gtest/gtest.h>

#include <string>

#include "config/loader.hpp"

namespace {

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
            "invalid_policy, liberal, pickup, ignore_invalid_rst, max_retrans, msl_seconds, timeouts)");
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
  for (const char* name : {"pcap-inline.yaml", "nic-inline.yaml", "afpacket-inline.yaml"}) {
    auto r = load_file(std::string(CONFIG_EXAMPLES_DIR) + "/" + name);
    EXPECT_TRUE(r.ok()) << name << ": " << (r.ok() ? "" : r.error().message);
  }
}

}  // namespace
