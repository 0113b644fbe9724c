"""The monitor's history in one DuckDB file (``--db``): Meta gives figures without history, so the
monitor keeps it.

Tables (no column holds the token; every text is scrubbed of it by the caller before it is written):

* ``mon_snapshots``: one row per snapshot: Pixel, time taken, Graph host and version, and the
  snapshot's figures as JSON (:meth:`~capi_diag.monitor.poll.Snapshot.as_dict`); the first row of a
  Pixel is its baseline;
* ``mon_buckets``: complete hourly ``/stats`` buckets per Pixel, aggregation (``event``, ``event_source``,
  ``match_keys``), event and value (``count``, ``browser``/``server``, the match key) keyed by the
  bucket's start: a later answer replaces an earlier one for the hours it covers;
* ``mon_quality``: the Dataset Quality figures of each snapshot, one row per event and metric (trends);
* ``mon_alerts``: every alert with when it was raised and, once its figure recovered, cleared;
  an alert is open while ``cleared_at`` is null, so another process sees it and does not raise it again;
* ``mon_deploys``: the deploy marks an analyst entered (drawn on the dashboard's trend charts).

Each operation opens the file and closes it again (like the send history), so a cron ``--once`` and
the dashboard can share it; a clash on DuckDB's lock becomes a :class:`HistoryError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from capi_diag.core.errors import CapiDiagError
from capi_diag.monitor.alerts import Evaluation, Finding, Key
from capi_diag.monitor.poll import HOUR, Snapshot

_SCHEMA = (
    "CREATE SEQUENCE IF NOT EXISTS mon_ids START 1",
    """CREATE TABLE IF NOT EXISTS mon_snapshots (id BIGINT PRIMARY KEY, pixel_id VARCHAR NOT NULL,
        taken_at DOUBLE NOT NULL, graph_host VARCHAR, api_version VARCHAR, figures VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS mon_buckets (pixel_id VARCHAR NOT NULL, aggregation VARCHAR NOT NULL,
        event_name VARCHAR NOT NULL, value VARCHAR NOT NULL, bucket_start BIGINT NOT NULL, count BIGINT,
        snapshot_id BIGINT, PRIMARY KEY (pixel_id, aggregation, event_name, value, bucket_start))""",
    """CREATE TABLE IF NOT EXISTS mon_quality (snapshot_id BIGINT, pixel_id VARCHAR, taken_at DOUBLE,
        event_name VARCHAR, metric VARCHAR, value DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS mon_alerts (id BIGINT PRIMARY KEY, pixel_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, event_name VARCHAR NOT NULL, metric VARCHAR NOT NULL, baseline DOUBLE,
        now DOUBLE, detail VARCHAR, raised_at DOUBLE NOT NULL, cleared_at DOUBLE, cleared_baseline DOUBLE,
        cleared_now DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS mon_deploys (id BIGINT PRIMARY KEY, pixel_id VARCHAR NOT NULL,
        deployed_at DOUBLE NOT NULL, label VARCHAR)""",
)


ENV_HOME = "CAPI_DIAG_HOME"


def default_path(env: dict[str, str] | None = None) -> Path:
    """``monitor.duckdb`` beside the send history: ``$CAPI_DIAG_HOME/monitor.duckdb``, else the user's
    cache dir (``$XDG_CACHE_HOME`` or ``~/.cache``) ``/capi-diag/monitor.duckdb``."""
    env = dict(os.environ) if env is None else env
    if env.get(ENV_HOME):
        return Path(env[ENV_HOME]) / "monitor.duckdb"
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "capi-diag" / "monitor.duckdb"


class HistoryError(CapiDiagError):
    """The monitor history cannot be opened or written."""

    title = "Monitor history unavailable"


class History:
    """The monitor history in the DuckDB file ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._held: duckdb.DuckDBPyConnection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HistoryError(f"{self.path.parent}: cannot create the folder of the monitor history "
                               f"({e.strerror}); pass a writable --db path.") from None
        with self._db() as db:
            for stmt in _SCHEMA:
                db.execute(stmt)

    @contextmanager
    def held(self) -> Iterator[None]:
        """One connection for every operation inside (a snapshot's store, baseline and alerts), closed
        at the end so that other processes can use the file between snapshots."""
        if self._held is not None:
            yield
            return
        with self._open() as db:
            self._held = db
            try:
                yield
            finally:
                self._held = None

    @contextmanager
    def _db(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._held is not None:
            yield self._held
            return
        with self._open() as db:
            yield db

    @contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            db = duckdb.connect(str(self.path))
        except duckdb.IOException as e:
            lock = "lock" in str(e).lower()
            why = ("another capi-diag process is using it; wait for it to finish or pass another --db"
                   if lock else "check the path and its permissions, or pass another --db")
            raise HistoryError(f"{self.path}: cannot open the monitor history ({why}).") from None
        except duckdb.Error as e:
            raise HistoryError(f"{self.path}: not a monitor history DuckDB file ({type(e).__name__}); pass "
                               "another --db.") from None
        try:
            yield db
        finally:
            db.close()

    # -- snapshots ----------------------------------------------------------------------------------
    def add_snapshot(self, snap: Snapshot, *, graph_host: str = "", api_version: str = "") -> int:
        """Store ``snap``: its row, its buckets (replacing the hours it covers) and its quality figures."""
        rows: dict[str, list[Any]] = {k: [] for k in ("aggregation", "event_name", "value", "bucket_start", "count")}

        def add(aggregation: str, event: str, value: str, buckets: dict[int, int]) -> None:
            for t, c in buckets.items():
                for k, v in zip(rows, (aggregation, event, value, t, c), strict=True):
                    rows[k].append(v)

        for event, b in snap.counts.items():
            add("event", event, "count", b)
        for event, sides in snap.sources.items():
            for side, b in sides.items():
                add("event_source", event, side, b)
        for event, keys in snap.match_keys.items():
            for key, b in keys.items():
                add("match_keys", event, key, b)
        first = int(snap.taken_at // HOUR * HOUR) - snap.lookback_hours * HOUR
        last = int(snap.taken_at // HOUR * HOUR)
        quality = {"event_name": [], "metric": [], "value": []}
        for event, figures in snap.quality.items():
            for metric, value in figures.items():
                quality["event_name"].append(event)
                quality["metric"].append(metric)
                quality["value"].append(float(value))
        with self._db() as db:
            sid = int(db.execute("SELECT nextval('mon_ids')").fetchone()[0])
            db.execute("BEGIN")
            db.execute("INSERT INTO mon_snapshots VALUES (?, ?, ?, ?, ?, ?)",
                       [sid, snap.pixel_id, snap.taken_at, graph_host, api_version, json.dumps(snap.as_dict())])
            db.execute("DELETE FROM mon_buckets WHERE pixel_id = ? AND bucket_start >= ? AND bucket_start < ?",
                       [snap.pixel_id, first, last])
            new = pa.table({**rows, "bucket_start": pa.array(rows["bucket_start"], pa.int64()),
                            "count": pa.array(rows["count"], pa.int64())})
            db.register("new_buckets", new)
            db.execute("INSERT INTO mon_buckets SELECT ?, aggregation, event_name, value, bucket_start, count, ? "
                       "FROM new_buckets", [snap.pixel_id, sid])
            db.unregister("new_buckets")
            q = pa.table({k: pa.array(v, pa.float64() if k == "value" else pa.string()) for k, v in quality.items()})
            db.register("new_quality", q)
            db.execute("INSERT INTO mon_quality SELECT ?, ?, ?, event_name, metric, value FROM new_quality",
                       [sid, snap.pixel_id, snap.taken_at])
            db.unregister("new_quality")
            db.execute("COMMIT")
        return sid

    def baseline(self, pixel_id: str) -> Snapshot | None:
        """The first snapshot stored for ``pixel_id`` (whichever process took it)."""
        with self._db() as db:
            row = db.execute("SELECT figures FROM mon_snapshots WHERE pixel_id = ? ORDER BY taken_at, id LIMIT 1",
                             [pixel_id]).fetchone()
        return Snapshot.from_dict(json.loads(row[0]), source=str(self.path)) if row else None

    def latest(self, pixel_id: str) -> Snapshot | None:
        with self._db() as db:
            row = db.execute("SELECT figures FROM mon_snapshots WHERE pixel_id = ? ORDER BY taken_at DESC, id DESC "
                             "LIMIT 1", [pixel_id]).fetchone()
        return Snapshot.from_dict(json.loads(row[0]), source=str(self.path)) if row else None

    def pixels(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT pixel_id FROM mon_snapshots ORDER BY 1").fetchall()]

    def snapshot_count(self, pixel_id: str) -> int:
        with self._db() as db:
            return int(db.execute("SELECT count(*) FROM mon_snapshots WHERE pixel_id = ?", [pixel_id]).fetchone()[0])

    # -- alerts -------------------------------------------------------------------------------------
    def open_alerts(self, pixel_id: str) -> list[dict[str, Any]]:
        return self.alerts(pixel_id, open_only=True)

    def alerts(self, pixel_id: str, *, open_only: bool = False) -> list[dict[str, Any]]:
        """Alerts of ``pixel_id``, oldest first."""
        sql = "SELECT * FROM mon_alerts WHERE pixel_id = ?" + (" AND cleared_at IS NULL" if open_only else "")
        with self._db() as db:
            cur = db.execute(sql + " ORDER BY raised_at, id", [pixel_id])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def apply(self, pixel_id: str, ev: Evaluation, *, at: float) -> list[dict[str, Any]]:
        """Raise the findings not open yet and clear the open alerts whose figure is fine now; the
        changes, each ``{"at", "kind", "event_name", "metric", "baseline", "now", "detail", "state"}``."""
        changes: list[dict[str, Any]] = []
        with self._db() as db:
            db.execute("BEGIN")
            cur = db.execute("SELECT id, kind, event_name, metric, detail FROM mon_alerts "
                             "WHERE pixel_id = ? AND cleared_at IS NULL", [pixel_id])
            open_: dict[Key, tuple[int, str]] = {(k, e, m): (i, d) for i, k, e, m, d in cur.fetchall()}
            for f in ev.findings:
                if f.key in open_:
                    continue
                aid = int(db.execute("SELECT nextval('mon_ids')").fetchone()[0])
                db.execute("INSERT INTO mon_alerts (id, pixel_id, kind, event_name, metric, baseline, now, detail, "
                           "raised_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [aid, pixel_id, f.kind, f.event_name, f.metric, f.baseline, f.now, f.detail, at])
                open_[f.key] = (aid, f.detail)
                changes.append(_change(at, f, "raised"))
            for key, (aid, detail) in open_.items():
                if key not in ev.ok:
                    continue
                base, now = ev.ok[key]
                db.execute("UPDATE mon_alerts SET cleared_at = ?, cleared_baseline = ?, cleared_now = ? WHERE id = ?",
                           [at, base, now, aid])
                changes.append(_change(at, Finding(*key, base, now, f"recovered: {detail}"), "cleared"))
            db.execute("COMMIT")
        return changes

    # -- deploy marks -------------------------------------------------------------------------------
    def add_deploy(self, pixel_id: str, at: float, label: str) -> int:
        with self._db() as db:
            did = int(db.execute("SELECT nextval('mon_ids')").fetchone()[0])
            db.execute("INSERT INTO mon_deploys VALUES (?, ?, ?, ?)", [did, pixel_id, float(at), label.strip()])
        return did

    def deploys(self, pixel_id: str) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT id, deployed_at, label FROM mon_deploys WHERE pixel_id = ? "
                              "ORDER BY deployed_at, id", [pixel_id]).fetchall()
        return [{"id": i, "at": a, "label": lbl} for i, a, lbl in rows]

    # -- trends (aggregates in DuckDB) --------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query over the history (the dashboard's trends)."""
        with self._db() as db:
            cur = db.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def source_trend(self, pixel_id: str, event: str) -> list[dict[str, Any]]:
        """Hourly browser and server counts of ``event`` (``bucket_start``, ``browser``, ``server``), every
        hour the history covers for the Pixel (Meta leaves out hours without events: those count 0)."""
        return self.query(
            "WITH b AS (SELECT bucket_start, value, count FROM mon_buckets WHERE pixel_id = ? "
            "  AND aggregation = 'event_source' AND event_name = ?), "
            "hours AS (SELECT unnest(range(min(bucket_start), max(bucket_start) + 3600, 3600)) AS bucket_start "
            "  FROM mon_buckets WHERE pixel_id = ? AND aggregation = 'event_source') "
            "SELECT h.bucket_start, coalesce(sum(b.count) FILTER (WHERE b.value = 'browser'), 0) AS browser, "
            "coalesce(sum(b.count) FILTER (WHERE b.value = 'server'), 0) AS server "
            "FROM hours h LEFT JOIN b USING (bucket_start) GROUP BY h.bucket_start ORDER BY h.bucket_start",
            [pixel_id, event, pixel_id])

    def quality_trend(self, pixel_id: str, event: str) -> list[dict[str, Any]]:
        """Dataset Quality figures of ``event`` per snapshot (``taken_at``, ``metric``, ``value``)."""
        return self.query("SELECT taken_at, metric, value FROM mon_quality WHERE pixel_id = ? AND event_name = ? "
                          "ORDER BY taken_at, metric", [pixel_id, event])

    def events(self, pixel_id: str) -> list[str]:
        return [r["event_name"] for r in self.query(
            "SELECT DISTINCT event_name FROM mon_quality WHERE pixel_id = ? UNION "
            "SELECT DISTINCT event_name FROM mon_buckets WHERE pixel_id = ? AND aggregation = 'event' ORDER BY 1",
            [pixel_id, pixel_id])]


def _change(at: float, f: Finding, state: str) -> dict[str, Any]:
    import datetime as dt

    return {"at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds"), "kind": f.kind,
            "event_name": f.event_name, "metric": f.metric, "baseline": f.baseline, "now": f.now,
            "detail": f.detail, "state": state}
