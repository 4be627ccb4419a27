#include "config/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

namespace ctlb::config {

namespace {

struct ConfigError {
  std::string message;
};

// A YAML node with the dotted key path that led to it, for error messages.
class Node {
 public:
  Node(YAML::Node node, std::string path, const std::string* file) : n_(node), path_(std::move(path)), file_(file) {}

  [[noreturn]] void fail(const std::string& expected) const {
    const YAML::Mark m = n_.Mark();
    std::string where = *file_;
    if (!m.is_null()) where += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    std::string found;
    if (n_.IsScalar()) found = " (found '" + n_.Scalar() + "')";
    else if (n_.IsSequence()) found = " (found a list)";
    else if (n_.IsMap()) found = " (found a mapping)";
    else if (n_.IsNull()) found = " (found nothing)";
    throw ConfigError{where + ": " + (path_.empty() ? "<top>" : path_) + ": expected " + expected + found};
  }

  const std::string& path() const { return path_; }
  bool is_map() const { return n_.IsMap(); }

  void require_map(std::string_view what) const {
    if (!n_.IsMap()) fail(std::string(what));
  }

  // Rejects keys this level does not know (typos must not pass silently).
  void only_keys(std::initializer_list<std::string_view> known) const {
    for (const auto& kv : n_) {
      const std::string key = kv.first.as<std::string>();
      bool ok = false;
      for (auto k : known) ok = ok || key == k;
      if (!ok) {
        std::string list;
        for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        Node(kv.first, join(key), file_).fail_unknown(list);
      }
    }
  }

  [[noreturn]] void fail_unknown(const std::string& list) const {
    const YAML::Mark m = n_.Mark();
    throw ConfigError{*file_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": " + path_ +
                      ": unknown key (expected one of: " + list + ")"};
  }

  bool has(std::string_view key) const { return n_[std::string(key)].IsDefined(); }

  Node child(std::string_view key) const { return Node(n_[std::string(key)], join(std::string(key)), file_); }

  Node required(std::string_view key, std::string_view what) const {
    if (!has(key)) {
      const YAML::Mark m = n_.Mark();
      throw ConfigError{*file_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": " +
                        join(std::string(key)) + ": missing, expected " + std::string(what)};
    }
    return child(key);
  }

  std::vector<Node> items(std::string_view what) const {
    if (!n_.IsSequence()) fail(std::string(what));
    std::vector<Node> out;
    for (std::size_t i = 0; i < n_.size(); ++i) out.emplace_back(n_[i], path_ + "[" + std::to_string(i) + "]", file_);
    return out;
  }

  std::string str(std::string_view what = "a string") const {
    if (!n_.IsScalar()) fail(std::string(what));
    return n_.Scalar();
  }

  std::uint64_t uint(std::uint64_t min, std::uint64_t max) const {
    const std::string what = "an integer in " + std::to_string(min) + ".." + std::to_string(max);
    if (!n_.IsScalar()) fail(what);
    const std::string& s = n_.Scalar();
    if (s.empty() || s.size() > 19) fail(what);
    std::uint64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') fail(what);
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v < min || v > max) fail(what);
    return v;
  }

  bool boolean() const {
    if (n_.IsScalar()) {
      const std::string& s = n_.Scalar();
      if (s == "true") return true;
      if (s == "false") return false;
    }
    fail("true or false");
  }

  template <class E>
  E choice(std::initializer_list<std::pair<std::string_view, E>> options) const {
    std::string list;
    for (const auto& [name, value] : options) list += (list.empty() ? "" : " | ") + std::string(name);
    if (!n_.IsScalar()) fail(list);
    for (const auto& [name, value] : options)
      if (n_.Scalar() == name) return value;
    fail(list);
  }

