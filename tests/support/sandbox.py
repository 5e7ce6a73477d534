"""A private tree for tests that run the real ``exportfs``.

Layout under ``root``: ``etc/exports``, ``etc/exports.d/``, ``var/lib/nfs/`` (etab lands here) and
``srv/`` for export directories (``exportfs`` stats every exported path, so they must exist).
``exportfs`` sees the tree only through :mod:`nfskit.exportfs`' private mount namespace, so the
host's ``/etc/exports``, ``/etc/exports.d`` and ``/var/lib/nfs`` are never read or written.

    box = Sandbox.create(tmp_path)
    data = box.export_dir("data")          # /tmp/.../srv/data, created
    backend = box.backend()                # KernelBackend on this tree
    backend.apply(plan); box.etab()        # what exportfs recorded
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


@dataclass(frozen=True)
class EtabEntry:
    path: str
    host: str
    options: tuple[str, ...]


def parse_etab(text: str) -> list[EtabEntry]:
    """Parse etab lines ``path<TAB>host(opt,opt,...)``; the path's ``\\ooo`` escapes are decoded."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        path, _, client = line.partition("\t")
        host, _, options = client.partition("(")
        path = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)
        entries.append(EtabEntry(path, host, tuple(options.rstrip(")").split(","))))
    return entries


def exportfs_unavailable() -> Optional[str]:
    """Why tests that run exportfs in a namespace cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for mount namespaces"
    if not (shutil.which("exportfs") or os.path.exists("/usr/sbin/exportfs")):
        return "exportfs (nfs-kernel-server) is not installed"
    if not shutil.which("unshare"):
        return "unshare (util-linux) is not installed"
    return None


@dataclass
class Sandbox:
    root: Path

    @classmethod
    def create(cls, root: Path | str) -> "Sandbox":
        box = cls(Path(root))
        box.exports_d.mkdir(parents=True, exist_ok=True)
        box.state_dir.mkdir(parents=True, exist_ok=True)
        box.export_root.mkdir(parents=True, exist_ok=True)
        if not box.exports_file.exists():
            box.exports_file.write_text("")
        return box

    @property
    def exports_file(self) -> Path:
        return self.root / "etc" / "exports"

    @property
    def exports_d(self) -> Path:
        return self.root / "etc" / "exports.d"

    @property
    def state_dir(self) -> Path:
        return self.root / "var" / "lib" / "nfs"

    @property
    def export_root(self) -> Path:
        return self.root / "srv"

    def export_dir(self, name: str) -> str:
        """Create ``srv/<name>`` and return its absolute path."""
        path = self.export_root / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def config(self, **extra: Any) -> dict[str, Any]:
        """KernelBackend settings pointing at this tree."""
        config = {
            "exports_d": str(self.exports_d),
            "exports_file": str(self.exports_file),
            "state_dir": str(self.state_dir),
        }
        config.update(extra)
        return config

    def backend(self, **extra: Any):
        from nfskit.backends.kernel import KernelBackend

        return KernelBackend(self.config(**extra))

    def write_admin(self, name: str, text: str) -> Path:
        """Write an admin-owned file into exports.d (or ``exports`` for /etc/exports)."""
        target = self.exports_file if name == "exports" else self.exports_d / name
        target.write_text(text)
        return target

    def etab(self) -> list[EtabEntry]:
        etab = self.state_dir / "etab"
        return parse_etab(etab.read_text()) if etab.exists() else []

    def etab_map(self) -> dict[tuple[str, str], tuple[str, ...]]:
        return {(e.path, e.host): e.options for e in self.etab()}

    def files(self) -> list[str]:
        """Every name in exports.d (temp files included), sorted."""
        return sorted(os.listdir(self.exports_d))

    def snapshot(self) -> dict[str, bytes]:
        """``{name: bytes}`` of everything in exports.d plus ``exports``."""
        shot = {name: (self.exports_d / name).read_bytes() for name in self.files()}
        shot["<exports>"] = self.exports_file.read_bytes()
        return shot
