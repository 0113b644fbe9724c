"""The report dict: every analysis over a dataset, then the checklist over their results.

One plain, JSON-serializable dict is the single source of the JSON, Markdown and HTML reports and of
the dashboard; ``filters`` records what it was cut to (the dashboard's sidebar filters; the CLI's
reports are never filtered). A failure inside one analysis is contained: that section is marked
``error`` with its reason and the report goes on.
"""


from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from capi_diag import diagnostics
from capi_diag.core import fmt
from capi_diag.core.config import Config
from capi_diag.core.errors import CapiDiagError
from capi_diag.engine import runner
from capi_diag.engine.dataset import Dataset, Filters
from capi_diag.verdict import checklist

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FORMATS = ("json", "markdown", "html")
STATUS_ORDER = {"error": -1, "fail": 0, "warn": 1, "not_evaluated": 2, "pass": 3}


def build_report(ds: Dataset, config: Config | None = None, *,
                 now: dt.datetime | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Run all analyses and the checklist; return the report dict (JSON-serializable)."""
    config = config or Config()
    ds = ds.using(config)
    now = now or dt.datetime.now(dt.timezone.utc)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "engine": getattr(ds.db.runner, "engine", "duckdb"),
        "generated_at": now.isoformat(timespec="seconds"),
        "inputs": ds.inputs,
        "filters": filters_record(getattr(ds, "filters", None)),
    }
    sections: dict[str, Any] = {}
    mods = diagnostics.modules()
    for i, mod in enumerate(mods):
        if progress:
            progress(mod.SECTION, i, len(mods))
        sections[mod.SECTION] = _contained(mod, ds, config, sections)
    report.update(sections)
    runner.CACHE.flush()
    report["checklist"] = checklist.build(sections, config)
    return report


def _contained(mod: Any, ds: Dataset, config: Config, sections: dict[str, Any]) -> dict[str, Any]:
    """One section, with a failure inside it contained: an engine or programming error marks the
    section ``error`` with its reason and the report goes on (the CLI then exits 3). Errors in the
    user's input or configuration (:class:`CapiDiagError`) still stop the report."""
    try:
        return mod.analyze(ds, config, sections)
    except CapiDiagError:
        raise
    except duckdb.OutOfMemoryException as e:  # the memory limit, not a bug: one clear message
        raise ds.db.limit_error(e) from None
    except Exception as e:  # noqa: BLE001 - contained and reported, see docstring
        log.debug("section %s failed", mod.SECTION, exc_info=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {"status": "error", "reason": f"{type(e).__name__}: {first}"[:500]}


def section_errors(report: Mapping[str, Any]) -> list[str]:
    """The sections whose analysis failed (status ``error``)."""
    return [s for s in diagnostics.ORDER
            if isinstance(report.get(s), Mapping) and report[s].get("status") == "error"]


def worst_status(report: Mapping[str, Any]) -> str | None:
    """The worst checklist status that counts (``not_evaluated`` never counts)."""
    statuses = [i["status"] for i in report.get("checklist", []) if i["status"] in ("fail", "warn")]
    return min(statuses, key=STATUS_ORDER.__getitem__) if statuses else None


# -- filters ----------------------------------------------------------------------------------------

def describe_filters(filters: Filters | None) -> str:
    """The filters in words: ``event dates 2026-11-17 to 2026-11-18 (UTC); event names Purchase``,
    or ``none`` when nothing is filtered."""
    if filters is None or not filters.active:
        return "none"
    parts = []
    if filters.start is not None and filters.end is not None:
        parts.append(f"event dates {fmt.date(filters.start)} to {fmt.date(filters.end - 1)} (UTC)")
    elif filters.start is not None:
        parts.append(f"event dates from {fmt.date(filters.start)} (UTC)")
    elif filters.end is not None:
        parts.append(f"event dates up to {fmt.date(filters.end - 1)} (UTC)")
    if filters.event_names:
        parts.append("event names " + ", ".join(filters.event_names))
    if filters.pixel_ids:
        parts.append("Pixels " + ", ".join(filters.pixel_ids))
    return "; ".join(parts)


def filters_record(filters: Filters | None) -> dict[str, Any]:
    """The report's ``filters`` object: ``active``, a ``description``, the UTC ``start`` (inclusive)
    and ``end`` (exclusive) in Unix seconds, and the ``event_names`` and ``pixel_ids`` kept (empty:
    all). An unfiltered report (every CLI report) has ``active: false`` and no bounds."""
    f = filters or Filters()
    return {"active": f.active, "description": describe_filters(f), "start": f.start, "end": f.end,
            "event_names": list(f.event_names), "pixel_ids": list(f.pixel_ids)}
