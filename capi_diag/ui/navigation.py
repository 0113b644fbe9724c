"""The page list, the sidebar every page shares (data label, global filters, a running import's
progress, "Delete my data") and the filter banner.

The sidebar and the banner are drawn from ``app.py`` before the page runs, so their widgets belong
to the app, not to one page: a filter set on the Dedup page still holds on the Timing page, and
while one is active every page says so above its title.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from capi_diag.core import fmt, resources
from capi_diag.core.errors import CapiDiagError
from capi_diag.report import describe_filters, md_text
from capi_diag.ui import session, state

PAGES_DIR = Path(__file__).resolve().parent / "pages"
IMPORT_POLL_S = 0.5
"""How often the run that follows a running import refreshes its progress."""
APP_ROOT = resources.path(resources.APP).parent
"""The folder of the ``app.py`` Streamlit runs: the checkout, or the installed bundle (``capi_diag/_bundle``)."""


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    url_path: str

    @property
    def path(self) -> str:
        """The page script relative to ``app.py`` (what ``st.page_link`` and AppTest accept).

        ``capi_diag/ui/pages/x.py`` in a checkout; ``../ui/pages/x.py`` from the installed bundle.
        """
        return Path(os.path.relpath(PAGES_DIR / self.file, APP_ROOT)).as_posix()


PAGES: tuple[PageSpec, ...] = (
    PageSpec("checklist.py", "Checklist", ":material/checklist:", "checklist"),
    PageSpec("import_logs.py", "Import", ":material/upload_file:", "import"),
    PageSpec("dedup.py", "Dedup", ":material/join_inner:", "dedup"),
    PageSpec("timing.py", "Timing", ":material/schedule:", "timing"),
    PageSpec("match_keys.py", "Match keys & EMQ", ":material/key:", "match-keys"),
    PageSpec("consent_contract.py", "Consent & contract", ":material/gavel:", "consent-contract"),
    PageSpec("orders_delivery.py", "Orders & delivery", ":material/receipt_long:", "orders-delivery"),
    PageSpec("event_lookup.py", "Event lookup", ":material/search:", "event-lookup"),
    PageSpec("report_downloads.py", "Report", ":material/download:", "report"),
    PageSpec("test_events_page.py", "Test Events", ":material/send:", "test-events"),
    PageSpec("meta_view.py", "Meta's view", ":material/compare_arrows:", "meta-view"),
    PageSpec("after_launch.py", "After launch", ":material/monitoring:", "after-launch"),
)
BY_URL = {p.url_path: p for p in PAGES}

SECTION_PAGE: dict[str, str] = {
    "dedup": "dedup", "timing": "timing", "match_keys": "match-keys", "emq": "match-keys",
    "consent": "consent-contract", "contract": "consent-contract", "journey": "consent-contract",
    "inputs": "import", "consent_contract": "consent-contract",
    "reconciliation": "orders-delivery", "delivery": "orders-delivery", "orders_delivery": "orders-delivery",
}
"""Which page explains each report section (checklist items link there)."""


def page_path(url_path: str) -> str:
    return BY_URL[url_path].path


def pages() -> list[st.Page]:
    state.share_uploaded_files()
    return [st.Page(PAGES_DIR / p.file, title=p.title, icon=p.icon, url_path=p.url_path,
                    default=(i == 0)) for i, p in enumerate(PAGES)]


def sidebar() -> DeltaGenerator:
    """Collect a finished import, load this session's data (the demo on first visit) and draw the
    shared sidebar; returns the place of the running import's progress (see :func:`run_page`)."""
    # A finished import becomes the session's data on whichever page is open; the Import page then
    # shows what was imported and links to the checklist. No page is switched from the server: a rerun
    # the browser sent just before such a switch comes back as a run of the old page and blanks the new one.
    state.collect_import()
    bar = st.empty()
    try:
        ws = state.workspace(progress=lambda msg, frac: bar.progress(min(max(frac, 0.0), 1.0),
                                                                     text=f"Demo data: {msg}"))
    except CapiDiagError as e:
        state.replace(None)
        st.error(f"{e.title}: the demo data could not be loaded. {e}")
        ws = None
    bar.empty()
    with st.sidebar:
        progress = st.empty()  # the running import's progress (follow_import), first in the sidebar
        job = state.import_job()
        if job is not None and not job.done:
            draw_progress(progress, job)
        _data_label(ws)
        if ws is not None and ws.options is not None:
            _filters(ws)
        st.divider()
        st.button("Delete my data", key="delete_my_data", icon=":material/delete:",
                  disabled=ws is None and not state.import_running(),
                  on_click=state.delete_my_data, width="stretch",
                  help="Closes this session's database and forgets its uploads and results.")
        st.caption("Your uploads stay in this browser session only: other sessions never see them, "
                   "and they are gone when you delete them or close the tab.")
    return progress


