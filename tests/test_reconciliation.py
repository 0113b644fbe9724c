"""The reconciliation section: every order through both logs and Meta's answers, as one waterfall.

Real DuckDB, real files: the orders exports and send logs are written to ``tmp_path`` and imported the
way ``report --orders/--send-log`` does. Counts are asserted exactly, against the demo manifest's
ground truth (measured by SQL over the generated tables) and against tiny hand-built cases, one per
waterfall bucket plus the ties.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError, IngestError
from capi_diag.diagnostics import reconciliation
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.io.orders import import_extras

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
T = 1_795_000_000  # 2026-11-18T09:46:40Z
GOOD = "a" * 64  # a well-formed SHA-256 hex: a valid em
STAGES = ("not_sent", "refused", "counted_twice", "unlikely_match", "counted_once")


# -- helpers ---------------------------------------------------------------------------------------

def orders_csv(path: Path, rows: list[tuple[str, str, str]], currency: str = "EUR") -> Path:
    """A plain orders export: order_id, created_at, value, currency, plus a customer email (PII)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["order_id", "created_at", "value", "currency", "email"])
    for oid, created, value in rows:
        w.writerow([oid, created, value, currency, f"buyer-{oid}@example.com"])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def send_line(events: list[dict], status: int, response: dict, sent_at: int = T + 60) -> str:
    return json.dumps({"sent_at": sent_at, "pixel_id": "1", "request": {"data": events}, "http_status": status,
                       "response": response})


def purchase(order_id: str, event_id: str | None = None, value: str = "10.00") -> dict:
    return {"event_name": "Purchase", "event_id": event_id or order_id, "event_time": T,
            "custom_data": {"order_id": order_id, "value": value, "currency": "EUR"}}


OK = {"events_received": 1, "messages": [], "fbtrace_id": "AOK"}
REFUSED = {"error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100,
                     "error_subcode": 2804003, "fbtrace_id": "AERR"}}


def server_row(order_id: str, event_id: str | None = None, value: str = "10.00", **kw) -> dict:
    row = {"event_name": "Purchase", "event_id": event_id or order_id, "order_id": order_id,
           "event_time": T + 3, "value": value, "currency": "EUR", "em": [GOOD]}
    row.update(kw)
    return row


def browser_row(order_id: str, event_id: str | None = None) -> dict:
    return {"event_name": "Purchase", "event_id": event_id or order_id, "event_time": T, "value": "10.00",
            "currency": "EUR"}


def build(tmp_path: Path, browser: list[dict], server: list[dict], orders: list[tuple[str, str, str]],
          sends: list[str] | None = None, config: Config | None = None) -> tuple[Dataset, dict]:
    ds = Dataset.from_records(browser, server)
    o = orders_csv(tmp_path / "orders.csv", orders)
    send_log = []
    if sends is not None:
        (tmp_path / "sends.jsonl").write_text("\n".join(sends) + "\n", encoding="utf-8")
        send_log = [tmp_path / "sends.jsonl"]
    ds = import_extras(ds, orders=[o], send_log=send_log)
    config = config or Config()
    return ds, reconciliation.analyze(ds.using(config), config, {})


def buckets(result: dict) -> dict[str, int | None]:
    return {b["stage"]: b["orders"] for b in result["waterfall"]}


# -- the demo against its manifest --------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo():
    db = Database()
    ds = import_logs(db, browser=[DATA / "browser_events.csv"], server=[DATA / "server_events.csv"])
    ds = import_extras(ds, orders=[DATA / "orders.csv"], send_log=[DATA / "send_log.jsonl"])
    manifest = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))["orders"]
    yield ds, reconciliation.analyze(ds, Config(), {}), manifest
    db.close()


def test_reconciliation_demo_counts_equal_manifest(demo):
    _, r, m = demo
    truth = m["reconciliation"]
    for key in ("orders", "browser_purchase", "server_purchase", "both", "neither", "server_accepted",
                "server_rejected", "value_mismatch", "currency_mismatch", "purchases_without_order"):
        assert r[key] == truth[key], key
    assert r["orders"] == m["orders_export"]["orders"] == 91
    assert (r["browser_purchase"], r["server_purchase"], r["both"], r["neither"]) == (57, 55, 44, 23)


def test_reconciliation_demo_waterfall_equals_manifest_orders_and_revenue(demo):
    _, r, m = demo
    got = [(b["stage"], b["orders"], b["revenue"]) for b in r["waterfall"]]
    want = [(b["stage"], b["orders"], b["revenue"]) for b in m["reconciliation"]["waterfall"]]
    assert got == want
    assert sum(b["orders"] for b in r["waterfall"]) == r["orders"]
    assert buckets(r) == {"not_sent": 23, "refused": 3, "counted_twice": 0, "unlikely_match": 0,
                          "counted_once": 65}


