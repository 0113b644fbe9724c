"""Checklist (home): the verdict first, then what blocks launch, then the warnings, with the fix for
each item and the page that explains it; passing items collapsed."""

import html

import streamlit as st

from capi_diag.core import fmt
from capi_diag.ui import layout, views
from capi_diag.ui.navigation import SECTION_PAGE, page_path
from capi_diag.verdict import checklist

an = layout.page("Pre-launch checklist",
                 "Can this setup go live? The verdict, what blocks launch and what to fix first, each with the "
                 "page that explains it.")
if an is None:
    layout.end_page()

items = views.checklist_items(an.report)

status, verdict = checklist.verdict(items)
note = checklist.verdict_note(items)
with st.container(key="verdict"):
    st.markdown(layout.verdict_block(status, verdict), unsafe_allow_html=True)
    if note:
        st.caption(note[:1].upper() + note[1:] + ".")

figures = views.headline(an.report, an.rows)
emq_caption, emq_status = views.emq_card(an.report)
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Pairing rate", fmt.share(figures["pairing_rate"]),
          help="Dedup keys (event name + event ID) with a browser and a server event close enough for Meta to "
               "merge them, over all dedup keys.")
c2.metric("Browser events", fmt.count(figures["browser_events"]), help="Rows of the browser (Pixel) log.")
c3.metric("Server events", fmt.count(figures["server_events"]), help="Rows of the server (CAPI) log.")
c4.metric("Skew, 95th percentile", fmt.duration(figures["skew_p95_abs_s"]),
          help="95 % of paired dedup keys have browser and server event_time at most this far apart.")
c5.metric("EMQ estimate", fmt.score(figures["emq_estimate"]),
          help="capi-diag's transparent estimate of Event Match Quality (Meta publishes no formula).")
c5.markdown((layout.status_chip(emq_status) + " " if emq_status else "") + html.escape(emq_caption),
            unsafe_allow_html=True)


def _item(item: dict) -> None:
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


groups = {s: [i for i in items if i["status"] == s] for s in views.STATUSES}
if groups["fail"]:
    st.subheader(f"Blockers ({len(groups['fail'])})")
    st.caption("Fix these before going live, top to bottom (go-live order).")
    for item in groups["fail"]:
        _item(item)
if groups["warn"]:
    st.subheader(f"Warnings ({len(groups['warn'])})")
    for item in groups["warn"]:
        _item(item)
if groups["not_evaluated"]:
    with st.expander(f"Not evaluated on these logs ({len(groups['not_evaluated'])})"):
        for item in groups["not_evaluated"]:
            _item(item)
if groups["pass"]:
    with st.expander(f"Passing ({len(groups['pass'])})"):
        for item in groups["pass"]:
            _item(item)
