"""Import: every format, header form, time format, multi-valued cells, rejected rows, unusable files."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import duckdb
import pytest

from capi_diag.core.errors import ConfigError, IngestError
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from tests.conftest import ROOT

SERVER_CSV = "event_name,event_id,event_time\nPurchase,1,1700000000\n"
# em/ph values below are hash-shaped: unhashed ones are stored masked (capi_diag.engine.pii, tests/test_pii.py)
HA, HB, HC = "a" * 64, "b" * 64, "c" * 64


def _write(tmp_path, name: str, text: str | bytes) -> str:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return str(p)


def _import(tmp_path, browser_text, server_text=SERVER_CSV, bname="b.csv", sname="s.csv", **kw):
    db = Database()
    b = _write(tmp_path, bname, browser_text)
    s = _write(tmp_path, sname, server_text)
    return import_logs(db, browser=[b], server=[s], **kw), db


def _rows(db, sql):
    return db.execute(sql).fetchall()


def test_import_event_id_stays_text_leading_zeros_kept(tmp_path):
    ds, db = _import(tmp_path, "event_name,event_id,event_time\nPurchase,00123,1700000000\n")
    assert _rows(db, "SELECT event_id, event_time FROM browser_events") == [("00123", 1700000000)]
    assert ds.inputs["browser"]["rows"] == 1


@pytest.mark.parametrize("name_h,id_h,time_h", [
    ("event_name", "event_id", "event_time"),
    ("event", "eventID", "timestamp"),
    ("eventName", "eventId", "time"),
    ("event_name", "event_id", "eventTime"),
])
def test_import_header_forms_map_to_canonical(tmp_path, name_h, id_h, time_h):
    ds, db = _import(tmp_path, f"{name_h},{id_h},{time_h}\nLead,a,1700000000\n")
    assert _rows(db, "SELECT event_name, event_id, event_time FROM browser_events") == [("Lead", "a", 1700000000)]
    mapping = ds.inputs["browser"]["file_reports"][0]["mapping"]
    assert mapping == {name_h: "event_name", id_h: "event_id", time_h: "event_time"}


@pytest.mark.parametrize("header", ["user_data.em", "user_data_em", "em"])
def test_import_user_data_header_forms(tmp_path, header):
    ds, db = _import(tmp_path, f"event_name,event_time,{header}\nLead,1700000000,{HA}\n")
    assert _rows(db, "SELECT em FROM browser_events") == [([HA],)]
    assert ds.has("browser", "em") and not ds.has("browser", "ph")


def test_import_custom_data_and_consent_header_forms(tmp_path):
    text = ("event_name,event_time,custom_data.value,currency,custom_data_order_id,custom_data.coupon,"
            "consent_ad_storage,ad_user_data,consent.region\n"
            "Purchase,1700000000,12.50,EUR,o-1,SAVE10,TRUE,No,de\n")
    ds, db = _import(tmp_path, text)
    row = _rows(db, """SELECT value, currency, order_id, custom_data_extra, consent_ad_storage,
                       consent_ad_user_data, consent_region FROM browser_events""")
    assert row == [("12.50", "EUR", "o-1", '{"coupon":"SAVE10"}', "granted", "denied", "DE")]


def test_import_time_formats_seconds_ms_us_iso(tmp_path):
    text = ("event_name,event_time\n"
            "A,1700000000\n"
            "B,1700000000123\n"
            "C,1700000000123456\n"
            "D,2023-11-14T22:13:20Z\n"
            "E,2023-11-14T23:13:20+01:00\n"
            "F,2023-11-14 22:13:20\n"
            "G,99999999999\n")  # read as seconds (below the ms threshold): year 5138, implausible
    ds, db = _import(tmp_path, text)
    got = _rows(db, "SELECT event_name, event_time, event_time_raw_unit, event_time_tz_missing "
                    "FROM browser_events ORDER BY line")
    assert got == [
        ("A", 1700000000, "s", False), ("B", 1700000000, "ms", False), ("C", 1700000000, "us", False),
        ("D", 1700000000, "iso", False), ("E", 1700000000, "iso", False), ("F", 1700000000, "iso", True),
    ]
    rep = ds.inputs["browser"]["file_reports"][0]
    assert rep["time_formats"] == {"iso": 3, "ms": 1, "s": 1, "us": 1}
    assert rep["rejected_reasons"] == {"event_time_implausible": 1}
    assert rep["no_time_zone"] == 1


def test_import_assume_tz_applies_to_times_without_offset(tmp_path):
    ds, db = _import(tmp_path, "event_name,event_time\nA,2023-11-14 23:13:20\n", assume_tz="Europe/Berlin")
    assert _rows(db, "SELECT event_time FROM browser_events") == [(1700000000,)]


def test_import_unknown_time_zone_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        _import(tmp_path, "event_name,event_time\nA,1\n", assume_tz="Mars/Olympus")


def test_import_rejects_rows_with_reasons_and_lines(tmp_path):
    text = ("event_name,event_time\n"
            "A,1700000000\n"
            " ,1700000000\n"
            "B,\n"
            "C,yesterday\n"
            "D,946684799\n"
            "E,4102444801\n"
            "F,946684800\n")
    ds, db = _import(tmp_path, text)
    info = ds.inputs["browser"]
    assert (info["rows_read"], info["rows"], info["rejected_rows"]) == (7, 2, 5)
    assert info["rejected_reasons"] == {"event_name_empty": 1, "event_time_empty": 1, "event_time_unreadable": 1,
                                        "event_time_implausible": 2}
    examples = info["file_reports"][0]["rejected_examples"]
    assert [(e["line"], e["reason"]) for e in examples] == [
        (3, "event_name_empty"), (4, "event_time_empty"), (5, "event_time_unreadable"),
        (6, "event_time_implausible"), (7, "event_time_implausible")]
    assert _rows(db, "SELECT line FROM browser_events ORDER BY line") == [(2,), (8,)]


def test_import_multi_valued_cells_become_lists_without_empty_values(tmp_path):
    text = (f'event_name,event_time,em,ph\nA,1700000000,"[""{HA}"", """", ""{HB}""]",  \n'
            f'B,1700000000,"[]",{HC}\n')
    _, db = _import(tmp_path, text)
    assert _rows(db, "SELECT em, ph FROM browser_events ORDER BY line") == [([HA, HB], None), (None, [HC])]


