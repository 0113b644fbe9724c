"""Real capture shapes (issue 24), on fixtures written in those shapes (tests/fixtures/real_shapes/, not
copied from any plugin): a WooCommerce-style server log of pretty-printed request bodies appended one
after another, with the plugin's internal key names (``user_data.browser_id`` / ``click_id``), PHP's
empty ``"custom_data": []`` and request-level fields (``partner_agent``, ``upload_tag``); and Pixel
``/tr`` hits converted to CSV (``ts`` in milliseconds, ``dl``, ``cd[...]`` columns, the billing email
copied into ``cd[user_data]``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capi_diag import api
from capi_diag.core import labels
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.report import render

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real_shapes"
SERVER = FIXTURES / "server_pretty.json"
BROWSER = FIXTURES / "pixel_hits.csv"


@pytest.fixture(scope="module")
def report() -> dict:
    return api.analyze(api.Inputs(browser=[str(BROWSER)], server=[str(SERVER)]))


def _server_one_line() -> bytes:
    """The fixture's request bodies, one per line (the form that imported before issue 24)."""
    decoder, text, pos, lines = json.JSONDecoder(), SERVER.read_text(encoding="utf-8"), 0, []
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text):
            doc, pos = decoder.raw_decode(text, pos)
            lines.append(json.dumps(doc))
    assert len(lines) == 3
    return ("\n".join(lines) + "\n").encode()


def test_pretty_request_bodies_import_with_the_figures_of_their_one_line_form(report):
    fr = report["inputs"]["server"]["file_reports"][0]
    assert (fr["format"], fr["rows_read"], fr["rows_loaded"], fr["rows_rejected"]) == ("json", 4, 4, 0)
    flat = api.analyze(api.Inputs(browser=[str(BROWSER)], server=[Source("server.jsonl", data=_server_one_line())]))
    from tests.test_json_shapes import _normalized

    assert _normalized(flat) == _normalized(report)


def test_pretty_bodies_rows_sit_at_their_event_first_line():
    with Database() as db:
        import_logs(db, browser=[str(BROWSER)], server=[str(SERVER)])
        rows = db.fetchall("SELECT event_id, line FROM server_events ORDER BY row_id")
    lines = SERVER.read_text(encoding="utf-8").splitlines()
    for eid, line in rows:  # the line opens the event's object; its event_id follows within it
        assert lines[line - 1].strip() == "{"
        assert any(f'"event_id": "{eid}"' in x for x in lines[line:line + 5])
    assert [r[0] for r in rows] == ["vc-1", "atc-1", "ic-1", "order-1001"]


def test_plugin_key_names_read_as_fbp_and_fbc_and_named_in_the_import_report(report):
    fr = report["inputs"]["server"]["file_reports"][0]
    assert fr["mapping"]["user_data.browser_id"] == "fbp"
    assert fr["mapping"]["user_data.click_id"] == "fbc"
    assert "column 'user_data.browser_id' (Facebook for WooCommerce's name) was read as fbp" in fr["warnings"]
    assert "column 'user_data.click_id' (Facebook for WooCommerce's name) was read as fbc" in fr["warnings"]
    assert fr["unknown_columns"] == []
    mk = report["match_keys"]
    assert (mk["rows"], mk["fbp"]["present"], mk["fbc"]["present"]) == (4, 3, 2)
    b = report["inputs"]["browser"]["file_reports"][0]
    assert b["mapping"]["dl"] == "event_source_url"
    assert "column 'dl' (Meta Pixel hit's name) was read as event_source_url" in b["warnings"]


def test_php_empty_custom_data_is_no_unknown_column_and_request_fields_are_listed(report):
    fr = report["inputs"]["server"]["file_reports"][0]
    assert "custom_data" not in fr["unknown_columns"] and "custom_data" not in fr["mapping"]
    assert ("request-level fields of the request bodies are not event fields and were dropped: "
            "partner_agent, upload_tag (test_event_code is applied to each event)") in fr["warnings"]


