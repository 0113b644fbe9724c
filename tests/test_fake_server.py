"""The Graph API stand-in, driven over real HTTP on 127.0.0.1 with plain httpx (not GraphClient), so
these tests pin the stand-in's own answers."""

from __future__ import annotations

import json

import httpx
import pytest

from capi_diag.core.errors import ConfigError
from capi_diag.standins.fake_server import SEVEN_DAYS_S, FakeGraph

NOW = 1764975551
H = "a" * 64  # a SHA-256-shaped value
TOKEN = "test-token"
PIXEL = "1234567890"
HTTP = httpx.Client(timeout=5)  # one client: building one costs ~0.1 s (TLS context)


def event(**overrides):
    e = {
        "event_name": "Purchase",
        "event_time": NOW - 10,
        "event_id": "ev-1",
        "action_source": "website",
        "event_source_url": "https://www.example.com/",
        "user_data": {"em": [H], "ph": [H], "client_ip_address": "2001:db8::1",
                      "client_user_agent": "Mozilla/5.0", "fbp": "fb.1.1764975551000.1234567890"},
    }
    for key, value in overrides.items():
        if value is None:
            e.pop(key, None)
        else:
            e[key] = value
    return e


def with_user(**user):
    e = event()
    for key, value in user.items():
        if value is None:
            e["user_data"].pop(key, None)
        else:
            e["user_data"][key] = value
    return e


@pytest.fixture
def fake():
    with FakeGraph(token=TOKEN, pixel_id=PIXEL, now=lambda: NOW) as fg:
        yield fg


def post(fg, events=None, *, pixel=PIXEL, token=TOKEN, body=None, version="v26.0", headers=None):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    h.update(headers or {})
    payload = body if body is not None else json.dumps({"data": events, "test_event_code": "TEST123"})
    r = HTTP.post(f"{fg.url}/{version}/{pixel}/events", content=payload, headers=h)
    return r.status_code, r.json()


def test_fake_graph_valid_batch_answers_like_meta(fake):
    status, body = post(fake, [event(), event(event_id="ev-2")])
    assert status == 200
    assert set(body) == {"events_received", "messages", "fbtrace_id"}
    assert body["events_received"] == 2
    assert body["messages"] == []
    assert isinstance(body["fbtrace_id"], str) and len(body["fbtrace_id"]) == 23


def test_fake_graph_binds_loopback_only():
    with pytest.raises(ConfigError, match="binds to 127.0.0.1 only"):
        FakeGraph().start(host="0.0.0.0")


def test_fake_graph_url_is_loopback_with_port(fake):
    assert fake.url.startswith("http://127.0.0.1:")
    assert int(fake.url.rsplit(":", 1)[1]) > 0


def test_fake_graph_unknown_pixel_is_100_33(fake):
    status, body = post(fake, [event()], pixel="999")
    assert status == 400
    err = body["error"]
    assert (err["code"], err["error_subcode"], err["type"]) == (100, 33, "GraphMethodException")
    assert err["message"].startswith("Unsupported post request. Object with ID '999' does not exist")


def test_fake_graph_bad_token_is_190_http_401(fake):
    status, body = post(fake, [event()], token="wrong")
    assert status == 401
    assert body["error"]["code"] == 190
    assert body["error"]["message"] == "Invalid OAuth access token - Cannot parse access token"
    assert body["error"]["type"] == "OAuthException"


def test_fake_graph_missing_token_is_104(fake):
    status, body = post(fake, [event()], token=None)
    assert status == 400
    assert body["error"]["code"] == 104


def test_fake_graph_token_checked_before_pixel(fake):
    status, body = post(fake, [event()], pixel="999", token="wrong")
    assert (status, body["error"]["code"]) == (401, 190)


def test_fake_graph_event_older_than_7_days_rejects_whole_batch(fake):
    status, body = post(fake, [event(), event(event_time=NOW - SEVEN_DAYS_S - 1)])
    assert status == 400
    err = body["error"]
    assert (err["code"], err["error_subcode"], err["is_transient"]) == (100, 2804003, False)
    assert err["error_user_title"] == "Event Timestamp Too Old"


def test_fake_graph_event_exactly_7_days_old_is_accepted(fake):
    status, body = post(fake, [event(event_time=NOW - SEVEN_DAYS_S)])
    assert (status, body["events_received"]) == (200, 1)