def test_import_whitespace_only_event_id_is_missing_but_inner_spaces_kept(tmp_path):
    _, db = _import(tmp_path, 'event_name,event_id,event_time\nA,"  ",1700000000\nB," x ",1700000000\n')
    assert _rows(db, "SELECT event_id FROM browser_events ORDER BY line") == [(None,), (" x ",)]


def test_import_unknown_columns_kept_and_listed(tmp_path):
    ds, db = _import(tmp_path, "event_name,event_time,campaign\nA,1700000000,spring\n")
    assert ds.inputs["browser"]["unknown_columns"] == ["campaign"]
    assert _rows(db, "SELECT extra FROM browser_events") == [('{"campaign":"spring"}',)]


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_import_csv_delimiters(tmp_path, delim):
    text = delim.join(["event_name", "event_id", "event_time"]) + "\n" + delim.join(["A", "1", "1700000000"]) + "\n"
    ds, db = _import(tmp_path, text)
    assert _rows(db, "SELECT event_name, event_id FROM browser_events") == [("A", "1")]
    assert ds.inputs["browser"]["file_reports"][0]["delimiter"] == delim


def test_import_csv_quoted_fields_and_bom(tmp_path):
    text = '\ufeffevent_name,event_id,event_time,event_source_url\n"Purchase","a,b",1700000000,"https://x/?a=1,2"\n'
    _, db = _import(tmp_path, text)
    assert _rows(db, "SELECT event_name, event_id, event_source_url FROM browser_events") == [
        ("Purchase", "a,b", "https://x/?a=1,2")]


def test_import_csv_gz(tmp_path):
    data = gzip.compress(b"event_name,event_time\nA,1700000000\n")
    ds, db = _import(tmp_path, data, bname="b.csv.gz")
    assert ds.inputs["browser"]["rows"] == 1


def test_import_utf16_with_bom(tmp_path):
    # ct, not fn: a raw first name is stored masked (capi_diag.engine.pii)
    data = "event_name,event_time,ct\nA,1700000000,Zoë\n".encode("utf-16")
    ds, db = _import(tmp_path, data)
    assert _rows(db, "SELECT ct FROM browser_events") == [(["Zoë"],)]


