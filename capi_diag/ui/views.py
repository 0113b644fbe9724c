"""Report sections reshaped into the small tables the pages show. Pure functions, no streamlit.

Every number comes from the report dict that :func:`capi_diag.report.build_report` returns (the
same dict the ``report`` command renders), so the dashboard and the report always agree. Example
rows pass through :func:`capi_diag.pii.mask_row` before they are shown.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import pandas as pd

from capi_diag.dataset import Filters
from capi_diag.pii import mask_row
from capi_diag.report import fmt_value

STATUSES = ("fail", "warn", "not_evaluated", "pass")


def diagnostic_module(section: str) -> ModuleType | None:
    """``capi_diag.diagnostics.<section>`` (or ``capi_diag.checklist``), ``None`` until it exists."""
    name = "capi_diag.checklist" if section == "checklist" else f"capi_diag.diagnostics.{section}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        return None


def label(name: str) -> str:
    """``server_only_unexplained`` -> ``Server only unexplained``."""
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def describe_filters(f: Filters) -> str:
    parts = []
    if f.start is not None or f.end is not None:
        lo = _date(f.start) if f.start is not None else "start"
        hi = _date(f.end - 1) if f.end is not None else "end"
        parts.append(f"event dates {lo} to {hi} (UTC)")
    if f.event_names:
        parts.append("event names " + ", ".join(f.event_names))
    if f.pixel_ids:
        parts.append("Pixels " + ", ".join(f.pixel_ids))
    return "; ".join(parts) or "none"


def _date(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).date().isoformat()


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


# -- shared section pieces --------------------------------------------------------------------------

def explanations(entries: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [{"Measure": e.get("label", ""), "Value": fmt_value(e.get("value")),
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
            out[name] = frame(rows)
    return out


# -- checklist --------------------------------------------------------------------------------------

def observed_text(item: Mapping[str, Any]) -> str:
    """An item's observed value in its unit (``share`` as %, ``seconds``, ``score`` out of 10)."""
    value, unit = item.get("observed"), item.get("unit")
    if value is None:
        return "n/a"
    if unit == "share":
        return pct(value)
    if unit == "seconds":
        return seconds(value)
    if unit == "score":
        return score(value)
    return fmt_value(value)


