"""Event Match Quality (EMQ), estimated: a transparent model of how well Meta can match the events.

What it measures: an **estimate** (0–10) of Meta's Event Match Quality for the server's ``website``
events (all server rows when the log has no ``action_source`` column), overall and per event name,
with a ``band`` label and ``priorities``: the fields sorted by how much the estimate would gain if
every scored row carried a valid value, each with the concrete fix. It is an estimate, not Meta's
score: Meta publishes no formula and no weights (docs/facts.md §6), so the model below is ours, kept in one
place (:data:`WEIGHTS`) so that anyone can read and challenge it.

The model: each match key ``f`` has a weight ``w_f`` in (0, 1), read as "the chance that this key
alone lets Meta match an event". With ``c_f`` the key's ``valid_coverage`` over the scored rows
(from :mod:`capi_diag.engine.rules`: invalid values count as absent), the estimate is

    estimate = 10 × (1 − Π_f (1 − w_f × c_f))

i.e. the chance that at least one key matches, keys taken as independent. It never decreases when
any key's valid coverage grows, saturates as keys accumulate (a fifth key adds less than the
first), and is 0 with no valid key. The gain of a field is ``estimate(c_f = 1) − estimate``.

Weights and their reasoning (ordered as required: email strictly first, then phone, then
external_id, then the browser keys, then names and address):

* ``em`` 0.60: the key Meta names first among high-quality parameters; unique per person and
  present on most Meta accounts (the Dataset Quality API's example uplift for email is the largest).
* ``ph`` 0.45: also named high-quality; unique, but fewer accounts carry a phone and formats vary.
* ``external_id`` 0.30: matches through the advertiser's id seen on Pixel events (and replaces
  ``fbp`` as the external id when both are sent); useful only when the Pixel sends the same id.
* ``fbp`` 0.20, ``fbc`` 0.20: browser and click ids tie the event to a browser Meta has seen; the
  parameter builder calls them high-priority. ``fbc`` exists only for visitors who came from an ad,
  so its full coverage is not reachable for all traffic.
* ``client_ip_address`` 0.15, ``client_user_agent`` 0.10: weak alone, useful together (Meta names IP
  among high-quality parameters; the user agent is required for website events).
* ``fn`` 0.06, ``ln`` 0.06, ``db`` 0.05, ``zp`` 0.05, ``ct`` 0.03, ``st`` 0.03, ``ge`` 0.02,
  ``country`` 0.02: not identifying alone, they sharpen a match made with the keys above.

Band (Meta publishes no bands; these are the cut-offs commonly repeated by third parties, which we
could not verify): ``Poor`` below 4.0, ``OK`` 4.0–5.9, ``Good`` 6.0–7.9, ``Great`` 8.0 and above.
Meta's own stated target is 6.0 or higher (``target``, configurable).

Why it matters for Meta CAPI: unmatched events cannot be attributed to ads or used for
optimisation, only for basic measurement; a higher EMQ means more attributed conversions.

Usual cause of a low value and the fix: the server sends only IP, user agent and ``fbp`` (add the
customer's email and phone where the site knows them: login, checkout, lead forms), or sends them
invalid (see ``match_keys`` defects: unhashed, empty hashes, not normalized). The ``priorities`` list
gives the fixes in order of estimated gain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capi_diag.core import labels
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine import measures, rules
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import LazyTable, ibis, ir

SECTION = "emq"

WEIGHTS: dict[str, float] = {
    "em": 0.60,
    "ph": 0.45,
    "external_id": 0.30,
    "fbp": 0.20,
    "fbc": 0.20,
    "client_ip_address": 0.15,
    "client_user_agent": 0.10,
    "fn": 0.06,
    "ln": 0.06,
    "db": 0.05,
    "zp": 0.05,
    "ct": 0.03,
    "st": 0.03,
    "ge": 0.02,
    "country": 0.02,
}
"""Per-field weight: the modelled chance that the key alone lets Meta match an event (see the module
docstring for the reasoning). The one place the model's numbers live."""

