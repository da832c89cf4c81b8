#!/usr/bin/env python3
"""bench/stores.py — zipgate's two real stores, each next to its natural peer, in one run.

Prints ONE table (stdout; progress on stderr; a copy in bench/out/stores.txt and
every raw number in bench/out/stores.json):

  1. directory store (`serve --root`): a stored zip of a tree of real files,
     page cache cold and warm, against nginx sending the same archive from
     disk (sendfile); the first download, which computes the CRCs, as context;
  2. S3 store (`serve --store s3://…`, against moto_server): a stored zip of
     large objects against the same objects fetched straight from moto with
     8 parallel GETs; many small objects both ways as context;
  3. the server's peak RSS (VmHWM) while streaming 4 GiB from each store;
  4. a 10,000-object prefix: start-up with and without
     --store-mtime-metadata, and the zip's time to first byte against what
     a client-side zipper needs first (a full listing plus the first byte
     of the first object).

Run it with the S3 venv's Python (boto3 and moto live there; bench/run makes
the venv from tests/requirements-s3.txt when it is missing):

    .venv-s3/bin/python bench/stores.py [--binary target/release/zipgate]
    BENCH_QUICK=1 .venv-s3/bin/python bench/stores.py      smoke run, small sizes

    BENCH_STORES_BUDGET=SECS  time for the whole run (default 600); steps past
                              it are skipped and say so
    BENCH_MAX_TIME=SECS       curl --max-time cap per fetch (default 150)
    BENCH_STORES_VERIFY=1     check the saved 2 GiB archive's CRCs in full mode too
                              (quick mode always does; the S3 one is always checked)

It never builds: the binary must already have --root and --store. Everything
runs on loopback under one temporary directory, removed at the end, and every
process it starts is stopped on exit (normal, exception, SIGTERM, SIGINT).
It drops the page cache (as root) for the cold runs.
"""

import argparse
import atexit
import concurrent.futures
import ctypes
import json
import mmap
import os
import random
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import health_once, machine_load, mark_start, others_share, table_lines, proc_cpu, proc_status, reset_hwm  # noqa: E402
from procs import freeport, run, run_main, spawn, stop, stop_all, tail, wait_port  # noqa: E402

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
MB = 1e6
BUCKET = "zipgate-bench"
SEED = 20261128
RUNS = 3  # each compared measurement is the median of this many
URL_RE = re.compile(rb"http://127\.0\.0\.1:(\d+)\s")


def log(msg):
    print("stores: %s" % msg, file=sys.stderr, flush=True)


def sizes_for(quick):
    # moto spends milliseconds of Python on every request, so the object
    # counts are what fits the budget on two cores: s3_small is context, and
    # startup_runs is (plain, with --store-mtime-metadata), the latter a HEAD
    # per object, over a minute for 10,000, so once in full. s3_rss: (bytes
    # streamed, object size), the big objects plus server-side copies.
    if quick:
        return {
            "tree": 256 * MIB, "tree_big": 8, "tree_small": 96, "dir_rss": 512 * MIB,
            "s3_big": (8, 16 * MIB), "s3_small": (300, 4 * KIB, 16 * KIB),
            "s3_rss": (512 * MIB, 64 * MIB), "many": 1000, "startup_runs": (3, 2),
        }
    return {
        "tree": 2 * GIB, "tree_big": 16, "tree_small": 320, "dir_rss": 4 * GIB,
        "s3_big": (16, 64 * MIB), "s3_small": (1000, 4 * KIB, 16 * KIB),
        "s3_rss": (4 * GIB, 64 * MIB), "many": 10_000, "startup_runs": (3, 1),
    }


# ---------------------------------------------------------------- processes
# bench/procs.py: spawn() and stop() every process, stop_all() at exit.

_libc = ctypes.CDLL(None, use_errno=True)  # mincore, below


def tree_cpu(pid):
    """CPU seconds of a process and its direct children (nginx's workers)."""
    total = proc_cpu(pid)
    if total is None:
        return None
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    for kid in kids:
        total += proc_cpu(kid) or 0.0
    return total


# ---------------------------------------------------------------- page cache


