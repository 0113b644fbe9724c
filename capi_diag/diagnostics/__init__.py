"""The analyses. Each is one module exposing:

* ``SECTION``: the report key it fills (``"dedup"``),
* ``DEFAULTS``: its default thresholds (overridable in the ``--config`` TOML under ``[SECTION]``),
* ``analyze(ds, config, prior) -> dict``: Ibis expressions executed by the engine, then a pure
  judgement over the aggregates; ``prior`` holds the sections computed before it (in ``ORDER``),
* ``explain(result, config=None) -> list[dict]``: one ``{"label", "value", "text", "fix"}`` entry per
  number (optionally its ``unit``: ``share``, ``seconds``, ``score`` or what a count counts), in the
  analyst's words and quoting the thresholds of ``config``, which the Markdown and HTML reports and
  the dashboard print as sentences,
* ``failing_rows(ds, config) -> ibis.Table``: the rows behind each finding, one row per (event row,
  finding) with the columns of :data:`FAILING_ROW_COLUMNS`. The dashboard's event lookup and its
  "CSV of failing rows" and the Test Events sender's local validation all read these (a rule is
  written once),

and a module docstring that says what it measures, why it matters for Meta CAPI, the usual cause of
a bad value and the fix (the dashboard shows it).

An analysis imports the measures and rules of :mod:`capi_diag.engine`, never another analysis.

May import: core, engine, meta (the error catalogue), io.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from capi_diag.engine.lazy import ibis

FAILING_ROW_COLUMNS: tuple[str, ...] = (
    "section", "finding", "severity", "role", "source_file", "line", "event_name", "event_id", "detail",
)
"""``severity`` is ``error`` (blocks launch / Meta rejects it) or ``warning``; ``detail`` is short text
(e.g. the field name), never a raw PII value; ``event_id`` may be null."""

ORDER: tuple[str, ...] = ("dedup", "timing", "match_keys", "emq", "consent", "contract", "journey", "delivery",
                         "reconciliation", "privacy")
"""Report order; a later analysis may read an earlier one's result through ``prior``."""


def bucket_counts(ds: Any, name: str, t: ibis.Table, column: str,
                  bins: Sequence[tuple[int | None, int | None]]) -> dict[int, int]:
    """Rows of ``t`` per bucket index, bucket ``i`` holding the values ``lo <= v <= hi`` of
    ``bins[i]`` (``None`` = open end; the first matching bucket wins), counted in the engine by the
    dataset's query ``name`` (``ds.fetch``)."""
    def build() -> ibis.Table:
        branches = []
        for i, (lo, hi) in enumerate(bins):
            cond = ibis.literal(True)
            if lo is not None:
                cond = cond & (t[column] >= lo)
            if hi is not None:
                cond = cond & (t[column] <= hi)
            branches.append((cond, i))
        b = t.mutate(_b=ibis.cases(*branches))
        return b.group_by("_b").aggregate(n=b.count())
    return {int(r["_b"]): int(r["n"]) for r in ds.fetch(name, build) if r["_b"] is not None}


def module(section: str) -> ModuleType:
    return importlib.import_module(f"capi_diag.diagnostics.{section}")


def modules() -> list[ModuleType]:
    return [module(s) for s in ORDER]
