#pragma once
// The neighbour table: IPv4/IPv6 address -> MAC, learned by ARP or set from
// the configuration. It lives in shared memory mapped at different addresses
// by different processes, so it is plain data: an array of 64-byte slots, a
// power of two of them, no pointers inside.
//
// One writer (the dataplane's main lcore: ARP replies, probes, ageing), any
// number of readers on other cores (workers resolving a next hop, the control
// process listing entries). Open addressing with linear probing from a hash
// of (family, address); a slot once claimed keeps its address for good (no
// deletion, only state changes), so a reader's probe sequence never loses a
// key. Each slot is a seqlock (odd version while written), as in the flow
// table: readers copy what they need and retry if the version moved.
//
// States: Incomplete (being resolved, probes due at next_probe_ms), Reachable
// (confirmed within reachable_ms), Stale (still used, being re-probed),
// Failed (no answer to max_probes probes; resolution restarts when asked for
// again after a hold-down), Static (from the configuration; never learned
// over, never probed, never aged).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "config/config.hpp"
#include "dataplane/common/bytes.hpp"
#include "dataplane/common/seqlock.hpp"
#include "dataplane/flow/crc32c.hpp"

namespace ctlb::lb {

enum class NeighbourState : std::uint8_t { None = 0, Incomplete, Reachable, Stale, Failed, Static };

struct alignas(64) NeighbourSlot {
  std::uint32_t version;  // seqlock: odd while the writer changes the slot
  std::uint8_t family;    // 0: empty, 4 or 6
  NeighbourState state;
  std::uint16_t port;        // port index the neighbour is reached on
  std::uint8_t address[16];  // IPv4: the first 4 bytes, the rest zero
  std::uint8_t mac[6];
  std::uint8_t probes_sent;  // since the last confirmation (saturates at 255)
  std::uint8_t reserved0;
  std::uint64_t updated_ms;     // last state change or confirmation
  std::uint64_t next_probe_ms;  // Incomplete/Stale: when the next probe is due; Failed: end of the hold-down
  std::uint8_t reserved[16];
};
static_assert(sizeof(NeighbourSlot) == 64 && alignof(NeighbourSlot) == 64);
static_assert(std::is_standard_layout_v<NeighbourSlot> && std::is_trivially_copyable_v<NeighbourSlot>);

// Kept by the writer; published with the dataplane's other counters.
struct NeighbourCounters {
  std::uint64_t added;       // slots claimed for a new address
  std::uint64_t learned;     // MACs stored by set_resolved
  std::uint64_t resolved;    // of those, Incomplete or Failed entries that became Reachable
  std::uint64_t failed;      // entries that went Failed after max_probes unanswered probes
  std::uint64_t table_full;  // find_or_add refused: no free slot within the probe limit
};

inline constexpr std::uint32_t kNoSlot = 0xffffffffu;

// Slots a key may be placed away from its home slot: bounds every lookup.
inline constexpr std::uint32_t kNeighbourProbeLimit = 32;

// CRC32C of (family, address).
inline std::uint32_t neighbour_crc(std::uint8_t family, const std::uint8_t* addr) noexcept {
  if (family == 4) {
    std::uint32_t a;
    std::memcpy(&a, addr, 4);
    return flow::crc32c_u32(0x04u, a);
  }
  std::uint64_t a, b;
  std::memcpy(&a, addr, 8);
  std::memcpy(&b, addr + 8, 8);
  return flow::crc32c_u64(flow::crc32c_u64(0x06u, a), b);
}

// neighbour_crc(), then a multiply-xorshift so that the low bits used for
// the index depend on every address bit. The same in every process.
inline std::uint32_t neighbour_hash(std::uint8_t family, const std::uint8_t* addr) noexcept {
  std::uint32_t h = neighbour_crc(family, addr);
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  return h;
}

class NeighbourTable {
 public:
  NeighbourTable() = default;

