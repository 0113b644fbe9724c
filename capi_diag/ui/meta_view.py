"""What the Graph pages share: the session's Pixel and typed token, the connect check kept per
(Graph URL, version, Pixel, token), and Meta's Dataset Quality figures fetched on request and put
beside the session's report.

The token typed in a page's password field is copied to :data:`TOKEN_KEY` in this browser session's
memory (``st.session_state``), so the analyst types it once for the Test Events and "Meta's view"
pages; it is never written to the page, a file or a log. The connect check is keyed by a SHA-256
digest, so the token itself is not part of the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from capi_diag.api import logs_context
from capi_diag.core.config import Config
from capi_diag.meta.client import GraphClient, GraphConfig
from capi_diag.meta.connect import ConnectResult, check_connection
from capi_diag.meta.quality import DatasetQuality, compare, fetch_quality, tolerances
from capi_diag.meta.token import Secret, scrub
from capi_diag.ui.session import Analysis

CLOCK: Callable[[], float] = time.time
"""The clock of the Graph reads (a test seam)."""
TOKEN_KEY = "capi_session_token"
PIXEL_KEY = "capi_session_pixel_id"
CONNECT_KEY = "capi_connect_check"
PAGE_RETRIES = 1
"""Retries of a transient failure in a page: the page waits for them, so fewer than the CLI's 3."""
RECHECK_S = 30.0
"""A check that could not finish (timeout, 5xx) is kept this long before the next rerun tries again,
so a slow network does not stall every rerun of the page."""


def remember(widget_key: str, target: str) -> Callable[[], None]:
    """An ``on_change`` callback copying a widget's value to a session key every page can read."""
    def copy() -> None:
        value = (st.session_state.get(widget_key) or "").strip()
        if value:
            st.session_state[target] = value
        else:
            st.session_state.pop(target, None)
    return copy


def session_token(widget_key: str) -> str | None:
    """The token typed on this page, else the one typed on another page of this session."""
    typed = (st.session_state.get(widget_key) or "").strip()
    return typed or st.session_state.get(TOKEN_KEY)


def _client(secret: Secret, graph: GraphConfig) -> GraphClient:
    return GraphClient(secret.reveal(), config=dataclasses.replace(graph, max_retries=PAGE_RETRIES), clock=CLOCK)


def _key(graph: GraphConfig, pixel_id: str, secret: Secret) -> str:
    raw = f"{graph.graph_url}\n{graph.api_version}\n{pixel_id}\n{secret.reveal()}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def kept_check(graph: GraphConfig, pixel_id: str, secret: Secret) -> ConnectResult | None:
    """The connect check already run for exactly these settings, if any (an unfinished one only for
    :data:`RECHECK_S`)."""
    kept = st.session_state.get(CONNECT_KEY)
    if not kept or kept["key"] != _key(graph, pixel_id, secret):
        return None
    result: ConnectResult = kept["result"]
    if result.connected or result.refused or CLOCK() - kept["at"] < RECHECK_S:
        return result
    return None


def connection(graph: GraphConfig, pixel_id: str, secret: Secret) -> ConnectResult:
    """The connect check for these settings: kept when Meta answered (connected or refused); when it
    could not finish (a timeout, a 5xx) it runs again after :data:`RECHECK_S`."""
    kept = kept_check(graph, pixel_id, secret)
    if kept is not None:
        return kept
    client = _client(secret, graph)
    try:
        result = check_connection(client, pixel_id)
    finally:
        client.close()
    st.session_state[CONNECT_KEY] = {"key": _key(graph, pixel_id, secret), "result": result, "at": CLOCK()}
    return result


@dataclass
class Fetched:
    """Meta's Dataset Quality answer for one Pixel, as fetched (no token)."""

    pixel_id: str
    fetched_at: float
    graph_url: str
    api_version: str
    quality: DatasetQuality | None = None
    error: dict[str, Any] | None = None
    findings: list[str] = field(default_factory=list)


def fetch(graph: GraphConfig, pixel_id: str, secret: Secret) -> Fetched:
    """Read Meta's figures for ``pixel_id`` now."""
    now = CLOCK()
    client = _client(secret, graph)
    try:
        got = fetch_quality(client, pixel_id)
    finally:
        client.close()
    error = scrub(got.error.as_dict(), secret) if got.error is not None else None
    return Fetched(pixel_id, now, graph.graph_url, graph.api_version, got.quality, error,
                   scrub(list(got.findings), secret))


def comparison(fetched: Fetched, an: Analysis | None, config: Config) -> dict[str, Any]:
    """Meta's figures beside the session's report for the current filters (the JSON document)."""
    assert fetched.quality is not None
    ctx = an.keep("meta_logs_context", lambda: logs_context(an.dataset)) if an is not None else None
    comp = compare(fetched.quality, an.report if an is not None else None, context=ctx,
                   tolerances=tolerances(config), now=fetched.fetched_at)
    comp.source = {"graph_url": fetched.graph_url, "api_version": fetched.api_version,
                   "fetched_at": dt.datetime.fromtimestamp(fetched.fetched_at, dt.UTC).isoformat(timespec="seconds")}
    return comp.as_dict()
