"""Match keys: can Meta match each server event to a person, and are the keys well formed?

What it measures: for each ``user_data`` field (``em ph fn ln ge db ct st zp country external_id fbp
fbc client_ip_address client_user_agent``), over all server rows (duplicates included):

* ``present``: rows with at least one non-empty value; ``valid``: present rows whose every non-empty
  value passes the field's rule; ``coverage`` = present / server rows; ``valid_coverage`` = valid /
  server rows (``null`` when there are no server rows); ``by_event_name``: ``valid_coverage`` per
  event name;
* ``defects``: rows per defect (a row with several defects counts once in each). The rules are in
  :mod:`capi_diag.engine.rules` (written once, shared with ``emq``, ``contract`` and the Test Events
  sender): ``unhashed`` (raw PII where a SHA-256 hash is required), ``uppercase_hash``,
  ``hashed_empty`` (the SHA-256 of ""), ``hashed_placeholder`` (the hash of ``null``,
  ``undefined``...), ``surrounding_whitespace`` (a hash with a stray space or newline; also
  ``unhashed``), ``placeholder`` (a raw ``undefined``/``null``/``{{Email}}``), ``not_normalized``
  (``ge``/``country``/``db``: a hash that is not the hash of any allowed value, e.g. of ``Female``,
  ``USA`` or ``1990-01-31``), ``hashed`` (a context key that must not be hashed), ``malformed``,
  ``private`` (a non-public IP), ``non_browser`` (an HTTP library's user agent),
  ``missing_with_fbclid`` (the page URL has an ``fbclid`` but ``fbc`` is empty) and
  ``modified_fbclid`` (the fbc's click id equals the URL's only ignoring case);
* beyond the contract: ``paired_mismatch``, for keys paired with a Pixel event, how often browser and
  server disagree on ``fbp``, ``external_id``, IP or user agent (Meta's "Server sending mismatched
  IP addresses" diagnostic); ``repeated_values``, one value carried by very many rows (a placeholder,
  a test account, or the server's own IP).

Why it matters for Meta CAPI: Meta matches a server event to an account only through these keys.
Unhashed PII is rejected (error 2804016), a hashed context key or a malformed ``fbc`` is useless
(2804001), an empty hash or a hash of a non-normalized value matches nobody, and a server IP or
library user agent points every event at the same "person".

Usual cause of a bad value and the fix: a tag or server container forwarding raw form values (hash
with SHA-256 after Meta's normalization), hashing before normalizing (lowercase, trim, ``f``/``m``,
``YYYYMMDD``, ISO alpha-2), hashing empty variables, hashing every key including ``fbp``/``fbc``/IP/
user agent (send them raw), and reading the IP/user agent of the server request instead of the
visitor's (forward ``X-Forwarded-For`` and the browser's ``User-Agent``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capi_diag.core import fmt, labels
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine import measures, rules
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import LazyTable, ibis, ir
from capi_diag.engine.pii import mask_value

SECTION = "match_keys"
FIELDS = rules.MATCH_KEY_FIELDS
NO_NAME = "(none)"

DEFAULTS: dict[str, Any] = {
    "examples": 5,
    "repeated_value_min_rows": 20,
    "repeated_value_min_share": 0.05,
    "repeated_value_fields": ["em", "ph", "external_id", "db", "fbp", "fbc", "client_ip_address"],
    "repeated_values_per_field": 5,
}
"""``examples``: example rows kept per (field, defect); a value is a ``repeated_values`` finding when
at least ``repeated_value_min_rows`` rows *and* at least ``repeated_value_min_share`` of the server
rows carry it (a real customer's email does not appear on 5% of all events); only the fields in
``repeated_value_fields`` are checked (names, cities, states, zips, gender and country repeat
naturally); at most ``repeated_values_per_field`` values are listed per field."""

PAIRED_FIELDS: tuple[str, ...] = measures.PAIRED_FIELDS
"""Fields compared between the earliest browser and server rows of a paired key (``paired_rows`` holds
the first values of :data:`~capi_diag.engine.measures.PAIRED_FIRST` and the comparison state of
:data:`~capi_diag.engine.measures.PAIRED_COMPARED`)."""

FIELD_LABELS: dict[str, str] = {
    "em": "email", "ph": "phone", "fn": "first name", "ln": "last name", "ge": "gender",
    "db": "date of birth", "ct": "city", "st": "state", "zp": "zip code", "country": "country",
    "external_id": "external id", "fbp": "browser id (fbp)", "fbc": "click id (fbc)",
    "client_ip_address": "client IP address", "client_user_agent": "client user agent",
}

FIELD_FIX = labels.FIELD_FIX
"""The fix for a field that is missing or invalid; ``emq`` priorities reuse it."""

DEFECT_TEXT: dict[str, tuple[str, str]] = {
    "unhashed": ("rows with a value that is not a SHA-256 hash: raw personal data was sent",
                 "Normalize with Meta's rules, then hash with SHA-256 (lowercase hex) before sending."),
    "uppercase_hash": ("rows with a hash written in upper-case hex",
                       "Send the hex digest in lowercase."),
    "hashed_empty": ("rows carrying the SHA-256 of the empty string: an empty variable was hashed",
                     "Leave the key out when the value is empty; never hash an empty string."),
    "hashed_placeholder": ("rows carrying the hash of a placeholder such as 'null' or 'undefined'",
                           "Check that the variable is set before hashing; omit the key otherwise."),
    "surrounding_whitespace": ("rows with a hash surrounded by spaces or a newline",
                               "Trim the value before sending it."),
    "placeholder": ("rows carrying a raw stand-in for no value ('undefined', 'null', '{{Email}}')",
                    "Fix the template variable or omit the key when it has no value."),
    "not_normalized": ("rows whose hash is not the hash of any allowed normalized value (e.g. the hash "
                       "of 'Female', 'USA' or '1990-01-31')",
                       "Normalize before hashing: ge 'f'/'m', country ISO alpha-2 lowercase, db YYYYMMDD."),
    "hashed": ("rows where a browser context key was hashed",
               "Send fbp, fbc, client_ip_address and client_user_agent raw; only personal data is hashed."),
    "malformed": ("rows with a value in the wrong format",
                  "Send the cookie value exactly as set (fb.<n>.<13-digit ms>.<payload>) or a bare IP "
                  "address (no port, no list)."),
    "private": ("rows with a private, loopback, link-local or multicast IP address",
                "Send the visitor's public IP (first public X-Forwarded-For entry), not a proxy or LAN one."),
    "non_browser": ("rows whose user agent is an HTTP library's (python-requests, curl, axios...)",
                    "Forward the visitor's browser User-Agent header, not your server's."),
    "missing_with_fbclid": ("rows whose page URL carries an fbclid but send no fbc",
                            "Build fbc as fb.1.<ms>.<fbclid> from the landing URL or forward the _fbc cookie."),
    "modified_fbclid": ("rows whose fbc click id equals the URL's fbclid only ignoring case",
                        "Never lowercase or re-encode the fbclid: it is case-sensitive."),
}


# -- options ----------------------------------------------------------------------------------------

def options(config: Config | None) -> dict[str, Any]:
    """The ``[match_keys]`` options merged over :data:`DEFAULTS`, validated."""
    config = config or Config()
    opts = config.options(SECTION, DEFAULTS)
    for key in ("examples", "repeated_value_min_rows", "repeated_values_per_field"):
        v = opts[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"{config.source}: [{SECTION}] {key} must be a whole number >= 0, found {v!r}.")
    share = opts["repeated_value_min_share"]
    if not 0 <= float(share) <= 1:
        raise ConfigError(f"{config.source}: [{SECTION}] repeated_value_min_share must be between 0 and 1, "
                          f"found {share!r}.")
    bad = [f for f in opts["repeated_value_fields"] if f not in FIELDS]
    if bad:
        raise ConfigError(f"{config.source}: [{SECTION}] repeated_value_fields has unknown field(s) "
                          f"{', '.join(map(str, bad))}; use names from: {', '.join(FIELDS)}.")
    return opts


# -- shared measurements -------------------------------------------------------------------------------

def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _name(v: Any) -> str:
    return NO_NAME if v is None else str(v)


def field_counts(ds: Dataset, rv: ir.Table, fields: Sequence[str] = FIELDS,
                 name: str = "match_keys.field_counts") -> dict[str, Any]:
    """:func:`capi_diag.engine.measures.field_counts` (kept here for the analyses that read it)."""
    return measures.field_counts(ds, rv, fields, name)


def valid_by_event_name(ds: Dataset, rv: ir.Table, fields: Sequence[str] = FIELDS,
                        name: str = "match_keys.valid_by_event_name") -> dict[str, dict[str, int]]:
    """:func:`capi_diag.engine.measures.valid_by_event_name`."""
    return measures.valid_by_event_name(ds, rv, fields, name)


def _paired_norm(field: str, v: ir.StringValue) -> ir.StringValue:
    """The form compared between browser and server: appendix dropped, hashes and IPs lowercased."""
    if field == "fbp":
        five = r"\A([^.]*\.[^.]*\.[^.]*\.[^.]*)\.[^.]*\z"
        return ibis.ifelse(v.re_search(five), v.re_extract(five, 1), v)
    if field == "external_id":
        return ibis.ifelse(rules.hash_shaped(v), rules.hash_hex(v), v)
    if field == "client_ip_address":
        return rules.ip_core(v).lower()
    return v


def paired_mismatch(ds: Dataset, config: Config) -> dict[str, Any]:
    """For keys paired by ``dedup``: per field, keys where both earliest rows carry a first value
    (``compared``) and keys where those values differ (``mismatched``)."""
    def build() -> ir.Table:
        pr = ds.using(config).measure("paired_rows")
        # each side's compared value is computed once (one projection), then counted four ways;
        # the fields paired_rows keeps only as a comparison arrive as their state
        states = {f"{f}_pair": pr[f"{f}_pair"] for f in measures.PAIRED_COMPARED}
        pr = pr.select(**{f"{side}_{f}": _paired_norm(f, pr[f"{side}_{f}"])  # first values (paired_rows)
                          for f in measures.PAIRED_FIRST for side in ("b", "s")}, **states)
        aggs: dict[str, ir.Value] = {"paired_keys": pr.count()}
        for f in measures.PAIRED_FIRST:
            b, s = pr[f"b_{f}"], pr[f"s_{f}"]
            both = b.notnull() & s.notnull()
            aggs[f"{f}_compared"] = pr.count(where=both)
            aggs[f"{f}_mismatched"] = pr.count(where=both & (b != s))
            aggs[f"{f}_browser_only"] = pr.count(where=b.notnull() & s.isnull())
            aggs[f"{f}_server_only"] = pr.count(where=b.isnull() & s.notnull())
        for f in measures.PAIRED_COMPARED:
            state = pr[f"{f}_pair"]
            aggs[f"{f}_compared"] = pr.count(where=state.isin(["same", "differ"]))
            aggs[f"{f}_mismatched"] = pr.count(where=state == "differ")
            aggs[f"{f}_browser_only"] = pr.count(where=state == "browser_only")
            aggs[f"{f}_server_only"] = pr.count(where=state == "server_only")
        return pr.aggregate(**aggs)

    row = ds.fetch("match_keys.paired_mismatch", build)[0]
    return {
        "paired_keys": int(row["paired_keys"]),
        "fields": {f: {"compared": int(row[f"{f}_compared"]), "mismatched": int(row[f"{f}_mismatched"]),
                       "mismatch_rate": _ratio(int(row[f"{f}_mismatched"]), int(row[f"{f}_compared"])),
                       "browser_only": int(row[f"{f}_browser_only"]), "server_only": int(row[f"{f}_server_only"])}
                   for f in PAIRED_FIELDS},
    }


def paired_gap_examples(ds: Dataset, config: Config, limit: int, field: str = "fbp") -> list[dict[str, Any]]:
    """Up to ``limit`` paired keys whose earliest browser and server rows disagree on having ``field``
    (present on one side, absent on the other), in browser file order: the per-pair view of the
    coverage gap (a server that does not forward the ``_fbp`` cookie the Pixel had)."""
    if limit <= 0:
        return []
    def build() -> ir.Table:
        pr = ds.using(config).measure("paired_rows")
        # paired_rows holds each side's first value of the list fields
        gap = pr.filter(pr[f"b_{field}"].notnull() != pr[f"s_{field}"].notnull())
        return gap.order_by(["b_file_index", "b_line", "b_row_id"]).limit(limit).select(
            "event_name", "event_id", browser_source_file="b_source_file",
            browser_line="b_line", server_source_file="s_source_file", server_line="s_line",
            **{f"browser_{field}": gap[f"b_{field}"], f"server_{field}": gap[f"s_{field}"]})

    return ds.fetch(f"match_keys.paired_gap.{field}", build)


def repeated_values(ds: Dataset, rows: int, opts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Values carried by at least ``max(min_rows, ceil(min_share * rows))`` rows (each row counts a
    value once), most frequent first, at most ``repeated_values_per_field`` per field."""
    fields = [f for f in FIELDS if f in opts["repeated_value_fields"]]
    if not fields or not rows:
        return []
    if not any(ds.has("server", f) for f in fields):
        return []

    def build() -> ir.Table:
        # The threshold is computed by the engine from the row count, so the SQL holds no number of
        # this log and is reused for any log. The non-empty values of these fields are unnested
        # here, without any rule (read once, not stored). A value carried by fewer than ``threshold``
        # list entries cannot be on ``threshold`` rows: rows are counted exactly only for the few candidates.
        server = ds.events("server")
        share = (server.count().cast("float64") * float(opts["repeated_value_min_share"])).ceil()
        threshold = ibis.greatest(ibis.literal(max(int(opts["repeated_value_min_rows"]), 1)), share.cast("int64"))
        t = rules.value_rows(server, [f for f in fields if ds.has("server", f)])
        cand = t.group_by(["_f", "_v"]).aggregate(_k=t.count())
        cand = cand.filter(cand._k >= threshold).select(cf="_f", cv="_v")
        t = t.semi_join(cand, [t._f == cand.cf, t._v == cand.cv])
        u = t.group_by(field=t._f, v=t._v).aggregate(n=t._rid.nunique())
        u = u.filter(u.n >= threshold)
        u = u.mutate(rank=ibis.row_number().over(group_by=u.field, order_by=[ibis.desc(u.n), u.v]))
        return u.filter(u.rank < int(opts["repeated_values_per_field"]))

    order = {f: i for i, f in enumerate(FIELDS)}
    found = sorted(ds.fetch("match_keys.repeated_values", build),
                   key=lambda r: (order[r["field"]], -r["n"], r["v"]))
    return [{"field": r["field"], "value": mask_value(r["field"], r["v"]), "rows": int(r["n"]),
             "share": r["n"] / rows} for r in found]


def defect_examples(ds: Dataset, rv: ir.Table, limit: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``limit`` rows per ``<field>.<defect>``, earliest in file order first, values masked.
    ``rv`` is a row-validity table; the values are joined from the server rows by ``row_id``."""
    if limit <= 0:
        return {}
    columns = [(f, d, col) for f, d, col in rules.defect_columns()
               if ds.has("server", f) or d == "missing_with_fbclid"]
    if not columns:
        return {}

    def build() -> ir.Table:
        # The first rows of each (field, defect): a top-N per defect column, unioned (row ids only),
        # then the rows' columns and values joined once.
        order = ["file_index", "line", "event_name", "row_id"]
        # each part selects its one flag first: ``rv`` may derive its flags (server_validity does, from
        # the stored masks), and a part must not carry all of them
        parts = []
        for i, (_, _, col) in enumerate(columns):
            one = rv.select(*order, _hit=rv[col])
            parts.append(one.filter(one._hit).order_by(order).limit(limit).select("row_id", _k=ibis.literal(i)))
        ex = ibis.union(*parts, distinct=False)
        s = ds.events("server").select("row_id", *rules.ROW_COLUMNS, *FIELDS)
        j = ex.join(s, ex.row_id == s.row_id)
        return j.select("_k", *s.columns).order_by(["_k", *order])

    out: dict[str, list[dict[str, Any]]] = {}
    for r in ds.fetch("match_keys.defect_examples", build):
        r["field"], r["defect"], _ = columns[r["_k"]]
        values = mask_value(r["field"], [v for v in (r[r["field"]] or []) if v is not None])
        out.setdefault(f"{r['field']}.{r['defect']}", []).append({
            "source_file": r["source_file"], "line": r["line"], "event_name": r["event_name"],
            "event_id": r["event_id"], "value": " | ".join(repr(v)[1:-1] for v in values) or None,
        })
    order = {f"{f}.{d}": i for i, (f, d, _) in enumerate(rules.defect_columns())}
    return dict(sorted(out.items(), key=lambda kv: order[kv[0]]))


# -- analysis ---------------------------------------------------------------------------------------

def analyze(ds: Dataset, config: Config | None = None,
            prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``match_keys`` section (definitions in the module docstring)."""
    config = config or Config()
    ds = ds.using(config)
    opts = options(config)
    # shared with emq and contract: built once per dataset, and only when a query is not cached
    rv = LazyTable(lambda: rules.server_validity(ds))
    return _analyze(ds, config, opts, rv)


def _analyze(ds: Dataset, config: Config, opts: Mapping[str, Any], rv: ir.Table) -> dict[str, Any]:
    counts = field_counts(ds, rv)
    rows = counts["rows"]
    by_name = valid_by_event_name(ds, rv) if rows else {}
    result: dict[str, Any] = {"status": "evaluated" if rows else "not_evaluated", "rows": rows}
    if not rows:
        result["reason"] = "the server log has no rows"
    for f in FIELDS:
        c = counts[f]
        result[f] = {
            "in_log": ds.has("server", f),
            "present": c["present"], "valid": c["valid"],
            "coverage": _ratio(c["present"], rows), "valid_coverage": _ratio(c["valid"], rows),
            "defects": c["defects"],
            "by_event_name": {n: _ratio(v[f], v["rows"]) for n, v in by_name.items()},
        }
    result["repeated_values"] = repeated_values(ds, rows, opts)
    result["repeated_value_threshold"] = {"min_rows": opts["repeated_value_min_rows"],
                                          "min_share": opts["repeated_value_min_share"]}
    if rows and ds.rows("browser"):
        result["paired_mismatch"] = paired_mismatch(ds, config)
    else:
        result["paired_mismatch"] = None
    result["examples"] = defect_examples(ds, rv, int(opts["examples"])) if rows else {}
    if result["paired_mismatch"] and ds.has("browser", "fbp"):
        gaps = paired_gap_examples(ds, config, int(opts["examples"]))
        if gaps:
            result["examples"]["fbp.paired_gap"] = gaps
    return result


def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One ``{"label", "value", "text", "fix"}`` entry per field, per non-zero defect and per finding
    beyond the contract."""
    out: list[dict[str, Any]] = []
    rows = result.get("rows") or 0
    if result.get("status") == "not_evaluated":
        return [{"label": "Match keys", "value": None, "text": f"Not evaluated: {result.get('reason')}.",
                 "fix": "Upload the server (CAPI) log."}]
    for f in FIELDS:
        r = result.get(f)
        if not r:
            continue
        label = FIELD_LABELS[f]
        absent = "" if r.get("in_log", True) else " The server log has no such column."
        out.append({
            "label": f"{labels.field_with_code(f)}: valid coverage", "value": r["valid_coverage"], "unit": "share",
            "text": f"{r['valid']:,} of {rows:,} server rows carry a valid {label} "
                    f"({r['present']:,} carry one at all).{absent}",
            "fix": FIELD_FIX[f] if r["valid"] < rows else "",
        })
        for d, n in r["defects"].items():
            if n:
                text, fix = DEFECT_TEXT[d]
                sev = rules.severity(f, d)
                out.append({"label": labels.defect(f, d), "value": n, "unit": "server row",
                            "text": f"{label[:1].upper()}{label[1:]}: {text} ({sev}).", "fix": fix})
    for rep in result.get("repeated_values") or []:
        out.append({"label": labels.defect(rep["field"], "repeated_value"), "value": rep["rows"],
                    "unit": "server row",
                    "text": f"One {FIELD_LABELS[rep['field']]} ({rep['value']}) appears on {rep['rows']:,} "
                            f"rows ({fmt.share(rep['share'])}): a placeholder, a test account or the server's own "
                            "address rather than the visitor's.",
                    "fix": "Send each visitor's own value; omit the key rather than send a constant."})
    pm = result.get("paired_mismatch")
    if pm:
        for f, c in pm["fields"].items():
            if c["mismatched"]:
                out.append({"label": labels.defect(f, "paired_mismatch"), "value": c["mismatched"],
                            "unit": "dedup key",
                            "text": f"Of {c['compared']:,} paired keys where both sides carry a "
                                    f"{FIELD_LABELS[f]}, {c['mismatched']:,} disagree.",
                            "fix": "Read the value from the visitor's request (cookie, X-Forwarded-For, "
                                   "User-Agent) and pass it unchanged to the server event."})
        fbp = pm["fields"].get("fbp", {})
        gap = int(fbp.get("browser_only", 0)) + int(fbp.get("server_only", 0))
        if gap:
            out.append({"label": labels.defect("fbp", "paired_gap"), "value": gap, "unit": "dedup key",
                        "text": f"Of {pm['paired_keys']:,} paired keys, {fbp['browser_only']:,} have an fbp in the "
                                f"browser event and none in its server twin, {fbp['server_only']:,} the reverse.",
                        "fix": "Read the _fbp cookie from the visitor's request (or pass it from the page) and "
                               "send it as user_data.fbp with the server event."})
    return out


def failing_rows(ds: Dataset, config: Config | None = None) -> ir.Table:
    """One row per (server row, defect) with :data:`FAILING_ROW_COLUMNS`: ``finding`` is the defect,
    ``detail`` the field; ``error`` for unhashed PII in hashed fields, hashed context keys and a
    malformed fbc, ``warning`` for the rest."""
    ex = rules.explode_defects(rules.server_validity(ds.using(config)))
    errors = [f"{f}|{d}" for f, d in sorted(rules.SEVERITY_ERROR)]
    code = ex.field.concat("|", ex.defect)
    out = ex.select(
        section=ibis.literal(SECTION), finding=ex.defect,
        severity=ibis.ifelse(code.isin(errors), "error", "warning"),
        role=ibis.literal("server"), source_file=ex.source_file, line=ex.line,
        event_name=ex.event_name, event_id=ex.event_id, detail=ex.field,
    )
    return out.select(*FAILING_ROW_COLUMNS)
