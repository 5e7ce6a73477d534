"""Is an NFS mount healthy? Checks that answer within a deadline even when the server is dead.

Nothing here touches a mount point in the calling process (anchors §6.6, saltstack/salt #42259,
#41766): the mount table comes from mountinfo, the server is probed over TCP (port 2049, or the
mount's ``port=``) from an address the kernel recorded (``addr=``), and ``stat`` and the canary
(write a file, fsync, read it back, remove it) run in child processes under :mod:`nfskit.bounded`.

Each check reports ``{"check", "ok", "reason", "detail"}``; the first failed one names the
reason a user can act on: ``not mounted``, ``wrong source``, ``options differ``,
``server unreachable``, ``stale handle``, ``permission denied``, ``read-only``, ``timed out``.
"""
from __future__ import annotations

import errno
import os
import socket
import sys
import threading
import time
import uuid
from typing import Iterable, Optional, Sequence

from nfskit import bounded
from nfskit import mount_options as mo
from nfskit.errors import BackendError
from nfskit.mountinfo import MountEntry, find

_REASONS = {
    errno.ESTALE: "stale handle",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only",
    errno.ENOENT: "not found",
    errno.EIO: "I/O error",
    errno.ETIMEDOUT: "server unreachable",
    errno.EHOSTUNREACH: "server unreachable",
    errno.ENOTCONN: "server unreachable",
    errno.ECONNREFUSED: "server unreachable",
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "quota exceeded",
}

# The canary runs in a child so a hung write blocks the child, not the minion. It prints each step
# before taking it: when the deadline kills it, the last line says which step hung.
CANARY = r"""
import os, sys
path, token = sys.argv[1], sys.argv[2]
name = os.path.join(path, ".nfskit-canary-" + token)
step = "write"
try:
    print("write", flush=True)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, token.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    step = "read"
    print("read", flush=True)
    with open(name, "rb") as handle:
        data = handle.read()
    step = "remove"
    print("remove", flush=True)
    os.unlink(name)
    if data != token.encode():
        print("error 0 read back different bytes", flush=True)
        sys.exit(3)
    print("done", flush=True)
except OSError as exc:
    print("error %d %s while %s" % (exc.errno or 0, exc.strerror, step), flush=True)
    if step != "write":
        try:
            os.unlink(name)
        except OSError:
            pass
    sys.exit(2)
"""


def _check(check: str, ok: bool, reason: Optional[str] = None, detail: str = "", **extra) -> dict:
    out = {"check": check, "ok": ok, "reason": reason, "detail": detail}
    out.update(extra)
    return out


def reason_for_message(text: str) -> str:
    """Map a tool's error text (``stat: ...: Stale file handle``) to a reason."""
    for number, reason in _REASONS.items():
        if os.strerror(number) in text:
            return reason
    return "error"


def server_of(entry: MountEntry) -> tuple[str, int]:
    """Where to probe: the address the kernel connected to (no DNS lookup) and the NFS port."""
    host = entry.option_value("addr") or mo.split_device(entry.source)[0]
    port = entry.option_value("port")
    return host, int(port) if port and port.isdigit() and port != "0" else int(mo.NFS_PORT)


