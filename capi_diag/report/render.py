"""The report dict in words: JSON, Markdown and HTML.

Markdown and HTML open with the checklist's verdict and explain each number in a sentence with its
fix (each analysis's ``explain``), in the analyst's words (:mod:`capi_diag.core.labels`) and one
number format (:mod:`capi_diag.core.fmt`); the JSON keeps the ids. Every value taken from a log is
escaped for the format it lands in.
"""


from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from capi_diag import diagnostics
from capi_diag.core import fmt, labels
from capi_diag.core.config import Config
from capi_diag.report.build import FORMATS
from capi_diag.verdict import checklist


def _filters_sentence(report: Mapping[str, Any]) -> str:
    f = report.get("filters") or {}
    if not f.get("active"):
        return "Filters: none (every event of both logs)."
    return f"Filtered to {f.get('description')}: the figures cover only these events."


# -- rendering -----------------------------------------------------------------------------------

def render(report: Mapping[str, Any], kind: str, config: Config | None = None) -> str:
    """The report as ``json``, ``markdown`` or ``html``. ``config`` (the one the report was built
    with) lets the explanations quote the thresholds in force."""
    if kind == "json":
        return to_json(report)
    if kind == "markdown":
        return to_markdown(report, config)
    if kind == "html":
        return to_html(report, config)
    raise ValueError(f"unknown format {kind!r}; use one of {', '.join(FORMATS)}")


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def to_json(report: Mapping[str, Any]) -> str:
    return json.dumps(_clean(report), indent=2, ensure_ascii=False, default=str) + "\n"


_SHARE_WORDS = ("rate", "coverage", "share")
MEASURE_UNITS = ("share", "seconds", "score", "count")


def unit_for(label: str) -> str | None:
    """The unit an explanation's value is in, from its label (``pairing rate`` is a share), for
    entries that do not say (``unit``)."""
    low = label.lower()
    if any(w in low for w in _SHARE_WORDS):
        return "share"
    if "(s)" in low or low.endswith(" s"):
        return "seconds"
    return None


def fmt_value(value: Any, unit: str | None = None) -> str:
    """A number for people (:func:`capi_diag.core.fmt.value`): shares as ``71.5 %``, durations with
    their unit, scores out of 10, counts with separators."""
    return fmt.value(value, unit)


def entry_value(entry: Mapping[str, Any]) -> str:
    """An explanation entry's value in its unit; a count says what it counts (``12 dedup keys``)."""
    unit = entry.get("unit") or unit_for(str(entry.get("label", "")))
    value = entry.get("value")
    if unit and unit not in MEASURE_UNITS and isinstance(value, int) and not isinstance(value, bool):
        return fmt.counted(value, unit)
    return fmt.value(value, unit if unit in MEASURE_UNITS else None)


