"""Teams, roles and limits from the master config."""
import pytest

from nfskit.errors import InvalidInput, NotFound, PermissionDenied
from nfskit.policy import client_allowed, owned, policy_from_config
from nfskit.request import parse_export_request, parse_mount_request

pytestmark = [pytest.mark.unit]

CONFIG = {
    "servers": {
        "nfs1.example.com": {"backend": "kernel", "capacity_gb": 1000, "root": "/srv/nfs"},
        "gan1.example.com": {"backend": "ganesha"},
    },
    "hostgroups": {"web-prod": "G@role:web and G@env:prod", "db": "G@role:db"},
    "teams": {
        "team-a": {
            "members": ["alice", "carol"],
            "quota_gb": 500,
            "backends": ["kernel"],
            "servers": ["nfs1.example.com"],
            "client_networks": ["10.1.0.0/16", "*.team-a.example.com", "@team-a", "2001:db8:a::/48"],
            "hosts": ["*.team-a.example.com"],
            "hostgroups": ["web-prod"],
        },
        "team-b": {"members": ["bob", "carol"], "servers": ["nfs1.example.com"], "client_networks": ["10.2.0.0/16"]},
        "storage": {"members": ["root"], "admin": True},
    },
}
EXPORT = {"name": "cache", "backend": "kernel", "server": "nfs1.example.com", "size_gb": 100, "clients": [{"hosts": "10.1.2.0/24", "access": "rw"}]}


@pytest.fixture
def policy():
    return policy_from_config(CONFIG)


def check(policy, user, **fields):
    team = policy.team_for(user, fields.pop("team", None))
    request = parse_export_request(dict(EXPORT, **fields))
    return policy.check_export(request, team, policy.is_admin(user))


def test_a_member_of_one_team_acts_for_it(policy):
    assert policy.team_for("alice").name == "team-a"


def test_a_member_of_several_teams_must_name_one(policy):
    with pytest.raises(InvalidInput) as caught:
        policy.team_for("carol")
    assert caught.value.field == "team" and "team-a, team-b" in caught.value.problem
    assert policy.team_for("carol", "team-b").name == "team-b"


def test_a_user_cannot_act_for_a_team_they_are_not_in(policy):
    with pytest.raises(InvalidInput) as caught:
        policy.team_for("alice", "team-b")
    assert caught.value.field == "team" and "not a team you are a member of" in caught.value.problem


def test_an_admin_may_act_for_any_team(policy):
    assert policy.team_for("root", "team-b").name == "team-b"


@pytest.mark.parametrize("user", ["mallory", "", None, "Alice"])
def test_strangers_are_refused(policy, user):
    with pytest.raises(PermissionDenied):
        policy.team_for(user)


def test_allowed_export_passes_and_gets_the_team_path(policy):
    server = check(policy, "alice")
    request = parse_export_request(EXPORT)
    assert policy.export_path(request, policy.teams["team-a"], server) == "/srv/nfs/team-a/cache"


@pytest.mark.parametrize(
    "fields, field, problem",
    [
        ({"backend": "ganesha", "server": "gan1.example.com"}, "backend", "is not a backend team team-a may use; allowed: kernel"),
        ({"server": "other.example.com"}, "server", "is not a server team team-a may use; allowed: nfs1.example.com"),
        ({"path": "/srv/nfs/team-b/cache"}, "path", "is outside /srv/nfs/team-a/"),
        ({"path": "/etc"}, "path", "is outside /srv/nfs/team-a/"),
        ({"clients": [{"hosts": "10.3.0.0/24"}]}, "clients[0].hosts", "is not in the client networks of team team-a"),
        ({"clients": [{"hosts": "10.0.0.0/8"}]}, "clients[0].hosts", "is not in the client networks"),
        ({"clients": [{"hosts": "*.example.com"}]}, "clients[0].hosts", "is not in the client networks"),
        ({"clients": [{"hosts": "@team-b"}]}, "clients[0].hosts", "is not in the client networks"),
        ({"clients": [{"hosts": ["10.1.0.1", "10.9.0.1"]}]}, "clients[0].hosts[1]", "is not in the client networks"),
        ({"clients": [{"hosts": "10.1.0.0/24", "squash": "none"}]}, "clients[0].hosts", "no_root_squash); only an admin team may request it"),
        ({"clients": [{"hosts": "10.1.0.0/24", "options": ["insecure"]}]}, "clients[0].hosts", "(insecure); only an admin team may request it"),
        ({"clients": [{"hosts": "*", "access": "rw"}]}, "clients[0].hosts", "gives every host write access; only an admin team may request it"),
        ({"clients": [{"hosts": "*", "access": "ro"}]}, "clients[0].hosts", "is not in the client networks"),
    ],
)
def test_policy_refusals_name_the_field(policy, fields, field, problem):
    with pytest.raises(InvalidInput) as caught:
        check(policy, "alice", **fields)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_admin_may_use_unsafe_options_any_server_and_any_path(policy):
    check(policy, "root", team="team-b", backend="ganesha", server="gan1.example.com", path="/export/x",
          clients=[{"hosts": "*", "access": "rw", "squash": "none", "options": ["insecure"]}])


