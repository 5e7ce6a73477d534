"""The nfs_selfservice ext_pillar against the git_pillar path, through Salt's own Pillar and loaders.

The data repo is written by the real runner (salt.loader.runner) into a real bare repo: exports,
host and hostgroup mounts, a release and a delete. Each minion's pillar is compiled twice by
``salt.pillar.Pillar``: once over a clone's ``pillar/`` with the generated top file (what
git_pillar does with its checkout, and once through git_pillar itself), once with only
``ext_pillar: [nfs_selfservice: ...]`` configured. They must be equal, key for key.
"""
import subprocess
import time

import pytest
import salt.loader
import salt.pillar
import salt.pillar.git_pillar
import salt.utils.gitfs

from nfskit import datarepo, hostgroup_index
from tests.functional.conftest import REPO
from tests.support.gitcli import git

pytestmark = [pytest.mark.functional]

HOSTGROUPS = {
    "web-prod": "G@role:web and G@env:prod",
    "db-any": "G@role:db or G@role:pg",  # no mandatory term: always evaluated
    "listed": "L@list01.example.com,list02.example.com",  # no grain term at all
    "glob-web": "web9* and G@env:prod",
    "not-legacy": "G@env:prod and not G@os:Legacy",
    "gone": "G@role:gone",
}
SELF_SERVICE = {
    "branch": "main",
    "email_domain": "example.com",
    "servers": {"nfs1.example.com": {"backend": "kernel", "capacity_gb": 1000}, "nfs2.example.com": {"backend": "ganesha", "capacity_gb": 1000}},
    "hostgroups": HOSTGROUPS,
    "teams": {"storage": {"members": ["root"], "admin": True}},
}
MINIONS = {
    "web01.example.com": {"role": "web", "env": "prod"},  # own mounts, and a mount point its group has too
    "web07.example.com": {"role": "web", "env": "prod", "os": "Debian"},
    "web91.example.com": {"role": "WEB", "env": "Prod"},  # Salt's grain match ignores case
    "web92.example.com": {"role": {"web": True}, "env": "prod"},  # a mapping grain: the matcher looks at keys
    "db1.example.com": {"role": "db"},
    "pg1.example.com": {"role": ["x", "pg"]},
    "list01.example.com": {},
    "legacy1.example.com": {"role": ["web", "old"], "env": "prod", "os": "Legacy"},
    "nfs1.example.com": {"role": "nfs"},
    "nfs2.example.com": {},
    "web02.example.com": {"role": "gone"},  # its mount and its group's were released
    "stranger.example.com": {"env": "dev"},
}
HOSTILE = ["..", "../nfs1.example.com", "nfs1.example.com/..", "a/b", "web01_example_com", "nfs1_example_com", "*", "nfs?.example.com",
           "web01.example.com*", "[a-z]*", "x" * 300, ("a" * 60 + ".") * 5 + "com", "web01.example.com\n", " web01.example.com"]


@pytest.fixture(scope="module")
def master_opts(salt_factories):
    factory = salt_factories.salt_master_daemon(
        "nfs-ext-pillar-master",
        overrides={"runner_dirs": [str(REPO / "_runners")], "pillar_dirs": [str(REPO / "_pillar")], "git_pillar_provider": "gitpython"},
    )
    return factory.config.copy()


