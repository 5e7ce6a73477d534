"""The nfs_client states on a real kernel (issue 3), each scenario driven through Salt states on the
client VM's minion against kernel nfsd in the server VM:

- v3 and v4.2 mounts in the spellings the kernel rewrites; a second run is quiet and keeps the mount;
- an option change is applied for real (umount + mount: new mount ID, new option in mountinfo);
- export removed and recreated under a mount: ``check_stale`` sees the stale handle and remediates;
- busy mount plus option change: refused without ``force``, old mount still works; ``force: lazy``;
- ``nfs_client.managed`` from pillar through ``salt/nfs/client.sls``: converges once, then quiet;
- server stopped: ``verify`` answers fast with "server unreachable", the minion answers, the state
  fails cleanly (last: restarting nfsd starts a v4 grace period that would slow the others).

Mount IDs and options are read from the guest's /proc/self/mountinfo directly, not through our module.
"""
import time

import pytest

pytestmark = [pytest.mark.vm]

EXPORTS = ["cs3", "cs4", "cschg", "csbusy", "csm1", "csm2", "csdead", "csstale"]


@pytest.fixture(scope="module")
def bed(vm_bed, nfs_server, synced_modules):
    """Every export of this module made once (salt calls are slow); our modules are on the client."""
    nfs_server.exports(EXPORTS)
    return vm_bed


class Seen:
    """One look at a mount: mountinfo's mount ID, fstype, source and options, and mountstats' age."""

    def __init__(self, mount_id, fstype, source, opts, age, at):
        self.mount_id, self.fstype, self.source, self.opts, self.age, self.at = mount_id, fstype, source, opts, age, at

    def __repr__(self):
        return f"<{self.fstype} {self.source} id={self.mount_id} age={self.age} {sorted(self.opts)}>"

    def same_mount_as(self, before):
        """Linux reuses a freed mount ID at once, so an equal ID alone does not prove "not remounted".
        The NFS superblock's age (/proc/self/mountstats, seconds) does: a new mount starts at 0."""
        return self.mount_id == before.mount_id and not self.newer_than(before)

    def newer_than(self, before):
        """Mounted after ``before`` was seen (``at`` is the guest's uptime; age counts whole seconds)."""
        return self.age < before.age + (self.at - before.at) - 1.5


def mounts(minion, *points):
    """``{mount point: Seen}`` from the guest's mountinfo and mountstats, read in one call."""
    text = minion.sh("cat /proc/uptime; cat /proc/self/mountinfo; echo ==stats==; cat /proc/self/mountstats")
    uptime, text = text.split("\n", 1)
    at = float(uptime.split()[0])
    info, stats = text.split("==stats==\n", 1)
    ages, current = {}, None
    for line in stats.splitlines():
        words = line.split()
        if line.startswith("device ") and " mounted on " in line:
            current = line.split(" mounted on ", 1)[1].rsplit(" with fstype ", 1)[0]
        elif words[:1] == ["age:"] and current:
            ages[current] = int(words[1])
    out = {}
    for line in info.splitlines():
        pre, post = line.split(" - ", 1)
        fields, tail = pre.split(), post.split()
        if fields[4] in points:
            opts = set(fields[5].split(",")) | set(tail[2].split(","))
            out[fields[4]] = Seen(fields[0], tail[0], tail[1], opts, ages.get(fields[4], -1), at)
    return out


def apply_sls(bed, minion, name, text, test=False, pillar=None):
    bed.master.write_sls(f"nkvm.{name}", text)
    return minion.state_apply(f"nkvm.{name}", test=test, pillar=pillar)


