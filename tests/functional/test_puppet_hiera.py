"""The data repo's hiera side, read by real Puppet (Debian's ``puppet apply``, Hiera 5).

The runner (through Salt's runner loader) writes exports and host and hostgroup mounts into a bare
repo. Puppet reads a clone of it with the ``hiera.yaml`` from docs/nfs_runner.md, taken from the
doc itself, through automatic parameter lookup into a stand-in for treydock/puppet-nfs
(tests/fixtures/puppet/README.md says what it is and why). What Puppet makes of the data must be
what Salt's pillar gives the same host: the same mounts in its fstab, and an /etc/exports that the
real ``exportfs`` reads into the same export table as the exports nfs_server writes from pillar.
"""

import pytest
import salt.loader
import salt.pillar

from nfskit import datarepo, fstab_codec
from nfskit.plan import make_plan
from nfskit.spec import exports_from_managed
from tests.functional.conftest import REPO
from tests.support.gitcli import git
from tests.support import puppet
from tests.support.sandbox import Sandbox, exportfs_unavailable

pytestmark = [
    pytest.mark.functional,
    pytest.mark.skipif(exportfs_unavailable() is not None, reason=str(exportfs_unavailable())),
]

SERVER = "nfs1.example.com"
HOST = "ci01.team-a.example.com"
GRAINS = {"role": "web", "env": "prod"}  # web-prod's target: Salt's side of Puppet's hostgroup fact


@pytest.fixture(scope="module")
def bed(salt_factories, tmp_path_factory):
    """A data repo the runner wrote, a clone of it, and Salt's master opts."""
    tmp = tmp_path_factory.mktemp("puppet-hiera")
    srv = tmp / "srv"  # export paths live here, so that the real exportfs finds them
    bare = tmp / "data.git"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=tmp)
    master = salt_factories.salt_master_daemon("nfs-puppet-master", overrides={"runner_dirs": [str(REPO / "_runners")]})
    opts = dict(
        master.config.copy(),
        nfs_selfservice={
            "repo": str(bare),
            "branch": "main",
            "workdir": str(tmp / "work"),
            "servers": {SERVER: {"backend": "kernel", "capacity_gb": 1000, "root": str(srv / "nfs")}},
            "hostgroups": {"web-prod": "G@role:web and G@env:prod"},
            "teams": {
                "team-a": {"members": ["alice"], "quota_gb": 500, "servers": [SERVER], "client_networks": ["10.1.0.0/16"],
                           "hosts": ["*.team-a.example.com"], "hostgroups": ["web-prod"]},
                "storage": {"members": ["root"], "admin": True},
            },
        },
    )
    runners = salt.loader.runner(opts)

    def run(fun, requester, **kwargs):
        func = runners[f"nfs.{fun}"]
        func.__globals__["__user__"] = requester  # as the master's client does
        ret = func(**kwargs)
        assert ret["result"] is True, ret
        return ret

    run("request_export", "alice", name="cache", backend="kernel", server=SERVER, size_gb=100,
        clients=[{"hosts": "10.1.0.0/24", "access": "rw"}, {"hosts": "10.1.5.7", "access": "ro"}])
    run("request_export", "root", team="storage", name="scratch", backend="kernel", server=SERVER, size_gb=10,
        clients=[{"hosts": "10.1.0.0/16", "access": "rw", "squash": "none"}, {"hosts": "@backup", "squash": "all", "anonuid": 4242}])
    run("request_mount", "alice", export="cache", host=HOST, mount_point="/mnt/cache", options=["hard", "vers=4.2"], owner="root", mode="0750")
    run("request_mount", "alice", export="cache", hostgroup="web-prod", mount_point="/srv/cache", options=["soft", "nfsvers=3"])
    run("request_mount", "root", team="storage", export="scratch", hostgroup="web-prod", mount_point="/mnt/cache")  # the host has its own
    run("request_mount", "root", team="storage", export="scratch", host=HOST, mount_point="/data/scratch")
    for export in ("team-a/cache", "storage/scratch"):
        (srv / "nfs" / export).mkdir(parents=True)
    checkout = tmp / "checkout"
    git("clone", "--quiet", str(bare), str(checkout), cwd=tmp)
    return {"tmp": tmp, "checkout": checkout, "opts": master.config.copy()}


