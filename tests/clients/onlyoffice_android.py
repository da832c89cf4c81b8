#!/usr/bin/env python3
"""Drive zipgate's ONLYOFFICE dialect (Workspace flavour) the way the official
Android app (ONLYOFFICE Documents, app.documents.core.network.manager.ManagerService
and DownloadWork) talks to a Community Server portal. Standard library only.

Usage: PY tests/clients/onlyoffice_android.py BASE_URL
  BASE_URL  a zipgate serving the embedded default fixture with the ONLYOFFICE
            dialect in its default (workspace) flavour, e.g. http://127.0.0.1:8080

The app's flow: PUT api/2.0/files/fileops/bulkdownload with a JSON body of string
ids and `Authorization: Bearer <token>`, read `response[0]`, poll GET
api/2.0/files/fileops (the app every 500 ms, here every 300 ms, bounded), find the
operation by id, and once it is `finished` GET its `url` with only
`Cookie: asc_auth_key=<token>`.

Exits 0 when every check passes; otherwise prints each failed check with the
values it saw and exits 1. The last stdout line is
`onlyoffice_android: N passed, N failed`.
"""

import json
import os
import re
import socket
import time
import urllib.parse

from harness import Checks, expect, http, open_zip, run

NAME = "onlyoffice_android"
TOKEN = "alice-token"
POLL_EVERY = 0.3
POLL_FOR = 10.0
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def api_headers():
    # BaseInterceptor: "Bearer " + token; Retrofit/Gson JSON.
    return {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def raw_get(url, headers):
    """GET over a bare socket so that header values arrive exactly as sent
    (http.client strips the leading whitespace of a value). Returns
    (status, [(name, raw value)], body)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    status = int(head_lines[0].split(" ")[1])
    raw_headers = []
    for line in head_lines[1:]:
        name, _, value = line.partition(":")
        raw_headers.append((name, value))  # value keeps everything after the colon
    length = None
    for name, value in raw_headers:
        if name.lower() == "content-length":
            length = int(value.strip())
        if name.lower() == "transfer-encoding" and "chunked" in value.lower():
            rest = dechunk(rest)
    body = rest if length is None else rest[:length]
    return status, raw_headers, body


def dechunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


def start_download(base, body, what):
    """PUT bulkdownload like the app; returns `response[0]` (the app reads index 0)."""
    reply = http(
        "PUT",
        f"{base}/api/2.0/files/fileops/bulkdownload",
        api_headers(),
        json.dumps(body).encode(),
    )
    expect(f"{what}: PUT bulkdownload answers 200", reply.status == 200, reply)
    ctype = reply.header("Content-Type") or ""
    expect(f"{what}: Content-Type is application/json", ctype.split(";")[0].strip() == "application/json", ctype)
    doc = reply.json(what)
    expect(f"{what}: status 0, statusCode 200", doc.get("status") == 0 and doc.get("statusCode") == 200, doc)
    ops = doc.get("response")
    expect(f"{what}: response is a non-empty list", isinstance(ops, list) and len(ops) >= 1, doc)
    expect(f"{what}: count equals len(response)", doc.get("count") == len(ops), doc)
    op = ops[0]
    expect(f"{what}: response[0].id is a lowercase GUID", isinstance(op.get("id"), str) and GUID.match(op["id"]), op)
    expect(f"{what}: response[0].operation is 3 (Download)", op.get("operation") == 3, op)
    expect(f"{what}: response[0].finished is false", op.get("finished") is False, op)
    expect(f"{what}: response[0].processed is a string", isinstance(op.get("processed"), str), op)
    expect(f"{what}: response[0].progress is an int 0..100", isinstance(op.get("progress"), int) and 0 <= op["progress"] <= 100, op)
    expect(f"{what}: response[0].error is null", op.get("error") is None, op)
    return op


def poll_until_finished(base, op_id, what):
    """GET fileops every POLL_EVERY seconds until the op is finished; returns
    (finished op, progress values seen)."""
    deadline = time.monotonic() + POLL_FOR
    seen = []
    while True:
        time.sleep(POLL_EVERY)
        reply = http("GET", f"{base}/api/2.0/files/fileops", {k: v for k, v in api_headers().items() if k != "Content-Type"})
        expect(f"{what}: GET fileops answers 200", reply.status == 200, reply)
        doc = reply.json(what)
        ops = doc.get("response")
        expect(f"{what}: GET fileops response is a list", isinstance(ops, list), doc)
        mine = [o for o in ops if o.get("id") == op_id]
        # The app reports an error when the op vanishes before it is finished.
        expect(f"{what}: operation {op_id} is listed until it is finished", len(mine) == 1, doc)
        op = mine[0]
        seen.append(op.get("progress"))
        print(f"      {what}: progress {op.get('progress')}% processed {op.get('processed')!r} finished {op.get('finished')}")
        expect(f"{what}: progress is an int 0..100", isinstance(op.get("progress"), int) and 0 <= op["progress"] <= 100, op)
        if op.get("finished"):
            return op, seen
        expect(f"{what}: finished within {POLL_FOR:.0f} s", time.monotonic() < deadline, seen)


def check_finished(op, base, what):
    expect(f"{what}: finished op has error null", op.get("error") is None, op)
    expect(f"{what}: finished op has progress 100", op.get("progress") == 100, op)
    url = op.get("url")
    expect(f"{what}: finished op has a url on BASE_URL", isinstance(url, str) and url.startswith(base + "/"), op)
    expect(
        f"{what}: url is …/Products/Files/HttpHandlers/filehandler.ashx?action=bulk&filename=…",
        "/Products/Files/HttpHandlers/filehandler.ashx?action=bulk&filename=" in url,
        url,
    )
    return url


def fetch_archive(url, what):
    """GET the url the way DownloadWork does: only the cookie, no Authorization."""
    reply = http("GET", url, {"Cookie": f"asc_auth_key={TOKEN}"}, timeout=15)
    expect(f"{what}: archive GET answers 200", reply.status == 200, reply)
    ctype = reply.header("Content-Type")
    expect(f"{what}: Content-Type is application/zip", ctype == "application/zip", ctype)
    length = reply.header("Content-Length")
    expect(f"{what}: Content-Length equals the bytes received ({len(reply.body)})", length == str(len(reply.body)), length)
    return reply


def main(base):
    checks = Checks(NAME)
    state, step = checks.state, checks.step

    @step("1 PUT bulkdownload fileIds [12345, 34325] folderIds [1004] -> response[0] queued")
    def _():
        op = start_download(base, {"fileIds": ["12345", "34325"], "folderIds": ["1004"]}, "PUT")
        state["op"] = op

    @step("2 poll GET fileops every 300 ms until finished", needs=("op",))
    def _():
        op, seen = poll_until_finished(base, state["op"]["id"], "poll")
        state["url"] = check_finished(op, base, "poll")
        expect("poll: progress never goes down", seen == sorted(seen), seen)
        expect("poll: processed is '3' (two files and Empty/)", op.get("processed") == "3", op)

    @step("3 the finished operation is listed once, then no more", needs=("url",))
    def _():
        reply = http("GET", f"{base}/api/2.0/files/fileops", {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"})
        expect("GET fileops answers 200", reply.status == 200, reply)
        doc = reply.json("GET fileops")
        ids = [o.get("id") for o in doc.get("response") or []]
        expect("the finished op is gone from the list", state["op"]["id"] not in ids, doc)

    @step("4 GET url with Cookie asc_auth_key only -> zip of report.pdf, report (1).pdf, Empty/", needs=("url",))
    def _():
        reply = fetch_archive(state["url"], "archive")
        state["archive"] = reply.body
        zf = open_zip("archive", reply.body)
        names = zf.namelist()
        want = ["Empty/", "report (1).pdf", "report.pdf"]
        expect(f"entry names are exactly {want}", sorted(names) == want and len(names) == 3, names)
        first, second = zf.read("report.pdf"), zf.read("report (1).pdf")
        expect("report.pdf starts with %PDF", first[:4] == b"%PDF", first[:16])
        expect("report (1).pdf starts with %PDF", second[:4] == b"%PDF", second[:16])
        expect("report.pdf is file 12345 (Q1, requested first)", b"/Count 0>>" in first, first)
        expect("report (1).pdf is file 34325 (Q2)", b"/Count 0 >>" in second, second)

    @step("5 Range: bytes=10-99 -> 206, Content-Range ' bytes 10-99/<total>', the right slice", needs=("url", "archive"))
    def _():
        full = state["archive"]
        total = len(full)
        status, headers, body = raw_get(state["url"], {"Cookie": f"asc_auth_key={TOKEN}", "Range": "bytes=10-99"})
        expect("range GET answers 206", status == 206, (status, headers, body[:64]))
        ranges = [v for n, v in headers if n.lower() == "content-range"]
        expect("one Content-Range header", len(ranges) == 1, headers)
        raw = ranges[0]
        print(f"      raw Content-Range header value (after the colon): {raw!r}")
        # The vendor writes the value with a leading space; on the wire that is
        # "Content-Range:  bytes …" (the separator space plus the vendor's).
        want = f" bytes 10-99/{total}"
        if os.environ.get("ZIPGATE_REPLICAS"):
            # Through a load balancer the wire is HAProxy's: it writes every
            # header as 'Name: value', dropping the value's leading space
            # (whitespace there is not significant, RFC 9110 §5.5).
            expect(f"Content-Range value, through HAProxy, is {want.strip()!r}", raw.strip() == want.strip(), raw)
        else:
            expect(f"Content-Range value is {want!r}: the wire has 'Content-Range:  bytes …' (two spaces)", raw == " " + want, raw)
        via_urllib = http("GET", state["url"], {"Cookie": f"asc_auth_key={TOKEN}", "Range": "bytes=10-99"})
        expect("urllib sees 206 too", via_urllib.status == 206, via_urllib)
        parsed = via_urllib.header("Content-Range")
        print(f"      Content-Range as urllib parses it: {parsed!r}")
        expect(f"urllib's Content-Range, stripped, is {want.strip()!r}", (parsed or "").strip() == want.strip(), parsed)
        accept = [v.strip() for n, v in headers if n.lower() == "accept-ranges"]
        expect("Accept-Ranges: bytes", accept == ["bytes"], headers)
        expect("the 90 bytes equal full[10:100]", body == full[10:100], (len(body), body[:32], full[10:42]))
        length = [v.strip() for n, v in headers if n.lower() == "content-length"]
        expect("Content-Length is 90", length == ["90"], headers)

    @step("6 GET url without any auth -> 403, empty body", needs=("url",))
    def _():
        reply = http("GET", state["url"])
        expect("no-auth archive GET answers 403", reply.status == 403, reply)
        expect("the 403 body is empty", reply.body == b"", reply.body)

    @step("7 folder 1002 alone -> Documents.zip with the folder's contents at the root", needs=("url",))
    def _():
        op = start_download(base, {"folderIds": ["1002"]}, "PUT 1002")
        done, _ = poll_until_finished(base, op["id"], "poll 1002")
        url = check_finished(done, base, "poll 1002")
        reply = fetch_archive(url, "Documents")
        disposition = reply.header("Content-Disposition") or ""
        expect(
            "Content-Disposition names Documents.zip",
            re.fullmatch(r'attachment; ?filename="?Documents\.zip"?', disposition) is not None,
            disposition,
        )
        zf = open_zip("Documents", reply.body)
        names = zf.namelist()
        for want in (
            "Reports/Q1/report.pdf",
            "Reports/Q1/summary.txt",
            "Reports/Q2/report.pdf",
            "Empty/",
            "Überblick – 日本語.txt",
            "notes.md",
        ):
            expect(f"the archive has {want!r}", want in names, names)
        expect("no entry starts with 'Documents/'", not any(n.startswith("Documents/") for n in names), names)
        info = zf.getinfo("Überblick – 日本語.txt")
        expect("the non-ASCII name has the UTF-8 flag (0x800)", info.flag_bits & 0x800, info.flag_bits)
        text = zf.read("Überblick – 日本語.txt").decode("utf-8")
        expect("the non-ASCII entry contains 'Grüße'", "Grüße" in text, text)

    @step('8 PUT {"fileIds":[],"folderIds":[]} -> 403, error.message "Bad request."')
    def _():
        reply = http(
            "PUT",
            f"{base}/api/2.0/files/fileops/bulkdownload",
            api_headers(),
            json.dumps({"fileIds": [], "folderIds": []}).encode(),
        )
        expect("empty lists answer 403", reply.status == 403, reply)
        doc = reply.json("empty lists")
        # ManagerService parses error bodies as error.message.
        message = (doc.get("error") or {}).get("message")
        expect('error.message is "Bad request."', message == "Bad request.", doc)
        expect("status 1, statusCode 403", doc.get("status") == 1 and doc.get("statusCode") == 403, doc)
        expect("no response key in an error", "response" not in doc, doc)

    return checks.report()


if __name__ == "__main__":
    run(NAME, main)
