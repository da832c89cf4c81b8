#!/usr/bin/env python3
"""Drive zipgate's Dropbox dialect with Dropbox's official Python SDK (dropbox 12.x).

Usage: PY tests/clients/dropbox_python.py BASE_URL
  PY        a python with tests/requirements.txt installed (dropbox==12.2.4)
  BASE_URL  where zipgate serves the embedded default fixture, e.g. http://127.0.0.1:8080

Exits 0 when every check passes; otherwise prints each failed check with the
values it saw and exits 1. The SDK is pointed at BASE_URL by overriding
Dropbox._get_route_url (it hard-codes https://content.dropboxapi.com), and its
retries are off (max_retries_on_error=0, max_retries_on_rate_limit=0), so an
error answer reaches the script as the server sent it, and a 429 does not make
the SDK retry forever.
"""

import json
import os
import re
import sys
import tempfile
import urllib.parse

import harness
from harness import CheckFailed, Checks, expect, run

try:
    import dropbox
    import requests
    from dropbox.exceptions import ApiError, AuthError, DropboxException, RateLimitError
    from dropbox.files import DownloadZipResult
except ImportError as exc:  # pragma: no cover - environment problem, not a check
    print(f"dropbox_python: cannot import dropbox ({exc}); install tests/requirements.txt", file=sys.stderr)
    sys.exit(2)

NAME = "dropbox_python"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
DOCUMENTS = {
    "Documents/",
    "Documents/Reports/",
    "Documents/Reports/Q1/",
    "Documents/Reports/Q1/report.pdf",
    "Documents/Reports/Q1/summary.txt",
    "Documents/Reports/Q2/",
    "Documents/Reports/Q2/report.pdf",
    "Documents/Empty/",
    "Documents/Überblick – 日本語.txt",
    "Documents/notes.md",
    "Documents/todo.txt",
}
PREFIX = 'Error in call to API function "files/download_zip": '

# The last HTTP response any client got. ApiError carries neither the body nor
# its error_summary, so the error steps read error_summary from here.
last = {}


def make_client(base, token):
    class LocalDropbox(dropbox.Dropbox):
        def _get_route_url(self, hostname, route_name):
            return f"{base}/{self._API_VERSION}/{route_name}"

    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    session.hooks["response"].append(lambda r, **kw: last.update(response=r))
    return LocalDropbox(token, max_retries_on_error=0, max_retries_on_rate_limit=0, session=session)


def describe(exc):
    if isinstance(exc, DropboxException):  # its repr names the request_id and the error or body
        return repr(exc)
    return f"{type(exc).__name__}: {exc}"


def expect_sdk_error(what, call, error_type, request_id=True):
    """Run `call`, which must raise `error_type` (with a request_id of 32
    lowercase hex digits, from X-Dropbox-Request-Id); return the exception."""
    try:
        result = call()
    except error_type as e:
        if request_id:
            rid = e.request_id
            expect(f"{what}: request_id is 32 lowercase hex", isinstance(rid, str) and REQUEST_ID.fullmatch(rid), describe(e))
        return e
    except Exception as e:
        raise CheckFailed(f"{what}: expected {error_type.__name__}; raised {describe(e)}") from e
    if isinstance(result, tuple):
        result[1].close()
    raise CheckFailed(f"{what}: expected {error_type.__name__}; the call succeeded and returned {result!r}")


