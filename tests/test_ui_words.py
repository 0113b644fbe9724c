"""Plain words everywhere: no internal identifier reaches a page, a chart, a table or the
Markdown/HTML report.

The forbidden identifiers are built, not listed by hand: every id of the label table
(:func:`capi_diag.core.labels.known_ids`), every key of a real report (its sections, figures, example
columns, ``field.defect`` pairs) and every finding of its failing rows, keeping those that look like
identifiers (``stale_over_7d``, ``em.unhashed``) and leaving out Meta's own parameter names and the
header forms the import accepts (``event_id``, ``client_user_agent``, ``user_data.em``), which are
the analyst's vocabulary. Every page is opened in AppTest on the demo data and on an upload of
held-out logs (with a filter set, an event looked up and the report page open), and every text
element, table cell, widget label and option, metric and chart string is scanned.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from capi_diag.core import labels, schema
from capi_diag.core.config import Config
from capi_diag.engine.db import Database
from capi_diag.io.ingest import import_logs
from capi_diag.report import build_report, to_html, to_markdown
from capi_diag.ui import findings, session, state
from capi_diag.ui.navigation import PAGES

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 240

DATA_KEYED = frozenset({"by_event_name", "near_names", "other_events", "nonstandard_names", "by_region",
                        "server_to_browser", "mapping", "weights", "bands", "skew_whole_hours_by_offset"})
"""Report keys whose dict keys are data (event names, regions, the user's headers), not ids."""


def allowed_vocabulary() -> set[str]:
    """Meta's parameter names and every header form the import accepts: shown as they are."""
    words = {f.name for f in schema.FIELDS} | set(schema.ALIASES)
    words |= set(schema.USER_DATA_KEYS) | set(schema.CUSTOM_DATA_KEYS) | set(schema.CONSENT_PURPOSES)
    words |= set(schema.TOP_LEVEL_FIELDS) | set(schema.ACTION_SOURCES) | {"user_data", "custom_data"}
    return words


def _keys(obj: Any, parent: str | None = None) -> Iterator[str]:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if parent not in DATA_KEYED:
                yield str(k)
            yield from _keys(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v, parent)


def report_ids(report: Mapping[str, Any]) -> set[str]:
    """Every key of ``report`` (outside data-keyed dicts), its example-row id values (outcome,
    reason), the checklist item ids and statuses."""
    ids = set(_keys(report))
    for section in report.values():
        if isinstance(section, Mapping) and isinstance(section.get("examples"), Mapping):
            for rows in section["examples"].values():
                for row in rows:
                    ids |= {str(row[c]) for c in labels.ID_VALUE_COLUMNS if row.get(c)}
    for item in report.get("checklist") or []:
        ids |= {item["id"], item["status"], item["page"], item["unit"]}
    return ids


def forbidden(*reports: Mapping[str, Any], extra: Iterable[str] = ()) -> set[str]:
    ids = labels.known_ids() | set(extra)
    for r in reports:
        ids |= report_ids(r)
    allowed = allowed_vocabulary()
    return {i for i in ids if ("_" in i or "." in i) and i not in allowed and not i.startswith("_")}


def _pattern(ids: set[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w])")


def _plotly_strings(obj: Any, out: list[str]) -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if k != "template":  # plotly's own theme
                _plotly_strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _plotly_strings(v, out)
    elif isinstance(obj, str):
        out.append(obj)


def texts(at: AppTest) -> list[str]:
    """Every string a person can read on the page: text elements, alerts, metrics, expander labels,
    widget labels, help texts, placeholders and options, table headers and cells, chart strings."""
    out: list[str] = []
    for node in at._tree:
        kind = type(node).__name__
        proto = getattr(node, "proto", None)
        for attr in ("label", "help", "placeholder"):
            v = getattr(proto, attr, None) if proto is not None else None
            if isinstance(v, str) and v:
                out.append(v)
        if kind in ("Markdown", "Caption", "Title", "Header", "Subheader", "Text", "Code", "Error", "Warning",
                    "Info", "Success", "Exception", "Latex"):
            out.append(str(node.value))
        elif kind == "Metric":
            out += [node.label, node.value]
        elif kind in ("Expander", "Tab"):
            out.append(node.label)
        elif kind == "Dataframe":
            df = node.value
            out += [str(c) for c in df.columns] + [str(i) for i in df.index]
            out += [str(v) for v in df.to_numpy().ravel() if v is not None]
        elif kind in ("Selectbox", "Multiselect", "Radio"):
            out += [str(o) for o in node.options]
        elif kind == "UnknownElement" and node.type == "plotly_chart":
            _plotly_strings(json.loads(node.proto.spec), out)
        elif kind == "UnknownElement" and node.type == "progress":
            out.append(node.proto.text)
    return [re.sub(r"<[^>]+>", " ", t) for t in out]  # what is read, not the HTML around it


def offences(pattern: re.Pattern[str], strings: Iterable[str], where: str) -> list[str]:
    found = []
    for s in strings:
        for m in pattern.finditer(s):
            found.append(f"{where}: {m.group(0)!r} in {s[max(0, m.start() - 60):m.end() + 60]!r}")
    return found


def every_page(at: AppTest, lookup: str) -> dict[str, list[str]]:
    """The texts of every page; the lookup page with ``lookup`` looked up."""
    out = {}
    for page in PAGES:
        at.switch_page(page.path).run()
        assert not at.exception, [e.value for e in at.exception]
        if page.url_path == "event-lookup":
            at.text_input(key="lookup_value").set_value(lookup).run()
        out[page.title] = texts(at)
    return out


def _report(browser: Path, server: Path) -> dict:
    with Database() as db:
        ds = import_logs(db, browser=[browser], server=[server])
        return build_report(ds, Config())


def _failing_findings(browser: Path, server: Path) -> set[str]:
    with Database() as db:
        ds = import_logs(db, browser=[browser], server=[server])
        counts = findings.finding_counts(ds, Config())
    return set(counts["finding"]) | {f"{d}.{f}" for f, d in zip(counts["finding"], counts["field"], strict=True)
                                     if d}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if session.demo_paths() is not None:
        return dict(session.demo_paths())
    from capi_diag.io.sample import write_sample

    out = tmp_path_factory.mktemp("demo")
    write_sample(out, sessions=1500, seed=7, fmt="csv")
    return {"browser": out / "browser_events.csv", "server": out / "server_events.csv"}


@pytest.fixture(scope="module")
def held_out(held_out_logs: dict[str, Path]) -> dict[str, Path]:
    return held_out_logs


@pytest.fixture(scope="module")
def reports(demo_files: dict[str, Path], held_out_report: dict) -> dict[str, dict]:
    return {"demo": _report(demo_files["browser"], demo_files["server"]), "held_out": held_out_report}


@pytest.fixture(scope="module")
def pattern(reports: dict[str, dict], demo_files: dict[str, Path], held_out: dict[str, Path]) -> re.Pattern[str]:
    extra = _failing_findings(demo_files["browser"], demo_files["server"])
    extra |= _failing_findings(held_out["browser"], held_out["server"])
    ids = forbidden(*reports.values(), extra=extra)
    for must in ("stale_over_7d", "name_case_mismatch", "em.unhashed", "client_user_agent.non_browser",
                 "test_event_code_present", "not_evaluated", "match_keys", "skew_p95_abs_s", "by_event_name"):
        assert must in ids, f"{must} should be forbidden"
    for fine in ("event_id", "client_user_agent", "test_event_code", "user_data.em", "ad_user_data"):
        assert fine not in ids
    return _pattern(ids)


def _first_event_id(report: dict) -> str:
    return str(report["dedup"]["examples"]["paired"][0]["event_id"])


def test_words_demo_every_page_has_no_internal_identifier(demo_files: dict[str, Path], reports: dict[str, dict],
                                                          pattern: re.Pattern[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(demo_files["browser"].parent))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    found = []
    for title, strings in every_page(at, _first_event_id(reports["demo"])).items():
        assert strings, title
        found += offences(pattern, strings, f"demo / {title}")
    assert found == [], "\n".join(found[:40])


def test_words_upload_filtered_every_page_has_no_internal_identifier(
        held_out: dict[str, Path], reports: dict[str, dict], pattern: re.Pattern[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", "/nonexistent/capi-demo")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(next(p.path for p in PAGES if p.url_path == "import")).run()
    at.file_uploader(key="upload_browser").set_value([("browser.csv", held_out["browser"].read_bytes(), "text/csv")])
    at.file_uploader(key="upload_server").set_value([("server.csv", held_out["server"].read_bytes(), "text/csv")])
    at.button(key="run_import").click().run()  # the files go with the click (one form)
    job = at.session_state[state.JOB_KEY]
    deadline = time.monotonic() + TIMEOUT
    while not job.done:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    at.run()
    found = offences(pattern, texts(at), "upload / after import")
    found += [f for title, strings in every_page(at, _first_event_id(reports["held_out"])).items()
              for f in offences(pattern, strings, f"upload / {title}")]
    [names] = [w for w in at.sidebar.multiselect if w.label == "Event name"]
    names.set_value(["Purchase", "AddToCart"]).run()
    found += [f for title, strings in every_page(at, _first_event_id(reports["held_out"])).items()
              for f in offences(pattern, strings, f"upload, filtered / {title}")]
    assert found == [], "\n".join(found[:40])


@pytest.mark.parametrize("name", ["demo", "held_out"])
def test_words_markdown_and_html_reports_have_no_internal_identifier(name: str, reports: dict[str, dict],
                                                                     pattern: re.Pattern[str]) -> None:
    md = to_markdown(reports[name], Config())
    html = re.sub(r"<[^>]+>", " ", to_html(reports[name], Config()))
    found = offences(pattern, md.splitlines(), f"{name} markdown") + offences(pattern, [html], f"{name} html")
    assert found == [], "\n".join(found[:40])
    assert "Field codes: em = email" in md, "the field codes are spelled out once"


def test_words_json_report_keeps_the_ids(reports: dict[str, dict]) -> None:
    r = reports["demo"]
    assert r["timing"]["stale_over_7d"] >= 0 and "em.unhashed" in r["match_keys"]["examples"]
    assert {i["status"] for i in r["checklist"]} <= {"pass", "warn", "fail", "not_evaluated"}
