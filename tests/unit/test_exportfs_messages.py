"""Telling exportfs errors from warnings (stderr text as nfs-utils 2.6 prints it)."""
import pytest

from nfskit import exportfs

pytestmark = [pytest.mark.unit]

SUBTREE = (
    "exportfs: /etc/exports.d/a.exports [2]: Neither 'subtree_check' or 'no_subtree_check' specified for export "
    '"10.0.0.0/24:/srv/a".\n'
    "  Assuming default behaviour ('no_subtree_check').\n"
    "  NOTE: this default has changed since nfs-utils version 1.0.x\n"
    "\n"
)


@pytest.mark.parametrize(
    "line",
    [
        'exportfs: /etc/exports:1: unknown keyword "bogusopt"',
        'exportfs: /etc/exports: 7: bad anonuid "anonuid=abc"',
        'exportfs: /etc/exports: 7: bad anongid "anongid=abc"',
        "exportfs: Failed to stat /srv/missing: No such file or directory",
        "exportfs: No host name given with /srv/a (rw), suggest *(rw) to avoid warning",
        "exportfs: /etc/exports:4: syntax error: bad option list",
        "exportfs: /srv/file is not a directory. Remote access will fail",
        "exportfs: /srv/a requires fsid= for NFS export",
        "exportfs: /srv/a does not support NFS export",
        "exportfs: unknown flavor krb6",
        'exportfs: /etc/exports: 2: bad fsid "fsid=zz"',
    ],
)
def test_errors(line):
    errors, warnings = exportfs.classify(line + "\n", 0)
    assert errors and errors[0].startswith(line) and warnings == []


@pytest.mark.parametrize(
    "text",
    [
        "exportfs: Failed to resolve nosuchhost.invalid\n",
        "exportfs: No options for /srv/a 10.0.0.1: suggest 10.0.0.1(sync) to avoid warning\n",
        SUBTREE,
        "exportfs: No 'sync' or 'async' option specified for export \"h:/srv/a\".\n  Assuming default behaviour ('sync').\n",
        "exportfs: something new in a later release\n",
    ],
)
def test_warnings(text):
    errors, warnings = exportfs.classify(text, 0)
    assert errors == [] and len(warnings) == 1


def test_multiline_messages_are_joined_and_repeats_dropped():
    errors, warnings = exportfs.classify(SUBTREE + SUBTREE + "exportfs: Failed to resolve x\n" * 2, 0)
    assert errors == []
    assert warnings == [
        "exportfs: /etc/exports.d/a.exports [2]: Neither 'subtree_check' or 'no_subtree_check' specified for export "
        "\"10.0.0.0/24:/srv/a\". Assuming default behaviour ('no_subtree_check'). NOTE: this default has changed since "
        "nfs-utils version 1.0.x",
        "exportfs: Failed to resolve x",
    ]


def test_world_export_error_explains_itself():
    errors, _ = exportfs.classify("exportfs: No host name given with /srv/a (rw), suggest *(rw) to avoid warning\n", 0)
    assert "every host" in errors[0] and "space before '('" in errors[0]


def test_nonzero_exit_is_an_error_even_without_a_known_message():
    errors, warnings = exportfs.classify("exportfs: something odd\n", 1)
    assert errors == ["exportfs exited with status 1: exportfs: something odd"]
    assert warnings == ["exportfs: something odd"]
    assert exportfs.classify("", 2) == (["exportfs exited with status 2"], [])
    assert exportfs.classify("", 0) == ([], [])
