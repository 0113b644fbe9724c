"""Consent: server events forwarded to Meta without the consent the region's policy requires.

What it measures: for every server row, the consent purposes its region's policy requires
(``ad_storage`` and ``ad_user_data`` everywhere by default), and whether each was ``granted``.
``forwarded_without_consent`` counts rows where a required purpose is ``denied``;
``consent_unknown`` counts the other rows where a required purpose is missing or empty. Both are
broken down per region (ISO 3166-1 alpha-2 code of ``consent_region``) and per purpose.

Why it matters for Meta CAPI: the server sends events straight to Meta, outside the browser's
consent banner. In the EEA (GDPR, ePrivacy, DMA) an event forwarded after the visitor refused
advertising storage or advertising use of their data is a compliance breach, not a data-quality
issue; Meta does not filter such events for you.

Usual cause of a bad value: the server-side container or backend fires the CAPI call
unconditionally, or reads the consent state from a stale cookie, or never receives it at all
(``consent_unknown``). Fix: pass the consent state (Google Consent Mode purposes or your CMP's) with
each event to the server, and drop or anonymise events whose required purposes are not granted,
per region.

The policy comes from the ``[consent]`` table of the ``--config`` TOML::

    [consent]
    required = ["ad_storage", "ad_user_data"]    # default policy, for every other region

    [consent.groups]                             # optional; EEA and EU are built in
    DACH = ["DE", "AT", "CH"]

    [consent.regions]                            # per region code or group name
    EEA = ["ad_storage", "ad_user_data", "ad_personalization"]
    US = []                                      # nothing required

A region code listed under ``[consent.regions]`` wins over a group containing it; among groups the
first one listed under ``[consent.regions]`` wins. Rows whose region is empty or not a known code
follow the default policy. With no ``consent_*`` column in the server log the section is
``not_evaluated`` and its counts are ``null``.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capi_diag.core import labels
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.core.schema import CONSENT_PURPOSES
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import LazyTable, ibis, ir
from capi_diag.engine.pii import mask_row

SECTION = "consent"

DEFAULTS: dict[str, Any] = {
    "required": ["ad_storage", "ad_user_data"],
    "groups": {},
    "regions": {},
    "examples": 20,
}
"""``required``: purposes every region needs unless ``regions`` says otherwise (the two Google
Consent Mode v2 purposes that govern advertising storage and sending user data for advertising; a
strict default, loosened per region in the TOML); ``groups``: extra region groups; ``regions``: per
code or group the purposes required there; ``examples``: example rows kept per finding."""

EU_MEMBERS: tuple[str, ...] = (
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
)
BUILTIN_GROUPS: dict[str, tuple[str, ...]] = {
    "EU": EU_MEMBERS,
    "EEA": (*EU_MEMBERS, "IS", "LI", "NO"),
}
"""Region groups available without configuration (a ``[consent.groups]`` entry of the same name
replaces one)."""



@functools.cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes (pycountry), loaded on first use: a report whose SQL is cached and
    whose log has no region to judge never imports pycountry."""
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries)


NO_REGION = "(none)"
OTHER_REGIONS = "(other)"
MAX_REGIONS = 250
"""Regions listed one by one in ``by_region``; rarer values are summed under ``(other)``."""

FINDINGS = ("forwarded_without_consent", "consent_unknown")


@dataclass(frozen=True)
class Policy:
    """The resolved consent policy: required purposes by default and per region code."""

    default: tuple[str, ...]
    by_code: Mapping[str, tuple[str, ...]]
    rules: Mapping[str, tuple[str, ...]]
    groups: Mapping[str, tuple[str, ...]]

    def required_for(self, code: str | None) -> tuple[str, ...]:
        if code is None:
            return self.default
        return self.by_code.get(code, self.default)

    def as_dict(self) -> dict[str, Any]:
        used = {name: list(codes) for name, codes in self.groups.items() if name in self.rules}
        return {"default": list(self.default), "regions": {k: list(v) for k, v in self.rules.items()},
                "groups": used}