def salt_pillar(bed, minion_id, grains):
    """The pillar Salt compiles from the clone's pillar/ and top file (what git_pillar does)."""
    opts = dict(bed["opts"], pillar_roots={"base": [str(bed["checkout"] / "pillar")]}, ext_pillar=[], id=minion_id)
    pillar = salt.pillar.Pillar(opts, dict(grains, id=minion_id), minion_id, "base").compile_pillar()
    assert "_errors" not in pillar, pillar["_errors"]
    return pillar


def puppet_apply(bed, node, facts=None, datadir=None):
    """``puppet apply`` for ``node`` below a scratch root that is also an exportfs sandbox."""
    box = Sandbox.create(bed["tmp"] / f"puppet-{node}")
    return box, puppet.apply(box.root, datadir or bed["checkout"] / "hiera", node, facts)


def applied(proc):
    assert not puppet.errors(proc), proc.stdout + proc.stderr
    return proc


def test_puppet_mounts_what_salts_pillar_mounts_and_the_host_wins(bed):
    box, proc = puppet_apply(bed, HOST, facts={"hostgroup": "web-prod"})
    applied(proc)
    document, _ = fstab_codec.read(str(box.root / "etc" / "fstab"))
    fstab = {entry.mount_point: entry for entry in document.entries()}
    pillar = salt_pillar(bed, HOST, GRAINS)["nfs"]["client"]["mounts"]

    assert sorted(fstab) == sorted(pillar) == ["/data/scratch", "/mnt/cache", "/srv/cache"]
    for mount_point, wanted in pillar.items():
        entry = fstab[mount_point]
        assert (entry.device, entry.fstype) == (wanted["device"], "nfs")
        # Puppet's nfs::mount writes 'rw' where no options were asked for; rw is NFS's default too
        assert entry.options == (tuple(wanted.get("opts", ())) or ("rw",)), (mount_point, entry.options, wanted)
    # the host's own request, not web-prod's scratch mount at the same mount point, on both sides
    assert fstab["/mnt/cache"].device == pillar["/mnt/cache"]["device"] == f"{SERVER}:{bed['tmp']}/srv/nfs/team-a/cache"
    assert fstab["/mnt/cache"].options == ("hard", "vers=4.2")
    assert f"{(box.root / 'mnt' / 'cache').stat().st_mode & 0o7777:04o}" == pillar["/mnt/cache"]["mode"] == "0750"
    # a second run changes nothing
    assert applied(puppet_apply(bed, HOST, facts={"hostgroup": "web-prod"})[1]).returncode == 0


def test_puppets_exports_file_is_the_export_table_nfs_server_writes(bed):
    box, proc = puppet_apply(bed, SERVER)
    applied(proc)
    assert box.backend().reload()[0] == []  # the real exportfs: no errors on Puppet's /etc/exports
    puppet_table = box.etab_map()

    pillar = salt_pillar(bed, SERVER, {})["nfs"]["server"]
    ours = Sandbox.create(bed["tmp"] / "salt-server")
    wanted = exports_from_managed(pillar["exports"], allow_unsafe=True)  # scratch's no_root_squash came from an admin
    backend = ours.backend()
    backend.apply(make_plan(backend.read(), list(wanted.values())))
    salt_table = ours.etab_map()

    assert sorted({path for path, _ in puppet_table}) == sorted(wanted)
    assert puppet_table == salt_table
    assert puppet_table[(f"{bed['tmp']}/srv/nfs/team-a/cache", "10.1.5.7")][:2] == ("ro", "sync")
    assert "no_root_squash" in puppet_table[(f"{bed['tmp']}/srv/nfs/storage/scratch", "10.1.0.0/16")]


def test_a_parameter_nfs_mount_lacks_fails_the_puppet_run(bed):
    """The stand-in is as strict as the module: data the runner never writes is refused."""
    datadir = bed["tmp"] / "hand-edited"
    (datadir / "nodes").mkdir(parents=True)
    (datadir / "nodes" / "odd.example.com.yaml").write_text(datarepo.dump({"nfs::nfs_mounts": {"/mnt/x": {"device": "a:/b", "fstype": "nfs4"}}}))
    _, proc = puppet_apply(bed, "odd.example.com", datadir=datadir)
    assert puppet.errors(proc) and "has no parameter named 'fstype'" in proc.stderr, proc.stderr
