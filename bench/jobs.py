#!/usr/bin/env python3
"""bench/jobs.py — the job store's cost: in this process against Redis, in one run.

    bench/jobs.py [BINARY] [--rounds 3] [--seconds 6]

Starts a redis-server of its own (Debian's, on a free loopback port) and the
release binary (default target/release/zipgate) twice per round: with jobs
in memory, and with `--jobs redis://…` (a fresh namespace each run). Each
run warms up 3 s (bench/ab.py's run_one), then wrk -t2 -c50 measures:

- Box creates (`POST /2.0/zip_downloads`, the request bench/peers.py sends):
  one create is one script in Redis;
- ONLYOFFICE polls (`GET /api/2.0/files/fileops`) of a user with one open
  operation: a list of the user's open operations, each advanced.

The order of the two alternates between rounds so drift hits both. Prints
each run, the medians, redis/memory per route (issue #23's goal: at least
0.5 on this 2-core machine, where Redis shares the cores with zipgate and
wrk) and the p99 latencies. Loopback only; bounded: rounds x 2 routes x
2 stores x (seconds + 3) s of wrk.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ab  # noqa: E402  (its run_one: a fresh server, warm-up, wrk)
from peers import ROUTES, Route, BEARER, curl_check  # noqa: E402

POLL = Route("GET", "/api/2.0/files/fileops", BEARER, "", 200)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return redis, "redis://127.0.0.1:%d/0" % port
        except OSError:
            time.sleep(0.05)
    redis.kill()
    sys.exit("redis-server did not start")


def open_operation(base):
    """One ONLYOFFICE operation to poll, open for the whole run."""
    status, body = curl_check(base, ROUTES["ONLYOFFICE"])
    if status != 200:
        sys.exit("the ONLYOFFICE create answered %s: %s" % (status, body))


def run_one(binary, extra, route, script, seconds):
    # The polled operation stays open for an hour.
    extra = ["--set", "onlyoffice.pacing=seconds:3600", *extra]
    return ab.run_one(binary, route, script, seconds, False, extra=extra,
                      prepare=open_operation if route is POLL else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", nargs="?", default=os.path.join(HERE, "..", "target", "release", "zipgate"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    args = parser.parse_args()
    redis, url = start_redis()
    routes = {"Box creates": ROUTES["Box"], "ONLYOFFICE polls": POLL}
    results = {(r, s): [] for r in routes for s in ("memory", "redis")}
    try:
        for name, route in routes.items():
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
                f.write(route.lua())
                script = f.name
            try:
                for n in range(args.rounds):
                    stores = [("memory", []), ("redis", ["--jobs", url, "--jobs-namespace", uuid.uuid4().hex])]
                    for store, extra in stores if n % 2 == 0 else reversed(stores):
                        rec = run_one(args.binary, extra, route, script, args.seconds)
                        if rec["rps"] is None or rec["non2xx"] or rec["socket_errors"]:
                            sys.exit("%s on %s: wrk failed or got errors: %r" % (name, store, rec))
                        results[(name, store)].append(rec)
                        print("%s, round %d, %s: %.0f req/s, p99 %s ms" % (
                            name, n + 1, store, rec["rps"], rec["p99_ms"]), flush=True)
                        # Each Redis run's jobs stay in its namespace; drop them.
                        subprocess.run(["redis-cli", "-u", url, "flushall"], capture_output=True, timeout=30)
            finally:
                os.unlink(script)
    finally:
        redis.kill()
        redis.wait()
    print()
    for name in routes:
        med = {s: statistics.median(r["rps"] for r in results[(name, s)]) for s in ("memory", "redis")}
        p99 = {s: [r["p99_ms"] for r in results[(name, s)]] for s in ("memory", "redis")}
        print("%s: memory %.0f req/s (p99 ms %s), redis %.0f req/s (p99 ms %s): redis/memory = %.2f" % (
            name, med["memory"], p99["memory"], med["redis"], p99["redis"], med["redis"] / med["memory"]))


if __name__ == "__main__":
    main()
