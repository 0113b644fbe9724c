"""Results -> one plain dict -> JSON, Markdown and HTML.

:func:`build_report` runs every analysis of :mod:`capi_diag.diagnostics` over a dataset and the
checklist over their results. The dict it returns is the single source for the JSON report, the
Markdown and HTML reports and the dashboard, so they always agree. Markdown and HTML open with the
checklist and explain each number in a sentence with its fix (each analysis's ``explain``).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from capi_diag import diagnostics, engine
from capi_diag.config import Config
from capi_diag.dataset import Dataset
from capi_diag.errors import CapiDiagError

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
        "generated_at": now.isoformat(timespec="seconds"),
        "inputs": ds.inputs,
    }
    sections: dict[str, Any] = {}
    mods = diagnostics.modules()
    for i, mod in enumerate(mods):
        if progress:
            progress(mod.SECTION, i, len(mods))
        sections[mod.SECTION] = _contained(mod, ds, config, sections)
    report.update(sections)
    engine.CACHE.flush()
    checklist = _checklist_module()
    if checklist is not None:
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
    except Exception as e:  # noqa: BLE001 - contained and reported, see docstring
        log.debug("section %s failed", mod.SECTION, exc_info=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {"status": "error", "reason": f"{type(e).__name__}: {first}"[:500]}


def section_errors(report: Mapping[str, Any]) -> list[str]:
    """The sections whose analysis failed (status ``error``)."""
    return [s for s in diagnostics.ORDER
            if isinstance(report.get(s), Mapping) and report[s].get("status") == "error"]


def _checklist_module():
    import importlib
    import importlib.util

    if importlib.util.find_spec("capi_diag.checklist") is None:
        return None  # the checklist lands with its own issue
    return importlib.import_module("capi_diag.checklist")


def worst_status(report: Mapping[str, Any]) -> str | None:
    """The worst checklist status that counts (``not_evaluated`` never counts)."""
    statuses = [i["status"] for i in report.get("checklist", []) if i["status"] in ("fail", "warn")]
    return min(statuses, key=STATUS_ORDER.__getitem__) if statuses else None


# -- rendering -----------------------------------------------------------------------------------

def render(report: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "html":
        return to_html(report)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


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


def unit_for(label: str) -> str | None:
    """The unit an explanation's value is in, from its label (``pairing rate`` is a share)."""
    low = label.lower()
    if any(w in low for w in _SHARE_WORDS):
        return "share"
    if "(s)" in low or low.endswith(" s"):
        return "seconds"
    return None