def test_import_windows_1252_decoded_with_warning(tmp_path):
    data = "event_name,event_time,ct\nA,1700000000,Zürich €\n".encode("cp1252")
    ds, db = _import(tmp_path, data)
    assert _rows(db, "SELECT ct FROM browser_events") == [(["Zürich €"],)]
    rep = ds.inputs["browser"]["file_reports"][0]
    assert rep["encoding"] == "windows-1252"
    assert any("Windows-1252" in w for w in rep["warnings"])


def test_import_csv_malformed_row_counted_not_lost(tmp_path):
    ds, db = _import(tmp_path, "event_name,event_time\nA,1700000000\nB,1700000000,extra,cols\nC,1700000000\n")
    info = ds.inputs["browser"]
    assert (info["rows_read"], info["rows"], info["rejected_reasons"]) == (3, 2, {"malformed_row": 1})


def test_import_jsonl_nested_capi_shape(tmp_path):
    ev = {"event_name": "Purchase", "event_id": "00123", "event_time": 1700000000123,
          "action_source": "website",
          "user_data": {"em": [HA, HB], "fbp": "fb.1.1700000000000.1", "client_ip_address": "1.2.3.4"},
          "custom_data": {"value": 100.2, "currency": "USD", "contents": [{"id": "p1", "quantity": 1}]},
          "consent": {"ad_storage": "granted", "ad_user_data": "denied", "region": "fr"},
          "sent_at": "2023-11-14T22:13:30Z"}
    ds, db = _import(tmp_path, SERVER_CSV, json.dumps(ev) + "\n", sname="s.jsonl")
    row = _rows(db, """SELECT event_id, event_time, event_time_raw_unit, action_source, em, fbp, value, currency,
        contents, consent_ad_storage, consent_ad_user_data, consent_region, sent_at FROM server_events""")
    assert row == [("00123", 1700000000, "ms", "website", [HA, HB], ["fb.1.1700000000000.1"], "100.2", "USD",
                    '[{"id":"p1","quantity":1}]', "granted", "denied", "FR", 1700000010)]
    assert ds.has("server", "sent_at") and ds.has("server", "consent_ad_storage")


def test_import_jsonl_request_body_lines_expand_with_test_code(tmp_path):
    body = {"data": [{"event_name": "A", "event_time": 1700000000, "event_id": "1"},
                     {"event_name": "B", "event_time": 1700000001, "event_id": "2"}],
            "test_event_code": "TEST123"}
    text = json.dumps(body) + "\n\n" + json.dumps({"event_name": "C", "event_time": 1700000002}) + "\n"
    ds, db = _import(tmp_path, SERVER_CSV, text, sname="s.jsonl")
    assert _rows(db, "SELECT line, event_name, test_event_code FROM server_events ORDER BY line, event_name") == [
        (1, "A", "TEST123"), (1, "B", "TEST123"), (3, "C", None)]


def test_import_jsonl_invalid_lines_rejected_with_line(tmp_path):
    text = '{"event_name":"A","event_time":1700000000}\nnot json\n{"event_name":"B","event_time":1700000000}\n'
    ds, _ = _import(tmp_path, SERVER_CSV, text, sname="s.jsonl")
    rep = ds.inputs["server"]["file_reports"][0]
    assert rep["rejected_reasons"] == {"malformed_row": 1}
    assert rep["rejected_examples"][0]["line"] == 2


