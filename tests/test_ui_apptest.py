"""The dashboard under Streamlit's AppTest: every page on the demo data, on no data and on an empty
dataset; the checklist equals the report JSON; uploads (imported in the background), errors,
filters (reset with every new dataset, the banner, "Clear filters"), isolation of work per session;
plus the pure helpers of capi_diag.ui (views, findings, filters)."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from capi_diag import api
from capi_diag.core import fmt
from capi_diag.core.config import Config
from capi_diag.engine.dataset import Dataset, Filters
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.io.orders import import_extras
from capi_diag.report import build_report, render
from capi_diag.ui import findings, navigation, session, state, views
from capi_diag.ui.navigation import PAGES
from capi_diag.verdict import checklist

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
    if session.demo_paths() is not None and (ROOT / "data" / "browser_events.csv").is_file():
        return ROOT / "data"
    from capi_diag.io.sample import write_sample

    out = tmp_path_factory.mktemp("demo")
    write_sample(out, sessions=1500, seed=7, fmt="csv")
    return out


@pytest.fixture(scope="module")
def demo_report(demo_dir: Path) -> dict:
    """The report exactly as ``python -m capi_diag report`` builds it for the demo files."""
    with Database() as db:
        ds = import_logs(db, browser=[demo_dir / "browser_events.csv"], server=[demo_dir / "server_events.csv"])
        ds = import_extras(ds, orders=[demo_dir / "orders.csv"], send_log=[demo_dir / "send_log.jsonl"])
        return build_report(ds, Config())


@pytest.fixture
def no_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "no-demo-here"))


def _ws(at: AppTest) -> session.Workspace | None:
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


def _expected_checklist(report: dict) -> list[tuple[str, str]]:
    """The items as the page orders them: blockers, warnings, not evaluated, passing (go-live order
    within each)."""
    return [(i["id"], i["status"]) for i in checklist.grouped(report["checklist"])]


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


def _wait_import(at: AppTest, timeout: float = TIMEOUT) -> AppTest:
    """Wait for the session's background import to finish (the click's run already waited for it:
    see navigation.follow_import), then run the page once more."""
    job = at.session_state[state.JOB_KEY] if state.JOB_KEY in at.session_state else None
    assert job is not None, "no import was started"
    deadline = time.monotonic() + timeout
    while not job.done:
        assert time.monotonic() < deadline, "the import did not finish"
        time.sleep(0.05)
    return at.run()


def _uploader_key(at: AppTest, name: str) -> str:
    """The key the Import page gives its file widget ``name`` now (each import gives new ones)."""
    gen = at.session_state[state.UPLOAD_GEN_KEY] if state.UPLOAD_GEN_KEY in at.session_state else 0
    return name if not gen else f"{name}_{gen}"


def _upload(at: AppTest, browser: bytes = BROWSER_CSV, server: bytes = SERVER_CSV,
            names: tuple[str, str] = ("browser.csv", "server.csv")) -> AppTest:
    at.switch_page(_path("import")).run()
    at.file_uploader(key=_uploader_key(at, "upload_browser")).set_value([(names[0], browser, "text/csv")])
    at.file_uploader(key=_uploader_key(at, "upload_server")).set_value([(names[1], server, "text/csv")])
    at.button(key="run_import").click().run()  # the files go with the click (one form)
    return _wait_import(at)


def _sidebar_widget(at: AppTest, kind: str, label: str):
    found = [w for w in getattr(at.sidebar, kind) if w.label == label]
    assert found, f"no {kind} {label!r} in the sidebar"
    return found[0]


def _banner(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if w.value.startswith("**Filtered view")]


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
    at.session_state[state.WORKSPACE_KEY] = session.records_workspace(Dataset.from_records([], []))
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
    expected = _expected_checklist(demo_report)
    assert expected, "the report has no checklist"
    assert _checklist_shown(at) == expected
    assert [s for _, s in expected][:1] == ["fail"], "blockers come first"
    _, verdict = checklist.verdict(demo_report["checklist"])
    n_fail = sum(1 for i in demo_report["checklist"] if i["status"] == "fail")
    assert verdict == f"Not ready to go live: {n_fail} blockers"
    blocks = [m.value for m in at.markdown if "capi-verdict" in m.value]
    assert len(blocks) == 1 and verdict in blocks[0]
    assert at.main.markdown.values.index(blocks[0]) < min(
        i for i, v in enumerate(at.main.markdown.values) if "capi-status-" in v), "the verdict comes first"
    assert _metric(at, "Pairing rate") == fmt.share(demo_report["dedup"]["pairing_rate"])
    assert re.fullmatch(r"\d+\.\d %", _metric(at, "Pairing rate"))
    assert _metric(at, "Server events") == f"{demo_report['inputs']['server']['rows']:,}"
    passing = [e for e in at.main.expander if e.label.startswith("Passing")]
    assert len(passing) == 1 and passing[0].label == f"Passing ({sum(s == 'pass' for _, s in expected)})"


def test_checklist_emq_card_never_contradicts_its_item(demo_report: dict) -> None:
    report = dict(demo_report)
    item = next(i for i in report["checklist"] if i["id"] == "emq_estimate")
    caption, status = views.emq_card(report)
    assert status == item["status"]
    assert ("Below the target" in caption) == (item["status"] in ("warn", "fail"))
    raised = [{**i, "status": "warn"} if i["id"] == "emq_estimate" else i for i in report["checklist"]]
    good = {**report, "emq": {**report["emq"], "band": "Good", "estimate": 6.5, "target": 7.0}, "checklist": raised}
    caption, status = views.emq_card(good)
    assert status == "warn" and caption == "Below the target of 7.0" and "Good" not in caption


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
    # the Import page stays: what was imported, and the way on to the checklist
    assert at.title[0].value == "Import your logs"
    notice = next(s.value for s in at.success if "Imported 4 browser and 4 server events" in s.value)
    ws = _ws(at)
    assert f"in {fmt.duration(ws.import_seconds)} and analysed them in {fmt.duration(ws.analysis_seconds)}" in notice
    links = [p.proto for p in at.get("page_link")]
    assert [link.label for link in links].count("Open the checklist: can this setup go live?") == 1, links
    at.switch_page(_path("checklist")).run()
    _assert_clean(at, "checklist after the import")
    assert at.title[0].value == "Pre-launch checklist"
    assert not [s for s in at.success if "Imported 4 browser" in s.value], "the summary is shown once"
    assert _metric(at, "Pairing rate") == fmt.share(report["dedup"]["pairing_rate"])
    assert _metric(at, "Browser events") == "4"
    assert _checklist_shown(at) == _expected_checklist(report)
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
    found = _frame(at, lambda df: "Finding" in df.columns and "Detail" in df.columns)
    assert "Event name differs only in case" in set(found["Finding"])
    at.text_input(key="lookup_value").set_value("no-such-id").run()
    assert any("no-such-id" in w.value for w in at.warning)


def test_report_page_offers_three_formats_and_failing_rows_csv(uploaded: AppTest) -> None:
    at = uploaded.switch_page(_path("report")).run()
    _assert_clean(at, "report")
    keys = {b.key for b in at.get("download_button")}
    assert {"download_json", "download_markdown", "download_html", "download_failing_csv"} <= keys
    counts = _frame(at, lambda df: list(df.columns) == ["Analysis", "Finding", "Severity", "Rows"])
    assert int(counts.loc[counts["Finding"] == "Event name differs only in case", "Rows"].sum()) == 2  # + partner


def test_session_switching_pages_does_not_rerun_analysis_filter_does(uploaded: AppTest) -> None:
    at = uploaded
    calls: list[Filters] = []
    real = api.report

    def counting(ds, config, **kw):
        calls.append(ds.filters)
        return real(ds, config, **kw)

    ws = _ws(at)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api, "report", counting)
        for page in PAGES[:6]:
            at.switch_page(page.path).run()
            _assert_clean(at, page.title)
        assert calls == [], "switching pages must not re-run the analyses"
        at.switch_page(PAGES[0].path).run()
        _sidebar_widget(at, "multiselect", "Event name").set_value(["Purchase"]).run()
        _assert_clean(at, "filtered")
        assert calls == [Filters(event_names=("Purchase",))]
        assert _ws(at) is ws, "a filter change must not re-import"
        assert _metric(at, "Server events") == "1"
        _sidebar_widget(at, "multiselect", "Event name").set_value([]).run()
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


def test_import_failed_after_upload_hides_previous_import_report(no_demo: None) -> None:
    at = _upload(_app().run())
    assert any(sub.value.startswith("Import report") for sub in at.switch_page(_path("import")).run().subheader)
    at = _upload(at, browser=BROWSER_CSV, server=b"\x00\x01\x02\xff\xfe binary junk \x00" * 50,
                 names=("b2.csv", "broken.csv"))
    assert at.error and "broken.csv" in at.error[0].value
    assert not any(sub.value.startswith("Import report") for sub in at.subheader), "the old report is hidden"
    assert not [d for d in at.dataframe if "Your header" in d.value.columns]
    assert _ws(at).files == {"browser": ["browser.csv"], "server": ["server.csv"]}, "the old data stays"
    assert any("Nothing was replaced" in c.value and "server.csv" in c.value for c in at.caption)


# -- pure helpers ----------------------------------------------------------------------------------

OPTIONS = session.FilterOptions(dt.date(2023, 11, 14), dt.date(2023, 11, 16), ("PageView",), ())


def test_filters_from_full_range_is_no_filter() -> None:
    assert session.filters_from(OPTIONS, (dt.date(2023, 11, 14), dt.date(2023, 11, 16)), [], []) == Filters()


def test_filters_from_inner_days_are_whole_utc_days_end_exclusive() -> None:
    f = session.filters_from(OPTIONS, (dt.date(2023, 11, 15), dt.date(2023, 11, 15)), ["b", "a"], [])
    assert f == Filters(start=1700006400, end=1700092800, event_names=("a", "b"))


def test_filters_from_half_picked_range_is_no_date_filter() -> None:
    assert session.filters_from(OPTIONS, (dt.date(2023, 11, 15),), [], []) == Filters()


def test_side_by_side_masks_pii_and_drops_empty_fields() -> None:
    rows = [{"source_file": "s.csv", "file_index": 0, "line": 2, "event_name": "Lead", "em": ["jane@example.com"],
             "ph": None, "fbp": ["fb.1.1700000000000.1"]}]
    df = findings.side_by_side(rows)
    assert list(df.columns) == ["s.csv:2"]
    assert df.loc["em", "s.csv:2"] == "j***@example.com"
    assert "ph" not in df.index and "line" not in df.index


def test_finding_csv_one_finding_has_header_its_rows_label_and_filters() -> None:
    with Database() as db:
        ds = import_logs(db, browser=[Source("b.csv", data=BROWSER_CSV)], server=[Source("s.csv", data=SERVER_CSV)])
        counts = findings.finding_counts(ds, Config())
        row = counts[counts["finding"] == "name_case_mismatch"].iloc[0]
        text = findings.finding_csv(ds, Config(), row["choice"]).decode()
        filtered = findings.finding_csv(ds.with_filters(Filters(event_names=("Purchase",))), Config(), None,
                                        filters=Filters(event_names=("Purchase",))).decode()
    lines = text.strip().splitlines()
    assert lines[0].replace('"', "") == ",".join([*findings.FAILING_ROW_COLUMNS, "finding_label", "filters"])
    assert len(lines) - 1 == int(row["rows"])
    assert all("name_case_mismatch" in line and "Event name differs only in case" in line and line.endswith('"none"')
               for line in lines[1:])
    assert all(line.endswith('"event names Purchase"') for line in filtered.strip().splitlines()[1:])
    assert findings.csv_name(row["choice"]) == "capi-diag-dedup-name_case_mismatch.csv"


def test_finding_counts_match_key_defects_per_field() -> None:
    with Database() as db:
        ds = import_logs(db, browser=[Source("b.csv", data=BROWSER_CSV)], server=[Source("s.csv", data=SERVER_CSV)])
        counts = findings.finding_counts(ds, Config())
    unhashed = counts[(counts["section"] == "match_keys") & (counts["finding"] == "unhashed")]
    assert unhashed["field"].tolist() == ["em"] and unhashed["rows"].tolist() == [1]
    assert findings.choice_label(unhashed["choice"].iloc[0]) == "Match keys: Email sent unhashed"


def test_checklist_items_observed_in_unit() -> None:
    report = {"checklist": [
        {"id": "a", "title": "A", "status": "pass", "observed": 0.75, "unit": "share", "threshold": "t",
         "page": "dedup"},
        {"id": "b", "title": "B", "status": "fail", "observed": 12.5, "unit": "seconds", "threshold": "t"},
        {"id": "c", "title": "C", "status": "warn", "observed": 5.4, "unit": "score", "threshold": "t"},
        {"id": "d", "title": "D", "status": "not_evaluated", "observed": None, "unit": "count", "threshold": "t"},
    ]}
    items = views.checklist_items(report)
    assert [i["id"] for i in items] == ["b", "c", "d", "a"], "blockers, warnings, not evaluated, passing"
    assert [i["observed_text"] for i in items] == ["12.5 s", "5.4 / 10", "n/a", "75.0 %"]
    assert views.status_counts(report) == {"fail": 1, "warn": 1, "not_evaluated": 1, "pass": 1, "error": 0}


def test_coverage_matrix_fields_by_event_name() -> None:
    result = {"em": {"valid_coverage": 0.5, "by_event_name": {"Purchase": 1.0, "PageView": 0.25}},
              "ph": {"valid_coverage": 0.0, "by_event_name": {"Purchase": 0.0}}}
    m = views.coverage_matrix(result)
    assert list(m.index) == ["em", "ph"] and list(m.columns) == ["Purchase", "PageView"]
    assert m.loc["em", "PageView"] == 0.25 and pd.isna(m.loc["ph", "PageView"])


def test_import_pressed_without_files_asks_for_a_log_and_imports_nothing(no_demo: None) -> None:
    at = _app().run()
    at.switch_page(_path("import")).run()
    at.button(key="run_import").click().run()
    _assert_clean(at, "import without files")
    assert [w.value for w in at.warning] == [
        "Choose a browser or a server log (or both) above, then press **Import and analyse**."]
    assert state.JOB_KEY not in at.session_state and _ws(at) is None


def test_apply_config_reanalyses_the_current_data_with_its_thresholds(no_demo: None) -> None:
    toml = b"[checklist.pairing_rate]\nwarn_below = 0.01\nfail_below = 0.0\n"
    at = _upload(_app().run())
    before = _ws(at).analysis().report
    with Database() as db:
        ds = import_logs(db, browser=[Source("browser.csv", data=BROWSER_CSV)],
                         server=[Source("server.csv", data=SERVER_CSV)])
        expected = build_report(ds, Config.from_text(toml.decode(), source="lenient.toml"))
    pairing = {i["id"]: i["status"] for i in expected["checklist"]}["pairing_rate"]
    assert pairing == "pass" != {i["id"]: i["status"] for i in before["checklist"]}["pairing_rate"]
    at.file_uploader(key="apply_config_file").set_value([("lenient.toml", toml, "application/toml")])
    at.button(key="apply_config").click().run()  # the file goes with the click (its own form)
    _assert_clean(at, "apply config")
    assert any(s.value == "Config lenient.toml applied: every page now uses it." for s in at.success)
    assert _ws(at).config_name == "lenient.toml"
    at.switch_page(_path("checklist")).run()
    assert _checklist_shown(at) == _expected_checklist(expected)


def test_import_without_server_file_says_what_is_not_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", "/nonexistent/capi-demo")
    at = _app().run()
    at.switch_page(_path("import")).run()
    at.file_uploader(key="upload_browser").set_value([("browser.csv", BROWSER_CSV, "text/csv")])
    at.button(key="run_import").click().run()  # the files go with the click (one form)
    _wait_import(at)
    assert not at.exception
    assert any("Imported 4 browser and 0 server events" in s.value and "No server (CAPI) log was imported"
               in s.value for s in at.success)


# -- filters never outlive their dataset ------------------------------------------------------------

@pytest.fixture(scope="module")
def logs_a(held_out_logs: dict[str, Path]) -> dict[str, Path]:
    """Held-out logs A: ``python -m capi_diag sample --sessions 300 --seed 11`` (not the demo's seed)."""
    return held_out_logs


@pytest.fixture(scope="module")
def report_a(held_out_report: dict) -> dict:
    """The unfiltered report of A, as ``python -m capi_diag report`` builds it."""
    return held_out_report


def _same_report(a: dict, b: dict) -> bool:
    strip = ("generated_at",)
    return {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def _assert_unfiltered_figures(at: AppTest, report: dict) -> None:
    """Every page shows the unfiltered figures of ``report``, and no filter banner."""
    ws = _ws(at)
    assert state.current_filters(ws, at.session_state) == Filters()
    for page in PAGES:
        at.switch_page(page.path).run()
        _assert_clean(at, page.title)
        assert not _banner(at), f"{page.title}: a filter banner after a new import"
        if page.url_path == "checklist":
            assert _metric(at, "Pairing rate") == fmt.share(report["dedup"]["pairing_rate"])
            assert _metric(at, "Browser events") == fmt.count(report["inputs"]["browser"]["rows"])
            assert _metric(at, "Server events") == fmt.count(report["inputs"]["server"]["rows"])
            assert _metric(at, "Skew, 95th percentile") == fmt.duration(report["timing"]["skew_p95_abs_s"])
            assert _metric(at, "EMQ estimate") == fmt.score(report["emq"]["estimate"])
            assert _checklist_shown(at) == _expected_checklist(report)
        elif page.url_path == "dedup":
            d = report["dedup"]
            assert _metric(at, "Pairing rate") == fmt.share(d["pairing_rate"])
            assert _metric(at, "Browser coverage") == fmt.share(d["browser_coverage"])
            assert _metric(at, "Server coverage") == fmt.share(d["server_coverage"])
            assert _metric(at, "Dedup keys") == fmt.count(d["keys"])
            reasons = _frame(at, lambda df: "Counted in" in df.columns and "Reason" in df.columns)
            assert dict(zip(reasons["Reason"], reasons["Count"], strict=True))["Sent twice by the server"] == \
                d["duplicate_server_rows"]
        elif page.url_path == "timing":
            t = report["timing"]
            assert _metric(at, "Median skew") == fmt.duration(t["skew_p50_s"])
            assert _metric(at, "Delivery delay, 95th percentile") == fmt.duration(t["delivery_delay_p95_s"])
            counts = _frame(at, lambda df: list(df.columns) == ["Finding", "Count", "Counted in", "Meaning"])
            assert dict(zip(counts["Finding"], counts["Count"], strict=True))["Sent more than 7 days late"] == \
                t["stale_over_7d"]
        elif page.url_path == "match-keys":
            assert _metric(at, "EMQ estimate") == fmt.score(report["emq"]["estimate"])
            defects = _frame(at, lambda df: "Valid coverage" in df.columns)
            em = defects[defects["Field"] == "Email (em)"].iloc[0]
            assert em["Valid"] == report["match_keys"]["em"]["valid"]
            privacy = _frame(at, lambda df: "With an email" in df.columns)
            assert int(privacy["Rows"].sum()) == sum(r["rows"] for r in report["privacy"]["by_field"])
        elif page.url_path == "consent-contract":
            assert _metric(at, "Forwarded without consent") == fmt.count(report["consent"]["forwarded_without_consent"])
            assert _metric(at, "Server rows") == fmt.count(report["consent"]["server_rows"])
        elif page.url_path == "import":
            loaded = [m.value for m in at.metric if m.label == "Rows loaded"]
            assert loaded == [fmt.count(report["inputs"][r]["rows"]) for r in ("browser", "server")]
        elif page.url_path == "report":
            an = ws.analysis(state.current_filters(ws, at.session_state))
            assert _same_report(an.report, report), "the downloads are the unfiltered report"
            assert an.report["filters"]["active"] is False
    assert list(ws.analyses) == [Filters()], "no filtered analysis of the new data was ever run"


def _filter_demo(at: AppTest) -> AppTest:
    """On the demo: keep only the last day and Purchase events (the filters the bug left behind)."""
    ws = _ws(at)
    assert ws is not None and ws.is_demo
    day = ws.options.last_day
    _sidebar_widget(at, "date_input", "Event date (UTC)").set_value((day, day)).run()
    _sidebar_widget(at, "multiselect", "Event name").set_value(["Purchase"]).run()
    _assert_clean(at, "filtered demo")
    assert state.current_filters(ws, at.session_state).active
    assert len(_banner(at)) == 1 and "Purchase" in _banner(at)[0] and day.isoformat() in _banner(at)[0]
    assert [b.label for b in at.button if b.key == "clear_filters"] == ["Clear filters"]
    return at


def test_filters_upload_after_filtered_demo_every_page_shows_unfiltered_upload(
        demo_dir: Path, logs_a: dict[str, Path], report_a: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(demo_dir))
    at = _filter_demo(_app().run())
    demo_filtered = _metric(at, "Server events")
    at = _upload(at, logs_a["browser"].read_bytes(), logs_a["server"].read_bytes(),
                 names=(logs_a["browser"].name, logs_a["server"].name))
    _assert_clean(at, "after import")
    at.switch_page(_path("checklist")).run()
    assert at.title[0].value == "Pre-launch checklist"
    assert _metric(at, "Server events") == fmt.count(report_a["inputs"]["server"]["rows"]) != demo_filtered
    _assert_unfiltered_figures(at, report_a)


def test_filters_delete_and_load_demo_start_unfiltered(demo_dir: Path, demo_report: dict,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(demo_dir))
    at = _filter_demo(_app().run())
    at.button(key="delete_my_data").click().run()
    assert _ws(at) is None and not _banner(at)
    at.button(key="load_demo").click().run()
    _assert_clean(at, "demo reloaded")
    ws = _ws(at)
    assert ws.is_demo and state.current_filters(ws, at.session_state) == Filters() and not _banner(at)
    assert _metric(at, "Server events") == fmt.count(demo_report["inputs"]["server"]["rows"])
    assert _metric(at, "Pairing rate") == fmt.share(demo_report["dedup"]["pairing_rate"])


def test_filters_clear_button_restores_every_figure(demo_dir: Path, demo_report: dict,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(demo_dir))
    at = _filter_demo(_app().run())
    at.switch_page(_path("timing")).run()
    assert len(_banner(at)) == 1, "the banner is on every page"
    at.button(key="clear_filters").click().run()
    _assert_clean(at, "cleared")
    assert not _banner(at) and state.current_filters(_ws(at), at.session_state) == Filters()
    at.switch_page(PAGES[0].path).run()
    assert _metric(at, "Server events") == fmt.count(demo_report["inputs"]["server"]["rows"])
    assert _sidebar_widget(at, "multiselect", "Event name").value == []


def test_filters_reports_record_the_active_filters(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(demo_dir))
    at = _filter_demo(_app().run())
    at.switch_page(_path("report")).run()
    _assert_clean(at, "report")
    ws = _ws(at)
    an = ws.analysis(state.current_filters(ws, at.session_state))
    day = ws.options.last_day.isoformat()
    described = f"event dates from {day} (UTC); event names Purchase"  # the last day: no end bound
    assert an.report["filters"] == {"active": True, "description": described, "start": an.filters.start,
                                    "end": an.filters.end, "event_names": ["Purchase"], "pixel_ids": []}
    assert f'"description": "{described}"' in render(an.report, "json")
    assert f"Filtered to {described}" in render(an.report, "markdown").splitlines()[2]
    assert f"Filtered to {described}" in render(an.report, "html")


# -- the import runs in the background ----------------------------------------------------------------

def test_import_run_follows_a_slow_import_and_shows_it_when_done(
        monkeypatch: pytest.MonkeyPatch, logs_a: dict[str, Path], report_a: dict) -> None:
    """The import runs in its own thread; the click's run draws the page, then waits for it with the
    progress in the sidebar, and reruns the app when it is done (leaving the page meanwhile is
    test_ui_browser's: AppTest cannot click during a run)."""
    monkeypatch.setenv("CAPI_DEMO_DIR", "/nonexistent/capi-demo")
    gate, seen = threading.Event(), []
    real = session.import_workspace
    real_draw = navigation.draw_progress

    def held(*args, **kwargs):
        assert gate.wait(TIMEOUT), "the test never released the import"
        return real(*args, **kwargs)

    def draw(progress, job):  # the progress as the sidebar shows it, while the import is held
        real_draw(progress, job)
        seen.append(job.message)
        if len(seen) == 3:
            gate.set()

    monkeypatch.setattr(session, "import_workspace", held)
    monkeypatch.setattr(navigation, "draw_progress", draw)
    at = _app().run()
    at.switch_page(_path("import")).run()
    at.file_uploader(key="upload_browser").set_value([("browser_a.csv", logs_a["browser"].read_bytes(), "text/csv")])
    at.file_uploader(key="upload_server").set_value([("server_a.csv", logs_a["server"].read_bytes(), "text/csv")])
    at.button(key="run_import").click().run()  # the files go with the click (one form)
    assert len(seen) >= 3 and seen[0] == "Starting the import", seen
    _assert_clean(at, "import after the wait")
    assert not at.get("progress"), "the progress is gone once the import is shown"
    assert at.title[0].value == "Import your logs"
    rows = report_a["inputs"]
    assert any(s.value.startswith(f"Imported {rows['browser']['rows']:,} browser and {rows['server']['rows']:,} "
                                  "server events") for s in at.success)
    assert not at.button(key="run_import").disabled
    at.switch_page(_path("dedup")).run()
    assert _metric(at, "Pairing rate") == fmt.share(report_a["dedup"]["pairing_rate"])
    at.switch_page(_path("checklist")).run()
    assert _metric(at, "Server events") == fmt.count(report_a["inputs"]["server"]["rows"])
    assert _checklist_shown(at) == _expected_checklist(report_a)


def test_workspace_filtered_analysis_runs_in_background_and_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter change analyses in a thread owned by the workspace: a page left meanwhile (its
    script stopped) does not lose the work, and asking again joins the running analysis."""
    with Database() as db:
        ds = import_logs(db, browser=[Source("b.csv", data=BROWSER_CSV)], server=[Source("s.csv", data=SERVER_CSV)])
        ws = session.Workspace(db, ds, "upload")
        gate, calls = threading.Event(), []
        real = api.report

        def held(d, config, **kw):
            calls.append(d.filters)
            assert gate.wait(TIMEOUT)
            return real(d, config, **kw)

        monkeypatch.setattr(api, "report", held)
        f = Filters(event_names=("Purchase",))
        job = ws.start_analysis(f)
        assert ws.start_analysis(f) is job, "a second request joins the running analysis"
        assert not ws.has_analysis(f) and not job.finished.is_set()
        gate.set()
        assert job.finished.wait(TIMEOUT) and job.error is None
        assert ws.has_analysis(f) and ws.analysis(f) is job.result
        assert job.result.rows == {"browser": 2, "server": 1} and calls == [f]
        assert f not in ws.jobs


def test_failing_analysis_page_says_error_others_still_show(no_demo: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    from capi_diag.diagnostics import timing

    def broken(ds, config=None, prior=None):
        raise duckdb.BinderException("Binder Error: column boom not found")

    monkeypatch.setattr(timing, "analyze", broken)
    at = _upload(_app().run()).switch_page(_path("checklist")).run()
    assert _ws(at).analysis().report["timing"]["status"] == "error"
    assert any(m.value.startswith("Not judged") or "Not judged" in m.value for m in at.markdown), \
        "the verdict says items could not be judged"
    at.switch_page(_path("timing")).run()
    assert not at.exception
    assert [e.value for e in at.error if "analysis failed inside capi-diag" in e.value
            and "column boom not found" in e.value]
    at.switch_page(_path("dedup")).run()
    _assert_clean(at, "dedup")
    assert _metric(at, "Pairing rate").endswith("%")


def test_an_import_takes_the_uploaded_files_and_shows_empty_widgets(no_demo: None) -> None:
    """Once an import has read the uploads, Streamlit's copy is dropped and the Import page's file
    widgets get new keys, empty: the page never lists files it no longer holds, and a second import
    picks its files in the new widgets."""
    at = _upload(_app().run())
    at.switch_page(_path("import")).run()
    assert at.session_state[state.UPLOAD_GEN_KEY] == 1
    keys = {w.key for w in at.file_uploader}
    assert {"upload_browser_1", "upload_server_1", "upload_orders_1", "upload_send_log_1"} <= keys
    assert "upload_browser" not in keys
    assert not at.file_uploader(key="upload_browser_1").value
    at = _upload(at, names=("b2.csv", "s2.csv"))
    assert _ws(at).files == {"browser": ["b2.csv"], "server": ["s2.csv"]}
    assert at.session_state[state.UPLOAD_GEN_KEY] == 2


def test_release_uploads_removes_each_file_from_streamlits_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import streamlit as st
    import streamlit.runtime.scriptrunner as scriptrunner

    removed: list[tuple[str, str]] = []
    manager = types.SimpleNamespace(remove_file=lambda session_id, file_id: removed.append((session_id, file_id)))
    monkeypatch.setattr(scriptrunner, "get_script_run_ctx",
                        lambda: types.SimpleNamespace(session_id="s1", uploaded_file_mgr=manager))
    uploads = [types.SimpleNamespace(name="a.csv", file_id="f1"), types.SimpleNamespace(name="b.csv", file_id="f2"),
               Source("c.csv", data=b"x")]  # a Source (no file id) is not Streamlit's
    before = int(st.session_state.get(state.UPLOAD_GEN_KEY, 0))
    state.release_uploads(uploads)
    assert removed == [("s1", "f1"), ("s1", "f2")]
    assert st.session_state[state.UPLOAD_GEN_KEY] == before + 1


def test_import_workspace_lets_the_inputs_go_before_the_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    """``imported`` runs once, after the import and before the analysis (the dashboard's job then
    drops the uploaded bytes)."""
    events: list[str] = []
    real = api.report
    monkeypatch.setattr(api, "report", lambda *a, **k: (events.append("analysis"), real(*a, **k))[1])
    ws = session.import_workspace([Source("b.csv", data=BROWSER_CSV)], [Source("s.csv", data=SERVER_CSV)],
                                  imported=lambda: events.append("imported"))
    try:
        assert events == ["imported", "analysis"]
    finally:
        ws.close()


def test_import_job_wakes_its_waiter_when_it_ends() -> None:
    """A page following an import waits on the job, not on a clock: ``end`` (the import thread's last
    step) releases the wait at once, and the job is done with its time taken fixed."""
    job = session.ImportJob(files={"browser": ["b.csv"], "server": ["s.csv"]})
    assert not job.done and not job.wait(0)
    woke = threading.Event()
    waiter = threading.Thread(target=lambda: job.wait(TIMEOUT) and woke.set(), daemon=True)
    waiter.start()
    job.end()
    waiter.join(TIMEOUT)
    assert woke.is_set() and job.done and job.wait(0)
    assert job.elapsed == job.finished - job.started  # the time taken stops at the end
