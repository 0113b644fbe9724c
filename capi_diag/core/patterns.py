"""The one set of patterns and key lists: Meta's ``user_data`` keys and the shapes of their values.

Every module that needs one of these facts imports it from here, so a key list or a pattern cannot
drift between the import, the value rules, the masking, the checklist, the demo data and the Graph
API stand-in.

Key lists (in report order; order matters: it is the column order of the canonical tables and the
order of the report's fields):

* :data:`HASHED_KEYS`: the keys Meta requires SHA-256 hashed.
* :data:`CONTEXT_KEYS`: the browser context keys, which must never be hashed.
* :data:`MATCH_KEY_FIELDS`: the fields the match-key analyses score.
* :data:`USER_DATA_KEYS`: every ``user_data`` key of Meta's customer-information parameters.
* :data:`TOO_BROAD`: Meta's baseline combinations of keys too broad to match on.

Patterns come in two dialects, because they run in two places:

* **Engine patterns** are regular-expression *source strings* for the database engines (DuckDB's RE2,
  Spark's Java regex), anchored ``\\A...\\z`` so they mean the same on every engine: :data:`HASH`
  (unanchored, for a full-match function), :data:`HASH_RE`, :data:`LOWER_HASH_RE`,
  :data:`BLANK_RE`, :data:`SPACED_HASH_RE`, :data:`PLACEHOLDER_RE`. They accept an appendix only when
  it is one of the legacy tokens of :data:`APPENDIX_TOKENS` or 8 URL-safe base64 characters.
* **Python patterns** are compiled :mod:`re` patterns, anchored ``\\A...\\Z`` (Python has no ``\\z``):
  :data:`SHA256_RE`. It accepts any 2 or 8 URL-safe base64 characters as the appendix, so it is more
  lenient than the engine patterns (``<64 hex>.ZZ`` is hash-shaped here, not there).
"""

from __future__ import annotations

import re

# -- key lists ---------------------------------------------------------------------------------------

HASHED_KEYS: tuple[str, ...] = ("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country")
"""Keys Meta requires SHA-256 hashed (``external_id`` is recommended hashed, not required)."""

CONTEXT_KEYS: tuple[str, ...] = ("fbp", "fbc", "client_ip_address", "client_user_agent")
"""Browser context keys that must never be hashed."""

MATCH_KEY_FIELDS: tuple[str, ...] = (*HASHED_KEYS, "external_id", *CONTEXT_KEYS)
"""The 15 fields the match-key analyses score, in report order."""

USER_DATA_KEYS: tuple[str, ...] = (
    *HASHED_KEYS, "external_id",
    "client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id",
    "lead_id", "anon_id", "madid",
)
"""Every ``user_data`` key of Meta's customer-information parameters (docs/facts.md §4)."""

TOO_BROAD: tuple[frozenset[str], ...] = (
    frozenset({"ct", "country", "st", "zp", "ge", "client_user_agent"}),
    frozenset({"db", "client_user_agent"}),
    frozenset({"fn", "ge"}),
    frozenset({"ln", "ge"}),
)
"""Meta's baseline: an event whose customer-information keys are only a subset of one of these is
rejected (best practices; error subcode 2804050)."""

# -- engine patterns (RE2 / Java source strings) -----------------------------------------------------

APPENDIX_TOKENS: tuple[str, ...] = ("AQ", "Ag", "Aw", "BA", "BQ", "Bg")
"""Legacy 2-character parameter-builder appendices (language tokens PHP..client JS, docs/facts.md §4.3)."""
APPENDIX = "(?:" + "|".join(APPENDIX_TOKENS) + "|[A-Za-z0-9_-]{8})"
"""A parameter-builder appendix: a known 2-character token or 8 URL-safe base64 characters."""

HASH = rf"[0-9A-Fa-f]{{64}}(?:\.{APPENDIX})?"
"""A SHA-256 hex digest (either case), optionally ``.`` + an appendix; unanchored, for full-match
functions (DuckDB ``regexp_full_match``)."""
HASH_RE = rf"\A{HASH}\z"
""":data:`HASH`, anchored."""
LOWER_HASH_RE = rf"\A[0-9a-f]{{64}}(?:\.{APPENDIX})?\z"
"""A SHA-256 digest in lowercase hex (Meta's form), optionally ``.`` + an appendix."""

BLANK_RE = r"\A[\s\x0B\p{Z}]*\z"
"""Empty or whitespace-only (``\\p{Z}`` covers the no-break space).
``\\x0B``, not ``\\v``: RE2's ``\\v`` is the vertical tab, Java's (Spark) all vertical whitespace."""
SPACE = r"[\s\x0B\p{Z}]"
"""One character that :data:`BLANK_RE` calls whitespace."""
SPACED_HASH_RE = rf"\A(?:{SPACE}+{HASH}{SPACE}*|{HASH}{SPACE}+)\z"
"""A hash-shaped value with surrounding whitespace (a stray space or newline)."""

PLACEHOLDER_VALUES: tuple[str, ...] = (
    "null", "undefined", "none", "nil", "nan", "n/a", "unknown", "[object object]", "-", "(not set)",
)
"""Raw values that stand for "no value" (compared after trimming, ignoring case)."""
TEMPLATES: tuple[str, ...] = (r"\{\{.*\}\}", r"\$\{.*\}", r"%%.*%%")
"""Unrendered template variables (``{{Email}}``, ``${email}``, ``%%email%%``) are placeholders too."""
PLACEHOLDER_RE = (
    rf"\A{SPACE}*(?i:"
    + "|".join([*(re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", p) for p in PLACEHOLDER_VALUES), *TEMPLATES])
    + rf"){SPACE}*\z"
)
"""A placeholder value or template (:data:`PLACEHOLDER_VALUES`, :data:`TEMPLATES`), ignoring case and
surrounding whitespace."""

# -- Python patterns -----------------------------------------------------------------------------------

SHA256_RE = re.compile(r"\A([0-9A-Fa-f]{64})(\.[A-Za-z0-9_-]{2}|\.[A-Za-z0-9_-]{8})?\Z")
"""A SHA-256 hex digest (group 1), optionally with a parameter-builder appendix of 2 or 8 URL-safe
base64 characters (group 2, with its dot; docs/facts.md §4.3)."""

# -- personal data where Meta forbids it (engine patterns, unanchored: found inside a longer text) ------

EMAIL_IN_TEXT = r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
"""An email address inside a longer text (a URL, a JSON object of custom data), also with its ``@``
URL-encoded (``%40``). Its local part holds no ``*``, so the masked form the import stores
(``j***@example.com#...``) is not found again."""
PHONE_KEY = r"(?i:phone|mobile|msisdn|\btel\b|\bph\b)"
"""A key that names a phone number (``phone``, ``billing_phone``, ``mobile``, ``tel``, ``ph``)."""
PHONE_IN_TEXT = PHONE_KEY + r"[^0-9+(*]{0,6}((?:\+|%2B|\()?[0-9][0-9 ().%-]{5,20}[0-9])"
"""A phone number after a key naming one (``"phone":"+33 6 12 34 56 12"``, ``tel=0612345612``,
``\\"ph\\":\\"...``); group 1 is the number. Numbers are only recognised after such a key: order ids
and timestamps are digits too. No ``*`` between the key and the number: a stored form
(``***5678#...``) is not found again."""
