"""Backend registry: a backend is looked up by name and built from its config mapping."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from nfskit.backends.base import Backend
from nfskit.errors import InvalidInput

_REGISTRY = {
    "kernel": "nfskit.backends.kernel:KernelBackend",
    "ganesha": "nfskit.backends.ganesha:GaneshaBackend",
}
NAMES = tuple(_REGISTRY)


def get_backend(name: object, config: Mapping[str, Any] | None = None) -> Backend:
    """Build the backend called ``name`` (``kernel`` or ``ganesha``)."""
    if name not in _REGISTRY:
        raise InvalidInput("backend", name, "is not a known backend; use one of " + ", ".join(NAMES))
    module_name, _, class_name = _REGISTRY[str(name)].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(config)
