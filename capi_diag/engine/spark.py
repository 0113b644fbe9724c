"""The Spark engine (``report --engine spark``): the same analyses and report, computed by Spark.

The analyses are pure Ibis expressions over named tables (:mod:`capi_diag.engine.runner`); here they are
compiled with Ibis's PySpark compiler (dialect ``pyspark``) instead of DuckDB's and run by a
:class:`SparkRunner`, which has the DuckDB runner's interface (``scope`` / ``run`` / ``reset`` /
``close``): a scope's filtered views are Spark temporary views, its shared measures temporary views
over rows materialized once (:func:`materialize`), lookup tables are made from Arrow. Nothing else
changes: the same
:class:`~capi_diag.engine.dataset.Dataset`, the same measures, the same report and checklist.

The session (:func:`connect`) is Spark Connect when ``SPARK_REMOTE`` is set (``sc://host:15002``,
Databricks), else a classic session on ``--spark-master`` (default ``local[*]``), with the settings in
:data:`SESSION_CONF`: time zone UTC, ANSI mode off (DuckDB's semantics: a failed cast is null), JSON
output that keeps null fields, UI and progress bars off, a private warehouse folder. It never
downloads anything (no ``spark.jars.packages``): lake connectors (``s3a://``, ``abfss://``) come with
the cluster's own Spark.

The import on Spark is :mod:`capi_diag.io.spark`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from capi_diag.core.errors import UsageError
from capi_diag.engine import runner
from capi_diag.engine.runner import MEASURE_PREFIX, SCOPE, STATS, VIEW_PREFIX, Scope, to_records

DIALECT = "pyspark"
DEFAULT_MASTER = "local[*]"
SESSION_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.caseSensitive": "true",
    # partition values of a lake folder stay text, as every cell does (``pixel_id=00123``)
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}
"""Settings of every session capi-diag starts (a Spark Connect session gets the SQL ones)."""
LOCAL_CONF: dict[str, str] = {"spark.sql.shuffle.partitions": "8"}
"""Added for a ``local[...]`` master: few shuffle partitions (a cluster keeps its own, AQE coalesces)."""

# -- the session -------------------------------------------------------------------------------------

def missing_requirements() -> str | None:
    """Why ``--engine spark`` cannot run here (pyspark or Java missing), with the fix; else ``None``."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        return ("--engine spark needs pyspark: pip install -r requirements-spark.txt "
                "(or pip install 'capi-diag[spark]')")
    if os.environ.get("SPARK_REMOTE"):
        return None  # Spark Connect: the server runs Java, not this machine
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")) \
        if os.environ.get("JAVA_HOME") else shutil.which("java")
    if java is None:
        return ("--engine spark needs Java 17 for a local Spark: apt-get install openjdk-17-jre-headless "
                "(or set JAVA_HOME), or set SPARK_REMOTE=sc://host:15002 to use a Spark Connect server")
    return None


def connect(master: str | None = None, *, conf: Mapping[str, str] | None = None) -> SparkDatabase:
    """A :class:`SparkDatabase` on ``SPARK_REMOTE`` (Spark Connect) or ``master`` (default ``local[*]``)."""
    problem = missing_requirements()
    if problem:
        raise UsageError(problem)
    from pyspark.sql import SparkSession

    remote = os.environ.get("SPARK_REMOTE")
    local = not remote and (master or DEFAULT_MASTER).startswith("local")
    settings = {**SESSION_CONF, **(LOCAL_CONF if local else {}), **(conf or {})}
    owned: Path | None = None
    if remote:
        builder = SparkSession.builder.remote(remote)
    else:
        owned = Path(tempfile.mkdtemp(prefix="capi-diag-spark-"))
        builder = SparkSession.builder.master(master or DEFAULT_MASTER).appName("capi-diag")
        settings.setdefault("spark.sql.warehouse.dir", str(owned / "warehouse"))
        settings.setdefault("spark.driver.extraJavaOptions", f"-Dderby.system.home={owned / 'derby'}")
    for k, v in settings.items():
        if not remote or k.startswith("spark.sql."):
            builder = builder.config(k, v)
    # A session that is already running (a notebook's, a test run's) is used and left running on close.
    started = SparkSession.getActiveSession() is None
    try:
        session = builder.getOrCreate()
    except Exception as e:  # noqa: BLE001 - Java or the cluster is unusable: one line with the fix
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"Spark Connect at SPARK_REMOTE={remote}" if remote else f"Spark master {master or DEFAULT_MASTER}"
        raise UsageError(f"--engine spark: could not start a session on {where} ({first[:300]}); check "
                         "Java 17 (JAVA_HOME) or the cluster address.") from None
    if not remote:
        session.sparkContext.setLogLevel("ERROR")
    for k, v in settings.items():  # an existing session (tests, notebooks) gets the SQL settings too
        if k.startswith("spark.sql.") and k != "spark.sql.warehouse.dir":
            session.conf.set(k, v)
    return SparkDatabase(session, owned_dir=owned, owns_session=started)


