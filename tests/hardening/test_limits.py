"""Limits: about 1 GB of logs imported and reported at a 512 MB DuckDB ``memory_limit``.

The logs are the demo pair (``data/``) repeated by DuckDB itself (a cross join with ``range``, every
event id suffixed with its copy number so pairs stay pairs and ids stay unique) and written with
``COPY``: no per-row Python. The report runs as its own process, so its peak RSS is measured alone
(``os.wait4``). It must complete (exit 0 or 1, a valid report) or stop with exit 2 and one line naming
the memory limit; a traceback, another exit status or a killed process fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.hardening.figures import ROOT, record

pytestmark = pytest.mark.hardening

TARGET_BYTES = int(os.environ.get("CAPI_HARDENING_LIMIT_BYTES", 1_000_000_000))
MEMORY_LIMIT = os.environ.get("CAPI_HARDENING_MEMORY_LIMIT", "512MB")
DEADLINE_S = 900


def _repeat(con: duckdb.DuckDBPyConnection, src: Path, dest: Path, id_col: str, copies: int) -> int:
    q = '"' + id_col + '"'
    con.execute("CREATE OR REPLACE TABLE demo AS SELECT * FROM read_csv(?, all_varchar = true, header = true)",
                [str(src)])
    con.execute(f"""COPY (SELECT * REPLACE ({q} || '-' || CAST(k AS VARCHAR) AS {q})
                    FROM range({copies}) AS r(k), demo)
                    TO '{str(dest).replace("'", "''")}' (FORMAT csv, HEADER true)""")
    return int(con.execute("SELECT count(*) * ? FROM demo", [copies]).fetchone()[0])


def make_logs(folder: Path, target_bytes: int) -> tuple[Path, Path, dict[str, int]]:
    demo_b, demo_s = ROOT / "data" / "browser_events.csv", ROOT / "data" / "server_events.csv"
    copies = max(1, round(target_bytes / (demo_b.stat().st_size + demo_s.stat().st_size)))
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '1GB'")
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET temp_directory = ?", [str(folder / "gen_spill")])
        rows_b = _repeat(con, demo_b, folder / "browser.csv", "eventID", copies)
        rows_s = _repeat(con, demo_s, folder / "server.csv", "event_id", copies)
    finally:
        con.close()
    return folder / "browser.csv", folder / "server.csv", {"copies": copies, "browser_rows": rows_b,
                                                            "server_rows": rows_s}


@pytest.mark.timeout(1800)
def test_limits_one_gigabyte_at_512mb_completes_or_stops_clearly(tmp_path):
    t0 = time.perf_counter()
    browser, server, counts = make_logs(tmp_path, TARGET_BYTES)
    gen_s = time.perf_counter() - t0
    size = browser.stat().st_size + server.stat().st_size
    out = tmp_path / "report.json"
    spill = tmp_path / "spill"
    cmd = [sys.executable, "-m", "capi_diag", "report", "--browser", str(browser), "--server", str(server),
           "--memory-limit", MEMORY_LIMIT, "--temp-dir", str(spill), "--output", str(out)]
    env = {**os.environ, "CAPI_DIAG_CACHE_DIR": "off"}
    env.pop("CAPI_DIAG_MEMORY_LIMIT", None)
    t1 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        record("limits", hangs=1)
        raise
    # communicate() reaped the child; its rusage comes from RUSAGE_CHILDREN of this process, the
    # only child that ran this long, so the maximum is this report's peak
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    duration = time.perf_counter() - t1
    completed = proc.returncode in (0, 1)
    clear_stop = proc.returncode == 2 and stderr.count("\n") == 1 and "memory_limit" in stderr
    figures = {
        "input_bytes": size, "input_gb": round(size / 1e9, 2), "memory_limit": MEMORY_LIMIT,
        "server_rows": counts["server_rows"], "browser_rows": counts["browser_rows"],
        "generate_s": round(gen_s, 1), "duration_s": round(duration, 1), "peak_rss_mb": round(peak_mb),
        "exit_status": proc.returncode, "outcome": "completed" if completed else "clear stop" if clear_stop
        else "crash", "crashes": 0 if completed or clear_stop else 1, "hangs": 0,
    }
    if completed:
        report = json.loads(out.read_text(encoding="utf-8"))
        figures["server_rows_loaded"] = report["inputs"]["server"]["rows"]
        assert report["inputs"]["server"]["rows_read"] == counts["server_rows"]
        assert report["inputs"]["browser"]["rows_read"] == counts["browser_rows"]
    record("limits", **figures)
    assert completed or clear_stop, (proc.returncode, stderr[-2000:])
    assert "Traceback" not in stderr
