"""mount(8), umount(8) and mount point creation, each in a child process with a deadline.

umount runs with ``-c`` (no path canonicalisation): canonicalising stats the mount point, which
hangs on a dead server. A busy mount is refused by the kernel (EBUSY) and stays mounted; only an
explicit ``force`` of ``lazy`` (``umount -l``: detach now, clean up when the last user leaves) or
``force`` (``umount -f``: abort outstanding NFS requests) goes further.
"""
from __future__ import annotations

import grp
import json
import pwd
import sys
from typing import Optional, Sequence

from nfskit import bounded
from nfskit.errors import BackendError, Conflict, InvalidInput, OperationTimeout

FORCE_MODES = {"lazy": "-l", "force": "-f"}
MOUNT_HELPER_HINT = "mount.nfs is missing: install nfs-common (Debian) or nfs-utils (RHEL); EFS needs amazon-efs-utils"


def check_force(force: object, field: str = "force") -> Optional[str]:
    if force in (None, False, "", "no", "none"):
        return None
    if force not in FORCE_MODES:
        raise InvalidInput(field, force, "must be 'lazy' (umount -l) or 'force' (umount -f), or empty to never force")
    return force


def mount(mount_cmd: Sequence[str], device: str, mount_point: str, fstype: str, words: Sequence[str], timeout: float) -> None:
    argv = [*mount_cmd, "-t", fstype]
    if words:
        argv += ["-o", ",".join(words)]
    argv += [device, mount_point]
    outcome = bounded.run(argv, timeout)
    if outcome.timed_out:
        raise OperationTimeout(f"mounting {device} on {mount_point} did not finish within {timeout:g}s (is the server up?)")
    if outcome.returncode != 0:
        message = (outcome.stderr.strip() or outcome.stdout.strip() or f"exit code {outcome.returncode}")
        if "helper program" in message:
            message += f" ({MOUNT_HELPER_HINT})"
        raise BackendError(f"mounting {device} on {mount_point} failed: {message}")


def umount(umount_cmd: Sequence[str], mount_point: str, force: Optional[str], timeout: float) -> None:
    """Unmount; raise :class:`Conflict` when the mount is busy (nothing was unmounted then)."""
    argv = [*umount_cmd, "-c"]
    if force:
        argv.append(FORCE_MODES[force])
    argv.append(mount_point)
    outcome = bounded.run(argv, timeout)
    if outcome.timed_out:
        raise OperationTimeout(f"unmounting {mount_point} did not finish within {timeout:g}s")
    if outcome.returncode != 0:
        message = outcome.stderr.strip() or outcome.stdout.strip() or f"exit code {outcome.returncode}"
        if "busy" in message.lower():
            raise Conflict(f"{mount_point} is busy ({message})")
        raise BackendError(f"unmounting {mount_point} failed: {message}")


# Runs in a child: the parent directory might itself live on a dead NFS mount.
_MOUNT_POINT = r"""
import json, os, sys
path, uid, gid, mode, dry = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
changes = {}
try:
    st = os.stat(path)
except FileNotFoundError:
    st = None
if st is None:
    changes["created"] = True
    if not dry:
        os.makedirs(path, mode=0o755)
        st = os.stat(path)
elif not os.path.isdir(path):
    print(json.dumps({"error": "exists and is not a directory"}))
    sys.exit(2)
current = (st.st_uid, st.st_gid, st.st_mode & 0o7777) if st else (0, 0, 0o755)
if uid >= 0 and current[0] != uid:
    changes["uid"] = [current[0] if st else None, uid]
if gid >= 0 and current[1] != gid:
    changes["gid"] = [current[1] if st else None, gid]
if mode >= 0 and (current[2] != mode or st is None):
    changes["mode"] = [oct(current[2]) if st else None, oct(mode)]
if not dry and (uid >= 0 or gid >= 0):
    os.chown(path, uid, gid)
if not dry and mode >= 0:
    os.chmod(path, mode)
print(json.dumps(changes))
"""


def resolve_owner(user: object, group: object) -> tuple[int, int]:
    """Names or numbers to uid/gid; -1 means "leave as it is"."""
    def one(value, field, lookup, attr):
        if value is None or value == "":
            return -1
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, str):
            try:
                return getattr(lookup(value), attr)
            except KeyError:
                raise InvalidInput(field, value, "is not a known user or group on this host") from None
        raise InvalidInput(field, value, "must be a name or a number")

    return one(user, "owner", pwd.getpwnam, "pw_uid"), one(group, "group", grp.getgrnam, "gr_gid")


def parse_mode(mode: object) -> int:
    if mode is None or mode == "":
        return -1
    # as Salt's file states: 755, "0755" and "0o755" all mean rwxr-xr-x
    text = str(mode)[2:] if str(mode).startswith("0o") else str(mode)
    if isinstance(mode, bool) or not text.isdigit() or any(ch not in "01234567" for ch in text) or len(text) > 4:
        raise InvalidInput("mode", mode, "must be an octal mode such as 0755")
    return int(text, 8)


def prepare_mount_point(
    path: str, uid: int, gid: int, mode: int, dry: bool, python: Sequence[str] = (sys.executable,), timeout: float = 5.0
) -> dict:
    """Create ``path`` (and parents) and set owner/mode; return what changed (or would, if ``dry``)."""
    outcome = bounded.run([*python, "-I", "-S", "-c", _MOUNT_POINT, path, str(uid), str(gid), str(mode), "1" if dry else "0"], timeout)
    if outcome.timed_out:
        raise OperationTimeout(f"preparing the mount point {path} did not finish within {timeout:g}s (is its parent on a dead mount?)")
    try:
        answer = json.loads(outcome.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BackendError(f"preparing the mount point {path} failed: {outcome.stderr.strip().splitlines()[-1:] or outcome.returncode}") from None
    if "error" in answer:
        raise BackendError(f"mount point {path} {answer['error']}")
    return answer
