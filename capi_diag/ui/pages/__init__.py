"""One script per dashboard page (run by ``st.navigation``; see :mod:`capi_diag.ui.navigation`)."""
