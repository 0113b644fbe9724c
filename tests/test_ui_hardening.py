"""Regressions of the hardening suite (exports, pages, sessions) kept in `make test`; the heavy
versions live in tests/hardening/ (`make hardening`).

* the lost click: a click on "Import and analyse" whose run is abandoned for a newer rerun (an
  upload finishing meanwhile) still starts the import;
* Markdown and HTML reports take every value from the logs literally; CSV downloads neutralise
  spreadsheet formulas;
* the shipped Streamlit configuration watches no files, and ``capi-diag serve`` runs the same.
"""

from __future__ import annotations

import csv
import html
import io
import tomllib
from pathlib import Path

import pyarrow as pa
import pytest
import streamlit as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from capi_diag.cli import serve
from capi_diag.core.config import Config
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.report import build_report, md_text, to_html, to_markdown
from capi_diag.ui import findings, layout, navigation, state
from tests.markdown_tables import table_row_widths

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240

HOSTILE = "<img src=x onerror=alert(1)>|[a](javascript:alert(2))\\"
BROWSER_CSV = ("event_name,event_id,event_time\n"
               f"\"{HOSTILE}\",\"=HYPERLINK(\"\"http://x\"\")\",1700000000\n"
               "Purchase,ord-1,1700000100\n").encode()
SERVER_CSV = ("event_name,event_id,event_time,action_source,\"<script>alert(3)</script>\"\n"
              "Purchase,ord-1,1700000101,website,x\n"
              f"\"{HOSTILE}\",@SUM(1),1700000002,website,y\n"
              "Purchase,\"-2+3\",1700000200,website,z\n").encode()


@pytest.fixture(scope="module")
def hostile_report() -> dict:
    with Database() as db:
        ds = import_logs(db, browser=[Source("<b>browser</b>.csv", data=BROWSER_CSV)],
                         server=[Source("server|x.csv", data=SERVER_CSV)])
        report = build_report(ds, Config())
        report["_csv"] = findings.finding_csv(ds, Config())
        return report


# -- the lost click ------------------------------------------------------------------------------

def test_import_click_whose_run_is_abandoned_still_starts_the_import(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """Under load the run a click starts can be abandoned before it reaches the button (Streamlit
    starts over when the upload's rerun arrives): the run that replaces it sees the button
    unclicked. Here the click's run is abandoned in the sidebar, as it was in the three-session
    reproduction; the import must start all the same."""
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "no-demo"))
    real = navigation.sidebar
    abandoned = []

    def sidebar():
        if st.session_state.get("run_import") and not abandoned:
            abandoned.append("sidebar")
            st.rerun()  # what Streamlit does when a newer rerun request arrives mid-run
        return real()

    monkeypatch.setattr(navigation, "sidebar", sidebar)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(navigation.page_path("import")).run()
    at.file_uploader(key="upload_browser").set_value([("browser.csv", BROWSER_CSV, "text/csv")])
    at.file_uploader(key="upload_server").set_value([("server.csv", SERVER_CSV, "text/csv")])
    at.button(key="run_import").click().run()  # the files go with the click (one form)
    assert abandoned == ["sidebar"], "the click's run was not abandoned: the test proves nothing"
    job = at.session_state[state.JOB_KEY] if state.JOB_KEY in at.session_state else None
    assert job is not None, "the click was lost: no import started"
    assert job.files == {"browser": ["browser.csv"], "server": ["server.csv"]}
    assert job.thread is not None
    job.thread.join(TIMEOUT)
    assert job.done and job.error is None
    assert state.REQUEST_KEY not in at.session_state, "the request outlived the import it started"


# -- exports ---------------------------------------------------------------------------------------

