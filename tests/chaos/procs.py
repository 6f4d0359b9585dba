"""Child processes that cannot outlive the run.

Every process the harness starts (server, proxy, producers, members) runs in its own session, so
a signal reaches it and whatever it started, and nothing else. On Linux each child also asks the
kernel to SIGKILL it when the harness dies (``PR_SET_PDEATHSIG``, set by a small launcher before
it execs the real program, since ``preexec_fn`` is unsafe in a process with threads), so even a
``kill -9`` of the harness leaves nothing behind; :func:`kill_all` (registered with ``atexit``)
covers a normal exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
_children: dict[int, subprocess.Popen] = {}
_lock = threading.Lock()

# The harness is a package that can be imported as ``tests.chaos`` (``python -m tests.chaos``) or
# as ``chaos`` (pytest puts tests/ on sys.path); workers are started as modules of whichever it is.
PACKAGE = __name__.rpartition(".")[0]
_ROOT = Path(__file__).resolve().parents[PACKAGE.count(".") + 1]


# argv: parent pid, program, args. The parent-death signal survives exec; a parent that died
# before it was set is caught by the getppid() check.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    f"    ctypes.CDLL(None).prctl({_PR_SET_PDEATHSIG}, signal.SIGKILL)\n"
    "except Exception:\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def spawn(
    argv: Sequence[str],
    *,
    stdout: int | IO | None = subprocess.DEVNULL,
    stderr: int | IO | None = subprocess.DEVNULL,
    stdin: int | IO | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in a session of its own; it is killed by :func:`kill_all` at the latest."""
    if sys.platform.startswith("linux"):
        argv = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *argv]
    proc = subprocess.Popen(
        list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd, start_new_session=True
    )
    with _lock:
        _children[proc.pid] = proc
    return proc


def module_argv(module: str, *args: str) -> list[str]:
    """``python -m <package>.<module> args...`` for a worker module of this package."""
    return [sys.executable, "-m", f"{PACKAGE}.{module}", *args]


def module_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a worker needs to import this package (and facade, from this venv)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("FACADE_URL", None)  # a worker only ever talks to the URL it is given
    env.update(extra or {})
    return env


def alive(proc: subprocess.Popen) -> bool:
    """Whether ``proc`` has not exited, without reaping it (its pid stays reserved meanwhile)."""
    if proc.returncode is not None:
        return False
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False


def signal_group(proc: subprocess.Popen, sig: int) -> bool:
    """Send ``sig`` to the process's session; False if it has exited already.

    Children are never reaped before their session is signalled for the last time, so the id
    signalled is always this process's (a reaped pid could be reused by a stranger).
    """
    if not alive(proc):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    return True


def reap(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """Wait up to ``timeout`` s for ``proc`` to exit (then SIGKILL its session), kill whatever it
    left in its session, reap it and forget it; returns its exit status."""
    deadline = time.monotonic() + timeout
    while alive(proc) and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.returncode is None:
        # Still unreaped, so its pid is still its own: the session is safe to kill.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    code = proc.wait()
    with _lock:
        _children.pop(proc.pid, None)
    return code


def kill_all() -> None:
    """SIGKILL every child still running (stopped ones too) and reap it."""
    with _lock:
        procs = list(_children.values())
    for proc in procs:
        signal_group(proc, signal.SIGKILL)
    for proc in procs:
        reap(proc, timeout=10)


atexit.register(kill_all)
