#!/usr/bin/env python3
"""Drive zipgate's Box dialect with Box's legacy Python SDK (boxsdk 3.14.0, module boxsdk).

Usage: PY tests/clients/box_legacy_python.py BASE_URL
  PY        a python with tests/requirements-boxsdk3.txt installed (.venv-boxsdk3;
            boxsdk 3.x and 10.x share the distribution name, so not .venv)
  BASE_URL  where zipgate serves the embedded default fixture, e.g. http://127.0.0.1:8080

The legacy SDK zips with one call, `client.download_zip(name, items, stream)`:
POST /2.0/zip_downloads, GET the download_url into the stream, GET the
status_url, and it returns the status merged with the create response. Its
base URLs are class attributes of boxsdk.config.API, set here before any client
exists. Developer tokens come from a callback (the SDK's default would prompt on
stdin); a 401 makes the SDK ask the callback once for a new token and retry once.

Exits 0 when every check passes; otherwise prints each failed check with the
values it saw and exits 1. Retries on 429/5xx are capped at one attempt, so an
error answer reaches the script as the server sent it.
"""

import io
import logging
import re
import sys

import harness
from harness import CheckFailed, Checks, expect, run

try:
    from boxsdk import BoxAPIException, Client
    from boxsdk.auth import DeveloperTokenAuth
    from boxsdk.config import API
    from boxsdk.version import __version__ as BOXSDK_VERSION
except ImportError as exc:  # pragma: no cover - environment problem, not a check
    print(f"box_legacy_python: cannot import boxsdk 3.x ({exc}); install tests/requirements-boxsdk3.txt", file=sys.stderr)
    sys.exit(2)

NAME = "box_legacy_python"
RANDOM_PDF = re.compile(r"^[0-9a-z]{6}\.pdf$")
BODY_REQUEST_ID = re.compile(r"^[0-9a-z]{16}$")
HEADER_REQUEST_ID = re.compile(r"^0[0-9a-f]{32}$")


def point_at(base):
    """Aim every Box URL of the SDK at zipgate. API is instantiated per Session
    and OAuth2, so the class attributes are what counts."""
    API.BASE_API_URL = base + "/2.0"
    API.UPLOAD_URL = base + "/api/2.0"
    API.OAUTH2_API_URL = base + "/oauth2"
    API.OAUTH2_AUTHORIZE_URL = base + "/oauth2/authorize"
    API.MAX_RETRY_ATTEMPTS = 1  # 429/5xx/non-JSON status: give up after one retry at most


class TokenSource:
    """The get_new_token_callback: always the same token, counting how often the
    SDK asks (once when DeveloperTokenAuth is made, then once per refresh)."""

    def __init__(self, token):
        self.token = token
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.token


def make_client(token):
    source = TokenSource(token)
    client = Client(DeveloperTokenAuth(get_new_token_callback=source))
    return client, source


def describe_api_exception(e):
    body = e.network_response.content if e.network_response is not None else None
    return (
        f"BoxAPIException(status={e.status!r}, code={e.code!r}, message={e.message!r}, request_id={e.request_id!r}, "
        f"box-request-id={(e.headers or {}).get('box-request-id')!r}, url={e.url!r}, method={e.method!r}, body={body!r})"
    )


def describe(exc):
    if isinstance(exc, BoxAPIException):
        return describe_api_exception(exc)
    return f"{type(exc).__name__}: {exc}"


