"""Building Conversions API payloads: a complete five-step test journey and the request body.

A test journey is what a real shopper's visit produces on the server side: ``PageView``,
``ViewContent``, ``AddToCart``, ``InitiateCheckout``, ``Purchase``, sharing one browser ID (``fbp``,
in the documented ``fb.1.<ms>.<random>`` format), optionally one click ID (``fbc`` built from a
given ``fbclid``), each with its own ``event_id`` (the dedup key), ``event_time`` = now in seconds,
``action_source`` ``website``, the page URL, the browser's user agent and IP, and a test identity
normalized and hashed by :mod:`capi_diag.core.normalize`. Cart, checkout and purchase carry ``value``,
``currency`` and ``contents``. Everything random comes from an injected ``random.Random`` and the
time from ``now=``, so a journey is reproducible in tests.

Building is pure: no network, no clock. Sending is :mod:`capi_diag.meta.client`.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, fields
from typing import Any

from capi_diag.core.errors import CapiDiagError
from capi_diag.core.normalize import explain_invalid, hash_value, normalize

MAX_EVENTS = 1000
"""Meta's cap on events in one request's ``data`` (docs/facts.md §2)."""

JOURNEY_STEPS: tuple[str, ...] = ("PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase")

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
"""A real desktop Chrome user agent (Meta requires ``client_user_agent`` on website events)."""

DEFAULT_IP = "2001:db8::1"
"""An IPv6 address from the documentation range (RFC 3849); Meta prefers IPv6 to IPv4."""

_FBCLID_RE = re.compile(r"\A[A-Za-z0-9_\-]+\Z")
_TEST_CODE_RE = re.compile(r"\A[A-Za-z0-9_\-]{1,64}\Z")

#: identity attribute -> Meta ``user_data`` key
_IDENTITY_KEYS: dict[str, str] = {
    "email": "em", "phone": "ph", "first_name": "fn", "last_name": "ln", "city": "ct", "state": "st",
    "zip": "zp", "country": "country", "external_id": "external_id",
}


class PayloadError(CapiDiagError):
    """A journey or request body cannot be built from the given input."""

    title = "Invalid test payload"


@dataclass(frozen=True)
class TestIdentity:
    """The shopper a test journey is sent for, in clear text (it is normalized and hashed when the
    journey is built; nothing here is sent unhashed).

    The default is a fictitious US shopper: an ``example.com`` address (a domain reserved for
    documentation, RFC 2606), a 555-01xx phone number (reserved for fiction), Menlo Park, CA. Meta
    advises sending your *own* identity in test events if you want them matched (docs/facts.md §6), so
    override it for match-quality tests.
    """

    __test__ = False  # not a pytest test class despite the name

    email: str = "capi-diag.test@example.com"
    phone: str = "+1 650 555 0123"
    first_name: str = "Mary"
    last_name: str = "Smith"
    city: str = "Menlo Park"
    zip: str = "94025"
    country: str = "US"
    state: str | None = "CA"
    external_id: str | None = "capi-diag-test-user-1"


def new_fbp(now_ms: int, rng: random.Random) -> str:
    """A browser ID in the documented format ``fb.1.<creation time ms>.<random number>`` (docs/facts.md §4.4);
    subdomain index ``1`` as Meta advises for values generated server-side. The random part is a
    10-digit number like the Pixel's."""
    if now_ms < 10**12 or now_ms >= 10**13:
        raise PayloadError(f"new_fbp: now_ms={now_ms} is not a 13-digit Unix time in milliseconds.")
    return f"fb.1.{now_ms}.{rng.randrange(10**9, 2**31 - 1)}"


def fbc_from_fbclid(fbclid: str, now_ms: int) -> str:
    """A click ID ``fb.1.<ms when the click was seen>.<fbclid>`` (docs/facts.md §4.4). The fbclid is case
    sensitive and is kept exactly as given; one with characters outside ``A-Za-z0-9_-`` is refused
    rather than altered."""
    if not isinstance(fbclid, str) or not _FBCLID_RE.match(fbclid):
        raise PayloadError(
            f"fbclid {fbclid!r} is not a click ID (letters, digits, '_' and '-' only); copy the fbclid "
            "query parameter exactly as it appears in the landing URL."
        )
    if now_ms < 10**12 or now_ms >= 10**13:
        raise PayloadError(f"fbc_from_fbclid: now_ms={now_ms} is not a 13-digit Unix time in milliseconds.")
    return f"fb.1.{now_ms}.{fbclid}"


