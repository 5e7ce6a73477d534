"""The local demo (``./dev demo``): a storage request from a dev team to verified NFS storage.

What runs, all real and all on this machine:
- NFS-Ganesha in its own network namespace, three client hosts as namespaces with their own
  addresses;
- a salt-master with salt-api (rest_cherrypy, eauth ``file`` with an htpasswd) and the ``nfs``
  self-service runner, a salt-minion that manages the ganesha server, the ``nfs_selfservice``
  ext_pillar reading a local bare git repo (the storage data repo) through git_pillar's machinery;
- our modules, synced the classic way (``saltutil.sync_all`` on the minion and the master).

The flow: a dev team user logs in to salt-api and calls ``nfs.request_export``; the runner
validates it against the team's policy and commits it to the data repo as pillar and Puppet hiera
data with the user as author. The storage team, through salt-api too, refreshes the pillar and
applies ``nfs.server`` (dry run with diff first); ganesha picks the export up live over DBus;
clients check it over the wire (NFSv3 and NFSv4). Hostile requests are refused with nothing
committed; a mount request lands as the host's pillar and hiera files, and Debian's Puppet reads
the hiera side (tests/support/puppet.py) into the same fstab entry.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.localsalt import Api, LocalSalt  # noqa: E402
from tests.support import puppet  # noqa: E402
from tests.support.nfsbed import NfsBed  # noqa: E402

SERVER = "nfs-server-1"
USER, PASSWORD = "alice", "demo-password"  # dev team team-a: may call nfs.* runner functions only
OPS, OPS_PASSWORD = "storage-ops", "ops-password"  # storage team: applies the server state
APP_HOST = "app1.team-a.example"


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def info(text: str) -> None:
    print(f"   {text}", flush=True)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def state_summary(result: dict) -> dict:
    (state,) = result[SERVER].values()
    return state


def self_service_config(bed: NfsBed, bare: Path, work: Path) -> dict:
    """The systems team's policy: team-a may use nfs-server-1 for its network and hosts."""
    return {
        "repo": str(bare),
        "branch": "main",
        "workdir": str(work / "selfservice"),
        "email_domain": "team-a.example",
        "servers": {SERVER: {"backend": "ganesha", "capacity_gb": 1000, "root": str(bed.export_root), "address": bed.server_addr}},
        "teams": {
            "team-a": {"members": [USER], "quota_gb": 200, "backends": ["ganesha"], "servers": [SERVER],
                       "client_networks": [str(bed.network)], "hosts": ["*.team-a.example"]},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave everything running until Enter is pressed")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nfskit-demo-"))
    print(f"work dir: {work}")
    bed = NfsBed(name="nkd", subnet="10.224.0.0/24", clients=3, workdir=work / "bed")
    salt = None
    failures = 0

    def check(good: bool, text: str) -> None:
        nonlocal failures
        failures += not good
        info(f"{'OK  ' if good else 'FAIL'} {text}")

    try:
        step("1. NFS-Ganesha in its own network namespace, three client hosts")
        started = time.monotonic()
        bed.start()
        info(f"ganesha at {bed.server_addr} (pid {bed.ganesha_pid}); clients {', '.join(bed.client_addrs)} "
             f"[{time.monotonic() - started:.1f}s]")

        step("2. The storage data repo: an empty bare git repo (the runner starts it)")
        bare = work / "storage-data.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        info(f"bare repo {bare}")

        step("3. salt-master with the nfs runner + salt-api (eauth file) + a minion managing the ganesha server")
        tree = work / "state-tree"
        tree.mkdir()
        for name in ("_modules", "_states", "_runners", "_pillar", "_utils"):
            if (REPO / name).is_dir():  # a clean clone has no empty loader dirs
                (tree / name).symlink_to(REPO / name)
        (tree / "nfs").symlink_to(REPO / "salt" / "nfs")
        htpasswd = work / "htpasswd"
        from passlib.apache import HtpasswdFile

        table = HtpasswdFile(str(htpasswd), new=True)
        table.set_password(USER, PASSWORD)
        table.set_password(OPS, OPS_PASSWORD)
        table.save()
        salt = LocalSalt(work / "salt", {
            "file_roots": {"base": [str(tree)]},
            "unique_jid": True,  # concurrent salt-api callers never share a jid (docs/nfs_runner.md)
            # a minion's self-service pillar from its own files in the data repo (repo and branch from
            # nfs_selfservice below), fetched through git_pillar's machinery and provider
            "ext_pillar": [{"nfs_selfservice": {}}],
            "git_pillar_provider": "gitpython",
            "nfs_selfservice": self_service_config(bed, bare, work),
            "external_auth": {"file": {"^filename": str(htpasswd), "^filetype": "htpasswd",
                                       USER: [{"@runner": ["nfs.*"]}],
                                       OPS: [{"nfs-server-*": ["state.apply", "saltutil.refresh_pillar", "nfs_server.list_managed"]},
                                             {"@runner": ["nfs.update_pillar"]}]}},
        })
        started = time.monotonic()
        salt.start_master()
        runners = salt.salt_run("saltutil.sync_all")["runners"]
        salt.start_minion(SERVER, {"nfs_server": {"ganesha": bed.backend_config()}})
        synced = salt.salt(SERVER, "saltutil.sync_all")[SERVER]
        url = salt.start_api()
        info(f"master synced {', '.join(runners)}; {SERVER} synced {', '.join(synced['modules'] + synced['states'])}; "
             f"salt-api {url} [{time.monotonic() - started:.1f}s]")

        step(f"4. {USER} (dev team team-a) logs in to salt-api")
        api = Api(url)
        info(f"wrong password -> HTTP {Api(url).login(USER, 'wrong', 'file')}")
        info(f"right password -> HTTP {api.login(USER, PASSWORD, 'file')}")
        status, _ = api.post(client="local", tgt=SERVER, fun="cmd.run", arg=["id"])
        check(status == 401, f"{USER} may call the nfs runner only: cmd.run on {SERVER} -> HTTP {status}")

        step(f"5. The request: nfs.request_export, read-write for {bed.client_addr(1)}, read-only for {bed.client_addr(2)}")
        request_started = time.monotonic()
        request = {"name": "build-cache", "backend": "ganesha", "server": SERVER, "size_gb": 50,
                   "clients": [{"hosts": bed.client_addr(1), "access": "rw"}, {"hosts": bed.client_addr(2), "access": "ro"}],
                   "reason": "shared cache for the CI builders"}
        info(f"POST {url}/ client=runner fun=nfs.request_export kwarg={json.dumps(request)}")
        answer = api.call(client="runner", fun="nfs.request_export", kwarg=request)
        check(answer["result"] is True, f"answered in {time.monotonic() - request_started:.2f}s: {answer.get('comment') or answer}")
        export_path = answer["export"]["path"]
        info(f"export {export_path}, device {answer['device']}")
        for line in git("log", "--format=%h %an <%ae>: %s", "main", cwd=bare).splitlines():
            info(f"   {line}")
        info("   files: " + ", ".join(git("show", "--format=", "--name-only", "main", cwd=bare).splitlines()))
        timeline = api.call(client="runner", fun="nfs.status", kwarg={"request_id": answer["request_id"]})
        info("nfs.status: " + " -> ".join(s["step"] for s in timeline["steps"]))

        step(f"6. The storage team ({OPS}), through salt-api: fetch the data repo, refresh the server's pillar, dry run with diff, apply")
        ops = Api(url)
        ops.login(OPS, OPS_PASSWORD, "file")
        bed.make_dir(str(Path(export_path).relative_to(bed.export_root)))  # provisioning the directory
        fetched = ops.call(client="runner", fun="nfs.update_pillar")
        check(fetched.get("result") is True, f"nfs.update_pillar (the nfs_selfservice ext_pillar's fetch, as git_pillar.update): {fetched.get('updated') or fetched}")
        ops.call(client="local", tgt=SERVER, fun="saltutil.refresh_pillar", kwarg={"wait": True})
        dry = state_summary(ops.call(client="local", tgt=SERVER, fun="state.apply", arg=["nfs.server"], kwarg={"test": True}))
        info(f"test=True -> result {dry['result']}:")
        for line in dry["comment"].splitlines():
            info("   " + line)
        applied = state_summary(ops.call(client="local", tgt=SERVER, fun="state.apply", arg=["nfs.server"]))
        info(f"apply -> result {applied['result']}: {applied['comment']}")

        step("7. Verified from the client hosts, over the wire")
        checks = [
            (f"{bed.client_addr(1)} NFSv3 write", bed.probe_v3(1, export_path), "ok"),
            (f"{bed.client_addr(1)} NFSv4 write", bed.probe_v4(1, export_path, real_path=export_path), "ok"),
            (f"{bed.client_addr(2)} NFSv3 write (ro rule)", bed.probe_v3(2, export_path), "read-only"),
            (f"{bed.client_addr(3)} NFSv3 mount (no rule)", bed.probe_v3(3, export_path), "denied"),
        ]
        squash = bed.probe_v3(1, export_path, uid=0)
        verified_after = time.monotonic() - request_started
        for label, probe, expected in checks:
            check(probe.outcome == expected, f"{label}: {probe.outcome} (expected {expected})")
        check(squash.uid == 4294967294, f"root on {bed.client_addr(1)} creates a file owned by uid {squash.uid} (root squash)")
        info(f"request -> storage verified on every client: {verified_after:.1f}s")

        step("8. Apply again: nothing to do")
        again = state_summary(ops.call(client="local", tgt=SERVER, fun="state.apply", arg=["nfs.server"]))
        check(not again["changes"], f"result {again['result']}, changes {again['changes'] or 'none'}: {again['comment']}")

        step("9. Hostile and out-of-policy requests are refused before anything is written")
        head = git("rev-parse", "main", cwd=bare)
        for label, bad in (
            ("a newline in a host", dict(request, name="evil", clients=[{"hosts": "10.224.0.11\n/ *(rw,no_root_squash)", "access": "rw"}])),
            ("no_root_squash from a dev team", dict(request, name="evil", clients=[{"hosts": bed.client_addr(1), "access": "rw", "squash": "none"}])),
            ("a network outside the team's", dict(request, name="evil", clients=[{"hosts": "192.0.2.0/24", "access": "rw"}])),
            ("Jinja in a name", dict(request, name="{{ 7*7 }}")),
        ):
            refused = api.call(client="runner", fun="nfs.request_export", kwarg=bad)
            check(refused["result"] is False, f"{label}: {refused.get('error', {}).get('message', refused)}")
        check(git("rev-parse", "main", cwd=bare) == head, "no commit was made")
        managed = ops.call(client="local", tgt=SERVER, fun="nfs_server.list_managed", kwarg={"backend": "ganesha"})[SERVER]
        info(f"still served: {json.dumps(sorted(managed))}; {bed.client_addr(1)} write: {bed.probe_v3(1, export_path).outcome}")

        step(f"10. A mount for {APP_HOST}: its pillar (nfs.client) and Puppet hiera (treydock/puppet-nfs) files")
        mount = api.call(client="runner", fun="nfs.request_mount",
                         kwarg={"export": "build-cache", "host": APP_HOST, "mount_point": "/mnt/cache", "options": ["hard", "vers=4.2"]})
        check(mount["result"] is True, mount.get("comment") or str(mount))
        for path in git("show", "--format=", "--name-only", "main", cwd=bare).splitlines():
            if path.startswith(("pillar/nfs/hosts/", "hiera/nodes/")):
                info(f"{path}:")
                for line in git("show", f"main:{path}", cwd=bare).splitlines():
                    info("   " + line)

        step(f"11. Puppet reads the hiera side: puppet apply for {APP_HOST} (docs/nfs_runner.md's hiera.yaml)")
        checkout = work / "puppet-checkout"
        git("clone", "-q", str(bare), str(checkout), cwd=work)
        started = time.monotonic()
        proc = puppet.apply(work / "puppet-root", checkout / "hiera", APP_HOST)
        problems = puppet.errors(proc)
        check(not problems, f"puppet apply [{time.monotonic() - started:.1f}s]" + "".join(f"\n        {p}" for p in problems))
        lines = [line for line in (work / "puppet-root/etc/fstab").read_text().splitlines() if line and not line.startswith("#")]
        for line in lines:
            info(f"fstab: {line}")
        check(lines == [f"{mount['device']}\t/mnt/cache\tnfs\thard,vers=4.2\t0\t0"], "Puppet mounts what Salt's pillar mounts")

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
