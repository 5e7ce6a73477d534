"""GaneshaBackend file handling without a ganesha: naming, ids, index, atomic writes, the live
phase against a fake ExportMgr (order of calls, rollback), and how ganesha's log is judged.
The real server is exercised in tests/functional/test_ganesha_backend.py."""
import os

import pytest

from nfskit.backends import ganesha as ganesha_module
from nfskit.backends.ganesha import GaneshaBackend, _judge_log
from nfskit.errors import BackendError, Conflict, InvalidInput
from nfskit.ganesha_dbus import DBusUnavailable, GaneshaCallError
from nfskit.model import ClientRule, Export
from nfskit.plan import make_plan

pytestmark = [pytest.mark.unit]


@pytest.fixture
def config(tmp_path):
    return {
        "exports_dir": str(tmp_path / "nfskit.d"),
        "index_file": str(tmp_path / "nfskit-exports.conf"),
        "pid_file": str(tmp_path / "ganesha.pid"),  # absent: ganesha "not running"
        "dbus_address": f"unix:path={tmp_path / 'no-bus.sock'}",
        "validate": False,  # the sandbox check needs root; covered in the functional tier
    }


def export(path, host="10.0.0.1", access="rw", pseudo=None):
    return Export(path, (ClientRule(host, access),), pseudo)


def apply(backend, *exports, **kwargs):
    return backend.apply(make_plan(backend.read(), list(exports), **kwargs))


def includes(backend):
    return [line for line in backend.index_file.read_text().splitlines() if line.startswith("%include")]


def test_file_names_are_slug_and_hash(config):
    backend = GaneshaBackend(config)
    name = backend.file_for("/srv/Team Data/x").name
    assert name.startswith("srv-team-data-x-") and name.endswith(".conf") and len(name) == len("srv-team-data-x-") + 8 + 5
    assert backend.file_for("/").name.startswith("root-")
    assert backend.file_for("/a/b") != backend.file_for("/a-b")


@pytest.mark.parametrize(
    "key, value",
    [("first_export_id", 0), ("first_export_id", 70000), ("first_export_id", "1000"), ("exports_dir", "relative"),
     ("index_file", '/etc/"x'), ("dbus_address", "tcp:host=x"), ("validate", "yes")],
)
def test_bad_config_is_refused(config, key, value):
    with pytest.raises(InvalidInput) as info:
        GaneshaBackend(dict(config, **{key: value}))
    assert info.value.field == key


def test_write_read_ids_index_and_empty_second_plan_without_a_server(config):
    backend = GaneshaBackend(config)
    report = apply(backend, export("/srv/a"), export("/srv/b", pseudo="/b"))
    assert report.method == "none" and "does not run" in report.warnings[0]
    assert backend.read() == {"/srv/a": export("/srv/a"), "/srv/b": export("/srv/b", pseudo="/b")}
    assert sorted(backend.read_ids().values()) == [1000, 1001]
    assert includes(backend) == sorted(f'%include "{backend.file_for(p)}"' for p in ("/srv/a", "/srv/b"))
    assert not make_plan(backend.read(), [export("/srv/a"), export("/srv/b", pseudo="/b")])

    apply(backend, export("/srv/b", access="ro", pseudo="/b"), remove=["/srv/a"])
    assert backend.read_ids() == {"/srv/b": 1001}
    assert not backend.file_for("/srv/a").exists()
    apply(backend, export("/srv/b", access="ro", pseudo="/b"), export("/srv/c"))
    assert backend.read_ids() == {"/srv/b": 1001, "/srv/c": 1002}
    assert sorted(os.listdir(config["exports_dir"])) == sorted([".nfskit.lock", backend.file_for("/srv/b").name, backend.file_for("/srv/c").name])


def test_ids_wrap_to_the_lowest_free_one(config):
    backend = GaneshaBackend(dict(config, first_export_id=65534))
    apply(backend, export("/srv/a"), export("/srv/b"))
    with pytest.raises(BackendError):  # an id being removed in the same run is still live while adding
        apply(backend, export("/srv/b"), export("/srv/c"), remove=["/srv/a"])
    apply(backend, export("/srv/b"), remove=["/srv/a"])
    apply(backend, export("/srv/b"), export("/srv/c"))
    assert backend.read_ids() == {"/srv/b": 65535, "/srv/c": 65534}
    with pytest.raises(BackendError) as info:
        apply(backend, export("/srv/d"))
    assert "no free ganesha Export_Id" in str(info.value)


def test_render_for_diffs_shows_the_real_or_pending_id(config):
    backend = GaneshaBackend(config)
    assert "Export_Id = (assigned when applied);" in backend.render(export("/srv/a"))
    apply(backend, export("/srv/a"))
    assert "Export_Id = 1000;" in backend.render(export("/srv/a", access="ro"))


def test_pseudo_path_clash_is_a_conflict(config):
    backend = GaneshaBackend(config)
    apply(backend, export("/srv/a", pseudo="/data"))
    with pytest.raises(Conflict):
        apply(backend, export("/srv/a", pseudo="/data"), export("/srv/b", pseudo="/data"))
    assert list(backend.read()) == ["/srv/a"]


