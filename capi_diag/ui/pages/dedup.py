"""Dedup: will Meta merge each browser event with its server twin, and if not, why not."""

import streamlit as st

from capi_diag.ui import charts, layout, views

an = layout.page("Dedup pairing",
                 "Which browser and server events Meta will merge (same event_name + event_id within 48 h), "
                 "which it will count twice, and why.")
if an is None:
    st.stop()
dedup = layout.module("dedup")
result = an.report.get("dedup")
layout.section_intro(dedup)
if layout.not_evaluated(result, "Dedup pairing"):
    st.stop()

c1, c2, c3, c4 = st.columns(4)
c1.metric("Pairing rate", views.pct(result.get("pairing_rate")), help="paired / all keys")
c2.metric("Browser coverage", views.pct(result.get("browser_coverage")),
          help="Share of browser keys that have a server twin (Meta's 'event coverage', from the logs).")
c3.metric("Server coverage", views.pct(result.get("server_coverage")),
          help="Share of server keys that have a browser twin.")
c4.metric("Keys", f"{int(result.get('keys') or 0):,}", help="Distinct (event_name, event_id) over both logs.")

st.plotly_chart(charts.pairing_by_event(views.dedup_by_event(result)), key="dedup_by_event")

st.subheader("Why events are not paired")
reasons = views.dedup_reasons(result)
st.dataframe(reasons.drop(columns=["key"]), hide_index=True, key="dedup_reasons")
layout.examples(result, key="dedup_examples",
                only=("outside_window", "browser_only", "server_only", "duplicate_server_rows",
                      "duplicate_browser_rows", "reused_event_id"))

by_hour = an.keep("dedup_by_hour", lambda: an.dataset.using(an.config).fetch_arrow(
    "ui.pairing_by_hour", dedup.pairing_by_hour(an.dataset, an.config)).to_pandas())
st.plotly_chart(charts.pairing_over_time(views.pairing_over_time(by_hour)), key="dedup_over_time")

st.subheader("Every number, with its fix")
layout.explanations(dedup, result, key="dedup_explain")
