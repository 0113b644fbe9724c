"""The key table's pairing by aggregates: keys with several rows per log, ties in ``event_time``.

The key table (:func:`capi_diag.engine.measures.key_table_expr`) finds each key's earliest rows and
its category from one grouping over both logs; only keys with rows in both logs and several in one
look at the rows themselves. These tests pin the cases where a grouping alone would be wrong (rows
of one log on both sides of the other log's row, but none within the window) and the ties (same
time: file order, then line), first on hand-built keys, then against a brute-force reference on
random small logs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capi_diag.diagnostics import dedup
from capi_diag.engine.dataset import Dataset

T = 1_700_000_000
H48 = 172_800


def ev(name: str, eid: str, t: int, file_index: int = 0, line: int | None = None, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"event_name": name, "event_id": eid, "event_time": t, "file_index": file_index,
                           "source_file": f"f{file_index}.csv", **kw}
    if line is not None:
        rec["line"] = line
    return rec


def key_rows(ds: Dataset) -> dict[tuple, dict[str, Any]]:
    return {(r["event_name"], r["event_id"]): r for r in ds.query(dedup.key_table(ds)).to_pylist()}


BROWSER = [
    ev("Tie", "a", T, line=5), ev("Tie", "a", T, line=3), ev("Tie", "a", T + 100, line=2),
    ev("Gap", "g", T, line=10), ev("Gap", "g", T + 4 * H48, line=11),
    ev("FileTie", "f", T, file_index=1, line=2), ev("FileTie", "f", T, file_index=0, line=9),
    ev("W48", "w", T, line=20), ev("W48x", "x", T, line=21),
    ev("Late", "l", T, line=30),
    ev("Same", "s", T, line=40), ev("Same", "s", T, line=41),
    ev("BOnly", "bo", T + 5, line=50), ev("BOnly", "bo", T + 1, line=51),
]
SERVER = [
    ev("Tie", "a", T + 50, line=7), ev("Tie", "a", T + 50, line=4), ev("Tie", "a", T + 60, line=2),
    ev("Gap", "g", T + 2 * H48, line=10),
    ev("FileTie", "f", T + 3, line=5),
    ev("W48", "w", T + H48, line=20), ev("W48x", "x", T + H48 + 1, line=21),
    ev("Late", "l", T - 3 * H48, line=30), ev("Late", "l", T + 10, line=31),
    ev("Same", "s", T, line=40), ev("Same", "s", T, line=41),
    ev("SOnly", "so", T + 7, line=50), ev("SOnly", "so", T + 7, line=51),
]


def test_several_rows_per_side_categories_and_counts():
    keys = key_rows(Dataset.from_records(browser=BROWSER, server=SERVER))
    got = {k: (r["category"], r["browser_rows"], r["server_rows"]) for k, r in keys.items()}
    assert got == {
        ("Tie", "a"): ("paired", 3, 3),
        ("Gap", "g"): ("outside_window", 2, 1),  # browser rows on both sides of the server row, 2 x 48 h away
        ("FileTie", "f"): ("paired", 2, 1),
        ("W48", "w"): ("paired", 1, 1),
        ("W48x", "x"): ("outside_window", 1, 1),
        ("Late", "l"): ("paired", 1, 2),  # through the later server row
        ("Same", "s"): ("paired", 2, 2),
        ("BOnly", "bo"): ("browser_only", 2, 0),
        ("SOnly", "so"): ("server_only", 0, 2),
    }


def test_ties_in_event_time_take_the_earlier_line_then_file():
    keys = key_rows(Dataset.from_records(browser=BROWSER, server=SERVER))
    tie = keys[("Tie", "a")]
    assert (tie["browser_time"], tie["browser_line"], tie["browser_last_time"]) == (T, 3, T + 100)
    assert (tie["server_time"], tie["server_line"], tie["server_last_time"]) == (T + 50, 4, T + 60)
    assert (tie["skew_s"], tie["first_time"]) == (50, T)
    ft = keys[("FileTie", "f")]
    assert (ft["browser_file_index"], ft["browser_line"], ft["browser_source_file"]) == (0, 9, "f0.csv")
    same = keys[("Same", "s")]
    assert (same["browser_line"], same["server_line"], same["skew_s"]) == (40, 40, 0)
    so = keys[("SOnly", "so")]
    assert (so["server_line"], so["server_time"], so["browser_time"], so["skew_s"]) == (50, T + 7, None, None)
    bo = keys[("BOnly", "bo")]
    assert (bo["browser_line"], bo["browser_time"], bo["browser_last_time"]) == (51, T + 1, T + 5)


def test_skew_is_between_the_earliest_rows_even_when_a_later_row_pairs():
    keys = key_rows(Dataset.from_records(browser=BROWSER, server=SERVER))
    late = keys[("Late", "l")]
    assert (late["server_time"], late["server_line"], late["skew_s"]) == (T - 3 * H48, 30, -3 * H48)
    assert keys[("Gap", "g")]["skew_s"] is None
    assert keys[("W48", "w")]["skew_s"] == H48


def test_paired_rows_join_the_earliest_rows_of_multi_row_keys():
    ds = Dataset.from_records(browser=BROWSER, server=SERVER)
    rows = {(r["event_name"], r["event_id"]): r for r in ds.query(dedup.paired_rows(ds)).to_pylist()}
    assert sorted(rows) == sorted(k for k, r in key_rows(ds).items() if r["category"] == "paired")
    assert (rows[("Tie", "a")]["b_line"], rows[("Tie", "a")]["s_line"]) == (3, 4)
    assert (rows[("FileTie", "f")]["b_file_index"], rows[("FileTie", "f")]["b_line"]) == (0, 9)


# -- against a brute-force reference -------------------------------------------------------------

def reference(browser: list[dict[str, Any]], server: list[dict[str, Any]]) -> dict[tuple, tuple]:
    """Category, row counts, earliest rows (time, file, line) and skew, straight from the definitions."""
    def rows_of(log: list[dict[str, Any]]) -> dict[tuple, list[tuple]]:
        out: dict[tuple, list[tuple]] = {}
        for i, r in enumerate(log):
            out.setdefault((r["event_name"], r["event_id"]), []).append(
                (r["event_time"], r["file_index"], r.get("line", i + 2)))
        return out

    b, s = rows_of(browser), rows_of(server)
    out = {}
    for key in set(b) | set(s):
        br, sr = sorted(b.get(key, [])), sorted(s.get(key, []))
        if br and sr:
            near = any(abs(x[0] - y[0]) <= H48 for x in br for y in sr)
            cat = "paired" if near else "outside_window"
        else:
            cat = "browser_only" if br else "server_only"
        eb, es = (br[0] if br else None), (sr[0] if sr else None)
        skew = es[0] - eb[0] if cat == "paired" else None
        out[key] = (cat, len(br), len(sr), eb, es, skew)
    return out


def random_log(draw: st.DrawFn, n: int) -> list[dict[str, Any]]:
    times = [T, T + 1, T + H48, T + H48 + 1, T + 2 * H48, T + 3 * H48 + 1]
    log = []
    for i in range(n):
        name = draw(st.sampled_from(["A", "B"]))
        eid = draw(st.sampled_from(["1", "2", "3"]))
        log.append(ev(name, eid, draw(st.sampled_from(times)), file_index=draw(st.integers(0, 1)),
                      line=draw(st.integers(2, 4)) + 10 * i))
    return log


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return random_log(draw, draw(st.integers(0, 9))), random_log(draw, draw(st.integers(0, 9)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs())
def test_key_table_equals_brute_force_reference(pair):
    browser, server = pair
    keys = key_rows(Dataset.from_records(browser=browser, server=server))
    got = {
        k: (r["category"], r["browser_rows"], r["server_rows"],
            None if r["browser_time"] is None else (r["browser_time"], r["browser_file_index"], r["browser_line"]),
            None if r["server_time"] is None else (r["server_time"], r["server_file_index"], r["server_line"]),
            r["skew_s"])
        for k, r in keys.items()
    }
    assert got == reference(browser, server)
