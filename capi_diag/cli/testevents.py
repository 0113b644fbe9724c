"""The Test Events commands (``send-test``, ``watch``, ``fake-graph``) and the sender they share
with the Test Events page (``connect`` and ``meta-quality`` live in :mod:`capi_diag.cli.meta`).

:class:`Sender` does one send the same way for the CLI and the page: build a complete test journey,
validate it locally with the diagnostics' rules (:mod:`capi_diag.testevents.validate`; errors block the
send), post it with :class:`~capi_diag.meta.client.GraphClient`, judge whether the send was clean
(:func:`capi_diag.verdict.promotion.unclean_reasons`), move the promotion window, and store the send and the
window in DuckDB (:mod:`capi_diag.testevents.store`). The token is never printed or stored: every record
is scrubbed before it is written, and the only place the token exists is the client's header.

Exit codes: 0 accepted (``send-test``) or ready to promote (``watch``); 1 Meta rejected the payload,
local validation blocked it, transient failures outlasted the retries, or the window timed out; 2
configuration (missing or invalid token, unknown Pixel, missing permission, bad options), with one
line on stderr naming the fix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO
from urllib.parse import urlsplit

from capi_diag.core.config import Config
from capi_diag.core.errors import EXIT_BAD_RESULT, EXIT_OK, CapiDiagError, UsageError
from capi_diag.meta.client import GraphClient, GraphConfig, SendResult
from capi_diag.meta.errors import UNEXPECTED, GraphAPIError
from capi_diag.meta.payload import JOURNEY_STEPS, TestIdentity, build_journey
from capi_diag.meta.token import Secret, resolve_token, scrub
from capi_diag.testevents.store import SendRecord, Store, default_path
from capi_diag.testevents.validate import Validation, validate_events
from capi_diag.verdict.promotion import (
    BLIND_SPOT,
    DEFAULT_INTERVAL_S,
    DEFAULT_MINUTES,
    DEFAULT_TIMEOUT_MINUTES,
    READY_ADVICE,
    Phase,
    SendOutcome,
    Window,
    unclean_reasons,
)

CLOCK: Callable[[], float] = time.time
"""The wall clock of the commands (a test seam: tests replace it with a virtual clock)."""
SLEEP: Callable[[float], None] = time.sleep
"""How the commands wait (replaced together with :data:`CLOCK` in tests)."""


def _now() -> float:
    return CLOCK()


def _sleep(seconds: float) -> None:
    SLEEP(seconds)


# -- the sender -------------------------------------------------------------------------------------
@dataclass
class Sent:
    """One send: the events built, the local validation, Meta's answer and the stored record."""

    record: SendRecord
    events: list[dict[str, Any]]
    validation: Validation
    result: SendResult | None

    @property
    def error(self) -> GraphAPIError | None:
        return self.result.error if self.result is not None else None

    @property
    def blocked(self) -> bool:
        return self.result is None

    @property
    def accepted(self) -> bool:
        r = self.result
        return r is not None and r.ok and r.events_received == r.events_sent

    @property
    def config_error(self) -> bool:
        """Meta said the token, Pixel or permissions are wrong: nothing else can succeed."""
        err = self.error
        return err is not None and err.entry.kind in ("config", "permission")


