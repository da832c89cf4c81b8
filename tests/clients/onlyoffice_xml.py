#!/usr/bin/env python3
"""Drive zipgate's ONLYOFFICE dialect (Workspace flavour) in XML, the format
Community Server answers when the path ends in `.xml` and the body is not JSON.
Authenticates with the raw token in `Authorization` (no scheme), as old builds
of the Android app did. Standard library only.

Usage: PY tests/clients/onlyoffice_xml.py BASE_URL
  BASE_URL  a zipgate serving the embedded default fixture with the ONLYOFFICE
            dialect in its default (workspace) flavour, e.g. http://127.0.0.1:8080

Every response is parsed with xml.etree.ElementTree (namespace-aware: a
namespaced tag would read `{uri}tag`), and must have no XML declaration and the
root element `result`.

Exits 0 when every check passes; otherwise prints each failed check with the
values it saw and exits 1. The last stdout line is
`onlyoffice_xml: N passed, N failed`.
"""

import re
import time
import xml.etree.ElementTree as ET

import harness
from harness import CheckFailed, Checks, expect, http, open_zip, run

NAME = "onlyoffice_xml"
TOKEN = "alice-token"
POLL_EVERY = 0.3
POLL_FOR = 10.0
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
harness.Reply.SHOWN = 400  # XML is wordier than JSON: show more of a failed reply


def parse_xml(what, reply):
    """Check the XML framing and return the root element."""
    ctype = reply.header("Content-Type") or ""
    expect(f"{what}: Content-Type is text/xml", ctype.split(";")[0].strip().lower() == "text/xml", ctype)
    expect(f"{what}: charset is UTF-8", "charset=utf-8" in ctype.replace(" ", "").lower(), ctype)
    body = reply.body
    expect(f"{what}: no XML declaration", not body.lstrip().startswith(b"<?xml"), body[:80])
    expect(f"{what}: no whitespace between elements", re.search(rb">\s+<", body) is None, body[:400])
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise CheckFailed(f"{what}: not well-formed XML ({e}); actual: {body[:400]!r}") from e
    expect(f"{what}: root element is <result> (no namespace)", root.tag == "result", root.tag)
    namespaced = [el.tag for el in root.iter() if el.tag.startswith("{")]
    expect(f"{what}: no element is in a namespace", not namespaced, namespaced)
    return root


def child_tags(el):
    return [c.tag for c in el]


def text_of(el, tag):
    found = el.find(tag)
    return None if found is None else (found.text or "")


def operations(root):
    """Each <response> element is one operation (arrays are repeated elements)."""
    return root.findall("response")


def op_dict(el):
    return {c.tag: c.text for c in el}


def api_headers(xml_body=False):
    headers = {"Authorization": TOKEN}  # the raw token, no scheme
    if xml_body:
        headers["Content-Type"] = "text/xml"
    return headers


def put_xml(base, body):
    return http(
        "PUT",
        f"{base}/api/2.0/files/fileops/bulkdownload.xml",
        api_headers(xml_body=True),
        body.encode("utf-8"),
    )


