"""Session fixtures of the VM tier: the cached image, the bed (private netns + salt-master), and two
booted VMs, an NFS server (kernel nfsd running) and an NFS client with our modules synced once. The API they hand out is
documented in tests/vm/vmbed.py; how to run the tier in tests/vm/README.md.

Skips happen only when this machine cannot run the tier at all (no root, qemu/debootstrap not
installed, no /dev/net/tun); once it can, every breakage (image build, boot, salt) is an error.
"""
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.vm.image import ensure_image
from tests.vm.vmbed import VmBed

HERE = Path(__file__).resolve().parent
SERVER = "nfs-srv"
CLIENT = "nfs-cli"
TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "nsenter": "util-linux",
    "ip": "iproute2",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vm)


def _cannot_run() -> str:
    """Why this machine cannot run VM tests at all, or '' when it can."""
    if os.geteuid() != 0:
        return "VM tests need root (debootstrap, network namespaces, tap devices)"
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        return f"VM tests need Debian packages: apt-get install {' '.join(missing)}"
    if not os.path.exists("/dev/net/tun"):
        return "VM tests need /dev/net/tun (tap NICs for the VMs)"
    return ""


@pytest.fixture(scope="session")
def vm_progress(pytestconfig):
    """Print a progress line past pytest's output capture (image builds and boots take minutes)."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")
    lock = threading.Lock()

    def progress(message: str) -> None:
        with lock:
            if capman is None or reporter is None:
                print(message, flush=True)
                return
            with capman.global_and_fixture_disabled():
                reporter.write_line(message)

    return progress


@pytest.fixture(scope="session")
def vm_image(vm_progress):
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    image = ensure_image(vm_progress)
    vm_progress(f"[vm] image {image.dir.name}: kernel {image.kernel_release}, salt {image.salt_version}"
                + (f", built in {image.build_seconds:.0f}s" if image.build_seconds else " (cached)"))
    return image


@pytest.fixture(scope="session")
def vm_bed(vm_image, tmp_path_factory, vm_progress):
    workdir = tmp_path_factory.mktemp("vm")
    vm_progress(f"[vm] logs (serial consoles, master): {workdir}")
    with vm_image.in_use():
        bed = VmBed(vm_image, workdir, vm_progress).start()
        try:
            yield bed
        finally:
            bed.stop()


@pytest.fixture(autouse=True)
def vm_test_progress(request, vm_bed, vm_progress):
    """One line per test with its time and salt jobs: CI logs show where a slow run spent it."""
    started, calls = time.monotonic(), vm_bed.master.calls
    yield
    vm_progress(f"[vm] {request.node.name}: {time.monotonic() - started:.0f}s, {vm_bed.master.calls - calls} salt jobs")


@pytest.fixture(scope="session")
def vm_pair(vm_bed):
    """Both VMs boot in parallel: sequential boots would double the tier's biggest cost."""
    server, client = vm_bed.boot(SERVER, CLIENT)
    server.start_nfsd()
    return server, client


@pytest.fixture(scope="session")
def nfs_server(vm_pair):
    """The server VM's Minion: kernel nfsd running, ``export()`` ready."""
    return vm_pair[0]


@pytest.fixture(scope="session")
def nfs_client(vm_pair):
    """The client VM's Minion: kernel NFS client (mount.nfs, statd), no nfsd."""
    return vm_pair[1]


@pytest.fixture(scope="session")
def synced_modules(nfs_client):
    """The working tree's _modules/_states/_utils on the client, synced once per session (a
    ``saltutil.sync_all`` costs ~30 s under TCG); the value is what the sync reported."""
    return nfs_client.sync_modules()
