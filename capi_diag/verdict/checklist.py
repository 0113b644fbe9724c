"""The pre-launch checklist: one ordered list that says "ready" or what blocks launch.

:func:`build` turns the report's sections into items, in go-live order (the logs cover the funnel;
payloads are well formed; events deduplicate; times are right; consent is respected; customer
information matches; revenue is right), each
``{id, title, status, observed, threshold, fix, explanation, page, unit, details}``:

* ``status`` is ``pass``, ``warn``, ``fail`` or ``not_evaluated``. Every item is judged; none stops
  the list. An item whose inputs are missing (the section did not run, the log lacks the column, a
  log is empty) is ``not_evaluated``, never ``pass``.
* ``observed`` is the measured number (a count, a share 0..1, seconds or a 0-10 score, per
  ``unit``); ``threshold`` says in words when the item warns or fails; ``explanation`` is one
  sentence about what was found; ``fix`` the concrete remedy; ``page`` the dashboard page that
  explains it.
* ids are stable: other tools key on them (``report --fail-on`` reads the statuses).

Thresholds have documented defaults (:data:`ITEMS`, each with its source) and are overridden in the
``--config`` TOML, per item::

    [checklist.pairing_rate]
    warn_below = 0.8

    [checklist.coverage_em]
    warn_below = 0.6
    fail_below = 0.2

``*_above`` keys trigger when the observed value is strictly greater, ``*_below`` keys when it is
strictly smaller: a value exactly at the threshold passes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from capi_diag.core import fmt, labels
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.core.patterns import CONTEXT_KEYS, HASHED_KEYS

PASS, WARN, FAIL, NOT_EVALUATED, ERROR = "pass", "warn", "fail", "not_evaluated", "error"
STATUSES = (PASS, WARN, FAIL, NOT_EVALUATED, ERROR)
PAGES = ("checklist", "import", "dedup", "timing", "match_keys", "consent_contract", "orders_delivery")
UNITS = ("count", "share", "seconds", "score")

HASH_DEFECTS = ("uppercase_hash", "hashed_empty", "hashed_placeholder", "surrounding_whitespace",
                "placeholder",
                "not_normalized")

Sections = Mapping[str, Any]
Thresholds = Mapping[str, float]


@dataclass(frozen=True)
class Verdict:
    """What one judgement found."""

    status: str
    observed: Any
    explanation: str
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Item:
    """One checklist item: its stable id, how it is judged, its default thresholds and their source."""

    id: str
    page: str
    unit: str
    fix: str
    judge: Callable[[Context, Thresholds], Verdict]
    defaults: Mapping[str, float] = field(default_factory=dict)
    source: str = ""

    @property
    def title(self) -> str:
        """The item's title in the analyst's words (:data:`capi_diag.core.labels.CHECKLIST_ITEMS`), with
        ``{stale}``/``{future}``/``{window}`` for the limits in force (:func:`limits`)."""
        return labels.CHECKLIST_ITEMS[self.id]
    describe: Callable[[Thresholds], str] | None = None


@dataclass(frozen=True)
class Context:
    """The sections an item reads, the row counts of both logs (``None`` when unknown), and the
    configured limits in words (:func:`limits`) for texts that quote them."""

    sections: Sections
    browser_rows: int | None
    server_rows: int | None
    words: Mapping[str, str] = field(default_factory=dict)

    def section(self, name: str) -> Mapping[str, Any] | None:
        value = self.sections.get(name)
        if isinstance(value, Mapping) and value.get("status") == ERROR:
            raise SectionFailed(name, str(value.get("reason") or "unknown error"))
        if not isinstance(value, Mapping) or value.get("status") == NOT_EVALUATED:
            return None
        return value


class SectionFailed(Exception):
    """An item read a section whose analysis failed (status ``error``): the item is ``error`` too."""

    def __init__(self, section: str, reason: str) -> None:
        super().__init__(f"{section}: {reason}")
        self.section, self.reason = section, reason


def _rows(sections: Sections, role: str) -> int | None:
    for name in ("journey", "dedup", "contract", "consent", "match_keys", "timing"):
        sec = sections.get(name)
        if isinstance(sec, Mapping) and isinstance(sec.get(f"{role}_rows"), int):
            return int(sec[f"{role}_rows"])
    return None


# -- formatting ----------------------------------------------------------------------------------

def _fmt(value: Any, unit: str) -> str:
    return fmt.value(value, unit)


def limits(config: Config | None, sections: Sections | None = None) -> dict[str, str]:
    """The configured limits that item titles and texts quote, in words (``stale``: ``7 days``,
    ``future``: ``60 s``, ``window``: ``48 h``): a text never states a default the config changed."""
    from capi_diag.diagnostics import dedup, timing

    t = timing.options(config)
    window = None
    sec = (sections or {}).get("dedup")
    if isinstance(sec, Mapping) and isinstance(sec.get("window_s"), (int, float)):
        window = sec["window_s"]
    if window is None:
        window = dedup.options(config)["window_s"]
    return {"stale": fmt.duration(t["stale_s"]), "future": fmt.duration(t["future_s"]),
            "window": fmt.duration(window)}


def _describe_generic(unit: str) -> Callable[[Thresholds], str]:
    def describe(th: Thresholds) -> str:
        parts = []
        for key, word, op in (("warn_above", "warn", ">"), ("fail_above", "fail", ">"),
                              ("warn_below", "warn", "<"), ("fail_below", "fail", "<")):
            if key not in th:
                continue
            v = th[key]
            if op == "<" and v <= 0:
                continue  # a share or score below 0 cannot happen: the bound is off
            parts.append(f"{word} if {op} {_fmt(v, unit)}")
        return ", ".join(parts) or "informational"
    return describe


def _grade(value: float, th: Thresholds) -> str:
    if "fail_above" in th and value > th["fail_above"]:
        return FAIL
    if "fail_below" in th and value < th["fail_below"]:
        return FAIL
    if "warn_above" in th and value > th["warn_above"]:
        return WARN
    if "warn_below" in th and value < th["warn_below"]:
        return WARN
    return PASS


def _ne(why: str) -> Verdict:
    return Verdict(NOT_EVALUATED, None, f"Not evaluated: {why}")


def _needs(ctx: Context, *, browser: bool = False, server: bool = True) -> Verdict | None:
    """``not_evaluated`` when a log the item needs is empty or unknown."""
    for role, needed in (("server", server), ("browser", browser)):
        n = ctx.server_rows if role == "server" else ctx.browser_rows
        if needed and not n:
            return _ne(f"the {role} log has no rows." if n == 0
                       else f"no analysis reported the {role} log's rows.")
    return None


def _num(sec: Mapping[str, Any] | None, key: str) -> float | int | None:
    if sec is None:
        return None
    v = sec.get(key)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


# -- judgements ------------------------------------------------------------------------------------

def _count_item(section: str, key: str, what: str, missing_why: str | None = None,
                browser: bool = False) -> Callable[[Context, Thresholds], Verdict]:
    """An item judged on one count of one section (``<n> <what>``)."""
    def judge(ctx: Context, th: Thresholds) -> Verdict:
        gap = _needs(ctx, browser=browser)
        if gap:
            return gap
        sec = ctx.section(section)
        n = _num(sec, key)
        if n is None:
            return _ne(missing_why or f"the {labels.SECTIONS.get(section, section)} analysis gave no "
                       f"figure for \"{labels.label(key)}\".")
        status = _grade(n, th)
        return Verdict(status, int(n), f"{int(n):,} {what.format(**ctx.words)}.")
    return judge


def _journey(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx, browser=True)
    if gap:
        return gap
    sec = ctx.section("journey")
    if sec is None:
        return _ne("the journey analysis did not run.")
    missing = sec["missing"]
    n = len(missing["browser"]) + len(missing["server"])
    parts = [f"{role}: {', '.join(missing[role])}" for role in ("browser", "server") if missing[role]]
    text = ("Every funnel step is in both logs." if not n else
            f"{n} step(s) missing ({'; '.join(parts)}).")
    return Verdict(_grade(n, th), n, text, {"missing": missing})


def _event_name_casing(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    contract = ctx.section("contract")
    n = _num(contract, "nonstandard_event_name")
    if n is None:
        return _ne("the payload contract analysis did not run.")
    keys = _num(ctx.section("dedup"), "name_case_mismatch")
    status = _grade(n, th)
    if keys is not None and _grade(keys, th) == FAIL:
        status = FAIL
    variants = list(contract.get("nonstandard_names", {}).items())[:5]
    names = ", ".join(f"{k} (use {v['standard']})" for k, v in variants)
    text = f"{int(n):,} server rows use a non-standard spelling of a standard event"
    text += f": {names}" if names else ""
    if keys:
        text += f"; {int(keys):,} server dedup keys differ from their browser twin only in case"
    details = {"nonstandard_event_name": int(n),
               "name_case_mismatch_keys": None if keys is None else int(keys)}
    return Verdict(status, int(n), text + ".", details)


def _event_ids(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx, browser=True)
    if gap:
        return gap
    dedup = ctx.section("dedup")
    b, s = _num(dedup, "browser_missing_event_id"), _num(dedup, "server_missing_event_id")
    if b is None or s is None:
        return _ne("the dedup analysis did not run.")
    total = (ctx.browser_rows or 0) + (ctx.server_rows or 0)
    share = (b + s) / total
    return Verdict(_grade(share, th), share,
                   f"{int(b):,} browser and {int(s):,} server rows have no event_id "
                   f"({fmt.share(share)} of all rows).",
                   {"browser_missing_event_id": int(b), "server_missing_event_id": int(s)})


def _duplicates(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    n = _num(ctx.section("dedup"), "duplicate_server_rows")
    if n is None:
        return _ne("the dedup analysis did not run.")
    share = n / ctx.server_rows  # type: ignore[operator]
    return Verdict(_grade(share, th), share,
                   f"{int(n):,} server rows repeat a dedup key already sent by the server "
                   f"({fmt.share(share)} of server rows).",
                   {"duplicate_server_rows": int(n)})


def _pairing(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx, browser=True)
    if gap:
        return gap
    dedup = ctx.section("dedup")
    rate = _num(dedup, "pairing_rate")
    if rate is None:
        return _ne("no event keys to pair (no rows carry an event_id)." if dedup else
                   "the dedup analysis did not run.")
    details = {k: dedup.get(k) for k in ("paired", "outside_window", "browser_only", "server_only")}
    window = ctx.words.get("window", "48 h")
    return Verdict(_grade(rate, th), rate,
                   f"{fmt.share(rate)} of dedup keys pair between the logs ({fmt.count(details['paired'])} "
                   f"paired, {fmt.count(details['browser_only'])} browser only, "
                   f"{fmt.count(details['server_only'])} server only, {fmt.count(details['outside_window'])} "
                   f"more than {window} apart).", details)


def _timing_value(key: str, what: str, unit: str, no_sent_at: bool = False,
                  browser: bool = False) -> Callable[[Context, Thresholds], Verdict]:
    def judge(ctx: Context, th: Thresholds) -> Verdict:
        gap = _needs(ctx, browser=browser)
        if gap:
            return gap
        timing = ctx.section("timing")
        if timing is None:
            return _ne("the timing analysis did not run.")
        v = _num(timing, key)
        if v is None:
            return _ne("the server log has no sent_at column." if no_sent_at
                       else f"no {what} could be measured.")
        observed = int(v) if unit == "count" else v
        text = what.format(**{"stale": "7 days", "future": "60 s", **ctx.words})
        return Verdict(_grade(v, th), observed, f"{text[:1].upper()}{text[1:]}: {_fmt(observed, unit)}.")
    return judge


def _time_unit(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    timing = ctx.section("timing")
    ms, us = _num(timing, "event_time_in_ms"), _num(timing, "event_time_in_us")
    if ms is None:
        return _ne("the timing analysis did not run.")
    n = int(ms) + int(us or 0)
    return Verdict(_grade(n, th), n, f"{n:,} server rows had event_time in milliseconds or microseconds "
                   f"({int(ms):,} ms, {int(us or 0):,} µs); the import converted them, Meta would not.",
                   {"event_time_in_ms": int(ms), "event_time_in_us": int(us or 0)})


def _consent(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    sec = ctx.sections.get("consent")
    if not isinstance(sec, Mapping):
        return _ne("the consent analysis did not run.")
    fwd, unk = _num(sec, "forwarded_without_consent"), _num(sec, "consent_unknown")
    if fwd is None or unk is None:
        return _ne(sec.get("reason") or "the server log has no consent column.")
    status = PASS
    if unk > th["unknown_warn_above"]:
        status = WARN
    if fwd > th["forwarded_fail_above"]:
        status = FAIL
    return Verdict(status, int(fwd),
                   f"{int(fwd):,} server rows were forwarded although a required consent purpose was denied; "
                   f"{int(unk):,} more had no consent state for a required purpose.",
                   {"forwarded_without_consent": int(fwd), "consent_unknown": int(unk)})


def _match_keys(ctx: Context) -> Mapping[str, Any] | None:
    return ctx.section("match_keys")


def _defect_sum(mk: Mapping[str, Any], which: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Non-zero row counts ``{"field.defect": n}`` of the ``match_keys`` section."""
    out: dict[str, int] = {}
    for f, defects in which.items():
        entry = mk.get(f)
        if not isinstance(entry, Mapping):
            continue
        for d in defects:
            n = (entry.get("defects") or {}).get(d)
            if isinstance(n, int) and n:
                out[f"{f}.{d}"] = n
    return out


