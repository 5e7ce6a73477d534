"""One minion's self-service pillar, read straight from a checkout of the data repo.

This gives a minion the same data that Salt compiles from the data repo's ``pillar/`` through
git_pillar and the generated top file, but it reads only that minion's files:

1. its host file ``nfs/hosts/<xx>/<key>.sls`` (path computed from the id, see
   :func:`nfskit.datarepo.target_pillar`);
2. its server file ``nfs/servers/<key>.sls`` with the export files it includes;
3. the files of the hostgroups it is a member of: the candidates come from the hostgroup index
   (:mod:`nfskit.hostgroup_index`), and each candidate's target goes to ``matches`` (Salt's
   compound matcher) for the verdict.

They are merged in the top file's order (host, server, then hostgroups by name), with ``merge``
(Salt's merge strategy). A minion id that the runner could never have written a file for (not a DNS
host name: ``_``, ``/``, ``..``, glob characters, too long) gets ``{}``, so an id can never reach
another minion's file. Salt compiles the git_pillar path in about 3 s at 10,000 hosts and 1,000
hostgroups; this reads a handful of files.

A damaged data repo (a file that is not ``#!yaml``, not a mapping, a missing include, an unreadable
index) raises :class:`~nfskit.errors.StoreError`: Salt turns it into a pillar ``_errors`` entry and
the minion refuses to apply states from a partial pillar, as it does when git_pillar fails to render.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import yaml

from nfskit import datarepo, hostgroup_index
from nfskit.errors import InvalidInput, StoreError
from nfskit.request import check_minion_id

Merge = Callable[[dict, dict], dict]
Matches = Callable[[str], bool]

# Salt resolves an include "a.b.c" to a/b/c.sls; only plain names, so a hostile file cannot point
# a read outside the pillar root.
_SLS_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_MAX_INCLUDE_DEPTH = 8


def merge_recurse(base: dict, update: dict) -> dict:
    """Salt's default for YAML pillar (``smart`` = ``recurse``, lists replaced), without Salt."""
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_recurse(result[key], value)
        else:
            result[key] = value
    return result


def minion_pillar(root: Path | str, minion_id: str, grains: Mapping[str, Any], matches: Matches, merge: Merge = merge_recurse) -> dict:
    """The self-service pillar of ``minion_id``, from the pillar root ``root`` of a data repo checkout.

    root
        The data repo's ``pillar/`` directory.
    minion_id
        The minion being rendered.
    grains
        Its grains: they pick the hostgroup candidates.
    matches
        ``matches(target)``: whether the minion matches a compound target (Salt's matcher).
    merge
        How to merge two pillar mappings (Salt's ``salt.utils.dictupdate.merge`` with the
        master's ``pillar_source_merging_strategy``).
    """
    if not valid_minion_id(minion_id):
        return {}
    root = Path(root)
    # the top file's order: hostgroups first, so the host's own file wins where both have a key
    parts = [_read_sls(root, f"nfs.hostgroups.{group}") for group in member_groups(root, grains, matches)]
    parts += [
        _read_sls(root, _sls(datarepo.target_pillar("host", minion_id))),
        _render(root, _sls(datarepo.server_pillar(minion_id)), merge),
    ]
    pillar: dict = {}
    for part in parts:
        if part:
            pillar = merge(pillar, part)
    return pillar


def valid_minion_id(minion_id: object) -> bool:
    """Whether the runner could have written files for this id (request validation's own rule)."""
    try:
        check_minion_id(minion_id, "id")
    except InvalidInput:
        return False
    return True


def member_groups(root: Path, grains: Mapping[str, Any], matches: Matches) -> list[str]:
    """The hostgroups (with a pillar file) whose target the minion matches, sorted by name."""
    index = _read_index(root)
    if index is None:
        return []
    targets = index["hostgroups"]
    groups = []
    for group in hostgroup_index.candidates(index, grains):
        target = targets.get(group)
        if not isinstance(target, str) or not _SLS_NAME.fullmatch(group):
            raise StoreError(f"the hostgroup index lists {group!r} without a usable target; salt-run nfs.reindex regenerates it")
        if matches(target):
            groups.append(group)
    return groups


def _read_index(root: Path) -> Optional[dict[str, Any]]:
    path = root / _rel(datarepo.HOSTGROUP_INDEX)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if (root / _rel("pillar/nfs/hostgroups")).is_dir():
            # Hostgroup files without an index (a repo written before the index existed): serving
            # the minion without its hostgroups' mounts would look like a release to it.
            raise StoreError(f"{datarepo.HOSTGROUP_INDEX} is missing; salt-run nfs.reindex (or any runner write) writes it") from None
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {datarepo.HOSTGROUP_INDEX}: {exc.strerror}") from None
    return hostgroup_index.load(text)


def _render(root: Path, sls: str, merge: Merge, depth: int = 0) -> Optional[dict]:
    """An sls file with its includes, merged as Salt does (included files first, the file last)."""
    data = _read_sls(root, sls)
    if not data or "include" not in data:
        return data
    includes = data.pop("include")
    if not isinstance(includes, list) or depth >= _MAX_INCLUDE_DEPTH:
        raise StoreError(f"{sls}: include must be a list of sls names, at most {_MAX_INCLUDE_DEPTH} deep")
    state: Optional[dict] = None
    for name in includes:
        if not isinstance(name, str):
            raise StoreError(f"{sls}: include {name!r} is not an sls name")
        included = _render(root, name, merge, depth + 1)
        if included is None:
            raise StoreError(f"{sls}: included sls {name!r} does not exist in the data repo")
        if included:
            state = included if state is None else merge(state, included)
    return data if state is None else merge(state, data)


def _read_sls(root: Path, sls: str) -> Optional[dict]:
    """A ``#!yaml`` pillar file by sls name; None if there is none."""
    if not _SLS_NAME.fullmatch(sls):
        raise StoreError(f"{sls!r} is not an sls name this reader resolves (letters, digits, '_', '-' and '.')")
    path = root / (sls.replace(".", "/") + ".sls")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read pillar sls {sls}: {exc.strerror}") from None
    if text.split("\n", 1)[0].strip() != "#!yaml":
        raise StoreError(f"pillar sls {sls} does not start with #!yaml; the data repo's files are plain YAML, written by the nfs runner")
    try:
        data = datarepo.load(text)
    except yaml.YAMLError as exc:
        raise StoreError(f"pillar sls {sls} is not valid YAML: {str(exc)[:300]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StoreError(f"pillar sls {sls} is not a mapping")
    return data


def _sls(rel: str) -> str:
    """``pillar/nfs/hosts/ab/x_y.sls`` -> ``nfs.hosts.ab.x_y``."""
    return _rel(rel)[: -len(".sls")].replace("/", ".")


def _rel(rel: str) -> str:
    """A data repo path relative to the pillar root."""
    return rel[len("pillar/"):] if rel.startswith("pillar/") else rel
