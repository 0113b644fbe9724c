"""The floor of the benchmark: DuckDB loading both logs into tables and nothing else.

    python bench/floor.py --browser B.csv --server S.csv [--db PATH]

Imports ``duckdb``, opens a database (in memory, or the file ``--db``, which must not exist yet) and
runs ``CREATE TABLE b AS SELECT * FROM read_csv(browser)`` and ``CREATE TABLE s AS SELECT * FROM
read_csv(server)``. Timed as a whole process by ``bench/run.py``: Python start, the import and the
load are what any tool reading these files into DuckDB pays at least. DuckDB's defaults are kept
(threads = cores, memory limit = 80 % of RAM), as a user's own script would.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--db", help="a file-backed database at this path (default: in memory)")
    args = parser.parse_args(argv)

    import duckdb

    con = duckdb.connect(args.db or ":memory:")
    for table, path in (("b", args.browser), ("s", args.server)):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_csv(?)", [path])
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
