"""The one way analyses reach the engine: compile once, materialize shared measures, fetch rows.

Analyses and measures build *pure* Ibis expressions over tables referred to by name only: the
filtered event views ``capi_v_browser`` / ``capi_v_server`` and the shared measures ``capi_m_<name>``
(:mod:`capi_diag.engine.measures`), each name carrying the placeholder :data:`SCOPE`. Building an expression
never runs a query. This module turns such an expression into SQL once and reuses it:

* **Compiled once.** :class:`SqlCache` keeps compiled SQL in memory and on disk, keyed by
  capi-diag's code fingerprint, the *plan key* (the columns each log carried and the configuration)
  and the query's name. Compiled SQL holds no data and names no temporary table of a particular
  run, so it is reused across runs, datasets, Test Events batches and dashboard filters.
* **Scopes.** A :class:`Scope` is one (dataset, filters, plan) as the engine sees it: a suffix that
  replaces :data:`SCOPE` in every table name, two views that apply the filters, and the measure
  tables materialized for it (lazily, when a query first names one). The :class:`Runner` keeps a few
  scopes and drops the views and tables of the ones it evicts, and everything on :meth:`Runner.reset`
  (the canonical tables changed) and :meth:`Runner.close`: no temporary table outlives its owner.
* **One fetch path.** :meth:`Runner.records` executes one query and returns its rows as dicts
  (what analyses read), :meth:`Runner.run` as an Arrow table (the dashboard's tables); both go
  through ``Runner._fetch``. :data:`STATS` counts the queries, the SQL bytes and the time spent
  compiling and executing (``CAPI_DIAG_STATS=/path.json`` writes them when the process exits; the
  benchmark reads them).

The runner is DuckDB's; the expressions are portable Ibis, so another engine needs another runner,
not other analyses.
"""

from __future__ import annotations

import atexit
import decimal
import functools
import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    import ibis.expr.types as ir
    import pyarrow as pa

    from capi_diag.engine.db import Database

T = TypeVar("T")

SCOPE = "__capiscope__"
"""Placeholder in compiled SQL for the scope's table-name suffix."""
VIEW_PREFIX = "capi_v_"
MEASURE_PREFIX = "capi_m_"
MEASURE_RE = re.compile(rf"{MEASURE_PREFIX}([a-z0-9_]+?){SCOPE}")
DIALECT = "duckdb"
LOOKUPS: dict[str, Callable[[str], pa.Table]] = {}
"""Small lookup tables that hold data (e.g. allowed hashes): ``prefix -> build(suffix)``. A query that
names ``<prefix><suffix>`` gets the table created once per connection from ``build(suffix)``."""


# -- statistics --------------------------------------------------------------------------------------

@dataclass
class Stats:
    """What the engine did in this process (the benchmark's compiled-SQL size and query count)."""

    queries: int = 0
    sql_bytes: int = 0
    compiled: int = 0
    cache_hits: int = 0
    materialized: int = 0
    expressions_built: int = 0
    """Shared expressions :func:`per_plan` built (a call it answered from memory is not counted)."""
    compile_s: float = 0.0
    execute_s: float = 0.0
    database: str = "memory"
    """``memory`` or ``file`` (a file-backed database for large inputs: :meth:`Database.for_inputs`)."""

    def reset(self) -> None:
        for k, v in asdict(Stats()).items():
            setattr(self, k, v)


STATS = Stats()


def _write_stats() -> None:
    path = os.environ.get("CAPI_DIAG_STATS")
    if path:
        try:
            Path(path).write_text(json.dumps(asdict(STATS)), encoding="utf-8")
        except OSError:
            pass


atexit.register(_write_stats)


# -- compiled SQL cache ------------------------------------------------------------------------------

