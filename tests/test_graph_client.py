"""GraphClient and the error catalogue: against FakeGraph over real HTTP on 127.0.0.1, and with
httpx.MockTransport where a pure unit test is clearer."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from capi_diag.core.errors import ConfigError
from capi_diag.meta import errors as gerr
from capi_diag.meta.client import (
    DEFAULT_API_VERSION,
    DEFAULT_GRAPH_URL,
    MAX_EVENTS,
    GraphClient,
    GraphConfig,
    build_request,
    events_url,
    parse_response,
)
from capi_diag.meta.errors import CATALOGUE, GraphAPIError, lookup, parse_error
from capi_diag.meta.payload import PayloadError, build_journey
from capi_diag.standins.fake_server import SEVEN_DAYS_S, FakeGraph

NOW = 1764975551
PIXEL = "1234567890"
TOKEN = "test-token"
SENTINEL = "EAAsentinelTOKENvalue0123456789XYZ"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def journey(**kw):
    return build_journey(now=NOW, rng=random.Random(5), **kw)


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=httpx.Timeout(5.0)) as client:
        yield client


def client_for(url, http, *, token=TOKEN, sleeps=None, **cfg):
    return GraphClient(token, config=GraphConfig(graph_url=url, **cfg), http=http,
                       sleep=sleeps if sleeps is not None else Sleeps(), rng=random.Random(0),
                       clock=lambda: 1000.0)


# --- against the stand-in over real HTTP -------------------------------------------------------


def test_send_clean_journey_is_accepted_with_one_attempt(http):
    with FakeGraph(now=lambda: NOW) as fg:
        result = client_for(fg.url, http).send(PIXEL, journey(), test_event_code="TEST123")
        recorded = fg.received
    assert result.ok and result.clean
    assert (result.events_sent, result.events_received) == (5, 5)
    assert result.messages == [] and result.findings == [] and result.error is None
    assert len(result.fbtrace_id) == 23
    assert [(a.number, a.at, a.status_code, a.outcome, a.wait_s) for a in result.attempts] == [
        (1, 1000.0, 200, "ok", 0.0)]
    assert len(recorded) == 1
    assert recorded[0]["path"] == f"/{DEFAULT_API_VERSION}/{PIXEL}/events"
    assert recorded[0]["body"]["test_event_code"] == "TEST123"
    assert [e["event_name"] for e in recorded[0]["body"]["data"]] == [
        "PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]


def _old(events):
    events[2]["event_time"] = NOW - SEVEN_DAYS_S - 60
    return events


def _unhashed(events):
    events[0]["user_data"]["em"] = ["capi-diag.test@example.com"]
    return events


def _bad_fbc(events):
    events[1]["user_data"]["fbc"] = "fb.1.1764975551000"
    return events


def _missing(events):
    del events[3]["event_time"]
    return events


def _insufficient(events):
    events[4]["user_data"] = {"client_user_agent": "Mozilla/5.0"}
    return events


@pytest.mark.parametrize(("breaker", "status", "code", "subcode", "exit_code"), [
    (_old, 400, 100, 2804003, 1),
    (_unhashed, 400, 100, 2804016, 1),
    (_bad_fbc, 400, 100, 2804001, 1),
    (_missing, 400, 100, 2804019, 1),
    (_insufficient, 400, 100, 2804050, 1),
])
def test_send_payload_errors_carry_catalogue_fix_and_are_not_retried(http, breaker, status, code, subcode,
                                                                      exit_code):
    sleeps = Sleeps()
    with FakeGraph(now=lambda: NOW) as fg:
        result = client_for(fg.url, http, sleeps=sleeps).send(PIXEL, breaker(journey()))
    assert not result.ok
    err = result.error
    assert isinstance(err, GraphAPIError)
    assert (err.http_status, err.code, err.error_subcode) == (status, code, subcode)
    assert err.entry is lookup(code, subcode)
    assert err.entry.kind == "payload" and not err.retryable
    assert err.fix in str(err)
    assert err.exit_code == exit_code
    assert err.fbtrace_id and result.fbtrace_id == err.fbtrace_id
    assert err.user_title and err.user_msg
    assert [(a.outcome, a.error_code, a.error_subcode) for a in result.attempts] == [("error", code, subcode)]
    assert sleeps == []


def test_send_unknown_pixel_is_config_error_exit_2(http):
    with FakeGraph(now=lambda: NOW) as fg:
        result = client_for(fg.url, http).send("999", journey())
    err = result.error
    assert (err.code, err.error_subcode, err.http_status) == (100, 33, 400)
    assert err.entry.title == "Unknown Pixel or no access"
    assert err.exit_code == 2
    assert "Check the Pixel ID" in str(err)
    assert len(result.attempts) == 1


def test_send_bad_token_is_190_config_error_exit_2_without_token(http):
    with FakeGraph(now=lambda: NOW) as fg:
        result = client_for(fg.url, http, token="wrong-token-value").send(PIXEL, journey())
    err = result.error
    assert (err.code, err.http_status, err.type) == (190, 401, "OAuthException")
    assert err.exit_code == 2
    assert "Generate a new access token" in err.fix
    assert "wrong-token-value" not in str(err) and "wrong-token-value" not in repr(err)
    assert len(result.attempts) == 1


def test_send_throttled_then_success_records_retry_and_waits(http):
    sleeps = Sleeps()
    with FakeGraph(now=lambda: NOW, throttle_every=2) as fg:
        client = client_for(fg.url, http, sleeps=sleeps)
        first = client.send(PIXEL, journey())
        second = client.send(PIXEL, journey())
    assert first.ok and len(first.attempts) == 1
    assert second.ok and second.events_received == 5
    a1, a2 = second.attempts
    assert (a1.number, a1.status_code, a1.error_code, a1.outcome) == (1, 400, 17, "retry")
    assert "User request limit reached" in a1.detail
    assert (a2.number, a2.status_code, a2.outcome) == (2, 200, "ok")
    assert sleeps == [a1.wait_s]
    assert 0.5 <= a1.wait_s <= 1.0  # first backoff: half of 1 s plus jitter up to the other half


def test_send_5xx_then_success_is_retried(http):
    sleeps = Sleeps()
    with FakeGraph(now=lambda: NOW, fail_5xx_every=2) as fg:
        client = client_for(fg.url, http, sleeps=sleeps)
        client.send(PIXEL, journey())
        result = client.send(PIXEL, journey())
    assert result.ok
    assert [(a.status_code, a.error_code, a.outcome) for a in result.attempts] == [
        (500, 1, "retry"), (200, None, "ok")]
    assert len(sleeps) == 1


def test_send_throttled_always_gives_up_after_max_retries(http):
    sleeps = Sleeps()
    with FakeGraph(now=lambda: NOW, throttle_every=1, throttle_code=4) as fg:
        result = client_for(fg.url, http, sleeps=sleeps, max_retries=2).send(PIXEL, journey())
    assert not result.ok
    assert [a.outcome for a in result.attempts] == ["retry", "retry", "error"]
    assert [a.error_code for a in result.attempts] == [4, 4, 4]
    assert result.error.code == 4 and result.error.exit_code == 1
    assert result.findings == ["Gave up after 3 attempts (2 retries): Application request limit reached."]
    assert sleeps == [a.wait_s for a in result.attempts[:2]]
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_send_timeout_against_slow_server_is_retried_then_reported(http):
    sleeps = Sleeps()
    with FakeGraph(now=lambda: NOW, delay_ms=400) as fg:
        client = GraphClient(TOKEN, config=GraphConfig(graph_url=fg.url, max_retries=1, timeout_s=0.05),
                             http=http, sleep=sleeps, rng=random.Random(0))
        result = client.send(PIXEL, journey())
    assert not result.ok
    assert result.error.entry is gerr.TIMEOUT
    assert result.error.http_status is None and result.error.code is None
    assert [(a.status_code, a.outcome) for a in result.attempts] == [(None, "retry"), (None, "error")]
    assert "ReadTimeout" in result.attempts[0].detail
    assert len(sleeps) == 1


def test_send_slow_drip_answer_is_cut_at_the_deadline_and_retried(http):
    """Each byte arrives well within the read timeout, so only the attempt's deadline stops it."""
    with FakeGraph(now=lambda: NOW, faults=["slow_drip"], drip_interval_s=0.2) as fg:
        client = client_for(fg.url, http, timeout_s=2.0, deadline_s=0.6)
        result = client.send(PIXEL, journey())
    assert result.ok and result.events_received == 5
    assert [(a.outcome, a.status_code) for a in result.attempts] == [("retry", None), ("ok", 200)]
    assert "0.6 s deadline" in result.attempts[0].detail


