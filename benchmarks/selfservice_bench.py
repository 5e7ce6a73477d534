"""Self-service runner benchmarks (issue 4): throughput and safety through salt-api, against the
naive design and a no-op floor, plus the cost of one request and one pillar render at fleet scale.

Phases, all in one run on this machine (see benchmarks/README.md, section 3):

- floor: a real salt-master + salt-api (rest_cherrypy, eauth ``file`` with an htpasswd), the same
  clients and load as "ours", calling the no-op runner ``test.arg``;
- ours: ``nfs.request_mount`` through the same salt-api, N requests from C concurrent clients, each
  logged in as its own team member; then the bare repo is checked commit by commit;
- bulk: the same number of requests through ``nfs.request_bulk`` in a few calls;
- naive: ``naive_api.py`` (NFS-API's design: 4 workers, one shared checkout, no lock), the same
  requests from the same number of clients; its repo is checked the same way;
- scale: a data repo of 10,000 hosts, 1,000 hostgroups and 100,000 mounts
  (``tests/support/datarepo_scale.py``): one request through the runner in-process, and one
  minion's pillar compiled by Salt's ``salt.pillar.Pillar`` twice: over the checkout and its top
  file (the git_pillar path), and with only the ``nfs_selfservice`` ext_pillar configured (the
  data repo through GitPillar), next to Salt's floor (a ``Pillar`` with nothing configured).
"""
from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import REPO, loadavg, median, say

sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "_utils"))

import yaml  # noqa: E402

from tests.support.localsalt import Api, LocalSalt, free_port  # noqa: E402

TEAM = "team-a"
SERVER = "nfs1.example.com"
EXPORT = {"name": "data", "backend": "kernel", "server": SERVER, "size_gb": 100,
          "clients": [{"hosts": "10.1.0.0/16", "access": "rw"}], "reason": "benchmark export"}
DEVICE = f"{SERVER}:/srv/nfs/{TEAM}/data"
MOUNT_OPTIONS = ["hard", "vers=4.2"]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TARGETS = {"lost": 0, "broken_commits": 0, "throughput_vs_floor": 0.8, "p95_vs_floor": 1.5,
           "scale_request_s": 0.5, "scale_pillar_s": 0.1}


# ------------------------------------------------------------------------------------ helpers


def user(i: int) -> str:
    return f"dev{i:02d}"


def host(i: int) -> str:
    return f"h{i:03d}.team-a.example.com"