def tcp_probe(host: str, port: int, timeout: float) -> dict:
    """Can we open a TCP connection to the server? DNS is bounded too (a lookup can hang)."""
    outcome: dict = {}

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome["ok"] = True
        except OSError as exc:
            outcome["error"] = exc.strerror or str(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    start = time.monotonic()
    worker.start()
    worker.join(timeout + 0.5)
    where = f"{host}:{port}"
    if outcome.get("ok"):
        return _check("server", True, detail=f"TCP connection to {where} in {time.monotonic() - start:.2f}s")
    error = outcome.get("error", f"no answer within {timeout:g}s")
    return _check("server", False, "server unreachable", f"TCP connection to {where} failed: {error}")


def stat_probe(path: str, stat_cmd: Sequence[str], timeout: float) -> dict:
    outcome = bounded.run([*stat_cmd, "-c", "%d:%i", "--", path], timeout)
    if outcome.timed_out:
        return _check("stat", False, "timed out", f"stat {path} did not answer within {timeout:g}s (hung mount or dead server)"
                      + ("; the stat process is stuck in the kernel" if outcome.unkillable else ""))
    if outcome.returncode != 0:
        message = outcome.stderr.strip() or f"exit code {outcome.returncode}"
        return _check("stat", False, reason_for_message(message), message)
    return _check("stat", True, detail=f"stat answered in {outcome.elapsed:.2f}s")


def canary_probe(path: str, python: Sequence[str], timeout: float, startup_timeout: float = 60.0) -> dict:
    """The canary child; ``timeout`` counts from its first step, not from the interpreter's start
    (seconds on a loaded host), so that a slow start is never blamed on the server."""
    token = uuid.uuid4().hex
    outcome = bounded.run([*python, "-I", "-S", "-c", CANARY, path, token], timeout, startup_timeout=startup_timeout)
    steps = outcome.stdout.split()
    if not outcome.started:
        return _check("canary", False, "host overloaded", f"the canary process did not start within {startup_timeout:g}s; {path} was not touched")
    if outcome.timed_out:
        hung = steps[-1] if steps else "start"
        return _check("canary", False, "timed out", f"canary {hung} in {path} did not finish within {timeout:g}s")
    lines = outcome.stdout.strip().splitlines()
    if outcome.returncode != 0:
        last = lines[-1] if lines else outcome.stderr.strip()
        if last.startswith("error "):
            _, number, message = last.split(" ", 2)
            reason = _REASONS.get(int(number), "error") if number.isdigit() and int(number) else "error"
            return _check("canary", False, reason, f"canary file in {path}: {message}")
        return _check("canary", False, "error", f"canary failed: {last or 'exit code ' + str(outcome.returncode)}")
    return _check("canary", True, detail=f"wrote, read back and removed a canary file in {outcome.elapsed:.2f}s")


def _summary(name: str, checks: list[dict], start: float) -> dict:
    failed = next((check for check in checks if not check["ok"]), None)
    return {
        "name": name,
        "ok": failed is None,
        "failed": failed["check"] if failed else None,
        "reason": failed["reason"] if failed else None,
        "message": f"{name}: {failed['reason']}: {failed['detail']}" if failed else f"{name}: all checks passed",
        "checks": checks,
        "elapsed": round(time.monotonic() - start, 3),
    }


def verify(
    name: str,
    entries: Sequence[MountEntry],
    device: Optional[str] = None,
    fstype: Optional[str] = None,
    words: Sequence[str] = (),
    hidden: Iterable[str] = (),
    stat_cmd: Sequence[str] = ("stat",),
    python: Sequence[str] = (sys.executable,),
    timeout: float = 5.0,
    tcp_timeout: float = 2.0,
    canary: bool = True,
    startup_timeout: float = 60.0,
) -> dict:
    """Run the checks in order and stop at the first failure that makes the next ones pointless."""
    start = time.monotonic()
    entry = find(entries, name)
    if entry is None:
        return _summary(name, [_check("mounted", False, "not mounted", f"nothing is mounted on {name} (mountinfo)")], start)
    checks = [_check("mounted", True, detail=entry.describe())]
    if device is not None and not mo.device_matches(device, fstype or entry.fstype, words, entry):
        checks.append(_check("source", False, "wrong source", f"{entry.source} is mounted, {device} was expected"))
        return _summary(name, checks, start)
    if device is not None:
        checks.append(_check("source", True, detail=entry.source))
    if words or fstype:
        fstype_ok = fstype is None or mo.fstype_matches(fstype, mo.wanted_version(words, fstype), entry.fstype)
        comparison = mo.compare(words, fstype or entry.fstype, entry, [e for e in entries if e is not entry], hidden)
        if not fstype_ok or not comparison.equal:
            problems = [d.describe() for d in comparison.differences]
            if not fstype_ok:
                problems.insert(0, f"fstype {fstype} wanted, {entry.fstype} in effect")
            checks.append(_check("options", False, "options differ", "; ".join(problems)))
            return _summary(name, checks, start)
        checks.append(_check("options", True, detail="requested options in effect", notes=comparison.notes()))
    if entry.is_nfs:
        server = tcp_probe(*server_of(entry), tcp_timeout)
        checks.append(server)
        if not server["ok"]:
            return _summary(name, checks, start)  # a stat now would only hang
    checks.append(stat_probe(name, stat_cmd, timeout))
    if checks[-1]["ok"] and canary:
        checks.append(canary_probe(name, python, timeout, startup_timeout))
    return _summary(name, checks, start)


def check_stale(
    entries: Sequence[MountEntry],
    names: Optional[Sequence[str]] = None,
    stat_cmd: Sequence[str] = ("stat",),
    timeout: float = 5.0,
    tcp_timeout: float = 2.0,
) -> dict:
    """``{mount_point: {"status": ok|stale|hung|unreachable|not mounted|error, "detail"}}``."""
    targets = list(names) if names else [e.mount_point for e in entries if e.is_nfs]
    out = {}
    for name in targets:
        entry = find(entries, name)
        if entry is None:
            out[name] = {"status": "not mounted", "detail": f"nothing is mounted on {name}"}
            continue
        if entry.is_nfs:
            server = tcp_probe(*server_of(entry), tcp_timeout)
            if not server["ok"]:
                out[name] = {"status": "unreachable", "detail": server["detail"], "source": entry.source}
                continue
        probe = stat_probe(name, stat_cmd, timeout)
        status = "ok" if probe["ok"] else {"stale handle": "stale", "timed out": "hung"}.get(probe["reason"], "error")
        out[name] = {"status": status, "detail": probe["detail"], "source": entry.source}
    return out


def busy_users(mount_point: str, proc: str = "/proc") -> list[dict]:
    """Processes using anything under ``mount_point``, read from ``/proc/<pid>`` links and maps.

    ``readlink`` on ``/proc/<pid>/fd/N`` returns the kernel's record of the path without touching
    the file, so this is safe on a dead mount (``fuser -m`` stats the mount point itself).
    """
    prefix = mount_point.rstrip("/") + "/"

    def under(path: str) -> bool:
        path = path[:-len(" (deleted)")] if path.endswith(" (deleted)") else path
        return path == mount_point or path.startswith(prefix)

    users = []
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError as exc:
        raise BackendError(f"cannot list processes in {proc}: {exc.strerror}") from exc
    for pid in pids:
        base = os.path.join(proc, pid)
        uses = []
        links = ["cwd", "root", "exe"]
        try:
            links += [os.path.join("fd", fd) for fd in os.listdir(os.path.join(base, "fd"))]
        except OSError:
            pass  # the process ended or is not ours to read
        for link in links:
            try:
                target = os.readlink(os.path.join(base, link))
            except OSError:
                continue
            if under(target):
                uses.append(link)
        try:
            with open(os.path.join(base, "maps"), encoding="utf-8", errors="replace") as handle:
                if any(under(line.split(None, 5)[5].strip()) for line in handle if len(line.split(None, 5)) == 6):
                    uses.append("maps")
        except OSError:
            pass
        if uses:
            try:
                with open(os.path.join(base, "comm"), encoding="utf-8", errors="replace") as handle:
                    command = handle.read().strip()
            except OSError:
                command = "?"
            users.append({"pid": int(pid), "command": command, "uses": uses})
    return sorted(users, key=lambda user: user["pid"])


def require_nfs_client(proc_filesystems: str, modprobe: Sequence[str], timeout: float = 10.0) -> None:
    """Raise a clear error when this kernel cannot mount NFS (after trying ``modprobe nfs``)."""
    def known() -> bool:
        try:
            with open(proc_filesystems, encoding="utf-8") as handle:
                return any(line.split()[-1] in ("nfs", "nfs4") for line in handle if line.split())
        except OSError:
            return False

    if known():
        return
    outcome = bounded.run([*modprobe, "nfs"], timeout) if modprobe else None
    if known():
        return
    why = "modprobe is not configured"
    if outcome is not None:
        why = "timed out" if outcome.timed_out else (outcome.stderr.strip() or f"exit code {outcome.returncode}")
    raise BackendError(
        f"this kernel has no NFS client support: no 'nfs' in {proc_filesystems} and 'modprobe nfs' failed ({why}); "
        "install or enable the kernel's nfs module (Debian: linux-image-*; containers need it on the host)"
    )
