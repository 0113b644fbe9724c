"""The only module that opens engines: a DuckDB connection and its Ibis handle.

DuckDB is configured never to download anything: extension auto-install and auto-load are off,
and only what the wheel ships statically (json, parquet, icu) is used. The analyses never
touch the connection: they build expressions over tables named by :mod:`capi_diag.engine.runner`, whose
:class:`~capi_diag.engine.runner.Runner` (one per connection, ``Database.runner``) executes them.

Limits: DuckDB's ``memory_limit`` caps the memory it uses and ``temp_directory`` is where it spills
beyond it. Each is taken from, in order: the command-line flag (``--memory-limit``, ``--temp-dir``),
the environment (``CAPI_DIAG_MEMORY_LIMIT``, ``CAPI_DIAG_TEMP_DIR``), the ``[database]`` table of the
``--config`` TOML (``memory_limit``, ``temp_directory``), then the defaults of
:meth:`Database.for_inputs` (the report and the dashboard): 1GB in memory, or for inputs over 1 GiB a
database file with 2GB, each spilling to a private temporary folder removed on close. A
``Database`` opened directly has DuckDB's own defaults (80% of RAM, ``.tmp``). A query that needs
more than the limit and cannot spill stops with one :class:`~capi_diag.core.errors.ResourceLimitError`
naming the limit and what to do, never a crash.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from capi_diag.core.errors import ConfigError, ResourceLimitError
from capi_diag.engine.runner import STATS, Runner

T = TypeVar("T")
LARGE_INPUT_BYTES = 1 << 30
LARGE_MEMORY_LIMIT = "2GB"
DEFAULT_MEMORY_LIMIT = "1GB"
"""The ``memory_limit`` of a database :meth:`Database.for_inputs` keeps in memory when none is set:
DuckDB's own default (80% of RAM) let a 1M-event report grow to 4 GB; at 1GB it peaks at about
1.3 GB (spilling the rest to a private folder) for about a quarter more time (docs/performance.md).
A statement that runs out of memory under this default (not under a limit the user set) lifts it
once and runs again (:meth:`Database.lift_soft_limit`): a file of unusual shape, such as JSON Lines
with 5,000 keys, needs more than 1GB to read."""
MEMORY_LIMIT_ENV = "CAPI_DIAG_MEMORY_LIMIT"
TEMP_DIR_ENV = "CAPI_DIAG_TEMP_DIR"
CONFIG_SECTION = "database"
CONFIG_DEFAULTS: dict[str, str] = {"memory_limit": "", "temp_directory": ""}
"""The ``[database]`` table of the ``--config`` TOML ("" = not set)."""
_SETTINGS = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET TimeZone = 'UTC'",
    "SET enable_progress_bar = false",
)


@dataclass(frozen=True)
class Limits:
    """DuckDB's ``memory_limit`` (a size such as ``512MB``) and spill folder; ``None`` = not set."""

    memory_limit: str | None = None
    temp_dir: str | None = None

    @classmethod
    def resolve(cls, *, memory_limit: str | None = None, temp_dir: str | os.PathLike[str] | None = None,
                config: Mapping[str, str] | None = None) -> Limits:
        """The flag's value, else the environment's, else the config table's (``[database]``)."""
        cfg = config or {}
        mem = memory_limit or os.environ.get(MEMORY_LIMIT_ENV) or cfg.get("memory_limit") or None
        tmp = temp_dir or os.environ.get(TEMP_DIR_ENV) or cfg.get("temp_directory") or None
        return cls(str(mem).strip() if mem else None, str(tmp) if tmp else None)


