"""The import on Spark: the logs read with Spark's readers into the canonical tables of a
:class:`~capi_diag.engine.spark.SparkDatabase`.

The import (:func:`import_logs`) reads with Spark's readers (CSV, JSON Lines, Parquet files, globs,
partitioned Parquet folders, or tables by name), maps the headers with the import's own mapping
(:func:`capi_diag.io.ingest.map_headers` over :mod:`capi_diag.core.schema`) and types the cells with the same
rules as DuckDB's import (text first; ``event_time`` from Unix s / ms / µs or ISO-8601 with the same
thresholds; lists from one value or a JSON array; consent words), written in Spark SQL here because
DuckDB's import is DuckDB-native SQL. Rejected rows are counted with the same reasons.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from capi_diag.core import patterns
from capi_diag.core.errors import ConfigError, IngestError, UsageError
from capi_diag.core.schema import (
    FIELDS,
    MS_THRESHOLD,
    PLAUSIBLE_MAX,
    PLAUSIBLE_MIN,
    REQUIRED,
    US_THRESHOLD,
    Kind,
    Role,
    canonical_columns,
)
from capi_diag.engine import pii
from capi_diag.engine.spark import SparkDatabase

_SPARK_TYPES = {"VARCHAR": "string", "VARCHAR[]": "array<string>", "BIGINT": "bigint",
                "INTEGER": "int", "BOOLEAN": "boolean"}

# -- Spark SQL building blocks of the import (DuckDB's macros in ingest.MACROS, same rules) ---------

def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_WS = r"[ \\t\\n\\f\\r]"  # RE2's \s (DuckDB), spelled out: Java's \s also matches \x0B


def _text(s: str) -> str:
    return f"(CASE WHEN {s} IS NULL OR {s} RLIKE '\\\\A{_WS}*\\\\z' THEN NULL ELSE {s} END)"


def _num(s: str) -> str:
    return (f"(CASE WHEN trim({s}) RLIKE '\\\\A[+-]?[0-9]+(\\\\.[0-9]*)?([eE][+-]?[0-9]+)?\\\\z' "
            f"THEN CAST(trim({s}) AS DOUBLE) END)")


def _has_tz(s: str) -> str:
    return f"(trim({s}) RLIKE '(Z|z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)\\\\z')"


def _iso(s: str, tz: str) -> str:
    return (f"(CASE WHEN {_has_tz(s)} THEN try_cast(trim({s}) AS TIMESTAMP) "
            f"ELSE to_utc_timestamp(try_cast(trim({s}) AS TIMESTAMP), {tz}) END)")


def _list_raw(s: str) -> str:
    parsed = f"from_json(trim({s}), 'array<string>')"
    return (f"(CASE WHEN {s} IS NULL THEN NULL "
            f"WHEN {s} RLIKE '(?s)\\\\A{_WS}*\\\\[.*\\\\]{_WS}*\\\\z' AND {parsed} IS NOT NULL THEN {parsed} "
            f"ELSE array({s}) END)")


def _list_clean(expr: str) -> str:
    kept = f"filter({expr}, x -> {_text('x')} IS NOT NULL)"
    return f"(CASE WHEN {expr} IS NULL OR size({kept}) = 0 THEN NULL ELSE {kept} END)"


def _consent(s: str) -> str:
    w = f"lower(trim({s}))"
    return (f"(CASE WHEN {w} IN ('granted', 'true', '1', 'yes', 'y') THEN 'granted' "
            f"WHEN {w} IN ('denied', 'false', '0', 'no', 'n') THEN 'denied' END)")


def _time_columns(col: str | None, prefix: str, tz: str) -> dict[str, str]:
    """Unit and seconds of a time column (event_time / sent_at), as in DuckDB's capi_time_unit/_s."""
    if col is None:
        return {f"{prefix}_unit": "CAST(NULL AS STRING)", f"{prefix}_s": "CAST(NULL AS BIGINT)",
                f"{prefix}_tzless": "CAST(NULL AS BOOLEAN)"}
    n, iso = f"_n_{prefix}", f"_i_{prefix}"
    unit = (f"(CASE WHEN {_text(col)} IS NULL THEN NULL WHEN {n} IS NOT NULL THEN "
            f"CASE WHEN abs({n}) >= {US_THRESHOLD} THEN 'us' WHEN abs({n}) >= {MS_THRESHOLD} THEN 'ms' "
            f"ELSE 's' END WHEN {iso} IS NOT NULL THEN 'iso' END)")
    secs = (f"CAST(floor(CASE {unit} WHEN 's' THEN {n} WHEN 'ms' THEN {n} / 1000 "
            f"WHEN 'us' THEN {n} / 1000000 WHEN 'iso' THEN unix_micros({iso}) / 1000000.0 END) AS BIGINT)")
    return {f"{prefix}_unit": unit, f"{prefix}_s": secs,
            f"{prefix}_tzless": f"({unit} = 'iso' AND NOT {_has_tz(col)})"}


