"""The git store against a network remote: ``git daemon`` on loopback serving a bare repo over
git://, two work clones (two masters, say) writing through it."""
import socket
import subprocess
import time
import uuid

import pytest

from nfskit import changes
from nfskit.gitstore import GitStore
from nfskit.policy import policy_from_config
from tests.support.gitcli import git

pytestmark = [pytest.mark.functional]

POLICY = policy_from_config(
    {
        "servers": {"nfs1.example.com": {"backend": "kernel"}},
        "teams": {"team-a": {"members": ["alice", "bob"], "servers": ["nfs1.example.com"],
                             "client_networks": ["10.1.0.0/16"], "hosts": ["*.example.com"]}},
    }
)


@pytest.fixture
def daemon_url(tmp_path):
    base = tmp_path / "served"
    base.mkdir()
    git("init", "--quiet", "--bare", "-b", "main", "data.git", cwd=base)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", f"--base-path={base}",
         "--export-all", "--enable=receive-pack", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("git daemon did not start listening")
        yield f"git://127.0.0.1:{port}/data.git", base / "data.git"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def store(url, workdir):
    return GitStore(url=url, workdir=workdir, apply=lambda root, change: changes.apply_change(root, POLICY, change),
                    author=lambda change: (change["user"], f"{change['user']}@example.com"))


def request(user, name):
    fields = dict(name=name, backend="kernel", server="nfs1.example.com", size_gb=10, clients=[{"hosts": "10.1.0.0/24", "access": "rw"}])
    return {"id": uuid.uuid4().hex, "kind": "export", "user": user, "team": "team-a", "fields": fields}


def test_two_clones_write_through_git_daemon_in_linear_history(daemon_url, tmp_path):
    url, bare = daemon_url
    first, second = store(url, tmp_path / "w1"), store(url, tmp_path / "w2")
    (a,) = first.submit([request("alice", "one")])
    (b,) = second.submit([request("bob", "two")])  # second's clone starts from first's push
    (c,) = first.submit([request("alice", "three")])  # first is behind: fetched, re-applied, pushed
    assert a["ok"] and b["ok"] and c["ok"], (a, b, c)
    log = [line.split("|") for line in git("log", "--format=%P|%an|%s", "main", cwd=bare).splitlines()]
    assert all(len(parents.split()) <= 1 for parents, _, _ in log)  # no merges
    assert [(who, subject.split()[2]) for _, who, subject in log[:3]] == [("alice", "team-a/three"), ("bob", "team-a/two"), ("alice", "team-a/one")]
