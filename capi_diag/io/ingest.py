"""Log files -> the canonical DuckDB tables ``browser_events`` / ``server_events``, with an import report.

DuckDB reads every file itself (``read_csv``, ``read_parquet``, and JSON functions over the lines of a
JSON Lines file); rows never pass through per-row Python or a pandas round trip. The import is the one
DuckDB-native layer of capi-diag: everything downstream reads the canonical tables through Ibis.
A CSV file is parsed in one pass: its canonical table is created straight from ``read_csv`` (no raw
copy of the file), and the lines the reader skipped as malformed are added from its rejects table.

What the import guarantees (see docs/input-format.md):

* every accepted header form maps to one canonical field of :mod:`capi_diag.core.schema`; unknown columns are
  kept (the ``extra`` JSON column) and listed in the report, never dropped;
* every cell is read as text first, so ``00123`` stays ``00123``; the import then types it:
  ``event_time`` / ``sent_at`` become integer UTC seconds from Unix seconds, milliseconds
  (>= 100,000,000,000), microseconds (>= 100,000,000,000,000) or ISO-8601 (with ``Z`` / an offset, or
  without one, taken in ``assume_tz``, UTC by default, and counted as "no time zone");
* a value is empty when null, ``""`` or whitespace only; user_data cells may hold one value or a JSON
  array, stored as a list without its empty values;
* a row is rejected, counted with its reason and shown with its line, when its ``event_name`` is empty
  (``event_name_empty``), its ``event_time`` is empty / unreadable / before 2000-01-01 or after 2100-01-01
  (``event_time_empty``, ``event_time_unreadable``, ``event_time_implausible``), or the row itself cannot
  be parsed (``malformed_row``: a CSV line with too many columns, a JSON line that is not an object);
  rejection never aborts the import;
* a file that cannot be used at all raises :class:`~capi_diag.core.errors.IngestError` naming the file, what
  was found and what to do.

Line numbers: for CSV the header is line 1 and the n-th data record is line n + 1 (a quoted field that
spans lines, or a malformed row before it, shifts later rows' numbers); for JSON Lines the physical line
(several events of one request body share its line); for Parquet the row number + 1.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import json
import os
import re
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from capi_diag.core.errors import ConfigError, IngestError
from capi_diag.core.schema import (
    ALIASES,
    FIELDS,
    FIELDS_BY_NAME,
    PLAUSIBLE_MAX,
    PLAUSIBLE_MIN,
    PLUGIN_ALIAS_SOURCE,
    REQUIRED,
    Kind,
    Role,
    canonical_columns,
    canonical_name,
    is_custom_data_header,
)
from capi_diag.engine import pii
from capi_diag.engine.dataset import Dataset, multi_valued
from capi_diag.engine.db import Database
from capi_diag.io import har
from capi_diag.io.send_lines import send_body

HEAD_BYTES = 65536
MAX_LINE_BYTES = 32 * 1024 * 1024
"""The longest CSV line read (a 10 MB cell fits); a longer one is a malformed row."""
EXAMPLES = 20
REJECT_REASONS = ("malformed_row", "event_name_empty", "event_time_empty", "event_time_unreadable",
                  "event_time_implausible")

ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class Source:
    """One log file: a path on disk, or the bytes of an upload (read by DuckDB from memory)."""

    name: str
    path: str | None = None
    data: bytes | None = None

    @classmethod
    def of(cls, item: str | os.PathLike[str] | Source) -> Source:
        if isinstance(item, Source):
            return item
        return cls(name=os.path.basename(str(item)), path=str(item))  # reports name files, never paths


@dataclass
class FileReport:
    name: str
    role: str
    format: str = ""
    encoding: str = "utf-8"
    delimiter: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    rejected_examples: list[dict[str, Any]] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    unknown_columns: list[str] = field(default_factory=list)
    time_formats: dict[str, int] = field(default_factory=dict)
    no_time_zone: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- SQL building blocks (DuckDB macros, created once per connection) -------------------------------
# No IN list of five or more values (nor list_contains over a constant list): DuckDB plans those as a
# join, which does not keep the reader's row order that the CSV import numbers its rows by.
# A value whose first character is above the space is not blank (RE2's \s is ASCII whitespace only):
# `ascii(s) > 32` answers for nearly every cell before the blank pattern runs (1M server rows: the
# server parse 4.2 -> 3.4 s, the browser parse 2.2 -> 1.9 s).

MACROS = r"""
CREATE OR REPLACE TEMP MACRO capi_text(s) AS
    CASE WHEN s IS NULL THEN NULL WHEN ascii(s) > 32 THEN s
         WHEN regexp_full_match(s, '\s*') THEN NULL ELSE s END;
CREATE OR REPLACE TEMP MACRO capi_num(s) AS
    CASE WHEN regexp_full_match(trim(s), '[+-]?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?')
         THEN TRY_CAST(trim(s) AS DOUBLE) END;
CREATE OR REPLACE TEMP MACRO capi_has_tz(s) AS regexp_matches(trim(s), '(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$');
CREATE OR REPLACE TEMP MACRO capi_iso(s, tz) AS
    CASE WHEN capi_has_tz(s) THEN TRY_CAST(trim(s) AS TIMESTAMPTZ)
         ELSE timezone(tz, TRY_CAST(trim(s) AS TIMESTAMP)) END;
CREATE OR REPLACE TEMP MACRO capi_time_unit(s, tz) AS
    CASE WHEN capi_text(s) IS NULL THEN NULL
         WHEN capi_num(s) IS NOT NULL THEN
              CASE WHEN abs(capi_num(s)) >= 100000000000000 THEN 'us'
                   WHEN abs(capi_num(s)) >= 100000000000 THEN 'ms' ELSE 's' END
         WHEN capi_iso(s, tz) IS NOT NULL THEN 'iso' END;
CREATE OR REPLACE TEMP MACRO capi_clamp(x) AS CASE WHEN x IS NOT NULL THEN greatest(-1e15, least(1e15, x)) END;
CREATE OR REPLACE TEMP MACRO capi_time_s(s, unit, tz) AS
    CAST(floor(capi_clamp(CASE unit WHEN 's' THEN capi_num(s)
                         WHEN 'ms' THEN capi_num(s) / 1000
                         WHEN 'us' THEN capi_num(s) / 1000000
                         WHEN 'iso' THEN epoch(capi_iso(s, tz)) END)) AS BIGINT);
CREATE OR REPLACE TEMP MACRO capi_list_raw(s) AS
    CASE WHEN s IS NULL THEN NULL
         WHEN regexp_full_match(s, '(?s)\s*\[.*\]\s*') AND json_valid(s) THEN from_json(trim(s), '["VARCHAR"]')
         ELSE [s] END;
CREATE OR REPLACE TEMP MACRO capi_list_clean(l) AS
    CASE WHEN l IS NULL OR len(list_filter(l, lambda x: capi_text(x) IS NOT NULL)) = 0 THEN NULL
         ELSE list_filter(l, lambda x: capi_text(x) IS NOT NULL) END;
CREATE OR REPLACE TEMP MACRO capi_list(s) AS
    CASE WHEN s IS NULL THEN NULL
         WHEN contains(s, '[') AND regexp_full_match(s, '(?s)\s*\[.*\]\s*') AND json_valid(s)
              THEN capi_list_clean(from_json(trim(s), '["VARCHAR"]'))
         WHEN ascii(s) > 32 THEN [s]
         WHEN regexp_full_match(s, '\s*') THEN NULL
         ELSE [s] END;
CREATE OR REPLACE TEMP MACRO capi_unit_of(s, n, iso) AS
    CASE WHEN capi_text(s) IS NULL THEN NULL
         WHEN n IS NOT NULL THEN CASE WHEN abs(n) >= 100000000000000 THEN 'us'
                                      WHEN abs(n) >= 100000000000 THEN 'ms' ELSE 's' END
         WHEN iso IS NOT NULL THEN 'iso' END;
CREATE OR REPLACE TEMP MACRO capi_seconds(n, iso, unit) AS
    CAST(floor(capi_clamp(CASE unit WHEN 's' THEN n WHEN 'ms' THEN n / 1000 WHEN 'us' THEN n / 1000000
                                    WHEN 'iso' THEN epoch(iso) END)) AS BIGINT);
