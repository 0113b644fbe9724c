"""EMQ estimate: the model's properties (hypothesis) and the section on tiny logs."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.diagnostics import FAILING_ROW_COLUMNS, emq, match_keys
from capi_diag.engine.dataset import Dataset

FIELDS = list(emq.WEIGHTS)
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


coverages = st.fixed_dictionaries({f: st.floats(0.0, 1.0) for f in FIELDS})


@settings(max_examples=300, deadline=None)
@given(coverages, st.sampled_from(FIELDS), st.floats(0.0, 1.0))
def test_emq_estimate_more_valid_coverage_never_lowers_it(cov, field, extra):
    higher = {**cov, field: min(1.0, cov[field] + extra)}
    assert emq.estimate(higher) >= emq.estimate(cov)
    assert 0.0 <= emq.estimate(cov) <= 10.0


@settings(max_examples=300, deadline=None)
@given(coverages)
def test_emq_no_email_ranks_em_first(cov):
    cov = {**cov, "em": 0.0}
    ranked = emq.gains(cov)
    assert ranked[0][0] == "em"
    assert ranked[0][1] > ranked[1][1]


@settings(max_examples=200, deadline=None)
@given(coverages)
def test_emq_gains_are_sorted_and_zero_at_full_coverage(cov):
    ranked = emq.gains(cov)
    assert [g for _, g in ranked] == sorted((g for _, g in ranked), reverse=True)
    full = {f: 1.0 for f in FIELDS}
    assert all(g == 0 for _, g in emq.gains(full))


def test_emq_weights_follow_the_required_order():
    w = emq.WEIGHTS
    assert w["em"] > w["ph"] > w["external_id"]
    tier4 = [w[f] for f in ("fbp", "fbc", "client_ip_address", "client_user_agent")]
    tier5 = [w[f] for f in ("fn", "ln", "ge", "db", "ct", "st", "zp", "country")]
    assert w["external_id"] > max(tier4) and min(tier4) > max(tier5)
    assert all(0 < x < 1 for x in w.values())
    assert set(w) == set(match_keys.FIELDS)


def test_emq_estimate_bounds_and_single_key():
    assert emq.estimate({}) == 0.0
    assert emq.estimate({"em": 1.0}) == pytest.approx(6.0)
    assert emq.estimate({f: 1.0 for f in FIELDS}) < 10.0
    assert emq.estimate({"em": None, "ph": 2.0}) == pytest.approx(4.5)  # clamped, null = 0


@pytest.mark.parametrize(("value", "label"), [
    (0.0, "Poor"), (3.99, "Poor"), (4.0, "OK"), (5.99, "OK"), (6.0, "Good"), (7.99, "Good"),
    (8.0, "Great"), (10.0, "Great"), (None, None),
])
def test_emq_band_boundaries(value, label):
    assert emq.band(value) == label


def ev(name: str, **kw: Any) -> dict[str, Any]:
    return {"event_name": name, "event_time": 1_700_000_000, "action_source": "website", **kw}


def run(server: list[dict[str, Any]], config: Config | None = None) -> dict[str, Any]:
    return emq.analyze(Dataset.from_records(server=server), config or Config(), {})


def test_emq_invalid_values_score_as_absent():
    base = [ev("Purchase", client_ip_address=["203.0.113.7"], client_user_agent=[CHROME])]
    invalid = [ev("Purchase", client_ip_address=["203.0.113.7"], client_user_agent=[CHROME],
                  em=["john@x.com"], ph=[h("")], fbp=[h("fb.1.1596403881668.1")])]
    a, b = run(base), run(invalid)
    assert a["estimate"] == b["estimate"] == round(emq.estimate({"client_ip_address": 1, "client_user_agent": 1}), 1)
    assert b["valid_coverage"]["em"] == 0.0
    assert b["priorities"][0]["field"] == "em"
    assert "sent unhashed: 1" in b["priorities"][0]["fix"]


def test_emq_scope_website_rows_and_per_event_name():
    server = [
        ev("Purchase", em=[h("a@x.com")], ph=[h("16505551212")]),
        ev("Purchase", em=[h("b@x.com")]),
        ev("PageView", client_ip_address=["203.0.113.7"]),
        ev("Purchase", action_source="app", em=[h("c@x.com")]),
        ev("Purchase", action_source=None, em=[h("c@x.com")]),
    ]
    r = run(server)
    assert r["scope"] == "website" and r["rows"] == 3
    cov = {"em": 2 / 3, "ph": 1 / 3, "client_ip_address": 1 / 3}
    assert r["valid_coverage"]["em"] == pytest.approx(2 / 3)
    assert r["estimate"] == round(emq.estimate(cov), 1)
    assert r["band"] == emq.band(r["estimate"])
    assert r["by_event_name"]["Purchase"] == {
        "rows": 2, "estimate": round(emq.estimate({"em": 1.0, "ph": 0.5}), 1),
        "band": emq.band(round(emq.estimate({"em": 1.0, "ph": 0.5}), 1))}
    assert r["by_event_name"]["PageView"]["estimate"] == round(emq.estimate({"client_ip_address": 1.0}), 1)
    assert [p["field"] for p in r["priorities"]] == [f for f, g in emq.gains(cov) if g > 0]
    assert r["priorities"][0]["gain"] == round(emq.gains(cov)[0][1], 2)
    assert "estimate" in r["note"].lower()


def test_emq_all_server_rows_without_action_source_column():
    server = [{"event_name": "Lead", "event_time": 1, "em": [h("a@x.com")]},
              {"event_name": "Lead", "event_time": 1}]
    r = emq.analyze(Dataset.from_records(server=server), Config(), {})
    assert r["scope"] == "all_server_rows" and r["rows"] == 2
    assert r["estimate"] == 3.0 and r["band"] == "Poor" and r["meets_target"] is False


def test_emq_no_website_rows_not_evaluated():
    r = run([ev("Purchase", action_source="app", em=[h("a@x.com")])])
    assert r["status"] == "not_evaluated" and r["estimate"] is None and r["band"] is None
    assert r["priorities"] == []
    assert emq.explain(r)[0]["value"] is None


def test_emq_target_config_and_failing_rows():
    full = dict(em=[h("a@x.com")], ph=[h("16505551212")], client_ip_address=["203.0.113.7"])
    ds = Dataset.from_records(server=[ev("Purchase", event_id="1", **full), ev("PageView", event_id="2")])
    rows = ds.query(emq.failing_rows(ds, Config())).to_pylist()
    assert [(r["event_id"], r["finding"], r["severity"], r["detail"]) for r in rows] == [
        ("2", "below_emq_target", "warning", "estimate 0.0")]
    assert list(rows[0]) == list(FAILING_ROW_COLUMNS)
    cfg = Config.from_text("[emq]\ntarget = 9.0\n")
    assert ds.query(emq.failing_rows(ds, cfg)).num_rows == 2
    r = emq.analyze(ds, cfg, {})
    assert r["target"] == 9.0 and r["meets_target"] is False
    with pytest.raises(ConfigError, match="between 0 and 10"):
        emq.analyze(ds, Config.from_text("[emq]\ntarget = 11\n"), {})


def test_emq_explain_says_it_is_an_estimate():
    r = run([ev("Purchase", em=[h("a@x.com")])])
    entries = emq.explain(r)
    assert entries[0]["label"] == "EMQ estimate" and entries[0]["value"] == r["estimate"]
    assert "estimate" in entries[0]["text"].lower() and "Meta publishes no EMQ formula" in entries[0]["text"]
