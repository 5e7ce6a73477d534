"""The VM test bed: real Debian kernels under QEMU, their salt-minions, a salt-master, all inside one
private network namespace. The API scenario tests use (through the fixtures in conftest.py)::

    def test_something(nfs_server, nfs_client):          # Minion objects, booted and answering
        export = nfs_server.export("data")               # /srv/nfs/data exported rw to the test net
        nfs_client.sh(f"mkdir -p /mnt/d && mount -t nfs -o vers=4.2 {export} /mnt/d")
        nfs_client.salt("nfs_client.list_mounts")        # any execution module, after sync_modules()
        nfs_client.state_apply("nfs.client", pillar={...})
        nfs_server.stop_nfsd(); ...; nfs_server.start_nfsd()
        nfs_server.link_down(); ...; nfs_server.link_up() # server unreachable, client minion still up

``Minion``
    ``salt(fun, *args, **kwargs)``      the function's return on this minion; raises ``SaltCallError``
                                        if the minion did not answer or the CLI says it failed
                                        (``check=False`` returns it anyway)
    ``salt_result(fun, ...)``           the raw ``SaltResult`` (returncode, data, stdout, stderr)
    ``run(cmd)`` / ``sh(cmd)``          ``cmd.run_all`` -> ``CmdResult``; ``sh`` also requires rc 0
                                        and returns stdout
    ``ping()``                          ``test.ping`` answered True within a few seconds
    ``wait_ping(timeout)``              poll ``test.ping`` until it answers; seconds it took
    ``sync_modules()``                  copy the repo's _modules/_states/_utils (those that exist) into
                                        the master's file_roots, ``saltutil.sync_all``; returns what synced
    ``state_apply(sls, pillar=, test=)``/``state_single(fun, name, **kw)``  state runs -> list of state
                                        results (``StateRun``: ``.result``, ``.changes``, ``.comment``)
    ``start_nfsd()`` / ``stop_nfsd()``  kernel nfsd on (waits for /proc/fs/nfsd) / off
    ``export(name, clients=, options=)``  /srv/nfs/<name> in /etc/exports.d + ``exportfs -ra``;
                                        returns ``"<server ip>:/srv/nfs/<name>"``; ``exports([names])``
                                        does several in one job -> ``{name: device}``
    ``unexport(name)``                  removes it again (``exportfs -ra``)
    ``mountinfo()`` / ``proc_mounts()`` the guest's /proc/self/mountinfo and /proc/mounts text
    ``link_down()`` / ``link_up()``     cut / restore this VM's network (the tap on the host side)
    ``id``, ``ip``, ``vm``              minion id (= hostname), address on the test network, the ``Vm``

``VmBed``
    ``start()``, ``boot(*names)`` (at most 2 VMs at once here: 2 cores), ``stop()``, ``master``
    (``tests.vm.master.Master``: ``write_sls``, ``write_pillar``, ``salt``, ``salt_run``), ``netns``.

Timings here (TCG, 2 shared cores): a VM answers ``test.ping`` 80-120 s after qemu starts; a salt
call costs 0.7-2 s (one connected client, tests/vm/saltclient.py), a state run or sync_all more. Everything the bed starts is stopped by PID in ``stop()``, and the namespace is
deleted.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from tests.vm.image import Image
from tests.vm.master import Master, SaltCallError, SaltResult
from tests.vm.netns import SUBNET, NetNs, remove_leftovers
from tests.vm.qemu import KVM, Vm, pick_accel

__all__ = ["VmBed", "Minion", "CmdResult", "StateRun", "SaltCallError", "SaltResult"]

EXPORTS_DIR = "/etc/exports.d"
EXPORT_ROOT = "/srv/nfs"
DEFAULT_EXPORT_OPTIONS = "rw,sync,no_subtree_check,no_root_squash"


@dataclass
class CmdResult:
    retcode: int
    stdout: str
    stderr: str


@dataclass
class StateRun:
    id: str
    name: str
    result: Optional[bool]
    changes: Dict[str, Any]
    comment: str
    duration_ms: float


class Minion:
    """A booted VM and its minion, driven through the master's CLI."""

    def __init__(self, bed: "VmBed", vm: Vm):
        self.bed = bed
        self.vm = vm
        self.id = vm.name
        self.ip = vm.ip

    def __repr__(self) -> str:
        return f"<Minion {self.id} {self.ip}>"

    # --- salt -----------------------------------------------------------------------------------

    def salt_result(self, fun: str, *args: Any, timeout: float = 120, **kwargs: Any) -> SaltResult:
        return self.bed.master.salt(self.id, fun, *args, timeout=timeout, **kwargs)

    def salt(self, fun: str, *args: Any, timeout: float = 120, check: bool = True, **kwargs: Any) -> Any:
        result = self.salt_result(fun, *args, timeout=timeout, **kwargs)
        if not isinstance(result.data, dict) or self.id not in result.data:
            raise SaltCallError(f"{self.id} did not answer {fun}:\n{result}")
        ret = result.data[self.id]
        if isinstance(ret, str) and ret.startswith("Minion did not return"):
            raise SaltCallError(f"{self.id} did not answer {fun}: {ret}\n{result}")
        if check and result.returncode != 0:
            raise SaltCallError(f"{self.id} {fun} failed:\n{result}")
        return ret

    def ping(self, timeout: float = 5) -> bool:
        result = self.salt_result("test.ping", timeout=timeout)
        return isinstance(result.data, dict) and result.data.get(self.id) is True

    def wait_ping(self, timeout: float = 120) -> float:
        """Poll ``test.ping`` until it answers (e.g. after ``link_up``); returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.ping(timeout=10):
                return time.monotonic() - started
            time.sleep(1)
        raise SaltCallError(f"{self.id} did not answer test.ping within {timeout:.0f}s")

    def run(self, cmd: str, timeout: float = 60, **kwargs: Any) -> CmdResult:
        """Run a shell command in the VM (``cmd.run_all``); never raises for a non-zero exit."""
        # cmd as a keyword: the minion reads a positional "A=b ..." string as a keyword argument
        ret = self.salt("cmd.run_all", cmd=cmd, python_shell=True, timeout=timeout, check=False, **kwargs)
        if not isinstance(ret, dict) or "retcode" not in ret:
            raise SaltCallError(f"{self.id} cmd.run_all {cmd!r}: unexpected return {ret!r}")
        return CmdResult(ret["retcode"], ret.get("stdout", ""), ret.get("stderr", ""))

    def sh(self, cmd: str, timeout: float = 60) -> str:
        """Run a shell command that must succeed; returns its stdout."""
        res = self.run(cmd, timeout=timeout)
        if res.retcode != 0:
            raise SaltCallError(f"{self.id}: {cmd!r} exited {res.retcode}\nstdout: {res.stdout}\nstderr: {res.stderr}")
        return res.stdout

    def sync_modules(self) -> Dict[str, List[str]]:
        """Ship the working tree's _modules/_states/_utils to this minion (``saltutil.sync_all``)."""
        self.bed.master.refresh_file_roots()
        return self.salt("saltutil.sync_all", timeout=180)

    def state_apply(self, sls: str, pillar: Optional[Dict[str, Any]] = None, test: bool = False,
                    timeout: float = 300) -> List[StateRun]:
        kwargs: Dict[str, Any] = {}
        if pillar is not None:
            kwargs["pillar"] = pillar
        if test:
            kwargs["test"] = True
        return _state_runs(self.salt("state.apply", sls, timeout=timeout, check=False, **kwargs))

    def state_single(self, fun: str, name: str, timeout: float = 300, **kwargs: Any) -> List[StateRun]:
        """One state, e.g. ``state_single("file.directory", "/mnt/x", mode="0755")``. A state argument
        named ``opts`` (mount.mounted) collides with state.single's own: use ``write_sls`` + ``state_apply``."""
        return _state_runs(self.salt("state.single", fun, name, timeout=timeout, check=False, **kwargs))

    # --- NFS server side ------------------------------------------------------------------------

    def start_nfsd(self, timeout: float = 60) -> None:
        self.sh("systemctl start nfs-server && "
                f"for i in $(seq {int(timeout * 10)}); do [ -e /proc/fs/nfsd/versions ] && break; sleep 0.1; done; "
                "cat /proc/fs/nfsd/versions", timeout=timeout + 30)

    def stop_nfsd(self, timeout: float = 60) -> None:
        self.sh("systemctl stop nfs-server", timeout=timeout)

    def nfsd_active(self) -> bool:
        return self.run("systemctl is-active nfs-server").stdout.strip() == "active"

    def export(self, name: str, clients: str = str(SUBNET), options: str = DEFAULT_EXPORT_OPTIONS,
               mode: str = "0777") -> str:
        """Export /srv/nfs/<name> (created) to ``clients``; returns the NFS device string."""
        return self.exports([name], clients, options, mode)[name]

    def exports(self, names: List[str], clients: str = str(SUBNET), options: str = DEFAULT_EXPORT_OPTIONS,
                mode: str = "0777") -> Dict[str, str]:
        """``export`` for several names in one salt job; returns ``{name: device}``."""
        steps = []
        for name in names:
            path = f"{EXPORT_ROOT}/{name}"
            line = f"{path} {clients}({options})"
            steps.append(f"mkdir -p {shlex.quote(path)} && chmod {mode} {shlex.quote(path)} && "
                         f"printf '%s\\n' {shlex.quote(line)} > {EXPORTS_DIR}/nkvm-{name}.exports")
        self.sh(" && ".join([f"mkdir -p {EXPORTS_DIR}", *steps, "exportfs -ra"]))
        return {name: f"{self.ip}:{EXPORT_ROOT}/{name}" for name in names}

    def unexport(self, name: str) -> None:
        self.sh(f"rm -f {EXPORTS_DIR}/nkvm-{name}.exports && exportfs -ra")

    # --- inspection and network -----------------------------------------------------------------

    def mountinfo(self) -> str:
        return self.sh("cat /proc/self/mountinfo")

    def proc_mounts(self) -> str:
        return self.sh("cat /proc/mounts")

    def kernel_release(self) -> str:
        return self.sh("uname -r").strip()

    def link_down(self) -> None:
        self.vm.link_down()

    def link_up(self) -> None:
        self.vm.link_up()


