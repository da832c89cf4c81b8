#!/usr/bin/env python3
"""Drive zipgate's ONLYOFFICE dialect (Workspace flavour) with the two Workspace
clients on PyPI, `onlyoffice` 0.1.0 (onlyoffice/OnlyOffice.py, class OnlyOffice)
and `pyonlyoffice` 0.0.4 (pyonlyoffice/pyonlyoffice.py, class PyOnlyOffice),
and check that they fail or succeed exactly where they would against a real
Community Server.

Usage: PY tests/clients/onlyoffice_pypi.py BASE_URL [v11]
  BASE_URL  a zipgate serving the embedded default fixture with the ONLYOFFICE
            dialect in its default (workspace) flavour, e.g. http://127.0.0.1:8080
  v11       the server runs with `onlyoffice.bulk_link_v11=true` (a v11 portal)

PY is the venv tests/run makes from tests/requirements-onlyoffice-pypi.txt
(.venv-onlyoffice-pypi): pyonlyoffice pins requests<2.29, whose urllib3<1.27
cannot sit next to docspace-api-sdk's urllib3>=2.1 in .venv.

Both packages share one flow (pyonlyoffice is a copy of onlyoffice's):
`__init__` -> `authenticate` POSTs api/2.0/authentication as a form
(`username`, `password`) and keeps `{"Authorization": <token>}` (no Bearer);
`download(ids, filename)` PUTs api/2.0/files/fileops/bulkdownload as a form
(`fileIds=…&fileIds=…`), polls GET api/2.0/files/fileops (`getFileops` /
`get_fileops`, every 2 s, up to 60 times) until no operation is unfinished, and
then GETs the link it builds itself,
Products/Files/HttpHandlers/filehandler.ashx?action=bulk&ext=.zip, never the
finished operation's `url` (`…?action=bulk&filename=…`). Neither checks a
status: whatever body comes back is written to `filename` and `download`
returns True.

A v11 portal stored the archive as `download.zip`, so that link works there. A
v12 portal does not, and the link answers an empty 404: the packages then
"succeed" (True, no exception) with an empty file. This script asserts that,
and with `v11` it asserts the zip instead.

Exits 0 when every check passes; otherwise prints each failed check with the
values it saw and exits 1 (2 on wrong usage). The last stdout line is
`onlyoffice_pypi: N passed, N failed`.
"""

import contextlib
import importlib
import importlib.metadata
import io
import os
import sys
import tempfile
import time
import zipfile

from harness import Checks, expect, journal, open_zip

NAME = "onlyoffice_pypi"
LOGIN, PASSWORD, TOKEN = "alice@example.com", "alice-password", "alice-token"
FILES = ["12348", "12345"]  # notes.md, Reports/Q1/report.pdf
WANT_NAMES = ["notes.md", "report.pdf"]
NOTES = "# Notes\n\n- ship the zip\n- test every reader\n".encode()
LEGACY = "/Products/Files/HttpHandlers/filehandler.ashx?action=bulk&ext=.zip"
OP_URL = "/Products/Files/HttpHandlers/filehandler.ashx?action=bulk&filename="

# (distribution, module, class, pinned version)
PACKAGES = [
    ("onlyoffice", "onlyoffice", "OnlyOffice", "0.1.0"),
    ("pyonlyoffice", "pyonlyoffice", "PyOnlyOffice", "0.0.4"),
]


@contextlib.contextmanager
def recording_gets():
    """Record every requests.get the package makes (url, response), without
    changing what it gets back. Both packages call the module-level
    `requests.get` (`import requests`)."""
    import requests

    real = requests.get
    seen = []

    def get(url, *args, **kwargs):
        response = real(url, *args, **kwargs)
        seen.append((url, response))
        return response

    requests.get = get
    try:
        yield seen
    finally:
        requests.get = real


