"""The plugin, seen from inner pytest sessions run with ``pytester``: one
server per session, reset between tests, options, the control token,
finding the binary, and what the user sees when something goes wrong."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest

from pytest_zipgate import ZipgateNotFound, find_binary
from pytest_zipgate.server import EXE

HERE = Path(__file__).parent


@pytest.fixture
def inner(pytester: pytest.Pytester, real_zipgate: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose inner sessions find the real binary through $ZIPGATE
    and can import the Box helper."""
    monkeypatch.setenv("ZIPGATE", str(real_zipgate))
    pytester.makepyfile(box_http=(HERE / "box_http.py").read_text())
    return pytester


def record(pytester: pytest.Pytester) -> dict:
    """What an inner session wrote to record.json."""
    return json.loads((pytester.path / "record.json").read_text())


def script(directory: Path, body: str, name: str = EXE) -> Path:
    """An executable shell script named like the binary."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# -- one server per session, reset between tests ------------------------------


def test_one_server_serves_the_whole_session_and_stops_with_it(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_inner="""
        import json

        seen = []

        def test_first(zipgate, zipgate_server):
            seen.append((zipgate.url, zipgate_server.pid))
            assert zipgate.url.startswith("http://127.0.0.1:")
            assert zipgate_server.alive()

        def test_second(zipgate, zipgate_server):
            assert seen == [(zipgate.url, zipgate_server.pid)]
            with open("record.json", "w") as f:
                json.dump({"pid": zipgate_server.pid, "log": str(zipgate_server.log_path)}, f)
        """
    )
    result = inner.runpytest()
    result.assert_outcomes(passed=2)
    seen = record(inner)
    with pytest.raises(ProcessLookupError):
        os.kill(seen["pid"], 0)
    log = Path(seen["log"]).read_text()
    assert "listening on" in log
    assert "path=/_zipgate/reset" in log


def test_a_session_that_does_not_use_zipgate_needs_no_binary(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("ZIPGATE", "/nonexistent/zipgate")
    pytester.makepyfile("def test_plain():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_each_test_starts_from_a_reset_server(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_inner="""
        import box_http

        def test_changes_everything(zipgate):
            zipgate.seed(box_http.REPORTS)
            zipgate.fault(match={"dialect": "box"}, respond={"status": 500})
            assert box_http.create(zipgate.url, [{"type": "folder", "id": "100"}])[0] == 500
            assert len(zipgate.requests()) == 1
            assert zipgate.health()["nodes"] == 2

        def test_sees_none_of_it(zipgate):
            assert zipgate.faults() == []
            assert zipgate.requests() == []
            assert zipgate.jobs() == []
            assert zipgate.health()["nodes"] == 21  # the embedded default fixture
            status, _ = box_http.create(zipgate.url, [{"type": "file", "id": "12345"}], token="alice-token")
            assert status == 202
        """
    )
    inner.runpytest().assert_outcomes(passed=2)


def test_seeding_faults_paging_and_the_clock_in_a_session(inner: pytest.Pytester) -> None:
    inner.makeini("[pytest]\nzipgate_args = --clock frozen\n")
    inner.makepyfile(
        test_inner="""
        import time
        from datetime import timedelta

        import box_http

        FOLDER = [{"type": "folder", "id": "100"}]

        def test_seeded_tree_is_served(zipgate):
            zipgate.seed(box_http.REPORTS)
            archive = box_http.download_folder(zipgate.url, "100")
            assert archive.read("Reports/q1.csv") == b"region,total\\nnorth,12\\n"

        def test_a_fault_fails_the_vendor_request(zipgate):
            zipgate.seed(box_http.REPORTS)
            rule = zipgate.fault(match={"method": "POST", "path": "/2.0/zip_downloads"}, times=1,
                                 respond={"status": 429})
            status, body = box_http.create(zipgate.url, FOLDER)
            assert (status, body["code"]) == (429, "rate_limit_exceeded")
            assert box_http.create(zipgate.url, FOLDER)[0] == 202
            assert [(r.status, r.faults) for r in zipgate.requests(method="POST")] == [(429, [rule.id]), (202, [])]

        def test_the_journal_is_read_page_by_page(zipgate):
            for n in range(5):
                box_http.call("GET", f"{zipgate.url}/2.0/zip_downloads/x{n}/status")
            entries = zipgate.requests(page_size=2)
            assert [e.path for e in entries] == [f"/2.0/zip_downloads/x{n}/status" for n in range(5)]
            assert zipgate.requests(after=entries[1].id, limit=2) == entries[2:4]

        def test_the_frozen_clock_moves_only_when_advanced(zipgate):
            start = zipgate.clock()
            time.sleep(0.05)
            assert zipgate.clock() == start
            assert zipgate.advance(90) == start + timedelta(seconds=90)
            assert zipgate.clock() == start + timedelta(seconds=90)
        """
    )
    inner.runpytest().assert_outcomes(passed=4)


# -- options --------------------------------------------------------------------


def test_server_args_come_from_the_ini_then_the_command_line(inner: pytest.Pytester) -> None:
    inner.makeini("[pytest]\nzipgate_args = --seed 7 --journal 50\n")
    inner.makepyfile(
        test_inner="""
        import json

        def test_args(zipgate, zipgate_server):
            with open("record.json", "w") as f:
                json.dump(zipgate_server.argv, f)
        """
    )
    # argparse takes a value that starts with `-` only after `=`.
    inner.runpytest("--zipgate-arg=--clock=frozen", "--zipgate-arg=--max-faults", "--zipgate-arg=3").assert_outcomes(
        passed=1
    )
    argv = record(inner)
    assert argv[1:] == [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--seed",
        "7",
        "--journal",
        "50",
        "--clock=frozen",
        "--max-faults",
        "3",
    ]


def test_a_bad_server_arg_shows_the_servers_complaint_and_its_log(inner: pytest.Pytester) -> None:
    inner.makepyfile("def test_uses(zipgate):\n    pass\n")
    result = inner.runpytest("--zipgate-arg=--no-such-flag")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*zipgate did not start: it exited with code 2 before printing its URL*",
            "*command: *zipgate serve --listen 127.0.0.1:0 --no-such-flag*",
            "*log (stderr): *zipgate.log*",
            "*--no-such-flag*",
        ]
    )


def test_a_chosen_control_token(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_inner="""
        import urllib.request

        def test_token(zipgate):
            assert zipgate.token == "s3cret"
            request = urllib.request.Request(zipgate.url + "/_zipgate/clock",
                                             headers={"X-Zipgate-Control-Token": "s3cret"})
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(request) as response:
                assert response.status == 200
        """
    )
    inner.runpytest("--zipgate-control-token=s3cret").assert_outcomes(passed=1)
    inner.makeini("[pytest]\nzipgate_control_token = s3cret\n")
    inner.runpytest().assert_outcomes(passed=1)
    # A --control-token among the server's own arguments is the one used.
    inner.makeini("[pytest]\n")
    inner.runpytest("--zipgate-arg=--control-token=s3cret").assert_outcomes(passed=1)


def test_a_random_token_is_required_by_default(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_inner="""
        import json
        import urllib.error
        import urllib.request

        import pytest

        from pytest_zipgate import Zipgate, ZipgateError

        OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        seen = []

        def test_refused_without_it(zipgate):
            assert len(zipgate.token) >= 20
            seen.append(zipgate.token)
            with pytest.raises(urllib.error.HTTPError) as raised:
                OPENER.open(urllib.request.Request(zipgate.url + "/_zipgate/reset", method="POST"))
            assert raised.value.code == 401
            assert json.load(raised.value)["error"] == "unauthorized"
            with pytest.raises(ZipgateError) as refused:
                Zipgate(zipgate.url).reset()
            assert refused.value.status == 401

        def test_same_token_all_session(zipgate):
            assert seen == [zipgate.token]
        """
    )
    inner.runpytest().assert_outcomes(passed=2)


def test_startup_timeout(inner: pytest.Pytester, tmp_path: Path, monkeypatch) -> None:
    silent = script(tmp_path / "silent", "exec sleep 30\n")
    monkeypatch.setenv("ZIPGATE", str(silent))
    inner.makepyfile("def test_uses(zipgate):\n    pass\n")
    result = inner.runpytest("--zipgate-startup-timeout=0.5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*zipgate did not start: it printed no URL within 0.5 s*", "*log (stderr): *"])
    inner.makeini("[pytest]\nzipgate_startup_timeout = 0.3\n")
    result = inner.runpytest()
    result.stdout.fnmatch_lines(["*it printed no URL within 0.3 s*"])


def test_a_first_line_that_is_not_a_url(inner: pytest.Pytester, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZIPGATE", str(script(tmp_path / "chatty", "echo oops >&2\necho hello\nexec sleep 30\n")))
    inner.makepyfile("def test_uses(zipgate):\n    pass\n")
    result = inner.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*its first stdout line is 'hello', not its URL*", "*oops*"])


def test_a_server_that_dies_is_reported_with_its_log(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_inner="""
        import pytest

        from pytest_zipgate import ZipgateConnectionError

        def test_kills_it(zipgate, zipgate_server):
            zipgate_server.process.kill()
            zipgate_server.process.wait()
            with pytest.raises(ZipgateConnectionError) as raised:
                zipgate.faults()
            assert "exited with code -9" in str(raised.value)
            assert str(zipgate_server.log_path) in str(raised.value)

        def test_after(zipgate):
            pass
        """
    )
    result = inner.runpytest()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*during this test, the zipgate server (pid *) exited with code -9*",
            "*log (stderr): *zipgate.log*",
        ]
    )


def test_a_failed_test_shows_what_the_server_logged(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_inner="""
        import box_http

        def test_fails(zipgate):
            box_http.call("GET", zipgate.url + "/2.0/zip_downloads/nope/status")
            assert False

        def test_passes(zipgate):
            pass
        """
    )
    result = inner.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Captured zipgate log call*",
            "*path=/_zipgate/reset status=200*",
            "*path=/2.0/zip_downloads/nope/status status=*",
        ]
    )


# -- finding the binary -----------------------------------------------------------


@pytest.fixture
def three_binaries(tmp_path: Path, real_zipgate: Path) -> dict:
    """The real binary linked from three places: one for $ZIPGATE, one in a
    directory on PATH, one in a fake scripts directory."""
    places = {}
    for name in ("env", "path", "scripts"):
        directory = tmp_path / name
        directory.mkdir()
        (directory / EXE).symlink_to(real_zipgate)
        places[name] = directory / EXE
    return places


def test_discovery_order(three_binaries: dict, tmp_path: Path) -> None:
    env_bin = three_binaries["env"]
    path_dir = three_binaries["path"].parent
    scripts_dir = three_binaries["scripts"].parent
    found = find_binary({"ZIPGATE": str(env_bin)}, search_path=str(path_dir), scripts_dir=scripts_dir)
    assert (found.path, found.source) == (env_bin, "ZIPGATE")
    found = find_binary({}, search_path=str(path_dir), scripts_dir=scripts_dir)
    assert (found.path, found.source) == (path_dir / EXE, "PATH")
    found = find_binary({}, search_path=str(tmp_path / "empty"), scripts_dir=scripts_dir)
    assert (found.path, found.source) == (scripts_dir / EXE, "scripts")
    # A relative $ZIPGATE is taken from the directory pytest was started in;
    # a bare name is looked up on PATH.
    found = find_binary({"ZIPGATE": "env/" + EXE}, search_path="", scripts_dir=tmp_path, cwd=tmp_path)
    assert found.path == env_bin
    found = find_binary({"ZIPGATE": EXE}, search_path=str(path_dir), scripts_dir=tmp_path)
    assert (found.path, found.source) == (path_dir / EXE, "ZIPGATE")


def test_none_found_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ZipgateNotFound) as raised:
        find_binary({}, search_path=str(tmp_path), scripts_dir=tmp_path / "scripts")
    message = str(raised.value)
    assert "$ZIPGATE: not set" in message
    assert str(tmp_path / "scripts" / EXE) in message
    assert "cargo install --path ." in message
    assert "cargo build --release" in message and "ZIPGATE=target/release/zipgate" in message
    assert "pip install zipgate-*.whl" in message and "maturin build --release" in message


def test_a_wrong_zipgate_is_an_error_not_a_fallback(three_binaries: dict, tmp_path: Path) -> None:
    path_dir = str(three_binaries["path"].parent)
    with pytest.raises(ZipgateNotFound, match="ZIPGATE=/nonexistent/zipgate names .*, which does not exist"):
        find_binary({"ZIPGATE": "/nonexistent/zipgate"}, search_path=path_dir)
    not_executable = tmp_path / "plain" / EXE
    not_executable.parent.mkdir()
    not_executable.write_text("")
    with pytest.raises(ZipgateNotFound, match="is not an executable file"):
        find_binary({"ZIPGATE": str(not_executable)}, search_path=path_dir)
    with pytest.raises(ZipgateNotFound, match="ZIPGATE=nosuchcommand is not a command on PATH"):
        find_binary({"ZIPGATE": "nosuchcommand"}, search_path=path_dir)


def _binary_used_by_inner_session(pytester: pytest.Pytester) -> str:
    pytester.makepyfile(
        test_inner="""
        import json

        def test_which(zipgate_server):
            with open("record.json", "w") as f:
                json.dump(zipgate_server.argv[0], f)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    return record(pytester)


