"""The one pipeline every front end calls: inputs -> imported dataset -> report.

``capi-diag report``, ``capi-diag meta-quality``, the dashboard and the Test Events validation all
go through here, so a log gives the same figures whichever front end read it: the same database
sizing and ``[database]`` limits, the same optional inputs (orders export, send log), the same
analyses and checklist.

* :class:`Inputs` says what to read (paths, uploaded bytes as :class:`~capi_diag.io.ingest.Source`,
  or table names on Spark); :meth:`Inputs.demo` is the bundled demo.
* :class:`Engine` says where to compute (DuckDB by default, in memory or in a ``--db`` file, with
  its memory limit and spill folder; or Spark).
* :func:`analyze` runs everything and returns the report dict; :func:`opened` yields the imported
  dataset for a front end that keeps it (the dashboard's filters, ``meta-quality``'s context) and
  :func:`report` analyses a dataset already imported; :func:`logs_context` is what Meta's figures are
  compared against besides the report (the logs' period and Pixel ids).

May import: every layer below the front ends (core, engine, io, diagnostics, verdict, report).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capi_diag.core import resources
from capi_diag.core.config import Config
from capi_diag.core.errors import UsageError
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.db import CONFIG_DEFAULTS, CONFIG_SECTION, Database, Limits
from capi_diag.io.ingest import Source, import_logs
from capi_diag.io.orders import import_extras
from capi_diag.report import build_report

if TYPE_CHECKING:  # imported where used: the Graph client (httpx) is not needed by a report
    from capi_diag.meta.quality import LogsContext

Input = str | os.PathLike[str] | Source
ImportProgress = Callable[[str, float], None]
"""``(message, fraction)`` while the logs are read."""
SectionProgress = Callable[[str, int, int], None]
"""``(section, index, count)`` before each analysis runs."""

ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class Inputs:
    """What one analysis reads: the two logs (several files each), and optionally the shop's orders
    export and the server's send log. On Spark a log may instead be a table (``browser_table``)."""

    browser: Sequence[Input] = ()
    server: Sequence[Input] = ()
    orders: Sequence[Input] = ()
    send_log: Sequence[Input] = ()
    browser_table: str | None = None
    server_table: str | None = None
    assume_tz: str = "UTC"
    """Time zone for ISO-8601 times without an offset."""

    @classmethod
    def demo(cls, *, orders: Sequence[Input] = (), send_log: Sequence[Input] = (), assume_tz: str = "UTC",
             extras: bool = True) -> Inputs:
        """The bundled demo logs, named by file name only (a report never shows where capi-diag is
        installed), with the demo's orders export and send log unless others are given or
        ``extras`` is false. Raises :class:`UsageError` when the demo files are missing."""
        paths = resources.demo_paths()
        if paths is None:
            raise UsageError(f"the demo logs ({', '.join(resources.DEMO_FILES.values())}) are not in "
                             f"{resources.demo_dir().name}/; reinstall capi-diag, or unset CAPI_DEMO_DIR.")
        found = resources.demo_extra_paths() if extras else {}

        def named(p: Path) -> list[Input]:
            return [Source(p.name, path=str(p))]

        return cls(browser=named(paths["browser"]), server=named(paths["server"]),
                   orders=list(orders) or (named(found["orders"]) if "orders" in found else []),
                   send_log=list(send_log) or (named(found["send_log"]) if "send_log" in found else []),
                   assume_tz=assume_tz)

    def files(self) -> list[Any]:
        """Every input file's path (uploaded bytes have none): what sizes the database."""
        return [getattr(x, "path", x) for x in (*self.browser, *self.server, *self.orders, *self.send_log)]


@dataclass(frozen=True)
class Engine:
    """Where the analysis runs. DuckDB: in memory (a database file beside large logs, removed on
    close) or in ``db_path``; ``memory_limit``/``temp_dir`` over the environment and the config's
    ``[database]`` table. Spark: ``spark_master`` (``SPARK_REMOTE`` for Spark Connect)."""

    name: str = "duckdb"
    db_path: str | os.PathLike[str] | None = None
    memory_limit: str | None = None
    temp_dir: str | os.PathLike[str] | None = None
    spark_master: str | None = None
    spark_conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise UsageError(f"unknown engine {self.name!r}: use one of {', '.join(ENGINES)}.")


def _open_duckdb(inputs: Inputs, config: Config, engine: Engine) -> Database:
    limits = Limits.resolve(memory_limit=engine.memory_limit, temp_dir=engine.temp_dir,
                            config=config.options(CONFIG_SECTION, CONFIG_DEFAULTS))
    return Database.for_inputs(inputs.files(), engine.db_path, limits=limits)


