"""Before and after: what changed between two reports (``compare BEFORE.json AFTER.json``), or in one
set of logs split at a deploy (``compare --browser P --server P --split-at TIME``: the logs are
imported once and each half is a report of the same dataset filtered by ``event_time`` in the
engine, ``< TIME`` and ``>= TIME``).

The figures compared, overall (``event_name`` null) and per event name (the report's
``by_event_name``); ``metric`` is the figure's path in the report JSON, with ``path`` the exact place
of a per-event value:

================================================  ====================  ==========  ===============
metric                                            per event at          better      tolerance
================================================  ====================  ==========  ===============
``dedup.pairing_rate``, ``.browser_coverage``,    ``dedup.by_event_     higher      ``share_pp``
``.server_coverage``                              name.<e>.<figure>``
``timing.skew_p50_s`` (its size),                 ``timing.by_event_    lower       ``skew_s``
``timing.skew_p95_abs_s``                         name.<e>.<figure>``
``match_keys.<key>.coverage``                     (overall only)        higher      ``share_pp``
``match_keys.<key>.valid_coverage``               ``match_keys.<key>.   higher      ``share_pp``
                                                  by_event_name.<e>``
``emq.estimate``                                  ``emq.by_event_name.  higher      ``emq_points``
                                                  <e>.estimate``
``consent.<count>_share`` (forwarded without      (overall only)        lower       ``share_pp``
consent, consent unknown: count / server_rows)
``contract.<count>_share`` (count / server rows;  ``contract.by_event_  lower       ``share_pp``
the Purchase counts / purchase rows)              name.<e>.<count>``
``checklist.<id>.status``                         (overall)             pass > warn > fail
================================================  ====================  ==========  ===============

A change is listed when a value differs (or appears or disappears); it is ``worse`` when it moved
the wrong way by more than its tolerance (``[compare]``: shares 1 point, EMQ 0.5, skew 5 s), or a
checklist status went down (pass > warn > fail; ``not_evaluated`` and ``error`` are not judged).
Worse changes come first, the largest (in tolerances) first.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from capi_diag.core.config import Config
from capi_diag.core.errors import EXIT_BAD_RESULT, EXIT_OK, ConfigError, UsageError

SECTION = "compare"
DEFAULTS: dict[str, Any] = {"share_pp": 1.0, "emq_points": 0.5, "skew_s": 5.0}
"""Tolerances: shares in percentage points (1 point: below it, a few events' chance), EMQ points on
Meta's 0-10 scale (half a point: the step Meta's own score moves by), skew in seconds (5 s: the
clock jitter of two machines)."""

STATUS_RANK = {"fail": 0, "warn": 1, "pass": 2}
_DEDUP = ("pairing_rate", "browser_coverage", "server_coverage")
_SKEW = ("skew_p50_s", "skew_p95_abs_s")
_CONSENT = ("forwarded_without_consent", "consent_unknown")
_CONTRACT = ("purchase_missing_value", "purchase_missing_currency", "value_not_numeric", "currency_invalid",
             "action_source_invalid", "event_source_url_missing", "nonstandard_event_name",
             "test_event_code_present", "insufficient_user_data")
_PURCHASE_COUNTS = ("purchase_missing_value", "purchase_missing_currency")


def tolerances(config: Config | None = None) -> dict[str, Any]:
    config = config or Config()
    opts = config.options(SECTION, DEFAULTS)
    for key, value in opts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{config.source}: [{SECTION}] {key} must be a number >= 0, found {value!r}.")
    return opts


Figure = tuple[Any, str, str]
"""(value, kind: share | emq | seconds | status, better: higher | lower | abs_lower | status)."""


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _share(count: Any, total: Any) -> float | None:
    c, t = _num(count), _num(total)
    return None if c is None or not t else c / t


def _evaluated(report: Mapping[str, Any], section: str) -> Mapping[str, Any] | None:
    s = report.get(section)
    return s if isinstance(s, Mapping) and s.get("status", "evaluated") == "evaluated" else None


def figures(report: Mapping[str, Any]) -> dict[tuple[str, str | None], tuple[Figure, str]]:
    """``{(metric, event_name): ((value, kind, better), path)}`` of one report."""
    out: dict[tuple[str, str | None], tuple[Figure, str]] = {}

    def put(metric: str, event: str | None, value: Any, kind: str, better: str, path: str | None = None) -> None:
        out[(metric, event)] = ((value, kind, better), path or metric)

    dedup = _evaluated(report, "dedup")
    if dedup:
        for f in _DEDUP:
            put(f"dedup.{f}", None, _num(dedup.get(f)), "share", "higher")
        for e, d in (dedup.get("by_event_name") or {}).items():
            for f in _DEDUP:
                put(f"dedup.{f}", e, _num(d.get(f)), "share", "higher", f"dedup.by_event_name.{e}.{f}")
    timing = _evaluated(report, "timing")
    if timing:
        for f in _SKEW:
            put(f"timing.{f}", None, _num(timing.get(f)), "seconds", "abs_lower")
        for e, d in (timing.get("by_event_name") or {}).items():
            for f in _SKEW:
                put(f"timing.{f}", e, _num(d.get(f)), "seconds", "abs_lower", f"timing.by_event_name.{e}.{f}")
    keys = _evaluated(report, "match_keys")
    if keys:
        for k, d in keys.items():
            if not isinstance(d, Mapping) or "valid_coverage" not in d:
                continue
            put(f"match_keys.{k}.coverage", None, _num(d.get("coverage")), "share", "higher")
            put(f"match_keys.{k}.valid_coverage", None, _num(d.get("valid_coverage")), "share", "higher")
            for e, v in (d.get("by_event_name") or {}).items():
                put(f"match_keys.{k}.valid_coverage", e, _num(v), "share", "higher",
                    f"match_keys.{k}.by_event_name.{e}")
    emq = _evaluated(report, "emq")
    if emq:
        put("emq.estimate", None, _num(emq.get("estimate")), "emq", "higher")
        for e, d in (emq.get("by_event_name") or {}).items():
            put("emq.estimate", e, _num(d.get("estimate")), "emq", "higher", f"emq.by_event_name.{e}.estimate")
    consent = _evaluated(report, "consent")
    if consent:
        for f in _CONSENT:
            put(f"consent.{f}_share", None, _share(consent.get(f), consent.get("server_rows")), "share", "lower",
                f"consent.{f}")
    contract = _evaluated(report, "contract")
    if contract:
        for f in _CONTRACT:
            total = contract.get("purchase_rows") if f in _PURCHASE_COUNTS else contract.get("server_rows")
            put(f"contract.{f}_share", None, _share(contract.get(f), total), "share", "lower", f"contract.{f}")
        for e, d in (contract.get("by_event_name") or {}).items():
            for f in _CONTRACT:
                put(f"contract.{f}_share", e, _share(d.get(f), d.get("rows")), "share", "lower",
                    f"contract.by_event_name.{e}.{f}")
    for item in report.get("checklist") or []:
        if isinstance(item, Mapping) and item.get("id"):
            put(f"checklist.{item['id']}.status", None, item.get("status"), "status", "status")
    return out


def _tolerance(kind: str, tol: Mapping[str, Any]) -> float:
    return {"share": tol["share_pp"] / 100, "emq": tol["emq_points"], "seconds": tol["skew_s"]}.get(kind, 0.0)


def changes(before: Mapping[str, Any], after: Mapping[str, Any], tol: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison document: ``{"changes": [...], "worse": N, "unchanged": N, "tolerances": {...}}``."""
    fb, fa = figures(before), figures(after)
    rows: list[tuple[bool, float, dict[str, Any]]] = []
    unchanged = 0
    for key in list(fb) + [k for k in fa if k not in fb]:
        (vb, kind, better), path = fb.get(key) or (((None,) + fa[key][0][1:]), fa[key][1])
        va = fa[key][0][0] if key in fa else None
        if key in fa:
            path = fa[key][1]
        if vb == va or (vb is None and va is None):
            unchanged += 1
            continue
        worse, badness, delta = False, 0.0, None
        if kind == "status":
            rb, ra = STATUS_RANK.get(str(vb)), STATUS_RANK.get(str(va))
            if rb is not None and ra is not None:
                delta = ra - rb
                worse = ra < rb
                badness = float(rb - ra) * 1000
        elif vb is not None and va is not None:
            delta = round(va - vb, 6)
            if better == "abs_lower":
                moved = abs(va) - abs(vb)
            elif better == "lower":
                moved = va - vb
            else:
                moved = vb - va
            t = _tolerance(kind, tol)
            worse = round(moved, 9) > t
            badness = moved / t if t else moved
        metric, event = key
        row = {"metric": metric, "event_name": event, "before": vb, "after": va, "delta": delta, "worse": worse,
               "path": path}
        rows.append((worse, badness, row))
    rows.sort(key=lambda r: (not r[0], -r[1]))
    listed = [r[2] for r in rows]
    return {"changes": listed, "worse": sum(1 for r in listed if r["worse"]), "unchanged": unchanged,
            "tolerances": dict(tol)}


