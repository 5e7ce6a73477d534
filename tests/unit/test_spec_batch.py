"""``exports_from_managed``: a whole export set validated at once (rules remembered per batch)."""
import pytest

from nfskit.errors import InvalidInput
from nfskit.spec import exports_from_managed

pytestmark = [pytest.mark.unit]


def test_repeated_rules_give_the_same_rule_and_each_export_its_own_path():
    data = {f"/srv/e{i}": {"hosts": "10.0.0.0/24", "options": ["rw", "sync"]} for i in range(3)}
    exports = exports_from_managed(data)
    assert list(exports) == ["/srv/e0", "/srv/e1", "/srv/e2"]
    assert len({e.rules for e in exports.values()}) == 1
    assert exports["/srv/e2"].rules[0].access == "rw"


def test_an_error_after_a_remembered_rule_names_the_later_field():
    data = {
        "/srv/a": {"hosts": "10.0.0.0/24", "options": ["rw"]},
        "/srv/b": {"hosts": "10.0.0.0/24", "options": ["rw", "bogus"]},
    }
    with pytest.raises(InvalidInput) as err:
        exports_from_managed(data)
    assert err.value.field == "exports['/srv/b'].options[1]"


def test_unsafe_rules_are_refused_per_export_even_when_remembered():
    data = {
        "/srv/a": {"hosts": "*", "options": ["ro"]},
        "/srv/b": {"hosts": "*", "options": ["rw"]},
    }
    with pytest.raises(InvalidInput) as err:
        exports_from_managed(data)
    assert err.value.field.startswith("exports['/srv/b']")
    assert len(exports_from_managed(data, allow_unsafe=True)) == 2


def test_structured_keys_still_apply_to_a_remembered_rule():
    data = {
        "/srv/a": {"clients": [{"hosts": "h1", "options": ["sync"]}]},
        "/srv/b": {"clients": [{"hosts": "h1", "options": ["sync"], "access": "rw", "squash": "none"}]},
    }
    exports = exports_from_managed(data, allow_unsafe=True)
    assert exports["/srv/a"].rules[0].access == "ro"
    assert (exports["/srv/b"].rules[0].access, exports["/srv/b"].rules[0].squash) == ("rw", "none")
