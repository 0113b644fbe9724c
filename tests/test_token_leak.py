"""A sentinel token runs whole sends (accepted, refused, watched) and must appear nowhere else:
not in stdout/stderr, the DuckDB file (its bytes and every text column), the send history, the
reports printed, or what the stand-in recorded (URLs and bodies)."""

from __future__ import annotations

import json

import pytest

from capi_diag.cli import main
from capi_diag.db import Database
from capi_diag.graph import commands
from capi_diag.graph.fake_server import FakeGraph
from capi_diag.graph.store import Store
from capi_diag.graph.token import Secret, resolve_token, scrub

SENTINEL = "EAAB-SENTINEL-TOKEN-7f3c9d21e5a84b06"
PIXEL = "1234567890"


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("CAPI_ACCESS_TOKEN", "CAPI_GRAPH_URL", "CAPI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    clock = [1_800_000_000.0]
    monkeypatch.setattr(commands, "CLOCK", lambda: clock[0])
    monkeypatch.setattr(commands, "SLEEP", lambda s: clock.__setitem__(0, clock[0] + s))
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
    reports = "\n".join("\n".join(commands.format_send(_as_sent(r))) for r in history)
    assert SENTINEL not in reports
    assert recorded, "the stand-in recorded nothing"
    assert all(SENTINEL not in r["path"] for r in recorded)
    assert all(SENTINEL not in json.dumps(r["body"]) for r in recorded)
    assert all(SENTINEL not in json.dumps(r["headers"]) for r in recorded)


def _as_sent(record):
    """A stored record shaped for :func:`commands.format_send` (the report printed for a send)."""
    from capi_diag.graph.validate import Validation
    return commands.Sent(record=record, events=[], validation=Validation(), result=None)


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
    from capi_diag.graph.token import TokenError
    with pytest.raises(TokenError) as e:
        resolve_token(env={}, paths=[tmp_path / "none.toml"], session="  ")
    assert "CAPI_ACCESS_TOKEN" in str(e.value) and "secrets.toml" in str(e.value)


def test_secrets_file_invalid_toml_error_does_not_quote_it(tmp_path):
    from capi_diag.graph.token import TokenError
    bad = tmp_path / "secrets.toml"
    bad.write_text(f"CAPI_ACCESS_TOKEN = {SENTINEL}\n")  # unquoted: invalid TOML
    with pytest.raises(TokenError) as e:
        resolve_token(env={}, paths=[bad])
    assert SENTINEL not in str(e.value) and "not valid TOML" in str(e.value)


def test_token_with_inner_space_rejected_without_echo():
    from capi_diag.graph.token import TokenError
    with pytest.raises(TokenError) as e:
        resolve_token(env={"CAPI_ACCESS_TOKEN": "abc def"}, paths=[])
    assert "abc" not in str(e.value)
