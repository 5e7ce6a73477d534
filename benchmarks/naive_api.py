"""The naive design (danquack/NFS-API, research/anchors.md §4.4), re-implemented small for the benchmark.

What is kept from the original, because it is what the benchmark measures:
- 4 worker processes (gunicorn sync workers: a listening socket shared by pre-forked processes,
  one request at a time per worker) sharing ONE git checkout, with no lock;
- every request: ``git pull``, load ``data/common.yaml`` (an empty load is an error), add the mount
  to ``nfs_mounts::hosts[<name>]``, ``yaml.dump`` the whole file back in place (open 'w' + write),
  then ``git add``, ``git commit -m "'updated - add for <name>'"``, ``git push``; any exception
  is answered 500, a duplicate 400;
- one service identity for every commit (start.sh sets it), no authentication.

Changed: stdlib ``http.server`` instead of Flask/gunicorn, ``subprocess`` git instead of GitPython
(both run the same git commands), and the duplicate check is the one the author meant (same
``local_path`` on the host is a duplicate): the original's ``check_exists`` refuses every second
mount of a host, which would hide the races this benchmark is about.

    python naive_api.py CHECKOUT PORT [WORKERS]      (serves until SIGTERM)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import yaml

DEFAULT_OPTIONS = "rw,bg,suid,soft,rsize=16384,wsize=16384,vers=3,tcp"
DATA = "data/common.yaml"


class Exists(Exception):
    pass


def git(checkout: str, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=checkout, capture_output=True, text=True)
    if proc.returncode != 0:  # GitPython raises GitCommandError on a non-zero exit
        raise RuntimeError(f"git {args[0]} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return proc.stdout


def add_host_mount(checkout: str, body: dict) -> list:
    git(checkout, "pull", "--quiet")
    path = os.path.join(checkout, DATA)
    with open(path) as handle:
        info = yaml.safe_load(handle.read())
    if not info:
        raise RuntimeError("error loading mounts file")
    hosts = info.get("nfs_mounts::hosts") or {}
    info["nfs_mounts::hosts"] = hosts
    name = body["name"]
    hosts.setdefault(name, [])
    mount = {"uuid": str(uuid.uuid4()), "local_path": body["local_path"], "share_path": body["share_path"],
             "options": body.get("options", DEFAULT_OPTIONS), "owner": body.get("owner", "root"), "group": body.get("group", "root")}
    if any(m.get("local_path") == mount["local_path"] for m in hosts[name]):
        raise Exists("mount point already exists")
    hosts[name].append(mount)
    with open(path, "w") as handle:  # in place, not atomic: another worker may read it half-written
        handle.write(yaml.dump(info, default_flow_style=False))
    git(checkout, "add", path)
    try:
        git(checkout, "commit", "-m", f"'updated - add for {name}'")
    except RuntimeError as exc:
        if "nothing to commit" in str(exc):
            raise RuntimeError("No changes made") from None
        raise
    git(checkout, "push", "--quiet")
    return hosts[name]


class Server(HTTPServer):
    request_queue_size = 2048  # gunicorn's default backlog (http.server's is 5: clients would get resets)


class Handler(BaseHTTPRequestHandler):
    checkout = ""

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer(200, {"message": "active"})

    def do_POST(self):
        if self.path != "/mounts/hosts":
            return self._answer(400, {"message": "invalid type. must be hostgroups or hosts"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        except ValueError:
            return self._answer(400, {"message": "invalid json body. Please check syntax"})
        for key in ("local_path", "share_path", "name"):
            if key not in body:
                return self._answer(400, {"message": f"missing {key}"})
        try:
            self._answer(200, add_host_mount(self.checkout, body))
        except Exists as exc:
            self._answer(400, {"message": str(exc)})
        except Exception as exc:  # pylint: disable=broad-except
            self._answer(500, {"message": str(exc)})


def serve(checkout: str, port: int, workers: int = 4) -> None:
    Handler.checkout = checkout
    server = Server(("127.0.0.1", port), Handler)  # bound once, before the fork, like gunicorn
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
            try:
                server.serve_forever()
            finally:
                os._exit(0)
        children.append(pid)

    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 4)
