# Shared set-up steps of scripts/test.sh, scripts/demo.sh and bench/.
# Sourced, not run.

# Debian packages the build, the tests and the demo need.
CTLB_PACKAGES=(
  g++ meson ninja-build pkg-config
  libdpdk-dev dpdk dpdk-dev
  libtbb-dev libyaml-cpp-dev libgtest-dev libbenchmark-dev libpcap-dev
  iproute2 ethtool nftables conntrack python3 python3-scapy tcpdump
  # scripts/fuzz.sh: clang with libFuzzer and the sanitizer runtimes, and
  # llvm-symbolizer for readable stack traces.
  clang-14 libclang-rt-14-dev llvm-14
)

ctlb_log() { printf 'ctlb: %s\n' "$*" >&2; }

ctlb_install_packages() {
  local missing=() p
  for p in "${CTLB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if [[ $EUID -ne 0 ]]; then
    ctlb_log "missing Debian packages: ${missing[*]} (run as root to install them)"
    return 1
  fi
  ctlb_log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Reserves 2 MB hugepages (CTLB_HUGEPAGES, default 512 = 1 GiB) and mounts
# hugetlbfs at /dev/hugepages if needed. Never lowers a larger reservation.
ctlb_setup_hugepages() {
  local want=${CTLB_HUGEPAGES:-512}
  local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
  if [[ ! -w $nr ]]; then
    ctlb_log "cannot reserve hugepages (not root or no 2 MB pages); DPDK tests will skip"
    return 0
  fi
  if (($(cat "$nr") < want)); then
    echo "$want" >"$nr"
  fi
  if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages
  fi
}
