"""Self-service requests as typed objects, validated once at the edge.

Every field a caller sends (``salt-run nfs.*`` keyword arguments, salt-api ``kwarg``) passes through
one of the ``parse_*`` functions here before anything else looks at it. The rules are strict on
purpose: the values end up in YAML files that Salt renders as pillar and Puppet reads as hiera, in
fstab and in exports(5) lines, so a value may only contain characters that mean nothing to any of
them. Anything else (unknown fields, wrong types, oversized values, ``{{``/``{%`` Jinja, YAML tags,
anchors and aliases, ``key: value`` tricks, hiera ``%{...}`` interpolation) is refused with an
:class:`~nfskit.errors.InvalidInput` that names the field and the problem.

Client rules are validated by the export model (:func:`nfskit.spec.export_from_args`), the same
code that validates ``nfs_server`` state arguments, so a rule means the same everywhere.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from nfskit.errors import InvalidInput
from nfskit.model import ClientRule
from nfskit.spec import export_from_args
from nfskit.validation import check_path

BACKENDS = ("kernel", "ganesha", "efs")
MAX_SLUG = 63
MAX_MINION_ID = 253
MAX_PATH = 1024
MAX_REASON = 500
MAX_SIZE_GB = 1_000_000
MAX_CLIENT_RULES = 64
MAX_MOUNT_OPTIONS = 32

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# DNS-style names: Salt minion ids that are host names. No '_': the pillar top file maps a minion id
# to its file name by turning '.' into '_', which must not make two ids meet (see datarepo).
_MINION_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*")
# Characters that mean nothing to YAML, Jinja, hiera interpolation, fstab or exports(5).
_SAFE_PATH = re.compile(r"[A-Za-z0-9._+@/-]+")
_POSIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_OPTION_VALUE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MODE = re.compile(r"[01]?[0-7]{3}")

# NFS mount options a team may ask for (nfs(5), mount(8), systemd.mount(5), amazon-efs-utils).
MOUNT_FLAGS = frozenset(
    "rw ro hard soft intr nointr bg fg noatime atime relatime nodiratime diratime noexec exec nosuid nodev "
    "_netdev noauto auto ac noac cto nocto lock nolock tcp udp sharecache nosharecache resvport noresvport "
    "rdirplus nordirplus tls iam defaults sync async nofail x-systemd.automount".split()
)
MOUNT_VALUE_KEYS = frozenset(
    "vers nfsvers proto timeo retrans rsize wsize actimeo acregmin acregmax acdirmin acdirmax sec "
    "lookupcache nconnect port mountport mountproto mountvers local_lock retry namlen clientaddr "
    "accesspoint x-systemd.mount-timeout x-systemd.idle-timeout".split()
)
# Mount options that let a file server hand out root on the client: admin teams only.
ADMIN_MOUNT_FLAGS = frozenset({"suid", "dev"})
_EXCLUSIVE_MOUNT_FLAGS = (
    {"rw", "ro"}, {"hard", "soft"}, {"bg", "fg"}, {"tcp", "udp"}, {"lock", "nolock"},
    {"suid", "nosuid"}, {"dev", "nodev"}, {"exec", "noexec"},
)

# Keys that control how a request is handled rather than what is requested.
_COMMON_FIELDS = ("team", "reason")


@dataclass(frozen=True)
class ExportRequest:
    """Ask for a new export. ``path`` is None when the policy should pick it (server root/team/name)."""

    name: str
    backend: str
    server: Optional[str]
    size_gb: int
    rules: tuple[ClientRule, ...]
    rule_fields: tuple[str, ...]
    path: Optional[str] = None
    owner: Optional[str] = None
    group: Optional[str] = None
    mode: Optional[str] = None
    team: Optional[str] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class Target:
    """Where a mount goes: one host (a minion id) or a hostgroup (a named compound target)."""

    kind: str  # "host" | "hostgroup"
    name: str

    @property
    def field(self) -> str:
        return self.kind

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class MountRequest:
    """Mount one of the team's exports on a host or a hostgroup."""

    export: str
    target: Target
    mount_point: str
    options: tuple[str, ...] = ()
    owner: Optional[str] = None
    group: Optional[str] = None
    mode: Optional[str] = None
    team: Optional[str] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class ReleaseRequest:
    """Remove a mount from a host or a hostgroup."""

    target: Target
    mount_point: str
    team: Optional[str] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class DeleteRequest:
    """Delete an export (refused while it is still mounted somewhere)."""

    name: str
    team: Optional[str] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class ReindexRequest:
    """Regenerate the generated files (pillar top file, hostgroup index) from the current config."""

    team: Optional[str] = None
    reason: Optional[str] = None