def test_refused_option_writes_nothing(config):
    backend = GaneshaBackend(config)
    apply(backend, export("/srv/a"))
    before = sorted(os.listdir(config["exports_dir"])), backend.index_file.read_text()
    bad = Export("/srv/b", (ClientRule("10.0.0.2", "rw", options=frozenset({"crossmnt"})),))
    with pytest.raises(InvalidInput):
        apply(backend, export("/srv/a"), bad)
    assert (sorted(os.listdir(config["exports_dir"])), backend.index_file.read_text()) == before


def test_failed_write_restores_and_leaves_no_temp_files(config, monkeypatch):
    backend = GaneshaBackend(config)
    apply(backend, export("/srv/a"))
    before = {name: (backend.exports_dir / name).read_text() for name in os.listdir(backend.exports_dir)}
    index = backend.index_file.read_text()
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(ganesha_module.os, "replace", failing_replace)
    with pytest.raises(BackendError) as info:
        apply(backend, export("/srv/a", access="ro"), export("/srv/b"))
    monkeypatch.undo()
    assert "No space left" in str(info.value) and "nothing was changed" in str(info.value)
    assert {name: (backend.exports_dir / name).read_text() for name in os.listdir(backend.exports_dir)} == before
    assert backend.index_file.read_text() == index


def test_read_names_a_broken_file(config):
    backend = GaneshaBackend(config)
    apply(backend, export("/srv/a"))
    backend.file_for("/srv/a").write_text("EXPORT { Export_Id = 1000; Path = /srv/a; FSAL { Name = CEPH; } }\n")
    with pytest.raises(BackendError) as info:
        backend.read()
    assert str(backend.file_for("/srv/a")) in str(info.value) and "VFS" in str(info.value)


