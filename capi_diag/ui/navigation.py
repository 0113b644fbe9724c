"""The page list and the sidebar every page shares (data label, global filters, "Delete my data").

The sidebar is drawn from ``app.py`` before the page runs, so its widgets belong to the app, not to
one page: a filter set on the Dedup page still holds on the Timing page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from capi_diag.errors import CapiDiagError
from capi_diag.ui import state

PAGES_DIR = Path(__file__).resolve().parent / "pages"
APP_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    url_path: str

    @property
    def path(self) -> str:
        """The page script relative to ``app.py`` (what ``st.page_link`` and AppTest accept)."""
        return str((PAGES_DIR / self.file).relative_to(APP_ROOT))


PAGES: tuple[PageSpec, ...] = (
    PageSpec("checklist.py", "Checklist", ":material/checklist:", "checklist"),
    PageSpec("import_logs.py", "Import", ":material/upload_file:", "import"),
    PageSpec("dedup.py", "Dedup", ":material/join_inner:", "dedup"),
    PageSpec("timing.py", "Timing", ":material/schedule:", "timing"),
    PageSpec("match_keys.py", "Match keys & EMQ", ":material/key:", "match-keys"),
    PageSpec("consent_contract.py", "Consent & contract", ":material/gavel:", "consent-contract"),
    PageSpec("event_lookup.py", "Event lookup", ":material/search:", "event-lookup"),
    PageSpec("report_downloads.py", "Report", ":material/download:", "report"),
    PageSpec("test_events_page.py", "Test Events", ":material/send:", "test-events"),
    PageSpec("meta_view.py", "Meta's view", ":material/compare_arrows:", "meta-view"),
)
BY_URL = {p.url_path: p for p in PAGES}

SECTION_PAGE: dict[str, str] = {
    "dedup": "dedup", "timing": "timing", "match_keys": "match-keys", "emq": "match-keys",
    "consent": "consent-contract", "contract": "consent-contract", "journey": "consent-contract",
    "inputs": "import", "consent_contract": "consent-contract",
}
"""Which page explains each report section (checklist items link there)."""


def page_path(url_path: str) -> str:
    return BY_URL[url_path].path


def pages() -> list[st.Page]:
    return [st.Page(PAGES_DIR / p.file, title=p.title, icon=p.icon, url_path=p.url_path,
                    default=(i == 0)) for i, p in enumerate(PAGES)]


def sidebar() -> None:
    """Load this session's data (the demo on first visit) and draw the shared sidebar."""
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
        _data_label(ws)
        if ws is not None and ws.options is not None:
            _filters(ws.options)
        st.divider()
        st.button("Delete my data", key="delete_my_data", icon=":material/delete:", disabled=ws is None,
                  on_click=state.delete_my_data, width="stretch",
                  help="Closes this session's database and forgets its uploads and results.")
        st.caption("Your uploads stay in this browser session only: other sessions never see them, "
                   "and they are gone when you delete them or close the tab.")


def _data_label(ws: state.Workspace | None) -> None:
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
        names = files.get(role) or []
        st.caption(f"{role.capitalize()}: " + (", ".join(names) if names else "no file"))
    if ws.config_name:
        st.caption(f"Config: {ws.config_name}")


def _filters(options: state.FilterOptions) -> None:
    st.subheader("Filters")
    if options.first_day is not None:
        st.date_input("Event date (UTC)", value=(options.first_day, options.last_day),
                      min_value=options.first_day, max_value=options.last_day, key="filter_dates",
                      help="Whole UTC days by event_time; applies to every page.")
    st.multiselect("Event name", options.event_names, key="filter_event_names",
                   placeholder="All event names", help="Exact event_name values from both logs.")
    if options.pixel_ids:
        st.multiselect("Pixel", options.pixel_ids, key="filter_pixel_ids", placeholder="All Pixels")
