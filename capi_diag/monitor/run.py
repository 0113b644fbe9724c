"""The monitor loop: a snapshot every interval for ``hours`` (or one with ``once``), each stored,
compared with the baseline, its alert changes written, posted and printed.

Snapshots are taken at the start, then every ``interval`` seconds while the time is not past
``start + hours``: ``--hours 48 --interval 3600`` takes 49. A poll Meta refused (token, Pixel,
permission) stops at once (:class:`~capi_diag.meta.errors.GraphAPIError`, exit 2); a poll that got
no answer (timeouts, 5xx after the client's retries) is reported and skipped. The exit status is
1 when alerts are open at the end (or, with ``once``, when the one poll got no answer), else 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from capi_diag.core.errors import EXIT_BAD_RESULT, EXIT_OK, UsageError
from capi_diag.meta.client import GraphClient
from capi_diag.meta.token import Secret, scrub
from capi_diag.monitor import clock, webhook
from capi_diag.monitor.alerts import evaluate
from capi_diag.monitor.history import History
from capi_diag.monitor.poll import Snapshot, take


@dataclass
class Settings:
    pixel_id: str
    hours: float = 48.0
    interval_s: float = 900.0
    once: bool = False
    baseline: Snapshot | None = None
    output: Path | None = None
    webhook_url: str | None = None
    save_snapshot: Path | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    exit_code: int
    snapshots: int
    changes: list[dict[str, Any]]
    open_alerts: list[dict[str, Any]]


def _write_line(path: Path, doc: dict[str, Any]) -> None:
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    except OSError as e:
        raise UsageError(f"{path}: cannot append the alert ({e.strerror}); choose a writable --output.") from None


def run(client: GraphClient, history: History, settings: Settings, *, secret: Secret | None, out: TextIO,
        err: TextIO, http: httpx.Client | None = None, graph_host: str = "") -> Outcome:
    """Monitor ``settings.pixel_id`` (see the module docstring)."""
    def say(line: str, to: TextIO) -> None:
        print(scrub(line, secret), file=to, flush=True)

    th = settings.thresholds
    pixel = settings.pixel_id
    start = clock.now()
    end = start + settings.hours * 3600
    changes: list[dict[str, Any]] = []
    taken = 0
    failed_last = False
    poster = http if http is not None else (httpx.Client() if settings.webhook_url else None)
    try:
        due = start
        while True:
            moment = clock.now()
            poll = take(client, pixel, now=moment, lookback_hours=th["lookback_hours"])
            if poll.refused and poll.error is not None:
                raise poll.error
            if poll.snapshot is None:
                failed_last = True
                title = poll.error.entry.title if poll.error is not None else "no answer"
                say(f"monitor: no snapshot at {_iso(moment)}: {title}"
                    + "".join(f"; {f}" for f in poll.findings), err)
            else:
                failed_last = False
                taken += 1
                snap = poll.snapshot
                with history.held():
                    history.add_snapshot(snap, graph_host=graph_host, api_version=client.config.api_version)
                    base = settings.baseline or history.baseline(pixel) or snap
                    found = history.apply(pixel, evaluate(base, snap, th), at=snap.taken_at)
                if settings.save_snapshot is not None:
                    try:
                        settings.save_snapshot.write_text(json.dumps(snap.as_dict(), indent=1), encoding="utf-8")
                    except OSError as e:
                        raise UsageError(f"{settings.save_snapshot}: cannot write the snapshot ({e.strerror}); "
                                         "choose a writable --save-snapshot path.") from None
                for change in found:
                    change = scrub(change, secret)
                    changes.append(change)
                    say(f"{change['at']} {change['state']:7} {change['kind']} {change['event_name']} "
                        f"{change['metric']}: {change['detail']}", out)
                    if settings.output is not None:
                        _write_line(settings.output, change)
                    if settings.webhook_url and poster is not None:
                        posted = webhook.post(poster, settings.webhook_url, scrub(webhook.body(change, pixel), secret))
                        if not posted.ok:
                            say(f"monitor: the webhook did not take the alert ({posted.detail})", err)
            if settings.once:
                break
            due += settings.interval_s
            if due > end:
                break
            clock.sleep(max(0.0, due - clock.now()))
    finally:
        if http is None and poster is not None:
            poster.close()
    open_alerts = history.open_alerts(pixel)
    say(f"monitor: {taken} snapshot(s) of Pixel {pixel}; {len(open_alerts)} alert(s) open"
        + "".join(f"\n  open: {a['kind']} {a['event_name']} {a['metric']} since {_iso(a['raised_at'])}"
                  for a in open_alerts), out)
    code = EXIT_BAD_RESULT if open_alerts or (settings.once and failed_last) else EXIT_OK
    return Outcome(code, taken, changes, open_alerts)


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")
