"""The import alone: CPU and wall seconds of ``import_logs`` on a browser/server pair, lowest of N runs.

    python bench/import_only.py BROWSER.csv SERVER.csv [--runs 2] [--root DIR]

``--root`` imports ``capi_diag`` from another checkout (e.g. ``git archive`` of an older commit), so
two versions can be timed alternately on the same files. Each run uses a fresh in-memory database
with a fixed PII key and prints a checksum of ``(row_id, line, event_id, event_time, em,
source_file)`` per table: two versions that import the same rows print the same sums. The last line
is the process's peak RSS (``ru_maxrss``). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("browser")
    ap.add_argument("server")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    from capi_diag.engine.db import Database
    from capi_diag.io.ingest import import_logs

    best: tuple[float, float] | None = None
    for i in range(args.runs):
        db = Database()
        db.pii_key = "0" * 64  # a fixed key: the masked em/ph values, hence the checksums, repeat
        c0, w0 = time.process_time(), time.perf_counter()
        import_logs(db, browser=[args.browser], server=[args.server])
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        sums = [db.fetchone(f"SELECT count(*), sum(hash(row_id, line, event_id, event_time, em, source_file)) "
                            f"FROM {t}") for t in ("browser_events", "server_events")]
        print(f"run {i}: cpu {cpu:.2f} s, wall {wall:.2f} s; rows and checksums {sums}", flush=True)
        best = (cpu, wall) if best is None else min(best, (cpu, wall))
        db.close()
    if best:
        print(f"lowest: cpu {best[0]:.2f} s, wall {best[1]:.2f} s; "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KB")


if __name__ == "__main__":
    main()
