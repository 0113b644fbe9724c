"""A browser session's data as plain Python: its database, dataset, config and analyses.

Nothing here imports Streamlit (a test imports this module with Streamlit absent): the dashboard
keeps one :class:`Workspace` per browser session in ``st.session_state`` (:mod:`capi_diag.ui.state`),
and a script or test can build and use one the same way. Imports and analyses go through the one
pipeline (:mod:`capi_diag.api`), so the dashboard's figures are the CLI's.

* the import and the analyses run once per upload; switching pages reads what is kept;
* a filter change runs the analyses once for the new filters (the import is not repeated) and
  switching back to an earlier filter reuses its result (the last :data:`KEEP_ANALYSES` are kept);
* uploads are passed to DuckDB as bytes: no temporary files;
* an import and its first analysis can run in a background thread (:class:`ImportJob`): the page
  that started it may be left, the result is kept.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ibis
import pandas as pd
import pyarrow as pa

from capi_diag import api
from capi_diag.api import Inputs, load
from capi_diag.core import fmt, labels, resources
from capi_diag.core.config import Config
from capi_diag.core.schema import ORDERS_TABLE, SENDS_TABLE, Role
from capi_diag.engine.dataset import Dataset, Filters
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source

KEEP_ANALYSES = 8
_GENERATIONS = itertools.count(1)

NO_FILTERS = Filters()

Progress = Callable[[str, float], None]


class Upload(Protocol):
    """What an uploaded file offers (Streamlit's ``UploadedFile``)."""

    name: str

    def getvalue(self) -> bytes: ...


def demo_dir() -> Path:
    return resources.demo_dir()


def demo_paths() -> dict[str, Path] | None:
    """The demo logs (the checkout's ``data/`` or the installed bundle's), or ``None`` when they are not there."""
    return resources.demo_paths()


def demo_extra_paths() -> dict[str, Path]:
    """The demo's orders export and send log, those that are there (by input name)."""
    return resources.demo_extra_paths()


@dataclass(frozen=True)
class FilterOptions:
    """What the sidebar filters can choose from, read once per dataset."""

    first_day: dt.date | None
    last_day: dt.date | None
    event_names: tuple[str, ...]
    pixel_ids: tuple[str, ...]


@dataclass
class Analysis:
    """The report for one set of filters, and page extras computed from it (kept, not recomputed)."""

    filters: Filters
    dataset: Dataset
    config: Config
    report: dict[str, Any]
    rows: dict[str, int]
    seconds: float
    extras: dict[str, Any] = field(default_factory=dict)

    def keep(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per analysis (e.g. a chart's query), then the kept value."""
        if key not in self.extras:
            with self.dataset.db.lock:
                self.extras[key] = compute()
        return self.extras[key]


@dataclass
class AnalysisJob:
    """One analysis running in a thread owned by the workspace: a page shows its progress, and a
    page left meanwhile does not lose it (the result is kept in ``Workspace.analyses``)."""

    filters: Filters
    message: str = "Analysing"
    fraction: float = 0.0
    result: Analysis | None = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, message: str, fraction: float) -> None:
        self.message, self.fraction = message, min(max(fraction, 0.0), 1.0)


@dataclass
class Workspace:
    """One browser session's data: database, dataset, config and computed analyses."""

    db: Database
    dataset: Dataset
    source: str  # "demo", "upload" or "records"
    config: Config = field(default_factory=Config)
    config_name: str | None = None
    import_seconds: float = 0.0
    options: FilterOptions | None = None
    analyses: OrderedDict[Filters, Analysis] = field(default_factory=OrderedDict)
    generation: int = field(default_factory=lambda: next(_GENERATIONS))
    """A number no other dataset of the process had: the sidebar filters are keyed by it."""
    jobs: dict[Filters, AnalysisJob] = field(default_factory=dict, repr=False)
    _jobs_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        weakref.finalize(self, close_quietly, self.db, self.dataset)
        if self.options is None:
            self.options = filter_options(self.dataset)

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"

    @property
    def files(self) -> dict[str, list[str]]:
        return {role: list(info.get("files", [])) for role, info in self.dataset.inputs.items()}

    def has_analysis(self, filters: Filters) -> bool:
        return filters in self.analyses

    @property
    def analysis_seconds(self) -> float:
        """How long the unfiltered analysis took (0 before it ran)."""
        an = self.analyses.get(NO_FILTERS)
        return an.seconds if an is not None else 0.0

    def analysis(self, filters: Filters | None = None, progress: Progress | None = None) -> Analysis:
        """The analysis for ``filters`` (none: unfiltered): kept if computed before, else run now."""
        filters = filters or NO_FILTERS
        if filters in self.analyses:
            self.analyses.move_to_end(filters)
            return self.analyses[filters]
        started = time.perf_counter()
        ds = self.dataset.with_filters(filters) if filters.active else self.dataset

        def step(section: str, i: int, n: int) -> None:
            if progress:
                progress(f"Analysing: {labels.SECTIONS.get(section, section)} ({i + 1} of {n})", i / max(n, 1))

        with self.db.lock:
            report = api.report(ds, self.config, progress=step)
            rows = {role: ds.rows(role) for role in ("browser", "server")}
        if progress:
            progress("Analysis finished", 1.0)
        result = Analysis(filters, ds, self.config, report, rows, time.perf_counter() - started)
        self.analyses[filters] = result
        while len(self.analyses) > KEEP_ANALYSES:
            self.analyses.popitem(last=False)
        return result

    def start_analysis(self, filters: Filters) -> AnalysisJob:
        """The analysis for ``filters`` in a background thread (the running one when it is already
        being computed): the page that asked may be left, the result is kept all the same."""
        with self._jobs_lock:
            job = self.jobs.get(filters)
            if job is not None:
                return job
            job = AnalysisJob(filters)
            self.jobs[filters] = job
        config = self.config

        def run() -> None:
            try:
                result = self.analysis(filters, progress=job.progress)
                if self.config is not config:  # a config applied meanwhile: this result is stale
                    self.analyses.pop(filters, None)
                job.result = result
            except BaseException as e:  # noqa: BLE001 - handed to the page that waits for it
                job.error = e
            finally:
                with self._jobs_lock:
                    self.jobs.pop(filters, None)
                job.finished.set()

        threading.Thread(target=run, name="capi-analysis", daemon=True).start()
        return job

    def with_config(self, config: Config, name: str | None) -> None:
        """Use ``config`` from now on; analyses computed with the old one are dropped."""
        self.config = config
        self.config_name = name
        self.analyses.clear()

    def close(self) -> None:
        self.analyses.clear()
        close_quietly(self.db, self.dataset)


def close_quietly(db: Database, dataset: Dataset | None = None) -> None:
    """Drop the dataset's materialized measurements, then close the database (their finalizers
    would otherwise run against a closed connection)."""
    if dataset is not None:
        dataset.release()
    try:
        db.close()
    except Exception:  # noqa: BLE001 - closing an already-closed connection is fine
        pass


def filter_options(ds: Dataset) -> FilterOptions:
    """Date span, event names and Pixel ids over both logs (unfiltered), for the sidebar."""
    parts = [ds.raw_events(role).select("event_time", "event_name") for role in ("browser", "server")]
    both = ibis.union(*parts)
    with ds.db.lock:
        span = ds.fetch_arrow("ui.span", lambda: both.aggregate(lo=both.event_time.min(),
                                                                   hi=both.event_time.max())).to_pandas().iloc[0]
        names = ds.fetch_arrow("ui.names", lambda: both.select("event_name").distinct().order_by("event_name")
                               .limit(500)).to_pandas()
        pixels: list[str] = []
        for role in ("browser", "server"):
            if ds.has(role, "pixel_id"):
                t = ds.raw_events(role)
                found = ds.fetch_arrow(f"ui.pixels.{role}", t.filter(t.pixel_id.notnull()).select("pixel_id")
                                       .distinct().limit(200)).to_pandas()
                pixels += [p for p in found["pixel_id"].tolist() if p not in pixels]
    return FilterOptions(_day(span["lo"]), _day(span["hi"]), tuple(str(n) for n in names["event_name"].tolist()),
                         tuple(sorted(pixels)))


def _day(seconds: Any) -> dt.date | None:
    if seconds is None or pd.isna(seconds):
        return None
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).date()


def filter_key(ws: Workspace, name: str, epoch: int = 0) -> str:
    """The widget key of sidebar filter ``name`` (``dates``, ``event_names``, ``pixel_ids``) for this
    dataset and this clearing of the filters: a new dataset or "Clear filters" means new widgets,
    which start at "all" (the browser cannot hand back a value chosen for other data)."""
    return f"filter_{name}_{ws.generation}_{epoch}"


def filters_from(options: FilterOptions | None, dates: Any, event_names: Sequence[str],
                 pixel_ids: Sequence[str]) -> Filters:
    """The :class:`Filters` for the sidebar's values.

    The date range is whole UTC days, the end day included. A range covering every day of the
    data, and a half-picked range (one date), filter nothing, so the default view is exactly the
    unfiltered report.
    """
    start = end = None
    if options and options.first_day and isinstance(dates, (tuple, list)) and len(dates) == 2:
        first, last = dates
        if first > options.first_day:
            start = _midnight(first)
        if last < options.last_day:
            end = _midnight(last + dt.timedelta(days=1))
    return Filters(start=start, end=end, event_names=tuple(sorted(event_names)),
                   pixel_ids=tuple(sorted(pixel_ids)))


def _midnight(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


# -- building workspaces (no session access) ----------------------------------------------------

def import_workspace(browser: Sequence[Upload | Source | str | Path], server: Sequence[Upload | Source | str | Path],
                     *, source: str = "upload", config: Config | None = None, config_name: str | None = None,
                     assume_tz: str = "UTC", progress: Progress | None = None,
                     orders: Sequence[Upload | Source | str | Path] = (),
                     send_log: Sequence[Upload | Source | str | Path] = (),
                     imported: Callable[[], None] | None = None) -> Workspace:
    """Import the files into a new database and run the unfiltered analysis once. ``imported`` is
    called between the two (the dashboard's import job lets the uploaded bytes go then).

    Raises :class:`~capi_diag.core.errors.CapiDiagError` (unusable file, invalid config); the new
    database is closed then, and the caller's current workspace is left as it was.
    """
    started = time.perf_counter()

    def imp(msg: str, frac: float) -> None:
        if progress:
            progress(msg, 0.6 * frac)

    config = config or Config()
    inputs = Inputs(browser=[source_of(f) for f in browser], server=[source_of(f) for f in server],
                    orders=[source_of(f) for f in orders], send_log=[source_of(f) for f in send_log],
                    assume_tz=assume_tz)
    ds = load(inputs, config, progress=imp)
    del inputs  # nothing after the import reads the files (an upload's bytes can be freed)
    if imported is not None:
        imported()
    try:
        ws = Workspace(ds.db, ds, source, config, config_name, time.perf_counter() - started)
        ws.analysis(NO_FILTERS, None if progress is None else lambda m, f: progress(m, 0.6 + 0.4 * f))
        return ws
    except BaseException:
        close_quietly(ds.db)
        raise


def records_workspace(ds: Dataset, *, config: Config | None = None) -> Workspace:
    """A workspace over a dataset built in memory (tests; an empty dataset)."""
    return Workspace(ds.db, ds, "records", config or Config())


def source_of(item: Upload | Source | str | Path) -> Source:
    if isinstance(item, (Source, str, Path)):
        return Source.of(item)
    return Source(name=item.name, data=item.getvalue())


@dataclass(frozen=True)
class DemoSnapshot:
    """The imported and analysed demo logs, as plain values (no connection): built once per process."""

    tables: dict[str, pa.Table]
    present: dict[str, frozenset[str]]
    inputs: dict[str, Any]
    report: dict[str, Any]
    rows: dict[str, int]
    import_seconds: float
    analysis_seconds: float
    options: FilterOptions


def demo_snapshot(browser: str, server: str, extras: tuple[tuple[str, str], ...] = ()) -> DemoSnapshot:
    """Import and analyse the demo logs (``extras``: the orders export and send log by input name)
    into plain values; each session then gets a database of its own filled from them."""
    # Named by file name: the import report and the pages never show where capi-diag is installed.
    named = {k: [Source(Path(p).name, path=p)] for k, p in extras}
    ws = import_workspace([Source(Path(browser).name, path=browser)], [Source(Path(server).name, path=server)],
                          source="demo", orders=named.get("orders", []), send_log=named.get("send_log", []))
    try:
        an = ws.analysis()
        with ws.db.lock:
            tables = {Role(role).table: ws.dataset.fetch_arrow(f"ui.copy.{role}", ws.dataset.raw_events(role))
                      for role in ("browser", "server")}
            tables[ORDERS_TABLE] = ws.dataset.fetch_arrow("ui.copy.orders", ws.dataset.orders())
            tables[SENDS_TABLE] = ws.dataset.fetch_arrow("ui.copy.sends", ws.dataset.sends())
        return DemoSnapshot(tables, dict(ws.dataset.present), ws.dataset.inputs, an.report, an.rows,
                            ws.import_seconds, an.seconds, ws.options or filter_options(ws.dataset))
    finally:
        ws.close()


def workspace_from_snapshot(snap: DemoSnapshot) -> Workspace:
    """A new workspace over a demo snapshot, in a new in-memory database (its analysis included)."""
    db = Database()
    try:
        with db.lock:
            for name, table in snap.tables.items():
                db.con.register("_capi_demo", table)
                try:
                    db.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _capi_demo")
                finally:
                    db.con.unregister("_capi_demo")
        ds = Dataset(db, dict(snap.present), copy.deepcopy(snap.inputs))
        ds.save_meta()
        ws = Workspace(db, ds, "demo", import_seconds=snap.import_seconds, options=snap.options)
        ws.analyses[NO_FILTERS] = Analysis(NO_FILTERS, ds, ws.config, copy.deepcopy(snap.report),
                                           dict(snap.rows), snap.analysis_seconds)
        return ws
    except BaseException:
        close_quietly(db)
        raise


# -- the import, in the background -----------------------------------------------------------------

@dataclass
class ImportJob:
    """One import and its first analysis, running in a thread of its own for one browser session.

    The thread only calls the core (:func:`import_workspace`) and writes this object's fields; the
    pages read them (a progress bar) and :func:`collect_import` hands the result to the session on
    its next run, whichever page that is. Leaving the page therefore never loses an import.
    """

    files: dict[str, list[str]]
    started: float = field(default_factory=time.perf_counter)
    message: str = "Starting the import"
    fraction: float = 0.0
    workspace: Workspace | None = None
    error_title: str | None = None
    error: str | None = None
    finished: float | None = None
    cancelled: bool = False
    collected: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)
    ended: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    """Set by :meth:`end`: a page waiting for the import wakes as soon as it ends (:meth:`wait`)."""

    @property
    def done(self) -> bool:
        return self.finished is not None

    def end(self) -> None:
        """The import thread's last step: the job is done (succeeded or failed)."""
        self.finished = time.perf_counter()
        self.ended.set()

    def wait(self, timeout: float) -> bool:
        """Wait until the job ends, at most ``timeout`` seconds; whether it has ended."""
        return self.ended.wait(timeout)

    @property
    def failed(self) -> bool:
        return self.done and self.error is not None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    def progress(self, message: str, fraction: float) -> None:
        self.message, self.fraction = message, min(max(fraction, 0.0), 1.0)

    def summary(self) -> str:
        """What the import did, for the page shown next: events per log and the real time taken."""
        ws = self.workspace
        if ws is None:
            return ""
        info = ws.dataset.inputs
        rows = {r: int(info.get(r, {}).get("rows") or 0) for r in ("browser", "server")}
        rejected = sum(int(info.get(r, {}).get("rejected_rows") or 0) for r in ("browser", "server"))
        msg = (f"Imported {rows['browser']:,} browser and {rows['server']:,} server events in "
               f"{fmt.duration(ws.import_seconds)} and analysed them in {fmt.duration(ws.analysis_seconds)} "
               f"({fmt.duration(self.elapsed)} in all).")
        if rejected:
            msg += (f" {fmt.counted(rejected, 'row')} {'was' if rejected == 1 else 'were'} rejected: see the "
                    "Import page for the reasons.")
        if not self.files.get("server"):
            msg += (" No server (CAPI) log was imported, so the checks of server events are not evaluated: "
                    "add it on the Import page.")
        if not self.files.get("browser"):
            msg += (" No browser (Pixel) log was imported, so pairing and skew are not evaluated: "
                    "add it on the Import page.")
        return msg

