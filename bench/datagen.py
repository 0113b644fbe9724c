"""Benchmark logs: demo-generator CSV pairs at a requested number of server events, cached on disk.

The logs are made by the demo generator (:mod:`capi_diag.io.sample`, the same as ``make sample``):
``sessions`` is chosen so that the server log has about the requested number of rows, using the
generator's server rows per session measured once on a small run (about 2.97 for the default mix).

**Chunks.** The generator holds every table of a run in one in-memory DuckDB: one million server
rows peak at about 3.4 GB, so ten million cannot be made in one go on a 24 GB machine. Large logs
are made in chunks of at most :data:`CHUNK_SESSIONS` sessions (about 1.8 GB each), each chunk in its
own process, and the chunks' files are concatenated (one header). A chunk generates the session
ids ``offset .. offset + sessions - 1`` with the *same* seed: the generator's randomness is a hash
of ``(seed, session or event, purpose)`` and its ids derive from the session id (``ORD-<100000 +
sid>`` order numbers, hash-derived UUIDs), so the chunks together hold exactly the rows of one
run over all the sessions, every event id as unique as in one run; only the row order differs (each
chunk's file is in time order). Before the files are joined, a check confirms that no event id
occurs in two chunks.

**Cache.** ``bench/_data/<label>-seed<seed>-gen<version>/`` holds ``browser.csv``, ``server.csv``,
``meta.json`` (sessions, rows, bytes, chunks, generation time) and each chunk's ground-truth
``manifests/chunk_NN.json``. ``version`` is a hash of ``capi_diag/io/sample.py`` and of
:data:`LAYOUT_VERSION`, so a changed generator makes new files instead of reusing stale ones. A
folder is complete once ``meta.json`` exists: it is built under ``*.partial`` and renamed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "_data"
SAMPLE_SOURCE = ROOT / "capi_diag" / "io" / "sample.py"

CHUNK_SESSIONS = 170_000
"""Sessions per generator process: about 505k server rows and a 1.8 GB peak (the brief allows ~3 GB)."""
CALIBRATION_SESSIONS = 20_000
"""Sessions of the small run that measures server rows per session (2 s)."""
LAYOUT_VERSION = 1
"""Bump when the chunking, offsets or file layout change (part of the cache key)."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class Logs:
    """A cached browser/server CSV pair and its ``meta.json``."""

    label: str
    folder: Path
    meta: dict[str, Any]

    @property
    def browser(self) -> Path:
        return self.folder / "browser.csv"

    @property
    def server(self) -> Path:
        return self.folder / "server.csv"


