"""The local demo (``./dev demo``): a storage request from a dev team to verified NFS storage.

What runs, all real and all on this machine:
- NFS-Ganesha in its own network namespace, three client hosts as namespaces with their own
  addresses;
- a salt-master with salt-api (rest_cherrypy, eauth ``file`` with an htpasswd), a salt-minion that
  manages the ganesha server, git_pillar reading a local bare git repo (the storage data repo);
- our modules, synced to the minion the classic way (``saltutil.sync_all``).

The flow: a dev team's request becomes a commit in the data repo (requester as author); through
salt-api the pillar is refreshed and ``nfs.server`` applied (dry run with diff first); ganesha
picks the export up live over DBus; clients check it over the wire (NFSv3 and NFSv4). The
self-service runner that will write the commit for the team is the next piece; until then the
demo writes the commit the way the runner will.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.localsalt import Api, LocalSalt  # noqa: E402
from tests.support.nfsbed import NfsBed  # noqa: E402

SERVER = "nfs-server-1"
USER, PASSWORD = "alice", "demo-password"


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def info(text: str) -> None:
    print(f"   {text}", flush=True)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_data_repo(work: Path) -> tuple[Path, Path]:
    bare = work / "storage-data.git"
    clone = work / "storage-data"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True, capture_output=True)
    (clone / "pillar" / "nfs").mkdir(parents=True)
    (clone / "pillar" / "top.sls").write_text(f"base:\n  '{SERVER}':\n    - nfs.{SERVER.replace('-', '_')}\n")
    (clone / "pillar" / "nfs" / f"{SERVER.replace('-', '_')}.sls").write_text(
        yaml.safe_dump({"nfs": {"server": {"backend": "ganesha", "remove_unlisted": True, "exports": {}}}})
    )
    git("add", "-A", cwd=clone)
    git("-c", "user.name=storage-team", "-c", "user.email=storage@example.invalid", "commit", "-qm",
        f"Seed: {SERVER} serves nothing yet", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    return bare, clone


def commit_request(clone: Path, exports: dict, requester: str, why: str) -> str:
    path = clone / "pillar" / "nfs" / f"{SERVER.replace('-', '_')}.sls"
    data = yaml.safe_load(path.read_text())
    data["nfs"]["server"]["exports"].update(exports)
    path.write_text(yaml.safe_dump(data, default_flow_style=False))
    git("add", "-A", cwd=clone)
    git("-c", f"user.name={requester}", "-c", f"user.email={requester}@example.invalid", "commit", "-qm", why, cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    return git("rev-parse", "--short", "HEAD", cwd=clone)


def state_summary(result: dict) -> dict:
    (state,) = result[SERVER].values()
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave everything running until Enter is pressed")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nfskit-demo-"))
    print(f"work dir: {work}")
    bed = NfsBed(name="nkd", subnet="10.224.0.0/24", clients=3, workdir=work / "bed")
    salt = None
    try:
        step("1. NFS-Ganesha in its own network namespace, three client hosts")
        started = time.monotonic()
        bed.start()
        info(f"ganesha at {bed.server_addr} (pid {bed.ganesha_pid}); clients {', '.join(bed.client_addrs)} "
             f"[{time.monotonic() - started:.1f}s]")

        step("2. Storage data repo (git) with the server's pillar")
        bare, clone = make_data_repo(work)
        info(f"bare repo {bare}; history: {git('log', '--format=%an: %s', cwd=clone)}")

        step("3. salt-master + salt-api (eauth file) + a minion managing the ganesha server")
        tree = work / "state-tree"
        tree.mkdir()
        for name in ("_modules", "_states", "_runners", "_utils"):
            if (REPO / name).is_dir():  # a clean clone has no empty loader dirs
                (tree / name).symlink_to(REPO / name)
        (tree / "nfs").symlink_to(REPO / "salt" / "nfs")
        htpasswd = work / "htpasswd"
        from passlib.apache import HtpasswdFile

        table = HtpasswdFile(str(htpasswd), new=True)
        table.set_password(USER, PASSWORD)
        table.save()
        salt = LocalSalt(work / "salt", {
            "file_roots": {"base": [str(tree)]},
            "ext_pillar": [{"git": [{f"main file://{bare}": [{"root": "pillar"}, {"env": "base"}]}]}],
            "git_pillar_provider": "gitpython",
            "external_auth": {"file": {"^filename": str(htpasswd), "^filetype": "htpasswd",
                                       USER: [{"nfs-server-*": ["state.apply", "nfs_server.list_managed"]},
                                              {"@runner": ["git_pillar.update"]}]}},
        })
        started = time.monotonic()
        salt.start_master()
        salt.start_minion(SERVER, {"nfs_server": {"ganesha": bed.backend_config()}})
        synced = salt.salt(SERVER, "saltutil.sync_all")[SERVER]
        url = salt.start_api()
        info(f"synced to {SERVER}: {', '.join(synced['modules'] + synced['states'])}; salt-api {url} "
             f"[{time.monotonic() - started:.1f}s]")

        step(f"4. {USER} (dev team) logs in to salt-api")
        api = Api(url)
        info(f"wrong password -> HTTP {Api(url).login(USER, 'wrong', 'file')}")
        info(f"right password -> HTTP {api.login(USER, PASSWORD, 'file')}")

        step(f"5. The request: team storage, read-write for {bed.client_addr(1)}, read-only for {bed.client_addr(2)}")
        team_dir = bed.make_dir("team-a")
        request_started = time.monotonic()
        sha = commit_request(clone, {team_dir: {"clients": [
            {"hosts": bed.client_addr(1), "access": "rw"},
            {"hosts": bed.client_addr(2), "access": "ro"},
        ]}}, USER, f"team-a: add export {team_dir} (rw {bed.client_addr(1)}, ro {bed.client_addr(2)})")
        info(f"commit {sha} by {USER}: {git('log', '-1', '--format=%s', cwd=clone)}")

        step("6. Through salt-api: refresh git pillar, dry run with diff, apply")
        api.call(client="runner", fun="git_pillar.update")
        dry = state_summary(api.call(client="local", tgt=SERVER, fun="state.apply", arg=["nfs.server"], kwarg={"test": True}))
        info(f"test=True -> result {dry['result']}:")
        for line in dry["comment"].splitlines():
            info("   " + line)
        applied = state_summary(api.call(client="local", tgt=SERVER, fun="state.apply", arg=["nfs.server"]))
        info(f"apply -> result {applied['result']}: {applied['comment']}")

        step("7. Verified from the client hosts, over the wire")
        checks = [
            (f"{bed.client_addr(1)} NFSv3 write", bed.probe_v3(1, team_dir), "ok"),
            (f"{bed.client_addr(1)} NFSv4 write", bed.probe_v4(1, team_dir, real_path=team_dir), "ok"),
            (f"{bed.client_addr(2)} NFSv3 write (ro rule)", bed.probe_v3(2, team_dir), "read-only"),
            (f"{bed.client_addr(3)} NFSv3 mount (no rule)", bed.probe_v3(3, team_dir), "denied"),
        ]
        squash = bed.probe_v3(1, team_dir, uid=0)
        verified_after = time.monotonic() - request_started
        failures = 0
        for label, probe, expected in checks:
            good = probe.outcome == expected
            failures += not good
            info(f"{'OK  ' if good else 'FAIL'} {label}: {probe.outcome} (expected {expected})")
        good = squash.uid == 4294967294
        failures += not good
        info(f"{'OK  ' if good else 'FAIL'} root on {bed.client_addr(1)} creates a file owned by uid {squash.uid} (root squash)")
        info(f"request committed -> storage verified on every client: {verified_after:.1f}s")

        step("8. Apply again: nothing to do")
        again = state_summary(api.call(client="local", tgt=SERVER, fun="state.apply", arg=["nfs.server"]))
        info(f"result {again['result']}, changes {again['changes'] or 'none'}: {again['comment']}")
        failures += bool(again["changes"])

        step("9. A hostile request is refused before anything is written")
        commit_request(clone, {bed.make_dir("evil"): {"hosts": "10.0.0.1\n/ *(rw,no_root_squash)", "options": ["rw"]}},
                       "mallory", "sneak a world-writable export in")
        api.call(client="runner", fun="git_pillar.update")
        bad = state_summary(api.call(client="local", tgt=SERVER, fun="state.apply", arg=["nfs.server"]))
        info(f"result {bad['result']}: {bad['comment']}")
        failures += bad["result"] is not False
        managed = api.call(client="local", tgt=SERVER, fun="nfs_server.list_managed", kwarg={"backend": "ganesha"})[SERVER]
        info(f"still served: {json.dumps(sorted(managed))}; {bed.client_addr(1)} write: {bed.probe_v3(1, team_dir).outcome}")

        print()
        print("Demo finished: " + ("all checks passed" if not failures else f"{failures} check(s) FAILED"))
        if args.keep:
            input(f"Everything is still running (salt-api {url}, work dir {work}). Press Enter to stop. ")
        return 1 if failures else 0
    finally:
        step("Stopping everything this demo started")
        if salt:
            salt.stop()
        bed.stop()


if __name__ == "__main__":
    sys.exit(main())
