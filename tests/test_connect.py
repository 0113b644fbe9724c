"""The connect check: pure request/answer functions, GraphClient.get, the stand-in's Pixel read over real
HTTP on 127.0.0.1, the ``connect`` command, and the Test Events page showing the Pixel's name before
the first send (AppTest)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from capi_diag.cli import main
from capi_diag.core.errors import UsageError
from capi_diag.meta.client import GraphClient, GraphConfig, build_get, object_url, parse_get
from capi_diag.meta.connect import (
    FIELDS,
    ConnectResult,
    PixelInfo,
    check_connection,
    check_pixel_id,
    connect_params,
    format_connect,
    parse_pixel,
)
from capi_diag.standins import fake_quality
from capi_diag.standins.fake_server import FakeGraph
from capi_diag.testevents import sender
from capi_diag.ui.pages import test_events
from tests.conftest import clean_graph_env

ROOT = Path(__file__).resolve().parents[1]
PIXEL = "1234567890"
TOKEN = "test-token"
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake():
    with FakeGraph(token=TOKEN, pixel_id=PIXEL, now=lambda: NOW) as fg:
        yield fg


@pytest.fixture
def env(monkeypatch, tmp_path):
    clean_graph_env(monkeypatch, tmp_path)
    clock = [NOW]
    monkeypatch.setattr(sender, "CLOCK", lambda: clock[0])
    monkeypatch.setattr(sender, "SLEEP", lambda s: clock.__setitem__(0, clock[0] + s))
    return monkeypatch


def _client(fg: FakeGraph, token: str = TOKEN, **cfg) -> GraphClient:
    return GraphClient(token, config=GraphConfig(graph_url=fg.url, **cfg), sleep=Sleeps())


# -- pure --------------------------------------------------------------------------------------------

def test_connect_params_fields_only_no_token():
    assert connect_params() == {"fields": "id,name,last_fired_time,is_unavailable"}
    assert FIELDS == ("id", "name", "last_fired_time", "is_unavailable")


def test_build_get_token_in_header_only():
    cfg = GraphConfig(graph_url="https://graph.example.test", api_version="v26.0")
    req = build_get(cfg, "SECRET-T", PIXEL, connect_params())
    assert req.method == "GET"
    assert str(req.url) == "https://graph.example.test/v26.0/1234567890?fields=id%2Cname%2Clast_fired_time%2Cis_unavailable"
    assert req.headers["authorization"] == "Bearer SECRET-T"
    assert "SECRET-T" not in str(req.url) and req.content == b""


def test_object_url_encodes_each_segment():
    cfg = GraphConfig(graph_url="https://graph.example.test/", api_version="v25.0")
    assert object_url(cfg, "dataset_quality") == "https://graph.example.test/v25.0/dataset_quality"
    assert object_url(cfg, "/1234567890/") == "https://graph.example.test/v25.0/1234567890"
    assert object_url(cfg, "a b/c") == "https://graph.example.test/v25.0/a%20b/c"


def test_parse_get_object_is_ok():
    got = parse_get(200, {"id": PIXEL, "name": "Shop"})
    assert got.ok and got.body == {"id": PIXEL, "name": "Shop"} and got.error is None


def test_parse_get_error_body_typed_with_get_in_message():
    body = {"error": {"message": "Invalid OAuth access token - Cannot parse access token", "type": "OAuthException",
                      "code": 190, "error_subcode": 463, "fbtrace_id": "Atrace"}}
    got = parse_get(401, body, endpoint="https://g.test/v26.0/1")
    assert not got.ok and got.error.code == 190 and got.error.error_subcode == 463
    assert got.error.entry.title == "Access token expired" and got.error.exit_code == 2
    assert "from GET https://g.test/v26.0/1" in str(got.error)


def test_parse_get_2xx_without_object_is_unexpected():
    got = parse_get(200, ["not", "an", "object"])
    assert not got.ok and got.error.entry.title == "Unexpected response" and got.error.http_status == 200


def test_parse_get_redacts_echoed_token():
    body = {"error": {"message": "bad token SECRET-T", "code": 190, "fbtrace_id": "x"}}
    got = parse_get(401, body, redact=("SECRET-T",))
    assert "SECRET-T" not in str(got.error) and "SECRET-T" not in repr(got.error)
    assert "[redacted]" in got.error.meta_message


def test_parse_pixel_named_pixel_no_findings():
    info, findings = parse_pixel(PIXEL, {"id": PIXEL, "name": "Shop production", "last_fired_time":
                                         "2027-01-15T07:58:00+0000", "is_unavailable": False})
    assert info == PixelInfo(PIXEL, "Shop production", "2027-01-15T07:58:00+0000", False)
    assert findings == []


def test_parse_pixel_other_id_unnamed_unavailable_never_fired_findings():
    info, findings = parse_pixel(PIXEL, {"id": "999", "is_unavailable": True})
    assert info == PixelInfo("999", None, None, True)
    assert len(findings) == 4
    assert findings[0] == "Meta answered for object 999, not Pixel 1234567890: check the Pixel ID."
    assert "no Pixel name" in findings[1] and "unavailable" in findings[2] and "no last_fired_time" in findings[3]


def test_check_pixel_id_rejects_non_digits():
    assert check_pixel_id(" 123 ") == "123"
    with pytest.raises(UsageError, match="not a number"):
        check_pixel_id("12a")


def test_connect_result_headline_and_dict_hold_no_token():
    r = ConnectResult(PIXEL, pixel=PixelInfo(PIXEL, "Shop", None, None))
    assert r.connected and not r.refused and r.headline == "Connected to Pixel Shop (1234567890)"
    assert r.as_dict()["pixel"] == {"id": PIXEL, "name": "Shop", "last_fired_time": None, "is_unavailable": None}


# -- GraphClient.get ---------------------------------------------------------------------------------

def test_client_get_retries_5xx_then_reads_pixel():
    answers = iter([httpx.Response(500, json={"error": {"message": "boom", "code": 1, "is_transient": True}}),
                    httpx.Response(200, json={"id": PIXEL, "name": "Shop"})])
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    sleeps = Sleeps()
    client = GraphClient(TOKEN, http=httpx.Client(transport=httpx.MockTransport(handler)), sleep=sleeps,
                         config=GraphConfig(graph_url="https://g.test", backoff_base_s=1.0))
    result = check_connection(client, PIXEL)
    assert result.connected and result.pixel.name == "Shop"
    assert [a.outcome for a in result.attempts] == ["retry", "ok"] and len(sleeps) == 1 and 0.5 <= sleeps[0] <= 1
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" and TOKEN not in str(r.url) for r in seen)


def test_client_get_never_retries_token_error():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(401, json={"error": {"message": "Invalid OAuth access token", "code": 190}})

    client = GraphClient(TOKEN, http=httpx.Client(transport=httpx.MockTransport(handler)), sleep=Sleeps(),
                         config=GraphConfig(graph_url="https://g.test"))
    result = check_connection(client, PIXEL)
    assert result.refused and len(calls) == 1 and result.error.code == 190


def test_client_get_gives_up_after_retries_with_finding():
    client = GraphClient(TOKEN, http=httpx.Client(transport=httpx.MockTransport(
        lambda r: httpx.Response(503, text="busy"))), sleep=Sleeps(), config=GraphConfig(graph_url="https://g.test",
                                                                                         max_retries=2))
    result = check_connection(client, PIXEL)
    assert not result.connected and not result.refused and len(result.attempts) == 3
    assert result.findings == ["Gave up after 3 attempts (2 retries): Meta server error."]


# -- the stand-in's Pixel read over real HTTP ------------------------------------------------------------

def test_fake_graph_pixel_read_named_pixel(fake):
    with _client(fake) as client:
        result = check_connection(client, PIXEL)
    assert result.connected and result.headline == "Connected to Pixel capi-diag demo Pixel (1234567890)"
    assert result.pixel == PixelInfo(PIXEL, "capi-diag demo Pixel", "2027-01-15T07:58:00+0000", False)
    (req,) = fake.received
    assert req["method"] == "GET"
    assert req["path"] == "/v26.0/1234567890?fields=id%2Cname%2Clast_fired_time%2Cis_unavailable"
    assert req["headers"]["Authorization"] == "[redacted]"


def test_fake_graph_pixel_read_default_fields_and_unknown_field(fake):
    r = httpx.get(f"{fake.url}/v26.0/{PIXEL}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == {"id": PIXEL, "name": "capi-diag demo Pixel"}
    r = httpx.get(f"{fake.url}/v26.0/{PIXEL}?fields=id,owner_secret", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    assert "nonexisting field (owner_secret)" in r.json()["error"]["message"]


def test_fake_graph_pixel_read_unknown_pixel_100_33(fake):
    with _client(fake) as client:
        result = check_connection(client, "555")
    assert result.refused and (result.error.code, result.error.error_subcode) == (100, 33)
    assert result.error.entry.title == "Unknown Pixel or no access"
    assert "Object with ID '555' does not exist" in result.error.meta_message


def test_fake_graph_pixel_read_bad_token_190(fake):
    with _client(fake, token="wrong") as client:
        result = check_connection(client, PIXEL)
    assert result.refused and result.error.code == 190 and result.error.http_status == 401
    assert "Generate a new access token" in result.fix


def test_fake_graph_pixel_read_missing_permission_200(fake):
    with _client(fake) as client:
        result = check_connection(client, fake_quality.NO_PERMISSION_ID)
    assert result.refused and result.error.code == 200 and result.error.entry.kind == "permission"
    assert result.error.entry.title == "Permission missing" and "Use events dataset" in result.fix


def test_fake_graph_pixel_read_scenario_pixels(fake):
    with _client(fake) as client:
        staging = check_connection(client, fake_quality.PARTIAL_ID)
        sandbox = check_connection(client, fake_quality.DEDUP_SPELLING_ID)
    assert staging.pixel == PixelInfo(fake_quality.PARTIAL_ID, "capi-diag staging Pixel", "2027-01-12T08:00:00+0000",
                                      False)
    assert sandbox.headline == "Connected to Pixel Agency sandbox Pixel (1234567892)"
    assert sandbox.pixel.last_fired_time is None and "no last_fired_time" in sandbox.findings[0]


def test_format_connect_lines(fake):
    with _client(fake) as client:
        result = check_connection(client, PIXEL)
    assert format_connect(result, graph="http://h v26.0", token_source="env") == [
        "Connected to Pixel capi-diag demo Pixel (1234567890)",
        "  name: capi-diag demo Pixel",
        "  id: 1234567890",
        "  last fired: 2027-01-15T07:58:00+0000",
        "  unavailable: no",
        "  via http://h v26.0; token from env",
    ]


# -- the command -------------------------------------------------------------------------------------

def test_connect_cli_connected_exit_0_prints_name(env, fake, capsys):
    env.setenv("CAPI_ACCESS_TOKEN", TOKEN)
    code = main(["connect", "--pixel-id", PIXEL, "--graph-url", fake.url, "--api-version", "v25.0"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "Connected to Pixel capi-diag demo Pixel (1234567890)"
    assert f"  via {fake.url} v25.0; token from environment variable CAPI_ACCESS_TOKEN" in out
    assert fake.received[0]["path"].startswith("/v25.0/1234567890?fields=")


def test_connect_cli_token_from_secrets_file(env, fake, capsys, tmp_path):
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(f'CAPI_ACCESS_TOKEN = "{TOKEN}"\n')
    env.setenv("CAPI_GRAPH_URL", fake.url)
    assert main(["connect", "--pixel-id", PIXEL]) == 0
    assert "secrets.toml" in capsys.readouterr().out


@pytest.mark.parametrize(("pixel", "token", "expected"), [
    ("555", TOKEN, "capi-diag: Unknown Pixel or no access: Graph API error 100/33 (HTTP 400) from GET "),
    (PIXEL, "wrong-token", "capi-diag: Invalid or expired access token: Graph API error 190 (HTTP 401) from GET "),
    (fake_quality.NO_PERMISSION_ID, TOKEN, "capi-diag: Permission missing: Graph API error 200 (HTTP 400) from GET "),
])
def test_connect_cli_refused_exit_2_one_line_fix(env, fake, capsys, pixel, token, expected):
    env.setenv("CAPI_ACCESS_TOKEN", token)
    env.setenv("CAPI_GRAPH_URL", fake.url)
    code = main(["connect", "--pixel-id", pixel])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith(expected) and " Fix: " in err


def test_connect_cli_unavailable_pixel_exit_1(env, capsys):
    env.setenv("CAPI_ACCESS_TOKEN", TOKEN)
    with FakeGraph(token=TOKEN, pixel_id=PIXEL, pixel_unavailable=True) as fg:
        code = main(["connect", "--pixel-id", PIXEL, "--graph-url", fg.url])
    out = capsys.readouterr().out
    assert code == 1 and "  unavailable: yes" in out and "note: Meta marks this Pixel as unavailable" in out


def test_connect_cli_unreachable_exit_1_with_attempts(env, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env.setenv("CAPI_ACCESS_TOKEN", TOKEN)
    code = main(["connect", "--pixel-id", PIXEL, "--graph-url", f"http://127.0.0.1:{port}", "--max-retries", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0] == "Not connected to Pixel 1234567890: Connection failed"
    assert "  attempt 1: no answer: retry" in out and "  attempt 2: no answer: error" in out


def test_connect_cli_usage_errors_exit_2(env, fake, capsys):
    env.setenv("CAPI_GRAPH_URL", fake.url)
    assert main(["connect", "--pixel-id", PIXEL]) == 2  # no token anywhere
    assert "CAPI_ACCESS_TOKEN" in capsys.readouterr().err
    env.setenv("CAPI_ACCESS_TOKEN", TOKEN)
    assert main(["connect", "--pixel-id", "pixel-1"]) == 2
    assert "is not a number" in capsys.readouterr().err
    assert main(["connect"]) == 2
    assert fake.received == []


def test_connect_cli_runs_as_module(fake, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CAPI_ACCESS_TOKEN": TOKEN, "CAPI_GRAPH_URL": fake.url}
    done = subprocess.run([sys.executable, "-m", "capi_diag", "connect", "--pixel-id", PIXEL], capture_output=True,
                          text=True, env=env, cwd=str(ROOT),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Connected to Pixel capi-diag demo Pixel (1234567890)\n")


# -- the Test Events page ----------------------------------------------------------------------------

SCRIPT = "from capi_diag.ui.pages import test_events\ntest_events.render()\n"


@pytest.fixture
def page(monkeypatch, tmp_path):
    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CAPI_DIAG_HOME", str(tmp_path / "capi-home"))
    monkeypatch.setattr(test_events, "CLOCK", lambda: NOW)
    fg = FakeGraph(token=TOKEN, pixel_id=PIXEL, now=lambda: NOW)
    monkeypatch.setenv("CAPI_GRAPH_URL", fg.start())
    yield fg
    fg.stop()


def _page(pixel: str, token: str = TOKEN) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=60).run()
    at.text_input(key="te_pixel_id").input(pixel)
    at.text_input(key="te_test_code").input("TEST123")
    at.text_input(key="te_token").input(token)
    return at.run()


def test_page_connected_before_first_send(page):
    at = _page(PIXEL)
    assert not at.exception and not at.error
    assert [s.value for s in at.success] == ["Connected to Pixel capi-diag demo Pixel (1234567890)"]
    assert [r["method"] for r in page.received] == ["GET"]  # shown before anything was sent
    assert not at.button(key="te_send").disabled
    at.button(key="te_send").click().run()
    assert [r["method"] for r in page.received] == ["GET", "POST"]  # the check is kept, not repeated


def test_page_unknown_pixel_blocks_sending_with_fix(page):
    at = _page("555")
    (err,) = at.error
    assert "Not connected: Unknown Pixel or no access" in err.value
    assert "Check the Pixel ID in Events Manager" in err.value
    assert at.button(key="te_send").disabled and at.button(key="te_start").disabled
    assert all(r["method"] == "GET" for r in page.received)


def test_page_missing_permission_blocks_sending(page):
    at = _page(fake_quality.NO_PERMISSION_ID)
    assert any("Not connected: Permission missing" in e.value for e in at.error)
    assert at.button(key="te_send").disabled


def test_page_fixed_token_checks_again_and_unblocks(page):
    at = _page(PIXEL, token="wrong-token")
    assert at.button(key="te_send").disabled
    at.text_input(key="te_token").input(TOKEN).run()
    assert [s.value for s in at.success] == ["Connected to Pixel capi-diag demo Pixel (1234567890)"]
    assert not at.button(key="te_send").disabled
    assert json.dumps([r["path"] for r in page.received]).count("fields=") == 2


def test_connect_and_quality_modules_do_not_import_streamlit():
    code = ("import sys\nimport capi_diag.meta.connect, capi_diag.meta.quality, capi_diag.cli.meta, "
            "capi_diag.standins.fake_quality, capi_diag.cli\n"
            "assert 'streamlit' not in sys.modules, 'streamlit imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=str(ROOT))
    assert done.returncode == 0, done.stderr


def test_page_unfinished_check_warns_allows_sending_and_rechecks_later(page, monkeypatch):
    from capi_diag.ui import meta_view

    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("CAPI_GRAPH_URL", dead)
    clock = [NOW]
    monkeypatch.setattr(meta_view, "CLOCK", lambda: clock[0])
    calls = []

    def counting(client, pixel_id):
        calls.append(pixel_id)
        return check_connection(client, pixel_id)

    monkeypatch.setattr(meta_view, "check_connection", counting)
    at = _page(PIXEL)
    (warning,) = [w.value for w in at.warning if "could not finish" in w.value]
    assert warning.startswith("The connection check could not finish (Connection failed); sending is allowed")
    assert not at.button(key="te_send").disabled and calls == [PIXEL]
    at.run()
    assert calls == [PIXEL]  # kept for RECHECK_S
    clock[0] += meta_view.RECHECK_S + 1
    at.run()
    assert calls == [PIXEL, PIXEL]
