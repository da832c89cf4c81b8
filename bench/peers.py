#!/usr/bin/env python3
"""bench/peers.py — zipgate next to its peers, measured in one run on this machine.

Prints ONE table (stdout; progress on stderr; a copy in bench/out/peers.txt and
the raw records in bench/out/peers.json):

  1. start-up to the first served create request: zipgate, WireMock (the
     standalone jar of npm `wiremock`, one Box stub) and Prism (npm
     `@stoplight/prism-cli` on Box's OpenAPI fragment);
  2. create-job requests/s and p99 with wrk on zipgate's four create routes,
     the WireMock stub and Prism, with each server's RSS after its run;
  3. zip throughput against Python's zipstream-ng on the same files on disk
     (store, deflate level 1, deflate level 6), with peak RSS;
  4. 200 concurrent downloads from zipgate: peak RSS and total throughput;

with the project's targets marked met / MISSED. It installs its peers itself
(pinned in bench/peers/package-lock.json and bench/peers/requirements.txt;
skipped when already installed), runs everything on loopback, bounds every
step in time and kills every process it started on exit. A peer that cannot
be installed or started becomes a row saying so.

    bench/peers.py                 full run (cargo build --release first)
    BENCH_QUICK=1 bench/peers.py   smaller and shorter (about 2 minutes)

    BENCH_NO_BUILD=1          use the existing target/release/zipgate
    BENCH_PEERS_BUDGET=SECS   time for the measuring (installs excluded);
                              steps past it are skipped; 480 full, 120 quick
    BENCH_PEERS_VERIFY=1      check the archives in full mode too (quick always does)

bench/run calls it as its last section and appends the table to its report.
"""

import argparse
import atexit
import hashlib
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, HERE)
from bench import machine_load, proc_cpu, proc_status, reset_hwm, status_once  # noqa: E402  (bench/bench.py)

MIB = 1 << 20
MB = 1e6
URL_RE = re.compile(r"http://127\.0\.0\.1:(\d+)")

WIREMOCK_JAR = os.path.join(PEERS, "node_modules", "wiremock", "build",
                            "wiremock-standalone-%s.jar")
PRISM_BIN = os.path.join(PEERS, "node_modules", ".bin", "prism")
VENV_PY = os.path.join(PEERS, ".venv", "bin", "python")


