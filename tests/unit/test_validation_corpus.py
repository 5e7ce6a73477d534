"""Hostile input through ``spec.export_from_args``: every refusal names the field and the problem.

Anything that could end an exports line, open a second client, turn a host into ``-defaults`` or
widen access is refused before it reaches a file.
"""
import pytest

from nfskit import exports_codec
from nfskit.errors import InvalidInput
from nfskit.spec import export_from_args

pytestmark = [pytest.mark.unit]

HOST_KINDS = "a host spec is a name, address, CIDR, wildcard or @netgroup"

CORPUS = [
    # hosts: separators and line breaks
    ("host-newline", dict(hosts="client\n/etc *(rw"), "hosts", "contains a newline"),
    ("host-cr", dict(hosts="client\r"), "hosts", "contains a carriage return"),
    ("host-nul", dict(hosts="cli\x00ent"), "hosts", "contains a NUL byte"),
    ("host-space", dict(hosts="client (rw)"), "hosts", "contains whitespace"),
    ("host-tab", dict(hosts="client\t*"), "hosts", "contains whitespace"),
    ("host-open-paren", dict(hosts="client(rw)"), "hosts", "contains '('"),
    ("host-close-paren", dict(hosts="client)"), "hosts", "contains ')'"),
    ("host-hash", dict(hosts="client#x"), "hosts", "contains '#'"),
    ("host-comma", dict(hosts="a,b"), "hosts", "contains ','"),
    ("host-quote", dict(hosts='"client"'), "hosts", "contains a double quote"),
    ("host-backslash", dict(hosts="client\\040"), "hosts", "contains a backslash"),
    ("host-control", dict(hosts="cli\x1bent"), "hosts", "control character"),
    ("host-empty", dict(hosts=""), "hosts", "is empty (an empty host means every host)"),
    ("host-defaults-lookalike", dict(hosts="-rw"), "hosts", "is not a valid host name or wildcard"),
    ("host-bad-netgroup", dict(hosts="@"), "hosts", "is not a valid @netgroup name"),
    ("host-unbalanced-bracket", dict(hosts="node[0-9.example.com"), "hosts", "unbalanced '['"),
    ("host-not-string", dict(hosts=42), "hosts", "is not a string"),
    ("host-in-list", dict(hosts=["ok.example.com", "bad host"]), "hosts[1]", "contains whitespace"),
    ("host-duplicate", dict(hosts=["h1", "h1"]), "hosts[1]", "is already given in hosts[0]"),
    # addresses
    ("ipv4-octet", dict(hosts="10.0.0.300"), "hosts", "is not a valid IPv4 address"),
    ("ipv4-short", dict(hosts="10.0.0"), "hosts", "is not a valid IPv4 address"),
    ("cidr-too-long", dict(hosts="10.0.0.0/33"), "hosts", "has prefix length 33, more than 32"),
    ("cidr-empty", dict(hosts="10.0.0.0/"), "hosts", "has an empty netmask"),
    ("netmask-holes", dict(hosts="10.0.0.0/255.0.255.0"), "hosts", "has a malformed netmask"),
    ("netmask-garbage", dict(hosts="10.0.0.0/255.x"), "hosts", "has a malformed netmask"),
    ("ipv6-double-gap", dict(hosts="fe80::1::2"), "hosts", "is not a valid IPv6 address"),
    ("ipv6-prefix-too-long", dict(hosts="2001:db8::/129"), "hosts", "has prefix length 129, more than 128"),
    ("ipv6-mask", dict(hosts="2001:db8::/ffff::"), "hosts", "needs a prefix length"),
    # paths
    ("path-relative", dict(path="srv/data"), "name", "is not an absolute path"),
    ("path-dotdot", dict(path="/srv/../etc"), "name", "contains a '.' or '..' component"),
    ("path-dot", dict(path="/srv/./data"), "name", "contains a '.' or '..' component"),
    ("path-newline", dict(path="/srv/a\n/etc"), "name", "contains a newline"),
    ("path-nul", dict(path="/srv/a\x00"), "name", "contains a NUL byte"),
    ("path-quote", dict(path='/srv/"a"'), "name", "contains a double quote"),
    ("path-hash", dict(path="/srv/a#b"), "name", "contains '#'"),
    ("path-backslash", dict(path="/srv/a\\040b"), "name", "contains a backslash"),
    ("path-tab", dict(path="/srv/a\tb"), "name", "control character"),
    ("path-trailing-slash", dict(path="/srv/a/"), "name", "has an empty component"),
    ("path-double-slash", dict(path="/srv//a"), "name", "has an empty component"),
    ("path-not-string", dict(path=["/srv"]), "name", "is not a string"),
    ("path-too-long", dict(path="/" + "a" * 5000), "name", "is longer than 4096"),
    # options
    ("option-unknown", dict(options=["rw", "bogusopt"]), "options[1]", "is not an exports(5) option"),
    ("option-rw-ro", dict(options=["rw", "ro"]), "options[1]", "conflicts with 'rw'"),
    ("option-sync-async", dict(options=["sync", "async"]), "options[1]", "conflicts with 'sync'"),
    ("option-squash-conflict", dict(options=["root_squash", "no_root_squash"], allow_unsafe=True), "options[1]", "conflicts"),
    ("option-anonuid-word", dict(options=["anonuid=abc"]), "options[0]", "anonuid must be a number"),
    ("option-anongid-word", dict(options=["anongid=1x"]), "options[0]", "anongid must be a number"),
    ("option-anonuid-range", dict(options=["anonuid=9999999999"]), "options[0]", "out of range"),
    ("option-anonuid-empty", dict(options=["anonuid="]), "options[0]", "anonuid must be a number"),
    ("option-anonuid-novalue", dict(options=["anonuid"]), "options[0]", "needs a value"),
    ("option-flag-with-value", dict(options=["rw=1"]), "options[0]", "takes no value"),
    ("option-sec-flavor", dict(options=["sec=krb6"]), "options[0]", "unknown flavor 'krb6'"),
    ("option-fsid", dict(options=["fsid=zz"]), "options[0]", "must be a number, 'root' or a UUID"),
    ("option-paren-injection", dict(options=["rw)", "*(rw"]), "options[0]", "contains ')'"),
    ("option-comma-in-word", dict(options=["rw,no_root_squash"]), "options[0]", "contains ','"),
    ("option-space-injection", dict(options=["rw *(rw"]), "options[0]", "contains whitespace"),
    ("option-hash", dict(options=["rw#"]), "options[0]", "contains '#'"),
    ("option-empty-word", dict(options=["rw", ""]), "options[1]", "is empty"),
    ("option-not-string", dict(options=["rw", 7]), "options[1]", "is not a string"),
    ("option-bad-type", dict(options=7), "options", "must be a list of option words"),
    # structured form
    ("structured-anonuid", dict(hosts=None, options=None, clients=[{"hosts": "h", "anonuid": "abc"}]), "clients[0].anonuid", "anonuid must be a number"),
    ("structured-access", dict(hosts=None, options=None, clients=[{"hosts": "h", "access": "write"}]), "clients[0].access", "must be rw or ro"),
    ("structured-squash", dict(hosts=None, options=None, clients=[{"hosts": "h", "squash": "nobody"}]), "clients[0].squash", "must be root, all or none"),
    ("structured-sec", dict(hosts=None, options=None, clients=[{"hosts": "h", "sec": ["krb6"]}]), "clients[0].sec", "must be a list of flavors"),
    ("structured-unknown-key", dict(hosts=None, options=None, clients=[{"hosts": "h", "mode": "rw"}]), "clients[0].mode", "is not a known rule field"),
    ("structured-host-newline", dict(hosts=None, options=None, clients=[{"hosts": "h\n"}]), "clients[0].hosts", "contains a newline"),
    ("structured-empty", dict(hosts=None, options=None, clients=[]), "clients", "must be a non-empty list"),
    # unsafe without opt-in
    ("world-rw", dict(hosts="*"), "hosts", "gives every host write access; pass allow_unsafe=True"),
    ("world-rw-cidr", dict(hosts="0.0.0.0/0"), "hosts", "gives every host write access"),
    ("world-rw-v6", dict(hosts="::/0"), "hosts", "gives every host write access"),
    ("world-rw-wildcard", dict(hosts="*.*"), "hosts", "gives every host write access"),
    ("no-root-squash", dict(options=["rw", "no_root_squash"]), "hosts", "disables root squashing (no_root_squash)"),
    ("insecure", dict(options=["rw", "insecure"]), "hosts", "accepts unprivileged source ports (insecure)"),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_input_is_refused_with_field_and_problem(case):
    _, overrides, field, problem = case
    kwargs = {"path": "/srv/data", "hosts": "client.example.com", "options": ["rw"]}
    kwargs.update(overrides)
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k not in ("hosts", "options")}
    with pytest.raises(InvalidInput) as info:
        export_from_args(**kwargs)
    assert info.value.field == field
    assert problem in info.value.problem
    message = str(info.value)
    assert message.startswith(f"{field}: ")
    assert problem in message
    assert "\n" not in message and "\x00" not in message  # hostile values are shown escaped