CREATE OR REPLACE TEMP MACRO capi_consent(s) AS
    CASE lower(trim(s)) WHEN 'granted' THEN 'granted' WHEN 'true' THEN 'granted' WHEN '1' THEN 'granted'
                        WHEN 'yes' THEN 'granted' WHEN 'y' THEN 'granted'
                        WHEN 'denied' THEN 'denied' WHEN 'false' THEN 'denied' WHEN '0' THEN 'denied'
                        WHEN 'no' THEN 'denied' WHEN 'n' THEN 'denied' END;
"""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_path(parts: Sequence[str]) -> str:
    return "$" + "".join('."' + p.replace('"', '\\"') + '"' for p in parts)


# -- reading raw bytes, detecting format and encoding -------------------------------------------------

class StagedInput:
    """Resolves a Source to something DuckDB can open, and removes what it registered afterwards."""

    def __init__(self, db: Database, src: Source, role: Role | None, label: str | None = None) -> None:
        self.db, self.src, self.role = db, src, role
        self.label = label if label is not None else f"{role.value} log '{src.name}'"
        self._memory_paths: list[str] = []
        self.request_fields: list[str] = []
        """Keys of JSON request bodies besides ``data`` and ``test_event_code`` (not event fields)."""
        self.decoded = False
        self.text_head: str | None = None
        self.uri = self._resolve()

    def _resolve(self) -> str:
        if self.src.data is not None:
            return self._to_memory(self.src.data, self.src.name)
        path = Path(self.src.path or self.src.name)
        if not path.exists():
            raise IngestError(f"{self.label}: file not found at {path}. Check the path and try again.")
        if path.is_dir():
            raise IngestError(f"{self.label}: {path} is a folder. Pass the log file itself.")
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as e:
            raise IngestError(f"{self.label}: cannot be read ({e.strerror}). "
                              "Check the file's permissions.") from None
        return str(path)

    def _to_memory(self, data: bytes, name: str) -> str:
        key = f"/capi-diag/{uuid.uuid4().hex}/{Path(name).name or 'upload'}"
        self.db.add_memory_file(key, data)
        self._memory_paths.append(key)
        return f"memory://{key}"

    def head(self, size: int = HEAD_BYTES) -> bytes:
        """The first ``size`` bytes (decompressed when the file is gzip)."""
        if self.src.data is not None:
            raw = self.src.data[:size]
        else:
            with open(self.uri, "rb") as fh:
                raw = fh.read(size)
        if raw[:2] == b"\x1f\x8b":
            try:
                return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
            except zlib.error:
                raise IngestError(f"{self.label}: looks gzip-compressed but cannot be decompressed. "
                                  "Export it again or decompress it first.") from None
        return raw

    def is_gzip(self) -> bool:
        """Whether DuckDB would read compressed bytes (false once replaced by decoded text)."""
        if self.decoded:
            return False
        if self.src.data is not None:
            return self.src.data[:2] == b"\x1f\x8b"
        with open(self.uri, "rb") as fh:
            return fh.read(2) == b"\x1f\x8b"

    def all_bytes(self) -> bytes:
        raw = self.src.data if self.src.data is not None else Path(self.uri).read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw

    def replace_with_text(self, text: str) -> None:
        """Use UTF-8 text decoded in Python (UTF-16, Windows-1252) instead of the original bytes."""
        self.text_head = text[:HEAD_BYTES]
        self.uri = self._to_memory(text.encode("utf-8"), self.src.name.removesuffix(".gz"))
        self.decoded = True

    def close(self) -> None:
        if self._memory_paths:
            fs = self.db.memory_fs
            for key in self._memory_paths:
                try:
                    fs.rm(key)
                except FileNotFoundError:
                    pass
            self._memory_paths.clear()


def detect_format(name: str, head: bytes) -> str:
    lower = name.lower().removesuffix(".gz")
    if head[:4] == b"PAR1" or lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "json"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16: look at its text
        head = head[: len(head) // 2 * 2].decode("utf-16", errors="replace").encode("utf-8")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if stripped[:1] in (b"{", b"[") else "csv"


_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\r\n\f")


def detect_encoding(label: str, head: bytes) -> str:
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    if b"\x00" in head:
        at = head.index(b"\x00")
        raise IngestError(f"{label}: is not a text file (binary content at byte {at}). "
                          "Export the log as CSV, JSON Lines or Parquet.")
    # control bytes other than tab, CR, LF and form feed, counted in C (a Python loop over the 64 KB
    # head took about 10 ms a file)
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if head and controls / len(head) > 0.05:
        raise IngestError(f"{label}: is not a text file (control bytes found). "
                          "Export the log as CSV, JSON Lines or Parquet.")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a multi-byte character cut at the end of the sample
            return "windows-1252"
    return "utf-8"


# -- header mapping ------------------------------------------------------------------------------------

@dataclass
class HeaderMapping:
    canonical: dict[str, str]  # canonical field -> source header
    custom: dict[str, str]  # extra custom_data key -> source header
    unknown: list[str]
    warnings: list[str]


def map_headers(headers: Sequence[str]) -> HeaderMapping:
    chosen: dict[str, tuple[int, str]] = {}
    custom: dict[str, str] = {}
    unknown: list[str] = []
    warnings: list[str] = []
    for h in headers:
        name = canonical_name(h)
        if name is None:
            key = is_custom_data_header(h)
            if key is not None:
                custom[key] = h
            else:
                unknown.append(h)
            continue
        aliases = FIELDS_BY_NAME[name].aliases
        rank = aliases.index(h) if h in aliases else len(aliases)
        if name in chosen:
            keep, drop = (chosen[name][1], h) if chosen[name][0] <= rank else (h, chosen[name][1])
            warnings.append(f"columns '{keep}' and '{drop}' both map to {name}; '{keep}' is used, "
                            f"'{drop}' is kept as an unknown column")
            unknown.append(drop)
            if keep == h:
                chosen[name] = (rank, h)
        else:
            chosen[name] = (rank, h)
    return HeaderMapping({k: v for k, (_, v) in chosen.items()}, custom, unknown, warnings)


def mapping_notes(mapping: HeaderMapping, request_fields: Sequence[str] = ()) -> list[str]:
    """Import-report warnings: headers read under another tool's internal name
    (:data:`~capi_diag.core.schema.PLUGIN_ALIASES`), and request-level fields that were dropped."""
    notes = [f"column '{h}' ({PLUGIN_ALIAS_SOURCE[h]}'s name) was read as {f}"
             for f, h in mapping.canonical.items() if h in PLUGIN_ALIAS_SOURCE]
    if request_fields:
        notes.append("request-level fields of the request bodies are not event fields and were dropped: "
                     + ", ".join(request_fields) + " (test_event_code is applied to each event)")
    return notes


def missing_required_error(label: str, headers: Sequence[str], mapping: HeaderMapping) -> IngestError:
    missing = [f for f in REQUIRED if f not in mapping.canonical]
    hints = []
    for f in missing:
        aliases = FIELDS_BY_NAME[f].aliases
        scored = [(max(difflib.SequenceMatcher(None, h.lower(), a.lower()).ratio() for a in aliases), h)
                  for h in headers if h not in mapping.canonical.values()]
        best = max(scored, default=(0.0, ""))
        near = f" (closest: '{best[1]}')" if best[0] >= 0.6 else ""
        hints.append(f"{f}: rename a column to one of {', '.join(aliases)}{near}")
    shown = ", ".join(repr(h) for h in list(headers)[:15]) or "none"
    looks_like_data = headers and all(re.fullmatch(r"[\d.:\-+TZ ]+|[A-Z][A-Za-z]+", h or "") for h in headers[:3])
    prefix = "the first line looks like data, not a header; add a header row. " if looks_like_data else ""
    return IngestError(
        f"{label}: no column maps to {' or '.join(missing)}. {prefix}Headers found: {shown}. "
        + "; ".join(hints) + "."
    )


# -- the canonical SELECT ----------------------------------------------------------------------------

def _canonical_select(mapping: HeaderMapping, *, name: str, file_index: int, tz: str, body_code: bool,
                      row_offset: int = 0, order: str = "rowid", stage: str = "_capi_stage") -> str:
    """SQL over ``stage`` (one VARCHAR column per source header, whatever the format, and ``_line``,
    ``_malformed``) producing the canonical columns plus ``_reject``."""
    text = _quote_ident
    exprs: dict[str, str] = {}
    src: dict[str, str] = {f: text(h) for f, h in mapping.canonical.items()}
    for f in FIELDS:
        s = src.get(f.name)
        if s is None:
            exprs[f.name] = f"CAST(NULL AS {f.kind.value})"
        elif f.kind is Kind.LIST and f.name in pii.MASKED_AT_REST:
            # raw emails and phones are never stored: see capi_diag.engine.pii
            exprs[f.name] = f"list_transform(capi_list({s}), lambda x: capi_pii_at_rest_{f.name}(x))"
        elif f.kind is Kind.LIST:
            exprs[f.name] = f"capi_list({s})"
        elif f.name.startswith("consent_") and f.name != "consent_region":
            exprs[f.name] = f"capi_consent({s})"
        elif f.name == "consent_region":
            exprs[f.name] = f"upper(trim(capi_text({s})))"
        elif f.kind is Kind.INT:
            # number and ISO reading computed once per cell (the pre-projection below)
            exprs[f.name] = f"capi_seconds(_n_{f.name}, _iso_{f.name}, _u_{f.name})"
        elif f.name in pii.SCRUBBED_URLS:
            # emails and phone numbers in a query string are never stored raw (capi_diag.engine.pii)
            exprs[f.name] = f"capi_pii_scrub(capi_text({s}), '%23')"
        else:
            exprs[f.name] = f"capi_text({s})"
    if body_code:
        exprs["test_event_code"] = f"coalesce({exprs['test_event_code']}, capi_text(_body_test_code))"
    et = src.get("event_time", "NULL")
    sa = src.get("sent_at")

    def obj(pairs: dict[str, str]) -> str:
        if not pairs:
            return "CAST(NULL AS VARCHAR)"
        args = ", ".join(f"{_quote_str(k)}, {text(h)}" for k, h in pairs.items())
        return f"capi_pii_scrub(CAST(json_object({args}) AS VARCHAR), '#')"  # no raw email/phone at rest

    times = [f.name for f in FIELDS if f.kind is Kind.INT and f.name in src]
    cols = canonical_columns()
    select = {
        "row_id": f"CAST({'_capi_rowid' if order == 'rowid' and times else order} + {int(row_offset)} AS BIGINT)",
        "source_file": _quote_str(name),
        "file_index": str(file_index),
        "line": "_line",
        "event_time_raw": f"{et}",
        "event_time_raw_unit": "_u_event_time" if "event_time" in src else "CAST(NULL AS VARCHAR)",
        "event_time_tz_missing": (f"(_u_event_time = 'iso' AND NOT capi_has_tz({et}))" if "event_time" in src
                                  else "CAST(NULL AS BOOLEAN)"),
        "sent_at_raw": f"{sa}" if sa else "CAST(NULL AS VARCHAR)",
        "custom_data_extra": obj(mapping.custom),
        "extra": obj({h: h for h in mapping.unknown}),
        **exprs,
    }
    body = ",\n  ".join(f"{select[c]} AS {_quote_ident(c)}" for c, _ in cols)
    reject = (
        "CASE WHEN _malformed THEN 'malformed_row' "
        "WHEN event_name IS NULL THEN 'event_name_empty' "
        "WHEN capi_text(event_time_raw) IS NULL THEN 'event_time_empty' "
        "WHEN event_time IS NULL THEN 'event_time_unreadable' "
        f"WHEN event_time < {PLAUSIBLE_MIN} OR event_time > {PLAUSIBLE_MAX} THEN 'event_time_implausible' END"
    )
    consent = [f"(capi_text({src[f]}) IS NOT NULL AND capi_consent({src[f]}) IS NULL)"
               for f in src if f.startswith("consent_") and f != "consent_region"]
    unreadable = " OR ".join(consent) or "false"
    # times: each cell read as a number and as ISO-8601 once, its unit once (two projections)
    pre = ", ".join(f"capi_num({src[n]}) AS _n_{n}, CASE WHEN capi_num({src[n]}) IS NULL AND capi_text({src[n]}) "
                    f"IS NOT NULL THEN capi_iso({src[n]}, {tz}) END AS _iso_{n}" for n in times)
    unit = ", ".join(f"capi_unit_of({src[n]}, _n_{n}, _iso_{n}) AS _u_{n}" for n in times)
    rowid = ", rowid AS _capi_rowid" if order == "rowid" else ""
    stage = f"(SELECT *, {unit} FROM (SELECT *{rowid}, {pre} FROM {stage}))" if times else stage
    return (f"SELECT *, {reject} AS _reject FROM (SELECT\n  {body},\n  _malformed,\n"
            f"  ({unreadable}) AS _consent_unreadable\nFROM {stage})")


# -- staging per format ----------------------------------------------------------------------------

def _stage_csv(db: Database, inp: StagedInput, report: FileReport) -> list[str]:
    """Stage a CSV file as the view ``_capi_stage`` over DuckDB's reader; returns the headers.

    Nothing is read yet (DuckDB only sniffs the file): the canonical table is parsed straight from the
    reader in one pass (:func:`_parse_csv_stage`), without a raw copy. The view has one VARCHAR column per
    header (a UTF-8 BOM left on a name is dropped) and ``_malformed``; its ``_line`` and ``_ord`` are
    NULL, the rows being numbered after the parse. The reader skips malformed lines and lists them in
    ``_capi_rej``.

    DuckDB's sniffer picks the dialect, except where it is known to go wrong, when the file is read with
    the delimiter and the column names of its header line and the RFC 4180 quote instead (rows that
    do not fit are still rejected one by one): when the sniffer gives up (odd rows in its sample), and
    when it settles on "no quote" although the text has quotes (a quote opened and never closed on
    the last line does that, and every quoted field, quoted newlines included, would be misread)."""
    # DuckDB's read buffer defaults to 16 x max_line_size (512 MiB here), one allocation that alone
    # breaks a small memory_limit; 2 x still holds any line up to max_line_size.
    detect = "all_varchar=true, header=true, auto_detect=true"
    rest = (f"max_line_size={MAX_LINE_BYTES}, buffer_size={2 * MAX_LINE_BYTES}, compression='auto', "
            "sample_size=20480, ignore_errors=true")
    rejects = "store_rejects=true, rejects_table='_capi_rej', rejects_scan='_capi_rejscan'"
    explicit = None
    sniffed = None
    try:
        sniff = _sniff_csv(db, inp, f"{detect}, {rest}")
        report.delimiter = sniff[0]
        head = inp.text_head if inp.text_head is not None else inp.head().decode("utf-8", errors="replace")
        first = re.split(r"\r\n|\r|\n", head.lstrip("\ufeff"), maxsplit=1)[0]
        if (sniff[1] != '"' and '"' in head) or sniff[0] not in first:
            explicit = _explicit_dialect(inp)
        else:
            sniffed = _sniffed_dialect(sniff)
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as e:
        msg = str(e)
        if "invalid unicode" in msg.lower():
            raise Reencode() from None
        explicit = _explicit_dialect(inp)
        if explicit is None:
            raise IngestError(f"{inp.label}: DuckDB could not read it as CSV ({msg.splitlines()[0]}). "
                              "Check that it is a delimited text export with a header row.") from None
    if explicit is not None:
        report.delimiter, columns = explicit
        detect = (f"header=true, auto_detect=false, columns={columns}, delim={_quote_str(report.delimiter)}, "
                  "quote='\"', escape='\"'")
    elif sniffed is not None:
        # the sniffer's own findings, given back to the reader: the DESCRIBE, the view and the parse
        # below would each sniff the file again (about 30 ms each on the demo logs)
        detect = sniffed
    _drop_rejects(db)  # the rejects tables keep the lines of every earlier scan
    reader = f"read_csv({_quote_str(inp.uri)}, {detect}, {rest}, {rejects})"
    with _reading_csv(inp):
        names = [r[0] for r in db.fetchall(f"SELECT column_name FROM (DESCRIBE SELECT * FROM {reader})")]
    headers = [h.lstrip("\ufeff") for h in names]
    cols = ", ".join(f"{_quote_ident(n)} AS {_quote_ident(h)}" for n, h in zip(names, headers, strict=True))
    db.execute(f"""CREATE OR REPLACE TEMP VIEW _capi_stage AS SELECT {cols}, CAST(NULL AS BIGINT) AS _line,
        false AS _malformed, CAST(NULL AS BIGINT) AS _ord FROM {reader}""")
    return headers


SNIFF_HEAD_BYTES = 128 * 1024
"""A CSV file larger than this is sniffed on its first lines (up to this many bytes, cut at a line
end) before the whole of it: DuckDB's sniffer reads its whole sample for every candidate dialect (the
two demo logs, 1.5 and 2.1 MB: 41 + 33 ms sniffed whole, 14 + 12 ms on their heads, in one profile of
the report). The head's finding is kept only when it
is the common dialect: a delimiter of :data:`CSV_DELIMITERS`, ``"`` as quote, ``"`` or no escape (a
head without a doubled quote shows none; the reader is then given RFC 4180's doubled quote, which a
later ``""`` needs: with no escape that line would be rejected), no comment, no skipped line.
Anything else (a head without any quote included) is sniffed again on the whole sample, as before."""


def _sniff_csv(db: Database, inp: StagedInput, options: str) -> tuple[Any, ...]:
    """``sniff_csv``'s delimiter, quote, escape, newline, comment, skipped rows and columns for
    ``inp``: from its head when that settles it (:data:`SNIFF_HEAD_BYTES`), else from the file."""
    query = (f"SELECT Delimiter, Quote, Escape, NewLineDelimiter, Comment, SkipRows, Columns "
             f"FROM sniff_csv(?, {options})")
    head = _sniff_head(inp)
    if head is not None:
        tmp = None
        try:
            if inp.uri.startswith("memory://"):
                uri = inp._to_memory(head, inp.src.name)
            else:
                # owner-only (mkstemp), in the database's private folder when it has one, removed below
                fd, tmp = tempfile.mkstemp(prefix="capi-sniff-", suffix=".csv", dir=db.private_dir)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(head)
                uri = tmp
            row = db.fetchone(query, [uri])
            if row[0] in CSV_DELIMITERS and row[1] == '"' and row[2] in ('"', "(empty)") \
                    and row[4] == "(empty)" and not row[5]:
                # no doubled quote in the head ("(empty)") says nothing of the rest: RFC 4180's `""`
                return (row[0], '"', '"', *row[3:])
        except duckdb.OutOfMemoryException:
            raise
        except (duckdb.Error, OSError):
            pass  # the whole file decides (and reports what is wrong with it)
        finally:
            if tmp is not None:
                os.unlink(tmp)
    return tuple(db.fetchone(query, [inp.uri]))


def _sniff_head(inp: StagedInput) -> bytes | None:
    """The first :data:`SNIFF_HEAD_BYTES` of a plain (not compressed) CSV file larger than that, cut
    after its last line end; None for a smaller or compressed file, or a head without a line end."""
    if inp.is_gzip():
        return None
    if inp.src.data is not None and not inp.decoded:
        size = len(inp.src.data)
    elif not inp.uri.startswith("memory://"):
        try:
            size = os.path.getsize(inp.uri)
        except OSError:
            return None
    else:
        return None
    if size <= SNIFF_HEAD_BYTES:
        return None
    raw = inp.head(SNIFF_HEAD_BYTES)
    end = max(raw.rfind(b"\n"), raw.rfind(b"\r"))
    return raw[:end + 1] if end > 0 else None


def _number_rows(db: Database, table: str, assignments: str) -> None:
    """Number the rows of ``table``, just filled from the CSV stage, by their row id: DuckDB's reader
    fills a table in the file's order on every thread (insertion order is preserved), whereas a
    ``row_number()`` over the reader would run the whole parse on one thread. ``assignments`` is the
    UPDATE's SET list over ``rowid`` (0 for the first data record, whose line is 2)."""
    db.execute(f"UPDATE {table} SET {assignments}")


