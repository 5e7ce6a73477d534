"""Build a large storage data repo fast (for scale tests and benchmarks).

The files are the ones the runner writes (same functions, same YAML), generated in bulk instead of
request by request: ``hosts`` hosts with ``mounts_per_host`` mounts each, ``hostgroups`` groups with
``mounts_per_group`` each, spread over ``teams`` teams with one export per team and server.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from nfskit import datarepo, hostgroup_index
from nfskit.request import parse_export_request

SERVERS = [f"nfs{n}.example.com" for n in range(10)]


def host_name(n: int) -> str:
    return f"h{n:05d}.team{n % 100:02d}.example.com"


def team_name(n: int) -> str:
    return f"team{n:02d}"


def self_service_config(repo: str, workdir: str, teams: int = 100, hostgroups: int = 1000) -> dict:
    """The nfs_selfservice config that matches :func:`build`."""
    return {
        "repo": repo,
        "branch": "main",
        "workdir": workdir,
        "servers": {s: {"backend": "kernel", "capacity_gb": 10**6} for s in SERVERS},
        "hostgroups": {f"g{g:04d}": f"G@role:r{g:04d} and G@env:prod" for g in range(hostgroups)},
        "teams": {
            team_name(t): {
                "members": [f"user{t:02d}"],
                "quota_gb": 10**6,
                "servers": SERVERS,
                "client_networks": [f"10.{t}.0.0/16"],
                "hosts": [f"*.team{t:02d}.example.com"],
                "hostgroups": [f"g{g:04d}" for g in range(t, hostgroups, teams)],
            }
            for t in range(teams)
        },
    }


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build(root: Path, hosts: int = 10_000, hostgroups: int = 1_000, teams: int = 100, mounts_per_host: int = 9, mounts_per_group: int = 10) -> dict:
    """Write the tree under ``root`` (an empty directory); returns counts."""
    exports = {}
    allocations: dict[str, dict] = {s: {} for s in SERVERS}
    for t in range(teams):
        team = team_name(t)
        for server in SERVERS:
            name = f"vol-{server.split('.')[0]}"
            path = f"/srv/nfs/{team}/{name}"
            record = {"name": name, "team": team, "backend": "kernel", "server": server, "path": path, "size_gb": 10, "request_id": "0" * 32, "requested_by": f"user{t:02d}"}
            rules = parse_export_request({"name": "x", "backend": "kernel", "server": server, "size_gb": 1, "clients": [{"hosts": f"10.{t}.0.0/16", "access": "rw"}]}).rules
            pillar = {"nfs": {"selfservice": {"exports": {f"{team}/{name}": record}}, "server": {"exports": {path: {"clients": [datarepo.rule_to_pillar(r) for r in rules]}}}}}
            _write(root, datarepo.export_pillar(team, name), datarepo.PILLAR_HEADER + datarepo.dump(pillar))
            allocations[server][f"{team}/{name}"] = {"path": path, "size_gb": 10}
            exports[(team, name)] = {"record": record, "uses": []}
    for server, allocs in allocations.items():
        data = {"include": sorted(datarepo.export_sls(*k.split("/")) for k in allocs),
                "nfs": {"server": {"backend": "kernel", "remove_unlisted": True}, "selfservice": {"allocations": allocs}}}
        _write(root, datarepo.server_pillar(server), datarepo.PILLAR_HEADER + datarepo.dump(data))
        hiera = {"nfs::server": True, "nfs::exports": {a["path"]: [{"host": "10.0.0.0/8", "options": "rw,sync,no_subtree_check,root_squash", "order": 1}] for a in allocs.values()}}
        _write(root, datarepo.server_hiera(server), datarepo.HIERA_HEADER + datarepo.dump(hiera))

    def mounts_for(kind, target, team_index, count):
        team = team_name(team_index)
        pillar, records, hiera = {}, {}, {}
        for m in range(count):
            server = SERVERS[m % len(SERVERS)]
            name = f"vol-{server.split('.')[0]}"
            mount_point = f"/{'mnt' if kind == 'host' else 'srv'}/{name}-{m}"
            device = f"{server}:/srv/nfs/{team}/{name}"
            pillar[mount_point] = {"device": device, "fstype": "nfs", "opts": ["hard", "vers=4.2"]}
            records[mount_point] = {"export": f"{team}/{name}", "team": team, "request_id": "0" * 32}
            hiera[mount_point] = {"device": device, "ensure": "mounted", "atboot": True, "options": "hard,vers=4.2"}
            exports[(team, name)]["uses"].append({"kind": kind, "target": target, "mount_point": mount_point})
        _write(root, datarepo.target_pillar(kind, target), datarepo.PILLAR_HEADER + datarepo.dump({"nfs": {"client": {"mounts": pillar}, "selfservice": {"mounts": records}}}))
        _write(root, datarepo.target_hiera(kind, target), datarepo.HIERA_HEADER + datarepo.dump({"nfs::nfs_mounts": hiera}))

    for n in range(hosts):
        mounts_for("host", host_name(n), n % teams, mounts_per_host)
    groups = {}
    for g in range(hostgroups):
        name = f"g{g:04d}"
        groups[name] = f"G@role:r{g:04d} and G@env:prod"
        mounts_for("hostgroup", name, g % teams, mounts_per_group)
    for (team, name), data in exports.items():
        _write(root, datarepo.export_index(team, name), datarepo.HIERA_HEADER + datarepo.dump_json({"mounts": sorted(data["uses"], key=lambda u: (u["kind"], u["target"], u["mount_point"]))}))
    _write(root, datarepo.TOP, datarepo.render_top(groups))
    _write(root, datarepo.HOSTGROUP_INDEX, hostgroup_index.dump(hostgroup_index.build(groups)))
    return {"hosts": hosts, "hostgroups": hostgroups, "exports": len(exports), "mounts": hosts * mounts_per_host + hostgroups * mounts_per_group}


def build_bare_repo(directory: Path, **sizes) -> tuple[Path, dict]:
    """A bare repo (``directory/data.git``, branch main) holding one commit of :func:`build`."""
    seed = directory / "seed"
    seed.mkdir(parents=True)
    counts = build(seed, **sizes)
    bare = directory / "data.git"

    def git(*args, cwd):
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)

    git("init", "--quiet", "-b", "main", cwd=seed)
    git("add", "-A", cwd=seed)
    git("-c", "user.name=seed", "-c", "user.email=seed@example.invalid", "commit", "--quiet", "-m", "seed: large data repo", cwd=seed)
    git("clone", "--quiet", "--bare", str(seed), str(bare), cwd=directory)
    return bare, counts
