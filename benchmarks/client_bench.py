"""NFS client mounts on a real kernel (issue 3): the second (no-op) run of N NFS mounts, ours against
Salt's core ``mount.mounted`` with the same mounts and options, counted from the guest kernel.

The bed is the VM tier's (tests/vm): the cached Debian 12 image (``tests.vm.image.ensure_image``),
one VM with kernel nfsd exporting ``--client-exports`` directories, one client VM whose salt-minion
runs the states, and a salt-master on the host side in the bed's private network namespace
(``tests.vm.vmbed.VmBed``). Nothing here starts a VM or a master by itself.

Sides, each from nothing mounted (every bench mount unmounted, the fstab file emptied, core's mount
cache removed), each with the same mounts, devices, fstype and options:

- ``core``: one ``mount.mounted`` state per mount (Salt's own, as shipped in the VM's Salt);
- ``ours``: one ``nfs_client.mounted`` state per mount;
- ``ours-managed``: one ``nfs_client.managed`` state holding all mounts.

Phases per side: the first apply, then the no-op re-apply ``repeat`` times. Each phase is one
``state.apply`` job from the master's side (the VM tier's connected LocalClient), timed as a whole
on the host (wall) and by the states' own ``duration`` (summed).

Remounts are counted by the guest kernel, not by Salt: during each phase ftrace records every
``mount(2)`` and ``umount2(2)`` with its path (kprobes on ``__x64_sys_mount``/``__x64_sys_umount``
fetching the user-space strings) and its return value (the ``syscalls`` exit events); ``fsmount``
and ``move_mount`` (the new mount API) are counted too. A remount is a mount point under the bench
root that saw a successful umount2 (umount + mount) or a mount(2) with ``MS_REMOUNT``
(``mount -o remount``). Independently, mountinfo before and after is diffed per mount point: mount
ID, superblock (major:minor), options, and the line's place in the list (a re-attached mount moves
to the end; Linux hands a freed mount ID out again at once, so an equal ID alone proves nothing).
"""
from __future__ import annotations

import bisect
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from common import REPO, fmt_s, fmt_x, loadavg, median, say

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SERVER, CLIENT = "nfs-srv", "nfs-cli"
MOUNT_ROOT = "/mnt/nb"
FSTAB = "/etc/fstab.nfskit-bench"
EXPORTS_FILE = "/etc/exports.d/nkbench.exports"
SIDES = ("core", "ours", "ours-managed")
MS_REMOUNT = 0x20
TRACE = "/sys/kernel/tracing"

# (kind, opts, fstype, trailing slash on the device, why core may remount it). The order is the
# mount order: plain mounts come first, so the shared-transport kinds mount after a default one of
# the same server and version, as on a host that mounts several exports of one server.
PATTERN = [
    ("v4.2", "vers=4.2", "nfs", False, ""),
    ("nfsvers=3", "nfsvers=3", "nfs", False, "renamed: shown as vers=3"),
    ("vers=4", "vers=4", "nfs", False, "renamed: shown as vers=4.2"),
    ("slash", "vers=4.2", "nfs", True, "device: the kernel drops the trailing /"),
    ("timeo", "vers=4.2,timeo=100,retrans=5", "nfs", False, "shared: the kernel shows the first mount's timeo/retrans"),
    ("automount", "vers=4.2,x-systemd.automount", "nfs", False, "never shown: x-systemd.automount"),
    ("v3", "vers=3", "nfs", False, ""),
    ("minorversion", "vers=4,minorversion=1", "nfs", False, "renamed: shown as vers=4.1"),
    ("lookupcache", "vers=4.2,lookupcache=positive", "nfs", False, "renamed: shown as lookupcache=pos"),
    ("async", "vers=4.2,async", "nfs", False, "never shown: async"),
    ("acregmin", "vers=3,acregmin=3", "nfs", False, "never shown: the default acregmin=3"),
    ("noauto", "vers=4.2,noauto", "nfs", False, "never shown: noauto"),
    ("hard", "vers=4.2,hard,_netdev", "nfs", False, ""),
    ("v4.2", "vers=4.2", "nfs", False, ""),
    ("v3", "vers=3", "nfs", False, ""),
    ("nconnect", "vers=4.2,nconnect=2", "nfs4", False, "shared: nconnect of the first mount; fstype nfs4: core uses mount -o remount"),
    ("v3-timeo", "vers=3,timeo=50,retrans=4", "nfs", False, "shared: the kernel shows the first mount's timeo/retrans"),
    ("v4.2", "vers=4.2", "nfs", False, ""),
    ("hard", "vers=4.2,hard,_netdev", "nfs", False, ""),
    ("v3", "vers=3", "nfs", False, ""),
    ("v4.2", "vers=4.2", "nfs", False, ""),
    ("nfsvers=3", "nfsvers=3", "nfs", False, "renamed: shown as vers=3"),
    ("vers=4", "vers=4", "nfs", False, "renamed: shown as vers=4.2"),
    ("slash", "vers=4.2", "nfs", True, "device: the kernel drops the trailing /"),
    ("v4.2", "vers=4.2", "nfs", False, ""),
]