def section_title(section: str, module: Any = None) -> str:
    """A section's heading: the first line of its module's docstring, else its label."""
    doc = (getattr(module, "__doc__", None) or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else labels.SECTIONS.get(section, labels.humanize(section))


def explain_entries(module: Any, result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """``module.explain(result, config)`` (the thresholds in force quoted in the texts)."""
    return module.explain(result, config)


def _explanations(report: Mapping[str, Any],
                  config: Config | None = None) -> Iterable[tuple[str, str, list[dict[str, Any]]]]:
    for mod in diagnostics.modules():
        result = report.get(mod.SECTION)
        if result is None:
            continue
        if isinstance(result, Mapping) and result.get("status") == "error":
            yield mod.SECTION, section_title(mod.SECTION, mod), [{
                "label": "Analysis failed", "value": None,
                "text": f"This section could not be computed: {result.get('reason')}.",
                "fix": "Please report it to capi-diag's maintainers (a bug, not your data)."}]
            continue
        yield mod.SECTION, section_title(mod.SECTION, mod), explain_entries(mod, result, config)


def _examples(result: Any) -> Mapping[str, list[Mapping[str, Any]]]:
    if isinstance(result, Mapping) and isinstance(result.get("examples"), Mapping):
        return {k: v for k, v in result["examples"].items() if v}
    return {}


def example_header(column: str) -> str:
    """An example-row column in words; time columns say they are UTC."""
    name = labels.column(column)
    return f"{name} (UTC)" if column in labels.TIME_COLUMNS else name


def example_cell(column: str, value: Any) -> str:
    """One example cell for people: Unix times as UTC dates, durations with units, ids as labels,
    counts with separators, line numbers and raw values as they are, empty for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join("" if v is None else str(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if column in labels.TIME_COLUMNS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt.timestamp(value)
    if column in labels.DURATION_COLUMNS and isinstance(value, (int, float)):
        return fmt.duration(value)
    if column in labels.ID_VALUE_COLUMNS:
        return labels.label(str(value))
    if column in labels.ID_COLUMNS or column.endswith("_source_file") or column == "source_file":
        return os.path.basename(str(value)) if "source_file" in column else str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return fmt.number(value)
    return str(value)


def example_table(rows: list[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Example rows as ``(headers, cells)`` in words (:func:`example_header`, :func:`example_cell`)."""
    columns = list(rows[0].keys()) if rows else []
    return ([example_header(c) for c in columns],
            [[example_cell(c, r.get(c)) for c in columns] for r in rows])


def example_title(name: str, n: int) -> str:
    return f"Examples: {labels.label(name)} ({fmt.counted(n, 'row')} shown)"


def _inputs_rows(report: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for role, info in report.get("inputs", {}).items():
        reasons = ", ".join(f"{labels.label(k)}: {fmt.count(v)}"
                            for k, v in info.get("rejected_reasons", {}).items()) or "none"
        rows.append([labels.ROLES.get(role, role), ", ".join(os.path.basename(f) for f in info.get("files", [])),
                     fmt_value(info.get("rows_read")), fmt_value(info.get("rows")),
                     fmt_value(info.get("rejected_rows")), reasons,
                     ", ".join(info.get("unknown_columns", [])) or "none"])
    return rows


_INPUT_HEADERS = ["Log", "Files", "Rows read", "Rows loaded", "Rows rejected", "Why rejected", "Unknown columns"]
_CHECK_HEADERS = ["Status", "Item", "Observed", "Threshold", "Fix"]


def _check_items(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return checklist.grouped(list(report.get("checklist") or []))


def _check_rows(report: Mapping[str, Any]) -> list[list[str]]:
    return [[labels.STATUSES.get(i["status"], i["status"]), i["title"], fmt_value(i.get("observed"), i.get("unit")),
             i.get("threshold") or "", i.get("fix") or ""] for i in _check_items(report)]


def verdict_lines(report: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(status, verdict, note)`` of the report's checklist (see :func:`capi_diag.verdict.checklist.verdict`)."""
    items = list(report.get("checklist") or [])
    status, text = checklist.verdict(items)
    return status, text, checklist.verdict_note(items)


def _generated(report: Mapping[str, Any]) -> str:
    raw = report.get("generated_at")
    try:
        when = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        return str(raw)
    return fmt.timestamp(when.timestamp())


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`[]<>|"})
_MD_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\u2028": " ", "\u2029": " ", "\x0b": " ", "\x0c": " "})


def md_text(value: Any) -> str:
    """Text for Markdown, taken literally: a value from the logs can neither open raw HTML, a link, an
    image or code, nor end a table cell or start a new line (a heading, a fake table row). Those
    characters get a backslash (CommonMark shows it as the character itself); line breaks become
    spaces. ``*`` and ``_`` are left alone: emphasis can only restyle a value, and file names and
    ids are full of underscores."""
    return str(value).translate(_MD_LINE_BREAKS).translate(_MD_SPECIAL)


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(md_text(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(md_text(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def _failing(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [i for i in _check_items(report) if i["status"] in ("fail", "warn")]


def to_markdown(report: Mapping[str, Any], config: Config | None = None) -> str:
    parts = ["# capi-diag report", "",
             f"Generated {md_text(_generated(report))}. {md_text(_filters_sentence(report))}", ""]
    if report.get("checklist"):
        _, text, note = verdict_lines(report)
        note = f" {md_text(note[:1].upper() + note[1:])}." if note else ""
        parts += ["## Pre-launch checklist", "", f"**{md_text(text)}.**" + note,
                  "", _md_table(_CHECK_HEADERS, _check_rows(report)), ""]
        for item in _failing(report):
            parts.append(f"- **{md_text(item['title'])}** ({labels.STATUSES[item['status']].lower()}): "
                         f"{md_text(item.get('explanation') or '')} Fix: {md_text(item.get('fix') or '')}"
                         .replace("  ", " "))
        parts.append("")
    parts += ["## Inputs", "", _md_table(_INPUT_HEADERS, _inputs_rows(report)), ""]
    for section, title, entries in _explanations(report, config):
        parts += [f"## {md_text(title)}", ""]
        for e in entries:
            fix = f" Fix: {md_text(e['fix'])}" if e.get("fix") else ""
            parts.append(f"- **{md_text(e['label'])}: {md_text(entry_value(e))}**. {md_text(e['text'])}{fix}")
        for name, rows in _examples(report[section]).items():
            headers, cells = example_table(rows)
            parts += ["", md_text(example_title(name, len(rows))), "", _md_table(headers, cells)]
        parts.append("")
    parts += [f"Field codes: {md_text(labels.field_legend())}.", ""]
    return "\n".join(parts).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2rem auto;
color:#1f2933;padding:0 1rem}table{border-collapse:collapse;margin:.5rem 0 1rem}
td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f2f5f9}.fail{color:#fff;background:#D55E00}.warn{background:#E69F00}
.pass{color:#fff;background:#009E73}.not_evaluated{background:#ddd}.error{background:#CC79A7}
.verdict{font-size:1.3rem;font-weight:700;padding:.6rem .9rem;border-radius:.4rem;display:inline-block}
"""


def _html_table(headers: list[str], rows: list[list[Any]], status_col: int | None = None,
                classes: list[str] | None = None) -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    body = []
    for n, r in enumerate(rows):
        cells = []
        for i, v in enumerate(r):
            cls = f' class="{html.escape(classes[n])}"' if i == status_col and classes else ""
            cells.append(f"<td{cls}>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(report: Mapping[str, Any], config: Config | None = None) -> str:
    e = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>capi-diag report</title><style>{_CSS}</style></head><body>",
             "<h1>capi-diag report</h1>",
             f"<p>Generated {e(_generated(report))}. {e(_filters_sentence(report))}</p>"]
    if report.get("checklist"):
        status, text, note = verdict_lines(report)
        parts += ["<h2>Pre-launch checklist</h2>",
                  f"<p><span class='verdict {e(status)}'>{e(text)}</span></p>"]
        if note:
            parts.append(f"<p>{e(note[:1].upper() + note[1:])}.</p>")
        parts.append(_html_table(_CHECK_HEADERS, _check_rows(report), 0,
                                 [i["status"] for i in _check_items(report)]))
        failing = _failing(report)
        if failing:
            parts.append("<ul>" + "".join(
                f"<li><strong>{e(i['title'])}</strong> ({e(labels.STATUSES[i['status']].lower())}): "
                f"{e(i.get('explanation') or '')} Fix: {e(i.get('fix') or '')}</li>" for i in failing) + "</ul>")
    parts += ["<h2>Inputs</h2>", _html_table(_INPUT_HEADERS, _inputs_rows(report))]
    for section, title, entries in _explanations(report, config):
        parts.append(f"<h2>{e(title)}</h2><ul>")
        for x in entries:
            fix = f" <em>Fix:</em> {e(x['fix'])}" if x.get("fix") else ""
            parts.append(f"<li><strong>{e(x['label'])}: {e(entry_value(x))}</strong>. {e(x['text'])}{fix}</li>")
        parts.append("</ul>")
        for name, rows in _examples(report[section]).items():
            headers, cells = example_table(rows)
            parts += [f"<h3>{e(example_title(name, len(rows)))}</h3>", _html_table(headers, cells)]
    parts.append(f"<p>Field codes: {e(labels.field_legend())}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