# -- words (the dashboard) -------------------------------------------------------------------------

def metric_words(metric: str) -> str:
    """A compared figure in the analyst's words (never "Pairing rate": that label is the logs' own
    headline figure on the other pages)."""
    from capi_diag.core import labels

    parts = metric.split(".")
    if parts[0] == "checklist" and len(parts) == 3:
        return "Checklist: " + labels.label(parts[1], section="checklist")
    if parts[0] == "dedup":
        return {"pairing_rate": "Paired share of dedup keys", "browser_coverage": "Browser events paired",
                "server_coverage": "Server events paired"}.get(parts[1], labels.label(parts[1]))
    if parts[0] == "timing":
        return labels.label(parts[1])
    if parts[0] == "match_keys" and len(parts) == 3:
        return f"{labels.field(parts[1])} " + ("sent" if parts[2] == "coverage" else "sent and valid")
    if parts[0] == "emq":
        return "EMQ estimate"
    if parts[0] in ("consent", "contract"):
        share = parts[1].removesuffix("_share")
        return f"{labels.label(share)} (share)"
    return labels.humanize(metric)


def value_words(value: Any, metric: str) -> str:
    from capi_diag.core import fmt, labels

    if value is None:
        return "-"
    if metric.startswith("checklist."):
        return labels.STATUSES.get(str(value), str(value))
    if metric.startswith("emq."):
        return fmt.score(value)
    if metric.startswith("timing."):
        return fmt.duration(value)
    return fmt.share(value)


