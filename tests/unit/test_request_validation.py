"""Hostile input to the self-service requests: every refusal names the field and the problem.

The values end up in YAML that Salt renders (pillar) and Puppet interpolates (hiera), in fstab and
in exports(5) lines, so anything that means something to one of them is refused at the edge.
"""
import pytest

from nfskit.errors import InvalidInput
from nfskit.request import (
    parse_delete_request,
    parse_export_request,
    parse_mount_request,
    parse_release_request,
)

pytestmark = [pytest.mark.unit]

EXPORT = {"name": "build-cache", "backend": "kernel", "server": "nfs1.example.com", "size_gb": 100, "clients": [{"hosts": "10.1.0.0/24", "access": "rw"}]}
MOUNT = {"export": "build-cache", "host": "ci01.team-a.example.com", "mount_point": "/mnt/cache"}
RELEASE = {"host": "ci01.team-a.example.com", "mount_point": "/mnt/cache"}
DELETE = {"name": "build-cache"}
PARSERS = {"export": (parse_export_request, EXPORT), "mount": (parse_mount_request, MOUNT), "release": (parse_release_request, RELEASE), "delete": (parse_delete_request, DELETE)}

JINJA = ["{{ salt['cmd.run']('id') }}", "{% include 'x' %}", "{# c #}"]
YAML_TRICKS = ["!!python/object/apply:os.system ['id']", "&anchor x", "*alias", "a: b", "- item", "? key", "| block", "> fold", "[1, 2]", "{a: 1}", "%TAG ! x", "@x"]
HIERA = ["%{lookup('secret')}", "%{::fqdn}"]


def case(label, kind, change, field, problem):
    parser, base = PARSERS[kind]
    fields = dict(base)
    for key, value in change.items():
        if value is ...:
            fields.pop(key)
        else:
            fields[key] = value
    return pytest.param(parser, fields, field, problem, id=label)


