from __future__ import annotations

import hashlib

import pytest

from capi_diag.core.config import Config
from capi_diag.diagnostics import FAILING_ROW_COLUMNS, contract
from capi_diag.engine.dataset import Dataset

T = 1_700_000_000


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


H = sha("someone@example.com")
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
OK = {"action_source": "website", "event_source_url": "https://shop.example/", "em": [H]}
"""Fields that keep a row clear of the rules not under test."""


def srv(**kw):
    return {"event_name": "ViewContent", "event_time": T, **OK, **kw}


def run(server, browser=(), text=""):
    ds = Dataset.from_records(browser=browser, server=server)
    return contract.analyze(ds, Config.from_text(text), {})


VALUE_CASES = [
    ("129.95", 0), (" 12.50 ", 0), ("+3", 0), ("-0.5", 0), ("10", 0), ("1000.0", 0), ("7\n", 0),
    ("129,95", 1), ("€10", 1), ("1e3", 1), (".5", 1), ("5.", 1), ("1 000", 1), ("ten", 1), ("0x10", 1),
    ("--1", 1), ("", 0),
]
CURRENCY_CASES = [
    ("USD", 0), ("usd", 0), ("Eur", 0), ("JPY", 0), (" USD", 1), ("US", 1), ("EURO", 1), ("€", 1),
    ("XXX", 1), ("XTS", 1), ("ABC", 1),
]
SOURCE_CASES = [
    ("website", 0), ("app", 0), ("physical_store", 0), ("business_messaging", 0),
    ("Website", 1), (" website", 1), ("web", 1), (None, 1),
]
NAME_CASES = [
    ("purchase", 1), ("add_to_cart", 1), ("Add_To_Cart", 1), ("PAGEVIEW", 1), ("AddToCart", 0),
    ("Purchase", 0), ("Purchase ", 0), ("MyEvent", 0), ("add-to-cart", 0),
]
GE_F = sha("f")
COUNTRY_US = sha("us")
DB = sha("19970216")
LOWER = sha("x")
USER_DATA_CASES = [
    ({}, 1),                                                     # no key at all
    ({"ge": [GE_F]}, 1),
    ({"fn": [LOWER], "ge": [GE_F]}, 1),                          # fn+ge
    ({"ln": [LOWER], "ge": [GE_F]}, 1),                          # ln+ge
    ({"db": [DB], "client_user_agent": [UA]}, 1),                # db+client_user_agent
    ({"ct": [LOWER], "country": [COUNTRY_US], "st": [LOWER], "zp": [LOWER], "ge": [GE_F],
      "client_user_agent": [UA]}, 1),                            # the whole address combination
    ({"fn": [LOWER], "ln": [LOWER], "ge": [GE_F]}, 0),           # fn+ln is in no single combination
    ({"db": [DB], "ge": [GE_F]}, 0),
    ({"em": [H]}, 0),
    ({"lead_id": ["123"]}, 0),                                   # no format rule: present = valid
    ({"em": ["someone@example.com"], "ge": [GE_F]}, 1),          # raw email is not a valid key
    ({"em": ["someone@example.com", H], "fn": [LOWER], "ge": [GE_F]}, 1),  # one bad value spoils the cell
    ({"ge": [sha("female")], "em": [H.upper()]}, 1),             # not normalized ge, uppercase em
    ({"em": [H + ".AQQCAQIB"], "ge": [GE_F]}, 0),                # appendix-suffixed hash is valid
    ({"em": [H + ".Ag"]}, 0),                                    # legacy 2-character appendix
    ({"client_ip_address": ["2001:db8::1"], "client_user_agent": [UA]}, 0),  # IPv6 + UA
    ({"client_ip_address": ["10.0.0.1"], "client_user_agent": [UA]}, 1),     # private IP is not valid
    ({"em": [" " + H], "ge": [GE_F]}, 1),                        # a stray space makes the hash invalid
]


