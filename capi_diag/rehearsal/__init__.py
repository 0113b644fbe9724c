"""The browser rehearsal: ``capi-diag rehearse`` drives a real Chromium through a journey file,
captures the Pixel's ``/tr`` hits, reads what the shop's own server sent from its send log, pairs the
two event by event and gates the promotion window on dedup, missing fields and token errors too.

Modules: :mod:`~capi_diag.io.pixel_hits` (a ``/tr`` request -> a hit), :mod:`~capi_diag.rehearsal.journey`
(the TOML journey file), :mod:`~capi_diag.rehearsal.tail` (the send log read as it grows),
:mod:`~capi_diag.rehearsal.pairing` (pairs and warnings), :mod:`~capi_diag.rehearsal.runner` (the browser
and the window). docs/rehearsal.md describes it for users.

May import: core, engine, meta, io, diagnostics, verdict, testevents (the history store).
"""
