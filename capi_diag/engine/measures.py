"""Measurements several analyses share, written once as pure expressions.

A *measure* is a function ``(ds) -> ibis.Table`` registered under a name. Analyses read one with
``ds.measure(name)``: a table named for the engine, which materializes it once per dataset, filters
and plan, the first time a query reads it, and drops it with its scope (:mod:`capi_diag.engine.runner`).
Builders never run a query; they may read other measures the same way.

Shared here: ``key_table`` (one row per dedup key over both logs: category, reason, earliest rows),
``paired_rows`` (the earliest browser and server row of each paired key, side by side) and
``server_validity`` (per server row, every ``user_data`` field's defect bits:
:func:`capi_diag.engine.rules.row_masks`; read its presence, validity and defect flags through
:func:`capi_diag.engine.rules.server_validity`), plus the row-level helpers behind them (:func:`key_columns`,
:func:`has_event_id`, :func:`first_value`, :func:`ranked_rows`). An analysis may register a
measure of its own (:func:`register`) when several of its queries read the same derived rows.
Analyses import this module, never each other.

Dedup preparation (see :mod:`capi_diag.diagnostics.dedup` for the definitions): ``event_name`` and
``event_id`` are compared exactly; an empty or whitespace-only ``event_id`` is missing; the
*earliest row* of a key in a log is the one with the smallest ``event_time``, ties broken by file
order, then line; a list-valued field (``fbp``, ``external_id``) is matched on its first value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from capi_diag.core.config import Config, whole_numbers
from capi_diag.core.schema import DEDUP_WINDOW_S
from capi_diag.engine import rules, runner
from capi_diag.engine.lazy import ibis, ir

if TYPE_CHECKING:  # the dataset calls into this module; it is only a type here
    from capi_diag.engine.dataset import Dataset

Builder = Callable[["Dataset"], "ir.Table"]
MEASURES: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register ``build(ds) -> Table`` as the measure ``name`` (a decorator)."""
    def deco(fn: Builder) -> Builder:
        MEASURES[name] = fn
        return fn
    return deco


def build(ds: Dataset, name: str) -> ir.Table:
    """The expression of measure ``name`` for ``ds`` (the engine compiles and materializes it)."""
    try:
        fn = MEASURES[name]
    except KeyError:
        raise KeyError(f"no measure named {name!r}; known: {', '.join(sorted(MEASURES))}") from None
    return fn(ds)


# -- dedup keys ---------------------------------------------------------------------------------------

DEDUP_SECTION = "dedup"
DEDUP_DEFAULTS: dict[str, Any] = {
    "window_s": DEDUP_WINDOW_S,
    "probable_window_s": 60,
    "examples": 20,
}
"""``window_s``: Meta's dedup window (48 h, docs/facts.md §3); ``probable_window_s``: how far apart (inclusive)
the earliest rows of a server-only and a browser-only key with the same name and ``fbp`` may be to
call them the same action with two ids; ``examples``: example keys kept per category."""

BLANK_RE = r"\A[\s\v\p{Z}]*\z"
"""An empty or whitespace-only text (RE2, anchored; ``\\p{Z}`` covers the no-break space)."""
ROW_ORDER = ("event_time", "file_index", "line", "row_id")
"""The order of rows within a log: time, then file order (``row_id`` breaks ties between the events
of one JSON Lines request body, which share a line)."""


def dedup_options(config: Config | None) -> dict[str, Any]:
    """The ``[dedup]`` options merged over :data:`DEDUP_DEFAULTS`, validated (non-negative integers)."""
    return whole_numbers(config or Config(), DEDUP_SECTION, DEDUP_DEFAULTS)


def key_columns(ds: Dataset) -> tuple[str, ...]:
    """The columns of a key: ``pixel_id`` only when both logs carry it, then name and id."""
    if ds.has("browser", "pixel_id") and ds.has("server", "pixel_id"):
        return ("pixel_id", "event_name", "event_id")
    return ("event_name", "event_id")


def has_event_id(t: ir.Table) -> ir.BooleanValue:
    """True for rows whose ``event_id`` is present and not whitespace-only."""
    return t.event_id.notnull() & ~t.event_id.re_search(BLANK_RE).fill_null(True)


def first_value(col: ir.ArrayValue) -> ir.StringValue:
    """The first value of a list column, null when the list is null/empty or the value is blank."""
    v = col[0]
    return ibis.ifelse(v.re_search(BLANK_RE).fill_null(True), ibis.null("string"), v)


