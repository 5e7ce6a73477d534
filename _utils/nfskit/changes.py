"""Data-level changes: what one self-service request does to the data repo.

A change is plain data (JSON), so the git store can queue it, hand it to whichever process holds
the lock, and apply it again on a fresh tree after a rejected push:

.. code-block:: python

    {"id": "<request id>", "kind": "export" | "mount" | "release" | "delete",
     "user": "<requester>", "team": "<team>", "fields": {...the request's fields...}}

:func:`apply_change` parses the fields again (the same validation as at the edge), runs the policy
checks that depend on the repo (quota, capacity, ownership, conflicts) against the tree it is given
and returns the edits with a commit message. It raises an :class:`~nfskit.errors.NfsKitError` when
the request cannot be applied; the tree is then left untouched.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from nfskit import datarepo
from nfskit.datarepo import Tree, export_key
from nfskit.errors import Conflict, InvalidInput
from nfskit.policy import Policy, Team, owned
from nfskit.request import (
    MountRequest,
    parse_delete_request,
    parse_export_request,
    parse_mount_request,
    parse_reindex_request,
    parse_release_request,
)

KINDS = ("export", "mount", "release", "delete", "reindex")


@dataclass
class Outcome:
    """What a change did: the edited tree, the commit message and what to tell the requester."""

    tree: Tree
    summary: str
    result: dict[str, Any] = field(default_factory=dict)
    reason: Optional[str] = None

    def message(self, change: Mapping[str, Any]) -> str:
        why = self.reason or "Requested through the nfs self-service runner."
        return f"{self.summary}\n\n{why}\n\nRequest-Id: {change['id']}\nRequested-By: {change['user']} (team {change['team']})\n"


def apply_change(root: str, policy: Policy, change: Mapping[str, Any]) -> Outcome:
    """Apply one queued change to the checkout at ``root``, in memory (see :meth:`Tree.write`)."""
    tree = Tree(root)
    user = change["user"]
    team = policy.team_for(user, change["team"])
    admin = policy.is_admin(user)
    outcome = _APPLY[change["kind"]](tree, policy, team, admin, change)
    # Every write regenerates the top file and the hostgroup index (in the same commit): they follow
    # the configured hostgroup targets and the hostgroup files, whichever the change touched.
    datarepo.update_top(outcome.tree, policy.hostgroups)
    return outcome


def parse(kind: str, fields: Mapping[str, Any], admin: bool):
    """Validate a request's fields for its kind (the edge check the runner runs before queueing)."""
    if kind == "mount":
        return parse_mount_request(fields, admin=admin)
    return {"export": parse_export_request, "release": parse_release_request, "delete": parse_delete_request, "reindex": parse_reindex_request}[kind](fields)


def check_static(policy: Policy, team: Team, admin: bool, kind: str, request: Any) -> None:
    """Policy checks that need no repo state, so a bad request is refused before it is queued."""
    if kind == "export":
        policy.check_export(request, team, admin)
    elif kind == "mount":
        policy.check_mount(request, team, admin)
    elif kind == "release":
        policy.check_mount_point(request.mount_point)
    elif kind == "reindex" and not admin:
        raise InvalidInput("kind", kind, "may only be requested by a member of an admin team")


def _export(tree: Tree, policy: Policy, team: Team, admin: bool, change: Mapping[str, Any]) -> Outcome:
    request = parse_export_request(change["fields"])
    server = policy.check_export(request, team, admin)
    path = policy.export_path(request, team, server)
    key = export_key(team.name, request.name)
    existing = datarepo.export_record(tree, team.name, request.name)
    if existing is not None:
        if existing.get("request_id") == change["id"]:  # re-applied after a crash: already done
            return Outcome(tree, f"nfs: export {key} (already applied)", _export_result(policy, existing))
        raise Conflict(f"name: export {request.name!r} already exists in team {team.name}; delete it first or pick another name")
    if server is not None:
        allocations = datarepo.server_allocations(tree, server.name)
        for other_key, other in allocations.items():
            other_path = other["path"]
            if path == other_path or path.startswith(other_path + "/") or other_path.startswith(path + "/"):
                raise Conflict(f"path: {path!r} overlaps an existing export on {server.name}; pick a path of its own")
        policy.check_capacity(server, sum(a["size_gb"] for a in allocations.values()), request.size_gb)
    policy.check_quota(team, sum(r["size_gb"] for r in datarepo.team_exports(tree, team.name)), request.size_gb)
    record = {
        "name": request.name,
        "team": team.name,
        "backend": request.backend,
        "server": request.server,
        "path": path,
        "size_gb": request.size_gb,
        "owner": request.owner,
        "group": request.group,
        "mode": request.mode,
        "request_id": change["id"],
        "requested_by": change["user"],
    }
    record = {k: v for k, v in record.items() if v is not None}
    datarepo.put_export(tree, record, request.rules, server.backend if server else None)
    where = f"{server.name}:{path}" if server else "AWS EFS"
    return Outcome(
        tree,
        f"nfs: export {key} on {where} ({request.size_gb} GB, {request.backend})",
        _export_result(policy, record),
        request.reason,
    )