# -- inputs -----------------------------------------------------------------------------------------

def load_report(path: str) -> dict[str, Any]:
    """A report JSON (``report --format json``) or :class:`UsageError` naming the file."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: report not found; pass two files written by 'capi-diag report --format json'.") \
            from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path}: not a JSON report ({type(e).__name__}); pass a file written by "
                         "'capi-diag report --format json'.") from None
    if not isinstance(doc, dict) or "checklist" not in doc or "schema_version" not in doc:
        raise UsageError(f"{path}: a JSON file but not a capi-diag report (no schema_version/checklist); pass a "
                         "file written by 'capi-diag report --format json'.")
    return doc


def parse_split(text: str, assume_tz: str = "UTC") -> int:
    """``--split-at``: Unix seconds, or ISO-8601 (without an offset: in ``assume_tz``)."""
    value = text.strip()
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--split-at {text!r} is neither Unix seconds nor ISO-8601; e.g. 2026-11-18T12:00:00Z or "
                         "1795003200.") from None
    if when.tzinfo is None:
        try:
            when = when.replace(tzinfo=zoneinfo.ZoneInfo(assume_tz))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"--assume-tz {assume_tz!r} is not a time zone name.") from None
    return int(when.timestamp())


def split_reports(inputs: Any, at: int, config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reports of ``inputs`` (:class:`capi_diag.api.Inputs`) before ``at`` and from ``at`` on: one
    import, two datasets filtered by ``event_time`` in the engine."""
    from capi_diag import api
    from capi_diag.engine.dataset import Filters

    with api.opened(inputs, config) as ds:
        halves = []
        for name, f in (("before", Filters(end=at)), ("after", Filters(start=at))):
            part = ds.with_filters(f)
            rows = 0
            for role in ("browser", "server"):
                t = part.events(role)
                rows += int(part.fetch(f"compare.{name}.{role}", t.aggregate(n=t.count()))[0]["n"] or 0)
            if not rows:
                when = dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")
                raise UsageError(f"no event {name} --split-at {when} in the logs; choose a time inside their period.")
            halves.append(api.report(part, config))
    return halves[0], halves[1]