@dataclass
class Sender:
    """Sends complete test journeys to one Pixel with one test code (the CLI's and the page's core)."""

    client: GraphClient
    pixel_id: str
    test_event_code: str
    secret: Secret
    identity: TestIdentity = field(default_factory=TestIdentity)
    fbclid: str | None = None
    event_source_url: str = "https://www.example.com/"
    region: str | None = None
    rng: random.Random | None = None
    config: Config = field(default_factory=Config)
    send_log_out: str | None = None
    """Append each request and Meta's answer to this JSON Lines send log (``report --send-log``)."""

    def build(self, now: float) -> list[dict[str, Any]]:
        """The journey that a send at ``now`` posts (also the page's preview)."""
        return build_journey(now=int(now), identity=self.identity, fbclid=self.fbclid,
                             event_source_url=self.event_source_url, region=self.region, rng=self.rng)

    def _post(self, events: list[dict[str, Any]]) -> SendResult:
        """Post the events; whatever goes wrong after the request left is a result, never lost."""
        try:
            return self.client.send(self.pixel_id, events, test_event_code=self.test_event_code)
        except CapiDiagError:
            raise  # found before anything was sent (Pixel ID, batch size): a configuration error
        except Exception as exc:  # noqa: BLE001 - the send record must survive any failure
            return _internal_failure(events, exc, self.secret)

    def send(self, *, now: float, window: Window | None = None, window_id: str | None = None,
             store: Store | None = None) -> Sent:
        """Build, validate, post (unless validation blocks), judge, move ``window``, store."""
        events = self.build(now)
        validation = validate_events(events, config=self.config)
        result = None
        if not validation.blocks_send:
            result = self._post(events)
        reasons = _reasons(events, validation, result)
        clean = not reasons
        names = {e["event_name"] for e in events}
        complete = clean and set(JOURNEY_STEPS) <= names
        if window is not None:
            window.send(SendOutcome(clean=clean, complete_journey=complete, reasons=tuple(reasons)), now)
        parts = urlsplit(self.client.config.graph_url)
        record = SendRecord(
            sent_at=now, pixel_id=self.pixel_id, test_event_code=self.test_event_code,
            ok=bool(result is not None and result.ok), clean=clean, events_sent=len(events),
            events_received=result.events_received if result is not None else None,
            fbtrace_id=result.fbtrace_id if result is not None else None,
            graph_host=f"{parts.scheme}://{parts.netloc}", api_version=self.client.config.api_version,
            window_id=window_id, phase_after=window.phase.value if window is not None else None,
            reasons=reasons, messages=list(result.messages) if result is not None else [],
            error=result.error.as_dict() if result is not None and result.error is not None else None,
            attempts=[vars(a).copy() for a in result.attempts] if result is not None else [],
            events=_event_outcomes(events, validation, result),
            findings=[f.as_dict() for f in validation.findings],
        )
        record = SendRecord(**scrub(vars(record), self.secret))
        if self.send_log_out and result is not None:
            from capi_diag.testevents import send_log

            send_log.append(self.send_log_out, send_log.record(
                sent_at=now, pixel_id=self.pixel_id, events=events, test_event_code=self.test_event_code,
                result=result), self.secret)
        if store is not None:
            store.add_send(record)
            if window is not None and window_id is not None:
                store.save_window(window_id, window, now=now)
        return Sent(record, events, validation, result)


def _internal_failure(events: list[dict[str, Any]], exc: Exception, secret: Secret) -> SendResult:
    """A send that failed inside capi-diag (not an answer of Meta's) still becomes a stored record."""
    text = scrub(f"{type(exc).__name__}: {exc}", secret)
    error = GraphAPIError(http_status=None, code=None, type=type(exc).__name__, entry=UNEXPECTED,
                          message=f"capi-diag failed while sending ({text}); whether Meta received the "
                                  "events is unknown")
    return SendResult(ok=False, events_sent=len(events), error=error)


def _reasons(events: list[dict[str, Any]], validation: Validation, result: SendResult | None) -> list[str]:
    if result is None:
        return unclean_reasons(ok=False, events_sent=len(events), events_received=None,
                               error="blocked by local validation",
                               local_errors=[f.label for f in validation.errors],
                               local_warnings=[f.label for f in validation.warnings],
                               missing_context=validation.missing)
    error = None
    if result.error is not None:
        e = result.error
        code = f" {e.code}" + (f"/{e.error_subcode}" if e.error_subcode else "") if e.code is not None else ""
        error = "; ".join([f"{e.entry.title}{code}", *result.findings])  # e.g. "Gave up after 4 attempts"
    return unclean_reasons(ok=result.ok, events_sent=result.events_sent,
                           events_received=result.events_received, messages=result.messages,
                           local_errors=[f.label for f in validation.errors],
                           local_warnings=[f.label for f in validation.warnings],
                           missing_context=validation.missing, error=error)


