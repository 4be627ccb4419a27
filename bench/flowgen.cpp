// ctlb_flowgen: writes deterministic captures of realistic TCP traffic for
// the throughput harness (bench/throughput.sh), the pktgen kit
// (bench/pktgen/) and offline checks with `ctlbctl trace`.
//
// Every connection is a Linux-like life: SYN with MSS, SACK-permitted,
// timestamps and window scale; the SYN-ACK alike; data both ways with
// correct sequence and acknowledgement numbers, delayed ACKs every second
// segment; a close by the client's FIN, the server's FIN or an RST. Many
// connections run at once: packets are interleaved so that two packets of
// one connection are at least --spacing packets apart (default 32, one rx
// burst), also across the wrap-around when the capture is replayed in a
// loop. Addresses: IPv4 198.18.0.0/15 (RFC 2544 benchmarking), IPv6
// 2001:2::/48 (RFC 5180). Checksums are valid. Same arguments and seed, same
// bytes.
//
// With --lb-backends the servers are VIPs of ctlb in mode lb and the answers
// come from backends: the backend of each connection is the one ctlb-dataplane
// picks, computed with the dataplane's own code (lb::init_state builds the
// Maglev tables from a config::Config, the connection's first frame goes
// through packet::parse_frame, flow::make_key and flow::hash_key, then
// lb::maglev_pick), so the capture cannot drift from the dataplane.
//
// No libpcap and no DPDK: plain stdio, classic microsecond pcap, Ethernet
// link type; the dataplane headers used are its pure, EAL-free part.
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <arpa/inet.h>

#include "config/config.hpp"
#include "dataplane/flow/flow_key.hpp"
#include "dataplane/lb/lb_state.hpp"
#include "dataplane/lb/maglev.hpp"
#include "dataplane/packet/parse.hpp"

namespace {

constexpr const char* kUsage = R"(usage: ctlb_flowgen --mode MODE --output FILE.pcap [options]

Writes a pcap of TCP connections for benchmarks: deterministic (same options
and seed, same bytes), valid IPv4/IPv6 and TCP checksums, Linux-like options,
addresses in 198.18.0.0/15 (IPv6: 2001:2::/48).

modes:
  lifecycle     --connections complete connections, --concurrent at a time:
                handshake, --exchanges request/response exchanges, close by
                FIN (client or server) or RST as --close-mix says
  established   the handshakes of --concurrent flows first, then --rounds
                rounds in which every flow sends a request and gets a
                response; no close (an established-only phase)
  syn           --connections SYNs of distinct flows (connection set-up rate)

  established --flood-syns M   a SYN flood mixed into the established flows:
                the handshakes first as above, then the data rounds with M
                SYNs of distinct random sources (198.18.0.0/15, ports
                1024..65535, to the servers on ports 80 and 443, never a
                tuple of an established flow) spread evenly among them.
                The established flows' packets are byte for byte those of
                the same command without --flood-syns (timestamps
                included): filter the flood out and the two captures are
                equal. Flood SYNs share the timestamp of the established
                packet they precede.

options:
  -o, --output FILE        the capture to write (required)
  --mode MODE              lifecycle | established | syn (default lifecycle)
  --seed N                 seed of every random choice (default 1)
  --concurrent N           connections open at once (default 1000; lifecycle,
                           established)
  --connections N          connections in total (lifecycle: default
                           --concurrent; syn: default 1000)
  --rounds N               established: request/response rounds (default 10)
  --handshake-output FILE  established: write the handshakes to FILE and only
                           the data rounds to --output
  --flood-syns M           established: M SYNs of distinct random sources
                           in the data rounds (default 0: no flood); the
                           summary's "flood" says where they are
  --exchanges N            lifecycle: request/response exchanges per
                           connection (default 1)
  --request BYTES          bytes the client sends per exchange or round
                           (default 100)
  --response BYTES         bytes the server answers per exchange or round;
                           0: a pure ACK (default 300)
  --payload BYTES          TCP payload per full segment, 1..1448 (default
                           1448; IPv6 segments are capped at 1428)
  --payload-mix LIST       segment payloads drawn at random per segment from
                           this comma list (e.g. 16,64,512,1448), instead of
                           --payload
  --close-mix MIX          lifecycle: weights of the closes, e.g.
                           fin-client=45,fin-server=45,rst=10 (the default)
  --ipv6-share F           fraction of connections over IPv6, 0..1 (default 0)
  --spacing N              least distance in packets between two packets of
                           one connection, wrap-around included (default 32,
                           one rx burst; 1 turns it off)
  --clients N              client addresses used, 1..65534 (default 65534)
  --servers N              server addresses used, 1..65534 (default 64)
  --pps N                  packet rate the timestamps assume (default 1000000)
  --lb-backends N          0: off (default). 1..254: traffic through ctlb in
                           mode lb. Every server address is a VIP on ports
                           80 and 443, each with a pool of N backends
                           198.19.1.1..N (IPv6: 2001:2:0:3::1..N) on port
                           8080 (for VIP port 80) or 8443 (443), weight 1,
                           Maglev table 65537. Client->server frames keep
                           the VIP as destination; server->client frames
                           come from the backend that ctlb picks for the
                           connection (same Maglev tables and flow hash as
                           ctlb-dataplane). IPv4 VIPs unless --ipv6-share
                           is 1, IPv6 VIPs if it is above 0; at most 64
                           VIPs (--servers x 2 ports x families) and 1024
                           backends over all VIPs. --summary-json then
                           lists the VIPs and pools (to write ctlb's config
                           from) and the connections of each backend
  --summary-json FILE      write counts, frame sizes and expected final
                           connection states as JSON
  --help                   this text

In established mode the handshakes are a prefix of the capture (packets
0 .. 3 x --concurrent - 1); replaying the capture in a loop re-synchronises
each flow through its SYN and SYN-ACK, and the data rounds stay in window
while --rounds x max(--request, --response) stays below 64 KiB.
Exit codes: 0 written, 1 cannot write, 2 bad usage.
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "ctlb_flowgen: %s (see --help)\n", message.c_str());
  std::exit(2);
}