def test_the_plugin_finds_the_binary_in_that_order(
    pytester: pytest.Pytester, three_binaries: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = str(three_binaries["scripts"].parent)
    real_get_path = sysconfig.get_path
    monkeypatch.setattr(
        sysconfig, "get_path", lambda name, *a, **k: scripts if name == "scripts" else real_get_path(name, *a, **k)
    )
    monkeypatch.setenv("PATH", str(three_binaries["path"].parent) + os.pathsep + "/usr/bin:/bin")
    monkeypatch.setenv("ZIPGATE", str(three_binaries["env"]))
    assert _binary_used_by_inner_session(pytester) == str(three_binaries["env"])
    monkeypatch.delenv("ZIPGATE")
    assert _binary_used_by_inner_session(pytester) == str(three_binaries["path"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert _binary_used_by_inner_session(pytester) == str(three_binaries["scripts"])


def test_the_plugin_says_how_to_get_a_binary(pytester: pytest.Pytester, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ZIPGATE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **k: str(tmp_path / "scripts"))
    pytester.makepyfile("def test_one(zipgate):\n    pass\n\ndef test_two(zipgate):\n    pass\n")
    # `-rN`: no short summary, which repeats each message in full when the CI variable is set.
    result = pytester.runpytest("-rN")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*pytest-zipgate: no zipgate binary found. Looked for, in order:",
            "*1. $ZIPGATE: not set",
            "*Get one in any of these ways:",
            "*cargo install --path .*",
            "*cargo build --release*",
            "*ZIPGATE=target/release/zipgate pytest*",
            "*pip install zipgate-*.whl*maturin build --release*",
        ]
    )
    # A plain failure, once per test: no traceback into the plugin, no chained exception.
    output = result.stdout.str()
    assert "plugin.py" not in output
    assert "During handling" not in output
    assert output.count("Looked for, in order") == 2


def test_a_killed_session_leaves_no_server(real_zipgate: Path, tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("the parent-death signal is Linux's")
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pytest_zipgate import ZipgateServer\n"
            "server = ZipgateServer.start(sys.argv[1])\n"
            "print(server.pid, flush=True)\n"
            "time.sleep(60)\n",
            str(real_zipgate),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    server_pid = int(starter.stdout.readline())
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(server_pid):
        time.sleep(0.05)
    assert not _running(server_pid)


def _running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
