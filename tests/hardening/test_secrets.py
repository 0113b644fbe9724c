"""Secrets: a sentinel token through every command and every output.

Each case runs one command of the CLI (``report``, ``send-test``, ``watch``, ``connect``,
``meta-quality``, ``fake-graph``) with the sentinel as ``CAPI_ACCESS_TOKEN`` (``fake-graph``: as
its ``--token``) over each input of :data:`INPUTS`, against the local stand-in (accepting,
refusing, throttling, failing) and a hostile stand-in that quotes the Authorization header back in
its errors and in its accepted answers. Afterwards the sentinel must appear nowhere: stdout,
stderr, every log record (DEBUG, every logger, with its traceback), every file the command wrote
(reports in each format, the DuckDB file's bytes and every text value in it, the cache under
HOME), the stand-in's recorded requests (URL and body: the Authorization header is the only place
it may travel; the stand-in accepted it, so it did travel there) and the stand-in's own output.

Inputs are parametrised: one more input that can carry a token or PII (a send log with an
``access_token`` column, an orders export with customers' emails) is one more entry of
:data:`INPUTS`; every case that reads logs then runs on it too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from capi_diag.cli import main
from capi_diag.engine.db import Database
from capi_diag.standins import fake_quality
from capi_diag.standins.fake_server import FakeGraph
from capi_diag.testevents import sender
from tests.conftest import clean_graph_env
from tests.hardening.figures import record
from tests.hardening.serving import ROOT, free_port

pytestmark = pytest.mark.hardening

SENTINEL = "EAAB-SENTINEL-HARDENING-2c81f0e94d6b47a3"
PIXEL = "1234567890"
_FIGURES: dict[str, dict] = {}


def _plain_logs(d: Path) -> dict[str, Path]:
    """A small browser and server log (no secret in them: the token comes from the environment)."""
    b, s = d / "browser.csv", d / "server.csv"
    b.write_text("event_name,event_id,event_time,pixel_id,fbp\n"
                 "PageView,pv-1,1799990000,1234567890,fb.1.1799990000000.1\n"
                 "Purchase,ord-1,1799990100,1234567890,fb.1.1799990000000.1\n")
    s.write_text("event_name,event_id,event_time,action_source,pixel_id,fbp,em,value,currency\n"
                 "PageView,pv-1,1799990001,website,1234567890,fb.1.1799990000000.1,,,\n"
                 "Purchase,ord-1,1799990101,website,1234567890,fb.1.1799990000000.1,"
                 "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3,12.5,EUR\n")
    return {"browser": b, "server": s}


PII = ("buyer.sentinel@example.com", "+33 6 12 34 56 78", "Sentinel Buyer", "12 rue du Sentinel")
"""Customers' details in the orders export: dropped at import, so found in no output either."""


def _send_log_with_token(d: Path) -> dict[str, Path]:
    """The plain logs and a send log written by another tool, with the token at the top of each line
    and inside the request body (``access_token``, ``appsecret_proof``), as some SDK loggers do."""
    logs = _plain_logs(d)
    lines = []
    for i, (status, response) in enumerate([
        (200, {"events_received": 1, "messages": [], "fbtrace_id": "AbCdEf123"}),
        (400, {"error": {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190,
                         "fbtrace_id": "GhIjKl456"}}),
    ]):
        lines.append(json.dumps({
            "sent_at": 1799990101 + i, "pixel_id": PIXEL, "access_token": SENTINEL, "appsecret_proof": SENTINEL,
            "request": {"access_token": SENTINEL, "data": [{
                "event_name": "Purchase", "event_id": "ord-1", "event_time": 1799990101, "action_source": "website",
                "user_data": {"em": ["a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"]},
                "custom_data": {"order_id": "ord-1", "value": 12.5, "currency": "EUR"}}]},
            "http_status": status, "response": response}))
    logs["send_log"] = d / "send_log.jsonl"
    logs["send_log"].write_text("\n".join(lines) + "\n")
    return logs