def key_preds(left: ir.Table, right: ir.Table, keys: Sequence[str], lp: str = "", rp: str = "") -> list:
    """Join predicates on a key; ``pixel_id`` compares null-safely (a missing pixel is a value)."""
    preds = []
    for k in keys:
        lc, rc = left[f"{lp}{k}"], right[f"{rp}{k}"]
        preds.append(lc.identical_to(rc) if k == "pixel_id" else lc == rc)
    return preds


def keyed_rows(ds: Dataset, role: str, keys: Sequence[str], *, lean: bool = False) -> ir.Table:
    """The rows of ``role`` that carry an ``event_id``: the key, the row order, the first ``fbp``,
    ``sent_at`` and ``role``; ``lean``: only the key, ``event_time`` and ``role``."""
    t = ds.events(role)
    t = t.filter(has_event_id(t))
    if lean:
        return t.select(*keys, "event_time", role=ibis.literal(role))
    sent_at = t.sent_at if role == "server" else ibis.null("int64")
    return t.select(
        *keys, "event_time", "file_index", "line", "row_id", "source_file",
        fbp=t.fbp[0], sent_at=sent_at.cast("int64"), role=ibis.literal(role),
    )


def blank_to_null(v: ir.StringValue) -> ir.StringValue:
    """``v``, null when it is null or blank (as :func:`first_value` treats a list's first value)."""
    return ibis.ifelse(v.re_search(BLANK_RE).fill_null(True), ibis.null("string"), v)


@runner.per_plan
def ranked_rows(ds: Dataset, role: str) -> ir.Table:
    """The rows of ``role`` that carry an ``event_id``, with ``copy``: 0 for the earliest row of its
    key in that log, 1, 2... for the later ones (the duplicates)."""
    keys = list(key_columns(ds))
    t = ds.events(role)
    t = t.filter(has_event_id(t))
    # Only keys the log sent more than once need a ranking (the key table counts rows per key):
    # every other row is its key's only row, copy 0.
    kt = ds.measure("key_table")
    multi = kt.filter(kt[f"{role}_rows"] > 1).select(*keys)
    single = t.anti_join(multi, key_preds(t, multi, keys)).mutate(copy=ibis.literal(0, "int64"))
    many = t.semi_join(multi, key_preds(t, multi, keys))
    many = many.mutate(copy=ibis.row_number().over(group_by=keys, order_by=list(ROW_ORDER)))
    return ibis.union(single, many, distinct=False)


# -- the shared key table ------------------------------------------------------------------------