def expect_api_exception(what, call, status, code):
    """Run `call`, which must raise BoxAPIException with this status and code. As
    on Box, the body's request_id and the box-request-id header are two ids.
    `code` None: Box's gateway answer (a 401), whose body is empty."""
    try:
        result = call()
    except BoxAPIException as e:
        headers = e.headers or {}  # requests' CaseInsensitiveDict
        expect(f"{what}: status {status}", e.status == status, describe_api_exception(e))
        expect(f"{what}: code {code!r}", e.code == code, describe_api_exception(e))
        header = headers.get("box-request-id")
        expect(f"{what}: box-request-id is 0 + 32 hex", isinstance(header, str) and HEADER_REQUEST_ID.match(header), describe_api_exception(e))
        if code is None:
            body = e.network_response.content if e.network_response is not None else None
            expect(f"{what}: no body", body == b"" and e.request_id is None and e.message is None, describe_api_exception(e))
            return e
        expect(f"{what}: request_id is 16 of [0-9a-z]", isinstance(e.request_id, str) and BODY_REQUEST_ID.match(e.request_id), describe_api_exception(e))
        expect(f"{what}: request_id differs from the box-request-id header", e.request_id != header, describe_api_exception(e))
        return e
    except Exception as e:  # a BoxOAuthException, a transport error, ...
        raise CheckFailed(f"{what}: expected BoxAPIException {status} {code}; raised {describe(e)}") from e
    raise CheckFailed(f"{what}: expected BoxAPIException {status} {code}; the call succeeded and returned {result!r}")


def download(client, name, items):
    """client.download_zip into a BytesIO: (status as a dict, zip bytes)."""
    stream = io.BytesIO()
    status = client.download_zip(name, items, stream)
    expect("download_zip returns a dict", isinstance(status, dict), type(status).__name__)
    return status, stream.getvalue()


def counts(status):
    return {
        k: status.get(k)
        for k in ("total_file_count", "downloaded_file_count", "skipped_file_count", "skipped_folder_count", "state")
    }


def field(entry, key):
    """A name_conflicts entry: a plain dict (the translator does not descend into
    the inner lists); were it translated into a boxsdk File, item access works too."""
    try:
        return entry[key]
    except (KeyError, TypeError):
        return None


def conflict_view(group):
    return [{k: field(c, k) for k in ("id", "type", "original_name", "download_name")} for c in group]