def error_summary(what):
    """error_summary of the JSON body the SDK just turned into an ApiError."""
    resp = last.get("response")
    expect(f"{what}: the SDK got an HTTP response", resp is not None, resp)
    try:
        return json.loads(resp.content.decode("utf-8"))["error_summary"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise CheckFailed(f"{what}: no error_summary in the body ({e}); actual: {resp.content[:300]!r}") from e


def sdk_zip(what, call):
    """Call files_download_zip; return (DownloadZipResult, response, zip)."""
    result, resp = call()
    with resp:
        data = resp.content
    return result, resp, harness.open_zip(what, data)


def raw(base, headers=None, query=""):
    """POST /2/files/download_zip through urllib, with an empty body."""
    return harness.http("POST", f"{base}/2/files/download_zip{query}", headers)


def good_headers(path):
    return {"Authorization": "Bearer alice-token", "Dropbox-API-Arg": json.dumps({"path": path})}


def main(base):
    alice = make_client(base, "alice-token")
    stranger = make_client(base, "nope")
    checks = Checks(NAME, describe)
    state, step = checks.state, checks.step

    @step("1 files_download_zip('/Documents') -> metadata, a zip of the folder, octet-stream")
    def _():
        result, resp, zf = sdk_zip("/Documents", lambda: alice.files_download_zip("/Documents"))
        md = result.metadata
        got = {"name": md.name, "path_display": md.path_display, "path_lower": md.path_lower}
        want = {"name": "Documents", "path_display": "/Documents", "path_lower": "/documents"}
        expect(f"metadata is {want}", got == want, got)
        expect("id starts with 'id:' and is 25 chars", isinstance(md.id, str) and md.id.startswith("id:") and len(md.id) == 25, md.id)
        names = zf.namelist()
        expect("entry names are exactly the Documents tree", set(names) == DOCUMENTS and len(names) == len(DOCUMENTS), sorted(names))
        headers = dict(resp.headers)
        expect("Content-Type is application/octet-stream", resp.headers.get("Content-Type") == "application/octet-stream", headers)
        expect("no Accept-Ranges header", "Accept-Ranges" not in resp.headers, headers)
        state["id"] = md.id

    @step("2 files_download_zip('/documents/REPORTS') -> case-insensitive, Reports")
    def _():
        result, resp = alice.files_download_zip("/documents/REPORTS")
        resp.close()
        got = (result.metadata.name, result.metadata.path_display)
        expect("name Reports, path_display /Documents/Reports", got == ("Reports", "/Documents/Reports"), got)

    @step("3 files_download_zip_to_file('/Documents/Reports/Q1') -> a zip file on disk")
    def _():
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = os.path.join(tmp, "q1.zip")
            result = alice.files_download_zip_to_file(tmp_path, "/Documents/Reports/Q1")
            expect("returns a DownloadZipResult", isinstance(result, DownloadZipResult), result)
            expect("metadata.name is Q1", result.metadata.name == "Q1", result.metadata)
            with open(tmp_path, "rb") as f:
                zf = harness.open_zip("the saved file", f.read())
        names = zf.namelist()
        want = {"Q1/", "Q1/report.pdf", "Q1/summary.txt"}
        expect(f"entry names are exactly {sorted(want)}", set(names) == want and len(names) == 3, names)

    @step("4 by id: the id of /Documents, and id + '/Reports'", needs=("id",))
    def _():
        result, resp = alice.files_download_zip(state["id"])
        resp.close()
        expect("the id gives Documents", result.metadata.name == "Documents", result.metadata)
        result, resp = alice.files_download_zip(state["id"] + "/Reports")
        resp.close()
        expect("id + '/Reports' gives Reports", result.metadata.name == "Reports", result.metadata)

    @step("5a /Documents/nope -> ApiError path/not_found")
    def _():
        e = expect_sdk_error("/Documents/nope", lambda: alice.files_download_zip("/Documents/nope"), ApiError)
        expect("error is path/not_found", e.error.is_path() and e.error.get_path().is_not_found(), e.error)
        summary = error_summary("/Documents/nope")
        expect("error_summary starts with path/not_found/", summary.startswith("path/not_found/"), summary)

    @step("5b /Documents/notes.md (a file) -> ApiError path/not_folder")
    def _():
        e = expect_sdk_error("a file", lambda: alice.files_download_zip("/Documents/notes.md"), ApiError)
        expect("error is path/not_folder", e.error.is_path() and e.error.get_path().is_not_folder(), e.error)
        summary = error_summary("a file")
        expect("error_summary starts with path/not_folder/", summary.startswith("path/not_folder/"), summary)

    @step("5c /Documents/ (trailing slash) -> ApiError path/malformed_path")
    def _():
        e = expect_sdk_error("trailing slash", lambda: alice.files_download_zip("/Documents/"), ApiError)
        expect("error is path/malformed_path", e.error.is_path() and e.error.get_path().is_malformed_path(), e.error)

    @step("5d token 'nope' -> AuthError invalid_access_token")
    def _():
        e = expect_sdk_error("token nope", lambda: stranger.files_download_zip("/Documents"), AuthError)
        expect("error is invalid_access_token", e.error.is_invalid_access_token(), e.error)

    @step("6a raw: no Authorization (Dropbox-API-Arg only) -> 400 text/plain, Must provide ...")
    def _():
        reply = raw(base, {"Dropbox-API-Arg": json.dumps({"path": "/Documents"})})
        want = PREFIX + 'Must provide HTTP header "Authorization" or URL parameter "authorization".'
        expect("status 400", reply.status == 400, reply)
        expect("Content-Type starts with text/plain", (reply.header("Content-Type") or "").startswith("text/plain"), reply)
        expect(f"body is {want!r}", reply.body == want.encode(), reply)

    @step("6b raw: Dropbox-API-Arg {\"pat\": \"/a\"} -> 400 unknown field 'pat'")
    def _():
        reply = raw(base, {"Authorization": "Bearer alice-token", "Dropbox-API-Arg": json.dumps({"pat": "/a"})})
        want = PREFIX + "HTTP header \"Dropbox-API-Arg\": unknown field 'pat'"
        expect("status 400", reply.status == 400, reply)
        expect(f"body is {want!r}", reply.body == want.encode(), reply)

    @step("6c raw: Dropbox-API-Arg {\"path\": \"\"} -> 400 did not match pattern")
    def _():
        reply = raw(base, good_headers(""))
        expect("status 400", reply.status == 400, reply)
        expect("body contains 'did not match pattern'", b"did not match pattern" in reply.body, reply)

    @step("6d raw: authorization and arg as URL parameters -> 200, Empty/")
    def _():
        arg = urllib.parse.quote(json.dumps({"path": "/Documents/Empty"}), safe="")
        reply = raw(base, query=f"?authorization=Bearer%20alice-token&arg={arg}")
        expect("status 200", reply.status == 200, reply)
        names = harness.open_zip("URL parameters", reply.body).namelist()
        expect("the zip has exactly Empty/", names == ["Empty/"], names)
        header = reply.header("Dropbox-API-Result")
        try:
            name = json.loads(header)["metadata"]["name"]
        except (TypeError, ValueError, KeyError) as e:
            raise CheckFailed(f"Dropbox-API-Result is not JSON with metadata.name ({e}); actual: {header!r}") from e
        expect("Dropbox-API-Result metadata.name is Empty", name == "Empty", header)

    @step("6e raw: Range: bytes=0-9 -> 200 and the whole zip")
    def _():
        reply = raw(base, {**good_headers("/Documents"), "Range": "bytes=0-9"})
        expect("status 200, not 206", reply.status == 200, reply)
        names = harness.open_zip("with Range", reply.body).namelist()
        expect("the whole Documents zip", set(names) == DOCUMENTS and len(names) == len(DOCUMENTS), sorted(names))

    @step("7 an injected 429 -> RateLimitError backoff 1; the next call succeeds")
    def _():
        harness.add_fault(base, {"match": {"dialect": "dropbox"}, "times": 1, "respond": {"status": 429}})
        e = expect_sdk_error("injected 429", lambda: alice.files_download_zip("/Documents"), RateLimitError, False)
        expect("backoff is 1", e.backoff == 1, describe(e))
        result, resp = alice.files_download_zip("/Documents")
        resp.close()
        expect("the next call gives Documents", result.metadata.name == "Documents", result.metadata)

    return checks.report()


if __name__ == "__main__":
    run(NAME, main)
