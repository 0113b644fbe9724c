"""The promotion window state machine, driven by an injected clock with exact boundaries."""

from __future__ import annotations

import json

import pytest

from capi_diag.verdict.promotion import (
    CONTRACT_CHECK,
    READY_ADVICE,
    TRANSITIONS,
    Phase,
    SendOutcome,
    Trigger,
    Window,
    unclean_reasons,
)

CLEAN = SendOutcome(clean=True)
PARTIAL = SendOutcome(clean=True, complete_journey=False)
DIRTY = SendOutcome(clean=False, reasons=("Meta message: missing fbc",))


def window(**kw) -> Window:
    kw.setdefault("window_s", 600)
    kw.setdefault("interval_s", 60)
    w = Window(**kw)
    w.start(0)
    return w


def test_transitions_every_phase_trigger_pair_defined():
    assert len(TRANSITIONS) == len(Phase) * len(Trigger)
    assert {(p, t) for p in Phase for t in Trigger} == set(TRANSITIONS)


def test_window_start_is_waiting_until_first_clean_send():
    w = window()
    assert w.phase is Phase.WAITING
    assert w.tick(10_000) is Phase.WAITING
    assert w.remaining_s(10_000) is None


def test_window_clean_sends_every_interval_ready_exactly_at_window():
    w = window()
    for t in range(0, 600, 60):
        assert w.send(CLEAN, t) is Phase.STREAK
    assert w.tick(599.999) is Phase.STREAK
    assert w.remaining_s(599) == 1
    assert w.send(CLEAN, 600) is Phase.READY
    assert w.ready_at == 600
    assert w.streak_sends == 11


def test_window_ready_on_tick_without_send_at_boundary():
    w = window()
    for t in range(0, 600, 60):
        w.send(CLEAN, t)
    assert w.tick(600) is Phase.READY
    assert w.ready_at == 600


def test_window_streak_starts_at_first_clean_send_after_start():
    w = window()
    w.send(DIRTY, 30)
    w.send(CLEAN, 100)
    assert w.streak_start == 100
    for t in range(160, 700, 60):
        w.send(CLEAN, t)
    assert w.phase is Phase.STREAK
    assert w.tick(699) is Phase.STREAK
    assert w.tick(700) is Phase.READY


def test_window_unclean_send_resets_with_reason_and_time():
    w = window()
    for t in range(0, 300, 60):
        w.send(CLEAN, t)
    assert w.send(DIRTY, 300) is Phase.WAITING
    last = w.last_reset
    assert (last.at, last.trigger, last.reason) == (300, Trigger.UNCLEAN_SEND, "Meta message: missing fbc")
    assert w.streak_start is None
    w.send(CLEAN, 360)
    assert w.streak_start == 360
    for t in range(420, 960, 60):
        w.send(CLEAN, t)
    assert w.tick(959) is Phase.STREAK
    assert w.tick(960) is Phase.READY


def test_window_gap_exactly_one_and_a_half_intervals_allowed():
    w = window()
    w.send(CLEAN, 0)
    assert w.tick(90) is Phase.STREAK
    assert w.send(CLEAN, 90) is Phase.STREAK
    assert w.resets == []


def test_window_gap_longer_than_one_and_a_half_intervals_resets_at_gap_moment():
    w = window()
    w.send(CLEAN, 0)
    assert w.tick(90.001) is Phase.WAITING
    reset = w.last_reset
    assert reset.trigger is Trigger.GAP and reset.at == 90
    assert "gap" in reset.reason


def test_window_gap_detected_by_late_send_without_tick():
    w = window()
    w.send(CLEAN, 0)
    assert w.send(CLEAN, 91) is Phase.STREAK
    assert w.last_reset.at == 90
    assert w.streak_start == 91


def test_window_needs_complete_journey_ready_at_first_complete_send():
    w = window()
    for t in range(0, 720, 60):
        w.send(PARTIAL, t)
    assert w.phase is Phase.STREAK
    assert w.send(CLEAN, 720) is Phase.READY
    assert w.ready_at == 720


