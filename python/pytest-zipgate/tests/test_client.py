"""The control-plane client, through the ``zipgate`` fixture of this very
session (the installed plugin serves its own tests)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

import box_http
from box_http import REPORTS
from pytest_zipgate import Counts, Fault, Job, JournalEntry, Zipgate, ZipgateError

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_seed_replaces_the_tree_and_a_vendor_client_sees_it(zipgate: Zipgate) -> None:
    assert zipgate.seed(REPORTS) == Counts(nodes=2, users=1)
    archive = box_http.download_folder(zipgate.url, "100")
    assert archive.read("Reports/q1.csv") == b"region,total\nnorth,12\n"
    assert zipgate.health()["nodes"] == 2


def test_seed_reads_a_json_file(zipgate: Zipgate, tmp_path) -> None:
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(REPORTS))
    assert zipgate.seed(path).nodes == 2
    assert zipgate.seed(str(path)).users == 1


def test_add_nodes_under_a_folder_and_at_the_top(zipgate: Zipgate) -> None:
    zipgate.seed(REPORTS)
    counts = zipgate.add_nodes(
        [{"id": "q2", "name": "q2.csv", "ids": {"box": "102"}, "content": {"text": "south,3\n"}}], parent="reports"
    )
    assert counts.nodes == 3
    assert zipgate.add_nodes({"id": "top", "name": "Top", "children": []}).nodes == 4
    archive = box_http.download_folder(zipgate.url, "100")
    assert archive.read("Reports/q2.csv") == b"south,3\n"
    assert sorted(n for n in archive.namelist() if not n.endswith("/")) == ["Reports/q1.csv", "Reports/q2.csv"]


def test_an_invalid_fixture_raises_with_the_servers_error_and_keeps_the_tree(zipgate: Zipgate) -> None:
    zipgate.seed(REPORTS)
    with pytest.raises(ZipgateError) as raised:
        zipgate.seed({"nodes": [{"id": "x"}]})
    error = raised.value
    assert error.status == 400
    assert error.error == "invalid_fixture"
    assert error.body["path"] == "nodes[0]"
    assert "missing field `name`" in error.message
    assert "PUT" in str(error) and "/_zipgate/fixtures" in str(error) and "400" in str(error)
    assert zipgate.health()["nodes"] == 2

    with pytest.raises(ZipgateError) as raised:
        zipgate.add_nodes([{"id": "y", "name": "y.txt", "content": {"text": ""}}], parent="nope")
    assert (raised.value.status, raised.value.body["path"]) == (400, "parent")


def test_a_fault_fails_the_vendor_request_and_is_counted(zipgate: Zipgate) -> None:
    zipgate.seed(REPORTS)
    rule = zipgate.fault(match={"dialect": "box", "method": "POST"}, times=1, respond={"status": 503})
    assert isinstance(rule, Fault)
    assert rule.id
    assert rule.rule == {"match": {"dialect": "box", "method": "POST"}, "times": 1, "respond": {"status": 503}}
    assert rule.match == {"dialect": "box", "method": "POST"}
    assert (rule.matched, rule.fired, rule.remaining) == (0, 0, 1)

    items = [{"type": "folder", "id": "100"}]
    status, body = box_http.create(zipgate.url, items)
    assert status == 503
    assert body["status"] == 503
    assert box_http.create(zipgate.url, items)[0] == 202

    [after] = zipgate.faults()
    assert (after.id, after.matched, after.fired, after.remaining) == (rule.id, 2, 1, 0)
    first, second = zipgate.requests(method="POST")
    assert (first.status, first.faults) == (503, [rule.id])
    assert (second.status, second.faults) == (202, [])


def test_add_fault_delete_fault_and_clear(zipgate: Zipgate) -> None:
    a = zipgate.add_fault({"match": {"path": "*/content"}, "cut": {"after_bytes": 10, "how": "reset"}})
    b, c = zipgate.add_faults([{"delay_ms": 1}, {"match": {"user": "ann"}, "respond": {"status": 429}}])
    assert [f.id for f in zipgate.faults()] == [a.id, b.id, c.id]
    zipgate.delete_fault(b)
    zipgate.delete_fault(a.id)
    assert [f.id for f in zipgate.faults()] == [c.id]
    with pytest.raises(ZipgateError) as raised:
        zipgate.delete_fault(a.id)
    assert (raised.value.status, raised.value.error) == (404, "not_found")
    # A listed rule's `rule` can be added again as it is.
    again = zipgate.add_fault(zipgate.faults()[0].rule)
    assert again.rule == c.rule and again.id != c.id
    zipgate.clear_faults()
    assert zipgate.faults() == []


def test_a_bad_rule_raises_invalid_fault(zipgate: Zipgate) -> None:
    with pytest.raises(ZipgateError) as raised:
        zipgate.fault(match={"dialect": "box"})
    assert raised.value.status == 400
    assert raised.value.error == "invalid_fault"
    assert "needs an action" in raised.value.message


def test_requests_follows_the_cursor_through_every_page(zipgate: Zipgate, monkeypatch) -> None:
    zipgate.seed(REPORTS)
    for n in range(7):
        box_http.call("GET", f"{zipgate.url}/2.0/zip_downloads/nope-{n}/status")
    box_http.create(zipgate.url, [{"type": "folder", "id": "100"}])

    pages = []
    one_page = zipgate._journal_page

    def spy(query):
        page, next_after = one_page(query)
        pages.append((query["after"], query["limit"], len(page)))
        return page, next_after

    monkeypatch.setattr(zipgate, "_journal_page", spy)
    every = zipgate.requests(page_size=3)
    assert len(every) == 8
    ids = [e.id for e in every]
    assert ids == sorted(ids) and len(set(ids)) == 8
    # The server's next_after ends the walk: no empty page is asked for.
    assert len(pages) == 3
    assert [p[2] for p in pages] == [3, 3, 2]
    assert pages[1][0] == ids[2] and pages[2][0] == ids[5]

    pages.clear()
    gets = zipgate.requests(method="GET", path_prefix="/2.0/zip_downloads/nope-", page_size=2)
    assert [e.path for e in gets] == [f"/2.0/zip_downloads/nope-{n}/status" for n in range(7)]
    assert [p[2] for p in pages] == [2, 2, 2, 1]
    assert zipgate.requests(limit=5, page_size=2) == every[:5]
    assert zipgate.requests(after=ids[5]) == every[6:]
    assert zipgate.requests(status=202, dialect="box")[0].method == "POST"
    assert zipgate.requests(dialect="dropbox") == []
    assert zipgate.requests(limit=0) == []


def test_journal_entries_are_typed_and_credentials_revealed_on_request(zipgate: Zipgate) -> None:
    zipgate.seed(REPORTS)
    box_http.create(zipgate.url, [{"type": "folder", "id": "100"}], name="Q")
    [entry] = zipgate.requests()
    assert isinstance(entry, JournalEntry)
    assert (entry.dialect, entry.method, entry.path, entry.status) == ("box", "POST", "/2.0/zip_downloads", 202)
    assert entry.json() == {"items": [{"type": "folder", "id": "100"}], "download_file_name": "Q"}
    assert entry.header("AUTHORIZATION") == "<redacted>"
    assert entry.body_size == len(entry.body or "")
    assert entry.time.tzinfo is not None
    assert zipgate.requests(reveal=True)[0].header("authorization") == "Bearer ann-token"

    zipgate.clear_requests()
    assert zipgate.requests() == []


def test_jobs_and_one_job(zipgate: Zipgate) -> None:
    zipgate.seed(REPORTS)
    status, created = box_http.create(zipgate.url, [{"type": "folder", "id": "100"}], name="Reports")
    assert status == 202
    [job] = zipgate.jobs()
    assert isinstance(job, Job)
    assert (job.dialect, job.owner, job.state, job.name, job.files) == ("box", "ann", "ready", "Reports.zip", 1)
    assert job.expires is not None and job.expires > job.created
    assert job.id in created["download_url"]
    # Box job ids hold `=`, which the client must not percent-encode.
    assert zipgate.job(job.id) == job
    with pytest.raises(ZipgateError) as raised:
        zipgate.job("no-such-job")
    assert raised.value.status == 404


def test_advancing_the_clock_expires_a_download(zipgate: Zipgate) -> None:
    zipgate.seed(REPORTS)
    _, created = box_http.create(zipgate.url, [{"type": "folder", "id": "100"}])
    [job] = zipgate.jobs()
    before = zipgate.clock()
    now = zipgate.advance(timedelta(hours=1))
    assert now - before >= timedelta(hours=1)
    assert zipgate.clock() >= now
    assert zipgate.job(job.id).state == "expired"
    assert box_http.call("GET", created["download_url"])[0] == 404
    with pytest.raises(ZipgateError) as raised:
        zipgate.advance(-1)
    assert raised.value.status == 400


def test_health(zipgate: Zipgate) -> None:
    health = zipgate.health()
    assert health["status"] == "ok"
    assert "box" in health["dialects"]


def test_the_control_plane_refuses_a_request_without_the_token(zipgate: Zipgate) -> None:
    assert zipgate.token
    with pytest.raises(urllib.error.HTTPError) as raised:
        NO_PROXY.open(zipgate.url + "/_zipgate/faults")
    assert raised.value.code == 401
    assert json.load(raised.value)["error"] == "unauthorized"

    for token in (None, "wrong"):
        with pytest.raises(ZipgateError) as refused:
            Zipgate(zipgate.url, token).faults()
        assert (refused.value.status, refused.value.error) == (401, "unauthorized")

    bearer = urllib.request.Request(
        zipgate.url + "/_zipgate/faults", headers={"Authorization": f"Bearer {zipgate.token}"}
    )
    with NO_PROXY.open(bearer) as response:
        assert json.load(response) == {"faults": []}
    # Health is for probes: no token needed.
    assert Zipgate(zipgate.url).health()["status"] == "ok"


def test_the_token_is_not_on_the_command_line(zipgate_server) -> None:
    assert zipgate_server.token
    assert not any(zipgate_server.token in arg for arg in zipgate_server.argv)
