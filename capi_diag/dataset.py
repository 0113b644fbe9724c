"""A Dataset: the two canonical event tables of one analysis, plus what the import learned.

Analyses receive a :class:`Dataset` and read ``ds.events("server")`` / ``ds.events("browser")``
(Ibis tables, filtered when the dashboard sets filters) and ``ds.has(role, field)`` (whether the
logs carried that column at all: a section whose inputs are absent is ``not_evaluated``).

:meth:`Dataset.from_records` builds the canonical tables from a few Python dicts. Tests use it to
build tiny logs exactly, and the Test Events sender uses it to validate payloads with the same
rules as the diagnostics. It is not an import path for logs (that is :mod:`capi_diag.ingest`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import ibis
import pyarrow as pa

from capi_diag.db import Database
from capi_diag.schema import FIELDS_BY_NAME, Kind, Role, canonical_columns

T = TypeVar("T")

META_COLUMNS_TABLE = "capi_columns"
META_INPUTS_TABLE = "capi_inputs"

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "VARCHAR[]": pa.list_(pa.string()),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
}


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
    db: Database
    present: dict[str, frozenset[str]]
    inputs: dict[str, Any] = field(default_factory=dict)
    filters: Filters = field(default_factory=Filters)
    _shared: dict[tuple[Filters, Hashable], Any] = field(default_factory=dict, repr=False, compare=False)

    def shared(self, key: Hashable, build: Callable[[], T]) -> T:
        """A measurement several analyses need, built once per dataset and filters and then reused
        (e.g. the per-row validity of every user_data value, which match_keys, emq and contract all
        read). Datasets made by :meth:`with_filters` share the store; the key includes the filters."""
        k = (self.filters, key)
        if k not in self._shared:
            self._shared[k] = build()
        return self._shared[k]

    def materialize(self, key: Hashable, build: Callable[[], ibis.Table]) -> ibis.Table:
        """:meth:`shared`, for an Ibis expression stored as a temporary table of this database, so
        that every reader scans the stored rows instead of recomputing them. Dropped by
        :meth:`release_shared` (and with the connection)."""
        def create() -> ibis.Table:
            name = f"_capi_shared_{uuid.uuid4().hex}"
            with self.db.lock:
                return self.db.ibis.create_table(name, build(), temp=True)
        return self.shared(key, create)

    def release_shared(self) -> None:
        """Drop the materialized shared measurements (call before the database closes)."""
        for value in self._shared.values():
            if isinstance(value, ibis.Table):
                name = value.get_name()
                if name.startswith("_capi_shared_"):
                    try:
                        self.db.execute(f'DROP TABLE IF EXISTS temp."{name}"')
                    except Exception:  # noqa: BLE001 - already gone with its connection
                        pass
        self._shared.clear()

    # -- access ---------------------------------------------------------------------------------
    def raw_events(self, role: Role | str) -> ibis.Table:
        return self.db.events(role)

    def events(self, role: Role | str) -> ibis.Table:
        """The canonical table of ``role`` with the dataset's filters applied."""
        t = self.db.events(role)
        f = self.filters
        preds = []
        if f.start is not None:
            preds.append(t.event_time >= f.start)
        if f.end is not None:
            preds.append(t.event_time < f.end)
        if f.event_names:
            preds.append(t.event_name.isin(list(f.event_names)))
        if f.pixel_ids and self.has(role, "pixel_id"):
            preds.append(t.pixel_id.isin(list(f.pixel_ids)))
        return t.filter(preds) if preds else t

    def has(self, role: Role | str, name: str) -> bool:
        """Whether the ``role`` log carried the canonical column ``name`` (in any file)."""
        return name in self.present.get(Role(role).value, frozenset())

    def with_filters(self, filters: Filters) -> Dataset:
        return replace(self, filters=filters)

    def rows(self, role: Role | str) -> int:
        return int(self.events(role).count().execute())

    # -- persistence of what the import learned ---------------------------------------------------
    def save_meta(self) -> None:
        db = self.db
        db.execute(f"CREATE OR REPLACE TABLE {META_COLUMNS_TABLE} (role VARCHAR, field VARCHAR)")
        for role, names in self.present.items():
            for name in sorted(names):
                db.execute(f"INSERT INTO {META_COLUMNS_TABLE} VALUES (?, ?)", [role, name])
        db.execute(f"CREATE OR REPLACE TABLE {META_INPUTS_TABLE} (inputs VARCHAR)")
        db.execute(f"INSERT INTO {META_INPUTS_TABLE} VALUES (?)", [json.dumps(self.inputs)])

    @classmethod
    def load(cls, db: Database) -> Dataset:
        """Reopen a dataset from a database an import wrote (``--db PATH``)."""
        present: dict[str, set[str]] = {r.value: set() for r in Role}
        for role, name in db.fetchall(f"SELECT role, field FROM {META_COLUMNS_TABLE}"):
            present.setdefault(role, set()).add(name)
        row = db.fetchone(f"SELECT inputs FROM {META_INPUTS_TABLE}")
        inputs = json.loads(row[0]) if row else {}
        return cls(db, {k: frozenset(v) for k, v in present.items()}, inputs)

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
        ds = cls(db, present, inputs)
        ds.save_meta()
        return ds


def arrow_schema() -> pa.Schema:
    return pa.schema([(name, _ARROW_TYPES[typ]) for name, typ in canonical_columns()])


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
        unknown = set(rec) - {c for c, _ in cols}
        if unknown:
            raise ValueError(f"unknown canonical field(s) {sorted(unknown)} in record {i}")
        row = {name: _coerce(name, rec.get(name)) for name, _ in cols}
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
