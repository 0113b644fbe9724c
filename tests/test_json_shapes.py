"""Every valid JSON shape imports (issue 24): one pretty-printed event, a pretty request body
``{"data": [...]}``, a pretty array, several pretty objects appended one after another (as loggers
append), with and without a BOM, in both roles, from a file and from an upload's bytes. Each gives the
exact rows of its one-line form and the same report; a rejected row is shown at the line where its
object opens."""

from __future__ import annotations

import json
from typing import Any

import pytest

from capi_diag import api
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs

T0 = 1794873602


def _server_events() -> list[dict[str, Any]]:
    out = []
    for i in range(5):
        out.append({"event_name": "Purchase" if i % 2 else "AddToCart", "event_id": f"ord-{i}",
                    "event_time": T0 + i, "action_source": "website",
                    "event_source_url": "https://shop.example/checkout/",
                    "user_data": {"em": ["a" * 64], "ph": ["b" * 64],
                                  "fbp": "fb.1.1794873601259.17318" if i != 3 else "",
                                  "client_ip_address": "203.0.113.7", "client_user_agent": "Mozilla/5.0 {x}"},
                    "custom_data": {"value": f"{10 + i}.5", "currency": "EUR", "content_ids": ["p[1]", "p{2}"]}})
    out.append({"event_name": "Purchase", "event_id": "ord-bad", "event_time": "not a time",
                "user_data": {"em": ["c" * 64]}})
    return out


def _browser_events() -> list[dict[str, Any]]:
    return [{"event_name": "Purchase" if i % 2 else "AddToCart", "event_id": f"ord-{i}",
             "event_time": (T0 + i) * 1000, "fbp": "fb.1.1794873601259.17318", "note": "a \"quoted\" } ]"}
            for i in range(4)] + [{"event_name": "", "event_time": T0}]