def log(msg):
    print("peers: %s" % msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes
#
# Every process is started through spawn(), in a session of its own, and
# stopped through stop(); at exit (normal, exception, SIGTERM from bench/run,
# Ctrl-C) whatever is still running is stopped. Only processes we started are
# signalled, by their process group id while the leader is alive.

_procs = []


def spawn(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    _procs.append(p)
    return p


def stop(p, grace=5.0):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    if p in _procs:
        _procs.remove(p)


def stop_all():
    for p in list(_procs):
        stop(p, grace=2.0)


def run(cmd, timeout, **kw):
    """Run to completion within timeout; (returncode or None if it was cut, stdout, stderr)."""
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        stop(p)
        out, err = p.communicate()
        rc = None
    if p in _procs:
        _procs.remove(p)
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def read_url_line(p, timeout):
    """The port from the `http://127.0.0.1:PORT` line a server prints on stdout.

    select() wakes us the moment the line is written, so start-up timing is
    not rounded up to a polling interval.
    """
    deadline = time.perf_counter() + timeout
    buf = b""
    while True:
        m = URL_RE.search(buf.decode(errors="replace"))
        if m:
            return int(m.group(1))
        left = deadline - time.perf_counter()
        if left <= 0:
            raise RuntimeError("no URL on stdout within %.0f s" % timeout)
        ready, _, _ = select.select([p.stdout], [], [], left)
        if ready:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("exited (code %s) before printing its URL" % p.wait())
            buf += chunk


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- routes
#
# One definition per create route: the curl check, the start-up poll and the
# wrk Lua script are all generated from it, so all three send the same request.


def lua_string(s):
    """A double-quoted Lua string literal: \\" and \\\\ escaped, \\ddd for bytes
    outside printable ASCII."""
    def esc(b):
        if b in (0x22, 0x5C):
            return "\\" + chr(b)
        return chr(b) if 32 <= b < 127 else "\\%03d" % b
    return '"%s"' % "".join(esc(b) for b in s.encode())


class Route:
    def __init__(self, method, path, headers, body, expect):
        self.method, self.path, self.headers = method, path, headers
        self.body, self.expect = body, expect

    def with_path(self, path):
        return Route(self.method, path, self.headers, self.body, self.expect)

    def lua(self):
        """A wrk script: method, body and headers; the path (and query) come
        from the URL on wrk's command line."""
        q = lua_string
        lines = ["-- generated by bench/peers.py", "wrk.method = %s" % q(self.method),
                 "wrk.body = %s" % q(self.body)]
        lines += ["wrk.headers[%s] = %s" % (q(k), q(v)) for k, v in self.headers.items()]
        return "\n".join(lines) + "\n"

    def curl_args(self):
        args = ["-X", self.method, "--data-binary", self.body]
        for k, v in self.headers.items():
            args += ["-H", "%s: %s" % (k, v)]
        return args

    def raw(self, port):
        head = ["%s %s HTTP/1.1" % (self.method, self.path), "Host: 127.0.0.1:%d" % port,
                "Connection: close", "Content-Length: %d" % len(self.body.encode())]
        head += ["%s: %s" % kv for kv in self.headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body.encode()


BEARER = {"Authorization": "Bearer alice-token", "Content-Type": "application/json"}
ROUTES = {  # zipgate's create routes on its default fixtures (user alice)
    "Box": Route("POST", "/2.0/zip_downloads", BEARER,
                 '{"items":[{"type":"file","id":"12348"}]}', 202),
    "ONLYOFFICE": Route("PUT", "/api/2.0/files/fileops/bulkdownload", BEARER,
                        '{"fileIds":[12348]}', 200),
    "Oracle": Route("POST", "/documents/api/1.2/folders/"
                    "FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D/_download", BEARER,
                    '{"idList":"DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813"}', 200),
    "itslearning": Route("POST", "/restapi/personal/yourfiles/files/zip/v1"
                         "?access_token=alice-token", {"Content-Type": "application/json"},
                         '{"FileIds":[12348]}', 200),
}
# Prism serves the fragment's paths without the server URL's /2.0 base path.
PRISM_ROUTE = ROUTES["Box"].with_path("/zip_downloads")


def curl_check(base, route):
    """The one curl per route before measuring it: (status, start of the body)."""
    rc, out, err = run(["curl", "-s", "--max-time", "10", "-w", "\n%{http_code}",
                        *route.curl_args(), base + route.path], timeout=15)
    body, _, code = out.rpartition("\n")
    try:
        return int(code), body[:160]
    except ValueError:
        return None, "curl exit %s %s" % (rc, err.strip()[:120])


# ---------------------------------------------------------------- servers
#
# A server kind knows how to start (cmd, env, how its port is learned) and
# which route it answers. zipgate prints its URL; the peers get a free port.


class Server:
    def __init__(self, name, cmd, route, log_path, port=None, env=None, cwd=None):
        self.name, self.cmd, self.route, self.log_path = name, cmd, route, log_path
        self.fixed_port, self.env, self.cwd = port, env, cwd
        self.p = None
        self.port = None

    def start(self):
        """Spawn; returns once the port is known (not yet serving, for peers)."""
        logf = open(self.log_path, "ab")
        try:
            self.p = spawn(self.cmd, stdout=subprocess.PIPE if self.fixed_port is None else logf,
                           stderr=logf, env=self.env, cwd=self.cwd)
        finally:
            logf.close()
        self.port = self.fixed_port or read_url_line(self.p, 20)
        return self

    def wait_serving(self, timeout, t0=None):
        """Poll the create route until it answers as expected; ms since t0.

        A refused connection is retried after 1 ms rather than in a busy loop:
        on two cores a spinning poller would take a core from the JVM or Node
        start-up it is timing (the 1 ms bounds the error for everyone).
        """
        t0 = t0 or time.perf_counter()
        deadline = t0 + timeout
        last = None
        while True:
            st = status_once(self.port, self.route.raw(self.port))
            if st == self.route.expect:
                return (time.perf_counter() - t0) * 1000
            if st is not None:
                last = st
            if self.p.poll() is not None:
                raise RuntimeError("exited with code %s; log tail: %s" % (
                    self.p.returncode, tail(self.log_path)))
            if time.perf_counter() > deadline:
                raise RuntimeError("no %d within %.0f s (last status %s)" % (
                    self.route.expect, timeout, last))
            if st is None:
                time.sleep(0.001)

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.p:
            stop(self.p)
            if self.p.stdout:
                self.p.stdout.close()


def tail(path, n=300):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            return f.read().decode(errors="replace").replace("\n", " | ").strip()
    except OSError:
        return "(no log)"


def zipgate_env(logging):
    """RUST_LOG=warn, or the binary's default (info: one access-log line a request)."""
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    if logging == "warn":
        env["RUST_LOG"] = "warn"
    return env


class Context:
    """What the sections share: paths, mode, budget, the peers' availability."""

    def __init__(self, a):
        self.quick = a.quick
        self.binary = a.binary
        self.tmp = tempfile.mkdtemp(prefix="zipgate-peers.")
        self.budget_end = None
        self.budget = a.budget
        self.missing = {}  # peer name -> why it cannot run
        self.versions = {}
        self.notes = []
        self.records = []
        self.rows = []  # ("section", title) or ("row", dict)
        self.seq = 0

    def start_budget(self):
        self.budget_end = time.time() + self.budget

    def left(self):
        return self.budget_end - time.time()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def logfile(self, name):
        self.seq += 1
        return self.path("%02d-%s.log" % (self.seq, re.sub(r"[^A-Za-z0-9]+", "-", name)))

    def zipgate(self, name, args=(), logging="warn", route=ROUTES["Box"]):
        # Every create comes from one user: without a per-user cap as large as
        # the global one, creates past 1,000 would measure the cheaper 429.
        cmd = [self.binary, "serve", "--listen", "127.0.0.1:0",
               "--max-jobs-per-user", "10000", *args]
        return Server("zipgate " + name, cmd, route, self.logfile("zipgate " + name),
                      env=zipgate_env(logging))

    def wiremock(self):
        jar = WIREMOCK_JAR % self.versions.get("wiremock", "?")
        port = freeport()
        # The jar straight from the npm package: the package's bin is a Node
        # wrapper that spawns `java -jar` and forwards no signals, so timing it
        # would add Node's start-up and stopping it would orphan the JVM.
        cmd = ["java", "-jar", jar, "--port", str(port), "--bind-address", "127.0.0.1",
               "--root-dir", os.path.join(PEERS, "wiremock")]
        return Server("WireMock", cmd, ROUTES["Box"], self.logfile("wiremock"), port=port)

    def prism(self):
        port = freeport()
        cmd = [PRISM_BIN, "mock", "-h", "127.0.0.1", "-p", str(port),
               os.path.join(PEERS, "openapi-zip-fragment.json")]
        return Server("Prism", cmd, PRISM_ROUTE, self.logfile("prism"), port=port)

    # table building
    def section(self, title):
        self.rows.append(("section", title))

    def row(self, case, **cols):
        cols["case"] = case
        self.rows.append(("row", cols))
        log("%s: %s" % (case, cols.get("result", "")))

    def record(self, rec):
        self.records.append(rec)
        return rec


# ---------------------------------------------------------------- installs


def read_stamp(path):
    """The hash an install left in its stamp file, or None."""
    try:
        return open(path).read().strip()
    except OSError:
        return None


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def install_npm_peers(ctx):
    """npm ci from the lock file, skipped while node_modules matches it."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm not found"
    lock = os.path.join(PEERS, "package-lock.json")
    stamp = os.path.join(PEERS, "node_modules", ".bench-peers-lock.sha256")
    want = sha256(lock)
    have = read_stamp(stamp)
    if have != want:
        log("npm ci in bench/peers (WireMock, Prism)")
        rc, out, err = run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           timeout=900, cwd=PEERS)
        if rc != 0:
            return "npm ci failed (exit %s): %s" % (rc, (err or out).strip()[-300:])
        with open(stamp, "w") as f:
            f.write(want + "\n")
    for name, pkg in (("wiremock", "wiremock"), ("prism", "@stoplight/prism-cli")):
        with open(os.path.join(PEERS, "node_modules", pkg, "package.json")) as f:
            ctx.versions[name] = json.load(f)["version"]
    return None


def install_zipstream(ctx):
    """A venv under bench/peers/.venv with the hash-pinned requirements."""
    req = os.path.join(PEERS, "requirements.txt")
    stamp = os.path.join(PEERS, ".venv", ".bench-peers-req.sha256")
    want = sha256(req)
    have = read_stamp(stamp)
    if have != want or not os.path.exists(VENV_PY):
        log("pip install into bench/peers/.venv (zipstream-ng)")
        if not os.path.exists(VENV_PY):
            rc, out, err = run([sys.executable, "-m", "venv", os.path.join(PEERS, ".venv")],
                               timeout=300)
            if rc != 0:
                return "python -m venv failed: %s" % (err or out).strip()[-300:]
        rc, out, err = run([VENV_PY, "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", "--require-hashes", "--no-deps",
                            "-r", req], timeout=600)
        if rc != 0:
            return "pip install failed (exit %s): %s" % (rc, (err or out).strip()[-300:])
        with open(stamp, "w") as f:
            f.write(want + "\n")
    rc, out, err = run([VENV_PY, "-c", "import importlib.metadata as m, sys; "
                        "print(m.version('zipstream-ng'), sys.version.split()[0])"], timeout=60)
    if rc != 0:
        return "zipstream-ng does not import: %s" % err.strip()[-300:]
    ctx.versions["zipstream-ng"], ctx.versions["python"] = out.split()
    return None


def install_wrk():
    if shutil.which("wrk"):
        return None
    if os.geteuid() != 0:
        return "wrk not installed and not root for apt-get"
    log("apt-get install wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    rc, out, err = run(["apt-get", "update", "-qq"], timeout=300, env=env)
    if rc == 0:
        rc, out, err = run(["apt-get", "install", "-y", "-qq", "wrk"], timeout=300, env=env)
    if rc != 0 or not shutil.which("wrk"):
        return "apt-get install wrk failed: %s" % (err or out).strip()[-300:]
    return None


def installs(ctx):
    for name, fn in (("npm", lambda: install_npm_peers(ctx)),
                     ("zipstream-ng", lambda: install_zipstream(ctx)),
                     ("wrk", install_wrk)):
        try:
            why = fn()
        except Exception as e:  # a broken install is a row, not a crash
            why = "%s: %s" % (type(e).__name__, e)
        if why:
            log("%s unavailable: %s" % (name, why))
            if name == "npm":
                ctx.missing["WireMock"] = ctx.missing["Prism"] = why
            else:
                ctx.missing[name] = why
    if "WireMock" not in ctx.missing:
        if not shutil.which("java"):
            ctx.missing["WireMock"] = "java not found"
        else:
            rc, out, err = run(["java", "-version"], timeout=30)
            m = re.search(r'version "([^"]+)"', err + out)
            ctx.versions["java"] = m.group(1) if m else "?"
    if shutil.which("node"):
        ctx.versions["node"] = run(["node", "-v"], timeout=30)[1].strip()
    if shutil.which("wrk"):
        rc, out, err = run(["wrk", "-v"], timeout=30)
        m = re.search(r"wrk (\S+)", out + err)
        ctx.versions["wrk"] = m.group(1) if m else "?"


# ---------------------------------------------------------------- 1. start-up


def section_startup(ctx):
    n = 3 if ctx.quick else 10
    ctx.section("1. start-up: spawn -> first 2xx on the Box create route, median of %d runs "
                "(RSS at that moment)" % n)
    results = {}
    for name, make in (("zipgate", lambda: ctx.zipgate("start-up", logging="default")),
                       ("WireMock", ctx.wiremock), ("Prism", ctx.prism)):
        label = {"zipgate": "zipgate  serve --listen 127.0.0.1:0",
                 "WireMock": "WireMock  java -jar, one stub (mappings dir)",
                 "Prism": "Prism  mock openapi-zip-fragment.json"}[name]
        if name in ctx.missing:
            ctx.row(label, result="not run", detail=ctx.missing[name])
            continue
        runs, rss, error = [], [], None
        for _ in range(n):
            # A JVM or Node start takes 1-3 s; stop before the budget runs out.
            if ctx.left() < (5 if name == "zipgate" else 20):
                error = "skipped after %d runs: over the time budget" % len(runs)
                break
            server = make()
            try:
                t0 = time.perf_counter()
                server.start()
                runs.append(server.wait_serving(60, t0))
                st = proc_status(server.p.pid) or {}
                if st.get("VmRSS"):
                    rss.append(st["VmRSS"])
            except Exception as e:
                error = str(e)
                break
            finally:
                server.stop()
        rec = ctx.record({"kind": "startup", "server": name, "runs_ms": runs,
                          "rss_kb": rss, "error": error})
        results[name] = rec
        if not runs:
            ctx.row(label, result="FAILED", detail=error)
            continue
        med = statistics.median(runs)
        cols = {"result": "%s ms" % fmt_num(med, 1 if med < 100 else 0),
                "rss": statistics.median(rss) / 1024 if rss else None,
                "detail": "min %s, max %s ms%s" % (fmt_num(min(runs), 1), fmt_num(max(runs), 1),
                                                   "; " + error if error else "")}
        if name == "zipgate":
            cols["target"] = "< 10 ms: %s" % ("met" if med < 10 else "MISSED")
        elif results.get("zipgate", {}).get("runs_ms"):
            zmed = statistics.median(results["zipgate"]["runs_ms"])
            cols["ratio"] = "zipgate %sx faster" % fmt_num(med / zmed, 0)
        ctx.row(label, **cols)


# ---------------------------------------------------------------- 2. wrk

DURATION_RE = re.compile(r"([\d.]+)(us|ms|s|m)\b")


def parse_duration_ms(text):
    m = DURATION_RE.fullmatch(text.strip())
    if not m:
        return None
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def parse_wrk(out):
    r = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"^\s+(\d+) requests in ([\d.]+\w+)", out, re.M)
    r["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        r["p" + pct + "_ms"] = parse_duration_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return r


def wrk(ctx, server, seconds, name):
    script = ctx.path("%s.lua" % re.sub(r"\W+", "-", name))
    with open(script, "w") as f:
        f.write(server.route.lua())
    url = server.base + server.route.path
    cmd = ["wrk", "-t2", "-c50", "-d%ds" % seconds, "--timeout", "5s", "--latency",
           "-s", script, url]
    rc, out, err = run(cmd, timeout=seconds + 30)
    rec = parse_wrk(out)
    rec.update(rc=rc, cmd=" ".join(cmd), stderr=err.strip()[-300:])
    if rc != 0 or err.strip():
        # wrk goes on with a plain GET when its script fails to load: never
        # count such a run.
        rec["rps"] = None
    return rec


def section_wrk(ctx, peer_rps):
    # Every server gets the same warm-up before it is measured: WireMock's
    # JVM roughly doubles its req/s over its first ten seconds of load.
    secs, warm = (3, 2) if ctx.quick else (10, 10)
    ctx.section("2. create-job requests: wrk -t2 -c50 -d%ds --latency on loopback after a "
                "%d s warm-up (check = status of one curl first; RSS = VmRSS after)" % (secs, warm))
    if "wrk" in ctx.missing:
        ctx.row("(all)", result="not run", detail=ctx.missing["wrk"])
        return

    def measure(label, make, key):
        if key.split()[0] in ctx.missing:
            ctx.row(label, result="not run", detail=ctx.missing[key.split()[0]])
            return None
        if ctx.left() < secs + warm + 15:
            ctx.row(label, result="skipped", detail="over the time budget")
            return None
        server = make()
        try:
            server.start()
            if server.fixed_port:
                # A peer listens some time after it starts. zipgate listens
                # before it prints its URL, and a create here would count:
                # ONLYOFFICE refuses the next one while this one is unfinished.
                server.wait_serving(60)
            code, body = curl_check(server.base, server.route)
            log("%s: curl check %s" % (label, code))
            if code is None or not 200 <= code < 300:
                ctx.row(label, check=str(code), result="not measured",
                        detail="curl check answered %s: %s" % (code, body))
                return ctx.record({"kind": "wrk", "case": key, "check": code, "body": body})
            warm_rec = wrk(ctx, server, warm, key + " warm-up")
            rec = wrk(ctx, server, secs, key)
            rec["warmup_rps"] = warm_rec["rps"]
            st = proc_status(server.p.pid) or {}
            rec.update(kind="wrk", case=key, check=code, rss_kb=st.get("VmRSS"),
                       hwm_kb=st.get("VmHWM"))
        except Exception as e:
            ctx.row(label, result="FAILED", detail=str(e)[:200])
            return None
        finally:
            server.stop()
        ctx.record(rec)
        if rec["rps"] is None:
            ctx.row(label, check=str(code), result="FAILED",
                    detail="wrk exit %s: %s" % (rec["rc"], rec["stderr"]))
            return rec
        total = rec["requests"] or 0
        bad = rec["non2xx"]
        detail = "%s requests" % fmt_int(total)
        if bad:
            detail += "; ERRORS: %s non-2xx (%.0f%%)" % (fmt_int(bad), 100.0 * bad / max(total, 1))
        if rec["socket_errors"]:
            detail += "; %s socket errors" % fmt_int(rec["socket_errors"])
        rec["label"] = label
        rec["detail"] = detail
        if warm_rec["rps"] and rec["rps"] < warm_rec["rps"] / 2:
            # A server that slows down as its state grows (jobs, journal)
            # would look fine in a short run; say so rather than hide it.
            ctx.notes.append("%s: req/s fell from %s in the %d s warm-up to %s in the run "
                             "(it slows down as requests accumulate)" % (
                                 label.replace("  ", " "), fmt_int(warm_rec["rps"]), warm,
                                 fmt_int(rec["rps"])))
        return rec

    def show(rec, **cols):
        if rec and rec.get("rps") is not None:
            ctx.row(rec["label"], check=str(rec["check"]),
                    result="%s req/s" % fmt_int(rec["rps"]),
                    p50=rec["p50_ms"], p99=rec["p99_ms"],
                    rss=rec["rss_kb"] / 1024 if rec.get("rss_kb") else None,
                    detail=rec["detail"], **cols)

    # The peers first, so zipgate's rows can carry the ratio.
    wm = measure("WireMock  Box stub, defaults", ctx.wiremock, "WireMock")
    pr = measure("Prism  Box fragment (POST /zip_downloads)", ctx.prism, "Prism")
    peer_rps.update(WireMock=wm and wm.get("rps"), Prism=pr and pr.get("rps"))
    for rec in (wm, pr):
        show(rec)

    def vs_peers(rps):
        parts = ["%sx %s" % (fmt_num(rps / v, 1), k) for k, v in
                 (("WireMock", peer_rps["WireMock"]), ("Prism", peer_rps["Prism"])) if v]
        return ", ".join(parts)

    def box_target(rec):
        if not (rec and rec.get("rps") and peer_rps["WireMock"]):
            return "n/a (no WireMock figure)"
        ok = (rec["rps"] >= 10 * peer_rps["WireMock"] and rec["p99_ms"] is not None
              and rec["p99_ms"] < 5 and not rec["non2xx"])
        return ">= 10x WireMock, p99 < 5 ms: %s" % ("met" if ok else "MISSED")

    zg = {}
    for key, label, args, logging in (
            ("Box", "zipgate Box  RUST_LOG=warn", (), "warn"),
            ("Box log", "zipgate Box  default log (info, to a file)", (), "default"),
            ("ONLYOFFICE", "zipgate ONLYOFFICE  default settings", (), "warn"),
            ("Oracle", "zipgate Oracle  RUST_LOG=warn", (), "warn"),
            ("itslearning", "zipgate itslearning  RUST_LOG=warn", (), "warn")):
        route = ROUTES[key.split()[0]]
        rec = measure(label, lambda: ctx.zipgate(key, args, logging, route), "zipgate " + key)
        zg[key] = rec
        if not rec or rec.get("rps") is None:
            continue
        cols = {"ratio": vs_peers(rec["rps"])} if key.startswith("Box") else {}
        if key.startswith("Box"):
            cols["target"] = box_target(rec)
        show(rec, **cols)
        if key == "ONLYOFFICE" and rec["non2xx"] * 2 > (rec["requests"] or 0):
            # The vendor refuses a second bulk download while the caller's
            # previous one is unfinished ("Too many downloads", 403), and a
            # job only finishes when polled (pacing polls:2). Under load
            # nearly every create is refused; pacing=immediate finishes each
            # job at once, so every create is a fresh 200.
            setting = ("--set", "onlyoffice.pacing=immediate")
            label2 = "zipgate ONLYOFFICE  pacing=immediate"
            rec2 = measure(label2, lambda: ctx.zipgate("ONLYOFFICE immediate", setting, "warn",
                                                       ROUTES["ONLYOFFICE"]),
                           "zipgate ONLYOFFICE immediate")
            show(rec2)
            fixed = rec2 and rec2.get("rps") and not rec2["non2xx"]
            ctx.notes.append(
                "ONLYOFFICE with default settings answers 403 \"Too many downloads.\" to a "
                "create while the caller's previous download is unfinished (jobs finish on "
                "the 2nd fileops poll), so under load %.0f%% of its answers were non-2xx; "
                "with --set onlyoffice.pacing=immediate each job finishes at once and %s"
                % (100.0 * rec["non2xx"] / max(rec["requests"] or 1, 1),
                   "every create answered 200 under load (the second ONLYOFFICE row)" if fixed
                   else "the route still did not answer 200 to every create (see its row)"))
    a, b = zg.get("Box"), zg.get("Box log")
    if a and b and a.get("rps") and b.get("rps"):
        ctx.notes.append("Box create with the default access log (one info line a request, to a "
                         "file): %s req/s against %s with RUST_LOG=warn (%+.0f%%)" % (
                             fmt_int(b["rps"]), fmt_int(a["rps"]), 100 * (b["rps"] / a["rps"] - 1)))


# ---------------------------------------------------------------- 3./4. files on disk


def write_tree(ctx, sizes):
    """The files both zip servers read: random bytes for store, prose-like
    text for deflate, and one file for the concurrent downloads. Seeded, so
    every run zips the same bytes."""
    tree = ctx.path("tree")
    rng = random.Random(20241123)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choices(letters, k=rng.choice((1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 10))))
             for _ in range(5000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf-like word frequencies
    blocks = []
    for _ in range(32):  # 32 distinct ~1 MiB blocks, repeated farther apart than deflate's window
        words = rng.choices(vocab, weights=weights, k=190_000)
        for i in range(12, len(words), 13):
            words[i] += ".\n"
        blocks.append(" ".join(words).encode()[:MIB])

    def write(path, size, gen):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left > 0:
                chunk = gen()
                f.write(chunk[:left])
                left -= min(left, len(chunk))
            f.flush()
            # Written back now, so writeback does not overlap the measuring.
            os.fsync(f.fileno())

    files = {}
    for name, size, kind in (("store/a.bin", sizes["store"] // 2, "random"),
                             ("store/b.bin", sizes["store"] - sizes["store"] // 2, "random"),
                             ("text/a.txt", sizes["text"] // 2, "text"),
                             ("text/b.txt", sizes["text"] - sizes["text"] // 2, "text"),
                             ("concurrent/big.bin", sizes["concurrent"], "random")):
        path = os.path.join(tree, name)
        if kind == "random":
            write(path, size, lambda: rng.randbytes(8 * MIB))
        else:
            write(path, size, lambda: rng.choice(blocks))
        files[name] = path

    # The same files as a zipgate fixture: folders store, text, concurrent.
    def folder(fid, names):
        return {"id": fid, "name": fid, "children": [
            {"id": "%s-%s" % (fid, os.path.basename(n)), "name": os.path.basename(n),
             "content": {"path": files[n]}} for n in names]}
    fixture = {"users": [], "nodes": [folder("store", ["store/a.bin", "store/b.bin"]),
                                      folder("text", ["text/a.txt", "text/b.txt"]),
                                      folder("concurrent", ["concurrent/big.bin"])]}
    fixture_path = ctx.path("fixture.json")
    with open(fixture_path, "w") as f:
        json.dump(fixture, f)
    return tree, fixture_path


def fetch(url, pid, max_time, body=None, out="/dev/null"):
    """One curl download while sampling the server's RSS every 20 ms."""
    cmd = ["curl", "-s", "-o", out, "--max-time", "%.0f" % max_time,
           "-w", "%{http_code} %{size_download} %{time_total}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", body]
    cmd.append(url)
    reset_hwm(pid)
    cpu0 = proc_cpu(pid)
    rec = {"url": url, "error": None}
    samples = []
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while p.poll() is None:
            st = proc_status(pid)
            if st:
                samples.append(st["VmRSS"])
            time.sleep(0.02)
        text, err = p.communicate()
    finally:
        stop(p)
    st = proc_status(pid) or {}
    cpu1 = proc_cpu(pid)
    rec.update(hwm_kb=st.get("VmHWM"), rss_max_kb=max(samples) if samples else None,
               cpu_s=cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None)
    try:
        code, size, total = text.decode().split()
        rec.update(http_code=int(code), size=int(size), seconds=float(total))
    except ValueError:
        rec["error"] = "curl printed %r" % text
    if p.returncode != 0:
        rec["error"] = "curl exit %d %s" % (p.returncode, err.decode(errors="replace").strip())
    elif rec.get("http_code") != 200:
        rec["error"] = "HTTP %s" % rec.get("http_code")
    return rec


def check_archive(path, compression):
    """(ok, message, the file entries as (name, size)): every entry of the
    expected compression, and every CRC checked by unzip -tq (by Python's
    zipfile when unzip is missing)."""
    want = zipfile.ZIP_DEFLATED if compression == "deflate" else zipfile.ZIP_STORED
    try:
        with zipfile.ZipFile(path) as z:
            files = [i for i in z.infolist() if not i.is_dir()]
            entries = sorted((i.filename, i.file_size) for i in files)
            wrong = [i.filename for i in files if i.compress_type != want]
            if wrong:
                return False, "%s not %s" % (wrong[0], compression), entries
            if not shutil.which("unzip"):
                bad = z.testzip()
                return bad is None, "zipfile.testzip %s" % (bad or "OK"), entries
    except Exception as e:
        return False, "unreadable: %s" % e, []
    rc, out, err = run(["unzip", "-tq", path], timeout=300)
    if rc == 0:
        return True, "unzip -tq OK", entries
    return False, "unzip -tq exit %s: %s" % (rc, (out + err).strip()[-200:]), entries


def section_throughput(ctx, tree, fixture, sizes, verify):
    ctx.section("3. zip throughput, the same files on disk (%s MiB random for store, %s MiB text "
                "for deflate, 2 files each): MB/s of input, curl -o /dev/null; RSS = peak (VmHWM)"
                % (fmt_int(sizes["store"] / MIB), fmt_int(sizes["text"] / MIB)))
    max_time = 90 if ctx.quick else 180
    zs_missing = ctx.missing.get("zipstream-ng")

    def zipgate_server(level):
        # --no-warm-crc: the background CRC pass would otherwise run during
        # the deflate cases and make the store case's "cold" not cold.
        return ctx.zipgate("throughput %s" % level, ("--fixtures", fixture, "--no-warm-crc",
                                                     "--deflate-level", str(level)))

    def zipstream_server():
        cmd = [VENV_PY, os.path.join(PEERS, "zipstream_server.py"), "--root", tree]
        return Server("zipstream-ng", cmd, None, ctx.logfile("zipstream-ng"))

    def zg_body(folder, compression):
        return json.dumps({"items": [{"id": folder}], "name": folder, "compression": compression})

    def one(key, label, server, path, body, input_bytes, out="/dev/null", fetches=1):
        """Start server, fetch (fetches times: store's 2nd is the warm one)."""
        recs = []
        if ctx.left() < 20:
            ctx.row(label, result="skipped", detail="over the time budget")
            return recs
        try:
            server.start()
            for i in range(fetches):
                rec = fetch(server.base + path, server.p.pid,
                            min(max_time, max(5, ctx.left() - 5)), body, out)
                rec.update(kind="throughput", case=key if i == 0 else key + " warm",
                           input_bytes=input_bytes)
                if rec["error"] is None and rec["seconds"] > 0:
                    rec["mbps_in"] = input_bytes / MB / rec["seconds"]
                recs.append(ctx.record(rec))
        except Exception as e:
            ctx.row(label, result="FAILED", detail=str(e)[:200])
        finally:
            server.stop()
        return recs

    cases = [  # key, row label, zipgate's --deflate-level, folder, compression, zipstream-ng level
        ("store", "store", 6, "store", "store", None),
        ("deflate-1", "deflate level 1", 1, "text", "deflate", 1),
        ("deflate-6", "deflate level 6", 6, "text", "deflate", 6),
    ]
    for key, what, level, folder, compression, zlevel in cases:
        nbytes = sizes["store"] if folder == "store" else sizes["text"]
        zrecs = one("zipgate " + key, "zipgate %s" % what, zipgate_server(level), "/_zipgate/zip",
                    zg_body(folder, compression), nbytes, fetches=2 if key == "store" else 1)
        if zs_missing:
            srecs = []
        else:
            q = "compression=%s" % compression + ("&level=%d" % zlevel if zlevel else "")
            srecs = one("zipstream-ng " + key, "zipstream-ng %s" % what, zipstream_server(),
                        "/%s?%s" % (folder, q), None, nbytes)
        if z_ok(zrecs) and z_ok(srecs) and compression == "deflate":
            zsize, ssize = zrecs[0]["size"], srecs[0]["size"]
            if abs(zsize / ssize - 1) > 0.05:
                ctx.notes.append("deflate level %d: zipgate's archive is %+.0f%% the size of "
                                 "zipstream-ng's (%s vs %s MB): the same level is not the same "
                                 "work in zlib-rs and zlib" % (
                                     level, 100 * (zsize / ssize - 1), fmt_num(zsize / MB, 1),
                                     fmt_num(ssize / MB, 1)))

        s = srecs[0] if srecs else None
        for i, rec in enumerate(zrecs):
            label = "zipgate %s%s" % (what, {0: "", 1: " (warm CRC cache)"}[i])
            if key == "store" and i == 0:
                label += " (cold: CRC pass included)"
            ratio = None
            if s and rec.get("mbps_in") and s.get("mbps_in"):
                ratio = rec["mbps_in"] / s["mbps_in"]
            cols = {}
            if ratio:
                cols["ratio"] = "%sx zipstream-ng" % fmt_num(ratio, 1)
            if key == "deflate-1" and i == 0:
                cols["target"] = (">= 4x zipstream-ng: %s" % ("met" if ratio >= 4 else "MISSED")
                                  if ratio else "n/a")
            fetch_row(ctx, label, rec, **cols)
        if zs_missing:
            ctx.row("zipstream-ng %s" % what, result="not run", detail=zs_missing)
        for rec in srecs:
            fetch_row(ctx, "zipstream-ng %s" % what, rec)

    # Both servers' archives, saved and checked (every CRC, and the same entries).
    if verify and not zs_missing and ctx.left() > 30:
        checks = []
        for key, _, level, folder, compression, zlevel in cases[:2]:
            lists = {}
            for who in ("zipgate", "zipstream-ng"):
                out = ctx.path("%s-%s.zip" % (who, key))
                if who == "zipgate":
                    recs = one(who + " check", who + " check " + key, zipgate_server(level),
                               "/_zipgate/zip", zg_body(folder, compression), 0, out)
                else:
                    q = "compression=%s" % compression + ("&level=%d" % zlevel if zlevel else "")
                    recs = one(who + " check", who + " check " + key, zipstream_server(),
                               "/%s?%s" % (folder, q), None, 0, out)
                if not recs or recs[0]["error"]:
                    checks.append("%s %s: fetch failed %s" % (
                        who, key, recs[0]["error"] if recs else ""))
                    continue
                ok, msg, lists[who] = check_archive(out, compression)
                checks.append("%s %s %s" % (who, key, msg if ok else "INVALID: " + msg))
                ctx.record({"kind": "check", "who": who, "case": key, "ok": ok, "msg": msg})
                os.remove(out)
            if len(lists) == 2:
                same = lists["zipgate"] == lists["zipstream-ng"]
                checks.append("%s: same files (names, sizes)" % key if same else
                              "%s: files DIFFER: %s vs %s" % (key, lists["zipgate"],
                                                              lists["zipstream-ng"]))
        ctx.notes.append("archives saved and checked: " + "; ".join(checks))
    elif verify:
        ctx.notes.append("archive check skipped (%s)" % (zs_missing or "over the time budget"))


def z_ok(recs):
    return bool(recs) and recs[0].get("error") is None


def fetch_row(ctx, label, rec, **cols):
    if rec.get("error"):
        ctx.row(label, result="FAILED", detail=rec["error"][:200], **cols)
        return
    hwm = rec.get("hwm_kb")
    cpu = rec.get("cpu_s")
    # CPU time says what wall time cannot on a shared machine: how many cores
    # the server got, and how much input it zips per CPU second.
    usage = "server CPU -"
    if cpu:
        usage = "server CPU %.2f s (%.1f cores, %s MB in/CPU-s)" % (
            cpu, cpu / rec["seconds"], fmt_int(rec["input_bytes"] / MB / cpu))
    ctx.row(label, result="%s MB/s" % fmt_int(rec["mbps_in"]),
            rss=hwm / 1024 if hwm else None,
            detail="%.2f s, %s, archive %s MB" % (
                rec["seconds"], usage, fmt_num(rec["size"] / MB, 0)),
            **cols)


def section_concurrent(ctx, fixture, sizes):
    n = 200
    ctx.section("4. %d concurrent downloads of one %s MiB stored archive from zipgate "
                "(RUST_LOG=warn; RSS sampled every 20 ms, and VmHWM)"
                % (n, fmt_int(sizes["concurrent"] / MIB)))
    label = "zipgate  %d x curl, POST /_zipgate/zip" % n
    max_time = min(30 if ctx.quick else 60, ctx.left() - 5)
    if max_time < 10:
        ctx.row(label, result="skipped", detail="over the time budget")
        return
    server = ctx.zipgate("concurrent", ("--fixtures", fixture))
    body = json.dumps({"items": [{"id": "concurrent"}], "name": "concurrent",
                       "compression": "store"})
    curls = []
    try:
        server.start()
        url = server.base + "/_zipgate/zip"
        # One download first: the CRC is cached and the archive's size known.
        first = fetch(url, server.p.pid, max_time, body)
        if first["error"]:
            raise RuntimeError("first download: %s" % first["error"])
        size = first["size"]
        reset_hwm(server.p.pid)
        cmd = ["curl", "-s", "-o", "/dev/null", "--max-time", "%.0f" % max_time,
               "-w", "%{http_code} %{size_download}", "-H", "Content-Type: application/json",
               "--data-binary", body, url]
        samples = []
        t0 = time.perf_counter()
        for _ in range(n):
            curls.append(spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        while any(c.poll() is None for c in curls):
            st = proc_status(server.p.pid)
            if st:
                samples.append(st["VmRSS"])
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        st = proc_status(server.p.pid) or {}
        ok, sent, fails = 0, 0, {}
        for c in curls:
            parts = c.stdout.read().decode().split()
            c.stdout.close()
            if c.returncode == 0 and parts == ["200", str(size)]:
                ok += 1
            else:
                why = "curl exit %s, %s" % (c.returncode, " ".join(parts) or "no output")
                fails[why] = fails.get(why, 0) + 1
            if len(parts) == 2:
                sent += int(parts[1])
        peak = max(samples + [st.get("VmHWM") or 0]) / 1024
        rec = ctx.record({"kind": "concurrent", "clients": n, "archive_bytes": size, "ok": ok,
                          "bytes": sent, "seconds": wall, "rss_max_kb": max(samples, default=None),
                          "hwm_kb": st.get("VmHWM"), "failures": fails})
        detail = "%d/%d complete in %.1f s; RSS max %s, HWM %s MiB" % (
            ok, n, wall, fmt_num(max(samples, default=0) / 1024, 1),
            fmt_num((st.get("VmHWM") or 0) / 1024, 1))
        if fails:
            detail += "; FAILED: %s" % "; ".join("%d x %s" % (v, k) for k, v in fails.items())
        ctx.row(label, result="%s MB/s" % fmt_int(rec["bytes"] / MB / wall), rss=peak,
                detail=detail, target="RSS < 256 MiB: %s" % ("met" if peak < 256 and ok == n
                                                             else "MISSED"))
    except Exception as e:
        ctx.row(label, result="FAILED", detail=str(e)[:200])
    finally:
        for c in curls:
            stop(c)
        server.stop()


# ---------------------------------------------------------------- table


def fmt_num(v, digits):
    return "-" if v is None else "{:,.{}f}".format(v, digits)


def fmt_int(v):
    return "-" if v is None else "{:,.0f}".format(v)


COLUMNS = [  # key, header, width, alignment
    ("case", "case", 50, "<"), ("check", "check", 5, ">"), ("result", "result", 15, ">"),
    ("p50", "p50 ms", 7, ">"), ("p99", "p99 ms", 7, ">"), ("rss", "RSS MiB", 8, ">"),
    ("ratio", "vs peer", 21, "<"), ("target", "target", 32, "<"), ("detail", "detail", 0, "<"),
]


def deflate_engines(binary):
    """Which deflate the binary has: build.rs links ISA-L when it finds it."""
    try:
        libs = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if "libisal" in libs:
        return "ISA-L at levels 1-3, zlib-rs above"
    return "zlib-rs only, ISA-L not linked"


def render(ctx, a):
    out = []
    w = out.append
    v = ctx.versions
    w("zipgate vs peers  %s   mode %s" % (time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                          "quick" if ctx.quick else "full"))
    w("commit %s   nproc %s   kernel %s   cpu %s" % (a.commit, os.cpu_count(), os.uname().release,
                                                    cpu_model()))
    w("peers  WireMock %s (npm wiremock's standalone jar, java %s)   Prism %s "
      "(@stoplight/prism-cli, node %s)   zipstream-ng %s (python %s)   wrk %s" % (
          v.get("wiremock", "-"), v.get("java", "-"), v.get("prism", "-"), v.get("node", "-"),
          v.get("zipstream-ng", "-"), v.get("python", "-"), v.get("wrk", "-")))
    w("load   %s" % machine_load(a.stat_start))
    others = others_share(a.stat_start, a.times_start)
    if others is not None:
        w("       processes other than this run's used %.0f%% of the machine meanwhile%s" % (
            others, " (figures are noisy)" if others > 10 else ""))
    w("MB = 1e6 bytes, MiB = 2^20; everything on loopback; zipgate = %s (deflate: %s)" % (
        os.path.relpath(ctx.binary, ROOT), deflate_engines(ctx.binary)))
    w("")

    def line(cols):
        cells = []
        for key, _, width, align in COLUMNS:
            val = cols.get(key)
            if isinstance(val, float):  # latencies and RSS: 3 significant digits or so
                val = fmt_num(val, 2 if val < 10 else 1 if val < 100 else 0)
            val = "" if val is None else str(val)
            cells.append(format(val, "%s%d" % (align, width)) if width else val)
        return " ".join(cells).rstrip()

    header = line({k: h for k, h, _, _ in COLUMNS})
    w(header)
    w("-" * len(header))
    for kind, item in ctx.rows:
        if kind == "section":
            w(item)
        else:
            w(line(item))
    w("")
    for note in ctx.notes:
        w("note: %s" % note)
    return "\n".join(out) + "\n"


def others_share(stat_start, times_start):
    """Share of all CPUs busy with processes this run did not start: the
    machine's busy time (/proc/stat) minus ours and our reaped children's."""
    try:
        with open("/proc/stat") as f:
            now = f.readline()
    except OSError:
        return None
    a = [int(x) for x in stat_start.split()[1:9]]
    b = [int(x) for x in now.split()[1:9]]
    d = [y - x for x, y in zip(a, b)]
    total = sum(d)
    if total <= 0:
        return None
    busy = total - d[3] - d[4]  # minus idle, iowait
    t0, t1 = times_start, os.times()
    ours = sum(t1[i] - t0[i] for i in range(4)) * os.sysconf("SC_CLK_TCK")
    return max(0.0, 100.0 * (busy - ours) / total)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description="zipgate next to WireMock, Prism and zipstream-ng")
    ap.add_argument("--binary", help="zipgate binary (default: target/release/zipgate)")
    ap.add_argument("--no-build", action="store_true",
                    default=os.environ.get("BENCH_NO_BUILD") == "1",
                    help="do not run cargo build --release first")
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the measuring")
    ap.add_argument("--save", default=os.path.join(HERE, "out", "peers.txt"))
    a = ap.parse_args()
    if a.budget is None:
        a.budget = float(os.environ.get("BENCH_PEERS_BUDGET") or (120 if a.quick else 480))
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    a.binary = os.path.abspath(a.binary or os.path.join(target, "release", "zipgate"))
    with open("/proc/stat") as f:
        a.stat_start = f.readline()
    a.times_start = os.times()
    t_start = time.time()

    ctx = Context(a)
    atexit.register(lambda: shutil.rmtree(ctx.tmp, ignore_errors=True))
    atexit.register(stop_all)  # runs first: stop everything before removing its files

    if not a.no_build:
        log("cargo build --release")
        rc, out, err = run(["cargo", "build", "--release"], timeout=1800, cwd=ROOT)
        if rc != 0:
            sys.stderr.write(err[-3000:])
            log("build failed")
            return 1
    if not os.access(a.binary, os.X_OK):
        log("no zipgate binary at %s" % a.binary)
        return 1
    rc, out, _ = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=30)
    a.commit = out.strip() or "unknown"
    if run(["git", "-C", ROOT, "diff", "--quiet", "HEAD"], timeout=60)[0] != 0:
        a.commit += " (+uncommitted changes)"

    installs(ctx)
    ctx.start_budget()
    t_measure = time.time()

    section_startup(ctx)
    peer_rps = {}
    section_wrk(ctx, peer_rps)

    sizes = ({"store": 512 * MIB, "text": 128 * MIB, "concurrent": 64 * MIB} if a.quick else
             {"store": 2048 * MIB, "text": 1024 * MIB, "concurrent": 128 * MIB})
    free = shutil.disk_usage(ctx.tmp).free
    need = sum(sizes.values()) + sizes["store"] + (1 << 30)  # + saved archives + slack
    if free < need:
        ctx.section("3./4. zip throughput and concurrent downloads")
        ctx.row("(all)", result="not run",
                detail="only %d MiB free under %s" % (free // MIB, ctx.tmp))
    else:
        log("writing %s MiB of files under %s" % (fmt_int(sum(sizes.values()) / MIB), ctx.tmp))
        tree, fixture = write_tree(ctx, sizes)
        verify = a.quick or os.environ.get("BENCH_PEERS_VERIFY") == "1"
        section_throughput(ctx, tree, fixture, sizes, verify)
        section_concurrent(ctx, fixture, sizes)

    ctx.notes.append("start-up polls with a fresh connection, retrying a refused one after "
                     "1 ms (so the poller does not take a core from the JVM/Node it times); "
                     "zipgate's port comes from its stdout line")
    ctx.notes.append("WireMock runs with its defaults (request journal on, no --verbose); the "
                     "stub matches method, path, a bearer, the content type and a JSON path "
                     "(bench/peers/wiremock/mappings/); Prism runs with its defaults "
                     "(info log, to a file)")
    ctx.notes.append("zip servers run with --no-warm-crc (zipgate) and one fresh process per "
                     "case; zipstream-ng is bench/peers/zipstream_server.py (http.server + "
                     "ZipStream.from_path, as zipstream-ng's own zipserver)")
    ctx.notes.append("measuring took %.0f s of a %.0f s budget; installs and build %.0f s" % (
        time.time() - t_measure, a.budget, t_measure - t_start))

    text = render(ctx, a)
    sys.stdout.write(text)
    sys.stdout.flush()
    if a.save:
        os.makedirs(os.path.dirname(a.save), exist_ok=True)
        with open(a.save, "w") as f:
            f.write(text)
        with open(os.path.splitext(a.save)[0] + ".json", "w") as f:
            json.dump({"versions": ctx.versions, "missing": ctx.missing,
                       "records": ctx.records}, f, indent=1)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # bench/run stops us with SIGTERM: unwind so atexit stops our children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