def parse_size(label: str) -> int:
    """``100k`` -> 100,000; ``1M`` -> 1,000,000; ``2500`` -> 2,500."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", label)
    if not m:
        raise ValueError(f"size {label!r}: write a number of server events such as 100k, 1M or 250000")
    value = float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    if value < 1 or value != int(value):
        raise ValueError(f"size {label!r} must be a whole number of server events, at least 1")
    return int(value)


def generator_version() -> str:
    """A short hash of the generator's source and the chunk layout (the cache key's version)."""
    h = hashlib.sha256(SAMPLE_SOURCE.read_bytes())
    h.update(f"layout {LAYOUT_VERSION} chunk {CHUNK_SESSIONS}".encode())
    return h.hexdigest()[:10]


def _python_cmd(python: str, *args: str) -> list[str]:
    return [python, str(Path(__file__).resolve()), *args]


def rows_per_session(seed: int, python: str, data_dir: Path = DATA_DIR, log: Log = print) -> float:
    """Server rows per session of the generator's mix, measured once per version and seed (cached)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cache = data_dir / f"calibration-seed{seed}-gen{generator_version()}.json"
    if cache.exists():
        return float(json.loads(cache.read_text())["server_rows_per_session"])
    from bench.measure import run_measured

    tmp = data_dir / f"calibration-seed{seed}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    run = run_measured(_python_cmd(python, "chunk", "--out", str(tmp), "--sessions", str(CALIBRATION_SESSIONS),
                                   "--offset", "0", "--seed", str(seed)), cwd=ROOT)
    if run.returncode != 0:
        raise RuntimeError(f"calibration run failed (exit {run.returncode}): {run.stderr_tail()}")
    manifest = json.loads((tmp / "manifest.json").read_text())
    ratio = manifest["rows"]["server"]["written"] / CALIBRATION_SESSIONS
    cache.write_text(json.dumps({"sessions": CALIBRATION_SESSIONS, "seed": seed,
                                 "server_rows": manifest["rows"]["server"]["written"],
                                 "browser_rows": manifest["rows"]["browser"]["written"],
                                 "server_rows_per_session": ratio}, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"calibration: {ratio:.4f} server rows per session ({CALIBRATION_SESSIONS:,} sessions, {run.wall_s:.1f} s)")
    return ratio


def cached(label: str, seed: int, data_dir: Path = DATA_DIR) -> Logs | None:
    folder = data_dir / f"{label}-seed{seed}-gen{generator_version()}"
    meta = folder / "meta.json"
    if meta.exists():
        return Logs(label, folder, json.loads(meta.read_text()))
    return None


def stale_folders(data_dir: Path = DATA_DIR) -> list[Path]:
    """Cached folders of an older generator version (safe to delete)."""
    current = generator_version()
    return sorted(p for p in data_dir.glob("*-seed*-gen*") if p.is_dir() and not p.name.endswith(f"gen{current}"))


def ensure_logs(label: str, seed: int, python: str, data_dir: Path = DATA_DIR, log: Log = print) -> Logs:
    """The cached logs for ``label`` (a server-event count such as ``1M``), generated when absent."""
    found = cached(label, seed, data_dir)
    if found is not None:
        return found
    from bench.measure import run_measured

    target = parse_size(label)
    ratio = rows_per_session(seed, python, data_dir, log)
    sessions = max(1, round(target / ratio))
    n_chunks = math.ceil(sessions / CHUNK_SESSIONS)
    final = data_dir / f"{label}-seed{seed}-gen{generator_version()}"
    work = final.with_name(final.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / "manifests").mkdir(parents=True)
    log(f"generating {label}: {sessions:,} sessions in {n_chunks} chunk(s), seed {seed} -> {final}")
    started = time.perf_counter()
    chunks: list[dict[str, Any]] = []
    headers: dict[str, bytes] = {}
    offset = 0
    for i in range(n_chunks):
        size = min(CHUNK_SESSIONS, sessions - offset)
        out = work / f"chunk_{i:02d}"
        run = run_measured(_python_cmd(python, "chunk", "--out", str(out), "--sessions", str(size),
                                       "--offset", str(offset), "--seed", str(seed)), cwd=ROOT)
        if run.returncode != 0:
            raise RuntimeError(f"{label}: generating chunk {i} failed (exit {run.returncode}): {run.stderr_tail()}")
        manifest = json.loads((out / "manifest.json").read_text())
        shutil.move(str(out / "manifest.json"), work / "manifests" / f"chunk_{i:02d}.json")
        chunks.append({"offset": offset, "sessions": size, "seconds": round(run.wall_s, 2),
                       "peak_rss_bytes": run.peak_rss_bytes,
                       "server_rows": manifest["rows"]["server"]["written"],
                       "browser_rows": manifest["rows"]["browser"]["written"]})
        log(f"  chunk {i + 1}/{n_chunks}: sessions {offset:,}..{offset + size - 1:,}, {run.wall_s:.1f} s, "
            f"peak RSS {run.peak_rss_bytes / 2**30:.2f} GiB")
        offset += size
    chunk_dirs = [work / f"chunk_{i:02d}" for i in range(n_chunks)]
    shared = _shared_ids_across_chunks(chunk_dirs) if n_chunks > 1 else 0
    if shared:
        raise RuntimeError(f"{label}: {shared} event ids occur in more than one chunk; the chunks are not disjoint")
    for out in chunk_dirs:
        for role in ("browser", "server"):
            headers[role] = _append(out / f"{role}_events.csv", work / f"{role}.csv", headers.get(role))
        shutil.rmtree(out)
    rows = {role: sum(int(c[f"{role}_rows"]) for c in chunks) for role in ("browser", "server")}
    meta = {
        "label": label, "target_server_rows": target, "seed": seed, "sessions": sessions,
        "generator_version": generator_version(), "layout_version": LAYOUT_VERSION,
        "server_rows_per_session": ratio,
        "rows": rows,
        "bytes": {role: (work / f"{role}.csv").stat().st_size for role in ("browser", "server")},
        "chunks": chunks,
        "event_ids_shared_across_chunks": shared,
        "generation_s": round(time.perf_counter() - started, 2),
        "command": f"python -m capi_diag sample --sessions {sessions} --seed {seed} --format csv "
                   f"(in {n_chunks} chunk(s) of consecutive session ids, files concatenated)",
    }
    (work / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    log(f"generated {label}: {rows['server']:,} server + {rows['browser']:,} browser rows, "
        f"{sum(meta['bytes'].values()) / 1e9:.2f} GB, {meta['generation_s']:.0f} s")
    return Logs(label, final, meta)


def _append(src: Path, dest: Path, header: bytes | None) -> bytes:
    """Append ``src`` to ``dest``; the header line is written once and must be the same in every chunk."""
    with src.open("rb") as fin:
        first = fin.readline()
        if header is not None and first != header:
            raise RuntimeError(f"{src}: header differs from the first chunk's")
        with dest.open("ab") as fout:
            if header is None:
                fout.write(first)
            shutil.copyfileobj(fin, fout, 16 * 2**20)
    return first


def _shared_ids_across_chunks(chunk_dirs: list[Path]) -> int:
    """Event ids (browser or server) found in the files of more than one chunk."""
    import duckdb

    con = duckdb.connect()
    try:
        # ten million ids fit in far less, and spill to disk beyond: stay within the generator's budget
        con.execute("SET memory_limit = '3GB'")
        con.execute("SET temp_directory = ?", [str(chunk_dirs[0].parent / "duckdb_tmp")])
        parts = []
        for role, col in (("browser", "eventID"), ("server", "event_id")):
            files = ", ".join("'" + str(d / f"{role}_events.csv").replace("'", "''") + "'" for d in chunk_dirs)
            parts.append(f'SELECT DISTINCT parse_dirpath(filename) AS chunk, "{col}" AS id '
                         f"FROM read_csv([{files}], all_varchar = true, filename = true) "
                         f'WHERE "{col}" IS NOT NULL')
        sql = (f"SELECT count(*) FROM (SELECT id FROM ({' UNION '.join(parts)}) "
               "GROUP BY id HAVING count(DISTINCT chunk) > 1)")
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def one_row_logs(data_dir: Path = DATA_DIR) -> tuple[Path, Path]:
    """A 1-row browser log and a 1-row server log cut from the demo data (``data/``): the first
    server row whose ``event_id`` the browser log also has, and that browser row (a paired event)."""
    import csv

    demo = ROOT / "data"
    out = data_dir / "one-row"
    out.mkdir(parents=True, exist_ok=True)
    with (demo / "browser_events.csv").open(newline="", encoding="utf-8") as f:
        b_reader = csv.reader(f)
        b_header = next(b_reader)
        b_rows = {row[b_header.index("eventID")]: row for row in b_reader}
    with (demo / "server_events.csv").open(newline="", encoding="utf-8") as f:
        s_reader = csv.reader(f)
        s_header = next(s_reader)
        s_row = next(r for r in s_reader if r[s_header.index("event_id")] in b_rows)
    b_row = b_rows[s_row[s_header.index("event_id")]]
    for name, header, row in (("browser.csv", b_header, b_row), ("server.csv", s_header, s_row)):
        with (out / name).open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerow(row)
    return out / "browser.csv", out / "server.csv"


# -- the chunk process ------------------------------------------------------------------------------

def write_chunk(out: Path, *, sessions: int, offset: int, seed: int) -> list[Path]:
    """``capi_diag.io.sample.write_sample`` over the session ids ``offset .. offset + sessions - 1``.

    The generator numbers sessions ``range(sessions)``; this shifts that one range. If the generator
    changes shape, the replacement no longer finds its text and this fails loudly instead of
    producing overlapping chunks.
    """
    from capi_diag.io import sample

    original = sample.sessions_sql

    def shifted(n: int, end: int) -> str:
        sql = original(n, end)
        needle = f"FROM range({int(n)})"
        if sql.count(needle) != 1:
            raise RuntimeError("capi_diag.io.sample.sessions_sql no longer numbers sessions with "
                               f"'{needle}': update bench/datagen.py write_chunk")
        return sql.replace(needle, f"FROM range({int(offset)}, {int(offset) + int(n)})")

    sample.sessions_sql = shifted
    try:
        return sample.write_sample(out, sessions=sessions, seed=seed, fmt="csv")
    finally:
        sample.sessions_sql = original


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate one chunk of benchmark logs (used by bench/run.py).")
    sub = parser.add_subparsers(dest="command", required=True)
    ch = sub.add_parser("chunk")
    ch.add_argument("--out", required=True)
    ch.add_argument("--sessions", type=int, required=True)
    ch.add_argument("--offset", type=int, required=True)
    ch.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    write_chunk(Path(args.out), sessions=args.sessions, offset=args.offset, seed=args.seed)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
