#!/usr/bin/env python3
"""Soak: N concurrent clients for a bounded time, each looping over the five
dialects' whole flows (create, poll, download) with some downloads cut short
(the client reads a little and hangs up) and some jobs cancelled. Afterwards:
the journal shows every request the clients sent, each with a status; no job
is left downloading; no engine thread is left streaming; RSS is back near
its baseline once the server is reset.

    bench/soak.py [--binary target/release/zipgate] [--clients 50] [--seconds 60]

Loopback only. Exits 1 when a check fails. Stdlib only.
"""

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.parse

ORACLE_FOLDER = "FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D"
ORACLE_NOTES = "DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813"
ORACLE_HOME = "F081AA4AE9BF971FF6DDF03ECBD90A4FA3405930D830"
ORACLE_MEDIA = "F03D30B3E0273DA296FFFEDD2748713B4B9A54D93909"
BEARER = {"Authorization": "Bearer alice-token"}
JSON = {"Content-Type": "application/json"}


class Client:
    """One simulated user: its own keep-alive connection, reopened after a cut."""

    def __init__(self, port, rng, counts, lock):
        self.port = port
        self.rng = rng
        self.counts = counts
        self.lock = lock
        self.conn = None

    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def request(self, method, path, headers=None, body=None, cut=False):
        """Sends one request; with `cut`, reads a little of the answer and hangs up.
        Returns (status, body bytes)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = None if body is None else json.dumps(body).encode()
        self.count("sent")
        try:
            self.conn.request(method, path, body=data, headers=dict(headers or {}))
            resp = self.conn.getresponse()
            if cut:
                resp.read(self.rng.choice([1, 4096, 200_000]))
                self.conn.close()
                self.conn = None
                self.count("cut")
                return resp.status, b""
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self.count("client errors")
            if self.conn:
                self.conn.close()
            self.conn = None
            return None, b""

    def path_of(self, url):
        return urllib.parse.urlsplit(url)._replace(scheme="", netloc="").geturl()

    def box(self):
        items = self.rng.choice([
            [{"type": "file", "id": "12348"}],
            [{"type": "folder", "id": "1002"}],
            [{"type": "folder", "id": "1005"}],  # 64 MiB: usually cut
        ])
        status, body = self.request("POST", "/2.0/zip_downloads", {**BEARER, **JSON}, {"items": items})
        if status != 202:
            return
        created = json.loads(body)
        big = items[0]["id"] == "1005"
        self.request("GET", self.path_of(created["download_url"]), cut=big or self.rng.random() < 0.2)
        self.request("GET", self.path_of(created["status_url"]), BEARER)

    def onlyoffice(self):
        status, _ = self.request("PUT", "/api/2.0/files/fileops/bulkdownload", {**BEARER, **JSON},
                                 {"fileIds": [12348], "folderIds": [1002]})
        if status != 200:
            return
        for _ in range(5):
            status, body = self.request("GET", "/api/2.0/files/fileops", BEARER)
            ops = json.loads(body).get("response", []) if status == 200 else []
            done = [op for op in ops if op.get("finished") and op.get("url")]
            if done:
                self.request("GET", self.path_of(done[0]["url"]), BEARER, cut=self.rng.random() < 0.2)
                return
        self.request("PUT", "/api/2.0/files/fileops/terminate", BEARER)

    def oracle(self):
        big = self.rng.random() < 0.3
        folder, ids = (ORACLE_HOME, ORACLE_MEDIA) if big else (ORACLE_FOLDER, ORACLE_NOTES)
        status, body = self.request("POST", f"/documents/api/1.2/folders/{folder}/_download",
                                    {**BEARER, **JSON}, {"idList": ids})
        if status != 200:
            return
        job = self.path_of(json.loads(body)["Location"])
        if self.rng.random() < 0.15:
            self.request("DELETE", job, BEARER)
            return
        for _ in range(6):
            status, body = self.request("GET", job, BEARER)
            if status == 200 and json.loads(body).get("progress") == "SUCCEEDED":
                headers = dict(BEARER)
                if self.rng.random() < 0.3:
                    headers["Range"] = "bytes=100-"
                self.request("GET", job + "/package", headers, cut=big)
                return

    def itslearning(self):
        base = "/restapi/personal/yourfiles/files/zip"
        status, body = self.request("POST", f"{base}/v1?access_token=alice-token", JSON, {"FileIds": [12348]})
        if status != 200:
            return
        job = json.loads(body)["JobId"]
        for _ in range(4):
            status, body = self.request("GET", f"{base}/{job}/v1?access_token=alice-token")
            url = json.loads(body).get("DownloadUrl") if status == 200 else None
            if url:
                self.request("GET", self.path_of(url), cut=self.rng.random() < 0.2)
                return

    def dropbox(self):
        # One request creates and streams; the media folder (64 MiB) is usually cut.
        path = self.rng.choice(["/Documents", "/Documents/Reports", "/Media", "/Nope"])
        arg = json.dumps({"path": path})
        self.request("POST", "/2/files/download_zip", {**BEARER, "Dropbox-API-Arg": arg},
                     cut=path == "/Media" or self.rng.random() < 0.2)

    def run(self, deadline):
        flows = [self.box, self.onlyoffice, self.oracle, self.itslearning, self.dropbox]
        while time.monotonic() < deadline:
            self.rng.choice(flows)()
            self.count("flows")
        if self.conn:
            self.conn.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def control(port, method, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return json.loads(body) if body else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "zipgate"))
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--journal", type=int, default=400_000)
    a = ap.parse_args()

    server = subprocess.Popen(
        [a.binary, "serve", "--listen", "127.0.0.1:0", "--journal", str(a.journal),
         # Every request must stay in the journal for the count check: the
         # byte cap (4 MiB by default) would drop the oldest first.
         "--journal-bytes", str(a.journal * 1024),
         # Many clients share the fixture's two users.
         "--max-jobs-per-user", "10000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    failures = []
    try:
        port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
        time.sleep(0.5)  # let the CRC warmer finish before the baseline
        baseline = rss_kib(server.pid)
        counts, lock = {}, threading.Lock()
        deadline = time.monotonic() + a.seconds
        clients = [Client(port, random.Random(i), counts, lock) for i in range(a.clients)]
        threads = [threading.Thread(target=c.run, args=(deadline,)) for c in clients]
        peak = baseline
        started = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_kib(server.pid))
            time.sleep(0.1)
        took = time.monotonic() - started
        time.sleep(1.0)  # cut downloads end on the server side
        after_run = rss_kib(server.pid)

        health = control(port, "GET", "/_zipgate/health")
        jobs = control(port, "GET", "/_zipgate/jobs")["jobs"]
        journal = control(port, "GET", "/_zipgate/requests")["requests"]
        unanswered = [r for r in journal if r["status"] is None]
        by_status = {}
        for r in journal:
            by_status[r["status"]] = by_status.get(r["status"], 0) + 1
        downloading = [j for j in jobs if j["state"] == "downloading"]
        control(port, "POST", "/_zipgate/reset")
        time.sleep(0.5)
        after_reset = rss_kib(server.pid)

        print(f"soak: {a.clients} clients for {took:.1f} s: {counts.get('flows', 0)} flows, "
              f"{counts.get('sent', 0)} requests ({counts.get('sent', 0) / took:.0f}/s), "
              f"{counts.get('cut', 0)} downloads cut by the client, "
              f"{counts.get('client errors', 0)} client-side errors")
        print(f"  journal: {len(journal)} requests, statuses {dict(sorted(by_status.items(), key=str))}")
        print(f"  jobs left: {len(jobs)} ({len(downloading)} downloading); "
              f"active streams {health['active_streams']}")
        print(f"  RSS: baseline {baseline / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
              f"after the run {after_run / 1024:.1f} MiB, after reset {after_reset / 1024:.1f} MiB")

        if counts.get("sent", 0) > a.journal:
            failures.append("more requests than the journal holds; raise --journal")
        elif len(journal) != counts.get("sent", 0):
            failures.append(f"journal has {len(journal)} requests, clients sent {counts.get('sent', 0)}")
        if unanswered:
            failures.append(f"{len(unanswered)} requests without a status, e.g. {unanswered[0]}")
        if 500 in by_status:
            failures.append(f"{by_status[500]} answers were 500")
        if downloading:
            failures.append(f"{len(downloading)} jobs still downloading")
        if health["active_streams"]:
            failures.append(f"{health['active_streams']} engine threads still streaming")
        if counts.get("client errors", 0):
            failures.append(f"{counts['client errors']} requests failed on the client side")
        if after_reset > baseline * 1.5 + 8 * 1024:
            failures.append("RSS after reset is not near the baseline")
    finally:
        server.terminate()
        server.wait(timeout=10)
    for failure in failures:
        print(f"  FAIL: {failure}")
    print("  soak: " + ("FAILED" if failures else "every check passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