[[noreturn]] void fatal(const std::string& message) {
  std::fprintf(stderr, "ctlb_flowgen: %s\n", message.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------- options

enum class Mode : std::uint8_t { Lifecycle, Established, Syn };
enum class Close : std::uint8_t { FinClient = 0, FinServer = 1, Rst = 2 };
constexpr const char* kCloseNames[] = {"fin-client", "fin-server", "rst"};

struct Options {
  Mode mode = Mode::Lifecycle;
  std::string output;
  std::string handshake_output;
  std::string summary_json;
  std::uint64_t seed = 1;
  std::uint64_t concurrent = 1000;
  std::uint64_t connections = 0;  // 0: the mode's default
  std::uint64_t rounds = 10;
  std::uint64_t exchanges = 1;
  std::uint32_t request = 100;
  std::uint32_t response = 300;
  std::uint32_t payload = 1448;
  std::vector<std::uint32_t> payload_mix;
  std::uint32_t close_weight[3] = {45, 45, 10};
  double ipv6_share = 0.0;
  std::uint32_t spacing = 32;
  std::uint32_t clients = 65534;
  std::uint32_t servers = 64;
  std::uint64_t pps = 1000000;
  std::uint32_t lb_backends = 0;  // 0: no load balancer
  std::uint64_t flood_syns = 0;   // established: SYNs of random sources among the data rounds
  std::string args;  // the command line, for the summary
};

constexpr std::uint32_t kMaxPayloadV4 = 1448;  // MSS 1460 minus 12 bytes of timestamps
constexpr std::uint32_t kMaxPayloadV6 = 1428;  // MSS 1440 minus 12
constexpr std::uint64_t kEphemeralFirst = 32768;  // Linux ip_local_port_range
constexpr std::uint64_t kEphemeralCount = 60999 - 32768 + 1;
constexpr std::uint64_t kMaxPackets = 1'000'000'000;
constexpr std::uint64_t kMaxLbVips = 64;        // config::kMaxVips
constexpr std::uint64_t kMaxLbBackends = 1024;  // config::kMaxBackends
// Flood sources: 198.18.0.1 .. 198.19.255.254, ports 1024..65535.
constexpr std::uint32_t kFloodNet = 0xc6120000u;  // 198.18.0.0/15
constexpr std::uint32_t kFloodHosts = (1u << 17) - 2;
constexpr std::uint32_t kFloodPortFirst = 1024;
constexpr std::uint32_t kFloodPorts = 65536 - kFloodPortFirst;
constexpr std::uint64_t kMaxFloodSyns = 1u << 26;  // far below the 8.4e9 sources: few redraws
static_assert(kMaxLbVips == ctlb::config::kMaxVips && kMaxLbBackends == ctlb::config::kMaxBackends);

std::uint64_t parse_uint(std::string_view name, const std::string& text, std::uint64_t min, std::uint64_t max) {
  const std::string what = std::string(name) + ": expected an integer in " + std::to_string(min) + ".." +
                           std::to_string(max) + " (got '" + text + "')";
  if (text.empty() || text.size() > 19) usage_error(what);
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') usage_error(what);
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v < min || v > max) usage_error(what);
  return v;
}

double parse_fraction(std::string_view name, const std::string& text) {
  const std::string what = std::string(name) + ": expected a number in 0..1 (got '" + text + "')";
  if (text.empty()) usage_error(what);
  for (char c : text)
    if (!((c >= '0' && c <= '9') || c == '.')) usage_error(what);
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size() || !(v >= 0.0 && v <= 1.0)) usage_error(what);
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

Options parse_options(int argc, char** argv) {
  Options o;
  bool seen_mode = false, seen_concurrent = false, seen_connections = false, seen_rounds = false,
       seen_exchanges = false, seen_close = false, seen_payload = false, seen_mix = false, seen_request = false,
       seen_response = false;
  std::vector<std::string> seen;
  for (int i = 1; i < argc; ++i) {
    o.args += (i > 1 ? " " : "") + std::string(argv[i]);
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    std::string value;
    bool has_value = false;
    if (arg.rfind("--", 0) == 0) {
      const auto eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_value = true;
      }
    } else if (arg != "-o") {
      usage_error("unexpected argument '" + arg + "'");
    }
    if (arg == "-o") arg = "--output";
    static const char* kKnown[] = {"--output", "--mode", "--seed", "--concurrent", "--connections", "--rounds",
                                   "--handshake-output", "--exchanges", "--request", "--response", "--payload",
                                   "--payload-mix", "--close-mix", "--ipv6-share", "--spacing", "--clients",
                                   "--servers", "--pps", "--summary-json", "--lb-backends",
                                   "--flood-syns"};
    bool known = false;
    for (const char* k : kKnown) known = known || arg == k;
    if (!known) usage_error("unknown option '" + arg + "'");
    if (std::find(seen.begin(), seen.end(), arg) != seen.end()) usage_error(arg + ": given twice");
    seen.push_back(arg);
    if (!has_value) {
      if (i + 1 >= argc) usage_error(arg + ": missing value");
      value = argv[++i];
      o.args += " " + value;
    }
    if (arg == "--output") {
      if (value.empty()) usage_error("--output: expected a file name");
      o.output = value;
    } else if (arg == "--mode") {
      seen_mode = true;
      if (value == "lifecycle") o.mode = Mode::Lifecycle;
      else if (value == "established") o.mode = Mode::Established;
      else if (value == "syn") o.mode = Mode::Syn;
      else usage_error("--mode: expected lifecycle, established or syn (got '" + value + "')");
    } else if (arg == "--seed") {
      o.seed = parse_uint(arg, value, 0, UINT64_MAX / 2);
    } else if (arg == "--concurrent") {
      seen_concurrent = true;
      o.concurrent = parse_uint(arg, value, 1, 1u << 26);
    } else if (arg == "--connections") {
      seen_connections = true;
      o.connections = parse_uint(arg, value, 1, 1u << 30);
    } else if (arg == "--rounds") {
      seen_rounds = true;
      o.rounds = parse_uint(arg, value, 0, 1u << 20);
    } else if (arg == "--handshake-output") {
      if (value.empty()) usage_error("--handshake-output: expected a file name");
      o.handshake_output = value;
    } else if (arg == "--exchanges") {
      seen_exchanges = true;
      o.exchanges = parse_uint(arg, value, 0, 1u << 16);
    } else if (arg == "--request") {
      seen_request = true;
      o.request = static_cast<std::uint32_t>(parse_uint(arg, value, 0, 1u << 24));
    } else if (arg == "--response") {
      seen_response = true;
      o.response = static_cast<std::uint32_t>(parse_uint(arg, value, 0, 1u << 24));
    } else if (arg == "--payload") {
      seen_payload = true;
      o.payload = static_cast<std::uint32_t>(parse_uint(arg, value, 1, kMaxPayloadV4));
    } else if (arg == "--payload-mix") {
      seen_mix = true;
      for (const auto& part : split(value, ','))
        o.payload_mix.push_back(static_cast<std::uint32_t>(parse_uint("--payload-mix", part, 1, kMaxPayloadV4)));
    } else if (arg == "--close-mix") {
      seen_close = true;
      std::uint32_t w[3] = {0, 0, 0};
      bool given[3] = {false, false, false};
      for (const auto& part : split(value, ',')) {
        const auto eq = part.find('=');
        if (eq == std::string::npos)
          usage_error("--close-mix: expected fin-client=W,fin-server=W,rst=W (got '" + part + "')");
        const std::string key = part.substr(0, eq);
        int k = -1;
        for (int j = 0; j < 3; ++j)
          if (key == kCloseNames[j]) k = j;
        if (k < 0) usage_error("--close-mix: unknown close '" + key + "' (expected fin-client, fin-server or rst)");
        if (given[k]) usage_error("--close-mix: '" + key + "' given twice");
        given[k] = true;
        w[k] = static_cast<std::uint32_t>(parse_uint("--close-mix " + key, part.substr(eq + 1), 0, 1000000));
      }
      if (w[0] + w[1] + w[2] == 0) usage_error("--close-mix: the weights add up to 0");
      std::copy(w, w + 3, o.close_weight);
    } else if (arg == "--ipv6-share") {
      o.ipv6_share = parse_fraction(arg, value);
    } else if (arg == "--spacing") {
      o.spacing = static_cast<std::uint32_t>(parse_uint(arg, value, 1, 1u << 20));
    } else if (arg == "--clients") {
      o.clients = static_cast<std::uint32_t>(parse_uint(arg, value, 1, 65534));
    } else if (arg == "--servers") {
      o.servers = static_cast<std::uint32_t>(parse_uint(arg, value, 1, 65534));
    } else if (arg == "--pps") {
      o.pps = parse_uint(arg, value, 1, 1'000'000'000'000ull);
    } else if (arg == "--lb-backends") {
      o.lb_backends = static_cast<std::uint32_t>(parse_uint(arg, value, 0, 254));
    } else if (arg == "--flood-syns") {
      o.flood_syns = parse_uint(arg, value, 0, kMaxFloodSyns);
    } else if (arg == "--summary-json") {
      if (value.empty()) usage_error("--summary-json: expected a file name");
      o.summary_json = value;
    }
  }
  (void)seen_mode;
  if (o.output.empty()) usage_error("--output FILE is required");
  if (seen_payload && seen_mix) usage_error("--payload and --payload-mix exclude each other");
  const char* mode_name = o.mode == Mode::Lifecycle ? "lifecycle" : o.mode == Mode::Established ? "established" : "syn";
  auto only_in = [&](bool given, const char* option, const char* modes) {
    if (given) usage_error(std::string(option) + " applies to --mode " + modes + " only, not " + mode_name);
  };
  only_in(seen_rounds && o.mode != Mode::Established, "--rounds", "established");
  only_in(!o.handshake_output.empty() && o.mode != Mode::Established, "--handshake-output", "established");
  only_in(seen_exchanges && o.mode != Mode::Lifecycle, "--exchanges", "lifecycle");
  only_in(seen_close && o.mode != Mode::Lifecycle, "--close-mix", "lifecycle");
  only_in(seen_concurrent && o.mode == Mode::Syn, "--concurrent", "lifecycle and established");
  only_in(seen_connections && o.mode == Mode::Established, "--connections", "lifecycle and syn");
  only_in(seen_request && o.mode == Mode::Syn, "--request", "lifecycle and established");
  only_in(seen_response && o.mode == Mode::Syn, "--response", "lifecycle and established");
  only_in(seen_payload && o.mode == Mode::Syn, "--payload", "lifecycle and established");
  only_in(seen_mix && o.mode == Mode::Syn, "--payload-mix", "lifecycle and established");
  only_in(o.flood_syns && o.mode != Mode::Established, "--flood-syns", "established");
  if (o.flood_syns && o.lb_backends) usage_error("--flood-syns and --lb-backends exclude each other");
  if (o.mode == Mode::Lifecycle) {
    if (!seen_connections) o.connections = o.concurrent;
    if (o.connections < o.concurrent)
      usage_error("--connections (" + std::to_string(o.connections) + ") must be at least --concurrent (" +
                  std::to_string(o.concurrent) + ")");
  } else if (o.mode == Mode::Established) {
    o.connections = o.concurrent;
    if (!o.handshake_output.empty() && o.handshake_output == o.output)
      usage_error("--handshake-output must differ from --output");
    if (!o.handshake_output.empty() && o.rounds == 0)
      usage_error("--handshake-output with --rounds 0 would leave --output empty");
  } else if (!seen_connections) {
    o.connections = 1000;
  }
  if (o.mode != Mode::Syn && o.concurrent < o.spacing)
    usage_error("--concurrent (" + std::to_string(o.concurrent) + ") must be at least --spacing (" +
                std::to_string(o.spacing) +
                ") so that two packets of a connection are never in one burst; lower --spacing for small captures");
  if (o.lb_backends) {
    const std::uint64_t families = (o.ipv6_share < 1.0 ? 1 : 0) + (o.ipv6_share > 0.0 ? 1 : 0);
    const std::uint64_t vips = std::uint64_t{o.servers} * 2 * families;
    if (vips > kMaxLbVips)
      usage_error("--lb-backends: --servers " + std::to_string(o.servers) + " make " + std::to_string(vips) +
                  " VIPs (2 ports per server address and family), at most " + std::to_string(kMaxLbVips) +
                  ": lower --servers");
    if (vips * o.lb_backends > kMaxLbBackends)
      usage_error("--lb-backends: " + std::to_string(vips) + " VIPs x " + std::to_string(o.lb_backends) +
                  " backends, at most " + std::to_string(kMaxLbBackends) + " over all VIPs");
  }
  if (o.connections > static_cast<std::uint64_t>(o.clients) * kEphemeralCount)
    usage_error("--connections: at most --clients x 28232 distinct client ports (" +
                std::to_string(static_cast<std::uint64_t>(o.clients) * kEphemeralCount) + ")");
  return o;
}

