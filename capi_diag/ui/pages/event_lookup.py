"""Event lookup: one event's rows from both logs side by side, with every finding that touches it."""

import streamlit as st

from capi_diag.ui import findings, layout

an = layout.page("Event lookup",
                 "Paste an event_id or order_id to see that event's rows from both logs side by side, "
                 "with every finding that touches it.")
if an is None:
    layout.end_page()

value = st.text_input("event_id or order_id", key="lookup_value", placeholder="e.g. ord-10023 or 8f14e45f...",
                      help="Compared exactly, as Meta does (case and inner spaces count).").strip()
if not value:
    st.info("Enter an id above. Ids to try are in the example rows of the Dedup page.", icon=":material/search:")
    layout.end_page()

with st.spinner(f"Looking up {value} in both logs and in every finding..."):
    result = an.keep(f"lookup:{value}", lambda: findings.lookup(an.dataset, an.config, value))
if not result.found:
    hint = " The sidebar filters are active: clear them to search every event." if an.filters.active else ""
    st.warning(f"No row of either log has event_id or order_id `{value}`.{hint}", icon=":material/search_off:")
    layout.end_page()

left, right = st.columns(2)
for col, role, rows in ((left, "Browser (Pixel)", result.browser), (right, "Server (CAPI)", result.server)):
    with col:
        st.subheader(f"{role}: {len(rows)} row{'s' if len(rows) != 1 else ''}")
        if rows:
            st.dataframe(findings.side_by_side(rows), key=f"lookup_{role[:6].lower()}", width="stretch")
        else:
            st.info(f"No {role.split()[0].lower()} row with this id.", icon=":material/block:")
st.caption("Times are shown in UTC beside the value the log holds (Unix seconds); columns are file:line.")
if max(len(result.browser), len(result.server)) >= findings.LOOKUP_LIMIT:
    st.caption(f"Showing the first {findings.LOOKUP_LIMIT} rows per log.")

st.subheader("Findings that touch this event")
if result.findings.empty:
    st.success("No finding touches these rows.", icon=":material/check_circle:")
else:
    layout.table(findings.findings_table(result.findings), key="lookup_findings", width="stretch")
