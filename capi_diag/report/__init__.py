"""The report: results -> one plain dict -> JSON, Markdown and HTML.

:mod:`.build` runs every analysis of :mod:`capi_diag.diagnostics` over a dataset and the checklist
over their results (:func:`build_report`); the dict it returns is the single source for the JSON
report, the Markdown and HTML reports (:mod:`.render`) and the dashboard, so they always agree.
:mod:`.guide` holds each page's plain-words guide. This package's face re-exports the public names of
both modules.

May import: core, engine, diagnostics, verdict (the layers below the report).
"""

from __future__ import annotations

from capi_diag.report.build import (
    FORMATS,
    SCHEMA_VERSION,
    STATUS_ORDER,
    build_report,
    describe_filters,
    filters_record,
    section_errors,
    worst_status,
)
from capi_diag.report.render import (
    MEASURE_UNITS,
    entry_value,
    example_cell,
    example_header,
    example_table,
    example_title,
    explain_entries,
    fmt_value,
    md_text,
    render,
    section_title,
    to_html,
    to_json,
    to_markdown,
    unit_for,
    verdict_lines,
)

__all__ = [
    "FORMATS", "MEASURE_UNITS", "SCHEMA_VERSION", "STATUS_ORDER", "build_report", "describe_filters",
    "entry_value", "example_cell", "example_header", "example_table", "example_title", "explain_entries",
    "filters_record", "fmt_value", "md_text", "render", "section_errors", "section_title", "to_html",
    "to_json", "to_markdown", "unit_for", "verdict_lines", "worst_status",
]
