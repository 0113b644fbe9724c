"""Raw PII: masked at rest by the import, and masked for display.

**At rest.** An ``em`` or ``ph`` value that the value rules (:mod:`capi_diag.engine.rules`) would call
``unhashed`` (not empty, not hash-shaped, not a hash with stray spaces, not a placeholder such as
``null``) is raw customer data. The import never stores it: it stores its masked form (as
:func:`mask_value` shows it) followed by ``#`` and a 16-hex-digit *fingerprint*, e.g.
``j***@example.com#5e0c1a9b27d4f3e8``. The fingerprint is the SHA-256 of the raw value under a random
key held by the open :class:`~capi_diag.engine.db.Database` only (never written anywhere, gone when it
closes), so a database file (``--db``) or a session database can be shared without exposing the
value, and cannot be matched against a list of known emails. What the stored form keeps:

* its defect flags: the rules classify the masked form exactly as the raw value (``unhashed``, and
  nothing else: a masked form is never blank, hash-shaped, spaced or a placeholder), so every count
  of ``match_keys``, ``emq`` and ``contract`` is unchanged;
* equality: equal raw values (within one import, both logs) have equal stored forms and different
  ones differ (a 64-bit fingerprint), so repeated values and browser/server mismatches count alike.

**For display.** Wherever a value is shown (report examples, the dashboard, CSV downloads of example
rows) it passes through :func:`mask_value`: a stored form loses its fingerprint, a raw value of a PII
field is masked (``j***@example.com``, ``***1212``, ``M***``). Hash-shaped values and browser context
keys are shown as they are: they are not personal data in the clear.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from capi_diag.core import patterns

HASH_RE = patterns.SHA256_RE
"""A hash-shaped value (Python): shown as it is."""
PII_FIELDS = frozenset({"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "external_id"})
"""Fields whose raw (unhashed) values are personal data. ``country`` alone is not masked."""
MASKED_AT_REST: tuple[str, ...] = ("em", "ph", "fn", "ln")
"""Fields whose unhashed values the import stores masked (with a fingerprint)."""
SCRUBBED_URLS: tuple[str, ...] = ("event_source_url", "referrer_url")
"""Text fields (besides custom data and unknown columns) stored with emails and phones masked inside."""
FINGERPRINT_HEX = 16
_FP = rf"#[0-9a-f]{{{FINGERPRINT_HEX}}}\Z"
STORED_RE: dict[str, re.Pattern[str]] = {
    "em": re.compile(rf"\A(.?\*\*\*(?:@.*)?){_FP}", re.DOTALL),
    "ph": re.compile(rf"\A(\*\*\*(?:\d{{4}})?){_FP}"),
    "fn": re.compile(rf"\A(.?\*\*\*){_FP}", re.DOTALL),
    "ln": re.compile(rf"\A(.?\*\*\*){_FP}", re.DOTALL),
}
"""A value as the import stores it, per field: its masked form (group 1), ``#``, the fingerprint."""


def mask_value(field: str, value: Any) -> Any:
    """``value`` masked if ``field`` holds personal data and the value is not hash-shaped; a value
    stored masked by the import is shown without its fingerprint."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [mask_value(field, v) for v in value]
    text = str(value)
    if field not in PII_FIELDS or HASH_RE.match(text.strip()) or not text.strip():
        return value
    stored = STORED_RE[field].match(text) if field in STORED_RE else None
    if stored:
        return stored.group(1)
    if field == "em" and "@" in text:
        local, _, domain = text.strip().partition("@")
        return f"{local[:1]}***@{domain}"
    if field == "ph":
        digits = re.sub(r"\D", "", text)
        return f"***{digits[-4:]}" if len(digits) > 4 else "***"
    if field in ("db", "ge"):
        return "***"
    return f"{text.strip()[:1]}***"


def mask_row(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` (canonical column names) with every PII column masked."""
    return {k: mask_value(k, v) for k, v in row.items()}