def mount_set(server_ip: str, count: int = 50, exports: int = 15) -> list[dict]:
    """``count`` mounts of ``exports`` exports (several mount points each), kinds from PATTERN in turn."""
    mounts = []
    for i in range(count):
        kind, opts, fstype, slash, why = PATTERN[i % len(PATTERN)]
        export = f"/srv/nfs/nb{i % exports:02d}"
        mounts.append({
            "name": f"{MOUNT_ROOT}/m{i:02d}-{kind.replace('=', '')}",
            "device": f"{server_ip}:{export}" + ("/" if slash else ""),
            "fstype": fstype, "opts": opts, "kind": kind, "why": why,
        })
    return mounts


# ------------------------------------------------------------------------------------------- SLS


def sls_text(side: str, mounts: list[dict]) -> str:
    if side == "core":
        doc = {m["name"]: {"mount.mounted": [{"device": m["device"]}, {"fstype": m["fstype"]}, {"opts": m["opts"]},
                                             {"mkmnt": True}, {"persist": True}, {"config": FSTAB}]} for m in mounts}
    elif side == "ours":
        doc = {m["name"]: {"nfs_client.mounted": [{"device": m["device"]}, {"fstype": m["fstype"]}, {"opts": m["opts"]},
                                                  {"config": FSTAB}]} for m in mounts}
    elif side == "ours-managed":
        doc = {"nfskit-bench-mounts": {"nfs_client.managed": [
            {"config": FSTAB},
            {"mounts": {m["name"]: {"device": m["device"], "fstype": m["fstype"], "opts": m["opts"]} for m in mounts}},
        ]}}
    elif side == "floor":
        doc = {"nfskit-bench-floor": {"test.succeed_without_changes": []}}
    else:
        raise ValueError(side)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


# --------------------------------------------------------------------------------- guest tracing

_KPROBES = (
    # x86_64 syscall wrappers get pt_regs in %di: di (arg 1) at +112, si +104, dx +96, r10 +56
    "p:nkbench/mount __x64_sys_mount dev=+0(+112(%di)):ustring dir=+0(+104(%di)):ustring "
    "type=+0(+96(%di)):ustring flags=+56(%di):x64",
    "p:nkbench/umount __x64_sys_umount target=+0(+112(%di)):ustring flags=+104(%di):x64",
)
_SYSCALL_EVENTS = ("sys_enter_mount", "sys_exit_mount", "sys_enter_umount", "sys_exit_umount",
                   "sys_enter_fsmount", "sys_exit_fsmount", "sys_enter_move_mount", "sys_exit_move_mount")


