"""The dashboard under Streamlit's AppTest: every page on the demo data, on no data and on an empty
dataset; the checklist equals the report JSON; uploads, errors, filters, isolation of work per
session; plus the pure helpers of capi_diag.ui (views, findings, filters)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from capi_diag.config import Config
from capi_diag.dataset import Dataset, Filters
from capi_diag.db import Database
from capi_diag.ingest import Source, import_logs
from capi_diag.report import build_report
from capi_diag.ui import findings, state, views
from capi_diag.ui.navigation import PAGES

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 240

BROWSER_CSV = (
    "event_name,event_id,event_time,fbp\n"
    "PageView,pv-1,1700000000,fb.1.1700000000000.111\n"
    "Purchase,ord-1,1700000100,fb.1.1700000000000.111\n"
    "Purchase,ord-2,1700000200,fb.1.1700000000000.222\n"
    "AddToCart,atc-1,1700003600,fb.1.1700000000000.333\n"
).encode()
SERVER_CSV = (
    "event_name,event_id,event_time,fbp,em,value,currency,action_source,sent_at,order_id\n"
    "PageView,pv-1,1700000002,fb.1.1700000000000.111,jane.doe@example.com,,,website,1700000010,\n"
    "Purchase,ord-1,1700000101,fb.1.1700000000000.111,,129.95,EUR,website,1700000110,ORDER-77\n"
    "purchase,ord-2,1700000201,fb.1.1700000000000.222,,\"129,95\",EUR,website,1700000210,\n"
    "Lead,lead-1,1700000400,,,,,website,1700000400,\n"
).encode()


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo (data/), or the same generator's output when data/ is not there yet."""
    if state.demo_paths() is not None and (ROOT / "data" / "browser_events.csv").is_file():
        return ROOT / "data"
    from capi_diag.sample import write_sample

    out = tmp_path_factory.mktemp("demo")
    write_sample(out, sessions=1500, seed=7, fmt="csv")
    return out


@pytest.fixture(scope="module")
def demo_report(demo_dir: Path) -> dict:
    """The report exactly as ``python -m capi_diag report`` builds it for the demo files."""
    with Database() as db:
        ds = import_logs(db, browser=[demo_dir / "browser_events.csv"], server=[demo_dir / "server_events.csv"])
        return build_report(ds, Config())


@pytest.fixture
def no_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "no-demo-here"))


def _ws(at: AppTest) -> state.Workspace | None:
    return at.session_state[state.WORKSPACE_KEY] if state.WORKSPACE_KEY in at.session_state else None


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _assert_clean(at: AppTest, page: str) -> None:
    assert not at.exception, f"{page}: {[e.value for e in at.exception]}"
    assert not at.error, f"{page}: {[e.value for e in at.error]}"


def _blocks(node):
    for child in getattr(node, "children", {}).values():
        if type(child).__name__ == "Block" or hasattr(child, "children"):
            yield child
            yield from _blocks(child)


def _checklist_shown(at: AppTest) -> list[tuple[str, str]]:
    """``(item id, status)`` in page order, read from the item containers' chips."""
    out = []
    for block in _blocks(at.main):
        key = getattr(block, "key", None)
        if key and key.startswith("check_"):
            chips = [m.value for m in block.markdown if "capi-status-" in m.value]
            assert len(chips) == 1
            status = re.search(r"capi-status-([a-z_]+)", chips[0]).group(1)
            out.append((key.removeprefix("check_"), status))
    return out


def _metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}"
    return values[0]


def _path(url_path: str) -> str:
    return next(p.path for p in PAGES if p.url_path == url_path)


def _upload(at: AppTest, browser: bytes = BROWSER_CSV, server: bytes = SERVER_CSV) -> AppTest:
    at.switch_page(_path("import")).run()
    at.file_uploader(key="upload_browser").set_value([("browser.csv", browser, "text/csv")])
    at.file_uploader(key="upload_server").set_value([("server.csv", server, "text/csv")])
    at.run()
    at.button(key="run_import").click().run()
    return at


