"""The monitor's alerts: the latest snapshot against the baseline snapshot.

Every rule compares one figure of one event with the baseline (the first snapshot stored for the
Pixel, or ``--baseline FILE``); thresholds are the ``[monitor]`` table of the config (:data:`DEFAULTS`).
"The last N complete buckets" are the N hours before the hour the snapshot was taken in, judged by
the buckets' ``start_time`` (a bucket Meta left out counts 0), never by how long the monitor has run.

* ``silent``: counts in the baseline, none in the last ``silent_hours`` complete buckets;
* ``source_ratio``: the server : browser ratio over the last ``source_ratio_hours`` complete buckets
  moved by more than ``source_ratio_change`` (0.5 = 50 %) from the baseline's ratio over its own
  last buckets; skipped when the baseline has fewer than ``source_ratio_min_events`` on a side, or
  the latest window fewer than that on both sides; a side that stopped (browser 0) is an infinite move;
* ``emq_drop``: composite score fell by ``emq_drop`` points or more;
* ``coverage_drop``: a match key's (``match_key:<identifier>``) or the event's (``event_coverage``)
  coverage fell by ``coverage_drop_pp`` points or more;
* ``dedup_drop``: a dedup key's browser or server coverage (``dedupe:<key>:browser|server``) fell by
  ``dedup_drop_pp`` points or more;
* ``volume``: the last complete bucket's count below ``volume_low`` or above ``volume_high`` times the
  baseline's bucket for the same hour of day (UTC; its mean hourly count over the look-back where
  that hour is absent), only when that baseline count is ``volume_min_baseline`` or more.

``silent`` suppresses ``source_ratio`` and ``volume`` for the same event: those are then not judged
(an alert of theirs already open stays open until they are judged again and have recovered).
:func:`evaluate` returns the alerts that hold and the figures that were judged and are fine, so the
history can raise each alert once and clear it only when its figure has recovered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.monitor.poll import HOUR, Buckets, Snapshot, hour_floor

SECTION = "monitor"

DEFAULTS: dict[str, Any] = {
    "silent_hours": 6,
    "source_ratio_hours": 6,
    "source_ratio_change": 0.5,
    "source_ratio_min_events": 20,
    "emq_drop": 0.5,
    "coverage_drop_pp": 5.0,
    "dedup_drop_pp": 5.0,
    "volume_low": 0.5,
    "volume_high": 2.0,
    "volume_min_baseline": 20,
    "lookback_hours": 24,
}
"""Thresholds (``[monitor]`` in the config TOML); where each default comes from is in docs/monitor.md."""

KINDS: tuple[str, ...] = ("silent", "source_ratio", "emq_drop", "coverage_drop", "dedup_drop", "volume")
_WHOLE = ("silent_hours", "source_ratio_hours", "source_ratio_min_events", "volume_min_baseline", "lookback_hours")


def thresholds(config: Config | None = None) -> dict[str, Any]:
    """:data:`DEFAULTS` overridden by ``[monitor]``; whole hours and counts >= 1, the rest > 0."""
    config = config or Config()
    opts = config.options(SECTION, DEFAULTS)
    for key, value in opts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{config.source}: [{SECTION}] {key} must be a number > 0, found {value!r}.")
        if key in _WHOLE and not isinstance(value, int):
            raise ConfigError(f"{config.source}: [{SECTION}] {key} must be a whole number, found {value!r}.")
    if opts["volume_low"] >= 1 or opts["volume_high"] <= 1:
        raise ConfigError(f"{config.source}: [{SECTION}] volume_low must be below 1 and volume_high above 1, "
                          f"found {opts['volume_low']} and {opts['volume_high']}.")
    if opts["lookback_hours"] < max(opts["silent_hours"], opts["source_ratio_hours"]):
        raise ConfigError(f"{config.source}: [{SECTION}] lookback_hours ({opts['lookback_hours']}) must cover "
                          "silent_hours and source_ratio_hours.")
    return opts


Key = tuple[str, str, str]
"""``(kind, event_name, metric)``: one alert's identity."""


@dataclass(frozen=True)
class Finding:
    """An alert condition that holds now."""

    kind: str
    event_name: str
    metric: str
    baseline: float | None
    now: float | None
    detail: str

    @property
    def key(self) -> Key:
        return (self.kind, self.event_name, self.metric)


@dataclass
class Evaluation:
    """What holds (``findings``) and which figures were judged and are fine (``ok``, with their
    baseline and current values), for raising and clearing."""

    findings: list[Finding] = field(default_factory=list)
    ok: dict[Key, tuple[float | None, float | None]] = field(default_factory=dict)


