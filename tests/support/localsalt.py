"""A real salt-master, salt-minions and salt-api on loopback, outside pytest (for the demo).

Everything lives under one work dir (configs, keys, caches, logs, sockets) on free ports, so it
never touches /etc/salt or a Salt installation on the host. Daemons are stopped by PID.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

import yaml

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSalt:
    def __init__(self, workdir: Path, master_config: dict[str, Any]):
        self.workdir = Path(workdir)
        self.publish_port = free_port()
        self.ret_port = free_port()
        self.api_port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.master_dir = self.workdir / "master"
        config = {
            "id": "demo-master",
            "root_dir": str(self.master_dir),
            "interface": "127.0.0.1",
            "publish_port": self.publish_port,
            "ret_port": self.ret_port,
            "user": "root",
            "auto_accept": True,
            "log_file": str(self.master_dir / "master.log"),
            "log_level_logfile": "info",
            "rest_cherrypy": {"port": self.api_port, "host": "127.0.0.1", "disable_ssl": True},
            "netapi_enable_clients": ["local", "local_async", "runner", "runner_async", "wheel"],
        }
        config.update(master_config)
        self._write(self.master_dir / "conf" / "master", config)

    @staticmethod
    def _write(path: Path, config: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, default_flow_style=False))

    def _spawn(self, name: str, args: list[str], env: Optional[dict[str, str]] = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.out", "ab")
        # Daemons cache bytecode as an installed salt-master does. Without it (PYTHONDONTWRITEBYTECODE
        # in a developer's or CI shell) every runner job, a fresh process, compiles the synced
        # _utils/nfskit from source again: ~40 ms CPU per job that no deployment pays.
        env = dict(os.environ if env is None else env)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_master(self) -> None:
        self._spawn("salt-master", [str(BIN / "salt-master"), "-c", str(self.master_dir / "conf"), "-l", "quiet"])
        self.wait(lambda: socket.create_connection(("127.0.0.1", self.ret_port), timeout=1).close() is None, 60, "salt-master")

    def start_minion(self, minion_id: str, config: dict[str, Any], env: Optional[dict[str, str]] = None) -> None:
        base = self.workdir / minion_id
        settings = {
            "id": minion_id,
            "root_dir": str(base),
            "master": "127.0.0.1",
            "master_port": self.ret_port,
            "publish_port": self.publish_port,
            "user": "root",
            "multiprocessing": False,
            "log_file": str(base / "minion.log"),
            "log_level_logfile": "info",
        }
        settings.update(config)
        self._write(base / "conf" / "minion", settings)
        self._spawn(minion_id, [str(BIN / "salt-minion"), "-c", str(base / "conf"), "-l", "quiet"], env=env)
        self.wait(lambda: self.salt(minion_id, "test.ping", timeout=5).get(minion_id) is True, 90, f"minion {minion_id}")

    def start_api(self) -> str:
        self._spawn("salt-api", [str(BIN / "salt-api"), "-c", str(self.master_dir / "conf"), "-l", "quiet"])
        url = f"http://127.0.0.1:{self.api_port}"

        def up() -> bool:
            try:
                urllib.request.urlopen(url + "/", timeout=2)
                return True
            except OSError:
                return False

        self.wait(up, 60, "salt-api")
        return url

    def salt(self, target: str, fun: str, *args: str, timeout: int = 120) -> dict:
        out = subprocess.run(
            [str(BIN / "salt"), "-c", str(self.master_dir / "conf"), "--out=json", "--static", f"--timeout={timeout}", target, fun, *args],
            capture_output=True, text=True, timeout=timeout + 30,
        )
        try:
            return json.loads(out.stdout or "{}")
        except json.JSONDecodeError:
            return {}

    def salt_run(self, fun: str, *args: str, timeout: int = 120) -> Any:
        out = subprocess.run(
            [str(BIN / "salt-run"), "-c", str(self.master_dir / "conf"), "--out=json", fun, *args],
            capture_output=True, text=True, timeout=timeout,
        )
        return json.loads(out.stdout) if out.stdout.strip() else None

    @staticmethod
    def wait(check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


class Api:
    """salt-api (rest_cherrypy) client: login with eauth, then lowstate calls."""

    def __init__(self, url: str):
        self.url = url
        self.token: Optional[str] = None

    def _post(self, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json", **({"X-Auth-Token": self.token} if self.token else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, None

    def login(self, username: str, password: str, eauth: str) -> int:
        status, body = self._post("/login", {"username": username, "password": password, "eauth": eauth})
        if status == 200:
            self.token = body["return"][0]["token"]
        return status

    def post(self, **lowstate: Any) -> tuple[int, Any]:
        """One lowstate call: ``(HTTP status, first return)``; the status tells refusals apart."""
        status, body = self._post("/", [lowstate])
        return status, (body["return"][0] if status == 200 else None)

    def call(self, **lowstate: Any) -> Any:
        status, body = self._post("/", [lowstate])
        if status != 200:
            raise RuntimeError(f"salt-api answered HTTP {status} for {lowstate.get('fun')}")
        return body["return"][0]
