"""A salt-master for the VM minions, run from generated config inside the harness' network namespace.

Why not pytest-salt-factories here (the integration tier uses it): its start checks connect to the
master's ports and its event listener takes the master's events over a localhost TCP port, both from
the test process' network namespace. The VMs' master must listen inside the private namespace
(where the VMs' network is), so those checks cannot see it. This master is a plain
``salt-master`` process from this venv (same salt as the minions), started under ``nsenter`` and
stopped by its PID. Jobs go through one connected ``LocalClient`` in the namespace (saltclient.py:
a CLI process per call costs 2-3 s here, the connected client 0.8 s); ``salt-run`` and ``salt-key``
run as CLI processes the same way and answer in JSON.

file_roots hold copies of the repo's ``_modules``, ``_states``, ``_utils`` (those that exist) and the
``salt/`` state tree; ``refresh_file_roots()`` copies them again, so ``saltutil.sync_all`` ships the
working tree as it is now.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from tests.vm.netns import HOST_ADDR, NetNs, stop_process
from tests.vm.saltclient import SaltClient

REPO = Path(__file__).resolve().parents[2]
LOADER_DIRS = ("_modules", "_states", "_utils")
BIN = Path(sys.executable).parent
PUBLISH_PORT = 4505  # the defaults: the namespace is private, nothing else listens there
RET_PORT = 4506


class SaltCallError(AssertionError):
    """A salt call failed: the minion did not answer, the function raised, or it returned failure."""


@dataclass
class SaltResult:
    argv: List[str]
    returncode: int
    data: Any
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (f"salt {' '.join(self.argv)} -> rc={self.returncode}\n"
                f"stdout: {self.stdout[-4000:]}\nstderr: {self.stderr[-2000:]}")


class Master:
    """salt-master on ``HOST_ADDR`` (the namespace's bridge) with auto-accept for the VM minions."""

    def __init__(self, netns: NetNs, workdir: Path):
        self.netns = netns
        self.workdir = Path(workdir)
        self.config_dir = self.workdir / "etc"
        self.file_root = self.workdir / "file_root"
        self.pillar_root = self.workdir / "pillar_root"
        # salt prefixes root_dir to every path that is not under it already: keep them all under it
        self.root = self.workdir / "root"
        self.log_file = self.root / "master.log"
        self.proc: Optional[subprocess.Popen] = None
        self.client = SaltClient(netns, self.config_dir / "master", self.workdir / "saltclient.log")
        self.calls = 0  # salt jobs published, for the tier's per-test progress lines

    def write_config(self) -> None:
        root = self.root
        config = {
            "id": "nkvm-master",
            "interface": HOST_ADDR,
            "publish_port": PUBLISH_PORT,
            "ret_port": RET_PORT,
            "root_dir": str(root),
            "pki_dir": str(root / "pki"),
            "cachedir": str(root / "cache"),
            "sock_dir": str(root / "sock"),
            "pidfile": str(root / "salt-master.pid"),
            "log_file": str(self.log_file),
            "key_logfile": str(root / "key.log"),
            "log_level_logfile": "info",
            "user": "root",
            "auto_accept": True,
            "worker_threads": 3,
            "file_roots": {"base": [str(self.file_root)]},
            "pillar_roots": {"base": [str(self.pillar_root)]},
            # a test VM under TCG is slow to answer; a short gather timeout would read as "no return"
            "gather_job_timeout": 30,
            "timeout": 60,
        }
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "master").write_text(yaml.safe_dump(config, default_flow_style=False))
        self.pillar_root.mkdir(parents=True, exist_ok=True)
        if not (self.pillar_root / "top.sls").exists():
            (self.pillar_root / "top.sls").write_text("base: {}\n")
        self.refresh_file_roots()

    def refresh_file_roots(self) -> List[str]:
        """Copy the repo's loader dirs and state tree into file_roots again; returns what was copied."""
        copied = []
        for name in LOADER_DIRS:
            shutil.rmtree(self.file_root / name, ignore_errors=True)
            if (REPO / name).is_dir():  # skip what the tree does not have (yet)
                shutil.copytree(REPO / name, self.file_root / name, ignore=shutil.ignore_patterns("__pycache__"))
                copied.append(name)
        self.file_root.mkdir(parents=True, exist_ok=True)
        if (REPO / "salt").is_dir():
            shutil.copytree(REPO / "salt", self.file_root, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
            copied.append("salt/")
        return copied

    def write_sls(self, name: str, text: str) -> Path:
        """Put ``name.sls`` (dots are directories, as in Salt) into the state tree."""
        path = self.file_root.joinpath(*name.split(".")).with_suffix(".sls")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def write_pillar(self, name: str, data: Dict[str, Any], targets: str = "*") -> None:
        """Pillar file ``name`` for minions matching ``targets``; run ``saltutil.refresh_pillar`` after."""
        (self.pillar_root / f"{name}.sls").write_text(yaml.safe_dump(data, default_flow_style=False))
        top_path = self.pillar_root / "top.sls"
        top = yaml.safe_load(top_path.read_text()) or {}
        entries = top.setdefault("base", {}) or {}
        top["base"] = entries
        entries.setdefault(targets, [])
        if name not in entries[targets]:
            entries[targets].append(name)
        top_path.write_text(yaml.safe_dump(top, default_flow_style=False))

    def start(self, timeout: float = 90) -> "Master":
        self.write_config()
        log = open(self.workdir / "master.stdout", "w")
        self.proc = self.netns.popen([str(BIN / "salt-master"), "-c", str(self.config_dir), "-l", "warning"],
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"salt-master exited rc={self.proc.returncode}: {self.log_tail()}")
            if self._ports_open():
                return self
            time.sleep(0.5)
        raise TimeoutError(f"salt-master not listening after {timeout:.0f}s: {self.log_tail()}")

    def _ports_open(self) -> bool:
        probe = ("import socket,sys\n"
                 f"for p in ({PUBLISH_PORT},{RET_PORT}):\n"
                 f"    socket.create_connection(('{HOST_ADDR}',p),1).close()\n")
        return self.netns.run([sys.executable, "-c", probe], capture_output=True).returncode == 0

    def stop(self) -> None:
        self.client.stop()
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.workdir / "master.stdout", self.log_file):
            if path.exists():
                text += f"\n--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return text

    # --- the salt CLI --------------------------------------------------------------------------

    def salt(self, target: str, fun: str, *args: Any, timeout: float = 120, tgt_type: str = "glob",
             **kwargs: Any) -> SaltResult:
        """``salt <target> <fun> args key=value`` through the connected client; never raises on failure.
        ``data`` holds the minions that answered; ``returncode`` is what the CLI would exit with: the
        highest retcode among them, 1 if none answered."""
        call = [target, fun, *[repr(a) for a in args], *[f"{k}={v!r}" for k, v in kwargs.items()]]
        self.calls += 1
        answer = self.client.cmd(target, fun, args, kwargs, timeout=timeout, tgt_type=tgt_type)
        if "error" in answer:
            return SaltResult(call, -1, None, "", answer["error"])
        returns = {minion: ret for minion, ret in answer["returns"].items() if ret.get("out") != "no_return"}
        data = {minion: ret.get("ret") for minion, ret in returns.items()}
        returncode = max((ret.get("retcode") or 0 for ret in returns.values()), default=1)
        return SaltResult(call, returncode, data, json.dumps(data, indent=1, default=repr), "")

    def salt_run(self, fun: str, *args: Any, timeout: float = 120, **kwargs: Any) -> SaltResult:
        argv = ["--out=json", fun, *[_cli_arg(a) for a in args], *[f"{k}={_cli_arg(v)}" for k, v in kwargs.items()]]
        return self._cli("salt-run", argv, timeout)

    def _cli(self, script: str, argv: Sequence[str], timeout: float) -> SaltResult:
        full = [str(BIN / script), "-c", str(self.config_dir), *argv]
        try:
            proc = self.netns.run(full, capture_output=True, text=True, timeout=timeout + 60)
        except subprocess.TimeoutExpired as exc:
            return SaltResult(list(argv), -1, None, _text(exc.stdout), f"CLI timed out: {_text(exc.stderr)}")
        return SaltResult(list(argv), proc.returncode, _json_out(proc.stdout), proc.stdout, proc.stderr)

    def accepted_keys(self) -> List[str]:
        proc = self.netns.run([str(BIN / "salt-key"), "-c", str(self.config_dir), "--out=json", "-l", "acc"],
                              capture_output=True, text=True)
        return json.loads(proc.stdout or "{}").get("minions", [])

    def delete_key(self, minion_id: str) -> None:
        self.netns.run([str(BIN / "salt-key"), "-c", str(self.config_dir), "-y", "-d", minion_id],
                       capture_output=True)


def _json_out(stdout: str) -> Any:
    """The JSON document in the CLI's stdout; salt prints plain-text notes ("No minions matched...") before it."""
    lines = stdout.splitlines()
    for start, line in enumerate(lines):
        if line.startswith(("{", "[")):
            try:
                return json.loads("\n".join(lines[start:]))
            except ValueError:
                return None
    return None


def _cli_arg(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # Salt's CLI parses YAML, and JSON is YAML


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
