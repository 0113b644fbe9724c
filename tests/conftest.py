from __future__ import annotations

import copy
import functools
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def browser_tests_enabled() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("CAPI_BROWSER_TESTS") == "1"


def pytest_collection_modifyitems(config, items):
    """Browser tests run under CI=true (CI installs Debian's chromium) and must not skip there;
    elsewhere they skip unless CAPI_BROWSER_TESTS=1."""
    if browser_tests_enabled():
        return
    skip = pytest.mark.skip(
        reason="browser test: set CAPI_BROWSER_TESTS=1 (or CI=true) and install Debian's chromium to run it"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium not found on PATH: `apt-get install chromium` (CI's .ci/run does this)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _streamlit_component_scan_once():
    """Each new ``AppTest`` scans every installed distribution for Streamlit components (about 0.15 s,
    some forty apps a run). The installed packages cannot change during a run, so the scan runs once
    and every app registers the same manifests from it."""
    if "streamlit" not in sys.modules:  # no module of this run uses Streamlit
        yield
        return
    from streamlit.components.v2 import manifest_scanner

    scan_once = functools.cache(manifest_scanner.scan_component_manifests)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(manifest_scanner, "scan_component_manifests", lambda max_workers=None: list(scan_once()))
        yield


# -- data several modules read (built once a run; each module gets its own copy of a report) -----------

@pytest.fixture(scope="session")
def held_out_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Held-out logs, not the demo's seed: ``python -m capi_diag sample --sessions 300 --seed 11``.
    The generator is seeded, so every module that uploads them would write these same bytes."""
    from capi_diag.io.sample import write_sample

    out = tmp_path_factory.mktemp("held_out")
    write_sample(out, sessions=300, seed=11, fmt="csv")
    return {"browser": out / "browser_events.csv", "server": out / "server_events.csv"}


@pytest.fixture(scope="session")
def _held_out_report(held_out_logs: dict[str, Path]) -> dict:
    from capi_diag.core.config import Config
    from capi_diag.engine.db import Database
    from capi_diag.io.ingest import import_logs
    from capi_diag.report import build_report

    with Database() as db:
        ds = import_logs(db, browser=[held_out_logs["browser"]], server=[held_out_logs["server"]])
        return build_report(ds, Config())


@pytest.fixture(scope="module")
def held_out_report(_held_out_report: dict) -> dict:
    """The held-out logs' unfiltered report, as ``python -m capi_diag report`` builds it: built once a
    run, copied for each module so that no module sees another's changes."""
    return copy.deepcopy(_held_out_report)


def clean_graph_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> pytest.MonkeyPatch:
    """No token, Graph URL or API version from the developer's machine; the working folder and HOME
    inside ``tmp_path``, so no secrets file of the machine is read (the Graph command tests)."""
    for name in ("CAPI_ACCESS_TOKEN", "CAPI_GRAPH_URL", "CAPI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


# -- the engines the analysis tests run on ---------------------------------------------------

SPARK_TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    # tiny inputs: interpreting beats compiling each query's generated code
    "spark.sql.codegen.wholeStage": "false",
}


@pytest.fixture(scope="session")
def spark_db(tmp_path_factory):
    """One local Spark session for the whole run (``local[2]``, few shuffle partitions, UI off, UTC,
    its warehouse in a temporary folder): the :class:`capi_diag.engine.spark.SparkDatabase` over it."""
    from capi_diag.engine import spark

    problem = spark.missing_requirements()
    if problem:
        pytest.fail(f"the Spark tests need pyspark and Java: {problem}")
    conf = {**SPARK_TEST_CONF, "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse"))}
    db = spark.connect("local[2]", conf=conf)
    yield db
    db.close(stop=True)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("pyspark", marks=pytest.mark.spark)])
def on_engine(request):
    """``ds -> ds`` on the engine under test: DuckDB's dataset itself, or the same canonical tables
    copied into the Spark session (``make test-spark`` runs the ``pyspark`` cases)."""
    if request.param == "duckdb":
        return lambda ds: ds
    from capi_diag.io import spark

    db = request.getfixturevalue("spark_db")
    return lambda ds: spark.copy_dataset(ds, db)
