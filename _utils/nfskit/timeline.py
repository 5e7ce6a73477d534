"""Durable timeline of each self-service request: one append-only JSON-lines file per request id.

Steps, in the order a request normally passes them: ``validated`` (accepted at the edge),
``committed`` and ``pushed`` (in the data repo), then ``applied`` and ``verified`` (reported by the
orchestration), or ``failed`` at any point. The first line holds who asked and for which team, so
:meth:`Timeline.read` can answer another team's request id exactly like an unknown one.
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from nfskit.errors import InvalidInput, NotFound

STEPS = ("validated", "committed", "pushed", "applied", "verified", "failed")
_ID = re.compile(r"[0-9a-f]{32}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def check_request_id(value: object, field: str = "request_id") -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(field, value, "is not a request id (32 hex digits, as returned by the request)")
    return value


class Timeline:
    def __init__(self, directory: os.PathLike | str):
        self.directory = Path(directory)

    def _path(self, request_id: str) -> Path:
        return self.directory / request_id[:2] / f"{request_id}.jsonl"

    def record(self, request_id: str, step: str, **data: Any) -> None:
        """Append a step. One ``write`` of one line in append mode, so concurrent writers never interleave."""
        if step not in STEPS:
            raise InvalidInput("step", step, "is not a step; steps: " + ", ".join(STEPS))
        path = self._path(request_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"step": step, "time": round(time.time(), 3), **data}, sort_keys=True, default=str) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def read(self, request_id: str, team: Optional[str]) -> list[dict[str, Any]]:
        """The steps of a request of ``team`` (None: any team, for admins)."""
        check_request_id(request_id)
        try:
            lines = self._path(request_id).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise NotFound(f"request_id: request {request_id} does not exist") from None
        steps = [json.loads(line) for line in lines if line.strip()]
        if not steps or (team is not None and steps[0].get("team") != team):
            raise NotFound(f"request_id: request {request_id} does not exist")
        return steps
