from __future__ import annotations

import hashlib
import random
import re

import pytest

from capi_diag.meta.payload import (
    DEFAULT_USER_AGENT,
    JOURNEY_STEPS,
    MAX_EVENTS,
    PayloadError,
    TestIdentity,
    build_journey,
    fbc_from_fbclid,
    identity_user_data,
    new_fbp,
    request_body,
)

NOW = 1764975551
FBP_RE = re.compile(r"\Afb\.1\.\d{13}\.\d{10}\Z")
HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_new_fbp_documented_format_with_creation_ms():
    fbp = new_fbp(1596403881668, random.Random(3))
    assert FBP_RE.match(fbp)
    assert fbp.startswith("fb.1.1596403881668.")


def test_new_fbp_seconds_instead_of_ms_is_refused():
    with pytest.raises(PayloadError, match="13-digit"):
        new_fbp(NOW, random.Random(0))


def test_fbc_from_fbclid_keeps_click_id_unchanged():
    fbclid = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
    assert fbc_from_fbclid(fbclid, 1554763741205) == f"fb.1.1554763741205.{fbclid}"


@pytest.mark.parametrize("fbclid", ["", "has space", "a.b", "x?y"])
def test_fbc_from_fbclid_bad_click_id_is_refused(fbclid):
    with pytest.raises(PayloadError, match="not a click ID"):
        fbc_from_fbclid(fbclid, 1554763741205)


def test_build_journey_five_steps_in_order_sharing_one_fbp():
    events = build_journey(now=NOW, rng=random.Random(1))
    assert [e["event_name"] for e in events] == list(JOURNEY_STEPS)
    fbps = {e["user_data"]["fbp"] for e in events}
    assert len(fbps) == 1
    fbp = fbps.pop()
    assert FBP_RE.match(fbp) and fbp.startswith(f"fb.1.{NOW * 1000}.")
    assert len({e["event_id"] for e in events}) == 5
    for e in events:
        assert e["event_time"] == NOW
        assert e["action_source"] == "website"
        assert e["event_source_url"] == "https://www.example.com/"
        assert e["user_data"]["client_user_agent"] == DEFAULT_USER_AGENT
        assert e["user_data"]["client_ip_address"] == "2001:db8::1"
        assert "fbc" not in e["user_data"]


def test_build_journey_same_rng_seed_is_reproducible():
    assert build_journey(now=NOW, rng=random.Random(9)) == build_journey(now=NOW, rng=random.Random(9))
    assert build_journey(now=NOW, rng=random.Random(9)) != build_journey(now=NOW, rng=random.Random(10))


def test_build_journey_default_identity_hashed_with_us_rules():
    user = build_journey(now=NOW, rng=random.Random(1))[0]["user_data"]
    assert user["em"] == [sha("capi-diag.test@example.com")]
    assert user["ph"] == [sha("16505550123")]
    assert user["fn"] == [sha("mary")]
    assert user["ln"] == [sha("smith")]
    assert user["ct"] == [sha("menlopark")]
    assert user["st"] == [sha("ca")]
    assert user["zp"] == [sha("94025")]
    assert user["country"] == [sha("us")]
    assert user["external_id"] == [sha("capi-diag-test-user-1")]
    for key in ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "external_id"):
        assert HEX64.match(user[key][0])


def test_build_journey_identity_region_comes_from_its_country():
    identity = TestIdentity(email="Jo@Example.co.uk", phone="020 7946 0958", first_name="Jo",
                            last_name="Bloggs", city="London", zip="SW1A 1AA", country="United Kingdom",
                            state=None, external_id=None)
    user = build_journey(now=NOW, identity=identity, rng=random.Random(1))[0]["user_data"]
    assert user["ph"] == [sha("442079460958")]
    assert user["zp"] == [sha("sw1a1aa")]
    assert user["country"] == [sha("gb")]
    assert "st" not in user and "external_id" not in user


def test_build_journey_invalid_identity_value_names_attribute_and_reason():
    with pytest.raises(PayloadError, match=r"email='not-an-email' cannot be used as em: not an email"):
        build_journey(now=NOW, identity=TestIdentity(email="not-an-email"), rng=random.Random(1))


def test_build_journey_fbclid_gives_same_fbc_on_every_event():
    events = build_journey(now=NOW, fbclid="IwAR2F4abc", rng=random.Random(1))
    assert {e["user_data"]["fbc"] for e in events} == {f"fb.1.{NOW * 1000}.IwAR2F4abc"}


def test_build_journey_money_on_cart_checkout_purchase_only():
    events = {e["event_name"]: e for e in build_journey(now=NOW, value=100.0, quantity=4, currency="eur",
                                                          rng=random.Random(1))}
    assert "custom_data" not in events["PageView"]
    assert events["ViewContent"]["custom_data"] == {"content_ids": ["capi-diag-sku-1"],
                                                    "content_type": "product"}
    for step in ("AddToCart", "InitiateCheckout", "Purchase"):
        cd = events[step]["custom_data"]
        assert cd["value"] == 100.0
        assert cd["currency"] == "EUR"
        assert cd["contents"] == [{"id": "capi-diag-sku-1", "quantity": 4, "item_price": 25.0}]
    assert events["InitiateCheckout"]["custom_data"]["num_items"] == 4
    assert events["Purchase"]["custom_data"]["order_id"].startswith("order-")
    assert "order_id" not in events["AddToCart"]["custom_data"]


def test_build_journey_events_do_not_share_user_data_objects():
    events = build_journey(now=NOW, rng=random.Random(1))
    events[0]["user_data"]["em"].append("x")
    assert len(events[1]["user_data"]["em"]) == 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"now": NOW * 1000}, "whole seconds"),
    ({"now": NOW, "value": -1}, "non-negative"),
    ({"now": NOW, "currency": "US"}, "ISO 4217"),
    ({"now": NOW, "event_source_url": "www.example.com"}, "http"),
    ({"now": NOW, "quantity": 0}, "at least 1"),
])
def test_build_journey_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(PayloadError, match=match):
        build_journey(rng=random.Random(1), **kwargs)


def test_identity_user_data_explicit_region_overrides_country():
    user = identity_user_data(TestIdentity(phone="(650) 555-0123", country="US"), region="US")
    assert user["ph"] == [sha("16505550123")]


def test_request_body_has_data_and_test_code_and_no_token():
    events = build_journey(now=NOW, rng=random.Random(1))
    body = request_body(events, " TEST123 ")
    assert set(body) == {"data", "test_event_code"}
    assert body["data"] is events
    assert body["test_event_code"] == "TEST123"
    assert request_body(events, None) == {"data": events}


def test_request_body_limit_is_exactly_1000_events():
    event = {"event_name": "PageView"}
    assert len(request_body([event] * MAX_EVENTS, None)["data"]) == 1000
    with pytest.raises(PayloadError, match="1001 events exceed Meta's limit of 1000"):
        request_body([event] * (MAX_EVENTS + 1), None)


def test_request_body_empty_and_bad_code_are_refused():
    with pytest.raises(PayloadError, match="no events"):
        request_body([], "TEST123")
    with pytest.raises(PayloadError, match="not a Test Events code"):
        request_body([{"event_name": "PageView"}], "TEST 123")
