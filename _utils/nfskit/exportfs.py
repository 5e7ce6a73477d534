"""Run the real ``exportfs`` and tell its errors from its warnings.

``exportfs`` exits 0 for some mistakes that change what is exported (``host (rw)`` exports to the
world with only a warning) and 1 for others, and prints both kinds on stderr. :func:`classify`
reads stderr: errors are refused options, bad values, syntax errors, paths it cannot stat, the
missing host name, and any non-zero exit; everything else (unresolvable hosts, missing
``sync``/``subtree_check``) is a warning.

``exportfs`` reads fixed paths (``/etc/exports``, ``/etc/exports.d``, the state directory from
``nfs.conf``, default ``/var/lib/nfs``). To make it read others it runs in a private mount
namespace (``unshare -m``) with them bound over the fixed ones; when ``/etc/exports`` or
``/etc/exports.d`` does not exist, ``/etc`` is overlaid (in the namespace only, with the mounts
below it bound back) so there is something to bind over. Nothing outside the namespace changes.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Iterable, Mapping, Optional, Sequence

from nfskit.errors import BackendError, OperationTimeout

EXPORTS_FILE = "/etc/exports"
EXPORTS_D = "/etc/exports.d"
STATE_DIR = "/var/lib/nfs"
LOCK_DIR = "/var/lib/nfs"  # exportfs' export-lock is always here, whatever nfs.conf says
DEFAULT_TIMEOUT = 120.0
_NS_FAILED = 97
CHUNK = 1000  # candidate files per exportfs run when checking many

_ERRORS = re.compile(
    "|".join(
        [
            r"unknown keyword",
            r"bad anonuid",
            r"bad anongid",
            r"bad fsid",
            r"bad option",
            r"syntax error",
            r"Failed to stat",
            r"No host name given",
            r"is not a directory",
            r"does not support NFS export",
            r"requires fsid=",
            r"unknown flavor",
            r"unknown xprtsec mode",
            r"more than \d+ (?:security flavors|xprtsec modes)",
            r"expected client\(options",
            r"can't open .* for reading",
            r"path name .* too long",
            r"only one 'reexport='",
            r"has to be before 'reexport='",
            r"uid/gid -1 not permitted",
            r"bad uid/gid list",
            r"Invalid export syntax",
            r"state_make_pathname",
        ]
    )
)
_WORLD_HINT = " (a client without a host name is exported to every host: is there a space before '('?)"

# Runs as: sh -c SCRIPT nfskit-ns SCRATCH EXPORTS EXPORTS_D STATE REAL_STATE NSUB SUB... CMD...
# EXPORTS/EXPORTS_D/STATE: "-" leaves the standard location alone; STATE "" mounts an empty tmpfs.
_NS_SCRIPT = r"""
fail() { echo "nfskit-ns: $*" >&2; exit 97; }
scratch=$1 exports=$2 exports_d=$3 state=$4 real_state=$5 nsub=$6 lock_dir=$7
shift 7
mount --make-rprivate / || fail "cannot make the mount namespace private"
if { [ "$exports" != - ] && [ ! -f /etc/exports ]; } || { [ "$exports_d" != - ] && [ ! -d /etc/exports.d ]; }; then
    mount -t tmpfs -o mode=0700 nfskit-scratch "$scratch" || fail "cannot mount a tmpfs on $scratch"
    mkdir "$scratch/upper" "$scratch/work" "$scratch/etc" || fail "cannot prepare $scratch"
    mount --rbind /etc "$scratch/etc" || fail "cannot keep the mounts below /etc"
    mount -t overlay nfskit-etc -o "lowerdir=/etc,upperdir=$scratch/upper,workdir=$scratch/work" /etc \
        || fail "cannot overlay /etc (needed because /etc/exports or /etc/exports.d does not exist)"
    i=0
    while [ "$i" -lt "$nsub" ]; do
        mount --bind "$scratch/etc/$1" "/etc/$1" || fail "cannot bind /etc/$1 back"
        shift; i=$((i + 1))
    done
    [ -e /etc/exports ] || : > /etc/exports || fail "cannot create /etc/exports in the overlay"
    [ -d /etc/exports.d ] || mkdir /etc/exports.d || fail "cannot create /etc/exports.d in the overlay"
else
    shift "$nsub"
