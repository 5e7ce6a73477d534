"""Benchmark 1: converge N kernel-nfsd exports with the real ``exportfs``.

Ours: ``nfs_server.managed`` (one state holding every export). Core: Salt's ``nfs_export.present``
(one state per export; Salt 3007 still ships it and ``salt.modules.nfs3``). Both run through
``salt-call --local`` with a private config dir, on the same export dirs, hosts and options, each
against its own sandbox so neither touches the host's /etc/exports, /etc/exports.d or /var/lib/nfs:

- core writes /etc/exports and runs ``exportfs -r``, so its salt-call runs inside ``unshare -m``
  with the sandbox file bound over /etc/exports, an empty dir over /etc/exports.d (if the host has
  one) and the sandbox state dir over /var/lib/nfs;
- ours gets the sandbox paths in the minion config (``nfs_server:kernel``); the kernel backend
  then runs exportfs in its own private mount namespace with those paths bound.

Per (implementation, N, repetition): a fresh sandbox, a first apply, a check that the sandbox's
etab lists N exports, then a no-op re-apply that must report no changes. Measured: wall time of the
whole salt-call, and the states' own ``duration`` from ``--out=json`` (summed over all states).

``ours-tmpfs`` is ours with the sandbox's exports file, exports.d and state dir on /dev/shm: it
separates our code from the cost of creating 10,000 inodes on this machine's disk, which is
bimodal here (0.25 s or 2.5-5 s for 10,000 small files in a fresh ext4 directory, run to run, with
nothing else changed). Before every first apply, ``create_files_baseline`` times exactly that
next to the sandbox, so each figure carries the disk's mode at the time.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import REPO, env_with, median, run_timed, say

HOSTS = "10.0.0.0/24"
OPTIONS = ["rw", "sync", "no_subtree_check"]
EXPORTFS = shutil.which("exportfs") or "/usr/sbin/exportfs"

# core runs under this wrapper: private mount namespace, sandbox files bound over the host paths
CORE_WRAPPER = r"""
set -e
mount --make-rprivate /
mount --bind "$1" /etc/exports
if [ -d /etc/exports.d ]; then mount --bind "$2" /etc/exports.d; fi
mount --bind "$3" /var/lib/nfs
shift 3
exec "$@"
"""


def make_export_dirs(base: Path, n: int) -> list[str]:
    """N export directories (exportfs stats each one); shared by ours and core."""
    paths = []
    for i in range(n):
        d = base / f"e{i:05d}"
        d.mkdir(parents=True, exist_ok=True)
        paths.append(str(d))
    return paths


class Sandbox:
    """Private exports file, exports.d, NFS state dir and Salt config for one salt-call series."""

    def __init__(self, root: Path, impl: str, venv: Path):
        self.root = root
        self.impl = impl
        self.venv = venv
        # ours-tmpfs: what the backend writes lives on /dev/shm, the rest (Salt config) stays here
        self.files_root = Path("/dev/shm") / f"nfskit-bench-{os.getpid()}-{root.name}" if impl == "ours-tmpfs" else root
        for d in {root, self.files_root}:
            if d.exists():
                shutil.rmtree(d)
        self.exports = self.files_root / "exports"
        self.exports_d = self.files_root / "exports.d"
        self.state_dir = self.files_root / "nfs"
        self.config_dir = root / "salt"
        self.srv = root / "srv"
        self.pillar = root / "pillar"
        for d in (self.exports_d, self.state_dir, self.config_dir, self.srv, self.pillar):
            d.mkdir(parents=True)
        self.exports.write_text("")
        minion = {
            "id": "nfskit-bench",
            "file_client": "local",
            "root_dir": str(root / "salt-root"),
            "file_roots": {"base": [str(self.srv)]},
            "pillar_roots": {"base": [str(self.pillar)]},
            "log_level_logfile": "warning",
            "grains_cache": False,
        }
        if impl != "core":
            minion["module_dirs"] = [str(REPO / "_modules")]
            minion["states_dirs"] = [str(REPO / "_states")]
            minion["nfs_server"] = {
                "kernel": {
                    "exports_file": str(self.exports),
                    "exports_d": str(self.exports_d),
                    "state_dir": str(self.state_dir),
                    "exportfs": EXPORTFS,
                }
            }
        # JSON is YAML: the minion config is written as JSON to avoid any dependency here
        (self.config_dir / "minion").write_text(json.dumps(minion, indent=1))

    def write_sls(self, paths: list[str]) -> None:
        if self.impl != "core":
            # the way salt/nfs/server.sls does it: the set in pillar, read by the state by key
            exports = {p: {"hosts": HOSTS, "options": list(OPTIONS)} for p in paths}
            (self.pillar / "top.sls").write_text("base:\n  '*':\n    - exports\n")
            (self.pillar / "exports.sls").write_text("#!json\n" + json.dumps({"nfs": {"server": {"exports": exports}}}))
            sls = {"bench-exports": {"nfs_server.managed": [{"exports_pillar": "nfs:server:exports"}]}}
        else:
            sls = {p: {"nfs_export.present": [{"hosts": HOSTS}, {"options": list(OPTIONS)}]} for p in paths}
        # the JSON renderer keeps the render step cheap and equal in kind for both
        (self.srv / "bench.sls").write_text("#!json\n" + json.dumps(sls))

    def argv(self, *salt_args: str) -> list[str]:
        call = [str(self.venv / "bin" / "salt-call"), "--local", "--config-dir", str(self.config_dir), *salt_args]
        if self.impl == "core":
            return ["unshare", "-m", "sh", "-c", CORE_WRAPPER, "sh", str(self.exports), str(self.exports_d), str(self.state_dir), *call]
        return call

    def env(self) -> dict:
        # _utils on PYTHONPATH for ours (the way a synced minion sees it); core does not need it
        return env_with(PYTHONPATH=REPO / "_utils") if self.impl != "core" else env_with()

    def remove(self) -> None:
        for d in {self.root, self.files_root}:
            shutil.rmtree(d, ignore_errors=True)

    def etab_paths(self) -> int:
        etab = self.state_dir / "etab"
        if not etab.exists():
            return 0
        return len({line.split("\t", 1)[0] for line in etab.read_text().splitlines() if line.strip()})

    def written_paths(self) -> int:
        """How many export lines the implementation has written so far (heartbeat only)."""
        files = [self.exports, *sorted(self.exports_d.glob("*"))]
        count = 0
        for f in files:
            try:
                count += sum(1 for line in f.read_text().splitlines() if line.startswith("/"))
            except (OSError, UnicodeDecodeError):
                pass
        return count


def parse_state_output(stdout: str) -> dict:
    """Summarise ``salt-call --out=json state.apply``: states, changed, failed, summed duration."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return {"error": "salt-call did not print JSON: " + stdout[-2000:]}
    local = data.get("local", data)
    if not isinstance(local, dict):
        return {"error": "state run failed: " + json.dumps(local)[:2000]}
    states = list(local.values())
    failed = [s for s in states if s.get("result") is False]
    return {
        "states": len(states),
        "changed": sum(1 for s in states if s.get("changes")),
        "failed": len(failed),
        "state_s": sum(float(s.get("duration") or 0) for s in states) / 1000.0,
        "first_failure": (failed[0].get("comment", "")[:1000] if failed else None),
    }


