"""The Test Events page's browser rehearsal: pick a journey (a file, or the demo shop's), start
``capi-diag rehearse`` as a subprocess, and watch its output file: each run's pairs (the Pixel's hit
beside the shop's server event, with the problem in words) and the window's countdown.

The demo shop and a local Graph stand-in run inside the dashboard's process when chosen; the token
they share is made up per start and never shown. The figures of a run are counts of its events
("events seen on both sides"), never a pairing rate: that label is the uploaded logs' rate.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

import capi_diag
from capi_diag.core.errors import CapiDiagError
from capi_diag.rehearsal import journey as journey_file
from capi_diag.shop.server import FAULTS, DemoShop
from capi_diag.standins.fake_server import FakeGraph

DEMO_PIXEL = "1234567890"
DEMO_CODE = "TEST12345"
KIND_WORDS = {"dedup": "Dedup warning", "missing_field": "Missing field", "token": "Token error",
              "note": "Note"}
STATE = "rh_state"
"""The session's running rehearsal: process, paths, and the demo shop and stand-in when started."""


def words(problem: str) -> str:
    """``"dedup: event_id differs ..."`` -> ``"Dedup warning: event_id differs ..."``."""
    kind, sep, rest = problem.partition(": ")
    return f"{KIND_WORDS[kind]}: {rest}" if sep and kind in KIND_WORDS else problem


def read_output(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _folder(session_dir: Path) -> Path:
    folder = session_dir / f"rehearsal-{int(time.time() * 1000)}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _stop_demo(state: dict[str, Any]) -> None:
    for key in ("shop", "graph"):
        obj = state.pop(key, None)
        if obj is not None:
            obj.stop()


def _start(session_dir: Path, pixel: str, code: str) -> str | None:
    """Start a rehearsal from the widgets; returns what is missing, or None when it started."""
    demo = st.session_state.get("rh_source") == "The demo shop"
    minutes = float(st.session_state.get("rh_minutes") or 10.0)
    interval = float(st.session_state.get("rh_interval") or 60.0)
    grace = float(st.session_state.get("rh_grace") or 60.0)
    folder = _folder(session_dir)
    state: dict[str, Any] = {"folder": str(folder)}
    if demo:
        pixel, code = DEMO_PIXEL, DEMO_CODE
        token = secrets.token_urlsafe(24)
        graph = FakeGraph(token=token, pixel_id=pixel)
        graph.start()
        send_log = folder / "send-log.jsonl"
        shop = DemoShop(graph_url=graph.url or "", token=token, pixel_id=pixel, test_event_code=code,
                        send_log=str(send_log), faults=list(st.session_state.get("rh_faults") or []))
        shop.start()
        state.update(shop=shop, graph=graph)
        journey_path = folder / "journey.toml"
        journey_path.write_text(shop.journey(), encoding="utf-8")
    else:
        if not pixel.isdigit() or not code:
            return "Enter the Pixel ID and the test event code above first."
        upload = st.session_state.get("rh_upload")
        typed = (st.session_state.get("rh_journey_path") or "").strip()
        if upload is not None:
            journey_path = folder / "journey.toml"
            journey_path.write_bytes(upload.getvalue())
        elif typed:
            journey_path = Path(typed)
        else:
            return "Choose a journey file (upload it or give its path)."
        send_log = Path((st.session_state.get("rh_send_log") or "").strip())
        if not str(send_log) or str(send_log) == ".":
            return "Give the send log your shop's server appends to (JSON Lines, docs/send-log.md)."
        try:
            journey_file.load(journey_path)
        except CapiDiagError as e:
            return str(e)
    output = folder / "rehearsal.json"
    timeout = max(float(st.session_state.get("rh_timeout") or 30.0), minutes)
    cmd = [sys.executable, "-m", "capi_diag", "rehearse", "--journey", str(journey_path), "--pixel-id", pixel,
           "--test-event-code", code, "--send-log", str(send_log), "--minutes", f"{minutes:g}",
           "--interval", f"{interval:g}", "--grace", f"{grace:g}", "--timeout-minutes", f"{timeout:g}",
           "--output", str(output), "--db", str(folder / "history.duckdb")]
    log = (folder / "rehearse.log").open("w", encoding="utf-8")
    env = dict(os.environ)  # the package's own folder first, wherever the dashboard was started from
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(capi_diag.__file__).resolve().parents[1]),
                                                    env.get("PYTHONPATH")) if p)
    state["process"] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env)
    state["output"] = str(output)
    state["log"] = str(folder / "rehearse.log")
    state["started"] = time.time()
    old = st.session_state.get(STATE)
    if old:
        _stop(old)
    st.session_state[STATE] = state
    return None


def _stop(state: dict[str, Any]) -> None:
    proc = state.get("process")
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    _stop_demo(state)


