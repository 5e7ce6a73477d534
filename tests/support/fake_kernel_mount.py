#!/usr/bin/env python3
"""Stand-in for ``mount``/``umount`` on a host whose kernel has no NFS client (the VM tier runs the
real ones). It keeps a mountinfo file in the kernel's format and renders options the way
fs/nfs/super.c ``nfs_show_mount_options`` does, written independently of nfskit so the tests do
not check the normaliser against itself:

    fake_kernel_mount.py STATE_DIR mount -t nfs -o vers=4,hard server:/path /mnt/x
    fake_kernel_mount.py STATE_DIR umount -c [-l|-f] /mnt/x

A mount is busy when a real process has its cwd or an open file under it (read from /proc), so
``umount`` without ``-l`` fails as the kernel's EBUSY does. Every call is appended to
``STATE_DIR/calls.log``.
"""
import json
import os
import random
import sys

CLIENT_SIDE = {"defaults", "auto", "noauto", "user", "users", "nouser", "_netdev", "nofail", "bg", "fg", "retry",
               "intr", "nointr", "async", "tls", "iam", "accesspoint", "awsprofile"}


def kernel_options(words, fstype):
    opts = {}
    flags = []
    version, minor = None, None
    for word in words:
        key, _, value = word.partition("=")
        if key in CLIENT_SIDE or key.startswith("x-"):
            continue
        if key in ("vers", "nfsvers"):
            version = value
        elif key == "minorversion":
            minor = value
        elif key in ("tcp", "udp"):
            opts["proto"] = key
        elif key == "lookupcache":
            opts["lookupcache"] = {"positive": "pos", "pos": "pos", "none": "none"}.get(value)
        elif value:
            opts[key] = value
        elif key in ("hard", "rw"):
            flags = [f for f in flags if f not in ("soft", "ro")]
        elif key not in flags:
            flags.append(key)
    if version is None:
        version = "4.2" if fstype in ("nfs", "nfs4") else "4.1"
    if version == "4":
        version = f"4.{minor}" if minor else "4.2"
    v4 = version.startswith("4")
    out = ["ro" if "ro" in flags else "rw", f"vers={version}", f"rsize={min(int(opts.get('rsize', 524288)), 524288)}",
           f"wsize={min(int(opts.get('wsize', 524288)), 524288)}", "namlen=255"]
    for ac, default in (("acregmin", "3"), ("acregmax", "60"), ("acdirmin", "30"), ("acdirmax", "60")):
        if opts.get(ac, opts.get("actimeo", default)) != default:
            out.append(f"{ac}={opts.get(ac, opts.get('actimeo'))}")
    if "soft" not in flags:
        out.append("hard")
    out += [f for f in ("soft", "nolock", "noac", "nocto", "noresvport") if f in flags]
    out.append(f"proto={opts.get('proto', 'tcp')}")
    if "nconnect" in opts:
        out.append(f"nconnect={opts['nconnect']}")
    out += [f"timeo={opts.get('timeo', '600')}", f"retrans={opts.get('retrans', '2')}", f"sec={opts.get('sec', 'sys').split(':')[0]}"]
    if v4:
        out.append("clientaddr=127.0.0.1")
    else:
        out += ["mountaddr=127.0.0.1", "mountvers=3", f"mountport={random.randint(30000, 60000)}", "mountproto=udp"]
    if opts.get("lookupcache"):
        out.append(f"lookupcache={opts['lookupcache']}")
    out += ["local_lock=none", "addr=127.0.0.1"]
    vfs = ["ro" if "ro" in flags else "rw"] + [f for f in ("nosuid", "nodev", "noexec") if f in flags] + ["relatime"]
    return ("nfs4" if v4 else "nfs"), vfs, out


def busy(mount_point):
    prefix = mount_point.rstrip("/") + "/"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == mount_point or cwd.startswith(prefix):
            return True
    return False


def main(argv):
    state, command, args = argv[1], argv[2], argv[3:]
    table = os.path.join(state, "mountinfo")
    with open(os.path.join(state, "calls.log"), "a") as log:
        log.write(json.dumps([command] + args) + "\n")
    lines = open(table).read().splitlines() if os.path.exists(table) else []
    if command == "mount":
        fstype = args[args.index("-t") + 1]
        words = args[args.index("-o") + 1].split(",") if "-o" in args else []
        device, mount_point = args[-2], args[-1]
        if "remount" in words:
            sys.exit("fake mount: -o remount cannot change NFS options")
        if not os.path.isdir(mount_point):
            sys.stderr.write(f"mount.nfs: mount point {mount_point} does not exist\n")
            sys.exit(32)
        kind, vfs, supers = kernel_options(words, fstype)
        if kind == "nfs4":  # the v4 client drops a trailing '/' of the path
            host, _, path = device.rpartition(":")
            device = f"{host}:{path.rstrip('/') or '/'}"
        number = 100 + len(lines) + random.randint(0, 10000)
        lines.append(f"{number} 27 0:{number} / {mount_point.replace(' ', chr(92) + '040')} {','.join(vfs)} shared:{number} - "
                     f"{kind} {device} {','.join(supers)}")
    elif command == "umount":
        mount_point = args[-1]
        mine = [line for line in lines if line.split(" ")[4] == mount_point]
        if not mine:
            sys.stderr.write(f"umount: {mount_point}: not mounted.\n")
            sys.exit(32)
        if "-l" not in args and busy(mount_point):
            sys.stderr.write(f"umount.nfs4: {mount_point}: device is busy\n")
            sys.exit(16)
        lines.remove(mine[-1])
    else:
        sys.exit(f"fake_kernel_mount: unknown command {command}")
    with open(table + ".tmp", "w") as handle:
        handle.write("".join(line + "\n" for line in lines))
    os.replace(table + ".tmp", table)


if __name__ == "__main__":
    main(sys.argv)
