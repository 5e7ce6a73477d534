"""The ganesha backend against a real NFS-Ganesha 4.3 in network namespaces.

Every assertion is about what a client sees over the wire (pyNfsClient for NFSv3, libnfs
``nfs-cp``/``nfs-ls`` for NFSv4) or what the server's files and DBus say. Client 1 = host A,
client 2 = host B, client 3 = host C (see tests/support/nfsbed.py).
"""
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nfskit.backends import ganesha as ganesha_module  # noqa: E402
from nfskit.backends import get_backend  # noqa: E402
from nfskit.backends.ganesha import GaneshaBackend  # noqa: E402
from nfskit.errors import BackendError  # noqa: E402
from nfskit.ganesha_dbus import GaneshaDBus  # noqa: E402
from nfskit.model import ClientRule, Export, rule_from_options  # noqa: E402
from nfskit.plan import make_plan  # noqa: E402
from tests.support.nfsbed import NfsBed  # noqa: E402

NEEDED = ("ganesha.nfsd", "rpcbind", "dbus-daemon", "nfs-cp", "nfs-ls", "unshare", "nsenter", "ip")
pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, ganesha)"),
    pytest.mark.skipif(any(shutil.which(tool) is None for tool in NEEDED), reason="needs " + ", ".join(NEEDED)),
]
SQUASHED = 4294967294  # ganesha's anonymous uid (-2)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    with NfsBed(name="nkgf", subnet="10.221.0.0/24", clients=3, workdir=tmp_path_factory.mktemp("nfsbed")) as bed:
        yield bed


@pytest.fixture
def backend(bed):
    backend = GaneshaBackend(bed.backend_config())
    yield backend
    # leave the server empty for the next test (and prove removal works on every path)
    leftover = make_plan(backend.read(), [], remove_unlisted=True)
    if leftover:
        backend.apply(leftover)


def A(bed):
    return bed.client_addr(1)


def B(bed):
    return bed.client_addr(2)


def apply(backend, *exports):
    """What nfs_server.managed does: plan from read(), then apply."""
    return backend.apply(make_plan(backend.read(), list(exports)))


def block_files(bed):
    return sorted(p.name for p in bed.exports_dir.iterdir())


def test_registry_builds_the_backend(bed):
    backend = get_backend("ganesha", bed.backend_config())
    assert isinstance(backend, GaneshaBackend) and backend.name == "ganesha"


def test_rw_for_host_a_over_v3_and_v4_and_nobody_else(bed, backend):
    data = bed.make_dir("rwA")
    export = Export(data, (ClientRule(A(bed), "rw"),))
    report = apply(backend, export)
    assert report.method == "dbus"
    assert report.warnings == []

    v3 = bed.probe_v3(1, data)
    assert v3.outcome == "ok", v3
    assert v3.uid == SQUASHED and v3.gid == SQUASHED  # root squash: root's file belongs to -2
    v4 = bed.probe_v4(1, data, real_path=data)
    assert v4.outcome == "ok", v4
    assert v4.uid == SQUASHED

    denied_v3 = bed.probe_v3(2, data)
    assert (denied_v3.outcome, denied_v3.stage, denied_v3.status) == ("denied", "mnt", 13)  # MNT3ERR_ACCES
    denied_v4 = bed.probe_v4(2, data)
    assert denied_v4.outcome == "denied" and "NFS4ERR_NOENT" in denied_v4.message
    assert bed.probe_v3(3, data, write=False).outcome == "denied"

    # the same desired set again: nothing to do, nothing touched
    assert not make_plan(backend.read(), [export])
    assert backend.read() == {data: export}


def test_read_only_rule_refuses_writes(bed, backend):
    data = bed.make_dir("roA")
    apply(backend, Export(data, (rule_from_options(A(bed), "ro"),)))
    assert bed.probe_v3(1, data, write=False).outcome == "ok"
    write = bed.probe_v3(1, data)
    assert (write.outcome, write.stage, write.status) == ("read-only", "create", 30)  # NFS3ERR_ROFS
    v4 = bed.probe_v4(1, data)
    assert v4.outcome == "read-only" and "NFS4ERR_ROFS" in v4.message
    assert bed.probe_v4(1, data, write=False).outcome == "ok"


def test_squash_modes_over_the_wire(bed, backend):
    squash_all = bed.make_dir("allsq")
    squash_none = bed.make_dir("nosq")
    apply(
        backend,
        Export(squash_all, (rule_from_options(A(bed), "rw,all_squash,anonuid=4242,anongid=4243"),)),
        Export(squash_none, (rule_from_options(A(bed), "rw,no_root_squash"),)),
    )
    assert (bed.probe_v3(1, squash_all).uid, bed.probe_v3(1, squash_all, uid=1234).uid) == (4242, 4242)
    assert bed.probe_v3(1, squash_all).gid == 4243
    assert bed.probe_v3(1, squash_none).uid == 0
    assert bed.probe_v3(1, squash_none, uid=1234).uid == 1234


