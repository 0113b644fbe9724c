"""A local stand-in for Meta's Graph API ``/{version}/{pixel_id}/events`` edge, and for the two reads
(``GET /{version}/{pixel_id}``, the connect check, and ``GET /{version}/dataset_quality``, Meta's own
figures): see :mod:`capi_diag.standins.fake_quality` for their scenarios, chosen by the Pixel ID.

``FakeGraph`` is a real HTTP server on 127.0.0.1 (it refuses any other address) that answers the way
Meta does, with Meta's real response bodies (``docs/meta-examples.md`` §B/§C). Tests and offline
rehearsals point the client at it (``--graph-url http://127.0.0.1:8790``); it is never the default
target. Checks, in Meta's order (the first failure answers; one bad event rejects the whole batch):

1. the access token: missing -> 104 (HTTP 400); wrong -> 190 "Invalid OAuth access token" (HTTP 401).
   It is read from ``Authorization: Bearer``, or from ``access_token`` in the query or body, as Meta
   does; the record of the request keeps the URL and body as received so that a test can prove a
   client never put the token there.
2. the Pixel: any other ID -> 100/33 "Unsupported post request" (HTTP 400).
3. injected trouble: every ``fail_5xx_every``-th events request -> HTTP 500 with code 1; every
   ``throttle_every``-th -> code ``throttle_code`` (17 "User request limit reached" or 4
   "Application request limit reached", HTTP 400). ``faults`` is a script for the events requests
   that follow, one :data:`FAULTS` name (or ``ok``) per request, in order, then normal answers:
   timeouts, dropped connections, HTTP 500/502/503, throttling codes, an HTML page instead of
   JSON, malformed JSON, a 200 with fewer ``events_received`` than sent, a slow-drip answer.
4. the body: not JSON (or not a form with a JSON ``data``), or no ``data`` array -> 100/2804019; more
   than 1,000 events -> 100 without a subcode (Meta documents the limit, not its error body: this
   body is the stand-in's own).
5. each event, in order: a missing ``event_name``/``event_time``/``action_source``/``user_data``
   -> 100/2804019 naming ``$['data'][i]['field']``; ``event_time`` older than 7 days -> 100/2804003;
   a customer-information key (``em ph fn ln ge db ct st zp country``) not SHA-256 hex -> 100/2804016
   naming the key; ``fbc`` not ``fb.<digits>.<digits>.<clickid>[.<appendix>]`` -> 100/2804001; customer
   information missing or only a too-broad combination (docs/facts.md §4.1 baseline rule) -> 100/2804050.
6. otherwise ``{"events_received": N, "messages": [...], "fbtrace_id": ...}``. ``messages`` holds the
   stand-in's own warnings for ``website`` events without ``event_source_url`` or
   ``client_user_agent`` (Meta accepts those, docs/facts.md §1; the warnings let tests exercise the
   "messages become warnings" path).

``GET /{version}/{pixel_id}`` and ``GET /{version}/dataset_quality?dataset_id=...`` check the token the
same way (190, 104), then answer per :mod:`capi_diag.standins.fake_quality`; they are recorded too.
``GET /{version}/{pixel_id}/stats`` (``aggregation`` event, event_source or match_keys, ``start_time``,
``end_time``, ``event``, ``after``) answers hourly buckets from :mod:`capi_diag.standins.scenario` at the
stand-in's clock (``now``), hour 0 being ``scenario_start``.

``GET /__received`` returns every recorded request (``path`` with query, ``headers`` with the
Authorization value redacted, ``body`` as parsed JSON or text, ``status``); ``DELETE /__received``
clears it.

This validation is written from Meta's documented behaviour, deliberately **without** importing the
diagnostics' rules (``capi_diag.engine.rules``), so tests compare two implementations rather than one
with itself. It shares only Meta's facts: the key lists and the SHA-256 shape of
:mod:`capi_diag.core.patterns`.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from capi_diag.core.errors import ConfigError
from capi_diag.core.patterns import HASHED_KEYS, SHA256_RE, TOO_BROAD, USER_DATA_KEYS
from capi_diag.standins import fake_quality, scenario

SEVEN_DAYS_S = 7 * 24 * 3600
MAX_EVENTS = 1000
_PATH_RE = re.compile(r"\A/(v\d+\.\d+)/([^/]+)/events/?\Z")
_OBJECT_RE = re.compile(r"\A/(v\d+\.\d+)/([^/]+)/?\Z")
_STATS_RE = re.compile(r"\A/(v\d+\.\d+)/([^/]+)/stats/?\Z")
DEFAULT_PIXEL_NAME = "capi-diag demo Pixel"
_FBC_RE = re.compile(r"\Afb\.\d+\.\d+\.[^.\s]+(\.[A-Za-z0-9_-]{2}|\.[A-Za-z0-9_-]{8})?\Z")
_CUSTOMER_KEYS = USER_DATA_KEYS + (
    "page_id", "page_scoped_user_id", "ctwa_clid", "ig_account_id", "ig_sid",
)
"""The ``user_data`` keys and the business-messaging keys: any of them counts as customer information."""
_LOOPBACK = ("127.0.0.1", "localhost")
_HTML_PAGE = ("<!DOCTYPE html><html><head><title>Error</title></head><body><h1>{status} {reason}</h1>"
              "<p>Sorry, something went wrong. We're working on it and we'll get it fixed as soon as we "
              "can.</p></body></html>")

FAULTS: dict[str, str] = {
    "ok": "a normal answer (placeholder in a script)",
    "http_500": "HTTP 500 with Meta's code 1 'An unknown error occurred' (transient)",
    "http_503": "HTTP 503 with an HTML page and Retry-After: 1 (a load balancer; transient)",
    "html_502": "HTTP 502 with an HTML error page instead of JSON (a proxy; transient)",
    "html_200": "HTTP 200 with an HTML page instead of JSON (a captive portal or a wrong URL)",
    "malformed_json": "HTTP 200 whose JSON body is cut off",
    "short_count": "HTTP 200 with events_received one lower than the events sent",
    "throttle_4": "HTTP 400, code 4 'Application request limit reached' (transient)",
    "throttle_17": "HTTP 400, code 17 'User request limit reached' (transient)",
    "throttle_613": "HTTP 400, code 613 'Calls to this api have exceeded the rate limit' (transient)",
    "code_2": "HTTP 503, code 2 'Service temporarily unavailable' (transient)",
    "invalid_100": "HTTP 400, code 100 'Invalid parameter' (a validation error: never retried)",
    "timeout": "no answer for fault_delay_s seconds (longer than the client's timeout), then a normal one",
    "reset": "the connection is closed without an answer",
    "slow_drip": "HTTP 200 headers at once, then the body one byte every drip_interval_s seconds",
}
"""Faults the stand-in can inject into its events answers (``FakeGraph(faults=...)``,
``fake-graph --faults a,b,c``)."""


def _error(code: int, message: str, *, type_: str = "OAuthException", subcode: int | None = None,
           title: str | None = None, user_msg: str | None = None, transient: bool | None = False) -> dict:
    err: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        err["error_subcode"] = subcode
    if transient is not None and subcode is not None:
        err["is_transient"] = transient
    if title is not None:
        err["error_user_title"] = title
    if user_msg is not None:
        err["error_user_msg"] = user_msg
    err["fbtrace_id"] = _trace_id()
    return {"error": err}


def _trace_id() -> str:
    return secrets.token_urlsafe(17)[:23]


def _param_error(path: str) -> dict:
    return _error(100, "Invalid parameter", subcode=2804019, title="Server-side API parameter error",
                  user_msg=f"The parameter {path} is required.")


def _too_old() -> dict:
    return _error(100, "Invalid parameter", subcode=2804003, title="Event Timestamp Too Old",
                  user_msg="The timestamp for this event is too far in the past. Events need to be sent from "
                           "your server within 7 days of when they occurred. Enter a timestamp that has "
                           "occurred within the last 7 days.")


def _not_hashed(key: str) -> dict:
    return _error(100, "Invalid parameter", subcode=2804016, title="User Parameter Not Hashed",
                  user_msg=f"The {key} parameter isn\u2019t hashed. Hash all user parameters as SHA256, "
                           "except for client user agent, click ID, and browser ID. Any other user "
                           "parameters that are not hashed are automatically rejected by Facebook.")


def _bad_fbc() -> dict:
    return _error(100, "Invalid parameter", subcode=2804001, title="Click ID Incorrectly Formatted",
                  user_msg="The click ID (_fbc) parameter is not formatted correctly. See the click ID "
                           "parameter field for guidelines on formatting this parameter.")


def _insufficient() -> dict:
    return _error(100, "Invalid parameter", subcode=2804050,
                  title="You haven't added sufficient customer information parameter data for this event",
                  user_msg="This event has no customer information parameters, or it has a combination of "
                           "customer information parameters that is so broad that it's unlikely to be "
                           "effective for matching. You can fix this by going to the recommended parameter "
                           "best practices on developers.facebook.com/docs/marketing-api/conversions-api/"
                           "best-practices/#req-rec-params")


def _unknown_pixel(pixel: str) -> dict:
    return _error(100, f"Unsupported post request. Object with ID '{pixel}' does not exist, cannot be "
                       "loaded due to missing permissions, or does not support this operation. Please read "
                       "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                  type_="GraphMethodException", subcode=33, transient=None)


def _unknown_object(object_id: str) -> dict:
    return _error(100, f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be loaded "
                       "due to missing permissions, or does not support this operation. Please read the Graph API "
                       "documentation at https://developers.facebook.com/docs/graph-api",
                  type_="GraphMethodException", subcode=33, transient=None)


def _nonexisting_field(field: str, node: str) -> dict:
    return _error(100, f"(#100) Tried accessing nonexisting field ({field}) on node type ({node})",
                  type_="OAuthException", transient=None)


def _values(raw: Any) -> list[Any]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    return [v for v in items if v is not None and str(v).strip() != ""]


class FakeGraph:
    """The stand-in server. Use as a context manager (``with FakeGraph() as fg: fg.url``), or
    ``start()``/``stop()``, or ``serve_forever()`` in the foreground (the CLI's ``fake-graph``)."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        pixel_id: str = "1234567890",
        throttle_every: int = 0,
        fail_5xx_every: int = 0,
        delay_ms: int = 0,
        now: Callable[[], float] = time.time,
        throttle_code: int = 17,
        pixel_name: str = DEFAULT_PIXEL_NAME,
        pixel_unavailable: bool = False,
        faults: Sequence[str] = (),
        fault_delay_s: float = 2.0,
        drip_interval_s: float = 0.2,
        scenario_start: float | None = None,
    ) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ConfigError(f"FakeGraph: unknown fault {unknown[0]!r}; choose from {', '.join(FAULTS)}.")
        if fault_delay_s < 0 or drip_interval_s < 0:
            raise ConfigError("FakeGraph: fault_delay_s and drip_interval_s must be 0 or more.")
        if throttle_code not in (4, 17):
            raise ConfigError(f"FakeGraph: throttle_code must be 4 or 17, not {throttle_code}.")
        for name, value in (("throttle_every", throttle_every), ("fail_5xx_every", fail_5xx_every),
                            ("delay_ms", delay_ms)):
            if value < 0:
                raise ConfigError(f"FakeGraph: {name} must be 0 or more, not {value}.")
        self.token = token
        self.pixel_id = str(pixel_id)
        self.pixel_name = pixel_name
        self.pixel_unavailable = pixel_unavailable
        self.throttle_every = throttle_every
        self.fail_5xx_every = fail_5xx_every
        self.delay_ms = delay_ms
        self.throttle_code = throttle_code
        self.now = now
        self.scenario_start = (float(scenario_start) if scenario_start is not None
                               else (now() // scenario.HOUR) * scenario.HOUR)
        """Hour 0 of the monitor scenario (:mod:`capi_diag.standins.scenario`); default: the hour the
        stand-in was made in."""
        self.faults: list[str] = list(faults)
        self.fault_delay_s = fault_delay_s
        self.drip_interval_s = drip_interval_s
        self.faults_served: list[str] = []
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._events_requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def _bind(self, host: str, port: int) -> str:
        if host not in _LOOPBACK:
            raise ConfigError(f"FakeGraph binds to 127.0.0.1 only, not {host!r}: it is a local test "
                              "stand-in.")
        if self._server is not None:
            raise ConfigError("FakeGraph is already running; stop() it first.")
        handler = _make_handler(self)
        try:
            server = ThreadingHTTPServer(("127.0.0.1" if host == "localhost" else host, port), handler)
        except OSError as e:
            raise ConfigError(f"FakeGraph cannot listen on {host}:{port} ({e.strerror}); choose another "
                              "--port.") from None
        server.daemon_threads = True
        self._server = server
        bound_host, bound_port = server.server_address[:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        self.url = f"http://{shown}:{bound_port}"
        return self.url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen (``port=0`` picks a free port) in a background thread; returns the base URL."""
        url = self._bind(host, port)
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-graph",
                                        daemon=True)
        self._thread.start()
        return url

    def serve_forever(self, host: str = "127.0.0.1", port: int = 8790) -> None:
        """Listen and serve in the calling thread until interrupted."""
        self._bind(host, port)
        assert self._server is not None
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGraph:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeGraph(url={self.url!r}, pixel_id={self.pixel_id!r})"

    # -- behaviour (pure apart from the counters; callable without HTTP) --------------------------

    def reset(self) -> None:
        """Forget recorded requests and restart the throttle/5xx counters."""
        with self._lock:
            self.received.clear()
            self._events_requests = 0
            self.faults_served.clear()

    def next_fault(self) -> str:
        """The fault for the next events request (``ok`` when the script is used up); recorded in
        :attr:`faults_served`."""
        with self._lock:
            fault = self.faults.pop(0) if self.faults else "ok"
            self.faults_served.append(fault)
        return fault

    @staticmethod
    def fault_answer(fault: str) -> tuple[int, Any] | None:
        """The (status, JSON body) of an error fault, or ``None`` when ``fault`` shapes the transport
        (HTML, malformed, slow, dropped) or changes a success (``short_count``)."""
        if fault == "http_500":
            return 500, _error(1, "An unknown error occurred", subcode=99, transient=True)
        if fault in ("throttle_4", "throttle_17", "throttle_613"):
            code = int(fault.split("_")[1])
            msg = {4: "(#4) Application request limit reached", 17: "User request limit reached",
                   613: "Calls to this api have exceeded the rate limit."}[code]
            return 400, _error(code, msg, transient=None)
        if fault == "code_2":
            return 503, _error(2, "Service temporarily unavailable", type_="OAuthException", transient=None)
        if fault == "invalid_100":
            return 400, _error(100, "Invalid parameter", transient=None)
        return None

    def answer(self, path: str, headers: dict[str, str], raw_body: bytes) -> tuple[int, dict]:
        """The (HTTP status, JSON body) Meta would give for ``POST path`` (counts towards N-th)."""
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        body, body_ok = self._parse_body(raw_body, content_type)
        token = self._token_of(headers, query, body if isinstance(body, dict) else {})
        if token is None:
            return 400, _error(104, "An access token is required to request this resource.", transient=None)
        if token != self.token:
            return 401, _error(190, "Invalid OAuth access token - Cannot parse access token", transient=None)
        m = _PATH_RE.match(parts.path)
        if m is None:
            return 400, _error(2500, f"Unknown path components: {parts.path}", transient=None)
        if m.group(2) != self.pixel_id:
            return 400, _unknown_pixel(m.group(2))
        with self._lock:
            self._events_requests += 1
            n = self._events_requests
        if self.fail_5xx_every and n % self.fail_5xx_every == 0:
            return 500, _error(1, "An unknown error occurred", subcode=99, transient=True)
        if self.throttle_every and n % self.throttle_every == 0:
            msg = ("User request limit reached" if self.throttle_code == 17
                   else "(#4) Application request limit reached")
            return 400, _error(self.throttle_code, msg, transient=None)
        if not body_ok or not isinstance(body, dict):
            return 400, _param_error("$['data']")
        data = body.get("data")
        if isinstance(data, str):  # form posts carry data as a JSON string
            try:
                data = json.loads(data)
            except ValueError:
                return 400, _param_error("$['data']")
        if not isinstance(data, list) or not data:
            return 400, _param_error("$['data']")
        if len(data) > MAX_EVENTS:
            return 400, _error(100, "Invalid parameter", transient=None,
                               title="Too Many Events",
                               user_msg=f"A request can hold at most {MAX_EVENTS} events; this one has "
                                        f"{len(data)}. Split the events into smaller batches.")
        messages: list[str] = []
        now = int(self.now())
        for i, event in enumerate(data):
            if isinstance(event, str):  # the Python SDK sends each event as a JSON string
                try:
                    event = json.loads(event)
                except ValueError:
                    return 400, _param_error(f"$['data'][{i}]['event_name']")
            rejected = self._check_event(i, event, now, messages)
            if rejected is not None:
                return 400, rejected
        return 200, {"events_received": len(data), "messages": messages, "fbtrace_id": _trace_id()}

    def answer_get(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        """The (HTTP status, JSON body) Meta would give for ``GET path``: the Pixel or ``dataset_quality``."""
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        token = self._token_of(headers, query, {})
        if token is None:
            return 400, _error(104, "An access token is required to request this resource.", transient=None)
        if token != self.token:
            return 401, _error(190, "Invalid OAuth access token - Cannot parse access token", transient=None)
        stats = _STATS_RE.match(parts.path)
        if stats is not None:
            return self._stats(stats.group(1), stats.group(2), query)
        m = _OBJECT_RE.match(parts.path)
        if m is None:
            return 400, _error(2500, f"Unknown path components: {parts.path}", transient=None)
        try:
            tree = fake_quality.parse_fields(query["fields"][-1]) if query.get("fields") else None
        except ValueError as e:
            return 400, _error(100, f"(#100) Syntax error in the fields parameter: {e}", transient=None)
        if m.group(2) == "dataset_quality":
            return self._quality(query, tree)
        return self._pixel(m.group(2), tree)

    def _pixel(self, pixel: str, tree: dict[str, Any] | None) -> tuple[int, Any]:
        if pixel == fake_quality.NO_PERMISSION_ID:
            return 400, _error(200, "(#200) Missing Permissions", transient=None)
        name = self.pixel_name if pixel == self.pixel_id else fake_quality.NAMES.get(pixel)
        if name is None:
            return 400, _unknown_object(pixel)
        unknown = [f for f in (tree or {}) if f not in fake_quality.PIXEL_FIELDS]
        if unknown:
            return 400, _nonexisting_field(unknown[0], "AdsPixel")
        full: dict[str, Any] = {"id": pixel, "name": name,
                                "is_unavailable": self.pixel_unavailable and pixel == self.pixel_id,
                                "creation_time": _meta_time(self.now() - 400 * 86_400)}
        if pixel == self.pixel_id:
            full["last_fired_time"] = _meta_time(self.now() - 120)
        elif pixel == fake_quality.PARTIAL_ID:
            full["last_fired_time"] = _meta_time(self.now() - 3 * 86_400)
        if tree is None:  # Graph's default fields for a node
            return 200, {"id": pixel, "name": name}
        return 200, fake_quality.select(full, tree)

    def _stats(self, version: str, pixel: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """``GET /{pixel}/stats``: hourly buckets of the monitor scenario (its incidents for
        :data:`fake_quality.SCENARIO_ID`, its normal hours for the stand-in's own Pixel)."""
        if pixel == fake_quality.NO_PERMISSION_ID:
            return 400, _error(200, "(#200) Missing Permissions", transient=None)
        if pixel not in (self.pixel_id, fake_quality.SCENARIO_ID):
            return 400, _unknown_object(pixel)

        def one(name: str, default: str | None = None) -> str | None:
            values = query.get(name)
            return values[-1].strip() if values else default

        aggregation = one("aggregation", "event") or "event"
        if aggregation not in scenario.AGGREGATIONS:
            return 400, _error(100, f"(#100) aggregation must be one of {', '.join(sorted(scenario.AGGREGATIONS))} "
                                    "in this stand-in", transient=None)
        now = self.now()
        try:
            start = float(one("start_time") or now - 24 * scenario.HOUR)
            end = float(one("end_time") or now)
            after = int(one("after") or 0)
        except ValueError:
            return 400, _error(100, "(#100) start_time, end_time and after must be numbers here", transient=None)
        event = one("event")
        if event is not None and event not in scenario.EVENTS:
            return 200, {"data": []}
        buckets = scenario.stats_buckets(self.scenario_start, now, start, end, aggregation, event,
                                         steady=pixel != fake_quality.SCENARIO_ID)
        page = buckets[after:after + scenario.PAGE_BUCKETS]
        body: dict[str, Any] = {"data": page}
        if after + scenario.PAGE_BUCKETS < len(buckets):
            cursor = after + scenario.PAGE_BUCKETS
            params = {"aggregation": aggregation, "start_time": str(int(start)), "end_time": str(int(end)),
                      "after": str(cursor), "access_token": self.token}
            if event is not None:
                params["event"] = event
            body["paging"] = {"cursors": {"after": str(cursor)},
                              "next": f"{self.url or ''}/{version}/{pixel}/stats?" + urlencode(params)}
        return 200, body

    def _quality(self, query: dict[str, list[str]], tree: dict[str, Any] | None) -> tuple[int, Any]:
        dataset = (query.get("dataset_id") or [""])[-1].strip()
        if not dataset:
            return 400, _error(100, "(#100) The parameter dataset_id is required", transient=None)
        if dataset == fake_quality.NO_PERMISSION_ID:
            return 400, _error(10, "(#10) Application does not have permission for this action", transient=None)
        if dataset == fake_quality.SCENARIO_ID:
            hour = scenario.hour_of(self.scenario_start, self.now())
            return 200, fake_quality.select({"web": scenario.quality_web(hour)},
                                            tree if tree is None else {"web": tree.get("web")})
        found = fake_quality.quality_web(dataset, self.pixel_id)
        if found is None:
            return 400, _unknown_object(dataset)
        web, spelling = found
        if tree is not None:
            unknown = fake_quality.unknown_quality_fields(tree)
            if unknown:
                return 400, _nonexisting_field(unknown[0], "AdsPixelCAPIIntegrationQuality")
            web_tree = tree.get("web")
            if isinstance(web_tree, dict) and spelling != "dedupe_key_feedback" and "dedupe_key_feedback" in web_tree:
                web_tree = dict(web_tree)
                web_tree[spelling] = web_tree.pop("dedupe_key_feedback")
                tree = {**tree, "web": web_tree}
            if "web" not in tree:
                return 200, {"id": dataset}
        return 200, fake_quality.select({"web": web}, tree if tree is None else {"web": tree["web"]})

    @staticmethod
    def _parse_body(raw: bytes, content_type: str) -> tuple[Any, bool]:
        if not raw:
            return {}, True
        text = raw.decode("utf-8", errors="replace")
        if content_type == "application/x-www-form-urlencoded":
            form = parse_qs(text, keep_blank_values=True)
            return {k: v[-1] for k, v in form.items()}, True
        try:
            return json.loads(text), True
        except ValueError:
            return text, False

    @staticmethod
    def _token_of(headers: dict[str, str], query: dict[str, list[str]], body: dict) -> str | None:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip():
            return auth[7:].strip()
        if query.get("access_token"):
            return query["access_token"][-1]
        value = body.get("access_token")
        return str(value) if value else None

    @staticmethod
    def _check_event(i: int, event: Any, now: int, messages: list[str]) -> dict | None:
        if not isinstance(event, dict):
            return _param_error(f"$['data'][{i}]['event_name']")
        for key in ("event_name", "event_time", "action_source", "user_data"):
            value = event.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                return _param_error(f"$['data'][{i}]['{key}']")
        t = event["event_time"]
        if isinstance(t, str) and t.strip().isdigit():
            t = int(t.strip())
        if isinstance(t, bool) or not isinstance(t, int):
            return _error(100, "Invalid parameter", subcode=2804019, title="Server-side API parameter error",
                          user_msg=f"The parameter $['data'][{i}]['event_time'] must be an integer.")
        if t < now - SEVEN_DAYS_S:
            return _too_old()
        user = event["user_data"]
        if not isinstance(user, dict):
            return _param_error(f"$['data'][{i}]['user_data']")
        for key in HASHED_KEYS:
            for v in _values(user.get(key)):
                if not isinstance(v, str) or not SHA256_RE.match(v.strip()):
                    return _not_hashed(key)
        fbc = user.get("fbc")
        if fbc is not None and (not isinstance(fbc, str) or not _FBC_RE.match(fbc)):
            return _bad_fbc()
        present = {k for k in _CUSTOMER_KEYS if _values(user.get(k))}
        if not present or any(present <= combo for combo in TOO_BROAD):
            return _insufficient()
        if event.get("action_source") == "website":
            name = event.get("event_name")
            if not event.get("event_source_url"):
                messages.append(f"Event {i} ({name}): website events should include event_source_url.")
            if not user.get("client_user_agent"):
                messages.append(f"Event {i} ({name}): website events should include client_user_agent.")
        return None

    def record(self, method: str, path: str, headers: dict[str, str], raw_body: bytes, status: int) -> None:
        shown = {k: ("[redacted]" if k.lower() == "authorization" else v) for k, v in headers.items()}
        text = raw_body.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        with self._lock:
            self.received.append({"method": method, "path": path, "headers": shown, "body": body,
                                  "status": status})


def _meta_time(ts: float) -> str:
    """Graph's time format: ``2026-11-30T04:10:00+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


def _make_handler(fake: FakeGraph) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeGraph/1"
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body are two writes: without this, Nagle + delayed ACK add 40 ms per answer
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return  # quiet: the request line may hold a token sent by a careless client

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            if urlsplit(self.path).path == "/__received":
                with fake._lock:
                    snapshot = list(fake.received)
                self._reply(200, snapshot)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if fake.delay_ms:
                time.sleep(fake.delay_ms / 1000)
            status, payload = fake.answer_get(self.path, headers)
            fake.record("GET", self.path, dict(self.headers.items()), b"", status)
            try:
                self._reply(status, payload)
            except (BrokenPipeError, ConnectionResetError):
                return

        def do_DELETE(self) -> None:  # noqa: N802
            if urlsplit(self.path).path == "/__received":
                fake.reset()
                self._reply(200, {"success": True})
                return
            self._reply(400, _error(100, "Unsupported delete request.", type_="GraphMethodException",
                                    transient=None))

        def do_POST(self) -> None:  # noqa: N802
            raw = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            if fake.delay_ms:
                time.sleep(fake.delay_ms / 1000)
            fault = fake.next_fault() if _PATH_RE.match(urlsplit(self.path).path) else "ok"
            if fault == "timeout":
                time.sleep(fake.fault_delay_s)
            status, payload = fake.answer(self.path, headers, raw)
            injected = fake.fault_answer(fault) if status == 200 else None
            if injected is not None:
                status, payload = injected
            fake.record("POST", self.path, dict(self.headers.items()), raw, status)
            try:
                if status != 200 or fault in ("ok", "timeout"):
                    self._reply(status, payload)
                else:
                    self._fault(fault, payload)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (timeout); nothing to answer

        def _raw(self, status: int, content_type: str, data: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _fault(self, fault: str, payload: dict) -> None:
            """Answer a request that Meta would have accepted (``payload``) with ``fault`` instead."""
            if fault == "reset":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault in ("html_502", "http_503", "html_200"):
                status = {"html_502": 502, "http_503": 503, "html_200": 200}[fault]
                reason = {502: "Bad Gateway", 503: "Service Unavailable", 200: "OK"}[status]
                page = _HTML_PAGE.format(status=status, reason=reason).encode()
                self._raw(status, "text/html; charset=utf-8", page,
                          {"Retry-After": "1"} if status == 503 else None)
                return
            if fault == "short_count":
                self._reply(200, dict(payload, events_received=max(0, payload["events_received"] - 1)))
                return
            data = json.dumps(payload).encode("utf-8")
            if fault == "malformed_json":
                self._raw(200, "application/json; charset=UTF-8", data[: len(data) // 2])
                return
            if fault == "slow_drip":
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(fake.drip_interval_s)
                return
            self._reply(200, payload)

    return Handler