# -- output -----------------------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def to_markdown(doc: Mapping[str, Any]) -> str:
    lines = ["# What changed", "", f"{doc['worse']} figure(s) worse beyond tolerance; {len(doc['changes'])} changed, "
             f"{doc['unchanged']} unchanged.", "",
             "| worse | metric | event | before | after | change |", "| --- | --- | --- | ---: | ---: | ---: |"]
    for c in doc["changes"]:
        lines.append(f"| {'yes' if c['worse'] else ''} | {c['metric']} | {c['event_name'] or '(overall)'} | "
                     f"{_fmt(c['before'])} | {_fmt(c['after'])} | {_fmt(c['delta'])} |")
    return "\n".join(lines) + "\n"


def to_html(doc: Mapping[str, Any]) -> str:
    e = html.escape
    worse_class = ' class="worse"'
    rows = "".join(
        f"<tr{worse_class if c['worse'] else ''}><td>{'worse' if c['worse'] else ''}</td><td>{e(c['metric'])}"
        f"</td><td>{e(c['event_name'] or '(overall)')}</td><td>{e(_fmt(c['before']))}</td>"
        f"<td>{e(_fmt(c['after']))}</td><td>{e(_fmt(c['delta']))}</td></tr>" for c in doc["changes"])
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>capi-diag: what changed</title>"
            "<style>.worse{background:#fde2e1}td,th{padding:2px 8px;text-align:left}</style></head><body>"
            f"<h1>What changed</h1><p>{doc['worse']} figure(s) worse beyond tolerance; {len(doc['changes'])} changed, "
            f"{doc['unchanged']} unchanged.</p><table><tr><th>worse</th><th>metric</th><th>event</th><th>before</th>"
            f"<th>after</th><th>change</th></tr>{rows}</table></body></html>\n")


def render(doc: Mapping[str, Any], fmt: str) -> str:
    if fmt == "markdown":
        return to_markdown(doc)
    if fmt == "html":
        return to_html(doc)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def command(args: Any, out: TextIO) -> int:
    """``compare`` (see :mod:`capi_diag.cli.monitor`): 1 when anything got worse, 0 when not, 2 unusable."""
    config = Config.load(args.config)
    tol = tolerances(config)
    logs = bool(args.browser or args.server)
    if args.reports and (logs or args.split_at):
        raise UsageError("compare: give two reports, or --browser/--server with --split-at, not both.")
    if args.reports:
        if len(args.reports) != 2:
            raise UsageError(f"compare: needs two reports, BEFORE.json AFTER.json (got {len(args.reports)}).")
        before, after = (load_report(p) for p in args.reports)
    else:
        if not (args.browser and args.server and args.split_at):
            raise UsageError("compare: give BEFORE.json AFTER.json, or --browser, --server and --split-at TIME.")
        from capi_diag import api

        inputs = api.Inputs(browser=args.browser, server=args.server, assume_tz=args.assume_tz)
        before, after = split_reports(inputs, parse_split(args.split_at, args.assume_tz), config)
    doc = changes(before, after, tol)
    text = render(doc, args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"{args.output}: cannot write the comparison ({e.strerror}); choose a writable "
                             "--output path.") from None
    else:
        out.write(text)
        out.flush()
    return EXIT_BAD_RESULT if doc["worse"] else EXIT_OK
