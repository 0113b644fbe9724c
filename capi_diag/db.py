"""The only module that opens engines: a DuckDB connection and its Ibis handle.

DuckDB is configured never to download anything: extension auto-install and auto-load are off,
and only what the wheel ships statically (json, parquet, icu) is used. The analyses never
touch the connection: they build expressions over tables named by :mod:`capi_diag.engine`, whose
:class:`~capi_diag.engine.Runner` (one per connection, ``Database.runner``) executes them.

Large inputs: ``memory_limit`` (or ``CAPI_DIAG_MEMORY_LIMIT``) caps DuckDB's memory and
``temp_dir`` (or ``CAPI_DIAG_TEMP_DIR``) is where it spills beyond it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from capi_diag.engine import STATS, Runner

LARGE_INPUT_BYTES = 1 << 30
LARGE_MEMORY_LIMIT = "2GB"
_SETTINGS = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET TimeZone = 'UTC'",
    "SET enable_progress_bar = false",
)


class Database:
    """A DuckDB database (in memory by default) with an Ibis backend over the same connection."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, threads: int | None = None,
                 memory_limit: str | None = None, temp_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = str(path) if path is not None else ":memory:"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(self.path)
        for stmt in _SETTINGS:
            self.con.execute(stmt)
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit or os.environ.get("CAPI_DIAG_MEMORY_LIMIT"):
            self.con.execute("SET memory_limit = ?", [memory_limit or os.environ["CAPI_DIAG_MEMORY_LIMIT"]])
        spill = temp_dir or os.environ.get("CAPI_DIAG_TEMP_DIR")
        if spill:
            self.con.execute("SET temp_directory = ?", [str(spill)])
        self._ibis: Any = None
        # One connection serves one session; Streamlit reruns may overlap, so serialize use.
        self.lock = threading.RLock()
        self.runner = Runner(self)
        self._owned_dir: Path | None = None

    @property
    def ibis(self):
        """The Ibis backend over this connection (made on first use: the report path needs none)."""
        if self._ibis is None:
            import ibis

            self._ibis = ibis.duckdb.from_connection(self.con)
        return self._ibis

    def tables_changed(self) -> None:
        """The canonical tables were rewritten: drop every measure and view made from the old rows."""
        self.runner.reset()

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

    def close(self) -> None:
        with self.lock:
            self.runner.close()
            self.con.close()
            if self._owned_dir is not None:
                shutil.rmtree(self._owned_dir, ignore_errors=True)
                self._owned_dir = None

    @classmethod
    def for_inputs(cls, inputs: Sequence[str | os.PathLike[str]], path: str | os.PathLike[str] | None = None,
                   *, large_bytes: int | None = None) -> Database:
        """A database sized for ``inputs``: in memory for ordinary logs; for logs over ``large_bytes``
        (``CAPI_DIAG_LARGE_INPUT_BYTES``, default 1 GiB) a database file in a private temporary folder
        (removed on close), DuckDB's ``memory_limit`` (``CAPI_DIAG_MEMORY_LIMIT``, default 2GB) and
        that folder for spilling, so that logs larger than memory spill instead of failing."""
        limit = large_bytes if large_bytes is not None else int(os.environ.get(
            "CAPI_DIAG_LARGE_INPUT_BYTES", LARGE_INPUT_BYTES))
        total = 0
        for p in inputs:
            try:
                total += os.path.getsize(p)
            except (OSError, TypeError):
                pass
        if total <= limit:
            STATS.database = "memory" if path is None else "file"
            return cls(path)
        work = Path(tempfile.mkdtemp(prefix="capi-diag-"))
        db = cls(path if path is not None else work / "capi.duckdb",
                 memory_limit=os.environ.get("CAPI_DIAG_MEMORY_LIMIT", LARGE_MEMORY_LIMIT),
                 temp_dir=work / "spill")
        db._owned_dir = work
        STATS.database = "file"
        return db

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
