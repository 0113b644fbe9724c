"""The "Orders & delivery" page: AppTest on the demo data (with its orders export and send log) and on
an upload, plus one real-browser run (Playwright and the system's chromium, CAPI_BROWSER_TESTS=1)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from capi_diag.core import fmt
from capi_diag.core.config import Config
from capi_diag.diagnostics import reconciliation
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.io.orders import import_extras
from capi_diag.ui import session, state, views
from capi_diag.ui.navigation import PAGES

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
DATA = ROOT / "data"
TIMEOUT = 240
PAGE = next(p for p in PAGES if p.url_path == "orders-delivery")


@pytest.fixture(scope="module")
def demo_recon() -> tuple[dict, pd.DataFrame]:
    with Database() as db:
        ds = import_logs(db, browser=[DATA / "browser_events.csv"], server=[DATA / "server_events.csv"])
        ds = import_extras(ds, orders=[DATA / "orders.csv"], send_log=[DATA / "send_log.jsonl"])
        result = reconciliation.analyze(ds, Config(), {})
        orders = ds.fetch_arrow("ui.order_table", reconciliation.order_table(ds)).to_pandas()
    return result, orders


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _frame(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first table on the page with these columns."""
    for d in at.dataframe:
        if all(c in d.value.columns for c in columns):
            return d.value
    raise AssertionError(f"no table with columns {columns}")


def _metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}"
    return values[0]


def test_orders_csv_buckets_add_up_to_waterfall(demo_recon):
    result, orders = demo_recon
    csv = views.orders_table(orders).to_csv(index=False)
    shown = pd.read_csv(io.StringIO(csv))
    counts = shown["Where the order ends"].value_counts().to_dict()
    for b in views.waterfall_frame(result).itertuples():
        assert counts.get(b[2], 0) == b.Orders, b[2]
    assert len(shown) == result["orders"] == 91


def test_orders_page_demo_shows_waterfall_equal_to_report(demo_recon, monkeypatch):
    result, _ = demo_recon
    monkeypatch.setenv("CAPI_DEMO_DIR", str(DATA))
    at = _app().run()
    at.switch_page(PAGE.path).run()
    _clean(at)
    assert at.title[0].value == "Orders & delivery"
    assert _metric(at, "Orders in the export") == fmt.count(result["orders"])
    assert _metric(at, "Never reached Meta") == "26"  # 23 not sent + 3 refused
    assert _metric(at, "Rejected") == "13"
    buckets = _frame(at, "Where the order ends", "Share")
    assert list(buckets["Orders"]) == [b["orders"] for b in result["waterfall"]]
    charts = [c for c in at.get("plotly_chart")]
    funnel = json.loads(charts[0].proto.spec)["data"][0]
    assert funnel["type"] == "funnel" and funnel["x"] == [23, 3, 0, 0, 65]
    codes = _frame(at, "Code", "Error")
    assert list(codes["Code"]) == ["190/463", "17"] and list(codes["Events"]) == [10, 3]
    # the lost orders of the first bucket, and one order's rows from both logs side by side
    assert at.selectbox(key="orders_stage").value == "not_sent"
    assert len(_frame(at, "Order", "Sends accepted")) == 23
    at.selectbox(key="orders_stage").set_value("refused").run()
    _clean(at)
    lost = _frame(at, "Order", "Sends accepted")
    assert len(lost) == 3
    order = at.selectbox(key="orders_pick").value
    assert order == lost["Order"].iloc[0]
    assert any(order in " ".join(map(str, d.value.to_numpy().ravel())) or order in " ".join(d.value.columns)
               for d in at.dataframe), "the order's server row is not shown"


def test_orders_page_upload_without_orders_says_not_evaluated(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "none"))
    at = _app()
    ws = session.import_workspace([Source("b.csv", data=b"event_name,event_id,event_time\nPurchase,1,1795000000\n")],
                                [Source("s.csv", data=b"event_name,event_id,event_time\nPurchase,1,1795000001\n")])
    at.session_state[state.WORKSPACE_KEY] = ws
    at.run()
    at.switch_page(PAGE.path).run()
    _clean(at)
    infos = [i.value for i in at.info]
    assert any("Orders reconciliation: not evaluated" in i for i in infos)
    assert any("Delivery: not evaluated" in i for i in infos)


def test_orders_page_upload_with_orders_and_send_log(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "none"))
    t = 1_795_000_000
    orders = (b"Order Number,Order Date,Order Total,Order Currency,Billing Email\n"
              b"1,2026-11-18 09:00:00,10.00,EUR,a@example.com\n2,2026-11-18 09:05:00,20.00,EUR,b@example.com\n")
    send = json.dumps({"sent_at": t + 9, "pixel_id": "1", "http_status": 200,
                       "request": {"data": [{"event_name": "Purchase", "event_id": "1", "event_time": t,
                                             "custom_data": {"order_id": "1"}}], "access_token": "SECRET-X"},
                       "response": {"events_received": 1, "messages": [], "fbtrace_id": "AB"}}).encode()
    ws = session.import_workspace(
        [Source("b.csv", data=b"event_name,event_id,event_time\nPageView,p,1795000000\n")],
        [Source("s.csv", data=f"event_name,event_id,event_time,order_id,em\nPurchase,1,{t},1,{'a' * 64}\n".encode())],
        orders=[Source("woo.csv", data=orders)], send_log=[Source("send.jsonl", data=send)])
    at = _app()
    at.session_state[state.WORKSPACE_KEY] = ws
    at.run()
    at.switch_page(PAGE.path).run()
    _clean(at)
    assert _metric(at, "Orders in the export") == "2"
    assert _metric(at, "Never reached Meta") == "1"
    assert list(_frame(at, "Where the order ends", "Share")["Orders"]) == [1, 0, 0, 0, 1]
    at.switch_page(next(p for p in PAGES if p.url_path == "import").path).run()
    _clean(at)
    texts = " ".join(c.value for c in at.caption)
    assert "dropped at import" in texts and "Billing Email" in texts
    assert any("access token" in w.value for w in at.warning)


@pytest.mark.browser
def test_orders_page_real_browser_demo(tmp_path_factory, chromium_path):
    from playwright.sync_api import sync_playwright

    from tests import test_ui_browser as ub

    gen = ub._serve(tmp_path_factory, DATA)
    url = next(gen)
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=chromium_path, args=ub.CHROMIUM_ARGS)
            try:
                page = b.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.wait_for_selector("[data-testid='stMain'] h1", timeout=ub.WAIT_MS)
                ub._settle(page)
                ub._nav(page, "Orders & delivery")
                page.wait_for_selector("h1:has-text('Orders & delivery')", timeout=ub.WAIT_MS)
                page.wait_for_selector(".js-plotly-plot", timeout=ub.WAIT_MS)
                ub._settle(page)
                ub._no_errors(page, "Orders & delivery")
                assert page.locator(".js-plotly-plot").first.inner_text().count("orders") >= 3
                assert ub._metric(page, "Orders in the export") == "91"
                assert ub._metric(page, "Never reached Meta") == "26"
                assert ub._metric(page, "Rejected") == "13"
                with page.expect_download() as dl:
                    page.locator(".st-key-orders_csv button").click()
                path = dl.value.path()
                shown = pd.read_csv(path)
                assert shown["Where the order ends"].value_counts().to_dict() == {
                    "Counted once": 65, "Not sent by either log": 23, "Refused by Meta": 3}
                ub.ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ub.ARTIFACTS / "orders_delivery.png"), full_page=True)
            finally:
                b.close()
    finally:
        gen.close()
        time.sleep(0.1)
