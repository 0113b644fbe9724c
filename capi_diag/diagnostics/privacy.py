"""Privacy: raw emails and phone numbers in places where Meta forbids personal data.

What it measures: the rows of each log that carry an email address or a phone number outside the
hashed ``user_data`` keys, per place, field and event name:

* ``url``: the query string of ``event_source_url`` or ``referrer_url`` (a browser log's ``dl`` /
  ``rl`` map to them), e.g. ``/thank-you?email=jane%40example.com``;
* ``custom_data``: custom data keys outside Meta's contract (``custom_data.billing_email``, and a
  Pixel hit's ``cd[...]`` parameters such as ``cd[user_data]``);
* ``unknown_column``: any other column of the log that capi-diag does not map.

An email is any address (also with ``%40`` for ``@``); a phone number is a number of 7 or more
characters that follows a key naming one (``phone``, ``billing_phone``, ``mobile``, ``tel``,
``ph``), since order ids and timestamps are digits too (:mod:`capi_diag.core.patterns`). A row is
counted once per place and field (at the first field of its place that holds such a value).

Why it matters for Meta CAPI: Meta's Business Tools Terms forbid sending personal information in
custom data, URLs or parameters other than the hashed customer-information keys. Meta flags such data
as "potentially violating" in Events Manager and may restrict the dataset (events dropped, ads
optimisation limited). Pixel custom data and page URLs are sent unhashed, so a raw email there is
the customer's email in the clear.

Usual cause and fix: a shop plugin or a data layer that copies the order's billing data into the
Pixel's custom data (``cd[user_data]``), a thank-you page whose URL carries the email as a query
parameter, a server that forwards the whole checkout object as custom data. Send emails and phones
only as ``user_data.em`` / ``ph`` (normalized, SHA-256), keep them out of ``custom_data`` and out of
URLs (strip the query parameter before it reaches the Pixel, or post the form instead of putting it
in the address).

The values themselves are never stored raw (the import stores them masked with a keyed fingerprint,
:mod:`capi_diag.engine.pii`); the examples show them masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from capi_diag.core import patterns
from capi_diag.core.config import Config
from capi_diag.core.schema import ROLES
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine import measures, pii
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.lazy import ibis, ir

SECTION = "privacy"
DEFAULTS: dict[str, Any] = {}
PLACES = ("url", "custom_data", "unknown_column")
FINDINGS = {"url": "personal_data_in_url", "custom_data": "personal_data_in_custom_data",
            "unknown_column": "personal_data_in_unknown_column"}
EXAMPLES = 20
MAX_FIELDS = 50
"""Rows of ``by_field`` kept (most rows first)."""

MASKED_EMAIL = r"[^\s\"\\&=*]?\*\*\*@[A-Za-z0-9.-]+(?:#|%23)[0-9a-f]{16}"
MASKED_PHONE = r"\*\*\*[0-9]{0,4}(?:#|%23)[0-9a-f]{16}"
EMAIL_ANY = f"(?:{patterns.EMAIL_IN_TEXT}|{MASKED_EMAIL})"
"""An email in a text: raw, or as the import stores it (masked + fingerprint)."""
PHONE_ANY = f"(?:{patterns.PHONE_KEY}[^0-9+(*]{{0,6}}(?:\\+|%2B|\\()?[0-9][0-9 ().%-]{{5,20}}[0-9]|{MASKED_PHONE})"
"""A phone number after a key naming one, raw or stored masked."""
VALUE = r'(?:[^"\\]|\\.)*'
"""The inside of a JSON string (escaped quotes included)."""
JSON_KEY_OF = {
    "email": f'"({VALUE})":"{VALUE}?{EMAIL_ANY}',
    "phone": (f'"({VALUE})":"{VALUE}?{PHONE_ANY}'
              f'|"({VALUE}{patterns.PHONE_KEY}{VALUE})":"(?:\\+|\\()?[0-9][0-9 ().-]{{5,20}}[0-9]"'),
}
"""In the JSON object of custom data or unknown columns: the key whose value holds an email / a phone
number (group 1), or a key naming a phone whose value is a number (group 2)."""
KIND_RE = {"email": EMAIL_ANY, "phone": PHONE_ANY}
URL_COLUMNS = ("event_source_url", "referrer_url")


def may_hold(col: ir.StringValue, kind: str) -> ir.BooleanValue:
    """A cheap test true of every text :data:`KIND_RE` ``[kind]`` can match, so the pattern runs only on
    those (the engine evaluates the cheap test first): an email holds ``@`` or ``%40``; a phone
    follows a key holding ``ph``, ``mobile``, ``msisdn`` or ``tel`` in any case, or is stored masked
    (``***``). ``ſ`` (long s) is let through too: the pattern's case-insensitive ``s`` matches it."""
    if kind == "email":
        return col.contains("@") | col.contains("%40")
    low = col.lower()
    return (low.contains("ph") | low.contains("mobile") | low.contains("msisdn") | low.contains("tel")
            | col.contains("***") | col.contains("\u017f"))


