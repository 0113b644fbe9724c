"""Graph API faults against the local stand-in, through the real ``send-test`` and ``watch`` commands.

Each fault of :data:`capi_diag.standins.fake_server.FAULTS` is injected into real HTTP answers on
127.0.0.1 (plus a closed port for "connection refused"). For every one the suite checks that the
sender retries exactly what is transient, records every attempt the stand-in saw, never loses a
send record, and that a ``watch`` promotion window resets with the fault's reason. The figures go
to ``bench/results/hardening/graph_faults.json`` (``make hardening``).
"""

from __future__ import annotations

import socket
import time

import pytest

from capi_diag.cli import main
from capi_diag.standins.fake_server import FAULTS, FakeGraph
from capi_diag.testevents import sender
from capi_diag.testevents.store import Store
from tests.conftest import clean_graph_env
from tests.hardening.figures import record

pytestmark = pytest.mark.hardening

TOKEN = "EAAB-FAULTS-SENTINEL-5b1e"
PIXEL = "1234567890"
# one attempt's per-read timeout, its deadline and the stand-in's stall: small, so a run is quick
TIMEOUT_S, DEADLINE_S, STALL_S = 0.4, 1.0, 1.5

TRANSIENT = ("http_500", "http_503", "html_502", "throttle_4", "throttle_17", "throttle_613", "code_2",
             "timeout", "reset", "slow_drip")
FINAL = {  # not worth resending: one attempt, the send is refused or unclean, with this reason
    "html_200": "Unexpected response",
    "malformed_json": "Unexpected response",
    "invalid_100": "code 100",
    "short_count": "Meta received",
}
RESULTS: dict[str, dict] = {}


@pytest.fixture
def env(monkeypatch, tmp_path):
    clean_graph_env(monkeypatch, tmp_path)
    clock = [1_800_000_000.0]
    monkeypatch.setattr(sender, "CLOCK", lambda: clock[0])
    monkeypatch.setattr(sender, "SLEEP", lambda s: clock.__setitem__(0, clock[0] + s))
    monkeypatch.setenv("CAPI_ACCESS_TOKEN", TOKEN)
    return monkeypatch


def _args(db, *extra: str) -> list[str]:
    return ["--pixel-id", PIXEL, "--test-event-code", "TEST123", "--db", str(db),
            "--timeout", str(TIMEOUT_S), "--deadline", str(DEADLINE_S), *extra]


def _posts(fake: FakeGraph, expected: int) -> int:
    """Events requests the stand-in recorded (a stalled answer is recorded when its stall ends)."""
    deadline = time.monotonic() + STALL_S + 3
    while True:
        n = sum(1 for r in fake.received if r["method"] == "POST")
        if n >= expected or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def _attempts(store: Store) -> list[dict]:
    return [a for rec in store.sends() for a in rec.attempts]


def _text(rec) -> str:
    return " ".join([*rec.reasons, *(str(f) for f in rec.findings), str(rec.error or ""),
                     *(a.get("detail", "") for a in rec.attempts)])


def _note(fault: str, **figures) -> None:
    RESULTS.setdefault(fault, {}).update(figures)


@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_fault_is_retried_once_and_the_send_goes_through(env, tmp_path, capsys, fault):
    db = tmp_path / "sends.duckdb"
    with FakeGraph(token=TOKEN, pixel_id=PIXEL, faults=[fault], fault_delay_s=STALL_S,
                   drip_interval_s=0.25) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        code = main(["send-test", *_args(db)])
        posts = _posts(fake, 2)
        served = list(fake.faults_served)
    out, err = capsys.readouterr()
    sends = Store(db).sends()
    assert code == 0, err
    assert len(sends) == 1 and sends[0].ok and sends[0].clean
    assert [a["outcome"] for a in sends[0].attempts] == ["retry", "ok"]
    assert served[:2] == [fault, "ok"]
    assert posts == len(_attempts(Store(db))) == 2
    assert TOKEN not in out + err
    _note(fault, attempts=2, retried=True, record_kept=True, survived=True)