def materialize(df: Any, name: str) -> Any:
    """``df``'s rows computed now and kept by Spark (``localCheckpoint``), as the temporary view
    ``name``. The view's plan is then a scan of those rows, not the query that made them: a query over
    a view made with ``CACHE TABLE ... AS`` re-analyses the whole chain of views under it (the
    import's typing, the key table's windows) and matches it against every cached plan, which costs
    far more than running it on small inputs. The rows are freed when the view is dropped and the
    DataFrame is no longer referenced (Spark's context cleaner)."""
    kept = df.localCheckpoint(eager=True)
    kept.createOrReplaceTempView(name)
    return kept


class SparkDatabase:
    """What :class:`~capi_diag.engine.dataset.Dataset` needs of a database, on a Spark session: a runner, a
    lock and :meth:`tables_changed`. The canonical tables are cached temporary views."""

    def __init__(self, spark: Any, *, owned_dir: Path | None = None, owns_session: bool = True) -> None:
        self.spark = spark
        self.owns_session = owns_session
        """:func:`connect` started the session (it was not running already): :meth:`close` may stop it."""
        self.path = None
        self.lock = threading.RLock()
        self.runner = SparkRunner(self)
        self._owned_dir = owned_dir
        self._tables: dict[str, Any] = {}
        self.pii_key = secrets.token_hex(32)
        """The random key of this session's PII fingerprints, in memory only (see capi_diag.engine.pii)."""

    def tables_changed(self) -> None:
        self.runner.reset()

    def sql(self, text: str) -> Any:
        """The one execute path for Spark SQL of the import and the runner (counted in STATS)."""
        t0 = time.perf_counter()
        df = self.spark.sql(text)
        STATS.execute_s += time.perf_counter() - t0
        return df

    def put_table(self, name: str, df: Any) -> None:
        """``df`` as the temporary view ``name`` over its rows materialized now (a canonical table)."""
        with self.lock:
            self.drop_table(name)
            self._tables[name] = materialize(df, name)

    def drop_table(self, name: str) -> None:
        if self._tables.pop(name, None) is not None:
            self.spark.catalog.dropTempView(name)

    def put_arrow(self, name: str, table: Any) -> None:
        """An Arrow table as the cached temporary view ``name`` (tests, Dataset.from_records copies)."""
        self.put_table(name, self.spark.createDataFrame(table))

    def close(self, *, stop: bool = False) -> None:
        """Drop every view and cached table made here; ``stop`` also ends the session (the CLI's) when
        :func:`connect` started it: a session that was running before (a notebook's) keeps running."""
        with self.lock:
            self.runner.close()
            for name in list(self._tables):
                self.drop_table(name)
            if stop and self.owns_session:
                self.spark.stop()
            if self._owned_dir is not None and stop:
                shutil.rmtree(self._owned_dir, ignore_errors=True)
                self._owned_dir = None

    def __enter__(self) -> SparkDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(stop=True)


# -- the runner --------------------------------------------------------------------------------------

def _spark_view_sql(duckdb_sql: str) -> str:
    """A scope's filter view (written by :class:`Dataset` as DuckDB SQL: ``SELECT * FROM "t" WHERE``
    simple predicates) in Spark SQL."""
    import sqlglot

    return sqlglot.transpile(duckdb_sql, read="duckdb", write="spark")[0]


def _trace(sql: str, seconds: float) -> None:
    """``CAPI_DIAG_SPARK_TRACE=1``: one line per Spark query on stderr (seconds, size, start)."""
    if os.environ.get("CAPI_DIAG_SPARK_TRACE") == "1":
        import sys

        print(f"spark {seconds:7.2f}s {len(sql):7d}B {sql[:90]!r}", file=sys.stderr, flush=True)


_COMPILER_READY = False


def prepare_compiler() -> None:
    """Make Ibis's PySpark compiler usable without a PySpark backend object, once per process:

    * its options (``ibis.options.pyspark``) are registered when the backend loads; compiling with
      ``dialect="pyspark"`` alone leaves them unset and any float column fails to compile;
    * ``BIT_OR`` as an aggregate (``rules.row_validity`` folds each value's defect bits with it) is
      Spark SQL's ``bit_or`` (since Spark 3.0), which Ibis maps for Databricks but not for PySpark.
    """
    global _COMPILER_READY
    if _COMPILER_READY:
        return
    import ibis
    import ibis.expr.operations as ops
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    ibis.pyspark  # noqa: B018 - loading the backend registers its options
    if getattr(ibis.options, "pyspark", None) is None:  # pragma: no cover - older Ibis
        from ibis.backends.pyspark import Backend

        ibis.options.pyspark = Backend.Options()

    def visit_bit_or(self, _op, *, where, order_by=(), **kw):
        return self.agg["bit_or"](*kw.values(), where=where, order_by=order_by)

    assert ops.BitOr.__name__ == "BitOr"
    PySparkCompiler.visit_BitOr = visit_bit_or
    _COMPILER_READY = True


