// ctlb_tsc_hz: prints the TSC frequency in Hz, measured like DPDK's EAL
// fallback does (TSC ticks over CLOCK_MONOTONIC_RAW), so that
// bench/throughput.sh can turn packet rates into cycles per packet of the
// one worker core. Usage: ctlb_tsc_hz [milliseconds, default 250]
#include <rte_cycles.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace {

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  long ms = 250;
  if (argc > 2 || (argc == 2 && ((ms = std::strtol(argv[1], nullptr, 10)) < 10 || ms > 10000))) {
    std::fprintf(stderr, "usage: ctlb_tsc_hz [milliseconds 10..10000]\n");
    return 2;
  }
  const double t0 = now_s();
  const std::uint64_t c0 = rte_rdtsc();
  timespec pause{ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&pause, nullptr);
  const double t1 = now_s();
  const std::uint64_t c1 = rte_rdtsc();
  std::printf("%.0f\n", static_cast<double>(c1 - c0) / (t1 - t0));
  return 0;
}
