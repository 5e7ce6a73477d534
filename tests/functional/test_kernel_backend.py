"""KernelBackend on the real exportfs, in a sandbox tree seen through a private mount namespace.

The host's /etc/exports, /etc/exports.d and /var/lib/nfs are never read or written: every test
checks that at the end (``host_untouched``).
"""
import hashlib
import os
import stat
from pathlib import Path

import pytest

from nfskit import exportfs
from nfskit.backends import get_backend
from nfskit.backends.kernel import HEADER, KernelBackend, managed_file_name
from nfskit.errors import BackendError, InvalidInput, OperationTimeout
from nfskit.plan import make_plan
from nfskit.spec import export_from_args
from tests.support.sandbox import Sandbox, exportfs_unavailable

pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(exportfs_unavailable() is not None, reason=str(exportfs_unavailable())),
]

HOST_PATHS = ["/etc/exports", "/etc/exports.d", "/var/lib/nfs/etab"]


def _fingerprint(path):
    if not os.path.exists(path):
        return None
    if os.path.isdir(path):
        return sorted(os.listdir(path))
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def host_untouched():
    before = {p: _fingerprint(p) for p in HOST_PATHS}
    yield
    assert {p: _fingerprint(p) for p in HOST_PATHS} == before


@pytest.fixture
def box(tmp_path):
    return Sandbox.create(tmp_path / "box")


def temp_files(box):
    return [name for name in box.files() if not name.endswith(".exports")]


def export(path, *clients, **kwargs):
    return export_from_args(path, clients=list(clients), **kwargs)


def test_registry_builds_the_kernel_backend(box):
    backend = get_backend("kernel", box.config())
    assert isinstance(backend, KernelBackend) and backend.name == "kernel"
    with pytest.raises(InvalidInput) as info:
        KernelBackend({"exports_dir": "/x"})
    assert info.value.field == "nfs_server:kernel:exports_dir"
    with pytest.raises(InvalidInput):
        KernelBackend({"prefix": "../evil"})


def test_file_names_and_rendering():
    name = managed_file_name("/srv/My Data/2024 (old)")
    digest = hashlib.sha256(b"/srv/My Data/2024 (old)").hexdigest()[:8]
    assert name == f"nfskit-srv-My-Data-2024-old-{digest}.exports"
    long = managed_file_name("/" + "x" * 100, prefix="p-")
    assert long.startswith("p-" + "x" * 40 + "-") and long.endswith(".exports")
    assert managed_file_name("/a b") != managed_file_name("/a-b")
    backend = KernelBackend({})
    text = backend.render(export("/srv/my data", {"hosts": "10.0.0.0/24", "access": "rw"}))
    assert text == (
        "# managed by nfskit (salt); path /srv/my data\n"
        '"/srv/my data" 10.0.0.0/24(rw,sync,no_subtree_check,root_squash)\n'
    )
    assert text.startswith(HEADER.format(path="/srv/my data"))


def test_apply_adds_files_and_etab_shows_normalised_options(box):
    data = box.export_dir("data")
    spaced = box.export_dir("team share")
    backend = box.backend()
    wanted = [
        export(data, {"hosts": "10.0.0.0/24", "access": "rw"}, {"hosts": "@trusted", "options": ["ro", "async"]}),
        export(spaced, {"hosts": "2001:db8::/64", "access": "rw", "squash": "all", "anonuid": 1000, "anongid": 1000}),
    ]
    plan = make_plan(backend.read(), wanted)
    assert len(plan.add) == 2
    report = backend.apply(plan)
    assert report.method == "exportfs -ra"
    assert sorted(box.files()) == sorted(managed_file_name(e.path) for e in wanted)
    for item in wanted:
        text = (box.exports_d / managed_file_name(item.path)).read_text()
        assert text == backend.render(item)
        assert stat.S_IMODE((box.exports_d / managed_file_name(item.path)).stat().st_mode) == 0o644
    etab = box.etab_map()
    rw = etab[(data, "10.0.0.0/24")]
    assert rw[0] == "rw" and "sync" in rw and "root_squash" in rw and "no_subtree_check" in rw
    ro = etab[(data, "@trusted")]
    assert ro[0] == "ro" and "async" in ro
    squashed = etab[(spaced, "2001:db8::/64")]
    assert "all_squash" in squashed and "anonuid=1000" in squashed and "anongid=1000" in squashed


