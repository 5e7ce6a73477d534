"""
Manage NFS server exports on Linux kernel nfsd and NFS-Ganesha.

A drop-in for Salt's ``nfs3`` module where the names overlap (``list_exports``, ``add_export``,
``del_export``, ``reload_exports``), backed by a parser that handles all of exports(5) and
writes that keep every byte it did not change. Beyond ``nfs3``: structured export rules,
validation with the server's own parser, and two backends behind one interface:

- ``kernel``: one file per managed export under ``/etc/exports.d``, ``exportfs -ra``;
- ``ganesha``: one EXPORT block per export, applied live over DBus.

Backend settings come from the minion config or pillar (``config.get``):

.. code-block:: yaml

    nfs_server:
      kernel:
        exports_d: /etc/exports.d
      ganesha:
        exports_dir: /etc/ganesha/nfskit.d
        index_file: /etc/ganesha/nfskit-exports.conf
"""
import functools
import logging
import os
import tempfile

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from nfskit import exports_codec
    from nfskit.backends import get_backend
    from nfskit.errors import InvalidInput, NfsKitError
    from nfskit.plan import make_plan
    from nfskit.spec import export_from_args, exports_from_managed

    HAS_NFSKIT = True
    IMPORT_ERROR = ""
except ImportError as exc:  # the library is synced from _utils or pip-installed
    HAS_NFSKIT = False
    IMPORT_ERROR = str(exc)

log = logging.getLogger(__name__)

__virtualname__ = "nfs_server"

DEFAULT_EXPORTS = "/etc/exports"
DEFAULT_EXPORTS_D = "/etc/exports.d"


def __virtual__():
    if not HAS_NFSKIT:
        return (
            False,
            f"nfs_server: the nfskit library cannot be imported ({IMPORT_ERROR}); "
            "run saltutil.sync_all (it ships in _utils) or pip install saltext-nfskit",
        )
    return __virtualname__