def filter_banner() -> None:
    """One prominent banner on every page while a sidebar filter is active: what is filtered, and
    a button back to the whole data."""
    ws = st.session_state.get(state.WORKSPACE_KEY)
    filters = state.current_filters(ws)
    if not filters.active:
        return
    with st.container(key="filter_banner"):
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.warning(f"**Filtered view: {describe_filters(filters)}.** Every figure on this page counts "
                     "only these events; the downloads record the filters.", icon=":material/filter_alt:")
        button.button("Clear filters", key="clear_filters", on_click=state.clear_filters, type="primary",
                      icon=":material/filter_alt_off:", width="stretch")


class PageEnd(Exception):
    """Raised by a page that has drawn all it has (its empty state, a missing input): the page ends
    there, and the run goes on to follow a running import (:func:`run_page`)."""


def end_page() -> NoReturn:
    """End the page here. Unlike ``st.stop()``, which leaves the whole run stopped (every later
    Streamlit call stops it again), the run still follows this session's running import."""
    raise PageEnd


def run_page(page: Any, progress: DeltaGenerator) -> None:
    """Run the page (``st.navigation``'s choice), then follow this session's running import (see
    :func:`follow_import`), also after a page that ended early (:func:`end_page`, e.g. the empty
    state). After ``st.stop()`` nothing more can be drawn in the run, so none is followed then."""
    try:
        page.run()
    except PageEnd:
        pass
    follow_import(progress)


def follow_import(progress: DeltaGenerator) -> None:
    """While this session's import runs, keep this run going after the page is drawn and refresh
    the progress at the top of the sidebar every IMPORT_POLL_S; as soon as the import ends (the wait
    wakes then, not at the next refresh: half a refresh earlier on average), rerun the app so that
    the page that is open shows the new data.

    The run itself waits, so the browser never has to ask: no timer of the page's sends a rerun
    that can arrive after the page changed. (A progress fragment with ``run_every`` would: a refresh
    sent just before a page switch comes back as a run of the old page and blanks the new one, and
    under load with twenty sessions one in twenty is left showing "Importing" after its import has been
    shown in the sidebar.) Any click still interrupts the wait at once: each refresh of the progress is
    a point where Streamlit takes the newer request, and the page then run waits in turn.
    """
    job = state.import_job()
    if job is None or job.collected:
        return
    while not job.done:
        draw_progress(progress, job)
        job.wait(IMPORT_POLL_S)  # wakes at once when the import ends, not at the next refresh
    progress.empty()
    st.rerun()


def draw_progress(progress: DeltaGenerator, job: session.ImportJob) -> None:
    names = md_text(", ".join([*job.files["browser"], *job.files["server"]]))  # file names, taken literally
    text = f"{job.message} ({fmt.duration(round(job.elapsed))} so far)"
    with progress.container():
        st.caption(f"Importing {names}")
        st.progress(job.fraction, text=f"Importing {names}: {text}")


def _data_label(ws: session.Workspace | None) -> None:
    if ws is None:
        st.markdown("**No data loaded.**")
        st.page_link(page_path("import"), label="Upload your logs", icon=":material/upload_file:")
        return
    if ws.is_demo:
        st.markdown(":orange-background[**Demo data**] bundled sample logs")
        st.page_link(page_path("import"), label="Upload your own logs", icon=":material/upload_file:")
        return
    files = ws.files
    st.markdown(":blue-background[**Your data**]")
    for role in ("browser", "server"):
        names = [Path(n).name for n in files.get(role) or []]
        st.caption(f"{role.capitalize()}: " + (md_text(", ".join(names)) if names else "no file"))
    if ws.config_name:
        st.caption(f"Config: {md_text(Path(ws.config_name).name)}")


def _filters(ws: session.Workspace) -> None:
    """The filters of this dataset, keyed by its generation (a new dataset starts unfiltered)."""
    options, epoch = ws.options, state.filter_epoch()
    assert options is not None
    st.subheader("Filters")
    if options.first_day is not None:
        st.date_input("Event date (UTC)", value=(options.first_day, options.last_day),
                      min_value=options.first_day, max_value=options.last_day,
                      key=session.filter_key(ws, "dates", epoch),
                      help="Whole UTC days by event_time; applies to every page.")
    st.multiselect("Event name", options.event_names, key=session.filter_key(ws, "event_names", epoch),
                   placeholder="All event names", help="Exact event_name values from both logs.")
    if options.pixel_ids:
        st.multiselect("Pixel", options.pixel_ids, key=session.filter_key(ws, "pixel_ids", epoch),
                       placeholder="All Pixels")
