"""Match keys & EMQ: can Meta match each server event to a person, and what would raise the score."""

import html

import streamlit as st

from capi_diag.core import fmt, labels
from capi_diag.ui import charts, layout, views

an = layout.page("Match keys & EMQ",
                 "How many server events carry each piece of customer information in a usable form, what spoils "
                 "the rest, and an explainable Event Match Quality estimate with the fixes ranked by gain.")
if an is None:
    layout.end_page()
match_keys, emq = layout.module("match_keys"), layout.module("emq")
keys_result, emq_result = an.report.get("match_keys"), an.report.get("emq")
st.caption(f"Field codes as Meta names them: {labels.field_legend()}.")

st.header("Event Match Quality estimate")
layout.section_intro("emq", an.config)
if not layout.not_evaluated(emq_result, "EMQ estimate"):
    caption, status = views.emq_card(an.report)
    c1, c2 = st.columns(2)
    c1.metric("EMQ estimate", fmt.score(emq_result.get("estimate")),
              help=f"0 to 10; the target is {float(emq_result.get('target') or 6.0):.1f}.")
    c2.markdown((layout.status_chip(status) + " " if status else "") + html.escape(caption), unsafe_allow_html=True)
    st.caption("An estimate: Meta publishes no formula. The weights are capi-diag's, documented with the project.")
    st.plotly_chart(charts.emq_by_event(views.emq_by_event(emq_result), float(emq_result.get("target") or 6.0)),
                    key="emq_by_event")
    prio = views.emq_priorities(emq_result)
    st.plotly_chart(charts.priorities(prio), key="emq_priorities")
    st.markdown(views.priorities_markdown(prio))

st.header("Match keys")
layout.section_intro("match_keys", an.config)
if not layout.not_evaluated(keys_result, "Match keys"):
    st.plotly_chart(charts.coverage_heatmap(views.coverage_matrix(keys_result)), key="keys_heatmap")
    st.subheader("Coverage and defects per field (server rows)")
    layout.table(views.key_defects(keys_result), key="keys_defects")
    layout.examples(keys_result, key="keys_examples")
    st.subheader("Every number, with its fix")
    layout.explanations(match_keys, keys_result, key="keys_explain", config=an.config)

st.header("Personal data outside user_data")
layout.section_intro("privacy", an.config)
privacy, privacy_result = layout.module("privacy"), an.report.get("privacy")
if not layout.not_evaluated(privacy_result, "Personal data outside user_data"):
    layout.table(views.privacy_fields(privacy_result), key="privacy_fields")
    layout.examples(privacy_result, key="privacy_examples")
    layout.explanations(privacy, privacy_result, key="privacy_explain", config=an.config)
