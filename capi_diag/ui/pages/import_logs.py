"""Import: upload browser and server logs; see what was read, mapped and rejected."""

import streamlit as st

from capi_diag.core import fmt
from capi_diag.core.schema import contract_rows
from capi_diag.report import md_text
from capi_diag.ui import importer, layout, state, views
from capi_diag.ui.navigation import page_path

st.title("Import your logs")
st.caption("Upload the browser (Pixel) and server (CAPI) event logs: several files each, "
           "CSV, JSON Lines, Parquet or .csv.gz. Files stay in this browser session only.")

job = state.import_job()
ws = st.session_state.get(state.WORKSPACE_KEY)
if job is not None and job.done and job.workspace is not None and job.workspace is ws:
    # the import this session just finished: what it did, and the way on (the page stays here, so the
    # import report below is the first thing seen: rows loaded and rejected, file by file)
    state.pop_notice()  # the same summary: not again on the next page
    with st.container(key="import_done"):
        st.success(job.summary(), icon=":material/check_circle:")
        st.page_link(page_path("checklist"), label="Open the checklist: can this setup go live?",
                     icon=":material/checklist:")

TYPES = ["csv", "gz", "jsonl", "ndjson", "json", "parquet", "txt", "tsv"]
# One form: the files chosen reach the script together with the click, and Streamlit keeps "Import and
# analyse" disabled while any file of the form is still uploading. Without the form, a click made while
# the second log is still uploading (its name already listed) would import the first log alone, and each
# upload's own rerun could abandon the click's run under load (twenty sessions at once).
with st.form("import_form", border=False):
    left, right = st.columns(2)
    # each import takes the files: the widgets then get new keys, empty (state.release_uploads)
    browser_files = left.file_uploader(
        "Browser (Pixel) log", type=[*TYPES, "har"], accept_multiple_files=True, key=state.upload_key("upload_browser"),
        help="What the Pixel sent: fbq event logs, GTM exports, a HAR saved from the browser's DevTools.")
    server_files = right.file_uploader("Server (CAPI) log", type=TYPES, accept_multiple_files=True,
                                       key=state.upload_key("upload_server"),
                                       help="What your server sent to the Conversions API.")
    with st.expander("Orders and Meta's answers (optional): follow every order to Meta"):
        o_col, s_col = st.columns(2)
        orders_files = o_col.file_uploader(
            "Orders export", type=TYPES, accept_multiple_files=True, key=state.upload_key("upload_orders"),
            help="The shop's order export (Shopify, WooCommerce, or plain order id, creation time, total and "
                 "currency columns). Only "
                 "the order fields are kept: customers' emails, phones and addresses are dropped at import.")
        send_files = s_col.file_uploader(
            "Send log", type=["jsonl", "ndjson", "json", "gz"], accept_multiple_files=True,
            key=state.upload_key("upload_send_log"),
            help="What Meta answered to each server request, one JSON line per request (as `capi-diag send-test "
                 "--send-log-out` records it). Access tokens found in it are removed, never stored.")
    with st.expander("Options: thresholds, consent policy, time zone"):
        config_file = st.file_uploader("Config (TOML, optional)", type=["toml"], key="upload_config",
                                       help="The same file as `report --config`: thresholds and consent policy.")
        assume_tz = st.text_input("Time zone of ISO times without an offset", value="UTC", key="assume_tz")
    # The click is recorded by the button's callback, not read from its return value: a click's run can
    # be abandoned before it reaches this line (by another rerun request arriving meanwhile), and the run
    # that replaces it sees the button unclicked; the callback has run by then (see state.request_import).
    st.form_submit_button("Import and analyse", key="run_import", type="primary", icon=":material/play_arrow:",
                          disabled=state.import_running(), on_click=state.request_import)
if state.take_import_request() and not state.import_running():
    if not (browser_files or server_files):
        st.warning("Choose a browser or a server log (or both) above, then press **Import and analyse**.",
                   icon=":material/upload_file:")
    elif importer.run_import(browser_files or [], server_files or [], config_file, assume_tz,
                             orders=orders_files or [], send_log=send_files or []) is not None:
        st.rerun()  # draw every page element (buttons, sidebar) as "import running"

