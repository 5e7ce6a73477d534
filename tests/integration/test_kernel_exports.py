"""nfs_server on a real salt-minion with the kernel backend and the real exportfs.

exportfs reads fixed paths, so the minion is configured with a sandbox tree; the backend binds it
over /etc/exports, /etc/exports.d and /var/lib/nfs in a private mount namespace, leaving the
host's own files alone.
"""
import json
import os

import pytest

from tests.support.sandbox import Sandbox, exportfs_unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(exportfs_unavailable() is not None, reason=str(exportfs_unavailable())),
]


@pytest.fixture(scope="module")
def sandbox_tree(tmp_path_factory):
    return Sandbox.create(tmp_path_factory.mktemp("kernel-sandbox"))


@pytest.fixture(scope="module")
def kernel_minion(start_minion, sandbox_tree):
    return start_minion("nfs-kernel-1", {"nfs_server": {"kernel": sandbox_tree.config()}})


def test_managed_applies_then_is_quiet(kernel_minion, sandbox_tree):
    cli = kernel_minion.salt_call_cli(timeout=120)
    exports = {
        str(sandbox_tree.export_dir("home")): {"clients": [{"hosts": "10.0.0.0/24", "access": "rw"}]},
        str(sandbox_tree.export_dir("data")): {"hosts": "10.0.1.5", "options": ["ro", "sync"]},
    }
    args = ["state.single", "nfs_server.managed", "name=exports", f"exports={json.dumps(exports)}"]

    dry = cli.run(*args, "test=True")
    assert dry.returncode == 0, dry
    (state,) = dry.data.values()
    assert state["result"] is None
    assert set(state["changes"]) == set(exports)
    assert "+" in state["comment"] and "10.0.0.0/24(rw" in state["comment"]
    assert not list(sandbox_tree.exports_d.glob("*.exports")), "test=True wrote files"

    first = cli.run(*args)
    (state,) = first.data.values()
    assert state["result"] is True, state
    assert set(state["changes"]) == set(exports)
    recorded = sandbox_tree.etab_map()
    assert "rw" in recorded[(sandbox_tree.export_dir("home"), "10.0.0.0/24")]
    assert "root_squash" in recorded[(sandbox_tree.export_dir("home"), "10.0.0.0/24")]
    assert "ro" in recorded[(sandbox_tree.export_dir("data"), "10.0.1.5")]

    again = cli.run(*args)
    (state,) = again.data.values()
    assert state["result"] is True and state["changes"] == {}, state
    assert "already in the desired state" in state["comment"]


def test_exported_rejects_hostile_host_and_writes_nothing(kernel_minion, sandbox_tree):
    before = sandbox_tree.snapshot()
    ret = kernel_minion.salt_call_cli(timeout=120).run(
        "state.single", "nfs_server.exported", f"name={sandbox_tree.export_dir('evil')}", "hosts=10.0.0.1 (rw)"
    )
    (state,) = ret.data.values()
    assert state["result"] is False
    assert "hosts: '10.0.0.1 (rw)' contains whitespace" in state["comment"]
    assert sandbox_tree.snapshot() == before


def test_list_exports_reads_admin_file_nfs3_shape(kernel_minion, sandbox_tree):
    sandbox_tree.exports_file.write_text("# admin file\n/srv/www -sync,rw server @trusted @external(ro)\n")
    ret = kernel_minion.salt_call_cli(timeout=60).run(
        "nfs_server.list_exports", f"exports={sandbox_tree.exports_file}", "exports_d=False"
    )
    assert ret.returncode == 0, ret
    assert ret.data == {
        "/srv/www": [
            {"hosts": "server", "options": ["sync", "rw"]},
            {"hosts": "@trusted", "options": ["sync", "rw"]},
            {"hosts": "@external", "options": ["sync", "ro"]},
        ]
    }
    assert os.path.getsize(sandbox_tree.exports_file) > 0
