#pragma once
// Per-worker flow table. One writer (the owning worker), any number of
// readers (ctlb-control's ager, CLI queries) that read entries by handle with
// a seqlock. Capacity is fixed at creation; all memory is one region laid out
// by offsets, so that it can sit in a DPDK memzone shared by two processes.
//
//   [TableHeader][Bucket x bucket_count][Entry x capacity][Cold x capacity (IPv4)]
//
// The index is a bucketized cuckoo hash: 8 slots of (16-bit signature, handle)
// per 64-byte bucket, two candidate buckets per key (partial-key cuckoo: the
// second is derived from the first and the signature, so entries can move
// without their key). Entries never move: a handle is stable for a flow's life.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dataplane/common/time.hpp"
#include "dataplane/common/seqlock.hpp"
#include "dataplane/flow/flow_entry.hpp"
#include "dataplane/tcp/tcp_types.hpp"

namespace ctlb::flow {

inline constexpr std::uint64_t kTableMagic = 0x63746c62'7461626cull;  // "ctlbtabl"
inline constexpr std::uint32_t kTableLayoutVersion = 1;
inline constexpr int kSlotsPerBucket = 8;

struct alignas(64) Bucket {
  std::uint16_t sig[kSlotsPerBucket];  // 0: empty slot
  std::uint32_t handle[kSlotsPerBucket];
  std::uint8_t reserved[16];
};
static_assert(sizeof(Bucket) == 64);

// Counters of the table itself, written by the owner only.
struct TableStats {
  std::uint64_t inserts;
  std::uint64_t erases;
  std::uint64_t cuckoo_moves;
  std::uint64_t reclaimed_expired;  // expired entries freed inline to make room
  std::uint64_t evicted;            // live entries evicted to make room
  std::uint64_t insert_refused;     // no room and nothing evictable
  std::uint64_t expire_done;        // expiry requests that freed an entry
  std::uint64_t expire_stale;       // expiry requests refused: entry changed or not expired
};

struct alignas(64) TableHeader {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t family;  // 4 or 6
  std::uint32_t capacity;
  std::uint32_t bucket_count;
  std::uint32_t entry_size;
  std::uint32_t free_head;
  std::uint32_t used;
  std::uint32_t reserved;
  std::uint64_t buckets_offset;
  std::uint64_t entries_offset;
  std::uint64_t cold_offset;  // 0 when cold records are inside the entries
  std::uint64_t total_bytes;
  alignas(64) TableStats stats;
};

// How the table may make room: an eviction score per entry (higher goes
// first, negative never) and whether an entry has expired.
struct EvictionPolicy {
  const tcp::Timeouts* timeouts;

  bool expired(const tcp::Status& st, Millis last_seen, Millis now) const noexcept {
    return elapsed_ms(now, last_seen) >= tcp::timeout_of(st, *timeouts);
  }

  // Half-open first (what a SYN flood fills the table with; the oldest of
  // the two buckets goes), then closed and closing, then unassured
  // ESTABLISHED and assured connections back in a handshake state (a
  // re-synchronisation); never an assured ESTABLISHED.
  static int score(const tcp::Status& st) noexcept {
    using tcp::CtState;
    switch (static_cast<CtState>(st.ct_state)) {
      case CtState::SynSent:
      case CtState::SynSent2:
      case CtState::SynRecv: return st.assured ? 1 : 6;  // assured: a connection re-synchronising, not a flood's
      case CtState::Close: return 5;
      case CtState::TimeWait: return 4;
      case CtState::LastAck:
      case CtState::FinWait:
      case CtState::CloseWait: return 3;
      case CtState::Established: return st.assured ? -1 : 1;
      default: return -1;
    }
  }
};

enum class InsertStatus : std::uint8_t { Inserted, ReclaimedExpired, Evicted, Refused };

struct InsertResult {
  Handle handle = kNoHandle;
  InsertStatus status = InsertStatus::Refused;
  tcp::Status victim{};  // the status of what was reclaimed or evicted
};

enum class ExpireStatus : std::uint8_t { Expired, Changed, NotExpired, Free, BadHandle };

template <class F>
class FlowTable {
 public:
  using Key = typename F::Key;
  using Entry = typename F::Entry;

  FlowTable() = default;