def _orders_with_customers(d: Path) -> dict[str, Path]:
    """The plain logs and a Shopify-shaped orders export carrying a customer's email, phone, name and
    address (and the token pasted into a note)."""
    logs = _plain_logs(d)
    logs["orders"] = d / "orders.csv"
    logs["orders"].write_text(
        "Name,Email,Financial Status,Created at,Total,Currency,Billing Name,Billing Street,Phone,Notes\n"
        f"ord-1,{PII[0]},paid,2027-01-15 08:00:00 +0000,12.50,EUR,{PII[2]},{PII[3]},{PII[1]},token {SENTINEL}\n"
        f"ord-2,{PII[0]},paid,2027-01-15 09:00:00 +0000,30.00,EUR,{PII[2]},{PII[3]},{PII[1]},\n")
    return logs


INPUTS: dict[str, Callable[[Path], dict[str, Path]]] = {
    "plain logs": _plain_logs,
    "send log with access_token": _send_log_with_token,
    "orders export with customers' details": _orders_with_customers,
}


def _extras(logs: dict[str, Path]) -> list[str]:
    """``--orders``/``--send-log`` for the inputs that have them."""
    out = []
    if "orders" in logs:
        out += ["--orders", str(logs["orders"])]
    if "send_log" in logs:
        out += ["--send-log", str(logs["send_log"])]
    return out


class _Echo:
    """A hostile Graph API: quotes the Authorization header in its error messages, in its accepted
    answers' messages and in fbtrace_id, for reads (GET) and sends (POST)."""

    def __init__(self, accept: bool) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # noqa: A002
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                auth = self.headers.get("Authorization") or ""
                if accept and self.command == "POST":
                    status, body = 200, {"events_received": 1, "messages": [f"seen {auth}"], "fbtrace_id": auth}
                else:
                    status, body = 400, {"error": {"message": f"Malformed access token {auth}",
                                                   "type": "OAuthException", "code": 190,
                                                   "error_user_msg": auth, "fbtrace_id": auth}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.received: list = []

    def __enter__(self) -> _Echo:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Run:
    """What one case produced, gathered for the search."""

    codes: list[int] = field(default_factory=list)
    recorded: list[dict] = field(default_factory=list)
    extra_text: dict[str, str] = field(default_factory=dict)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, rec: logging.LogRecord) -> None:
        self.lines.append(self.format(rec))  # the formatted text includes the traceback


@contextlib.contextmanager
def _all_logging() -> Iterator[_Records]:
    handler, root = _Records(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _db_text(path: Path) -> str:
    """Every value of every table of a DuckDB file, as text (bytes on disk may be compressed)."""
    out = []
    with Database(path) as db:
        for (name,) in db.fetchall("SELECT table_name FROM information_schema.tables"):
            out.append(json.dumps(db.fetchall(f'SELECT * FROM "{name}"'), default=str))
    return "\n".join(out)


def _files_with_sentinel(root: Path) -> list[str]:
    """Files the command wrote (the inputs folder aside: the inputs carry the secrets on purpose)
    holding the token or a customer's detail, in their bytes or in a DuckDB value."""
    found = []
    inputs = root / "inputs"
    for p in sorted(root.rglob("*")):
        if not p.is_file() or inputs in p.parents:
            continue
        data = p.read_bytes()
        text = _db_text(p) if p.suffix == ".duckdb" else ""
        for needle in (SENTINEL, *PII):
            if needle.encode() in data:
                found.append(f"{p.relative_to(root)} (bytes: {'token' if needle == SENTINEL else 'PII'})")
            elif needle in text:
                found.append(f"{p.relative_to(root)} (a table value: {'token' if needle == SENTINEL else 'PII'})")
    return found


# -- the cases: one command each ------------------------------------------------------------------

def case_report(env, tmp: Path, logs: dict[str, Path]) -> Run:
    run = Run()
    for fmt in ("json", "markdown", "html"):
        run.codes.append(main(["report", "--browser", str(logs["browser"]), "--server", str(logs["server"]),
                               *_extras(logs), "--format", fmt, "--output", str(tmp / f"report.{fmt}"),
                               "--db", str(tmp / f"report-{fmt}.duckdb")]))
    run.codes.append(main(["report", "--browser", str(logs["browser"]), "--server", str(logs["server"]),
                           *_extras(logs)]))
    return run


def case_send_test(env, tmp: Path, logs: dict[str, Path]) -> Run:
    run = Run()
    args = ["--pixel-id", PIXEL, "--test-event-code", "TEST123", "--db", str(tmp / "sends.duckdb")]
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL, throttle_every=2, fail_5xx_every=3) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        run.codes += [main(["send-test", *args]) for _ in range(3)]
        run.recorded += fake.received
    for accept in (True, False):
        with _Echo(accept) as echo:
            env.setenv("CAPI_GRAPH_URL", echo.url)
            run.codes.append(main(["send-test", *args]))
    with FakeGraph(token="another-token", pixel_id=PIXEL) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        run.codes.append(main(["send-test", *args]))
    return run


