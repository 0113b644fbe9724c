"""Test Events: the navigation's entry for the page of its own issue (``test_events.render``)."""

import importlib

import streamlit as st

try:
    test_events = importlib.import_module("capi_diag.ui.pages.test_events")
except ModuleNotFoundError as e:
    if e.name != "capi_diag.ui.pages.test_events":
        raise
    test_events = None

if test_events is not None:
    test_events.render()
else:
    st.title("Test Events")
    st.caption("Send sample events to Meta's Test Events tool and read Meta's verdict.")
    st.info("The Test Events sender is not part of this build yet.", icon=":material/hourglass:")