def mounted_sls(point, device, opts, **extra):
    lines = [f"{point}:", "  nfs_client.mounted:", f"    - device: '{device}'", f"    - opts: '{opts}'"]
    lines += [f"    - {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def cleanup(minion, *points):
    minion.run("; ".join(f"umount -l {p} 2>/dev/null; sed -i '\\# {p} #d' /etc/fstab" for p in points) + "; true")


def test_v3_and_v42_mount_then_quiet_second_run(bed, nfs_server, nfs_client):
    ip = nfs_server.ip
    sls = (mounted_sls("/mnt/cs3", f"{ip}:/srv/nfs/cs3", "nfsvers=3,_netdev")
           + mounted_sls("/mnt/cs4", f"{ip}:/srv/nfs/cs4/", "vers=4,_netdev"))
    try:
        first = apply_sls(bed, nfs_client, "cs_basic", sls)
        assert [r.result for r in first] == [True, True], first
        assert all(r.changes for r in first), first
        before = mounts(nfs_client, "/mnt/cs3", "/mnt/cs4")
        assert (before["/mnt/cs3"].fstype, before["/mnt/cs3"].source) == ("nfs", f"{ip}:/srv/nfs/cs3"), before
        assert "vers=3" in before["/mnt/cs3"].opts, before
        assert (before["/mnt/cs4"].fstype, before["/mnt/cs4"].source) == ("nfs4", f"{ip}:/srv/nfs/cs4"), before  # the kernel drops the '/'
        assert "vers=4.2" in before["/mnt/cs4"].opts, before
        nfs_client.sh("echo v3 > /mnt/cs3/f && echo v4 > /mnt/cs4/f")
        assert nfs_server.sh("cat /srv/nfs/cs3/f /srv/nfs/cs4/f").split() == ["v3", "v4"]
        fstab = nfs_client.sh("cat /etc/fstab")
        assert f"{ip}:/srv/nfs/cs3 /mnt/cs3 nfs" in fstab and "/mnt/cs4 " in fstab, fstab
        assert before["/mnt/cs3"].age >= 0 and before["/mnt/cs4"].age >= 0, before

        would = apply_sls(bed, nfs_client, "cs_basic", sls, test=True)
        assert [(r.result, r.changes) for r in would] == [(True, {}), (True, {})], would
        second = apply_sls(bed, nfs_client, "cs_basic", sls)
        assert [(r.result, r.changes) for r in second] == [(True, {}), (True, {})], second
        assert all("already in the desired state" in r.comment for r in second), second
        after = mounts(nfs_client, "/mnt/cs3", "/mnt/cs4")
        assert all(after[p].same_mount_as(before[p]) for p in before), (before, after)
        assert nfs_client.sh("cat /etc/fstab") == fstab
    finally:
        cleanup(nfs_client, "/mnt/cs3", "/mnt/cs4")


def test_option_change_is_applied_with_umount_and_mount(bed, nfs_server, nfs_client):
    device = f"{nfs_server.ip}:/srv/nfs/cschg"
    try:
        first = apply_sls(bed, nfs_client, "cs_change", mounted_sls("/mnt/cschg", device, "vers=4.2,ro", persist=False))
        assert [r.result for r in first] == [True], first
        old = mounts(nfs_client, "/mnt/cschg")["/mnt/cschg"]
        assert "ro" in old.opts, old
        assert nfs_client.run("touch /mnt/cschg/x").retcode != 0  # really read-only

        changed = apply_sls(bed, nfs_client, "cs_change",
                            mounted_sls("/mnt/cschg", device, "vers=4.2,rw,rsize=65536", persist=False))
        assert [r.result for r in changed] == [True], changed
        assert changed[0].changes, changed
        new = mounts(nfs_client, "/mnt/cschg")["/mnt/cschg"]
        assert new.newer_than(old), (old, new)  # a new mount (umount + mount), not -o remount
        assert "rw" in new.opts and "ro" not in new.opts and "rsize=65536" in new.opts, new
        nfs_client.sh("echo rw > /mnt/cschg/x")
        assert nfs_server.sh("cat /srv/nfs/cschg/x").strip() == "rw"

        again = apply_sls(bed, nfs_client, "cs_change",
                          mounted_sls("/mnt/cschg", device, "vers=4.2,rw,rsize=65536", persist=False))
        assert [(r.result, r.changes) for r in again] == [(True, {})], again
        assert mounts(nfs_client, "/mnt/cschg")["/mnt/cschg"].same_mount_as(new)
    finally:
        cleanup(nfs_client, "/mnt/cschg")


def test_stale_handle_detected_and_remediated(bed, nfs_server, nfs_client):
    device = f"{nfs_server.ip}:/srv/nfs/csstale"
    try:
        first = apply_sls(bed, nfs_client, "cs_stale", mounted_sls("/mnt/csstale", device, "vers=3,noac"))
        assert [r.result for r in first] == [True], first
        assert nfs_client.salt("nfs_client.check_stale", "/mnt/csstale")["/mnt/csstale"]["status"] == "ok"
        old = mounts(nfs_client, "/mnt/csstale")["/mnt/csstale"]

        # the export goes away and comes back as a new directory: the client's root handle is dead
        nfs_server.unexport("csstale")
        nfs_server.sh("rm -rf /srv/nfs/csstale")
        nfs_server.export("csstale")
        nfs_server.sh("echo new > /srv/nfs/csstale/marker")
        started = time.monotonic()
        report = nfs_client.salt("nfs_client.check_stale", "/mnt/csstale")["/mnt/csstale"]
        assert time.monotonic() - started < 30
        assert report["status"] == "stale", report
        assert "remediation" not in report  # not asked for: nothing done
        assert mounts(nfs_client, "/mnt/csstale")["/mnt/csstale"].same_mount_as(old)

        fixed = nfs_client.salt("nfs_client.check_stale", "/mnt/csstale", remediate="lazy")["/mnt/csstale"]
        assert fixed["status"] == "stale" and fixed["remediation"]["result"] is True, fixed
        assert nfs_client.sh("cat /mnt/csstale/marker").strip() == "new"
        assert mounts(nfs_client, "/mnt/csstale")["/mnt/csstale"].newer_than(old)
        assert nfs_client.salt("nfs_client.check_stale", "/mnt/csstale")["/mnt/csstale"]["status"] == "ok"
    finally:
        cleanup(nfs_client, "/mnt/csstale")


def test_busy_mount_refused_without_force_then_lazy(bed, nfs_server, nfs_client):
    device = f"{nfs_server.ip}:/srv/nfs/csbusy"
    pid = None
    try:
        first = apply_sls(bed, nfs_client, "cs_busy", mounted_sls("/mnt/csbusy", device, "vers=4.2", persist=False))
        assert [r.result for r in first] == [True], first
        old = mounts(nfs_client, "/mnt/csbusy")["/mnt/csbusy"]
        pid = nfs_client.salt("cmd.run_bg", "exec sleep 900", cwd="/mnt/csbusy", python_shell=True)["pid"]
        assert nfs_client.salt("nfs_client.busy", "/mnt/csbusy")["busy"] is True

        # rsize=32768: these 512 MB VMs negotiate rsize=65536 by default, so 65536 would be no change
        change = mounted_sls("/mnt/csbusy", device, "vers=4.2,rsize=32768", persist=False)
        refused = apply_sls(bed, nfs_client, "cs_busy", change)
        assert [(r.result, r.changes) for r in refused] == [(False, {})], refused
        assert "busy" in refused[0].comment and "sleep" in refused[0].comment, refused
        assert mounts(nfs_client, "/mnt/csbusy")["/mnt/csbusy"].same_mount_as(old)
        nfs_client.sh("echo still > /mnt/csbusy/still")  # the old mount keeps working
        assert nfs_server.sh("cat /srv/nfs/csbusy/still").strip() == "still"

        forced = apply_sls(bed, nfs_client, "cs_busy", change + "    - force: lazy\n")
        assert [r.result for r in forced] == [True], forced
        assert forced[0].changes, forced
        new = mounts(nfs_client, "/mnt/csbusy")["/mnt/csbusy"]
        assert new.newer_than(old) and "rsize=32768" in new.opts, (old, new)
        assert nfs_client.sh("cat /mnt/csbusy/still").strip() == "still"
    finally:
        if pid:
            nfs_client.run(f"kill {int(pid)}")
        cleanup(nfs_client, "/mnt/csbusy")


def test_managed_from_pillar_converges_once(bed, nfs_server, nfs_client):
    ip = nfs_server.ip
    pillar = {"nfs": {"client": {"mounts": {
        "/mnt/csm1": {"device": f"{ip}:/srv/nfs/csm1", "opts": "nfsvers=3,_netdev", "mode": "0755"},
        "/mnt/csm2": {"device": f"{ip}:/srv/nfs/csm2/", "fstype": "nfs4", "opts": ["hard", "_netdev"]},
    }}}}
    try:
        first = nfs_client.state_apply("nfs.client", pillar=pillar)
        assert [r.result for r in first] == [True], first
        assert first[0].changes, first
        before = mounts(nfs_client, "/mnt/csm1", "/mnt/csm2")
        assert before["/mnt/csm1"].fstype == "nfs" and "vers=3" in before["/mnt/csm1"].opts, before
        assert (before["/mnt/csm2"].fstype, before["/mnt/csm2"].source) == ("nfs4", f"{ip}:/srv/nfs/csm2"), before
        nfs_client.sh("echo m > /mnt/csm1/m && echo m > /mnt/csm2/m")

        second = nfs_client.state_apply("nfs.client", pillar=pillar)
        assert [(r.result, r.changes) for r in second] == [(True, {})], second
        after = mounts(nfs_client, "/mnt/csm1", "/mnt/csm2")
        assert all(after[p].same_mount_as(before[p]) for p in before), (before, after)
    finally:
        cleanup(nfs_client, "/mnt/csm1", "/mnt/csm2")


def test_server_stopped_verify_fast_minion_answers_state_fails_cleanly(bed, nfs_server, nfs_client):
    device = f"{nfs_server.ip}:/srv/nfs/csdead"
    first = apply_sls(bed, nfs_client, "cs_dead", mounted_sls("/mnt/csdead", device, "vers=4.2", persist=False))
    assert [r.result for r in first] == [True], first
    healthy = nfs_client.salt("nfs_client.verify", "/mnt/csdead", device=device, opts="vers=4.2")
    assert healthy["ok"] is True, healthy
    nfs_server.stop_nfsd()
    try:
        started = time.monotonic()
        report = nfs_client.salt("nfs_client.verify", "/mnt/csdead", device=device, opts="vers=4.2", timeout=5)
        took = time.monotonic() - started
        assert took < 10, took  # this includes the salt round trip
        assert report["ok"] is False and report["failed"] == "server", report
        assert report["reason"] == "server unreachable", report
        assert nfs_client.ping(timeout=10)

        # the unchanged mount is left alone; a new mount from the dead server fails with a comment
        sls = (mounted_sls("/mnt/csdead", device, "vers=4.2", persist=False)
               + mounted_sls("/mnt/csdead-new", device, "vers=4.2,retry=0", persist=False))
        # mount_timeout 10 s instead of 60: the new mount's failure is what is tested, not how long it waits
        started = time.monotonic()
        runs = apply_sls(bed, nfs_client, "cs_dead2", sls, pillar={"nfs_client": {"mount_timeout": 10}})
        took = time.monotonic() - started
        assert took < 120, took
        by_name = {r.name: r for r in runs}
        assert by_name["/mnt/csdead-new"].result is False and by_name["/mnt/csdead-new"].comment, runs
        # the mount point was made (a real change, reported); nothing was mounted
        assert set(by_name["/mnt/csdead-new"].changes.get("/mnt/csdead-new", {})) <= {"mount_point"}, runs
        assert by_name["/mnt/csdead"].changes == {}, runs
        assert nfs_client.ping(timeout=10)
        assert "/mnt/csdead-new" not in mounts(nfs_client, "/mnt/csdead-new")
    finally:
        nfs_server.start_nfsd()
        cleanup(nfs_client, "/mnt/csdead", "/mnt/csdead-new")
