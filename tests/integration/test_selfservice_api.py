"""Self-service through the front door: a real salt-master + salt-api (rest_cherrypy) with eauth,
the nfs runner synced the classic way, a local bare repo as the storage data repo, and a minion
whose git_pillar sees a request's data.

The eauth ACL gives dev team users the ``nfs.*`` runner functions and nothing else.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from passlib.apache import HtpasswdFile
from pytestshellutils.utils import ports

from tests.support.gitcli import git
from tests.support.localsalt import Api

pytestmark = [pytest.mark.integration]

HOST = "web1.team-a.example.com"
NFS_ONLY = [{"@runner": ["nfs.*"]}]
SELF_SERVICE = {
    "branch": "main",
    "email_domain": "example.com",
    "servers": {"nfs1.example.com": {"backend": "kernel", "capacity_gb": 1000}},
    "teams": {
        "team-a": {"members": ["alice", "carol"], "quota_gb": 500, "servers": ["nfs1.example.com"],
                   "client_networks": ["10.1.0.0/16"], "hosts": ["*.team-a.example.com"]},
        "team-b": {"members": ["bob"], "servers": ["nfs1.example.com"], "client_networks": ["10.2.0.0/16"],
                   "hosts": ["*.team-b.example.com"]},
    },
}
EXPORT = {"name": "cache", "backend": "kernel", "server": "nfs1.example.com", "size_gb": 100,
          "clients": [{"hosts": "10.1.0.0/24", "access": "rw"}], "reason": "CI build cache"}


@pytest.fixture(scope="module")
def data_repo(tmp_path_factory):
    bare = tmp_path_factory.mktemp("data") / "nfs-data.git"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=bare.parent)
    return bare


@pytest.fixture(scope="module")
def passwords(tmp_path_factory):
    path = tmp_path_factory.mktemp("selfservice-auth") / "htpasswd"
    table = HtpasswdFile(str(path), new=True)
    for user in ("alice", "bob"):
        table.set_password(user, f"{user}-pass")
    table.save()
    return path


@pytest.fixture(scope="module")
def ss_master(salt_factories, state_tree, data_repo, passwords, tmp_path_factory):
    port = ports.get_unused_localhost_port()
    overrides = {
        "file_roots": {"base": [str(state_tree)]},
        "unique_jid": True,  # the concurrent tests must not share jids (docs/nfs_runner.md)
        "rest_cherrypy": {"port": port, "host": "127.0.0.1", "disable_ssl": True},
        "netapi_enable_clients": ["local", "runner", "runner_async", "wheel"],
        "external_auth": {
            "file": {"^filename": str(passwords), "^filetype": "htpasswd", "alice": NFS_ONLY, "bob": NFS_ONLY},
            "auto": {"carol": NFS_ONLY},
        },
        "ext_pillar": [{"git": [{f"main file://{data_repo}": [{"root": "pillar"}, {"env": "base"}]}]}],
        "git_pillar_provider": "gitpython",
        "nfs_selfservice": dict(SELF_SERVICE, repo=str(data_repo), workdir=str(tmp_path_factory.mktemp("ss-work"))),
    }
    factory = salt_factories.salt_master_daemon("nfskit-ss-master", overrides=overrides)
    with factory.started(start_timeout=120):
        synced = factory.salt_run_cli(timeout=120).run("saltutil.sync_all")
        assert synced.returncode == 0 and "runners.nfs" in synced.data["runners"], synced
        api = factory.salt_api_daemon()
        with api.started(start_timeout=120):
            factory.api_url = f"http://127.0.0.1:{port}"
            yield factory


def login(master, user, password, eauth="file"):
    api = Api(master.api_url)
    assert api.login(user, password, eauth) == 200
    return api


def test_login_needs_the_right_password(ss_master):
    assert Api(ss_master.api_url).login("alice", "wrong", "file") == 401
    stranger = Api(ss_master.api_url)
    assert stranger.login("mallory", "x", "auto") == 200  # auto accepts any password ...
    status, body = stranger.post(client="runner", fun="nfs.list")
    assert status == 401, (status, body)  # ... but mallory is in no ACL


def test_a_request_through_salt_api_lands_as_the_requesters_commit(ss_master, data_repo):
    api = login(ss_master, "alice", "alice-pass")
    ret = api.call(client="runner", fun="nfs.request_export", kwarg=EXPORT)
    assert ret["result"] is True, ret
    author, subject = git("log", "-1", "--format=%an <%ae>%n%s", "main", cwd=data_repo).splitlines()
    assert author == "alice <alice@example.com>" and "team-a/cache" in subject
    assert ret["commit"] == git("rev-parse", "main", cwd=data_repo).strip()
    status = api.call(client="runner", fun="nfs.status", kwarg={"request_id": ret["request_id"]})
    assert [s["step"] for s in status["steps"]] == ["validated", "committed", "pushed"], status


def test_identity_comes_from_eauth_not_from_the_request(ss_master, data_repo):
    api = login(ss_master, "bob", "bob-pass")
    theirs = dict(EXPORT, name="forged", clients=[{"hosts": "10.2.0.0/24", "access": "rw"}])
    refused = api.call(client="runner", fun="nfs.request_export", kwarg=dict(theirs, user="alice"))
    assert refused["result"] is False and refused["error"]["field"] == "user", refused
    # Salt's own keys are the caller's words too: bob stays bob
    ret = api.call(client="runner", fun="nfs.request_export", kwarg=dict(theirs, __user__="alice", __pub_user="alice"))
    assert ret["result"] is True and ret["team"] == "team-b", ret
    assert git("log", "-1", "--format=%an", ret["commit"], cwd=data_repo).strip() == "bob"


def test_the_acl_allows_nfs_runner_functions_only(ss_master):
    api = login(ss_master, "alice", "alice-pass")
    for low in (
        {"client": "runner", "fun": "jobs.list_jobs"},
        {"client": "runner", "fun": "saltutil.sync_all"},
        {"client": "local", "tgt": "*", "fun": "cmd.run", "arg": ["id"]},
        {"client": "wheel", "fun": "key.list_all"},
    ):
        status, body = api.post(**low)
        assert status == 401, (low, status, body)


def test_another_teams_storage_is_answered_as_missing(ss_master):
    alice = login(ss_master, "alice", "alice-pass")
    mine = alice.call(client="runner", fun="nfs.request_export", kwarg=dict(EXPORT, name="private"))
    assert mine["result"] is True, mine
    bob = login(ss_master, "bob", "bob-pass")
    theirs = bob.call(client="runner", fun="nfs.status", kwarg={"request_id": mine["request_id"]})
    nothing = bob.call(client="runner", fun="nfs.status", kwarg={"request_id": "0" * len(mine["request_id"])})
    assert theirs["result"] is False and theirs["error"]["type"] == nothing["error"]["type"], (theirs, nothing)
    deleted = bob.call(client="runner", fun="nfs.delete_export", kwarg={"name": "private", "team": "team-a"})
    assert deleted["result"] is False, deleted
    listed = bob.call(client="runner", fun="nfs.list")
    assert "private" not in json.dumps(listed)


def test_auto_eauth_user_and_bad_input_through_the_api(ss_master, data_repo):
    api = login(ss_master, "carol", "anything", eauth="auto")
    before = git("rev-parse", "main", cwd=data_repo)
    bad = api.call(client="runner", fun="nfs.request_export", kwarg=dict(EXPORT, name="x{{ 7*7 }}"))
    assert bad["result"] is False and bad["error"]["field"] == "name", bad
    assert git("rev-parse", "main", cwd=data_repo) == before


def test_pepper_is_a_working_client(ss_master, tmp_path):
    pepper = Path(sys.executable).with_name("pepper")
    env = dict(os.environ, HOME=str(tmp_path), SALTAPI_URL=ss_master.api_url, SALTAPI_USER="alice",
               SALTAPI_PASS="alice-pass", SALTAPI_EAUTH="file")
    proc = subprocess.run([str(pepper), "--out=json", "--client", "runner", "nfs.list"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert listed["result"] is True and listed["team"] == "team-a", listed  # alice's team, from her login


def test_a_requested_mount_reaches_the_minion_through_git_pillar_and_nfs_client(ss_master):
    # Salt 3008 masks pillar values in pillar.items output unless told otherwise
    minion = ss_master.salt_minion_daemon(HOST, overrides={"multiprocessing": False, "pillar_mask_output": False})
    with minion.started(start_timeout=120):
        assert ss_master.salt_cli(timeout=120).run("saltutil.sync_all", minion_tgt=HOST).returncode == 0
        api = login(ss_master, "alice", "alice-pass")
        export = api.call(client="runner", fun="nfs.request_export", kwarg=dict(EXPORT, name="webdata"))
        assert export["result"] is True, export
        ret = api.call(client="runner", fun="nfs.request_mount",
                       kwarg={"export": "webdata", "host": HOST, "mount_point": "/mnt/cache", "options": ["hard", "vers=4.2"]})
        assert ret["result"] is True, ret
        started = time.monotonic()
        assert ss_master.salt_run_cli(timeout=120).run("git_pillar.update").returncode == 0
        pillar = ss_master.salt_cli(timeout=120).run("pillar.items", minion_tgt=HOST)
        assert pillar.returncode == 0, pillar
        mounts = pillar.data["nfs"]["client"]["mounts"]
        assert mounts["/mnt/cache"]["device"] == "nfs1.example.com:/srv/nfs/team-a/webdata", mounts
        print(f"request -> pillar on {HOST}: {time.monotonic() - started:.1f}s after the commit")
        # the client formula takes the runner's data as written (this kernel cannot mount: dry run)
        dry = ss_master.salt_cli(timeout=120).run("state.apply", "nfs.client", "test=True", minion_tgt=HOST)
        (state,) = dry.data.values()
        assert state["result"] is None, state
        assert state["changes"]["/mnt/cache"]["fstab"]["new"] == "nfs1.example.com:/srv/nfs/team-a/webdata /mnt/cache nfs hard,vers=4.2 0 0"
