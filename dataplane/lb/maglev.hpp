#pragma once
// Maglev-style consistent hashing (Eisenbud et al., NSDI 2016): a lookup
// table of a prime size M in which every backend owns its share of the slots
// (weighted), built as a pure, deterministic function of the pool, so that
// several ctlb instances behind ECMP choose the same backend for the same new
// flow, and removing one of N backends moves little more than its 1/N.
//
// Construction: each backend walks its Maglev permutation (offset + j * skip)
// mod M, offset and skip from two hashes of its identity (address and port,
// not its position in the configuration). All backends walk in lockstep, one
// step a round (weighted: w / w_min steps), in identity order within a
// round, and a backend takes the slot under it if the slot is free and the
// backend has room. Room: the floor of its share M * w / W, plus one for a
// backend whose share has a fraction, first come first served until the
// M - sum(floors) spare slots are gone. So every backend ends with the floor
// or the ceiling of its share, and every slot is filled.
//
// Why lockstep rather than Maglev's turns: with turns, a backend's k-th claim
// is made in round k however far its walk had to go, so when a backend is
// removed the others find its slots free, their later claims all come
// earlier, and the race for the slots contended late in the fill is re-run.
// In lockstep a slot goes to the first backend whose walk reaches it, which
// does not depend on anyone's claims until backends run out of room: a
// removed backend's slots go to the next backend to reach each, and only
// the last few percent of the fill (where rooms run out) is raced again.
//
// Measured at M = 65537, pool 198.19.0.x:8080, fraction of slots that change
// backend in units of 1/N (add: 1/(N+1)), mean (worst) over 20 removed and 10
// added backends, and 10 backends' weight 1 -> 2 (least: (N-1)/(N+1) / N):
//
//          remove one               add one                  weight 1 -> 2
//   N      turns       lockstep     turns       lockstep     turns       lockstep
//   10     1.02 (1.03) 1.02 (1.02)  1.03 (1.04) 1.02 (1.03)  0.84 (0.84) 0.84 (0.85)
//   100    1.57 (1.60) 1.28 (1.31)  1.59 (1.63) 1.30 (1.36)  1.54 (1.62) 1.27 (1.33)
//   1000   6.75 (6.99) 3.94 (4.29)  6.93 (7.27) 4.15 (4.45)  7.02 (7.39) 4.14 (4.64)
//
// At M = 655373, N = 100: remove 1.14 -> 1.08. Balance at N = 100: 655..656
// slots, as with turns. Build (bench/micro.cpp, median of 3): N = 100
// 0.97 -> 0.91 ms, N = 1000 1.03 -> 1.40 ms; weights 1..5: N = 100
// 1.06 -> 1.15 ms, N = 1000 1.13 -> 1.60 ms.
//
// The same tables, computed faster for equal weights (fill_equal(): a
// bitmap of taken slots, two passes a round, the last M / 256 slots by first
// arrival instead of steps). On a slower host (AMD EPYC VM, 2026-12-08),
// build N = 10 / 100 / 1000: 1.23-1.30 / 1.40-1.53 / 2.26-2.29 ms step by
// step, 0.81-0.86 / 0.75-0.76 / 1.13-1.15 ms now (three runs of three);
// weighted pools still go step by step (1.75-1.86 ms at N = 100, weights
// 1..5). Tables larger than the L2 cache gain most from the bitmap: M =
// 655373, N = 100: 36 -> 14 ms; M = 1048573: 64 -> 27 ms (median of 7).
// SameTableAsTheStepByStepConstruction checks the equivalence.
//
// Under 1.2/N at N = 100, M = 65537 is not reached, by this or by anything
// measured: the removed backend's ~655 slots split over the 99 others like a
// multinomial (6.6 +- 2.6 each) where exact balance wants 6 or 7 each, so
// about 100 slots (0.15/N) of mismatch must be made up by moving other
// backends' slots, and each costs ~2 moves here. A simulation of that
// mismatch alone, each excess slot moved once and directly, already gives
// 1.156/N at N = 100 (1.077 at 50, 1.333 at 200): the floor for any pure
// table of this size, which leaves 1.2/N almost no room. Also measured: rendezvous
// (HRW) per slot with bounded loads, slots in hashed order, 1.34/N; stable
// matching on HRW scores 1.33/N; exact optimal transport on HRW scores (per
// backend offsets solved for exact counts) 1.25/N, at ~100x the build time.
// Nor does spending the slack of the 1.01 balance bound (rooms of about
// share +- 0.5 %, i.e. 652..658 slots at N = 100): a room cap plus a fix-up
// pass 1.31/N, rooms filled in two stages 1.29/N, a shared pool of spare
// slots +-1..+-3 around the share 1.29..1.30/N (+-5: 1.27/N, but balance
// 1.017), walkers paced by the room they have left 1.30..1.40/N; and in a
// weighted pool a band breaks 1.01 for the light backends (one slot of ~119
// is 0.8 %). The walks leave backends about +-25 slots apart, far wider than
// a band of 7, so nearly every backend ends held at an edge of its band and
// behaves as under exact balance. At the default M the 1.2/N holds up to
// about N = 60 (M / N >= ~1100): 1.13/N at N = 50, 1.17/N at 60, 1.21/N at 70.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <utility>
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