// ---------------------------------------------------------------- randomness

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Rng {
  std::uint64_t s;
  Rng(std::uint64_t seed, std::uint64_t index, std::uint64_t stream)
      : s(splitmix(splitmix(seed * 0x100000001b3ull + stream) ^ index)) {}
  std::uint64_t next() { return splitmix(s++); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(next() >> 32); }
  // Uniform in [0, n).
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>((static_cast<std::uint64_t>(u32()) * n) >> 32); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

// ---------------------------------------------------------------- connections

constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

// One packet of a connection's plan: direction (0 client->server, 1 back),
// TCP flags and payload length.
struct Step {
  std::uint8_t dir;
  std::uint8_t flags;
  std::uint16_t len;
};
static_assert(sizeof(Step) == 4);

struct Params {
  bool v6;
  Close close;
  std::uint32_t client;  // index of the client address, 0-based
  std::uint32_t client_v4;  // nonzero: the client's IPv4 address itself (a flood source), not `client`'s
  std::uint32_t server;  // index of the server address, 0-based
  std::uint16_t port[2];  // client port, server port
  std::uint32_t isn[2];
  std::uint32_t ts_base[2];
  std::uint16_t ip_id[2];
  std::uint32_t flow_label[2];
};

class Generator {
 public:
  explicit Generator(const Options& o) : o_(o) {}

  Params params(std::uint64_t i) const {
    Rng r(o_.seed, i, 1);
    Params p{};
    p.v6 = o_.ipv6_share > 0 && r.unit() < o_.ipv6_share;
    const std::uint32_t total = o_.close_weight[0] + o_.close_weight[1] + o_.close_weight[2];
    const std::uint32_t pick = r.below(total);
    p.close = pick < o_.close_weight[0]                        ? Close::FinClient
              : pick < o_.close_weight[0] + o_.close_weight[1] ? Close::FinServer
                                                               : Close::Rst;
    // Client address and port: injective in i, so every connection has its
    // own 4-tuple (a replay in a loop then reopens the same tuples).
    p.client = static_cast<std::uint32_t>(i % o_.clients);
    const std::uint64_t k = i / o_.clients;
    const std::uint64_t offset = splitmix(o_.seed ^ (0xc0ffee00ull + p.client)) % kEphemeralCount;
    p.port[0] = static_cast<std::uint16_t>(kEphemeralFirst + (k + offset) % kEphemeralCount);
    p.server = r.below(o_.servers);
    p.port[1] = r.below(4) == 0 ? 80 : 443;
    for (int d = 0; d < 2; ++d) {
      p.isn[d] = r.u32();
      p.ts_base[d] = r.u32();
      p.ip_id[d] = static_cast<std::uint16_t>(r.u32());
      p.flow_label[d] = r.u32() & 0xfffff;
    }
    return p;
  }

  // The connection's packets in order (established mode: the 3 handshake
  // packets first, then the rounds).
  void plan(std::uint64_t i, const Params& p, std::vector<Step>& out) const {
    Rng r(o_.seed, i, 2);
    out.push_back({0, kSyn, 0});
    if (o_.mode == Mode::Syn) return;
    out.push_back({1, kSyn | kAck, 0});
    out.push_back({0, kAck, 0});
    const std::uint32_t cap = p.v6 ? kMaxPayloadV6 : kMaxPayloadV4;
    auto segments = [&](std::uint8_t dir, std::uint32_t bytes) {
      // Data of one side in segments; the other side ACKs every second
      // segment while more follow (delayed ACK); the last one is ACKed by
      // what the other side sends next.
      std::uint32_t n = 0;
      while (bytes > 0) {
        std::uint32_t seg = o_.payload_mix.empty() ? o_.payload : o_.payload_mix[r.below(static_cast<std::uint32_t>(o_.payload_mix.size()))];
        seg = std::min({seg, cap, bytes});
        bytes -= seg;
        out.push_back({dir, static_cast<std::uint8_t>(kAck | (bytes == 0 ? kPsh : 0)), static_cast<std::uint16_t>(seg)});
        if (++n % 2 == 0 && bytes > 0) out.push_back({static_cast<std::uint8_t>(1 - dir), kAck, 0});
      }
    };
    auto exchange = [&] {
      segments(0, o_.request);
      if (o_.response > 0) segments(1, o_.response);
      else if (o_.request > 0) out.push_back({1, kAck, 0});
    };
    if (o_.mode == Mode::Established) {
      for (std::uint64_t k = 0; k < o_.rounds; ++k) exchange();
      return;
    }
    for (std::uint64_t k = 0; k < o_.exchanges; ++k) exchange();
    switch (p.close) {
      case Close::FinClient:  // client closes; the server closes at once (FIN and ACK in one)
        out.push_back({0, kFin | kAck, 0});
        out.push_back({1, kFin | kAck, 0});
        out.push_back({0, kAck, 0});
        break;
      case Close::FinServer:
        out.push_back({1, kFin | kAck, 0});
        out.push_back({0, kFin | kAck, 0});
        out.push_back({1, kAck, 0});
        break;
      case Close::Rst:  // abortive close (SO_LINGER 0): RST with ACK
        out.push_back({0, kRst | kAck, 0});
        break;
    }
  }

 private:
  const Options& o_;
};

// The SYN flood of --flood-syns: SYN f comes from a source (address, port)
// of its own, drawn from 198.18.0.0/15 x 1024..65535 with the seed (a redraw
// when the source is taken, by an earlier flood SYN or an established
// flow), to one of the servers on port 80 or 443. Sources are distinct, so
// every flood SYN is a flow of its own and none is an established flow's.
class Flood {
 public:
  Flood(const Options& o, const Generator& gen) : o_(o) {
    taken_.reserve(o.flood_syns + o.connections);
    for (std::uint64_t i = 0; i < o.connections; ++i) {
      const Params p = gen.params(i);
      if (!p.v6) taken_.insert(source(0xc6120000u + p.client + 1, p.port[0]));  // address(): 198.18.0.0/16
    }
  }

  Params params(std::uint64_t f) {
    Rng r(o_.seed, f, 3);
    Params p{};
    p.server = r.below(o_.servers);
    const std::uint32_t server_addr = 0xc6130000u + p.server + 1;  // address(): 198.19.0.0/16, host index + 1
    for (;;) {
      const std::uint32_t addr = kFloodNet + 1 + r.below(kFloodHosts);
      const auto port = static_cast<std::uint16_t>(kFloodPortFirst + r.below(kFloodPorts));
      if (addr == server_addr || !taken_.insert(source(addr, port)).second) continue;
      p.client_v4 = addr;
      p.port[0] = port;
      break;
    }
    p.port[1] = r.below(4) == 0 ? 80 : 443;
    p.isn[0] = r.u32();
    p.ts_base[0] = r.u32();
    p.ip_id[0] = static_cast<std::uint16_t>(r.u32());
    return p;
  }

 private:
  static std::uint64_t source(std::uint32_t addr, std::uint16_t port) { return std::uint64_t{addr} << 16 | port; }
  const Options& o_;
  std::unordered_set<std::uint64_t> taken_;
};

// Where the flood's SYNs go among the data rounds: of the T = D + M
// positions of the data phase (D established packets, M flood SYNs),
// position j holds a flood SYN when floor((j + 1) M / T) > floor(j M / T),
// so the first j positions hold floor(j M / T) of them (the harness counts
// a pass's packets with this formula).
struct FloodSpread {
  std::uint64_t flood = 0, total = 0;
  bool at(std::uint64_t j) const { return (j + 1) * flood / total > j * flood / total; }
};

// The live state of a connection while its packets are written.
struct Live {
  std::uint64_t conn = 0;
  Params p{};
  std::uint32_t nxt[2] = {0, 0};
  std::uint32_t last_tsval[2] = {0, 0};
  std::uint16_t ip_id[2] = {0, 0};
  // --lb-backends: the backend that answers instead of the server (the VIP).
  bool has_backend = false;
  std::uint8_t backend_addr[16] = {};
  std::uint16_t backend_port = 0;
  void start(std::uint64_t index, const Params& params) {
    conn = index;
    p = params;
    has_backend = false;
    nxt[0] = p.isn[0];
    nxt[1] = p.isn[1];
    last_tsval[0] = last_tsval[1] = 0;
    ip_id[0] = p.ip_id[0];
    ip_id[1] = p.ip_id[1];
  }
};

// ---------------------------------------------------------------- frames

void put16(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v & 0xffff);
}

