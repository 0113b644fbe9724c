"""Send history and promotion-window state in DuckDB, so a reload or a restart loses nothing.

The CLI keeps one file (``--db``, default :func:`default_path`); the app keeps one file per browser
session (see :func:`session_path`). Two tables:

* ``te_sends``: one row per send: when, where (Pixel, test code, Graph host and version), Meta's
  answer (``events_received``, ``messages``, ``fbtrace_id``, the typed error with its catalogue fix),
  every attempt, each event's outcome, the local validation findings, whether the send was clean
  and why not, and the window phase after it;
* ``te_windows``: one row per promotion window with its state machine serialized as JSON.

The access token is never stored: no column holds it, and every record passes through
:func:`capi_diag.meta.token.scrub` before it is written.

Each operation opens the file and closes it again, so a ``watch`` in one terminal and a
``send-test`` in another can share the file; a clash on DuckDB's file lock becomes a
:class:`StoreError` telling the user to wait or pass another ``--db``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from capi_diag.core.errors import CapiDiagError
from capi_diag.engine import pii
from capi_diag.engine.db import Database
from capi_diag.verdict.promotion import Window

ENV_HOME = "CAPI_DIAG_HOME"
SESSION_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")

_SCHEMA = (
    "CREATE SEQUENCE IF NOT EXISTS te_send_ids START 1",
    """CREATE TABLE IF NOT EXISTS te_sends (
        id BIGINT PRIMARY KEY, sent_at DOUBLE NOT NULL, window_id VARCHAR, pixel_id VARCHAR,
        test_event_code VARCHAR, graph_host VARCHAR, api_version VARCHAR, ok BOOLEAN, clean BOOLEAN,
        events_sent INTEGER, events_received INTEGER, fbtrace_id VARCHAR, phase_after VARCHAR,
        reasons VARCHAR, messages VARCHAR, error VARCHAR, attempts VARCHAR, events VARCHAR,
        findings VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS te_windows (
        id VARCHAR PRIMARY KEY, pixel_id VARCHAR, test_event_code VARCHAR,
        created_at DOUBLE, updated_at DOUBLE, state VARCHAR)""",
)
_JSON_COLUMNS = ("reasons", "messages", "error", "attempts", "events", "findings")


class StoreError(CapiDiagError):
    """The history database cannot be opened or written."""

    title = "Send history unavailable"


@dataclass
class SendRecord:
    """One send as stored and shown (no token: there is no field for it)."""

    sent_at: float
    pixel_id: str
    test_event_code: str | None
    ok: bool
    clean: bool
    events_sent: int
    events_received: int | None = None
    fbtrace_id: str | None = None
    graph_host: str = ""
    api_version: str = ""
    window_id: str | None = None
    phase_after: str | None = None
    reasons: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    id: int | None = None


def default_path(env: dict[str, str] | None = None) -> Path:
    """``$CAPI_DIAG_HOME/sends.duckdb``, else the user's cache dir (``$XDG_CACHE_HOME`` or
    ``~/.cache``) ``/capi-diag/sends.duckdb``."""
    env = dict(os.environ) if env is None else env
    if env.get(ENV_HOME):
        return Path(env[ENV_HOME]) / "sends.duckdb"
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "capi-diag" / "sends.duckdb"


def new_session_id() -> str:
    return uuid.uuid4().hex


def session_path(session_id: str, env: dict[str, str] | None = None) -> Path:
    """The app's file for one browser session; ``session_id`` must come from :func:`new_session_id`."""
    if not SESSION_ID_RE.match(session_id):
        raise StoreError("the session id in the page address is not valid; open the Test Events page "
                         "again without it.")
    return default_path(env).parent / "sessions" / f"{session_id}.duckdb"