def test_secure_is_the_default_and_insecure_opens_unprivileged_ports(bed, backend):
    secure = bed.make_dir("secure")
    insecure = bed.make_dir("insecure")
    apply(
        backend,
        Export(secure, (rule_from_options(A(bed), "rw"),)),
        Export(insecure, (rule_from_options(A(bed), "rw,insecure"),)),
    )
    assert bed.probe_v3(1, secure).outcome == "ok"  # root client, port < 1024
    from_high_port = bed.probe_v3(1, secure, unprivileged_port=True)
    assert from_high_port.outcome in ("rpc-denied", "denied") and from_high_port.raw.get("source_port", 0) >= 1024
    assert bed.probe_v3(1, insecure, unprivileged_port=True).outcome == "ok"


def test_change_goes_live_with_update_export_and_no_restart(bed, backend):
    data = bed.make_dir("change")
    pid = bed.ganesha_pid
    apply(backend, Export(data, (ClientRule(A(bed), "rw"),)))
    export_id = backend.read_ids()[data]
    assert bed.probe_v3(1, data).outcome == "ok"
    assert bed.probe_v3(2, data).outcome == "denied"

    started = time.monotonic()
    report = apply(backend, Export(data, (ClientRule(B(bed), "rw"), ClientRule(A(bed), "ro"))))
    assert report.method == "dbus"
    assert time.monotonic() - started < 2
    assert bed.probe_v3(2, data).outcome == "ok"
    assert bed.probe_v3(1, data).outcome == "read-only"
    assert bed.probe_v4(2, data).outcome == "ok"
    assert bed.ganesha_pid == pid  # the same process: no restart
    assert "SIGHUP" not in bed.log_text()
    assert backend.read_ids()[data] == export_id  # ids are stable across changes


def test_remove_makes_the_export_disappear(bed, backend):
    data = bed.make_dir("gone")
    apply(backend, Export(data, (ClientRule(A(bed), "rw"),)))
    export_id = backend.read_ids()[data]
    with GaneshaDBus(bed.dbus_address) as bus:
        assert export_id in {e["id"] for e in bus.show_exports()}
    assert bed.probe_v3(1, data).outcome == "ok"

    report = backend.apply(make_plan(backend.read(), [], remove=[data]))
    assert report.method == "dbus"
    assert bed.probe_v3(1, data, write=False).outcome == "denied"
    assert bed.probe_v4(1, data, write=False).outcome == "denied"
    assert backend.read() == {}
    assert [name for name in block_files(bed) if name.endswith(".conf")] == []
    assert [line for line in bed.index_file.read_text().splitlines() if line.startswith("%include")] == []
    with GaneshaDBus(bed.dbus_address) as bus:
        assert export_id not in {e["id"] for e in bus.show_exports()}


def test_ids_are_stable_and_new_exports_take_max_plus_one(bed, backend):
    one, two, three = bed.make_dir("id1"), bed.make_dir("id2"), bed.make_dir("id3")
    apply(backend, Export(one, (ClientRule(A(bed), "rw"),)), Export(two, (ClientRule(A(bed), "rw"),)))
    ids = backend.read_ids()
    assert sorted(ids.values()) == [1000, 1001]
    backend.apply(make_plan(backend.read(), [], remove=[one]))
    apply(backend, Export(two, (ClientRule(A(bed), "ro"),)), Export(three, (ClientRule(A(bed), "rw"),)))
    assert backend.read_ids() == {two: ids[two], three: max(ids.values()) + 1}
    assert backend.file_for(three).read_text().startswith(f"# managed by nfskit (salt); path {three}\n")
    assert f'%include "{backend.file_for(three)}"' in bed.index_file.read_text()


def _serving(bed, data):
    return bed.probe_v3(1, data).outcome == "ok" and bed.probe_v4(1, data, real_path=data).outcome == "ok"


