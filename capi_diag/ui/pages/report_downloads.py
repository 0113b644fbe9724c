"""Report: the full report as JSON, Markdown or HTML, and the failing rows of any finding as CSV."""

import streamlit as st

from capi_diag.core import fmt
from capi_diag.report import render
from capi_diag.ui import findings, layout

an = layout.page("Report downloads",
                 "The same report as `python -m capi_diag report` for the data and filters shown, and the "
                 "rows behind each finding.")
if an is None:
    layout.end_page()

st.subheader("Full report")
if an.filters.active:
    st.caption("The downloads record the filters above (the JSON's `filters` object, the first lines of "
               "Markdown and HTML, a column of the CSV).")
suffix = "-filtered" if an.filters.active else ""
c1, c2, c3 = st.columns(3)
for col, kind, label, ext, mime, icon in ((c1, "json", "JSON", "json", "application/json", ":material/data_object:"),
                                          (c2, "markdown", "Markdown", "md", "text/markdown", ":material/description:"),
                                          (c3, "html", "HTML", "html", "text/html", ":material/html:")):
    text = an.keep(f"render:{kind}", lambda kind=kind: render(an.report, kind, an.config))
    col.download_button(label, text, file_name=f"capi-diag-report{suffix}.{ext}", mime=mime, key=f"download_{kind}",
                        icon=icon, on_click="ignore")

st.subheader("Failing rows per finding")
with st.spinner("Collecting the failing rows of every finding..."):
    counts = an.keep("finding_counts", lambda: findings.finding_counts(an.dataset, an.config))
if counts.empty:
    st.success("No finding has failing rows.", icon=":material/check_circle:")
    layout.end_page()
layout.table(findings.counts_table(counts), key="finding_counts", width="stretch")
st.caption(f"{fmt.count(int(counts['rows'].sum()))} failing rows in all (a row with several findings counts "
           "once per finding).")
choices = [None, *counts["choice"]]
choice = st.selectbox("Finding", choices, key="finding_choice",
                      format_func=lambda c: findings.ALL if c is None else findings.choice_label(c))
ds, config, filters = an.dataset, an.config, an.filters


def _csv() -> bytes:
    with ds.db.lock:
        return findings.finding_csv(ds, config, choice, filters=filters)


st.download_button("CSV of failing rows", _csv, file_name=findings.csv_name(choice, filters), mime="text/csv",
                   key="download_failing_csv", icon=":material/table:", on_click="ignore",
                   help="One row per failing event row and finding: the analysis, the finding (its id for "
                        "scripts and its name in words), severity, log, file and line, event_name and event_id, "
                        "a detail (never a raw personal value) and the filters in force.")
