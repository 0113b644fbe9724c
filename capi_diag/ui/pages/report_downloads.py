"""Report: the full report as JSON, Markdown or HTML, and the failing rows of any finding as CSV."""

import streamlit as st

from capi_diag.report import render
from capi_diag.ui import findings, layout

an = layout.page("Report downloads",
                 "The same report as `python -m capi_diag report` for the data and filters shown, and the "
                 "rows behind each finding.")
if an is None:
    st.stop()

st.subheader("Full report")
c1, c2, c3 = st.columns(3)
c1.download_button("JSON", render(an.report, "json"), file_name="capi-diag-report.json",
                   mime="application/json", key="download_json", icon=":material/data_object:")
c2.download_button("Markdown", render(an.report, "markdown"), file_name="capi-diag-report.md",
                   mime="text/markdown", key="download_markdown", icon=":material/description:")
c3.download_button("HTML", render(an.report, "html"), file_name="capi-diag-report.html",
                   mime="text/html", key="download_html", icon=":material/html:")

st.subheader("Failing rows per finding")
counts = an.keep("finding_counts", lambda: findings.finding_counts(an.dataset, an.config))
if counts.empty:
    st.success("No finding has failing rows.", icon=":material/check_circle:")
    st.stop()
st.dataframe(counts, hide_index=True, key="finding_counts", width="stretch")
choices = [None, *zip(counts["section"], counts["finding"], strict=True)]
choice = st.selectbox("Finding", choices, key="finding_choice",
                      format_func=lambda c: findings.ALL if c is None else f"{c[0]} / {c[1]}")
section, finding = (None, None) if choice is None else choice
ds, config = an.dataset, an.config


def _csv() -> bytes:
    with ds.db.lock:
        return findings.finding_csv(ds, config, section, finding)


st.download_button("CSV of failing rows", _csv, file_name=findings.csv_name(section, finding), mime="text/csv",
                   key="download_failing_csv", icon=":material/table:",
                   help="Columns: section, finding, severity, role, source_file, line, event_name, event_id, "
                        "detail (never a raw PII value).")
