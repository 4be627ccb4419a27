#include "control/reload.hpp"

#include <cstdio>
#include <cstring>
#include <utility>

namespace ctlb::control::reload {

namespace {

constexpr const char* kRestart = ": needs a restart of ctlb-dataplane";
constexpr const char* kNone = "(none)";

// ---------------------------------------------------------------- value text

std::string text(const std::string& s) { return s.empty() ? kNone : s; }
std::string text(std::uint64_t v) { return std::to_string(v); }
std::string text(std::uint32_t v) { return std::to_string(v); }
std::string text(std::uint16_t v) { return std::to_string(v); }
std::string flag(bool b) { return b ? "true" : "false"; }

std::string text(const config::IpAddr& a) {
  return a.family == 0 ? kNone : lb::address_text(a.family, a.bytes.data());
}

std::string endpoint(const config::IpAddr& a, std::uint16_t port) {
  return lb::endpoint_text(a.family, a.bytes.data(), port);
}

template <class T, class F>
std::string list(const std::vector<T>& items, F&& one) {
  std::string s = "[";
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + one(items[i]);
  return s + "]";
}

std::string text(const std::vector<config::Prefix>& prefixes) {
  return list(prefixes, [](const config::Prefix& p) { return text(p.addr) + "/" + std::to_string(p.len); });
}

std::string gateways(const config::Port& p) {
  std::vector<std::string> g;
  if (p.gateway_v4.family) g.push_back(text(p.gateway_v4));
  if (p.gateway_v6.family) g.push_back(text(p.gateway_v6));
  if (g.empty()) return kNone;
  if (g.size() == 1) return g[0];
  return list(g, [](const std::string& s) { return s; });
}

std::string text(const config::Mac& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

const char* text(config::Mode m) { return m == config::Mode::Lb ? "lb" : "inline"; }
const char* text(config::InvalidPolicy p) { return p == config::InvalidPolicy::Drop ? "drop" : "forward"; }
const char* text(config::UnknownFlows u) { return u == config::UnknownFlows::Strict ? "strict" : "loose"; }

const char* text(config::BackendState s) {
  switch (s) {
    case config::BackendState::Active: return "active";
    case config::BackendState::Draining: return "draining";
    case config::BackendState::Down: return "down";
  }
  return "?";
}

std::string text(const config::NewFlowLimit& l) {
  if (l.rate == 0) return "no limit";
  return std::to_string(l.rate) + " per second (burst " + std::to_string(l.burst) + ")";
}

// The timeout keys of the file (config/loader.cpp), by timeout class.
constexpr std::pair<const char*, std::size_t> kTimeoutKeys[] = {
    {"syn_sent", 1},   {"syn_recv", 2}, {"established", 3}, {"fin_wait", 4},  {"close_wait", 5}, {"last_ack", 6},
    {"time_wait", 7},  {"close", 8},    {"syn_sent2", 9},   {"retrans", 10},  {"unack", 11}};

// ---------------------------------------------------------------- positions

// "FILE:LINE:COL" of a key in `c`'s file: the key itself, else one of the
// keys that set it (`alt`), else its nearest ancestor that the file has
// (a key that is gone from the file), else the file alone.
std::string where(const config::Config& c, const std::string& key, std::initializer_list<const char*> alt = {}) {
  if (c.marks.count(key) == 0)
    for (const char* a : alt)
      if (c.marks.count(a) != 0) return config::key_location(c, a);
  return config::key_location(c, key);
}

// Collects the changes to keys that need a restart.
class RestartOnly {
 public:
  RestartOnly(const config::Config& next, std::vector<std::string>& errors) : next_(next), errors_(errors) {}

  void field(const std::string& key, const std::string& before, const std::string& after,
             std::initializer_list<const char*> alt = {}) {
    if (before != after)
      error(key, "changed from " + before + " to " + after, alt);
  }

  void error(const std::string& key, const std::string& what, std::initializer_list<const char*> alt = {}) {
    errors_.push_back(where(next_, key, alt) + ": " + key + ": " + what + kRestart);
  }

 private:
  const config::Config& next_;
  std::vector<std::string>& errors_;
};

void diff_ports(const config::Config& a, const config::Config& b, RestartOnly& r) {
  if (a.ports.size() != b.ports.size()) {
    r.field("ports", std::to_string(a.ports.size()) + " ports", std::to_string(b.ports.size()) + " ports");
    return;
  }
  for (std::size_t i = 0; i < a.ports.size(); ++i) {
    const config::Port& p = a.ports[i];
    const config::Port& q = b.ports[i];
    const std::string k = "ports[" + std::to_string(i) + "].";
    r.field(k + "name", text(p.name), text(q.name));
    r.field(k + "pci", text(p.pci), text(q.pci));
    r.field(k + "devargs", text(p.devargs), text(q.devargs));
    r.field(k + "peer", text(p.peer), text(q.peer));
    r.field(k + "addresses", text(p.addresses), text(q.addresses));
    r.field(k + "gateway", gateways(p), gateways(q));
    r.field(k + "rx_descriptors", text(p.rx_descriptors), text(q.rx_descriptors));
    r.field(k + "tx_descriptors", text(p.tx_descriptors), text(q.tx_descriptors));
    r.field(k + "link_wait_ms", text(p.link_wait_ms), text(q.link_wait_ms));
    r.field(k + "mtu", text(p.mtu), text(q.mtu));
  }
}

void diff_tracking(const config::Config& a, const config::Config& b, RestartOnly& r) {
  const config::Tracking& s = a.tracking;
  const config::Tracking& t = b.tracking;
  r.field("tracking.capacity_v4", text(s.capacity_v4), text(t.capacity_v4));
  r.field("tracking.capacity_v6", text(s.capacity_v6), text(t.capacity_v6));
  r.field("tracking.invalid_policy", text(s.invalid_policy), text(t.invalid_policy));
  r.field("tracking.liberal", flag(s.tcp.liberal), flag(t.tcp.liberal));
  // Mode lb: pickup follows lb.unknown_flows (compared there).
  if (b.mode == config::Mode::Inline && a.mode == b.mode)
    r.field("tracking.pickup", flag(s.tcp.loose), flag(t.tcp.loose));
  r.field("tracking.ignore_invalid_rst", flag(s.tcp.ignore_invalid_rst), flag(t.tcp.ignore_invalid_rst));
  r.field("tracking.max_retrans", text(std::uint64_t{s.tcp.max_retrans}), text(std::uint64_t{t.tcp.max_retrans}));
  for (const auto& [key, index] : kTimeoutKeys)
    r.field(std::string("tracking.timeouts.") + key, text(std::uint64_t{s.tcp.timeouts.ms[index] / 1000}),
            text(std::uint64_t{t.tcp.timeouts.ms[index] / 1000}), {"tracking.msl_seconds", "tracking.timeouts"});
}

void diff_lb(const config::Config& a, const config::Config& b, RestartOnly& r) {
  r.field("lb.unknown_flows", text(a.lb.unknown_flows), text(b.lb.unknown_flows));
  r.field("lb.arp.retry_ms", text(a.lb.arp.retry_ms), text(b.lb.arp.retry_ms));
  r.field("lb.arp.retries", text(a.lb.arp.retries), text(b.lb.arp.retries));
  r.field("lb.arp.reachable_ms", text(a.lb.arp.reachable_ms), text(b.lb.arp.reachable_ms));
  const auto& n = a.lb.neighbours;
  const auto& m = b.lb.neighbours;
  if (n.size() != m.size()) {
    r.field("lb.neighbours", std::to_string(n.size()) + " static neighbours",
            std::to_string(m.size()) + " static neighbours");
  } else {
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string k = "lb.neighbours[" + std::to_string(i) + "].";
      r.field(k + "address", text(n[i].address), text(m[i].address));
      r.field(k + "mac", text(n[i].mac), text(m[i].mac));
      r.field(k + "port", text(n[i].port), text(m[i].port));
    }
  }
}

const config::Vip* find_vip(const config::Config& c, const std::string& name, std::size_t* index = nullptr) {
  for (std::size_t i = 0; i < c.lb.vips.size(); ++i)
    if (c.lb.vips[i].name == name) {
      if (index) *index = i;
      return &c.lb.vips[i];
    }
  return nullptr;
}

const config::Backend* find_backend(const config::Vip& v, const config::Backend& b) {
  for (const config::Backend& x : v.backends)
    if (x.address == b.address && x.port == b.port) return &x;
  return nullptr;
}

// VIPs are matched by name; each one's address, port and table size are
// fixed, its pool changes.
void diff_vips(const config::Config& a, const config::Config& b, RestartOnly& r, std::vector<PoolChange>& pool) {
  for (std::size_t i = 0; i < b.lb.vips.size(); ++i) {
    const config::Vip& nv = b.lb.vips[i];
    const std::string k = "lb.vips[" + std::to_string(i) + "]";
    const config::Vip* ov = find_vip(a, nv.name);
    if (!ov) {
      r.error(k, "VIP " + nv.name + " (" + endpoint(nv.address, nv.port) + ") added");
      continue;
    }
    r.field(k + ".address", text(ov->address), text(nv.address));
    r.field(k + ".port", text(ov->port), text(nv.port));
    r.field(k + ".table_size", text(ov->table_size), text(nv.table_size));
    for (std::size_t j = 0; j < nv.backends.size(); ++j) {
      const config::Backend& nb = nv.backends[j];
      const config::Backend* ob = find_backend(*ov, nb);
      const std::string at = where(b, k + ".backends[" + std::to_string(j) + "]");
      if (!ob)
        pool.push_back({PoolChange::Kind::Add, nv.name, nb, {}, at});
      else if (ob->weight != nb.weight || ob->state != nb.state)
        pool.push_back({PoolChange::Kind::Update, nv.name, nb, *ob, at});
    }
    for (const config::Backend& ob : ov->backends)
      if (!find_backend(nv, ob)) pool.push_back({PoolChange::Kind::Remove, nv.name, ob, {}, {}});
  }
  for (const config::Vip& ov : a.lb.vips)
    if (!find_vip(b, ov.name)) r.error("lb.vips", "VIP " + ov.name + " (" + endpoint(ov.address, ov.port) + ") removed");
}

std::string describe(const PoolChange& c) {
  const std::string head = "vip " + c.vip + ": backend " + endpoint(c.backend.address, c.backend.port);
  switch (c.kind) {
    case PoolChange::Kind::Add: {
      std::string s = head + " added (weight " + std::to_string(c.backend.weight);
      if (c.backend.state != config::BackendState::Active) s += std::string(", ") + text(c.backend.state);
      return s + ")";
    }
    case PoolChange::Kind::Remove: return head + " removed";
    case PoolChange::Kind::Update: {
      std::string s = head;
      if (c.before.weight != c.backend.weight)
        s += " weight " + std::to_string(c.before.weight) + " -> " + std::to_string(c.backend.weight);
      if (c.before.state != c.backend.state)
        s += std::string(c.before.weight != c.backend.weight ? "," : "") + " state " + text(c.before.state) + " -> " +
             text(c.backend.state);
      return s;
    }
  }
  return head;
}

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += (s.empty() ? "" : "\n") + l;
  return s;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    const auto nl = s.find('\n', at);
    out.push_back(s.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  return out;
}

}  // namespace

Diff diff(const config::Config& a, const config::Config& b) {
  Diff d;
  RestartOnly r(b, d.errors);
  r.field("mode", text(a.mode), text(b.mode));
  r.field("file_prefix", text(a.file_prefix), text(b.file_prefix));
  r.field("lcores.main", text(a.main_lcore), text(b.main_lcore));
  const auto id = [](std::uint32_t v) { return std::to_string(v); };
  r.field("lcores.workers", list(a.worker_lcores, id), list(b.worker_lcores, id));
  r.field("lcores.map", text(a.lcore_map), text(b.lcore_map));
  const auto same = [](const std::string& s) { return s; };
  r.field("eal_args", list(a.eal_args, same), list(b.eal_args, same));
  r.field("mempool.mbufs", text(a.mempool.mbufs), text(b.mempool.mbufs));
  r.field("mempool.cache", text(a.mempool.cache), text(b.mempool.cache));
  r.field("mempool.data_room", text(a.mempool.data_room), text(b.mempool.data_room));
  diff_ports(a, b, r);
  diff_tracking(a, b, r);
  if (a.mode == config::Mode::Lb && b.mode == config::Mode::Lb) {
    diff_lb(a, b, r);
    diff_vips(a, b, r, d.pool);
  }
  // ctlb-control only accepts the file the dataplane runs (the digest), so
  // its own addresses change with a restart of both too.
  r.field("control.socket", text(a.control.socket), text(b.control.socket));
  r.field("control.metrics", text(a.control.metrics), text(b.control.metrics));
  if (!(a.tracking.new_flow_limit == b.tracking.new_flow_limit)) d.new_flow_limit = b.tracking.new_flow_limit;
  return d;
}

std::vector<std::string> summary(const config::Config& running, const Diff& d) {
  std::vector<std::string> out;
  for (const PoolChange& c : d.pool) out.push_back(describe(c));
  if (d.new_flow_limit)
    out.push_back("tracking.new_flow_limit: changed from " + text(running.tracking.new_flow_limit) + " to " +
                  text(*d.new_flow_limit));
  return out;
}

config::Config with_live_pools(config::Config c, const lb::State& live) {
  for (config::Vip& v : c.lb.vips) {
    const std::uint32_t index = lb::vip_by_name(live, v.name);
    if (index == lb::kNoVip) continue;
    v.backends.clear();
    for (std::uint32_t s = 0; s < live.slot_count; ++s) {
      const lb::BackendSlot& b = live.slots[s];
      if (b.vip != index || b.state == lb::SlotState::Free || b.state == lb::SlotState::Removed) continue;
      config::Backend be;
      be.address.family = b.family;
      std::memcpy(be.address.bytes.data(), b.addr, b.family == 4 ? 4 : 16);
      be.port = b.port;
      be.weight = b.weight;
      be.state = b.state == lb::SlotState::Draining ? config::BackendState::Draining
                 : b.state == lb::SlotState::Down   ? config::BackendState::Down
                                                    : config::BackendState::Active;
      v.backends.push_back(be);
    }
  }
  return c;
}

std::vector<std::string> apply_pool(lb::State& s, const std::vector<PoolChange>& changes) {
  std::vector<std::string> errors;
  for (const PoolChange& c : changes) {
    const std::uint32_t v = lb::vip_by_name(s, c.vip);
    const config::Backend& b = c.backend;
    auto op = [&](lb::Op o, std::uint32_t weight = 0) {
      const std::string e = lb::apply(s, o, v, b.address, b.port, weight);
      if (!e.empty()) errors.push_back((c.where.empty() ? "" : c.where + ": ") + describe(c) + ": " + e);
      return e.empty();
    };
    auto set_state = [&] {
      if (b.state == config::BackendState::Draining) return op(lb::Op::Drain);
      if (b.state == config::BackendState::Down) return op(lb::Op::Down);
      return true;
    };
    if (v == lb::kNoVip) {
      errors.push_back(describe(c) + ": the VIP is not in the running LB state");
      continue;
    }
    switch (c.kind) {
      case PoolChange::Kind::Add:
        if (op(lb::Op::Add, b.weight)) set_state();
        break;
      case PoolChange::Kind::Remove:
        op(lb::Op::Remove);
        break;
      case PoolChange::Kind::Update: {
        // lb::Op::Weight makes a backend active (weight > 0): it also brings
        // a draining or down one back; draining and down come after it.
        const bool reweigh = c.before.weight != b.weight ||
                             (b.state == config::BackendState::Active && c.before.state != b.state);
        if (reweigh && !op(lb::Op::Weight, b.weight)) break;
        if (reweigh || c.before.state != b.state) set_state();
        break;
      }
    }
  }
  return errors;
}

void publish_new_flow_limit(shm::Header& h, const config::NewFlowLimit& l) {
  // A worker reads the rate, then the burst (two words, no lock). Written in
  // the other order, a worker sees either the old pair, the new pair, or the
  // old rate with the new burst, never a new rate with an old burst. So
  // never write a burst of 0 under a rate that may still be read: without a
  // limit (rate 0) the burst means nothing and is left as it was.
  if (l.rate != 0) __atomic_store_n(&h.new_flow_burst, l.burst, __ATOMIC_RELEASE);
  __atomic_store_n(&h.new_flow_rate, l.rate, __ATOMIC_RELEASE);
}

Outcome Reloader::refuse(Outcome o) {
  o.ok = false;
  o.changes.clear();
  o.digest = running_.digest;
  errors_.fetch_add(1, std::memory_order_relaxed);
  return o;
}

Outcome Reloader::reload(Result<config::Config> loaded) {
  Outcome o;
  o.file = running_.file;
  if (!loaded) {
    o.errors = split(loaded.error().message);
    return refuse(std::move(o));
  }
  config::Config& next = loaded.value();
  o.file = next.file;
  const config::Config now =
      target_.zone ? with_live_pools(running_, *shm::live_lb_generation(*target_.zone)) : running_;
  const Diff d = diff(now, next);
  if (!d.errors.empty()) {
    o.errors = d.errors;
    return refuse(std::move(o));
  }
  if (!d.pool.empty()) {
    if (!target_.zone) {
      o.errors.push_back(next.file + ": pool changes, but the dataplane does not run in mode lb");
      return refuse(std::move(o));
    }
    const std::string err = publish(
        *target_.zone, [&](lb::State& s) { return join(apply_pool(s, d.pool)); }, target_.wait);
    if (!err.empty()) {
      o.errors = split(err);
      return refuse(std::move(o));
    }
  }
  // Nothing can fail from here on.
  o.changes = summary(now, d);
  if (target_.header) {
    if (d.new_flow_limit) publish_new_flow_limit(*target_.header, *d.new_flow_limit);
    std::snprintf(target_.header->config_digest, sizeof target_.header->config_digest, "%s", next.digest.c_str());
  }
  running_ = std::move(next);
  o.ok = true;
  o.digest = running_.digest;
  reloads_.fetch_add(1, std::memory_order_relaxed);
  return o;
}

}  // namespace ctlb::control::reload
