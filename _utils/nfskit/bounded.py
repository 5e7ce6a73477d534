"""Run a command that may touch a dead NFS path without ever blocking the caller past a deadline.

A process that touches a hard-mounted path of a dead server sleeps in the kernel until the
server answers. The caller (a salt-minion) must not: the command runs in its own session, is
killed with its whole process group at the deadline, and if it still cannot be reaped (stuck in
uninterruptible I/O) it is left behind for Python's subprocess machinery to reap later, instead of
waiting for it. ``coreutils timeout`` alone is not enough for that: it waits for its child too.
"""
from __future__ import annotations

import os
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

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run(argv: Sequence[str], timeout: float, env: Optional[dict] = None) -> Outcome:
    """Run ``argv`` with ``cwd=/`` (never inside a mount) and answer within ``timeout`` + ~1 s."""
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
    try:
        out, err = proc.communicate(timeout=timeout)
        return Outcome(tuple(argv), proc.returncode, _text(out), _text(err), False, time.monotonic() - start)
    except subprocess.TimeoutExpired as expired:
        partial_out, partial_err = expired.stdout, expired.stderr
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    unkillable = False
    try:
        out, err = proc.communicate(timeout=_REAP_GRACE)
    except subprocess.TimeoutExpired as expired:
        out, err = expired.stdout or partial_out, expired.stderr or partial_err
        unkillable = True
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
    return Outcome(tuple(argv), None, _text(out), _text(err), True, time.monotonic() - start, unkillable)


def _text(data: Optional[bytes]) -> str:
    return (data or b"").decode("utf-8", "replace")
