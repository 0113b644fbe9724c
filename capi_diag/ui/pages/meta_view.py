"""Meta's view: Meta's own figures (Dataset Quality API) for the session's Pixel, beside capi-diag's from
the logs, with the likely cause of every difference beyond its tolerance. Fetched on request only."""

import json
import os

import pandas as pd
import streamlit as st

from capi_diag.core.config import Config
from capi_diag.core.errors import CapiDiagError
from capi_diag.meta.client import GraphConfig
from capi_diag.meta.quality import cause_lines, compared, table_rows, to_markdown
from capi_diag.meta.token import configured_token, resolve_token
from capi_diag.ui import layout, meta_view, state

RESULT_KEY = "mq_fetched"

an = layout.page("Meta's view",
                 "Meta's own figures for your Pixel (Event Match Quality, match-key coverage, event coverage, "
                 "dedup keys, freshness, additional conversions reported) beside capi-diag's from the logs, "
                 "and the likely cause of each difference.")
ws = st.session_state.get(state.WORKSPACE_KEY)
config = ws.config if ws is not None else None
try:
    graph = GraphConfig.from_env(os.environ)
    configured = configured_token()
except CapiDiagError as e:
    st.error(f"{e.title}: {e}")
    layout.end_page()
st.caption(f"Reads `{graph.graph_url}` ({graph.api_version}): `GET dataset_quality` with the token in the "
           "Authorization header. The Graph URL is set by configuration (CAPI_GRAPH_URL).")

logs_pixels = ws.options.pixel_ids if ws is not None and ws.options is not None else ()
default_pixel = st.session_state.get(meta_view.PIXEL_KEY) or (logs_pixels[0] if len(logs_pixels) == 1 else "")
left, right = st.columns(2)
left.text_input("Pixel (dataset) ID", key="mq_pixel_id", value=default_pixel, placeholder="1234567890",
                on_change=meta_view.remember("mq_pixel_id", meta_view.PIXEL_KEY))
if configured is None:
    if st.session_state.get(meta_view.TOKEN_KEY) and not st.session_state.get("mq_token"):
        right.caption("Access token: the one entered on the Test Events page (this browser session only).")
    right.text_input("Access token", key="mq_token", type="password",
                     on_change=meta_view.remember("mq_token", meta_view.TOKEN_KEY),
                     help="Kept in this browser session's memory only; never stored. Needs 'Use events dataset' "
                          "and ads_read.")
else:
    right.caption(f"Access token: configured ({configured.source}).")

pixel = (st.session_state.get("mq_pixel_id") or "").strip()
problem = ""
secret = None
if not pixel:
    problem = "Enter the Pixel ID to read Meta's figures."
elif not pixel.isdigit():
    problem = "The Pixel ID is a number (Events Manager > Data sources)."
else:
    try:
        secret = resolve_token(session=meta_view.session_token("mq_token"))
    except CapiDiagError as e:
        problem = str(e)
clicked = st.button("Fetch Meta's figures", key="mq_fetch", type="primary", disabled=secret is None,
                    icon=":material/cloud_download:")
if problem:
    st.caption(problem)
if clicked and secret is not None:
    with st.spinner(f"Reading Meta's figures for dataset {pixel}..."):
        st.session_state[RESULT_KEY] = meta_view.fetch(graph, pixel, secret)

fetched = st.session_state.get(RESULT_KEY)
if fetched is None or fetched.pixel_id != pixel:
    st.info("Meta's figures are read only when you ask: press **Fetch Meta's figures**. Meta reports them per "
            "event name over its last 7 days (about 48 hours for Event Match Quality).",
            icon=":material/cloud_download:")
    layout.end_page()
if fetched.error is not None:
    e = fetched.error
    code = f"{e.get('code')}" + (f"/{e.get('error_subcode')}" if e.get("error_subcode") else "")
    st.error(f"**{e.get('title')}** ({code}, HTTP {e.get('http_status')}): {e.get('user_msg') or e.get('message')}"
             f"\n\n**Fix:** {e.get('fix')}", icon=":material/error:")
    for finding in fetched.findings:
        st.caption(finding)
    layout.end_page()

try:
    doc = meta_view.comparison(fetched, an, config or Config())
except CapiDiagError as e:
    st.error(f"**{e.title}.** {e}", icon=":material/error:")
    layout.end_page()

st.caption(f"Fetched {doc['source']['fetched_at']} from {doc['source']['graph_url']} "
           f"({doc['source']['api_version']}).")
c1, c2, c3 = st.columns(3)
c1.metric("Event names Meta reports", len(doc["by_event_name"]))
if doc["with_logs"]:
    c2.metric("Figures compared", compared(doc))
    c3.metric("Differences beyond tolerance", doc["beyond_tolerance"])
    st.caption(f"Logs' period: {(doc.get('logs') or {}).get('period') or 'unknown'}. Difference = ours - Meta, in "
               "Meta's unit (percentage points, EMQ points, freshness buckets). Tolerances: EMQ {emq_score:g}, match "
               "keys {match_key_coverage_pp:g} pp, event coverage {event_coverage_pp:g} pp, dedup keys "
               "{dedupe_key_pp:g} pp, freshness {freshness_steps} bucket(s) ([meta_quality] in the config "
               "file).".format(**doc["tolerances"]))
else:
    st.caption("No logs in this session: Meta's figures are shown alone.")

WIDE = {"metric": st.column_config.TextColumn(width="medium"),
        "likely cause": st.column_config.TextColumn(width="large")}


def _table(rows: list[dict], key: str) -> None:
    """One table (Meta's figures, with ours beside them when there are logs), then each cause in full."""
    table = pd.DataFrame(table_rows(rows))
    if not doc["with_logs"]:
        table = table[["metric", "Meta"]]
    st.dataframe(table, hide_index=True, key=key, width="stretch", height="content", column_config=WIDE)
    for line in cause_lines(rows):
        st.markdown(f"- {line}")


if doc["overall"]:
    st.subheader("Overall")
    st.caption("Meta's overall figure: its per-event figures weighted by the logs' event counts.")
    _table(doc["overall"], "mq_overall")
for i, (name, rows) in enumerate(doc["by_event_name"].items()):
    beyond = sum(1 for r in rows if r["cause"])
    title = name + (f" ({beyond} beyond tolerance)" if beyond else "")
    with st.expander(title, expanded=bool(beyond) or not doc["with_logs"]):
        missing = doc["missing_sections"].get(name)
        if missing:
            st.caption(f"Meta sent no {', '.join(missing)} for this event.")
        if rows:
            _table(rows, f"mq_event_{i}")
        for d in doc["diagnostics"].get(name, []):
            share = f" ({d['percentage']:g} % of events)" if d.get("percentage") is not None else ""
            st.warning(f"**Meta diagnostic: {d['name']}**{share}. {d.get('description') or ''}\n\n"
                       f"**Solution:** {d.get('solution') or '-'}", icon=":material/troubleshoot:")
for note in doc["notes"]:
    st.caption(note)

d1, d2 = st.columns(2)
d1.download_button("JSON", json.dumps(doc, indent=2, ensure_ascii=False),
                   file_name=f"meta-quality-{pixel}.json", mime="application/json", key="mq_download_json",
                   icon=":material/data_object:")
d2.download_button("Markdown", to_markdown(doc), file_name=f"meta-quality-{pixel}.md", mime="text/markdown",
                   key="mq_download_markdown", icon=":material/description:")
