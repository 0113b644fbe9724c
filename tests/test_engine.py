"""The engine: pure measures compiled once, one fetch path, owned temporary tables, contained failures."""

from __future__ import annotations

import json
import os

import duckdb
import pytest

from capi_diag import diagnostics
from capi_diag.cli import main
from capi_diag.core.config import Config
from capi_diag.diagnostics import timing
from capi_diag.engine import measures, runner
from capi_diag.engine.dataset import Dataset, Filters
from capi_diag.engine.db import Database
from capi_diag.io.ingest import import_logs
from capi_diag.report import build_report
from capi_diag.testevents import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = {"browser": [os.path.join(ROOT, "data", "browser_events.csv")],
        "server": [os.path.join(ROOT, "data", "server_events.csv")]}
T = 1_790_000_000
EM = "a" * 64


def small() -> Dataset:
    browser = [{"event_name": "Purchase", "event_id": "p1", "event_time": T, "fbp": ["fb.1.1790000000000.1"],
                "value": "10.00", "currency": "EUR"},
               {"event_name": "Lead", "event_id": "l1", "event_time": T + 5}]
    server = [{"event_name": "Purchase", "event_id": "p1", "event_time": T + 3, "em": [EM], "value": "10",
               "currency": "EUR", "action_source": "website", "fbp": ["fb.1.1790000000000.1"],
               "consent_ad_storage": "denied"},
              {"event_name": "lead", "event_id": "l1", "event_time": T + 8, "em": ["Jane@Example.com"]}]
    return Dataset.from_records(browser=browser, server=server)


def temp_objects(db: Database) -> set[str]:
    rows = db.fetchall("SELECT table_name FROM duckdb_tables() WHERE temporary "
                       "UNION ALL SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal")
    return {r[0] for r in rows}


def test_engine_building_every_expression_runs_no_query(monkeypatch):
    ds = small()
    calls = []
    monkeypatch.setattr(runner.Runner, "run", lambda *a, **k: calls.append(a) or pytest.fail("a query ran"))
    monkeypatch.setattr(runner.Runner, "_exec", lambda *a, **k: calls.append(a) or pytest.fail("a query ran"))
    for name in measures.MEASURES:
        measures.build(ds, name)
    for mod in diagnostics.modules():
        mod.failing_rows(ds, Config())
    assert calls == []


