"""
Manage NFS client mounts (kernel NFS, and AWS EFS through its mount helper) without remounting
for nothing and without hanging on a dead server.

- What is mounted comes from ``/proc/self/mountinfo``, never from touching the path.
- Requested options are compared with what the kernel shows after normalisation (version
  aliases, kernel-added and hidden-default options, client-only options, device spelling), so an
  unchanged mount is never remounted; a real change is applied with umount + mount.
- A busy mount is never unmounted unless asked (``force=lazy`` or ``force=force``).
- Everything that may touch a possibly dead NFS path (``stat``, the canary file, mount point
  creation, ``mount``, ``umount``) runs in a child process with a deadline.

Settings come from the minion config or pillar (``config.get``); the defaults are the real
system paths, tests point them at sandboxes:

.. code-block:: yaml

    nfs_client:
      mountinfo: /proc/self/mountinfo
      fstab: /etc/fstab
      mount: mount                 # a command, or a list (argv prefix)
      umount: umount
      stat: stat
      proc: /proc                  # where busy users are looked up
      proc_filesystems: /proc/filesystems
      modprobe: modprobe
      timeout: 5                   # seconds for stat and the canary
      tcp_timeout: 2               # seconds for the TCP probe of the server
      mount_timeout: 60            # seconds for mount, umount and creating the mount point
"""
import functools
import logging
import sys

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from nfskit import fstab_codec, mount_check, mount_commands, mountinfo
    from nfskit import mount_options as mo
    from nfskit.errors import Conflict, InvalidInput, NfsKitError
    from nfskit.mount_plan import plan_mount, restore_words, spec_from_args, specs_from_managed

    HAS_NFSKIT = True
    IMPORT_ERROR = ""
except ImportError as exc:  # the library is synced from _utils or pip-installed
    HAS_NFSKIT = False
    IMPORT_ERROR = str(exc)

log = logging.getLogger(__name__)

__virtualname__ = "nfs_client"

DEFAULTS = {
    "mountinfo": "/proc/self/mountinfo",
    "fstab": "/etc/fstab",
    "mount": ["mount"],
    "umount": ["umount"],
    "stat": ["stat"],
    "python": [sys.executable],
    "proc": "/proc",
    "proc_filesystems": "/proc/filesystems",
    "modprobe": ["modprobe"],
    "timeout": 5,
    "tcp_timeout": 2,
    "mount_timeout": 60,
}
_COMMANDS = ("mount", "umount", "stat", "python", "modprobe")


def __virtual__():
    if not HAS_NFSKIT:
        return (
            False,
            f"nfs_client: the nfskit library cannot be imported ({IMPORT_ERROR}); "
            "run saltutil.sync_all (it ships in _utils) or pip install saltext-nfskit",
        )
    if __grains__.get("kernel") != "Linux":
        return (False, "nfs_client: only Linux clients are supported (mountinfo)")
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


def _config():
    cfg = dict(DEFAULTS)
    cfg.update(__salt__["config.get"]("nfs_client", {}) or {})
    for key in _COMMANDS:
        if isinstance(cfg[key], str):
            cfg[key] = [cfg[key]]
    return cfg


