"""NFSv3 "is this export usable?" probe worker (pure Python, pyNfsClient), run inside a client netns.

    ip netns exec CLIENT_NS python nfsprobe.py SERVER_ADDR

Reads one export path per line on stdin and answers one JSON line per probe on stdout:
``{"ok": bool, "mnt": status, "create": status, "write": status, "s": seconds}``. A probe is a
fresh client: new TCP connections, MNT of the path, then CREATE + WRITE (FILE_SYNC) + REMOVE of a
small file. ``ok`` means the write went through. The program ports come from the server's rpcbind
once, at the first probe.
"""
import itertools
import json
import logging
import os
import socket
import struct
import sys
import time

from pyNfsClient import FILE_SYNC, MNT3_OK, NFS3_OK, NFS_PROGRAM, NFS_V3, UNCHECKED, Mount, NFSv3, Portmap
from pyNfsClient import rpc as _rpc

logging.disable(logging.CRITICAL)  # pyNfsClient logs every failed bind/parse at WARNING/ERROR

# pyNfsClient binds a random privileged source port and retries forever on a clash; with many
# probes in a row the random choice keeps hitting ports in TIME_WAIT. Walk the range instead,
# allow address reuse and close with RST (SO_LINGER 0) so no TIME_WAIT is left.
_PORTS = itertools.cycle(range(600, 1024))


def _connect(self):
    self.client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    self.client.settimeout(self.timeout)
    self.client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # close with RST: no TIME_WAIT left behind on the privileged port
    self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    for _ in range(424):
        port = next(_PORTS)
        try:
            self.client.bind(("", port))
            self.client_port = port
            break
        except OSError:
            continue
    self.client.connect((self.host, self.port))


_rpc.RPC.connect = _connect

HOST = sys.argv[1]
AUTH = {"flavor": 1, "machine_name": socket.gethostname(), "uid": 0, "gid": 0, "aux_gid": []}
PORTS = {}


def ports():
    if not PORTS:
        pm = Portmap(HOST, timeout=5)
        pm.connect()
        try:
            PORTS["mnt"] = pm.getport(Mount.program, Mount.program_version)
            PORTS["nfs"] = pm.getport(NFS_PROGRAM, NFS_V3)
        finally:
            pm.disconnect()
    return PORTS["mnt"], PORTS["nfs"]


def probe(path):
    res = {"ok": False, "mnt": None, "create": None, "write": None}
    mport, nport = ports()
    mount = Mount(host=HOST, port=mport, timeout=5, auth=AUTH)
    mount.connect()
    try:
        reply = mount.mnt(path, AUTH)
        res["mnt"] = reply["status"]
        if reply["status"] != MNT3_OK:
            return res
        fh = reply["mountinfo"]["fhandle"]
        nfs = NFSv3(HOST, nport, 5, AUTH)
        nfs.connect()
        try:
            name = f".nfsprobe-{os.getpid()}"
            created = nfs.create(fh, name, UNCHECKED, mode=0o644, auth=AUTH)
            res["create"] = created["status"]
            if created["status"] != NFS3_OK:
                return res
            handle = created["resok"]["obj"]["handle"]["data"]
            written = nfs.write(handle, 0, 6, b"probe\n", FILE_SYNC, auth=AUTH)
            res["write"] = written["status"]
            nfs.remove(fh, name, auth=AUTH)
            res["ok"] = written["status"] == NFS3_OK
        finally:
            nfs.disconnect()
    finally:
        mount.disconnect()
    return res


def main():
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        start = time.monotonic()
        try:
            res = probe(path)
        except Exception as exc:  # connection refused while the server is busy, bad reply, ...
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        res["s"] = time.monotonic() - start
        _rpc.RPC.connections.clear()
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
