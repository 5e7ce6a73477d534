"""Checks for every string that may reach an exports file, a ganesha block or a command line.

Each check raises :class:`nfskit.errors.InvalidInput` naming the field; none of them writes.
"""
from __future__ import annotations

import ipaddress
import re

from nfskit.errors import InvalidInput

# exports(5) wildcards are * ? and [..] inside names; nothing else beyond a DNS name.
_HOSTNAME = re.compile(r"[A-Za-z0-9*?\[\]_](?:[A-Za-z0-9*?\[\]_.-]{0,252})")
_NETGROUP = re.compile(r"@[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_LOOKS_NUMERIC = re.compile(r"[0-9.]+(/[0-9.]*)?")
_LOOKS_V6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/.*)?")
_TOKEN = re.compile(r"[A-Za-z0-9_.:@+/=-]+")
_WORLD = {"*", "0.0.0.0/0", "::/0", "0.0.0.0/0.0.0.0"}
_FORBIDDEN = {
    "\n": "a newline",
    "\r": "a carriage return",
    "\x00": "a NUL byte",
    "(": "'('",
    ")": "')'",
    "#": "'#'",
    ",": "','",
    '"': "a double quote",
    "'": "a quote",
    "\\": "a backslash",
}
HOST_KINDS = "a host spec is a name, address, CIDR, wildcard or @netgroup"
MAX_PATH = 4096


# One C-level scan finds the first character _forbidden_char objects to; \s is str.isspace().
_FORBIDDEN_SCAN = re.compile("[" + re.escape("".join(_FORBIDDEN)) + r"\s\x00-\x1f\x7f]")
_PATH_FORBIDDEN_SCAN = re.compile(r'[\n\r\x00"\\#\x00-\x1f\x7f]')


def _forbidden_char(value: str) -> str | None:
    found = _FORBIDDEN_SCAN.search(value)
    if found is None:
        return None
    char = found.group()
    if char in _FORBIDDEN:
        return _FORBIDDEN[char]
    if char.isspace():
        return "whitespace"
    return f"a control character (0x{ord(char):02x})"


def check_host(host: object, field: str) -> str:
    """Validate one exports(5) client spec and return it unchanged."""
    if not isinstance(host, str):
        raise InvalidInput(field, host, f"is not a string; {HOST_KINDS}")
    if host == "":
        raise InvalidInput(field, host, f"is empty (an empty host means every host); {HOST_KINDS}")
    bad = _forbidden_char(host)
    if bad:
        raise InvalidInput(field, host, f"contains {bad}; {HOST_KINDS}")
    if host.startswith("@"):
        if not _NETGROUP.fullmatch(host):
            raise InvalidInput(field, host, "is not a valid @netgroup name (letters, digits, '_', '.', '-')")
        return host
    if "/" in host or _LOOKS_NUMERIC.fullmatch(host) or (":" in host and _LOOKS_V6.fullmatch(host)):
        _check_address(host, field)
        return host
    if len(host) > 253 or not _HOSTNAME.fullmatch(host) or ".." in host:
        raise InvalidInput(field, host, f"is not a valid host name or wildcard; {HOST_KINDS}")
    if host.count("[") != host.count("]"):
        raise InvalidInput(field, host, "has an unbalanced '[' wildcard")
    return host


def _check_address(host: str, field: str) -> None:
    address, _, mask = host.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        kind = "IPv6" if ":" in address else "IPv4"
        raise InvalidInput(field, host, f"is not a valid {kind} address") from None
    if "/" not in host:
        return
    if mask == "":
        raise InvalidInput(field, host, "has an empty netmask after '/'")
    if mask.isdigit():
        if int(mask) > ip.max_prefixlen:
            raise InvalidInput(field, host, f"has prefix length {mask}, more than {ip.max_prefixlen}")
        return
    if ip.version == 6:
        raise InvalidInput(field, host, "needs a prefix length (e.g. /64) for an IPv6 network")
    try:
        ipaddress.ip_network(f"0.0.0.0/{mask}")
    except ValueError:
        raise InvalidInput(field, host, "has a malformed netmask; use a prefix length or a contiguous dotted mask") from None


def is_world(host: str) -> bool:
    """True for specs that match every client."""
    return host in _WORLD or (set(host) <= {"*", "?", "."} and "*" in host)


def check_path(path: object, field: str) -> str:
    """Validate an absolute export or mount path and return it unchanged.

    Spaces are allowed (rendered quoted or as ``\\040``); components ``.`` and ``..`` are not,
    nor anything that could end a line or a quoted string.
    """
    if not isinstance(path, str):
        raise InvalidInput(field, path, "is not a string; a path is absolute, like /srv/data")
    if not path.startswith("/"):
        raise InvalidInput(field, path, "is not an absolute path; it must start with '/'")
    if len(path) > MAX_PATH:
        raise InvalidInput(field, path, f"is longer than {MAX_PATH} characters")
    bad = _PATH_FORBIDDEN_SCAN.search(path)
    if bad:
        problem = _FORBIDDEN.get(bad.group(), "a control character")
        raise InvalidInput(field, path, f"contains {problem}, which is not allowed in a path")
    parts = path.split("/")
    if any(part in (".", "..") for part in parts):
        raise InvalidInput(field, path, "contains a '.' or '..' component; give the real path")
    if "//" in path or (len(path) > 1 and path.endswith("/")):
        raise InvalidInput(field, path, "has an empty component ('//' or a trailing '/'); give the canonical path")
    return path


def check_token(value: object, field: str, what: str) -> str:
    """A single word with no separators: option words and their values."""
    if not isinstance(value, str):
        raise InvalidInput(field, value, f"is not a string; expected {what}")
    if value == "":
        raise InvalidInput(field, value, f"is empty; expected {what}")
    bad = _forbidden_char(value)
    if bad:
        raise InvalidInput(field, value, f"contains {bad}; expected {what}")
    if not _TOKEN.fullmatch(value):
        raise InvalidInput(field, value, f"contains characters not allowed in {what}")
    return value


def check_anon_id(value: object, field: str, name: str) -> int:
    """anonuid/anongid: an integer uid or gid (negative values count down from 2**32, as exportfs does)."""
    if isinstance(value, bool):
        raise InvalidInput(field, value, f"{name} must be a number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,10}", value):
        number = int(value)
    else:
        raise InvalidInput(field, value, f"{name} must be a number (a uid or gid)")
    if not -(2**31) <= number <= 2**32 - 1:
        raise InvalidInput(field, value, f"{name} is out of range for a uid or gid")
    return number