def _pii_at_rest(field: str, x: str, key: str) -> str:
    """Spark SQL of :func:`capi_diag.engine.pii.sql_macros`' ``capi_pii_at_rest``: an ``em``/``ph`` value the
    value rules call unhashed is stored as its display mask + ``#`` + a fingerprint under ``key``."""
    keep = " OR ".join(f"{x} RLIKE {_lit(p)}" for p in (
        patterns.BLANK_RE, patterns.HASH_RE, patterns.SPACED_HASH_RE, patterns.PLACEHOLDER_RE))
    edges = "\\A" + pii.PY_SPACE + "+|" + pii.PY_SPACE + "+\\z"
    strip = f"regexp_replace({x}, {_lit(edges)}, '')"
    digits = f"regexp_replace({x}, {_lit(chr(92) + 'P{Nd}')}, '')"
    if field == "em":
        shown = (f"CASE WHEN instr({x}, '@') > 0 THEN concat(left(split_part({strip}, '@', 1), 1), '***@', "
                 f"substr({strip}, instr({strip}, '@') + 1)) ELSE concat(left({strip}, 1), '***') END")
    elif field == "ph":
        shown = f"concat('***', CASE WHEN length({digits}) > 4 THEN right({digits}, 4) ELSE '' END)"
    else:  # fn, ln: the first character
        shown = f"concat(left({strip}, 1), '***')"
    mark = f"left(sha2(concat({_lit(key)}, {_lit(field)}, chr(0), {x}), 256), {pii.FINGERPRINT_HEX})"
    return f"CASE WHEN {x} IS NULL OR {keep} THEN {x} ELSE concat({shown}, '#', {mark}) END"


def _pii_scrub(x: str, key: str, sep: str) -> str:
    """Spark SQL of :func:`capi_diag.engine.pii.sql_macros`' ``capi_pii_scrub``: every email and every
    phone number after a key naming one, inside the text ``x``, replaced (longest first) by its display
    mask + ``sep`` + a fingerprint under ``key``."""
    def fp(field: str, v: str) -> str:
        return f"left(sha2(concat({_lit(key)}, {_lit(field)}, chr(0), {v}), 256), {pii.FINGERPRINT_HEX})"

    def longest_first(arr: str) -> str:
        return f"array_sort(array_distinct({arr}), (l, r) -> length(r) - length(l))"

    y = "replace(e, '%40', '@')"
    shown_em = f"concat(left(split_part({y}, '@', 1), 1), '***@', substr({y}, instr({y}, '@') + 1))"
    emails = (f"aggregate({longest_first(f'regexp_extract_all({x}, {_lit(patterns.EMAIL_IN_TEXT)}, 0)')}, {x}, "
              f"(acc, e) -> replace(acc, e, concat({shown_em}, {_lit(sep)}, {fp('em', 'e')})))")
    digits = f"regexp_replace(p, {_lit(chr(92) + 'P{Nd}')}, '')"
    shown_ph = f"concat('***', CASE WHEN length({digits}) > 4 THEN right({digits}, 4) ELSE '' END)"
    phones = (f"aggregate({longest_first(f'regexp_extract_all(_e, {_lit(patterns.PHONE_IN_TEXT)}, 1)')}, _e, "
              f"(acc, p) -> replace(acc, p, concat({shown_ph}, {_lit(sep)}, {fp('ph', 'p')})))")
    gate = _lit("@|%40|" + patterns.PHONE_KEY)
    # ``_e`` (the text with its emails masked) is bound once through a one-element array
    return (f"CASE WHEN {x} IS NULL OR NOT {x} RLIKE {gate} THEN {x} "
            f"ELSE aggregate(array({emails}), CAST(NULL AS STRING), (_n, _e) -> {phones}) END")


