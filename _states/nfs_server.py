"""
Manage NFS server exports (kernel nfsd or NFS-Ganesha) as states.

``exported`` accepts the arguments of core ``nfs_export.present`` (``hosts`` + ``options``, or
``clients``), so a state can switch by renaming:

.. code-block:: yaml

    /srv/home:
      nfs_server.exported:
        - hosts: 10.0.0.0/24
        - options:
          - rw

    /srv/data:
      nfs_server.exported:
        - backend: ganesha
        - clients:
          - hosts: 10.0.0.0/24
            access: rw
          - hosts: '@backup'
            access: ro
            squash: all
            anonuid: 4242

    nfs1-exports:
      nfs_server.managed:
        - remove_unlisted: true
        - exports:
            /srv/a: {hosts: 10.0.0.0/24, options: [rw]}
            /srv/b: {clients: [{hosts: 10.0.1.5, access: ro}]}

Comparison is between typed rules: option order and equivalent spellings never count as a
change, and a second run reports no changes. ``test=True`` reports the exact diff of what would
be written, checked by the server's own parser.
"""
import salt.utils.data
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "nfs_server"


def __virtual__():
    if "nfs_server.apply" in __salt__:
        return __virtualname__
    return (False, "nfs_server state: the nfs_server execution module is not available")


def _converge(name, call, describe):
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__.get("test"))
    try:
        outcome = call(test)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if outcome["warnings"]:
        ret["warnings"] = outcome["warnings"]
    if not outcome["changes"]:
        ret["comment"] = f"{describe} already in the desired state"
        return ret
    ret["changes"] = outcome["changes"]
    if test:
        ret["result"] = None
        ret["comment"] = f"{describe} would change ({outcome['summary']}):\n{outcome['diff']}".rstrip()
    else:
        ret["comment"] = f"{describe} changed ({outcome['summary']}), reloaded with {outcome['method']}"
    return ret


def exported(name, clients=None, hosts=None, options=None, backend="kernel", pseudo=None, allow_unsafe=False, exports=None):
    """
    Ensure ``name`` (an absolute path) is exported with exactly these client rules.

    name
        The path to export.

    clients
        A list of rules: ``{hosts, options}`` as in core ``nfs_export.present``, or structured
        ``{hosts, access, squash, sec, anonuid, anongid, options}``.

    hosts, options
        Shorthand for a single rule (core ``nfs_export.present`` style).

    backend
        ``kernel`` (default) or ``ganesha``.

    pseudo
        NFSv4 pseudo path for ganesha (default: the path).

    allow_unsafe
        Opt in to ``no_root_squash``, ``insecure`` and write access for ``*``.

    exports
        Accepted for compatibility with ``nfs_export.present``; managed exports are written to
        their own files under ``/etc/exports.d``, so only ``/etc/exports`` (or nothing) is valid.
    """
    if exports not in (None, "/etc/exports"):
        return {
            "name": name,
            "result": False,
            "changes": {},
            "comment": f"exports: {exports!r} is not supported; nfs_server writes managed exports to their own "
            "files under exports_d (set nfs_server:kernel:exports_d in the minion config)",
        }
    return _converge(
        name,
        lambda test: __salt__["nfs_server.export"](
            name, clients=clients, hosts=hosts, options=options, backend=backend, pseudo=pseudo, allow_unsafe=allow_unsafe, test=test
        ),
        f"Export {name}",
    )


def absent(name, backend="kernel", exports=None):
    """
    Ensure ``name`` is not exported by this module (exports written by hand are left alone).

    name
        The exported path.

    backend
        ``kernel`` (default) or ``ganesha``.
    """
    if exports not in (None, "/etc/exports"):
        return {"name": name, "result": False, "changes": {}, "comment": f"exports: {exports!r} is not supported"}
    return _converge(name, lambda test: __salt__["nfs_server.unexport"](name, backend=backend, test=test), f"Export {name}")


def managed(name, exports=None, backend="kernel", remove_unlisted=False, allow_unsafe=False, exports_pillar=None):
    """
    Ensure a server's whole managed export set in one write and one reload.

    name
        A label for the set (e.g. the server name).

    exports
        ``{path: {clients: [...]}}`` or ``{path: {hosts: .., options: [..]}}``, or a list of
        mappings each with a ``path``.

    exports_pillar
        Instead of ``exports``: a colon-delimited pillar key holding the set (e.g.
        ``nfs:server:exports``). The state reads it itself, so Salt does not walk a large
        argument before the call (about 1 s for 10,000 exports). A key the minion's pillar does
        not have is an error, never an empty set.

    remove_unlisted
        Remove managed exports not in ``exports`` (default: leave them).

    backend, allow_unsafe
        As for ``exported``.
    """
    if exports_pillar is not None:
        exports, problem = _exports_from_pillar(exports, exports_pillar)
        if problem:
            return {"name": name, "result": False, "changes": {}, "comment": problem}
    return _converge(
        name,
        lambda test: __salt__["nfs_server.apply"](
            exports or {}, backend=backend, remove_unlisted=remove_unlisted, allow_unsafe=allow_unsafe, test=test
        ),
        f"Export set {name}",
    )


_MISSING = object()


def _exports_from_pillar(exports, key):
    """``(export set, None)`` from pillar ``key``, or ``(None, problem)``."""
    if exports is not None:
        return None, "exports_pillar: give either exports or exports_pillar, not both"
    if not isinstance(key, str) or not key:
        return None, f"exports_pillar: {key!r} is not a pillar key (e.g. nfs:server:exports)"
    # __pillar__ itself: pillar.get masks every value outside template rendering on Salt 3008
    value = salt.utils.data.traverse_dict_and_list(__pillar__, key, _MISSING, delimiter=":")
    if value is _MISSING:
        return None, f"exports_pillar: {key!r} is not in this minion's pillar; nothing was changed"
    return value, None
