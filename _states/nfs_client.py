"""
Manage NFS client mounts as states that converge once and then stay quiet.

``mounted`` accepts the argument names of core ``mount.mounted`` where they overlap (``name``,
``device``, ``fstype``, ``opts``, ``dump``, ``pass_num``, ``config``, ``persist``, ``mount``,
``mkmnt``, ``match_on``, ``hidden_opts``, ``extra_mount_invisible_options``), so a state can
switch by renaming:

.. code-block:: yaml

    /mnt/data:
      nfs_client.mounted:
        - device: nfs1:/srv/data
        - fstype: nfs
        - opts: vers=4.2,hard,_netdev
        - owner: root
        - group: web
        - mode: '0775'

    /mnt/scratch:
      nfs_client.unmounted:
        - persist: true

    web-mounts:
      nfs_client.managed:
        - force: lazy
        - mounts:
            /mnt/a: {device: 'nfs1:/srv/a', opts: 'nfsvers=3'}
            /mnt/efs: {device: 'fs-0123456789abcdef0:/', fstype: efs, opts: 'tls,iam,_netdev'}

Options are compared after normalisation (``nfsvers=3`` is ``vers=3``, ``vers=4`` is whatever
4.x the kernel negotiated, ``noauto``/``_netdev``/``x-systemd.*``/EFS ``tls`` are never shown by
the kernel ...), so an unchanged mount is not touched. A real change is a umount + mount, never
``mount -o remount``. A busy mount is never unmounted unless ``force: lazy`` (or ``force``) is
set: the state fails, says who uses it, and the old mount keeps working. ``test=True`` lists each
step that would run and the changes with old and new values.
"""
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "nfs_client"


def __virtual__():
    if "nfs_client.apply" in __salt__:
        return __virtualname__
    return (False, "nfs_client state: the nfs_client execution module is not available")


def _converge(state_name, describe, function="nfs_client.apply", /, **kwargs):
    ret = {"name": state_name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__.get("test"))
    try:
        outcome = __salt__[function](test=test, **kwargs)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if outcome["warnings"]:
        ret["warnings"] = outcome["warnings"]
    ret["changes"] = outcome["changes"]
    lines = []
    if outcome["errors"]:
        ret["result"] = False
        lines += [f"{point}: {message}" for point, message in outcome["errors"].items()]
    if outcome["steps"]:
        lines.append(("Would " if test else "Done: ") + "; ".join(outcome["steps"]))
    elif not outcome["errors"]:
        lines.append(f"{describe} already in the desired state")
    lines += [f"Note: {note}" for note in outcome["notes"]]
    if test and outcome["steps"] and ret["result"]:
        ret["result"] = None
    ret["comment"] = "\n".join(lines)
    return ret


def _public(kwargs):
    return {key: value for key, value in kwargs.items() if not key.startswith("__")}


def mounted(
    name,
    device,
    fstype="nfs",
    opts="defaults",
    dump=0,
    pass_num=0,
    config=None,
    persist=True,
    mount=True,
    mkmnt=True,
    owner=None,
    group=None,
    mode=None,
    force=None,
    hidden_opts=None,
    extra_mount_invisible_options=None,
    match_on="auto",
    user=None,
    **kwargs,
):
    """
    Ensure ``device`` is mounted on ``name`` with ``opts`` in effect (and in fstab).

    name
        The mount point.

    device
        ``server:/path`` (``[v6addr]:/path``), or ``fs-xxxxxxxx:/`` for ``fstype: efs``.

    fstype
        ``nfs`` (default), ``nfs4`` or ``efs``.

    opts
        Mount options, a comma-separated string or a list (default ``defaults``).

    persist
        Keep the fstab line in step (default true); ``config`` is the fstab file.

    mount
        Mount it now (default true); false manages only the fstab line.

    mkmnt
        Create the mount point (default true) with ``owner``, ``group`` and ``mode``.

    force
        ``lazy`` or ``force``: how to unmount a busy mount whose options must change.
        Without it a busy mount is left alone and the state fails.

    hidden_opts, extra_mount_invisible_options
        More options the kernel does not show and that must not be compared.
    """
    unknown = sorted(_public(kwargs))
    if unknown:
        return {"name": name, "result": False, "changes": {}, "comment": f"{unknown[0]}: is not an argument of nfs_client.mounted"}
    spec = {
        "device": device, "fstype": fstype, "opts": opts, "dump": dump, "pass_num": pass_num, "persist": persist,
        "mount": mount, "mkmnt": mkmnt, "owner": owner, "group": group, "mode": mode, "force": force,
        "hidden_opts": hidden_opts, "extra_mount_invisible_options": extra_mount_invisible_options,
        "match_on": match_on, "user": user,
    }
    return _converge(name, f"Mount {name}", "nfs_client.ensure_mounted", name=name, config=config, **spec)


def unmounted(name, device=None, persist=False, config=None, force=None):
    """
    Ensure nothing (or not ``device``) is mounted on ``name``; with ``persist`` also drop its
    fstab line. A busy mount is only unmounted with ``force: lazy`` or ``force: force``.
    """
    return _converge(
        name, f"Mount {name}", absent=[{"name": name, "device": device, "persist": persist, "force": force}], config=config
    )


def managed(name, mounts=None, remove_unlisted=False, force=None, config=None):
    """
    Ensure all of a host's NFS mounts in one state (one mount table read, one fstab write).

    name
        A label for the set.

    mounts
        ``{mount_point: {device, fstype, opts, persist, mkmnt, owner, group, mode, force}}`` or
        a list of mappings each with ``name``.

    remove_unlisted
        Unmount and drop from fstab every NFS mount not listed (default: leave them alone).

    force
        Default ``force`` for every mount (``lazy`` or ``force``).
    """
    return _converge(name, f"NFS mounts {name}", mounts=mounts or {}, remove_unlisted=remove_unlisted, force=force, config=config)
