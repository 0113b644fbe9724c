"""Timing: clock skew between paired events, and server event_time problems Meta rejects or misreads.

What it measures:

* skew of each paired key (see ``dedup``) = earliest server ``event_time`` - earliest browser
  ``event_time``, in seconds: ``skew_p50_s`` (median of the signed skew), ``skew_p95_abs_s`` (95th
  percentile of the absolute skew), ``skew_max_abs_s``, ``skew_over_threshold`` (paired keys whose
  absolute skew exceeds ``skew_threshold_s``, default 300 s), a histogram, and
  ``skew_whole_hours``: skews within ``hour_tolerance_s`` (default 60 s) of a whole number of hours
  between 1 and 14 (the signature of a time-zone bug);
* ``event_time_in_ms``: server rows whose raw ``event_time`` was in milliseconds (``event_time_in_us``:
  microseconds);
* with a ``sent_at`` column in the server log: ``stale_over_7d`` (``sent_at - event_time`` >
  604,800 s), ``future`` (``event_time - sent_at`` > 60 s), ``sent_at_missing`` (rows with an empty
  ``sent_at``, left out of both), and the delivery delay ``sent_at - event_time`` (p50, p95, share
  at most 3,600 s). Without the column these are ``null``.

Quantiles use linear interpolation between the two nearest ranks (the definition of DuckDB's
``quantile_cont``), computed exactly from counts per whole-second value (:func:`exact_quantiles`)
so every engine gives the same number; they are reported as unrounded floats.

Why it matters for Meta CAPI: ``event_time`` must be Unix *seconds*. A request containing one event
older than 7 days is rejected whole (code 100, subcode 2804003); milliseconds read as seconds land
tens of thousands of years in the future; a server clock or time zone off by hours moves events out
of the attribution and dedup windows; Meta recommends sending within an hour (data freshness).

Usual cause of a bad value and the fix: ``Date.now()`` (ms) passed as ``event_time``: divide by 1000;
local time formatted without an offset, or a server in another time zone: send UTC epoch seconds;
server time taken at send time instead of the action's time: pass the browser's time with the
event; batch jobs replaying old events: send in real time and drop events older than 7 days.

Beyond the contract, ``meta_keeps_browser`` / ``meta_keeps_server`` estimate which copy Meta keeps
for each paired key (docs/facts.md §3): the first received, except that the browser copy wins when both
arrive within ``browser_preference_s`` (300 s). Arrival is estimated as the browser ``event_time``
(the Pixel sends at once) and the server ``sent_at`` of the earliest server row, else its
``event_time``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capi_diag.core import fmt, labels
from capi_diag.core.config import Config, whole_numbers
from capi_diag.core.errors import ConfigError
from capi_diag.core.schema import FUTURE_TOLERANCE_S, MAX_EVENT_AGE_S
from capi_diag.diagnostics import FAILING_ROW_COLUMNS, bucket_counts
from capi_diag.engine import measures
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import LazyTable, ibis, ir
from capi_diag.engine.pii import mask_row

SECTION = "timing"

DEFAULTS: dict[str, Any] = {
    "skew_threshold_s": 300,
    "stale_s": MAX_EVENT_AGE_S,
    "future_s": FUTURE_TOLERANCE_S,
    "hour_tolerance_s": 60,
    "browser_preference_s": 300,
    "examples": 20,
}
"""``skew_threshold_s``: absolute skew above which a paired key is flagged (5 min, Meta's
browser-preference window); ``stale_s``: Meta's 7-day limit (docs/facts.md §2); ``future_s``: tolerated
future offset (RudderStack's 1 minute; Meta documents none); ``hour_tolerance_s``: distance from a
whole hour still counted as ``skew_whole_hours`` (under 1,800); ``browser_preference_s``: Meta
prefers the browser copy when both arrive within this (docs/facts.md §3); ``examples``: rows per finding."""

DELAY_OK_S = 3_600
"""Meta: send events as soon as possible, ideally within 1 hour (docs/facts.md §2)."""
MAX_HOUR_OFFSET = 14
"""Time zones span UTC-12 to UTC+14: whole-hour skews beyond 14 h are not read as a zone bug."""

SKEW_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 0), (1, 10), (11, 60), (61, 300), (301, 3_600), (3_601, 86_400), (86_401, None),
)
"""Histogram magnitude buckets (inclusive whole seconds), mirrored for negative skews."""


def options(config: Config | None) -> dict[str, Any]:
    """The ``[timing]`` options over :data:`DEFAULTS`, validated."""
    config = config or Config()
    opts = whole_numbers(config, SECTION, DEFAULTS)
    if opts["hour_tolerance_s"] >= 1_800:
        raise ConfigError(f"{config.source}: [{SECTION}] hour_tolerance_s must be below 1800 "
                          f"(half an hour), found {opts['hour_tolerance_s']}.")
    return opts


# -- exact quantiles -----------------------------------------------------------------------------

def exact_quantiles(t: ir.Table, column: str, qs: Mapping[str, float], by: Sequence[str] = ()) -> ir.Table:
    """Exact quantiles of an integer column with linear interpolation (DuckDB ``quantile_cont``).

    For the ``n`` non-null values sorted ``x[0] <= ... <= x[n-1]``, ``h = (n - 1) * q`` and
    ``d = h - floor(h)``: ``x[floor(h)] + (x[ceil(h)] - x[floor(h)]) * d`` in double precision
    (``hi - lo`` is exact for whole seconds, so only the product and the sum round). DuckDB's
    ``quantile_cont`` evaluates ``lo * (1 - d) + hi * d`` as compiled for the platform (with a
    fused multiply-add on some builds), so the two can differ by rounding error (a few units in
    the last place of the larger of ``|lo|``, ``|hi|``; DuckDB's form loses more when the two have
    opposite signs), never in the ranks used. ``x[k]`` is found from the counts per
    distinct value (the smallest value whose cumulative count exceeds ``k``), so the engine only
    groups and sums: exact on any backend. Returns the ``by`` columns, ``n`` and one
    float column per entry of ``qs`` (no row for a group without values).
    """
    by = list(by)
    v = t.filter(t[column].notnull())
    c = v.mutate(_v=v[column]).group_by([*by, "_v"]).aggregate(_n=ibis._.count())
    cum = ibis.window(group_by=by or None, order_by="_v", rows=(None, 0))
    whole = ibis.window(group_by=by or None)
    c = c.mutate(_cum=c._n.sum().over(cum), _total=c._n.sum().over(whole))
    aggs: dict[str, Any] = {"n": c._total.max()}
    for name, q in qs.items():
        h = (c._total - 1).cast("float64") * float(q)
        aggs[f"_h_{name}"] = h.max()
        aggs[f"_lo_{name}"] = c._v.min(where=c._cum > h.floor())
        aggs[f"_hi_{name}"] = c._v.min(where=c._cum > h.ceil())
    g = c.group_by(by).aggregate(**aggs) if by else c.aggregate(**aggs)
    g = g.filter(g.n > 0)
    out = {}
    for name in qs:
        lo, hi = g[f"_lo_{name}"].cast("float64"), g[f"_hi_{name}"].cast("float64")
        d = g[f"_h_{name}"] - g[f"_h_{name}"].floor()
        out[name] = lo + (hi - lo) * d
    return g.select(*by, "n", **out)


# -- measurement ---------------------------------------------------------------------------------

def paired_skews(ds: Dataset, config: Config | None = None) -> ir.Table:
    """Paired keys of :func:`dedup.key_table`: the key columns, ``first_time``, ``browser_time``,
    ``server_time``, ``server_source_file``, ``server_line``, ``skew_s``, ``abs_skew_s``,
    ``hour_offset`` (whole hours of a time-zone-like skew, else null) and ``keeps``
    (``browser``/``server``: the copy Meta is expected to keep)."""
    ds = ds.using(config)
    return ds.measure("paired_skews")


@measures.register("paired_skews")
def paired_skews_expr(ds: Dataset) -> ir.Table:
    """:func:`paired_skews` as an expression (the engine materializes it once per scope)."""
    opts = options(ds.config)
    kt = ds.measure("key_table")
    p = kt.filter(kt.category == "paired")
    n = (p.skew_s / 3600.0).round().cast("int64")
    resid = (p.skew_s - n * 3600).abs()
    whole = (n != 0) & (n.abs() <= MAX_HOUR_OFFSET) & (resid <= int(opts["hour_tolerance_s"]))
    arrival = p.server_sent_at.fill_null(p.server_time) - p.browser_time
    keeps = ibis.ifelse(arrival >= -int(opts["browser_preference_s"]), "browser", "server")
    # only what the timing figures, examples and failing rows read (not the key table's 25 columns)
    keys = [c for c in ("pixel_id", "event_name", "event_id") if c in p.columns]
    return p.select(*keys, "first_time", "browser_time", "server_time", "server_source_file", "server_line",
                    "skew_s", abs_skew_s=p.skew_s.abs(), hour_offset=ibis.ifelse(whole, n, ibis.null("int64")),
                    keeps=keeps)


def annotated_server_rows(ds: Dataset, config: Config | None = None) -> ir.Table:
    """Server rows with ``in_ms``, ``in_us``, ``delay_s`` (``sent_at - event_time``), ``stale``,
    ``future`` and ``sent_missing`` (all false/null without a ``sent_at`` column)."""
    opts = options(config)
    s = ds.events("server")
    unit = s.event_time_raw_unit
    if ds.has("server", "sent_at"):
        delay = s.sent_at - s.event_time
        stale = (delay > int(opts["stale_s"])).fill_null(False)
        future = (-delay > int(opts["future_s"])).fill_null(False)
        missing = s.sent_at.isnull()
    else:
        delay = ibis.null("int64")
        stale = future = missing = ibis.literal(False)
    return s.mutate(in_ms=(unit == "ms").fill_null(False), in_us=(unit == "us").fill_null(False),
                    delay_s=delay, stale=stale, future=future, sent_missing=missing)


def _bucket_label(lo: int, hi: int | None, sign: int) -> tuple[str, int | None, int | None]:
    if sign > 0:
        return (f"+{lo}…+{hi} s" if hi is not None else f">= +{lo} s"), lo, hi
    if hi is None:
        return f"<= -{lo} s", None, -lo
    return f"-{hi}…-{lo} s", -hi, -lo


def _histogram(ds: Dataset, p: ir.Table) -> list[dict[str, Any]]:
    bins: list[tuple[str, int | None, int | None]] = []
    for lo, hi in reversed(SKEW_BUCKETS[1:]):
        bins.append(_bucket_label(lo, hi, -1))
    bins.append(("0 s", 0, 0))
    for lo, hi in SKEW_BUCKETS[1:]:
        bins.append(_bucket_label(lo, hi, 1))
    counts = bucket_counts(ds, "timing.skew_histogram", p, "skew_s", [(lo, hi) for _, lo, hi in bins])
    return [{"label": label, "min_s": lo, "max_s": hi, "keys": int(counts.get(i, 0))}
            for i, (label, lo, hi) in enumerate(bins)]


_SKEW_COUNTS = (
    "paired", "skew_over_threshold", "skew_whole_hours", "meta_keeps_browser", "meta_keeps_server",
)
_NAME_COUNTS = (
    *_SKEW_COUNTS, "server_rows", "event_time_in_ms", "event_time_in_us", "stale_over_7d", "future",
    "sent_at_missing", "rows_with_sent_at", "delay_within_1h",
)
_QUANT_KEYS = ("skew_p50_s", "skew_p95_abs_s", "delivery_delay_p50_s", "delivery_delay_p95_s")


def analyze(ds: Dataset, config: Config | None = None,
            prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``timing`` section (every definition is in the module docstring)."""
    config = config or Config()
    ds = ds.using(config)
    opts = options(config)
    thr = int(opts["skew_threshold_s"])
    has_sent = ds.has("server", "sent_at")
    return _analyze(ds, config, opts, thr, has_sent, LazyTable(lambda: paired_skews(ds)))


def _analyze(ds: Dataset, config: Config, opts: Mapping[str, Any], thr: int, has_sent: bool,
             p: ir.Table) -> dict[str, Any]:
    per_name: dict[str, dict[str, Any]] = {}

    def entry(name: Any) -> dict[str, Any]:
        return per_name.setdefault(_name(name), {**dict.fromkeys(_NAME_COUNTS, 0),
                                                        **dict.fromkeys(_QUANT_KEYS), "skew_max_abs_s": None})

    # Every query below is built only when its SQL is not cached yet (a builder, not an expression).
    def skew_counts() -> ir.Table:
        return p.group_by("event_name").aggregate(
            paired=p.count(),
            skew_max_abs_s=p.abs_skew_s.max(),
            skew_over_threshold=p.count(where=p.abs_skew_s > thr),
            skew_whole_hours=p.count(where=p.hour_offset.notnull()),
            meta_keeps_browser=p.count(where=p.keeps == "browser"),
            meta_keeps_server=p.count(where=p.keeps == "server"),
        )

    for r in ds.fetch("timing.skew_counts", skew_counts):
        e = entry(r["event_name"])
        for k in _SKEW_COUNTS:
            e[k] = int(r[k])
        e["skew_max_abs_s"] = int(r["skew_max_abs_s"])
    for r in ds.fetch("timing.skew_p50_by_name", lambda: exact_quantiles(p, "skew_s", {"q": 0.5}, ["event_name"])):
        entry(r["event_name"])["skew_p50_s"] = r["q"]
    for r in ds.fetch("timing.skew_p95_by_name",
                      lambda: exact_quantiles(p, "abs_skew_s", {"q": 0.95}, ["event_name"])):
        entry(r["event_name"])["skew_p95_abs_s"] = r["q"]

    s = LazyTable(lambda: annotated_server_rows(ds, config))

    def row_counts() -> ir.Table:
        with_sent = s.sent_at.notnull() if has_sent else ibis.literal(False)
        return s.group_by("event_name").aggregate(
            server_rows=s.count(),
            event_time_in_ms=s.count(where=s.in_ms),
            event_time_in_us=s.count(where=s.in_us),
            stale_over_7d=s.count(where=s.stale),
            future=s.count(where=s.future),
            sent_at_missing=s.count(where=s.sent_missing),
            rows_with_sent_at=s.count(where=with_sent),
            delay_within_1h=s.count(where=with_sent & (s.delay_s <= DELAY_OK_S)),
        )

    for r in ds.fetch("timing.row_counts", row_counts):
        e = entry(r["event_name"])
        for k in ("server_rows", "event_time_in_ms", "event_time_in_us", "stale_over_7d", "future",
                  "sent_at_missing", "rows_with_sent_at", "delay_within_1h"):
            e[k] = int(r[k])
    delays = LazyTable(lambda: s.filter(s.sent_at.notnull()))
    if has_sent:
        for r in ds.fetch("timing.delay_by_name",
                          lambda: exact_quantiles(delays, "delay_s", {"p50": 0.5, "p95": 0.95}, ["event_name"])):
            e = entry(r["event_name"])
            e["delivery_delay_p50_s"], e["delivery_delay_p95_s"] = r["p50"], r["p95"]

    totals = dict.fromkeys(_NAME_COUNTS, 0)
    for e in per_name.values():
        for k in _NAME_COUNTS:
            totals[k] += e[k]
    maxes = [e["skew_max_abs_s"] for e in per_name.values() if e["skew_max_abs_s"] is not None]
    overall = _overall_quantiles(ds, p, delays, has_sent)

    def sent_only(v: Any) -> Any:
        return v if has_sent else None

    by_event_name: dict[str, dict[str, Any]] = {}
    for name in sorted(per_name, key=lambda n: (-(per_name[n]["server_rows"] + per_name[n]["paired"]), n)):
        e = per_name[name]
        by_event_name[name] = {
            **{k: e[k] for k in ("paired", "skew_p50_s", "skew_p95_abs_s", "skew_max_abs_s",
                                 "skew_over_threshold", "skew_whole_hours", "meta_keeps_browser",
                                 "meta_keeps_server", "server_rows", "event_time_in_ms", "event_time_in_us")},
            **{k: sent_only(e[k]) for k in ("stale_over_7d", "future", "sent_at_missing",
                                            "delivery_delay_p50_s", "delivery_delay_p95_s")},
            "delivery_delay_within_1h_share": sent_only(_ratio(e["delay_within_1h"], e["rows_with_sent_at"])),
        }

    limit = int(opts["examples"])
    status, why = ("evaluated", None) if totals["server_rows"] else (
        "not_evaluated", "The server log has no rows.")
    return {
        "status": status,
        "reason": why,
        "sent_at_column": has_sent,
        "skew_threshold_s": int(opts["skew_threshold_s"]),
        "paired": totals["paired"],
        "skew_p50_s": overall["skew_p50_s"],
        "skew_p95_abs_s": overall["skew_p95_abs_s"],
        "skew_max_abs_s": max(maxes) if maxes else None,
        "skew_over_threshold": totals["skew_over_threshold"],
        "skew_histogram": _histogram(ds, p),
        "skew_whole_hours": totals["skew_whole_hours"],
        "skew_whole_hours_by_offset": _hour_offsets(ds, p),
        "meta_keeps_browser": totals["meta_keeps_browser"],
        "meta_keeps_server": totals["meta_keeps_server"],
        "server_rows": totals["server_rows"],
        "event_time_in_ms": totals["event_time_in_ms"],
        "event_time_in_us": totals["event_time_in_us"],
        "stale_over_7d": sent_only(totals["stale_over_7d"]),
        "future": sent_only(totals["future"]),
        "sent_at_missing": sent_only(totals["sent_at_missing"]),
        "delivery_delay_p50_s": overall["delivery_delay_p50_s"],
        "delivery_delay_p95_s": overall["delivery_delay_p95_s"],
        "delivery_delay_within_1h_share": sent_only(_ratio(totals["delay_within_1h"],
                                                           totals["rows_with_sent_at"])),
        "by_event_name": by_event_name,
        "examples": _examples(ds, p, s, thr, has_sent, limit),
    }


def _name(v: Any) -> str:
    return "(none)" if v is None else str(v)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _overall_quantiles(ds: Dataset, p: ir.Table, delays: ir.Table, has_sent: bool) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(_QUANT_KEYS)
    for col, q, key in (("skew_s", 0.5, "skew_p50_s"), ("abs_skew_s", 0.95, "skew_p95_abs_s")):
        rows = ds.fetch(f"timing.{key}", lambda col=col, q=q: exact_quantiles(p, col, {"q": q}))
        out[key] = rows[0]["q"] if rows else None
    if has_sent:
        rows = ds.fetch("timing.delay", lambda: exact_quantiles(delays, "delay_s", {"p50": 0.5, "p95": 0.95}))
        if rows:
            out["delivery_delay_p50_s"], out["delivery_delay_p95_s"] = rows[0]["p50"], rows[0]["p95"]
    return out


def _hour_offsets(ds: Dataset, p: ir.Table) -> list[dict[str, int]]:
    def build() -> ir.Table:
        w = p.filter(p.hour_offset.notnull())
        return w.group_by("hour_offset").aggregate(keys=w.count()).order_by([ibis.desc("keys"), "hour_offset"])

    return [{"offset_s": int(r["hour_offset"]) * 3600, "keys": int(r["keys"])}
            for r in ds.fetch("timing.hour_offsets", build)]


def _examples(ds: Dataset, p: ir.Table, s: ir.Table, thr: int, has_sent: bool,
              limit: int) -> dict[str, list[dict[str, Any]]]:
    keys = list(measures.key_columns(ds))  # the paired skews' key columns
    key_cols = [*keys, "browser_time", "server_time", "skew_s", "server_source_file", "server_line"]
    order = ["first_time", *keys]
    # two queries: the paired keys' examples, and the server rows' (each part its own filter; the
    # columns a part does not show are dropped from its rows)
    pairs = {"skew_over_threshold": lambda: p.abs_skew_s > thr, "skew_whole_hours": lambda: p.hour_offset.notnull()}
    pair_cols = {"skew_over_threshold": key_cols, "skew_whole_hours": [*key_cols, "offset_h"]}

    def pair_part(name: str) -> ir.Table:
        return p.filter(pairs[name]()).order_by(order).limit(limit).select(
            *key_cols, "first_time", offset_h=p.hour_offset)

    got = ds.fetch_parts("timing.ex.pairs", list(pairs), pair_part, order)
    out = {name: [{c: r[c] for c in pair_cols[name]} for r in rows] for name, rows in got.items()}
    row_cols = ["source_file", "line", "event_name", "event_id", "event_time", "event_time_raw"]
    row_order = ["event_time", "file_index", "line"]
    flags = {"event_time_in_ms": lambda: s.in_ms, "event_time_in_us": lambda: s.in_us}
    shown = dict.fromkeys(flags, row_cols)
    if has_sent:
        flags |= {"stale_over_7d": lambda: s.stale, "future": lambda: s.future}
        shown |= dict.fromkeys(("stale_over_7d", "future"), [*row_cols, "sent_at", "delay_s"])

    every = list(dict.fromkeys([c for cols in shown.values() for c in cols] + row_order))

    def row_part(name: str) -> ir.Table:
        return s.filter(flags[name]()).order_by(row_order).limit(limit).select(*every)

    got = ds.fetch_parts("timing.ex.rows", list(flags), row_part, row_order)
    out |= {name: [{c: r[c] for c in shown[name]} for r in rows] for name, rows in got.items()}
    return {k: [mask_row(r) for r in v] for k, v in out.items()}


# -- rows behind the findings --------------------------------------------------------------------

def failing_rows(ds: Dataset, config: Config | None = None) -> ir.Table:
    """One row per (server row, finding): ``event_time_in_ms`` / ``event_time_in_us`` and
    ``stale_over_7d`` (``error``: Meta misreads or rejects them), ``future`` (``warning``), and the
    earliest server row of each paired key with ``skew_over_threshold`` or ``skew_whole_hours``
    (``warning``)."""
    config = config or Config()
    ds = ds.using(config)
    opts = options(config)
    thr = int(opts["skew_threshold_s"])
    s = annotated_server_rows(ds, config)
    parts = []

    def rows(flag: ir.BooleanValue, finding: str, severity: str, detail: ir.StringValue) -> ir.Table:
        t = s.filter(flag)
        return t.select(section=ibis.literal(SECTION), finding=ibis.literal(finding),
                        severity=ibis.literal(severity), role=ibis.literal("server"),
                        source_file=t.source_file, line=t.line.cast("int64"), event_name=t.event_name,
                        event_id=t.event_id, detail=detail)

    raw = ibis.literal("raw event_time ").concat(s.event_time_raw.fill_null(""))
    delay = ibis.literal("sent_at - event_time = ").concat(s.delay_s.cast("string"), " s")
    parts.append(rows(s.in_ms, "event_time_in_ms", "error", raw))
    parts.append(rows(s.in_us, "event_time_in_us", "error", raw))
    parts.append(rows(s.stale, "stale_over_7d", "error", delay))
    parts.append(rows(s.future, "future", "warning", delay))
    p = paired_skews(ds)
    for finding, flag in (("skew_over_threshold", p.abs_skew_s > thr),
                          ("skew_whole_hours", p.hour_offset.notnull())):
        t = p.filter(flag)
        parts.append(t.select(
            section=ibis.literal(SECTION), finding=ibis.literal(finding), severity=ibis.literal("warning"),
            role=ibis.literal("server"), source_file=t.server_source_file, line=t.server_line.cast("int64"),
            event_name=t.event_name, event_id=t.event_id,
            detail=ibis.literal("skew ").concat(t.skew_s.cast("string"), " s"),
        ))
    return ibis.union(*parts, distinct=False).select(*FAILING_ROW_COLUMNS)


# -- explanation ---------------------------------------------------------------------------------

def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One ``{"label", "value", "text", "fix"}`` entry per number of the section."""
    opts = options(config)
    thr = fmt.duration(result.get("skew_threshold_s", opts["skew_threshold_s"]))
    stale, future = fmt.duration(opts["stale_s"]), fmt.duration(opts["future_s"])
    prefer, within = fmt.duration(opts["browser_preference_s"]), fmt.duration(DELAY_OK_S)
    out: list[dict[str, Any]] = []
    if result.get("status") == "not_evaluated":
        out.append({"label": "Timing", "value": None, "text": f"Not evaluated: {result.get('reason')}",
                    "fix": "Upload the server (CAPI) log."})

    def e(k: str, text: str, fix: str, label: str | None = None) -> None:
        unit = ("seconds" if k.endswith("_s") else "share" if k.endswith("_share") else labels.unit(k))
        out.append({"label": label or labels.label(k), "value": result.get(k), "text": text, "fix": fix, "unit": unit})

    clock_fix = ("Send event_time as UTC Unix seconds of the action itself (pass the browser's time to the "
                 "server), not the send time or a local time.")
    e("skew_p50_s",
      f"Median of server minus browser event_time over {fmt.count(result.get('paired'))} paired dedup keys "
      "(earliest rows); "
      "positive means the server's time is later.", clock_fix)
    e("skew_p95_abs_s",
      "95 % of paired keys have an absolute skew at or below this (linear interpolation).", clock_fix)
    e("skew_max_abs_s", "The largest absolute skew of a paired key.", clock_fix)
    e("skew_over_threshold",
      f"Paired keys whose server and browser event_time differ by more than {thr}.", clock_fix)
    e("skew_whole_hours",
      "Paired keys whose skew is a whole number of hours (1 to 14, within the tolerance): the typical "
      "sign of a time-zone bug.",
      "Convert local times to UTC before taking the epoch, or send an ISO time with its offset.")
    e("meta_keeps_browser",
      "Paired keys whose browser copy Meta is expected to keep (it arrives first, or within "
      f"{prefer} of the server copy).", "Nothing to fix: one copy counts; make sure the Pixel copy carries the "
      "same parameters as the server copy.")
    e("meta_keeps_server",
      f"Paired keys whose server copy arrives more than {prefer} before the browser copy.",
      "Nothing to fix unless unexpected; it usually means the browser event is delayed or its time wrong.")
    e("event_time_in_ms",
      "Server rows whose raw event_time was in milliseconds; Meta expects seconds and rejects or "
      "misdates them.",
      "Divide by 1000 (Math.floor(Date.now() / 1000)).")
    e("event_time_in_us",
      "Server rows whose raw event_time was in microseconds.", "Send whole seconds since the epoch.")
    no_sent = "" if result.get("sent_at_column") else " Not evaluated: the server log has no sent_at column."
    log_sent = "Log sent_at (the time of the request) with every server event."
    e("stale_over_7d",
      f"Server rows sent more than {stale} after their event_time; Meta rejects the whole request "
      f"(subcode 2804003).{no_sent}",
      f"Send in real time and drop events older than {stale} from batches." if not no_sent else log_sent,
      label=f"Sent more than {stale} late")
    e("future",
      f"Server rows whose event_time is more than {future} after sent_at.{no_sent}",
      "Sync the server clock (NTP) and send UTC seconds." if not no_sent else log_sent)
    e("sent_at_missing",
      f"Server rows with an empty sent_at, left out of the stale/future/delay figures.{no_sent}", log_sent)
    e("delivery_delay_p50_s",
      f"Median of sent_at minus event_time over server rows with sent_at.{no_sent}",
      "Send events as they happen instead of in batches.")
    e("delivery_delay_p95_s",
      f"95th percentile of sent_at minus event_time.{no_sent}",
      "Send events as they happen instead of in batches.")
    e("delivery_delay_within_1h_share",
      f"Share of server rows with sent_at sent at most {within} after event_time (Meta: ideally within 1 "
      f"hour).{no_sent}", "Move batch uploads to real-time sends.", label=f"Delivered within {within}")
    return out