class Store:
    """The send history and windows in one DuckDB file (or in memory with ``path=None``)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._memory: Database | None = None
        if self.path is None:
            self._memory = Database()
        with self._db() as db:
            for stmt in _SCHEMA:
                db.execute(stmt)

    @contextmanager
    def _db(self) -> Iterator[Database]:
        if self._memory is not None:
            yield self._memory
            return
        assert self.path is not None
        try:
            db = Database(self.path)
        except duckdb.IOException as e:
            lock = "lock" in str(e).lower()
            why = ("another capi-diag process is using it; wait for it to finish or pass another --db"
                   if lock else "check the path and its permissions, or pass another --db")
            raise StoreError(f"{self.path}: cannot open the send history ({why}).") from None
        except OSError as e:
            raise StoreError(f"{self.path}: cannot create the send history ({e.strerror}); "
                             "pass a writable --db path.") from None
        try:
            yield db
        finally:
            db.close()

    # -- sends ------------------------------------------------------------------------------------
    def add_send(self, rec: SendRecord) -> int:
        """Store ``rec``; returns its id (also set on ``rec``)."""
        row = asdict(rec)
        row.pop("id")
        for col in _JSON_COLUMNS:
            row[col] = json.dumps(row[col], ensure_ascii=False, default=str)
        cols = list(row)
        with self._db() as db:
            # raw emails and phones (an event id, a finding's detail, Meta's message) are stored masked
            # with a fingerprint, as the import stores them (capi_diag.engine.pii)
            row = {k: pii.scrub_text(v, db.pii_key) if isinstance(v, str) else v for k, v in row.items()}
            new_id = db.execute("SELECT nextval('te_send_ids')").fetchone()[0]
            db.execute(
                f"INSERT INTO te_sends (id, {', '.join(cols)}) VALUES (?, {', '.join('?' for _ in cols)})",
                [new_id, *row.values()],
            )
        rec.id = int(new_id)
        return rec.id

    def sends(self, *, window_id: str | None = None, limit: int | None = None) -> list[SendRecord]:
        """Sends, newest first (of one window when ``window_id`` is given)."""
        sql = "SELECT * FROM te_sends"
        params: list[Any] = []
        if window_id is not None:
            sql += " WHERE window_id = ?"
            params.append(window_id)
        sql += " ORDER BY sent_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._db() as db:
            cur = db.execute(sql, params)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        out = []
        for r in rows:
            d = dict(zip(names, r, strict=True))
            for col in _JSON_COLUMNS:
                d[col] = json.loads(d[col]) if d[col] is not None else None
            out.append(SendRecord(**d))
        return out

    # -- windows ----------------------------------------------------------------------------------
    def create_window(self, window: Window, *, pixel_id: str, test_event_code: str, now: float) -> str:
        window_id = uuid.uuid4().hex
        with self._db() as db:
            db.execute("INSERT INTO te_windows VALUES (?, ?, ?, ?, ?, ?)",
                       [window_id, pixel_id, test_event_code, now, now, json.dumps(window.to_dict())])
        return window_id

    def save_window(self, window_id: str, window: Window, *, now: float) -> None:
        with self._db() as db:
            db.execute("UPDATE te_windows SET state = ?, updated_at = ? WHERE id = ?",
                       [json.dumps(window.to_dict()), now, window_id])

    def load_window(self, window_id: str) -> Window | None:
        with self._db() as db:
            row = db.execute("SELECT state FROM te_windows WHERE id = ?", [window_id]).fetchone()
        return Window.from_dict(json.loads(row[0])) if row else None

    def latest_window(self) -> tuple[str, Window, dict[str, Any]] | None:
        """The most recently created window: ``(id, window, {"pixel_id", "test_event_code"})``."""
        with self._db() as db:
            row = db.execute("SELECT id, state, pixel_id, test_event_code FROM te_windows "
                             "ORDER BY created_at DESC LIMIT 1").fetchone()
        if not row:
            return None
        return row[0], Window.from_dict(json.loads(row[1])), {"pixel_id": row[2], "test_event_code": row[3]}

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
