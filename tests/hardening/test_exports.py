"""Exports and pages: markup, table syntax and spreadsheet formulas in the logs.

Hostile values (script tags, event handlers, ``javascript:`` links, Markdown images and tables,
pipes, backslashes, line breaks, cells starting with ``=`` ``+`` ``-`` ``@`` tab or CR) go into
event names, event ids, a click id, an unknown column's name and the files' names. Then:

* the HTML report is opened by a real Chromium: no script runs (no dialog, the payloads' marker is
  never set), no element comes from a value, and the values show as text;
* the Markdown report is rendered (CommonMark with tables, raw HTML allowed, as GitHub-like
  renderers do) and that HTML opened the same way; every table keeps its width;
* the CSV of failing rows has no cell a spreadsheet would run as a formula;
* the dashboard, with these logs uploaded, opens every page without running any of it
  (``unsafe_allow_html`` only ever gets values built by the project).
"""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from capi_diag.core.config import Config
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.report import build_report, to_html, to_markdown
from capi_diag.ui import findings
from capi_diag.ui.navigation import PAGES
from tests.hardening.figures import record
from tests.hardening.serving import CHROMIUM_ARGS, Dashboard
from tests.markdown_tables import table_row_widths

pytestmark = pytest.mark.hardening

MARK = "__capi_pwned"
PAYLOADS = [
    f"<script>window.{MARK}=1</script>",
    f"<img src=x onerror=\"window.{MARK}=2\">",
    f"\"><svg onload=\"window.{MARK}=3\">",
    f"'><iframe srcdoc=\"<script>parent.{MARK}=4</script>\"></iframe>",
    f"<a href=\"javascript:window.{MARK}=5\">x</a>",
    f"[click](javascript:window.{MARK}=6)",
    "![pixel](http://127.0.0.1:9/track.png)",
    f"<details open ontoggle=\"window.{MARK}=7\">",
    f"<style>@import 'http://127.0.0.1:9/x.css';</style><body onload=\"window.{MARK}=8\">",
    "a|b|c\\",
    "`code` **bold** _em_ # heading",
    "line1\n| fake | row |\n# injected heading",
    "cr\rbreak",
    "=HYPERLINK(\"http://127.0.0.1:9/\",\"x\")",
    "+1+1", "-1+1", "@SUM(1,2)", "\t=1+1", "\r=1+1",
    "=cmd|' /C calc'!A0",
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _quote(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


def _hostile_logs() -> tuple[list[Source], list[Source]]:
    """Browser and server logs whose names, ids and one column name carry every payload."""
    b = ["event_name,event_id,event_time,fbc"]
    s = ["event_name,event_id,event_time,action_source,fbc," + _quote(PAYLOADS[1])]
    for i, p in enumerate(PAYLOADS):
        t = 1_700_000_000 + 60 * i
        b.append(f"{_quote(p)},{_quote(p)},{t},{_quote(p)}")
        s.append(f"{_quote(p)},{_quote(p)},{t + 1},website,{_quote(p)},{_quote(p)}")
        b.append(f"Purchase,{_quote(p + '-b')},{t},")  # unpaired ids: dedup examples
        s.append(f"Purchase,{_quote(p + '-s')},{t},website,,x")
    name = PAYLOADS[1].replace("/", "_")
    return ([Source(f"{name}.csv", data=("\n".join(b) + "\n").encode())],
            [Source("srv|<b>x</b>.csv".replace("/", "_"), data=("\n".join(s) + "\n").encode())])


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    browser, server = _hostile_logs()
    with Database() as db:
        ds = import_logs(db, browser=browser, server=server)
        report = build_report(ds, Config())
        csv_bytes = findings.finding_csv(ds, Config())
    d = tmp_path_factory.mktemp("exports")
    md = to_markdown(report)
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    files = {"html": d / "report.html", "markdown_rendered": d / "report.md.html"}
    files["html"].write_text(to_html(report))
    files["markdown_rendered"].write_text(f"<!doctype html><html><body>{rendered}</body></html>")
    return {"report": report, "markdown": md, "csv": csv_bytes, "files": files,
            "rows": {r: report["inputs"][r]["rows"] for r in ("browser", "server")}}


async def _open(chromium: str, url: str) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else None)
            await page.goto(url)
            await page.wait_for_timeout(500)
            marker = await page.evaluate(f"() => window.{MARK} === undefined ? null : String(window.{MARK})")
            elements = await page.evaluate(
                "() => document.querySelectorAll('script, img, svg, iframe, style:not(head style), "
                "details, [onerror], [onload], [ontoggle], a[href^=\"javascript\"]').length")
            text = await page.evaluate("() => document.body.innerText")
            return {"dialogs": dialogs, "marker": marker, "elements": elements, "text": text,
                    "requests": requests}
        finally:
            await browser.close()


def test_html_report_opened_in_chromium_runs_nothing(exports: dict, chromium_path: str) -> None:
    seen = asyncio.run(_open(chromium_path, exports["files"]["html"].as_uri()))
    shown = [p for p in PAYLOADS[:9] if p.split(">")[0] in seen["text"]]
    leaks = len(seen["dialogs"]) + (seen["marker"] is not None) + seen["elements"] + len(seen["requests"])
    record("exports", html_payloads_tried=len(PAYLOADS), html_payloads_shown_as_text=len(shown),
           html_leaks=leaks, html_rows_imported=exports["rows"])
    assert seen["dialogs"] == [] and seen["marker"] is None
    assert seen["elements"] == 0, "an element came from a log value"
    assert seen["requests"] == [], seen["requests"]
    assert shown, "no payload reached the report: the test proves nothing"


def test_markdown_report_rendered_runs_nothing_and_tables_keep_their_width(exports: dict,
                                                                            chromium_path: str) -> None:
    widths = table_row_widths(exports["markdown"])
    tables, broken = len(widths), sum(len(set(w)) != 1 for w in widths)
    headings = [line for line in exports["markdown"].splitlines() if line.startswith("#")]
    injected = [h for h in headings if "injected" in h or "heading" in h]
    seen = asyncio.run(_open(chromium_path, exports["files"]["markdown_rendered"].as_uri()))
    leaks = (len(seen["dialogs"]) + (seen["marker"] is not None) + seen["elements"] + len(seen["requests"])
             + broken + len(injected))
    record("exports", markdown_payloads_tried=len(PAYLOADS), markdown_tables=tables,
           markdown_tables_broken=broken, markdown_leaks=leaks)
    assert tables > 0
    assert broken == 0 and not injected
    assert seen["dialogs"] == [] and seen["marker"] is None and seen["elements"] == 0
    assert seen["requests"] == [], seen["requests"]


def test_csv_download_has_no_formula_cell(exports: dict) -> None:
    rows = list(csv.reader(io.StringIO(exports["csv"].decode(), newline="")))
    cells = [c for r in rows[1:] for c in r]
    risky = [c for c in cells if c.startswith(FORMULA_START)]
    neutralised = [c for c in cells if c.startswith("'") and c[1:].startswith(FORMULA_START)]
    record("exports", csv_cells=len(cells), csv_cells_neutralised=len(neutralised), csv_leaks=len(risky))
    assert neutralised, "no formula reached the CSV: the test proves nothing"
    assert risky == []


@pytest.mark.timeout(900)
def test_dashboard_pages_with_markup_in_names_and_ids_run_nothing(tmp_path: Path, chromium_path: str) -> None:
    browser_src, server_src = _hostile_logs()
    files = {}
    for role, src in (("browser", browser_src[0]), ("server", server_src[0])):
        files[role] = tmp_path / f"{role}_hostile.csv"
        files[role].write_bytes(src.data)
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    app = Dashboard(server_tmp, tmp_path / "streamlit.log", demo_dir=tmp_path / "no-demo")

    async def run() -> dict:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1800})
                dialogs: list[str] = []
                page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
                outside: list[str] = []
                page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(app.url) else None)
                await page.goto(app.url)
                await page.wait_for_selector('[data-testid="stSidebarNav"] a', timeout=240_000)
                await page.locator('[data-testid="stSidebarNav"] a', has_text="Import").first.click()
                await page.wait_for_selector("h1:has-text('Import your logs')", timeout=240_000)
                for role in ("browser", "server"):
                    await page.locator(f".st-key-upload_{role} input[type=file]").set_input_files(str(files[role]))
                    await page.wait_for_selector(f".st-key-upload_{role} [data-testid='stFileChipName']",
                                                 timeout=240_000)
                await page.locator(".st-key-run_import button").click()
                await page.wait_for_selector(".st-key-import_done a", timeout=240_000)
                await page.locator(".st-key-import_done a").first.click()
                await page.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=240_000)
                visited, bad = [], []
                for spec in PAGES:
                    await page.locator('[data-testid="stSidebarNav"] a', has_text=spec.title).first.click()
                    await page.wait_for_selector("[data-testid='stMain'] h1", timeout=240_000)
                    await page.wait_for_timeout(300)
                    await page.wait_for_function(
                        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=240_000)
                    marker = await page.evaluate(f"() => window.{MARK} === undefined ? null : String(window.{MARK})")
                    found = await page.evaluate(
                        "() => [...document.querySelectorAll('[data-testid=\"stMain\"] img[src=\"x\"], "
                        "[data-testid=\"stMain\"] [onerror], [data-testid=\"stMain\"] [onload], "
                        "[data-testid=\"stMain\"] [ontoggle], [data-testid=\"stMain\"] iframe[srcdoc], "
                        "[data-testid=\"stMain\"] a[href^=\"javascript\"], "
                        "[data-testid=\"stSidebar\"] img[src=\"x\"]')]"
                        ".map(e => e.outerHTML.slice(0, 120))")
                    exceptions = await page.locator('[data-testid="stException"]').count()
                    visited.append(spec.title)
                    if marker is not None or found or exceptions:
                        bad.append(f"{spec.title}: marker={marker} elements={found} exceptions={exceptions}")
                return {"visited": visited, "bad": bad, "dialogs": dialogs, "outside": outside}
            finally:
                await browser.close()

    try:
        seen = asyncio.run(run())
    finally:
        app.stop()
    # Streamlit's own page icons come from its icon CDN (fonts.gstatic.com): not from a log value
    icons = sorted({u.split("/materialsymbolsrounded/")[-1].split("/")[0] for u in seen["outside"]
                    if u.startswith("https://fonts.gstatic.com/")})
    from_values = [u for u in seen["outside"] if not u.startswith("https://fonts.gstatic.com/")]
    leaks = len(seen["bad"]) + len(seen["dialogs"]) + len(from_values)
    record("exports", ui_pages_visited=len(seen["visited"]), ui_payloads_tried=len(PAYLOADS), ui_leaks=leaks,
           ui_problems=seen["bad"] + seen["dialogs"] + from_values, ui_streamlit_icon_cdn_requests=icons)
    assert seen["visited"] == [p.title for p in PAGES]
    assert seen["bad"] == [] and seen["dialogs"] == [] and from_values == []
