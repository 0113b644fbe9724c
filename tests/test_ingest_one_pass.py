"""The one-pass CSV import: canonical rows straight from DuckDB's reader (no raw copy of the file),
with the row ids, line numbers and rejected rows the two-step import (a ``_capi_raw`` table) gave."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from capi_diag.engine.db import Database
from capi_diag.io.ingest import accepted_headers, import_logs

BROWSER_CSV = "event_name,event_id,event_time\nPurchase,1,1700000000\n"
# quoted newlines (one and two), a row with too few and one with too many cells (malformed: skipped by
# the reader, listed in its rejects table), an empty and an implausible event_time
SERVER_CSV = ('event_name,event_time,event_id,em\n'
              'Purchase,1700000000,a,"x\ny"\n'
              'Purchase,1700000001\n'
              'Lead,,b,z\n'
              'Purchase,1700000002,c,d,e\n'
              'Lead,1700000003,"q\n\nr",w\n'
              'Lead,17,e,f\n'
              'Lead,1700000004,g,h\n')


class RecordingDatabase(Database):
    """A real DuckDB database that keeps the SQL of every statement it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: list[str] = []
        self.params: list = []

    def execute(self, sql, params=None):
        self.statements.append(sql)
        return super().execute(sql, params)

    def fetchall(self, sql, params=None):
        self.statements.append(sql)
        self.params.append(params)
        return super().fetchall(sql, params)


def _files(tmp_path):
    b, s = tmp_path / "b.csv", tmp_path / "s.csv"
    b.write_text(BROWSER_CSV, encoding="utf-8")
    s.write_text(SERVER_CSV, encoding="utf-8")
    return str(b), str(s)


def test_csv_import_reads_the_file_into_the_canonical_table_without_a_raw_copy(tmp_path):
    b, s = _files(tmp_path)
    db = RecordingDatabase()
    import_logs(db, browser=[b], server=[s])
    created = re.findall(r"CREATE (?:OR REPLACE )?(?:TEMP )?(TABLE|VIEW) (\w+)", "\n".join(db.statements))
    # per file: the stage is a view over the reader, the canonical table the one table made from it
    assert created.count(("VIEW", "_capi_stage")) == 2
    assert created.count(("TABLE", "_capi_canon")) == 2
    assert {name for _, name in created if name.startswith("_capi")} == {"_capi_stage", "_capi_canon"}
    assert not [q for q in db.statements if "_capi_raw" in q]
    stage = [q for q in db.statements if q.lstrip().startswith("CREATE OR REPLACE TEMP VIEW _capi_stage")]
    assert all("read_csv(" in q and "row_number()" not in q for q in stage)  # a window would parse on one thread
    # the rows are numbered by the canonical table's row ids (the reader keeps the file's order)
    assert [q for q in db.statements if q.startswith("UPDATE")] == [
        "UPDATE _capi_canon SET row_id = rowid + 0, line = rowid + 2"] * 2
    # the only statements that scan the data: one canonical parse per file, and the malformed lines'
    # insert (from the reader's rejects table) for the server file
    canon = [q for q in db.statements if "_capi_canon AS" in q]
    assert len(canon) == 2 and all("FROM _capi_stage" in q for q in canon)
    inserts = [q for q in db.statements if q.startswith("INSERT INTO _capi_canon")]
    assert len(inserts) == 1 and "FROM _capi_rej" in inserts[0]
    tables = {r[0] for r in db.fetchall("SELECT table_name FROM information_schema.tables")}
    assert {t for t in tables if t.startswith("_capi")} == set()


def test_csv_import_line_numbers_of_rejected_and_loaded_rows_unchanged(tmp_path):
    b, s = _files(tmp_path)
    db = Database()
    ds = import_logs(db, browser=[b], server=[s])
    rep = ds.inputs["server"]["file_reports"][0]
    assert (rep["rows_read"], rep["rows_loaded"], rep["rows_rejected"]) == (7, 3, 4)
    assert rep["rejected_reasons"] == {"malformed_row": 2, "event_time_empty": 1, "event_time_implausible": 1}
    # the numbers the two-step import gave: ``line`` of a parsed row is its read position + 2 (malformed
    # rows and quoted newlines not counted), that of a malformed row DuckDB's record number
    assert [(e["line"], e["reason"], e["event_name"], e["event_time"]) for e in rep["rejected_examples"]] == [
        (3, "event_time_empty", "Lead", None), (3, "malformed_row", None, None),
        (5, "event_time_implausible", "Lead", "17"), (5, "malformed_row", None, None)]
    assert db.fetchall("SELECT row_id, line, event_id, event_time FROM server_events ORDER BY row_id") == [
        (0, 2, "a", 1700000000), (2, 4, "q\n\nr", 1700000003), (4, 6, "g", 1700000004)]


