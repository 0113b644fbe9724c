"""Report sections reshaped into the small tables the pages show. Pure functions, no streamlit.

Every number comes from the report dict that :func:`capi_diag.report.build_report` returns (the
same dict the ``report`` command renders), so the dashboard and the report always agree. Ids become
the analyst's labels (:mod:`capi_diag.core.labels`), numbers take the one format (:mod:`capi_diag.core.fmt`),
and every count says what it counts (dedup keys or rows). Example rows pass through
:func:`capi_diag.engine.pii.mask_row` before they are shown.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import pandas as pd

from capi_diag.core import fmt, labels
from capi_diag.core.patterns import MATCH_KEY_FIELDS
from capi_diag.core.schema import DEDUP_WINDOW_S
from capi_diag.engine.pii import mask_row
from capi_diag.report import entry_value, example_table
from capi_diag.verdict.checklist import GROUP_ORDER, grouped

STATUSES = GROUP_ORDER
"""Checklist statuses in reading order: blockers, warnings, not evaluated, passing."""


def diagnostic_module(section: str) -> ModuleType:
    """``capi_diag.diagnostics.<section>``, or ``capi_diag.verdict.checklist`` for ``checklist``."""
    name = "capi_diag.verdict.checklist" if section == "checklist" else f"capi_diag.diagnostics.{section}"
    return importlib.import_module(name)


def cell(value: Any) -> Any:
    """A value as a table cell: lists joined, everything else as it is."""
    if isinstance(value, (list, tuple)):
        return ", ".join("" if v is None else str(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value


def frame(rows: Iterable[Mapping[str, Any]], *, mask: bool = True) -> pd.DataFrame:
    """A table of rows (PII masked), with list cells joined and text-typed for display."""
    out = [{k: cell(v) for k, v in (mask_row(dict(r)) if mask else dict(r)).items()} for r in rows]
    df = pd.DataFrame(out)
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return df


def example_frame(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Example rows (PII masked) with columns and values in words: UTC times, durations, labels."""
    headers, cells = example_table([mask_row(dict(r)) for r in rows])
    return pd.DataFrame(cells, columns=_unique(headers))