class SparkRunner:
    """:class:`capi_diag.engine.runner.Runner`'s interface on a Spark session (see the module docstring)."""

    max_scopes = 4
    engine = "spark"
    dialect = DIALECT

    def __init__(self, db: SparkDatabase) -> None:
        prepare_compiler()
        self.db = db
        self._scopes: OrderedDict[tuple, Scope] = OrderedDict()
        self._counter = 0
        self._lookups: list[str] = []
        self._kept: dict[str, Any] = {}

    def scope(self, key: tuple, plan_key: str, views: Mapping[str, str],
              measure_sql: Callable[[str], str]) -> Scope:
        with self.db.lock:
            sc = self._scopes.get(key)
            if sc is not None:
                self._scopes.move_to_end(key)
                return sc
            self._counter += 1
            sc = Scope(key, f"_s{self._counter}", plan_key,
                       {r: _spark_view_sql(v) for r, v in views.items()}, measure_sql)
            self._scopes[key] = sc
            while len(self._scopes) > self.max_scopes:
                _, old = self._scopes.popitem(last=False)
                self._drop(old)
            return sc

    def _drop(self, sc: Scope) -> None:
        cat = self.db.spark.catalog
        for _kind, name in reversed([tuple(x.split(":", 1)) for x in sc.created]):
            self._kept.pop(name, None)
            try:
                cat.dropTempView(name)
            except Exception:  # noqa: BLE001 - the session may already be stopped
                pass
        sc.created.clear()
        sc.ready.clear()
        sc.results.clear()

    def reset(self) -> None:
        with self.db.lock:
            for sc in self._scopes.values():
                self._drop(sc)
            self._scopes.clear()

    def close(self) -> None:
        with self.db.lock:
            self.reset()
            for name in self._lookups:
                self._kept.pop(name, None)
                try:
                    self.db.spark.catalog.dropTempView(name)
                except Exception:  # noqa: BLE001
                    pass
            self._lookups.clear()

    def temp_objects(self) -> list[str]:
        return [*self._lookups, *(x.split(":", 1)[1] for sc in self._scopes.values() for x in sc.created)]

    def _ensure_lookups(self, sql: str) -> None:
        for prefix, build in runner.LOOKUPS.items():
            if prefix not in sql:
                continue
            for suffix in dict.fromkeys(re.findall(rf"{re.escape(prefix)}(\w+)", sql)):
                name = f"{prefix}{suffix}"
                if name in self._lookups:
                    continue
                self._kept[name] = materialize(self.db.spark.createDataFrame(build(suffix)), name)
                self._lookups.append(name)

    def _ensure(self, sc: Scope, sql: str, depth: int = 0) -> None:
        if depth > 8:
            raise RuntimeError("shared measures refer to each other in a cycle")
        for role, view_sql in sc.views.items():
            name = f"{VIEW_PREFIX}{role}{sc.suffix}"
            if name not in sc.ready and f"{VIEW_PREFIX}{role}{SCOPE}" in sql:
                self._exec(f"CREATE OR REPLACE TEMPORARY VIEW `{name}` AS {view_sql}")
                sc.created.append(f"VIEW:{name}")
                sc.ready.add(name)
        for m in dict.fromkeys(runner.MEASURE_RE.findall(sql)):
            name = f"{MEASURE_PREFIX}{m}{sc.suffix}"
            if name in sc.ready:
                continue
            template = sc.measure_sql(m)
            self._ensure(sc, template, depth + 1)
            self._ensure_lookups(template)
            t0 = time.perf_counter()
            sql = sc.name(template)
            self._kept[name] = materialize(self.db.spark.sql(sql), name)
            _trace(sql, time.perf_counter() - t0)
            STATS.execute_s += time.perf_counter() - t0
            STATS.queries += 1
            STATS.sql_bytes += len(sql)
            STATS.materialized += 1
            sc.created.append(f"TABLE:{name}")
            sc.ready.add(name)

    def _exec(self, sql: str) -> None:
        t0 = time.perf_counter()
        self.db.spark.sql(sql)
        _trace(sql, time.perf_counter() - t0)
        STATS.execute_s += time.perf_counter() - t0
        STATS.queries += 1
        STATS.sql_bytes += len(sql)

    def records(self, sc: Scope, template: str) -> list[dict[str, Any]]:
        return to_records(self.run(sc, template))

    def run(self, sc: Scope, template: str) -> Any:
        with self.db.lock:
            self._ensure(sc, template)
            self._ensure_lookups(template)
            sql = sc.name(template)
            t0 = time.perf_counter()
            table = self.db.spark.sql(sql).toArrow()
            _trace(sql, time.perf_counter() - t0)
            STATS.execute_s += time.perf_counter() - t0
            STATS.queries += 1
            STATS.sql_bytes += len(sql)
            return runner.whole_numbers_from_arrow(table)