  static std::uint32_t bucket_count_for(std::uint32_t capacity) noexcept {
    // Two slots per flow keeps cuckoo inserts short at full occupancy.
    std::uint64_t want = (static_cast<std::uint64_t>(capacity) * 2 + kSlotsPerBucket - 1) / kSlotsPerBucket;
    std::uint64_t n = 1;
    while (n < want) n <<= 1;
    return static_cast<std::uint32_t>(n < 2 ? 2 : n);
  }

  static std::size_t bytes_needed(std::uint32_t capacity) noexcept {
    std::size_t n = sizeof(TableHeader);
    n += sizeof(Bucket) * bucket_count_for(capacity);
    n += sizeof(Entry) * static_cast<std::size_t>(capacity);
    if constexpr (F::kSeparateCold) n += sizeof(Cold) * static_cast<std::size_t>(capacity);
    return n;
  }

  // Lays a fresh table out in `mem` (64-byte aligned, bytes_needed() long).
  static FlowTable create(void* mem, std::uint32_t capacity) noexcept {
    auto* base = static_cast<std::uint8_t*>(mem);
    const std::uint32_t buckets = bucket_count_for(capacity);
    auto* h = new (base) TableHeader{};
    h->magic = kTableMagic;
    h->layout_version = kTableLayoutVersion;
    h->family = F::kFamily;
    h->capacity = capacity;
    h->bucket_count = buckets;
    h->entry_size = sizeof(Entry);
    h->buckets_offset = sizeof(TableHeader);
    h->entries_offset = h->buckets_offset + sizeof(Bucket) * static_cast<std::size_t>(buckets);
    h->cold_offset = F::kSeparateCold ? h->entries_offset + sizeof(Entry) * static_cast<std::size_t>(capacity) : 0;
    h->total_bytes = bytes_needed(capacity);
    std::memset(base + h->buckets_offset, 0, h->total_bytes - h->buckets_offset);
    FlowTable t(base);
    // Free list through the free entries, lowest handle first.
    for (std::uint32_t i = 0; i < capacity; ++i) t.entries_[i].last_end = i + 1 < capacity ? i + 1 : kNoHandle;
    h->free_head = capacity ? 0 : kNoHandle;
    return t;
  }

  // Attaches to a table laid out by create(), possibly by another process.
  // Returns an invalid table if the memory does not hold one of this layout.
  static FlowTable attach(void* mem) noexcept {
    auto* h = static_cast<TableHeader*>(mem);
    if (h->magic != kTableMagic || h->layout_version != kTableLayoutVersion || h->family != F::kFamily ||
        h->entry_size != sizeof(Entry))
      return FlowTable();
    return FlowTable(static_cast<std::uint8_t*>(mem));
  }

  bool valid() const noexcept { return header_ != nullptr; }
  std::uint32_t capacity() const noexcept { return header_->capacity; }
  std::uint32_t size() const noexcept { return header_->used; }
  std::uint32_t bucket_count() const noexcept { return header_->bucket_count; }
  const TableStats& stats() const noexcept { return header_->stats; }
  TableHeader& header() noexcept { return *header_; }

  Entry& entry(Handle h) noexcept { return entries_[h]; }
  const Entry& entry(Handle h) const noexcept { return entries_[h]; }
  Cold& cold(Handle h) noexcept {
    if constexpr (F::kSeparateCold) return colds_[h];
    else return entries_[h].cold;
  }
  const Cold& cold(Handle h) const noexcept {
    if constexpr (F::kSeparateCold) return colds_[h];
    else return entries_[h].cold;
  }

  static std::uint16_t signature(std::uint32_t hash) noexcept {
    const auto s = static_cast<std::uint16_t>(hash >> 16);
    return s ? s : 1;
  }
  std::uint32_t primary(std::uint32_t hash) const noexcept { return hash & mask_; }
  std::uint32_t alternate(std::uint32_t bucket, std::uint16_t sig) const noexcept {
    const std::uint32_t tag = ((static_cast<std::uint32_t>(sig) * 0x9E3779B1u) >> 8) | 1u;
    return (bucket ^ tag) & mask_;
  }

  void prefetch_bucket(std::uint32_t hash) const noexcept { __builtin_prefetch(&buckets_[primary(hash)]); }
  void prefetch_entry(Handle h) const noexcept {
    __builtin_prefetch(&entries_[h]);
    if constexpr (F::kSeparateCold) __builtin_prefetch(&colds_[h]);
    else __builtin_prefetch(reinterpret_cast<const std::uint8_t*>(&entries_[h]) + 64);
  }