BANDS: tuple[tuple[float, str], ...] = ((8.0, "Great"), (6.0, "Good"), (4.0, "OK"), (0.0, "Poor"))
"""``(lower bound, label)``, highest first. Unofficial: Meta publishes no band thresholds."""

DEFAULTS: dict[str, Any] = {"target": 6.0}
"""``target``: the estimate Meta recommends reaching (6.0, docs/facts.md §6); rows below it are listed by
:func:`failing_rows` and ``meets_target`` compares the overall estimate with it."""

NOTE = ("An estimate from a published, transparent model (weights in the emq module and README): Meta "
        "publishes no EMQ formula, so Events Manager's score can differ.")


# -- the model (pure functions) ---------------------------------------------------------------------

def estimate(coverage: Mapping[str, float | None]) -> float:
    """``10 × (1 − Π (1 − w_f × c_f))`` over :data:`WEIGHTS`; a missing or null coverage counts as 0.
    Coverages are clamped to [0, 1]."""
    miss = 1.0
    for f, w in WEIGHTS.items():
        c = min(max(float(coverage.get(f) or 0.0), 0.0), 1.0)
        miss *= 1.0 - w * c
    return 10.0 * (1.0 - miss)


def gains(coverage: Mapping[str, float | None]) -> list[tuple[str, float]]:
    """``(field, gain)`` for every field: the estimate with that field at full valid coverage minus
    the current estimate; sorted by gain, then weight, both descending."""
    base = estimate(coverage)
    out = [(f, estimate({**coverage, f: 1.0}) - base) for f in WEIGHTS]
    order = list(WEIGHTS)
    return sorted(out, key=lambda fg: (-fg[1], -WEIGHTS[fg[0]], order.index(fg[0])))


def band(value: float | None) -> str | None:
    """The unofficial band label of an estimate (see :data:`BANDS`)."""
    if value is None:
        return None
    for lower, label in BANDS:
        if value >= lower:
            return label
    return BANDS[-1][1]


def row_estimate(rv: ir.Table) -> ir.FloatingValue:
    """The model applied to one row of a row-validity table (valid keys count fully, others 0)."""
    miss: ir.FloatingValue = ibis.literal(1.0)
    for f, w in WEIGHTS.items():
        miss = miss * ibis.ifelse(rv[f"{f}_valid"], 1.0 - w, 1.0)
    return 10.0 * (1.0 - miss)


# -- measurement --------------------------------------------------------------------------------------

def options(config: Config | None) -> dict[str, Any]:
    config = config or Config()
    opts = config.options(SECTION, DEFAULTS)
    if not 0 <= float(opts["target"]) <= 10:
        raise ConfigError(f"{config.source}: [{SECTION}] target must be between 0 and 10, "
                          f"found {opts['target']!r}.")
    return opts


def scored_validity(ds: Dataset) -> tuple[ir.Table, str]:
    """The rows the estimate covers, with their per-row validity flags
    (:func:`capi_diag.engine.rules.server_validity`, shared with match_keys and contract), and the scope's
    name: ``website`` rows (exact value) when the server log has an ``action_source`` column, else
    ``all_server_rows``."""
    rv = rules.server_validity(ds)
    if ds.has("server", "action_source"):
        return rv.filter(rv.action_source == "website"), "website"
    return rv, "all_server_rows"


def _fix(field: str, counts: Mapping[str, Any], rows: int) -> str:
    fix = labels.FIELD_FIX[field]
    c = counts[field]
    bad = {d: n for d, n in c["defects"].items() if n and d in rules.INVALIDATING[field]}
    if bad:
        worst = ", ".join(f"{labels.defect(None, d).lower()}: {n:,}"
                          for d, n in sorted(bad.items(), key=lambda kv: -kv[1]))
        fix += f" {c['present'] - c['valid']:,} of {rows:,} scored rows send it invalid ({worst}): fix those first."
    if c["present"] < rows:
        fix += f" {rows - c['present']:,} of {rows:,} scored rows lack it."
    return fix