def _mincore_resident(path):
    """(resident pages, pages) of one file, from mincore(2) on a mapping of it."""
    size = os.path.getsize(path)
    if size == 0:
        return 0, 0
    page = mmap.PAGESIZE
    npages = (size + page - 1) // page
    _libc.mmap.restype = ctypes.c_void_p
    _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                           ctypes.c_int, ctypes.c_long]
    _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vec = (ctypes.c_ubyte * npages)()
            if _libc.mincore(ctypes.c_void_p(addr), size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            flags = bytes(vec)
        finally:
            _libc.munmap(ctypes.c_void_p(addr), size)
    finally:
        os.close(fd)
    return npages - flags.count(0), npages


def resident_share(paths):
    """Share of these files' pages in the page cache (None if mincore fails)."""
    try:
        got = total = 0
        for path in paths:
            r, n = _mincore_resident(path)
            got, total = got + r, total + n
        return got / total if total else 0.0
    except OSError:
        return None


class PageCache:
    """Drops the page cache before a cold fetch: globally with drop_caches
    when this kernel lets us (root, not a sandbox that ignores the write),
    else per file with POSIX_FADV_DONTNEED. Every drop is checked with
    mincore, so a "cold" run that was not cold says so."""

    def __init__(self):
        self.method = None  # decided at the first drop
        self.why_not_global = None

    def drop(self, paths):
        os.sync()  # dirty pages cannot be dropped
        if self.method in (None, "drop_caches"):
            try:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("1")
                left = resident_share(paths)
                if left is not None and left > 0.02:
                    # The write was accepted but did nothing (seen in sandboxes).
                    self.why_not_global = "drop_caches left %.0f%% resident" % (100 * left)
                    self.method = "fadvise"
                else:
                    self.method = "drop_caches"
            except OSError as e:
                self.why_not_global = "drop_caches: %s" % e.strerror
                self.method = "fadvise"
        if self.method == "fadvise":
            for path in paths:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        return resident_share(paths)


# ---------------------------------------------------------------- content


class Pool:
    """Deterministic incompressible bytes, fast. Python's seeded generator
    makes about 100 MB/s here, which would spend half a minute of the budget
    on the 3 GiB the full run writes; nothing between store and client
    compresses or deduplicates, so a file is windows of one 32 MiB random
    pool at offsets drawn from the file's own seed."""

    SIZE = 32 * MIB
    CHUNK = MIB

    def __init__(self):
        self.pool = memoryview(random.Random(SEED).randbytes(self.SIZE))

    def chunks(self, seed, size):
        rng = random.Random(seed)
        left = size
        while left > 0:
            n = min(self.CHUNK, left)
            start = rng.randrange(self.SIZE - n)
            yield self.pool[start:start + n]
            left -= n

    def bytes(self, seed, size):
        return b"".join(self.chunks(seed, size))


# ---------------------------------------------------------------- context


class Bench:
    def __init__(self, a):
        self.a = a
        self.quick = a.quick
        self.sizes = sizes_for(a.quick)
        self.tmp = tempfile.mkdtemp(prefix="zipgate-stores.")
        self.deadline = time.monotonic() + a.budget
        self.rows = []      # ("section", title) | ("row", dict)
        self.records = []   # every raw measurement
        self.notes = []
        self.logs = []      # zipgate logs, scanned for WARN/ERROR at the end
        self.cache = PageCache()
        self.zg_extra = []
        self.pool = None

    def left(self):
        return self.deadline - time.monotonic()

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def section(self, title):
        log(title)
        self.rows.append(("section", title))

    def row(self, name, value=None, peer=None, ratio=None, goal=None, result="context",
            detail=None):
        if result == "FAIL" and detail and "ERROR: skipped:" in detail and \
                detail.count("ERROR") == 1:
            result = "skipped"  # the budget ran out: said so, not a failure
        self.rows.append(("row", {"name": name, "value": value, "peer": peer, "ratio": ratio,
                                  "goal": goal, "result": result, "detail": detail}))

    def skipped(self, name, why):
        self.row(name, result="skipped", detail=why)

    def record(self, **rec):
        rec["t"] = round(time.time(), 3)
        self.records.append(rec)
        return rec

    def free_bytes(self):
        return shutil.disk_usage(self.tmp).free


# ---------------------------------------------------------------- zipgate


class Zipgate:
    """One `zipgate serve` on 127.0.0.1:0. The port comes from the URL line
    on stdout, read the moment it is written (select), so start-up times are
    not rounded to a polling interval; the log (stderr) goes to a file."""

    def __init__(self, ctx, name, args, env=None):
        self.ctx, self.name = ctx, name
        self.log_path = ctx.path("zipgate-%s.log" % name)
        ctx.logs.append(self.log_path)
        full_env = dict(env or os.environ, NO_COLOR="1", RUST_LOG="info")
        self.t0 = time.perf_counter()
        with open(self.log_path, "ab") as logf:
            self.p = spawn([ctx.binary, "serve", "--listen", "127.0.0.1:0", *ctx.zg_extra, *args],
                           stdout=subprocess.PIPE, stderr=logf, env=full_env)
        self.port = None

    def wait_up(self, timeout):
        """Waits for the first 200 on /_zipgate/health; ms since spawn."""
        deadline = self.t0 + timeout
        buf = b""
        while self.port is None:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise RuntimeError("no URL line within %.0f s" % timeout)
            ready, _, _ = select.select([self.p.stdout], [], [], left)
            if ready:
                chunk = os.read(self.p.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError("exited (code %s): %s" % (self.p.wait(), tail(self.log_path)))
                buf += chunk
                m = URL_RE.search(buf)
                if m:
                    self.port = int(m.group(1))
        while health_once(self.port) != 200:
            if self.p.poll() is not None:
                raise RuntimeError("exited (code %s): %s" % (self.p.returncode, tail(self.log_path)))
            if time.perf_counter() > deadline:
                raise RuntimeError("health never answered 200")
            time.sleep(0.001)
        return (time.perf_counter() - self.t0) * 1000

    @property
    def pid(self):
        return self.p.pid

    def url(self, path="/_zipgate/zip"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        stop(self.p)


def zip_body(*ids, name="bench"):
    # No Authorization header: with no --policy rules everyone reads
    # everything (README, "Migrating a client"), anonymous callers included.
    return json.dumps({"items": [{"id": i} for i in ids], "name": name, "compression": "store"})


# ---------------------------------------------------------------- fetching


def curl(ctx, url, body=None, out="/dev/null", rss_pid=None, cpu_pids=None, label="",
         max_time=None, ttfb_only=False):
    """One curl download; the server's VmHWM is reset first and its VmRSS
    sampled every 20 ms; CPU seconds of the named processes over the fetch.
    ttfb_only: curl gives up as soon as the headers announce the length
    (--max-filesize 1, exit 63), so only time_starttransfer means anything."""
    max_time_cap = max_time or ctx.a.max_time
    max_time = min(max_time_cap, ctx.left())
    rec = {"kind": "curl", "label": label, "url": url, "error": None, "ttfb_only": ttfb_only}
    if max_time < 5:
        rec["error"] = "skipped: over the time budget"
        return ctx.record(**rec)
    cmd = ["curl", "-s", "-o", out, "--max-time", "%.0f" % max_time,
           "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", body]
    if ttfb_only:
        cmd += ["--max-filesize", "1"]
    cmd.append(url)
    cpu_pids = cpu_pids or {}
    if rss_pid:
        rec["hwm_reset"] = reset_hwm(rss_pid)
        rec["rss_before_kb"] = (proc_status(rss_pid) or {}).get("VmRSS")
    cpu0 = {k: tree_cpu(pid) for k, pid in cpu_pids.items()}
    samples = []
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while p.poll() is None:
            if rss_pid:
                st = proc_status(rss_pid)
                if st:
                    samples.append(st["VmRSS"])
            time.sleep(0.02)
        text, err = p.communicate()
    finally:
        stop(p)
    cpu = {}
    for k, pid in cpu_pids.items():
        now = tree_cpu(pid)
        cpu[k] = round(now - cpu0[k], 3) if now is not None and cpu0[k] is not None else None
    rec["cpu_s"] = cpu
    if rss_pid:
        st = proc_status(rss_pid) or {}
        rec.update(hwm_kb=st.get("VmHWM"), rss_after_kb=st.get("VmRSS"),
                   rss_max_kb=max(samples) if samples else None)
        if not st:
            rec["error"] = "server process is gone"
    try:
        code, size, ttfb, total = text.decode().split()
        rec.update(http_code=int(code), size=int(size), ttfb=float(ttfb), seconds=float(total))
    except ValueError:
        rec["error"] = "curl printed %r" % text
    if p.returncode != 0 and not (ttfb_only and p.returncode == 63):
        rec["error"] = "curl exit %s%s %s" % (
            p.returncode, " (--max-time %.0f s hit)" % max_time if p.returncode == 28 else "",
            err.decode(errors="replace").strip()[:200])
        if p.returncode == 28 and max_time < max_time_cap:
            rec["error"] = "skipped: the time budget ran out after %.0f s of this fetch" % (
                max_time)
    elif rec.get("http_code") != 200:
        rec["error"] = "HTTP %s" % rec.get("http_code")
    return ctx.record(**rec)


def median_of(recs, key="seconds"):
    vals = [r[key] for r in recs if not r.get("error") and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def rate(nbytes, secs):
    return nbytes / MB / secs if nbytes and secs else None


def fmt_rate(v):
    return "-" if v is None else "%.1f MB/s" % v if v < 10 else "%.0f MB/s" % v


def fmt_ratio(v):
    return "-" if v is None else "%.2f" % v


def first_error(recs):
    for r in recs:
        if r.get("error"):
            return r["error"]
    return None


def verdict(ratio, goal, ok=True):
    if ratio is None or not ok:
        return "FAIL"
    return "PASS" if ratio >= goal else "FAIL"


def check_zip(path, expect_bytes, expect_files, crcs):
    """The archive parses, holds the expected files and bytes, every entry
    stored; with crcs, every entry's CRC is checked too (zipfile.testzip)."""
    try:
        with zipfile.ZipFile(path) as z:
            files = [i for i in z.infolist() if not i.is_dir()]
            total = sum(i.file_size for i in files)
            stored = all(i.compress_type == zipfile.ZIP_STORED for i in files)
            msg = "%d files, %d bytes, all stored: %s" % (len(files), total, stored)
            ok = stored and total == expect_bytes and len(files) == expect_files
            if ok and crcs:
                bad = z.testzip()
                msg += ", CRCs %s" % ("OK" if bad is None else "WRONG at %s" % bad)
                ok = bad is None
    except Exception as e:  # anything unreadable is the finding
        return False, "unreadable: %s" % e
    return ok, msg


# ---------------------------------------------------------------- nginx


def nginx_binary(ctx):
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                      else None)
    if found:
        return found
    log("installing nginx-light")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    rc, out, err = run(["apt-get", "update", "-qq"], timeout=300, env=env)
    if rc == 0:
        rc, out, err = run(["apt-get", "install", "-y", "-qq", "nginx-light"], timeout=600, env=env)
    if rc != 0:
        ctx.notes.append("cannot install nginx-light: %s" % (out + err).strip()[-200:])
        return None
    return shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(ctx, www=None, proxy_to=None):
    """nginx serving www/ as bench/run configures it (one worker, sendfile
    on), or proxying every request to 127.0.0.1:proxy_to."""
    nginx = nginx_binary(ctx)
    if not nginx:
        return None, None
    ndir = ctx.path("nginx")
    os.makedirs(os.path.join(ndir, "tmp"), exist_ok=True)
    port = freeport()
    _, _, built = run([nginx, "-V"], timeout=10)  # nginx -V prints to stderr
    temp_paths = ""
    for m in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        # Temp-path directives only for modules this build has (nginx-light lacks some).
        if m == "client_body" or "without-http_%s_module" % m not in built:
            temp_paths += "  %s_temp_path %s/tmp/%s;\n" % (m, ndir, m)
    # As root the workers would drop to nobody, who cannot read our 0700 temp dir.
    user_line = "user root;" if os.geteuid() == 0 else ""
    conf = """%s
daemon off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/zip;
%s
  server {
    listen 127.0.0.1:%d;
%s
  }
}
""" % (user_line, ndir, ndir, temp_paths, port,
       "    root %s;" % www if www else
       # Host stays the upstream's, which presigned URLs are signed for.
       # Buffered in memory, never in temp files: nginx at its best as a proxy.
       "    location / { proxy_pass http://127.0.0.1:%d; proxy_http_version 1.1;\n"
       "      proxy_set_header Connection \"\"; proxy_buffers 8 1m; proxy_buffer_size 1m;\n"
       "      proxy_busy_buffers_size 2m; proxy_max_temp_file_size 0; }" % proxy_to)
    with open(os.path.join(ndir, "nginx.conf"), "w") as f:
        f.write(conf)
    p = spawn([nginx, "-p", ndir + "/", "-c", os.path.join(ndir, "nginx.conf"),
               "-e", os.path.join(ndir, "error.log")],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, p, 10, "nginx")
    except RuntimeError as e:
        ctx.notes.append("nginx did not start: %s; %s" % (e, tail(os.path.join(ndir, "error.log"))))
        stop(p)
        return None, None
    ctx.nginx_version = built.strip().splitlines()[0] if built else "?"
    return p, port


def proxy_urls(urls, port):
    """The same presigned URLs, sent to a proxy on `port`."""
    out = []
    for url in urls:
        u = urllib.parse.urlsplit(url)
        out.append(urllib.parse.urlunsplit(u._replace(netloc="127.0.0.1:%d" % port)))
    return out


# ---------------------------------------------------------------- 1. directory store


def write_tree(ctx):
    """tree/top: big files plus small ones in subfolders; tree/again: hard
    links to every file of top, so a 2x archive for the RSS case costs no
    disk (zipgate sees other paths, so it computes their CRCs again)."""
    s = ctx.sizes
    rng = random.Random(SEED + 1)
    small = [rng.randint(64 * KIB, 512 * KIB) for _ in range(s["tree_small"])]
    big_each = (s["tree"] - sum(small)) // s["tree_big"]
    files = []
    for i in range(s["tree_big"]):
        files.append(("big/big-%02d.bin" % i, big_each))
    per_dir = 20
    for i, size in enumerate(small):
        files.append(("small/d%02d/f-%03d.bin" % (i // per_dir, i % per_dir), size))
    top = ctx.path("tree", "top")
    again = ctx.path("tree", "again")
    paths = []
    for n, (rel, size) in enumerate(files):
        path = os.path.join(top, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            for chunk in ctx.pool.chunks(SEED + 100 + n, size):
                f.write(chunk)
        link = os.path.join(again, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.link(path, link)
        paths.append(path)
    os.sync()  # written back now, so writeback does not overlap the measuring
    total = sum(size for _, size in files)
    return paths, total, len(files), big_each, small


def section_dir(ctx):
    s = ctx.sizes
    title = "directory store (--root)"
    need = 2 * s["tree"] + GIB  # the tree and the saved archive, plus slack
    if ctx.free_bytes() < need:
        ctx.section(title)
        ctx.skipped("(all)", "only %d MiB free under %s, %d needed" % (
            ctx.free_bytes() // MIB, ctx.tmp, need // MIB))
        return
    log("writing the tree (%d MiB)" % (s["tree"] // MIB))
    t = time.monotonic()
    paths, total, nfiles, big_each, small = write_tree(ctx)
    ctx.record(kind="tree", bytes=total, files=nfiles, big_each=big_each,
               small_min=min(small), small_max=max(small), seconds=time.monotonic() - t)
    ctx.section("1. directory store (--root): %d MiB in %d files of %.0f MiB and %d of "
                "64-512 KiB in 16 folders; stored zip of the top folder" % (
                    total // MIB, s["tree_big"], big_each / MIB, s["tree_small"]))

    zg = Zipgate(ctx, "dir", ["--root", ctx.path("tree"), "--crc-cache", ctx.path("crc-dir.jsonl")])
    nginx = None
    try:
        zg.wait_up(60)
        body = zip_body("top", name="top")
        cpu = {"zipgate": zg.pid}

        # First download: computes every CRC (a read pass before each entry's
        # bytes) and caches them; context only.
        ctx.cache.drop(paths)
        first = curl(ctx, zg.url(), body, rss_pid=zg.pid, cpu_pids=cpu, label="dir first")
        if first.get("error"):
            ctx.row("first download (CRC pass), cold", result="FAIL",
                    detail="ERROR: %s" % first["error"])
            return
        archive_bytes = first["size"]
        ctx.row("first download (CRC pass), cold cache", fmt_rate(rate(total, first["seconds"])),
                detail="%.2f s; zipgate CPU %.1f s" % (first["seconds"],
                                                        first["cpu_s"]["zipgate"] or 0))

        # The same archive on disk for nginx.
        www = ctx.path("www")
        os.makedirs(www)
        saved = os.path.join(www, "top.zip")
        rec = curl(ctx, zg.url(), body, out=saved, label="dir save")
        if rec.get("error") or rec.get("size") != archive_bytes:
            ctx.row("zipgate vs nginx", result="FAIL",
                    detail="saving the archive: %s" % (rec.get("error") or "size differs"))
            return
        # Reading 2 GiB back for CRCs costs the full run ~15 s of its budget;
        # quick runs always check them (the same code path).
        ok, msg = check_zip(saved, total, nfiles, ctx.quick or ctx.a.verify)
        ctx.record(kind="check", what="dir archive", ok=ok, msg=msg)
        ctx.row("saved archive check", result="PASS" if ok else "FAIL", detail=msg)
        if not ok:
            return

        nginx, nport = start_nginx(ctx, www)
        if not nginx:
            ctx.row("zipgate vs nginx", result="FAIL", detail="nginx did not start (see notes)")
            return
        nurl = "http://127.0.0.1:%d/top.zip" % nport
        ncpu = {"nginx": nginx.pid}
        runs = {"zg cold": [], "zg warm": [], "nginx cold": [], "nginx warm": []}
        # Rounds interleave the four cases, so drift (the other core's load,
        # writeback) spreads over all of them instead of biasing one.
        for rnd in range(RUNS):
            log("dir round %d/%d" % (rnd + 1, RUNS))
            left = ctx.cache.drop(paths)
            r = curl(ctx, zg.url(), body, rss_pid=zg.pid, cpu_pids=cpu, label="dir zg cold")
            r["resident_before"] = left
            runs["zg cold"].append(r)
            r = curl(ctx, zg.url(), body, rss_pid=zg.pid, cpu_pids=cpu, label="dir zg warm")
            r["resident_before"] = resident_share(paths)
            runs["zg warm"].append(r)
            left = ctx.cache.drop([saved])
            r = curl(ctx, nurl, cpu_pids=ncpu, label="dir nginx cold")
            r["resident_before"] = left
            runs["nginx cold"].append(r)
            r = curl(ctx, nurl, cpu_pids=ncpu, label="dir nginx warm")
            r["resident_before"] = resident_share([saved])
            runs["nginx warm"].append(r)
        for recs in runs.values():
            for r in recs:
                if not r.get("error") and r.get("size") != archive_bytes:
                    r["error"] = "got %s bytes, expected %d" % (r.get("size"), archive_bytes)
        for temp, goal in (("cold", 0.8), ("warm", 0.95)):
            zr, nr = runs["zg " + temp], runs["nginx " + temp]
            zt, nt = median_of(zr), median_of(nr)
            err = first_error(zr + nr)
            ratio = nt / zt if zt and nt else None
            res = [r.get("resident_before") for r in zr + nr if r.get("resident_before") is not None]
            detail = "median of %d: %s s vs %s s; page cache resident before: %s" % (
                RUNS, fmt_s(zt), fmt_s(nt),
                "-" if not res else "%.0f-%.0f%%" % (100 * min(res), 100 * max(res)))
            detail += "; CPU zipgate %s s, nginx %s s" % (
                fmt_s(cpu_median(zr, "zipgate")), fmt_s(cpu_median(nr, "nginx")))
            if err:
                detail += "; ERROR: %s" % err
            ctx.row("stored zip, %s page cache, vs nginx" % temp,
                    fmt_rate(rate(archive_bytes, zt)), fmt_rate(rate(archive_bytes, nt)), ratio,
                    ">= %.2f" % goal, verdict(ratio, goal, not err), detail)
        stop(nginx)
        nginx = None
        os.remove(saved)  # disk for the RSS case and the S3 sections

        # 3a. RSS: top and its hard-linked twin in one archive.
        rss_bytes = 2 * total
        log("dir RSS: %d MiB" % (rss_bytes // MIB))
        r = curl(ctx, zg.url(), zip_body("top", "again", name="twice"), rss_pid=zg.pid,
                 cpu_pids=cpu, label="dir rss")
        if not r.get("error") and (r.get("size") or 0) < rss_bytes:
            r["error"] = "archive of %s bytes is shorter than the content" % r.get("size")
        ctx.dir_rss = (rss_bytes, r)
    finally:
        if nginx:
            stop(nginx)
        zg.stop()
        shutil.rmtree(ctx.path("tree"), ignore_errors=True)
        shutil.rmtree(ctx.path("www"), ignore_errors=True)


def fmt_s(v):
    return "-" if v is None else "%.2f" % v


def cpu_median(recs, name):
    vals = [r["cpu_s"].get(name) for r in recs
            if not r.get("error") and r.get("cpu_s") and r["cpu_s"].get(name) is not None]
    return statistics.median(vals) if vals else None


def rss_row(ctx, label, nbytes, r):
    if r.get("error"):
        ctx.row(label, result="FAIL", goal="< 64 MiB", detail="ERROR: %s" % r["error"])
        return
    hwm = r.get("hwm_kb")
    mib = hwm / 1024 if hwm is not None else None
    ctx.row(label, "-" if mib is None else "%.1f MiB" % mib, goal="< 64 MiB",
            result="FAIL" if mib is None or mib >= 64 else "PASS",
            detail="%d MiB in %.1f s (%s); RSS before %.1f MiB, max sampled %.1f MiB; VmHWM reset: %s" % (
                nbytes // MIB, r["seconds"], fmt_rate(rate(nbytes, r["seconds"])),
                (r.get("rss_before_kb") or 0) / 1024, (r.get("rss_max_kb") or 0) / 1024,
                r.get("hwm_reset")))


# ---------------------------------------------------------------- 2.-4. S3 store


class S3:
    """moto_server on a free loopback port, and boto3 to seed and list it."""

    def __init__(self, ctx):
        import boto3  # noqa: F401  (fails here, with a clear message, outside the venv)
        self.ctx = ctx
        bindir = os.path.dirname(sys.executable)
        self.moto = os.path.join(bindir, "moto_server")
        if not os.access(self.moto, os.X_OK):
            self.moto = os.path.join(ROOT, ".venv-s3", "bin", "moto_server")
        self.port = freeport()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        # moto keeps objects over about 5 MiB in temporary files: keep those in
        # our directory (removed at the end, counted by our disk check).
        mtmp = ctx.path("moto")
        os.makedirs(mtmp)
        self.log_path = ctx.path("moto.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["TMPDIR"] = mtmp
        with open(self.log_path, "ab") as logf:
            self.p = spawn([self.moto, "-H", "127.0.0.1", "-p", str(self.port)],
                           stdout=logf, stderr=logf, env=env)
        wait_port(self.port, self.p, 30, "moto_server")
        self.local = threading.local()
        self.client().create_bucket(Bucket=BUCKET)

    def client(self):
        """A boto3 client per thread (a client is thread-safe, but one per
        thread keeps its connection pool out of the other threads' way)."""
        c = getattr(self.local, "c", None)
        if c is None:
            import boto3
            from botocore.config import Config
            c = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                             aws_access_key_id="test", aws_secret_access_key="test",
                             config=Config(max_pool_connections=16,
                                           retries={"max_attempts": 3, "mode": "standard"}))
            self.local.c = c
        return c

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
        return env

    def put_many(self, items, threads, what):
        """items: (key, seed, size, metadata); stops at the budget (returns False)."""
        ctx = self.ctx

        def put(item):
            key, seed, size, meta = item
            if ctx.left() < 30:
                return False
            self.client().put_object(Bucket=BUCKET, Key=key, Body=ctx.pool.bytes(seed, size),
                                     ChecksumAlgorithm="CRC32", Metadata=meta or {})
            return True

        t, c0, m0 = time.monotonic(), os.times(), proc_cpu(self.p.pid)
        with concurrent.futures.ThreadPoolExecutor(threads) as ex:
            done = all(ex.map(put, items))
        c1, m1 = os.times(), proc_cpu(self.p.pid)
        ctx.record(kind="seed", what=what, objects=len(items),
                   bytes=sum(i[2] for i in items), seconds=time.monotonic() - t, complete=done,
                   cpu_s={"client": round(c1[0] + c1[1] - c0[0] - c0[1], 3),
                          "moto": round(m1 - m0, 3) if m0 is not None and m1 is not None
                          else None})
        log("seeded %s: %d objects in %.1f s" % (what, len(items), time.monotonic() - t))
        return done

    def copies(self, src, keys, threads):
        def copy(key):
            if self.ctx.left() < 30:
                return False
            self.client().copy_object(Bucket=BUCKET, Key=key,
                                      CopySource={"Bucket": BUCKET, "Key": src},
                                      ChecksumAlgorithm="CRC32")
            return True
        with concurrent.futures.ThreadPoolExecutor(threads) as ex:
            return all(ex.map(copy, keys))

    def crc_held(self, key):
        h = self.client().head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        return h.get("ChecksumCRC32")

    def signed_urls(self, keys):
        """Presigned GET URLs, made before the clock starts (signing is local)."""
        c = self.client()
        return [c.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k},
                                         ExpiresIn=3600) for k in keys]

    def stop(self):
        stop(self.p)


def get_all(urls, threads):
    """The peer: fetch every URL, `threads` at a time, reading and discarding
    the bodies; (bytes, seconds, client CPU seconds)."""
    import http.client

    local = threading.local()

    def get(url):
        u = urllib.parse.urlsplit(url)
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            local.view = memoryview(bytearray(MIB))
        conn.request("GET", u.path + "?" + u.query)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError("GET %s: HTTP %d" % (u.path, resp.status))
        view = local.view
        n = 0
        while True:
            got = resp.readinto(view)
            if not got:
                break
            n += got
        return n

    c0, t0 = os.times(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        n = sum(ex.map(get, urls))
    secs = time.perf_counter() - t0
    c1 = os.times()
    return n, secs, (c1[0] - c0[0]) + (c1[1] - c0[1])


def peer_get(ctx, s3, urls, threads, label):
    rec = {"kind": "peer", "label": label, "threads": threads, "objects": len(urls), "error": None}
    if ctx.left() < 10:
        rec["error"] = "skipped: over the time budget"
        return ctx.record(**rec)
    m0 = proc_cpu(s3.p.pid)
    try:
        n, secs, client_cpu = get_all(urls, threads)
        rec.update(bytes=n, seconds=secs, cpu_s={"client": round(client_cpu, 3)})
    except Exception as e:  # a failed peer is a row, not a lost run
        rec["error"] = "%s: %s" % (type(e).__name__, e)
        rec["cpu_s"] = {}
    m1 = proc_cpu(s3.p.pid)
    rec["cpu_s"]["moto"] = round(m1 - m0, 3) if m0 is not None and m1 is not None else None
    return ctx.record(**rec)


def s3_compare(ctx, s3, zg, folder, keys, content_bytes, label, goal, rounds, single,
               save_first="/dev/null"):
    """A first zip, which also fetches every object's CRC (a HEAD each) and is
    reported apart; then `rounds` rounds of (zipgate zip, 8 parallel GETs,
    and with `single` 1 GET at a time): a row with the ratio to the 8 GETs,
    and a context row for the one-at-a-time peer."""
    urls = s3.signed_urls(keys)
    body = zip_body(folder, name=folder)
    cpu = {"zipgate": zg.pid, "moto": s3.p.pid}
    log("%s: first zip" % label)
    first = curl(ctx, zg.url(), body, out=save_first, rss_pid=zg.pid, cpu_pids=cpu,
                 label="s3 %s zipgate first" % folder)
    zruns, p8, p1, px = [], [], [], []
    proxy = None
    if single:
        proxy, pport = start_nginx(ctx, proxy_to=urllib.parse.urlsplit(urls[0]).port)
        purls = proxy_urls(urls, pport) if proxy else None
    for rnd in range(rounds):
        log("%s round %d/%d" % (label, rnd + 1, rounds))
        zruns.append(curl(ctx, zg.url(), body, rss_pid=zg.pid, cpu_pids=cpu,
                          label="s3 %s zipgate" % folder))
        p8.append(peer_get(ctx, s3, urls, 8, "s3 %s peer x8" % folder))
        if single:
            p1.append(peer_get(ctx, s3, urls, 1, "s3 %s peer x1" % folder))
            if proxy:
                px.append(peer_get(ctx, s3, purls, 1, "s3 %s peer x1 via nginx" % folder))
    if proxy:
        stop(proxy)
    for r in p8 + p1 + px:
        if not r.get("error") and r.get("bytes") != content_bytes:
            r["error"] = "read %s bytes, expected %d" % (r.get("bytes"), content_bytes)
    for r in [first] + zruns:
        if not r.get("error") and (r.get("size") or 0) < content_bytes:
            r["error"] = "archive of %s bytes is shorter than the content" % r.get("size")
    if first.get("error"):
        ctx.row(label, result="FAIL", detail="ERROR: first zip: %s" % first["error"])
        return None
    zt, t8, t1 = median_of(zruns), median_of(p8), median_of(p1)
    err = first_error([first] + zruns + p8)
    ratio = t8 / zt if zt and t8 else None
    detail = ("%s: %s s vs %s s (the first zip, a HEAD for each CRC too: %s s); CPU per run: "
              "zipgate %s s + moto %s s, vs client %s s + moto %s s") % (
        "median of %d" % rounds if rounds > 1 else "one run", fmt_s(zt), fmt_s(t8),
        fmt_s(first.get("seconds")), fmt_s(cpu_median(zruns, "zipgate")),
        fmt_s(cpu_median(zruns, "moto")), fmt_s(cpu_median(p8, "client")),
        fmt_s(cpu_median(p8, "moto")))
    if err:
        detail += "; ERROR: %s" % err
    ctx.row(label + ", vs 8 parallel GETs", fmt_rate(rate(content_bytes, zt)),
            fmt_rate(rate(content_bytes, t8)), ratio,
            ">= %.2f" % goal if goal else None,
            verdict(ratio, goal, not err) if goal else ("context" if not err else "FAIL"),
            detail)
    if single:
        err1 = first_error(p1)
        ctx.row(label + ", vs 1 GET at a time", fmt_rate(rate(content_bytes, zt)),
                fmt_rate(rate(content_bytes, t1)), t1 / zt if zt and t1 else None,
                detail="median %s s; CPU client %s s + moto %s s%s" % (
                    fmt_s(t1), fmt_s(cpu_median(p1, "client")), fmt_s(cpu_median(p1, "moto")),
                    "; ERROR: %s" % err1 if err1 else ""))
        # What any process in the middle costs on two cores, where each byte
        # then crosses loopback twice: the same GETs through nginx.
        tx, errx = median_of(px), first_error(px)
        ctx.row(label + ", vs 1 GET at a time through nginx proxy_pass",
                fmt_rate(rate(content_bytes, zt)), fmt_rate(rate(content_bytes, tx)),
                tx / zt if zt and tx else None,
                detail="median %s s; CPU client %s s + moto %s s%s" % (
                    fmt_s(tx), fmt_s(cpu_median(px, "client")), fmt_s(cpu_median(px, "moto")),
                    "; ERROR: %s" % errx if errx else "" if proxy else "; nginx did not start"))
    return zruns


def section_s3(ctx):
    s = ctx.sizes
    nbig, big_size = s["s3_big"]
    nsmall, smin, smax = s["s3_small"]
    rss_bytes, rss_size = s["s3_rss"]
    big_bytes = nbig * big_size
    ncopies = -(-(rss_bytes - big_bytes) // rss_size)
    rss_bytes = big_bytes + ncopies * rss_size  # the RSS zip: big/ and rss/
    ctx.section("2. S3 store (--store, moto_server %s): stored zip of a prefix vs the "
                "same objects fetched straight from moto" % moto_version())
    need = rss_bytes + GIB
    if ctx.free_bytes() < need:
        ctx.skipped("(all)", "only %d MiB free under %s, %d needed" % (
            ctx.free_bytes() // MIB, ctx.tmp, need // MIB))
        return
    try:
        s3 = S3(ctx)
    except ImportError as e:
        ctx.skipped("(all)", "boto3 missing (%s): run with .venv-s3/bin/python" % e)
        return
    except Exception as e:
        ctx.row("(all)", result="FAIL", detail="moto_server: %s" % e)
        return
    ctx.s3 = s3
    try:
        rng = random.Random(SEED + 2)
        big = [("tp/big/obj-%02d.bin" % i, SEED + 1000 + i, big_size, None) for i in range(nbig)]
        small = [("tp/small/d%02d/obj-%04d.bin" % (i // 100, i), SEED + 5000 + i,
                  rng.randint(smin, smax), None) for i in range(nsmall)]
        small_bytes = sum(i[2] for i in small)
        ok = s3.put_many(big, 4, "big") and s3.put_many(small, 8, "small")
        rss_keys = ["tp/rss/obj-%02d.bin" % i for i in range(ncopies)]
        if ok:
            # One upload, the rest server-side copies: the bytes never pass
            # through boto3 (hashed and signed on our two cores).
            t = time.monotonic()
            ok = (s3.put_many([(rss_keys[0], SEED + 9000, rss_size, None)], 1, "rss")
                  and s3.copies(rss_keys[0], rss_keys[1:], 4))
            ctx.record(kind="seed", what="rss copies", objects=ncopies - 1,
                       seconds=time.monotonic() - t, complete=ok)
        if not ok:
            ctx.skipped("(all)", "seeding did not finish within the budget")
            return
        held = {k: s3.crc_held(k) for k in (big[0][0], small[0][0], rss_keys[-1])}
        ctx.record(kind="crc_held", keys=held)
        if not all(held.values()):
            ctx.notes.append("some seeded objects hold no CRC-32 checksum (%s): zipgate reads "
                             "those twice" % ", ".join(k for k, v in held.items() if not v))

        zg = Zipgate(ctx, "s3", ["--store", "s3://%s/tp" % BUCKET, "--crc-cache", "memory"],
                     env=s3.env())
        try:
            ms = zg.wait_up(60)
            ctx.record(kind="startup", what="tp", ms=ms)
            s3_compare(ctx, s3, zg, "big", [k for k, *_ in big], big_bytes,
                       "%d x %d MiB (%d MiB)" % (nbig, big_size // MIB, big_bytes // MIB), 0.8,
                       RUNS, True)
            # Context, and slow on moto (milliseconds of Python per request):
            # one round after the first zip, which is kept, as its CRCs are
            # S3's checksums and checked below.
            saved = ctx.path("small.zip")
            zruns = s3_compare(ctx, s3, zg, "small", [k for k, *_ in small], small_bytes,
                               "%d x %d-%d KiB (%.1f MiB)" % (
                                   nsmall, smin // KIB, smax // KIB, small_bytes / MIB),
                               None, 1, False, save_first=saved)
            if zruns is not None:
                ok, msg = check_zip(saved, small_bytes, nsmall, True)
                ctx.record(kind="check", what="s3 small archive", ok=ok, msg=msg)
                ctx.row("small-object archive check (the first zip)",
                        result="PASS" if ok else "FAIL", detail=msg)
            if os.path.exists(saved):
                os.remove(saved)
            log("s3 RSS: %d MiB" % (rss_bytes // MIB))
            r = curl(ctx, zg.url(), zip_body("big", "rss"), rss_pid=zg.pid,
                     cpu_pids={"zipgate": zg.pid, "moto": s3.p.pid}, label="s3 rss")
            if not r.get("error") and (r.get("size") or 0) < rss_bytes:
                r["error"] = "archive of %s bytes is shorter than the content" % r.get("size")
            ctx.s3_rss = (rss_bytes, r, nbig + ncopies)
        finally:
            zg.stop()
        # The big objects are done with: free moto's spool files.
        for key in [k for k, *_ in big] + rss_keys:
            s3.client().delete_object(Bucket=BUCKET, Key=key)
    except Exception as e:
        ctx.row("(S3 section)", result="FAIL", detail="%s: %s" % (type(e).__name__, e))
        log("S3 section failed: %s: %s" % (type(e).__name__, e))


def section_rss(ctx):
    ctx.section("3. peak RSS (VmHWM, reset before the fetch) while streaming one stored zip")
    if getattr(ctx, "dir_rss", None):
        nbytes, r = ctx.dir_rss
        rss_row(ctx, "directory store, %d MiB (half of it a CRC pass)" % (nbytes // MIB), nbytes, r)
    else:
        ctx.skipped("directory store", "not measured (see above)")
    if getattr(ctx, "s3_rss", None):
        nbytes, r, nobjects = ctx.s3_rss
        rss_row(ctx, "S3 store, %d MiB (%d objects)" % (nbytes // MIB, nobjects),
                nbytes, r)
    else:
        ctx.skipped("S3 store", "not measured (see above)")


def first_byte_peer(s3, prefix):
    """What a client-side zipper waits for before its first byte: every page
    of ListObjectsV2 (it must know the files before it can plan an archive)
    and the first byte of the first object; (seconds, keys listed)."""
    import http.client
    c = s3.client()
    t0 = time.perf_counter()
    keys = []
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    url = urllib.parse.urlsplit(c.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": keys[0]}, ExpiresIn=600))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", url.path + "?" + url.query)
        resp = conn.getresponse()
        if resp.status != 200 or len(resp.read(1)) != 1:
            raise RuntimeError("first GET: HTTP %d" % resp.status)
        secs = time.perf_counter() - t0
    finally:
        conn.close()
    return secs, len(keys)


def section_ttfb(ctx):
    s = ctx.sizes
    n = s["many"]
    ctx.section("4. a %s-object prefix (1-4 KiB each): start-up and time to first byte" % (
        "{:,}".format(n)))
    s3 = getattr(ctx, "s3", None)
    if s3 is None:
        ctx.skipped("(all)", "no S3 server (see above)")
        return
    rng = random.Random(SEED + 3)
    now = time.time()
    items = [("ttfb/files/d%02d/f-%05d.bin" % (i // 100, i), SEED + 20000 + i,
              rng.randint(1 * KIB, 4 * KIB),
              # rclone's convention, so --store-mtime-metadata finds something.
              {"mtime": "%.9f" % (now - rng.randint(0, 10 ** 7))}) for i in range(n)]
    total_bytes = sum(i[2] for i in items)
    try:
        if not s3.put_many(items, 8, "ttfb"):
            ctx.skipped("(all)", "seeding did not finish within the budget")
            return
    except Exception as e:
        ctx.row("(all)", result="FAIL", detail="seeding: %s: %s" % (type(e).__name__, e))
        return
    url = "s3://%s/ttfb" % BUCKET

    def startups(extra, runs, label):
        times, err = [], None
        for i in range(runs):
            if ctx.left() < 30:
                err = "skipped: over the time budget"
                break
            zg = Zipgate(ctx, "startup%s-%d" % (label, i),
                         ["--store", url, "--crc-cache", "memory", *extra], env=s3.env())
            limit = min(300, ctx.left())
            try:
                times.append(zg.wait_up(limit))
            except RuntimeError as e:
                err = str(e) if limit == 300 else "skipped: the time budget ran out after " \
                    "%.0f s of a start-up (%s)" % (limit, e)
                break
            finally:
                zg.stop()
        ctx.record(kind="startup", what="ttfb" + label, ms=times, error=err)
        return times, err

    # Measured cheapest first, so a short budget loses the long steps (the
    # start-up that HEADs every object, then the whole zip); rows in reading
    # order below. Each server is stopped before the next step, so its
    # rescan (every 60 s by default, a full listing) never lands in one.
    plain_runs, meta_runs = s["startup_runs"]
    t_plain, e_plain = startups([], plain_runs, "")
    body = zip_body("files")
    zruns, peers, whole = [], [], None
    zg = Zipgate(ctx, "ttfb", ["--store", url, "--crc-cache", "memory"], env=s3.env())
    try:
        zg.wait_up(min(300, max(ctx.left(), 30)))
        cpu = {"zipgate": zg.pid, "moto": s3.p.pid}
        # TTFB rounds stop at the headers (a whole download of this prefix is
        # minutes on moto); the one whole download comes last.
        for rnd in range(RUNS):
            log("ttfb round %d/%d" % (rnd + 1, RUNS))
            zruns.append(curl(ctx, zg.url(), body, rss_pid=zg.pid, cpu_pids=cpu,
                              label="ttfb zipgate", ttfb_only=True))
            if ctx.left() < 10:
                peers.append(ctx.record(kind="peer", label="ttfb peer",
                                        error="skipped: over the time budget"))
                continue
            try:
                secs, listed = first_byte_peer(s3, "ttfb/")
                peers.append(ctx.record(kind="peer", label="ttfb peer", seconds=secs,
                                        listed=listed, error=None if listed == n else
                                        "listed %d keys, expected %d" % (listed, n)))
            except Exception as e:
                peers.append(ctx.record(kind="peer", label="ttfb peer",
                                        error="%s: %s" % (type(e).__name__, e)))
    except RuntimeError as e:
        zruns.append(ctx.record(kind="curl", label="ttfb zipgate",
                                error="the server did not start: %s" % e))
    finally:
        zg.stop()
    t_meta, e_meta = startups(["--store-mtime-metadata"], meta_runs, "-meta")
    if ctx.left() > 30:
        zg = Zipgate(ctx, "whole", ["--store", url, "--crc-cache", "memory"], env=s3.env())
        try:
            zg.wait_up(min(300, ctx.left()))
            log("ttfb: the whole zip")
            # The only whole download of the prefix: more than the usual cap.
            whole = curl(ctx, zg.url(), body, rss_pid=zg.pid,
                         cpu_pids={"zipgate": zg.pid, "moto": s3.p.pid}, label="ttfb whole",
                         max_time=max(ctx.a.max_time, 450))
            if not whole.get("error") and (whole.get("size") or 0) < total_bytes:
                whole["error"] = "archive of %s bytes is shorter than the content" % (
                    whole.get("size"))
            elif (whole.get("error") or "").startswith("skipped") and whole.get("size"):
                whole["error"] += " (%.1f of %.1f MiB of content by then)" % (
                    whole["size"] / MIB, total_bytes / MIB)
        except RuntimeError as e:
            whole = {"error": "the server did not start: %s" % e}
        finally:
            zg.stop()
    else:
        whole = {"error": "skipped: over the time budget"}

    pages = (n + 999) // 1000

    def runs_text(times):
        if not times:
            return "not measured"
        return "%s: %s ms" % ("median of %d" % len(times) if len(times) > 1 else "one run",
                              ", ".join("%.0f" % t for t in times))

    ctx.row("start-up, spawn -> first 200 on health",
            "-" if not t_plain else "%.0f ms" % statistics.median(t_plain),
            result="context" if not e_plain else "FAIL",
            detail="%s; one listing (%d page(s))%s" % (
                runs_text(t_plain), pages, "; ERROR: %s" % e_plain if e_plain else ""))
    ctx.row("start-up with --store-mtime-metadata",
            "-" if not t_meta else "%.0f ms" % statistics.median(t_meta),
            result="context" if not e_meta else "FAIL",
            detail="%s; the listing plus a HEAD per object, 16 at a time%s" % (
                runs_text(t_meta), "; ERROR: %s" % e_meta if e_meta else ""))
    zt = median_of(zruns, "ttfb")
    pt = median_of(peers)
    err = first_error(zruns + peers)
    ctx.row("zip TTFB (curl time_starttransfer) vs list + first GET byte",
            "-" if zt is None else "%.1f ms" % (1000 * zt),
            "-" if pt is None else "%.0f ms" % (1000 * pt),
            pt / zt if pt and zt else None,
            detail="ratio = peer/zipgate; median of %d: zipgate %s ms, peer %s ms (%d "
                   "listing page(s) + a GET)%s" % (
                       len(zruns), ", ".join("%.1f" % (1000 * r["ttfb"]) for r in zruns
                                             if r.get("ttfb") is not None),
                       ", ".join("%.0f" % (1000 * r["seconds"]) for r in peers
                                 if r.get("seconds") is not None), pages,
                       "; ERROR: %s" % err if err else ""),
            result="context" if not err else "FAIL")
    cpu_w = whole.get("cpu_s") or {}
    ctx.row("zip total time (first zip: a CRC HEAD + a GET per object)",
            "-" if whole.get("error") else "%.1f s" % whole["seconds"],
            result="FAIL" if whole.get("error") else "context",
            detail=("ERROR: %s" % whole["error"]) if whole.get("error") else
            "%.1f MiB content, %d objects (%.1f ms each); TTFB %.1f ms; CPU zipgate %s s, "
            "moto %s s; peak RSS %.1f MiB (%.1f MiB before)" % (
                total_bytes / MIB, n, 1000 * whole["seconds"] / n, 1000 * whole["ttfb"],
                fmt_s(cpu_w.get("zipgate")), fmt_s(cpu_w.get("moto")),
                (whole.get("hwm_kb") or 0) / 1024, (whole.get("rss_before_kb") or 0) / 1024))


def moto_version():
    try:
        from importlib.metadata import version
        return version("moto")
    except Exception:
        return "?"


# ---------------------------------------------------------------- report

COLUMNS = [  # key, header, width, alignment
    ("name", "measurement", 60, "<"), ("value", "value", 11, ">"), ("peer", "peer", 11, ">"),
    ("ratio", "ratio", 6, ">"), ("goal", "goal", 9, ">"), ("result", "result", 8, ">"),
    ("detail", "detail", 0, "<"),
]


def render(ctx, a):
    out = []
    w = out.append
    w("zipgate stores benchmark  %s   mode %s" % (time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                                  "quick" if ctx.quick else "full"))
    st = os.stat(a.binary)
    w("binary %s (%d MB, built %s)%s" % (
        a.binary, st.st_size // 1000000, time.strftime("%Y-%m-%d %H:%M", time.localtime(st.st_mtime)),
        "   DEBUG BUILD: zipgate's figures are not a release build's" if "/debug/" in a.binary
        else ""))
    w("commit %s   nproc %s   kernel %s" % (a.commit, os.cpu_count(), os.uname().release))
    w("load   %s" % machine_load(a.stat_start))
    others = others_share(a.stat_start, a.times_start)
    if others is not None:
        w("       processes other than this run's used %.0f%% of the machine meanwhile%s" % (
            others, " (figures are noisy)" if others > 10 else ""))
    if getattr(ctx, "nginx_version", None):
        w("peers  %s (sendfile on, 1 worker); moto_server %s" % (ctx.nginx_version, moto_version()))
    method = ctx.cache.method
    if method:
        w("cold   page cache dropped with %s%s" % (
            method,
            " (%s)" % ctx.cache.why_not_global if method == "fadvise" and ctx.cache.why_not_global
            else " (global, then checked with mincore)" if method == "drop_caches" else ""))
    w("MB = 1e6 bytes, MiB = 2^20; loopback only; rates are content bytes/s, except zipgate vs "
      "nginx (archive bytes/s, the same file); ratio = zipgate rate / peer rate unless noted")
    w("")

    def shown(key, val):
        return fmt_ratio(val) if key == "ratio" and isinstance(val, float) else val

    for text in table_lines(COLUMNS, ctx.rows, shown):
        w(text)
    w("")
    problems = scan_logs(ctx.logs)
    w("zipgate logs: %s" % ("no WARN/ERROR lines besides the no---policy warning" if not problems
                            else "%d WARN/ERROR lines, first: %s" % (len(problems), problems[0])))
    for note in ctx.notes:
        w("note: %s" % note)
    return "\n".join(out) + "\n"


def scan_logs(paths):
    found = []
    for path in paths:
        try:
            for text in open(path, errors="replace"):
                if ("WARN" in text or "ERROR" in text or "panicked" in text) \
                        and "no --policy" not in text:
                    found.append("%s: %s" % (os.path.basename(path), text.strip()[:300]))
        except OSError:
            pass
    return found


# ---------------------------------------------------------------- main


def has_store_flags(binary):
    rc, out, err = run([binary, "serve", "--help"], timeout=30)
    text = out + err
    return "--root" in text and "--store" in text, "--no-warm-crc" in text


def main():
    ap = argparse.ArgumentParser(description="zipgate's directory and S3 stores next to nginx "
                                             "and direct S3 GETs")
    ap.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "zipgate"),
        help="zipgate binary (never built here; default target/release/zipgate)")
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    ap.add_argument("--budget", type=float,
                    default=float(os.environ.get("BENCH_STORES_BUDGET") or 600))
    ap.add_argument("--max-time", type=float,
                    default=float(os.environ.get("BENCH_MAX_TIME") or 150))
    ap.add_argument("--verify", action="store_true",
                    default=os.environ.get("BENCH_STORES_VERIFY") == "1",
                    help="check the saved directory archive's CRCs in full mode too")
    ap.add_argument("--only", default="dir,s3,rss,ttfb",
                    help="comma-separated sections to run (dir, s3, rss, ttfb); the RSS "
                         "section's directory half is measured by dir")
    ap.add_argument("--save", default=os.path.join(HERE, "out", "stores.txt"),
                    help="copy of the table; the raw records go next to it as .json")
    a = ap.parse_args()
    a.binary = os.path.abspath(a.binary)
    t_start = mark_start(a)

    ctx = Bench(a)
    atexit.register(lambda: shutil.rmtree(ctx.tmp, ignore_errors=True))
    atexit.register(stop_all)  # runs first: stop everything before removing its files

    rc, out, _ = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=30)
    a.commit = out.strip() or "unknown"
    if run(["git", "-C", ROOT, "diff", "--quiet", "HEAD"], timeout=60)[0] != 0:
        a.commit += " (+uncommitted changes)"

    if not os.access(a.binary, os.X_OK):
        log("no zipgate binary at %s" % a.binary)
        return 2
    stores_ok, warm_flag = has_store_flags(a.binary)
    if not stores_ok:
        ctx.section("zipgate stores")
        ctx.row("(all)", result="FAIL", detail="%s has no --root/--store: rebuild it "
                "(cargo build --release) or pass --binary" % a.binary)
        sys.stdout.write(render(ctx, a))
        log("%s has no --root/--store" % a.binary)
        return 2
    # A private copy: a rebuild during the run (cargo relinks the path) must
    # not swap the binary between two measurements.
    ctx.binary = ctx.path("zipgate")
    shutil.copy2(a.binary, ctx.binary)
    if warm_flag:
        # Otherwise a background pass at start computes the CRCs, racing the
        # measured first download and the cold runs for the disk and a core.
        ctx.zg_extra = ["--no-warm-crc"]
    ctx.pool = Pool()
    log("mode %s, budget %.0f s, temp %s, free %d MiB" % (
        "quick" if a.quick else "full", a.budget, ctx.tmp, ctx.free_bytes() // MIB))

    only = set(a.only.split(","))
    for name, section in (("dir", section_dir), ("s3", section_s3), ("rss", section_rss),
                          ("ttfb", section_ttfb)):
        if name not in only:
            continue
        try:
            section(ctx)
        except Exception as e:  # a failed section is a row, not a lost run
            ctx.row("(%s section)" % name, result="FAIL", detail="%s: %s" % (type(e).__name__, e))
            log("%s section failed: %s: %s" % (name, type(e).__name__, e))
    if getattr(ctx, "s3", None):
        ctx.s3.stop()

    ctx.notes.append("servers: %s; --crc-cache memory for S3 (a file for the directory); "
                     "other options at their defaults (rescan included)" % (
                         "--no-warm-crc" if ctx.zg_extra else "warm CRC default"))
    ctx.notes.append("peer GETs are presigned (signed before the clock starts; moto refuses "
                     "unsigned GETs of private objects) over http.client, one connection per "
                     "thread; objects uploaded with ChecksumAlgorithm=CRC32")
    ctx.notes.append("run took %.0f s of a %.0f s budget" % (time.time() - t_start, a.budget))

    text = render(ctx, a)
    sys.stdout.write(text)
    sys.stdout.flush()
    if a.save:
        os.makedirs(os.path.dirname(a.save), exist_ok=True)
        with open(a.save, "w") as f:
            f.write(text)
        with open(os.path.splitext(a.save)[0] + ".json", "w") as f:
            json.dump({"mode": "quick" if a.quick else "full", "binary": a.binary,
                       "commit": a.commit, "sizes": ctx.sizes, "cache_method": ctx.cache.method,
                       "rows": [r for k, r in ctx.rows if k == "row"],
                       "records": ctx.records, "notes": ctx.notes}, f, indent=1)
    # Exit 1 when something broke (not for a missed goal), so bench/run notes it.
    failed = any(k == "row" and r["result"] == "FAIL" and (
        not r.get("goal") or "ERROR" in (r.get("detail") or "")) for k, r in ctx.rows)
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
