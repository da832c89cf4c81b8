#!/usr/bin/env python3
"""Runs the workspace's test binaries two at a time (tests/run calls it).

    cargo test --workspace --no-run --message-format=json-render-diagnostics \\
        | python3 tests/parallel.py

`cargo test` runs one test binary after another, and most of ours spend their
time waiting on something else (a vendor SDK in Python or Node, moto, a
browser, an archive reader), so on the 2-core CI machine half of it was idle
time. This runs the binaries built by the command above in two lanes, the
longest first, each in its package's directory as cargo would, and prints
each binary's whole output when it ends (never interleaved). It exits 1 if
any binary failed, after all have run (as `--no-fail-fast`), and lists them.

Extra arguments are passed to every test binary (e.g. `--skip slow_thing`).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

LANES = int(os.environ.get("ZIPGATE_TEST_LANES", "2"))
# Per binary; cargo test has none, but a hang here would print nothing at all.
TIMEOUT = int(os.environ.get("ZIPGATE_TEST_TIMEOUT", "900"))

# Started first so the long ones do not end up alone at the end (seconds on
# the 2-core machine, from tests/run's output). Anything unlisted comes after.
LONGEST = ["clients", "zip64_large", "openapi", "native_zip", "cli", "dashboard", "s3",
           "onlyoffice", "streaming", "examples"]
# Run alone, after the others: `wheel` builds the wheel through maturin, whose
# `cargo rustc --bin zipgate` relinks target/debug/zipgate, the binary other
# tests start (they failed with "No such file or directory" mid-relink).
ALONE = ["wheel"]
# Binaries of one group never run at once: `clients` and `s3` start S3
# servers (moto, s3rver) on a port found free a moment before, and two of
# them could pick the same one (an s3rver answered a moto test's request).
GROUPS = {"clients": "s3 servers", "s3": "s3 servers"}
# Run a second time with their servers' jobs in Redis (tests/common::builder
# reads ZIPGATE_TEST_REDIS), when ZIPGATE_REDIS_PASS names the Redis that
# tests/run started: the dialects behave the same over either job store.
REDIS_PASS = ["box", "onlyoffice", "oracle", "itslearning", "dropbox", "faults"]


def binaries(lines):
    found = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        if message.get("reason") == "compiler-message":
            rendered = (message.get("message") or {}).get("rendered")
            if rendered:
                sys.stderr.write(rendered)
            continue
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if not message.get("profile", {}).get("test"):
            continue
        target = message["target"]
        package = os.path.dirname(message["manifest_path"])
        kind = target["kind"][0]
        name = target["name"] if kind == "test" else "%s (%s)" % (target["name"], kind)
        found.append({"name": name, "target": target["name"], "exe": message["executable"],
                      "cwd": package, "env": {}})
        redis = os.environ.get("ZIPGATE_REDIS_PASS")
        if redis and kind == "test" and target["name"] in REDIS_PASS:
            found.append({"name": name + " (jobs in Redis)", "target": target["name"],
                          "exe": message["executable"], "cwd": package,
                          "env": {"ZIPGATE_TEST_REDIS": redis}})
    rank = {name: i for i, name in enumerate(LONGEST)}
    found.sort(key=lambda b: (rank.get(b["target"], len(LONGEST)), b["name"]))
    return found


def run(binary, extra, out):
    """Runs one test binary, its output into `out`: "ok", or why not. A
    binary still running after TIMEOUT seconds is killed with everything it
    started (its own process group)."""
    try:
        child = subprocess.Popen([binary["exe"], *extra], cwd=binary["cwd"], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **binary["env"]}, start_new_session=True)
    except OSError as e:
        return "FAILED (could not start: %s)" % e
    try:
        code = child.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return "FAILED (still running after %d s: killed)" % TIMEOUT
    return "ok" if code == 0 else "FAILED (exit %d)" % code


def main():
    todo = binaries(sys.stdin)
    if not todo:
        sys.exit("tests/parallel.py: no test binaries in the input (pipe cargo test --no-run "
                 "--message-format=json-render-diagnostics into it)")
    total = len(todo)
    extra = sys.argv[1:]
    lock = threading.Lock()
    failed = []
    started = time.monotonic()

    running_groups = set()
    turn = threading.Condition(lock)

    def lane():
        while True:
            with turn:
                while True:
                    if not todo:
                        return
                    ready = [b for b in todo if GROUPS.get(b["target"]) not in running_groups]
                    if ready:
                        break
                    turn.wait()
                binary = ready[0]
                todo.remove(binary)
                group = GROUPS.get(binary["target"])
                if group:
                    running_groups.add(group)
            with tempfile.TemporaryFile() as out:
                t0 = time.monotonic()
                verdict = run(binary, extra, out)
                took = time.monotonic() - t0
                out.seek(0)
                text = out.read().decode("utf-8", "replace")
            with turn:
                print("\n     Running %s (%s) ... %s in %.1f s" % (
                    binary["name"], os.path.relpath(binary["exe"]), verdict, took))
                print(text, end="" if text.endswith("\n") else "\n", flush=True)
                if verdict != "ok":
                    failed.append(binary["name"])
                running_groups.discard(group)
                turn.notify_all()

    alone = [b for b in todo if b["target"] in ALONE]
    todo[:] = [b for b in todo if b["target"] not in ALONE]
    threads = [threading.Thread(target=lane) for _ in range(LANES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A lane that died would have left binaries behind: never skip them silently.
    assert not todo, "binaries left unrun: %s" % [b["name"] for b in todo]
    todo[:] = alone
    lane()
    print("\n%d test binaries in %.0f s (%d lanes)" % (total, time.monotonic() - started, LANES))
    if failed:
        print("failed: %s" % ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