  // A view over `capacity` slots (a power of two; otherwise the table is not
  // valid() and refuses everything). The memory is not touched: call clear()
  // once, from the writer, when it is fresh.
  NeighbourTable(NeighbourSlot* slots, std::uint32_t capacity) noexcept
      : slots_(slots),
        capacity_(slots != nullptr && capacity != 0 && (capacity & (capacity - 1)) == 0 ? capacity : 0),
        mask_(capacity_ ? capacity_ - 1 : 0),
        probe_limit_(capacity_ < kNeighbourProbeLimit ? capacity_ : kNeighbourProbeLimit) {}

  static constexpr std::size_t bytes_needed(std::uint32_t capacity) noexcept {
    return sizeof(NeighbourSlot) * static_cast<std::size_t>(capacity);
  }

  bool valid() const noexcept { return capacity_ != 0; }
  std::uint32_t capacity() const noexcept { return capacity_; }
  const NeighbourCounters& counters() const noexcept { return counters_; }

  // ---- writer -------------------------------------------------------------

  // Empties every slot as a write like any other (each slot's version moves
  // on), so that a reader's NeighbourCache never mistakes a slot refilled
  // later for the one it read.
  void clear() noexcept {
    for (std::uint32_t i = 0; i < capacity_; ++i) {
      NeighbourSlot& s = slots_[i];
      write_begin(s);
      const std::uint32_t version = s.version;
      s = NeighbourSlot{};
      s.version = version;
      write_end(s);
    }
  }

  // The writer's own view of a slot (no seqlock needed for the writer).
  const NeighbourSlot& slot(std::uint32_t i) const noexcept { return slots_[i]; }

  std::uint32_t find(std::uint8_t family, const std::uint8_t* addr) const noexcept {
    if (!valid() || !valid_family(family)) return kNoSlot;
    std::uint32_t i = neighbour_hash(family, addr) & mask_;
    for (std::uint32_t n = 0; n < probe_limit_; ++n, i = (i + 1) & mask_) {
      const NeighbourSlot& s = slots_[i];
      if (s.family == 0) return kNoSlot;
      if (same_key(s.family, s.address, family, addr)) return i;
    }
    return kNoSlot;
  }

  // The slot of (family, addr), claimed for it if new: Incomplete, first
  // probe due now, on `port`. An existing entry is returned as it is, except
  // that a Failed one whose hold-down is over starts resolving again. Returns
  // kNoSlot for a bad family or when no slot is free within the probe limit.
  std::uint32_t find_or_add(std::uint8_t family, const std::uint8_t* addr, std::uint16_t port,
                            std::uint64_t now_ms) noexcept {
    if (!valid() || !valid_family(family)) return kNoSlot;
    std::uint32_t i = neighbour_hash(family, addr) & mask_;
    for (std::uint32_t n = 0; n < probe_limit_; ++n, i = (i + 1) & mask_) {
      NeighbourSlot& s = slots_[i];
      if (s.family == 0) {
        write_begin(s);
        s.family = family;
        s.state = NeighbourState::Incomplete;
        s.port = port;
        std::memset(s.address, 0, sizeof s.address);
        std::memcpy(s.address, addr, addr_len(family));
        std::memset(s.mac, 0, sizeof s.mac);
        s.probes_sent = 0;
        s.updated_ms = now_ms;
        s.next_probe_ms = now_ms;
        write_end(s);
        ++counters_.added;
        return i;
      }
      if (same_key(s.family, s.address, family, addr)) {
        if (s.state == NeighbourState::Failed && now_ms >= s.next_probe_ms) {
          write_begin(s);
          s.state = NeighbourState::Incomplete;
          s.probes_sent = 0;
          s.updated_ms = now_ms;
          s.next_probe_ms = now_ms;
          write_end(s);
        }
        return i;
      }
    }
    ++counters_.table_full;
    return kNoSlot;
  }