def test_csv_import_second_file_does_not_inherit_malformed_lines_of_the_first(tmp_path):
    """DuckDB appends to its rejects table across scans: each file's malformed lines are its own."""
    b, s = _files(tmp_path)
    clean = tmp_path / "clean.csv"
    clean.write_text("event_name,event_time,event_id\nPurchase,1700000000,a\nLead,1700000003,e\n", encoding="utf-8")
    db = Database()
    ds = import_logs(db, browser=[s, str(clean)], server=[str(clean), s, s])
    b_reps = ds.inputs["browser"]["file_reports"]
    s_reps = ds.inputs["server"]["file_reports"]
    assert [r["rejected_reasons"].get("malformed_row", 0) for r in b_reps] == [2, 0]
    assert [r["rejected_reasons"].get("malformed_row", 0) for r in s_reps] == [0, 2, 2]
    assert [r["rows_read"] for r in s_reps] == [2, 7, 7]
    assert db.fetchall("SELECT row_id, line, file_index, event_id FROM server_events ORDER BY row_id") == [
        (0, 2, 0, "a"), (1, 3, 0, "e"), (2, 2, 1, "a"), (4, 4, 1, "q\n\nr"), (6, 6, 1, "g"),
        (9, 2, 2, "a"), (11, 4, 2, "q\n\nr"), (13, 6, 2, "g")]


def _operators(plan: list[dict]) -> set[str]:
    names: set[str] = set()
    for node in plan:
        names.add(node["name"])
        names |= _operators(node.get("children", []))
    return names


def test_csv_canonical_parse_keeps_the_readers_row_order_on_every_field(tmp_path):
    """The rows are numbered by the canonical table's row ids, which are the file's order only when the
    canonical SELECT streams the reader's rows through projections: a join (DuckDB plans an IN list of
    five or more values as one), a window or a sort would reorder or serialize them."""
    headers = sorted(set(accepted_headers().values()))
    body = ",".join(headers) + "\n" + ",".join(
        {"event_name": "Purchase", "event_time": "1700000000", "sent_at": "2023-11-14T22:13:20Z"}.get(h, "yes")
        for h in headers) + "\n"
    b, s = _files(tmp_path)
    full = tmp_path / "full.csv"
    full.write_text(body, encoding="utf-8")
    db = RecordingDatabase()
    ds = import_logs(db, browser=[b], server=[str(full)])
    assert set(ds.inputs["server"]["file_reports"][0]["mapping"]) == set(headers)
    view = [q for q in db.statements if q.lstrip().startswith("CREATE OR REPLACE TEMP VIEW _capi_stage")][-1]
    canon = [q for q in db.statements if "_capi_canon AS" in q][-1]
    db.execute(view)  # the import dropped it; the macros stay on the connection
    plan = json.loads(db.fetchone("EXPLAIN (FORMAT json) " + canon.split(" AS ", 1)[1])[1])
    assert _operators(plan) == {"PROJECTION", "READ_CSV"}