@pytest.fixture(scope="module")
def data_repo(master_opts, tmp_path_factory):
    """A bare data repo written by the runner: ``(bare, runner call)``."""
    tmp = tmp_path_factory.mktemp("ext-pillar-repo")
    bare = tmp / "data.git"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=tmp)
    opts = dict(master_opts, nfs_selfservice=dict(SELF_SERVICE, repo=str(bare), workdir=str(tmp / "work")))
    runners = salt.loader.runner(opts)

    def run(fun, **kwargs):
        func = runners[f"nfs.{fun}"]
        func.__globals__["__user__"] = "root"
        ret = func(**kwargs)
        assert ret["result"] is True, ret
        return ret

    rules = [{"hosts": "10.1.0.0/24", "access": "rw"}]
    for name, server in (("cache", "nfs1.example.com"), ("scratch", "nfs2.example.com"), ("old", "nfs1.example.com")):
        run("request_export", name=name, backend=("kernel" if server == "nfs1.example.com" else "ganesha"), server=server, size_gb=10, clients=rules, team="storage")
    mounts = [
        ("host", "web01.example.com", "/mnt/cache", "cache"),
        ("host", "web01.example.com", "/srv/shared", "scratch"),  # the same mount point as web-prod's: the host's own wins
        ("host", "web02.example.com", "/mnt/gone", "cache"),
        ("hostgroup", "web-prod", "/srv/shared", "cache"),
        ("hostgroup", "db-any", "/mnt/db", "scratch"),
        ("hostgroup", "listed", "/mnt/list", "cache"),
        ("hostgroup", "glob-web", "/mnt/glob", "cache"),
        ("hostgroup", "not-legacy", "/mnt/nl", "scratch"),
        ("hostgroup", "gone", "/mnt/gone", "old"),
    ]
    for kind, target, mount_point, export in mounts:
        run("request_mount", export=export, mount_point=mount_point, team="storage", options=["hard"], **{kind: target})
    run("release_mount", host="web02.example.com", mount_point="/mnt/gone", team="storage")
    run("release_mount", hostgroup="gone", mount_point="/mnt/gone", team="storage")
    run("delete_export", name="old", team="storage")
    return bare, run, opts


@pytest.fixture(scope="module")
def checkout(data_repo, tmp_path_factory):
    path = tmp_path_factory.mktemp("ext-pillar-checkout") / "clone"
    git("clone", "--quiet", str(data_repo[0]), str(path), cwd=path.parent)
    return path


def git_pillar_path(master_opts, checkout, minion_id, grains):
    """The pillar Salt compiles from the checkout's pillar/ and top file (git_pillar's way)."""
    opts = dict(master_opts, pillar_roots={"base": [str(checkout / "pillar")]}, ext_pillar=[], id=minion_id)
    return salt.pillar.Pillar(opts, dict(grains, id=minion_id), minion_id, "base").compile_pillar()


def ext_pillar_path(master_opts, minion_id, grains, **config):
    """The pillar Salt compiles with only the nfs_selfservice ext_pillar configured."""
    opts = dict(master_opts, pillar_roots={"base": []}, ext_pillar=[{"nfs_selfservice": config}], id=minion_id)
    return salt.pillar.Pillar(opts, dict(grains, id=minion_id), minion_id, "base").compile_pillar()


def test_the_index_matches_the_top_file_after_releases_and_deletes(checkout):
    index = hostgroup_index.load((checkout / datarepo.HOSTGROUP_INDEX).read_text())
    groups = {p.stem for p in (checkout / "pillar/nfs/hostgroups").glob("*.sls")}
    assert set(index["hostgroups"]) == groups == set(HOSTGROUPS) - {"gone"}
    assert index["hostgroups"] == {g: HOSTGROUPS[g] for g in groups}
    assert sorted(index["always"]) == ["db-any", "listed"]
    assert index["grains"]["role"] == {"web": ["web-prod"]}
    top = (checkout / datarepo.TOP).read_text()
    assert all(f"nfs.hostgroups.{g}" in top for g in groups) and "nfs.hostgroups.gone" not in top
    # the commit that released the last mount of 'gone' carries the index change with it
    assert "pillar/nfs/hostgroups.json" in git("show", "--name-only", "--format=", "HEAD~1", cwd=checkout)


@pytest.mark.parametrize("minion_id", sorted(MINIONS))
def test_each_minion_gets_exactly_the_git_pillar_data(master_opts, checkout, minion_id):
    grains = MINIONS[minion_id]
    expected = git_pillar_path(master_opts, checkout, minion_id, grains)
    got = ext_pillar_path(master_opts, minion_id, grains, path=str(checkout))
    assert "_errors" not in expected and "_errors" not in got, (expected.get("_errors"), got.get("_errors"))
    assert got == expected


