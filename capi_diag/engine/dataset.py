"""A Dataset: the two canonical event tables of one analysis, plus what the import learned.

Analyses receive a :class:`Dataset` and read ``ds.events("server")`` / ``ds.events("browser")``
(Ibis tables, filtered when the dashboard sets filters) and ``ds.has(role, field)`` (whether the
logs carried that column at all: a section whose inputs are absent is ``not_evaluated``).

:meth:`Dataset.from_records` builds the canonical tables from a few Python dicts. Tests use it to
build tiny logs exactly, and the Test Events sender uses it to validate payloads with the same
rules as the diagnostics. It is not an import path for logs (that is :mod:`capi_diag.io.ingest`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from capi_diag.core.config import Config
from capi_diag.core.schema import (
    FIELDS_BY_NAME,
    ORDERS_COLUMNS,
    ORDERS_TABLE,
    SENDS_COLUMNS,
    SENDS_TABLE,
    Kind,
    Role,
    canonical_columns,
)
from capi_diag.engine import runner
from capi_diag.engine.db import Database
from capi_diag.engine.lazy import ibis, ir, pa

META_COLUMNS_TABLE = "capi_columns"
PART_COLUMN = "_part"
"""The column that tags each row of a :meth:`Dataset.fetch_parts` query with its part."""
META_INPUTS_TABLE = "capi_inputs"
META_MULTI_TABLE = "capi_multi_valued"
"""``(role, field)``: the list columns of each log with a cell holding several values
(:attr:`Dataset.multi`)."""

_ARROW_TYPES = {"VARCHAR": "string", "BIGINT": "int64", "INTEGER": "int32", "BOOLEAN": "bool_"}
"""pyarrow's type factory for each canonical SQL type (``VARCHAR[]``: a list of strings)."""


@dataclass(frozen=True)
class Filters:
    """Filters the dashboard applies to every page. Times are Unix seconds, ``end`` exclusive."""

    start: int | None = None
    end: int | None = None
    event_names: tuple[str, ...] = ()
    pixel_ids: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.start is not None or self.end is not None or self.event_names or self.pixel_ids)