def main(base):
    point_at(base)
    # boxsdk logs every error answer (colour codes, headers, body) to stderr
    # through logging's last resort; the checks print what they saw instead.
    logging.getLogger("boxsdk").setLevel(logging.CRITICAL)
    alice, _ = make_client("alice-token")
    checks = Checks(NAME, describe)
    step = checks.step
    print(f"boxsdk {BOXSDK_VERSION}", file=sys.stderr)
    expect_version = BOXSDK_VERSION.startswith("3.")

    @step("0 the SDK is boxsdk 3.x")
    def _():
        expect("boxsdk version is 3.x", expect_version, BOXSDK_VERSION)

    @step("1 download_zip of file 12348 (notes.md) + folder 1004 (Empty)")
    def _():
        status, data = download(alice, "Notes", [alice.file("12348"), alice.folder("1004")])
        zf = harness.open_zip("content", data)
        names = sorted(zf.namelist())
        expect("entry names are exactly ['Empty/', 'notes.md']", names == ["Empty/", "notes.md"], names)
        want = {
            "total_file_count": 1,
            "downloaded_file_count": 1,
            "skipped_file_count": 0,
            "skipped_folder_count": 0,
            "state": "succeeded",
        }
        expect(f"status is {want}", counts(status) == want, status)
        url = status.get("download_url")
        expect("the merged status has the create's download_url", isinstance(url, str) and url.startswith(base + "/"), status)
        expect("the merged status has the create's status_url", isinstance(status.get("status_url"), str), status)
        expect("the merged status has expires_at", isinstance(status.get("expires_at"), str), status)
        expect("the merged status has no name_conflicts", status.get("name_conflicts") == [], status)

    @step("2 Box's reference request (12345 + 34325 + folder 45678 'Q1'): both report.pdf renamed")
    def _():
        status, data = download(
            alice,
            "January Financials",
            [alice.file("12345"), alice.file("34325"), alice.folder("45678")],
        )
        conflicts = status.get("name_conflicts")
        expect("name_conflicts is one group", isinstance(conflicts, list) and len(conflicts) == 1, conflicts)
        group = conflicts[0]
        expect("the conflict group has two entries", isinstance(group, list) and len(group) == 2, group)
        view = conflict_view(group)
        expect("conflict ids are {12345, 34325}", sorted(c["id"] for c in view) == ["12345", "34325"], view)
        expect("conflict types are file", all(c["type"] == "file" for c in view), view)
        expect("original_name is report.pdf", all(c["original_name"] == "report.pdf" for c in view), view)
        expect(
            "download_name matches ^[0-9a-z]{6}\\.pdf$",
            all(isinstance(c["download_name"], str) and RANDOM_PDF.match(c["download_name"]) for c in view),
            view,
        )
        renamed = {c["download_name"] for c in view}
        expect("download names are distinct", len(renamed) == 2, view)
        zf = harness.open_zip("reference", data)
        names = set(zf.namelist())
        want = renamed | {"Q1/report.pdf", "Q1/summary.txt"}
        expect(f"the archive has {sorted(want)}", want <= names, sorted(names))
        expect("nothing else but the Q1/ folder entry", names - want <= {"Q1/"}, sorted(names))
        for name in renamed:
            head = zf.read(name)[:4]
            expect(f"{name} starts with %PDF", head == b"%PDF", head)
        got = counts(status)
        expect("state succeeded, nothing skipped", (got["state"], got["skipped_file_count"], got["skipped_folder_count"]) == ("succeeded", 0, 0), status)
        files = [n for n in names if not n.endswith("/")]
        expect(
            f"total and downloaded count the {len(files)} file entries packed",
            got["total_file_count"] == got["downloaded_file_count"] == len(files),
            status,
        )

    @step("3 file id 999999999 -> BoxAPIException 404 not_found")
    def _():
        expect_api_exception(
            "unknown file",
            lambda: download(alice, "missing", [alice.file("999999999")]),
            404,
            "not_found",
        )

    @step("4 token 'wrong-token' -> 401 with an empty body; the SDK asks the callback once, retries once, raises 401")
    def _():
        stranger, source = make_client("wrong-token")
        expect("DeveloperTokenAuth asked the callback once on creation", source.calls == 1, source.calls)
        source.calls = 0
        seen_so_far = harness.journal(base)
        after = seen_so_far[-1]["id"] if seen_so_far else 0
        e = expect_api_exception(
            "wrong token",
            lambda: download(stranger, "nope", [stranger.file("12345")]),
            401,
            None,
        )
        challenge = (e.headers or {}).get("www-authenticate", "")
        expect(
            'www-authenticate is Bearer realm="Service", error="invalid_token", ...',
            challenge.startswith('Bearer realm="Service", error="invalid_token"'),
            dict(e.headers or {}),
        )
        expect("the SDK asked the token callback once for a new token", source.calls == 1, source.calls)
        sent = [(r["method"], r["path"], r["status"]) for r in harness.journal(base, after=after)]
        want = [("POST", "/2.0/zip_downloads", 401)] * 2
        expect("the journal shows the create twice, both 401, and nothing else (no token endpoint)", sent == want, sent)

    @step("5 an item made unreadable before the download is skipped and counted in the status")
    def _():
        harness.add_fault(base, {"match": {"dialect": "box", "method": "POST"}, "times": 1, "job": {"unreadable": ["12346"]}})
        status, data = download(alice, "Q1", [alice.folder("45678")])
        names = sorted(harness.open_zip("after the change", data).namelist())
        expect("summary.txt is left out", names == ["Q1/", "Q1/report.pdf"], names)
        want = {
            "total_file_count": 2,
            "downloaded_file_count": 1,
            "skipped_file_count": 1,
            "skipped_folder_count": 0,
            "state": "succeeded",
        }
        expect(f"status is {want}", counts(status) == want, status)

    return checks.report()


if __name__ == "__main__":
    run(NAME, main)
