"""The ten-minute promotion window: when a test setup has been clean long enough to go live.

Before launch, teams send test events with a ``test_event_code`` and watch Events Manager; the rule
they follow is "wait ten minutes with no missing-field warnings, token errors or dedup warnings".
This module turns that rule into a gate, as a small state machine: an Enum of phases
(:class:`Phase`), an Enum of triggers (:class:`Trigger`) and one transition table
(:data:`TRANSITIONS`). Time is always passed in (``now=``), never read here, so tests are exact.

Rules (docs/test-events.md repeats them):

* A send is **clean** when the request succeeded, Meta's ``events_received`` equals the events sent,
  Meta returned no ``messages``, local validation found no error and no warning, and every event
  carried ``event_id``, ``fbp`` and client context (IP address and user agent).
  :func:`unclean_reasons` is that definition, written once.
* An unclean send **resets** the window at the send's time and records why.
* The **streak** starts at the first clean send after the last reset (or after the start).
* Going longer than ``gap_factor`` (1.5) × the interval without a send while a streak runs resets
  the window at the moment the gap was exceeded (``last send + 1.5 × interval``), reason ``gap``.
  A gap of exactly 1.5 × the interval is allowed.
* The setup is **ready to promote** once the streak has lasted the window (default 10 minutes;
  ``now - streak_start >= window``) and included at least one complete journey (the moment is the
  later of the two). Readiness is evaluated after every send and on every clock tick; because each
  pending event (gap, ready, timeout) is processed at its own moment in time order, the verdict does
  not depend on how often the clock ticks.
* An optional **timeout** ends a window that is not ready ``timeout`` seconds after its start
  (``now >= start + timeout``). When ready and timeout fall on the same second, ready wins.
* Once ready, the verdict stands through later gaps (the clean stretch happened), but an unclean
  send afterwards resets the window: the setup is broken now. Sends while no window runs (phase
  ``idle``) or after a timeout are recorded elsewhere but do not move the window.

What the gate cannot see: the test journeys are server events only, so Meta's deduplication against
Pixel events is not exercised here; it is checked by the ``dedup`` analysis of real logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

DEFAULT_MINUTES = 10.0
DEFAULT_INTERVAL_S = 60.0
DEFAULT_TIMEOUT_MINUTES = 30.0
GAP_FACTOR = 1.5
"""The longest pause allowed between two sends of a streak, as a multiple of the interval."""

CONTRACT_CHECK = "test_event_code_present"
"""The contract check (``contract`` section, checklist item) that finds test codes left in production logs."""

READY_ADVICE = (
    "Ready to promote. Now remove the test_event_code from your server integration before going live: "
    "Meta does not sandbox test events (they flow into Events Manager and are used for targeting and "
    f"measurement). After launch, run `capi_diag report` on your production logs: the contract check "
    f"`{CONTRACT_CHECK}` finds any test code left behind."
)

BLIND_SPOT = (
    "What this gate cannot see: these test journeys are server events only, so Meta's deduplication "
    "against your Pixel (browser) events is not exercised here. Check dedup with the `dedup` analysis "
    "of real browser and server logs (`capi_diag report`), or rehearse the launch in a real browser "
    "(`capi-diag rehearse`, docs/rehearsal.md), which pairs your Pixel's hits with your server's sends."
)


class Phase(str, Enum):
    """Where the window is."""

    IDLE = "idle"
    """No window started."""
    WAITING = "waiting"
    """Started or reset; waiting for the first clean send."""
    STREAK = "streak"
    """Clean sends running; counting toward the window."""
    READY = "ready"
    """The streak lasted the window with a complete journey: ready to promote."""
    TIMED_OUT = "timed_out"
    """The timeout came before readiness."""


class Trigger(str, Enum):
    """What happens to the window."""

    START = "start"
    CLEAN_SEND = "clean_send"
    UNCLEAN_SEND = "unclean_send"
    GAP = "gap"
    ELAPSED = "elapsed"
    TIMEOUT = "timeout"


P, T = Phase, Trigger
TRANSITIONS: dict[tuple[Phase, Trigger], Phase] = {
    (P.IDLE, T.START): P.WAITING,
    (P.IDLE, T.CLEAN_SEND): P.IDLE,
    (P.IDLE, T.UNCLEAN_SEND): P.IDLE,
    (P.IDLE, T.GAP): P.IDLE,
    (P.IDLE, T.ELAPSED): P.IDLE,
    (P.IDLE, T.TIMEOUT): P.IDLE,
    (P.WAITING, T.START): P.WAITING,
    (P.WAITING, T.CLEAN_SEND): P.STREAK,
    (P.WAITING, T.UNCLEAN_SEND): P.WAITING,
    (P.WAITING, T.GAP): P.WAITING,
    (P.WAITING, T.ELAPSED): P.WAITING,
    (P.WAITING, T.TIMEOUT): P.TIMED_OUT,
    (P.STREAK, T.START): P.WAITING,
    (P.STREAK, T.CLEAN_SEND): P.STREAK,
    (P.STREAK, T.UNCLEAN_SEND): P.WAITING,
    (P.STREAK, T.GAP): P.WAITING,
    (P.STREAK, T.ELAPSED): P.READY,
    (P.STREAK, T.TIMEOUT): P.TIMED_OUT,
    (P.READY, T.START): P.WAITING,
    (P.READY, T.CLEAN_SEND): P.READY,
    (P.READY, T.UNCLEAN_SEND): P.WAITING,
    (P.READY, T.GAP): P.READY,
    (P.READY, T.ELAPSED): P.READY,
    (P.READY, T.TIMEOUT): P.READY,
    (P.TIMED_OUT, T.START): P.WAITING,
    (P.TIMED_OUT, T.CLEAN_SEND): P.TIMED_OUT,
    (P.TIMED_OUT, T.UNCLEAN_SEND): P.TIMED_OUT,
    (P.TIMED_OUT, T.GAP): P.TIMED_OUT,
    (P.TIMED_OUT, T.ELAPSED): P.TIMED_OUT,
    (P.TIMED_OUT, T.TIMEOUT): P.TIMED_OUT,
}
"""Every (phase, trigger) pair and the phase it leads to; the one place the machine's moves live."""
del P, T


