"""Posting alerts to a webhook: ``POST`` JSON with a ``text`` field (Slack's incoming webhooks read
it; other receivers get the alert's fields beside it). The body never holds the token: it is built
from the alert only and scrubbed by the caller; the token is not sent in any header either."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from capi_diag.core.errors import UsageError

TIMEOUT_S = 10.0


def check_url(url: str) -> str:
    """The webhook URL, or :class:`UsageError` when it is not http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--webhook {url!r} is not an http(s) URL; pass the receiver's full URL, e.g. a Slack "
                         "incoming webhook https://hooks.slack.com/services/...")
    return url.strip()


def text(change: Mapping[str, Any], pixel_id: str) -> str:
    """One line for people: what, where and the figures."""
    mark = ":rotating_light:" if change["state"] == "raised" else ":white_check_mark:"
    state = "raised" if change["state"] == "raised" else "cleared"
    return (f"{mark} capi-diag monitor, Pixel {pixel_id}: {change['kind']} {state} for {change['event_name']} "
            f"({change['metric']}: baseline {change['baseline']}, now {change['now']}). {change['detail']}")


def body(change: Mapping[str, Any], pixel_id: str) -> dict[str, Any]:
    return {"text": text(change, pixel_id), "pixel_id": pixel_id, **dict(change)}


@dataclass
class Posted:
    ok: bool
    detail: str


def post(client: httpx.Client, url: str, payload: Mapping[str, Any]) -> Posted:
    """POST ``payload``; the outcome in one line (a failed post never stops the monitor)."""
    try:
        r = client.post(url, json=dict(payload), timeout=TIMEOUT_S)
    except httpx.HTTPError as e:
        return Posted(False, f"{type(e).__name__}")
    return Posted(200 <= r.status_code < 300, f"HTTP {r.status_code}")
