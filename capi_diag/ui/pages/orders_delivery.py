"""Orders & delivery: where the shop's orders get lost on their way to Meta, and what Meta refused."""

import streamlit as st

from capi_diag.core import fmt, labels
from capi_diag.ui import charts, findings, layout, views
from capi_diag.ui.navigation import page_path

an = layout.page("Orders & delivery",
                 "Every order of the shop followed through the browser log, the server log and Meta's answers: "
                 "where each one was lost, and what Meta refused.")
if an is None:
    layout.end_page()
recon = layout.module("reconciliation")
delivery = layout.module("delivery")
result = an.report.get("reconciliation")
sent = an.report.get("delivery")

st.header("Where the orders end")
layout.section_intro("reconciliation", an.config)
if layout.not_evaluated(result, "Orders reconciliation"):
    st.page_link(page_path("import"), label="Add the shop's orders export on the Import page",
                 icon=":material/upload_file:")
else:
    if an.filters.active:
        st.warning("The sidebar filters apply to the logs, not to the orders: an order whose Purchase rows are "
                   "filtered out counts as not sent. Clear the filters to reconcile every order.",
                   icon=":material/filter_alt:")
    table = views.waterfall_frame(result)
    n = int(result["orders"])
    lost = int(table[table["stage"].isin(["not_sent", "refused"])]["Orders"].fillna(0).sum())
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Orders in the export", fmt.count(n), help="Distinct order ids (a leading # is ignored).")
    c2.metric("Reached Meta", fmt.share((n - lost) / n) if n else "n/a",
              help="Orders with a Pixel copy or a server send Meta accepted.")
    c3.metric("Never reached Meta", fmt.count(lost), help="Not sent by either log, or refused by Meta.")
    c4.metric("Server sends refused", fmt.count(result["server_rejected"])
              if result.get("server_rejected") is not None else "not evaluated",
              help="Orders whose every server send Meta refused (needs Meta's answers).")
    st.plotly_chart(charts.order_waterfall(table, views.STAGE_COLORS), key="orders_waterfall")
    layout.table(table.drop(columns=["stage"]), key="orders_buckets", width="stretch")
    st.plotly_chart(charts.waterfall_by_day(views.waterfall_by_day(result), views.STAGE_COLORS),
                    key="orders_by_day")

    with st.spinner("Following every order..."):
        ds = an.dataset.using(an.config)
        orders = an.keep("orders_table", lambda: ds.fetch_arrow(
            "ui.order_table", recon.order_table(ds)).to_pandas())
    shown = views.orders_table(orders)
    st.download_button("CSV of every order with where it ends", data=shown.to_csv(index=False).encode("utf-8"),
                       file_name="orders_waterfall.csv", mime="text/csv", key="orders_csv",
                       icon=":material/download:")

    st.subheader("Lost orders, with their rows from both logs")
    lost_stages = [s for s in recon.LOST_STAGES if (orders["stage"] == s).any()]
    if not lost_stages:
        st.success("Every order reached Meta once.", icon=":material/check_circle:")
    else:
        stage = st.selectbox("Bucket", lost_stages, key="orders_stage", format_func=labels.label)
        part = orders[orders["stage"] == stage]
        layout.table(views.orders_table(part), key="orders_lost", width="stretch")
        order_id = st.selectbox("Order", list(part["order_id"]), key="orders_pick",
                                help="Its Purchase rows from both logs, side by side (as on the Event lookup page).")
        if order_id:
            found = an.keep(f"lookup:{order_id}", lambda: findings.lookup(an.dataset, an.config, order_id))
            left, right = st.columns(2)
            for col, role, rows in ((left, "Browser (Pixel)", found.browser), (right, "Server (CAPI)", found.server)):
                with col:
                    st.markdown(f"**{role}: {len(rows)} row{'s' if len(rows) != 1 else ''}**")
                    if rows:
                        st.dataframe(findings.side_by_side(rows), key=f"orders_rows_{role[:6].lower()}",
                                     width="stretch")
                    else:
                        st.info(f"No {role.split()[0].lower()} row names this order.", icon=":material/block:")

    st.subheader("Every number, with its fix")
    layout.explanations(recon, result, key="orders_explain", config=an.config)

st.header("What Meta answered")
layout.section_intro("delivery", an.config)
if not layout.not_evaluated(sent, "Delivery"):
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Server events sent", fmt.count(sent["rows_sent"]), help=f"In {fmt.count(sent['requests'])} requests.")
    c2.metric("Accepted", fmt.count(sent["accepted"]))
    c3.metric("Rejected", fmt.count(sent["rejected"]), help="Meta refuses a whole request for one bad event.")
    c4.metric("Requests counted short", fmt.count(sent["short_requests"]["requests"]),
              help="Accepted, but events_received lower than the events sent.")
    codes = views.delivery_codes(sent)
    if codes.empty:
        st.success("Meta accepted every request.", icon=":material/check_circle:")
    else:
        layout.table(codes, key="delivery_codes", width="stretch",
                     column_config={"Fix": st.column_config.TextColumn(width="large"),
                                    "What it means": st.column_config.TextColumn(width="large")})
    for m in sent["warnings"]["messages"]:
        st.warning(f"Meta's warning in {fmt.counted(m['requests'], 'accepted request')}: {m['message']}",
                   icon=":material/warning:")
    layout.explanations(delivery, sent, key="delivery_explain", config=an.config)
