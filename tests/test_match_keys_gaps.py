"""match_keys: per-pair fbp gaps (issue 24), in a module of their own: on Spark, a dataset copied into the
session replaces the tables the module-scoped dataset of tests/test_match_keys.py reads."""

from __future__ import annotations

from capi_diag.core.config import Config
from capi_diag.diagnostics import match_keys
from capi_diag.engine.dataset import Dataset
from tests.test_match_keys import FBP, ev


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
