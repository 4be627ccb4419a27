#include "config/loader.hpp"

#include "config/host_check.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

namespace ctlb::config {

namespace {

struct ConfigError {
  std::string message;
};

// "FILE:LINE:COLUMN" of a mark. A node without a mark (the root of an empty
// document) is at 1:1.
std::string location(const std::string& file, const YAML::Mark& m) {
  if (m.is_null()) return file + ":1:1";
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

// Every error is one line: control characters that come from the file's own
// text (a quoted key or value with a newline) are shown escaped.
std::string one_line(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// A YAML node with the dotted key path that led to it, for error messages.
class Node {
 public:
  Node(YAML::Node node, std::string path, const std::string* file) : n_(node), path_(std::move(path)), file_(file) {}

  [[noreturn]] void fail(const std::string& expected) const {
    const std::string where = location(*file_, n_.Mark());
    std::string found;
    if (n_.IsScalar()) found = " (found '" + n_.Scalar() + "')";
    else if (n_.IsSequence()) found = " (found a list)";
    else if (n_.IsMap()) found = " (found a mapping)";
    else if (n_.IsNull()) found = " (found nothing)";
    throw ConfigError{where + ": " + (path_.empty() ? "<top>" : path_) + ": expected " + expected + found};
  }

  const std::string& path() const { return path_; }
  bool is_map() const { return n_.IsMap(); }
  bool is_list() const { return n_.IsSequence(); }

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
    throw ConfigError{location(*file_, n_.Mark()) + ": " + path_ +
                      ": unknown key (expected one of: " + list + ")"};
  }

  bool has(std::string_view key) const { return n_[std::string(key)].IsDefined(); }

  Node child(std::string_view key) const { return Node(n_[std::string(key)], join(std::string(key)), file_); }

  Node required(std::string_view key, std::string_view what) const {
    if (!has(key)) {
      throw ConfigError{location(*file_, n_.Mark()) + ": " +
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

  // A NUL ("\0" in a quoted scalar) is refused: the C functions that read
  // addresses and device names would stop there and ignore the rest.
  std::string str(std::string_view what = "a string") const {
    if (!n_.IsScalar() || n_.Scalar().find('\0') != std::string::npos) fail(std::string(what));
    return n_.Scalar();
  }

  // `expected` replaces the message "an integer in MIN..MAX" where the range alone does not say enough.
  std::uint64_t uint(std::uint64_t min, std::uint64_t max, std::string_view expected = {}) const {
    const std::string what =
        expected.empty() ? "an integer in " + std::to_string(min) + ".." + std::to_string(max) : std::string(expected);
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

// Trial division: table sizes are at most kMaxTableSize (about 2^20), so at
// most a thousand divisions, and the answer never depends on anything else.
bool is_prime(std::uint64_t v) {
  if (v < 2) return false;
  for (std::uint64_t d = 2; d * d <= v; ++d)
    if (v % d == 0) return false;
  return true;
}

// ---- Addresses (mode lb) ----

const char* family_name(std::uint8_t family) { return family == 4 ? "IPv4" : "IPv6"; }

std::optional<IpAddr> parse_ip(const std::string& text) {
  IpAddr v4;
  if (inet_pton(AF_INET, text.c_str(), v4.bytes.data()) == 1) {
    v4.family = 4;
    return v4;
  }
  IpAddr v6;
  if (inet_pton(AF_INET6, text.c_str(), v6.bytes.data()) == 1) {
    v6.family = 6;
    return v6;
  }
  return std::nullopt;
}

std::string to_text(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.family == 4 ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf);
  return buf;
}

// "198.18.100.1:80", "[2001:db8::1]:80": the default VIP name, and how
// messages name an endpoint.
std::string endpoint_text(const IpAddr& a, std::uint16_t port) {
  const std::string addr = to_text(a);
  return (a.family == 6 ? "[" + addr + "]" : addr) + ":" + std::to_string(port);
}

IpAddr load_ip(const Node& n) {
  static constexpr const char* kWhat = "an IPv4 or IPv6 address";
  const auto a = parse_ip(n.str(kWhat));
  if (!a) n.fail(kWhat);
  return *a;
}

Prefix load_prefix(const Node& n) {
  static constexpr const char* kWhat = "an address with its prefix length, like 198.18.1.1/24 or 2001:db8::1/64";
  const std::string text = n.str(kWhat);
  const auto slash = text.find('/');
  if (slash == std::string::npos) n.fail(kWhat);
  const auto a = parse_ip(text.substr(0, slash));
  if (!a) n.fail(kWhat);
  const std::string len = text.substr(slash + 1);
  const unsigned max = a->family == 4 ? 32 : 128;
  const std::string len_what =
      std::string("an ") + family_name(a->family) + " address with a prefix length in 0.." + std::to_string(max);
  if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos) n.fail(len_what);
  const unsigned v = static_cast<unsigned>(std::stoul(len));
  if (v > max) n.fail(len_what);
  return Prefix{*a, static_cast<std::uint8_t>(v)};
}

bool in_prefix(const IpAddr& a, const Prefix& p) {
  if (a.family != p.addr.family) return false;
  const std::size_t whole = p.len / 8;
  for (std::size_t i = 0; i < whole; ++i)
    if (a.bytes[i] != p.addr.bytes[i]) return false;
  const unsigned rest = p.len % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a.bytes[whole] & mask) == (p.addr.bytes[whole] & mask);
}

bool in_any_prefix(const IpAddr& a, const std::vector<Prefix>& prefixes) {
  for (const Prefix& p : prefixes)
    if (in_prefix(a, p)) return true;
  return false;
}

Mac load_mac(const Node& n) {
  static constexpr const char* kWhat = "a MAC address like 02:00:00:00:02:0b";
  const std::string text = n.str(kWhat);
  if (text.size() != 17) n.fail(kWhat);
  auto hex = [&](char ch) -> unsigned {
    if (ch >= '0' && ch <= '9') return static_cast<unsigned>(ch - '0');
    if (ch >= 'a' && ch <= 'f') return static_cast<unsigned>(ch - 'a' + 10);
    if (ch >= 'A' && ch <= 'F') return static_cast<unsigned>(ch - 'A' + 10);
    n.fail(kWhat);
  };
  Mac m;
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (i > 0 && text[3 * i - 1] != ':') n.fail(kWhat);
    m[i] = static_cast<std::uint8_t>(hex(text[3 * i]) << 4 | hex(text[3 * i + 1]));
  }
  return m;
}

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

// tracking.new_flow_limit: {rate: N, burst: M}; burst defaults to a tenth
// of a second's worth (at least 1).
void load_new_flow_limit(const Node& n, NewFlowLimit& l) {
  n.require_map("a mapping with rate (new connections per second per worker, 0: no limit) and burst");
  n.only_keys({"rate", "burst"});
  l.rate = static_cast<std::uint32_t>(n.required("rate", "new connections per second per worker (0: no limit)")
                                          .uint(0, 1'000'000'000));
  l.burst = l.rate == 0 ? 0 : std::max<std::uint32_t>(1, l.rate / 10);
  if (n.has("burst")) {
    const Node b = n.child("burst");
    if (l.rate == 0) b.fail("no burst when rate is 0 (no limit)");
    l.burst = static_cast<std::uint32_t>(b.uint(1, 1'000'000'000));
  }
}

void load_tracking(const Node& n, Tracking& t) {
  n.require_map("a mapping");
  n.only_keys({"capacity_v4", "capacity_v6", "invalid_policy", "liberal", "pickup", "ignore_invalid_rst",
               "max_retrans", "msl_seconds", "timeouts", "new_flow_limit"});
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
  if (n.has("new_flow_limit")) load_new_flow_limit(n.child("new_flow_limit"), t.new_flow_limit);
}

// A port's gateway: one address, or a list of at most one per family.
std::vector<Node> gateway_nodes(const Node& port) {
  const Node g = port.child("gateway");
  if (g.is_list()) return g.items("a gateway address, or a list of one per family");
  return {g};
}

// mode lb: the port's own addresses and its gateways. Rules that span ports
// are in check_lb_ports.
void load_port_addresses(const Node& n, Port& p) {
  static constexpr const char* kWhat =
      "a list of the port's own addresses with prefix lengths, like [198.18.1.1/24]";
  const Node list = n.required("addresses", kWhat);
  for (const Node& an : list.items(kWhat)) {
    if (p.addresses.size() == kMaxPortAddresses)
      an.fail("at most " + std::to_string(kMaxPortAddresses) + " addresses per port");
    p.addresses.push_back(load_prefix(an));
  }
  if (p.addresses.empty()) list.fail("at least one address (mode lb: the port's own addresses)");
  if (!n.has("gateway")) return;
  for (const Node& gn : gateway_nodes(n)) {
    const IpAddr a = load_ip(gn);
    IpAddr& slot = a.family == 4 ? p.gateway_v4 : p.gateway_v6;  // a second one fails in check_lb_ports
    if (!in_any_prefix(a, p.addresses))
      gn.fail(std::string("an address inside one of this port's ") + family_name(a.family) + " prefixes");
    for (const Prefix& own : p.addresses)
      if (own.addr == a) gn.fail("a next hop, not one of the port's own addresses");
    slot = a;
  }
}

Port load_port(const Node& n, Mode mode) {
  n.require_map("a port mapping with name and pci or devargs");
  n.only_keys({"name", "pci", "devargs", "peer", "addresses", "gateway", "rx_descriptors", "tx_descriptors",
               "link_wait_ms", "mtu"});
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
    char canonical[16];  // as sysfs and DPDK name the device
    std::snprintf(canonical, sizeof canonical, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    p.pci = canonical;
  } else {
    p.devargs = n.child("devargs").str("vdev arguments like net_pcap0,rx_pcap=in.pcap");
    if (p.devargs.rfind("net_", 0) != 0) n.child("devargs").fail("vdev arguments starting with a driver name (net_...)");
  }
  if (n.has("peer")) {
    if (mode == Mode::Lb) n.child("peer").fail("no peer in mode lb (it forwards by address, not to a peer port)");
    p.peer = n.child("peer").str("the name of another port");
  }
  if (mode == Mode::Lb) {
    load_port_addresses(n, p);
  } else {
    for (std::string_view key : {"addresses", "gateway"})
      if (n.has(key))
        n.child(key).fail("no " + std::string(key) + " in mode inline (addresses and gateway are only in mode lb)");
  }
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
  if (n.has("mtu"))
    p.mtu = static_cast<std::uint16_t>(n.child("mtu").uint(
        kMinMtu, kMaxMtu,
        "an MTU in " + std::to_string(kMinMtu) + ".." + std::to_string(kMaxMtu) +
            " (bytes of IP packet per Ethernet frame, like 1500 or 9000; the device's own limit is checked at start)"));
  return p;
}

// mode lb, over all ports: no address configured twice, at most one gateway
// per family.
void check_lb_ports(const std::vector<Node>& port_nodes, const std::vector<Port>& ports) {
  std::vector<std::pair<IpAddr, std::string>> seen;  // an address, and the key that configured it
  std::string gateway_at[2];                          // the key of the IPv4 and of the IPv6 gateway
  for (std::size_t i = 0; i < ports.size(); ++i) {
    const auto address_nodes = port_nodes[i].child("addresses").items("a list of addresses");
    for (std::size_t j = 0; j < address_nodes.size(); ++j) {
      const IpAddr& a = ports[i].addresses[j].addr;
      for (const auto& [other, where] : seen)
        if (other == a) address_nodes[j].fail("an address not already configured (" + where + " has it)");
      seen.emplace_back(a, address_nodes[j].path());
    }
    if (!port_nodes[i].has("gateway")) continue;
    for (const Node& gn : gateway_nodes(port_nodes[i])) {
      const IpAddr a = load_ip(gn);
      std::string& owner = gateway_at[a.family == 4 ? 0 : 1];
      if (!owner.empty())
        gn.fail(std::string("at most one ") + family_name(a.family) + " gateway over all ports (" + owner + " is one)");
      owner = gn.path();
    }
  }
}

bool is_own_address(const IpAddr& a, const std::vector<Port>& ports) {
  for (const Port& p : ports)
    for (const Prefix& own : p.addresses)
      if (own.addr == a) return true;
  return false;
}

void load_arp(const Node& n, Arp& arp) {
  n.require_map("a mapping with retry_ms, retries and reachable_ms");
  n.only_keys({"retry_ms", "retries", "reachable_ms"});
  if (n.has("retry_ms")) arp.retry_ms = static_cast<std::uint32_t>(n.child("retry_ms").uint(10, 60000));
  if (n.has("retries")) arp.retries = static_cast<std::uint32_t>(n.child("retries").uint(1, 10));
  if (n.has("reachable_ms"))
    arp.reachable_ms = static_cast<std::uint32_t>(n.child("reachable_ms").uint(1000, 3600000));
}

Neighbour load_neighbour(const Node& n, const std::vector<Port>& ports, const std::vector<Neighbour>& earlier) {
  n.require_map("a static neighbour mapping with address, mac and port");
  n.only_keys({"address", "mac", "port"});
  Neighbour nb;
  const Node an = n.required("address", "the neighbour's IPv4 or IPv6 address");
  nb.address = load_ip(an);
  const Node mn = n.required("mac", "a MAC address like 02:00:00:00:02:0b");
  nb.mac = load_mac(mn);
  // Bit 0 of the first octet: a group address (multicast, and broadcast).
  if ((nb.mac[0] & 1) != 0 || nb.mac == Mac{}) mn.fail("a unicast MAC address (not multicast, broadcast or zero)");
  const Node pn = n.required("port", "the name of the port the neighbour is on");
  nb.port = pn.str("the name of a configured port");
  const Port* port = nullptr;
  for (const Port& p : ports)
    if (p.name == nb.port) port = &p;
  if (port == nullptr) pn.fail("the name of a configured port");
  if (is_own_address(nb.address, ports)) an.fail("a neighbour's address, not one of the ports' own addresses");
  if (!in_any_prefix(nb.address, port->addresses))
    an.fail(std::string("an address inside one of the ") + family_name(nb.address.family) + " prefixes of port " +
            nb.port);
  for (std::size_t i = 0; i < earlier.size(); ++i)
    if (earlier[i].address == nb.address && earlier[i].port == nb.port)
      an.fail("an address not already a static neighbour on this port (lb.neighbours[" + std::to_string(i) +
              "] is)");
  return nb;
}

Backend load_backend(const Node& n, const Vip& vip, const std::vector<Port>& ports, const bool has_gateway[2]) {
  n.require_map("a backend mapping with address and port");
  n.only_keys({"address", "port", "weight", "state"});
  Backend b;
  const Node an = n.required("address", "the backend's IPv4 or IPv6 address");
  b.address = load_ip(an);
  const char* family = family_name(vip.address.family);
  if (b.address.family != vip.address.family) an.fail(std::string("an ") + family + " address, the VIP's family");
  if (is_own_address(b.address, ports)) an.fail("a backend's address, not one of the ports' own addresses");
  bool reachable = has_gateway[b.address.family == 4 ? 0 : 1];
  for (const Port& p : ports) reachable = reachable || in_any_prefix(b.address, p.addresses);
  if (!reachable) an.fail(std::string("an address inside a port's prefix, or a gateway for ") + family);
  b.port = static_cast<std::uint16_t>(n.required("port", "the backend's TCP port").uint(1, 65535));
  if (n.has("weight")) b.weight = static_cast<std::uint32_t>(n.child("weight").uint(1, 65535));
  if (n.has("state"))
    b.state = n.child("state").choice<BackendState>(
        {{"active", BackendState::Active}, {"draining", BackendState::Draining}, {"down", BackendState::Down}});
  for (std::size_t i = 0; i < vip.backends.size(); ++i)
    if (vip.backends[i].address == b.address && vip.backends[i].port == b.port)
      an.fail("a backend not already in this VIP's pool (backends[" + std::to_string(i) + "] is " +
              endpoint_text(b.address, b.port) + ")");
  return b;
}

Vip load_vip(const Node& n, const std::vector<Port>& ports, const bool has_gateway[2], const std::vector<Vip>& earlier,
             std::size_t& backend_slots) {
  n.require_map("a VIP mapping with address, port and backends");
  n.only_keys({"name", "address", "port", "table_size", "backends"});
  Vip v;
  const Node an = n.required("address", "the VIP's IPv4 or IPv6 address");
  v.address = load_ip(an);
  if (is_own_address(v.address, ports)) an.fail("a VIP address, not one of the ports' own addresses");
  v.port = static_cast<std::uint16_t>(n.required("port", "the VIP's TCP port").uint(1, 65535));
  for (std::size_t i = 0; i < earlier.size(); ++i)
    if (earlier[i].address == v.address && earlier[i].port == v.port)
      an.fail("a VIP address and port not already used (lb.vips[" + std::to_string(i) + "] is " +
              endpoint_text(v.address, v.port) + ")");
  if (n.has("name")) {
    const Node nn = n.child("name");
    v.name = nn.str("a VIP name");
    if (v.name.empty() || v.name.size() > kMaxVipName || v.name.find_first_of(" \t\r\n:") != std::string::npos)
      nn.fail("a name of 1.." + std::to_string(kMaxVipName) +
              " characters without spaces or ':' (ADDRESS:PORT already names every VIP)");
    for (std::size_t i = 0; i < earlier.size(); ++i)
      if (earlier[i].name == v.name)
        nn.fail("a VIP name not already used (lb.vips[" + std::to_string(i) + "] has it)");
  } else {
    v.name = endpoint_text(v.address, v.port);  // unique: addresses and ports are, explicit names have no ':'
  }
  if (n.has("table_size")) {
    const Node tn = n.child("table_size");
    const std::string what = "a prime in 7.." + std::to_string(kMaxTableSize) + ", like 65537";
    const std::uint64_t size = tn.uint(7, kMaxTableSize, what);
    if (!is_prime(size)) tn.fail(what);
    v.table_size = static_cast<std::uint32_t>(size);
  }
  // May be empty: backends can be added at run time.
  const Node list = n.required("backends", "a list of backends (it may be empty)");
  for (const Node& bn : list.items("a list of backends (it may be empty)")) {
    if (++backend_slots > kMaxBackends)
      bn.fail("at most " + std::to_string(kMaxBackends) + " backends over all VIPs");
    v.backends.push_back(load_backend(bn, v, ports, has_gateway));
  }
  return v;
}

void load_lb(const Node& n, const std::vector<Port>& ports, Lb& lb) {
  n.require_map("a mapping with vips (and optionally unknown_flows, arp, neighbours)");
  n.only_keys({"unknown_flows", "arp", "neighbours", "vips"});
  if (n.has("unknown_flows"))
    lb.unknown_flows = n.child("unknown_flows")
                           .choice<UnknownFlows>({{"loose", UnknownFlows::Loose}, {"strict", UnknownFlows::Strict}});
  if (n.has("arp")) load_arp(n.child("arp"), lb.arp);
  if (n.has("neighbours"))
    for (const Node& nn : n.child("neighbours").items("a list of static neighbours"))
      lb.neighbours.push_back(load_neighbour(nn, ports, lb.neighbours));
  const Node vips = n.required("vips", "a list of VIPs");
  const auto items = vips.items("a list of VIPs");
  if (items.empty()) vips.fail("at least one VIP");
  bool has_gateway[2] = {false, false};  // IPv4, IPv6
  for (const Port& p : ports) {
    has_gateway[0] = has_gateway[0] || p.gateway_v4.family != 0;
    has_gateway[1] = has_gateway[1] || p.gateway_v6.family != 0;
  }
  std::size_t backend_slots = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i == kMaxVips) items[i].fail("at most " + std::to_string(kMaxVips) + " VIPs");
    lb.vips.push_back(load_vip(items[i], ports, has_gateway, lb.vips, backend_slots));
  }
}

Config load_node(const YAML::Node& root, const std::string& file) {
  Config c;
  c.file = file;
  const Node top(root, "", &c.file);
  top.require_map("a YAML mapping at the top level");
  top.only_keys({"mode", "file_prefix", "lcores", "eal_args", "mempool", "ports", "tracking", "lb", "control"});

  if (top.has("mode")) c.mode = top.child("mode").choice<Mode>({{"inline", Mode::Inline}, {"lb", Mode::Lb}});
  if (top.has("file_prefix")) {
    const Node fp = top.child("file_prefix");
    c.file_prefix = fp.str();
    if (c.file_prefix.empty() || c.file_prefix.find_first_of("/ \t") != std::string::npos)
      fp.fail("a non-empty name without '/' or spaces");
  }

  const Node lc = top.required("lcores", "a mapping with main and workers");
  lc.require_map("a mapping with main and workers");
  lc.only_keys({"main", "workers", "map"});
  std::optional<LcoreMap> lcore_map;
  if (lc.has("map")) {
    c.lcore_map = lc.child("map").str("an EAL --lcores mapping like 0@0,1@1,2@1");
    lcore_map = parse_lcore_map(c.lcore_map);
    if (!lcore_map) lc.child("map").fail("an EAL --lcores mapping like 0@0,1@1,2@1, each lcore once");
  }
  auto mapped = [&](const Node& n, std::uint32_t id) {
    if (lcore_map && !lcore_map->count(id)) n.fail("an lcore that lcores.map maps");
  };
  const Node main_node = lc.required("main", "an lcore id");
  c.main_lcore = static_cast<std::uint32_t>(main_node.uint(0, 1023));
  mapped(main_node, c.main_lcore);
  std::set<std::uint32_t> seen;
  for (const Node& w : lc.required("workers", "a list of lcore ids").items("a list of lcore ids")) {
    const auto id = static_cast<std::uint32_t>(w.uint(0, 1023));
    if (id == c.main_lcore) w.fail("a worker lcore other than the main lcore");
    if (!seen.insert(id).second) w.fail("an lcore id not already listed");
    if (c.worker_lcores.size() == kMaxWorkers) w.fail("at most " + std::to_string(kMaxWorkers) + " worker lcores");
    mapped(w, id);
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
    if (c.ports.size() == kMaxPorts) pn.fail("at most " + std::to_string(kMaxPorts) + " ports");
    Port p = load_port(pn, c.mode);
    if (!names.insert(p.name).second) pn.child("name").fail("a port name not already used");
    // One device per port: a vdev by its name (devargs up to the first ',').
    const std::string device = p.pci.empty() ? p.devargs.substr(0, p.devargs.find(',')) : p.pci;
    for (std::size_t i = 0; i < c.ports.size(); ++i) {
      const Port& o = c.ports[i];
      if (device == (o.pci.empty() ? o.devargs.substr(0, o.devargs.find(',')) : o.pci))
        pn.child(p.pci.empty() ? "devargs" : "pci")
            .fail("a device no other port uses (ports[" + std::to_string(i) + "] is " + device + ")");
    }
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

  if (c.mode == Mode::Lb) check_lb_ports(port_items, c.ports);

  if (top.has("tracking")) load_tracking(top.child("tracking"), c.tracking);

  if (c.mode == Mode::Lb) {
    load_lb(top.required("lb", "a mapping with vips (mode lb)"), c.ports, c.lb);
    // A non-SYN packet with no entry is picked up mid-stream exactly when
    // unknown_flows is loose; tracking.pickup may say so again, not otherwise.
    const bool loose = c.lb.unknown_flows == UnknownFlows::Loose;
    if (top.has("tracking") && top.child("tracking").has("pickup") && c.tracking.tcp.loose != loose)
      top.child("tracking").child("pickup").fail(std::string(loose ? "true" : "false") +
                                                 ", or no pickup: in mode lb it follows lb.unknown_flows (" +
                                                 (loose ? "loose" : "strict") + ")");
    c.tracking.tcp.loose = loose;
  } else if (top.has("lb")) {
    top.child("lb").fail("no lb section in mode inline (it is only in mode lb)");
  }
  if (top.has("control")) {
    const Node cn = top.child("control");
    cn.require_map("a mapping");
    cn.only_keys({"socket", "metrics"});
    if (cn.has("socket")) c.control.socket = cn.child("socket").str("a filesystem path");
    if (cn.has("metrics")) c.control.metrics = cn.child("metrics").str("an address:port");
  }
  return c;
}

// Every value's position by its dotted path, as Node names paths.
void record_marks(const YAML::Node& n, const std::string& path, std::map<std::string, Config::Mark>& out) {
  const YAML::Mark m = n.Mark();
  if (!path.empty() && !m.is_null())
    out[path] = {static_cast<std::uint32_t>(m.line + 1), static_cast<std::uint32_t>(m.column + 1)};
  if (n.IsMap()) {
    for (const auto& kv : n)
      if (kv.first.IsScalar())
        record_marks(kv.second, path.empty() ? kv.first.Scalar() : path + "." + kv.first.Scalar(), out);
  } else if (n.IsSequence()) {
    for (std::size_t i = 0; i < n.size(); ++i) record_marks(n[i], path + "[" + std::to_string(i) + "]", out);
  }
}

}  // namespace

Result<Config> load_string(const std::string& yaml, const std::string& name) {
  try {
    YAML::Node root = YAML::Load(yaml);
    Config c = load_node(root, name);
    c.digest = digest_of(yaml);
    record_marks(root, "", c.marks);
    return c;
  } catch (const ConfigError& e) {
    return Error{one_line(e.message)};
  } catch (const YAML::Exception& e) {
    return Error{one_line(location(name, e.mark) + ": not valid YAML: " + e.msg)};
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