def test_browser_milliseconds_are_not_warned_with_the_server_rule(report):
    b = report["inputs"]["browser"]["file_reports"][0]
    assert b["time_formats"] == {"ms": 5}
    assert not any("Meta requires" in w for w in b["warnings"])
    assert ("event_time values in milliseconds (the Pixel's own unit, its ts parameter) were converted to "
            "seconds to compare them with the server log") in b["warnings"]
    # a server log in milliseconds keeps Meta's rule
    server_ms = b"event_name,event_id,event_time\nPurchase,order-1001,1794873692000\n"
    with Database() as db:
        ds = import_logs(db, browser=[str(BROWSER)], server=[Source("s.csv", data=server_ms)])
    assert any("Meta requires Unix seconds" in w for w in ds.inputs["server"]["file_reports"][0]["warnings"])


def test_fbp_gap_listed_per_pair(report):
    fbp = report["match_keys"]["paired_mismatch"]["fields"]["fbp"]
    assert (fbp["compared"], fbp["mismatched"], fbp["browser_only"], fbp["server_only"]) == (3, 0, 1, 0)
    gaps = report["match_keys"]["examples"]["fbp.paired_gap"]
    assert [(g["event_name"], g["event_id"], g["browser_line"], g["server_line"], g["server_fbp"]) for g in gaps] == [
        ("InitiateCheckout", "ic-1", 5, 48, None)]
    assert gaps[0]["browser_fbp"] == "fb.1.1794873500123.1122334455"


def test_pairing_example_tables_carry_labels_that_fit_any_event(report):
    assert labels.COLUMNS["browser_rows"] == "Browser rows" and labels.COLUMNS["server_rows"] == "Server rows"
    for kind in ("markdown", "html"):
        text = render(report, kind)
        assert "Browser Purchases" not in text and "Server Purchases" not in text
    md = render(report, "markdown")
    assert "Examples: Browser ID (fbp) on one side of a pair only (1 row shown)" in md
    assert "| Browser fbp | Server fbp |" in md


def test_raw_email_in_pixel_custom_data_and_url_is_the_privacy_finding(report):
    p = report["privacy"]
    assert p["rows"] == {"browser": 2, "server": 1}
    assert (p["personal_data_rows"], p["url_rows"], p["custom_data_rows"], p["unknown_column_rows"]) == (3, 1, 3, 0)
    assert (p["email_rows"], p["phone_rows"]) == (3, 1)
    assert [(r["role"], r["place"], r["field"], r["event_name"], r["rows"], r["email_rows"], r["phone_rows"])
            for r in p["by_field"]] == [
        ("browser", "custom_data", "cd[user_data]", "InitiateCheckout", 1, 1, 0),
        ("browser", "custom_data", "cd[user_data]", "Purchase", 1, 1, 1),
        ("browser", "url", "event_source_url", "InitiateCheckout", 1, 1, 0),
        ("server", "custom_data", "custom_data.billing_email", "Purchase", 1, 1, 0),
    ]
    shown = [(e["field"], e["line"], e["value"]) for e in p["examples"]["personal_data_in_custom_data"]]
    assert shown == [("cd[user_data]", 5, "j***@example.org"), ("cd[user_data]", 6, "j***@example.org"),
                     ("cd[user_data]", 6, "***0958"), ("custom_data.billing_email", 69, "j***@example.org")]
    assert [e["value"] for e in p["examples"]["personal_data_in_url"]] == ["j***@example.org"]
    item = {i["id"]: i for i in report["checklist"]}["no_personal_data_outside_user_data"]
    assert (item["title"], item["status"], item["observed"]) == ("No personal data in URLs or custom data", "fail", 3)
    # raw fn / ln are unhashed customer information as before (stored masked, counted the same)
    assert report["match_keys"]["fn"]["defects"]["unhashed"] == 1
    assert report["match_keys"]["ln"]["defects"]["unhashed"] == 1