  // Stage 2 of a pipelined lookup: the first handle whose signature matches in
  // the key's primary bucket (its entry is prefetched), or kNoHandle. A hint
  // only: the key is compared later (lookup() with the hint).
  Handle candidate(std::uint32_t hash) const noexcept {
    const Bucket& b = buckets_[primary(hash)];
    const std::uint32_t m = match_mask(b, signature(hash));
    if (!m) return kNoHandle;
    const Handle h = b.handle[__builtin_ctz(m)];
    prefetch_entry(h);
    return h;
  }

  bool is_entry_of(Handle h, const Key& key) const noexcept {
    return h != kNoHandle && entries_[h].status.ct_state != 0 && entries_[h].key == key;
  }

  // lookup() after candidate(): the hint when it is the key's entry.
  Handle lookup(const Key& key, std::uint32_t hash, Handle hint) const noexcept {
    return is_entry_of(hint, key) ? hint : lookup(key, hash);
  }

  Handle lookup(const Key& key, std::uint32_t hash) const noexcept {
    const std::uint16_t sig = signature(hash);
    const std::uint32_t b1 = primary(hash);
    Handle h = find_in_bucket(b1, sig, key);
    if (h != kNoHandle) return h;
    return find_in_bucket(alternate(b1, sig), sig, key);
  }

  // Looks up n (<= 32) keys: buckets are prefetched for all, then candidate
  // entries, then keys are compared, so that the misses overlap.
  void lookup_bulk(const Key* keys, const std::uint32_t* hashes, unsigned n, Handle* out) const noexcept {
    std::uint32_t matches[32];
    for (unsigned i = 0; i < n; ++i) __builtin_prefetch(&buckets_[primary(hashes[i])]);
    for (unsigned i = 0; i < n; ++i) {
      const Bucket& b = buckets_[primary(hashes[i])];
      matches[i] = match_mask(b, signature(hashes[i]));
      if (matches[i]) __builtin_prefetch(&entries_[b.handle[__builtin_ctz(matches[i])]]);
    }
    for (unsigned i = 0; i < n; ++i) {
      const std::uint16_t sig = signature(hashes[i]);
      const std::uint32_t b1 = primary(hashes[i]);
      Handle h = check_matches(buckets_[b1], matches[i], keys[i]);
      if (h == kNoHandle) h = find_in_bucket(alternate(b1, sig), sig, keys[i]);
      out[i] = h;
    }
  }

  // Inserts a key known to be absent. Makes room if needed: an expired entry
  // of the two buckets first, then the best eviction candidate. The new
  // entry's fields other than the key are zero (ct_state None) and must be
  // written by the caller inside write_begin()/write_end().
  InsertResult insert(const Key& key, std::uint32_t hash, Millis now, const EvictionPolicy& policy) noexcept {
    InsertResult r;
    const std::uint16_t sig = signature(hash);
    const std::uint32_t b1 = primary(hash);
    const std::uint32_t b2 = alternate(b1, sig);
    int slot_bucket = -1;
    int slot = -1;
    if (header_->free_head != kNoHandle) {
      if (find_free_slot(b1, slot)) slot_bucket = 0;
      else if (find_free_slot(b2, slot)) slot_bucket = 1;
      else if (make_room(b1, slot)) slot_bucket = 0;
      else if (make_room(b2, slot)) slot_bucket = 1;
    }
    if (slot_bucket >= 0) {
      const Handle h = header_->free_head;
      header_->free_head = entries_[h].last_end;
      Bucket& b = buckets_[slot_bucket == 0 ? b1 : b2];
      b.handle[slot] = h;
      b.sig[slot] = sig;
      init_entry(h, key);
      ++header_->used;
      ++header_->stats.inserts;
      r.handle = h;
      r.status = InsertStatus::Inserted;
      return r;
    }
    // No slot or no free handle: take the place of an entry of the two buckets.
    std::uint32_t vb = 0;
    int vs = -1;
    bool victim_expired = false;
    int best_score = -1;
    Millis best_idle = 0;
    for (std::uint32_t bi : {b1, b2}) {
      const Bucket& b = buckets_[bi];
      for (int s = 0; s < kSlotsPerBucket; ++s) {
        if (b.sig[s] == 0) continue;
        const Entry& e = entries_[b.handle[s]];
        const Millis idle = elapsed_ms(now, e.last_seen);
        if (policy.expired(e.status, e.last_seen, now)) {
          if (!victim_expired || idle > best_idle) {
            victim_expired = true;
            vb = bi;
            vs = s;
            best_idle = idle;
          }
          continue;
        }
        if (victim_expired) continue;
        const int score = EvictionPolicy::score(e.status);
        if (score < 0) continue;
        if (score > best_score || (score == best_score && idle > best_idle)) {
          best_score = score;
          best_idle = idle;
          vb = bi;
          vs = s;
        }
      }
    }
    if (vs < 0) {
      ++header_->stats.insert_refused;
      return r;
    }
    Bucket& b = buckets_[vb];
    const Handle h = b.handle[vs];
    r.victim = entries_[h].status;
    // Same handle, new flow: bump the version so stale expiry requests fail.
    b.sig[vs] = 0;
    write_begin(entries_[h]);
    entries_[h].status = tcp::Status{};
    write_end(entries_[h]);
    // Place the new key in the slot just vacated if it is one of its buckets.
    b.sig[vs] = sig;
    init_entry(h, key);
    r.handle = h;
    if (victim_expired) {
      r.status = InsertStatus::ReclaimedExpired;
      ++header_->stats.reclaimed_expired;
    } else {
      r.status = InsertStatus::Evicted;
      ++header_->stats.evicted;
    }
    ++header_->stats.inserts;
    return r;
  }

