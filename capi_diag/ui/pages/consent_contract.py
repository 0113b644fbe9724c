"""Consent & contract: events forwarded without consent, and payload fields that break Meta's contract."""

import streamlit as st

from capi_diag.core import fmt
from capi_diag.ui import charts, layout, views

an = layout.page("Consent & contract",
                 "Server events sent without the consent their region requires, payload fields Meta rejects "
                 "or cannot use, and the funnel steps each log covers.")
if an is None:
    layout.end_page()
consent, contract, journey = layout.module("consent"), layout.module("contract"), layout.module("journey")

st.header("Consent")
result = an.report.get("consent")
layout.section_intro("consent", an.config)
if not layout.not_evaluated(result, "Consent"):
    c1, c2, c3 = st.columns(3)
    c1.metric("Forwarded without consent", fmt.count(result["forwarded_without_consent"]),
              help="Server rows sent although a consent purpose their region requires was denied.")
    c2.metric("Consent unknown", fmt.count(result["consent_unknown"]),
              help="Server rows whose required consent purposes were missing.")
    c3.metric("Server rows", fmt.count(result["server_rows"]))
    st.plotly_chart(charts.consent_by_region(views.consent_regions(result)), key="consent_regions")
    st.subheader("Per purpose")
    layout.table(views.consent_purposes(result), key="consent_purposes")
    layout.examples(result, key="consent_examples")
    layout.explanations(consent, result, key="consent_explain", config=an.config)

st.header("Payload contract")
result = an.report.get("contract")
layout.section_intro("contract", an.config)
if not layout.not_evaluated(result, "Payload contract"):
    counts = views.contract_counts(result)
    st.plotly_chart(charts.counts_bar(counts[(counts["rows"] > 0) & (counts["unit"] == "server row")],
                                      "Server rows breaking the payload contract", "Server rows", "Rule"),
                    key="contract_counts")
    st.caption("Server rows per rule and event name:")
    layout.table(views.contract_by_event(result), key="contract_by_event")
    layout.examples(result, key="contract_examples")
    layout.explanations(contract, result, key="contract_explain", config=an.config)

st.header("Funnel journey")
result = an.report.get("journey")
layout.section_intro("journey", an.config)
if not layout.not_evaluated(result, "Journey"):
    layout.table(views.journey_table(result), key="journey_table")
    layout.explanations(journey, result, key="journey_explain", config=an.config)
