"""``capi-diag monitor`` over real HTTP against the Graph stand-in's time-varying scenario
(:mod:`capi_diag.standins.scenario`), with a virtual clock: the monitor's sleep advances the clock the
stand-in answers by, so 48 hours run in seconds. A real webhook receiver on 127.0.0.1 takes the alerts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from capi_diag.cli import main
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.monitor import alerts, clock
from capi_diag.monitor.history import History
from capi_diag.monitor.poll import Snapshot
from capi_diag.standins import fake_quality
from capi_diag.standins.fake_server import FakeGraph
from tests.conftest import clean_graph_env

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, an hour's start
TOKEN = "SENTINEL-TOKEN-7f3a9c"
PIXEL = fake_quality.SCENARIO_ID

EXPECTED = [
    # (scenario hour of the snapshot, state, kind, event, metric)
    (21, "raised", "volume", "Purchase", "count_last_hour"),
    (26, "raised", "silent", "Purchase", "count"),
    (29, "cleared", "volume", "Purchase", "count_last_hour"),
    (29, "cleared", "silent", "Purchase", "count"),
    (30, "raised", "emq_drop", "AddToCart", "emq"),
    (30, "raised", "coverage_drop", "AddToCart", "match_key:email"),
    (34, "raised", "coverage_drop", "Purchase", "event_coverage"),
    (34, "raised", "dedup_drop", "Purchase", "dedupe:event_id:server"),
    (38, "cleared", "coverage_drop", "Purchase", "event_coverage"),
    (38, "cleared", "dedup_drop", "Purchase", "dedupe:event_id:server"),
    (41, "raised", "volume", "PageView", "count_last_hour"),
    (43, "raised", "source_ratio", "PageView", "server_browser_ratio"),
    (44, "cleared", "emq_drop", "AddToCart", "emq"),
    (44, "cleared", "coverage_drop", "AddToCart", "match_key:email"),
]


class VirtualClock:
    def __init__(self, start: float = T0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Receiver:
    """A webhook receiver: a real HTTP server on 127.0.0.1 that keeps every body it is posted."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                return

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(self.rfile.read(n))
                outer.headers.append(dict(self.headers.items()))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vclock(monkeypatch):
    c = VirtualClock()
    monkeypatch.setattr(clock, "CLOCK", c)
    monkeypatch.setattr(clock, "SLEEP", c.sleep)
    return c


@pytest.fixture
def fake(vclock):
    with FakeGraph(token=TOKEN, pixel_id="1234567890", now=vclock, scenario_start=T0) as fg:
        yield fg


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def env(monkeypatch, tmp_path, fake):
    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CAPI_DIAG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CAPI_GRAPH_URL", fake.url)
    monkeypatch.setenv("CAPI_ACCESS_TOKEN", TOKEN)
    return monkeypatch