  // Frees an entry (the owner only).
  void erase(Handle h) noexcept {
    Entry& e = entries_[h];
    const std::uint32_t hash = hash_key(e.key);
    const std::uint16_t sig = signature(hash);
    const std::uint32_t b1 = primary(hash);
    if (!clear_slot(b1, sig, h)) clear_slot(alternate(b1, sig), sig, h);
    write_begin(e);
    e.status = tcp::Status{};
    e.last_end = header_->free_head;
    write_end(e);
    header_->free_head = h;
    --header_->used;
    ++header_->stats.erases;
  }

  // An expiry request from the control process: free the entry only if it is
  // unchanged since the scan (same version) and still expired now.
  ExpireStatus expire(Handle h, std::uint32_t version, Millis now, const EvictionPolicy& policy) noexcept {
    if (h >= header_->capacity) return ExpireStatus::BadHandle;
    Entry& e = entries_[h];
    if (e.status.ct_state == 0) {
      ++header_->stats.expire_stale;
      return ExpireStatus::Free;
    }
    if (e.version != version) {
      ++header_->stats.expire_stale;
      return ExpireStatus::Changed;
    }
    if (!policy.expired(e.status, e.last_seen, now)) {
      ++header_->stats.expire_stale;
      return ExpireStatus::NotExpired;
    }
    erase(h);
    ++header_->stats.expire_done;
    return ExpireStatus::Expired;
  }

  // Seqlock, writer side (the owner only).
  [[gnu::always_inline]] static void write_begin(Entry& e) noexcept { seqlock::write_begin(e.version); }
  [[gnu::always_inline]] static void write_end(Entry& e) noexcept { seqlock::write_end(e.version); }

  // Seqlock, reader side: a consistent copy of entry h and its cold record,
  // or false if the owner kept writing it for `attempts` tries.
  bool read(Handle h, Entry& out, Cold& cold_out, int attempts = 64) const noexcept {
    auto& e = const_cast<Entry&>(entries_[h]);
    std::uint32_t seen;
    if (!seqlock::read(e.version, [&] {
          std::memcpy(static_cast<void*>(&out), &e, sizeof(Entry));
          std::memcpy(&cold_out, &cold(h), sizeof(Cold));
        }, attempts, &seen))
      return false;
    out.version = seen;
    return true;
  }

 private:
  explicit FlowTable(std::uint8_t* base) noexcept
      : header_(reinterpret_cast<TableHeader*>(base)),
        buckets_(reinterpret_cast<Bucket*>(base + header_->buckets_offset)),
        entries_(reinterpret_cast<Entry*>(base + header_->entries_offset)),
        colds_(F::kSeparateCold ? reinterpret_cast<Cold*>(base + header_->cold_offset) : nullptr),
        mask_(header_->bucket_count - 1) {}

