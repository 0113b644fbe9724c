"""Benchmark: generate demo logs, then time the import and the report separately.

Not a test (CI never runs it). Usage, from the repository root::

    .venv/bin/python bench/bench_import.py --server-rows 1000000
    .venv/bin/python bench/bench_import.py --server-rows 200000 --format parquet --threads 2

It writes a browser/server pair with :func:`capi_diag.io.sample.write_sample` into a temporary folder
(or ``--keep DIR``), imports it with :func:`capi_diag.io.ingest.import_logs` into an in-memory DuckDB
database, runs :func:`capi_diag.report.build_report`, and prints the seconds and rows per second
of each step, the time of each analysis, and the report's counts next to the manifest's ground
truth where both exist.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capi_diag import diagnostics  # noqa: E402
from capi_diag.engine.db import Database  # noqa: E402
from capi_diag.io import sample

SERVER_ROWS_PER_SESSION = 2.99
"""Server rows per session of the default mix (4,490 rows for 1,500 sessions)."""

COMPARE = (
    ("dedup", ("paired", "outside_window", "browser_only", "server_only", "name_case_mismatch",
               "different_ids_probable", "duplicate_server_rows", "browser_missing_event_id",
               "server_missing_event_id")),
    ("timing", ("skew_over_threshold", "event_time_in_ms", "stale_over_7d", "future")),
    ("consent", ("forwarded_without_consent", "consent_unknown")),
    ("contract", ("purchase_missing_value", "value_not_numeric", "currency_invalid", "nonstandard_event_name",
                  "test_event_code_present")),
)


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "n/a"


def _compare(report: dict, manifest: dict) -> list[str]:
    lines = []
    for section, keys in COMPARE:
        got = report.get(section)
        if not isinstance(got, dict):
            lines.append(f"  {section:<9} not in the report (analysis not there yet)")
            continue
        for key in keys:
            if key in got and key in manifest.get(section, {}):
                want, have = manifest[section][key], got[key]
                mark = "ok" if want == have else "DIFFERS"
                lines.append(f"  {section + '.' + key:<40} manifest {want:>9,}  report {have!s:>9}  {mark}")
    keys = report.get("match_keys")
    if isinstance(keys, dict):
        for field, expected in manifest["match_keys"].items():
            defects = (keys.get(field) or {}).get("defects") or {}
            for name, want in expected.items():
                if name in defects:
                    have = defects[name]
                    mark = "ok" if want == have else "DIFFERS"
                    label = f"match_keys.{field}.{name}"
                    lines.append(f"  {label:<40} manifest {want:>9,}  report {have!s:>9}  {mark}")
    return lines


def run(args: argparse.Namespace) -> None:
    from capi_diag.io.ingest import import_logs
    from capi_diag.report import build_report

    sessions = args.sessions or max(1, math.ceil(args.server_rows / SERVER_ROWS_PER_SESSION))
    with tempfile.TemporaryDirectory(prefix="capi-bench-") as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        t0 = time.perf_counter()
        browser, server, manifest_path = sample.write_sample(out, sessions=sessions, seed=args.seed,
                                                             fmt=args.format, threads=args.threads)
        t_gen = time.perf_counter() - t0
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        rows_b = manifest["rows"]["browser"]["written"]
        rows_s = manifest["rows"]["server"]["written"]
        total = rows_b + rows_s
        size = (browser.stat().st_size + server.stat().st_size) / 1e6
        print(f"sessions {sessions:,}: {rows_b:,} browser + {rows_s:,} server rows, {args.format}, "
              f"{size:,.1f} MB, threads {args.threads or 'default'}")
        print(f"generate (incl. manifest) {t_gen:8.2f} s   {_rate(total, t_gen)}")

        db = Database(threads=args.threads)
        try:
            t0 = time.perf_counter()
            ds = import_logs(db, browser=[browser], server=[server])
            t_imp = time.perf_counter() - t0
            print(f"import_logs               {t_imp:8.2f} s   {_rate(total, t_imp)}")

            if args.skip_report:
                return
            sections = list(diagnostics.ORDER)
            marks: list[tuple[str, float]] = []

            def progress(section: str, i: int, n: int) -> None:
                marks.append((section, time.perf_counter()))

            t0 = time.perf_counter()
            report = build_report(ds, progress=progress)
            t_rep = time.perf_counter() - t0
            print(f"build_report              {t_rep:8.2f} s   {_rate(total, t_rep)}  "
                  f"(analyses: {', '.join(sections) or 'none yet'}"
                  f"{'; checklist' if 'checklist' in report else ''})")
            ends = [m[1] for m in marks[1:]] + [t0 + t_rep]
            for (section, start), end in zip(marks, ends, strict=True):
                print(f"  {section:<22}  {end - start:8.2f} s")
            print(f"import + report           {t_imp + t_rep:8.2f} s   {_rate(total, t_imp + t_rep)}")
            print("report vs manifest:")
            print("\n".join(_compare(report, manifest)))
        finally:
            db.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-rows", type=int, default=1_000_000,
                        help="approximate server rows to generate (default 1,000,000)")
    parser.add_argument("--sessions", type=int, help="sessions to generate (overrides --server-rows)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=sample.FORMATS, default="csv")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's own, all cores)")
    parser.add_argument("--keep", metavar="DIR", help="write the logs here and keep them")
    parser.add_argument("--skip-report", action="store_true", help="time generation and import only")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
