"""Value rules for ``user_data`` match keys, each written once as an Ibis expression builder.

Every format and hashing rule of Meta's customer-information parameters (docs/facts.md §4) lives here, as a
function from an Ibis string expression (one value) to a boolean expression. The ``match_keys`` and
``emq`` analyses, the ``contract`` check ``insufficient_user_data``, the dashboard and the Test Events
sender's local validation all read these functions, so a rule means the same thing everywhere.

Portability: the rules use only anchored regular expressions (``\\A...\\z``, RE2/Java/PCRE
compatible), prefixes, ``lower``/``substr``/``lpad`` and membership in small tables. No engine
extension (such as DuckDB's ``inet``) and no array lambdas are used, so the same expressions can
run on another Ibis backend.

Public API
----------
* :data:`MATCH_KEY_FIELDS`: the 15 fields the analyses score, in report order.
* :data:`DEFECTS`: for each field, its defect names in report order (value-level and row-level).
* :func:`value_defects` ``(field, value) -> {defect: BooleanValue}``: the value-level defects of one
  string value (``not_normalized`` uses an ``IN (subquery)`` against the allowed-hash table, which
  is fine for a column expression but not inside an array lambda).
* :func:`value_valid` ``(field, value) -> BooleanValue``: ``value`` is non-empty and has none of the
  field's invalidating defects.
* :func:`row_validity` ``(table, *, keep=(), fields=MATCH_KEY_FIELDS) -> ibis.Table``: one row per
  event row of ``table`` (a canonical events table) with the columns ``source_file, file_index,
  line, event_name, event_id`` plus ``keep``, and for each field ``<field>_present`` (at least one
  non-empty value), ``<field>_valid`` (present and every non-empty value passes) and one boolean
  ``<field>_<defect>`` per defect of :data:`DEFECTS` (the row has at least one value with it).
  Other ``user_data`` keys of :data:`capi_diag.core.patterns.USER_DATA_KEYS` (``subscription_id``,
  ``lead_id``...) may be listed in ``fields``: they have no format rule, so valid = present.
  This is how other analyses count rows by their *valid* keys (e.g. ``insufficient_user_data``):
  ``row_validity(ds.events("server"), keep=["action_source"])`` then filter on ``<field>_valid``.

Multi-valued cells: ``user_data`` columns are ``VARCHAR[]``; a value is *non-empty* when it is not
null and not only whitespace; a row is *valid* for a field when it has at least one non-empty value
and every non-empty value passes; a row can carry several defects, and each counts it once.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

from capi_diag.core.patterns import (
    APPENDIX,
    BLANK_RE,
    CONTEXT_KEYS,
    HASH_RE,
    HASHED_KEYS,
    MATCH_KEY_FIELDS,
    PLACEHOLDER_RE,
    SPACED_HASH_RE,
    USER_DATA_KEYS,
)

# re-exported: readers of the value rules (tests, scripts through capi_diag.rules) find every pattern here
from capi_diag.core.patterns import APPENDIX_TOKENS as APPENDIX_TOKENS
from capi_diag.core.patterns import LOWER_HASH_RE as LOWER_HASH_RE
from capi_diag.core.patterns import PLACEHOLDER_VALUES as PLACEHOLDER_VALUES
from capi_diag.core.patterns import TEMPLATES as TEMPLATES
from capi_diag.engine import runner
from capi_diag.engine.lazy import ibis, ir, pa

if TYPE_CHECKING:  # the dataset calls into this module; it is only a type here
    from capi_diag.engine.dataset import Dataset

HASHED_FIELDS: tuple[str, ...] = HASHED_KEYS
"""Fields Meta requires SHA-256 hashed (lowercase hex)."""
SET_FIELDS: tuple[str, ...] = ("ge", "country", "db")
"""Hashed fields whose normalized values form a small known set (checked by ``not_normalized``)."""
CONTEXT_FIELDS: tuple[str, ...] = CONTEXT_KEYS
"""Browser context keys that must never be hashed."""
ROW_COLUMNS: tuple[str, ...] = ("source_file", "file_index", "line", "event_name", "event_id")

FBP_RE = rf"\Afb\.[0-9]+\.[0-9]{{13}}\.[0-9]+(?:\.{APPENDIX})?\z"
"""``fb.<subdomain index>.<13-digit creation time ms>.<random digits>[.<appendix>]``."""
FBCLID = r"[A-Za-z0-9_-]+"
"""An fbclid as Meta issues it (URL-safe base64 characters); anything else was modified or encoded."""
FBC_RE = rf"\Afb\.[0-9]+\.[0-9]{{13}}\.{FBCLID}(?:\.{APPENDIX})?\z"
"""``fb.<subdomain index>.<13-digit creation time ms>.<fbclid>[.<appendix>]``."""
FBC_FBCLID_RE = rf"\Afb\.[0-9]+\.[0-9]{{13}}\.({FBCLID})(?:\.{APPENDIX})?\z"
URL_FBCLID_RE = r"\A[^?#]*\?(?:[^#]*&)?fbclid=([^&#]+)"
"""The first ``fbclid`` query parameter of a URL (before any ``#`` fragment)."""
JUNK_SOURCES: tuple[str, ...] = (
    " ", "null", "NULL", "Null", "undefined", "None", "none", "nil", "nan", "NaN", "n/a", "N/A",
    "unknown", "[object Object]", "-", "(not set)",
)
"""Texts whose SHA-256 is a *placeholder hash* (``hashed_placeholder``); the empty string has its
own defect, ``hashed_empty``."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


EMPTY_HASH = sha256_hex("")
"""SHA-256 of the empty string: a pipeline hashed a missing value."""
PLACEHOLDER_HASHES: tuple[str, ...] = tuple(sorted({sha256_hex(s) for s in JUNK_SOURCES}))

NON_BROWSER_TOKENS: tuple[str, ...] = (
    "python-requests", "python-urllib", "python-httpx", "aiohttp", "curl/", "wget", "libwww-perl",
    "node-fetch", "axios/", "undici", "go-http-client", "okhttp", "java/", "apache-httpclient",
    "postmanruntime", "insomnia/", "httpie/", "guzzlehttp", "faraday", "rest-client", "restsharp",
    "dart/", "scrapy",
)
"""Substrings (compared ignoring case) of HTTP-client user agents: a server forwarding its own
library's user agent instead of the visitor's browser user agent."""

DEFECTS: dict[str, tuple[str, ...]] = {
    **{f: ("unhashed", "uppercase_hash", "hashed_empty", "hashed_placeholder",
           "surrounding_whitespace", "placeholder") + (("not_normalized",) if f in SET_FIELDS else ())
       for f in HASHED_FIELDS},
    "external_id": ("unhashed", "hashed_empty", "hashed_placeholder", "placeholder"),
    "fbp": ("hashed", "malformed", "placeholder"),
    "fbc": ("hashed", "malformed", "placeholder", "missing_with_fbclid", "modified_fbclid"),
    "client_ip_address": ("hashed", "private", "malformed", "placeholder"),
    "client_user_agent": ("hashed", "non_browser", "placeholder"),
}
"""Defect names per field, in report order."""
ROW_DEFECTS: dict[str, tuple[str, ...]] = {"fbc": ("missing_with_fbclid", "modified_fbclid")}
"""Defects judged on the whole row (they need ``event_source_url``), not on one value."""
INVALIDATING: dict[str, frozenset[str]] = {
    **{f: frozenset(DEFECTS[f]) for f in HASHED_FIELDS},
    "external_id": frozenset({"hashed_empty", "hashed_placeholder", "placeholder"}),
    "fbp": frozenset({"hashed", "malformed", "placeholder"}),
    "fbc": frozenset({"hashed", "malformed", "placeholder"}),
    "client_ip_address": frozenset({"hashed", "private", "malformed", "placeholder"}),
    "client_user_agent": frozenset({"hashed", "non_browser", "placeholder"}),
}
"""Defects that make a value invalid. ``external_id`` ``unhashed`` (Meta accepts it raw) and the
row-level fbc defects are reported but leave the value valid."""
SEVERITY_ERROR: frozenset[tuple[str, str]] = frozenset(
    {(f, "unhashed") for f in HASHED_FIELDS}
    | {(f, "hashed") for f in CONTEXT_FIELDS}
    | {("fbc", "malformed")}
)
"""(field, defect) pairs Meta rejects or that break matching outright (severity ``error``)."""


def severity(field: str, defect: str) -> str:
    return "error" if (field, defect) in SEVERITY_ERROR else "warning"


# -- IP addresses ---------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
"""Dotted-quad IPv4 without leading zeros (``010.0.0.1`` is ambiguous: octal in some parsers)."""
_H = r"[0-9A-Fa-f]{1,4}"


def _ipv6_pattern() -> str:
    """Every textual IPv6 form of RFC 4291 §2.2 (full, ``::``-compressed, IPv4 tail), no zone id."""
    alts = [rf"(?:{_H}:){{7}}{_H}", rf"(?:{_H}:){{6}}{IPV4}"]
    for left in range(0, 8):
        head = "" if left == 0 else rf"(?:{_H}:){{{left - 1}}}{_H}"
        rest = 7 - left
        tail = "" if rest == 0 else rf"(?:{_H}(?::{_H}){{0,{rest - 1}}})?"
        alts.append(rf"{head}::{tail}")
    for left in range(0, 6):
        head = "" if left == 0 else rf"(?:{_H}:){{{left - 1}}}{_H}"
        alts.append(rf"{head}::(?:{_H}:){{0,{5 - left}}}{IPV4}")
    return "(?:" + "|".join(alts) + ")"


IPV6 = _ipv6_pattern()
IPV4_RE = rf"\A{IPV4}\z"
IPV6_RE = rf"\A{IPV6}\z"
IP_APPENDIX_RE = rf"\.{APPENDIX}\z"
IPV4_NOT_PUBLIC_RE = (
    r"\A(?:0|10|127)\.|\A100\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.|\A169\.254\.|"
    r"\A172\.(?:1[6-9]|2[0-9]|3[01])\.|\A192\.168\.|\A(?:22[4-9]|23[0-9]|24[0-9]|25[0-5])\."
)
"""0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.168/16, 224/4 (multicast), 240/4."""
IPV4_HEX_NOT_PUBLIC_RE = r"\A(?:00|0a|7f|e|f)|\A64[4-7]|\Aa9fe|\Aac1|\Ac0a8"
"""The same ranges on the high 16 bits of an IPv4 address written as 4 lowercase hex digits."""
IPV6_NOT_PUBLIC_RE = (
    r"\A[0:]*:0{0,3}1\z|\A[0:]+\z|\Af[cd][0-9a-f]{2}:|\Afe[89ab][0-9a-f]:|\Aff[0-9a-f]{2}:"
)
"""On a lowercased valid IPv6: ``::1``, ``::``, ``fc00::/7``, ``fe80::/10``, ``ff00::/8`` (multicast)."""
MAPPED_DOTTED_RE = rf"\A[0:]*:(?:ffff:)?({IPV4})\z"
"""IPv4-mapped (``::ffff:a.b.c.d``) or IPv4-compatible (``::a.b.c.d``) IPv6: group 1 is the IPv4."""
MAPPED_HEX_RE = r"\A[0:]*:ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}\z"
"""IPv4-mapped IPv6 in hex (``::ffff:c0a8:101``): group 1 holds the high 16 bits of the IPv4."""


def ip_core(v: ir.StringValue) -> ir.StringValue:
    """``v`` without a parameter-builder appendix (``203.0.113.7.AQQAAQIB`` -> ``203.0.113.7``)."""
    return v.re_replace(IP_APPENDIX_RE, "")


def _ipv6_not_public(low: ir.StringValue) -> ir.BooleanValue:
    """On a lowercased, syntactically valid IPv6: loopback, unspecified, ULA, link-local, multicast,
    or an IPv4-mapped / -compatible form of a non-public IPv4."""
    dotted = low.re_extract(MAPPED_DOTTED_RE, 1)
    high16 = low.re_extract(MAPPED_HEX_RE, 1).lpad(4, "0")
    return ibis.cases(
        (low.re_search(IPV6_NOT_PUBLIC_RE), True),
        (low.re_search(MAPPED_DOTTED_RE), dotted.re_search(IPV4_NOT_PUBLIC_RE)),
        (low.re_search(MAPPED_HEX_RE), high16.re_search(IPV4_HEX_NOT_PUBLIC_RE)),
        else_=False,
    )


def ip_kind(v: ir.StringValue) -> ir.StringValue:
    """``public``, ``private`` (any non-public range), ``hashed`` (hash-shaped) or ``malformed``
    (anything else, including ``ip:port``, bracketed IPv6, zone ids and comma-separated lists).
    An optional parameter-builder appendix is ignored."""
    core = ip_core(v)
    return ibis.cases(
        (core.re_search(IPV4_RE), ibis.ifelse(core.re_search(IPV4_NOT_PUBLIC_RE), "private", "public")),
        (core.re_search(IPV6_RE), ibis.ifelse(_ipv6_not_public(core.lower()), "private", "public")),
        (hash_shaped(v), "hashed"),
        else_="malformed",
    )


def ip_public(v: ir.StringValue) -> ir.BooleanValue:
    """``v`` (optionally with an appendix) is a syntactically valid, public IPv4 or IPv6 address."""
    return ip_kind(v) == "public"


# -- shared value predicates ------------------------------------------------------------------------

def nonempty(v: ir.StringValue) -> ir.BooleanValue:
    """Not null and not only whitespace."""
    return v.notnull() & ~v.re_search(BLANK_RE)


def hash_shaped(v: ir.StringValue) -> ir.BooleanValue:
    """64 hex digits (either case), optionally ``.`` + a parameter-builder appendix. Not trimmed."""
    return v.re_search(HASH_RE)


def hash_hex(v: ir.StringValue) -> ir.StringValue:
    """The 64 hex digits of a hash-shaped value, lowercased (the appendix dropped)."""
    return v.substr(0, 64).lower()


def hashed_empty(v: ir.StringValue) -> ir.BooleanValue:
    return hash_shaped(v) & (hash_hex(v) == EMPTY_HASH)


def hashed_placeholder(v: ir.StringValue) -> ir.BooleanValue:
    return hash_shaped(v) & hash_hex(v).isin(list(PLACEHOLDER_HASHES))


def placeholder(v: ir.StringValue) -> ir.BooleanValue:
    """A raw stand-in for "no value": ``undefined``, ``null``, ``[object Object]``, ``{{Email}}``..."""
    return v.re_search(PLACEHOLDER_RE)


NON_BROWSER_RE = "(?:" + "|".join(re.escape(t) for t in NON_BROWSER_TOKENS) + ")"
"""Any of :data:`NON_BROWSER_TOKENS` (one alternation: one pass over the text instead of one per token)."""


def non_browser(v: ir.StringValue) -> ir.BooleanValue:
    return v.lower().re_search(NON_BROWSER_RE)


def url_fbclid(url: ir.StringValue) -> ir.StringValue:
    """The ``fbclid`` query parameter of ``url`` ('' when there is none; the pattern is tried only
    on URLs that contain ``fbclid=`` at all, a plain substring search)."""
    return ibis.ifelse(url.contains("fbclid="), url.re_extract(URL_FBCLID_RE, 1), "").fill_null("")


def fbc_fbclid(v: ir.StringValue) -> ir.StringValue:
    """The fbclid segment of a valid ``fbc`` ('' otherwise)."""
    return v.re_extract(FBC_FBCLID_RE, 1).fill_null("")


# -- allowed values of ge / country / db ----------------------------------------------------------------

DB_FIRST = dt.date(1900, 1, 1)


def allowed_values(field: str, today: dt.date | None = None) -> tuple[str, ...]:
    """Normalized values Meta accepts for ``ge`` (f, m), ``country`` (ISO 3166-1 alpha-2, lowercase,
    from pycountry) and ``db`` (``YYYYMMDD`` from 1900-01-01 to ``today``, UTC)."""
    if field == "ge":
        return ("f", "m")
    if field == "country":
        import pycountry  # here, not at the top: a report whose SQL is cached never needs it (4 ms)

        return tuple(sorted(c.alpha_2.lower() for c in pycountry.countries))
    if field == "db":
        end = today or dt.datetime.now(dt.timezone.utc).date()
        days = (end - DB_FIRST).days + 1
        first = DB_FIRST.toordinal()
        return tuple(dt.date.fromordinal(first + i).isoformat().replace("-", "") for i in range(max(days, 0)))
    raise ValueError(f"{field!r} has no closed set of allowed values; use one of {', '.join(SET_FIELDS)}")


@functools.lru_cache(maxsize=8)
def _allowed_hashes(field: str, today: dt.date) -> tuple[str, ...]:
    return tuple(sha256_hex(x) for x in allowed_values(field, today))


def allowed_hashes(field: str, today: dt.date | None = None) -> frozenset[str]:
    """SHA-256 (lowercase hex) of every allowed value of ``field``; built once per field and day."""
    day = today or dt.datetime.now(dt.timezone.utc).date()
    return frozenset(_allowed_hashes(field, day))


@functools.lru_cache(maxsize=8)
def _allowed_table(field: str, today: dt.date) -> ir.Table:
    return ibis.memtable(pa.table({"h": pa.array(_allowed_hashes(field, today), pa.string())}))


def allowed_table(field: str, today: dt.date | None = None) -> ir.Table:
    """A one-column (``h``) in-memory table of :func:`allowed_hashes`, cached per field and day."""
    return _allowed_table(field, today or dt.datetime.now(dt.timezone.utc).date())


# -- per-field rules -----------------------------------------------------------------------------------

def _require(field: str) -> None:
    if field not in DEFECTS:
        raise ValueError(f"no value rule for {field!r}; fields with rules: {', '.join(MATCH_KEY_FIELDS)}")


def primitives(v: ir.StringValue, field: ir.StringValue, allowed: ir.BooleanValue) -> dict[str, ir.Value]:
    """The per-value primitives every rule is written in (see :func:`value_primitives`), for value
    ``v`` of ``field``; ``allowed`` says whether ``v``'s hash is an allowed ge/country/db value. The one
    definition behind both :func:`value_defects` and the stored value table."""
    return {
        "_sh": hash_shaped(v),
        "_emp": hashed_empty(v),
        "_phh": hashed_placeholder(v),
        "_upper": v.substr(0, 64) != v.substr(0, 64).lower(),
        "_fmt": ibis.cases((field == "fbp", v.re_search(FBP_RE)), (field == "fbc", v.re_search(FBC_RE)),
                           else_=False),
        "_plh": placeholder(v),
        "_spc": ibis.ifelse(field.isin(list(HASHED_FIELDS)), v.re_search(SPACED_HASH_RE), False),
        "_ipk": ibis.ifelse(field == "client_ip_address", ip_kind(v), ibis.null("string")),
        "_nb": ibis.ifelse(field == "client_user_agent", non_browser(v), False),
        "_seg": ibis.ifelse(field == "fbc", fbc_fbclid(v), ""),
        "_alw": allowed,
    }


def value_defects(field: str, v: ir.StringValue, *, today: dt.date | None = None) -> dict[str, ir.BooleanValue]:
    """The value-level defects of one non-empty string ``v`` of ``field``, by name (report order):
    the same rules as :func:`row_validity` (:func:`primitives` folded by :func:`_field_defects`).

    Callers combine them with :func:`nonempty`; the row-level fbc defects (``missing_with_fbclid``,
    ``modified_fbclid``) are in :func:`row_validity`, since they need ``event_source_url``.
    """
    _require(field)
    allowed = hash_hex(v).isin(allowed_table(field, today).h) if field in SET_FIELDS else ibis.literal(False)
    return _field_defects(field, SimpleNamespace(**primitives(v, ibis.literal(field), allowed)))


IMPLIED: dict[str, str] = {"surrounding_whitespace": "unhashed", "placeholder": "unhashed"}
"""For hashed fields, defects that imply another invalidating defect (skipped when computing
validity, which is the same by construction and cheaper)."""
_IMPLIED_CONTEXT: dict[str, str] = {"placeholder": "malformed"}


def _invalid(field: str, defects: Mapping[str, ir.BooleanValue]) -> ir.BooleanValue:
    implied = IMPLIED if field in HASHED_FIELDS else _IMPLIED_CONTEXT if field in ("fbp", "fbc",
                                                                                  "client_ip_address") else {}
    names = [n for n in defects if n in INVALIDATING[field]
             and not (n in implied and implied[n] in INVALIDATING[field])]
    out: ir.BooleanValue = defects[names[0]]
    for name in names[1:]:
        out = out | defects[name]
    return out


def value_valid(field: str, v: ir.StringValue, *, today: dt.date | None = None) -> ir.BooleanValue:
    """``v`` is non-empty and has none of the invalidating defects of ``field``."""
    return nonempty(v) & ~_invalid(field, value_defects(field, v, today=today))


# -- per-row validity ------------------------------------------------------------------------------------

ALLOWED_PREFIX = "capi_allowed_"
"""Name prefix of the lookup table of allowed ``ge``/``country``/``db`` hashes (``+ YYYYMMDD``): the
engine creates it on first use from :func:`allowed_lookup` (it holds data, so compiled SQL names it
instead of carrying it)."""


def allowed_lookup(suffix: str) -> pa.Table:
    """``(field, h)`` for every allowed hash of each field of :data:`SET_FIELDS` on the day ``suffix``
    names (``YYYYMMDD``), or of one field only (``YYYYMMDD_<field>``)."""
    day, _, only = suffix.partition("_")
    today = dt.date(int(day[:4]), int(day[4:6]), int(day[6:8]))
    fields, hashes = [], []
    for f in (only,) if only else SET_FIELDS:
        hs = _allowed_hashes(f, today)
        fields += [f] * len(hs)
        hashes += hs
    return pa.table({"field": pa.array(fields, pa.string()), "h": pa.array(hashes, pa.string())})


runner.LOOKUPS[ALLOWED_PREFIX] = allowed_lookup


def allowed_hash_table(today: dt.date | None = None, field: str | None = None) -> ir.Table:
    """The lookup of allowed hashes (``field``, ``h``) of every field of :data:`SET_FIELDS`, or of
    ``field`` only: a log without ``db`` values then never loads the 40,000 date hashes (the one-field
    lookups of ``ge`` and ``country`` hold 2 and about 250 rows)."""
    if field is not None and field not in SET_FIELDS:
        raise ValueError(f"no allowed values for {field!r}; fields with a set: {', '.join(SET_FIELDS)}")
    day = (today or dt.datetime.now(dt.timezone.utc).date()).strftime("%Y%m%d")
    name = f"{ALLOWED_PREFIX}{day}" + (f"_{field}" if field else "")
    return ibis.table(ibis.schema({"field": "string", "h": "string"}), name=name)


def _field_defects(f: str, b: ir.Table) -> dict[str, ir.BooleanValue]:
    """The defects of field ``f`` over the per-value primitives of :func:`row_validity`'s value table
    (each primitive is computed once per value; this only combines them)."""
    sh, plh = b._sh, b._plh
    if f in HASHED_FIELDS:
        empty, junk = b._emp, b._phh
        out = {"unhashed": ~sh, "uppercase_hash": sh & b._upper, "hashed_empty": empty,
               "hashed_placeholder": junk, "surrounding_whitespace": b._spc, "placeholder": plh}
        if f in SET_FIELDS:
            out["not_normalized"] = sh & ~b._upper & ~empty & ~junk & ~b._alw
        return out
    if f == "external_id":
        return {"unhashed": ~sh, "hashed_empty": b._emp, "hashed_placeholder": b._phh, "placeholder": plh}
    if f in ("fbp", "fbc"):
        ok = b._fmt
        return {"hashed": ~ok & sh, "malformed": ~ok & ~sh, "placeholder": ~ok & plh}
    if f == "client_ip_address":
        return {"hashed": b._ipk == "hashed", "private": b._ipk == "private",
                "malformed": b._ipk == "malformed", "placeholder": (b._ipk == "malformed") & plh}
    return {"hashed": sh, "non_browser": b._nb, "placeholder": plh}


DEFECT_BIT: dict[str, int] = {name: 1 << i for i, name in enumerate(dict.fromkeys(
    [d for ds_ in DEFECTS.values() for d in ds_]))}
"""One bit per defect name, for the per-value masks of :func:`row_validity`."""
INVALID_BITS: dict[str, int] = {f: sum(DEFECT_BIT[d] for d in INVALIDATING[f]) for f in DEFECTS}
"""Per field, the bits of its invalidating defects: a value (or a row, whose mask is the OR of its
values' masks) is invalid when its mask has one of them. The same as :func:`_invalid`, which skips
the defects of :data:`IMPLIED` only because another invalidating defect always comes with them."""


def value_primitives(table: ir.Table, fields: Sequence[str], *, today: dt.date | None = None,
                     multi_only: bool = False) -> ir.Table:
    """One row per non-empty ``user_data`` value of ``table``: ``_rid`` (the row's ``row_id``), ``_f``
    (the field), ``_v`` (the value), ``_url`` (the row's URL fbclid, for ``fbc`` values) and one column per primitive a
    rule needs, each computed once per value: ``_sh`` (hash-shaped), ``_emp`` / ``_phh`` (hash of the
    empty string / of a placeholder), ``_upper`` (uppercase hex), ``_fmt`` (a well-formed fbp/fbc),
    ``_plh`` (a placeholder text), ``_spc`` (a hash with surrounding whitespace), ``_ipk`` (the IP
    kind), ``_nb`` (an HTTP client's user agent), ``_seg`` (the fbclid of an fbc) and ``_alw`` (the
    hash of an allowed ge/country/db value). :func:`row_validity` folds it for the cells holding
    several values (the ``user_data_values`` measure stores it for every value, for readers that
    want it). ``multi_only``: only the values of
    cells holding several (:func:`row_validity` judges a single value in place)."""
    parts = []
    for f in fields:
        t = table.filter(table[f].length() > 1) if multi_only else table
        url = url_fbclid(t.event_source_url) if f == "fbc" else ibis.null("string")
        parts.append(t.select(_rid=t.row_id, _f=ibis.literal(f), _v=t[f].unnest(), _url=url))
    values = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    values = values.filter(nonempty(values._v))
    if not any(f in SET_FIELDS for f in fields):
        # no ge/country/db value: nothing to look up (and no lookup table to load, about 19 ms)
        return values.select(_rid=values._rid, _f=values._f, _v=values._v, _url=values._url,
                             **primitives(values._v, values._f, ibis.literal(False)))
    lookup = allowed_hash_table(today)
    j = values.left_join(lookup, [values._f == lookup.field, values._v.substr(0, 64).lower() == lookup.h])
    return j.select(_rid=j._rid, _f=j._f, _v=j._v, _url=j._url, **primitives(j._v, j._f, j.h.notnull()))


def folded(e: ir.Value) -> bool | ir.Value:
    """``e`` with its boolean literals folded: ``True``/``False`` when ``e`` is a constant made of
    literals (``NOT``, ``AND``, ``OR``, ``=`` and ``!=`` of literals), else ``e`` with its constant
    operands dropped (``x AND TRUE`` is ``x``). Exact under SQL's three-valued logic, since a literal
    is never null. :func:`single_value_mask` gives many primitives as literals (a lowercase hash is
    not ``uppercase_hash``): folding them keeps ``CASE WHEN NOT (TRUE) THEN 1 ELSE 0 END`` out of the
    SQL, which DuckDB folds too, but only after parsing and binding it (the ``server_validity``
    statement of a one-row report: 60 → 52 KB, about 5 ms less)."""
    from ibis.expr import operations as ops

    op = e.op()
    if isinstance(op, ops.Literal):
        return op.value if isinstance(op.value, bool) else e
    if isinstance(op, ops.Not):
        a = folded(op.arg.to_expr())
        return (not a) if isinstance(a, bool) else ~a
    if isinstance(op, (ops.And, ops.Or)):
        left, right = folded(op.left.to_expr()), folded(op.right.to_expr())
        absorbing = isinstance(op, ops.Or)  # TRUE absorbs an OR, FALSE an AND
        if left is absorbing or right is absorbing:
            return absorbing
        if isinstance(left, bool):
            return right
        if isinstance(right, bool):
            return left
        return left | right if absorbing else left & right
    if isinstance(op, (ops.Equals, ops.NotEquals)) and all(isinstance(x, ops.Literal) for x in (op.left, op.right)):
        same = op.left.value == op.right.value
        return same if isinstance(op, ops.Equals) else not same
    return e


def value_mask(f: str, b: object) -> ir.IntegerValue:
    """The defect bits of one value of field ``f`` from its primitives ``b`` (whether the value is
    invalid is read off them: :data:`INVALID_BITS`); the defects that are constant for these
    primitives (:func:`folded`) are added as one number, and the impossible ones left out."""
    defects = _field_defects(f, b)
    if f == "fbc":
        seg, url_id = b._seg, b._url
        defects = {**defects, "modified_fbclid": (url_id != "") & (seg != "") & (seg != url_id)
                   & (seg.lower() == url_id.lower())}
    const, bits = 0, []
    for name, expr in defects.items():
        c = folded(expr)
        if c is True:
            const += DEFECT_BIT[name]
        elif c is not False:
            bits.append(ibis.ifelse(c, DEFECT_BIT[name], 0))
    if not bits:
        return ibis.literal(const, "int64")
    mask = bits[0]
    for bit in bits[1:]:
        mask = mask + bit
    return mask + const if const else mask


def _fold_values(b: ir.Table, scanned: Sequence[str]) -> ir.Table:
    """Per row (``_rid2``): ``_<field>_m``, the OR of the masks of the field's values in ``b`` (a
    :func:`value_primitives` table), null when the row has none."""
    masks = [(b._f == f, value_mask(f, b)) for f in scanned if f in DEFECTS]
    m = b.mutate(_m=ibis.cases(*masks, else_=0) if masks else ibis.literal(0))
    per_field = m.group_by(["_rid", "_f"]).aggregate(_m=m._m.bit_or())
    return per_field.group_by(_rid2=per_field._rid).aggregate(
        **{f"_{f}_m": ibis.ifelse(per_field._f == f, per_field._m, ibis.null("int64")).max()
           for f in scanned})


def single_value_mask(f: str, v: ir.StringValue, *, alw: ir.BooleanValue | None = None,
                 ipk: ir.StringValue | None = None, seg: ir.StringValue | None = None,
                 url: ir.StringValue | None = None) -> ir.IntegerValue:
    """The defect bits of the value ``v`` of field ``f`` (null when ``v`` is null or blank): the same
    as :func:`value_mask` over :func:`primitives`, but each pattern is tested only on the values that
    can still match it (``CASE`` branches are evaluated only on the rows that reach them):

    * a hash-shaped value (:data:`HASH_RE`) is not blank, not a placeholder and has no surrounding
      whitespace (its characters are ``[0-9A-Za-z._-]``); a lowercase one (:data:`LOWER_HASH_RE`)
      is hash-shaped and not ``uppercase_hash``, its hex part needs no ``lower``;
    * surrounding whitespace needs more than 64 characters;
    * a well-formed fbp/fbc is neither hashed, malformed nor a placeholder, whatever it looks like;
    * an IP's kind is given (``ipk``, computed once per value); only a malformed one can be a
      placeholder.

    ``alw`` (``ge``/``country``/``db``): ``v``'s hash is an allowed value; ``seg``/``url`` (``fbc``):
    the fbclid of ``v`` (may be '' when ``url`` is '') and of the row's URL."""
    T, F = ibis.literal(True), ibis.literal(False)
    null = ibis.null("int64")

    def mask(**prims: ir.Value) -> ir.IntegerValue:
        return value_mask(f, SimpleNamespace(**{"_sh": None, **prims}))

    blank = v.re_search(BLANK_RE)
    if f in HASHED_FIELDS or f == "external_id":
        hexpart = v.substr(0, 64)
        allowed = alw if alw is not None else F

        def hashed(hx: ir.StringValue, upper: ir.BooleanValue) -> ir.IntegerValue:
            return mask(_sh=T, _upper=upper, _emp=hx == EMPTY_HASH, _phh=hx.isin(list(PLACEHOLDER_HASHES)),
                        _spc=F, _plh=F, _alw=allowed)

        spc = ibis.ifelse(v.length() > 64, v.re_search(SPACED_HASH_RE), False)
        return ibis.cases(
            (v.isnull(), null),
            (v.re_search(LOWER_HASH_RE), hashed(hexpart, F)),
            (v.re_search(HASH_RE), hashed(hexpart.lower(), T)),
            (blank, null),
            else_=mask(_sh=F, _upper=F, _emp=F, _phh=F, _spc=spc, _plh=placeholder(v), _alw=F),
        )
    if f in ("fbp", "fbc"):
        extra = {"_seg": seg, "_url": url} if f == "fbc" else {}
        none = {"_seg": ibis.literal(""), "_url": url} if f == "fbc" else {}
        return ibis.cases(
            (v.isnull(), null),
            (v.re_search(FBP_RE if f == "fbp" else FBC_RE), mask(_fmt=T, _sh=F, _plh=F, **extra)),
            (v.re_search(HASH_RE), mask(_fmt=F, _sh=T, _plh=F, **none)),
            (blank, null),
            else_=mask(_fmt=F, _sh=F, _plh=placeholder(v), **none),
        )
    if f == "client_ip_address":
        return ibis.cases(
            (v.isnull(), null),
            *((ipk == kind, mask(_ipk=ibis.literal(kind), _plh=F)) for kind in ("public", "private", "hashed")),
            (blank, null),
            else_=mask(_ipk=ibis.literal("malformed"), _plh=placeholder(v)),
        )
    return ibis.cases(  # client_user_agent
        (v.isnull(), null),
        (blank, null),
        else_=mask(_sh=hash_shaped(v), _nb=non_browser(v), _plh=placeholder(v)),
    )


def ip_kind_fast(v: ir.StringValue) -> ir.StringValue:
    """:func:`ip_kind`, trying the plain addresses first (nearly every value): an IPv4 or IPv6
    address carries no appendix (its text ends with 1-3 digits or with a hex group after ``:``), so it
    is its own core; and a valid IPv6 can only be non-public (:func:`_ipv6_not_public`: every one of
    its patterns starts with ``0``, ``:`` or ``f``) when its text starts with one of those."""
    low = v.lower()
    v6_private = ibis.ifelse(low.substr(0, 1).isin(["0", ":", "f"]), _ipv6_not_public(low), False)
    return ibis.cases(
        (v.re_search(IPV4_RE), ibis.ifelse(v.re_search(IPV4_NOT_PUBLIC_RE), "private", "public")),
        (v.re_search(IPV6_RE), ibis.ifelse(v6_private, "private", "public")),
        else_=ip_kind(v),
    )


BY_DISTINCT_VALUE: frozenset[str] = frozenset({"client_user_agent"})
"""Fields whose single values :func:`row_validity` judges once per distinct value (a log carries a few
thousand user agents over a million rows, and the non-browser pattern reads the whole text)."""


def fbclid_in_url(url: ir.StringValue) -> ir.BooleanValue:
    """``url_fbclid(url) != ''``, without extracting it: the pattern's group is one or more
    characters, so it is non-empty exactly when the pattern matches (a match is much cheaper than an
    extraction)."""
    return ibis.ifelse(url.contains("fbclid="), url.re_search(URL_FBCLID_RE), False).fill_null(False)


def _validity_in_place(table: ir.Table, keep_cols: Sequence[str], scanned: Sequence[str], has_fbc: bool,
                       today: dt.date | None, multi: Collection[str] | None = None) -> ir.Table:
    """``keep_cols``, ``_fbclid_in_url`` and ``_<field>_m`` per row of ``table``: a cell with one value
    is judged in place (:func:`single_value_mask`: one guarded ``CASE`` per field); only the cells holding
    several values are unnested (:func:`value_primitives` ``multi_only``) and folded
    (:func:`_fold_values`), and only those of the fields in ``multi`` when it is given (the columns
    known to hold such a cell: for the others that part of the query is left out). No value table is
    stored."""
    ruled = [f for f in scanned if f in DEFECTS]
    pre: dict[str, ir.Value] = {c: table[c] for c in keep_cols}
    if has_fbc:
        pre["_fbclid_in_url"] = fbclid_in_url(table.event_source_url)
    for f in scanned:
        pre[f"_{f}_n"] = table[f].length().fill_null(0)
        pre[f"_{f}_v"] = table[f][0]
    if "fbc" in ruled:  # the URL's fbclid, extracted only where a single fbc may be compared with it
        pre["_fbc_url"] = ibis.ifelse(fbclid_in_url(table.event_source_url) & (table.fbc.length() == 1),
                                      url_fbclid(table.event_source_url), "")
    base = table.select(**pre)
    if not scanned:
        return base
    prim: dict[str, ir.Value] = {}
    for f in ruled:  # values a rule reads several times: one column each
        v = base[f"_{f}_v"]
        if f in SET_FIELDS:
            prim[f"_{f}_alw"] = hash_hex(v).isin(allowed_hash_table(today, f).h)
        if f == "client_ip_address":
            prim[f"_{f}_ipk"] = ip_kind_fast(v)
        if f == "fbc":
            prim["_fbc_seg"] = ibis.ifelse(base._fbc_url != "", fbc_fbclid(v), "")
    stage = base.mutate(**prim) if prim else base
    by_value: dict[str, str] = {}
    for f in ruled:  # few distinct values, costly rules: judge each distinct value once, join back
        if f not in BY_DISTINCT_VALUE:
            continue
        col = f"_{f}_v"
        d = base.select(col).distinct()
        d = d.select(**{f"_{f}_dv": d[col], f"_{f}_dm": single_value_mask(f, d[col])})
        stage = stage.left_join(d, stage[col] == d[f"_{f}_dv"]).drop(f"_{f}_dv")
        by_value[f] = f"_{f}_dm"
    masks: dict[str, ir.Value] = {}
    for f in scanned:
        n, v = stage[f"_{f}_n"], stage[f"_{f}_v"]
        if f not in DEFECTS:
            masks[f"_{f}_s"] = ibis.ifelse((n == 1) & nonempty(v), 0, ibis.null("int64"))
            continue
        if f in by_value:
            masks[f"_{f}_s"] = ibis.ifelse(n == 1, stage[by_value[f]], ibis.null("int64"))
            continue
        single = single_value_mask(
            f, v, alw=stage[f"_{f}_alw"] if f in SET_FIELDS else None,
            ipk=stage[f"_{f}_ipk"] if f == "client_ip_address" else None,
            seg=stage._fbc_seg if f == "fbc" else None,
            url=stage._fbc_url if f == "fbc" else None)
        masks[f"_{f}_s"] = ibis.ifelse(n == 1, single, ibis.null("int64"))
    url_col = ["_fbclid_in_url"] if has_fbc else []
    g = stage.select(*keep_cols, *url_col, *(f"_{f}_n" for f in scanned), **masks)
    unnested = [f for f in scanned if multi is None or f in multi]
    if not unnested:  # every cell holds at most one value: its mask is the single value's
        return g.select(*keep_cols, *url_col, **{f"_{f}_m": g[f"_{f}_s"] for f in scanned})
    per = _fold_values(value_primitives(table, unnested, today=today, multi_only=True), unnested)
    g = g.left_join(per, g.row_id == per._rid2)
    return g.select(*keep_cols, *url_col,
                    **{f"_{f}_m": ibis.ifelse(g[f"_{f}_n"] > 1, g[f"_{f}_m"], g[f"_{f}_s"]) if f in unnested
                       else g[f"_{f}_s"] for f in scanned})


def _check_fields(fields: Sequence[str]) -> None:
    for f in fields:
        if f not in DEFECTS and f not in USER_DATA_KEYS:
            raise ValueError(f"unknown user_data field {f!r}")


def row_masks(table: ir.Table, *, keep: Iterable[str] = (), fields: Sequence[str] = MATCH_KEY_FIELDS,
              today: dt.date | None = None, absent: Iterable[str] = (),
              values: ir.Table | None = None, multi: Collection[str] | None = None) -> ir.Table:
    """The compact form of :func:`row_validity` (same arguments): ``row_id``, :data:`ROW_COLUMNS`,
    ``keep``, ``_fbclid_in_url`` (when ``fbc`` is in ``fields``) and, per scanned field,
    ``_<field>_m``: the OR of the defect bits of its non-empty values (null when it has none).
    ``multi``: the fields whose cells may hold several values (:attr:`Dataset.multi
    <capi_diag.engine.dataset.Dataset.multi>`; ``None``: any may); the others are judged in place only.
    :func:`flags_from_masks` turns it into :func:`row_validity`'s flags; storing this instead of the
    flags stores 13 integers instead of about 140 booleans per row."""
    fields = tuple(fields)
    _check_fields(fields)
    keep_cols = tuple(dict.fromkeys(("row_id", *ROW_COLUMNS, *keep)))
    skip = set(absent)
    scanned = [f for f in fields if f not in skip]
    has_fbc = "fbc" in fields
    if values is not None and scanned:
        # a stored value table (every value unnested): fold it as the multi-valued cells
        per = _fold_values(values, scanned)
        pre: dict[str, ir.Value] = {c: table[c] for c in keep_cols}
        if has_fbc:
            pre["_fbclid_in_url"] = fbclid_in_url(table.event_source_url)
        base = table.select(**pre)
        g = base.left_join(per, base.row_id == per._rid2)
    else:
        g = _validity_in_place(table, keep_cols, scanned, has_fbc, today, multi)
    return g.select(*keep_cols, *(["_fbclid_in_url"] if has_fbc else []), *(f"_{f}_m" for f in scanned))


def flags_from_masks(g: ir.Table, *, keep: Iterable[str] = (), fields: Sequence[str] = MATCH_KEY_FIELDS,
                     absent: Iterable[str] = ()) -> ir.Table:
    """:func:`row_validity`'s table from a :func:`row_masks` table ``g`` made with the same ``keep``,
    ``fields`` and ``absent`` (a few bit tests per flag)."""
    fields = tuple(fields)
    keep_cols = tuple(dict.fromkeys(("row_id", *ROW_COLUMNS, *keep)))
    skip = set(absent)
    out: dict[str, ir.Value] = {c: g[c] for c in keep_cols}
    false = ibis.literal(False)
    for f in fields:
        if f in skip:
            out[f"{f}_present"] = out[f"{f}_valid"] = false
            for name in DEFECTS.get(f, ()):
                out[f"{f}_{name}"] = g._fbclid_in_url if name == "missing_with_fbclid" else false
            continue
        mask = g[f"_{f}_m"]
        present = mask.notnull()
        out[f"{f}_present"] = present
        if f not in DEFECTS:
            out[f"{f}_valid"] = present
            continue
        out[f"{f}_valid"] = present & ((mask.fill_null(0) & INVALID_BITS[f]) == 0)
        for name in DEFECTS[f]:
            if f == "fbc" and name == "missing_with_fbclid":
                out[f"{f}_{name}"] = g._fbclid_in_url & ~present
            else:
                out[f"{f}_{name}"] = (mask.fill_null(0) & DEFECT_BIT[name]) != 0
    return g.select(**out)


def row_validity(table: ir.Table, *, keep: Iterable[str] = (), fields: Sequence[str] = MATCH_KEY_FIELDS,
                 today: dt.date | None = None, absent: Iterable[str] = (),
                 values: ir.Table | None = None) -> ir.Table:
    """One row per row of ``table`` with ``<field>_present``, ``<field>_valid`` and
    ``<field>_<defect>`` booleans (see the module docstring), plus ``row_id``, :data:`ROW_COLUMNS`
    and ``keep``.

    Without unnesting every value: a cell holding one value (nearly all of them) is judged in
    place, by one guarded ``CASE`` per field folded into one integer of defect bits
    (:func:`single_value_mask`); only cells holding several values are unnested (:func:`value_primitives`
    ``multi_only``), their masks OR-ed per row and field and joined back by ``row_id``. (With
    ``values``, a stored :func:`value_primitives` table of every value, that table is folded instead.)
    Fields listed in ``absent`` (the log has no such column:
    :meth:`Dataset.has`) get constant false columns without being scanned. ``table`` needs a unique
    ``row_id`` (every canonical table has one). It is :func:`flags_from_masks` over :func:`row_masks`.
    """
    keep = tuple(keep)
    g = row_masks(table, keep=keep, fields=fields, today=today, absent=absent, values=values)
    return flags_from_masks(g, keep=keep, fields=fields, absent=absent)


SHARED_KEEP: tuple[str, ...] = (
    "event_time", "value", "currency", "action_source", "event_source_url", "test_event_code",
)
"""Server columns kept beside the flags in the ``server_validity`` measure (what match_keys, emq and
contract read; the value lists stay in the events table, joined by ``row_id`` where shown)."""


def server_fields(ds: Dataset) -> list[str]:
    """The ``user_data`` keys the server log carried (the others are not scanned)."""
    return [f for f in USER_DATA_KEYS if ds.has("server", f)]


def server_values_expr(ds: Dataset) -> ir.Table:
    """:func:`value_primitives` of the dataset's server rows (the ``user_data_values`` measure)."""
    return value_primitives(ds.events("server"), server_fields(ds))


def value_rows(table: ir.Table, fields: Sequence[str]) -> ir.Table:
    """``(_rid, _f, _v)``: one row per non-empty value of ``fields`` in ``table`` (no rule evaluated;
    read once where it is needed, never stored)."""
    parts = [table.select(_rid=table.row_id, _f=ibis.literal(f), _v=table[f].unnest()) for f in fields]
    values = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return values.filter(nonempty(values._v))


def server_validity_expr(ds: Dataset) -> ir.Table:
    """:func:`row_masks` of the dataset's server rows over every ``user_data`` key, keeping
    :data:`SHARED_KEEP` (the ``server_validity`` measure of :mod:`capi_diag.engine.measures`), judged
    over the list columns in place (no value table is stored). Readers see its flags through
    :func:`server_validity`."""
    present = server_fields(ds)
    absent = [f for f in USER_DATA_KEYS if f not in present]
    return row_masks(ds.events("server"), keep=SHARED_KEEP, fields=USER_DATA_KEYS, absent=absent,
                     multi=ds.multi_valued("server"))


@runner.per_plan
def server_validity(ds: Dataset) -> ir.Table:
    """:func:`row_validity` of the dataset's server rows over every ``user_data`` key, keeping
    :data:`SHARED_KEEP`: the flags over the shared ``server_validity`` measure (its compact
    :func:`row_masks` form, materialized once per scope by the engine), derived where they are read."""
    present = server_fields(ds)
    absent = [f for f in USER_DATA_KEYS if f not in present]
    return flags_from_masks(ds.measure("server_validity"), keep=SHARED_KEEP, fields=USER_DATA_KEYS,
                            absent=absent)


def defect_columns(fields: Sequence[str] = MATCH_KEY_FIELDS) -> list[tuple[str, str, str]]:
    """``(field, defect, column)`` for every defect column :func:`row_validity` produces."""
    return [(f, d, f"{f}_{d}") for f in fields if f in DEFECTS for d in DEFECTS[f]]


def explode_defects(rv: ir.Table, fields: Sequence[str] = MATCH_KEY_FIELDS,
                    keep: Sequence[str] = ROW_COLUMNS,
                    include: Callable[[str, str], bool] | None = None) -> ir.Table:
    """One row per (row of ``rv``, defect it carries): ``keep`` columns plus ``field`` and ``defect``.

    ``rv`` is a :func:`row_validity` table; ``include(field, defect)`` may restrict the defects.
    """
    cols = [(f, d, c) for f, d, c in defect_columns(fields) if include is None or include(f, d)]
    codes = ibis.array([ibis.ifelse(rv[c], ibis.literal(f"{f}|{d}"), ibis.null("string"))
                        for f, d, c in cols])
    t = rv.select(*keep, _code=codes).unnest("_code")
    t = t.filter(t._code.notnull())
    return t.select(*keep, field=t._code.re_extract(r"\A([^|]*)\|", 1),
                    defect=t._code.re_extract(r"\|([^|]*)\z", 1))
