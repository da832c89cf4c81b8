"""Process handling the bench scripts share (standard library only).

Every process goes through spawn() (a session of its own, so stop() can
signal its whole group, and PDEATHSIG, so even a SIGKILLed bench does not
leave a server behind) and is stopped by stop(); a script registers
stop_all() with atexit so that whatever still runs at exit (normal,
exception, SIGTERM from bench/run, Ctrl-C) is stopped. Only processes
started here are signalled, by their process group while the leader lives.
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

_procs = []
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_child_setup, **kw)
    _procs.append(p)
    return p


def stop(p, grace=5.0):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    if p in _procs:
        _procs.remove(p)
    for f in (p.stdout, p.stderr):
        if f:
            f.close()


def stop_all():
    for p in list(_procs):
        stop(p, grace=2.0)


def run(cmd, timeout, **kw):
    """To completion within timeout: (returncode, or None when cut; stdout; stderr)."""
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        rc = None
    stop(p)
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, p, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if p.poll() is not None:
            raise RuntimeError("%s exited with code %s" % (what, p.returncode))
        if time.monotonic() > deadline:
            raise RuntimeError("%s does not listen on %d after %.0f s" % (what, port, timeout))
        time.sleep(0.05)


def tail(path, n=400):
    """The last `n` bytes of a log, on one line."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            return f.read().decode(errors="replace").replace("\n", " | ").strip()
    except OSError:
        return "(no log)"


def run_main(main):
    """Exits with main()'s code. bench/run stops a script with SIGTERM: it
    unwinds like SIGHUP and Ctrl-C, so atexit stops the script's children."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
