from __future__ import annotations

import pytest

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.diagnostics import FAILING_ROW_COLUMNS, journey
from capi_diag.engine.dataset import Dataset

T = 1_700_000_000


def ev(*names):
    return [{"event_name": n, "event_time": T + i} for i, n in enumerate(names)]


def test_journey_counts_steps_per_log_exact_names():
    ds = Dataset.from_records(
        browser=ev("PageView", "PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"),
        server=ev("PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase", "Purchase"),
    )
    r = journey.analyze(ds, Config(), {})
    assert r["browser"] == {"PageView": 2, "ViewContent": 1, "AddToCart": 1, "InitiateCheckout": 1,
                            "Purchase": 1}
    assert r["server"]["Purchase"] == 2
    assert r["missing"] == {"browser": [], "server": []}
    assert r["complete"] == {"browser": True, "server": True}
    assert r["browser_rows"] == 6 and r["server_rows"] == 6
    assert r["status"] == "evaluated"
    assert r["server_to_browser"]["PageView"] == 0.5


def test_journey_missing_steps_per_side_and_near_names():
    ds = Dataset.from_records(browser=ev("PageView", "ViewContent", "add_to_cart", "Purchase"),
                              server=ev("purchase", "Lead"))
    r = journey.analyze(ds, Config(), {})
    assert r["missing"]["browser"] == ["AddToCart", "InitiateCheckout"]
    assert r["missing"]["server"] == ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]
    assert r["near_names"] == {"browser": {"AddToCart": {"add_to_cart": 1}},
                               "server": {"Purchase": {"purchase": 1}}}
    assert r["other_events"]["server"] == {"Lead": 1, "purchase": 1}
    assert r["complete"] == {"browser": False, "server": False}
    assert r["server_to_browser"]["AddToCart"] is None


def test_journey_lead_gen_steps_from_config():
    ds = Dataset.from_records(browser=ev("PageView", "Lead"), server=ev("Lead"))
    r = journey.analyze(ds, Config.from_text('[journey]\nsteps = ["PageView", "Lead"]\n'), {})
    assert r["steps"] == ["PageView", "Lead"]
    assert r["missing"] == {"browser": [], "server": ["PageView"]}
    assert r["server"] == {"PageView": 0, "Lead": 1}


def test_journey_empty_logs_everything_missing_not_complete():
    r = journey.analyze(Dataset.from_records(), Config(), {})
    assert r["browser_rows"] == 0 and r["server_rows"] == 0
    assert len(r["missing"]["server"]) == 5
    assert r["complete"] == {"browser": False, "server": False}
    assert r["status"] == "not_evaluated"


def test_journey_names_compared_exactly_whitespace_matters():
    ds = Dataset.from_records(browser=ev("Purchase "), server=ev("Purchase"))
    r = journey.analyze(ds, Config.from_text('[journey]\nsteps = ["Purchase"]\n'), {})
    assert r["browser"] == {"Purchase": 0}
    assert r["near_names"]["browser"] == {"Purchase": {"Purchase ": 1}}


def test_journey_failing_rows_flag_variants_of_missing_steps_only():
    ds = Dataset.from_records(browser=ev("Purchase", "purchase"), server=ev("purchase", "page_view"))
    cfg = Config.from_text('[journey]\nsteps = ["PageView", "Purchase"]\n')
    df = ds.query(journey.failing_rows(ds, cfg)).to_pandas()
    assert list(df.columns) == list(FAILING_ROW_COLUMNS)
    got = sorted(zip(df.role, df.event_name, df.detail, strict=True))
    # the browser log has Purchase, so its 'purchase' row is not a missing-step variant
    assert got == [("server", "page_view", "missing step PageView"),
                   ("server", "purchase", "missing step Purchase")]
    assert set(df.severity) == {"warning"}


@pytest.mark.parametrize("text", ['[journey]\nsteps = []\n', '[journey]\nsteps = ["A", " "]\n',
                                  '[journey]\nsteps = ["A", "A"]\n'])
def test_journey_bad_steps_raise_config_error(text):
    with pytest.raises(ConfigError):
        journey.steps(Config.from_text(text))


def test_journey_explain_names_missing_steps_and_variants():
    ds = Dataset.from_records(browser=ev("PageView"), server=ev("pageview"))
    entries = journey.explain(journey.analyze(ds, Config.from_text('[journey]\nsteps = ["PageView"]\n'), {}))
    server = entries[1]
    assert server["value"] == 1
    assert "PageView appears as pageview." in server["text"]
    assert entries[0]["fix"] == ""