def main(base):
    checks = Checks(NAME)
    state, step = checks.state, checks.step

    @step("1 PUT bulkdownload.xml <fileIds>12345</fileIds><folderIds>1004</folderIds> -> one queued operation")
    def _():
        reply = put_xml(base, "<request><fileIds>12345</fileIds><folderIds>1004</folderIds></request>")
        expect("PUT answers 200", reply.status == 200, reply)
        root = parse_xml("PUT", reply)
        expect(
            "result children are count, status, statusCode, response",
            child_tags(root) == ["count", "status", "statusCode", "response"],
            child_tags(root),
        )
        expect("count 1, status 0, statusCode 200", (text_of(root, "count"), text_of(root, "status"), text_of(root, "statusCode")) == ("1", "0", "200"), reply.body)
        ops = operations(root)
        expect("one <response> element", len(ops) == 1, reply.body)
        op = ops[0]
        want_tags = ["id", "operation", "progress", "error", "processed", "finished", "url", "files", "folders"]
        expect(f"operation children are {want_tags}", child_tags(op) == want_tags, child_tags(op))
        fields = op_dict(op)
        expect("id is a lowercase GUID", GUID.match(fields["id"] or ""), fields)
        expect("operation is 3", fields["operation"] == "3", fields)
        expect("finished is false (lowercase)", fields["finished"] == "false", fields)
        expect("progress is 0", fields["progress"] == "0", fields)
        expect("processed is 0", fields["processed"] == "0", fields)
        for empty in ("error", "url", "files", "folders"):
            el = op.find(empty)
            expect(f"<{empty} /> is empty", el.text is None and len(el) == 0 and not el.attrib, ET.tostring(el))
        expect("nulls are written <error />", b"<error />" in reply.body, reply.body)
        state["id"] = fields["id"]

    @step("2 poll GET fileops.xml until <finished>true</finished>", needs=("id",))
    def _():
        deadline = time.monotonic() + POLL_FOR
        while True:
            time.sleep(POLL_EVERY)
            reply = http("GET", f"{base}/api/2.0/files/fileops.xml", api_headers())
            expect("GET fileops.xml answers 200", reply.status == 200, reply)
            root = parse_xml("GET fileops.xml", reply)
            mine = [op for op in operations(root) if text_of(op, "id") == state["id"]]
            expect("the operation is listed until finished", len(mine) == 1, reply.body)
            fields = op_dict(mine[0])
            print(f"      progress {fields.get('progress')}% processed {fields.get('processed')} finished {fields.get('finished')}")
            expect("finished is 'true' or 'false'", fields.get("finished") in ("true", "false"), fields)
            if fields["finished"] == "true":
                break
            expect(f"finished within {POLL_FOR:.0f} s", time.monotonic() < deadline, fields)
        expect("progress 100", fields.get("progress") == "100", fields)
        expect("processed 2 (report.pdf and Empty/)", fields.get("processed") == "2", fields)
        error = mine[0].find("error")
        expect("<error /> is empty", error.text is None and len(error) == 0, ET.tostring(error))
        url = fields.get("url") or ""
        expect("<url> is on BASE_URL", url.startswith(base + "/"), url)
        expect("the parsed url has '&filename=' (XML &amp; unescaped)", "?action=bulk&filename=" in url, url)
        expect("the raw XML escapes & as &amp;", b"?action=bulk&amp;filename=" in reply.body, reply.body)
        expect("the parsed url has no '&amp;'", "&amp;" not in url, url)
        state["url"] = url

    @step("3 GET <url> with Cookie asc_auth_key -> zip of report.pdf and Empty/", needs=("url",))
    def _():
        reply = http("GET", state["url"], {"Cookie": f"asc_auth_key={TOKEN}"}, timeout=15)
        expect("archive GET answers 200", reply.status == 200, reply)
        ctype = reply.header("Content-Type")
        expect("Content-Type is application/zip", ctype == "application/zip", ctype)
        length = reply.header("Content-Length")
        expect(f"Content-Length equals the bytes received ({len(reply.body)})", length == str(len(reply.body)), length)
        zf = open_zip("archive", reply.body)
        names = zf.namelist()
        expect("entry names are exactly ['Empty/', 'report.pdf']", sorted(names) == ["Empty/", "report.pdf"] and len(names) == 2, names)
        head = zf.read("report.pdf")[:4]
        expect("report.pdf starts with %PDF", head == b"%PDF", head)

    @step("4 duplicate ids <fileIds>1</fileIds><fileIds>1</fileIds> -> 400 XML error")
    def _():
        reply = put_xml(base, "<request><fileIds>1</fileIds><fileIds>1</fileIds></request>")
        expect("duplicate ids answer 400", reply.status == 400, reply)
        root = parse_xml("duplicate ids", reply)
        expect("result children are status, statusCode, error", child_tags(root) == ["status", "statusCode", "error"], child_tags(root))
        expect("status 1", text_of(root, "status") == "1", reply.body)
        expect("statusCode 400", text_of(root, "statusCode") == "400", reply.body)
        error = root.find("error")
        tags = child_tags(error)
        expect("error's first child is message", tags[:1] == ["message"], tags)
        message = text_of(error, "message")
        expect(
            "message is 'An item with the same key has already been added.'",
            message == "An item with the same key has already been added.",
            message,
        )
        expect("hresult is -2147024809 (ArgumentException)", text_of(error, "hresult") == "-2147024809", reply.body)
        expect(
            "the body starts <result><status>1</status><statusCode>400</statusCode><error><message>…",
            reply.body.startswith(
                b"<result><status>1</status><statusCode>400</statusCode><error><message>"
                b"An item with the same key has already been added.</message>"
            ),
            reply.body,
        )

    return checks.report()


if __name__ == "__main__":
    run(NAME, main)
