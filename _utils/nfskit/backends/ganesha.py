"""NFS-Ganesha backend: one EXPORT block file per export, live changes over DBus.

Layout (config keys, defaults)::

    exports_dir  /etc/ganesha/nfskit.d           <slug>-<8 hex of sha256(path)>.conf, one block each
    index_file   /etc/ganesha/nfskit-exports.conf  one %include line per block file, rewritten
                                                   atomically; the admin adds ONE line to
                                                   ganesha.conf:  %include "/etc/ganesha/nfskit-exports.conf"
    dbus_address None (DBUS_SYSTEM_BUS_ADDRESS or the system bus)
    pid_file     /run/ganesha/ganesha.pid         for the SIGHUP fallback
    ganesha_bin  ganesha.nfsd                     the parser used by validate()
    first_export_id 1000                          Export_Id of the first managed export
    validate     True                             run ganesha's own parser before writing
    dbus_timeout 60, validate_timeout 20          seconds

``apply`` validates every new or changed block with the real ganesha parser in a throwaway
mount+network namespace (nothing is written when one fails), writes the block files and the
index atomically, then changes the running server: ``AddExport`` / ``UpdateExport`` /
``RemoveExport`` over DBus. When DBus cannot be reached it sends SIGHUP to the pid in
``pid_file`` instead (only after validation passed: a syntax error plus SIGHUP makes ganesha drop
every export). When a live call fails, the calls already made are undone, the previous files and
index are restored, and :class:`BackendError` says so; the running exports are kept.

``ApplyReport.method`` is ``dbus``, ``sighup`` (DBus unreachable; the reload is asynchronous and
every block file is syntax-checked first), or ``none`` (empty plan, or ganesha not running: the
files are written and load at its next start; a warning says so).

Export ids are stable: a block keeps its ``Export_Id`` for life; a new export takes the highest
managed id + 1 (or the lowest free one once 65535 is reached). An id ganesha already runs for
another path is never touched.

Cost with 10,000 managed exports (measured, 2 cores): the id scan reads the first lines of every
block file (~0.13 s), validation runs ganesha once for the changed blocks only (~0.05 s),
AddExport ~0.01 s; ``read()`` parses every file (~0.35 s, a fast path for our own layout).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from nfskit.backends.base import Backend
from nfskit.errors import BackendError, Conflict, InvalidInput, NfsKitError, OperationTimeout
from nfskit.ganesha_codec import MAX_EXPORT_ID, ConfigSyntaxError, parse_block, parse_config, render_block
from nfskit.ganesha_dbus import DBusUnavailable, GaneshaCallError, GaneshaDBus
from nfskit.model import Export
from nfskit.plan import ApplyReport, Plan

DEFAULTS: dict[str, Any] = {
    "exports_dir": "/etc/ganesha/nfskit.d",
    "index_file": "/etc/ganesha/nfskit-exports.conf",
    "dbus_address": None,
    "pid_file": "/run/ganesha/ganesha.pid",
    "ganesha_bin": "ganesha.nfsd",
    "first_export_id": 1000,
    "validate": True,
    "dbus_timeout": 60.0,
    "validate_timeout": 20.0,
}
INDEX_HEADER = (
    "# managed by nfskit (salt): one %include per export block in {dir}\n"
    "# ganesha.conf includes this file:  %include \"{index}\"\n"
)
_ID_RE = re.compile(r"(?:^|[;{\s])Export_Id\s*=\s*([0-9]+)\s*;", re.I)
_PATH_RE = re.compile(r'(?:^|[;{\s])Path\s*=\s*"([^"\n]*)"\s*;', re.I)
_PSEUDO_RE = re.compile(r'(?:^|[;{\s])Pseudo\s*=\s*"([^"\n]*)"\s*;', re.I)
# ganesha log lines that mean the configuration was not accepted
_LOG_ERROR = re.compile(r":CONFIG :(CRIT|MAJ) :|:FSAL :(CRIT|MAJ) :|error: syntax|Unknown token|Unknown parameter")
_LOG_SEVERE = re.compile(r":(CRIT|MAJ|FATAL) :")
_LOG_SUMMARY = re.compile(
    r"errors? while processing parameters for|Errors processing block|errors found block|validation errors in block", re.I
)
_LOG_DNS = re.compile(r"Client \((?P<host>[^)]*)\) not found because (Temporary failure in name resolution|Name or service not known)")
_SANDBOX_ADDR = "192.0.2.1"  # TEST-NET-1, only ever inside the throwaway namespace
_SANDBOX_BIND = "192.0.2.2"  # not assigned there: ganesha exits at the bind step, after loading exports


@dataclass
class _Managed:
    """One block file found on disk (cheap scan: no full parse)."""

    file: str
    export_id: Optional[int]
    path: Optional[str]
    pseudo: Optional[str]


def slug(path: str) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-").lower()
    return (text[:60].rstrip("-") or "root")


class GaneshaBackend(Backend):
    """NFS-Ganesha, one block file per export, DBus for live changes (SIGHUP fallback)."""

    name = "ganesha"

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        merged = dict(DEFAULTS)
        merged.update({key: value for key, value in self.config.items() if value is not None or key == "dbus_address"})
        self.exports_dir = Path(_config_path(merged["exports_dir"], "exports_dir"))
        self.index_file = Path(_config_path(merged["index_file"], "index_file"))
        self.pid_file = Path(_config_path(merged["pid_file"], "pid_file"))
        self.dbus_address = merged["dbus_address"]
        if self.dbus_address is not None and (not isinstance(self.dbus_address, str) or not self.dbus_address.startswith("unix:")):
            raise InvalidInput("dbus_address", self.dbus_address, "must be a unix: DBus address (e.g. unix:path=/run/dbus/system_bus_socket)")
        self.ganesha_bin = str(merged["ganesha_bin"])
        first = merged["first_export_id"]
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_EXPORT_ID:
            raise InvalidInput("first_export_id", first, f"must be an integer from 1 to {MAX_EXPORT_ID}")
        self.first_export_id = first
        if not isinstance(merged["validate"], bool):
            raise InvalidInput("validate", merged["validate"], "must be true or false")
        self.validate_enabled = merged["validate"]
        self.dbus_timeout = float(merged["dbus_timeout"])
        self.validate_timeout = float(merged["validate_timeout"])

    # ------------------------------------------------------------------ files

    def file_for(self, path: str) -> Path:
        """The block file of the export at ``path``."""
        digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        return self.exports_dir / f"{slug(path)}-{digest}.conf"

    def _block_files(self) -> list[str]:
        """Full paths (strings: cheap for 10,000 files) of the block files, sorted."""
        try:
            with os.scandir(self.exports_dir) as entries:
                names = sorted(
                    entry.name for entry in entries
                    if entry.name.endswith(".conf") and entry.name[0] != "." and entry.is_file()
                )
        except FileNotFoundError:
            return []
        prefix = os.path.join(str(self.exports_dir), "")
        return [prefix + name for name in names]

    def _scan(self) -> dict[str, _Managed]:
        """Ids, paths and pseudo paths of every block file, from the first lines only (no parse):
        ~10 µs a file, so 10,000 managed exports cost about 0.1 s."""
        found: dict[str, _Managed] = {}
        for file in self._block_files():
            data = _read_bytes(file)
            if data is not None:
                found[file] = _Managed(file, *_scan_head(data))
        return found

    # ------------------------------------------------------------------ Backend API

    def read(self) -> dict[str, Export]:
        """Every export in ``exports_dir``, keyed by path (typed; parsed from our own blocks)."""
        exports: dict[str, Export] = {}
        where: dict[str, str] = {}
        for file in self._block_files():
            text = _read_text(file)
            if text is None:
                continue
            try:
                _, export = parse_block(text)
            except BackendError as exc:
                raise BackendError(f"{file}: {exc}") from None
            if export.path in exports:
                raise BackendError(f"{file} and {where[export.path]} both export {export.path}; remove one of them")
            exports[export.path] = export
            where[export.path] = file
        return exports

    def read_ids(self) -> dict[str, int]:
        """Export_Id of every managed export, keyed by path."""
        return {m.path: m.export_id for m in self._scan().values() if m.path is not None and m.export_id is not None}

    def render(self, export: Export) -> str:
        """The block as it would be written (for diffs). A new export shows its id as assigned at apply."""
        file = self.file_for(export.path)
        current = _read_text(file)
        ids = _ID_RE.findall(current or "")
        if len(ids) == 1:
            return render_block(export, int(ids[0]))
        text = render_block(export, self.first_export_id)
        return text.replace(f"Export_Id = {self.first_export_id};", "Export_Id = (assigned when applied);", 1)

    def validate(self, exports: Iterable[Export]) -> list[str]:
        """Run ganesha's own parser over ``exports`` in a throwaway namespace.

        Returns warnings (e.g. host names that cannot be resolved inside the sandbox); raises
        :class:`BackendError` quoting ganesha's messages when a block is refused.
        """
        exports = list(exports)
        if not exports:
            return []
        blocks = []
        for position, export in enumerate(exports):
            export_id = 1 + position % MAX_EXPORT_ID  # any distinct ids do inside the sandbox
            blocks.append((export, export_id, render_block(export, export_id)))
        return self._check_with_ganesha(blocks)

    def apply(self, plan: Plan) -> ApplyReport:
        if not plan:
            return ApplyReport(method="none")
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            return self._apply_locked(plan)

    # ------------------------------------------------------------------ apply

    def _apply_locked(self, plan: Plan) -> ApplyReport:
        scan = self._scan()
        by_path = {m.path: m for m in scan.values() if m.path is not None}
        used = {m.export_id for m in scan.values() if m.export_id is not None}
        warnings: list[str] = []

        adds: list[tuple[Export, int, str, str]] = []
        changes: list[tuple[Export, int, str, str, str]] = []
        removes: list[tuple[Export, int, str, str]] = []
        for export in plan.add:
            if export.path in by_path:
                raise Conflict(f"{export.path} is already managed in {by_path[export.path].file}; plan again from read()")
            export_id = self._next_id(used)
            used.add(export_id)
            adds.append((export, export_id, str(self.file_for(export.path)), render_block(export, export_id)))
        for old, new in plan.change:
            managed = self._existing(by_path, old.path)
            old_text = _read_text(managed.file) or ""
            changes.append((new, managed.export_id, managed.file, render_block(new, managed.export_id), old_text))
        for export in plan.remove:
            managed = self._existing(by_path, export.path)
            removes.append((export, managed.export_id, managed.file, _read_text(managed.file) or ""))

        self._check_pseudo_clashes(scan, adds, changes, removes)
        checked = [(e, i, t) for e, i, _, t in adds] + [(e, i, t) for e, i, _, t, _ in changes]
        if self.validate_enabled and checked:
            warnings += self._check_with_ganesha(checked)

        # --- write: block files, then the index (all restored on any failure below)
        old_index = _read_text(self.index_file)
        journal: list[tuple[str, Optional[str]]] = []
        removed_files = {file for _, _, file, _ in removes}
        try:
            for _, _, file, text in adds:
                journal.append((file, None))
                _write_atomic(file, text)
            for _, _, file, text, old_text in changes:
                journal.append((file, old_text))
                _write_atomic(file, text)
            live_files = (set(scan) | {file for _, _, file, _ in adds}) - removed_files
            self._write_index(live_files)
        except (OSError, BackendError) as exc:
            self._restore(journal, old_index)
            raise BackendError(f"cannot write ganesha export files: {exc}; nothing was changed") from None

        # --- go live
        try:
            bus = GaneshaDBus(self.dbus_address, timeout=self.dbus_timeout).connect()
        except DBusUnavailable as exc:
            return self._sighup_fallback(exc, journal, old_index, removes, warnings)
        done: list[tuple[str, int, str]] = []
        try:
            with bus:
                for export, export_id, file, _ in adds:
                    self._live_add(bus, file, export_id, warnings, export.path)
                    done.append(("add", export_id, file))
                for export, export_id, file, _, _ in changes:
                    self._live_update(bus, file, export_id, warnings)
                    done.append(("update", export_id, file))
                for export, export_id, file, _ in removes:
                    self._live_remove(bus, export_id, warnings, export.path)
                    done.append(("remove", export_id, file))
        except DBusUnavailable as exc:
            if done:
                self._restore(journal, old_index)
                raise BackendError(
                    f"lost DBus half-way: {exc}. The previous export files and index were restored; ganesha may "
                    f"already run {len(done)} of the changes (apply again to converge)"
                ) from None
            return self._sighup_fallback(exc, journal, old_index, removes, warnings)  # e.g. ganesha not on the bus
        except (BackendError, OperationTimeout) as exc:
            self._restore(journal, old_index)
            undo_problems = self._undo(done, exc)
            message = (
                f"ganesha refused the change: {exc}. The previous export files and index were restored"
                + ("; the running exports were kept." if not undo_problems else f", but undoing the live calls failed: {'; '.join(undo_problems)}")
            )
            raise BackendError(message) from None
        for file in removed_files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file)
        return ApplyReport(method="dbus", warnings=warnings)

    def _existing(self, by_path: dict, path: str) -> _Managed:
        managed = by_path.get(path)
        if managed is None or managed.export_id is None:
            raise Conflict(f"{path} is not managed in {self.exports_dir} (any more); plan again from read()")
        return managed

    def _next_id(self, used: set[int]) -> int:
        candidate = max([i for i in used if i >= self.first_export_id], default=self.first_export_id - 1) + 1
        if candidate <= MAX_EXPORT_ID:
            return candidate
        for candidate in range(self.first_export_id, MAX_EXPORT_ID + 1):
            if candidate not in used:
                return candidate
        raise BackendError(f"no free ganesha Export_Id left between {self.first_export_id} and {MAX_EXPORT_ID}")

    def _check_pseudo_clashes(self, scan, adds, changes, removes) -> None:
        leaving = {file for _, _, file, _ in removes} | {file for _, _, file, _, _ in changes}
        taken = {m.pseudo: m.path for f, m in scan.items() if f not in leaving and m.pseudo}
        for export in [a[0] for a in adds] + [c[0] for c in changes]:
            pseudo = export.pseudo_path
            if pseudo in taken and taken[pseudo] != export.path:
                raise Conflict(f"NFSv4 pseudo path {pseudo} of {export.path} is already used by {taken[pseudo]}")
            taken[pseudo] = export.path

    def _write_index(self, files: Iterable[str]) -> None:
        lines = [INDEX_HEADER.format(dir=self.exports_dir, index=self.index_file)]
        for file in sorted(map(str, files)):
            if '"' in file or "\n" in file or "\r" in file or "\\" in file:
                raise BackendError(f"cannot include {file!r}: the name contains a quote, backslash or newline")
            lines.append(f'%include "{file}"\n')
        _write_atomic(self.index_file, "".join(lines))

    def _restore(self, journal: list[tuple[str, Optional[str]]], old_index: Optional[str]) -> None:
        for file, old_text in reversed(journal):
            with contextlib.suppress(OSError):
                if old_text is None:
                    os.unlink(file)
                else:
                    _write_atomic(file, old_text)
        with contextlib.suppress(OSError):
            if old_index is None:
                self.index_file.unlink()
            else:
                _write_atomic(self.index_file, old_index)

    def _live_add(self, bus: GaneshaDBus, file: str, export_id: int, warnings: list[str], path: str) -> None:
        try:
            bus.add_export(str(file), export_id)
        except GaneshaCallError as exc:
            if "already active" in exc.ganesha_message:
                # Is it this very export (running, but its file was deleted by hand)? Then update it
                # in place. Anything else uses the id: never touch it.
                try:
                    running = bus.display_export(export_id).get("path")
                except NfsKitError:
                    running = None
                if running != path:
                    raise GaneshaCallError(
                        "AddExport",
                        f"Export_Id {export_id} is already used by {running or 'another export'} in ganesha, "
                        "outside nfskit's files; remove it or raise first_export_id",
                    ) from None
                warnings.append(f"{path} (Export_Id {export_id}) was already active in ganesha; updated it instead of adding")
                bus.update_export(str(file), export_id)
                return
            if "Errors found" in exc.ganesha_message:
                # ganesha added it despite the errors: take it out again before reporting
                with contextlib.suppress(NfsKitError):
                    bus.remove_export(export_id)
            raise

    def _live_update(self, bus: GaneshaDBus, file: str, export_id: int, warnings: list[str]) -> None:
        try:
            bus.update_export(str(file), export_id)
        except GaneshaCallError as exc:
            if "Errors found" not in exc.ganesha_message and _not_active(exc.ganesha_message):
                warnings.append(f"Export_Id {export_id} was not active in ganesha; added it")
                bus.add_export(str(file), export_id)
                return
            raise

    def _live_remove(self, bus: GaneshaDBus, export_id: int, warnings: list[str], path: str) -> None:
        try:
            bus.remove_export(export_id)
        except GaneshaCallError as exc:
            if "not found" in exc.ganesha_message.lower():
                warnings.append(f"{path} (Export_Id {export_id}) was not active in ganesha; removed its file only")
                return
            raise

    def _undo(self, done: list[tuple[str, int, str]], failure: Exception) -> list[str]:
        """Reverse the live calls already made (files are already restored)."""
        problems = []
        try:
            bus = GaneshaDBus(self.dbus_address, timeout=self.dbus_timeout).connect()
        except DBusUnavailable as exc:
            return [str(exc)] if done else []
        with bus:
            for kind, export_id, file in reversed(done):
                try:
                    if kind == "add":
                        bus.remove_export(export_id)
                    elif kind == "update":
                        bus.update_export(str(file), export_id)
                    else:
                        bus.add_export(str(file), export_id)
                except NfsKitError as exc:
                    problems.append(f"undo {kind} of Export_Id {export_id}: {exc}")
        return problems

    def _sighup_fallback(self, why: Exception, journal, old_index, removes, warnings: list[str]) -> ApplyReport:
        pid = self._ganesha_pid()
        if pid is not None and not self.validate_enabled:
            self._restore(journal, old_index)
            raise BackendError(
                f"{why}; the SIGHUP fallback needs validation (a syntax error plus SIGHUP makes ganesha drop every "
                "export) but validate is off. Nothing was changed."
            )
        if pid is not None:
            broken = self._syntax_problem()
            if broken:
                self._restore(journal, old_index)
                raise BackendError(
                    f"{why}; not sending SIGHUP because {broken} (ganesha would drop every export on a syntax "
                    "error). Nothing was changed."
                )
        for _, _, file, _ in removes:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file)
        if pid is None:
            warnings.append(
                f"{why}; ganesha does not run (no live ganesha pid in {self.pid_file}): "
                "the files are written and load at its next start"
            )
            return ApplyReport(method="none", warnings=warnings)
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise BackendError(
                f"{why}; sending SIGHUP to ganesha (pid {pid}) failed: {exc}. "
                "The new files are in place and load at the next reload or start."
            ) from None
        warnings.append(
            f"{why}; sent SIGHUP to ganesha (pid {pid}) instead: it rereads every export asynchronously "
            "(seconds for thousands of exports)"
        )
        return ApplyReport(method="sighup", warnings=warnings)

    def _syntax_problem(self) -> Optional[str]:
        """Syntax-check every block file the index includes (only before a SIGHUP: ganesha then
        rereads all of them, and one syntax error anywhere drops every export)."""
        for file in self._block_files():
            try:
                parse_config(_read_text(file) or "")
            except ConfigSyntaxError as exc:
                return f"{file} has a syntax error ({exc})"
        return None

    def _ganesha_pid(self) -> Optional[int]:
        text = _read_text(self.pid_file)
        if not text or not text.strip().isdigit():
            return None
        pid = int(text.strip())
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm.startswith("ganesha") else None

    @contextlib.contextmanager
    def _lock(self):
        with open(self.exports_dir / ".nfskit.lock", "a") as handle:
            deadline = time.monotonic() + 120
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OperationTimeout(f"another nfskit run holds {self.exports_dir}/.nfskit.lock") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ validation sandbox

    def _check_with_ganesha(self, blocks: list[tuple[Export, int, str]]) -> list[str]:
        """Parse the blocks with the real ganesha in ``unshare -m -n`` (private /run, no network)."""
        if shutil.which(self.ganesha_bin) is None and not os.path.exists(self.ganesha_bin):
            raise BackendError(f"cannot validate: {self.ganesha_bin} not found (install nfs-ganesha or set ganesha_bin)")
        work = Path(tempfile.mkdtemp(prefix="nfskit-ganesha-check-"))
        try:
            names: dict[str, str] = {}
            includes = []
            for number, (export, export_id, text) in enumerate(blocks):
                file = work / f"block{number}.conf"
                file.write_text(text)
                names[str(file)] = f"block of {export.path}"
                includes.append(f'%include "{file}"')
            (work / "recov").mkdir()
            main = work / "ganesha.conf"
            main.write_text(
                "NFS_CORE_PARAM { Bind_Addr = %s; Enable_NLM = false; Enable_RQUOTA = false; Protocols = 3, 4; }\n"
                'NFSV4 { Graceless = true; RecoveryRoot = "%s"; }\n'
                "NFS_KRB5 { Active_krb5 = false; }\n%s\n" % (_SANDBOX_BIND, work / "recov", "\n".join(includes))
            )
            log = work / "ganesha.log"
            script = (
                "mount --make-rprivate / && mount -t tmpfs nfskit-check /run && mkdir -p /run/ganesha "
                "&& { [ ! -d /var/lib/nfs ] || mount -t tmpfs nfskit-check /var/lib/nfs; } "
                "&& ip link set lo up && ip link add nfskitva type veth peer name nfskitvb "
                f"&& ip link set nfskitva up && ip addr add {_SANDBOX_ADDR}/32 dev nfskitva "
                f'&& exec timeout -s KILL {int(self.validate_timeout)} "$0" -F -f "$1" -L "$2" -p /run/ganesha/check.pid -N NIV_EVENT'
            )
            env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C",
                   "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/run/nfskit-check-no-bus"}
            try:
                proc = subprocess.run(
                    ["unshare", "--mount", "--net", "--", "sh", "-c", script, self.ganesha_bin, str(main), str(log)],
                    capture_output=True, text=True, timeout=self.validate_timeout + 10, env=env,
                )
            except subprocess.TimeoutExpired:
                raise OperationTimeout(f"ganesha config check did not finish within {self.validate_timeout + 10} s") from None
            except FileNotFoundError as exc:
                raise BackendError(f"cannot validate: {exc}") from None
            text = _read_text(log) or ""
            if "Configuration file successfully parsed" not in text and not _LOG_ERROR.search(text):
                raise BackendError(
                    "ganesha config check did not run (needs root, unshare and ip): "
                    + (proc.stderr.strip() or text.strip() or f"exit code {proc.returncode}")[-800:]
                )
            return _judge_log(text, names)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _judge_log(text: str, names: dict[str, str]) -> list[str]:
    """Errors (raised) and warnings (returned) in the log of a sandboxed ganesha run.

    Specific messages (syntax errors, unknown tokens or parameters, missing paths) are errors;
    ganesha's per-block summary lines count only when nothing explains them but a failed host
    name lookup, which is a warning because the sandbox has no network.
    """
    errors, warnings, summaries = [], [], []
    for raw in text.splitlines():
        if ":CONFIG :" not in raw and ":FSAL :" not in raw and "error: syntax" not in raw:
            continue
        line = re.sub(r"^\w+ :", "", raw.split("] ", 1)[-1])
        for temp, label in names.items():
            line = re.sub(rf"Config File \({re.escape(temp)}:", lambda _, label=label: f"Config File ({label}, line ", line, flags=re.I)
        dns = _LOG_DNS.search(raw)
        if dns:
            warnings.append(
                f"could not resolve client {dns.group('host')} inside the validation sandbox (it has no network); "
                "ganesha resolves it when it loads the export"
            )
        elif _LOG_SUMMARY.search(raw):
            if _LOG_SEVERE.search(raw):
                summaries.append(line)
        elif _LOG_ERROR.search(raw):
            errors.append(line)
    if errors or (summaries and not warnings):
        raise BackendError("ganesha refused the export configuration: " + " | ".join(errors or summaries))
    return warnings


def _scan_head(data: bytes) -> tuple[Optional[int], Optional[str], Optional[str]]:
    """(Export_Id, Path, Pseudo) of a block file: lines 3-5 of our canonical layout, else regexes."""
    head = data.split(b"\n", 5)
    if (
        len(head) == 6 and head[1] == b"EXPORT {" and head[2].startswith(b"    Export_Id = ")
        and head[3].startswith(b'    Path = "') and head[4].startswith(b'    Pseudo = "')
        and head[2].endswith(b";") and head[3].endswith(b'";') and head[4].endswith(b'";')
    ):
        number = head[2][16:-1]
        if number.isdigit():
            return int(number), _decode(head[3][12:-2]), _decode(head[4][14:-2])
    text = _decode(data)
    ids, paths, pseudos = _ID_RE.findall(text), _PATH_RE.findall(text), _PSEUDO_RE.findall(text)
    path = paths[0] if len(paths) == 1 else None
    pseudo = pseudos[0] if len(pseudos) == 1 else (path if not pseudos else None)
    return (int(ids[0]) if len(ids) == 1 else None), path, pseudo


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _not_active(message: str) -> bool:
    lower = message.lower()
    return "not found" in lower or "no such" in lower or "not exist" in lower


def _config_path(value: object, name: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInput(name, value, "must be an absolute path")
    text = os.fspath(value)
    if not text.startswith("/") or any(ch in text for ch in '"\n\r\\\x00'):
        raise InvalidInput(name, value, "must be an absolute path without quotes, backslashes or newlines")
    return text


def _read_bytes(file: Union[str, Path]) -> Optional[bytes]:
    """The file's bytes, or None when it does not exist (os.read: half the cost of open() for 10k files)."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, 1 << 16)
        if len(data) < 1 << 16:
            return data
        chunks = [data]
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _read_text(file: Union[str, Path]) -> Optional[str]:
    data = _read_bytes(file)
    return None if data is None else _decode(data)


def _write_atomic(file: Union[str, Path], text: str) -> None:
    """Write ``text`` to ``file`` via a temp file in the same directory and rename; no temp file
    is left behind on failure."""
    directory, name = os.path.split(os.fspath(file))
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
