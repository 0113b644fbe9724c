"""Checklist (home): what blocks launch, in go-live order, with the fix for each item."""

import streamlit as st

from capi_diag.ui import layout, views
from capi_diag.ui.navigation import SECTION_PAGE, page_path

an = layout.page("Pre-launch checklist",
                 "What blocks launch, in go-live order, with the fix for each item and the page that explains it.")
if an is None:
    st.stop()

figures = views.headline(an.report, an.rows)
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Pairing rate", views.pct(figures["pairing_rate"]),
          help="Dedup keys with a browser and a server event at most 48 h apart, over all keys.")
c2.metric("Browser events", f"{figures['browser_events']:,}", help="Rows of the browser (Pixel) log.")
c3.metric("Server events", f"{figures['server_events']:,}", help="Rows of the server (CAPI) log.")
c4.metric("Skew p95", views.seconds(figures["skew_p95_abs_s"]),
          help="95th percentile of |server event_time - browser event_time| over paired keys.")
c5.metric("EMQ estimate", "n/a" if figures["emq_estimate"] is None else f"{figures['emq_estimate']:.1f} / 10",
          help="capi-diag's transparent estimate of Event Match Quality (Meta publishes no formula).")
if figures["emq_band"]:
    c5.caption(f"Band: {figures['emq_band']}")

items = views.checklist_items(an.report)
if not items:
    st.info("The checklist is not available in this build yet.", icon=":material/hourglass:")
    st.stop()

counts = views.status_counts(an.report)
st.markdown(" ".join(f"{layout.status_chip(s)} {counts[s]}" for s in views.STATUSES if counts.get(s)),
            unsafe_allow_html=True)
st.caption("Items are in go-live order; fix them top to bottom.")

for item in items:
    with st.container(border=True, key=f"check_{item['id']}"):
        chip, body, observed, link = st.columns([1.3, 6.5, 1.7, 1.1], vertical_alignment="center")
        chip.markdown(layout.status_chip(item["status"]), unsafe_allow_html=True)
        text = f"**{item['title']}**"
        if item.get("explanation"):
            text += f"  \n{item['explanation']}"
        if item["status"] in ("fail", "warn") and item.get("fix"):
            text += f"  \n**Fix:** {item['fix']}"
        body.markdown(text)
        observed.markdown(f"**{item['observed_text']}**  \n:gray[{item['threshold_text']}]")
        target = SECTION_PAGE.get(item["page_section"] or "")
        if target:
            link.page_link(page_path(target), label="Explain", icon=":material/arrow_forward:")