def _canonical_sql(stage: str, mapping: Any, *, name: str, file_index: int, tz: str,
                   row_id: str, pii_key: str = "") -> str:
    """Spark SQL over the staged view (one string column per header, ``_line``, ``_malformed``,
    ``_rid``) giving the canonical columns plus ``_reject`` and ``_consent_unreadable``: the same
    columns and rules as :func:`capi_diag.io.ingest._canonical_select`."""
    src = {f: _q(h) for f, h in mapping.canonical.items()}
    et, sa = src.get("event_time"), src.get("sent_at")
    pre = [f"{_num(c)} AS _n_{p}, {_iso(c, tz)} AS _i_{p}" for p, c in (("et", et), ("sa", sa)) if c]
    tc = {**_time_columns(et, "et", tz), **_time_columns(sa, "sa", tz)}
    exprs: dict[str, str] = {}
    for f in FIELDS:
        s = src.get(f.name)
        if s is None:
            exprs[f.name] = f"CAST(NULL AS {_SPARK_TYPES[f.kind.value]})"
        elif f.kind is Kind.LIST and f.name in pii.MASKED_AT_REST:  # raw emails and phones are never stored
            exprs[f.name] = f"transform({_list_clean(_list_raw(s))}, x -> {_pii_at_rest(f.name, 'x', pii_key)})"
        elif f.kind is Kind.LIST:
            exprs[f.name] = _list_clean(_list_raw(s))
        elif f.name.startswith("consent_") and f.name != "consent_region":
            exprs[f.name] = _consent(s)
        elif f.name == "consent_region":
            exprs[f.name] = f"upper(trim({_text(s)}))"
        elif f.name == "event_time":
            exprs[f.name] = tc["et_s"]
        elif f.name == "sent_at":
            exprs[f.name] = tc["sa_s"]
        elif f.name in pii.SCRUBBED_URLS:  # emails and phones in a query string never at rest
            exprs[f.name] = _pii_scrub(_text(s), pii_key, "%23")
        else:
            exprs[f.name] = _text(s)

    def obj(pairs: dict[str, str]) -> str:
        if not pairs:
            return "CAST(NULL AS STRING)"
        return _pii_scrub("to_json(named_struct(" + ", ".join(f"{_lit(k)}, {_q(h)}" for k, h in pairs.items())
                          + "))", pii_key, "#")

    select = {
        "row_id": row_id,
        "source_file": _lit(name),
        "file_index": f"CAST({int(file_index)} AS INT)",
        "line": "CAST(_line AS BIGINT)",
        "event_time_raw": et or "CAST(NULL AS STRING)",
        "event_time_raw_unit": tc["et_unit"],
        "event_time_tz_missing": tc["et_tzless"],
        "sent_at_raw": sa or "CAST(NULL AS STRING)",
        "custom_data_extra": obj(mapping.custom),
        "extra": obj({h: h for h in mapping.unknown}),
        **exprs,
    }
    body = ",\n  ".join(f"{select[c]} AS {_q(c)}" for c, _ in canonical_columns())
    consent = [f"({_text(src[f])} IS NOT NULL AND {_consent(src[f])} IS NULL)"
               for f in src if f.startswith("consent_") and f != "consent_region"]
    reject = ("CASE WHEN _malformed THEN 'malformed_row' "
              "WHEN event_name IS NULL THEN 'event_name_empty' "
              f"WHEN {_text('event_time_raw')} IS NULL THEN 'event_time_empty' "
              "WHEN event_time IS NULL THEN 'event_time_unreadable' "
              f"WHEN event_time < {PLAUSIBLE_MIN} OR event_time > {PLAUSIBLE_MAX} "
              "THEN 'event_time_implausible' END")
    inner = f"SELECT *{', ' + ', '.join(pre) if pre else ''} FROM {stage}"
    return (f"SELECT *, {reject} AS _reject FROM (SELECT\n  {body},\n  _malformed,\n"
            f"  ({' OR '.join(consent) or 'false'}) AS _consent_unreadable\nFROM ({inner}) AS _p) AS _c")