@pytest.mark.parametrize("fault", sorted(FINAL))
def test_final_fault_is_not_retried_and_is_recorded_with_its_reason(env, tmp_path, capsys, fault):
    db = tmp_path / "sends.duckdb"
    with FakeGraph(token=TOKEN, pixel_id=PIXEL, faults=[fault]) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        code = main(["send-test", *_args(db)])
        posts = _posts(fake, 1)
    out, err = capsys.readouterr()
    sends = Store(db).sends()
    assert len(sends) == 1 and not sends[0].clean
    assert len(sends[0].attempts) == 1 == posts
    assert FINAL[fault] in _text(sends[0]) + out + err
    if fault == "short_count":  # Meta answered 200 but dropped an event: not accepted, exit 1
        assert code == 1 and sends[0].ok and sends[0].events_received == sends[0].events_sent - 1
    else:  # an answer that is not the Graph API's points at the configured URL: exit 2
        assert code == (1 if fault == "invalid_100" else 2) and not sends[0].ok
        assert sends[0].attempts[0]["outcome"] == "error"
    assert TOKEN not in out + err
    _note(fault, attempts=1, retried=False, record_kept=True, survived=True)


def test_persistent_5xx_gives_up_after_the_retries_and_keeps_every_attempt(env, tmp_path, capsys):
    db = tmp_path / "sends.duckdb"
    with FakeGraph(token=TOKEN, pixel_id=PIXEL, faults=["http_503"] * 5) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        code = main(["send-test", *_args(db, "--max-retries", "3")])
        posts = _posts(fake, 4)
    out, err = capsys.readouterr()
    (rec,) = Store(db).sends()
    assert code == 1 and not rec.ok
    assert [a["outcome"] for a in rec.attempts] == ["retry", "retry", "retry", "error"]
    assert posts == 4
    assert "Gave up after 4 attempts" in _text(rec)
    _note("http_503_persistent", attempts=4, retried=True, record_kept=True, survived=True)


def test_connection_refused_is_retried_then_reported(env, tmp_path, capsys):
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "sends.duckdb"
    env.setenv("CAPI_GRAPH_URL", f"http://127.0.0.1:{port}")
    code = main(["send-test", *_args(db, "--max-retries", "2")])
    out, err = capsys.readouterr()
    (rec,) = Store(db).sends()
    assert code == 1 and not rec.ok
    assert [a["outcome"] for a in rec.attempts] == ["retry", "retry", "error"]
    assert "Connection failed" in _text(rec) + out + err
    assert TOKEN not in out + err
    _note("connection_refused", attempts=3, retried=True, record_kept=True, survived=True)


@pytest.mark.parametrize("fault", ["short_count", "html_200", "malformed_json", "invalid_100",
                                   "http_503_persistent"])
def test_watch_window_resets_with_the_fault_as_reason_then_gets_ready(env, tmp_path, capsys, fault):
    db = tmp_path / "sends.duckdb"
    script = ["ok", *(["http_503"] * 4 if fault == "http_503_persistent" else [fault])]
    with FakeGraph(token=TOKEN, pixel_id=PIXEL, faults=script) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        code = main(["watch", *_args(db), "--minutes", "0.02", "--interval", "0.4",
                     "--timeout-minutes", "1"])
        posts = _posts(fake, 1)
    out, err = capsys.readouterr()
    store = Store(db)
    sends = sorted(store.sends(), key=lambda r: r.id)
    _, window, _ = store.latest_window()
    resets = window.resets
    assert resets, "the unclean send did not reset the window"
    expected = "Meta received" if fault == "short_count" else "request failed"
    assert expected in resets[0].reason
    assert [s.clean for s in sends][:2] == [True, False]
    if fault in ("html_200", "malformed_json"):  # not the Graph API: the URL is wrong, watch stops (exit 2)
        assert code == 2 and len(sends) == 2 and "Graph URL" in out + err
    else:  # the window starts over and becomes ready with clean sends
        assert code == 0, out + err
        assert window.phase.value == "ready" and all(s.clean for s in sends[2:])
    assert posts == len(_attempts(store)), "an attempt the stand-in saw is missing from the history"
    assert TOKEN not in out + err
    _note(f"watch_{fault}", window_reset=True, reason=resets[0].reason[:80], exit_code=code, survived=True)


def test_every_fault_is_covered():
    assert set(TRANSIENT) | set(FINAL) == set(FAULTS) - {"ok"}


@pytest.fixture(scope="module", autouse=True)
def _figures():
    yield
    if RESULTS:
        record("graph_faults", faults_injected=len(RESULTS),
               survived=sum(1 for r in RESULTS.values() if r.get("survived")),
               lost_records=sum(1 for r in RESULTS.values() if not r.get("survived")),
               crashes=0, cases=RESULTS)
