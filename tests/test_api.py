"""The one pipeline (capi_diag.api): what every front end runs, and the inputs it refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from capi_diag import api
from capi_diag.core.config import Config
from capi_diag.core.errors import UsageError
from capi_diag.io.ingest import Source

ROOT = Path(__file__).resolve().parent.parent
BROWSER = b"event_name,event_id,event_time\nPurchase,1,1795000000\nPageView,2,1795000100\n"
SERVER = b"event_name,event_id,event_time,action_source\nPurchase,1,1795000003,website\n"


def test_api_analyze_demo_is_the_golden_report() -> None:
    from tests.test_golden import comparable

    report = api.analyze(api.Inputs.demo())
    golden = json.loads((ROOT / "tests" / "golden" / "demo.json").read_text(encoding="utf-8"))
    assert comparable(json.loads(json.dumps(report))) == comparable(golden)


def test_api_opened_yields_the_dataset_and_closes_its_database() -> None:
    inputs = api.Inputs(browser=[Source("b.csv", data=BROWSER)], server=[Source("s.csv", data=SERVER)])
    with api.opened(inputs) as ds:
        assert (ds.rows("browser"), ds.rows("server")) == (2, 1)
        report = api.report(ds)
        context = api.logs_context(ds)
    assert report["dedup"]["paired"] == 1 and report["dedup"]["browser_only"] == 1
    assert (context.first_time, context.last_time) == (1795000000, 1795000100)
    with pytest.raises(Exception, match=re.compile("closed", re.I)):
        ds.db.con.execute("SELECT 1")


def test_api_load_keeps_the_database_open_for_the_caller() -> None:
    ds = api.load(api.Inputs(browser=[Source("b.csv", data=BROWSER)], server=[Source("s.csv", data=SERVER)]),
                  Config())
    try:
        assert ds.db.con.execute("SELECT count(*) FROM server_events").fetchone() == (1,)
    finally:
        ds.db.close()


def test_api_demo_inputs_name_files_by_name_and_bring_the_extras() -> None:
    inputs = api.Inputs.demo()
    assert [s.name for s in inputs.browser] == ["browser_events.csv"]
    assert [s.name for s in inputs.orders] == ["orders.csv"] and [s.name for s in inputs.send_log] == ["send_log.jsonl"]
    assert api.Inputs.demo(extras=False).orders == []


def test_api_refuses_an_unknown_engine_and_extras_on_spark() -> None:
    with pytest.raises(UsageError, match="unknown engine 'sqlite'"):
        api.Engine("sqlite")
    with pytest.raises(UsageError, match="DuckDB engine only"):
        api.analyze(api.Inputs(browser=["b.csv"], server=["s.csv"], orders=["o.csv"]), engine=api.Engine("spark"))
    with pytest.raises(UsageError, match="keeps a DuckDB database"):
        api.load(api.Inputs(), engine=api.Engine("spark"))
