"""Entry point for Salt's loader (``salt.loader`` group): where our modules live once pip-installed.

Salt calls :func:`loader_dirs` and adds the returned dirs to its execution-module, state and runner
search paths. In a source checkout (editable install) the top-level ``_modules``/``_states``/
``_runners`` dirs are used; in an installed wheel they are the ``nfskit_salt`` package dirs.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

_KINDS = {"modules": "_modules", "states": "_states", "runners": "_runners", "pillar": "_pillar"}


def loader_dirs() -> dict[str, list[str]]:
    spec = importlib.util.find_spec("nfskit_salt")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            installed = {kind: [str(Path(location) / kind)] for kind in _KINDS if (Path(location) / kind).is_dir()}
            if installed:
                return installed
    checkout = Path(__file__).resolve().parent.parent.parent
    return {kind: [str(checkout / folder)] for kind, folder in _KINDS.items() if (checkout / folder).is_dir()}