def _purposes(value: Any, where: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{source}: {where} must be a list of consent purposes, found {value!r}.")
    out: list[str] = []
    for p in value:
        if p not in CONSENT_PURPOSES:
            close = difflib.get_close_matches(p, CONSENT_PURPOSES, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else f" Valid: {', '.join(CONSENT_PURPOSES)}."
            raise ConfigError(f"{source}: unknown consent purpose '{p}' in {where}.{hint}")
        if p not in out:
            out.append(p)
    return tuple(out)


def _code(value: Any, where: str, source: str) -> str:
    code = str(value).strip().upper()
    if code not in country_codes():
        hint = " Use GB for the United Kingdom." if code == "UK" else ""
        raise ConfigError(f"{source}: '{value}' in {where} is not an ISO 3166-1 alpha-2 region code.{hint}")
    return code


def policy(config: Config) -> Policy:
    """The policy of ``config`` (defaults when it has no ``[consent]`` table), validated.

    Raises :class:`ConfigError` naming the key for an unknown purpose, region code or group.
    """
    opts = config.options(SECTION, DEFAULTS)
    src = config.source
    default = _purposes(opts["required"], "[consent] required", src)
    groups: dict[str, tuple[str, ...]] = dict(BUILTIN_GROUPS)
    for name, members in opts["groups"].items():
        if not isinstance(members, list):
            raise ConfigError(f"{src}: [consent.groups] {name} must be a list of region codes.")
        groups[name] = tuple(_code(m, f"[consent.groups] {name}", src) for m in members)
    rules: dict[str, tuple[str, ...]] = {}
    for key, purposes in opts["regions"].items():
        rules[key] = _purposes(purposes, f"[consent.regions] {key}", src)
    by_code: dict[str, tuple[str, ...]] = {}
    for key, purposes in rules.items():  # groups, in the order written; first group wins
        if key in groups:
            for code in groups[key]:
                by_code.setdefault(code, purposes)
    for key, purposes in rules.items():  # a code listed by itself wins over any group
        if key in groups:
            continue
        if key.strip().upper() in country_codes():
            by_code[key.strip().upper()] = purposes
            continue
        close = difflib.get_close_matches(key, list(groups), n=1)
        hint = f" Did you mean group '{close[0]}'?" if close else (
            " Use GB for the United Kingdom." if key.upper() == "UK" else
            " Define the group under [consent.groups] or use an ISO 3166-1 alpha-2 code.")
        raise ConfigError(f"{src}: [consent.regions] key '{key}' is neither a region code nor a group.{hint}")
    return Policy(default, by_code, rules, groups)


# -- measurement ---------------------------------------------------------------------------------

def evaluable(ds: Dataset) -> bool:
    """Whether the server log carried any consent column at all."""
    return any(ds.has("server", f"consent_{p}") for p in CONSENT_PURPOSES)


def _region(t: ir.Table, ds: Dataset) -> ir.StringValue:
    if not ds.has("server", "consent_region"):
        return ibis.null("string")
    r = t.consent_region.strip().upper()
    return ibis.ifelse(r == "", ibis.null("string"), r)


def annotate(ds: Dataset, pol: Policy) -> ir.Table:
    """Server rows with ``region``, ``req_<p>``, ``denied_<p>``, ``missing_<p>``, ``forwarded``,
    ``unknown`` and ``detail`` columns (the per-row measurement everything else aggregates)."""
    t = ds.events("server")
    region = _region(t, ds)
    # One policy id per distinct purpose set; region codes map to it with one CASE expression.
    sets: list[tuple[str, ...]] = []
    for purposes in (pol.default, *pol.by_code.values()):
        if purposes not in sets:
            sets.append(purposes)
    branches = []
    for i, purposes in enumerate(sets):
        codes = sorted(c for c, p in pol.by_code.items() if p == purposes)
        if codes and i > 0:
            branches.append((region.isin(codes).fill_null(False), i))
    pid = ibis.cases(*branches, else_=0) if branches else ibis.literal(0)
    cols: dict[str, Any] = {"region": region}
    denied_any: list[ir.BooleanValue] = []
    missing_any: list[ir.BooleanValue] = []
    detail_parts: list[ir.StringValue] = []
    for p in CONSENT_PURPOSES:
        ids = [i for i, purposes in enumerate(sets) if p in purposes]
        req = pid.isin(ids) if ids else ibis.literal(False)
        value = t[f"consent_{p}"]
        denied = req & (value == "denied").fill_null(False)
        missing = req & value.isnull()
        cols[f"req_{p}"] = req
        cols[f"denied_{p}"] = denied
        cols[f"missing_{p}"] = missing
        denied_any.append(denied)
        missing_any.append(missing)
        detail_parts.append(ibis.ifelse(denied, f"; {p} denied", ibis.ifelse(missing, f"; {p} missing", "")))
    forwarded = ibis.literal(False)
    for d in denied_any:
        forwarded = forwarded | d
    unknown_any = ibis.literal(False)
    for m in missing_any:
        unknown_any = unknown_any | m
    detail = detail_parts[0]
    for part in detail_parts[1:]:
        detail = detail.concat(part)
    cols["forwarded"] = forwarded
    cols["unknown"] = ~forwarded & unknown_any
    cols["detail"] = detail.re_replace(r"\A; ", "")
    return t.mutate(**cols)


def _empty_counts(ds: Dataset, reason: str) -> dict[str, Any]:
    return {
        "status": "not_evaluated", "reason": reason, "server_rows": ds.rows("server"),
        "consent_columns": [], "region_column": ds.has("server", "consent_region"),
        "forwarded_without_consent": None, "consent_unknown": None, "consent_ok": None,
        "unrecognized_region_rows": None, "by_region": {}, "by_purpose": {}, "examples": {},
    }


def analyze(ds: Dataset, config: Config, prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``consent`` section (see the module docstring for every definition)."""
    pol = policy(config)
    opts = config.options(SECTION, DEFAULTS)
    ds = ds.using(config)
    if not evaluable(ds):
        out = _empty_counts(ds, "The server log has no consent column (consent.ad_storage, "
                                "consent.ad_user_data...).")
        out["policy"] = pol.as_dict()
        return out
    a = LazyTable(lambda: annotate(ds, pol))
    totals = ds.fetch("consent.totals", lambda: a.aggregate(
        rows=a.count(),
        forwarded=a.forwarded.sum(),
        unknown=a.unknown.sum(),
        unrecognized=(a.region.notnull() & ~a.region.isin(sorted(country_codes()))).sum(),
        **{f"{k}_{p}": a[f"{k}_{p}"].sum() for p in CONSENT_PURPOSES for k in ("req", "denied", "missing")},
    ))[0]
    rows = int(totals["rows"])

    def n(key: str) -> int:
        v = totals[key]
        return 0 if v is None or v != v else int(v)

    by_purpose = {}
    for p in CONSENT_PURPOSES:
        req = n(f"req_{p}")
        by_purpose[p] = {"required_rows": req, "granted": req - n(f"denied_{p}") - n(f"missing_{p}"),
                         "denied": n(f"denied_{p}"), "missing": n(f"missing_{p}")}
        if not ds.has("server", f"consent_{p}"):
            by_purpose[p]["column_present"] = False
    regions = ds.fetch("consent.regions", lambda: (
        a.group_by(region=a.region.fill_null(NO_REGION))
        .aggregate(rows=a.count(), forwarded=a.forwarded.sum(), unknown=a.unknown.sum(),
                   known=a.region.isin(sorted(country_codes())).any())
        .order_by([ibis.desc("rows"), "region"])
    ))
    by_region: dict[str, dict[str, Any]] = {}
    other = {"rows": 0, "forwarded_without_consent": 0, "consent_unknown": 0}
    for i, rec in enumerate(regions):
        entry = {"rows": int(rec["rows"]), "forwarded_without_consent": int(rec["forwarded"] or 0),
                 "consent_unknown": int(rec["unknown"] or 0)}
        if i >= MAX_REGIONS:
            for k in other:
                other[k] += entry[k]
            continue
        code = None if rec["region"] == NO_REGION else rec["region"]
        entry["required"] = list(pol.required_for(code))
        entry["known_code"] = bool(rec["known"])  # judged in the query: no code list in Python
        by_region[rec["region"]] = entry
    if other["rows"]:
        by_region[OTHER_REGIONS] = other
    forwarded, unknown = n("forwarded"), n("unknown")
    return {
        "status": "evaluated",
        "reason": None,
        "server_rows": rows,
        "consent_columns": [p for p in CONSENT_PURPOSES if ds.has("server", f"consent_{p}")],
        "region_column": ds.has("server", "consent_region"),
        "policy": pol.as_dict(),
        "forwarded_without_consent": forwarded,
        "consent_unknown": unknown,
        "consent_ok": rows - forwarded - unknown,
        "unrecognized_region_rows": n("unrecognized"),
        "by_region": by_region,
        "by_purpose": by_purpose,
        "examples": _examples(ds, a, int(opts["examples"])),
    }


def _examples(ds: Dataset, a: ir.Table, limit: int) -> dict[str, list[dict[str, Any]]]:
    cols = ["source_file", "line", "event_name", "event_id", "event_time", "region",
            *[f"consent_{p}" for p in CONSENT_PURPOSES], "detail"]
    out: dict[str, list[dict[str, Any]]] = {}
    for finding, flag in (("forwarded_without_consent", "forwarded"), ("consent_unknown", "unknown")):
        rows = ds.fetch(f"consent.examples.{finding}", lambda flag=flag: a.filter(a[flag]).order_by(
            ["event_time", "file_index", "line"]).select(*cols).limit(limit))
        out[finding] = [mask_row(r) for r in rows]
    return out


def failing_rows(ds: Dataset, config: Config) -> ir.Table:
    """One row per server row forwarded without consent (``error``) or with unknown consent
    (``warning``); ``detail`` names the purposes, e.g. ``ad_user_data denied``."""
    pol = policy(config)
    ds = ds.using(config)
    a = annotate(ds, pol)
    if not evaluable(ds):
        a = a.filter(ibis.literal(False))
    finding = ibis.ifelse(a.forwarded, "forwarded_without_consent", "consent_unknown")
    severity = ibis.ifelse(a.forwarded, "error", "warning")
    out = a.filter(a.forwarded | a.unknown).select(
        section=ibis.literal(SECTION), finding=finding, severity=severity, role=ibis.literal("server"),
        source_file=a.source_file, line=a.line, event_name=a.event_name, event_id=a.event_id,
        detail=a.detail,
    )
    return out.select(*FAILING_ROW_COLUMNS)


def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One sentence with its fix per number of the section."""
    if result.get("status") == "not_evaluated":
        return [{"label": "Consent", "value": None,
                 "text": "Not evaluated: the server log carries no consent column, so nothing can be said "
                         "about events forwarded without consent.",
                 "fix": "Log the consent state (consent.ad_storage, consent.ad_user_data, consent.region) "
                        "with every server event."}]
    default = ", ".join(result["policy"]["default"]) or "nothing"
    return [
        {"label": labels.label("forwarded_without_consent"), "value": result["forwarded_without_consent"],
         "unit": "server row",
         "text": f"Server rows sent to Meta although a purpose their region's policy requires was denied "
                 f"(default policy: {default}).",
         "fix": "Gate the server-side send on the visitor's consent state, per region; drop or anonymise "
                "events whose required purposes are denied."},
        {"label": labels.label("consent_unknown"), "value": result["consent_unknown"], "unit": "server row",
         "text": "Server rows, not counted above, whose required consent purposes were missing or empty.",
         "fix": "Pass the CMP / Consent Mode state to the server with every event so that the decision to "
                "forward is recorded."},
        {"label": labels.label("unrecognized_region_rows"), "value": result["unrecognized_region_rows"],
         "unit": "server row",
         "text": "Rows whose consent_region is not an ISO 3166-1 alpha-2 code; they follow the default "
                 "policy.",
         "fix": "Log the visitor's region as a two-letter ISO code (DE, FR, US...)."},
    ]
