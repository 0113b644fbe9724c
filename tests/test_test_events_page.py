"""The Test Events page in Streamlit's AppTest, sending over real HTTP to the stand-in on 127.0.0.1.

The page's clock (``test_events.CLOCK``) is virtual so the window's countdown is exact; each
``at.run()`` is one rerun, as the live fragment would do every second.
"""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from capi_diag.standins.fake_server import FakeGraph
from capi_diag.ui.pages import test_events
from tests.conftest import clean_graph_env

SCRIPT = "from capi_diag.ui.pages import test_events\ntest_events.render()\n"
SENTINEL = "EAAB-PAGE-SENTINEL-0c41d7e2"
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def page(monkeypatch, tmp_path):
    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CAPI_DIAG_HOME", str(tmp_path / "capi-home"))
    clock = Clock()
    monkeypatch.setattr(test_events, "CLOCK", clock)
    fake = FakeGraph(token=SENTINEL, pixel_id="1234567890", now=clock)
    monkeypatch.setenv("CAPI_GRAPH_URL", fake.start())
    yield fake, clock
    fake.stop()


def _app(query: dict | None = None) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def _fill(at: AppTest, token: str | None = SENTINEL) -> AppTest:
    at.text_input(key="te_pixel_id").input("1234567890")
    at.text_input(key="te_test_code").input("TEST123")
    if token is not None:
        at.text_input(key="te_token").input(token)
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "json")
             for e in getattr(at, kind)]
    parts += [at.dataframe[i].value.to_json() for i in range(len(at.dataframe))]
    return json.dumps(parts, default=str)


def _posts(fake: FakeGraph) -> list[dict]:
    """The event sends the stand-in received (the connect check's GET is not one)."""
    return [r for r in fake.received if r["method"] == "POST"]


def _history(at: AppTest):
    """The send-history table (the one with a 'sent (UTC)' column)."""
    frames = [d.value for d in at.dataframe if "sent (UTC)" in d.value.columns]
    assert frames, "no send history table on the page"
    return frames[0]


def test_page_without_inputs_shows_empty_state(page):
    at = _app()
    assert not at.exception
    assert at.button(key="te_send").disabled
    assert "No sends yet" in _texts(at)
    assert "cannot be changed on this page" in _texts(at)


def test_page_send_journey_accepted_and_listed(page):
    fake, _ = page
    at = _fill(_app())
    assert [json.loads(j.value)["test_event_code"] for j in at.json] == ["TEST123"]
    at.button(key="te_send").click().run()
    assert not at.exception and not at.error
    assert len(_posts(fake)) == 1 and len(_posts(fake)[0]["body"]["data"]) == 5
    history = _history(at)
    assert list(history["result"]) == ["accepted"] and list(history["clean"]) == ["yes"]
    assert list(history["received"]) == ["5/5"]


def test_page_preview_shows_hashed_identity(page):
    at = _fill(_app())
    (preview,) = [json.loads(j.value) for j in at.json]
    assert "capi-diag.test@example.com" not in json.dumps(preview)
    em = preview["data"][0]["user_data"]["em"][0]
    assert len(em) == 64 and all(c in "0123456789abcdef" for c in em)


def test_page_bad_token_shows_catalogue_fix_and_blocks_sending(page):
    fake, _ = page
    at = _fill(_app(), token="wrong-token")
    assert any("Not connected: Invalid or expired access token" in e.value and "Generate a new access token"
               in e.value for e in at.error)
    assert at.button(key="te_send").disabled and at.button(key="te_start").disabled
    assert "Sending is blocked: Meta refused the connection check" in _texts(at)
    assert [r["method"] for r in fake.received] == ["GET"]  # the check only: nothing was sent


def test_page_window_counts_down_and_reaches_ready(page):
    fake, clock = page
    at = _fill(_app())
    at.number_input(key="te_minutes").set_value(0.05)
    at.number_input(key="te_interval").set_value(1.0)
    at.run()
    at.button(key="te_start").click().run()
    assert "window: clean streak 0s of 3s" in _texts(at)
    for _ in range(3):
        clock.t += 1.0
        at.run()
    assert not at.exception
    assert len(_posts(fake)) == 3  # sends at +0, +1, +2; the tick at +3 finds the window ready
    assert any("Ready to promote" in s.value for s in at.success)
    assert "test_event_code_present" in _texts(at)


def test_page_window_resets_after_refused_send(page):
    fake, clock = page
    at = _fill(_app())
    at.number_input(key="te_minutes").set_value(0.05)
    at.number_input(key="te_interval").set_value(1.0)
    at.run()
    at.button(key="te_start").click().run()
    fake.pixel_id = "999"  # the next send is refused (100/33)
    clock.t += 1.0
    at.run()
    assert "last reset: request failed: Unknown Pixel or no access 100/33" in _texts(at)


