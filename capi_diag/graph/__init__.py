"""Talking to Meta's Graph API: payload builder, error catalogue, client, and a local stand-in.

* :mod:`capi_diag.graph.payload`: test journeys and request bodies (pure).
* :mod:`capi_diag.graph.errors`: the error catalogue and :class:`GraphAPIError`.
* :mod:`capi_diag.graph.client`: :class:`GraphClient` for ``POST /{version}/{pixel_id}/events``.
* :mod:`capi_diag.graph.connect`: the connect check (the Pixel's name and id, or Meta's refusal).
* :mod:`capi_diag.graph.quality`: Meta's Dataset Quality figures and their comparison with the report.
* :mod:`capi_diag.graph.commands`, :mod:`capi_diag.graph.meta_commands`: the CLI commands.
* :mod:`capi_diag.graph.fake_server`: :class:`FakeGraph`, a 127.0.0.1 server answering like Meta,
  for tests and offline rehearsals (never the default target); :mod:`capi_diag.graph.fake_quality` holds
  its answers to the two reads.

Nothing is imported here eagerly, so ``import capi_diag.graph`` stays cheap for the CLI.
"""

from __future__ import annotations
