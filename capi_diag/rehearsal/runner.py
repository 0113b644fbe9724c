"""Runs the rehearsal: the journey once per interval in headless Chromium, the send log read as it
grows, each run paired and judged (:mod:`~capi_diag.rehearsal.pairing`), and the promotion window of
:mod:`capi_diag.verdict.promotion` moved by the runs, stored with the send history
(:class:`~capi_diag.testevents.store.Store`).

A run enters the window at its start time, once every expected event of it is judged (as soon as both
sides are seen; a missing side waits at most the grace period after the journey ended). Runs enter in
order, and the window's clock never runs past the start of a run still waiting to enter, so a late
verdict cannot be overtaken by a "ready". At the timeout, pending pairs are judged as they stand.

The output file (``--output``) is rewritten after every change of a run or of the window, atomically.
Playwright drives the system's Chromium (``executable_path``); nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from capi_diag.core.errors import EXIT_BAD_RESULT, EXIT_OK, UsageError
from capi_diag.io.pixel_hits import Hit, HitFilter, is_pixel_path, parse_hit
from capi_diag.rehearsal.journey import Journey
from capi_diag.rehearsal.pairing import Pair, RunWarning, pair_run, run_judged, warnings_of
from capi_diag.rehearsal.tail import SendLogTail, ServerEvent
from capi_diag.testevents.store import SendRecord, Store
from capi_diag.verdict.promotion import Phase, SendOutcome, Window

STEP_WAIT_S = 15.0
"""How long a step waits for its expected Pixel event and for the network to go idle."""
POLL_S = 0.25
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_CHROMIUM = "apt-get install chromium"
_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def find_chromium(given: str | None) -> str:
    """The Chromium executable (``--chromium``, default ``chromium`` on ``PATH``), or a UsageError."""
    name = given or "chromium"
    found = shutil.which(name) or (shutil.which("chromium-browser") if given is None else None)
    if found is None:
        raise UsageError(f"Chromium not found ({name!r} is not an executable on PATH); install it with "
                         f"`{INSTALL_CHROMIUM}` or pass --chromium PATH.")
    return found


def require_playwright() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise UsageError("Playwright is not installed; install capi-diag's requirements "
                         "(`pip install -r requirements.txt`, Playwright 1.65.2).") from None


@dataclass
class Settings:
    journey: Journey
    pixel_id: str
    test_event_code: str
    send_log: str
    minutes: float = 10.0
    interval_s: float = 60.0
    timeout_minutes: float = 30.0
    grace_s: float = 60.0
    skew_s: float = 300.0
    output: str | None = None
    db: str | None = None
    chromium: str | None = None
    block_pixel: bool = False
    har_out: str | None = None
    """A folder for one HAR per run (``run-N.har``), readable by ``report --browser``."""


@dataclass
class Run:
    number: int
    started_at: float
    hits: list[Hit] = field(default_factory=list)
    journey_done_at: float | None = None
    notes: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    entered: bool = False
    clean: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "started_at": self.started_at, "judged": self.entered,
                "clean": self.clean, "pairs": [p.to_dict() for p in self.pairs], "notes": list(self.notes)}


class Rehearsal:
    """One rehearsal. :meth:`run` returns the exit code (0 ready, 1 not ready at the timeout)."""

    def __init__(self, settings: Settings, *, out: TextIO | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.s = settings
        self.out = out
        self.clock = clock
        self.sleep = sleep
        self.filter = HitFilter(settings.pixel_id)
        self.tail = SendLogTail(settings.send_log)
        self.runs: list[Run] = []
        self.arrivals: list[tuple[ServerEvent, int]] = []  # (event, number of the run active at arrival)
        longest = sum(STEP_WAIT_S * 2 + s.wait_ms / 1000 for s in settings.journey.steps)
        self.window = Window(window_s=round(settings.minutes * 60, 6),
                             interval_s=max(settings.interval_s, longest),
                             timeout_s=round(settings.timeout_minutes * 60, 6))
        self.store = Store(settings.db) if settings.db else None
        self.window_id: str | None = None
        self.unexpected_errors: list[str] = []

    # -- printing and output ----------------------------------------------------------------------
    def say(self, line: str) -> None:
        if self.out is not None:
            print(line, file=self.out, flush=True)

    def status(self) -> str:
        return "ready" if self.window.phase is Phase.READY else "not_ready"

    def document(self, now: float, *, finished: bool = False) -> dict[str, Any]:
        warnings: list[RunWarning] = []
        for r in self.runs:
            warnings += warnings_of(r.pairs)
        w = self.window
        return {
            "status": self.status(),
            "finished": finished,
            "window": {"phase": w.phase.value, "minutes": self.s.minutes, "window_s": w.window_s,
                       "started_at": w.started_at, "remaining_s": w.remaining_s(now),
                       "streak_s": w.streak_s(now), "summary": w.summary(now),
                       "timeout_at": (w.started_at or now) + (w.timeout_s or 0)},
            "runs": [r.to_dict() for r in self.runs],
            "warnings": [x.to_dict() for x in warnings],
            "ignored_hits": self.filter.ignored,
            "send_log": {"path": str(self.tail.path), "lines": self.tail.feed.lines,
                         "malformed_lines": self.tail.feed.malformed},
            "updated_at": now,
        }

    def write(self, now: float, *, finished: bool = False) -> None:
        if not self.s.output:
            return
        path = Path(self.s.output)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.document(now, finished=finished), indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)

    # -- server side ------------------------------------------------------------------------------
    def poll(self) -> None:
        now = self.clock()
        active = self.runs[-1].number if self.runs else 0
        for ev in self.tail.poll(now):
            self.arrivals.append((ev, active))

    def server_events_of(self, run: Run) -> list[ServerEvent]:
        """The run's server events: those with the key of one of its hits (whenever they arrived), then
        those that arrived while it ran and match no hit of any run."""
        keys = {(h.event_name, h.event_id) for h in run.hits if h.event_id}
        all_keys = {(h.event_name, h.event_id) for r in self.runs for h in r.hits if h.event_id}
        out = [e for e, _ in self.arrivals if (e.event_name, e.event_id) in keys]
        out += [e for e, n in self.arrivals if n == run.number and (e.event_name, e.event_id) not in all_keys]
        return out

    # -- judging ----------------------------------------------------------------------------------
    def judge(self, now: float, *, final_all: bool = False) -> bool:
        """Pair every run not yet entered; enter the judged ones in order. True when something changed."""
        changed = False
        for run in self.runs:
            if run.entered:
                continue
            done = run.journey_done_at is not None
            final = final_all or (done and now >= run.journey_done_at + self.s.grace_s)
            before = [p.to_dict() for p in run.pairs]
            run.pairs = pair_run(run.hits, self.server_events_of(run), expected=self.s.journey.expected,
                                 test_event_code=self.s.test_event_code, skew_s=self.s.skew_s,
                                 journey_done=done or final_all, final=final)
            changed |= before != [p.to_dict() for p in run.pairs]
        for run in self.runs:
            if run.entered:
                continue
            done = run.journey_done_at is not None or final_all
            if not (run_judged(run.pairs, journey_done=done) or final_all):
                break  # runs enter in order
            warns = warnings_of(run.pairs)
            run.clean = not warns
            run.entered = True
            self.window.send(SendOutcome(clean=run.clean, complete_journey=True,
                                         reasons=tuple(f"{w.kind} ({w.event_name}): {w.detail}" for w in warns)),
                             now=run.started_at)
            self.say(f"run {run.number}: " + ("clean" if run.clean else
                     f"{len(warns)} warning(s): " + "; ".join(f"{w.kind} {w.event_name}: {w.detail}"
                                                              for w in warns[:3])))
            self.say(self.window.summary(now))
            self.record(run)
            changed = True
        pending = [r.started_at for r in self.runs if not r.entered]
        before_phase = self.window.phase
        self.window.tick(min([now, *pending]))
        if self.window.phase is not before_phase:
            self.say(self.window.summary(now))
            changed = True
        if changed and self.store is not None and self.window_id is not None:
            self.store.save_window(self.window_id, self.window, now=now)
        return changed

    def record(self, run: Run) -> None:
        if self.store is None:
            return
        warns = warnings_of(run.pairs)
        self.store.add_send(SendRecord(
            sent_at=run.started_at, pixel_id=self.s.pixel_id, test_event_code=self.s.test_event_code,
            ok=True, clean=bool(run.clean), events_sent=sum(1 for p in run.pairs if p.server is not None),
            graph_host="rehearsal", window_id=self.window_id, phase_after=self.window.phase.value,
            reasons=[f"{w.kind} ({w.event_name}): {w.detail}" for w in warns],
            events=[p.to_dict() for p in run.pairs]))

    # -- the browser ------------------------------------------------------------------------------
    def on_request(self, run: Run, request: Any) -> None:
        url = request.url
        if not is_pixel_path(url):
            return
        try:
            body = request.post_data_buffer
        except Exception:  # noqa: BLE001 - a body Playwright cannot give: the query still counts
            body = None
        hit = parse_hit(url, body=body, content_type=request.headers.get("content-type"),
                        method=request.method, at=self.clock())
        if self.filter.keep(hit):
            assert hit is not None
            run.hits.append(hit)

    def wait(self, page: Any, seconds: float) -> None:
        """Let the browser's events flow (Playwright dispatches them while it is called) and poll."""
        end = self.clock() + seconds
        while True:
            self.poll()
            left = end - self.clock()
            if left <= 0:
                return
            page.wait_for_timeout(int(min(POLL_S, left) * 1000))

    def execute(self, browser: Any, run: Run) -> None:
        from playwright.sync_api import Error as PlaywrightError

        har = {"record_har_path": str(Path(self.s.har_out) / f"run-{run.number}.har")} if self.s.har_out else {}
        context = browser.new_context(**har)
        try:
            context.on("request", lambda req: self.on_request(run, req))
            if self.s.block_pixel:
                context.route(lambda url: is_pixel_path(url),
                              lambda route: route.fulfill(status=200, content_type="image/gif", body=_GIF))
            page = context.new_page()
            for step in self.s.journey.steps:
                seen_before = sum(1 for h in run.hits if h.event_name == step.expect)
                try:
                    if step.url:
                        page.goto(step.url, wait_until="load", timeout=STEP_WAIT_S * 1000)
                    for selector, text in step.fill.items():
                        page.fill(selector, text, timeout=STEP_WAIT_S * 1000)
                    if step.click:
                        page.click(step.click, timeout=STEP_WAIT_S * 1000)
                    if step.wait_for:
                        page.wait_for_selector(step.wait_for, timeout=STEP_WAIT_S * 1000)
                    if step.wait_ms:
                        self.wait(page, step.wait_ms / 1000)
                except PlaywrightError as e:
                    run.notes.append(f"step {step.number}: {str(e).splitlines()[0]}")
                    break
                end = self.clock() + STEP_WAIT_S
                while step.expect and self.clock() < end and \
                        sum(1 for h in run.hits if h.event_name == step.expect) <= seen_before:
                    self.wait(page, POLL_S)
                try:
                    page.wait_for_load_state("networkidle", timeout=STEP_WAIT_S * 1000)
                except PlaywrightError:
                    run.notes.append(f"step {step.number}: the network did not go idle within {STEP_WAIT_S:g}s")
                self.poll()
        finally:
            try:
                context.close()
            except Exception:  # noqa: BLE001 - a crashed browser: the run is judged on what was seen
                pass
        run.journey_done_at = self.clock()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        chromium = find_chromium(self.s.chromium)
        require_playwright()
        from playwright.sync_api import sync_playwright

        start = self.clock()
        self.window.start(start)
        if self.store is not None:
            self.window_id = self.store.create_window(self.window, pixel_id=self.s.pixel_id,
                                                      test_event_code=self.s.test_event_code, now=start)
        deadline = start + (self.window.timeout_s or 0)
        self.say(f"rehearse: the journey {self.s.journey.source} every {self.s.interval_s:g}s until "
                 f"{self.s.minutes:g} clean minute(s) (timeout {self.s.timeout_minutes:g} min)")
        self.write(start)
        with sync_playwright() as pw:
            try:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            except Exception as e:  # noqa: BLE001 - any launch failure is the user's Chromium
                raise UsageError(f"Chromium at {chromium} does not start ({str(e).splitlines()[0]}); "
                                 f"install it with `{INSTALL_CHROMIUM}` or pass --chromium PATH.") from None
            try:
                next_run = start
                while True:
                    now = self.clock()
                    if now >= next_run and now < deadline:
                        run = Run(number=len(self.runs) + 1, started_at=now)
                        self.runs.append(run)
                        self.say(f"run {run.number}: the journey starts")
                        self.execute(browser, run)
                        self.say(f"run {run.number}: {len(run.hits)} Pixel hit(s)")
                        next_run = run.started_at + self.s.interval_s
                        self.write(self.clock())
                    self.poll()
                    now = self.clock()
                    if now >= deadline:
                        self.judge(now, final_all=True)
                        self.window.tick(now)
                        break
                    if self.judge(now):
                        self.write(now)
                    if self.window.phase is Phase.READY:
                        break
                    self.sleep(max(0.0, min(POLL_S, next_run - self.clock())) or POLL_S)
            finally:
                browser.close()
        now = self.clock()
        if self.store is not None and self.window_id is not None:
            self.store.save_window(self.window_id, self.window, now=now)
        self.write(now, finished=True)
        if self.window.phase is Phase.READY:
            self.say("rehearse: READY: the browser and the server agreed for the whole window")
            return EXIT_OK
        last = self.window.last_reset
        self.say(f"rehearse: not ready within {self.s.timeout_minutes:g} minute(s); last reset: "
                 f"{last.reason if last else 'none'}")
        return EXIT_BAD_RESULT
