"""NFS-Ganesha exports driven through states on a real salt-minion, checked over the wire.

Ganesha runs in its own network namespace; three client hosts are namespaces with their own
addresses. The minion writes block files and talks to ganesha over its private DBus; the checks
are real NFS clients (pyNfsClient for NFSv3, libnfs-utils for NFSv4) in the client namespaces.
"""
import json
import shutil

import pytest

from tests.support.nfsbed import NfsBed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None, reason="nfs-ganesha is not installed"),
]
ROOT_SQUASHED = 4294967294  # ganesha's default anonymous uid (-2)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    with NfsBed(name="nki", subnet="10.223.0.0/24", clients=3, workdir=tmp_path_factory.mktemp("bed")) as bed:
        yield bed


@pytest.fixture(scope="module")
def minion(start_minion, bed):
    return start_minion("nfs-ganesha-1", {"nfs_server": {"ganesha": bed.backend_config()}})


@pytest.fixture(scope="module")
def dirs(bed):
    return {name: bed.make_dir(name) for name in ("team", "archive")}


def managed(minion, exports, test=False):
    args = ["state.single", "nfs_server.managed", "name=ganesha-exports", "backend=ganesha", "remove_unlisted=True",
            f"exports={json.dumps(exports)}"]
    if test:
        args.append("test=True")
    ret = minion.salt_call_cli(timeout=180).run(*args)
    assert ret.returncode in (0, 1), ret
    (state,) = ret.data.values()
    return state


@pytest.fixture(scope="module")
def applied(minion, bed, dirs):
    exports = {
        dirs["team"]: {"clients": [{"hosts": bed.client_addr(1), "access": "rw"}, {"hosts": bed.client_addr(2), "access": "ro"}]},
        dirs["archive"]: {"hosts": bed.client_addr(1), "options": ["ro"]},
    }
    state = managed(minion, exports)
    assert state["result"] is True, state
    assert "reloaded with dbus" in state["comment"]
    return exports


def test_allowed_host_writes_over_v3_and_v4(applied, bed, dirs):
    assert bed.probe_v3(1, dirs["team"]).outcome == "ok"
    v4 = bed.probe_v4(1, dirs["team"], real_path=dirs["team"])
    assert v4.outcome == "ok", v4


def test_host_not_in_rule_is_refused_over_the_wire(applied, bed, dirs):
    v3 = bed.probe_v3(3, dirs["team"])
    assert v3.outcome == "denied" and v3.status == 13, v3
    assert bed.probe_v4(3, dirs["team"]).outcome == "denied"


def test_read_only_rule_refuses_writes(applied, bed, dirs):
    v3 = bed.probe_v3(2, dirs["team"])
    assert v3.outcome == "read-only" and v3.status == 30, v3
    assert bed.probe_v3(1, dirs["archive"]).outcome == "read-only"


def test_root_squash_changes_owner_of_root_created_file(applied, bed, dirs):
    probe = bed.probe_v3(1, dirs["team"], uid=0)
    assert probe.outcome == "ok" and probe.uid == ROOT_SQUASHED, probe
    assert bed.probe_v3(1, dirs["team"], uid=1234, gid=1234).uid == 1234


def test_second_run_is_quiet_and_change_goes_live(applied, minion, bed, dirs):
    again = managed(minion, applied)
    assert again["result"] is True and again["changes"] == {}, again

    changed = dict(applied)
    changed[dirs["team"]] = {"clients": [{"hosts": bed.client_addr(1), "access": "rw"}, {"hosts": bed.client_addr(3), "access": "rw"}]}
    dry = managed(minion, changed, test=True)
    assert dry["result"] is None and list(dry["changes"]) == [dirs["team"]], dry
    assert bed.probe_v3(3, dirs["team"]).outcome == "denied", "test=True changed the live server"

    pid_before = bed.ganesha_pid
    live = managed(minion, changed)
    assert live["result"] is True, live
    assert bed.probe_v3(3, dirs["team"]).outcome == "ok"
    assert bed.probe_v3(2, dirs["team"]).outcome == "denied"
    assert bed.ganesha_alive() and bed.ganesha_pid == pid_before, "ganesha was restarted"


def test_bad_export_is_refused_and_running_exports_keep_working(applied, minion, bed, dirs):
    broken = dict(applied)
    broken["/nonexistent/nfskit-missing"] = {"hosts": bed.client_addr(1), "options": ["rw"]}
    state = managed(minion, broken)
    assert state["result"] is False, state
    assert "/nonexistent/nfskit-missing" in state["comment"]
    assert bed.probe_v3(1, dirs["team"]).outcome == "ok"
