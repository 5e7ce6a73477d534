"""nfs_client execution module and states through Salt's loaders.

This host's kernel has no NFS client, so mount/umount are tests/support/fake_kernel_mount.py,
which keeps a mountinfo file in the kernel's format (real mounts: the VM tier). Everything else
is real: the fstab file (a sandbox copy), processes that make a mount busy, the TCP probe (a
local listener stands in for the server's port), stat, the canary and the timeouts.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.functional.conftest import make_loaders

pytestmark = [pytest.mark.functional]

FAKE = str(Path(__file__).resolve().parents[1] / "support" / "fake_kernel_mount.py")
FSTAB = b"# admin's fstab\nUUID=0b1c-42 / ext4 errors=remount-ro 0 1\n\ntmpfs\t/tmp\ttmpfs\tdefaults\t0 0\n"


class Host:
    """A sandboxed client: its mount table, fstab, mount points and the calls the fake kernel saw."""

    def __init__(self, root: Path):
        self.root = root
        self.state = root / "kernel"
        self.state.mkdir()
        self.mountinfo = self.state / "mountinfo"
        self.mountinfo.write_text("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n")
        self.fstab = root / "fstab"
        self.fstab.write_bytes(FSTAB)
        self.filesystems = root / "filesystems"
        self.filesystems.write_text("nodev\tsysfs\nnodev\tnfs\nnodev\tnfs4\n\text4\n")
        self.mnt = root / "mnt"
        self.mnt.mkdir()

    def config(self, **extra):
        fake = [sys.executable, FAKE, str(self.state)]
        config = {
            "mountinfo": str(self.mountinfo),
            "fstab": str(self.fstab),
            "mount": fake + ["mount"],
            "umount": fake + ["umount"],
            "proc_filesystems": str(self.filesystems),
            "modprobe": ["false"],
            "timeout": 3,
            "tcp_timeout": 1,
            "mount_timeout": 20,
        }
        config.update(extra)
        return config

    def calls(self):
        log = self.state / "calls.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def table(self):
        return self.mountinfo.read_text()

    def add_line(self, mount_point, source, fstype, supers, device_id="0:77"):
        with open(self.mountinfo, "a") as handle:
            handle.write(f"77 27 {device_id} / {mount_point} rw,relatime shared:1 - {fstype} {source} {supers}\n")


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


@pytest.fixture
def loaders(minion_opts, host):
    loaders = make_loaders(minion_opts, nfs_client=host.config())
    try:
        yield loaders
    finally:
        loaders.reset_state()


@pytest.fixture
def mods(loaders):
    return loaders.modules


class HighStates:
    """``states.nfs_client.mounted(name, opts=..., test=...)`` through ``state.high``.

    Not through ``state.single`` (the loaders' default): Salt's ``state.single`` hands its kwargs to
    ``get_sls_opts(opts, **kwargs)``, so a state argument named ``opts`` (core ``mount.mounted``'s
    name, ours too) cannot pass through it. SLS files and ``state.high`` are not affected.
    """

    def __init__(self, modules):
        self._modules = modules
        self.nfs_client = self

    def __getattr__(self, fun):
        def call(name, test=False, **kwargs):
            high = {name: {"nfs_client": [fun] + [{key: value} for key, value in kwargs.items()], "__env__": "base", "__sls__": "functional"}}
            return self._modules.state.high(high, test=test)[0]

        return call


@pytest.fixture
def states(loaders):
    return HighStates(loaders.modules)


@pytest.fixture
def listener():
    """A TCP port that accepts, standing in for the server's NFS port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def user_of(request):
    """Start a real process whose cwd is inside a directory, making a mount there busy."""
    procs = []

    def start(directory):
        proc = subprocess.Popen(["sleep", "60"], cwd=str(directory))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


V42 = "rw,vers=4.2,rsize=524288,wsize=524288,namlen=255,hard,proto=tcp,port={port},timeo=600,retrans=2,sec=sys,clientaddr=127.0.0.1,local_lock=none,addr=127.0.0.1"


# ---- execution module ------------------------------------------------------------------------

def test_list_mounts_reads_the_table_without_touching_paths(mods, host):
    host.add_line("/nonexistent/dead", "nfs1:/srv/dead", "nfs4", V42.format(port=2049))
    listed = mods.nfs_client.list_mounts()
    assert list(listed) == ["/nonexistent/dead"]
    assert listed["/nonexistent/dead"]["device"] == "nfs1:/srv/dead"
    assert "vers=4.2" in listed["/nonexistent/dead"]["superopts"]
    assert set(mods.nfs_client.list_mounts(nfs_only=False)) == {"/", "/nonexistent/dead"}


def test_fstab_functions_keep_every_other_byte(mods, host):
    assert mods.nfs_client.set_fstab("/mnt/a", "nfs1:/srv/a", opts="vers=4.2,_netdev", test=True) == "new"
    assert host.fstab.read_bytes() == FSTAB
    assert mods.nfs_client.set_fstab("/mnt/a", "nfs1:/srv/a", opts="vers=4.2,_netdev") == "new"
    assert host.fstab.read_bytes() == FSTAB + b"nfs1:/srv/a /mnt/a nfs vers=4.2,_netdev 0 0\n"
    assert mods.nfs_client.set_fstab("/mnt/a", "nfs1:/srv/a", opts=["_netdev", "vers=4.2"]) == "present"
    assert mods.nfs_client.fstab()["/mnt/a"] == {"device": "nfs1:/srv/a", "fstype": "nfs", "opts": ["vers=4.2", "_netdev"], "dump": 0, "pass": 0}
    assert mods.nfs_client.rm_fstab("/mnt/a") is True
    assert host.fstab.read_bytes() == FSTAB
    assert mods.nfs_client.rm_fstab("/mnt/a") is False
    assert sorted(os.listdir(host.root)) == ["filesystems", "fstab", "kernel", "mnt"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"device": "nfs1:/srv/a\n/dev/sda1 / ext4"}, "device: .* contains whitespace"),
        ({"device": "nfs1:/srv/a", "opts": "rw,a#b"}, r"opts\[1\]: 'a#b' contains"),
        ({"device": "nfs1:/srv/a", "fstype": "ext4"}, "fstype: 'ext4' is not managed by nfs_client"),
        ({"device": "nfs1:/srv/a", "dump": "x"}, "dump: 'x' must be a number"),
    ],
)
def test_set_fstab_refuses_bad_input_writing_nothing(mods, host, kwargs, message):
    with pytest.raises(SaltInvocationError, match=message):
        mods.nfs_client.set_fstab("/mnt/a", **kwargs)
    assert host.fstab.read_bytes() == FSTAB
    assert sorted(os.listdir(host.root)) == ["filesystems", "fstab", "kernel", "mnt"]