@contextmanager
def _reading_csv(inp: StagedInput) -> Iterator[None]:
    """DuckDB's errors while it reads a CSV file: :class:`Reencode` for bytes that are not UTF-8, one
    :class:`IngestError` for anything else (running out of memory is left to the caller)."""
    try:
        yield
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as e:
        if "invalid unicode" in str(e).lower():
            raise Reencode() from None
        raise IngestError(f"{inp.label}: could not be read as CSV ({str(e).splitlines()[0]}). "
                          "Check that it is a delimited text export with a header row.") from None


def _drop_rejects(db: Database) -> None:
    db.execute("DROP TABLE IF EXISTS _capi_rej")
    db.execute("DROP TABLE IF EXISTS _capi_rejscan")


def _malformed_stage(headers: Sequence[str]) -> str:
    """A relation shaped like the CSV ``_capi_stage`` holding the lines the reader rejected as
    malformed (NULL columns, ``_malformed`` true), to parse after a scan of the stage filled ``_capi_rej``."""
    cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {_quote_ident(h)}" for h in headers)
    return (f"(SELECT {cols}, CAST(line AS BIGINT) AS _line, true AS _malformed, CAST(NULL AS BIGINT) AS _ord "
            "FROM (SELECT DISTINCT line FROM _capi_rej))")