def test_second_plan_is_empty(box):
    data = box.export_dir("data")
    wanted = [export(data, {"hosts": "10.1.0.0/16", "access": "rw", "sec": ["krb5p", "krb5i"]}, {"hosts": "*.example.com"})]
    backend = box.backend()
    backend.apply(make_plan(backend.read(), wanted))
    fresh = box.backend()
    assert fresh.read() == {data: wanted[0]}
    assert not make_plan(fresh.read(), wanted)
    assert fresh.apply(make_plan(fresh.read(), wanted)).method == "none"


def test_change_and_remove(box):
    a, b = box.export_dir("a"), box.export_dir("b")
    backend = box.backend()
    backend.apply(make_plan(backend.read(), [export(a, {"hosts": "10.0.0.1"}), export(b, {"hosts": "10.0.0.2"})]))
    changed = export(a, {"hosts": "10.0.0.1", "access": "rw"})
    plan = make_plan(backend.read(), [changed], remove=[b])
    assert len(plan.change) == 1 and len(plan.remove) == 1
    backend.apply(plan)
    assert box.files() == [managed_file_name(a)]
    assert box.backend().read() == {a: changed}
    etab = box.etab_map()
    assert etab[(a, "10.0.0.1")][0] == "rw"
    assert not any(path == b for path, _ in etab)
    assert temp_files(box) == []


def test_admin_files_are_never_read_or_written(box):
    admin_dir = box.export_dir("admin")
    box.write_admin("exports", f"# admin\n{admin_dir} 10.9.0.0/16(ro,sync,no_subtree_check)\n")
    box.write_admin("local.exports", f"{admin_dir} 10.8.0.0/16(rw,sync,no_subtree_check) # mine\n")
    before = {"exports": box.exports_file.read_bytes(), "local": (box.exports_d / "local.exports").read_bytes()}
    data = box.export_dir("data")
    backend = box.backend()
    assert backend.read() == {}
    backend.apply(make_plan(backend.read(), [export(data, {"hosts": "10.0.0.0/8"})]))
    backend.apply(make_plan(backend.read(), [], remove=[data]))
    assert box.exports_file.read_bytes() == before["exports"]
    assert (box.exports_d / "local.exports").read_bytes() == before["local"]
    assert box.files() == ["local.exports"]
    etab = box.etab_map()
    assert (admin_dir, "10.9.0.0/16") in etab and (admin_dir, "10.8.0.0/16") in etab


def test_bad_export_never_lands(box):
    data = box.export_dir("data")
    backend = box.backend()
    backend.apply(make_plan(backend.read(), [export(data, {"hosts": "10.0.0.0/24"})]))
    snapshot, etab = box.snapshot(), box.etab()
    missing = str(box.export_root / "does-not-exist")
    plan = make_plan(backend.read(), [export(data, {"hosts": "10.0.0.0/24", "access": "rw"}), export(missing, {"hosts": "10.0.0.5"})])
    with pytest.raises(BackendError) as info:
        backend.apply(plan)
    assert f"Failed to stat {missing}" in str(info.value)
    assert "nothing was written" in str(info.value)
    assert box.snapshot() == snapshot
    assert box.etab() == etab
    assert temp_files(box) == []


def test_validate_reports_errors_and_returns_warnings(box):
    backend = box.backend()
    missing = str(box.export_root / "missing")
    with pytest.raises(BackendError) as info:
        backend.validate([export(missing, {"hosts": "10.0.0.1"})])
    assert "Failed to stat" in str(info.value)
    assert "nfskit-candidates" not in str(info.value)  # messages name the real place, not the staging dir
    warnings = backend.validate([export(box.export_dir("d"), {"hosts": "nosuchhost.invalid"})])
    assert any("Failed to resolve nosuchhost.invalid" in w for w in warnings)
    assert box.files() == [] and box.etab() == []


def test_warnings_are_returned_not_raised(box):
    data = box.export_dir("data")
    backend = box.backend()
    report = backend.apply(make_plan(backend.read(), [export(data, {"hosts": "nosuchhost.invalid"}, {"hosts": "10.0.0.1"})]))
    assert any("Failed to resolve nosuchhost.invalid" in w for w in report.warnings)
    assert box.files() == [managed_file_name(data)]
    assert (data, "10.0.0.1") in box.etab_map()


