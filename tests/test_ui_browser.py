"""The dashboard in a real headless Chromium (Playwright, the system's chromium; never downloaded).

`streamlit run app.py` runs as a subprocess on a free port (one without the demo data, one with
it). The tests upload logs through the real file inputs, wait for the checklist, compare the
figures shown with the report's, open every page looking for error boxes, check that two browser
sessions never see each other's data, that an upload after a filtered demo shows its unfiltered
figures on every page, that leaving the page while an import runs does not lose it, and that the
downloads record the filters. Screenshots go to tests/_artifacts/ (git-ignored). Run with
CAPI_BROWSER_TESTS=1 (CI sets CI=true).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from capi_diag.core import fmt
from capi_diag.core.config import Config
from capi_diag.engine.db import Database
from capi_diag.io.ingest import import_logs
from capi_diag.report import build_report
from capi_diag.ui.navigation import PAGES
from capi_diag.verdict import checklist

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


def _serve(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = dict(os.environ, CAPI_DEMO_DIR=str(demo_dir))
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
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dashboard started with no demo folder, so every session starts empty."""
    yield from _serve(tmp_path_factory, tmp_path_factory.mktemp("no-demo"))


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A dashboard that opens every session on the bundled demo data (data/, or the same generator's
    output when it is not there)."""
    demo = ROOT / "data"
    if not (demo / "browser_events.csv").is_file():
        from capi_diag.io.sample import write_sample

        demo = tmp_path_factory.mktemp("demo")
        write_sample(demo, sessions=1500, seed=7, fmt="csv")
    yield from _serve(tmp_path_factory, demo)


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
def logs(tmp_path_factory: pytest.TempPathFactory, held_out_logs: dict[str, Path]) -> dict[str, dict[str, Path]]:
    d = tmp_path_factory.mktemp("logs")
    out: dict[str, dict[str, Path]] = {}
    for name, (b, s) in {"a": (BROWSER_A, SERVER_A), "b": (BROWSER_B, SERVER_B)}.items():
        out[name] = {"browser": d / f"browser_{name}.csv", "server": d / f"server_{name}.csv"}
        out[name]["browser"].write_text(b)
        out[name]["server"].write_text(s)
    out["held_out"] = held_out_logs  # python -m capi_diag sample --sessions 300 --seed 11
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
    m = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)).first
    return m.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=WAIT_MS)
    _settle(page)


def _choose_files(page, url: str | None, files: dict[str, Path]) -> None:
    if url is not None:
        page.goto(url)
        page.wait_for_selector("[data-testid='stMain'] h1", timeout=WAIT_MS)
        _settle(page)
    _nav(page, "Import")
    page.wait_for_selector("h1:has-text('Import your logs')", timeout=WAIT_MS)
    for role in ("browser", "server"):
        page.locator(f".st-key-upload_{role} input[type=file]").set_input_files(str(files[role]))
        page.wait_for_selector(f".st-key-upload_{role} [data-testid='stFileChipName']", timeout=WAIT_MS)
        _settle(page)
        assert page.locator(f".st-key-upload_{role} [data-testid='stFileChipIconError']").count() == 0
    page.wait_for_selector(".st-key-run_import button:not([disabled])", timeout=WAIT_MS)


def _upload(page, url: str | None, files: dict[str, Path]) -> None:
    _choose_files(page, url, files)
    page.locator(".st-key-run_import button").click()
    # the Import page stays, shows what was imported and links to the checklist
    page.wait_for_selector(".st-key-import_done a", timeout=WAIT_MS)
    assert "Imported " in page.locator(".st-key-import_done").inner_text()
    page.locator(".st-key-import_done a").first.click()
    page.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=WAIT_MS)
    page.wait_for_selector('[data-testid="stMetric"]', timeout=WAIT_MS)
    _settle(page)


def _statuses(page) -> list[str]:
    """The chips of the checklist items in page order (passing ones sit in a collapsed expander)."""
    return [s.strip() for s in page.locator('[class*="st-key-check_"] .capi-status').all_text_contents()]


def _expected_statuses(report: dict) -> list[str]:
    from capi_diag.ui.layout import STATUS_LABELS

    return [STATUS_LABELS[i["status"]] for i in checklist.grouped(report["checklist"])]


def _banner(page) -> int:
    return page.locator(".st-key-filter_banner").count()


def test_browser_upload_two_files_checklist_pairing_rate_equals_report(browser, app_url: str, logs) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    _upload(page, app_url, logs["a"])
    report = _report(logs["a"])
    page.screenshot(path=str(ARTIFACTS / "browser_checklist.png"))
    _no_errors(page, "checklist")
    assert _metric(page, "Pairing rate") == fmt.share(report["dedup"]["pairing_rate"])
    assert _metric(page, "Server events") == f"{report['inputs']['server']['rows']:,}"
    assert _statuses(page) == _expected_statuses(report)
    verdict = page.locator(".capi-verdict").inner_text().strip()
    assert verdict == checklist.verdict(report["checklist"])[1]

    for spec in PAGES:
        page.locator('[data-testid="stSidebarNav"] a', has_text=spec.title).first.click()
        page.wait_for_selector("[data-testid='stMain'] h1", timeout=WAIT_MS)
        _settle(page)
        page.screenshot(path=str(ARTIFACTS / f"browser_{spec.url_path}.png"))
        _no_errors(page, spec.title)
        current = page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]').inner_text()
        assert current.strip().splitlines()[-1] == spec.title  # the text before it is the icon's name
    page.close()


def test_browser_two_contexts_each_see_only_their_own_figures(browser, app_url: str, logs) -> None:
    ctx_a, ctx_b = browser.new_context(), browser.new_context()
    try:
        a, b = ctx_a.new_page(), ctx_b.new_page()
        _upload(a, app_url, logs["a"])
        _upload(b, app_url, logs["b"])
        rep_a, rep_b = _report(logs["a"]), _report(logs["b"])
        assert fmt.share(rep_a["dedup"]["pairing_rate"]) != fmt.share(rep_b["dedup"]["pairing_rate"])
        a.locator('[data-testid="stSidebarNav"] a', has_text="Checklist").first.click()
        a.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=WAIT_MS)
        _settle(a)
        for page, rep, name, other in ((a, rep_a, "server_a.csv", "server_b.csv"),
                                       (b, rep_b, "server_b.csv", "server_a.csv")):
            assert _metric(page, "Pairing rate") == fmt.share(rep["dedup"]["pairing_rate"])
            assert _metric(page, "Server events") == f"{rep['inputs']['server']['rows']:,}"
            sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
            assert name in sidebar and other not in sidebar
        b.screenshot(path=str(ARTIFACTS / "browser_session_b.png"))
    finally:
        ctx_a.close()
        ctx_b.close()


def _filter_event_names(page, names: list[str]) -> None:
    """Choose event names in the sidebar's "Event name" filter, as a person does."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text="Event name")
    for name in names:
        box.locator("input").click()
        box.locator("input").fill(name)
        page.locator('[role="option"]', has_text=name).first.click()
        _settle(page)
    page.keyboard.press("Escape")
    _settle(page)


