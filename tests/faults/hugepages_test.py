#!/usr/bin/env python3
"""Fault test (issue 6, item 5): hugepages missing.

Each case runs ctlb-dataplane in a private mount namespace (unshare -m) this
test prepares, so the host's hugepages and mounts are never touched:
  - no free hugepages: sysfs's hugepage counters read 0 (a tmpfs over
    /sys/kernel/mm/hugepages in the namespace);
  - no hugetlbfs mounted: every hugetlbfs mount unmounted in the namespace;
  - a hugetlbfs mount with no room (size=0): the EAL cannot even start;
  - a hugetlbfs mount too small (4 MiB) for the configuration's mbufs: the EAL
    starts, the mbuf pool does not fit.
Each must print exactly one error line on stderr that says what is missing
and what to do (DPDK's own log goes to stdout), exit with code 1, and leave
nothing behind: no /var/run/dpdk/<prefix>, no file in the hugetlbfs mount.

usage: hugepages_test.py CTLB_DATAPLANE
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib  # noqa: E402
from faultlib import ctlbtest  # noqa: E402

PID = os.getpid()

CONFIG = """mode: inline
file_prefix: {prefix}
lcores:
  main: 0
  workers: [1]
mempool:
  mbufs: 16383
ports:
  - name: west
    devargs: net_null0,no-rx=1
    peer: east
  - name: east
    devargs: net_null1,no-rx=1
    peer: west
tracking:
  capacity_v4: 4096
  capacity_v6: 1024
"""

# Shell run in the private mount namespace: prepare, run the dataplane, then
# list what the namespace's hugetlbfs mounts hold (before they go away).
SCRIPT = """set -u
hugetlbfs_mounts() {{ awk '$3 == "hugetlbfs" {{ print $2 }}' /proc/mounts; }}
unmount_hugetlbfs() {{ for m in $(hugetlbfs_mounts); do umount "$m" || exit 90; done; }}
{prepare}
"$DP" --config "$CFG" > "$OUT/stdout" 2> "$OUT/stderr"
rc=$?
for m in $(hugetlbfs_mounts); do ls -A "$m"; done > "$OUT/hugepage-files"
exit $rc
"""

FAKE_SYSFS = """mount -t tmpfs ctlb-test /sys/kernel/mm/hugepages || exit 91
mkdir /sys/kernel/mm/hugepages/hugepages-2048kB
for f in nr_hugepages free_hugepages resv_hugepages surplus_hugepages nr_overcommit_hugepages; do
  echo 0 > /sys/kernel/mm/hugepages/hugepages-2048kB/$f
done"""

SMALL_MOUNT = """unmount_hugetlbfs
mkdir -p "$OUT/huge"
mount -t hugetlbfs -o pagesize=2M,size={size} ctlb-test "$OUT/huge" || exit 92"""

NO_FREE = ("ctlb-dataplane: no free hugepages: reserve some (echo 512 > "
           "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) and mount hugetlbfs "
           "(mount -t hugetlbfs nodev /dev/hugepages)")
NO_MOUNT = ("ctlb-dataplane: no hugetlbfs mounted: the EAL maps its hugepages from one "
            "(mount -t hugetlbfs nodev /dev/hugepages)")
EAL_NO_MEMORY = ("ctlb-dataplane: EAL initialisation failed: Cannot allocate memory (no hugepage memory left for "
                 "the EAL itself: reserve more hugepages, or raise the hugetlbfs mount's size limit)")

CASES = [
    # name, preparation, (expected line or predicate), EAL started
    ("no free hugepages", FAKE_SYSFS, lambda line: line == NO_FREE, False),
    ("no hugetlbfs mounted", "unmount_hugetlbfs", lambda line: line == NO_MOUNT, False),
    ("a hugetlbfs mount with no room", SMALL_MOUNT.format(size="0"), lambda line: line == EAL_NO_MEMORY, True),
    ("a hugetlbfs mount too small for the mbufs", SMALL_MOUNT.format(size="4M"),
     lambda line: (line.startswith("ctlb-dataplane: ") and ":7:10: mempool.mbufs: " in line and
                   "hugepage memory" in line and "(found '16383')" in line), True),
]

check = faultlib.Checks()


def run_case(dataplane, tmp, index, name, prepare, line_ok, eal_starts):
    prefix = f"ctlb-fh-{index}-{PID}"
    out = os.path.join(tmp, f"case{index}")
    os.makedirs(out)
    cfg = os.path.join(out, "ctlb.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(prefix=prefix))
    env = dict(os.environ, DP=dataplane, CFG=cfg, OUT=out)
    t0 = time.monotonic()
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            SCRIPT.format(prepare=prepare)], env=env, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        left = [f"/var/run/dpdk/{prefix}"] if os.path.exists(f"/var/run/dpdk/{prefix}") else []
    finally:
        ctlbtest.remove_dpdk_files(prefix)
    if r.returncode >= 90:
        check(False, f"{name}: could not prepare the namespace (exit {r.returncode}): {r.stderr.strip()}")
        return
    stderr = open(os.path.join(out, "stderr")).read().splitlines()
    stdout = open(os.path.join(out, "stdout")).read()
    # The host's mount (cases without a private one) holds other processes' files too.
    left += [f"hugetlbfs: {f}" for f in open(os.path.join(out, "hugepage-files")).read().split() if f.startswith(prefix)]
    check(r.returncode == 1, f"{name}: exit code 1 ({r.returncode}, {took:.2f} s)")
    check(len(stderr) == 1 and line_ok(stderr[0]), f"{name}: exactly one clear error line on stderr: {stderr}")
    check(("EAL:" in stdout) == eal_starts,
          f"{name}: " + ("DPDK's own log went to stdout" if eal_starts else "refused before the EAL started"))
    check(not left, f"{name}: nothing left behind (runtime directory, hugepage files): {left}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if os.geteuid() != 0:
        ctlbtest.skip("needs root (mount namespaces)")
    if not shutil.which("unshare"):
        ctlbtest.skip("needs unshare (util-linux)")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        ctlbtest.skip(f"cannot create a mount namespace: {probe.stderr.strip()}")
    dataplane = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="ctlb-fh-")
    t0 = time.monotonic()
    try:
        for index, (name, prepare, line_ok, eal_starts) in enumerate(CASES):
            try:
                run_case(dataplane, tmp, index, name, prepare, line_ok, eal_starts)
            except Exception as e:  # report, then the next case
                check.error(e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"took {time.monotonic() - t0:.1f} s")
    return check.finish()


if __name__ == "__main__":
    sys.exit(main())
