"""Per-browser-session state in Streamlit: each session's :class:`~capi_diag.ui.session.Workspace`.

Streamlit's ``st.cache_*`` is shared by every session of the process, so nothing derived from a
session's uploads lives there. Instead each browser session keeps one workspace (plain Python,
:mod:`capi_diag.ui.session`) in ``st.session_state``; this module is the glue: which workspace the
session has, replacing it, the sidebar filters' keys, and the import running in the background.

* replacing the data (a new import, the demo, "Delete my data") closes the old database and starts
  a new *generation*: the sidebar filters are keyed by it (:func:`filter_key`), so a new dataset
  always opens unfiltered (a widget keyed as before would get its old value back from the browser);
* the import's thread (:class:`~capi_diag.ui.session.ImportJob`, kept in ``st.session_state``) lets
  the analyst open other pages meanwhile; every page shows the progress, and the result replaces the
  session's data on the next run of any page (:func:`collect_import`).

With no upload yet, a session opens on the bundled demo logs (``data/`` of the checkout or of the
installed package, see :mod:`capi_diag.core.resources`; ``CAPI_DEMO_DIR`` overrides the folder),
labelled "Demo data". After "Delete my data" the session stays empty until the analyst imports
files or reloads the demo.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from capi_diag.core import resources
from capi_diag.core.config import Config
from capi_diag.core.errors import CapiDiagError
from capi_diag.engine.dataset import Filters
from capi_diag.ui import session
from capi_diag.ui.session import (
    ImportJob,
    Progress,
    Upload,
    Workspace,
    demo_extra_paths,
    demo_paths,
    filter_key,
    filters_from,
    source_of,
)

DEMO_FILES = resources.DEMO_FILES
WORKSPACE_KEY = "capi_workspace"
EMPTY_KEY = "capi_session_emptied"
NOTICE_KEY = "capi_notice"
JOB_KEY = "capi_import_job"
REQUEST_KEY = "capi_import_requested"
EPOCH_KEY = "capi_filter_epoch"
UPLOAD_GEN_KEY = "capi_upload_generation"
FILTER_NAMES = ("dates", "event_names", "pixel_ids")


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


@st.cache_resource(show_spinner=False, max_entries=2)
def _demo_snapshot(browser: str, server: str, mtimes: tuple[float, ...],
                   extras: tuple[tuple[str, str], ...] = ()) -> session.DemoSnapshot:
    """The demo's snapshot, built once per process (keyed by the files' mtimes): only the public demo
    files are cached here, never anything a session uploaded."""
    return session.demo_snapshot(browser, server, extras)


def demo_workspace(paths: Any, *, progress: Progress | None = None) -> Workspace:
    """A new workspace over the demo logs, in a database of its own (filled from the snapshot)."""
    if progress:
        progress("importing and analysing the demo logs", 0.1)
    extras = tuple(sorted((k, str(p)) for k, p in demo_extra_paths().items()))
    snap = _demo_snapshot(str(paths["browser"]), str(paths["server"]),
                          (paths["browser"].stat().st_mtime, paths["server"].stat().st_mtime,
                           *(Path(p).stat().st_mtime for _, p in extras)), extras)
    return session.workspace_from_snapshot(snap)


def replace(ws: Workspace | None) -> None:
    """Make ``ws`` this session's data; the previous database is closed. The filters start at "all":
    ``ws`` is a new generation, so the sidebar draws new filter widgets for it."""
    old = st.session_state.get(WORKSPACE_KEY)
    st.session_state[WORKSPACE_KEY] = ws
    if old is not None and old is not ws:
        old.close()
        del old
        # the shipped config turns off Streamlit's collection after every run (.streamlit/config.toml):
        # collect once here, where a whole dataset's objects have just become garbage
        gc.collect()
    st.session_state[EMPTY_KEY] = ws is None
    st.session_state[EPOCH_KEY] = 0


def delete_my_data() -> None:
    """Empty the session: close its database, forget uploads, results and filters (an import still
    running is abandoned: its result is closed when it arrives)."""
    cancel_import()
    replace(None)
    notify("Your data was deleted from this session.")


def load_demo() -> None:
    """Go back to the bundled demo data (after "Delete my data"), unfiltered."""
    cancel_import()
    st.session_state[EMPTY_KEY] = False
    st.session_state[EPOCH_KEY] = 0


def clear_filters() -> None:
    """Every sidebar filter back to "all" (new widgets: see :func:`filter_key`)."""
    st.session_state[EPOCH_KEY] = int(st.session_state.get(EPOCH_KEY, 0)) + 1


def notify(message: str) -> None:
    """A one-time message for the next page shown (e.g. after an import)."""
    st.session_state[NOTICE_KEY] = message


def pop_notice() -> str | None:
    return st.session_state.pop(NOTICE_KEY, None)


def _get(session: Any, key: str, default: Any = None) -> Any:
    try:
        return session[key] if key in session else default
    except KeyError:
        return default


def filter_epoch(session: Any = None) -> int:
    return int(_get(st.session_state if session is None else session, EPOCH_KEY, 0))


def current_filters(ws: Workspace | None, session: Any = None) -> Filters:
    """The filters the sidebar widgets hold now (none when the session has no data). ``session``:
    another session state to read (a test's), by default this run's."""
    if ws is None:
        return Filters()
    s = st.session_state if session is None else session
    epoch = filter_epoch(s)
    return filters_from(ws.options, _get(s, filter_key(ws, "dates", epoch)),
                        _get(s, filter_key(ws, "event_names", epoch)) or (),
                        _get(s, filter_key(ws, "pixel_ids", epoch)) or ())


def start_import(browser: Sequence[Upload], server: Sequence[Upload], *, config: Config,
                 config_name: str | None, assume_tz: str, orders: Sequence[Upload] = (),
                 send_log: Sequence[Upload] = ()) -> ImportJob:
    """Start importing the uploads in a background thread owned by this session (any import still
    running is abandoned). The uploads' bytes are read here, before the thread starts."""
    cancel_import()
    b, s = [source_of(f) for f in browser], [source_of(f) for f in server]
    o, sl = [source_of(f) for f in orders], [source_of(f) for f in send_log]
    release_uploads([*browser, *server, *orders, *send_log])
    job = ImportJob(files={"browser": [x.name for x in b], "server": [x.name for x in s]})
    if o:
        job.files["orders"] = [x.name for x in o]
    if sl:
        job.files["sends"] = [x.name for x in sl]

    def imported() -> None:  # the analysis does not need the uploaded bytes: let them go
        for sources in (b, s, o, sl):
            sources.clear()

    def run() -> None:
        try:
            ws = session.import_workspace(b, s, config=config, config_name=config_name, assume_tz=assume_tz,
                                          progress=job.progress, orders=o, send_log=sl, imported=imported)
        except CapiDiagError as e:
            job.error_title, job.error = e.title, str(e)
        except Exception as e:  # noqa: BLE001 - the analyst sees one clear line, never a traceback
            names = ", ".join([*job.files["browser"], *job.files["server"]])
            job.error_title = "Import failed"
            job.error = (f"{names}: {type(e).__name__}: {e}. Check that each file is a CSV, JSON Lines or "
                         "Parquet event log, or report this error with the file's first lines.")
        else:
            if job.cancelled:
                ws.close()
            else:
                job.workspace = ws
        finally:
            job.progress("Finished" if job.error is None else "Failed", 1.0)
            job.end()

    job.thread = threading.Thread(target=run, name="capi-import", daemon=True)
    st.session_state[JOB_KEY] = job
    job.thread.start()
    return job


def upload_key(name: str) -> str:
    """The key of the Import page's file widget ``name`` (``upload_browser``...): ``name`` itself until
    an import takes the files, then a new key each time (:func:`release_uploads`), so that the page
    shows empty widgets instead of files it no longer holds."""
    gen = int(st.session_state.get(UPLOAD_GEN_KEY, 0))
    return name if gen == 0 else f"{name}_{gen}"


def _same_upload(upload: Any, memo: dict[int, Any]) -> Any:
    return upload


def share_uploaded_files() -> None:
    """Make a deep copy of an uploaded file the file itself. Streamlit returns a deep copy of every
    widget's value on every script run, and a file uploader's value is ``BytesIO`` objects, whose copy
    writes every byte into a new buffer: the run that takes the 1M logs of ``make bench`` to import
    copied their 0.79 GB once more, held beside Streamlit's own copy for the whole import (the
    session's peak, 2.9 GB). The pages only read uploads with ``getvalue()`` (never ``read()`` or
    ``seek()``, which would move a position that every run now shares), so the file object itself
    is as good as a copy. Idempotent; called as the navigation is built, before any page runs."""
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    UploadedFile.__deepcopy__ = _same_upload  # type: ignore[method-assign]


def release_uploads(uploads: Sequence[Upload]) -> None:
    """Drop Streamlit's own copy of uploads that an import has just read, and give the file widgets new
    keys (:func:`upload_key`). Streamlit otherwise keeps every uploaded file for as long as its widget
    holds it: 0.7 GB for the 1M logs of ``make bench``, through the whole analysis. The import keeps the
    bytes it read until the files are imported (:class:`~capi_diag.ui.session.ImportJob`)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    manager = getattr(ctx, "uploaded_file_mgr", None)
    for upload in uploads:
        file_id = getattr(upload, "file_id", None)
        if manager is not None and file_id:
            manager.remove_file(session_id=ctx.session_id, file_id=file_id)
    st.session_state[UPLOAD_GEN_KEY] = int(st.session_state.get(UPLOAD_GEN_KEY, 0)) + 1


def request_import() -> None:
    """The "Import and analyse" button's callback: remember the click for the Import page.

    A button's value is True only in the run its click starts, and Streamlit abandons a run when
    another rerun request arrives before it ends (an upload finishing, another click): the run that
    replaces it sees the button unclicked. With several sessions at work a run takes long enough for
    that to happen, and the click would be lost without a word. Callbacks run before the script,
    so the request outlives an abandoned run; the page takes it (:func:`take_import_request`) in the
    first run that reaches the button.
    """
    st.session_state[REQUEST_KEY] = True


def take_import_request() -> bool:
    """Whether "Import and analyse" was clicked since the page last looked (and forget the click)."""
    return bool(st.session_state.pop(REQUEST_KEY, False))


def import_job() -> ImportJob | None:
    return st.session_state.get(JOB_KEY)


def import_running() -> bool:
    job = import_job()
    return job is not None and not job.done


def cancel_import() -> None:
    """Forget this session's import: a running one is abandoned (its database is closed when it
    ends), a finished one that was not collected is closed now."""
    st.session_state.pop(REQUEST_KEY, None)
    job = st.session_state.pop(JOB_KEY, None)
    if job is None:
        return
    job.cancelled = True
    if job.done and not job.collected and job.workspace is not None:
        job.workspace.close()


def collect_import() -> ImportJob | None:
    """On every run: when the session's import has just finished, make its data the session's (the
    filters start at "all") and leave a notice; returns the job when this run collected it."""
    job = import_job()
    if job is None or not job.done or job.collected:
        return None
    job.collected = True
    if job.workspace is not None:
        replace(job.workspace)
        notify(job.summary())
    return job