  void init_entry(Handle h, const Key& key) noexcept {
    Entry& e = entries_[h];
    static_assert(offsetof(Entry, version) == 0);
    write_begin(e);
    // Everything but the (odd) version: a reader must never see it even.
    std::memset(reinterpret_cast<std::uint8_t*>(&e) + sizeof(e.version), 0, sizeof(Entry) - sizeof(e.version));
    e.key = key;
    cold(h) = Cold{};
    write_end(e);
  }

  static std::uint32_t match_mask(const Bucket& b, std::uint16_t sig) noexcept {
#if defined(__SSE2__)
    const __m128i sigs = _mm_load_si128(reinterpret_cast<const __m128i*>(b.sig));
    const __m128i eq = _mm_cmpeq_epi16(sigs, _mm_set1_epi16(static_cast<short>(sig)));
    // One bit per slot: the 16-bit lanes (0 or -1) packed to bytes first.
    return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128())));
#else
    std::uint32_t m = 0;
    for (int s = 0; s < kSlotsPerBucket; ++s)
      if (b.sig[s] == sig) m |= 1u << s;
    return m;
#endif
  }

  Handle check_matches(const Bucket& b, std::uint32_t m, const Key& key) const noexcept {
    while (m) {
      const int s = __builtin_ctz(m);
      m &= m - 1;
      const Handle h = b.handle[s];
      if (entries_[h].key == key) return h;
    }
    return kNoHandle;
  }

  Handle find_in_bucket(std::uint32_t bi, std::uint16_t sig, const Key& key) const noexcept {
    const Bucket& b = buckets_[bi];
    return check_matches(b, match_mask(b, sig), key);
  }

  bool find_free_slot(std::uint32_t bi, int& slot) const noexcept {
    const std::uint32_t m = match_mask(buckets_[bi], 0);
    if (!m) return false;
    slot = __builtin_ctz(m);
    return true;
  }

  bool clear_slot(std::uint32_t bi, std::uint16_t sig, Handle h) noexcept {
    Bucket& b = buckets_[bi];
    for (int s = 0; s < kSlotsPerBucket; ++s) {
      if (b.sig[s] == sig && b.handle[s] == h) {
        b.sig[s] = 0;
        return true;
      }
    }
    return false;
  }

  // Frees a slot in bucket `bi` by moving one of its items to its alternate
  // bucket, or one of those bucket's items further (depth 2). Readers never
  // walk the index, so moving items is invisible to them.
  bool make_room(std::uint32_t bi, int& slot) noexcept {
    Bucket& b = buckets_[bi];
    for (int s = 0; s < kSlotsPerBucket; ++s) {
      const std::uint32_t alt = alternate(bi, b.sig[s]);
      int free_slot;
      if (alt != bi && find_free_slot(alt, free_slot)) {
        move_item(bi, s, alt, free_slot);
        slot = s;
        return true;
      }
    }
    for (int s = 0; s < kSlotsPerBucket; ++s) {
      const std::uint32_t alt = alternate(bi, b.sig[s]);
      if (alt == bi) continue;
      Bucket& a = buckets_[alt];
      for (int t = 0; t < kSlotsPerBucket; ++t) {
        const std::uint32_t alt2 = alternate(alt, a.sig[t]);
        int free_slot;
        if (alt2 != alt && alt2 != bi && find_free_slot(alt2, free_slot)) {
          move_item(alt, t, alt2, free_slot);
          move_item(bi, s, alt, t);
          slot = s;
          return true;
        }
      }
    }
    return false;
  }

  void move_item(std::uint32_t from_b, int from_s, std::uint32_t to_b, int to_s) noexcept {
    Bucket& f = buckets_[from_b];
    Bucket& t = buckets_[to_b];
    t.handle[to_s] = f.handle[from_s];
    t.sig[to_s] = f.sig[from_s];
    f.sig[from_s] = 0;
    ++header_->stats.cuckoo_moves;
  }

  TableHeader* header_ = nullptr;
  Bucket* buckets_ = nullptr;
  Entry* entries_ = nullptr;
  Cold* colds_ = nullptr;
  std::uint32_t mask_ = 0;
};

}  // namespace ctlb::flow