def _parse_csv_stage(db: Database, inp: StagedInput, headers: Sequence[str], select: Callable[[str], str],
                    numbers: str, table: str = "_capi_canon") -> None:
    """Create ``table`` from ``select(stage)`` (a SELECT over the relation ``stage``) in one pass over the
    CSV reader, number its rows (``numbers``: see :func:`_number_rows`), then add the malformed lines
    the reader skipped through the same SELECT, so that they are counted and reported like any other
    rejected row."""
    with _reading_csv(inp):
        db.execute(f"CREATE OR REPLACE TABLE {table} AS {select('_capi_stage')}")
    _number_rows(db, table, numbers)
    if db.fetchone("SELECT count(*) FROM _capi_rej")[0]:
        db.execute(f"INSERT INTO {table} {select(_malformed_stage(headers))}")


def _count_csv_stage(db: Database, inp: StagedInput) -> int:
    """Rows of the CSV stage, malformed lines included (one scan; for error messages)."""
    with _reading_csv(inp):
        good = db.fetchone("SELECT count(*) FROM _capi_stage")[0]
    return int(good) + int(db.fetchone("SELECT count(DISTINCT line) FROM _capi_rej")[0])


CSV_DELIMITERS = (",", ";", "\t", "|")


def _explicit_dialect(inp: StagedInput) -> tuple[str, str] | None:
    """The delimiter found most often on the header line and DuckDB's ``columns`` for the header's
    names (all VARCHAR; an empty name becomes ``column<i>``, a repeated one gets ``_<n>``), or None."""
    text = inp.text_head if inp.text_head is not None else inp.head().decode("utf-8", errors="replace")
    text = text.lstrip("\ufeff")
    first = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
    delim = max(CSV_DELIMITERS, key=first.count)
    if not first.count(delim):
        return None
    header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delim), [])
    names: list[str] = []
    for i, h in enumerate(header):
        name = h or f"column{i}"
        base, k = name, 1
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    if not names:
        return None
    return delim, "{" + ", ".join(f"{_quote_str(n)}: 'VARCHAR'" for n in names) + "}"


def _sniffed_dialect(sniff: Sequence[Any]) -> str | None:
    """``read_csv`` options stating what DuckDB's sniffer found (the ``sniff_csv`` row's delimiter,
    quote, escape, newline, comment, skipped rows and columns, as its ``Prompt`` states them), so the
    reader does not sniff again; None when the row holds something it would not say that way."""
    delim, quote, escape, newline, comment, skip, columns = sniff

    def char(v: str | None) -> str | None:
        return "" if v == "(empty)" else v

    quote, escape, comment = char(quote), char(escape), char(comment)
    if not delim or None in (quote, escape, comment) or newline not in ("\\n", "\\r\\n", "\\r") or not columns:
        return None
    cols = "{" + ", ".join(f"{_quote_str(c['name'])}: 'VARCHAR'" for c in columns) + "}"
    return (f"all_varchar=true, header=true, auto_detect=false, delim={_quote_str(delim)}, "
            f"quote={_quote_str(quote)}, escape={_quote_str(escape)}, new_line={_quote_str(newline)}, "
            f"skip={int(skip)}, comment={_quote_str(comment)}, columns={cols}")