def test_page_reload_keeps_history_and_window(page):
    at = _fill(_app())
    at.button(key="te_send").click().run()
    session = at.query_params["te_session"]
    session = session[0] if isinstance(session, list) else session
    again = _app({"te_session": session})
    assert list(_history(again)["result"]) == ["accepted"]


def test_page_never_shows_the_token(page):
    fake, clock = page
    at = _fill(_app())
    at.button(key="te_send").click().run()
    at.button(key="te_start").click().run()
    assert SENTINEL not in _texts(at)
    assert all(SENTINEL not in json.dumps(r["body"]) + r["path"] for r in fake.received)


# -- the browser rehearsal section ---------------------------------------------------------------------
def test_rehearsal_section_asks_for_what_is_missing(page, tmp_path):
    at = _app()
    assert [s.value for s in at.subheader if s.value == "Browser rehearsal"] == ["Browser rehearsal"]
    at.radio(key="rh_source").set_value("A journey file").run()
    at.button(key="rh_start").click().run()
    assert "Enter the Pixel ID and the test event code above first." in _texts(at)
    at = _fill(at)
    at.button(key="rh_start").click().run()
    assert "Choose a journey file (upload it or give its path)." in _texts(at)
    bad = tmp_path / "j.toml"
    bad.write_text("[[step]]\nurl = '/'\n")
    at.text_input(key="rh_journey_path").input(str(bad))
    at.text_input(key="rh_send_log").input(str(tmp_path / "send.jsonl"))
    at.run()
    at.button(key="rh_start").click().run()
    assert f"journey file {bad}, step 1: url '/' is relative but the file has no base_url" in _texts(at)
    assert "Pairing rate" not in _texts(at)


def _until_finished(at: AppTest, seconds: float = 90.0) -> AppTest:
    import time

    end = time.time() + seconds
    while time.time() < end:
        time.sleep(1.0)
        at.run()
        text = _texts(at)
        if "Ready: the browser and the server agreed" in text or "Not ready when the timeout ended" in text:
            return at
        if len(at.error):
            raise AssertionError(f"the rehearsal failed: {[e.value for e in at.error]}")
    raise AssertionError(f"the rehearsal did not finish: {_texts(at)[:2000]}")


def _short_window(at: AppTest) -> None:
    at.number_input(key="rh_minutes").set_value(0.05)
    at.number_input(key="rh_interval").set_value(1.0)
    at.number_input(key="rh_grace").set_value(2.0)
    at.number_input(key="rh_timeout").set_value(0.15)


@pytest.mark.browser
def test_rehearsal_of_the_demo_shop_from_the_page(page):
    at = _app()
    at.multiselect(key="rh_faults").set_value(["value_differs"])
    _short_window(at)
    at.run()
    at.button(key="rh_start").click().run()
    at = _until_finished(at)
    text = _texts(at)
    assert "Not ready when the timeout ended" in text
    assert "Dedup warning: value differs: the Pixel sent 29.90, the server 34.9" in text
    runs = [e.label for e in at.expander if e.label.startswith("Run ")]
    assert runs and all(label.endswith("warnings; events seen on both sides: 5 of 5") for label in runs)
    table = [d.value for d in at.dataframe if "Pixel hit" in d.value.columns][0]
    assert list(table["Event"]) == ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]
    assert list(table["Pixel hit"]) == ["yes"] * 5 and list(table["Server event"]) == ["yes"] * 5
    assert "Pairing rate" not in text


@pytest.mark.browser
def test_rehearsal_of_a_journey_file_never_shows_the_token(page, tmp_path):
    from capi_diag.shop.server import DemoShop

    send_log = tmp_path / "shop-send-log.jsonl"
    # the shop's own stand-in on the real clock (the page's runs on a virtual one)
    with FakeGraph(token=SENTINEL, pixel_id="1234567890") as fake, \
            DemoShop(graph_url=fake.url, token=SENTINEL, pixel_id="1234567890", test_event_code="TEST123",
                     send_log=str(send_log)) as shop:
        journey = tmp_path / "journey.toml"
        journey.write_text(shop.journey())
        at = _fill(_app())
        at.radio(key="rh_source").set_value("A journey file")
        at.run()
        at.text_input(key="rh_journey_path").input(str(journey))
        at.text_input(key="rh_send_log").input(str(send_log))
        _short_window(at)
        at.run()
        at.button(key="rh_start").click().run()
        at = _until_finished(at)
    text = _texts(at)
    assert "Ready: the browser and the server agreed" in text
    assert SENTINEL not in text and SENTINEL not in json.dumps([e.label for e in at.expander])
    assert "Pairing rate" not in text


def test_rehearsal_without_chromium_says_how_to_install_it(page, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # the subprocess finds no chromium
    at = _app()
    at.button(key="rh_start").click().run()
    import time

    for _ in range(60):
        time.sleep(0.5)
        at.run()
        if len(at.error):
            break
    errors = [e.value for e in at.error]
    assert errors and "Chromium not found" in errors[0] and "apt-get install chromium" in errors[0], errors
