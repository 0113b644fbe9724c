"""The rows behind the findings, for the Event lookup and Report pages.

Both read each analysis's ``failing_rows(ds, config)`` (the rule written once, in the analysis),
so the rows a page shows are exactly the rows the report counts. Queries run in the engine; only
counts, one event's rows and the CSV of one finding come back.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow.csv as pacsv

from capi_diag import diagnostics
from capi_diag.config import Config
from capi_diag.dataset import Dataset
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.ui import views

LOOKUP_LIMIT = 50
"""Rows per log shown for one looked-up id (an id reused thousands of times is a finding itself)."""
ALL = "(all findings)"


def all_failing_rows(ds: Dataset, config: Config) -> ir.Table | None:
    """Every analysis's failing rows in one table (``None`` when no analysis has any)."""
    parts = [mod.failing_rows(ds, config) for mod in diagnostics.modules() if hasattr(mod, "failing_rows")]
    if not parts:
        return None
    parts = [p.select(*FAILING_ROW_COLUMNS) for p in parts]
    return ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]


def finding_counts(ds: Dataset, config: Config) -> pd.DataFrame:
    """Rows per ``(section, finding, severity)``, errors first, then the largest."""
    t = all_failing_rows(ds, config)
    cols = ["section", "finding", "severity", "rows"]
    if t is None:
        return pd.DataFrame(columns=cols)
    ds = ds.using(config)
    df = ds.fetch_arrow("ui.finding_counts",
                        t.group_by(["section", "finding", "severity"]).aggregate(rows=t.count())).to_pandas()
    df["rows"] = df["rows"].astype(int)
    df["_sev"] = (df["severity"] != "error").astype(int)
    df = df.sort_values(["_sev", "rows", "section", "finding"], ascending=[True, False, True, True])
    return df[cols].reset_index(drop=True)


def finding_csv(ds: Dataset, config: Config, section: str | None, finding: str | None) -> bytes:
    """The failing rows of one finding (all when ``finding`` is ``None``) as CSV bytes."""
    t = all_failing_rows(ds, config)
    if t is None:
        return (",".join(FAILING_ROW_COLUMNS) + "\n").encode()
    ds = ds.using(config)
    if finding is not None:
        t = t.filter((t.section == section) & (t.finding == finding))
        table = ds.query(t.order_by(["section", "finding", "role", "source_file", "line"]))
    else:
        table = ds.fetch_arrow("ui.failing_rows", t.order_by(["section", "finding", "role", "source_file", "line"]))
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def csv_name(section: str | None, finding: str | None) -> str:
    return "capi-diag-failing-rows.csv" if finding is None else f"capi-diag-{section}-{finding}.csv"


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


def side_by_side(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One log's rows as columns (``file:line``) and the fields they carry as rows, PII masked."""
    if not rows:
        return pd.DataFrame()
    masked = views.frame(rows)
    masked.index = [f"{r['source_file']}:{r['line']}" for r in rows]
    drop = {"source_file", "file_index", "line"}
    keep = [c for c in masked.columns if c not in drop and masked[c].notna().any()
            and (masked[c].astype(str) != "").any()]
    out = masked[keep].T
    out.index.name = "field"
    return out.astype(str).replace({"None": "", "nan": ""})