@pytest.mark.parametrize("key", ["em", "ph", "ct", "country"])
def test_fake_graph_unhashed_user_parameter_is_2804016_naming_it(fake, key):
    status, body = post(fake, [with_user(**{key: ["Plain Text"]})])
    assert status == 400
    err = body["error"]
    assert (err["code"], err["error_subcode"]) == (100, 2804016)
    assert err["error_user_title"] == "User Parameter Not Hashed"
    assert err["error_user_msg"].startswith(f"The {key} parameter isn\u2019t hashed.")


def test_fake_graph_unhashed_plain_string_em_is_rejected(fake):
    status, body = post(fake, [with_user(em="john@example.com")])
    assert body["error"]["error_subcode"] == 2804016


def test_fake_graph_hash_with_appendix_and_uppercase_is_accepted(fake):
    status, body = post(fake, [with_user(em=[H.upper() + ".AQQCAQIB"])])
    assert status == 200


@pytest.mark.parametrize("fbc", ["fb.1.1554763741205", "fb.1.abc.IwAR", "IwAR2F4abc", "fb.1.1554763741205."])
def test_fake_graph_malformed_fbc_is_2804001(fake, fbc):
    status, body = post(fake, [with_user(fbc=fbc)])
    assert status == 400
    assert (body["error"]["code"], body["error"]["error_subcode"]) == (100, 2804001)
    assert body["error"]["error_user_title"] == "Click ID Incorrectly Formatted"


@pytest.mark.parametrize("fbc", ["fb.1.1554763741205.IwAR2F4-dbP0l7Mn1Iaw_Q",
                                 "fb.2.1554763741205.IwAR.AQQCAQIB"])
def test_fake_graph_well_formed_fbc_is_accepted(fake, fbc):
    status, _ = post(fake, [with_user(fbc=fbc)])
    assert status == 200


@pytest.mark.parametrize("field", ["event_name", "event_time", "action_source", "user_data"])
def test_fake_graph_missing_required_field_is_2804019_naming_path(fake, field):
    status, body = post(fake, [event(), event(**{field: None})])
    assert status == 400
    err = body["error"]
    assert (err["code"], err["error_subcode"]) == (100, 2804019)
    assert err["error_user_msg"] == f"The parameter $['data'][1]['{field}'] is required."


def test_fake_graph_invalid_json_is_2804019(fake):
    status, body = post(fake, body="{'data': [1]}")
    assert (status, body["error"]["error_subcode"]) == (400, 2804019)


@pytest.mark.parametrize("user", [
    {},
    {"client_user_agent": "Mozilla/5.0"},
    {"ge": [H], "ct": [H], "st": [H], "country": [H]},
    {"db": [H], "client_user_agent": "Mozilla/5.0"},
    {"fn": [H], "ge": [H]},
    {"ln": [H]},
    {"em": [], "client_user_agent": "ua"},
])
def test_fake_graph_insufficient_customer_information_is_2804050(fake, user):
    status, body = post(fake, [event(user_data=user)])
    assert status == 400
    assert (body["error"]["code"], body["error"]["error_subcode"]) == (100, 2804050)


@pytest.mark.parametrize("user", [
    {"client_ip_address": "1.2.3.4", "client_user_agent": "test user agent"},  # Meta's own A2 example
    {"fn": [H], "ln": [H]},
    {"em": [H]},
    {"fbp": "fb.1.1596403881668.1116446470"},
])
def test_fake_graph_sufficient_customer_information_is_accepted(fake, user):
    status, body = post(fake, [event(user_data=user)])
    assert status == 200


def test_fake_graph_more_than_1000_events_is_an_error(fake):
    status, body = post(fake, [event()] * 1001)
    assert status == 400
    assert body["error"]["code"] == 100
    assert "at most 1000" in body["error"]["error_user_msg"]
    status, body = post(fake, [event()] * 1000)
    assert (status, body["events_received"]) == (200, 1000)


def test_fake_graph_website_event_without_url_or_ua_gets_messages(fake):
    e = event(event_source_url=None)
    e["user_data"].pop("client_user_agent")
    status, body = post(fake, [e])
    assert status == 200
    assert body["events_received"] == 1
    assert body["messages"] == [
        "Event 0 (Purchase): website events should include event_source_url.",
        "Event 0 (Purchase): website events should include client_user_agent.",
    ]


