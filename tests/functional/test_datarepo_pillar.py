"""The data repo's pillar side as Salt compiles it (salt.pillar.Pillar over the repo's pillar/ dir,
which is what git_pillar does with a checkout): each minion gets its own data, fast."""
import os
import time

import pytest
import salt.pillar

from nfskit import datarepo
from tests.functional.conftest import REPO
from nfskit.datarepo import Tree
from nfskit.request import parse_export_request

pytestmark = [pytest.mark.functional]

GROUPS = {"web-prod": "G@role:web and G@env:prod"}


@pytest.fixture(scope="module")
def master_opts(salt_factories):
    return salt_factories.salt_master_daemon("nfs-pillar-master").config.copy()


def compile_pillar(master_opts, root, minion_id, grains=None):
    opts = dict(master_opts, pillar_roots={"base": [str(root / "pillar")]}, ext_pillar=[], id=minion_id)
    pillar = salt.pillar.Pillar(opts, dict(grains or {}, id=minion_id), minion_id, "base")
    started = time.perf_counter()
    data = pillar.compile_pillar()
    return data, time.perf_counter() - started


@pytest.fixture
def repo(tmp_path):
    tree = Tree(tmp_path)
    record = {"name": "cache", "team": "team-a", "backend": "kernel", "server": "nfs1.example.com", "path": "/srv/nfs/team-a/cache", "size_gb": 10, "request_id": "a" * 32}
    rules = parse_export_request({"name": "x", "backend": "kernel", "server": "s", "size_gb": 1, "clients": [{"hosts": "10.1.0.0/24", "access": "rw"}]}).rules
    datarepo.put_export(tree, record, rules, "kernel")
    mount = {"export": "team-a/cache", "team": "team-a", "fstype": "nfs", "device": "nfs1.example.com:/srv/nfs/team-a/cache", "options": ["hard"], "request_id": "b" * 32}
    datarepo.put_mount(tree, "host", "web01.example.com", "/mnt/cache", mount, None, GROUPS)
    datarepo.put_mount(tree, "hostgroup", "web-prod", "/srv/shared", mount, None, GROUPS)
    tree.write()
    return tmp_path


def test_a_host_gets_its_mounts_and_nobody_elses(master_opts, repo):
    data, _ = compile_pillar(master_opts, repo, "web01.example.com")
    assert data["nfs"]["client"]["mounts"] == {"/mnt/cache": {"device": "nfs1.example.com:/srv/nfs/team-a/cache", "fstype": "nfs", "opts": ["hard"]}}
    assert "_errors" not in data
    other, _ = compile_pillar(master_opts, repo, "web02.example.com")
    assert "nfs" not in other and "_errors" not in other


def test_an_underscore_id_cannot_read_the_dotted_hosts_file(master_opts, repo):
    data, _ = compile_pillar(master_opts, repo, "web01_example_com")
    assert "nfs" not in data


def test_a_server_gets_its_exports(master_opts, repo):
    data, _ = compile_pillar(master_opts, repo, "nfs1.example.com")
    assert list(data["nfs"]["server"]["exports"]) == ["/srv/nfs/team-a/cache"]
    assert data["nfs"]["server"]["backend"] == "kernel"


def test_a_hostgroup_member_gets_the_groups_mounts(master_opts, repo):
    data, _ = compile_pillar(master_opts, repo, "web07.example.com", {"role": "web", "env": "prod"})
    assert list(data["nfs"]["client"]["mounts"]) == ["/srv/shared"]
    both, _ = compile_pillar(master_opts, repo, "web01.example.com", {"role": "web", "env": "prod"})
    assert sorted(both["nfs"]["client"]["mounts"]) == ["/mnt/cache", "/srv/shared"]