def check_package(checks, base, v11, number, dist, module_name, class_name, version):
    state, step = checks.state, checks.step
    key = dist

    @step(f"{number}.1 {dist}=={version} imports")
    def _():
        have = importlib.metadata.version(dist)
        expect(f"{dist} {version} is installed", have == version, have)
        state[f"{key}.module"] = importlib.import_module(module_name)

    @step(
        f"{number}.2 {class_name}(BASE_URL, login, password): POST api/2.0/authentication form -> "
        f"Authorization: {TOKEN} (no Bearer)",
        needs=(f"{key}.module",),
    )
    def _():
        module = state[f"{key}.module"]
        client = getattr(module, class_name)(base, LOGIN, PASSWORD)
        expect("the client keeps {'Authorization': token}", client.auth == {"Authorization": TOKEN}, client.auth)
        state[f"{key}.client"] = client

    if v11:
        label = f"{number}.3 {class_name}.download({FILES}) -> True, the legacy link ?action=bulk&ext=.zip answers the zip (v11)"
    else:
        label = (
            f"{number}.3 {class_name}.download({FILES}) -> True but an empty file: the legacy link "
            "?action=bulk&ext=.zip answers an empty 404 (v12), the operation's url goes unused"
        )

    @step(label, needs=(f"{key}.client",))
    def _():
        client = state[f"{key}.client"]
        since = max([r["id"] for r in journal(base)] or [0])
        with tempfile.TemporaryDirectory() as tmp:
            target = os.path.join(tmp, "out.zip")
            printed = io.StringIO()
            with recording_gets() as gets, contextlib.redirect_stdout(printed):
                ok = client.download(list(FILES), target)
            with open(target, "rb") as f:
                written = f.read()
        sleeps = printed.getvalue().count("Sleep ")
        print(f"      {dist}: download returned {ok!r} after {sleeps} sleep(s) of 2 s; wrote {len(written)} bytes")
        expect("download returns True (it only looks at fileops, never at the archive's status)", ok is True, ok)

        # The finished operation offered its url; the package did not take it.
        offered = []
        for url, response in gets:
            if url == f"{base}/api/2.0/files/fileops":
                for op in response.json().get("response") or []:
                    if op.get("finished") and op.get("url"):
                        offered.append(op["url"])
        expect(f"a fileops answer lists the finished op with its url …{OP_URL}…", any(OP_URL in u for u in offered), offered)
        archive_gets = [(url, response) for url, response in gets if "filehandler.ashx" in url]
        expect(f"the package GETs exactly one archive link, {LEGACY}", [u for u, _ in archive_gets] == [base + LEGACY], [u for u, _ in archive_gets])
        expect("it never GETs the operation's url", not any(u in offered for u, _ in gets), offered)
        response = archive_gets[0][1]

        # What zipgate's journal saw for that GET.
        seen = journal(base, after=since, path_prefix="/Products/Files/HttpHandlers/filehandler.ashx")
        expect("the journal has one archive GET, query action=bulk&ext=.zip", [r["query"] for r in seen] == ["action=bulk&ext=.zip"], seen)

        if v11:
            expect("the legacy link answers 200", response.status_code == 200, (response.status_code, response.content[:64]))
            expect("Content-Type is application/zip", response.headers.get("Content-Type") == "application/zip", dict(response.headers))
            expect("the journal records 200", seen[0]["status"] == 200, seen[0])
            zf = open_zip("written file", written)
            names = sorted(zf.namelist())
            expect(f"entry names are exactly {WANT_NAMES}", names == WANT_NAMES, names)
            expect("notes.md is file 12348", zf.read("notes.md") == NOTES, zf.read("notes.md"))
            expect("report.pdf starts with %PDF", zf.read("report.pdf")[:4] == b"%PDF", zf.read("report.pdf")[:16])
        else:
            expect("the legacy link answers 404", response.status_code == 404, (response.status_code, response.content[:64]))
            expect("the 404 body is empty", response.content == b"", response.content[:64])
            expect("the journal records 404 and 0 bytes", (seen[0]["status"], seen[0]["bytes_sent"]) == (404, 0), seen[0])
            expect("the package wrote the empty body: a 0-byte file", written == b"", written[:64])
            expect("the written file is not a zip", not zipfile.is_zipfile(io.BytesIO(written)), written[:64])


def main(base, v11):
    checks = Checks(NAME)
    for number, package in enumerate(PACKAGES, start=1):
        check_package(checks, base, v11, number, *package)
    return checks.report()


if __name__ == "__main__":
    t0 = time.monotonic()
    args = sys.argv[1:]
    if len(args) == 1 or (len(args) == 2 and args[1] == "v11"):
        rc = main(args[0].rstrip("/"), len(args) == 2)
    else:
        print(f"usage: {NAME}.py BASE_URL [v11]", file=sys.stderr)
        rc = 2
    print(f"{NAME}: {time.monotonic() - t0:.2f}s", file=sys.stderr)
    sys.exit(rc)