class _SharedMemoryFile(io.BytesIO):
    """An fsspec in-memory file over a ``bytes`` object, never copied: a ``BytesIO`` made from bytes
    shares them until it is written to, and this one never is (DuckDB only reads it). fsspec's own
    ``MemoryFile`` copies the bytes when asked its size (``getbuffer``), so the size is kept here."""

    def __init__(self, fs: Any, path: str, data: bytes) -> None:
        super().__init__(data)
        self.fs, self.path, self._nbytes = fs, path, len(data)
        self.created = self.modified = datetime.now(tz=timezone.utc)

    @property
    def size(self) -> int:
        return self._nbytes

    def __enter__(self) -> _SharedMemoryFile:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:  # fsspec's memory files stay open: the filesystem reopens the same object
        pass


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
        limits = Limits.resolve(memory_limit=memory_limit, temp_dir=temp_dir)
        try:
            self._apply(limits)
        except ConfigError:
            self.con.close()
            raise
        self.limits = limits
        self._ibis: Any = None
        # One connection serves one session; Streamlit reruns may overlap, so serialize use.
        self.lock = threading.RLock()
        self.runner = Runner(self)
        self._owned_dir: Path | None = None
        self.soft_limit = False
        """The memory limit is :data:`DEFAULT_MEMORY_LIMIT`, chosen by :meth:`for_inputs` rather than by
        the user: a statement that runs out of memory under it lifts it once (:meth:`lift_soft_limit`)."""
        self.pii_key = secrets.token_hex(32)
        """The random key of this database's PII fingerprints, in memory only (see :mod:`capi_diag.engine.pii`)."""
        self._memory_fs: Any = None

    @property
    def memory_fs(self) -> Any:
        """An fsspec in-memory filesystem registered with this connection, made on first use: uploads
        and transcoded text are read from it without temporary files. Its store is this database's own
        (fsspec's default is one store shared by the whole process, so every session's uploads)."""
        if self._memory_fs is None:
            import fsspec

            self._memory_fs = fsspec.filesystem("memory", skip_instance_cache=True, global_store=False)
            self.con.register_filesystem(self._memory_fs)
        return self._memory_fs

    def add_memory_file(self, key: str, data: bytes) -> None:
        """Put ``data`` in :attr:`memory_fs` at ``key`` without copying it: the file reads the bytes
        object itself (an upload is then held once, not twice, while DuckDB reads it). ``key`` is an
        absolute path (``/folder/name``), the form fsspec's store uses."""
        if not key.startswith("/"):
            raise ValueError(f"memory file key must be an absolute path: {key!r}")
        fs = self.memory_fs
        fs.store[key] = _SharedMemoryFile(fs, key, data)

    def _apply(self, limits: Limits) -> None:
        if limits.memory_limit:
            try:
                self.con.execute("SET memory_limit = ?", [limits.memory_limit])
            except duckdb.Error:
                raise ConfigError(f"memory limit {limits.memory_limit!r} is not a size DuckDB understands; "
                                  "use a number with a unit, such as 512MB or 4GB (--memory-limit, "
                                  f"{MEMORY_LIMIT_ENV}).") from None
        if limits.temp_dir:
            try:
                Path(limits.temp_dir).mkdir(parents=True, exist_ok=True)
                probe = Path(limits.temp_dir) / f".capi-diag-probe-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise ConfigError(f"temp directory {limits.temp_dir}: cannot be written ({e.strerror}); "
                                  f"choose a writable folder with free space (--temp-dir, {TEMP_DIR_ENV}).") from None
            self.con.execute("SET temp_directory = ?", [str(limits.temp_dir)])

    def limit_error(self, error: BaseException) -> ResourceLimitError:
        """One clear error for DuckDB running out of memory (or of spill space)."""
        limit = self.fetchone("SELECT current_setting('memory_limit')")[0]
        spill = self.fetchone("SELECT current_setting('temp_directory')")[0] or "none"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return ResourceLimitError(
            f"the import or report needed more memory than DuckDB's memory_limit ({limit}) and could not "
            f"spill to the temp directory ({spill}): {first[:200]}. Raise --memory-limit "
            f"({MEMORY_LIMIT_ENV}), or point --temp-dir ({TEMP_DIR_ENV}) at a folder with more free space.")

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

    def lift_soft_limit(self) -> bool:
        """Under the default limit only (never one the user set): give DuckDB its own default (80 %
        of RAM) for the rest of this database's life and say so (True), so that the statement that ran
        out of memory can run again. The default keeps ordinary reports small; a file of unusual shape
        (thousands of JSON keys) must not fail because of it."""
        if not self.soft_limit:
            return False
        self.soft_limit = False
        self.con.execute("RESET memory_limit")
        return True

    def retrying(self, run: Callable[[], T]) -> T:
        """``run()``, once more after :meth:`lift_soft_limit` if it ran out of memory under the
        default limit (a failed statement changed nothing: each runs in its own transaction)."""
        try:
            return run()
        except duckdb.OutOfMemoryException:
            if not self.lift_soft_limit():
                raise
            return run()

    def execute(self, sql: str, params: list | tuple | None = None) -> duckdb.DuckDBPyConnection:
        """The one execute path for raw SQL (import and bookkeeping only; analyses use Ibis)."""
        with self.lock:
            return self.retrying(lambda: self.con.execute(sql, params or []))

    def fetchall(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        with self.lock:
            return self.retrying(lambda: self.con.execute(sql, params or []).fetchall())

    def fetchone(self, sql: str, params: list | tuple | None = None) -> tuple | None:
        """The first row; the rest of the result is consumed (DuckDB 2 refuses new work on a
        connection whose last result was left unfinished)."""
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    @property
    def private_dir(self) -> Path | None:
        """The private temporary folder this database owns (its spill files; removed on close), or
        None when it has none (a database made directly, not by :meth:`for_inputs`)."""
        return self._owned_dir

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
                   *, large_bytes: int | None = None, limits: Limits | None = None) -> Database:
        """A database sized for ``inputs``: in memory for ordinary logs; for logs over ``large_bytes``
        (``CAPI_DIAG_LARGE_INPUT_BYTES``, default 1 GiB) a database file in a private temporary folder
        (removed on close), DuckDB's ``memory_limit`` (``CAPI_DIAG_MEMORY_LIMIT``, default 2GB) and
        that folder for spilling, so that logs larger than memory spill instead of failing. Ordinary
        logs get :data:`DEFAULT_MEMORY_LIMIT` and a private spill folder the same way. ``limits``
        (from :meth:`Limits.resolve`) override both, whatever the size of the inputs."""
        limits = limits or Limits.resolve()
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
            if limits.memory_limit and limits.temp_dir:
                return cls(path, memory_limit=limits.memory_limit, temp_dir=limits.temp_dir)
            # the default limit spills to a private folder (never a `.tmp` in the working directory)
            return cls._owning(path, limits, DEFAULT_MEMORY_LIMIT)
        STATS.database = "file"
        return cls._owning(path, limits, LARGE_MEMORY_LIMIT, file=True)

    @classmethod
    def _owning(cls, path: str | os.PathLike[str] | None, limits: Limits, default_limit: str, *,
                file: bool = False) -> Database:
        """A database whose spill folder (and, with ``file``, whose database file when ``path`` is
        None) lives in a private temporary folder (under ``limits.temp_dir`` when set) removed on
        close; ``memory_limit`` is ``limits``' or ``default_limit``."""
        if limits.temp_dir:
            try:
                Path(limits.temp_dir).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"temp directory {limits.temp_dir}: cannot be created ({e.strerror}); "
                                  f"choose a writable folder (--temp-dir, {TEMP_DIR_ENV}).") from None
        work = Path(tempfile.mkdtemp(prefix="capi-diag-", dir=limits.temp_dir))
        try:
            db_path = path if path is not None or not file else work / "capi.duckdb"
            db = cls(db_path, memory_limit=limits.memory_limit or default_limit, temp_dir=work / "spill")
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        db._owned_dir = work
        db.soft_limit = not limits.memory_limit and default_limit == DEFAULT_MEMORY_LIMIT
        return db

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
