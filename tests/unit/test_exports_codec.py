"""exports(5) codec: byte-exact round trips, nfs3-shaped listing, minimal edits, strict typed view."""
from pathlib import Path

import pytest

from nfskit import exports_codec as ec
from nfskit.errors import Conflict, InvalidInput
from nfskit.model import ClientRule, Export, rule_from_options

pytestmark = [pytest.mark.unit]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exports"
FIXTURE_FILES = sorted(p for p in FIXTURES.iterdir() if p.is_file())


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def test_fixtures_are_present():
    names = {p.name for p in FIXTURE_FILES}
    assert {"exports5-example", "office", "crlf", "no-trailing-newline", "debian-default"} <= names


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_renders_byte_for_byte(path):
    text = read(path)
    assert ec.parse(text).render() == text


EDGE_TEXTS = [
    "",
    "\n",
    "   \n\t\n",
    "# only a comment",
    "/a h(rw)",
    "/a h(rw)   \n",
    "/a\th(rw)\t# c \\\n",
    "/a h(rw) \\\n  h2(ro)\n\n/b -ro \\\n\n",
    '"/a b" h(rw)\n/c\\040d h\n',
    "/a h(rw)\r\n\r\n/b h\r\n",
    "/a h(rw\n/b (rw)\n/c\n",
    '/a "unterminated h(rw)\n/b h\n',
    "\\\n/a h\n",
    "/a h(rw) \x0b h2\n",
    "/a \xe9t\xe9(rw) # caf\xe9\n",
    "/a h(rw)\x00\n",
]


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_odd_texts_render_unchanged(text):
    assert ec.parse(text).render() == text


# -- list_exports --------------------------------------------------------------------------------
def test_exports5_example_listing():
    listing = ec.parse(read(FIXTURES / "exports5-example")).list_exports()
    assert listing["/"] == [
        {"hosts": "master", "options": ["rw"]},
        {"hosts": "trusty", "options": ["rw", "no_root_squash"]},
    ]
    # -defaults: bare hosts get the defaults, a client's own words win per group
    assert listing["/srv/www"] == [
        {"hosts": "server", "options": ["sync", "rw"]},
        {"hosts": "@trusted", "options": ["sync", "rw"]},
        {"hosts": "@external", "options": ["sync", "ro"]},
    ]
    assert listing["/foo"] == [
        {"hosts": "2001:db8:9:e54::/64", "options": ["rw"]},
        {"hosts": "192.0.2.0/24", "options": ["rw"]},
    ]
    assert listing["/build"] == [{"hosts": "buildhost[0-9].local.domain", "options": ["rw"]}]
    assert list(listing) == ["/", "/projects", "/usr", "/home/joe", "/pub", "/srv/www", "/foo", "/build"]


def test_office_listing_covers_quotes_escapes_continuations_and_repeats():
    listing = ec.parse(read(FIXTURES / "office")).list_exports()
    assert [c["hosts"] for c in listing["/srv/nfs4"]] == ["10.20.0.0/16", "fd00:20::/48"]
    assert listing["/srv/nfs4/home"] == [
        {"hosts": "10.20.0.0/255.255.0.0", "options": ["rw", "sync", "no_subtree_check"]},
        {"hosts": "@staff", "options": ["rw", "sync", "no_subtree_check", "root_squash"]},
        {"hosts": "10.30.0.0/16", "options": ["ro", "sync", "no_subtree_check"]},
    ]
    assert "/srv/nfs4/media library" in listing
    assert [c["hosts"] for c in listing["/srv/nfs4/scans inbox"]] == ["10.20.40.7", "10.20.40.8"]
    assert [c["hosts"] for c in listing["/srv/nfs4/build"]] == ["build[0-9][0-9].lab.example.com", "*.ci.example.com"]


def test_bare_hosts_without_defaults_get_no_options():
    listing = ec.parse("/srv/x server @trusted\n").list_exports()
    assert listing == {"/srv/x": [{"hosts": "server", "options": []}, {"hosts": "@trusted", "options": []}]}


def test_repeated_path_lists_are_not_aliased():
    listing = ec.parse("/a -rw h1 h2\n/a h3(ro)\n").list_exports()
    assert [c["hosts"] for c in listing["/a"]] == ["h1", "h2", "h3"]
    listing["/a"][0]["options"].append("mutated")
    assert listing["/a"][1]["options"] == ["rw"]