def test_what_each_minion_gets(master_opts, checkout):
    def mounts(minion_id):
        data = ext_pillar_path(master_opts, minion_id, MINIONS[minion_id], path=str(checkout))
        return data.get("nfs", {}).get("client", {}).get("mounts", {})

    assert sorted(mounts("web01.example.com")) == ["/mnt/cache", "/mnt/nl", "/srv/shared"]
    assert mounts("web01.example.com")["/srv/shared"]["device"].endswith("/storage/scratch")  # its own, not web-prod's: the host wins, as in hiera
    assert sorted(mounts("web91.example.com")) == ["/mnt/glob", "/mnt/nl", "/srv/shared"]
    assert sorted(mounts("web92.example.com")) == ["/mnt/glob", "/mnt/nl", "/srv/shared"]
    assert sorted(mounts("pg1.example.com")) == ["/mnt/db"]
    assert sorted(mounts("list01.example.com")) == ["/mnt/list"]
    assert sorted(mounts("legacy1.example.com")) == ["/srv/shared"]
    assert mounts("web02.example.com") == {} and mounts("stranger.example.com") == {}
    server = ext_pillar_path(master_opts, "nfs1.example.com", {}, path=str(checkout))["nfs"]
    assert list(server["server"]["exports"]) == ["/srv/nfs/storage/cache"] and server["server"]["backend"] == "kernel"
    assert list(server["selfservice"]["exports"]) == ["storage/cache"]


@pytest.mark.parametrize("minion_id", HOSTILE, ids=lambda i: repr(i)[:40])
def test_hostile_ids_get_nothing_and_no_error(master_opts, checkout, minion_id):
    data = ext_pillar_path(master_opts, minion_id, {"role": "web", "env": "prod"}, path=str(checkout))
    assert "nfs" not in data and "_errors" not in data, data


def test_the_git_pillar_top_file_gives_glob_ids_nothing(master_opts, checkout):
    """A minion id may contain '*' (Salt refuses only '/', '\\' and NUL); in an sls name it would be a glob."""
    for minion_id in ("*", "nfs?.example.com"):
        data = git_pillar_path(master_opts, checkout, minion_id, {})
        assert "server" not in data.get("nfs", {}), (minion_id, data)
        assert "mounts" not in data.get("nfs", {}).get("client", {})


def test_same_data_as_git_pillar_itself_from_the_remote(master_opts, data_repo, tmp_path):
    """Both through Salt's git machinery: ext_pillar git (git_pillar) and nfs_selfservice, from the bare repo."""
    bare, _, _ = data_repo
    url = f"file://{bare}"
    for minion_id in ("web01.example.com", "db1.example.com", "nfs1.example.com", "stranger.example.com"):
        grains = MINIONS[minion_id]
        opts = dict(master_opts, cachedir=str(tmp_path / "git-cache"), pillar_roots={}, id=minion_id, __role="master",
                    ext_pillar=[{"git": [{f"main {url}": [{"root": "pillar"}, {"env": "base"}]}]}])
        git_pillar = salt.utils.gitfs.GitPillar(opts, opts["ext_pillar"][0]["git"], per_remote_overrides=salt.pillar.git_pillar.PER_REMOTE_OVERRIDES,
                                                per_remote_only=salt.pillar.git_pillar.PER_REMOTE_ONLY, global_only=salt.pillar.git_pillar.GLOBAL_ONLY)
        git_pillar.fetch_remotes()  # the master's maintenance loop does this for git ext_pillars
        expected = salt.pillar.Pillar(opts, dict(grains, id=minion_id), minion_id, "base").compile_pillar()
        got = ext_pillar_path(dict(master_opts, cachedir=str(tmp_path / "ours"), __role="master"), minion_id, grains, repo=url)
        assert "_errors" not in expected and "_errors" not in got, (expected.get("_errors"), got.get("_errors"))
        assert got == expected


