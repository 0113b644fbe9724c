"""Dedup pairing: will Meta merge each browser event with its server twin, and if not, why not.

What it measures: every *key* ``(event_name, event_id)`` (``(pixel_id, event_name, event_id)`` when
both logs carry ``pixel_id``) found in the browser (Pixel) and server (CAPI) logs, and whether Meta
would deduplicate it:

* ``paired``: the key is in both logs with at least one browser row and one server row whose
  ``event_time`` values are at most 48 hours (172,800 s, inclusive) apart;
* ``outside_window``: in both logs, but no such pair (Meta counts both copies);
* ``browser_only`` / ``server_only``: in one log only.

``pairing_rate`` = paired / all keys; ``browser_coverage`` = paired / keys the browser sent;
``server_coverage`` = paired / keys the server sent (``null`` when the denominator is 0). Every
unpaired key gets one reason, first match wins: ``name_case_mismatch`` (the other log has the same
id under a name that differs only in case), ``different_ids_probable`` (the other log has, within
60 s, the same event name and ``fbp`` under a different id), else ``server_only_unexplained`` /
``browser_only_unexplained``. Also counted: rows without an ``event_id``, duplicate rows (the same
key sent twice by one log) and ``reused_event_id`` (one id used for several event names, or for rows
more than 48 h apart).

Why it matters for Meta CAPI: Meta discards the second copy of an event only when the Pixel
``eventID`` equals the CAPI ``event_id`` *and* the event names match exactly, for the same pixel,
within 48 hours. Every unpaired twin is counted twice, inflating conversions and corrupting
optimisation; a reused id makes Meta discard genuinely different events.

Usual cause of a bad value and the fix: the server generates its own id instead of receiving the
Pixel's (``different_ids_probable``: pass the browser's ``eventID`` to the server with the request,
e.g. in the dataLayer or a hidden field); event names typed differently on each side
(``name_case_mismatch``: use the exact standard name, ``Purchase``); the server never sends an event
the Pixel sends, or vice versa (``*_unexplained``: add the missing side, or check consent and
ad-blocking); a tag firing twice (duplicates: fire once per action); a constant or recycled id
(``reused_event_id``: generate one unique id per action, shared by both sides).

Preparation: ``event_name`` and ``event_id`` are compared exactly (case and whitespace count); an
empty or whitespace-only ``event_id`` is missing. The *earliest row* of a key in a log is the one
with the smallest ``event_time``, ties broken by file order, then line. A list-valued field
(``fbp``, ``external_id``) is matched on its first value.

The key table, the paired rows and the row-level helpers (:func:`~capi_diag.engine.measures.key_columns`,
:func:`~capi_diag.engine.measures.has_event_id`, :func:`~capi_diag.engine.measures.first_value`) are shared measures
in :mod:`capi_diag.engine.measures`; :func:`key_table`, :func:`paired_rows` and :func:`pairing_by_hour` here
read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capi_diag.core import fmt, labels
from capi_diag.core.config import Config
from capi_diag.core.schema import ROLES
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine import measures, runner
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import ibis, ir
from capi_diag.engine.measures import (
    DEDUP_DEFAULTS,
    ROW_ORDER,
    dedup_options,
    first_value,
    has_event_id,
    key_columns,
    key_preds,
    ranked_rows,
)
from capi_diag.engine.pii import mask_row

SECTION = "dedup"

DEFAULTS: dict[str, Any] = DEDUP_DEFAULTS
"""See :data:`capi_diag.engine.measures.DEDUP_DEFAULTS`."""

CATEGORIES: tuple[str, ...] = ("paired", "outside_window", "browser_only", "server_only")
SERVER_REASONS: tuple[str, ...] = ("name_case_mismatch", "different_ids_probable", "server_only_unexplained")
BROWSER_REASONS: tuple[str, ...] = (
    "name_case_mismatch", "different_ids_probable", "browser_only_unexplained",
)
NO_NAME = "(none)"

_ORDER = ROW_ORDER


# -- options -------------------------------------------------------------------------------------

def options(config: Config | None) -> dict[str, Any]:
    """The ``[dedup]`` options merged over :data:`DEFAULTS`, validated (non-negative integers)."""
    return dedup_options(config)


# -- preparation ---------------------------------------------------------------------------------

def key_table(ds: Dataset, config: Config | None = None) -> ir.Table:
    """The shared key table (:func:`capi_diag.engine.measures.key_table_expr`) as the engine materializes it."""
    return ds.using(config).measure("key_table")


def paired_rows(ds: Dataset, config: Config | None = None) -> ir.Table:
    """The earliest browser and server row of each paired key (:func:`capi_diag.engine.measures.paired_rows_expr`)."""
    return ds.using(config).measure("paired_rows")


def pairing_by_hour(ds: Dataset, config: Config | None = None) -> ir.Table:
    """Keys per hour (``hour`` = Unix seconds of the hour start, by the key's ``first_time``):
    ``keys``, ``paired``, ``outside_window``, ``browser_only``, ``server_only``, ordered by hour;
    ``paired / keys`` is the pairing rate of that hour."""
    kt = key_table(ds, config)
    kt = kt.mutate(hour=(kt.first_time // 3600) * 3600)
    return (kt.group_by("hour")
            .aggregate(keys=kt.count(), **{c: kt.count(where=kt.category == c) for c in CATEGORIES})
            .order_by("hour"))


def _reused_measure(role: str) -> None:
    @measures.register(f"reused_ids_{role}")
    def build(ds: Dataset) -> ir.Table:
        return reused_ids(ds.measure("key_table"), key_columns(ds), role, int(options(ds.config)["window_s"]))


for _role in ("browser", "server"):
    _reused_measure(_role)


def reused_ids(kt: ir.Table, keys: Sequence[str], role: str, window_s: int) -> ir.Table:
    """Event ids (per pixel when the key has ``pixel_id``) that the ``role`` log uses for more than
    one event name, or whose rows under one key lie more than ``window_s`` apart. Columns: the id
    columns, ``event_names`` (distinct names, sorted), ``keys``, ``rows``, ``first_time``,
    ``last_time``, ``max_spread_s``."""
    idcols = [k for k in keys if k != "event_name"]
    t = kt.filter(kt[f"{role}_rows"] > 0)
    spread = t[f"{role}_last_time"] - t[f"{role}_time"]
    # Cheap counts first; names are collected only for the few ids that qualify.
    c = t.group_by(idcols).aggregate(_keys=t.count(), _spread=spread.max())
    c = c.filter((c._keys > 1) | (c._spread > window_s)).select(**{f"_c_{k}": c[k] for k in idcols})
    t = t.semi_join(c, key_preds(t, c, idcols, "", "_c_"))
    spread = t[f"{role}_last_time"] - t[f"{role}_time"]
    g = t.group_by(idcols).aggregate(
        event_names=t.event_name.collect(distinct=True).sort(),  # sorted list: portable (Spark has no ordered collect)
        keys=t.count(),
        rows=t[f"{role}_rows"].sum(),
        first_time=t[f"{role}_time"].min(),
        last_time=t[f"{role}_last_time"].max(),
        max_spread_s=spread.max(),
    )
    return g.filter((g.keys > 1) | (g.max_spread_s > window_s))


@runner.per_plan
def _fallback_rows(ds: Dataset, keys: tuple[str, ...], window_s: int) -> dict[str, ir.Table]:
    """Server rows without an ``event_id`` that Meta's fallback dedup (``fbp`` / ``external_id`` +
    ``event_name``, browser event first, within ``window_s``) could merge with a browser row."""
    s = ds.events("server")
    s = s.filter(~has_event_id(s))
    s = s.select("event_name", "event_time", "file_index", "line", "source_file", "event_id",
                 *(["pixel_id"] if "pixel_id" in keys else []),
                 fbp=first_value(s.fbp), ext=first_value(s.external_id))
    b = ds.events("browser")
    b = b.select(b_event_name=b.event_name, b_time=b.event_time,
                 b_fbp=first_value(b.fbp), b_ext=first_value(b.external_id),
                 **({"b_pixel_id": b.pixel_id} if "pixel_id" in keys else {}))
    common = [s.event_name == b.b_event_name, b.b_time <= s.event_time, (s.event_time - b.b_time) <= window_s]
    if "pixel_id" in keys:
        common.append(s.pixel_id.identical_to(b.b_pixel_id))
    by_fbp = s.semi_join(b, [*common, s.fbp == b.b_fbp])
    by_ext = s.semi_join(b, [*common, s.ext == b.b_ext])
    either = ibis.union(by_fbp, by_ext, distinct=True)
    return {"by_fbp": by_fbp, "by_external_id": by_ext, "either": either}


# -- analysis ------------------------------------------------------------------------------------

_NAME_COUNTS = (
    "keys", "paired", "outside_window", "browser_only", "server_only",
    "name_case_mismatch", "different_ids_probable", "server_only_unexplained", "browser_only_unexplained",
    "browser_name_case_mismatch", "browser_different_ids_probable",
    "browser_rows", "server_rows", "browser_missing_event_id", "server_missing_event_id",
    "duplicate_browser_rows", "duplicate_server_rows", "reused_event_id",
    "fallback_mergeable_server_rows", "fallback_by_fbp", "fallback_by_external_id",
)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _rates(c: Mapping[str, int]) -> dict[str, float | None]:
    paired, ow = c["paired"], c["outside_window"]
    return {
        "pairing_rate": _ratio(paired, paired + ow + c["browser_only"] + c["server_only"]),
        "browser_coverage": _ratio(paired, paired + ow + c["browser_only"]),
        "server_coverage": _ratio(paired, paired + ow + c["server_only"]),
    }


def _name(v: Any) -> str:
    return NO_NAME if v is None else str(v)


def analyze(ds: Dataset, config: Config | None = None,
            prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``dedup`` section (every definition is in the module docstring)."""
    config = config or Config()
    ds = ds.using(config)
    opts = options(config)
    window = int(opts["window_s"])
    keys = key_columns(ds)
    return _analyze(ds, config, opts, keys, window)


