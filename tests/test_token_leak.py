"""A sentinel token runs whole sends (accepted, refused, watched) and must appear nowhere else:
not in stdout/stderr, the DuckDB file (its bytes and every text column), the send history, the
reports printed, or what the stand-in recorded (URLs and bodies)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capi_diag.cli import main
from capi_diag.engine.db import Database
from capi_diag.meta.token import Secret, resolve_token, scrub
from capi_diag.standins.fake_server import FakeGraph
from capi_diag.testevents import sender
from capi_diag.testevents.store import Store
from tests.conftest import clean_graph_env

SENTINEL = "EAAB-SENTINEL-TOKEN-7f3c9d21e5a84b06"
PIXEL = "1234567890"


@pytest.fixture
def env(monkeypatch, tmp_path):
    clean_graph_env(monkeypatch, tmp_path)
    clock = [1_800_000_000.0]
    monkeypatch.setattr(sender, "CLOCK", lambda: clock[0])
    monkeypatch.setattr(sender, "SLEEP", lambda s: clock.__setitem__(0, clock[0] + s))
    return monkeypatch


def _all_text(db_path) -> str:
    """Every VARCHAR value of every table, as DuckDB returns it (bytes on disk may be compressed)."""
    out = []
    with Database(db_path) as db:
        tables = db.execute("SELECT table_name FROM information_schema.tables").fetchall()
        for (name,) in tables:
            out.append(json.dumps(db.execute(f'SELECT * FROM "{name}"').fetchall(), default=str))
    return "\n".join(out)


def test_token_sentinel_never_leaves_the_authorization_header(env, tmp_path, capsys):
    db = tmp_path / "sends.duckdb"
    args = ["--pixel-id", PIXEL, "--test-event-code", "TEST123", "--db", str(db)]
    env.setenv("CAPI_ACCESS_TOKEN", SENTINEL)
    recorded = []
    codes = []
    # accepted sends, one retried after throttling, one after a 5xx
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL, throttle_every=2, fail_5xx_every=3) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        for _ in range(3):
            codes.append(main(["send-test", *args]))
        recorded += fake.received
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        codes.append(main(["watch", *args, "--minutes", "0.02", "--interval", "0.4",
                           "--timeout-minutes", "0.1"]))
        recorded += fake.received
    # refused: the stand-in expects another token (190), and an unknown Pixel (100/33)
    with FakeGraph(token="another-token", pixel_id=PIXEL) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        codes.append(main(["send-test", *args]))
        recorded += fake.received
    with FakeGraph(token=SENTINEL, pixel_id="999") as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        codes.append(main(["send-test", *args]))
        recorded += fake.received
    out, err = capsys.readouterr()
    assert codes == [0, 0, 0, 0, 2, 2]
    assert "clean: yes" in out and "190" in err and "100/33" in err

    assert SENTINEL not in out
    assert SENTINEL not in err
    assert SENTINEL.encode() not in db.read_bytes()
    assert SENTINEL not in _all_text(db)
    history = Store(db).sends()
    assert len(history) >= 5
    assert SENTINEL not in json.dumps([vars(r) for r in history], default=str)
    reports = "\n".join("\n".join(sender.format_send(_as_sent(r))) for r in history)
    assert SENTINEL not in reports
    assert recorded, "the stand-in recorded nothing"
    assert all(SENTINEL not in r["path"] for r in recorded)
    assert all(SENTINEL not in json.dumps(r["body"]) for r in recorded)
    assert all(SENTINEL not in json.dumps(r["headers"]) for r in recorded)


def _as_sent(record):
    """A stored record shaped for :func:`capi_diag.testevents.sender.format_send` (the report printed for a send)."""
    from capi_diag.testevents.validate import Validation
    return sender.Sent(record=record, events=[], validation=Validation(), result=None)


def test_secret_repr_and_format_hide_the_token():
    s = Secret(SENTINEL, "test")
    assert SENTINEL not in repr(s) and SENTINEL not in str(s) and SENTINEL not in f"{s}"
    assert SENTINEL not in repr([s]) and s.reveal() == SENTINEL


def test_scrub_removes_token_from_nested_values():
    data = {"a": [f"x {SENTINEL} y", {"b": SENTINEL}], "n": 1}
    assert scrub(data, SENTINEL) == {"a": ["x *** y", {"b": "***"}], "n": 1}


def test_resolve_token_env_before_secrets_before_session(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('CAPI_ACCESS_TOKEN = "from-file"\n')
    assert resolve_token(env={"CAPI_ACCESS_TOKEN": "from-env"}, paths=[secrets]).reveal() == "from-env"
    assert resolve_token(env={}, paths=[secrets], session="typed").reveal() == "from-file"
    assert resolve_token(env={}, paths=[tmp_path / "none.toml"], session=" typed ").reveal() == "typed"


def test_resolve_token_missing_names_the_fix(tmp_path):
    from capi_diag.meta.token import TokenError
    with pytest.raises(TokenError) as e:
        resolve_token(env={}, paths=[tmp_path / "none.toml"], session="  ")
    assert "CAPI_ACCESS_TOKEN" in str(e.value) and "secrets.toml" in str(e.value)


def test_secrets_file_invalid_toml_error_does_not_quote_it(tmp_path):
    from capi_diag.meta.token import TokenError
    bad = tmp_path / "secrets.toml"
    bad.write_text(f"CAPI_ACCESS_TOKEN = {SENTINEL}\n")  # unquoted: invalid TOML
    with pytest.raises(TokenError) as e:
        resolve_token(env={}, paths=[bad])
    assert SENTINEL not in str(e.value) and "not valid TOML" in str(e.value)


def test_token_with_inner_space_rejected_without_echo():
    from capi_diag.meta.token import TokenError
    with pytest.raises(TokenError) as e:
        resolve_token(env={"CAPI_ACCESS_TOKEN": "abc def"}, paths=[])
    assert "abc" not in str(e.value)


# -- the connect check and Meta's own figures -----------------------------------------------------------

class _EchoingGraph:
    """A hostile stand-in that quotes the Authorization header back in its error message."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # noqa: A002
                return

            def do_GET(self):  # noqa: N802
                body = json.dumps({"error": {"message": f"Malformed access token {self.headers.get('Authorization')}",
                                             "type": "OAuthException", "code": 190,
                                             "error_user_msg": self.headers.get("Authorization"),
                                             "fbtrace_id": self.headers.get("Authorization")}}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_token_sentinel_connect_and_meta_quality_never_leave_the_header(env, tmp_path, capsys):
    from capi_diag.standins import fake_quality

    env.setenv("CAPI_ACCESS_TOKEN", SENTINEL)
    (tmp_path / "b.csv").write_text("event_name,event_id,event_time,pixel_id\nPageView,pv-1,1799990000,1234567890\n")
    (tmp_path / "s.csv").write_text("event_name,event_id,event_time,action_source,pixel_id\n"
                                    "PageView,pv-1,1799990001,website,1234567890\n")
    output = tmp_path / "meta.md"
    recorded, codes = [], []
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        for pixel in (PIXEL, "999", fake_quality.NO_PERMISSION_ID):
            codes.append(main(["connect", "--pixel-id", pixel]))
        for pixel in (PIXEL, fake_quality.PARTIAL_ID, fake_quality.NO_PERMISSION_ID, "999"):
            codes.append(main(["meta-quality", "--pixel-id", pixel]))
        codes.append(main(["meta-quality", "--pixel-id", PIXEL, "--browser", str(tmp_path / "b.csv"),
                           "--server", str(tmp_path / "s.csv"), "--format", "markdown", "--output", str(output)]))
        recorded += fake.received
    with FakeGraph(token="another-token", pixel_id=PIXEL) as fake:
        env.setenv("CAPI_GRAPH_URL", fake.url)
        codes.append(main(["connect", "--pixel-id", PIXEL]))
        codes.append(main(["meta-quality", "--pixel-id", PIXEL]))
        recorded += fake.received
    with _EchoingGraph() as echo:
        env.setenv("CAPI_GRAPH_URL", echo.url)
        codes.append(main(["connect", "--pixel-id", PIXEL]))
        codes.append(main(["meta-quality", "--pixel-id", PIXEL]))
    out, err = capsys.readouterr()
    assert codes == [0, 2, 2, 0, 0, 2, 2, 1, 2, 2, 2, 2]
    assert "Connected to Pixel capi-diag demo Pixel" in out and "[redacted]" in err
    assert SENTINEL not in out and SENTINEL not in err
    assert output.is_file() and SENTINEL not in output.read_text()
    assert len(recorded) == 10 and all(r["method"] == "GET" for r in recorded)
    assert all(SENTINEL not in r["path"] and SENTINEL not in json.dumps(r["headers"]) for r in recorded)
    # No other file, but for capi-diag's compiled-SQL cache (queries and lookup tables, no data).
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["b.csv", "meta.md", "s.csv"]
    cached = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert all(p.parent == tmp_path / "home" / ".cache" / "capi-diag" for p in cached)
    assert all(SENTINEL.encode() not in p.read_bytes() for p in cached)


def test_token_sentinel_pages_connect_and_meta_view(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from capi_diag.ui import meta_view

    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CAPI_DIAG_HOME", str(tmp_path / "capi-home"))
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "no-demo"))
    with FakeGraph(token=SENTINEL, pixel_id=PIXEL) as fake:
        monkeypatch.setenv("CAPI_GRAPH_URL", fake.url)
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120).run()
        at.switch_page("capi_diag/ui/pages/test_events_page.py").run()
        at.text_input(key="te_pixel_id").input(PIXEL)
        at.text_input(key="te_test_code").input("TEST123")
        at.text_input(key="te_token").input(SENTINEL).run()
        assert [s.value for s in at.success] == ["Connected to Pixel capi-diag demo Pixel (1234567890)"]
        at.button(key="te_send").click().run()
        shown = [_page_text(at)]
        at.switch_page("capi_diag/ui/pages/meta_view.py").run()
        assert at.text_input(key="mq_pixel_id").value == PIXEL  # the session's Pixel, token typed once
        at.button(key="mq_fetch").click().run()
        assert not at.exception and not at.error and len(at.dataframe) == 5  # one table per event name
        shown.append(_page_text(at))
        downloads = [d.proto.url for d in at.get("download_button")]
        recorded = list(fake.received)
    assert SENTINEL not in "\n".join(shown)
    assert [r["method"] for r in recorded] == ["GET", "POST", "GET"]
    assert all(SENTINEL not in r["path"] + json.dumps(r["body"]) + json.dumps(r["headers"]) for r in recorded)
    assert downloads and all(SENTINEL not in str(u) for u in downloads)
    for path in (tmp_path / "capi-home").rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path
    assert meta_view.TOKEN_KEY in at.session_state  # kept in memory only, never shown


def _page_text(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "json", "title",
                                  "subheader") for e in getattr(at, kind)]
    parts += [at.dataframe[i].value.to_json() for i in range(len(at.dataframe))]
    parts += [str(m.value) for m in at.metric]
    return json.dumps(parts, default=str)