def fingerprint() -> str:
    """A hash of capi-diag's version and core source: compiled SQL is reused only by the same code."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        from capi_diag import __version__

        h = hashlib.sha256(__version__.encode())
        root = Path(__file__).parent.parent  # the whole package: an analysis compiles SQL too
        for p in sorted(root.rglob("*.py")):
            if "ui" in p.relative_to(root).parts:
                continue
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
        _FINGERPRINT = h.hexdigest()[:20]
    return _FINGERPRINT


_FINGERPRINT: str | None = None


def cache_dir() -> Path | None:
    """``CAPI_DIAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/capi-diag``, else ``~/.cache/capi-diag``;
    ``CAPI_DIAG_CACHE_DIR=off`` keeps compiled SQL in memory only."""
    env = os.environ.get("CAPI_DIAG_CACHE_DIR")
    if env == "off":
        return None
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "capi-diag"


LOOKUP_KEEP_S = 2 * 86400
"""Lookup copies in the cache folder untouched for longer than this are removed when a new one is
written: a lookup's name carries its day (the allowed ``db`` hashes change daily), so yesterday's
copies are never read again, and each day's full set is 3 MB."""


def prune_lookups(folder: Path, now: float | None = None) -> list[Path]:
    """Remove ``lookup-*.parquet`` files of ``folder`` last modified over :data:`LOOKUP_KEEP_S` ago;
    returns them. Errors are ignored (another process may remove the same file)."""
    now = time.time() if now is None else now
    removed = []
    try:
        candidates = list(folder.glob("lookup-*.parquet"))
    except OSError:
        return removed
    for f in candidates:
        try:
            if now - f.stat().st_mtime > LOOKUP_KEEP_S:
                f.unlink()
                removed.append(f)
        except OSError:
            pass
    return removed


class SqlCache:
    """Compiled SQL by (plan key, name): in memory, and in one JSON file per plan on disk.

    Entries hold SQL text with :data:`SCOPE` placeholders and no data. A file that cannot be read
    or written is ignored (the SQL is compiled again): the cache only ever saves time.
    """

    def __init__(self) -> None:
        self._mem: dict[str, dict[str, str]] = {}
        self._dirty: set[str] = set()
        self.lock = threading.RLock()

    @staticmethod
    def _bucket(plan_key: str) -> str:
        return hashlib.sha256(f"{fingerprint()}\n{plan_key}".encode()).hexdigest()[:32]

    def _path(self, bucket: str) -> Path | None:
        d = cache_dir()
        return None if d is None else d / f"sql-{bucket}.json"

    def _entries(self, plan_key: str) -> dict[str, str]:
        bucket = self._bucket(plan_key)
        entries = self._mem.get(bucket)
        if entries is None:
            entries = {}
            path = self._path(bucket)
            if path is not None and path.is_file():
                try:
                    loaded = json.loads(path.read_text(encoding="utf-8"))
                    if isinstance(loaded, dict):
                        entries = {str(k): str(v) for k, v in loaded.items()}
                except (OSError, ValueError):
                    entries = {}
            self._mem[bucket] = entries
        return entries

    def get(self, plan_key: str, name: str) -> str | None:
        with self.lock:
            return self._entries(plan_key).get(name)

    def put(self, plan_key: str, name: str, sql: str) -> None:
        with self.lock:
            self._entries(plan_key)[name] = sql
            self._dirty.add(self._bucket(plan_key))

    def flush(self) -> None:
        """Write the plans that gained entries (atomically: a reader never sees half a file)."""
        with self.lock:
            for bucket in sorted(self._dirty):
                path = self._path(bucket)
                if path is None:
                    continue
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                    tmp.write_text(json.dumps(self._mem[bucket], sort_keys=True), encoding="utf-8")
                    os.replace(tmp, path)
                except OSError:
                    pass
            self._dirty.clear()

    def clear_memory(self) -> None:
        with self.lock:
            self._mem.clear()
            self._dirty.clear()


CACHE = SqlCache()
atexit.register(CACHE.flush)