def key_table_expr(ds: Dataset) -> ir.Table:
    """One row per key over both logs, as an expression.

    Columns: the key columns (``pixel_id`` only when both logs carry it, ``event_name``,
    ``event_id``); ``category`` (paired | outside_window | browser_only | server_only); ``reason``
    (name_case_mismatch | different_ids_probable | server_only_unexplained |
    browser_only_unexplained; null for paired and outside_window); ``partner_event_name`` /
    ``partner_event_id`` (the key in the other log that explains the reason: the earliest one, by
    its earliest row); ``browser_rows`` / ``server_rows`` (rows of the key in each log);
    ``first_time`` (earliest ``event_time`` over both logs); the earliest browser row
    (``browser_time``, ``browser_file_index``, ``browser_line``, ``browser_source_file``,
    ``browser_fbp``, ``browser_row_id``) and ``browser_last_time``; the earliest server row
    (``server_time``, ``server_file_index``, ``server_line``, ``server_source_file``, ``server_fbp``,
    ``server_sent_at``, ``server_row_id``) and ``server_last_time``; ``skew_s`` = ``server_time - browser_time`` for
    paired keys (null otherwise).

    Pairing is exact without a many-to-many join: rows of a key from both logs are sorted by time,
    and a browser/server pair at most ``window_s`` apart exists iff two *adjacent* rows from
    different logs are at most ``window_s`` apart (between any such pair the log changes at least
    once, at a step no longer than the pair's distance).
    """
    opts = dedup_options(ds.config)
    window = int(opts["window_s"])
    keys = list(key_columns(ds))
    u = ibis.union(keyed_rows(ds, "browser", keys), keyed_rows(ds, "server", keys), distinct=False)
    isb, iss = u.role == "browser", u.role == "server"
    # The earliest row of a key in each log is the smallest struct in ROW_ORDER (row_id is unique
    # within a log, so the columns after it never decide): one grouping, no ranking of the rows.
    first = ibis.struct({"t": u.event_time, "f": u.file_index, "l": u.line, "r": u.row_id,
                         "src": u.source_file, "fbp": u.fbp, "sent": u.sent_at})
    agg = u.group_by(keys).aggregate(
        browser_rows=u.role.count(where=isb),
        server_rows=u.role.count(where=iss),
        first_time=u.event_time.min(),
        _b=first.min(where=isb),
        browser_last_time=u.event_time.max(where=isb),
        _s=first.min(where=iss),
        server_last_time=u.event_time.max(where=iss),
    )
    agg = agg.select(
        *keys, "browser_rows", "server_rows", "first_time",
        browser_time=agg._b["t"], browser_file_index=agg._b["f"], browser_line=agg._b["l"],
        browser_row_id=agg._b["r"], browser_source_file=agg._b["src"], browser_fbp=blank_to_null(agg._b["fbp"]),
        browser_last_time=agg.browser_last_time,
        server_time=agg._s["t"], server_file_index=agg._s["f"], server_line=agg._s["l"],
        server_row_id=agg._s["r"], server_source_file=agg._s["src"], server_fbp=blank_to_null(agg._s["fbp"]),
        server_sent_at=agg._s["sent"], server_last_time=agg.server_last_time,
    )
    # A key with one row in each log is paired when they are at most `window` apart; only keys with
    # rows in both logs and several in one need the rows themselves (see the docstring).
    single = (agg.browser_rows == 1) & (agg.server_rows == 1)
    multi = agg.filter((agg.browser_rows > 0) & (agg.server_rows > 0) & ~single).select(*keys)
    # read from the events tables again (two cheap scans), not from ``u``: a second reader of ``u``
    # made it a materialized CTE of every row (1.8M rows at 1M events: a second of CPU)
    lean = ibis.union(*(keyed_rows(ds, r, keys, lean=True) for r in ("browser", "server")), distinct=False)
    mu = lean.semi_join(multi, key_preds(lean, multi, keys)).select(*keys, "event_time", "role")
    by_time = ibis.window(group_by=keys, order_by=["event_time", "role"])
    near = ((mu.role.lag().over(by_time) != mu.role)
            & ((mu.event_time - mu.event_time.lag().over(by_time)) <= window)).fill_null(False)
    mu = mu.mutate(_near=near)
    mp = mu.group_by(keys).aggregate(_mpair=mu._near.any())
    mp = mp.rename({f"m_{k}": k for k in keys})
    agg = agg.left_join(mp, key_preds(agg, mp, keys, "", "m_"))
    agg = agg.select(
        *[c for c in agg.columns if not c.startswith("m_") and c != "_mpair"],
        _pair=ibis.ifelse((agg.browser_rows == 1) & (agg.server_rows == 1),
                          (agg.server_time - agg.browser_time).abs() <= window,
                          agg._mpair.fill_null(False)),
    )
    both = (agg.browser_rows > 0) & (agg.server_rows > 0)
    category = ibis.cases(
        (both & agg._pair, "paired"),
        (both, "outside_window"),
        (agg.browser_rows > 0, "browser_only"),
        else_="server_only",
    )
    agg = agg.mutate(category=category)
    agg = agg.mutate(skew_s=ibis.ifelse(agg.category == "paired", agg.server_time - agg.browser_time,
                                        ibis.null("int64")))
    res = _reasons(agg, keys, int(opts["probable_window_s"]))
    r = res.rename({f"r_{k}": k for k in keys})
    j = agg.left_join(r, key_preds(agg, r, keys, "", "r_"))
    default_reason = ibis.cases(
        (j.category == "server_only", "server_only_unexplained"),
        (j.category == "browser_only", "browser_only_unexplained"),
        else_=ibis.null("string"),
    )
    return j.select(
        *keys,
        category=j.category,
        reason=j.reason.fill_null(default_reason),
        partner_event_name=j.partner_event_name,
        partner_event_id=j.partner_event_id,
        browser_rows=j.browser_rows,
        server_rows=j.server_rows,
        first_time=j.first_time,
        browser_time=j.browser_time,
        browser_file_index=j.browser_file_index,
        browser_line=j.browser_line,
        browser_row_id=j.browser_row_id,
        browser_source_file=j.browser_source_file,
        browser_fbp=j.browser_fbp,
        browser_last_time=j.browser_last_time,
        server_time=j.server_time,
        server_file_index=j.server_file_index,
        server_line=j.server_line,
        server_row_id=j.server_row_id,
        server_source_file=j.server_source_file,
        server_fbp=j.server_fbp,
        server_sent_at=j.server_sent_at,
        server_last_time=j.server_last_time,
        skew_s=j.skew_s,
    )


