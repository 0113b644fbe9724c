"""The "After launch" page under Streamlit's AppTest: the trends, deploy marks and alerts of a history
written by a real ``capi-diag monitor`` run against the Graph stand-in's scenario (34 hours, virtual
clock), and the before/after comparison of two uploaded reports and of the session's data split at a
time (equal to ``compare``'s own result for the same split)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from capi_diag import api
from capi_diag.cli import main
from capi_diag.core import resources
from capi_diag.core.config import Config
from capi_diag.monitor import clock, compare
from capi_diag.monitor.history import History
from capi_diag.standins import fake_quality
from capi_diag.standins.fake_server import FakeGraph
from capi_diag.ui import after_launch
from capi_diag.ui.navigation import PAGES
from tests.conftest import clean_graph_env
from tests.test_compare import PLANT, PLANTED_WORSE

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 240
T0 = 1_800_000_000.0
TOKEN = "ui-sentinel-token"
PIXEL = fake_quality.SCENARIO_ID
PAGE = next(p.path for p in PAGES if p.url_path == "after-launch")


@pytest.fixture(scope="module")
def history_db(tmp_path_factory) -> Path:
    """34 hours of the scenario monitored hourly (snapshots at hours 0-34)."""
    tmp = tmp_path_factory.mktemp("al")
    db = tmp / "monitor.duckdb"
    t = [T0]
    with pytest.MonkeyPatch.context() as mp:
        clean_graph_env(mp, tmp)
        mp.setattr(clock, "CLOCK", lambda: t[0])
        mp.setattr(clock, "SLEEP", lambda s: t.__setitem__(0, t[0] + s))
        with FakeGraph(token=TOKEN, now=lambda: t[0], scenario_start=T0) as fg:
            mp.setenv("CAPI_GRAPH_URL", fg.url)
            mp.setenv("CAPI_ACCESS_TOKEN", TOKEN)
            assert main(["monitor", "--pixel-id", PIXEL, "--hours", "34", "--interval", "3600", "--db", str(db)]) == 1
    return db


@pytest.fixture
def app(history_db, monkeypatch) -> AppTest:
    paths = resources.demo_paths()
    assert paths is not None
    monkeypatch.setenv("CAPI_DEMO_DIR", str(paths["browser"].parent))
    monkeypatch.setenv("CAPI_MONITOR_DB", str(history_db))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    [value] = [m.value for m in at.metric if m.label == label]
    return value


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _trace(chart: dict, name: str) -> dict:
    """The trace called ``name``, its ``x``/``y`` decoded (plotly sends numbers as typed base64)."""
    import base64

    import numpy as np

    [trace] = [t for t in chart["data"] if t.get("name") == name]
    for axis in ("x", "y"):
        v = trace.get(axis)
        if isinstance(v, dict) and "bdata" in v:
            trace[axis] = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return trace


def test_after_launch_trends_and_alerts_of_the_monitor_history(app):
    at = app
    assert at.title[0].value == "After launch"
    assert at.selectbox(key="al_pixel").value == PIXEL
    assert at.selectbox(key="al_event").options == ["AddToCart", "PageView", "Purchase", "ViewContent"]
    at.selectbox(key="al_event").set_value("Purchase").run()
    counts, emq, coverage = _charts(at)
    # hourly counts: hours -24 to 33 (the look-back of the first snapshot to the last complete hour)
    browser = _trace(counts, "Browser (Pixel)")["y"]
    server = _trace(counts, "Server (CAPI)")["y"]
    assert len(browser) == len(server) == 58
    assert browser == [30] * 44 + [0] * 8 + [30] * 6  # silent in hours 20-27
    assert server == browser
    assert _trace(emq, "Event Match Quality (Meta)")["y"] == [7.4] * 35
    assert _trace(coverage, "Event coverage (Meta)")["y"] == [76.0] * 34 + [10.0]  # hour 34: event_id lost
    assert _trace(coverage, "Match key coverage: email")["y"] == [95.0] * 35
    assert _metric(at, "Open alerts") == "4"
    assert _metric(at, "Cleared alerts") == "2"
    [open_df, cleared_df] = [d.value for d in at.dataframe]
    assert open_df[["Alert", "Event", "Figure", "Baseline", "When raised"]].values.tolist() == [
        ["Event Match Quality fell", "AddToCart", "Event Match Quality (Meta)", "6.2", "5.5"],
        ["Coverage fell", "AddToCart", "Match key coverage: email", "60 %", "30 %"],
        ["Coverage fell", "Purchase", "Event coverage (Meta)", "76 %", "10 %"],
        ["Dedup key coverage fell", "Purchase", "Server events with event_id", "100 %", "0 %"],
    ]
    assert open_df["Raised"].tolist() == ["2027-01-16 14:00:00 UTC"] * 2 + ["2027-01-16 18:00:00 UTC"] * 2
    assert cleared_df[["Alert", "Event", "Raised", "Cleared"]].values.tolist() == [
        ["Hourly count out of range", "Purchase", "2027-01-16 05:00:00 UTC", "2027-01-16 13:00:00 UTC"],
        ["Event went silent", "Purchase", "2027-01-16 10:00:00 UTC", "2027-01-16 13:00:00 UTC"],
    ]
    assert "Pairing rate" not in json.dumps([c for c in _charts(at)]) + open_df.to_csv() + cleared_df.to_csv()


def test_after_launch_deploy_mark_is_stored_and_drawn(app, history_db):
    at = app
    at.date_input(key="al_deploy_day").set_value(dt.date(2027, 1, 16))
    at.time_input(key="al_deploy_time").set_value(dt.time(14, 0))
    at.text_input(key="al_deploy_label").set_value("checkout plugin 3.5.8")
    at.button[[b.label for b in at.button].index("Add the deploy mark")].click().run()
    assert not at.exception
    deploys = History(history_db).deploys(PIXEL)
    assert [(d["at"], d["label"]) for d in deploys][-1] == (T0 + 30 * 3600, "checkout plugin 3.5.8")
    counts = _charts(at)[0]
    assert any(a["text"] == "Deploy: checkout plugin 3.5.8" for a in counts["layout"]["annotations"])
    assert [s["x0"] for s in counts["layout"]["shapes"]][-1] == (T0 + 30 * 3600) * 1000


@pytest.fixture(scope="module")
def report_files(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("rep")
    paths = {**resources.demo_paths(), **resources.demo_extra_paths()}
    server = f"read_csv('{paths['server']}', all_varchar = true, header = true)"
    duckdb.execute(f"COPY (SELECT * REPLACE ({PLANT}) FROM {server}) TO '{tmp / 'planted.csv'}' (HEADER)")
    out = {}
    for name, srv in (("before", paths["server"]), ("after", tmp / "planted.csv")):
        report = api.analyze(api.Inputs(browser=[paths["browser"]], server=[srv], orders=[paths["orders"]],
                                        send_log=[paths["send_log"]]))
        out[name] = json.dumps(report, default=str).encode()
    return out


def test_after_launch_compares_two_uploaded_reports(app, report_files):
    at = app
    at.radio(key="al_mode").set_value("Two reports").run()
    _upload(at, "al_before", "before.json", report_files["before"])
    _upload(at, "al_after", "after.json", report_files["after"])
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "Worse beyond tolerance") == "11"
    assert _metric(at, "Changed") == "14"
    assert _metric(at, "Unchanged") == "247"  # issue 24: the checklist item no_personal_data_outside_user_data
    table = at.dataframe[-1].value
    assert len(PLANTED_WORSE) == 11
    assert table.values.tolist()[:3] == [
        ["yes", "Checklist: Browser and server events pair", "All events", "Pass", "Warning"],
        ["yes", "Email sent and valid", "Purchase", "96.5 %", "0.0 %"],
        ["yes", "Server events paired", "Purchase", "80.0 %", "0.0 %"],
    ]
    assert table["Worse"].tolist() == ["yes"] * 11 + [""] * 3
    assert "Pairing rate" not in table.to_csv()


def _upload(at: AppTest, key: str, name: str, data: bytes) -> None:
    at.file_uploader(key=key).set_value([(name, data, "application/json")])


def test_after_launch_split_of_the_session_data_equals_compare(app):
    at = app
    at.radio(key="al_mode").set_value("This session's data split at a time").run()
    at.date_input(key="al_split_day").set_value(dt.date(2026, 11, 18))
    at.time_input(key="al_split_time").set_value(dt.time(12, 0))
    at.button(key="al_split").click().run()
    assert not at.exception and not at.error
    split = int(dt.datetime(2026, 11, 18, 12, tzinfo=dt.UTC).timestamp())
    before, after = compare.split_reports(api.Inputs.demo(), split, Config())
    expected = compare.changes(before, after, compare.tolerances())
    assert _metric(at, "Worse beyond tolerance") == str(expected["worse"])
    assert _metric(at, "Changed") == str(len(expected["changes"]))
    table = at.dataframe[-1].value
    assert table.values.tolist() == after_launch.comparison_table(expected).values.tolist()
