"""The rows behind the findings, for the Event lookup and Report pages.

Both read each analysis's ``failing_rows(ds, config)`` (the rule written once, in the analysis),
so the rows a page shows are exactly the rows the report counts. Queries run in the engine; only
counts, one event's rows and the CSV of one finding come back.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from capi_diag import diagnostics
from capi_diag.core import fmt, labels
from capi_diag.core.config import Config
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine.dataset import Dataset, Filters
from capi_diag.report import describe_filters
from capi_diag.ui import views

LOOKUP_LIMIT = 50
"""Rows per log shown for one looked-up id (an id reused thousands of times is a finding itself)."""
ALL = "(all findings)"
FORMULA_START = r"\A[=+\-@\t\r]"
"""A cell a spreadsheet would take for a formula (OWASP's CSV injection list): ``=``, ``+``, ``-``,
``@``, tab or carriage return first."""


def all_failing_rows(ds: Dataset, config: Config) -> ir.Table | None:
    """Every analysis's failing rows in one table (``None`` when no analysis has any)."""
    parts = [mod.failing_rows(ds, config) for mod in diagnostics.modules() if hasattr(mod, "failing_rows")]
    if not parts:
        return None
    parts = [p.select(*FAILING_ROW_COLUMNS) for p in parts]
    return ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]


Choice = tuple[str, str, str]
"""One finding to download: ``(section, finding, field)``; ``field`` is the user_data field of a
match-key defect (``em`` for ``unhashed``), else empty."""


def _field(section: Any, detail: Any) -> str:
    return str(detail) if section == "match_keys" and detail is not None else ""


def finding_counts(ds: Dataset, config: Config) -> pd.DataFrame:
    """Rows per ``(section, finding, field, severity)``, errors first, then the largest; ``choice``
    is the :data:`Choice` of each line."""
    t = all_failing_rows(ds, config)
    cols = ["section", "finding", "field", "severity", "rows", "choice"]
    if t is None:
        return pd.DataFrame(columns=cols)
    field = ibis.ifelse(t.section == "match_keys", t.detail, ibis.literal(""))
    t = t.mutate(field=field.fill_null(""))
    ds = ds.using(config)
    df = ds.fetch_arrow("ui.finding_counts", t.group_by(["section", "finding", "field", "severity"])
                        .aggregate(rows=t.count())).to_pandas()
    df["rows"] = df["rows"].astype(int)
    df["_sev"] = (df["severity"] != "error").astype(int)
    df = df.sort_values(["_sev", "rows", "section", "finding", "field"], ascending=[True, False, True, True, True])
    df["choice"] = list(zip(df["section"], df["finding"], df["field"], strict=True))
    return df[cols].reset_index(drop=True)


def finding_label(section: str, finding: str, field: str = "") -> str:
    """A finding in words; a match-key defect with its field (``Email sent unhashed``)."""
    if field:
        return labels.defect(field, finding)
    return labels.label(finding)


def choice_label(choice: Choice) -> str:
    section, finding, field = choice
    return f"{labels.SECTIONS.get(section, section)}: {finding_label(section, finding, field)}"


def counts_table(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`finding_counts` in words, for the page."""
    return pd.DataFrame({
        "Analysis": [labels.SECTIONS.get(s, s) for s in counts["section"]],
        "Finding": [finding_label(s, f, d) for s, f, d in counts["choice"]],
        "Severity": [labels.SEVERITIES.get(v, v) for v in counts["severity"]],
        "Rows": counts["rows"].astype(int),
    })


def finding_csv(ds: Dataset, config: Config, choice: Choice | None = None, *,
                filters: Filters | None = None) -> bytes:
    """The failing rows of one finding (all when ``choice`` is ``None``) as CSV bytes: the
    :data:`FAILING_ROW_COLUMNS` (ids, for scripts), the finding in words (``finding_label``) and
    the filters in force (``filters``: ``none`` when unfiltered), so a shared file says what it is."""
    t = all_failing_rows(ds, config)
    if t is None:
        return (",".join([*FAILING_ROW_COLUMNS, "finding_label", "filters"]) + "\n").encode()
    ds = ds.using(config)
    if choice is not None:
        section, finding, field = choice
        pred = (t.section == section) & (t.finding == finding)
        if field:
            pred = pred & (t.detail == field)
        t = t.filter(pred)
        table = ds.query(t.order_by(["section", "finding", "role", "source_file", "line"]))
    else:
        table = ds.fetch_arrow("ui.failing_rows", t.order_by(["section", "finding", "role", "source_file", "line"]))
    names = [finding_label(s, f, _field(s, d)) for s, f, d in
             zip(table.column("section").to_pylist(), table.column("finding").to_pylist(),
                 table.column("detail").to_pylist(), strict=True)]
    table = table.append_column("finding_label", pa.array(names, pa.string()))
    table = table.append_column("filters", pa.array([describe_filters(filters)] * table.num_rows, pa.string()))
    buf = io.BytesIO()
    pacsv.write_csv(neutralize_formulas(table), buf)
    return buf.getvalue()


def neutralize_formulas(table: pa.Table) -> pa.Table:
    """Every text cell a spreadsheet would run as a formula (:data:`FORMULA_START`) prefixed with
    ``'``, which Excel, LibreOffice and Google Sheets show as text: a log value such as
    ``=HYPERLINK(...)`` or ``@SUM(...)`` opens as the text it was. Numbers stay numbers (a negative
    number is a number column, not text); a text cell such as ``-5`` reads ``'-5``."""
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            continue
        risky = pc.fill_null(pc.match_substring_regex(col, FORMULA_START), False)
        if pc.any(risky).as_py():
            table = table.set_column(i, name, pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col))
    return table