def unclean_reasons(
    *,
    ok: bool,
    events_sent: int,
    events_received: int | None,
    messages: Sequence[str] = (),
    local_errors: Sequence[str] = (),
    local_warnings: Sequence[str] = (),
    missing_context: Sequence[str] = (),
    error: str | None = None,
) -> list[str]:
    """Why a send is not clean (empty list = clean): the clean-send definition, written once.

    ``missing_context`` names what events lacked (``"AddToCart: fbp"``); ``local_errors`` and
    ``local_warnings`` are short labels of local validation findings; ``error`` is Meta's error in
    one line when the request failed.
    """
    reasons: list[str] = []
    if not ok:
        reasons.append(f"request failed: {error}" if error else "request failed")
    elif events_received != events_sent:
        reasons.append(f"Meta received {events_received} of {events_sent} events")
    for m in messages:
        reasons.append(f"Meta message: {m}")
    for e in local_errors:
        reasons.append(f"local validation error: {e}")
    for w in local_warnings:
        reasons.append(f"local validation warning: {w}")
    for c in missing_context:
        reasons.append(f"missing {c}")
    return reasons


@dataclass(frozen=True)
class SendOutcome:
    """What the window needs to know about one send."""

    clean: bool
    complete_journey: bool = True
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Transition:
    """One move of the machine, kept for the history shown to the user."""

    at: float
    trigger: Trigger
    before: Phase
    after: Phase
    reason: str = ""