def test_engine_report_compiles_once_then_reuses_the_sql(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPI_DIAG_CACHE_DIR", str(tmp_path / "cache"))
    runner.CACHE.clear_memory()
    runner.STATS.reset()
    first = build_report(small())
    compiled = runner.STATS.compiled
    assert compiled > 0 and list((tmp_path / "cache").glob("sql-*.json"))
    runner.CACHE.clear_memory()  # as a new process would: the SQL comes from disk
    runner.STATS.reset()
    second = build_report(small())
    assert runner.STATS.compiled == 0 and runner.STATS.cache_hits > 0
    first.pop("generated_at"), second.pop("generated_at")
    assert first == second


def test_engine_cached_sql_equals_what_the_builders_compile_now(tmp_path, monkeypatch):
    """Every query name identifies its SQL: recompiling on each cache hit finds no difference, on the
    demo data (all columns), on a tiny log and under a non-default configuration."""
    monkeypatch.setenv("CAPI_DIAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CAPI_DIAG_SQL_CHECK", "1")
    runner.CACHE.clear_memory()
    db = Database()
    demo = import_logs(db, **DEMO)
    cfg = Config.from_text("[dedup]\nwindow_s = 3600\n[timing]\nskew_threshold_s = 30\n")
    for ds, config in ((demo, Config()), (demo, Config()), (small(), cfg), (small(), cfg)):
        report = build_report(ds, config)
        assert not [s for s in diagnostics.ORDER if report[s].get("status") == "error"]


def test_engine_shared_expressions_built_once_per_plan_and_afresh_under_the_check(monkeypatch):
    """A :func:`runner.per_plan` builder runs once per (plan, arguments) in a process: a second report
    on the same plan builds none of them again; another plan (a log with other columns) or other
    arguments build their own; under ``CAPI_DIAG_SQL_CHECK=1`` every call builds afresh."""
    built = []

    @runner.per_plan
    def rows_of(ds: Dataset, role: str):
        built.append((ds.plan_key, role))
        return ds.events(role).select("event_name")

    ds, other = small(), Dataset.from_records(server=[{"event_name": "Lead", "event_time": T}])
    assert ds.plan_key != other.plan_key
    a = rows_of(ds, "server")
    assert rows_of(ds, "server") is a and rows_of(small(), "server") is a  # same plan, same expression
    rows_of(ds, "browser")
    rows_of(other, "server")
    assert built == [(ds.plan_key, "server"), (ds.plan_key, "browser"), (other.plan_key, "server")]
    monkeypatch.setenv("CAPI_DIAG_SQL_CHECK", "1")
    assert rows_of(ds, "server") is not a and len(built) == 4


def test_engine_report_on_a_seen_plan_builds_no_shared_expression_again():
    """The expensive shared builders (the ranked rows, the validity flags, the fallback rows) are
    memoized: a second report on the same plan builds none of them again."""
    build_report(small())
    before = runner.STATS.expressions_built
    second = build_report(small())
    assert runner.STATS.expressions_built == before
    assert second["dedup"]["paired"] == 1


def test_engine_fetch_paths_warn_of_nothing():
    """Rows (``Runner.records``) and Arrow tables (``Runner.run``) come back without a warning."""
    import warnings

    ds = small()
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("error")
        assert ds.rows("server") == 2
        t = ds.events("server")
        assert ds.fetch_arrow("test.names", lambda: t.select("event_name").order_by("event_name")).num_rows == 2


def test_engine_records_equal_the_arrow_rows_of_every_report_query(monkeypatch):
    """``Runner.records`` (DuckDB's own conversion) returns what ``to_records(Runner.run(...))``
    (through Arrow) does, for every query of a report on the demo logs, and for each kind of value
    a query may return (whole-number sums, decimals, lists, structs, times, nulls)."""
    checked = []
    records = runner.Runner.records

    def both(self, sc, template):
        got = records(self, sc, template)
        want = runner.to_records(self.run(sc, template))

        def typed(rows):  # a query without ORDER BY may give its rows in another order each time
            return sorted(repr([(k, type(v).__name__, v) for k, v in r.items()]) for r in rows)

        assert typed(got) == typed(want), template[:200]
        checked.append(template)
        return got

    monkeypatch.setattr(runner.Runner, "records", both)
    with Database() as db:
        report = build_report(import_logs(db, **DEMO), Config())
        assert not [(s, report[s].get("reason")) for s in diagnostics.ORDER if report[s].get("status") == "error"]
        sc = runner.Scope(("t",), "_t", "", {}, lambda name: "")
        db.runner.records(sc, "SELECT sum(x) AS total, count(*) AS n, CAST(1.50 AS DECIMAL(10, 2)) AS price, "
                              "CAST(5 AS DECIMAL(38, 0)) AS whole, [1, 2] AS ids, {'a': 1, 'b': 'x'} AS s, "
                              "TIMESTAMP '2026-01-02 03:04:05' AS ts, DATE '2026-01-02' AS d, NULL AS nothing, "
                              "1.5::DOUBLE AS f, 'é' AS text FROM range(3) t(x)")
    assert len(checked) > 30


def test_engine_rows_counted_once_per_scope_and_again_when_the_rows_change():
    ds = small()
    assert ds.rows("server") == 2
    before = runner.STATS.queries
    assert ds.rows("server") == 2 and runner.STATS.queries == before  # the scope's count
    assert ds.with_filters(Filters(event_names=("Purchase",))).rows("server") == 1  # another scope
    ds.db.execute("DELETE FROM server_events WHERE event_name = 'lead'")
    ds.db.tables_changed()
    assert ds.rows("server") == 1


def test_engine_no_temporary_table_outlives_its_owner():
    ds = small()
    db = ds.db
    base = temp_objects(db)
    names = ["Purchase", "Lead", "lead", "PageView"]
    for i in range(20):
        f = ds.with_filters(Filters(start=T - 10**8 + i, event_names=(names[i % len(names)],)))
        timing.analyze(f, Config(), {})
    kept = temp_objects(db) - base
    # At most the runner's scopes (4) with their views and measures, never one per filter.
    assert len(kept) <= db.runner.max_scopes * (2 + len(measures.MEASURES)) + 1
    assert kept <= set(db.runner.temp_objects())
    db.tables_changed()
    assert temp_objects(db) - base <= {n for n in db.runner.temp_objects()}
    db.runner.close()
    assert temp_objects(db) - base == set()

    for i in range(20):  # Test Events batches: each replaces the batch, and its measures with it
        validate.validate_events([{"event_name": "Lead", "event_time": T + i, "event_id": f"b{i}",
                                   "action_source": "website", "user_data": {"em": EM}}])
    vdb = validate.batch_runner().db
    assert len(temp_objects(vdb)) <= 2 + len(measures.MEASURES) + 1


def test_engine_two_batches_each_get_their_own_findings():
    first = validate.validate_events([{"event_name": "Lead", "event_time": T, "event_id": "a",
                                       "action_source": "website", "user_data": {"em": "raw@example.com"}}])
    second = validate.validate_events([{"event_name": "Lead", "event_time": T, "event_id": "b",
                                        "action_source": "website", "user_data": {"em": EM}}])
    assert ("match_keys", "unhashed") in {(f.section, f.finding) for f in first.findings}
    assert ("match_keys", "unhashed") not in {(f.section, f.finding) for f in second.findings}
    assert {f.event_id for f in second.findings} <= {"b"}


def test_engine_failing_section_is_error_and_the_rest_still_reports(monkeypatch, tmp_path, capsys):
    def broken(ds, config=None, prior=None):
        raise duckdb.BinderException("Binder Error: column boom not found")

    monkeypatch.setattr(timing, "analyze", broken)
    report = build_report(small())
    assert report["timing"] == {"status": "error",
                                "reason": "BinderException: Binder Error: column boom not found"}
    assert report["dedup"]["status"] == "evaluated" and report["dedup"]["paired"] == 1
    skew = next(i for i in report["checklist"] if i["id"] == "timing_skew")
    assert skew["status"] == "error" and "timing analysis failed" in skew["explanation"]

    out = tmp_path / "r.json"
    rc = main(["report", "--browser", DEMO["browser"][0], "--server", DEMO["server"][0], "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 3 and err.count("\n") == 1 and "timing analysis failed" in err
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["timing"]["status"] == "error" and written["dedup"]["status"] == "evaluated"


def test_engine_large_inputs_get_a_file_database_that_spills(tmp_path):
    db = Database.for_inputs(DEMO["server"], large_bytes=1000)
    try:
        assert db.path.endswith("capi.duckdb") and os.path.exists(db.path)
        limit = db.fetchone("SELECT current_setting('memory_limit')")[0]
        spill = db.fetchone("SELECT current_setting('temp_directory')")[0]
        assert limit.replace(" ", "").upper().startswith(("2.0GB", "1.8GIB", "1.8GB", "2GB", "1.9GIB"))
        assert spill.endswith("spill")
        folder = os.path.dirname(db.path)
    finally:
        db.close()
    assert not os.path.exists(folder)
    small_db = Database.for_inputs(DEMO["server"])
    assert small_db.path == ":memory:"
    small_db.close()


def test_engine_warm_report_imports_neither_ibis_nor_pyarrow(tmp_path):
    """A report whose queries are all in the compiled-SQL cache builds no expression, so a fresh
    process running it never imports Ibis or pyarrow (:mod:`capi_diag.engine.lazy`), nor pycountry or
    tomllib; the first run,
    which compiles, imports both. Same report both times."""
    import subprocess
    import sys

    probe = (
        "import json, sys\n"
        "from capi_diag.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(json.dumps({m: m in sys.modules for m in ('ibis', 'pyarrow', 'numpy', 'pandas', 'pycountry', "
        "'tomllib')}))\n"
    )
    env = {**os.environ, "CAPI_DIAG_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": ROOT}
    env.pop("CAPI_DIAG_SQL_CHECK", None)
    runs = []
    for i in (1, 2):
        out = tmp_path / f"report{i}.json"
        done = subprocess.run(
            [sys.executable, "-c", probe, "report", "--browser", *DEMO["browser"], "--server", *DEMO["server"],
             "--format", "json", "--output", str(out)],
            env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.stdout.strip(), done.stderr
        runs.append((json.loads(done.stdout.strip().splitlines()[-1]), json.loads(out.read_text())))
    (cold, first), (warm, second) = runs
    assert cold["ibis"] and cold["pyarrow"]
    assert cold["pycountry"]  # the queries' code lists (currencies, countries) come from it
    # pycountry only builds queries (the consent regions' known codes are judged in SQL), tomllib only
    # reads a config file
    assert warm == {"ibis": False, "pyarrow": False, "numpy": False, "pandas": False, "pycountry": False,
                    "tomllib": False}
    for report in (first, second):
        report.pop("generated_at")
    assert second == first
    assert second["dedup"]["paired"] == 3462


def test_engine_only_multi_valued_columns_are_unnested_with_the_same_masks(tmp_path):
    """The dataset knows which list columns hold a cell with several values (``Dataset.multi``, kept
    in the database); the validity masks unnest only those, and are the same as when any column may."""
    from dataclasses import replace

    from capi_diag.engine import rules

    server = [
        {"event_name": "Purchase", "event_id": "a", "event_time": T, "em": [EM, "Jane@Example.com"],
         "ph": ["15551234567"], "fbp": ["fb.1.1790000000000.1"], "client_ip_address": ["10.0.0.1"]},
        {"event_name": "Lead", "event_id": "b", "event_time": T + 1, "em": ["null"], "ph": [" " + EM],
         "fbp": ["fb.1.1790000000000.2"], "client_ip_address": ["203.0.113.9"]},
        {"event_name": "Lead", "event_id": "c", "event_time": T + 2, "em": [EM, EM.upper(), ""]},
    ]
    db = Database(str(tmp_path / "multi.duckdb"))
    ds = Dataset.from_records(server=server, db=db)
    assert ds.multi == {"browser": frozenset(), "server": frozenset({"em"})}
    assert Dataset.load(db).multi == ds.multi
    unknown = replace(ds, multi=None)
    assert unknown.plan_key != ds.plan_key

    def masks(d: Dataset) -> list[dict]:
        return d.query(rules.server_validity_expr(d).order_by("row_id")).to_pylist()

    known, every = masks(ds), masks(unknown)
    assert known == every
    assert [r["_em_m"] != 0 for r in known] == [True, True, True]
    sql = runner.compile_sql(rules.server_validity_expr(ds), "duckdb").upper()
    assert sql.count("UNNEST") == 1 and "UNNEST" in runner.compile_sql(rules.server_validity_expr(unknown),
                                                                        "duckdb").upper()
    single = Dataset.from_records(server=[{**r, "em": r["em"][:1]} for r in server])
    assert single.multi == {"browser": frozenset(), "server": frozenset()}
    assert "UNNEST" not in runner.compile_sql(rules.server_validity_expr(single), "duckdb").upper()
    assert masks(single) == masks(replace(single, multi=None))
    db.close()


def test_engine_loads_the_allowed_hashes_of_the_fields_the_log_holds_only():
    """A log with ``country`` and no ``ge`` / ``db`` loads the one-field lookup of ``country`` (about 250
    hashes), not the 40,000 date hashes; the one-field lookup holds exactly that field's rows of the
    full one, and ``country`` values are judged against it as before."""
    import datetime as dt

    from capi_diag.diagnostics import match_keys
    from capi_diag.engine import rules

    us, usa = rules.sha256_hex("us"), rules.sha256_hex("usa")
    server = [{"event_name": "Lead", "event_id": f"c{i}", "event_time": T + i, "country": [c],
               "action_source": "website"} for i, c in enumerate([us, us, usa])]
    ds = Dataset.from_records(browser=[], server=server)
    result = match_keys.analyze(ds, Config(), {})
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    lookups = {n for n in ds.db.runner.temp_objects() if n.startswith(rules.ALLOWED_PREFIX)}
    assert lookups == {f"{rules.ALLOWED_PREFIX}{day}_country"}
    country = result["country"]
    assert (country["present"], country["valid"], country["defects"]["not_normalized"]) == (3, 2, 1)
    valid = ds.db.fetchall(f'SELECT count(*) FROM "{rules.ALLOWED_PREFIX}{day}_country" WHERE h IN (?, ?)',
                           [us, usa])[0][0]
    assert valid == 1  # "us" is a country code, "usa" is not
    full = rules.allowed_lookup(day).to_pylist()
    one = rules.allowed_lookup(f"{day}_country").to_pylist()
    assert one == [r for r in full if r["field"] == "country"] and len(one) > 200
    assert {r["field"] for r in full} == set(rules.SET_FIELDS)
    with pytest.raises(ValueError, match="no allowed values"):
        rules.allowed_hash_table(field="ct")


def test_engine_prunes_lookup_copies_of_past_days(tmp_path):
    import time as _time

    now = _time.time()
    old, fresh, other = (tmp_path / "lookup-a-capi_allowed_20261201.parquet",
                         tmp_path / "lookup-b-capi_allowed_20261208_country.parquet", tmp_path / "sql-c.json")
    for f in (old, fresh, other):
        f.write_bytes(b"x")
    os.utime(old, (now - 3 * 86400, now - 3 * 86400))
    os.utime(other, (now - 30 * 86400, now - 30 * 86400))
    assert runner.prune_lookups(tmp_path, now) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other.name])
