"""Timing: skew quantiles (checked against DuckDB's quantile_cont), ms / stale / future rows,
delivery delay and the beyond-contract figures, on tiny hand-built logs with exact boundaries.

As in ``test_dedup``, most situations share one pair of logs, each under its own event name.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from capi_diag import report
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.diagnostics import FAILING_ROW_COLUMNS, dedup, timing
from capi_diag.engine import runner
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.db import Database

T = 1_700_000_000
D7 = 604_800


def ev(name: str, eid: str | None, t: int, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"event_name": name, "event_time": t, **kw}
    if eid is not None:
        rec["event_id"] = eid
    return rec


def skew_pairs(name: str, skews: list[int], **server_kw: Any) -> tuple[list[dict], list[dict]]:
    browser = [ev(name, f"{name}{i}", T) for i in range(len(skews))]
    server = [ev(name, f"{name}{i}", T + d, sent_at=T + d, **server_kw) for i, d in enumerate(skews)]
    return browser, server


def same(a: float | None, b: float | None, scale: float = 0.0) -> bool:
    """Equal up to rounding: DuckDB evaluates ``lo * (1 - d) + hi * d`` (possibly as a fused
    multiply-add), we evaluate ``lo + (hi - lo) * d``; the error is relative to the values
    interpolated (``scale``), not to the result."""
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 4 * math.ulp(max(abs(a), abs(b), scale, 1.0))


def cont(values: list[int], q: float) -> float:
    """DuckDB's own quantile_cont, the reference definition."""
    con = duckdb.connect()
    con.register("v", pa.table({"x": pa.array(values, pa.int64())}))
    return con.execute(f"SELECT quantile_cont(x, {q!r}) FROM v").fetchone()[0]


Q_SKEWS = [0, 3500, -10, 7, 400]
THR_SKEWS = [300, -300, 301, -301]
HOUR_SKEWS = [3600, 3660, 3661, -7200, 15 * 3600, 0, 1800]
DELAYS = [0, 3600, 3601, -5]

BROWSER: list[dict[str, Any]] = []
SERVER: list[dict[str, Any]] = []
for _name, _skews in (("Q", Q_SKEWS), ("Thr", THR_SKEWS), ("Hours", HOUR_SKEWS)):
    _b, _s = skew_pairs(_name, _skews)
    BROWSER += _b
    SERVER += _s
BROWSER += [ev("Keeps", "k1", T), ev("Keeps", "k2", T), ev("Keeps", "k3", T)]
SERVER += [
    ev("Keeps", "k1", T, sent_at=T - 300),  # server 300 s earlier: browser preferred
    ev("Keeps", "k2", T, sent_at=T - 301),  # 301 s earlier: the server copy wins
    ev("Keeps", "k3", T - 400),  # no sent_at: arrival = event_time, 400 s earlier
    ev("Stale", None, T, sent_at=T + D7),
    ev("Stale", None, T, sent_at=T + D7 + 1),
    ev("Future", None, T, sent_at=T - 60),
    ev("Future", None, T, sent_at=T - 61),
    *[ev("Delay", None, T, sent_at=T + d) for d in DELAYS],
    ev("Delay", None, T),
    ev("Ms", None, T, sent_at=T, event_time_raw=str(T * 1000), event_time_raw_unit="ms"),
    ev("Ms", None, T, sent_at=T, event_time_raw=str(T * 1000 + 5), event_time_raw_unit="ms"),
    ev("Ms", None, T, sent_at=T, event_time_raw=str(T * 1_000_000), event_time_raw_unit="us"),
]


@pytest.fixture(scope="module")
def shared(on_engine) -> dict[str, Any]:
    ds = on_engine(Dataset.from_records(browser=BROWSER, server=SERVER))
    r = timing.analyze(ds, Config(), {})
    failing = ds.query(timing.failing_rows(ds, Config())).to_pylist()
    return {"ds": ds, "r": r, "n": r["by_event_name"], "failing": failing}


# -- exact quantiles -----------------------------------------------------------------------------