def test_reconciliation_demo_per_day_waterfall_adds_up(demo):
    _, r, _ = demo
    for stage in STAGES:
        total = next(b["orders"] for b in r["waterfall"] if b["stage"] == stage)
        assert sum(next(b["orders"] for b in d["waterfall"] if b["stage"] == stage)
                   for d in r["waterfall_by_day"]) == total, stage
    assert [d["day"] for d in r["waterfall_by_day"]] == sorted(d["day"] for d in r["waterfall_by_day"])


def test_reconciliation_demo_order_csv_buckets_add_up_to_waterfall(demo):
    ds, r, _ = demo
    table = ds.query(reconciliation.order_table(ds))
    assert table.num_rows == r["orders"]
    assert tuple(table.column_names) == reconciliation.ORDER_COLUMNS
    stages = table.column("stage").to_pylist()
    assert {s: stages.count(s) for s in STAGES} == buckets(r)


def test_reconciliation_demo_import_drops_customer_columns(demo):
    ds, _, m = demo
    inp = ds.inputs["orders"]
    assert inp["dropped_columns"] == m["orders_export"]["dropped_columns"]
    assert (inp["rows_read"], inp["rows"], inp["rejected_rows"]) == (m["orders_export"]["rows"],) * 2 + (0,)
    cols = [r[0] for r in ds.db.fetchall("SELECT column_name FROM (DESCRIBE capi_orders)")]
    assert cols == ["row_id", "source_file", "file_index", "line", "order_id", "created_at", "created_at_raw",
                    "total", "currency", "status"]
    # no customer email reached the database
    assert ds.db.fetchone("SELECT count(*) FROM capi_orders WHERE concat_ws('|', COLUMNS(*)) LIKE '%@%'")[0] == 0


# -- one tiny case per bucket --------------------------------------------------------------------------

def test_reconciliation_not_sent_bucket(tmp_path):
    _, r = build(tmp_path, [], [], [("1001", str(T), "10.00")], sends=[send_line([purchase("2002")], 200, OK)])
    assert buckets(r) == {"not_sent": 1, "refused": 0, "counted_twice": 0, "unlikely_match": 0, "counted_once": 0}
    assert (r["neither"], r["browser_purchase"], r["server_purchase"]) == (1, 0, 0)
    assert r["waterfall"][0]["revenue"] == {"EUR": 10.0}


def test_reconciliation_refused_bucket_every_send_refused(tmp_path):
    sends = [send_line([purchase("1001")], 400, REFUSED), send_line([purchase("1001")], 400, REFUSED)]
    _, r = build(tmp_path, [], [server_row("1001")], [("1001", str(T), "10.00")], sends)
    assert buckets(r)["refused"] == 1
    assert (r["server_accepted"], r["server_rejected"]) == (0, 1)


def test_reconciliation_counted_twice_bucket_ids_differ(tmp_path):
    sends = [send_line([purchase("1001", "srv-1001")], 200, OK)]
    _, r = build(tmp_path, [browser_row("1001")], [server_row("1001", "srv-1001")],
                 [("1001", str(T), "10.00")], sends)
    assert buckets(r)["counted_twice"] == 1
    assert r["both"] == 1


def test_reconciliation_unlikely_match_bucket_no_strong_key(tmp_path):
    row = server_row("1001", em=None, client_ip_address=["8.8.8.8"], client_user_agent=["Mozilla/5.0"])
    _, r = build(tmp_path, [], [row], [("1001", str(T), "10.00")], [send_line([purchase("1001")], 200, OK)])
    assert buckets(r)["unlikely_match"] == 1


def test_reconciliation_unlikely_match_strong_keys_configurable(tmp_path):
    row = server_row("1001", em=None, client_ip_address=["8.8.8.8"])
    cfg = Config({"reconciliation": {"strong_keys": ["em", "client_ip_address"]}})
    _, r = build(tmp_path, [], [row], [("1001", str(T), "10.00")], [send_line([purchase("1001")], 200, OK)], cfg)
    assert buckets(r)["counted_once"] == 1


def test_reconciliation_counted_once_paired_copies(tmp_path):
    _, r = build(tmp_path, [browser_row("1001")], [server_row("1001")], [("1001", str(T), "10.00")],
                 [send_line([purchase("1001")], 200, OK)])
    assert buckets(r) == {"not_sent": 0, "refused": 0, "counted_twice": 0, "unlikely_match": 0, "counted_once": 1}


