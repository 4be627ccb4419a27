#!/usr/bin/env python3
"""The load generator of the end-to-end load-balancer test: a bounded number of
real HTTP requests, each on a new TCP connection (Connection: close), from a
fixed number of threads.

Each request is recorded as {"i", "start", "end", "ok", "backend", "error",
"port"}: start is CLOCK_MONOTONIC taken just before connect() (system-wide on
Linux, so comparable with the test's and the backends' times), end after the
server closed the connection, backend the name in the answer's body, port the
client's local port (the backends log the peer port of each connection they
accept, which ties a backend's log line to a request).

Prints "done N" (flushed) after each finished request, so a caller can act
mid-run, and writes the records as one JSON array to --out at the end.

usage: http_load.py --host VIP --port 80 --requests N --concurrency K --out FILE
                    [--path /] [--timeout SECS]
"""

import argparse
import http.client
import json
import sys
import threading
import time


def one_request(i, host, port, path, timeout):
    record = {"i": i, "start": time.monotonic(), "end": None, "ok": False, "backend": None, "error": None,
              "port": None}
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.connect()
        record["port"] = conn.sock.getsockname()[1]
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read().decode(errors="replace").strip()
        if response.status != 200:
            record["error"] = f"HTTP {response.status}"
        elif not body:
            record["error"] = "empty body"
        else:
            record["ok"], record["backend"] = True, body
    except (OSError, http.client.HTTPException) as e:
        record["error"] = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
        record["end"] = time.monotonic()
    return record


def main():
    ap = argparse.ArgumentParser(description="bounded HTTP load, one connection per request")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--path", default="/")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=10.0, help="per socket operation, seconds")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    lock = threading.Lock()
    next_index = 0
    records = []

    def worker():
        nonlocal next_index
        while True:
            with lock:
                i = next_index
                if i >= args.requests:
                    return
                next_index += 1
            record = one_request(i, args.host, args.port, args.path, args.timeout)
            with lock:
                records.append(record)
                print(f"done {len(records)}", flush=True)

    threads = [threading.Thread(target=worker) for _ in range(min(args.concurrency, args.requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records.sort(key=lambda r: r["i"])
    with open(args.out, "w") as f:
        json.dump(records, f)
    failed = sum(1 for r in records if not r["ok"])
    print(f"finished {len(records)} failed {failed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
