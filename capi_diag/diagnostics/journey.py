"""Journey: how many rows each funnel step has in the browser log and in the server log.

What it measures: for each configured step (by default ``PageView``, ``ViewContent``,
``AddToCart``, ``InitiateCheckout``, ``Purchase``), the rows of each log whose ``event_name`` is
exactly that step, and which steps have no row at all on either side (``missing``). Near names
(the step's name ignoring case, spaces, ``-`` and ``_``, e.g. ``add_to_cart``) are listed beside a
step so that a missing step spelled differently is found at once.

Why it matters for Meta CAPI: deduplication and event coverage are per event name; a step sent by
only one side cannot pair, and a step absent from both is invisible to optimisation. A server
setup that covers Purchase only leaves every upper-funnel Pixel event without its server twin
(Meta's event coverage goal is 75 % of browser events).

Usual cause and fix: the server container or backend implements only some events, or names them
differently from the Pixel (``purchase`` vs ``Purchase``). Send every step from both sides under
Meta's exact name with a shared ``event_id``. For a lead-generation site set the steps in the TOML::

    [journey]
    steps = ["PageView", "ViewContent", "Lead"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.core.schema import ROLES
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import ibis, ir

SECTION = "journey"

DEFAULTS: dict[str, Any] = {
    "steps": ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"],
}
"""``steps``: the funnel, in order, by exact event name (Meta's standard e-commerce funnel)."""

MAX_OTHER = 20
"""Other (non-step) event names listed per log."""


def steps(config: Config) -> list[str]:
    """The configured steps, validated (a non-empty list of distinct, non-blank names)."""
    value = config.options(SECTION, DEFAULTS)["steps"]
    if not value or not all(isinstance(s, str) and s.strip() for s in value):
        raise ConfigError(f"{config.source}: [journey] steps must be a non-empty list of event names, "
                          f"found {value!r}.")
    dupes = sorted({s for s in value if value.count(s) > 1})
    if dupes:
        raise ConfigError(f"{config.source}: [journey] steps lists {', '.join(dupes)} more than once.")
    return list(value)


def fold(name: ir.StringValue) -> ir.StringValue:
    """An event name without case, spaces, ``-`` and ``_``: how near names are recognised."""
    return name.lower().re_replace(r"[ \t\n\f\r_-]", "")  # RE2's \s spelled out: Java's also has \x0B


def _fold_text(name: str) -> str:
    return "".join(ch for ch in name.lower() if not (ch.isspace() or ch in "_-"))


def _name_counts(ds: Dataset, role: str) -> dict[str, int]:
    def build() -> ir.Table:
        t = ds.events(role)
        return t.group_by("event_name").aggregate(rows=t.count())

    rows = ds.fetch(f"journey.names.{role}", build)
    return {str(r["event_name"]): int(r["rows"]) for r in rows}


def analyze(ds: Dataset, config: Config, prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``journey`` section (see the module docstring for every definition).

    Event names are few, so one ``GROUP BY event_name`` per log is brought back and the steps are
    read from it.
    """
    step_list = steps(config)
    folded_steps = {_fold_text(s): s for s in step_list}
    out: dict[str, Any] = {"status": "evaluated", "reason": None, "steps": step_list}
    missing: dict[str, list[str]] = {}
    near: dict[str, dict[str, dict[str, int]]] = {}
    other: dict[str, dict[str, int]] = {}
    for role in ROLES:
        counts = _name_counts(ds, role)
        out[f"{role}_rows"] = sum(counts.values())
        out[role] = {s: counts.get(s, 0) for s in step_list}
        missing[role] = [s for s in step_list if counts.get(s, 0) == 0]
        near[role] = {}
        for name, n in counts.items():
            step = folded_steps.get(_fold_text(name))
            if step is not None and name != step:
                near[role].setdefault(step, {})[name] = n
        rest = sorted(((n, name) for name, n in counts.items() if name not in step_list),
                      key=lambda x: (-x[0], x[1]))
        other[role] = {name: n for n, name in rest[:MAX_OTHER]}
    out["missing"] = missing
    out["complete"] = {role: out[f"{role}_rows"] > 0 and not missing[role] for role in ROLES}
    out["server_to_browser"] = {
        s: (out["server"][s] / out["browser"][s]) if out["browser"][s] else None for s in step_list
    }
    out["near_names"] = near
    out["other_events"] = other
    if not (out["browser_rows"] or out["server_rows"]):
        out["status"], out["reason"] = "not_evaluated", "Both logs are empty."
    return out


def failing_rows(ds: Dataset, config: Config) -> ir.Table:
    """Rows whose name is a near name of a step missing from their log (``step_name_variant``,
    a warning: the step is there, spelled differently)."""
    step_list = steps(config)
    folded = {_fold_text(s): s for s in step_list}
    parts = []
    for role in ROLES:
        t = ds.events(role)
        # A near name counts only while its step is absent from the same log (an anti-join, so the
        # expression holds no data of the log and compiles once).
        present = t.filter(t.event_name.isin(step_list)).select(_present=t.event_name).distinct()
        f = t.filter(fold(t.event_name).isin(list(folded)) & ~t.event_name.isin(step_list))
        f = f.mutate(_step=ibis.cases(*[(fold(f.event_name) == k, v) for k, v in folded.items()],
                                      else_=ibis.null("string")))
        f = f.anti_join(present, f._step == present._present)
        step = f._step
        parts.append(f.select(
            section=ibis.literal(SECTION), finding=ibis.literal("step_name_variant"),
            severity=ibis.literal("warning"), role=ibis.literal(role), source_file=f.source_file,
            line=f.line, event_name=f.event_name, event_id=f.event_id,
            detail=ibis.literal("missing step ").concat(step),
        ))
    return parts[0].union(parts[1]).select(*FAILING_ROW_COLUMNS)


def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One sentence per log with its missing steps and the fix."""
    out = []
    for role in ROLES:
        miss = result["missing"][role]
        counts = ", ".join(f"{s} {result[role][s]:,}" for s in result["steps"])
        near = result.get("near_names", {}).get(role, {})
        hint = "".join(f" {s} appears as {', '.join(near[s])}." for s in miss if s in near)
        out.append({
            "label": f"Steps missing from the {role} log", "value": len(miss), "unit": "funnel step",
            "text": f"Rows per step: {counts}." + (f" Missing: {', '.join(miss)}." if miss else "") + hint,
            "fix": (f"Send {', '.join(miss)} from the {role} side under Meta's exact name, with the same "
                    "event_id as the other side." if miss else ""),
        })
    return out
