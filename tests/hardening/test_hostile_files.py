"""Broken and hostile input (issue 14): at least 1,000 generated files through the real import and report.

Each file from :mod:`tests.hardening.hostile` is one log of a pair (the other a small good log),
server and browser in turn. A file with a good row must load, every row it holds counted: the
generator's count of data rows = rows loaded + rows rejected, and the rejections by reason as the
generator made them, and the file yields a report: every tenth such file through ``capi-diag
report`` (``cli.main`` in process) to a JSON report, the others through the import and
``build_report`` as the dashboard runs them (half of them as the Import page hands an upload over:
bytes read from memory), the report's row count checked against the import's. A file without one
must stop the import with one :class:`~capi_diag.core.errors.CapiDiagError` (through ``cli.main``: exit
2, one line on stderr naming the file). Any other exception, an exit 3, a traceback, or a file over
:data:`DEADLINE_S` is a failure. A sample also runs as a subprocess. The figures go to
``bench/results/hardening/hostile_files.json``.

Hypothesis draws the files first, and how each is checked is fixed in that order (its role, whether
it goes through ``capi-diag report`` or as an upload); :data:`WORKERS` processes then check them, as
one process would check them in turn (``CAPI_HARDENING_WORKERS=1``: in the test's own process).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from capi_diag.cli import main
from capi_diag.core.config import Config
from capi_diag.core.errors import CapiDiagError
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.report import build_report
from tests.hardening.figures import ROOT, record
from tests.hardening.hostile import ANY_REASON, HostileFile, hostile_files

pytestmark = pytest.mark.hardening

FILES = int(os.environ.get("CAPI_HARDENING_FILES", 1000))
REPORT_EVERY = 10
DEADLINE_S = 60.0
CLI_SAMPLE = 12
# Checking a file is one core's work (Python and small DuckDB queries): a process per core, at most four.
WORKERS = max(1, int(os.environ.get("CAPI_HARDENING_WORKERS", min(4, os.cpu_count() or 1))))
CHUNK = 10  # files a worker takes at a time: a few seconds of work, so the workers finish together
GOOD = "event_name,event_id,event_time,fbp\nPurchase,e1,1794873602,fb.1.1794873601259.17318\n"


@dataclass(frozen=True)
class Job:
    """A drawn file and how it is checked."""

    i: int
    """Its place in the order drawn: its name's prefix; even, the server log, odd, the browser log."""
    hf: HostileFile
    loaded: int | None
    """For a file with a good row, its place among those (every :data:`REPORT_EVERY`-th through
    ``capi-diag report``, every other one of the rest as an upload); ``None`` for a file to refuse."""
    kept: bool
    """Kept on disk for the subprocess sample."""

    @property
    def role(self) -> str:
        return "server" if self.i % 2 == 0 else "browser"

    def path(self, folder: Path) -> Path:
        return folder / f"{self.i:04d}-{self.hf.name}"