def test_mount_and_unmount(mods, host):
    point = str(host.mnt / "data")
    mounted = mods.nfs_client.mount(point, "nfs1:/srv/data/", opts="vers=4", mkmnt=True, mode="0750")
    assert mounted["mounted"] and mounted["entry"]["fstype"] == "nfs4" and "vers=4.2" in mounted["entry"]["superopts"]
    assert os.stat(point).st_mode & 0o777 == 0o750
    with pytest.raises(CommandExecutionError, match="already mounted"):
        mods.nfs_client.mount(point, "nfs1:/srv/data")
    assert mods.nfs_client.unmount(point)["unmounted"] is True
    assert point not in host.table()
    assert mods.nfs_client.unmount(point) == {"unmounted": False, "comment": f"nothing is mounted on {point}"}


def test_unmount_refuses_a_busy_mount_unless_forced(mods, host, user_of):
    point = host.mnt / "busy"
    mods.nfs_client.mount(str(point), "nfs1:/srv/busy", mkmnt=True)
    proc = user_of(point)
    with pytest.raises(CommandExecutionError, match=rf"is busy .*used by pid {proc.pid} \(sleep: cwd\).*force: lazy"):
        mods.nfs_client.unmount(str(point))
    assert str(point) in host.table()
    assert mods.nfs_client.busy(str(point))["users"][0]["pid"] == proc.pid
    with pytest.raises(SaltInvocationError, match="force: 'yes' must be 'lazy'"):
        mods.nfs_client.unmount(str(point), force="yes")
    assert mods.nfs_client.unmount(str(point), force="lazy")["unmounted"] is True
    assert host.calls()[-1] == ["umount", "-c", "-l", str(point)]


