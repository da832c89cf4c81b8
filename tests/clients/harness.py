"""The check harness the Python client scripts in this folder share. Stdlib only,
so that it loads next to any SDK; a script gets it with `import harness`, as
Python puts the script's own folder on sys.path.

A script declares numbered steps; each runs at once and fails on the first
`expect` that does not hold. At the end, one `ok` or `FAIL` line per step (a
failure with the values it saw), then `NAME: N passed, N failed`. Exit code:
0 all passed, 1 some failed, 2 wrong usage.
"""

import io
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import zipfile


class CheckFailed(Exception):
    pass


def expect(what, ok, actual):
    """Fail the current step with `what` and the actual value unless `ok`."""
    if not ok:
        raise CheckFailed(f"{what}; actual: {actual!r}")


def describe(exc):
    return f"{type(exc).__name__}: {exc}"


class Checks:
    """One script's steps, their shared state and their outcomes."""

    def __init__(self, name, describe=describe):
        self.name = name
        self.describe = describe  # an SDK script passes one that spells out its error type
        self.state = {}  # what a step leaves for the steps after it
        self.results = []  # (label, error or None)

    def step(self, label, needs=()):
        """Decorator that runs the step at once. A step whose `needs` no earlier
        step left in `state` is skipped and counted failed, so a failure does not
        set off confusing errors in the steps that build on it."""

        def run(fn):
            missing = [n for n in needs if n not in self.state]
            if missing:
                self.results.append((label, f"skipped: needs {', '.join(missing)} from an earlier step"))
                return fn
            try:
                fn()
                self.results.append((label, None))
            except CheckFailed as e:
                self.results.append((label, str(e)))
            except Exception as e:
                # Name the last line of the script (where the step is written)
                # the error passed through, not one of the harness or an SDK.
                script = fn.__code__.co_filename
                mine = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == script]
                where = f" (at line {mine[-1].lineno}: {mine[-1].line})" if mine else ""
                self.results.append((label, f"unexpected {self.describe(e)}{where}"))
            return fn

        return run

    def report(self):
        """Print every step's outcome and the summary line; the exit code."""
        failed = 0
        for label, error in self.results:
            if error is None:
                print(f"ok    {label}")
            else:
                failed += 1
                print(f"FAIL  {label}\n      {error}")
        print(f"{self.name}: {len(self.results) - failed} passed, {failed} failed")
        return 1 if failed else 0


def run(name, main):
    """Call main(BASE_URL) with the one command-line argument and exit with its
    code (2 on wrong usage); the time taken goes to stderr."""
    t0 = time.monotonic()
    if len(sys.argv) != 2:
        print(f"usage: {name}.py BASE_URL", file=sys.stderr)
        rc = 2
    else:
        rc = main(sys.argv[1].rstrip("/"))
    print(f"{name}: {time.monotonic() - t0:.2f}s", file=sys.stderr)
    sys.exit(rc)


class Reply:
    SHOWN = 300  # body bytes a failure message shows; a script may show more

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    def json(self, what):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CheckFailed(f"{what}: body is not JSON ({e}); actual: {self.body[:self.SHOWN]!r}") from e

    def __repr__(self):
        return f"HTTP {self.status} {dict(self.headers.items())!r} {self.body[:self.SHOWN]!r}"


def http(method, url, headers=None, body=None, timeout=10):
    """One request through urllib; an HTTP error status is returned, not raised,
    because the error answers are what many checks look at."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return Reply(e.code, e.headers, e.read())


def add_fault(base, rule):
    """Adds a fault rule through zipgate's control plane; returns its id."""
    body = json.dumps(rule).encode()
    reply = http("POST", base + "/_zipgate/faults", {"Content-Type": "application/json"}, body)
    expect("the control plane takes the fault rule", reply.status == 201, reply)
    return reply.json("fault rule")["id"]


def journal(base, **filters):
    """The requests zipgate's journal recorded, oldest first.

    Behind a load balancer (ZIPGATE_REPLICAS: each replica's own base URL,
    comma-separated) every replica keeps its own journal: they are read
    whole, merged by time, numbered 1, 2, 3… in that order (so `after` takes
    an id from an earlier call), and filtered here as zipgate would."""
    replicas = os.environ.get("ZIPGATE_REPLICAS")
    if not replicas:
        reply = http("GET", f"{base}/_zipgate/requests?{urllib.parse.urlencode(filters)}")
        expect("the journal answers", reply.status == 200, reply)
        return reply.json("journal")["requests"]
    merged = []
    for url in replicas.split(","):
        reply = http("GET", f"{url}/_zipgate/requests")
        expect(f"the journal of {url} answers", reply.status == 200, reply)
        merged += reply.json("journal")["requests"]
    merged.sort(key=lambda r: (r["time"], r["replica"], r["id"]))
    for n, entry in enumerate(merged, 1):
        entry["id"] = n
    unknown = set(filters) - {"after", "method", "path_prefix", "dialect", "status"}
    expect("the harness knows every journal filter asked for", not unknown, unknown)
    return [
        r for r in merged
        if r["id"] > int(filters.get("after", 0))
        and r["method"] == filters.get("method", r["method"])
        and r["path"].startswith(filters.get("path_prefix", ""))
        and r.get("dialect") == filters.get("dialect", r.get("dialect"))
        and str(r.get("status")) == str(filters.get("status", r.get("status")))
    ]


_kept = 0


def keep_archive(data):
    """With ZIPGATE_KEEP_ARCHIVES=DIR, writes each archive the script opens
    there as 001.zip, 002.zip, … in the order opened, so a test can compare
    the archives of two runs (the same script against two stores)."""
    global _kept
    folder = os.environ.get("ZIPGATE_KEEP_ARCHIVES")
    if folder:
        _kept += 1
        with open(os.path.join(folder, f"{_kept:03d}.zip"), "wb") as f:
            f.write(data)


def open_zip(what, data):
    """Open `data` as a zip whose every entry reads back intact."""
    keep_archive(data)
    expect(f"{what}: content starts with PK\\x03\\x04", data[:4] == b"PK\x03\x04", data[:16])
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise CheckFailed(f"{what}: zipfile cannot open the {len(data)} bytes: {e}") from e
    bad = zf.testzip()
    expect(f"{what}: testzip() finds no bad entry", bad is None, bad)
    return zf