def test_corpus_covers_every_category():
    names = " ".join(c[0] for c in CORPUS)
    for needle in ("newline", "nul", "space", "paren", "hash", "comma", "relative", "dotdot", "unknown",
                   "rw-ro", "sync-async", "ipv4", "cidr", "netmask", "ipv6", "anonuid", "world-rw",
                   "no-root-squash", "insecure"):
        assert needle in names


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hosts="*", options=["rw"], allow_unsafe=True),
        dict(hosts="h", options=["rw", "no_root_squash"], allow_unsafe=True),
        dict(hosts="h", options=["rw", "insecure"], allow_unsafe=True),
        dict(hosts="*", options=["ro"]),
        dict(hosts="2001:db8:9:e54::/64", options=["rw"]),
        dict(hosts="192.0.2.0/255.255.255.0", options=["rw"]),
        dict(hosts="buildhost[0-9].local.domain", options=["rw"]),
        dict(hosts="@trusted", options=["rw", "anonuid=-2", "sec=krb5p:krb5i"]),
    ],
)
def test_accepted_input_renders_to_a_line_that_reads_back(kwargs):
    export = export_from_args("/srv/my data", **kwargs)
    line = exports_codec.render_export_line(export)
    assert line.count("\n") == 1
    assert exports_codec.parse_exports_model(line) == {"/srv/my data": export}


@pytest.mark.parametrize("word", ["anonuid=abc", "anongid=x1"])
def test_bad_anon_id_message_shows_the_whole_option_word(word):
    with pytest.raises(InvalidInput) as info:
        export_from_args("/srv/data", hosts="h", options=["rw", word])
    assert info.value.value == word
    assert repr(word) in str(info.value)
