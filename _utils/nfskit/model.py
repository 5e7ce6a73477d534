"""The export data model: structured client rules, modelled on ONTAP export-policy rules.

A :class:`ClientRule` is what one client spec gets on one export. Defaults are folded in, so two
rules that mean the same thing compare equal whatever order or spelling their options came in
(``rw,sync,no_subtree_check`` == ``no_subtree_check,rw`` and ``no_auth_nlm`` == ``insecure_locks``).
Backends render rules into their own syntax (exports(5), ganesha CLIENT blocks).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from nfskit.errors import InvalidInput
from nfskit.validation import check_anon_id, check_host, check_path, check_token, is_world

ACCESS = ("rw", "ro")
SQUASH = ("root", "all", "none")
SEC_FLAVORS = ("sys", "krb5", "krb5i", "krb5p", "none")

# Each exports(5) flag belongs to a group; within a group the last word wins and two different
# words in one option list conflict. ``None`` marks the default of its group, which is dropped
# when rules are compared.
_FLAG_GROUPS: dict[str, tuple[str, str]] = {
    "rw": ("access", "rw"),
    "ro": ("access", "ro"),
    "sync": ("sync", "sync"),
    "async": ("sync", "async"),
    "secure": ("secure", "secure"),
    "insecure": ("secure", "insecure"),
    "root_squash": ("root_squash", "root_squash"),
    "no_root_squash": ("root_squash", "no_root_squash"),
    "all_squash": ("all_squash", "all_squash"),
    "no_all_squash": ("all_squash", "no_all_squash"),
    "wdelay": ("wdelay", "wdelay"),
    "no_wdelay": ("wdelay", "no_wdelay"),
    "hide": ("hide", "hide"),
    "nohide": ("hide", "nohide"),
    "subtree_check": ("subtree", "subtree_check"),
    "no_subtree_check": ("subtree", "no_subtree_check"),
    "secure_locks": ("locks", "secure_locks"),
    "auth_nlm": ("locks", "secure_locks"),
    "insecure_locks": ("locks", "insecure_locks"),
    "no_auth_nlm": ("locks", "insecure_locks"),
    "acl": ("acl", "acl"),
    "no_acl": ("acl", "no_acl"),
    "pnfs": ("pnfs", "pnfs"),
    "no_pnfs": ("pnfs", "no_pnfs"),
    "crossmnt": ("crossmnt", "crossmnt"),
    "nocrossmnt": ("crossmnt", "nocrossmnt"),
    "security_label": ("security_label", "security_label"),
    "nordirplus": ("rdirplus", "nordirplus"),
    "rdirplus": ("rdirplus", "rdirplus"),
    "mountpoint": ("mountpoint", "mountpoint"),
    "mp": ("mountpoint", "mountpoint"),
}
_DEFAULTS = {
    "access": "ro",
    "sync": "sync",
    "secure": "secure",
    "root_squash": "root_squash",
    "all_squash": "no_all_squash",
    "wdelay": "wdelay",
    "hide": "hide",
    "subtree": "no_subtree_check",
    "locks": "secure_locks",
    "acl": "acl",
    "pnfs": "no_pnfs",
    "crossmnt": "nocrossmnt",
    "rdirplus": "rdirplus",
}
_VALUE_KEYS = ("sec", "anonuid", "anongid", "fsid", "mountpoint", "mp", "refer", "replicas", "xprtsec")
_VALUE_GROUP = {"mp": "mountpoint"}
# Groups the rule holds in its own typed fields rather than in ``options``.
_STRUCTURED = {"access", "root_squash", "all_squash", "sec", "anonuid", "anongid"}


@dataclass(frozen=True)
class ClientRule:
    """What one client spec may do on one export.

    ``options`` holds the canonical spelling of every option that is not a default and not one of
    the typed fields, e.g. ``{"async", "insecure", "fsid=0"}``.
    """

    host: str
    access: str = "ro"
    squash: str = "root"
    sec: tuple[str, ...] = ("sys",)
    anonuid: Optional[int] = None
    anongid: Optional[int] = None
    options: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_world(self) -> bool:
        return is_world(self.host)

    def to_options(self) -> list[str]:
        """Render the rule as an explicit exports(5) option list in a stable order.

        ``sync``/``async`` and the subtree check are always written, because ``exportfs`` warns
        when either is left to its default.
        """
        out = [self.access, "async" if "async" in self.options else "sync"]
        out.append("subtree_check" if "subtree_check" in self.options else "no_subtree_check")
        out += {"root": ["root_squash"], "all": ["all_squash"], "none": ["no_root_squash"]}[self.squash]
        if self.sec != ("sys",):
            out.append("sec=" + ":".join(self.sec))
        if self.anonuid is not None:
            out.append(f"anonuid={self.anonuid}")
        if self.anongid is not None:
            out.append(f"anongid={self.anongid}")
        out += sorted(self.options - {"async", "subtree_check"})
        return out

    def describe(self) -> str:
        """exports(5) form of the rule, for diffs and comments."""
        return f"{self.host}({','.join(self.to_options())})"


@dataclass(frozen=True)
class Export:
    """One exported path and its ordered client rules.

    ``pseudo`` is the NFSv4 pseudo path (ganesha; defaults to ``path``).
    """

    path: str
    rules: tuple[ClientRule, ...]
    pseudo: Optional[str] = None

    @property
    def pseudo_path(self) -> str:
        return self.pseudo or self.path

    def describe(self) -> str:
        return " ".join([self.path] + [rule.describe() for rule in self.rules])


def _split_options(options: object, field_name: str) -> list[str]:
    """Accept a list of option words or one comma-separated string."""
    if options is None:
        return []
    if isinstance(options, str):
        words = [w for w in options.split(",")]
    elif isinstance(options, (list, tuple)):
        words = []
        for index, word in enumerate(options):
            if not isinstance(word, str):
                raise InvalidInput(f"{field_name}[{index}]", word, "is not a string; an option is a word like 'rw'")
            words.append(word)
    else:
        raise InvalidInput(field_name, options, "must be a list of option words or a comma-separated string")
    for index, word in enumerate(words):
        check_token(word.strip(), f"{field_name}[{index}]", "an option")
    return [w.strip() for w in words if w.strip()]


def _option_key(word: str) -> tuple[str, Optional[str]]:
    key, sep, value = word.partition("=")
    return key, (value if sep else None)


def merge_options(defaults: Iterable[str], client: Iterable[str]) -> list[str]:
    """Merge a line's ``-defaults`` with a client's options, the client winning per group.

    Words are kept as written; only the group of each word is used to decide who wins.
    """
    client = list(client)
    taken = {_group_of(word) for word in client}
    return [word for word in defaults if _group_of(word) not in taken] + client


def _group_of(word: str) -> str:
    key, _ = _option_key(word)
    if key in _FLAG_GROUPS:
        return _FLAG_GROUPS[key][0]
    return _VALUE_GROUP.get(key, key)


def rule_from_options(host: str, options: object, field_name: str = "options", host_field: str = "hosts") -> ClientRule:
    """Build a :class:`ClientRule` from a host spec and exports(5) option words.

    Raises :class:`InvalidInput` for unknown options, conflicting options (``rw`` with ``ro``),
    bad values, and bad host specs.
    """
    check_host(host, host_field)
    words = _split_options(options, field_name)
    chosen: dict[str, tuple[str, int]] = {}
    values: dict[str, str] = {}
    for index, word in enumerate(words):
        where = f"{field_name}[{index}]"
        key, value = _option_key(word)
        if key in _FLAG_GROUPS and value is None:
            group, canon = _FLAG_GROUPS[key]
            if group in chosen and chosen[group][0] != canon:
                other = words[chosen[group][1]]
                raise InvalidInput(where, word, f"conflicts with {other!r}; give only one of them")
            chosen[group] = (canon, index)
            continue
        if key in _VALUE_KEYS and value is not None:
            group = _VALUE_GROUP.get(key, key)
            if group in values and values[group] != value:
                raise InvalidInput(where, word, f"conflicts with an earlier {group}={values[group]!r}")
            values[group] = _check_value(group, value, where)
            continue
        raise InvalidInput(where, word, "is not an exports(5) option" + _hint(key, value))
    settings = {group: canon for group, (canon, _) in chosen.items()}
    return _rule_from_settings(host, settings, values, field_name)


def _hint(key: str, value: Optional[str]) -> str:
    if key in _VALUE_KEYS and value is None:
        return f"; {key} needs a value ({key}=...)"
    if key in _FLAG_GROUPS:
        return f"; {key} takes no value"
    return "; known options: " + ", ".join(sorted(set(_FLAG_GROUPS) | {k + "=" for k in _VALUE_KEYS}))


def _check_value(group: str, value: str, where: str) -> str:
    if group == "sec":
        flavors = value.split(":")
        for flavor in flavors:
            if flavor not in SEC_FLAVORS:
                raise InvalidInput(where, "sec=" + value, f"has unknown flavor {flavor!r}; allowed: {', '.join(SEC_FLAVORS)}")
        if len(set(flavors)) != len(flavors):
            raise InvalidInput(where, "sec=" + value, "repeats a flavor")
        return value
    if group in ("anonuid", "anongid"):
        try:
            return str(check_anon_id(value, where, group))
        except InvalidInput as exc:
            raise InvalidInput(where, f"{group}={value}", exc.problem) from None
    if group == "fsid":
        if not re.fullmatch(r"root|[0-9]{1,10}|[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}|[0-9a-fA-F]{1,32}", value):
            raise InvalidInput(where, "fsid=" + value, "must be a number, 'root' or a UUID")
        return value
    if group == "mountpoint":
        check_path(value, where)
        return value
    if group == "xprtsec":
        for mode in value.split(":"):
            if mode not in ("none", "tls", "mtls"):
                raise InvalidInput(where, "xprtsec=" + value, "allows only none, tls and mtls")
        return value
    check_token(value, where, f"a {group} value")  # refer=, replicas=
    return value


def _rule_from_settings(host: str, settings: dict[str, str], values: dict[str, str], field_name: str) -> ClientRule:
    if settings.get("all_squash") == "all_squash":
        squash = "all"
    elif settings.get("root_squash") == "no_root_squash":
        squash = "none"
    else:
        squash = "root"
    extra = set()
    for group, canon in settings.items():
        if group in _STRUCTURED or _DEFAULTS.get(group) == canon:
            continue
        extra.add(canon)
    for group, value in values.items():
        if group in _STRUCTURED:
            continue
        extra.add(f"{group}={value}")
    if "mountpoint" in extra and any(o.startswith("mountpoint=") for o in extra):
        raise InvalidInput(field_name, sorted(extra), "gives mountpoint twice")
    return ClientRule(
        host=host,
        access=settings.get("access", "ro"),
        squash=squash,
        sec=tuple(values["sec"].split(":")) if "sec" in values else ("sys",),
        anonuid=int(values["anonuid"]) if "anonuid" in values else None,
        anongid=int(values["anongid"]) if "anongid" in values else None,
        options=frozenset(extra),
    )


def check_safety(rule: ClientRule, allow_unsafe: bool, field_name: str) -> None:
    """Refuse options that weaken security unless the caller opted in with ``allow_unsafe``."""
    if allow_unsafe:
        return
    if rule.squash == "none":
        raise InvalidInput(field_name, rule.describe(), "disables root squashing (no_root_squash); pass allow_unsafe=True to allow it")
    if "insecure" in rule.options:
        raise InvalidInput(field_name, rule.describe(), "accepts unprivileged source ports (insecure); pass allow_unsafe=True to allow it")
    if rule.is_world and rule.access == "rw":
        raise InvalidInput(field_name, rule.describe(), "gives every host write access; pass allow_unsafe=True to allow it")
