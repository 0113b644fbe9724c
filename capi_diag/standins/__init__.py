"""Local stand-ins for services capi-diag talks to, for tests and offline rehearsals.

:mod:`.fake_server` answers like Meta's Graph API on 127.0.0.1 (``/events``, the Pixel read, Dataset
Quality); :mod:`.fake_quality` holds its answers to the two reads. Never a default target.

May import: :mod:`capi_diag.core` and :mod:`capi_diag.meta`.
"""
