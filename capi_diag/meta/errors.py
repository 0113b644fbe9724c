"""Graph API errors: the catalogue of codes Meta returns for ``/{pixel_id}/events`` and a typed error.

Meta answers a rejected Conversions API request with ``{"error": {"message", "type", "code",
"error_subcode", "error_user_title", "error_user_msg", "fbtrace_id", "is_transient"}}`` (docs/facts.md §5).
The code/subcode pair says what went wrong; the user title and message are localized to the
request's locale, so the catalogue, not Meta's text, is what tells the user what it means, how to
fix it, and whether retrying can help.

``kind`` classifies an entry:

* ``config``: the token or the Pixel ID is wrong (190, 102, 104, 100/33). Nothing sent can succeed;
  stop and fix the configuration (CLI exit status 2).
* ``permission``: the token lacks a permission (10, 200-299, 3, 368). Exit status 2.
* ``payload``: Meta rejected the events themselves (100 and its 2804xxx subcodes). Exit status 1.
* ``transient``: throttling, server trouble, timeouts (1, 2, 4, 17, 32, 341, 613, 5xx). Retried with
  backoff by the client; when retries run out, exit status 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from capi_diag.core.errors import EXIT_BAD_RESULT, EXIT_USAGE, CapiDiagError

Kind = Literal["config", "payload", "transient", "permission"]

RETRYABLE_CODES: frozenset[int] = frozenset({1, 2, 4, 17, 32, 341, 613})
"""Meta error codes worth retrying (docs/facts.md §5 retry policy); HTTP 5xx, timeouts and connection errors
are retried too. 100, 190, 10 and 200-299 never are."""


@dataclass(frozen=True)
class CatalogueEntry:
    """What one Graph API error means for a CAPI sender, and what to do about it."""

    code: int | None
    subcode: int | None
    title: str
    meaning: str
    fix: str
    retryable: bool
    kind: Kind


def _e(
    code: int | None, subcode: int | None, title: str, meaning: str, fix: str, kind: Kind
) -> CatalogueEntry:
    retryable = kind == "transient" and (code is None or code in RETRYABLE_CODES)
    return CatalogueEntry(code, subcode, title, meaning, fix, retryable, kind)


_PERMISSION_FIX = (
    "Give the token's system user (Business Settings > System users) access to the Pixel/dataset with "
    "'Manage' or 'Use events dataset', and generate the token with ads_management (or "
    "business_management) permission."
)
_TOKEN_FIX = (
    "Generate a new access token in Events Manager (Pixel > Settings > Conversions API > Generate access "
    "token) or for a system user, and set it in CAPI_ACCESS_TOKEN or .streamlit/secrets.toml."
)

CATALOGUE: tuple[CatalogueEntry, ...] = (
    _e(100, 2804003, "Event timestamp too old",
       "An event's event_time is more than 7 days before the send; Meta rejects the whole batch and "
       "processes none of its events.",
       "Send events within 7 days of when they happened (ideally within an hour), as Unix seconds, not "
       "milliseconds; drop or re-time stale events before batching.", "payload"),
    _e(100, 2804001, "Click ID incorrectly formatted",
       "An fbc value is not fb.<subdomainIndex>.<creationTime ms>.<fbclid>, often a _fbc cookie missing "
       "its fbclid segment.",
       "Build fbc as fb.1.<ms when the click was seen>.<fbclid exactly as in the URL>, or forward the _fbc "
       "cookie unchanged; omit fbc when there is no click ID.", "payload"),
    _e(100, 2804016, "User parameter not hashed",
       "A customer-information parameter (em, ph, fn, ln, ge, db, ct, st, zp, country) was sent in clear "
       "text; only client_ip_address, client_user_agent, fbc and fbp may be unhashed.",
       "Normalize each value by Meta's rules and send its SHA-256 lowercase hex digest (capi_diag.core.normalize"
       ".hash_value does both).", "payload"),
    _e(100, 2804019, "Server-side API parameter error",
       "A required parameter is missing or the body could not be read, e.g. \"$['data'][0]['event_time'] "
       "is required\" (also seen when the body was not valid JSON).",
       "Send a JSON body whose every event has event_name, event_time (Unix seconds), action_source and "
       "user_data; the message names the missing path.", "payload"),
    _e(100, 2804050, "Insufficient customer information",
       "An event has no customer-information parameters, or only a combination too broad to match (e.g. "
       "ge+ct+st+country, db+client_user_agent).",
       "Send more match keys on every event: em or ph, fbp/fbc, client_ip_address with client_user_agent, "
       "and external_id.", "payload"),
    _e(100, 2804007, "CAPI validation error (2804007)",
       "A Conversions API validation error whose exact meaning Meta does not document.",
       "Read error_user_title/error_user_msg in the response and check the event against the payload "
       "rules (required fields, hashing, fbc/fbp format).", "payload"),
    _e(100, 2804017, "CAPI validation error (2804017)",
       "A Conversions API validation error whose exact meaning Meta does not document.",
       "Read error_user_title/error_user_msg in the response and check the event against the payload "
       "rules.", "payload"),
    _e(100, 2804048, "CAPI validation error (2804048)",
       "A Conversions API validation error whose exact meaning Meta does not document.",
       "Read error_user_title/error_user_msg in the response and check the event against the payload "
       "rules.", "payload"),
    _e(100, 33, "Unknown Pixel or no access",
       "The Pixel (dataset) ID does not exist, or the token's user cannot use it.",
       "Check the Pixel ID in Events Manager (Data sources > your Pixel > Settings), then give the token's "
       "system user access to it: " + _PERMISSION_FIX[0].lower() + _PERMISSION_FIX[1:],
       "config"),
    _e(100, None, "Invalid parameter",
       "Meta rejected a parameter of the request (a validation error without a CAPI subcode).",
       "Read the error message, fix the named parameter and resend; the batch was not processed.",
       "payload"),
    _e(190, None, "Invalid or expired access token",
       "The access token is invalid, expired or cannot be parsed.", _TOKEN_FIX, "config"),
    _e(190, 458, "App not installed", "The user has not installed the app that owns the token.",
       _TOKEN_FIX, "config"),
    _e(190, 459, "User checkpointed", "The token's user must log in to Facebook to clear a checkpoint.",
       "Log in at facebook.com with the token's user, then " + _TOKEN_FIX[0].lower() + _TOKEN_FIX[1:],
       "config"),
    _e(190, 460, "Password changed", "The token was invalidated by a password change.", _TOKEN_FIX,
       "config"),
    _e(190, 463, "Access token expired", "The access token has expired.",
       "Use a system-user token (they do not expire) or " + _TOKEN_FIX[0].lower() + _TOKEN_FIX[1:],
       "config"),
    _e(190, 464, "Unconfirmed user", "The token's user has not confirmed their account.",
       "Confirm the Facebook account of the token's user, then " + _TOKEN_FIX[0].lower() + _TOKEN_FIX[1:],
       "config"),
    _e(190, 467, "Invalid access token", "The access token is invalid (logged out or revoked).",
       _TOKEN_FIX, "config"),
    _e(102, None, "API session expired", "The API session is invalid; treated like an expired token.",
       _TOKEN_FIX, "config"),
    _e(104, None, "Access token missing", "The request carried no access token.",
       "Set CAPI_ACCESS_TOKEN (or the token field); capi-diag sends it in the Authorization header.",
       "config"),
    _e(10, None, "Permission denied", "The token's app or user lacks permission for this action.",
       _PERMISSION_FIX, "permission"),
    _e(200, None, "Permission missing",
       "The token lacks a permission needed for this request (posting events, reading the Pixel or its quality "
       "figures; codes 200-299).",
       _PERMISSION_FIX, "permission"),
    _e(3, None, "Capability missing", "The app lacks the capability to call this API method.",
       "Use an app with the Conversions API (Marketing API) capability; " + _PERMISSION_FIX[0].lower()
       + _PERMISSION_FIX[1:], "permission"),
    _e(368, None, "Temporarily blocked for policy violations",
       "The account is temporarily blocked from this action for a policy violation.",
       "Check Business Support Home / Account Quality for the restriction; retrying will not help until it "
       "is lifted.", "permission"),
    _e(4, None, "Application request limit reached",
       "The app made too many calls (throttling).",
       "Wait and retry with backoff; spread sends out and batch up to 1,000 events per request.",
       "transient"),
    _e(17, None, "User request limit reached", "The token's user made too many calls (throttling).",
       "Wait and retry with backoff; send fewer, larger batches.", "transient"),
    _e(17, 2446079, "User request limit reached", "The token's user made too many calls (throttling).",
       "Wait and retry with backoff; send fewer, larger batches.", "transient"),
    _e(32, None, "Page request limit reached", "Too many calls for this Page (throttling).",
       "Wait and retry with backoff.", "transient"),
    _e(613, None, "Too many calls", "A rate limit was hit (for example too many calls from an ad account).",
       "Wait and retry with backoff; send fewer, larger batches.", "transient"),
    _e(613, 1487742, "Too many calls from this ad account",
       "The ad account made too many calls (throttling).", "Wait and retry with backoff.", "transient"),
    _e(341, None, "Application limit reached", "A temporary application limit was reached.",
       "Wait and retry with backoff.", "transient"),
    _e(1, None, "Unknown error", "Meta reported an unknown, possibly temporary error.",
       "Retry with backoff; if it persists, note the fbtrace_id and contact Meta support.", "transient"),
    _e(2, None, "Service temporarily unavailable", "Meta's service is temporarily unavailable.",
       "Retry with backoff.", "transient"),
)
"""Every documented error a CAPI sender can meet (docs/facts.md §5 table)."""

HTTP_5XX = _e(None, None, "Meta server error",
              "Graph API answered with an HTTP 5xx status: a problem on Meta's side.",
              "Retry with backoff; if it persists, check https://metastatus.com and note the fbtrace_id.",
              "transient")
TIMEOUT = _e(None, None, "Request timed out",
             "No answer from the Graph API within the timeout.",
             "Retry; if it keeps happening check the network path to graph.facebook.com or raise "
             "GraphConfig.timeout_s.", "transient")
CONNECTION = _e(None, None, "Connection failed",
                "The Graph API could not be reached (DNS, TLS or connection refused/reset).",
                "Check the network, proxy settings and the configured Graph URL (CAPI_GRAPH_URL).",
                "transient")
UNEXPECTED = CatalogueEntry(None, None, "Unexpected response",
                            "The Graph API answered with something that is not a Graph API JSON body.",
                            "Check the configured Graph URL (CAPI_GRAPH_URL, --graph-url): it should be "
                            "https://graph.facebook.com or a stand-in that answers like it.",
                            False, "config")
RATE_LIMIT_BUC = CatalogueEntry(None, None, "Business use case rate limit",
                                "A business-use-case rate limit (codes 80000-80014) was reached; it resets "
                                "after minutes, so an immediate retry cannot succeed.",
                                "Wait until the limit resets (see the X-Business-Use-Case-Usage header, "
                                "estimated_time_to_regain_access) before sending again.", False, "transient")

_BY_KEY: dict[tuple[int | None, int | None], CatalogueEntry] = {(e.code, e.subcode): e for e in CATALOGUE}


def _unknown(code: int | None, http_status: int | None) -> CatalogueEntry:
    return CatalogueEntry(code, None, f"Graph API error {code}",
                          "An error code capi-diag's catalogue does not describe.",
                          "Read the error message and error_user_msg; search the code in Meta's error "
                          "reference (developers.facebook.com/docs/graph-api/guides/error-handling).",
                          False, "payload" if http_status is None or http_status < 500 else "transient")


def lookup(code: int | None, subcode: int | None, http_status: int | None = None) -> CatalogueEntry:
    """The catalogue entry for a Graph error: exact code+subcode, then the code alone, then the code
    family (200-299, 80000-80014), then the HTTP status (5xx, 401); never raises."""
    if code is not None:
        if (code, subcode) in _BY_KEY:
            return _BY_KEY[(code, subcode)]
        if (code, None) in _BY_KEY:
            return _BY_KEY[(code, None)]
        if 200 <= code <= 299:
            return _BY_KEY[(200, None)]
        if 80000 <= code <= 80014:
            return RATE_LIMIT_BUC
    if http_status is not None and http_status >= 500:
        return HTTP_5XX
    if code is None and http_status == 401:
        return _BY_KEY[(190, None)]
    if code is None:
        return UNEXPECTED
    return _unknown(code, http_status)


class GraphAPIError(CapiDiagError):
    """Meta (or the network on the way to it) refused a send. Carries Meta's fields (``message`` is
    Meta's own message; ``str()`` is the full line: code, endpoint, what Meta said, meaning, fix,
    fbtrace_id) and the catalogue entry. ``exit_code`` is 2 for configuration and permission errors,
    1 otherwise. The client scrubs the access token from every field before building one, so
    ``str()`` and ``repr()`` never hold it."""

    def __init__(
        self,
        *,
        http_status: int | None,
        code: int | None,
        error_subcode: int | None = None,
        type: str | None = None,  # noqa: A002 - Meta's field name
        message: str = "",
        user_title: str | None = None,
        user_msg: str | None = None,
        fbtrace_id: str | None = None,
        is_transient: bool | None = None,
        endpoint: str | None = None,
        entry: CatalogueEntry | None = None,
        method: str = "POST",
    ) -> None:
        self.http_status = http_status
        self.method = method
        self.code = code
        self.error_subcode = error_subcode
        self.type = type
        self.meta_message = message
        self.user_title = user_title
        self.user_msg = user_msg
        self.fbtrace_id = fbtrace_id
        self.is_transient = is_transient
        self.endpoint = endpoint
        self.entry = entry if entry is not None else lookup(code, error_subcode, http_status)
        text = self._compose()
        super().__init__(text, title=self.entry.title)
        self._text = text
        self.message = message  # Meta's own ``message`` field; str(self) is the full explanation

    def __str__(self) -> str:
        return self._text

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return EXIT_USAGE if self.entry.kind in ("config", "permission") else EXIT_BAD_RESULT

    @property
    def retryable(self) -> bool:
        return self.entry.retryable

    @property
    def fix(self) -> str:
        return self.entry.fix

    def _compose(self) -> str:
        ident = "Graph API"
        if self.code is not None:
            ident += f" error {self.code}" + (f"/{self.error_subcode}" if self.error_subcode else "")
        if self.http_status is not None:
            ident += f" (HTTP {self.http_status})"
        where = f" from {self.method} {self.endpoint}" if self.endpoint else ""
        said = self.user_msg or self.meta_message
        said_part = f": {said}" if said else ""
        trace = f" [fbtrace_id {self.fbtrace_id}]" if self.fbtrace_id else ""
        return f"{ident}{where}{said_part}. {self.entry.meaning} Fix: {self.entry.fix}{trace}"

    def __repr__(self) -> str:
        return (f"GraphAPIError(http_status={self.http_status!r}, code={self.code!r}, "
                f"error_subcode={self.error_subcode!r}, kind={self.entry.kind!r}, "
                f"fbtrace_id={self.fbtrace_id!r})")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for send histories and reports (holds no token)."""
        return {
            "http_status": self.http_status, "code": self.code, "error_subcode": self.error_subcode,
            "type": self.type, "message": self.meta_message, "user_title": self.user_title,
            "user_msg": self.user_msg, "fbtrace_id": self.fbtrace_id, "title": self.entry.title,
            "meaning": self.entry.meaning, "fix": self.entry.fix, "retryable": self.entry.retryable,
            "kind": self.entry.kind,
        }


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _text(value: Any, redact: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    text = str(value)
    for secret in redact:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def parse_error(
    http_status: int | None,
    body: Any,
    *,
    endpoint: str | None = None,
    redact: tuple[str, ...] = (),
    method: str = "POST",
) -> GraphAPIError:
    """A :class:`GraphAPIError` from an HTTP status and a decoded JSON body (pure; any body shape).

    Every string taken from the body has each of ``redact`` replaced by ``[redacted]``, so an echoed
    token cannot reach a message, a log or the database.
    """
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return GraphAPIError(http_status=http_status, code=None, endpoint=endpoint, method=method,
                             message=_text(f"HTTP {http_status} without a Graph error body", redact) or "")
    transient = err.get("is_transient")
    return GraphAPIError(
        http_status=http_status,
        code=_int_or_none(err.get("code")),
        error_subcode=_int_or_none(err.get("error_subcode")),
        type=_text(err.get("type"), redact),
        message=_text(err.get("message"), redact) or "",
        user_title=_text(err.get("error_user_title"), redact),
        user_msg=_text(err.get("error_user_msg"), redact),
        fbtrace_id=_text(err.get("fbtrace_id"), redact),
        is_transient=transient if isinstance(transient, bool) else None,
        endpoint=endpoint,
        method=method,
    )
