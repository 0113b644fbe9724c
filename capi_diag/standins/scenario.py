"""A time-varying Pixel for the monitor: what the Graph stand-in answers to ``GET /{pixel_id}/stats``
and to ``dataset_quality`` as time passes, so that a whole 48-hour ``capi-diag monitor`` runs in
seconds against it (the stand-in's clock is injected; the monitor's sleep advances it).

Hours are counted from the scenario's ``origin`` (hour ``h`` is ``[origin + h*3600, origin + (h+1)*3600)``);
hours before the origin are normal. Per hour and source (the stand-in's own figures, not Meta's):

===================  =============  =============  =======================================================
event                browser / h    server / h     incidents (:data:`INCIDENTS`)
===================  =============  =============  =======================================================
PageView             110            100            the browser side stops at hour 40 and never comes back
ViewContent          60             55             none
AddToCart            25             25             a deploy at hour 30 drops EMQ 6.2 -> 5.5 and the email
                                                   key's coverage 60 -> 30; rolled back at hour 44
Purchase             30             30             silent (no event at all) in hours 20-27; at hour 34 the
                                                   server stops sending ``event_id``: Meta's ``event_id``
                                                   server coverage 100 -> 0 and event coverage 76 -> 10;
                                                   fixed at hour 38
===================  =============  =============  =======================================================

The Dataset Quality figures of an hour are those in force at that hour (Meta's are 7-day averages;
the stand-in switches them at once so that each incident has one exact moment). ``/stats`` answers:

* ``aggregation=event``: per hourly bucket ``{"value": event, "count": browser + server}``;
* ``aggregation=event_source``: ``{"value": "BROWSER" | "SERVER", "count"}``, of one event with ``event=``,
  else of all events;
* ``aggregation=match_keys``: ``{"event", "value": key, "count"}``: server events carrying the key
  (email on 40 % of PageView/ViewContent, the AddToCart share of the EMQ table, 95 % of Purchase;
  ``ip_address`` and ``user_agent`` on every server event).

The bucket of the current hour is partial (its counts scaled by the minutes elapsed), hours without
events are left out, and ``start_time`` is Graph's ``2026-11-30T04:00:00+0000``. A page holds at most
:data:`PAGE_BUCKETS` buckets, with ``paging.next`` (which, as Meta's does, repeats the access token).
"""

from __future__ import annotations

import math
import time
from typing import Any

HOUR = 3600
PAGE_BUCKETS = 24
EVENTS: tuple[str, ...] = ("PageView", "ViewContent", "AddToCart", "Purchase")
RATES: dict[str, tuple[int, int]] = {
    "PageView": (110, 100), "ViewContent": (60, 55), "AddToCart": (25, 25), "Purchase": (30, 30),
}
"""Events per hour: (browser, server)."""

SILENT = ("Purchase", 20, 28)
"""Purchase receives nothing in hours [20, 28)."""
DEPLOY = ("AddToCart", 30, 44)
"""The deploy at hour 30 lowers AddToCart's EMQ and email coverage; rolled back at hour 44."""
DEDUP = ("Purchase", 34, 38)
"""The server's Purchase loses ``event_id`` in hours [34, 38)."""
BROWSER_STOP = ("PageView", 40)
"""The Pixel's PageView stops at hour 40 for good."""

INCIDENTS: tuple[str, ...] = (
    "hour 20-27: Purchase silent (no browser or server events)",
    "hour 30: deploy: AddToCart EMQ 6.2 -> 5.5, email coverage 60 -> 30 (rolled back at hour 44)",
    "hour 34: server Purchase without event_id: dedup key server coverage 100 -> 0, event coverage 76 -> 10 "
    "(fixed at hour 38)",
    "hour 40: the browser's PageView stops (not fixed)",
)

_EMAIL_SHARE = {"PageView": 0.4, "ViewContent": 0.4, "AddToCart": 0.6, "Purchase": 0.95}


def hour_of(origin: float, t: float) -> int:
    """The scenario hour holding Unix time ``t``."""
    return math.floor((t - origin) / HOUR)


def rates(event: str, hour: int) -> tuple[int, int]:
    """(browser, server) events of ``event`` in scenario hour ``hour``."""
    browser, server = RATES[event]
    name, lo, hi = SILENT
    if event == name and lo <= hour < hi:
        return 0, 0
    if event == BROWSER_STOP[0] and hour >= BROWSER_STOP[1]:
        browser = 0
    return browser, server


