"""Talking to Meta's Graph API: payload builder, error catalogue, client, and a local stand-in.

* :mod:`capi_diag.graph.payload`: test journeys and request bodies (pure).
* :mod:`capi_diag.graph.errors`: the error catalogue and :class:`GraphAPIError`.
* :mod:`capi_diag.graph.client`: :class:`GraphClient` for ``POST /{version}/{pixel_id}/events``.
* :mod:`capi_diag.graph.fake_server`: :class:`FakeGraph`, a 127.0.0.1 server answering like Meta,
  for tests and offline rehearsals (never the default target).

Nothing is imported here eagerly, so ``import capi_diag.graph`` stays cheap for the CLI.
"""

from __future__ import annotations