  // The neighbour answered (or announced itself): Reachable at `mac` from
  // now. Static entries keep their configured MAC.
  void set_resolved(std::uint32_t slot, const config::Mac& mac, std::uint64_t now_ms) noexcept {
    NeighbourSlot& s = slots_[slot];
    if (s.family == 0 || s.state == NeighbourState::Static) return;
    const bool was_unresolved = s.state == NeighbourState::Incomplete || s.state == NeighbourState::Failed;
    write_begin(s);
    std::memcpy(s.mac, mac.data(), 6);
    s.state = NeighbourState::Reachable;
    s.probes_sent = 0;
    s.updated_ms = now_ms;
    s.next_probe_ms = 0;
    write_end(s);
    ++counters_.learned;
    if (was_unresolved) ++counters_.resolved;
  }

  // A configured neighbour: Static at `mac` on `port`, whatever it was.
  // Returns its slot, or kNoSlot as find_or_add.
  std::uint32_t set_static(std::uint8_t family, const std::uint8_t* addr, std::uint16_t port,
                           const config::Mac& mac, std::uint64_t now_ms) noexcept {
    const std::uint32_t i = find_or_add(family, addr, port, now_ms);
    if (i == kNoSlot) return kNoSlot;
    NeighbourSlot& s = slots_[i];
    write_begin(s);
    std::memcpy(s.mac, mac.data(), 6);
    s.state = NeighbourState::Static;
    s.port = port;
    s.probes_sent = 0;
    s.updated_ms = now_ms;
    s.next_probe_ms = 0;
    write_end(s);
    return i;
  }

  // The first slot at or after `from` whose probe is due at now_ms
  // (Incomplete or Stale), or kNoSlot:
  //   for (auto i = t.next_due(0, now); i != kNoSlot; i = t.next_due(i + 1, now))
  //     if (t.mark_probe_sent(i, now, retry_ms, max_probes)) send_request(t.slot(i));
  std::uint32_t next_due(std::uint32_t from, std::uint64_t now_ms) const noexcept {
    for (std::uint32_t i = from; i < capacity_; ++i) {
      const NeighbourSlot& s = slots_[i];
      if ((s.state == NeighbourState::Incomplete || s.state == NeighbourState::Stale) && s.next_probe_ms <= now_ms)
        return i;
    }
    return kNoSlot;
  }

  // For a slot whose probe is due: if fewer than max_probes were sent since
  // the last confirmation, counts one more, schedules the next at now +
  // retry_ms and returns true (send it now). Otherwise the last probe went
  // unanswered for retry_ms: the entry is Failed (lookups miss it; resolution
  // may restart after a hold-down of retry_ms) and false is returned.
  bool mark_probe_sent(std::uint32_t slot, std::uint64_t now_ms, std::uint64_t retry_ms,
                       std::uint32_t max_probes) noexcept {
    NeighbourSlot& s = slots_[slot];
    if (s.state != NeighbourState::Incomplete && s.state != NeighbourState::Stale) return false;
    write_begin(s);
    const bool send = s.probes_sent < max_probes;
    if (send) {
      if (s.probes_sent != 0xff) ++s.probes_sent;
    } else {
      s.state = NeighbourState::Failed;
      s.updated_ms = now_ms;
    }
    s.next_probe_ms = now_ms + retry_ms;
    write_end(s);
    if (!send) ++counters_.failed;
    return send;
  }

  // Reachable entries not confirmed for reachable_ms become Stale, with a
  // probe due now. Returns how many did.
  std::uint32_t age(std::uint64_t now_ms, std::uint64_t reachable_ms) noexcept {
    std::uint32_t aged = 0;
    for (std::uint32_t i = 0; i < capacity_; ++i) {
      NeighbourSlot& s = slots_[i];
      if (s.state != NeighbourState::Reachable || now_ms < s.updated_ms + reachable_ms) continue;
      write_begin(s);
      s.state = NeighbourState::Stale;
      s.probes_sent = 0;
      s.updated_ms = now_ms;
      s.next_probe_ms = now_ms;
      write_end(s);
      ++aged;
    }
    return aged;
  }

