"""``capi-diag serve``: start the dashboard from wherever capi-diag is, a clone or an installed wheel.

It runs ``streamlit run`` on the ``app.py`` that :mod:`capi_diag.core.resources` finds (the checkout's,
or the copy in the installed package), in a child process with this interpreter. Streamlit reads the
``.streamlit/config.toml`` that sits next to that ``app.py`` (its script-level config, which wins
over one in the current folder), so the installed dashboard has the same upload limit, theme and
toolbar as ``make run``; a user's ``STREAMLIT_*`` variables still override it. The dashboard opens on
the bundled demo logs, like ``make run``.

By default it listens on 127.0.0.1 only: the dashboard receives event logs with customer data, so
sharing it on the network is a choice (``--address 0.0.0.0``), not an accident.

Exit codes follow :mod:`capi_diag.cli`: 0 when stopped with Ctrl-C or SIGTERM (forwarded to the
dashboard, which shuts down cleanly); 2 when it cannot start (port taken, an address that is not
this machine's, the dashboard stopping on its own with an error).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
from types import FrameType

from capi_diag.core import resources
from capi_diag.core.errors import EXIT_OK, CapiDiagError, UsageError

DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "127.0.0.1"
STOP_GRACE_S = 15.0


class ServeError(CapiDiagError):
    """The dashboard could not start or stopped on its own."""

    title = "Dashboard not running"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the CLI (called by :mod:`capi_diag.cli`)."""
    srv = sub.add_parser(
        "serve", help="start the dashboard on the bundled demo data (works from any folder once installed)",
        description="Start the capi-diag dashboard (Streamlit) on the bundled demo logs; upload your own "
                    "logs on its Import page. Ctrl-C stops it.",
    )
    srv.add_argument("--port", type=int, default=DEFAULT_PORT,
                     help=f"TCP port to listen on (default {DEFAULT_PORT})")
    srv.add_argument("--address", default=DEFAULT_ADDRESS, metavar="HOST",
                     help=f"interface to listen on (default {DEFAULT_ADDRESS}, this machine only; "
                          "0.0.0.0 shares the dashboard with your network)")
    srv.set_defaults(func=cmd_serve)


def streamlit_command(port: int, address: str) -> list[str]:
    """The child's command line: this interpreter's Streamlit on the app capi-diag ships."""
    app = resources.path(resources.APP)
    if not app.is_file():
        raise ServeError(f"the dashboard's app.py is missing from this capi-diag ({resources.root().name}); "
                         "reinstall capi-diag (pip install --force-reinstall capi-diag).")
    return [sys.executable, "-m", "streamlit", "run", str(app),
            "--server.port", str(port), "--server.address", address,
            # the same as .streamlit/config.toml: no file watcher (an installed package does not
            # change while it runs; watching site-packages overflowed inotify under load), no rerun on save,
            # no full garbage collection after every script run (with twenty sessions at once it starves them)
            "--server.fileWatcherType", "none", "--server.runOnSave", "false", "--runner.postScriptGC", "false"]


def check_port(port: int, address: str) -> None:
    """Raise :class:`UsageError` when ``address:port`` cannot be listened on (before Streamlit tries)."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port (1-65535).")
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"--address {address}: not a host name or address ({e.strerror}).") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as s:
        if os.name == "posix":  # as Streamlit's server does; lets a port in TIME_WAIT be reused
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(sockaddr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {address} is already in use (another dashboard?); "
                                 "stop it or choose another port with --port.") from None
            raise UsageError(f"--address {address} port {port}: cannot listen there ({e.strerror}); "
                             "use 127.0.0.1, 0.0.0.0 or an address of this machine.") from None


def cmd_serve(args: argparse.Namespace) -> int:
    check_port(args.port, args.address)
    cmd = streamlit_command(args.port, args.address)
    shown = "localhost" if args.address in ("127.0.0.1", "localhost", "0.0.0.0", "::") else args.address
    print(f"capi-diag dashboard on http://{shown}:{args.port} (demo data: "
          f"{', '.join(resources.DEMO_FILES.values())}); Ctrl-C stops it", flush=True)
    return _run(cmd)


def _run(cmd: list[str]) -> int:
    """Run the dashboard in the foreground; forward SIGTERM and Ctrl-C to it and wait for it to stop."""
    proc = subprocess.Popen(cmd)
    stopping = threading.Event()

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        proc.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward) if _main_thread() else None
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # Ctrl-C in a terminal reaches the child too; a lone SIGINT does not
                stopping.set()
                proc.send_signal(signal.SIGINT)
                try:
                    code = proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                break
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if stopping.is_set() or code == 0:
        print("capi-diag dashboard stopped", flush=True)
        return EXIT_OK
    raise ServeError(f"the dashboard stopped on its own with exit status {code}; its messages are above.")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
