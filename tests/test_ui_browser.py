"""The dashboard in a real headless Chromium (Playwright, the system's chromium; never downloaded).

`streamlit run app.py` runs as a subprocess on a free port. The tests upload logs through the real
file inputs, wait for the checklist, compare the pairing rate shown with the report's, open every
page looking for error boxes, and check that two browser sessions never see each other's data.
Screenshots go to tests/_artifacts/ (git-ignored). Run with CAPI_BROWSER_TESTS=1 (CI sets CI=true).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from capi_diag.config import Config
from capi_diag.db import Database
from capi_diag.ingest import import_logs
from capi_diag.report import build_report
from capi_diag.ui import views
from capi_diag.ui.navigation import PAGES

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "_artifacts"
WAIT_MS = 240_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

BROWSER_A = ("event_name,event_id,event_time,fbp\n"
             "PageView,pv-1,1700000000,fb.1.1700000000000.111\n"
             "Purchase,ord-1,1700000100,fb.1.1700000000000.111\n"
             "Purchase,ord-2,1700000200,fb.1.1700000000000.222\n"
             "AddToCart,atc-1,1700003600,fb.1.1700000000000.333\n")
SERVER_A = ("event_name,event_id,event_time,fbp,em,value,currency,action_source,sent_at\n"
            "PageView,pv-1,1700000002,fb.1.1700000000000.111,jane.doe@example.com,,,website,1700000010\n"
            "Purchase,ord-1,1700000101,fb.1.1700000000000.111,,129.95,EUR,website,1700000110\n"
            "purchase,ord-2,1700000201,fb.1.1700000000000.222,,\"129,95\",EUR,website,1700000210\n"
            "Lead,lead-1,1700000400,,,,,website,1700000400\n")
BROWSER_B = ("event_name,event_id,event_time\n"
             "PageView,b-1,1710000000\nPageView,b-2,1710000060\nPurchase,b-3,1710000120\n")
SERVER_B = ("event_name,event_id,event_time,action_source\n"
            "PageView,b-1,1710000001,website\nPageView,b-2,1710000061,website\nPurchase,b-3,1710000121,website\n"
            "Purchase,b-4,1710000200,website\nPurchase,b-5,1710000300,website\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dashboard started with no demo folder, so every session starts empty."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = dict(os.environ, CAPI_DEMO_DIR=str(tmp_path_factory.mktemp("no-demo")))
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("streamlit did not start within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    d = tmp_path_factory.mktemp("logs")
    out: dict[str, dict[str, Path]] = {}
    for name, (b, s) in {"a": (BROWSER_A, SERVER_A), "b": (BROWSER_B, SERVER_B)}.items():
        out[name] = {"browser": d / f"browser_{name}.csv", "server": d / f"server_{name}.csv"}
        out[name]["browser"].write_text(b)
        out[name]["server"].write_text(s)
    return out


def _report(files: dict[str, Path]) -> dict:
    with Database() as db:
        ds = import_logs(db, browser=[files["browser"]], server=[files["server"]])
        return build_report(ds, Config())


def _settle(page) -> None:
    """Wait until Streamlit has finished the current run (its status widget is gone)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)


def _no_errors(page, where: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where}: exception shown"
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, f"{where}: error box shown"


def _metric(page, label: str) -> str:
    m = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _upload(page, url: str, files: dict[str, Path]) -> None:
    page.goto(url)
    page.locator('[data-testid="stSidebarNav"] a', has_text="Import").first.click()
    page.wait_for_selector("h1:has-text('Import your logs')", timeout=WAIT_MS)
    _settle(page)
    for role in ("browser", "server"):
        page.locator(f".st-key-upload_{role} input[type=file]").set_input_files(str(files[role]))
        page.wait_for_selector(f".st-key-upload_{role} [data-testid='stFileChipName']", timeout=WAIT_MS)
        _settle(page)
        assert page.locator(f".st-key-upload_{role} [data-testid='stFileChipIconError']").count() == 0
    page.wait_for_selector(".st-key-run_import button:not([disabled])", timeout=WAIT_MS)
    page.locator(".st-key-run_import button").click()
    page.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=WAIT_MS)
    page.wait_for_selector('[data-testid="stMetric"]', timeout=WAIT_MS)
    _settle(page)


def test_browser_upload_two_files_checklist_pairing_rate_equals_report(browser, app_url: str, logs) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    _upload(page, app_url, logs["a"])
    report = _report(logs["a"])
    page.screenshot(path=str(ARTIFACTS / "browser_checklist.png"))
    _no_errors(page, "checklist")
    assert _metric(page, "Pairing rate") == views.pct(report["dedup"]["pairing_rate"])
    assert _metric(page, "Server events") == f"{report['inputs']['server']['rows']:,}"
    shown = page.locator('[class*="st-key-check_"] .capi-status').all_inner_texts()
    assert [s.strip() for s in shown] == [views_label(i["status"]) for i in report["checklist"]]

    for spec in PAGES:
        page.locator('[data-testid="stSidebarNav"] a', has_text=spec.title).first.click()
        page.wait_for_selector("[data-testid='stMain'] h1", timeout=WAIT_MS)
        _settle(page)
        page.screenshot(path=str(ARTIFACTS / f"browser_{spec.url_path}.png"))
        _no_errors(page, spec.title)
        current = page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]').inner_text()
        assert current.strip().splitlines()[-1] == spec.title  # the text before it is the icon's name
    page.close()


def views_label(status: str) -> str:
    from capi_diag.ui.layout import STATUS_LABELS

    return STATUS_LABELS[status]


def test_browser_two_contexts_each_see_only_their_own_figures(browser, app_url: str, logs) -> None:
    ctx_a, ctx_b = browser.new_context(), browser.new_context()
    try:
        a, b = ctx_a.new_page(), ctx_b.new_page()
        _upload(a, app_url, logs["a"])
        _upload(b, app_url, logs["b"])
        rep_a, rep_b = _report(logs["a"]), _report(logs["b"])
        assert views.pct(rep_a["dedup"]["pairing_rate"]) != views.pct(rep_b["dedup"]["pairing_rate"])
        a.locator('[data-testid="stSidebarNav"] a', has_text="Checklist").first.click()
        a.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=WAIT_MS)
        _settle(a)
        for page, rep, name, other in ((a, rep_a, "server_a.csv", "server_b.csv"),
                                       (b, rep_b, "server_b.csv", "server_a.csv")):
            assert _metric(page, "Pairing rate") == views.pct(rep["dedup"]["pairing_rate"])
            assert _metric(page, "Server events") == f"{rep['inputs']['server']['rows']:,}"
            sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
            assert name in sidebar and other not in sidebar
        b.screenshot(path=str(ARTIFACTS / "browser_session_b.png"))
    finally:
        ctx_a.close()
        ctx_b.close()