CORPUS = [
    # shape of the request
    case("unknown-field", "export", {"owner_team": "team-b"}, "owner_team", "is not a known field"),
    case("identity-field-refused", "export", {"user": "root"}, "user", "is not a known field"),
    case("requester-field-refused", "mount", {"requested_by": "root"}, "requested_by", "is not a known field"),
    case("missing-name", "export", {"name": ...}, "name", "is required"),
    case("missing-size", "export", {"size_gb": ...}, "size_gb", "is required"),
    case("missing-mount-point", "mount", {"mount_point": ...}, "mount_point", "is required"),
    case("missing-target", "mount", {"host": ...}, "host", "is required (or hostgroup)"),
    case("host-and-hostgroup", "mount", {"hostgroup": "web-prod"}, "hostgroup", "cannot be combined with host"),
    # names (slugs)
    case("name-upper", "export", {"name": "Build"}, "name", "is not a valid export name"),
    case("name-space", "export", {"name": "build cache"}, "name", "is not a valid export name"),
    case("name-dots", "export", {"name": "../etc"}, "name", "is not a valid export name"),
    case("name-slash", "export", {"name": "a/b"}, "name", "is not a valid export name"),
    case("name-trailing-dash", "export", {"name": "cache-"}, "name", "not at either end"),
    case("name-newline", "export", {"name": "cache\n"}, "name", "is not a valid export name"),
    case("name-unicode-digit", "export", {"name": "cache\u0663"}, "name", "is not a valid export name"),
    case("name-homoglyph", "export", {"name": "c\u0430che"}, "name", "is not a valid export name"),
    case("name-too-long", "export", {"name": "a" * 64}, "name", "is longer than 63"),
    case("name-int", "export", {"name": 7}, "name", "is not a string"),
    case("name-list", "delete", {"name": ["a"]}, "name", "is not a string"),
    case("name-dict", "delete", {"name": {"a": 1}}, "name", "is not a string"),
    case("name-none-type", "delete", {"name": None}, "name", "is required"),
    case("team-bad", "export", {"team": "Team A"}, "team", "is not a valid team name"),
    case("hostgroup-bad", "release", {"host": ..., "hostgroup": "web_prod"}, "hostgroup", "is not a valid hostgroup name"),
    # backend / server
    case("backend-unknown", "export", {"backend": "nfs"}, "backend", "must be one of kernel, ganesha, efs"),
    case("backend-list", "export", {"backend": ["kernel"]}, "backend", "must be one of"),
    case("server-missing", "export", {"server": ...}, "server", "is required with backend kernel"),
    case("server-with-efs", "export", {"backend": "efs"}, "server", "is not used with backend efs"),
    case("server-underscore", "export", {"server": "nfs_1"}, "server", "is not a valid minion id"),
    case("server-glob", "export", {"server": "nfs*"}, "server", "is not a valid minion id"),
    case("server-compound", "export", {"server": "G@role:nfs"}, "server", "is not a valid minion id"),
    case("server-too-long", "export", {"server": ("a" * 63 + ".") * 4 + "a"}, "server", "is longer than 253"),
    case("host-space", "mount", {"host": "ci01 ci02"}, "host", "is not a valid minion id"),
    case("host-empty-label", "mount", {"host": "ci01..example.com"}, "host", "is not a valid minion id"),
    case("host-leading-dot", "release", {"host": ".example.com"}, "host", "is not a valid minion id"),
    # sizes
    case("size-zero", "export", {"size_gb": 0}, "size_gb", "must be between 1 and"),
    case("size-negative", "export", {"size_gb": -5}, "size_gb", "must be between 1 and"),
    case("size-huge", "export", {"size_gb": 10**30}, "size_gb", "must be between 1 and"),
    case("size-string", "export", {"size_gb": "100"}, "size_gb", "must be a whole number"),
    case("size-float", "export", {"size_gb": 1.5}, "size_gb", "must be a whole number"),
    case("size-bool", "export", {"size_gb": True}, "size_gb", "must be a whole number"),
    # paths
    case("path-relative", "export", {"path": "srv/x"}, "path", "is not an absolute path"),
    case("path-dotdot", "export", {"path": "/srv/nfs/team-a/../../etc"}, "path", "contains a '.' or '..' component"),
    case("path-root", "export", {"path": "/"}, "path", "is the root directory"),
    case("path-trailing-slash", "export", {"path": "/srv/nfs/x/"}, "path", "has an empty component"),
    case("path-space", "export", {"path": "/srv/nfs/a b"}, "path", "contains ' '"),
    case("path-colon", "export", {"path": "/srv/nfs/a:b"}, "path", "contains ':'"),
    case("path-dash-component", "export", {"path": "/srv/nfs/-o"}, "path", "starting with '-'"),
    case("path-too-long", "export", {"path": "/" + "a" * 2000}, "path", "is longer than 1024"),
    case("path-nul", "export", {"path": "/srv/a\x00"}, "path", "contains a NUL byte"),
    case("mount-point-newline", "mount", {"mount_point": "/mnt/a\n/etc"}, "mount_point", "contains a newline"),
    case("mount-point-star", "mount", {"mount_point": "/mnt/*"}, "mount_point", "contains '*'"),
    case("mount-point-list", "release", {"mount_point": ["/mnt/a"]}, "mount_point", "is not a string"),
    # client rules: validated by the export model
    case("clients-empty", "export", {"clients": []}, "clients", "must be a non-empty list"),
    case("clients-string", "export", {"clients": "10.0.0.0/8(rw)"}, "clients", "must be a non-empty list"),
    case("clients-too-many", "export", {"clients": [{"hosts": f"10.1.0.{i}"} for i in range(65)]}, "clients", "has more than 64 rules"),
    case("rule-host-space", "export", {"clients": [{"hosts": "10.1.0.1 (rw)"}]}, "clients[0].hosts", "contains whitespace"),
    case("rule-host-paren", "export", {"clients": [{"hosts": "a(rw)"}]}, "clients[0].hosts", "contains '('"),
    case("rule-unknown-key", "export", {"clients": [{"hosts": "a", "mode": "x"}]}, "clients[0].mode", "is not a known rule field"),
    case("rule-bad-access", "export", {"clients": [{"hosts": "a", "access": "write"}]}, "clients[0].access", "must be rw or ro"),
    case("rule-bad-option", "export", {"clients": [{"hosts": "a", "options": ["rw", "crossmnt=1"]}]}, "clients[0].options[1]", "takes no value"),
    case("rule-option-injection", "export", {"clients": [{"hosts": "a", "options": ["rw) * (rw"]}]}, "clients[0].options[0]", "contains"),
    case("rule-second-host-bad", "export", {"clients": [{"hosts": "a"}, {"hosts": ["b", "c d"]}]}, "clients[1].hosts[1]", "contains whitespace"),
    # mount options
    case("options-unknown", "mount", {"options": ["hard", "exec_cmd=id"]}, "options[1]", "is not an NFS mount option"),
    case("options-suid-not-admin", "mount", {"options": ["suid"]}, "options[0]", "only an admin team may request it"),
    case("options-conflict", "mount", {"options": "rw,ro"}, "options[1]", "conflicts with 'rw'"),
    case("options-repeat", "mount", {"options": ["vers=3", "vers=4"]}, "options[1]", "repeats 'vers=3'"),
    case("options-value-space", "mount", {"options": ["sec=krb5 ro"]}, "options[0]", "has a value with characters"),
    case("options-value-comma", "mount", {"options": ["vers=4,suid"]}, "options[0]", "has a value with characters"),
    case("options-flag-value", "mount", {"options": ["hard=1"]}, "options[0]", "hard takes no value"),
    case("options-missing-value", "mount", {"options": ["vers"]}, "options[0]", "vers needs a value"),
    case("options-not-string", "mount", {"options": [4]}, "options[0]", "is not a string"),
    case("options-dict", "mount", {"options": {"hard": True}}, "options", "must be a list"),
    case("options-too-many", "mount", {"options": ["hard"] * 33}, "options", "has more than 32"),
    # owner / group / mode
    case("owner-space", "mount", {"owner": "root admin"}, "owner", "is not a valid user or group name"),
    case("owner-upper", "export", {"owner": "Root"}, "owner", "is not a valid user or group name"),
    case("owner-uid-range", "export", {"owner": 2**33}, "owner", "is out of range"),
    case("group-colon", "mount", {"group": "root:root"}, "group", "is not a valid user or group name"),
    case("mode-setuid", "mount", {"mode": "4755"}, "mode", "set-id bits are not allowed"),
    case("mode-not-octal", "mount", {"mode": "0789"}, "mode", "must be an octal mode"),
    case("mode-symbolic", "export", {"mode": "u+rwx"}, "mode", "must be an octal mode"),
    case("mode-bool", "export", {"mode": True}, "mode", "must be an octal mode"),
    # reason (free text for the commit message)
    case("reason-newline", "delete", {"reason": "done\nRequested-By: root"}, "reason", "non-printable character"),
    case("reason-too-long", "delete", {"reason": "x" * 501}, "reason", "is longer than 500"),
    case("reason-not-string", "delete", {"reason": ["x"]}, "reason", "must be a string"),
    case("reason-bidi", "delete", {"reason": "ok\u202egnp.exe"}, "reason", "non-printable character"),
]
CORPUS += [case(f"jinja-{i}-in-{field}", kind, {field: value}, field, "")
           for i, value in enumerate(JINJA)
           for kind, field in (("export", "name"), ("export", "path"), ("mount", "host"), ("mount", "mount_point"), ("mount", "owner"))]