def _assert_page_figures(page, spec, report: dict) -> None:
    if spec.url_path == "checklist":
        assert _metric(page, "Pairing rate") == fmt.share(report["dedup"]["pairing_rate"])
        assert _metric(page, "Browser events") == fmt.count(report["inputs"]["browser"]["rows"])
        assert _metric(page, "Server events") == fmt.count(report["inputs"]["server"]["rows"])
        assert _metric(page, "Skew, 95th percentile") == fmt.duration(report["timing"]["skew_p95_abs_s"])
        assert _metric(page, "EMQ estimate") == fmt.score(report["emq"]["estimate"])
        assert _statuses(page) == _expected_statuses(report)
    elif spec.url_path == "dedup":
        d = report["dedup"]
        assert _metric(page, "Pairing rate") == fmt.share(d["pairing_rate"])
        assert _metric(page, "Browser coverage") == fmt.share(d["browser_coverage"])
        assert _metric(page, "Server coverage") == fmt.share(d["server_coverage"])
        assert _metric(page, "Dedup keys") == fmt.count(d["keys"])
    elif spec.url_path == "timing":
        t = report["timing"]
        assert _metric(page, "Median skew") == fmt.duration(t["skew_p50_s"])
        assert _metric(page, "Skew, 95th percentile") == fmt.duration(t["skew_p95_abs_s"])
        assert _metric(page, "Delivery delay, 95th percentile") == fmt.duration(t["delivery_delay_p95_s"])
    elif spec.url_path == "match-keys":
        assert _metric(page, "EMQ estimate") == fmt.score(report["emq"]["estimate"])
    elif spec.url_path == "consent-contract":
        c = report["consent"]
        assert _metric(page, "Forwarded without consent") == fmt.count(c["forwarded_without_consent"])
        assert _metric(page, "Consent unknown") == fmt.count(c["consent_unknown"])
        assert _metric(page, "Server rows") == fmt.count(c["server_rows"])
    elif spec.url_path == "import":
        loaded = page.locator('[data-testid="stMetric"]').filter(
            has=page.locator('[data-testid="stMetricLabel"]', has_text="Rows loaded"))
        values = [v.strip() for v in loaded.locator('[data-testid="stMetricValue"]').all_inner_texts()]
        assert values == [fmt.count(report["inputs"][r]["rows"]) for r in ("browser", "server")]


