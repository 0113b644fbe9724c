"""The Spark engine: the same report as DuckDB's, the import's rules on Spark, lake inputs.

The tests marked ``spark`` need pyspark and Java 17 (``make test-spark``); the analysis tests of
dedup, timing and match keys also run on Spark through the ``on_engine`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from capi_diag import cli
from capi_diag.core import resources
from capi_diag.core.schema import Role
from capi_diag.engine.db import Database
from capi_diag.io.ingest import import_logs
from capi_diag.report import build_report

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text(encoding="utf-8"))

IMPORT_CSV = """\
event_name,event_id,event_time,em,ad_storage,pixel_id,custom_data_note,extra_col
Purchase,1,1763373600,ABC@example.com,granted,00123,n1,x
Purchase,2,1763373600000,"[""a"", "" "", ""b""]",true,00123,,y
,3,1763373600,,,00123,,
Lead,4,,,,00123,,
Lead,5,yesterday,,,00123,,
Lead,6,12,,,00123,,
Lead,7,2026-11-17T10:00:00Z,,maybe,00123,,
Lead,8,2026-11-17 10:00:00,,no,00123,,
Lead,9,2026-11-17T12:00:00+02:00,,,00123,,
Lead,10,1763373600123456,  ,,00123,,
Lead,11,1763373600.9,"[]",,00123,,
"""


def _normalized(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what differs between runs and engines by design: when and by which engine
    it was made."""
    out = json.loads(json.dumps(report))
    out.pop("generated_at", None)
    out.pop("engine", None)
    return out


def _duckdb_report(browser: list[str], server: list[str]) -> dict[str, Any]:
    with Database() as db:
        return build_report(import_logs(db, browser=browser, server=server))


def _unkeyed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the keyed fingerprint of masked emails and phones cut off (``mask#<16 hex>``)."""
    def cut(values):
        return None if values is None else [v.split("#")[0] if "#" in v else v for v in values]
    return [{**r, "em": cut(r["em"]), "ph": cut(r["ph"])} for r in rows]


def _canonical_rows(table: Any) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r["row_id"])


# -- without Spark: exit 2 with the fix, never DuckDB instead ---------------------------------------