class Reencode(Exception):
    """The bytes are not valid UTF-8 after all: decode them as Windows-1252."""


def _stage_json_lines(db: Database, inp: StagedInput, report: FileReport) -> None:
    """Stage a JSON Lines (or JSON array) file as one JSON value per event in ``_ev``; lines with a lone
    surrogate escape are repaired, and ``report`` warns of them (:func:`_repair_lone_surrogates`)."""
    if inp.is_gzip():
        inp.replace_with_text(inp.all_bytes().decode("utf-8", errors="strict"))
    try:
        db.execute("""CREATE OR REPLACE TEMP TABLE _capi_lines AS
            WITH t AS (SELECT string_split(replace(ltrim(content, chr(65279)), chr(13), ''), chr(10)) AS parts
                       FROM read_text(?))
            SELECT CAST(unnest(generate_series(1, len(parts))) AS BIGINT) AS _line, unnest(parts) AS l
            FROM t""", [inp.uri])
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.InvalidInputException as e:
        if "invalid unicode" in str(e).lower():
            raise Reencode() from None
        raise IngestError(f"{inp.label}: could not be read as JSON Lines ({str(e).splitlines()[0]}).") from None
    db.execute("DELETE FROM _capi_lines WHERE l IS NULL OR regexp_full_match(l, '\\s*')")
    repaired = _repair_lone_surrogates(db)
    if repaired:
        report.warnings.append(SURROGATE_WARNING.format(n=repaired))
    valid = db.fetchone("SELECT count(*) FILTER (json_valid(l)), count(*) FROM _capi_lines")
    if valid[0] < valid[1] and group_json_documents(db):
        pass  # multi-line (pretty-printed) documents: _capi_docs holds one per document
    else:
        db.execute(f"""CREATE OR REPLACE TEMP TABLE _capi_docs AS
            SELECT _line, CASE WHEN json_valid(l) THEN {send_body("l::JSON")} END AS _doc,
                   CAST(NULL AS BIGINT[]) AS _starts1, CAST(NULL AS BIGINT[]) AS _starts2 FROM _capi_lines""")
    # An event's line: its document's first line; in a pretty-printed array or request body, the line
    # where the event's own object opens (when every event opens on a line of its own).
    db.execute("""CREATE OR REPLACE TEMP TABLE _capi_stage AS
        WITH d AS (
            SELECT _line, _doc, _starts1, _starts2,
                   json_type(_doc) = 'OBJECT' AND json_type(_doc, '$.data') = 'ARRAY'
                       AND json_extract(_doc, '$.event_name') IS NULL AS _is_body
            FROM _capi_docs),
        e AS (
            SELECT _line, _is_body, _starts1, _starts2, _doc,
                   CASE WHEN _doc IS NULL THEN [NULL::JSON]
                        WHEN _is_body THEN from_json(json_extract(_doc, '$.data'), '["JSON"]')
                        WHEN json_type(_doc) = 'ARRAY' THEN from_json(_doc, '["JSON"]')
                        ELSE [_doc] END AS _evs
            FROM d),
        u AS (SELECT *, unnest(generate_series(1, greatest(len(_evs), 1))) AS _i FROM e)
        SELECT CASE WHEN _is_body AND len(_starts2) = len(_evs) THEN _starts2[_i]
                    WHEN NOT _is_body AND json_type(_doc) = 'ARRAY' AND len(_starts1) = len(_evs) THEN _starts1[_i]
                    ELSE _line END AS _line,
               _evs[_i] AS _ev,
               CASE WHEN _is_body THEN _doc ->> '$.test_event_code' END AS _body_test_code
        FROM u WHERE len(_evs) > 0 ORDER BY u._line, _i""")
    inp.request_fields = [r[0] for r in db.fetchall("""
        SELECT k FROM (SELECT unnest(json_keys(_doc)) AS k FROM _capi_docs
                       WHERE json_type(_doc) = 'OBJECT' AND json_type(_doc, '$.data') = 'ARRAY'
                         AND json_extract(_doc, '$.event_name') IS NULL)
        WHERE k NOT IN ('data', 'test_event_code') GROUP BY k ORDER BY min(k)""")]
    db.execute("ALTER TABLE _capi_stage ADD COLUMN _malformed BOOLEAN")
    db.execute("UPDATE _capi_stage SET _malformed = (_ev IS NULL OR json_type(_ev) <> 'OBJECT')")
    db.execute("DROP TABLE IF EXISTS _capi_lines; DROP TABLE IF EXISTS _capi_docs")


# Every escape of a JSON text, left to right (a backslash always starts one, so an escaped backslash
# is consumed whole and never taken for the start of the next): a surrogate pair, any other escape,
# or (group 2) the \u of a lone surrogate, whose four hex digits are dropped.
_ESCAPES_RE = (r"(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\[^u]"
               r"|\\u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))|(\\u)[dD][89a-fA-F][0-9a-fA-F]{2}")
SURROGATE_WARNING = ("{n:,} line(s) held a lone UTF-16 surrogate escape (such as \\ud83d: half of an emoji "
                     "cut off); they were read with U+FFFD (�) in its place")
LONE_SURROGATE_RE = r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
"""A line that may hold a lone UTF-16 surrogate escape (``\\ud83d`` without its pair)."""


def _repair_lone_surrogates(db: Database) -> int:
    """Replace each lone UTF-16 surrogate escape in ``_capi_lines`` by ``\\ufffd`` (U+FFFD).

    JSON's grammar allows ``"\\ud83d"`` alone, and JavaScript's ``JSON.stringify`` writes one for a
    string cut in the middle of an emoji; DuckDB's JSON reader refuses the whole document, so one such
    value in a request body lost every event of the body into one malformed row. Only lines holding a
    lone surrogate escape and no raw U+0001 (the mark used here) are rewritten, in two passes of RE2:
    each escape is copied and followed by U+0001, a lone surrogate's ``\\u`` alone; then ``\\u`` +
    U+0001 becomes ``\\ufffd`` and the marks go. Returns the number of lines rewritten."""
    marked = f"regexp_replace(l, {_quote_str(_ESCAPES_RE)}, '\\1\\2' || chr(1), 'g')"
    lone = (f"regexp_matches(l, {_quote_str(LONE_SURROGATE_RE)}) AND NOT contains(l, chr(1)) "
            f"AND contains({marked}, '\\u' || chr(1))")
    repaired = int(db.fetchone(f"SELECT count(*) FROM _capi_lines WHERE {lone}")[0])
    if repaired:
        db.execute(f"""UPDATE _capi_lines
            SET l = replace(regexp_replace({marked}, '\\\\u' || chr(1), '\\\\ufffd', 'g'), chr(1), '')
            WHERE {lone}""")
    return repaired


STRING_RE = r'"(?:[^"\\]|\\.)*"'
"""A JSON string literal on one line (a raw line break cannot occur inside a valid one)."""


