"""Payload contract: server events whose fields break what Meta's Conversions API expects.

What it measures (server rows, duplicates included, unless said otherwise):

* ``purchase_missing_value`` / ``purchase_missing_currency``: rows named exactly ``Purchase`` with an
  empty ``value`` / ``currency`` (Meta requires both for purchases).
* ``value_not_numeric``: rows whose non-empty ``value`` is not a plain decimal: optional sign,
  digits, optionally ``.`` and digits, surrounding whitespace allowed
  (``\\A\\s*[+-]?[0-9]+(\\.[0-9]+)?\\s*\\z``).
  JSON numbers pass (the import stores them as decimal text); ``129,95``, ``€10``, ``1e3``, ``.5``
  do not.
* ``currency_invalid``: rows whose non-empty ``currency`` is not an ISO 4217 code, compared ignoring
  case (Meta accepts ``usd``) but otherwise exactly as sent (``" USD "`` is invalid). The list is
  pycountry's; ``XXX`` (no currency) and ``XTS`` (testing) are not accepted.
* ``value_mismatch``: paired ``Purchase`` keys (see ``dedup``) whose browser and server values
  (earliest row of each side, both numeric) differ once rounded half away from zero to cents,
  compared as decimals (never floats).
* ``action_source_invalid``: rows whose ``action_source`` is missing or not exactly one of Meta's
  values (``website``, ``app``, ``email``...).
* ``event_source_url_missing``: ``website`` rows without an ``event_source_url`` (required for web
  events).
* ``nonstandard_event_name``: rows whose name equals a standard event only when case and
  underscores are ignored (``purchase``, ``add_to_cart``); the ``Purchase`` checks above use the
  exact name, so such rows are counted here instead.
* ``test_event_code_present``: rows that carry a ``test_event_code``.
* ``insufficient_user_data``: rows whose *valid* ``user_data`` keys (per the ``match_keys`` rules)
  are a subset of one of Meta's too-broad combinations (``ct+country+st+zp+ge+client_user_agent``,
  ``db+client_user_agent``, ``fn+ge``, ``ln+ge``), including rows with no valid key at all.

Why it matters for Meta CAPI: Meta rejects a request when one event in it is invalid (a missing
``action_source``, an insufficient ``user_data``: subcode 2804050), so one bad field drops the whole
batch; a purchase without a numeric value or an ISO currency reports no revenue and cannot feed
value optimisation; a renamed standard event (``purchase``) is a custom event that no standard
optimisation sees; a test code left in production sends test traffic into real measurement (Meta
does not sandbox test events).

Usual cause and fix: a tag template mapping the wrong variable (value formatted for display,
``129,95`` or ``€10``), a missing ``action_source`` constant, ``event_source_url`` not forwarded
from the page, a hand-typed event name, a test code left in the server container. Fix the mapping
in the server-side tag or the backend, and re-check with this report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from capi_diag.core import labels
from capi_diag.core.config import Config
from capi_diag.core.patterns import BLANK_RE, TOO_BROAD, USER_DATA_KEYS
from capi_diag.core.schema import ACTION_SOURCES, STANDARD_EVENTS
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine import measures, rules
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import LazyTable, ibis, ir
from capi_diag.engine.pii import mask_row

SECTION = "contract"

DEFAULTS: dict[str, Any] = {"examples": 20}
"""``examples``: example rows kept per rule."""

PURCHASE = "Purchase"
PLAIN_DECIMAL = r"\A\s*[+-]?[0-9]+(\.[0-9]+)?\s*\z"
"""A plain decimal, anchored so that it means the same on every engine."""
CENTS_PREFIX = r"\A\s*([+-]?[0-9]+(?:\.[0-9]{1,3})?)"
"""Sign, integer part and at most three decimals: exactly what rounding half away from zero to
cents needs (the third decimal decides), so the cast below never rounds twice."""

@functools.cache
def currencies() -> frozenset[str]:
    """ISO 4217 alphabetic codes, without ``XXX`` (no currency) and ``XTS`` (reserved for testing);
    pycountry is imported on first use (only to build a query: a cached report never needs it)."""
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.currencies) - {"XXX", "XTS"}

ROW_RULES: tuple[str, ...] = (
    "purchase_missing_value", "purchase_missing_currency", "value_not_numeric", "currency_invalid",
    "action_source_invalid", "event_source_url_missing", "nonstandard_event_name",
    "test_event_code_present", "insufficient_user_data",
)
RULES: tuple[str, ...] = (*ROW_RULES[:4], "value_mismatch", *ROW_RULES[4:])
"""Every count of the section, in report order."""

SEVERITY: dict[str, str] = {
    "purchase_missing_value": "error", "purchase_missing_currency": "error", "value_not_numeric": "error",
    "currency_invalid": "error", "value_mismatch": "warning", "action_source_invalid": "error",
    "event_source_url_missing": "error", "nonstandard_event_name": "error",
    "test_event_code_present": "error", "insufficient_user_data": "error",
}
_FOLDED_STANDARD: dict[str, str] = {name.lower(): name for name in STANDARD_EVENTS}
MAX_NAMES = 100
"""Event names listed one by one in ``by_event_name``."""


# -- per-row rules (Ibis boolean expressions) ------------------------------------------------------

def _empty(col: ir.StringValue) -> ir.BooleanValue:
    return col.isnull() | col.re_search(BLANK_RE).fill_null(True)


def is_plain_decimal(col: ir.StringValue) -> ir.BooleanValue:
    """Whether a text value is a plain decimal (see :data:`PLAIN_DECIMAL`); null stays null."""
    return col.re_search(PLAIN_DECIMAL)


def cents(col: ir.StringValue) -> ir.DecimalValue:
    """A plain-decimal text as an exact DECIMAL rounded half away from zero to cents (null otherwise)."""
    prefix = col.re_extract(CENTS_PREFIX, 1)
    return ibis.ifelse(is_plain_decimal(col).fill_null(False), prefix, ibis.null("string")) \
        .cast("decimal(38, 3)").round(2)


def standard_name(name: ir.StringValue) -> ir.StringValue:
    """The standard event a name equals ignoring case and underscores (null if none)."""
    folded = name.replace("_", "").lower()
    return ibis.cases(*[(folded == k, v) for k, v in _FOLDED_STANDARD.items()], else_=ibis.null("string"))


def _insufficient(v: ir.Table, keys: list[str]) -> tuple[ir.BooleanValue, ir.StringValue]:
    def valid(k: str) -> ir.BooleanValue:
        return v[f"{k}_valid"].fill_null(False)

    subset_of_any = ibis.literal(False)
    for combo in TOO_BROAD:
        outside = ibis.literal(False)
        for k in keys:
            if k not in combo:
                outside = outside | valid(k)
        subset_of_any = subset_of_any | ~outside
    listed = ibis.literal("")
    for k in keys:
        listed = listed.concat(ibis.ifelse(valid(k), f", {k}", ""))
    listed = listed.re_replace(r"\A, ", "")
    detail = ibis.ifelse(listed == "", "no valid user_data key", ibis.literal("valid keys: ").concat(listed))
    return subset_of_any, detail


def annotate(ds: Dataset) -> ir.Table:
    """Server rows with one boolean column per row rule and one ``<rule>__detail`` text column each,
    null where the rule holds (the ``contract_rows`` measure: every count, breakdown and example
    reads the same per-row flags, so the engine materializes them once per scope)."""
    return ds.measure("contract_rows")


@measures.register("contract_rows")
def annotate_expr(ds: Dataset) -> ir.Table:
    """:func:`annotate` as an expression."""
    v = rules.server_validity(ds)  # shared with match_keys and emq: built once per dataset
    insufficient, insufficient_detail = _insufficient(v, list(USER_DATA_KEYS))
    std = standard_name(v.event_name)
    value_set = ~_empty(v.value)
    currency_set = ~_empty(v.currency)
    flags: dict[str, tuple[ir.BooleanValue, ir.StringValue]] = {
        "purchase_missing_value": ((v.event_name == PURCHASE) & _empty(v.value), ibis.literal("value")),
        "purchase_missing_currency": ((v.event_name == PURCHASE) & _empty(v.currency),
                                      ibis.literal("currency")),
        "value_not_numeric": (value_set & ~is_plain_decimal(v.value).fill_null(False),
                              ibis.literal("value ").concat(v.value.substr(0, 40))),
        "currency_invalid": (currency_set & ~v.currency.upper().isin(sorted(currencies())).fill_null(False),
                             ibis.literal("currency ").concat(v.currency.substr(0, 40))),
        "action_source_invalid": (~v.action_source.isin(list(ACTION_SOURCES)).fill_null(False),
                                  ibis.ifelse(v.action_source.isnull(), "action_source missing",
                                              ibis.literal("action_source ").concat(
                                                  v.action_source.substr(0, 40)))),
        "event_source_url_missing": ((v.action_source == "website").fill_null(False)
                                     & _empty(v.event_source_url), ibis.literal("event_source_url")),
        "nonstandard_event_name": (std.notnull() & ~v.event_name.isin(list(STANDARD_EVENTS)),
                                   ibis.literal("use ").concat(std)),
        "test_event_code_present": (~_empty(v.test_event_code),
                                    ibis.literal("test_event_code ").concat(v.test_event_code.substr(0, 40))),
        "insufficient_user_data": (insufficient, insufficient_detail),
    }
    cols: dict[str, Any] = {}
    for rule, (flag, detail) in flags.items():
        cols[rule] = flag.fill_null(False)
        # only the rows that break the rule have a detail (every reader filters on the flag first):
        # the texts are built for those rows only
        cols[f"{rule}__detail"] = ibis.ifelse(cols[rule], detail, ibis.null("string"))
    kept = ("row_id", "source_file", "file_index", "line", "event_name", "event_id", "event_time", "value",
            "currency", "action_source", "event_source_url", "test_event_code")
    return v.select(*kept, **cols)


# -- value_mismatch (paired keys) ------------------------------------------------------------------

def _value_pairs(ds: Dataset, config: Config) -> ir.Table | None:
    """Paired ``Purchase`` keys with both values numeric: ``b_cents``, ``s_cents`` and ``mismatch``;
    ``None`` when either log has no ``value`` column."""
    if not (ds.has("browser", "value") and ds.has("server", "value")):
        return None
    p = ds.using(config).measure("paired_rows")
    p = p.filter(p.event_name == PURCHASE)
    p = p.mutate(b_cents=cents(p.b_value), s_cents=cents(p.s_value))
    p = p.filter(p.b_cents.notnull() & p.s_cents.notnull())
    return p.mutate(mismatch=p.b_cents != p.s_cents)


# -- the section -----------------------------------------------------------------------------------

def _n(value: Any) -> int:
    return 0 if value is None or value != value else int(value)


def analyze(ds: Dataset, config: Config, prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``contract`` section (see the module docstring for every definition)."""
    opts = config.options(SECTION, DEFAULTS)
    ds = ds.using(config)
    return _analyze(ds, config, LazyTable(lambda: annotate(ds)), int(opts["examples"]))