def test_renders_follow_pushes(master_opts, data_repo, tmp_path):
    """Fetched once update_interval has passed, or at once by salt-run nfs.update_pillar."""
    bare, run, runner_opts = data_repo
    opts = dict(master_opts, cachedir=str(tmp_path / "cache"), __role="master")
    grains = {"role": "web", "env": "prod"}
    first = ext_pillar_path(opts, "web05.example.com", grains, repo=f"file://{bare}", update_interval=3600)
    assert sorted(first["nfs"]["client"]["mounts"]) == ["/mnt/nl", "/srv/shared"]
    run("request_mount", export="cache", host="web05.example.com", mount_point="/mnt/new", team="storage")
    try:
        stale = ext_pillar_path(opts, "web05.example.com", grains, repo=f"file://{bare}", update_interval=3600)
        assert "/mnt/new" not in stale["nfs"]["client"]["mounts"]  # not fetched yet, as git_pillar between its fetches
        runners = salt.loader.runner(dict(runner_opts, cachedir=opts["cachedir"], ext_pillar=[{"nfs_selfservice": {"repo": f"file://{bare}"}}]))
        updated = runners["nfs.update_pillar"]()
        assert updated["result"] is True and list(updated["updated"].values()) == [True], updated
        fresh = ext_pillar_path(opts, "web05.example.com", grains, repo=f"file://{bare}", update_interval=3600)
        assert "/mnt/new" in fresh["nfs"]["client"]["mounts"]
        run("request_mount", export="cache", host="web05.example.com", mount_point="/mnt/newer", team="storage")
        auto = ext_pillar_path(opts, "web05.example.com", grains, repo=f"file://{bare}", update_interval=0)
        assert "/mnt/newer" in auto["nfs"]["client"]["mounts"]
    finally:
        for mount_point in ("/mnt/new", "/mnt/newer"):
            try:
                run("release_mount", host="web05.example.com", mount_point=mount_point, team="storage")
            except AssertionError:
                pass


def test_a_damaged_repo_is_a_pillar_error_not_a_silent_gap(master_opts, checkout, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-a", str(checkout), str(broken)], check=True)
    (broken / datarepo.HOSTGROUP_INDEX).unlink()
    data = ext_pillar_path(master_opts, "web07.example.com", MINIONS["web07.example.com"], path=str(broken))
    assert "nfs" not in data and any("hostgroups.json is missing" in e for e in data["_errors"]), data


@pytest.mark.parametrize("config, message", [({"path": "/nonexistent"}, "/nonexistent/pillar"), ({}, "repo"),
                                             ({"env": ["prod"]}, "must be the name of a pillar environment")])
def test_config_errors(master_opts, config, message):
    data = ext_pillar_path(dict(master_opts, nfs_selfservice={}), "web01.example.com", {}, **config)
    assert "nfs" not in data and any(message in e for e in data["_errors"]), data


@pytest.mark.parametrize("pillarenv, env, served", [(None, "prod", True), ("prod", "prod", True), ("test", "prod", False), ("test", None, True)])
def test_env_gives_the_data_only_to_its_pillarenv(master_opts, checkout, pillarenv, env, served):
    """As git_pillar's per-remote env: ``state.apply pillarenv=test`` gets nothing from a prod entry."""
    minion_id = "web01.example.com"
    config = {"path": str(checkout), **({"env": env} if env else {})}
    opts = dict(master_opts, pillar_roots={"base": [], "prod": [], "test": []}, ext_pillar=[{"nfs_selfservice": config}], id=minion_id)
    data = salt.pillar.Pillar(opts, dict(MINIONS[minion_id], id=minion_id), minion_id, "base", pillarenv=pillarenv).compile_pillar()
    assert "_errors" not in data, data["_errors"]
    everything = ext_pillar_path(master_opts, minion_id, MINIONS[minion_id], path=str(checkout))
    assert "/mnt/cache" in everything["nfs"]["client"]["mounts"]
    assert data.get("nfs") == (everything["nfs"] if served else None)


def test_fast_enough_to_notice(master_opts, checkout):
    ext_pillar_path(master_opts, "web01.example.com", MINIONS["web01.example.com"], path=str(checkout))
    started = time.perf_counter()
    ext_pillar_path(master_opts, "web01.example.com", MINIONS["web01.example.com"], path=str(checkout))
    assert time.perf_counter() - started < 1.0



def test_repo_and_branch_default_to_the_runner_config(master_opts, data_repo, checkout, tmp_path):
    """``nfs_selfservice: {}``: the runner's repo (here a plain path, which git_pillar takes only as a URL)."""
    bare, _, runner_opts = data_repo
    opts = dict(master_opts, cachedir=str(tmp_path / "cache"), __role="master", nfs_selfservice=runner_opts["nfs_selfservice"])
    got = ext_pillar_path(opts, "web01.example.com", MINIONS["web01.example.com"])
    assert "_errors" not in got, got["_errors"]
    assert got == git_pillar_path(master_opts, checkout, "web01.example.com", MINIONS["web01.example.com"])
