"""The command-line front end: ``python -m capi_diag <command>``.

Exit codes, the same for every command: 0 = the job ran and found nothing at or above the bar;
1 = the job ran and the result is bad (checklist failures, Meta rejected a payload, a promotion
window not reached in time); 2 = the job could not run because of the user's input or
configuration, with one line on stderr naming the problem and the fix, never a traceback;
3 = a bug in capi-diag itself (one line; ``CAPI_DIAG_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from capi_diag.errors import CapiDiagError, UsageError

EXIT_OK, EXIT_BAD_RESULT, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _cmd_report(args: argparse.Namespace) -> int:
    from capi_diag.config import Config
    from capi_diag.db import Database
    from capi_diag.ingest import import_logs
    from capi_diag.report import STATUS_ORDER, build_report, render

    config = Config.load(args.config)
    db = Database(args.db)
    ds = None
    try:
        ds = import_logs(db, browser=args.browser, server=args.server, assume_tz=args.assume_tz)
        report = build_report(ds, config)
    finally:
        if ds is not None:
            ds.release_shared()
        db.close()
    text = render(report, args.format, config)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"{args.output}: cannot write the report ({e.strerror}); "
                             "choose a writable --output path.") from None
    else:
        sys.stdout.write(text)
    bar = STATUS_ORDER[args.fail_on]
    bad = [i for i in report.get("checklist", [])
           if i["status"] in ("fail", "warn") and STATUS_ORDER[i["status"]] <= bar]
    return EXIT_BAD_RESULT if bad else EXIT_OK


def _cmd_sample(args: argparse.Namespace) -> int:
    from capi_diag.sample import write_sample

    paths = write_sample(args.out, sessions=args.sessions, seed=args.seed, fmt=args.format)
    for p in paths:
        print(p)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="capi_diag", description="Diagnostics for Meta Conversions API setups.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rep = sub.add_parser("report", help="import browser and server logs and print the diagnostics report")
    rep.add_argument("--browser", action="append", required=True, metavar="PATH",
                     help="browser (Pixel) log: CSV, JSON Lines or Parquet; repeat for several files")
    rep.add_argument("--server", action="append", required=True, metavar="PATH",
                     help="server (CAPI) log; repeat for several files")
    rep.add_argument("--format", choices=("json", "markdown", "html"), default="json")
    rep.add_argument("--output", metavar="PATH", help="write the report here instead of stdout")
    rep.add_argument("--config", metavar="PATH", help="TOML file with thresholds and the consent policy")
    rep.add_argument("--fail-on", choices=("warn", "fail"), default="fail",
                     help="exit 1 when a checklist item has this status or worse (default: fail)")
    rep.add_argument("--db", metavar="PATH", help="keep the imported data in this DuckDB file")
    rep.add_argument("--assume-tz", default="UTC", metavar="TZ",
                     help="time zone for ISO-8601 times without an offset (default: UTC)")
    rep.set_defaults(func=_cmd_report)

    smp = sub.add_parser("sample", help="write a realistic demo pair of logs with known defects")
    smp.add_argument("--out", required=True, metavar="DIR")
    smp.add_argument("--sessions", type=int, default=1500)
    smp.add_argument("--seed", type=int, default=7)
    smp.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
    smp.set_defaults(func=_cmd_sample)

    _add_graph_commands(sub)
    return parser


def _add_graph_commands(sub: argparse._SubParsersAction) -> None:
    import importlib
    import importlib.util

    if importlib.util.find_spec("capi_diag.graph.commands") is None:
        return  # the Test Events commands land with their own issue
    importlib.import_module("capi_diag.graph.commands").add_parsers(sub)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except CapiDiagError as e:
        print(f"capi-diag: {e.title}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("capi-diag: interrupted", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a bug in capi-diag, not in the user's input: say so, in one line
        if os.environ.get("CAPI_DIAG_DEBUG") == "1":
            raise
        print(f"capi-diag: internal error ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
              "please report it with CAPI_DIAG_DEBUG=1 set to get the traceback", file=sys.stderr)
        return EXIT_INTERNAL
