"""The benchmark (``make bench``): capi-diag against the DuckDB floor and a pandas baseline.

    python bench/run.py                          # all sizes (100k, 1M, 10M server events), 3 runs each
    python bench/run.py --sizes 100k --runs 3    # one size; the sizes not run are shown as missed
    python bench/run.py --generate-only --sizes 10M

What it measures, each timing the median of ``--runs`` whole-process runs (a fresh process each;
wall time from spawn to exit and the child's own peak RSS, from ``os.wait4``):

* for each size (logs from the demo generator, cached under ``bench/_data/``, see ``datagen.py``):
  the **floor** (``bench/floor.py``: Python, ``import duckdb`` and ``CREATE TABLE ... AS SELECT *
  FROM read_csv(...)`` for both logs), **capi-diag** (``python -m capi_diag report --browser B
  --server S --output X``), the **pandas baseline** (``bench/pandas_baseline.py``, sizes up to 1M),
  and capi-diag's compiled-SQL size and query count when it writes them (``CAPI_DIAG_STATS``);
* the ratios the targets name: capi-diag / floor, the growth of capi-diag's time per 10x events,
  pandas / capi-diag;
* the **1-row** report and the **demo data** report (``data/*.csv``) against its floor, and the Test
  Events **local validation** of a 10-event batch (``bench/validate_timing.py``, in process, median
  of 5 after a warm-up);
* with ``--spark 1M``, ``report --engine spark`` on ``local[2]`` (killed after ``--spark-timeout``);
  with ``--dashboard 1M``, the dashboard in a real Chromium (``bench/bench_browser.py``: upload to
  checklist, page switches, a filter change, the session's peak RSS).

It prints a Markdown table (measurement, value, target, met) and writes the same data with every
run, the machine (cores, memory, CPU model), the versions and the git commit to
``bench/results/latest.json`` (and the table to ``latest.md``). Every standard size appears in the
table: one that was not run, or failed, is shown as missed. The machine may be shared: the load
average is recorded with every run, and the timings are indicative.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import datagen  # noqa: E402
from bench.measure import ProcessRun, run_measured  # noqa: E402

STANDARD_SIZES = ("100k", "1M", "10M")
PANDAS_MAX_ROWS = 1_000_000
"""The pandas baseline runs up to this many server events (it is compared at 100k and 1M)."""
FILE_DB_FROM = 5_000_000
"""Without a hint from capi-diag's stats file, the floor uses a file-backed database from this many
server events on (in memory below): at 10M an in-memory load needs far more than the 3 GB that
capi-diag is allowed, so capi-diag must use a file there and the floor does the same."""
SQL_BYTES_BEFORE = 270_000
"""The reference the compiled-SQL target is set against: one full report compiled to about 270 KB of SQL
over 59 queries when the targets were set."""
GB = 1e9

# the targets, for a 2-core, 24 GB machine (bench/README.md, "Targets")
# (issue 21: 1M at 3x its in-memory floor in 1.5 GB, 10M at 3x its file floor in 3 GB, pandas 2x slower)
ONE_ROW_MAX_S = 0.7
DEMO_MAX_RATIO = 4.0
VALIDATION_MAX_S = 0.2
FLOOR_MAX_RATIO = {"1M": 3.0, "10M": 3.0}
RSS_MAX_BYTES = {"1M": 1.5 * GB, "10M": 3 * GB}
GROWTH_MAX = 11.0
"""10x the events costs at most 11x the time."""
PANDAS_MIN_SPEEDUP = {"1M": 2.0}
SPARK_MAX_S = {"1M": 120.0}
"""``report --engine spark`` on ``local[2]``: completes with DuckDB's figures, aimed within this time."""
SPARK_MASTER = "local[2]"
DASHBOARD_TARGETS = (
    ("dashboard at 1M: upload → checklist (`bench/bench_browser.py`)", "≤ 20 s"),
    ("dashboard at 1M: every page switch after the first visit", "≤ 1 s"),
    ("dashboard at 1M: a filter change", "≤ 2 s"),
    ("dashboard at 1M: the session's peak RSS, uploaded bytes included", "≤ 2.5 GB"),
)
"""Measured by ``bench/bench_browser.py`` (real Chromium against ``streamlit run app.py``), which this script
runs with ``--dashboard 1M`` (else the rows are shown as not run)."""
DASHBOARD_MAX = {"checklist_s": 20.0, "page_switch_s": 1.0, "filter_s": 2.0, "session_peak_rss_bytes": 2.5 * GB}