inline std::uint32_t gcd(std::uint32_t a, std::uint32_t b) noexcept {
  while (b != 0) {
    const std::uint32_t r = a % b;
    a = b;
    b = r;
  }
  return a;
}

// One backend's walk over its permutation.
struct Walker {
  std::uint32_t slot;    // where the walk is
  std::uint32_t skip;    // coprime with M: the walk visits every slot
  std::uint32_t room;    // slots still due: floor of the share, less those taken
  std::uint32_t weight;
  std::uint32_t credit;  // weighted pace: a step per lightest weight of credit
  std::uint16_t backend;  // index into the caller's span
  bool may_round_up;      // share has a fraction: may take one spare slot

  // The slot under the walker, which moves on to the next of its walk.
  std::uint32_t advance(std::uint32_t m) noexcept {
    const std::uint32_t c = slot;
    slot = c >= m - skip ? c - (m - skip) : c + skip;
    return c;
  }
  // Whether it may take a slot: it has room, or may take a spare one.
  bool may_take(std::uint32_t spare) const noexcept { return room > 0 || (may_round_up && spare > 0); }
  // Counts a slot it takes against its room, or else the spare slots; false
  // (nothing counted) if it may not take one.
  bool claim(std::uint32_t& spare) noexcept {
    if (room > 0) {
      --room;
    } else if (may_round_up && spare > 0) {
      --spare;
      may_round_up = false;
    } else {
      return false;
    }
    return true;
  }
};

// One step of a walk: takes the slot under the walker if free and due.
// Returns false once the walker can take nothing more.
inline bool step(Walker& w, std::span<std::uint16_t> table, std::uint32_t& spare, std::uint32_t& filled) noexcept {
  const std::uint32_t c = w.advance(static_cast<std::uint32_t>(table.size()));
  if (table[c] == kNoBackend && w.claim(spare)) {
    table[c] = w.backend;
    ++filled;
  }
  return w.may_take(spare);
}

// x mod m for any 64-bit x, by a reciprocal of m worked out once.
class Mod {
 public:
  explicit Mod(std::uint32_t m) noexcept : m_(m), r_(~std::uint64_t{0} / m) {}
  std::uint32_t operator()(std::uint64_t x) const noexcept {
    const auto q = static_cast<std::uint64_t>((static_cast<unsigned __int128>(x) * r_) >> 64);
    std::uint64_t rem = x - q * m_;  // q falls short of x / m by at most 2
    while (rem >= m_) rem -= m_;
    return static_cast<std::uint32_t>(rem);
  }

 private:
  std::uint64_t m_;
  std::uint64_t r_;
};

// The inverse of a modulo m, for gcd(a, m) == 1 and 0 < a < m.
inline std::uint32_t inverse_mod(std::uint32_t a, std::uint32_t m) noexcept {
  std::int64_t t = 0, next_t = 1, r = m, next_r = a;
  while (next_r != 0) {
    const std::int64_t q = r / next_r;
    t -= q * next_t;
    std::swap(t, next_t);
    r -= q * next_r;
    std::swap(r, next_r);
  }
  return static_cast<std::uint32_t>(t < 0 ? t + m : t);
}

// The equal-weight fill switches to arrivals once at most M / this many
// slots are free (at N = 100, 40 % of the steps come after 99 % of the
// slots are filled; measured best between M / 200 and M / 400 for N = 10 to
// 1000).
inline constexpr std::uint32_t kArrivalsBelow = 256;

// An equal-weight fill's state: a bit per slot, set once the slot is taken
// (M / 8 bytes, 8 KiB at the default M, which stay in L1 cache where the
// table's 2 * M bytes do not: every step tests one), the spare slots left
// and the slots filled.
struct EqualFill {
  std::span<std::uint16_t> table;
  std::vector<std::uint64_t> taken;
  std::uint32_t spare;
  std::uint32_t filled = 0;

  bool is_taken(std::uint32_t c) const noexcept { return (taken[c >> 6] >> (c & 63)) & 1u; }
  // Walker w takes free slot c if it still may; false if it may not.
  bool take(Walker& w, std::uint32_t c) noexcept {
    if (!w.claim(spare)) return false;
    taken[c >> 6] |= std::uint64_t{1} << (c & 63);
    table[c] = w.backend;
    ++filled;
    return true;
  }
};