def _small_report() -> dict:
    with Database() as db:
        ds = import_logs(db, browser=[Source("browser.csv", data=BROWSER_CSV)],
                         server=[Source("server.csv", data=SERVER_CSV)])
        return build_report(ds, Config())


# -- every page ----------------------------------------------------------------------------------

def test_app_demo_data_every_page_runs_without_exception(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(demo_dir))
    at = _app().run()
    _assert_clean(at, "checklist")
    assert any("Demo data" in i.value for i in at.info)
    for page in PAGES:
        at.switch_page(page.path).run()
        _assert_clean(at, page.title)
        assert at.title, f"{page.title}: no title"


def test_app_no_data_every_page_shows_empty_state(no_demo: None) -> None:
    at = _app().run()
    for page in PAGES:
        at.switch_page(page.path).run()
        _assert_clean(at, page.title)
        if page.url_path not in ("import", "test-events"):
            assert any("No data in this session" in i.value for i in at.info), page.title


def test_app_empty_dataset_every_page_runs_without_exception(no_demo: None) -> None:
    at = _app()
    at.session_state[state.WORKSPACE_KEY] = state.records_workspace(Dataset.from_records([], []))
    at.run()
    for page in PAGES:
        at.switch_page(page.path).run()
        _assert_clean(at, page.title)
    at.switch_page(PAGES[0].path).run()
    assert any("No events to analyse" in w.value for w in at.warning)


# -- the checklist equals the report -----------------------------------------------------------

def test_checklist_demo_data_statuses_equal_report_json(demo_dir: Path, demo_report: dict,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(demo_dir))
    at = _app().run()
    _assert_clean(at, "checklist")
    expected = [(i["id"], i["status"]) for i in demo_report["checklist"]]
    assert expected, "the report has no checklist"
    assert _checklist_shown(at) == expected
    assert _metric(at, "Pairing rate") == views.pct(demo_report["dedup"]["pairing_rate"])
    assert _metric(at, "Server events") == f"{demo_report['inputs']['server']['rows']:,}"


# -- import, then every page over the uploaded files (one import for the tests below, in order) --

