"""The Test Events commands: ``send-test``, ``watch`` and ``fake-graph`` (their parsers and what they
run). Each send goes through :class:`capi_diag.testevents.sender.Sender`, the same sender as the
dashboard's Test Events page; ``connect`` and ``meta-quality`` are in :mod:`capi_diag.cli.meta`.

Exit codes (:mod:`capi_diag.core.errors`): 0 accepted (``send-test``) or ready to promote (``watch``);
1 Meta rejected the payload, local validation blocked it, transient failures outlasted the retries,
or the window timed out; 2 configuration (missing or invalid token, unknown Pixel, missing
permission, bad options), with one line on stderr naming the fix.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TextIO

from capi_diag.core.errors import EXIT_BAD_RESULT, EXIT_OK, UsageError
from capi_diag.meta.client import GraphClient, GraphConfig
from capi_diag.meta.payload import TestIdentity
from capi_diag.meta.token import resolve_token
from capi_diag.testevents.sender import Sender, emit, format_send, now, sleep
from capi_diag.testevents.store import Store, default_path
from capi_diag.verdict.promotion import (
    BLIND_SPOT,
    DEFAULT_INTERVAL_S,
    DEFAULT_MINUTES,
    DEFAULT_TIMEOUT_MINUTES,
    READY_ADVICE,
    Phase,
    Window,
)


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

positive = _positive
"""The parser of ``--minutes``, ``--interval`` and ``--timeout-minutes`` (a number > 0, fractions allowed),
public for the other commands that parse them the same way (``rehearse``)."""


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


def _identity(args: argparse.Namespace) -> TestIdentity:
    given = {k[3:]: v for k, v in vars(args).items() if k.startswith("id_") and v is not None}
    return replace(TestIdentity(), **given)


def _sender(args: argparse.Namespace) -> Sender:
    secret = resolve_token()
    graph = GraphConfig.from_env(os.environ, graph_url=args.graph_url, api_version=args.api_version,
                                 max_retries=args.max_retries, timeout_s=args.timeout,
                                 deadline_s=args.deadline)
    client = GraphClient(secret.reveal(), config=graph, sleep=sleep, clock=now)
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
    sender.build(now())  # a bad identity or URL is a configuration error, found before sending


def _store(args: argparse.Namespace) -> Store:
    return Store(args.db if args.db else default_path())


def cmd_send_test(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``send-test``: one journey; 0 accepted, 1 rejected/blocked, 2 configuration."""
    out = out or sys.stdout
    sender = _sender(args)
    try:
        _check_target(sender)
        store = _store(args)
        sent = sender.send(now=now(), store=store)
        emit(format_send(sent), out, sender.secret)
        emit([BLIND_SPOT], out, sender.secret)
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
        start = now()
        window.start(start)
        window_id = store.create_window(window, pixel_id=sender.pixel_id,
                                        test_event_code=sender.test_event_code, now=start)
        emit([f"watch: a journey every {args.interval:g}s until {args.minutes:g} clean minute(s) "
              f"(timeout {args.timeout_minutes:g} min); history in {store.path}", BLIND_SPOT],
             out, sender.secret)
        number = 0
        next_send = start
        while True:
            moment = now()
            if moment >= next_send:
                number += 1
                sent = sender.send(now=moment, window=window, window_id=window_id, store=store)
                emit(format_send(sent, number=number) + [window.summary(moment)], out, sender.secret)
                if sent.config_error:
                    raise sent.error
                next_send = moment + args.interval
            else:
                before = window.phase
                window.tick(moment)
                if window.phase is not before:
                    store.save_window(window_id, window, now=moment)
                    emit([window.summary(moment)], out, sender.secret)
            if window.phase is Phase.READY:
                emit([READY_ADVICE], out, sender.secret)
                return EXIT_OK
            if window.phase is Phase.TIMED_OUT:
                emit([f"watch: not ready within {args.timeout_minutes:g} minute(s); last reset: "
                      f"{window.last_reset.reason if window.last_reset else 'none'}"], out, sender.secret)
                return EXIT_BAD_RESULT
            sleep(max(0.0, _wake(window, next_send) - now()))
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
          f"{fake_quality.SCENARIO_ID} (the monitor scenario, /stats too), "
          f"{fake_quality.NO_PERMISSION_ID} (missing permission), any other ID: unknown (100/33)", file=out)
    print(f"use it with: export CAPI_GRAPH_URL={base} CAPI_ACCESS_TOKEN=<the --token value>; Ctrl-C stops it",
          file=out, flush=True)
    try:
        fake.serve_forever(host="127.0.0.1", port=args.port)
    except KeyboardInterrupt:
        print("fake Graph API stopped", file=out)
    return EXIT_OK


positive = _positive
"""The parser of a number > 0 (fractions allowed for floats), for the other command modules."""
