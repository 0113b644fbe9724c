"""Dedup: will Meta merge each browser event with its server twin, and if not, why not."""

import streamlit as st

from capi_diag.core import fmt
from capi_diag.ui import charts, layout, views

an = layout.page("Dedup pairing",
                 "Which browser and server events Meta will merge (same event name and event ID, close enough in "
                 "time), which it will count twice, and why.")
if an is None:
    layout.end_page()
dedup = layout.module("dedup")
result = an.report.get("dedup")
layout.section_intro("dedup", an.config)
if layout.not_evaluated(result, "Dedup pairing"):
    layout.end_page()
words = views.dedup_words(result)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Pairing rate", fmt.share(result.get("pairing_rate")),
          help=f"Paired dedup keys over all dedup keys (paired: in both logs, at most {words['window']} apart).")
c2.metric("Browser coverage", fmt.share(result.get("browser_coverage")),
          help="Share of the browser's dedup keys that have a server twin (Meta's 'event coverage', from the logs).")
c3.metric("Server coverage", fmt.share(result.get("server_coverage")),
          help="Share of the server's dedup keys that have a browser twin.")
c4.metric("Dedup keys", fmt.count(result.get("keys") or 0),
          help="Distinct event name + event ID pairs over both logs (per Pixel when both logs carry pixel_id).")

st.plotly_chart(charts.pairing_by_event(views.dedup_by_event(result), words["window"]), key="dedup_by_event")

st.subheader("Why events are not paired")
st.caption("Some reasons count dedup keys, others rows of one log: the \"Counted in\" column says which.")
reasons = views.dedup_reasons(result)
layout.table(reasons.drop(columns=["key"]), key="dedup_reasons")
layout.examples(result, key="dedup_examples",
                only=("outside_window", "browser_only", "server_only", "duplicate_server_rows",
                      "duplicate_browser_rows", "reused_event_id"))

with st.spinner("Counting dedup keys per hour..."):
    by_hour = an.keep("dedup_by_hour", lambda: an.dataset.using(an.config).fetch_arrow(
        "ui.pairing_by_hour", dedup.pairing_by_hour(an.dataset, an.config)).to_pandas())
st.plotly_chart(charts.pairing_over_time(views.pairing_over_time(by_hour)), key="dedup_over_time")

st.subheader("Every number, with its fix")
layout.explanations(dedup, result, key="dedup_explain", config=an.config)