@dataclass
class Window:
    """The promotion window's state. Mutated by :meth:`start`, :meth:`send` and :meth:`tick`."""

    window_s: float = DEFAULT_MINUTES * 60
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float | None = None
    gap_factor: float = GAP_FACTOR
    phase: Phase = Phase.IDLE
    started_at: float | None = None
    streak_start: float | None = None
    complete_at: float | None = None
    last_send_at: float | None = None
    ready_at: float | None = None
    timed_out_at: float | None = None
    sends: int = 0
    clean_sends: int = 0
    streak_sends: int = 0
    log: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError("window_s must be positive")
        if not self.interval_s > 0:
            raise ValueError("interval_s must be positive")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError("timeout_s must be positive")

    # -- derived values ---------------------------------------------------------------------------
    @property
    def max_gap_s(self) -> float:
        return self.gap_factor * self.interval_s

    @property
    def resets(self) -> list[Transition]:
        """The resets (unclean sends and gaps), oldest first."""
        return [t for t in self.log if t.trigger in (Trigger.UNCLEAN_SEND, Trigger.GAP)
                and t.before in (Phase.WAITING, Phase.STREAK, Phase.READY)]

    @property
    def last_reset(self) -> Transition | None:
        resets = self.resets
        return resets[-1] if resets else None

    @property
    def done(self) -> bool:
        return self.phase in (Phase.READY, Phase.TIMED_OUT)

    def streak_s(self, now: float) -> float:
        """How long the current streak has lasted at ``now`` (0 without a streak)."""
        if self.phase is Phase.READY and self.ready_at is not None and self.streak_start is not None:
            return max(0.0, now - self.streak_start)
        if self.phase is not Phase.STREAK or self.streak_start is None:
            return 0.0
        return max(0.0, now - self.streak_start)

    def remaining_s(self, now: float) -> float | None:
        """Seconds until ready if every send stays clean (None while waiting for a clean send)."""
        if self.phase is Phase.READY:
            return 0.0
        if self.phase is not Phase.STREAK or self.streak_start is None:
            return None
        return max(0.0, self.streak_start + self.window_s - now)

    def next_send_due(self, now: float) -> float | None:
        """When the next send is due (one interval after the last), for a sender loop."""
        if self.phase in (Phase.IDLE, Phase.TIMED_OUT):
            return None
        if self.last_send_at is None:
            return now
        return self.last_send_at + self.interval_s

    # -- triggers ---------------------------------------------------------------------------------
    def start(self, now: float) -> Phase:
        """Start (or restart) the window at ``now``."""
        self._move(now, Trigger.START, "window started")
        self.started_at = now
        self.streak_start = self.complete_at = self.last_send_at = None
        self.ready_at = self.timed_out_at = None
        self.streak_sends = 0
        return self.phase

    def tick(self, now: float) -> Phase:
        """Process everything due by ``now`` (gap, ready, timeout), each at its own moment."""
        while True:
            due = self._next_due(now)
            if due is None:
                return self.phase
            at, trigger, reason = due
            if trigger is Trigger.GAP:
                self.streak_start = self.complete_at = None
                self.streak_sends = 0
            elif trigger is Trigger.ELAPSED:
                self.ready_at = at
            elif trigger is Trigger.TIMEOUT:
                self.timed_out_at = at
            self._move(at, trigger, reason)

    def send(self, outcome: SendOutcome, now: float) -> Phase:
        """Record a send made at ``now``, after processing what was due before it."""
        self.tick(now)
        if self.phase in (Phase.IDLE, Phase.TIMED_OUT):
            return self.phase  # no window runs: the table keeps the phase, nothing to log
        self.sends += 1
        self.last_send_at = now
        if outcome.clean:
            self.clean_sends += 1
            if self.phase is Phase.WAITING:
                self.streak_start = now
                self.complete_at = None
                self.streak_sends = 0
            self.streak_sends += 1
            if outcome.complete_journey and self.complete_at is None:
                self.complete_at = now
            self._move(now, Trigger.CLEAN_SEND, "")
        else:
            reason = "; ".join(outcome.reasons) or "unclean send"
            self.streak_start = self.complete_at = self.ready_at = None
            self.streak_sends = 0
            self._move(now, Trigger.UNCLEAN_SEND, reason)
        return self.tick(now)

    # -- internals --------------------------------------------------------------------------------
    def _next_due(self, now: float) -> tuple[float, Trigger, str] | None:
        candidates: list[tuple[float, int, Trigger, str]] = []
        if self.phase is Phase.STREAK and self.streak_start is not None:
            if self.complete_at is not None:
                at = max(self.streak_start + self.window_s, self.complete_at)
                if at <= now:
                    candidates.append((at, 0, Trigger.ELAPSED,
                                       f"clean for {_fmt(self.window_s)} with a complete journey"))
            if self.last_send_at is not None:
                gap_at = self.last_send_at + self.max_gap_s
                if now > gap_at:
                    candidates.append((gap_at, 1, Trigger.GAP,
                                       f"gap: no send for more than {_fmt(self.max_gap_s)} "
                                       f"({self.gap_factor:g} × the {_fmt(self.interval_s)} interval)"))
        if self.phase in (Phase.WAITING, Phase.STREAK) and self.timeout_s is not None \
                and self.started_at is not None:
            at = self.started_at + self.timeout_s
            if at <= now:
                candidates.append((at, 2, Trigger.TIMEOUT,
                                   f"timeout: not ready {_fmt(self.timeout_s)} after the start"))
        if not candidates:
            return None
        at, _, trigger, reason = min(candidates, key=lambda c: (c[0], c[1]))
        return at, trigger, reason

    def _move(self, at: float, trigger: Trigger, reason: str) -> None:
        before = self.phase
        self.phase = TRANSITIONS[(before, trigger)]
        self.log.append(Transition(at, trigger, before, self.phase, reason))

    # -- presentation and storage -----------------------------------------------------------------
    def summary(self, now: float) -> str:
        """One line for the CLI and the page: phase, streak, time left, last reset."""
        if self.phase is Phase.IDLE:
            return "window: not started"
        if self.phase is Phase.READY:
            if self.ready_at is None or self.streak_start is None or self.started_at is None:
                return "window: READY"
            return (f"window: READY: clean for {_fmt(self.ready_at - self.streak_start)} "
                    f"(+{_fmt(self.streak_start - self.started_at)} to +{_fmt(self.ready_at - self.started_at)} "
                    f"after the start) with {self.streak_sends} clean send(s) and a complete journey")
        if self.phase is Phase.TIMED_OUT:
            return f"window: TIMED OUT (not ready within {_fmt(self.timeout_s or 0)})"
        last = self.last_reset
        reset = f"; last reset: {last.reason}" if last else ""
        if self.phase is Phase.WAITING:
            return f"window: waiting for a clean send{reset}"
        left = self.remaining_s(now) or 0.0
        journey = "" if self.complete_at is not None else "; no complete journey yet"
        return (f"window: clean streak {_fmt(self.streak_s(now))} of {_fmt(self.window_s)}, "
                f"{_fmt(left)} left ({self.streak_sends} clean send(s){journey}){reset}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["phase"] = self.phase.value
        d["log"] = [{**asdict(t), "trigger": t.trigger.value, "before": t.before.value,
                     "after": t.after.value} for t in self.log]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Window:
        d = dict(d)
        log = [Transition(t["at"], Trigger(t["trigger"]), Phase(t["before"]), Phase(t["after"]),
                          t.get("reason", "")) for t in d.pop("log", [])]
        phase = Phase(d.pop("phase", Phase.IDLE.value))
        w = cls(**d)
        w.phase = phase
        w.log = log
        return w


def _fmt(seconds: float) -> str:
    """``90`` -> ``1m30s``; fractions kept to a tenth for short test windows."""
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s".replace(".0s", "s")
    m, rest = divmod(s, 60)
    rest_text = f"{rest:.0f}s" if rest else ""
    return f"{int(m)}m{rest_text}"
