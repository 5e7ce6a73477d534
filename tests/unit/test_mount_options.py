"""Option normalisation: what the kernel shows for a mount against what was asked for.

Every remount trigger of the issue's benchmark (core ``mount.mounted`` remounted 15 of 50
unchanged NFS mounts on a Debian 12 kernel) is a case here that must compare equal; real changes
must still be seen.
"""
import pytest

from nfskit import mount_options as mo
from nfskit.errors import InvalidInput
from nfskit.mountinfo import parse_line

pytestmark = [pytest.mark.unit]

KERNEL_V42 = (
    "45 28 0:46 / /mnt/a rw,relatime shared:120 - nfs4 nfs1:/srv/a rw,vers=4.2,rsize=524288,wsize=524288,"
    "namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.2.15,local_lock=none,addr=10.0.2.2"
)
KERNEL_V41 = KERNEL_V42.replace("vers=4.2", "vers=4.1")
KERNEL_V3 = (
    "46 28 0:47 / /mnt/b rw,relatime shared:121 - nfs nfs1:/srv/b rw,vers=3,rsize=524288,wsize=524288,namlen=255,"
    "hard,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.2.2,mountvers=3,mountport=41235,mountproto=udp,"
    "local_lock=none,addr=10.0.2.2"
)
KERNEL_POS = KERNEL_V42.replace("local_lock=none", "lookupcache=pos,local_lock=none")
KERNEL_V6 = KERNEL_V42.replace("proto=tcp", "proto=tcp6").replace("addr=10.0.2.2", "addr=fd00::2")
EFS_TLS = (
    "50 28 0:52 / /mnt/efs rw,relatime - nfs4 127.0.0.1:/ rw,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,"
    "hard,noresvport,proto=tcp,port=20123,timeo=600,retrans=2,sec=sys,clientaddr=127.0.0.1,local_lock=none,addr=127.0.0.1"
)
EFS_DNS = EFS_TLS.replace("127.0.0.1:/", "fs-0123abcd.efs.eu-west-1.amazonaws.com:/").replace(",port=20123", "")


def entry(line):
    return parse_line(line)


def equal(opts, fstype, line, others=()):
    words = mo.split_options(opts)
    comparison = mo.compare(words, fstype, entry(line), [entry(o) for o in others])
    return comparison.equal and mo.fstype_matches(fstype, mo.wanted_version(words, fstype), entry(line).fstype)


@pytest.mark.parametrize(
    "opts, fstype, line",
    [
        # the kernel renames
        ("nfsvers=3", "nfs", KERNEL_V3),
        ("nfsvers=4.2", "nfs", KERNEL_V42),
        ("vers=4", "nfs", KERNEL_V42),
        ("vers=4", "nfs", KERNEL_V41),  # whatever 4.x was negotiated
        ("vers=4,minorversion=1", "nfs", KERNEL_V41),
        ("nfsvers=4,minorversion=1", "nfs4", KERNEL_V41),
        ("v3", "nfs", KERNEL_V3),
        ("lookupcache=positive", "nfs", KERNEL_POS),
        ("lookupcache=pos", "nfs", KERNEL_POS),
        ("lookupcache=all", "nfs", KERNEL_V42),
        ("tcp", "nfs", KERNEL_V42),
        ("proto=tcp", "nfs", KERNEL_V6),
        # the kernel never shows these (client-side, defaults)
        ("async", "nfs", KERNEL_V42),
        ("acregmin=3,acregmax=60,acdirmin=30,acdirmax=60", "nfs", KERNEL_V42),
        ("noauto", "nfs", KERNEL_V42),
        ("x-systemd.automount,x-systemd.mount-timeout=30", "nfs", KERNEL_V42),
        ("_netdev,bg,nofail,user,defaults,retry=2,intr", "nfs", KERNEL_V42),
        ("rw,hard,relatime", "nfs", KERNEL_V42),
        ("cto,ac,lock,acl,rdirplus,sharecache,resvport,suid,dev,exec", "nfs", KERNEL_V42),
        ("port=2049", "nfs4", KERNEL_V42),
        ("sec=krb5p:sys", "nfs", KERNEL_V42),
        # the kernel adds these (not asked for, not compared): mountport changes every boot
        ("vers=3,hard,timeo=600,retrans=2,rsize=524288", "nfs", KERNEL_V3),
        # fstype nfs with a v4 version shows as nfs4
        ("vers=4.2", "nfs", KERNEL_V42),
        ("", "nfs4", KERNEL_V41),
        ("", "nfs", KERNEL_V3),
        # EFS: helper options, tunnel port
        ("tls,iam,_netdev,accesspoint=fsap-0123456789abcdef0,awsprofile=prod", "efs", EFS_TLS),
        ("nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport", "efs", EFS_DNS),
        # the whole lot at once, in a random order
        ("noauto,x-systemd.automount,nfsvers=4,minorversion=1,_netdev,tcp,async,acregmin=3,lookupcache=all", "nfs", KERNEL_V41),
    ],
)
def test_unchanged_mounts_compare_equal(opts, fstype, line):
    assert equal(opts, fstype, line)


