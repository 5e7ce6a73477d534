"""Compare the NFS mount options a user asked for with what the kernel shows in mountinfo.

The kernel does not echo mount options back as they were written (fs/nfs/super.c,
``nfs_show_mount_options``), and naive comparison is why Salt's core ``mount.mounted`` remounts
unchanged NFS volumes on every run (saltstack/salt #18630, #57520, #26327, #20828, #19003):

- it renames: ``nfsvers=3`` shows as ``vers=3``, ``vers=4`` as the negotiated ``vers=4.2``,
  ``vers=4,minorversion=1`` as ``vers=4.1``, ``lookupcache=positive`` as ``pos``, ``tcp`` as
  ``proto=tcp`` (``tcp6`` for an IPv6 server);
- it adds what nobody asked for: ``addr=``, ``clientaddr=``, ``mountaddr=``, ``mountport=`` (new
  every boot), ``mountvers=``, ``mountproto=``, ``local_lock=``, ``namlen=``, ``rsize``/``wsize``,
  ``timeo``, ``retrans``, ``sec``, ``hard``, ``relatime``;
- it hides defaults (``acregmin=3`` ...) and never shows client-side options (``async``,
  ``noauto``, ``_netdev``, ``bg``, ``nofail``, ``user``, ``x-systemd.*``, the EFS helper's
  ``tls``, ``iam``, ``accesspoint=``, ``awsprofile=``).

So the rule is: only what the user asked for is compared, each word by what the kernel would
show for it. Options a second mount of the same server cannot change (the transport is shared:
``timeo``, ``retrans``, ``nconnect``, ``noresvport``) are reported as shared, not as a change,
because no umount + mount would change them while the other mounts exist.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from nfskit.errors import InvalidInput
from nfskit.mountinfo import MountEntry
from nfskit.validation import check_token

# Options the kernel never shows: mount(8), mount.nfs, systemd and the EFS helper consume them.
CLIENT_ONLY = frozenset(
    """defaults auto noauto user users nouser owner group _netdev nofail bg fg retry sloppy comment
    intr nointr silent loud tls notls iam accesspoint awsprofile awscredsuri mounttargetip az tlsport
    netns ocsp noocsp verify cafile crossaccount""".split()
)
CLIENT_ONLY_PREFIXES = ("x-",)

# word -> (word the kernel shows, shown?) for flags the kernel prints only when set
_FLAGS: dict[str, tuple[str, bool]] = {}
for _shown, _negation in (
    ("soft", None), ("softerr", None), ("softreval", "nosoftreval"), ("posix", "noposix"),
    ("nocto", "cto"), ("noac", "ac"), ("nolock", "lock"), ("noacl", "acl"), ("nordirplus", "rdirplus"),
    ("nosharecache", "sharecache"), ("noresvport", "resvport"), ("fsc", "nofsc"),
    ("migration", "nomigration"), ("sync", "async"), ("dirsync", None), ("lazytime", "nolazytime"),
    ("ro", "rw"), ("nosuid", "suid"), ("nodev", "dev"), ("noexec", "exec"), ("noatime", "atime"),
    ("nodiratime", "diratime"), ("strictatime", "nostrictatime"), ("relatime", "norelatime"),
    ("nosymfollow", "symfollow"), ("mand", "nomand"),
):
    _FLAGS[_shown] = (_shown, True)
    if _negation:
        _FLAGS[_negation] = (_shown, False)

_PROTO_WORDS = {"tcp": "tcp", "udp": "udp", "rdma": "rdma"}
_VERSION_WORDS = {"v2": "2", "v3": "3", "v4": "4", "v4.0": "4.0", "v4.1": "4.1", "v4.2": "4.2"}
# shown only when different from the kernel default (NFS_DEF_AC*), in seconds
_AC_DEFAULTS = {"acregmin": "3", "acregmax": "60", "acdirmin": "30", "acdirmax": "60"}
# shown only when not the default value
_HIDDEN_DEFAULT = {"write": "lazy", "xprtsec": "none"}
_LOOKUPCACHE = {"all": None, "positive": "pos", "pos": "pos", "none": "none"}
_CAPPED = ("rsize", "wsize")
# one transport per server and version: a second mount shows the first one's values
SHARED_WITH_SERVER = frozenset({"timeo", "retrans", "nconnect", "max_connect", "noresvport"})
# per-mount (VFS) flags: never shared through a superblock
_VFS_FLAGS = frozenset({"ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "strictatime", "relatime", "nosymfollow"})
NFS_PORT = "2049"


def split_options(options: object, field_name: str = "opts") -> list[str]:
    """Accept ``"a,b=c"`` or ``["a", "b=c"]``; every word is checked, empty words dropped."""
    if options is None:
        return []
    if isinstance(options, str):
        words = options.split(",")
    elif isinstance(options, (list, tuple)):
        words = []
        for index, word in enumerate(options):
            if not isinstance(word, str):
                raise InvalidInput(f"{field_name}[{index}]", word, "is not a string; an option is a word like 'vers=4.2'")
            if "," in word:
                words.extend(word.split(","))
            else:
                words.append(word)
    else:
        raise InvalidInput(field_name, options, "must be a comma-separated string or a list of option words")
    out = []
    for index, word in enumerate(words):
        if word == "":
            continue
        check_token(word, f"{field_name}[{index}]", "a mount option (no whitespace, '#', quotes or backslashes)")
        out.append(word)
    return out


def is_client_only(word: str, hidden: Iterable[str] = ()) -> bool:
    key = word.partition("=")[0]
    return key in CLIENT_ONLY or key.startswith(CLIENT_ONLY_PREFIXES) or word in hidden or key in hidden


def wanted_version(words: Sequence[str], fstype: str) -> Optional[str]:
    """The NFS version the words ask for, as the kernel spells it (``4.2``), ``4`` for "any 4.x"
    or None for "whatever the server negotiates"."""
    version: Optional[str] = None
    minor: Optional[str] = None
    for word in words:
        key, _, value = word.partition("=")
        if key in ("vers", "nfsvers"):
            version = value
        elif key in _VERSION_WORDS and not value:
            version = _VERSION_WORDS[key]
        elif key == "minorversion":
            minor = value
    if version is None and fstype == "nfs4":
        version = "4"
    if version is None and fstype == "efs":
        version = "4.1"  # the EFS helper adds nfsvers=4.1
    if version == "4" and minor is not None:
        version = f"4.{minor}"
    return version


def version_matches(wanted: Optional[str], actual: Optional[str]) -> bool:
    if wanted is None:
        return True
    if actual is None:
        return False
    if wanted == "4":
        return actual == "4" or actual.startswith("4.")
    return wanted == actual


def _proto_family(value: str) -> str:
    return value[:-1] if value in ("tcp6", "udp6") else value


@dataclass(frozen=True)
class Difference:
    """One requested option not in effect: what was asked, what the kernel shows (None: absent)."""

    option: str
    wanted: str
    actual: Optional[str]
    shared_with: tuple[str, ...] = ()

    def describe(self) -> str:
        shown = self.actual if self.actual is not None else "(not set)"
        text = f"{self.wanted} wanted, {shown} in effect"
        if self.shared_with:
            text += f" (shared with {', '.join(self.shared_with)} from the same server; it cannot change while they stay mounted)"
        return text


@dataclass
class Comparison:
    """The verdict for one mount. ``equal`` means no umount + mount is needed for the options."""

    differences: list[Difference] = field(default_factory=list)
    shared: list[Difference] = field(default_factory=list)
    capped: list[Difference] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences

    def notes(self) -> list[str]:
        out = [d.describe() for d in self.shared]
        out += [f"{d.wanted} wanted, {d.actual} in effect (the server or kernel may lower it; not a change)" for d in self.capped]
        return out


class _Actual:
    """The options the kernel shows for one mount, as flags and values."""

    def __init__(self, entry: MountEntry):
        self.flags: set[str] = set()
        self.values: dict[str, str] = {}
        for word in entry.options:
            key, sep, value = word.partition("=")
            if sep:
                self.values[key] = value
            else:
                self.flags.add(key)

    def show(self, key: str) -> Optional[str]:
        if key in self.values:
            return f"{key}={self.values[key]}"
        return key if key in self.flags else None


def _expectations(words: Sequence[str], fstype: str, hidden: Iterable[str]) -> tuple[dict, list[str]]:
    """Fold the words into ``{key: (kind, source word, value)}``, later words winning as for mount(8)."""
    hidden = tuple(hidden)
    expect: dict[str, tuple[str, str, object]] = {}
    ignored: list[str] = []
    tls = "tls" in words
    for word in words:
        key, sep, value = word.partition("=")
        if is_client_only(word, hidden):
            ignored.append(word)
        elif key in ("vers", "nfsvers", "minorversion") or (key in _VERSION_WORDS and not sep):
            expect["vers"] = ("vers", word, None)
        elif key in _PROTO_WORDS and not sep:
            expect["proto"] = ("proto", word, _PROTO_WORDS[key])
        elif key in ("proto", "mountproto") and sep:
            expect[key] = ("proto", word, value)
        elif key == "hard" and not sep:
            expect["soft"] = ("hard", word, None)
            expect.pop("softerr", None)
        elif key in ("soft", "softerr") and not sep:
            expect.pop("soft" if key == "softerr" else "softerr", None)
            expect["soft"] = ("flag", word, (key, True))
        elif key in _FLAGS and not sep:
            shown, present = _FLAGS[key]
            expect[shown] = ("flag", word, (shown, present))
            if key == "noac":
                for ac in _AC_DEFAULTS:  # noac makes the kernel show every ac* as 0
                    expect.pop(ac, None)
        elif key == "actimeo" and sep:
            for ac in _AC_DEFAULTS:
                expect[ac] = ("default", word, (ac, value, _AC_DEFAULTS[ac]))
        elif key in _AC_DEFAULTS and sep:
            expect[key] = ("default", word, (key, value, _AC_DEFAULTS[key]))
        elif key in _HIDDEN_DEFAULT and sep:
            expect[key] = ("default", word, (key, value, _HIDDEN_DEFAULT[key]))
        elif key == "lookupcache" and sep:
            if value not in _LOOKUPCACHE:
                raise InvalidInput("opts", word, "is not a lookupcache mode; use all, positive (pos) or none")
            expect[key] = ("default", word, (key, _LOOKUPCACHE[value], None))
        elif key in _CAPPED and value.isdigit():
            expect[key] = ("capped", word, value)
        elif key == "sec" and sep:
            expect[key] = ("oneof", word, tuple(value.split(":")))
        elif key == "port" and sep:
            if not tls:  # behind the EFS TLS tunnel the kernel shows the tunnel's local port
                expect[key] = ("port", word, value)
        else:
            expect[key] = ("exact", word, value if sep else None)
    return expect, ignored


def normalise(words: Sequence[str], fstype: str = "nfs", hidden: Iterable[str] = ()) -> list[str]:
    """The words as the kernel would spell what they ask for (for display and tests).

    ``["nfsvers=4", "minorversion=1", "tcp", "async", "noauto"]`` -> ``["vers=4.1", "proto=tcp"]``.
    """
    expect, _ = _expectations(words, fstype, hidden)
    out = []
    for key, (kind, word, value) in expect.items():
        if kind == "vers":
            version = wanted_version(words, fstype)
            out.append(f"vers={version}")
        elif kind == "proto":
            out.append(f"{key}={value}")
        elif kind == "hard":
            out.append("hard")
        elif kind == "flag":
            shown, present = value
            if present:
                out.append(shown)
        elif kind == "default":
            name, val, default = value
            if val != default and val is not None:
                out.append(f"{name}={val}")
        else:
            out.append(word)
    return out


def compare(
    words: Sequence[str],
    fstype: str,
    entry: MountEntry,
    others: Iterable[MountEntry] = (),
    hidden: Iterable[str] = (),
) -> Comparison:
    """Compare requested option words with a mounted entry (see the module docstring)."""
    expect, ignored = _expectations(words, fstype, hidden)
    actual = _Actual(entry)
    result = Comparison(ignored=ignored)
    version = entry.option_value("vers")
    for key, (kind, word, value) in expect.items():
        difference = _check(kind, key, word, value, actual, version, words, fstype)
        if difference is None:
            continue
        shown = actual.values.get(key, "")
        if kind == "capped" and shown.isdigit() and int(shown) < int(value):
            # the server (and the kernel's rounding) may only lower rsize/wsize: noted, not a change
            result.capped.append(difference)
            continue
        sharing = _sharing(key, entry, others)
        if sharing:
            result.shared.append(Difference(difference.option, difference.wanted, difference.actual, sharing))
        else:
            result.differences.append(difference)
    return result


def _check(kind, key, word, value, actual: _Actual, version, words, fstype) -> Optional[Difference]:
    if kind == "vers":
        want = wanted_version(words, fstype)
        if version_matches(want, version):
            return None
        return Difference("vers", f"vers={want}", actual.show("vers"))
    if kind == "proto":
        shown = actual.values.get(key)
        if shown is not None and _proto_family(shown) == _proto_family(value):
            return None
        return Difference(key, word, actual.show(key))
    if kind == "hard":
        if "soft" in actual.flags or "softerr" in actual.flags:
            return Difference("soft", word, "soft" if "soft" in actual.flags else "softerr")
        return None
    if kind == "flag":
        shown, present = value
        if (shown in actual.flags) == present:
            return None
        return Difference(shown, word, shown if shown in actual.flags else None)
    if kind == "default":
        name, val, default = value
        shown = actual.values.get(name)
        if val == default or val is None:
            ok = shown is None or shown == default
        else:
            ok = shown == val
        return None if ok else Difference(name, word, actual.show(name))
    if kind == "capped":
        # the server (and the kernel's rounding) may only lower rsize/wsize: lower is noted, not a change
        return None if actual.values.get(key) == value else Difference(key, word, actual.show(key))
    if kind == "oneof":
        return None if actual.values.get(key) in value else Difference(key, word, actual.show(key))
    if kind == "port":
        shown = actual.values.get("port")
        v4 = version is not None and version.startswith("4")
        hidden_default = "0" if not v4 else NFS_PORT  # the kernel omits port= at its default
        if value in (hidden_default, "0"):
            ok = shown is None or shown == value
        else:
            ok = shown == value
        return None if ok else Difference("port", word, actual.show("port"))
    # exact: a flag shown as itself, or key=value shown verbatim
    if value is None:
        return None if key in actual.flags else Difference(key, word, None)
    return None if actual.values.get(key) == value else Difference(key, word, actual.show(key))


def _server_of(entry: MountEntry) -> str:
    return entry.option_value("addr") or split_device(entry.source)[0]


def _sharing(key: str, entry: MountEntry, others: Iterable[MountEntry]) -> tuple[str, ...]:
    """Mount points whose presence pins ``key`` to its current value, if any."""
    names = []
    for other in others:
        if other.mount_point == entry.mount_point or not other.is_nfs:
            continue
        same_superblock = other.device_id == entry.device_id and key not in _VFS_FLAGS
        same_transport = (
            key in SHARED_WITH_SERVER
            and other.fstype == entry.fstype
            and other.option_value("vers") == entry.option_value("vers")
            and _server_of(other) == _server_of(entry)
        )
        if same_superblock or same_transport:
            names.append(other.mount_point)
    return tuple(names)


# ---- devices and file system types ---------------------------------------------------------

NFS_FSTYPES = ("nfs", "nfs4", "efs")
_EFS_ID = re.compile(r"fs-[0-9a-f]{8,17}")
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")
_DEVICE_PATH = re.compile(r"/[^\s#\x00'\"\\]*")


def split_device(device: str) -> tuple[str, str]:
    """``server:/path`` -> ``("server", "/path")``; IPv6 servers come in brackets."""
    if device.startswith("["):
        host, _, rest = device[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else rest
    host, _, path = device.partition(":")
    return host, path


def _canonical_path(path: str) -> str:
    path = re.sub(r"/{2,}", "/", path or "/")
    return path.rstrip("/") or "/"


def canonical_device(device: str) -> str:
    """The spelling the kernel keeps for a device: no trailing ``/``, no ``//``, host lower-case
    (``nfs1:/srv/data/`` -> ``nfs1:/srv/data``; an EFS ``fs-12345678`` -> ``fs-12345678:/``)."""
    host, path = split_device(device)
    host = host.lower()
    shown_host = f"[{host}]" if ":" in host else host
    return f"{shown_host}:{_canonical_path(path)}"


def check_device(device: object, fstype: str, field: str = "device") -> str:
    """Validate an NFS source (``server:/path``, ``[v6]:/path``, EFS ``fs-id[:/path]``)."""
    if not isinstance(device, str) or device == "":
        raise InvalidInput(field, device, "is missing; give the NFS source as server:/path")
    for char in device:
        if char.isspace() or char in "#\x00'\"\\" or ord(char) < 32:
            what = "whitespace" if char.isspace() else repr(char)
            raise InvalidInput(field, device, f"contains {what}; a source is server:/path")
    if fstype == "efs" and _EFS_ID.fullmatch(device.split(":", 1)[0]):
        if ":" in device and not _DEVICE_PATH.fullmatch(device.split(":", 1)[1]):
            raise InvalidInput(field, device, "has a path that is not absolute; EFS sources are fs-id:/path")
        return device
    if not device.startswith("[") and device.split("/", 1)[0].count(":") > 1:
        raise InvalidInput(field, device, "looks like an IPv6 server without brackets; write [fd00::2]:/path")
    host, path = split_device(device)
    if ":" not in device or not path:
        raise InvalidInput(field, device, "is not server:/path (the path part is missing)")
    if not _DEVICE_PATH.fullmatch(path):
        raise InvalidInput(field, device, "has a path that is not absolute; a source is server:/path")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or not _HOST.fullmatch(host) or ".." in host:
            raise InvalidInput(field, device, "has a server that is not a host name or IP address (IPv6 goes in [brackets])") from None
    return device


def device_matches(device: str, fstype: str, words: Sequence[str], entry: MountEntry) -> bool:
    """Does the mounted source stand for the requested one?

    Compared canonically (trailing ``/``); an IP literal also matches the kernel's ``addr=``. EFS
    ``fs-id:/`` matches the helper's DNS name ``fs-id.efs.<region>.amazonaws.com:/``, its
    ``mounttargetip=``, or, with ``tls``, the local tunnel ``127.0.0.1:/`` (aws/efs-utils#73).
    """
    actual_host, actual_path = split_device(entry.source)
    actual_host, actual_path = actual_host.lower(), _canonical_path(actual_path)
    host, path = split_device(device if ":" in device or fstype != "efs" else device + ":/")
    host, path = host.lower(), _canonical_path(path)
    if path != actual_path:
        return False
    if host == actual_host:
        return True
    if entry.option_value("addr") == host:
        return True
    if fstype == "efs" or _EFS_ID.fullmatch(host):
        if actual_host.startswith(host + ".efs."):
            return True
        options = dict(word.partition("=")[::2] for word in words)
        if "mounttargetip" in options and options["mounttargetip"] == actual_host:
            return True
        return "tls" in words and actual_host in ("127.0.0.1", "localhost")
    return False


def fstype_matches(fstype: str, version: Optional[str], actual_fstype: str) -> bool:
    """``nfs`` with a v4 version shows as ``nfs4``; ``efs`` mounts are ``nfs4``."""
    if fstype in ("nfs4", "efs"):
        return actual_fstype == "nfs4"
    if version is None:
        return actual_fstype in ("nfs", "nfs4")
    return actual_fstype == ("nfs4" if version.startswith("4") else "nfs")
