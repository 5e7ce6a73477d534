"""Layout of the storage data repo: one small YAML file per export, per host and per hostgroup.

.. code-block:: text

    pillar/top.sls                          generated; maps a minion to its files (read by git_pillar)
    pillar/nfs/exports/<team>/<name>.sls    one export: nfs:server:exports:<path> + its record
    pillar/nfs/servers/<minion_key>.sls     a server: include of its exports, backend, allocations
    pillar/nfs/hosts/<xx>/<minion_key>.sls  a host's mounts: nfs:client:mounts:<mount point> (what
                                            nfs_client.managed takes) + nfs:selfservice:mounts (records)
    pillar/nfs/hostgroups/<group>.sls       a hostgroup's mounts, same shape
    pillar/nfs/hostgroups.json              generated: the hostgroup index (read by the nfs_selfservice
                                            ext_pillar; see nfskit.hostgroup_index)
    hiera/servers/<server>.yaml             nfs::server, nfs::exports     (treydock/puppet-nfs)
    hiera/nodes/<minion>.yaml               nfs::nfs_mounts
    hiera/hostgroups/<group>.yaml           nfs::nfs_mounts
    index/exports/<team>/<name>.yaml        runner bookkeeping: where an export is mounted (written as
                                            JSON, which is YAML too: it grows with the export's mounts
                                            and every mount request reads and rewrites it)

``<minion_key>`` is the minion id with ``.`` turned into ``_``, because Salt reads dots in an sls
name as directories; request validation refuses ``_`` in minion ids so two ids never share a key,
and the top file skips minions whose id has one (or a glob character: Salt reads an sls name in a
top file as a pattern, and a minion id may contain ``*``). ``<xx>`` is a shard (:func:`host_shard`). The hiera
side stays flat (``nodes/<fqdn>.yaml``) because hiera paths cannot compute a shard.

The top file does O(1) work per minion whatever the fleet size: it includes
``nfs.hosts.<xx>.<key>`` and ``nfs.servers.<key>`` for the minion being rendered with
``ignore_missing``, instead of listing every host. Only hostgroups need a match each (their
membership is a compound target evaluated against the minion), so the top file lists the
hostgroups that have mounts.

The hostgroup index holds the same hostgroups as the top file, with their targets, for the
``nfs_selfservice`` ext_pillar, which reads a minion's files directly instead of compiling the top
file (:mod:`nfskit.selfservice_pillar`). Both are regenerated together on every runner write.

Every pillar file starts with ``#!yaml``: Salt renders it as plain YAML, never as Jinja. Values are
dumped with ``safe_dump`` semantics, every string quoted and no anchors or aliases.

Reads and edits go through a :class:`Tree`: edits are collected in memory and written together,
so a change that fails half-way (quota, conflict) leaves no file behind.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import yaml

from nfskit import hostgroup_index
from nfskit.model import ClientRule

PILLAR_HEADER = "#!yaml\n# Managed by the nfs runner (salt-run nfs.*); changes here are overwritten.\n"
HIERA_HEADER = "# Managed by the nfs runner (salt-run nfs.*); changes here are overwritten.\n"
TOP = "pillar/top.sls"
HOSTGROUP_INDEX = "pillar/nfs/hostgroups.json"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """safe_dump with every string single-quoted and no anchors: nothing a reader could reinterpret."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'"))


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=True, allow_unicode=False, width=4096)


def dump_json(data: Mapping[str, Any]) -> str:
    """A mapping as JSON with one key, and one list item, per line (so diffs stay line by line).

    JSON is YAML for any reader, and :func:`load` parses it without PyYAML's Python-level
    constructor: a 200-mount index takes 13 ms as YAML, well under 1 ms as JSON. Each item goes
    through the C encoder (``json.dumps`` with ``indent`` is pure Python).
    """

    def value(v: Any) -> str:
        if isinstance(v, list) and v:
            return "[\n" + ",\n".join("  " + json.dumps(item, sort_keys=True) for item in v) + "\n ]"
        return json.dumps(v, sort_keys=True)

    return "{\n" + ",\n".join(f" {json.dumps(k)}: {value(data[k])}" for k in sorted(data)) + "\n}\n"


