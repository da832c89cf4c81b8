"""The pytest plugin (entry point ``pytest11: zipgate``).

Fixtures:

- ``zipgate_server`` (session): one ``zipgate serve --listen 127.0.0.1:0``
  process for the whole session, with a random control token, stopped at the
  end. Started on first use only, so sessions that never ask for it run no
  server and need no binary.
- ``zipgate`` (function): a :class:`~pytest_zipgate.Zipgate` client for that
  server, reset (``POST /_zipgate/reset``) before the test.

When a test that used ``zipgate`` fails, what the server logged meanwhile is
added to its report as "Captured zipgate log".
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import pytest

from .client import Zipgate
from .server import ZipgateNotFound, ZipgateServer, ZipgateStartError, find_binary

_LOG_START = pytest.StashKey[Tuple[ZipgateServer, int]]()

DEFAULT_STARTUP_TIMEOUT = 30.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zipgate", "zipgate server (pytest-zipgate)")
    group.addoption(
        "--zipgate-arg",
        action="append",
        default=[],
        metavar="ARG",
        dest="zipgate_arg",
        help="extra argument for `zipgate serve` (repeatable), after those of the "
        "zipgate_args ini setting, e.g. --zipgate-arg=--clock=frozen",
    )
    group.addoption(
        "--zipgate-control-token",
        default=None,
        metavar="TOKEN",
        dest="zipgate_control_token",
        help="control token the server requires and the client sends (default: a random one per session)",
    )
    group.addoption(
        "--zipgate-startup-timeout",
        default=None,
        type=float,
        metavar="SECONDS",
        dest="zipgate_startup_timeout",
        help=f"seconds the server may take to start (default {DEFAULT_STARTUP_TIMEOUT:g})",
    )
    parser.addini(
        "zipgate_args",
        type="args",
        default=[],
        help="extra arguments for `zipgate serve`, split like a shell (e.g. `--clock frozen --seed 7`)",
    )
    parser.addini(
        "zipgate_control_token",
        default="",
        help="control token for the zipgate server (default: a random one per session)",
    )
    parser.addini(
        "zipgate_startup_timeout",
        default="",
        help=f"seconds the zipgate server may take to start (default {DEFAULT_STARTUP_TIMEOUT:g})",
    )


def server_args(config: pytest.Config) -> List[str]:
    """Extra ``zipgate serve`` arguments: the ini ``zipgate_args``, then every
    ``--zipgate-arg``."""
    return [str(a) for a in config.getini("zipgate_args")] + list(config.getoption("zipgate_arg") or [])


def _control_token(config: pytest.Config) -> Optional[str]:
    token = config.getoption("zipgate_control_token") or config.getini("zipgate_control_token")
    return token or None


def _startup_timeout(config: pytest.Config) -> float:
    option = config.getoption("zipgate_startup_timeout")
    if option is not None:
        return float(option)
    ini = str(config.getini("zipgate_startup_timeout") or "").strip()
    if not ini:
        return DEFAULT_STARTUP_TIMEOUT
    try:
        return float(ini)
    except ValueError:
        raise pytest.UsageError(f"zipgate_startup_timeout: {ini!r} is not a number of seconds") from None


@pytest.fixture(scope="session")
def zipgate_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZipgateServer]:
    """The session's zipgate server: found (``$ZIPGATE``, ``zipgate`` on PATH,
    then the one zipgate's wheel put beside this Python),
    started on a free loopback port with a control token, stopped when the
    session ends. Its log is in ``zipgate_server.log_path``."""
    config = request.config
    # pytest.fail outside the except blocks, so the report shows the message
    # once, not chained to the exception it came from.
    problem = None
    try:
        binary = find_binary(cwd=config.invocation_params.dir)
    except ZipgateNotFound as e:
        problem = str(e)
    if problem is not None:
        pytest.fail(f"pytest-zipgate: {problem}", pytrace=False)
    log_path = tmp_path_factory.mktemp("zipgate") / "zipgate.log"
    try:
        server = ZipgateServer.start(
            binary.path,
            server_args(config),
            control_token=_control_token(config),
            log_path=log_path,
            startup_timeout=_startup_timeout(config),
        )
    except ZipgateStartError as e:
        problem = f"{e}\n  binary: {binary.path} (from {binary.source})"
    if problem is not None:
        pytest.fail(f"pytest-zipgate: {problem}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zipgate(zipgate_server: ZipgateServer, request: pytest.FixtureRequest) -> Iterator[Zipgate]:
    """A control-plane client for the session's zipgate server, reset before
    the test: the starting fixtures and fault rules, no jobs, no journal
    entries. ``zipgate.url`` is the base URL to point the client under test at."""
    server = zipgate_server
    if not server.alive():
        pytest.fail(f"pytest-zipgate: {server.describe_exit()}", pytrace=False)
    if "--no-control" in server.argv:
        pytest.fail(
            "pytest-zipgate: the zipgate fixture needs the control plane, and the server runs with "
            "--no-control; drop it, or use the zipgate_server fixture alone",
            pytrace=False,
        )
    client = Zipgate(server.url, server.token, server=server)
    request.node.stash[_LOG_START] = (server, server.log_size())
    client.reset()
    yield client
    if not server.alive():
        pytest.fail(f"pytest-zipgate: during this test, {server.describe_exit()}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Adds what the server logged since the test's reset to a failed report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    started = item.stash.get(_LOG_START, None)
    if started is not None and report.failed:
        server, offset = started
        text = server.log_since(offset)
        if text:
            report.sections.append((f"Captured zipgate log {report.when}", text))
