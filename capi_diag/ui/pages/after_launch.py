"""After launch: Meta's own figures over time from the monitor's history (``capi-diag monitor``), the deploys
the analyst marks, the open and cleared alerts; and what changed before and after a deploy (two
uploaded reports, or this session's data split at a time)."""

import datetime as dt
import json
import os

import streamlit as st

from capi_diag.core import fmt
from capi_diag.core.errors import CapiDiagError
from capi_diag.engine.dataset import Filters
from capi_diag.monitor import compare
from capi_diag.monitor.history import History, default_path
from capi_diag.ui import after_launch, layout, state

an = layout.page("After launch",
                 "The 48 hours after launch: Meta's own figures as the monitor recorded them, the deploys you mark, "
                 "the alerts, and what changed before and after a deploy.")

# -- the monitor's history ---------------------------------------------------------------------------------
st.header("Meta's figures over time")
path = st.text_input("Monitor history file", value=os.environ.get("CAPI_MONITOR_DB") or str(default_path()),
                     key="al_db", help="The --db of 'capi-diag monitor' (a DuckDB file on this machine).")
history = None
if not os.path.isfile(path):
    st.info(f"No monitor history at `{path}` yet. Start one with `capi-diag monitor --pixel-id ID` (or every hour "
            "from cron with `--once`); its figures appear here.", icon=":material/monitoring:")
else:
    try:
        history = History(path)
        pixels = history.pixels()
    except CapiDiagError as e:
        st.error(f"**{e.title}.** {e}", icon=":material/error:")
        history, pixels = None, []
    if history is not None and not pixels:
        st.info("The history holds no snapshot yet.", icon=":material/monitoring:")
        history = None

if history is not None:
    left, right = st.columns(2)
    pixel = left.selectbox("Pixel", pixels, key="al_pixel")
    events = history.events(pixel)
    event = right.selectbox("Event", events, key="al_event")
    deploys = history.deploys(pixel)
    n = history.snapshot_count(pixel)
    st.caption(f"{fmt.counted(n, 'snapshot')} of Pixel {pixel}; hourly counts are Meta's complete hours, "
               "quality figures are Meta's as read at each snapshot.")
    st.plotly_chart(after_launch.counts_chart(history, pixel, event, deploys), key="al_counts")
    st.plotly_chart(after_launch.quality_chart(history, pixel, event, deploys, emq=True), key="al_emq")
    st.plotly_chart(after_launch.quality_chart(history, pixel, event, deploys, emq=False), key="al_coverage")

    with st.form("al_deploy_form", clear_on_submit=True):
        st.subheader("Mark a deploy")
        c1, c2, c3 = st.columns([1, 1, 2])
        day = c1.date_input("Day (UTC)", key="al_deploy_day")
        at_time = c2.time_input("Time (UTC)", key="al_deploy_time", step=dt.timedelta(minutes=15))
        label = c3.text_input("What was deployed", key="al_deploy_label", placeholder="plugin 3.5.8")
        if st.form_submit_button("Add the deploy mark", icon=":material/flag:"):
            moment = dt.datetime.combine(day, at_time, tzinfo=dt.UTC).timestamp()
            history.add_deploy(pixel, moment, label or "")
            st.rerun()
    if deploys:
        st.caption("Deploys: " + "; ".join(f"{fmt.timestamp(d['at'])} {d['label']}".strip() for d in deploys))

    st.subheader("Alerts")
    rows = history.alerts(pixel)
    open_rows = [a for a in rows if a["cleared_at"] is None]
    cleared_rows = [a for a in rows if a["cleared_at"] is not None]
    m1, m2 = st.columns(2)
    m1.metric("Open alerts", fmt.count(len(open_rows)))
    m2.metric("Cleared alerts", fmt.count(len(cleared_rows)))
    if open_rows:
        layout.table(after_launch.alerts_table(open_rows, cleared=False), key="al_open")
    else:
        st.success("No alert open.", icon=":material/check_circle:")
    if cleared_rows:
        with st.expander(f"Cleared alerts ({len(cleared_rows)})"):
            layout.table(after_launch.alerts_table(cleared_rows, cleared=True), key="al_cleared")

# -- before and after ------------------------------------------------------------------------------------
st.header("Before and after a deploy")
mode = st.radio("Compare", ["Two reports", "This session's data split at a time"], key="al_mode", horizontal=True)
doc = None
if mode == "Two reports":
    c1, c2 = st.columns(2)
    before_file = c1.file_uploader("Report before (JSON)", type=["json"], key="al_before")
    after_file = c2.file_uploader("Report after (JSON)", type=["json"], key="al_after")
    if before_file is not None and after_file is not None:
        try:
            before, after = (json.loads(f.getvalue()) for f in (before_file, after_file))
            if not all(isinstance(r, dict) and "checklist" in r for r in (before, after)):
                raise ValueError("not a capi-diag report")
            doc = compare.changes(before, after, compare.tolerances(an.config if an else None))
        except (ValueError, CapiDiagError) as e:
            st.error(f"Both files must be reports written by 'capi-diag report --format json' ({e}).",
                     icon=":material/error:")
    else:
        st.caption("Upload the JSON report of the logs before the deploy and the one after it.")
else:
    ws = st.session_state.get(state.WORKSPACE_KEY)
    options = ws.options if ws is not None else None
    if an is None or options is None or options.first_day is None:
        st.caption("Needs this session's data with event times: upload logs on the Import page.")
    else:
        c1, c2 = st.columns(2)
        day = c1.date_input("Deploy day (UTC)", value=options.first_day + (options.last_day - options.first_day) / 2,
                            min_value=options.first_day, max_value=options.last_day, key="al_split_day")
        at_time = c2.time_input("Deploy time (UTC)", value=dt.time(12, 0), key="al_split_time",
                                step=dt.timedelta(minutes=15))
        if st.button("Compare before and after", key="al_split", type="primary", icon=":material/compare_arrows:"):
            split = int(dt.datetime.combine(day, at_time, tzinfo=dt.UTC).timestamp())
            current = state.current_filters(ws)
            halves = [Filters(start=s, end=e, event_names=current.event_names, pixel_ids=current.pixel_ids)
                      for s, e in ((None, split), (split, None))]
            with st.spinner("Analysing both halves..."):
                reports = [ws.analysis(f).report for f in halves]
            st.session_state["al_split_doc"] = (split, compare.changes(*reports, compare.tolerances(an.config)))
        kept = st.session_state.get("al_split_doc")
        if kept is not None:
            st.caption(f"Split at {fmt.timestamp(kept[0])}: before is every event earlier, after every event from "
                       "then on.")
            doc = kept[1]

if doc is not None:
    m1, m2, m3 = st.columns(3)
    m1.metric("Worse beyond tolerance", fmt.count(doc["worse"]))
    m2.metric("Changed", fmt.count(len(doc["changes"])))
    m3.metric("Unchanged", fmt.count(doc["unchanged"]))
    tol = doc["tolerances"]
    st.caption(f"Tolerances: shares {fmt.number(tol['share_pp'])} point(s), EMQ {fmt.number(tol['emq_points'])}, "
               f"skew {fmt.number(tol['skew_s'])} s ([compare] in the config). Worse changes come first.")
    if doc["changes"]:
        layout.table(after_launch.comparison_table(doc), key="al_changes")
    else:
        st.success("No figure changed.", icon=":material/check_circle:")
