"""Finding the zipgate binary and running ``zipgate serve`` as a child process.

Nothing here depends on pytest: :class:`ZipgateServer` works as a context
manager in any program::

    with ZipgateServer.start(find_binary().path) as server:
        client = Zipgate(server.url, server.token, server=server)
        client.seed({...})
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Union

__all__ = [
    "Binary",
    "ZipgateNotFound",
    "ZipgateServer",
    "ZipgateStartError",
    "find_binary",
    "wheel_binary_path",
]

#: The executable's file name on this platform.
EXE = "zipgate.exe" if os.name == "nt" else "zipgate"

#: Environment variable naming the binary; it wins over everything else.
ENV_BINARY = "ZIPGATE"

#: Environment variable the server reads its control token from.
ENV_TOKEN = "ZIPGATE_CONTROL_TOKEN"


class ZipgateNotFound(RuntimeError):
    """No zipgate binary was found; the message says how to get one."""


class ZipgateStartError(RuntimeError):
    """``zipgate serve`` did not start: it exited, printed no URL in time, or
    printed something else. The message names the server's log file."""

    def __init__(self, message: str, log_path: Optional[Path] = None) -> None:
        super().__init__(message)
        self.log_path = log_path


@dataclass(frozen=True)
class Binary:
    """A zipgate executable and where it was found."""

    path: Path
    #: ``"ZIPGATE"`` (the environment variable), ``"PATH"`` or ``"scripts"``
    #: (the running interpreter's scripts directory, where a wheel puts it).
    source: str


def wheel_binary_path(scripts_dir: Union[str, "os.PathLike[str]", None] = None) -> Path:
    """Where zipgate's wheel (maturin ``bindings = "bin"``)
    puts the executable: the running interpreter's scripts directory."""
    directory = scripts_dir if scripts_dir is not None else sysconfig.get_path("scripts")
    return Path(directory) / EXE


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def how_to_get_one() -> str:
    """The ways to get a zipgate binary, for error messages."""
    return (
        "Get one in any of these ways:\n"
        "  - cargo install --path .    in a zipgate checkout: installs zipgate into\n"
        "                              ~/.cargo/bin, which is on PATH\n"
        "  - cargo build --release     in a zipgate checkout, then point ZIPGATE at it:\n"
        "                              ZIPGATE=target/release/zipgate pytest ...\n"
        "  - pip install zipgate-*.whl the wheel `maturin build --release` makes in a\n"
        "                              zipgate checkout, into this interpreter's environment\n"
        f"                              ({sys.executable})"
    )


def find_binary(
    environ: Optional[Mapping[str, str]] = None,
    search_path: Optional[str] = None,
    scripts_dir: Union[str, "os.PathLike[str]", None] = None,
    cwd: Union[str, "os.PathLike[str]", None] = None,
) -> Binary:
    """Finds the zipgate executable, in this order:

    1. ``$ZIPGATE``: a path (relative ones from ``cwd``) or a bare command
       name looked up on ``PATH``. When set it must work: a wrong value is an
       error, not a reason to look elsewhere.
    2. ``zipgate`` on ``PATH`` (``search_path``, by default ``$PATH`` from
       ``environ``).
    3. ``zipgate`` in the running interpreter's scripts directory
       (``sysconfig.get_path("scripts")``), where zipgate's
       wheel puts it even when that directory is not on ``PATH``.

    Raises :class:`ZipgateNotFound`, saying what was tried and how to get a
    binary, when none is found.
    """
    env = os.environ if environ is None else environ
    path_list = env.get("PATH", os.defpath) if search_path is None else search_path
    base = Path(os.getcwd() if cwd is None else cwd)

    named = env.get(ENV_BINARY, "").strip()
    if named:
        if os.sep in named or (os.altsep and os.altsep in named):
            candidate = Path(named).expanduser()
            if not candidate.is_absolute():
                candidate = base / candidate
            if _executable(candidate):
                return Binary(candidate, ENV_BINARY)
            problem = "does not exist" if not candidate.exists() else "is not an executable file"
            raise ZipgateNotFound(
                f"{ENV_BINARY}={named} names {candidate}, which {problem}.\n"
                f"Unset {ENV_BINARY} to look for zipgate on PATH, or fix it.\n" + how_to_get_one()
            )
        found = shutil.which(named, path=path_list)
        if found:
            return Binary(Path(found), ENV_BINARY)
        raise ZipgateNotFound(
            f"{ENV_BINARY}={named} is not a command on PATH.\n"
            f"Set {ENV_BINARY} to the binary's path, or unset it.\n" + how_to_get_one()
        )

    on_path = shutil.which(EXE, path=path_list)
    if on_path:
        return Binary(Path(on_path), "PATH")

    wheel = wheel_binary_path(scripts_dir)
    if _executable(wheel):
        return Binary(wheel, "scripts")

    raise ZipgateNotFound(
        "no zipgate binary found. Looked for, in order:\n"
        f"  1. ${ENV_BINARY}: not set\n"
        f"  2. {EXE} on PATH: not found\n"
        f"  3. {wheel} (where zipgate's wheel puts it): not there\n" + how_to_get_one()
    )