def trace_start(cli) -> bool:
    """Arm ftrace in the guest; True when the kprobes (paths) are there, False for syscall counts only."""
    kprobes = "\n".join(f"echo '{k}' >> $T/kprobe_events 2>/dev/null" for k in _KPROBES)
    events = " ".join(_SYSCALL_EVENTS)
    out = cli.sh(f"""cd / && T={TRACE}; [ -d $T/events ] || mount -t tracefs nodev $T
echo 0 > $T/tracing_on; echo 8192 > $T/buffer_size_kb; echo > $T/trace
[ -d $T/events/nkbench ] || {{ {kprobes}
true; }}
for e in {events}; do echo 1 > $T/events/syscalls/$e/enable; done
if [ -d $T/events/nkbench ]; then echo 1 > $T/events/nkbench/enable; echo kprobes=yes; else echo kprobes=no; fi
echo 1 > $T/tracing_on""")
    return "kprobes=yes" in out


def trace_stop(cli) -> str:
    # never start a command with NAME=...: the salt CLI would take it for a keyword argument
    return cli.sh(f"cd / && T={TRACE}; echo 0 > $T/tracing_on; cat $T/trace; echo > $T/trace", timeout=120)


def trace_remove(cli) -> None:
    cli.run(f"cd / && T={TRACE}; echo 0 > $T/tracing_on; [ -d $T/events/nkbench ] && echo 0 > $T/events/nkbench/enable; "
            f"for e in {' '.join(_SYSCALL_EVENTS)}; do echo 0 > $T/events/syscalls/$e/enable; done; "
            "echo '-:nkbench/mount' >> $T/kprobe_events; echo '-:nkbench/umount' >> $T/kprobe_events; true")