@pytest.mark.parametrize(
    "opts, fstype, line, option",
    [
        ("vers=3", "nfs", KERNEL_V42, "vers"),
        ("vers=4.1", "nfs", KERNEL_V42, "vers"),
        ("vers=4,minorversion=1", "nfs", KERNEL_V42, "vers"),
        ("soft", "nfs", KERNEL_V42, "soft"),
        ("ro", "nfs", KERNEL_V42, "ro"),
        ("noac", "nfs", KERNEL_V42, "noac"),
        ("lookupcache=none", "nfs", KERNEL_POS, "lookupcache"),
        ("lookupcache=all", "nfs", KERNEL_POS, "lookupcache"),
        ("nolock", "nfs", KERNEL_V42, "nolock"),
        ("rsize=65536", "nfs", KERNEL_V42, "rsize"),  # the kernel only lowers: higher in effect is a change
        ("timeo=100", "nfs", KERNEL_V42, "timeo"),
        ("proto=udp", "nfs", KERNEL_V42, "proto"),
        ("sec=krb5", "nfs", KERNEL_V42, "sec"),
        ("port=3049", "nfs4", KERNEL_V42, "port"),
        ("nconnect=4", "nfs", KERNEL_V42, "nconnect"),
    ],
)
def test_real_changes_are_seen(opts, fstype, line, option):
    comparison = mo.compare(mo.split_options(opts), fstype, entry(line))
    assert [d.option for d in comparison.differences] == [option]


def test_actimeo_sets_all_four_attribute_cache_times():
    comparison = mo.compare(["actimeo=10"], "nfs", entry(KERNEL_V42))
    assert [d.option for d in comparison.differences] == ["acregmin", "acregmax", "acdirmin", "acdirmax"]
    shown = KERNEL_V42.replace("namlen=255", "namlen=255,acregmin=10,acregmax=10,acdirmin=10,acdirmax=10")
    assert mo.compare(["actimeo=10"], "nfs", entry(shown)).equal


def test_wrong_version_family_is_a_fstype_change():
    assert not mo.fstype_matches("nfs4", "4", "nfs")
    assert not mo.fstype_matches("nfs", "3", "nfs4")
    assert not equal("vers=3", "nfs", KERNEL_V42)


def test_lower_rsize_in_effect_is_noted_not_changed():
    comparison = mo.compare(["rsize=1048576"], "nfs", entry(KERNEL_V42))
    assert comparison.equal
    assert comparison.notes() == ["rsize=1048576 wanted, rsize=524288 in effect (the server or kernel may lower it; not a change)"]


@pytest.mark.parametrize("opts", ["timeo=100", "retrans=5", "nconnect=4", "noresvport"])
def test_options_shared_with_another_mount_of_the_server_are_reported_not_changed(opts):
    first = KERNEL_V42.replace("/mnt/a", "/mnt/first").replace("45 28 0:46", "40 28 0:40")
    comparison = mo.compare(mo.split_options(opts), "nfs", entry(KERNEL_V42), [entry(first)])
    assert comparison.equal
    assert [d.shared_with for d in comparison.shared] == [("/mnt/first",)]
    assert "shared with /mnt/first from the same server" in comparison.notes()[0]


