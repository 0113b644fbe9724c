"""The ``rehearse`` command (the browser rehearsal, docs/rehearsal.md) and ``demo-shop`` (the demo shop
it can run against). ``--minutes``, ``--interval`` and ``--timeout-minutes`` parse as ``watch`` parses
them (:func:`capi_diag.cli.testevents.positive`).

Exit codes: 0 ready; 1 not ready when the timeout ends; 2 capi-diag's own inputs (the journey file,
options, Chromium or Playwright missing, an unreadable send log), with one line saying what to fix.
A token refused by Meta in the shop's send log is a ``token`` warning of the rehearsal, never exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from capi_diag.cli.testevents import positive
from capi_diag.core.errors import UsageError
from capi_diag.diagnostics.timing import DEFAULTS as TIMING_DEFAULTS
from capi_diag.testevents.store import default_path
from capi_diag.verdict.promotion import DEFAULT_INTERVAL_S, DEFAULT_MINUTES, DEFAULT_TIMEOUT_MINUTES

DEFAULT_GRACE_S = 60.0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``rehearse`` and ``demo-shop`` to the CLI (called by :mod:`capi_diag.cli`)."""
    r = sub.add_parser("rehearse", help="rehearse the launch in headless Chromium: pair the Pixel's hits "
                                        "with the shop's server sends until the window is clean")
    r.add_argument("--journey", required=True, metavar="FILE", help="the journey file (TOML, docs/rehearsal.md)")
    r.add_argument("--pixel-id", required=True, metavar="ID", help="the Pixel ID; hits of other Pixels are "
                                                                  "ignored and counted")
    r.add_argument("--test-event-code", required=True, metavar="CODE",
                   help="the test_event_code the shop's server requests must carry")
    r.add_argument("--send-log", required=True, metavar="FILE",
                   help="the JSON Lines send log the shop's server appends to (docs/send-log.md)")
    r.add_argument("--graph-url", metavar="URL",
                   help="accepted for symmetry with watch; with --send-log no Graph request is made")
    r.add_argument("--minutes", type=positive(float), default=DEFAULT_MINUTES,
                   help=f"length of the clean window in minutes (default {DEFAULT_MINUTES:g}; fractions allowed)")
    r.add_argument("--interval", type=positive(float), default=DEFAULT_INTERVAL_S,
                   help=f"seconds between journey runs (default {DEFAULT_INTERVAL_S:g})")
    r.add_argument("--timeout-minutes", type=positive(float), default=DEFAULT_TIMEOUT_MINUTES,
                   help="give up (exit 1) when not ready after this many minutes "
                        f"(default {DEFAULT_TIMEOUT_MINUTES:g})")
    r.add_argument("--grace", type=positive(float), default=DEFAULT_GRACE_S, metavar="S",
                   help=f"how long a missing side of a pair is awaited (default {DEFAULT_GRACE_S:g}s)")
    r.add_argument("--skew", type=positive(float), default=float(TIMING_DEFAULTS["skew_threshold_s"]),
                   metavar="S", help="largest allowed gap between the Pixel's ts and the server's event_time "
                                     f"(default {TIMING_DEFAULTS['skew_threshold_s']}s, the timing analysis')")
    r.add_argument("--output", metavar="FILE", help="the JSON result, rewritten after every run")
    r.add_argument("--db", metavar="PATH", help=f"history file (default: {default_path()})")
    r.add_argument("--chromium", metavar="PATH", help="the Chromium executable (default: chromium on PATH)")
    r.add_argument("--block-pixel", action="store_true", help="answer the Pixel's hits locally so that "
                                                               "none reaches Meta")
    r.add_argument("--har-out", metavar="DIR", help="record each run's network log as DIR/run-N.har "
                                                  "(read by 'report --browser')")
    r.set_defaults(func=cmd_rehearse)

    d = sub.add_parser("demo-shop", help="run the demo shop (its Pixel stand-in and server side) on 127.0.0.1")
    d.add_argument("--port", type=int, default=8791)
    d.add_argument("--graph-url", required=True, metavar="URL",
                   help="the Graph API the shop's server sends to (e.g. capi-diag fake-graph's URL)")
    d.add_argument("--pixel-id", default="1234567890", metavar="ID")
    d.add_argument("--test-event-code", default="TEST12345", metavar="CODE")
    d.add_argument("--send-log", required=True, metavar="FILE", help="the send log the shop appends to")
    d.add_argument("--faults", default="", metavar="F1,F2",
                   help="fault switches: purchase_event_id_differs, purchase_not_sent, fbp_not_forwarded, "
                        "value_differs, token_refused")
    d.add_argument("--journey-out", metavar="FILE", help="write the shop's journey file here (for rehearse)")
    d.set_defaults(func=cmd_demo_shop)


def cmd_rehearse(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from capi_diag.rehearsal import journey as journey_file
    from capi_diag.rehearsal.runner import Rehearsal, Settings

    out = out or sys.stdout
    if args.timeout_minutes < args.minutes:
        raise UsageError(f"--timeout-minutes {args.timeout_minutes:g} is shorter than the --minutes "
                         f"{args.minutes:g} window, so it could never be ready; raise --timeout-minutes.")
    pixel = str(args.pixel_id).strip()
    if not pixel.isdigit():
        raise UsageError(f"--pixel-id {pixel!r} is not a number; copy the Pixel (dataset) ID from Events Manager.")
    if args.har_out:
        try:
            Path(args.har_out).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--har-out {args.har_out}: cannot create the folder ({e.strerror}).") from None
    settings = Settings(journey=journey_file.load(args.journey), pixel_id=pixel,
                        test_event_code=args.test_event_code, send_log=args.send_log, minutes=args.minutes,
                        interval_s=args.interval, timeout_minutes=args.timeout_minutes, grace_s=args.grace,
                        skew_s=args.skew, output=args.output, db=args.db or str(default_path()),
                        chromium=args.chromium, block_pixel=args.block_pixel, har_out=args.har_out)
    return Rehearsal(settings, out=out).run()


def cmd_demo_shop(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from capi_diag.core.errors import EXIT_OK
    from capi_diag.meta.token import resolve_token
    from capi_diag.shop.server import DemoShop

    out = out or sys.stdout
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    shop = DemoShop(graph_url=args.graph_url, token=resolve_token().reveal(), pixel_id=args.pixel_id,
                    test_event_code=args.test_event_code, send_log=args.send_log, faults=faults)
    base = f"http://127.0.0.1:{args.port}"
    if args.journey_out:
        from capi_diag.shop.server import journey_toml

        try:
            Path(args.journey_out).write_text(journey_toml(base), encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--journey-out {args.journey_out}: cannot write it ({e.strerror}).") from None
    print(f"demo shop on {base}/ (Pixel {args.pixel_id}, test code {args.test_event_code}); send log "
          f"{args.send_log}" + (f"; journey file {args.journey_out}" if args.journey_out else "")
          + "; Ctrl-C stops it", file=out, flush=True)
    try:
        shop.serve_forever(port=args.port)
    except KeyboardInterrupt:
        print("demo shop stopped", file=out)
    return EXIT_OK
