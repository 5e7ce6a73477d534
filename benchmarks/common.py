"""Small helpers shared by the benchmarks: progress output, timing, medians, subprocesses."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"

_T0 = time.monotonic()


def say(msg: str) -> None:
    """Progress line on stderr, prefixed with the time since the benchmark started."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def children_cpu() -> float:
    """CPU seconds (user + system) of all waited-for child processes so far (and theirs)."""
    t = os.times()
    return t.children_user + t.children_system


def run_timed(argv, *, env=None, heartbeat=None, every=30.0, **kwargs):
    """Run ``argv`` to completion; return (seconds, CompletedProcess).

    ``proc.cpu_s`` is the CPU time (user + system) the command and its children used: on a
    shared machine it moves much less with other people's load than the wall time does.

    ``heartbeat`` (a callable returning a short status string) is printed every ``every`` seconds
    while the command runs, so a 20-minute run shows that it is alive and how far it got.
    """
    done = threading.Event()

    def beat():
        start = time.monotonic()
        while not done.wait(every):
            extra = ""
            if heartbeat is not None:
                try:
                    extra = ": " + heartbeat()
                except Exception as exc:  # a heartbeat must never break the run
                    extra = f": ({exc})"
            say(f"  ... still running after {time.monotonic() - start:.0f}s{extra}")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    start, cpu0 = time.monotonic(), children_cpu()
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, **kwargs)
        proc.cpu_s = children_cpu() - cpu0
    finally:
        elapsed = time.monotonic() - start
        done.set()
        thread.join()
    return elapsed, proc


def env_with(**extra) -> dict:
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def fmt_s(value) -> str:
    if value is None:
        return "n/a"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 100:
        return f"{value:.2f} s"
    return f"{value:.0f} s"


def fmt_x(ratio) -> str:
    """A speed-up factor: 1.3x, 12x, 340x."""
    if ratio is None:
        return "n/a"
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"