def test_send_oversized_answer_is_not_read_into_memory():
    big = b'{"events_received": 1, "pad": "' + b"x" * 2_000_000 + b'"}'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=big))
    with httpx.Client(transport=transport) as mock:
        result = client_for("https://graph.facebook.com", mock).send(PIXEL, journey())
    assert not result.ok and result.error.entry is gerr.UNEXPECTED


def test_fake_graph_fault_script_is_served_in_order_then_normal_answers(http):
    with FakeGraph(now=lambda: NOW, faults=["invalid_100", "short_count"]) as fg:
        client = client_for(fg.url, http)
        first, second, third = (client.send(PIXEL, journey()) for _ in range(3))
        served = list(fg.faults_served)
    assert served == ["invalid_100", "short_count", "ok"]
    assert first.error.code == 100 and [a.outcome for a in first.attempts] == ["error"]
    assert second.ok and second.events_received == 4 and "received 4 of 5" in second.findings[0]
    assert third.ok and third.events_received == 5


def test_fake_graph_refuses_an_unknown_fault():
    with pytest.raises(ConfigError, match="unknown fault 'teapot'"):
        FakeGraph(faults=["teapot"])


def test_send_connection_refused_is_retried_then_reported(http):
    fg = FakeGraph()
    url = fg.start()
    fg.stop()
    sleeps = Sleeps()
    result = client_for(url, http, sleeps=sleeps, max_retries=2).send(PIXEL, journey())
    assert result.error.entry is gerr.CONNECTION
    assert [a.outcome for a in result.attempts] == ["retry", "retry", "error"]
    assert "ConnectError" in result.attempts[0].detail


