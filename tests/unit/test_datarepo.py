"""Layout and content of the storage data repo (no git here: the Tree edits a plain directory)."""
import pytest
import yaml

from nfskit import datarepo
from nfskit.datarepo import Tree
from nfskit.request import parse_export_request
from nfskit.spec import exports_from_managed

pytestmark = [pytest.mark.unit]

# Parameters of treydock/puppet-nfs manifests/mount.pp: anything else fails the Puppet run.
TREYDOCK_MOUNT_PARAMS = {"device", "ensure", "atboot", "path", "options", "manage_directory", "owner", "group", "mode"}
HOSTGROUPS = {"web-prod": "G@role:web and G@env:prod"}


def record(name="cache", team="team-a", path=None, size=100):
    return {"name": name, "team": team, "backend": "kernel", "server": "nfs1.example.com",
            "path": path or f"/srv/nfs/{team}/{name}", "size_gb": size, "request_id": "f" * 32, "requested_by": "alice"}


def rules(*clients):
    return parse_export_request({"name": "x", "backend": "kernel", "server": "s", "size_gb": 1, "clients": list(clients)}).rules


def mount_entry(export="team-a/cache"):
    return {"export": export, "team": "team-a", "fstype": "nfs", "device": "nfs1.example.com:/srv/nfs/team-a/cache", "options": ["hard"], "request_id": "e" * 32}


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_an_export_is_one_pillar_file_plus_its_server_and_hiera(tmp_path):
    tree = Tree(tmp_path)
    export_rules = rules({"hosts": "10.1.0.0/24", "access": "rw"}, {"hosts": "@backup", "squash": "all", "anonuid": 4242})
    datarepo.put_export(tree, record(), export_rules, "kernel")
    assert files(tmp_path) == []  # nothing on disk until write()
    assert tree.write() == [
        "hiera/servers/nfs1.example.com.yaml", "pillar/nfs/exports/team-a/cache.sls", "pillar/nfs/hostgroups.json",
        "pillar/nfs/servers/nfs1_example_com.sls",
        "pillar/top.sls",  # the first export of a repo starts the top file (and the hostgroup index): servers are reached through it
    ]

    pillar = yaml.safe_load((tmp_path / "pillar/nfs/exports/team-a/cache.sls").read_text())
    # what nfs_server.managed reads back is the very same rules
    assert tuple(exports_from_managed(pillar["nfs"]["server"]["exports"])["/srv/nfs/team-a/cache"].rules) == export_rules
    assert pillar["nfs"]["selfservice"]["exports"]["team-a/cache"]["size_gb"] == 100

    server = yaml.safe_load((tmp_path / "pillar/nfs/servers/nfs1_example_com.sls").read_text())
    assert server["include"] == ["nfs.exports.team-a.cache"]
    assert server["nfs"]["server"] == {"backend": "kernel", "remove_unlisted": True}

    hiera = yaml.safe_load((tmp_path / "hiera/servers/nfs1.example.com.yaml").read_text())
    assert hiera == {
        "nfs::server": True,
        "nfs::exports": {"/srv/nfs/team-a/cache": [
            {"host": "10.1.0.0/24", "options": "rw,sync,no_subtree_check,root_squash", "order": 1},
            {"host": "@backup", "options": "ro,sync,no_subtree_check,all_squash,anonuid=4242", "order": 2},
        ]},
    }


def test_pillar_files_are_plain_yaml_for_salt_never_jinja(tmp_path):
    tree = Tree(tmp_path)
    datarepo.put_export(tree, record(), rules({"hosts": "10.1.0.0/24"}), "kernel")
    datarepo.put_mount(tree, "host", "web01.example.com", "/mnt/cache", mount_entry(), None, HOSTGROUPS)
    tree.write()
    for path in tmp_path.glob("pillar/nfs/**/*.sls"):
        assert path.read_text().startswith("#!yaml\n"), path