if ws is not None:
    with st.expander("Apply a config to the current data (no re-import)"):
        with st.form("apply_config_form", border=False):
            new_config = st.file_uploader("Config (TOML)", type=["toml"], key="apply_config_file",
                                          help="Thresholds and consent policy, as `report --config` reads them.")
            if st.form_submit_button("Apply config to the current data", key="apply_config",
                                     disabled=state.import_running()):
                if new_config is None:
                    st.warning("Choose a config file first.", icon=":material/upload_file:")
                else:
                    importer.apply_config(ws, new_config)

job = state.import_job()
ws = st.session_state.get(state.WORKSPACE_KEY)
if job is not None and not job.done:
    st.info("Importing: the progress is at the top of the sidebar. You can open other pages meanwhile: the "
            "import goes on, and every page shows the new data when it is ready.", icon=":material/hourglass_top:")
elif job is not None and job.failed:
    # the import report below would describe the previous data, not these files: leave it out
    st.error(f"**{job.error_title}.** {job.error}", icon=":material/error:")
    if ws is not None:
        kept = "the demo data" if ws.is_demo else md_text(", ".join(n for names in ws.files.values() for n in names))
        st.caption(f"Nothing was replaced: the other pages still show {kept}. Fix the file and import again.")
elif ws is None:
    st.info("No data loaded yet: choose files above and press **Import and analyse**.",
            icon=":material/upload_file:")
else:
    st.subheader("Import report: demo data" if ws.is_demo else "Import report")
    st.caption(f"Imported in {fmt.duration(ws.import_seconds)}, analysed in {fmt.duration(ws.analysis_seconds)}. "
               "The import report covers every row of the files, whatever the filters.")
    for role in ("browser", "server"):
        info = ws.dataset.inputs.get(role) or {}
        st.markdown(f"#### {role.capitalize()} log")
        summary = views.import_summary(info)
        cols = st.columns(len(summary))
        for col, (name, value) in zip(cols, summary.items(), strict=True):
            col.metric(name, value)
        for i, fr in enumerate(info.get("file_reports") or []):
            tables = views.file_report_tables(fr)
            with st.expander(f"{md_text(fr['name'])}: {tables['headline']}", expanded=bool(fr.get("rows_rejected"))):
                for warning in fr.get("warnings") or []:
                    st.warning(warning, icon=":material/warning:")
                st.markdown("**Column mapping** (your header → canonical field)")
                layout.table(tables["mapping"], key=f"mapping_{role}_{i}")
                if fr.get("unknown_columns"):
                    st.markdown("**Unknown columns** (kept in `extra`, not analysed): "
                                + ", ".join(md_text(c) for c in fr["unknown_columns"]))
                if not tables["rejected"].empty:
                    st.markdown("**Rejected rows by reason**")
                    layout.table(tables["rejected"], key=f"rejected_{role}_{i}")
                    st.markdown("**Rejected examples**")
                    layout.table(tables["rejected_examples"], key=f"rejected_ex_{role}_{i}")
                if not tables["time_formats"].empty:
                    st.markdown("**event_time formats found**")
                    layout.table(tables["time_formats"], key=f"time_formats_{role}_{i}")
    for role, title in (("orders", "Orders export"), ("sends", "Send log (Meta's answers)")):
        info = ws.dataset.inputs.get(role)
        if not info:
            continue
        st.markdown(f"#### {title}")
        summary = views.import_summary(info)
        cols = st.columns(len(summary))
        for col, (name, value) in zip(cols, summary.items(), strict=True):
            col.metric(name, value)
        if info.get("dropped_columns"):
            st.caption(f"{fmt.counted(len(info['dropped_columns']), 'column')} dropped at import (customer "
                       "details are never stored): " + ", ".join(info["dropped_columns"]))
        if info.get("secrets_removed"):
            st.warning(f"{fmt.counted(info['secrets_removed'], 'access token')} found in the send log "
                       "were removed at import and never stored.", icon=":material/key_off:")
        for i, fr in enumerate(info.get("file_reports") or []):
            tables = views.file_report_tables(fr)
            if not tables["rejected"].empty:
                with st.expander(f"{fr['name']}: {tables['headline']}"):
                    layout.table(tables["rejected"], key=f"rejected_{role}_{i}")
    st.page_link(page_path("orders-delivery"), label="Follow every order", icon=":material/receipt_long:")
    st.page_link(page_path("checklist"), label="Open the checklist", icon=":material/checklist:")

with st.expander("Accepted column headers"):
    layout.table(views.contract_table(contract_rows()), key="accepted_headers")
