#!/usr/bin/env python3
"""bench/ab.py — two zipgate binaries, same create route, alternating, in one run.

    bench/ab.py OLD_BINARY NEW_BINARY [--route Box] [--rounds 4] [--seconds 8] [--watch]

For "this change costs nothing measurable": build the commit before the change
into another target dir (git worktree add ../zipgate-old HEAD~1, then cargo build
--release there), and compare. Each round starts a fresh server per binary
(RUST_LOG=warn, --max-jobs-per-user 10000), warms it up 3 s, then measures with
wrk -t2 -c50 (the same request as bench/peers.py sends); the order alternates
between rounds so drift on the machine hits both. Prints each run, the median
req/s of each, new/old, and the p99s. --watch reads the new binary's
/_zipgate/events (the dashboard's live feed) with curl during its runs, to see
what an open page costs.

Loopback only; bounded: rounds x 2 x (seconds + 3) s of wrk.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peers import ROUTES, parse_wrk  # noqa: E402  (the same requests as bench/peers.py)


def run_one(binary, route, script, seconds, watch, extra=(), prepare=None):
    """One fresh server (with `extra` arguments), `prepare(base)` run
    against it first if given, 3 s of warm-up, then `seconds` measured."""
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--max-jobs-per-user", "10000", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, RUST_LOG="warn"))
    watcher = None
    try:
        line = server.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not match:
            sys.exit("%s did not print its URL: %r" % (binary, line))
        base = match.group(0)
        if prepare:
            prepare(base)
        if watch:
            watcher = subprocess.Popen(["curl", "-sN", "-o", "/dev/null", base + "/_zipgate/events"])
            time.sleep(0.3)
        for secs in (3, seconds):  # warm-up, then the measured run
            out = subprocess.run(["wrk", "-t2", "-c50", "-d%ds" % secs, "--timeout", "5s", "--latency",
                                  "-s", script, base + route.path],
                                 capture_output=True, text=True, timeout=secs + 30).stdout
        return parse_wrk(out)
    finally:
        if watcher:
            watcher.kill()
            watcher.wait()
        server.kill()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--route", default="Box", choices=sorted(ROUTES))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--watch", action="store_true", help="read the new binary's live feed while measuring it")
    args = parser.parse_args()
    route = ROUTES[args.route]
    results = {"old": [], "new": []}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(route.lua())
        script = f.name
    try:
        for r in range(args.rounds):
            pair = [("old", args.old), ("new", args.new)]
            for name, binary in pair if r % 2 == 0 else reversed(pair):
                rec = run_one(binary, route, script, args.seconds, args.watch and name == "new")
                if rec["rps"] is None or rec["non2xx"]:
                    sys.exit("%s: wrk failed or got errors: %r" % (name, rec))
                results[name].append(rec)
                print("round %d %s: %.0f req/s, p99 %s ms" % (r + 1, name, rec["rps"], rec["p99_ms"]), flush=True)
    finally:
        os.unlink(script)
    med = {k: statistics.median(r["rps"] for r in v) for k, v in results.items()}
    for k in ("old", "new"):
        print("%s: median %.0f req/s; p99 ms %s" % (k, med[k], [r["p99_ms"] for r in results[k]]))
    print("new/old = %.3f%s" % (med["new"] / med["old"], " (new with the live feed read)" if args.watch else ""))


if __name__ == "__main__":
    main()