std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t acc) {
  for (std::size_t i = 0; i + 1 < n; i += 2) acc += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) acc += static_cast<std::uint32_t>(p[n - 1] << 8);
  return acc;
}
std::uint16_t fold(std::uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint16_t>(~acc & 0xffff);
}

constexpr std::uint8_t kMacClientSide[6] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};
constexpr std::uint8_t kMacServerSide[6] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x02};

void address(bool v6, bool server, std::uint32_t index, std::uint8_t* out) {
  const std::uint32_t host = index + 1;  // skip .0
  if (!v6) {
    // 198.18.0.0/16 clients, 198.19.0.0/16 servers.
    out[0] = 198;
    out[1] = server ? 19 : 18;
    out[2] = static_cast<std::uint8_t>(host >> 8);
    out[3] = static_cast<std::uint8_t>(host);
    return;
  }
  // 2001:2:0:1::/64 clients, 2001:2:0:2::/64 servers.
  std::memset(out, 0, 16);
  out[0] = 0x20;
  out[1] = 0x01;
  out[3] = 0x02;
  out[7] = server ? 2 : 1;
  put32(out + 12, host);
}

// Builds the frame of `s` for connection `lv` at `ms` (its timestamp clock)
// into `buf`; returns the frame length.
std::size_t build_frame(const Step& s, Live& lv, std::uint64_t ms, std::uint8_t* buf) {
  const Params& p = lv.p;
  const int d = s.dir;
  const int od = 1 - d;
  const bool syn = s.flags & kSyn;
  std::uint8_t* eth = buf;
  std::memcpy(eth, d == 0 ? kMacServerSide : kMacClientSide, 6);
  std::memcpy(eth + 6, d == 0 ? kMacClientSide : kMacServerSide, 6);
  put16(eth + 12, p.v6 ? 0x86dd : 0x0800);

  const std::size_t ip_len = p.v6 ? 40 : 20;
  const std::size_t opt_len = syn ? 20 : 12;
  const std::size_t tcp_len = 20 + opt_len;
  std::uint8_t* ip = buf + 14;
  std::uint8_t* tcp = ip + ip_len;
  std::uint8_t src[16], dst[16];
  address(p.v6, d == 1, d == 0 ? p.client : p.server, src);
  address(p.v6, d == 0, d == 0 ? p.server : p.client, dst);
  if (p.client_v4 && !p.v6) put32(d == 0 ? src : dst, p.client_v4);
  // Through the load balancer the client sends to the VIP (the server's
  // address and port) and the backend answers.
  std::uint16_t server_port = p.port[1];
  if (lv.has_backend && d == 1) {
    std::memcpy(src, lv.backend_addr, 16);
    server_port = lv.backend_port;
  }

  // TCP header and options.
  const std::uint32_t seq = lv.nxt[d];
  const std::uint32_t ack = (s.flags & kAck) ? lv.nxt[od] : 0;
  const std::uint32_t tsval = p.ts_base[d] + static_cast<std::uint32_t>(ms);
  const std::uint32_t tsecr = (s.flags & kAck) ? lv.last_tsval[od] : 0;
  put16(tcp, d == 0 ? p.port[0] : server_port);
  put16(tcp + 2, d == 0 ? p.port[1] : p.port[0]);
  put32(tcp + 4, seq);
  put32(tcp + 8, ack);
  tcp[12] = static_cast<std::uint8_t>((tcp_len / 4) << 4);
  tcp[13] = s.flags;
  std::uint32_t window;
  if (syn) window = p.v6 ? 64800 : (d == 0 ? 64240 : 65160);  // unscaled
  else window = d == 0 ? 502 : 509;                           // x 128 (wscale 7)
  put16(tcp + 14, window);
  put16(tcp + 16, 0);
  put16(tcp + 18, 0);
  std::uint8_t* opt = tcp + 20;
  if (syn) {
    // Linux order: MSS, SACK permitted, timestamps, NOP, window scale.
    opt[0] = 2, opt[1] = 4;
    put16(opt + 2, p.v6 ? 1440 : 1460);
    opt[4] = 4, opt[5] = 2;
    opt[6] = 8, opt[7] = 10;
    put32(opt + 8, tsval);
    put32(opt + 12, tsecr);
    opt[16] = 1;
    opt[17] = 3, opt[18] = 3, opt[19] = 7;
  } else {
    opt[0] = 1, opt[1] = 1, opt[2] = 8, opt[3] = 10;
    put32(opt + 4, tsval);
    put32(opt + 8, tsecr);
  }
  std::uint8_t* payload = tcp + tcp_len;
  for (std::uint32_t k = 0; k < s.len; ++k) payload[k] = static_cast<std::uint8_t>('a' + (seq + k) % 26);
  const std::size_t l4 = tcp_len + s.len;

  // IP header.
  if (!p.v6) {
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, static_cast<std::uint32_t>(20 + l4));
    put16(ip + 4, lv.ip_id[d]++);
    put16(ip + 6, 0x4000);  // DF
    ip[8] = 64;
    ip[9] = 6;
    put16(ip + 10, 0);
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    put16(ip + 10, fold(sum16(ip, 20, 0)));
  } else {
    put32(ip, 0x60000000u | p.flow_label[d]);
    put16(ip + 4, static_cast<std::uint32_t>(l4));
    ip[6] = 6;
    ip[7] = 64;
    std::memcpy(ip + 8, src, 16);
    std::memcpy(ip + 24, dst, 16);
  }
  // TCP checksum over the pseudo header.
  const std::size_t alen = p.v6 ? 16 : 4;
  std::uint32_t acc = sum16(src, alen, 0);
  acc = sum16(dst, alen, acc);
  acc += 6 + static_cast<std::uint32_t>(l4);
  acc = sum16(tcp, l4, acc);
  put16(tcp + 16, fold(acc));

  lv.last_tsval[d] = tsval;
  lv.nxt[d] = seq + s.len + (syn ? 1 : 0) + ((s.flags & kFin) ? 1 : 0);
  return 14 + ip_len + l4;
}

