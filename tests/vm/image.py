"""The test VM image: built once from Debian packages, cached outside the repo, rebuilt only when
its inputs change.

Inputs, hashed into the cache key: ``image/build-image.sh``, ``image/packages.txt``, every file
under ``image/files/``, the Debian suite and mirror (read from this machine's apt configuration),
the salt version and the names of the salt wheels. The image lives in
``$NFSKIT_VM_CACHE`` (default ``/var/cache/nfskit-vm``) as ``img-<key>/`` with ``base.img``
(raw ext4, read-only: VMs boot from qcow2 overlays on it), ``vmlinuz``, ``initrd.img`` and
``manifest.txt`` (kernel release and package versions). A file lock serialises concurrent builds.

Build by hand (prints progress)::

    .venv/bin/python -m tests.vm.image
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
IMAGE_SRC = HERE / "image"
SUITE = "bookworm"  # guest CPython must match the host's (3.11) for the host-built wheels
DEFAULT_CACHE = Path("/var/cache/nfskit-vm")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Image:
    """A built image: what a VM needs to boot."""

    dir: Path
    base: Path
    kernel: Path
    initrd: Path
    kernel_release: str
    salt_version: str
    build_seconds: Optional[float]  # None when it came from the cache

    @property
    def manifest(self) -> str:
        return (self.dir / "manifest.txt").read_text()

    @contextmanager
    def in_use(self):
        """Hold a shared lock while VMs boot from this image, so a newer build never prunes it."""
        with open(self.dir / "in-use.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            yield self


def cache_root() -> Path:
    return Path(os.environ.get("NFSKIT_VM_CACHE") or DEFAULT_CACHE)


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line format), never a hard-coded one."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", line)
            if match and "security" not in match.group(1):
                return match.group(1)
    raise RuntimeError("no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list")


def host_salt_version() -> str:
    """The minions run the same salt as the master the harness starts from this venv."""
    import salt.version

    return salt.version.__version__


def ensure_wheels(salt_version: str, progress: Progress = print) -> Path:
    """Wheels of salt and its dependencies, built once per salt version with this venv's pip."""
    target = cache_root() / f"wheels-salt-{salt_version}"
    if (target / ".complete").exists():
        return target
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    progress(f"[vm-image] pip wheel salt=={salt_version} (once per salt version)")
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-w", str(staging),
         f"salt=={salt_version}"],
        env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip wheel salt=={salt_version} failed:\n{proc.stderr[-3000:]}")
    (staging / ".complete").write_text(f"{salt_version}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    progress(f"[vm-image] {len(list(target.glob('*.whl')))} wheels in {time.monotonic() - started:.0f}s")
    return target


def cache_key(salt_version: str, mirror: str, wheels: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in IMAGE_SRC.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(IMAGE_SRC)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o111).encode())  # an executable bit matters in the image
    for name in sorted(p.name for p in wheels.glob("*.whl")):
        digest.update(name.encode() + b"\0")
    digest.update(f"{SUITE}\0{mirror}\0{salt_version}".encode())
    return digest.hexdigest()[:16]


@contextmanager
def _build_lock(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _load(directory: Path, salt_version: str, build_seconds: Optional[float]) -> Image:
    manifest = (directory / "manifest.txt").read_text()
    kernel_release = re.search(r"^kernel: (\S+)", manifest, re.M).group(1)
    return Image(directory, directory / "base.img", directory / "vmlinuz", directory / "initrd.img",
                 kernel_release, salt_version, build_seconds)


def ensure_image(progress: Progress = print) -> Image:
    """Return the cached image for the current inputs, building it first if needed (~3-4 min)."""
    if os.geteuid() != 0:
        raise PermissionError("building the VM image needs root (debootstrap, chroot)")
    salt_version = host_salt_version()
    mirror = apt_mirror()
    root = cache_root()
    with _build_lock(root):
        wheels = ensure_wheels(salt_version, progress)
        key = cache_key(salt_version, mirror, wheels)
        final = root / f"img-{key}"
        if (final / "READY").exists():
            return _load(final, salt_version, None)
        progress(f"[vm-image] building {final} (inputs changed or first run; ~3-4 min)")
        staging = root / f"build-{key}"
        _remove_staging(staging)
        staging.mkdir()
        started = time.monotonic()
        env = dict(os.environ, OUT=str(staging), MIRROR=mirror, SUITE=SUITE, WHEELS=str(wheels),
                   SALT_VERSION=salt_version, DEB_CACHE=str(root / "debs"))
        proc = subprocess.Popen(["bash", str(IMAGE_SRC / "build-image.sh")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        tail = []
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = (tail + [line])[-40:]
            if line.startswith("[vm-image"):
                progress(line)
        if proc.wait() != 0:
            _remove_staging(staging)
            raise RuntimeError(f"VM image build failed (rc={proc.returncode}):\n" + "\n".join(tail))
        elapsed = time.monotonic() - started
        (staging / "base.img").chmod(0o444)  # the base is shared by every VM's overlay: nobody writes it
        (staging / "READY").write_text(f"built in {elapsed:.0f}s\n")
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        progress(f"[vm-image] built in {elapsed:.0f}s")
        _prune(root, keep=final, progress=progress)
        return _load(final, salt_version, elapsed)


def _prune(root: Path, keep: Path, progress: Progress) -> None:
    """Remove images of older inputs that no running session holds (``Image.in_use``)."""
    for old in root.glob("img-*"):
        if old == keep or not old.is_dir():
            continue
        with open(old / "in-use.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(old)
        progress(f"[vm-image] removed outdated {old.name}")


def _remove_staging(staging: Path) -> None:
    """Remove a half-built image; its rootfs may still have /proc or /dev mounted after a crash."""
    if not staging.exists():
        return
    for sub in ("dev/pts", "dev", "proc", "sys"):
        target = staging / "rootfs" / sub
        if os.path.ismount(target):
            subprocess.run(["umount", "-l", str(target)], check=False)
    prefix = str(staging) + "/"
    with open("/proc/self/mounts") as mounts:
        left = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    if left:  # never rmtree through a bind mount of the host's /dev
        raise RuntimeError(f"cannot remove {staging}: still mounted: {left}")
    shutil.rmtree(staging)


if __name__ == "__main__":
    image = ensure_image()
    print(f"{image.dir}: kernel {image.kernel_release}, salt {image.salt_version}")