def _defect_item(fail: Mapping[str, tuple[str, ...]], warn: Mapping[str, tuple[str, ...]],
                 what: str) -> Callable[[Context, Thresholds], Verdict]:
    """An item judged on ``match_keys`` defect counts: the ``fail`` defects against ``fail_above``,
    the ``warn`` defects against ``warn_above``; observed = their total (rows per field and defect)."""
    def judge(ctx: Context, th: Thresholds) -> Verdict:
        gap = _needs(ctx)
        if gap:
            return gap
        mk = _match_keys(ctx)
        if mk is None:
            return _ne("the match keys analysis did not run.")
        bad, weak = _defect_sum(mk, fail), _defect_sum(mk, warn)
        n_fail, n_warn = sum(bad.values()), sum(weak.values())
        status = PASS
        if weak and n_warn > th.get("warn_above", 0):
            status = WARN
        if bad and n_fail > th.get("fail_above", 0):
            status = FAIL
        found = {**bad, **weak}
        listed = ", ".join(f"{labels.label(k)}: {v:,}"
                           for k, v in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:6])
        text = f"{n_fail + n_warn:,} field values {what}" + (f" ({listed})" if listed else "") + "."
        return Verdict(status, n_fail + n_warn, text, {"fail": bad, "warn": weak})
    return judge