def identity_user_data(identity: TestIdentity, *, region: str | None = None) -> dict[str, list[str]]:
    """The identity's hashed ``user_data`` keys, each as a one-element list (Meta's examples send
    arrays). ``region`` defaults to the identity's country. An invalid value is a
    :class:`PayloadError` naming the attribute and the reason."""
    use_region = region or _region_of(identity.country)
    out: dict[str, list[str]] = {}
    for f in fields(identity):
        raw = getattr(identity, f.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        key = _IDENTITY_KEYS[f.name]
        hashed = hash_value(key, raw, region=use_region)
        if hashed is None:
            why = explain_invalid(key, raw, region=use_region)
            raise PayloadError(f"test identity {f.name}={raw!r} cannot be used as {key}: {why}.")
        out[key] = [hashed]
    return out


def _region_of(country: str | None) -> str | None:
    code = normalize("country", country)
    return code.upper() if code else None


def _event_id(rng: random.Random, step: str) -> str:
    return f"capi-diag-{step.lower()}-{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def build_journey(
    *,
    now: int,
    identity: TestIdentity | None = None,
    fbclid: str | None = None,
    event_source_url: str = "https://www.example.com/",
    client_ip_address: str = DEFAULT_IP,
    client_user_agent: str = DEFAULT_USER_AGENT,
    value: float = 49.90,
    currency: str = "USD",
    region: str | None = None,
    rng: random.Random | None = None,
    content_id: str = "capi-diag-sku-1",
    quantity: int = 1,
) -> list[dict[str, Any]]:
    """The five events of one test journey (``JOURNEY_STEPS``), as CAPI event dicts.

    ``now`` is the send time in Unix seconds (every event gets it as ``event_time``). ``value`` is
    the cart total; ``contents`` has one item ``content_id`` x ``quantity`` at ``value / quantity``.
    The Purchase carries an ``order_id`` derived from its ``event_id``.
    """
    if isinstance(now, bool) or not isinstance(now, int) or not 10**9 <= now < 10**10:
        raise PayloadError(f"build_journey: now={now!r} must be Unix time in whole seconds (10 digits).")
    if not isinstance(value, (int, float)) or value < 0:
        raise PayloadError(f"build_journey: value={value!r} must be a non-negative amount.")
    if quantity < 1:
        raise PayloadError(f"build_journey: quantity={quantity!r} must be at least 1.")
    if not re.fullmatch(r"[A-Za-z]{3}", currency or ""):
        raise PayloadError(f"build_journey: currency={currency!r} is not an ISO 4217 code such as USD.")
    if not event_source_url.startswith(("https://", "http://")):
        raise PayloadError(f"build_journey: event_source_url={event_source_url!r} must be an http(s) URL.")
    rng = rng if rng is not None else random.Random()
    identity = identity if identity is not None else TestIdentity()
    now_ms = now * 1000
    user = identity_user_data(identity, region=region)
    user["client_ip_address"] = client_ip_address  # type: ignore[assignment]
    user["client_user_agent"] = client_user_agent  # type: ignore[assignment]
    user["fbp"] = new_fbp(now_ms, rng)  # type: ignore[assignment]
    if fbclid is not None:
        user["fbc"] = fbc_from_fbclid(fbclid, now_ms)  # type: ignore[assignment]
    amount = round(float(value), 2)
    item = {"id": content_id, "quantity": quantity, "item_price": round(amount / quantity, 2)}
    events: list[dict[str, Any]] = []
    for step in JOURNEY_STEPS:
        event: dict[str, Any] = {
            "event_name": step,
            "event_time": now,
            "event_id": _event_id(rng, step),
            "action_source": "website",
            "event_source_url": event_source_url,
            "user_data": {k: (list(v) if isinstance(v, list) else v) for k, v in user.items()},
        }
        if step == "ViewContent":
            event["custom_data"] = {"content_ids": [content_id], "content_type": "product"}
        elif step in ("AddToCart", "InitiateCheckout", "Purchase"):
            custom: dict[str, Any] = {
                "value": amount, "currency": currency.upper(), "content_ids": [content_id],
                "content_type": "product", "contents": [dict(item)],
            }
            if step == "InitiateCheckout":
                custom["num_items"] = quantity
            if step == "Purchase":
                custom["order_id"] = "order-" + event["event_id"].rsplit("-", 1)[-1]
            event["custom_data"] = custom
        events.append(event)
    return events


def request_body(events: list[dict[str, Any]], test_event_code: str | None) -> dict[str, Any]:
    """The JSON body Meta expects: ``{"data": events, "test_event_code": code}`` (the code omitted
    when ``None``). Never contains the access token: that goes in the Authorization header.

    Refuses an empty list and more than :data:`MAX_EVENTS` events (Meta rejects the batch), and a
    test code that is not the short token Events Manager shows (``TEST12345``).
    """
    if not isinstance(events, list) or not events:
        raise PayloadError("request body: no events to send; build at least one event.")
    if len(events) > MAX_EVENTS:
        raise PayloadError(
            f"request body: {len(events)} events exceed Meta's limit of {MAX_EVENTS} per request; "
            "split them into batches of at most 1,000."
        )
    body: dict[str, Any] = {"data": events}
    if test_event_code is not None:
        code = test_event_code.strip()
        if not _TEST_CODE_RE.match(code):
            raise PayloadError(
                f"test_event_code {test_event_code!r} is not a Test Events code; copy it from Events Manager "
                "> your Pixel > Test Events (it looks like TEST12345)."
            )
        body["test_event_code"] = code
    return body