def test_reconciliation_tie_one_rejected_one_accepted_send_counts_once(tmp_path):
    sends = [send_line([purchase("1001")], 400, REFUSED), send_line([purchase("1001")], 200, OK, sent_at=T + 90)]
    _, r = build(tmp_path, [], [server_row("1001"), server_row("1001")], [("1001", str(T), "10.00")], sends)
    assert (r["server_purchase"], r["server_accepted"], r["server_rejected"]) == (1, 1, 0)
    assert buckets(r)["counted_once"] == 1


def test_reconciliation_tie_pixel_copy_and_refused_server_counts_once(tmp_path):
    sends = [send_line([purchase("1001")], 400, REFUSED)]
    _, r = build(tmp_path, [browser_row("1001")], [server_row("1001")], [("1001", str(T), "10.00")], sends)
    assert buckets(r)["counted_once"] == 1
    assert r["server_rejected"] == 1


def test_reconciliation_first_bucket_wins_refused_before_unlikely(tmp_path):
    row = server_row("1001", em=None)
    _, r = build(tmp_path, [], [row], [("1001", str(T), "10.00")], [send_line([purchase("1001")], 400, REFUSED)])
    assert buckets(r)["refused"] == 1 and buckets(r)["unlikely_match"] == 0


def test_reconciliation_without_answers_refused_not_evaluated(tmp_path):
    _, r = build(tmp_path, [], [server_row("1001")], [("1001", str(T), "10.00"), ("1002", str(T), "5.00")])
    refused = r["waterfall"][1]
    assert (refused["stage"], refused["status"], refused["orders"]) == ("refused", "not_evaluated", None)
    assert (r["server_accepted"], r["server_rejected"]) == (None, None)
    assert {b["stage"]: b["orders"] for b in r["waterfall"] if b["status"] == "evaluated"} == {
        "not_sent": 1, "counted_twice": 0, "unlikely_match": 0, "counted_once": 1}


def test_reconciliation_without_orders_not_evaluated():
    ds = Dataset.from_records([browser_row("1")], [server_row("1")])
    r = reconciliation.analyze(ds, Config(), {})
    assert r["status"] == "not_evaluated" and "orders" in r["reason"]


# -- matching, values, currencies -----------------------------------------------------------------------

def test_reconciliation_values_compared_as_decimals_one_cent(tmp_path):
    server = [server_row("1", value="10.01"), server_row("2", value="10.02"), server_row("3", value="12,00"),
              server_row("4", value="9.999"), server_row("5", value=None)]
    orders = [("1", str(T), "10.00"), ("2", str(T), "10.00"), ("3", str(T), "12.00"), ("4", str(T), "10"),
              ("5", str(T), "3.00"), ("6", str(T), "3.00")]
    ds, r = build(tmp_path, [], server, orders)
    assert r["value_mismatch"] == 3  # 10.02 (2 cents), "12,00" (not a number), none
    mism = {row["order_id"] for row in ds.query(reconciliation.order_table(ds)).to_pylist() if row["value_mismatch"]}
    assert mism == {"2", "3", "5"}


def test_reconciliation_earliest_server_purchase_value_is_compared(tmp_path):
    late = server_row("1", value="99.00")
    late["event_time"] = T + 100
    _, r = build(tmp_path, [], [late, server_row("1", value="10.00")], [("1", str(T), "10.00")])
    assert r["value_mismatch"] == 0


def test_reconciliation_currency_mismatch(tmp_path):
    _, r = build(tmp_path, [], [server_row("1", currency="usd"), server_row("2", currency="eur")],
                 [("1", str(T), "10.00"), ("2", str(T), "10.00")])
    assert r["currency_mismatch"] == 1


def test_reconciliation_purchases_without_order_counts_rows(tmp_path):
    _, r = build(tmp_path, [browser_row("1"), browser_row("777")],
                 [server_row("1"), server_row("888"), server_row("889")], [("1", str(T), "10.00")])
    assert r["purchases_without_order"] == {"browser": 1, "server": 2}


def test_reconciliation_lowercase_purchase_is_not_a_purchase(tmp_path):
    row = server_row("1")
    row["event_name"] = "purchase"
    _, r = build(tmp_path, [], [row], [("1", str(T), "10.00")])
    assert (r["server_purchase"], buckets(r)["not_sent"]) == (0, 1)


