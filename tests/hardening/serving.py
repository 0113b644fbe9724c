"""A real ``streamlit run app.py`` for the hardening suite, with the shipped configuration (only the
port, and whatever a test lowers, on the command line), its own temporary folder and its memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """The process's resident memory (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Dashboard:
    """``streamlit run app.py`` in a child process; ``tmp`` is its TMPDIR (checked after it ends)."""

    def __init__(self, tmp: Path, log: Path, *, demo_dir: Path | None = None, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.log = log
        env = dict(os.environ, TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp))
        if demo_dir is not None:
            env["CAPI_DEMO_DIR"] = str(demo_dir)
        with open(log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                                          "--server.port", str(self.port), *extra],
                                         cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("streamlit did not start within 120 s") from None
                time.sleep(0.2)

    @property
    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def stop(self) -> int:
        """Stop the server as Ctrl-C does (SIGTERM, Streamlit's clean shutdown); its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