@pytest.mark.skipif(not os.environ.get("NFSKIT_SCALE"), reason="builds a 24,000-file repo (~1-2 min); set NFSKIT_SCALE=1")
def test_one_minions_pillar_renders_fast_in_a_fleet_sized_repo(master_opts, tmp_path):
    """10,000 hosts, 1,000 hostgroups, 100,000 mounts: the nfs_selfservice ext_pillar, from a bare repo
    through git_pillar's machinery, renders one minion in < 100 ms (or, when load pushes Salt's own
    floor past that, costs little CPU beyond that floor) and gives what git_pillar gives.

    The git_pillar path (the top file over the checkout) is timed once for the record: ~3 s here in
    Salt 3008 (Pillar() lists all 24,000 files, compile_pillar matches 1,000 compound targets).
    """
    from tests.support.datarepo_scale import build_bare_repo, host_name

    bare, counts = build_bare_repo(tmp_path)
    assert counts["mounts"] == 100_000
    opts = dict(master_opts, pillar_roots={"base": []}, cachedir=str(tmp_path / "cache"), __role="master",
                pillar_dirs=[str(REPO / "_pillar")], ext_pillar=[{"nfs_selfservice": {"repo": f"file://{bare}", "branch": "main"}}])

    def render(minion_id, grains, base=opts, cpu=None):
        started, cpu_started = time.perf_counter(), time.process_time()
        pillar = salt.pillar.Pillar(dict(base, id=minion_id), dict(grains, id=minion_id), minion_id, "base")
        data = pillar.compile_pillar()
        if cpu is not None:  # this process only: once checked out, a render starts no git process
            cpu.append(time.process_time() - cpu_started)
        return data, time.perf_counter() - started

    render(host_name(1), {})  # the first render clones and checks out the repo
    timings, floor, cpu, floor_cpu = [], [], [], []
    for n in range(1, 40, 4):
        data, elapsed = render(host_name(n), {"role": f"r{n:04d}", "env": "prod"}, cpu=cpu)
        assert "_errors" not in data, data["_errors"]
        assert len(data["nfs"]["client"]["mounts"]) == 9 + 10  # its own and its hostgroup's
        timings.append(elapsed)
        # Salt's floor right after, under the same load: the same Pillar with nothing configured
        floor.append(render(host_name(n), {"role": f"r{n:04d}", "env": "prod"}, dict(opts, ext_pillar=[]), cpu=floor_cpu)[1])
    for values in (timings, floor, cpu, floor_cpu):
        values.sort()
    cpu_share = cpu[len(cpu) // 2] - floor_cpu[len(floor_cpu) // 2]
    grains = {"role": "r0005", "env": "prod"}
    expected, git_pillar_s = compile_pillar(master_opts, tmp_path / "seed", host_name(5), grains)
    assert render(host_name(5), grains)[0] == expected
    server, _ = render("nfs3.example.com", {})
    assert len(server["nfs"]["server"]["exports"]) == 100
    p50, floor_p50 = timings[len(timings) // 2], floor[len(floor) // 2]
    print(f"ext_pillar render p50 {p50 * 1000:.0f} ms, max {timings[-1] * 1000:.0f} ms; Salt's floor (empty Pillar) p50 "
          f"{floor_p50 * 1000:.0f} ms; CPU p50 {cpu[len(cpu) // 2] * 1000:.0f} ms against the floor's {floor_cpu[len(cpu) // 2] * 1000:.0f} ms; "
          f"git_pillar path (compile_pillar over the checkout) {git_pillar_s:.2f} s")
    assert git_pillar_s > 5 * p50
    # The target is 100 ms for the whole render. Most of it is Salt's own cost of any Pillar, which a
    # loaded machine (other jobs on the 2 cores) pushes past 100 ms of wall time by itself; then the
    # ext_pillar's share of the CPU time (wall time is too noisy there to compare) must stay small.
    assert p50 < 0.1 or cpu_share < max(0.02, 0.3 * floor_cpu[len(floor_cpu) // 2]), (p50, floor_p50, cpu, floor_cpu)