def test_in_memory_role_tables_store_only_columns_with_a_value(tmp_path, monkeypatch):
    """In memory, each role's table keeps only the columns holding a value (``<role>_stored``) and the
    role's name is a view with the canonical columns, the empty ones as typed NULLs; a second import
    into the same database replaces both; a database file keeps the plain table, and so does a log
    under NARROW_MIN_ROWS rows."""
    from capi_diag.core.schema import canonical_columns
    from capi_diag.io import ingest

    server = tmp_path / "server.csv"
    server.write_text("event_name,event_id,event_time,em,value\n"
                      "Purchase,a,1700000000,,10\nLead,b,1700000100,,\n")
    browser = tmp_path / "browser.csv"
    browser.write_text("event_name,event_id,event_time\nPurchase,a,1700000001\n")
    with Database() as db:
        import_logs(db, browser=[browser], server=[server])  # 2 rows: under NARROW_MIN_ROWS, kept whole
        assert not db.fetchall("SELECT view_name FROM duckdb_views() WHERE NOT internal")
    monkeypatch.setattr(ingest, "NARROW_MIN_ROWS", 1)
    with Database() as db:
        for _ in range(2):  # the second import replaces the view and its stored table
            import_logs(db, browser=[browser], server=[server])
            views = {r[0] for r in db.fetchall("SELECT view_name FROM duckdb_views() WHERE NOT internal")}
            assert {"server_events", "browser_events"} <= views
            stored = [r[0] for r in db.fetchall("SELECT column_name FROM (DESCRIBE server_events_stored)")]
            assert "value" in stored and "em" not in stored and "zp" not in stored  # em: header, no value
            described = db.fetchall("SELECT column_name, column_type FROM (DESCRIBE server_events)")
            described = [(r[0], r[1]) for r in described]
            assert described == canonical_columns()
            assert db.fetchall("SELECT event_id, value, em, zp FROM server_events ORDER BY row_id") == [
                ("a", "10", None, None), ("b", None, None, None)]
    with Database(tmp_path / "logs.duckdb") as db:
        import_logs(db, browser=[browser], server=[server])
        assert not db.fetchall("SELECT view_name FROM duckdb_views() WHERE NOT internal")
        assert db.fetchone("SELECT count(*) FROM server_events")[0] == 2


def test_blank_cell_shortcut_agrees_with_the_blank_pattern():
    """``capi_text`` / ``capi_list`` answer most cells by their first character (above the space: not
    blank) before the blank pattern runs; on every kind of first character they agree with the
    pattern alone (RE2's ``\\s``: ASCII whitespace; a no-break space or a control character is text)."""
    from capi_diag.io.ingest import MACROS

    cells = ["", " ", "  ", "\t", "\n", "\r\n", "\f", " \t x", "x", " x", "\x0b", "\x01", "\x1f ",
             "\u00a0", "\u3000", "!", "[]", " [\"a\"] ", "[\"\", \" \"]", "é", "😀"]
    db = Database()
    try:
        for stmt in MACROS.strip().split(";"):
            if stmt.strip():
                db.execute(stmt)
        db.execute("CREATE TABLE c (i INTEGER, s VARCHAR)")
        for i, s in enumerate([*cells, None]):
            db.execute("INSERT INTO c VALUES (?, ?)", [i, s])
        rows = db.fetchall("""SELECT s, capi_text(s),
                   CASE WHEN s IS NULL OR regexp_full_match(s, '\\s*') THEN NULL ELSE s END,
                   capi_list(s), len(capi_list(s)) FROM c ORDER BY i""")
    finally:
        db.close()
    for s, text, plain, lst, n in rows:
        assert text == plain, repr(s)
        if s in (None, "[]", "[\"\", \" \"]") or (s is not None and not s.strip(" \t\n\r\f")):
            assert lst is None, repr(s)
        elif s == " [\"a\"] ":
            assert lst == ["a"]
        else:
            assert (lst, n) == ([s], 1), repr(s)
    # the cells the pattern calls blank, exactly
    assert [s for s, text, *_ in rows if s is not None and text is None] == [
        "", " ", "  ", "\t", "\n", "\r\n", "\f"]


def test_import_learns_multi_valued_columns_in_its_column_count_scan(tmp_path):
    """The in-memory import's scan that counts each column's values also finds the list columns with
    a cell holding several values: no second aggregate over the table, the same answer."""
    from capi_diag.engine.dataset import multi_valued

    b = tmp_path / "b.jsonl"
    s = tmp_path / "s.jsonl"
    b.write_text(json.dumps({"event_name": "Lead", "event_id": "1", "event_time": 1700000000,
                             "fbp": "fb.1.1.1"}) + "\n", encoding="utf-8")
    rows = [{"event_name": "Lead", "event_id": "1", "event_time": 1700000000,
             "user_data": {"em": ["a" * 64, "b" * 64], "ph": ["c" * 64], "fbp": "fb.1.1.1"}},
            {"event_name": "Lead", "event_id": "2", "event_time": 1700000001,
             "user_data": {"em": "d" * 64, "external_id": ["x", "y", "z"]}}]
    s.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    db = RecordingDatabase()
    try:
        ds = import_logs(db, browser=[str(b)], server=[str(s)])
        assert ds.multi == {"browser": frozenset(), "server": frozenset({"em", "external_id"})}
        lengths = [q for q in db.statements if "max(len(" in q]
        assert len(lengths) == 2 and all("count(*), count(" in q for q in lengths)
        assert multi_valued(db, ds.present) == ds.multi  # the separate aggregate agrees
    finally:
        db.close()


