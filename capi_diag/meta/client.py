"""The Graph API client for ``POST /{version}/{pixel_id}/events`` (and, with :meth:`GraphClient.get`, the
``GET`` reads of the connect check and the Dataset Quality API).

One :meth:`GraphClient.send` posts a batch of events as JSON (``{"data": [...], "test_event_code":
...}``) with the access token in the ``Authorization: Bearer`` header, **never** in the URL or the
body, so a stored request, a log line or a send history cannot hold it. The answer becomes a
:class:`SendResult`: how many events Meta says it received (a mismatch with the number sent is a
finding), Meta's ``messages`` (warnings inside a 200), the ``fbtrace_id`` to quote to Meta support,
and, when Meta refused, a typed :class:`~capi_diag.meta.errors.GraphAPIError` with the catalogue's
meaning and fix. Meta's refusals are *returned*, not raised: they are results of the send.

Transient failures (codes 1, 2, 4, 17, 32, 341, 613, HTTP 5xx, timeouts, connection errors) are
retried with exponential backoff and jitter, up to ``max_retries`` times; validation (100), token
(190) and permission (10, 200-299) errors never are, since resending cannot change the answer.
Every attempt is recorded. A retried send can reach Meta twice if the first answer was lost; the
events carry ``event_id``, which Meta uses to drop the duplicate.

Test seams: an injected ``httpx.Client`` (e.g. with ``httpx.MockTransport``), ``sleep``, ``rng`` and
``clock``. Request building and response parsing are pure functions.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from capi_diag.core.errors import ConfigError
from capi_diag.meta.errors import (
    CONNECTION,
    RETRYABLE_CODES,
    TIMEOUT,
    UNEXPECTED,
    GraphAPIError,
    parse_error,
)
from capi_diag.meta.payload import MAX_EVENTS, PayloadError, request_body

__all__ = [
    "DEFAULT_API_VERSION", "DEFAULT_GRAPH_URL", "MAX_EVENTS", "Attempt", "GetResult", "GraphClient", "GraphConfig",
    "SendResult", "build_get", "build_request", "events_url", "object_url", "parse_get", "parse_response",
]

DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v26.0"
USER_AGENT = "capi-diag (Conversions API diagnostics)"

_VERSION_RE = re.compile(r"\Av\d{1,3}\.\d{1,2}\Z")
_PIXEL_RE = re.compile(r"\A\d{1,32}\Z")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_NEVER_RETRY = frozenset({100, 102, 104, 190, 10, 3, 368})
MAX_ANSWER_BYTES = 1_000_000
"""Meta's answers are a few hundred bytes; a larger one is not the Graph API and is cut off here."""


