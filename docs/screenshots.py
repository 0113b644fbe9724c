"""Take the README's screenshots of the dashboard on the bundled demo data (not a test).

Usage, from the repository folder with Debian's chromium on PATH:

    .venv/bin/python docs/screenshots.py

It starts ``streamlit run app.py`` on a free port (demo data from ``data/``), opens it in headless
Chromium through Playwright at 1400 x 1000 CSS pixels, and writes ``docs/checklist.png`` (the top of
the checklist: the verdict, the headline figures, the first blockers) and ``docs/dedup.png`` (the
Dedup page: figures, the pairing chart and why events are not paired).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
WAIT_MS = 240_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int) -> None:
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("streamlit did not start")


def _settle(page: Page) -> None:
    page.wait_for_timeout(500)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # plotly's first draw


def main() -> None:
    port = _free_port()
    env = dict(os.environ, CAPI_DEMO_DIR=str(ROOT / "data"))
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(port)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector(".capi-verdict", timeout=WAIT_MS)
            _settle(page)
            page.screenshot(path=str(ROOT / "docs" / "checklist.png"))
            page.locator('[data-testid="stSidebarNav"] a', has_text="Dedup").first.click()
            page.wait_for_selector("h1:has-text('Dedup pairing')", timeout=WAIT_MS)
            _settle(page)
            page.set_viewport_size({"width": 1400, "height": 1350})
            _settle(page)
            page.screenshot(path=str(ROOT / "docs" / "dedup.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait()
    print("wrote docs/checklist.png and docs/dedup.png")


if __name__ == "__main__":
    main()
