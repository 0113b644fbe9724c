"""Upload-to-checklist time in a real headless Chromium (a benchmark, not a test).

Usage (from the repository folder, Debian's chromium on PATH):

    .venv/bin/python bench/bench_browser.py BROWSER_LOG SERVER_LOG

It starts ``streamlit run app.py`` on a free port (without the demo data), uploads the two files
through the Import page's real file inputs, waits until the server has acknowledged both uploads
(a click on "Import and analyse" before that imports without the files still in flight), clicks
"Import and analyse" and prints the seconds until the checklist and its metrics are shown. Then it
times what an analyst does next (:func:`time_navigation`): opening every page once (the analyses
are kept, so a page switch only redraws), choosing one event name in the sidebar filter (the
analyses run once for the filtered rows) and clearing it again with the banner's "Clear filters"
(the unfiltered analysis is kept).

The last line printed is ``BENCH_JSON {...}``: the same figures for ``bench/run.py --dashboard 1M``
(seconds, and ``session_peak_rss_bytes``: the Streamlit process's peak resident memory, ``VmHWM`` of
``/proc``, which holds the uploaded bytes, the database and every analysis of the session).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("streamlit did not start")


def _settled(page) -> None:
    page.wait_for_timeout(200)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=600_000)


def peak_rss_bytes(pid: int) -> int | None:
    """``VmHWM`` (peak resident set) of process ``pid`` from ``/proc`` (None where there is none)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def time_navigation(page, out: dict | None = None) -> None:
    """Print the seconds of each page switch and of a filter change and its clearing (and keep them
    in ``out``: ``page_first_visit_s`` and ``page_switch_s`` by page title, ``filter_s``,
    ``clear_filters_s``)."""
    out = {} if out is None else out
    titles = [t.strip().splitlines()[-1] for t in
              page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]
    # every page twice: the first visit (``page_first_visit_s``) and a switch back to it later
    # (``page_switch_s``, what the target is about)
    for key, what in (("page_first_visit_s", "first visit"), ("page_switch_s", "page switch")):
        out[key] = {}
        for title in [*titles[1:], titles[0]]:
            started = time.time()
            page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
            page.wait_for_selector("[data-testid='stMain'] h1", timeout=600_000)
            _settled(page)
            out[key][title] = round(time.time() - started, 2)
            print(f"{what} -> {title}: {time.time() - started:.1f} s", flush=True)
    box = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text="Event name")
    started = time.time()
    box.locator("input").click()
    box.locator("input").fill("Purchase")
    page.locator('[role="option"]', has_text="Purchase").first.click()
    page.wait_for_selector(".st-key-filter_banner", timeout=600_000)
    _settled(page)
    out["filter_s"] = round(time.time() - started, 2)
    print(f"filter change (event name Purchase, analyses re-run): {time.time() - started:.1f} s", flush=True)
    page.keyboard.press("Escape")
    started = time.time()
    page.locator(".st-key-clear_filters button").click()
    page.wait_for_selector(".st-key-filter_banner", state="detached", timeout=600_000)
    _settled(page)
    out["clear_filters_s"] = round(time.time() - started, 2)
    print(f"clear filters (kept unfiltered analysis): {time.time() - started:.1f} s", flush=True)


def main(browser_log: str, server_log: str) -> None:
    port = _free_port()
    env = dict(os.environ, CAPI_DEMO_DIR="/nonexistent")
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    acknowledged: list[int] = []
    out: dict = {}
    try:
        _wait_healthy(port)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1900})
            page.on("response", lambda r: acknowledged.append(r.status)
                    if "upload_file" in r.url and r.request.method == "PUT" else None)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator('[data-testid="stSidebarNav"] a', has_text="Import").first.click()
            page.wait_for_selector("h1:has-text('Import your logs')")
            started = time.time()
            page.locator(".st-key-upload_browser input[type=file]").set_input_files(browser_log)
            page.locator(".st-key-upload_server input[type=file]").set_input_files(server_log)
            while len(acknowledged) < 2:
                page.wait_for_timeout(500)
            out["uploads_s"] = round(time.time() - started, 2)
            print(f"uploads acknowledged {acknowledged} after {time.time() - started:.1f} s", flush=True)
            page.wait_for_timeout(2000)
            clicked = time.time()
            page.locator(".st-key-run_import button").click()
            page.wait_for_selector(".st-key-import_done a", timeout=900_000)  # the import's own summary
            page.locator(".st-key-import_done a").first.click()
            page.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=900_000)
            page.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                   timeout=600_000)
            out["checklist_s"] = round(time.time() - clicked, 2)
            print(f"click 'Import and analyse' -> checklist shown: {time.time() - clicked:.1f} s", flush=True)
            alerts = page.locator('[data-testid="stAlert"]')
            if alerts.count():
                print(alerts.first.inner_text().strip()[:300])
            print([m.inner_text().replace("\n", " ") for m in page.locator('[data-testid="stMetric"]').all()])
            time_navigation(page, out)
            browser.close()
        out["session_peak_rss_bytes"] = peak_rss_bytes(proc.pid)
        print("BENCH_JSON " + json.dumps(out), flush=True)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
