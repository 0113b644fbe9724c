"""One snapshot of Meta's own figures for a Pixel.

A snapshot makes one Dataset Quality request (every section :mod:`capi_diag.meta.quality` reads) and
one ``GET /{pixel_id}/stats`` request per aggregation: ``event`` (hourly counts per event),
``event_source`` (browser / server per hour, per event with ``event=`` once the event list is known
from the two answers before it) and ``match_keys``, each over the last ``lookback_hours`` hours
(pages followed through ``paging.next``; the access token Meta repeats in that URL is dropped: the
next page is asked for with the token in the header, like every request).

Only complete hourly buckets are kept (``start_time + 1 h <= taken_at``): the current hour is still
filling. The snapshot is small plain data (``as_dict``/``from_dict``, the format of ``--baseline``)
and never holds the token.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from capi_diag.core.errors import UsageError
from capi_diag.meta.client import GraphClient
from capi_diag.meta.errors import GraphAPIError
from capi_diag.meta.quality import DatasetQuality, fetch_quality

HOUR = 3600
MAX_PAGES = 20
SOURCES = {"BROWSER": "browser", "SERVER": "server", "WEB_ONLY": "browser", "SERVER_ONLY": "server"}
"""Meta's ``event_source`` values -> the monitor's sides."""

Buckets = dict[int, int]
"""``{bucket start (Unix seconds): count}``."""


def hour_floor(t: float) -> int:
    return int(math.floor(t / HOUR) * HOUR)


def parse_time(value: Any) -> int | None:
    """Graph's ``2026-11-30T04:00:00+0000`` (or ISO 8601, or Unix seconds) -> Unix seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    for pattern in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return int(dt.datetime.strptime(text, pattern).timestamp())
        except ValueError:
            continue
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def quality_figures(quality: DatasetQuality) -> dict[str, dict[str, float]]:
    """Meta's per-event figures, flat: ``emq``, ``event_coverage``, ``match_key:<identifier>``,
    ``dedupe:<key>:browser`` / ``:server`` (percent 0-100, EMQ 0-10); absent figures are left out."""
    out: dict[str, dict[str, float]] = {}
    for ev in quality.events:
        figures: dict[str, float] = {}
        if ev.composite_score is not None:
            figures["emq"] = ev.composite_score
        if ev.event_coverage is not None:
            figures["event_coverage"] = ev.event_coverage
        for mk in ev.match_keys:
            if mk.coverage is not None:
                figures[f"match_key:{mk.identifier}"] = mk.coverage
        for dk in ev.dedupe_keys:
            if dk.browser_events is not None:
                figures[f"dedupe:{dk.key}:browser"] = dk.browser_events
            if dk.server_events is not None:
                figures[f"dedupe:{dk.key}:server"] = dk.server_events
        out[ev.event_name] = figures
    return out