// ---------------------------------------------------------------- load balancer

namespace lb = ctlb::lb;

// The load balancer the capture is written for (--lb-backends): the VIPs and
// pools as a config::Config, and the lb::State that ctlb-dataplane builds
// from it with the same function. Only the VIPs, pools, weights and table
// sizes enter the Maglev tables; the one port here exists because every
// backend needs a route (the benchmark's own ports are its business).
class Balancer {
 public:
  explicit Balancer(const Options& o) {
    config_.mode = ctlb::config::Mode::Lb;
    ctlb::config::Port port;
    port.name = "backends";
    port.addresses.push_back({ip(false, 0xfe01), 16});  // 198.19.254.1/16
    port.addresses.push_back({ip(true, 0xfffe), 64});   // 2001:2:0:3::fffe/64
    config_.ports.push_back(port);
    for (const bool v6 : {false, true}) {
      if (v6 ? !(o.ipv6_share > 0.0) : !(o.ipv6_share < 1.0)) continue;
      for (std::uint32_t server = 0; server < o.servers; ++server) {
        for (const std::uint16_t vip_port : {std::uint16_t{80}, std::uint16_t{443}}) {
          ctlb::config::Vip vip;
          vip.address.family = v6 ? 6 : 4;
          address(v6, true, server, vip.address.bytes.data());
          vip.port = vip_port;
          vip.table_size = lb::kDefaultTableSize;
          vip.name = lb::endpoint_text(vip.address.family, vip.address.bytes.data(), vip_port);
          for (std::uint32_t b = 0; b < o.lb_backends; ++b) {
            ctlb::config::Backend backend;
            backend.address = v6 ? ip(true, b + 1) : ip(false, 0x100 + b + 1);  // 2001:2:0:3::b+1, 198.19.1.b+1
            backend.port = vip_port == 80 ? 8080 : 8443;
            backend.weight = 1;
            vip.backends.push_back(backend);
          }
          config_.lb.vips.push_back(vip);
        }
      }
    }
    // lb::State is aligned to a cache line and followed by its tables.
    const std::size_t bytes = lb::state_bytes(lb::table_entries_of(config_));
    memory_.resize(bytes / sizeof(CacheLine));
    state_ = reinterpret_cast<lb::State*>(memory_.data());
    const std::string error = lb::init_state(*state_, config_, {});
    if (!error.empty()) fatal("lb::init_state: " + error);
    connections_.assign(state_->slot_count, 0);
  }

