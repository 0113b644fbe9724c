"""The Test Events sender: one send of a complete test journey, the same for the ``send-test`` and
``watch`` commands and the dashboard's Test Events page, and the lines the commands print for it.

:class:`Sender` builds the journey, validates it locally with the diagnostics' rules
(:mod:`capi_diag.testevents.validate`; errors block the send), posts it with
:class:`~capi_diag.meta.client.GraphClient`, judges whether the send was clean
(:func:`capi_diag.verdict.promotion.unclean_reasons`), moves the promotion window, and stores the send
and the window in DuckDB (:mod:`capi_diag.testevents.store`). The token is never printed or stored:
every record is scrubbed before it is written, and the only place the token exists is the client's
header.

:data:`CLOCK` and :data:`SLEEP` are the commands' wall clock and wait, read through :func:`now` and
:func:`sleep` at call time so that tests can replace them with a virtual clock; :func:`emit` prints
lines scrubbed of the token.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

from capi_diag.core.config import Config
from capi_diag.core.errors import CapiDiagError
from capi_diag.meta.client import GraphClient, SendResult
from capi_diag.meta.errors import UNEXPECTED, GraphAPIError
from capi_diag.meta.payload import JOURNEY_STEPS, TestIdentity, build_journey
from capi_diag.meta.token import Secret, scrub
from capi_diag.testevents import send_log
from capi_diag.testevents.store import SendRecord, Store
from capi_diag.testevents.validate import Validation, validate_events
from capi_diag.verdict.promotion import SendOutcome, Window, unclean_reasons

CLOCK: Callable[[], float] = time.time
"""The wall clock of the commands (a test seam: tests replace it with a virtual clock)."""
SLEEP: Callable[[float], None] = time.sleep
"""How the commands wait (replaced together with :data:`CLOCK` in tests)."""


def now() -> float:
    """The time by :data:`CLOCK`, looked up at each call so a replaced clock takes effect."""
    return CLOCK()


def sleep(seconds: float) -> None:
    """Wait by :data:`SLEEP`, looked up at each call like :func:`now`."""
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


def emit(lines: Sequence[str], out: TextIO, secret: Secret | None) -> None:
    """Print ``lines`` to ``out``, each scrubbed of the token, and flush (a watcher sees each send at once)."""
    for line in lines:
        print(scrub(line, secret), file=out)
    out.flush()