def compile_sql(expr: ir.Expr, dialect: str = DIALECT) -> str:
    """Ibis expression -> SQL of ``dialect`` (DuckDB's by default; ``pyspark`` for the Spark runner,
    :mod:`capi_diag.io.spark`), compact, counted in :data:`STATS`."""
    import ibis

    t0 = time.perf_counter()
    sql = ibis.to_sql(expr, dialect=dialect, pretty=False)
    STATS.compile_s += time.perf_counter() - t0
    STATS.compiled += 1
    return sql


def check_enabled() -> bool:
    """``CAPI_DIAG_SQL_CHECK=1``: recompile on every cache hit and fail on a difference (tests use it
    to prove that query names identify their SQL)."""
    return os.environ.get("CAPI_DIAG_SQL_CHECK") == "1"


class StaleSqlError(AssertionError):
    """A cached query's SQL differs from the SQL its builder compiles to now (a naming bug)."""


def cached_sql(plan_key: str, name: str, build: ir.Expr | Callable[[], ir.Expr], dialect: str = DIALECT) -> str:
    """The SQL template of query ``name`` in plan ``plan_key``: from the cache, or built (``build`` is
    the expression or a function returning it, called only when needed) and compiled once. Another
    ``dialect`` than DuckDB's is cached under its own key (``<dialect>:<name>``)."""
    if dialect != DIALECT:
        name = f"{dialect}:{name}"
    if not callable(build):
        expr = build

        def build() -> ir.Expr:
            return expr

    sql = CACHE.get(plan_key, name)
    if sql is not None:
        STATS.cache_hits += 1
        if check_enabled():
            fresh = compile_sql(build(), dialect)
            if fresh != sql:
                raise StaleSqlError(f"query {name!r}: the cached SQL differs from its builder's SQL")
        return sql
    sql = compile_sql(build(), dialect)
    CACHE.put(plan_key, name, sql)
    return sql


# -- expressions built once per plan ------------------------------------------------------------------

EXPR_CACHE_SIZE = 256
"""Expressions kept by :func:`per_plan` (least recently used go first)."""
_EXPRS: OrderedDict[tuple, Any] = OrderedDict()
_EXPRS_LOCK = threading.Lock()


def per_plan(build: Callable[..., Any]) -> Callable[..., Any]:
    """``build(ds, *args)``, a pure expression builder, memoized on its name, ``ds.plan_key`` and
    ``args`` (hashable): the expression it returns names tables only, so it depends on nothing else,
    the premise :func:`cached_sql` rests on. Shared sub-expressions (the ranked rows, the validity
    flags) are then built once per plan in a process instead of once per report: building one Ibis
    join costs about 10 ms, and reports over small logs spent about a third of their time building
    expressions (cProfile, 60 hostile files). Under ``CAPI_DIAG_SQL_CHECK=1`` every call builds
    afresh, so the check still compares what the builders produce now."""

    @functools.wraps(build)
    def cached(ds: Any, *args: Any) -> Any:
        if check_enabled():
            return build(ds, *args)
        key = (build.__module__, build.__qualname__, ds.plan_key, args)
        with _EXPRS_LOCK:
            hit = _EXPRS.get(key)
            if hit is not None:
                _EXPRS.move_to_end(key)
                return hit
        expr = build(ds, *args)
        STATS.expressions_built += 1
        with _EXPRS_LOCK:
            _EXPRS[key] = expr
            while len(_EXPRS) > EXPR_CACHE_SIZE:
                _EXPRS.popitem(last=False)
        return expr

    return cached


# -- scopes and the runner ---------------------------------------------------------------------------

@dataclass
class Scope:
    """One (dataset, filters, plan) in the engine: a table-name suffix and what was made for it."""

    key: tuple
    suffix: str
    plan_key: str
    views: Mapping[str, str]
    """``role -> SQL`` of the filtered view of that role's canonical table."""
    measure_sql: Callable[[str], str]
    """``name -> SQL template`` of a shared measure (from :mod:`capi_diag.engine.measures`)."""
    created: list[str] = field(default_factory=list)
    ready: set[str] = field(default_factory=set)
    results: dict[str, Any] = field(default_factory=dict)
    """Small results several analyses read (the rows of each log), kept while the scope lives."""

    def name(self, template_name: str) -> str:
        return template_name.replace(SCOPE, self.suffix)