def _quantiles(values: list[int | None], qs: dict[str, float], groups: list[str] | None = None) -> list[dict]:
    db = Database()
    cols: dict[str, Any] = {"x": pa.array(values, pa.int64())}
    if groups is not None:
        cols["g"] = pa.array(groups, pa.string())
    db.con.register("vals", pa.table(cols))
    t = db.ibis.table("vals")
    by = ["g"] if groups is not None else []
    return timing.exact_quantiles(t, "x", qs, by).order_by(by or "n").to_pyarrow().to_pylist()


QS = (0.0, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)


def test_exact_quantiles_equal_duckdb_quantile_cont_on_many_lists():
    rng = random.Random(20240101)
    lists = [[5], [1, 2], [1, 2, 7], [3, 3, 3, 10], list(range(21)), [-7, 0, 0, 9, 1000, -3]]
    lists += [[rng.randint(-(10**6), 10**6) for _ in range(rng.randint(1, 60))] for _ in range(300)]
    lists += [[rng.randint(-5, 5) for _ in range(rng.randint(1, 60))] for _ in range(100)]  # many ties
    groups = [f"g{i:03d}" for i, values in enumerate(lists) for _ in values]
    values = [v for vs in lists for v in vs]
    db = Database()
    db.con.register("vals", pa.table({"x": pa.array(values, pa.int64()), "g": pa.array(groups, pa.string())}))
    names = {f"q{i}": q for i, q in enumerate(QS)}
    ours = timing.exact_quantiles(db.ibis.table("vals"), "x", names, ["g"]).to_pyarrow().to_pylist()
    sql = ", ".join(f"quantile_cont(x, {q!r}) AS q{i}" for i, q in enumerate(QS))
    ref = db.con.sql(f"SELECT g, count(x) AS n, {sql} FROM vals GROUP BY g").to_arrow_table().to_pylist()
    assert len(ours) == len(ref) == len(lists)
    ref_by_group = {r["g"]: r for r in ref}
    exact = 0
    for row in ours:
        expected = ref_by_group[row["g"]]
        scale = max(abs(v) for v in lists[int(row["g"][1:])])
        assert row["n"] == expected["n"]
        for name in names:
            assert same(row[name], expected[name], scale), (row["g"], name, row[name], expected[name])
            exact += row[name] == expected[name]
    assert exact >= 0.9 * len(lists) * len(QS)  # almost all identical to the bit


def test_exact_quantiles_grouped_and_nulls_ignored():
    rows = _quantiles(
        [1, 2, None, 10, 4, 4, 9], {"p50": 0.5, "p95": 0.95}, ["a", "a", "a", "a", "b", "b", "b"]
    )
    assert [(r["g"], r["n"], r["p50"]) for r in rows] == [("a", 3, 2.0), ("b", 3, 4.0)]
    assert same(rows[0]["p95"], cont([1, 2, 10], 0.95)) and same(rows[0]["p95"], 9.2)
    assert same(rows[1]["p95"], cont([4, 4, 9], 0.95)) and same(rows[1]["p95"], 8.5)


def test_exact_quantiles_empty_input_no_row():
    assert _quantiles([None], {"q": 0.5}) == []


# -- skew ------------------------------------------------------------------------------------------


def test_analyze_skew_quantiles_match_duckdb(shared):
    q = shared["n"]["Q"]
    assert q["skew_p50_s"] == cont(Q_SKEWS, 0.5) == 7.0
    assert same(q["skew_p95_abs_s"], cont([abs(x) for x in Q_SKEWS], 0.95))
    assert isinstance(q["skew_p95_abs_s"], float) and q["skew_max_abs_s"] == 3500
    r = shared["r"]
    all_skews = Q_SKEWS + THR_SKEWS + HOUR_SKEWS + [0, 0, -400]
    assert r["paired"] == len(all_skews)
    assert same(r["skew_p50_s"], cont(all_skews, 0.5))
    assert same(r["skew_p95_abs_s"], cont([abs(x) for x in all_skews], 0.95))
    assert r["skew_max_abs_s"] == 15 * 3600


def test_analyze_skew_threshold_300_exclusive_both_signs(shared):
    e = shared["n"]["Thr"]
    assert (e["skew_over_threshold"], e["skew_max_abs_s"], e["paired"]) == (2, 301, 4)


