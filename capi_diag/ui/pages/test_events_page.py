"""Test Events: the navigation's entry for the Test Events page (``test_events.render``)."""

from capi_diag.ui.pages import test_events

test_events.render()