# ---------------------------------------------------------------------------------------------
# field checks


def check_slug(value: object, field: str, what: str = "a name") -> str:
    """Export, team and hostgroup names: lower-case letters, digits and inner '-'."""
    if not isinstance(value, str):
        raise InvalidInput(field, value, f"is not a string; {what} is lower-case letters, digits and '-'")
    if len(value) > MAX_SLUG:
        raise InvalidInput(field, value, f"is longer than {MAX_SLUG} characters")
    if not _SLUG.fullmatch(value):
        raise InvalidInput(field, value, f"is not a valid {what}: use lower-case letters, digits and '-' (not at either end)")
    return value


def check_minion_id(value: object, field: str) -> str:
    """A minion id that is a DNS host name (letters, digits, '-', dot-separated labels)."""
    if not isinstance(value, str):
        raise InvalidInput(field, value, "is not a string; expected a minion id such as web01.example.com")
    if len(value) > MAX_MINION_ID:
        raise InvalidInput(field, value, f"is longer than {MAX_MINION_ID} characters")
    if not _MINION_ID.fullmatch(value):
        raise InvalidInput(
            field, value, "is not a valid minion id: labels of letters, digits and '-' separated by '.' (no '_' or other characters)"
        )
    return value


def check_safe_path(value: object, field: str) -> str:
    """An absolute, normalised path made only of characters that are inert in YAML, Jinja, hiera and fstab."""
    if isinstance(value, str) and len(value) > MAX_PATH:
        raise InvalidInput(field, value, f"is longer than {MAX_PATH} characters")
    check_path(value, field)
    assert isinstance(value, str)
    if value == "/":
        raise InvalidInput(field, value, "is the root directory; give a directory below it")
    if not _SAFE_PATH.fullmatch(value):
        bad = next(c for c in value if not _SAFE_PATH.fullmatch(c))
        raise InvalidInput(field, value, f"contains {bad!r}; a path may use letters, digits and . _ + @ - /")
    if any(part.startswith("-") for part in value.split("/")):
        raise InvalidInput(field, value, "has a component starting with '-', which commands would read as an option")
    return value


def check_size_gb(value: object, field: str = "size_gb") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, value, "must be a whole number of GB")
    if not 1 <= value <= MAX_SIZE_GB:
        raise InvalidInput(field, value, f"must be between 1 and {MAX_SIZE_GB} GB")
    return value


def check_owner(value: object, field: str) -> str:
    """A POSIX user or group name, or a numeric id."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(field, value, "must be a user or group name, or a numeric id")
    if value.isascii() and value.isdigit():
        if len(value) > 10 or int(value) > 4294967294:
            raise InvalidInput(field, value, "is out of range for a uid or gid")
        return str(int(value))
    if not _POSIX_NAME.fullmatch(value):
        raise InvalidInput(field, value, "is not a valid user or group name (lower-case letters, digits, '_', '-'; at most 32)")
    return value


def check_mode(value: object, field: str = "mode") -> str:
    """A directory mode as octal digits, returned as four digits ('0755').

    An integer is read digit by digit as octal, as Salt's file states do, because the salt-run command
    line turns ``mode=0755`` into the integer 755.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _MODE.fullmatch(value):
        raise InvalidInput(field, value, "must be an octal mode such as '0755' (set-id bits are not allowed)")
    return value.zfill(4)


def check_reason(value: object, field: str = "reason") -> str:
    """Free text for the commit message: one line of printable text, no template markers."""
    if not isinstance(value, str):
        raise InvalidInput(field, value, "must be a string")
    if len(value) > MAX_REASON:
        raise InvalidInput(field, value, f"is longer than {MAX_REASON} characters")
    for char in value:
        if not char.isprintable():
            raise InvalidInput(field, value, f"contains a non-printable character (U+{ord(char):04X}); give one line of text")
    for marker in ("{{", "{%", "{#", "%{", "${"):
        if marker in value:
            raise InvalidInput(field, value, f"contains {marker!r}, a template marker")
    return value.strip()