class Run:
    """The files in the order Hypothesis draws them, each with how it is checked."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.good = folder / "good.csv"
        self.good.write_text(GOOD)
        self.jobs: list[Job] = []
        self.loaded = 0
        self.kept = 0

    @property
    def n(self) -> int:
        return len(self.jobs)

    def one(self, hf: HostileFile) -> None:
        i = self.n
        loaded = None
        if not hf.refuse:
            loaded, self.loaded = self.loaded, self.loaded + 1
        kept = self.kept < CLI_SAMPLE and (hf.refuse or i % 50 == 1)
        self.kept += kept
        self.jobs.append(Job(i, hf, loaded, kept))


def report_args(path: Path, role: str, good: Path) -> list[str]:
    other = "browser" if role == "server" else "server"
    return ["report", f"--{role}", str(path), f"--{other}", str(good)]


class Checker:
    """Checks files in one process and counts what it finds (:meth:`merge` adds another's counts)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.good = folder / "good.csv"
        self.figures: Counter[str] = Counter()
        self.problems: list[tuple[int, str]] = []
        self.kinds: Counter[str] = Counter()
        self.slowest = 0.0
        self.i = -1

    def merge(self, other: Checker) -> None:
        self.figures.update(other.figures)
        self.problems += other.problems
        self.kinds.update(other.kinds)
        self.slowest = max(self.slowest, other.slowest)

    def problem(self, figure: str, hf: HostileFile, path: Path, detail: str) -> None:
        self.figures[figure] += 1
        keep = os.environ.get("CAPI_HARDENING_KEEP")  # a folder to keep the failing files in, to debug
        if keep and path.exists():
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / path.name).write_bytes(path.read_bytes())
        self.problems.append((self.i, f"{figure}: {path.name} ({hf.kind}; rows {hf.rows}, "
                                      f"rejected {hf.rejected}): {detail[:400]}"))

    def one(self, job: Job) -> None:
        hf, role = job.hf, job.role
        self.i = job.i
        self.kinds[hf.kind.split()[0] if not hf.refuse else "refuse:" + hf.kind.split()[0]] += 1
        path = job.path(self.folder)
        path.write_bytes(hf.data)
        t0 = time.perf_counter()
        try:
            if hf.refuse:
                self._refused(hf, path, role)
                self._refused_upload(hf, path, role)
            else:
                self._loaded(hf, path, role, job.loaded)
        finally:
            took = time.perf_counter() - t0
            self.slowest = max(self.slowest, took)
            if took > DEADLINE_S:
                self.problem("hangs", hf, path, f"{took:.1f} s")
            if not job.kept:
                path.unlink()

    def _args(self, path: Path, role: str) -> list[str]:
        return report_args(path, role, self.good)

    def _refused(self, hf: HostileFile, path: Path, role: str) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(self._args(path, role))
        text = err.getvalue()
        if rc == 3 or "internal error" in text:
            self.problem("crashes", hf, path, text)
        elif rc != 2:
            self.problem("acceptance_failures", hf, path, f"exit {rc}: a file without a good row was used")
        elif text.count("\n") != 1 or path.name not in text or "Traceback" in text:
            self.problem("message_failures", hf, path, text)
        else:
            self.figures["clean_refusals"] += 1

    def _refused_upload(self, hf: HostileFile, path: Path, role: str) -> None:
        """The same refusal when the file arrives as the Import page's upload (bytes in memory)."""
        other = "browser" if role == "server" else "server"
        try:
            with Database() as db:
                import_logs(db, **{role: [Source(path.name, data=hf.data)], other: [str(self.good)]})
        except CapiDiagError as e:
            if "\n" in str(e) or path.name not in str(e):
                self.problem("message_failures", hf, path, f"upload: {e}")
            else:
                self.figures["clean_upload_refusals"] += 1
        except Exception as e:  # noqa: BLE001 - counted and shown
            self.problem("crashes", hf, path, f"upload: {type(e).__name__}: {e}")
        else:
            self.problem("acceptance_failures", hf, path, "upload: a file without a good row was used")

    def _loaded(self, hf: HostileFile, path: Path, role: str, loaded: int) -> None:
        report_it = loaded % REPORT_EVERY == 0
        if report_it:
            out = path.with_suffix(".report.json")
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = main([*self._args(path, role), "--output", str(out)])
            if rc == 3:
                self.problem("crashes", hf, path, err.getvalue())
                return
            if rc == 2:
                self.problem("refusal_failures", hf, path, err.getvalue())
                return
            fr = json.loads(out.read_text(encoding="utf-8"))["inputs"][role]["file_reports"][0]
            out.unlink()
            self.figures["reports"] += 1
            self.figures["cli_reports"] += 1
        else:
            # every other file as the Import page hands it over: an upload's bytes, read from memory
            upload = (loaded + 1) % 2 == 0
            src = Source(path.name, data=hf.data) if upload else str(path)
            try:
                with Database() as db:
                    ds = import_logs(db, **{role: [src], ("browser" if role == "server" else "server"):
                                            [str(self.good)]})
                    fr = ds.inputs[role]["file_reports"][0]
                    self.figures["imports"] += 1
                    self.figures["uploads"] += upload
                    # every file with a good row yields a report, as the dashboard builds it
                    report = build_report(ds, Config())
                    if report["inputs"][role]["rows"] != fr["rows_loaded"]:
                        self.problem("silent_losses", hf, path, f"report counts {report['inputs'][role]['rows']} "
                                     f"rows, the import loaded {fr['rows_loaded']}")
                        return
                    self.figures["reports"] += 1
            except CapiDiagError as e:
                self.problem("refusal_failures", hf, path, str(e))
                return
            except Exception as e:  # noqa: BLE001 - counted and shown
                self.problem("crashes", hf, path, f"{type(e).__name__}: {e}")
                return
        if fr["rows_loaded"] + fr["rows_rejected"] != hf.rows or fr["rows_read"] != hf.rows:
            self.problem("silent_losses", hf, path, f"read {fr['rows_read']}, loaded {fr['rows_loaded']}, "
                         f"rejected {fr['rows_rejected']} {fr['rejected_reasons']}")
        elif not _reasons_match(fr["rejected_reasons"], hf.rejected):
            self.problem("reason_failures", hf, path, f"rejected {fr['rejected_reasons']}")