def group_json_documents(db: Database) -> bool:
    """Read ``_capi_lines`` as JSON documents spanning lines (pretty-printed events, request bodies,
    arrays, several appended one after another) into ``_capi_docs``: one row per document, at its first
    line. A document ends on the line where the brackets opened since its first line close again
    (brackets inside strings do not count). ``_starts1`` / ``_starts2`` list the lines where an object
    opens one / two levels inside (an array's events, a request body's events).

    Returns False, leaving ``_capi_docs`` absent, when reading line by line covers at least as many
    lines with valid JSON (JSON Lines with a few broken lines: each broken line stays one bad row)."""
    db.execute(f"""CREATE OR REPLACE TEMP TABLE _capi_grouped AS
        WITH b AS (
            SELECT _line, l, regexp_replace(l, {_quote_str(STRING_RE)}, '', 'g') AS bare FROM _capi_lines),
        d AS (
            SELECT _line, l, bare,
                   (length(bare) - length(regexp_replace(bare, '[\[{{]', '', 'g')))
                   - (length(bare) - length(regexp_replace(bare, '[\]}}]', '', 'g'))) AS delta
            FROM b),
        s AS (
            SELECT *, coalesce(sum(delta) OVER (ORDER BY _line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                               0) AS depth FROM d),
        g AS (
            SELECT *, sum(CASE WHEN depth <= 0 THEN 1 ELSE 0 END) OVER (ORDER BY _line) AS grp FROM s),
        r AS (
            SELECT *, depth - first_value(depth) OVER (PARTITION BY grp ORDER BY _line) AS rel,
                   regexp_matches(bare, '^\s*,?\s*\{{') AS opens FROM g)
        SELECT min(_line) AS _line, string_agg(l, chr(10) ORDER BY _line) AS l,
               list(_line ORDER BY _line) FILTER (rel = 1 AND opens) AS _starts1,
               list(_line ORDER BY _line) FILTER (rel = 2 AND opens) AS _starts2,
               count(*) AS _nlines
        FROM r GROUP BY grp""")
    covered = db.fetchone("""SELECT coalesce(sum(_nlines) FILTER (json_valid(l)), 0) FROM _capi_grouped""")[0]
    by_line = db.fetchone("SELECT count(*) FILTER (json_valid(l)) FROM _capi_lines")[0]
    if covered <= by_line:
        db.execute("DROP TABLE _capi_grouped")
        return False
    db.execute(f"""CREATE OR REPLACE TEMP TABLE _capi_docs AS
        SELECT _line, CASE WHEN json_valid(l) THEN {send_body("l::JSON")} END AS _doc,
               coalesce(_starts1, []) AS _starts1, coalesce(_starts2, []) AS _starts2
        FROM _capi_grouped ORDER BY _line""")
    db.execute("DROP TABLE _capi_grouped")
    return True


_NESTED_TYPES = ("list", "struct", "map", "array", "union")


def _parquet_text(expr: str, type_id: str) -> str:
    """A Parquet column as the text the CSV path reads: scalars cast, nested values as JSON text."""
    if type_id in _NESTED_TYPES:
        return f"CAST(to_json({expr}) AS VARCHAR)"
    return f"CAST({expr} AS VARCHAR)"


def stage_parquet(db: Database, inp: StagedInput) -> list[str]:
    """Stage a Parquet file as VARCHAR columns, one per header (``parent.child`` for the fields of a
    struct column such as ``user_data``), so that it takes the same path as CSV; returns the headers.
    Columnar reads stay columnar: no per-row JSON."""
    try:
        with db.lock:
            rel = db.con.sql(f"SELECT * FROM read_parquet({_quote_str(inp.uri)}) LIMIT 0")
            columns = list(zip(rel.columns, rel.types, strict=True))
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as e:
        raise IngestError(f"{inp.label}: is not a readable Parquet file ({str(e).splitlines()[0]}). "
                          "Export it again, or use CSV or JSON Lines.") from None
    select: dict[str, str] = {}
    for name, typ in columns:
        if name == "file_row_number":
            continue
        if typ.id == "struct":
            for sub, sub_type in typ.children:
                select.setdefault(f"{name}.{sub}", _parquet_text(f"{_quote_ident(name)}.{_quote_ident(sub)}",
                                                               sub_type.id))
        else:
            select.setdefault(name, _parquet_text(_quote_ident(name), typ.id))
    body = ", ".join(f"{expr} AS {_quote_ident(h)}" for h, expr in select.items())
    try:
        db.execute(f"""CREATE OR REPLACE TEMP TABLE _capi_stage AS
            SELECT {body}, CAST(file_row_number + 1 AS BIGINT) AS _line, false AS _malformed
            FROM read_parquet(?, file_row_number=true)""", [inp.uri])
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as e:
        raise IngestError(f"{inp.label}: is not a readable Parquet file ({str(e).splitlines()[0]}). "
                          "Export it again, or use CSV or JSON Lines.") from None
    return list(select)


def flatten_json_stage(db: Database, paths: dict[str, list[str]]) -> list[str]:
    """Replace the staged JSON events by one VARCHAR column per flattened header, parsing each event
    once (``json_transform``) instead of once per field. Strings become their text, numbers their
    JSON text (``1.50`` -> ``1.5``), arrays and objects their JSON text (read as lists later)."""
    structure: dict[str, Any] = {}
    for parts in paths.values():
        if len(parts) == 1:
            structure[parts[0]] = "VARCHAR"
        else:
            structure.setdefault(parts[0], {})[parts[1]] = "VARCHAR"
    cols = ", ".join(
        f"_s.{'.'.join(_quote_ident(p) for p in parts)} AS {_quote_ident(h)}" for h, parts in paths.items())
    if not structure:  # no event with a key (no line, or only broken ones): nothing to transform
        db.execute("""CREATE OR REPLACE TEMP TABLE _capi_stage AS
            SELECT _line, _malformed, _body_test_code FROM _capi_stage""")
        return []
    db.execute(f"""CREATE OR REPLACE TEMP TABLE _capi_stage AS
        SELECT {cols + ', ' if cols else ''}_line, _malformed, _body_test_code
        FROM (SELECT *, CASE WHEN NOT _malformed THEN json_transform(_ev, {_quote_str(json.dumps(structure))})
                        END AS _s FROM _capi_stage)""")
    return list(paths)


OBJECT_GROUPS = ("user_data", "custom_data", "consent")
"""Keys whose value is an object of fields; an empty list there means an empty object."""


def json_headers(db: Database) -> dict[str, list[str]]:
    """Flattened keys of the staged events -> JSON path parts: top-level keys, and ``parent.child`` for
    the keys of object values (``user_data.em``), in order of first appearance."""
    rows = db.execute("""
        WITH k AS (
            SELECT key, min(_line) AS first_line, bool_or(json_type(_ev, '$."' || replace(key, '"', '\\"') || '"')
                   = 'OBJECT') AS is_obj,
                   bool_and(CAST(json_extract(_ev, '$."' || replace(key, '"', '\\"') || '"') AS VARCHAR) = '[]')
                       AS empty_list
            FROM (SELECT _line, _ev, unnest(json_keys(_ev)) AS key FROM _capi_stage WHERE NOT _malformed)
            GROUP BY key)
        SELECT key, is_obj, empty_list FROM k ORDER BY first_line, key""").fetchall()
    headers: dict[str, list[str]] = {}
    for key, is_obj, empty_list in rows:
        if key == "file_row_number" or (empty_list and key in OBJECT_GROUPS):
            continue  # PHP writes an empty user_data / custom_data as [] (json_encode of array()): as {}
        if is_obj:
            path = _quote_str(_json_path([key]))
            subs = db.execute(f"""
                SELECT sub FROM (SELECT unnest(json_keys(json_extract(_ev, {path}))) AS sub, min(_line) AS fl
                FROM _capi_stage WHERE NOT _malformed AND json_type(_ev, {path}) = 'OBJECT' GROUP BY sub)
                ORDER BY fl, sub""").fetchall()
            for (sub,) in subs:
                headers.setdefault(f"{key}.{sub}", [key, sub])
        else:
            headers.setdefault(key, [key])
    return headers


# -- one file -----------------------------------------------------------------------------------------

def _import_file(db: Database, role: Role, src: Source, file_index: int, tz: str,
                 row_offset: int = 0) -> FileReport:
    report = FileReport(name=src.name, role=role.value)
    src, report.warnings = har.as_browser_log(src, role.value)  # a HAR: its Pixel hits (io/har.py)
    inp = StagedInput(db, src, role)
    try:
        head = inp.head()
        if not head.strip(b" \t\r\n\xef\xbb\xbf"):
            raise IngestError(f"{inp.label}: is empty. Export the log again with a header row and "
                              "at least one event.")
        report.format = detect_format(src.name, head)
        if report.format == "parquet":
            report.encoding = "binary (parquet)"
        else:
            report.encoding = detect_encoding(inp.label, head)
            if report.encoding in ("windows-1252", "utf-16"):
                transcode(inp, report)
        try:
            mapping = _parse_file(db, inp, report, file_index, tz, row_offset)
        except Reencode:
            report.encoding = "windows-1252"
            transcode(inp, report)
            try:
                mapping = _parse_file(db, inp, report, file_index, tz, row_offset)
            except Reencode:
                raise IngestError(f"{inp.label}: its text cannot be decoded (neither UTF-8 nor "
                                  "Windows-1252). Export the log again as UTF-8.") from None
        report.mapping = {h: f for f, h in mapping.canonical.items()}
        report.unknown_columns = list(mapping.unknown)
        report.warnings += mapping.warnings
        if mapping.custom:
            report.mapping.update({h: f"custom_data_extra.{k}" for k, h in mapping.custom.items()})
        report.warnings += mapping_notes(mapping, inp.request_fields)
        _summarize(db, report, mapping)
        if report.rows_loaded == 0:
            reasons = ", ".join(f"{k}: {v}" for k, v in report.rejected_reasons.items())
            ex = report.rejected_examples[0] if report.rejected_examples else {}
            raise IngestError(
                f"{inp.label}: every row was rejected ({reasons}); e.g. line {ex.get('line')}: "
                f"{ex.get('reason')} (event_time {ex.get('event_time')!r}). Fix those columns and import again."
            )
        if not _adopt_canon(db, role, file_index, report.rows_rejected):
            cols = ", ".join(_quote_ident(c) for c, _ in canonical_columns())
            db.execute(f"INSERT INTO {role.table} SELECT {cols} FROM _capi_canon WHERE _reject IS NULL")
        return report
    finally:
        drop_staging(db)
        inp.close()


def _parse_file(db: Database, inp: StagedInput, report: FileReport, file_index: int, tz: str,
                row_offset: int) -> HeaderMapping:
    """Stage one file and parse its rows into ``_capi_canon`` (canonical columns, ``_malformed``,
    ``_consent_unreadable``, ``_reject``); returns its header mapping. A CSV file is parsed straight
    from DuckDB's reader (one pass, no raw copy). Raises :class:`Reencode` for text that is not UTF-8."""
    if report.format == "parquet":
        headers = stage_parquet(db, inp)
    elif report.format == "json":
        _stage_json_lines(db, inp, report)
        headers = flatten_json_stage(db, json_headers(db))
    else:
        headers = _stage_csv(db, inp, report)
    mapping = map_headers(headers)
    if any(f not in mapping.canonical for f in REQUIRED):
        rows = (_count_csv_stage(db, inp) if report.format == "csv"
                else db.fetchone("SELECT count(*) FROM _capi_stage")[0])
        if rows == 0:
            raise _no_rows_error(inp)
        raise missing_required_error(inp.label, headers, mapping)
    body_code = report.format == "json" and db.fetchone(
        "SELECT count(*) FROM (DESCRIBE _capi_stage) WHERE column_name = '_body_test_code'")[0] > 0

    def select(stage: str) -> str:
        return _canonical_select(mapping, name=inp.src.name, file_index=file_index, tz=_quote_str(tz),
                                 body_code=body_code, row_offset=row_offset,
                                 order="_ord" if report.format == "csv" else "rowid", stage=stage)

    if report.format == "csv":
        _parse_csv_stage(db, inp, headers, select, f"row_id = rowid + {int(row_offset)}, line = rowid + 2")
    else:
        db.execute(f"CREATE OR REPLACE TABLE _capi_canon AS {select('_capi_stage')}")
    if db.fetchone("SELECT count(*) FROM _capi_canon")[0] == 0:
        raise _no_rows_error(inp)
    return mapping


def _no_rows_error(inp: StagedInput) -> IngestError:
    return IngestError(f"{inp.label}: has a header but no data rows. Export the log again with its events.")


def _adopt_canon(db: Database, role: Role, file_index: int, rejected: int) -> bool:
    """The first file of a role: its parsed rows become the role's table (rejected rows deleted, the
    helper columns dropped, the table renamed) instead of being copied by a second insert. False
    (nothing done) for a later file, or when the columns differ from the canonical ones."""
    if file_index != 0:
        return False
    want = [(c, t) for c, t in canonical_columns()]
    have = [(r[0], r[1]) for r in db.fetchall("SELECT column_name, column_type FROM (DESCRIBE main._capi_canon)")]
    if have != [*want, ("_malformed", "BOOLEAN"), ("_consent_unreadable", "BOOLEAN"), ("_reject", "VARCHAR")]:
        return False
    if rejected:
        db.execute("DELETE FROM main._capi_canon WHERE _reject IS NOT NULL")
    for c in ("_reject", "_consent_unreadable", "_malformed"):
        db.execute(f"ALTER TABLE main._capi_canon DROP COLUMN {c}")
    db.execute(f"DROP TABLE {role.table}")
    db.execute(f"ALTER TABLE main._capi_canon RENAME TO {role.table}")
    return True


def drop_staging(db: Database) -> None:
    """Drop the staging objects of one file (the CSV stage is a view over the reader or ``_capi_raw``)."""
    kinds = dict(db.fetchall("SELECT table_name, table_type FROM information_schema.tables "
                             "WHERE table_name LIKE '\\_capi\\_%' ESCAPE '\\'"))
    for t in ("_capi_stage", "_capi_canon", "_capi_raw", "_capi_lines", "_capi_docs", "_capi_grouped",
              "_capi_rej", "_capi_rejscan"):
        if t in kinds:
            db.execute(f"DROP {'VIEW' if kinds[t] == 'VIEW' else 'TABLE'} IF EXISTS {t}")


def csv_headers(db: Database) -> list[str]:
    return [r[0] for r in db.fetchall("SELECT column_name FROM (DESCRIBE _capi_stage)")
            if r[0] not in ("_line", "_malformed", "_ord")]


def stage_text(db: Database, inp: StagedInput, report: FileReport) -> None:
    """Stage a text file as ``_capi_stage`` for a small import (orders): JSON Lines, or a CSV file's rows
    copied into ``_capi_raw`` and its malformed lines (the log import reads CSV in one pass instead)."""
    if report.format == "json":
        _stage_json_lines(db, inp, report)
        return
    headers = _stage_csv(db, inp, report)
    with _reading_csv(inp):
        db.execute("CREATE OR REPLACE TEMP TABLE _capi_raw AS SELECT * FROM _capi_stage")
    _number_rows(db, "_capi_raw", "_line = rowid + 2, _ord = rowid")
    db.execute("CREATE OR REPLACE TEMP VIEW _capi_stage AS SELECT * FROM _capi_raw "
               f"UNION ALL SELECT * FROM {_malformed_stage(headers)}")


def transcode(inp: StagedInput, report: FileReport) -> None:
    raw = inp.all_bytes()
    if report.encoding == "utf-16":
        text = raw.decode("utf-16")
    else:
        text = raw.decode("cp1252", errors="replace")
        report.warnings.append("the file is not valid UTF-8; it was decoded as Windows-1252 (Excel export). "
                               "Check accented characters, or export as UTF-8.")
    inp.replace_with_text(text)


def _summarize(db: Database, report: FileReport, mapping: HeaderMapping) -> None:
    row = db.fetchone("""SELECT count(*), count(*) FILTER (_reject IS NULL),
        count(*) FILTER (_reject IS NULL AND event_time_tz_missing) FROM _capi_canon""")
    report.rows_read, report.rows_loaded, report.no_time_zone = int(row[0]), int(row[1]), int(row[2])
    report.rows_rejected = report.rows_read - report.rows_loaded
    reasons = dict(db.fetchall("""SELECT _reject, count(*) FROM _capi_canon WHERE _reject IS NOT NULL
                                 GROUP BY _reject"""))
    report.rejected_reasons = {r: int(reasons[r]) for r in REJECT_REASONS if r in reasons}
    examples = db.fetchall(f"""SELECT line, _reject, event_name, event_time_raw FROM _capi_canon
        WHERE _reject IS NOT NULL ORDER BY line LIMIT {EXAMPLES}""")
    report.rejected_examples = [{"line": int(li), "reason": r, "event_name": n, "event_time": t}
                                for li, r, n, t in examples]
    report.time_formats = {u: int(n) for u, n in db.fetchall("""SELECT event_time_raw_unit, count(*)
        FROM _capi_canon WHERE _reject IS NULL GROUP BY 1 ORDER BY 1""")}
    if "sent_at" in mapping.canonical:
        bad = db.fetchone("""SELECT count(*) FROM _capi_canon WHERE _reject IS NULL
            AND capi_text(sent_at_raw) IS NOT NULL AND sent_at IS NULL""")[0]
        if bad:
            report.warnings.append(f"{bad} rows have a sent_at that cannot be read as a time; "
                                   "it is treated as missing")
    consent_cols = [f for f in mapping.canonical if f.startswith("consent_") and f != "consent_region"]
    if consent_cols:
        bad = db.fetchone("SELECT count(*) FROM _capi_canon WHERE _reject IS NULL AND _consent_unreadable"
                         )[0]
        if bad:
            report.warnings.append(f"{bad} rows have a consent value other than granted/denied (true/false, "
                                   "1/0, yes/no); it is treated as missing")
    if report.no_time_zone:
        report.warnings.append(f"{report.no_time_zone} ISO-8601 times have no time zone; they were read as "
                               "UTC (use --assume-tz to change it)")
    unit_note = time_unit_warning(report.role, report.time_formats)
    if unit_note:
        report.warnings.append(unit_note)


def time_unit_warning(role: str, time_formats: dict[str, int]) -> str | None:
    """The import report's words for event_time values in ms / µs: Meta's rule for a server log; for a
    browser log (the Pixel's ``ts`` is in milliseconds) only that they were converted."""
    if not (time_formats.get("ms") or time_formats.get("us")):
        return None
    if role == Role.BROWSER.value:
        return ("event_time values in milliseconds (the Pixel's own unit, its ts parameter) were converted to "
                "seconds to compare them with the server log")
    return ("some event_time values are in milliseconds/microseconds; they were converted to seconds for "
            "analysis, but Meta requires Unix seconds")


# -- public entry point --------------------------------------------------------------------------------

def _check_tz(db: Database, tz: str) -> None:
    ok = db.fetchone("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [tz])[0]
    if not ok:
        raise ConfigError(f"--assume-tz {tz!r} is not a known time zone; use an IANA name such as "
                          "UTC or Europe/Berlin.")


def _create_table(db: Database, role: Role) -> None:
    _drop_role(db, role)
    cols = ", ".join(f"{_quote_ident(c)} {t}" for c, t in canonical_columns())
    db.execute(f"CREATE OR REPLACE TABLE {role.table} ({cols})")


def import_logs(db: Database, *, browser: Sequence[str | os.PathLike[str] | Source],
                server: Sequence[str | os.PathLike[str] | Source], assume_tz: str = "UTC",
                progress: ProgressFn | None = None) -> Dataset:
    """Import the browser and server logs into ``db``; return the :class:`Dataset`.

    Several files per role are combined, in the order given (``file_index``). Raises
    :class:`IngestError` for an unusable file, :class:`ConfigError` for an unknown ``assume_tz``.
    """
    try:
        return _import_logs(db, browser=browser, server=server, assume_tz=assume_tz, progress=progress)
    except duckdb.OutOfMemoryException as e:
        raise db.limit_error(e) from None


def _import_logs(db: Database, *, browser: Sequence[str | os.PathLike[str] | Source],
                 server: Sequence[str | os.PathLike[str] | Source], assume_tz: str,
                 progress: ProgressFn | None) -> Dataset:
    with db.lock:
        _check_tz(db, assume_tz)
        for stmt in [*MACROS.strip().split(";"), *pii.sql_macros(db.pii_key)]:
            if stmt.strip():
                db.execute(stmt)
        present: dict[str, frozenset[str]] = {}
        inputs: dict[str, Any] = {}
        known: dict[str, frozenset[str]] = {}  # multi-valued list columns learned by narrow_table
        lists = {name for name, typ in canonical_columns() if typ.endswith("[]")}
        plan = [(Role.BROWSER, [Source.of(s) for s in browser]), (Role.SERVER, [Source.of(s) for s in server])]
        total = sum(len(s) for _, s in plan) or 1
        done = 0
        for role, sources in plan:
            _create_table(db, role)
            reports: list[FileReport] = []
            fields: set[str] = set()
            offset = 0
            for i, src in enumerate(sources):
                if progress:
                    progress(f"Importing {role.value} log {src.name}", done / total)
                rep = _import_file(db, role, src, i, assume_tz, offset)
                offset += rep.rows_read
                reports.append(rep)
                fields |= {f for f in rep.mapping.values() if f in FIELDS_BY_NAME}
                done += 1
            present[role.value] = frozenset(fields)
            inputs[role.value] = role_summary(reports)
            _, multi = narrow_table(db, role, sorted(lists & fields))
            if multi is not None:
                known[role.value] = multi
        if progress:
            progress("Import finished", 1.0)
        db.tables_changed()
        ds = Dataset(db, present, inputs, multi=multi_valued(db, present, known))
        ds.save_meta()
        return ds


STORED_SUFFIX = "_stored"
"""The table of a role's stored columns is ``<role table>_stored`` (:func:`narrow_table`)."""
NARROW_MIN_ROWS = 50_000
"""Below this many rows a role's table is kept whole (:func:`narrow_table`): its empty columns cost a
few megabytes at most, less than the statements that would leave them out."""


def _drop_role(db: Database, role: Role) -> None:
    """Drop what an earlier import of ``role`` into this database left: the view over the stored
    columns (:func:`narrow_table`) and their table; the role's table itself is replaced."""
    if db.fetchone("SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", [role.table])[0]:
        db.execute(f"DROP VIEW {role.table}")
    db.execute(f"DROP TABLE IF EXISTS {role.table}{STORED_SUFFIX}")


def narrow_table(db: Database, role: Role, lists: Sequence[str] = ()) -> tuple[list[str], frozenset[str] | None]:
    """In a database kept in memory, store only the columns of ``role``'s table that hold a value:
    the table keeps them as ``<role table>_stored`` and the role's name becomes a view adding the
    empty columns as typed NULLs, in the canonical order (analyses see the same relation). DuckDB keeps
    an in-memory table uncompressed, empty columns included: the 1M logs of ``make bench`` leave 17 of
    55 server columns and 30 of 55 browser columns empty, and the two tables take 1.29 GB stored this
    way against 1.54 GB (``duckdb_memory()``). A database file compresses an empty column to almost
    nothing and is left as it is, and so is a table under :data:`NARROW_MIN_ROWS` rows. Returns the
    columns left out, and which of the list columns ``lists`` have a cell holding several values
    (learned in the same scan, for :func:`~capi_diag.engine.dataset.multi_valued`; None when the
    table was not scanned)."""
    if db.path != ":memory:":
        return [], None
    cols = canonical_columns()
    many = [f"coalesce(max(len({_quote_ident(c)})), 0) > 1" for c in lists]
    counts = db.fetchone("SELECT count(*), " + ", ".join([*(f"count({_quote_ident(c)})" for c, _ in cols), *many])
                         + f" FROM {role.table}")
    multi = frozenset(c for c, m in zip(lists, counts[1 + len(cols):], strict=True) if m)
    empty = [c for (c, _), n in zip(cols, counts[1:1 + len(cols)], strict=True) if n == 0]
    if counts[0] < max(NARROW_MIN_ROWS, 1) or not empty:  # a role without a log keeps its empty table
        return [], multi
    for c in empty:
        db.execute(f"ALTER TABLE {role.table} DROP COLUMN {_quote_ident(c)}")
    stored = f"{role.table}{STORED_SUFFIX}"
    db.execute(f"ALTER TABLE {role.table} RENAME TO {stored}")
    select = ", ".join(f"CAST(NULL AS {t}) AS {_quote_ident(c)}" if c in empty else _quote_ident(c) for c, t in cols)
    db.execute(f"CREATE VIEW {role.table} AS SELECT {select} FROM {stored}")
    return empty, multi


def role_summary(reports: list[FileReport]) -> dict[str, Any]:
    reasons: dict[str, int] = {}
    unknown: list[str] = []
    for r in reports:
        for k, v in r.rejected_reasons.items():
            reasons[k] = reasons.get(k, 0) + v
        unknown += [c for c in r.unknown_columns if c not in unknown]
    return {
        "files": [r.name for r in reports],
        "rows_read": sum(r.rows_read for r in reports),
        "rows": sum(r.rows_loaded for r in reports),
        "rejected_rows": sum(r.rows_rejected for r in reports),
        "rejected_reasons": {k: reasons[k] for k in REJECT_REASONS if k in reasons},
        "unknown_columns": unknown,
        "file_reports": [r.to_dict() for r in reports],
    }


def accepted_headers() -> dict[str, str]:
    """Every accepted header form -> canonical field (for docs and the dashboard)."""
    return dict(ALIASES)


__all__ = ["FileReport", "Source", "accepted_headers", "import_logs"]