def test_large_csv_sniffed_on_its_head_reads_like_the_whole_file(tmp_path, monkeypatch):
    """A CSV over SNIFF_HEAD_BYTES is sniffed on its first lines; when they settle the common dialect
    (here a quoted user agent on every row), a quoted delimiter and a doubled quote met only after the
    head still parse, and the rows are those of the whole file."""
    from capi_diag.io import ingest

    line = 'Purchase,{t},id{i},"Mozilla/5.0 (X11; Linux x86_64, like Gecko)"\n'
    rows = 2 * ingest.SNIFF_HEAD_BYTES // len(line.format(t=1700000000, i=0)) + 100
    body = "".join(line.format(t=1700000000 + i, i=i) for i in range(rows))
    s = tmp_path / "s.csv"
    s.write_text("event_name,event_time,event_id,client_user_agent\n" + body
                 + 'Lead,1800000000,"late, quoted ""id""",x\n', encoding="utf-8")
    assert s.stat().st_size > 2 * ingest.SNIFF_HEAD_BYTES
    b = tmp_path / "b.csv"
    b.write_text(BROWSER_CSV, encoding="utf-8")
    private = tmp_path / "tmp"  # a database made directly has no private folder: the temp folder
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    db = RecordingDatabase()
    try:
        import_logs(db, browser=[str(b)], server=[str(s)])
        n, late, ua = db.fetchone("SELECT count(*), max(event_id) FILTER (event_name = 'Lead'), "
                                  "max(client_user_agent[1]) FROM server_events")
    finally:
        db.close()
    assert (n, late, ua) == (rows + 1, 'late, quoted "id"', "x")
    sniffs = [q for q in db.statements if "sniff_csv" in q]
    assert len(sniffs) == 2  # one per file: the server log's head settled it
    heads = [p[0] for p in db.params if p and str(p[0]).startswith(str(private))]
    assert len(heads) == 1 and Path(heads[0]).name.startswith("capi-sniff-")
    assert list(private.iterdir()) == []  # the head's copy (owner-only) is gone


def test_large_csv_whose_head_is_not_the_common_dialect_is_sniffed_whole(tmp_path):
    """A head whose dialect is not the common one is sniffed again on the whole sample, as before the
    head was tried: a backslash escape, and a head without any quote (the sniffer then says "no
    quote", which the head cannot settle for the rest of the file)."""
    from capi_diag.io import ingest

    cases = {
        "escape": ("event_name;event_time;event_id;em\n", 'Purchase;{t};"id\\"{i}";x\n', ""),
        "no_quote": ("event_name,event_time,event_id,em\n", "Purchase,{t},id{i},x\n",
                     'Lead,1800000000,"late, quoted ""id""",x\n'),
    }
    for name, (header, line, tail) in cases.items():
        rows = 2 * ingest.SNIFF_HEAD_BYTES // len(line.format(t=1700000000, i=0)) + 100
        s = tmp_path / f"{name}.csv"
        s.write_text(header + "".join(line.format(t=1700000000 + i, i=i) for i in range(rows)) + tail,
                     encoding="utf-8")
        b = tmp_path / "b.csv"
        b.write_text(BROWSER_CSV, encoding="utf-8")
        db = RecordingDatabase()
        try:
            ds = import_logs(db, browser=[str(b)], server=[str(s)])
            first, last = db.fetchone("SELECT min_by(event_id, row_id), max_by(event_id, row_id) "
                                      "FROM server_events")
        finally:
            db.close()
        assert len([q for q in db.statements if "sniff_csv" in q]) == 3, name  # browser; head, whole
        if name == "escape":
            assert (ds.inputs["server"]["rows"], first) == (rows, 'id"0')
        else:
            assert (ds.inputs["server"]["rows"], last) == (rows + 1, 'late, quoted "id"')