def _reasons_match(actual: dict[str, int], expected: dict[str, int]) -> bool:
    """The same rejections by reason; a row of :data:`ANY_REASON` may carry any reason."""
    if sum(actual.values()) != sum(expected.values()):
        return False
    if ANY_REASON not in expected:
        return actual == expected
    return all(actual.get(r, 0) >= n for r, n in expected.items() if r != ANY_REASON)


def check(folder: Path, jobs: list[Job]) -> Checker:
    """Check ``jobs`` in this process (a worker's share of the run)."""
    checker = Checker(folder)
    for job in jobs:
        checker.one(job)
    return checker


@pytest.mark.timeout(1800)
def test_hostile_files_every_row_counted_no_crash_no_hang(tmp_path):
    run = Run(tmp_path)
    t0 = time.perf_counter()

    @settings(max_examples=FILES, database=None, derandomize=True, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(hostile_files)
    def each(hf: HostileFile) -> None:
        run.one(hf)

    # each()'s source seeds the derandomized draw: unchanged, it draws the same files as ever
    each()
    done = Checker(tmp_path)
    if WORKERS == 1:
        done.merge(check(tmp_path, run.jobs))
    else:
        chunks = [run.jobs[k:k + CHUNK] for k in range(0, run.n, CHUNK)]
        with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
            for part in pool.map(functools.partial(check, tmp_path), chunks):
                done.merge(part)
    sample = [job for job in run.jobs if job.kept]

    def subprocess_run(job: Job) -> subprocess.CompletedProcess[str]:
        path = job.path(tmp_path)
        return subprocess.run([sys.executable, "-m", "capi_diag", *report_args(path, job.role, run.good),
                               "--output", str(path) + ".json"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)

    with ThreadPoolExecutor(WORKERS) as threads:  # the real process: no traceback, the documented exit codes
        procs = list(threads.map(subprocess_run, sample))
    for job, proc in zip(sample, procs, strict=True):
        hf, path = job.hf, job.path(tmp_path)
        done.i = job.i
        ok = proc.returncode == 2 and proc.stderr.count("\n") == 1 if hf.refuse else proc.returncode in (0, 1)
        done.figures["subprocess_runs"] += 1
        if not ok or "Traceback" in proc.stderr:
            done.problem("crashes", hf, path, f"subprocess exit {proc.returncode}: {proc.stderr}")
    problems = [text for _, text in sorted(done.problems)]
    figures = {
        "files_tried": run.n, "reports": done.figures["reports"], "reports_through_cli": done.figures["cli_reports"],
        "imports_checked": done.figures["imports"],
        "imports_as_uploads": done.figures["uploads"],
        "clean_refusals": done.figures["clean_refusals"],
        "clean_upload_refusals": done.figures["clean_upload_refusals"], "crashes": done.figures["crashes"],
        "hangs": done.figures["hangs"], "silent_losses": done.figures["silent_losses"],
        "reason_failures": done.figures["reason_failures"], "refusal_failures": done.figures["refusal_failures"],
        "acceptance_failures": done.figures["acceptance_failures"],
        "message_failures": done.figures["message_failures"], "subprocess_runs": done.figures["subprocess_runs"],
        "slowest_file_s": round(done.slowest, 2), "duration_s": round(time.perf_counter() - t0, 1),
        "workers": WORKERS, "kinds": dict(sorted(done.kinds.items())),
    }
    record("hostile_files", **figures)
    print(json.dumps(figures, indent=2))
    assert run.n >= FILES * 0.95
    assert not problems, "\n".join(dict.fromkeys(p.split(": ", 1)[0] + ": " + p.rsplit("): ", 1)[-1][:300]
                                                   for p in problems))


def _fixed_cases() -> list[tuple[str, bytes, int, int, dict[str, int]]]:
    """(name, bytes, rows, loaded, rejected by reason): the sizes too big to draw a thousand times."""
    big = "x" * 10_000_000
    good = "Purchase,1794873602"
    wide_header = ",".join(["event_name", "event_time", *(f"c{i}" for i in range(4998))])
    wide_row = ",".join([good, *("v" for _ in range(4998))])
    huge = "y" * 40_000_000  # over the 32 MiB line limit: one malformed row, the others read
    return [
        ("cell-10mb.csv", f"event_name,event_time,note\n{good},{big}\n{good},small\n".encode(), 2, 2, {}),
        ("cell-10mb.jsonl", (json.dumps({"event_name": "Purchase", "event_time": 1794873602, "note": big}) + "\n"
                             + json.dumps({"event_name": "Lead", "event_time": 1794873603}) + "\n").encode(),
         2, 2, {}),
        ("cols-5000.csv", (wide_header + "\n" + (wide_row + "\n") * 3).encode(), 3, 3, {}),
        ("cols-5000.jsonl", ((json.dumps({"event_name": "Purchase", "event_time": 1794873602,
                                          **{f"c{i}": i for i in range(4998)}}) + "\n") * 3).encode(), 3, 3, {}),
        ("line-40mb.csv", f"event_name,event_time,note\n{good},a\n{good},{huge}\n{good},b\n".encode(), 3, 2,
         {"malformed_row": 1}),
    ]


@pytest.mark.timeout(1800)
def test_hostile_files_fixed_giants_ten_mb_cell_five_thousand_columns(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    tried = problems = 0
    slowest = 0.0
    for name, data, rows, loaded, rejected in _fixed_cases():
        path = tmp_path / name
        path.write_bytes(data)
        tried += 1
        t0 = time.perf_counter()
        out = tmp_path / (name + ".json")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["report", "--server", str(path), "--browser", str(good), "--output", str(out)])
        slowest = max(slowest, time.perf_counter() - t0)
        if rc not in (0, 1):
            problems += 1
            print(name, rc, err.getvalue())
            continue
        fr = json.loads(out.read_text(encoding="utf-8"))["inputs"]["server"]["file_reports"][0]
        if (fr["rows_read"], fr["rows_loaded"], fr["rejected_reasons"]) != (rows, loaded, rejected):
            problems += 1
            print(name, fr["rows_read"], fr["rows_loaded"], fr["rejected_reasons"])
        path.unlink()
    record("hostile_files", giants_tried=tried, giants_failures=problems, giants_slowest_s=round(slowest, 1))
    assert problems == 0