def _reasons(agg: ir.Table, keys: Sequence[str], probable_s: int) -> ir.Table:
    """Keys with a partner-based reason: key columns, ``reason``, ``partner_event_name``,
    ``partner_event_id``. Server keys: the first matching reason wins (name case before
    probable); browser keys carry the reason of a server key that counted them as its partner."""

    def side(category: str, p: str, role: str) -> ir.Table:
        t = agg.filter(agg.category == category)
        return t.select(**{f"{p}{k}": t[k] for k in keys},
                        **{f"{p}time": t[f"{role}_time"], f"{p}file": t[f"{role}_file_index"],
                           f"{p}line": t[f"{role}_line"], f"{p}fbp": t[f"{role}_fbp"]})

    so, bo = side("server_only", "s_", "server"), side("browser_only", "b_", "browser")
    pix = [so.s_pixel_id.identical_to(bo.b_pixel_id)] if "pixel_id" in keys else []
    cols = [*(f"s_{k}" for k in keys), "s_time", "s_file", "s_line",
            *(f"b_{k}" for k in keys), "b_time", "b_file", "b_line"]
    case = so.join(bo, [so.s_event_id == bo.b_event_id,
                        so.s_event_name.lower() == bo.b_event_name.lower(), *pix])
    case = case.select(*cols, prio=ibis.literal(0))
    prob = so.join(bo, [so.s_event_name == bo.b_event_name, so.s_fbp.notnull(), so.s_fbp == bo.b_fbp,
                        (so.s_time - bo.b_time).abs() <= probable_s, *pix])
    prob = prob.select(*cols, prio=ibis.literal(1))
    m = ibis.union(case, prob, distinct=False)
    s_keys = [f"s_{k}" for k in keys]
    b_keys = [f"b_{k}" for k in keys]
    m = m.mutate(
        _srank=ibis.row_number().over(group_by=s_keys, order_by=["prio", "b_time", "b_file", "b_line"]),
        _sprio=m.prio.min().over(group_by=s_keys),
    )
    reason = ibis.ifelse(m.prio == 0, "name_case_mismatch", "different_ids_probable")
    server_res = m.filter(m._srank == 0).select(
        **{k: m[f"s_{k}"] for k in keys}, reason=reason,
        partner_event_name=m.b_event_name, partner_event_id=m.b_event_id,
    )
    counted = m.filter(m.prio == m._sprio)
    counted = counted.mutate(
        _brank=ibis.row_number().over(group_by=b_keys, order_by=["prio", "s_time", "s_file", "s_line"]),
    )
    breason = ibis.ifelse(counted.prio == 0, "name_case_mismatch", "different_ids_probable")
    browser_res = counted.filter(counted._brank == 0).select(
        **{k: counted[f"b_{k}"] for k in keys}, reason=breason,
        partner_event_name=counted.s_event_name, partner_event_id=counted.s_event_id,
    )
    return ibis.union(server_res, browser_res, distinct=False)


PAIRED_COLUMNS: tuple[str, ...] = (
    "row_id", "source_file", "file_index", "line", "event_time", "sent_at",
    "fbp", "external_id", "client_ip_address", "value",
)
"""The columns of each side kept in ``paired_rows``: the row's place and times, and what the
browser/server comparisons read (``match_keys``: the :data:`PAIRED_FIRST` fields; ``contract``:
``value``). The key columns are the pair's own."""
PAIRED_FIRST: tuple[str, ...] = ("fbp", "external_id", "client_ip_address")
"""List columns that ``paired_rows`` keeps as their :func:`first_value`, the one value every comparison
reads: a string per side, not the whole list (``fbp`` examples show both values)."""
PAIRED_COMPARED: tuple[str, ...] = ("client_user_agent",)
"""List columns that ``paired_rows`` keeps only as the comparison of the two sides' first values:
``<field>_pair`` (:data:`PAIR_STATES`), never the values themselves. No reader shows a pair's user
agents, and they are the widest value of a row (about 130 bytes): at 1M events the two strings were
200 of the measure's 482 MB, which the 1 GB default limit made spill."""
PAIR_STATES: tuple[str, ...] = ("same", "differ", "browser_only", "server_only", "neither")
"""``<field>_pair`` of a :data:`PAIRED_COMPARED` field: both first values present and equal, both
present and different, only the browser's, only the server's, neither side's. Never null, so that a
count over it is a number on every engine (Spark sums a condition for a filtered count, and a sum of
nulls is null)."""
PAIRED_FIELDS: tuple[str, ...] = PAIRED_FIRST + PAIRED_COMPARED
"""Every field compared between the earliest browser and server rows of a paired key."""


