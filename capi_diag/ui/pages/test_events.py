"""Test Events: send complete test journeys to Meta and watch the ten-minute promotion window.

The page is a thin front end over :class:`capi_diag.testevents.sender.Sender` (the same sender as the
``send-test`` and ``watch`` commands) and :class:`capi_diag.verdict.promotion.Window`.

* The Graph URL comes only from configuration (``CAPI_GRAPH_URL``), never from this page.
* The token comes from ``CAPI_ACCESS_TOKEN`` or ``.streamlit/secrets.toml``; when neither is set,
  a password field asks for it and its value stays in this browser session's memory
  (``st.session_state``) only: it is never written to the history, the page or a log.
* As soon as the Pixel ID and a token are there, the connect check
  (:func:`capi_diag.meta.connect.check_connection`) reads the Pixel and shows "Connected to Pixel
  <name> (<id>)" before the first send; when Meta refuses the token, the Pixel or a permission, the
  catalogue's fix is shown and sending is blocked. The check runs once per Pixel, token and Graph URL.
* Sends and the window live in a DuckDB file per browser session, named by a random id kept in the
  page address (``?te_session=...``), so a reload finds them again.
* While a window runs, a fragment reruns every second (``st.fragment(run_every=...)``): it ticks the
  window, sends the next journey when one is due, and shows the countdown. Sends stop when the page
  is closed; the window then resets for the gap, as the rule says.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd
import streamlit as st

from capi_diag.core.errors import CapiDiagError
from capi_diag.meta.client import GraphClient, GraphConfig
from capi_diag.meta.payload import TestIdentity, request_body
from capi_diag.meta.token import Secret, configured_token, resolve_token
from capi_diag.testevents.sender import Sender, Sent
from capi_diag.testevents.store import SendRecord, Store, new_session_id, session_path
from capi_diag.ui import meta_view, rehearsal_view
from capi_diag.verdict.promotion import BLIND_SPOT, READY_ADVICE, Phase, Window

REHEARSE = """
capi-diag ships a local stand-in for the Graph API that answers like Meta (errors, warnings,
throttling on demand) and accepts only its own test token. To rehearse the whole flow without
touching Meta, run it in a terminal and start the dashboard pointed at it:

```sh
python -m capi_diag fake-graph --port 8790 --token test-token   # Pixel 1234567890
CAPI_GRAPH_URL=http://127.0.0.1:8790 CAPI_ACCESS_TOKEN=test-token streamlit run app.py
```

Then enter Pixel ID `1234567890` and any test event code. The Graph URL is read from the
configuration only, never from this page, so a real token can never be sent to an address typed
here.
"""

CLOCK: Callable[[], float] = time.time
"""The page's clock (a test seam)."""
TICK_S = 1.0
"""How often the window fragment reruns while a window runs."""
QUERY_KEY = "te_session"
HISTORY_ROWS = 50

_IDENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    ("email", "Email"), ("phone", "Phone"), ("first_name", "First name"), ("last_name", "Last name"),
    ("city", "City"), ("state", "State"), ("zip", "ZIP / postal code"), ("country", "Country"),
    ("external_id", "External ID"),
)


