#pragma once
// Flow entries as stored in (shared) memory. Part of the contract between
// ctlb-dataplane and ctlb-control: plain data, no pointers.
//
// IPv4: the hot part is exactly one cache line (version, clock, key, TCP
// state and both directions' windows); the fields the kernel keeps for rare
// cases (retransmission detection, challenge ACKs) and the load balancer's
// backend live in a 16-byte cold record beside it. With the index that is 96
// bytes per flow. IPv6: the 36-byte key does not leave room in one line, so
// an IPv6 entry takes two (hot and cold together).
#include <cstdint>

#include "dataplane/common/time.hpp"
#include "dataplane/flow/flow_key.hpp"
#include "dataplane/tcp/tcp_types.hpp"

namespace ctlb::flow {

using Handle = std::uint32_t;
inline constexpr Handle kNoHandle = 0xffffffffu;
inline constexpr std::uint16_t kNoBackend = 0xffff;

struct Cold {
  std::uint32_t created_s;  // seconds on the tracker's clock
  std::uint32_t last_seq;
  std::uint32_t last_ack;
  std::uint16_t last_win;
  std::uint16_t backend;    // load balancer: index of the chosen backend
};
static_assert(sizeof(Cold) == 16);

struct alignas(64) EntryV4 {
  std::uint32_t version;  // seqlock: odd while the owner writes
  Millis last_seen;
  KeyV4 key;
  tcp::Status status;     // status.ct_state == None: free entry
  std::uint32_t last_end;  // doubles as the free-list link of a free entry
  tcp::Track track;
};
static_assert(sizeof(EntryV4) == 64);

struct alignas(64) EntryV6 {
  std::uint32_t version;
  Millis last_seen;
  tcp::Status status;
  std::uint32_t last_end;
  tcp::Track track;
  Cold cold;
  KeyV6 key;
};
static_assert(sizeof(EntryV6) == 128);

struct V4 {
  using Key = KeyV4;
  using Entry = EntryV4;
  static constexpr bool kSeparateCold = true;
  static constexpr std::uint32_t kFamily = 4;
};
struct V6 {
  using Key = KeyV6;
  using Entry = EntryV6;
  static constexpr bool kSeparateCold = false;
  static constexpr std::uint32_t kFamily = 6;
};

}  // namespace ctlb::flow
