#!/usr/bin/env python3
"""Drive zipgate's ONLYOFFICE dialect in its DocSpace flavour with ONLYOFFICE's
official Python SDK (PyPI docspace-api-sdk 3.7.0, module docspace_api_sdk).

Usage: PY tests/clients/onlyoffice_docspace.py BASE_URL
  PY        a python with tests/requirements.txt installed (docspace-api-sdk==3.7.0)
  BASE_URL  a zipgate serving the embedded default fixture with
            `--set onlyoffice.flavour=docspace`, e.g. http://127.0.0.1:8080

The SDK calls are OperationsApi.bulk_download(DownloadRequestDto) and
OperationsApi.get_operation_statuses(id=…); their answers go through the SDK's
pydantic models (FileOperationArrayWrapper / FileOperationDto), so a field the
SDK rejects fails the step with the SDK's validation error. The archive `url`
is fetched with urllib, as the SDK has no call for filehandler.ashx.

Auth: the SDK's spec marks bulkdownload and fileops as anonymous (their
`_auth_settings` are empty), so `Configuration(access_token=…)` alone sends no
credentials on these two calls. The token therefore also goes in as a default
`Authorization: Bearer …` header of the ApiClient.

Exits 0 when every check passes; otherwise prints each failed check with the
values it saw and exits 1. The last stdout line is
`onlyoffice_docspace: N passed, N failed`. Importing the SDK takes ~3 s.
"""

import json
import re
import sys
import time
import warnings

from harness import CheckFailed, Checks, expect, http, open_zip, run

NAME = "onlyoffice_docspace"
TOKEN = "alice-token"
POLL_EVERY = 0.3
POLL_FOR = 10.0
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

try:
    with warnings.catch_warnings():
        # pydantic warns about models with a field named "copy"; not ours.
        warnings.simplefilter("ignore")
        from docspace_api_sdk import (
            ApiClient,
            Configuration,
            DistributedTaskStatus,
            DownloadRequestDto,
            FileOperationArrayWrapper,
            FileOperationType,
            OperationsApi,
        )
        from docspace_api_sdk.exceptions import ApiException
        from docspace_api_sdk.models.download_request_dto_all_of_file_ids import (
            DownloadRequestDtoAllOfFileIds as FileId,
        )
except ImportError as exc:  # pragma: no cover - environment problem, not a check
    print(f"{NAME}: cannot import docspace_api_sdk ({exc}); install tests/requirements.txt", file=sys.stderr)
    sys.exit(2)


def make_api(base, token):
    config = Configuration(host=base, access_token=token)
    config.retries = 0
    client = ApiClient(config, header_name="Authorization", header_value=f"Bearer {token}")
    return OperationsApi(client)


def describe(exc):
    if isinstance(exc, ApiException):
        return f"{type(exc).__name__}(status={exc.status!r}, reason={exc.reason!r}, body={exc.body!r})"
    return f"{type(exc).__name__}: {exc}"


def expect_api_error(what, call, status, message):
    """Run `call`, which must raise the SDK's ApiException with this status and,
    unless `message` is None, a JSON body whose error.message is `message`."""
    try:
        result = call()
    except ApiException as e:
        expect(f"{what}: ApiException status {status}", e.status == status, describe(e))
        if message is not None:
            try:
                doc = json.loads(e.body or "")
            except ValueError as err:
                raise CheckFailed(f"{what}: error body is not JSON ({err}); actual: {describe(e)}") from err
            got = (doc.get("error") or {}).get("message")
            expect(f"{what}: error.message is {message!r}", got == message, doc)
            expect(f"{what}: status 1, statusCode {status}", doc.get("status") == 1 and doc.get("statusCode") == status, doc)
        return e
    except Exception as e:
        raise CheckFailed(f"{what}: expected ApiException {status}; raised {describe(e)}") from e
    raise CheckFailed(f"{what}: expected ApiException {status}; the call succeeded and returned {result!r}")


def fetch(url, timeout=15):
    """GET with the auth cookie and the Bearer header; (status, headers, body)."""
    reply = http("GET", url, {"Cookie": f"asc_auth_key={TOKEN}", "Authorization": f"Bearer {TOKEN}"}, timeout=timeout)
    return reply.status, reply.headers, reply.body


def check_started(what, wrapper, base):
    """The PUT's FileOperationArrayWrapper; returns the new (only) operation."""
    expect(f"{what}: a FileOperationArrayWrapper", isinstance(wrapper, FileOperationArrayWrapper), type(wrapper).__name__)
    expect(f"{what}: status 0, statusCode 200", (wrapper.status, wrapper.status_code) == (0, 200), wrapper)
    ops = wrapper.response or []
    expect(f"{what}: one operation", len(ops) == 1, wrapper)
    expect(f"{what}: count 1", wrapper.count == 1, wrapper)
    links = [(link.href, link.action) for link in wrapper.links or []]
    expect(f"{what}: links is [(<BASE_URL>/api/2.0/files/fileops/bulkdownload, PUT)]", links == [(f"{base}/api/2.0/files/fileops/bulkdownload", "PUT")], links)
    op = ops[0]
    expect(f"{what}: id is a lowercase GUID", isinstance(op.id, str) and GUID.match(op.id), op)
    expect(f"{what}: Operation is Download", op.operation == FileOperationType.Download, op)
    expect(f"{what}: finished is False", op.finished is False, op)
    expect(f"{what}: no url yet", op.url is None, op)
    expect(f"{what}: error is \"\" (DocSpace never nulls it)", op.error == "", op)
    expect(
        f"{what}: status is Created or Running",
        op.status in (DistributedTaskStatus.Created, DistributedTaskStatus.Running),
        op,
    )
    return op


