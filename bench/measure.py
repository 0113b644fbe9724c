"""Whole-process measurements for the benchmark: wall time and peak RSS of one child process.

The measured command is started by a small launcher process (``bench/launch.py``), which spawns it
with :func:`os.posix_spawnp`, reaps it with :func:`os.wait4` and writes the child's wall time
(spawn to reap) and ``ru_maxrss`` (its peak resident set size, kilobytes on Linux) to a file.

Why a launcher: Linux keeps ``ru_maxrss`` across ``execve`` and seeds it, when a process is forked
(or vforked, as ``subprocess`` and ``posix_spawn`` do) and then executes a program, with the
*parent's* high-water RSS. Spawned straight from a harness that has grown to 300 MB, ``python -c
"print(1)"`` would report a 300 MB peak. The launcher is a bare interpreter (``-I -S``, importing
only ``os``, ``sys`` and ``time``: 8.6 MB here, as much as ``python -c pass`` itself), so the peak it
reads back is the measured program's own. Output goes to files, never pipes, so a chatty child
cannot block while the harness waits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).resolve().with_name("launch.py")


@dataclass(frozen=True)
class ProcessRun:
    """One finished child process."""

    wall_s: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    cpu_s: float | None = None
    """User + system CPU seconds of the child (all its threads): steadier than wall time on a shared machine."""

    def stderr_tail(self, lines: int = 5) -> str:
        return "\n".join(self.stderr.strip().splitlines()[-lines:])


def run_measured(cmd: Sequence[str], *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
                 timeout: float | None = None) -> ProcessRun:
    """Run ``cmd`` to completion; its wall time and its own peak RSS, measured by the launcher.

    ``timeout`` (seconds) kills the launcher's process group (the launcher and the command) when
    exceeded; the run is then marked ``timed_out`` with the time until the kill.
    """
    with tempfile.TemporaryDirectory(prefix="capi-bench-run-") as tmp:
        result = Path(tmp) / "result.json"
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        launcher = [sys.executable, "-I", "-S", str(LAUNCHER), str(result), "--", *cmd]
        started = time.perf_counter()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(launcher, cwd=cwd, env=dict(env) if env is not None else None,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        elapsed = time.perf_counter() - started
        stdout = out_path.read_text("utf-8", "replace")
        stderr = err_path.read_text("utf-8", "replace")
        if timed_out or not result.exists():
            return ProcessRun(wall_s=elapsed, peak_rss_bytes=0, returncode=proc.returncode if not timed_out else -9,
                              stdout=stdout, stderr=stderr, timed_out=timed_out)
        measured = json.loads(result.read_text())
        return ProcessRun(wall_s=measured["wall_s"], peak_rss_bytes=measured["maxrss_kb"] * 1024,
                          returncode=measured["returncode"], stdout=stdout, stderr=stderr,
                          cpu_s=measured.get("cpu_s"))