def _analyze(ds: Dataset, config: Config, a: ir.Table, limit: int) -> dict[str, Any]:
    totals = ds.fetch("contract.totals", lambda: a.aggregate(
        rows=a.count(), purchase_rows=(a.event_name == PURCHASE).sum(),
        website_rows=(a.action_source == "website").sum(),
        **{r: a[r].sum() for r in ROW_RULES},
    ))[0]
    out: dict[str, Any] = {
        "server_rows": _n(totals["rows"]),
        "purchase_rows": _n(totals["purchase_rows"]),
        "website_rows": _n(totals["website_rows"]),
        "action_source_column": ds.has("server", "action_source"),
    }
    for rule in ROW_RULES:
        out[rule] = _n(totals[rule])
    compared = ds.has("browser", "value") and ds.has("server", "value")  # see _value_pairs
    pairs = LazyTable(lambda: _value_pairs(ds, config))
    mismatch_examples: list[dict[str, Any]] = []
    if not compared:
        out["value_mismatch"] = None
        out["value_pairs_compared"] = None
    else:
        agg = ds.fetch("contract.value_pairs",
                       lambda: pairs.aggregate(compared=pairs.count(), mismatch=pairs.mismatch.sum()))[0]
        mismatch_examples = _mismatch_examples(ds, pairs, limit)
        out["value_pairs_compared"] = _n(agg["compared"])
        out["value_mismatch"] = _n(agg["mismatch"])
    empty = out["server_rows"] == 0
    out = {"status": "not_evaluated" if empty else "evaluated",
           "reason": "The server log has no rows." if empty else None,
           **{k: out[k] for k in ("server_rows", "purchase_rows", "website_rows", "action_source_column")},
           **{r: out[r] for r in RULES}, "value_pairs_compared": out["value_pairs_compared"]}
    out["nonstandard_names"] = _name_variants(ds, a)
    bad_currency = LazyTable(lambda: a.filter(a.currency_invalid))
    bad_source = LazyTable(lambda: a.filter(a.action_source_invalid))
    out["invalid_values"] = {
        "currency": _top_values(ds, "contract.top.currency", bad_currency, lambda: bad_currency.currency),
        "action_source": _top_values(ds, "contract.top.action_source", bad_source,
                                     lambda: bad_source.action_source.fill_null("(missing)")),
    }
    out["by_event_name"] = _by_event_name(ds, a)
    examples = _row_examples(ds, a, limit)
    examples["value_mismatch"] = mismatch_examples
    out["examples"] = {r: examples[r] for r in RULES}
    return out