def pair_state(b: ir.StringValue, s: ir.StringValue) -> ir.StringValue:
    """:data:`PAIR_STATES` of two first values (null = absent)."""
    both = b.notnull() & s.notnull()
    return ibis.cases(
        (both & (b == s), "same"),
        (both, "differ"),
        (b.notnull(), "browser_only"),
        (s.notnull(), "server_only"),
        else_="neither",
    )


def paired_rows_expr(ds: Dataset) -> ir.Table:
    """For each paired key: the key columns, then the :data:`PAIRED_COLUMNS` of the key's earliest
    browser row prefixed ``b_`` and of its earliest server row prefixed ``s_`` (joined by the row ids
    the key table kept: no second ranking of the rows); the :data:`PAIRED_FIRST` lists as their first
    value (null when the list is null, empty or its first value blank); then ``<field>_pair`` for each
    :data:`PAIRED_COMPARED` field (:func:`pair_state` of the two first values)."""
    keys = list(key_columns(ds))
    kt = ds.measure("key_table")
    kt = kt.filter(kt.category == "paired").select(*keys, "browser_row_id", "server_row_id")

    def prefixed(role: str, prefix: str) -> ir.Table:
        t = ds.events(role)
        cols = {f"{prefix}{c}": first_value(t[c]) if c in PAIRED_FIRST else t[c] for c in PAIRED_COLUMNS}
        cols.update({f"{prefix}{c}": first_value(t[c]) for c in PAIRED_COMPARED})
        return t.select(**cols)

    b, s = prefixed("browser", "b_"), prefixed("server", "s_")
    j = kt.join(b, kt.browser_row_id == b.b_row_id).join(s, kt.server_row_id == s.s_row_id)
    kept = [f"{p}{c}" for p in ("b_", "s_") for c in PAIRED_COLUMNS]
    return j.select(*keys, *kept, **{f"{f}_pair": pair_state(j[f"b_{f}"], j[f"s_{f}"]) for f in PAIRED_COMPARED})


@register("key_table")
def _key_table(ds: Dataset) -> ir.Table:
    return key_table_expr(ds)


@register("paired_rows")
def _paired_rows(ds: Dataset) -> ir.Table:
    return paired_rows_expr(ds)


@register("user_data_values")
def _user_data_values(ds: Dataset) -> ir.Table:
    return rules.server_values_expr(ds)


@register("server_validity")
def _server_validity(ds: Dataset) -> ir.Table:
    return rules.server_validity_expr(ds)


# -- counts over a row-validity table -----------------------------------------------------------------

def field_counts(ds: Dataset, rv: ir.Table, fields: Sequence[str], name: str) -> dict[str, Any]:
    """One aggregate over a :func:`capi_diag.engine.rules.row_validity` table (query ``name``): ``rows`` and,
    per field, ``present``, ``valid`` and ``defects`` (row counts)."""
    def build() -> ir.Table:
        aggs: dict[str, ir.Value] = {"rows": rv.count()}
        for f in fields:
            aggs[f"{f}_present"] = rv[f"{f}_present"].sum()
            aggs[f"{f}_valid"] = rv[f"{f}_valid"].sum()
            for d in rules.DEFECTS[f]:
                aggs[f"{f}_{d}"] = rv[f"{f}_{d}"].sum()
        return rv.aggregate(**aggs)

    row = ds.fetch(name, build)[0]
    out: dict[str, Any] = {"rows": int(row["rows"] or 0)}
    for f in fields:
        out[f] = {"present": int(row[f"{f}_present"] or 0), "valid": int(row[f"{f}_valid"] or 0),
                  "defects": {d: int(row[f"{f}_{d}"] or 0) for d in rules.DEFECTS[f]}}
    return out


def valid_by_event_name(ds: Dataset, rv: ir.Table, fields: Sequence[str], name: str) -> dict[str, dict[str, int]]:
    """``{event_name: {"rows": N, "<field>": valid rows, ...}}`` over a row-validity table (query
    ``name``); a missing event name is ``(none)``."""
    def build() -> ir.Table:
        aggs: dict[str, ir.Value] = {"rows": rv.count()}
        aggs.update({f"{f}_valid": rv[f"{f}_valid"].sum() for f in fields})
        return rv.group_by("event_name").aggregate(**aggs).order_by("event_name")

    out: dict[str, dict[str, int]] = {}
    for r in ds.fetch(name, build):
        key = "(none)" if r["event_name"] is None else str(r["event_name"])
        out[key] = {"rows": int(r["rows"]), **{f: int(r[f"{f}_valid"] or 0) for f in fields}}
    return out