def case_watch(env, tmp: Path, logs: dict[str, Path]) -> Run:
    run = Run()
    args = ["--pixel-id", PIXEL, "--test-event-code", "TEST123", "--db", str(tmp / "watch.duckdb"),
            "--minutes", "0.02", "--interval", "0.4", "--timeout-minutes", "0.1"]
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL, throttle_every=3) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        run.codes.append(main(["watch", *args]))
        run.recorded += fake.received
    with _Echo(False) as echo:
        env.setenv("CAPI_GRAPH_URL", echo.url)
        run.codes.append(main(["watch", *args]))
    return run


def case_connect(env, tmp: Path, logs: dict[str, Path]) -> Run:
    run = Run()
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        run.codes += [main(["connect", "--pixel-id", p]) for p in (PIXEL, "999", fake_quality.NO_PERMISSION_ID)]
        run.recorded += fake.received
    with _Echo(False) as echo:
        env.setenv("CAPI_GRAPH_URL", echo.url)
        run.codes.append(main(["connect", "--pixel-id", PIXEL]))
    return run


def case_meta_quality(env, tmp: Path, logs: dict[str, Path]) -> Run:
    run = Run()
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        for fmt in ("json", "markdown"):
            run.codes.append(main(["meta-quality", "--pixel-id", PIXEL, "--browser", str(logs["browser"]),
                                   "--server", str(logs["server"]), "--format", fmt,
                                   "--output", str(tmp / f"meta.{fmt}")]))
        run.codes += [main(["meta-quality", "--pixel-id", p]) for p in (fake_quality.PARTIAL_ID, "999")]
        run.recorded += fake.received
    with _Echo(False) as echo:
        env.setenv("CAPI_GRAPH_URL", echo.url)
        run.codes.append(main(["meta-quality", "--pixel-id", PIXEL]))
    return run


def case_fake_graph(env, tmp: Path, logs: dict[str, Path]) -> Run:
    """The stand-in as its own process (``--token``), used by ``send-test`` and ``connect``; its
    output is searched too (the request it logs, the banner)."""
    run = Run()
    port = free_port()
    out_path = tmp / "fake-graph.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "capi_diag", "fake-graph", "--port", str(port),
                                 "--token", SENTINEL, "--pixel-id", PIXEL], cwd=tmp, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{url}/__received", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        env.setenv("CAPI_GRAPH_URL", url)
        run.codes.append(main(["connect", "--pixel-id", PIXEL]))
        run.codes.append(main(["send-test", "--pixel-id", PIXEL, "--test-event-code", "TEST123",
                               "--db", str(tmp / "fake.duckdb")]))
        with urllib.request.urlopen(f"{url}/__received", timeout=5) as r:
            received = r.read().decode()
        run.extra_text["stand-in /__received"] = received
        run.recorded += json.loads(received) if received.strip().startswith("[") else []
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    run.extra_text["stand-in output"] = out_path.read_text()
    out_path.unlink()  # searched above; its command line holds the token by design (--token)
    return run