PY_SPACE = r"[\s\v\p{Z}\x{1c}-\x{1f}\x{85}]"
"""What Python's ``str.strip()`` removes, as an RE2 class (so SQL masks exactly as :func:`mask_value`)."""
DISPLAY_OF: dict[str, str] = {"em": "em", "ph": "ph"}
"""The masked form of each field (``capi_pii_display_<form>``; any other field: ``other``)."""
PY_SPACE_CHARS = "".join(map(chr, (
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000)))
"""The same 29 characters listed (``tests/test_pii.py`` checks both against ``str.isspace``), for DuckDB's
``trim(v, chars)``, which strips exactly what Python's ``strip()`` does at both ends. It is not faster
than a pattern: on 1M values, inside a list lambda as in the import, ``trim(v, chars)`` took 0.16 s CPU
and a ``regexp_replace`` 0.13 s (outside a lambda 0.13 and 0.10 s; a lambda alone costs about 0.04 s)."""


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_macros(key: str) -> list[str]:
    """DuckDB macros the import uses to store personal data: ``capi_pii_at_rest(field, v)`` (``em``, ``ph``, ``fn``,
    ``ln``; ``capi_pii_at_rest_<field>(v)`` is the same for one field, with only that field's masked form, which
    the import applies inside its list lambdas: on 1M values there, a third of them raw emails, it took 1.82 s CPU
    against 2.18 s for the macro that picks the form by field) is ``v`` unless the value rules call it
    unhashed, else its masked form + ``#`` + fingerprint under ``key`` (the open database's random key). The
    masked form is :func:`mask_value`'s, in SQL. ``capi_pii_scrub(text, sep)`` replaces every email address
    (:data:`~capi_diag.core.patterns.EMAIL_IN_TEXT`) and every phone number after a key naming one
    (:data:`~capi_diag.core.patterns.PHONE_IN_TEXT`) inside a longer text (a URL, custom data, unknown columns)
    by the same stored form, with ``sep`` before the fingerprint (``#``; in a URL ``%23``, so that the query
    string keeps its parameters), and leaves the rest of the text as it is."""
    keep = " OR ".join(f"regexp_matches(v, {_sql_str(p)})" for p in (
        patterns.BLANK_RE, patterns.HASH_RE, patterns.SPACED_HASH_RE, patterns.PLACEHOLDER_RE))
    # one statement each (a rule's pattern may hold a ';'), never split on ';'
    strip = f"trim(v, {_sql_str(PY_SPACE_CHARS)})"
    return [f"CREATE OR REPLACE TEMP MACRO capi_pii_strip(v) AS {strip}", """
CREATE OR REPLACE TEMP MACRO capi_pii_display_other(v) AS left(capi_pii_strip(v), 1) || '***'""", """
CREATE OR REPLACE TEMP MACRO capi_pii_display_em(v) AS
    CASE WHEN contains(v, '@')
              THEN left(split_part(capi_pii_strip(v), '@', 1), 1) || '***@'
                   || substr(capi_pii_strip(v), strpos(capi_pii_strip(v), '@') + 1)
         ELSE capi_pii_display_other(v) END""", """
CREATE OR REPLACE TEMP MACRO capi_pii_display_ph(v) AS
    '***' || CASE WHEN length(regexp_replace(v, '\\P{Nd}', '', 'g')) > 4
                  THEN right(regexp_replace(v, '\\P{Nd}', '', 'g'), 4) ELSE '' END""", """
CREATE OR REPLACE TEMP MACRO capi_pii_display(f, v) AS
    CASE WHEN f = 'em' THEN capi_pii_display_em(v) WHEN f = 'ph' THEN capi_pii_display_ph(v)
         ELSE capi_pii_display_other(v) END""", f"""
CREATE OR REPLACE TEMP MACRO capi_pii_fp(f, v) AS
    left(sha256({_sql_str(key)} || f || chr(0) || v), {FINGERPRINT_HEX})""",
        # longest first, so that no address is replaced inside a longer one (bob@x.io in jimbob@x.io)
        """
CREATE OR REPLACE TEMP MACRO capi_pii_longest_first(l) AS
    list_transform(list_sort(list_transform(list_distinct(l), lambda x: lpad(CAST(length(x) AS VARCHAR), 9, '0')
                                            || x), 'DESC'), lambda x: substr(x, 10))""", f"""
CREATE OR REPLACE TEMP MACRO capi_pii_scrub_em(v, sep) AS
    list_reduce(list_prepend(v, capi_pii_longest_first(regexp_extract_all(v, {_sql_str(patterns.EMAIL_IN_TEXT)}))),
                lambda acc, x: replace(acc, x, capi_pii_display_em(replace(x, '%40', '@')) || sep
                                               || capi_pii_fp('em', x)))""", f"""
CREATE OR REPLACE TEMP MACRO capi_pii_scrub(v, sep) AS
    CASE WHEN v IS NULL OR NOT regexp_matches(v, {_sql_str('@|%40|' + patterns.PHONE_KEY)}) THEN v
         ELSE list_reduce(list_prepend(capi_pii_scrub_em(v, sep), capi_pii_longest_first(
                  regexp_extract_all(capi_pii_scrub_em(v, sep), {_sql_str(patterns.PHONE_IN_TEXT)}, 1))),
              lambda acc, x: replace(acc, x, capi_pii_display_ph(x) || sep || capi_pii_fp('ph', x)))
    END""", f"""
CREATE OR REPLACE TEMP MACRO capi_pii_at_rest(f, v) AS
    CASE WHEN v IS NULL OR {keep} THEN v
         ELSE capi_pii_display(f, v) || '#' || capi_pii_fp(f, v)
    END""", *(f"""
CREATE OR REPLACE TEMP MACRO capi_pii_at_rest_{f}(v) AS
    CASE WHEN v IS NULL OR {keep} THEN v
         ELSE capi_pii_display_{DISPLAY_OF.get(f, 'other')}(v) || '#' || capi_pii_fp({_sql_str(f)}, v)
    END""" for f in MASKED_AT_REST)]


_EMAIL_TEXT = re.compile(patterns.EMAIL_IN_TEXT)
_PHONE_TEXT = re.compile(patterns.PHONE_IN_TEXT)


def fingerprint(key: str, field: str, value: str) -> str:
    """The keyed fingerprint of a raw value, as the SQL macro ``capi_pii_fp`` computes it."""
    return hashlib.sha256(f"{key}{field}\x00{value}".encode()).hexdigest()[:FINGERPRINT_HEX]


def scrub_text(text: str | None, key: str, sep: str = "#") -> str | None:
    """``capi_pii_scrub`` in Python, for the few records stored outside the import (a Test Events
    send's events, findings and Meta's messages): every email and every phone number after a key
    naming one replaced by its masked form + ``sep`` + fingerprint; the rest of ``text`` unchanged."""
    if text is None:
        return None
    for found in sorted(set(_EMAIL_TEXT.findall(text)), key=len, reverse=True):
        text = text.replace(found, f"{mask_value('em', found.replace('%40', '@'))}{sep}{fingerprint(key, 'em', found)}")
    for found in sorted(set(_PHONE_TEXT.findall(text)), key=len, reverse=True):
        text = text.replace(found, f"{mask_value('ph', found)}{sep}{fingerprint(key, 'ph', found)}")
    return text