def load(text: str) -> Any:
    body = _after_comments(text)
    if body.startswith("{"):
        try:
            return json.loads(body)
        except ValueError:
            pass  # YAML flow style, not JSON
    return yaml.load(text, Loader=_Loader)


def _after_comments(text: str) -> str:
    start = 0
    while text.startswith("#", start):
        end = text.find("\n", start)
        if end < 0:
            return ""
        start = end + 1
    return text[start:]


def minion_key(minion_id: str) -> str:
    return minion_id.replace(".", "_")


def host_shard(minion_id: str) -> str:
    """Two hex digits of the id's SHA-256: 256 directories of host files instead of one huge one.

    A commit rewrites every git tree object on the path of the file it changes; with 10,000 hosts
    in one directory that is a 600 KB tree per request (written, pushed, unpacked, checked by the
    remote). The pillar top file computes the same digits with Salt's ``sha256`` Jinja filter.
    """
    return hashlib.sha256(minion_id.encode("utf-8")).hexdigest()[:2]


def export_key(team: str, name: str) -> str:
    """How records, allocations and mounts refer to an export."""
    return f"{team}/{name}"


def export_pillar(team: str, name: str) -> str:
    return f"pillar/nfs/exports/{team}/{name}.sls"


def export_sls(team: str, name: str) -> str:
    return f"nfs.exports.{team}.{name}"


def server_pillar(server: str) -> str:
    return f"pillar/nfs/servers/{minion_key(server)}.sls"


def target_pillar(kind: str, name: str) -> str:
    return f"pillar/nfs/hosts/{host_shard(name)}/{minion_key(name)}.sls" if kind == "host" else f"pillar/nfs/hostgroups/{name}.sls"


def target_hiera(kind: str, name: str) -> str:
    return f"hiera/nodes/{name}.yaml" if kind == "host" else f"hiera/hostgroups/{name}.yaml"


def server_hiera(server: str) -> str:
    return f"hiera/servers/{server}.yaml"


def export_index(team: str, name: str) -> str:
    return f"index/exports/{team}/{name}.yaml"


def render_top(hostgroups: Mapping[str, str]) -> str:
    """The pillar top file; ``hostgroups`` maps each hostgroup that has mounts to its compound target."""
    lines = [
        "{#- Generated by the nfs runner (salt-run nfs.*); changes here are overwritten.",
        "    Each minion reads only its own host and server files: no per-host entries here.",
        "    Hostgroups come first: Salt merges in top file order, so a host's own mount wins at a",
        "    mount point its hostgroup has too, as the node level does in hiera. #}",
        "base:",
    ]
    for group in sorted(hostgroups):
        lines += [f"  {dump(hostgroups[group]).strip().splitlines()[0]}:", "    - match: compound", "    - ignore_missing: True", f"    - nfs.hostgroups.{group}"]
    lines += [
        "{%- if '_' not in opts.id and '*' not in opts.id and '?' not in opts.id and '[' not in opts.id %}",
        "  '*':",
        "    - ignore_missing: True",
        "    - nfs.hosts.{{ (opts.id | sha256)[:2] }}.{{ opts.id | replace('.', '_') }}",
        "    - nfs.servers.{{ opts.id | replace('.', '_') }}",
        "{%- endif %}",
    ]
    return "\n".join(lines) + "\n"


def rule_to_pillar(rule: ClientRule) -> dict[str, Any]:
    """A client rule in the structured form ``nfs_server.managed`` reads back into the same rule."""
    data: dict[str, Any] = {"hosts": rule.host, "access": rule.access, "squash": rule.squash, "sec": list(rule.sec)}
    if rule.anonuid is not None:
        data["anonuid"] = rule.anonuid
    if rule.anongid is not None:
        data["anongid"] = rule.anongid
    if rule.options:
        data["options"] = sorted(rule.options)
    return data