def test_send_with_sentinel_token_leaves_no_trace_outside_the_header(http):
    with FakeGraph(token=SENTINEL, now=lambda: NOW) as fg:
        client = client_for(fg.url, http, token=SENTINEL)
        ok = client.send(PIXEL, journey(), test_event_code="TEST123")
        bad = client.send("999", journey())
        recorded = http.get(f"{fg.url}/__received").text
    assert ok.ok and bad.error is not None
    texts = [recorded, json.dumps(ok.as_dict()), json.dumps(bad.as_dict()), str(bad.error), repr(bad.error),
             repr(client), repr(ok), repr(bad)]
    for text in texts:
        assert SENTINEL not in text
    for rec in json.loads(recorded):
        assert SENTINEL not in rec["path"] and SENTINEL not in json.dumps(rec["body"])


# --- pure unit tests with MockTransport --------------------------------------------------------


def mock_client(handler, *, sleeps=None, token=TOKEN, **cfg):
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return GraphClient(token, config=GraphConfig(**cfg), http=http,
                       sleep=sleeps if sleeps is not None else Sleeps(), rng=random.Random(1))


def test_request_token_only_in_authorization_header():
    events = journey()
    req = build_request(GraphConfig(), SENTINEL, PIXEL, events, "TEST123")
    assert str(req.url) == f"{DEFAULT_GRAPH_URL}/v26.0/{PIXEL}/events"
    assert req.method == "POST"
    assert req.headers["authorization"] == f"Bearer {SENTINEL}"
    assert req.headers["content-type"] == "application/json"
    body = json.loads(req.content)
    assert body == {"data": events, "test_event_code": "TEST123"}
    assert SENTINEL not in str(req.url) and SENTINEL.encode() not in req.content