def _salt_errors(func):
    """Library errors become the Salt exceptions callers expect."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InvalidInput as exc:
            raise SaltInvocationError(str(exc)) from exc
        except NfsKitError as exc:
            raise CommandExecutionError(str(exc)) from exc

    return wrapper


def _backend(backend):
    config = __salt__["config.get"](f"nfs_server:{backend}", {}) if backend in ("kernel", "ganesha") else {}
    return get_backend(backend, config or {})


def _public_kwargs(kwargs):
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


@_salt_errors
def list_exports(exports=DEFAULT_EXPORTS, exports_d=None):
    """
    List the exports in an exports(5) file, in the return shape of ``nfs3.list_exports``.

    exports
        The exports file to read. Default: ``/etc/exports``.

    exports_d
        A directory of ``*.exports`` files read after ``exports``, as ``exportfs`` does.
        Default: ``/etc/exports.d`` when ``exports`` is ``/etc/exports``, else none.
        Pass ``False`` to read only ``exports``.

    Returns ``{path: [{"hosts": str, "options": [str, ...]}, ...]}``; a client's options are
    what its line says for it, merged with the line's ``-defaults`` (client winning).

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_server.list_exports
        salt '*' nfs_server.list_exports exports=/srv/test/exports exports_d=False
    """
    if exports_d is None:
        exports_d = DEFAULT_EXPORTS_D if exports == DEFAULT_EXPORTS else False
    return exports_codec.read_exports_files(exports, exports_d or None)


def _rewrite(exports, change):
    """Apply ``change`` to the parsed file and replace it atomically; untouched on any error."""
    try:
        with open(exports, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    document = exports_codec.parse(text)
    result = change(document)
    new_text = document.render()
    if new_text != text:
        directory = os.path.dirname(os.path.abspath(exports))
        fd, tmp = tempfile.mkstemp(prefix=".nfs_server-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(new_text)
                handle.flush()
                os.fsync(handle.fileno())
            if os.path.exists(exports):
                st = os.stat(exports)
                os.chmod(tmp, st.st_mode & 0o7777)
                os.chown(tmp, st.st_uid, st.st_gid)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, exports)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return result, document


@_salt_errors
def add_export(exports=DEFAULT_EXPORTS, path="", hosts="", options=None):
    """
    Add a client to an export in an exports(5) file (``nfs3.add_export`` compatible).

    The client is appended to the path's last line (a new line if the path is new); every other
    byte of the file stays as it was. The file is replaced atomically. Nothing is written when
    the path, host or options are invalid.

    exports
        The exports file. Default: ``/etc/exports``.

    path
        The absolute path to export.

    hosts
        One client spec: a name, address, CIDR, wildcard or ``@netgroup``.

    options
        A list of exports(5) options (or a comma-separated string).

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_server.add_export path=/srv/data hosts=10.0.0.0/24 options="['rw','sync']"
    """
    words = options if options is not None else []
    if isinstance(words, str):
        words = [w for w in words.split(",") if w]
    _rewrite(exports, lambda doc: doc.add_client(path, hosts, words))
    return {"hosts": hosts, "options": list(words)}


@_salt_errors
def del_export(exports=DEFAULT_EXPORTS, path=None):
    """
    Remove every line exporting ``path`` from an exports(5) file (``nfs3.del_export`` compatible).

    Returns the remaining exports in the ``list_exports`` shape. Other lines, comments and
    layout are kept byte for byte.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_server.del_export path=/srv/data
    """
    if path is None:
        raise InvalidInput("path", path, "is required")
    _, document = _rewrite(exports, lambda doc: doc.remove_path(path))
    return document.list_exports()


@_salt_errors
def reload_exports():
    """
    Re-export everything (``exportfs -ra``) and tell errors apart from warnings.

    Unlike ``nfs3.reload_exports``, a warning on stderr is not a failure, while mistakes that
    ``exportfs`` only warns about but that change what is exported (``host (rw)``, which exports
    to the world) are.

    Returns ``{"result": bool, "output": str, "errors": [...], "warnings": [...]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_server.reload_exports
    """
    errors, warnings = _backend("kernel").reload()
    return {"result": not errors, "output": "\n".join(errors + warnings), "errors": errors, "warnings": warnings}


def _export_view(export):
    return {
        "path": export.path,
        "pseudo": export.pseudo,
        "clients": [
            {
                "hosts": rule.host,
                "access": rule.access,
                "squash": rule.squash,
                "sec": list(rule.sec),
                "anonuid": rule.anonuid,
                "anongid": rule.anongid,
                "options": rule.to_options(),
            }
            for rule in export.rules
        ],
    }


@_salt_errors
def list_managed(backend="kernel"):
    """
    List the exports this module manages on a backend, as structured rules.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_server.list_managed
        salt '*' nfs_server.list_managed backend=ganesha
    """
    return {path: _export_view(export) for path, export in _backend(backend).read().items()}


@_salt_errors
def validate(path, clients=None, hosts=None, options=None, backend="kernel", pseudo=None, allow_unsafe=False, **kwargs):
    """
    Check an export without changing anything: our own checks, then the server's parser
    (``exportfs`` or ganesha in a throwaway namespace).

    Returns ``{"valid": True, "rendered": text, "warnings": [...]}``; invalid input raises an
    error naming the field and the problem.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_server.validate /srv/data hosts=10.0.0.0/24 options=rw,sync
    """
    _reject_unknown(kwargs)
    export = export_from_args(path, clients, hosts, options, pseudo=pseudo, allow_unsafe=allow_unsafe)
    engine = _backend(backend)
    warnings = engine.validate([export])
    return {"valid": True, "rendered": engine.render(export), "warnings": warnings}


def _reject_unknown(kwargs):
    unknown = sorted(_public_kwargs(kwargs))
    if unknown:
        raise InvalidInput(unknown[0], kwargs[unknown[0]], "is not a known argument")


def _run_plan(engine, plan, test):
    result = {
        "changes": plan.changes(),
        "diff": plan.diff(engine.render),
        "summary": plan.summary(),
        "applied": False,
        "method": "none",
        "warnings": [],
    }
    if not plan:
        return result
    if test:
        # the real parser still sees what would be written, so test=True catches server-side errors
        result["warnings"] = engine.validate(list(plan.add) + [new for _, new in plan.change])
        return result
    report = engine.apply(plan)
    result.update(applied=True, method=report.method, warnings=report.warnings)
    return result


@_salt_errors
def export(path, clients=None, hosts=None, options=None, backend="kernel", pseudo=None, allow_unsafe=False, test=False, **kwargs):
    """
    Make one export exist with exactly these client rules (add or change), then reload.

    path
        The absolute path to export.

    clients
        A list of rules. Each rule is ``{hosts: spec, options: [...]}`` (the form of core
        ``nfs_export.present``) or structured: ``{hosts: spec, access: rw|ro, squash:
        root|all|none, sec: [sys, krb5, ...], anonuid: N, anongid: N, options: [...]}``.

    hosts, options
        Shorthand for one rule (``hosts`` may be a list of specs sharing the options).

    backend
        ``kernel`` (default) or ``ganesha``.

    pseudo
        NFSv4 pseudo path (ganesha; default: the path).

    allow_unsafe
        Allow ``no_root_squash``, ``insecure`` and write access for every host (``*``).

    test
        Report what would change (with a diff) without changing anything.

    CLI Example:

    .. code-block:: bash

        salt nfs1 nfs_server.export /srv/data hosts=10.0.0.0/24 options=rw
        salt nfs1 nfs_server.export /srv/data clients="[{hosts: '@web', access: rw}]" backend=ganesha
    """
    _reject_unknown(kwargs)
    wanted = export_from_args(path, clients, hosts, options, pseudo=pseudo, allow_unsafe=allow_unsafe)
    engine = _backend(backend)
    return _run_plan(engine, make_plan(engine.read(), [wanted]), test)


@_salt_errors
def unexport(path, backend="kernel", test=False):
    """
    Remove a managed export and reload. Exports this module does not manage are not touched.

    CLI Example:

    .. code-block:: bash

        salt nfs1 nfs_server.unexport /srv/data
    """
    engine = _backend(backend)
    return _run_plan(engine, make_plan(engine.read(), [], remove=[path]), test)


@_salt_errors
def apply(exports, backend="kernel", remove_unlisted=False, allow_unsafe=False, test=False):
    """
    Converge a server's whole managed export set in one write and one reload.

    exports
        A mapping ``{path: {clients: [...]}}`` (or ``{path: {hosts: .., options: [..]}}``), or a
        list of such mappings each with a ``path``.

    remove_unlisted
        Remove managed exports that are not in ``exports``. Default: keep them.

    CLI Example:

    .. code-block:: bash

        salt nfs1 nfs_server.apply "{'/srv/a': {'hosts': '10.0.0.0/24', 'options': ['rw']}}" test=True
    """
    wanted = exports_from_managed(exports, allow_unsafe=allow_unsafe)
    engine = _backend(backend)
    plan = make_plan(engine.read(), wanted.values(), remove_unlisted=bool(remove_unlisted))
    return _run_plan(engine, plan, test)