def test_sharing_needs_the_same_server_and_version():
    other_server = KERNEL_V42.replace("/mnt/a", "/mnt/o").replace("addr=10.0.2.2", "addr=10.0.2.3").replace("0:46", "0:90")
    other_version = KERNEL_V41.replace("/mnt/a", "/mnt/o").replace("0:46", "0:91")
    for other in (other_server, other_version):
        assert not mo.compare(["timeo=100"], "nfs", entry(KERNEL_V42), [entry(other)]).equal
    # soft is per superblock: a different superblock of the same server does not pin it
    same_server = KERNEL_V42.replace("/mnt/a", "/mnt/o").replace("0:46", "0:92")
    assert not mo.compare(["soft"], "nfs", entry(KERNEL_V42), [entry(same_server)]).equal


def test_later_words_win_as_for_mount():
    assert mo.compare(["ro", "rw"], "nfs", entry(KERNEL_V42)).equal
    assert mo.compare(["hard", "soft"], "nfs", entry(KERNEL_V42)).differences[0].option == "soft"
    assert mo.compare(["soft", "hard"], "nfs", entry(KERNEL_V42)).equal


def test_hidden_opts_are_never_compared():
    assert not mo.compare(["fancyhelperopt"], "nfs", entry(KERNEL_V42)).equal
    assert mo.compare(["fancyhelperopt"], "nfs", entry(KERNEL_V42), hidden=["fancyhelperopt"]).equal


def test_normalise_shows_what_the_kernel_would_show():
    assert mo.normalise(["nfsvers=4", "minorversion=1", "tcp", "async", "noauto", "lookupcache=positive"]) == [
        "vers=4.1", "proto=tcp", "lookupcache=pos",
    ]
    assert mo.normalise(["acregmin=3", "actimeo=10", "defaults"]) == ["acregmin=10", "acregmax=10", "acdirmin=10", "acdirmax=10"]


@pytest.mark.parametrize(
    "device, fstype, line, same",
    [
        ("nfs1:/srv/a/", "nfs", KERNEL_V42, True),  # the kernel drops the trailing /
        ("nfs1:/srv//a", "nfs", KERNEL_V42, True),
        ("NFS1:/srv/a", "nfs", KERNEL_V42, True),
        ("10.0.2.2:/srv/a", "nfs", KERNEL_V42, True),  # an IP literal matches the kernel's addr=
        ("nfs1:/srv/b", "nfs", KERNEL_V42, False),
        ("nfs2:/srv/a", "nfs", KERNEL_V42, False),
        ("fs-0123abcd:/", "efs", EFS_DNS, True),
        ("fs-0123abcd", "efs", EFS_DNS, True),
        ("fs-ffffffff:/", "efs", EFS_DNS, False),
        ("fs-0123abcd:/", "efs", EFS_TLS, True),  # tls: the local tunnel shows as 127.0.0.1:/
    ],
)
def test_device_canonicalisation(device, fstype, line, same):
    words = ["tls"] if "127.0.0.1" in line else []
    assert mo.device_matches(device, fstype, words, entry(line)) is same


def test_efs_tunnel_needs_tls_to_match():
    assert not mo.device_matches("fs-0123abcd:/", "efs", [], entry(EFS_TLS))


@pytest.mark.parametrize(
    "device, message",
    [
        ("nfs1:/srv a", "contains whitespace"),
        ("nfs1:/srv\n/x", "contains whitespace"),
        ("nfs1:/srv#x", "contains '#'"),
        ("nfs1", "is not server:/path"),
        ("nfs1:srv", "not absolute"),
        ("bad host:/x", "whitespace"),
        ("fe80::1:/x", "IPv6 server without brackets"),
        ("nfs_1..x:/x", "not a host name or IP address"),
        ("", "is missing"),
    ],
)
def test_bad_devices_are_refused_naming_the_field(device, message):
    with pytest.raises(InvalidInput, match="^device: .*" + message):
        mo.check_device(device, "nfs")


def test_ipv6_and_efs_devices_are_accepted():
    assert mo.check_device("[fd00::2]:/srv", "nfs") == "[fd00::2]:/srv"
    assert mo.canonical_device("[FD00::2]:/srv/") == "[fd00::2]:/srv"
    assert mo.check_device("fs-0123456789abcdef0", "efs") == "fs-0123456789abcdef0"


@pytest.mark.parametrize("opts, message", [("rw,vers=4 2", "whitespace"), (["rw", "a#b"], "'#'"), (["rw", 3], "is not a string")])
def test_bad_options_are_refused_naming_the_word(opts, message):
    with pytest.raises(InvalidInput, match=r"^opts\[1\]: .*" + message):
        mo.split_options(opts)