def rule_to_hiera(rule: ClientRule, order: int) -> dict[str, Any]:
    """One entry of treydock/puppet-nfs ``nfs::exports``: ``{host, options, order}``."""
    return {"host": rule.host, "options": ",".join(rule.to_options()), "order": order}


class Tree:
    """A checkout of the data repo, read through pending edits."""

    def __init__(self, root: os.PathLike | str):
        self.root = Path(root)
        self.pending: dict[str, Optional[str]] = {}
        self._data: dict[str, Any] = {}

    # -- reading -------------------------------------------------------------------------------

    def read(self, rel: str) -> Any:
        """Parsed content of a file (None if absent), seeing this tree's pending edits."""
        if rel in self._data:
            return copy.deepcopy(self._data[rel])
        try:
            text = (self.root / rel).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return load(text)

    def exists(self, rel: str) -> bool:
        if rel in self.pending:
            return self.pending[rel] is not None
        return (self.root / rel).is_file()

    def listdir(self, rel: str, suffix: str) -> list[str]:
        """Names (without suffix) of the files in a directory, including pending ones."""
        prefix = rel.rstrip("/") + "/"
        try:
            names = {n[: -len(suffix)] for n in os.listdir(self.root / rel) if n.endswith(suffix)}
        except FileNotFoundError:
            names = set()
        for path, text in self.pending.items():
            if path.startswith(prefix) and path.endswith(suffix) and "/" not in path[len(prefix):]:
                name = path[len(prefix): -len(suffix)]
                (names.add if text is not None else names.discard)(name)
        return sorted(names)

    # -- editing -------------------------------------------------------------------------------

    def put(self, rel: str, data: Any, header: str, as_json: bool = False) -> None:
        self.pending[rel] = header + (dump_json(data) if as_json else dump(data))
        self._data[rel] = copy.deepcopy(data)

    def put_text(self, rel: str, text: str) -> None:
        self.pending[rel] = text
        self._data.pop(rel, None)

    def delete(self, rel: str) -> None:
        self.pending[rel] = None
        self._data[rel] = None

    def changed_paths(self) -> list[str]:
        """Pending edits that differ from the files on disk."""
        changed = []
        for rel, text in sorted(self.pending.items()):
            path = self.root / rel
            try:
                current = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                current = None
            if current != text:
                changed.append(rel)
        return changed

    def write(self) -> list[str]:
        """Write the pending edits; returns the paths that changed (for ``git add``)."""
        changed = self.changed_paths()
        for rel in changed:
            path = self.root / rel
            text = self.pending[rel]
            if text is None:
                path.unlink()
                _prune(path.parent, self.root)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        return changed


def _prune(directory: Path, root: Path) -> None:
    """Remove directories left empty (git does not keep them; neither should a checkout)."""
    while directory != root and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


# ---------------------------------------------------------------------------------------------
# exports


def export_record(tree: Tree, team: str, name: str) -> Optional[dict[str, Any]]:
    data = tree.read(export_pillar(team, name))
    if not data:
        return None
    return data["nfs"]["selfservice"]["exports"][export_key(team, name)]


def team_exports(tree: Tree, team: str) -> list[dict[str, Any]]:
    records = []
    for name in tree.listdir(f"pillar/nfs/exports/{team}", ".sls"):
        record = export_record(tree, team, name)
        if record:
            records.append(record)
    return records


def server_allocations(tree: Tree, server: str) -> dict[str, dict[str, Any]]:
    """``{export key: {size_gb, path}}`` of the exports on a server."""
    data = tree.read(server_pillar(server)) or {}
    return data.get("nfs", {}).get("selfservice", {}).get("allocations", {})


