"""The ``connect`` and ``meta-quality`` commands: Meta's side of the setup, read with the same token
sources, Graph options and exit codes as ``send-test``.

* ``connect --pixel-id ID``: :func:`capi_diag.meta.connect.check_connection`; prints
  ``Connected to Pixel <name> (<id>)`` and exits 0. Exit 1 when Meta marks the Pixel unavailable or
  the check could not finish (timeouts, 5xx after the retries); exit 2 when Meta refuses the token
  (190), the Pixel (100/33) or a permission (10, 200-299), with the fix in one line on stderr.
* ``meta-quality --pixel-id ID [--browser FILES --server FILES]``: Meta's Dataset Quality figures,
  and with logs the comparison with the report's own figures
  (:func:`capi_diag.meta.quality.compare`), as JSON or Markdown. Exit 0 when every compared figure is
  within its tolerance (always, without logs); **1 when at least one difference is beyond its
  tolerance** (each has its likely cause), or the read could not finish; 2 as for ``connect``.

The token is never printed: every line and document is scrubbed of it before it is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from capi_diag.api import logs_context
from capi_diag.core.config import Config
from capi_diag.core.errors import EXIT_BAD_RESULT, EXIT_OK, UsageError
from capi_diag.meta.client import GraphClient, GraphConfig
from capi_diag.meta.connect import check_connection, check_pixel_id, format_connect
from capi_diag.meta.quality import compare, fetch_quality, to_markdown, tolerances
from capi_diag.meta.token import Secret, resolve_token, scrub
from capi_diag.testevents.sender import emit, now, sleep


def _graph_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pixel-id", required=True, metavar="ID", help="the Pixel (dataset) ID from Events Manager")
    p.add_argument("--graph-url", metavar="URL",
                   help="Graph API base URL (default: $CAPI_GRAPH_URL, else https://graph.facebook.com)")
    p.add_argument("--api-version", metavar="V", help="Graph API version (default: v26.0)")
    p.add_argument("--max-retries", type=int, metavar="N", help="retries of transient failures (default 3)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``connect`` and ``meta-quality`` to the CLI (called by :mod:`capi_diag.cli`)."""
    c = sub.add_parser("connect", help="check that the token works for a Pixel and show the Pixel's name")
    _graph_options(c)
    c.set_defaults(func=cmd_connect)

    q = sub.add_parser("meta-quality",
                       help="Meta's own figures (Dataset Quality API), beside capi-diag's from the logs")
    _graph_options(q)
    q.add_argument("--browser", action="append", metavar="PATH",
                   help="browser (Pixel) log to compare with; repeat for several files (needs --server)")
    q.add_argument("--server", action="append", metavar="PATH",
                   help="server (CAPI) log to compare with; repeat for several files (needs --browser)")
    q.add_argument("--format", choices=("json", "markdown"), default="json")
    q.add_argument("--output", metavar="PATH", help="write the result here instead of stdout")
    q.add_argument("--config", metavar="PATH",
                   help="TOML file: [meta_quality] tolerances and the analyses' thresholds")
    q.add_argument("--assume-tz", default="UTC", metavar="TZ",
                   help="time zone for ISO-8601 times without an offset (default: UTC)")
    q.set_defaults(func=cmd_meta_quality)


def _client(args: argparse.Namespace) -> tuple[GraphClient, Secret]:
    secret = resolve_token()
    graph = GraphConfig.from_env(os.environ, graph_url=args.graph_url, api_version=args.api_version,
                                 max_retries=args.max_retries)
    return GraphClient(secret.reveal(), config=graph, sleep=sleep, clock=now), secret


def _host(config: GraphConfig) -> str:
    parts = urlsplit(config.graph_url)
    return f"{parts.scheme}://{parts.netloc}"


def cmd_connect(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``connect``: 0 connected, 1 unavailable Pixel or unfinished check, 2 refused."""
    out = out or sys.stdout
    pixel = check_pixel_id(args.pixel_id)
    client, secret = _client(args)
    with client:
        result = check_connection(client, pixel)
    if result.refused and result.error is not None:
        raise result.error  # one line on stderr with the catalogue's fix, exit 2
    graph = f"{_host(client.config)} {client.config.api_version}"
    emit(format_connect(result, graph=graph, token_source=secret.source), out, secret)
    if not result.connected:
        for a in result.attempts:
            answer = f"HTTP {a.status_code}" if a.status_code is not None else "no answer"
            emit([f"  attempt {a.number}: {answer}: {a.outcome}" + (f" ({a.detail})" if a.detail else "")],
                 out, secret)
        return EXIT_BAD_RESULT
    if result.pixel is not None and result.pixel.is_unavailable:
        return EXIT_BAD_RESULT
    return EXIT_OK


def _report(args: argparse.Namespace, config: Config) -> tuple[dict[str, Any], Any]:
    """The report of the logs (the same pipeline as ``report``) and the logs' period and Pixel ids."""
    from capi_diag import api

    inputs = api.Inputs(browser=args.browser, server=args.server, assume_tz=args.assume_tz)
    with api.opened(inputs, config) as ds:
        return api.report(ds, config), logs_context(ds.using(config))


def cmd_meta_quality(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``meta-quality``: 0 within tolerance, 1 differences beyond it (or no answer), 2 refused/usage."""
    out = out or sys.stdout
    pixel = check_pixel_id(args.pixel_id)
    if bool(args.browser) != bool(args.server):
        raise UsageError("meta-quality: --browser and --server go together (the comparison needs both logs); "
                         "pass both, or neither for Meta's figures alone.")
    config = Config.load(args.config)
    tol = tolerances(config)  # a bad [meta_quality] table stops here, before anything is sent
    client, secret = _client(args)
    with client:
        fetched = fetch_quality(client, pixel)
    if fetched.error is not None:
        if fetched.refused:
            raise fetched.error
        lines = [f"meta-quality: no answer from Meta for dataset {pixel}: {fetched.error.entry.title}.",
                 f"  fix: {fetched.error.fix}", *(f"  note: {f}" for f in fetched.findings)]
        emit(lines, sys.stderr, secret)
        return EXIT_BAD_RESULT
    assert fetched.quality is not None
    report, context = _report(args, config) if args.browser else (None, None)
    fetched_at = now()
    comparison = compare(fetched.quality, report, context=context, tolerances=tol, now=fetched_at)
    comparison.source = {
        "graph_url": _host(client.config), "api_version": client.config.api_version,
        "fetched_at": dt.datetime.fromtimestamp(fetched_at, dt.UTC).isoformat(timespec="seconds"),
    }
    doc = scrub(comparison.as_dict(), secret)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n" if args.format == "json" else to_markdown(doc)
    text = scrub(text, secret)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise UsageError(f"{args.output}: cannot write the result ({e.strerror}); choose a writable "
                             "--output path.") from None
    else:
        out.write(text)
        out.flush()
    return EXIT_BAD_RESULT if comparison.beyond_tolerance else EXIT_OK


graph_options = _graph_options
"""The Graph options of every Graph command (``--pixel-id``, ``--graph-url``, ``--api-version``,
``--max-retries``), for the other command modules (``monitor``)."""
graph_client = _client
"""The client with the token from ``CAPI_ACCESS_TOKEN`` (or the secrets files) and the Graph options."""
graph_host = _host
