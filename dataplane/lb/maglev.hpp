#pragma once
// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of a
// prime size M in which every backend owns about M/N slots (weighted), built
// as a pure, deterministic function of the pool, so that several ctlb
// instances behind ECMP choose the same backend for the same new flow, and
// removing one of N backends moves about 1/N of the flows.
//
// Each backend's preference list is the permutation (offset + j * skip) mod M
// with offset and skip from two hashes of its identity (address and port, not
// its position in the configuration); backends take turns claiming their next
// free preferred slot, a backend of weight w taking w turns per round.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <vector>

namespace ctlb::lb {

inline constexpr std::uint32_t kDefaultTableSize = 65537;  // a prime
inline constexpr std::uint16_t kNoBackend = 0xffff;

// What identifies a backend for hashing: its address (IPv4 mapped into the
// 16 bytes as ::ffff:a.b.c.d) and port. Two instances with the same pool
// build the same table whatever order the pool is listed in.
struct BackendId {
  std::uint8_t addr[16];
  std::uint16_t port;
};

struct MaglevBackend {
  BackendId id;
  std::uint32_t weight;  // 0: takes no new flows (draining or down)
};

namespace detail {

// A 64-bit mix (splitmix64's finaliser) over the identity bytes with a seed:
// stable across builds, platforms and processes.
inline std::uint64_t mix(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

inline std::uint64_t hash_id(const BackendId& id, std::uint64_t seed) noexcept {
  std::uint64_t a, b;
  std::memcpy(&a, id.addr, 8);
  std::memcpy(&b, id.addr + 8, 8);
  std::uint64_t h = mix(seed ^ a);
  h = mix(h ^ b);
  return mix(h ^ id.port);
}

inline bool id_less(const BackendId& x, const BackendId& y) noexcept {
  const int c = std::memcmp(x.addr, y.addr, 16);
  return c < 0 || (c == 0 && x.port < y.port);
}

}  // namespace detail

// Fills `table` (its size is M, a prime > number of turns per round) with
// indices into `backends`. Backends of weight 0 get no slot; if all have
// weight 0 every slot is kNoBackend. Returns false if M is not prime enough
// for the permutation (M < 2) or there are too many backends.
inline bool build_maglev(std::span<const MaglevBackend> backends, std::span<std::uint16_t> table) {
  const std::uint32_t m = static_cast<std::uint32_t>(table.size());
  if (m < 2 || backends.size() >= kNoBackend) return false;
  std::fill(table.begin(), table.end(), kNoBackend);

  // Visit backends in identity order: the result does not depend on the
  // order of the configuration.
  std::vector<std::uint32_t> order;
  for (std::uint32_t i = 0; i < backends.size(); ++i)
    if (backends[i].weight > 0) order.push_back(i);
  if (order.empty()) return true;
  std::sort(order.begin(), order.end(),
            [&](std::uint32_t a, std::uint32_t b) { return detail::id_less(backends[a].id, backends[b].id); });

  const std::size_t n = order.size();
  std::vector<std::uint32_t> next(n), skip(n);
  std::uint32_t max_weight = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const BackendId& id = backends[order[k]].id;
    next[k] = static_cast<std::uint32_t>(detail::hash_id(id, 0x6d61676c65763031ull) % m);          // offset
    skip[k] = static_cast<std::uint32_t>(detail::hash_id(id, 0x6d61676c65763032ull) % (m - 1)) + 1;
    max_weight = std::max(max_weight, backends[order[k]].weight);
  }
  // Weighted turns: in each round a backend claims weight/max_weight * R
  // slots; accumulating credit keeps fractional weights exact over rounds.
  std::vector<std::uint64_t> credit(n, 0);
  std::uint32_t filled = 0;
  while (filled < m) {
    for (std::size_t k = 0; k < n && filled < m; ++k) {
      credit[k] += backends[order[k]].weight;
      while (credit[k] >= max_weight && filled < m) {
        credit[k] -= max_weight;
        std::uint32_t c = next[k];
        while (table[c] != kNoBackend) {
          c += skip[k];
          if (c >= m) c -= m;
        }
        table[c] = static_cast<std::uint16_t>(order[k]);
        c += skip[k];
        if (c >= m) c -= m;
        next[k] = c;
        ++filled;
      }
    }
  }
  return true;
}

// The backend of a new flow: the slot of the flow's direction-free hash.
inline std::uint16_t maglev_pick(std::span<const std::uint16_t> table, std::uint32_t flow_hash) noexcept {
  return table[static_cast<std::uint64_t>(flow_hash) * table.size() >> 32];
}

}  // namespace ctlb::lb