  // ---- readers (any thread, any process) ----------------------------------

  // The MAC of (family, addr) if it is usable: Reachable, Stale or Static.
  // False as well if the writer kept changing a slot on the way for
  // `attempts` tries (the caller treats it as unresolved).
  bool lookup(std::uint8_t family, const std::uint8_t* addr, config::Mac& out, int attempts = 64) const noexcept {
    std::uint32_t slot, version;
    return lookup(family, addr, out, slot, version, attempts);
  }

  // The same, and where the MAC was read: its slot and the (even) version
  // the slot had then (see unchanged()).
  bool lookup(std::uint8_t family, const std::uint8_t* addr, config::Mac& out, std::uint32_t& slot,
              std::uint32_t& version, int attempts = 64) const noexcept {
    if (!valid() || !valid_family(family)) return false;
    std::uint32_t i = neighbour_hash(family, addr) & mask_;
    for (std::uint32_t n = 0; n < probe_limit_; ++n, i = (i + 1) & mask_) {
      KeyState ks;
      if (!read_key_state(i, ks, attempts)) return false;
      if (ks.family == 0) return false;
      if (!same_key(ks.family, ks.address, family, addr)) continue;
      if (ks.state != NeighbourState::Reachable && ks.state != NeighbourState::Stale &&
          ks.state != NeighbourState::Static)
        return false;
      std::memcpy(out.data(), ks.mac, 6);
      slot = i;
      version = ks.version;
      return true;
    }
    return false;
  }

  // True while a slot is as it was when read at `version`: the writer bumps
  // the version on every change (address, state, MAC), so whatever was
  // read from the slot then still holds. One load.
  bool unchanged(std::uint32_t slot, std::uint32_t version) const noexcept {
    return std::atomic_ref<std::uint32_t>(slots_[slot].version).load(std::memory_order_acquire) == version;
  }

  // A consistent copy of a slot (for listing), or false if the writer kept
  // changing it for `attempts` tries.
  bool read(std::uint32_t slot, NeighbourSlot& out, int attempts = 64) const noexcept {
    NeighbourSlot& s = slots_[slot];
    std::uint32_t seen;
    if (!seqlock::read(s.version, [&] { std::memcpy(static_cast<void*>(&out), &s, sizeof out); }, attempts, &seen))
      return false;
    out.version = seen;
    return true;
  }

 private:
  struct KeyState {
    std::uint32_t version;  // even: the one the rest was copied at
    std::uint8_t family;
    NeighbourState state;
    std::uint8_t address[16];
    std::uint8_t mac[6];
  };

  static bool valid_family(std::uint8_t family) noexcept { return family == 4 || family == 6; }
  static std::size_t addr_len(std::uint8_t family) noexcept { return family == 4 ? 4 : 16; }

  static bool same_key(std::uint8_t slot_family, const std::uint8_t* slot_addr, std::uint8_t family,
                       const std::uint8_t* addr) noexcept {
    return slot_family == family && ip_equal(family, slot_addr, addr);
  }

  static void write_begin(NeighbourSlot& s) noexcept { seqlock::write_begin(s.version); }
  static void write_end(NeighbourSlot& s) noexcept { seqlock::write_end(s.version); }

  bool read_key_state(std::uint32_t slot, KeyState& out, int attempts) const noexcept {
    NeighbourSlot& s = slots_[slot];
    return seqlock::read(s.version, [&] {
      out.family = s.family;
      out.state = s.state;
      std::memcpy(out.address, s.address, sizeof out.address);
      std::memcpy(out.mac, s.mac, sizeof out.mac);
    }, attempts, &out.version);
  }

