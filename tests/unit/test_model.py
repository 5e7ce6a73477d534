"""The typed rule model: equal meaning compares equal, whatever the spelling or order."""
import pytest

from nfskit.errors import InvalidInput
from nfskit.model import check_safety, merge_options, rule_from_options

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize(
    "left, right",
    [
        (["rw", "sync", "no_subtree_check"], ["no_subtree_check", "rw"]),
        (["ro"], []),
        (["rw", "root_squash", "secure", "wdelay", "hide"], ["rw"]),
        (["rw", "no_auth_nlm"], ["insecure_locks", "rw"]),
        (["rw", "mp"], ["rw", "mountpoint"]),
        (["rw", "all_squash", "no_root_squash"], ["all_squash", "rw"]),
        (["sec=sys"], []),
    ],
)
def test_equivalent_spellings_compare_equal(left, right):
    assert rule_from_options("10.0.0.0/24", left) == rule_from_options("10.0.0.0/24", right)


@pytest.mark.parametrize(
    "left, right",
    [
        (["rw"], ["ro"]),
        (["rw", "async"], ["rw"]),
        (["sec=krb5:krb5p"], ["sec=krb5p:krb5"]),  # order of flavors is the server's preference
        (["anonuid=1000"], ["anonuid=1001"]),
        (["rw", "no_root_squash"], ["rw"]),
    ],
)
def test_different_meaning_compares_different(left, right):
    assert rule_from_options("h", left) != rule_from_options("h", right)


def test_render_is_explicit_about_sync_and_subtree_check():
    rule = rule_from_options("10.0.0.0/24", ["rw"])
    assert rule.to_options() == ["rw", "sync", "no_subtree_check", "root_squash"]
    assert rule_from_options("10.0.0.0/24", rule.to_options()) == rule


def test_render_keeps_structured_fields():
    rule = rule_from_options("@backup", ["ro", "all_squash", "anonuid=4242", "anongid=4242", "sec=krb5p:sys", "fsid=7"])
    assert rule.describe() == "@backup(ro,sync,no_subtree_check,all_squash,sec=krb5p:sys,anonuid=4242,anongid=4242,fsid=7)"


def test_merge_options_client_wins_per_group():
    assert merge_options(["sync", "rw"], ["ro"]) == ["sync", "ro"]
    assert merge_options(["ro", "anonuid=5"], ["anonuid=6", "rw"]) == ["anonuid=6", "rw"]
    assert merge_options([], []) == []


@pytest.mark.parametrize(
    "options, field, problem",
    [
        (["rw", "ro"], "options[1]", "conflicts with 'rw'"),
        (["sync", "async"], "options[1]", "conflicts with 'sync'"),
        (["secure", "insecure"], "options[1]", "conflicts with 'secure'"),
        (["anonuid=1", "anonuid=2"], "options[1]", "conflicts with an earlier anonuid"),
        (["sec=krb9"], "options[0]", "unknown flavor 'krb9'"),
        (["fsid=../x"], "options[0]", "must be a number, 'root' or a UUID"),
        (["refer=/a@h(x)"], "options[0]", "contains '('"),
        (["rw=1"], "options[0]", "rw takes no value"),
        (["anonuid"], "options[0]", "anonuid needs a value"),
        (["no_such_thing"], "options[0]", "is not an exports(5) option"),
        (["rw", "mountpoint", "mountpoint=/x"], "options", "gives mountpoint twice"),
    ],
)
def test_bad_options_name_field_and_problem(options, field, problem):
    with pytest.raises(InvalidInput) as err:
        rule_from_options("h", options)
    assert str(err.value).startswith(field + ":"), str(err.value)
    assert problem in str(err.value)


@pytest.mark.parametrize(
    "host, options, problem",
    [
        ("10.0.0.0/24", ["rw", "no_root_squash"], "no_root_squash"),
        ("10.0.0.0/24", ["rw", "insecure"], "insecure"),
        ("*", ["rw"], "every host write access"),
        ("0.0.0.0/0", ["rw"], "every host write access"),
        ("::/0", ["rw"], "every host write access"),
    ],
)
def test_unsafe_rules_need_opt_in(host, options, problem):
    rule = rule_from_options(host, options)
    with pytest.raises(InvalidInput, match=problem):
        check_safety(rule, allow_unsafe=False, field_name="clients[0]")
    check_safety(rule, allow_unsafe=True, field_name="clients[0]")


def test_world_read_only_is_allowed_by_default():
    check_safety(rule_from_options("*", ["ro"]), allow_unsafe=False, field_name="hosts")
