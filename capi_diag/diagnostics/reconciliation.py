"""Where conversions get lost: every order of the shop followed through both logs and Meta's answers.

What it measures (needs the orders export; Meta's answers are optional): per order (its distinct id,
a leading ``#`` ignored), whether the browser log and the server log hold a Purchase row for it, and
whether Meta accepted a server send of it. Then one **waterfall**, each order in exactly one bucket,
the first that applies:

1. ``not_sent``: neither log sent it (with Meta's answers: no Pixel row and no server send recorded);
2. ``refused``: no Pixel copy and every server send of it refused by Meta (needs Meta's answers);
3. ``counted_twice``: a browser and a server copy both reached Meta and they do not deduplicate (no
   server Purchase row of the order pairs with a browser row: same ``event_name`` + ``event_id``
   within 48 h, the dedup section's rule);
4. ``unlikely_match``: its only copy that reached Meta is a server event without a valid strong match
   key (``[reconciliation] strong_keys``, by default ``em``, ``ph``, ``external_id``, ``fbc``: the keys
   that identify a person or an ad click on their own; IP + user agent and ``fbp`` alone rarely do);
5. ``counted_once``: reached Meta once, by either channel.

Which rows belong to an order: Purchase rows (``purchase_event``, exact name: Meta counts
``purchase`` as a custom event) by ``[reconciliation] order_key`` (``order_id`` by default; a log
without an ``order_id`` column is matched by its ``event_id``, the common setup where the order number
is the dedup id; ``order_key = "event_id"`` uses ``event_id`` everywhere). ``value_mismatch``: the
order's earliest server Purchase (time, file, line) carries a value that differs from the order total
by more than one cent, compared as decimals (a missing or non-numeric value differs);
``currency_mismatch`` likewise for the currency. With Meta's answers present, the send log is taken as
the complete record of what the server sent.

Why it matters for Meta CAPI: the shop counts orders, Meta counts the Purchase events it received and
kept. Each bucket is a different fix, and the analyst's first question ("will every order reach Meta
exactly once?") is answered per order, not by comparing two totals.

Usual cause and fix: the Pixel is blocked or denied consent and the server does not send every order
(``not_sent``: send every order from the server, e.g. from the order webhook); Meta refuses a batch
(``refused``: see the delivery section's codes); ``event_id`` differs between the two copies
(``counted_twice``: use the order number as ``event_id`` on both sides); the server sends no customer
information (``unlikely_match``: add hashed ``em``/``ph`` and ``external_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.core.patterns import USER_DATA_KEYS
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine import measures, rules
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import ibis, ir

SECTION = "reconciliation"

DEFAULTS: dict[str, Any] = {
    "order_key": "order_id",
    "purchase_event": "Purchase",
    "strong_keys": ["em", "ph", "external_id", "fbc"],
    "examples": 20,
}
"""``order_key``: ``order_id`` or ``event_id`` (see the module docstring); ``purchase_event``: the
exact event name of a purchase; ``strong_keys``: the ``user_data`` keys that make a server event
likely to match on its own; ``examples``: lost orders kept per bucket in the report."""

STAGES: tuple[str, ...] = ("not_sent", "refused", "counted_twice", "unlikely_match", "counted_once")
LOST_STAGES: tuple[str, ...] = ("not_sent", "refused", "counted_twice", "unlikely_match")
STAGE_NEEDS: dict[str, str] = {"refused": "sends"}
"""The optional input a stage needs beside the orders (without it the stage is not evaluated)."""
TOLERANCE = Decimal("0.01")
DECIMAL = "decimal(38, 6)"
ORDER_COLUMNS: tuple[str, ...] = (
    "order_id", "created_at", "day", "total", "currency", "status", "stage", "browser_rows", "server_rows",
    "sends", "sends_accepted", "paired", "strong_key", "server_value", "server_currency", "value_mismatch",
    "currency_mismatch", "browser_source_file", "browser_line", "browser_event_id", "server_source_file",
    "server_line", "server_event_id",
)
"""The columns of :func:`order_table` (one row per order; the dashboard's CSV)."""


def options(config: Config | None) -> dict[str, Any]:
    """The ``[reconciliation]`` options over :data:`DEFAULTS`, validated."""
    config = config or Config()
    opts = config.options(SECTION, DEFAULTS)
    if opts["order_key"] not in ("order_id", "event_id"):
        raise ConfigError(f"{config.source}: [reconciliation] order_key must be \"order_id\" or \"event_id\", "
                          f"found {opts['order_key']!r}.")
    if not isinstance(opts["purchase_event"], str) or not opts["purchase_event"].strip():
        raise ConfigError(f"{config.source}: [reconciliation] purchase_event must be an event name.")
    keys = opts["strong_keys"]
    bad = [k for k in keys if k not in USER_DATA_KEYS]
    if not keys or bad:
        raise ConfigError(f"{config.source}: [reconciliation] strong_keys must be a non-empty list of user_data "
                          f"keys ({', '.join(USER_DATA_KEYS)}); found {', '.join(map(str, bad)) or 'none'}.")
    if not isinstance(opts["examples"], int) or opts["examples"] < 0:
        raise ConfigError(f"{config.source}: [reconciliation] examples must be a whole number >= 0.")
    return opts


def order_key_expr(col: ir.StringValue) -> ir.StringValue:
    """An order id as matched: trimmed, without a leading ``#``, null when blank."""
    v = col.strip().re_replace(r"\A#", "").strip()
    return ibis.ifelse(v == "", ibis.null("string"), v)


def key_column(ds: Dataset, role: str, config: Config | None = None) -> str:
    """The column that names a Purchase row's order in the ``role`` log."""
    if options(config or ds.config)["order_key"] == "event_id" or not ds.has(role, "order_id"):
        return "event_id"
    return "order_id"


def purchase_rows(ds: Dataset, role: str) -> ir.Table:
    """The Purchase rows of ``role`` with ``_key`` (the order they name)."""
    opts = options(ds.config)
    t = ds.events(role)
    t = t.filter(t.event_name == opts["purchase_event"])
    return t.mutate(_key=order_key_expr(t[key_column(ds, role)]))


def _orders(ds: Dataset) -> ir.Table:
    o = ds.orders()
    o = o.mutate(_key=order_key_expr(o.order_id))
    o = o.filter(o._key.notnull())
    return o.group_by("_key").aggregate(
        created_at=o.created_at.min(),
        total=o.total.argmin(o.row_id, where=o.total.notnull()),
        currency=o.currency.argmin(o.row_id, where=o.currency.notnull()),
        status=o.status.argmin(o.row_id, where=o.status.notnull()),
    )


def _earliest(t: ir.Table) -> ir.Table:
    t = t.filter(t._key.notnull())
    t = t.mutate(_rn=ibis.row_number().over(group_by="_key", order_by=list(measures.ROW_ORDER)))
    return t.filter(t._rn == 0)


def order_table_expr(ds: Dataset) -> ir.Table:
    """One row per order with its stage (:data:`ORDER_COLUMNS`)."""
    opts = options(ds.config)
    answers = ds.has_input("sends")
    o = _orders(ds)

    b = purchase_rows(ds, "browser")
    b_first = _earliest(b).select(_key="_key", browser_source_file="source_file", browser_line="line",
                                  browser_event_id="event_id")
    bk = b.filter(b._key.notnull())
    b_n = bk.group_by("_key").aggregate(browser_rows=bk.count())

    s = purchase_rows(ds, "server")
    strong_cols = [f"{k}_valid" for k in opts["strong_keys"]]
    sv = rules.server_validity(ds)
    strong = sv.select("row_id", _strong=ibis.or_(*[sv[c] for c in strong_cols]))
    keys = list(measures.key_columns(ds))
    kt = ds.measure("key_table")
    paired = kt.filter(kt.category == "paired").select(*keys)
    strong = strong.rename(_srow="row_id")
    s = s.left_join(strong, s.row_id == strong._srow)
    sp = purchase_rows(ds, "server")
    sp = sp.semi_join(paired, measures.key_preds(sp, paired, keys)).select(_prow="row_id")
    s = s.left_join(sp, s.row_id == sp._prow)
    s = s.mutate(_paired=s._prow.notnull())
    s = s.filter(s._key.notnull())
    s_agg = s.group_by("_key").aggregate(
        server_rows=s.count(), paired=s._paired.any(), strong_key=s._strong.fill_null(False).any())
    s_first = _earliest(purchase_rows(ds, "server")).select(
        _key="_key", server_source_file="source_file", server_line="line", server_event_id="event_id",
        server_value="value", server_currency="currency")

    j = o
    for part in (b_n, b_first, s_agg, s_first):
        j = j.left_join(part, j._key == part._key).drop("_key_right")
    if answers:
        sd = ds.sends()
        sd = sd.filter(sd.event_name == opts["purchase_event"])
        if opts["order_key"] == "event_id":
            sk = order_key_expr(sd.event_id)
        else:
            sk = order_key_expr(sd.order_id).fill_null(order_key_expr(sd.event_id))
        sd = sd.mutate(_key=sk)
        sd = sd.filter(sd._key.notnull())
        sd = sd.group_by("_key").aggregate(
            sends=sd.count(), sends_accepted=sd.accepted.fill_null(False).cast("int64").sum())
        j = j.left_join(sd, j._key == sd._key).drop("_key_right")
    else:
        j = j.mutate(sends=ibis.null("int64"), sends_accepted=ibis.null("int64"))

    br = j.browser_rows.fill_null(0)
    sr = j.server_rows.fill_null(0)
    has_b, has_s = br > 0, sr > 0
    if answers:
        server_sent = j.sends.fill_null(0) > 0
        reached = j.sends_accepted.fill_null(0) > 0
    else:
        server_sent = has_s
        reached = has_s
    paired_o = j.paired.fill_null(False)
    strong_o = j.strong_key.fill_null(False)
    branches = [(~has_b & ~server_sent, "not_sent")]
    if answers:
        branches.append((~has_b & ~reached, "refused"))
    branches += [(has_b & reached & ~paired_o, "counted_twice"),
                 (~has_b & reached & ~strong_o, "unlikely_match")]
    stage = ibis.cases(*branches, else_="counted_once")
    total = j.total.try_cast(DECIMAL)
    sval = j.server_value.try_cast(DECIMAL)
    value_mismatch = has_s & total.notnull() & (sval.isnull() | ((sval - total).abs() > ibis.literal(
        TOLERANCE, DECIMAL)))
    scur = j.server_currency.strip().upper()
    currency_mismatch = has_s & j.currency.notnull() & (scur.isnull() | (scur != j.currency))
    day = j.created_at.cast("timestamp").date().cast("string")
    return j.select(
        order_id=j._key, created_at=j.created_at, day=day, total=j.total, currency=j.currency, status=j.status,
        stage=stage, browser_rows=br, server_rows=sr,
        sends=j.sends.fill_null(0) if answers else j.sends,
        sends_accepted=j.sends_accepted.fill_null(0) if answers else j.sends_accepted,
        paired=paired_o, strong_key=strong_o, server_value=j.server_value, server_currency=j.server_currency,
        value_mismatch=value_mismatch, currency_mismatch=currency_mismatch,
        browser_source_file=j.browser_source_file, browser_line=j.browser_line,
        browser_event_id=j.browser_event_id, server_source_file=j.server_source_file,
        server_line=j.server_line, server_event_id=j.server_event_id,
    )


@measures.register("order_table")
def _order_table(ds: Dataset) -> ir.Table:
    return order_table_expr(ds)


def order_table(ds: Dataset) -> ir.Table:
    """The shared per-order table (materialized once per scope): one row per order and its stage."""
    return ds.measure("order_table")


def _money(value: Any) -> float:
    return float(Decimal(str(value or 0)).quantize(Decimal("0.01")))


def _stage_rows(ds: Dataset, name: str, by_day: bool) -> list[dict[str, Any]]:
    ot = order_table(ds)

    def build() -> ir.Table:
        t = ot.mutate(_amount=ot.total.try_cast(DECIMAL))
        groups = ["day", "stage", "currency"] if by_day else ["stage", "currency"]
        return t.group_by(groups).aggregate(orders=t.count(), revenue=t._amount.sum())

    return ds.fetch(name, build)


def _buckets(rows: list[dict[str, Any]], answers: bool) -> list[dict[str, Any]]:
    out = []
    for stage in STAGES:
        if stage in STAGE_NEEDS and not answers:
            out.append({"stage": stage, "status": "not_evaluated", "orders": None, "revenue": None,
                        "reason": "Needs Meta's answers (a send log or response columns on the server log)."})
            continue
        mine = [r for r in rows if r["stage"] == stage]
        revenue: dict[str, float] = {}
        for r in mine:
            cur = r["currency"] or "(none)"
            revenue[cur] = round(revenue.get(cur, 0.0) + _money(r["revenue"]), 2)
        out.append({"stage": stage, "status": "evaluated", "orders": sum(int(r["orders"]) for r in mine),
                    "revenue": dict(sorted(revenue.items()))})
    return out


def analyze(ds: Dataset, config: Config, prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``reconciliation`` section (definitions in the module docstring)."""
    ds = ds.using(config)
    opts = options(config)
    if not ds.has_input("orders"):
        return {"status": "not_evaluated", "reason": "No orders export was imported (--orders FILE, or the "
                "Import page's orders uploader).", "stages": list(STAGES)}
    answers = ds.has_input("sends")
    ot = order_table(ds)

    def counts() -> ir.Table:
        b, s = ot.browser_rows > 0, ot.server_rows > 0
        return ot.aggregate(
            orders=ot.count(), browser_purchase=b.sum(), server_purchase=s.sum(), both=(b & s).sum(),
            neither=(~b & ~s).sum(), server_accepted=(ot.sends_accepted.fill_null(0) > 0).sum(),
            server_rejected=((ot.sends.fill_null(0) > 0) & (ot.sends_accepted.fill_null(0) == 0)).sum(),
            value_mismatch=ot.value_mismatch.sum(), currency_mismatch=ot.currency_mismatch.sum())

    c = {k: int(v or 0) for k, v in ds.fetch("reconciliation.counts", counts)[0].items()}
    orphans: dict[str, int] = {}
    for role in ("browser", "server"):
        def build(role: str = role) -> ir.Table:
            p = purchase_rows(ds, role)
            o = ds.orders().select(_okey=order_key_expr(ds.orders().order_id))
            o = o.filter(o._okey.notnull()).distinct()
            lost = p.anti_join(o, p._key == o._okey)
            return lost.aggregate(n=lost.count())
        orphans[role] = int(ds.fetch(f"reconciliation.orphans.{role}.{key_column(ds, role)}", build)[0]["n"] or 0)
    stage_rows = _stage_rows(ds, "reconciliation.stages", False)
    day_rows = _stage_rows(ds, "reconciliation.stages_by_day", True)
    by_day = []
    for day in sorted({r["day"] for r in day_rows if r["day"] is not None}):
        by_day.append({"day": day, "waterfall": _buckets([r for r in day_rows if r["day"] == day], answers)})
    n_examples = int(opts["examples"])

    def examples() -> ir.Table:
        t = ot.filter(ot.stage.isin(list(LOST_STAGES)))
        t = t.mutate(_rn=ibis.row_number().over(group_by="stage", order_by=["created_at", "order_id"]))
        return t.filter(t._rn < n_examples).select(
            "stage", "order_id", "created_at", "total", "currency", "browser_rows", "server_rows", "sends",
            "sends_accepted").order_by(["stage", "created_at", "order_id"])

    ex_rows = ds.fetch(f"reconciliation.examples.{n_examples}", examples) if n_examples else []
    out: dict[str, Any] = {
        "status": "evaluated", "reason": None,
        "order_key": {role: key_column(ds, role) for role in ("browser", "server")},
        "purchase_event": opts["purchase_event"], "strong_keys": list(opts["strong_keys"]),
        "orders": c["orders"], "browser_purchase": c["browser_purchase"], "server_purchase": c["server_purchase"],
        "both": c["both"], "neither": c["neither"],
        "server_accepted": c["server_accepted"] if answers else None,
        "server_rejected": c["server_rejected"] if answers else None,
        "value_mismatch": c["value_mismatch"], "currency_mismatch": c["currency_mismatch"],
        "purchases_without_order": orphans,
        "waterfall": _buckets(stage_rows, answers),
        "waterfall_by_day": by_day,
        "examples": {stage: [dict(r) for r in ex_rows if r["stage"] == stage] for stage in LOST_STAGES},
    }
    if c["orders"] == 0:
        out["status"], out["reason"] = "not_evaluated", "The orders export holds no order."
    return out


def failing_rows(ds: Dataset, config: Config) -> ir.Table:
    """Server Purchase rows whose value or currency differs from their order's (``value_mismatch``,
    ``currency_mismatch``: warnings), and Purchase rows naming no order of the export
    (``purchase_without_order``: warning)."""
    ds = ds.using(config)
    if not ds.has_input("orders"):
        t = ds.events("server")
        return t.filter(ibis.literal(False)).select(
            section=ibis.literal(SECTION), finding=ibis.literal(""), severity=ibis.literal("warning"),
            role=ibis.literal("server"), source_file=t.source_file, line=t.line, event_name=t.event_name,
            event_id=t.event_id, detail=ibis.literal(""))
    ot = order_table(ds)
    parts = []
    for finding in ("value_mismatch", "currency_mismatch"):
        m = ot.filter(ot[finding])
        parts.append(m.select(
            section=ibis.literal(SECTION), finding=ibis.literal(finding), severity=ibis.literal("warning"),
            role=ibis.literal("server"), source_file=m.server_source_file, line=m.server_line,
            event_name=ibis.literal(options(config)["purchase_event"]), event_id=m.server_event_id,
            detail=ibis.literal("order ").concat(m.order_id)))
    for role in ("browser", "server"):
        p = purchase_rows(ds, role)
        o = ds.orders().select(_okey=order_key_expr(ds.orders().order_id))
        o = o.filter(o._okey.notnull()).distinct()
        lost = p.anti_join(o, p._key == o._okey)
        parts.append(lost.select(
            section=ibis.literal(SECTION), finding=ibis.literal("purchase_without_order"),
            severity=ibis.literal("warning"), role=ibis.literal(role), source_file=lost.source_file,
            line=lost.line, event_name=lost.event_name, event_id=lost.event_id,
            detail=ibis.literal("order ").concat(lost._key.fill_null("(none)"))))
    return ibis.union(*parts, distinct=False).select(*FAILING_ROW_COLUMNS)


STAGE_TEXT: dict[str, tuple[str, str]] = {
    "not_sent": ("Orders neither log sent",
                 "Send every order from the server (e.g. from the order webhook): the Pixel misses ad-blocked "
                 "and consent-denied visitors."),
    "refused": ("Orders Meta refused",
                "Fix what the delivery section's error codes name, then resend within 7 days."),
    "counted_twice": ("Orders counted twice",
                      "Use the order number as event_id on the Pixel and the server so that Meta deduplicates."),
    "unlikely_match": ("Orders unlikely to match",
                       "Send hashed em/ph and external_id (or fbc) with every server Purchase."),
    "counted_once": ("Orders counted once", ""),
}


def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One sentence per waterfall bucket, then the value checks."""
    if result.get("status") != "evaluated":
        return []
    n = result["orders"]
    out = []
    for b in result["waterfall"]:
        label, fix = STAGE_TEXT[b["stage"]]
        if b["status"] != "evaluated":
            out.append({"label": label, "value": None, "unit": "order", "text": f"Not evaluated: {b['reason']}",
                        "fix": ""})
            continue
        rev = ", ".join(f"{v:,.2f} {c}" for c, v in (b["revenue"] or {}).items()) or "no revenue"
        out.append({"label": label, "value": b["orders"], "unit": "order",
                    "text": f"{b['orders']:,} of {n:,} orders ({rev}).",
                    "fix": fix if b["orders"] else ""})
    out.append({"label": "Purchase values that differ from the order total", "value": result["value_mismatch"],
                "unit": "order",
                "text": f"{result['value_mismatch']:,} orders' earliest server Purchase carries a value more than "
                        "one cent away from the order total (or none).",
                "fix": "Send the order total (after discounts, with shipping and tax as the shop reports it) as "
                       "value, with a dot as decimal separator." if result["value_mismatch"] else ""})
    pw = result["purchases_without_order"]
    out.append({"label": "Purchase rows naming no order of the export", "value": pw["browser"] + pw["server"],
                "unit": "row",
                "text": f"{pw['browser']:,} browser and {pw['server']:,} server Purchase rows carry an order id "
                        "that is not in the export (or none).",
                "fix": "Export the same period as the logs; send the order number in order_id (or event_id)."
                       if pw["browser"] + pw["server"] else ""})
    return out
