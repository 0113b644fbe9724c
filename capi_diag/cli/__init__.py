"""The command-line front end: ``capi-diag <command>`` (installed), or ``python -m capi_diag <command>``.

Exit codes, the same for every command: 0 = the job ran and found nothing at or above the bar;
1 = the job ran and the result is bad (checklist failures, Meta rejected a payload, a promotion
window not reached in time); 2 = the job could not run because of the user's input or
configuration, with one line on stderr naming the problem and the fix, never a traceback;
3 = a bug in capi-diag itself (one line; ``CAPI_DIAG_DEBUG=1`` shows the traceback).

May import: every layer of the package but :mod:`capi_diag.ui` (a front end; nothing imports it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from capi_diag import __version__
from capi_diag.core.errors import EXIT_BAD_RESULT, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, CapiDiagError, UsageError

REPORT_EXAMPLES = """\
examples:
  # try it on the bundled demo logs (exit 1: the demo has checklist failures)
  %(prog)s --demo --format markdown

  # gate a CI job: exit 1 when any checklist item fails, 0 otherwise
  %(prog)s --browser pixel.csv --server capi.jsonl --fail-on fail --format markdown --output report.md

  # several files per side, a config with thresholds and the consent policy, JSON for jq
  %(prog)s --browser day1.csv --browser day2.csv --server capi.parquet --config capi-diag.toml > report.json
  jq -r '.checklist[] | select(.status == "fail") | .id' report.json

exit codes: 0 nothing at or above --fail-on; 1 checklist items at or above --fail-on;
            2 unusable input or options (one line on stderr); 3 a bug in capi-diag
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _cmd_report(args: argparse.Namespace) -> int:
    from capi_diag import api
    from capi_diag.core.config import Config

    if args.engine == "spark":
        inputs = _spark_inputs(args)
    else:
        if args.browser_table or args.server_table or args.spark_master:
            raise UsageError(f"{args.prog}: --browser-table, --server-table and --spark-master need --engine spark.")
        inputs = _report_inputs(args)
    config = Config.load(args.config)
    engine = api.Engine(args.engine, db_path=args.db, memory_limit=args.memory_limit, temp_dir=args.temp_dir,
                        spark_master=args.spark_master)
    return _finish_report(args, api.analyze(inputs, config, engine), config)


def _spark_inputs(args: argparse.Namespace) -> Any:
    """The inputs of ``--engine spark``: paths or tables; options that configure DuckDB are refused."""
    from capi_diag import api

    if args.db:
        raise UsageError(f"{args.prog}: --db keeps a DuckDB file; it does not apply to --engine spark.")
    if args.orders or args.send_log:
        raise UsageError(f"{args.prog}: --orders and --send-log are read by the DuckDB engine only; run the "
                         "reconciliation without --engine spark (export the orders and sends of the period).")
    if args.memory_limit or args.temp_dir:
        raise UsageError(f"{args.prog}: --memory-limit and --temp-dir configure DuckDB; with --engine spark set "
                         "spark.driver.memory / spark.local.dir in the Spark session instead.")
    tables = {r: getattr(args, f"{r}_table") for r in ("browser", "server")}
    if args.demo or not any(tables.values()):
        logs = _report_inputs(args, extras=False)
        return api.Inputs(browser=logs.browser, server=logs.server, assume_tz=args.assume_tz)
    missing = [f"--{r}" for r in tables if not tables[r] and not getattr(args, r)]
    if missing:
        raise UsageError(f"{args.prog}: the following arguments are required: {', '.join(missing)} "
                         f"(a path, or --{missing[0][2:]}-table NAME)")
    return api.Inputs(browser=args.browser or [], server=args.server or [], browser_table=tables["browser"],
                      server_table=tables["server"], assume_tz=args.assume_tz)


def _finish_report(args: argparse.Namespace, report: dict[str, Any], config: Any) -> int:
    from capi_diag.report import STATUS_ORDER, render, section_errors

    text = render(report, args.format, config)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"{args.output}: cannot write the report ({e.strerror}); "
                             "choose a writable --output path.") from None
    else:
        _write_stdout(text)
    failed = section_errors(report)
    if failed:
        print(f"capi-diag: internal error: the {', '.join(failed)} analysis failed "
              f"({report[failed[0]].get('reason')}); the report was written with those sections marked "
              "error. Please report it (CAPI_DIAG_DEBUG=1 logs the traceback).", file=sys.stderr)
        return EXIT_INTERNAL
    bar = STATUS_ORDER[args.fail_on]
    bad = [i for i in report.get("checklist", [])
           if i["status"] in ("fail", "warn") and STATUS_ORDER[i["status"]] <= bar]
    return EXIT_BAD_RESULT if bad else EXIT_OK


def _report_inputs(args: argparse.Namespace, *, extras: bool = True) -> Any:
    """The inputs of ``report``: ``--browser``/``--server`` (with ``--orders``/``--send-log``), or the
    bundled demo pair with the demo's orders export and send log where those are not given."""
    from capi_diag import api

    if not args.demo:
        missing = [f"--{r}" for r in ("browser", "server") if not getattr(args, r)]
        if missing:
            raise UsageError(f"{args.prog}: the following arguments are required: {', '.join(missing)} "
                             f"(or --demo for the bundled demo logs; see '{args.prog} --help')")
        return api.Inputs(browser=args.browser, server=args.server, orders=args.orders or [],
                          send_log=args.send_log or [], assume_tz=args.assume_tz)
    if args.browser or args.server:
        raise UsageError(f"{args.prog}: --demo replaces --browser and --server; give one or the other.")
    return api.Inputs.demo(orders=args.orders or [], send_log=args.send_log or [], assume_tz=args.assume_tz,
                           extras=extras)