def test_strings_are_quoted_and_never_anchored(tmp_path):
    shared = {"a": 1}
    text = datarepo.dump({"x": shared, "y": shared, "host": "*alias", "group": "@x", "n": "yes", "num": "0755", "t": "a: b"})
    assert "&" not in text and "*id" not in text
    assert "'*alias'" in text and "'yes'" in text and "'0755'" in text
    assert yaml.safe_load(text) == {"x": {"a": 1}, "y": {"a": 1}, "host": "*alias", "group": "@x", "n": "yes", "num": "0755", "t": "a: b"}


def test_servers_include_every_export_and_lose_the_file_with_the_last(tmp_path):
    tree = Tree(tmp_path)
    datarepo.put_export(tree, record("one"), rules({"hosts": "10.1.0.1"}), "kernel")
    datarepo.put_export(tree, record("two", team="team-b"), rules({"hosts": "10.2.0.1"}), "kernel")
    tree.write()
    tree = Tree(tmp_path)
    assert datarepo.server_allocations(tree, "nfs1.example.com") == {
        "team-a/one": {"path": "/srv/nfs/team-a/one", "size_gb": 100},
        "team-b/two": {"path": "/srv/nfs/team-b/two", "size_gb": 100},
    }
    datarepo.remove_export(tree, record("one"), "kernel")
    tree.write()
    server = yaml.safe_load((tmp_path / "pillar/nfs/servers/nfs1_example_com.sls").read_text())
    assert server["include"] == ["nfs.exports.team-b.two"]
    tree = Tree(tmp_path)
    datarepo.remove_export(tree, record("two", team="team-b"), "kernel")
    tree.write()
    assert files(tmp_path) == ["pillar/nfs/hostgroups.json", "pillar/top.sls"]  # files and the directories they leave empty; the top file stays


def test_ganesha_and_efs_exports_have_no_puppet_server_data(tmp_path):
    tree = Tree(tmp_path)
    datarepo.put_export(tree, dict(record("g"), server="gan1.example.com"), rules({"hosts": "10.1.0.1"}), "ganesha")
    efs = {"name": "shared", "team": "team-a", "backend": "efs", "path": "/", "size_gb": 5, "request_id": "a" * 32}
    datarepo.put_export(tree, efs, (), None)
    assert sorted(tree.write()) == ["pillar/nfs/exports/team-a/g.sls", "pillar/nfs/exports/team-a/shared.sls", "pillar/nfs/hostgroups.json", "pillar/nfs/servers/gan1_example_com.sls", "pillar/top.sls"]
    assert datarepo.export_record(Tree(tmp_path), "team-a", "shared") == efs


def test_a_host_holds_many_mounts_and_hiera_gets_only_puppet_parameters(tmp_path):
    tree = Tree(tmp_path)
    hiera = {"device": "nfs1.example.com:/srv/nfs/team-a/cache", "ensure": "mounted", "atboot": True, "options": "hard", "mode": "0755"}
    datarepo.put_mount(tree, "host", "web01.example.com", "/mnt/a", mount_entry(), hiera, HOSTGROUPS)
    datarepo.put_mount(tree, "host", "web01.example.com", "/mnt/b", mount_entry(), hiera, HOSTGROUPS)
    tree.write()
    tree = Tree(tmp_path)
    assert sorted(datarepo.mounts(tree, "host", "web01.example.com")) == ["/mnt/a", "/mnt/b"]
    node = yaml.safe_load((tmp_path / "hiera/nodes/web01.example.com.yaml").read_text())
    assert sorted(node["nfs::nfs_mounts"]) == ["/mnt/a", "/mnt/b"]
    for params in node["nfs::nfs_mounts"].values():
        assert set(params) <= TREYDOCK_MOUNT_PARAMS
    assert datarepo.export_uses(tree, "team-a", "cache") == [
        {"kind": "host", "mount_point": "/mnt/a", "target": "web01.example.com"},
        {"kind": "host", "mount_point": "/mnt/b", "target": "web01.example.com"},
    ]
    datarepo.remove_mount(tree, "host", "web01.example.com", "/mnt/a", HOSTGROUPS)
    datarepo.remove_mount(tree, "host", "web01.example.com", "/mnt/b", HOSTGROUPS)
    tree.write()
    assert files(tmp_path) == ["pillar/nfs/hostgroups.json", "pillar/top.sls"]


