"""The browser rehearsal in a real headless Chromium against the demo shop (marker ``browser``: ``make
test-browser``, which CI's .ci/run calls). The shop and the Graph stand-in run in this process on
127.0.0.1; ``capi-diag rehearse`` runs as a subprocess, as a user runs it. Windows are shortened
(``--minutes 0.05 --interval 1 --grace 2``) so that all of this takes about two and a half minutes on
two cores. The dashboard's section and the Import page's HAR upload run in the same Chromium against
``streamlit run app.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capi_diag.shop.server import DemoShop
from capi_diag.standins.fake_server import FakeGraph
from tests.test_token_leak import SENTINEL, _all_text

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
PIXEL = "1234567890"
CODE = "TEST12345"
EVENTS = ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]


def rehearse(tmp_path: Path, faults: list[str], *, timeout_minutes: str = "0.15", block_pixel: bool = False):
    """One rehearsal of the demo shop with ``faults``: (exit code, output document, stdout+stderr, shop)."""
    send_log = tmp_path / "send-log.jsonl"
    out = tmp_path / "rehearsal.json"
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL) as fake, \
            DemoShop(graph_url=fake.url, token=SENTINEL, pixel_id=PIXEL, test_event_code=CODE,
                     send_log=str(send_log), faults=faults) as shop:
        journey = tmp_path / "journey.toml"
        journey.write_text(shop.journey())
        cmd = [sys.executable, "-m", "capi_diag", "rehearse", "--journey", str(journey), "--pixel-id", PIXEL,
               "--test-event-code", CODE, "--send-log", str(send_log), "--minutes", "0.05", "--interval", "1",
               "--grace", "2", "--timeout-minutes", timeout_minutes, "--output", str(out),
               "--db", str(tmp_path / "history.duckdb"), "--har-out", str(tmp_path / "har"),
               *(["--block-pixel"] if block_pixel else [])]
        env = {k: v for k, v in os.environ.items() if k != "CAPI_ACCESS_TOKEN"}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        received = list(fake.received)
        received.append({"path": "(shop)", "pixel_hits": shop.pixel_hits})
    return proc.returncode, json.loads(out.read_text()), proc.stdout + proc.stderr, received


def report_pairs_as_the_rehearsal_did(tmp_path: Path, doc: dict) -> None:
    """``report --browser run-*.har --server send-log.jsonl`` (the HARs Playwright recorded with
    ``record_har_path`` during the rehearsal) imports every hit and pairs as the rehearsal did."""
    pairs = [p for run in doc["runs"] for p in run["pairs"]]
    differs = [p for p in pairs if any("event_id differs" in x for x in p["problems"])]
    both = [p for p in pairs if p["browser"] and p["server"] and p not in differs]
    want = {"browser_rows": sum(p["browser"] for p in pairs), "server_rows": sum(p["server"] for p in pairs),
            "paired": len(both), "browser_only": sum(p["browser"] and not p["server"] for p in pairs) + len(differs),
            "server_only": sum(p["server"] and not p["browser"] for p in pairs) + len(differs)}
    hars = sorted((tmp_path / "har").glob("run-*.har"))
    assert len(hars) == len(doc["runs"])
    args = ["report", "--server", str(tmp_path / "send-log.jsonl"), "--output", str(tmp_path / "report.json")]
    for h in hars:
        args += ["--browser", str(h)]
    proc = subprocess.run([sys.executable, "-m", "capi_diag", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    dedup = json.loads((tmp_path / "report.json").read_text())["dedup"]
    assert {k: dedup[k] for k in want} == want
    by_name = {n: sum(1 for p in both if p["event_name"] == n) for n in EVENTS}
    assert {n: dedup["by_event_name"][n]["paired"] for n in EVENTS} == by_name


def test_clean_rehearsal_is_ready(tmp_path):
    code, doc, text, received = rehearse(tmp_path, [])
    assert code == 0, text
    assert doc["status"] == "ready" and doc["finished"] is True and doc["warnings"] == []
    first = doc["runs"][0]
    assert first["clean"] is True
    assert [(p["event_name"], p["browser"], p["server"]) for p in first["pairs"]] == [(e, True, True) for e in EVENTS]
    assert first["pairs"][-1]["event_id"] == "ORD-1001"
    # every server event reached the stand-in (5 per run) and the Pixel hits reached the shop
    assert len([r for r in received if r["path"].endswith("/events")]) == 5 * len(doc["runs"])
    assert received[-1]["pixel_hits"] == 5 * len(doc["runs"])
    # the sentinel token: never in the output, the history or what was printed
    history = tmp_path / "history.duckdb"
    assert SENTINEL not in json.dumps(doc) and SENTINEL not in text
    assert SENTINEL.encode() not in history.read_bytes() and SENTINEL not in _all_text(history)
    assert SENTINEL not in (tmp_path / "send-log.jsonl").read_text()
    report_pairs_as_the_rehearsal_did(tmp_path, doc)


@pytest.mark.parametrize(("fault", "kind", "events"), [
    ("purchase_event_id_differs", "dedup", {"Purchase"}),
    ("purchase_not_sent", "dedup", {"Purchase"}),
    ("fbp_not_forwarded", "missing_field", set(EVENTS)),
    ("value_differs", "dedup", {"Purchase"}),
    ("token_refused", "token", set(EVENTS)),
])
def test_each_fault_is_caught(tmp_path, fault, kind, events):
    code, doc, text, _ = rehearse(tmp_path, [fault])
    assert code == 1, text
    assert doc["status"] == "not_ready" and doc["finished"] is True
    assert {(w["kind"], w["event_name"]) for w in doc["warnings"]} == {(kind, e) for e in events}
    assert all(run["clean"] is False for run in doc["runs"])
    assert SENTINEL not in json.dumps(doc) and SENTINEL not in text
    history = tmp_path / "history.duckdb"
    assert SENTINEL not in _all_text(history)
    report_pairs_as_the_rehearsal_did(tmp_path, doc)


def test_block_pixel_answers_the_hits_locally(tmp_path):
    code, doc, text, received = rehearse(tmp_path, [], block_pixel=True)
    assert code == 0, text
    assert [p["browser"] for p in doc["runs"][0]["pairs"]] == [True] * 5
    assert received[-1]["pixel_hits"] == 0


# -- the dashboard's rehearsal section, in Chromium ------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """``streamlit run app.py`` on a free port, with the sentinel as the configured token."""
    import time
    import urllib.request

    home = tmp_path_factory.mktemp("dashboard")
    port = _free_port()
    env = dict(os.environ, CAPI_DIAG_HOME=str(home / "home"), CAPI_DEMO_DIR=str(home / "no-demo"),
               CAPI_ACCESS_TOKEN=SENTINEL)
    (home / "no-demo").mkdir()
    log = (home / "streamlit.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def chromium(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def test_dashboard_rehearses_the_demo_shop(tmp_path, dashboard, chromium):
    """Test Events > Browser rehearsal > the demo shop with a fault, in Chromium: the page starts
    ``rehearse``, shows each run's pairs and ends not ready."""
    page = chromium.new_page()
    page.goto(f"{dashboard}/test-events")
    page.wait_for_selector("h3:has-text('Browser rehearsal')", timeout=120_000)
    box = page.locator("[data-testid='stMultiSelect'] input").first
    box.click()
    box.type("never sends")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.wait_for_selector("text=the server never sends Purchase", timeout=30_000)
    for label, value in (("Window (minutes)", "0.05"), ("Interval (seconds)", "1"),
                         ("Grace (seconds)", "2"), ("Timeout (minutes)", "0.15")):
        field = page.get_by_label(label)
        field.fill(value)
        field.press("Enter")
        page.wait_for_timeout(300)
    page.get_by_role("button", name="Start rehearsal").click()
    page.wait_for_selector("text=Not ready when the timeout ended", timeout=120_000)
    text = page.inner_text("body")
    runs = [line for line in text.splitlines() if line.startswith("Run ")]
    assert runs and all(r.endswith("warnings; events seen on both sides: 4 of 5") for r in runs), runs
    assert "Pairing rate" not in text and SENTINEL not in text and SENTINEL not in page.content()
    page.close()