def _json_key(col: ir.StringValue, kind: str) -> ir.StringValue:
    one = col.re_extract(JSON_KEY_OF[kind], 1).nullif("")
    if kind == "email":
        return one.fill_null("?")
    return ibis.coalesce(one, col.re_extract(JSON_KEY_OF[kind], 2).nullif(""), ibis.literal("?"))


def _place_of(column: str, key: ir.StringValue) -> ir.StringValue:
    """``custom_data_extra`` keys are custom data; ``extra`` keys are custom data when they are a Pixel
    hit's ``cd[...]`` parameters or a ``custom_data`` header, else unknown columns."""
    if column == "custom_data_extra":
        return ibis.literal("custom_data")
    return ibis.cases((key.startswith("cd[") | key.startswith("cd%5B") | key.startswith("custom_data"),
                       "custom_data"), else_="unknown_column")


@measures.register("privacy_hits")
def _privacy_hits(ds: Dataset) -> ir.Table:
    """Every role's :func:`_hits` in one table, materialized once per scope: the counts, the examples
    and the failing rows all read it (the patterns run once over each text)."""
    return _hits(ds, "browser").union(_hits(ds, "server"))


def hits(ds: Dataset) -> ir.Table:
    """The ``privacy_hits`` measure (both roles; its ``role`` column tells them apart)."""
    return ds.measure("privacy_hits")


def _hits(ds: Dataset, role: str) -> ir.Table:
    """One row per (event row, place, field, kind) with personal data: role, place, field, kind
    (``email`` / ``phone``), event_name, event_id, source_file, line, row_id, excerpt (the first
    email / phone of that kind as found). A row counts once per field and kind, at the first field of
    its column that holds that kind."""
    t = ds.events(role)
    parts = []
    common = ("event_name", "event_id", "source_file", "line", "row_id")
    # a URL column the log never carried is null in every row: no part for it (the plan knows which
    # columns each log carried, so the compiled SQL differs when they do). Custom data and unknown
    # columns are gathered by the import, not carried under their own name: always read.
    urls = [c for c in URL_COLUMNS if ds.has(role, c)]
    for kind, pattern in KIND_RE.items():
        for col in urls:
            f = t.filter(t[col].notnull() & may_hold(t[col], kind) & t[col].re_search(pattern))
            parts.append(f.select(*common, place=ibis.literal("url"), field=ibis.literal(col),
                                  kind=ibis.literal(kind), excerpt=f[col].re_extract(f"({pattern})", 1)))
        for col in ("custom_data_extra", "extra"):
            f = t.filter(t[col].notnull() & may_hold(t[col], kind) & t[col].re_search(pattern))
            key = _json_key(f[col], kind)
            parts.append(f.select(*common, place=_place_of(col, key),
                                  field=(ibis.literal("custom_data.") + key if col == "custom_data_extra" else key),
                                  kind=ibis.literal(kind), excerpt=f[col].re_extract(f"({pattern})", 1)))
    u = parts[0]
    for p in parts[1:]:
        u = u.union(p)
    return u.mutate(role=ibis.literal(role))


_STORED_TAIL = re.compile(r"(?:#|%23)[0-9a-f]{16}\Z")
_PHONE_NUMBER = re.compile(r"(\+|%2B|\()?[0-9][0-9 ().%-]{5,20}[0-9]\Z")


def shown(excerpt: str | None) -> str | None:
    """An excerpt as shown: a stored form without its fingerprint, a raw email or phone masked
    (:func:`capi_diag.engine.pii.mask_value`); never the raw value."""
    if excerpt is None:
        return None
    text = excerpt.replace("%40", "@")
    if _STORED_TAIL.search(text):
        return _STORED_TAIL.sub("", text)
    if "@" in text:
        return pii.mask_value("em", text)
    number = _PHONE_NUMBER.search(text)
    return pii.mask_value("ph", number.group(0) if number else text)


_EXAMPLE_ORDER = ("source_file", "line", "field", "kind")


def _field_counts(ds: Dataset) -> ir.Table:
    h = hits(ds)
    return h.group_by(["role", "place", "field", "event_name"]).aggregate(
        rows=h.row_id.nunique(), email_rows=h.row_id.nunique(where=h.kind == "email"),
        phone_rows=h.row_id.nunique(where=h.kind == "phone"))


def _row_counts(ds: Dataset) -> ir.Table:
    """Rows with a hit per role (``part`` = the role) and per kind (``part`` = the kind, rows of
    both logs): one scan, two groupings."""
    h = hits(ds)
    per_role = h.group_by(part=h.role).aggregate(n=h.row_id.nunique())
    per_kind = h.group_by(part=h.kind).aggregate(n=(h.role + ":" + h.row_id.cast("string")).nunique())
    return ibis.union(per_role.mutate(by=ibis.literal("role")), per_kind.mutate(by=ibis.literal("kind")),
                      distinct=False)