def _event_outcomes(events: list[dict[str, Any]], validation: Validation,
                    result: SendResult | None) -> list[dict[str, Any]]:
    """Each event's fate. Meta answers per batch, not per event: a rejection refuses them all."""
    out = []
    for i, ev in enumerate(events, start=1):
        own = validation.for_event(i)
        if result is None:
            blocked_here = any(f.severity == "error" for f in own)
            status = "blocked locally" if blocked_here else "not sent (batch blocked)"
        elif result.error is not None:
            verb = "rejected" if result.error.entry.kind == "payload" else "not delivered"
            status = f"{verb}: {result.error.entry.title}"
        elif result.events_received == result.events_sent:
            status = "accepted"
        else:
            status = f"sent; Meta counted {result.events_received} of {result.events_sent}"
        notes = [f"{f.severity}: {f.section}.{f.finding}" + (f" ({f.detail})" if f.detail else "")
                 for f in own]
        notes += [f"missing {m.split(': ', 1)[1]}" for m in validation.missing
                  if m.startswith(f"{ev.get('event_name') or 'event'} #{i}: ")]
        out.append({"position": i, "event_name": ev.get("event_name"), "event_id": ev.get("event_id"),
                    "status": status, "notes": notes})
    return out


# -- printing ---------------------------------------------------------------------------------------
def format_send(sent: Sent, *, number: int | None = None) -> list[str]:
    """The lines the CLI prints for one send: each event's outcome, Meta's answer, attempts, verdict."""
    rec = sent.record
    when = dt.datetime.fromtimestamp(rec.sent_at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = f"send #{number}" if number is not None else "send"
    lines = [f"{head} at {when}: Pixel {rec.pixel_id}, test code {rec.test_event_code}, "
             f"{rec.graph_host} {rec.api_version}"]
    v = sent.validation
    ran = ", ".join(v.sections) or "none"
    lines.append(f"  local validation ({ran}; event_id/fbp/client context): {len(v.errors)} error(s), "
                 f"{len(v.warnings)} warning(s), {len(v.missing)} missing field(s)")
    if v.unavailable:
        lines.append(f"  note: rules not available in this build: {', '.join(v.unavailable)}")
    for ev in rec.events:
        lines.append(f"  {ev['position']}. {ev['event_name']:<17} {ev['event_id']}  {ev['status']}")
        for note in ev["notes"]:
            lines.append(f"       - {note}")
    if sent.result is None:
        lines.append("  not sent: local validation found errors (Meta would reject or misuse these events)")
    else:
        r = sent.result
        if r.ok:
            msgs = "; ".join(r.messages) if r.messages else "none"
            lines.append(f"  Meta: events_received {r.events_received}/{r.events_sent}, messages: {msgs}, "
                         f"fbtrace_id {r.fbtrace_id}")
        elif r.error is not None:
            e = rec.error or {}
            code = f"{e.get('code')}" + (f"/{e.get('error_subcode')}" if e.get("error_subcode") else "")
            said = e.get("user_msg") or e.get("message") or ""
            lines.append(f"  Meta error {code} (HTTP {e.get('http_status')}): {e.get('title')}"
                         + (f": {said}" if said else ""))
            lines.append(f"  fix: {e.get('fix')}")
            if e.get("fbtrace_id"):
                lines.append(f"  fbtrace_id {e.get('fbtrace_id')}")
        for a in rec.attempts:
            code = f" code {a['error_code']}" if a["error_code"] is not None else ""
            what = f"retry in {a['wait_s']:g}s" if a["outcome"] == "retry" else a["outcome"]
            lines.append(f"  attempt {a['number']}: HTTP {a['status_code']}{code}: {what}"
                         + (f" ({a['detail']})" if a["detail"] else ""))
    if rec.clean:
        lines.append("  clean: yes")
    else:
        lines.append("  clean: no")
        for reason in rec.reasons:
            lines.append(f"    - {reason}")
    return lines


def _emit(lines: Sequence[str], out: TextIO, secret: Secret | None) -> None:
    for line in lines:
        print(scrub(line, secret), file=out)
    out.flush()


# -- command plumbing -------------------------------------------------------------------------------
def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value
    return parse


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pixel-id", required=True, metavar="ID",
                   help="the Pixel (dataset) ID from Events Manager")
    p.add_argument("--test-event-code", required=True, metavar="CODE",
                   help="the code shown in Events Manager > Test Events (e.g. TEST12345)")
    p.add_argument("--graph-url", metavar="URL",
                   help="Graph API base URL (default: $CAPI_GRAPH_URL, else https://graph.facebook.com)")
    p.add_argument("--api-version", metavar="V", help="Graph API version (default: v26.0)")
    p.add_argument("--max-retries", type=int, metavar="N", help="retries of transient failures (default 3)")
    p.add_argument("--timeout", type=_positive(float), metavar="S",
                   help="seconds to wait for each part of Meta's answer (default 10)")
    p.add_argument("--deadline", type=_positive(float), metavar="S",
                   help="seconds one attempt may take in all, however slowly the answer arrives (default 30)")
    p.add_argument("--db", metavar="PATH", help=f"send history file (default: {default_path()})")
    p.add_argument("--strict", action="store_true", help="exit 1 when a send is accepted but not clean")
    p.add_argument("--send-log-out", metavar="FILE",
                   help="append each request and Meta's answer to this JSON Lines send log (read by "
                        "'report --send-log'; never holds the token)")
    g = p.add_argument_group("test identity (normalized and hashed before sending)")
    for flag, attr in (("--email", "email"), ("--phone", "phone"), ("--first-name", "first_name"),
                       ("--last-name", "last_name"), ("--city", "city"), ("--state", "state"),
                       ("--zip", "zip"), ("--country", "country"), ("--external-id", "external_id")):
        g.add_argument(flag, dest=f"id_{attr}", metavar="VALUE")
    g.add_argument("--region", metavar="CC", help="ISO country of the identity (default: its --country)")
    g.add_argument("--fbclid", metavar="ID", help="add an fbc click ID built from this fbclid")
    g.add_argument("--event-source-url", default="https://www.example.com/", metavar="URL")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``send-test``, ``watch`` and ``fake-graph`` to the CLI (called by :mod:`capi_diag.cli`)."""
    st = sub.add_parser("send-test", help="send one complete test journey with a test_event_code")
    _add_target(st)
    st.set_defaults(func=cmd_send_test)

    wa = sub.add_parser("watch", help="send a journey every interval until the promotion window is clean")
    _add_target(wa)
    wa.add_argument("--minutes", type=_positive(float), default=DEFAULT_MINUTES,
                    help=f"length of the clean window in minutes (default {DEFAULT_MINUTES:g}; "
                         "fractions allowed)")
    wa.add_argument("--interval", type=_positive(float), default=DEFAULT_INTERVAL_S,
                    help=f"seconds between sends (default {DEFAULT_INTERVAL_S:g}; fractions allowed)")
    wa.add_argument("--timeout-minutes", type=_positive(float), default=DEFAULT_TIMEOUT_MINUTES,
                    help="give up (exit 1) when not ready after this many minutes "
                         f"(default {DEFAULT_TIMEOUT_MINUTES:g})")
    wa.set_defaults(func=cmd_watch)

    fg = sub.add_parser("fake-graph",
                        help="run the local Graph API stand-in on 127.0.0.1 (tests, rehearsals)")
    fg.add_argument("--port", type=int, default=8790)
    fg.add_argument("--token", default="test-token",
                    help="the token the stand-in accepts (default test-token)")
    fg.add_argument("--pixel-id", default="1234567890", help="the Pixel it knows (default 1234567890)")
    fg.add_argument("--throttle-every", type=int, default=0, metavar="N",
                    help="answer every Nth request with a throttling error (code 17)")
    fg.add_argument("--fail-5xx-every", type=int, default=0, metavar="N",
                    help="answer every Nth request with an HTTP 5xx")
    fg.add_argument("--delay-ms", type=int, default=0, metavar="D", help="delay every answer by D ms")
    fg.add_argument("--faults", default="", metavar="F1,F2,...",
                    help="answer the next events requests with these faults, in order, then normally: "
                         "http_500 http_503 html_502 html_200 malformed_json short_count throttle_4 "
                         "throttle_17 throttle_613 code_2 invalid_100 timeout reset slow_drip ok")
    fg.add_argument("--pixel-name", default=None, metavar="NAME",
                    help="the name the stand-in gives its Pixel (default 'capi-diag demo Pixel')")
    fg.set_defaults(func=cmd_fake_graph)

    from capi_diag.cli import meta  # connect, meta-quality: Meta's side of the setup

    meta.add_parsers(sub)


def _identity(args: argparse.Namespace) -> TestIdentity:
    given = {k[3:]: v for k, v in vars(args).items() if k.startswith("id_") and v is not None}
    return replace(TestIdentity(), **given)


def _sender(args: argparse.Namespace) -> Sender:
    secret = resolve_token()
    graph = GraphConfig.from_env(os.environ, graph_url=args.graph_url, api_version=args.api_version,
                                 max_retries=args.max_retries, timeout_s=args.timeout,
                                 deadline_s=args.deadline)
    client = GraphClient(secret.reveal(), config=graph, sleep=_sleep, clock=_now)
    return Sender(client=client, pixel_id=str(args.pixel_id).strip(), test_event_code=args.test_event_code,
                  secret=secret, identity=_identity(args), fbclid=args.fbclid,
                  event_source_url=args.event_source_url, region=args.region,
                  send_log_out=getattr(args, "send_log_out", None))


def _check_target(sender: Sender) -> None:
    """Fail fast (exit 2) on what would make every send fail, before anything is sent."""
    pixel = sender.pixel_id
    if not pixel.isdigit():
        raise UsageError(f"--pixel-id {pixel!r} is not a number; copy the Pixel (dataset) ID from Events "
                         "Manager > Data sources.")
    sender.build(_now())  # a bad identity or URL is a configuration error, found before sending


def _store(args: argparse.Namespace) -> Store:
    return Store(args.db if args.db else default_path())


def cmd_send_test(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``send-test``: one journey; 0 accepted, 1 rejected/blocked, 2 configuration."""
    out = out or sys.stdout
    sender = _sender(args)
    try:
        _check_target(sender)
        store = _store(args)
        sent = sender.send(now=_now(), store=store)
        _emit(format_send(sent), out, sender.secret)
        _emit([BLIND_SPOT], out, sender.secret)
        if sent.config_error:
            raise sent.error  # one line on stderr, exit 2
        if not sent.accepted:
            return EXIT_BAD_RESULT
        if args.strict and not sent.record.clean:
            return EXIT_BAD_RESULT
        return EXIT_OK
    finally:
        sender.client.close()


