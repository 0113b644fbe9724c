"""The shop's orders export and Meta's answers -> the canonical tables ``capi_orders`` / ``capi_sends``.

Two optional inputs beside the two logs (each missing one leaves its report stages not evaluated):

* **an orders export** (CSV, JSON Lines or Parquet) read with the logs' staging machinery
  (:mod:`capi_diag.io.ingest`: encodings, gzip, uploads, Parquet structs) and mapped by the aliases of
  :data:`ORDER_FIELDS` (Shopify's ``Name, Created at, Total, Currency``; WooCommerce's
  ``Order ID / Order Number, Order Date, Order Total, Order Currency``; plain
  ``order_id, created_at, value, currency``). Only the order fields are kept: every other column
  (customers' emails, phones, addresses, names...) is dropped at import and counted in the import
  report as a dropped column. Rows are rejected, counted with their reason, when the order id is
  empty (``order_id_empty``), the creation time is empty / unreadable / implausible, or the row is
  malformed. An export with one row per line item (Shopify) is fine: an order is its distinct id.
* **Meta's answers**, either a **send log** (JSON Lines, one line per request, as
  ``capi-diag send-test --send-log-out FILE`` records it; see ``docs/send-log.md``), or response
  columns on the server log's rows (``http_status``, ``events_received``, ``error_code``,
  ``error_subcode``, ``error_message``, ``fbtrace_id``, kept by the import as unknown columns and
  read from there). An ``access_token`` or ``appsecret_proof`` in a send log is never stored: only
  the named fields are extracted, and each one found is counted as removed.

``capi_sends`` holds one row per event sent, with its request's answer; ``accepted`` is true when
the request got a 2xx without an error body.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from capi_diag.core.errors import IngestError
from capi_diag.core.schema import ORDERS_COLUMNS, ORDERS_TABLE, PLAUSIBLE_MAX, PLAUSIBLE_MIN, SENDS_COLUMNS, SENDS_TABLE
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.db import Database
from capi_diag.io import ingest
from capi_diag.io.ingest import FileReport, Source

ORDERS_INPUT, SENDS_INPUT = "orders", "sends"


@dataclass(frozen=True)
class OrderField:
    name: str
    aliases: tuple[str, ...]
    description: str


ORDER_FIELDS: tuple[OrderField, ...] = (
    OrderField("order_id", ("order_id", "Name", "Order ID", "Order Number", "order_number", "orderId", "id"),
               "The order number the shop shows (Shopify `#1001`: a leading `#` is ignored when matching)."),
    OrderField("created_at", ("created_at", "Created at", "Order Date", "date_created", "createdAt"),
               "When the order was placed: Unix s/ms/µs or ISO-8601 (no offset: `--assume-tz`)."),
    OrderField("total", ("value", "total", "Total", "Order Total", "total_price", "order_total"),
               "The order total as text (compared as a decimal)."),
    OrderField("currency", ("currency", "Currency", "Order Currency", "order_currency"),
               "ISO 4217 code."),
    OrderField("status", ("status", "Financial Status", "Order Status", "financial_status"),
               "Kept for the analyst (paid, refunded...)."),
)
ORDER_REQUIRED = ("order_id", "created_at")
ORDER_REJECT_REASONS = ("malformed_row", "order_id_empty", "created_at_empty", "created_at_unreadable",
                        "created_at_implausible")

RESPONSE_ALIASES: dict[str, tuple[str, ...]] = {
    "http_status": ("http_status", "status_code", "response_status", "response.status"),
    "events_received": ("events_received", "response.events_received"),
    "error_code": ("error_code", "error.code", "response.error.code"),
    "error_subcode": ("error_subcode", "error.error_subcode", "response.error.error_subcode"),
    "error_message": ("error_message", "error.message", "response.error.message"),
    "fbtrace_id": ("fbtrace_id", "response.fbtrace_id"),
    "messages": ("messages", "response.messages"),
}
"""Response columns accepted on server-log rows (matched ignoring case)."""

SECRET_KEYS = ("access_token", "appsecret_proof")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _s(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class ExtraFileReport(FileReport):
    """The import report of an orders export or a send log: also the columns dropped (customer
    details) and the tokens removed."""

    dropped_columns: list[str] = field(default_factory=list)
    secrets_removed: int = 0


class StagedInput(ingest.StagedInput):
    """The logs' input resolver, labelled for an orders export or a send log."""

    def __init__(self, db: Database, src: Source, label: str) -> None:  # noqa: D107
        super().__init__(db, src, None, label)


