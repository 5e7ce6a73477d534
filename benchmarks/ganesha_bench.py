"""Benchmark 2: add one export to an NFS-Ganesha that already serves N (10,000) exports.

The server is ``tests/support/nfsbed.py``'s bed: ganesha, rpcbind and a private dbus-daemon in
their own network + mount namespace (``nkcb-srv``, 10.222.0.1), one client namespace
(``nkcb-c1``, 10.222.0.11). The N existing exports are written in the ganesha backend's own layout
(one block file each + the index file ganesha includes), so ours works on a realistic managed set.

- ours: ``GaneshaBackend.apply`` of a plan adding one export (validation with the real ganesha
  parser in a throwaway namespace, atomic write of the block and the index, DBus ``AddExport``),
  then a client probe loop until a fresh NFSv3 client can MNT the export and write a file in it.
  Timed from the start of ``apply``; ``read()`` of the N managed blocks + planning is reported
  separately (the Salt state pays it too). Repeated; the export is removed again between runs.
- SIGHUP: the export of the last run is taken out of the running server only (DBus
  ``RemoveExport``; its file stays), so the config on disk is exactly the N+1 of ours' result;
  then SIGHUP and the same probe loop until the export is usable again, and until ganesha logs
  "Reread exports complete".

The new export's path sorts into the middle of the N existing ones (``e05000-new*``), so a
SIGHUP reload reaches its block after about half of the others: the average position.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, REPO, fmt_s, fmt_x, median, say

sys.path.insert(0, str(REPO / "_utils"))
sys.path.insert(0, str(REPO / "tests" / "support"))

BED_NAME = "nkcb"
BED_SUBNET = "10.222.0.0/24"


class ProbeWorker:
    """benchmarks/nfsprobe.py running in a client namespace; one fresh NFSv3 client per probe."""

    def __init__(self, netns: str, server: str):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, str(BENCH / "nfsprobe.py"), server],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def probe(self, path: str) -> dict:
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the probe worker died")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def proc_cpu(pid) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reload_count(bed) -> int:
    return bed.log_text().count("Reread exports complete")


def live_export_count(address: str) -> int:
    """Exports ganesha serves now (DBus ShowExports; the pseudo root included)."""
    from nfskit.ganesha_dbus import GaneshaDBus

    with GaneshaDBus(address, timeout=120) as bus:
        body = bus._call("ShowExports")  # raw: only the count is needed
    return len(body[1]) if len(body) > 1 else 0


def populate(bed, backend, n: int, rule_host: str) -> None:
    """N export dirs and their block files in the backend's layout, plus the index; before start."""
    from nfskit.ganesha_codec import render_block
    from nfskit.model import ClientRule, Export

    rule = ClientRule(host=rule_host, access="rw")
    backend.exports_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        path = bed.make_dir(f"scale/e{i:05d}")
        export = Export(path, (rule,))
        file = backend.file_for(path)
        file.write_text(render_block(export, backend.first_export_id + i))
        files.append(file)
    backend._write_index(files)  # the backend's own index format (one %include per block file)