def test_send_success_without_messages_key_is_tolerated():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={"events_received": 5, "fbtrace_id": "facebook_trace_id"})

    result = mock_client(handler).send(PIXEL, journey())
    assert result.ok and result.clean and result.messages == []
    assert result.fbtrace_id == "facebook_trace_id"
    assert len(seen) == 1


def test_send_events_received_mismatch_is_a_finding():
    result = mock_client(lambda r: httpx.Response(200, json={"events_received": 3, "messages": [],
                                                              "fbtrace_id": "x"})).send(PIXEL, journey())
    assert result.ok and not result.clean
    assert result.findings == ["Meta received 3 of 5 events sent; the others were dropped. Check each event "
                               "against the payload rules and Meta's messages."]


def test_send_messages_become_warnings():
    body = {"events_received": 5, "messages": ["Parameter x deprecated", {"code": 1, "text": "y"}],
            "fbtrace_id": "t"}
    result = mock_client(lambda r: httpx.Response(200, json=body)).send(PIXEL, journey())
    assert result.warnings == ["Parameter x deprecated", '{"code": 1, "text": "y"}']
    assert result.ok and not result.clean


def test_send_timeout_then_success_with_mock_transport():
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"events_received": 5, "messages": [], "fbtrace_id": "t"})

    sleeps = Sleeps()
    result = mock_client(handler, sleeps=sleeps).send(PIXEL, journey())
    assert result.ok
    assert [a.outcome for a in result.attempts] == ["retry", "ok"]
    assert result.attempts[0].detail == "ReadTimeout after 10 s"
    assert len(sleeps) == 1


def test_send_5xx_html_body_is_transient_and_honours_retry_after():
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(503, text="<html>Service Unavailable</html>", headers={"Retry-After": "7"})
        return httpx.Response(200, json={"events_received": 5, "messages": [], "fbtrace_id": "t"})

    sleeps = Sleeps()
    result = mock_client(handler, sleeps=sleeps).send(PIXEL, journey())
    assert result.ok
    assert result.attempts[0].status_code == 503 and result.attempts[0].outcome == "retry"
    assert "Meta server error" in result.attempts[0].detail
    assert sleeps == [7.0]


@pytest.mark.parametrize("code", [100, 190, 10, 200, 250, 299, 102, 368])
def test_send_never_retries_validation_token_permission_codes(code):
    sleeps = Sleeps()
    body = {"error": {"message": "no", "type": "OAuthException", "code": code, "fbtrace_id": "t"}}
    result = mock_client(lambda r: httpx.Response(400, json=body), sleeps=sleeps).send(PIXEL, journey())
    assert len(result.attempts) == 1 and sleeps == []
    assert result.attempts[0].outcome == "error"


@pytest.mark.parametrize("code", [1, 2, 4, 17, 32, 341, 613])
def test_send_retries_transient_codes(code):
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(400, json={"error": {"message": "later", "code": code}})
        return httpx.Response(200, json={"events_received": 5, "messages": [], "fbtrace_id": "t"})

    result = mock_client(handler).send(PIXEL, journey())
    assert result.ok and [a.error_code for a in result.attempts] == [code, None]


def test_send_2xx_non_graph_body_is_unexpected_response():
    result = mock_client(lambda r: httpx.Response(200, text="<html>login</html>")).send(PIXEL, journey())
    assert not result.ok
    assert result.error.entry is gerr.UNEXPECTED and result.error.exit_code == 2


def test_send_undecodable_response_is_unexpected_and_not_retried():
    def handler(request):
        raise httpx.DecodingError("bad gzip", request=request)

    sleeps = Sleeps()
    result = mock_client(handler, sleeps=sleeps).send(PIXEL, journey())
    assert result.error.entry is gerr.UNEXPECTED
    assert [a.outcome for a in result.attempts] == ["error"] and sleeps == []


def test_send_token_echoed_by_server_is_redacted():
    body = {"error": {"message": f"Malformed access token {SENTINEL}", "type": "OAuthException", "code": 190,
                      "error_user_msg": f"token {SENTINEL} bad", "fbtrace_id": "t"}}
    result = mock_client(lambda r: httpx.Response(401, json=body), token=SENTINEL).send(PIXEL, journey())
    assert SENTINEL not in str(result.error)
    assert SENTINEL not in json.dumps(result.as_dict())
    assert "Malformed access token [redacted]" in result.error.message


