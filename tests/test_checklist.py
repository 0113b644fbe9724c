from __future__ import annotations

import copy

import pytest

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.report import worst_status
from capi_diag.verdict import checklist

FIELDS = ("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id", "fbp", "fbc",
          "client_ip_address", "client_user_agent")

IDS = [
    "journey_complete", "event_name_casing", "action_source", "event_source_url", "test_event_code",
    "event_time_unit", "freshness_stale", "freshness_future", "delivery_delay", "event_ids_present",
    "event_id_reuse", "duplicate_server_sends", "pairing_rate", "timing_skew", "consent", "unhashed_pii",
    "no_personal_data_outside_user_data", "hashed_context_keys", "context_key_format", "hash_quality",
    "insufficient_user_data", "coverage_em", "coverage_ph", "coverage_external_id", "coverage_fbp",
    "coverage_fbc", "coverage_client_ip_address", "coverage_client_user_agent", "emq_estimate",
    "purchase_value_currency", "purchase_value_match", "orders_reach_meta", "server_sends_accepted",
    "order_values_match",
]


def healthy() -> dict:
    """Sections of a setup where every item passes: 200 browser and 200 server rows."""
    steps = ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]
    return {
        "dedup": {"status": "evaluated", "browser_rows": 200, "server_rows": 200, "pairing_rate": 1.0,
                  "paired": 200, "outside_window": 0, "browser_only": 0, "server_only": 0,
                  "browser_missing_event_id": 0, "server_missing_event_id": 0, "duplicate_server_rows": 0,
                  "reused_event_id": 0, "name_case_mismatch": 0},
        "timing": {"status": "evaluated", "server_rows": 200, "event_time_in_ms": 0, "event_time_in_us": 0,
                   "stale_over_7d": 0, "future": 0, "delivery_delay_p95_s": 5.0, "skew_p95_abs_s": 2.0},
        "match_keys": {"status": "evaluated", "rows": 200,
                       **{f: {"present": 200, "valid": 200, "coverage": 1.0, "valid_coverage": 1.0,
                              "defects": {}} for f in FIELDS}},
        "emq": {"status": "evaluated", "estimate": 8.2, "band": "great", "priorities": [{"field": "ph"}]},
        "consent": {"status": "evaluated", "server_rows": 200, "forwarded_without_consent": 0,
                    "consent_unknown": 0},
        "contract": {"server_rows": 200, "purchase_rows": 20, **dict.fromkeys(
            ("purchase_missing_value", "purchase_missing_currency", "value_not_numeric", "currency_invalid",
             "value_mismatch", "action_source_invalid", "event_source_url_missing", "nonstandard_event_name",
             "test_event_code_present", "insufficient_user_data"), 0),
            "value_pairs_compared": 20, "nonstandard_names": {}},
        "journey": {"steps": steps, "browser_rows": 200, "server_rows": 200,
                    "missing": {"browser": [], "server": []}},
        "delivery": {"status": "evaluated", "rows_sent": 20, "accepted": 20, "rejected": 0, "rejected_by_code": []},
        "reconciliation": {"status": "evaluated", "orders": 20, "server_purchase": 20, "value_mismatch": 0,
                           "currency_mismatch": 0, "waterfall": [
                               {"stage": "not_sent", "status": "evaluated", "orders": 0},
                               {"stage": "refused", "status": "evaluated", "orders": 0},
                               {"stage": "counted_twice", "status": "evaluated", "orders": 0},
                               {"stage": "unlikely_match", "status": "evaluated", "orders": 0},
                               {"stage": "counted_once", "status": "evaluated", "orders": 20}]},
        "privacy": {"status": "evaluated", "personal_data_rows": 0},
    }


def status_of(sections, item_id, config=None):
    return {i["id"]: i for i in checklist.build(sections, config)}[item_id]


def with_(path: str, value):
    s = copy.deepcopy(healthy())
    keys = path.split(".")
    target = s
    for k in keys[:-1]:
        target = target.setdefault(k, {})
    target[keys[-1]] = value
    return s