def _analyze(ds: Dataset, config: Config, opts: Mapping[str, Any], keys: tuple[str, ...],
             window: int) -> dict[str, Any]:
    per_name: dict[str, dict[str, int]] = {}

    def add(rows: list[dict[str, Any]], mapping: Mapping[str, str]) -> None:
        for r in rows:
            entry = per_name.setdefault(_name(r["event_name"]), dict.fromkeys(_NAME_COUNTS, 0))
            for out_key, col in mapping.items():
                entry[out_key] += int(r[col] or 0)

    # Every query below is built only when its SQL is not cached yet (a builder, not an expression).
    def key_counts() -> ir.Table:
        kt = key_table(ds)
        cat, reason = kt.category, kt.reason
        so, bo = cat == "server_only", cat == "browser_only"
        return kt.group_by("event_name").aggregate(
            keys=kt.count(),
            **{c: kt.count(where=cat == c) for c in CATEGORIES},
            name_case_mismatch=kt.count(where=so & (reason == "name_case_mismatch")),
            different_ids_probable=kt.count(where=so & (reason == "different_ids_probable")),
            server_only_unexplained=kt.count(where=so & (reason == "server_only_unexplained")),
            browser_only_unexplained=kt.count(where=bo & (reason == "browser_only_unexplained")),
            browser_name_case_mismatch=kt.count(where=bo & (reason == "name_case_mismatch")),
            browser_different_ids_probable=kt.count(where=bo & (reason == "different_ids_probable")),
            browser_keys=kt.count(where=kt.browser_rows > 0),
            server_keys=kt.count(where=kt.server_rows > 0),
            browser_keyed=kt.browser_rows.sum(),
            server_keyed=kt.server_rows.sum(),
        )

    key_rows = ds.fetch("dedup.key_counts", key_counts)
    add(key_rows, {c: c for c in _NAME_COUNTS[:11]})
    for r in key_rows:
        entry = per_name[_name(r["event_name"])]
        entry["duplicate_browser_rows"] = int(r["browser_keyed"] or 0) - int(r["browser_keys"])
        entry["duplicate_server_rows"] = int(r["server_keyed"] or 0) - int(r["server_keys"])

    def role_rows(role: str) -> ir.Table:
        t = ds.events(role)
        return t.group_by("event_name").aggregate(rows=t.count(), missing=t.count(where=~has_event_id(t)))

    parts = ds.fetch_parts("dedup.rows", ROLES, role_rows)
    for role in ROLES:
        add(parts[role], {f"{role}_rows": "rows", f"{role}_missing_event_id": "missing"})

    idcols = [k for k in keys if k != "event_name"]
    reused_total: dict[str, int] = {}
    reused_examples: list[dict[str, Any]] = []
    limit = int(opts["examples"])

    def reused_rows(role: str) -> ir.Table:
        ids = ds.measure(f"reused_ids_{role}")
        kt = key_table(ds)
        t = kt.filter(kt[f"{role}_rows"] > 0)
        per = t.semi_join(ids, key_preds(t, ids, idcols))
        return per.group_by("event_name").aggregate(n=per.count())

    def reused_ids(role: str) -> ir.Table:
        ids = ds.measure(f"reused_ids_{role}")
        return ids.aggregate(n=ids.count())

    def reused_ex(role: str) -> ir.Table:
        return ds.measure(f"reused_ids_{role}").order_by(["first_time", *idcols]).limit(limit)

    rows_parts = ds.fetch_parts("dedup.reused_rows", ROLES, reused_rows)
    id_parts = ds.fetch_parts("dedup.reused_ids", ROLES, reused_ids)
    ex_parts = ds.fetch_parts("dedup.reused_examples", ROLES, reused_ex, ["first_time", *idcols])
    for role in ROLES:
        add(rows_parts[role], {"reused_event_id": "n"})
        reused_total[role] = int(id_parts[role][0]["n"])
        reused_examples += [{"role": role, **r} for r in ex_parts[role]]

    def fallback(part: str) -> ir.Table:
        expr = _fallback_rows(ds, keys, window)[part]
        return expr.group_by("event_name").aggregate(n=expr.count())

    fallbacks = {"fallback_by_fbp": "by_fbp", "fallback_by_external_id": "by_external_id",
                 "fallback_mergeable_server_rows": "either"}
    fb_parts = ds.fetch_parts("dedup.fallback", list(fallbacks), lambda k: fallback(fallbacks[k]))
    for out_key in fallbacks:
        add(fb_parts[out_key], {out_key: "n"})

    totals = dict.fromkeys(_NAME_COUNTS, 0)
    for entry in per_name.values():
        for k in _NAME_COUNTS:
            totals[k] += entry[k]
    totals["reused_event_id"] = reused_total["browser"] + reused_total["server"]

    by_event_name = {}
    def volume(n: str) -> tuple[int, str]:
        return (-(per_name[n]["browser_rows"] + per_name[n]["server_rows"]), n)

    for name in sorted(per_name, key=volume):
        entry = per_name[name]
        by_event_name[name] = {**entry, **_rates(entry)}

    examples = _key_examples(ds, keys, limit)
    examples.update(_duplicate_examples(ds, config, keys, limit))
    reused_examples.sort(key=lambda r: (r["first_time"], r["role"]))
    examples["reused_event_id"] = [mask_row(r) for r in reused_examples[:limit]]

    browser_rows, server_rows = totals["browser_rows"], totals["server_rows"]
    if browser_rows == 0 or server_rows == 0:
        status = "not_evaluated"
        empty = [r for r, n in (("browser", browser_rows), ("server", server_rows)) if n == 0]
        verb = "logs have" if len(empty) > 1 else "log has"
        why = f"The {' and '.join(empty)} {verb} no rows: pairing needs both."
    else:
        status, why = "evaluated", None
    return {
        "status": status,
        "reason": why,
        "key_columns": list(keys),
        "window_s": window,
        "probable_window_s": int(opts["probable_window_s"]),
        **{k: totals[k] for k in ("keys", *CATEGORIES)},
        **_rates(totals),
        **{k: totals[k] for k in _NAME_COUNTS if k not in ("keys", *CATEGORIES)},
        "reused_event_id_browser": reused_total["browser"],
        "reused_event_id_server": reused_total["server"],
        "by_event_name": by_event_name,
        "examples": examples,
    }