def test_md_text_escapes_markup_and_table_syntax() -> None:
    assert md_text("a|b") == "a\\|b"
    assert md_text("end\\") == "end\\\\"  # a trailing backslash cannot escape the cell's closing pipe
    assert md_text("<script>x</script>") == "\\<script\\>x\\</script\\>"
    assert md_text("[a](javascript:x)") == "\\[a\\](javascript:x)"
    assert md_text("l1\r\nl2\n# h") == "l1  l2 # h"
    assert md_text("`code` *em* _u_") == "\\`code\\` *em* _u_"


def test_markdown_report_takes_log_values_literally(hostile_report: dict) -> None:
    text = to_markdown(hostile_report)
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    rendered = md.render(text)
    assert "<img" not in rendered and "<script" not in rendered and "<b>" not in rendered
    assert "href=" not in rendered, "a value became a link"
    # every table keeps its header's number of cells, however many pipes the values hold
    for widths in table_row_widths(text):
        assert len(set(widths)) == 1, widths
    assert html.escape(HOSTILE.split("|")[0]) in rendered  # shown as text


def test_html_report_escapes_every_log_value(hostile_report: dict) -> None:
    doc = to_html(hostile_report)
    assert "<img" not in doc and "<script" not in doc and "<b>" not in doc
    assert "&lt;img src=x onerror=alert(1)&gt;" in doc
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in doc  # the unknown column's name


def test_csv_download_neutralises_spreadsheet_formulas(hostile_report: dict) -> None:
    rows = list(csv.reader(io.StringIO(hostile_report["_csv"].decode())))
    cells = [c for r in rows[1:] for c in r]
    assert cells, "no failing rows: the test proves nothing"
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    t = findings.neutralize_formulas(pa.table({"v": ["=1+1", "+1", "-1", "@A1", "\tx", "\rx", "ok", None],
                                               "n": [-1, 2, 3, 4, 5, 6, 7, 8]}))
    assert t.column("v").to_pylist() == ["'=1+1", "'+1", "'-1", "'@A1", "'\tx", "'\rx", "ok", None]
    assert t.column("n").to_pylist() == [-1, 2, 3, 4, 5, 6, 7, 8]


def test_unsafe_html_helpers_escape_what_they_are_given() -> None:
    assert "<script>" not in layout.verdict_block("fail", "<script>alert(1)</script>")
    assert "<script>" not in layout.status_chip("<script>")
    for page in ("checklist.py", "match_keys.py"):
        src = (ROOT / "capi_diag" / "ui" / "pages" / page).read_text()
        assert "+ html.escape(" in src and "unsafe_allow_html=True" in src


# -- the shipped configuration ---------------------------------------------------------------------

def test_shipped_streamlit_config_watches_no_files_and_serve_runs_the_same() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
    assert config["server"]["runOnSave"] is False
    assert config["runner"]["postScriptGC"] is False
    cmd = serve.streamlit_command(8600, "127.0.0.1")
    assert cmd[cmd.index("--server.fileWatcherType") + 1] == "none"
    assert cmd[cmd.index("--server.runOnSave") + 1] == "false"
    assert cmd[cmd.index("--runner.postScriptGC") + 1] == "false"


def test_uploaded_files_are_not_copied_by_each_script_run():
    """Streamlit deep-copies every widget value on every run; an uploaded file's copy would copy all its
    bytes (0.79 GB for the 1M logs). The dashboard makes that copy the file itself, which shares the
    upload's bytes with Streamlit's record, and ``getvalue()`` (all the pages use) still answers."""
    import copy

    from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec

    from capi_diag.ui import navigation

    navigation.pages()  # what app.py calls first on every run
    data = b"event_name,event_id,event_time\n" + b"Lead,1,1700000000\n" * 1000

    class _Urls:
        upload_url = delete_url = ""

    rec = UploadedFileRec(file_id="f1", name="s.csv", type="text/csv", data=data)
    up = UploadedFile(rec, _Urls())
    copied = copy.deepcopy([up])
    assert copied[0] is up and copied[0].getvalue() is data and up.size == len(data)