def test_send_more_than_1000_events_refused_before_any_request():
    calls = []
    client = mock_client(lambda r: calls.append(r) or httpx.Response(200, json={}))
    with pytest.raises(PayloadError, match="1001 events exceed Meta's limit of 1000"):
        client.send(PIXEL, [journey()[0]] * (MAX_EVENTS + 1))
    assert calls == []


@pytest.mark.parametrize("pixel", ["", "abc", "12/34", "1234 5"])
def test_send_non_numeric_pixel_refused(pixel):
    with pytest.raises(ConfigError, match="Pixel ID"):
        mock_client(lambda r: httpx.Response(200, json={})).send(pixel, journey())


def test_client_requires_token_and_hides_it():
    with pytest.raises(ConfigError, match="CAPI_ACCESS_TOKEN"):
        GraphClient("  ")
    with pytest.raises(ConfigError, match="control characters"):
        GraphClient("abc\ndef")
    with GraphClient(SENTINEL) as client:
        assert SENTINEL not in repr(client)
        assert repr(client) == "GraphClient(graph_url='https://graph.facebook.com', api_version='v26.0')"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"graph_url": "http://graph.example.com"}, "plain http"),
    ({"graph_url": "ftp://graph.facebook.com"}, "not an http"),
    ({"graph_url": "https://graph.facebook.com?access_token=x"}, "query"),
    ({"graph_url": "https://user:pw@graph.facebook.com"}, "credentials"),
    ({"api_version": "26.0"}, "not like v26.0"),
    ({"timeout_s": 0}, "positive"),
    ({"max_retries": -1}, "negative"),
])
def test_graph_config_invalid_values_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GraphConfig(**kwargs)


def test_graph_config_from_env_and_overrides():
    cfg = GraphConfig.from_env({"CAPI_GRAPH_URL": "http://127.0.0.1:8790/", "CAPI_API_VERSION": "v25.0"},
                               api_version=None, max_retries=1)
    assert (cfg.graph_url, cfg.api_version, cfg.max_retries) == ("http://127.0.0.1:8790", "v25.0", 1)
    assert events_url(cfg, PIXEL) == f"http://127.0.0.1:8790/v25.0/{PIXEL}/events"
    assert GraphConfig.from_env({}) == GraphConfig()
    assert GraphConfig().timeout.connect == 5.0 and GraphConfig().timeout.read == 10.0


def test_backoff_grows_exponentially_capped_with_jitter():
    config = GraphConfig(backoff_base_s=1.0, backoff_max_s=4.0)
    client = GraphClient(TOKEN, config=config, rng=random.Random(3))
    waits = [client.backoff(n) for n in (1, 2, 3, 4, 5)]
    bounds = [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.0, 4.0), (2.0, 4.0)]
    assert all(lo <= w <= hi for w, (lo, hi) in zip(waits, bounds, strict=True))
    assert client.backoff(1, retry_after_s=100.0) == 4.0  # Retry-After is capped too
    client.close()


# --- the catalogue -----------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "subcode", "kind", "retryable"), [
    (100, 2804003, "payload", False), (100, 2804001, "payload", False), (100, 2804016, "payload", False),
    (100, 2804019, "payload", False), (100, 2804050, "payload", False), (100, 2804007, "payload", False),
    (100, 33, "config", False), (100, None, "payload", False), (100, 9999, "payload", False),
    (190, None, "config", False), (190, 463, "config", False), (190, 460, "config", False),
    (102, None, "config", False), (10, None, "permission", False), (200, None, "permission", False),
    (299, None, "permission", False), (3, None, "permission", False), (368, None, "permission", False),
    (4, None, "transient", True), (17, 2446079, "transient", True), (32, None, "transient", True),
    (613, 1487742, "transient", True), (341, None, "transient", True), (1, 99, "transient", True),
    (2, None, "transient", True), (80004, None, "transient", False),
])
def test_lookup_facts_table_codes(code, subcode, kind, retryable):
    entry = lookup(code, subcode)
    assert (entry.kind, entry.retryable) == (kind, retryable)
    assert entry.meaning and entry.fix and entry.title