  // Gives `lv` the backend ctlb picks for its connection: the slot of the
  // Maglev table of the VIP the client's SYN goes to, at the SYN's flow hash.
  void assign(Live& lv) {
    Live scratch = lv;
    std::uint8_t frame[256];
    const std::size_t len = build_frame(Step{0, kSyn, 0}, scratch, 0, frame);
    ctlb::packet::PacketView v;
    if (ctlb::packet::parse_frame(frame, len, v) != ctlb::packet::ParseResult::Tcp)
      fatal("connection " + std::to_string(lv.conn) + ": the dataplane's parser rejects its SYN");
    const std::uint8_t family = v.family == ctlb::packet::IpFamily::V4 ? 4 : 6;
    const std::uint32_t vip = lb::find_vip(*state_, family, v.dst, v.dport);
    if (vip == lb::kNoVip) fatal("connection " + std::to_string(lv.conn) + ": its server is not a VIP");
    std::uint32_t hash;
    if (family == 4) {
      ctlb::flow::KeyV4 k;
      ctlb::flow::make_key(v, k);
      hash = ctlb::flow::hash_key(k);
    } else {
      ctlb::flow::KeyV6 k;
      ctlb::flow::make_key(v, k);
      hash = ctlb::flow::hash_key(k);
    }
    const std::uint16_t slot = lb::maglev_pick(state_->table(vip), hash);
    if (slot == lb::kNoBackend) fatal("VIP " + std::string(state_->vips[vip].name) + " has no backend");
    const lb::BackendSlot& b = state_->slots[slot];
    lv.has_backend = true;
    std::memcpy(lv.backend_addr, b.addr, 16);
    lv.backend_port = b.port;
    ++connections_[slot];
  }

  std::size_t vips() const { return config_.lb.vips.size(); }

  // The summary's "lb" member: the VIPs with their pools as the state holds
  // them (ctlb's config must list the same), and each backend's connections.
  std::string json() const {
    const lb::State& s = *state_;
    std::string out = "{\"backends_per_vip\": " + std::to_string(s.slot_count / s.vip_count) +
                      ", \"table_size\": " + std::to_string(lb::kDefaultTableSize) + ", \"vips\": [";
    for (std::uint32_t v = 0; v < s.vip_count; ++v) {
      const lb::VipSlot& vip = s.vips[v];
      out += std::string(v ? ",\n  " : "\n  ") + "{\"name\": \"" + vip.name + "\", \"address\": \"" +
             lb::address_text(vip.family, vip.addr) + "\", \"port\": " + std::to_string(vip.port) +
             ", \"table_size\": " + std::to_string(vip.table_size) + ", \"backends\": [";
      bool first = true;
      for (std::uint32_t b = 0; b < s.slot_count; ++b) {
        const lb::BackendSlot& slot = s.slots[b];
        if (slot.vip != v) continue;
        out += std::string(first ? "" : ", ") + "{\"address\": \"" + lb::address_text(slot.family, slot.addr) +
               "\", \"port\": " + std::to_string(slot.port) + ", \"weight\": " + std::to_string(slot.weight) +
               ", \"connections\": " + std::to_string(connections_[b]) + "}";
        first = false;
      }
      out += "]}";
    }
    return out + "]}";
  }

 private:
  struct alignas(64) CacheLine {
    std::uint8_t bytes[64];
  };

  // 198.19.H.L (host H * 256 + L), or 2001:2:0:3::host.
  static ctlb::config::IpAddr ip(bool v6, std::uint32_t host) {
    ctlb::config::IpAddr a;
    std::uint8_t* p = a.bytes.data();
    if (!v6) {
      a.family = 4;
      p[0] = 198, p[1] = 19, p[2] = static_cast<std::uint8_t>(host >> 8), p[3] = static_cast<std::uint8_t>(host);
    } else {
      a.family = 6;
      p[0] = 0x20, p[1] = 0x01, p[3] = 0x02, p[7] = 3;
      put32(p + 12, host);
    }
    return a;
  }


  ctlb::config::Config config_;
  std::vector<CacheLine> memory_;
  lb::State* state_ = nullptr;
  std::vector<std::uint64_t> connections_;  // per backend slot
};

// ---------------------------------------------------------------- pcap output

class PcapWriter {
 public:
  explicit PcapWriter(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) fatal("cannot create " + tmp_ + ": " + std::strerror(errno));
    std::setvbuf(f_, nullptr, _IOFBF, 1 << 22);
    std::uint8_t h[24];
    std::uint32_t w[6] = {0xa1b2c3d4u, 2u | (4u << 16), 0, 0, 65535, 1};  // v2.4, snaplen, Ethernet
    std::memcpy(h, w, sizeof h);
    write(h, sizeof h);
  }
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  ~PcapWriter() {
    if (f_) {
      std::fclose(f_);
      std::remove(tmp_.c_str());
    }
  }

  void packet(std::uint64_t ts_ns, const std::uint8_t* data, std::size_t len) {
    const std::uint64_t usec = ts_ns / 1000;
    const std::uint32_t rec[4] = {static_cast<std::uint32_t>(kEpoch + usec / 1000000),
                                  static_cast<std::uint32_t>(usec % 1000000), static_cast<std::uint32_t>(len),
                                  static_cast<std::uint32_t>(len)};
    write(rec, sizeof rec);
    write(data, len);
    ++packets_;
    bytes_ += len;
    min_frame_ = std::min<std::uint64_t>(min_frame_, len);
    max_frame_ = std::max<std::uint64_t>(max_frame_, len);
  }

  void finish() {
    if (std::fflush(f_) != 0 || std::fclose(f_) != 0) {
      f_ = nullptr;
      fatal("cannot write " + tmp_ + ": " + std::strerror(errno));
    }
    f_ = nullptr;
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
      fatal("cannot rename " + tmp_ + " to " + path_ + ": " + std::strerror(errno));
  }

  const std::string& path() const { return path_; }
  std::uint64_t packets() const { return packets_; }
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t min_frame() const { return packets_ ? min_frame_ : 0; }
  std::uint64_t max_frame() const { return max_frame_; }

 private:
  static constexpr std::uint64_t kEpoch = 1704067200;  // 2024-01-01 00:00:00 UTC

  void write(const void* p, std::size_t n) {
    if (std::fwrite(p, 1, n, f_) != n) fatal("cannot write " + tmp_ + ": " + std::strerror(errno));
  }

  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  std::uint64_t packets_ = 0, bytes_ = 0, min_frame_ = UINT64_MAX, max_frame_ = 0;
};

// Checks that no connection has two packets closer than `spacing` across the
// wrap-around of a capture replayed in a loop (inside the capture the
// scheduler guarantees it).
class WrapCheck {
 public:
  explicit WrapCheck(std::uint32_t spacing) : spacing_(spacing) {}
  void add(std::uint64_t conn) {
    if (head_.size() < spacing_) head_.push_back(conn);
    tail_.push_back(conn);
    if (tail_.size() > spacing_) tail_.pop_front();
    ++count_;
  }
  // Returns an empty string when the spacing holds, else what breaks it.
  std::string verify(const std::string& file) const {
    if (spacing_ <= 1 || count_ == 0) return {};
    for (std::size_t a = 0; a < tail_.size(); ++a) {
      const std::size_t from_end = tail_.size() - a;  // 1 for the last packet
      for (std::size_t b = 0; b < head_.size(); ++b) {
        if (tail_[a] != head_[b]) continue;
        const std::uint64_t distance = from_end + b;
        if (distance < spacing_ && count_ > distance)
          return file + ": connection " + std::to_string(tail_[a]) + " has packets " + std::to_string(distance) +
                 " apart across the capture's wrap-around (less than --spacing " + std::to_string(spacing_) +
                 "): raise --concurrent or lower --spacing";
      }
    }
    return {};
  }

