"""The browser rehearsal without a browser: Pixel hit parsing, the journey file, the send-log tail,
pairing and its three warning kinds, the run/window ordering, and the command's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capi_diag.cli import main
from capi_diag.core.errors import UsageError
from capi_diag.io.pixel_hits import Hit, HitFilter, body_params, parse_hit
from capi_diag.rehearsal import journey
from capi_diag.rehearsal.pairing import pair_run, run_judged, warnings_of
from capi_diag.rehearsal.runner import Rehearsal, Run, Settings
from capi_diag.rehearsal.tail import SendFeed, SendLogTail, ServerEvent

REAL_1 = ("https://www.facebook.com/tr/?id=21602405281339&ev=PageView&dl=http%3A%2F%2Fwooc-local-test-sitecom.local%2F"
          "&rl=&if=false&ts=1759941821963&cd[source]=woocommerce_0&cd[version]=10.2.2&cd[user_data]=%7B%7D"
          "&sw=1280&sh=720&v=2.9.234&fbp=fb.1.1759941821961.428113115755266759&it=1759941821684&coo=false"
          "&eid=387802f4-8b94-479b-8ed1-d605eddb3328&expv2[0]=pl0&rqm=GET")


# -- hits -------------------------------------------------------------------------------------------
def test_hit_from_a_real_pixel_url():
    h = parse_hit(REAL_1, at=5.0)
    assert h is not None
    assert (h.pixel_id, h.event_name, h.event_id, h.ts_ms) == (
        "21602405281339", "PageView", "387802f4-8b94-479b-8ed1-d605eddb3328", 1759941821963)
    assert h.url == "http://wooc-local-test-sitecom.local/"
    assert h.custom_data == {"source": "woocommerce_0", "version": "10.2.2", "user_data": "{}"}
    assert h.fbp == "fb.1.1759941821961.428113115755266759" and h.fbc is None and h.at == 5.0


def test_hit_percent_encoded_keys_and_hashed_user_data():
    url = ("http://127.0.0.1:9/tr?id=1&ev=Purchase&eid=ORD-1&cd%5Bvalue%5D=29.90&cd%5Bcurrency%5D=EUR"
           "&ud%5Bem%5D=" + "a" * 64 + "&fbc=fb.1.1.abc")
    h = parse_hit(url)
    assert h.custom_data == {"value": "29.90", "currency": "EUR"}
    assert h.user_data == {"em": "a" * 64} and h.fbc == "fb.1.1.abc"


def test_hit_body_urlencoded_and_multipart_merge_with_the_query():
    h = parse_hit("https://www.facebook.com/tr/?id=42", body=b"ev=Lead&eid=e1&cd%5Bvalue%5D=3",
                  content_type="application/x-www-form-urlencoded", method="post")
    assert (h.pixel_id, h.event_name, h.event_id, h.custom_data, h.method) == (
        "42", "Lead", "e1", {"value": "3"}, "POST")
    multipart = (b"--XyZ\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n42\r\n"
                 b"--XyZ\r\nContent-Disposition: form-data; name=\"ev\"\r\n\r\nPurchase\r\n"
                 b"--XyZ\r\nContent-Disposition: form-data; name=\"cd[value]\"\r\n\r\n12.50\r\n--XyZ--\r\n")
    h = parse_hit("https://www.facebook.com/tr/", body=multipart, content_type="multipart/form-data; boundary=XyZ")
    assert (h.pixel_id, h.event_name, h.custom_data) == ("42", "Purchase", {"value": "12.50"})
    assert body_params(b'{"a": 1}', "application/json") == {}


@pytest.mark.parametrize("url", [
    "https://www.facebook.com/privacy_sandbox/pixel/register/trigger/?id=1&ev=PageView&rqm=FGET",
    "https://connect.facebook.net/en_US/fbevents.js?id=1&ev=PageView",
    "https://www.facebook.com/tr/?id=1",           # no ev
    "https://www.facebook.com/tr/?ev=PageView",    # no id
    "https://www.facebook.com/track/?id=1&ev=PageView",
])
def test_not_hits(url):
    assert parse_hit(url) is None


def test_other_pixels_are_ignored_and_counted():
    f = HitFilter("1")
    kept = [f.keep(parse_hit(f"https://x.test/tr?id={i}&ev=PageView")) for i in ("1", "2", "3", "1")]
    assert kept == [True, False, False, True] and f.ignored == 2
    assert f.keep(None) is False and f.ignored == 2


# -- journey ----------------------------------------------------------------------------------------
GOOD = """base_url = "https://shop.example.com"
[[step]]
url = "/"
expect = "PageView"
[[step]]
url = "/products/sku-481"
expect = "ViewContent"
[[step]]
fill = { "input#email" = "a@b.c" }
click = "button#add-to-cart"
wait_for = "#done"
wait_ms = 200
expect = "AddToCart"
[[step]]
url = "https://other.example.com/x"
"""


def test_journey_parses():
    j = journey.parse(GOOD, source="j.toml")
    assert [s.url for s in j.steps] == ["https://shop.example.com/", "https://shop.example.com/products/sku-481",
                                        None, "https://other.example.com/x"]
    assert j.steps[2].fill == {"input#email": "a@b.c"} and j.steps[2].wait_ms == 200
    assert j.expected == ["PageView", "ViewContent", "AddToCart"]


@pytest.mark.parametrize(("text", "message"), [
    ("[[step]]\nurl = '/'\n", "j.toml, step 1: url '/' is relative but the file has no base_url"),
    ("base_url = 'https://a.b'\n[[step]]\nurl = '/'\nclik = 'x'\n", "j.toml, step 1: unknown key 'clik'"),
    ("base_url = 'https://a.b'\n[[step]]\nurl = '/'\n[[step]]\nwait_ms = -1\n", "j.toml, step 2: wait_ms must be"),
    ("base_url = 'https://a.b'\n[[step]]\nclick = 'a'\n", "j.toml, step 1: the first step needs a url"),
    ("base_url = 'https://a.b'\n[[step]]\nurl = '/'\n[[step]]\nexpect = 'Lead'\n", "j.toml, step 2: does nothing"),
    ("base_url = 'shop'\n[[step]]\nurl = '/'\n", "j.toml: base_url 'shop' is not an absolute"),
    ("base_url = 'https://a.b'\n", "j.toml: no [[step]] table"),
    ("steps = 1\n", "j.toml: unknown key 'steps'"),
    ("[[step]\n", "j.toml: not valid TOML"),
])
def test_journey_errors_name_the_file_and_step(text, message):
    with pytest.raises(UsageError) as e:
        journey.parse(text, source="j.toml")
    assert message in str(e.value)


def test_journey_missing_file(tmp_path):
    with pytest.raises(UsageError, match="journey file .*nope.toml not found"):
        journey.load(tmp_path / "nope.toml")


# -- tail -------------------------------------------------------------------------------------------
def _line(events, *, status=200, response=None, code="TEST1", key="request"):
    return json.dumps({"sent_at": 1, key: {"data": events, "test_event_code": code}, "http_status": status,
                       "response": response or {"events_received": len(events), "messages": []}})


def test_tail_reads_only_appended_complete_lines(tmp_path):
    log = tmp_path / "send.jsonl"
    log.write_text(_line([{"event_name": "Old", "event_id": "o"}]) + "\n")
    tail = SendLogTail(log)
    assert tail.poll(1.0) == []
    with log.open("a") as fh:
        fh.write(_line([{"event_name": "A", "event_id": "a"}, {"event_name": "B", "event_id": "b"}]) + "\n")
        fh.write('{"data": [{"event_name": "C", "event_id": "c", "access_token": "x"}]}\n')
        fh.write("not json\n")
        fh.write('{"something": "else"}\n')
        fh.write(_line([{"event_name": "D", "event_id": "d"}], key="body")[:20])  # a line being written
    got = tail.poll(2.0)
    assert [(e.event_name, e.event_id, e.answered, e.at) for e in got] == [
        ("A", "a", True, 2.0), ("B", "b", True, 2.0), ("C", "c", False, 2.0)]
    assert "access_token" not in got[2].event and tail.feed.malformed == 2 and tail.feed.lines == 4
    with log.open("a") as fh:
        fh.write(_line([{"event_name": "D", "event_id": "d"}], key="body")[20:] + "\n")
    assert [e.event_name for e in tail.poll(3.0)] == ["D"]


def test_tail_missing_file_then_created_and_folder_refused(tmp_path):
    tail = SendLogTail(tmp_path / "later.jsonl")
    assert tail.poll(1.0) == []
    (tmp_path / "later.jsonl").write_text(_line([{"event_name": "A", "event_id": "a"}]) + "\n")
    assert [e.event_name for e in tail.poll(2.0)] == ["A"]
    with pytest.raises(UsageError, match="is a folder"):
        SendLogTail(tmp_path)
    with pytest.raises(UsageError, match="its folder does not exist"):
        SendLogTail(tmp_path / "no" / "x.jsonl")


def test_feed_refusals():
    feed = SendFeed()
    ev = feed.add_record(json.loads(_line([{"event_name": "A"}], status=401, response={
        "error": {"message": "Invalid OAuth access token", "code": 190}})), 1.0)[0]
    assert ev.error == {"message": "Invalid OAuth access token", "code": 190}
    ev = feed.add_record({"request": {"data": [{"event_name": "A"}]}, "status": "503"}, 1.0)[0]
    assert ev.http_status == 503 and ev.error == {"message": "HTTP 503"}


# -- pairing ----------------------------------------------------------------------------------------
FBP = "fb.1.1796000000000.1234567890"


def hit(name, eid, **kw):
    cd = kw.pop("cd", {"value": "29.90", "currency": "EUR"} if name == "Purchase" else {})
    return Hit(pixel_id="1", event_name=name, event_id=eid, ts_ms=kw.pop("ts_ms", 1_796_000_000_000),
               url="https://shop/", custom_data=cd, fbp=kw.pop("fbp", FBP), at=1.0, **kw)


def srv(name, eid, *, code="TEST1", status=200, response=None, drop=(), **over):
    ev = {"event_name": name, "event_time": 1_796_000_001, "event_id": eid, "action_source": "website",
          "event_source_url": "https://shop/", "user_data": {"client_ip_address": "203.0.113.9",
                                                             "client_user_agent": "UA", "fbp": FBP}}
    if name == "Purchase":
        ev["custom_data"] = {"value": 29.9, "currency": "EUR"}
    for k in drop:
        if "." in k:
            a, b = k.split(".")
            ev[a].pop(b)
        else:
            ev.pop(k)
    for k, v in over.items():
        a, _, b = k.partition("__")
        if b:
            ev[a][b] = v
        else:
            ev[a] = v
    return ServerEvent(event=ev, test_event_code=code, http_status=status,
                       response=response or {"events_received": 1}, at=2.0)


def judge(hits, server, expected=("PageView", "Purchase"), *, final=True, done=True):
    pairs = pair_run(hits, server, expected=list(expected), test_event_code="TEST1", skew_s=300,
                     journey_done=done, final=final)
    return pairs, sorted((w.kind, w.event_name, w.detail) for w in warnings_of(pairs))


def test_clean_pairs_by_name_and_id():
    pairs, warns = judge([hit("PageView", "p1"), hit("Purchase", "ORD-1")],
                         [srv("Purchase", "ORD-1"), srv("PageView", "p1")])
    assert warns == [] and [(p.event_name, p.event_id, p.judged) for p in pairs] == [
        ("PageView", "p1", True), ("Purchase", "ORD-1", True)]
    assert run_judged(pairs, journey_done=True)


def test_event_id_differs_is_dedup_as_soon_as_both_sides_are_seen():
    pairs, warns = judge([hit("PageView", "p1"), hit("Purchase", "ORD-1")],
                         [srv("PageView", "p1"), srv("Purchase", "srv-ORD-1")], final=False)
    assert warns == [("dedup", "Purchase", "event_id differs: the Pixel sent 'ORD-1', the server 'srv-ORD-1'; "
                                           "Meta counts the event twice")]
    assert run_judged(pairs, journey_done=True)


def test_missing_server_side_waits_for_the_grace_period():
    pairs, warns = judge([hit("PageView", "p1"), hit("Purchase", "ORD-1")], [srv("PageView", "p1")], final=False)
    assert warns == [] and not run_judged(pairs, journey_done=True)
    pairs, warns = judge([hit("PageView", "p1"), hit("Purchase", "ORD-1")], [srv("PageView", "p1")], final=True)
    assert warns == [("dedup", "Purchase", "no server event for the Pixel's event_id 'ORD-1' within the grace period")]


def test_expected_hit_absent():
    _, warns = judge([hit("PageView", "p1")], [srv("PageView", "p1"), srv("Purchase", "ORD-1")], final=False)
    assert warns == [("dedup", "Purchase", "no Pixel Purchase hit was seen; the journey expects one")]


def test_fbp_value_currency_and_skew_differ():
    _, warns = judge([hit("PageView", "p1", fbp="fb.1.1.999", ts_ms=1_796_000_000_000 - 400_000),
                      hit("Purchase", "ORD-1", cd={"value": "30", "currency": "usd"})],
                     [srv("PageView", "p1"), srv("Purchase", "ORD-1")])
    assert warns == [
        ("dedup", "PageView", "event_time is 401s from the Pixel's ts (more than 300s)"),
        ("dedup", "PageView", f"fbp differs: the Pixel sent 'fb.1.1.999', the server '{FBP}'"),
        ("dedup", "Purchase", "currency differs: the Pixel sent usd, the server EUR"),
        ("dedup", "Purchase", "value differs: the Pixel sent 30, the server 29.9"),
    ]


def test_event_time_as_text_is_compared_too():
    _, warns = judge([hit("PageView", "p1")], [srv("PageView", "p1", event_time="1796000400")], expected=("PageView",))
    assert warns == [("dedup", "PageView", "event_time is 400s from the Pixel's ts (more than 300s)")]


def test_missing_fields_on_both_sides_and_the_test_code():
    _, warns = judge([hit("PageView", None, fbp=None), hit("Purchase", "ORD-1", cd={})],
                     [srv("PageView", None, code=None, drop=("event_source_url", "user_data.fbp",
                                                              "user_data.client_ip_address")),
                      srv("Purchase", "ORD-1", code="TEST9", drop=("custom_data.value",))])
    assert warns == [
        ("missing_field", "PageView", "the Pixel hit has no eid"),
        ("missing_field", "PageView", "the Pixel hit has no fbp"),
        ("missing_field", "PageView", "the server event has no client_ip_address"),
        ("missing_field", "PageView", "the server event has no event_id"),
        ("missing_field", "PageView", "the server event has no event_source_url"),
        ("missing_field", "PageView", "the server event has no fbp"),
        ("missing_field", "PageView", "the server request has no test_event_code"),
        ("missing_field", "Purchase", "the Pixel hit has no cd[currency]"),
        ("missing_field", "Purchase", "the Pixel hit has no cd[value]"),
        ("missing_field", "Purchase", "the server event has no custom_data.value"),
        ("missing_field", "Purchase", "the server request's test_event_code is 'TEST9', not 'TEST1'"),
    ]


@pytest.mark.parametrize(("error", "kind"), [
    ({"message": "Invalid OAuth access token", "code": 190}, "token"),
    ({"message": "Permissions error", "code": 200}, "token"),
    ({"message": "Invalid parameter", "code": 100, "error_subcode": 2804019}, "dedup"),
])
def test_meta_refusals(error, kind):
    _, warns = judge([hit("PageView", "p1")], [srv("PageView", "p1", status=400, response={"error": error})],
                     expected=("PageView",))
    assert warns == [(kind, "PageView", f"Meta refused the server request (code {error['code']}: {error['message']})")]


def test_notes_and_unexpected_events_never_warn():
    pairs, warns = judge([hit("PageView", "p1"), hit("Lead", "l1", fbp=None)],
                         [srv("PageView", "p1", user_data__client_ip_address="127.0.0.1"), srv("Search", "s1")],
                         expected=("PageView",))
    assert warns == []
    assert [(p.event_name, p.expected, p.judged, p.problems) for p in pairs] == [
        ("PageView", True, True, ["note: client_ip_address 127.0.0.1 is a loopback address: Meta cannot match on it"]),
        ("Lead", False, False, []), ("Search", False, False, [])]


# -- the runs and the window (no browser: runs are filled in by hand) --------------------------------
def test_runs_enter_the_window_in_order_at_their_start(tmp_path):
    j = journey.parse("base_url = 'https://a.b'\n[[step]]\nurl = '/'\nexpect = 'PageView'\n")
    clock = [1000.0]
    settings = Settings(journey=j, pixel_id="1", test_event_code="TEST1", send_log=str(tmp_path / "s.jsonl"),
                        minutes=0.05, interval_s=1, timeout_minutes=1, grace_s=2, output=str(tmp_path / "o.json"),
                        db=str(tmp_path / "h.duckdb"))
    r = Rehearsal(settings, clock=lambda: clock[0])
    r.window.start(1000.0)
    r.runs = [Run(1, 1000.0, [hit("PageView", "a")], journey_done_at=1001.0),
              Run(2, 1002.0, [hit("PageView", "b")], journey_done_at=1003.0)]
    r.poll()
    with open(settings.send_log, "a") as fh:
        fh.write(_line([srv("PageView", "b").event]) + "\n")  # run 2's server event only
    clock[0] = 1002.5
    r.poll()
    r.judge(clock[0])
    assert [run.entered for run in r.runs] == [False, False]  # run 1 waits; run 2 may not overtake it
    clock[0] = 1003.1
    r.judge(clock[0])
    assert [(run.entered, run.clean) for run in r.runs] == [(True, False), (True, True)]
    assert (r.window.phase.value, r.window.streak_start) == ("streak", 1002.0)
    clock[0] = 1005.0
    r.judge(clock[0])
    assert (r.window.phase.value, r.window.ready_at) == ("ready", 1005.0)
    r.write(clock[0])
    doc = json.loads(Path(settings.output).read_text())
    assert doc["status"] == "ready" and [w["kind"] for w in doc["warnings"]] == ["dedup"]
    assert [len(run["pairs"]) for run in doc["runs"]] == [1, 1]


# -- the command's exit codes -------------------------------------------------------------------------
def _args(tmp_path, *extra):
    j = tmp_path / "j.toml"
    if not j.exists():
        j.write_text(GOOD)
    return ["rehearse", "--journey", str(j), "--pixel-id", "1234", "--test-event-code", "TEST1",
            "--send-log", str(tmp_path / "s.jsonl"), "--db", str(tmp_path / "h.duckdb"), *extra]


def test_exit_2_without_chromium(tmp_path, capsys):
    assert main(_args(tmp_path, "--chromium", str(tmp_path / "no-chromium"))) == 2
    err = capsys.readouterr().err
    assert "Chromium not found" in err and "apt-get install chromium" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("extra", "message"), [
    (("--minutes", "10", "--timeout-minutes", "5"), "--timeout-minutes 5 is shorter than the --minutes 10"),
    (("--minutes", "0",), "'0' must be greater than 0"),
    (("--grace", "soon",), "'soon' is not a number"),
])
def test_exit_2_for_bad_options(tmp_path, capsys, extra, message):
    try:
        code = main(_args(tmp_path, *extra))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2 and message in capsys.readouterr().err


def test_exit_2_for_a_bad_journey_and_send_log(tmp_path, capsys):
    (tmp_path / "j.toml").write_text("[[step]]\nurl = '/'\n")
    assert main(_args(tmp_path)) == 2
    assert "step 1: url '/' is relative" in capsys.readouterr().err
    (tmp_path / "j.toml").write_text(GOOD)
    args = _args(tmp_path)
    args[args.index("--send-log") + 1] = str(tmp_path)
    assert main(args) == 2
    assert "is a folder" in capsys.readouterr().err


def test_exit_2_without_playwright(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # as if it were not installed
    assert main(_args(tmp_path, "--chromium", sys.executable)) == 2
    err = capsys.readouterr().err
    assert "Playwright is not installed" in err and "requirements.txt" in err