def check_mount_options(value: object, field: str = "options", admin: bool = False) -> tuple[str, ...]:
    """NFS mount options as a list of words or one comma-separated string, from an allow-list."""
    if value is None:
        return ()
    if isinstance(value, str):
        words = value.split(",")
    elif isinstance(value, (list, tuple)):
        words = list(value)
    else:
        raise InvalidInput(field, value, "must be a list of mount options or a comma-separated string")
    if len(words) > MAX_MOUNT_OPTIONS:
        raise InvalidInput(field, f"<{len(words)} options>", f"has more than {MAX_MOUNT_OPTIONS} options")
    seen: dict[str, int] = {}
    result = []
    for index, word in enumerate(words):
        where = f"{field}[{index}]"
        if not isinstance(word, str):
            raise InvalidInput(where, word, "is not a string; a mount option is a word like 'hard' or 'vers=4.2'")
        key, sep, val = word.partition("=")
        if sep:
            if key not in MOUNT_VALUE_KEYS:
                raise InvalidInput(where, word, _mount_hint(key, True))
            if not _OPTION_VALUE.fullmatch(val):
                raise InvalidInput(where, word, "has a value with characters other than letters, digits and . _ : -")
        elif key in ADMIN_MOUNT_FLAGS:
            if not admin:
                raise InvalidInput(where, word, "lets the file server grant root on the client; only an admin team may request it")
        elif key not in MOUNT_FLAGS:
            raise InvalidInput(where, word, _mount_hint(key, False))
        if key in seen:
            raise InvalidInput(where, word, f"repeats {words[seen[key]]!r} from {field}[{seen[key]}]")
        for group in _EXCLUSIVE_MOUNT_FLAGS:
            other = next((w for w in result if w in group and w != key), None) if key in group else None
            if other:
                raise InvalidInput(where, word, f"conflicts with {other!r}; give only one of them")
        seen[key] = index
        result.append(word)
    return tuple(result)


def _mount_hint(key: str, valued: bool) -> str:
    if valued and key in MOUNT_FLAGS:
        return f"is not a mount option: {key} takes no value"
    if not valued and key in MOUNT_VALUE_KEYS:
        return f"is not a mount option: {key} needs a value ({key}=...)"
    return "is not an NFS mount option this service accepts; allowed: " + ", ".join(
        sorted(MOUNT_FLAGS) + sorted(k + "=" for k in MOUNT_VALUE_KEYS)
    )


# ---------------------------------------------------------------------------------------------
# requests