def test_window_late_tick_uses_exact_moments_ready_before_gap():
    w = window()
    for t in range(0, 600, 60):
        w.send(CLEAN, t)
    # last send at 540: the gap would be exceeded after 630, ready is due at 600
    assert w.tick(5_000) is Phase.READY
    assert w.ready_at == 600
    assert w.resets == []


def test_window_late_tick_gap_before_ready_resets():
    w = window()
    w.send(CLEAN, 0)
    assert w.tick(5_000) is Phase.WAITING
    assert w.last_reset.at == 90


def test_window_timeout_at_exact_boundary():
    w = window(timeout_s=900)
    w.send(DIRTY, 0)
    assert w.tick(899) is Phase.WAITING
    assert w.tick(900) is Phase.TIMED_OUT
    assert w.timed_out_at == 900
    assert w.send(CLEAN, 901) is Phase.TIMED_OUT


def test_window_ready_and_timeout_same_second_ready_wins():
    w = window(timeout_s=600)
    for t in range(0, 600, 60):
        w.send(CLEAN, t)
    assert w.tick(600) is Phase.READY
    assert w.timed_out_at is None


def test_window_ready_survives_gap_but_not_unclean_send():
    w = window()
    for t in range(0, 660, 60):
        w.send(CLEAN, t)
    assert w.phase is Phase.READY
    assert w.tick(10_000) is Phase.READY
    assert w.send(DIRTY, 10_001) is Phase.WAITING
    assert w.ready_at is None


def test_window_idle_sends_do_not_move():
    w = Window(window_s=600, interval_s=60)
    assert w.send(CLEAN, 0) is Phase.IDLE
    assert w.log == []


def test_window_fractional_minutes_and_interval():
    w = window(window_s=0.05 * 60, interval_s=0.5)
    for i in range(6):
        w.send(CLEAN, i * 0.5)
    assert w.phase is Phase.STREAK
    assert w.send(CLEAN, 3.0) is Phase.READY


def test_window_restart_clears_streak():
    w = window()
    for t in range(0, 660, 60):
        w.send(CLEAN, t)
    w.start(1000)
    assert w.phase is Phase.WAITING
    assert (w.started_at, w.streak_start, w.ready_at) == (1000, None, None)


def test_window_roundtrip_through_json_keeps_state():
    w = window(timeout_s=900)
    w.send(DIRTY, 0)
    w.send(CLEAN, 60)
    again = Window.from_dict(json.loads(json.dumps(w.to_dict())))
    assert again == w
    assert again.send(CLEAN, 120) is Phase.STREAK


def test_window_summary_mentions_streak_and_reset():
    w = window()
    w.send(DIRTY, 0)
    w.send(CLEAN, 60)
    assert w.summary(150) == ("window: clean streak 1m30s of 10m, 8m30s left (1 clean send(s)); "
                              "last reset: Meta message: missing fbc")


def test_window_rejects_nonpositive_settings():
    with pytest.raises(ValueError):
        Window(window_s=0)
    with pytest.raises(ValueError):
        Window(interval_s=-1)


def test_unclean_reasons_clean_send_is_empty():
    assert unclean_reasons(ok=True, events_sent=5, events_received=5) == []


def test_unclean_reasons_each_condition_listed():
    assert unclean_reasons(
        ok=True, events_sent=5, events_received=4, messages=["m1"], local_errors=["em unhashed"],
        local_warnings=["external_id unhashed"], missing_context=["Purchase: fbp"],
    ) == [
        "Meta received 4 of 5 events", "Meta message: m1", "local validation error: em unhashed",
        "local validation warning: external_id unhashed", "missing Purchase: fbp",
    ]
    assert unclean_reasons(ok=False, events_sent=5, events_received=None, error="190 token") == [
        "request failed: 190 token"]


def test_ready_advice_points_to_contract_check():
    assert CONTRACT_CHECK in READY_ADVICE
    assert "remove the test_event_code" in READY_ADVICE