class FakeBus:
    """Stands in for GaneshaDBus: records calls, fails the ones it is told to."""

    calls: list = []
    fail: dict = {}

    def __init__(self, address=None, timeout=None):
        pass

    def connect(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def _do(self, method, *args):
        FakeBus.calls.append((method,) + args)
        problem = FakeBus.fail.get((method, args[-1]))
        if problem:
            raise GaneshaCallError(method, problem)
        return "ok"

    def add_export(self, conf_file, export_id):
        return self._do("add", conf_file, export_id)

    def update_export(self, conf_file, export_id):
        return self._do("update", conf_file, export_id)

    def remove_export(self, export_id):
        return self._do("remove", export_id)

    def display_export(self, export_id):
        FakeBus.calls.append(("display", export_id))
        return {"id": export_id, "path": FakeBus.running.get(export_id), "pseudo": None, "tag": None}


@pytest.fixture
def fake_bus(monkeypatch):
    FakeBus.calls, FakeBus.fail, FakeBus.running = [], {}, {}
    monkeypatch.setattr(ganesha_module, "GaneshaDBus", FakeBus)
    return FakeBus


def test_live_calls_add_update_remove(config, fake_bus):
    backend = GaneshaBackend(config)
    report = apply(backend, export("/srv/a"), export("/srv/b"))
    assert report.method == "dbus"
    fa, fb = str(backend.file_for("/srv/a")), str(backend.file_for("/srv/b"))
    assert fake_bus.calls == [("add", fa, 1000), ("add", fb, 1001)]
    fake_bus.calls.clear()
    apply(backend, export("/srv/a", access="ro"), export("/srv/c"), remove=["/srv/b"])
    fc = str(backend.file_for("/srv/c"))
    assert fake_bus.calls == [("add", fc, 1002), ("update", fa, 1000), ("remove", 1001)]


def test_live_failure_undoes_calls_and_restores_files(config, fake_bus):
    backend = GaneshaBackend(config)
    apply(backend, export("/srv/a"), export("/srv/b"))
    before = {name: (backend.exports_dir / name).read_text() for name in os.listdir(backend.exports_dir)}
    index = backend.index_file.read_text()
    fake_bus.calls.clear()
    fake_bus.fail[("remove", 1001)] = "lookup_export failed with something odd"
    with pytest.raises(BackendError) as info:
        apply(backend, export("/srv/a", access="ro"), export("/srv/c"), remove=["/srv/b"])
    assert "running exports were kept" in str(info.value) and "something odd" in str(info.value)
    fa, fc = str(backend.file_for("/srv/a")), str(backend.file_for("/srv/c"))
    assert fake_bus.calls == [
        ("add", fc, 1002), ("update", fa, 1000), ("remove", 1001),  # the plan, failing at the end
        ("update", fa, 1000), ("remove", 1002),                     # undone in reverse, old file back
    ]
    assert {name: (backend.exports_dir / name).read_text() for name in os.listdir(backend.exports_dir)} == before
    assert backend.index_file.read_text() == index


def test_errors_found_on_add_takes_the_export_out_again(config, fake_bus):
    backend = GaneshaBackend(config)
    fake_bus.fail[("add", 1000)] = "1 exports added. Errors found: Unknown token (x)"
    with pytest.raises(BackendError):
        apply(backend, export("/srv/a"))
    assert fake_bus.calls[-1] == ("remove", 1000)
    assert backend.read() == {}


def test_add_of_an_id_ganesha_already_runs(config, fake_bus):
    backend = GaneshaBackend(config)
    fake_bus.fail[("add", 1000)] = "Selected entries in FILE already active!!!"
    fake_bus.running[1000] = "/srv/admin-own"
    with pytest.raises(BackendError) as info:
        apply(backend, export("/srv/a"))
    assert "already used by /srv/admin-own" in str(info.value) and ("update", str(backend.file_for("/srv/a")), 1000) not in fake_bus.calls
    assert backend.read() == {}
    # the same export still running (its file was deleted by hand): updated in place
    fake_bus.calls.clear()
    fake_bus.running[1000] = "/srv/a"
    report = apply(backend, export("/srv/a"))
    assert fake_bus.calls[-1] == ("update", str(backend.file_for("/srv/a")), 1000) and "already active" in report.warnings[0]


def test_unknown_id_on_remove_is_only_a_warning(config, fake_bus):
    backend = GaneshaBackend(config)
    apply(backend, export("/srv/a"))
    fake_bus.fail[("remove", 1000)] = "lookup_export failed with Export id not found"
    report = apply(backend, remove=["/srv/a"])
    assert report.method == "dbus" and "was not active" in report.warnings[0]
    assert backend.read() == {}


def test_ganesha_missing_on_the_bus_falls_back_like_no_bus(config, fake_bus, monkeypatch):
    backend = GaneshaBackend(config)

    def not_on_bus(self, conf_file, export_id):
        raise DBusUnavailable("ganesha is not on the bus: org.freedesktop.DBus.Error.ServiceUnknown")

    monkeypatch.setattr(FakeBus, "add_export", not_on_bus)
    report = apply(backend, export("/srv/a"))
    assert report.method == "none" and "ServiceUnknown" in report.warnings[0]
    assert list(backend.read()) == ["/srv/a"]


def test_no_sighup_while_any_block_file_has_a_syntax_error(config, monkeypatch):
    backend = GaneshaBackend(dict(config, validate=True))
    monkeypatch.setattr(GaneshaBackend, "_check_with_ganesha", lambda self, blocks: [])  # root-only part
    monkeypatch.setattr(GaneshaBackend, "_ganesha_pid", lambda self: 12345)
    sent = []
    monkeypatch.setattr(ganesha_module.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    assert apply(backend, export("/srv/a")).method == "sighup" and len(sent) == 1
    (backend.exports_dir / "hand-made.conf").write_text("EXPORT { Export_Id = 7; Path = /srv/h\n")
    with pytest.raises(BackendError) as info:
        backend.apply(make_plan({"/srv/a": export("/srv/a")}, [export("/srv/a"), export("/srv/b")]))
    assert "hand-made.conf has a syntax error" in str(info.value) and len(sent) == 1
    assert not backend.file_for("/srv/b").exists()


def test_dbus_down_and_validation_off_refuses_sighup(config, tmp_path, monkeypatch):
    backend = GaneshaBackend(config)
    monkeypatch.setattr(GaneshaBackend, "_ganesha_pid", lambda self: 12345)  # "running"
    with pytest.raises(BackendError) as info:
        apply(backend, export("/srv/a"))
    assert "validate is off" in str(info.value)
    assert backend.read() == {}


@pytest.mark.parametrize(
    "log, outcome",
    [
        ("x] load_rados_config :CONFIG :WARN :Missing RADOS URLs backend library\n", []),
        ("x] config_errs_to_log :CONFIG :WARN :Config File (/t/b0.conf:13): Unknown token (bogus_squash)\n", "Unknown token (bogus_squash)"),
        ("x] ganesha_yyerror :CONFIG :CRIT :Config file (/t/b0.conf:13) error: syntax error\n", "block of /srv/a, line 13) error: syntax error"),
        ("x] resolve_posix_filesystem :FSAL :CRIT :stat returned No such file or directory (2) while resolving export path /x\n", "No such file"),
        ("x] config_errs_to_log :CONFIG :CRIT :Config File (/t/b0.conf:2): 1 errors while processing parameters for EXPORT\n", "errors while processing"),
        (
            "x] config_errs_to_log :CONFIG :WARN :Config File (/t/b0.conf:2): Client (h.invalid) not found because Temporary failure in name resolution\n"
            "x] config_errs_to_log :CONFIG :WARN :Config File (/t/b0.conf:1): 1 (unknown param) errors found block EXPORT\n",
            ["h.invalid"],
        ),
    ],
)
def test_judging_ganesha_logs(log, outcome):
    names = {"/t/b0.conf": "block of /srv/a"}
    if isinstance(outcome, list):
        warnings = _judge_log(log, names)
        assert len(warnings) == len(outcome) and all(word in w for word, w in zip(outcome, warnings))
    else:
        with pytest.raises(BackendError) as info:
            _judge_log(log, names)
        assert outcome in str(info.value)