def _name_variants(ds: Dataset, a: ir.Table) -> dict[str, dict[str, Any]]:
    f = LazyTable(lambda: a.filter(a.nonstandard_event_name))
    found = ds.fetch("contract.name_variants", lambda: f.group_by("event_name").aggregate(rows=f.count())
                     .order_by([ibis.desc("rows"), "event_name"]).limit(MAX_NAMES))
    out = {}
    for rec in found:
        name = rec["event_name"]
        out[name] = {"rows": int(rec["rows"]), "standard": _FOLDED_STANDARD[name.replace("_", "").lower()]}
    return out


def _top_values(ds: Dataset, name: str, filtered: ir.Table, col: Callable[[], ir.Value],
                limit: int = 20) -> dict[str, int]:
    found = ds.fetch(name, lambda: filtered.group_by(v=col()).aggregate(rows=filtered.count())
                     .order_by([ibis.desc("rows"), "v"]).limit(limit))
    return {str(r["v"]): int(r["rows"]) for r in found}


def _by_event_name(ds: Dataset, a: ir.Table) -> dict[str, dict[str, int]]:
    found = ds.fetch("contract.by_event_name", lambda: a.group_by("event_name")
                     .aggregate(rows=a.count(), **{r: a[r].sum() for r in ROW_RULES})
                     .order_by([ibis.desc("rows"), "event_name"]).limit(MAX_NAMES))
    out: dict[str, dict[str, int]] = {}
    for rec in found:
        out[str(rec["event_name"])] = {"rows": int(rec["rows"]), **{r: _n(rec[r]) for r in ROW_RULES}}
    return out


_EXAMPLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "purchase_missing_value": ("value", "currency"),
    "purchase_missing_currency": ("value", "currency"),
    "value_not_numeric": ("value",),
    "currency_invalid": ("currency",),
    "action_source_invalid": ("action_source",),
    "event_source_url_missing": ("action_source",),
    "nonstandard_event_name": (),
    "test_event_code_present": ("test_event_code",),
    "insufficient_user_data": (),
}


def _row_examples(ds: Dataset, a: ir.Table, limit: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``limit`` rows per rule, earliest first, fetched in one query (the first rows of each
    rule, unioned: a top-N per rule instead of a ranking of every row)."""
    cols = ["source_file", "line", "event_name", "event_id", "event_time"]
    extra = sorted({c for r in ROW_RULES for c in _EXAMPLE_COLUMNS[r]})
    order = ["event_time", "file_index", "line", "row_id"]

    def build() -> ir.Table:
        parts = []
        for r in ROW_RULES:
            f = a.filter(a[r]).order_by(order).limit(limit)
            parts.append(f.select(*cols, *extra, "file_index", "row_id", detail=f[f"{r}__detail"],
                                  rule=ibis.literal(r)))
        return ibis.union(*parts, distinct=False)

    fetched = ds.fetch("contract.row_examples", build) if limit > 0 else []
    fetched.sort(key=lambda rec: tuple(rec[c] for c in order))
    out: dict[str, list[dict[str, Any]]] = {}
    for r in ROW_RULES:
        out[r] = [mask_row({**{c: rec[c] for c in (*cols, *_EXAMPLE_COLUMNS[r])}, "detail": rec["detail"]})
                  for rec in fetched if rec["rule"] == r]
    return out


def _mismatch_examples(ds: Dataset, pairs: ir.Table, limit: int) -> list[dict[str, Any]]:
    def build() -> ir.Table:
        p = pairs.filter(pairs.mismatch)
        order = [c for c in ("s_event_time", "s_file_index", "s_line") if c in p.columns]
        eid = p.event_id if "event_id" in p.columns else p.s_event_id
        return p.order_by(order or [eid]).select(
            event_id=eid, browser_value=p.b_value, server_value=p.s_value,
            browser_cents=p.b_cents.cast("string"), server_cents=p.s_cents.cast("string"),
        ).limit(limit)

    return ds.fetch("contract.mismatch_examples", build)


def failing_rows(ds: Dataset, config: Config) -> ir.Table:
    """One row per (server row, broken rule); ``value_mismatch`` names the earliest server row of the
    key. ``detail`` is the rule's field and the offending non-personal value (truncated)."""
    ds = ds.using(config)
    a = annotate(ds)
    parts = []
    for rule in ROW_RULES:
        f = a.filter(a[rule])
        parts.append(f.select(
            section=ibis.literal(SECTION), finding=ibis.literal(rule), severity=ibis.literal(SEVERITY[rule]),
            role=ibis.literal("server"), source_file=f.source_file, line=f.line, event_name=f.event_name,
            event_id=f.event_id, detail=f[f"{rule}__detail"],
        ))
    pairs = _value_pairs(ds, config)
    if pairs is not None:
        p = pairs.filter(pairs.mismatch)
        name = p.event_name if "event_name" in p.columns else p.s_event_name
        eid = p.event_id if "event_id" in p.columns else p.s_event_id
        parts.append(p.select(
            section=ibis.literal(SECTION), finding=ibis.literal("value_mismatch"),
            severity=ibis.literal(SEVERITY["value_mismatch"]), role=ibis.literal("server"),
            source_file=p.s_source_file, line=p.s_line.cast("int64"), event_name=name, event_id=eid,
            detail=ibis.literal("browser ").concat(p.b_cents.cast("string"), " vs server ",
                                                    p.s_cents.cast("string")),
        ))
    out = parts[0]
    for part in parts[1:]:
        out = out.union(part)
    return out.select(*FAILING_ROW_COLUMNS)


_TEXT: dict[str, tuple[str, str]] = {
    "purchase_missing_value": (
        "Server rows named Purchase with an empty value.",
        "Map the order total (a number) to custom_data.value on every Purchase."),
    "purchase_missing_currency": (
        "Server rows named Purchase with an empty currency.",
        "Send custom_data.currency as the ISO 4217 code of the order (e.g. EUR) on every Purchase."),
    "value_not_numeric": (
        "Rows whose value is not a plain decimal (129,95, €10 and 1e3 are not).",
        "Send value as a number with a dot as decimal separator and no currency sign."),
    "currency_invalid": (
        "Rows whose currency is not an ISO 4217 code (case is ignored).",
        "Send the three-letter ISO 4217 code (EUR, USD), not a symbol or a name."),
    "value_mismatch": (
        "Paired Purchase events whose browser and server values differ "
        "once rounded to cents: the copy Meta keeps decides the revenue reported.",
        "Take the value from the same source (the order total, tax and shipping rules alike) on both sides."),
    "action_source_invalid": (
        "Rows whose action_source is empty or not one of Meta's values; "
        "Meta rejects them, and the batch they are in.",
        "Set action_source to website (or app, email, physical_store...) on every server event."),
    "event_source_url_missing": (
        "Website rows without event_source_url, which Meta "
        "requires for web events.",
        "Forward the page URL (page_location) to the server and send it as event_source_url."),
    "nonstandard_event_name": (
        "Rows named like a standard event except for case or "
        "underscores (purchase, add_to_cart): Meta treats them as custom events.",
        "Use Meta's exact spelling (Purchase, AddToCart) on both the Pixel and the server."),
    "test_event_code_present": (
        "Rows carrying a test_event_code; Meta does not sandbox test events, "
        "so test traffic counts as real.",
        "Remove test_event_code from the production server configuration."),
    "insufficient_user_data": (
        "Rows whose valid user_data keys are only a subset of one of "
        "Meta's too-broad combinations (or none at all): Meta rejects them (subcode 2804050).",
        "Send at least one strong key (em, ph, external_id, fbp, client_ip_address with client_user_agent)."),
}
"""Per rule: what it counts, and its fix. Its title is :func:`capi_diag.core.labels.label`'s, the one table
of titles."""


def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One sentence with its fix per rule."""
    return [{"label": labels.label(r), "value": result.get(r), "text": _TEXT[r][0], "fix": _TEXT[r][1],
             "unit": labels.unit(r)} for r in RULES]

