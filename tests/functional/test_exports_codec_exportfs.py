"""Our exports(5) parser against the real one: what ``exportfs -ra`` records in etab must be what
``list_exports`` says, for the fixtures and for files generated from the grammar.

Paths are rewritten into a sandbox (exportfs stats every path) and exportfs runs in a private
mount namespace over the sandbox tree.
"""
import ipaddress
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from nfskit import exportfs
from nfskit import exports_codec as ec
from tests.support.exports_strategies import NO_DNS_HOSTS, document
from tests.support.sandbox import Sandbox, exportfs_unavailable

pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(exportfs_unavailable() is not None, reason=str(exportfs_unavailable())),
]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exports"
FIXTURE_FILES = sorted(p for p in FIXTURES.iterdir() if p.is_file())


def _is_dns_name(host):
    """Plain host names are resolved by exportfs (and dropped from etab when they do not resolve)."""
    if host.startswith("@") or any(c in host for c in "*?[/:"):
        return False
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return True


def _flags(options):
    """What etab must show for a client with these option words (the last word of a group wins)."""
    access, sync, squash = "ro", "sync", "root_squash"
    wanted = set()
    for word in options:
        if word in ("rw", "ro"):
            access = word
        elif word in ("sync", "async"):
            sync = word
        elif word in ("root_squash", "no_root_squash"):
            squash = word
        elif word.startswith(("anonuid=", "anongid=", "sec=", "fsid=")) or word in ("all_squash", "insecure", "crossmnt"):
            wanted.add(word)
    return access, sync, squash, wanted


def compare(listing, etab, warnings):
    recorded = {}
    for entry in etab:
        assert (entry.path, entry.host) not in recorded, f"duplicate etab entry {entry}"
        recorded[(entry.path, entry.host)] = entry.options
    expected_keys = set()
    for path, clients in listing.items():
        for client in clients:
            host = client["hosts"] or "*"
            key = (path, host)
            if key not in recorded and _is_dns_name(host):
                assert any(f"Failed to resolve {host}" in w for w in warnings), (key, warnings)
                continue
            assert key in recorded, f"exportfs did not record {key}; etab has {sorted(recorded)}"
            expected_keys.add(key)
            access, sync, squash, extra = _flags(client["options"])
            options = recorded[key]
            assert options[0] == access, (key, client, options)
            assert sync in options and squash in options, (key, client, options)
            for word in extra:
                assert word in options, (key, word, options)
    assert set(recorded) == expected_keys, f"etab has more than we parsed: {set(recorded) - expected_keys}"


def move_into(box, text):
    """Rewrite every path token of ``text`` to a directory under the sandbox (created)."""
    doc = ec.parse(text)
    for entry in reversed(doc.entries):
        target = os.path.normpath(str(box.export_root) + entry.path)
        os.makedirs(target, exist_ok=True)
        token = entry.path_token
        text = text[: token.start] + ec.quote_path(target) + text[token.end :]
    return text


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_etab_matches_list_exports(fixture, tmp_path):
    box = Sandbox.create(tmp_path / "box")
    text = move_into(box, fixture.read_bytes().decode("utf-8"))
    box.write_admin("exports", text)
    errors, warnings = exportfs.reload(str(box.exports_file), str(box.exports_d), str(box.state_dir))
    assert errors == []
    listing = ec.parse(text).list_exports()
    assert ec.read_exports_files(str(box.exports_file), str(box.exports_d)) == listing
    compare(listing, box.etab(), warnings)
    if fixture.name != "debian-default":
        assert box.etab()


def test_fixture_in_exports_d_and_exports_together(tmp_path):
    box = Sandbox.create(tmp_path / "box")
    office = move_into(box, (FIXTURES / "office").read_text())
    example = move_into(box, (FIXTURES / "exports5-example").read_text())
    box.write_admin("exports", office)
    box.write_admin("10-example.exports", example)
    errors, warnings = exportfs.reload(str(box.exports_file), str(box.exports_d), str(box.state_dir))
    assert errors == []
    compare(ec.read_exports_files(str(box.exports_file), str(box.exports_d)), box.etab(), warnings)


@pytest.mark.parametrize(
    "text, world",
    [
        ("{a} 10.0.0.1 (rw)\n", True),
        ("{a}\n", True),
        ("{a} -rw\n", True),
        ("{a} 10.1.0.0/16(rw) # 10.2.0.0/16(rw)\n", False),
    ],
)
def test_world_exports_show_as_empty_host(tmp_path, text, world):
    box = Sandbox.create(tmp_path / "box")
    box.write_admin("exports", text.format(a=box.export_dir("a")))
    errors, warnings = exportfs.reload(str(box.exports_file), str(box.exports_d), str(box.state_dir))
    listing = ec.read_exports_files(str(box.exports_file), None)
    assert any(c["hosts"] == "" for c in listing[box.export_dir("a")]) is world
    etab_hosts = {e.host for e in box.etab()}
    assert bool(etab_hosts & {"*", ""}) is world
    if "(rw)" in text and " (rw)" in text:
        assert any("No host name given" in e for e in errors)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document(root="/ROOT", hosts=NO_DNS_HOSTS, unique_hosts=True))
def test_generated_files_etab_matches_list_exports(case):
    text, expected = case
    for clients in expected.values():
        nets = [ipaddress.ip_network(c["hosts"], strict=False) for c in clients if "/" in c["hosts"]]
        assume(len(nets) == len(set(nets)))
    with tempfile.TemporaryDirectory(prefix="nfskit-diff-") as root:
        box = Sandbox.create(root)
        text = text.replace("/ROOT", str(box.export_root))
        listing = ec.parse(text).list_exports()
        for path in listing:
            os.makedirs(path, exist_ok=True)
        box.write_admin("exports", text)
        errors, warnings = exportfs.reload(str(box.exports_file), str(box.exports_d), str(box.state_dir))
        assert errors == [], (text, errors)
        compare(listing, box.etab(), warnings)
