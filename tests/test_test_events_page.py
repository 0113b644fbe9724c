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