// The end of an equal-weight fill, to the table that more rounds would
// give, without the rounds: every live walker steps once a round, so walker
// i reaches slot s in d_i(s) = (s - slot_i) / skip_i (mod M) rounds, and a
// free slot goes to the first walker to reach it (ties: the earlier in the
// round) that can still take one then. Each free slot's first arrival
// (d, i) is worked out once; the slots are taken in that order; a slot whose
// walker has stopped by then looks again among the walkers still live
// (they arrive later: walkers only ever stop).
inline void finish_by_arrivals(std::vector<Walker>& live, EqualFill& f) {
  const std::uint32_t m = static_cast<std::uint32_t>(f.table.size());
  const Mod mod(m);
  std::vector<std::uint32_t> inverse(live.size());
  for (std::size_t i = 0; i < live.size(); ++i) inverse[i] = inverse_mod(live[i].skip, m);
  // (d << 16 | i): the earlier arrival is the smaller (i < kNoBackend).
  constexpr std::uint64_t kNone = ~std::uint64_t{0};
  auto first_arrival = [&](std::uint32_t s) {
    std::uint64_t first = kNone;
    for (std::size_t i = 0; i < live.size(); ++i) {
      if (!live[i].may_take(f.spare)) continue;
      const std::uint32_t ahead = s >= live[i].slot ? s - live[i].slot : s + (m - live[i].slot);
      first = std::min(first, std::uint64_t{mod(std::uint64_t{ahead} * inverse[i])} << 16 | i);
    }
    return first;
  };
  std::vector<std::pair<std::uint64_t, std::uint32_t>> heap;  // (first arrival, slot), least first
  heap.reserve(m - f.filled);
  for (std::uint32_t word = 0; word < f.taken.size(); ++word) {
    for (std::uint64_t bits = ~f.taken[word]; bits != 0; bits &= bits - 1) {
      const std::uint32_t s = word * 64 + static_cast<std::uint32_t>(__builtin_ctzll(bits));
      if (s >= m) break;
      if (const std::uint64_t a = first_arrival(s); a != kNone) heap.emplace_back(a, s);
    }
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<>());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const std::uint32_t s = heap.back().second;
    Walker& w = live[heap.back().first & 0xffff];
    heap.pop_back();
    if (f.take(w, s)) continue;
    if (const std::uint64_t a = first_arrival(s); a != kNone) {  // w stopped before it got here
      heap.emplace_back(a, s);
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  }
}

// The fill of an equal-weight pool: the same table as step() walker after
// walker, faster. A round takes two passes. The first moves every walker on and
// notes which landed on a slot free at the round's start, with no branch on
// it (whether a slot is free is a coin toss for much of the fill, and a
// mispredicted branch cost more than the step). The second lets those
// walkers, in order, take their slots, unless an earlier one of the round
// took it first or the walker can take no more. A walker that can take no
// more leaves at the end of a round rather than at the step where it stops:
// with equal weights that changes nothing (weighted paces depend on who is
// live, so weighted pools go step by step). The last M / `arrivals_below`
// slots are filled by arrivals.
inline void fill_equal(std::vector<Walker>& live, std::span<std::uint16_t> table, std::uint32_t spare,
                       std::uint32_t arrivals_below) {
  const std::uint32_t m = static_cast<std::uint32_t>(table.size());
  EqualFill f{table, std::vector<std::uint64_t>((std::size_t{m} + 63) / 64), spare};
  std::vector<std::uint32_t> at(live.size());                  // the slot each walker stepped on
  std::vector<std::uint64_t> landed((live.size() + 63) / 64);  // a bit per walker: that slot was free
  while (f.filled < m && !live.empty()) {
    if (m - f.filled <= m / arrivals_below) {
      finish_by_arrivals(live, f);
      return;
    }
    const std::size_t count = live.size();
    for (std::size_t g = 0; g * 64 < count; ++g) {
      std::uint64_t bits = 0;
      for (std::size_t i = g * 64; i < std::min(count, g * 64 + 64); ++i) {
        const std::uint32_t c = live[i].advance(m);
        at[i] = c;
        bits |= std::uint64_t{!f.is_taken(c)} << (i & 63);
      }
      landed[g] = bits;
    }
    bool stopped = false;
    for (std::size_t g = 0; g * 64 < count; ++g) {
      for (std::uint64_t bits = landed[g]; bits != 0; bits &= bits - 1) {
        const std::size_t i = g * 64 + static_cast<std::size_t>(__builtin_ctzll(bits));
        Walker& w = live[i];
        if (!f.is_taken(at[i]) && f.take(w, at[i])) stopped = stopped || w.room == 0;
      }
    }
    if (stopped) std::erase_if(live, [&](const Walker& w) { return !w.may_take(f.spare); });
  }
}