def test_checklist_healthy_setup_all_pass_in_stable_order():
    items = checklist.build(healthy(), Config())
    assert [i["id"] for i in items] == IDS
    assert {i["status"] for i in items} == {"pass"}
    for i in items:
        assert set(i) == {"id", "title", "status", "observed", "threshold", "fix", "explanation", "page",
                          "unit", "details"}
        assert i["page"] in checklist.PAGES and i["unit"] in checklist.UNITS
        assert i["title"] and i["fix"] and i["explanation"] and i["threshold"]


@pytest.mark.parametrize("path, value, item, expected", [
    # shares with warn_below / fail_below: the threshold value itself passes
    ("dedup.pairing_rate", 0.75, "pairing_rate", "pass"),
    ("dedup.pairing_rate", 0.7499, "pairing_rate", "warn"),
    ("dedup.pairing_rate", 0.5, "pairing_rate", "warn"),
    ("dedup.pairing_rate", 0.4999, "pairing_rate", "fail"),
    ("dedup.pairing_rate", None, "pairing_rate", "not_evaluated"),
    ("match_keys.em.valid_coverage", 0.5, "coverage_em", "pass"),
    ("match_keys.em.valid_coverage", 0.4999, "coverage_em", "warn"),
    ("match_keys.em.valid_coverage", 0.0, "coverage_em", "warn"),
    ("match_keys.ph.valid_coverage", 0.3, "coverage_ph", "pass"),
    ("match_keys.ph.valid_coverage", 0.2999, "coverage_ph", "warn"),
    ("match_keys.external_id.valid_coverage", 0.7999, "coverage_external_id", "warn"),
    ("match_keys.fbp.valid_coverage", 0.8, "coverage_fbp", "pass"),
    ("match_keys.fbc.valid_coverage", 0.0, "coverage_fbc", "pass"),
    ("match_keys.client_ip_address.valid_coverage", 0.95, "coverage_client_ip_address", "pass"),
    ("match_keys.client_ip_address.valid_coverage", 0.9499, "coverage_client_ip_address", "warn"),
    ("match_keys.client_ip_address.valid_coverage", 0.5, "coverage_client_ip_address", "warn"),
    ("match_keys.client_ip_address.valid_coverage", 0.4999, "coverage_client_ip_address", "fail"),
    ("match_keys.client_user_agent.valid_coverage", 0.4999, "coverage_client_user_agent", "fail"),
    ("match_keys.client_user_agent.valid_coverage", None, "coverage_client_user_agent", "not_evaluated"),
    ("emq.estimate", 6.0, "emq_estimate", "pass"),
    ("emq.estimate", 5.99, "emq_estimate", "warn"),
    ("emq.estimate", 0.5, "emq_estimate", "warn"),
    ("emq.estimate", None, "emq_estimate", "not_evaluated"),
    # seconds with warn_above / fail_above
    ("timing.skew_p95_abs_s", 300.0, "timing_skew", "pass"),
    ("timing.skew_p95_abs_s", 300.5, "timing_skew", "warn"),
    ("timing.skew_p95_abs_s", 3600, "timing_skew", "warn"),
    ("timing.skew_p95_abs_s", 3601, "timing_skew", "fail"),
    ("timing.skew_p95_abs_s", None, "timing_skew", "not_evaluated"),
    ("timing.delivery_delay_p95_s", 3600.0, "delivery_delay", "pass"),
    ("timing.delivery_delay_p95_s", 3600.5, "delivery_delay", "warn"),
    ("timing.delivery_delay_p95_s", None, "delivery_delay", "not_evaluated"),
    # counts: any is a failure (or a warning)
    ("timing.event_time_in_ms", 1, "event_time_unit", "fail"),
    ("timing.event_time_in_us", 1, "event_time_unit", "fail"),
    ("timing.stale_over_7d", 1, "freshness_stale", "fail"),
    ("timing.stale_over_7d", None, "freshness_stale", "not_evaluated"),
    ("timing.future", 1, "freshness_future", "warn"),
    ("timing.future", None, "freshness_future", "not_evaluated"),
    ("dedup.reused_event_id", 1, "event_id_reuse", "fail"),
    ("dedup.name_case_mismatch", 1, "event_name_casing", "fail"),
    ("contract.nonstandard_event_name", 1, "event_name_casing", "fail"),
    ("contract.action_source_invalid", 1, "action_source", "fail"),
    ("contract.event_source_url_missing", 1, "event_source_url", "fail"),
    ("contract.test_event_code_present", 1, "test_event_code", "fail"),
    ("contract.insufficient_user_data", 1, "insufficient_user_data", "fail"),
    ("contract.purchase_missing_value", 1, "purchase_value_currency", "fail"),
    ("contract.purchase_missing_currency", 1, "purchase_value_currency", "fail"),
    ("contract.value_not_numeric", 1, "purchase_value_currency", "fail"),
    ("contract.currency_invalid", 1, "purchase_value_currency", "fail"),
    ("contract.value_mismatch", 1, "purchase_value_match", "warn"),
    ("contract.value_pairs_compared", 0, "purchase_value_match", "not_evaluated"),
    ("contract.value_mismatch", None, "purchase_value_match", "not_evaluated"),
    ("consent.forwarded_without_consent", 1, "consent", "fail"),
    ("consent.consent_unknown", 1, "consent", "warn"),
    ("journey.missing", {"browser": [], "server": ["AddToCart"]}, "journey_complete", "fail"),
    ("match_keys.em.defects", {"unhashed": 1}, "unhashed_pii", "fail"),
    ("privacy.personal_data_rows", 5, "no_personal_data_outside_user_data", "fail"),
    ("match_keys.country.defects", {"unhashed": 3}, "unhashed_pii", "fail"),
    ("match_keys.external_id.defects", {"unhashed": 5}, "unhashed_pii", "warn"),
    ("match_keys.fbp.defects", {"hashed": 1}, "hashed_context_keys", "fail"),
    ("match_keys.client_user_agent.defects", {"hashed": 1}, "hashed_context_keys", "fail"),
    ("match_keys.fbc.defects", {"malformed": 1}, "context_key_format", "fail"),
    ("match_keys.client_ip_address.defects", {"private": 1}, "context_key_format", "warn"),
    ("match_keys.client_user_agent.defects", {"non_browser": 2}, "context_key_format", "warn"),
    ("match_keys.fbc.defects", {"missing_with_fbclid": 1}, "coverage_fbc", "warn"),
    ("match_keys.ge.defects", {"not_normalized": 1}, "hash_quality", "warn"),
    ("match_keys.em.defects", {"uppercase_hash": 1}, "hash_quality", "warn"),
    ("match_keys.em.defects", {"hashed_empty": 1}, "hash_quality", "warn"),
])
def test_checklist_item_status_at_and_beyond_each_boundary(path, value, item, expected):
    assert status_of(with_(path, value), item)["status"] == expected