def _unique(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in headers:
        seen[h] = seen.get(h, 0) + 1
        out.append(h if seen[h] == 1 else f"{h} ({seen[h]})")
    return out


# -- shared section pieces --------------------------------------------------------------------------

def explanations(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [{"Measure": e.get("label", ""), "Value": entry_value(e),
             "What it means": e.get("text", ""), "Fix": e.get("fix") or ""} for e in entries]
    return pd.DataFrame(rows, columns=["Measure", "Value", "What it means", "Fix"])


def example_tables(result: Mapping[str, Any] | None, *,
                   only: tuple[str, ...] | None = None) -> dict[str, pd.DataFrame]:
    """``{finding: table}`` for the section's non-empty example lists."""
    if not isinstance(result, Mapping) or not isinstance(result.get("examples"), Mapping):
        return {}
    out = {}
    for name, rows in result["examples"].items():
        if only is not None and name not in only:
            continue
        if isinstance(rows, list) and rows:
            out[name] = example_frame(rows)
    return out


# -- checklist --------------------------------------------------------------------------------------

def observed_text(item: Mapping[str, Any]) -> str:
    """An item's observed value in its unit (``share`` as %, ``seconds``, ``score`` out of 10)."""
    return fmt.value(item.get("observed"), item.get("unit"))


def checklist_items(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checklist items in reading order (blockers, warnings, not evaluated, passing; each group
    in go-live order), with observed value and status in words."""
    items = []
    for item in grouped(list(report.get("checklist") or [])):
        items.append({**item, "observed_text": observed_text(item),
                      "threshold_text": str(item.get("threshold") or fmt.NA),
                      "status_text": labels.STATUSES.get(item["status"], item["status"]),
                      "page_section": item.get("page") or item_section(item)})
    return items


def status_counts(report: Mapping[str, Any]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for item in report.get("checklist") or []:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return counts


def headline(report: Mapping[str, Any], rows: Mapping[str, int]) -> dict[str, Any]:
    """The checklist page's headline figures, straight from the report."""
    dedup = report.get("dedup") or {}
    timing = report.get("timing") or {}
    emq = report.get("emq") or {}
    return {
        "pairing_rate": dedup.get("pairing_rate"),
        "browser_events": rows.get("browser", 0),
        "server_events": rows.get("server", 0),
        "skew_p95_abs_s": timing.get("skew_p95_abs_s"),
        "emq_estimate": emq.get("estimate"),
        "emq_band": emq.get("band"),
    }


def emq_card(report: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(caption, status)`` under the EMQ estimate: the checklist item's judgement with the band
    only where the two agree, so the card never contradicts the checklist (a "Good" band beside a
    warning because the configured target is 7.0, say)."""
    emq = report.get("emq") or {}
    item = next((i for i in report.get("checklist") or [] if i["id"] == "emq_estimate"), None)
    band = emq.get("band")
    if item is None or item["status"] == "not_evaluated":
        return (f"Band: {band}" if band else "Not evaluated"), (item or {}).get("status")
    target = emq.get("target")
    goal = f" of {float(target):.1f}" if target is not None else ""
    if item["status"] == "pass":
        return (f"Meets the target{goal}" + (f" (band {band})" if band else "")), "pass"
    low = band in ("Poor", "OK")
    return (f"Below the target{goal}" + (f" (band {band})" if low and band else "")), item["status"]


_ID_HINTS: tuple[tuple[str, str], ...] = (
    ("personal_data", "privacy"), ("journey", "journey"), ("consent", "consent"), ("test_event", "contract"),
    ("test_code", "contract"),
    ("purchase", "contract"), ("value", "contract"), ("currency", "contract"), ("action_source", "contract"),
    ("name", "dedup"), ("pairing", "dedup"), ("event_id", "dedup"), ("duplicate", "dedup"), ("dedup", "dedup"),
    ("time", "timing"), ("fresh", "timing"), ("stale", "timing"), ("skew", "timing"),
    ("emq", "emq"), ("coverage", "match_keys"), ("hash", "match_keys"), ("pii", "match_keys"),
)


def item_section(item: Mapping[str, Any]) -> str | None:
    """The report section a checklist item is built from: its ``section`` key when it has one,
    else inferred from its stable id."""
    section = item.get("section")
    if section:
        return str(section).split(".")[0]
    ident = str(item.get("id", "")).lower()
    for hint, sec in _ID_HINTS:
        if hint in ident:
            return sec
    return None


# -- import report -----------------------------------------------------------------------------------

def import_summary(info: Mapping[str, Any]) -> dict[str, str]:
    return {
        "Files": fmt.count(len(info.get("files") or [])),
        "Rows read": fmt.count(info.get("rows_read", 0)),
        "Rows loaded": fmt.count(info.get("rows", 0)),
        "Rows rejected": fmt.count(info.get("rejected_rows", 0)),
    }


def file_report_tables(fr: Mapping[str, Any]) -> dict[str, Any]:
    """One file's import report as a headline and small tables."""
    kind = fr.get("format") or "?"
    extra = f", {fr['encoding']}" if fr.get("encoding") else ""
    if fr.get("delimiter"):
        extra += f", delimiter {fr['delimiter']!r}"
    headline = (f"{kind}{extra}; {fmt.count(fr.get('rows_loaded', 0))} of {fmt.count(fr.get('rows_read', 0))} "
                f"rows loaded, {fmt.count(fr.get('rows_rejected', 0))} rejected")
    mapping = pd.DataFrame([{"Your header": h, "Canonical field": c} for h, c in (fr.get("mapping") or {}).items()],
                           columns=["Your header", "Canonical field"])
    rejected = pd.DataFrame([{"Reason": labels.label(k), "Rows": int(v)}
                             for k, v in (fr.get("rejected_reasons") or {}).items()], columns=["Reason", "Rows"])
    examples = example_frame(fr.get("rejected_examples") or []) if fr.get("rejected_examples") else pd.DataFrame()
    formats = pd.DataFrame([{"Format": labels.TIME_FORMATS.get(k, k), "Rows": int(v)}
                            for k, v in (fr.get("time_formats") or {}).items()], columns=["Format", "Rows"])
    if fr.get("no_time_zone"):
        headline += f"; {fmt.count(fr['no_time_zone'])} ISO times without a time zone"
    return {"headline": headline, "mapping": mapping, "rejected": rejected, "rejected_examples": examples,
            "time_formats": formats}


def contract_table(rows: Iterable[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["Canonical field", "Type", "Accepted headers", "Notes"])


# -- dedup -------------------------------------------------------------------------------------------

OUTCOMES = ("paired", "outside_window", "browser_only", "server_only")
UNPAIRED_REASONS: tuple[tuple[str, str], ...] = (
    ("name_case_mismatch", "Same event_id, event_name differs only in case"),
    ("different_ids_probable", "Same event name and browser ID within {probable}, different event_id"),
    ("server_only_unexplained", "No browser event at all (blocked Pixel, consent, server-only step)"),
    ("browser_only_unexplained", "The server never sent it"),
    ("outside_window", "In both logs, more than {window} apart"),
    ("duplicate_server_rows", "The same dedup key sent twice by the server"),
    ("duplicate_browser_rows", "The same dedup key sent twice by the browser"),
    ("server_missing_event_id", "Server rows without an event_id"),
    ("browser_missing_event_id", "Browser rows without an event_id"),
    ("reused_event_id", "One event_id used for several actions"),
)


def dedup_words(result: Mapping[str, Any]) -> dict[str, str]:
    """The section's windows in words (``window``: ``48 h``, ``probable``: ``60 s``)."""
    return {"window": fmt.duration(result.get("window_s", DEDUP_WINDOW_S)),
            "probable": fmt.duration(result.get("probable_window_s", 60))}


def dedup_by_event(result: Mapping[str, Any]) -> pd.DataFrame:
    """Dedup keys per ``event_name`` and outcome, busiest names first."""
    rows = [{"event_name": name, **{o: int(v.get(o) or 0) for o in OUTCOMES}}
            for name, v in (result.get("by_event_name") or {}).items()]
    df = pd.DataFrame(rows, columns=["event_name", *OUTCOMES])
    df = df[df[list(OUTCOMES)].sum(axis=1) > 0] if not df.empty else df
    return df.reset_index(drop=True)


def dedup_reasons(result: Mapping[str, Any]) -> pd.DataFrame:
    """Why events are not paired: the count per reason, what it counts (dedup keys or rows of a
    log), and what it means."""
    words = dedup_words(result)
    rows = [{"Reason": labels.label(key), "Count": int(result.get(key) or 0),
             "Counted in": fmt.plural(labels.unit(key)), "Meaning": meaning.format(**words), "key": key}
            for key, meaning in UNPAIRED_REASONS if result.get(key) is not None]
    return pd.DataFrame(rows, columns=["Reason", "Count", "Counted in", "Meaning", "key"])


def pairing_over_time(df: pd.DataFrame) -> pd.DataFrame:
    """``dedup.pairing_by_hour`` output on a complete hourly axis: a datetime ``hour``, ``keys``
    and ``paired`` (0 for an hour without keys) and the hour's ``rate`` (missing for an hour
    without keys, so a line is never drawn through it)."""
    if df.empty:
        return pd.DataFrame(columns=["hour", "keys", "paired", "rate"])
    out = df.copy()
    out["hour"] = pd.to_datetime(out["hour"].astype("int64"), unit="s", utc=True)
    out = out.set_index("hour").sort_index()
    full = pd.date_range(out.index.min(), out.index.max(), freq="h")
    out = out.reindex(full)
    out.index.name = "hour"
    out["keys"] = out["keys"].fillna(0).astype(int)
    out["paired"] = out["paired"].fillna(0).astype(int)
    out["rate"] = (out["paired"].astype(float) / out["keys"].astype(float)).where(out["keys"] > 0)
    return out.reset_index()


# -- consent, contract, journey ------------------------------------------------------------------------

def consent_regions(result: Mapping[str, Any], limit: int = 25) -> pd.DataFrame:
    """Rows per region split by outcome, the regions with most violations first."""
    rows = []
    for region, v in (result.get("by_region") or {}).items():
        fw, unk = int(v.get("forwarded_without_consent") or 0), int(v.get("consent_unknown") or 0)
        total = int(v.get("rows") or 0)
        rows.append({"region": region, "forwarded_without_consent": fw, "consent_unknown": unk,
                     "ok": total - fw - unk, "rows": total})
    df = pd.DataFrame(rows, columns=["region", "forwarded_without_consent", "consent_unknown", "ok", "rows"])
    df = df.sort_values(["forwarded_without_consent", "consent_unknown", "rows", "region"],
                        ascending=[False, False, False, True], kind="stable")
    return df.head(limit).reset_index(drop=True)


def consent_purposes(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"Purpose": p, "Server rows requiring it": int(v.get("required_rows", 0)),
             "Granted": int(v.get("granted", 0)), "Denied": int(v.get("denied", 0)),
             "Missing": int(v.get("missing", 0)), "Column in log": "yes" if v.get("column_present", True) else "no"}
            for p, v in (result.get("by_purpose") or {}).items()]
    return pd.DataFrame(rows, columns=["Purpose", "Server rows requiring it", "Granted", "Denied", "Missing",
                                       "Column in log"])


_NOT_RULES = {"server_rows", "purchase_rows", "website_rows", "action_source_column", "value_pairs_compared"}


def contract_counts(result: Mapping[str, Any]) -> pd.DataFrame:
    """``name`` (the rule in words), ``rows`` and ``unit`` per contract rule (integer counts only),
    worst first."""
    rows = [{"name": labels.label(k), "rows": int(v), "unit": labels.unit(k), "key": k} for k, v in result.items()
            if k not in _NOT_RULES and isinstance(v, int) and not isinstance(v, bool)]
    df = pd.DataFrame(rows, columns=["name", "rows", "unit", "key"])
    return df.sort_values(["rows", "name"], ascending=[False, True], kind="stable").reset_index(drop=True)


def contract_by_event(result: Mapping[str, Any]) -> pd.DataFrame:
    """Server rows per rule and event name (rules with no hit left out), columns in words."""
    by = result.get("by_event_name") or {}
    df = pd.DataFrame([{"event_name": name, **v} for name, v in by.items()])
    if df.empty:
        return df
    keep = ["event_name"] + [c for c in df.columns if c != "event_name" and df[c].sum() > 0]
    names = {"event_name": "Event name", "rows": "Server rows"}
    return df[keep].rename(columns={c: names.get(c) or labels.label(c) for c in keep})


def journey_table(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for step in result.get("steps") or []:
        b, s = (result.get("browser") or {}).get(step, 0), (result.get("server") or {}).get(step, 0)
        ratio = (result.get("server_to_browser") or {}).get(step)
        near = ", ".join(sorted({*(result.get("near_names", {}).get("browser", {}).get(step, {})),
                                 *(result.get("near_names", {}).get("server", {}).get(step, {}))}))
        rows.append({"Step": step, "Browser rows": int(b), "Server rows": int(s),
                     "Server / browser": fmt.share(ratio), "Spelled differently as": near})
    return pd.DataFrame(rows, columns=["Step", "Browser rows", "Server rows", "Server / browser",
                                       "Spelled differently as"])


# -- timing --------------------------------------------------------------------------------------------

def timing_figures(result: Mapping[str, Any], within_s: int = 3_600) -> list[tuple[str, str, str]]:
    """``(label, value, help)`` for the Timing page's headline metrics."""
    return [
        ("Median skew", fmt.duration(result.get("skew_p50_s")),
         "Median signed skew (server minus browser event_time) of paired dedup keys."),
        ("Skew, 95th percentile", fmt.duration(result.get("skew_p95_abs_s")),
         "95 % of paired dedup keys have an absolute skew at or below this."),
        ("Largest skew", fmt.duration(result.get("skew_max_abs_s")), "Largest absolute skew of a paired dedup key."),
        ("Median delivery delay", fmt.duration(result.get("delivery_delay_p50_s")),
         "Median of sent_at minus event_time over server rows."),
        ("Delivery delay, 95th percentile", fmt.duration(result.get("delivery_delay_p95_s")),
         "95th percentile of sent_at minus event_time over server rows."),
        (f"Sent within {fmt.duration(within_s)}", fmt.share(result.get("delivery_delay_within_1h_share")),
         f"Share of server rows sent at most {fmt.duration(within_s)} after the event (Meta: within an hour)."),
    ]


def skew_bins(result: Mapping[str, Any]) -> pd.DataFrame:
    """The skew histogram's bins (``min_s``/``max_s`` inclusive, ``None`` for an open end), each
    labelled with durations in words (``+5 min to +1 h``)."""
    df = pd.DataFrame(result.get("skew_histogram") or [], columns=["label", "min_s", "max_s", "keys"])
    if df.empty or df["keys"].sum() == 0:
        return df.iloc[0:0]
    df["label"] = [skew_bin_label(lo, hi) for lo, hi in zip(df["min_s"], df["max_s"], strict=True)]
    return df


def _signed(seconds: float) -> str:
    return ("+" if seconds > 0 else "") + fmt.duration(seconds)


def skew_bin_label(lo: Any, hi: Any) -> str:
    """A skew bin of whole seconds in words: its edges as durations, the inner edge of a bin away
    from zero rounded to where the previous bin ends (``61..300`` reads ``+1 min to +5 min``)."""
    lo = None if lo is None or pd.isna(lo) else int(lo)
    hi = None if hi is None or pd.isna(hi) else int(hi)
    if lo is None and hi is not None:
        return f"below {_signed(hi + 1)}"
    if hi is None and lo is not None:
        return f"above {_signed(lo - 1)}"
    if lo == hi:
        return _signed(lo)
    if lo is not None and lo > 1:
        lo -= 1
    if hi is not None and hi < -1:
        hi += 1
    return f"{_signed(lo)} to {_signed(hi)}"


TIMING_COUNTS: tuple[tuple[str, str], ...] = (
    ("event_time_in_ms", "event_time in milliseconds (converted at import; Meta would misread it)"),
    ("event_time_in_us", "event_time in microseconds (converted at import; Meta would misread it)"),
    ("stale_over_7d", "Sent more than {stale} after the event: Meta rejects the whole request"),
    ("future", "event_time more than {future} after sent_at"),
    ("sent_at_missing", "An empty sent_at (left out of the two checks above)"),
    ("skew_over_threshold", "Browser and server event_time more than {skew} apart"),
    ("skew_whole_hours", "Skewed by a whole number of hours: a time-zone bug"),
    ("meta_keeps_browser", "Meta is expected to keep the browser copy"),
    ("meta_keeps_server", "Meta is expected to keep the server copy"),
)


def timing_counts(result: Mapping[str, Any], words: Mapping[str, str]) -> pd.DataFrame:
    """Each timing finding: count, what it counts (server rows or paired dedup keys), meaning; the
    meanings quote the configured limits (``words``: ``stale``, ``future``, ``skew``)."""
    rows = [{"Finding": labels.label(k), "Count": int(result[k]), "Counted in": fmt.plural(labels.unit(k)),
             "Meaning": text.format(**words)}
            for k, text in TIMING_COUNTS if isinstance(result.get(k), int)]
    return pd.DataFrame(rows, columns=["Finding", "Count", "Counted in", "Meaning"])


DELAY_BUCKETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("< 0 (sent before the event)", None, -1), ("0-60 s", 0, 60), ("1-5 min", 61, 300),
    ("5-60 min", 301, 3_600), ("1-24 h", 3_601, 86_400), ("1-7 days", 86_401, 604_800), ("> 7 days", 604_801, None),
)
"""Delivery-delay buckets (inclusive whole seconds); the last is what Meta rejects."""


# -- match keys and EMQ --------------------------------------------------------------------------------

def _fields(result: Mapping[str, Any]) -> list[str]:
    return [f for f in MATCH_KEY_FIELDS if isinstance(result.get(f), Mapping)] + [
        f for f, v in result.items() if f not in MATCH_KEY_FIELDS and isinstance(v, Mapping) and "valid_coverage" in v]


def _number(v: Any, key: str) -> float | None:
    if isinstance(v, Mapping):
        v = v.get(key)
    return None if v is None else float(v)


def coverage_matrix(result: Mapping[str, Any], max_events: int = 30) -> pd.DataFrame:
    """``valid_coverage`` with fields (their codes) as rows and event names as columns (NaN where
    undefined)."""
    fields = _fields(result)
    events: list[str] = []
    for f in fields:
        for name in (result[f].get("by_event_name") or {}):
            if name not in events:
                events.append(name)
    events = events[:max_events]
    data = {name: [_number((result[f].get("by_event_name") or {}).get(name), "valid_coverage") for f in fields]
            for name in events}
    return pd.DataFrame(data, index=fields, dtype=float)


def key_defects(result: Mapping[str, Any]) -> pd.DataFrame:
    """Per field: server rows carrying it, carrying it valid, both as shares, and each defect."""
    rows = []
    for f in _fields(result):
        v = result[f]
        defects = v.get("defects") or {}
        rows.append({"Field": labels.field_with_code(f), "Server rows with it": int(v.get("present") or 0),
                     "Valid": int(v.get("valid") or 0), "Coverage": fmt.share(v.get("coverage")),
                     "Valid coverage": fmt.share(v.get("valid_coverage")),
                     "Defects (server rows)": "; ".join(f"{labels.defect(None, k)}: {n:,}"
                                                        for k, n in defects.items() if n) or "none"})
    return pd.DataFrame(rows, columns=["Field", "Server rows with it", "Valid", "Coverage", "Valid coverage",
                                       "Defects (server rows)"])


PRIVACY_PLACES = {"url": "URL", "custom_data": "Custom data", "unknown_column": "Unmapped column"}


def privacy_fields(result: Mapping[str, Any]) -> pd.DataFrame:
    """The privacy finding per log, place, field and event name: rows with an email / a phone number."""
    cols = ["Log", "Where", "Field", "event_name", "Rows", "With an email", "With a phone number"]
    rows = [{"Log": labels.label(r["role"]), "Where": PRIVACY_PLACES.get(r["place"], r["place"]), "Field": r["field"],
             "event_name": r["event_name"], "Rows": int(r["rows"]), "With an email": int(r["email_rows"]),
             "With a phone number": int(r["phone_rows"])} for r in (result.get("by_field") or [])]
    return pd.DataFrame(rows, columns=cols)


def emq_by_event(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"event_name": name, "estimate": _number(v, "estimate")}
            for name, v in (result.get("by_event_name") or {}).items()]
    df = pd.DataFrame(rows, columns=["event_name", "estimate"])
    return df.dropna(subset=["estimate"]).reset_index(drop=True)


def emq_priorities(result: Mapping[str, Any]) -> pd.DataFrame:
    """The fields ranked by estimated EMQ gain: ``field`` (the code), ``label`` (in words), ``gain``
    and ``fix``."""
    rows = [{"field": p.get("field"), "label": labels.field_with_code(str(p.get("field"))),
             "gain": float(p.get("gain") or 0.0), "fix": p.get("fix") or ""}
            for p in result.get("priorities") or []]
    df = pd.DataFrame(rows, columns=["field", "label", "gain", "fix"])
    return df[df["gain"] > 0].reset_index(drop=True)


def priorities_markdown(df: pd.DataFrame) -> str:
    """The ranked fixes as a numbered Markdown list (long fix texts read badly in a grid)."""
    return "\n".join(f"{i}. **{r.label}** (+{fmt.number(r.gain)} EMQ points): {r.fix}"
                     for i, r in enumerate(df.itertuples(), 1))


# -- orders & delivery ---------------------------------------------------------------------------------

STAGE_COLORS = {"not_sent": "#D55E00", "refused": "#CC79A7", "counted_twice": "#E69F00",
                "unlikely_match": "#56B4E9", "counted_once": "#009E73"}
"""Okabe-Ito colours of the waterfall's buckets (lost ones warm, counted once green)."""


def revenue_text(revenue: Mapping[str, Any] | None) -> str:
    """``1,234.50 EUR, 99.00 USD``: revenue per currency (never summed across currencies)."""
    if not revenue:
        return "none"
    return ", ".join(f"{float(v):,.2f} {c}" for c, v in revenue.items())


def waterfall_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """The waterfall's buckets in order: ``stage`` (id), ``Where the order ends``, ``Orders``,
    ``Share``, ``Revenue``; a stage whose input is missing says so."""
    n = int(result.get("orders") or 0)
    rows = []
    for b in result.get("waterfall") or []:
        evaluated = b.get("status") == "evaluated"
        rows.append({"stage": b["stage"], "Where the order ends": labels.label(b["stage"]),
                     "Orders": int(b["orders"]) if evaluated else None,
                     "Share": fmt.share(b["orders"] / n) if evaluated and n else "",
                     "Revenue": revenue_text(b.get("revenue")) if evaluated else "not evaluated: "
                     + str(b.get("reason") or "its input is missing")})
    return pd.DataFrame(rows, columns=["stage", "Where the order ends", "Orders", "Share", "Revenue"])


def waterfall_by_day(result: Mapping[str, Any]) -> pd.DataFrame:
    """Orders per UTC day and bucket: ``day``, ``stage``, ``name``, ``orders``."""
    rows = [{"day": d["day"], "stage": b["stage"], "name": labels.label(b["stage"]), "orders": int(b["orders"])}
            for d in result.get("waterfall_by_day") or [] for b in d["waterfall"] if b.get("status") == "evaluated"]
    return pd.DataFrame(rows, columns=["day", "stage", "name", "orders"])


def orders_table(df: pd.DataFrame) -> pd.DataFrame:
    """The per-order table (:data:`capi_diag.diagnostics.reconciliation.ORDER_COLUMNS`) in words,
    for the page and its CSV."""
    out = pd.DataFrame({
        "Order": df["order_id"], "Ordered (UTC)": df["created_at"].map(fmt.timestamp),
        "Total": df["total"], "Currency": df["currency"], "Where the order ends": df["stage"].map(labels.label),
        "Browser Purchases": df["browser_rows"], "Server Purchases": df["server_rows"],
        "Server sends": df["sends"], "Sends accepted": df["sends_accepted"],
        "Value differs": df["value_mismatch"].map(lambda v: "yes" if v else "no"),
        "Currency differs": df["currency_mismatch"].map(lambda v: "yes" if v else "no"),
        "Server value": df["server_value"],
    })
    return out


def delivery_codes(result: Mapping[str, Any]) -> pd.DataFrame:
    """Rejections by Meta's code: code, what it means, events, requests, the fix, an fbtrace_id."""
    rows = []
    for c in result.get("rejected_by_code") or []:
        code = "" if c["code"] is None else str(c["code"]) + (f"/{c['subcode']}" if c.get("subcode") else "")
        rows.append({"Code": code or f"HTTP {c.get('http_status')}", "Error": c["title"], "Events": int(c["rows"]),
                     "Requests": int(c["requests"]), "What it means": c["meaning"], "Fix": c["fix"],
                     "Example fbtrace_id": (c.get("example") or {}).get("fbtrace_id") or ""})
    return pd.DataFrame(rows, columns=["Code", "Error", "Events", "Requests", "What it means", "Fix",
                                       "Example fbtrace_id"])