 private:
  std::string join(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  YAML::Node n_;
  std::string path_;
  const std::string* file_;
};

bool is_power_of_two(std::uint64_t v) { return v && !(v & (v - 1)); }

std::string digest_of(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void load_timeouts(const Node& n, tcp::Timeouts& t) {
  n.require_map("a mapping of state: seconds");
  static constexpr std::pair<std::string_view, std::size_t> kKeys[] = {
      {"syn_sent", 1}, {"syn_recv", 2}, {"established", 3}, {"fin_wait", 4}, {"close_wait", 5}, {"last_ack", 6},
      {"time_wait", 7}, {"close", 8}, {"syn_sent2", 9}, {"retrans", 10}, {"unack", 11}};
  n.only_keys({"syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack", "time_wait", "close",
               "syn_sent2", "retrans", "unack"});
  for (const auto& [key, index] : kKeys)
    if (n.has(key)) t.ms[index] = static_cast<Millis>(n.child(key).uint(1, 30 * 86400) * 1000);
}

void load_tracking(const Node& n, Tracking& t) {
  n.require_map("a mapping");
  n.only_keys({"capacity_v4", "capacity_v6", "invalid_policy", "liberal", "pickup", "ignore_invalid_rst",
               "max_retrans", "msl_seconds", "timeouts"});
  auto capacity = [&](std::string_view key, std::uint32_t& out) {
    if (!n.has(key)) return;
    const Node c = n.child(key);
    const std::uint64_t v = c.uint(1024, 1u << 27);
    if (!is_power_of_two(v)) c.fail("a power of two between 1024 and 134217728");
    out = static_cast<std::uint32_t>(v);
  };
  capacity("capacity_v4", t.capacity_v4);
  capacity("capacity_v6", t.capacity_v6);
  if (n.has("invalid_policy"))
    t.invalid_policy = n.child("invalid_policy").choice<InvalidPolicy>(
        {{"forward", InvalidPolicy::Forward}, {"drop", InvalidPolicy::Drop}});
  if (n.has("liberal")) t.tcp.liberal = n.child("liberal").boolean();
  if (n.has("pickup")) t.tcp.loose = n.child("pickup").boolean();
  if (n.has("ignore_invalid_rst")) t.tcp.ignore_invalid_rst = n.child("ignore_invalid_rst").boolean();
  if (n.has("max_retrans")) t.tcp.max_retrans = static_cast<std::uint8_t>(n.child("max_retrans").uint(1, 3));
  if (n.has("msl_seconds"))
    t.tcp.timeouts = tcp::default_timeouts(static_cast<std::uint32_t>(n.child("msl_seconds").uint(1, 3600)));
  if (n.has("timeouts")) load_timeouts(n.child("timeouts"), t.tcp.timeouts);
}

Port load_port(const Node& n) {
  n.require_map("a port mapping with name and pci or devargs");
  n.only_keys({"name", "pci", "devargs", "peer", "rx_descriptors", "tx_descriptors", "link_wait_ms"});
  Port p;
  p.name = n.required("name", "a port name").str();
  if (p.name.empty()) n.child("name").fail("a non-empty port name");
  const bool pci = n.has("pci");
  const bool vdev = n.has("devargs");
  if (pci == vdev) n.fail("exactly one of pci (a PCI address) or devargs (a vdev)");
  if (pci) {
    p.pci = n.child("pci").str("a PCI address like 0000:3b:00.0");
    unsigned dom, bus, dev, fn;
    char extra;
    if (std::sscanf(p.pci.c_str(), "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &extra) != 4 || bus > 0xff ||
        dev > 0x1f || fn > 7)
      n.child("pci").fail("a PCI address like 0000:3b:00.0");
  } else {
    p.devargs = n.child("devargs").str("vdev arguments like net_pcap0,rx_pcap=in.pcap");
    if (p.devargs.rfind("net_", 0) != 0) n.child("devargs").fail("vdev arguments starting with a driver name (net_...)");
  }
  if (n.has("peer")) p.peer = n.child("peer").str("the name of another port");
  auto descriptors = [&](std::string_view key, std::uint16_t& out) {
    if (!n.has(key)) return;
    const Node d = n.child(key);
    const std::uint64_t v = d.uint(64, 16384);
    if (!is_power_of_two(v)) d.fail("a power of two between 64 and 16384");
    out = static_cast<std::uint16_t>(v);
  };
  descriptors("rx_descriptors", p.rx_descriptors);
  descriptors("tx_descriptors", p.tx_descriptors);
  if (n.has("link_wait_ms")) p.link_wait_ms = static_cast<std::uint32_t>(n.child("link_wait_ms").uint(0, 60000));
  return p;
}

Config load_node(const YAML::Node& root, const std::string& file) {
  Config c;
  c.file = file;
  const Node top(root, "", &c.file);
  top.require_map("a YAML mapping at the top level");
  top.only_keys({"mode", "file_prefix", "lcores", "eal_args", "mempool", "ports", "tracking", "control"});

  if (top.has("mode")) c.mode = top.child("mode").choice<Mode>({{"inline", Mode::Inline}, {"lb", Mode::Lb}});
  if (c.mode == Mode::Lb) top.child("mode").fail("inline (mode lb comes with the load balancer)");
  if (top.has("file_prefix")) {
    const Node fp = top.child("file_prefix");
    c.file_prefix = fp.str();
    if (c.file_prefix.empty() || c.file_prefix.find_first_of("/ \t") != std::string::npos)
      fp.fail("a non-empty name without '/' or spaces");
  }

  const Node lc = top.required("lcores", "a mapping with main and workers");
  lc.require_map("a mapping with main and workers");
  lc.only_keys({"main", "workers", "map"});
  if (lc.has("map")) {
    c.lcore_map = lc.child("map").str("an EAL --lcores mapping like 0@0,1@1,2@1");
    if (c.lcore_map.find_first_not_of("0123456789@,()-") != std::string::npos)
      lc.child("map").fail("an EAL --lcores mapping like 0@0,1@1,2@1");
  }
  c.main_lcore = static_cast<std::uint32_t>(lc.required("main", "an lcore id").uint(0, 1023));
  std::set<std::uint32_t> seen;
  for (const Node& w : lc.required("workers", "a list of lcore ids").items("a list of lcore ids")) {
    const auto id = static_cast<std::uint32_t>(w.uint(0, 1023));
    if (id == c.main_lcore) w.fail("a worker lcore other than the main lcore");
    if (!seen.insert(id).second) w.fail("an lcore id not already listed");
    c.worker_lcores.push_back(id);
  }
  if (c.worker_lcores.empty()) lc.child("workers").fail("at least one worker lcore");

  if (top.has("eal_args"))
    for (const Node& a : top.child("eal_args").items("a list of strings")) c.eal_args.push_back(a.str());

  if (top.has("mempool")) {
    const Node m = top.child("mempool");
    m.require_map("a mapping");
    m.only_keys({"mbufs", "cache", "data_room"});
    if (m.has("mbufs")) c.mempool.mbufs = static_cast<std::uint32_t>(m.child("mbufs").uint(1023, 1u << 26));
    if (m.has("cache")) c.mempool.cache = static_cast<std::uint32_t>(m.child("cache").uint(0, 512));
    if (m.has("data_room")) c.mempool.data_room = static_cast<std::uint16_t>(m.child("data_room").uint(256, 65535));
  }

  std::set<std::string> names;
  const Node ports = top.required("ports", "a list of ports");
  for (const Node& pn : ports.items("a list of ports")) {
    Port p = load_port(pn);
    if (!names.insert(p.name).second) pn.child("name").fail("a port name not already used");
    c.ports.push_back(std::move(p));
  }
  if (c.ports.empty()) ports.fail("at least one port");
  const auto port_items = ports.items("a list of ports");
  for (std::size_t i = 0; i < c.ports.size(); ++i) {
    const Port& p = c.ports[i];
    if (c.mode != Mode::Inline) continue;
    const Node pn = port_items[i];
    if (p.peer.empty()) pn.fail("a peer port (inline mode forwards each port to its peer)");
    if (p.peer == p.name) pn.child("peer").fail("another port's name");
    if (!names.count(p.peer)) pn.child("peer").fail("the name of a configured port");
  }

  if (top.has("tracking")) load_tracking(top.child("tracking"), c.tracking);
  if (top.has("control")) {
    const Node cn = top.child("control");
    cn.require_map("a mapping");
    cn.only_keys({"socket", "metrics"});
    if (cn.has("socket")) c.control.socket = cn.child("socket").str("a filesystem path");
    if (cn.has("metrics")) c.control.metrics = cn.child("metrics").str("an address:port");
  }
  return c;
}

}  // namespace

Result<Config> load_string(const std::string& yaml, const std::string& name) {
  try {
    YAML::Node root = YAML::Load(yaml);
    Config c = load_node(root, name);
    c.digest = digest_of(yaml);
    return c;
  } catch (const ConfigError& e) {
    return Error{e.message};
  } catch (const YAML::Exception& e) {
    return Error{name + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                 ": not valid YAML: " + e.msg};
  }
}

Result<Config> load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path + ": cannot open the configuration file"};
  std::ostringstream ss;
  ss << in.rdbuf();
  return load_string(ss.str(), path);
}

}  // namespace ctlb::config
