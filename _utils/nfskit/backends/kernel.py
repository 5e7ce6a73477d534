"""The Linux kernel nfsd backend: one exports(5) file per managed export under ``/etc/exports.d``.

Files are named ``{prefix}{slug}-{8 hex of sha256(path)}.exports``; only files with our prefix
are read or written, so ``/etc/exports`` and the admin's own ``exports.d`` files are never
touched. ``apply`` checks new files with the real ``exportfs`` in a private mount namespace,
writes them atomically (temp files whose names ``exportfs`` ignores, one sync, renames, one
directory fsync), runs ``exportfs -ra`` once, and on errors puts the previous files back and runs
``exportfs -ra`` again.
"""
from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional

from nfskit import exportfs as exportfs_tool
from nfskit.backends.base import Backend
from nfskit.errors import BackendError, Conflict, InvalidInput, OperationTimeout
from nfskit.exports_codec import parse_exports_model, render_export_line
from nfskit.model import Export
from nfskit.plan import ApplyReport, Plan

HEADER = "# managed by nfskit (salt); path {path}\n"
_CONFIG_KEYS = ("exports_d", "exports_file", "state_dir", "exportfs", "prefix", "validate", "timeout")
_PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")


def managed_file_name(path: str, prefix: str = "nfskit-") -> str:
    """``{prefix}{slug}-{8 hex}.exports``: slug is the path with runs of non-alphanumerics turned
    into '-', trimmed, at most 40 characters; the hex is the start of sha256(path)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")[:40].strip("-")
    digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{prefix}{slug}-{digest}.exports"


def _read(path: str) -> str:
    """A whole file as text (undecodable bytes kept as surrogates); cheaper than open() per file."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def _syncfs(fd: int) -> None:
    """Flush the filesystem holding ``fd`` (syncfs(2)); os.sync() where that is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) == 0:
            return
    except (OSError, AttributeError):
        pass
    os.sync()


class KernelBackend(Backend):
    """Kernel nfsd exports through ``/etc/exports.d`` and ``exportfs``."""

    name = "kernel"

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__(config)
        unknown = sorted(set(self.config) - set(_CONFIG_KEYS))
        if unknown:
            raise InvalidInput(
                f"nfs_server:kernel:{unknown[0]}", self.config[unknown[0]], "is not a kernel backend setting (" + ", ".join(_CONFIG_KEYS) + ")"
            )
        for key in ("exports_d", "exports_file", "state_dir"):
            value = self.config.get(key)
            if value is not None and (not isinstance(value, str) or not value.startswith("/")):
                raise InvalidInput(f"nfs_server:kernel:{key}", value, "must be an absolute path")
        self.exports_d: str = self.config.get("exports_d") or exportfs_tool.EXPORTS_D
        self.exports_file: str = self.config.get("exports_file") or exportfs_tool.EXPORTS_FILE
        self.state_dir: str = self.config.get("state_dir") or exportfs_tool.STATE_DIR
        self.exportfs: str = self.config.get("exportfs") or "exportfs"
        self.prefix: str = self.config.get("prefix", "nfskit-")
        if not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix):
            raise InvalidInput("nfs_server:kernel:prefix", self.prefix, "must be a file name prefix (letters, digits, '_', '.', '+', '-')")
        self.check_with_exportfs = bool(self.config.get("validate", True))
        try:
            self.timeout = float(self.config.get("timeout", exportfs_tool.DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            raise InvalidInput("nfs_server:kernel:timeout", self.config.get("timeout"), "must be a number of seconds") from None
        if self.timeout <= 0:
            raise InvalidInput("nfs_server:kernel:timeout", self.config.get("timeout"), "must be more than 0 seconds")
        self._files: Optional[dict[str, str]] = None  # path -> file name, from the last read()

    # -- naming and reading ----------------------------------------------------------------------
    def file_name(self, path: str) -> str:
        return managed_file_name(path, self.prefix)

    def _managed_names(self) -> list[str]:
        try:
            with os.scandir(self.exports_d) as listing:
                return sorted(
                    item.name
                    for item in listing
                    if item.name.startswith(self.prefix) and item.name.endswith(".exports") and item.is_file()
                )
        except FileNotFoundError:
            return []

    def read(self) -> dict[str, Export]:
        """The exports in our files, keyed by path (sorted). Other files are not read."""
        result: dict[str, Export] = {}
        files: dict[str, str] = {}
        for name in self._managed_names():
            full = os.path.join(self.exports_d, name)
            try:
                text = _read(full)
            except FileNotFoundError:
                continue
            try:
                exports = parse_exports_model(text, field=full)
            except InvalidInput as exc:
                raise BackendError(f"managed file {full} is not valid ({exc}); fix or remove it") from None
            for path, export in exports.items():
                if path in result:
                    raise Conflict(f"{path} is exported by two managed files, {files[path]} and {name}; remove one")
                result[path] = export
                files[path] = name
        self._files = files
        return dict(sorted(result.items()))

    def render(self, export: Export) -> str:
        return HEADER.format(path=export.path) + render_export_line(export)

    # -- checking --------------------------------------------------------------------------------
    def _check(self, texts: Mapping[str, str]) -> list[str]:
        if not texts:
            return []
        errors, warnings = exportfs_tool.check_texts(texts, shown_dir=self.exports_d, exportfs=self.exportfs, timeout=self.timeout)
        if errors:
            raise BackendError("exportfs refused the new exports (nothing was written): " + "; ".join(errors))
        return warnings

    def validate(self, exports: list[Export]) -> list[str]:
        """Check exports with the real exportfs in a private namespace; returns its warnings."""
        return self._check({self.file_name(export.path): self.render(export) for export in exports})

    def reload(self) -> tuple[list[str], list[str]]:
        """``exportfs -ra`` over the configured files: ``(errors, warnings)``."""
        return exportfs_tool.reload(
            self.exports_file, self.exports_d, self.state_dir, exportfs=self.exportfs, timeout=self.timeout
        )

    # -- applying --------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[int]:
        """An exclusive flock on the exports dir (one apply at a time); yields the dir fd."""
        fd = os.open(self.exports_d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def apply(self, plan: Plan) -> ApplyReport:
        """Check, write, reload; on reload errors restore the previous files and reload again.

        The new files are staged under hidden temp names (``.name.PID.tmp``, which exportfs and
        :meth:`read` skip) while exportfs checks them in a private namespace; nothing is renamed
        into place unless the check passes, and no temp file outlives this call.
        """
        if not plan:
            return ApplyReport(method="none", warnings=[])
        if self._files is None:
            self.read()
        files = dict(self._files or {})
        writes: dict[str, str] = {}
        written: dict[str, str] = {}
        for export in list(plan.add) + [new for _, new in plan.change]:
            name = files.get(export.path) or self.file_name(export.path)
            writes[name] = self.render(export)
            written[export.path] = name
        deletes = [files.get(e.path) or self.file_name(e.path) for e in plan.remove]
        deletes = [name for name in deletes if name not in writes]
        try:
            os.makedirs(self.exports_d, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create {self.exports_d}: {exc}") from exc
        with self._locked() as dir_fd:
            previous = {name: self._snapshot(name) for name in list(writes) + deletes}
            staged: list[tuple[str, str]] = []
            try:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    check = pool.submit(self._check, writes) if self.check_with_exportfs and writes else None
                    try:
                        staged = self._stage(writes)
                    finally:
                        warnings = check.result() if check else []
                self._install(dir_fd, staged, deletes)
            except BaseException as exc:
                self._discard(staged)
                if not isinstance(exc, (BackendError, OperationTimeout)) or self._changed(previous):
                    self._restore(dir_fd, previous)
                if isinstance(exc, OSError):
                    raise BackendError(f"writing {self.exports_d} failed ({exc}); the previous files were kept") from exc
                raise
            try:
                errors, reload_warnings = self.reload()
            except OperationTimeout as exc:
                self._restore(dir_fd, previous)
                self._reload_quietly()
                raise OperationTimeout(f"{exc}; the previous files were restored and exportfs -ra was run again") from exc
            if errors:
                self._restore(dir_fd, previous)
                again, _ = self._reload_quietly()
                message = (
                    "exportfs -ra reported errors: " + "; ".join(errors) + ". The previous files were restored and "
                    "exportfs -ra was run again, so the old configuration is still served"
                )
                if again:
                    message += " (exportfs still reports: " + "; ".join(again) + "; these are not from the new exports)"
                raise BackendError(message)
        for export in plan.remove:
            files.pop(export.path, None)
        files.update(written)
        self._files = files
        return ApplyReport(method="exportfs -ra", warnings=list(dict.fromkeys(warnings + reload_warnings)))

    def _reload_quietly(self) -> tuple[list[str], list[str]]:
        try:
            return self.reload()
        except Exception as exc:  # noqa: BLE001 - reported in the caller's message
            return [f"exportfs -ra failed again: {exc}"], []

    def _snapshot(self, name: str) -> Optional[bytes]:
        try:
            with open(os.path.join(self.exports_d, name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def _temp_name(self, name: str) -> str:
        # starts with '.' and does not end in .exports: exportfs and read() both skip it
        return os.path.join(self.exports_d, f".{name}.{os.getpid()}.tmp")

    def _stage(self, writes: Mapping[str, bytes | str]) -> list[tuple[str, str]]:
        """Write each file under its temp name; returns ``[(temp, name)]`` (all removed on error)."""
        staged: list[tuple[str, str]] = []
        try:
            for name, content in writes.items():
                temp = self._temp_name(name)
                data = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                staged.append((temp, name))
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
        except BaseException:
            self._discard(staged)
            raise
        return staged

    def _install(self, dir_fd: int, staged: list[tuple[str, str]], deletes: list[str]) -> None:
        """One sync for the staged data, rename each into place, delete, one fsync of the dir."""
        if staged:
            _syncfs(dir_fd)
        done = 0
        try:
            for temp, name in staged:
                os.rename(temp, os.path.join(self.exports_d, name))
                done += 1
        finally:
            self._discard(staged[done:])
        for name in deletes:
            try:
                os.unlink(os.path.join(self.exports_d, name))
            except FileNotFoundError:
                pass
        os.fsync(dir_fd)

    @staticmethod
    def _discard(staged: list[tuple[str, str]]) -> None:
        for temp, _ in staged:
            try:
                os.unlink(temp)
            except OSError:
                pass

    def _changed(self, previous: Mapping[str, Optional[bytes]]) -> bool:
        """Whether any file differs from ``previous`` (i.e. something was already installed)."""
        return any(self._snapshot(name) != data for name, data in previous.items())

    def _replace(self, dir_fd: int, writes: Mapping[str, bytes | str], deletes: list[str]) -> None:
        self._install(dir_fd, self._stage(writes), deletes)

    def _restore(self, dir_fd: int, previous: Mapping[str, Optional[bytes]]) -> None:
        """Put back the files as they were before this apply; BackendError if that fails."""
        writes = {name: data for name, data in previous.items() if data is not None}
        deletes = [name for name, data in previous.items() if data is None]
        try:
            self._replace(dir_fd, writes, deletes)
        except OSError as exc:
            raise BackendError(f"restoring the previous files in {self.exports_d} failed: {exc}") from exc
