"""Kernel NFS across two VMs, driven through Salt: nfsd in the server VM exports a directory, the
client VM mounts it with NFSv4.2 and NFSv3, writes, and the server sees the file.

The mountinfo lines these mounts produce are the fixtures of the fast unit tests
(tests/fixtures/mountinfo/). ``NFSKIT_CAPTURE_MOUNTINFO=1`` writes them there again; without it they
go to the test's tmp dir only, so a normal run never changes the repo.
"""
import os
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vm]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mountinfo"


@pytest.fixture(scope="module")
def share(nfs_server):
    return nfs_server.export("share")


@pytest.fixture
def capture_dir(tmp_path):
    if os.environ.get("NFSKIT_CAPTURE_MOUNTINFO") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        return FIXTURES
    return tmp_path


def _lines_for(text, mount_point):
    """mountinfo field 5 / /proc/mounts field 2 is the mount point (octal-escaped)."""
    field = 4 if " - " in text.splitlines()[0] else 1
    return [line for line in text.splitlines() if line.split()[field] == mount_point]


@pytest.mark.parametrize("vers,fstype", [("4.2", "nfs4"), ("3", "nfs")])
def test_mount_write_seen_on_server(nfs_server, nfs_client, share, capture_dir, vers, fstype):
    mnt = f"/mnt/v{vers.replace('.', '')}"
    options = f"vers={vers}"
    nfs_client.sh(f"mkdir -p {mnt} && mount -t nfs -o {options} {share} {mnt}")
    try:
        nfs_client.sh(f"echo 'from {nfs_client.id} over v{vers}' > {mnt}/hello-v{vers}.txt && sync")
        assert nfs_server.sh(f"cat /srv/nfs/share/hello-v{vers}.txt").strip() == f"from {nfs_client.id} over v{vers}"
        mountinfo = _lines_for(nfs_client.mountinfo(), mnt)
        mounts = _lines_for(nfs_client.proc_mounts(), mnt)
    finally:
        nfs_client.sh(f"umount {mnt}")
    assert len(mountinfo) == 1 and len(mounts) == 1, (mountinfo, mounts)
    fields = mountinfo[0].split(" - ")[1].split()
    assert fields[:2] == [fstype, share], mountinfo
    assert f"vers={vers}" in fields[2].split(","), mountinfo
    assert f"addr={nfs_server.ip}" in fields[2].split(","), mountinfo
    assert nfs_client.run(f"mountpoint -q {mnt}").retcode != 0
    _save(capture_dir, f"v{vers}", nfs_client, [f"mount -t nfs -o {options} {share} {mnt}"], mountinfo, mounts)


def test_mount_mounted_state_v42(vm_bed, nfs_server, nfs_client, share):
    """Salt's core mount.mounted on a real kernel: the state path the nfs_client states replace.
    Through an SLS: state.single cannot pass mount.mounted's ``opts`` (it collides with its own)."""
    vm_bed.master.write_sls("nkvm.mount_state", (
        "/mnt/state:\n  mount.mounted:\n"
        f"    - device: {share}\n    - fstype: nfs\n    - opts: vers=4.2\n    - mkmnt: True\n    - persist: False\n"))
    runs = nfs_client.state_apply("nkvm.mount_state")
    assert [run.result for run in runs] == [True], runs
    nfs_client.sh("echo via-state > /mnt/state/state.txt")
    assert nfs_server.sh("cat /srv/nfs/share/state.txt").strip() == "via-state"
    assert _lines_for(nfs_client.mountinfo(), "/mnt/state")
    nfs_client.sh("umount /mnt/state")


# Option spellings and device forms the nfs_client normalisation must understand, all mounted at
# once (so shared-superblock effects show): what was asked vs what the kernel shows.
VARIANTS = [
    ("/mnt/nfsvers3", "nfsvers=3", "va"),
    ("/mnt/vers4", "vers=4", "vb"),
    ("/mnt/vers4-minor1", "vers=4,minorversion=1", "vc"),
    ("/mnt/vers4.0", "vers=4.0", "vd"),
    ("/mnt/trailing-slash", "vers=4.2", "ve/"),
    ("/mnt/tuned", "vers=4.2,soft,timeo=50,retrans=2,lookupcache=positive,noac,ro", "vf"),
    ("/mnt/client-only", "vers=3,async,acregmin=3,noatime,nosuid,nodev", "vg"),
    ("/mnt/shared-first", "vers=4.2,timeo=600,retrans=3", "vh"),
    ("/mnt/shared-second", "vers=4.2,timeo=100,retrans=5", "vh"),
    ("/mnt/nconnect", "vers=4.2,nconnect=2", "vi"),
    ("/mnt/subdir", "vers=4.2", "vj/sub"),
    ("/mnt/with space", "vers=4.2,rsize=65536,wsize=65536", "vk"),
]


def test_capture_option_variants(nfs_server, nfs_client, capture_dir):
    nfs_server.exports(sorted({export.split("/")[0] for _, _, export in VARIANTS}))
    nfs_server.sh("mkdir -p /srv/nfs/vj/sub && chmod 0777 /srv/nfs/vj/sub")
    commands = []
    for mnt, options, export in VARIANTS:
        commands.append(f"mount -t nfs -o {options} '{nfs_server.ip}:/srv/nfs/{export}' '{mnt}'")
    script = " && ".join(f"mkdir -p '{mnt}'" for mnt, _, _ in VARIANTS) + " && " + " && ".join(commands)
    try:
        nfs_client.sh(script, timeout=300)
        mountinfo_all = nfs_client.mountinfo().splitlines()
        mounts_all = nfs_client.proc_mounts().splitlines()
    finally:
        nfs_client.run(" ; ".join(f"umount '{mnt}'" for mnt, _, _ in reversed(VARIANTS)), timeout=120)
    nfs_lines = [line for line in mountinfo_all if re.search(r" - nfs4? ", line)]
    nfs_mounts = [line for line in mounts_all if line.split()[2] in ("nfs", "nfs4")]
    assert len(nfs_lines) == len(VARIANTS) and len(nfs_mounts) == len(VARIANTS), (nfs_lines, nfs_mounts)
    by_point = {line.split()[4]: line for line in nfs_lines}
    assert "/mnt/with\\040space" in by_point, by_point.keys()  # the kernel octal-escapes the space
    assert " nfs " in by_point["/mnt/nfsvers3"] and "vers=3" in by_point["/mnt/nfsvers3"]
    assert " nfs4 " in by_point["/mnt/vers4"]
    assert "vers=4.1" in by_point["/mnt/vers4-minor1"]
    _save(capture_dir, "variants", nfs_client, commands, nfs_lines, nfs_mounts)


def _save(directory, name, minion, commands, mountinfo_lines, mounts_lines):
    directory = Path(directory)
    (directory / f"{name}.mountinfo").write_text("\n".join(mountinfo_lines) + "\n")
    (directory / f"{name}.mounts").write_text("\n".join(mounts_lines) + "\n")
    (directory / f"{name}.commands").write_text(
        f"# kernel {minion.kernel_release()} (Debian 12 linux-image-amd64, QEMU VM); server {minion.bed.minion('nfs-srv').ip}\n"
        + "\n".join(commands) + "\n")
