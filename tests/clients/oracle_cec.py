#!/usr/bin/env python3
"""Drive zipgate's Oracle Content Management dialect the way Oracle's `cec`
toolkit talks to OCM (no public SDK calls these routes): a Bearer token, JSON
bodies with `X-REQUESTED-WITH: XMLHttpRequest` and the toolkit's app key,
the job URL taken from the `Location` header, status polled until
`SUCCEEDED`, the `links` href followed, a download cut part-way and resumed
with `Range`, and the zip checked with Python's zipfile and bsdtar. Then
injected faults: a job stuck in PROCESSING that the polling loop gives up
on, a failed job, and a download cut by the server that `unzip -t` rejects.

Usage: PY tests/clients/oracle_cec.py BASE_URL  (zipgate on its default fixture)
"""

import json
import os
import subprocess
import tempfile
import time
from http.client import IncompleteRead
import urllib.request

from harness import Checks, add_fault, expect, http, open_zip, run

NAME = "oracle_cec"
DOCUMENTS = "FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D"
NOTES = "DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813"
EMPTY = "FE27E70CA140E819250B4D365F48D86BC9097E77B3EE"
HOME = "F081AA4AE9BF971FF6DDF03ECBD90A4FA3405930D830"
MEDIA = "F03D30B3E0273DA296FFFEDD2748713B4B9A54D93909"
HEADERS = {
    "Authorization": "Bearer alice-token",
    "X-Oracle-Ocm-App-Key": "o:5a64a808220a4b1295fd80bc70531382",
}
POLL_EVERY = 0.2
POLL_FOR = 10.0


def post_job(base, folder, ids):
    headers = dict(HEADERS, **{"Content-Type": "application/json", "X-REQUESTED-WITH": "XMLHttpRequest"})
    body = json.dumps({"idList": ",".join(ids)}).encode()
    return http("POST", f"{base}/documents/api/1.2/folders/{folder}/_download", headers, body)


class PollTimeout(AssertionError):
    def __init__(self, message, seen):
        super().__init__(message)
        self.seen = seen


def wait_for_success(job_url, poll_for=POLL_FOR):
    deadline = time.monotonic() + poll_for
    seen = []
    while time.monotonic() < deadline:
        reply = http("GET", job_url, HEADERS)
        expect("status answers 200", reply.status == 200, reply)
        status = reply.json("status")
        seen.append(status["progress"])
        if status["progress"] == "SUCCEEDED":
            return status, seen
        expect("progress is PENDING or PROCESSING while it runs", status["progress"] in ("PENDING", "PROCESSING"), status)
        time.sleep(POLL_EVERY)
    raise PollTimeout(f"no SUCCEEDED within {poll_for}s; saw {seen}", seen)


def read_part(url, limit):
    """Read `limit` bytes of a download, then drop the connection (a cut)."""
    req = urllib.request.Request(url, headers=HEADERS)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read(limit), int(resp.headers["Content-Length"])