CASES: dict[str, Callable[..., Run]] = {
    "report": case_report, "send-test": case_send_test, "watch": case_watch, "connect": case_connect,
    "meta-quality": case_meta_quality, "fake-graph": case_fake_graph,
}


@pytest.mark.parametrize("input_name", list(INPUTS))
@pytest.mark.parametrize("command", list(CASES))
def test_sentinel_token_only_in_the_authorization_header(command: str, input_name: str, monkeypatch,
                                                        tmp_path: Path, capsys) -> None:
    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CAPI_ACCESS_TOKEN", SENTINEL)
    clock = [1_800_000_000.0]
    monkeypatch.setattr(sender, "CLOCK", lambda: clock[0])
    monkeypatch.setattr(sender, "SLEEP", lambda s: clock.__setitem__(0, clock[0] + s))
    logs = INPUTS[input_name](_inputs_dir(tmp_path))
    with _all_logging() as logged:
        run = CASES[command](monkeypatch, tmp_path, logs)
    out, err = capsys.readouterr()
    places = {"stdout": out, "stderr": err, "logging": "\n".join(logged.lines), **run.extra_text}
    leaks = [name for name, text in places.items() if SENTINEL in text]
    leaks += [f"{name}: a customer's detail" for name, text in places.items() if any(p in text for p in PII)]
    leaks += _files_with_sentinel(tmp_path)
    leaks += [f"request {r.get('method')} {r.get('path', '')[:60]}: URL or body" for r in run.recorded
              if SENTINEL in str(r.get("path")) + json.dumps(r.get("body"), default=str)]
    leaks += [f"request {r.get('method')} headers as recorded" for r in run.recorded
              if SENTINEL in json.dumps(r.get("headers"), default=str)]
    accepted = [r for r in run.recorded if r.get("status") == 200]
    _FIGURES[f"{command} / {input_name}"] = {"runs": len(run.codes), "requests": len(run.recorded),
                                            "accepted_with_the_token": len(accepted), "leaks": leaks}
    every = [leak for f in _FIGURES.values() for leak in f["leaks"]]
    pii = [leak for leak in every if "PII" in leak or "customer" in leak]
    record("secrets", cases_run=len(_FIGURES), token_leaks=len(every) - len(pii), pii_leaks=len(pii),
           commands=sorted({k.split(" / ")[0] for k in _FIGURES}), inputs=sorted(INPUTS),
           outputs_searched=["stdout", "stderr", "logging (DEBUG, all loggers, tracebacks)",
                             "report files (json, markdown, html)", "DuckDB files (bytes and every value)",
                             "HOME cache", "stand-in recorded requests (URL, body, headers)",
                             "stand-in process output"],
           per_case={k: {"runs": v["runs"], "requests": v["requests"], "leaks": len(v["leaks"])}
                     for k, v in sorted(_FIGURES.items())})
    assert all(c in (0, 1, 2) for c in run.codes), f"{command}: a crash (exit status 3 or more): {run.codes}"
    if command != "report":
        assert accepted, f"{command}: the stand-in never accepted the token: the case proves nothing"
    assert not leaks, leaks


def _inputs_dir(tmp: Path) -> Path:
    d = tmp / "inputs"
    d.mkdir(exist_ok=True)
    return d


def test_secrets_figures_cover_every_command() -> None:
    """Runs last in this module: every command was tried on every input."""
    assert {k.split(" / ")[0] for k in _FIGURES} == set(CASES), sorted(_FIGURES)
    assert len(_FIGURES) == len(CASES) * len(INPUTS)
