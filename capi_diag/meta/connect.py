"""The connect check: does the token work for this Pixel, and which Pixel is it?

Before any live traffic the analyst must know two things: that Meta accepts the token for the Pixel,
and that the Pixel is the production one, not an agency sandbox. One read answers both:
``GET {graph_url}/{version}/{pixel_id}?fields=id,name,last_fired_time,is_unavailable`` with the token
in the ``Authorization`` header only (docs/facts.md §5). On success the result carries the Pixel's name and id
(``Connected to Pixel <name> (<id>)``), when it last fired and whether Meta marks it unavailable. On a
refusal it carries the error catalogue's meaning and fix: 190 with its subcode (token invalid,
expired...), 100/33 (wrong Pixel ID, or the token's system user lacks the asset), 10 and 200-299
(missing permission).

Building the request and reading the answer are pure (:func:`connect_params`, :func:`parse_pixel`);
:func:`check_connection` runs them through an injected :class:`~capi_diag.meta.client.GraphClient`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from capi_diag.core.errors import UsageError
from capi_diag.meta.client import Attempt, GraphClient
from capi_diag.meta.errors import GraphAPIError

FIELDS: tuple[str, ...] = ("id", "name", "last_fired_time", "is_unavailable")
"""The Pixel (AdsPixel) fields the check reads."""


@dataclass(frozen=True)
class PixelInfo:
    """What Meta says about the Pixel. ``last_fired_time`` is Meta's text (ISO 8601, e.g.
    ``2026-11-30T04:10:00+0000``), ``None`` when the Pixel never fired."""

    id: str
    name: str | None
    last_fired_time: str | None = None
    is_unavailable: bool | None = None


@dataclass
class ConnectResult:
    """The outcome of the connect check. ``connected`` means Meta accepted the token for the Pixel;
    ``refused`` means Meta refused the token, the Pixel or a permission (nothing can be sent until
    that is fixed); anything else that failed (timeouts, 5xx after retries) is neither."""

    pixel_id: str
    pixel: PixelInfo | None = None
    error: GraphAPIError | None = None
    attempts: list[Attempt] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        return self.pixel is not None and self.error is None

    @property
    def refused(self) -> bool:
        return self.error is not None and self.error.entry.kind in ("config", "permission")

    @property
    def headline(self) -> str:
        """``Connected to Pixel <name> (<id>)``, or what went wrong, in one line."""
        if self.pixel is not None:
            return f"Connected to Pixel {self.pixel.name or '(no name)'} ({self.pixel.id})"
        if self.error is not None:
            return f"Not connected to Pixel {self.pixel_id}: {self.error.entry.title}"
        return f"Not connected to Pixel {self.pixel_id}"

    @property
    def fix(self) -> str | None:
        return self.error.fix if self.error is not None else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (holds no token)."""
        return {
            "pixel_id": self.pixel_id, "connected": self.connected, "refused": self.refused,
            "headline": self.headline,
            "pixel": vars(self.pixel).copy() if self.pixel is not None else None,
            "error": self.error.as_dict() if self.error is not None else None,
            "attempts": [vars(a).copy() for a in self.attempts], "findings": list(self.findings),
        }


def check_pixel_id(pixel_id: str) -> str:
    """The Pixel ID, trimmed, or :class:`UsageError` when it is not a number (nothing is sent then)."""
    pixel = str(pixel_id).strip()
    if not pixel.isdigit():
        raise UsageError(f"Pixel ID {pixel!r} is not a number; copy the Pixel (dataset) ID from Events "
                         "Manager > Data sources.")
    return pixel


def connect_params() -> dict[str, str]:
    """The query of the check: the fields only (the token never goes in a URL)."""
    return {"fields": ",".join(FIELDS)}


def parse_pixel(pixel_id: str, body: dict[str, Any]) -> tuple[PixelInfo, list[str]]:
    """The :class:`PixelInfo` in Meta's answer and findings about it (pure)."""
    findings: list[str] = []
    got_id = body.get("id")
    shown_id = str(got_id) if got_id is not None else pixel_id
    if got_id is None:
        findings.append(f"Meta's answer has no id; assuming it describes Pixel {pixel_id}.")
    elif shown_id != pixel_id:
        findings.append(f"Meta answered for object {shown_id}, not Pixel {pixel_id}: check the Pixel ID.")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        findings.append("Meta's answer has no Pixel name; compare the id with Events Manager instead.")
        name = None
    fired = body.get("last_fired_time")
    fired_text = str(fired) if fired not in (None, "") else None
    unavailable = body.get("is_unavailable")
    unavailable_flag = unavailable if isinstance(unavailable, bool) else None
    if unavailable_flag:
        findings.append("Meta marks this Pixel as unavailable (is_unavailable): events sent to it may not be "
                        "processed; check the Pixel's status in Events Manager or use another Pixel.")
    if fired_text is None:
        findings.append("Meta has no last_fired_time for this Pixel: it has received no events yet. Expected "
                        "before launch; if this should be the live production Pixel, check the ID in the "
                        "site's tag.")
    return PixelInfo(shown_id, name, fired_text, unavailable_flag), findings


def check_connection(client: GraphClient, pixel_id: str) -> ConnectResult:
    """Read the Pixel with ``client``'s token: the Pixel's name and id, or Meta's refusal explained."""
    pixel = check_pixel_id(pixel_id)
    got = client.get(pixel, connect_params())
    if not got.ok or got.body is None:
        return ConnectResult(pixel, error=got.error, attempts=got.attempts, findings=list(got.findings))
    info, findings = parse_pixel(pixel, got.body)
    return ConnectResult(pixel, pixel=info, attempts=got.attempts, findings=[*got.findings, *findings])


def format_connect(result: ConnectResult, *, graph: str, token_source: str) -> list[str]:
    """The lines ``connect`` prints on success (a refusal is one line on stderr instead)."""
    lines = [result.headline]
    if result.pixel is not None:
        p = result.pixel
        lines.append(f"  name: {p.name or '(no name)'}")
        lines.append(f"  id: {p.id}")
        lines.append(f"  last fired: {p.last_fired_time or 'never'}")
        if p.is_unavailable is not None:
            lines.append(f"  unavailable: {'yes' if p.is_unavailable else 'no'}")
    elif result.error is not None:
        e = result.error
        code = f" {e.code}" + (f"/{e.error_subcode}" if e.error_subcode else "") if e.code is not None else ""
        lines.append(f"  error{code}: {e.entry.meaning}")
        lines.append(f"  fix: {e.fix}")
    lines.append(f"  via {graph}; token from {token_source}")
    for finding in result.findings:
        lines.append(f"  note: {finding}")
    return lines
