"""match_keys: per-pair comparisons (the fbp gaps of issue 24, the user agents' states), in a module of
their own: on Spark, a dataset copied into the session replaces the tables the module-scoped dataset of
tests/test_match_keys.py reads, so each test here builds its own."""

from __future__ import annotations

from capi_diag.core.config import Config
from capi_diag.diagnostics import match_keys
from capi_diag.engine.dataset import Dataset
from tests.test_match_keys import CHROME, FBP, T, ev


def test_match_keys_fbp_gaps_listed_per_pair(on_engine):
    """Issue 24: an fbp in the Pixel hit and none on its server twin (or the reverse) is listed per pair,
    as the mismatch examples are, beside the overall coverage."""
    browser = [ev("Purchase", "p1", fbp=[FBP]), ev("AddToCart", "p2", fbp=[FBP]), ev("ViewContent", "p3"),
               ev("Lead", "p4", fbp=[FBP])]
    server = [ev("Purchase", "p1"), ev("AddToCart", "p2", fbp=[" "]), ev("ViewContent", "p3", fbp=[FBP]),
              ev("Lead", "p4", fbp=[FBP])]
    r = match_keys.analyze(on_engine(Dataset.from_records(browser=browser, server=server)), Config(), {})
    fbp = r["paired_mismatch"]["fields"]["fbp"]
    assert (fbp["compared"], fbp["browser_only"], fbp["server_only"]) == (1, 2, 1)
    gaps = r["examples"]["fbp.paired_gap"]
    assert [(g["event_name"], g["event_id"], g["browser_fbp"], g["server_fbp"]) for g in gaps] == [
        ("Purchase", "p1", FBP, None), ("AddToCart", "p2", FBP, None), ("ViewContent", "p3", None, FBP)]
    assert [g["browser_line"] for g in gaps] == [2, 3, 4]  # from_records: as a CSV under its header
    entries = {e["label"]: e for e in match_keys.explain(r)}
    assert entries["Browser ID (fbp) on one side of a pair only"]["value"] == 3


def test_paired_user_agents_are_kept_as_their_comparison_state(on_engine):
    """paired_rows keeps no user agent string, only the state of the two first values (same, differ,
    browser_only, server_only, neither); the counts read from it are exact, a blank value is absent and
    only the earliest row of each side counts."""
    firefox = CHROME.replace("Chrome/124.0", "Firefox/126.0")
    server = [ev("Purchase", "same", client_user_agent=[CHROME]),
              ev("Purchase", "differ", client_user_agent=[firefox, CHROME]),
              ev("Purchase", "b-only", client_user_agent=[" "]),
              ev("Purchase", "s-only", client_user_agent=[CHROME]),
              ev("Purchase", "neither"),
              ev("Purchase", "later", event_time=T - 5, client_user_agent=[CHROME]),
              ev("Purchase", "later", client_user_agent=[firefox])]
    browser = [ev("Purchase", "same", client_user_agent=[CHROME]),
               ev("Purchase", "differ", client_user_agent=[CHROME]),
               ev("Purchase", "b-only", client_user_agent=[CHROME]),
               ev("Purchase", "s-only"),
               ev("Purchase", "neither", client_user_agent=[""]),
               ev("Purchase", "later", client_user_agent=[CHROME])]
    d = on_engine(Dataset.from_records(browser=browser, server=server))
    rows = d.query(d.measure("paired_rows")).to_pylist()
    assert {r["event_id"]: r["client_user_agent_pair"] for r in rows} == {
        "same": "same", "differ": "differ", "b-only": "browser_only", "s-only": "server_only",
        "neither": "neither", "later": "same"}
    assert not {"b_client_user_agent", "s_client_user_agent"} & set(rows[0])
    pm = match_keys.analyze(d, Config(), {})["paired_mismatch"]
    assert pm["paired_keys"] == 6
    assert pm["fields"]["client_user_agent"] == {"compared": 3, "mismatched": 1, "mismatch_rate": 1 / 3,
                                                 "browser_only": 1, "server_only": 1}


def test_paired_user_agents_counted_when_no_log_has_one(on_engine):
    """Neither log carries a user agent: every pair's state is "neither" and the counts are zeros, not
    nulls (Spark counts a condition by summing it: a sum of nulls would be null)."""
    d = on_engine(Dataset.from_records(browser=[ev("Purchase", "p1", fbp=[FBP])], server=[ev("Purchase", "p1")]))
    assert [r["client_user_agent_pair"] for r in d.query(d.measure("paired_rows")).to_pylist()] == ["neither"]
    ua = match_keys.analyze(d, Config(), {})["paired_mismatch"]["fields"]["client_user_agent"]
    assert ua == {"compared": 0, "mismatched": 0, "mismatch_rate": None, "browser_only": 0, "server_only": 0}
