"""Property tests for the exports(5) codec.

- structured -> text -> structured: ``parse_exports_model(render_export_line(...)) == exports``;
- text -> document -> text: files generated from a grammar (comments, continuations, quotes,
  octal escapes, odd whitespace, CRLF, -defaults, bare hosts, repeated paths, no final newline)
  parse to the listing the generator meant, render unchanged, and edits touch only their bytes;
- the line-by-line fast scanner agrees with the general one.
"""
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nfskit import exports_codec as ec
from nfskit.errors import InvalidInput
from nfskit.validation import check_path
from tests.support.exports_strategies import document, exports, hostname, ipv4, netgroup

pytestmark = [pytest.mark.unit]

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(exports())
def test_structured_round_trip(wanted):
    text = "".join(ec.render_export_line(export) for export in wanted.values())
    assert ec.parse_exports_model(text) == wanted
    # and each line on its own, with our backend's header comment
    for export in wanted.values():
        assert ec.parse_exports_model("# header\n" + ec.render_export_line(export)) == {export.path: export}


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


# -- the fast model path agrees with the general one ---------------------------------------------
TOKENS = ["/a", "/b", "/a/b c", "/a/../b", "h(rw)", "h(ro,sync)", "h2()", "h2(rw,)", "@g(ro,async)", "(rw)",
          "h", "-rw", "-ro,sync", "#c", "# x y", "h(rw", "h(rw)x", "h(bogus)", "h(rw,ro)", "10.0.0.0/8(rw)",
          "bad!(rw)", "h(anonuid=1)", "2001:db8::/64(ro)"]
SOUP = st.lists(
    st.lists(st.sampled_from(TOKENS), max_size=5).map(lambda t: " ".join(t)), max_size=6
).map("\n".join)


def _general(text):
    try:
        return ec._model_general(text, "exports")
    except InvalidInput:
        return "error"


@SETTINGS
@given(st.one_of(SOUP, document().map(lambda c: c[0])))
def test_fast_model_path_agrees_with_general(text):
    fast = ec._model_fast(text)
    general = _general(text)
    assert fast is None or fast == general
    if fast is None and general != "error":
        assert ec.parse_exports_model(text) == general


@SETTINGS
@given(exports(spaces=False))
def test_fast_model_path_takes_what_we_render(wanted):
    text = "# header\n" + "".join(ec.render_export_line(e) for e in wanted.values())
    assert ec._model_fast(text) == wanted
