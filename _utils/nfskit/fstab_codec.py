"""Read and edit fstab(5) keeping every byte we did not change.

The file is handled as bytes: comments, blank lines, tabs, CRLF endings, odd encodings and lines
we cannot parse survive an edit untouched. An edit replaces, appends or drops whole lines, one
entry per mount point, and the result is written atomically (temp file in the same directory,
fsync, rename, fsync of the directory) with the old file's mode and owner.

Fields that could break the line structure are refused before anything is written: whitespace,
newlines, NUL, ``#`` and backslashes in the device, mount point or options.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Optional, Sequence

from nfskit.errors import BackendError, Conflict, InvalidInput

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(raw: bytes) -> str:
    """fstab(5) writes a space in a field as ``\\040`` (getmntent decodes any ``\\ooo``)."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), raw.decode("utf-8", "surrogateescape"))


def _check_field(value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or value == "":
        raise InvalidInput(field, value, f"is empty or not a string; expected {what}")
    for char in value:
        if char.isspace():
            problem = "a newline" if char in "\r\n" else "whitespace"
        elif char == "\x00":
            problem = "a NUL byte"
        elif char in "#\\":
            problem = repr(char)
        elif ord(char) < 32 or ord(char) == 127:
            problem = f"a control character (0x{ord(char):02x})"
        else:
            continue
        raise InvalidInput(field, value, f"contains {problem}, which would break the fstab line; expected {what}")
    return value


@dataclass(frozen=True)
class FstabEntry:
    """One fstab line: ``device mount_point fstype options dump pass``."""

    device: str
    mount_point: str
    fstype: str
    options: tuple[str, ...] = ("defaults",)
    dump: int = 0
    pass_num: int = 0

    def __post_init__(self):
        _check_field(self.device, "device", "a source such as server:/path")
        _check_field(self.mount_point, "name", "an absolute mount point")
        if not self.mount_point.startswith("/"):
            raise InvalidInput("name", self.mount_point, "is not an absolute path; it must start with '/'")
        _check_field(self.fstype, "fstype", "a file system type such as nfs")
        if not self.options:
            raise InvalidInput("opts", list(self.options), "is empty; use 'defaults'")
        for index, word in enumerate(self.options):
            _check_field(word, f"opts[{index}]", "a mount option")
            if "," in word:
                raise InvalidInput(f"opts[{index}]", word, "contains ','; give one option per list item")
        for name, number in (("dump", self.dump), ("pass_num", self.pass_num)):
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 9:
                raise InvalidInput(name, number, "must be a number from 0 to 9")

    def render(self) -> bytes:
        fields = [self.device, self.mount_point, self.fstype, ",".join(self.options), str(self.dump), str(self.pass_num)]
        return (" ".join(fields) + "\n").encode("utf-8", "surrogateescape")

    def same_as(self, other: "FstabEntry") -> bool:
        """Equal for fstab purposes: option order does not matter (as in core ``mount``)."""
        return (
            (self.device, self.mount_point, self.fstype, self.dump, self.pass_num)
            == (other.device, other.mount_point, other.fstype, other.dump, other.pass_num)
            and sorted(self.options) == sorted(other.options)
        )

    def as_dict(self) -> dict:
        return {"device": self.device, "fstype": self.fstype, "opts": list(self.options), "dump": self.dump, "pass": self.pass_num}


def _parse_entry(content: bytes) -> Optional[FstabEntry]:
    stripped = content.strip()
    if not stripped or stripped.startswith(b"#"):
        return None
    fields = stripped.split()
    if len(fields) < 3 or len(fields) > 6:
        return None
    device, mount_point, fstype = (_unescape(f) for f in fields[:3])
    options = tuple(_unescape(fields[3]).split(",")) if len(fields) > 3 else ("defaults",)
    numbers = [f.decode("ascii", "replace") for f in fields[4:]]
    if not all(n.isdigit() for n in numbers):
        return None
    numbers += ["0"] * (2 - len(numbers))
    try:
        return FstabEntry(device, mount_point, fstype, options, int(numbers[0]), int(numbers[1]))
    except InvalidInput:
        return None  # a line we could not have written (e.g. \040 in a path): read as unparsed


@dataclass
class _Line:
    raw: bytes  # including its line ending, exactly as read
    entry: Optional[FstabEntry]


class FstabDocument:
    """An fstab file as lines; unparsed lines are kept and never matched."""

    def __init__(self, data: bytes = b""):
        self._lines = [_Line(raw, _parse_entry(raw.rstrip(b"\r\n"))) for raw in data.splitlines(keepends=True)]

    def render(self) -> bytes:
        return b"".join(line.raw for line in self._lines)

    def entries(self) -> list[FstabEntry]:
        return [line.entry for line in self._lines if line.entry is not None]

    def find(self, mount_point: str) -> Optional[FstabEntry]:
        """The entry for ``mount_point``; :class:`Conflict` when the file has several."""
        index = self._only_match(mount_point)
        return None if index is None else self._lines[index].entry

    def _matches(self, mount_point: str) -> list[int]:
        return [i for i, line in enumerate(self._lines) if line.entry is not None and line.entry.mount_point == mount_point]

    def _only_match(self, mount_point: str) -> Optional[int]:
        matches = self._matches(mount_point)
        if len(matches) > 1:
            raise Conflict(
                f"fstab has {len(matches)} entries for {mount_point} (lines {', '.join(str(i + 1) for i in matches)}); "
                "mount(8) would use one of them unpredictably; remove the extra lines by hand"
            )
        return matches[0] if matches else None

    def set_entry(self, entry: FstabEntry) -> str:
        """Make ``entry`` the fstab line for its mount point: ``present``, ``new`` or ``change``
        (the answers of core ``mount.set_fstab``)."""
        index = self._only_match(entry.mount_point)
        if index is None:
            if self._lines and not self._lines[-1].raw.endswith(b"\n"):
                self._lines[-1].raw += b"\n"
            self._lines.append(_Line(entry.render(), entry))
            return "new"
        line = self._lines[index]
        if line.entry.same_as(entry):
            return "present"
        ending = line.raw[len(line.raw.rstrip(b"\r\n")):] or b"\n"
        line.raw, line.entry = entry.render()[:-1] + ending, entry
        return "change"

    def remove(self, mount_point: str) -> Optional[FstabEntry]:
        """Drop the line for ``mount_point``; returns the removed entry or None."""
        index = self._only_match(mount_point)
        if index is None:
            return None
        return self._lines.pop(index).entry


def read(path: str) -> tuple[FstabDocument, bytes]:
    """The parsed file and its bytes; a missing file reads as empty."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise BackendError(f"cannot read {path}: {exc.strerror}") from exc
    return FstabDocument(data), data


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: a reader sees the old file or the new one, never a mix."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".nfskit-fstab-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            st = os.stat(path)
            os.chmod(tmp, st.st_mode & 0o7777)
            os.chown(tmp, st.st_uid, st.st_gid)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a crash
    finally:
        os.close(dir_fd)


def entry_from_args(name: object, device: object, fstype: object, opts: Sequence[str], dump: object = 0, pass_num: object = 0) -> FstabEntry:
    """Build an entry from user arguments, numbers given as strings accepted (CLI)."""
    def number(value, field):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InvalidInput(field, value, "must be a number from 0 to 9")

    return FstabEntry(device, name, fstype, tuple(opts) or ("defaults",), number(dump, "dump"), number(pass_num, "pass_num"))