CORPUS += [case(f"jinja-{i}-in-reason", "delete", {"reason": value}, "reason", "a template marker") for i, value in enumerate(JINJA[:2])]
CORPUS += [case(f"hiera-{i}-in-reason", "delete", {"reason": value}, "reason", "a template marker") for i, value in enumerate(HIERA)]
CORPUS += [case(f"yaml-{i}-in-{field}", kind, {field: value}, field, "")
           for i, value in enumerate(YAML_TRICKS + HIERA)
           for kind, field in (("export", "name"), ("export", "server"), ("export", "path"), ("mount", "mount_point"), ("mount", "group"))]
CORPUS += [case(f"yaml-{i}-in-rule-host", "export", {"clients": [{"hosts": value}]}, "clients[0].hosts", "")
           for i, value in enumerate(YAML_TRICKS + HIERA + JINJA) if value not in ("@x", "*alias")]  # both are valid exports(5) specs; the dump quotes them
CORPUS += [case(f"yaml-{i}-in-mount-option", "mount", {"options": [value]}, "options[0]", "") for i, value in enumerate(YAML_TRICKS + HIERA + JINJA)]


@pytest.mark.parametrize("parser, fields, field, problem", CORPUS)
def test_hostile_input_is_refused_naming_the_field(parser, fields, field, problem):
    with pytest.raises(InvalidInput) as caught:
        parser(fields)
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{field}: ")