def cmd_watch(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``watch``: a journey every interval until ready (0), timeout (1) or configuration error (2)."""
    out = out or sys.stdout
    if args.timeout_minutes < args.minutes:
        raise UsageError(f"--timeout-minutes {args.timeout_minutes:g} is shorter than the --minutes "
                         f"{args.minutes:g} window, so it could never be ready; raise --timeout-minutes.")
    sender = _sender(args)
    try:
        _check_target(sender)
        store = _store(args)
        # rounded so that 0.05 min is exactly 3 s, not 3.0000000000000004
        window = Window(window_s=round(args.minutes * 60, 6), interval_s=args.interval,
                        timeout_s=round(args.timeout_minutes * 60, 6))
        start = _now()
        window.start(start)
        window_id = store.create_window(window, pixel_id=sender.pixel_id,
                                        test_event_code=sender.test_event_code, now=start)
        _emit([f"watch: a journey every {args.interval:g}s until {args.minutes:g} clean minute(s) "
               f"(timeout {args.timeout_minutes:g} min); history in {store.path}", BLIND_SPOT],
              out, sender.secret)
        number = 0
        next_send = start
        while True:
            now = _now()
            if now >= next_send:
                number += 1
                sent = sender.send(now=now, window=window, window_id=window_id, store=store)
                _emit(format_send(sent, number=number) + [window.summary(now)], out, sender.secret)
                if sent.config_error:
                    raise sent.error
                next_send = now + args.interval
            else:
                before = window.phase
                window.tick(now)
                if window.phase is not before:
                    store.save_window(window_id, window, now=now)
                    _emit([window.summary(now)], out, sender.secret)
            if window.phase is Phase.READY:
                _emit([READY_ADVICE], out, sender.secret)
                return EXIT_OK
            if window.phase is Phase.TIMED_OUT:
                _emit([f"watch: not ready within {args.timeout_minutes:g} minute(s); last reset: "
                       f"{window.last_reset.reason if window.last_reset else 'none'}"], out, sender.secret)
                return EXIT_BAD_RESULT
            _sleep(max(0.0, _wake(window, next_send) - _now()))
    finally:
        sender.client.close()


def _wake(window: Window, next_send: float) -> float:
    """The next moment worth looking: the next send, the moment the streak would be ready, the timeout."""
    moments = [next_send]
    if window.phase is Phase.STREAK and window.streak_start is not None and window.complete_at is not None:
        moments.append(max(window.streak_start + window.window_s, window.complete_at))
    if window.timeout_s is not None and window.started_at is not None:
        moments.append(window.started_at + window.timeout_s)
    return min(moments)


def cmd_fake_graph(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``fake-graph``: serve the stand-in on 127.0.0.1 until interrupted."""
    from capi_diag.standins.fake_server import FakeGraph

    out = out or sys.stdout
    for name in ("throttle_every", "fail_5xx_every", "delay_ms"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative.")
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (1-65535).")
    faults = [f.strip() for f in (getattr(args, "faults", "") or "").split(",") if f.strip()]
    fake = FakeGraph(token=args.token, pixel_id=args.pixel_id, throttle_every=args.throttle_every,
                     fail_5xx_every=args.fail_5xx_every, delay_ms=args.delay_ms, faults=faults,
                     **({"pixel_name": args.pixel_name} if getattr(args, "pixel_name", None) else {}))
    base = f"http://127.0.0.1:{args.port}"
    print(f"fake Graph API on {base} (Pixel {args.pixel_id}); what it received: GET {base}/__received",
          file=out)
    from capi_diag.standins import fake_quality

    print(f"reads: Pixel {args.pixel_id} '{fake.pixel_name}' (every quality section), "
          f"{fake_quality.PARTIAL_ID} (sections missing), {fake_quality.DEDUP_SPELLING_ID} (dedup_key_feedback), "
          f"{fake_quality.NO_PERMISSION_ID} (missing permission), any other ID: unknown (100/33)", file=out)
    print(f"use it with: export CAPI_GRAPH_URL={base} CAPI_ACCESS_TOKEN=<the --token value>; Ctrl-C stops it",
          file=out, flush=True)
    try:
        fake.serve_forever(host="127.0.0.1", port=args.port)
    except KeyboardInterrupt:
        print("fake Graph API stopped", file=out)
    return EXIT_OK