def _examples(ds: Dataset) -> ir.Table:
    """The first :data:`EXAMPLES` hits of each role and place (by file, line, field and kind)."""
    h = hits(ds)
    h = h.mutate(_n=ibis.row_number().over(group_by=["role", "place"], order_by=list(_EXAMPLE_ORDER)))
    h = h.filter(h._n < EXAMPLES).order_by(["role", "place", *_EXAMPLE_ORDER])
    return h.select("role", "place", "source_file", "line", "event_name", "event_id", "field", "excerpt")


def analyze(ds: Dataset, config: Config, prior: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``privacy`` section: rows with an email or phone outside ``user_data``, per role, place,
    field and event name (``by_field``), totals per place, and masked examples per place. Three
    queries over the ``privacy_hits`` measure: the counts per field, the row counts per role and
    per kind, and the examples of every role and place."""
    out: dict[str, Any] = {"status": "evaluated", "reason": None}
    by_field = [{"role": r["role"], "place": r["place"], "field": r["field"], "event_name": r["event_name"],
                 "rows": int(r["rows"]), "email_rows": int(r["email_rows"]), "phone_rows": int(r["phone_rows"])}
                for r in ds.fetch("privacy.fields", lambda: _field_counts(ds))]
    counts = {(r["by"], r["part"]): int(r["n"] or 0) for r in ds.fetch("privacy.rows", lambda: _row_counts(ds))}
    rows = {role: counts.get(("role", role), 0) for role in ROLES}
    found = ds.fetch("privacy.examples", lambda: _examples(ds))
    examples: dict[str, list[dict[str, Any]]] = {FINDINGS[p]: [] for p in PLACES}
    for role in ROLES:  # each place's examples: the first role's first, as many as EXAMPLES
        for place in PLACES:
            for r in (r for r in found if r["role"] == role and r["place"] == place):
                if len(examples[FINDINGS[place]]) < EXAMPLES:
                    examples[FINDINGS[place]].append({
                        "role": role, "source_file": r["source_file"], "line": r["line"],
                        "event_name": r["event_name"], "event_id": r["event_id"], "field": r["field"],
                        "value": shown(r["excerpt"])})
    by_field.sort(key=lambda r: (-r["rows"], r["role"], r["place"], r["field"], str(r["event_name"])))
    out["rows"] = rows
    out["personal_data_rows"] = rows["browser"] + rows["server"]
    for place in PLACES:
        out[f"{place}_rows"] = sum(r["rows"] for r in by_field if r["place"] == place)
    for kind in KIND_RE:
        out[f"{kind}_rows"] = counts.get(("kind", kind), 0)
    out["by_field"] = by_field[:MAX_FIELDS]
    out["examples"] = examples
    if ds.rows("browser") + ds.rows("server") == 0:
        out["status"], out["reason"] = "not_evaluated", "Both logs are empty."
    return out


def failing_rows(ds: Dataset, config: Config) -> ir.Table:
    """One row per (event row, place, field) with personal data: ``personal_data_in_url`` /
    ``_in_custom_data`` / ``_in_unknown_column``, an error; ``detail`` is the field, never the value."""
    h = hits(ds)
    h = h.select("place", "field", "role", "source_file", "line", "event_name", "event_id", "row_id").distinct()
    finding = ibis.cases(*[(h.place == p, FINDINGS[p]) for p in PLACES])
    return h.select(section=ibis.literal(SECTION), finding=finding, severity=ibis.literal("error"),
                    role=h.role, source_file=h.source_file, line=h.line, event_name=h.event_name,
                    event_id=h.event_id, detail=h.field).select(*FAILING_ROW_COLUMNS)


PLACE_WORDS = {"url": "a URL (event_source_url / referrer_url)", "custom_data": "custom data",
               "unknown_column": "a column capi-diag does not map"}


def explain(result: Mapping[str, Any], config: Config | None = None) -> list[dict[str, Any]]:
    """One sentence per place, naming the fields and events."""
    out = []
    fix = ("Send emails and phone numbers only as user_data.em / ph (normalized, SHA-256); remove them from "
           "custom data and from page URLs (Meta may restrict a dataset that receives them).")
    for place in PLACES:
        n = int(result.get(f"{place}_rows") or 0)
        fields = [r for r in result.get("by_field", []) if r["place"] == place]
        named = ", ".join(f"{r['field']} on {r['event_name']} ({r['role']}, {r['rows']:,})" for r in fields[:5])
        out.append({
            "label": f"Rows with personal data in {PLACE_WORDS[place]}", "value": n, "unit": "row",
            "text": (f"{n:,} rows carry a raw email or phone number in {PLACE_WORDS[place]}: {named}."
                     if n else f"No email or phone number found in {PLACE_WORDS[place]}."),
            "fix": fix if n else "",
        })
    return out
