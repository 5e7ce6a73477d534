"""Desired NFS mounts as typed values, and what it takes to get from the mount table to them.

:func:`spec_from_args` validates a mount once, at the edge, accepting the argument names of core
``mount.mounted`` where they overlap (``name``, ``device``, ``fstype``, ``opts``, ``dump``,
``pass_num``, ``persist``, ``mount``, ``mkmnt``, ``hidden_opts``). :func:`plan_mount` is pure: it
reads a parsed mount table and fstab and says ``none``, ``mount`` or ``remount`` (a real
umount + mount: ``mount -o remount`` cannot change NFS options, saltstack/salt #18907).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from nfskit import mount_options as mo
from nfskit.errors import InvalidInput
from nfskit.fstab_codec import FstabDocument, FstabEntry, entry_from_args
from nfskit.mount_commands import check_force, parse_mode, resolve_owner
from nfskit.mountinfo import MountEntry, find
from nfskit.validation import check_path

SPEC_KEYS = {
    "name", "device", "fstype", "opts", "dump", "pass_num", "persist", "mount", "mkmnt", "owner", "group",
    "mode", "hidden_opts", "extra_mount_invisible_options", "force", "match_on", "user",
}


def _flag(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidInput(field, value, "must be true or false")


@dataclass(frozen=True)
class MountSpec:
    name: str
    device: str
    fstype: str = "nfs"
    words: tuple[str, ...] = ()
    dump: int = 0
    pass_num: int = 0
    persist: bool = True
    mount: bool = True
    mkmnt: bool = True
    uid: int = -1
    gid: int = -1
    mode: int = -1
    hidden: tuple[str, ...] = ()
    force: Optional[str] = None

    def fstab_entry(self) -> FstabEntry:
        return entry_from_args(self.name, self.device, self.fstype, self.words or ("defaults",), self.dump, self.pass_num)

    def mount_words(self) -> list[str]:
        """Options for mount(8): ``defaults`` means none."""
        return [word for word in self.words if word != "defaults"]

    def describe(self) -> str:
        return f"{self.device} on {self.name} type {self.fstype} ({','.join(self.words) or 'defaults'})"


def spec_from_args(
    name: object,
    device: object = None,
    fstype: object = "nfs",
    opts: object = None,
    dump: object = 0,
    pass_num: object = 0,
    persist: object = True,
    mount: object = True,
    mkmnt: object = True,
    owner: object = None,
    group: object = None,
    mode: object = None,
    hidden_opts: object = None,
    extra_mount_invisible_options: object = None,
    force: object = None,
    match_on: object = "auto",
    user: object = None,
    field: str = "",
) -> MountSpec:
    prefix = f"{field}." if field else ""
    check_path(name, f"{prefix}name")
    if any(char.isspace() for char in name):
        raise InvalidInput(f"{prefix}name", name, "contains whitespace, which fstab cannot hold unescaped; choose a mount point without spaces")
    if fstype not in mo.NFS_FSTYPES:
        raise InvalidInput(f"{prefix}fstype", fstype, f"is not managed by nfs_client; allowed: {', '.join(mo.NFS_FSTYPES)} (use mount.mounted for others)")
    mo.check_device(device, fstype, f"{prefix}device")
    words = mo.split_options(opts, f"{prefix}opts")
    if match_on not in ("auto", "name"):
        raise InvalidInput(f"{prefix}match_on", match_on, "is not supported; NFS mounts are matched on the mount point (name)")
    if user is not None:
        raise InvalidInput(f"{prefix}user", user, "(run mount as another user) is not supported; the mount point's owner is 'owner'")
    hidden = mo.split_options(hidden_opts, f"{prefix}hidden_opts") + mo.split_options(extra_mount_invisible_options, f"{prefix}extra_mount_invisible_options")
    uid, gid = resolve_owner(owner, group)
    spec = MountSpec(
        name=name,
        device=device,
        fstype=fstype,
        words=tuple(words),
        persist=_flag(persist, f"{prefix}persist"),
        mount=_flag(mount, f"{prefix}mount"),
        mkmnt=_flag(mkmnt, f"{prefix}mkmnt"),
        uid=uid,
        gid=gid,
        mode=parse_mode(mode),
        hidden=tuple(hidden),
        force=check_force(force, f"{prefix}force"),
    )
    # fstab's own checks (dump, pass_num) run now, before anything happens
    entry = entry_from_args(name, device, fstype, tuple(words) or ("defaults",), dump, pass_num)
    return MountSpec(**{**spec.__dict__, "dump": entry.dump, "pass_num": entry.pass_num})


def specs_from_managed(mounts: object, force: object = None) -> list[MountSpec]:
    """``{mount_point: {device, fstype, opts, ...}}`` or a list of mappings with ``name``."""
    if isinstance(mounts, Mapping):
        items = []
        for name, settings in mounts.items():
            if not isinstance(settings, Mapping):
                raise InvalidInput(f"mounts[{name}]", settings, "must be a mapping of mount settings (device, fstype, opts, ...)")
            items.append((f"mounts[{name}]", {"name": name, **settings}))
    elif isinstance(mounts, (list, tuple)):
        items = []
        for index, settings in enumerate(mounts):
            if not isinstance(settings, Mapping):
                raise InvalidInput(f"mounts[{index}]", settings, "must be a mapping with name, device, ...")
            items.append((f"mounts[{index}]", dict(settings)))
    else:
        raise InvalidInput("mounts", mounts, "must be a mapping {mount_point: {device, ...}} or a list of mappings")
    specs, seen = [], set()
    for where, settings in items:
        unknown = sorted(set(settings) - SPEC_KEYS)
        if unknown:
            raise InvalidInput(f"{where}.{unknown[0]}", settings[unknown[0]], f"is not a mount setting; known: {', '.join(sorted(SPEC_KEYS - {'user'}))}")
        settings.setdefault("force", force)
        spec = spec_from_args(field=where, **settings)
        if spec.name in seen:
            raise InvalidInput(f"{where}.name", spec.name, "is given twice")
        seen.add(spec.name)
        specs.append(spec)
    return specs


@dataclass
class MountPlan:
    spec: MountSpec
    current: Optional[MountEntry]
    action: str  # none | mount | remount
    reasons: list[str] = field(default_factory=list)
    option_changes: list[mo.Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fstab_old: Optional[FstabEntry] = None
    fstab_result: str = "skip"  # present | new | change | skip

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.action == "mount":
            out["mounted"] = {"old": None, "new": self.spec.describe()}
        elif self.action == "remount":
            out["mounted"] = {"old": self.current.describe(), "new": self.spec.describe()}
            if self.option_changes:
                out["options"] = {
                    "old": [d.actual or f"(no {d.option})" for d in self.option_changes],
                    "new": [d.wanted for d in self.option_changes],
                }
        if self.fstab_result in ("new", "change"):
            out["fstab"] = {
                "old": self.fstab_old.render().decode().rstrip("\n") if self.fstab_old else None,
                "new": self.spec.fstab_entry().render().decode().rstrip("\n"),
            }
        return out

    def summary(self) -> list[str]:
        """What would happen, in words, in the order it happens."""
        steps = []
        if self.action == "mount":
            steps.append(f"mount {self.spec.describe()}")
        elif self.action == "remount":
            how = {"lazy": "umount -l", "force": "umount -f"}.get(self.spec.force, "umount")
            steps.append(f"{how} {self.spec.name} and mount it again ({'; '.join(self.reasons)})")
        if self.fstab_result == "new":
            steps.append(f"add {self.spec.name} to fstab")
        elif self.fstab_result == "change":
            steps.append(f"change the fstab line of {self.spec.name}")
        return steps


def plan_mount(spec: MountSpec, entries: Sequence[MountEntry], fstab: Optional[FstabDocument]) -> MountPlan:
    current = find(entries, spec.name)
    plan = MountPlan(spec, current, "none")
    if spec.mount and current is None:
        plan.action = "mount"
    elif spec.mount:
        others = [entry for entry in entries if entry is not current]
        if not mo.device_matches(spec.device, spec.fstype, spec.words, current):
            plan.reasons.append(f"{current.source} is mounted, {spec.device} is wanted")
        version = mo.wanted_version(spec.words, spec.fstype)
        if not mo.fstype_matches(spec.fstype, version, current.fstype):
            plan.reasons.append(f"fstype {current.fstype} is mounted, {spec.fstype} (vers={version}) is wanted")
        comparison = mo.compare(spec.words, spec.fstype, current, others, spec.hidden)
        plan.option_changes = comparison.differences
        plan.reasons += [d.describe() for d in comparison.differences]
        plan.notes = comparison.notes()
        if plan.reasons:
            plan.action = "remount"
    if spec.persist and fstab is not None:
        plan.fstab_old = fstab.find(spec.name)
        wanted = spec.fstab_entry()
        if plan.fstab_old is None:
            plan.fstab_result = "new"
        else:
            plan.fstab_result = "present" if plan.fstab_old.same_as(wanted) else "change"
    return plan


def restore_words(entry: MountEntry) -> list[str]:
    """Options to mount ``entry`` again as it was, without what the kernel adds on its own."""
    derived = {"addr", "clientaddr", "mountaddr", "mountport", "namlen"}
    return [word for word in entry.options if word.partition("=")[0] not in derived]