def _coverage(fld: str) -> Callable[[Context, Thresholds], Verdict]:
    def judge(ctx: Context, th: Thresholds) -> Verdict:
        gap = _needs(ctx)
        if gap:
            return gap
        mk = _match_keys(ctx)
        entry = mk.get(fld) if mk is not None else None
        if not isinstance(entry, Mapping):
            return _ne("the match keys analysis did not run.")
        cov = _num(entry, "valid_coverage")
        if cov is None:
            return _ne(f"no valid coverage was measured for {labels.field_with_code(fld)}.")
        status = _grade(cov, {k: v for k, v in th.items() if k in ("warn_below", "fail_below")})
        text = f"{fmt.share(cov)} of server rows carry a valid {labels.field_with_code(fld)}"
        present = _num(entry, "coverage")
        if present is not None and present > cov:
            text += f" ({fmt.share(present)} carry one at all)"
        details = {"coverage": present, "valid_coverage": cov}
        if "fbclid_warn_above" in th:
            lost = _num(entry.get("defects") or {}, "missing_with_fbclid") or 0
            details["missing_with_fbclid"] = int(lost)
            if lost > th["fbclid_warn_above"] and status == PASS:
                status = WARN
            if lost:
                text += f"; {int(lost):,} rows have an fbclid in event_source_url but no fbc"
        return Verdict(status, cov, text + ".", details)
    return judge


