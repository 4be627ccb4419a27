#!/usr/bin/env python3
"""The live demo's closing lines: the client's per-backend split (from
client_load.py's records, in tests/e2e/http_load.py's form) before and after
the drain, next to what `ctlbctl lb --json` counted, and a one-line verdict.

The verdict is OK when no request failed, no request started after the drain
returned was served by the drained backend, ctlb counted no new connection to
it after the drain, and ctlb's new connections per backend equal the requests
the client says each backend served. Exit code 0 for OK, 1 otherwise.

usage: summary.py --records FILE --lb-at-drain FILE --lb-final FILE
                  --drain-monotonic T --drained NAME NAME=ADDRESS:WEIGHT...
"""

import argparse
import collections
import json
import sys


def new_connections(path, address_of):
    """{backend name: new_connections} of the only VIP in a `ctlbctl lb --json` answer."""
    with open(path) as f:
        vips = json.load(f)["vips"]
    names = {a: n for n, a in address_of.items()}
    return {names[b["address"]]: b["new_connections"] for v in vips for b in v["backends"] if b["address"] in names}


def main():
    ap = argparse.ArgumentParser(description="the live demo's summary and verdict")
    ap.add_argument("--records", required=True)
    ap.add_argument("--lb-at-drain", required=True)
    ap.add_argument("--lb-final", required=True)
    ap.add_argument("--drain-monotonic", type=float, required=True)
    ap.add_argument("--drained", required=True)
    ap.add_argument("backends", nargs="+", metavar="NAME=ADDRESS:WEIGHT")
    args = ap.parse_args()
    address_of, weight_of = {}, {}
    for spec in args.backends:
        name, rest = spec.split("=")
        address_of[name], w = rest.split(":")
        weight_of[name] = int(w)

    with open(args.records) as f:
        records = json.load(f)
    ok = [r for r in records if r["ok"]]
    failed = [r for r in records if not r["ok"]]
    before = collections.Counter(r["backend"] for r in ok if r["start"] < args.drain_monotonic)
    after = collections.Counter(r["backend"] for r in ok if r["start"] >= args.drain_monotonic)
    total = collections.Counter(r["backend"] for r in ok)
    secs = max(r["end"] for r in records) - min(r["start"] for r in records) if records else 0.0
    at_drain = new_connections(args.lb_at_drain, address_of)
    final = new_connections(args.lb_final, address_of)

    print(f"{len(records)} requests in {secs:.1f} s ({len(records) / max(secs, 1e-9):.0f}/s), {len(failed)} failed"
          + (f": {collections.Counter(r['error'] for r in failed).most_common(3)}" if failed else ""))
    weights = sum(weight_of.values())
    others = sum(w for n, w in weight_of.items() if n != args.drained)
    print(f"  {'BACKEND':9}{'WEIGHT':>7}{'BEFORE THE DRAIN':>24}{'AFTER THE DRAIN':>24}{'CLIENT':>9}{'CTLB':>8}")
    for name in address_of:
        share_after = weight_of[name] / others if name != args.drained else 0.0
        b, a = before.get(name, 0), after.get(name, 0)
        print(f"  {name:9}{weight_of[name]:>7}"
              f"{b:>9} {b / max(sum(before.values()), 1):6.1%} (want {weight_of[name] / weights:4.0%})"
              f"{a:>9} {a / max(sum(after.values()), 1):6.1%} (want {share_after:4.0%})"
              f"{total.get(name, 0):>9}{final.get(name, 0):>8}")
    print("  (CLIENT: requests each backend answered; CTLB: new connections `ctlbctl lb` counted)")

    late = after.get(args.drained, 0)
    ctlb_late = final.get(args.drained, 0) - at_drain.get(args.drained, 0)
    problems = []
    if not records:
        problems.append("no request was made")
    if failed:
        problems.append(f"{len(failed)} requests failed")
    if late:
        problems.append(f"{late} requests started after the drain were served by {args.drained}")
    if ctlb_late:
        problems.append(f"ctlb counted {ctlb_late} new connections to {args.drained} after the drain")
    if final != {n: total.get(n, 0) for n in address_of}:
        problems.append(f"ctlb's counts {final} differ from the client's {dict(total)}")
    if problems:
        print(f"\nverdict: NOT OK: {'; '.join(problems)}")
        return 1
    print(f"\nverdict: OK: {len(records)} requests through the VIP, none failed; {args.drained} took no new "
          f"connection after the drain; ctlb's per-backend counts equal the client's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
