"""The nfs runner through Salt's runner loader, writing to a real bare git repo.

``__user__`` is injected the way the master does it (salt/client/mixins.py ``low()`` sets it in
the runner module's globals); one test goes through ``RunnerClient.low`` itself.
"""
import json
import subprocess
from pathlib import Path

import pytest
import salt.loader
import salt.runner
import salt.utils.event

from tests.functional.conftest import REPO
from tests.support.gitcli import git

pytestmark = [pytest.mark.functional]

SELF_SERVICE = {
    "branch": "main",
    "email_domain": "example.com",
    "servers": {"nfs1.example.com": {"backend": "kernel", "capacity_gb": 1000}},
    "hostgroups": {"web-prod": "G@role:web and G@env:prod"},
    "teams": {
        "team-a": {
            "members": ["alice"],
            "quota_gb": 300,
            "servers": ["nfs1.example.com"],
            "client_networks": ["10.1.0.0/16"],
            "hosts": ["*.team-a.example.com"],
            "hostgroups": ["web-prod"],
        },
        "team-b": {"members": ["bob"], "servers": ["nfs1.example.com"], "client_networks": ["10.2.0.0/16"], "hosts": ["*.team-b.example.com"]},
        "storage": {"members": ["root"], "admin": True},
    },
}
EXPORT = dict(name="cache", backend="kernel", server="nfs1.example.com", size_gb=100, clients=[{"hosts": "10.1.0.0/24", "access": "rw"}])


@pytest.fixture(scope="module")
def master_opts(salt_factories):
    factory = salt_factories.salt_master_daemon("nfs-runner-master", overrides={"runner_dirs": [str(REPO / "_runners")]})
    return factory.config.copy()


@pytest.fixture
def remote(tmp_path):
    bare = tmp_path / "data.git"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    return bare


@pytest.fixture
def opts(master_opts, remote, tmp_path):
    return dict(master_opts, nfs_selfservice=dict(SELF_SERVICE, repo=str(remote), workdir=str(tmp_path / "work")))


@pytest.fixture
def events(opts, monkeypatch):
    """The master event bus, recorded: what the runner fires and under which tag."""
    fired = []

    class Bus:
        def fire_event(self, data, tag, timeout=None):
            fired.append((tag, data))
            return True

        def destroy(self):
            pass

    sock = Path(opts["sock_dir"]) / "master_event_pull.ipc"  # the runner fires only when a master listens
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.touch()
    monkeypatch.setattr(salt.utils.event, "get_master_event", lambda *a, **k: Bus())
    yield fired
    sock.unlink()


@pytest.fixture
def run(opts):
    runners = salt.loader.runner(opts)

    def call(fun, requester, **kwargs):
        func = runners[f"nfs.{fun}"]
        func.__globals__["__user__"] = requester  # as the master's client does before calling
        runners.pack["__context__"].pop("retcode", None)
        ret = func(**kwargs)
        ret["_retcode"] = runners.pack["__context__"].get("retcode", 0)
        return ret

    return call