@pytest.mark.parametrize("missing, share_missing, expected", [
    (0, 0.0, "pass"), (1, 1 / 400, "warn"), (40, 0.1, "warn"), (41, 41 / 400, "fail"),
])
def test_checklist_event_ids_present_share_of_both_logs(missing, share_missing, expected):
    s = with_("dedup.server_missing_event_id", missing)
    item = status_of(s, "event_ids_present")
    assert (item["status"], item["observed"]) == (expected, share_missing)


@pytest.mark.parametrize("dupes, expected", [(0, "pass"), (1, "warn"), (10, "warn"), (11, "fail")])
def test_checklist_duplicate_server_sends_share_of_server_rows(dupes, expected):
    item = status_of(with_("dedup.duplicate_server_rows", dupes), "duplicate_server_sends")
    assert item["status"] == expected
    assert item["observed"] == dupes / 200


def test_checklist_consent_fail_outranks_unknown():
    s = with_("consent.forwarded_without_consent", 2)
    s["consent"]["consent_unknown"] = 7
    item = status_of(s, "consent")
    assert (item["status"], item["observed"]) == ("fail", 2)
    assert item["details"] == {"forwarded_without_consent": 2, "consent_unknown": 7}


def test_checklist_consent_not_evaluated_without_consent_column():
    s = with_("consent", {"status": "not_evaluated", "reason": "The server log has no consent column.",
                          "forwarded_without_consent": None, "consent_unknown": None})
    item = status_of(s, "consent")
    assert item["status"] == "not_evaluated" and item["observed"] is None
    assert "no consent column" in item["explanation"]


