#!/usr/bin/env python3
"""Measuring half of bench/run (standard library only).

bench/run owns the long-lived processes (zipgate servers, nginx) and cleans
them up; this helper writes fixtures, times start-up, runs one curl fetch
while watching the server's memory, and prints the final table. Every
measurement is appended as one JSON line to a results file, so a failed or
timed-out case becomes a row saying so instead of losing the whole run.
"""

import argparse
import json
import os
import random
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
import zipfile

MIB = 1 << 20
MB = 1e6
PORT_RE = re.compile(rb"http://127\.0\.0\.1:(\d+)")


def append(results, record):
    with open(results, "a") as f:
        f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------- fixtures


def cmd_fixtures(a):
    """One fixture holding every case, so one server answers them all."""
    half_store = a.store_bytes // 2
    half_text = a.text_bytes // 2
    rng = random.Random(10_000)  # fixed seed: same tree and sizes every run
    many = []
    many_bytes = 0
    per_dir = a.many_files // a.many_dirs
    for d in range(a.many_dirs):
        files = []
        for f in range(per_dir):
            size = rng.randint(1024, 4096)
            many_bytes += size
            files.append({
                "id": f"many-{d:03}-{f:03}",
                "name": f"file-{f:03}.bin",
                "content": {"generate": {"size": size, "seed": d * 1000 + f,
                                         "kind": "random"}},
            })
        many.append({"id": f"many-{d:03}", "name": f"dir-{d:03}", "children": files})
    doc = {
        "users": [],
        "nodes": [
            {"id": "store", "name": "store", "children": [
                {"id": "store-a", "name": "a.bin",
                 "content": {"generate": {"size": half_store, "seed": 1, "kind": "random"}}},
                {"id": "store-b", "name": "b.bin",
                 "content": {"generate": {"size": a.store_bytes - half_store, "seed": 2,
                                          "kind": "random"}}},
            ]},
            # .txt so that no "store these extensions" default keeps them stored
            {"id": "text", "name": "text", "children": [
                {"id": "text-a", "name": "a.txt",
                 "content": {"generate": {"size": half_text, "seed": 3, "kind": "text"}}},
                {"id": "text-b", "name": "b.txt",
                 "content": {"generate": {"size": a.text_bytes - half_text, "seed": 4,
                                          "kind": "text"}}},
            ]},
            {"id": "many", "name": "many", "children": many},
        ],
    }
    with open(a.out, "w") as f:
        json.dump(doc, f)
    meta = {"store_bytes": a.store_bytes, "text_bytes": a.text_bytes,
            "many_files": per_dir * a.many_dirs, "many_dirs": a.many_dirs,
            "many_bytes": many_bytes}
    with open(a.meta, "w") as f:
        json.dump(meta, f)


# ---------------------------------------------------------------- start-up