def test_lookup_falls_back_by_http_status_and_unknown_codes():
    assert lookup(None, None, 502) is gerr.HTTP_5XX
    assert lookup(None, None, 401).code == 190
    assert lookup(None, None, 404) is gerr.UNEXPECTED
    unknown = lookup(12345, None, 400)
    assert unknown.title == "Graph API error 12345" and not unknown.retryable and unknown.kind == "payload"


def test_catalogue_retryable_exactly_the_documented_transient_codes():
    retryable = {e.code for e in CATALOGUE if e.retryable}
    assert retryable == {1, 2, 4, 17, 32, 341, 613}


# Meta's real bodies (docs/meta-examples.md §C) parse into the right entry.
EXAMPLE_BODIES = [
    (400, json.dumps({"error": {
        "message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 2804003,
        "is_transient": False, "error_user_title": "Timestamp de l\u2019\u00e9v\u00e8nement trop ancien",
        "error_user_msg": "Le timestamp ...", "fbtrace_id": "ASrojb9Zf5r-cU8FBLq9HY0"}}), 2804003),
    (400, json.dumps({"error": {
        "message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 2804050,
        "is_transient": False, "error_user_title": "Du har ikke tilf\u00f8jet", "error_user_msg": "Denne",
        "fbtrace_id": "Asu2mk752HZ0oT07IksFAwN"}}), 2804050),
    (400, json.dumps({"error": {
        "message": "Unsupported post request. Object with ID '1234567891234569' does not exist",
        "type": "GraphMethodException", "code": 100, "error_subcode": 33,
        "fbtrace_id": "facebook_px_trace_id_5"}}), 33),
    (401, json.dumps({"error": {
        "message": "Error validating access token: Session has expired", "type": "OAuthException",
        "code": 190, "error_subcode": 463, "fbtrace_id": "x"}}), 463),
]


@pytest.mark.parametrize(("status", "text", "subcode"), EXAMPLE_BODIES)
def test_parse_error_meta_example_bodies(status, text, subcode):
    err = parse_error(status, json.loads(text), endpoint="https://graph.facebook.com/v26.0/1/events")
    assert err.error_subcode == subcode
    assert err.entry is lookup(err.code, subcode)
    assert err.is_transient in (False, None)
    assert str(err).startswith(f"Graph API error {err.code}/{subcode} (HTTP {status}) from POST "
                               "https://graph.facebook.com/v26.0/1/events: ")
    assert err.title == err.entry.title
    assert err.message == json.loads(text)["error"]["message"]


def test_parse_error_localized_user_message_kept_and_catalogue_explains():
    err = parse_error(400, json.loads(EXAMPLE_BODIES[0][1]))
    assert err.user_title == "Timestamp de l\u2019\u00e9v\u00e8nement trop ancien"
    assert "more than 7 days" in str(err)


def test_parse_response_pure_success_and_failure():
    ok = parse_response(200, {"events_received": 2, "messages": [], "fbtrace_id": "t"}, 2)
    assert ok.ok and ok.clean and ok.attempts == []
    missing = parse_response(200, {"fbtrace_id": "t"}, 2)
    assert missing.ok and missing.findings[0].startswith("Meta's answer has no events_received count")
    bad = parse_response(400, {"error": {"code": 100, "error_subcode": 2804016, "message": "m"}}, 2)
    assert not bad.ok and bad.error.entry.title == "User parameter not hashed"


def test_graph_api_error_as_dict_has_no_secret_and_all_fields():
    err = parse_error(400, {"error": {"code": 4, "message": "(#4) Application request limit reached",
                                      "type": "OAuthException", "fbtrace_id": "t"}})
    d = err.as_dict()
    assert d["code"] == 4 and d["retryable"] is True and d["kind"] == "transient"
    assert set(d) == {"http_status", "code", "error_subcode", "type", "message", "user_title", "user_msg",
                      "fbtrace_id", "title", "meaning", "fix", "retryable", "kind"}