def fmt_value(value: Any, unit: str | None = None) -> str:
    """A number for people: shares as percentages, seconds with ``s``, counts with separators."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if unit == "share":
            return f"{value:.1%}"
        if unit == "seconds":
            return f"{value:,.1f} s" if isinstance(value, float) and not value.is_integer() else f"{value:,.0f} s"
        if unit == "score":
            return f"{value:.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)


def _explanations(report: Mapping[str, Any]) -> Iterable[tuple[str, str, list[dict[str, Any]]]]:
    for mod in diagnostics.modules():
        result = report.get(mod.SECTION)
        if result is None:
            continue
        title = (mod.__doc__ or mod.SECTION).strip().splitlines()[0].rstrip(".")
        if isinstance(result, Mapping) and result.get("status") == "error":
            yield mod.SECTION, title, [{"label": "Analysis failed", "value": None,
                                        "text": f"This section could not be computed: {result.get('reason')}.",
                                        "fix": "Please report it to capi-diag's maintainers (a bug, not your data)."}]
            continue
        yield mod.SECTION, title, mod.explain(result)


def _examples(result: Any) -> Mapping[str, list[Mapping[str, Any]]]:
    if isinstance(result, Mapping) and isinstance(result.get("examples"), Mapping):
        return {k: v for k, v in result["examples"].items() if v}
    return {}


def _inputs_rows(report: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for role, info in report.get("inputs", {}).items():
        reasons = ", ".join(f"{k}: {v}" for k, v in info.get("rejected_reasons", {}).items()) or "none"
        rows.append([role, ", ".join(info.get("files", [])), fmt_value(info.get("rows_read")),
                     fmt_value(info.get("rows")), fmt_value(info.get("rejected_rows")), reasons,
                     ", ".join(info.get("unknown_columns", [])) or "none"])
    return rows


_INPUT_HEADERS = ["log", "files", "rows read", "rows loaded", "rejected", "rejected reasons", "unknown columns"]
_CHECK_HEADERS = ["status", "item", "observed", "threshold", "fix"]


def _check_rows(report: Mapping[str, Any]) -> list[list[str]]:
    return [[i["status"].upper(), i["title"], fmt_value(i.get("observed"), i.get("unit")),
             fmt_value(i.get("threshold"), i.get("unit")), i.get("fix") or ""] for i in report.get("checklist", [])]


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def to_markdown(report: Mapping[str, Any]) -> str:
    parts = ["# capi-diag report", "", f"Generated {report.get('generated_at')}.", ""]
    if report.get("checklist"):
        parts += ["## Pre-launch checklist", "", _md_table(_CHECK_HEADERS, _check_rows(report)), ""]
        failing = [i for i in report["checklist"] if i["status"] in ("fail", "warn")]
        for item in failing:
            parts.append(f"- **{item['title']}** ({item['status']}): {item.get('explanation') or ''} "
                         f"Fix: {item.get('fix') or ''}".replace("  ", " "))
        parts.append("")
    parts += ["## Inputs", "", _md_table(_INPUT_HEADERS, _inputs_rows(report)), ""]
    for section, title, entries in _explanations(report):
        parts += [f"## {title}", ""]
        for e in entries:
            fix = f" Fix: {e['fix']}" if e.get("fix") else ""
            parts.append(f"- **{e['label']}: {fmt_value(e.get('value'), unit_for(e['label']))}**. {e['text']}{fix}")
        for name, rows in _examples(report[section]).items():
            headers = list(rows[0].keys())
            parts += ["", f"Examples: {name}", "", _md_table(headers, [[fmt_value(r.get(h)) for h in headers]
                                                                     for r in rows])]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2rem auto;
color:#1f2933;padding:0 1rem}table{border-collapse:collapse;margin:.5rem 0 1rem}
td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f2f5f9}.fail{color:#fff;background:#D55E00}.warn{background:#E69F00}
.pass{color:#fff;background:#009E73}.not_evaluated{background:#ddd}
"""


def _html_table(headers: list[str], rows: list[list[Any]], status_col: int | None = None) -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = f' class="{html.escape(str(v).lower())}"' if i == status_col else ""
            cells.append(f"<td{cls}>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(report: Mapping[str, Any]) -> str:
    e = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>capi-diag report</title><style>{_CSS}</style></head><body>",
             "<h1>capi-diag report</h1>", f"<p>Generated {e(str(report.get('generated_at')))}.</p>"]
    if report.get("checklist"):
        parts += ["<h2>Pre-launch checklist</h2>", _html_table(_CHECK_HEADERS, _check_rows(report), 0)]
        failing = [i for i in report["checklist"] if i["status"] in ("fail", "warn")]
        if failing:
            parts.append("<ul>" + "".join(
                f"<li><strong>{e(i['title'])}</strong> ({e(i['status'])}): {e(i.get('explanation') or '')} "
                f"Fix: {e(i.get('fix') or '')}</li>" for i in failing) + "</ul>")
    parts += ["<h2>Inputs</h2>", _html_table(_INPUT_HEADERS, _inputs_rows(report))]
    for section, title, entries in _explanations(report):
        parts.append(f"<h2>{e(title)}</h2><ul>")
        for x in entries:
            fix = f" <em>Fix:</em> {e(x['fix'])}" if x.get("fix") else ""
            parts.append(f"<li><strong>{e(x['label'])}: {e(fmt_value(x.get('value'), unit_for(x['label'])))}</strong>. "
                         f"{e(x['text'])}{fix}</li>")
        parts.append("</ul>")
        for name, rows in _examples(report[section]).items():
            headers = list(rows[0].keys())
            parts += [f"<h3>Examples: {e(name)}</h3>",
                      _html_table(headers, [[fmt_value(r.get(h)) for h in headers] for r in rows])]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
