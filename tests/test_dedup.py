"""Dedup pairing: every category, reason and count on tiny hand-built logs, boundaries included.

Most situations live side by side in one pair of logs (``SCENARIOS``), each under its own event
name, so that one analysis run serves many tests: ``by_event_name[name]`` gives each situation's
exact counts. Situations about the whole dataset (empty logs, pixel keys, configuration) build
their own logs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.diagnostics import FAILING_ROW_COLUMNS, dedup
from capi_diag.engine.dataset import Dataset

T = 1_700_000_000
H48 = 172_800


def ev(name: str, eid: str | None, t: int, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"event_name": name, "event_time": t, **kw}
    if eid is not None:
        rec["event_id"] = eid
    return rec


def run(
    browser: list[dict[str, Any]], server: list[dict[str, Any]], config: Config | None = None
) -> dict[str, Any]:
    return dedup.analyze(Dataset.from_records(browser=browser, server=server), config or Config(), {})


def keys_of(ds: Dataset) -> dict[tuple, dict[str, Any]]:
    cols = dedup.key_columns(ds)
    return {tuple(r[c] for c in cols): r for r in ds.query(dedup.key_table(ds)).to_pylist()}


BROWSER: list[dict[str, Any]] = [
    ev("W48", "w1", T),  # paired at exactly 48 h
    ev("W48x", "w2", T),  # 48 h + 1 s: outside
    ev("Sym", "y1", T + H48),
    ev("Sym", "y2", T + H48 + 1),  # server first, same window
    ev("Later", "o", T),
    ev("Later", "o", T + 5),  # pair through the 2nd row
    ev("Cats", "p1", T),
    ev("Cats", "p2", T),
    ev("Cats", "ow", T),
    ev("Cats", "b1", T),
    ev("Cats", "b2", T),
    ev("Miss", None, T),
    ev("Miss", "", T),
    ev("Miss", "   ", T),
    ev("Miss", "\t\n", T),
    ev("Miss", "\u00a0", T),
    ev("Miss", "m1", T),
    ev("Ws", "ws1", T),  # vs "Ws " on the server
    ev("Idc", "ID", T),
    ev("Idc", "k", T),  # vs "id" and " k"
    ev("Ms", "ms1", T),
    ev("CaseEvt", "cx", T),  # vs "caseevt"
    ev("Prob", "p-b1", T, fbp="fb.1.1.1"),
    ev("Prob", "p-b2", T, fbp="fb.1.1.2"),
    ev("ProbN", "n-b1", T, fbp="fb.2.1.1"),
    ev("ProbN", "n-b2", T),
    ev("ProbN", "n-b3", T, fbp=" "),
    ev("ProbL", "l-b1", T, fbp=["fb.5.1.1", "fb.5.1.2"]),
    ev("ProbL", "l-b2", T + 1000, fbp=["fb.5.1.3"]),
    ev("ProbE", "e-b1", T, fbp="fb.6.1.1"),
    ev("ProbE", "e-b1", T + 95, fbp="fb.6.1.1"),
    ev("ProbS", "s-b1", T, fbp="fb.8.1.1"),
    ev("Prec", "px", T, fbp="fb.7.1.1"),
    ev("prec", "pother", T + 1, fbp="fb.7.1.1"),
    ev("Dup", "da", T),
    ev("Dup", "da", T),
    ev("R1", "same", T),
    ev("R2", "same", T),
    ev("Spread", "sa", T),
    ev("Spread", "sa", T + H48),
    ev("Spread", "sb", T),
    ev("Spread", "sb", T + H48 + 1),
    ev("Tie", "ta", T + 7),
    ev("Fb", "fx", T, fbp="fb.3.1.1"),
    ev("Fb", None, T, fbp="fb.3.1.2"),
    ev("Fb", "fz", T, fbp="fb.3.1.3"),
    ev("Fbe", "ex", T, fbp="fb.4.1.1", external_id="u1"),
    ev("Fbe", "ey", T, external_id="u2"),
]
SERVER: list[dict[str, Any]] = [
    ev("W48", "w1", T + H48),
    ev("W48x", "w2", T + H48 + 1),
    ev("Sym", "y1", T),
    ev("Sym", "y2", T),
    ev("Later", "o", T + H48 + 1),
    ev("Cats", "p1", T + 3),
    ev("Cats", "p2", T - 3),
    ev("Cats", "ow", T + H48 + 9),
    ev("Cats", "s1", T),
    ev("Miss", " ", T),
    ev("Ws ", "ws1", T),
    ev("Idc", "id", T),
    ev("Idc", " k", T),
    ev("Ms", "ms1", T + 2, event_time_raw=str((T + 2) * 1000), event_time_raw_unit="ms"),
    ev("caseevt", "cx", T + 5000),
    ev("Prob", "p-s1", T + 60, fbp="fb.1.1.1"),
    ev("Prob", "p-s2", T - 61, fbp="fb.1.1.2"),
    ev("ProbM", "n-s1", T, fbp="fb.2.1.1"),
    ev("ProbN", "n-s2", T),
    ev("ProbN", "n-s3", T, fbp=" "),
    ev("ProbL", "l-s1", T, fbp="fb.5.1.1"),
    ev("ProbL", "l-s2", T + 1000, fbp=["fb.5.1.9", "fb.5.1.3"]),
    ev("ProbE", "e-s1", T + 100, fbp="fb.6.1.1"),
    ev("ProbS", "s-s1", T + 10, fbp="fb.8.1.1"),
    ev("ProbS", "s-s2", T + 20, fbp="fb.8.1.1"),
    ev("prec", "px", T, fbp="fb.7.1.1"),
    ev("Dup", "da", T),
    ev("Dup", "da", T + 1),
    ev("Dup", "da", T + 2),
    ev("Dup", "db", T),
    ev("Dup", None, T),
    ev("Dup", None, T),
    ev("R1", "same", T),
    ev("R2", "same", T),
    ev("R3", "same", T),
    ev("Tie", "ta", T + 1, file_index=0, line=2),
    ev("Tie", "ta", T, file_index=1, line=9, source_file="s2.csv"),
    ev("Tie", "ta", T, file_index=1, line=3, source_file="s2.csv"),
    ev("Tie", "ta", T, file_index=2, line=1, source_file="s3.csv"),
    ev("Fb", None, T + H48, fbp="fb.3.1.1"),  # mergeable, exactly 48 h after the browser row
    ev("Fb", None, T + H48 + 1, fbp="fb.3.1.2"),  # too late
    ev("Fb", None, T - 1, fbp="fb.3.1.3"),  # the browser event is not first
    ev("FbOther", None, T + 5, fbp="fb.3.1.1"),  # another event name
    ev("Fbe", None, T + 1, fbp="fb.4.1.1", external_id="u1"),
    ev("Fbe", None, T + 1, external_id=["u2", "other"]),
    ev("Fbe", None, T + 1, external_id=["other", "u2"]),
]


@pytest.fixture(scope="module")
def shared(on_engine) -> dict[str, Any]:
    ds = on_engine(Dataset.from_records(browser=BROWSER, server=SERVER))
    result = dedup.analyze(ds, Config(), {})
    failing = ds.query(dedup.failing_rows(ds, Config())).to_pylist()
    return {"ds": ds, "r": result, "n": result["by_event_name"], "keys": keys_of(ds), "failing": failing}


def counts(entry: dict[str, Any], *names: str) -> tuple:
    return tuple(entry[n] for n in names)


# -- the 48 h window -----------------------------------------------------------------------------


def test_analyze_exactly_48h_apart_is_paired(shared):
    assert counts(shared["n"]["W48"], "keys", "paired", "pairing_rate") == (1, 1, 1.0)


def test_analyze_48h_plus_1s_apart_is_outside_window(shared):
    e = shared["n"]["W48x"]
    assert counts(e, "paired", "outside_window", "browser_only", "server_only") == (0, 1, 0, 0)
    assert counts(e, "pairing_rate", "browser_coverage", "server_coverage") == (0.0, 0.0, 0.0)


def test_analyze_server_earlier_than_browser_window_is_symmetric(shared):
    assert counts(shared["n"]["Sym"], "paired", "outside_window") == (1, 1)


def test_analyze_pair_through_a_later_row_counts_as_paired(shared):
    assert counts(shared["n"]["Later"], "paired", "duplicate_browser_rows") == (1, 1)
    k = shared["keys"][("Later", "o")]
    assert (k["skew_s"], k["browser_time"], k["browser_rows"]) == (H48 + 1, T, 2)


def test_analyze_window_is_configurable():
    cfg = Config.from_text("[dedup]\nwindow_s = 100\n")
    r = run(
        [ev("Lead", "a", T), ev("Lead", "b", T)], [ev("Lead", "a", T + 100), ev("Lead", "b", T + 101)], cfg
    )
    assert (r["paired"], r["outside_window"], r["window_s"]) == (1, 1, 100)


# -- categories, rates, empty logs ---------------------------------------------------------------


def test_analyze_all_categories_counts_and_rates_exact(shared):
    e = shared["n"]["Cats"]
    assert counts(e, "keys", "paired", "outside_window", "browser_only", "server_only") == (6, 2, 1, 2, 1)
    assert e["pairing_rate"] == 2 / 6 and e["browser_coverage"] == 2 / 5 and e["server_coverage"] == 2 / 4
    assert counts(e, "browser_rows", "server_rows") == (5, 4)


def test_analyze_totals_are_sums_over_event_names(shared):
    r, n = shared["r"], shared["n"]
    for k in (
        "keys",
        "paired",
        "outside_window",
        "browser_only",
        "server_only",
        "browser_rows",
        "duplicate_server_rows",
        "server_missing_event_id",
        "fallback_mergeable_server_rows",
    ):
        assert r[k] == sum(e[k] for e in n.values()), k
    assert r["pairing_rate"] == r["paired"] / r["keys"]
    assert (r["browser_rows"], r["server_rows"]) == (len(BROWSER), len(SERVER))
    assert r["status"] == "evaluated"
    json.dumps(r)


def test_analyze_empty_logs_rates_null_and_not_evaluated():
    r = run([], [])
    assert r["keys"] == 0 and r["by_event_name"] == {}
    assert r["pairing_rate"] is None and r["browser_coverage"] is None and r["server_coverage"] is None
    assert r["status"] == "not_evaluated"
    json.dumps(r)


def test_analyze_only_rows_without_ids_pairing_rate_null():
    r = run([ev("Lead", None, T)], [ev("Lead", "", T)])
    assert r["keys"] == 0 and r["pairing_rate"] is None
    assert (r["browser_missing_event_id"], r["server_missing_event_id"], r["status"]) == (1, 1, "evaluated")


def test_analyze_browser_log_only_server_coverage_null():
    r = run([ev("Lead", "a", T)], [])
    assert (r["browser_only"], r["pairing_rate"], r["browser_coverage"]) == (1, 0.0, 0.0)
    assert r["server_coverage"] is None and r["status"] == "not_evaluated"


# -- preparation: missing ids, exact comparison --------------------------------------------------


def test_analyze_whitespace_only_event_id_is_missing(shared):
    e = shared["n"]["Miss"]
    assert counts(e, "browser_missing_event_id", "server_missing_event_id", "keys", "browser_only") == (
        5,
        1,
        1,
        1,
    )


def test_analyze_event_name_compared_whitespace_sensitive(shared):
    assert counts(shared["n"]["Ws"], "browser_only", "browser_only_unexplained") == (1, 1)
    assert counts(shared["n"]["Ws "], "server_only", "server_only_unexplained", "name_case_mismatch") == (
        1,
        1,
        0,
    )


def test_analyze_event_id_compared_case_and_whitespace_sensitive(shared):
    e = shared["n"]["Idc"]
    assert counts(e, "paired", "browser_only", "server_only", "server_only_unexplained") == (0, 2, 2, 2)


def test_analyze_milliseconds_rows_take_part_after_conversion(shared):
    assert shared["n"]["Ms"]["paired"] == 1


# -- reasons -------------------------------------------------------------------------------------


def test_analyze_name_case_mismatch_counts_server_key_and_marks_browser_partner(shared):
    n, keys = shared["n"], shared["keys"]
    assert counts(n["caseevt"], "server_only", "name_case_mismatch", "server_only_unexplained") == (1, 1, 0)
    assert counts(n["CaseEvt"], "browser_only", "browser_name_case_mismatch", "browser_only_unexplained") == (
        1,
        1,
        0,
    )
    assert keys[("caseevt", "cx")]["reason"] == "name_case_mismatch"
    assert keys[("caseevt", "cx")]["partner_event_name"] == "CaseEvt"
    assert keys[("CaseEvt", "cx")]["partner_event_name"] == "caseevt"


def test_analyze_probable_different_ids_60s_inclusive_61s_not(shared):
    e = shared["n"]["Prob"]
    assert counts(e, "different_ids_probable", "server_only_unexplained") == (1, 1)
    assert counts(e, "browser_different_ids_probable", "browser_only_unexplained") == (1, 1)
    assert shared["keys"][("Prob", "p-s1")]["partner_event_id"] == "p-b1"


def test_analyze_probable_needs_same_name_and_nonempty_fbp(shared):
    n = shared["n"]
    assert counts(
        n["ProbN"], "different_ids_probable", "server_only_unexplained", "browser_only_unexplained"
    ) == (0, 2, 3)
    assert counts(n["ProbM"], "different_ids_probable", "server_only_unexplained") == (0, 1)


def test_analyze_probable_uses_first_value_of_list_fbp(shared):
    assert counts(shared["n"]["ProbL"], "different_ids_probable", "server_only_unexplained") == (1, 1)
    assert shared["keys"][("ProbL", "l-s1")]["reason"] == "different_ids_probable"


def test_analyze_probable_uses_earliest_rows_of_keys(shared):
    # The later browser row is 5 s away, but the key's earliest row is 100 s away.
    assert counts(shared["n"]["ProbE"], "different_ids_probable", "server_only_unexplained") == (0, 1)


def test_analyze_one_browser_key_explains_several_server_keys(shared):
    e, keys = shared["n"]["ProbS"], shared["keys"]
    assert counts(
        e, "different_ids_probable", "browser_different_ids_probable", "server_only", "browser_only"
    ) == (2, 1, 2, 1)
    assert keys[("ProbS", "s-b1")]["partner_event_id"] == "s-s1"  # the earliest server partner
    assert keys[("ProbS", "s-s2")]["partner_event_id"] == "s-b1"


def test_analyze_name_case_wins_over_probable_and_browser_partner_must_be_counted(shared):
    # Server prec/px matches browser Prec/px by case and browser prec/pother by fbp: it counts as
    # name_case_mismatch only, so prec/pother (whose only partner it is) stays unexplained.
    n = shared["n"]
    assert counts(n["prec"], "name_case_mismatch", "different_ids_probable", "browser_only_unexplained") == (
        1,
        0,
        1,
    )
    assert counts(n["Prec"], "browser_name_case_mismatch", "browser_different_ids_probable") == (1, 0)


def test_analyze_reason_counts_add_up_to_unpaired_keys(shared):
    r = shared["r"]
    assert (
        r["server_only"]
        == r["name_case_mismatch"] + r["different_ids_probable"] + r["server_only_unexplained"]
    )
    assert r["browser_only"] == (
        r["browser_name_case_mismatch"] + r["browser_different_ids_probable"] + r["browser_only_unexplained"]
    )
    assert (r["name_case_mismatch"], r["different_ids_probable"]) == (2, 4)


def test_key_table_reason_null_for_paired_and_outside_window(shared):
    keys = shared["keys"]
    assert (keys[("W48", "w1")]["category"], keys[("W48", "w1")]["reason"]) == ("paired", None)
    assert (keys[("W48x", "w2")]["category"], keys[("W48x", "w2")]["reason"]) == ("outside_window", None)
    assert keys[("W48x", "w2")]["skew_s"] is None and keys[("W48", "w1")]["skew_s"] == H48
    assert {k["category"] for k in keys.values()} == set(dedup.CATEGORIES)


# -- duplicates, reuse ---------------------------------------------------------------------------


def test_analyze_duplicate_rows_are_rows_minus_distinct_keys(shared):
    e = shared["n"]["Dup"]
    assert counts(e, "duplicate_server_rows", "duplicate_browser_rows", "server_missing_event_id") == (
        2,
        1,
        2,
    )


def test_analyze_reused_event_id_for_several_names_counted_per_log_and_summed():
    browser = [ev("Purchase", "same", T), ev("AddToCart", "same", T), ev("Lead", "ok", T)]
    server = [
        ev("Purchase", "same", T),
        ev("AddToCart", "same", T),
        ev("ViewContent", "same", T),
        ev("Lead", "x", T),
        ev("Purchase", "x", T),
    ]
    r = run(browser, server)
    assert (r["reused_event_id_browser"], r["reused_event_id_server"], r["reused_event_id"]) == (1, 2, 3)
    assert r["by_event_name"]["Purchase"]["reused_event_id"] == 3
    assert r["by_event_name"]["Lead"]["reused_event_id"] == 1


def test_analyze_reused_event_id_per_event_name(shared):
    n = shared["n"]
    assert (n["R1"]["reused_event_id"], n["R2"]["reused_event_id"], n["R3"]["reused_event_id"]) == (2, 2, 1)


def test_analyze_reused_event_id_spread_over_48h_boundary(shared):
    assert shared["n"]["Spread"]["reused_event_id"] == 1
    ids = [(e["role"], e["event_id"]) for e in shared["r"]["examples"]["reused_event_id"]]
    assert ("browser", "sb") in ids and ("browser", "sa") not in ids


# -- earliest row, ties, pixel keys --------------------------------------------------------------


def test_key_table_earliest_row_ties_broken_by_file_then_line(shared):
    k = shared["keys"][("Tie", "ta")]
    assert (k["server_time"], k["server_file_index"], k["server_line"]) == (T, 1, 3)
    assert (k["server_source_file"], k["skew_s"], k["server_rows"]) == ("s2.csv", -7, 4)


def test_paired_rows_use_earliest_rows_with_prefixed_columns(shared):
    rows = {
        (r["event_name"], r["event_id"]): r for r in shared["ds"].query(dedup.paired_rows(shared["ds"])).to_pylist()
    }
    assert len(rows) == shared["r"]["paired"]
    tie = rows[("Tie", "ta")]
    assert (tie["s_line"], tie["s_file_index"], tie["b_event_time"], tie["s_event_time"]) == (3, 1, T + 7, T)
    assert "b_fbp" in tie and "s_sent_at" in tie and "b_value" in tie


def test_paired_rows_carry_both_values():
    ds = Dataset.from_records(
        browser=[ev("Purchase", "a", T, value="10.00"), ev("Purchase", "a", T + 9, value="99")],
        server=[ev("Purchase", "a", T + 2, value="10"), ev("Lead", "b", T)],
    )
    rows = ds.query(dedup.paired_rows(ds)).to_pylist()
    assert [(r["event_id"], r["b_value"], r["s_value"]) for r in rows] == [("a", "10.00", "10")]


def test_key_table_pixel_id_part_of_key_when_both_logs_carry_it():
    browser = [ev("Lead", "a", T, pixel_id="111"), ev("Lead", "b", T, pixel_id="111")]
    server = [ev("Lead", "a", T, pixel_id="222"), ev("Lead", "b", T, pixel_id="111")]
    ds = Dataset.from_records(browser=browser, server=server)
    assert dedup.key_columns(ds) == ("pixel_id", "event_name", "event_id")
    r = dedup.analyze(ds, Config(), {})
    assert (r["paired"], r["browser_only"], r["server_only"]) == (1, 1, 1)
    assert r["key_columns"] == ["pixel_id", "event_name", "event_id"]
    assert set(keys_of(ds)) == {("111", "Lead", "a"), ("222", "Lead", "a"), ("111", "Lead", "b")}


def test_key_table_pixel_id_ignored_when_one_log_lacks_it():
    ds = Dataset.from_records(browser=[ev("Lead", "a", T)], server=[ev("Lead", "a", T, pixel_id="222")])
    assert dedup.key_columns(ds) == ("event_name", "event_id")
    assert "pixel_id" not in dedup.key_table(ds).columns
    assert keys_of(ds)[("Lead", "a")]["category"] == "paired"


# -- examples, fallback ----------------------------------------------------------------------------


def test_analyze_examples_earliest_first_and_limited():
    browser = [ev("Lead", f"b{i}", T + 10 - i) for i in range(5)]
    r = run(browser, [ev("Lead", "x", T)], Config.from_text("[dedup]\nexamples = 2\n"))
    assert [e["event_id"] for e in r["examples"]["browser_only"]] == ["b4", "b3"]
    assert r["examples"]["server_only"][0]["reason"] == "server_only_unexplained"
    assert r["examples"]["paired"] == [] and r["examples"]["outside_window"] == []


def test_analyze_duplicate_examples_list_later_copies(shared):
    dups = [
        (d["event_id"], d["event_time"], d["copy"])
        for d in shared["r"]["examples"]["duplicate_server_rows"]
        if d["event_name"] == "Dup"
    ]
    assert dups == [("da", T + 1, 1), ("da", T + 2, 2)]


def test_analyze_fallback_fbp_browser_first_within_48h(shared):
    n = shared["n"]
    assert counts(
        n["Fb"], "fallback_mergeable_server_rows", "fallback_by_fbp", "fallback_by_external_id"
    ) == (1, 1, 0)
    assert n["FbOther"]["fallback_mergeable_server_rows"] == 0


def test_analyze_fallback_external_id_first_value_and_both_counted_once(shared):
    assert counts(
        shared["n"]["Fbe"], "fallback_mergeable_server_rows", "fallback_by_fbp", "fallback_by_external_id"
    ) == (2, 1, 2)


# -- shared expressions, failing rows ------------------------------------------------------------


def test_pairing_by_hour_counts_by_first_time_hour():
    hour = (T // 3600) * 3600
    browser = [ev("Lead", "a", hour + 3599), ev("Lead", "b", hour + 3600), ev("Lead", "c", hour + 10)]
    server = [ev("Lead", "a", hour + 3700), ev("Lead", "b", hour + 3600)]
    ds = Dataset.from_records(browser=browser, server=server)
    rows = ds.query(dedup.pairing_by_hour(ds)).to_pylist()
    assert [(r["hour"], r["keys"], r["paired"], r["browser_only"]) for r in rows] == [
        (hour, 2, 1, 1),
        (hour + 3600, 1, 1, 0),
    ]


def test_failing_rows_columns_and_counts_match_findings(shared):
    assert tuple(dedup.failing_rows(shared["ds"], Config()).columns) == FAILING_ROW_COLUMNS
    rows = shared["failing"]
    assert {r["section"] for r in rows} == {"dedup"}

    def n(finding: str, role: str | None = None, name: str | None = None) -> int:
        return sum(
            1
            for r in rows
            if r["finding"] == finding and role in (None, r["role"]) and name in (None, r["event_name"])
        )

    r = shared["r"]
    for f in (
        "duplicate_browser_rows",
        "duplicate_server_rows",
        "browser_missing_event_id",
        "server_missing_event_id",
    ):
        assert n(f) == r[f], f
    assert (n("name_case_mismatch", "server", "caseevt"), n("name_case_mismatch", "browser", "CaseEvt")) == (
        1,
        1,
    )
    assert (n("outside_window", "browser", "W48x"), n("outside_window", "server", "W48x")) == (1, 1)
    assert (
        n("server_only_unexplained", "server", "Cats") == 1
        and n("browser_only_unexplained", None, "Cats") == 2
    )
    assert n("reused_event_id", "server") == 3 + 0 and n("reused_event_id", "browser") == 2 + 2
    sev = {x["finding"]: x["severity"] for x in rows}
    assert (sev["name_case_mismatch"], sev["reused_event_id"], sev["outside_window"]) == (
        "error",
        "error",
        "warning",
    )


# -- config, explain -----------------------------------------------------------------------------


def test_options_negative_window_is_config_error():
    with pytest.raises(ConfigError, match="window_s"):
        dedup.options(Config.from_text("[dedup]\nwindow_s = -1\n"))


def test_options_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match="window_s"):
        dedup.options(Config.from_text("[dedup]\nwindow = 5\n"))


def test_explain_one_entry_per_number_with_fix(shared):
    entries = dedup.explain(shared["r"])
    labels = {e["label"]: e for e in entries}
    assert labels["Pairing rate"]["value"] == shared["r"]["pairing_rate"]
    assert all(set(e) == {"label", "value", "text", "fix", "unit"} and e["text"] and e["fix"] for e in entries)
    assert len(entries) == 17