def _option_value(args: Sequence[str], name: str) -> Optional[str]:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args`` (the last one)."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def _has_option(args: Sequence[str], name: str) -> bool:
    return any(arg == name or arg.startswith(name + "=") for arg in args)


class ZipgateServer:
    """A running ``zipgate serve --listen 127.0.0.1:0`` child process.

    Start one with :meth:`start`; stop it with :meth:`stop` (or use it as a
    context manager). Its stderr (the server's log) goes to :attr:`log_path`.
    """

    def __init__(
        self,
        process: "subprocess.Popen[bytes]",
        url: str,
        token: Optional[str],
        argv: List[str],
        log_path: Path,
        drain: threading.Thread,
    ) -> None:
        self.process = process
        #: Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash).
        self.url = url
        #: The control token the server requires, or None when it needs none.
        self.token = token
        #: The full command line the server runs with.
        self.argv = argv
        #: File holding the server's stderr (and any stdout after the URL line).
        self.log_path = log_path
        self._drain = drain
        self._stopped = False

    @classmethod
    def start(
        cls,
        binary: Union[str, "os.PathLike[str]"],
        args: Sequence[str] = (),
        *,
        control_token: Optional[str] = None,
        log_path: Union[str, "os.PathLike[str]", None] = None,
        startup_timeout: float = 30.0,
        env: Optional[Mapping[str, str]] = None,
        die_with_parent: bool = True,
    ) -> "ZipgateServer":
        """Starts ``binary serve --listen 127.0.0.1:0 ARGS`` and waits until it
        answers ``/_zipgate/health``.

        ``control_token``: None (the default) makes a random one; ``""`` starts
        the server without a token. The token reaches the server through its
        environment (``ZIPGATE_CONTROL_TOKEN``), not the command line, so other
        users of the machine cannot read it from the process list. A
        ``--control-token`` in ``args`` wins and is used as the token.

        ``die_with_parent`` (Linux): the server gets SIGTERM when the thread
        that started it ends, so a pytest killed with SIGKILL leaves no server
        behind; pass False when starting it from a thread that ends first.

        Raises :class:`ZipgateStartError` (naming the log file) when the server
        exits, prints something other than its URL, or is not serving within
        ``startup_timeout`` seconds.
        """
        args = [str(a) for a in args]
        child_env = dict(os.environ if env is None else env)
        token: Optional[str]
        if _has_option(args, "--control-token"):
            token = _option_value(args, "--control-token")
        elif control_token == "":
            token = None
            child_env.pop(ENV_TOKEN, None)
        else:
            token = control_token if control_token is not None else secrets.token_urlsafe(24)
            child_env[ENV_TOKEN] = token
        if _has_option(args, "--no-control"):
            token = None

        argv = [str(binary), "serve"]
        if not _has_option(args, "--listen"):
            argv += ["--listen", "127.0.0.1:0"]
        argv += args

        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="zipgate-", suffix=".log")
            os.close(fd)
            log = Path(name)
        else:
            log = Path(log_path)
            log.parent.mkdir(parents=True, exist_ok=True)
        command = " ".join(argv)
        with open(log, "ab") as stderr:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    env=child_env,
                    preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,
                )
            except OSError as e:
                raise ZipgateStartError(f"could not run {command}: {e}", log) from e

        # The URL is the first stdout line; a thread reads it (so the wait can
        # time out) and then keeps draining stdout into the log, so a chatty
        # server never blocks on a full pipe.
        first: "queue.Queue[bytes]" = queue.Queue(maxsize=1)
        drain = threading.Thread(
            target=_drain_stdout, args=(process.stdout, first, log), daemon=True, name="zipgate-stdout"
        )
        drain.start()
        deadline = time.monotonic() + startup_timeout

        def fail(why: str) -> ZipgateStartError:
            if process.poll() is None:
                process.kill()
            process.wait()
            drain.join(timeout=5)
            return ZipgateStartError(
                f"zipgate did not start: {why}\n  command: {command}\n  log (stderr): {log}\n" + _tail_block(log),
                log,
            )

        try:
            line = first.get(timeout=startup_timeout)
        except queue.Empty:
            raise fail(f"it printed no URL within {startup_timeout:g} s") from None
        url = line.decode("utf-8", "replace").strip()
        if not line:
            try:
                code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise fail("it closed its stdout without printing its URL") from None
            raise fail(f"it exited with code {code} before printing its URL")
        if not url.startswith(("http://", "https://")):
            raise fail(f"its first stdout line is {url!r}, not its URL")

        server = cls(process, url.rstrip("/"), token, argv, log, drain)
        last_error = ""
        while True:
            if process.poll() is not None:
                raise fail(f"it exited with code {process.returncode} after printing {url}")
            try:
                server.health(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
                return server
            except (OSError, ValueError) as e:
                last_error = str(e)
            if time.monotonic() >= deadline:
                raise fail(f"{url}/_zipgate/health did not answer within {startup_timeout:g} s: {last_error}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    @property
    def returncode(self) -> Optional[int]:
        """The exit code once the server has exited, else None."""
        return self.process.poll()

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.process.poll() is None

    def health(self, timeout: float = 10.0) -> Dict[str, Any]:
        """``GET /_zipgate/health`` (it needs no token)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url + "/_zipgate/health", timeout=timeout) as response:
            answer: Dict[str, Any] = json.load(response)
        return answer

    def log_size(self) -> int:
        """Bytes in the log so far (an offset for :meth:`log_since`)."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int, max_lines: int = 200) -> str:
        """The log written after ``offset`` (the last ``max_lines`` lines)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = text.splitlines()
        if len(lines) > max_lines:
            lines = [f"[... {len(lines) - max_lines} earlier lines in {self.log_path}]"] + lines[-max_lines:]
        return "\n".join(lines)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log."""
        return _tail(self.log_path, lines)

    def describe_exit(self) -> str:
        """Why the server is gone, with its log's path and last lines (for errors)."""
        return (
            f"the zipgate server (pid {self.pid}, {self.url}) exited with code {self.returncode}\n"
            f"  command: {' '.join(self.argv)}\n"
            f"  log (stderr): {self.log_path}\n" + _tail_block(self.log_path)
        )

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """Stops the server: SIGTERM, then SIGKILL after ``timeout`` seconds.
        Returns its exit code. Stopping a stopped server does nothing."""
        if not self._stopped:
            self._stopped = True
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self._drain.join(timeout=5)
        return self.process.returncode

    def __enter__(self) -> "ZipgateServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.returncode}"
        return f"<ZipgateServer {self.url} pid={self.pid} {state}>"


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the thread that started
    the server ends (with its process), so a killed pytest leaves no server."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort: never stop the server from starting
        pass


def _drain_stdout(stdout: Optional[IO[bytes]], first: "queue.Queue[bytes]", log: Path) -> None:
    if stdout is None:
        first.put(b"")
        return
    with stdout:
        first.put(stdout.readline())
        for line in stdout:
            with open(log, "ab") as f:
                f.write(b"[stdout] " + line)


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _tail_block(path: Path, lines: int = 20) -> str:
    tail = _tail(path, lines)
    if not tail:
        return "  (the log is empty)"
    return f"--- last lines of {path} ---\n{tail}\n---"
