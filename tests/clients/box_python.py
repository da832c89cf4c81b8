#!/usr/bin/env python3
"""Drive zipgate's Box dialect with Box's official Python SDK (boxsdk 10.x, module box_sdk_gen).

Usage: PY tests/clients/box_python.py BASE_URL
  PY        a python with tests/requirements.txt installed (boxsdk==10.18.0)
  BASE_URL  where zipgate serves the embedded default fixture, e.g. http://127.0.0.1:8080

Exits 0 when every check passes; otherwise prints each failed check with the
values it saw and exits 1. Retries are off (max_attempts=1), so an error
answer reaches the script as the server sent it, and the run takes about a second.
"""

import re
import sys
import time
from datetime import datetime

import harness
from harness import CheckFailed, Checks, expect, run

try:
    from box_sdk_gen import (
        BaseUrls,
        BoxAPIError,
        BoxClient,
        BoxDeveloperTokenAuth,
        BoxRetryStrategy,
        CreateZipDownloadItems,
        CreateZipDownloadItemsTypeField,
        DownloadZipItems,
        DownloadZipItemsTypeField,
        NetworkSession,
        ZipDownloadStatusStateField,
    )
except ImportError as exc:  # pragma: no cover - environment problem, not a check
    print(f"box_python: cannot import box_sdk_gen ({exc}); install tests/requirements.txt", file=sys.stderr)
    sys.exit(2)

NAME = "box_python"
FILE = CreateZipDownloadItemsTypeField.FILE
FOLDER = CreateZipDownloadItemsTypeField.FOLDER
RANDOM_PDF = re.compile(r"^[0-9a-z]{6}\.pdf$")


def make_client(base, token, max_attempts=1):
    return BoxClient(
        auth=BoxDeveloperTokenAuth(token=token),
        network_session=NetworkSession(
            base_urls=BaseUrls(base_url=base, upload_url=base + "/api", oauth_2_url=base + "/oauth2"),
            retry_strategy=BoxRetryStrategy(max_attempts=max_attempts, max_retries_on_exception=0),
        ),
    )


def describe_api_error(e):
    ri = e.response_info
    return (
        f"BoxAPIError(status={ri.status_code!r}, code={ri.code!r}, request_id={ri.request_id!r}, "
        f"box-request-id={ri.headers.get('box-request-id')!r}, body={ri.raw_body!r})"
    )


def describe(exc):
    if isinstance(exc, BoxAPIError):
        return describe_api_error(exc)
    return f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"


BODY_REQUEST_ID = re.compile(r"^[0-9a-z]{16}$")
HEADER_REQUEST_ID = re.compile(r"^0[0-9a-f]{32}$")


def expect_api_error(what, call, status, code):
    """Run `call`, which must raise BoxAPIError with this status and code. As on
    Box, the body's request_id and the box-request-id header are two ids. `code`
    None: Box's gateway answer (a 401), whose body is empty."""
    try:
        result = call()
    except BoxAPIError as e:
        ri = e.response_info
        expect(f"{what}: status {status}", ri.status_code == status, describe_api_error(e))
        expect(f"{what}: code {code!r}", ri.code == code, describe_api_error(e))
        header = ri.headers.get("box-request-id")
        expect(f"{what}: box-request-id is 0 + 32 hex", isinstance(header, str) and HEADER_REQUEST_ID.match(header), describe_api_error(e))
        if code is None:
            expect(f"{what}: no body", not ri.raw_body and not ri.request_id, describe_api_error(e))
            return e
        expect(f"{what}: request_id is 16 of [0-9a-z]", isinstance(ri.request_id, str) and BODY_REQUEST_ID.match(ri.request_id), describe_api_error(e))
        expect(f"{what}: request_id differs from the box-request-id header", ri.request_id != header, describe_api_error(e))
        return e
    except Exception as e:  # a BoxSDKError that is not an API error, a transport error, ...
        raise CheckFailed(f"{what}: expected BoxAPIError {status} {code}; raised {describe(e)}") from e
    raise CheckFailed(f"{what}: expected BoxAPIError {status} {code}; the call succeeded and returned {result!r}")


def open_zip(what, data):
    # The SDK answers with a stream: check that reading it gave bytes, then the zip.
    expect(f"{what}: content is bytes", isinstance(data, bytes), type(data).__name__)
    return harness.open_zip(what, data)


