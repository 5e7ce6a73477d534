"""Property tests for the exports(5) codec.

- structured -> text -> structured: ``parse_exports_model(render_export_line(...)) == exports``;
- text -> document -> text: files generated from a grammar (comments, continuations, quotes,
  octal escapes, odd whitespace, CRLF, -defaults, bare hosts, repeated paths, no final newline)
  parse to the listing the generator meant, render unchanged, and edits touch only their bytes;
- the line-by-line fast scanner agrees with the general one.
"""
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nfskit import exports_codec as ec
from nfskit.errors import InvalidInput
from nfskit.model import Export, merge_options, rule_from_options
from nfskit.validation import check_path

pytestmark = [pytest.mark.unit]

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- hosts and options -------------------------------------------------------------------------
octet = st.integers(0, 255)
ipv4 = st.tuples(octet, octet, octet, octet).map(lambda t: ".".join(map(str, t)))
ipv4_cidr = st.tuples(ipv4, st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}")
ipv4_mask = st.tuples(ipv4, st.integers(0, 32)).map(
    lambda t: f"{t[0]}/" + ".".join(str((((1 << 32) - 1) << (32 - t[1]) & 0xFFFFFFFF) >> s & 255) for s in (24, 16, 8, 0))
)
hextet = st.integers(0, 0xFFFF).map(lambda n: format(n, "x"))
ipv6_full = st.lists(hextet, min_size=8, max_size=8).map(":".join)
ipv6_short = st.tuples(st.lists(hextet, max_size=3), st.lists(hextet, max_size=3)).map(
    lambda t: ":".join(t[0]) + "::" + ":".join(t[1])
)
ipv6_prefix = st.tuples(st.one_of(ipv6_full, ipv6_short), st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}")
label = st.tuples(st.sampled_from(string.ascii_lowercase), st.text(string.ascii_lowercase + string.digits + "-", max_size=7)).map(
    lambda t: (t[0] + t[1]).rstrip("-")
)
hostname = st.lists(label, min_size=1, max_size=4).map(".".join)
wildcard = st.one_of(
    st.just("*"),
    label.map(lambda l: f"*.{l}.example.com"),
    label.map(lambda l: f"{l}[0-9].lab.example"),
    label.map(lambda l: f"{l}?.example.org"),
)
netgroup = label.map(lambda l: "@" + l)
HOSTS = st.one_of(ipv4, ipv4_cidr, ipv4_mask, ipv6_full, ipv6_short, ipv6_prefix, hostname, wildcard, netgroup)

GROUPS = [
    ["rw", "ro"],
    ["sync", "async"],
    ["secure", "insecure"],
    ["root_squash", "no_root_squash"],
    ["all_squash", "no_all_squash"],
    ["wdelay", "no_wdelay"],
    ["hide", "nohide"],
    ["subtree_check", "no_subtree_check"],
    ["secure_locks", "insecure_locks", "auth_nlm", "no_auth_nlm"],
    ["acl", "no_acl"],
    ["pnfs", "no_pnfs"],
    ["crossmnt", "nocrossmnt"],
    ["security_label"],
    ["rdirplus", "nordirplus"],
]
VALUES = st.one_of(
    st.lists(st.sampled_from(["sys", "krb5", "krb5i", "krb5p"]), min_size=1, max_size=4, unique=True).map(
        lambda f: "sec=" + ":".join(f)
    ),
    st.integers(-(2**31), 2**32 - 1).map(lambda n: f"anonuid={n}"),
    st.integers(0, 2**32 - 1).map(lambda n: f"anongid={n}"),
    st.one_of(st.just("root"), st.integers(0, 99999).map(str)).map(lambda v: f"fsid={v}"),
)


@st.composite
def option_words(draw):
    words = [draw(st.sampled_from(group)) for group in GROUPS if draw(st.booleans())]
    seen = set()
    for word in draw(st.lists(VALUES, max_size=3)):
        key = word.split("=")[0]
        if key not in seen:
            seen.add(key)
            words.append(word)
    return draw(st.permutations(words))


