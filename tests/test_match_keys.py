"""match_keys section: exact counts over tiny hand-built logs (duplicates included)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.diagnostics import FAILING_ROW_COLUMNS, match_keys
from capi_diag.engine.dataset import Dataset

T = 1_700_000_000
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
FBP = "fb.1.1596403881668.1116446470"


def h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ev(name: str, eid: str | None, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"event_name": name, "event_time": T, **kw}
    if eid is not None:
        rec["event_id"] = eid
    return rec


PURCHASE = ev("Purchase", "o1", em=[h("a@x.com")], ph=["+1 650 555 1212"], client_ip_address=["203.0.113.7"],
              client_user_agent=[CHROME], fbp=[FBP + ".AQQAAQIB"], external_id=["cust-1"],
              event_source_url="https://shop.example/checkout?fbclid=IwAR2F4abc")
SERVER = [
    PURCHASE,
    PURCHASE,  # the same event sent twice: duplicates count
    ev("Lead", "l1", em=[h("a@x.com").upper(), "b@x.com"], ge=[h("Female")], country=[h("USA"), h("us")],
       db=[h("1990-01-31")], client_ip_address=["10.0.0.1:80"], client_user_agent=["python-requests/2.31"],
       fbp=[FBP], fbc=["fb.1.1554763741205.iwar2f4abc"], event_source_url="https://shop.example/?fbclid=IwAR2F4abc"),
    ev("Lead", "l2", em=[h("")], ge=[h("f")], country=[h("us")], db=[h("19900131")],
       client_ip_address=["::ffff:192.168.0.1"], fbp=[h(FBP)], fbc=["IwAR2F4abc"]),
    ev("PageView", None, client_ip_address=["2001:db8::1"], client_user_agent=[CHROME]),
]
BROWSER = [
    ev("Purchase", "o1", fbp=[FBP], client_ip_address=["198.51.100.9"], client_user_agent=[CHROME],
       external_id=["cust-1"]),
    ev("Lead", "l1", fbp=["fb.1.1596403881668.999"], client_user_agent=["python-requests/2.31"]),
]


@pytest.fixture(scope="module")
def ds(on_engine) -> Dataset:
    return on_engine(Dataset.from_records(browser=BROWSER, server=SERVER))


@pytest.fixture(scope="module")
def result(ds: Dataset) -> dict[str, Any]:
    return match_keys.analyze(ds, Config(), {})


def nonzero(defects: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in defects.items() if v}


def test_match_keys_rows_include_duplicates(result):
    assert result["status"] == "evaluated"
    assert result["rows"] == 5


def test_match_keys_em_counts_and_defects(result):
    em = result["em"]
    assert (em["present"], em["valid"]) == (4, 2)
    assert em["coverage"] == 4 / 5 and em["valid_coverage"] == 2 / 5
    assert nonzero(em["defects"]) == {"unhashed": 1, "uppercase_hash": 1, "hashed_empty": 1}
    assert em["by_event_name"] == {"Lead": 0.0, "PageView": 0.0, "Purchase": 1.0}


def test_match_keys_ph_raw_is_unhashed_on_both_duplicate_rows(result):
    assert (result["ph"]["present"], result["ph"]["valid"]) == (2, 0)
    assert nonzero(result["ph"]["defects"]) == {"unhashed": 2}


def test_match_keys_closed_sets_not_normalized(result):
    assert (result["ge"]["present"], result["ge"]["valid"]) == (2, 1)
    assert nonzero(result["ge"]["defects"]) == {"not_normalized": 1}
    # a multi-valued cell with one bad value: present, not valid, one defect row
    assert (result["country"]["present"], result["country"]["valid"]) == (2, 1)
    assert nonzero(result["country"]["defects"]) == {"not_normalized": 1}
    assert (result["db"]["present"], result["db"]["valid"]) == (2, 1)
    assert nonzero(result["db"]["defects"]) == {"not_normalized": 1}


def test_match_keys_external_id_raw_is_valid_with_warning(result):
    x = result["external_id"]
    assert (x["present"], x["valid"]) == (2, 2)
    assert nonzero(x["defects"]) == {"unhashed": 2}


def test_match_keys_context_keys(result):
    assert (result["fbp"]["present"], result["fbp"]["valid"]) == (4, 3)
    assert nonzero(result["fbp"]["defects"]) == {"hashed": 1}
    fbc = result["fbc"]
    assert (fbc["present"], fbc["valid"]) == (2, 1)
    assert nonzero(fbc["defects"]) == {"malformed": 1, "missing_with_fbclid": 2, "modified_fbclid": 1}
    ip = result["client_ip_address"]
    assert (ip["present"], ip["valid"]) == (5, 3)
    assert nonzero(ip["defects"]) == {"malformed": 1, "private": 1}
    ua = result["client_user_agent"]
    assert (ua["present"], ua["valid"]) == (4, 3)
    assert nonzero(ua["defects"]) == {"non_browser": 1}


def test_match_keys_absent_column_reported(result):
    assert result["zp"]["in_log"] is False
    assert (result["zp"]["present"], result["zp"]["coverage"], result["zp"]["valid_coverage"]) == (0, 0.0, 0.0)
    assert result["em"]["in_log"] is True


def test_match_keys_every_field_has_the_contract_shape(result):
    for f in match_keys.FIELDS:
        assert {"present", "valid", "coverage", "valid_coverage", "defects", "by_event_name"} <= set(result[f])


def test_match_keys_paired_mismatch_compares_earliest_rows(result):
    pm = result["paired_mismatch"]
    assert pm["paired_keys"] == 2
    gaps = {"browser_only": 0, "server_only": 0}
    assert pm["fields"]["fbp"] == {"compared": 2, "mismatched": 1, "mismatch_rate": 0.5, **gaps}
    assert pm["fields"]["client_ip_address"] == {"compared": 1, "mismatched": 1, "mismatch_rate": 1.0,
                                                 "browser_only": 0, "server_only": 1}
    assert pm["fields"]["client_user_agent"] == {"compared": 2, "mismatched": 0, "mismatch_rate": 0.0, **gaps}
    assert pm["fields"]["external_id"] == {"compared": 1, "mismatched": 0, "mismatch_rate": 0.0, **gaps}
    assert "fbp.paired_gap" not in result["examples"]


def test_match_keys_examples_are_masked_and_named(result):
    ex = result["examples"]
    assert list(ex)[:3] == ["em.unhashed", "em.uppercase_hash", "em.hashed_empty"]
    row = ex["em.unhashed"][0]
    assert row["event_id"] == "l1" and row["line"] == 4
    assert "b@x.com" not in row["value"] and "b***@x.com" in row["value"]
    assert len(ex["ph.unhashed"]) == 2 and "555" not in ex["ph.unhashed"][0]["value"]


def test_match_keys_repeated_values_thresholds():
    server = [ev("Lead", str(i), em=[h("test@test.com")], client_ip_address=["198.51.100.1"]) for i in range(4)]
    server.append(ev("Lead", "x", em=[h("real@x.com")], client_ip_address=["198.51.100.2"]))
    ds = Dataset.from_records(server=server)
    cfg = Config.from_text("[match_keys]\nrepeated_value_min_rows = 4\nrepeated_value_min_share = 0.8\n")
    reps = match_keys.analyze(ds, cfg, {})["repeated_values"]
    assert [(r["field"], r["rows"], r["share"]) for r in reps] == [
        ("em", 4, 0.8), ("client_ip_address", 4, 0.8)]
    cfg = Config.from_text("[match_keys]\nrepeated_value_min_rows = 5\n")
    assert match_keys.analyze(ds, cfg, {})["repeated_values"] == []


def test_match_keys_repeated_value_counts_a_row_once():
    server = [ev("Lead", str(i), em=[h("x@x.com"), h("x@x.com")]) for i in range(2)]
    ds = Dataset.from_records(server=server)
    cfg = Config.from_text("[match_keys]\nrepeated_value_min_rows = 2\nrepeated_value_min_share = 1.0\n")
    assert [r["rows"] for r in match_keys.analyze(ds, cfg, {})["repeated_values"]] == [2]


def test_match_keys_empty_server_log_not_evaluated():
    ds = Dataset.from_records(browser=BROWSER, server=[])
    r = match_keys.analyze(ds, Config(), {})
    assert r["status"] == "not_evaluated" and r["rows"] == 0
    assert r["em"]["coverage"] is None and r["em"]["valid_coverage"] is None
    assert r["paired_mismatch"] is None
    assert match_keys.explain(r)[0]["value"] is None


def test_match_keys_failing_rows_severity(ds):
    rows = ds.query(match_keys.failing_rows(ds, Config())).to_pylist()
    assert all(list(r) == list(FAILING_ROW_COLUMNS) for r in rows)
    got = sorted((r["event_id"] or "-", r["detail"], r["finding"], r["severity"]) for r in rows)
    expected = sorted([
        ("o1", "ph", "unhashed", "error"), ("o1", "ph", "unhashed", "error"),
        ("o1", "fbc", "missing_with_fbclid", "warning"), ("o1", "fbc", "missing_with_fbclid", "warning"),
        ("o1", "external_id", "unhashed", "warning"), ("o1", "external_id", "unhashed", "warning"),
        ("l1", "em", "unhashed", "error"), ("l1", "em", "uppercase_hash", "warning"),
        ("l1", "ge", "not_normalized", "warning"), ("l1", "country", "not_normalized", "warning"),
        ("l1", "db", "not_normalized", "warning"), ("l1", "client_ip_address", "malformed", "warning"),
        ("l1", "client_user_agent", "non_browser", "warning"), ("l1", "fbc", "modified_fbclid", "warning"),
        ("l2", "em", "hashed_empty", "warning"), ("l2", "fbp", "hashed", "error"),
        ("l2", "fbc", "malformed", "error"), ("l2", "client_ip_address", "private", "warning"),
    ])
    assert got == expected
    assert {r["section"] for r in rows} == {"match_keys"} and {r["role"] for r in rows} == {"server"}


def test_match_keys_explain_names_defects_with_fixes(result):
    entries = match_keys.explain(result)
    labels = {e["label"]: e for e in entries}
    assert labels["Email (em): valid coverage"]["value"] == 2 / 5
    assert "(error)" in labels["Phone sent unhashed"]["text"] and labels["Phone sent unhashed"]["fix"]
    assert labels["IP address differs between browser and server"]["value"] == 1
    assert labels["Browser ID (fbp) differs between browser and server"]["value"] == 1
    assert all({"label", "value", "text", "fix"} <= set(e) for e in entries)


@pytest.mark.parametrize(("toml", "match"), [
    ("[match_keys]\nrepeated_value_fields = ['email']\n", "unknown field"),
    ("[match_keys]\nexamples = -1\n", "whole number"),
    ("[match_keys]\nrepeated_value_min_share = 2.0\n", "between 0 and 1"),
    ("[match_keys]\nexampels = 3\n", "Did you mean 'examples'"),
])
def test_match_keys_config_errors_name_the_key(toml, match):
    ds = Dataset.from_records(server=[ev("Lead", "1")])
    with pytest.raises(ConfigError, match=match):
        match_keys.analyze(ds, Config.from_text(toml), {})