// build_maglev(), with the point where an equal-weight fill turns to
// arrivals as a parameter (tests: 1, arrivals from the first round).
inline bool build(std::span<const MaglevBackend> backends, std::span<std::uint16_t> table,
                  std::uint32_t arrivals_below) {
  const std::uint32_t m = static_cast<std::uint32_t>(table.size());
  if (m < 2 || table.size() > 0xffffffffu || backends.size() >= kNoBackend) return false;
  std::fill(table.begin(), table.end(), kNoBackend);

  // Walk in identity order: the result does not depend on the order of the
  // configuration.
  std::vector<std::uint16_t> order;
  std::uint64_t total_weight = 0;
  for (std::size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].weight == 0) continue;
    order.push_back(static_cast<std::uint16_t>(i));
    total_weight += backends[i].weight;
  }
  if (order.empty()) return true;
  std::sort(order.begin(), order.end(),
            [&](std::uint16_t a, std::uint16_t b) { return detail::id_less(backends[a].id, backends[b].id); });

  std::vector<detail::Walker> live;
  live.reserve(order.size());
  std::uint64_t due = 0;
  bool equal_weights = true;
  for (const std::uint16_t i : order) {
    const MaglevBackend& b = backends[i];
    const std::uint64_t share = std::uint64_t{m} * b.weight;  // over total_weight
    detail::Walker w{};
    w.slot = static_cast<std::uint32_t>(detail::hash_id(b.id, 0x6d61676c65763031ull) % m);
    w.skip = static_cast<std::uint32_t>(detail::hash_id(b.id, 0x6d61676c65763032ull) % (m - 1)) + 1;
    while (detail::gcd(w.skip, m) != 1) w.skip = w.skip % (m - 1) + 1;  // never for a prime M
    w.room = static_cast<std::uint32_t>(share / total_weight);
    w.weight = b.weight;
    w.backend = i;
    w.may_round_up = share % total_weight != 0;
    due += w.room;
    equal_weights = equal_weights && b.weight == backends[order.front()].weight;
    if (w.room > 0 || w.may_round_up) live.push_back(w);
  }
  std::uint32_t spare = static_cast<std::uint32_t>(m - due);  // fewer than the walkers that may round up

  if (equal_weights) {
    detail::fill_equal(live, table, spare, arrivals_below);
    return true;
  }
  // Rounds until the table is full; a walker leaves the round once it can
  // take nothing more. The room and spare counts guarantee that some walker
  // is live while a slot is free. The lightest live walker takes a step a
  // round, a walker of weight w about w / lightest: every walker visited in a
  // round steps (pacing by the heaviest made weighted builds up to 100x
  // slower, same quality). Walkers step in place; one is copied only to close
  // a gap left by one that stopped (copying each one back costs a third of
  // the build).
  std::uint32_t filled = 0;
  while (filled < m && !live.empty()) {
    std::size_t kept = 0;
    std::uint32_t lightest = 0xffffffffu;
    for (const detail::Walker& w : live) lightest = std::min(lightest, w.weight);
    for (std::size_t i = 0; i < live.size(); ++i) {
      detail::Walker& w = live[i];
      bool more = true;
      std::uint64_t credit = std::uint64_t{w.credit} + w.weight;
      for (; more && credit >= lightest; credit -= lightest) more = detail::step(w, table, spare, filled);
      if (!more) continue;
      w.credit = static_cast<std::uint32_t>(credit);  // below lightest
      if (kept != i) live[kept] = w;
      ++kept;
    }
    live.resize(kept);
  }
  return true;
}

}  // namespace detail

// Fills `table` (its size is M, a prime; at most 2^32 - 1) with indices into
// `backends`. Backends of weight 0 get no slot; if all have weight 0 every
// slot is kNoBackend. A backend of weight w owns floor or ceil of M * w / W
// slots (W the sum of weights). Returns false if M < 2 or there are too many
// backends.
inline bool build_maglev(std::span<const MaglevBackend> backends, std::span<std::uint16_t> table) {
  return detail::build(backends, table, detail::kArrivalsBelow);
}

// The backend of a new flow: the slot of the flow's direction-free hash.
inline std::uint16_t maglev_pick(std::span<const std::uint16_t> table, std::uint32_t flow_hash) noexcept {
  return table[static_cast<std::uint64_t>(flow_hash) * table.size() >> 32];
}

}  // namespace ctlb::lb