@pytest.fixture(scope="module")
def uploaded() -> AppTest:
    """One session that uploaded the two small logs through the Import page's file inputs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPI_DEMO_DIR", "/nonexistent/capi-demo")
        at = _upload(_app().run())
    return at


def _frame(at: AppTest, predicate) -> pd.DataFrame:
    for d in at.dataframe:
        if predicate(d.value):
            return d.value
    raise AssertionError("no such table on the page")


def test_import_two_uploads_checklist_shows_their_pairing_rate(uploaded: AppTest) -> None:
    at = uploaded
    _assert_clean(at, "import")
    report = _small_report()
    assert at.title[0].value == "Pre-launch checklist"
    assert _metric(at, "Pairing rate") == views.pct(report["dedup"]["pairing_rate"])
    assert _metric(at, "Browser events") == "4"
    assert any("Imported 4 browser and 4 server events" in s.value for s in at.success)
    assert _checklist_shown(at) == [(i["id"], i["status"]) for i in report["checklist"]]
    ws = _ws(at)
    assert ws.source == "upload" and ws.files == {"browser": ["browser.csv"], "server": ["server.csv"]}


def test_import_page_shows_import_report_with_mapping(uploaded: AppTest) -> None:
    at = uploaded.switch_page(_path("import")).run()
    _assert_clean(at, "import")
    mapping = _frame(at, lambda df: "Your header" in df.columns and "order_id" in set(df["Your header"]))
    assert dict(zip(mapping["Your header"], mapping["Canonical field"], strict=True))["em"] == "em"


def test_event_lookup_ids_show_both_logs_masked_and_findings(uploaded: AppTest) -> None:
    at = uploaded.switch_page(_path("event-lookup")).run()
    at.text_input(key="lookup_value").set_value("pv-1").run()
    _assert_clean(at, "lookup")
    server = _frame(at, lambda df: any(str(c).startswith("server.csv:") for c in df.columns))
    browser = _frame(at, lambda df: any(str(c).startswith("browser.csv:") for c in df.columns))
    assert server.loc["event_id"].tolist() == ["pv-1"] and browser.loc["event_id"].tolist() == ["pv-1"]
    assert server.loc["em"].tolist() == ["j***@example.com"]
    assert not any("jane.doe" in str(v) for d in at.dataframe for v in d.value.to_numpy().ravel())
    at.text_input(key="lookup_value").set_value("ORDER-77").run()
    server = _frame(at, lambda df: any(str(c).startswith("server.csv:") for c in df.columns))
    assert server.loc["event_id"].tolist() == ["ord-1"]
    at.text_input(key="lookup_value").set_value("ord-2").run()
    found = _frame(at, lambda df: "finding" in df.columns and "detail" in df.columns)
    assert "name_case_mismatch" in set(found["finding"])
    at.text_input(key="lookup_value").set_value("no-such-id").run()
    assert any("no-such-id" in w.value for w in at.warning)


def test_report_page_offers_three_formats_and_failing_rows_csv(uploaded: AppTest) -> None:
    at = uploaded.switch_page(_path("report")).run()
    _assert_clean(at, "report")
    keys = {b.key for b in at.get("download_button")}
    assert {"download_json", "download_markdown", "download_html", "download_failing_csv"} <= keys
    counts = _frame(at, lambda df: list(df.columns) == ["section", "finding", "severity", "rows"])
    assert int(counts.loc[counts["finding"] == "name_case_mismatch", "rows"].sum()) == 2  # server + partner


def test_session_switching_pages_does_not_rerun_analysis_filter_does(uploaded: AppTest) -> None:
    at = uploaded
    calls: list[Filters] = []
    real = state.build_report

    def counting(ds, config, **kw):
        calls.append(ds.filters)
        return real(ds, config, **kw)

    ws = _ws(at)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state, "build_report", counting)
        for page in PAGES[:6]:
            at.switch_page(page.path).run()
            _assert_clean(at, page.title)
        assert calls == [], "switching pages must not re-run the analyses"
        at.switch_page(PAGES[0].path).run()
        at.multiselect(key="filter_event_names").set_value(["Purchase"]).run()
        _assert_clean(at, "filtered")
        assert calls == [Filters(event_names=("Purchase",))]
        assert _ws(at) is ws, "a filter change must not re-import"
        assert _metric(at, "Server events") == "1"
        at.multiselect(key="filter_event_names").set_value([]).run()
        assert len(calls) == 1, "the unfiltered analysis is kept"
        assert _metric(at, "Server events") == "4"


def test_sessions_two_apps_each_see_only_their_own_upload(uploaded: AppTest, no_demo: None) -> None:
    other = _app().run()
    assert _ws(other) is None
    assert any("No data in this session" in i.value for i in other.info)
    assert _ws(uploaded).files["server"] == ["server.csv"]


def test_delete_my_data_empties_session_and_closes_database(uploaded: AppTest) -> None:
    at = uploaded
    ws = _ws(at)
    at.button(key="delete_my_data").click().run()
    _assert_clean(at, "after delete")
    assert _ws(at) is None
    assert any("No data in this session" in i.value for i in at.info)
    with pytest.raises(Exception):  # noqa: B017 - the closed DuckDB connection refuses any query
        ws.db.con.execute("SELECT 1")


def test_import_unusable_file_shows_error_not_exception(no_demo: None) -> None:
    at = _upload(_app().run(), server=b"\x00\x01\x02\xff\xfe binary junk \x00" * 50)
    assert not at.exception
    assert at.error, "an unusable file must be shown as an error"
    assert "server.csv" in at.error[0].value
    assert _ws(at) is None


# -- pure helpers ----------------------------------------------------------------------------------

OPTIONS = state.FilterOptions(dt.date(2023, 11, 14), dt.date(2023, 11, 16), ("PageView",), ())


def test_filters_from_full_range_is_no_filter() -> None:
    assert state.filters_from(OPTIONS, (dt.date(2023, 11, 14), dt.date(2023, 11, 16)), [], []) == Filters()


def test_filters_from_inner_days_are_whole_utc_days_end_exclusive() -> None:
    f = state.filters_from(OPTIONS, (dt.date(2023, 11, 15), dt.date(2023, 11, 15)), ["b", "a"], [])
    assert f == Filters(start=1700006400, end=1700092800, event_names=("a", "b"))


def test_filters_from_half_picked_range_is_no_date_filter() -> None:
    assert state.filters_from(OPTIONS, (dt.date(2023, 11, 15),), [], []) == Filters()


def test_side_by_side_masks_pii_and_drops_empty_fields() -> None:
    rows = [{"source_file": "s.csv", "file_index": 0, "line": 2, "event_name": "Lead", "em": ["jane@example.com"],
             "ph": None, "fbp": ["fb.1.1700000000000.1"]}]
    df = findings.side_by_side(rows)
    assert list(df.columns) == ["s.csv:2"]
    assert df.loc["em", "s.csv:2"] == "j***@example.com"
    assert "ph" not in df.index and "line" not in df.index


def test_finding_csv_one_finding_has_header_and_its_rows() -> None:
    with Database() as db:
        ds = import_logs(db, browser=[Source("b.csv", data=BROWSER_CSV)], server=[Source("s.csv", data=SERVER_CSV)])
        counts = findings.finding_counts(ds, Config())
        row = counts[counts["finding"] == "name_case_mismatch"].iloc[0]
        text = findings.finding_csv(ds, Config(), row["section"], row["finding"]).decode()
    lines = text.strip().splitlines()
    assert lines[0].replace('"', "") == ",".join(findings.FAILING_ROW_COLUMNS)
    assert len(lines) - 1 == int(row["rows"])
    assert all("name_case_mismatch" in line for line in lines[1:])


def test_checklist_items_observed_in_unit() -> None:
    report = {"checklist": [
        {"id": "a", "title": "A", "status": "pass", "observed": 0.75, "unit": "share", "threshold": "t",
         "page": "dedup"},
        {"id": "b", "title": "B", "status": "fail", "observed": 12.5, "unit": "seconds", "threshold": "t"},
        {"id": "c", "title": "C", "status": "warn", "observed": 5.4, "unit": "score", "threshold": "t"},
        {"id": "d", "title": "D", "status": "not_evaluated", "observed": None, "unit": "count", "threshold": "t"},
    ]}
    items = views.checklist_items(report)
    assert [i["observed_text"] for i in items] == ["75.0%", "12.5 s", "5.4 / 10", "n/a"]
    assert views.status_counts(report) == {"fail": 1, "warn": 1, "not_evaluated": 1, "pass": 1}


def test_coverage_matrix_fields_by_event_name() -> None:
    result = {"em": {"valid_coverage": 0.5, "by_event_name": {"Purchase": 1.0, "PageView": 0.25}},
              "ph": {"valid_coverage": 0.0, "by_event_name": {"Purchase": 0.0}}}
    m = views.coverage_matrix(result)
    assert list(m.index) == ["em", "ph"] and list(m.columns) == ["Purchase", "PageView"]
    assert m.loc["em", "PageView"] == 0.25 and pd.isna(m.loc["ph", "PageView"])


def test_import_without_server_file_says_what_is_not_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", "/nonexistent/capi-demo")
    at = _app().run()
    at.switch_page(_path("import")).run()
    at.file_uploader(key="upload_browser").set_value([("browser.csv", BROWSER_CSV, "text/csv")])
    at.run()
    at.button(key="run_import").click().run()
    assert not at.exception
    assert any("Imported 4 browser and 0 server events" in s.value and "No server (CAPI) log was imported"
               in s.value for s in at.success)