def status_once(port, raw, timeout=2.0):
    """Sends one raw HTTP/1.1 request; returns the status code, or None if
    nothing answers yet."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
    try:
        s.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else None
    except OSError:
        return None
    finally:
        s.close()


def health_once(port):
    return status_once(port, b"GET /_zipgate/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Connection: close\r\n\r\n")


def start_once(binary, timeout=10.0):
    """Spawn -> first 200 on health, in ms.

    The port is only known from the log line, so we block on the stderr pipe
    (select wakes us the instant the line is written) and then hammer health
    in a tight socket loop with no sleeps.
    """
    env = dict(os.environ, NO_COLOR="1", RUST_LOG="info")
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    try:
        deadline = t0 + timeout
        buf = b""
        port = None
        while port is None:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise RuntimeError("no 'listening' log line within %.0fs" % timeout)
            ready, _, _ = select.select([p.stderr], [], [], left)
            if ready:
                chunk = os.read(p.stderr.fileno(), 65536)
                if not chunk:
                    raise RuntimeError("server exited: %r" % buf.decode(errors="replace"))
                buf += chunk
                m = PORT_RE.search(buf)
                if m:
                    port = int(m.group(1))
        while True:
            if health_once(port) == 200:
                return (time.perf_counter() - t0) * 1000
            if time.perf_counter() > deadline:
                raise RuntimeError("health never answered 200")
    finally:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stderr.close()


def cmd_startup(a):
    runs, error = [], None
    try:
        for _ in range(a.runs):
            runs.append(start_once(a.binary))
    except Exception as e:  # keep the runs we have, report the failure
        error = str(e)
    append(a.results, {"kind": "startup", "runs": runs, "error": error})


# ---------------------------------------------------------------- fetch


def proc_status(pid):
    """VmRSS / VmHWM in kB (None once the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        return None
    return out


def proc_cpu(pid):
    """User+system CPU seconds of the whole process (all threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def reset_hwm(pid):
    """Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each case's
    peak is its own rather than the process's lifetime peak."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cmd_fetch(a):
    rec = {"kind": "fetch", "group": a.group, "case": a.case, "ok": False,
           "error": None, "input_bytes": a.input_bytes, "pid_watched": bool(a.pid)}
    if a.expect_same_as:
        for line in open(a.results):
            r = json.loads(line)
            if r.get("case") == a.expect_same_as and r.get("ok"):
                a.expect_size = r["size"]
    max_time = a.max_time
    if a.deadline:
        max_time = min(max_time, a.deadline - time.time())
    if max_time < 5:
        rec["error"] = "skipped: over the run's time budget"
        append(a.results, rec)
        return 0
    cmd = ["curl", "-s", "-o", a.out or "/dev/null", "--max-time", "%.0f" % max_time,
           "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}"]
    if a.body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", a.body]
    cmd.append(a.url)

    pid = a.pid
    if pid:
        rec["hwm_reset"] = reset_hwm(pid)
        st = proc_status(pid) or {}
        rec["rss_before_kb"] = st.get("VmRSS")
        cpu0 = proc_cpu(pid)
    samples = []
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Sample the server's RSS every 20 ms while curl runs (cheap: one small read).
        while p.poll() is None:
            if pid:
                st = proc_status(pid)
                if st:
                    samples.append(st["VmRSS"])
            time.sleep(0.02)
    finally:
        if p.poll() is None:  # interrupted: don't leave curl behind
            p.kill()
            p.wait()
    out, err = p.communicate()
    if pid:
        st = proc_status(pid) or {}
        rec["hwm_kb"] = st.get("VmHWM")
        rec["rss_after_kb"] = st.get("VmRSS")
        rec["rss_max_kb"] = max(samples) if samples else None
        rec["rss_samples"] = len(samples)
        cpu1 = proc_cpu(pid)
        rec["cpu_s"] = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
        if st == {}:
            rec["error"] = "server process is gone"
    try:
        code, size, ttfb, total = out.decode().split()
        rec.update(http_code=int(code), size=int(size), ttfb=float(ttfb), total=float(total))
    except ValueError:
        rec["error"] = "curl printed %r" % out
    if p.returncode != 0:
        rec["error"] = "curl exit %d%s %s" % (
            p.returncode, " (--max-time %.0fs hit)" % max_time if p.returncode == 28 else "",
            err.decode(errors="replace").strip())
    elif rec.get("http_code") != 200:
        rec["error"] = "HTTP %s" % rec.get("http_code")
    elif a.expect_size is not None and rec["size"] != a.expect_size:
        rec["error"] = "got %d bytes, expected %d" % (rec["size"], a.expect_size)
    rec["ok"] = rec["error"] is None
    append(a.results, rec)
    return 0


# ---------------------------------------------------------------- check


def cmd_check_zip(a):
    """Cheap sanity check of the saved archive: its central directory parses
    and lists the expected sizes (reading 4 GiB back for CRCs would cost more
    than it tells)."""
    try:
        with zipfile.ZipFile(a.file) as z:
            infos = z.infolist()
        total = sum(i.file_size for i in infos)
        stored = all(i.compress_type == zipfile.ZIP_STORED for i in infos if not i.is_dir())
        files = sum(1 for i in infos if not i.is_dir())
        ok = total == a.expect_bytes and stored
        msg = "%d entries (%d files), %d content bytes, all stored: %s" % (
            len(infos), files, total, stored)
    except Exception as e:
        ok, msg = False, "unreadable: %s" % e
    append(a.results, {"kind": "check", "ok": ok, "msg": msg})
    return 0 if ok else 1


# ---------------------------------------------------------------- report


def mbps(nbytes, secs):
    return nbytes / MB / secs if nbytes and secs else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def cmd_report(a):
    recs = [json.loads(line) for line in open(a.results)]
    meta = json.load(open(a.meta))
    fetch = {r["case"]: r for r in recs if r["kind"] == "fetch"}
    out = []
    w = out.append
    w("zipgate benchmark  %s" % time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    w("commit %s   nproc %s   kernel %s   mode %s" % (a.commit, os.cpu_count(),
                                                       os.uname().release, a.mode))
    w("cpu    %s" % a.cpu)
    w("sizes  store %.0f MiB random (2 files)   deflate %.0f MiB text (2 files)   "
      "many %d files / %d dirs / %.1f MiB" % (
          meta["store_bytes"] / MIB, meta["text_bytes"] / MIB, meta["many_files"],
          meta["many_dirs"], meta["many_bytes"] / MIB))
    w("load   %s" % machine_load(a.stat_start))
    w("MB = 1e6 bytes; RSS in MiB; client is curl -o /dev/null on loopback")
    w("")

    for r in recs:
        if r["kind"] != "startup":
            continue
        runs = r["runs"]
        w("start-up: spawn -> first 200 on /_zipgate/health (embedded fixtures), %d runs" % len(runs))
        if runs:
            w("  median %.1f ms   max %.1f ms   min %.1f ms   first %.1f ms" % (
                statistics.median(runs), max(runs), min(runs), runs[0]))
        if r["error"]:
            w("  ERROR: %s" % r["error"])
        w("")

    hdr = "%-26s %12s %8s %9s %9s %9s %8s %8s %11s %7s" % (
        "case", "bytes sent", "time s", "MB/s sent", "MB/s in", "peak RSS", "RSS max",
        "RSS end", "server CPU", "TTFB ms")
    w("streaming (peak RSS = VmHWM, reset before each case; RSS max = 20 ms samples)")
    w(hdr)
    w("-" * len(hdr))
    for group in ("stream", "many"):
        if group == "many":
            w("")
            w("%d-file archive, store mode (TTFB = curl time_starttransfer)" % meta["many_files"])
            w(hdr)
            w("-" * len(hdr))
        for r in recs:
            if r["kind"] != "fetch" or r["group"] != group:
                continue
            if not r["ok"] and "size" not in r:
                skipped = r["error"].startswith("skipped")
                w("%-26s %s" % (r["case"], r["error"] if skipped else "ERROR: " + r["error"]))
                continue
            kb = lambda k: r.get(k) / 1024 if r.get(k) is not None else None
            w("%-26s %12d %8.3f %9s %9s %9s %8s %8s %11s %7s" % (
                r["case"], r["size"], r["total"],
                fmt(mbps(r["size"], r["total"]), ".0f"),
                fmt(mbps(r["input_bytes"], r["total"]), ".0f"),
                fmt(kb("hwm_kb"), ".1f"), fmt(kb("rss_max_kb"), ".1f"),
                fmt(kb("rss_after_kb"), ".1f"),
                fmt(r.get("cpu_s"), ".2f") + (" s" if r.get("cpu_s") is not None else ""),
                fmt(r["ttfb"] * 1000, ".1f")))
            if r["error"]:
                w("%-26s ERROR: %s" % ("", r["error"]))
    w("")

    # Ratios against the static-file ceiling.
    nginx = [r for r in recs if r["kind"] == "fetch" and r["case"].startswith("nginx static")
             and r["ok"]]
    if nginx:
        best = min(nginx, key=lambda r: r["total"])
        w("ceiling: nginx sendfile of the same %d bytes, best of %d: %.2f s (%.0f MB/s)" % (
            best["size"], len(nginx), best["total"], mbps(best["size"], best["total"])))
        for case in ("store cold", "store warm"):
            r = fetch.get(case)
            if r and r["ok"]:
                ratio = r["total"] / best["total"]
                w("  %-12s / nginx time = %.2fx  (target <= 2x: %s)" % (
                    case, ratio, "met" if ratio <= 2 else "MISSED"))
    else:
        w("ceiling: nginx not measured")
    for r in recs:
        if r["kind"] == "check":
            w("saved archive check: %s (%s)" % ("OK" if r["ok"] else "FAILED", r["msg"]))
    problems = scan_logs(a.logs)
    w("server logs: %s" % ("no WARN/ERROR lines" if not problems else
                           "%d WARN/ERROR lines, first: %s" % (len(problems), problems[0])))
    for note in a.note or []:
        w("note: %s" % note)
    for path in a.append or []:  # e.g. bench/peers.py's table
        w("")
        w(open(path).read().rstrip("\n"))
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if a.save:
        with open(a.save, "w") as f:
            f.write(text)
    # Exit 1 when something failed (not for a missed target), so callers notice.
    failed = any((r["kind"] == "fetch" and not r["ok"]) or
                 (r["kind"] == "check" and not r["ok"]) or
                 (r["kind"] == "startup" and r["error"]) for r in recs)
    return 1 if failed else 0


def table_lines(columns, rows, shown):
    """A fixed-width table: `columns` are (key, heading, width, align),
    `rows` ("section", text) or ("row", {key: value}), and `shown(key,
    value)` formats a value (None: an empty cell)."""

    def line(cols):
        cells = []
        for key, _, width, align in columns:
            val = shown(key, cols.get(key))
            val = "" if val is None else str(val)
            cells.append(format(val, "%s%d" % (align, width)) if width else val)
        return " ".join(cells).rstrip()

    header = line({k: h for k, h, _, _ in columns})
    out = [header, "-" * len(header)]
    for kind, item in rows:
        out.append(item if kind == "section" else line(item))
    return out


def mark_start(a):
    """Notes on `a` what the report's load lines compare against (the
    machine's /proc/stat and this process's CPU times now); the wall clock."""
    with open("/proc/stat") as f:
        a.stat_start = f.readline()
    a.times_start = os.times()
    return time.time()


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


def machine_load(stat_start):
    """Load average now, and how the CPUs spent the run: a high steal share
    means the hypervisor took time away and the numbers are noisy."""
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    text = "loadavg %s" % load
    if stat_start:
        with open("/proc/stat") as f:
            now = f.readline()
        a = [int(x) for x in stat_start.split()[1:]]
        b = [int(x) for x in now.split()[1:]]
        d = [y - x for x, y in zip(a, b)]
        total = sum(d[:8]) or 1  # user nice system idle iowait irq softirq steal
        text += "   during the run: busy %.0f%%, iowait %.0f%%, steal %.0f%%" % (
            100 * (total - d[3] - d[4]) / total, 100 * d[4] / total, 100 * d[7] / total)
    return text


def scan_logs(paths):
    found = []
    for path in paths or []:
        try:
            for line in open(path, errors="replace"):
                if re.search(r"\b(WARN|ERROR)\b|panicked", line):
                    found.append("%s: %s" % (os.path.basename(path), line.strip()))
        except OSError:
            pass
    return found


# ---------------------------------------------------------------- misc


def cmd_freeport(_a):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("fixtures")
    p.add_argument("--out", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--store-bytes", type=int, required=True)
    p.add_argument("--text-bytes", type=int, required=True)
    p.add_argument("--many-files", type=int, default=10_000)
    p.add_argument("--many-dirs", type=int, default=100)
    p.set_defaults(fn=cmd_fixtures)

    p = sub.add_parser("startup")
    p.add_argument("--binary", required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--results", required=True)
    p.set_defaults(fn=cmd_startup)

    p = sub.add_parser("fetch")
    p.add_argument("--results", required=True)
    p.add_argument("--group", default="stream")
    p.add_argument("--case", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--body")
    p.add_argument("--out")
    p.add_argument("--pid", type=int)
    p.add_argument("--input-bytes", type=int)
    p.add_argument("--expect-size", type=int)
    p.add_argument("--expect-same-as", metavar="CASE", help="expect that case's size")
    p.add_argument("--max-time", type=float, default=150)
    p.add_argument("--deadline", type=float, help="epoch seconds the whole run must end by")
    p.set_defaults(fn=cmd_fetch)

    p = sub.add_parser("check-zip")
    p.add_argument("--results", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--expect-bytes", type=int, required=True)
    p.set_defaults(fn=cmd_check_zip)

    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--commit", default="?")
    p.add_argument("--mode", default="full")
    p.add_argument("--cpu", default="?")
    p.add_argument("--stat-start", help="the 'cpu' line of /proc/stat at the start")
    p.add_argument("--logs", nargs="*")
    p.add_argument("--note", action="append")
    p.add_argument("--append", action="append", metavar="FILE", help="text to add at the end")
    p.add_argument("--save")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("freeport")
    p.set_defaults(fn=cmd_freeport)

    a = ap.parse_args()
    sys.exit(a.fn(a) or 0)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # bench/run stops us with SIGTERM; unwind so `finally` blocks kill our children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