Log = Callable[[str], None]


def log_err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- measuring -------------------------------------------------------------------------------------

class Tool:
    """One command measured ``runs`` times; a failed run stops the tool and marks it missed."""

    def __init__(self, name: str, ok_codes: Sequence[int] = (0,)) -> None:
        self.name = name
        self.ok_codes = tuple(ok_codes)
        self.runs: list[dict[str, Any]] = []
        self.error: str | None = None
        self.command: str | None = None
        self.last: ProcessRun | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def measure(self, cmd: list[str], *, env: dict[str, str] | None = None, timeout: float | None = None,
                extra: dict[str, Any] | None = None) -> ProcessRun | None:
        if self.failed:
            return None
        self.command = " ".join(shlex.quote(c) for c in cmd)
        load = os.getloadavg()[0]
        run = run_measured(cmd, cwd=ROOT, env=env, timeout=timeout)
        record = {"wall_s": round(run.wall_s, 4), "cpu_s": None if run.cpu_s is None else round(run.cpu_s, 3),
                  "peak_rss_bytes": run.peak_rss_bytes,
                  "returncode": run.returncode, "load_1min_before": round(load, 2), **(extra or {})}
        self.runs.append(record)
        self.last = run
        if run.timed_out:
            self.error = f"timed out after {timeout:.0f} s"
        elif run.returncode not in self.ok_codes:
            self.error = f"exit {run.returncode}: {run.stderr_tail(3) or '(no output)'}"
        if self.error:
            record["error"] = self.error
        return run

    def summary(self) -> dict[str, Any]:
        times = [r["wall_s"] for r in self.runs if "error" not in r]
        return {
            "command": self.command,
            "ok": not self.failed and bool(self.runs),
            "error": self.error,
            "median_s": statistics.median(times) if times and not self.failed else None,
            "peak_rss_bytes": max((r["peak_rss_bytes"] for r in self.runs), default=None),
            "runs": self.runs,
        }


def _python(args: argparse.Namespace) -> str:
    return args.python or sys.executable