def _cmd_schema(args: argparse.Namespace) -> int:
    from capi_diag.core import resources

    _write_stdout(resources.path(resources.REPORT_SCHEMA).read_text(encoding="utf-8"))
    return EXIT_OK


def _write_stdout(text: str) -> None:
    """Write to stdout; a reader that stops early (``| head``) is not an error: the rest goes nowhere."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()


def _stdout_to_devnull() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _cmd_sample(args: argparse.Namespace) -> int:
    from capi_diag.io.sample import write_sample

    paths = write_sample(args.out, sessions=args.sessions, seed=args.seed, fmt=args.format)
    for p in paths:
        print(p)
    return EXIT_OK


CORE_COMMANDS = ("report", "sample", "schema")
"""Commands whose parsing needs none of the Graph API or server code (not imported for them: it costs
time on every report)."""


def _prog() -> str:
    """``python -m capi_diag`` when run that way, else the installed command's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return "python -m capi_diag" if spec is not None and spec.name == "capi_diag.__main__" else "capi-diag"


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog=_prog(), description="Diagnostics for Meta Conversions API setups.")
    parser.add_argument("--version", action="version", version=f"capi-diag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rep = sub.add_parser("report", help="import browser and server logs and print the diagnostics report",
                         epilog=REPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    rep.add_argument("--browser", action="append", metavar="PATH",
                     help="browser (Pixel) log: CSV, JSON Lines, Parquet or a HAR; repeat for several files")
    rep.add_argument("--server", action="append", metavar="PATH",
                     help="server (CAPI) log; repeat for several files")
    rep.add_argument("--orders", action="append", metavar="PATH",
                     help="the shop's orders export (Shopify, WooCommerce or order_id,created_at,value,currency; "
                          "CSV, JSON Lines or Parquet): reconciles every order with both logs")
    rep.add_argument("--send-log", action="append", metavar="PATH",
                     help="Meta's answers to the server's sends (JSON Lines, docs/send-log.md), e.g. from "
                          "'send-test --send-log-out'")
    rep.add_argument("--demo", action="store_true",
                     help="use the bundled demo logs (with their orders export and send log) instead of "
                          "--browser and --server")
    rep.add_argument("--format", choices=("json", "markdown", "html"), default="json")
    rep.add_argument("--output", metavar="PATH", help="write the report here instead of stdout")
    rep.add_argument("--config", metavar="PATH", help="TOML file with thresholds and the consent policy")
    rep.add_argument("--fail-on", choices=("warn", "fail"), default="fail",
                     help="exit 1 when a checklist item has this status or worse (default: fail)")
    rep.add_argument("--db", metavar="PATH", help="keep the imported data in this DuckDB file")
    rep.add_argument("--assume-tz", default="UTC", metavar="TZ",
                     help="time zone for ISO-8601 times without an offset (default: UTC)")
    rep.add_argument("--memory-limit", metavar="SIZE",
                     help="DuckDB memory_limit, e.g. 512MB or 4GB (env CAPI_DIAG_MEMORY_LIMIT, config "
                          "[database] memory_limit); beyond it DuckDB spills to --temp-dir")
    rep.add_argument("--temp-dir", metavar="DIR",
                     help="folder DuckDB spills to beyond --memory-limit (env CAPI_DIAG_TEMP_DIR, config "
                          "[database] temp_directory)")
    rep.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                     help="compute the report with DuckDB (default) or Spark (pip install -r "
                          "requirements-spark.txt; Java 17); see docs/spark.md")
    rep.add_argument("--spark-master", metavar="URL", default=None,
                     help="Spark master for --engine spark (default local[*]; SPARK_REMOTE=sc://... "
                          "uses Spark Connect instead)")
    rep.add_argument("--browser-table", metavar="NAME", help="--engine spark: read the browser log from this table")
    rep.add_argument("--server-table", metavar="NAME", help="--engine spark: read the server log from this table")
    rep.set_defaults(func=_cmd_report, prog=rep.prog)

    smp = sub.add_parser("sample", help="write a realistic demo pair of logs with known defects")
    smp.add_argument("--out", required=True, metavar="DIR")
    smp.add_argument("--sessions", type=int, default=1500)
    smp.add_argument("--seed", type=int, default=7)
    smp.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
    smp.set_defaults(func=_cmd_sample)

    sch = sub.add_parser("schema", help="print the JSON Schema of the JSON report (docs/report.schema.json)")
    sch.set_defaults(func=_cmd_schema)

    if not (argv and argv[0] in CORE_COMMANDS):
        from capi_diag.cli import serve

        serve.add_parser(sub)
        _add_graph_commands(sub)
    return parser


def _add_graph_commands(sub: argparse._SubParsersAction) -> None:
    """The commands that talk to the Graph API: Test Events (``send-test``, ``watch``, ``fake-graph``),
    then Meta's side (``connect``, ``meta-quality``)."""
    from capi_diag.cli import meta, testevents

    testevents.add_parsers(sub)
    meta.add_parsers(sub)
    from capi_diag.cli import monitor

    monitor.add_parsers(sub)
    from capi_diag.cli import rehearse

    rehearse.add_parsers(sub)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(argv).parse_args(argv)
        return int(args.func(args))
    except CapiDiagError as e:
        print(f"capi-diag: {e.title}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("capi-diag: interrupted", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # stdout's reader left (``| head``) during a command's progress output
        _stdout_to_devnull()
        return EXIT_OK
    except Exception as e:  # a bug in capi-diag, not in the user's input: say so, in one line
        if os.environ.get("CAPI_DIAG_DEBUG") == "1":
            raise
        print(f"capi-diag: internal error ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
              "please report it with CAPI_DIAG_DEBUG=1 set to get the traceback", file=sys.stderr)
        return EXIT_INTERNAL
