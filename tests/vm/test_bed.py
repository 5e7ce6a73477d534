"""The bed itself: real kernels answer through Salt, our modules sync, and the controls later
scenarios rely on (nfsd off/on, network cut) really do what they say."""
import time

import pytest

from tests.vm.master import REPO

pytestmark = [pytest.mark.vm]


def test_minions_answer_ping_on_debian_kernels(vm_bed, nfs_server, nfs_client):
    for minion in (nfs_server, nfs_client):
        assert minion.salt("test.ping") is True
        assert minion.kernel_release() == vm_bed.image.kernel_release
        assert minion.salt("grains.get", "id") == minion.id
    assert sorted(vm_bed.master.accepted_keys()) == sorted([nfs_server.id, nfs_client.id])


def test_server_runs_kernel_nfsd(nfs_server):
    versions = nfs_server.sh("cat /proc/fs/nfsd/versions").split()
    assert "+3" in versions and "+4.2" in versions, versions
    assert nfs_server.nfsd_active()


def test_sync_modules_ships_the_working_tree(nfs_client, synced_modules):
    for loader_dir, kind in (("_modules", "modules"), ("_states", "states")):
        for path in sorted((REPO / loader_dir).glob("*.py")):
            assert f"{kind}.{path.stem}" in synced_modules[kind], synced_modules
    if (REPO / "_utils" / "nfskit").is_dir():
        listing = nfs_client.sh("ls /var/cache/salt/minion/extmods/utils/nfskit")
        assert "__init__.py" in listing.split(), listing


def test_stop_and_start_nfsd(nfs_server, nfs_client):
    device = nfs_server.export("onoff")
    nfs_client.sh("mkdir -p /mnt/onoff")
    nfs_server.stop_nfsd()
    try:
        assert not nfs_server.nfsd_active()
        started = time.monotonic()
        # the server VM is up but nothing answers on 2049: the mount fails fast instead of retrying
        res = nfs_client.run(f"timeout 30 mount -t nfs -o vers=4.2,retry=0,soft,timeo=20,retrans=1 {device} /mnt/onoff")
        assert res.retcode != 0, res
        assert time.monotonic() - started < 45
    finally:
        nfs_server.start_nfsd()
    nfs_client.sh(f"mount -t nfs -o vers=4.2 {device} /mnt/onoff && echo back > /mnt/onoff/f && umount /mnt/onoff")
    assert nfs_server.sh("cat /srv/nfs/onoff/f").strip() == "back"


def test_link_down_makes_server_unreachable_while_client_minion_answers(nfs_server, nfs_client):
    device = nfs_server.export("cut")
    nfs_client.sh("mkdir -p /mnt/cut")
    nfs_server.link_down()
    try:
        res = nfs_client.run(f"timeout 15 mount -t nfs -o vers=4.2,retry=0 {device} /mnt/cut")
        assert res.retcode != 0, res
        assert nfs_client.ping()
    finally:
        nfs_server.link_up()
    nfs_server.wait_ping(120)  # its connection to the master survived the cut
    nfs_client.sh(f"mount -t nfs -o vers=4.2 {device} /mnt/cut && umount /mnt/cut", timeout=120)