def poll(api, op_id, what):
    """get_operation_statuses(id=…) until finished; returns the finished FileOperationDto."""
    deadline = time.monotonic() + POLL_FOR
    seen = []
    while True:
        time.sleep(POLL_EVERY)
        wrapper = api.get_operation_statuses(id=op_id)
        expect(f"{what}: status 0, statusCode 200", (wrapper.status, wrapper.status_code) == (0, 200), wrapper)
        mine = [o for o in wrapper.response or [] if o.id == op_id]
        expect(f"{what}: the operation is listed until finished", len(mine) == 1, wrapper)
        op = mine[0]
        seen.append(op.progress)
        print(f"      {what}: progress {op.progress}% processed {op.processed!r} finished {op.finished} status {op.status!r}")
        if op.finished:
            expect(f"{what}: progress never goes down", seen == sorted(seen), seen)
            return op
        expect(f"{what}: finished within {POLL_FOR:.0f} s", time.monotonic() < deadline, seen)


def main(base):
    alice = make_api(base, TOKEN)
    stranger = make_api(base, "wrong-token")
    checks = Checks(NAME, describe)
    state, step = checks.state, checks.step

    @step("1 bulk_download(DownloadRequestDto(file_ids=[12345, 34325])) -> one running Download")
    def _():
        dto = DownloadRequestDto(file_ids=[FileId(12345), FileId(34325)])
        state["op"] = check_started("bulk_download", alice.bulk_download(dto), base)

    @step("2 a second bulk_download while the first runs -> ForbiddenException 403 'Too many downloads.'", needs=("op",))
    def _():
        dto = DownloadRequestDto(file_ids=[FileId(12346)])
        e = expect_api_error("second bulk_download", lambda: alice.bulk_download(dto), 403, "Too many downloads.")
        doc = json.loads(e.body)
        expect("the error has type System.InvalidOperationException", doc["error"].get("type") == "System.InvalidOperationException", doc)

    @step("3 get_operation_statuses(id=…) until finished", needs=("op",))
    def _():
        op = poll(alice, state["op"].id, "poll")
        expect("finished op: progress 100", op.progress == 100, op)
        expect("finished op: error is \"\"", op.error == "", op)
        expect("finished op: processed '2'", op.processed == "2", op)
        expect("finished op: status Completed", op.status == DistributedTaskStatus.Completed, op)
        expect(
            "finished op: url is <BASE_URL>/filehandler.ashx?action=bulk&filename=…",
            isinstance(op.url, str) and op.url.startswith(f"{base}/filehandler.ashx?action=bulk&filename="),
            op.url,
        )
        state["url"] = op.url

    @step("4 the finished operation is listed once, then no more", needs=("url",))
    def _():
        wrapper = alice.get_operation_statuses()
        ids = [o.id for o in wrapper.response or []]
        expect("the finished op is gone", state["op"].id not in ids, wrapper)
        expect("count 0", wrapper.count == 0, wrapper)

    @step("5 GET url (cookie + Bearer) -> zip of report.pdf and report (1).pdf", needs=("url",))
    def _():
        status, headers, body = fetch(state["url"])
        expect("archive GET answers 200", status == 200, (status, dict(headers.items()), body[:200]))
        ctype = headers.get("Content-Type")
        expect("Content-Type is application/zip", ctype == "application/zip", ctype)
        length = headers.get("Content-Length")
        expect(f"Content-Length equals the bytes received ({len(body)})", length == str(len(body)), length)
        zf = open_zip("archive", body)
        names = zf.namelist()
        expect("entry names are exactly ['report (1).pdf', 'report.pdf']", sorted(names) == ["report (1).pdf", "report.pdf"] and len(names) == 2, names)
        for name in names:
            head = zf.read(name)[:4]
            expect(f"{name} starts with %PDF", head == b"%PDF", head)

    @step("6 one file alone (12346) -> the url serves the file itself, not a zip", needs=("url",))
    def _():
        wrapper = alice.bulk_download(DownloadRequestDto(file_ids=[FileId(12346)]))
        op = check_started("bulk_download 12346", wrapper, base)
        done = poll(alice, op.id, "poll 12346")
        expect("finished op has a url", isinstance(done.url, str), done)
        status, headers, body = fetch(done.url)
        expect("GET answers 200", status == 200, (status, dict(headers.items()), body[:200]))
        expect("the body is summary.txt itself", body == b"Q1 summary: revenue up 4%, costs flat.\n", body[:200])
        disposition = headers.get("Content-Disposition") or ""
        expect("Content-Disposition names summary.txt", "summary.txt" in disposition, disposition)

    @step("7 bulk_download with token 'wrong-token' runs as a guest ([AllowAnonymous]) -> NotFoundException 404")
    def _():
        dto = DownloadRequestDto(file_ids=[FileId(12345)])
        expect_api_error("wrong token", lambda: stranger.bulk_download(dto), 404, "The required file was not found")

    return checks.report()


if __name__ == "__main__":
    run(NAME, main)