def render() -> None:
    """The Test Events page."""
    st.title("Test Events")
    st.caption("Send complete test journeys to Meta with your Test Events code, read Meta's answer, "
               "and wait for a clean window before going live.")
    try:
        graph = GraphConfig.from_env(os.environ)
        configured = configured_token()
        store = _store()
    except CapiDiagError as e:
        st.error(f"{e.title}: {e}")
        return
    st.caption(f"Sending to `{graph.graph_url}` ({graph.api_version}). The Graph URL is set by "
               "configuration (CAPI_GRAPH_URL) and cannot be changed on this page.")

    left, right = st.columns(2)
    left.text_input("Pixel (dataset) ID", key="te_pixel_id", placeholder="1234567890",
                    on_change=meta_view.remember("te_pixel_id", meta_view.PIXEL_KEY))
    right.text_input("Test event code", key="te_test_code", placeholder="TEST12345",
                     help="Events Manager > your Pixel > Test Events")
    if configured is None:
        if not (st.session_state.get("te_token") or "").strip():
            st.info("No access token is set: paste it in the **Access token** field below (it stays in this "
                    "browser session only), or set `CAPI_ACCESS_TOKEN` in the environment or in "
                    "`.streamlit/secrets.toml` before starting the dashboard.", icon=":material/key:")
        st.text_input("Access token", key="te_token", type="password",
                      on_change=meta_view.remember("te_token", meta_view.TOKEN_KEY),
                      help="Kept in this browser session's memory only; never stored. Set "
                           "CAPI_ACCESS_TOKEN or .streamlit/secrets.toml to avoid typing it.")
        if st.session_state.get(meta_view.TOKEN_KEY) and not st.session_state.get("te_token"):
            st.caption("Access token: the one entered earlier in this browser session.")
    else:
        st.caption(f"Access token: configured ({configured.source}).")
    with st.expander("Rehearse without Meta: the local stand-in"):
        st.markdown(REHEARSE)

    with st.expander("Test identity (normalized and hashed before sending)"):
        defaults = TestIdentity()
        cols = st.columns(3)
        for i, (attr, label) in enumerate(_IDENTITY_FIELDS):
            cols[i % 3].text_input(label, key=f"te_id_{attr}", value=getattr(defaults, attr) or "")
        st.text_input("fbclid (optional: adds an fbc click ID)", key="te_fbclid")

    _connect_panel(graph)
    sender, problem = _sender(store, graph)
    try:
        _actions(store, sender, problem)
    finally:
        if sender is not None:
            sender.client.close()

    st.info(BLIND_SPOT, icon=":material/visibility_off:")
    if store.path is not None:
        rehearsal_view.render(store.path.with_suffix(""), pixel=(st.session_state.get("te_pixel_id") or "").strip(),
                              code=(st.session_state.get("te_test_code") or "").strip())
    _history(store)


def _actions(store: Store, sender: Sender | None, problem: str) -> None:
    """Preview, the two buttons and the window panel."""
    with st.expander("Payload preview (what is sent; personal data already hashed)"):
        if sender is None:
            st.info(problem)
        else:
            try:
                events = sender.build(CLOCK())
                st.json(request_body(events, sender.test_event_code), expanded=2)
            except CapiDiagError as e:
                st.error(f"{e.title}: {e}")

    c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
    c1.number_input("Window (min)", key="te_minutes", min_value=0.01, value=10.0, step=1.0, format="%g",
                    help="How long the setup must stay clean before going live (Meta's rule: 10 min).")
    c2.number_input("Interval (s)", key="te_interval", min_value=0.1, value=60.0, step=10.0, format="%g",
                    help="Time between two test journeys while the window runs.")
    send_clicked = c3.button("Send journey", key="te_send", disabled=sender is None, type="primary")
    start_clicked = c4.button("Start 10-minute window" if st.session_state.get("te_minutes") == 10.0
                              else "Start window", key="te_start", disabled=sender is None)
    if sender is None and problem:
        st.caption(problem)

    if send_clicked and sender is not None:
        _send(sender, store, window=None, window_id=None)
    if start_clicked and sender is not None:
        window = Window(window_s=round(float(st.session_state["te_minutes"]) * 60, 6),
                        interval_s=float(st.session_state["te_interval"]))
        now = CLOCK()
        window.start(now)
        window_id = store.create_window(window, pixel_id=sender.pixel_id,
                                        test_event_code=sender.test_event_code, now=now)
        _send(sender, store, window=window, window_id=window_id)

    latest = store.latest_window()
    running = latest is not None and latest[1].phase in (Phase.WAITING, Phase.STREAK)
    st.fragment(run_every=TICK_S if running else None)(_window_panel)(store)