def _emq(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    emq = ctx.section("emq")
    score = _num(emq, "estimate")
    if score is None:
        return _ne("the EMQ analysis did not run." if emq is None else "no website events to score.")
    top = [p.get("field") for p in (emq.get("priorities") or [])[:3] if isinstance(p, Mapping)]
    text = f"Estimated match quality {fmt.score(score)} (an estimate: Meta publishes no formula)"
    text += f"; biggest gains from {', '.join(labels.field(str(t)) for t in top)}" if top else ""
    return Verdict(_grade(score, th), score, text + ".", {"band": emq.get("band"), "priorities": top})


_PURCHASE_KEYS = (
    "purchase_missing_value", "purchase_missing_currency", "value_not_numeric", "currency_invalid",
)


def _purchase(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    contract = ctx.section("contract")
    if contract is None:
        return _ne("the payload contract analysis did not run.")
    counts = {k: int(contract.get(k) or 0) for k in _PURCHASE_KEYS}
    n = sum(counts.values())
    listed = ", ".join(f"{labels.label(k)}: {v:,}" for k, v in counts.items() if v)
    text = (f"{n:,} findings on value and currency ({listed})." if n else
            f"Every value is numeric and every currency ISO 4217 ({contract.get('purchase_rows', 0):,} "
            "Purchase rows).")
    return Verdict(_grade(n, th), n, text, counts)


def _value_match(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx, browser=True)
    if gap:
        return gap
    contract = ctx.section("contract")
    n, compared = _num(contract, "value_mismatch"), _num(contract, "value_pairs_compared")
    if contract is None:
        return _ne("the payload contract analysis did not run.")
    if n is None or not compared:
        return _ne("no paired Purchase with a numeric value on both sides.")
    share = n / compared
    return Verdict(_grade(share, th), share,
                   f"{int(n):,} of {int(compared):,} paired Purchases differ in value once rounded to cents.",
                   {"value_mismatch": int(n), "value_pairs_compared": int(compared)})


def _orders_reach(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    rec = ctx.section("reconciliation")
    if rec is None:
        return _ne("no orders export was imported (--orders).")
    n = int(rec.get("orders") or 0)
    lost = {b["stage"]: int(b["orders"] or 0) for b in rec.get("waterfall", [])
            if b["stage"] in ("not_sent", "refused") and b.get("status") == "evaluated"}
    share = (n - sum(lost.values())) / n if n else None
    if share is None:
        return _ne("the orders export holds no order.")
    text = (f"{n - sum(lost.values()):,} of {n:,} orders reached Meta at least once; "
            + ", ".join(f"{labels.label(k)}: {v:,}" for k, v in lost.items()) + ".")
    return Verdict(_grade(share, th), share, text, lost)


def _sends_accepted(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    d = ctx.section("delivery")
    if d is None:
        return _ne("no answers from Meta were imported (--send-log, or response columns on the server log).")
    n = int(d.get("rejected") or 0)
    codes = {f"{c['code']}" + (f"/{c['subcode']}" if c.get("subcode") else ""): c["rows"]
             for c in d.get("rejected_by_code", [])}
    listed = ", ".join(f"{k}: {v:,}" for k, v in codes.items())
    text = (f"{n:,} of {int(d.get('rows_sent') or 0):,} server events were refused ({listed})." if n else
            f"Meta accepted every one of {int(d.get('rows_sent') or 0):,} server events sent.")
    return Verdict(_grade(n, th), n, text, codes or None)


def _order_values(ctx: Context, th: Thresholds) -> Verdict:
    gap = _needs(ctx)
    if gap:
        return gap
    rec = ctx.section("reconciliation")
    if rec is None:
        return _ne("no orders export was imported (--orders).")
    if not rec.get("server_purchase"):
        return _ne("no server Purchase names an order of the export.")
    n = int(rec.get("value_mismatch") or 0)
    return Verdict(_grade(n, th), n, f"{n:,} of {int(rec['server_purchase']):,} orders sent by the server carry a "
                   "value more than one cent away from the order total.",
                   {"value_mismatch": n, "currency_mismatch": int(rec.get("currency_mismatch") or 0)})


# -- the items, in go-live order ------------------------------------------------------------------

ITEMS: tuple[Item, ...] = (
    Item("journey_complete", "dedup", "count",
         "Send every step of the journey from both the Pixel and the server under Meta's exact name.",
         _journey, {"fail_above": 0},
         "capi-diag: a step missing from one side cannot deduplicate (Meta, deduplication docs)."),
    Item("event_name_casing", "consent_contract", "count",
         "Use Meta's exact standard names (Purchase, AddToCart) on both sides.",
         _event_name_casing, {"fail_above": 0},
         "Meta dedup requires identical event names; a respelled standard event is a custom event."),
    Item("action_source", "consent_contract", "count",
         "Set action_source (website, app, email...) on every server event.",
         _count_item("contract", "action_source_invalid", "server rows lack a valid action_source"),
         {"fail_above": 0}, "Meta server-event parameters: action_source is required."),
    Item("event_source_url", "consent_contract", "count",
         "Forward the page URL to the server and send it as event_source_url.",
         _count_item("contract", "event_source_url_missing", "website server rows lack event_source_url"),
         {"fail_above": 0}, "Meta server-event parameters: required for website events."),
    Item("test_event_code", "consent_contract", "count",
         "Remove test_event_code from the production server configuration.",
         _count_item("contract", "test_event_code_present", "server rows carry a test_event_code"),
         {"fail_above": 0}, "Meta: test events are not sandboxed; remove the code in production."),
    Item("event_time_unit", "timing", "count",
         "Send event_time as Unix seconds (divide milliseconds by 1000).",
         _time_unit,
         {"fail_above": 0}, "Meta server-event parameters: event_time is Unix seconds."),
    Item("freshness_stale", "timing", "count",
         "Send events as they happen; never replay events older than {stale}.",
         _timing_value("stale_over_7d", "server rows sent more than {stale} after event_time", "count",
                       no_sent_at=True),
         {"fail_above": 0}, "Meta: one event older than 7 days rejects the whole request (subcode 2804003)."),
    Item("freshness_future", "timing", "count",
         "Take event_time from the action's own clock in UTC; check the server clock and time zone.",
         _timing_value("future", "server rows with event_time more than {future} after sent_at", "count",
                       no_sent_at=True),
         {"warn_above": 0}, "UNCONFIRMED by Meta; RudderStack rejects events more than 1 minute ahead."),
    Item("delivery_delay", "timing", "seconds",
         "Send each event when it happens instead of in delayed batches.",
         _timing_value("delivery_delay_p95_s", "95th percentile delivery delay (sent_at - event_time)",
                       "seconds", no_sent_at=True),
         {"warn_above": 3600}, "Meta: send events as soon as possible, ideally within 1 hour."),
    Item("event_ids_present", "dedup", "share",
         "Generate one event_id per action and send it with both the Pixel and the server event.",
         _event_ids, {"warn_above": 0.0, "fail_above": 0.1},
         "Meta best practices ask for event_id on all events; fail above 10 % is capi-diag's choice."),
    Item("event_id_reuse", "dedup", "count",
         "Make every event_id unique per action (never a constant or a recycled order number).",
         _count_item("dedup", "reused_event_id",
                     "event ids are reused for several names or for rows more than {window} apart"),
         {"fail_above": 0}, "Meta discards later events with the same event_id and name within 48 h."),
    Item("duplicate_server_sends", "dedup", "share",
         "Fire the server tag once per action (look for two containers or a retry without idempotency).",
         _duplicates, {"warn_above": 0.0, "fail_above": 0.05},
         "capi-diag: duplicates inflate counts where Meta does not merge them; fail above 5 % is "
         "capi-diag's choice."),
    Item("pairing_rate", "dedup", "share",
         "Pass the Pixel's eventID to the server and send the same event_name on both sides.",
         _pairing, {"warn_below": 0.75, "fail_below": 0.5},
         "Meta's event coverage goal is 75 % (Dataset Quality API); fail below 50 % is capi-diag's choice."),
    Item("timing_skew", "timing", "seconds",
         "Use the same event_time for both copies (the moment of the action), in UTC seconds.",
         _timing_value("skew_p95_abs_s", "95th percentile absolute skew", "seconds", browser=True),
         {"warn_above": 300, "fail_above": 3600},
         "Meta prefers the browser copy within 5 minutes (300 s); fail above 1 h (a time-zone bug) is ours."),
    Item("consent", "consent_contract", "count",
         "Gate the server-side send on the region's required consent purposes; log the consent state.",
         _consent, {"forwarded_fail_above": 0, "unknown_warn_above": 0},
         "The [consent] policy (default ad_storage + ad_user_data, Google Consent Mode v2)."),
    Item("unhashed_pii", "match_keys", "count",
         "SHA-256 every normalized em, ph, fn, ln, ge, db, ct, st, zp and country before sending.",
         _defect_item({f: ("unhashed",) for f in HASHED_KEYS}, {"external_id": ("unhashed",)},
                      "were sent unhashed"),
         {"fail_above": 0, "warn_above": 0},
         "Meta rejects unhashed customer information (subcode 2804016); raw external_id is only a warning."),
    Item("no_personal_data_outside_user_data", "match_keys", "count",
         "Send emails and phone numbers only as hashed user_data.em / ph; remove them from custom data "
         "(e.g. a Pixel's cd[user_data]), from page URLs and from other parameters.",
         _count_item("privacy", "personal_data_rows",
                     "rows carry a raw email or phone number in a URL, custom data or an unmapped column"),
         {"fail_above": 0},
         "Meta's Business Tools Terms forbid personal data outside the hashed customer-information keys; "
         "Meta flags it as potentially violating and may restrict the dataset."),
    Item("hashed_context_keys", "match_keys", "count",
         "Send fbp, fbc, client_ip_address and client_user_agent raw, never hashed.",
         _defect_item({f: ("hashed",) for f in CONTEXT_KEYS}, {}, "of context keys are hashed"),
         {"fail_above": 0}, "Meta: do not hash IP, user agent, click ID and browser ID."),
    Item("context_key_format", "match_keys", "count",
         "Forward the _fbp/_fbc cookies unchanged and the visitor's public IP and browser user agent.",
         _defect_item({"fbc": ("malformed",)},
                      {"fbc": ("modified_fbclid", "placeholder"), "fbp": ("malformed", "placeholder"),
                       "client_ip_address": ("private", "malformed", "placeholder"),
                       "client_user_agent": ("non_browser", "placeholder")},
                      "of context keys are malformed, private, placeholders or from a non-browser client"),
         {"fail_above": 0, "warn_above": 0},
         "Meta rejects a malformed fbc (subcode 2804001); other format defects lower matching."),
    Item("hash_quality", "match_keys", "count",
         "Normalize per Meta's rules (trim, lowercase, formats) before hashing; send lowercase hex.",
         _defect_item({}, {**{f: HASH_DEFECTS for f in HASHED_KEYS},
                           "external_id": ("hashed_empty", "hashed_placeholder", "placeholder")},
                      "are junk, uppercase or unnormalized hashes, or placeholders"),
         {"warn_above": 0}, "Meta: SHA-256 lowercase hex of the normalized value; others never match."),
    Item("insufficient_user_data", "consent_contract", "count",
         "Send at least one strong key: em, ph, external_id, fbp, or IP with user agent.",
         _count_item("contract", "insufficient_user_data", "server rows have only too-broad user_data"),
         {"fail_above": 0}, "Meta rejects too-broad customer information (subcode 2804050)."),
    Item("coverage_em", "match_keys", "share",
         "Send the hashed email whenever the visitor has given it (login, checkout, newsletter).",
         _coverage("em"), {"warn_below": 0.5, "fail_below": 0.0},
         "Meta names email the highest-quality key; 50 % is capi-diag's choice."),
    Item("coverage_ph", "match_keys", "share",
         "Send the hashed phone number with its country code when you have it.",
         _coverage("ph"), {"warn_below": 0.3, "fail_below": 0.0},
         "Meta names phone a high-quality key; 30 % is capi-diag's choice."),
    Item("coverage_external_id", "match_keys", "share",
         "Send your own user or visitor id as external_id on every event, identical on both sides.",
         _coverage("external_id"), {"warn_below": 0.8, "fail_below": 0.0},
         "Meta best practices ask for external_id on all events; 80 % is capi-diag's choice."),
    Item("coverage_fbp", "match_keys", "share",
         "Read the _fbp cookie on the server (or pass it from the page) and send it as fbp.",
         _coverage("fbp"), {"warn_below": 0.8, "fail_below": 0.0},
         "The Pixel sets _fbp for nearly every web visitor; 80 % is capi-diag's choice."),
    Item("coverage_fbc", "match_keys", "share",
         "Read the _fbc cookie, or build fbc from the fbclid parameter of the landing URL.",
         _coverage("fbc"), {"warn_below": 0.0, "fail_below": 0.0, "fbclid_warn_above": 0},
         "fbc exists only after an ad click, so its coverage is informational; an fbclid without fbc warns."),
    Item("coverage_client_ip_address", "match_keys", "share",
         "Send the visitor's public IP (the first public X-Forwarded-For entry), never the server's.",
         _coverage("client_ip_address"), {"warn_below": 0.95, "fail_below": 0.5},
         "Meta requires IP and user agent for website events; 95 % / 50 % are capi-diag's choice."),
    Item("coverage_client_user_agent", "match_keys", "share",
         "Send the visitor's browser user agent (the request's User-Agent), never your server's.",
         _coverage("client_user_agent"), {"warn_below": 0.95, "fail_below": 0.5},
         "Meta requires client_user_agent for website events; 95 % / 50 % are capi-diag's choice."),
    Item("emq_estimate", "match_keys", "score",
         "Work down the EMQ priorities: the first field listed gains the most.",
         _emq, {"warn_below": 6.0, "fail_below": 0.0},
         "Meta recommends an EMQ of 6.0 or higher (verifying-setup docs); the estimate is capi-diag's."),
    Item("purchase_value_currency", "consent_contract", "count",
         "Send value as a plain number and currency as an ISO 4217 code on every Purchase.",
         _purchase, {"fail_above": 0},
         "Meta requires value and currency for purchase events (custom_data docs)."),
    Item("purchase_value_match", "consent_contract", "share",
         "Take the order value from the same source, with the same tax and shipping rules, on both sides.",
         _value_match, {"warn_above": 0.0},
         "capi-diag: the copy Meta keeps decides the revenue reported, so both must agree."),
    Item("orders_reach_meta", "orders_delivery", "share",
         "Send every order from the server (the order webhook), and fix what Meta refuses.",
         _orders_reach, {"fail_below": 0.95},
         "capi-diag: the Pixel alone misses ad-blocked and consent-denied buyers; 95 % is the bar."),
    Item("server_sends_accepted", "orders_delivery", "count",
         "Fix what each error code names (Delivery section), then resend the refused events within 7 days.",
         _sends_accepted, {"fail_above": 0},
         "Meta refuses the whole request for one bad event (Conversions API error codes)."),
    Item("order_values_match", "orders_delivery", "count",
         "Send the order total as the shop records it (after discounts) as value, with a dot as decimal separator.",
         _order_values, {"warn_above": 0},
         "capi-diag: Meta's reported revenue is the sum of the values sent."),
)
"""Every checklist item, in go-live order."""


ITEMS_BY_ID: dict[str, Item] = {i.id: i for i in ITEMS}
DEFAULTS: dict[str, dict[str, float]] = {i.id: dict(i.defaults) for i in ITEMS}
"""Default thresholds per item id (documented with their sources in docs/checklist.md)."""

_DESCRIBE: dict[str, Callable[[Thresholds], str]] = {
    "consent": lambda th: (f"fail if > {th['forwarded_fail_above']:g} forwarded without consent, "
                           f"warn if > {th['unknown_warn_above']:g} with unknown consent"),
    "coverage_fbc": lambda th: "informational; warn if an fbclid arrives without fbc"
    + (f", warn if < {fmt.share(th['warn_below'])}" if th["warn_below"] > 0 else "")
    + (f", fail if < {fmt.share(th['fail_below'])}" if th["fail_below"] > 0 else ""),
    "unhashed_pii": lambda th: f"fail if > {th['fail_above']:g} hashed-field values unhashed, "
                               f"warn if > {th['warn_above']:g} raw external_id",
    "context_key_format": lambda th: f"fail if > {th['fail_above']:g} malformed fbc, "
                                     f"warn if > {th['warn_above']:g} other defects",
}


def thresholds(config: Config | None) -> dict[str, dict[str, float]]:
    """The thresholds in force: :data:`DEFAULTS` with the ``[checklist.<id>]`` tables of ``config``
    merged over them, key by key. Unknown ids or keys raise :class:`ConfigError` with a suggestion."""
    merged = {k: dict(v) for k, v in DEFAULTS.items()}
    if config is None:
        return merged
    src = config.source
    for item_id, table in config.section("checklist").items():
        if item_id not in DEFAULTS:
            close = difflib.get_close_matches(item_id, list(DEFAULTS), n=1)
            hint = (f" Did you mean '{close[0]}'?" if close
                    else " See docs/checklist.md for the item ids.")
            raise ConfigError(f"{src}: unknown checklist item '{item_id}' in [checklist].{hint}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{src}: [checklist.{item_id}] must be a table of thresholds, found {table!r}.")
        for key, value in table.items():
            if key not in DEFAULTS[item_id]:
                valid = ", ".join(sorted(DEFAULTS[item_id]))
                raise ConfigError(f"{src}: unknown key '{key}' in [checklist.{item_id}]; "
                                  f"valid keys: {valid}.")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{src}: [checklist.{item_id}] {key} must be a number, found {value!r}.")
            merged[item_id][key] = value
    return merged


def describe(item: Item, th: Thresholds) -> str:
    """The threshold of ``item`` in words (``warn if < 75.0%, fail if < 50.0%``)."""
    fn = _DESCRIBE.get(item.id) or _describe_generic(item.unit)
    return fn(th)


def build(sections: Sections, config: Config | None = None) -> list[dict[str, Any]]:
    """The checklist items, in go-live order, judged from the report ``sections``.

    Pure: reads only the sections (plain dicts) and the thresholds. Every item is judged; a missing
    input makes that item ``not_evaluated`` and nothing else.
    """
    th_all = thresholds(config)
    words = limits(config, sections)
    ctx = Context(sections, _rows(sections, "browser"), _rows(sections, "server"), words)
    out = []
    for item in ITEMS:
        th = th_all[item.id]
        try:
            verdict = item.judge(ctx, th)
        except SectionFailed as e:
            verdict = Verdict(ERROR, None, f"Not judged: the {e.section} analysis failed ({e.reason}).")
        out.append({
            "id": item.id,
            "title": item.title.format(**words),
            "status": verdict.status,
            "observed": verdict.observed,
            "threshold": describe(item, th),
            "fix": item.fix.format(**words),
            "explanation": verdict.explanation,
            "page": item.page,
            "unit": item.unit,
            "details": verdict.details,
        })
    return out


def summary(items: list[Mapping[str, Any]]) -> dict[str, int]:
    """Items per status."""
    counts = dict.fromkeys(STATUSES, 0)
    for i in items:
        counts[i["status"]] += 1
    return counts


GROUP_ORDER: tuple[str, ...] = (ERROR, FAIL, WARN, NOT_EVALUATED, PASS)
"""How the checklist is read: blockers first, then warnings, what could not be judged, what passes."""


def grouped(items: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The items by :data:`GROUP_ORDER`, each group in go-live order."""
    rank = {s: i for i, s in enumerate(GROUP_ORDER)}
    return sorted(items, key=lambda i: rank.get(i["status"], len(rank)))


def verdict(items: list[Mapping[str, Any]]) -> tuple[str, str]:
    """``(status, sentence)``: the one line the checklist opens with.

    ``Not ready to go live: N blockers`` while any item fails; else ``Ready with N warnings`` while
    any warns; else ``Ready`` when at least one item passed (the items not evaluated are named in
    :func:`verdict_note`); ``not_evaluated`` when nothing could be judged at all.
    """
    counts = summary(list(items))
    if counts[ERROR]:
        n = counts[ERROR]
        return ERROR, (f"Not judged: {n} item{'s' if n != 1 else ''} could not be checked because an "
                       "analysis failed inside capi-diag")
    if counts[FAIL]:
        n = counts[FAIL]
        return FAIL, f"Not ready to go live: {n} blocker{'s' if n != 1 else ''}"
    if counts[WARN]:
        n = counts[WARN]
        return WARN, f"Ready with {n} warning{'s' if n != 1 else ''}"
    if counts[PASS]:
        return PASS, "Ready"
    return NOT_EVALUATED, "Not evaluated: no checklist item could be judged on these logs"


def verdict_note(items: list[Mapping[str, Any]]) -> str:
    """What the verdict line leaves out: warnings beside blockers, items not evaluated."""
    counts = summary(list(items))
    parts = []
    if counts[FAIL] and counts[WARN]:
        parts.append(f"{counts[WARN]} warning{'s' if counts[WARN] != 1 else ''} as well")
    if counts[NOT_EVALUATED] and (counts[FAIL] or counts[WARN] or counts[PASS]):
        n = counts[NOT_EVALUATED]
        parts.append(f"{n} item{'s' if n != 1 else ''} could not be evaluated on these logs")
    if counts[PASS]:
        parts.append(f"{counts[PASS]} passed")
    return "; ".join(parts)