 private:
  std::uint32_t spacing_;
  std::deque<std::uint64_t> head_, tail_;
  std::uint64_t count_ = 0;
};

// ---------------------------------------------------------------- scheduling

// Emits the remaining packets of every slot one at a time: always the slot
// with the most packets left among those whose previous packet is at least
// `spacing` positions back (ties: lowest slot). That keeps all slots
// progressing together, like round-robin over the active connections at one
// RTT, and ends them together. Returns false if no slot can go while
// packets remain (too few slots for the spacing).
bool schedule(std::vector<std::uint64_t>& remaining, std::vector<std::int64_t>& last_pos, std::int64_t& pos,
              std::uint32_t spacing, const std::function<void(std::uint32_t)>& emit) {
  std::priority_queue<std::uint64_t> ready;  // (remaining << 32) | (~slot)
  std::vector<std::pair<std::int64_t, std::uint32_t>> waiting;
  auto key = [&](std::uint32_t slot) { return (remaining[slot] << 32) | (0xffffffffu - slot); };
  for (std::uint32_t s = 0; s < remaining.size(); ++s) {
    if (!remaining[s]) continue;
    if (last_pos[s] + spacing <= pos) ready.push(key(s));
    else waiting.emplace_back(last_pos[s] + spacing, s);
  }
  std::sort(waiting.begin(), waiting.end());
  std::deque<std::pair<std::int64_t, std::uint32_t>> cooldown(waiting.begin(), waiting.end());
  while (!ready.empty() || !cooldown.empty()) {
    while (!cooldown.empty() && cooldown.front().first <= pos) {
      ready.push(key(cooldown.front().second));
      cooldown.pop_front();
    }
    if (ready.empty()) return false;
    const auto slot = static_cast<std::uint32_t>(0xffffffffu - (ready.top() & 0xffffffffu));
    ready.pop();
    emit(slot);
    last_pos[slot] = pos;
    --remaining[slot];
    ++pos;
    if (remaining[slot]) cooldown.emplace_back(pos - 1 + spacing, slot);
  }
  return true;
}

// ---------------------------------------------------------------- main work

