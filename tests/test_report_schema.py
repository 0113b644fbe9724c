"""Every report validates against the published JSON Schema (docs/report.schema.json)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from capi_diag.core.config import Config
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.report import SCHEMA_VERSION, build_report, to_html, to_json, to_markdown
from capi_diag.verdict import checklist

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "report.schema.json"
T = 1_700_000_000
H = hashlib.sha256(b"someone@example.com").hexdigest()
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
STEPS = ("PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _logs():
    browser, server = [], []
    for i, name in enumerate(STEPS):
        purchase = name == "Purchase"
        browser.append({"event_name": name, "event_id": f"e{i}", "event_time": T + i,
                        "fbp": "fb.1.1700000000000.42", "value": "19.99" if purchase else None})
        server.append({"event_name": name, "event_id": f"e{i}", "event_time": T + i + 2,
                       "sent_at": T + i + 30,
                       "action_source": "website", "event_source_url": "https://shop.example/?fbclid=abc",
                       "em": [H, "raw@example.com"], "client_user_agent": UA,
                       "client_ip_address": "2001:db8::7",
                       "fbp": "fb.1.1700000000000.42", "consent_ad_storage": "granted",
                       "consent_ad_user_data": "denied" if purchase else "granted", "consent_region": "DE",
                       "value": "20.00" if purchase else None, "currency": "eur" if purchase else None})
    server.append({"event_name": "purchase", "event_time": T + 99, "test_event_code": "TEST1",
                   "value": "1,5"})
    return browser, server


@pytest.fixture(scope="module")
def reports() -> dict[str, dict]:
    browser, server = _logs()
    config = Config.from_text('[consent.regions]\nEEA = ["ad_storage", "ad_user_data"]\n')
    small = build_report(Dataset.from_records(browser=browser, server=server), config)
    empty = build_report(Dataset.from_records(), Config())
    return {"small": small, "empty": empty}


def _errors(validator, report) -> list[str]:
    data = json.loads(to_json(report))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


@pytest.mark.parametrize("name", ["small", "empty"])
def test_report_schema_built_reports_validate(validator, reports, name):
    assert _errors(validator, reports[name]) == []


def test_report_schema_small_report_has_findings_and_full_checklist(reports):
    r = reports["small"]
    assert r["schema_version"] == SCHEMA_VERSION == 1
    assert [i["id"] for i in r["checklist"]] == [i.id for i in checklist.ITEMS]
    statuses = {i["id"]: i["status"] for i in r["checklist"]}
    assert statuses["consent"] == "fail"            # one EEA Purchase forwarded with ad_user_data denied
    assert statuses["test_event_code"] == "fail"
    assert statuses["unhashed_pii"] == "fail"       # raw email next to the hash
    assert statuses["pairing_rate"] == "pass"
    assert r["consent"]["forwarded_without_consent"] == 1
    assert r["contract"]["value_mismatch"] == 1     # 19.99 vs 20.00


def test_report_schema_empty_report_everything_not_evaluated(reports):
    r = reports["empty"]
    assert {i["status"] for i in r["checklist"]} == {"not_evaluated"}
    assert r["consent"]["forwarded_without_consent"] is None


def test_report_schema_imported_report_with_file_reports_validates(validator, tmp_path):
    browser = "event_name,event_id,event_time\nPurchase,o1,1700000000\n"
    server = ("event_name,event_id,event_time,value,currency,action_source,event_source_url,em\n"
              f"Purchase,o1,1700000005000,12.50,EUR,website,https://shop.example/,{H}\n")
    with Database() as db:
        ds = import_logs(db, browser=[Source("pixel.csv", data=browser.encode())],
                         server=[Source("capi.csv", data=server.encode())])
        report = build_report(ds, Config())
    assert report["inputs"]["server"]["file_reports"][0]["name"] == "capi.csv"
    assert _errors(validator, report) == []


def test_report_schema_rejects_a_broken_checklist_item(validator, reports):
    r = copy.deepcopy(reports["small"])
    r["checklist"][0]["status"] = "ok"
    del r["checklist"][1]["fix"]
    r["checklist"][2]["id"] = "renamed_item"
    errors = _errors(validator, r)
    assert len(errors) == 3


def test_report_schema_rejects_wrong_types_in_sections(validator, reports):
    r = copy.deepcopy(reports["small"])
    r["contract"]["value_not_numeric"] = -1
    r["consent"]["forwarded_without_consent"] = "many"
    r["journey"]["missing"] = {"browser": []}
    r["unexpected_section"] = {}
    assert len(_errors(validator, r)) == 4


def test_report_schema_lists_exactly_the_checklist_vocabulary():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    item = schema["$defs"]["checklist_item"]["properties"]
    assert item["id"]["enum"] == [i.id for i in checklist.ITEMS]
    assert item["status"]["enum"] == list(checklist.STATUSES)
    assert item["page"]["enum"] == list(checklist.PAGES)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_report_schema_markdown_and_html_open_with_the_checklist(reports):
    r = reports["small"]
    md = to_markdown(r)
    assert md.index("## Pre-launch checklist") < md.index("## Inputs")
    consent = next(i for i in r["checklist"] if i["id"] == "consent")
    assert consent["explanation"] in md and consent["fix"] in md
    html = to_html(r)
    assert html.index("Pre-launch checklist") < html.index("<h2>Inputs</h2>")
