"""NFS-Ganesha's DBus ExportMgr (``org.ganesha.nfsd``), spoken with pure-Python jeepney.

Ganesha reports some failures as *successful* replies: ``AddExport`` of a block with an unknown
option value answers ``"1 exports added. Errors found: ..."`` (and adds the export). Every reply
whose text contains ``Errors found`` is therefore raised as :class:`GaneshaCallError`, like DBus
error replies. ``ganesha_mgr`` exits 0 in both cases, which is why this module exists.

Connection problems (no bus socket, nobody owns ``org.ganesha.nfsd``) raise
:class:`DBusUnavailable`, so a caller can fall back to another reload method; both are
:class:`nfskit.errors.BackendError`. A call that does not answer in time raises
:class:`nfskit.errors.OperationTimeout`.
"""
from __future__ import annotations

import os
from typing import Any, Optional

from nfskit.errors import BackendError, OperationTimeout

BUS_NAME = "org.ganesha.nfsd"
EXPORTMGR_PATH = "/org/ganesha/nfsd/ExportMgr"
EXPORTMGR_INTERFACE = "org.ganesha.nfsd.exportmgr"
DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"
DEFAULT_TIMEOUT = 60.0
_UNAVAILABLE_ERRORS = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoServer",
    "org.freedesktop.DBus.Error.Disconnected",
}


class DBusUnavailable(BackendError):
    """The bus or ganesha on it cannot be reached (nothing was changed)."""


class GaneshaCallError(BackendError):
    """Ganesha answered a call with an error (or with 'Errors found' in a success reply)."""

    def __init__(self, method: str, message: str, error_name: str = ""):
        message = " ".join(message.split())
        self.method = method
        self.ganesha_message = message
        self.error_name = error_name
        super().__init__(f"ganesha {method} failed: {message}" + (f" ({error_name})" if error_name else ""))


def bus_address(address: Optional[str] = None) -> str:
    """The bus to use: ``address``, else ``DBUS_SYSTEM_BUS_ADDRESS``, else the system bus."""
    return address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


class GaneshaDBus:
    """A connection to ganesha's ExportMgr. Use as a context manager or call :meth:`close`.

    ``address`` is a DBus address (``unix:path=...``); ``timeout`` bounds each call (seconds).
    """

    def __init__(self, address: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = 5.0):
        self.address = bus_address(address)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._conn = None

    def __enter__(self) -> "GaneshaDBus":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> "GaneshaDBus":
        if self._conn is not None:
            return self
        from jeepney.io.blocking import open_dbus_connection

        try:
            self._conn = open_dbus_connection(bus=self.address, auth_timeout=self.connect_timeout)
        except (OSError, TimeoutError, RuntimeError, ValueError, KeyError) as exc:
            raise DBusUnavailable(f"cannot connect to DBus at {self.address}: {exc}") from None
        except Exception as exc:  # jeepney AuthenticationError and friends
            raise DBusUnavailable(f"cannot connect to DBus at {self.address}: {type(exc).__name__}: {exc}") from None
        return self

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _call(self, method: str, signature: Optional[str] = None, body: tuple = (), timeout: Optional[float] = None) -> tuple:
        from jeepney import DBusAddress, MessageType, new_method_call

        self.connect()
        target = DBusAddress(EXPORTMGR_PATH, bus_name=BUS_NAME, interface=EXPORTMGR_INTERFACE)
        message = new_method_call(target, method, signature, body)
        try:
            reply = self._conn.send_and_get_reply(message, timeout=self.timeout if timeout is None else timeout)
        except TimeoutError:
            self.close()  # a late reply must not be read as the answer to the next call
            raise OperationTimeout(f"ganesha {method} did not answer within {self.timeout if timeout is None else timeout} s") from None
        except (OSError, EOFError, ConnectionError) as exc:
            self.close()
            raise DBusUnavailable(f"DBus connection to {self.address} failed during {method}: {exc}") from None
        if reply.header.message_type == MessageType.error:
            from jeepney import HeaderFields

            name = str(reply.header.fields.get(HeaderFields.error_name, ""))
            text = " ".join(str(part) for part in reply.body) if reply.body else name
            if name in _UNAVAILABLE_ERRORS:
                raise DBusUnavailable(f"ganesha is not on the bus at {self.address}: {text}")
            raise GaneshaCallError(method, text, name)
        return tuple(reply.body)

    @staticmethod
    def _check_text(method: str, body: tuple) -> str:
        text = " ".join(str(part) for part in body if isinstance(part, str))
        if "Errors found" in text:
            raise GaneshaCallError(method, text)
        return text

    def add_export(self, conf_file: str, export_id: int) -> str:
        """Load the EXPORT with ``export_id`` from ``conf_file``; returns ganesha's message."""
        body = self._call("AddExport", "ss", (str(conf_file), f"EXPORT(Export_Id={int(export_id)})"))
        return self._check_text("AddExport", body)

    def update_export(self, conf_file: str, export_id: int) -> str:
        """Re-read the EXPORT with ``export_id`` from ``conf_file`` and swap it in."""
        body = self._call("UpdateExport", "ss", (str(conf_file), f"EXPORT(Export_Id={int(export_id)})"))
        return self._check_text("UpdateExport", body)

    def remove_export(self, export_id: int) -> None:
        """Unexport ``export_id`` at once."""
        body = self._call("RemoveExport", "q", (int(export_id),))
        self._check_text("RemoveExport", body)

    def show_exports(self) -> list[dict[str, Any]]:
        """The exports ganesha serves: ``[{"id": 1000, "path": "/srv/x", "protocols": {"NFSv3": True, ...}}]``.

        Ganesha 4.3 answers ``(timestamp, [(id, path, ((protocol, active), ...), (sec, nsec)), ...])``;
        the protocol flags are "was used since start", not "allowed".
        """
        body = self._call("ShowExports")
        exports = body[1] if len(body) > 1 else []
        out = []
        for entry in exports:
            item: dict[str, Any] = {"id": int(entry[0]), "path": str(entry[1]), "protocols": {}}
            if len(entry) > 2 and isinstance(entry[2], (list, tuple)):
                for pair in entry[2]:
                    if isinstance(pair, (list, tuple)) and len(pair) == 2:
                        item["protocols"][str(pair[0])] = bool(pair[1])
            out.append(item)
        return out

    def display_export(self, export_id: int) -> dict[str, Any]:
        """``DisplayExport``: id, path, pseudo and tag of one export."""
        body = self._call("DisplayExport", "q", (int(export_id),))
        keys = ("id", "path", "pseudo", "tag")
        return {key: value for key, value in zip(keys, body)}


def add_export(conf_file: str, export_id: int, address: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    with GaneshaDBus(address, timeout) as bus:
        return bus.add_export(conf_file, export_id)


def update_export(conf_file: str, export_id: int, address: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    with GaneshaDBus(address, timeout) as bus:
        return bus.update_export(conf_file, export_id)


def remove_export(export_id: int, address: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT) -> None:
    with GaneshaDBus(address, timeout) as bus:
        bus.remove_export(export_id)


def show_exports(address: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    with GaneshaDBus(address, timeout) as bus:
        return bus.show_exports()