def test_only_the_first_token_after_the_path_is_defaults():
    listing = ec.parse("/a h1 -rw\n").list_exports()
    assert listing["/a"] == [{"hosts": "h1", "options": []}, {"hosts": "-rw", "options": []}]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/a h(rw) # h2(rw)\n", [{"hosts": "h", "options": ["rw"]}]),
        ("/a#b h(rw)\n", None),
        ("/a h(rw)\t \n", [{"hosts": "h", "options": ["rw"]}]),
        ("/a h(rw) \\\n\t  h2(ro)\n", [{"hosts": "h", "options": ["rw"]}, {"hosts": "h2", "options": ["ro"]}]),
        ('/a "h"(rw,"sync")\n', [{"hosts": "h", "options": ["rw", "sync"]}]),
        ("/a h()\n", [{"hosts": "h", "options": []}]),
        ("/a h(rw,)\n", [{"hosts": "h", "options": ["rw"]}]),
        ("/a 127.0.0.\\061(rw)\n", [{"hosts": "127.0.0.1", "options": ["rw"]}]),
    ],
)
def test_tokenizer_follows_exportfs(text, expected):
    listing = ec.parse(text).list_exports()
    if expected is None:
        assert list(listing) == ["/a#b"]
    else:
        assert listing == {"/a": expected}


def test_space_before_parenthesis_and_path_without_clients_export_to_world():
    listing = ec.parse("/a h (rw)\n/b\n/c -rw\n").list_exports()
    assert listing["/a"] == [{"hosts": "h", "options": []}, {"hosts": "", "options": ["rw"]}]
    assert listing["/b"] == [{"hosts": "", "options": []}]
    assert listing["/c"] == [{"hosts": "", "options": ["rw"]}]


def test_quoted_and_octal_paths():
    listing = ec.parse('"/srv/my dir" h(rw)\n/srv/my\\040dir h2(ro)\n/srv/"a b"/c h3\n').list_exports()
    assert [c["hosts"] for c in listing["/srv/my dir"]] == ["h", "h2"]
    assert "/srv/a b/c" in listing


def test_quoted_path_may_span_a_continuation():
    listing = ec.parse('"/srv/a\\\n   b" h(rw)\n').list_exports()
    assert list(listing) == ["/srv/a b"]


def test_crlf_lines_parse_but_a_crlf_blank_line_is_an_issue():
    doc = ec.parse(read(FIXTURES / "crlf"))
    assert doc.issues == []
    assert [c["hosts"] for c in doc.list_exports()["/srv/win2"]] == ["10.1.0.0/16", "10.2.0.0/16"]
    doc = ec.parse("/a h(rw)\r\n\r\n/b h(rw)\r\n")
    assert len(doc.issues) == 1 and "stops reading" in doc.issues[0].problem


def test_no_trailing_newline_and_inline_comment():
    doc = ec.parse(read(FIXTURES / "no-trailing-newline"))
    assert doc.list_exports()["/srv/legacy2"] == [{"hosts": "192.168.1.10", "options": ["ro", "sync", "no_subtree_check"]}]


def test_read_exports_files_combines_in_exportfs_order(tmp_path):
    exports = tmp_path / "exports"
    exports.write_text("/a h0(rw)\n")
    d = tmp_path / "exports.d"
    d.mkdir()
    (d / "b10.exports").write_text("/a h10(rw)\n")
    (d / "b9.exports").write_text("/a h9(rw)\n/b h(ro)\n")
    (d / "b9.exports.bak").write_text("/a ignored\n")
    (d / ".hidden.exports").write_text("/a ignored\n")
    (d / ".exports").write_text("/a ignored\n")
    (d / "dir.exports").mkdir()
    listing = ec.read_exports_files(str(exports), str(d))
    assert [c["hosts"] for c in listing["/a"]] == ["h0", "h9", "h10"]
    assert listing["/b"] == [{"hosts": "h", "options": ["ro"]}]
    assert ec.read_exports_files(str(tmp_path / "missing"), str(tmp_path / "missing.d")) == {}
    assert ec.read_exports_files(str(exports), None) == {"/a": [{"hosts": "h0", "options": ["rw"]}]}


# -- add_client ----------------------------------------------------------------------------------
def test_add_client_appends_to_the_last_line_of_the_path():
    text = read(FIXTURES / "office")
    doc = ec.parse(text)
    doc.add_client("/srv/nfs4/home", "10.40.0.0/16", ["ro", "sync"])
    new = doc.render()
    anchor = "/srv/nfs4/home   10.30.0.0/16(ro,sync,no_subtree_check)"
    assert new == text.replace(anchor, anchor + " 10.40.0.0/16(ro,sync)")
    assert doc.list_exports()["/srv/nfs4/home"][-1] == {"hosts": "10.40.0.0/16", "options": ["ro", "sync"]}