def test_top_file_lists_hostgroups_with_mounts_only(tmp_path):
    tree = Tree(tmp_path)
    groups = dict(HOSTGROUPS, db="G@role:db")
    datarepo.put_mount(tree, "hostgroup", "web-prod", "/srv/cache", mount_entry(), None, groups)
    tree.write()
    top = (tmp_path / "pillar/top.sls").read_text()
    assert "'G@role:web and G@env:prod':\n    - match: compound\n    - ignore_missing: True\n    - nfs.hostgroups.web-prod" in top
    assert "G@role:db" not in top
    assert "nfs.hosts.{{ (opts.id | sha256)[:2] }}.{{ opts.id | replace('.', '_') }}" in top and "if '_' not in opts.id" in top
    tree = Tree(tmp_path)
    datarepo.remove_mount(tree, "hostgroup", "web-prod", "/srv/cache", groups)
    tree.write()
    assert "web-prod" not in (tmp_path / "pillar/top.sls").read_text()


def test_unchanged_content_is_not_reported_as_a_change(tmp_path):
    tree = Tree(tmp_path)
    datarepo.put_export(tree, record(), rules({"hosts": "10.1.0.1"}), "kernel")
    tree.write()
    again = Tree(tmp_path)
    datarepo.put_export(again, record(), rules({"hosts": "10.1.0.1"}), "kernel")
    assert again.write() == []


def test_pending_edits_are_visible_to_later_reads_of_the_same_change(tmp_path):
    tree = Tree(tmp_path)
    datarepo.put_export(tree, record("one"), rules({"hosts": "10.1.0.1"}), "kernel")
    datarepo.put_export(tree, record("two"), rules({"hosts": "10.1.0.2"}), "kernel")
    assert sorted(datarepo.server_allocations(tree, "nfs1.example.com")) == ["team-a/one", "team-a/two"]
    assert [r["name"] for r in datarepo.team_exports(tree, "team-a")] == ["one", "two"]


def test_a_hosts_pillar_is_what_nfs_client_managed_takes(tmp_path):
    from nfskit.mount_plan import specs_from_managed

    tree = Tree(tmp_path)
    entry = dict(mount_entry(), options=["hard", "vers=4.2"], owner="root", mode="0755")
    datarepo.put_mount(tree, "host", "web01.example.com", "/mnt/a", entry, None, HOSTGROUPS)
    datarepo.put_mount(tree, "host", "web01.example.com", "/mnt/pending", dict(mount_entry(), device=None), None, HOSTGROUPS)
    tree.write()
    pillar = yaml.safe_load((tmp_path / datarepo.target_pillar("host", "web01.example.com")).read_text())
    client = pillar["nfs"]["client"]["mounts"]
    assert list(client) == ["/mnt/a"]  # a mount without a device yet is only a record
    (spec,) = specs_from_managed(client)
    assert (spec.device, spec.fstype) == ("nfs1.example.com:/srv/nfs/team-a/cache", "nfs")
    assert pillar["nfs"]["selfservice"]["mounts"]["/mnt/a"]["export"] == "team-a/cache"
    back = datarepo.mounts(Tree(tmp_path), "host", "web01.example.com")
    assert back["/mnt/a"]["options"] == ["hard", "vers=4.2"] and back["/mnt/a"]["request_id"] == "e" * 32
    assert back["/mnt/pending"]["options"] == ["hard"] and "device" not in back["/mnt/pending"]


def test_host_files_are_sharded_the_way_the_top_file_finds_them(tmp_path):
    # sha256("web01.example.com") starts with the two hex digits of the directory
    import hashlib

    path = datarepo.target_pillar("host", "web01.example.com")
    assert path == f"pillar/nfs/hosts/{hashlib.sha256(b'web01.example.com').hexdigest()[:2]}/web01_example_com.sls"
    assert len({datarepo.host_shard(f"h{n}.example.com") for n in range(2000)}) == 256