def _read_stats(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return {"unreadable": str(e)}
    return data if isinstance(data, dict) else {"unreadable": "not a JSON object"}


def _stats_summary(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Medians of the numbers capi-diag wrote to ``CAPI_DIAG_STATS`` (None when it wrote none)."""
    stats = [r["stats"] for r in runs if isinstance(r.get("stats"), dict) and "unreadable" not in r["stats"]]
    if not stats:
        return None
    out: dict[str, Any] = {}
    for key in ("queries", "sql_bytes", "compile_s", "execute_s"):
        values = [s[key] for s in stats if isinstance(s.get(key), (int, float)) and not isinstance(s.get(key), bool)]
        out[key] = statistics.median(values) if values else None
    if any("database" in s for s in stats):
        out["database"] = stats[-1].get("database")
    return out


def _report_cmd(python: str, browser: Path, server: Path, output: Path, engine: str = "duckdb") -> list[str]:
    extra = ["--engine", "spark", "--spark-master", SPARK_MASTER] if engine == "spark" else []
    return [python, "-m", "capi_diag", "report", "--browser", str(browser), "--server", str(server),
            "--output", str(output), *extra]


def _capi_run(tool: Tool, python: str, browser: Path, server: Path, tmp: Path, timeout: float | None) -> None:
    stats_path = tmp / "capi_diag_stats.json"
    stats_path.unlink(missing_ok=True)
    env = dict(os.environ, CAPI_DIAG_STATS=str(stats_path))
    output = tmp / "report.json"
    output.unlink(missing_ok=True)
    # 0 = nothing at the bar, 1 = checklist failures (the demo mix has them): both are a finished report
    tool.measure(_report_cmd(python, browser, server, output), env=env, timeout=timeout)
    if tool.runs:
        tool.runs[-1]["stats"] = _read_stats(stats_path)


def floor_db_kind(choice: str, target_rows: int, capi_stats: dict[str, Any] | None) -> tuple[str, str]:
    """``memory`` or ``file`` for the floor, and why: the kind capi-diag reports using, else the rule."""
    if choice != "auto":
        return choice, "--floor-db"
    db = (capi_stats or {}).get("database")
    if db in ("memory", "file"):
        return str(db), "as capi-diag's stats file reports"
    kind = "file" if target_rows >= FILE_DB_FROM else "memory"
    return kind, f"rule: a file-backed database from {FILE_DB_FROM:,} server events on"


def _floor_run(tool: Tool, python: str, browser: Path, server: Path, tmp: Path, kind: str,
               timeout: float | None) -> None:
    cmd = [python, str(ROOT / "bench" / "floor.py"), "--browser", str(browser), "--server", str(server)]
    db = tmp / "floor.duckdb"
    if kind == "file":
        cmd += ["--db", str(db)]
    try:
        tool.measure(cmd, timeout=timeout, extra={"database": kind})
    finally:
        for p in (db, db.with_name(db.name + ".wal")):
            p.unlink(missing_ok=True)


def measure_size(label: str, args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """Generate (or reuse) the logs of one size and measure capi-diag, the floor and pandas on them."""
    target = datagen.parse_size(label)
    entry: dict[str, Any] = {"label": label, "target_server_rows": target, "status": "ok"}
    python = _python(args)
    try:
        logs = datagen.ensure_logs(label, args.seed, python, Path(args.data_dir), log)
    except Exception as e:  # a size that cannot be generated is shown as missed, the others still run
        entry.update(status="failed", error=f"generating the logs failed: {e}")
        log(f"{label}: {entry['error']}")
        return entry
    entry["data"] = {"folder": str(logs.folder), "sessions": logs.meta["sessions"], "rows": logs.meta["rows"],
                     "bytes": logs.meta["bytes"], "chunks": len(logs.meta["chunks"]),
                     "generation_s": logs.meta["generation_s"]}
    capi, floor = Tool("capi_diag", ok_codes=(0, 1)), Tool("floor")
    pandas = Tool("pandas") if target <= PANDAS_MAX_ROWS else None
    kind = reason = None
    runs = args.large_runs if args.large_runs and target >= FILE_DB_FROM else args.runs
    with tempfile.TemporaryDirectory(prefix="capi-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for i in range(runs):
            log(f"{label}: run {i + 1}/{runs}")
            _capi_run(capi, python, logs.browser, logs.server, tmp, args.timeout)
            if kind is None:
                kind, reason = floor_db_kind(args.floor_db, target, _stats_summary(capi.runs))
            _floor_run(floor, python, logs.browser, logs.server, tmp, kind, args.timeout)
            if pandas is not None:
                pandas.measure([python, str(ROOT / "bench" / "pandas_baseline.py"), str(logs.browser),
                                str(logs.server)], timeout=args.timeout)
            log("  " + ", ".join(f"{t.name} {t.runs[-1]['wall_s']:.2f} s" + (" FAILED" if t.failed else "")
                                 for t in (capi, floor, pandas) if t is not None and t.runs))
        report = _read_report(tmp / "report.json") if not capi.failed else None
        if label in args.spark_labels:
            # Spark local beside DuckDB, for reference (Spark pays off on a cluster, not 2 cores)
            spark = Tool("spark_local", ok_codes=(0, 1))
            for i in range(args.spark_runs):
                log(f"{label}: Spark run {i + 1}/{args.spark_runs}")
                spark.measure(_report_cmd(python, logs.browser, logs.server, tmp / "spark.json", "spark"),
                              timeout=args.spark_timeout)
                log(f"  spark_local {spark.runs[-1]['wall_s']:.2f} s" + (" FAILED" if spark.failed else ""))
            entry["spark_local"] = spark.summary()
            if report is not None and not spark.failed:
                entry["spark_agrees"] = _same_report(report, _read_report(tmp / "spark.json"))
    entry["capi_diag"] = {**capi.summary(), "stats": _stats_summary(capi.runs)}
    entry["floor"] = {**floor.summary(), "database": kind, "database_reason": reason}
    if pandas is not None:
        entry["pandas"] = pandas.summary()
        if report is not None and pandas.last is not None and not pandas.failed:
            entry["agreement"] = agreement(report, json.loads(pandas.last.stdout))
    if any(t is not None and t.failed for t in (capi, floor, pandas)):
        entry["status"] = "failed"
    return entry


def _same_report(a: dict[str, Any], b: dict[str, Any] | None) -> bool:
    """Whether two reports agree but for when and by which engine they were made."""
    if b is None:
        return False
    strip = ("generated_at", "engine")
    return {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def agreement(report: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """capi-diag's dedup counts and match-key coverage next to the pandas baseline's."""
    differences = []
    dedup = report.get("dedup") or {}
    mine: dict[str, Any] = {"dedup": {}, "coverage": {}}
    for key, want in baseline["dedup"].items():
        mine["dedup"][key] = dedup.get(key)
        if dedup.get(key) != want:
            differences.append(f"dedup.{key}: capi-diag {dedup.get(key)}, pandas {want}")
    keys = report.get("match_keys") or {}
    for field, want in baseline["coverage"].items():
        have = (keys.get(field) or {}).get("coverage")
        mine["coverage"][field] = have
        if not (have == want or (have is not None and want is not None and abs(have - want) < 1e-12)):
            differences.append(f"match_keys.{field}.coverage: capi-diag {have}, pandas {want}")
    return {"agree": not differences, "differences": differences, "pandas": baseline, "capi_diag": mine}


def answers(a: dict[str, Any]) -> str:
    """One tool's dedup counts and key coverage, short (the agreement rows print both tools')."""
    d = a.get("dedup") or {}
    c = a.get("coverage") or {}
    counts = "/".join(f"{d[k]:,}" if isinstance(d.get(k), int) else "?" for k in
                      ("paired", "outside_window", "browser_only", "server_only"))
    cov = ", ".join(f"{f} {v:.4f}" if isinstance(v, (int, float)) else f"{f} ?" for f, v in c.items())
    return f"paired/outside/browser-only/server-only {counts}; coverage {cov}"


def measure_small(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """The 1-row report, the demo-data report against its floor, and the Test Events validation."""
    python = _python(args)
    out: dict[str, Any] = {}
    one_b, one_s = datagen.one_row_logs(Path(args.data_dir))
    demo_b, demo_s = ROOT / "data" / "browser_events.csv", ROOT / "data" / "server_events.csv"
    one, demo, demo_floor = Tool("capi_diag", (0, 1)), Tool("capi_diag", (0, 1)), Tool("floor")
    kind = None
    with tempfile.TemporaryDirectory(prefix="capi-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for i in range(args.runs):
            log(f"1-row and demo data: run {i + 1}/{args.runs}")
            _capi_run(one, python, one_b, one_s, tmp, args.timeout)
            _capi_run(demo, python, demo_b, demo_s, tmp, args.timeout)
            if kind is None:
                kind, reason = floor_db_kind(args.floor_db, 0, _stats_summary(demo.runs))
            _floor_run(demo_floor, python, demo_b, demo_s, tmp, kind, args.timeout)
    out["one_row"] = {"files": [str(one_b), str(one_s)], "capi_diag": {**one.summary(),
                                                                        "stats": _stats_summary(one.runs)}}
    out["demo"] = {"files": [str(demo_b), str(demo_s)], "rows": _demo_rows(),
                   "capi_diag": {**demo.summary(), "stats": _stats_summary(demo.runs)},
                   "floor": {**demo_floor.summary(), "database": kind}}
    log("Test Events validation: 10-event batches, in process")
    val = Tool("validation")
    run = val.measure([python, str(ROOT / "bench" / "validate_timing.py"), "--repeat", "5"], timeout=args.timeout)
    out["validation"] = val.summary()
    if run is not None and not val.failed:
        out["validation"].update(json.loads(run.stdout))
    return out


def _demo_rows() -> dict[str, int] | None:
    try:
        rows = json.loads((ROOT / "data" / "manifest.json").read_text())["rows"]
        return {"browser": rows["browser"]["written"], "server": rows["server"]["written"]}
    except (OSError, ValueError, KeyError):
        return None


# -- the table -------------------------------------------------------------------------------------

def _s(seconds: float | None) -> str:
    return "n/a" if seconds is None else (f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s")


def _gb(n: float | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / GB:.2f} GB" if n >= 1e9 else f"{n / 1e6:,.0f} MB"


def _x(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.1f}×" if ratio >= 1 else f"{ratio:.2f}×"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "no")


def _sql(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("sql_bytes") is None:
        return "n/a (no stats file)"
    q = stats.get("queries")
    return f"{stats['sql_bytes'] / 1000:,.1f} KB" + (f" in {q:.0f} queries" if q is not None else "")


def _timed(tool: dict[str, Any] | None, stats: dict[str, Any] | None = None) -> str:
    if not tool or not tool.get("ok"):
        return f"failed ({tool.get('error')})" if tool and tool.get("error") else "n/a"
    text = f"{_s(tool['median_s'])}, peak RSS {_gb(tool['peak_rss_bytes'])}"
    cpu = [r["cpu_s"] for r in tool.get("runs") or [] if r.get("cpu_s") is not None and "error" not in r]
    if cpu:
        text += f", CPU {_s(statistics.median(cpu))}"
    if stats and (stats.get("compile_s") is not None or stats.get("execute_s") is not None):
        text += f" (compile {_s(stats.get('compile_s'))}, execute {_s(stats.get('execute_s'))})"
    return text


def measure_dashboard(label: str, args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """``bench/bench_browser.py`` on the logs of one size: upload to checklist, each page's first visit
    and a later switch back, a filter change and the session's peak RSS (its ``BENCH_JSON`` line)."""
    python = _python(args)
    try:
        logs = datagen.ensure_logs(label, args.seed, python, Path(args.data_dir), log)
    except Exception as e:  # noqa: BLE001 - shown as missed
        return {"ok": False, "error": f"generating the logs failed: {e}"}
    log(f"dashboard at {label}: bench/bench_browser.py (real Chromium)")
    tool = Tool("dashboard")
    run = tool.measure([python, str(ROOT / "bench" / "bench_browser.py"), str(logs.browser), str(logs.server)],
                       timeout=args.dashboard_timeout)
    out: dict[str, Any] = {**tool.summary()}
    lines = [ln for ln in (run.stdout if run is not None else "").splitlines() if ln.startswith("BENCH_JSON ")]
    if lines and not tool.failed:
        out["figures"] = json.loads(lines[-1][len("BENCH_JSON "):])
    else:
        out["ok"] = False
        out["error"] = out.get("error") or "bench_browser.py printed no BENCH_JSON line"
    return out


def _dashboard_rows(row: Callable[..., None], d: dict[str, Any] | None) -> None:
    f = (d or {}).get("figures")
    if not f:
        why = "not run (--dashboard 1M)" if d is None else f"failed: {d.get('error')}"
        for measurement, target in DASHBOARD_TARGETS:
            row(measurement, why, target, False)
        return
    (m_up, t_up), (m_pg, t_pg), (m_fl, t_fl), (m_rss, t_rss) = DASHBOARD_TARGETS
    up = f.get("checklist_s")
    row(m_up, f"{_s(up)} from the click on Import and analyse (uploads acknowledged after {_s(f.get('uploads_s'))})",
        t_up, up is not None and up <= DASHBOARD_MAX["checklist_s"])
    switches, first = f.get("page_switch_s") or {}, f.get("page_first_visit_s") or {}
    worst = max(switches.values()) if switches else None
    slowest = max(switches, key=switches.get) if switches else "?"
    row(m_pg, f"max {_s(worst)} ({slowest}) over {len(switches)} pages; first visits max "
        f"{_s(max(first.values()) if first else None)}", t_pg,
        worst is not None and worst <= DASHBOARD_MAX["page_switch_s"])
    fl = f.get("filter_s")
    row(m_fl, f"{_s(fl)} (clearing it again {_s(f.get('clear_filters_s'))})", t_fl,
        fl is not None and fl <= DASHBOARD_MAX["filter_s"])
    rss = f.get("session_peak_rss_bytes")
    row(m_rss, _gb(rss) if rss else "not measured (no /proc)", t_rss,
        rss is not None and rss <= DASHBOARD_MAX["session_peak_rss_bytes"])


def build_table(results: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of (measurement, value, target, met); a target whose measurement is missing is not met."""
    rows: list[dict[str, str]] = []

    def row(measurement: str, value: str, target: str = "—", met: bool | None = None) -> None:
        rows.append({"measurement": measurement, "value": value, "target": target, "met": _met(met)})

    small = results.get("small")
    if small is None:
        for m, t in (("1-row log: `report`", f"≤ {ONE_ROW_MAX_S} s"), ("demo data: `report` / floor",
                     f"≤ {DEMO_MAX_RATIO:.0f}×"), ("Test Events validation, 10 events", f"≤ {VALIDATION_MAX_S} s")):
            row(m, "not run", t, False)
    else:
        one = small["one_row"]["capi_diag"]
        row("1-row log: `report`, whole process", _timed(one), f"≤ {ONE_ROW_MAX_S} s",
            one["median_s"] is not None and one["median_s"] <= ONE_ROW_MAX_S)
        demo = small["demo"]
        dr = demo.get("rows") or {}
        size = f" ({dr['browser']:,} browser + {dr['server']:,} server rows)" if dr else ""
        row(f"demo data{size}: floor ({demo['floor']['database']} DB)", _timed(demo["floor"]))
        row("demo data: `report`", _timed(demo["capi_diag"], demo["capi_diag"].get("stats")))
        ratio = _ratio(demo["capi_diag"]["median_s"], demo["floor"]["median_s"])
        row("demo data: `report` / floor", _x(ratio), f"≤ {DEMO_MAX_RATIO:.0f}×",
            ratio is not None and ratio <= DEMO_MAX_RATIO)
        stats = demo["capi_diag"].get("stats")
        limit = SQL_BYTES_BEFORE / 4
        sql_bytes = (stats or {}).get("sql_bytes")
        row("demo data: compiled SQL of the report", _sql(stats),
            f"< {limit / 1000:.1f} KB (¼ of {SQL_BYTES_BEFORE / 1000:.0f} KB before)",
            sql_bytes is not None and sql_bytes < limit)
        val = small["validation"]
        ok = val.get("ok") and val.get("median_s") is not None
        rules = ", ".join(val.get("sections_run") or []) or "none"
        row(f"Test Events validation of a 10-event batch, in process, median of 5 (rules: {rules})",
            _s(val.get("median_s")) if ok else _timed(val), f"≤ {VALIDATION_MAX_S} s",
            bool(ok) and val["median_s"] <= VALIDATION_MAX_S)

    sizes = results.get("sizes", {})
    labels = list(dict.fromkeys([*STANDARD_SIZES, *sizes]))
    for label in labels:
        e = sizes.get(label)
        if e is None or e.get("status") == "not run":
            row(f"{label}: all measurements", "not run (missed)", "every size is run", False)
            _target_rows(row, label, None)
            continue
        if "data" not in e:
            row(f"{label}: all measurements", f"failed: {e.get('error')}", "every size is run", False)
            _target_rows(row, label, None)
            continue
        d = e["data"]
        row(f"{label}: logs", f"{d['rows']['server']:,} server + {d['rows']['browser']:,} browser rows, "
            f"{sum(d['bytes'].values()) / 1e6:,.0f} MB CSV")
        row(f"{label}: floor ({e['floor'].get('database')} DB)", _timed(e["floor"]))
        row(f"{label}: `report`", _timed(e["capi_diag"], e["capi_diag"].get("stats")))
        if "pandas" in e:
            row(f"{label}: pandas baseline", _timed(e["pandas"]))
        if "spark_local" in e:
            agrees = {True: ", same report", False: ", report differs"}.get(e.get("spark_agrees"), "")
            sp = e["spark_local"]
            if label in SPARK_MAX_S:
                row(f"{label}: `report --engine spark`, {SPARK_MASTER}{agrees}", _timed(sp),
                    f"same report, ≤ {SPARK_MAX_S[label]:.0f} s", bool(sp.get("ok")) and e.get("spark_agrees") is True
                    and sp.get("median_s") is not None and sp["median_s"] <= SPARK_MAX_S[label])
            else:
                row(f"{label}: `report --engine spark`, {SPARK_MASTER} (reference){agrees}", _timed(sp))
        elif label in SPARK_MAX_S:
            row(f"{label}: `report --engine spark`, {SPARK_MASTER}", "not run (--spark)",
                f"same report, ≤ {SPARK_MAX_S[label]:.0f} s", False)
        row(f"{label}: compiled SQL of the report", _sql(e["capi_diag"].get("stats")))
        if "agreement" in e:
            a = e["agreement"]
            row(f"{label}: pandas and `report` agree (dedup counts, key coverage)",
                "yes" if a["agree"] else "no: " + "; ".join(a["differences"][:3]))
            if "capi_diag" in a:
                row(f"{label}: `report` answers", answers(a["capi_diag"]))
                row(f"{label}: pandas answers", answers(a["pandas"]))
        _target_rows(row, label, e)
        if label not in FLOOR_MAX_RATIO:
            row(f"{label}: `report` / floor", _x(_ratio(e["capi_diag"]["median_s"], e["floor"]["median_s"])))
        if "pandas" in e and label not in PANDAS_MIN_SPEEDUP:
            row(f"{label}: pandas / `report`", _x(_ratio(e["pandas"]["median_s"], e["capi_diag"]["median_s"])))

    _dashboard_rows(row, (results.get("dashboard") or {}).get("1M"))
    for small_label, big_label in zip(STANDARD_SIZES, STANDARD_SIZES[1:], strict=False):
        g = growth(sizes.get(small_label), sizes.get(big_label))
        if g is None:
            row(f"growth {small_label} → {big_label}: `report` time", "not measured",
                f"≤ {GROWTH_MAX:.0f}× per 10× events", False)
        else:
            row(f"growth {small_label} → {big_label}: `report` time", f"{_x(g['time_ratio'])} for "
                f"{_x(g['event_ratio'])} the events", f"≤ {GROWTH_MAX:.0f}× per 10× events", g["met"])
    return rows


def _target_rows(row: Callable[..., None], label: str, e: dict[str, Any] | None) -> None:
    """The rows of the targets set at this size (missing measurements count as missed)."""
    capi = (e or {}).get("capi_diag") or {}
    if label in FLOOR_MAX_RATIO:
        r = _ratio(capi.get("median_s"), ((e or {}).get("floor") or {}).get("median_s"))
        row(f"{label}: `report` / floor", _x(r) if e else "not run", f"≤ {FLOOR_MAX_RATIO[label]}×",
            r is not None and r <= FLOOR_MAX_RATIO[label])
    if label in RSS_MAX_BYTES:
        rss = capi.get("peak_rss_bytes") if capi.get("ok") else None
        row(f"{label}: `report` peak RSS", _gb(rss) if e else "not run", f"≤ {_gb(RSS_MAX_BYTES[label])}",
            rss is not None and rss <= RSS_MAX_BYTES[label])
    if label in PANDAS_MIN_SPEEDUP:
        r = _ratio(((e or {}).get("pandas") or {}).get("median_s"), capi.get("median_s"))
        row(f"{label}: pandas / `report` (capi-diag speed-up)", _x(r) if e else "not run",
            f"≥ {PANDAS_MIN_SPEEDUP[label]:.0f}×", r is not None and r >= PANDAS_MIN_SPEEDUP[label])


def growth(small: dict[str, Any] | None, big: dict[str, Any] | None) -> dict[str, Any] | None:
    """capi-diag's time ratio between two sizes, judged against 12x per 10x events (scaled to the
    actual event ratio: the logs hold about, not exactly, 10 times the events)."""
    try:
        t_small, t_big = small["capi_diag"]["median_s"], big["capi_diag"]["median_s"]
        ev_small = sum(small["data"]["rows"].values())
        ev_big = sum(big["data"]["rows"].values())
    except (TypeError, KeyError):
        return None
    if t_small is None or t_big is None or not ev_small:
        return None
    time_ratio, event_ratio = t_big / t_small, ev_big / ev_small
    return {"time_ratio": time_ratio, "event_ratio": event_ratio,
            "met": time_ratio <= GROWTH_MAX * event_ratio / 10}


def render_table(rows: list[dict[str, str]]) -> str:
    lines = ["| measurement | value | target | met |", "|---|---|---|---|"]
    lines += [f"| {r['measurement']} | {r['value']} | {r['target']} | {r['met']} |" for r in rows]
    return "\n".join(lines)


# -- the machine -----------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
                            "platform": platform.platform()}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_bytes"] = int(line.split()[1]) * 1024
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def versions(python: str) -> dict[str, Any]:
    code = ("import json, sys\nfrom importlib import metadata\nv = {'python': sys.version.split()[0]}\n"
            "for p in ('duckdb', 'ibis-framework', 'sqlglot', 'pandas', 'pyarrow'):\n"
            "    try: v[p] = metadata.version(p)\n    except metadata.PackageNotFoundError: v[p] = None\n"
            "print(json.dumps(v))")
    try:
        return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        return {"error": str(e)}


def git_info() -> dict[str, Any]:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "uncommitted_outside_bench_results": [p for p in changed if not p.startswith("bench/results/")]}


def header(results: dict[str, Any]) -> str:
    m, v, g = results["machine"], results["versions"], results["git"]
    mem = f"{m['memory_bytes'] / 2**30:.0f} GiB" if "memory_bytes" in m else "? GiB"
    return (f"{results['date']}, commit {g['commit'][:10]} ({g['branch']}), {m['nproc']} cores, {mem}, "
            f"{m.get('cpu_model', '?')}; Python {v.get('python')}, DuckDB {v.get('duckdb')}, "
            f"Ibis {v.get('ibis-framework')}, pandas {v.get('pandas')}; median of {results['options']['runs']} "
            f"runs, seed {results['options']['seed']}. Shared machine, load average {_load(results)}: "
            "timings are indicative.")


def _load(results: dict[str, Any]) -> str:
    start, end = results.get("load_average_start"), results.get("load_average_end")
    return f"{start[0]:.1f} at the start, {end[0]:.1f} at the end" if start and end else "not recorded"


# -- main ------------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(STANDARD_SIZES),
                        help="comma-separated server-event counts (default: 100k,1M,10M); "
                             "standard sizes left out are shown as missed")
    parser.add_argument("--runs", type=int, default=3, help="whole-process runs per timing (median; default 3)")
    parser.add_argument("--large-runs", type=int, default=None,
                        help=f"runs per timing from {FILE_DB_FROM:,} server events on (default: --runs); "
                             "e.g. 1 for a single 10M run")
    parser.add_argument("--seed", type=int, default=7, help="demo generator seed (default 7)")
    parser.add_argument("--skip-small", action="store_true",
                        help="skip the 1-row, demo-data and validation measurements (shown as missed)")
    parser.add_argument("--floor-db", choices=("auto", "memory", "file"), default="auto",
                        help="the floor's database: auto = the kind capi-diag reports in its stats file, "
                             f"else file-backed from {FILE_DB_FROM:,} server events (default auto)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds before one run is killed (7200)")
    parser.add_argument("--python", help="interpreter for the measured processes (default: this one)")
    parser.add_argument("--data-dir", default=str(datagen.DATA_DIR), help="cache of generated logs")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "latest.json"),
                        help="where to write the results (the table goes next to it as .md)")
    parser.add_argument("--spark", default="",
                        help=f"sizes at which to also time `report --engine spark` on {SPARK_MASTER} (e.g. 1M; "
                             "needs requirements-spark.txt and Java 17)")
    parser.add_argument("--spark-runs", type=int, default=1, help="runs of each Spark timing (default 1)")
    parser.add_argument("--spark-timeout", type=float, default=900,
                        help="seconds before a Spark run is killed and shown as missed (900)")
    parser.add_argument("--dashboard", default="",
                        help="sizes at which to run bench/bench_browser.py (real Chromium against the dashboard; "
                             "the table's dashboard rows are at 1M)")
    parser.add_argument("--dashboard-timeout", type=float, default=1200,
                        help="seconds before the dashboard run is killed (1200)")
    parser.add_argument("--generate-only", action="store_true", help="generate (or find) the logs and stop")
    args = parser.parse_args(argv)
    args.size_labels = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.spark_labels = [s.strip() for s in args.spark.split(",") if s.strip()]
    args.dashboard_labels = [s.strip() for s in args.dashboard.split(",") if s.strip()]
    for label in args.size_labels:
        try:
            datagen.parse_size(label)
        except ValueError as e:
            parser.error(str(e))
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def byte_compile(python: str) -> None:
    """Byte-compile capi_diag for ``python``, as pip does when it installs a package: the processes
    measured then start as an installed copy does. Without it a checkout run with
    ``PYTHONDONTWRITEBYTECODE=1`` (as this machine and CI set it) compiles every module edited since its
    last ``.pyc`` in every measured process (13 modules: about 50 ms of a 0.77 s one-row report)."""
    subprocess.run([python, "-m", "compileall", "-q", str(ROOT / "capi_diag")], check=True, cwd=ROOT)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    python = _python(args)
    if args.generate_only:
        for label in args.size_labels:
            logs = datagen.ensure_logs(label, args.seed, python, Path(args.data_dir), log_err)
            m = logs.meta
            log_err(f"{label}: {logs.folder} ({m['rows']['server']:,} server + {m['rows']['browser']:,} browser "
                    f"rows, {sum(m['bytes'].values()) / 1e9:.2f} GB, generated in {m['generation_s']:.0f} s)")
        return 0
    for stale in datagen.stale_folders(Path(args.data_dir)):
        log_err(f"note: {stale} is from an older generator version; delete it to free the disk")
    byte_compile(python)
    results: dict[str, Any] = {
        "schema": 1,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python bench/run.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                              else sys.argv[1:])),
        "options": {"sizes": args.size_labels, "runs": args.runs, "seed": args.seed, "floor_db": args.floor_db,
                    "generator_version": datagen.generator_version()},
        "machine": machine(), "versions": versions(python), "git": git_info(),
        "load_average_start": list(os.getloadavg()),
    }
    results["small"] = None if args.skip_small else measure_small(args, log_err)
    results["sizes"] = {label: {"label": label, "status": "not run"} for label in STANDARD_SIZES}
    for label in args.size_labels:
        results["sizes"][label] = measure_size(label, args, log_err)
    results["dashboard"] = {label: measure_dashboard(label, args, log_err) for label in args.dashboard_labels}
    results["load_average_end"] = list(os.getloadavg())
    results["growth"] = {f"{a}->{b}": growth(results["sizes"].get(a), results["sizes"].get(b))
                         for a, b in zip(STANDARD_SIZES, STANDARD_SIZES[1:], strict=False)}
    results["table"] = build_table(results)
    text = header(results) + "\n\n" + render_table(results["table"]) + "\n"
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    log_err(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