def create_files_baseline(directory: Path, n: int) -> float:
    """Seconds to create ``n`` small files in a fresh directory (the staging pattern of the kernel
    backend: open O_CREAT, one write, close), then remove them: the disk's own share."""
    directory.mkdir(parents=True)
    try:
        started = time.perf_counter()
        for i in range(n):
            fd = os.open(directory / f".e{i:05d}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            os.write(fd, b"# managed by nfskit (salt)\n/srv/e 10.0.0.0/24(rw,sync,no_subtree_check)\n")
            os.close(fd)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def salt_startup(venv: Path, scratch: Path, repeat: int = 3) -> dict:
    """Salt's fixed cost per salt-call (median wall): ``test.true``, and ``state.apply`` of a
    one-state SLS (``test.nop``: state compiler, pillar and the module reload a state run does)."""
    box = Sandbox(scratch / f"startup-{venv.name}", "core", venv)
    (box.srv / "trivial.sls").write_text('#!json\n{"nothing": {"test.nop": []}}')
    out = {}
    for label, args in (("test.true", ["test.true"]), ("state.apply trivial", ["state.apply", "trivial"])):
        times = []
        for _ in range(repeat):
            elapsed, proc = run_timed([str(venv / "bin" / "salt-call"), "--local", "--config-dir", str(box.config_dir), *args])
            if proc.returncode == 0:
                times.append(elapsed)
        out[label] = median(times)
    return out


def ours_loads(venv: Path, scratch: Path) -> tuple[bool, str]:
    """Can this Salt load our execution module and state module (from module_dirs/states_dirs)?"""
    box = Sandbox(scratch / "loadcheck", "ours", venv)
    proc = subprocess.run(
        box.argv("--out=json", "sys.list_state_functions", "nfs_server.*"), env=box.env(), capture_output=True, text=True
    )
    try:
        funcs = json.loads(proc.stdout).get("local", [])
    except (json.JSONDecodeError, AttributeError):
        funcs = []
    ok = "nfs_server.managed" in funcs
    return ok, "" if ok else (proc.stdout + proc.stderr)[-1500:]


def run_series(impl: str, n: int, rep: int, venv: Path, scratch: Path, paths: list[str]) -> list[dict]:
    """One fresh sandbox: first apply, etab check, no-op re-apply. Returns two result records."""
    box = Sandbox(scratch / f"{impl}-{n}-r{rep}", impl, venv)
    box.write_sls(paths)
    records = []
    for phase in ("first", "noop"):
        baseline = create_files_baseline(box.files_root / "baseline", n) if phase == "first" else None
        say(f"kernel {impl} N={n} rep {rep + 1}: {phase} apply ..." + (f" (creating {n} files next to exports.d just now: {baseline:.2f}s)" if baseline is not None else ""))
        heartbeat = (lambda: f"{box.written_paths()}/{n} export lines written") if phase == "first" else None
        wall, proc = run_timed(
            box.argv("--out=json", "--retcode-passthrough", "state.apply", "bench"), env=box.env(), heartbeat=heartbeat
        )
        summary = parse_state_output(proc.stdout)
        record = {"impl": impl, "n": n, "phase": phase, "rep": rep, "wall_s": wall, "cpu_s": proc.cpu_s, "rc": proc.returncode, **summary}
        if baseline is not None:
            record["create_files_s"] = baseline
        if phase == "first":
            record["etab_exports"] = box.etab_paths()
            record["correct"] = record["etab_exports"] == n and summary.get("failed") == 0 and "error" not in summary
        else:
            record["correct"] = summary.get("changed") == 0 and summary.get("failed") == 0 and "error" not in summary
        if not record["correct"]:
            record["stderr_tail"] = proc.stderr[-2000:]
        state_s = record.get("state_s")
        say(
            f"kernel {impl} N={n} rep {rep + 1}: {phase}: wall {wall:.2f}s (cpu {proc.cpu_s:.2f}s), state "
            + (f"{state_s:.3f}s" if state_s is not None else "n/a")
            + (f", etab {record['etab_exports']}/{n}" if phase == "first" else f", changed {summary.get('changed')}")
            + ("" if record["correct"] else "  ** NOT CORRECT: " + str(summary.get("error") or summary.get("first_failure") or proc.stderr[-500:]))
        )
        records.append(record)
        if phase == "first" and not record["correct"] and summary.get("states") is None:
            break
    box.remove()
    return records
