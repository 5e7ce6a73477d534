"""The interface every export backend implements (kernel nfsd, NFS-Ganesha)."""
from __future__ import annotations

import abc
from typing import Any, Mapping

from nfskit.model import Export
from nfskit.plan import ApplyReport, Plan


class Backend(abc.ABC):
    """One NFS server implementation.

    A backend owns only the exports it manages (its own files); it never rewrites what an admin
    wrote by hand. ``apply`` validates everything before it writes, writes atomically, reloads,
    and on a reload failure restores the previous files and reloads again, so the server keeps
    serving what it served before.
    """

    name: str = ""

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config = dict(config or {})

    @abc.abstractmethod
    def read(self) -> dict[str, Export]:
        """The exports this backend manages now, keyed by path."""

    @abc.abstractmethod
    def render(self, export: Export) -> str:
        """The text the backend writes for one export (used for diffs)."""

    @abc.abstractmethod
    def validate(self, exports: list[Export]) -> list[str]:
        """Check exports with the server's own parser without touching live state.

        Returns warnings; raises :class:`nfskit.errors.BackendError` on errors.
        """

    @abc.abstractmethod
    def apply(self, plan: Plan) -> ApplyReport:
        """Make the plan true on the server (validate, write, reload, roll back on failure)."""