_EXAMPLE_COLUMNS = (
    "category", "reason", "partner_event_name", "partner_event_id", "first_time", "browser_time",
    "server_time", "skew_s", "browser_rows", "server_rows", "browser_source_file", "browser_line",
    "server_source_file", "server_line",
)


def _key_examples(ds: Dataset, keys: Sequence[str], limit: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``limit`` keys per category, earliest first (``first_time``, then the key): a top-N per
    category, unioned."""
    def build() -> ir.Table:
        kt = key_table(ds)
        parts = [kt.filter(kt.category == c).order_by(["first_time", *keys]).limit(limit)
                 .select(*keys, *_EXAMPLE_COLUMNS, _c=ibis.literal(i)) for i, c in enumerate(CATEGORIES)]
        return ibis.union(*parts, distinct=False).order_by(["_c", "first_time", *keys])

    rows = ds.fetch("dedup.key_examples", build) if limit > 0 else []
    for r in rows:
        r.pop("_c")
    out: dict[str, list[dict[str, Any]]] = {c: [] for c in CATEGORIES}
    for r in rows:
        out[r["category"]].append(mask_row(r))
    return out


def _duplicate_examples(ds: Dataset, config: Config, keys: Sequence[str],
                        limit: int) -> dict[str, list[dict[str, Any]]]:
    order = [*_ORDER, "source_file"]
    shown = [*keys, "event_time", "source_file", "line", "copy"]

    def build(role: str) -> ir.Table:
        t = ranked_rows(ds, role)
        dup = t.filter(t.copy > 0).order_by(order).limit(limit)
        return dup.select(*dict.fromkeys([*shown, *order]))

    parts = ds.fetch_parts("dedup.duplicate_examples", ROLES, build, order)
    return {f"duplicate_{role}_rows": [mask_row({c: r[c] for c in shown}) for r in parts[role]] for role in ROLES}


# -- rows behind the findings --------------------------------------------------------------------

SEVERITY = {
    "name_case_mismatch": "error", "different_ids_probable": "error", "reused_event_id": "error",
    "outside_window": "warning", "server_only_unexplained": "warning", "browser_only_unexplained": "warning",
    "duplicate_browser_rows": "warning", "duplicate_server_rows": "warning",
    "browser_missing_event_id": "warning", "server_missing_event_id": "warning",
}
"""Errors: Meta counts an action twice (names or ids differ between the logs) or discards a real
event (one id reused). Warnings: a twin is missing, late or doubled, or cannot be deduplicated."""


def _finding_rows(t: ir.Table, role: str, finding: ir.StringValue | str, detail: ir.StringValue | str,
                  severity: ir.StringValue | str) -> ir.Table:
    return t.select(
        section=ibis.literal(SECTION),
        finding=finding if isinstance(finding, ir.Value) else ibis.literal(finding),
        severity=severity if isinstance(severity, ir.Value) else ibis.literal(severity),
        role=ibis.literal(role),
        source_file=t.source_file,
        line=t.line.cast("int64"),
        event_name=t.event_name,
        event_id=t.event_id,
        detail=detail if isinstance(detail, ir.Value) else ibis.literal(detail),
    )


def failing_rows(ds: Dataset, config: Config | None = None) -> ir.Table:
    """The rows behind each finding, one row per (event row, finding), columns
    :data:`~capi_diag.diagnostics.FAILING_ROW_COLUMNS`:

    * every row (both logs) of an unpaired key, ``finding`` = its reason, or ``outside_window``;
    * ``duplicate_<role>_rows``: each row of a key after its earliest row in that log;
    * ``reused_event_id``: every row carrying a reused id;
    * ``<role>_missing_event_id``: rows without an ``event_id``.
    """
    config = config or Config()
    ds = ds.using(config)
    opts = options(config)
    window = int(opts["window_s"])
    keys = key_columns(ds)
    kt = key_table(ds)
    parts: list[ir.Table] = []
    unpaired = kt.filter(kt.category != "paired")
    idcols = [k for k in keys if k != "event_name"]
    for role in ("browser", "server"):
        rows = ranked_rows(ds, role)
        u = unpaired.rename({f"k_{k}": k for k in keys})
        j = rows.join(u, key_preds(rows, u, keys, "", "k_"))
        finding = j.reason.fill_null("outside_window")
        partner = ibis.ifelse(
            j.partner_event_id.notnull(),
            ibis.literal("partner ").concat(j.partner_event_name, " / ", j.partner_event_id),
            ibis.cases(
                (j.category == "outside_window",
                 f"no {'server' if role == 'browser' else 'browser'} row within {window} s"),
                (j.category == "browser_only", "not in the server log"),
                else_="not in the browser log",
            ),
        )
        severity = finding.substitute(SEVERITY, else_="warning")
        parts.append(_finding_rows(j, role, finding, partner, severity))
        dup = rows.filter(rows.copy > 0)
        parts.append(_finding_rows(dup, role, f"duplicate_{role}_rows",
                                   ibis.literal("copy ").concat(dup.copy.cast("string")), "warning"))
        ids = ds.measure(f"reused_ids_{role}")
        reused = rows.semi_join(ids, key_preds(rows, ids, idcols))
        parts.append(_finding_rows(reused, role, "reused_event_id", "id used for several names or >48 h",
                                   "error"))
        t = ds.events(role)
        missing = t.filter(~has_event_id(t))
        parts.append(_finding_rows(missing, role, f"{role}_missing_event_id", "no event_id", "warning"))
    return ibis.union(*parts, distinct=False).select(*FAILING_ROW_COLUMNS)


# -- explanation ---------------------------------------------------------------------------------

def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One ``{"label", "value", "text", "fix"}`` entry per number of the section."""
    window = fmt.duration(result.get("window_s") or options(config)["window_s"])
    probable = fmt.duration(result.get("probable_window_s") or options(config)["probable_window_s"])
    key = " + ".join(result.get("key_columns", ["event_name", "event_id"]))
    out: list[dict[str, Any]] = []
    if result.get("status") == "not_evaluated":
        out.append({"label": "Dedup pairing", "value": None,
                    "text": f"Not evaluated: {result.get('reason')}",
                    "fix": "Upload the browser (Pixel) log and the server (CAPI) log of the same period."})

    def e(k: str, text: str, fix: str, label: str | None = None) -> None:
        unit = "share" if k in ("pairing_rate", "browser_coverage", "server_coverage") else labels.unit(k)
        out.append({"label": label or labels.label(k), "value": result.get(k), "text": text, "fix": fix, "unit": unit})

    e("pairing_rate",
      f"Share of all dedup keys ({key}) that Meta would deduplicate: present in both logs with a browser "
      f"and a server row at most {window} apart ({fmt.count(result.get('paired'))} of "
      f"{fmt.count(result.get('keys'))}).",
      "Send every Pixel event from the server too, with the same event_name and the Pixel's eventID.")
    e("browser_coverage",
      "Share of browser keys that have a server twin within the window (the log-side analogue of Meta's "
      "event coverage, goal 75 %).",
      "Send the browser's events from the server as well, passing the Pixel eventID along.")
    e("server_coverage",
      "Share of server keys that have a browser twin within the window.",
      "Server events without a Pixel twin are fine for server-only steps; otherwise fire the Pixel "
      "with the same eventID.")
    e("paired", f"Dedup keys in both logs with a browser and a server row at most {window} apart.",
      "Nothing to fix: Meta keeps one copy of each.")
    e("outside_window",
      f"Dedup keys in both logs whose browser and server rows are all more than {window} apart: Meta "
      "counts both.",
      "Send server events promptly (within minutes) and check that event_time is the action's time.")
    e("browser_only", "Dedup keys found only in the browser log.",
      "See the reasons below; make the server send the same event with the Pixel's id.")
    e("server_only", "Dedup keys found only in the server log.",
      "See the reasons below; fire the Pixel with the same eventID, or accept server-only steps.")
    e("name_case_mismatch",
      "Server-only keys whose id the browser sends under a name that differs only in case "
      "(purchase vs Purchase); Meta compares names exactly, so both copies count.",
      "Use the exact same event name on both sides (the standard names are CamelCase: Purchase).")
    e("different_ids_probable",
      f"Server-only keys with a browser-only key of the same name and fbp within {probable}: the id was "
      "generated twice instead of passed from the browser.",
      "Generate the eventID once in the browser and pass it to the server (dataLayer, hidden field, header).")
    e("server_only_unexplained",
      "Server-only keys with no browser event to explain them (blocked Pixel, consent, or a "
      "server-only step).",
      "Check ad-blocking and consent; server-only steps (e.g. offline Purchase) need no Pixel twin.")
    e("browser_only_unexplained",
      "Browser-only keys not explained by a server key: the server never sent them.",
      "Send these events from the server too (or find why the server drops them).")
    e("browser_missing_event_id",
      "Pixel rows with an empty or missing eventID cannot be deduplicated by id.",
      "Pass {eventID: ...} as the 4th argument of fbq('track', ...).")
    e("server_missing_event_id",
      "CAPI rows without event_id; Meta can only try its fbp/external_id fallback for them.",
      "Send event_id on every server event, equal to the Pixel's eventID.")
    e("duplicate_browser_rows",
      "Browser rows repeating a key already in the browser log (the Pixel fired twice).",
      "Fire each Pixel event once per action (check for double tags or containers).")
    e("duplicate_server_rows",
      "Server rows repeating a key already in the server log (the same event sent twice, e.g. from two "
      "containers or retries).",
      "Send each event once; make retries idempotent and remove duplicate tags or containers.")
    e("reused_event_id",
      f"Ids (per log, summed) used for several event names, or for rows more than {window} apart: Meta may "
      "discard genuinely different events as duplicates.",
      "Generate a fresh unique id per action (e.g. a UUID), never a constant or a per-session value.")
    e("fallback_mergeable_server_rows",
      f"Server rows without event_id that Meta's fallback (same event_name and fbp or external_id, browser "
      f"event first, within {window}) could still merge with a browser event.",
      "Do not rely on the fallback: it only works when the browser event arrives first; send event_id.")
    return out
