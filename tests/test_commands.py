"""send-test / watch / fake-graph over real HTTP against the Graph stand-in on 127.0.0.1.

The commands' clock and sleep are replaced by a virtual clock (``capi_diag.testevents.sender.CLOCK``
and ``SLEEP``), so windows of a few seconds run instantly and their moments are exact; the HTTP is real.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time

import httpx
import pytest

from capi_diag.cli import main
from capi_diag.meta.client import GraphClient, GraphConfig
from capi_diag.meta.token import Secret
from capi_diag.standins.fake_server import FakeGraph
from capi_diag.testevents import sender as sender_module
from capi_diag.testevents.sender import Sender
from capi_diag.testevents.store import Store
from capi_diag.verdict.promotion import BLIND_SPOT, CONTRACT_CHECK, Phase, Window
from tests.conftest import clean_graph_env

PIXEL = "1234567890"
TOKEN = "test-token"
START = 1_800_000_000.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class VirtualClock:
    def __init__(self, start: float = START) -> None:
        self.t = start
        self.sleeps: list[float] = []
        self.on_sleep = None

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        if self.on_sleep is not None:
            self.on_sleep()


@pytest.fixture
def clock(monkeypatch):
    c = VirtualClock()
    monkeypatch.setattr(sender_module, "CLOCK", c)
    monkeypatch.setattr(sender_module, "SLEEP", c.sleep)
    return c


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No token or Graph URL from the developer's machine; cwd and HOME without secrets files."""
    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CAPI_DIAG_HOME", str(tmp_path / "capi-home"))
    return monkeypatch


def fake_graph(clock, **kw) -> FakeGraph:
    fg = FakeGraph(token=kw.pop("token", TOKEN), pixel_id=kw.pop("pixel_id", PIXEL), now=clock, **kw)
    fg.start()
    return fg


@pytest.fixture
def run(env, tmp_path, capsys):
    """Run a CLI command against ``fake``; returns (exit code, stdout, stderr)."""
    db = tmp_path / "sends.duckdb"

    def _run(fake: FakeGraph, command: str, *args: str, token: str | None = TOKEN):
        env.setenv("CAPI_GRAPH_URL", fake.url)
        if token is not None:
            env.setenv("CAPI_ACCESS_TOKEN", token)
        code = main([command, "--pixel-id", PIXEL, "--test-event-code", "TEST123", "--db", str(db), *args])
        out, err = capsys.readouterr()
        return code, out, err

    _run.db = db
    return _run