def _hour(iso: str) -> int:
    import datetime as dt

    return int((dt.datetime.fromisoformat(iso).timestamp() - T0) // 3600)


def test_monitor_48_hours_raises_the_scenarios_alerts_once_and_clears_them(env, tmp_path, fake, receiver, vclock,
                                                                           capsys):
    db, out = tmp_path / "mon.duckdb", tmp_path / "alerts.jsonl"
    code = main(["monitor", "--pixel-id", PIXEL, "--hours", "48", "--interval", "3600", "--db", str(db),
                 "--output", str(out), "--webhook", receiver.url])
    printed = capsys.readouterr()
    assert code == 1, printed.err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    got = [(_hour(x["at"]), x["state"], x["kind"], x["event_name"], x["metric"]) for x in lines]
    assert got == EXPECTED
    assert set(lines[0]) == {"at", "kind", "event_name", "metric", "baseline", "now", "detail", "state"}
    by = {(x["state"], x["kind"], x["event_name"]): x for x in lines}
    assert (by["raised", "volume", "Purchase"]["baseline"], by["raised", "volume", "Purchase"]["now"]) == (60.0, 0)
    assert (by["raised", "silent", "Purchase"]["baseline"], by["raised", "silent", "Purchase"]["now"]) == (60.0, 0)
    emq = by["raised", "emq_drop", "AddToCart"]
    assert (emq["baseline"], emq["now"]) == (6.2, 5.5)
    assert by["raised", "source_ratio", "PageView"]["detail"] == (
        "PageView: server : browser over the last 6 complete hours is 600 : 330 (baseline 600 : 660); moved 100 %.")
    assert by["raised", "volume", "PageView"]["now"] == 100
    # the history: 49 snapshots (hours 0-48), two alerts still open, twelve cleared
    h = History(db)
    assert h.snapshot_count(PIXEL) == 49
    assert [(a["kind"], a["event_name"]) for a in h.open_alerts(PIXEL)] == [("volume", "PageView"),
                                                                           ("source_ratio", "PageView")]
    assert len(h.alerts(PIXEL)) == 8
    # the webhook got every change, as JSON with a text field
    posted = [json.loads(b) for b in receiver.bodies]
    assert [(p["state"], p["kind"], p["event_name"]) for p in posted] == [(s, k, e) for _, s, k, e, _ in EXPECTED]
    assert posted[1]["text"].startswith(":rotating_light: capi-diag monitor, Pixel 1234567893: silent raised for "
                                        "Purchase")
    # the token is nowhere: history bytes, output, webhook bodies and headers, printed lines
    assert TOKEN.encode() not in db.read_bytes()
    assert TOKEN not in out.read_text() and TOKEN not in printed.out + printed.err
    assert all(TOKEN.encode() not in b for b in receiver.bodies)
    assert all(TOKEN not in json.dumps(hd) for hd in receiver.headers)
    assert printed.out.splitlines()[-3:] == [
        "monitor: 49 snapshot(s) of Pixel 1234567893; 2 alert(s) open",
        "  open: volume PageView count_last_hour since 2027-01-17T01:00:00+00:00",
        "  open: source_ratio PageView server_browser_ratio since 2027-01-17T03:00:00+00:00",
    ]

    # another process, later, with --once on the same history: nothing raised again, still open
    vclock.t = T0 + 49 * 3600
    code = main(["monitor", "--pixel-id", PIXEL, "--once", "--db", str(db), "--output", str(out)])
    printed = capsys.readouterr()
    assert code == 1
    assert len(out.read_text().splitlines()) == len(EXPECTED)
    assert "2 alert(s) open" in printed.out
    assert History(db).snapshot_count(PIXEL) == 50


def test_monitor_once_per_hour_from_cron_processes_matches_one_long_run(env, tmp_path, fake, vclock, capsys):
    """Separate ``--once`` processes on one --db (cron) raise and clear the same alerts as one run."""
    db, out = tmp_path / "cron.duckdb", tmp_path / "alerts.jsonl"
    codes = []
    for k in range(49):
        vclock.t = T0 + k * 3600
        codes.append(main(["monitor", "--pixel-id", PIXEL, "--once", "--db", str(db), "--output", str(out)]))
    capsys.readouterr()
    got = [(_hour(x["at"]), x["state"], x["kind"], x["event_name"], x["metric"])
           for x in map(json.loads, out.read_text().splitlines())]
    assert got == EXPECTED
    assert codes[0] == 0 and codes[21] == 1 and codes[29] == 0 and codes[48] == 1


def test_monitor_baseline_file_and_buckets_replaced_by_later_answers(env, tmp_path, fake, vclock, capsys):
    db = tmp_path / "m.duckdb"
    snap = tmp_path / "base.json"
    assert main(["monitor", "--pixel-id", PIXEL, "--once", "--db", str(db), "--save-snapshot", str(snap)]) == 0
    saved = Snapshot.from_dict(json.loads(snap.read_text()))
    assert saved.pixel_id == PIXEL and saved.taken_at == T0
    assert saved.counts["Purchase"] == {int(T0) - 3600 * h: 60 for h in range(1, 25)}
    assert saved.quality["AddToCart"]["emq"] == 6.2
    # half an hour into hour 31 with a fresh history, against the saved baseline: the deploy's drops
    vclock.t = T0 + 31.5 * 3600
    db2 = tmp_path / "m2.duckdb"
    assert main(["monitor", "--pixel-id", PIXEL, "--once", "--db", str(db2), "--baseline", str(snap)]) == 1
    opened = [(a["kind"], a["event_name"], a["metric"]) for a in History(db2).open_alerts(PIXEL)]
    assert opened == [("emq_drop", "AddToCart", "emq"), ("coverage_drop", "AddToCart", "match_key:email")]
    # the partial hour 31 is not stored; the complete hours before it are, one row per hour and value
    rows = History(db2).query("SELECT count(*) AS n, max(bucket_start) AS last FROM mon_buckets "
                              "WHERE aggregation = 'event' AND event_name = 'PageView'")
    assert rows == [{"n": 24, "last": int(T0) + 30 * 3600}]
    # a later answer for the same hours replaces the earlier one (no duplicate hours)
    vclock.t = T0 + 32 * 3600
    main(["monitor", "--pixel-id", PIXEL, "--once", "--db", str(db2), "--baseline", str(snap)])
    rows = History(db2).query("SELECT count(*) AS n, count(DISTINCT bucket_start) AS d FROM mon_buckets "
                              "WHERE aggregation = 'event' AND event_name = 'PageView'")
    assert rows == [{"n": 25, "d": 25}]
    capsys.readouterr()
    # at 31.5 h the look-back holds 25 buckets: the second page was asked for without Meta's token in the URL
    paths = [r["path"] for r in fake.received]
    assert sum("aggregation=event&" in p and "after=24" in p for p in paths) == 1
    assert not any("access_token" in p or TOKEN in p for p in paths)


def test_monitor_once_without_an_answer_exit_1(env, tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env.setenv("CAPI_GRAPH_URL", f"http://127.0.0.1:{port}")
    db = tmp_path / "n.duckdb"
    assert main(["monitor", "--pixel-id", PIXEL, "--once", "--max-retries", "0", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("monitor: no snapshot at 2027-01-15T08:00:00+00:00: ")
    assert History(db).snapshot_count(PIXEL) == 0


@pytest.mark.parametrize(("pixel", "token", "says"), [
    (PIXEL, "wrong-token", "Graph API error 190"),
    (fake_quality.NO_PERMISSION_ID, TOKEN, "Graph API error 10"),
    ("555", TOKEN, "Graph API error 100/33"),
])
def test_monitor_refusals_stop_with_one_line_and_exit_2(env, tmp_path, pixel, token, says, capsys):
    env.setenv("CAPI_ACCESS_TOKEN", token)
    db = tmp_path / "r.duckdb"
    code = main(["monitor", "--pixel-id", pixel, "--once", "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and says in err and "Fix:" in err
    assert token not in err
    assert History(db).snapshot_count(pixel) == 0


def test_monitor_misconfiguration_exit_2(env, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[monitor]\nsilent_hours = 0\n")
    assert main(["monitor", "--pixel-id", PIXEL, "--once", "--config", str(bad)]) == 2
    assert main(["monitor", "--pixel-id", PIXEL, "--once", "--webhook", "ftp://x"]) == 2
    assert main(["monitor", "--pixel-id", PIXEL, "--hours", "0"]) == 2
    assert main(["monitor", "--pixel-id", PIXEL, "--interval", "abc"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4
    assert "[monitor] silent_hours must be a number > 0" in err[0]
    assert "--webhook 'ftp://x' is not an http(s) URL" in err[1]


def test_thresholds_from_config():
    th = alerts.thresholds(Config.from_text("[monitor]\nemq_drop = 1.0\nsilent_hours = 3\n"))
    assert (th["emq_drop"], th["silent_hours"], th["volume_low"]) == (1.0, 3, 0.5)
    with pytest.raises(ConfigError, match="lookback_hours"):
        alerts.thresholds(Config.from_text("[monitor]\nlookback_hours = 4\n"))
    with pytest.raises(ConfigError, match="volume_low must be below 1"):
        alerts.thresholds(Config.from_text("[monitor]\nvolume_low = 1.5\n"))


def test_fractional_hours_and_interval(env, tmp_path, vclock, capsys):
    db = tmp_path / "f.duckdb"
    assert main(["monitor", "--pixel-id", PIXEL, "--hours", "0.5", "--interval", "450.5", "--db", str(db)]) == 0
    times = [r["taken_at"] for r in History(db).query("SELECT taken_at FROM mon_snapshots ORDER BY taken_at")]
    assert times == [T0, T0 + 450.5, T0 + 901.0, T0 + 1351.5]
    capsys.readouterr()


def test_config_example_monitor_and_compare_sections_are_the_defaults():
    from pathlib import Path

    from capi_diag.monitor import compare

    config = Config.load(Path(__file__).resolve().parents[1] / "docs" / "config.example.toml")
    assert alerts.thresholds(config) == alerts.DEFAULTS
    assert compare.tolerances(config) == compare.DEFAULTS


# -- the rules, pure ---------------------------------------------------------------------------------

H = 3600
BASE_T = 1_800_000_000  # hour-aligned; hour of day 8 (UTC)


def _snap(taken_at: float, counts=None, sources=None, quality=None) -> Snapshot:
    return Snapshot("1", taken_at, counts=counts or {}, sources=sources or {}, quality=quality or {})


def _hours(first: int, n: int, value: int) -> dict[int, int]:
    return {first + i * H: value for i in range(n)}


def test_volume_uses_the_same_hour_of_day_else_the_baseline_mean():
    th = alerts.thresholds()
    # baseline: 24 hours of 40 an hour, except 100 in the hour that starts at 08:00 the day before
    counts = _hours(BASE_T - 24 * H, 24, 40)
    counts[BASE_T - 24 * H] = 100
    base = _snap(BASE_T, counts={"Lead": counts})
    # 24 h later the last complete hour starts at 08:00 again: 45 events are 45 % of that hour's 100
    now = _snap(BASE_T + 25 * H, counts={"Lead": {BASE_T + 24 * H: 45}})
    [f] = [f for f in alerts.evaluate(base, now, th).findings if f.kind == "volume"]
    assert (f.baseline, f.now) == (100.0, 45)
    # a baseline without that hour of day: its mean hourly count over the look-back (12 h of 40 = 20 a h)
    base = _snap(BASE_T, counts={"Lead": _hours(BASE_T - 12 * H, 12, 40)})
    now = _snap(BASE_T + 2 * H, counts={"Lead": {BASE_T + H: 9}})  # 09:00, not among the baseline's hours
    [f] = [f for f in alerts.evaluate(base, now, th).findings if f.kind == "volume"]
    assert (f.baseline, f.now) == (20.0, 9)
    # below volume_min_baseline (20): not judged at all
    base = _snap(BASE_T, counts={"Lead": _hours(BASE_T - 24 * H, 24, 19)})
    ev = alerts.evaluate(base, _snap(BASE_T + 3 * H, counts={"Lead": {BASE_T + 2 * H: 1}}), th)
    assert [f.kind for f in ev.findings] == [] and ("volume", "Lead", "count_last_hour") not in ev.ok


def test_source_ratio_skipped_below_20_a_side_and_silent_suppresses_ratio_and_volume():
    th = alerts.thresholds()
    six = BASE_T - 6 * H
    sources = {"Lead": {"browser": _hours(six, 6, 3), "server": _hours(six, 6, 10)}}  # 18 browser events
    base = _snap(BASE_T, counts={"Lead": _hours(six, 6, 13)}, sources=sources)
    now_sources = {"Lead": {"browser": _hours(BASE_T, 6, 0), "server": _hours(BASE_T, 6, 10)}}
    now = _snap(BASE_T + 7 * H, counts={"Lead": _hours(BASE_T, 7, 10)}, sources=now_sources)
    assert [f.kind for f in alerts.evaluate(base, now, th).findings] == []
    # with 20 a side in the baseline the browser's stop is an infinite move
    sources = {"Lead": {"browser": _hours(six, 5, 4) | {BASE_T - H: 0}, "server": _hours(six, 6, 10)}}
    base = _snap(BASE_T, counts={"Lead": _hours(six, 6, 14)}, sources=sources)
    [f] = alerts.evaluate(base, now, th).findings
    assert (f.kind, f.baseline, f.now) == ("source_ratio", 3.0, None)
    assert f.detail.endswith("(baseline 60 : 20); the browser side sent nothing.")
    # silent: the ratio and the volume are not judged (neither found nor fine)
    silent = _snap(BASE_T + 7 * H)
    ev = alerts.evaluate(base, silent, th)
    assert [f.kind for f in ev.findings] == ["silent"]
    assert not any(k[0] in ("source_ratio", "volume") for k in ev.ok)


def test_webhook_that_refuses_is_reported_and_the_monitor_goes_on(env, tmp_path, capsys):
    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, *a):
            return

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        db = tmp_path / "w.duckdb"
        assert main(["monitor", "--pixel-id", PIXEL, "--once", "--db", str(db), "--webhook", url]) == 0
        clock.SLEEP(21 * 3600)
        assert main(["monitor", "--pixel-id", PIXEL, "--once", "--db", str(db), "--webhook", url]) == 1
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert err == "monitor: the webhook did not take the alert (HTTP 500)\n"
    assert [a["kind"] for a in History(db).open_alerts(PIXEL)] == ["volume"]


def test_a_second_os_process_on_the_same_history_raises_nothing_again(env, tmp_path, vclock, capsys):
    """The 48 hours run in this process on a virtual clock that ends an hour before now; then a real
    ``capi-diag monitor --once`` process (real clock) reads the same --db: the two alerts still hold
    (the browser's PageView never came back), so it raises nothing again and exits 1."""
    import os
    import subprocess
    import sys
    import time

    t0 = (time.time() // 3600) * 3600 - 49 * 3600
    vclock.t = t0
    db, out = tmp_path / "x.duckdb", tmp_path / "alerts.jsonl"
    with FakeGraph(token=TOKEN, now=lambda: time.time() if vclock.t is None else vclock.t, scenario_start=t0) as fg:
        env.setenv("CAPI_GRAPH_URL", fg.url)
        assert main(["monitor", "--pixel-id", PIXEL, "--hours", "48", "--interval", "3600", "--db", str(db),
                     "--output", str(out)]) == 1
        lines = out.read_text().splitlines()
        got = [(json.loads(x)["state"], json.loads(x)["kind"]) for x in lines]
        assert got == [(s, k) for _, s, k, _, _ in EXPECTED]
        vclock.t = None  # the stand-in follows the real clock from here
        r = subprocess.run([sys.executable, "-m", "capi_diag", "monitor", "--pixel-id", PIXEL, "--once",
                            "--db", str(db), "--output", str(out)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "CAPI_GRAPH_URL": fg.url, "CAPI_ACCESS_TOKEN": TOKEN},
                           cwd=str(Path(__file__).resolve().parents[1]))
    capsys.readouterr()
    assert r.returncode == 1, r.stderr
    assert out.read_text().splitlines() == lines
    assert r.stdout.splitlines()[-3] == "monitor: 1 snapshot(s) of Pixel 1234567893; 2 alert(s) open"
    assert History(db).snapshot_count(PIXEL) == 50
    assert TOKEN.encode() not in db.read_bytes() and TOKEN not in r.stdout + r.stderr