def _fields(data: object, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput("request", data, "must be a mapping of field names to values")
    for key in data:
        if not isinstance(key, str):
            raise InvalidInput("request", key, "is not a field name (field names are strings)")
    known = allowed + _COMMON_FIELDS
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidInput(unknown[0], data[unknown[0]], "is not a known field; known: " + ", ".join(known))
    for key in required:
        if data.get(key) is None:
            raise InvalidInput(key, None, "is required")
    fields = dict(data)
    if fields.get("team") is not None:
        check_slug(fields["team"], "team", "team name")
    if fields.get("reason") is not None:
        fields["reason"] = check_reason(fields["reason"])
    return fields


def _target(fields: Mapping[str, Any]) -> Target:
    host, group = fields.get("host"), fields.get("hostgroup")
    if host is not None and group is not None:
        raise InvalidInput("hostgroup", group, "cannot be combined with host; give one of them")
    if host is not None:
        return Target("host", check_minion_id(host, "host"))
    if group is not None:
        return Target("hostgroup", check_slug(group, "hostgroup", "hostgroup name"))
    raise InvalidInput("host", None, "is required (or hostgroup)")


def _rule_fields(clients: list, rules: tuple[ClientRule, ...]) -> tuple[str, ...]:
    """The request field each rule came from, for policy messages (``clients[1].hosts[0]``)."""
    fields = []
    for index, entry in enumerate(clients):
        key = next(k for k in ("clients", "hosts", "host") if k in entry)
        hosts = entry[key]
        if isinstance(hosts, (list, tuple)):
            fields += [f"clients[{index}].{key}[{position}]" for position in range(len(hosts))]
        else:
            fields.append(f"clients[{index}].{key}")
    assert len(fields) == len(rules)
    return tuple(fields)


def parse_export_request(data: object) -> ExportRequest:
    """Validate the fields of ``nfs.request_export``.

    Fields: ``name``, ``backend``, ``server`` (not for efs), ``size_gb``, ``clients`` (rules as for
    ``nfs_server.managed``; optional for efs), ``path``, ``owner``, ``group``, ``mode``, plus
    ``team`` and ``reason``. Whether the rules are allowed for the team is policy, checked later.
    """
    fields = _fields(
        data,
        ("name", "backend", "server", "size_gb", "clients", "path", "owner", "group", "mode"),
        ("name", "backend", "size_gb"),
    )
    name = check_slug(fields["name"], "name", "export name")
    backend = fields["backend"]
    if backend not in BACKENDS:
        raise InvalidInput("backend", backend, "must be one of " + ", ".join(BACKENDS))
    server = fields.get("server")
    if backend == "efs":
        if server is not None:
            raise InvalidInput("server", server, "is not used with backend efs (the file system is created in AWS)")
    else:
        if server is None:
            raise InvalidInput("server", None, f"is required with backend {backend} (the minion id of the NFS server)")
        check_minion_id(server, "server")
    path = fields.get("path")
    if path is not None:
        check_safe_path(path, "path")
    clients = fields.get("clients")
    rules: tuple[ClientRule, ...] = ()
    rule_fields: tuple[str, ...] = ()
    if clients is None:
        if backend != "efs":
            raise InvalidInput("clients", None, "is required: a list of client rules like [{hosts: 10.0.0.0/24, access: rw}]")
    else:
        if not isinstance(clients, (list, tuple)) or not clients:
            raise InvalidInput("clients", clients, "must be a non-empty list of client rules")
        if len(clients) > MAX_CLIENT_RULES:
            raise InvalidInput("clients", f"<{len(clients)} rules>", f"has more than {MAX_CLIENT_RULES} rules")
        # Rules are checked by the export model; the path does not affect them, so a placeholder
        # stands in when the policy picks the path later. Safety options are policy (admin teams).
        export = export_from_args(path or "/", clients=list(clients), allow_unsafe=True)
        rules = export.rules
        rule_fields = _rule_fields(list(clients), rules)
    return ExportRequest(
        name=name,
        backend=backend,
        server=server,
        size_gb=check_size_gb(fields["size_gb"]),
        rules=rules,
        rule_fields=rule_fields,
        path=path,
        owner=check_owner(fields["owner"], "owner") if fields.get("owner") is not None else None,
        group=check_owner(fields["group"], "group") if fields.get("group") is not None else None,
        mode=check_mode(fields["mode"]) if fields.get("mode") is not None else None,
        team=fields.get("team"),
        reason=fields.get("reason"),
    )


def parse_mount_request(data: object, admin: bool = False) -> MountRequest:
    """Validate the fields of ``nfs.request_mount``: ``export``, ``host`` or ``hostgroup``,
    ``mount_point``, ``options``, ``owner``, ``group``, ``mode``, plus ``team`` and ``reason``.

    ``admin`` allows the mount options that only admin teams may use (``suid``, ``dev``).
    """
    fields = _fields(
        data,
        ("export", "host", "hostgroup", "mount_point", "options", "owner", "group", "mode"),
        ("export", "mount_point"),
    )
    return MountRequest(
        export=check_slug(fields["export"], "export", "export name"),
        target=_target(fields),
        mount_point=check_safe_path(fields["mount_point"], "mount_point"),
        options=check_mount_options(fields.get("options"), "options", admin=admin),
        owner=check_owner(fields["owner"], "owner") if fields.get("owner") is not None else None,
        group=check_owner(fields["group"], "group") if fields.get("group") is not None else None,
        mode=check_mode(fields["mode"]) if fields.get("mode") is not None else None,
        team=fields.get("team"),
        reason=fields.get("reason"),
    )


def parse_release_request(data: object) -> ReleaseRequest:
    """Validate the fields of ``nfs.release_mount``: ``host`` or ``hostgroup``, ``mount_point``."""
    fields = _fields(data, ("host", "hostgroup", "mount_point"), ("mount_point",))
    return ReleaseRequest(
        target=_target(fields),
        mount_point=check_safe_path(fields["mount_point"], "mount_point"),
        team=fields.get("team"),
        reason=fields.get("reason"),
    )


def parse_delete_request(data: object) -> DeleteRequest:
    """Validate the fields of ``nfs.delete_export``: ``name``."""
    fields = _fields(data, ("name",), ("name",))
    return DeleteRequest(name=check_slug(fields["name"], "name", "export name"), team=fields.get("team"), reason=fields.get("reason"))


def parse_reindex_request(data: object) -> ReindexRequest:
    """Validate the fields of ``nfs.reindex``: none but ``team`` and ``reason``."""
    fields = _fields(data, (), ())
    return ReindexRequest(team=fields.get("team"), reason=fields.get("reason"))
