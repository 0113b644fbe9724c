"""The delivery section: what Meta answered to each server send (send log or response columns).

Real DuckDB and real files; the send-test round trip posts to the Graph stand-in over real HTTP on
127.0.0.1 and reads its send log back with ``report --send-log``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capi_diag.cli import main
from capi_diag.core.config import Config
from capi_diag.core.errors import IngestError
from capi_diag.diagnostics import delivery
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.db import Database
from capi_diag.io.ingest import import_logs
from capi_diag.io.orders import import_extras
from capi_diag.meta.errors import lookup
from capi_diag.standins.fake_server import FakeGraph
from capi_diag.testevents import sender
from tests.conftest import clean_graph_env

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
T = 1_795_000_000


def ev(eid: str, name: str = "Purchase") -> dict:
    return {"event_name": name, "event_id": eid, "event_time": T, "custom_data": {"order_id": eid}}


def line(events: list[dict], status: int, response: dict, **extra) -> str:
    return json.dumps({"sent_at": T + 5, "pixel_id": "1", "request": {"data": events, **extra.pop("req", {})},
                       "http_status": status, "response": response, **extra})


def load(tmp_path: Path, lines: list[str], server: list[dict] | None = None) -> tuple[Dataset, dict]:
    (tmp_path / "send.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds = import_extras(Dataset.from_records([], server or []), send_log=[tmp_path / "send.jsonl"])
    return ds, delivery.analyze(ds, Config(), {})


ERR_2804016 = {"error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100,
                         "error_subcode": 2804016, "error_user_msg": "The ct parameter isn't hashed.",
                         "fbtrace_id": "AHASH"}}
ERR_190 = {"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException",
                     "code": 190, "error_subcode": 463, "fbtrace_id": "ATOKEN"}}


def test_delivery_demo_equals_manifest():
    db = Database()
    try:
        ds = import_logs(db, browser=[DATA / "browser_events.csv"], server=[DATA / "server_events.csv"])
        ds = import_extras(ds, orders=[DATA / "orders.csv"], send_log=[DATA / "send_log.jsonl"])
        r = delivery.analyze(ds, Config(), {})
    finally:
        db.close()
    m = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))["orders"]["delivery"]
    assert {k: r[k] for k in ("requests", "rows_sent", "accepted", "rejected")} == {
        k: m[k] for k in ("requests", "rows_sent", "accepted", "rejected")}
    assert [(c["code"], c["subcode"], c["rows"], c["requests"], c["title"]) for c in r["rejected_by_code"]] == [
        (c["code"], c["subcode"], c["rows"], c["requests"], c["title"]) for c in m["rejected_by_code"]]
    assert (r["short_requests"]["requests"], r["short_requests"]["events_missing"]) == (
        m["short_requests"]["requests"], m["short_requests"]["events_missing"])
    assert r["warnings"]["requests"] == m["warnings"]["requests"]
    assert (r["rows_sent"], r["accepted"], r["rejected"]) == (74, 61, 13)
    assert all(c["example"]["fbtrace_id"].startswith("A") for c in r["rejected_by_code"])


def test_delivery_codes_with_catalogue_meaning_and_fix(tmp_path):
    _, r = load(tmp_path, [
        line([ev("1"), ev("2")], 400, ERR_2804016),
        line([ev("3")], 400, ERR_2804016),
        line([ev("4")], 400, ERR_190),
        line([ev("5"), ev("6"), ev("7")], 200, {"events_received": 3, "messages": [], "fbtrace_id": "AOK"}),
    ])
    assert (r["requests"], r["rows_sent"], r["accepted"], r["rejected"]) == (4, 7, 3, 4)
    first, second = r["rejected_by_code"]
    entry = lookup(100, 2804016)
    assert (first["code"], first["subcode"], first["rows"], first["requests"]) == (100, 2804016, 3, 2)
    assert (first["title"], first["meaning"], first["fix"], first["kind"]) == (
        entry.title, entry.meaning, entry.fix, "payload")
    assert first["example"] == {"source_file": "send.jsonl", "line": 1,
                                "message": "The ct parameter isn't hashed.", "fbtrace_id": "AHASH"}
    assert (second["code"], second["subcode"], second["rows"], second["kind"]) == (190, 463, 1, "config")


def test_delivery_short_requests_and_warnings_inside_200(tmp_path):
    _, r = load(tmp_path, [
        line([ev("1"), ev("2"), ev("3")], 200, {"events_received": 1, "fbtrace_id": "ASHORT"}),
        line([ev("4")], 200, {"events_received": 1, "messages": ["value must be a number"], "fbtrace_id": "AW1"}),
        line([ev("5")], 200, {"events_received": 1, "messages": ["value must be a number"], "fbtrace_id": "AW2"}),
    ])
    assert r["short_requests"]["requests"] == 1 and r["short_requests"]["events_missing"] == 2
    assert r["short_requests"]["examples"][0]["fbtrace_id"] == "ASHORT"
    assert r["warnings"]["messages"] == [{"message": "value must be a number", "requests": 2}]
    assert [e["fbtrace_id"] for e in r["warnings"]["examples"]] == ["AW1", "AW2"]
    assert r["rejected"] == 0


def test_delivery_secrets_removed_at_import_never_stored(tmp_path):
    secret = "EAAB-very-secret-token"
    ds, r = load(tmp_path, [
        line([ev("1")], 200, {"events_received": 1}, access_token=secret, req={"access_token": secret}),
        line([ev("2")], 200, {"events_received": 1}, appsecret_proof="proof-" + secret),
    ])
    assert ds.inputs["sends"]["secrets_removed"] == 3
    assert r["accepted"] == 2
    for (table,) in ds.db.fetchall("SELECT table_name FROM information_schema.tables"):
        hits = ds.db.fetchone(f'SELECT count(*) FROM "{table}" WHERE concat_ws(\'|\', COLUMNS(*)) LIKE ?',
                              [f"%{secret}%"])[0]
        assert hits == 0, table
    assert secret not in json.dumps(ds.inputs)


def test_delivery_malformed_lines_rejected_and_counted(tmp_path):
    ds, r = load(tmp_path, ["not json", json.dumps({"http_status": 200}), line([ev("1")], 200,
                                                                            {"events_received": 1})])
    rep = ds.inputs["sends"]
    assert rep["rejected_reasons"] == {"malformed_row": 2}
    assert [e["line"] for e in rep["file_reports"][0]["rejected_examples"]] == [1, 2]
    assert r["rows_sent"] == 1


def test_delivery_no_request_line_is_one_clear_error(tmp_path):
    (tmp_path / "send.jsonl").write_text('{"a": 1}\n', encoding="utf-8")
    with pytest.raises(IngestError, match=r"send log 'send.jsonl': no line is a request record"):
        import_extras(Dataset.from_records([], []), send_log=[tmp_path / "send.jsonl"])


def test_delivery_without_answers_not_evaluated():
    r = delivery.analyze(Dataset.from_records([], []), Config(), {})
    assert r["status"] == "not_evaluated"


def test_delivery_from_server_log_response_columns(tmp_path):
    (tmp_path / "server.csv").write_text(
        "event_name,event_id,event_time,custom_data.order_id,http_status,events_received,error_code,"
        "error_subcode,error_message,fbtrace_id\n"
        f"Purchase,1,{T},1,200,1,,,,AOK1\n"
        f"Purchase,2,{T},2,400,,100,2804003,Invalid parameter,AERR\n"
        f"Purchase,3,{T},3,200,1,,,,AOK2\n", encoding="utf-8")
    (tmp_path / "browser.csv").write_text(f"event_name,event_id,event_time\nPurchase,1,{T}\n", encoding="utf-8")
    db = Database()
    try:
        ds = import_logs(db, browser=[tmp_path / "browser.csv"], server=[tmp_path / "server.csv"])
        ds = import_extras(ds)
        r = delivery.analyze(ds, Config(), {})
        rows = ds.query(delivery.failing_rows(ds, Config())).to_pylist()
    finally:
        db.close()
    assert r["source"] == "server log response columns"
    assert (r["rows_sent"], r["accepted"], r["rejected"]) == (3, 2, 1)
    assert [(c["code"], c["subcode"], c["example"]["fbtrace_id"]) for c in r["rejected_by_code"]] == [
        (100, 2804003, "AERR")]
    assert [(x["line"], x["event_id"], x["detail"]) for x in rows] == [(3, "2", "code 100/2804003")]


def test_send_test_send_log_out_is_what_report_reads(monkeypatch, tmp_path, capsys):
    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CAPI_DIAG_HOME", str(tmp_path / "home"))
    now = [1_800_000_000.0]
    monkeypatch.setattr(sender, "CLOCK", lambda: now[0])
    monkeypatch.setattr(sender, "SLEEP", lambda s: None)
    token = "tok-secret-123"
    with FakeGraph(token=token, pixel_id="1234567890", now=lambda: now[0]) as fake:
        monkeypatch.setenv("CAPI_GRAPH_URL", fake.url)
        monkeypatch.setenv("CAPI_ACCESS_TOKEN", token)
        log = tmp_path / "send_log.jsonl"
        for _ in range(2):
            code = main(["send-test", "--pixel-id", "1234567890", "--test-event-code", "TEST123",
                         "--db", str(tmp_path / "h.duckdb"), "--send-log-out", str(log)])
            assert code == 0
    capsys.readouterr()
    text = log.read_text(encoding="utf-8")
    assert token not in text
    recs = [json.loads(x) for x in text.splitlines()]
    assert [(r["http_status"], r["response"]["events_received"], len(r["request"]["data"])) for r in recs] == [
        (200, 5, 5), (200, 5, 5)]
    db = Database()
    try:
        ds = import_extras(Dataset.from_records([], [], db=db), send_log=[log])
        r = delivery.analyze(ds, Config(), {})
    finally:
        db.close()
    assert (r["requests"], r["rows_sent"], r["accepted"], r["rejected"]) == (2, 10, 10, 0)