def test_engine_spark_without_java_or_pyspark_exits_2_with_the_fix(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    rc = cli.main(["report", "--demo", "--engine", "spark"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""  # no report computed by DuckDB instead
    assert "--engine spark needs" in err
    assert ("openjdk-17-jre-headless" in err) or ("requirements-spark.txt" in err)


def test_table_inputs_need_the_spark_engine(capsys):
    rc = cli.main(["report", "--demo", "--browser-table", "lake.browser"])
    assert rc == 2
    assert "need --engine spark" in capsys.readouterr().err


# -- on Spark ------------------------------------------------------------------------------------------

@pytest.mark.spark
def test_report_engine_spark_on_demo_equals_duckdb_json(tmp_path):
    """The whole command, end to end: Spark's JSON report equals DuckDB's on the demo logs (the two
    logs: `--demo` on DuckDB also reads the demo's orders export and send log, which Spark does not)."""
    env = {**os.environ, "CAPI_DIAG_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("SPARK_REMOTE", None)
    logs = []
    for role, path in resources.demo_paths().items():
        shutil.copy(path, tmp_path / path.name)
        logs += [f"--{role}", path.name]
    runs = {}
    for engine in ("duckdb", "spark"):
        extra = ["--engine", "spark", "--spark-master", "local[2]"] if engine == "spark" else []
        proc = subprocess.run([sys.executable, "-m", "capi_diag", "report", *logs, *extra],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
        assert proc.returncode == 1 and proc.stdout, proc.stderr[-2000:]  # the demo has checklist failures
        runs[engine] = json.loads(proc.stdout)
    assert runs["spark"]["engine"] == "spark"
    assert runs["duckdb"]["engine"] == "duckdb"
    jsonschema.validate(runs["spark"], SCHEMA)
    assert _normalized(runs["spark"]) == _normalized(runs["duckdb"])


@pytest.mark.spark
def test_import_on_spark_types_and_rejects_like_duckdb(spark_db, tmp_path):
    """Aliases, event_time units (s, ms, µs, ISO with and without a zone), lists, consent words,
    custom and unknown columns, and the rejects with their reasons: the same rows and report."""
    from capi_diag.io import spark

    path = tmp_path / "browser.csv"
    path.write_text(IMPORT_CSV, encoding="utf-8")
    server = tmp_path / "server.csv"
    server.write_text("event,eventID,timestamp\nPurchase,1,1763373600\n", encoding="utf-8")
    with Database() as duck:
        d_ds = import_logs(duck, browser=[str(path)], server=[str(server)])
        d_rows = _canonical_rows(duck.con.sql(f"SELECT * FROM {Role.BROWSER.table}").to_arrow_table())
        d_inputs = d_ds.inputs
    s_ds = spark.import_logs(spark_db, browser=[str(path)], server=[str(server)])
    s_rows = _canonical_rows(spark_db.spark.table(Role.BROWSER.table).toArrow())
    assert s_ds.inputs["browser"]["rejected_reasons"] == {
        "event_name_empty": 1, "event_time_empty": 1, "event_time_unreadable": 1, "event_time_implausible": 1}
    assert s_ds.present == d_ds.present
    for role in ("browser", "server"):
        s_fr, d_fr = s_ds.inputs[role].pop("file_reports"), d_inputs[role].pop("file_reports")
        assert s_ds.inputs[role] == d_inputs[role]
        for s, d in zip(s_fr, d_fr, strict=True):
            assert s == d
    assert [r["row_id"] for r in s_rows] == [0, 1, 6, 7, 8, 9, 10]
    # a raw email is stored masked on both engines; its fingerprint's key is each database's own
    assert s_rows[0]["em"][0].startswith("A***@example.com#") and d_rows[0]["em"][0].startswith("A***@example.com#")
    assert len(s_rows[0]["em"][0]) == len(d_rows[0]["em"][0])
    assert _unkeyed(s_rows) == _unkeyed(d_rows)


def _partitioned(tmp_path: Path, name: str, csv: Path) -> Path:
    """The demo log as a Parquet folder partitioned by pixel id (pixel_id=<id>/part-*.parquet)."""
    out = tmp_path / name
    with Database() as db:
        db.execute(f"COPY (SELECT * FROM read_csv('{csv.as_posix()}', all_varchar=true)) TO '{out.as_posix()}' "
                   "(FORMAT parquet, PARTITION_BY (pixel_id))")
    return out


def _checklist(report: dict[str, Any]) -> list[tuple]:
    return [(i["id"], i["status"], json.dumps(i["observed"], sort_keys=True)) for i in report["checklist"]]


@pytest.mark.spark
def test_partitioned_parquet_folder_and_table_inputs(spark_db, tmp_path):
    """A partitioned Parquet folder (``--browser DIR``) and a table (``--server-table NAME``) give the
    demo's figures: every count of the checklist as from the CSV files."""
    from capi_diag.io import spark

    browser_csv, server_csv = ROOT / "data" / "browser_events.csv", ROOT / "data" / "server_events.csv"
    folder = _partitioned(tmp_path, "browser_lake", browser_csv)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir())[0].startswith("pixel_id=")
    spark_db.spark.read.option("header", "true").option("escape", '"').option("multiLine", "true") \
        .csv(str(server_csv)).createOrReplaceTempView("lake_server_events")
    try:
        ds = spark.import_logs(spark_db, browser=[str(folder)], server_table="lake_server_events")
        report = build_report(ds)
    finally:
        spark_db.spark.catalog.dropTempView("lake_server_events")
    assert report["engine"] == "spark"
    assert report["inputs"]["browser"]["files"] == ["browser_lake"]
    assert report["inputs"]["server"]["files"] == ["lake_server_events"]
    reference = _duckdb_report([str(browser_csv)], [str(server_csv)])
    for role in ("browser", "server"):
        for key in ("rows_read", "rows", "rejected_rows", "rejected_reasons", "unknown_columns"):
            assert report["inputs"][role][key] == reference["inputs"][role][key], (role, key)
    assert _checklist(report) == _checklist(reference)


@pytest.mark.spark
def test_connect_uses_a_running_session_and_leaves_it_running(spark_db):
    """``connect`` while a session runs (a notebook's, this test run's) uses that session, and its
    ``close(stop=True)`` (what the CLI does) leaves it running (the session fixture, which started
    its session, stops it at the end of the run)."""
    from capi_diag.engine import spark

    assert spark_db.owns_session  # the fixture's connect started it
    db = spark.connect("local[2]")
    assert db.spark is spark_db.spark and not db.owns_session
    db.close(stop=True)
    assert spark_db.spark.sql("SELECT 1 AS x").collect()[0]["x"] == 1  # still running


def test_spark_extra_pins_exactly_requirements_spark_txt():
    """The package's ``spark`` extra and requirements-spark.txt pin the same pyspark, inside the range
    Ibis 12's PySpark backend supports (>= 3.5, < 4.1), and pyspark is never a core dependency."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lines = [ln.split(" #", 1)[0].strip() for ln in (ROOT / "requirements-spark.txt").read_text().splitlines()]
    pins = [ln for ln in lines if ln and not ln.startswith(("#", "-r"))]
    assert "-r requirements.txt" in lines
    assert pins == pyproject["project"]["optional-dependencies"]["spark"] == ["pyspark==4.0.5"]
    version = Version(next(iter(Requirement(pins[0]).specifier)).version)
    assert Version("3.5") <= version < Version("4.1")
    assert not any(Requirement(d).name == "pyspark" for d in pyproject["project"]["dependencies"])


@pytest.mark.spark
def test_privacy_on_spark_equals_duckdb_and_stores_no_raw_value(spark_db, tmp_path):
    """Issue 24: emails and phones in URLs, custom data and unmapped columns are stored masked on Spark
    too, and the privacy section gives the same counts and masked examples as on DuckDB."""
    from capi_diag.io import spark
    from tests.test_privacy import BROWSER, RAW, SERVER

    b, s = tmp_path / "browser.csv", tmp_path / "server.jsonl"
    b.write_text(BROWSER, encoding="utf-8")
    # Spark's JSON reader infers a column that is an object in one row and PHP's [] in another as text
    # (the whole custom_data becomes one unknown column there): the comparison uses {}
    assert '"custom_data": []' in SERVER
    s.write_text(SERVER.replace('"custom_data": []', '"custom_data": {}'), encoding="utf-8")
    d = _duckdb_report([str(b)], [str(s)])["privacy"]
    s_ds = spark.import_logs(spark_db, browser=[str(b)], server=[str(s)])
    p = build_report(s_ds)["privacy"]
    assert {k: v for k, v in p.items() if k != "by_field"} == {k: v for k, v in d.items() if k != "by_field"}
    assert sorted(map(json.dumps, p["by_field"])) == sorted(map(json.dumps, d["by_field"]))
    for role in ("browser", "server"):
        rows = spark_db.spark.table(Role(role).table).select("extra", "custom_data_extra", "event_source_url",
                                                              "fn", "ln").toArrow().to_pylist()
        text = json.dumps(rows)
        for raw in RAW:
            assert raw not in text and raw.replace("@", "%40") not in text