def _store() -> Store:
    """This browser session's history file, found again after a reload through the page address."""
    session_id = st.session_state.get("te_session_id") or st.query_params.get(QUERY_KEY)
    if not session_id:
        session_id = new_session_id()
    path = session_path(session_id)
    st.session_state["te_session_id"] = session_id
    if st.query_params.get(QUERY_KEY) != session_id:
        st.query_params[QUERY_KEY] = session_id
    return Store(path)


def _sender(store: Store, graph: GraphConfig) -> tuple[Sender | None, str]:
    """A sender from the inputs, or ``None`` and what is missing."""
    pixel = (st.session_state.get("te_pixel_id") or "").strip()
    code = (st.session_state.get("te_test_code") or "").strip()
    if not pixel or not code:
        return None, "Enter the Pixel ID and the test event code to preview and send."
    if not pixel.isdigit():
        return None, "The Pixel ID is a number (Events Manager > Data sources)."
    try:
        secret = resolve_token(session=meta_view.session_token("te_token"))
    except CapiDiagError as e:
        return None, str(e)
    check = meta_view.kept_check(graph, pixel, secret)
    if check is not None and check.refused and check.error is not None:
        return None, (f"Sending is blocked: Meta refused the connection check ({check.error.entry.title}). "
                      f"Fix: {check.error.fix}")
    identity = TestIdentity()
    given = {attr: (st.session_state.get(f"te_id_{attr}") or "").strip() or None
             for attr, _ in _IDENTITY_FIELDS}
    identity = replace(identity, **given)
    client = _client(secret, graph)
    return Sender(client=client, pixel_id=pixel, test_event_code=code, secret=secret, identity=identity,
                  fbclid=(st.session_state.get("te_fbclid") or "").strip() or None), ""


def _connect_panel(graph: GraphConfig) -> None:
    """The connect check for the entered Pixel and token, run once per settings: the Pixel's name, or
    Meta's refusal with the fix (which blocks sending)."""
    pixel = (st.session_state.get("te_pixel_id") or "").strip()
    if not pixel or not pixel.isdigit():
        return
    try:
        secret = resolve_token(session=meta_view.session_token("te_token"))
    except CapiDiagError:
        return
    try:
        with st.spinner("Checking the token and the Pixel with Meta..."):
            check = meta_view.connection(graph, pixel, secret)
    except CapiDiagError as e:
        st.error(f"{e.title}: {e}")
        return
    if check.connected and check.pixel is not None:
        st.success(check.headline, icon=":material/link:")
        st.caption(f"Last fired: {check.pixel.last_fired_time or 'never'}. Make sure this is the Pixel you mean "
                   "to go live with, not a sandbox.")
        for finding in check.findings:
            st.warning(finding, icon=":material/info:")
    elif check.refused and check.error is not None:
        e = check.error
        code = f"{e.code}" + (f"/{e.error_subcode}" if e.error_subcode else "")
        st.error(f"**Not connected: {e.entry.title}** ({code}, HTTP {e.http_status}). {e.entry.meaning}\n\n"
                 f"**Fix:** {e.fix}", icon=":material/link_off:")
    elif check.error is not None:
        st.warning(f"The connection check could not finish ({check.error.entry.title}); sending is allowed, and "
                   f"the check runs again after {meta_view.RECHECK_S:g} s.", icon=":material/sync_problem:")


def _client(secret: Secret, graph: GraphConfig) -> GraphClient:
    return GraphClient(secret.reveal(), config=graph, clock=CLOCK)


def _send(sender: Sender, store: Store, *, window: Window | None, window_id: str | None) -> Sent | None:
    try:
        with st.spinner("Sending a journey..."):
            return sender.send(now=CLOCK(), window=window, window_id=window_id, store=store)
    except CapiDiagError as e:
        st.error(f"{e.title}: {e}")
        return None