def put_export(tree: Tree, record: Mapping[str, Any], rules: Iterable[ClientRule], server_backend: Optional[str]) -> None:
    """Write an export: its pillar file, its server's include and allocation, and the Puppet side.

    ``server_backend`` is None for efs exports, which live in AWS and belong to no server minion.
    """
    rules = list(rules)
    team, name, path = record["team"], record["name"], record["path"]
    key = export_key(team, name)
    nfs: dict[str, Any] = {"selfservice": {"exports": {key: dict(record)}}}
    if server_backend is not None:
        nfs["server"] = {"exports": {path: {"clients": [rule_to_pillar(r) for r in rules]}}}
    tree.put(export_pillar(team, name), {"nfs": nfs}, PILLAR_HEADER)
    if server_backend is None:
        return
    server = record["server"]
    allocations = server_allocations(tree, server)
    allocations[key] = {"path": path, "size_gb": record["size_gb"]}
    _put_server(tree, server, server_backend, allocations)
    if not tree.exists(TOP):  # the server file is reached through the top file only
        update_top(tree, {})  # no top file means no hostgroup files yet
    if server_backend == "kernel":  # treydock/puppet-nfs manages kernel nfsd's /etc/exports
        hiera = tree.read(server_hiera(server)) or {"nfs::server": True, "nfs::exports": {}}
        hiera["nfs::exports"][path] = [rule_to_hiera(rule, order) for order, rule in enumerate(rules, 1)]
        tree.put(server_hiera(server), hiera, HIERA_HEADER)


def remove_export(tree: Tree, record: Mapping[str, Any], server_backend: Optional[str]) -> None:
    team, name = record["team"], record["name"]
    tree.delete(export_pillar(team, name))
    if tree.exists(export_index(team, name)):
        tree.delete(export_index(team, name))
    if server_backend is None:
        return
    server = record["server"]
    allocations = server_allocations(tree, server)
    allocations.pop(export_key(team, name), None)
    _put_server(tree, server, server_backend, allocations)
    hiera = tree.read(server_hiera(server))
    if hiera is not None:
        hiera["nfs::exports"].pop(record["path"], None)
        if hiera["nfs::exports"]:
            tree.put(server_hiera(server), hiera, HIERA_HEADER)
        else:
            tree.delete(server_hiera(server))


def _put_server(tree: Tree, server: str, backend: str, allocations: Mapping[str, Any]) -> None:
    if not allocations:
        tree.delete(server_pillar(server))
        return
    include = sorted(export_sls(*key.split("/")) for key in allocations)
    data = {
        "include": include,
        "nfs": {"server": {"backend": backend, "remove_unlisted": True}, "selfservice": {"allocations": dict(allocations)}},
    }
    tree.put(server_pillar(server), data, PILLAR_HEADER)


# ---------------------------------------------------------------------------------------------
# mounts


# A mount's pillar entry is split in two: ``nfs:client:mounts`` holds exactly what
# ``nfs_client.managed`` (salt/nfs/client.sls) takes, ``nfs:selfservice:mounts`` the runner's record.
_CLIENT_KEYS = ("device", "fstype", "owner", "group", "mode")


def mounts(tree: Tree, kind: str, name: str) -> dict[str, dict[str, Any]]:
    """``{mount point: entry}`` of a host or hostgroup: the record with the client settings."""
    nfs = (tree.read(target_pillar(kind, name)) or {}).get("nfs", {})
    client = nfs.get("client", {}).get("mounts", {})
    result = {}
    for mount_point, record in nfs.get("selfservice", {}).get("mounts", {}).items():
        entry = dict(record)
        settings = client.get(mount_point, {})
        entry.update({key: settings[key] for key in _CLIENT_KEYS if key in settings})
        entry["options"] = list(settings.get("opts", record.get("options", [])))
        result[mount_point] = entry
    return result


def _put_mounts(tree: Tree, kind: str, name: str, entries: Mapping[str, Mapping[str, Any]]) -> None:
    client: dict[str, Any] = {}
    records: dict[str, Any] = {}
    for mount_point, entry in entries.items():
        records[mount_point] = {key: value for key, value in entry.items() if key not in _CLIENT_KEYS and key != "options"}
        if entry.get("device") is None:  # not mountable yet (efs before provisioning): record only
            records[mount_point]["options"] = list(entry.get("options", []))
            continue
        settings = {key: entry[key] for key in _CLIENT_KEYS if key in entry}
        if entry.get("options"):
            settings["opts"] = list(entry["options"])
        client[mount_point] = settings
    tree.put(target_pillar(kind, name), {"nfs": {"client": {"mounts": client}, "selfservice": {"mounts": records}}}, PILLAR_HEADER)