def checklist_items(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checklist items in go-live order, with observed/threshold formatted for display."""
    items = []
    for item in report.get("checklist") or []:
        items.append({**item, "observed_text": observed_text(item),
                      "threshold_text": str(item.get("threshold") or "n/a"),
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


def pct(value: Any) -> str:
    """A share as a percentage with one decimal (``n/a`` when undefined)."""
    if value is None:
        return "n/a"
    return f"{float(value):.1%}"


def seconds(value: Any) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    return f"{v:,.0f} s" if v.is_integer() else f"{v:,.1f} s"


_ID_HINTS: tuple[tuple[str, str], ...] = (
    ("journey", "journey"), ("consent", "consent"), ("test_event", "contract"), ("test_code", "contract"),
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
        "Files": fmt_value(len(info.get("files") or [])),
        "Rows read": fmt_value(info.get("rows_read", 0)),
        "Rows loaded": fmt_value(info.get("rows", 0)),
        "Rows rejected": fmt_value(info.get("rejected_rows", 0)),
    }


def file_report_tables(fr: Mapping[str, Any]) -> dict[str, Any]:
    """One file's import report as a headline and small tables."""
    fmt = fr.get("format") or "?"
    extra = f", {fr['encoding']}" if fr.get("encoding") else ""
    if fr.get("delimiter"):
        extra += f", delimiter {fr['delimiter']!r}"
    headline = (f"{fmt}{extra}; {fmt_value(fr.get('rows_loaded', 0))} of {fmt_value(fr.get('rows_read', 0))} "
                f"rows loaded, {fmt_value(fr.get('rows_rejected', 0))} rejected")
    mapping = pd.DataFrame([{"Your header": h, "Canonical field": c} for h, c in (fr.get("mapping") or {}).items()],
                           columns=["Your header", "Canonical field"])
    rejected = pd.DataFrame([{"Reason": label(k), "Rows": v} for k, v in (fr.get("rejected_reasons") or {}).items()],
                            columns=["Reason", "Rows"])
    examples = frame(fr.get("rejected_examples") or [])
    formats = pd.DataFrame([{"Format": k, "Rows": v} for k, v in (fr.get("time_formats") or {}).items()],
                           columns=["Format", "Rows"])
    if fr.get("no_time_zone"):
        headline += f"; {fmt_value(fr['no_time_zone'])} ISO times without a time zone"
    return {"headline": headline, "mapping": mapping, "rejected": rejected, "rejected_examples": examples,
            "time_formats": formats}


def contract_table(rows: Iterable[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["Canonical field", "Type", "Accepted headers", "Notes"])


# -- dedup -------------------------------------------------------------------------------------------

OUTCOMES = ("paired", "outside_window", "browser_only", "server_only")
UNPAIRED_REASONS: tuple[tuple[str, str, str], ...] = (
    ("name_case_mismatch", "server", "Same event_id, event_name differs only in case"),
    ("different_ids_probable", "server", "Same name and fbp within 60 s, different event_id"),
    ("server_only_unexplained", "server", "No browser event at all (blocked, consent, server-only step)"),
    ("browser_only_unexplained", "browser", "The server never sent it"),
    ("outside_window", "both", "In both logs, more than 48 h apart"),
    ("duplicate_server_rows", "server", "Same key sent twice by the server"),
    ("duplicate_browser_rows", "browser", "Same key sent twice by the browser"),
    ("server_missing_event_id", "server", "Server rows without an event_id"),
    ("browser_missing_event_id", "browser", "Browser rows without an event_id"),
    ("reused_event_id", "both", "One event_id used for several actions"),
)


def dedup_by_event(result: Mapping[str, Any]) -> pd.DataFrame:
    """Keys per ``event_name`` and outcome, busiest names first."""
    rows = [{"event_name": name, **{o: int(v.get(o) or 0) for o in OUTCOMES}}
            for name, v in (result.get("by_event_name") or {}).items()]
    df = pd.DataFrame(rows, columns=["event_name", *OUTCOMES])
    df = df[df[list(OUTCOMES)].sum(axis=1) > 0] if not df.empty else df
    return df.reset_index(drop=True)


def dedup_reasons(result: Mapping[str, Any]) -> pd.DataFrame:
    """Why keys or rows are not paired: count per reason, with what it means."""
    rows = [{"Reason": label(key), "Counted on": side, "Count": int(result.get(key) or 0), "Meaning": meaning,
             "key": key} for key, side, meaning in UNPAIRED_REASONS if result.get(key) is not None]
    return pd.DataFrame(rows, columns=["Reason", "Counted on", "Count", "Meaning", "key"])


def pairing_over_time(df: pd.DataFrame) -> pd.DataFrame:
    """``dedup.pairing_by_hour`` output with a datetime ``hour`` and the hour's ``rate``."""
    if df.empty:
        return pd.DataFrame(columns=["hour", "keys", "paired", "rate"])
    out = df.copy()
    out["hour"] = pd.to_datetime(out["hour"].astype("int64"), unit="s", utc=True)
    out["rate"] = out["paired"].astype(float) / out["keys"].astype(float)
    return out


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
    rows = [{"Purpose": p, "Rows requiring it": v.get("required_rows", 0), "Granted": v.get("granted", 0),
             "Denied": v.get("denied", 0), "Missing": v.get("missing", 0),
             "Column in log": "yes" if v.get("column_present", True) else "no"}
            for p, v in (result.get("by_purpose") or {}).items()]
    return pd.DataFrame(rows, columns=["Purpose", "Rows requiring it", "Granted", "Denied", "Missing",
                                       "Column in log"])


_NOT_RULES = {"server_rows", "purchase_rows", "website_rows", "action_source_column", "value_pairs_compared"}


def contract_counts(result: Mapping[str, Any]) -> pd.DataFrame:
    """``name``/``rows`` per contract rule (integer counts only), worst first."""
    rows = [{"name": k, "rows": int(v)} for k, v in result.items()
            if k not in _NOT_RULES and isinstance(v, int) and not isinstance(v, bool)]
    df = pd.DataFrame(rows, columns=["name", "rows"])
    return df.sort_values(["rows", "name"], ascending=[False, True], kind="stable").reset_index(drop=True)


def contract_by_event(result: Mapping[str, Any]) -> pd.DataFrame:
    """Rule counts per event name (rules with no hit left out)."""
    by = result.get("by_event_name") or {}
    df = pd.DataFrame([{"event_name": name, **v} for name, v in by.items()])
    if df.empty:
        return df
    keep = ["event_name"] + [c for c in df.columns if c != "event_name" and df[c].sum() > 0]
    return df[keep]


def journey_table(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for step in result.get("steps") or []:
        b, s = (result.get("browser") or {}).get(step, 0), (result.get("server") or {}).get(step, 0)
        ratio = (result.get("server_to_browser") or {}).get(step)
        near = ", ".join(sorted({*(result.get("near_names", {}).get("browser", {}).get(step, {})),
                                 *(result.get("near_names", {}).get("server", {}).get(step, {}))}))
        rows.append({"Step": step, "Browser rows": b, "Server rows": s,
                     "Server / browser": "n/a" if ratio is None else f"{ratio:.0%}",
                     "Spelled differently as": near})
    return pd.DataFrame(rows, columns=["Step", "Browser rows", "Server rows", "Server / browser",
                                       "Spelled differently as"])


# -- timing --------------------------------------------------------------------------------------------

def timing_figures(result: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(label, value, help)`` for the Timing page's headline metrics."""
    return [
        ("Skew p50", seconds(result.get("skew_p50_s")), "Median signed skew (server - browser) of paired keys."),
        ("Skew p95 |abs|", seconds(result.get("skew_p95_abs_s")), "95th percentile of the absolute skew."),
        ("Skew max |abs|", seconds(result.get("skew_max_abs_s")), "Largest absolute skew of a paired key."),
        ("Delivery delay p50", seconds(result.get("delivery_delay_p50_s")), "Median of sent_at - event_time."),
        ("Delivery delay p95", seconds(result.get("delivery_delay_p95_s")), "95th percentile of sent_at - event_time."),
        ("Sent within 1 h", pct(result.get("delivery_delay_within_1h_share")),
         "Share of server rows sent at most 3,600 s after the event (Meta: send within an hour)."),
    ]


def skew_bins(result: Mapping[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(result.get("skew_histogram") or [], columns=["label", "min_s", "max_s", "keys"])
    return df if df["keys"].sum() > 0 else df.iloc[0:0]


TIMING_COUNTS: tuple[tuple[str, str], ...] = (
    ("event_time_in_ms", "Server rows whose event_time was in milliseconds (converted at import)"),
    ("event_time_in_us", "Server rows whose event_time was in microseconds"),
    ("stale_over_7d", "Sent more than 7 days after the event: Meta rejects the whole request"),
    ("future", "event_time more than 60 s after sent_at"),
    ("sent_at_missing", "Server rows with an empty sent_at (left out of stale/future)"),
    ("skew_over_threshold", "Paired keys whose |skew| exceeds the threshold"),
    ("skew_whole_hours", "Paired keys skewed by a whole number of hours: a time-zone bug"),
    ("meta_keeps_browser", "Paired keys where Meta is expected to keep the browser copy"),
    ("meta_keeps_server", "Paired keys where Meta is expected to keep the server copy"),
)


def timing_counts(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"Finding": label(k), "Count": fmt_value(result.get(k)), "Meaning": text}
            for k, text in TIMING_COUNTS if k in result]
    return pd.DataFrame(rows, columns=["Finding", "Count", "Meaning"])


DELAY_BUCKETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("< 0 (sent before the event)", None, -1), ("0-60 s", 0, 60), ("1-5 min", 61, 300),
    ("5-60 min", 301, 3_600), ("1-24 h", 3_601, 86_400), ("1-7 days", 86_401, 604_800), ("> 7 days", 604_801, None),
)
"""Delivery-delay buckets (inclusive whole seconds); the last is what Meta rejects."""


# -- match keys and EMQ --------------------------------------------------------------------------------

MATCH_FIELDS = ("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id", "fbp", "fbc",
                "client_ip_address", "client_user_agent")


def score(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f} / 10"


def _fields(result: Mapping[str, Any]) -> list[str]:
    return [f for f in MATCH_FIELDS if isinstance(result.get(f), Mapping)] + [
        f for f, v in result.items() if f not in MATCH_FIELDS and isinstance(v, Mapping) and "valid_coverage" in v]


def _number(v: Any, key: str) -> float | None:
    if isinstance(v, Mapping):
        v = v.get(key)
    return None if v is None else float(v)


def coverage_matrix(result: Mapping[str, Any], max_events: int = 30) -> pd.DataFrame:
    """``valid_coverage`` with fields as rows and event names as columns (NaN where undefined)."""
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
    """Per field: present, valid, coverage, valid coverage and each defect's row count."""
    rows = []
    for f in _fields(result):
        v = result[f]
        defects = v.get("defects") or {}
        rows.append({"Field": f, "Present": v.get("present"), "Valid": v.get("valid"),
                     "Coverage": pct(v.get("coverage")), "Valid coverage": pct(v.get("valid_coverage")),
                     "Defects": ", ".join(f"{label(k)}: {n:,}" for k, n in defects.items() if n) or "none"})
    return pd.DataFrame(rows, columns=["Field", "Present", "Valid", "Coverage", "Valid coverage", "Defects"])


def emq_by_event(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"event_name": name, "estimate": _number(v, "estimate")}
            for name, v in (result.get("by_event_name") or {}).items()]
    df = pd.DataFrame(rows, columns=["event_name", "estimate"])
    return df.dropna(subset=["estimate"]).reset_index(drop=True)


def emq_priorities(result: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"field": p.get("field"), "gain": float(p.get("gain") or 0.0), "fix": p.get("fix") or ""}
            for p in result.get("priorities") or []]
    df = pd.DataFrame(rows, columns=["field", "gain", "fix"])
    return df[df["gain"] > 0].reset_index(drop=True)


def priorities_markdown(df: pd.DataFrame) -> str:
    """The ranked fixes as a numbered Markdown list (long fix texts read badly in a grid)."""
    return "\n".join(f"{i}. **{r.field}** (+{r.gain:.2f}): {r.fix}" for i, r in enumerate(df.itertuples(), 1))