def test_a_kernel_without_nfs_gives_a_clear_error(minion_opts, host):
    loaders = make_loaders(minion_opts, nfs_client=host.config(proc_filesystems="/proc/filesystems"))
    try:
        if "nfs" in Path("/proc/filesystems").read_text().split():
            pytest.skip("this kernel has an NFS client")
        with pytest.raises(CommandExecutionError, match="this kernel has no NFS client support: no 'nfs' in /proc/filesystems and 'modprobe nfs' failed"):
            loaders.modules.nfs_client.mount(str(host.mnt / "x"), "nfs1:/srv/x", mkmnt=True)
        ret = HighStates(loaders.modules).nfs_client.mounted(str(host.mnt / "x"), device="nfs1:/srv/x")
        assert ret.result is False and "no NFS client support" in ret.comment
        assert host.calls() == [] and host.fstab.read_bytes() == FSTAB
    finally:
        loaders.reset_state()


# ---- verify and check_stale ------------------------------------------------------------------

def test_verify_a_healthy_mount_runs_every_check(mods, host, listener):
    point = host.mnt / "ok"
    point.mkdir()
    host.add_line(str(point), "127.0.0.1:/srv/ok", "nfs4", V42.format(port=listener))
    report = mods.nfs_client.verify(str(point), device="127.0.0.1:/srv/ok/", opts="nfsvers=4.2,_netdev")
    assert report["ok"] is True, report
    assert [c["check"] for c in report["checks"]] == ["mounted", "source", "options", "server", "stat", "canary"]
    assert os.listdir(point) == []  # the canary cleaned up


def test_verify_names_the_failed_check(mods, host, listener):
    point = host.mnt / "v"
    point.mkdir()
    host.add_line(str(point), "127.0.0.1:/srv/v", "nfs4", V42.format(port=listener))
    assert mods.nfs_client.verify(str(host.mnt / "absent"))["reason"] == "not mounted"
    wrong = mods.nfs_client.verify(str(point), device="127.0.0.1:/srv/other")
    assert (wrong["failed"], wrong["reason"]) == ("source", "wrong source")
    options = mods.nfs_client.verify(str(point), opts="vers=3")
    assert options["reason"] == "options differ" and "vers=3 wanted, vers=4.2 in effect" in options["message"]


def test_verify_does_not_blame_the_server_for_a_slow_starting_canary(minion_opts, host, listener, tmp_path):
    """The canary is a Python child; on a loaded host its start alone can take longer than the
    canary's ``timeout``. The deadline counts from its first step, so the mount verifies fine."""
    slow_python = tmp_path / "slow-python"
    slow_python.write_text(f"#!/bin/sh\nsleep 2\nexec {sys.executable} \"$@\"\n")
    slow_python.chmod(0o755)
    loaders = make_loaders(minion_opts, nfs_client=host.config(timeout=1, python=[str(slow_python)]))
    try:
        point = host.mnt / "slowcanary"
        point.mkdir()
        host.add_line(str(point), "127.0.0.1:/srv/slow", "nfs4", V42.format(port=listener))
        report = loaders.modules.nfs_client.verify(str(point))
        assert report["ok"] is True, report
        assert report["checks"][-1]["check"] == "canary" and report["elapsed"] >= 2
        assert os.listdir(point) == []
    finally:
        loaders.reset_state()


