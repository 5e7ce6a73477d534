#!/usr/bin/env python3
"""Side-by-side benchmarks for nfskit (see benchmarks/README.md).

    .venv/bin/python benchmarks/run.py [--sizes 1000,10000] [--only kernel|ganesha|selfservice|client]

1. kernel: converge N exports with the real exportfs, ours (``nfs_server.managed``) against Salt's
   core ``nfs_export.present`` (Salt 3007.15), first apply and no-op re-apply, via salt-call --local.
2. ganesha: add one export to a ganesha serving 10,000, ours (GaneshaBackend.apply: validate +
   write + DBus AddExport) against a SIGHUP reload of the same config, until a client can write.
3. selfservice: 200 requests from 20 concurrent salt-api clients through the nfs runner, against a
   no-op runner on the same salt-api (the floor), a bulk call, and the naive design (NFS-API: 4
   workers on one git checkout, no lock); then one request and one pillar render at 10,000 hosts.
4. client: 50 NFS mounts on a VM (the VM tier's bed: kernel nfsd VM + client VM), the no-op re-apply
   of ours (``nfs_client.mounted`` per mount, ``nfs_client.managed`` for all) against core
   ``mount.mounted``: remounts counted by the guest kernel (ftrace), wall and state time.

Installs what it needs (idempotent): a separate venv ``.venv-bench-3007`` with salt==3007.15.
Writes benchmarks/results/latest.json and latest.md (results of an earlier run for a benchmark or
size not run now are kept, each with its own timestamp).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, REPO, fmt_s, fmt_x, loadavg, median, say  # noqa: E402

CORE_SALT = "3007.15"
BENCH_VENV = REPO / ".venv-bench-3007"
DEFAULT_RESULTS = BENCH / "results"
RESULTS = DEFAULT_RESULTS  # --results-dir changes it (trial runs; then README.md is left alone)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def ensure_bench_venv() -> Path:
    """``.venv-bench-3007`` with salt==3007.15 (the last Salt with core nfs_export); idempotent."""
    stamp = BENCH_VENV / ".nfskit-bench-installed"
    want = f"salt=={CORE_SALT}"
    if stamp.exists() and stamp.read_text().strip() == want:
        return BENCH_VENV
    say(f"preparing {BENCH_VENV.name} (salt {CORE_SALT}, for core nfs_export; a first install takes ~2 minutes)")
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    proc = subprocess.run(
        [str(BENCH_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", want],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"pip install {want} failed:\n{proc.stdout}\n{proc.stderr}")
    check = subprocess.run(
        [str(BENCH_VENV / "bin" / "python"), "-c", "import salt.version, salt.states.nfs_export, salt.modules.nfs3; print(salt.version.__version__)"],
        capture_output=True,
        text=True,
    )
    if check.stdout.strip() != CORE_SALT:
        sys.exit(f"{BENCH_VENV} does not provide salt {CORE_SALT} with nfs_export: {check.stdout}{check.stderr}")
    stamp.write_text(want + "\n")
    return BENCH_VENV


def salt_version(venv: Path) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", "import salt.version; print(salt.version.__version__)"], capture_output=True, text=True).stdout.strip()


def load_results() -> dict:
    try:
        return json.loads((RESULTS / "latest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def update_results(change) -> dict:
    """Re-read latest.json, apply ``change(results)``, write JSON + markdown; under a file lock, so
    runs of different benchmarks (``--only``) may overlap without losing each other's figures."""
    import fcntl

    RESULTS.mkdir(parents=True, exist_ok=True)
    lock = os.open(RESULTS, os.O_RDONLY | os.O_DIRECTORY)  # flock on the directory itself: no lock file
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load_results()
        change(results)
        results.setdefault("meta", {}).update(
            written_at=now(),
            cpu=next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?"),
            cores=os.cpu_count(),
            python=f"Python {platform.python_version()}",
        )
        md = render_md(results)
        for name, text in (("latest.json", json.dumps(results, indent=1, sort_keys=True) + "\n"), ("latest.md", md)):
            tmp = RESULTS / (name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, RESULTS / name)
        if RESULTS == DEFAULT_RESULTS:
            update_readme(md)
    finally:
        os.close(lock)
    return results