def run(existing: int = 10000, repeat: int = 3, keep: bool = False) -> dict:
    from nfsbed import NfsBed
    from nfskit.backends.ganesha import GaneshaBackend
    from nfskit.ganesha_dbus import GaneshaDBus
    from nfskit.model import ClientRule, Export
    from nfskit.plan import make_plan

    if hasattr(NfsBed, "remove_leftovers"):  # namespaces of a crashed earlier run of this benchmark
        removed = NfsBed.remove_leftovers(BED_NAME, 1)
        if removed:
            say(f"ganesha: removed leftovers of a crashed earlier run: {', '.join(removed)}")
    work = Path(tempfile.mkdtemp(prefix="nfskit-bench-ganesha-"))
    bed = NfsBed(name=BED_NAME, subnet=BED_SUBNET, clients=1, workdir=work / "bed", startup_timeout=3600)
    client = bed.client_addrs[0]
    rule = ClientRule(host=client, access="rw")
    section: dict = {"existing": existing, "server": f"nfs-ganesha in netns {bed.server_ns} ({bed.server_addr})", "client": f"netns {bed.client_ns[0]} ({client})"}
    worker = None
    try:
        backend = GaneshaBackend(bed.backend_config())
        say(f"ganesha: writing {existing} export dirs and block files under {work}")
        populate(bed, backend, existing, client)
        say(f"ganesha: starting with {existing} exports (research: ~75 s at 10,000) ...")
        t0 = time.monotonic()
        bed.start()
        section["start_s"] = time.monotonic() - t0
        section["start_cpu_s"] = proc_cpu(bed.ganesha_pid)
        say(f"ganesha: serving after {section['start_s']:.1f}s (ganesha used {section['start_cpu_s']:.1f}s CPU)")
        worker = ProbeWorker(bed.client_ns[0], bed.server_addr)
        mid = existing // 2
        old_path = str(bed.export_root / f"scale/e{mid:05d}")
        first = worker.probe(old_path)
        if not first.get("ok"):
            raise RuntimeError(f"an existing export is not usable from the client: {first}")
        section["probe_s"] = median([worker.probe(old_path)["s"] for _ in range(5)])
        say(f"ganesha: existing export usable from the client (probe: MNT + write, {section['probe_s'] * 1000:.1f} ms)")

        runs = []
        path = None
        for k in range(repeat):
            path = bed.make_dir(f"scale/e{mid:05d}-new{k}")
            before = worker.probe(path)
            if before.get("ok"):
                raise RuntimeError(f"{path} is usable before it was added: {before}")
            export = Export(path, (rule,))
            engine = GaneshaBackend(bed.backend_config())
            gcpu0 = proc_cpu(bed.ganesha_pid)
            t0 = time.monotonic()
            plan = make_plan(engine.read(), [export])
            t1 = time.monotonic()
            report = engine.apply(plan)
            t2 = time.monotonic()
            probes, result = 0, {}
            while time.monotonic() - t1 < 60:
                result = worker.probe(path)
                probes += 1
                if result.get("ok"):
                    break
                time.sleep(0.01)
            t3 = time.monotonic()
            gcpu1 = proc_cpu(bed.ganesha_pid)
            record = {
                "read_plan_s": t1 - t0,
                "apply_s": t2 - t1,
                "usable_s": t3 - t1,
                "usable_incl_read_s": t3 - t0,
                "probes": probes,
                "ganesha_cpu_s": (gcpu1 - gcpu0) if gcpu0 is not None and gcpu1 is not None else None,
                "method": report.method,
                "warnings": report.warnings,
                "ok": bool(result.get("ok")),
            }
            runs.append(record)
            say(
                f"ganesha ours run {k + 1}: read+plan {record['read_plan_s']:.3f}s, apply {record['apply_s']:.3f}s "
                f"({report.method}), usable {record['usable_s']:.3f}s after apply started ({probes} probe(s))"
                + ("" if record["ok"] else f"  ** NOT USABLE: {result}")
            )
            if k < repeat - 1:  # back to N exports for the next run
                GaneshaBackend(bed.backend_config()).apply(make_plan(GaneshaBackend(bed.backend_config()).read(), [], remove=[path]))
        live = live_export_count(bed.dbus_address)
        section["ours"] = {
            "runs": runs,
            "usable_s": median([r["usable_s"] for r in runs]),
            "apply_s": median([r["apply_s"] for r in runs]),
            "read_plan_s": median([r["read_plan_s"] for r in runs]),
            "usable_incl_read_s": median([r["usable_incl_read_s"] for r in runs]),
            "live_exports_after": live,
            "correct": all(r["ok"] for r in runs),
        }
        say(f"ganesha: {live} exports live after ours (pseudo root included)")

        # SIGHUP: the same N+1 config on disk; take the new export out of the running server only
        export_id = GaneshaBackend(bed.backend_config()).read_ids()[path]
        with GaneshaDBus(bed.dbus_address, timeout=120) as bus:
            bus.remove_export(export_id)
        gone = worker.probe(path)
        if gone.get("ok"):
            raise RuntimeError(f"{path} still usable after RemoveExport: {gone}")
        say(f"ganesha: SIGHUP reload of the same {existing + 1}-export config (research: 45-72 s at 10,000) ...")
        n0 = reload_count(bed)
        usable_at = complete_at = None
        probes = 0
        gcpu0 = proc_cpu(bed.ganesha_pid)
        t0 = time.monotonic()
        os.kill(bed.ganesha_pid, signal.SIGHUP)
        last_beat = t0
        while time.monotonic() - t0 < 3600 and (usable_at is None or complete_at is None):
            if usable_at is None:
                probes += 1
                if worker.probe(path).get("ok"):
                    usable_at = time.monotonic() - t0
                    say(f"ganesha SIGHUP: new export usable after {usable_at:.1f}s")
            if complete_at is None and reload_count(bed) > n0:
                complete_at = time.monotonic() - t0
                say(f"ganesha SIGHUP: 'Reread exports complete' after {complete_at:.1f}s")
            if time.monotonic() - last_beat > 30:
                last_beat = time.monotonic()
                say(f"  ... SIGHUP reload still running after {last_beat - t0:.0f}s")
            time.sleep(0.1)
        gcpu1 = proc_cpu(bed.ganesha_pid)
        existing_ok = worker.probe(old_path).get("ok")
        section["sighup"] = {
            "usable_s": usable_at,
            "reload_complete_s": complete_at,
            "probes": probes,
            "probe_interval_s": 0.1,
            "ganesha_cpu_s": (gcpu1 - gcpu0) if gcpu0 is not None and gcpu1 is not None else None,
            "existing_export_ok_after": bool(existing_ok),
            "correct": usable_at is not None,
        }
        ours_s = section["ours"]["usable_s"]
        section["speedup"] = (usable_at / ours_s) if usable_at and ours_s else None
        section["md"] = render_md(section)
        return section
    finally:
        if worker is not None:
            worker.close()
        bed.stop()
        if keep:
            say(f"ganesha scratch kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def render_md(s: dict) -> list[str]:
    o, h = s["ours"], s["sighup"]
    n = s["existing"]
    runs = len(o["runs"])
    lines = [
        f"Server: {s['server']}, client: {s['client']}. \"Usable\" = a fresh NFSv3 client (pyNfsClient) "
        f"MNTs the new export and writes a file (one probe: {fmt_s(s.get('probe_s'))}). "
        f"Ganesha start with {n:,} exports took {fmt_s(s.get('start_s'))} ({fmt_s(s.get('start_cpu_s'))} CPU).",
        "",
        "| Add one export | until usable | notes |",
        "|---|---:|---|",
        f"| ours: `GaneshaBackend.apply` (validate in a throwaway namespace + write + DBus AddExport) | **{fmt_s(o['usable_s'])}** "
        f"| median of {runs}; apply itself {fmt_s(o['apply_s'])} |",
        f"| ours, including `read()` of the {n:,} managed blocks + plan | {fmt_s(o['usable_incl_read_s'])} | read + plan {fmt_s(o['read_plan_s'])} |",
        f"| SIGHUP reload of the same {n + 1:,}-export config | **{fmt_s(h['usable_s'])}** | reload complete after {fmt_s(h['reload_complete_s'])} "
        f"(ganesha used {fmt_s(h.get('ganesha_cpu_s'))} CPU); "
        "the new block sits in the middle of the include list |",
        "",
        f"Speed-up (SIGHUP / ours, until usable): **{fmt_x(s.get('speedup'))}**.",
    ]
    return lines
