"""Personal data where Meta forbids it (issue 24): the ``privacy`` finding counts raw emails and phone
numbers in URLs, custom data and unmapped columns per field and event and shows them masked; the import
stores them (and raw ``fn`` / ``ln``) masked with a keyed fingerprint, as ``em`` / ``ph``; so does the
Test Events send history. Planted raw values appear in no output and not in the ``--db`` file."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capi_diag import api
from capi_diag.cli import main
from capi_diag.core.config import Config
from capi_diag.diagnostics import privacy
from capi_diag.engine import pii
from capi_diag.engine.db import Database
from capi_diag.io.ingest import MACROS, Source
from capi_diag.testevents.store import SendRecord, Store

T = 1794873602
RAW = ["maria.lopez@example.net", "+34 612 345 678", "k.tanaka@example.jp", "(555) 010-4477", "Maria", "Lopez"]
CANARY = "privacy-canary-kept-raw"
"""A value of an unmapped column with no personal data: stored as found, so the database bytes are
searchable (a leak would be found)."""

BROWSER = (
    "event_name,event_id,event_time,fbp,dl,cd[user_data],cd[value],note\n"
    f"Purchase,o1,{T}000,fb.1.1.1,https://shop.example/thanks?email=maria.lopez%40example.net&fbclid=IwAR1,"
    '"{""em"":""maria.lopez@example.net"",""ph"":""+34 612 345 678""}",10.5,' + CANARY + "\n"
    f"PageView,p1,{T}500,fb.1.1.1,https://shop.example/,,,plain\n"
    f"Lead,l1,{T + 1}000,fb.1.1.1,https://shop.example/contact?tel=(555)%20010-4477,,,order 123456789\n"
)
SERVER = "\n".join(json.dumps(e) for e in [
    {"event_name": "Purchase", "event_id": "o1", "event_time": T, "action_source": "website",
     "event_source_url": "https://shop.example/thanks?email=maria.lopez%40example.net&fbclid=IwAR1",
     "user_data": {"em": ["a" * 64], "fn": "Maria", "ln": "Lopez", "fbp": "fb.1.1.1"},
     "custom_data": {"value": "10.5", "currency": "EUR", "billing_email": "maria.lopez@example.net",
                     "billing_phone": "(555) 010-4477"},
     "contact": "k.tanaka@example.jp", "order_ref": "1794873602", "hotel_id": "12345678"},
    {"event_name": "Lead", "event_id": "l1", "event_time": T + 1, "action_source": "website",
     "event_source_url": "https://shop.example/contact", "custom_data": [],
     "user_data": {"em": ["b" * 64], "fn": ["c" * 64]}, "contact": "nobody"},
]) + "\n"


def _inputs() -> api.Inputs:
    return api.Inputs(browser=[Source("browser.csv", data=BROWSER.encode())],
                      server=[Source("server.jsonl", data=SERVER.encode())])


@pytest.fixture(scope="module")
def report() -> dict:
    return api.analyze(_inputs())


def test_privacy_counts_per_place_field_and_event(report):
    p = report["privacy"]
    assert p["status"] == "evaluated"
    assert p["rows"] == {"browser": 2, "server": 1}
    assert (p["url_rows"], p["custom_data_rows"], p["unknown_column_rows"]) == (3, 3, 1)
    assert (p["personal_data_rows"], p["email_rows"], p["phone_rows"]) == (3, 2, 3)
    assert [(r["role"], r["place"], r["field"], r["event_name"], r["rows"], r["email_rows"], r["phone_rows"])
            for r in p["by_field"]] == [
        ("browser", "custom_data", "cd[user_data]", "Purchase", 1, 1, 1),
        ("browser", "url", "event_source_url", "Lead", 1, 0, 1),
        ("browser", "url", "event_source_url", "Purchase", 1, 1, 0),
        ("server", "custom_data", "custom_data.billing_email", "Purchase", 1, 1, 0),
        ("server", "custom_data", "custom_data.billing_phone", "Purchase", 1, 0, 1),
        ("server", "unknown_column", "contact", "Purchase", 1, 1, 0),
        ("server", "url", "event_source_url", "Purchase", 1, 1, 0),
    ]


def test_privacy_examples_are_masked(report):
    ex = report["privacy"]["examples"]
    assert [(e["role"], e["field"], e["value"]) for e in ex["personal_data_in_url"]] == [
        ("browser", "event_source_url", "m***@example.net"), ("browser", "event_source_url", "***4477"),
        ("server", "event_source_url", "m***@example.net")]
    assert [(e["role"], e["field"], e["value"]) for e in ex["personal_data_in_custom_data"]] == [
        ("browser", "cd[user_data]", "m***@example.net"), ("browser", "cd[user_data]", "***5678"),
        ("server", "custom_data.billing_email", "m***@example.net"),
        ("server", "custom_data.billing_phone", "***4477")]
    assert [(e["field"], e["value"]) for e in ex["personal_data_in_unknown_column"]] == [
        ("contact", "k***@example.jp")]
    item = {i["id"]: i for i in report["checklist"]}["no_personal_data_outside_user_data"]
    assert (item["status"], item["observed"], item["page"]) == ("fail", 3, "match_keys")
    entries = privacy.explain(report["privacy"])
    assert [e["value"] for e in entries] == [3, 3, 1]
    assert "cd[user_data] on Purchase (browser, 1)" in entries[1]["text"]


def test_privacy_no_finding_for_hashes_ids_and_numbers_without_a_phone_key():
    browser = ("event_name,event_id,event_time,dl,order_ref\n"
               f"Purchase,1794873602,{T},https://shop.example/@brand/p?id=1234567890&ts=1794873602,987654321\n")
    server = json.dumps({"event_name": "Purchase", "event_id": "1794873602", "event_time": T,
                         "user_data": {"em": ["x@y.com"], "ph": ["+1 650 555 1212"]},
                         "custom_data": {"value": "1", "hotel_id": "12345678", "telemetry": "5551234567"}})
    r = api.analyze(api.Inputs(browser=[Source("b.csv", data=browser.encode())],
                               server=[Source("s.jsonl", data=server.encode())]))
    assert r["privacy"]["personal_data_rows"] == 0 and r["privacy"]["by_field"] == []
    assert {i["id"]: i for i in r["checklist"]}["no_personal_data_outside_user_data"]["status"] == "pass"
    assert r["match_keys"]["em"]["defects"]["unhashed"] == 1  # raw user_data stays the unhashed finding


def test_privacy_failing_rows_name_the_field_never_the_value():
    with api.opened(_inputs()) as ds:
        rows = ds.query(privacy.failing_rows(ds, Config())).to_pylist()
    got = sorted((r["role"], r["finding"], r["detail"], r["event_id"]) for r in rows)
    assert got == sorted([
        ("browser", "personal_data_in_custom_data", "cd[user_data]", "o1"),  # its email and phone: one row
        ("browser", "personal_data_in_url", "event_source_url", "o1"),
        ("browser", "personal_data_in_url", "event_source_url", "l1"),
        ("server", "personal_data_in_custom_data", "custom_data.billing_email", "o1"),
        ("server", "personal_data_in_custom_data", "custom_data.billing_phone", "o1"),
        ("server", "personal_data_in_unknown_column", "contact", "o1"),
        ("server", "personal_data_in_url", "event_source_url", "o1"),
    ])
    assert {r["severity"] for r in rows} == {"error"}


def _needles() -> list[bytes]:
    out = set()
    for v in RAW:
        for form in (v, v.lower(), v.replace("@", "%40"), json.dumps(v)[1:-1]):
            out.add(form.encode())
            out.add(form.encode("utf-16-le"))
    for v in RAW[1:4:2]:
        out.add(re.sub(r"\D", "", v).encode())
    return sorted(out)


def test_privacy_planted_raw_values_appear_in_no_output_nor_the_db_file(tmp_path):
    b, s = tmp_path / "browser.csv", tmp_path / "server.jsonl"
    b.write_text(BROWSER, encoding="utf-8")
    s.write_text(SERVER, encoding="utf-8")
    dbfile = tmp_path / "db" / "keep.duckdb"
    blobs: dict[str, bytes] = {}
    for fmt in ("json", "markdown", "html"):
        out, err, std = tmp_path / f"r.{fmt}", io.StringIO(), io.StringIO()
        args = ["report", "--browser", str(b), "--server", str(s), "--format", fmt, "--output", str(out)]
        if fmt == "json":
            args += ["--db", str(dbfile)]
        with contextlib.redirect_stdout(std), contextlib.redirect_stderr(err):
            assert main(args) == 1
        blobs.update({f"report.{fmt}": out.read_bytes(), f"stdout.{fmt}": std.getvalue().encode(),
                      f"stderr.{fmt}": err.getvalue().encode()})
    for f in dbfile.parent.iterdir():
        blobs[f"db:{f.name}"] = f.read_bytes()
    assert any(CANARY.encode() in v for k, v in blobs.items() if k.startswith("db:"))
    leaks = {k: [n for n in _needles() if n in v] for k, v in blobs.items()}
    assert {k: v for k, v in leaks.items() if v} == {}
    assert b"m***@example.net" in blobs["report.markdown"] and b"k***@example.jp" in blobs["report.html"]
    with Database(dbfile) as db:
        row = db.fetchone("SELECT fn[1], ln[1], custom_data_extra, extra, event_source_url FROM server_events "
                          "WHERE event_id = 'o1'")
        assert pii.mask_value("fn", row[0]) == "M***" and pii.mask_value("ln", row[1]) == "L***"
        assert re.fullmatch(r'\{"billing_email":"m\*\*\*@example\.net#[0-9a-f]{16}",'
                            r'"billing_phone":"\*\*\*4477#[0-9a-f]{16}"\}', row[2])
        assert re.fullmatch(r'\{"contact":"k\*\*\*@example\.jp#[0-9a-f]{16}","hotel_id":"12345678",'
                            r'"order_ref":"1794873602"\}', row[3])
        # in a URL the fingerprint follows %23, so the query string keeps its parameters (fbclid)
        assert re.fullmatch(r"https://shop\.example/thanks\?email=m\*\*\*@example\.net%23[0-9a-f]{16}&fbclid=IwAR1",
                            row[4])


def test_pii_scrub_in_python_equals_the_import_macro():
    texts = ['{"cd":"{\\"em\\":\\"maria.lopez@example.net\\",\\"ph\\":\\"+34 612 345 678\\"}"}',
             "https://x.example/?email=bob%40x.io&phone=%2B33612345678&n=1", "bob@x.io and jimbob@x.io",
             '{"billing_phone":"(555) 010-4477","order":"1234567890"}', "nothing", ""]
    with Database() as db:
        for stmt in [*MACROS.strip().split(";"), *pii.sql_macros(db.pii_key)]:
            if stmt.strip():
                db.execute(stmt)
        db.con.register("_t", pa.table({"v": texts, "i": list(range(len(texts)))}))
        sql = [r[0] for r in db.fetchall("SELECT capi_pii_scrub(v, '#') FROM _t ORDER BY i")]
        py = [pii.scrub_text(t, db.pii_key) for t in texts]
    assert sql == py
    assert py[2].startswith("b***@x.io#") and " and j***@x.io#" in py[2]
    assert "bob" not in py[2] and "jimbob" not in py[2]
    assert py[3].startswith('{"billing_phone":"***4477#') and py[3].endswith(',"order":"1234567890"}')
    assert py[4:] == ["nothing", ""]


def test_test_events_history_stores_no_raw_email_or_phone(tmp_path):
    path = tmp_path / "sends.duckdb"
    store = Store(path)
    rec = SendRecord(sent_at=1794873602.0, pixel_id="123", test_event_code="TEST1", ok=False, clean=False,
                     events_sent=1, messages=["Invalid parameter em: maria.lopez@example.net"],
                     events=[{"position": 1, "event_name": "Lead", "event_id": "k.tanaka@example.jp",
                              "status": "rejected", "notes": ['detail {"phone": "+34 612 345 678"}']}],
                     reasons=["Meta rejected the send"])
    store.add_send(rec)
    back = store.sends()[0]
    store.close()
    assert back.messages[0].startswith("Invalid parameter em: m***@example.net#")
    assert back.events[0]["event_id"].startswith("k***@example.jp#")
    assert "***5678#" in back.events[0]["notes"][0]
    data = b"".join(f.read_bytes() for f in tmp_path.iterdir())
    for raw in ("maria.lopez@example.net", "k.tanaka@example.jp", "+34 612 345 678", "34612345678"):
        assert raw.encode() not in data


def test_privacy_finds_raw_email_in_a_har_pixel_hit_custom_data():
    """A DevTools HAR's Pixel hits keep their other cd[...] parameters: the billing email a shop copies
    into cd[user_data] is the privacy finding, and is stored masked."""
    from urllib.parse import quote

    cd = quote(json.dumps({"em": "maria.lopez@example.net"}))
    url = (f"https://www.facebook.com/tr/?id=123&ev=Purchase&eid=o1&ts={T}000&fbp=fb.1.1.1"
           f"&dl=https%3A%2F%2Fshop.example%2F&cd[value]=10.5&cd[currency]=EUR&cd[user_data]={cd}")
    har = {"log": {"entries": [{"startedDateTime": "2026-11-17T00:00:02Z",
                                "request": {"method": "GET", "url": url, "headers": []}}]}}
    inputs = api.Inputs(browser=[Source("session.har", data=json.dumps(har).encode())],
                        server=[Source("server.jsonl", data=SERVER.encode())])
    with api.opened(inputs) as ds:
        r = api.report(ds)
        stored = ds.db.fetchone("SELECT extra FROM browser_events")[0]
    assert [(x["field"], x["event_name"], x["rows"]) for x in r["privacy"]["by_field"] if x["role"] == "browser"] == [
        ("cd[user_data]", "Purchase", 1)]
    assert r["privacy"]["examples"]["personal_data_in_custom_data"][0]["value"] == "m***@example.net"
    assert "maria.lopez" not in stored and "m***@example.net#" in stored


# -- the cheap test before each pattern ------------------------------------------------------------

GUARD_TEXTS = [
    "https://shop.example/?email=a.b%40example.net", "mailto:x@y.io", "x@y", "no at sign here",
    "https://s.example/?PHONE=%2B34%20612%20345%20678", "tel:+15550104477", "TEL: 555 010 4477",
    "Ph 555-010-4477", "mobile=0612345678", "MSISDN 34612345678", "m\u017fi\u017fdn 34612345678",
    "***4477#0123456789abcdef", "***4477%230123456789abcdef", "a***@example.net#0123456789abcdef",
    '{"contact_phone":"(555) 010-4477"}', '{"telephone":"555 010 4477"}', "order 123456789", "",
]


def _guard_and_pattern(texts: list[str]) -> list[tuple[str, str, bool, bool]]:
    import ibis

    with Database() as db:
        t = ibis.memtable(pa.table({"s": pa.array(texts, pa.string())}))
        cols = {}
        for kind, pattern in privacy.KIND_RE.items():
            cols[f"{kind}_guard"] = privacy.may_hold(t.s, kind)
            cols[f"{kind}_match"] = t.s.re_search(pattern)
        rows = db.ibis.to_pyarrow(t.select("s", **cols)).to_pylist()
    return [(r["s"], k, bool(r[f"{k}_guard"]), bool(r[f"{k}_match"])) for r in rows for k in privacy.KIND_RE]


def test_the_cheap_test_lets_through_every_text_the_pattern_matches():
    # the guard only saves work: a text it stops is one the pattern could never match
    found = _guard_and_pattern(GUARD_TEXTS)
    assert [(s, k) for s, k, guard, match in found if match and not guard] == []
    matched = {(s, k) for s, k, _, match in found if match}
    assert ("m\u017fi\u017fdn 34612345678", "phone") in matched  # RE2's (?i) s matches the long s
    assert ("tel:+15550104477", "phone") in matched and ("mailto:x@y.io", "email") in matched
    # and it does stop the texts with no sign of either kind
    assert [k for s, k, guard, _ in found if s == "order 123456789" and guard] == []


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet="@%40abcdefhilmnopstPHOTELMS\u017f*#+() .-_=&123456789", max_size=40),
                min_size=1, max_size=40))
def test_the_cheap_test_is_never_narrower_than_the_pattern(texts):
    assert [(s, k) for s, k, guard, match in _guard_and_pattern(texts) if match and not guard] == []