def test_checklist_unhashed_counts_fields_and_lists_them():
    s = with_("match_keys.em.defects", {"unhashed": 2})
    s["match_keys"]["ph"]["defects"] = {"unhashed": 1}
    s["match_keys"]["external_id"]["defects"] = {"unhashed": 4}
    item = status_of(s, "unhashed_pii")
    assert (item["status"], item["observed"]) == ("fail", 7)
    assert item["details"] == {"fail": {"em.unhashed": 2, "ph.unhashed": 1},
                               "warn": {"external_id.unhashed": 4}}


def test_checklist_every_item_judged_when_everything_fails():
    s = healthy()
    s["dedup"].update(pairing_rate=0.1, reused_event_id=3, duplicate_server_rows=50,
                      server_missing_event_id=100)
    s["contract"].update(test_event_code_present=5, action_source_invalid=5, purchase_missing_value=1)
    s["consent"]["forwarded_without_consent"] = 9
    s["emq"]["estimate"] = 2.0
    items = checklist.build(s, Config())
    assert [i["id"] for i in items] == IDS
    statuses = {i["id"]: i["status"] for i in items}
    assert [k for k, v in statuses.items() if v == "fail"] == [
        "action_source", "test_event_code", "event_ids_present", "event_id_reuse", "duplicate_server_sends",
        "pairing_rate", "consent", "purchase_value_currency"]
    assert statuses["emq_estimate"] == "warn"
    assert worst_status({"checklist": items}) == "fail"


def test_checklist_empty_logs_all_not_evaluated_never_pass():
    s = healthy()
    for sec in s.values():
        for k in ("browser_rows", "server_rows"):
            if k in sec:
                sec[k] = 0
    items = checklist.build(s, Config())
    assert {i["status"] for i in items} == {"not_evaluated"}
    assert all(i["observed"] is None for i in items)
    assert worst_status({"checklist": items}) is None


def test_checklist_no_sections_all_not_evaluated():
    assert {i["status"] for i in checklist.build({}, None)} == {"not_evaluated"}


def test_checklist_empty_browser_log_only_browser_items_not_evaluated():
    s = healthy()
    s["journey"]["browser_rows"] = 0
    statuses = {i["id"]: i["status"] for i in checklist.build(s, Config())}
    assert {k for k, v in statuses.items() if v == "not_evaluated"} == {
        "journey_complete", "event_ids_present", "pairing_rate", "timing_skew", "purchase_value_match"}
    assert statuses["coverage_em"] == "pass"


def test_checklist_missing_section_only_its_items_not_evaluated():
    s = healthy()
    del s["timing"]
    statuses = {i["id"]: i["status"] for i in checklist.build(s, Config())}
    assert {k for k, v in statuses.items() if v == "not_evaluated"} == {
        "event_time_unit", "freshness_stale", "freshness_future", "delivery_delay", "timing_skew"}


@pytest.mark.parametrize("not_sent, refused, expected", [(1, 0, "pass"), (0, 1, "pass"), (1, 1, "fail")])
def test_checklist_orders_reach_meta_fails_below_95_percent(not_sent, refused, expected):
    s = healthy()
    wf = s["reconciliation"]["waterfall"]
    wf[0]["orders"], wf[1]["orders"], wf[4]["orders"] = not_sent, refused, 20 - not_sent - refused
    item = status_of(s, "orders_reach_meta")
    assert (item["status"], item["observed"]) == (expected, (20 - not_sent - refused) / 20)