def test_import_parquet_nested_and_flat(tmp_path):
    p = tmp_path / "s.parquet"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'Purchase' AS event_name, '007' AS event_id, 1700000000::BIGINT AS event_time,
        {{'em': ['{HA}'], 'fbp': 'fb.1.1.1'}} AS user_data, 12.5 AS "custom_data.value"
        ) TO '{p}' (FORMAT parquet)""")
    db = Database()
    b = _write(tmp_path, "b.csv", SERVER_CSV)
    ds = import_logs(db, browser=[b], server=[str(p)])
    assert _rows(db, "SELECT line, event_id, event_time, em, fbp, value FROM server_events") == [
        (1, "007", 1700000000, [HA], ["fb.1.1.1"], "12.5")]
    assert ds.inputs["server"]["file_reports"][0]["format"] == "parquet"


def test_import_several_files_per_role_keep_file_order(tmp_path):
    db = Database()
    b1 = _write(tmp_path, "b1.csv", "event_name,event_time\nA,1700000000\n")
    b2 = _write(tmp_path, "b2.csv", "event_name,event_time\nB,1700000000\nC,1700000001\n")
    s = _write(tmp_path, "s.csv", SERVER_CSV)
    ds = import_logs(db, browser=[b1, b2], server=[s])
    assert _rows(db, "SELECT file_index, line, event_name FROM browser_events ORDER BY file_index, line") == [
        (0, 2, "A"), (1, 2, "B"), (1, 3, "C")]
    assert ds.inputs["browser"]["files"] == ["b1.csv", "b2.csv"]  # names only, never the server's folders
    assert ds.inputs["browser"]["rows"] == 3


def test_import_uploaded_bytes_without_temp_files(tmp_path):
    db = Database()
    ds = import_logs(db, browser=[Source("upload.csv", data=b"event_name,event_time\nA,1700000000\n")],
                     server=[Source("s.jsonl", data=b'{"event_name":"A","event_time":1700000000}\n')])
    assert ds.inputs["browser"]["rows"] == 1 and ds.inputs["server"]["rows"] == 1
    fs = db.memory_fs
    assert fs.find("/capi-diag") == []  # uploads are removed from memory once imported


def test_import_db_file_keeps_data(tmp_path):
    path = tmp_path / "x.duckdb"
    db = Database(path)
    b = _write(tmp_path, "b.csv", "event_name,event_time\nA,1700000000\n")
    import_logs(db, browser=[b], server=[b])
    db.close()
    from capi_diag.engine.dataset import Dataset
    with Database(path) as db2:
        ds = Dataset.load(db2)
        assert ds.rows("browser") == 1 and ds.has("server", "event_time")


# -- unusable files: one clear IngestError -----------------------------------------------------------

@pytest.mark.parametrize("content,needle", [
    (b"", "is empty"),
    (b"   \n\n", "is empty"),
    (b"event_name,event_time\n", "no data rows"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a text file"),
    (b"Purchase,1700000000\nLead,1700000001\n", "no column maps to event_name or event_time"),
    (b"evnt_name,event_tme\nA,1\n", "event_name: rename a column to one of event_name, event, eventName "
                                     "(closest: 'evnt_name')"),
    (b"event_name,event_time\nA,never\nB,\n", "every row was rejected"),
])
def test_import_unusable_file_raises_clear_error(tmp_path, content, needle):
    with pytest.raises(IngestError) as exc:
        _import(tmp_path, content)
    msg = str(exc.value)
    assert needle in msg
    assert "b.csv" in msg and "\n" not in msg


def test_import_missing_file_and_folder(tmp_path):
    db = Database()
    s = _write(tmp_path, "s.csv", SERVER_CSV)
    with pytest.raises(IngestError, match="file not found"):
        import_logs(db, browser=[str(tmp_path / "nope.csv")], server=[s])
    with pytest.raises(IngestError, match="is a folder"):
        import_logs(db, browser=[str(tmp_path)], server=[s])


def test_import_broken_parquet_is_unusable(tmp_path):
    with pytest.raises(IngestError, match="not a readable Parquet file"):
        _import(tmp_path, b"PAR1garbage-garbage", bname="b.parquet")


# -- the CLI: exit 2 with one line, no traceback -----------------------------------------------------

def _cli(*args: str):
    return subprocess.run([sys.executable, "-m", "capi_diag", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


@pytest.mark.parametrize("content", [b"", b"event_name,event_time\n", b"\x00\x01\x02binary"])
def test_cli_report_unusable_file_exit_2_one_line(tmp_path, content):
    b = _write(tmp_path, "b.csv", content)
    s = _write(tmp_path, "s.csv", SERVER_CSV)
    r = _cli("report", "--browser", b, "--server", s)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "b.csv" in r.stderr


def test_cli_usage_error_exit_2_one_line():
    r = _cli("report", "--server", "x.csv")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--browser" in r.stderr


def test_cli_report_json_has_inputs(tmp_path):
    b = _write(tmp_path, "b.csv", "event_name,event_id,event_time\nPurchase,1,1700000000\n,2,1700000000\n")
    s = _write(tmp_path, "s.csv", SERVER_CSV)
    out = tmp_path / "r.json"
    r = _cli("report", "--browser", b, "--server", s, "--output", str(out))
    assert r.returncode in (0, 1), r.stderr
    rep = json.loads(out.read_text())
    assert rep["schema_version"] == 1 and "generated_at" in rep
    assert rep["inputs"]["browser"]["rows_read"] == 2
    assert rep["inputs"]["browser"]["rows"] == 1
    assert rep["inputs"]["browser"]["rejected_reasons"] == {"event_name_empty": 1}


# -- regressions found by the hostile-file generator (tests/hardening/test_hostile_files.py) ----------------

def _reasons(ds, role="browser"):
    info = ds.inputs[role]
    return info["rows_read"], info["rows"], info["rejected_reasons"]


def test_import_huge_event_time_numbers_are_implausible_not_a_crash(tmp_path):
    text = ("event_name,event_time\nA,1700000000\nB,99999999999999999999999999999\nC,1e300\nD,-1e300\n"
            "E,1794873602000000000\n")
    ds, _ = _import(tmp_path, text)
    assert _reasons(ds) == (5, 1, {"event_time_implausible": 4})


def test_import_quote_left_open_on_the_last_line_keeps_quoted_newlines(tmp_path):
    # the sniffer, seeing the open quote, would pick "no quote" and split the quoted newline in two
    text = 'event_name,event_time,value\n"two\nlines",1700000000,"a,b"\nB,1700000001,1\nC,"1700000002,x\n'
    ds, db = _import(tmp_path, text)
    assert _reasons(ds)[:2] == (3, 2)
    assert _rows(db, "SELECT event_name, value FROM browser_events ORDER BY line") == [("two\nlines", "a,b"),
                                                                                      ("B", "1")]


def test_import_utf16_csv_with_lone_cr_line_ends(tmp_path):
    text = "event_name|event_time|value\rLead|1700000000|\"a\rb\"\rPurchase|1700000001|2\r"
    ds, db = _import(tmp_path, text.encode("utf-16"))
    assert _reasons(ds) == (2, 2, {})
    assert ds.inputs["browser"]["file_reports"][0]["encoding"] == "utf-16"
    assert _rows(db, "SELECT value FROM browser_events ORDER BY line") == [("a\rb",), ("2",)]


def test_import_jsonl_with_a_bom_reads_its_first_line(tmp_path):
    text = '\ufeff{"event_name": "A", "event_time": 1700000000}\n{"event_name": "B", "event_time": 1700000001}\n'
    ds, _ = _import(tmp_path, text.encode("utf-8"), bname="b.jsonl")
    assert _reasons(ds) == (2, 2, {})


def test_import_jsonl_without_any_event_is_one_clear_error(tmp_path):
    with pytest.raises(IngestError, match=r"browser log 'b.jsonl': has .*no data rows"):
        _import(tmp_path, "\ufeff\n".encode("utf-16"), bname="b.jsonl")


def test_import_sniffed_delimiter_missing_from_the_header_uses_the_headers(tmp_path):
    body = "".join(f"E{i}\t1700000000\t{i},{i}\n" for i in range(5))
    ds, db = _import(tmp_path, "event_name\tevent_time\tvalue\n" + body)
    assert _reasons(ds) == (5, 5, {})
    assert _rows(db, "SELECT value FROM browser_events ORDER BY line LIMIT 1") == [("0,0",)]


def test_detect_encoding_counts_control_bytes_but_not_tab_cr_lf_ff():
    from capi_diag.io.ingest import detect_encoding

    assert detect_encoding("x.csv", b"\x01" * 5 + b"a" * 95) == "utf-8"  # 5%: still text
    assert detect_encoding("x.csv", b"\t\r\n\f" * 50 + b"a") == "utf-8"  # whitespace is not a control
    assert detect_encoding("x.csv", b"\xe9t\xe9,caf\xe9\n" * 3) == "windows-1252"
    for head in (b"\x01" * 6 + b"a" * 94, b"\x1b" * 6 + b"a" * 94, b"\x0b" * 6 + b"a" * 94):
        with pytest.raises(IngestError, match="control bytes found"):
            detect_encoding("x.csv", head)
