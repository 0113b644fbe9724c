"""The only module that opens engines: a DuckDB connection and its Ibis handle.

DuckDB is configured never to download anything: extension auto-install and auto-load are off,
and only what the wheel ships statically (json, parquet, icu) is used. The analyses read the
canonical tables through :meth:`Database.table`, an Ibis expression, so the same analysis code can
run on another Ibis backend later.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import ibis

from capi_diag.schema import Role

_SETTINGS = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET TimeZone = 'UTC'",
    "SET enable_progress_bar = false",
)


class Database:
    """A DuckDB database (in memory by default) with an Ibis backend over the same connection."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, threads: int | None = None) -> None:
        self.path = str(path) if path is not None else ":memory:"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(self.path)
        for stmt in _SETTINGS:
            self.con.execute(stmt)
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.ibis = ibis.duckdb.from_connection(self.con)
        # One connection serves one session; Streamlit reruns may overlap, so serialize use.
        self.lock = threading.RLock()

    def execute(self, sql: str, params: list | tuple | None = None) -> duckdb.DuckDBPyConnection:
        """The one execute path for raw SQL (import and bookkeeping only; analyses use Ibis)."""
        with self.lock:
            return self.con.execute(sql, params or [])

    def fetchall(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        with self.lock:
            return self.con.execute(sql, params or []).fetchall()

    def fetchone(self, sql: str, params: list | tuple | None = None) -> tuple | None:
        """The first row; the rest of the result is consumed (DuckDB 2 refuses new work on a
        connection whose last result was left unfinished)."""
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def has_table(self, name: str) -> bool:
        row = self.fetchone("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])
        return bool(row and row[0])

    def table(self, name: str) -> ibis.Table:
        return self.ibis.table(name)

    def events(self, role: Role | str) -> ibis.Table:
        """The canonical events table of one role as an Ibis table."""
        return self.table(Role(role).table)

    def close(self) -> None:
        with self.lock:
            self.con.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