def render(session_dir: Path, *, pixel: str, code: str) -> None:
    """The section, under the Test Events page's window."""
    st.subheader("Browser rehearsal")
    st.caption("Runs your shop's journey in a real headless Chromium, captures the Pixel's hits, reads what "
               "your server sent from its send log, and pairs them event by event: the window is ready only "
               "after a whole window with no dedup warning, missing field or token error "
               "(docs/rehearsal.md).")
    st.radio("Journey", ["The demo shop", "A journey file"], key="rh_source", horizontal=True)
    if st.session_state.get("rh_source") == "The demo shop":
        st.multiselect("Break the demo shop on purpose (optional)", list(FAULTS), key="rh_faults",
                       format_func=lambda f: FAULTS[f])
        st.caption(f"The demo shop and a local Graph stand-in start inside the dashboard (Pixel {DEMO_PIXEL}, "
                   f"test code {DEMO_CODE}); nothing reaches Meta.")
    else:
        st.file_uploader("Journey file (TOML)", type=["toml"], key="rh_upload")
        st.text_input("…or its path on this machine", key="rh_journey_path")
        st.text_input("Send log your server appends to (JSON Lines)", key="rh_send_log")
    cols = st.columns(4)
    cols[0].number_input("Window (minutes)", min_value=0.01, value=10.0, key="rh_minutes")
    cols[1].number_input("Interval (seconds)", min_value=0.1, value=60.0, key="rh_interval")
    cols[2].number_input("Grace (seconds)", min_value=0.1, value=60.0, key="rh_grace")
    cols[3].number_input("Timeout (minutes)", min_value=0.01, value=30.0, key="rh_timeout")
    left, right = st.columns(2)
    if left.button("Start rehearsal", key="rh_start"):
        problem = _start(session_dir, pixel, code)
        if problem:
            st.warning(problem)
    state = st.session_state.get(STATE)
    if state and right.button("Stop rehearsal", key="rh_stop"):
        _stop(state)
    if state:
        _progress()


@st.fragment(run_every=1.0)
def _progress() -> None:
    state = st.session_state.get(STATE)
    if not state:
        return
    proc = state.get("process")
    running = proc is not None and proc.poll() is None
    doc = read_output(Path(state["output"]))
    if not running:
        _stop_demo(state)
    if doc is None:
        if running:
            st.info("The rehearsal is starting Chromium…")
        else:
            tail = Path(state["log"]).read_text(encoding="utf-8", errors="replace").strip().splitlines()
            st.error(tail[-1] if tail else "The rehearsal stopped before writing its result.")
        return
    show(doc, running=running)


def show(doc: dict[str, Any], *, running: bool) -> None:
    """The window's countdown and each run's pairs, from the rehearsal's output document."""
    w = doc.get("window") or {}
    if doc.get("status") == "ready":
        st.success("Ready: the browser and the server agreed for the whole window. Remove the "
                   "test_event_code from your server before going live.", icon=":material/check_circle:")
    elif doc.get("finished"):
        st.error(f"Not ready when the timeout ended. {w.get('summary', '')}")
    else:
        st.write(w.get("summary", ""))
        total, left = w.get("window_s") or 0, w.get("remaining_s")
        if total and left is not None:
            st.progress(min(1.0, max(0.0, (total - left) / total)),
                        text=f"{int(left) // 60}:{int(left) % 60:02d} left of the window")
    if not running and not doc.get("finished"):
        st.warning("The rehearsal was stopped.")
    for run in reversed(doc.get("runs") or []):
        pairs = run.get("pairs") or []
        both = sum(1 for p in pairs if p.get("browser") and p.get("server"))
        verdict = ("clean" if run.get("clean") else "warnings" if run.get("clean") is False else "being judged")
        label = (f"Run {run.get('number')}: {verdict}; events seen on both sides: {both} of {len(pairs)}")
        with st.expander(label, expanded=run is (doc.get("runs") or [None])[-1]):
            rows = [{"Event": p.get("event_name"), "event_id": p.get("event_id") or "",
                     "Pixel hit": "yes" if p.get("browser") else "no",
                     "Server event": "yes" if p.get("server") else "no",
                     "Problems": "; ".join(words(x) for x in p.get("problems") or []) or
                                 ("" if p.get("judged") or not p.get("expected", True) else "waiting"),
                     } for p in pairs]
            if rows:
                st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"rh_run_{run.get('number')}")
            for note in run.get("notes") or []:
                st.caption(note)
    warns = doc.get("warnings") or []
    if warns:
        with st.expander(f"Warnings ({len(warns)})"):
            st.dataframe(pd.DataFrame([{"Kind": KIND_WORDS.get(x["kind"], x["kind"]), "Event": x["event_name"],
                                        "What": x["detail"]} for x in warns]), hide_index=True, key="rh_warnings")