def test_checklist_orders_items_not_evaluated_without_orders_or_answers():
    s = healthy()
    del s["reconciliation"], s["delivery"]
    statuses = {i["id"]: i["status"] for i in checklist.build(s, Config())}
    assert {k for k, v in statuses.items() if v == "not_evaluated"} == {
        "orders_reach_meta", "server_sends_accepted", "order_values_match"}


def test_checklist_any_rejected_send_fails_and_value_mismatch_warns():
    s = healthy()
    s["delivery"].update(rejected=2, rejected_by_code=[{"code": 190, "subcode": 463, "rows": 2}])
    s["reconciliation"]["value_mismatch"] = 1
    assert status_of(s, "server_sends_accepted")["status"] == "fail"
    assert status_of(s, "server_sends_accepted")["details"] == {"190/463": 2}
    assert status_of(s, "order_values_match")["status"] == "warn"


def test_checklist_thresholds_overridden_per_item_key_by_key():
    config = Config.from_text("[checklist.pairing_rate]\nwarn_below = 0.9\n"
                              "[checklist.coverage_em]\nfail_below = 0.4\n")
    s = with_("dedup.pairing_rate", 0.85)
    s["match_keys"]["em"]["valid_coverage"] = 0.39
    items = {i["id"]: i for i in checklist.build(s, config)}
    assert items["pairing_rate"]["status"] == "warn"
    assert items["pairing_rate"]["threshold"] == "warn if < 90.0 %, fail if < 50.0 %"
    assert items["coverage_em"]["status"] == "fail"
    assert checklist.thresholds(config)["coverage_em"] == {"warn_below": 0.5, "fail_below": 0.4}


def test_checklist_threshold_text_for_defaults():
    items = {i["id"]: i for i in checklist.build(healthy(), Config())}
    assert items["test_event_code"]["threshold"] == "fail if > 0"
    assert items["event_ids_present"]["threshold"] == "warn if > 0.0 %, fail if > 10.0 %"
    assert items["timing_skew"]["threshold"] == "warn if > 5 min, fail if > 1 h"
    assert items["emq_estimate"]["threshold"] == "warn if < 6.0 / 10"
    assert items["coverage_em"]["threshold"] == "warn if < 50.0 %"


@pytest.mark.parametrize("text, fragment", [
    ("[checklist.pairing_rat]\nwarn_below = 0.9\n", "Did you mean 'pairing_rate'"),
    ("[checklist.pairing_rate]\nwarn_bellow = 0.9\n", "valid keys: fail_below, warn_below"),
    ('[checklist.pairing_rate]\nwarn_below = "high"\n', "must be a number"),
    ("[checklist]\npairing_rate = 0.9\n", "must be a table"),
])
def test_checklist_bad_threshold_config_raises_config_error(text, fragment):
    with pytest.raises(ConfigError) as e:
        checklist.build(healthy(), Config.from_text(text))
    assert fragment in str(e.value)


def test_checklist_every_default_has_a_source():
    for item in checklist.ITEMS:
        assert item.source, item.id
        assert item.id in checklist.DEFAULTS


def test_checklist_documented_example_config_is_valid():
    from pathlib import Path

    from capi_diag.diagnostics import consent, journey

    config = Config.load(Path(__file__).resolve().parent.parent / "docs" / "config.example.toml")
    policy = consent.policy(config)
    assert policy.required_for("DE") == ("ad_storage", "ad_user_data", "ad_personalization")
    assert policy.required_for("CH") == ("ad_storage", "ad_user_data")
    assert policy.required_for("US") == ()
    assert policy.required_for("BR") == ("ad_storage", "ad_user_data")
    assert journey.steps(config) == ["PageView", "ViewContent", "Lead", "CompleteRegistration"]
    th = checklist.thresholds(config)
    assert th["pairing_rate"] == {"warn_below": 0.8, "fail_below": 0.5}
    assert th["timing_skew"] == {"warn_above": 120, "fail_above": 3600}