def test_fake_graph_throttles_every_nth_request():
    with FakeGraph(now=lambda: NOW, throttle_every=3) as fg:
        results = [post(fg, [event()]) for _ in range(6)]
    assert [s for s, _ in results] == [200, 200, 400, 200, 200, 400]
    assert results[2][1]["error"]["code"] == 17
    assert results[2][1]["error"]["message"] == "User request limit reached"


def test_fake_graph_throttle_code_4():
    with FakeGraph(now=lambda: NOW, throttle_every=1, throttle_code=4) as fg:
        status, body = post(fg, [event()])
    assert body["error"]["code"] == 4
    assert body["error"]["message"] == "(#4) Application request limit reached"


def test_fake_graph_5xx_every_nth_request():
    with FakeGraph(now=lambda: NOW, fail_5xx_every=2) as fg:
        statuses = [post(fg, [event()])[0] for _ in range(4)]
        body = post(fg, [event()])[1]
    assert statuses == [200, 500, 200, 500]
    assert body["events_received"] == 1


def test_fake_graph_bad_options_are_refused():
    with pytest.raises(ConfigError, match="throttle_code"):
        FakeGraph(throttle_code=32)
    with pytest.raises(ConfigError, match="delay_ms"):
        FakeGraph(delay_ms=-1)


def test_fake_graph_records_requests_with_token_redacted(fake):
    post(fake, [event()])
    r = HTTP.get(f"{fake.url}/__received")
    records = r.json()
    assert len(records) == 1
    rec = records[0]
    assert rec["path"] == f"/v26.0/{PIXEL}/events"
    assert rec["headers"]["Authorization"] == "[redacted]"
    assert rec["body"]["test_event_code"] == "TEST123"
    assert rec["body"]["data"][0]["event_id"] == "ev-1"
    assert rec["status"] == 200
    assert TOKEN not in json.dumps(records)
    assert fake.received == records
    assert HTTP.delete(f"{fake.url}/__received").json() == {"success": True}
    assert HTTP.get(f"{fake.url}/__received").json() == []


def test_fake_graph_token_in_query_accepted_like_meta_and_recorded_as_sent(fake):
    r = HTTP.post(f"{fake.url}/v26.0/{PIXEL}/events?access_token={TOKEN}",
                   json={"data": [event()]})
    assert r.status_code == 200
    # the record keeps the URL as received, so a test can catch a client leaking its token there
    assert fake.received[0]["path"].endswith(f"access_token={TOKEN}")


def test_fake_graph_form_post_like_python_sdk_is_accepted(fake):
    data = json.dumps([json.dumps(event())])  # the Python SDK sends each event as a JSON string
    r = HTTP.post(f"{fake.url}/v25.0/{PIXEL}/events", data={"data": data, "access_token": TOKEN})
    assert (r.status_code, r.json()["events_received"]) == (200, 1)


def test_fake_graph_unknown_path_and_get_are_errors(fake):
    r = HTTP.post(f"{fake.url}/v26.0/{PIXEL}/adspixels", headers={"Authorization": f"Bearer {TOKEN}"},
                   json={"data": [event()]})
    assert r.status_code == 400 and r.json()["error"]["code"] == 2500
    assert HTTP.get(f"{fake.url}/v26.0/{PIXEL}/events").status_code == 400


def test_fake_graph_answer_without_http_is_same_logic():
    fg = FakeGraph(now=lambda: NOW)
    body = json.dumps({"data": [event()]}).encode()
    status, payload = fg.answer(f"/v26.0/{PIXEL}/events", {"authorization": "Bearer test-token",
                                                            "content-type": "application/json"}, body)
    assert (status, payload["events_received"]) == (200, 1)


def test_fake_graph_validation_does_not_import_diagnostics_rules():
    import capi_diag.standins.fake_server as mod

    source = open(mod.__file__, encoding="utf-8").read()
    assert "capi_diag.engine.rules" not in source.replace("``capi_diag.engine.rules``", "")
    assert "import capi_diag.core.normalize" not in source and "from capi_diag.core.normalize" not in source


def test_fake_graph_stop_releases_and_restart_works():
    fg = FakeGraph(now=lambda: NOW)
    url1 = fg.start()
    fg.stop()
    fg.stop()  # idempotent
    url2 = fg.start()
    try:
        assert post(fg, [event()])[0] == 200
    finally:
        fg.stop()
    assert url1.startswith("http://127.0.0.1:") and url2.startswith("http://127.0.0.1:")