def main(base):
    checks = Checks(NAME)
    state, step = checks.state, checks.step

    @step("1 POST _download of notes.md and the empty folder -> 200 with the job's Location")
    def _():
        reply = post_job(base, DOCUMENTS, [NOTES, EMPTY])
        expect("POST answers 200", reply.status == 200, reply)
        body = reply.json("POST")
        expect("keys in the documented order", list(body) == ["Location", "errorCode", "id", "idList", "parentID", "type"], body)
        expect("errorCode is the string 0", body["errorCode"] == "0", body)
        expect("idList echoes prefixed ids in order", body["idList"] == f"fFileGUID:{NOTES},fFolderGUID:{EMPTY}", body)
        location = reply.header("Location")
        expect("the Location header equals the body's", location == body["Location"], (location, body["Location"]))
        expect("the job is on our origin", location.startswith(base + "/documents/api/1.2/folders/"), location)
        state["job"] = location

    @step("2 poll the status until SUCCEEDED, then follow the enclosure link", needs=("job",))
    def _():
        status, seen = wait_for_success(state["job"])
        expect("at least one poll before it succeeded", len(seen) >= 2, seen)
        expect("completed is the string true", status["completed"] == "true", status)
        link = status["links"][0]
        expect("the link is the zip enclosure", (link["rel"], link["mediaType"], link["method"]) == ("enclosure", "application/zip", "GET"), link)
        expect("the filename is OCE-YYYYMMDD.zip", status["details"]["filename"].startswith("OCE-"), status)
        reply = http("GET", link["href"], HEADERS)
        expect("package answers 200", reply.status == 200, reply)
        expect("application/zip", reply.header("Content-Type") == "application/zip", reply)
        expect("filesize matches", status["details"]["filesize"] == str(len(reply.body)), (status["details"], len(reply.body)))
        zf = open_zip("package", reply.body)
        expect("entries", zf.namelist() == ["notes.md", "Empty/"], zf.namelist())

    @step("3 a 64 MiB package cut part-way and resumed with Range is byte-identical")
    def _():
        reply = post_job(base, HOME, [MEDIA])
        expect("POST answers 200", reply.status == 200, reply)
        status, _ = wait_for_success(reply.header("Location"))
        href = status["links"][0]["href"]
        head, total = read_part(href, 5_000_000)
        rest = http("GET", href, dict(HEADERS, Range=f"bytes={len(head)}-"), timeout=60)
        expect("resume answers 206", rest.status == 206, rest)
        expect("Content-Range", rest.header("Content-Range") == f"bytes {len(head)}-{total - 1}/{total}", rest.header("Content-Range"))
        joined = head + rest.body
        expect("joined length", len(joined) == total, (len(joined), total))
        full = http("GET", href, HEADERS, timeout=60)
        expect("joined bytes equal a full download", joined == full.body, "differ")
        zf = open_zip("resumed package", joined)
        expect("entries", zf.namelist() == ["Media/", "Media/large-video.bin", "Media/photo.jpg", "Media/server.log"], zf.namelist())
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "package.zip")
            with open(path, "wb") as f:
                f.write(joined)
            listing = subprocess.run(["bsdtar", "-tf", path], capture_output=True, text=True, check=False)
            expect("bsdtar lists it", listing.returncode == 0, listing.stderr)
            expect("bsdtar entries", listing.stdout.split() == zf.namelist(), listing.stdout)

    @step("4 DELETE aborts a job; its package is refused")
    def _():
        reply = post_job(base, DOCUMENTS, [NOTES])
        job = reply.header("Location")
        deleted = http("DELETE", job, HEADERS)
        expect("DELETE answers 200", deleted.status == 200, deleted)
        expect("body", deleted.json("DELETE") == {"errorCode": "0", "type": "folder"}, deleted)
        status = http("GET", job, HEADERS).json("status")
        expect("progress ABORTED", status["progress"] == "ABORTED", status)
        package = http("GET", job + "/package", HEADERS)
        expect("package refused with 400", package.status == 400, package)

    @step("5 an id outside the folder is -96, as the toolkit would print it")
    def _():
        reply = post_job(base, HOME, [NOTES])
        expect("400", reply.status == 400, reply)
        body = reply.json("error")
        expect("errorCode -96", body["errorCode"] == "-96", body)
        # The toolkit prints `data.title || data.errorMessage`.
        expect("title", body["title"].startswith("Unable to start bulk download of files."), body)

    @step("6 a job stuck in PROCESSING (injected): the polling loop times out")
    def _():
        add_fault(base, {"match": {"dialect": "oracle", "method": "POST"}, "times": 1, "job": {"stuck": "running"}})
        reply = post_job(base, DOCUMENTS, [NOTES])
        expect("POST answers 200", reply.status == 200, reply)
        try:
            status, seen = wait_for_success(reply.header("Location"), poll_for=1.5)
        except PollTimeout as e:
            expect("it polled a few times, each seeing PROCESSING", len(e.seen) >= 3 and set(e.seen) == {"PROCESSING"}, e.seen)
        else:
            raise AssertionError(f"the stuck job succeeded: {seen}")

    @step("7 a job that fails (injected) reports FAILED")
    def _():
        add_fault(base, {"match": {"dialect": "oracle", "method": "POST"}, "times": 1, "job": {"fail": "disk full"}})
        reply = post_job(base, DOCUMENTS, [NOTES])
        for _ in range(20):
            status = http("GET", reply.header("Location"), HEADERS).json("status")
            if status["completed"] == "true":
                break
        expect("progress FAILED", status["progress"] == "FAILED", status)

    @step("8 a package cut by the server after 100000 bytes: the client sees it short, unzip -t rejects it")
    def _():
        add_fault(base, {"match": {"method": "GET", "path": "*/package"}, "times": 1, "cut": {"after_bytes": 100000, "how": "close"}})
        reply = post_job(base, HOME, [MEDIA])
        status, _ = wait_for_success(reply.header("Location"))
        href = status["links"][0]["href"]
        req = urllib.request.Request(href, headers=HEADERS)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
            raise AssertionError("the whole package arrived despite the cut")
        except IncompleteRead as e:
            partial = e.partial
        expect("exactly 100000 bytes arrived", len(partial) == 100000, len(partial))
        whole = http("GET", href, HEADERS, timeout=60).body  # the rule fired once
        with tempfile.TemporaryDirectory() as tmp:
            for name, data, ok in (("cut.zip", partial, False), ("whole.zip", whole, True)):
                path = os.path.join(tmp, name)
                with open(path, "wb") as f:
                    f.write(data)
                test = subprocess.run(["unzip", "-t", path], capture_output=True, text=True, check=False)
                expect(f"unzip -t on {name} {'passes' if ok else 'fails'}", (test.returncode == 0) == ok, test.stdout + test.stderr)

    return checks.report()


if __name__ == "__main__":
    run(NAME, main)