def requests_for(count: int, prefix: str) -> list[dict]:
    """``count`` mounts of the team's export: count/2 hosts, two mount points each (one host file
    gets two concurrent writers) and all of them in the export's one index file."""
    return [{"host": host(i // 2), "mount_point": f"/mnt/{prefix}{i % 2}"} for i in range(count)]


def git(*args: str, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def percentile(values: list[float], q: float):
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (everyone's, not only ours)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def session_cpu_s(sids: set[int]) -> float:
    """CPU seconds (own + waited-for children) of every live process in the given sessions."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        if int(rest[3]) in sids:  # field 6: session id
            total += sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


class Meter:
    """Wall, load average, our processes' CPU and the machine's busy CPU over one phase."""

    def __init__(self, sids=()):
        self.sids = set(sids)

    def __enter__(self):
        self.load0, self.busy0, self.cpu0 = loadavg(), machine_busy_s(), session_cpu_s(self.sids)
        self.self0 = sum(os.times()[:2])
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        self.figures = {
            "wall_s": round(self.wall, 3),
            "loadavg_start": self.load0,
            "loadavg_end": loadavg(),
            "server_cpu_s": round(session_cpu_s(self.sids) - self.cpu0, 2) if self.sids else None,
            "client_cpu_s": round(sum(os.times()[:2]) - self.self0, 2),
            "machine_busy_cpu_s": round(machine_busy_s() - self.busy0, 2),
        }


def drive(workers: list, calls_per_worker: list[list], call) -> list[dict]:
    """Run ``call(worker, item)`` for each worker's items in its own thread, all started together.

    Returns one record per item: ``{worker, item, latency_s, ok, answer, error}``.
    """
    records: list[dict] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(workers))

    def run(index):
        barrier.wait()
        for item in calls_per_worker[index]:
            started = time.monotonic()
            try:
                ok, answer = call(workers[index], item)
                error = None
            except Exception as exc:  # pylint: disable=broad-except
                ok, answer, error = False, None, f"{type(exc).__name__}: {exc}"
            record = {"worker": index, "item": item, "latency_s": time.monotonic() - started, "ok": ok, "answer": answer, "error": error}
            with lock:
                records.append(record)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records


def load_figures(records: list[dict], wall: float) -> dict:
    latencies = [r["latency_s"] for r in records if r["ok"]]
    return {
        "requests": len(records),
        "succeeded": sum(r["ok"] for r in records),
        "failed": sum(not r["ok"] for r in records),
        "requests_per_s": round(len(records) / wall, 3),
        "successes_per_s": round(len(latencies) / wall, 3),
        "p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
    }


def split(items: list, workers: int) -> list[list]:
    return [items[i::workers] for i in range(workers)]


# ------------------------------------------------------------------------------- repo history


def history(bare: Path, branch: str = "main") -> list[dict]:
    """Every commit oldest first: sha, parents, author, message and changed files with blob ids."""
    sep, end = "\x1f", "\x1e"
    out = git("log", "--reverse", "--no-renames", "--raw", "--no-abbrev", f"--format={end}%H{sep}%P{sep}%an <%ae>{sep}%B{sep}", branch, cwd=bare)
    commits = []
    for chunk in out.split(end)[1:]:
        sha, parents, author, message, raw = chunk.split(sep, 4)
        files = {}
        for line in raw.strip().splitlines():
            if line.startswith(":"):
                meta, path = line.split("\t", 1)
                new_blob = meta.split()[3]
                files[path] = None if set(new_blob) == {"0"} else new_blob
        commits.append({"sha": sha, "parents": parents.split(), "author": author, "message": message, "files": files})
    return commits


class Blobs:
    """``git cat-file --batch`` over a bare repo."""

    def __init__(self, bare: Path):
        self.proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=bare, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def text(self, blob: str) -> str:
        self.proc.stdin.write(blob.encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        size = int(header[2])
        data = self.proc.stdout.read(size + 1)[:-1]
        return data.decode("utf-8", "replace")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _mount_points(rel: str, data) -> set:
    """The mounts a data-repo file holds, as a set, to catch a commit that drops one."""
    if rel.startswith("pillar/nfs/hosts/") or rel.startswith("pillar/nfs/hostgroups/"):
        nfs = data["nfs"]
        return set(nfs["selfservice"]["mounts"]) | {("client", m) for m in nfs["client"]["mounts"]}
    if rel.startswith("hiera/nodes/") or rel.startswith("hiera/hostgroups/"):
        return set(data["nfs::nfs_mounts"])
    if rel.startswith("index/exports/"):
        return {(u["kind"], u["target"], u["mount_point"]) for u in data["mounts"]}
    return set()


def check_ours(bare: Path, answers: dict[str, dict], since: str) -> dict:
    """Check the data repo after a load run.

    ``answers``: request id -> ``{user, host, mount_point}`` of every request answered with success;
    ``since``: the commit before the run.
    """
    commits = history(bare)
    blobs = Blobs(bare)
    problems: list[str] = []
    merges = [c["sha"] for c in commits if len(c["parents"]) > 1]
    seen: dict[str, int] = {}
    broken = set()
    lost_in_history = set()
    last: dict[str, set] = {}
    wrong_author = 0
    foreign = 0
    in_run = 0
    parsed = 0
    started = False
    for c in commits:
        for rel, blob in c["files"].items():
            if blob is None or not (rel.endswith(".sls") or rel.endswith(".yaml")) or rel == "pillar/top.sls":
                if rel == "pillar/top.sls" and blob is not None and "base:" not in blobs.text(blob):
                    broken.add(c["sha"])
                continue
            try:
                data = yaml.load(blobs.text(blob), Loader=_LOADER)
                parsed += 1
                if not data:
                    raise ValueError("empty")
                points = _mount_points(rel, data)
            except Exception as exc:  # pylint: disable=broad-except
                broken.add(c["sha"])
                problems.append(f"{c['sha'][:10]} {rel}: {exc}")
                continue
            if last.get(rel, set()) - points:  # no release requests are made: a file never loses a mount
                lost_in_history.add(c["sha"])
                problems.append(f"{c['sha'][:10]} {rel} dropped {sorted(map(str, last[rel] - points))[:3]}")
            last[rel] = points
        if c["sha"] == since:
            started = True
            continue
        if not started:
            continue
        in_run += 1
        # one Request-Id line per change: a commit that joins a requester's burst holds several
        request_ids = [line.split(":", 1)[1].strip() for line in c["message"].splitlines() if line.startswith("Request-Id:")]
        if not request_ids or any(r not in answers for r in request_ids):
            foreign += 1
            problems.append(f"{c['sha'][:10]} carries a request id no answer has ({request_ids})")
            continue
        for request_id in request_ids:
            seen[request_id] = seen.get(request_id, 0) + 1
        requesters = {answers[r]["user"] for r in request_ids}
        if requesters != {c["author"].split(" <")[0]}:
            wrong_author += 1
            problems.append(f"{c['sha'][:10]} author {c['author']} for {sorted(requesters)}")
    # final data: every answered request is in the tip's pillar, hiera and index, exactly once
    from nfskit import datarepo

    index = yaml.load(git("show", f"main:{datarepo.export_index(TEAM, 'data')}", cwd=bare), Loader=_LOADER)["mounts"]
    uses = [(u["target"], u["mount_point"]) for u in index]
    missing = 0
    for request_id, a in answers.items():
        pillar = yaml.load(git("show", f"main:{datarepo.target_pillar('host', a['host'])}", cwd=bare), Loader=_LOADER)
        hiera = yaml.load(git("show", f"main:{datarepo.target_hiera('host', a['host'])}", cwd=bare), Loader=_LOADER)
        entry = pillar["nfs"]["client"]["mounts"].get(a["mount_point"], {})
        record = pillar["nfs"]["selfservice"]["mounts"].get(a["mount_point"], {})
        if entry.get("device") != DEVICE or record.get("request_id") != request_id or a["mount_point"] not in hiera["nfs::nfs_mounts"] \
                or uses.count((a["host"], a["mount_point"])) != 1:
            missing += 1
            problems.append(f"request {request_id} ({a['host']} {a['mount_point']}) is not in the final data exactly once")
    blobs.close()
    return {
        "commits": len(commits),
        "commits_in_run": in_run,
        "merges": len(merges),
        "linear": not merges and all(len(c["parents"]) <= 1 for c in commits),
        "answered_ok": len(answers),
        "landed_once": sum(1 for r in answers if seen.get(r) == 1),
        "landed_twice_or_more": sum(1 for r in answers if seen.get(r, 0) > 1),
        "missing_from_final": missing,
        "commits_without_an_answer": foreign,
        "wrong_author": wrong_author,
        "broken_commits": len(broken),
        "commits_dropping_mounts": len(lost_in_history),
        "files_parsed": parsed,
        "problems": problems[:20],
    }


# ------------------------------------------------------------------------- salt-api: ours, floor


def misdelivered(pairs: list[tuple[dict, dict]]) -> int:
    """Successful answers that describe another request (another mount point or host), or that
    carry a request id some other answer carries too: a caller was handed someone else's return."""
    ids = [a["request_id"] for _, a in pairs]
    return sum(1 for req, a in pairs
               if ids.count(a["request_id"]) > 1 or a.get("mount_point") != req["mount_point"] or a.get("target", {}).get("name") != req["host"])


def salt_config(work: Path, bare: Path, users: int) -> tuple[dict, Path]:
    from passlib.apache import HtpasswdFile

    tree = work / "state-tree"
    tree.mkdir()
    for name in ("_runners", "_utils"):
        (tree / name).symlink_to(REPO / name)
    htpasswd = work / "htpasswd"
    table = HtpasswdFile(str(htpasswd), new=True)
    for i in range(users):
        table.set_password(user(i), f"{user(i)}-pass")
    table.save()
    # the dev users may call nfs.* runner functions, and test.arg for the no-op floor, nothing else
    acl = [{"@runner": ["nfs.*", "test.arg"]}]
    config = {
        # Salt's default jids are timestamps to the microsecond: two concurrent runner calls can
        # share one, and salt-api then gives both callers the same return (docs/nfs_runner.md)
        "unique_jid": True,
        "file_roots": {"base": [str(tree)]},
        "external_auth": {"file": {"^filename": str(htpasswd), "^filetype": "htpasswd", **{user(i): acl for i in range(users)}}},
        "nfs_selfservice": {
            "repo": str(bare),
            "branch": "main",
            "workdir": str(work / "selfservice"),
            "email_domain": "team-a.example.com",
            "servers": {SERVER: {"backend": "kernel", "capacity_gb": 100000}},
            "teams": {TEAM: {"members": [user(i) for i in range(users)], "quota_gb": 100000, "servers": [SERVER],
                             "client_networks": ["10.1.0.0/16"], "hosts": ["*.team-a.example.com"]}},
        },
    }
    return config, htpasswd


def api_call(api: Api, low: dict) -> tuple[bool, object]:
    status, ret = api.post(**low)
    if status != 200:
        return False, {"http": status}
    return True, ret


def run_salt_phases(work: Path, n: int, clients: int, bulk_calls: int) -> dict:
    bare = work / "nfs-data.git"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=work)
    git("config", "core.logAllRefUpdates", "always", cwd=bare)  # a reflog entry per accepted push
    config, _ = salt_config(work, bare, clients)

    def pushes() -> int:
        return len(git("reflog", "show", "--format=%H", "refs/heads/main", cwd=bare).splitlines())

    salt = LocalSalt(work / "salt", config)
    section: dict = {"requests": n, "clients": clients}
    try:
        say("selfservice: starting salt-master, syncing the runner, starting salt-api")
        t0 = time.monotonic()
        salt.start_master()
        synced = salt.salt_run("saltutil.sync_all", timeout=180)
        if not synced or "runners.nfs" not in synced.get("runners", []):
            raise RuntimeError(f"saltutil.sync_all did not sync the nfs runner: {synced}")
        url = salt.start_api()
        sids = {p.pid for p in salt.procs}
        apis = []
        for i in range(clients):
            api = Api(url)
            if api.login(user(i), f"{user(i)}-pass", "file") != 200:
                raise RuntimeError(f"login of {user(i)} failed")
            apis.append(api)
        say(f"selfservice: salt up and {clients} users logged in [{time.monotonic() - t0:.1f}s]; salt-api {url}")
        ok, ret = api_call(apis[0], {"client": "runner", "fun": "nfs.request_export", "kwarg": EXPORT})
        if not ok or not ret or ret.get("result") is not True:
            raise RuntimeError(f"the export request failed: {ret}")
        # warm-up: one no-op and one nfs.list per client (loader caches, eauth caches, the work clone)
        drive(apis, [[None] for _ in apis], lambda api, _: api_call(api, {"client": "runner", "fun": "test.arg", "arg": ["warm"]}))
        drive(apis, [[None] for _ in apis], lambda api, _: api_call(api, {"client": "runner", "fun": "nfs.list"}))

        # ---- floor
        say(f"selfservice floor: {n} test.arg calls from {clients} clients")
        items = list(range(n))
        with Meter(sids) as m:
            records = drive(apis, split(items, clients), lambda api, i: api_call(api, {"client": "runner", "fun": "test.arg", "arg": [f"req{i}"], "kwarg": {"n": i}}))
        floor = dict(load_figures(records, m.wall), **m.figures)
        floor["failed_examples"] = [r["answer"] or r["error"] for r in records if not r["ok"]][:3]
        say(f"selfservice floor: {floor['requests_per_s']:.2f} req/s, p50 {floor['p50_s']} s, p95 {floor['p95_s']} s, failed {floor['failed']}")
        section["floor"] = floor

        # ---- ours
        since = git("rev-parse", "main", cwd=bare).strip()
        pushes0 = pushes()
        reqs = requests_for(n, "a")
        say(f"selfservice ours: {n} nfs.request_mount calls from {clients} clients")

        def mount(api, req):
            ok, ret = api_call(api, {"client": "runner", "fun": "nfs.request_mount",
                                     "kwarg": {"export": "data", "host": req["host"], "mount_point": req["mount_point"], "options": MOUNT_OPTIONS}})
            return bool(ok and isinstance(ret, dict) and ret.get("result") is True), ret

        with Meter(sids) as m:
            records = drive(apis, split(reqs, clients), mount)
        ours = dict(load_figures(records, m.wall), **m.figures)
        ours["failed_examples"] = [r["answer"] or r["error"] for r in records if not r["ok"]][:3]
        answers = {r["answer"]["request_id"]: {"user": user(r["worker"]), **r["item"]} for r in records if r["ok"]}
        ours["misdelivered"] = misdelivered([(r["item"], r["answer"]) for r in records if r["ok"]])
        ours["changed"] = sum(1 for r in records if r["ok"] and r["answer"].get("changed"))
        ours["pushes"] = pushes() - pushes0
        say(f"selfservice ours: {ours['requests_per_s']:.2f} req/s, p50 {ours['p50_s']} s, p95 {ours['p95_s']} s, failed {ours['failed']}; checking the repo")
        with Meter() as m:
            ours["check"] = check_ours(bare, answers, since)
        ours["check"]["check_s"] = m.figures["wall_s"]
        say(f"selfservice ours: check {json.dumps({k: v for k, v in ours['check'].items() if k != 'problems'})}")
        section["ours"] = ours

        # ---- bulk
        since = git("rev-parse", "main", cwd=bare).strip()
        pushes0 = pushes()
        reqs = requests_for(n, "b")
        per_call = -(-n // bulk_calls)
        chunks = [reqs[i:i + per_call] for i in range(0, n, per_call)]
        bulk_apis = apis[:len(chunks)]
        say(f"selfservice bulk: {n} mounts in {len(chunks)} nfs.request_bulk calls of {per_call}, {len(chunks)} clients at once")

        def bulk(api, chunk):
            ok, ret = api_call(api, {"client": "runner", "fun": "nfs.request_bulk",
                                     "kwarg": {"requests": [{"kind": "mount", "export": "data", "host": r["host"], "mount_point": r["mount_point"], "options": MOUNT_OPTIONS} for r in chunk]}})
            return bool(ok and isinstance(ret, dict) and ret.get("requests")), ret

        with Meter(sids) as m:
            records = drive(bulk_apis, [[c] for c in chunks], bulk)
        answers = {}
        done = 0
        pairs = []
        for r in records:
            for req, a in zip(r["item"], (r["answer"] or {}).get("requests", [])):
                if a.get("result") is True:
                    done += 1
                    answers[a["request_id"]] = {"user": user(r["worker"]), **req}
                    pairs.append((req, a))
        call_lat = [r["latency_s"] for r in records]
        b = {"calls": len(chunks), "per_call": per_call, "requests": n, "succeeded": done, "failed": n - done,
             "requests_per_s": round(n / m.wall, 3), "call_p50_s": round(percentile(call_lat, 0.5), 3), "call_max_s": round(max(call_lat), 3), **m.figures}
        b["pushes"] = pushes() - pushes0
        b["misdelivered"] = misdelivered(pairs)
        say(f"selfservice bulk: {b['requests_per_s']:.2f} req/s, {done}/{n} done; checking the repo")
        b["check"] = check_ours(bare, answers, since)
        say(f"selfservice bulk: check {json.dumps({k: v for k, v in b['check'].items() if k != 'problems'})}")
        section["bulk"] = b
        section["salt"] = subprocess.run([sys.executable, "-c", "import salt.version; print(salt.version.__version__)"], capture_output=True, text=True).stdout.strip()
    finally:
        salt.stop()
    return section


# ---------------------------------------------------------------------------------------- naive


def check_naive(bare: Path, successes: list[dict]) -> dict:
    commits = history(bare)
    blobs = Blobs(bare)
    broken, dropping = [], []
    previous: set = set()
    for c in commits[1:]:
        blob = c["files"].get("data/common.yaml")
        if blob is None:
            continue
        try:
            data = yaml.safe_load(blobs.text(blob))
            hosts = (data or {}).get("nfs_mounts::hosts")
            if not data or hosts is None:
                raise ValueError("empty")
            points = {(h, m["local_path"]) for h, ms in (hosts or {}).items() for m in ms}
        except Exception:  # pylint: disable=broad-except
            broken.append(c["sha"])
            continue
        if previous - points:
            dropping.append(c["sha"])
        previous = points
    blobs.close()
    try:  # the tip itself may hold a half-written file: then Puppet reads nothing, every mount is lost
        final = yaml.safe_load(git("show", "main:data/common.yaml", cwd=bare)) or {}
        present = [(h, m["local_path"]) for h, ms in ((final.get("nfs_mounts::hosts") or {}).items()) for m in ms]
        final_broken = False
    except Exception:  # pylint: disable=broad-except
        present, final_broken = [], True
    lost = [s for s in successes if (s["host"], s["mount_point"]) not in present]
    answered = {(s["host"], s["mount_point"]) for s in successes}
    return {
        "commits": len(commits) - 1,
        "merges": sum(1 for c in commits if len(c["parents"]) > 1),
        "final_broken": final_broken,
        "final_mounts": len(present),
        "final_duplicates": len(present) - len(set(present)),
        "final_from_failed_requests": len(set(present) - answered),
        "lost": len(lost),
        "broken_commits": len(broken),
        "commits_dropping_mounts": len(dropping),
        "authors": sorted({c["author"] for c in commits[1:]}),
    }


def run_naive(work: Path, n: int, clients: int, workers: int = 4) -> dict:
    work.mkdir(parents=True)
    bare = work / "naive.git"
    seed = work / "naive-seed"
    checkout = work / "naive-checkout"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=work)
    seed.mkdir()
    (seed / "data").mkdir()
    (seed / "data" / "common.yaml").write_text(yaml.dump({"nfs_mounts::hosts": {}, "nfs_mounts::hostgroups": {}}, default_flow_style=False))
    git("init", "--quiet", "-b", "main", cwd=seed)
    git("add", "-A", cwd=seed)
    git("-c", "user.name=seed", "-c", "user.email=seed@example.invalid", "commit", "--quiet", "-m", "seed", cwd=seed)
    git("push", "--quiet", str(bare), "main", cwd=seed)
    git("clone", "--quiet", "-b", "main", str(bare), str(checkout), cwd=work)
    for key, value in (("user.name", "nfs-api"), ("user.email", "nfs-api@example.com"), ("pull.rebase", "false")):
        git("config", key, value, cwd=checkout)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("naive_api.py")), str(checkout), str(port), str(workers)],
                            stdout=subprocess.DEVNULL, stderr=open(work / "naive.err", "ab"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        LocalSalt.wait(lambda: urllib.request.urlopen(url + "/", timeout=2).status == 200, 30, "naive API")
        reqs = requests_for(n, "a")

        def post(_, req):
            body = json.dumps({"name": req["host"], "local_path": req["mount_point"], "share_path": DEVICE}).encode()
            request = urllib.request.Request(url + "/mounts/hosts", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=300) as response:
                    return response.status == 200, {"http": response.status}
            except urllib.error.HTTPError as err:
                return False, {"http": err.code, "message": json.loads(err.read() or b"{}").get("message", "")[:200]}

        say(f"selfservice naive: {n} POST /mounts/hosts from {clients} clients to {workers} workers on one checkout")
        with Meter({proc.pid}) as m:
            records = drive(list(range(clients)), split(reqs, clients), post)
        naive = dict(load_figures(records, m.wall), **m.figures)
        errors: dict[str, int] = {}
        for r in records:
            if not r["ok"]:
                message = (r["answer"] or {}).get("message") or r["error"] or ""
                key = message.split(":")[0].split("\n")[0][:60] if message else f"HTTP {(r['answer'] or {}).get('http')}"
                errors[key] = errors.get(key, 0) + 1
        naive["errors"] = dict(sorted(errors.items(), key=lambda kv: -kv[1])[:6])
        naive["check"] = check_naive(bare, [r["item"] for r in records if r["ok"]])
        try:  # a torn file left in the shared checkout fails every later request until someone repairs it
            yaml.safe_load((checkout / "data" / "common.yaml").read_text())
            naive["check"]["checkout_file_parses"] = True
        except Exception:  # pylint: disable=broad-except
            naive["check"]["checkout_file_parses"] = False
        c = naive["check"]
        naive["lost_share"] = round(c["lost"] / naive["succeeded"], 3) if naive["succeeded"] else None
        say(f"selfservice naive: {naive['succeeded']}/{n} answered success, {c['lost']} of them lost, {c['broken_commits']} broken commits, "
            f"{c['commits_dropping_mounts']} commits dropping mounts; errors {naive['errors']}")
    finally:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    return naive


# ---------------------------------------------------------------------------------------- scale


def master_opts(work: Path, extra: dict) -> dict:
    import salt.config

    conf = work / "scale-master" / "master"
    conf.parent.mkdir(parents=True)
    conf.write_text(yaml.safe_dump({"root_dir": str(work / "scale-master"), "runner_dirs": [str(REPO / "_runners")],
                                    "log_level": "quiet", "ext_pillar": [], "file_client": "local", **extra}))
    return salt.config.master_config(str(conf))


def run_scale(work: Path, hosts: int, repeat: int) -> dict:
    import salt.loader
    import salt.pillar

    from tests.support import datarepo_scale as scale

    groups = hosts // 10
    say(f"selfservice scale: building a data repo with {hosts:,} hosts, {groups:,} hostgroups (tests/support/datarepo_scale.py)")
    with Meter() as m:
        bare, counts = scale.build_bare_repo(work / "scale", hosts=hosts, hostgroups=groups)
    files = int(git("ls-tree", "-r", "--name-only", "main", cwd=bare).count("\n"))
    section = {"counts": counts, "files": files, "build_s": m.figures["wall_s"]}
    say(f"selfservice scale: {counts} ({files:,} files) built in {m.figures['wall_s']:.1f}s")
    seed = work / "scale" / "seed"
    opts = master_opts(work, {"nfs_selfservice": scale.self_service_config(str(bare), str(work / "scale-work"), hostgroups=groups)})

    # one request through the runner, in-process (the loader's runner module, __user__ as the master sets it)
    runners = salt.loader.runner(opts)
    fn = runners["nfs.request_mount"]

    def one(k: int) -> tuple[float, float, dict]:
        n = 17 + 100 * k  # team 17's hosts
        fn.__globals__["__user__"] = "user17"
        c0, t0 = sum(os.times()[:2]) + sum(os.times()[2:4]), time.perf_counter()
        ret = fn(export="vol-nfs0", host=scale.host_name(n), mount_point=f"/mnt/bench-{k}", options=MOUNT_OPTIONS)
        return time.perf_counter() - t0, sum(os.times()[:2]) + sum(os.times()[2:4]) - c0, ret

    first_s, first_cpu, ret = one(0)
    if ret.get("result") is not True:
        raise RuntimeError(f"scale request failed: {ret}")
    say(f"selfservice scale: first request (clones {files:,} files) {first_s:.2f}s")
    timings = [one(k) for k in range(1, repeat + 1)]
    bad = [t[2] for t in timings if t[2].get("result") is not True]
    if bad:
        raise RuntimeError(f"scale request failed: {bad[0]}")
    # where one request's time goes: profile one more
    profile = cProfile.Profile()
    profile.enable()
    one(repeat + 1)
    profile.disable()
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("cumulative").print_stats(12)
    section["request"] = {
        "first_s": round(first_s, 3), "first_cpu_s": round(first_cpu, 3), "runs": repeat,
        "median_s": round(median([t[0] for t in timings]), 3), "max_s": round(max(t[0] for t in timings), 3),
        "median_cpu_s": round(median([t[1] for t in timings]), 3),
        "all_s": [round(t[0], 3) for t in timings],
        "profile_top": [line for line in stream.getvalue().splitlines() if line.strip()][:30],
    }
    say(f"selfservice scale: one request median {section['request']['median_s']:.3f}s (cpu {section['request']['median_cpu_s']:.3f}s) over {repeat}")

    # one minion's pillar, compiled by Salt over the checkout (what git_pillar does with its checkout)
    n = 17
    minion = scale.host_name(n)
    my_groups = [f"g{g:04d}" for g in range(n % 100, groups, 100)][:3]
    grains = {"id": minion, "role": [f"r{g[1:]}" for g in my_groups], "env": "prod"}
    popts = dict(opts, pillar_roots={"base": [str(seed / "pillar")]}, ext_pillar=[], id=minion)

    def render():
        t0 = time.perf_counter()
        pillar = salt.pillar.Pillar(popts, grains, minion, "base")
        t1 = time.perf_counter()
        data = pillar.compile_pillar()
        return t1 - t0, time.perf_counter() - t1, data

    init0, comp0, data = render()  # warms the file client and the renderers
    mounts = data.get("nfs", {}).get("client", {}).get("mounts", {})
    # the generator gives every hostgroup the same 10 mount points (/srv/vol-nfsN-M), which merge
    if "_errors" in data or len(mounts) != 9 + 10 or len(my_groups) != min(3, len(range(n % 100, groups, 100))):
        raise RuntimeError(f"pillar of {minion}: {len(mounts)} mounts, errors {data.get('_errors')}")
    renders = [render() for _ in range(repeat)]
    profile = cProfile.Profile()
    profile.enable()
    render()
    profile.disable()
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(12)
    section["pillar"] = {
        "minion": minion, "hostgroups_matched": my_groups, "mounts": len(mounts), "runs": repeat,
        "first_s": round(init0 + comp0, 3),
        "median_s": round(median([a + b for a, b, _ in renders]), 3),
        "median_init_s": round(median([a for a, _, _ in renders]), 3),
        "median_compile_s": round(median([b for _, b, _ in renders]), 3),
        "all_s": [round(a + b, 3) for a, b, _ in renders],
        "profile_top": [line for line in stream.getvalue().splitlines() if line.strip()][:30],
    }
    say(f"selfservice scale: pillar of {minion} ({len(mounts)} mounts) median {section['pillar']['median_s']:.3f}s "
        f"(Pillar() {section['pillar']['median_init_s']:.3f}s + compile {section['pillar']['median_compile_s']:.3f}s)")

    # the same minion through the nfs_selfservice ext_pillar only, from the bare repo via GitPillar
    # (its own cache: the first render clones and checks out); and Salt's floor, a Pillar with nothing
    eopts = dict(opts, pillar_roots={"base": []}, pillar_dirs=[str(REPO / "_pillar")], cachedir=str(work / "scale-ext-cache"),
                 ext_pillar=[{"nfs_selfservice": {}}], id=minion)  # repo and branch from the runner config
    fopts = dict(opts, pillar_roots={"base": []}, ext_pillar=[], id=minion)

    def render_with(o):
        t0, c0 = time.perf_counter(), time.process_time()
        result = salt.pillar.Pillar(o, grains, minion, "base").compile_pillar()
        render_with.cpu.append(time.process_time() - c0)  # this process only: a render runs no child processes once checked out
        return time.perf_counter() - t0, result

    render_with.cpu = []
    ext_first, ext_data = render_with(eopts)
    ext_mounts = ext_data.get("nfs", {}).get("client", {}).get("mounts", {})
    # the bare repo is the seed plus the requests above, one of which (/mnt/bench-0) is this minion's
    if "_errors" in ext_data or set(ext_mounts) != set(mounts) | {"/mnt/bench-0"} or any(ext_mounts[k] != v for k, v in mounts.items()):
        raise RuntimeError(f"ext_pillar of {minion}: {sorted(ext_mounts)} vs {sorted(mounts)}, errors {ext_data.get('_errors')}")
    ext_runs = max(repeat, 20)
    # ours and the floor alternate, so that the machine's drift (here the floor alone moves between
    # 70 and 130 ms within a minute) weighs on both alike
    ext_renders, ext_cpu, floor_renders, floor_cpu = [], [], [], []
    for _ in range(ext_runs):
        for renders, cpu, o in ((ext_renders, ext_cpu, eopts), (floor_renders, floor_cpu, fopts)):
            render_with.cpu = cpu
            renders.append(render_with(o)[0])
    git_cpu = []
    for _ in range(repeat):  # the git_pillar path's CPU, for the same comparison
        c0 = time.process_time()
        salt.pillar.Pillar(popts, grains, minion, "base").compile_pillar()
        git_cpu.append(time.process_time() - c0)
    profile = cProfile.Profile()
    profile.enable()
    render_with(eopts)
    profile.disable()
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("cumulative").print_stats(12)
    section["ext_pillar"] = {
        "minion": minion, "mounts": len(ext_mounts), "runs": ext_runs, "first_s": round(ext_first, 3),
        "median_s": round(median(ext_renders), 4), "max_s": round(max(ext_renders), 4),
        "floor_median_s": round(median(floor_renders), 4),
        "median_cpu_s": round(median(ext_cpu), 4), "floor_median_cpu_s": round(median(floor_cpu), 4),
        "git_pillar_median_cpu_s": round(median(git_cpu), 4),
        "all_s": [round(t, 4) for t in ext_renders],
        "profile_top": [line for line in stream.getvalue().splitlines() if line.strip()][:30],
    }
    say(f"selfservice scale: nfs_selfservice ext_pillar of {minion} ({len(ext_mounts)} mounts) median {section['ext_pillar']['median_s']:.3f}s "
        f"(Salt's floor, an empty Pillar: {section['ext_pillar']['floor_median_s']:.3f}s; first render, clone included: {ext_first:.1f}s)")
    return section


# -------------------------------------------------------------------------------------- markdown


def verdict(good: bool) -> str:
    return "met" if good else "**missed**"


def render_md(s: dict) -> list[str]:
    out: list[str] = []
    floor, ours, bulk, naive = s.get("floor"), s.get("ours"), s.get("bulk"), s.get("naive")

    def fs(v):
        return "n/a" if v is None else f"{v:.2f} s"

    if floor and ours:
        oc = ours["check"]
        out += [
            f"{s['requests']} requests from {s['clients']} concurrent HTTP clients (threads), each logged in to salt-api "
            f"(rest_cherrypy, eauth `file`/htpasswd, ACL `@runner: [nfs.*, test.arg]`) as its own member of one team; "
            f"salt {s.get('salt', '?')}, a local bare repo as the data repo. Requests: `nfs.request_mount` of one export for "
            f"{s['requests'] // 2} hosts x 2 mount points (every request also updates the export's one index file). "
            "Server CPU = salt-master + salt-api and all their children (jobs, git).",
            "",
            "| | requests/s | p50 | p95 | failed | lost | broken commits | server CPU | load avg (start/end) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
            f"| floor: no-op runner `test.arg` | {floor['requests_per_s']:.2f} | {fs(floor['p50_s'])} | {fs(floor['p95_s'])} | {floor['failed']} | - | - | {floor['server_cpu_s']:.0f} s | {floor['loadavg_start'][0]:g} / {floor['loadavg_end'][0]:g} |",
            f"| **ours**: `nfs.request_mount` | **{ours['requests_per_s']:.2f}** | {fs(ours['p50_s'])} | {fs(ours['p95_s'])} | {ours['failed']} | {oc['missing_from_final']} | {oc['broken_commits']} | {ours['server_cpu_s']:.0f} s | {ours['loadavg_start'][0]:g} / {ours['loadavg_end'][0]:g} |",
        ]
        if bulk:
            bc = bulk["check"]
            out.append(f"| ours, bulk: {bulk['calls']} `nfs.request_bulk` calls of {bulk['per_call']} at once | **{bulk['requests_per_s']:.2f}** | {fs(bulk['call_p50_s'])} per call | max {fs(bulk['call_max_s'])} per call | {bulk['failed']} | {bc['missing_from_final']} | {bc['broken_commits']} | {bulk['server_cpu_s']:.0f} s | {bulk['loadavg_start'][0]:g} / {bulk['loadavg_end'][0]:g} |")
        if naive:
            nc = naive["check"]
            out.append(f"| naive (NFS-API design: 4 workers, one checkout, no lock) | {naive['requests_per_s']:.2f} ({naive['successes_per_s']:.2f} successes/s) | {fs(naive['p50_s'])} | {fs(naive['p95_s'])} | {naive['failed']} | **{nc['lost']}** of {naive['succeeded']} successes | **{nc['broken_commits']}** | {naive['server_cpu_s']:.0f} s | {naive['loadavg_start'][0]:g} / {naive['loadavg_end'][0]:g} |")
        out.append("")
        ratio = ours["requests_per_s"] / floor["requests_per_s"] if floor["requests_per_s"] else 0
        p95 = (ours["p95_s"] or 0) / floor["p95_s"] if floor.get("p95_s") else None
        out += [
            "Targets (issue 4):",
            f"- 0 lost: ours {oc['missing_from_final']} ({verdict(oc['missing_from_final'] == 0 and ours['failed'] == 0)}; {oc['landed_once']} of {oc['answered_ok']} successful requests landed in exactly one commit, "
            f"{oc['commits_without_an_answer']} commits without an answered request, every one in the final pillar, hiera and index exactly once; "
            f"{ours.get('pushes', '?')} pushes for {oc['commits_in_run']} commits; answers handed to the wrong caller: {ours.get('misdelivered', '?')}, with `unique_jid: True`).",
            f"- 0 broken commits: ours {oc['broken_commits']} ({verdict(oc['broken_commits'] == 0 and oc['commits_dropping_mounts'] == 0)}; {oc['files_parsed']} changed files parsed at every commit, "
            f"{oc['commits_dropping_mounts']} commits dropped a mount an earlier commit had). History linear: {'yes' if oc['linear'] else '**no**'} ({oc['merges']} merges); "
            f"author = requester: {oc['commits_in_run'] - oc['wrong_author']} of {oc['commits_in_run']}.",
            f"- throughput >= 80% of the floor: {ratio:.0%} ({verdict(ratio >= TARGETS['throughput_vs_floor'])}).",
            f"- p95 <= 1.5x the floor's: {p95:.2f}x ({verdict(p95 is not None and p95 <= TARGETS['p95_vs_floor'])})." if p95 is not None else "- p95: n/a",
        ]
        if bulk:
            out.append(f"- bulk: {bulk['requests_per_s'] / floor['requests_per_s']:.1f}x the floor's requests/s; {bulk['check']['landed_once']} of {bulk['succeeded']} landed once ({bulk.get('pushes', '?')} pushes), "
                       f"{bulk['check']['broken_commits']} broken commits, history linear: {'yes' if bulk['check']['linear'] else 'no'}.")
        if naive:
            nc = naive["check"]
            out += ["", f"The naive design, same run: {naive['succeeded']} of {naive['requests']} requests answered success, "
                    f"{nc['lost']} of those ({(naive['lost_share'] or 0):.0%}) are missing from the final data (which holds {nc['final_mounts']} mounts, "
                    f"{nc['final_from_failed_requests']} of them from requests answered as failed); {nc['commits']} commits, "
                    + ("**the final data file itself does not parse** (a half-written file was committed last), ") * bool(nc.get("final_broken"))
                    + f"{nc['broken_commits']} with an empty or unparseable data file, {nc['commits_dropping_mounts']} that dropped mounts an earlier commit had; "
                    f"every commit by {', '.join('`' + a + '`' for a in nc['authors']) or '-'} (no requester). Failures: "
                    + ", ".join(f"{k!r} x{v}" for k, v in naive["errors"].items()) + "."]
            if len(naive.get("runs", [])) > 1:
                out += ["", "All naive runs of this benchmark run (same load, fresh repo each):", "",
                        "| run | successes | lost of those | failed | commits | broken commits | commits dropping mounts | final committed file parses | checkout's file parses at the end | requests/s |",
                        "|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
                for k, r in enumerate(naive["runs"], 1):
                    rc = r["check"]
                    out.append(f"| {k} | {r['succeeded']} | {rc['lost']} | {r['failed']} | {rc['commits']} | {rc['broken_commits']} | {rc['commits_dropping_mounts']} | "
                               f"{'**no**' if rc.get('final_broken') else 'yes'} | {'yes' if rc.get('checkout_file_parses', True) else '**no** (every later request fails)'} | {r['requests_per_s']:.1f} |")
        out.append("")
    sc = s.get("scale")
    if sc:
        r, p = sc["request"], sc["pillar"]
        c = sc["counts"]
        out += [
            f"Scale: a data repo of {c['hosts']:,} hosts, {c['hostgroups']:,} hostgroups, {c['mounts']:,} mounts, {c['exports']:,} exports "
            f"({sc['files']:,} files, one commit; built in {sc['build_s']:.0f} s by `tests/support/datarepo_scale.py`).",
            "",
            "| | median | target | |",
            "|---|---:|---:|---|",
            f"| one `nfs.request_mount`, runner in-process (validate, lock, apply, commit, push to the bare repo) | **{fs(r['median_s'])}** (CPU {fs(r['median_cpu_s'])}; {r['runs']} runs, max {fs(r['max_s'])}) | < 0.50 s | {verdict(r['median_s'] < TARGETS['scale_request_s'])} |",
            f"| one minion's pillar, git_pillar path (`salt.pillar.Pillar` over the checkout and its top file: {p['mounts']} mounts, {len(p['hostgroups_matched'])} hostgroups) | **{fs(p['median_s'])}** (`Pillar()` {fs(p['median_init_s'])} + `compile_pillar` {fs(p['median_compile_s'])}; {p['runs']} runs) | < 0.10 s | {verdict(p['median_s'] < TARGETS['scale_pillar_s'])} |",
        ]
        e = sc.get("ext_pillar")
        if e:
            cpu = ""
            if "median_cpu_s" in e:
                cpu = (f"; CPU {e['median_cpu_s'] * 1000:.0f} ms, floor {e['floor_median_cpu_s'] * 1000:.0f} ms, "
                       f"git_pillar path {e['git_pillar_median_cpu_s']:.2f} s")
            out.append(
                f"| the same minion's pillar, `nfs_selfservice` ext_pillar only (`Pillar()` + `compile_pillar`, data repo through GitPillar: {e['mounts']} mounts) | **{e['median_s'] * 1000:.0f} ms** ({e['runs']} runs, max {e['max_s'] * 1000:.0f} ms; Salt's floor, a `Pillar` with nothing configured: {e['floor_median_s'] * 1000:.0f} ms){cpu} | < 0.10 s | {verdict(e['median_s'] < TARGETS['scale_pillar_s'])} |"
            )
        out += [
            "",
            f"The first request after start clones the repo: {fs(r['first_s'])}.",
            "",
        ]
    return out


def run(requests: int = 200, clients: int = 20, bulk_calls: int = 10, scale_hosts: int = 10_000, scale_repeat: int = 5,
        parts: tuple = ("salt", "naive", "scale"), keep: bool = False, naive_runs: int = 3) -> dict:
    """The figures of the given parts (``salt``: floor, ours and bulk; ``naive``; ``scale``), without markdown."""
    work = Path(tempfile.mkdtemp(prefix="nfskit-bench-ss-"))
    section: dict = {}
    try:
        if "salt" in parts:
            section.update(run_salt_phases(work, requests, clients, bulk_calls))
        if "salt" in parts or "naive" in parts:
            section.update(requests=requests, clients=clients)
        if "naive" in parts:
            # the naive design's outcome depends on how the races fall: several runs, each reported
            runs = [run_naive(work / f"naive-{k}", requests, clients) for k in range(naive_runs)]
            section["naive"] = dict(runs[0], runs=[{key: r[key] for key in ("succeeded", "failed", "requests_per_s", "p50_s", "p95_s", "errors", "check", "lost_share")} for r in runs])
        if "scale" in parts and scale_hosts:
            section["scale"] = run_scale(work, scale_hosts, scale_repeat)
    finally:
        if keep:
            say(f"scratch kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    section["targets"] = TARGETS
    return section
