"""capi-diag dashboard: ``streamlit run app.py`` (or ``make run``). Page config and navigation only."""

import streamlit as st

from capi_diag.ui import navigation

st.set_page_config(page_title="capi-diag", layout="wide")
page = st.navigation(navigation.pages())
progress = navigation.sidebar()
navigation.filter_banner()
navigation.run_page(page, progress)