def _deployed(hour: int) -> bool:
    return DEPLOY[1] <= hour < DEPLOY[2]


def _no_event_id(hour: int) -> bool:
    return DEDUP[1] <= hour < DEDUP[2]


def email_share(event: str, hour: int) -> float:
    if event == DEPLOY[0] and _deployed(hour):
        return 0.3
    return _EMAIL_SHARE[event]


def quality_web(hour: int) -> list[dict[str, Any]]:
    """The Dataset Quality ``web`` entries in force in scenario hour ``hour``."""
    out = []
    for event in EVENTS:
        score = {"PageView": 5.8, "ViewContent": 5.6, "AddToCart": 6.2, "Purchase": 7.4}[event]
        if event == DEPLOY[0] and _deployed(hour):
            score = 5.5
        email = round(email_share(event, hour) * 100, 1)
        coverage = {"PageView": 93.0, "ViewContent": 95.0, "AddToCart": 71.0, "Purchase": 76.0}[event]
        server_ids = 100.0
        if event == DEDUP[0] and _no_event_id(hour):
            coverage, server_ids = 10.0, 0.0
        out.append({
            "event_name": event,
            "event_match_quality": {"composite_score": score, "match_key_feedback": [
                {"identifier": "email", "coverage": {"percentage": email}},
                {"identifier": "ip_address", "coverage": {"percentage": 99.5}},
                {"identifier": "user_agent", "coverage": {"percentage": 100}},
            ], "diagnostics": []},
            "event_coverage": {"percentage": coverage, "goal_percentage": 75},
            "dedupe_key_feedback": [
                {"dedupe_key": "event_id", "browser_events_with_dedupe_key": {"percentage": 100.0},
                 "server_events_with_dedupe_key": {"percentage": server_ids},
                 "overall_browser_coverage_from_dedupe_key": {"percentage": coverage}},
                {"dedupe_key": "fbp", "browser_events_with_dedupe_key": {"percentage": 97.0},
                 "server_events_with_dedupe_key": {"percentage": 88.0},
                 "overall_browser_coverage_from_dedupe_key": {"percentage": 0.2}},
            ],
            "data_freshness": {"upload_frequency": "real_time"},
        })
    return out


def _rows(aggregation: str, event: str | None, hour: int, scale: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    names = [event] if event else list(EVENTS)
    if aggregation == "event":
        for name in names:
            b, s = rates(name, hour)
            n = round((b + s) * scale)
            if n:
                rows.append({"value": name, "count": n})
    elif aggregation == "event_source":
        b = sum(round(rates(n, hour)[0] * scale) for n in names)
        s = sum(round(rates(n, hour)[1] * scale) for n in names)
        rows += [{"value": v, "count": c} for v, c in (("BROWSER", b), ("SERVER", s)) if c]
    elif aggregation == "match_keys":
        for name in names:
            s = round(rates(name, hour)[1] * scale)
            for key, share in (("email", email_share(name, hour)), ("ip_address", 1.0), ("user_agent", 1.0)):
                n = round(s * share)
                if n:
                    rows.append({"event": name, "value": key, "count": n})
    return rows


AGGREGATIONS = frozenset({"event", "event_source", "match_keys"})


def stats_buckets(origin: float, now: float, start: float, end: float, aggregation: str,
                  event: str | None, *, steady: bool = False) -> list[dict[str, Any]]:
    """The hourly buckets (oldest first) with ``start_time`` in ``[start, min(end, now))``; the bucket
    of the current hour is partial; buckets without events are left out. ``steady``: every hour is a
    normal one (no incident)."""
    out = []
    first = math.floor(start / HOUR) * HOUR
    stop = min(end, now)
    t = first
    while t < stop:
        scale = 1.0 if t + HOUR <= now else (now - t) / HOUR
        rows = _rows(aggregation, event, -1 if steady else hour_of(origin, t), scale)
        if rows:
            out.append({"start_time": graph_time(t), "aggregation": aggregation, "data": rows})
        t += HOUR
    return out


def graph_time(ts: float) -> str:
    """Graph's time format: ``2026-11-30T04:00:00+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))