@contextmanager
def opened(inputs: Inputs, config: Config | None = None, engine: Engine | None = None, *,
           progress: ImportProgress | None = None) -> Iterator[Dataset]:
    """The imported dataset of ``inputs`` on ``engine``; its database is closed on exit."""
    ds, close = _load(inputs, config or Config(), engine or Engine(), progress)
    try:
        yield ds
    finally:
        close()


def load(inputs: Inputs, config: Config | None = None, engine: Engine | None = None, *,
         progress: ImportProgress | None = None) -> Dataset:
    """Import ``inputs`` into a new DuckDB database and return the dataset; the caller owns
    ``ds.db`` and closes it (the dashboard keeps one per browser session)."""
    engine = engine or Engine()
    if engine.name != "duckdb":
        raise UsageError("load() keeps a DuckDB database; use opened() or analyze() for --engine spark.")
    return _load(inputs, config or Config(), engine, progress)[0]


def _load(inputs: Inputs, config: Config, engine: Engine,
          progress: ImportProgress | None) -> tuple[Dataset, Callable[[], None]]:
    if engine.name == "spark":
        return _load_spark(inputs, engine)
    db = _open_duckdb(inputs, config, engine)
    try:
        ds = import_logs(db, browser=inputs.browser, server=inputs.server, assume_tz=inputs.assume_tz,
                         progress=progress)
        ds = import_extras(ds, orders=inputs.orders, send_log=inputs.send_log, assume_tz=inputs.assume_tz)
    except BaseException:
        db.close()
        raise
    return ds, db.close


def _load_spark(inputs: Inputs, engine: Engine) -> tuple[Dataset, Callable[[], None]]:
    from capi_diag.engine import spark as spark_engine
    from capi_diag.io import spark as spark_import

    if inputs.orders or inputs.send_log:
        raise UsageError("the orders export and the send log are read by the DuckDB engine only; run the "
                         "reconciliation without --engine spark (export the orders and sends of the period).")
    problem = spark_engine.missing_requirements()
    if problem:
        raise UsageError(problem)
    db = spark_engine.connect(engine.spark_master, conf=engine.spark_conf or None)
    try:
        ds = spark_import.import_logs(db, browser=inputs.browser, server=inputs.server,
                                      browser_table=inputs.browser_table, server_table=inputs.server_table,
                                      assume_tz=inputs.assume_tz)
    except BaseException:
        db.close(stop=True)
        raise
    return ds, lambda: db.close(stop=True)


def report(ds: Dataset, config: Config | None = None, *, progress: SectionProgress | None = None) -> dict[str, Any]:
    """Every analysis and the checklist over an imported dataset: the report dict."""
    return build_report(ds, config, progress=progress)


def analyze(inputs: Inputs, config: Config | None = None, engine: Engine | None = None, *,
            progress: SectionProgress | None = None) -> dict[str, Any]:
    """The whole pipeline: import ``inputs`` on ``engine``, analyse with ``config``, close; the report."""
    config = config or Config()
    with opened(inputs, config, engine) as ds:
        return report(ds, config, progress=progress)


def logs_context(ds: Dataset) -> LogsContext:
    """What Meta's figures are compared against besides the report (:func:`capi_diag.meta.quality.compare`):
    the period (first and last ``event_time`` over both logs, with the dataset's filters) and the Pixel
    ids of ``ds``; two small aggregate queries, for the causes (not a figure that is compared)."""
    import ibis

    from capi_diag.meta.quality import LogsContext

    parts = [ds.events(role).select("event_time") for role in ("browser", "server")]
    both = ibis.union(*parts)
    pixels: list[str] = []
    span = ds.fetch("quality.span", both.aggregate(lo=both.event_time.min(), hi=both.event_time.max()))[0]
    for role in ("browser", "server"):
        if ds.has(role, "pixel_id"):
            t = ds.events(role)
            found = ds.fetch(f"quality.pixels.{role}",
                             t.filter(t.pixel_id.notnull()).select("pixel_id").distinct().limit(50))
            pixels += [str(r["pixel_id"]) for r in found if str(r["pixel_id"]) not in pixels]
    lo, hi = (None if v is None else int(v) for v in (span["lo"], span["hi"]))
    files = {role: list(info.get("files", [])) for role, info in ds.inputs.items()}
    return LogsContext(lo, hi, tuple(sorted(pixels)), files)


__all__ = ["ENGINES", "Engine", "Inputs", "analyze", "load", "logs_context", "opened", "report"]