def test_backend_must_match_the_server(policy):
    with pytest.raises(InvalidInput) as caught:
        check(policy, "root", team="team-a", backend="ganesha")
    assert caught.value.field == "backend" and "runs kernel" in caught.value.problem


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("10.1.2.3", True),
        ("10.1.0.0/16", True),
        ("10.1.0.0/15", False),
        ("10.1.0.0/255.255.255.0", True),
        ("2001:db8:a:1::/64", True),
        ("2001:db8:b::/64", False),
        ("web1.team-a.example.com", True),
        ("web?.team-a.example.com", True),
        ("*.team-a.example.com", True),
        ("*.example.com", False),
        ("*", False),
        ("web1.team-a.example.com.evil.org", False),
        ("@team-a", True),
        ("@team-a-admins", False),
    ],
)
def test_client_networks(host, allowed):
    assert client_allowed(host, CONFIG["teams"]["team-a"]["client_networks"]) is allowed


def test_quota_and_capacity_messages_say_what_is_left(policy):
    team, server = policy.teams["team-a"], policy.servers["nfs1.example.com"]
    policy.check_quota(team, 400, 100)
    with pytest.raises(InvalidInput) as caught:
        policy.check_quota(team, 450, 100)
    assert caught.value.field == "size_gb" and "450 of 500 GB in use, 50 GB left" in caught.value.problem
    policy.check_capacity(server, 900, 100)
    with pytest.raises(InvalidInput) as caught:
        policy.check_capacity(server, 950, 100)
    assert "50 of 1000 GB free" in caught.value.problem
    policy.check_quota(policy.teams["team-b"], 10**6, 100)  # no quota configured: no limit


@pytest.mark.parametrize(
    "fields, field, problem",
    [
        ({"host": "ci01.team-b.example.com"}, "host", "is not a host team team-a may mount on"),
        ({"host": ..., "hostgroup": "db"}, "hostgroup", "is not a hostgroup team team-a may use; allowed: web-prod"),
        ({"host": ..., "hostgroup": "nope"}, "hostgroup", "is not a hostgroup team team-a may use"),
        ({"mount_point": "/etc/cron.d"}, "mount_point", "is not below an allowed mount root"),
        ({"mount_point": "/mnt"}, "mount_point", "is not below an allowed mount root"),
        ({"mount_point": "/mntx/a"}, "mount_point", "is not below an allowed mount root"),
    ],
)
def test_mount_policy(policy, fields, field, problem):
    data = {"export": "cache", "host": "ci01.team-a.example.com", "mount_point": "/mnt/cache"}
    for key, value in fields.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    with pytest.raises(InvalidInput) as caught:
        policy.check_mount(parse_mount_request(data), policy.teams["team-a"], admin=False)
    assert caught.value.field == field and problem in caught.value.problem


def test_hostgroup_mount_returns_its_compound_target(policy):
    request = parse_mount_request({"export": "cache", "hostgroup": "web-prod", "mount_point": "/srv/cache"})
    assert policy.check_mount(request, policy.teams["team-a"], admin=False) == "G@role:web and G@env:prod"


def test_another_teams_record_is_answered_as_missing(policy):
    record = {"team": "team-b", "name": "cache"}
    with pytest.raises(NotFound) as theirs:
        owned(record, policy.teams["team-a"], "export: 'cache'")
    with pytest.raises(NotFound) as missing:
        owned(None, policy.teams["team-a"], "export: 'cache'")
    assert str(theirs.value) == str(missing.value) == "export: 'cache' does not exist"
    assert owned(record, policy.teams["team-b"], "x") is record


@pytest.mark.parametrize(
    "config, field",
    [
        ({"teams": {"Team A": {}}}, "nfs_selfservice.teams"),
        ({"teams": {"a": {"quota": 5}}}, "nfs_selfservice.teams.a.quota"),
        ({"teams": {"a": {"quota_gb": "5"}}}, "nfs_selfservice.teams.a.quota_gb"),
        ({"teams": {"a": {"admin": "yes"}}}, "nfs_selfservice.teams.a.admin"),
        ({"teams": {"a": {"hostgroups": ["nope"]}}}, "nfs_selfservice.teams.a.hostgroups"),
        ({"teams": {"a": {"backends": ["nfs"]}}}, "nfs_selfservice.teams.a.backends"),
        ({"teams": {"a": {"members": "alice"}}}, "nfs_selfservice.teams.a.members"),
        ({"servers": {"n": {"backend": "efs"}}}, "nfs_selfservice.servers.n.backend"),
        ({"servers": {"n": {"root": "/srv/../etc"}}}, "nfs_selfservice.servers.n.root"),
        ({"hostgroups": {"g": "G@x:{{ 1 }}"}}, "nfs_selfservice.hostgroups.g"),
        ({"hostgroups": {"g": "G@x:'y'"}}, "nfs_selfservice.hostgroups.g"),
        ([], "nfs_selfservice"),
    ],
)
def test_config_errors_name_the_setting(config, field):
    with pytest.raises(InvalidInput) as caught:
        policy_from_config(config)
    assert caught.value.field == field