def test_import_page_reads_a_har(tmp_path, dashboard, chromium):
    """The Import page takes a DevTools HAR as the browser log and a send log as the server log."""
    from tests.test_har import FIXTURE, _ev

    send_log = tmp_path / "send-log.jsonl"
    send_log.write_text(json.dumps({"sent_at": 1796631001, "http_status": 200, "response": {"events_received": 4},
                                    "request": {"data": [_ev("PageView", "pv-5f1a", 1796631000),
                                                         _ev("ViewContent", "vc-77b2", 1796631005),
                                                         _ev("AddToCart", "atc-91c0", 1796631009),
                                                         _ev("Purchase", "ORD-4412", 1796631030)]}}) + "\n")
    page = chromium.new_page()
    page.goto(f"{dashboard}/import")
    page.wait_for_selector("h1:has-text('Import your logs')", timeout=120_000)
    for role, path in (("browser", FIXTURE), ("server", send_log)):
        page.locator(f".st-key-upload_{role} input[type=file]").set_input_files(str(path))
        page.wait_for_selector(f".st-key-upload_{role} [data-testid='stFileChipName']", timeout=60_000)
        assert page.locator(f".st-key-upload_{role} [data-testid='stFileChipIconError']").count() == 0
    page.wait_for_selector(".st-key-run_import button:not([disabled])", timeout=60_000)
    page.locator(".st-key-run_import button").click()
    page.wait_for_selector(".st-key-import_done a", timeout=120_000)
    done = page.locator(".st-key-import_done").inner_text()
    assert "Imported 5 browser and 4 server events in " in done, done
    page.close()
