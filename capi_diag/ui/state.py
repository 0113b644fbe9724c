"""Per-browser-session state: each session's own database, dataset and analyses.

Streamlit's ``st.cache_*`` is shared by every session of the process, so nothing derived from a
session's uploads lives there. Instead each browser session keeps one :class:`Workspace` in
``st.session_state``: its own in-memory DuckDB :class:`~capi_diag.db.Database`, the imported
:class:`~capi_diag.dataset.Dataset`, the config, and the analyses already computed, keyed by the
filters they were computed for. So:

* the import and the analyses run once per upload; switching pages reads what is kept;
* a filter change runs the analyses once for the new filters (the import is not repeated) and
  switching back to an earlier filter reuses its result (the last :data:`KEEP_ANALYSES` are kept);
* uploads are passed to DuckDB as bytes: no temporary files;
* replacing the data (a new import, the demo, "Delete my data") closes the old database.

With no upload yet, a session opens on the bundled demo logs (``data/`` of the checkout or of the
installed package, see :mod:`capi_diag.resources`; ``CAPI_DEMO_DIR`` overrides the folder),
labelled "Demo data". After "Delete my data" the session stays empty until the analyst imports
files or reloads the demo.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ibis
import pandas as pd
import pyarrow as pa
import streamlit as st

from capi_diag import resources
from capi_diag.config import Config
from capi_diag.dataset import Dataset, Filters
from capi_diag.db import Database
from capi_diag.ingest import Source, import_logs
from capi_diag.report import build_report
from capi_diag.schema import Role

DEMO_FILES = resources.DEMO_FILES
KEEP_ANALYSES = 8

WORKSPACE_KEY = "capi_workspace"
EMPTY_KEY = "capi_session_emptied"
NOTICE_KEY = "capi_notice"
FILTER_KEYS = ("filter_dates", "filter_event_names", "filter_pixel_ids")

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

    def __post_init__(self) -> None:
        weakref.finalize(self, _close_quietly, self.db, self.dataset)
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
                progress(f"Analysing: {section}", i / max(n, 1))

        with self.db.lock:
            report = build_report(ds, self.config, progress=step)
            rows = {role: ds.rows(role) for role in ("browser", "server")}
        if progress:
            progress("Analysis finished", 1.0)
        result = Analysis(filters, ds, self.config, report, rows, time.perf_counter() - started)
        self.analyses[filters] = result
        while len(self.analyses) > KEEP_ANALYSES:
            self.analyses.popitem(last=False)
        return result

    def with_config(self, config: Config, name: str | None) -> None:
        """Use ``config`` from now on; analyses computed with the old one are dropped."""
        self.config = config
        self.config_name = name
        self.analyses.clear()

    def close(self) -> None:
        self.analyses.clear()
        _close_quietly(self.db, self.dataset)


def _close_quietly(db: Database, dataset: Dataset | None = None) -> None:
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
                     assume_tz: str = "UTC", progress: Progress | None = None) -> Workspace:
    """Import the files into a new database and run the unfiltered analysis once.

    Raises :class:`~capi_diag.errors.CapiDiagError` (unusable file, invalid config); the new
    database is closed then, and the caller's current workspace is left as it was.
    """
    db = Database()
    try:
        started = time.perf_counter()

        def imp(msg: str, frac: float) -> None:
            if progress:
                progress(msg, 0.6 * frac)

        ds = import_logs(db, browser=[_source(f) for f in browser], server=[_source(f) for f in server],
                         assume_tz=assume_tz, progress=imp)
        ws = Workspace(db, ds, source, config or Config(), config_name, time.perf_counter() - started)
        ws.analysis(NO_FILTERS, None if progress is None else lambda m, f: progress(m, 0.6 + 0.4 * f))
        return ws
    except BaseException:
        _close_quietly(db)
        raise


def records_workspace(ds: Dataset, *, config: Config | None = None) -> Workspace:
    """A workspace over a dataset built in memory (tests; an empty dataset)."""
    return Workspace(ds.db, ds, "records", config or Config())


def _source(item: Upload | Source | str | Path) -> Source:
    if isinstance(item, (Source, str, Path)):
        return Source.of(item)
    return Source(name=item.name, data=item.getvalue())


# -- the session ------------------------------------------------------------------------------

def workspace(*, progress: Progress | None = None) -> Workspace | None:
    """This session's workspace; on first use the demo data (when bundled), else ``None``."""
    ws = st.session_state.get(WORKSPACE_KEY)
    if ws is not None or st.session_state.get(EMPTY_KEY):
        return ws
    paths = demo_paths()
    if paths is None:
        return None
    ws = demo_workspace(paths, progress=progress)
    replace(ws)
    return ws


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