def test_request_must_be_a_mapping():
    with pytest.raises(InvalidInput) as caught:
        parse_export_request([("name", "x")])
    assert caught.value.field == "request"


def test_non_string_field_name_is_refused():
    with pytest.raises(InvalidInput) as caught:
        parse_delete_request({"name": "x", 1: "y"})
    assert caught.value.field == "request" and "field names are strings" in caught.value.problem


def test_message_escapes_the_hostile_value():
    with pytest.raises(InvalidInput) as caught:
        parse_mount_request(dict(MOUNT, mount_point="/mnt/a\n/etc/shadow"))
    assert "\n" not in str(caught.value)
    assert "'/mnt/a\\n/etc/shadow'" in str(caught.value)


def test_good_export_request_is_typed_and_rules_come_from_the_model():
    request = parse_export_request(
        dict(EXPORT, clients=[{"hosts": ["10.1.0.0/24", "ci?.team-a.example.com"], "access": "rw"}, {"host": "@backup", "squash": "all"}], mode=770, owner="1000")
    )
    assert [r.describe() for r in request.rules] == [
        "10.1.0.0/24(rw,sync,no_subtree_check,root_squash)",
        "ci?.team-a.example.com(rw,sync,no_subtree_check,root_squash)",
        "@backup(ro,sync,no_subtree_check,all_squash)",
    ]
    assert request.rule_fields == ("clients[0].hosts[0]", "clients[0].hosts[1]", "clients[1].host")
    assert request.mode == "0770" and request.owner == "1000" and request.path is None


def test_salt_run_integer_mode_reads_as_octal_digits():
    # salt-run turns mode=0755 into the integer 755
    assert parse_mount_request(dict(MOUNT, mode=755)).mode == "0755"
    assert parse_mount_request(dict(MOUNT, mode="1777")).mode == "1777"


def test_mount_options_accept_a_string_or_a_list_and_admin_flags_for_admins():
    assert parse_mount_request(dict(MOUNT, options="hard,vers=4.2,_netdev")).options == ("hard", "vers=4.2", "_netdev")
    assert parse_mount_request(dict(MOUNT, options=["suid", "dev"]), admin=True).options == ("suid", "dev")


def test_efs_export_needs_no_server_or_clients():
    request = parse_export_request({"name": "shared", "backend": "efs", "size_gb": 50})
    assert request.server is None and request.rules == ()


def test_reason_is_kept_as_one_line():
    assert parse_delete_request(dict(DELETE, reason="  project ended: see TICKET-42 ")).reason == "project ended: see TICKET-42"
