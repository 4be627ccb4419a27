// Packet-by-packet conformance with the Linux kernel's nf_conntrack.
//
// For every recorded expectation file expected/NAME[@variant].expect (written
// by kernel_replay.py from a real kernel), runs ctlb's tracker over
// scenarios/NAME.pcap and compares, after every packet, the connection state
// and whether the packet was INVALID. A difference passes only if
// deviations.txt lists it with its argument; the test prints every deviation
// it used, and fails on a listed deviation that no longer happens.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "control/trace.hpp"

namespace {

namespace fs = std::filesystem;
using ctlb::control::TraceOptions;
using ctlb::control::TraceOutput;

const fs::path kDir = CONFORMANCE_DIR;

struct Expected {
  std::uint64_t index;
  std::string state;
  std::string verdict;
};

struct Case {
  std::string id;        // NAME or NAME@variant
  std::string scenario;  // NAME
  std::string variant;   // "", "loose0", "liberal"
  fs::path expect_file;
};

std::vector<Case> find_cases() {
  std::vector<Case> cases;
  if (!fs::exists(kDir / "expected")) return cases;
  for (const auto& e : fs::directory_iterator(kDir / "expected")) {
    if (e.path().extension() != ".expect") continue;
    Case c;
    c.id = e.path().stem().string();
    const auto at = c.id.find('@');
    c.scenario = c.id.substr(0, at);
    c.variant = at == std::string::npos ? "" : c.id.substr(at + 1);
    c.expect_file = e.path();
    cases.push_back(c);
  }
  std::sort(cases.begin(), cases.end(), [](const Case& a, const Case& b) { return a.id < b.id; });
  return cases;
}

std::vector<Expected> read_expected(const fs::path& p) {
  std::vector<Expected> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    Expected e;
    ss >> e.index >> e.state >> e.verdict;
    out.push_back(e);
  }
  return out;
}

// "id index field kernel ctlb" -> reason
std::map<std::string, std::string> read_deviations() {
  std::map<std::string, std::string> dev;
  std::ifstream in(kDir / "deviations.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto hash = line.find('#');
    std::istringstream ss(line.substr(0, hash));
    std::string id, index, field, kernel, ctlb;
    ss >> id >> index >> field >> kernel >> ctlb;
    dev[id + " " + index + " " + field + " " + kernel + " " + ctlb] =
        hash == std::string::npos ? "" : line.substr(hash + 1);
  }
  return dev;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.id; }

class Conformance : public testing::TestWithParam<Case> {};

TEST_P(Conformance, MatchesKernelPacketByPacket) {
  const Case& c = GetParam();
  const std::vector<Expected> expected = read_expected(c.expect_file);
  ASSERT_FALSE(expected.empty()) << c.expect_file;

  TraceOptions opts;
  opts.path = (kDir / "scenarios" / (c.scenario + ".pcap")).string();
  opts.verify_checksum = true;  // as the kernel (nf_conntrack_checksum=1)
  if (c.variant == "loose0") opts.tcp.loose = false;
  else if (c.variant == "liberal") opts.tcp.liberal = true;
  else ASSERT_EQ(c.variant, "") << "unknown variant";

  TraceOutput out;
  std::string error;
  ASSERT_TRUE(ctlb::control::trace_capture(opts, out, error)) << error;
  ASSERT_EQ(out.records.size(), expected.size()) << "packet count differs from the recording";

  static const std::map<std::string, std::string> deviations = read_deviations();
  static std::set<std::string> used;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& r = out.records[i];
    const auto& e = expected[i];
    ASSERT_EQ(r.index, e.index);
    const std::string state = r.tracked ? std::string(ctlb::tcp::name(r.state)) : "NONE";
    const std::string verdict = r.verdict == ctlb::tcp::Verdict::Accept ? "accept" : "invalid";
    const std::string where = "packet " + std::to_string(e.index) + " (" + r.flow + " " + r.dir + " " + r.flags +
                              ", ctlb reason " + r.reason + ")";
    for (const auto& [field, kernel, ours] : {std::tuple{std::string("state"), e.state, state},
                                              std::tuple{std::string("verdict"), e.verdict, verdict}}) {
      if (kernel == ours) continue;
      const std::string key = c.id + " " + std::to_string(e.index) + " " + field + " " + kernel + " " + ours;
      const auto it = deviations.find(key);
      if (it != deviations.end()) {
        std::cout << "documented deviation: " << key << " -- " << it->second << '\n';
        continue;
      }
      ADD_FAILURE() << c.id << " " << where << ": " << field << " kernel=" << kernel << " ctlb=" << ours;
    }
  }
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
  std::string n = info.param.id;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Kernel, Conformance, testing::ValuesIn(find_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Conformance);

TEST(ConformanceSuite, EveryScenarioHasAnExpectation) {
  std::set<std::string> recorded;
  for (const auto& c : find_cases()) recorded.insert(c.scenario);
  std::vector<std::string> missing;
  for (const auto& e : fs::directory_iterator(kDir / "scenarios"))
    if (e.path().extension() == ".pcap" && !recorded.count(e.path().stem().string()))
      missing.push_back(e.path().stem().string());
  EXPECT_TRUE(missing.empty()) << "scenarios without a kernel recording: " << testing::PrintToString(missing);
  EXPECT_GE(recorded.size(), 20u);
}

TEST(ConformanceSuite, EveryListedDeviationStillHappens) {
  // A deviation that no longer happens must be removed from deviations.txt.
  for (const auto& [key, why] : read_deviations()) {
    std::istringstream ss(key);
    std::string id, index, field, kernel, ours;
    ss >> id >> index >> field >> kernel >> ours;
    const auto at = id.find('@');
    TraceOptions opts;
    opts.path = (kDir / "scenarios" / (id.substr(0, at) + ".pcap")).string();
    opts.verify_checksum = true;
    if (at != std::string::npos && id.substr(at + 1) == "loose0") opts.tcp.loose = false;
    if (at != std::string::npos && id.substr(at + 1) == "liberal") opts.tcp.liberal = true;
    TraceOutput out;
    std::string error;
    ASSERT_TRUE(ctlb::control::trace_capture(opts, out, error)) << error;
    const std::size_t i = std::stoul(index) - 1;
    ASSERT_LT(i, out.records.size()) << key;
    const auto& r = out.records[i];
    const std::string got = field == "state"
                                ? (r.tracked ? std::string(ctlb::tcp::name(r.state)) : "NONE")
                                : (r.verdict == ctlb::tcp::Verdict::Accept ? "accept" : "invalid");
    EXPECT_EQ(got, ours) << "deviation no longer happens, remove it from deviations.txt: " << key;
  }
}

}  // namespace