def analyze(ds: Dataset, config: Config | None = None,
            prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``emq`` section (the model and its reasoning are in the module docstring)."""
    opts = options(config)
    target = float(opts["target"])
    ds = ds.using(config)
    scope = "website" if ds.has("server", "action_source") else "all_server_rows"  # scored_validity's
    return _analyze(ds, LazyTable(lambda: scored_validity(ds)[0]), scope, target)


def _analyze(ds: Dataset, rv: ir.Table, scope: str, target: float) -> dict[str, Any]:
    counts = measures.field_counts(ds, rv, tuple(WEIGHTS), f"emq.field_counts.{scope}")
    rows = counts["rows"]
    base = {"scope": scope, "rows": rows, "target": target, "note": NOTE, "weights": dict(WEIGHTS),
            "bands": {label: lower for lower, label in BANDS}}
    if not rows:
        return {"status": "not_evaluated", "reason": f"no server rows in scope ({scope})",
                "estimate": None, "band": None, "meets_target": None, "by_event_name": {},
                "priorities": [], "valid_coverage": {}, **base}
    coverage = {f: counts[f]["valid"] / rows for f in WEIGHTS}
    value = round(estimate(coverage), 1)
    by_name: dict[str, dict[str, Any]] = {}
    for name, c in measures.valid_by_event_name(ds, rv, tuple(WEIGHTS), f"emq.valid_by_event_name.{scope}").items():
        e = round(estimate({f: c[f] / c["rows"] for f in WEIGHTS}), 1)
        by_name[name] = {"estimate": e, "band": band(e), "rows": c["rows"]}
    priorities = [{"field": f, "gain": round(g, 2), "fix": _fix(f, counts, rows)}
                  for f, g in gains(coverage) if g > 0]
    return {"status": "evaluated", "estimate": value, "band": band(value), "meets_target": value >= target,
            "by_event_name": by_name, "priorities": priorities, "valid_coverage": coverage, **base}


def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """The estimate, its per-event-name values and the top fixes, as sentences."""
    if result.get("status") == "not_evaluated":
        return [{"label": "EMQ estimate", "value": None, "text": f"Not evaluated: {result.get('reason')}.",
                 "fix": "Upload a server log with website events."}]
    scope = "website server events" if result["scope"] == "website" else "server events"
    out = [{
        "label": "EMQ estimate", "value": result["estimate"], "unit": "score",
        "text": f"Estimated match quality of {result['rows']:,} {scope} on 0-10: {result['band']} "
                f"(Meta's target is {result['target']:g}). {result['note']}",
        "fix": result["priorities"][0]["fix"] if result["priorities"] and not result["meets_target"] else "",
    }]
    for name, r in result["by_event_name"].items():
        out.append({"label": f"EMQ estimate, {name}", "value": r["estimate"], "unit": "score",
                    "text": f"{r['rows']:,} {name} events: {r['band']}.", "fix": ""})
    for p in result["priorities"][:5]:
        out.append({"label": f"Gain from {labels.field_with_code(p['field'])}", "value": p["gain"],
                    "text": f"Estimated gain in EMQ points if every scored event carried a valid "
                            f"{labels.field(p['field']).lower()}.",
                    "fix": p["fix"]})
    return out


def failing_rows(ds: Dataset, config: Config | None = None) -> ir.Table:
    """Scored rows whose own estimate (the model applied to the row's valid keys) is below the
    target: finding ``below_emq_target``, severity ``warning``, detail ``estimate <x>``."""
    target = float(options(config)["target"])
    rv, _ = scored_validity(ds.using(config))
    rv = rv.mutate(_est=row_estimate(rv).round(1))
    rv = rv.filter(rv._est < target)
    return rv.select(
        section=ibis.literal(SECTION), finding=ibis.literal("below_emq_target"),
        severity=ibis.literal("warning"), role=ibis.literal("server"), source_file=rv.source_file,
        line=rv.line, event_name=rv.event_name, event_id=rv.event_id,
        detail=ibis.literal("estimate ").concat(rv._est.cast("string")),
    ).select(*FAILING_ROW_COLUMNS)