def test_analyze_skew_threshold_configurable():
    b, s = skew_pairs("Lead", [300, 301, 400, 401])
    r = timing.analyze(
        Dataset.from_records(browser=b, server=s), Config.from_text("[timing]\nskew_threshold_s = 400\n"), {}
    )
    assert (r["skew_over_threshold"], r["skew_threshold_s"]) == (1, 400)


def test_analyze_skew_whole_hours_within_tolerance(shared):
    assert shared["n"]["Hours"]["skew_whole_hours"] == 3
    assert shared["r"]["skew_whole_hours_by_offset"] == [
        {"offset_s": 3600, "keys": 2},
        {"offset_s": -7200, "keys": 1},
    ]


def test_analyze_meta_keeps_browser_within_5_minutes(shared):
    e = shared["n"]["Keeps"]
    assert (e["meta_keeps_browser"], e["meta_keeps_server"]) == (1, 2)
    r = shared["r"]
    assert r["meta_keeps_browser"] + r["meta_keeps_server"] == r["paired"]


def test_analyze_skew_histogram_bins_inclusive_bounds():
    skews = [-86401, -86400, -3601, -301, -61, -11, -1, 0, 1, 10, 11, 60, 61, 300, 301, 3600, 3601, 86401]
    b, s = skew_pairs("Lead", skews)
    r = timing.analyze(Dataset.from_records(browser=b, server=s), Config(), {})
    hist = {h["label"]: h["keys"] for h in r["skew_histogram"]}
    assert hist == {
        "<= -86401 s": 1,
        "-86400…-3601 s": 2,
        "-3600…-301 s": 1,
        "-300…-61 s": 1,
        "-60…-11 s": 1,
        "-10…-1 s": 1,
        "0 s": 1,
        "+1…+10 s": 2,
        "+11…+60 s": 2,
        "+61…+300 s": 2,
        "+301…+3600 s": 2,
        "+3601…+86400 s": 1,
        ">= +86401 s": 1,
    }
    assert sum(hist.values()) == r["paired"] == len(skews)


def test_paired_skews_read_the_shared_key_table_measure():
    b, s = skew_pairs("Lead", [5])
    ds = Dataset.from_records(browser=b, server=s)
    rows = ds.query(timing.paired_skews(ds)).to_pylist()
    assert [r["skew_s"] for r in rows] == [5]
    # The measure reads the materialized key table by name instead of recomputing the pairing.
    assert f"capi_m_key_table{runner.SCOPE}" in ds._measure_sql("paired_skews")
    assert "ROW_NUMBER" not in ds._measure_sql("paired_skews").upper()


# -- server rows: ms, stale, future, delay ---------------------------------------------------------


def test_analyze_event_time_in_ms_and_us_counted(shared):
    e = shared["n"]["Ms"]
    assert (e["event_time_in_ms"], e["event_time_in_us"], e["server_rows"]) == (2, 1, 3)
    assert (shared["r"]["event_time_in_ms"], shared["r"]["event_time_in_us"]) == (2, 1)


def test_analyze_stale_exactly_7_days_not_stale_7_days_plus_1s_stale(shared):
    assert (shared["n"]["Stale"]["stale_over_7d"], shared["n"]["Stale"]["future"]) == (1, 0)


def test_analyze_future_60s_not_future_61s_future(shared):
    assert (shared["n"]["Future"]["future"], shared["n"]["Future"]["stale_over_7d"]) == (1, 0)
    assert shared["n"]["Keeps"]["future"] == 2  # event_time 300 and 301 s after sent_at


def test_analyze_sent_at_missing_left_out_and_delay_quantiles(shared):
    e = shared["n"]["Delay"]
    assert (e["sent_at_missing"], e["stale_over_7d"], e["future"]) == (1, 0, 0)
    assert e["delivery_delay_p50_s"] == cont(DELAYS, 0.5) == 1800.0
    assert same(e["delivery_delay_p95_s"], cont(DELAYS, 0.95))
    assert e["delivery_delay_within_1h_share"] == 3 / 4  # 3600 is within, 3601 is not, -5 is