@dataclass(frozen=True)
class GraphConfig:
    """Where and how to send. Only configuration (``CAPI_GRAPH_URL``, ``--graph-url``) may change the
    Graph URL, never a web page, so the app cannot be used to send a token elsewhere.

    ``timeout_s`` is the read/write timeout for one attempt and ``connect_timeout_s`` the connect
    timeout (Meta: most answers take under 600 ms; it advises a 1.5 s timeout for production traffic;
    this tool's default is more patient because it is run from laptops and CI). Backoff before retry
    ``n`` (1-based) is ``min(backoff_max_s, backoff_base_s * 2**(n-1))``, of which a random half is
    kept as jitter (so waits for 1 s base are 0.5-1 s, 1-2 s, 2-4 s ...).
    """

    graph_url: str = DEFAULT_GRAPH_URL
    api_version: str = DEFAULT_API_VERSION
    timeout_s: float = 10.0
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 5.0
    deadline_s: float = 30.0
    """The longest one attempt may take, from sending to the last byte of the answer: ``timeout_s``
    bounds each read, so an answer dripped a byte at a time would otherwise never time out."""

    def __post_init__(self) -> None:
        url = self.graph_url.rstrip("/")
        object.__setattr__(self, "graph_url", url)
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(f"Graph URL {self.graph_url!r} is not an http(s) URL; use "
                              f"{DEFAULT_GRAPH_URL} (CAPI_GRAPH_URL / --graph-url).")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ConfigError("Graph URL must not contain credentials, a query or a fragment; give just "
                              f"the scheme and host, e.g. {DEFAULT_GRAPH_URL}.")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ConfigError(f"Graph URL {url!r} uses plain http to a non-local host, which would send the "
                              "access token unencrypted; use https (plain http is allowed for 127.0.0.1 "
                              "only).")
        if not _VERSION_RE.match(self.api_version):
            raise ConfigError(f"API version {self.api_version!r} is not like {DEFAULT_API_VERSION}; pass "
                              "--api-version vNN.N.")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0 or self.deadline_s <= 0:
            raise ConfigError("Graph timeouts must be positive seconds.")
        if self.max_retries < 0 or self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ConfigError("max_retries and backoff times must not be negative.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> GraphConfig:
        """Config from ``CAPI_GRAPH_URL`` and ``CAPI_API_VERSION`` (when set), then ``overrides``
        whose value is not ``None`` (command-line options)."""
        values: dict[str, Any] = {}
        if environ.get("CAPI_GRAPH_URL"):
            values["graph_url"] = environ["CAPI_GRAPH_URL"]
        if environ.get("CAPI_API_VERSION"):
            values["api_version"] = environ["CAPI_API_VERSION"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)


@dataclass
class Attempt:
    """One HTTP attempt of a send. ``outcome`` is ``ok``, ``retry`` (failed, another attempt follows
    after ``wait_s``) or ``error`` (failed, final)."""

    number: int
    at: float
    status_code: int | None
    error_code: int | None
    error_subcode: int | None
    outcome: str
    wait_s: float = 0.0
    detail: str = ""


@dataclass
class SendResult:
    """The outcome of one send. ``ok`` means Meta accepted the request (HTTP 2xx with a Graph body);
    it does not by itself mean the send was clean: check ``findings`` (e.g. fewer events received
    than sent) and ``messages`` (Meta's warnings)."""

    ok: bool
    events_sent: int
    events_received: int | None = None
    messages: list[str] = field(default_factory=list)
    fbtrace_id: str | None = None
    error: GraphAPIError | None = None
    attempts: list[Attempt] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Meta's ``messages``: shown to the user as warnings."""
        return self.messages

    @property
    def clean(self) -> bool:
        """Accepted, every event received, no warnings and no findings."""
        received_all = self.events_received == self.events_sent
        return self.ok and received_all and not self.messages and not self.findings

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for histories and reports (holds no token)."""
        return {
            "ok": self.ok, "events_sent": self.events_sent, "events_received": self.events_received,
            "messages": list(self.messages), "fbtrace_id": self.fbtrace_id,
            "error": self.error.as_dict() if self.error else None,
            "attempts": [vars(a).copy() for a in self.attempts], "findings": list(self.findings),
        }


def events_url(config: GraphConfig, pixel_id: str) -> str:
    """``{graph_url}/{version}/{pixel_id}/events``."""
    return f"{config.graph_url}/{config.api_version}/{quote(pixel_id, safe='')}/events"


def build_request(
    config: GraphConfig, token: str, pixel_id: str, events: list[dict[str, Any]], test_event_code: str | None
) -> httpx.Request:
    """The POST request for one send (pure). The token is in the Authorization header only."""
    body = request_body(events, test_event_code)
    return httpx.Request(
        "POST",
        events_url(config, pixel_id),
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
        # explicit per request, so the configured timeouts hold even with an injected httpx.Client
        extensions={"timeout": config.timeout.as_dict()},
    )


def _messages(raw: Any) -> list[str]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        out.append(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, sort_keys=True))
    return out


def parse_response(
    status: int, body: Any, events_sent: int, *, endpoint: str | None = None, redact: tuple[str, ...] = ()
) -> SendResult:
    """A :class:`SendResult` (without attempts) from an HTTP status and decoded JSON body (pure).

    A 2xx with a Graph success body is accepted; a missing ``messages`` key means none (some Graph
    answers omit it). ``events_received`` different from ``events_sent`` is a finding.
    """
    if 200 <= status < 300 and isinstance(body, dict) and "error" not in body:
        received = body.get("events_received")
        received_n = received if isinstance(received, int) and not isinstance(received, bool) else None
        msgs = [_scrub(m, redact) for m in _messages(body.get("messages"))]
        trace = body.get("fbtrace_id")
        result = SendResult(ok=True, events_sent=events_sent, events_received=received_n, messages=msgs,
                            fbtrace_id=_scrub(str(trace), redact) if trace is not None else None)
        if received_n is None:
            result.findings.append(
                f"Meta's answer has no events_received count (got {received!r}); cannot confirm that the "
                f"{events_sent} events were received."
            )
        elif received_n != events_sent:
            result.findings.append(
                f"Meta received {received_n} of {events_sent} events sent; the others were dropped. Check "
                "each event against the payload rules and Meta's messages."
            )
        return result
    error = parse_error(status, body, endpoint=endpoint, redact=redact)
    if 200 <= status < 300 and error.code is None:
        error = GraphAPIError(http_status=status, code=None, endpoint=endpoint, entry=UNEXPECTED,
                              message="HTTP 2xx without a Graph API body")
    return SendResult(ok=False, events_sent=events_sent, error=error, fbtrace_id=error.fbtrace_id)


@dataclass
class GetResult:
    """The outcome of one ``GET`` (the connect check, the Dataset Quality API): Meta's decoded JSON
    object when ``ok``, else a typed error with the catalogue's meaning and fix. Holds no token."""

    ok: bool
    body: dict[str, Any] | None = None
    error: GraphAPIError | None = None
    attempts: list[Attempt] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


def object_url(config: GraphConfig, path: str) -> str:
    """``{graph_url}/{version}/{path}`` for a Graph object or edge (``1234567890``, ``dataset_quality``);
    every path segment is percent-encoded."""
    segments = [quote(part, safe="") for part in path.strip("/").split("/")]
    return f"{config.graph_url}/{config.api_version}/" + "/".join(segments)


def build_get(config: GraphConfig, token: str, path: str, params: Mapping[str, str]) -> httpx.Request:
    """The GET request for a Graph object or edge (pure). The token is in the Authorization header
    only; ``params`` (e.g. ``fields``) go in the query string, so they must never hold it."""
    return httpx.Request(
        "GET",
        object_url(config, path),
        params=dict(params),
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
        extensions={"timeout": config.timeout.as_dict()},
    )


def parse_get(
    status: int, body: Any, *, endpoint: str | None = None, redact: tuple[str, ...] = ()
) -> GetResult:
    """A :class:`GetResult` (without attempts) from an HTTP status and decoded JSON body (pure):
    a 2xx JSON object without ``error`` is Meta's answer; anything else is a typed error."""
    if 200 <= status < 300 and isinstance(body, dict) and "error" not in body:
        return GetResult(ok=True, body=body)
    error = parse_error(status, body, endpoint=endpoint, redact=redact, method="GET")
    if 200 <= status < 300 and error.code is None:
        error = GraphAPIError(http_status=status, code=None, endpoint=endpoint, entry=UNEXPECTED, method="GET",
                              message="HTTP 2xx without a Graph API JSON object")
    return GetResult(ok=False, error=error)


def _scrub(text: str, redact: tuple[str, ...]) -> str:
    for secret in redact:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _should_retry(status: int | None, error: GraphAPIError | None) -> bool:
    """Retry transient Meta codes, HTTP 5xx, timeouts and connection errors; never 100, 190, 10, 200-299."""
    if error is None:
        return False
    code = error.code
    if code is None:  # no Graph error body: a timeout, a connection error, a bare 5xx
        return error.entry.retryable or (status is not None and status >= 500)
    if code in _NEVER_RETRY or 200 <= code <= 299:
        return False
    return code in RETRYABLE_CODES or (status is not None and status >= 500)


_Result = TypeVar("_Result", SendResult, GetResult)


class GraphClient:
    """Sends events to one Graph API host. Create once, call :meth:`send` many times, then
    :meth:`close` (or use it as a context manager). ``repr()`` never shows the token."""

    def __init__(
        self,
        token: str,
        *,
        config: GraphConfig | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        token = (token or "").strip()
        if not token:
            raise ConfigError("No Conversions API access token: set CAPI_ACCESS_TOKEN, add it to "
                              ".streamlit/secrets.toml, or enter it in the token field.")
        if any(ch.isspace() or not ch.isprintable() for ch in token):
            raise ConfigError("The access token contains spaces or control characters; paste it again "
                              "exactly as Events Manager shows it.")
        self._token = token
        self.config = config if config is not None else GraphConfig()
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client(
            timeout=self.config.timeout, follow_redirects=False
        )
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock

    def __repr__(self) -> str:
        return f"GraphClient(graph_url={self.config.graph_url!r}, api_version={self.config.api_version!r})"

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_http:
            self._http.close()

    def backoff(self, retry_number: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based): exponential, capped, with jitter;
        at least Meta's ``Retry-After`` when it sent one (still capped at ``backoff_max_s``)."""
        cfg = self.config
        cap = min(cfg.backoff_max_s, cfg.backoff_base_s * (2 ** (retry_number - 1)))
        wait = cap / 2 + self._rng.uniform(0, cap / 2)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, cfg.backoff_max_s))
        return round(wait, 3)

    def send(
        self, pixel_id: str, events: list[dict[str, Any]], *, test_event_code: str | None = None
    ) -> SendResult:
        """POST ``events`` to the Pixel's ``/events`` edge, retrying transient failures.

        Raises only for problems found before anything is sent (:class:`ConfigError` for a bad Pixel
        ID, :class:`~capi_diag.meta.payload.PayloadError` for no events, more than 1,000, or a bad
        test code). Everything Meta or the network says is in the returned :class:`SendResult`.
        """
        pixel_id = str(pixel_id).strip()
        if not _PIXEL_RE.match(pixel_id):
            raise ConfigError(f"Pixel ID {pixel_id!r} is not a number; copy the dataset/Pixel ID from Events "
                              "Manager > Data sources.")
        if isinstance(events, list) and len(events) > MAX_EVENTS:
            raise PayloadError(f"{len(events)} events exceed Meta's limit of {MAX_EVENTS} per request; "
                               "send them in batches of at most 1,000 (nothing was sent).")
        request = build_request(self.config, self._token, pixel_id, events, test_event_code)
        endpoint = events_url(self.config, pixel_id)
        redact = (self._token,)
        return self._with_retries(lambda: self._post_attempt(request, len(events), endpoint, redact))

    def get(self, path: str, params: Mapping[str, str]) -> GetResult:
        """``GET {graph_url}/{version}/{path}?{params}``, retrying transient failures like :meth:`send`
        (never 100, 190, 10 or 200-299). Everything Meta or the network says is in the result."""
        request = build_get(self.config, self._token, path, params)
        endpoint = object_url(self.config, path)
        redact = (self._token,)
        return self._with_retries(lambda: self._get_attempt(request, endpoint, redact))

    def _with_retries(self, attempt: Callable[[], tuple[_Result, int | None, str, float | None]]) -> _Result:
        """Run ``attempt`` until it succeeds or fails for good, recording every attempt in the result.

        ``attempt`` makes one request and returns ``(result, status, detail, retry_after)``. A failure is
        retried while :func:`_should_retry` allows and retries remain, after :meth:`backoff`; a retryable
        failure that outlasts the retries gets a "Gave up" finding, so the reader knows it was not Meta's
        final word. POST and GET share this loop so that both retry, wait and record alike.
        """
        attempts: list[Attempt] = []
        number = 0
        while True:
            number += 1
            at = self._clock()
            result, status, detail, retry_after = attempt()
            err = result.error
            if err is None:
                attempts.append(Attempt(number, at, status, None, None, "ok", 0.0, detail))
                result.attempts = attempts
                return result
            retry = _should_retry(status, err) and number <= self.config.max_retries
            wait = self.backoff(number, retry_after) if retry else 0.0
            attempts.append(Attempt(number, at, status, err.code, err.error_subcode,
                                    "retry" if retry else "error", wait, detail))
            if not retry:
                if err.retryable and number > self.config.max_retries:
                    result.findings.append(f"Gave up after {number} attempts ({self.config.max_retries} "
                                           f"retries): {err.entry.title}.")
                result.attempts = attempts
                return result
            self._sleep(wait)

    def _exchange(self, request: httpx.Request, endpoint: str, redact: tuple[str, ...],
                  method: str) -> tuple[int | None, Any, float | None, GraphAPIError | None, str]:
        """Send one request: ``(status, body, retry_after, None, "")``, or, when no HTTP answer came
        back, ``(None, None, None, error, detail)`` (timeouts and connection failures are retried by
        :meth:`_with_retries`; other request errors are not worth retrying)."""
        started = time.monotonic()
        try:
            response = self._http.send(request, follow_redirects=False, stream=True)
            try:
                content = self._read_answer(response, started)
            finally:
                response.close()
        except (httpx.TimeoutException, _DeadlineExceeded) as e:
            message = (f"no complete answer within the {self.config.deadline_s:g} s deadline"
                       if isinstance(e, _DeadlineExceeded) else f"{type(e).__name__} after {self.config.timeout_s:g} s")
            return None, None, None, GraphAPIError(http_status=None, code=None, type=type(e).__name__.lstrip("_"),
                                                   endpoint=endpoint, entry=TIMEOUT, method=method,
                                                   message=message), message
        except httpx.RequestError as e:
            detail = _scrub(f"{type(e).__name__}: {e}", redact)
            entry = CONNECTION if isinstance(e, httpx.TransportError) else UNEXPECTED
            return None, None, None, GraphAPIError(http_status=None, code=None, type=type(e).__name__,
                                                   endpoint=endpoint, entry=entry, method=method,
                                                   message=detail), detail
        status = response.status_code
        try:
            body: Any = json.loads(content) if content is not None else None
        except ValueError:
            body = None
        retry_after = _retry_after(response.headers.get("retry-after"))
        return status, body, retry_after, None, ""

    def _read_answer(self, response: httpx.Response, started: float) -> bytes | None:
        """The answer's bytes, read within :attr:`GraphConfig.deadline_s` of ``started``; ``None``
        when it exceeds :data:`MAX_ANSWER_BYTES` (not a Graph API answer)."""
        deadline = started + self.config.deadline_s
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                return None
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise _DeadlineExceeded
        return b"".join(chunks)

    def _get_attempt(
        self, request: httpx.Request, endpoint: str, redact: tuple[str, ...]
    ) -> tuple[GetResult, int | None, str, float | None]:
        status, body, retry_after, err, detail = self._exchange(request, endpoint, redact, "GET")
        if err is not None or status is None:
            return GetResult(ok=False, error=err), None, detail, None
        result = parse_get(status, body, endpoint=endpoint, redact=redact)
        return result, status, _attempt_detail(status, result.error, f"HTTP {status}"), retry_after

    def _post_attempt(
        self, request: httpx.Request, n_events: int, endpoint: str, redact: tuple[str, ...]
    ) -> tuple[SendResult, int | None, str, float | None]:
        status, body, retry_after, err, detail = self._exchange(request, endpoint, redact, "POST")
        if err is not None or status is None:
            return SendResult(ok=False, events_sent=n_events, error=err), None, detail, None
        result = parse_response(status, body, n_events, endpoint=endpoint, redact=redact)
        ok_detail = f"HTTP {status}: events_received={result.events_received}"
        return result, status, _attempt_detail(status, result.error, ok_detail), retry_after


class _DeadlineExceeded(Exception):
    """An answer still arriving when the attempt's deadline passed (a slow drip)."""


def _attempt_detail(status: int, error: GraphAPIError | None, ok_detail: str) -> str:
    """One line for the attempt log: the status, and Meta's code and title on an error."""
    if error is None:
        return ok_detail
    code = f" code {error.code}" + (f"/{error.error_subcode}" if error.error_subcode else "") if error.code else ""
    return f"HTTP {status}{code}: {error.entry.title}"


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