def export_uses(tree: Tree, team: str, name: str) -> list[dict[str, str]]:
    """Where an export is mounted: ``[{kind, target, mount_point}]``."""
    data = tree.read(export_index(team, name)) or {}
    return data.get("mounts", [])


def put_mount(
    tree: Tree,
    kind: str,
    name: str,
    mount_point: str,
    entry: Mapping[str, Any],
    hiera_entry: Optional[Mapping[str, Any]],
    hostgroups: Mapping[str, str],
) -> None:
    """Add a mount to a host or hostgroup (pillar, hiera and the export's index).

    ``hiera_entry`` is None when Puppet cannot mount it (efs before provisioning); ``hostgroups``
    maps hostgroup names to compound targets, for the top file.
    """
    new_group = kind == "hostgroup" and not tree.exists(target_pillar(kind, name))
    current = mounts(tree, kind, name)
    current[mount_point] = dict(entry)
    _put_mounts(tree, kind, name, current)
    if hiera_entry is not None:
        hiera = tree.read(target_hiera(kind, name)) or {"nfs::nfs_mounts": {}}
        hiera["nfs::nfs_mounts"][mount_point] = dict(hiera_entry)
        tree.put(target_hiera(kind, name), hiera, HIERA_HEADER)
    team, export = entry["export"].split("/")
    uses = [u for u in export_uses(tree, team, export) if (u["kind"], u["target"], u["mount_point"]) != (kind, name, mount_point)]
    uses.append({"kind": kind, "target": name, "mount_point": mount_point})
    tree.put(export_index(team, export), {"mounts": sorted(uses, key=_use_key)}, HIERA_HEADER, as_json=True)
    if new_group or not tree.exists(TOP):
        update_top(tree, hostgroups)


def remove_mount(tree: Tree, kind: str, name: str, mount_point: str, hostgroups: Mapping[str, str]) -> None:
    current = mounts(tree, kind, name)
    entry = current.pop(mount_point)
    if current:
        _put_mounts(tree, kind, name, current)
    else:
        tree.delete(target_pillar(kind, name))
    hiera = tree.read(target_hiera(kind, name))
    if hiera is not None:
        hiera["nfs::nfs_mounts"].pop(mount_point, None)
        if hiera["nfs::nfs_mounts"]:
            tree.put(target_hiera(kind, name), hiera, HIERA_HEADER)
        else:
            tree.delete(target_hiera(kind, name))
    team, export = entry["export"].split("/")
    uses = [u for u in export_uses(tree, team, export) if (u["kind"], u["target"], u["mount_point"]) != (kind, name, mount_point)]
    if uses:
        tree.put(export_index(team, export), {"mounts": uses}, HIERA_HEADER, as_json=True)
    elif tree.exists(export_index(team, export)):
        tree.delete(export_index(team, export))
    if kind == "hostgroup" and not current:
        update_top(tree, hostgroups)


def update_top(tree: Tree, hostgroups: Mapping[str, str]) -> None:
    """Regenerate the top file and the hostgroup index from the hostgroups that have a pillar file.

    A hostgroup whose target is no longer configured keeps its data but is matched by nobody.
    """
    present = tree.listdir("pillar/nfs/hostgroups", ".sls")
    targets = {g: hostgroups[g] for g in present if g in hostgroups}
    tree.put_text(TOP, render_top(targets))
    tree.put_text(HOSTGROUP_INDEX, hostgroup_index.dump(hostgroup_index.build(targets)))


def _use_key(use: Mapping[str, str]) -> tuple[str, str, str]:
    return (use["kind"], use["target"], use["mount_point"])
