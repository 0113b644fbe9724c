"""The benchmark harness (bench/): its measurements, data generation and table (not the benchmark itself)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import datagen, pandas_baseline  # noqa: E402
from bench import run as bench_run  # noqa: E402
from bench.measure import run_measured  # noqa: E402


def _data_lines(path: Path) -> tuple[bytes, list[bytes]]:
    lines = path.read_bytes().splitlines()
    return lines[0], sorted(lines[1:])


def test_pandas_baseline_demo_data_matches_manifest():
    manifest = json.loads((ROOT / "data" / "manifest.json").read_text())
    got = pandas_baseline.analyse(str(ROOT / "data" / "browser_events.csv"), str(ROOT / "data" / "server_events.csv"))
    assert got["dedup"] == {k: manifest["dedup"][k] for k in ("paired", "outside_window", "browser_only",
                                                              "server_only")}
    assert got["dedup"] == {"paired": 3462, "outside_window": 0, "browser_only": 200, "server_only": 891}
    rows = manifest["rows"]["server"]["written"]
    assert got["rows"] == {"browser": manifest["rows"]["browser"]["loadable"], "server": rows}
    for field in ("em", "fbp", "fbc"):
        assert got["coverage"][field] == manifest["match_keys"][field]["present"] / rows
    assert got["coverage"]["client_ip_address"] == 1.0


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_pandas_baseline_reads_unix_times_in_the_browser_log(tmp_path, unit):
    import pandas as pd

    browser = pd.read_csv(ROOT / "data" / "browser_events.csv", dtype=str)
    ts = pd.to_datetime(browser["timestamp"], utc=True, format="ISO8601", errors="coerce")
    seconds = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    scale = 1000 if unit == "ms" else 1
    browser["timestamp"] = [str(int(x) * scale) if pd.notna(x) else raw
                            for x, raw in zip(seconds, browser["timestamp"], strict=True)]
    path = tmp_path / "browser.csv"
    browser.to_csv(path, index=False)
    server = str(ROOT / "data" / "server_events.csv")
    want = pandas_baseline.analyse(str(ROOT / "data" / "browser_events.csv"), server)
    got = pandas_baseline.analyse(str(path), server)
    assert got == want
    assert got["dedup"]["paired"] == 3462


def test_agreement_prints_both_answers():
    report = {"dedup": {"paired": 5, "outside_window": 0, "browser_only": 1, "server_only": 2},
              "match_keys": {"em": {"coverage": 0.5}}}
    baseline = {"dedup": {"paired": 5, "outside_window": 0, "browser_only": 1, "server_only": 2},
                "coverage": {"em": 0.5}}
    got = bench_run.agreement(report, baseline)
    assert got["agree"]
    assert bench_run.answers(got["capi_diag"]) == bench_run.answers(got["pandas"]) == (
        "paired/outside/browser-only/server-only 5/0/1/2; coverage em 0.5000")


def test_datagen_chunks_hold_the_rows_of_one_run(tmp_path, monkeypatch):
    from capi_diag.io import sample

    monkeypatch.setattr(datagen, "CHUNK_SESSIONS", 150)
    monkeypatch.setattr(datagen, "CALIBRATION_SESSIONS", 300)
    logs = datagen.ensure_logs("1000", 3, sys.executable, tmp_path, log=lambda _: None)
    meta = logs.meta
    assert meta["sessions"] == round(1000 / meta["server_rows_per_session"])
    assert [c["sessions"] for c in meta["chunks"]] == [150, 150, meta["sessions"] - 300]
    assert [c["offset"] for c in meta["chunks"]] == [0, 150, 300]
    assert meta["event_ids_shared_across_chunks"] == 0
    one = sample.write_sample(tmp_path / "one", sessions=meta["sessions"], seed=3)
    manifest = json.loads(one[2].read_text())
    assert meta["rows"] == {r: manifest["rows"][r]["written"] for r in ("browser", "server")}
    assert _data_lines(logs.browser) == _data_lines(one[0])
    assert _data_lines(logs.server) == _data_lines(one[1])
    assert datagen.cached("1000", 3, tmp_path).folder == logs.folder


def test_datagen_shared_ids_across_chunks_counts_ids_in_two_chunks(tmp_path):
    for name, browser_ids, server_ids in (("a", ["x", "y", ""], ["x", "p"]), ("b", ["z"], ["y", "p", "p"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "browser_events.csv").write_text("event,eventID\n" + "".join(
            f"PageView,{i}\n" for i in browser_ids))
        (tmp_path / name / "server_events.csv").write_text("event_name,event_id\n" + "".join(
            f"PageView,{i}\n" for i in server_ids))
    assert datagen._shared_ids_across_chunks([tmp_path / "a", tmp_path / "b"]) == 2  # y and p


def test_datagen_parse_size_labels():
    assert [datagen.parse_size(s) for s in ("100k", "1M", "10M", "2500", "0.5M")] == [
        100_000, 1_000_000, 10_000_000, 2_500, 500_000]
    with pytest.raises(ValueError):
        datagen.parse_size("ten")


def test_run_measured_child_allocation_shows_in_peak_rss_and_exit_code():
    run = run_measured([sys.executable, "-c", "import sys; b = b'x' * (300 * 2**20); sys.exit(7)"])
    assert run.returncode == 7
    assert 300 * 2**20 <= run.peak_rss_bytes < 1000 * 2**20


def test_run_measured_big_parent_does_not_inflate_the_child_peak():
    ballast = b"z" * (400 * 2**20)  # Linux seeds a spawned child's ru_maxrss with its parent's peak
    small = run_measured([sys.executable, "-c", "print('hi')"])
    assert len(ballast) == 400 * 2**20
    assert small.returncode == 0 and small.stdout == "hi\n"
    assert small.peak_rss_bytes < 50 * 2**20


def test_run_measured_timeout_kills_the_child():
    run = run_measured([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)
    assert run.timed_out
    assert run.returncode == -9
    assert run.wall_s < 10


def test_floor_db_kind_follows_capi_stats_else_the_size_rule():
    assert bench_run.floor_db_kind("auto", 10_000_000, None)[0] == "file"
    assert bench_run.floor_db_kind("auto", 1_000_000, None)[0] == "memory"
    assert bench_run.floor_db_kind("auto", 10_000_000, {"database": "memory"})[0] == "memory"
    assert bench_run.floor_db_kind("auto", 100, {"database": "file"})[0] == "file"
    assert bench_run.floor_db_kind("memory", 10_000_000, {"database": "file"})[0] == "memory"


def _tool(median: float | None, rss: int = 10**8, ok: bool = True) -> dict:
    return {"ok": ok, "median_s": median, "peak_rss_bytes": rss, "error": None if ok else "exit 3: boom"}


def _size(server: int, capi: float, floor: float, pandas: float | None = None, rss: int = 10**8) -> dict:
    e = {"status": "ok", "data": {"rows": {"server": server, "browser": server * 8 // 10},
                                  "bytes": {"browser": 10**6, "server": 2 * 10**6}},
         "capi_diag": {**_tool(capi, rss), "stats": None}, "floor": {**_tool(floor), "database": "memory"}}
    if pandas is not None:
        e["pandas"] = _tool(pandas)
    return e


def test_build_table_sizes_not_run_are_missed_and_targets_judged():
    results = {"small": None, "sizes": {
        "100k": _size(100_000, 10.0, 1.0, pandas=3.0),
        "1M": _size(1_000_000, 20.0, 10.0, pandas=100.0),
        "10M": {"label": "10M", "status": "not run"},
    }}
    table = {r["measurement"]: (r["value"], r["met"]) for r in bench_run.build_table(results)}
    assert table["1-row log: `report`"] == ("not run", "no")
    assert table["100k: `report` / floor"] == ("10.0×", "—")
    assert table["100k: pandas / `report`"] == ("0.30×", "—")
    assert table["1M: `report` / floor"] == ("2.0×", "yes")
    assert table["1M: `report` peak RSS"] == ("100 MB", "yes")
    assert table["1M: pandas / `report` (capi-diag speed-up)"] == ("5.0×", "yes")
    assert table["1M: compiled SQL of the report"] == ("n/a (no stats file)", "—")
    assert table["growth 100k → 1M: `report` time"] == ("2.0× for 10.0× the events", "yes")
    assert table["10M: all measurements"] == ("not run (missed)", "no")
    assert table["10M: `report` / floor"] == ("not run", "no")
    assert table["10M: `report` peak RSS"] == ("not run", "no")
    assert table["growth 1M → 10M: `report` time"] == ("not measured", "no")


def test_build_table_failed_or_slow_size_misses_its_targets():
    results = {"small": None, "sizes": {
        "100k": _size(100_000, 1.0, 0.5),
        "1M": _size(1_000_000, 16.0, 5.0, pandas=30.0, rss=2 * 10**9),
        "10M": _size(10_000_000, 400.0, 100.0, rss=4 * 10**9),
    }}
    results["sizes"]["10M"]["capi_diag"].update(ok=False, error="exit 3: boom", median_s=None)
    table = {r["measurement"]: (r["value"], r["met"]) for r in bench_run.build_table(results)}
    assert table["1M: `report` / floor"] == ("3.2×", "no")
    assert table["1M: `report` peak RSS"] == ("2.00 GB", "no")
    assert table["1M: pandas / `report` (capi-diag speed-up)"] == ("1.9×", "no")
    assert table["growth 100k → 1M: `report` time"] == ("16.0× for 10.0× the events", "no")
    assert table["1M: `report --engine spark`, local[2]"] == ("not run (--spark)", "no")
    assert table["dashboard at 1M: a filter change"] == ("not run (--dashboard 1M)", "no")
    assert table["10M: `report`"] == ("failed (exit 3: boom)", "—")
    assert table["10M: `report` / floor"] == ("n/a", "no")
    assert table["10M: `report` peak RSS"] == ("n/a", "no")


def test_build_table_dashboard_rows_from_the_browser_bench_figures():
    figures = {"uploads_s": 4.2, "checklist_s": 18.5, "page_first_visit_s": {"Dedup": 3.0, "Timing": 0.8},
               "page_switch_s": {"Dedup": 0.6, "Timing": 1.4}, "filter_s": 1.9, "clear_filters_s": 0.7,
               "session_peak_rss_bytes": 2_600_000_000}
    results = {"small": None, "sizes": {}, "dashboard": {"1M": {"ok": True, "figures": figures}}}
    table = {r["measurement"]: (r["value"], r["met"]) for r in bench_run.build_table(results)}
    assert table["dashboard at 1M: upload → checklist (`bench/bench_browser.py`)"] == (
        "18.5 s from the click on Import and analyse (uploads acknowledged after 4.20 s)", "yes")
    assert table["dashboard at 1M: every page switch after the first visit"] == (
        "max 1.40 s (Timing) over 2 pages; first visits max 3.00 s", "no")
    assert table["dashboard at 1M: a filter change"] == ("1.90 s (clearing it again 0.70 s)", "yes")
    assert table["dashboard at 1M: the session's peak RSS, uploaded bytes included"] == ("2.60 GB", "no")
    results["dashboard"] = {"1M": {"ok": False, "error": "timed out after 1200 s"}}
    table = {r["measurement"]: (r["value"], r["met"]) for r in bench_run.build_table(results)}
    assert table["dashboard at 1M: a filter change"] == ("failed: timed out after 1200 s", "no")


def test_agreement_lists_each_difference():
    report = {"dedup": {"paired": 5, "outside_window": 0, "browser_only": 1, "server_only": 2},
              "match_keys": {"em": {"coverage": 0.5}, "fbp": {"coverage": None}}}
    baseline = {"dedup": {"paired": 5, "outside_window": 0, "browser_only": 1, "server_only": 3},
                "coverage": {"em": 0.5, "fbp": 0.25}}
    got = bench_run.agreement(report, baseline)
    assert not got["agree"]
    assert got["differences"] == ["dedup.server_only: capi-diag 2, pandas 3",
                                  "match_keys.fbp.coverage: capi-diag None, pandas 0.25"]


def test_stats_summary_absent_file_is_none_and_medians_otherwise(tmp_path):
    assert bench_run._read_stats(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{")
    assert "unreadable" in bench_run._read_stats(tmp_path / "bad.json")
    runs = [{"stats": None}, {"stats": {"queries": 9, "sql_bytes": 100, "compile_s": 0.5, "execute_s": 1.0}},
            {"stats": {"queries": 9, "sql_bytes": 120, "compile_s": 0.1, "execute_s": 2.0, "database": "file"}}]
    assert bench_run._stats_summary([{"stats": None}]) is None
    assert bench_run._stats_summary(runs) == {"queries": 9, "sql_bytes": 110, "compile_s": 0.3, "execute_s": 1.5,
                                              "database": "file"}
