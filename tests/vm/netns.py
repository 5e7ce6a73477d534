"""A private network namespace for one VM test session: the VMs' whole world.

Topology (nothing is created in the host's network namespace)::

    netns nkvm-<pid>-<rand>
      lo                     up (the salt CLI talks to the master's local sockets)
      br0  10.77.0.1/24      the host side: the salt-master listens here
      tap-<vm> (on br0)      one per VM; qemu's virtio-net backend; a VM gets 10.77.0.<10+i>

A VM can reach the master and the other VMs, nothing else: no route leaves the namespace.
Taking a tap down (``link_down``) cuts one VM off the network, which is how a test makes an NFS
server unreachable while the client's minion still answers.

Everything started inside is started by the harness (``popen``), kept by PID and stopped by it; the
namespace is deleted in ``delete()``. ``remove_leftovers()`` clears namespaces of crashed runs: the
creator's PID is part of the name, so a namespace of a live run is never touched.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import List, Sequence

PREFIX = "nkvm-"
SUBNET = ipaddress.ip_network("10.77.0.0/24")
HOST_ADDR = str(SUBNET.network_address + 1)  # the master's address, the VMs' gateway
BRIDGE = "br0"


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


class NetNs:
    """A named network namespace with a bridge; create() on entry, delete() on exit."""

    def __init__(self, name: str = ""):
        self.name = name or f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}"
        if not re.fullmatch(r"nkvm-[A-Za-z0-9-]{1,40}", self.name):
            raise ValueError(f"netns name {self.name!r}: must be nkvm- followed by letters, digits and '-'")
        self.created = False
        self.taps: List[str] = []

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def create(self) -> "NetNs":
        if Path(self.path).exists():
            raise RuntimeError(f"netns {self.name} exists already: not ours, not touching it")
        _ip("netns", "add", self.name)
        self.created = True
        self.ip("link", "set", "lo", "up")
        self.ip("link", "add", BRIDGE, "type", "bridge")
        self.ip("addr", "add", f"{HOST_ADDR}/{SUBNET.prefixlen}", "dev", BRIDGE)
        self.ip("link", "set", BRIDGE, "up")
        return self

    def ip(self, *args: str) -> str:
        return _ip("-n", self.name, *args)

    def add_tap(self, name: str) -> str:
        """A tap device on the bridge for one VM's NIC; qemu opens it by name inside the namespace."""
        if len(name) > 15:
            raise ValueError(f"interface name {name!r} longer than 15 characters")
        self.ip("tuntap", "add", "dev", name, "mode", "tap")
        self.ip("link", "set", name, "master", BRIDGE)
        self.ip("link", "set", name, "up")
        self.taps.append(name)
        return name

    def link_down(self, tap: str) -> None:
        self.ip("link", "set", tap, "down")

    def link_up(self, tap: str) -> None:
        self.ip("link", "set", tap, "up")

    def argv(self, argv: Sequence[str]) -> List[str]:
        """``argv`` run inside the namespace (nsenter execs it: the PID is the program's own)."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def run(self, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(argv), **kwargs)

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start a long-running program inside the namespace in its own process group (so stopping
        it by its PID also reaches the children it forked)."""
        return subprocess.Popen(self.argv(argv), start_new_session=True, **kwargs)

    def pids(self) -> List[int]:
        if not self.created:
            return []
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def delete(self) -> None:
        """Delete the namespace; anything still running in it was started by this harness."""
        if not self.created:
            return
        for pid in self.pids():
            _kill(pid)
        subprocess.run(["ip", "netns", "del", self.name], check=False)
        self.created = False

    def __enter__(self) -> "NetNs":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left after ``timeout``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their leader
    except ProcessLookupError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def remove_leftovers() -> List[str]:
    """Delete nkvm- namespaces whose creating process is gone (a crashed or killed test run)."""
    removed = []
    for path in Path("/run/netns").glob(f"{PREFIX}*"):
        match = re.fullmatch(r"nkvm-(\d+)-[0-9a-f]+", path.name)
        if not match or Path(f"/proc/{match.group(1)}").exists():
            continue
        ns = NetNs(path.name)
        ns.created = True
        ns.delete()
        removed.append(path.name)
        time.sleep(0.1)
    return removed
