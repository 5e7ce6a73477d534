"""The ganesha EXPORT block codec: what it writes, what it refuses, and that reading back gives
the same typed value (so a second run plans nothing)."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfskit.errors import BackendError, InvalidInput
from nfskit.ganesha_codec import NOOP_OPTIONS, parse_block, parse_config, render_block
from nfskit.model import SEC_FLAVORS, ClientRule, Export, rule_from_options
from nfskit.validation import check_host, check_path

pytestmark = [pytest.mark.unit]


def rule(host="10.0.0.1", options="rw"):
    return rule_from_options(host, options)


# ------------------------------------------------------------------------------------------ render


def test_render_default_rule_denies_others_and_requires_privileged_port():
    text = render_block(Export("/srv/data", (rule("10.0.0.0/24", "rw"),)), 1000)
    assert text.splitlines()[0] == "# managed by nfskit (salt); path /srv/data"
    body = [line.strip() for line in text.splitlines()]
    for expected in (
        "Export_Id = 1000;", 'Path = "/srv/data";', 'Pseudo = "/srv/data";', "FSAL { Name = VFS; }",
        "Access_Type = None;", "Squash = root_squash;", "Protocols = 3, 4;", "Clients = 10.0.0.0/24;",
        "Access_Type = RW;", "SecType = sys;", "PrivilegedPort = true;",
    ):
        assert expected in body
    assert body.count("CLIENT {") == 1
    assert "Anonymous_Uid" not in text


@pytest.mark.parametrize(
    "options, line",
    [
        ("ro", "Access_Type = RO;"),
        ("rw,all_squash,anonuid=4242,anongid=4243", "Squash = all_squash;"),
        ("rw,all_squash,anonuid=4242,anongid=4243", "Anonymous_Uid = 4242;"),
        ("rw,all_squash,anonuid=4242,anongid=4243", "Anonymous_Gid = 4243;"),
        ("rw,no_root_squash", "Squash = no_root_squash;"),
        ("rw,sec=krb5p:krb5:sys", "SecType = krb5p, krb5, sys;"),
        ("rw,sec=none", "SecType = none;"),
        ("rw,insecure", "PrivilegedPort = false;"),
        ("rw,no_acl", "Disable_ACL = true;"),
        ("rw,security_label", "Security_Label = true;"),
        ("rw,async,subtree_check,no_wdelay", "# nfskit-noop: async no_wdelay subtree_check (exports(5) options without a ganesha equivalent)"),
    ],
)
def test_render_maps_options(options, line):
    text = render_block(Export("/srv/x", (rule("h1", options),)), 7)
    assert line in [l.strip() for l in text.splitlines()]


def test_rules_become_ordered_client_blocks_with_bare_hosts():
    export = Export("/srv/x", (rule("10.0.0.5", "rw"), rule("10.0.0.0/24", "ro"), rule("@ops", "ro"), rule("*.example.com", "ro")))
    text = render_block(export, 9)
    clients = [l.strip() for l in text.splitlines() if l.strip().startswith("Clients")]
    assert clients == ["Clients = 10.0.0.5;", "Clients = 10.0.0.0/24;", "Clients = @ops;", "Clients = *.example.com;"]


def test_option_spelling_and_order_do_not_change_the_text():
    one = Export("/srv/x", (rule("h", "rw,sync,no_subtree_check,root_squash,sec=sys"),))
    two = Export("/srv/x", (rule("h", ["no_subtree_check", "rw"]),))
    assert render_block(one, 5) == render_block(two, 5)


@pytest.mark.parametrize(
    "word",
    ["crossmnt", "fsid=1", "fsid=root", "refer=/a@h", "replicas=/a@h", "nohide", "mountpoint", "mp=/srv", "pnfs", "insecure_locks", "nordirplus"],
)
def test_options_ganesha_cannot_honour_are_refused_by_name(word):
    with pytest.raises(InvalidInput) as info:
        render_block(Export("/srv/x", (rule("h", "rw," + word),)), 5)
    assert info.value.value in rule("h", "rw," + word).options  # the model's canonical spelling
    assert "NFS-Ganesha" in str(info.value)
    assert info.value.field == "clients[0].options"


def test_export_wide_flags_need_every_rule():
    export = Export("/srv/x", (rule("a", "rw,no_acl"), rule("b", "ro")))
    with pytest.raises(InvalidInput) as info:
        render_block(export, 5)
    assert info.value.field == "clients[1].options"
    assert "Disable_ACL" in str(info.value)


@pytest.mark.parametrize("bad", ['/srv/a"b', "/srv/a\nb", "/srv/a\\b", "/srv/a#b", "/srv/\x01", "relative"])
def test_unsafe_paths_are_refused(bad):
    with pytest.raises(InvalidInput) as info:
        render_block(Export(bad, (rule(),)), 5)
    assert info.value.field == "path"
    with pytest.raises(InvalidInput) as info:
        render_block(Export("/srv/ok", (rule(),), pseudo=bad), 5)
    assert info.value.field == "pseudo"


@pytest.mark.parametrize("host", ["a b", "a;b", "a}b", 'a"b', "a,b", "a=b", "", "h\n"])
def test_unsafe_hosts_are_refused(host):
    with pytest.raises(InvalidInput) as info:
        render_block(Export("/srv/x", (ClientRule(host, "rw"),)), 5)
    assert info.value.field == "clients[0].host"


@pytest.mark.parametrize("export_id", [0, -1, 65536, "7", True, None])
def test_export_id_range(export_id):
    with pytest.raises(InvalidInput):
        render_block(Export("/srv/x", (rule(),)), export_id)


def test_paths_with_spaces_and_dollars_are_quoted_verbatim():
    text = render_block(Export("/srv/my data/$HOME;{x}'q", (rule(),)), 5)
    assert "Path = \"/srv/my data/$HOME;{x}'q\";" in text
    assert parse_block(text)[1].path == "/srv/my data/$HOME;{x}'q"


# ------------------------------------------------------------------------------------------ parse


def test_parse_hand_written_block_with_other_spellings():
    text = """
    # a hand-edited block: other case, synonyms, comments everywhere, unquoted path
    export {
        export_id = 1234 ;   # id
        path = /srv/x; pseudo = '/x';
        fsal { name = vfs; };
        access_type = none;
        protocols = nfs3, v4;
        client {
            clients = 10.0.0.1, 10.0.0.2;   # two hosts, one rule each
            access_type = rw; squash = rootsquash; sectype = sys, krb5;
            privilegedport = yes;
        }
        client { clients = @ng; access_type = ro; squash = all; anonymous_uid = -2; }
    };
    """
    export_id, export = parse_block(text)
    assert export_id == 1234
    assert export == Export(
        "/srv/x",
        (
            ClientRule("10.0.0.1", "rw", "root", ("sys", "krb5")),
            ClientRule("10.0.0.2", "rw", "root", ("sys", "krb5")),
            # no PrivilegedPort and no SecType: ganesha's defaults (false, none+sys)
            ClientRule("@ng", "ro", "all", ("none", "sys"), anonuid=-2, options=frozenset({"insecure"})),
        ),
        pseudo="/x",
    )


@pytest.mark.parametrize(
    "text, problem",
    [
        ('EXPORT { Export_Id = 1; Path = "/x', "unterminated"),
        ("EXPORT { Export_Id = 1; Path = /x; FSAL { Name = CEPH; } }", "VFS"),
        ("EXPORT { Export_Id = 1; Path = /x; FSAL { Name = VFS; } Access_Type = RW; }", "Access_Type must be None"),
        ("EXPORT { Export_Id = 1; Path = /x; FSAL { Name = VFS; } Tag = x; }", "Tag"),
        ("EXPORT { Export_Id = 1; Path = /x; FSAL { Name = VFS; } CLIENT { Clients = a; Access_Type = MDONLY; } }", "MDONLY"),
        ("EXPORT { Export_Id = 1; Path = /x; FSAL { Name = VFS; } CLIENT { Clients = a; Access_Type = RW; Squash = rootid; } }", "rootid"),
        ("EXPORT { Export_Id = 1; Path = /x; FSAL { Name = VFS; } CLIENT { Clients = \"a\"; Access_Type = RW; } }", "bare host"),
        ("EXPORT { Export_Id = 70000; Path = /x; FSAL { Name = VFS; } }", "out of range"),
        ("EXPORT { Export_Id = 1; Export_Id = 2; Path = /x; FSAL { Name = VFS; } }", "twice"),
        ('%include "/etc/other.conf"', "%include"),
        ("EXPORT { Export_Id = 1; Path = /x; FSAL { Name = VFS; } }\nEXPORT { Export_Id = 2; Path = /y; FSAL { Name = VFS; } }", "exactly one"),
        ("EXPORT { Export_Id = 1 Path = /x; }", "after a value"),
        ("EXPORT {\n Export_Id = 1;\n Path = /x;\n FSAL { Name = VFS; }\n CLIENT { Clients = a; Access_Type = RW;\n # nfskit-noop: crossmnt\n }\n}", "not a no-op"),
    ],
)
def test_parse_refuses_what_the_model_cannot_represent(text, problem):
    with pytest.raises(BackendError) as info:
        parse_block(text)
    assert problem in str(info.value)


def test_parse_errors_carry_line_numbers():
    with pytest.raises(BackendError) as info:
        parse_block("EXPORT {\n  Export_Id = 1;\n  Path = /x;\n  FSAL { Name = VFS; }\n  Bogus = 1;\n}\n")
    assert "line 5" in str(info.value)


def test_parse_config_keeps_comments_and_nesting():
    blocks = parse_config("# top\nA { b = 1, 2; C { d = 'x y'; }; }  B { }")
    assert [b.name for b in blocks] == ["A", "B"]
    assert blocks[0].comments[0].text == "top"
    assert [v.text for v in blocks[0].params()["b"].values] == ["1", "2"]
    assert blocks[0].blocks("c")[0].params()["d"].values[0].text == "x y"


# ------------------------------------------------------------------------------------------ round trip

_name = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
_hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.tuples(st.ip_addresses(v=4), st.integers(8, 32)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.lists(_name, min_size=1, max_size=3).map(".".join),
    _name.map(lambda n: f"*.{n}.example"),
    _name.map(lambda n: f"{n}?"),
    _name.map(lambda n: "@" + n),
    st.just("*"),
).filter(lambda h: _valid(check_host, h))
_ids = st.one_of(st.none(), st.integers(-(2**31), 2**32 - 1))
_path_part = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters='"\\#/'), min_size=1, max_size=12
).filter(lambda p: p not in (".", ".."))
_paths = st.lists(_path_part, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)).filter(lambda p: _valid(check_path, p))


def _valid(check, value):
    try:
        check(value, "x")
    except InvalidInput:
        return False
    return True


@st.composite
def exports(draw):
    path = draw(_paths)
    pseudo = draw(st.one_of(st.none(), _paths.filter(lambda p: p != path)))
    hosts = draw(st.lists(_hosts, min_size=0, max_size=5, unique=True))
    wide = draw(st.sets(st.sampled_from(["no_acl", "security_label"])))
    rules = []
    for host in hosts:
        options = draw(st.sets(st.sampled_from(sorted(NOOP_OPTIONS | {"insecure"}))))
        rules.append(
            ClientRule(
                host=host,
                access=draw(st.sampled_from(["rw", "ro"])),
                squash=draw(st.sampled_from(["root", "all", "none"])),
                sec=tuple(draw(st.lists(st.sampled_from(SEC_FLAVORS), min_size=1, max_size=5, unique=True))),
                anonuid=draw(_ids),
                anongid=draw(_ids),
                options=frozenset(options | wide),
            )
        )
    return Export(path, tuple(rules), pseudo), draw(st.integers(1, 65535))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(exports())
def test_round_trip(case):
    export, export_id = case
    text = render_block(export, export_id)
    assert parse_block(text) == (export_id, export)
    # the general parser (not the canonical fast path) agrees, whatever the layout
    assert parse_block(text.replace("\n", "\n\n").replace(" = ", "=")) == (export_id, export)
    assert parse_block(text.replace("Access_Type", "ACCESS_TYPE") + "# trailing comment\n") == (export_id, export)