def _cases() -> list[tuple[str, dict, str, int]]:
    """``(event_id, row, rule, expected)``: one server row per case, each clear of the other rules."""
    out = []
    for i, (value, bad) in enumerate(VALUE_CASES):
        out.append((f"value{i}", srv(value=value), "value_not_numeric", bad))
    for i, (currency, bad) in enumerate(CURRENCY_CASES):
        out.append((f"currency{i}", srv(currency=currency), "currency_invalid", bad))
    for i, (source, bad) in enumerate(SOURCE_CASES):
        url = {"event_source_url": "https://x.example/"}
        out.append((f"source{i}", srv(action_source=source, **url), "action_source_invalid", bad))
    for i, (name, bad) in enumerate(NAME_CASES):
        extra = {"value": "1", "currency": "EUR"} if name == "Purchase" else {}
        out.append((f"name{i}", srv(event_name=name, **extra), "nonstandard_event_name", bad))
    for i, (user_data, bad) in enumerate(USER_DATA_CASES):
        row = {"event_name": "Lead", "event_time": T, "action_source": "website",
               "event_source_url": "https://x.example/", **user_data}
        out.append((f"user{i}", row, "insufficient_user_data", bad))
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def table_driven():
    """One server log holding every case, analyzed once (the suite stays fast)."""
    ds = Dataset.from_records(server=[dict(row, event_id=eid) for eid, row, _, _ in CASES])
    flags = ds.query(contract.annotate(ds)).to_pandas().set_index("event_id")
    return flags, contract.analyze(ds, Config(), {})


@pytest.mark.parametrize("eid, rule, expected", [(e, r, x) for e, _, r, x in CASES],
                         ids=[e for e, _, _, _ in CASES])
def test_contract_rule_flags_each_case_exactly(table_driven, eid, rule, expected):
    flags, _ = table_driven
    row = flags.loc[eid]
    assert bool(row[rule]) is bool(expected)
    others = [r for r in contract.ROW_RULES if r != rule and bool(row[r])]
    assert others == []


def test_contract_rule_totals_match_the_cases(table_driven):
    _, r = table_driven
    for rule in ("value_not_numeric", "currency_invalid", "action_source_invalid", "nonstandard_event_name",
                 "insufficient_user_data"):
        assert r[rule] == sum(x for _, _, ru, x in CASES if ru == rule), rule
    assert r["server_rows"] == len(CASES)
    assert r["nonstandard_names"] == {
        "Add_To_Cart": {"rows": 1, "standard": "AddToCart"}, "PAGEVIEW": {"rows": 1, "standard": "PageView"},
        "add_to_cart": {"rows": 1, "standard": "AddToCart"}, "purchase": {"rows": 1, "standard": "Purchase"}}
    assert r["invalid_values"]["action_source"]["(missing)"] == 1
    assert r["invalid_values"]["currency"]["XXX"] == 1


def test_contract_purchase_missing_url_and_test_code_exact_counts():
    r = run([
        srv(event_name="Purchase"),                              # value and currency missing
        srv(event_name="Purchase", value="  ", currency="USD"),  # whitespace-only value is empty
        srv(event_name="Purchase", value="3", currency=""),
        srv(event_name="purchase"),                              # casing variant: not a Purchase check
        srv(event_name="Purchase", value="1", currency="EUR", event_source_url=None),
        srv(event_source_url=" "),
        srv(action_source="app", event_source_url=None),         # not a website event
        srv(action_source=None, event_source_url=None),
        srv(test_event_code="TEST123"), srv(test_event_code="  "), srv(test_event_code="X"),
    ])
    assert r["purchase_rows"] == 4
    assert r["purchase_missing_value"] == 2
    assert r["purchase_missing_currency"] == 2
    assert r["nonstandard_event_name"] == 1
    assert r["event_source_url_missing"] == 2
    assert r["website_rows"] == 9
    assert r["test_event_code_present"] == 2
    assert r["action_source_invalid"] == 1
    assert r["by_event_name"]["Purchase"]["purchase_missing_value"] == 2
    assert r["by_event_name"]["Purchase"]["rows"] == 4


def test_contract_clean_rows_count_zero_everywhere():
    r = run([srv(event_name="Purchase", value="10.50", currency="EUR"), srv()])
    assert r["server_rows"] == 2 and r["purchase_rows"] == 1
    assert {k: r[k] for k in contract.ROW_RULES} == dict.fromkeys(contract.ROW_RULES, 0)


def paired(eid, b_value, s_value, name="Purchase", s_time=T):
    b = {"event_name": name, "event_id": eid, "event_time": T, "value": b_value}
    s = srv(event_name=name, event_id=eid, event_time=s_time, value=s_value, currency="EUR")
    return b, s


