"""The git store against real git: local bare repos as the remote, several processes writing."""
import logging
import multiprocessing
import subprocess
import uuid

import pytest
import yaml

from nfskit import changes, datarepo
from nfskit.gitstore import GitStore, redact
from nfskit.policy import policy_from_config
from tests.support.gitcli import git

pytestmark = [pytest.mark.unit]

POLICY = policy_from_config(
    {
        "servers": {"nfs1.example.com": {"backend": "kernel"}},
        "teams": {
            "team-a": {"members": ["alice", "bob"], "servers": ["nfs1.example.com"], "client_networks": ["10.1.0.0/16"], "hosts": ["*.example.com"]},
        },
    }
)


@pytest.fixture
def remote(tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    # count pushes: one line per accepted push
    hook = bare / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\necho push >> {tmp_path / 'pushes.log'}\n")
    hook.chmod(0o755)
    return bare


def make_store(url, workdir, **kwargs):
    return GitStore(
        url=str(url),
        workdir=workdir,
        apply=lambda root, change: changes.apply_change(root, POLICY, change),
        author=lambda change: (change["user"], f"{change['user']}@example.com"),
        **kwargs,
    )


def change(kind, user="alice", **fields):
    return {"id": uuid.uuid4().hex, "kind": kind, "user": user, "team": "team-a", "fields": fields}


def export_change(name="cache", **kw):
    return change("export", name=name, backend="kernel", server="nfs1.example.com", size_gb=10, clients=[{"hosts": "10.1.0.0/24", "access": "rw"}], **kw)


def mount_change(host, mount_point="/mnt/cache", user="alice"):
    return change("mount", user=user, export="cache", host=host, mount_point=mount_point)


def history(bare):
    """[(parents, author, subject)] newest first."""
    out = git("log", "--format=%P|%an|%s", "main", cwd=bare)
    return [tuple(line.split("|", 2)) for line in out.splitlines()]


def requests_in_history(bare):
    """{request id: (commit, author, summary)} from every commit message's own blocks (a commit
    that joins several changes of one requester holds one block per change)."""
    landed = {}
    out = git("log", "--format=%H%x00%an%x00%B%x1e", "main", cwd=bare)
    for record in filter(str.strip, out.split("\x1e")):
        sha, author, body = record.strip("\n").split("\x00")
        summaries = [line for line in body.splitlines() if line.startswith("nfs: ") and " changes by " not in line]
        ids = [line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("Request-Id: ")]
        assert len(summaries) == len(ids) or not ids, body  # the bootstrap commit answers no request
        for request_id, summary in zip(ids, summaries):
            assert request_id not in landed, f"request {request_id} in two commits"
            landed[request_id] = (sha, author, summary)
    return landed


def pushes(tmp_path):
    log = tmp_path / "pushes.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def remote_file(bare, path):
    return yaml.safe_load(git("show", f"main:{path}", cwd=bare))


def test_first_use_bootstraps_an_empty_remote_and_commits_as_the_requester(remote, tmp_path):
    store = make_store(remote, tmp_path / "w")
    (result,) = store.submit([export_change(reason="CI cache")])
    assert result["ok"] and result["pushed"]
    (top, first) = history(remote)[:2]
    assert top[1] == "alice" and top[2] == "nfs: export team-a/cache on nfs1.example.com:/srv/nfs/team-a/cache (10 GB, kernel)"
    assert first[2] == "nfs: start the storage data repo"
    body = git("log", "-1", "--format=%B%n%cn <%ce>", "main", cwd=remote)
    assert "CI cache" in body and "Request-Id: " in body and "Requested-By: alice (team team-a)" in body
    assert "nfs self-service <nfs-selfservice@localhost>" in body
    assert result["commit"] == git("rev-parse", "main", cwd=remote).strip()


def test_a_refused_change_writes_and_commits_nothing(remote, tmp_path):
    store = make_store(remote, tmp_path / "w")
    store.submit([export_change()])
    before = git("rev-parse", "main", cwd=remote)
    (result,) = store.submit([export_change()])  # same name again
    assert not result["ok"] and result["error"]["type"] == "conflict"
    assert git("rev-parse", "main", cwd=remote) == before
    assert git("status", "--porcelain", cwd=tmp_path / "w" / "clone") == ""


def _worker(url, workdir, user, hosts, out):
    store = make_store(url, workdir)
    results = []
    for host in hosts:
        results += store.submit([mount_change(host, user=user)])
    out.put(results)


def test_concurrent_writers_land_exactly_once_with_linear_history(remote, tmp_path):
    make_store(remote, tmp_path / "w0").submit([export_change()])
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    # six processes: four share one work clone (lock + queue, as the runner processes of one master
    # do), two have clones of their own (another master: their pushes race at the remote and are
    # re-applied)
    workers = []
    expected = []
    for index in range(6):
        hosts = [f"h{index}-{n}.example.com" for n in range(8)]
        expected += hosts
        workdir = tmp_path / ("shared" if index < 4 else f"own{index}")
        workers.append(ctx.Process(target=_worker, args=(str(remote), workdir, "alice" if index % 2 else "bob", hosts, out)))
    for worker in workers:
        worker.start()
    results = [r for _ in workers for r in out.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)
    assert all(r["ok"] and r["pushed"] for r in results), [r for r in results if not r["ok"]]

    log = history(remote)
    assert all(len(parents.split()) == 1 for parents, _, _ in log[:-1])  # no merges: linear
    landed = requests_in_history(remote)  # each request in exactly one commit ...
    mounts = {request_id: where for request_id, where in landed.items() if where[2].startswith("nfs: mount")}
    assert sorted(mounts) == sorted(r["id"] for r in results)
    assert all(mounts[r["id"]][0] == r["commit"] for r in results)  # ... the one its answer names
    index = remote_file(remote, "index/exports/team-a/cache.yaml")
    assert sorted(u["target"] for u in index["mounts"]) == sorted(expected)  # the shared file lost no update
    authors = {summary.split()[-3]: author for _, author, summary in mounts.values()}
    assert all(authors[host] == ("alice" if n // 8 % 2 else "bob") for n, host in enumerate(expected))


def test_concurrent_edits_of_the_same_host_file_from_two_clones_keep_both(remote, tmp_path):
    make_store(remote, tmp_path / "a").submit([export_change()])
    a, b = make_store(remote, tmp_path / "a"), make_store(remote, tmp_path / "b")
    b.submit([mount_change("web.example.com", "/mnt/b1")])  # b's clone exists and is current
    a.submit([mount_change("web.example.com", "/mnt/a1")])  # remote moves; b does not know
    (result,) = b.submit([mount_change("web.example.com", "/mnt/b2")])  # rejected, re-applied
    assert result["ok"]
    mounts = remote_file(remote, datarepo.target_pillar("host", "web.example.com"))["nfs"]["client"]["mounts"]
    assert sorted(mounts) == ["/mnt/a1", "/mnt/b1", "/mnt/b2"]


def test_a_rejected_push_is_reapplied_on_the_remote_state_and_rechecked(remote, tmp_path):
    a, b = make_store(remote, tmp_path / "a"), make_store(remote, tmp_path / "b")
    a.submit([export_change("one")])
    b.submit([export_change("two")])
    a.submit([export_change("three")])
    (result,) = b.submit([export_change("three")])  # b's tree does not have "three" yet
    assert not result["ok"] and "already exists" in result["error"]["message"]
    names = [s for _, _, s in history(remote) if "export team-a/three" in s]
    assert len(names) == 1


def test_a_burst_is_one_push_and_one_commit_per_run_of_one_requester(remote, tmp_path):
    store = make_store(remote, tmp_path / "w")
    store.submit([export_change()])
    before = pushes(tmp_path)
    (tmp_path / "w" / "queue").mkdir(exist_ok=True)
    users = ["alice", "alice", "bob", "bob", "bob"]
    queued = [mount_change(f"q{n}.example.com", user=u) for n, u in enumerate(users)]
    for item in queued:  # as if five other processes had queued and were waiting for the lock
        store._enqueue(item)
    (mine,) = store.submit([mount_change("me.example.com")])
    assert mine["ok"]
    assert pushes(tmp_path) == before + 1
    # alice's two, bob's three, then mine (alice again: not joined with her first two, bob's came between)
    assert [(author, subject) for _, author, subject in history(remote)[:3]] == [
        ("alice", "nfs: mount team-a/cache on host me.example.com at /mnt/cache"),
        ("bob", "nfs: 3 changes by bob"),
        ("alice", "nfs: 2 changes by alice"),
    ]
    assert len(history(remote)) == 2 + 3
    answers = [store._take_result(item["id"]) for item in queued]  # their answers wait for them
    assert all(a["ok"] and a["pushed"] for a in answers)
    assert [a["commit"] for a in answers] == [answers[0]["commit"]] * 2 + [answers[2]["commit"]] * 3
    body = git("log", "-1", "--format=%B", answers[2]["commit"], cwd=remote)
    assert [line.split(": ")[1] for line in body.splitlines() if line.startswith("Request-Id: ")] == [item["id"] for item in queued[2:]]
    assert all(f"on host q{n}.example.com" in body for n in (2, 3, 4))
    # the joined commit holds the state after its last change
    host_files = git("ls-tree", "-r", "--name-only", answers[2]["commit"], "hiera/nodes", cwd=remote).split()
    assert host_files == [f"hiera/nodes/q{n}.example.com.yaml" for n in range(5)]


def test_each_commit_of_one_drain_holds_its_own_state_of_a_shared_file(remote, tmp_path):
    # one drain commits all its changes at once (one git fast-import): every commit must carry the
    # file as its own change left it, not as the drain's last change did
    store = make_store(remote, tmp_path / "w")
    (export,) = store.submit([export_change()])
    points = [f"/mnt/p{n}" for n in range(4)]
    users = ["alice", "bob", "alice", "bob"]
    results = store.submit([mount_change("a.example.com", mount_point=p, user=u) for p, u in zip(points, users)])
    assert all(r["ok"] for r in results)
    parents = [export["commit"]] + [r["commit"] for r in results[:-1]]
    for n, result in enumerate(results):
        data = yaml.safe_load(git("show", f"{result['commit']}:index/exports/team-a/cache.yaml", cwd=remote))
        assert sorted(m["mount_point"] for m in data["mounts"]) == points[: n + 1]
        host = yaml.safe_load(git("show", f"{result['commit']}:hiera/nodes/a.example.com.yaml", cwd=remote))
        assert sorted(host["nfs::nfs_mounts"]) == points[: n + 1]
        assert git("log", "-1", "--format=%an|%P", result["commit"], cwd=remote).strip() == f"{users[n]}|{parents[n]}"
    assert git("rev-parse", "main", cwd=remote).strip() == results[-1]["commit"]
    # the work clone's index is at the new tip: nothing staged, nothing modified
    assert git("status", "--porcelain", cwd=tmp_path / "w" / "clone") == ""


def test_bulk_submit_returns_results_in_order(remote, tmp_path):
    store = make_store(remote, tmp_path / "w")
    results = store.submit([export_change(), mount_change("a.example.com"), mount_change("bad host"), mount_change("a.example.com")])
    assert [r["ok"] for r in results] == [True, True, False, False]
    assert results[2]["error"]["field"] == "host"
    assert "already in use" in results[3]["error"]["message"]


@pytest.mark.parametrize("damage", ["edit", "stray", "unpushed", "index", "objects", "no-git"])
def test_a_dirty_or_broken_clone_is_recovered(remote, tmp_path, damage):
    store = make_store(remote, tmp_path / "w")
    store.submit([export_change()])
    clone = tmp_path / "w" / "clone"
    if damage == "edit":
        (clone / "pillar/nfs/exports/team-a/cache.sls").write_text("garbage: [")
    elif damage == "stray":
        (clone / "pillar/nfs/hosts/evil.sls").parent.mkdir(parents=True, exist_ok=True)
        (clone / "pillar/nfs/hosts/evil.sls").write_text("nfs: {client: {mounts: {/etc: {}}}}")
    elif damage == "unpushed":
        (clone / "junk").write_text("x")
        git("add", "junk", cwd=clone)
        git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "half-done", cwd=clone)
    elif damage == "index":
        (clone / ".git" / "index").write_bytes(b"DIRC broken")
    elif damage == "objects":
        subprocess.run(["rm", "-rf", str(clone / ".git" / "objects")], check=True)
    else:
        subprocess.run(["rm", "-rf", str(clone / ".git")], check=True)
    (result,) = store.submit([mount_change("a.example.com")])
    assert result["ok"], result
    tree = git("ls-tree", "-r", "--name-only", "main", cwd=remote).split()
    assert "junk" not in tree and "pillar/nfs/hosts/evil.sls" not in tree
    assert remote_file(remote, "pillar/nfs/exports/team-a/cache.sls")["nfs"]["selfservice"]
    assert "half-done" not in [s for _, _, s in history(remote)]


def test_a_remote_that_refuses_leaves_nothing_behind(remote, tmp_path):
    store = make_store(remote, tmp_path / "w")
    store.submit([export_change()])
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen for maintenance' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = git("rev-parse", "main", cwd=remote)
    (result,) = store.submit([mount_change("a.example.com")])
    assert not result["ok"] and result["error"]["type"] == "store_error"
    assert "frozen for maintenance" in result["error"]["message"]
    assert git("rev-parse", "main", cwd=remote) == before
    clone = tmp_path / "w" / "clone"
    assert git("rev-parse", "HEAD", cwd=clone) == before and git("status", "--porcelain", cwd=clone) == ""


def test_retries_after_rejection_are_bounded(remote, tmp_path):
    class AlwaysBehind(GitStore):
        attempts = 0

        def _push(self):
            AlwaysBehind.attempts += 1
            return False

    make_store(remote, tmp_path / "w").submit([export_change("first")])
    store = AlwaysBehind(str(remote), tmp_path / "w", apply=lambda root, c: changes.apply_change(root, POLICY, c),
                         author=lambda c: (c["user"], "a@x"), push_retries=3)
    (result,) = store.submit([export_change()])
    assert not result["ok"] and "rejected 4 times" in result["error"]["message"]
    assert AlwaysBehind.attempts == 4


SECRET_URL = "http://storage-bot:s3cr3t-t0ken@127.0.0.1:9/nfs-data.git"


def test_credentials_never_reach_results_or_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    store = make_store(SECRET_URL, tmp_path / "w", git_timeout=20)
    (result,) = store.submit([export_change()])
    assert not result["ok"] and result["error"]["type"] == "store_error"
    assert "s3cr3t" not in repr(result) and "storage-bot" not in repr(result)
    assert "***@127.0.0.1" in result["error"]["message"]
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fatal: unable to access 'https://u:p@host/r.git/'", "fatal: unable to access 'https://***@host/r.git/'"),
        ("https://token@host/r", "https://***@host/r"),
        ("ssh://git@host:22/r and http://a:b@c/d", "ssh://***@host:22/r and http://***@c/d"),
        ("file:///srv/git/r.git", "file:///srv/git/r.git"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected
