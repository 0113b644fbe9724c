"""A generator of broken and hostile log files that knows what a correct reader must see.

Each :class:`HostileFile` carries its bytes, its name and the generator's own account of its data
rows: how many there are (``rows``), and for each reason the import may reject a row
(:data:`capi_diag.io.ingest.REJECT_REASONS`) how many carry it (``rejected``); the rest are good rows.
``refuse`` marks files no correct reader can use (empty, header only, binary, a truncated gzip, no
good row): the import must stop with one clear :class:`~capi_diag.core.errors.CapiDiagError`.

The strategies (``hypothesis``) mix: CSV with ``,``/``;``/tab/``|`` delimiters, LF/CRLF/lone-CR line
ends, a BOM, UTF-16, Latin-1/Windows-1252 text, quoted newlines and delimiters, a stray or unclosed
quote, too many cells, duplicate and empty headers, headers carrying SQL or markup; JSON Lines with
broken lines, non-object lines, request bodies (``{"data": [...]}``), values nested 1,000 deep,
numbers as strings; Parquet with unexpected column types; ``event_time`` as seconds, ms, µs, ISO-8601
(with or without an offset), negative, zero, year 9999, huge integers, ``NaN``/``Infinity``,
non-ASCII digits; ``value`` as ``NaN``/``Infinity``/huge integers; raw emails and phones.
"""

from __future__ import annotations

import decimal
import gzip
import io
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

GOOD_SECONDS = (946_684_800, 4_102_444_799)
STANDARD = ("Purchase", "PageView", "Lead", "AddToCart", "ViewContent")
HOSTILE_TEXT = (
    "'; DROP TABLE server_events; --", "<script>alert(1)</script>", "=cmd|' /C calc'!A0", "\"quoted\"",
    "Ünïcödé 名前", "a,b;c|d\te", "line\nbreak", "cr\rinside", "emoji 🎉", "{{Email}}", "NULL", "\\N",
)
HOSTILE_HEADERS = ("'; DROP TABLE x; --", "<img src=x onerror=alert(1)>", "a\"b", "select * from t", "${jndi:x}",
                   "名前", "#", "1", "user_data.em.extra")


ANY_REASON = "*"
"""A row that must be rejected, for a reason a correct reader may judge either way."""


@dataclass
class Row:
    event_name: Any  # str, None (missing) or a non-str for JSON/Parquet
    event_time: Any
    extra: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # the reject reason a correct reader must give, None = good


@dataclass
class HostileFile:
    name: str
    data: bytes
    kind: str
    rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    refuse: bool = False

    @property
    def good(self) -> int:
        return self.rows - sum(self.rejected.values())


# -- event_time values, by what a correct reader must make of them ----------------------------------------

def _seconds() -> st.SearchStrategy[int]:
    return st.integers(*GOOD_SECONDS)


GOOD_TIMES = st.one_of(
    _seconds().map(str),
    _seconds().map(lambda s: f"{s}.5"),
    st.tuples(_seconds(), st.integers(0, 999)).map(lambda t: str(t[0] * 1000 + t[1])),
    st.tuples(_seconds(), st.integers(0, 999_999)).map(lambda t: str(t[0] * 1_000_000 + t[1])),
    st.sampled_from(["2026-11-17T00:00:01Z", "2026-11-17T02:00:01+02:00", "2026-11-17 00:00:01",
                     "2001-01-01T00:00:00.123456Z", " 1794873602 ", "+1794873602"]),
)
BAD_TIMES: dict[str, st.SearchStrategy[Any]] = {
    "event_time_empty": st.sampled_from(["", "   ", "\t"]),
    "event_time_unreadable": st.sampled_from([
        "NaN", "Infinity", "-Infinity", "inf", "nan", "abc", "١٧٩٤٨٧٣٦٠٢", "１７９４８７３６０２", "12:00",
        "2026-13-45T00:00:00Z", "0x6A5B3C02", "1,794,873,602", "1794873602s", "--5", "infinity",
        "1e", "∞", "2026-11-17T25:00:00Z", "1794873602 1794873603",
    ]),
    "event_time_implausible": st.one_of(
        st.sampled_from(["0", "-1", "-1794873602", "1", "946684799", "4102444801", "9999-12-31T23:59:59Z",
                         "1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2100-01-01T00:00:01Z",
                         "1e300", "-1e300", "99999999999999999999999999999999",
                         "1794873602000000000", "-0", "0.0", "1E5"]),
        st.integers(min_value=10 ** 20, max_value=10 ** 40).map(str),
        st.integers(min_value=-(10 ** 40), max_value=-1).map(str),
    ),
}


@st.composite
def rows(draw, min_size: int = 0, max_size: int = 12) -> list[Row]:
    n = draw(st.integers(min_size, max_size))
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from(["good", "good", "good", "event_name_empty", "event_time_empty",
                                     "event_time_unreadable", "event_time_implausible"]))
        name = draw(st.one_of(st.sampled_from(STANDARD), st.sampled_from(HOSTILE_TEXT),
                              st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zs", "Zl", "Zp"]),
                                      min_size=1, max_size=8)))
        time = draw(GOOD_TIMES)
        reason = None
        if kind == "event_name_empty":
            name, reason = draw(st.sampled_from(["", "  ", "\t"])), kind
            if draw(st.booleans()):
                time = draw(st.sampled_from(["", "abc", "0"]))  # the first reason wins
        elif kind != "good":
            time, reason = draw(BAD_TIMES[kind]), kind
        extra = {
            # a NUL byte marks a binary file (refused, see test_ingest): never in a text cell here
            "event_id": draw(st.one_of(st.text(st.characters(exclude_characters="\x00"), max_size=6),
                                       st.sampled_from(["00123", "1e5", "NaN", "-0"]))),
            "em": draw(st.one_of(st.emails(), st.just(""), st.sampled_from(["John.Doe@Example.com", "a" * 64]))),
            "ph": draw(st.sampled_from(["+33 6 12 34 56 12", "(555) 867-5309", "", "null"])),
            "value": draw(st.sampled_from(["129.95", "129,95", "NaN", "Infinity", "-Infinity",
                                           "99999999999999999999999999999", "1e309", "", "0"])),
        }
        out.append(Row(name, time, extra, reason))
    return out


def _account(rs: list[Row]) -> tuple[int, dict[str, int]]:
    rejected: dict[str, int] = {}
    for r in rs:
        if r.reason:
            rejected[r.reason] = rejected.get(r.reason, 0) + 1
    return len(rs), rejected


# -- CSV ---------------------------------------------------------------------------------------------------

def _csv_cell(value: Any, delim: str) -> str:
    text = "" if value is None else str(value)
    if any(c in text for c in (delim, '"', "\n", "\r")) or text != text.strip(" ") and text.strip() == "":
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def csv_files(draw) -> HostileFile:
    rs = draw(rows())
    delim = draw(st.sampled_from([",", ";", "\t", "|"]))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]))
    headers = ["event_name", "event_time", "event_id", "em", "ph", "value"]
    extra_headers = draw(st.lists(st.sampled_from([*HOSTILE_HEADERS, "", "value", "em"]), max_size=3))
    headers += extra_headers
    lines = [delim.join(_csv_cell(h, delim) for h in headers)]
    account_rows = list(rs)
    for r in rs:
        cells = [r.event_name, r.event_time, r.extra["event_id"], r.extra["em"], r.extra["ph"], r.extra["value"]]
        cells += [draw(st.sampled_from(HOSTILE_TEXT)) for _ in extra_headers]
        lines.append(delim.join(_csv_cell(c, delim) for c in cells))
    # rows a reader must reject as malformed: too many cells, a quote opened and never closed (last row)
    n_bad = draw(st.integers(0, 2)) if rs else 0
    for _ in range(n_bad):
        pos = draw(st.integers(1, len(lines)))
        cells = ["Purchase", "1794873602"] + ["x"] * (len(headers) - 2) + ["surplus", "cells"]
        lines.insert(pos, delim.join(cells))
        account_rows.append(Row("Purchase", "1794873602", reason="malformed_row"))
    unclosed = bool(rs) and draw(st.integers(0, 3)) == 0
    if unclosed:
        lines.append(delim.join(["Purchase", '"1794873602'] + ["x"] * (len(headers) - 2)))
        # DuckDB reads a quote left open at the end of the file to its end: the row is rejected, as
        # malformed or for its unreadable event_time, either way counted
        account_rows.append(Row("Purchase", "1794873602", reason=ANY_REASON))
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    data = _encode(text, encoding)
    total, rejected = _account(account_rows)
    hf = HostileFile(draw(st.sampled_from(["log.csv", "log.tsv", "log.txt", "weird name (1).csv"])), data,
                     f"csv {encoding} {delim!r} {eol!r}", total, rejected)
    hf.refuse = hf.good == 0
    return hf


def _encode(text: str, encoding: str) -> bytes:
    if encoding in ("cp1252", "latin-1"):
        try:
            return text.encode(encoding)
        except UnicodeEncodeError:
            return text.encode(encoding, errors="replace")
    # a lone surrogate (drawn into an event_id) has no UTF-8/16 form: a writer would put '?' there too
    return text.encode(encoding, errors="replace")


# -- JSON Lines -------------------------------------------------------------------------------------------

def _deep(depth: int) -> Any:
    v: Any = "bottom"
    for _ in range(depth):
        v = [v]
    return v


@st.composite
def jsonl_files(draw) -> HostileFile:
    rs = draw(rows())
    lines: list[str] = []
    account_rows: list[Row] = []
    as_numbers = draw(st.booleans())
    for r in rs:
        ev: dict[str, Any] = {"event_name": r.event_name, "event_time": r.event_time, **r.extra}
        if as_numbers and r.reason is None:
            try:
                ev["event_time"] = json.loads(r.event_time)  # numbers as numbers, where they are numbers
            except ValueError:
                pass
        if draw(st.integers(0, 9)) == 0:
            ev["nested"] = _deep(1000)
        if draw(st.integers(0, 5)) == 0:
            ev["user_data"] = {"em": [r.extra["em"]], "ph": r.extra["ph"]}
            del ev["em"], ev["ph"]
        if r.reason == "event_time_empty":
            how = draw(st.sampled_from(["text", "null", "missing"]))
            if how == "null":
                ev["event_time"] = None
            elif how == "missing":
                del ev["event_time"]
        lines.append(json.dumps(ev, ensure_ascii=draw(st.booleans())))
        account_rows.append(r)
    if len(rs) >= 2 and draw(st.booleans()):  # two events in one request body
        a, b = json.loads(lines.pop()), json.loads(lines.pop())
        lines.append(json.dumps({"data": [b, a], "test_event_code": "TEST1"}))
    for _ in range(draw(st.integers(0, 3)) if rs else 0):
        broken = draw(st.sampled_from(['{"event_name": "Purchase", "event_time": 1794873602', "not json",
                                       "[1, 2, 3]", "42", '"just a string"', "{'single': 'quotes'}",
                                       json.dumps(_deep(1000)), '{"event_name": "x", }', "\x7f\x7f"]))
        lines.insert(draw(st.integers(0, len(lines))), broken)
        # a JSON array on a line is a batch of events: each of its items not an object is one bad row;
        # DuckDB's JSON reader accepts a trailing comma, so that object is rejected for its missing
        # event_time instead: rejected and counted either way
        reason = ANY_REASON if broken.endswith(", }") else "malformed_row"
        for _ in range(3 if broken == "[1, 2, 3]" else 1):
            account_rows.append(Row("x", "x", reason=reason))
    blank = draw(st.sampled_from(["", "   ", "\t"]))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), blank)  # blank lines are not rows
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + eol
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    total, rejected = _account(account_rows)
    hf = HostileFile(draw(st.sampled_from(["log.jsonl", "log.ndjson", "log.json"])), _encode(text, encoding),
                     f"jsonl {encoding}", total, rejected)
    hf.refuse = hf.good == 0
    return hf


# -- pretty-printed JSON documents (valid shapes: issue 24) -------------------------------------------------

@st.composite
def pretty_json_files(draw) -> HostileFile:
    """Valid multi-line JSON as loggers and Meta's documentation write it: one pretty-printed event, a
    pretty request body ``{"data": [...]}``, a pretty array, or several pretty objects appended one
    after another; with or without a BOM. Every event is a row; an unclosed object appended last is
    one malformed row."""
    rs = draw(rows(min_size=1))
    shape = draw(st.sampled_from(["one", "body", "array", "appended", "appended bodies"]))
    if shape == "one":
        rs = rs[:1]
    events: list[dict[str, Any]] = []
    for r in rs:
        ev: dict[str, Any] = {"event_name": r.event_name, "event_time": r.event_time, **r.extra}
        if r.reason is None and draw(st.booleans()):
            try:
                ev["event_time"] = json.loads(r.event_time)
            except ValueError:
                pass
        if draw(st.booleans()):
            ev["user_data"] = {"em": [r.extra["em"]], "ph": r.extra["ph"], "fbp": "fb.1.1794873601259.17318"}
            del ev["em"], ev["ph"]
        if draw(st.booleans()):
            ev["custom_data"] = draw(st.sampled_from([[], {}, {"value": r.extra["value"], "currency": "EUR"}]))
        if r.reason == "event_time_empty" and draw(st.booleans()):
            ev["event_time"] = None
        events.append(ev)
    indent = draw(st.sampled_from([2, 4, "\t", 1]))
    ascii_only = draw(st.booleans())

    def dump(value: Any) -> str:
        return json.dumps(value, indent=indent, ensure_ascii=ascii_only)

    if shape == "one":
        docs = [dump(events[0])]
    elif shape == "body":
        docs = [dump({"data": events, "test_event_code": "TEST1", "partner_agent": "hostile"})]
    elif shape == "array":
        docs = [dump(events)]
    elif shape == "appended":
        docs = [dump(ev) for ev in events]
    else:
        half = max(1, len(events) // 2)
        docs = [dump({"data": part}) for part in (events[:half], events[half:]) if part]
    account_rows = list(rs)
    if shape.startswith("appended") and draw(st.booleans()):  # a logger killed mid-write
        docs.append(dump({"event_name": "Purchase", "event_time": 1794873602})[:-2])
        account_rows.append(Row("x", "x", reason="malformed_row"))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(d.replace("\n", eol) for d in docs) + draw(st.sampled_from(["", eol]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16"]))
    total, rejected = _account(account_rows)
    hf = HostileFile(draw(st.sampled_from(["log.json", "log.jsonl", "log.txt"])), _encode(text, encoding),
                     f"pretty json {shape} {encoding}", total, rejected)
    hf.refuse = hf.good == 0
    return hf


# -- Parquet ----------------------------------------------------------------------------------------------

@st.composite
def parquet_files(draw) -> HostileFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rs = [r for r in draw(rows()) if r.reason in (None, "event_name_empty", "event_time_implausible")]
    time_type = draw(st.sampled_from(["string", "int64", "float64", "timestamp", "date"]))
    name_type = draw(st.sampled_from(["string", "large_string", "dictionary", "int64"]))
    names: list[Any] = []
    times: list[Any] = []
    for i, r in enumerate(rs):
        if name_type == "int64":
            names.append(None if r.reason == "event_name_empty" else i)
        else:
            names.append(r.event_name)
        secs = 1_794_873_602 + i if r.reason is None else -5
        if time_type == "string":
            times.append(str(r.event_time) if r.reason != "event_time_implausible" else "0")
        elif time_type == "int64":
            times.append(secs)
        elif time_type == "float64":
            times.append(float(secs) + 0.25)
        elif time_type == "timestamp":
            times.append(secs * 1_000_000)
        else:
            times.append(secs // 86_400)
    if name_type == "dictionary":
        name_arr = pa.array(names, pa.string()).dictionary_encode()
    else:
        name_arr = pa.array(names, {"string": pa.string(), "large_string": pa.large_string(),
                                    "int64": pa.int64()}[name_type])
    if time_type == "timestamp":
        time_arr = pa.array(times, pa.timestamp("us", tz="UTC" if draw(st.booleans()) else None))
    elif time_type == "date":
        time_arr = pa.array(times, pa.date32())
    else:
        time_arr = pa.array(times, {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}[time_type])
    n = len(rs)
    cols = {"event_name": name_arr, "event_time": time_arr,
            "value": (pa.array([decimal.Decimal("1.50")] * n, pa.decimal128(10, 2)) if draw(st.booleans())
                      else pa.array([None] * n, pa.null())),
            "user_data": pa.array([{"em": [r.extra["em"]], "ph": r.extra["ph"]} for r in rs],
                                  pa.struct([("em", pa.list_(pa.string())), ("ph", pa.string())])),
            "flags": pa.array([[True, False]] * n, pa.list_(pa.bool_())),
            "m": pa.array([[("k", 1)]] * n, pa.map_(pa.string(), pa.int32())),
            "blob": pa.array([b"\x00\x01"] * n, pa.binary())}
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    # a date has no time of day: the correct reading of a good day is still a plausible time
    account = [Row(r.event_name, None, reason=r.reason) for r in rs]
    if name_type == "int64":
        for a, r in zip(account, rs, strict=True):
            a.reason = r.reason
    total, rejected = _account(account)
    hf = HostileFile(draw(st.sampled_from(["log.parquet", "log.pq"])), buf.getvalue(),
                     f"parquet time:{time_type} name:{name_type}", total, rejected)
    hf.refuse = hf.good == 0
    return hf


# -- unusable files ---------------------------------------------------------------------------------------

@st.composite
def unusable_files(draw) -> HostileFile:
    kind = draw(st.sampled_from(["empty", "header only", "binary", "truncated gzip", "whitespace",
                                 "bom only", "gzip of nothing", "jsonl all broken", "no known column"]))
    good = "event_name,event_time\n" + "Purchase,1794873602\n" * 50
    if kind == "empty":
        data, name = b"", "log.csv"
    elif kind == "header only":
        data, name = draw(st.sampled_from([b"event_name,event_time\n", b"event_name,event_time",
                                           b'{"event_name": 1}'[:0] + b"event_name;event_time\r\n"])), "log.csv"
    elif kind == "binary":
        data = draw(st.binary(min_size=8, max_size=4096))
        data = b"\x00\x01\x02\xff" + data
        name = draw(st.sampled_from(["log.csv", "log.jsonl", "log.parquet", "log.csv.gz"]))
    elif kind == "truncated gzip":
        full = gzip.compress(good.encode())
        data = full[: draw(st.integers(2, len(full) - 9))]
        name = "log.csv.gz"
    elif kind == "whitespace":
        data, name = b" \n\r\n\t \n", "log.csv"
    elif kind == "bom only":
        data, name = b"\xef\xbb\xbf", "log.csv"
    elif kind == "gzip of nothing":
        data, name = gzip.compress(b""), "log.csv.gz"
    elif kind == "jsonl all broken":
        n = draw(st.integers(1, 5))
        data, name = b"{not json\n" * n, "log.jsonl"
        return HostileFile(name, data, kind, n, {"malformed_row": n}, refuse=True)
    else:
        data, name = b"a,b,c\n1,2,3\n", "log.csv"
        return HostileFile(name, data, kind, 1, {}, refuse=True)
    return HostileFile(name, data, kind, 0, {}, refuse=True)


hostile_files = st.one_of(csv_files(), csv_files(), jsonl_files(), parquet_files(), unusable_files(),
                          pretty_json_files())
