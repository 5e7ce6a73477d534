"""Compare the exports a backend holds with the desired ones; the result drives apply and test=True."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Optional

from nfskit.model import Export


@dataclass(frozen=True)
class Plan:
    """What must change on one backend. Exports are compared as typed values, so option order and
    equivalent spellings never show up as changes."""

    add: tuple[Export, ...] = ()
    change: tuple[tuple[Export, Export], ...] = ()
    remove: tuple[Export, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.add or self.change or self.remove)

    def changes(self) -> dict[str, dict[str, Optional[str]]]:
        """Salt ``changes`` form: ``{path: {"old": exports(5) line or None, "new": ... or None}}``."""
        out: dict[str, dict[str, Optional[str]]] = {}
        for export in self.add:
            out[export.path] = {"old": None, "new": export.describe()}
        for old, new in self.change:
            out[new.path] = {"old": old.describe(), "new": new.describe()}
        for export in self.remove:
            out[export.path] = {"old": export.describe(), "new": None}
        return out

    def summary(self) -> str:
        parts = []
        for count, verb in ((len(self.add), "added"), (len(self.change), "changed"), (len(self.remove), "removed")):
            if count:
                parts.append(f"{count} {verb}")
        return ", ".join(parts) if parts else "no changes"

    def diff(self, render: Callable[[Export], str]) -> str:
        """A unified diff of the backend's rendered text for every export in the plan."""
        chunks = []
        for export in self.add:
            chunks.append(_udiff("", render(export), export.path))
        for old, new in self.change:
            chunks.append(_udiff(render(old), render(new), new.path))
        for export in self.remove:
            chunks.append(_udiff(render(export), "", export.path))
        return "".join(chunks)


def _udiff(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a:{name}", tofile=f"b:{name}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def make_plan(
    current: Mapping[str, Export],
    desired: Iterable[Export],
    remove_unlisted: bool = False,
    remove: Iterable[str] = (),
) -> Plan:
    """Plan the move from ``current`` to ``desired``.

    Exports in ``current`` but not in ``desired`` are removed only when ``remove_unlisted`` is
    set; paths in ``remove`` are removed when present.
    """
    add, change = [], []
    wanted = {}
    for export in desired:
        wanted[export.path] = export
        old = current.get(export.path)
        if old is None:
            add.append(export)
        elif old != export:
            change.append((old, export))
    dropped = [current[p] for p in remove if p in current and p not in wanted]
    if remove_unlisted:
        dropped += [e for p, e in current.items() if p not in wanted and e not in dropped]
    return Plan(add=tuple(add), change=tuple(change), remove=tuple(dropped))


@dataclass
class ApplyReport:
    """What a backend did: how it reloaded and which tool warnings it saw (errors raise)."""

    method: str = "none"
    warnings: list[str] = field(default_factory=list)
