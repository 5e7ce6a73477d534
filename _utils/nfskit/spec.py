"""Turn user input (state arguments, pillar data, runner calls) into typed :class:`Export` objects.

Validation happens here, once, at the edge. Accepted shapes, so users of Salt's core
``nfs_export.present`` can switch by renaming the state:

- ``hosts`` + ``options`` (core shorthand); ``hosts`` may also be a list;
- ``clients: [{hosts: ..., options: [...]}, ...]`` (core form);
- ``clients: [{clients|hosts|host: ..., access: rw, squash: root, sec: [sys], anonuid: N,
  anongid: N, options: [...]}, ...]`` (structured form; ``options`` carries anything else).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from nfskit.errors import InvalidInput
from nfskit.model import ACCESS, SEC_FLAVORS, SQUASH, ClientRule, Export, check_safety, rule_from_options
from nfskit.validation import check_anon_id, check_path

_RULE_KEYS = {"clients", "hosts", "host", "access", "squash", "sec", "anonuid", "anongid", "options"}
_STRUCTURED_KEYS = frozenset({"access", "squash", "sec", "anonuid", "anongid"})
MAX_RULES = 1000


def export_from_args(
    path: object,
    clients: object = None,
    hosts: object = None,
    options: object = None,
    pseudo: object = None,
    allow_unsafe: bool = False,
    field: str = "",
    rule_memo: dict | None = None,
) -> Export:
    """Validate one export given as state/module arguments and return it.

    ``rule_memo`` (a dict the caller keeps for one batch) remembers the rule built for each valid
    (host, options) pair: a server's export set repeats a few of them thousands of times.
    """
    prefix = f"{field}." if field else ""
    check_path(path, f"{prefix}path" if field else "name")
    if clients is not None and hosts is not None:
        raise InvalidInput(f"{prefix}hosts", hosts, "cannot be combined with clients; give one of them")
    if clients is None and hosts is None:
        raise InvalidInput(f"{prefix}clients", None, "is missing; give clients (a list of rules) or hosts")
    if hosts is not None:
        entries: list[Any] = [{"hosts": hosts, "options": options}]
        where = f"{prefix}hosts"
        single = True
    else:
        if options is not None:
            raise InvalidInput(f"{prefix}options", options, "belongs inside each clients entry when clients is given")
        if not isinstance(clients, (list, tuple)) or not clients:
            raise InvalidInput(f"{prefix}clients", clients, "must be a non-empty list of client rules")
        if len(clients) > MAX_RULES:
            raise InvalidInput(f"{prefix}clients", f"<{len(clients)} rules>", f"has more than {MAX_RULES} rules")
        entries = list(clients)
        where = f"{prefix}clients"
        single = False
    rules: list[ClientRule] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries):
        entry_field = where if single else f"{where}[{index}]"
        options_field = f"{prefix}options" if single else f"{entry_field}.options"
        for rule, host_field in _rules_from_entry(entry, entry_field, single, options_field, rule_memo):
            if rule.host in seen:
                raise InvalidInput(host_field, rule.host, f"is already given in {seen[rule.host]}; one rule per client")
            seen[rule.host] = host_field
            check_safety(rule, allow_unsafe, host_field)
            rules.append(rule)
    if pseudo is not None:
        check_path(pseudo, f"{prefix}pseudo")
    return Export(path=path, rules=tuple(rules), pseudo=pseudo)  # type: ignore[arg-type]


def export_from_data(
    path: object, data: object, allow_unsafe: bool = False, field: str = "", rule_memo: dict | None = None
) -> Export:
    """Validate one export given as a mapping (pillar / ``managed`` entries)."""
    if not isinstance(data, Mapping):
        raise InvalidInput(field or str(path), data, "must be a mapping with clients (or hosts and options)")
    unknown = set(data) - {"clients", "hosts", "options", "pseudo", "path"}
    if unknown:
        name = sorted(map(str, unknown))[0]
        raise InvalidInput(f"{field}.{name}" if field else name, data[name], "is not a known export field (clients, hosts, options, pseudo)")
    return export_from_args(
        data.get("path", path),
        clients=data.get("clients"),
        hosts=data.get("hosts"),
        options=data.get("options"),
        pseudo=data.get("pseudo"),
        allow_unsafe=allow_unsafe,
        field=field,
        rule_memo=rule_memo,
    )


def _memo_key(host: object, options: object) -> tuple | None:
    """A hashable key for a (host, options) pair, or None when the pair cannot be remembered."""
    if not isinstance(host, str):
        return None
    if options is None or isinstance(options, str):
        return (host, options)
    if isinstance(options, (list, tuple)) and all(isinstance(word, str) for word in options):
        return (host, tuple(options))
    return None


def _rules_from_entry(
    entry: object, field: str, shorthand: bool, options_field: str, rule_memo: dict | None = None
) -> list[tuple[ClientRule, str]]:
    if not isinstance(entry, Mapping):
        raise InvalidInput(field, entry, "must be a mapping like {hosts: 10.0.0.0/24, access: rw}")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        name = sorted(map(str, unknown))[0]
        raise InvalidInput(f"{field}.{name}", entry[name], "is not a known rule field (" + ", ".join(sorted(_RULE_KEYS)) + ")")
    names = [k for k in ("clients", "hosts", "host") if k in entry]
    if len(names) != 1:
        raise InvalidInput(field, dict(entry), "needs exactly one of clients, hosts or host")
    host_key = names[0]
    host_field = field if shorthand else f"{field}.{host_key}"
    hosts = entry[host_key]
    host_list = hosts if isinstance(hosts, (list, tuple)) else [hosts]
    if not host_list:
        raise InvalidInput(host_field, hosts, "is an empty list")
    results = []
    for position, host in enumerate(host_list):
        this_field = host_field if not isinstance(hosts, (list, tuple)) else f"{host_field}[{position}]"
        options = entry.get("options")
        key = _memo_key(host, options) if rule_memo is not None else None
        rule = rule_memo.get(key) if key is not None else None
        if rule is None:
            rule = rule_from_options(host, options, options_field, this_field)
            if key is not None:
                rule_memo[key] = rule
        rule = _apply_structured(rule, entry, field, entry.get("options"))
        results.append((rule, this_field))
    return results


def _apply_structured(rule: ClientRule, entry: Mapping, field: str, options: object) -> ClientRule:
    """Overlay access/squash/sec/anonuid/anongid keys; they must agree with the same words in options."""
    if not _STRUCTURED_KEYS.intersection(entry):
        return rule
    given_words = options if isinstance(options, (list, tuple)) else (options or "").split(",") if isinstance(options, str) else []
    words = {w.strip().partition("=")[0] for w in given_words if isinstance(w, str)}
    changes: dict[str, Any] = {}
    if "access" in entry:
        access = entry["access"]
        if access not in ACCESS:
            raise InvalidInput(f"{field}.access", access, "must be rw or ro")
        if words & set(ACCESS) and rule.access != access:
            raise InvalidInput(f"{field}.access", access, f"conflicts with {rule.access!r} in options")
        changes["access"] = access
    if "squash" in entry:
        squash = entry["squash"]
        if squash not in SQUASH:
            raise InvalidInput(f"{field}.squash", squash, "must be root, all or none")
        if words & {"root_squash", "no_root_squash", "all_squash", "no_all_squash"} and rule.squash != squash:
            raise InvalidInput(f"{field}.squash", squash, f"conflicts with squash {rule.squash!r} given in options")
        changes["squash"] = squash
    if "sec" in entry:
        sec = entry["sec"]
        sec_list = [sec] if isinstance(sec, str) else sec
        if not isinstance(sec_list, (list, tuple)) or not sec_list or any(s not in SEC_FLAVORS for s in sec_list):
            raise InvalidInput(f"{field}.sec", sec, "must be a list of flavors from " + ", ".join(SEC_FLAVORS))
        if len(set(sec_list)) != len(sec_list):
            raise InvalidInput(f"{field}.sec", sec, "repeats a flavor")
        if "sec" in words and tuple(sec_list) != rule.sec:
            raise InvalidInput(f"{field}.sec", sec, "conflicts with sec= in options")
        changes["sec"] = tuple(sec_list)
    for key in ("anonuid", "anongid"):
        if key in entry:
            number = check_anon_id(entry[key], f"{field}.{key}", key)
            if key in words and getattr(rule, key) != number:
                raise InvalidInput(f"{field}.{key}", entry[key], f"conflicts with {key}= in options")
            changes[key] = number
    return replace(rule, **changes) if changes else rule


def exports_from_managed(data: object, allow_unsafe: bool = False, field: str = "exports") -> dict[str, Export]:
    """Validate the export set of ``nfs_server.managed``: a mapping path -> export data, or a list
    of mappings that each carry ``path``. Returns exports keyed by path, in the given order."""
    result: dict[str, Export] = {}
    rule_memo: dict = {}
    if isinstance(data, Mapping):
        items = [(path, value, f"{field}[{path!r}]") for path, value in data.items()]
    elif isinstance(data, (list, tuple)):
        items = []
        for index, value in enumerate(data):
            if not isinstance(value, Mapping) or "path" not in value:
                raise InvalidInput(f"{field}[{index}]", value, "must be a mapping with a path")
            items.append((value["path"], value, f"{field}[{index}]"))
    elif data is None:
        items = []
    else:
        raise InvalidInput(field, data, "must be a mapping of path to export, or a list of exports")
    for path, value, item_field in items:
        export = export_from_data(path, value, allow_unsafe=allow_unsafe, field=item_field, rule_memo=rule_memo)
        if export.path in result:
            raise InvalidInput(item_field, export.path, "is given twice")
        result[export.path] = export
    return result

