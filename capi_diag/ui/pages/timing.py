"""Timing: clock skew between the logs, delivery delay, milliseconds, stale and future events."""

import streamlit as st

from capi_diag.core import fmt
from capi_diag.ui import charts, layout, queries, views

an = layout.page("Timing",
                 "How far apart the browser and server clocks are for the same event, how late the server "
                 "delivers, and which rows Meta would reject for their event_time.")
if an is None:
    layout.end_page()
timing = layout.module("timing")
result = an.report.get("timing")
layout.section_intro("timing", an.config)
if layout.not_evaluated(result, "Timing"):
    layout.end_page()
opts = timing.options(an.config)
words = {"stale": fmt.duration(opts["stale_s"]), "future": fmt.duration(opts["future_s"]),
         "skew": fmt.duration(result.get("skew_threshold_s", opts["skew_threshold_s"]))}

figures = views.timing_figures(result, timing.DELAY_OK_S)
for row in (figures[:3], figures[3:]):  # skew, then delivery: full labels, never cut off
    for col, (name, value, help_text) in zip(st.columns(len(row)), row, strict=True):
        col.metric(name, value, help=help_text)

st.plotly_chart(charts.skew_histogram(views.skew_bins(result), result.get("skew_threshold_s")), key="timing_skew")
with st.spinner("Measuring delivery delays..."):
    delays = an.keep("timing_delay_bins", lambda: queries.delay_bins(an.dataset, an.config))
st.plotly_chart(charts.delay_histogram(delays), key="timing_delay")

st.subheader("Rows and keys Meta would reject or distrust")
layout.table(views.timing_counts(result, words), key="timing_counts")
layout.examples(result, key="timing_examples")

st.subheader("Every number, with its fix")
layout.explanations(timing, result, key="timing_explain", config=an.config)