def _window_panel(store: Store) -> None:
    """The window's state and countdown; while it runs, ticks and sends the next journey when due."""
    latest = store.latest_window()
    if latest is None:
        st.caption("No window started. 'Start window' sends a journey every interval and says when the "
                   "setup has been clean for the whole window.")
        return
    window_id, window, meta = latest
    now = CLOCK()
    before = window.phase
    if window.phase in (Phase.WAITING, Phase.STREAK):
        window.tick(now)
        due = window.next_send_due(now)
        if window.phase in (Phase.WAITING, Phase.STREAK) and due is not None and now >= due:
            sender, problem = _sender(store, GraphConfig.from_env(os.environ))
            if sender is None:
                st.warning(f"The window cannot send: {problem}")
            elif (sender.pixel_id, sender.test_event_code) != (meta["pixel_id"], meta["test_event_code"]):
                st.warning("The Pixel ID or test code changed: start a new window for them.")
            else:
                _send(sender, store, window=window, window_id=window_id)
            if sender is not None:
                sender.client.close()
        store.save_window(window_id, window, now=now)
    st.subheader("Promotion window")
    st.write(window.summary(now))
    if window.phase is Phase.STREAK:
        total = window.window_s
        left = window.remaining_s(now) or 0.0
        st.progress(min(1.0, max(0.0, (total - left) / total)),
                    text=f"{_clock_text(left)} left of {_clock_text(total)}")
    elif window.phase is Phase.READY:
        st.success(READY_ADVICE, icon=":material/check_circle:")
    elif window.phase is Phase.TIMED_OUT:
        st.error(window.summary(now))
    if window.resets:
        with st.expander(f"Resets ({len(window.resets)})"):
            st.dataframe(pd.DataFrame([{"at (UTC)": _when(r.at), "why": r.reason} for r in window.resets]),
                         hide_index=True, key="te_resets")
    if window.phase is not before and before in (Phase.WAITING, Phase.STREAK) and window.done:
        st.rerun()


def _history(store: Store) -> None:
    st.subheader("Send history")
    sends = store.sends(limit=HISTORY_ROWS)
    if not sends:
        st.caption("No sends yet in this browser session.")
        return
    st.dataframe(pd.DataFrame([_row(r) for r in sends]), hide_index=True, key="te_history")
    for rec in sends[:10]:
        label = f"{_when(rec.sent_at)}: {_status(rec)}"
        with st.expander(label, expanded=rec is sends[0] and not rec.clean):
            if rec.error:
                e = rec.error
                code = f"{e.get('code')}" + (f"/{e.get('error_subcode')}" if e.get("error_subcode") else "")
                st.error(f"**{e.get('title')}** ({code}, HTTP {e.get('http_status')}): "
                         f"{e.get('user_msg') or e.get('message') or ''}\n\n**Fix:** {e.get('fix')}")
            for m in rec.messages:
                st.warning(f"Meta: {m}")
            for reason in rec.reasons:
                st.markdown(f"- {reason}")
            st.dataframe(pd.DataFrame([{"#": ev["position"], "event": ev["event_name"], "event_id": ev["event_id"],
                                        "outcome": ev["status"], "notes": "; ".join(ev["notes"])}
                                       for ev in rec.events]), hide_index=True)
            if rec.attempts:
                st.caption("Attempts: " + "; ".join(
                    f"{a['number']}: HTTP {a['status_code']} {a['outcome']}" for a in rec.attempts))
            if rec.fbtrace_id:
                st.caption(f"fbtrace_id {rec.fbtrace_id}")


def _row(rec: SendRecord) -> dict[str, Any]:
    return {
        "sent (UTC)": _when(rec.sent_at), "result": _status(rec), "clean": "yes" if rec.clean else "no",
        "received": f"{rec.events_received if rec.events_received is not None else '-'}/{rec.events_sent}",
        "Meta warnings": len(rec.messages), "window": rec.phase_after or "",
        "why not clean": "; ".join(rec.reasons),
    }


def _status(rec: SendRecord) -> str:
    if not rec.ok and not rec.error:
        return "blocked locally"
    if rec.error:
        return f"refused: {rec.error.get('title')}"
    if rec.events_received != rec.events_sent:
        return "accepted partly"
    return "accepted"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _clock_text(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 60}:{s % 60:02d}"