def test_space_mistake_in_an_admin_file_is_an_error(box):
    admin_dir, data = box.export_dir("admin"), box.export_dir("data")
    backend = box.backend()
    backend.apply(make_plan(backend.read(), [export(data, {"hosts": "10.0.0.1"})]))
    before = box.snapshot()
    box.write_admin("by-hand.exports", f"{admin_dir} 10.0.0.7 (rw)\n")
    errors, warnings = backend.reload()
    assert any("No host name given" in e and admin_dir in e for e in errors)
    assert any("No options for" in w for w in warnings)
    # any apply now fails, restores the previous files and says the old config is still served
    other = box.export_dir("other")
    changed = export(data, {"hosts": "10.0.0.1", "access": "rw"})
    with pytest.raises(BackendError) as info:
        backend.apply(make_plan(backend.read(), [changed, export(other, {"hosts": "10.0.0.2"})]))
    message = str(info.value)
    assert "No host name given" in message and "still served" in message
    after = box.snapshot()
    assert after.pop("by-hand.exports") == f"{admin_dir} 10.0.0.7 (rw)\n".encode()
    assert after == before
    assert temp_files(box) == []


def test_reload_error_restores_changed_and_removed_files(box):
    a, b, admin = box.export_dir("a"), box.export_dir("b"), box.export_dir("admin")
    backend = box.backend()
    backend.apply(make_plan(backend.read(), [export(a, {"hosts": "10.0.0.1"}), export(b, {"hosts": "10.0.0.2"})]))
    box.write_admin("broken.exports", f"{admin} 10.0.0.3(rw,sync,bogusopt)\n")
    before = box.snapshot()
    with pytest.raises(BackendError) as info:
        backend.apply(make_plan(backend.read(), [export(a, {"hosts": "10.0.0.9"})], remove=[b]))
    assert 'unknown keyword "bogusopt"' in str(info.value)
    assert box.snapshot() == before
    assert temp_files(box) == []


def _fake_exportfs(tmp_path, body):
    script = tmp_path / "fake-exportfs"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_timeout_in_check_writes_nothing(box, tmp_path):
    data = box.export_dir("data")
    backend = box.backend(exportfs=_fake_exportfs(tmp_path, "sleep 30"), timeout=1)
    with pytest.raises(OperationTimeout):
        backend.apply(make_plan({}, [export(data, {"hosts": "10.0.0.1"})]))
    assert box.files() == []


def test_timeout_in_reload_restores_files(box, tmp_path):
    data = box.export_dir("data")
    good = box.backend()
    good.apply(make_plan(good.read(), [export(data, {"hosts": "10.0.0.1"})]))
    before = box.snapshot()
    slow = box.backend(exportfs=_fake_exportfs(tmp_path, "sleep 30"), timeout=1, validate=False)
    with pytest.raises(OperationTimeout) as info:
        slow.apply(make_plan(slow.read(), [export(data, {"hosts": "10.0.0.1", "access": "rw"})]))
    assert "restored" in str(info.value)
    assert box.snapshot() == before


def test_exportfs_failing_without_a_message_is_an_error(box, tmp_path):
    data = box.export_dir("data")
    backend = box.backend(exportfs=_fake_exportfs(tmp_path, "exit 3"))
    with pytest.raises(BackendError) as info:
        backend.apply(make_plan({}, [export(data, {"hosts": "10.0.0.1"})]))
    assert "exited with status 3" in str(info.value)
    assert box.files() == []


def test_broken_managed_file_is_reported_by_read(box):
    (box.exports_d / "nfskit-x-00000000.exports").write_text("/srv/x h(rw,bogus)\n")
    with pytest.raises(BackendError) as info:
        box.backend().read()
    assert "nfskit-x-00000000.exports line 1 options[1]" in str(info.value)


def test_check_candidate_names_the_candidate_files(tmp_path, box):
    good = tmp_path / "good.exports"
    good.write_text(f"{box.export_dir('g')} 10.0.0.1(rw,sync,no_subtree_check)\n")
    bad = tmp_path / "bad"
    bad.write_text(f"{box.export_dir('b')} 10.0.0.2(rw,sync,bogusopt)\n")
    errors, warnings = exportfs.check_candidate([good, bad])
    assert len(errors) == 1 and str(bad) in errors[0] and 'unknown keyword "bogusopt"' in errors[0]
    assert exportfs.check_candidate([good]) == ([], [])


def test_reload_runs_in_the_namespace_for_sandbox_paths(box):
    # the sandbox state dir differs from the configured one, so reload goes through the namespace
    assert exportfs.configured_state_dir() != str(box.state_dir)
    errors, warnings = box.backend().reload()
    assert errors == [] and (box.state_dir / "etab").exists()