# -- reading ------------------------------------------------------------------------------------------

_LAKE = re.compile(r"\A[a-zA-Z][a-zA-Z0-9+.-]*://")


def _format_of(path: str) -> str:
    """``csv``, ``json`` or ``parquet`` from the name; a local folder from the files in it; a lake
    folder without an extension is taken as (partitioned) Parquet."""
    p = path.rstrip("/")
    lower = re.sub(r"\.(gz|bz2|snappy|zst)\Z", "", p.lower())
    for ext, fmt in ((".parquet", "parquet"), (".pq", "parquet"), (".jsonl", "json"), (".ndjson", "json"),
                     (".json", "json"), (".csv", "csv"), (".tsv", "csv"), (".txt", "csv")):
        if lower.endswith(ext) or lower.endswith(ext + "*"):
            return fmt
    if not _LAKE.match(p) and os.path.isdir(p):
        for root, _, files in os.walk(p):
            for f in sorted(files):
                if not f.startswith((".", "_")):
                    return _format_of(os.path.join(root, f))
    return "parquet"


def _delimiter(path: str) -> str:
    """The delimiter of a local CSV from its header line (``,`` for lake paths and globs)."""
    if _LAKE.match(path) or not os.path.isfile(path):
        return "\t" if path.lower().endswith(".tsv") else ","
    with open(path, "rb") as fh:
        head = fh.readline(65536).decode("utf-8", errors="replace")
    counts = {d: head.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def has_quoted_newline(path: str, chunk: int = 16 << 20) -> bool:
    """Whether a CSV may hold a line break inside a quoted field: some line break sits after an odd
    number of ``"`` (doubled quotes keep the count even). True for lake paths, globs and folders
    (not read here). Spark reads a file without one in parallel (no ``multiLine``), and one with one
    as a single task (``multiLine``), so the answer decides per file, never the rows read."""
    import numpy as np

    if _LAKE.match(path) or not os.path.isfile(path):
        return True
    odd = 0
    with open(path, "rb") as fh:
        while buf := fh.read(chunk):
            a = np.frombuffer(buf, dtype=np.uint8)
            # parity of the quotes so far (uint8 sums wrap at 256, an even number: parity survives)
            parity = (np.cumsum(a == 34, dtype=np.uint8) + odd) & 1
            if parity[(a == 10) | (a == 13)].any():
                return True
            odd = int(parity[-1])
    return False


def _flat(df: Any) -> tuple[Any, list[str]]:
    """A DataFrame as one string column per header: struct fields as ``parent.child``, scalars cast to
    text, lists and maps as JSON text (as DuckDB's Parquet staging does)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    cols, headers = [], []

    def text(c: Any, dtype: Any) -> Any:
        if isinstance(dtype, (T.ArrayType, T.MapType, T.StructType)):
            return F.to_json(c)
        return c.cast("string")

    for f in df.schema.fields:
        if f.name.startswith("_capi") or f.name == "_corrupt":
            continue
        if isinstance(f.dataType, T.StructType):
            for sub in f.dataType.fields:
                h = f"{f.name}.{sub.name}"
                if h not in headers:
                    headers.append(h)
                    cols.append(text(F.col(f"`{f.name}`.`{sub.name}`"), sub.dataType).alias(h))
        elif f.name not in headers:
            headers.append(f.name)
            cols.append(text(F.col(_q(f.name)), f.dataType).alias(f.name))
    extra = [F.col(c) for c in ("_capi_file", "_capi_ord") if c in df.columns]
    malformed = (F.col("_corrupt").isNotNull() if "_corrupt" in df.columns else F.lit(False)).alias("_malformed")
    return df.select(*cols, *extra, malformed), headers


def _read(spark: Any, path: str, fmt: str) -> tuple[Any, str | None]:
    """(rows with their file and read order, the CSV delimiter)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    sep = _delimiter(path) if fmt == "csv" else None
    if fmt == "csv":
        multi = "true" if has_quoted_newline(path) else "false"
        opts = {"header": "true", "escape": '"', "multiLine": multi, "sep": sep,
                "mode": "PERMISSIVE", "enforceSchema": "false"}
        header = spark.read.options(**{**opts, "mode": "PERMISSIVE"}).csv(path).columns
        schema = T.StructType([T.StructField(h.lstrip("\ufeff"), T.StringType()) for h in header]
                              + [T.StructField("_corrupt", T.StringType())])
        df = spark.read.options(**opts, columnNameOfCorruptRecord="_corrupt").schema(schema).csv(path)
    elif fmt == "json":
        df = spark.read.options(primitivesAsString="true", mode="PERMISSIVE",
                                columnNameOfCorruptRecord="_corrupt").json(path)
    else:
        df = spark.read.parquet(path)
    df = df.withColumn("_capi_file", F.input_file_name()).withColumn("_capi_ord", F.monotonically_increasing_id())
    return df, sep


# -- the import ----------------------------------------------------------------------------------------

def _check_tz(db: SparkDatabase, tz: str) -> None:
    from zoneinfo import available_timezones

    if tz != "UTC" and tz not in available_timezones():
        raise ConfigError(f"--assume-tz {tz!r} is not a known time zone; use an IANA name such as "
                          "UTC or Europe/Berlin.")


def _import_one(db: SparkDatabase, role: Role, name: str, df: Any, fmt: str, sep: str | None, file_index: int,
                row_offset: int, tz: str, n: int) -> tuple[Any, Any]:
    """One input (a file, a glob, a folder or a table) -> (its FileReport, its canonical rows)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from capi_diag.io.ingest import (
        EXAMPLES,
        REJECT_REASONS,
        FileReport,
        map_headers,
        mapping_notes,
        missing_required_error,
        time_unit_warning,
    )

    label = f"{role.value} log '{name}'"
    report = FileReport(name=name, role=role.value, format=fmt,
                        encoding="binary (parquet)" if fmt == "parquet" else "utf-8", delimiter=sep)
    flat, headers = _flat(df)
    mapping = map_headers(headers)
    report.mapping = {h: f for f, h in mapping.canonical.items()}
    report.unknown_columns = list(mapping.unknown)
    report.warnings += mapping.warnings
    if mapping.custom:
        report.mapping.update({h: f"custom_data_extra.{k}" for k, h in mapping.custom.items()})
    report.warnings += mapping_notes(mapping)
    # Rows in file order: files by path, rows by read order; the line is the row's number in its file
    # (under the header for CSV), the row id the row's place among all rows of the role.
    if "_capi_file" not in flat.columns:
        flat = flat.withColumn("_capi_file", F.lit("")).withColumn("_capi_ord", F.monotonically_increasing_id())
    per_file = {r[0]: int(r[1]) for r in flat.groupBy("_capi_file").count().collect()}
    total = sum(per_file.values())
    if total == 0:
        raise IngestError(f"{label}: has a header but no data rows. Export the log again with its events.")
    if any(f not in mapping.canonical for f in REQUIRED):
        raise missing_required_error(label, headers, mapping)
    offsets, acc = {}, row_offset
    for f in sorted(per_file):
        offsets[f] = acc
        acc += per_file[f]
    rn = F.row_number().over(Window.partitionBy("_capi_file").orderBy("_capi_ord"))
    offset_map = F.create_map(*[x for f, o in offsets.items() for x in (F.lit(f), F.lit(o))])
    staged = (flat.withColumn("_rn", rn)
              .withColumn("_line", F.col("_rn") + (1 if fmt == "csv" else 0))
              .withColumn("_rid", offset_map[F.col("_capi_file")] + F.col("_rn") - 1))
    stage = f"_capi_stage_{role.value}_{n}"
    staged.createOrReplaceTempView(stage)
    canon = db.sql(_canonical_sql(stage, mapping, name=name, file_index=file_index, tz=_lit(tz),
                                  row_id="CAST(_rid AS BIGINT)", pii_key=db.pii_key)).cache()
    try:
        rows = canon.groupBy("_reject", "event_time_raw_unit", "event_time_tz_missing", "_consent_unreadable",
                             (F.col("sent_at_raw").isNotNull() & F.expr(f"{_text('sent_at_raw')} IS NOT NULL")
                              & F.col("sent_at").isNull()).alias("_sa_bad")).count().collect()
        report.rows_read = sum(int(r["count"]) for r in rows)
        ok = [r for r in rows if r["_reject"] is None]
        report.rows_loaded = sum(int(r["count"]) for r in ok)
        report.rows_rejected = report.rows_read - report.rows_loaded
        report.no_time_zone = sum(int(r["count"]) for r in ok if r["event_time_tz_missing"])
        reasons: dict[str, int] = {}
        for r in rows:
            if r["_reject"] is not None:
                reasons[r["_reject"]] = reasons.get(r["_reject"], 0) + int(r["count"])
        report.rejected_reasons = {k: reasons[k] for k in REJECT_REASONS if k in reasons}
        examples = (canon.filter("_reject IS NOT NULL").orderBy("line", "row_id").limit(EXAMPLES)
                    .select("line", "_reject", "event_name", "event_time_raw").collect())
        report.rejected_examples = [{"line": int(r[0]), "reason": r[1], "event_name": r[2], "event_time": r[3]}
                                    for r in examples]
        units: dict[str, int] = {}
        for r in ok:
            units[r["event_time_raw_unit"]] = units.get(r["event_time_raw_unit"], 0) + int(r["count"])
        report.time_formats = {u: units[u] for u in sorted(units, key=str)}
        bad_sa = sum(int(r["count"]) for r in ok if r["_sa_bad"])
        if "sent_at" in mapping.canonical and bad_sa:
            report.warnings.append(f"{bad_sa} rows have a sent_at that cannot be read as a time; "
                                   "it is treated as missing")
        bad_consent = sum(int(r["count"]) for r in ok if r["_consent_unreadable"])
        if bad_consent:
            report.warnings.append(f"{bad_consent} rows have a consent value other than granted/denied "
                                   "(true/false, 1/0, yes/no); it is treated as missing")
        if report.no_time_zone:
            report.warnings.append(f"{report.no_time_zone} ISO-8601 times have no time zone; they were read "
                                   "as UTC (use --assume-tz to change it)")
        unit_note = time_unit_warning(report.role, report.time_formats)
        if unit_note:
            report.warnings.append(unit_note)
        if report.rows_loaded == 0:
            why = ", ".join(f"{k}: {v}" for k, v in report.rejected_reasons.items())
            ex = report.rejected_examples[0] if report.rejected_examples else {}
            raise IngestError(f"{label}: every row was rejected ({why}); e.g. line {ex.get('line')}: "
                              f"{ex.get('reason')} (event_time {ex.get('event_time')!r}). Fix those columns "
                              "and import again.")
        cols = [_q(c) for c, _ in canonical_columns()]
        accepted = canon.filter("_reject IS NULL").selectExpr(*cols)
        return report, (canon, accepted)
    except Exception:
        canon.unpersist()
        raise
    finally:
        db.spark.catalog.dropTempView(stage)


def _source(db: SparkDatabase, role: Role, item: Any) -> tuple[str, Any, str, str | None]:
    """(name, DataFrame, format) of one ``--browser``/``--server`` input: a path, a glob, a folder."""
    path = str(getattr(item, "path", None) or item)
    name = getattr(item, "name", None) or os.path.basename(path.rstrip("/")) or path
    label = f"{role.value} log '{name}'"
    if getattr(item, "data", None) is not None:
        raise UsageError(f"{label}: the Spark engine reads paths or tables, not uploaded bytes.")
    local = not _LAKE.match(path)
    if local and not any(ch in path for ch in "*?[") and not os.path.exists(path):
        raise IngestError(f"{label}: file not found at {path}. Check the path and try again.")
    fmt = _format_of(path)
    try:
        df, sep = _read(db.spark, path, fmt)
    except Exception as e:  # noqa: BLE001 - Spark's reader refused it: name the input and the fix
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise IngestError(f"{label}: Spark could not read it as {fmt} ({first[:300]}). Check the path, "
                          "the format (.csv, .jsonl, .parquet) and the cluster's access to it.") from None
    return name, df, fmt, sep


def import_logs(db: SparkDatabase, *, browser: Sequence[Any] = (), server: Sequence[Any] = (),
                browser_table: str | None = None, server_table: str | None = None,
                assume_tz: str = "UTC") -> Any:
    """Import the logs into Spark (cached temporary views ``browser_events`` / ``server_events``) and
    return the :class:`~capi_diag.engine.dataset.Dataset` over them. Inputs are paths (files, globs, folders,
    lake URLs) or, per role, a table or view name (``browser_table`` / ``server_table``)."""
    from capi_diag.core.schema import FIELDS_BY_NAME
    from capi_diag.engine.dataset import Dataset
    from capi_diag.io.ingest import role_summary

    _check_tz(db, assume_tz)
    present: dict[str, frozenset[str]] = {}
    inputs: dict[str, Any] = {}
    made: list[Any] = []
    with db.lock:
        try:
            for role, items, table in ((Role.BROWSER, list(browser), browser_table),
                                       (Role.SERVER, list(server), server_table)):
                sources = []
                if table:
                    try:
                        sources.append((table, db.spark.table(table), "table", None))
                    except Exception as e:  # noqa: BLE001
                        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                        raise IngestError(f"{role.value} table '{table}': Spark cannot read it ({first[:200]}). "
                                          "Check the table name (catalog.schema.table).") from None
                sources += [_source(db, role, x) for x in items]
                reports, parts, fields, offset = [], [], set(), 0
                for i, (name, df, fmt, sep) in enumerate(sources):
                    rep, (canon, accepted) = _import_one(db, role, name, df, fmt, sep, i, offset, assume_tz, i)
                    made.append(canon)
                    offset += rep.rows_read
                    reports.append(rep)
                    parts.append(accepted)
                    fields |= {f for f in rep.mapping.values() if f in FIELDS_BY_NAME}
                if not parts:
                    empty = ", ".join(f"CAST(NULL AS {_SPARK_TYPES[t]}) AS {_q(c)}" for c, t in canonical_columns())
                    parts.append(db.sql(f"SELECT {empty} WHERE false"))
                table_df = parts[0]
                for p in parts[1:]:
                    table_df = table_df.unionByName(p)
                db.put_table(role.table, table_df)
                present[role.value] = frozenset(fields)
                inputs[role.value] = role_summary(reports)
        finally:
            for canon in made:
                canon.unpersist()
        db.tables_changed()
    return Dataset(db, present, inputs)  # type: ignore[arg-type]


def copy_dataset(ds: Any, db: SparkDatabase) -> Any:
    """The DuckDB dataset ``ds`` (e.g. :meth:`Dataset.from_records`) on Spark: its canonical tables
    copied through Arrow, the same columns present and inputs (the analysis tests' Spark fixture)."""
    from dataclasses import replace

    from capi_diag.engine.dataset import arrow_schema

    with ds.db.lock:
        for role in Role:
            arrow = ds.db.con.sql(f'SELECT * FROM "{role.table}" ORDER BY row_id').to_arrow_table()
            db.put_arrow(role.table, arrow.cast(arrow_schema()))
    db.tables_changed()
    return replace(ds, db=db)
