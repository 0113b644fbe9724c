"""The shop's server side, read from its send log as it grows.

:class:`SendLogTail` remembers the file's size when the rehearsal starts and, at every :meth:`poll`
(the runner polls at least once a second), reads the complete lines appended since. A line is a
send-log record (``docs/send-log.md``: ``request``/``body``, ``http_status``/``status``/``status_code``,
``response``/``response_body``) or a bare request body ``{"data": [...]}`` (no answer known). Lines
that are neither are counted in ``malformed``, never fatal. Only the fields below are kept: an
``access_token`` or ``appsecret_proof`` a third-party log holds is never read.

The records go to a :class:`SendFeed`; a future recording relay in front of the Graph API can feed
the same object with :meth:`SendFeed.add_record` instead of a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capi_diag.core.errors import UsageError

_SECRET_KEYS = ("access_token", "appsecret_proof")


@dataclass
class ServerEvent:
    """One event of one request the shop's server sent, with Meta's answer to the request."""

    event: dict[str, Any]
    test_event_code: str | None
    http_status: int | None
    response: dict[str, Any] | None
    at: float
    answered: bool = True

    @property
    def event_name(self) -> str | None:
        v = self.event.get("event_name")
        return str(v) if v not in (None, "") else None

    @property
    def event_id(self) -> str | None:
        v = self.event.get("event_id")
        return str(v) if v not in (None, "") else None

    @property
    def error(self) -> dict[str, Any] | None:
        """Meta's error when it refused the request (a non-2xx or an ``error`` body), else None."""
        if not self.answered:
            return None
        err = (self.response or {}).get("error") if isinstance(self.response, dict) else None
        if isinstance(err, dict):
            return err
        if self.http_status is not None and not 200 <= self.http_status < 300:
            return {"message": f"HTTP {self.http_status}"}
        return None


def _status(rec: dict[str, Any]) -> int | None:
    for key in ("http_status", "status", "status_code"):
        v = rec.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().isdigit():
            return int(v)
    return None


def events_of(rec: Any, at: float) -> list[ServerEvent] | None:
    """The events of one send-log line (``None`` when it is not a send-log record nor a body)."""
    if not isinstance(rec, dict):
        return None
    body = rec.get("request", rec.get("body"))
    answered = True
    if not isinstance(body, dict):
        if isinstance(rec.get("data"), list):
            body, answered = rec, False
        else:
            return None
    data = body.get("data")
    if not isinstance(data, list):
        return None
    response = rec.get("response", rec.get("response_body")) if answered else None
    if isinstance(response, str):
        try:
            response = json.loads(response)
        except ValueError:
            response = {"error": {"message": response[:200]}}
    code = body.get("test_event_code")
    out = []
    for ev in data:
        if not isinstance(ev, dict):
            continue
        ev = {k: v for k, v in ev.items() if k not in _SECRET_KEYS}
        out.append(ServerEvent(event=ev, test_event_code=str(code) if code not in (None, "") else None,
                               http_status=_status(rec) if answered else None,
                               response=response if isinstance(response, dict) else None, at=at,
                               answered=answered))
    return out


class SendFeed:
    """The server events seen so far, in arrival order."""

    def __init__(self) -> None:
        self.events: list[ServerEvent] = []
        self.malformed = 0
        self.lines = 0

    def add_record(self, rec: Any, at: float) -> list[ServerEvent]:
        """Add one send-log record (or bare body); a record that is neither is counted as malformed."""
        self.lines += 1
        evs = events_of(rec, at)
        if evs is None:
            self.malformed += 1
            return []
        self.events.extend(evs)
        return evs

    def add_line(self, line: str, at: float) -> list[ServerEvent]:
        if not line.strip():
            return []
        try:
            rec = json.loads(line)
        except ValueError:
            self.lines += 1
            self.malformed += 1
            return []
        return self.add_record(rec, at)


class SendLogTail:
    """Reads the lines appended to ``path`` after construction into ``feed``."""

    def __init__(self, path: str | os.PathLike[str], feed: SendFeed | None = None) -> None:
        self.path = Path(path)
        self.feed = feed if feed is not None else SendFeed()
        if self.path.is_dir():
            raise UsageError(f"--send-log {self.path} is a folder; pass the JSON Lines file the shop's "
                             "server appends to.")
        if self.path.exists():
            try:
                with self.path.open("rb") as fh:
                    fh.seek(0, os.SEEK_END)
                    self.offset = fh.tell()
            except OSError as e:
                raise UsageError(f"--send-log {self.path} cannot be read ({e.strerror}); check its "
                                 "permissions.") from None
        else:
            if not self.path.parent.is_dir():
                raise UsageError(f"--send-log {self.path}: its folder does not exist; pass the file the "
                                 "shop's server appends to.")
            self.offset = 0
        self._partial = b""

    def poll(self, now: float) -> list[ServerEvent]:
        """Read what was appended since the last poll; returns the new events."""
        try:
            with self.path.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size < self.offset:  # truncated or replaced: start over at its beginning
                    self.offset, self._partial = 0, b""
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise UsageError(f"--send-log {self.path} cannot be read ({e.strerror}); check its "
                             "permissions.") from None
        self.offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        new: list[ServerEvent] = []
        for raw in lines:
            new += self.feed.add_line(raw.decode("utf-8", "replace"), now)
        return new