def test_send_test_clean_journey_exit_0(run, clock):
    with fake_graph(clock) as fake:
        code, out, err = run(fake, "send-test")
        received = list(fake.received)
    assert (code, err) == (0, "")
    assert out.count(" accepted") == 5
    assert "Meta: events_received 5/5, messages: none" in out
    assert "clean: yes" in out
    assert "local validation (match_keys, contract; event_id/fbp/client context): 0 error(s)" in out
    assert BLIND_SPOT in out
    assert len(received) == 1
    body = received[0]["body"]
    assert body["test_event_code"] == "TEST123"
    assert [e["event_name"] for e in body["data"]] == [
        "PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]
    (rec,) = Store(run.db).sends()
    assert (rec.ok, rec.clean, rec.events_sent, rec.events_received) == (True, True, 5, 5)
    assert rec.sent_at == START
    assert [e["status"] for e in rec.events] == ["accepted"] * 5


def test_send_test_bad_token_exit_2_with_catalogue_fix(run, clock):
    with fake_graph(clock, token="the-right-token") as fake:
        code, out, err = run(fake, "send-test", token="a-wrong-token")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "190" in err and "Generate a new access token" in err
    assert "fix: Generate a new access token" in out
    (rec,) = Store(run.db).sends()
    assert (rec.ok, rec.error["code"], rec.error["kind"]) == (False, 190, "config")
    assert len(rec.attempts) == 1  # never retried


def test_send_test_unknown_pixel_exit_2(run, clock):
    with fake_graph(clock, pixel_id="5555") as fake:
        code, out, err = run(fake, "send-test")
    assert code == 2
    assert "100/33" in err and "Check the Pixel ID" in err
    (rec,) = Store(run.db).sends()
    assert (rec.error["code"], rec.error["error_subcode"]) == (100, 33)


def test_send_test_missing_token_exit_2_nothing_sent(run, clock):
    with fake_graph(clock) as fake:
        code, out, err = run(fake, "send-test", token=None)
        assert fake.received == []
    assert code == 2
    assert "CAPI_ACCESS_TOKEN" in err and "secrets.toml" in err
    assert len(err.strip().splitlines()) == 1


def test_send_test_token_from_secrets_toml_exit_0(run, clock, tmp_path):
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('CAPI_ACCESS_TOKEN = "from-secrets"\n')
    with fake_graph(clock, token="from-secrets") as fake:
        code, out, err = run(fake, "send-test", token=None)
    assert (code, err) == (0, "")


def test_send_test_invalid_pixel_id_exit_2_nothing_sent(env, run, clock, capsys):
    with fake_graph(clock) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        env.setenv("CAPI_ACCESS_TOKEN", TOKEN)
        code = main(["send-test", "--pixel-id", "12ab", "--test-event-code", "T1", "--db", str(run.db)])
        assert fake.received == []
    assert code == 2
    assert "--pixel-id '12ab' is not a number" in capsys.readouterr().err


def test_send_test_plain_http_graph_url_to_remote_host_exit_2(run, clock, capsys):
    with fake_graph(clock) as fake:
        code, _, _ = run(fake, "send-test", "--graph-url", "http://graph.example.com")
        assert fake.received == []
    assert code == 2


def test_send_test_payload_rejected_exit_1(run, clock):
    # the stand-in's clock is 8 days ahead: every event is "older than 7 days" (100/2804003)
    with fake_graph(lambda: clock() + 8 * 86400) as fake:
        code, out, err = run(fake, "send-test")
    assert (code, err) == (1, "")
    assert out.count("rejected: Event timestamp too old") == 5
    assert "fix: Send events within 7 days" in out
    (rec,) = Store(run.db).sends()
    assert (rec.clean, rec.error["error_subcode"], rec.error["kind"]) == (False, 2804003, "payload")


def test_send_test_throttled_then_success_attempts_recorded(run, clock):
    with fake_graph(clock, throttle_every=2) as fake:
        assert run(fake, "send-test")[0] == 0
        code, out, err = run(fake, "send-test")
    assert code == 0
    assert "attempt 1: HTTP 400 code 17: retry in" in out
    assert "attempt 2: HTTP 200: ok" in out
    rec = Store(run.db).sends()[0]
    assert [(a["status_code"], a["error_code"], a["outcome"]) for a in rec.attempts] == [
        (400, 17, "retry"), (200, None, "ok")]
    assert rec.clean is True
    assert len(clock.sleeps) == 1 and 0.5 <= clock.sleeps[0] <= 1.0  # backoff 1 s base, half jitter


def test_send_test_5xx_then_success(run, clock):
    with fake_graph(clock, fail_5xx_every=2) as fake:
        assert run(fake, "send-test")[0] == 0
        code, out, _ = run(fake, "send-test")
    assert code == 0
    rec = Store(run.db).sends()[0]
    assert [(a["status_code"], a["error_code"], a["outcome"]) for a in rec.attempts] == [
        (500, 1, "retry"), (200, None, "ok")]


def test_send_test_throttled_beyond_retries_exit_1(run, clock):
    with fake_graph(clock, throttle_every=1) as fake:
        code, out, err = run(fake, "send-test", "--max-retries", "2")
        assert len(fake.received) == 3
    assert (code, err) == (1, "")
    rec = Store(run.db).sends()[0]
    assert [a["outcome"] for a in rec.attempts] == ["retry", "retry", "error"]


def test_watch_reaches_ready_with_fractional_minutes_exit_0(run, clock):
    with fake_graph(clock) as fake:
        code, out, err = run(fake, "watch", "--minutes", "0.05", "--interval", "0.5")
        assert len(fake.received) == 7  # sends at +0, +0.5 ... +3.0
    assert (code, err) == (0, "")
    assert "window: READY" in out and CONTRACT_CHECK in out and BLIND_SPOT in out
    store = Store(run.db)
    window_id, window, meta = store.latest_window()
    assert window.phase is Phase.READY
    assert window.ready_at - window.started_at == 3.0
    assert meta == {"pixel_id": PIXEL, "test_event_code": "TEST123"}
    sends = store.sends(window_id=window_id)
    assert len(sends) == 7 and all(s.clean for s in sends)
    assert sends[0].phase_after == "ready" and sends[-1].phase_after == "streak"


def test_watch_resets_after_injected_error_then_ready(run, clock):
    with fake_graph(clock, fail_5xx_every=2) as fake:
        def heal():
            if len(fake.received) >= 2:
                fake.fail_5xx_every = 0
        clock.on_sleep = heal
        code, out, _ = run(fake, "watch", "--minutes", "0.05", "--interval", "0.5", "--max-retries", "0")
    assert code == 0
    assert "last reset: request failed: Unknown error 1/99" in out
    _, window, _ = Store(run.db).latest_window()
    (reset,) = window.resets
    assert reset.at - START == 0.5
    assert window.streak_start - START == 1.0
    assert window.ready_at - START == 4.0


def test_watch_timeout_exit_1(run, clock):
    with fake_graph(lambda: clock() + 8 * 86400) as fake:
        code, out, err = run(fake, "watch", "--minutes", "0.05", "--interval", "0.5",
                             "--timeout-minutes", "0.06")
    assert (code, err) == (1, "")
    assert "not ready within 0.06 minute(s)" in out
    _, window, _ = Store(run.db).latest_window()
    assert window.phase is Phase.TIMED_OUT
    assert window.timed_out_at - START == pytest.approx(3.6)


def test_watch_config_error_stops_at_once_exit_2(run, clock):
    with fake_graph(clock, token="the-right-token") as fake:
        code, out, err = run(fake, "watch", "--minutes", "0.05", "--interval", "0.5", token="wrong")
        assert len(fake.received) == 1
    assert code == 2 and "190" in err


def test_watch_timeout_shorter_than_window_exit_2(run, clock):
    with fake_graph(clock) as fake:
        code, _, err = run(fake, "watch", "--minutes", "1", "--timeout-minutes", "0.5")
        assert fake.received == []
    assert code == 2 and "--timeout-minutes" in err


def test_watch_rejects_nonpositive_interval_exit_2(run, clock):
    with fake_graph(clock) as fake:
        code, _, err = run(fake, "watch", "--interval", "0")
    assert code == 2 and "greater than 0" in err


def test_sender_local_validation_error_blocks_send(env, clock, tmp_path):
    with fake_graph(clock) as fake:
        client = GraphClient(TOKEN, config=GraphConfig(graph_url=fake.url))
        sender = Sender(client=client, pixel_id=PIXEL, test_event_code="TEST123",
                        secret=Secret(TOKEN, "test"), rng=random.Random(3))
        journey = sender.build(START)
        journey[0]["user_data"]["em"] = ["Mary.Smith@Example.com"]
        sender.build = lambda now: journey
        window = Window(window_s=600, interval_s=60)
        window.start(START)
        store = Store(tmp_path / "s.duckdb")
        sent = sender.send(now=START, window=window, window_id="w", store=store)
        assert fake.received == []
        client.close()
    assert sent.blocked
    assert sent.record.events[0]["status"] == "blocked locally"
    assert any(r.startswith("local validation error: PageView #1: match_keys.unhashed") for r in sent.record.reasons)
    assert window.phase is Phase.WAITING and window.last_reset.at == START
    assert store.sends()[0].ok is False


def test_sender_missing_fbp_is_unclean(env, clock):
    with fake_graph(clock) as fake:
        client = GraphClient(TOKEN, config=GraphConfig(graph_url=fake.url))
        sender = Sender(client=client, pixel_id=PIXEL, test_event_code="TEST123",
                        secret=Secret(TOKEN, "test"), rng=random.Random(3))
        journey = sender.build(START)
        del journey[4]["user_data"]["fbp"]
        sender.build = lambda now: journey
        sent = sender.send(now=START)
        client.close()
    assert sent.accepted and not sent.record.clean
    assert "missing Purchase #5: fbp" in sent.record.reasons
    assert sent.record.events[4]["notes"] == ["missing fbp"]


def test_sender_keeps_the_record_when_sending_fails_inside_capi_diag(env, tmp_path):
    """A failure that is neither Meta's answer nor the network (a bug, a broken transport) still
    leaves a stored send record, a reset window with the reason, and no token."""
    def explode(request):
        raise RuntimeError(f"transport broke while holding {request.headers['authorization']}")

    with httpx.Client(transport=httpx.MockTransport(explode)) as http:
        client = GraphClient(TOKEN, config=GraphConfig(), http=http)
        sender = Sender(client=client, pixel_id=PIXEL, test_event_code="TEST123",
                        secret=Secret(TOKEN, "test"), rng=random.Random(3))
        window = Window(window_s=600, interval_s=60)
        window.start(START)
        store = Store(tmp_path / "s.duckdb")
        sent = sender.send(now=START, window=window, window_id="w", store=store)
    (rec,) = store.sends()
    assert not rec.ok and not rec.clean
    assert rec.reasons[0].startswith("request failed: Unexpected response")
    assert "RuntimeError" in rec.error["message"] and TOKEN not in json.dumps(rec.error)
    assert window.last_reset.reason.startswith("request failed: Unexpected response")
    assert sent.record.events[0]["status"].startswith("not delivered")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fake_graph_command_serves_with_flags(env, tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "capi_diag", "fake-graph", "--port", str(port), "--token", "tok",
         "--pixel-id", "42", "--throttle-every", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{url}/__received", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        ok = httpx.post(f"{url}/v26.0/42/events", headers={"Authorization": "Bearer tok"},
                        json={"data": [{"event_name": "PageView"}]}, timeout=5)
        bad_pixel = httpx.post(f"{url}/v26.0/43/events", headers={"Authorization": "Bearer tok"},
                               json={"data": []}, timeout=5)
        recorded = httpx.get(f"{url}/__received", timeout=5).json()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert ok.json()["error"]["code"] == 17  # --throttle-every 1
    assert bad_pixel.json()["error"]["error_subcode"] == 33
    assert [r["status"] for r in recorded] == [400, 400]
    assert f"http://127.0.0.1:{port}" in out
    assert json.dumps(recorded).count("tok") == 0
