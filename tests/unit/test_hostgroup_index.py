"""The hostgroup index and the direct pillar reader (no Salt loader: a matcher stands in for Salt's)."""
import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.utils.data import subdict_match

from nfskit import datarepo, hostgroup_index, selfservice_pillar
from nfskit.datarepo import Tree
from nfskit.errors import StoreError

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize(
    "target, terms",
    [
        ("G@role:web and G@env:prod", [("role", "web"), ("env", "prod")]),
        ("G@Role:WEB", [("Role", "web")]),
        ("web* and G@env:prod", [("env", "prod")]),
        ("G@env:prod and not G@os:Legacy", [("env", "prod")]),
        ("not G@os:Legacy", []),
        ("G@role:db or G@role:pg", []),
        ("( G@role:db and G@env:prod )", []),
        ("G@role:web*", []),  # a glob is a pattern, not a value
        ("G@ec2:tags:role", []),  # nested: subdict_match tries more than one split
        ("L@a.example.com,b.example.com", []),
        ("I@nfs:web:true and G@env:prod", [("env", "prod")]),
        ("N@web and G@env:prod", [("env", "prod")]),
    ],
)
def test_mandatory_grains(target, terms):
    assert hostgroup_index.mandatory_grains(target) == terms


def test_a_target_is_filed_under_its_rarest_term():
    groups = {f"g{n}": f"G@env:prod and G@role:r{n}" for n in range(5)}
    groups["odd"] = "G@role:db or G@role:pg"
    index = hostgroup_index.build(groups)
    assert index["grains"] == {"role": {f"r{n}": [f"g{n}"] for n in range(5)}}
    assert index["always"] == ["odd"] and index["hostgroups"] == dict(sorted(groups.items()))
    assert hostgroup_index.load(hostgroup_index.dump(index)) == index
    assert hostgroup_index.candidates(index, {"role": "R3", "env": "prod"}) == ["g3", "odd"]
    assert hostgroup_index.candidates(index, {"role": ["x", "r1"]}) == ["g1", "odd"]
    assert hostgroup_index.candidates(index, {"role": {"r2": 1}}) == ["g0", "g1", "g2", "g3", "g4", "odd"]  # mapping: all of role's
    assert hostgroup_index.candidates(index, {}) == ["odd"]


@pytest.mark.parametrize("text", ["", "[]", '{"version": 2}', "{"])
def test_an_unreadable_index_is_a_store_error(text):
    with pytest.raises(StoreError):
        hostgroup_index.load(text)


GRAIN = st.sampled_from(["role", "env", "os"])
VALUE = st.sampled_from(["web", "WEB", "db", "prod", "1", "true"])
GRAIN_VALUE = st.one_of(VALUE, st.lists(VALUE, max_size=3), st.integers(0, 2), st.booleans(), st.dictionaries(VALUE, st.integers(), max_size=2))
TERM = st.one_of(
    st.tuples(GRAIN, VALUE).map(lambda t: f"G@{t[0]}:{t[1]}"),
    st.tuples(GRAIN, VALUE).map(lambda t: f"G@{t[0]}:{t[1][:1]}*"),
    st.just("web*"),
)


def and_chain_matches(target, grains, minion_id="web1"):
    """A stand-in for Salt's compound matcher on targets made of and / not and G@ / glob terms."""
    result, negate, words = True, False, target.split()
    for word in words:
        if word in ("and", "or"):
            continue
        if word == "not":
            negate = True
            continue
        hit = subdict_match(grains, word[2:]) if word.startswith("G@") else fnmatch.fnmatch(minion_id, word)
        result = result and (not hit if negate else bool(hit))
        negate = False
    return result


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from([f"g{n}" for n in range(6)]),
                    st.lists(st.tuples(st.booleans(), TERM), min_size=1, max_size=3).map(
                        lambda terms: " and ".join(("not " if neg else "") + term for neg, term in terms)), min_size=1),
    st.dictionaries(GRAIN, GRAIN_VALUE),
)
def test_candidates_are_never_fewer_than_the_members(groups, grains):
    """Whatever the grains' types and case, no member is left out of the candidates."""
    index = hostgroup_index.build(groups)
    members = {group for group, target in groups.items() if and_chain_matches(target, grains)}
    assert members <= set(hostgroup_index.candidates(index, grains))


def test_the_reader_follows_the_top_files_order_and_the_servers_includes(tmp_path):
    tree = Tree(tmp_path)
    tree.put("pillar/nfs/hosts/" + datarepo.host_shard("a.example.com") + "/a_example_com.sls", {"nfs": {"client": {"mounts": {"/m": {"device": "host"}}}}}, datarepo.PILLAR_HEADER)
    tree.put("pillar/nfs/hostgroups/g1.sls", {"nfs": {"client": {"mounts": {"/m": {"device": "g1"}, "/n": {"device": "g1"}}}}}, datarepo.PILLAR_HEADER)
    tree.put("pillar/nfs/hostgroups/g2.sls", {"nfs": {"client": {"mounts": {"/n": {"device": "g2"}}}}}, datarepo.PILLAR_HEADER)
    tree.put("pillar/nfs/exports/t/e.sls", {"nfs": {"server": {"exports": {"/e": {}}, "backend": "from-export"}}}, datarepo.PILLAR_HEADER)
    tree.put("pillar/nfs/servers/a_example_com.sls", {"include": ["nfs.exports.t.e"], "nfs": {"server": {"backend": "kernel"}}}, datarepo.PILLAR_HEADER)
    datarepo.update_top(tree, {"g1": "G@role:web", "g2": "a.example.com"})
    tree.write()
    data = selfservice_pillar.minion_pillar(tmp_path / "pillar", "a.example.com", {"role": "web"}, lambda target: True)
    assert data["nfs"]["client"]["mounts"] == {"/m": {"device": "host"}, "/n": {"device": "g2"}}  # groups by name, then the host
    assert data["nfs"]["server"] == {"exports": {"/e": {}}, "backend": "kernel"}  # the including file wins
    asked = []
    selfservice_pillar.minion_pillar(tmp_path / "pillar", "a.example.com", {"role": "db"}, lambda target: asked.append(target) or False)
    assert asked == ["a.example.com"]  # g1 is not even a candidate for role db


@pytest.mark.parametrize("text, message", [("a: 1\n", "does not start with #!yaml"), ("#!yaml\n- 1\n", "not a mapping"),
                                            ("#!yaml\nnfs: {\n", "not valid YAML"), ("#!yaml\ninclude: [nfs.exports.t.gone]\n", "does not exist"),
                                            ("#!yaml\ninclude: ['../../x']\n", "not an sls name")])
def test_a_damaged_server_file_is_a_store_error(tmp_path, text, message):
    path = tmp_path / "pillar/nfs/servers/a_example_com.sls"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(StoreError, match=message):
        selfservice_pillar.minion_pillar(tmp_path / "pillar", "a.example.com", {}, lambda target: True)
