"""The fstab codec: every byte it did not change survives, hostile fields never reach the file."""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfskit import fstab_codec as fc
from nfskit.errors import Conflict, InvalidInput

pytestmark = [pytest.mark.unit]

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

DEBIAN = (
    b"# /etc/fstab: static file system information.\n"
    b"#\n"
    b"# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n"
    b"UUID=0b1c-42 /               ext4    errors=remount-ro 0       1\n"
    b"\n"
    b"/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n"
    b"nfs1:/srv/home\t/home\tnfs\tvers=4.2,_netdev\t0\t0\r\n"
    b"# caf\xe9 latin-1 comment, not UTF-8\n"
    b"/srv/my\\040disk /mnt/my\\040disk none bind 0 0\n"
    b"broken line\n"
    b"tmpfs /tmp tmpfs defaults"
)


def test_parse_reads_entries_and_keeps_everything():
    doc = fc.FstabDocument(DEBIAN)
    assert doc.render() == DEBIAN
    points = [entry.mount_point for entry in doc.entries()]
    assert points == ["/", "/media/cdrom0", "/home", "/tmp"]  # the \040 line is kept but never matched
    home = doc.find("/home")
    assert (home.device, home.fstype, home.options, home.dump, home.pass_num) == ("nfs1:/srv/home", "nfs", ("vers=4.2", "_netdev"), 0, 0)
    assert doc.find("/tmp").options == ("defaults",)


def test_change_touches_only_its_line_and_keeps_its_crlf():
    doc = fc.FstabDocument(DEBIAN)
    assert doc.set_entry(fc.FstabEntry("nfs1:/srv/home", "/home", "nfs", ("vers=3",))) == "change"
    before, _, after = DEBIAN.partition(b"nfs1:/srv/home\t/home\tnfs\tvers=4.2,_netdev\t0\t0\r\n")
    assert doc.render() == before + b"nfs1:/srv/home /home nfs vers=3 0 0\r\n" + after


def test_present_ignores_option_order():
    doc = fc.FstabDocument(DEBIAN)
    assert doc.set_entry(fc.FstabEntry("nfs1:/srv/home", "/home", "nfs", ("_netdev", "vers=4.2"))) == "present"
    assert doc.render() == DEBIAN


def test_new_entry_on_a_file_without_final_newline():
    doc = fc.FstabDocument(DEBIAN)
    assert doc.set_entry(fc.FstabEntry("nfs1:/srv/a", "/mnt/a", "nfs4", ("hard",))) == "new"
    assert doc.render() == DEBIAN + b"\nnfs1:/srv/a /mnt/a nfs4 hard 0 0\n"
    assert doc.remove("/mnt/a").device == "nfs1:/srv/a"
    assert doc.render() == DEBIAN + b"\n"
    assert doc.remove("/mnt/a") is None


def test_duplicate_mount_points_are_a_conflict():
    doc = fc.FstabDocument(b"a:/x /mnt nfs defaults 0 0\nb:/y /mnt nfs defaults 0 0\n")
    with pytest.raises(Conflict, match="2 entries for /mnt"):
        doc.set_entry(fc.FstabEntry("c:/z", "/mnt", "nfs"))
    with pytest.raises(Conflict):
        doc.remove("/mnt")


HOSTILE = [
    ({"device": "nfs1:/x /etc nfs rw 0 0\n#"}, "device: .* contains whitespace"),
    ({"device": "nfs1:/x\x00"}, "device: .* contains a NUL byte"),
    ({"device": "nfs1:/x#c"}, "device: .* contains '#'"),
    ({"mount_point": "/mnt/a b"}, "name: .* contains whitespace"),
    ({"mount_point": "/mnt/a\nb"}, "name: .* contains a newline"),
    ({"mount_point": "mnt"}, "name: 'mnt' is not an absolute path"),
    ({"options": ("rw", "a b")}, r"opts\[1\]: .* contains whitespace"),
    ({"options": ("rw", "x#y")}, r"opts\[1\]: .* contains '#'"),
    ({"options": ("rw,ro",)}, r"opts\[0\]: .* contains ','"),
    ({"options": ()}, "opts: .* is empty"),
    ({"fstype": "nfs\t"}, "fstype: .* contains whitespace"),
    ({"dump": 10}, "dump: 10 must be a number from 0 to 9"),
    ({"pass_num": "1"}, "pass_num: '1' must be a number"),
]


@pytest.mark.parametrize("change, message", HOSTILE)
def test_hostile_fields_are_refused_and_the_file_stays_identical(tmp_path, change, message):
    path = tmp_path / "fstab"
    path.write_bytes(DEBIAN)
    fields = {"device": "nfs1:/srv/a", "mount_point": "/mnt/a", "fstype": "nfs", "options": ("defaults",), **change}
    with pytest.raises(InvalidInput, match="^" + message):
        doc, _ = fc.read(str(path))
        doc.set_entry(fc.FstabEntry(**fields))
        fc.write_atomic(str(path), doc.render())
    assert path.read_bytes() == DEBIAN
    assert os.listdir(tmp_path) == ["fstab"]


