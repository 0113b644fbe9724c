"""The after-launch commands: ``monitor`` (Meta's own figures polled, kept in a DuckDB history,
alerts raised and cleared) and ``compare`` (what changed between two reports, or one set of logs
split at a deploy). See docs/monitor.md.

* ``monitor --pixel-id ID [--hours 48] [--interval S] [--db FILE] [--baseline FILE] [--output FILE]
  [--webhook URL] [--once]``: exit 0 when no alert is open at the end, 1 when alerts are open (or
  ``--once`` got no answer), 2 when Meta refused (token, Pixel, permission) or the options are wrong.
* ``compare BEFORE.json AFTER.json`` or ``compare --browser P --server P --split-at TIME``: exit 1 when
  a figure got worse beyond its ``[compare]`` tolerance, 0 when not, 2 for unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from capi_diag.cli.meta import graph_client, graph_host, graph_options
from capi_diag.cli.testevents import positive
from capi_diag.core.config import Config
from capi_diag.core.errors import UsageError
from capi_diag.meta.connect import check_pixel_id
from capi_diag.monitor import alerts
from capi_diag.monitor.history import History, default_path
from capi_diag.monitor.poll import Snapshot
from capi_diag.monitor.run import Settings, run
from capi_diag.monitor.webhook import check_url

DEFAULT_INTERVAL_S = 900.0
DEFAULT_HOURS = 48.0


def default_db() -> Path:
    """``monitor.duckdb`` beside the send history (``$CAPI_DIAG_HOME``, else the user's cache dir)."""
    return default_path()


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``monitor`` and ``compare`` to the CLI (called by :mod:`capi_diag.cli`)."""
    m = sub.add_parser("monitor", help="poll Meta's own figures after launch, keep their history and alert on "
                                       "what breaks")
    graph_options(m)
    m.add_argument("--hours", type=positive(float), default=DEFAULT_HOURS,
                   help=f"how long to monitor (default {DEFAULT_HOURS:g}; fractions allowed)")
    m.add_argument("--interval", type=positive(float), default=DEFAULT_INTERVAL_S,
                   help=f"seconds between snapshots (default {DEFAULT_INTERVAL_S:g}; fractions allowed)")
    m.add_argument("--db", metavar="FILE", help=f"history file (default: {default_db()})")
    m.add_argument("--baseline", metavar="FILE",
                   help="a saved snapshot (--save-snapshot) to compare with, instead of the first one in --db")
    m.add_argument("--output", metavar="FILE", help="append one JSON line per alert raised or cleared")
    m.add_argument("--webhook", metavar="URL", help="POST each alert as JSON with a 'text' field (Slack-compatible)")
    m.add_argument("--once", action="store_true", help="one snapshot, compared, then exit (for cron)")
    m.add_argument("--save-snapshot", metavar="FILE", help="write the latest snapshot here (a --baseline file)")
    m.add_argument("--config", metavar="PATH", help="TOML file: [monitor] thresholds")
    m.set_defaults(func=cmd_monitor)

    c = sub.add_parser("compare", help="what changed between two reports, or in one set of logs split at a deploy")
    c.add_argument("reports", nargs="*", metavar="REPORT.json", help="BEFORE.json AFTER.json (report --format json)")
    c.add_argument("--browser", action="append", metavar="PATH", help="browser log (with --split-at)")
    c.add_argument("--server", action="append", metavar="PATH", help="server log (with --split-at)")
    c.add_argument("--split-at", metavar="TIME", help="the deploy: ISO-8601 or Unix seconds")
    c.add_argument("--format", choices=("json", "markdown", "html"), default="json")
    c.add_argument("--output", metavar="PATH", help="write the comparison here instead of stdout")
    c.add_argument("--config", metavar="PATH", help="TOML file: [compare] tolerances and the analyses' thresholds")
    c.add_argument("--assume-tz", default="UTC", metavar="TZ",
                   help="time zone for ISO-8601 times without an offset (default: UTC)")
    c.set_defaults(func=cmd_compare)


def _baseline(path: str, pixel: str) -> Snapshot:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: baseline file not found; pass a file written by --save-snapshot.") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot read the baseline as JSON ({e}); pass a file written by "
                         "--save-snapshot.") from None
    snap = Snapshot.from_dict(doc, source=path)
    if snap.pixel_id != pixel:
        raise UsageError(f"{path}: the baseline is of Pixel {snap.pixel_id}, not {pixel}; pass that Pixel's snapshot.")
    return snap


def cmd_monitor(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``monitor``: 0 no alert open at the end, 1 alerts open, 2 refused or misconfigured."""
    out = out or sys.stdout
    pixel = check_pixel_id(args.pixel_id)
    th = alerts.thresholds(Config.load(args.config))
    webhook_url = check_url(args.webhook) if args.webhook else None
    baseline = _baseline(args.baseline, pixel) if args.baseline else None
    history = History(args.db or default_db())
    client, secret = graph_client(args)
    settings = Settings(pixel_id=pixel, hours=args.hours, interval_s=args.interval, once=args.once,
                        baseline=baseline, output=Path(args.output) if args.output else None,
                        webhook_url=webhook_url, thresholds=th,
                        save_snapshot=Path(args.save_snapshot) if args.save_snapshot else None)
    print(f"monitor: Pixel {pixel}, " + ("one snapshot" if args.once else
          f"a snapshot every {args.interval:g} s for {args.hours:g} h") + f"; history in {history.path}",
          file=out, flush=True)
    with client:
        outcome = run(client, history, settings, secret=secret, out=out, err=sys.stderr,
                      graph_host=graph_host(client.config))
    return outcome.exit_code


def cmd_compare(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from capi_diag.monitor import compare

    return compare.command(args, out or sys.stdout)


__all__ = ["add_parsers", "cmd_compare", "cmd_monitor", "default_db"]