def test_add_client_keeps_inline_comment_and_continuations():
    text = "# keep\n/a h1(rw) \\\n   h2(ro)   # note\n/b x\n"
    doc = ec.parse(text)
    doc.add_client("/a", "h3", "rw,sync")
    assert doc.render() == "# keep\n/a h1(rw) \\\n   h2(ro) h3(rw,sync)   # note\n/b x\n"


def test_add_client_replaces_an_existing_host_in_place():
    text = "/a -sync h1(rw) h2 # c\n/a h1(ro)\n"
    doc = ec.parse(text)
    doc.add_client("/a", "h1", ["rw", "no_root_squash"])
    assert doc.render() == "/a -sync h1(rw,no_root_squash) h2 # c\n/a h1(rw,no_root_squash)\n"
    doc.add_client("/a", "h2", [])
    assert doc.render() == "/a -sync h1(rw,no_root_squash) h2() # c\n/a h1(rw,no_root_squash)\n"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", '"/srv/new dir" h(rw)\n'),
        ("/a x", '/a x\n"/srv/new dir" h(rw)\n'),
        ("/a x\n", '/a x\n"/srv/new dir" h(rw)\n'),
        ("/a x \\\n", '/a x \\\n\n"/srv/new dir" h(rw)\n'),
        ("# c", '# c\n"/srv/new dir" h(rw)\n'),
    ],
)
def test_add_client_new_path_goes_at_the_end(text, expected):
    doc = ec.parse(text)
    doc.add_client("/srv/new dir", "h", ["rw"])
    assert doc.render() == expected
    assert doc.list_exports()["/srv/new dir"] == [{"hosts": "h", "options": ["rw"]}]


@pytest.mark.parametrize(
    "path, host, options, field",
    [
        ("relative", "h", ["rw"], "path"),
        ("/a/../b", "h", ["rw"], "path"),
        ("/a", "h (rw)", ["rw"], "hosts"),
        ("/a", "h\n/etc *(rw", ["rw"], "hosts"),
        ("/a", "", ["rw"], "hosts"),
        ("/a", "h", ["rw", "bogus"], "options[1]"),
        ("/a", "h", ["rw", "ro"], "options[1]"),
        ("/a", "h", "rw),*(rw", "options[0]"),
        ("/a", "h", ["anonuid=x"], "options[0]"),
    ],
)
def test_add_client_refuses_bad_input_and_leaves_document_alone(path, host, options, field):
    text = "/a h0(rw) # c\n"
    doc = ec.parse(text)
    with pytest.raises(InvalidInput) as info:
        doc.add_client(path, host, options)
    assert info.value.field == field
    assert doc.render() == text


def test_add_client_refuses_when_the_file_would_swallow_the_client():
    text = '/a "h0(rw)\n'
    doc = ec.parse(text)
    with pytest.raises(Conflict):
        doc.add_client("/b", "h", ["rw"])
    assert doc.render() == text


# -- remove_path ---------------------------------------------------------------------------------
def test_remove_path_removes_every_line_of_it():
    text = read(FIXTURES / "office")
    doc = ec.parse(text)
    assert doc.remove_path("/srv/nfs4/home") is True
    new = doc.render()
    assert "/srv/nfs4/home" not in new
    assert "# home dirs" not in new  # the inline comment went with its line
    assert "    # indented comment: the build farm\n" in new
    expected = "".join(
        line
        for line in text.splitlines(keepends=True)
        if not line.startswith("/srv/nfs4/home ")
    )
    assert new == expected
    assert "/srv/nfs4/home" not in doc.list_exports()


def test_remove_path_takes_continuation_lines_and_keeps_other_bytes():
    text = "# head\n  /a h1(rw) \\\n\th2(ro) # tail\n\n/b x\r\n/a h3\n# end"
    doc = ec.parse(text)
    assert doc.remove_path("/a")
    assert doc.render() == "# head\n\n/b x\r\n# end"
    assert doc.remove_path("/a") is False
    assert doc.render() == "# head\n\n/b x\r\n# end"


def test_remove_last_line_without_newline():
    doc = ec.parse("/a x\n/b y")
    assert doc.remove_path("/b")
    assert doc.render() == "/a x\n"