  NeighbourSlot* slots_ = nullptr;
  std::uint32_t capacity_ = 0;
  std::uint32_t mask_ = 0;
  std::uint32_t probe_limit_ = 0;
  NeighbourCounters counters_{};
};

// A reader's memo of its lookups in one table (a worker's, per packet in
// mode lb): direct-mapped by address, each entry the MAC with the slot and
// version it was read at. A hit costs a compare and one load of the slot's
// version; any change to the slot since (a new MAC, ageing to Stale, Failed)
// misses and looks the address up afresh, so a hit returns exactly what
// NeighbourTable::lookup() would have returned when the version was read.
class NeighbourCache {
 public:
  static constexpr std::uint32_t kEntries = 64;  // a power of two

  // As t.lookup(family, addr, out, attempts); `t` must be the same table
  // (the same memory) at every call.
  bool lookup(const NeighbourTable& t, std::uint8_t family, const std::uint8_t* addr, config::Mac& out,
              int attempts = 64) noexcept {
    if (family != 4 && family != 6) return false;
    Entry& e = entries_[index_of(family, addr)];
    if (e.family == family && ip_equal(family, e.address, addr) && t.unchanged(e.slot, e.version)) {
      out = e.mac;
      return true;
    }
    return refill(t, e, family, addr, out, attempts);
  }

 private:
  struct Entry {
    std::uint8_t family = 0;  // 0: empty
    std::uint8_t address[16] = {};
    config::Mac mac = {};
    std::uint32_t slot = 0;
    std::uint32_t version = 0;
  };

  // An address's entry: the low bits of its CRC32C, without
  // neighbour_hash()'s final mixing, which the table's linear probing wants
  // and a direct-mapped memo does not (CRC is linear: addresses that differ
  // only in their low bits, as neighbouring hosts' do, still spread).
  static std::uint32_t index_of(std::uint8_t family, const std::uint8_t* addr) noexcept {
    return neighbour_crc(family, addr) & (kEntries - 1);
  }

  // The miss: kept out of line so that the hit stays small where it is
  // inlined (the worker's per-packet loop).
  [[gnu::noinline]] static bool refill(const NeighbourTable& t, Entry& e, std::uint8_t family,
                                       const std::uint8_t* addr, config::Mac& out, int attempts) noexcept {
    std::uint32_t slot, version;
    if (!t.lookup(family, addr, out, slot, version, attempts)) return false;
    e.family = family;
    std::memset(e.address, 0, sizeof e.address);
    std::memcpy(e.address, addr, family == 4 ? 4 : 16);
    e.slot = slot;
    e.version = version;
    e.mac = out;
    return true;
  }

  Entry entries_[kEntries];
};

// A reader's memo of the Ethernet addresses of frames to one next hop out of
// one port, as set_macs() writes them: destination (the neighbour's MAC, from
// the table) then source (the port's). The caller keeps one per next hop
// that does not change (a backend slot's, a port's gateway), so a hit costs
// no hashing and no address compare: one load of the table slot's version,
// as NeighbourCache does, and the 12 bytes are the frame's as they are.
class HopMemo {
 public:
  // True: `macs()` hold the next hop's MAC as the table has it now.
  bool valid(const NeighbourTable& t) const noexcept { return filled_ && t.unchanged(slot_, version_); }

  // Reads (family, addr) from the table, with `src` (the port's MAC) as
  // source. False: not usable in the table (the memo stays empty). Out of
  // line: the miss.
  [[gnu::noinline]] bool fill(const NeighbourTable& t, std::uint8_t family, const std::uint8_t* addr,
                              const std::uint8_t* src, int attempts = 64) noexcept {
    config::Mac mac;
    filled_ = t.lookup(family, addr, mac, slot_, version_, attempts);
    if (!filled_) return false;
    std::memcpy(macs_, mac.data(), 6);
    std::memcpy(macs_ + 6, src, 6);
    return true;
  }

  const std::uint8_t* macs() const noexcept { return macs_; }

 private:
  std::uint8_t macs_[12] = {};
  bool filled_ = false;
  std::uint32_t slot_ = 0;
  std::uint32_t version_ = 0;
};

}  // namespace ctlb::lb