def test_write_atomic_keeps_mode_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "fstab"
    path.write_bytes(DEBIAN)
    os.chmod(path, 0o600)
    doc, _ = fc.read(str(path))
    doc.set_entry(fc.FstabEntry("nfs1:/srv/a", "/mnt/a", "nfs"))
    fc.write_atomic(str(path), doc.render())
    assert path.read_bytes().startswith(DEBIAN)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["fstab"]


def test_a_missing_file_reads_empty_and_is_created_0644(tmp_path):
    path = tmp_path / "fstab"
    doc, data = fc.read(str(path))
    assert data == b"" and doc.entries() == []
    doc.set_entry(fc.FstabEntry("nfs1:/srv/a", "/mnt/a", "nfs"))
    fc.write_atomic(str(path), doc.render())
    assert path.read_bytes() == b"nfs1:/srv/a /mnt/a nfs defaults 0 0\n"
    assert os.stat(path).st_mode & 0o777 == 0o644


# ---- generated files ------------------------------------------------------------------------

_word = st.text(st.sampled_from("abcxyz019_-.=:/"), min_size=1, max_size=8)
_space = st.sampled_from([b" ", b"\t", b"  ", b" \t "])
_ending = st.sampled_from([b"\n", b"\r\n"])


@st.composite
def _entry_line(draw):
    point = "/" + draw(st.text(st.sampled_from("abc019_-"), min_size=1, max_size=6))
    fields = [draw(_word) + ":/" + draw(_word), point, draw(st.sampled_from(["nfs", "nfs4", "ext4"]))]
    fields.append(",".join(draw(st.lists(_word, min_size=1, max_size=3))))
    fields += [str(n) for n in draw(st.lists(st.integers(0, 2), max_size=2))]
    gap = draw(_space)
    return point, draw(st.sampled_from([b"", b" "])) + gap.join(f.encode() for f in fields) + draw(st.sampled_from([b"", b" "]))


@st.composite
def fstab_files(draw):
    lines, points = [], []
    for kind in draw(st.lists(st.sampled_from(["entry", "comment", "blank", "junk"]), max_size=12)):
        if kind == "entry":
            point, raw = draw(_entry_line())
            if point in points:
                continue
            points.append(point)
        elif kind == "comment":
            raw = draw(st.sampled_from([b"#", b"  #"])) + draw(st.binary(max_size=20)).replace(b"\n", b"").replace(b"\r", b"")
        elif kind == "blank":
            raw = draw(st.sampled_from([b"", b"  ", b"\t"]))
        else:
            raw = b"junk"
        lines.append(raw + draw(_ending))
    data = b"".join(lines)
    if data and draw(st.booleans()):
        data = data.rstrip(b"\r\n")
    return data, points


@SETTINGS
@given(fstab_files())
def test_generated_files_render_unchanged_and_list_their_entries(case):
    data, points = case
    doc = fc.FstabDocument(data)
    assert doc.render() == data
    assert [e.mount_point for e in doc.entries()] == points


@SETTINGS
@given(fstab_files(), st.sampled_from(["nfs", "nfs4"]), st.lists(_word, min_size=1, max_size=3))
def test_add_then_remove_restores_the_file(case, fstype, options):
    data, points = case
    doc = fc.FstabDocument(data)
    assert doc.set_entry(fc.FstabEntry("srv:/new", "/nfskit-new", fstype, tuple(options))) == "new"
    rendered = doc.render()
    terminated = data if data.endswith(b"\n") or not data else data + b"\n"
    assert rendered.startswith(terminated) and rendered[len(terminated):].endswith(b"\n")
    assert fc.FstabDocument(rendered).find("/nfskit-new").options == tuple(options)
    doc.remove("/nfskit-new")
    assert doc.render() == terminated


@SETTINGS
@given(fstab_files())
def test_changing_one_entry_touches_only_its_line(case):
    data, points = case
    if not points:
        return
    doc = fc.FstabDocument(data)
    target = points[0]
    doc.set_entry(fc.FstabEntry("changed:/x", target, "nfs", ("vers=3",)))
    old_lines, new_lines = data.splitlines(keepends=True), doc.render().splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    differing = [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
    assert len(differing) <= 1
    for i in differing:
        assert new_lines[i].startswith(b"changed:/x " + target.encode())
        assert new_lines[i][-1:] == old_lines[i][-1:] or not old_lines[i].endswith(b"\n")


@SETTINGS
@given(fstab_files(), st.sampled_from(["device", "mount_point", "options"]), st.sampled_from([" ", "\n", "\x00", "#", "\t", "\\"]))
def test_hostile_characters_never_reach_the_file(tmp_path_factory, case, field, char):
    data, _ = case
    directory = tmp_path_factory.mktemp("fstab")
    path = directory / "fstab"
    path.write_bytes(data)
    fields = {"device": "srv:/x", "mount_point": "/mnt/x", "fstype": "nfs", "options": ("rw",)}
    fields[field] = ("rw", f"a{char}b") if field == "options" else fields[field] + char + "y"
    with pytest.raises(InvalidInput):
        doc, _ = fc.read(str(path))
        doc.set_entry(fc.FstabEntry(**fields))
        fc.write_atomic(str(path), doc.render())
    assert path.read_bytes() == data
    assert os.listdir(directory) == ["fstab"]