@dataclass
class Snapshot:
    """Meta's figures at ``taken_at``: complete hourly buckets per event (``counts``), per event and
    side (``sources``: ``{"browser": {...}, "server": {...}}``), per event and match key
    (``match_keys``), and the Dataset Quality figures per event (``quality``)."""

    pixel_id: str
    taken_at: float
    counts: dict[str, Buckets] = field(default_factory=dict)
    sources: dict[str, dict[str, Buckets]] = field(default_factory=dict)
    match_keys: dict[str, dict[str, Buckets]] = field(default_factory=dict)
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    lookback_hours: int = 24
    notes: list[str] = field(default_factory=list)

    def events(self) -> list[str]:
        names = list(self.quality)
        names += [n for n in self.counts if n not in names]
        return names

    def as_dict(self) -> dict[str, Any]:
        def keyed(b: Buckets) -> dict[str, int]:
            return {str(k): v for k, v in sorted(b.items())}

        return {
            "pixel_id": self.pixel_id, "taken_at": self.taken_at, "lookback_hours": self.lookback_hours,
            "counts": {e: keyed(b) for e, b in self.counts.items()},
            "sources": {e: {s: keyed(b) for s, b in sides.items()} for e, sides in self.sources.items()},
            "match_keys": {e: {k: keyed(b) for k, b in keys.items()} for e, keys in self.match_keys.items()},
            "quality": self.quality, "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "snapshot") -> Snapshot:
        """A snapshot from :meth:`as_dict`'s JSON; :class:`UsageError` naming ``source`` when it is not one."""
        try:
            def unkeyed(b: Mapping[str, Any]) -> Buckets:
                return {int(k): int(v) for k, v in b.items()}

            return cls(
                pixel_id=str(d["pixel_id"]), taken_at=float(d["taken_at"]),
                lookback_hours=int(d.get("lookback_hours", 24)),
                counts={str(e): unkeyed(b) for e, b in d.get("counts", {}).items()},
                sources={str(e): {str(s): unkeyed(b) for s, b in sides.items()}
                         for e, sides in d.get("sources", {}).items()},
                match_keys={str(e): {str(k): unkeyed(b) for k, b in keys.items()}
                            for e, keys in d.get("match_keys", {}).items()},
                quality={str(e): {str(m): float(v) for m, v in f.items()} for e, f in d.get("quality", {}).items()},
                notes=[str(n) for n in d.get("notes", [])],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"{source}: not a monitor snapshot ({type(e).__name__}: {e}); pass a file written by "
                             "'capi-diag monitor --save-snapshot'.") from None


@dataclass
class Poll:
    """The outcome of one poll: the snapshot, or the error that stopped it."""

    snapshot: Snapshot | None = None
    error: GraphAPIError | None = None
    findings: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def refused(self) -> bool:
        return self.error is not None and self.error.entry.kind in ("config", "permission")


class _Stopped(Exception):
    def __init__(self, error: GraphAPIError | None, findings: list[str]) -> None:
        super().__init__("poll stopped")
        self.error = error
        self.findings = findings


def _stats(client: GraphClient, pixel: str, params: dict[str, str], poll: Poll) -> list[Mapping[str, Any]]:
    """Every bucket of one ``/stats`` question, following ``paging.next`` (at most :data:`MAX_PAGES`)."""
    buckets: list[Mapping[str, Any]] = []
    query = dict(params)
    for _ in range(MAX_PAGES):
        got = client.get(f"{pixel}/stats", query)
        poll.requests += 1
        if not got.ok or got.body is None:
            raise _Stopped(got.error, list(got.findings))
        data = got.body.get("data")
        buckets += [b for b in data if isinstance(b, Mapping)] if isinstance(data, list) else []
        paging = got.body.get("paging")
        nxt = paging.get("next") if isinstance(paging, Mapping) else None
        if not isinstance(nxt, str) or not nxt:
            break
        # Meta's next URL repeats the access token: keep its other parameters only
        query = {k: v[-1] for k, v in parse_qs(urlsplit(nxt).query).items() if k != "access_token"}
    return buckets


def _add(target: dict[int, int], start: int, count: int) -> None:
    target[start] = target.get(start, 0) + count


def take(client: GraphClient, pixel: str, *, now: float, lookback_hours: int = 24) -> Poll:
    """One snapshot at ``now`` (the Dataset Quality read, then ``/stats`` per aggregation)."""
    poll = Poll()
    fetched = fetch_quality(client, pixel)
    poll.requests += 1
    if fetched.error is not None or fetched.quality is None:
        return Poll(error=fetched.error, findings=list(fetched.findings), requests=poll.requests)
    snap = Snapshot(pixel, now, quality=quality_figures(fetched.quality), lookback_hours=lookback_hours,
                    notes=list(fetched.quality.notes))
    end = int(now)
    start = hour_floor(now) - lookback_hours * HOUR
    base = {"start_time": str(start), "end_time": str(end)}

    def complete(bucket: Mapping[str, Any]) -> int | None:
        t = parse_time(bucket.get("start_time"))
        return t if t is not None and t + HOUR <= now else None

    try:
        for bucket in _stats(client, pixel, {"aggregation": "event", **base}, poll):
            t = complete(bucket)
            for row in bucket.get("data") or []:
                if t is not None and isinstance(row, Mapping) and isinstance(row.get("count"), int):
                    _add(snap.counts.setdefault(str(row.get("value")), {}), t, row["count"])
        names = snap.events()
        for name in names or [None]:
            params = {"aggregation": "event_source", **base, **({"event": name} if name else {})}
            key = name or "(all events)"
            for bucket in _stats(client, pixel, params, poll):
                t = complete(bucket)
                for row in bucket.get("data") or []:
                    side = SOURCES.get(str(row.get("value", "")).upper()) if isinstance(row, Mapping) else None
                    if t is not None and side and isinstance(row.get("count"), int):
                        _add(snap.sources.setdefault(key, {}).setdefault(side, {}), t, row["count"])
        for bucket in _stats(client, pixel, {"aggregation": "match_keys", **base}, poll):
            t = complete(bucket)
            for row in bucket.get("data") or []:
                if t is not None and isinstance(row, Mapping) and isinstance(row.get("count"), int):
                    event = str(row.get("event") or "(all events)")
                    _add(snap.match_keys.setdefault(event, {}).setdefault(str(row.get("value")), {}), t,
                         row["count"])
    except _Stopped as stop:
        return Poll(error=stop.error, findings=stop.findings, requests=poll.requests)
    poll.snapshot = snap
    return poll