def test_browser_upload_after_filtered_demo_every_page_shows_unfiltered_figures(browser, demo_url: str,
                                                                               logs, held_out_report) -> None:
    """The held-out flow: the demo opens, a filter is set on it, logs A are uploaded, and every page
    shows A's unfiltered figures (no banner, nothing cut down)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = held_out_report
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(demo_url)
    page.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=WAIT_MS)
    _settle(page)
    demo_server = _metric(page, "Server events")
    _filter_event_names(page, ["Purchase"])
    page.wait_for_selector(".st-key-filter_banner", timeout=WAIT_MS)
    _settle(page)
    assert "Purchase" in page.locator(".st-key-filter_banner").inner_text()
    assert _metric(page, "Server events") != demo_server, "the filter cut the demo down"
    page.screenshot(path=str(ARTIFACTS / "browser_filtered_demo.png"))

    _upload(page, None, logs["held_out"])
    assert _banner(page) == 0
    for spec in PAGES:
        _nav(page, spec.title)
        _no_errors(page, spec.title)
        assert _banner(page) == 0, f"{spec.title}: a filter outlived its dataset"
        _assert_page_figures(page, spec, report)
        page.screenshot(path=str(ARTIFACTS / f"browser_held_out_{spec.url_path}.png"))
    page.close()


def test_browser_leaving_the_page_during_import_keeps_it(browser, app_url: str, logs, held_out_report) -> None:
    """Click Import, open another page one second later, come back: the upload's checklist is there."""
    report = held_out_report
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    _choose_files(page, app_url, logs["held_out"])
    page.locator(".st-key-run_import button").click()
    page.wait_for_timeout(1000)
    _nav(page, "Timing")
    _no_errors(page, "timing while importing")
    _nav(page, "Checklist")
    page.wait_for_function(
        "(want) => [...document.querySelectorAll('[data-testid=\"stMetric\"]')].some(m => "
        "m.innerText.includes('Server events') && m.innerText.includes(want))",
        arg=fmt.count(report["inputs"]["server"]["rows"]), timeout=WAIT_MS)
    _settle(page)
    _no_errors(page, "checklist after the import")
    assert page.locator("h1").first.inner_text().strip() == "Pre-launch checklist"
    _assert_page_figures(page, PAGES[0], report)
    page.close()


def test_browser_downloads_record_the_filters(browser, demo_url: str) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
    page.goto(demo_url)
    page.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=WAIT_MS)
    _settle(page)
    _filter_event_names(page, ["Purchase"])
    _nav(page, "Report")
    page.wait_for_selector(".st-key-download_json button", timeout=WAIT_MS)
    with page.expect_download() as info:
        page.locator(".st-key-download_json button").click()
    download = info.value
    assert download.suggested_filename == "capi-diag-report-filtered.json"
    data = json.loads(Path(download.path()).read_text())
    assert data["filters"]["active"] is True and data["filters"]["event_names"] == ["Purchase"]
    page.wait_for_selector(".st-key-download_failing_csv button", timeout=WAIT_MS)
    _settle(page)
    with page.expect_download() as info:
        page.locator(".st-key-download_failing_csv button").first.click()
    lines = Path(info.value.path()).read_text().splitlines()
    assert lines[0].replace('"', "").endswith("finding_label,filters")
    assert len(lines) > 1 and all(line.endswith('"event names Purchase"') for line in lines[1:])
    page.close()
