"""Consent & contract: events forwarded without consent, and payload fields that break Meta's contract."""

import streamlit as st

from capi_diag.ui import charts, layout, views

an = layout.page("Consent & contract",
                 "Server events sent without the consent their region requires, payload fields Meta rejects "
                 "or cannot use, and the funnel steps each log covers.")
if an is None:
    st.stop()
consent, contract, journey = layout.module("consent"), layout.module("contract"), layout.module("journey")

st.header("Consent")
result = an.report.get("consent")
layout.section_intro(consent)
if not layout.not_evaluated(result, "Consent"):
    c1, c2, c3 = st.columns(3)
    c1.metric("Forwarded without consent", f"{result['forwarded_without_consent']:,}")
    c2.metric("Consent unknown", f"{result['consent_unknown']:,}")
    c3.metric("Server rows", f"{result['server_rows']:,}")
    st.plotly_chart(charts.consent_by_region(views.consent_regions(result)), key="consent_regions")
    st.subheader("Per purpose")
    st.dataframe(views.consent_purposes(result), hide_index=True, key="consent_purposes")
    layout.examples(result, key="consent_examples")
    layout.explanations(consent, result, key="consent_explain")

st.header("Payload contract")
result = an.report.get("contract")
layout.section_intro(contract)
if not layout.not_evaluated(result, "Payload contract"):
    counts = views.contract_counts(result)
    st.plotly_chart(charts.counts_bar(counts[counts["rows"] > 0], "Server rows breaking the payload contract",
                                      "Server rows", "Rule"), key="contract_counts")
    st.dataframe(views.contract_by_event(result), hide_index=True, key="contract_by_event")
    layout.examples(result, key="contract_examples")
    layout.explanations(contract, result, key="contract_explain")

st.header("Journey")
result = an.report.get("journey")
layout.section_intro(journey)
if not layout.not_evaluated(result, "Journey"):
    st.dataframe(views.journey_table(result), hide_index=True, key="journey_table")
    layout.explanations(journey, result, key="journey_explain")