def _timeout(value, default):
    if value is None:
        return float(default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("timeout", value, "must be a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise InvalidInput("timeout", value, "must be between 0 and 3600 seconds")
    return seconds


def _public_kwargs(kwargs):
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def _mount_view(entry):
    return {
        "device": entry.source,
        "fstype": entry.fstype,
        "opts": list(entry.mount_options),
        "superopts": list(entry.super_options),
        "root": entry.root,
        "mount_id": entry.mount_id,
        "device_id": entry.device_id,
    }


@_salt_errors
def list_mounts(nfs_only=True):
    """
    List mounts from ``/proc/self/mountinfo`` without touching any mount point.

    nfs_only
        Only ``nfs`` and ``nfs4`` mounts (default). ``False`` lists every mount.

    Returns ``{mount_point: {device, fstype, opts, superopts, root, mount_id, device_id}}`` for
    the mount visible at each mount point (the top one when mounts are stacked).

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.list_mounts
        salt '*' nfs_client.list_mounts nfs_only=False
    """
    entries = mountinfo.visible(mountinfo.read(_config()["mountinfo"]))
    return {name: _mount_view(entry) for name, entry in entries.items() if entry.is_nfs or not nfs_only}


@_salt_errors
def mount(name, device, fstype="nfs", opts="defaults", mkmnt=False, owner=None, group=None, mode=None):
    """
    Mount an NFS export (``mount -t fstype -o opts device name``, in a child with a deadline).

    name
        The mount point (absolute path).

    device
        ``server:/path``, ``[v6addr]:/path`` or, for ``fstype=efs``, ``fs-xxxxxxxx:/``.

    fstype
        ``nfs`` (default), ``nfs4`` or ``efs``.

    opts
        Comma-separated string or list of mount options.

    mkmnt
        Create the mount point first (with ``owner``, ``group``, ``mode``).

    Refuses when something is already mounted on ``name``. A kernel without NFS client support
    gives a clear error.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.mount /mnt/data nfs1:/srv/data opts=vers=4.2,hard mkmnt=True
    """
    spec = spec_from_args(name, device, fstype, opts, mkmnt=mkmnt, owner=owner, group=group, mode=mode, persist=False)
    cfg = _config()
    current = mountinfo.find(mountinfo.read(cfg["mountinfo"]), spec.name)
    if current is not None:
        raise Conflict(f"{spec.name} is already mounted ({current.describe()}); unmount it first or use the nfs_client.mounted state")
    mount_check.require_nfs_client(cfg["proc_filesystems"], cfg["modprobe"])
    if spec.mkmnt:
        mount_commands.prepare_mount_point(spec.name, spec.uid, spec.gid, spec.mode, False, cfg["python"], float(cfg["mount_timeout"]))
    mount_commands.mount(cfg["mount"], spec.device, spec.name, spec.fstype, spec.mount_words(), float(cfg["mount_timeout"]))
    after = mountinfo.find(mountinfo.read(cfg["mountinfo"]), spec.name)
    return {"mounted": after is not None, "entry": _mount_view(after) if after else None}


@_salt_errors
def unmount(name, force=None):
    """
    Unmount ``name``. A busy mount is refused (and stays mounted) unless ``force`` says how.

    force
        ``lazy``: ``umount -l`` (detach now, finish when the last user is gone);
        ``force``: ``umount -f`` (abort outstanding NFS requests; a busy mount still fails).

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.unmount /mnt/data
        salt '*' nfs_client.unmount /mnt/data force=lazy
    """
    force = mount_commands.check_force(force)
    cfg = _config()
    if mountinfo.find(mountinfo.read(cfg["mountinfo"]), name) is None:
        return {"unmounted": False, "comment": f"nothing is mounted on {name}"}
    _umount(cfg, name, force)
    return {"unmounted": True, "comment": f"unmounted {name}" + (f" ({force})" if force else "")}


def _umount(cfg, name, force):
    try:
        mount_commands.umount(cfg["umount"], name, force, float(cfg["mount_timeout"]))
    except Conflict as exc:
        users = mount_check.busy_users(name, cfg["proc"])
        who = ", ".join(f"pid {u['pid']} ({u['command']}: {'/'.join(u['uses'])})" for u in users) or "no process found (another mount below it?)"
        raise Conflict(f"{exc}; used by {who}; it was not unmounted and keeps working; set force: lazy to detach it anyway") from None


@_salt_errors
def fstab(config=None):
    """
    List the entries of an fstab file (in the shape of core ``mount.fstab``).

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.fstab
    """
    doc, _ = fstab_codec.read(config or _config()["fstab"])
    out = {}
    for entry in doc.entries():
        out[entry.mount_point] = entry.as_dict()
    return out


@_salt_errors
def set_fstab(name, device, fstype="nfs", opts="defaults", dump=0, pass_num=0, config=None, test=False):
    """
    Make the fstab line for mount point ``name`` say this; other lines stay byte for byte.

    Returns ``present``, ``new`` or ``change`` (as core ``mount.set_fstab``). Matching is on the
    mount point; an fstab with two lines for it is refused. The write is atomic.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.set_fstab /mnt/data nfs1:/srv/data opts=vers=4.2,_netdev
    """
    spec = spec_from_args(name, device, fstype, opts, dump=dump, pass_num=pass_num)
    path = config or _config()["fstab"]
    doc, original = fstab_codec.read(path)
    result = doc.set_entry(spec.fstab_entry())
    if not test and doc.render() != original:
        fstab_codec.write_atomic(path, doc.render())
    return result


@_salt_errors
def rm_fstab(name, config=None, test=False):
    """
    Remove the fstab line for mount point ``name``. Returns True when a line was (or, with
    ``test``, would be) removed.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.rm_fstab /mnt/data
    """
    path = config or _config()["fstab"]
    doc, original = fstab_codec.read(path)
    removed = doc.remove(name) is not None
    if removed and not test:
        fstab_codec.write_atomic(path, doc.render())
    return removed


@_salt_errors
def verify(name, device=None, fstype=None, opts=None, hidden_opts=None, canary=True, timeout=None):
    """
    Check a mount from the client side and say which check failed and why.

    Checks, in order: mounted (mountinfo), source (when ``device`` is given), options (when
    ``opts``/``fstype`` are given, after normalisation), server (TCP to the address the kernel
    uses, port 2049 or the mount's ``port=``), ``stat`` and a canary file written, read back and
    removed. ``stat`` and the canary run in a child process with ``timeout`` seconds.

    Returns ``{name, ok, failed, reason, message, checks: [...], elapsed}``; ``reason`` is one of
    ``not mounted``, ``wrong source``, ``options differ``, ``server unreachable``,
    ``stale handle``, ``permission denied``, ``read-only``, ``timed out``.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.verify /mnt/data
        salt '*' nfs_client.verify /mnt/data device=nfs1:/srv/data opts=vers=4.2 timeout=3
    """
    cfg = _config()
    words = mo.split_options(opts)
    if device is not None:
        mo.check_device(device, fstype or "nfs")
    return mount_check.verify(
        name,
        mountinfo.read(cfg["mountinfo"]),
        device=device,
        fstype=fstype,
        words=words,
        hidden=mo.split_options(hidden_opts, "hidden_opts"),
        stat_cmd=cfg["stat"],
        python=cfg["python"],
        timeout=_timeout(timeout, cfg["timeout"]),
        tcp_timeout=float(cfg["tcp_timeout"]),
        canary=bool(canary),
    )


@_salt_errors
def check_stale(name=None, remediate=None, timeout=None):
    """
    Find stale or hung NFS mounts (all of them, or ``name``) without hanging.

    remediate
        ``lazy`` or ``force``: unmount a stale or hung mount that way and mount it again, from
        its fstab line when there is one, else from what mountinfo recorded.

    Returns ``{mount_point: {status: ok|stale|hung|unreachable|not mounted|error, detail, ...}}``.

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.check_stale
        salt '*' nfs_client.check_stale /mnt/data remediate=lazy
    """
    force = mount_commands.check_force(remediate, "remediate")
    cfg = _config()
    entries = mountinfo.read(cfg["mountinfo"])
    report = mount_check.check_stale(
        entries, [name] if name else None, cfg["stat"], _timeout(timeout, cfg["timeout"]), float(cfg["tcp_timeout"])
    )
    if force:
        doc, _ = fstab_codec.read(cfg["fstab"])
        for point, status in report.items():
            if status["status"] in ("stale", "hung", "unreachable"):
                status["remediation"] = _remediate(cfg, mountinfo.find(entries, point), doc.find(point), force)
    return report


def _remediate(cfg, entry, line, force):
    try:
        mount_check.require_nfs_client(cfg["proc_filesystems"], cfg["modprobe"])
        _umount(cfg, entry.mount_point, force)
        if line is not None:
            words = [w for w in line.options if w != "defaults"]
            mount_commands.mount(cfg["mount"], line.device, entry.mount_point, line.fstype, words, float(cfg["mount_timeout"]))
        else:
            mount_commands.mount(cfg["mount"], entry.source, entry.mount_point, entry.fstype, restore_words(entry), float(cfg["mount_timeout"]))
    except NfsKitError as exc:
        return {"result": False, "comment": str(exc)}
    return {"result": True, "comment": f"unmounted ({force}) and mounted again" + (" from fstab" if line else "")}


@_salt_errors
def busy(name):
    """
    Which processes use mount ``name`` (from /proc links, without touching the mount).

    CLI Example:

    .. code-block:: bash

        salt '*' nfs_client.busy /mnt/data
    """
    users = mount_check.busy_users(name, _config()["proc"])
    return {"busy": bool(users), "users": users}


@_salt_errors
def apply(mounts=None, absent=None, remove_unlisted=False, force=None, config=None, test=False):
    """
    Converge NFS mounts: mount what is missing, umount + mount what differs, unmount what must
    go, and write fstab once.

    mounts
        ``{mount_point: {device, fstype, opts, persist, mkmnt, owner, group, mode, force, ...}}``
        or a list of such mappings each with ``name``.

    absent
        Mount points (or mappings ``{name, device, persist}``) that must not be mounted.

    remove_unlisted
        Unmount and drop from fstab every NFS mount not in ``mounts`` (default: leave them).

    force
        Default for every mount: ``lazy`` or ``force`` to unmount a busy mount that must change.

    config
        The fstab file (default ``nfs_client:fstab``, ``/etc/fstab``).

    test
        Report what would happen, changing nothing.

    Returns ``{changes: {mount_point: {...}}, steps: [...], notes: [...], errors: {mount_point: message}}``.

    CLI Example:

    .. code-block:: bash

        salt web1 nfs_client.apply "{'/mnt/data': {'device': 'nfs1:/srv/data', 'opts': 'vers=4.2'}}" test=True
    """
    force = mount_commands.check_force(force)
    specs = specs_from_managed(mounts or {}, force=force)
    return _apply(specs, _absent_items(absent or [], force), remove_unlisted, force, config, test)


@_salt_errors
def ensure_mounted(name, device, config=None, test=False, **kwargs):
    """
    Converge one mount (what the ``nfs_client.mounted`` state calls); the arguments are those of
    the state. Returns what ``apply`` returns.

    CLI Example:

    .. code-block:: bash

        salt web1 nfs_client.ensure_mounted /mnt/data nfs1:/srv/data opts=vers=4.2 test=True
    """
    spec = spec_from_args(name, device, **_public_kwargs(kwargs))
    return _apply([spec], [], False, spec.force, config, test)


def _apply(specs, gone, remove_unlisted, force, config, test):
    cfg = _config()
    fstab_path = config or cfg["fstab"]
    entries = mountinfo.read(cfg["mountinfo"])
    doc, original = fstab_codec.read(fstab_path)
    if remove_unlisted:
        wanted = {spec.name for spec in specs} | {item["name"] for item in gone}
        unlisted = {e.mount_point for e in entries if e.is_nfs} | {e.mount_point for e in doc.entries() if e.fstype in mo.NFS_FSTYPES}
        gone += [{"name": n, "device": None, "persist": True, "force": force} for n in sorted(unlisted - wanted)]
    plans = [plan_mount(spec, entries, doc) for spec in specs]
    outcome = {"changes": {}, "steps": [], "notes": [], "errors": {}, "warnings": []}
    if not test and any(plan.action != "none" for plan in plans):
        mount_check.require_nfs_client(cfg["proc_filesystems"], cfg["modprobe"])
    for plan in plans:
        _converge_one(cfg, plan, entries, test, outcome)
    for item in gone:
        _converge_absent(cfg, item, entries, doc, test, outcome)
    for plan in plans:
        if plan.spec.name not in outcome["errors"] and plan.fstab_result in ("new", "change"):
            doc.set_entry(plan.spec.fstab_entry())
    if not test and doc.render() != original:
        fstab_codec.write_atomic(fstab_path, doc.render())
    return outcome


def _absent_items(absent, force):
    items = []
    for index, item in enumerate(absent if isinstance(absent, (list, tuple)) else [absent]):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise InvalidInput(f"absent[{index}]", item, "must be a mount point or a mapping with name")
        unknown = sorted(set(item) - {"name", "device", "persist", "force"})
        if unknown:
            raise InvalidInput(f"absent[{index}].{unknown[0]}", item[unknown[0]], "is not known; allowed: name, device, persist, force")
        if item.get("device") is not None:
            mo.check_device(item["device"], "nfs", f"absent[{index}].device")
        items.append({"name": item["name"], "device": item.get("device"), "persist": bool(item.get("persist", False)),
                      "force": mount_commands.check_force(item.get("force", force), f"absent[{index}].force")})
    return items


def _record(outcome, name, changes=None, steps=(), notes=()):
    if changes:
        outcome["changes"].setdefault(name, {}).update(changes)
    outcome["steps"] += list(steps)
    outcome["notes"] += [f"{name}: {note}" for note in notes]


def _converge_one(cfg, plan, entries, test, outcome):
    spec = plan.spec
    changes = plan.changes()
    steps = plan.summary()
    notes = list(plan.notes)
    try:
        if plan.action == "remount" and not spec.force:
            users = mount_check.busy_users(spec.name, cfg["proc"])
            if users and test:
                who = ", ".join(f"pid {u['pid']} ({u['command']})" for u in users)
                notes.append(f"busy (used by {who}): the umount would be refused and the old mount kept; set force: lazy to detach it")
        if test:
            if plan.action == "mount" and spec.mkmnt:
                made = mount_commands.prepare_mount_point(spec.name, spec.uid, spec.gid, spec.mode, True, cfg["python"], float(cfg["mount_timeout"]))
                if made:
                    changes["mount_point"] = made
                    steps.insert(0, f"create or adjust the mount point {spec.name}")
            _record(outcome, spec.name, changes, steps, notes)
            return
        if plan.action == "remount":
            _umount(cfg, spec.name, spec.force)
        if plan.action in ("mount", "remount"):
            if spec.mkmnt:
                made = mount_commands.prepare_mount_point(spec.name, spec.uid, spec.gid, spec.mode, False, cfg["python"], float(cfg["mount_timeout"]))
                if made:
                    changes["mount_point"] = made
            _mount_or_restore(cfg, plan)
            after = mountinfo.read(cfg["mountinfo"])
            now = mountinfo.find(after, spec.name)
            if now is None:
                raise NfsKitError(f"mount of {spec.name} reported success but mountinfo shows nothing mounted there")
            still = mo.compare(spec.words, spec.fstype, now, [e for e in after if e is not now], spec.hidden)
            if still.differences:
                outcome["warnings"].append(
                    f"{spec.name}: after mounting, the kernel does not show {', '.join(d.wanted for d in still.differences)}; "
                    "if these are client-side options, list them in hidden_opts so the next run does not remount"
                )
    except NfsKitError as exc:
        outcome["errors"][spec.name] = str(exc)
        if "mount_point" in changes:
            _record(outcome, spec.name, {"mount_point": changes["mount_point"]})
        return
    _record(outcome, spec.name, changes, steps, notes)


def _mount_or_restore(cfg, plan):
    spec = plan.spec
    try:
        mount_commands.mount(cfg["mount"], spec.device, spec.name, spec.fstype, spec.mount_words(), float(cfg["mount_timeout"]))
    except NfsKitError as exc:
        if plan.action != "remount":
            raise
        old = plan.current
        try:
            mount_commands.mount(cfg["mount"], old.source, old.mount_point, old.fstype, restore_words(old), float(cfg["mount_timeout"]))
        except NfsKitError as again:
            raise NfsKitError(f"{exc}; mounting the old {old.source} again failed too: {again}") from None
        raise NfsKitError(f"{exc}; the old mount of {old.source} was restored") from None


def _converge_absent(cfg, item, entries, doc, test, outcome):
    name = item["name"]
    current = mountinfo.find(entries, name)
    changes, steps = {}, []
    if current is not None and item["device"] and not mo.device_matches(item["device"], current.fstype, (), current):
        outcome["notes"].append(f"{name}: {current.source} is mounted, not {item['device']}; left alone")
        current = None
    try:
        if current is not None:
            changes["mounted"] = {"old": current.describe(), "new": None}
            steps.append(f"unmount {name}" + (f" ({item['force']})" if item["force"] else ""))
            if not test:
                _umount(cfg, name, item["force"])
        if item["persist"]:
            line = doc.find(name)
            if line is not None:
                changes["fstab"] = {"old": line.render().decode().rstrip("\n"), "new": None}
                steps.append(f"remove {name} from fstab")
                doc.remove(name)
    except NfsKitError as exc:
        outcome["errors"][name] = str(exc)
        return
    _record(outcome, name, changes, steps)