@st.cache_resource(show_spinner=False, max_entries=2)
def _demo_snapshot(browser: str, server: str, mtimes: tuple[float, float]) -> DemoSnapshot:
    """Import and analyse the bundled demo once per process (keyed by the files' mtimes).

    Only the public demo files are cached here, never anything a session uploaded; each session
    still gets its own database, filled from this snapshot.
    """
    # Named by file name: the import report and the pages never show where capi-diag is installed.
    ws = import_workspace([Source(Path(browser).name, path=browser)], [Source(Path(server).name, path=server)],
                          source="demo")
    try:
        an = ws.analysis()
        with ws.db.lock:
            tables = {role: ws.dataset.fetch_arrow(f"ui.copy.{role}", ws.dataset.raw_events(role))
                      for role in ("browser", "server")}
        return DemoSnapshot(tables, dict(ws.dataset.present), ws.dataset.inputs, an.report, an.rows,
                            ws.import_seconds, an.seconds, ws.options or filter_options(ws.dataset))
    finally:
        ws.close()


def demo_workspace(paths: Mapping[str, Path], *, progress: Progress | None = None) -> Workspace:
    """A new workspace over the demo logs, in a database of its own (filled from the snapshot)."""
    if progress:
        progress("importing and analysing the demo logs", 0.1)
    snap = _demo_snapshot(str(paths["browser"]), str(paths["server"]),
                          (paths["browser"].stat().st_mtime, paths["server"].stat().st_mtime))
    db = Database()
    try:
        with db.lock:
            for role, table in snap.tables.items():
                db.con.register("_capi_demo", table)
                try:
                    db.con.execute(f"CREATE OR REPLACE TABLE {Role(role).table} AS SELECT * FROM _capi_demo")
                finally:
                    db.con.unregister("_capi_demo")
        ds = Dataset(db, dict(snap.present), copy.deepcopy(snap.inputs))
        ds.save_meta()
        ws = Workspace(db, ds, "demo", import_seconds=snap.import_seconds, options=snap.options)
        ws.analyses[NO_FILTERS] = Analysis(NO_FILTERS, ds, ws.config, copy.deepcopy(snap.report),
                                           dict(snap.rows), snap.analysis_seconds)
        return ws
    except BaseException:
        _close_quietly(db)
        raise


def replace(ws: Workspace | None) -> None:
    """Make ``ws`` this session's data; the previous database is closed and the filters reset."""
    old = st.session_state.get(WORKSPACE_KEY)
    if old is not None and old is not ws:
        old.close()
    st.session_state[WORKSPACE_KEY] = ws
    st.session_state[EMPTY_KEY] = ws is None
    for key in FILTER_KEYS:
        st.session_state.pop(key, None)


def delete_my_data() -> None:
    """Empty the session: close its database, forget uploads, results and filters."""
    replace(None)
    notify("Your data was deleted from this session.")


def notify(message: str) -> None:
    """A one-time message for the next page shown (e.g. after an import)."""
    st.session_state[NOTICE_KEY] = message


def pop_notice() -> str | None:
    return st.session_state.pop(NOTICE_KEY, None)


def current_filters(ws: Workspace | None) -> Filters:
    """The filters the sidebar widgets hold now (none when the session has no data)."""
    if ws is None:
        return Filters()
    s: Mapping[str, Any] = st.session_state
    return filters_from(ws.options, s.get("filter_dates"), s.get("filter_event_names") or (),
                        s.get("filter_pixel_ids") or ())