def head(remote):
    out = subprocess.run(["git", "rev-parse", "main"], cwd=remote, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def test_request_export_commits_as_the_requester_and_tracks_the_request(run, remote, events):
    ret = run("request_export", "alice", reason="build cache for CI", **EXPORT)
    assert ret["result"] is True and ret["_retcode"] == 0, ret
    assert ret["export"]["path"] == "/srv/nfs/team-a/cache" and ret["device"] == "nfs1.example.com:/srv/nfs/team-a/cache"
    assert git("log", "-1", "--format=%an <%ae>|%s", "main", cwd=remote).strip() == (
        "alice <alice@example.com>|nfs: export team-a/cache on nfs1.example.com:/srv/nfs/team-a/cache (100 GB, kernel)"
    )
    assert ret["commit"] == head(remote)
    status = run("status", "alice", request_id=ret["request_id"])
    assert [s["step"] for s in status["steps"]] == ["validated", "committed", "pushed"]
    assert status["state"] == "pushed" and status["team"] == "team-a"
    assert [tag for tag, _ in events] == [f"salt/nfs/{ret['request_id']}/{step}" for step in ("validated", "committed", "pushed")]
    assert events[-1][1]["user"] == "alice" and events[-1][1]["commit"] == ret["commit"]


@pytest.mark.parametrize(
    "fields, field, problem",
    [
        (dict(EXPORT, name="../x"), "name", "is not a valid export name"),
        (dict(EXPORT, clients=[{"hosts": "10.1.0.1 (rw)"}]), "clients[0].hosts", "contains whitespace"),
        (dict(EXPORT, clients=[{"hosts": "10.9.0.0/24"}]), "clients[0].hosts", "is not in the client networks of team team-a"),
        (dict(EXPORT, clients=[{"hosts": "10.1.0.0/24", "squash": "none"}]), "clients[0].hosts", "only an admin team may request it"),
        (dict(EXPORT, size_gb=301), "size_gb", "exceeds the quota of team team-a"),
        (dict(EXPORT, path="/srv/nfs/{{ salt['cmd.run']('id') }}"), "path", "contains '{'"),
        (dict(EXPORT, requested_by="root"), "requested_by", "is not a known field"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(run, remote, fields, field, problem):
    run("request_export", "alice", **dict(EXPORT, name="first", size_gb=1))
    before = head(remote)
    ret = run("request_export", "alice", **fields)
    assert ret["result"] is False and ret["_retcode"] == 1
    assert ret["error"]["field"] == field and problem in ret["error"]["problem"], ret
    assert head(remote) == before
    status = run("status", "alice", request_id=ret["request_id"])
    assert status["state"] == "failed" and status["steps"][-1]["field"] == field


def test_identity_comes_from_the_master_never_from_kwargs(run, remote):
    ret = run("request_export", "mallory", __pub_user="alice", **EXPORT)
    assert ret["result"] is False and ret["error"]["type"] == "permission_denied"
    assert "'mallory' is not a member of any team" in ret["error"]["message"]
    ret = run("request_export", "alice", user="root", **EXPORT)
    assert ret["error"]["field"] == "user"
    assert head(remote) is None  # not even the bootstrap commit


def test_another_teams_storage_is_answered_as_missing(run):
    ret = run("request_export", "alice", **EXPORT)
    run("request_mount", "alice", export="cache", host="ci01.team-a.example.com", mount_point="/mnt/cache")
    theirs = run("delete_export", "bob", name="cache")
    missing = run("delete_export", "bob", name="nothing")
    assert theirs["error"]["type"] == missing["error"]["type"] == "not_found"
    assert theirs["error"]["message"].replace("'cache'", "X") == missing["error"]["message"].replace("'nothing'", "X")
    assert run("request_mount", "bob", export="cache", host="x.team-b.example.com", mount_point="/mnt/c")["error"]["type"] == "not_found"
    assert run("release_mount", "bob", host="ci01.team-a.example.com", mount_point="/mnt/cache")["error"]["type"] == "not_found"
    assert run("list", "bob")["exports"] == {}
    assert run("status", "bob", request_id=ret["request_id"])["error"]["type"] == "not_found"
    assert run("status", "bob", request_id="0" * 32)["error"]["message"] == f"request_id: request {'0' * 32} does not exist"


def test_mount_list_release_delete(run, remote):
    run("request_export", "alice", **EXPORT)
    host = run("request_mount", "alice", export="cache", host="ci01.team-a.example.com", mount_point="/mnt/cache", options="hard,vers=4.2", mode="0750")
    second = run("request_mount", "alice", export="cache", host="ci01.team-a.example.com", mount_point="/mnt/cache2")
    group = run("request_mount", "alice", export="cache", hostgroup="web-prod", mount_point="/srv/cache")
    assert host["result"] and second["result"] and group["result"]  # a host may have several mounts
    again = run("request_mount", "alice", export="cache", host="ci01.team-a.example.com", mount_point="/mnt/cache")
    assert again["error"]["type"] == "conflict" and "already in use on host ci01.team-a.example.com" in again["error"]["message"]

    listed = run("list", "alice")
    assert listed["used_gb"] == 100 and listed["quota_gb"] == 300
    assert {(m["kind"], m["target"], m["mount_point"]) for m in listed["exports"]["cache"]["mounts"]} == {
        ("host", "ci01.team-a.example.com", "/mnt/cache"),
        ("host", "ci01.team-a.example.com", "/mnt/cache2"),
        ("hostgroup", "web-prod", "/srv/cache"),
    }
    node = git("show", "main:hiera/nodes/ci01.team-a.example.com.yaml", cwd=remote)
    assert "'device': 'nfs1.example.com:/srv/nfs/team-a/cache'" in node and "'options': 'hard,vers=4.2'" in node

    busy = run("delete_export", "alice", name="cache")
    assert busy["error"]["type"] == "conflict" and "still mounted" in busy["error"]["message"]
    for target, mount_point in (("host", "/mnt/cache"), ("host", "/mnt/cache2"), ("hostgroup", "/srv/cache")):
        name = "ci01.team-a.example.com" if target == "host" else "web-prod"
        assert run("release_mount", "alice", **{target: name}, mount_point=mount_point)["result"]
    assert run("delete_export", "alice", name="cache", reason="project ended")["result"]
    assert git("ls-tree", "-r", "--name-only", "main", cwd=remote).split() == ["README.md", "pillar/nfs/hostgroups.json", "pillar/top.sls"]


def test_bulk_is_one_push_and_one_commit_with_a_result_each(run, remote):
    hook = remote / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\necho push >> {remote}/pushes\n")
    hook.chmod(0o755)
    run("request_export", "alice", **EXPORT)
    ret = run(
        "request_bulk",
        "alice",
        requests=[
            {"kind": "mount", "export": "cache", "host": f"ci{n:02d}.team-a.example.com", "mount_point": "/mnt/cache"} for n in range(5)
        ] + [{"kind": "mount", "export": "cache", "host": "ci 99", "mount_point": "/mnt/cache"}, {"kind": "rm"}],
    )
    assert ret["result"] is False and ret["_retcode"] == 1 and ret["comment"] == "5 of 7 requests done"
    assert [r["result"] for r in ret["requests"]] == [True] * 5 + [False, False]
    assert ret["requests"][5]["error"]["field"] == "requests[5].host"
    assert ret["requests"][6]["error"]["field"] == "requests[6].kind"
    assert len((remote / "pushes").read_text().split()) == 3  # bootstrap, the export, then the five mounts at once
    assert len(set(r["request_id"] for r in ret["requests"])) == 7
    # one requester's burst is one commit, with each request's own what, why and id in its message
    assert {r["commit"] for r in ret["requests"][:5]} == {head(remote)}
    body = git("log", "-1", "--format=%an|%B", "main", cwd=remote)
    assert body.startswith("alice|nfs: 5 changes by alice\n")
    assert [line[len("Request-Id: "):] for line in body.splitlines() if line.startswith("Request-Id: ")] == [r["request_id"] for r in ret["requests"][:5]]
    assert all(f"on host ci{n:02d}.team-a.example.com at /mnt/cache" in body for n in range(5))


def test_orchestration_records_applied_and_verified(run, events):
    ret = run("request_export", "alice", **EXPORT)
    assert run("record_step", "alice", request_id=ret["request_id"], step="verified")["error"]["field"] == "step"
    assert run("record_step", "root", request_id=ret["request_id"], step="applied", minion="nfs1.example.com")["result"]
    assert run("record_step", "root", request_id=ret["request_id"], step="verified")["result"]
    status = run("status", "alice", request_id=ret["request_id"])
    assert [s["step"] for s in status["steps"]][-2:] == ["applied", "verified"]
    assert status["steps"][-2]["minion"] == "nfs1.example.com" and status["steps"][-2]["by"] == "root"
    assert events[-1][0] == f"salt/nfs/{ret['request_id']}/verified"


def test_without_config_the_answer_says_what_is_missing(master_opts):
    runners = salt.loader.runner(dict(master_opts, nfs_selfservice={}))
    func = runners["nfs.list"]
    func.__globals__["__user__"] = "alice"
    ret = func()
    assert ret["result"] is False and ret["error"]["field"] == "nfs_selfservice" and "repo" in ret["error"]["problem"]


def test_through_the_masters_runner_client(opts, remote):
    """``RunnerClient.low`` is what the master and salt-api run: __user__ from the low data."""
    client = salt.runner.RunnerClient(opts)
    try:
        low = {"fun": "nfs.request_export", "arg": [], "kwarg": dict(EXPORT, __pub_user="root"), "__user__": "alice"}
        ret = client.low("nfs.request_export", low, print_event=False, full_return=True)
        assert ret["success"] is True and ret["return"]["result"] is True, ret
        assert git("log", "-1", "--format=%an", "main", cwd=remote).strip() == "alice"
        bad = client.low("nfs.request_export", dict(low, kwarg=dict(EXPORT, size_gb=0)), print_event=False, full_return=True)
        assert bad["success"] is False and bad["return"]["error"]["field"] == "size_gb"
    finally:
        client.destroy()


def test_reindex_writes_a_missing_hostgroup_index_and_is_for_admins(run, remote, tmp_path):
    assert run("request_export", "alice", **EXPORT)["result"]
    assert run("request_mount", "alice", export="cache", hostgroup="web-prod", mount_point="/srv/cache")["result"]
    # a repo written before the index existed
    clone = tmp_path / "old"
    git("clone", "--quiet", str(remote), str(clone), cwd=tmp_path)
    git("rm", "--quiet", "pillar/nfs/hostgroups.json", cwd=clone)
    git("-c", "user.name=x", "-c", "user.email=x@example.com", "commit", "--quiet", "-m", "before the index", cwd=clone)
    git("push", "--quiet", "origin", "HEAD:main", cwd=clone)
    refused = run("reindex", "alice")
    assert refused["result"] is False and refused["error"]["field"] == "kind" and "admin team" in refused["error"]["problem"]
    done = run("reindex", "root", reason="upgrade: write the hostgroup index")
    assert done["result"] is True and done["changed"] is True, done
    assert git("show", "--name-only", "--format=%s", "main", cwd=remote).split("\n")[:3] == [
        "nfs: regenerate the pillar top file and the hostgroup index", "", "pillar/nfs/hostgroups.json"]
    index = json.loads(git("show", "main:pillar/nfs/hostgroups.json", cwd=remote))
    assert index["hostgroups"] == {"web-prod": "G@role:web and G@env:prod"} and index["always"] == []
    again = run("reindex", "root")
    assert again["result"] is True and again["changed"] is False