fi
if [ "$exports" != - ]; then mount --bind "$exports" /etc/exports || fail "cannot bind $exports"; fi
if [ "$exports_d" != - ]; then mount --bind "$exports_d" /etc/exports.d || fail "cannot bind $exports_d"; fi
if [ -z "$state" ]; then
    mount -t tmpfs -o mode=0755 nfskit-state "$real_state" || fail "cannot mount a tmpfs on $real_state"
    if [ "$lock_dir" != "$real_state" ] && [ -d "$lock_dir" ]; then
        mount -t tmpfs -o mode=0755 nfskit-lock "$lock_dir" || fail "cannot mount a tmpfs on $lock_dir"
    fi
elif [ "$state" != - ]; then
    mount --bind "$state" "$real_state" || fail "cannot bind $state"
fi
exec "$@"
"""


def messages(stderr: str) -> list[str]:
    """Split exportfs' stderr into messages; indented continuation lines join their message."""
    out: list[str] = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        if line[:1].isspace() and out:
            out[-1] += " " + line.strip()
        else:
            out.append(line.strip())
    return out


def classify(stderr: str, rc: int = 0) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` from exportfs' stderr and exit status (repeated messages once)."""
    errors: list[str] = []
    warnings: list[str] = []
    for message in dict.fromkeys(messages(stderr)):
        if _ERRORS.search(message):
            if "No host name given" in message:
                message += _WORLD_HINT
            errors.append(message)
        else:
            warnings.append(message)
    if rc != 0 and not errors:
        errors.append(f"exportfs exited with status {rc}" + (f": {warnings[-1]}" if warnings else ""))
    return errors, warnings


@functools.lru_cache(maxsize=1)
def configured_state_dir() -> str:
    """The state directory exportfs uses: ``[mountd]`` then ``[exportd]`` ``state-directory-path``
    in nfs.conf (as nfs-utils 2.6 reads it), else ``/var/lib/nfs``."""
    nfsconf = shutil.which("nfsconf") or (os.path.exists("/usr/sbin/nfsconf") and "/usr/sbin/nfsconf")
    if nfsconf:
        for section in ("mountd", "exportd"):
            try:
                done = subprocess.run(
                    [nfsconf, "--get", section, "state-directory-path"], capture_output=True, text=True, timeout=10
                )
            except (OSError, subprocess.TimeoutExpired):
                break
            value = done.stdout.strip()
            if done.returncode == 0 and value.startswith("/"):
                return value
    return STATE_DIR


def _etc_submounts() -> list[str]:
    """Mount points below /etc (relative), parents first, so an overlay can bind them back."""
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                fields = line.split(" ")
                if len(fields) < 5:
                    continue
                point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
                if point.startswith("/etc/") and point.rstrip("/") != "/etc":
                    found.append(point[len("/etc/") :])
    except OSError:
        return []
    return list(dict.fromkeys(found))


def _binary(exportfs: str) -> str:
    found = shutil.which(exportfs) or shutil.which(exportfs, path="/usr/sbin:/sbin")
    if not found:
        raise BackendError(f"{exportfs} not found; install nfs-kernel-server (it provides exportfs)")
    return found


def _run(argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise BackendError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise OperationTimeout(f"{' '.join(argv[-2:])} did not finish within {timeout:g}s") from None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _namespace_argv(
    scratch: str, command: Sequence[str], exports: str = "-", exports_d: str = "-", state: str = "-"
) -> list[str]:
    unshare = shutil.which("unshare") or shutil.which("unshare", path="/usr/bin:/bin")
    if not unshare:
        raise BackendError("unshare (util-linux) not found; it is needed to run exportfs on other paths")
    if not re.fullmatch(r"/[A-Za-z0-9_./-]+", scratch):
        raise BackendError(f"scratch directory {scratch!r} holds characters an overlay mount cannot take")
    subs = _etc_submounts()
    argv = [unshare, "-m", "sh", "-c", _NS_SCRIPT, "nfskit-ns", scratch, exports, exports_d, state]
    return argv + [configured_state_dir(), str(len(subs)), LOCK_DIR, *subs, *command]


def _namespace_failure(rc: int, err: str) -> None:
    if rc == _NS_FAILED and "nfskit-ns:" in err:
        raise BackendError("cannot prepare a private mount namespace for exportfs: " + err.strip())
    if rc != 0 and err.startswith("unshare:"):
        raise BackendError("cannot create a private mount namespace for exportfs (root is needed): " + err.strip())


def _run_in_namespace(
    scratch: str,
    command: Sequence[str],
    exports: str = "-",
    exports_d: str = "-",
    state: str = "-",
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[int, str, str]:
    """Run ``command`` in a private mount namespace with the given paths bound over the standard ones."""
    rc, out, err = _run(_namespace_argv(scratch, command, exports, exports_d, state), timeout)
    _namespace_failure(rc, err)
    return rc, out, err


def _run_parallel(argvs: list[list[str]], logs: list[str], timeout: float, parallel: int) -> list[tuple[int, str]]:
    """Run commands, ``parallel`` at a time, stderr to files (no pipe can fill up); ``[(rc, stderr)]``."""
    deadline = time.monotonic() + timeout
    results: list[tuple[int, str]] = [(0, "")] * len(argvs)
    pending = list(range(len(argvs)))
    running: list[tuple[int, subprocess.Popen]] = []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                index = pending.pop(0)
                with open(logs[index], "wb") as log:
                    try:
                        proc = subprocess.Popen(
                            argvs[index], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
                        )
                    except OSError as exc:
                        raise BackendError(f"cannot run {argvs[index][0]}: {exc}") from exc
                running.append((index, proc))
            index, proc = running.pop(0)
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                running.append((index, proc))
                raise OperationTimeout(f"exportfs did not finish within {timeout:g}s") from None
            with open(logs[index], "rb") as log:
                results[index] = (proc.returncode, log.read().decode("utf-8", "replace"))
    finally:
        for _, proc in running:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
    return results


def _same(path: Optional[str], standard: str) -> bool:
    return path is None or os.path.abspath(path) == standard


def _scratch_base() -> str:
    """Where candidate files are staged: /dev/shm (tmpfs: creating many files is cheap) if usable."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def check_dirs(
    directories: Sequence[str],
    names: Optional[Mapping[str, str]] = None,
    exportfs: str = "exportfs",
    timeout: float = DEFAULT_TIMEOUT,
    parallel: Optional[int] = None,
) -> tuple[list[str], list[str]]:
    """Validate the ``*.exports`` files of each directory as the only exports, without touching
    live state: an empty ``/etc/exports``, the directory as ``/etc/exports.d``, a tmpfs state dir.

    Directories are checked independently (in parallel, ``parallel`` at a time); ``exportfs`` is
    quadratic in the number of clients, so checking 10,000 files as ten sets of 1,000 is much
    faster and finds the same per-file errors. ``names`` maps a file name to the path shown in
    messages.
    """
    binary = _binary(exportfs)
    parallel = parallel or max(1, min(os.cpu_count() or 1, 8))
    work = tempfile.mkdtemp(prefix="nfskit-check-", dir=_scratch_base())
    try:
        empty = os.path.join(work, "exports")
        open(empty, "w").close()
        argvs, logs = [], []
        for index, directory in enumerate(directories):
            scratch = os.path.join(work, f"scratch{index}")
            os.mkdir(scratch)
            argvs.append(_namespace_argv(scratch, [binary, "-ra"], exports=empty, exports_d=directory, state=""))
            logs.append(os.path.join(work, f"stderr{index}"))
        results = _run_parallel(argvs, logs, timeout, parallel)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    errors: list[str] = []
    warnings: list[str] = []
    for rc, err in results:
        _namespace_failure(rc, err)
        if names:
            err = re.sub(r"/etc/exports\.d/([^\s:\[\]]+)", lambda m: names.get(m.group(1), m.group(0)), err)
        more_errors, more_warnings = classify(err, rc)
        errors += more_errors
        warnings += more_warnings
    return list(dict.fromkeys(errors)), list(dict.fromkeys(warnings))


def check_dir(
    directory: str,
    names: Optional[Mapping[str, str]] = None,
    exportfs: str = "exportfs",
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[list[str], list[str]]:
    """Validate the ``*.exports`` files in ``directory`` as the only exports (see :func:`check_dirs`)."""
    return check_dirs([directory], names, exportfs=exportfs, timeout=timeout)


def check_texts(
    texts: Mapping[str, str],
    shown_dir: Optional[str] = None,
    exportfs: str = "exportfs",
    timeout: float = DEFAULT_TIMEOUT,
    chunk: int = CHUNK,
) -> tuple[list[str], list[str]]:
    """Validate candidate files given as ``{file name: text}`` (names end in ``.exports``).

    Messages name the files as ``shown_dir/name`` (the place they are meant for). The files are
    staged on tmpfs in sets of ``chunk`` and checked in parallel.
    """
    for name in texts:
        if "/" in name or not name.endswith(".exports") or name.startswith(".") or name == ".exports":
            raise ValueError(f"candidate file name {name!r} must be a plain *.exports name")
    work = tempfile.mkdtemp(prefix="nfskit-candidates-", dir=_scratch_base())
    try:
        directories = []
        for index, name in enumerate(texts):
            if index % chunk == 0:
                directories.append(os.path.join(work, f"set{len(directories)}"))
                os.mkdir(directories[-1])
            with open(os.path.join(directories[-1], name), "w", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(texts[name])
        names = {name: os.path.join(shown_dir, name) for name in texts} if shown_dir else None
        return check_dirs(directories or [work], names, exportfs=exportfs, timeout=timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_candidate(
    files: Iterable[str], exportfs: str = "exportfs", timeout: float = DEFAULT_TIMEOUT
) -> tuple[list[str], list[str]]:
    """Validate candidate exports file(s) with the real exportfs without touching live state.

    The files are read as they are; messages name them by their own paths. Returns
    ``(errors, warnings)``.
    """
    files = [os.fspath(f) for f in files]
    basenames = [os.path.basename(f) for f in files]
    plain = len(set(basenames)) == len(basenames) and all(
        b.endswith(".exports") and not b.startswith(".") and len(b) > len(".exports") for b in basenames
    )
    work = tempfile.mkdtemp(prefix="nfskit-candidates-", dir=_scratch_base())
    try:
        names = {}
        for index, (path, base) in enumerate(zip(files, basenames)):
            name = base if plain else f"{index:05d}-{base.lstrip('.') or 'candidate'}.exports"
            shutil.copyfile(path, os.path.join(work, name))
            names[name] = path
        return check_dir(work, names, exportfs=exportfs, timeout=timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def reload(
    exports_file: Optional[str] = EXPORTS_FILE,
    exports_d: Optional[str] = EXPORTS_D,
    state_dir: Optional[str] = STATE_DIR,
    exportfs: str = "exportfs",
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[list[str], list[str]]:
    """``exportfs -ra`` over these files; returns ``(errors, warnings)``.

    With the standard paths exportfs runs directly (this changes what the server exports). With
    other paths it runs in a private mount namespace with them bound over the standard ones, so
    the etab it writes is ``state_dir/etab``. ``state_dir`` None, ``/var/lib/nfs`` or the one
    nfs.conf names all mean "where exportfs keeps it anyway".
    """
    binary = _binary(exportfs)
    own_state = state_dir is None or os.path.abspath(state_dir) in (STATE_DIR, configured_state_dir())
    standard = _same(exports_file, EXPORTS_FILE) and _same(exports_d, EXPORTS_D) and own_state
    if standard:
        rc, _, err = _run([binary, "-ra"], timeout)
        return classify(err, rc)
    if state_dir and not os.path.isdir(state_dir):
        raise BackendError(f"state directory {state_dir} does not exist")
    work = tempfile.mkdtemp(prefix="nfskit-reload-")
    try:
        exports_arg = "-"
        if not _same(exports_file, EXPORTS_FILE):
            exports_arg = os.path.abspath(exports_file)  # type: ignore[arg-type]
            if not os.path.isfile(exports_arg):
                exports_arg = os.path.join(work, "exports")
                open(exports_arg, "w").close()
        d_arg = "-"
        if not _same(exports_d, EXPORTS_D):
            d_arg = os.path.abspath(exports_d)  # type: ignore[arg-type]
            if not os.path.isdir(d_arg):
                d_arg = os.path.join(work, "exports.d")
                os.mkdir(d_arg)
        state_arg = "-" if own_state else os.path.abspath(state_dir)  # type: ignore[arg-type]
        scratch = os.path.join(work, "scratch")
        os.mkdir(scratch)
        rc, _, err = _run_in_namespace(scratch, [binary, "-ra"], exports=exports_arg, exports_d=d_arg, state=state_arg, timeout=timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return classify(err, rc)