def test_contract_value_mismatch_rounds_to_cents_as_decimals_on_earliest_rows():
    pairs = [
        paired("a", "10.004", "10.00"),    # both 10.00
        paired("b", "10.005", "10.00"),    # 10.01 vs 10.00: mismatch (half away from zero)
        paired("c", "-10.005", "-10.01"),  # both -10.01
        paired("d", "10", " 10.00 "),      # equal as decimals
        paired("e", "0.1", "0.10000000000000000555"),  # a float would differ; decimals agree
        paired("f", "99.99", "100"),       # mismatch
        paired("g", "12,50", "12.50"),     # browser not numeric: not compared
        paired("h", "5", "6", name="purchase"),  # not exactly Purchase
        paired("i", "5", "6", s_time=T + 172_801),  # outside the 48 h window: not paired
        paired("j", "1.999", "2"),         # 2.00 vs 2.00
        paired("k", "5", "5", s_time=T + 172_800),  # exactly 48 h apart: paired, equal
    ]
    browser = [b for b, _ in pairs]
    server = [s for _, s in pairs]
    # a later browser copy and an earlier server copy of "o": the earliest rows (5 and 5) are compared
    browser += [{"event_name": "Purchase", "event_id": "o", "event_time": T, "value": "5"},
                {"event_name": "Purchase", "event_id": "o", "event_time": T + 5, "value": "7"}]
    server += [srv(event_name="Purchase", event_id="o", event_time=T + 9, value="7", currency="EUR"),
               srv(event_name="Purchase", event_id="o", event_time=T + 1, value="5", currency="EUR")]
    r = run(server, browser)
    assert r["value_pairs_compared"] == 9
    assert r["value_mismatch"] == 2
    ex = r["examples"]["value_mismatch"]
    assert sorted(e["event_id"] for e in ex) == ["b", "f"]
    assert {e["event_id"]: (e["browser_cents"], e["server_cents"]) for e in ex} == {
        "b": ("10.01", "10.00"), "f": ("99.99", "100.00")}


def test_contract_value_mismatch_null_without_browser_value_column():
    b, s = paired("a", "1", "2")
    del b["value"]
    r = run([s], [b])
    assert r["value_mismatch"] is None and r["value_pairs_compared"] is None


def test_contract_empty_server_log_counts_zero():
    r = run([])
    assert r["server_rows"] == 0 and r["status"] == "not_evaluated"
    assert r["insufficient_user_data"] == 0 and r["by_event_name"] == {}


def test_contract_examples_limited_earliest_first_and_masked():
    rows = [srv(value="x", event_time=T + 10 - i, event_id=str(i)) for i in range(4)]
    rows.append({"event_name": "Lead", "event_time": T, "action_source": "website", "event_source_url": "u",
                 "em": ["jane@example.com"], "ge": [GE_F], "event_id": "pii"})
    r = run(rows, text="[contract]\nexamples = 2\n")
    assert [e["event_id"] for e in r["examples"]["value_not_numeric"]] == ["3", "2"]
    assert r["examples"]["value_not_numeric"][0]["detail"] == "value x"
    [ex] = r["examples"]["insufficient_user_data"]
    assert "jane" not in str(ex)
    assert ex["detail"] == "valid keys: ge"
    assert r["examples"]["currency_invalid"] == []


def test_contract_failing_rows_one_row_per_rule_and_row():
    b, s = paired("p", "1", "2")
    server = [s, srv(event_name="purchase", value="1,5", test_event_code="T1", action_source=None)]
    ds = Dataset.from_records(browser=[b], server=server)
    df = ds.query(contract.failing_rows(ds, Config())).to_pandas()
    assert list(df.columns) == list(FAILING_ROW_COLUMNS)
    assert sorted(df.finding) == ["action_source_invalid", "nonstandard_event_name",
                                  "test_event_code_present",
                                  "value_mismatch", "value_not_numeric"]
    mismatch = df[df.finding == "value_mismatch"].iloc[0]
    assert (mismatch.severity, mismatch.event_id, mismatch.line) == ("warning", "p", 2)
    assert mismatch.detail == "browser 1.00 vs server 2.00"


def test_contract_explain_covers_every_rule(table_driven):
    _, r = table_driven
    entries = contract.explain(r)
    assert [e["value"] for e in entries] == [r[k] for k in contract.RULES]
    assert all(e["text"] and e["fix"] for e in entries)
