"""Meta's side: the Graph API client, its error catalogue, payloads, the token, the connect check and
Dataset Quality.

One client (:mod:`.client`) with one retry path for every request; pure request builders and response
parsers; the access token never in a URL, a log line, a ``repr`` or an exception.

May import: :mod:`capi_diag.core` only.
"""