def test_missing_path_is_refused_by_validation_and_nothing_changes(bed, backend):
    keep = bed.make_dir("keep-missing")
    apply(backend, Export(keep, (ClientRule(A(bed), "rw"),)))
    assert _serving(bed, keep)
    files, index = block_files(bed), bed.index_file.read_text()

    missing = str(bed.export_root / "does-not-exist")
    with pytest.raises(BackendError) as info:
        apply(backend, Export(keep, (ClientRule(A(bed), "ro"),)), Export(missing, (ClientRule(A(bed), "rw"),)))
    assert "No such file or directory" in str(info.value)
    assert missing in str(info.value)
    assert block_files(bed) == files  # no new block, no temp file
    assert bed.index_file.read_text() == index
    assert _serving(bed, keep)  # still rw: the change in the same plan was not applied either


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda text: text.replace("Squash = root_squash;\n        SecType", "Squash = bogus_squash;\n        SecType"), "Unknown token (bogus_squash)"),
        (lambda text: text.replace("Access_Type = RW;", "Access_Type = RW"), "syntax error"),
    ],
    ids=["bad-token", "syntax-error"],
)
def test_bad_block_is_refused_by_validation_and_running_exports_keep_working(bed, backend, monkeypatch, breakage, message):
    keep = bed.make_dir("keep-bad")
    apply(backend, Export(keep, (ClientRule(A(bed), "rw"),)))
    assert _serving(bed, keep)
    files, index = block_files(bed), bed.index_file.read_text()

    real_render = ganesha_module.render_block
    monkeypatch.setattr(ganesha_module, "render_block", lambda export, export_id: breakage(real_render(export, export_id)))
    fresh = bed.make_dir("fresh-bad")
    with pytest.raises(BackendError) as info:
        apply(backend, Export(fresh, (ClientRule(A(bed), "rw"),)))
    assert message in str(info.value)
    monkeypatch.undo()

    assert block_files(bed) == files and bed.index_file.read_text() == index
    assert _serving(bed, keep)
    assert bed.probe_v3(1, fresh, write=False).outcome == "denied"


def test_live_failure_rolls_back_files_and_keeps_running_exports(bed, monkeypatch):
    """validate off, so the bad token reaches ganesha: AddExport answers 'Errors found' (and adds the
    export anyway); the backend takes it out again and restores its files."""
    backend = GaneshaBackend(bed.backend_config(validate=False))
    keep = bed.make_dir("keep-live")
    apply(backend, Export(keep, (ClientRule(A(bed), "rw"),)))
    files, index = block_files(bed), bed.index_file.read_text()

    real_render = ganesha_module.render_block
    monkeypatch.setattr(
        ganesha_module, "render_block",
        lambda export, export_id: real_render(export, export_id).replace("Squash = root_squash;\n        SecType", "Squash = bogus_squash;\n        SecType"),
    )
    fresh = bed.make_dir("fresh-live")
    try:
        with pytest.raises(BackendError) as info:
            apply(backend, Export(fresh, (ClientRule(A(bed), "rw"),)))
        assert "Errors found" in str(info.value) and "bogus_squash" in str(info.value)
        assert "running exports were kept" in str(info.value)
        monkeypatch.undo()
        assert block_files(bed) == files and bed.index_file.read_text() == index
        assert bed.probe_v3(1, fresh, write=False).outcome == "denied"  # taken out again
        assert _serving(bed, keep)
    finally:
        monkeypatch.undo()
        backend.apply(make_plan(backend.read(), [], remove_unlisted=True))


def test_sighup_fallback_when_dbus_is_unreachable(bed):
    backend = GaneshaBackend(bed.backend_config(dbus_address=f"unix:path={bed.run_dir / 'no-such-bus.sock'}"))
    data = bed.make_dir("sighup")
    pid = bed.ganesha_pid
    try:
        report = apply(backend, Export(data, (ClientRule(A(bed), "rw"),)))
        assert report.method == "sighup"
        assert any("SIGHUP" in warning for warning in report.warnings)
        deadline = time.monotonic() + 15
        while bed.probe_v3(1, data).outcome != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert bed.probe_v3(1, data).outcome == "ok"
        assert bed.probe_v3(2, data).outcome == "denied"
        assert bed.ganesha_pid == pid
        assert "initiating export list reload" in bed.log_text()
    finally:
        report = backend.apply(make_plan(backend.read(), [], remove_unlisted=True))
        assert report.method == "sighup"
        deadline = time.monotonic() + 15
        while bed.probe_v3(1, data, write=False).outcome != "denied" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert bed.probe_v3(1, data, write=False).outcome == "denied"  # the reload removed it too


def test_validate_reports_ganesha_messages_without_touching_the_server(bed, backend):
    data = bed.make_dir("validate-only")
    assert backend.validate([Export(data, (ClientRule(A(bed), "rw"),))]) == []
    with pytest.raises(BackendError) as info:
        backend.validate([Export(data + "/nope", (ClientRule(A(bed), "rw"),))])
    assert "resolve_posix_filesystem" in str(info.value)
    # unresolvable names are only a warning: the sandbox has no DNS, the live server has
    warnings = backend.validate([Export(data, (ClientRule("host.invalid", "rw"),))])
    assert len(warnings) == 1 and "host.invalid" in warnings[0]
    assert [name for name in block_files(bed) if name.endswith(".conf")] == []  # validate wrote nothing
    assert bed.probe_v3(1, data, write=False).outcome == "denied"
