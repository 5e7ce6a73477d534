"""Run a command that may touch a dead NFS path without ever blocking the caller past a deadline.

A process that touches a hard-mounted path of a dead server sleeps in the kernel until the
server answers. The caller (a salt-minion) must not: the command runs in its own session, is
killed with its whole process group at the deadline, and if it still cannot be reaped (stuck in
uninterruptible I/O) it is left behind for Python's subprocess machinery to reap later, instead of
waiting for it. ``coreutils timeout`` alone is not enough for that: it waits for its child too.

A child that is an interpreter (the canary) can take seconds just to start on a loaded host; such a
child prints a line when it is about to touch the path (``startup_timeout``), and the deadline
counts from there, so that a slow start is never reported as a slow server.
"""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Optional, Sequence

from nfskit.errors import BackendError

_REAP_GRACE = 1.0


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    returncode: Optional[int]
    stdout: str
    stderr: str
    timed_out: bool
    elapsed: float
    unkillable: bool = False
    started: bool = True  # False: timed out before its first line (see ``startup_timeout``)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run(argv: Sequence[str], timeout: float, env: Optional[dict] = None, startup_timeout: Optional[float] = None) -> Outcome:
    """Run ``argv`` with ``cwd=/`` (never inside a mount) and answer within ``timeout`` + ~1 s.

    With ``startup_timeout``, ``timeout`` counts from the child's first line of output, which it
    prints before it touches the path and must print within ``startup_timeout`` seconds.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise BackendError(f"cannot run {argv[0]!r}: {exc.strerror}") from exc
    head = b""
    if startup_timeout is not None:
        head, started = _first_line(proc, startup_timeout)
        if not started:
            return _kill(proc, argv, start, head, started=False)
        start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return _kill(proc, argv, start, head)
    return Outcome(tuple(argv), proc.returncode, _text(head + out), _text(err), False, time.monotonic() - start)


def _first_line(proc: subprocess.Popen, timeout: float) -> tuple[bytes, bool]:
    """What the child printed up to its first newline, and whether that came within ``timeout``
    (or the child closed its stdout first, e.g. exited: then communicate() collects the rest)."""
    deadline = time.monotonic() + timeout
    head = b""
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in head:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return head, False
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            head += chunk
    return head, True


def _kill(proc: subprocess.Popen, argv: Sequence[str], start: float, head: bytes, started: bool = True) -> Outcome:
    """Kill the child's process group; reap it if it can be within a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    unkillable = False
    try:
        # communicate() keeps what an earlier, timed-out call read, so this has all the output
        out, err = proc.communicate(timeout=_REAP_GRACE)
    except subprocess.TimeoutExpired as expired:
        out, err = expired.stdout, expired.stderr
        unkillable = True
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
    return Outcome(tuple(argv), None, _text(head + (out or b"")), _text(err), True, time.monotonic() - start, unkillable, started)


def _text(data: Optional[bytes]) -> str:
    return (data or b"").decode("utf-8", "replace")