@st.composite
def exports(draw):
    component = st.text(string.ascii_letters + string.digits + "_-+ ", min_size=1, max_size=10).filter(
        lambda c: c not in (".", "..")
    )
    paths = draw(st.lists(st.lists(component, min_size=1, max_size=4).map(lambda c: "/" + "/".join(c)), min_size=1, max_size=5, unique=True))
    result = {}
    for path in paths:
        hosts = draw(st.lists(HOSTS, min_size=1, max_size=4, unique=True))
        rules = tuple(rule_from_options(host, draw(option_words())) for host in hosts)
        result[path] = Export(path=path, rules=rules)
    return result


@SETTINGS
@given(exports())
def test_structured_round_trip(wanted):
    text = "".join(ec.render_export_line(export) for export in wanted.values())
    assert ec.parse_exports_model(text) == wanted
    # and each line on its own, with our backend's header comment
    for export in wanted.values():
        assert ec.parse_exports_model("# header\n" + ec.render_export_line(export)) == {export.path: export}


# -- text grammar --------------------------------------------------------------------------------
BLANKS = st.text(" \t", max_size=3)
SEP = st.one_of(
    st.text(" \t", min_size=1, max_size=3),
    st.tuples(st.text(" \t", max_size=2), st.text(" \t", max_size=4)).map(lambda t: t[0] + "\\\n" + t[1]),
)
COMMENT_TEXT = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=15)
PATH_CHARS = string.ascii_letters + string.digits + "_-.#"


@st.composite
def path_and_spelling(draw):
    parts = draw(st.lists(st.text(PATH_CHARS + " ", min_size=1, max_size=8), min_size=1, max_size=3))
    path = "/" + "/".join(parts)
    style = draw(st.sampled_from(["plain", "quoted", "octal", "partial"]))
    if " " in path and style == "plain":
        style = "quoted"
    if style == "quoted":
        return path, f'"{path}"'
    if style == "octal":
        return path, path.replace(" ", "\\040")
    if style == "partial" and " " in path:
        head, _, tail = path.partition(" ")
        return path, f'{head}" "{tail}'
    return path, path


@st.composite
def option_text(draw):
    words = draw(st.lists(st.sampled_from(["rw", "ro", "sync", "async", "no_subtree_check", "all_squash", "anonuid=7", "sec=krb5p"]), max_size=4))
    return words


@st.composite
def client(draw):
    host = draw(st.one_of(ipv4, ipv4_cidr, ipv6_prefix, hostname, wildcard, netgroup))
    if draw(st.booleans()):
        return host, None, host
    words = draw(option_text())
    spelled = ",".join(words)
    return host, words, f"{host}({spelled})"


@st.composite
def document(draw):
    """(text, expected listing) from a grammar of exports(5) files."""
    crlf = draw(st.booleans())
    lines, expected = [], {}
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["blank", "comment", "entry", "entry", "entry"]))
        if kind == "blank":
            lines.append(("blank", draw(BLANKS)))
        elif kind == "comment":
            lines.append(("comment", draw(BLANKS) + "#" + draw(COMMENT_TEXT)))
        else:
            path, spelled = draw(path_and_spelling())
            text = draw(BLANKS) + spelled
            defaults = []
            if draw(st.booleans()):
                defaults = draw(option_text())
                text += draw(SEP) + "-" + ",".join(defaults)
            clients = draw(st.lists(client(), min_size=1, max_size=4))
            for host, words, token in clients:
                text += draw(SEP) + token
            text += draw(BLANKS)
            if draw(st.booleans()):
                text += draw(st.sampled_from([" ", "\t"])) + "#" + draw(COMMENT_TEXT)
            elif draw(st.booleans()):
                text += draw(SEP) + "#" + draw(COMMENT_TEXT)
            lines.append(("entry", text))
            listing = expected.setdefault(path, [])
            for host, words, _ in clients:
                options = list(defaults) if words is None else merge_options(defaults, words)
                listing.append({"hosts": host, "options": options})
    eol = "\r\n" if crlf else "\n"
    out = []
    for index, (kind, text) in enumerate(lines):
        if crlf and "\\\n" in text:
            text = text.replace("\\\n", " ")  # a continuation needs a bare LF
        end = eol if kind != "blank" else "\n"
        if index == len(lines) - 1 and draw(st.booleans()):
            end = ""
        out.append(text + end)
    return "".join(out), expected