_LINE = re.compile(r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\[\d+\]\s+\S+\s+(?P<ts>[\d.]+):\s+(?P<rest>.*)$")
_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
_EXIT = re.compile(r"^sys_(mount|umount|fsmount|move_mount) -> (0x[0-9a-f]+)")
_ENTER = re.compile(r"^sys_(mount|umount|fsmount|move_mount)\((.*)\)$")


def parse_trace(text: str) -> list[dict]:
    """ftrace lines -> calls ``{op, path, dev, type, flags, ret, comm, pid}`` in order."""
    calls, pending = [], {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        pid, rest = int(m["pid"]), m["rest"]
        for op in ("mount", "umount"):
            if rest.startswith(f"{op}: ("):
                kv = {k: v.strip('"') for k, v in _KV.findall(rest.split(")", 1)[1])}
                call = {"op": op, "path": kv.get("dir" if op == "mount" else "target"), "dev": kv.get("dev"),
                        "type": kv.get("type"), "flags": int(kv.get("flags", "0"), 16), "ret": None,
                        "comm": m["comm"].strip(), "pid": pid}
                pending[pid] = call
                calls.append(call)
                break
        else:
            enter = _ENTER.match(rest)
            if enter:
                op = enter.group(1)
                if pid not in pending or pending[pid]["op"] != op or pending[pid]["ret"] is not None:
                    # no kprobe line for it (kprobes unavailable, or fsmount/move_mount): count it anyway
                    args = dict(a.split(": ", 1) for a in enter.group(2).split(", ") if ": " in a)
                    call = {"op": op, "path": None, "dev": None, "type": None,
                            "flags": int(args.get("flags", "0"), 16), "ret": None, "comm": m["comm"].strip(), "pid": pid}
                    pending[pid] = call
                    calls.append(call)
                continue
            done = _EXIT.match(rest)
            if done and pid in pending and pending[pid]["op"] == done.group(1) and pending[pid]["ret"] is None:
                ret = int(done.group(2), 16)
                pending[pid]["ret"] = ret - (1 << 64) if ret >= 1 << 63 else ret
    return calls


def count_remounts(calls: list[dict], have_paths: bool) -> dict:
    """What the kernel saw under MOUNT_ROOT: mounts, umounts, ``-o remount`` calls, remounted points."""
    def ours(call):
        if not have_paths:
            return True  # no paths: every call counts (nothing else mounts in the client VM meanwhile)
        path = call["path"] or ""
        return path == MOUNT_ROOT or path.startswith(MOUNT_ROOT + "/")

    mine = [c for c in calls if ours(c) and c["op"] in ("mount", "umount")]
    umounted = [c for c in mine if c["op"] == "umount" and c["ret"] == 0]
    mounted = [c for c in mine if c["op"] == "mount" and c["ret"] == 0 and not c["flags"] & MS_REMOUNT]
    remount_calls = [c for c in mine if c["op"] == "mount" and c["flags"] & MS_REMOUNT]
    points = sorted({c["path"] or "?" for c in umounted} | {c["path"] or "?" for c in remount_calls if c["ret"] == 0})
    return {
        "remounts": len(umounted) + sum(1 for c in remount_calls if c["ret"] == 0),
        "umount_ok": len(umounted),
        "mount_ok": len(mounted),
        "remount_calls": len(remount_calls),
        "remount_calls_ok": sum(1 for c in remount_calls if c["ret"] == 0),
        "failed_calls": sum(1 for c in mine if c["ret"] not in (0, None)),
        "new_api_calls": sum(1 for c in calls if c["op"] in ("fsmount", "move_mount")),
        "points": points,
        "have_paths": have_paths,
    }


# -------------------------------------------------------------------------------- mountinfo diff


def snapshot(cli) -> dict:
    """``{mount point: {id, sb, opts, superopts, fstype, source, pos}}`` for the bench's NFS mounts."""
    out = {}
    for pos, line in enumerate(cli.sh("cat /proc/self/mountinfo").splitlines()):
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 6 or len(tail) < 3 or not fields[4].startswith(MOUNT_ROOT + "/"):
            continue
        out[fields[4]] = {"id": int(fields[0]), "sb": fields[2], "opts": fields[5], "fstype": tail[0],
                          "source": tail[1], "superopts": tail[2], "pos": pos}
    return out


def _moved(before: dict, after: dict) -> set:
    """Mount points outside the longest run that kept its relative order: re-attached mounts go to the
    end of the mount list, so these are the fewest points whose move explains the new order."""
    common = [p for p in sorted(after, key=lambda p: after[p]["pos"]) if p in before]
    seq = [before[p]["pos"] for p in common]
    # longest increasing subsequence with back pointers
    tails, tails_idx, prev = [], [], [-1] * len(seq)
    for i, value in enumerate(seq):
        j = bisect.bisect_left(tails, value)
        if j == len(tails):
            tails.append(value)
            tails_idx.append(i)
        else:
            tails[j] = value
            tails_idx[j] = i
        prev[i] = tails_idx[j - 1] if j else -1
    keep, i = set(), tails_idx[-1] if tails_idx else -1
    while i >= 0:
        keep.add(common[i])
        i = prev[i]
    return set(common) - keep


def diff_snapshots(before: dict, after: dict) -> dict:
    changed = {}
    for point in sorted(set(before) | set(after)):
        b, a = before.get(point), after.get(point)
        if b is None or a is None:
            changed[point] = ["appeared" if b is None else "gone"]
            continue
        why = [k for k in ("id", "sb", "opts", "superopts", "fstype", "source") if a[k] != b[k]]
        if why:
            changed[point] = why
    for point in _moved(before, after):
        changed.setdefault(point, []).append("moved")
    return {"changed": len(changed), "points": changed}


# ------------------------------------------------------------------------------------ the phases


def clean(cli) -> None:
    """Nothing of the bench left: its mounts unmounted, its mount points removed (rmdir only: never a
    recursive delete that could reach into a mount), the fstab file empty, core's mount cache gone."""
    cli.sh(f"""for m in $(awk '$2 ~ "^{MOUNT_ROOT}/" {{print $2}}' /proc/self/mounts | sort -r); do
  umount "$m" 2>/dev/null || umount -l "$m"; done
if awk '$2 ~ "^{MOUNT_ROOT}/" {{found=1}} END {{exit !found}}' /proc/self/mounts; then echo still mounted >&2; exit 1; fi
[ -d {MOUNT_ROOT} ] && find {MOUNT_ROOT} -mindepth 1 -maxdepth 1 -type d -exec rmdir {{}} +
[ -d {MOUNT_ROOT} ] && rmdir {MOUNT_ROOT}
: > {FSTAB}; rm -f /var/cache/salt/minion/mounts; true""", timeout=300)


def apply_timed(bed, cli, sls: str, timeout: float = 1800):
    started = time.monotonic()
    runs = cli.state_apply(sls, timeout=timeout)
    return time.monotonic() - started, runs


def measured_apply(bed, cli, side: str, phase: str, rep: int, mounts: list[dict]) -> dict:
    before = snapshot(cli)
    have_paths = trace_start(cli)
    load0 = loadavg()
    wall, runs = apply_timed(bed, cli, f"nkbench.{side.replace('-', '_')}")
    load1 = loadavg()
    calls = parse_trace(trace_stop(cli))
    after = snapshot(cli)
    kernel = count_remounts(calls, have_paths)
    fstab_lines = int(cli.sh(f"grep -cE '[[:space:]]{MOUNT_ROOT}/' {FSTAB} || true").strip() or 0)
    failed = [r for r in runs if r.result is not True]
    with_changes = [r.name for r in runs if r.changes]
    note_lines = [line for r in runs for line in r.comment.splitlines() if line.startswith("Note:")]
    notes = len(note_lines)
    mounted = sum(1 for m in mounts if m["name"] in after)
    record = {
        "side": side, "phase": phase, "rep": rep, "wall_s": wall,
        "state_s": sum(r.duration_ms for r in runs) / 1000.0, "states": len(runs),
        "failed": len(failed), "failed_comments": [f"{r.name}: {r.comment[:300]}" for r in failed][:10],
        "changes": len(with_changes), "changed_states": with_changes[:60],
        "notes": notes, "note_lines": note_lines[:20], "kernel": kernel, "mountinfo": diff_snapshots(before, after),
        "mounted": mounted, "fstab_lines": fstab_lines, "loadavg": [load0, load1],
    }
    if side == "ours-managed" and runs:
        # one state for all mounts: which mount points it touched is in its changes
        record["changed_mounts"] = sorted(runs[0].changes) if isinstance(runs[0].changes, dict) else []
    # core's failed states and remounts on the no-op run are findings (columns), not a broken run
    record["correct"] = (mounted == len(mounts) and fstab_lines == len(mounts)
                         and (not failed if side != "core" or phase == "first" else True)
                         and (kernel["remounts"] == 0 if side != "core" and phase == "noop" else True))
    k = kernel
    say(f"  {side} {phase}{'' if phase == 'first' else f' #{rep + 1}'}: wall {fmt_s(wall)}, states {fmt_s(record['state_s'])}, "
        f"{len(runs)} states, {len(failed)} failed, {len(with_changes)} with changes; kernel: {k['remounts']} remounts "
        f"({k['umount_ok']} umount + {k['mount_ok']} mount, {k['remount_calls']} -o remount), "
        f"mountinfo: {record['mountinfo']['changed']} changed; {mounted}/{len(mounts)} mounted, fstab {fstab_lines}")
    return record


def run_side(bed, cli, side: str, mounts: list[dict], repeat: int) -> list[dict]:
    bed.master.write_sls(f"nkbench.{side.replace('-', '_')}", sls_text(side, mounts))
    say(f"{side}: cleaning up, then first apply of {len(mounts)} mounts")
    clean(cli)
    records = [measured_apply(bed, cli, side, "first", 0, mounts)]
    for rep in range(repeat):
        records.append(measured_apply(bed, cli, side, "noop", rep, mounts))
    return records


def floor(bed, cli, repeat: int) -> list[float]:
    """Salt's fixed cost of one state.apply through the master: a one-state SLS that changes nothing."""
    bed.master.write_sls("nkbench.floor", sls_text("floor", []))
    return [apply_timed(bed, cli, "nkbench.floor", timeout=300)[0] for _ in range(repeat)]


def setup_server(srv, exports: int) -> None:
    dirs = " ".join(f"/srv/nfs/nb{i:02d}" for i in range(exports))
    lines = "".join(f"/srv/nfs/nb{i:02d} 10.77.0.0/24(rw,sync,no_subtree_check,no_root_squash)\\n" for i in range(exports))
    srv.sh(f"mkdir -p {dirs} && chmod 0777 {dirs} && mkdir -p /etc/exports.d && printf '{lines}' > {EXPORTS_FILE} "
           "&& exportfs -ra")


# ----------------------------------------------------------------------------------- the run


def summarise(records: list[dict]) -> list[dict]:
    rows = []
    for side in SIDES:
        for phase in ("first", "noop"):
            recs = [r for r in records if r["side"] == side and r["phase"] == phase]
            if not recs:
                continue
            rows.append({
                "side": side, "phase": phase, "runs": len(recs),
                "wall_s": median([r["wall_s"] for r in recs]), "state_s": median([r["state_s"] for r in recs]),
                "wall_all": [round(r["wall_s"], 2) for r in recs], "state_all": [round(r["state_s"], 3) for r in recs],
                "remounts": median([r["kernel"]["remounts"] for r in recs]),
                "remounts_all": [r["kernel"]["remounts"] for r in recs],
                "umount_all": [r["kernel"]["umount_ok"] for r in recs],
                "mount_all": [r["kernel"]["mount_ok"] for r in recs],
                "remount_calls_all": [r["kernel"]["remount_calls"] for r in recs],
                "mountinfo_changed_all": [r["mountinfo"]["changed"] for r in recs],
                "changes_all": [r["changes"] for r in recs], "failed_all": [r["failed"] for r in recs],
                "notes_all": [r["notes"] for r in recs],
                "correct": all(r["correct"] for r in recs),
            })
    return rows


def by_kind(mounts: list[dict], records: list[dict]) -> list[dict]:
    """Per kind of mount: how many of its mount points each side remounted in each no-op run."""
    kinds = {}
    for m in mounts:
        entry = kinds.setdefault(m["kind"], {"kind": m["kind"], "opts": m["opts"], "fstype": m["fstype"],
                                             "slash": m["device"].endswith("/"), "why": m["why"], "points": []})
        entry["points"].append(m["name"])
    for entry in kinds.values():
        for side in SIDES:
            noop = [r for r in records if r["side"] == side and r["phase"] == "noop"]
            if noop:
                entry[side] = [sum(1 for p in entry["points"] if p in r["kernel"]["points"]) for r in noop]
    return list(kinds.values())


def run(mounts: int = 50, exports: int = 15, repeat: int = 3, sides=SIDES, keep: bool = False) -> dict:
    from tests.vm.image import ensure_image
    from tests.vm.vmbed import VmBed

    image = ensure_image(say)
    workdir = Path(tempfile.mkdtemp(prefix="nfskit-bench-client-"))
    say(f"VM image {image.dir.name} (kernel {image.kernel_release}, salt {image.salt_version}); logs under {workdir}")
    section = {"mounts_n": mounts, "exports_n": exports, "repeat": repeat, "sides": list(sides),
               "kernel_release": image.kernel_release, "salt": image.salt_version, "fstab": FSTAB, "root": MOUNT_ROOT}
    with image.in_use():
        bed = VmBed(image, workdir, say).start()
        try:
            load_boot = loadavg()
            srv, cli = bed.boot(SERVER, CLIENT, timeout=900)
            section.update(boot_s=dict(bed.boot_seconds), accel=bed.accel, loadavg_boot=[load_boot, loadavg()])
            srv.start_nfsd()
            setup_server(srv, exports)
            cli.sync_modules()
            section["guest"] = {
                "uname": cli.sh("uname -r").strip(),
                "nfs_common": cli.sh("dpkg-query -W -f '${Version}' nfs-common").strip(),
                "util_linux": cli.sh("dpkg-query -W -f '${Version}' util-linux").strip(),
                "salt": cli.salt("test.version"),
            }
            specs = mount_set(srv.ip, mounts, exports)
            section["mount_set"] = specs
            section["floor_s"] = floor(bed, cli, 3)
            say(f"floor (state.apply of one no-op state through the master): {', '.join(fmt_s(x) for x in section['floor_s'])}")
            records = []
            for side in sides:
                records += run_side(bed, cli, side, specs, repeat)
            clean(cli)
            trace_remove(cli)
            section["records"] = records
            section["rows"] = summarise(records)
            section["kinds"] = by_kind(specs, records)
        except BaseException:
            keep = True  # the serial consoles and the master's log say what went wrong
            raise
        finally:
            bed.stop()
            if keep:
                say(f"logs kept under {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    section["md"] = render_md(section)
    return section


def cannot_run() -> str:
    """Why this machine cannot run the VM bed, or '' (the VM tier's own check)."""
    from tests.vm.conftest import _cannot_run

    return _cannot_run()


# -------------------------------------------------------------------------------------- markdown

LABEL = {
    "core": "core `mount.mounted` (one state per mount)",
    "ours": "**ours** `nfs_client.mounted` (one state per mount)",
    "ours-managed": "**ours** `nfs_client.managed` (one state, all mounts)",
}


def _runs(values, fmt=str):
    return ", ".join(fmt(v) for v in values)


def render_md(section: dict) -> list[str]:
    rows = {(r["side"], r["phase"]): r for r in section.get("rows", [])}
    n = section.get("mounts_n")
    guest = section.get("guest", {})
    out = [
        f"{n} NFS mounts of {section.get('exports_n')} exports (kernel nfsd in one VM) on a client VM: Debian 12 kernel "
        f"{guest.get('uname', section.get('kernel_release'))}, nfs-common {guest.get('nfs_common', '?')}, Salt {guest.get('salt', section.get('salt'))} "
        "(core's `mount.mounted` as shipped there), QEMU TCG with 1 vCPU per VM on the 2 shared cores. "
        "Same mounts, devices, fstype and options on every side; fstab lines go to "
        f"`{section.get('fstab')}` (`config:`) on every side. Each side starts from nothing mounted. "
        "Wall = the whole `state.apply` job seen from the master's side (the VM tier's connected LocalClient in the "
        "bed's namespace: publish, the minion's job, the return); state = the states' own durations, summed. "
        "Remounts are counted by the guest kernel (ftrace of mount(2)/umount2(2) under the bench root): "
        "a mount point unmounted and mounted again, or given `mount -o remount`. "
        f"No-op: median of {section.get('repeat')} runs (all runs in brackets).",
        "",
        "| side | first apply: wall / state | no-op: wall / state | remounts on the no-op run | states with changes (no-op) | failed (no-op) | mountinfo changed (no-op) | checks |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for side in SIDES:
        f, o = rows.get((side, "first")), rows.get((side, "noop"))
        if not f and not o:
            continue
        first = f"{fmt_s(f['wall_s'])} / {fmt_s(f['state_s'])}" if f else "n/a"
        noop = (f"{fmt_s(o['wall_s'])} / {fmt_s(o['state_s'])} [{_runs(o['wall_all'], fmt_s)}]") if o else "n/a"
        rem = (f"**{o['remounts']:g}** of {n} [{_runs(o['remounts_all'])}]" if o else "n/a")
        if o and any(o["remount_calls_all"]):
            rem += f" (`-o remount` calls: {_runs(o['remount_calls_all'])})"
        checks = []
        if f:
            checks.append(f"first apply {'ok' if f['correct'] else 'FAILED'} ({f['mount_all'][0]} mounts made)")
        if o:
            checks.append(f"no-op {'ok' if o['correct'] else 'FAILED'}")
        out.append(
            f"| {LABEL[side]} | {first} | {noop} | {rem} | {_runs(o['changes_all']) if o else 'n/a'} | "
            f"{_runs(o['failed_all']) if o else 'n/a'} | {_runs(o['mountinfo_changed_all']) if o else 'n/a'} | {'; '.join(checks)} |"
        )
    out.append("")
    def speed_ups(phase: str, label: str, bold: str) -> None:
        core = rows.get(("core", phase))
        for side in ("ours", "ours-managed"):
            r = rows.get((side, phase))
            if core and r and r["wall_s"] and r["state_s"]:
                out.append(f"- {label}, core / {side}: wall {bold}{fmt_x(core['wall_s'] / r['wall_s'])}{bold}, "
                           f"state {fmt_x(core['state_s'] / r['state_s'])}.")

    speed_ups("noop", "No-op speed-up", "**")
    core_o = rows.get(("core", "noop"))
    # a no-op run of ours that still had mounts to make (its earlier run failed some) is no no-op:
    # the speed-up on the runs that changed nothing and failed nothing, core's runs all counted
    for side in ("ours", "ours-managed"):
        clean = [r for r in section.get("records", []) if r["side"] == side and r["phase"] == "noop"
                 and not r["changes"] and not r["failed"]]
        o = rows.get((side, "noop"))
        if core_o and clean and o and len(clean) < o["runs"]:
            wall, state = median([r["wall_s"] for r in clean]), median([r["state_s"] for r in clean])
            out.append(f"- {side}, only the no-op runs that changed and failed nothing ({len(clean)} of {o['runs']}): "
                       f"wall {fmt_s(wall)} / state {fmt_s(state)}; core / {side}: wall **{fmt_x(core_o['wall_s'] / wall)}**, "
                       f"state {fmt_x(core_o['state_s'] / state)}.")
    speed_ups("first", "First apply", "")
    for side in SIDES:
        for phase in ("first", "noop"):
            recs = [r for r in section.get("records", []) if r["side"] == side and r["phase"] == phase and r["failed"]]
            for r in recs:
                first = (r["failed_comments"][0] if r["failed_comments"] else "").replace("\n", " | ")
                when = "first apply" if phase == "first" else f"no-op run {r['rep'] + 1}"
                out.append(f"- {side}, {when}: {r['failed']} of {r['states']} states failed, e.g. `{first[:200]}`.")
    if section.get("floor_s"):
        out.append(f"- Salt's floor here, `state.apply` of one no-op state through the master: "
                   f"{fmt_s(median(section['floor_s']))} (runs: {_runs(section['floor_s'], fmt_s)}).")
    targets = []
    for side in ("ours", "ours-managed"):
        o = rows.get((side, "noop"))
        if o:
            zero = all(x == 0 for x in o["remounts_all"])
            speed = core_o["wall_s"] / o["wall_s"] if core_o and o["wall_s"] else None
            targets.append(f"{side}: {'0' if zero else 'NOT 0'} remounts ({'met' if zero else '**missed**'}), "
                           f"{fmt_x(speed)} faster by wall ({'met' if speed and speed >= 3 else '**missed**'})")
    if targets:
        out.append("- Targets (0 remounts, >= 3x faster on the no-op run): " + "; ".join(targets) + ".")
    out.append("")
    kinds = section.get("kinds") or []
    if kinds:
        out += [
            "Remounts per kind of mount on the no-op runs (mount points of that kind remounted, per run):",
            "",
            "| kind | fstype, options, device | mounts | why core remounts it | core | ours | ours, managed |",
            "|---|---|---:|---|---:|---:|---:|",
        ]
        for k in kinds:
            spec = f"{k['fstype']}, `{k['opts']}`" + (", device ends in `/`" if k["slash"] else "")
            cells = [_runs(k[s]) if s in k else "n/a" for s in SIDES]
            out.append(f"| {k['kind']} | {spec} | {len(k['points'])} | {k['why'] or '-'} | " + " | ".join(cells) + " |")
        out.append("")
    return out