def test_remove_quoted_path():
    doc = ec.parse('"/srv/my dir" h\n/srv/my\\040dir h2\n/c d\n')
    assert doc.remove_path("/srv/my dir")
    assert doc.render() == "/c d\n"


# -- render_export_line / parse_exports_model ------------------------------------------------------
def test_render_export_line_uses_canonical_options_and_quotes_spaces():
    export = Export(
        path="/srv/my dir",
        rules=(
            rule_from_options("10.0.0.0/24", ["rw", "no_root_squash"]),
            rule_from_options("@trusted", ["ro", "async", "sec=krb5p:krb5i", "anonuid=7"]),
        ),
    )
    line = ec.render_export_line(export)
    assert line == (
        '"/srv/my dir" 10.0.0.0/24(rw,sync,no_subtree_check,no_root_squash) '
        "@trusted(ro,async,no_subtree_check,root_squash,sec=krb5p:krb5i,anonuid=7)\n"
    )
    assert ec.parse_exports_model(line) == {"/srv/my dir": export}


def test_render_export_line_refuses_an_export_without_clients():
    with pytest.raises(InvalidInput) as info:
        ec.render_export_line(Export(path="/a", rules=()))
    assert "every host" in str(info.value)


def test_model_of_fixtures():
    model = ec.parse_exports_model(read(FIXTURES / "office"), field="office")
    home = model["/srv/nfs4/home"]
    assert [r.host for r in home.rules] == ["10.20.0.0/255.255.0.0", "@staff", "10.30.0.0/16"]
    assert home.rules[0].access == "rw" and home.rules[2].access == "ro"
    assert model["/srv/backup"].rules[0].squash == "none"
    assert model["/srv/backup"].rules[0].sec == ("krb5p",)
    media = model["/srv/nfs4/media library"].rules[0]
    assert (media.squash, media.anonuid, media.anongid) == ("all", 1001, 1001)
    assert "fsid=0" in model["/srv/nfs4"].rules[0].options
    example = ec.parse_exports_model(read(FIXTURES / "exports5-example"))
    assert example["/srv/www"].rules[2] == ClientRule(host="@external", access="ro")
    assert ec.parse_exports_model(read(FIXTURES / "debian-default")) == {}


@pytest.mark.parametrize(
    "text, field, problem",
    [
        ("/a h(rw)\n\n/b h (rw)\n", "exports line 3 host", "no host before '('"),
        ("# c\n/a h(rw,bogus)\n", "exports line 2 options[1]", "not an exports(5) option"),
        ("/a -rw,nope h\n", "exports line 1 -defaults[1]", "not an exports(5) option"),
        ("/a h(rw,ro)\n", "exports line 1 options[1]", "conflicts"),
        ("/a h(anonuid=abc)\n", "exports line 1 options[0]", "must be a number"),
        ("/a h(rw)\n/a h(ro)\n", "exports line 2 host", "given twice"),
        ("/a h(rw)\n/b\n", "exports line 2 clients", "every host"),
        ("/a h(rw\n", "exports line 1", "bad option list"),
        ("/a h(rw)\r\n\r\n/b h(rw)\r\n", "exports line 2", "stops reading"),
        ('/a "h(rw)\n', "exports line 1", "unterminated"),
        ("relative h(rw)\n", "exports line 1 path", "absolute"),
        ("/a/../b h(rw)\n", "exports line 1 path", "'..'"),
        ("/a h(rw) \\\n  bad!host(rw)\n", "exports line 2 host", "not a valid host"),
        ("/a 10.0.0.0/33(rw)\n", "exports line 1 host", "prefix length"),
    ],
)
def test_model_errors_name_the_line(text, field, problem):
    with pytest.raises(InvalidInput) as info:
        ec.parse_exports_model(text)
    assert info.value.field == field
    assert problem in info.value.problem


def test_model_field_prefix_is_the_given_name():
    with pytest.raises(InvalidInput) as info:
        ec.parse_exports_model("/a h(bogus)\n", field="/etc/exports.d/x.exports")
    assert info.value.field == "/etc/exports.d/x.exports line 1 options[0]"


def test_model_merges_a_path_on_several_lines():
    model = ec.parse_exports_model("/a h1(rw)\n/b x(ro)\n/a -async h2\n")
    assert [r.host for r in model["/a"].rules] == ["h1", "h2"]
    assert model["/a"].rules[1].options == frozenset({"async"})
