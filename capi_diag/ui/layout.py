"""Pieces every page shares: the page frame (title, purpose, data label, the one analysis call, the
empty state), status chips, a section's "what and why" text, its explanations and example rows, all
in the analyst's words (:mod:`capi_diag.core.labels`) and one number format (:mod:`capi_diag.core.fmt`)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import streamlit as st

from capi_diag import report
from capi_diag.core import labels
from capi_diag.core.config import Config
from capi_diag.core.errors import CapiDiagError
from capi_diag.report import guide
from capi_diag.ui import session, state, views
from capi_diag.ui.navigation import end_page as end_page  # the pages end through layout
from capi_diag.ui.navigation import page_path

STATUS_COLORS: dict[str, str] = {
    "pass": "#009E73", "warn": "#E69F00", "fail": "#D55E00", "not_evaluated": "#8C8C8C", "error": "#CC79A7",
}
"""Okabe-Ito status colours (colour-blind safe); the status is always written out as well."""
STATUS_TEXT_COLORS = {"pass": "#FFFFFF", "warn": "#000000", "fail": "#FFFFFF", "not_evaluated": "#FFFFFF",
                      "error": "#000000"}
STATUS_LABELS = {s: labels.STATUSES[s] for s in STATUS_COLORS}


def status_chip(status: str) -> str:
    """An HTML chip: the status in words on its colour (never colour alone)."""
    bg = STATUS_COLORS.get(status, "#8C8C8C")
    fg = STATUS_TEXT_COLORS.get(status, "#FFFFFF")
    label = STATUS_LABELS.get(status, status.upper())
    return (f'<span class="capi-status capi-status-{html.escape(status)}" style="background:{bg};color:{fg};'
            f'padding:0.15rem 0.5rem;border-radius:0.3rem;font-weight:600;font-size:0.8rem;'
            f'white-space:nowrap">{html.escape(label)}</span>')


def verdict_block(status: str, text: str) -> str:
    """The checklist's verdict as one large line on its status colour (the words carry the status)."""
    bg = STATUS_COLORS.get(status, "#8C8C8C")
    fg = STATUS_TEXT_COLORS.get(status, "#FFFFFF")
    return (f'<div class="capi-verdict capi-verdict-{html.escape(status)}" style="background:{bg};color:{fg};'
            f'padding:0.7rem 1rem;border-radius:0.5rem;font-size:1.6rem;font-weight:700;margin:0.2rem 0 0.4rem">'
            f'{html.escape(text)}</div>')


def table(df: Any, *, key: str, **kwargs: Any) -> None:
    """``st.dataframe`` with thousands separators in every whole-number column."""
    config = dict(kwargs.pop("column_config", None) or {})
    for col in getattr(df, "columns", []):
        if col not in config and str(df[col].dtype) in ("int64", "Int64", "int32"):
            config[col] = st.column_config.NumberColumn(format="%,d")
    st.dataframe(df, hide_index=kwargs.pop("hide_index", True), key=key, column_config=config, **kwargs)


def page(title: str, purpose: str) -> session.Analysis | None:
    """Title and purpose, then this session's analysis for the current filters (computed once and
    kept), or the explicit empty state and ``None`` when the session has no data."""
    st.title(title)
    st.caption(purpose)
    notice = state.pop_notice()
    if notice:
        st.success(notice, icon=":material/check_circle:")
    ws = st.session_state.get(state.WORKSPACE_KEY)
    if ws is None:
        empty_state()
        return None
    if ws.is_demo:
        st.info("**Demo data**: bundled sample logs with known defects. "
                "Upload your own browser and server logs on the Import page.", icon=":material/science:")
    filters = state.current_filters(ws)
    try:
        an = _analysis(ws, filters)
    except CapiDiagError as e:
        st.error(f"**{e.title}.** {e}", icon=":material/error:")
        return None
    if an.rows["browser"] == 0 and an.rows["server"] == 0:
        st.warning("No events to analyse: the logs are empty" + (" or the filters exclude every event."
                                                                 if filters.active else "."),
                   icon=":material/filter_alt_off:")
    return an


def _analysis(ws: session.Workspace, filters: Any) -> session.Analysis:
    """The kept analysis for ``filters``, or the one computed now in the background with its
    progress shown: leaving the page meanwhile does not lose it (it is kept when it finishes)."""
    if ws.has_analysis(filters):
        return ws.analysis(filters)
    job = ws.start_analysis(filters)
    suffix = " (filtered view)" if filters.active else ""
    bar = st.progress(0.0, text=f"Analysing{suffix}...")
    while not job.finished.wait(0.2):
        bar.progress(job.fraction, text=f"{job.message}{suffix}")
    bar.empty()
    if job.error is not None:
        raise job.error
    assert job.result is not None
    return job.result


def empty_state() -> None:
    """What a page shows when the session has no data."""
    st.info("No data in this session. Upload a browser (Pixel) log and a server (CAPI) log to see the "
            "checklist and the pages that explain it.", icon=":material/upload_file:")
    c1, c2 = st.columns([1, 1])
    with c1:
        st.page_link(page_path("import"), label="Upload your logs", icon=":material/upload_file:")
    with c2:
        if session.demo_paths() is not None:
            st.button("Load the demo data", key="load_demo", on_click=_load_demo, icon=":material/science:")


def _load_demo() -> None:
    state.load_demo()


def section_intro(section: str, config: Config | None = None) -> None:
    """What the section measures, why it matters and the usual fix (:mod:`capi_diag.report.guide`), with
    the thresholds in force."""
    text = guide.about(section, config)
    if not text:
        return
    with st.expander("What this measures, why it matters, and the usual fix"):
        st.markdown(text)


def explanations(module: ModuleType | None, result: Mapping[str, Any] | None, *, key: str,
                 config: Config | None = None) -> None:
    """Every number of a section with its sentence and fix (the module's ``explain``)."""
    if module is None or result is None:
        st.info("This analysis is not available in this build.", icon=":material/hourglass:")
        return
    df = views.explanations(report.explain_entries(module, result, config))
    if df.empty:
        return
    table(df, width="stretch", key=key, column_config={"Fix": st.column_config.TextColumn(width="large"),
                                                        "What it means": st.column_config.TextColumn(width="large")})


def examples(result: Mapping[str, Any] | None, *, key: str, only: tuple[str, ...] | None = None) -> None:
    """Example rows per finding (PII masked), one expander per non-empty category."""
    shown = 0
    for name, df in views.example_tables(result, only=only).items():
        shown += 1
        with st.expander(report.example_title(name, len(df))):
            st.dataframe(df, hide_index=True, width="stretch", key=f"{key}_{name}")
    if shown == 0:
        st.caption("No example rows: nothing to show for these findings.")


def not_evaluated(result: Mapping[str, Any] | None, what: str) -> bool:
    """Say so and return ``True`` when a section could not be evaluated on this data."""
    if result is None:
        st.info(f"{what}: not available in this build.", icon=":material/hourglass:")
        return True
    if result.get("status") == "error":
        st.error(f"{what}: this analysis failed inside capi-diag ({result.get('reason')}). The other pages "
                 "still show their figures; please report it (a bug in capi-diag, not in your logs).",
                 icon=":material/bug_report:")
        return True
    if result.get("status") == "not_evaluated":
        reason = result.get("reason") or "its inputs are missing from the logs."
        st.info(f"{what}: not evaluated. {reason}", icon=":material/help:")
        return True
    return False


def module(section: str) -> ModuleType:
    """The analysis module of ``section``."""
    return views.diagnostic_module(section)