class Runner:
    """Owns the scopes of one database connection and every temporary object made for them."""

    max_scopes = 4
    engine = "duckdb"
    """The report's ``engine`` field."""
    dialect = DIALECT
    """The Ibis dialect queries are compiled to for this runner (:func:`cached_sql`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._scopes: OrderedDict[tuple, Scope] = OrderedDict()
        self._counter = 0
        self._lookups: list[str] = []

    # -- scopes ----------------------------------------------------------------------------------
    def scope(self, key: tuple, plan_key: str, views: Mapping[str, str],
              measure_sql: Callable[[str], str]) -> Scope:
        with self.db.lock:
            sc = self._scopes.get(key)
            if sc is not None:
                self._scopes.move_to_end(key)
                return sc
            self._counter += 1
            sc = Scope(key, f"_s{self._counter}", plan_key, dict(views), measure_sql)
            self._scopes[key] = sc
            while len(self._scopes) > self.max_scopes:
                _, old = self._scopes.popitem(last=False)
                self._drop(old)
            return sc

    def _drop(self, sc: Scope) -> None:
        for kind, name in reversed([tuple(x.split(":", 1)) for x in sc.created]):
            try:
                self.db.con.execute(f'DROP {kind} IF EXISTS temp."{name}"')
            except Exception:  # noqa: BLE001 - the connection may already be closed
                pass
        sc.created.clear()
        sc.ready.clear()
        sc.results.clear()

    def reset(self) -> None:
        """Drop every scope's objects: the canonical tables changed under them."""
        with self.db.lock:
            for sc in self._scopes.values():
                self._drop(sc)
            self._scopes.clear()

    def close(self) -> None:
        """Drop everything this runner made (scopes and lookup tables)."""
        with self.db.lock:
            self.reset()
            for name in self._lookups:
                try:
                    self.db.con.execute(f'DROP TABLE IF EXISTS temp."{name}"')
                except Exception:  # noqa: BLE001 - the connection may already be closed
                    pass
            self._lookups.clear()

    def temp_objects(self) -> list[str]:
        """Names of the temporary views and tables this runner currently owns (for tests)."""
        return [*self._lookups, *(x.split(":", 1)[1] for sc in self._scopes.values() for x in sc.created)]

    def _ensure_lookups(self, sql: str) -> None:
        for prefix, build in LOOKUPS.items():
            if prefix not in sql:
                continue
            for suffix in dict.fromkeys(re.findall(rf"{re.escape(prefix)}(\w+)", sql)):
                name = f"{prefix}{suffix}"
                if name in self._lookups:
                    continue
                self._create_lookup(name, functools.partial(build, suffix))
                self._lookups.append(name)

    def _create_lookup(self, name: str, build: Callable[[], pa.Table]) -> None:
        """Create lookup ``name`` from its Parquet copy in the cache folder, else from ``build()``
        (then saved there for the next process: building one can cost a second, reading it 10 ms)."""
        d = cache_dir()
        path = None if d is None else d / f"lookup-{fingerprint()}-{name}.parquet"
        if path is not None and path.is_file():
            try:
                self._exec(f"CREATE OR REPLACE TEMP TABLE \"{name}\" AS "
                           f"SELECT * FROM read_parquet('{path.as_posix()}')")
                return
            except Exception:  # noqa: BLE001 - a damaged copy: build it again
                pass
        self.db.con.register("_capi_lookup", build())
        try:
            self._exec(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT * FROM _capi_lookup')
        finally:
            self.db.con.unregister("_capi_lookup")
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                self.db.con.execute(f"COPY \"{name}\" TO '{tmp.as_posix()}' (FORMAT parquet)")
                os.replace(tmp, path)
            except Exception:  # noqa: BLE001 - the cache only saves time
                pass
            prune_lookups(path.parent)

    # -- execution -------------------------------------------------------------------------------
    def _ensure(self, sc: Scope, sql: str, depth: int = 0) -> None:
        if depth > 8:
            raise RuntimeError("shared measures refer to each other in a cycle")
        for role, view_sql in sc.views.items():
            name = f"{VIEW_PREFIX}{role}{sc.suffix}"
            if name not in sc.ready and f"{VIEW_PREFIX}{role}{SCOPE}" in sql:
                self._exec(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {view_sql}')
                sc.created.append(f"VIEW:{name}")
                sc.ready.add(name)
        for m in dict.fromkeys(MEASURE_RE.findall(sql)):
            name = f"{MEASURE_PREFIX}{m}{sc.suffix}"
            if name in sc.ready:
                continue
            template = sc.measure_sql(m)
            self._ensure(sc, template, depth + 1)
            self._ensure_lookups(template)
            self._exec(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sc.name(template)}')
            STATS.materialized += 1
            sc.created.append(f"TABLE:{name}")
            sc.ready.add(name)

    def _exec(self, sql: str) -> None:
        t0 = time.perf_counter()
        self.db.retrying(lambda: self.db.con.execute(sql))
        STATS.execute_s += time.perf_counter() - t0
        STATS.queries += 1
        STATS.sql_bytes += len(sql)

    def run(self, sc: Scope, template: str) -> pa.Table:
        """Execute one SQL template in scope ``sc`` and return all its rows as Arrow (small results,
        aggregates and examples: the dashboard's tables)."""
        return whole_numbers_from_arrow(self._fetch(sc, template, _arrow_of))

    def records(self, sc: Scope, template: str) -> list[dict[str, Any]]:
        """:meth:`run` as plain Python rows (what :func:`to_records` makes of its Arrow), taken from
        DuckDB's own conversion without going through Arrow: most of the report's queries return a
        few rows, read as dicts, and the Arrow step cost a second statement per query."""
        names, rows = self._fetch(sc, template, _rows_of)
        return [{n: _whole(v) for n, v in zip(names, row, strict=True)} for row in rows]

    def _fetch(self, sc: Scope, template: str, read: Callable[[Any, str], T]) -> T:
        """The one fetch path: the scope's views, measures and lookups made, then ``read(con, sql)``
        of the template named for ``sc``, counted in :data:`STATS`."""
        with self.db.lock:
            self._ensure(sc, template)
            self._ensure_lookups(template)
            sql = sc.name(template)
            t0 = time.perf_counter()
            out = self.db.retrying(lambda: read(self.db.con, sql))
            STATS.execute_s += time.perf_counter() - t0
            STATS.queries += 1
            STATS.sql_bytes += len(sql)
            return out


def _rows_of(con: Any, sql: str) -> tuple[list[str], list[tuple]]:
    cur = con.execute(sql)
    return [d[0] for d in cur.description], cur.fetchall()


def _whole(v: Any) -> Any:
    """A whole-number decimal as an int, as :func:`whole_numbers_from_arrow` gives it."""
    if isinstance(v, decimal.Decimal) and v.is_finite() and v.as_tuple().exponent == 0:
        return int(v)
    return v


def _arrow_of(con: Any, sql: str) -> pa.Table:
    """All rows of ``sql`` as Arrow, through a relation: the rows stream into Arrow without a copy
    (``execute`` then Arrow copies the result once, which matters for the dashboard's failing rows).
    A relation plans the query twice (it binds the statement to learn its columns, then runs it),
    which is why the report's many small queries use :meth:`Runner.records` instead."""
    return con.sql(sql).to_arrow_table()


def whole_numbers_from_arrow(table: pa.Table) -> pa.Table:
    """DuckDB sums integers into HUGEINT (Arrow ``decimal(38, 0)``); give them back as int64, as the
    expressions' types say."""
    import pyarrow as pa

    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.type.scale == 0:
            table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table


def to_records(table: pa.Table) -> list[dict[str, Any]]:
    """Arrow rows as plain Python values (ints, floats, strings, lists, ``None``), ready for JSON."""
    return table.to_pylist()
