"""One QEMU VM: a copy-on-write overlay on the cached image, a tap NIC in the harness' namespace,
the serial console in a log file.

The cached ``base.img`` is the qcow2 overlay's read-only backing file, so it is never modified and
any number of VMs can share it. Each VM learns its address, gateway, minion id and master from the
kernel command line (``nkvm.*=``; see image/files/usr/local/sbin/nkvm-arg).

Acceleration: ``-accel kvm`` only when a probe boots the image's kernel under KVM (a stock kernel
cannot run on this machine's ``kvm_pvm``, research/vm.md), otherwise TCG with
``thread=multi,tb-size=128`` (~400 MB RSS per VM at ``-m 512``). ``NFSKIT_VM_ACCEL=tcg|kvm``
overrides the probe; its answer is cached per host kernel and guest kernel.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import List, Optional

from tests.vm.image import Image, cache_root
from tests.vm.netns import HOST_ADDR, SUBNET, NetNs, stop_process

TCG = "tcg,thread=multi,tb-size=128"
KVM = "kvm"


class Vm:
    """A VM named ``name`` (also its hostname and minion id) at ``ip`` on the namespace's bridge."""

    def __init__(self, image: Image, netns: NetNs, workdir: Path, name: str, index: int, accel: str,
                 memory_mb: int = 512, cpus: int = 1):
        self.image = image
        self.netns = netns
        self.workdir = Path(workdir)
        self.name = name
        self.index = index
        self.ip = str(SUBNET.network_address + 10 + index)
        self.mac = f"52:54:00:77:00:{10 + index:02x}"
        self.tap = f"tap{index}"
        self.accel = accel
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.overlay = self.workdir / f"{name}.qcow2"
        self.serial_log = self.workdir / f"{name}-serial.log"
        self.proc: Optional[subprocess.Popen] = None
        self.started_at: Optional[float] = None

    def argv(self) -> List[str]:
        append = " ".join([
            "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet panic=-1",
            f"systemd.hostname={self.name}",
            f"nkvm.id={self.name} nkvm.ip={self.ip}/{SUBNET.prefixlen} nkvm.gw={HOST_ADDR} nkvm.master={HOST_ADDR}",
        ])
        cpu = "host" if self.accel == KVM else "max"
        return [
            "qemu-system-x86_64", "-name", f"nkvm-{self.name}",
            "-accel", self.accel, "-cpu", cpu, "-smp", str(self.cpus), "-m", str(self.memory_mb),
            "-nodefaults", "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{self.serial_log}",
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd), "-append", append,
            # cache=unsafe: the overlay is thrown away with the VM, so host flushes buy nothing
            "-drive", f"file={self.overlay},format=qcow2,if=virtio,cache=unsafe",
            "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={self.mac}",
            # python (salt) wants entropy early in boot
            "-device", "virtio-rng-pci",
        ]

    def start(self) -> "Vm":
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image.base),
                        str(self.overlay)], check=True)
        self.netns.add_tap(self.tap)
        log = open(self.workdir / f"{self.name}-qemu.log", "w")
        self.started_at = time.monotonic()
        self.proc = self.netns.popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Power off hard, keeping the overlay (``read_file_offline`` can still look inside)."""
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None

    def stop(self) -> None:
        """Power off hard: the overlay is disposable, so there is nothing to shut down cleanly."""
        self.kill()
        self.overlay.unlink(missing_ok=True)

    def read_file_offline(self, path: str, max_chars: int = 6000) -> str:
        """A file from the stopped VM's disk (e.g. /var/log/salt/minion after a failed boot), read
        with debugfs from a raw copy of the overlay: no mount, no kernel block device needed."""
        if self.alive():
            raise RuntimeError("read_file_offline needs a stopped VM (kill() first)")
        raw = self.workdir / f"{self.name}.post-mortem.raw"
        try:
            subprocess.run(["qemu-img", "convert", "-O", "raw", str(self.overlay), str(raw)], check=True,
                           capture_output=True, timeout=300)
            out = subprocess.run(["debugfs", "-R", f"cat {path}", str(raw)], capture_output=True, text=True,
                                 errors="replace", timeout=60).stdout
        finally:
            raw.unlink(missing_ok=True)
        return out[-max_chars:]

    def link_down(self) -> None:
        """Cut this VM off the network (its NIC stays up inside the guest: packets just vanish)."""
        self.netns.link_down(self.tap)

    def link_up(self) -> None:
        self.netns.link_up(self.tap)

    def serial_tail(self, lines: int = 40) -> str:
        if not self.serial_log.exists():
            return "(no serial output)"
        return "\n".join(self.serial_log.read_text(errors="replace").splitlines()[-lines:])

    def qemu_log(self) -> str:
        path = self.workdir / f"{self.name}-qemu.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def pick_accel(image: Image, workdir: Path) -> str:
    """KVM if it really boots the image's kernel here, else TCG (see module docstring)."""
    forced = os.environ.get("NFSKIT_VM_ACCEL")
    if forced:
        return KVM if forced == "kvm" else TCG
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return TCG
    key = hashlib.sha256(f"{platform.release()}\0{image.kernel_release}".encode()).hexdigest()[:12]
    answer = cache_root() / f"accel-{key}"
    if answer.exists():
        return KVM if answer.read_text().strip() == "kvm" else TCG
    works = _kvm_boots(image, Path(workdir))
    answer.write_text("kvm\n" if works else "tcg\n")
    return KVM if works else TCG


def _kvm_boots(image: Image, workdir: Path, timeout: float = 20) -> bool:
    """Boot the kernel under KVM without a root device: a working KVM panics in a second or two
    ("VFS: Unable to mount root fs"); kvm_pvm aborts at once or stalls in the decompressor."""
    log = workdir / "kvm-probe.log"
    argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-display", "none",
            "-no-reboot", "-serial", f"file:{log}", "-kernel", str(image.kernel),
            "-append", "console=ttyS0 panic=-1"]
    try:
        subprocess.run(argv, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return log.exists() and "Kernel panic" in log.read_text(errors="replace")