def _state_runs(ret: Any) -> List[StateRun]:
    if not isinstance(ret, dict):
        raise SaltCallError(f"state run did not return state results: {ret!r}")
    runs = []
    for key, value in sorted(ret.items(), key=lambda kv: kv[1].get("__run_num__", 0) if isinstance(kv[1], dict) else 0):
        if not isinstance(value, dict):
            raise SaltCallError(f"state run failed before running states: {ret!r}")
        runs.append(StateRun(key, value.get("name", ""), value.get("result"), value.get("changes") or {},
                             value.get("comment", ""), value.get("duration", 0.0)))
    return runs


class VmBed:
    """netns + salt-master + VMs; ``start()`` then ``boot()``, ``stop()`` undoes everything."""

    MAX_VMS = 2  # 2 host cores: a third TCG VM would slow every VM past the boot timeouts

    def __init__(self, image: Image, workdir: Path, progress: Callable[[str], None] = print):
        self.image = image
        self.workdir = Path(workdir)
        self.progress = progress
        self.netns = NetNs()
        self.master = Master(self.netns, self.workdir / "master")
        self.accel: Optional[str] = None
        self.vms: Dict[str, Vm] = {}
        self.boot_seconds: Dict[str, float] = {}

    def start(self) -> "VmBed":
        for name in remove_leftovers():
            self.progress(f"[vm] removed leftover namespace {name} of a dead run")
        try:
            self.netns.create()
            self.accel = pick_accel(self.image, self.workdir)
            started = time.monotonic()
            self.master.start()
            self.progress(f"[vm] netns {self.netns.name}, salt-master up in {time.monotonic() - started:.1f}s, "
                          f"accel {'kvm' if self.accel == KVM else 'tcg'}")
        except BaseException:
            self.stop()
            raise
        return self

    def boot(self, *names: str, timeout: float = 600) -> List[Minion]:
        """Boot VMs named ``names`` in parallel; returns when every minion answers ``test.ping``."""
        if len(self.running()) + len(names) > self.MAX_VMS:
            raise RuntimeError(f"at most {self.MAX_VMS} VMs at a time here (running: {self.running()})")
        vms = []
        for name in names:
            if name in self.vms:
                raise ValueError(f"VM {name} exists already")
            vm = Vm(self.image, self.netns, self.workdir / "vms", name, len(self.vms), self.accel)
            self.vms[name] = vm
            vm.start()
            vms.append(vm)
            self.progress(f"[vm] {name}: qemu pid {vm.proc.pid}, {vm.ip}, kernel {self.image.kernel_release}")
        self._wait_minions(vms, timeout)
        return [Minion(self, vm) for vm in vms]

    def _wait_minions(self, vms: List[Vm], timeout: float) -> None:
        """Poll ``test.ping`` on every VM still booting, in one call per round."""
        waiting = {vm.name: vm for vm in vms}
        deadline = min(vm.started_at for vm in vms) + timeout
        while waiting and time.monotonic() < deadline:
            for vm in waiting.values():
                if not vm.alive():
                    raise RuntimeError(f"{vm.name}: qemu exited rc={vm.proc.returncode}\n{vm.qemu_log()}\n"
                                       f"serial:\n{vm.serial_tail()}")
            answered = self.master.salt(",".join(waiting), "test.ping", timeout=5, tgt_type="list").data or {}
            for name in [name for name in waiting if answered.get(name) is True]:
                vm = waiting.pop(name)
                self.boot_seconds[name] = time.monotonic() - vm.started_at
                self.progress(f"[vm] {name}: minion answers test.ping {self.boot_seconds[name]:.0f}s after qemu start")
            if waiting:
                time.sleep(1)
        if not waiting:
            return
        errors = []
        for vm in waiting.values():
            vm.kill()  # the minion's own log says why; it is only readable from a stopped disk
            errors.append(f"minion {vm.name} did not answer test.ping within {timeout:.0f}s\n"
                          f"serial:\n{vm.serial_tail()}\n"
                          f"guest /var/log/salt/minion:\n{vm.read_file_offline('/var/log/salt/minion')}")
        raise TimeoutError("\n".join(errors) + f"\nmaster log:{self.master.log_tail(10)}")

    def minion(self, name: str) -> Minion:
        return Minion(self, self.vms[name])

    def running(self) -> List[str]:
        return [name for name, vm in self.vms.items() if vm.alive()]

    def stop(self) -> None:
        for vm in self.vms.values():
            vm.stop()
        self.master.stop()
        self.netns.delete()
