"""Match keys & EMQ: can Meta match each server event to a person, and what would raise the score."""

import streamlit as st

from capi_diag.ui import charts, layout, views

an = layout.page("Match keys & EMQ",
                 "Valid coverage of each user_data field per event, the defects that make values useless, "
                 "and an explainable Event Match Quality estimate with the fixes ranked by gain.")
if an is None:
    st.stop()
match_keys, emq = layout.module("match_keys"), layout.module("emq")
keys_result, emq_result = an.report.get("match_keys"), an.report.get("emq")

st.header("Event Match Quality estimate")
layout.section_intro(emq)
if not layout.not_evaluated(emq_result, "EMQ estimate"):
    c1, c2 = st.columns(2)
    c1.metric("EMQ estimate", views.score(emq_result.get("estimate")), help="0-10; Meta's target is 6.0.")
    c2.metric("Band", emq_result.get("band") or "n/a")
    st.caption("An estimate: Meta publishes no formula. The weights are capi-diag's, documented in the "
               "module text above.")
    st.plotly_chart(charts.emq_by_event(views.emq_by_event(emq_result)), key="emq_by_event")
    prio = views.emq_priorities(emq_result)
    st.plotly_chart(charts.priorities(prio), key="emq_priorities")
    st.markdown(views.priorities_markdown(prio))

st.header("Match keys")
layout.section_intro(match_keys)
if not layout.not_evaluated(keys_result, "Match keys"):
    st.plotly_chart(charts.coverage_heatmap(views.coverage_matrix(keys_result)), key="keys_heatmap")
    st.subheader("Coverage and defects per field")
    st.dataframe(views.key_defects(keys_result), hide_index=True, key="keys_defects")
    layout.examples(keys_result, key="keys_examples")
    st.subheader("Every number, with its fix")
    layout.explanations(match_keys, keys_result, key="keys_explain")