def window_sum(buckets: Buckets | None, taken_at: float, hours: int) -> int:
    """The sum of the ``hours`` complete buckets before the hour of ``taken_at``."""
    if not buckets:
        return 0
    end = hour_floor(taken_at)
    return sum(c for t, c in buckets.items() if end - hours * HOUR <= t < end)


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def _hour_of_day(t: int) -> int:
    return (t // HOUR) % 24


def evaluate(baseline: Snapshot, latest: Snapshot, th: Mapping[str, Any]) -> Evaluation:
    """The alerts of ``latest`` against ``baseline`` (pure)."""
    out = Evaluation()
    names = latest.events() + [n for n in baseline.events() if n not in latest.events()]

    def fine(kind: str, event: str, metric: str, base: float | None, now: float | None) -> None:
        out.ok[(kind, event, metric)] = (_r(base), _r(now))

    for event in names:
        silent = False
        base_counts = baseline.counts.get(event, {})
        if sum(base_counts.values()) > 0:
            n = window_sum(latest.counts.get(event), latest.taken_at, th["silent_hours"])
            base_mean = window_sum(base_counts, baseline.taken_at, baseline.lookback_hours) / baseline.lookback_hours
            if n == 0:
                silent = True
                out.findings.append(Finding(
                    "silent", event, "count", _r(base_mean, 2), 0,
                    f"{event}: no event in the last {th['silent_hours']} complete hours (baseline "
                    f"{base_mean:.1f} an hour)."))
            else:
                fine("silent", event, "count", _r(base_mean, 2), n)
        if not silent:
            _source_ratio(out, event, baseline, latest, th, fine)
            _volume(out, event, baseline, latest, th, fine)
        _quality(out, event, baseline, latest, th, fine)
    return out


def _source_ratio(out: Evaluation, event: str, baseline: Snapshot, latest: Snapshot, th: Mapping[str, Any],
                  fine: Any) -> None:
    hours, least = th["source_ratio_hours"], th["source_ratio_min_events"]
    bs = baseline.sources.get(event, {})
    ls = latest.sources.get(event, {})
    bb, bsv = (window_sum(bs.get(s), baseline.taken_at, hours) for s in ("browser", "server"))
    lb, lsv = (window_sum(ls.get(s), latest.taken_at, hours) for s in ("browser", "server"))
    if bb < least or bsv < least or max(lb, lsv) < least:
        return
    base_ratio = bsv / bb
    now_ratio = lsv / lb if lb else None
    moved = None if now_ratio is None else round(abs(now_ratio / base_ratio - 1), 6)
    if moved is None or moved > th["source_ratio_change"]:
        change = "the browser side sent nothing" if now_ratio is None else f"moved {moved * 100:.0f} %"
        out.findings.append(Finding(
            "source_ratio", event, "server_browser_ratio", _r(base_ratio), _r(now_ratio),
            f"{event}: server : browser over the last {hours} complete hours is {lsv} : {lb} "
            f"(baseline {bsv} : {bb}); {change}."))
    else:
        fine("source_ratio", event, "server_browser_ratio", base_ratio, now_ratio)


def _volume(out: Evaluation, event: str, baseline: Snapshot, latest: Snapshot, th: Mapping[str, Any],
            fine: Any) -> None:
    base = baseline.counts.get(event, {})
    if not base:
        return
    last = hour_floor(latest.taken_at) - HOUR
    same = [c for t, c in sorted(base.items()) if _hour_of_day(t) == _hour_of_day(last)]
    expected = float(same[-1]) if same else window_sum(base, baseline.taken_at, baseline.lookback_hours) / \
        baseline.lookback_hours
    if expected < th["volume_min_baseline"]:
        return
    count = latest.counts.get(event, {}).get(last, 0)
    share = count / expected
    if share < th["volume_low"] or share > th["volume_high"]:
        hour = f"{_hour_of_day(last):02d}:00 UTC"
        out.findings.append(Finding(
            "volume", event, "count_last_hour", _r(expected, 2), count,
            f"{event}: {count} events in the hour from {hour}, {share * 100:.0f} % of the baseline's "
            f"{expected:g} (alert below {th['volume_low'] * 100:g} % or above {th['volume_high'] * 100:g} %)."))
    else:
        fine("volume", event, "count_last_hour", expected, count)


def _quality(out: Evaluation, event: str, baseline: Snapshot, latest: Snapshot, th: Mapping[str, Any],
             fine: Any) -> None:
    base = baseline.quality.get(event, {})
    now = latest.quality.get(event, {})
    for metric, before in base.items():
        after = now.get(metric)
        if after is None:
            continue  # not in Meta's latest answer: not judged
        if metric == "emq":
            kind, bar, unit = "emq_drop", th["emq_drop"], " points"
        elif metric == "event_coverage" or metric.startswith("match_key:"):
            kind, bar, unit = "coverage_drop", th["coverage_drop_pp"], " pp"
        elif metric.startswith("dedupe:"):
            kind, bar, unit = "dedup_drop", th["dedup_drop_pp"], " pp"
        else:
            continue
        drop = round(before - after, 6)
        if drop >= bar:
            what = {"emq": "Event Match Quality", "event_coverage": "event coverage"}.get(metric, metric)
            if metric.startswith("match_key:"):
                what = f"{metric.split(':', 1)[1]} coverage"
            elif metric.startswith("dedupe:"):
                _, key, side = (metric.split(":") + ["", ""])[:3]
                what = f"the share of {side} events with {key}"
            out.findings.append(Finding(
                kind, event, metric, before, after,
                f"{event}: {what} fell from {before:g} to {after:g} (-{drop:g}{unit}; alert at {bar:g}{unit})."))
        else:
            fine(kind, event, metric, before, after)
