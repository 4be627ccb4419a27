// ctlb_tlb_reach: whether this machine's TLB really holds 2 MiB
// translations for hugepage memory, as the flow table's sizing assumes.
//
// A dependent chase over the same number of cache lines laid out two ways
// in one block of 2 MiB hugepages: packed (a few 4 KiB pages) and one line
// per 4 KiB page (thousands of 4 KiB pages, but only a few 2 MiB pages).
// Where the TLB holds the hugepages' 2 MiB translations both layouts cost
// about the same; where the host maps a guest's memory with 4 KiB pages the
// TLB can only hold 4 KiB pieces of them, and the spread layout costs a page
// walk per load. The flow table's index is addressed by hash, so on such a
// guest a table much larger than its flows pays that walk per packet.
//
// Usage: ctlb_tlb_reach [--4k]  (--4k: ordinary pages, for comparison)
// Needs 8 free 2 MiB hugepages (scripts/lib.sh reserves them for the tests).
#include <rte_cycles.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

namespace {

constexpr std::size_t kLine = 64;
constexpr std::size_t kPage = 4096;
constexpr std::size_t kBytes = std::size_t{16} << 20;  // 8 hugepages

// TSC cycles per load of a random cyclic chase through `lines` lines, one
// per 4 KiB page (spread) or adjacent (packed).
double chase(std::uint8_t* base, std::size_t lines, bool spread, std::mt19937_64& rng) {
  std::vector<std::size_t> off(lines);
  std::uniform_int_distribution<std::size_t> in_page(0, kPage / kLine - 1);
  for (std::size_t i = 0; i < lines; ++i) off[i] = spread ? i * kPage + in_page(rng) * kLine : i * kLine;
  std::vector<std::size_t> order(lines);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  for (std::size_t i = 0; i < lines; ++i) {
    std::uint8_t* next = base + off[order[(i + 1) % lines]];
    std::memcpy(base + off[order[i]], &next, sizeof next);
  }
  std::uint8_t* p = base + off[order[0]];
  auto step = [&p] {
    std::uint8_t* next;
    std::memcpy(&next, p, sizeof next);
    p = next;
  };
  for (std::size_t i = 0; i < 3 * lines; ++i) step();  // warm caches and TLB
  constexpr std::size_t kLoads = 4'000'000;
  const std::uint64_t t0 = rte_rdtsc();
  for (std::size_t i = 0; i < kLoads; ++i) step();
  const std::uint64_t t1 = rte_rdtsc();
  if (p == nullptr) std::puts("");  // keeps the chase
  return static_cast<double>(t1 - t0) / kLoads;
}

}  // namespace

int main(int argc, char** argv) {
  bool small_pages = false;
  if (argc == 2 && std::strcmp(argv[1], "--4k") == 0) {
    small_pages = true;
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: ctlb_tlb_reach [--4k]\n");
    return 2;
  }
  void* m = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | (small_pages ? 0 : MAP_HUGETLB), -1, 0);
  if (m == MAP_FAILED) {
    std::fprintf(stderr, "ctlb_tlb_reach: cannot map %zu MiB of 2 MiB hugepages (%s); reserve 8 or more\n",
                 kBytes >> 20, std::strerror(errno));
    return 1;
  }
  auto* base = static_cast<std::uint8_t*>(m);
  std::memset(base, 0, kBytes);
  std::mt19937_64 rng(1);
  const char* kind = small_pages ? "4 KiB pages" : "2 MiB hugepages";
  const double packed = chase(base, 4096, false, rng);
  const double spread = chase(base, 4096, true, rng);
  std::printf("%s: 4096 lines packed in 256 KiB: %.1f cycles per load\n", kind, packed);
  std::printf("%s: 4096 lines, one per 4 KiB page of 16 MiB: %.1f cycles per load\n", kind, spread);
  if (!small_pages)
    std::printf("%s\n", spread > 2 * packed
                            ? "the TLB holds 4 KiB pieces of the hugepages (a guest whose host maps it with 4 KiB "
                              "pages): a flow table much larger than its flows pays a page walk per packet"
                            : "the TLB holds the hugepages' 2 MiB translations");
  munmap(m, kBytes);
  return 0;
}