def one_line(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def shapes(events: list[dict[str, Any]]) -> dict[str, str]:
    """The multi-line forms of ``events`` (all of them in one file, or one event for ``one``)."""
    half = len(events) // 2
    return {
        "body": json.dumps({"data": events, "test_event_code": "TEST123"}, indent=2) + "\n",
        "array": json.dumps(events, indent=4),
        "appended": "\n".join(json.dumps(e, indent=2) for e in events) + "\n",
        "appended bodies": "".join(json.dumps({"data": part}, indent="\t") + "\r\n"
                                   for part in (events[:half], events[half:])),
        "bom body": "\ufeff" + json.dumps({"data": events}, indent=1),
    }


def _normalized(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what names the file or the line (the forms differ only there)."""
    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()
                    if k not in ("name", "files", "generated_at") and not k.endswith(("line", "lines", "source_file"))}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v
    out = walk(report)
    for role in ("browser", "server"):
        for fr in out["inputs"][role]["file_reports"]:
            fr.pop("format", None)
            fr.pop("rejected_examples", None)
    return out


def _import(browser: Source, server: Source) -> tuple[dict[str, Any], list[tuple]]:
    with Database() as db:
        ds = import_logs(db, browser=[browser], server=[server])
        rows = db.fetchall("SELECT event_name, event_id, event_time, fbp, test_event_code, line "
                           "FROM server_events ORDER BY row_id")
        return ds.inputs, rows


@pytest.mark.parametrize("shape", ["body", "array", "appended", "appended bodies", "bom body"])
def test_pretty_server_shapes_give_the_rows_and_report_of_the_one_line_form(tmp_path, shape):
    events = _server_events()
    flat = tmp_path / "server.jsonl"
    # the one-line form of a request body is the body on one line (its test code reaches its events)
    flat.write_text(json.dumps({"data": events, "test_event_code": "TEST123"}) + "\n" if shape == "body"
                    else one_line(events), encoding="utf-8")
    pretty = tmp_path / "server.json"
    pretty.write_text(shapes(events)[shape], encoding="utf-8")
    browser = tmp_path / "browser.jsonl"
    browser.write_text(one_line(_browser_events()), encoding="utf-8")
    expected = api.analyze(api.Inputs(browser=[str(browser)], server=[str(flat)]))
    got = api.analyze(api.Inputs(browser=[str(browser)], server=[str(pretty)]))
    fr = got["inputs"]["server"]["file_reports"][0]
    assert (fr["rows_read"], fr["rows_loaded"], fr["rejected_reasons"]) == (6, 5, {"event_time_unreadable": 1})
    assert _normalized(got) == _normalized(expected)


@pytest.mark.parametrize("shape", ["body", "array", "appended", "appended bodies", "bom body"])
def test_pretty_browser_shapes_from_uploads_give_the_rows_of_the_one_line_form(shape):
    events = _browser_events()
    server = Source("server.jsonl", data=one_line(_server_events()).encode())
    flat = api.analyze(api.Inputs(browser=[Source("b.jsonl", data=one_line(events).encode())], server=[server]))
    got = api.analyze(api.Inputs(browser=[Source("b.json", data=shapes(events)[shape].encode("utf-8"))],
                                 server=[server]))
    fr = got["inputs"]["browser"]["file_reports"][0]
    assert (fr["rows_read"], fr["rows_loaded"], fr["rejected_reasons"]) == (5, 4, {"event_name_empty": 1})
    assert fr["time_formats"] == {"ms": 4}
    assert _normalized(got) == _normalized(flat)


def test_one_pretty_event_imports_as_one_row():
    ev = _server_events()[1]
    for data in (json.dumps(ev, indent=2), "\ufeff" + json.dumps(ev, indent=4) + "\n\n"):
        inputs, rows = _import(Source("b.jsonl", data=one_line(_browser_events()).encode()),
                               Source("s.json", data=data.encode("utf-8")))
        assert rows == [("Purchase", "ord-1", T0 + 1, ["fb.1.1794873601259.17318"], None, 1)]
        assert inputs["server"]["rows"] == 1


def test_pretty_rows_and_lines_point_at_each_object_first_line():
    events = _server_events()
    browser = Source("b.jsonl", data=one_line(_browser_events()).encode())
    # request body, indent 2: "{" line 1, '"data": [' line 2, each event 25 lines from line 3
    inputs, rows = _import(browser, Source("s.json", data=shapes(events)["body"].encode()))
    size = json.dumps(events[0], indent=2).count("\n") + 1
    assert [r[5] for r in rows] == [3 + i * size for i in range(5)]
    assert {r[4] for r in rows} == {"TEST123"}
    bad = inputs["server"]["file_reports"][0]["rejected_examples"]
    assert [(e["line"], e["reason"]) for e in bad] == [(3 + 5 * size, "event_time_unreadable")]
    # appended objects: each object's first line
    inputs, rows = _import(browser, Source("s.json", data=shapes(events)["appended"].encode()))
    assert [r[5] for r in rows] == [1 + i * size for i in range(5)]
    assert inputs["server"]["file_reports"][0]["rejected_examples"][0]["line"] == 1 + 5 * size


def test_a_broken_pretty_object_is_one_malformed_row_at_its_first_line():
    events = _server_events()[:2]
    good = "\n".join(json.dumps(e, indent=2) for e in events)
    broken = json.dumps({"event_name": "Lead", "event_time": T0}, indent=2)[:-2]  # cut mid-write
    data = good + "\n" + broken + "\n"
    inputs, rows = _import(Source("b.jsonl", data=one_line(_browser_events()).encode()),
                           Source("s.json", data=data.encode()))
    fr = inputs["server"]["file_reports"][0]
    assert (fr["rows_read"], fr["rows_loaded"], fr["rejected_reasons"]) == (3, 2, {"malformed_row": 1})
    assert fr["rejected_examples"][0]["line"] == good.count("\n") + 2


def test_json_lines_with_broken_lines_still_reject_line_by_line():
    """Reading documents across lines must not swallow the good lines after an unclosed one."""
    lines = [json.dumps(e) for e in _server_events()[:3]]
    data = "\n".join([lines[0], '{"event_name": "Purchase", "event_time": 1794873602', lines[1], "not json",
                      lines[2]]) + "\n"
    inputs, rows = _import(Source("b.jsonl", data=one_line(_browser_events()).encode()),
                           Source("s.jsonl", data=data.encode()))
    fr = inputs["server"]["file_reports"][0]
    assert (fr["rows_read"], fr["rows_loaded"], fr["rejected_reasons"]) == (5, 3, {"malformed_row": 2})
    assert [e["line"] for e in fr["rejected_examples"]] == [2, 4]
    assert [r[5] for r in rows] == [1, 3, 5]


def test_utf16_pretty_array_with_a_txt_name_is_read_as_json():
    data = json.dumps(_server_events(), indent=2).encode("utf-16")
    inputs, rows = _import(Source("b.jsonl", data=one_line(_browser_events()).encode()), Source("s.txt", data=data))
    assert inputs["server"]["rows"] == 5 and inputs["server"]["file_reports"][0]["format"] == "json"


def test_a_lone_surrogate_escape_loses_no_event_of_its_request_body(tmp_path):
    """JSON allows a lone UTF-16 surrogate escape (``JSON.stringify`` writes one for a string cut in
    the middle of an emoji); DuckDB's reader refuses the document. In a pretty request body that made
    all its events one malformed row. The escape is read as U+FFFD, the import says so, and every event
    is read; an escaped backslash before ``ud83d`` is text, left as it is."""
    events = [{"event_name": "Purchase", "event_id": f"e{i}", "event_time": 1_790_000_000 + i} for i in range(4)]
    text = json.dumps({"data": events}, indent=2)
    text = text.replace('"e1"', '"e1 \\ud83d cut"').replace('"e2"', '"e2 \\\\ud83d text"')
    text += "\n" + json.dumps({"data": [{"event_name": "Lead", "event_id": "\\udc00", "event_time": 1_790_000_009}]},
                              indent=2).replace('"\\\\udc00"', '"\\udc00"')
    for src in (str(tmp_path / "s.json"), Source("s.json", data=text.encode("utf-8"))):
        (tmp_path / "s.json").write_text(text, encoding="utf-8")
        with Database() as db:
            ds = import_logs(db, browser=[], server=[src])
            rep = ds.inputs["server"]["file_reports"][0]
            ids = [r[0] for r in db.fetchall("SELECT event_id FROM server_events ORDER BY row_id")]
        assert (rep["rows_read"], rep["rows_loaded"], rep["rows_rejected"]) == (5, 5, 0)
        assert ids == ["e0", "e1 \ufffd cut", "e2 \\ud83d text", "e3", "\ufffd"]
        assert any("2 line(s) held a lone UTF-16 surrogate escape" in w for w in rep["warnings"])
