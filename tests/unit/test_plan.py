"""Planning: what changes, what stays, and the diff test=True shows."""
import pytest

from nfskit.plan import make_plan
from nfskit.spec import export_from_args

pytestmark = [pytest.mark.unit]


def exp(path, host="10.0.0.0/24", options=("rw",)):
    return export_from_args(path, hosts=host, options=list(options))


def render(export):
    return export.describe() + "\n"


def test_equal_exports_make_an_empty_plan_whatever_the_option_order():
    current = {"/a": exp("/a", options=("sync", "rw", "no_subtree_check"))}
    plan = make_plan(current, [exp("/a", options=("rw",))])
    assert not plan and plan.summary() == "no changes" and plan.changes() == {}


def test_add_change_and_keep_unlisted_by_default():
    current = {"/a": exp("/a"), "/b": exp("/b")}
    plan = make_plan(current, [exp("/a", options=("ro",)), exp("/c")])
    assert [e.path for e in plan.add] == ["/c"]
    assert [new.path for _, new in plan.change] == ["/a"]
    assert plan.remove == ()
    assert plan.changes()["/a"] == {"old": "/a 10.0.0.0/24(rw,sync,no_subtree_check,root_squash)", "new": "/a 10.0.0.0/24(ro,sync,no_subtree_check,root_squash)"}
    assert plan.changes()["/c"]["old"] is None
    assert plan.summary() == "1 added, 1 changed"


def test_remove_unlisted_and_explicit_remove():
    current = {"/a": exp("/a"), "/b": exp("/b")}
    assert [e.path for e in make_plan(current, [exp("/a")], remove_unlisted=True).remove] == ["/b"]
    assert [e.path for e in make_plan(current, [], remove=["/a", "/nope"]).remove] == ["/a"]


def test_diff_shows_exact_lines():
    plan = make_plan({"/a": exp("/a")}, [exp("/a", host="10.0.1.0/24")])
    diff = plan.diff(render)
    assert "-/a 10.0.0.0/24(rw,sync,no_subtree_check,root_squash)\n" in diff
    assert "+/a 10.0.1.0/24(rw,sync,no_subtree_check,root_squash)\n" in diff