def main(base):
    alice = make_client(base, "alice-token")
    bob = make_client(base, "bob-token")
    stranger = make_client(base, "wrong-token")
    checks = Checks(NAME, describe)
    state, step = checks.state, checks.step

    @step("1 create_zip_download (12345 + 34325 + folder 1004)")
    def _():
        zd = alice.zip_downloads.create_zip_download(
            [
                CreateZipDownloadItems(type=FILE, id="12345"),
                CreateZipDownloadItems(type=FILE, id="34325"),
                CreateZipDownloadItems(type=FOLDER, id="1004"),
            ],
            download_file_name="January Financials",
        )
        expect("download_url starts with BASE_URL", isinstance(zd.download_url, str) and zd.download_url.startswith(base + "/"), zd.download_url)
        expect("status_url starts with BASE_URL", isinstance(zd.status_url, str) and zd.status_url.startswith(base + "/"), zd.status_url)
        expect("download_url and status_url differ", zd.download_url != zd.status_url, zd.download_url)
        expect("expires_at parsed to a datetime", isinstance(zd.expires_at, datetime), zd.expires_at)
        expect("expires_at has a time zone", zd.expires_at.tzinfo is not None, zd.expires_at)
        raw_expires = zd.raw_data.get("expires_at")
        expect(
            "raw expires_at is YYYY-MM-DDTHH:MM:SSZ",
            isinstance(raw_expires, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", raw_expires),
            raw_expires,
        )
        conflicts = zd.name_conflicts
        expect("name_conflicts is one group", isinstance(conflicts, list) and len(conflicts) == 1, conflicts)
        group = conflicts[0]
        expect("the conflict group has two entries", isinstance(group, list) and len(group) == 2, group)
        raw = [c.to_dict() for c in group]
        expect("conflict ids are {12345, 34325}", {c.id for c in group} == {"12345", "34325"}, raw)
        expect("conflict types are file", all(c.type == "file" for c in group), raw)
        expect("original_name is report.pdf", all(c.original_name == "report.pdf" for c in group), raw)
        expect(
            "download_name matches ^[0-9a-z]{6}\\.pdf$",
            all(isinstance(c.download_name, str) and RANDOM_PDF.match(c.download_name) for c in group),
            raw,
        )
        expect("download names are distinct", group[0].download_name != group[1].download_name, raw)
        state["zd"] = zd
        state["download_names"] = {c.download_name for c in group}

    @step("2 get_zip_download_status before the content is read -> 404 not_found", needs=("zd",))
    def _():
        expect_api_error(
            "status before download",
            lambda: alice.zip_downloads.get_zip_download_status(state["zd"].status_url),
            404,
            "not_found",
        )

    @step("3 get_zip_download_content -> a zip of the two renamed pdfs and Empty/", needs=("zd", "download_names"))
    def _():
        data = alice.zip_downloads.get_zip_download_content(state["zd"].download_url).read()
        state["content_read"] = True
        zf = open_zip("content", data)
        names = zf.namelist()
        want = sorted(state["download_names"] | {"Empty/"})
        expect(f"entry names are exactly {want}", sorted(names) == want and len(names) == 3, names)
        for name in state["download_names"]:
            head = zf.read(name)[:4]
            expect(f"{name} starts with %PDF", head == b"%PDF", head)

    @step("4 get_zip_download_status after the content -> succeeded, 2 of 2", needs=("zd", "content_read"))
    def _():
        st = alice.zip_downloads.get_zip_download_status(state["zd"].status_url)
        got = {
            "total_file_count": st.total_file_count,
            "downloaded_file_count": st.downloaded_file_count,
            "skipped_file_count": st.skipped_file_count,
            "skipped_folder_count": st.skipped_folder_count,
            "state": getattr(st.state, "value", st.state),
        }
        want = {
            "total_file_count": 2,
            "downloaded_file_count": 2,
            "skipped_file_count": 0,
            "skipped_folder_count": 0,
            "state": ZipDownloadStatusStateField.SUCCEEDED.value,
        }
        expect(f"status is {want}", got == want, got)

    @step("5 second get_zip_download_content -> 404", needs=("zd", "content_read"))
    def _():
        def second():
            stream = alice.zip_downloads.get_zip_download_content(state["zd"].download_url)
            return stream.read()

        expect_api_error("second content GET", second, 404, "not_found")

    @step("6 download_zip of folder 1002 (Documents)")
    def _():
        data = alice.zip_downloads.download_zip(
            [DownloadZipItems(type=DownloadZipItemsTypeField.FOLDER, id="1002")],
            download_file_name="Documents",
        ).read()
        zf = open_zip("download_zip", data)
        names = zf.namelist()
        for want in (
            "Documents/",
            "Documents/Reports/Q1/report.pdf",
            "Documents/Empty/",
            "Documents/Überblick – 日本語.txt",
        ):
            expect(f"the archive has {want!r}", want in names, names)
        text = zf.read("Documents/Überblick – 日本語.txt")
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CheckFailed(f"the non-ASCII entry is not UTF-8 ({e}); actual: {text!r}") from e
        expect("the non-ASCII entry contains 'Grüße'", "Grüße" in decoded, decoded)

    @step("7a folder '0' -> 400 bad_request")
    def _():
        expect_api_error(
            "folder 0",
            lambda: alice.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FOLDER, id="0")]),
            400,
            "bad_request",
        )

    @step("7b bob zips folder 1006 (Private) -> 403 access_denied_insufficient_permissions")
    def _():
        expect_api_error(
            "bob, folder 1006",
            lambda: bob.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FOLDER, id="1006")]),
            403,
            "access_denied_insufficient_permissions",
        )

    @step("7c file id 999999999 -> 404 not_found")
    def _():
        expect_api_error(
            "unknown file",
            lambda: alice.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FILE, id="999999999")]),
            404,
            "not_found",
        )

    @step("7d token 'wrong-token' -> 401 with an empty body and the Bearer challenge")
    def _():
        e = expect_api_error(
            "wrong token",
            lambda: stranger.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FILE, id="12345")]),
            401,
            None,
        )
        challenge = e.response_info.headers.get("www-authenticate", "")
        expect("www-authenticate names invalid_token", 'error="invalid_token"' in challenge, dict(e.response_info.headers))

    @step("7e Box's reference request (12345 + 34325 + folder 45678, which holds 12345): 12345 packed at both places")
    def _():
        zd = alice.zip_downloads.create_zip_download(
            [
                CreateZipDownloadItems(type=FILE, id="12345"),
                CreateZipDownloadItems(type=FILE, id="34325"),
                CreateZipDownloadItems(type=FOLDER, id="45678"),
            ],
            download_file_name="January Financials",
        )
        group = zd.name_conflicts[0] if len(zd.name_conflicts) == 1 else []
        expect("both report.pdf are renamed", sorted(c.id for c in group) == ["12345", "34325"], zd.name_conflicts)
        renamed = {c.download_name for c in group}
        names = set(open_zip("reference", alice.zip_downloads.get_zip_download_content(zd.download_url).read()).namelist())
        want = renamed | {"Q1/", "Q1/report.pdf", "Q1/summary.txt"}
        expect(f"entry names are exactly {sorted(want)}", names == want, sorted(names))

    @step("7f an item made unreadable before the download is skipped and counted in the status")
    def _():
        harness.add_fault(base, {"match": {"dialect": "box", "method": "POST"}, "times": 1, "job": {"unreadable": ["12346"]}})
        zd = alice.zip_downloads.create_zip_download([CreateZipDownloadItems(type=FOLDER, id="45678")])
        names = open_zip("after the change", alice.zip_downloads.get_zip_download_content(zd.download_url).read()).namelist()
        expect("summary.txt is left out", sorted(names) == ["Q1/", "Q1/report.pdf"], names)
        st = alice.zip_downloads.get_zip_download_status(zd.status_url)
        got = (st.total_file_count, st.downloaded_file_count, st.skipped_file_count, st.skipped_folder_count, getattr(st.state, "value", st.state))
        expect("status is (2, 1, 1, 0, succeeded)", got == (2, 1, 1, 0, "succeeded"), got)

    create_route = {"dialect": "box", "method": "POST", "path": "/2.0/zip_downloads"}
    one_file = [CreateZipDownloadItems(type=FILE, id="12348")]

    @step("8a a 429 injected on create reaches a non-retrying client as rate_limit_exceeded")
    def _():
        harness.add_fault(base, {"match": create_route, "times": 1, "respond": {"status": 429}})
        e = expect_api_error("injected 429", lambda: alice.zip_downloads.create_zip_download(one_file), 429, "rate_limit_exceeded")
        expect("retry-after header", e.response_info.headers.get("retry-after") == "1", dict(e.response_info.headers))

    @step("8b a 429 injected on create: the SDK waits retry-after and retries")
    def _():
        fault = harness.add_fault(base, {"match": create_route, "times": 1, "respond": {"status": 429}})
        retrying = make_client(base, "alice-token", max_attempts=3)
        started = time.monotonic()
        zd = retrying.zip_downloads.create_zip_download(one_file)
        waited = time.monotonic() - started
        expect("the retried create returns a download_url", zd.download_url.startswith(base + "/"), zd.download_url)
        posts = harness.journal(base, method="POST", path_prefix="/2.0/zip_downloads")[-2:]
        seen = [(p["status"], p["faults"]) for p in posts]
        expect("the journal shows the injected 429, then 202", seen == [(429, [fault]), (202, [])], seen)
        expect("the SDK waited the 1 s retry-after", waited >= 1.0, waited)

    return checks.report()


if __name__ == "__main__":
    run(NAME, main)
