"""nfs_server execution module and states through Salt's loaders, on the real exportfs.

The kernel backend points at a sandbox tree; exportfs sees it through a private mount namespace.
"""
import os

import pytest

from tests.functional.conftest import make_loaders
from tests.support.sandbox import Sandbox, exportfs_unavailable

pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(exportfs_unavailable() is not None, reason=str(exportfs_unavailable())),
]


@pytest.fixture
def box(tmp_path):
    return Sandbox.create(tmp_path / "box")


@pytest.fixture
def loaders(minion_opts, box):
    loaders = make_loaders(minion_opts, nfs_server={"kernel": box.config()})
    try:
        yield loaders
    finally:
        loaders.reset_state()


@pytest.fixture
def mods(loaders):
    return loaders.modules


@pytest.fixture
def states(loaders):
    return loaders.states


EXPORTS5 = """\
# sample /etc/exports file
/               master(rw) trusty(rw,no_root_squash)
/projects       proj*.local.domain(rw)
/usr            *.local.domain(ro) @trusted(rw)
/home/joe       pc001(rw,all_squash,anonuid=150,anongid=100)
/pub            *(ro,insecure,all_squash)
/srv/www        -sync,rw server @trusted @external(ro)
/foo            2001:db8:9:e54::/64(rw) 192.0.2.0/24(rw)
/build          buildhost[0-9].local.domain(rw)
"""


def test_list_exports_handles_the_exports5_sample(mods, tmp_path):
    exports = tmp_path / "exports"
    exports.write_text(EXPORTS5)
    listed = mods.nfs_server.list_exports(exports=str(exports))
    assert listed["/srv/www"] == [
        {"hosts": "server", "options": ["sync", "rw"]},
        {"hosts": "@trusted", "options": ["sync", "rw"]},
        {"hosts": "@external", "options": ["sync", "ro"]},
    ]
    assert listed["/"][1] == {"hosts": "trusty", "options": ["rw", "no_root_squash"]}
    assert listed["/foo"][0]["hosts"] == "2001:db8:9:e54::/64"
    assert len(listed) == 8