@dataclass
class Dataset:
    """The canonical tables of one analysis as the engine sees them: the columns each log carried,
    what the import learned, the dashboard's filters and the configuration in force.

    Expressions built from :meth:`events` and :meth:`measure` name tables only (see
    :mod:`capi_diag.engine.runner`): building never runs a query. :meth:`fetch` is how analyses run one.
    """

    db: Database
    present: dict[str, frozenset[str]]
    inputs: dict[str, Any] = field(default_factory=dict)
    filters: Filters = field(default_factory=Filters)
    config: Config = field(default_factory=Config)
    multi: dict[str, frozenset[str]] | None = None
    """Per log, the list columns with at least one cell holding several values (:func:`multi_valued`);
    ``None`` when not known, read as "any list column may". A rule unnests only these columns'
    cells: the others hold one value per cell, judged in place. Part of the plan key."""

    # -- plan ----------------------------------------------------------------------------------
    @property
    def plan_key(self) -> str:
        """What compiled SQL depends on besides the code: the columns each log carried, the
        configuration and the UTC day (filters are not part of it: they live in the scope's views)."""
        key = self.__dict__.get("_plan_key")
        if key is None:
            # The day: the allowed date-of-birth hashes end today, and the SQL names that day's table.
            day = dt.datetime.now(dt.timezone.utc).date().isoformat()
            multi = None if self.multi is None else {r: sorted(v) for r, v in sorted(self.multi.items())}
            key = json.dumps({"present": {r: sorted(v) for r, v in sorted(self.present.items())},
                              "multi": multi, "config": self.config.raw, "day": day},
                             sort_keys=True, default=str)
            self.__dict__["_plan_key"] = key
        return key

    def using(self, config: Config | None) -> Dataset:
        """This dataset under ``config`` (itself when it is already the one in force)."""
        if config is None or config == self.config:
            return self
        return replace(self, config=config)

    def with_filters(self, filters: Filters) -> Dataset:
        return replace(self, filters=filters)

    def scope(self) -> runner.Scope:
        """The engine scope of these rows, filters and plan (made once, kept by the runner)."""
        plan = self.plan_key
        return self.db.runner.scope((self.filters, plan), plan, self._view_sql(), self._measure_sql)

    def _view_sql(self) -> dict[str, str]:
        out = {}
        for role in Role:
            preds = self._filter_sql(role)
            where = f" WHERE {' AND '.join(preds)}" if preds else ""
            out[role.value] = f'SELECT * FROM "{role.table}"{where}'
        return out

    def _filter_sql(self, role: Role) -> list[str]:
        """The filters as SQL predicates; values are whole numbers or quoted string literals."""
        f = self.filters

        def strings(values: Iterable[str]) -> str:
            return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)

        preds = []
        if f.start is not None:
            preds.append(f"event_time >= {int(f.start)}")
        if f.end is not None:
            preds.append(f"event_time < {int(f.end)}")
        if f.event_names:
            preds.append(f"event_name IN ({strings(f.event_names)})")
        if f.pixel_ids and self.has(role, "pixel_id"):
            preds.append(f"pixel_id IN ({strings(f.pixel_ids)})")
        return preds

    def _measure_sql(self, name: str) -> str:
        from capi_diag.engine import measures

        return runner.cached_sql(self.plan_key, f"measure:{name}", lambda: measures.build(self, name),
                                  self.db.runner.dialect)

    # -- expressions (pure) ----------------------------------------------------------------------
    def events(self, role: Role | str) -> ir.Table:
        """The canonical table of ``role`` with the dataset's filters applied (a named view)."""
        return _named(f"{runner.VIEW_PREFIX}{Role(role).value}{runner.SCOPE}", canonical_schema())

    def raw_events(self, role: Role | str) -> ir.Table:
        """The canonical table of ``role`` without the filters (the sidebar's choices, the demo copy)."""
        return _named(Role(role).table, canonical_schema())

    def measure(self, name: str) -> ir.Table:
        """The shared measurement ``name`` of :mod:`capi_diag.engine.measures` as a table: materialized once
        per scope, when a query first reads it."""
        from capi_diag.engine import measures

        key = f"schema:{name}"
        cached = runner.CACHE.get(self.plan_key, key)
        if cached is None:
            schema = measures.build(self, name).schema()
            cached = json.dumps([[c, str(t)] for c, t in schema.items()])
            runner.CACHE.put(self.plan_key, key, cached)
        return _named(f"{runner.MEASURE_PREFIX}{name}{runner.SCOPE}", tuple(map(tuple, json.loads(cached))))

    def orders(self) -> ir.Table:
        """The imported orders export (``capi_orders``, see :mod:`capi_diag.io.orders`); read it only
        when :meth:`has_input` ``("orders")``."""
        return _named(ORDERS_TABLE, tuple((c, _IBIS_TYPES[t]) for c, t in ORDERS_COLUMNS))

    def sends(self) -> ir.Table:
        """Meta's answers, one row per event sent (``capi_sends``); read it only when
        :meth:`has_input` ``("sends")``."""
        return _named(SENDS_TABLE, tuple((c, _IBIS_TYPES[t]) for c, t in SENDS_COLUMNS))

    def has_input(self, name: str) -> bool:
        """Whether the optional input ``name`` (``orders``, ``sends``) was imported."""
        return bool(self.present.get(name))

    def multi_valued(self, role: Role | str) -> frozenset[str] | None:
        """The list columns of ``role`` with a cell holding several values (``None``: not known)."""
        return None if self.multi is None else self.multi.get(Role(role).value, frozenset())

    def has(self, role: Role | str, name: str) -> bool:
        """Whether the ``role`` log carried the canonical column ``name`` (in any file)."""
        return name in self.present.get(Role(role).value, frozenset())

    # -- running (the one fetch path) --------------------------------------------------------------
    def fetch_arrow(self, name: str, build: ir.Table | Callable[[], ir.Table]) -> pa.Table:
        """Run query ``name`` (built by ``build`` only when its SQL is not compiled yet) as Arrow.
        ``name`` must identify the query within this plan: the builder's choices that are not in
        :attr:`plan_key` (a role, a field) belong in the name."""
        sql = runner.cached_sql(self.plan_key, name, build, self.db.runner.dialect)
        return self.db.runner.run(self.scope(), sql)

    def fetch(self, name: str, build: ir.Table | Callable[[], ir.Table]) -> list[dict[str, Any]]:
        """:meth:`fetch_arrow` as plain Python rows."""
        sql = runner.cached_sql(self.plan_key, name, build, self.db.runner.dialect)
        return self.db.runner.records(self.scope(), sql)

    def fetch_parts(self, name: str, parts: Sequence[str], build: Callable[[str], ir.Table],
                    order: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:
        """Several small queries of the same columns as one statement: ``build(part)`` for each of
        ``parts``, unioned, each row tagged with its part (each part keeps its own order and limit;
        the union is ordered by part, then ``order``). Returns the rows of each part, in order,
        without the tag (an empty list for a part without rows). One statement instead of several
        saves their planning, most of a small log's query time."""

        def union() -> ir.Table:
            tagged = [build(p).mutate(**{PART_COLUMN: ibis.literal(p)}) for p in parts]
            u = ibis.union(*tagged, distinct=False) if len(tagged) > 1 else tagged[0]
            return u.order_by([PART_COLUMN, *order]) if order else u

        out: dict[str, list[dict[str, Any]]] = {p: [] for p in parts}
        for r in self.fetch(name, union):
            out[r.pop(PART_COLUMN)].append(r)
        return out

    def query(self, expr: ir.Table) -> pa.Table:
        """Run an ad-hoc expression (a dashboard search, a test) in this scope; compiled each time."""
        return self.db.runner.run(self.scope(), runner.compile_sql(expr, self.db.runner.dialect))

    def rows(self, role: Role | str) -> int:
        """The rows of ``role`` under the filters (counted once per scope: several analyses ask)."""
        r = Role(role).value
        results = self.scope().results
        if f"rows:{r}" not in results:
            def build() -> ir.Table:
                t = self.events(r)
                return t.aggregate(n=t.count())
            results[f"rows:{r}"] = int(self.fetch(f"rows:{r}", build)[0]["n"])
        return results[f"rows:{r}"]

    def release(self) -> None:
        """Drop every temporary table and view made for this database's scopes."""
        self.db.runner.reset()

    # -- persistence of what the import learned ---------------------------------------------------
    def save_meta(self) -> None:
        db = self.db
        db.execute(f"CREATE OR REPLACE TABLE {META_COLUMNS_TABLE} (role VARCHAR, field VARCHAR)")
        pairs = [(role, name) for role, names in self.present.items() for name in sorted(names)]
        if pairs:  # one statement: twelve single-row inserts took 7.7 ms, this takes 1 ms
            db.execute(f"INSERT INTO {META_COLUMNS_TABLE} VALUES {', '.join(['(?, ?)'] * len(pairs))}",
                       [v for pair in pairs for v in pair])
        db.execute(f"CREATE OR REPLACE TABLE {META_INPUTS_TABLE} (inputs VARCHAR)")
        db.execute(f"INSERT INTO {META_INPUTS_TABLE} VALUES (?)", [json.dumps(self.inputs)])
        db.execute(f"DROP TABLE IF EXISTS {META_MULTI_TABLE}")
        if self.multi is not None:  # no table: not known (a database written before it was kept)
            db.execute(f"CREATE TABLE {META_MULTI_TABLE} (role VARCHAR, field VARCHAR)")
            pairs = [(role, name) for role, names in self.multi.items() for name in sorted(names)]
            if pairs:
                db.execute(f"INSERT INTO {META_MULTI_TABLE} VALUES {', '.join(['(?, ?)'] * len(pairs))}",
                           [v for pair in pairs for v in pair])

    @classmethod
    def load(cls, db: Database) -> Dataset:
        """Reopen a dataset from a database an import wrote (``--db PATH``)."""
        present: dict[str, set[str]] = {r.value: set() for r in Role}
        for role, name in db.fetchall(f"SELECT role, field FROM {META_COLUMNS_TABLE}"):
            present.setdefault(role, set()).add(name)
        row = db.fetchone(f"SELECT inputs FROM {META_INPUTS_TABLE}")
        inputs = json.loads(row[0]) if row else {}
        multi: dict[str, frozenset[str]] | None = None
        if db.fetchone(f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{META_MULTI_TABLE}'")[0]:
            found: dict[str, set[str]] = {r.value: set() for r in Role}
            for role, name in db.fetchall(f"SELECT role, field FROM {META_MULTI_TABLE}"):
                found.setdefault(role, set()).add(name)
            multi = {k: frozenset(v) for k, v in found.items()}
        return cls(db, {k: frozenset(v) for k, v in present.items()}, inputs, multi=multi)

    # -- building from records ----------------------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        browser: Iterable[Mapping[str, Any]] = (),
        server: Iterable[Mapping[str, Any]] = (),
        *,
        db: Database | None = None,
        columns: Mapping[str, Iterable[str]] | None = None,
    ) -> Dataset:
        """Canonical tables from dicts keyed by canonical names.

        User-data values may be a string or a list; ``event_time`` / ``sent_at`` are Unix seconds
        (``event_time_raw_unit`` defaults to ``s``); ``line`` defaults to the record's position + 2
        (as if under a CSV header). The columns "present" are the keys used by any record plus
        ``event_name``/``event_time``, unless ``columns`` names them per role.
        """
        db = db or Database()
        present: dict[str, frozenset[str]] = {}
        counts: dict[str, int] = {}
        for role, records in ((Role.BROWSER, list(browser)), (Role.SERVER, list(server))):
            write_records(db, role, records)
            counts[role.value] = len(records)
            if columns is not None and role.value in columns:
                present[role.value] = frozenset(columns[role.value])
            else:
                keys = {k for r in records for k in r if k in FIELDS_BY_NAME}
                present[role.value] = frozenset(keys | {"event_name", "event_time"})
        inputs = {
            role: {"files": [f"{role}.records"], "rows_read": n, "rows": n, "rejected_rows": 0,
                   "rejected_reasons": {}, "unknown_columns": []}
            for role, n in counts.items()
        }
        ds = cls(db, present, inputs, multi=multi_valued(db, present))
        ds.save_meta()
        return ds


def multi_valued(db: Database, present: Mapping[str, Iterable[str]],
                 known: Mapping[str, frozenset[str]] | None = None) -> dict[str, frozenset[str]]:
    """Per log, the list columns it carried that have a cell holding several values: one aggregate
    per log over the list lengths (no value is read), except for the logs in ``known`` (learned by
    the import's own scan of the table)."""
    lists = {name for name, typ in canonical_columns() if typ.endswith("[]")}
    out: dict[str, frozenset[str]] = {}
    for role in Role:
        if known is not None and role.value in known:
            out[role.value] = known[role.value]
            continue
        cols = sorted(lists & set(present.get(role.value, ())))
        if not cols:
            out[role.value] = frozenset()
            continue
        row = db.fetchone("SELECT " + ", ".join(f'coalesce(max(len("{c}")), 0) > 1' for c in cols)
                          + f' FROM "{role.table}"')
        out[role.value] = frozenset(c for c, many in zip(cols, row, strict=True) if many)
    return out


_IBIS_TYPES = {"VARCHAR": "string", "VARCHAR[]": "array<string>", "BIGINT": "int64",
               "INTEGER": "int32", "BOOLEAN": "boolean"}


@functools.lru_cache(maxsize=1)
def canonical_schema() -> tuple[tuple[str, str], ...]:
    """The canonical table's columns as ``(name, ibis type)``."""
    return tuple((name, _IBIS_TYPES[typ]) for name, typ in canonical_columns())


@functools.lru_cache(maxsize=256)
def _named(name: str, schema: tuple[tuple[str, str], ...]) -> ir.Table:
    return ibis.table(ibis.schema(dict(schema)), name=name)


def arrow_schema() -> pa.Schema:
    def arrow_type(typ: str) -> pa.DataType:
        return pa.list_(pa.string()) if typ == "VARCHAR[]" else getattr(pa, _ARROW_TYPES[typ])()
    return pa.schema([(name, arrow_type(typ)) for name, typ in canonical_columns()])


def _coerce(name: str, value: Any) -> Any:
    f = FIELDS_BY_NAME.get(name)
    if value is None:
        return None
    if f is not None and f.kind is Kind.LIST:
        if isinstance(value, (list, tuple)):
            return [None if v is None else str(v) for v in value]
        return [str(value)]
    if f is not None and f.kind is Kind.INT:
        if isinstance(value, dt.datetime):
            return int(value.timestamp())
        return int(value)
    if name in ("contents", "content_ids", "custom_data_extra", "extra") and not isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def write_records(db: Database, role: Role, records: list[Mapping[str, Any]]) -> None:
    """Create (or replace) the canonical table of ``role`` holding ``records``."""
    cols = canonical_columns()
    rows = []
    for i, rec in enumerate(records):
        unknown = set(rec) - {c for c, _ in cols if c != "row_id"}
        if unknown:
            raise ValueError(f"unknown canonical field(s) {sorted(unknown)} in record {i}")
        row = {name: _coerce(name, rec.get(name)) for name, _ in cols}
        row["row_id"] = i
        row["source_file"] = rec.get("source_file", f"{role.value}.records")
        row["file_index"] = int(rec.get("file_index", 0))
        row["line"] = int(rec.get("line", i + 2))
        if row["event_time"] is not None:
            row["event_time_raw"] = rec.get("event_time_raw", str(row["event_time"]))
            row["event_time_raw_unit"] = rec.get("event_time_raw_unit", "s")
            row["event_time_tz_missing"] = bool(rec.get("event_time_tz_missing", False))
        if row["sent_at"] is not None and rec.get("sent_at_raw") is None:
            row["sent_at_raw"] = str(row["sent_at"])
        rows.append(row)
    arrow = pa.Table.from_pylist(rows, schema=arrow_schema())
    with db.lock:
        db.con.register("_capi_records", arrow)
        try:
            db.con.execute(f"CREATE OR REPLACE TABLE {role.table} AS SELECT * FROM _capi_records")
        finally:
            db.con.unregister("_capi_records")
        db.tables_changed()
