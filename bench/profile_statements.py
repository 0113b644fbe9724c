"""Per-statement profile of one ``report``: CPU seconds of every DuckDB statement, slowest first.

    python bench/profile_statements.py BROWSER.csv SERVER.csv [--top 25]

Runs ``capi-diag report`` in this process with the connection wrapped so that every ``execute`` /
``sql(...).to_arrow_table()`` is timed in process CPU seconds (all DuckDB threads; steadier than wall
time on a shared machine) and prints the total and the slowest statements (their SQL cut short). A
profile, not a benchmark: the wrapper itself costs little, but one run is one run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIMES: list[tuple[float, str]] = []


class _Relation:
    def __init__(self, rel: Any, sql: str) -> None:
        self._rel, self._sql = rel, sql

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._rel, name)
        if not callable(attr):
            return attr

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.process_time()
            try:
                return attr(*a, **k)
            finally:
                TIMES.append((time.process_time() - t0, f"{name}: {self._sql}"))
        return timed


class _Connection:
    def __init__(self, con: Any) -> None:
        self._con = con

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._con, name)
        if name == "execute":
            def execute(sql: str, *a: Any, **k: Any) -> Any:
                t0 = time.process_time()
                try:
                    return attr(sql, *a, **k)
                finally:
                    TIMES.append((time.process_time() - t0, sql))
            return execute
        if name == "sql":
            return lambda sql, *a, **k: _Relation(attr(sql, *a, **k), sql)
        return attr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("browser")
    parser.add_argument("server")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--width", type=int, default=160)
    args = parser.parse_args(argv)

    import duckdb

    from capi_diag.cli import main as cli_main
    from capi_diag.engine import db as dbmod

    connect = duckdb.connect

    class _Module:
        def __getattr__(self, name: str) -> Any:
            return getattr(duckdb, name)

    module = _Module()
    module.connect = lambda *a, **k: _Connection(connect(*a, **k))  # type: ignore[attr-defined]
    dbmod.duckdb = module  # type: ignore[assignment]
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="capi-profile-") as tmp:
        try:
            cli_main(["report", "--browser", args.browser, "--server", args.server,
                      "--output", str(Path(tmp) / "report.json")])
        except SystemExit:
            pass
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"report: {wall:.2f} s wall, {cpu:.2f} s CPU; {len(TIMES)} statements, "
          f"{sum(t for t, _ in TIMES):.2f} s CPU")
    for t, sql in sorted(TIMES, reverse=True)[:args.top]:
        flat = re.sub(r"\s+", " ", sql)
        print(f"{t:7.3f}  {flat[:args.width]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
