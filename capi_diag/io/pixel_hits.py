"""A Pixel hit from one network request: ``/tr`` or ``/tr/`` on any host, with ``id`` and ``ev`` in its
query or its body (urlencoded or multipart), the two merged (the body wins).

The fields are those of the Pixel's wire format (shared reference ``pixel-har-stats.md`` §1): ``ev``,
``eid``, ``id``, ``ts`` (ms), ``dl``, ``cd[*]`` (custom data, flattened one level), ``ud[*]`` (advanced
matching, hashed by the Pixel), ``fbp``, ``fbc``. Keys are percent-decoded (``cd%5Bvalue%5D`` is
``cd[value]``). Requests under ``/privacy_sandbox/`` are copies, not events, and are never hits. A
handful of hits per journey: parsed here in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TR_PATHS = ("/tr", "/tr/")


@dataclass
class Hit:
    """One Pixel event as the browser sent it. ``at`` is when it was seen (Unix seconds)."""

    pixel_id: str
    event_name: str
    event_id: str | None
    ts_ms: int | None
    url: str | None
    custom_data: dict[str, str] = field(default_factory=dict)
    user_data: dict[str, str] = field(default_factory=dict)
    fbp: str | None = None
    fbc: str | None = None
    at: float = 0.0
    method: str = "GET"
    params: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"pixel_id": self.pixel_id, "event_name": self.event_name, "event_id": self.event_id,
                "ts_ms": self.ts_ms, "url": self.url, "custom_data": dict(self.custom_data),
                "user_data": dict(self.user_data), "fbp": self.fbp, "fbc": self.fbc, "at": self.at,
                "method": self.method}


def is_pixel_path(url: str) -> bool:
    """Whether ``url``'s path is the Pixel endpoint (``/tr`` or ``/tr/``), whatever the host."""
    try:
        return urlsplit(url).path in TR_PATHS
    except ValueError:
        return False


def body_params(body: bytes | str | None, content_type: str | None) -> dict[str, str]:
    """The fields of a urlencoded or multipart body (empty for anything else)."""
    if not body:
        return {}
    raw = body.encode("utf-8") if isinstance(body, str) else body
    ctype = (content_type or "").lower()
    if "multipart/form-data" in ctype:
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + raw)
        out: dict[str, str] = {}
        for part in msg.iter_parts() if msg.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if name is None:
                continue
            payload = part.get_payload(decode=True) or b""
            out[str(name)] = payload.decode("utf-8", "replace")
        return out
    text = raw.decode("utf-8", "replace")
    if "x-www-form-urlencoded" in ctype or (not ctype and "=" in text and not text.lstrip().startswith("{")):
        return dict(parse_qsl(text, keep_blank_values=True))
    return {}


def parse_hit(url: str, *, body: bytes | str | None = None, content_type: str | None = None,
              method: str = "GET", at: float = 0.0) -> Hit | None:
    """The hit of one request, or ``None`` when it is not a Pixel event."""
    if not is_pixel_path(url):
        return None
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.update(body_params(body, content_type))
    return hit_from_params(params, method=method, at=at)


def hit_from_params(params: dict[str, str], *, method: str = "GET", at: float = 0.0) -> Hit | None:
    """The hit of already decoded parameters (``id``, ``ev``, ``cd[value]`` ...), or ``None``."""
    pixel, event = (params.get("id") or "").strip(), (params.get("ev") or "").strip()
    if not pixel or not event:
        return None
    cd = {k[3:-1]: v for k, v in params.items() if k.startswith("cd[") and k.endswith("]")}
    ud = {k[3:-1]: v for k, v in params.items() if k.startswith("ud[") and k.endswith("]")}
    ts = params.get("ts")
    try:
        ts_ms = int(float(ts)) if ts else None
    except ValueError:
        ts_ms = None
    return Hit(pixel_id=pixel, event_name=event, event_id=params.get("eid") or None, ts_ms=ts_ms,
               url=params.get("dl") or None, custom_data=cd, user_data=ud, fbp=params.get("fbp") or None,
               fbc=params.get("fbc") or None, at=at, method=method.upper(), params=dict(params))


class HitFilter:
    """Keeps the hits of one Pixel and counts the others (``ignored``)."""

    def __init__(self, pixel_id: str) -> None:
        self.pixel_id = str(pixel_id)
        self.ignored = 0

    def keep(self, hit: Hit | None) -> bool:
        if hit is None:
            return False
        if hit.pixel_id != self.pixel_id:
            self.ignored += 1
            return False
        return True
