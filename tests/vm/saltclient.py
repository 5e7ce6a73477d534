"""Salt jobs for the VM minions through one long-lived ``salt.client.LocalClient`` inside the
harness' network namespace, instead of one ``salt`` CLI process per call.

Why: a CLI call costs 2-3 s here (a new Python process imports salt, reads the config, connects,
subscribes to the event bus) against 0.8 s for the same ``test.ping`` from a client that is already
connected, and a tier run makes a few hundred calls. The client must run inside the namespace: it
publishes to the master's ret port on the namespace's bridge address.

Host side: ``SaltClient(netns, master_config).cmd(...)``. In the namespace, this file runs as
``python -m tests.vm.saltclient <master config file>``: one JSON request per stdin line, one JSON answer per
stdout line. Arguments travel as JSON values, not as CLI strings, so nothing is re-parsed as YAML
("true" stays a string) and keyword arguments stay keyword arguments.
"""
from __future__ import annotations

import json
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from tests.vm.netns import stop_process

REPO = Path(__file__).resolve().parents[2]


class SaltClient:
    """The host side: starts the in-namespace client on first use, again if it died or hung."""

    def __init__(self, netns, master_config: Path, log: Path):
        self.netns = netns
        self.master_config = Path(master_config)
        self.log = Path(log)
        self.proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()  # one job at a time: the answers come back on one pipe
        self._selector: Optional[selectors.BaseSelector] = None

    def cmd(self, target: str, fun: str, args: Sequence[Any] = (), kwargs: Optional[Dict[str, Any]] = None,
            timeout: float = 120, tgt_type: str = "glob") -> Dict[str, Any]:
        """``LocalClient.cmd(..., full_return=True)``: ``{"returns": {minion: {"ret", "retcode"}}}`` (a
        targeted minion that did not answer has ``"out": "no_return"``), or
        ``{"error": text}`` when the client could not publish or did not answer within timeout + 60 s."""
        request = {"tgt": target, "fun": fun, "arg": list(args), "kwarg": kwargs or {}, "timeout": timeout,
                   "tgt_type": tgt_type}
        with self._lock:
            self._ensure_started()
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self._readline(timeout + 60)
            if line is None:
                self.stop()  # hung or dead: the next call starts a fresh client
                return {"error": f"salt client gave no answer to {fun} within {timeout + 60:.0f}s"}
            return json.loads(line)

    def _ensure_started(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.stop()
        with open(self.log, "a") as log:
            self.proc = self.netns.popen([sys.executable, "-m", "tests.vm.saltclient", str(self.master_config)],
                                         cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         text=True, bufsize=1)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def _readline(self, timeout: float) -> Optional[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._selector.select(timeout=min(5.0, max(0.0, deadline - time.monotonic()))):
                line = self.proc.stdout.readline()
                return line or None  # '' is EOF: the client died
            if self.proc.poll() is not None:
                return None
        return None

    def stop(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self.proc is not None:
            stop_process(self.proc, timeout=5)
            self.proc = None


def serve(master_config: str) -> None:
    """The namespace side: answer requests until stdin closes."""
    import salt.client

    # salt prints notes ("No minions matched the target") to stdout: keep the answer pipe clean
    answers, sys.stdout = sys.stdout, sys.stderr
    client = salt.client.LocalClient(c_path=master_config)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.monotonic()
        try:
            returns = client.cmd(request["tgt"], request["fun"], request["arg"], timeout=request["timeout"],
                                 tgt_type=request["tgt_type"], kwarg=request["kwarg"] or None, full_return=True)
            answer: Dict[str, Any] = {"returns": returns}
        except Exception as exc:  # noqa: BLE001 - the host side reports it as a failed call
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer, default=repr), file=answers, flush=True)
        # the log says which jobs a slow run spent its time in
        print(f"{time.strftime('%H:%M:%S')} {time.monotonic() - started:6.2f}s {request['tgt']} {request['fun']} "
              f"{json.dumps(request['arg'])[:80]} {json.dumps(request['kwarg'])[:120]}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