def test_verify_server_unreachable_answers_fast_and_never_stats(mods, host):
    point = host.mnt / "dead"  # never created: a stat would fail differently
    host.add_line(str(point), "127.0.0.1:/srv/dead", "nfs4", V42.format(port=closed_port()))
    start = time.monotonic()
    report = mods.nfs_client.verify(str(point))
    assert time.monotonic() - start < 3
    assert (report["failed"], report["reason"]) == ("server", "server unreachable")
    assert [c["check"] for c in report["checks"]] == ["mounted", "server"]


def test_verify_permission_denied_from_the_canary(mods, host, listener):
    point = host.mnt / "locked"
    point.mkdir()
    host.add_line(str(point), "127.0.0.1:/srv/locked", "nfs4", V42.format(port=listener))
    if subprocess.run(["chattr", "+i", str(point)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        report = mods.nfs_client.verify(str(point))
    finally:
        subprocess.run(["chattr", "-i", str(point)], check=True)
    assert (report["failed"], report["reason"]) == ("canary", "permission denied"), report
    assert "Operation not permitted while write" in report["message"]


@pytest.fixture
def hanging_stat(host):
    """A stat that never answers, as on a hard mount of a dead server."""
    script = host.root / "hanging-stat"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def stale_stat(host):
    """What coreutils stat prints for ESTALE."""
    script = host.root / "stale-stat"
    script.write_text("#!/bin/sh\necho \"stat: cannot statx '$4': Stale file handle\" >&2\nexit 1\n")
    script.chmod(0o755)
    return str(script)


def test_a_hanging_check_answers_within_the_timeout(minion_opts, host, listener, hanging_stat):
    point = host.mnt / "hung"
    point.mkdir()
    host.add_line(str(point), "127.0.0.1:/srv/hung", "nfs4", V42.format(port=listener))
    loaders = make_loaders(minion_opts, nfs_client=host.config(stat=hanging_stat))
    try:
        start = time.monotonic()
        report = loaders.modules.nfs_client.verify(str(point), timeout=1)
        assert time.monotonic() - start < 3
        assert (report["failed"], report["reason"]) == ("stat", "timed out")
        start = time.monotonic()
        stale = loaders.modules.nfs_client.check_stale(timeout=1)
        assert time.monotonic() - start < 3
        assert stale[str(point)]["status"] == "hung"
        assert loaders.modules.test.ping() is True
    finally:
        loaders.reset_state()


def test_check_stale_finds_and_remediates_a_stale_handle(minion_opts, host, listener, stale_stat):
    point = host.mnt / "stale"
    point.mkdir()
    host.add_line(str(point), "127.0.0.1:/srv/stale", "nfs4", V42.format(port=listener))
    host.fstab.write_bytes(FSTAB + f"127.0.0.1:/srv/stale {point} nfs vers=4.2,_netdev 0 0\n".encode())
    loaders = make_loaders(minion_opts, nfs_client=host.config(stat=stale_stat))
    try:
        report = loaders.modules.nfs_client.check_stale()
        assert report[str(point)]["status"] == "stale" and "Stale file handle" in report[str(point)]["detail"]
        assert host.calls() == []
        fixed = loaders.modules.nfs_client.check_stale(str(point), remediate="lazy")
        assert fixed[str(point)]["remediation"]["result"] is True
        assert [c[:3] for c in host.calls()] == [["umount", "-c", "-l"], ["mount", "-t", "nfs"]]
        assert host.calls()[1][-3:] == ["vers=4.2,_netdev", "127.0.0.1:/srv/stale", str(point)]
    finally:
        loaders.reset_state()


# ---- states ----------------------------------------------------------------------------------

def test_mounted_dry_run_then_apply_then_quiet(states, host):
    point = str(host.mnt / "data")
    dry = states.nfs_client.mounted(point, device="nfs1:/srv/data", opts="vers=4.2,_netdev", mode="0750", test=True)
    assert dry.result is None
    assert dry.changes[point]["mounted"] == {"old": None, "new": f"nfs1:/srv/data on {point} type nfs (vers=4.2,_netdev)"}
    assert dry.changes[point]["fstab"] == {"old": None, "new": f"nfs1:/srv/data {point} nfs vers=4.2,_netdev 0 0"}
    assert dry.changes[point]["mount_point"] == {"created": True, "mode": [None, "0o750"]}
    assert dry.comment.startswith(f"Would create or adjust the mount point {point}; mount nfs1:/srv/data")
    assert not os.path.exists(point) and host.calls() == [] and host.fstab.read_bytes() == FSTAB

    first = states.nfs_client.mounted(point, device="nfs1:/srv/data", opts="vers=4.2,_netdev", mode="0750")
    assert first.result is True, first.comment
    assert set(first.changes[point]) == {"mounted", "mount_point", "fstab"}
    assert os.stat(point).st_mode & 0o777 == 0o750
    assert host.fstab.read_bytes() == FSTAB + f"nfs1:/srv/data {point} nfs vers=4.2,_netdev 0 0\n".encode()
    assert f" {point} rw,relatime" in host.table()

    calls = len(host.calls())
    for opts in ("vers=4.2,_netdev", "_netdev,vers=4.2", ["vers=4.2", "_netdev"]):
        again = states.nfs_client.mounted(point, device="nfs1:/srv/data", opts=opts, mode="0750")
        assert again.result is True and again.changes == {}, again.comment
        assert again.comment == f"Mount {point} already in the desired state"
    # another spelling of the same options: fstab follows the text, the mount is left alone
    respelled = states.nfs_client.mounted(point, device="nfs1:/srv/data", opts="nfsvers=4.2,_netdev", mode="0750")
    assert list(respelled.changes[point]) == ["fstab"]
    assert len(host.calls()) == calls


def test_a_slow_starting_mount_point_helper_is_not_cut_off(minion_opts, host, tmp_path):
    """The mount point is made by a Python child (its parent may be on a dead mount). On a loaded
    1-vCPU VM that interpreter alone took seconds to start, and with the 5 s stat ``timeout`` 10 of
    50 first mounts failed; creating the mount point is part of mounting, so it gets mount_timeout."""
    slow_python = tmp_path / "slow-python"
    slow_python.write_text(f"#!/bin/sh\nsleep 2\nexec {sys.executable} \"$@\"\n")
    slow_python.chmod(0o755)
    loaders = make_loaders(minion_opts, nfs_client=host.config(timeout=1, mount_timeout=20, python=[str(slow_python)]))
    try:
        point = str(host.mnt / "slow" / "data")
        ret = HighStates(loaders.modules).nfs_client.mounted(point, device="nfs1:/srv/data", opts="vers=4.2", mode="0750")
        assert ret.result is True, ret.comment
        assert os.stat(point).st_mode & 0o777 == 0o750 and f" {point} rw,relatime" in host.table()
    finally:
        loaders.reset_state()


def test_spellings_the_kernel_changes_never_remount(states, host):
    point = str(host.mnt / "spell")
    opts = "vers=4,noauto,x-systemd.automount,async,acregmin=3,lookupcache=positive,tcp"
    assert states.nfs_client.mounted(point, device="nfs1:/srv/spell/", opts=opts, persist=False).result is True
    calls = len(host.calls())
    again = states.nfs_client.mounted(point, device="nfs1:/srv/spell", opts=opts, persist=False)
    assert again.result is True and again.changes == {}, again.comment
    assert len(host.calls()) == calls


def test_a_real_change_is_umount_and_mount_never_remount(states, host):
    point = str(host.mnt / "chg")
    states.nfs_client.mounted(point, device="nfs1:/srv/chg", opts="vers=4.2,hard")
    dry = states.nfs_client.mounted(point, device="nfs1:/srv/chg", opts="vers=4.2,soft", test=True)
    assert dry.result is None and dry.changes[point]["options"] == {"old": ["(no soft)"], "new": ["soft"]}
    assert f"umount {point} and mount it again (soft wanted, (not set) in effect)" in dry.comment
    calls = len(host.calls())
    ret = states.nfs_client.mounted(point, device="nfs1:/srv/chg", opts="vers=4.2,soft")
    assert ret.result is True, ret.comment
    made = host.calls()[calls:]
    assert [c[0] for c in made] == ["umount", "mount"] and not any("remount" in " ".join(c) for c in made)
    assert ",soft," in host.table()
    assert host.fstab.read_bytes().endswith(f"nfs1:/srv/chg {point} nfs vers=4.2,soft 0 0\n".encode())


def test_a_busy_mount_is_not_unmounted_without_force(states, host, user_of):
    point = host.mnt / "busy"
    states.nfs_client.mounted(str(point), device="nfs1:/srv/busy", opts="vers=4.2")
    proc = user_of(point)
    table, fstab = host.table(), host.fstab.read_bytes()

    dry = states.nfs_client.mounted(str(point), device="nfs1:/srv/busy", opts="vers=4.2,noac", test=True)
    assert dry.result is None and f"busy (used by pid {proc.pid} (sleep))" in dry.comment

    refused = states.nfs_client.mounted(str(point), device="nfs1:/srv/busy", opts="vers=4.2,noac")
    assert refused.result is False
    assert f"{point} is busy" in refused.comment and "keeps working" in refused.comment and "force: lazy" in refused.comment
    assert refused.changes == {}
    assert host.table() == table and host.fstab.read_bytes() == fstab

    forced = states.nfs_client.mounted(str(point), device="nfs1:/srv/busy", opts="vers=4.2,noac", force="lazy")
    assert forced.result is True, forced.comment
    assert ",noac," in host.table()


def test_options_shared_with_another_mount_are_reported_not_looped(states, host):
    first, second = str(host.mnt / "first"), str(host.mnt / "second")
    states.nfs_client.mounted(first, device="nfs1:/srv/a", opts="vers=4.2,timeo=600", persist=False)
    states.nfs_client.mounted(second, device="nfs1:/srv/b", opts="vers=4.2", persist=False)
    calls = len(host.calls())
    ret = states.nfs_client.mounted(second, device="nfs1:/srv/b", opts="vers=4.2,timeo=100", persist=False)
    assert ret.result is True and ret.changes == {}
    assert f"timeo=100 wanted, timeo=600 in effect (shared with {first} from the same server" in ret.comment
    assert len(host.calls()) == calls


def test_unmounted_and_persist(states, host):
    point = str(host.mnt / "gone")
    states.nfs_client.mounted(point, device="nfs1:/srv/gone")
    dry = states.nfs_client.unmounted(point, persist=True, test=True)
    assert dry.result is None and set(dry.changes[point]) == {"mounted", "fstab"}
    ret = states.nfs_client.unmounted(point, persist=True)
    assert ret.result is True and point not in host.table()
    assert host.fstab.read_bytes() == FSTAB
    assert states.nfs_client.unmounted(point, persist=True).changes == {}


def test_managed_converges_a_host_in_one_state(states, host):
    mounts = {
        str(host.mnt / "a"): {"device": "nfs1:/srv/a", "opts": "nfsvers=3"},
        str(host.mnt / "b"): {"device": "nfs1:/srv/b", "fstype": "nfs4", "opts": ["hard", "_netdev"], "owner": "root", "mode": 755},
    }
    first = states.nfs_client.managed("web", mounts=mounts)
    assert first.result is True and set(first.changes) == set(mounts), first.comment
    assert states.nfs_client.managed("web", mounts=mounts).changes == {}
    fewer = {k: v for k, v in mounts.items() if k.endswith("/a")}
    kept = states.nfs_client.managed("web", mounts=fewer)
    assert kept.changes == {}
    removed = states.nfs_client.managed("web", mounts=fewer, remove_unlisted=True)
    assert list(removed.changes) == [str(host.mnt / "b")]
    assert str(host.mnt / "b") not in host.table() and b"/srv/b" not in host.fstab.read_bytes()
    assert b"/tmp\ttmpfs" in host.fstab.read_bytes()  # not NFS: never touched by remove_unlisted


def test_states_refuse_bad_input_touching_nothing(states, host):
    point = str(host.mnt / "bad")
    cases = [
        ({"device": "nfs1:/srv a"}, "device: 'nfs1:/srv a' contains whitespace"),
        ({"device": "nfs1:/srv", "opts": "vers=4.2\n/dev/sda1 /"}, "opts[0]: 'vers=4.2\\n/dev/sda1 /' contains"),
        ({"device": "nfs1:/srv", "force": "always"}, "force: 'always' must be 'lazy'"),
        ({"device": "nfs1:/srv", "mode": "rwx"}, "mode: 'rwx' must be an octal mode"),
        ({"device": "nfs1:/srv", "owner": "no-such-user-nfskit"}, "owner: 'no-such-user-nfskit' is not a known user"),
        ({"device": "nfs1:/srv", "user": "bob"}, "user: 'bob' (run mount as another user) is not supported"),
        ({"device": "nfs1:/srv", "fstype": "cifs"}, "fstype: 'cifs' is not managed by nfs_client"),
        ({"device": "nfs1:/srv", "bogus": 1}, "bogus: is not an argument of nfs_client.mounted"),
    ]
    for kwargs, message in cases:
        ret = states.nfs_client.mounted(point, **kwargs)
        assert ret.result is False and ret.comment.startswith(message), (kwargs, ret.comment)
    relative = states.nfs_client.mounted("mnt/x", device="nfs1:/srv")
    assert relative.comment.startswith("name: 'mnt/x' is not an absolute path")
    bad_managed = states.nfs_client.managed("web", mounts={point: {"device": "nfs1:/srv", "optz": "rw"}})
    assert bad_managed.result is False and "optz" in bad_managed.comment
    assert host.calls() == [] and host.fstab.read_bytes() == FSTAB and not os.path.exists(point)


def test_core_mount_mounted_arguments_are_accepted(states, host):
    point = str(host.mnt / "core")
    ret = states.nfs_client.mounted(
        point, device="nfs1:/srv/core", fstype="nfs", opts="vers=3", dump=0, pass_num=0, config=str(host.fstab),
        persist=True, mount=True, mkmnt=True, match_on="auto", hidden_opts=["fancy"],
    )
    assert ret.result is True, ret.comment
    only_fstab = states.nfs_client.mounted(str(host.mnt / "later"), device="nfs1:/srv/later", mount=False)
    assert set(only_fstab.changes[str(host.mnt / "later")]) == {"fstab"}
    assert str(host.mnt / "later") not in host.table()


def test_the_client_formula_mounts_what_pillar_says(minion_opts, host, tmp_path):
    pillar = tmp_path / "pillar"
    pillar.mkdir()
    (pillar / "top.sls").write_text("base:\n  '*':\n    - mounts\n")
    point = host.mnt / "data"
    (pillar / "mounts.sls").write_text(f"nfs:\n  client:\n    mounts:\n      {point}: {{device: 'nfs1:/srv/data', opts: 'vers=4.2,hard'}}\n")
    loaders = make_loaders(minion_opts, nfs_client=host.config(), pillar_roots={"base": [str(pillar)]})
    try:
        dry = loaders.modules.state.sls("nfs.client", test=True)
        assert [r.result for r in dry] == [None] and host.calls() == [], dry.raw
        first = loaders.modules.state.sls("nfs.client")
        assert [r.result for r in first] == [True] and str(point) in next(iter(first)).changes, first.raw
        assert f" {point} " in host.table() and b"nfs1:/srv/data" in host.fstab.read_bytes()
        again = loaders.modules.state.sls("nfs.client")
        assert [(r.result, r.changes) for r in again] == [(True, {})], again.raw
    finally:
        loaders.reset_state()
