from __future__ import annotations

import os
import shutil

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


def clean_graph_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> pytest.MonkeyPatch:
    """No token, Graph URL or API version from the developer's machine; the working folder and HOME
    inside ``tmp_path``, so no secrets file of the machine is read (the Graph command tests)."""
    for name in ("CAPI_ACCESS_TOKEN", "CAPI_GRAPH_URL", "CAPI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


# -- the engines the analysis tests run on (issue 15) ---------------------------------------------------

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
