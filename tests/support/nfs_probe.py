"""NFSv3 probe with pyNfsClient; prints one JSON object. Run it inside a client namespace:

    ip netns exec NS python tests/support/nfs_probe.py --server 10.221.0.1 --path /srv/x \
        --mountport 20048 --nfsport 2049 [--uid 0 --gid 0] [--no-write] [--unprivileged-port]

Steps: MNT the path (13 = denied), CREATE ``.probe-<pid>-<n>`` (30 = read-only, 13 = no
permission), WRITE, GETATTR (the owner the server recorded, i.e. after squashing), REMOVE.

Output keys: ``outcome`` (ok | denied | read-only | rpc-denied | error), ``stage`` (mnt, create,
write, getattr, remove, connect), ``status`` (the NFS/MNT status number), ``uid``/``gid`` of the
created file, ``source_port``, ``elapsed``, ``message``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time


class _RpcErrors(logging.Handler):
    """pyNfsClient logs (and swallows) RPC-level rejections such as AUTH_TOOWEAK: record them."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record):
        if record.levelno >= logging.ERROR:
            self.seen.append(record.getMessage())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--mountport", type=int, required=True)
    parser.add_argument("--nfsport", type=int, required=True)
    parser.add_argument("--uid", type=int, default=0)
    parser.add_argument("--gid", type=int, default=None)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--unprivileged-port", action="store_true", help="connect from an ephemeral port >= 1024")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)

    from pyNfsClient import FILE_SYNC, MNT3_OK, NFS3_OK, UNCHECKED, Mount, NFSv3
    from pyNfsClient import rpc as rpc_module

    errors = _RpcErrors()
    package_logger = logging.getLogger("pyNfsClient")
    package_logger.addHandler(errors)
    package_logger.propagate = False
    if args.unprivileged_port:
        def connect(self):
            self.client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.client.settimeout(self.timeout)
            self.client.bind(("", 0))
            self.client_port = self.client.getsockname()[1]
            self.client.connect((self.host, self.port))
            rpc_module.RPC.connections.append(self)

        rpc_module.RPC.connect = connect

    gid = args.uid if args.gid is None else args.gid
    auth = {"flavor": 1, "machine_name": socket.gethostname(), "uid": args.uid, "gid": gid, "aux_gid": []}
    result: dict = {"outcome": "error", "stage": "connect", "status": None, "uid": None, "gid": None, "message": ""}
    start = time.monotonic()

    def done(outcome: str, stage: str, status=None, message: str = "") -> int:
        result.update(outcome=outcome, stage=stage, status=status, message=message)
        if errors.seen and outcome == "error":
            result["outcome"] = "rpc-denied"
            result["message"] = "; ".join(errors.seen)[-500:]
        result["elapsed"] = round(time.monotonic() - start, 4)
        print(json.dumps(result))
        return 0

    mount = nfs = None
    try:
        mount = Mount(host=args.server, port=args.mountport, timeout=args.timeout, auth=auth)
        mount.connect()
        result["source_port"] = mount.client_port
        result["stage"] = "mnt"
        reply = mount.mnt(args.path, auth)
        if reply["status"] != MNT3_OK:
            return done("denied" if reply["status"] == 13 else "error", "mnt", reply["status"], "MNT3 status %s" % reply["status"])
        handle = reply["mountinfo"]["fhandle"]
        result["stage"] = "nfs-connect"
        nfs = NFSv3(args.server, args.nfsport, args.timeout, auth)
        nfs.connect()
        result["stage"] = "getattr" if args.no_write else "create"
        if args.no_write:
            attrs = nfs.getattr(handle, auth=auth)
            if attrs.get("status") != NFS3_OK:
                return done("denied" if attrs.get("status") == 13 else "error", "getattr", attrs.get("status"))
            return done("ok", "getattr", 0)
        name = ".probe-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
        created = nfs.create(handle, name, UNCHECKED, mode=0o644, auth=auth)
        status = created["status"]
        if status != NFS3_OK:
            outcome = {13: "denied", 1: "denied", 30: "read-only"}.get(status, "error")
            return done(outcome, "create", status, "NFS3 CREATE status %s" % status)
        file_handle = created["resok"]["obj"]["handle"]["data"]
        written = nfs.write(file_handle, 0, 6, b"probe\n", FILE_SYNC, auth=auth)
        if written["status"] != NFS3_OK:
            return done("error", "write", written["status"])
        attrs = nfs.getattr(file_handle, auth=auth)
        result["uid"] = attrs["attributes"]["uid"]
        result["gid"] = attrs["attributes"]["gid"]
        removed = nfs.remove(handle, name, auth=auth)
        if removed["status"] != NFS3_OK:
            return done("error", "remove", removed["status"])
        return done("ok", "remove", 0)
    except Exception as exc:  # report, do not crash: the caller asserts on the outcome
        return done("error", result["stage"], None, f"{type(exc).__name__}: {exc}")
    finally:
        for client in (nfs, mount):
            try:
                if client is not None:
                    client.disconnect()
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())