def _export_result(policy: Policy, record: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("name", "team", "backend", "server", "path", "size_gb")
    return {"export": {k: record[k] for k in keys if k in record}, "device": policy.device(record)}


def _mount(tree: Tree, policy: Policy, team: Team, admin: bool, change: Mapping[str, Any]) -> Outcome:
    request: MountRequest = parse_mount_request(change["fields"], admin=admin)
    policy.check_mount(request, team, admin)
    record = owned(datarepo.export_record(tree, team.name, request.export), team, f"export: {request.export!r}")
    target = request.target
    key = export_key(team.name, request.export)
    device = policy.device(record)
    entry: dict[str, Any] = {
        "export": key,
        "team": team.name,
        "fstype": "efs" if record["backend"] == "efs" else "nfs",
        "options": list(request.options),
        "request_id": change["id"],
    }
    if device is not None:
        entry["device"] = device
    for attribute in ("owner", "group", "mode"):
        if getattr(request, attribute) is not None:
            entry[attribute] = getattr(request, attribute)
    existing = datarepo.mounts(tree, target.kind, target.name).get(request.mount_point)
    result = {"export": key, "target": {"kind": target.kind, "name": target.name}, "mount_point": request.mount_point, "device": device}
    if existing is not None:
        if existing.get("request_id") == change["id"]:
            return Outcome(tree, f"nfs: mount {key} (already applied)", result)
        raise Conflict(f"mount_point: {request.mount_point!r} is already in use on {target.describe()}; release it first")
    hiera_entry = None
    if device is not None:
        hiera_entry = {"device": device, "ensure": "mounted", "atboot": True}
        if request.options:
            hiera_entry["options"] = ",".join(request.options)
        for attribute in ("owner", "group", "mode"):
            if getattr(request, attribute) is not None:
                hiera_entry[attribute] = getattr(request, attribute)
    datarepo.put_mount(tree, target.kind, target.name, request.mount_point, entry, hiera_entry, policy.hostgroups)
    return Outcome(tree, f"nfs: mount {key} on {target.describe()} at {request.mount_point}", result, request.reason)


def _release(tree: Tree, policy: Policy, team: Team, admin: bool, change: Mapping[str, Any]) -> Outcome:
    request = parse_release_request(change["fields"])
    target = request.target
    entry = datarepo.mounts(tree, target.kind, target.name).get(request.mount_point)
    owned(entry, team, f"mount_point: {request.mount_point!r} on {target.describe()}")
    datarepo.remove_mount(tree, target.kind, target.name, request.mount_point, policy.hostgroups)
    result = {"export": entry["export"], "target": {"kind": target.kind, "name": target.name}, "mount_point": request.mount_point}
    return Outcome(tree, f"nfs: release {request.mount_point} on {target.describe()} ({entry['export']})", result, request.reason)


def _delete(tree: Tree, policy: Policy, team: Team, admin: bool, change: Mapping[str, Any]) -> Outcome:
    request = parse_delete_request(change["fields"])
    record = owned(datarepo.export_record(tree, team.name, request.name), team, f"name: export {request.name!r}")
    uses = datarepo.export_uses(tree, team.name, request.name)
    if uses:
        where = ", ".join(f"{u['kind']} {u['target']}:{u['mount_point']}" for u in uses[:5])
        more = f" and {len(uses) - 5} more" if len(uses) > 5 else ""
        raise Conflict(f"name: export {request.name!r} is still mounted ({where}{more}); release those mounts first")
    server = policy.servers.get(record.get("server") or "")
    backend = server.backend if server else (None if record["backend"] == "efs" else record["backend"])
    datarepo.remove_export(tree, record, backend)
    key = export_key(team.name, request.name)
    return Outcome(tree, f"nfs: delete export {key}", {"export": {"name": request.name, "team": team.name, "path": record["path"]}}, request.reason)


def _reindex(tree: Tree, policy: Policy, team: Team, admin: bool, change: Mapping[str, Any]) -> Outcome:
    """Nothing of its own: apply_change regenerates the top file and the hostgroup index after every change."""
    request = parse_reindex_request(change["fields"])
    return Outcome(tree, "nfs: regenerate the pillar top file and the hostgroup index", {}, request.reason)


_APPLY: dict[str, Callable[..., Outcome]] = {"export": _export, "mount": _mount, "release": _release, "delete": _delete, "reindex": _reindex}