def csv_name(choice: Choice | None, filters: Filters | None = None) -> str:
    suffix = "-filtered" if filters is not None and filters.active else ""
    if choice is None:
        return f"capi-diag-failing-rows{suffix}.csv"
    section, finding, field = choice
    return f"capi-diag-{section}-{field + '-' if field else ''}{finding}{suffix}.csv"


def findings_table(df: pd.DataFrame) -> pd.DataFrame:
    """Failing rows (:data:`FAILING_ROW_COLUMNS`) in words: the analysis, the finding (with its field
    for a match-key defect), severity, log, file and line, event name and id, detail."""
    if df.empty:
        return pd.DataFrame(columns=[labels.column(c) for c in FAILING_ROW_COLUMNS])
    out = pd.DataFrame({
        "Analysis": [labels.SECTIONS.get(s, s) for s in df["section"]],
        "Finding": [finding_label(s, f, _field(s, d)) for s, f, d in zip(df["section"], df["finding"],
                                                                         df["detail"], strict=True)],
        "Severity": [labels.SEVERITIES.get(v, v) for v in df["severity"]],
        "Log": [labels.ROLES.get(r, r) for r in df["role"]],
        "File": [Path(str(f)).name for f in df["source_file"]],
        "Line": [str(v) for v in df["line"]],
        "event_name": df["event_name"], "event_id": df["event_id"],
        "Detail": [labels.field_with_code(str(d)) if s == "match_keys" else d
                   for s, d in zip(df["section"], df["detail"], strict=True)],
    })
    return out


@dataclass
class Lookup:
    """One looked-up id: its rows in each log (PII masked) and every finding touching them."""

    value: str
    browser: list[dict[str, Any]]
    server: list[dict[str, Any]]
    findings: pd.DataFrame

    @property
    def found(self) -> bool:
        return bool(self.browser or self.server)


def lookup(ds: Dataset, config: Config, value: str) -> Lookup:
    """Rows whose ``event_id`` or ``order_id`` equals ``value`` exactly, both logs, and the findings
    that name one of those rows or that ``event_id``."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for role in ("browser", "server"):
        t = ds.events(role)
        pred = t.event_id == value
        if ds.has(role, "order_id"):
            pred = pred | (t.order_id == value)
        found = t.filter(pred).order_by(["event_time", "file_index", "line"]).limit(LOOKUP_LIMIT)
        rows[role] = ds.query(found).to_pylist()
    if not (rows["browser"] or rows["server"]):
        return Lookup(value, [], [], pd.DataFrame(columns=list(FAILING_ROW_COLUMNS)))
    findings = _touching(ds, config, value, rows)
    return Lookup(value, rows["browser"], rows["server"], findings)


def _touching(ds: Dataset, config: Config, value: str,
              rows: dict[str, Sequence[dict[str, Any]]]) -> pd.DataFrame:
    t = all_failing_rows(ds, config)
    if t is None:
        return pd.DataFrame(columns=list(FAILING_ROW_COLUMNS))
    pred = t.event_id == value
    for role, found in rows.items():
        for r in found:
            pred = pred | ((t.role == role) & (t.source_file == r["source_file"]) & (t.line == r["line"]))
    df = ds.using(config).query(t.filter(pred).order_by(["section", "finding", "role", "source_file", "line"])
                                .limit(500)).to_pandas()
    return df.astype(object).where(df.notna(), None)


TIME_FIELDS = ("event_time", "sent_at")
"""Fields held as Unix seconds: the lookup shows them in UTC beside the stored value."""


def side_by_side(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One log's rows as columns (``file:line``) and the fields they carry as rows, PII masked;
    ``event_time`` and ``sent_at`` read ``2026-11-17 09:14:03 UTC (1794906843)``."""
    if not rows:
        return pd.DataFrame()
    shown = []
    for r in rows:
        r = dict(r)
        for f in TIME_FIELDS:
            v = r.get(f)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                r[f] = f"{fmt.timestamp(v)} ({int(v)})"
        shown.append(r)
    for r in shown:
        if r.get("event_time_raw_unit") is not None:
            r["event_time_raw_unit"] = labels.TIME_FORMATS.get(r["event_time_raw_unit"], r["event_time_raw_unit"])
        if isinstance(r.get("event_time_tz_missing"), bool):
            r["event_time_tz_missing"] = "yes" if r["event_time_tz_missing"] else "no"
    masked = views.frame(shown)
    masked.index = [f"{Path(str(r['source_file'])).name}:{r['line']}" for r in rows]
    drop = {"source_file", "file_index", "line"}
    keep = [c for c in masked.columns if c not in drop and masked[c].notna().any()
            and (masked[c].astype(str) != "").any()]
    out = masked[keep].T
    out.index = [labels.column(c) for c in out.index]
    out.index.name = "Field"
    return out.astype(str).replace({"None": "", "nan": ""})
