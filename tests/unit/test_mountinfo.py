"""The mountinfo parser: proc(5) lines as the kernel writes them, escapes and optional fields included.

The NFS lines follow fs/nfs/super.c ``nfs_show_mount_options`` on a Debian 12 kernel (v4.2 shows
``clientaddr=``, v3 the ``mount*=`` options). Lines captured from real kernels by the VM tier land
in tests/fixtures/mountinfo/ and are parsed here too.
"""
import shlex
from pathlib import Path

import pytest

from nfskit import mount_options as mo
from nfskit import mountinfo
from nfskit.errors import BackendError

pytestmark = [pytest.mark.unit]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mountinfo"

V42 = (
    "45 28 0:46 / /mnt/nfs rw,relatime shared:120 - nfs4 192.168.77.1:/srv/nfs/share "
    "rw,vers=4.2,rsize=524288,wsize=524288,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,"
    "clientaddr=192.168.77.2,local_lock=none,addr=192.168.77.1"
)
V3 = (
    "46 28 0:47 / /mnt/my\\040data rw,nosuid,relatime shared:121 master:3 - nfs 192.168.77.1:/srv/nfs/share "
    "rw,vers=3,rsize=524288,wsize=524288,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,"
    "mountaddr=192.168.77.1,mountvers=3,mountport=41235,mountproto=udp,local_lock=none,addr=192.168.77.1"
)
TABLE = "\n".join([
    "22 27 0:21 / /proc rw,relatime - proc proc rw",
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard",
    V42,
    V3,
    "60 27 0:50 / /run/empty rw - tmpfs  rw,size=4k",
    "61 45 0:51 / /mnt/nfs rw,relatime - nfs4 10.0.0.9:/over rw,vers=4.1,addr=10.0.0.9",
]) + "\n"


def test_nfs4_line_fields():
    entry = mountinfo.parse_line(V42)
    assert (entry.mount_id, entry.parent_id, entry.device_id, entry.root) == (45, 28, "0:46", "/")
    assert entry.mount_point == "/mnt/nfs" and entry.fstype == "nfs4" and entry.is_nfs
    assert entry.source == "192.168.77.1:/srv/nfs/share"
    assert entry.mount_options == ("rw", "relatime")
    assert entry.optional_fields == ("shared:120",)
    assert entry.option_value("vers") == "4.2" and entry.option_value("addr") == "192.168.77.1"
    assert entry.option_value("mountport") is None


def test_escapes_several_optional_fields_and_merged_options():
    entry = mountinfo.parse_line(V3)
    assert entry.mount_point == "/mnt/my data"
    assert entry.optional_fields == ("shared:121", "master:3")
    assert entry.options[:4] == ("rw", "nosuid", "relatime", "vers=3")  # 'rw' once, as /proc/mounts shows
    assert entry.option_value("mountport") == "41235"


def test_empty_source_and_no_optional_fields():
    entry = mountinfo.parse(TABLE)[4]
    assert entry.fstype == "tmpfs" and entry.source == "" and entry.super_options == ("rw", "size=4k")
    assert entry.optional_fields == ()


def test_escaped_backslash_tab_and_newline():
    entry = mountinfo.parse_line("70 27 0:60 /a\\134b /mnt/t\\011ab\\012nl rw - nfs h:/x\\040y rw,vers=3")
    assert entry.root == "/a\\b" and entry.mount_point == "/mnt/t\tab\nnl" and entry.source == "h:/x y"


def test_find_returns_the_top_of_a_stack_and_visible_lists_each_point_once():
    entries = mountinfo.parse(TABLE)
    assert mountinfo.find(entries, "/mnt/nfs").source == "10.0.0.9:/over"
    assert mountinfo.find(entries, "/mnt/none") is None
    assert list(mountinfo.visible(entries)) == ["/proc", "/", "/mnt/nfs", "/mnt/my data", "/run/empty"]


@pytest.mark.parametrize("line", ["45 28 0:46 / /mnt rw", "x 28 0:46 / /mnt rw - nfs a:/b rw", "45 28 0:46 / /mnt rw - nfs"])
def test_malformed_lines_raise_naming_the_line(line):
    with pytest.raises(BackendError, match="mountinfo:1"):
        mountinfo.parse(line + "\n")


def test_read_a_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="cannot read the mount table"):
        mountinfo.read(str(tmp_path / "nope"))


def test_read_the_real_table_of_this_process():
    entries = mountinfo.read()
    assert mountinfo.find(entries, "/") is not None


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.mountinfo")), ids=lambda p: p.name)
def test_captured_kernel_tables_parse(path):
    entries = mountinfo.parse(path.read_text(), path.name)
    assert entries
    for entry in entries:
        if entry.is_nfs:
            assert entry.option_value("vers") is not None and entry.option_value("addr") is not None


def _captured_commands():
    """``(fixture, device, mount point, option words)`` for every mount in the *.commands files."""
    for path in sorted(FIXTURES.glob("*.commands")):
        for line in path.read_text().splitlines():
            if line.startswith("mount "):
                words = shlex.split(line)
                yield path.stem, words[-2], words[-1], words[words.index("-o") + 1].split(",")


@pytest.mark.parametrize("fixture, device, mount_point, words", list(_captured_commands()), ids=lambda v: str(v))
def test_what_was_asked_matches_what_a_real_kernel_shows(fixture, device, mount_point, words):
    """The remount triggers of core mount.mounted, on lines captured from a Debian 12 kernel:
    every option as it was asked for compares equal (or shared/capped, never a change)."""
    entries = mountinfo.parse((FIXTURES / f"{fixture}.mountinfo").read_text(), fixture)
    entry = mountinfo.find(entries, mount_point)
    assert entry is not None, mount_point
    others = [e for e in entries if e is not entry]
    assert mo.device_matches(device, "nfs", words, entry)
    comparison = mo.compare(words, "nfs", entry, others)
    assert comparison.equal, comparison.differences
