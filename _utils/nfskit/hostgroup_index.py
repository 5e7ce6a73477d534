"""The hostgroup index: which hostgroups a minion could match, without matching all of them.

A hostgroup is a named compound target. Salt's compound matcher stays the authority on whether a
minion is a member; the index only narrows down whom to ask. For each target it records one
*mandatory* term: a ``G@grain:value`` term that every matching minion must satisfy (the target is
a plain ``and`` chain and the term is not negated). A minion whose grain has another value cannot
match, so only the hostgroups filed under the minion's own grain values are evaluated, plus those
whose target has no usable mandatory term (``or``, parentheses, globs, nested grains, only
``L@``/``E@``/... terms), which are always evaluated.

The file (``pillar/nfs/hostgroups.json`` in the data repo, JSON so a render parses it in well
under a millisecond):

.. code-block:: json

    {"version": 1,
     "hostgroups": {"web-prod": "G@role:web and G@env:prod", "odd": "L@a.example.com,b.example.com"},
     "grains": {"role": {"web": ["web-prod"]}},
     "always": ["odd"]}

Grain values are filed lower-cased because Salt's grain matcher compares ``str(value).lower()``
with the lower-cased pattern (``salt.utils.data.subdict_match``).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Iterable, Mapping, Optional

from nfskit.errors import StoreError

VERSION = 1
# One level of grain, an exact value: no glob characters (fnmatch would make it a pattern) and no
# further ':' (subdict_match would also try it as a nested key).
_GRAIN_TERM = re.compile(r"G@([^:*?\[\]\s]+):([^:*?\[\]\s]+)")
_OPERATORS = {"and", "or", "not"}


def mandatory_grains(target: str) -> list[tuple[str, str]]:
    """The ``(grain, lower-cased value)`` pairs every minion matching ``target`` must have.

    Empty when the target is not a plain ``and`` chain (``or``, parentheses) or has no exact,
    non-negated ``G@`` term: such a target must always be evaluated.
    """
    words = target.split()
    if "or" in words or any("(" in w or ")" in w for w in words):
        return []
    terms = []
    negated = False
    for word in words:
        if word == "not":
            negated = True
            continue
        if word not in _OPERATORS and not negated:
            match = _GRAIN_TERM.fullmatch(word)
            if match:
                terms.append((match.group(1), match.group(2).lower()))
        negated = False
    return terms


def build(hostgroups: Mapping[str, str]) -> dict[str, Any]:
    """The index of ``{hostgroup: compound target}``.

    Each target is filed under its rarest mandatory term (counted over all targets), so that
    ``G@role:web and G@env:prod`` is found through ``role`` and not through the ``env`` that
    hundreds of hostgroups share.
    """
    terms = {group: mandatory_grains(target) for group, target in hostgroups.items()}
    counts = Counter(term for group_terms in terms.values() for term in set(group_terms))
    grains: dict[str, dict[str, list[str]]] = {}
    always = []
    for group in sorted(hostgroups):
        if not terms[group]:
            always.append(group)
            continue
        grain, value = min(terms[group], key=lambda term: (counts[term], term))
        grains.setdefault(grain, {}).setdefault(value, []).append(group)
    return {"version": VERSION, "hostgroups": dict(sorted(hostgroups.items())), "grains": grains, "always": always}


def dump(index: Mapping[str, Any]) -> str:
    """One hostgroup per line, sorted: a change shows in a diff as the lines it changes."""
    return json.dumps(index, indent=1, sort_keys=True) + "\n"


def load(text: str) -> dict[str, Any]:
    try:
        index = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"the hostgroup index is not valid JSON ({exc}); salt-run nfs.reindex regenerates it") from None
    if not isinstance(index, dict) or index.get("version") != VERSION:
        raise StoreError(f"the hostgroup index has version {index.get('version') if isinstance(index, dict) else None!r}; this nfskit reads version {VERSION}")
    return index


def candidates(index: Mapping[str, Any], grains: Mapping[str, Any]) -> list[str]:
    """The hostgroups ``grains`` could match (a superset of the members), sorted by name."""
    found = set(index.get("always", []))
    for grain, by_value in index.get("grains", {}).items():
        if grain not in grains:
            continue
        values = _values(grains[grain])
        if values is None:  # a mapping or nested list: the matcher has rules of its own there
            for groups in by_value.values():
                found.update(groups)
            continue
        for value in values:
            found.update(by_value.get(value, ()))
    return sorted(found)


def _values(value: Any) -> Optional[Iterable[str]]:
    """The strings Salt's grain matcher compares for this grain value, or None if not simple."""
    if isinstance(value, (dict, tuple, set)):
        return None
    if isinstance(value, list):
        if any(isinstance(item, (dict, list, tuple, set)) for item in value):
            return None
        return [str(item).lower() for item in value]
    return [str(value).lower()]
