#!/usr/bin/env python3
"""The live demo's client: real HTTP requests, one TCP connection each, from a
fixed number of threads for a fixed time, then it stops on its own.

Each request is made by tests/e2e/http_load.py's one_request, and the records
are written in the same form as http_load.py's --out (one JSON array), so the
demo reads the client-side split exactly as the end-to-end test does.

usage: client_load.py --host VIP --port 80 --duration SECS --concurrency K --out FILE
"""

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "e2e"))
from http_load import one_request  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="HTTP load for a fixed time, one connection per request")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--duration", type=float, required=True, help="seconds; no request starts after it")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=5.0, help="per socket operation, seconds")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    lock = threading.Lock()
    records = []
    next_index = 0
    stop_at = time.monotonic() + args.duration

    def worker():
        nonlocal next_index
        while time.monotonic() < stop_at:
            with lock:
                i = next_index
                next_index += 1
            record = one_request(i, args.host, args.port, "/", args.timeout)
            with lock:
                records.append(record)

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records.sort(key=lambda r: r["i"])
    with open(args.out + ".part", "w") as f:
        json.dump(records, f)
    os.replace(args.out + ".part", args.out)  # readers never see half a file
    print(f"finished {len(records)} failed {sum(1 for r in records if not r['ok'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
