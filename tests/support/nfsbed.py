"""A throwaway NFS-Ganesha server plus client hosts, in network namespaces, for tests and demos.

Needs root, ``iproute2``, ``util-linux`` (unshare, nsenter), ``nfs-ganesha`` + ``nfs-ganesha-vfs``,
``rpcbind``, ``dbus`` (dbus-daemon), ``libnfs-utils`` (nfs-cp, nfs-ls) and ``pyNfsClient`` in the
Python that runs the probes.

Topology (nothing is created in the host's network namespace)::

    netns <name>-srv : bridge <name>br0 with <subnet>.1 (the server address),
                       one veth <name>v<i> per client on the bridge;
                       a holder process with its own mount namespace and tmpfs on /run and
                       /var/lib/nfs, where rpcbind -w, a private dbus-daemon and ganesha.nfsd run
    netns <name>-c<i>: veth <name>c<i> with <subnet>.(10+i)           (i = 1..clients)

The dbus socket, ganesha's pid file, config, log and the export directories live under
``workdir`` (a normal directory), so the test process reaches them from the host namespaces: a
backend gets ``bed.dbus_address`` and ``bed.pid_file``. Ganesha's main config includes
``bed.index_file``, the file the nfskit ganesha backend rewrites.

Example::

    from tests.support.nfsbed import NfsBed

    with NfsBed(name="nkg", subnet="10.221.0.0/24", clients=3) as bed:
        backend = GaneshaBackend(bed.backend_config())
        data = bed.make_dir("data")
        backend.apply(make_plan({}, [Export(data, (ClientRule(bed.client_addr(1), "rw"),))]))
        assert bed.probe_v3(1, data).outcome == "ok"          # client 1 writes over NFSv3
        assert bed.probe_v3(2, data).outcome == "denied"      # client 2: MNT3ERR_ACCES (13)
        assert bed.probe_v4(1, data).outcome == "ok"          # NFSv4 via nfs-cp

As a pytest fixture::

    @pytest.fixture(scope="module")
    def bed(tmp_path_factory):
        with NfsBed(workdir=tmp_path_factory.mktemp("bed"), name="nkg") as bed:
            yield bed

Everything the bed starts is stopped by PID and every namespace it created is deleted in
``stop()`` (also on failures half-way through ``start()``). It refuses to start when one of its
namespace names already exists, so it never touches somebody else's namespaces; after a hard
crash (kill -9 of the test run) ``NfsBed.remove_leftovers(name)`` clears that name's remains.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

PROBE_SCRIPT = Path(__file__).resolve().with_name("nfs_probe.py")

DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

GANESHA_CONF = """# nfsbed: ganesha main config
NFS_CORE_PARAM {{
    Bind_Addr = {addr};
    NFS_Port = {nfs_port};
    MNT_Port = {mnt_port};
    NLM_Port = {nlm_port};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Protocols = 3, 4;
}}
NFSV4 {{
    Graceless = true;
    RecoveryRoot = "{recovery}";
}}
NFS_KRB5 {{ Active_krb5 = false; }}
LOG {{ Default_Log_Level = {log_level}; }}
{extra}
%include "{index}"
"""


@dataclass
class Probe:
    """What a client saw. ``outcome``: ok | denied | read-only | rpc-denied | error."""

    outcome: str
    stage: str = ""
    status: Optional[int] = None
    uid: Optional[int] = None
    gid: Optional[int] = None
    message: str = ""
    elapsed: float = 0.0
    raw: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class BedError(RuntimeError):
    pass


def _run(cmd: list[str], check: bool = True, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise BedError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


class NfsBed:
    """Ganesha in its own network + mount namespace, N client namespaces on a bridge.

    ``name``: prefix of every namespace and interface name (keep it <= 6 characters);
    ``subnet``: an IPv4 /24 (or larger) network; server = .1, client i = .(10+i);
    ``workdir``: where config, sockets, logs and export dirs go (a temp dir by default, removed
    at stop when the bed created it); ``nfs_port``/``mnt_port``: ganesha's ports (the bed's own
    namespace, so the standard ones are free; pass others if you like);
    ``extra_conf``: more ganesha config text placed before the ``%include`` of the index file.
    """

    def __init__(
        self,
        name: str = "nkg",
        subnet: str = "10.221.0.0/24",
        clients: int = 3,
        workdir: Union[str, Path, None] = None,
        nfs_port: int = 2049,
        mnt_port: int = 20048,
        nlm_port: int = 32803,
        start_dbus: bool = True,
        log_level: str = "EVENT",
        extra_conf: str = "",
        python: str = sys.executable,
        startup_timeout: float = 120.0,
    ):
        if not name.isalnum() or len(name) > 6:
            raise ValueError("name must be alphanumeric and at most 6 characters (interface names are limited)")
        if clients < 1:
            raise ValueError("clients must be at least 1")
        self.name = name
        self.network = ipaddress.ip_network(subnet)
        hosts = list(self.network.hosts())
        if len(hosts) < 10 + clients:
            raise ValueError("subnet too small")
        self.server_addr = str(hosts[0])
        self.client_addrs = [str(hosts[9 + i]) for i in range(1, clients + 1)]
        self.server_ns = f"{name}-srv"
        self.client_ns = [f"{name}-c{i}" for i in range(1, clients + 1)]
        self.bridge = f"{name}br0"
        self.nfs_port, self.mnt_port, self.nlm_port = nfs_port, mnt_port, nlm_port
        self.start_dbus = start_dbus
        self.log_level = log_level
        self.extra_conf = extra_conf
        self.python = python
        self.startup_timeout = startup_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"{name}-bed-"))
        self.run_dir = self.workdir / "run"
        self.conf_dir = self.workdir / "conf"
        self.log_dir = self.workdir / "log"
        self.etc_dir = self.workdir / "etc"
        self.export_root = self.workdir / "exp"
        self.exports_dir = self.etc_dir / "nfskit.d"
        self.index_file = self.etc_dir / "nfskit-exports.conf"
        self.main_conf = self.conf_dir / "ganesha.conf"
        self.dbus_socket = self.run_dir / "dbus.sock"
        self.dbus_address = f"unix:path={self.dbus_socket}"
        self.pid_file = self.run_dir / "ganesha.pid"
        self.log_file = self.log_dir / "ganesha.log"
        self._created_ns: list[str] = []
        self._procs: dict[str, subprocess.Popen] = {}
        self._started = False

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> "NfsBed":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "NfsBed":
        try:
            self._make_dirs()
            self._make_network()
            self._start_holder()
            self._start_daemon("rpcbind", ["rpcbind", "-f", "-w"])
            self._wait_for(lambda: self._ns_exec(["test", "-S", "/run/rpcbind.sock"], check=False).returncode == 0, "rpcbind socket", 10)
            if self.start_dbus:
                self._start_dbus()
            self.start_ganesha()
            self._started = True
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process the bed started (by PID) and delete its namespaces."""
        for key in ("ganesha", "dbus", "rpcbind", "holder"):
            self._stop_proc(key)
        for ns in reversed(self._created_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._created_ns.clear()
        if self._own_workdir and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        self._started = False

    @staticmethod
    def remove_leftovers(name: str = "nkg", clients: int = 3) -> list[str]:
        """Delete the namespaces a *crashed* bed of this ``name`` left behind (``start`` refuses
        to reuse them), after killing the processes inside them by PID. Only for names you own.
        Returns the namespaces removed."""
        existing = set(_run(["ip", "netns", "list"]).stdout.split())
        removed = []
        for ns in [f"{name}-srv"] + [f"{name}-c{i}" for i in range(1, clients + 1)]:
            if ns not in existing:
                continue
            pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _run(["ip", "netns", "del", ns], check=False)
            removed.append(ns)
        return removed

    def _make_dirs(self) -> None:
        for directory in (self.run_dir, self.conf_dir, self.log_dir, self.etc_dir, self.export_root, self.exports_dir, self.workdir / "recov"):
            directory.mkdir(parents=True, exist_ok=True)
        if not self.index_file.exists():
            self.index_file.write_text("# nfsbed: no exports yet\n")
        self.main_conf.write_text(
            GANESHA_CONF.format(
                addr=self.server_addr, nfs_port=self.nfs_port, mnt_port=self.mnt_port, nlm_port=self.nlm_port,
                recovery=self.workdir / "recov", log_level=self.log_level, extra=self.extra_conf, index=self.index_file,
            )
        )

    def _make_network(self) -> None:
        existing = set(_run(["ip", "netns", "list"]).stdout.split())
        for ns in [self.server_ns] + self.client_ns:
            if ns in existing:
                raise BedError(f"network namespace {ns} already exists; not touching it (pick another name)")
        _run(["ip", "netns", "add", self.server_ns])
        self._created_ns.append(self.server_ns)
        prefix = self.network.prefixlen
        srv = ["ip", "-n", self.server_ns]
        _run(srv + ["link", "set", "lo", "up"])
        _run(srv + ["link", "add", self.bridge, "type", "bridge"])
        _run(srv + ["addr", "add", f"{self.server_addr}/{prefix}", "dev", self.bridge])
        _run(srv + ["link", "set", self.bridge, "up"])
        for index, (ns, addr) in enumerate(zip(self.client_ns, self.client_addrs), start=1):
            _run(["ip", "netns", "add", ns])
            self._created_ns.append(ns)
            inside, outside = f"{self.name}c{index}", f"{self.name}v{index}"
            # created inside the server namespace with the peer placed straight into the client's
            _run(srv + ["link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns])
            _run(srv + ["link", "set", outside, "master", self.bridge])
            _run(srv + ["link", "set", outside, "up"])
            cli = ["ip", "-n", ns]
            _run(cli + ["link", "set", "lo", "up"])
            _run(cli + ["addr", "add", f"{addr}/{prefix}", "dev", inside])
            _run(cli + ["link", "set", inside, "up"])

    def _start_holder(self) -> None:
        script = (
            "mount --make-rprivate / && mount -t tmpfs nfsbed-run /run && mkdir -p /run/ganesha /run/rpcbind "
            "&& mount -t tmpfs nfsbed-nfs /var/lib/nfs && echo ready && exec sleep 2147483647"
        )
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.server_ns, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self._procs["holder"] = proc
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if line != "ready":
            raise BedError(f"namespace holder did not start: {proc.stderr.read() if proc.stderr else ''}")

    def _nsenter(self) -> list[str]:
        return ["nsenter", "-t", str(self._procs["holder"].pid), "-m", "-n", "--"]

    def _ns_exec(self, cmd: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command in the server's network and mount namespace."""
        return _run(self._nsenter() + cmd, check=check, timeout=timeout)

    def _start_daemon(self, key: str, cmd: list[str], env: Optional[dict] = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{key}.out", "ab")
        proc = subprocess.Popen(self._nsenter() + cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self._procs[key] = proc
        return proc

    def _start_dbus(self) -> None:
        conf = self.conf_dir / "dbus.conf"
        conf.write_text(DBUS_CONF.format(socket=self.dbus_socket))
        if self.dbus_socket.exists():
            self.dbus_socket.unlink()
        self._start_daemon("dbus", ["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile", "--nosyslog"])
        self._wait_for(self.dbus_socket.exists, "dbus socket", 10)

    def start_ganesha(self) -> None:
        """(Re)start ganesha and wait until it serves (and owns its DBus name when dbus runs)."""
        self._stop_proc("ganesha")
        self.log_file.write_text("")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.dbus_address)
        self._start_daemon(
            "ganesha",
            ["ganesha.nfsd", "-F", "-f", str(self.main_conf), "-L", str(self.log_file), "-p", str(self.pid_file), "-N", "NIV_EVENT"],
            env=env,
        )
        self._wait_for(lambda: "NFS SERVER INITIALIZED" in self.log_text(), "ganesha start", self.startup_timeout)
        if self.start_dbus:
            self._wait_for(self._ganesha_on_dbus, "ganesha on dbus", 10)

    def stop_ganesha(self) -> None:
        self._stop_proc("ganesha")

    def _ganesha_on_dbus(self) -> bool:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        try:
            conn = open_dbus_connection(bus=self.dbus_address)
        except OSError:
            return False
        try:
            bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus")
            reply = conn.send_and_get_reply(new_method_call(bus, "NameHasOwner", "s", ("org.ganesha.nfsd",)), timeout=2)
            return bool(reply.body and reply.body[0])
        finally:
            conn.close()

    def _stop_proc(self, key: str, timeout: float = 10) -> None:
        proc = self._procs.pop(key, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def _wait_for(self, predicate, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for key, proc in self._procs.items():
                if proc.poll() is not None:
                    raise BedError(f"{key} exited ({proc.returncode}) while waiting for {what}; see {self.log_dir}")
            time.sleep(0.02)
        raise BedError(f"timed out after {timeout}s waiting for {what}; see {self.log_dir}")

    # ---------------------------------------------------------------- helpers

    @property
    def ganesha_pid(self) -> Optional[int]:
        proc = self._procs.get("ganesha")
        return proc.pid if proc is not None and proc.poll() is None else None

    def ganesha_alive(self) -> bool:
        return self.ganesha_pid is not None

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def backend_config(self, **overrides) -> dict:
        """Config for ``nfskit.backends.ganesha.GaneshaBackend`` pointing at this bed."""
        config = {
            "exports_dir": str(self.exports_dir),
            "index_file": str(self.index_file),
            "dbus_address": self.dbus_address,
            "pid_file": str(self.pid_file),
        }
        config.update(overrides)
        return config

    def make_dir(self, name: str, mode: int = 0o777) -> str:
        """Create an export directory under the bed's export root and return its path."""
        path = self.export_root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        return str(path)

    def client_addr(self, client: int) -> str:
        """Address of client ``client`` (1-based)."""
        return self.client_addrs[client - 1]

    def _client_ns(self, client: Union[int, str]) -> str:
        return self.client_ns[client - 1] if isinstance(client, int) else client

    def client_exec(self, client: Union[int, str], cmd: list[str], timeout: float = 30, env: Optional[dict] = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` in client ``client``'s network namespace."""
        return subprocess.run(["ip", "netns", "exec", self._client_ns(client)] + cmd, capture_output=True, text=True, timeout=timeout, env=env)

    def probe_v3(self, client: Union[int, str], path: str, uid: int = 0, gid: Optional[int] = None, write: bool = True, unprivileged_port: bool = False) -> Probe:
        """NFSv3 probe with pyNfsClient from a client namespace: MNT, CREATE, WRITE, GETATTR, REMOVE.

        ``denied`` = MNT3ERR_ACCES (13), ``read-only`` = NFS3ERR_ROFS (30); ``uid``/``gid`` of the
        result are the owner the server gave the created file (after squashing).
        """
        cmd = [self.python, str(PROBE_SCRIPT), "--server", self.server_addr, "--path", path,
               "--mountport", str(self.mnt_port), "--nfsport", str(self.nfs_port), "--uid", str(uid)]
        if gid is not None:
            cmd += ["--gid", str(gid)]
        if not write:
            cmd.append("--no-write")
        if unprivileged_port:
            cmd.append("--unprivileged-port")
        proc = self.client_exec(client, cmd)
        try:
            data = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return Probe("error", message=f"probe crashed (rc {proc.returncode}): {proc.stderr.strip()[-800:]}")
        return Probe(
            data["outcome"], data.get("stage", ""), data.get("status"), data.get("uid"), data.get("gid"),
            data.get("message", ""), data.get("elapsed", 0.0), data,
        )

    def nfs_url(self, path: str, version: int = 4, **params) -> str:
        """libnfs URL for ``path`` (the pseudo path for v4, the real path for v3)."""
        query = {"version": "4", "nfsport": str(self.nfs_port)} if version == 4 else {"nfsport": str(self.nfs_port), "mountport": str(self.mnt_port)}
        query.update({key: str(value) for key, value in params.items()})
        return f"nfs://{self.server_addr}{path}?" + "&".join(f"{k}={v}" for k, v in query.items())

    def probe_v4(self, client: Union[int, str], pseudo: str, write: bool = True, real_path: Optional[str] = None, version: int = 4) -> Probe:
        """NFSv4 probe with libnfs-utils from a client namespace.

        ``write``: ``nfs-cp`` a small file to ``<pseudo>/.probe-v4-...``; otherwise ``nfs-ls``.
        With ``real_path`` (the export's directory on the server) the probe reads the owner of
        the written file on the server side and removes it. ``denied`` = NFS4ERR_NOENT /
        NFS4ERR_ACCES / NFS4ERR_PERM / NFS4ERR_WRONGSEC (v3: MNT3ERR_ACCES), ``read-only`` =
        NFS4ERR_ROFS (v3: NFS3ERR_ROFS).
        """
        start = time.monotonic()
        name = f".probe-v4-{uuid.uuid4().hex[:8]}"
        if write:
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as source:
                source.write("probe over nfs\n")
            try:
                proc = self.client_exec(client, ["nfs-cp", source.name, self.nfs_url(f"{pseudo.rstrip('/')}/{name}", version)])
            finally:
                os.unlink(source.name)
        else:
            proc = self.client_exec(client, ["nfs-ls", self.nfs_url(pseudo, version)])
        text = (proc.stdout + proc.stderr).strip()
        elapsed = round(time.monotonic() - start, 4)
        if proc.returncode == 0:
            probe = Probe("ok", "write" if write else "list", 0, message=text[-500:], elapsed=elapsed)
            if write and real_path is not None:
                target = Path(real_path) / name
                try:
                    info = target.stat()
                    probe.uid, probe.gid = info.st_uid, info.st_gid
                    target.unlink()
                except FileNotFoundError:
                    probe.outcome, probe.message = "error", f"nfs-cp said ok but {target} does not exist on the server"
            return probe
        outcome = "error"
        for marker, meaning in (
            ("ROFS", "read-only"), ("MNT3ERR_ACCES", "denied"), ("NFS4ERR_NOENT", "denied"),
            ("NFS4ERR_ACCES", "denied"), ("NFS4ERR_PERM", "denied"), ("NFS4ERR_WRONGSEC", "denied"),
            ("NFS3ERR_ACCES", "denied"),
        ):
            if marker in text:
                outcome = meaning
                break
        return Probe(outcome, "write" if write else "list", proc.returncode, message=text[-500:], elapsed=elapsed)