# -- the orders export -------------------------------------------------------------------------------

def _map_order_headers(headers: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``(canonical -> header, dropped headers)``; exact alias first, then ignoring case."""
    chosen: dict[str, tuple[int, str]] = {}
    for h in headers:
        for f in ORDER_FIELDS:
            folded = [a.lower() for a in f.aliases]
            key = h.strip().lower()
            if h in f.aliases or key in folded:
                rank = f.aliases.index(h) if h in f.aliases else folded.index(key) + 0.5
                if f.name not in chosen or rank < chosen[f.name][0]:
                    chosen[f.name] = (rank, h)
                break
    mapping = {k: v for k, (_, v) in chosen.items()}
    used = set(mapping.values())
    return mapping, [h for h in headers if h not in used]


def _stage(db: Database, inp: StagedInput, report: FileReport) -> list[str]:
    """Stage one file as VARCHAR columns (``_capi_stage``) the way the log import does."""
    head = inp.head()
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise IngestError(f"{inp.label}: is empty. Export it again with a header row and at least one row.")
    report.format = ingest.detect_format(inp.src.name, head)
    if report.format == "parquet":
        report.encoding = "binary (parquet)"
        return ingest.stage_parquet(db, inp)
    report.encoding = ingest.detect_encoding(inp.label, head)
    if report.encoding == "windows-1252" or (report.encoding == "utf-16" and report.format == "json"):
        ingest.transcode(inp, report)
    try:
        ingest.stage_text(db, inp, report)
    except ingest.Reencode:
        report.encoding = "windows-1252"
        ingest.transcode(inp, report)
        ingest.stage_text(db, inp, report)
    if report.format == "json":
        return ingest.flatten_json_stage(db, ingest.json_headers(db))
    return ingest.csv_headers(db)


def _create(db: Database, table: str, columns: Sequence[tuple[str, str]]) -> None:
    db.execute(f"CREATE OR REPLACE TABLE {table} ({', '.join(f'{_q(c)} {t}' for c, t in columns)})")


def _import_orders_file(db: Database, src: Source, file_index: int, tz: str, offset: int) -> ExtraFileReport:
    report = ExtraFileReport(name=src.name, role=ORDERS_INPUT)
    inp = StagedInput(db, src, f"orders export '{src.name}'")
    try:
        headers = _stage(db, inp, report)
        mapping, dropped = _map_order_headers(headers)
        report.mapping = {h: f for f, h in mapping.items()}
        report.unknown_columns = []
        report.dropped_columns = dropped
        total = db.fetchone("SELECT count(*) FROM _capi_stage")[0]
        if total == 0:
            raise IngestError(f"{inp.label}: has a header but no data rows. Export the orders again.")
        missing = [f for f in ORDER_REQUIRED if f not in mapping]
        if missing:
            hints = "; ".join(f"{f}: rename a column to one of "
                              + ", ".join(next(o.aliases for o in ORDER_FIELDS if o.name == f)) for f in missing)
            shown = ", ".join(repr(h) for h in headers[:15])
            raise IngestError(f"{inp.label}: no column maps to {' or '.join(missing)}. Headers found: {shown}. "
                              f"{hints}.")

        def col(name: str) -> str:
            return f"capi_text({_q(mapping[name])})" if name in mapping else "CAST(NULL AS VARCHAR)"

        tzs = _s(tz)
        # Shopify writes "2026-11-18 10:00:00 +0100": the offset's space is dropped before reading it.
        ca = f"regexp_replace(trim({_q(mapping['created_at'])}), '\\s+([+-][0-9]{{2}}:?[0-9]{{2}})$', '\\1')"
        order = "_ord" if report.format == "csv" else "rowid"
        db.execute(f"""CREATE OR REPLACE TEMP TABLE _capi_canon AS
            SELECT *, CASE WHEN _malformed THEN 'malformed_row'
                           WHEN order_id IS NULL THEN 'order_id_empty'
                           WHEN created_at_raw IS NULL THEN 'created_at_empty'
                           WHEN created_at IS NULL THEN 'created_at_unreadable'
                           WHEN created_at < {PLAUSIBLE_MIN} OR created_at > {PLAUSIBLE_MAX}
                                THEN 'created_at_implausible' END AS _reject
            FROM (SELECT CAST({order} + {int(offset)} AS BIGINT) AS row_id, {_s(src.name)} AS source_file,
                         {int(file_index)} AS file_index, _line AS line,
                         trim({col('order_id')}) AS order_id,
                         capi_time_s({ca}, capi_time_unit({ca}, {tzs}), {tzs}) AS created_at,
                         capi_text({ca}) AS created_at_raw,
                         replace(trim({col('total')}), ' ', '') AS total,
                         upper(trim({col('currency')})) AS currency, trim({col('status')}) AS status,
                         _malformed
                  FROM _capi_stage)""")
        row = db.fetchone("SELECT count(*), count(*) FILTER (_reject IS NULL) FROM _capi_canon")
        report.rows_read, report.rows_loaded = int(row[0]), int(row[1])
        report.rows_rejected = report.rows_read - report.rows_loaded
        reasons = dict(db.fetchall("SELECT _reject, count(*) FROM _capi_canon WHERE _reject IS NOT NULL "
                                   "GROUP BY 1"))
        report.rejected_reasons = {r: int(reasons[r]) for r in ORDER_REJECT_REASONS if r in reasons}
        report.rejected_examples = [
            {"line": int(li), "reason": r, "order_id": o, "created_at": c}
            for li, r, o, c in db.fetchall("SELECT line, _reject, order_id, created_at_raw FROM _capi_canon "
                                           f"WHERE _reject IS NOT NULL ORDER BY line LIMIT {ingest.EXAMPLES}")]
        if report.rows_loaded == 0:
            ex = report.rejected_examples[0]
            raise IngestError(f"{inp.label}: every row was rejected; e.g. line {ex['line']}: {ex['reason']}. "
                              "Fix the order id and creation time columns and import again.")
        if dropped:
            report.warnings.append(f"{len(dropped)} column(s) that are not order fields were dropped "
                                   "(customer details are never stored)")
        cols = ", ".join(_q(c) for c, _ in ORDERS_COLUMNS)
        db.execute(f"INSERT INTO {ORDERS_TABLE} SELECT {cols} FROM _capi_canon WHERE _reject IS NULL")
        return report
    finally:
        ingest.drop_staging(db)
        inp.close()


# -- the send log -------------------------------------------------------------------------------------

def _first(doc: str, paths: Sequence[str]) -> str:
    return "coalesce(" + ", ".join(f"{doc} ->> {_s(p)}" for p in paths) + ")"


def _int(expr: str) -> str:
    return f"TRY_CAST(TRY_CAST({expr} AS DOUBLE) AS INTEGER)"


def _import_send_log_file(db: Database, src: Source, file_index: int, offset: int) -> ExtraFileReport:
    """One send log: each line a request (``request.data``), its HTTP status and Meta's answer."""
    report = ExtraFileReport(name=src.name, role=SENDS_INPUT, format="json")
    inp = StagedInput(db, src, f"send log '{src.name}'")
    try:
        head = inp.head()
        if not head.strip(b" \t\r\n\xef\xbb\xbf"):
            raise IngestError(f"{inp.label}: is empty. Record sends with 'capi-diag send-test --send-log-out'.")
        if inp.is_gzip():
            inp.replace_with_text(inp.all_bytes().decode("utf-8", errors="replace"))
        try:
            db.execute("""CREATE OR REPLACE TEMP TABLE _capi_lines AS
                WITH t AS (SELECT string_split(replace(content, chr(13), ''), chr(10)) AS parts FROM read_text(?))
                SELECT CAST(unnest(generate_series(1, len(parts))) AS BIGINT) AS _line, unnest(parts) AS l
                FROM t""", [inp.uri])
        except duckdb.Error as e:
            raise IngestError(f"{inp.label}: could not be read ({str(e).splitlines()[0]}). "
                              "A send log is UTF-8 JSON Lines, one request per line.") from None
        db.execute("DELETE FROM _capi_lines WHERE l IS NULL OR regexp_full_match(l, '\\s*')")
        req = "coalesce(_doc -> '$.request', _doc -> '$.body')"
        resp = "coalesce(_doc -> '$.response', _doc -> '$.response_body')"
        db.execute(f"""CREATE OR REPLACE TEMP TABLE _capi_docs AS
            SELECT _line, _doc, {req} AS _req, {resp} AS _resp,
                   (_doc IS NULL OR json_type(_doc) <> 'OBJECT'
                    OR json_type({req}, '$.data') IS DISTINCT FROM 'ARRAY') AS _malformed
            FROM (SELECT _line, CASE WHEN json_valid(l) THEN l::JSON END AS _doc FROM _capi_lines)""")
        secrets = " + ".join(
            f"(CASE WHEN json_exists(_doc, '$.{k}') THEN 1 ELSE 0 END)"
            f" + (CASE WHEN json_exists(_req, '$.{k}') THEN 1 ELSE 0 END)" for k in SECRET_KEYS)
        n_lines, n_bad, n_secrets = db.fetchone(
            f"SELECT count(*), count(*) FILTER (_malformed), coalesce(sum(CASE WHEN _malformed THEN 0 ELSE "
            f"{secrets} END), 0) FROM _capi_docs")
        if n_lines == 0:
            raise IngestError(f"{inp.label}: has no requests.")
        if n_bad == n_lines:
            raise IngestError(f"{inp.label}: no line is a request record (a JSON object with "
                              "request.data, http_status and response); see docs/send-log.md.")
        report.rejected_reasons = {"malformed_row": int(n_bad)} if n_bad else {}
        report.rejected_examples = [{"line": int(li), "reason": "malformed_row"} for (li,) in db.fetchall(
            f"SELECT _line FROM _capi_docs WHERE _malformed ORDER BY _line LIMIT {ingest.EXAMPLES}")]
        report.rows_rejected = int(n_bad)
        if n_secrets:
            report.warnings.append(f"{int(n_secrets)} access_token/appsecret_proof value(s) found in the send "
                                   "log were removed at import (never stored)")
        report.secrets_removed = int(n_secrets)
        status = _int(_first("_doc", ("$.http_status", "$.status", "$.status_code")))
        ev = "_ev"
        db.execute(f"""CREATE OR REPLACE TEMP TABLE _capi_canon AS
            WITH r AS (
                SELECT _line, _req, _resp, {status} AS http_status,
                       capi_time_s(_doc ->> '$.sent_at', capi_time_unit(_doc ->> '$.sent_at', 'UTC'), 'UTC')
                           AS sent_at,
                       coalesce(_doc ->> '$.pixel_id', _doc ->> '$.dataset_id') AS pixel_id,
                       from_json(json_extract(_req, '$.data'), '["JSON"]') AS evs
                FROM _capi_docs WHERE NOT _malformed),
            e AS (SELECT r.* EXCLUDE (evs), unnest(evs) AS _ev, generate_subscripts(evs, 1) AS position,
                         len(evs) AS events_sent FROM r)
            SELECT CAST(row_number() OVER (ORDER BY _line, position) - 1 + {int(offset)} AS BIGINT) AS row_id,
                   {_s(src.name)} AS source_file, {int(file_index)} AS file_index, _line AS line,
                   {_s(src.name)} || ':' || _line::VARCHAR AS request_id, CAST(position AS INTEGER) AS position,
                   sent_at, pixel_id,
                   capi_text({ev} ->> '$.event_name') AS event_name,
                   capi_text({ev} ->> '$.event_id') AS event_id,
                   capi_time_s({ev} ->> '$.event_time', capi_time_unit({ev} ->> '$.event_time', 'UTC'), 'UTC')
                       AS event_time,
                   capi_text({ev} ->> '$.custom_data.order_id') AS order_id,
                   capi_text({ev} ->> '$.custom_data.value') AS value,
                   capi_text({ev} ->> '$.custom_data.currency') AS currency,
                   CAST(http_status AS INTEGER) AS http_status,
                   (http_status BETWEEN 200 AND 299 AND (_resp -> '$.error') IS NULL) AS accepted,
                   CAST(events_sent AS INTEGER) AS events_sent,
                   {_int("_resp ->> '$.events_received'")} AS events_received,
                   {_int("_resp ->> '$.error.code'")} AS error_code,
                   {_int("_resp ->> '$.error.error_subcode'")} AS error_subcode,
                   coalesce(_resp ->> '$.error.error_user_msg', _resp ->> '$.error.message') AS error_message,
                   coalesce(_resp ->> '$.fbtrace_id', _resp ->> '$.error.fbtrace_id') AS fbtrace_id,
                   CASE WHEN json_type(_resp, '$.messages') = 'ARRAY' AND json_array_length(_resp, '$.messages') > 0
                        THEN CAST(json_extract(_resp, '$.messages') AS VARCHAR) END AS messages,
                   CAST(NULL AS BIGINT) AS server_row_id
            FROM e""")
        report.rows_read = int(n_lines)
        report.rows_loaded = int(db.fetchone("SELECT count(*) FROM _capi_canon")[0])
        report.mapping = {"request.data": "events", "http_status": "http_status", "response": "answer"}
        cols = ", ".join(_q(c) for c, _ in SENDS_COLUMNS)
        db.execute(f"INSERT INTO {SENDS_TABLE} SELECT {cols} FROM _capi_canon")
        return report
    finally:
        for t in ("_capi_canon", "_capi_lines", "_capi_docs"):
            db.execute(f"DROP TABLE IF EXISTS {t}")
        inp.close()


def _response_columns(ds: Dataset) -> dict[str, str]:
    """The server log's unknown columns that carry Meta's answers: canonical name -> header."""
    unknown = list((ds.inputs.get("server") or {}).get("unknown_columns") or [])
    out: dict[str, str] = {}
    for name, aliases in RESPONSE_ALIASES.items():
        folded = [a.lower() for a in aliases]
        for h in unknown:
            if h.strip().lower() in folded:
                out.setdefault(name, h)
    return out


def _sends_from_server_log(db: Database, cols: dict[str, str]) -> int:
    """Fill ``capi_sends`` from the response columns of the server log's rows (kept in ``extra``)."""
    def x(name: str) -> str:
        if name not in cols:
            return "CAST(NULL AS VARCHAR)"
        return f"capi_text(json_extract_string(extra, {_s('$.' + json.dumps(cols[name]))}))"

    status = _int(x("http_status"))
    db.execute(f"""INSERT INTO {SENDS_TABLE}
        SELECT row_id, source_file, file_index, line, source_file || ':' || line::VARCHAR, 1, sent_at, pixel_id,
               event_name, event_id, event_time, order_id, value, currency, {status},
               ({status} BETWEEN 200 AND 299 AND {_int(x('error_code'))} IS NULL),
               1, {_int(x('events_received'))}, {_int(x('error_code'))}, {_int(x('error_subcode'))},
               {x('error_message')}, {x('fbtrace_id')},
               CASE WHEN {x('messages')} IS NOT NULL AND {x('messages')} NOT IN ('[]', '') THEN {x('messages')} END,
               row_id
        FROM server_events WHERE {status} IS NOT NULL""")
    return int(db.fetchone(f"SELECT count(*) FROM {SENDS_TABLE}")[0])


# -- public entry point --------------------------------------------------------------------------------

def import_extras(ds: Dataset, *, orders: Sequence[str | os.PathLike[str] | Source] = (),
                  send_log: Sequence[str | os.PathLike[str] | Source] = (), assume_tz: str = "UTC") -> Dataset:
    """Import the orders export and Meta's answers beside the logs of ``ds`` (already imported).

    Returns a new :class:`Dataset` whose ``present`` lists ``orders`` / ``sends`` (so their absence
    is part of the plan) and whose ``inputs`` carry their import reports. Without a send log, the
    server log's response columns (if any) fill ``capi_sends``.
    """
    db = ds.db
    present = dict(ds.present)
    inputs = dict(ds.inputs)
    with db.lock:
        for stmt in ingest.MACROS.strip().split(";"):
            if stmt.strip():
                db.execute(stmt)
        _create(db, ORDERS_TABLE, ORDERS_COLUMNS)
        _create(db, SENDS_TABLE, SENDS_COLUMNS)
        present.pop(ORDERS_INPUT, None)
        present.pop(SENDS_INPUT, None)
        inputs.pop(ORDERS_INPUT, None)
        inputs.pop(SENDS_INPUT, None)
        if orders:
            reports, offset = [], 0
            for i, item in enumerate(orders):
                rep = _import_orders_file(db, Source.of(item), i, assume_tz, offset)
                offset += rep.rows_read
                reports.append(rep)
            fields = {f for r in reports for f in r.mapping.values()}
            present[ORDERS_INPUT] = frozenset(fields)
            inputs[ORDERS_INPUT] = _summary(reports, ORDERS_INPUT)
        if send_log:
            reports, offset = [], 0
            for i, item in enumerate(send_log):
                rep = _import_send_log_file(db, Source.of(item), i, offset)
                offset += rep.rows_loaded
                reports.append(rep)
            present[SENDS_INPUT] = frozenset({"send_log"})
            inputs[SENDS_INPUT] = _summary(reports, SENDS_INPUT)
        else:
            cols = _response_columns(ds)
            if "http_status" in cols:
                n = _sends_from_server_log(db, cols)
                present[SENDS_INPUT] = frozenset({"server_columns"})
                inputs[SENDS_INPUT] = {"files": list(inputs.get("server", {}).get("files", [])), "rows": n,
                                       "from": "server log response columns", "columns": cols}
        db.tables_changed()
    new = Dataset(db, present, inputs, ds.filters, ds.config, multi=ds.multi)
    new.save_meta()
    return new


def _summary(reports: list[ExtraFileReport], kind: str) -> dict[str, Any]:
    reasons: dict[str, int] = {}
    dropped: list[str] = []
    for r in reports:
        for k, v in r.rejected_reasons.items():
            reasons[k] = reasons.get(k, 0) + v
        dropped += [c for c in r.dropped_columns if c not in dropped]
    out: dict[str, Any] = {
        "files": [r.name for r in reports],
        "rows_read": sum(r.rows_read for r in reports),
        "rows": sum(r.rows_loaded for r in reports),
        "rejected_rows": sum(r.rows_rejected for r in reports),
        "rejected_reasons": reasons,
        "unknown_columns": [],
        "file_reports": [r.to_dict() for r in reports],
    }
    if kind == ORDERS_INPUT:
        out["dropped_columns"] = dropped
    else:
        out["secrets_removed"] = sum(r.secrets_removed for r in reports)
    return out


__all__ = ["ORDER_FIELDS", "ORDERS_TABLE", "SENDS_TABLE", "ExtraFileReport", "import_extras"]