@SETTINGS
@given(document())
def test_grammar_documents_parse_to_what_they_say(case):
    text, expected = case
    doc = ec.parse(text)
    assert doc.render() == text
    assert doc.list_exports() == expected
    assert doc.issues == []


@SETTINGS
@given(document())
def test_entries_partition_the_text(case):
    text, _ = case
    doc = ec.parse(text)
    last = 0
    for entry in doc.entries:
        assert last <= entry.start < entry.end <= len(text)
        last = entry.end
    # what lies between entries holds no export, and the entries alone say everything
    gaps, kept, last = [], [], 0
    for entry in doc.entries:
        gaps.append(text[last : entry.start])
        kept.append(text[entry.start : entry.end])
        last = entry.end
    gaps.append(text[last:])
    assert ec.parse("\n".join(gaps)).entries == []
    assert ec.parse("".join(kept)).list_exports() == doc.list_exports()


@SETTINGS
@given(document(), st.data())
def test_remove_path_touches_only_that_path(case, data):
    text, expected = case
    assume(expected)
    path = data.draw(st.sampled_from(sorted(expected)))
    doc = ec.parse(text)
    spans = [(e.start, e.end) for e in doc.entries if e.path == path]
    assert doc.remove_path(path)
    rest, last = [], 0
    for start, end in spans:
        rest.append(text[last:start])
        last = end
    rest.append(text[last:])
    assert doc.render() == "".join(rest)
    remaining = dict(expected)
    del remaining[path]
    assert doc.list_exports() == remaining


@SETTINGS
@given(document(), st.data())
def test_add_client_keeps_everything_else(case, data):
    text, expected = case
    doc = ec.parse(text)
    host = data.draw(st.one_of(ipv4, hostname, netgroup))
    words = data.draw(st.lists(st.sampled_from(["rw", "sync", "no_subtree_check", "insecure"]), unique=True))
    editable = [p for p in sorted(expected) if _valid_path(p)]
    new_path = not editable or data.draw(st.booleans())
    path = "/srv/added path" if new_path else data.draw(st.sampled_from(editable))
    doc.add_client(path, host, words)
    listing = doc.list_exports()
    if new_path:
        assert doc.render().startswith(text)
        assert listing == {**expected, path: [{"hosts": host, "options": words}]}
        return
    before = expected[path]
    if any(c["hosts"] == host for c in before):
        return  # replaced in place; covered by example tests
    assert len(doc.render()) == len(text) + len(f" {host}({','.join(words)})")
    defaults_added = listing[path][-1]
    assert defaults_added["hosts"] == host
    assert listing[path][:-1] == before
    assert {p: c for p, c in listing.items() if p != path} == {p: c for p, c in expected.items() if p != path}


def _valid_path(path):
    try:
        check_path(path, "path")
    except InvalidInput:
        return False
    return True


# -- arbitrary text ------------------------------------------------------------------------------
NASTY = st.text(st.sampled_from(list(' \t\n\r\x0b\x0c\\"#()-,/a1:@*') + ["\x00", "é"]), max_size=60)


@SETTINGS
@given(NASTY)
def test_any_text_renders_unchanged_and_spans_are_ordered(text):
    doc = ec.parse(text)
    assert doc.render() == text
    last = 0
    for entry in doc.entries:
        assert last <= entry.start <= entry.path_token.start < entry.end <= len(text)
        last = entry.end
    for issue in doc.issues:
        assert 0 <= issue.offset < len(text)
    try:
        ec.parse_exports_model(text)
    except InvalidInput as exc:
        assert exc.field.startswith("exports line ")


SIMPLE = st.text(st.sampled_from(list(" \t\n#()-,/a1:@*") + ["é"]), max_size=80)


@SETTINGS
@given(SIMPLE)
def test_fast_scanner_matches_general_scanner(text):
    assert ec._COMPLEX.search(text) is None
    general_entries, general_issues = ec._scan_general(text)
    assert ec._scan_simple(text) == general_entries
    assert ec._scan(text) == (general_entries, general_issues)
