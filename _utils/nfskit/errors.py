"""The one exception hierarchy of nfskit.

Execution modules turn :class:`InvalidInput` into ``SaltInvocationError`` and every other
:class:`NfsKitError` into ``CommandExecutionError``; states turn both into ``result: False``
with the message as the comment.
"""
from __future__ import annotations


class NfsKitError(Exception):
    """Base of every error nfskit raises on purpose."""


class InvalidInput(NfsKitError):
    """A value given by a user is not acceptable; nothing was written.

    ``field`` names where the value came from (``clients[1].hosts``), ``value`` is the offending
    value and ``problem`` says what is wrong and what is allowed.
    """

    def __init__(self, field: str, value: object, problem: str):
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{field}: {_show(value)} {problem}")


class Conflict(NfsKitError):
    """The request contradicts existing state (e.g. a path managed by someone else)."""


class BackendError(NfsKitError):
    """An NFS server tool refused or failed (exportfs, ganesha, DBus)."""


class OperationTimeout(NfsKitError):
    """An operation did not finish within its time limit."""


class NotFound(NfsKitError):
    """The named thing does not exist, or belongs to another team (both get the same answer)."""


class PermissionDenied(NfsKitError):
    """The requester may not use the self-service at all (not a member of any team)."""


class StoreError(NfsKitError):
    """The storage data repo could not be read or updated (clone, fetch, push); nothing was applied.

    Messages never carry credentials: URLs are redacted before they reach one.
    """


def _show(value: object) -> str:
    """Render a hostile value safely for a message: repr escapes newlines, NULs and quotes."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