def test_add_and_del_export_keep_every_other_byte(mods, tmp_path):
    exports = tmp_path / "exports"
    exports.write_text(EXPORTS5)
    os.chmod(exports, 0o640)
    added = mods.nfs_server.add_export(exports=str(exports), path="/data", hosts="10.0.0.0/24", options=["rw", "sync"])
    assert added == {"hosts": "10.0.0.0/24", "options": ["rw", "sync"]}
    text = exports.read_text()
    assert text.startswith(EXPORTS5) and text[len(EXPORTS5):] == "/data 10.0.0.0/24(rw,sync)\n"
    assert os.stat(exports).st_mode & 0o777 == 0o640
    remaining = mods.nfs_server.del_export(exports=str(exports), path="/data")
    assert exports.read_text() == EXPORTS5
    assert "/data" not in remaining and "/srv/www" in remaining
    assert sorted(os.listdir(tmp_path)) == ["box", "exports"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hosts": "10.0.0.1 (rw)", "options": ["rw"]}, "hosts: '10.0.0.1 (rw)' contains whitespace"),
        ({"hosts": "h\n/ *", "options": ["rw"]}, "contains a newline"),
        ({"hosts": "h", "options": ["rw", "ro"]}, "conflicts with 'rw'"),
        ({"hosts": "h", "options": ["anonuid=abc"]}, "anonuid must be a number"),
    ],
)
def test_add_export_refuses_bad_input_and_leaves_file_identical(mods, tmp_path, kwargs, message):
    from salt.exceptions import SaltInvocationError

    exports = tmp_path / "exports"
    exports.write_text(EXPORTS5)
    with pytest.raises(SaltInvocationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mods.nfs_server.add_export(exports=str(exports), path="/data", **kwargs)
    assert exports.read_text() == EXPORTS5
    assert sorted(os.listdir(tmp_path)) == ["box", "exports"]


def test_reload_exports_tells_errors_from_warnings(mods, box):
    data = box.export_dir("data")
    box.write_admin("exports", f"{data} 10.0.0.1(rw,sync,no_subtree_check)\n")
    ok = mods.nfs_server.reload_exports()
    assert ok["result"] is True and ok["errors"] == []
    box.write_admin("exports", f"{data} 10.0.0.1 (rw)\n")  # the space exports to the world
    bad = mods.nfs_server.reload_exports()
    assert bad["result"] is False
    assert any("No host name given" in line or "world" in line for line in bad["errors"]), bad


def test_exported_state_dry_run_apply_and_quiet_rerun(states, box):
    path = box.export_dir("home")
    dry = states.nfs_server.exported(path, hosts="10.0.0.0/24", options=["rw"], test=True)
    assert dry.result is None
    assert dry.changes == {path: {"old": None, "new": f"{path} 10.0.0.0/24(rw,sync,no_subtree_check,root_squash)"}}
    assert f"+{path} 10.0.0.0/24(rw,sync,no_subtree_check,root_squash)" in dry.comment
    assert not list(box.exports_d.iterdir())

    first = states.nfs_server.exported(path, hosts="10.0.0.0/24", options=["rw"])
    assert first.result is True and path in first.changes
    assert "rw" in box.etab_map()[(path, "10.0.0.0/24")]

    # same meaning, different order and spelling: no change
    again = states.nfs_server.exported(path, clients=[{"hosts": "10.0.0.0/24", "options": ["no_subtree_check", "sync", "rw", "root_squash"]}])
    assert again.result is True and again.changes == {}, again.comment

    gone = states.nfs_server.absent(path)
    assert gone.result is True and gone.changes == {path: {"old": f"{path} 10.0.0.0/24(rw,sync,no_subtree_check,root_squash)", "new": None}}
    assert (path, "10.0.0.0/24") not in box.etab_map()
    assert states.nfs_server.absent(path).changes == {}


def test_managed_keeps_unlisted_unless_asked(states, box):
    a, b = box.export_dir("a"), box.export_dir("b")
    first = states.nfs_server.managed("set", exports={a: {"hosts": "10.0.0.1", "options": ["ro"]}, b: {"hosts": "10.0.0.2", "options": ["ro"]}})
    assert first.result is True and set(first.changes) == {a, b}
    kept = states.nfs_server.managed("set", exports={a: {"hosts": "10.0.0.1", "options": ["ro"]}})
    assert kept.result is True and kept.changes == {}
    removed = states.nfs_server.managed("set", exports={a: {"hosts": "10.0.0.1", "options": ["ro"]}}, remove_unlisted=True)
    assert removed.result is True and list(removed.changes) == [b]
    assert {entry.path for entry in box.etab()} == {a}


def test_state_refuses_unsafe_and_hostile_input_writing_nothing(states, box):
    path = box.export_dir("pub")
    before = box.snapshot()
    world = states.nfs_server.exported(path, hosts="*", options=["rw"])
    assert world.result is False and "allow_unsafe" in world.comment
    squash = states.nfs_server.exported(path, clients=[{"hosts": "10.0.0.0/24", "access": "rw", "squash": "none"}])
    assert squash.result is False and "no_root_squash" in squash.comment
    relative = states.nfs_server.exported("srv/pub", hosts="10.0.0.1")
    assert relative.result is False and relative.comment.startswith("name: 'srv/pub' is not an absolute path")
    unknown = states.nfs_server.managed("set", exports={path: {"hosts": "10.0.0.1", "optoins": ["rw"]}})
    assert unknown.result is False and "optoins" in unknown.comment
    assert box.snapshot() == before
    allowed = states.nfs_server.exported(path, hosts="*", options=["rw"], allow_unsafe=True)
    assert allowed.result is True


def test_exported_accepts_core_nfs_export_arguments(states, box):
    path = box.export_dir("core")
    ret = states.nfs_server.exported(path, hosts="10.0.2.123", options=["rw"], exports="/etc/exports")
    assert ret.result is True
    other = states.nfs_server.exported(path, hosts="10.0.2.123", exports="/srv/other-exports")
    assert other.result is False and "exports: '/srv/other-exports' is not supported" in other.comment


def test_managed_reads_the_set_from_a_pillar_key(minion_opts, box, tmp_path):
    a, b = box.export_dir("pa"), box.export_dir("pb")
    pillar = tmp_path / "pillar"
    pillar.mkdir()
    (pillar / "top.sls").write_text("base:\n  '*':\n    - exports\n")
    (pillar / "exports.sls").write_text(
        f"nfs:\n  server:\n    exports:\n      {a}: {{hosts: 10.0.0.1, options: [ro]}}\n      {b}: {{hosts: 10.0.0.2, options: [rw]}}\n"
    )
    loaders = make_loaders(minion_opts, nfs_server={"kernel": box.config()}, pillar_roots={"base": [str(pillar)]})
    try:
        states = loaders.states
        first = states.nfs_server.managed("set", exports_pillar="nfs:server:exports")
        assert first.result is True and set(first.changes) == {a, b}, first.comment
        assert {entry.path for entry in box.etab()} == {a, b}
        assert states.nfs_server.managed("set", exports_pillar="nfs:server:exports").changes == {}
        formula = loaders.modules.state.sls("nfs.server")  # salt/nfs/server.sls reads the same key
        assert [(r.result, r.changes) for r in formula] == [(True, {})], formula.raw
        before = box.snapshot()
        typo = states.nfs_server.managed("set", exports_pillar="nfs:server:exprots", remove_unlisted=True)
        assert typo.result is False and "'nfs:server:exprots' is not in this minion's pillar" in typo.comment
        both = states.nfs_server.managed("set", exports={}, exports_pillar="nfs:server:exports")
        assert both.result is False and "not both" in both.comment
        assert box.snapshot() == before
    finally:
        loaders.reset_state()
