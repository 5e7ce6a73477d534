"""Parse ``/proc/self/mountinfo`` (proc(5)): what is mounted where, read from the kernel's table.

Reading the table never touches a mount point, so it answers even when an NFS server is dead;
that is why every "is it mounted?" question in nfskit starts here and never with ``stat``.

A line is ``id parent major:minor root mount_point mount_opts [optional...] - fstype source super_opts``.
The kernel escapes space, tab, newline and backslash in paths and the source as ``\\ooo``
(``\\040`` for a space). The source may be empty (two spaces in a row), so fields are split on
single spaces, not on runs of whitespace.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from nfskit.errors import BackendError

NFS_TYPES = ("nfs", "nfs4")
_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(text: str) -> str:
    """Decode the kernel's ``\\ooo`` escapes (``/mnt/my\\040data`` -> ``/mnt/my data``)."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), text)


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo, decoded.

    ``mount_options`` are the per-mount (VFS) options (``rw``, ``nosuid``, ``relatime``);
    ``super_options`` are the superblock's, where NFS shows ``vers=``, ``addr=`` and friends.
    """

    mount_id: int
    parent_id: int
    device_id: str
    root: str
    mount_point: str
    mount_options: tuple[str, ...]
    optional_fields: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def is_nfs(self) -> bool:
        return self.fstype in NFS_TYPES

    @property
    def options(self) -> tuple[str, ...]:
        """Mount and super options merged as ``/proc/mounts`` shows them (first spelling wins)."""
        seen: dict[str, None] = {}
        for word in self.mount_options + self.super_options:
            seen.setdefault(word, None)
        return tuple(seen)

    def option_value(self, key: str) -> Optional[str]:
        """The value of ``key=value`` in the super options (``addr``, ``vers``), or None."""
        for word in self.super_options:
            name, sep, value = word.partition("=")
            if sep and name == key:
                return value
        return None

    def describe(self) -> str:
        return f"{self.source} on {self.mount_point} type {self.fstype} ({','.join(self.options)})"


def parse_line(line: str, where: str = "mountinfo") -> MountEntry:
    """Parse one mountinfo line; a line the kernel would never write raises BackendError."""
    fields = line.rstrip("\n").split(" ")
    try:
        separator = fields.index("-", 6)
    except ValueError:
        raise BackendError(f"{where}: no ' - ' separator in {line!r}; not a mountinfo line") from None
    tail = fields[separator + 1:]
    if len(tail) < 3:
        raise BackendError(f"{where}: expected fstype, source and super options after ' - ' in {line!r}")
    try:
        mount_id, parent_id = int(fields[0]), int(fields[1])
    except ValueError:
        raise BackendError(f"{where}: mount ids must be numbers in {line!r}") from None
    # super options never contain a space; anything after the third field belongs to them anyway
    fstype, source, super_options = tail[0], tail[1], " ".join(tail[2:])
    return MountEntry(
        mount_id=mount_id,
        parent_id=parent_id,
        device_id=fields[2],
        root=unescape(fields[3]),
        mount_point=unescape(fields[4]),
        mount_options=tuple(fields[5].split(",")),
        optional_fields=tuple(fields[6:separator]),
        fstype=unescape(fstype),
        source=unescape(source),
        super_options=tuple(word for word in super_options.split(",") if word),
    )


def parse(text: str, where: str = "mountinfo") -> list[MountEntry]:
    """Parse a whole mountinfo table, in the kernel's order (parents before children)."""
    return [parse_line(line, f"{where}:{number}") for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def read(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    """Read and parse the table; reading it does not touch any mount point."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError as exc:
        raise BackendError(f"cannot read the mount table {path}: {exc.strerror}") from exc
    return parse(text, path)


def find(entries: Iterable[MountEntry], mount_point: str) -> Optional[MountEntry]:
    """The mount visible at ``mount_point``: the last one stacked there, or None."""
    found = None
    for entry in entries:
        if entry.mount_point == mount_point:
            found = entry
    return found


def visible(entries: Iterable[MountEntry]) -> dict[str, MountEntry]:
    """``{mount_point: entry}`` for the top mount of every mount point."""
    out: dict[str, MountEntry] = {}
    for entry in entries:
        out[entry.mount_point] = entry
    return out