def update_readme(md: str) -> None:
    """Copy the figures into benchmarks/README.md below its ``<!-- figures -->`` marker."""
    readme = BENCH / "README.md"
    marker = "<!-- figures -->"
    try:
        text = readme.read_text()
    except OSError:
        return
    if marker not in text:
        return
    body = md.split("\n", 2)[2] if md.startswith("# ") else md  # drop the title line
    body = body.replace("\n## ", "\n### ")
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text.split(marker)[0] + marker + "\n" + body.lstrip("\n"))
    os.replace(tmp, readme)


# ---------------------------------------------------------------------------------------- kernel


def summarise_kernel(records: list[dict]) -> list[dict]:
    """Median per (impl, n, phase) over repetitions."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["impl"], r["n"], r["phase"]), []).append(r)
    rows = []
    for (impl, n, phase), recs in sorted(groups.items()):
        rows.append(
            {
                "impl": impl,
                "n": n,
                "phase": phase,
                "runs": len(recs),
                "wall_s": median([r["wall_s"] for r in recs]),
                "cpu_s": median([r.get("cpu_s") for r in recs]),
                "state_s": median([r.get("state_s") for r in recs]),
                "wall_all": [round(r["wall_s"], 3) for r in recs],
                "state_all": [round(r["state_s"], 4) if r.get("state_s") is not None else None for r in recs],
                "correct": all(r.get("correct") for r in recs),
                "etab_exports": [r.get("etab_exports") for r in recs] if phase == "first" else None,
                "create_files_all": [round(r["create_files_s"], 3) for r in recs if r.get("create_files_s") is not None] or None,
            }
        )
    return rows


def run_kernel(args, run_info: dict) -> None:
    import kernel_bench as kb

    venv = ensure_bench_venv()
    scratch = Path(tempfile.mkdtemp(prefix="nfskit-bench-kernel-"))
    try:
        ok, why = kb.ours_loads(venv, scratch)
        ours_venv = venv if ok else REPO / ".venv"
        if not ok:
            say(f"our modules do not load under Salt {CORE_SALT}; running ours under {ours_venv} instead:\n{why}")
        versions = {"core": salt_version(venv), "ours": salt_version(ours_venv)}
        say(f"Salt for core: {versions['core']} ({venv.name}); for ours: {versions['ours']} ({ours_venv.name})")
        startup = {}
        for v in {venv, ours_venv}:
            startup[salt_version(v)] = kb.salt_startup(v, scratch)
            say(f"Salt {salt_version(v)} fixed cost per salt-call: " + ", ".join(f"{k} {fmt_s(t)}" for k, t in startup[salt_version(v)].items()))
        sizes = args.sizes
        say(f"creating {max(sizes)} export directories under {scratch}/exp")
        all_paths = kb.make_export_dirs(scratch / "exp", max(sizes))
        for n in sizes:
            paths = all_paths[:n]
            for impl in args.impls:
                reps = args.repeat if impl != "core" else (args.core_repeat if args.core_repeat is not None else (args.repeat if n <= 2000 else 1))
                records = []
                for rep in range(reps):
                    records += kb.run_series(impl, n, rep, ours_venv if impl != "core" else venv, scratch, paths)
                salt_used = versions["core" if impl == "core" else "ours"]
                stamp = {"measured_at": now(), "commit": git_commit(), "run": run_info["started"],
                         "salt": salt_used, "salt_fixed_s": startup.get(salt_used)}

                def change(results, impl=impl, records=records, stamp=stamp):
                    section = results.setdefault("kernel", {})
                    # this (impl, n) pair is replaced; every other pair keeps its earlier figures
                    kept = [r for r in section.get("records", []) if not (r["impl"] == impl and r["n"] == n)]
                    section["records"] = kept + [dict(r, **stamp) for r in records]
                    section["rows"] = summarise_kernel(section["records"])
                    section.update(salt=versions, salt_call_startup_s=startup, hosts=kb.HOSTS, options=kb.OPTIONS, measured_at=now())

                update_results(change)
    finally:
        if args.keep:
            say(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------------------- ganesha


def run_ganesha(args, run_info: dict) -> None:
    import ganesha_bench as gb

    section = gb.run(existing=args.ganesha_exports, repeat=args.ganesha_repeat, keep=args.keep)
    section.update(measured_at=now(), commit=git_commit(), run=run_info["started"])
    update_results(lambda results: results.__setitem__("ganesha", section))


# ----------------------------------------------------------------------------------- selfservice


def run_selfservice(args, run_info: dict) -> None:
    import selfservice_bench as sb

    # each part is written as soon as it is measured (salt-api: floor, ours, bulk; naive; scale)
    groups = [[p] for p in ("salt", "naive", "scale") if p in args.ss_parts]
    for parts in groups:
        if not parts:
            continue
        figures = sb.run(requests=args.ss_requests, clients=args.ss_clients, bulk_calls=args.ss_bulk_calls,
                         scale_hosts=args.ss_scale_hosts, scale_repeat=args.ss_repeat, parts=tuple(parts), keep=args.keep)
        stamp = {"measured_at": now(), "commit": git_commit(), "run": run_info["started"]}
        for part in ("floor", "ours", "bulk", "naive", "scale"):
            if part in figures:
                figures[part].update(stamp)

        def change(results, figures=figures):
            section = results.setdefault("selfservice", {})
            section.update(figures)  # a part not run now keeps its earlier figures (each has its own stamp)
            section["md"] = sb.render_md(section)

        update_results(change)


# ---------------------------------------------------------------------------------------- client


def run_client(args, run_info: dict) -> None:
    import client_bench as cb

    why = cb.cannot_run()
    if why:
        say(f"client benchmark skipped: {why}")
        return
    section = cb.run(mounts=args.client_mounts, exports=args.client_exports, repeat=args.client_repeat,
                     sides=args.client_sides, keep=args.keep)
    section.update(measured_at=now(), commit=git_commit(), run=run_info["started"])
    update_results(lambda results: results.__setitem__("client", section))


# -------------------------------------------------------------------------------------- markdown


def render_md(results: dict) -> str:
    meta = results.get("meta", {})
    out = ["# nfskit benchmarks: latest results", ""]
    out.append(
        f"Machine: {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores, {meta.get('python', '')}; "
        f"written by `benchmarks/run.py` (last update {meta.get('written_at', '?')}). "
        "Other jobs shared the machine: wall times are inflated by their load (load averages per run are in "
        "latest.json), CPU times much less so. Each figure's run and commit are in latest.json."
    )
    out.append("")
    kernel = results.get("kernel")
    if kernel and kernel.get("rows"):
        rows = {(r["impl"], r["n"], r["phase"]): r for r in kernel["rows"]}
        sizes = sorted({r["n"] for r in kernel["rows"]})
        startup = kernel.get("salt_call_startup_s", {})
        out += [
            "## 1. Kernel exports: converge N exports with the real exportfs",
            "",
            f"Ours: `nfs_server.managed` (one state, all exports read from pillar with `exports_pillar`, as `salt/nfs/server.sls` does; Salt {kernel.get('salt', {}).get('ours', '?')}). "
            f"Core: `nfs_export.present` (one state per export; Salt {kernel.get('salt', {}).get('core', '?')}). "
            f"Same export dirs, hosts `{kernel.get('hosts')}`, options `{','.join(kernel.get('options', []))}`. "
            "Wall = the whole `salt-call --local`, which includes Salt's own fixed cost ("
            + "; ".join(f"Salt {k}: " + ", ".join(f"`{label}` {fmt_s(t)}" for label, t in v.items()) for k, v in startup.items() if isinstance(v, dict))
            + "); state = the states' own `duration`, summed over all states. "
            "Ours: median of the runs shown (3x by default); core: once at 10,000.",
            "",
            "| N | phase | ours: wall (cpu) | ours: state | core: wall (cpu) | core: state | speed-up: wall / state | checks |",
            "|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        for n in sizes:
            for phase in ("first", "noop"):
                o, c = rows.get(("ours", n, phase)), rows.get(("core", n, phase))
                if not o and not c:
                    continue
                speed = ""
                if o and c and o.get("state_s") and c.get("state_s"):
                    speed = f"{fmt_x(c['wall_s'] / o['wall_s'])} / {fmt_x(c['state_s'] / o['state_s'])}"
                checks = []
                for label, r in (("ours", o), ("core", c)):
                    if r:
                        extra = f" (etab {'/'.join(str(x) for x in r['etab_exports'])})" if r.get("etab_exports") else ""
                        checks.append(f"{label} {'ok' if r['correct'] else 'FAILED'}{extra}")

                def wall(r):
                    if not r:
                        return "n/a"
                    cpu = f" ({fmt_s(r['cpu_s'])})" if r.get("cpu_s") is not None else ""
                    runs = f" [{r['runs']}x]" if r["runs"] > 1 else ""
                    return f"{fmt_s(r['wall_s'])}{cpu}{runs}"

                out.append(
                    f"| {n:,} | {'first apply' if phase == 'first' else 'no-op re-apply'} "
                    f"| {wall(o)} | {fmt_s(o and o['state_s'])} | {wall(c)} | {fmt_s(c and c['state_s'])} | {speed} | {'; '.join(checks)} |"
                )
        out.append("")
        out += render_disk_md(rows, sizes)
    g = results.get("ganesha")
    if g:
        out += ["## 2. NFS-Ganesha: add one export to a server already serving "
                f"{g.get('existing', 0):,} exports", ""]
        out += g.get("md", [])
        out.append("")
    ss = results.get("selfservice")
    if ss:
        out += [f"## 3. Self-service: {ss.get('requests', '?')} requests from {ss.get('clients', '?')} concurrent salt-api clients, and fleet scale", ""]
        out += ss.get("md", [])
        out.append("")
    client = results.get("client")
    if client:
        out += [f"## 4. NFS client mounts: the no-op re-apply of {client.get('mounts_n', '?')} NFS mounts on a VM, ours vs core `mount.mounted`", ""]
        out += client.get("md", [])
        out.append("")
    runs = meta.get("runs", [])
    if runs:
        out += ["## Runs behind these figures", ""]
        for r in runs:
            load = lambda k: "/".join(f"{x:g}" for x in r.get(k, [])) or "?"  # noqa: E731
            out.append(
                f"- {r.get('started', '?')} to {r.get('ended', '?')}, commit {r.get('commit', '?')}: "
                f"`run.py {' '.join(r.get('argv', []))}` (load average at start {load('loadavg_start')}, at end {load('loadavg_end')})"
                + (f". {r['note']}" if r.get("note") else "")
            )
        out.append("")
    return "\n".join(out) + "\n"


def render_disk_md(rows: dict, sizes: list[int]) -> list[str]:
    """Ours with exports.d on tmpfs, and how long the disk took to create N files before each first apply."""
    out = []
    for n in sizes:
        disk, tmpfs = rows.get(("ours", n, "first")), rows.get(("ours-tmpfs", n, "first"))
        if not disk and not tmpfs:
            continue
        parts = []
        if disk and disk.get("create_files_all"):
            states = ", ".join(fmt_s(x) for x in disk["state_all"] if x is not None)
            creates = ", ".join(fmt_s(x) for x in disk["create_files_all"])
            parts.append(f"ours' first-apply states ({states}) next to the time this disk took to create {n:,} small files in a fresh directory just before each ({creates})")
        if tmpfs:
            noop = rows.get(("ours-tmpfs", n, "noop"))
            parts.append(
                f"ours with exports.d on tmpfs (`ours-tmpfs`, same code, no disk inodes): first apply state **{fmt_s(tmpfs['state_s'])}** "
                f"(runs: {', '.join(fmt_s(x) for x in tmpfs['state_all'] if x is not None)}; wall {fmt_s(tmpfs['wall_s'])}, {'ok' if tmpfs['correct'] else 'FAILED'})"
                + (f", no-op state {fmt_s(noop['state_s'])}" if noop else "")
            )
        if parts:
            out.append(f"- {n:,} exports: " + "; ".join(parts) + ".")
    return out + [""] if out else []


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000", help="export counts for the kernel benchmark (default 1000,10000)")
    p.add_argument("--only", choices=["kernel", "ganesha", "selfservice", "client"], help="run only one benchmark")
    p.add_argument("--impls", default="ours,ours-tmpfs,core", help="kernel: which implementations: ours, ours-tmpfs (exports.d on /dev/shm), core (default ours,ours-tmpfs,core)")
    p.add_argument("--repeat", type=int, default=3, help="kernel: repetitions of ours (median reported; default 3)")
    p.add_argument("--core-repeat", type=int, default=None, help="kernel: repetitions of core (default: --repeat up to N=2000, else 1)")
    p.add_argument("--ganesha-exports", type=int, default=10000, help="ganesha: exports already served (default 10000)")
    p.add_argument("--ganesha-repeat", type=int, default=3, help="ganesha: repetitions of ours' add (default 3; SIGHUP once)")
    p.add_argument("--ss-requests", type=int, default=200, help="selfservice: requests per load phase (default 200)")
    p.add_argument("--ss-clients", type=int, default=20, help="selfservice: concurrent salt-api clients (default 20)")
    p.add_argument("--ss-bulk-calls", type=int, default=10, help="selfservice: nfs.request_bulk calls for the same requests (default 10)")
    p.add_argument("--ss-scale-hosts", type=int, default=10000, help="selfservice: hosts in the scale repo, 0 to skip (default 10000)")
    p.add_argument("--ss-repeat", type=int, default=5, help="selfservice: runs of the scale request and pillar render (default 5; median)")
    p.add_argument("--ss-parts", default="salt,naive,scale", help="selfservice: salt (floor, ours, bulk), naive, scale (default all)")
    p.add_argument("--client-mounts", type=int, default=50, help="client: NFS mounts on the client VM (default 50)")
    p.add_argument("--client-exports", type=int, default=15, help="client: exports they share on the server VM (default 15)")
    p.add_argument("--client-repeat", type=int, default=3, help="client: no-op re-applies per side (default 3; median)")
    p.add_argument("--client-sides", default="core,ours,ours-managed", help="client: core, ours, ours-managed (default all)")
    p.add_argument("--keep", action="store_true", help="keep scratch dirs for inspection")
    p.add_argument("--results-dir", default=str(DEFAULT_RESULTS), help="where latest.json/latest.md go (default benchmarks/results)")
    args = p.parse_args(argv)
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    args.impls = [i for i in args.impls.split(",") if i]
    args.ss_parts = [i for i in args.ss_parts.split(",") if i]
    args.client_sides = [i for i in args.client_sides.split(",") if i]
    return args


def main(argv=None) -> int:
    global RESULTS
    args = parse_args(argv)
    RESULTS = Path(args.results_dir).resolve()
    if os.geteuid() != 0:
        sys.exit("the benchmarks need root (mount namespaces, network namespaces)")
    run_info = {"started": now(), "commit": git_commit(), "argv": sys.argv[1:], "loadavg_start": loadavg()}
    say(f"load average at start: {run_info['loadavg_start']} (other jobs on this machine inflate wall times; CPU times are recorded too)")
    if args.only in (None, "kernel"):
        run_kernel(args, run_info)
    if args.only in (None, "ganesha"):
        run_ganesha(args, run_info)
    if args.only in (None, "selfservice"):
        run_selfservice(args, run_info)
    if args.only in (None, "client"):
        run_client(args, run_info)
    run_info.update(ended=now(), loadavg_end=loadavg())

    def record_run(results):
        runs = results.setdefault("meta", {}).setdefault("runs", [])
        runs.append(run_info)
        del runs[:-10]

    update_results(record_run)
    say(f"results: {RESULTS / 'latest.md'}")
    print((RESULTS / "latest.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