def test_analyze_totals_over_server_rows(shared):
    r = shared["r"]
    assert (r["server_rows"], r["stale_over_7d"], r["future"], r["sent_at_missing"]) == (len(SERVER), 1, 3, 2)
    delays = [d["sent_at"] - d["event_time"] for d in SERVER if d.get("sent_at") is not None]
    assert same(r["delivery_delay_p50_s"], cont(delays, 0.5))
    assert same(r["delivery_delay_p95_s"], cont(delays, 0.95))
    assert r["delivery_delay_within_1h_share"] == sum(d <= 3600 for d in delays) / len(delays)
    assert r["status"] == "evaluated" and r["sent_at_column"] is True
    json.dumps(r)


def test_analyze_no_sent_at_column_stale_future_delay_null():
    ds = Dataset.from_records(browser=[ev("Lead", "a", T)], server=[ev("Lead", "a", T + 5)])
    assert not ds.has("server", "sent_at")
    r = timing.analyze(ds, Config(), {})
    for k in (
        "stale_over_7d",
        "future",
        "sent_at_missing",
        "delivery_delay_p50_s",
        "delivery_delay_p95_s",
        "delivery_delay_within_1h_share",
    ):
        assert r[k] is None, k
        assert r["by_event_name"]["Lead"][k] is None, k
    assert (r["paired"], r["skew_p50_s"], r["sent_at_column"]) == (1, 5.0, False)
    assert "stale_over_7d" not in r["examples"]


def test_analyze_empty_logs_quantiles_null_not_evaluated():
    r = timing.analyze(Dataset.from_records(browser=[], server=[]), Config(), {})
    assert (r["paired"], r["skew_p50_s"], r["skew_p95_abs_s"], r["skew_max_abs_s"]) == (0, None, None, None)
    assert r["status"] == "not_evaluated" and r["by_event_name"] == {}
    json.dumps(r)


def test_analyze_examples_earliest_first(shared):
    ex = shared["r"]["examples"]
    assert [e["event_id"] for e in ex["skew_over_threshold"]] == [
        "Hours3",
        "k3",
        "Thr3",
        "Hours0",
        "Hours1",
        "Hours2",
        "Hours4",
        "Hours6",
        "Q1",
        "Q4",
        "Thr2",
    ]
    assert [e["event_time_raw"] for e in ex["event_time_in_ms"]] == [str(T * 1000), str(T * 1000 + 5)]
    assert [e["delay_s"] for e in ex["stale_over_7d"]] == [D7 + 1]


# -- failing rows, config, explain, report -------------------------------------------------------


def test_failing_rows_columns_and_counts_match_result(shared):
    assert tuple(timing.failing_rows(shared["ds"], Config()).columns) == FAILING_ROW_COLUMNS
    rows, r = shared["failing"], shared["r"]
    by: dict[str, int] = {}
    for x in rows:
        by[x["finding"]] = by.get(x["finding"], 0) + 1
    assert by == {
        "event_time_in_ms": 2,
        "event_time_in_us": 1,
        "stale_over_7d": 1,
        "future": 3,
        "skew_over_threshold": r["skew_over_threshold"],
        "skew_whole_hours": r["skew_whole_hours"],
    }
    sev = {x["finding"]: x["severity"] for x in rows}
    assert (sev["stale_over_7d"], sev["event_time_in_ms"], sev["future"]) == ("error", "error", "warning")


def test_options_hour_tolerance_must_stay_below_half_hour():
    with pytest.raises(ConfigError, match="hour_tolerance_s"):
        timing.options(Config.from_text("[timing]\nhour_tolerance_s = 1800\n"))


def test_explain_entries_have_text_and_fix(shared):
    entries = timing.explain(shared["r"])
    assert all(set(e) == {"label", "value", "text", "fix", "unit"} and e["text"] and e["fix"] for e in entries)
    assert {e["label"]: e["value"] for e in entries}["Browser and server times too far apart"] == shared["r"][
        "skew_over_threshold"
    ]


def test_report_markdown_and_html_explain_dedup_and_timing(shared):
    ds = shared["ds"]
    rep = {
        "generated_at": "2024-01-01T00:00:00+00:00",
        "inputs": ds.inputs,
        "dedup": dedup.analyze(ds, Config(), {}),
        "timing": shared["r"],
    }
    md = report.to_markdown(rep)
    assert "**Pairing rate:" in md and "Fix:" in md
    assert f"**Browser and server times too far apart: {shared['r']['skew_over_threshold']} dedup keys**" in md
    html = report.to_html(rep)
    assert "Sent more than 7 days late" in html