def test_reconciliation_order_key_event_id_config(tmp_path):
    row = server_row("X-1", event_id="1001")
    cfg = Config({"reconciliation": {"order_key": "event_id"}})
    _, r = build(tmp_path, [], [row], [("1001", str(T), "10.00")], config=cfg)
    assert r["order_key"] == {"browser": "event_id", "server": "event_id"}
    assert r["server_purchase"] == 1
    _, r2 = build(tmp_path, [], [row], [("1001", str(T), "10.00")])
    assert r2["order_key"] == {"browser": "event_id", "server": "order_id"}
    assert r2["server_purchase"] == 0


def test_reconciliation_bad_order_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="order_key"):
        build(tmp_path, [], [], [("1", str(T), "1")], config=Config({"reconciliation": {"order_key": "sku"}}))


# -- the orders import ------------------------------------------------------------------------------------

def test_orders_import_shopify_headers_line_items_and_hash_prefix(tmp_path):
    (tmp_path / "shopify.csv").write_text(
        "Name,Email,Financial Status,Created at,Currency,Total,Lineitem name,Billing Name,Phone\n"
        "#1001,a@example.com,paid,2026-11-18 10:00:00 +0100,EUR,10.00,Mug,Ann Lee,+4915112345678\n"
        "#1001,,,2026-11-18 10:00:00 +0100,,,Cup,,\n"
        "#1002,b@example.com,refunded,2026-11-18 11:00:00 +0100,EUR,20.50,Mug,Bo Li,\n", encoding="utf-8")
    ds = import_extras(Dataset.from_records([], [server_row("1001")]), orders=[tmp_path / "shopify.csv"])
    rep = ds.inputs["orders"]
    assert rep["dropped_columns"] == ["Email", "Lineitem name", "Billing Name", "Phone"]
    assert rep["file_reports"][0]["mapping"] == {"Name": "order_id", "Financial Status": "status",
                                                "Created at": "created_at", "Currency": "currency",
                                                "Total": "total"}
    rows = ds.db.fetchall("SELECT order_id, created_at, total, currency, status FROM capi_orders ORDER BY row_id")
    assert rows[0] == ("#1001", 1794992400, "10.00", "EUR", "paid")  # 09:00Z
    r = reconciliation.analyze(ds, Config(), {})
    assert (r["orders"], r["server_purchase"]) == (2, 1)
    assert r["waterfall"][0]["revenue"] == {"EUR": 20.5}  # not_sent: #1002


def test_orders_import_woocommerce_headers_jsonl(tmp_path):
    lines = [{"Order ID": "501", "Order Number": "W-501", "Order Date": "2026-11-18 09:00:00",
              "Order Total": "15.00", "Order Currency": "USD", "Billing Email": "c@example.com",
              "Billing Address 1": "1 Road"}]
    (tmp_path / "woo.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    ds = import_extras(Dataset.from_records([], []), orders=[Source("woo.jsonl", path=str(tmp_path / "woo.jsonl"))])
    assert ds.inputs["orders"]["dropped_columns"] == ["Billing Address 1", "Billing Email", "Order Number"]
    assert ds.db.fetchall("SELECT order_id, created_at, total, currency FROM capi_orders") == [
        ("501", 1794992400, "15.00", "USD")]  # no offset: UTC (--assume-tz)


def test_orders_import_rejects_counted_with_reasons(tmp_path):
    orders_csv(tmp_path / "o.csv", [("1", str(T), "1"), ("", str(T), "1"), ("3", "", "1"), ("4", "soon", "1"),
                                    ("5", "1", "1")])
    ds = import_extras(Dataset.from_records([], []), orders=[tmp_path / "o.csv"])
    rep = ds.inputs["orders"]
    assert (rep["rows_read"], rep["rows"], rep["rejected_rows"]) == (5, 1, 4)
    assert rep["rejected_reasons"] == {"order_id_empty": 1, "created_at_empty": 1, "created_at_unreadable": 1,
                                       "created_at_implausible": 1}
    assert [e["line"] for e in rep["file_reports"][0]["rejected_examples"]] == [3, 4, 5, 6]


def test_orders_import_missing_order_id_column_names_file_and_aliases(tmp_path):
    (tmp_path / "bad.csv").write_text("when,amount\n2026-11-18,1\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"orders export 'bad.csv': no column maps to order_id or created_at"):
        import_extras(Dataset.from_records([], []), orders=[tmp_path / "bad.csv"])


def test_orders_import_plan_key_changes_with_inputs(tmp_path):
    ds = Dataset.from_records([], [])
    before = ds.plan_key
    after = import_extras(ds, orders=[orders_csv(tmp_path / "o.csv", [("1", str(T), "1")])]).plan_key
    assert before != after