struct Totals {
  std::uint64_t v4 = 0, v6 = 0;
  std::uint64_t close[3] = {0, 0, 0};
  std::uint64_t handshake_packets = 0;  // established: in the handshake phase
  std::uint64_t data_packets = 0;       // established with --flood-syns: of the flows, after the handshakes
  std::uint64_t flood_syns = 0;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

int run(const Options& o) {
  Generator gen(o);
  const std::uint64_t n_conn = o.connections;
  Totals totals;
  std::unique_ptr<Balancer> balancer;
  if (o.lb_backends) balancer = std::make_unique<Balancer>(o);
  auto start = [&](Live& lv, std::uint64_t i, const Params& p) {
    lv.start(i, p);
    if (balancer) balancer->assign(lv);
  };

  std::vector<std::uint8_t> frame(2048);
  PcapWriter main_out(o.output);
  std::unique_ptr<PcapWriter> hs_out;
  if (!o.handshake_output.empty()) hs_out = std::make_unique<PcapWriter>(o.handshake_output);
  WrapCheck main_wrap(o.spacing), hs_wrap(o.spacing);

  const double ns_per_packet = 1e9 / static_cast<double>(o.pps);
  std::int64_t pos = 0;  // global packet position (timestamps)
  auto write = [&](PcapWriter& w, WrapCheck& wc, const Step& s, Live& lv) {
    const auto ts_ns = static_cast<std::uint64_t>(std::llround(static_cast<double>(pos) * ns_per_packet));
    const std::size_t len = build_frame(s, lv, ts_ns / 1000000, frame.data());
    w.packet(ts_ns, frame.data(), len);
    wc.add(lv.conn);
  };
  auto count = [&](const Params& p) {
    ++(p.v6 ? totals.v6 : totals.v4);
    ++totals.close[static_cast<int>(p.close)];
  };

  std::vector<Step> steps;
  if (o.mode == Mode::Syn) {
    Live lv;
    for (std::uint64_t i = 0; i < n_conn; ++i) {
      const Params p = gen.params(i);
      ++(p.v6 ? totals.v6 : totals.v4);
      start(lv, i, p);
      steps.clear();
      gen.plan(i, p, steps);
      write(main_out, main_wrap, steps[0], lv);
      ++pos;
    }
  } else {
    // Plans of every connection, flat.
    std::vector<Step> plans;
    std::vector<std::uint64_t> offset(n_conn + 1, 0);
    for (std::uint64_t i = 0; i < n_conn; ++i) {
      const Params p = gen.params(i);
      gen.plan(i, p, plans);
      offset[i + 1] = plans.size();
      if (plans.size() > kMaxPackets) usage_error("more than 10^9 packets: lower --connections or --rounds");
      if (o.mode == Mode::Lifecycle) count(p);
      else ++(p.v6 ? totals.v6 : totals.v4);
    }
    const std::uint64_t n_slots = o.concurrent;
    // Connections to slots: each next connection to the slot with the fewest
    // packets so far, so that the slots end together.
    std::vector<std::uint32_t> slot_of(n_conn);
    std::vector<std::uint64_t> slot_total(n_slots, 0);
    {
      using Entry = std::pair<std::uint64_t, std::uint32_t>;
      std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
      for (std::uint32_t s = 0; s < n_slots; ++s) heap.emplace(0, s);
      for (std::uint64_t i = 0; i < n_conn; ++i) {
        auto [total, s] = heap.top();
        heap.pop();
        slot_of[i] = s;
        total += offset[i + 1] - offset[i];
        slot_total[s] = total;
        heap.emplace(total, s);
      }
    }
    std::vector<std::uint64_t> first(n_slots + 1, 0);  // CSR of the connections of each slot
    for (std::uint64_t i = 0; i < n_conn; ++i) ++first[slot_of[i] + 1];
    for (std::uint64_t s = 0; s < n_slots; ++s) first[s + 1] += first[s];
    std::vector<std::uint64_t> conns(n_conn);
    {
      std::vector<std::uint64_t> fill(first.begin(), first.end() - 1);
      for (std::uint64_t i = 0; i < n_conn; ++i) conns[fill[slot_of[i]]++] = i;
    }
    std::vector<std::uint32_t>().swap(slot_of);

    struct Slot {
      std::uint64_t next_conn;  // index into conns
      std::uint64_t step;       // index into plans
      std::uint64_t end;        // end of the current connection's plan
      Live live;
    };
    std::vector<Slot> slots(n_slots);
    for (std::uint64_t s = 0; s < n_slots; ++s) {
      slots[s].next_conn = first[s];
      slots[s].step = slots[s].end = 0;
    }
    auto next_step = [&](std::uint32_t s) -> std::pair<const Step*, Live*> {
      Slot& sl = slots[s];
      if (sl.step == sl.end) {
        const std::uint64_t i = conns[sl.next_conn++];
        start(sl.live, i, gen.params(i));
        sl.step = offset[i];
        sl.end = offset[i + 1];
      }
      return {&plans[sl.step++], &sl.live};
    };
    std::vector<std::int64_t> last_pos(n_slots, INT64_MIN / 2);
    const std::string stuck = "cannot keep --spacing " + std::to_string(o.spacing) +
                              " between the packets of a connection with --concurrent " +
                              std::to_string(o.concurrent) + ": raise --concurrent or lower --spacing";
    if (o.mode == Mode::Lifecycle) {
      std::vector<std::uint64_t> remaining(slot_total);
      if (!schedule(remaining, last_pos, pos, o.spacing, [&](std::uint32_t s) {
            auto [step, live] = next_step(s);
            write(main_out, main_wrap, *step, *live);
          }))
        fatal(stuck);
    } else {
      // Established: one flow per slot; all handshakes, then the rounds.
      std::vector<std::uint64_t> remaining(n_slots, 3);
      PcapWriter& hs = hs_out ? *hs_out : main_out;
      WrapCheck& hs_wc = hs_out ? hs_wrap : main_wrap;
      if (!schedule(remaining, last_pos, pos, o.spacing, [&](std::uint32_t s) {
            auto [step, live] = next_step(s);
            write(hs, hs_wc, *step, *live);
            ++totals.handshake_packets;
          }))
        fatal(stuck);
      for (std::uint64_t s = 0; s < n_slots; ++s) remaining[s] = slot_total[s] - 3;
      // --flood-syns: flood SYNs go between the data packets at the
      // positions `spread` gives; they take the timestamp of the next
      // established packet and leave `pos` (its clock) alone, so the
      // established packets stay those of the capture without a flood.
      std::unique_ptr<Flood> flood;
      FloodSpread spread;
      std::uint64_t data_pos = 0;
      Live flood_live;
      auto flood_until_established = [&] {
        while (spread.flood && data_pos < spread.total && spread.at(data_pos)) {
          flood_live.start(n_conn + totals.flood_syns, flood->params(totals.flood_syns));
          write(main_out, main_wrap, Step{0, kSyn, 0}, flood_live);
          ++totals.flood_syns;
          ++data_pos;
        }
      };
      if (o.flood_syns) {
        flood = std::make_unique<Flood>(o, gen);
        totals.data_packets = plans.size() - totals.handshake_packets;
        spread = {o.flood_syns, totals.data_packets + o.flood_syns};
      }
      if (!schedule(remaining, last_pos, pos, o.spacing, [&](std::uint32_t s) {
            flood_until_established();
            auto [step, live] = next_step(s);
            write(main_out, main_wrap, *step, *live);
            ++data_pos;
          }))
        fatal(stuck);
      flood_until_established();  // the last positions, after the last data packet
      if (totals.flood_syns != o.flood_syns) fatal("internal: flood SYNs placed != --flood-syns");
    }
  }

  std::string broken = main_wrap.verify(o.output);
  if (broken.empty() && hs_out) broken = hs_wrap.verify(o.handshake_output);
  if (!broken.empty()) fatal(broken);
  main_out.finish();
  if (hs_out) hs_out->finish();

  // Expected final connection states after one pass.
  std::uint64_t time_wait = 0, close = 0, established = 0, syn_sent = 0;
  if (o.mode == Mode::Lifecycle) {
    time_wait = totals.close[0] + totals.close[1];
    close = totals.close[2];
  } else if (o.mode == Mode::Established) {
    established = n_conn;
    syn_sent = totals.flood_syns;  // in a table with room for them all
  } else {
    syn_sent = n_conn;
  }
  const std::uint64_t packets = main_out.packets() + (hs_out ? hs_out->packets() : 0);
  const char* mode_name = o.mode == Mode::Lifecycle ? "lifecycle" : o.mode == Mode::Established ? "established" : "syn";
  std::printf("ctlb_flowgen: %s: %" PRIu64 " packets, %" PRIu64 " connections (%" PRIu64 " IPv4, %" PRIu64
              " IPv6), frames %" PRIu64 "..%" PRIu64 " bytes",
              o.output.c_str(), main_out.packets(), n_conn, totals.v4, totals.v6, main_out.min_frame(),
              main_out.max_frame());
  if (hs_out)
    std::printf("; handshakes in %s: %" PRIu64 " packets", o.handshake_output.c_str(), hs_out->packets());
  if (balancer) std::printf("; lb: %zu VIPs x %u backends", balancer->vips(), o.lb_backends);
  if (totals.flood_syns)
    std::printf("; flood: %" PRIu64 " SYNs among %" PRIu64 " data packets (%.1f %% of the data phase)",
                totals.flood_syns, totals.data_packets,
                100.0 * static_cast<double>(totals.flood_syns) /
                    static_cast<double>(totals.flood_syns + totals.data_packets));
  std::printf("\n");

  if (!o.summary_json.empty()) {
    std::string tmp = o.summary_json + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) fatal("cannot create " + tmp + ": " + std::strerror(errno));
    const std::uint64_t data_start = o.mode == Mode::Established && !hs_out ? totals.handshake_packets : 0;
    // The flood's place in --output: positions data_start .. data_start +
    // data_packets + syns - 1, spread as FloodSpread says.
    const std::string flood_json =
        totals.flood_syns == 0
            ? "null"
            : "{\"syns\": " + std::to_string(totals.flood_syns) + ", \"data_packets\": " +
                  std::to_string(totals.data_packets) + ", \"spread\": \"floor(j * syns / (data_packets + syns))\"" +
                  ", \"sources\": \"198.18.0.0/15\"}";
    std::fprintf(f,
                 "{\"mode\": \"%s\", \"args\": \"%s\", \"output\": \"%s\", \"handshake_output\": \"%s\",\n"
                 " \"packets\": %" PRIu64 ", \"output_packets\": %" PRIu64 ", \"handshake_packets\": %" PRIu64
                 ", \"data_start\": %" PRIu64 ",\n"
                 " \"connections\": %" PRIu64 ", \"concurrent\": %" PRIu64 ", \"ipv4\": %" PRIu64
                 ", \"ipv6\": %" PRIu64 ",\n"
                 " \"min_frame\": %" PRIu64 ", \"max_frame\": %" PRIu64 ", \"output_bytes\": %" PRIu64
                 ", \"spacing\": %u,\n"
                 " \"close\": {\"fin-client\": %" PRIu64 ", \"fin-server\": %" PRIu64 ", \"rst\": %" PRIu64 "},\n"
                 " \"expected_states\": {\"TIME_WAIT\": %" PRIu64 ", \"CLOSE\": %" PRIu64
                 ", \"ESTABLISHED\": %" PRIu64 ", \"SYN_SENT\": %" PRIu64 "},\n"
                 " \"lb\": %s,\n"
                 " \"flood\": %s}\n",
                 mode_name, json_escape(o.args).c_str(), json_escape(o.output).c_str(),
                 json_escape(o.handshake_output).c_str(), packets, main_out.packets(), totals.handshake_packets,
                 data_start, n_conn, o.mode == Mode::Syn ? n_conn : o.concurrent, totals.v4, totals.v6,
                 std::min(main_out.min_frame(), hs_out ? hs_out->min_frame() : UINT64_MAX),
                 std::max(main_out.max_frame(), hs_out ? hs_out->max_frame() : 0), main_out.bytes(), o.spacing,
                 totals.close[0], totals.close[1], totals.close[2], time_wait, close, established, syn_sent,
                 balancer ? balancer->json().c_str() : "null", flood_json.c_str());
    if (std::fclose(f) != 0 || std::rename(tmp.c_str(), o.summary_json.c_str()) != 0)
      fatal("cannot write " + o.summary_json + ": " + std::strerror(errno));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  return run(o);
}
