"""A HAR as a browser log (io/har.py) and send-log lines as a server log (io/send_lines.py): a sanitized
DevTools-style HAR (percent-encoded keys, a urlencoded POST, a multipart sendBeacon given by its params
only, a privacy_sandbox copy, another Pixel's hit, no cookies) imports with every hit, and ``report``
pairs it with a send log."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from capi_diag.cli import main
from capi_diag.core.errors import IngestError
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs

FIXTURE = Path(__file__).parent / "fixtures" / "devtools-sanitized.har"
P = "731845026493175"
FBP = "fb.1.1796630000000.1122334455"
EM = "7a3f4ad5ba9a4dd0b76bca7c3cdb7cf8e0d9f1e7c30a4a7c3d2fb6e0b3a9a0c1"


def _ev(name, eid, t):
    return {"event_name": name, "event_id": eid, "event_time": t, "action_source": "website",
            "event_source_url": "https://shop.example.com/",
            "user_data": {"fbp": FBP, "client_ip_address": "203.0.113.9", "client_user_agent": "UA"}}


@pytest.fixture
def send_log(tmp_path) -> Path:
    lines = [
        {"sent_at": 1796631001, "pixel_id": P, "http_status": 200, "response": {"events_received": 1},
         "request": {"data": [_ev("PageView", "pv-5f1a", 1796631000)], "test_event_code": "TEST1"}},
        {"sent_at": 1796631006, "pixel_id": P, "http_status": 200, "response": {"events_received": 2},
         "body": {"data": [_ev("ViewContent", "vc-77b2", 1796631005), _ev("AddToCart", "atc-91c0", 1796631009)],
                  "test_event_code": "TEST1", "access_token": "EAAB-NEVER-STORED"}},
        {"data": [_ev("Purchase", "srv-ORD-4412", 1796631030)]},
    ]
    p = tmp_path / "send-log.jsonl"
    p.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return p


BROWSER_ROWS = [
    ("PageView", "pv-5f1a", 1796631000, [FBP], None, None, None, "https://shop.example.com/", P, [EM], 1),
    ("PageView", "other-1", 1796631000, None, None, None, None, "https://shop.example.com/", "999000111", None, 2),
    ("ViewContent", "vc-77b2", 1796631005, [FBP], None, "29.90", "EUR",
     "https://shop.example.com/products/sku-481", P, None, 3),
    ("AddToCart", "atc-91c0", 1796631009, [FBP], None, "29.90", "EUR",
     "https://shop.example.com/products/sku-481", P, None, 4),
    ("Purchase", "ORD-4412", 1796631030, [FBP], ["fb.1.1796630000000.IwAR2xYz"], "58.90", "EUR",
     "https://shop.example.com/thank-you?order=ORD-4412", P, None, 5),
]
COLS = "event_name, event_id, event_time, fbp, fbc, value, currency, event_source_url, pixel_id, em, line"


@pytest.mark.parametrize("packed", ["har", "json", "gz", "upload"])
def test_devtools_har_imports_every_hit(tmp_path, send_log, packed):
    raw = FIXTURE.read_bytes()
    if packed == "har":
        browser = FIXTURE
    elif packed == "json":  # any JSON document with log.entries, whatever its name
        browser = tmp_path / "capture.json"
        browser.write_bytes(raw)
    elif packed == "gz":
        browser = tmp_path / "capture.har.gz"
        browser.write_bytes(gzip.compress(raw))
    else:
        browser = Source(name="capture.har", data=raw)
    with Database() as db:
        ds = import_logs(db, browser=[browser], server=[send_log])
        assert db.execute(f"SELECT {COLS} FROM browser_events ORDER BY line").fetchall() == BROWSER_ROWS
        assert db.execute("SELECT event_name, event_id, event_time, test_event_code, line FROM server_events "
                          "ORDER BY line, event_name").fetchall() == [
            ("PageView", "pv-5f1a", 1796631000, "TEST1", 1), ("AddToCart", "atc-91c0", 1796631009, "TEST1", 2),
            ("ViewContent", "vc-77b2", 1796631005, "TEST1", 2), ("Purchase", "srv-ORD-4412", 1796631030, None, 3)]
        assert ds.inputs["browser"]["file_reports"][0]["warnings"] == [
            "read as a HAR: 5 Pixel hit(s) among 8 request(s)"]
        everything = json.dumps([db.execute(f'SELECT * FROM "{t}"').fetchall()
                                 for (t,) in db.execute("SELECT table_name FROM information_schema.tables").fetchall()],
                                default=str)
        assert "EAAB-NEVER-STORED" not in everything


def test_report_pairs_the_har_with_the_send_log(tmp_path, send_log, capsys):
    out = tmp_path / "report.json"
    main(["report", "--browser", str(FIXTURE), "--server", str(send_log), "--output", str(out)])
    dedup = json.loads(out.read_text())["dedup"]
    got = {k: dedup[k] for k in ("browser_rows", "server_rows", "paired", "browser_only", "server_only")}
    assert got == {"browser_rows": 5, "server_rows": 4, "paired": 3, "browser_only": 2, "server_only": 1}
    assert {k: v["paired"] for k, v in dedup["by_event_name"].items()} == {
        "AddToCart": 1, "PageView": 1, "Purchase": 0, "ViewContent": 1}


def test_har_errors(tmp_path):
    with Database() as db:
        with pytest.raises(IngestError, match="is a HAR .*pass it as the browser log"):
            import_logs(db, browser=[FIXTURE], server=[FIXTURE])
        empty = tmp_path / "empty.har"
        empty.write_text(json.dumps({"log": {"entries": [{"request": {"method": "GET", "url": "https://a.b/"}}]}}))
        with pytest.raises(IngestError, match="a HAR of 1 requests without a Pixel hit"):
            import_logs(db, browser=[empty], server=[FIXTURE.with_name("x")])
        broken = tmp_path / "broken.har"
        broken.write_text('{"log": {"entries": [')
        with pytest.raises(IngestError, match="looks like a HAR but is not valid JSON"):
            import_logs(db, browser=[broken], server=[])
        not_har = tmp_path / "x.har"
        not_har.write_text('{"log": 3}')
        with pytest.raises(IngestError, match=r"is not a HAR \(no log.entries list\)"):
            import_logs(db, browser=[not_har], server=[])
