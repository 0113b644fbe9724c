"""Meta's normalization and SHA-256 rules for ``user_data``, one function per field kind.

Meta matches server events to accounts by comparing SHA-256 hashes, so a value that is normalized
differently from the way Meta normalizes its own data (``Mary-Ann`` vs ``maryann``, ``(650)555-1212``
without the country code) hashes to something that never matches, silently. This module follows
Meta's *documented* rules (docs/facts.md §4.1, the customer-information-parameters page). Where Meta's
own SDKs disagree with each other or with the docs (docs/facts.md §4.3), the docs win, and each field's
function says what the Python SDK (``normalize.py``) and the newer Node SDK / capi-param-builder do
differently, so a diagnostics user can tell why their SDK's hash differs.

Public API:

* :func:`normalize` ``(field, value, *, region=None) -> str | None``: the normalized string, or
  ``None`` when the value is empty or cannot be normalized (never an exception for bad *data*).
* :func:`hash_value` ``(field, value, *, region=None) -> str | None``: normalize, then SHA-256
  lowercase hex of the UTF-8 bytes. A value that already is a SHA-256 hash (64 hex characters,
  optionally followed by a capi-param-builder appendix such as ``.AQQCAQIB``) is passed through with
  its hex part lower-cased and is not hashed again.
* :func:`explain_invalid` ``(field, value, *, region=None) -> str | None``: why ``value``
  normalizes to ``None`` (``None`` when it normalizes fine).

``field`` is a Meta ``user_data`` key: ``em ph fn ln ge db ct st zp country external_id``.
An unknown key is a programming error and raises :class:`UnknownFieldError`.

``region`` is an ISO 3166-1 alpha-2 country code (``"US"``, ``"GB"``...) saying where the value
comes from. It turns on the rules that need a country: US state names to their 2-letter codes and
US ZIP codes cut to 5 digits (``region="US"``), and a national phone number gets the region's
country calling code (via ``phonenumbers``). Without a region none of this is guessed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
import pycountry

from capi_diag.core.errors import CapiDiagError
from capi_diag.core.patterns import HASHED_KEYS, SHA256_RE

FIELDS: tuple[str, ...] = (*HASHED_KEYS, "external_id")
"""The ``user_data`` keys this module normalizes (Meta hashes all of them; ``external_id`` is
recommended hashed, the others are required hashed)."""

_MD5_RE = re.compile(r"\A[0-9A-Fa-f]{32}\Z")
_EMAIL_RE = re.compile(r"\A[^@\s]+@[^@\s.]+(\.[^@\s.]+)+\Z")
_EXTENSION_RE = re.compile(r"(?:\s*(?:ext\.?|extension|x|#)\s*\d{1,6})\Z", re.IGNORECASE)
_PHONE_ALLOWED_RE = re.compile(r"\A[+\d\s().\-/]+\Z")
_DATE_GROUPS_RE = re.compile(r"\d+")
_DATE_ALLOWED_RE = re.compile(r"\A[\d\s./\-]+\Z")

_GENDER_WORDS: dict[str, str] = {
    "f": "f", "female": "f", "woman": "f", "women": "f",
    "m": "m", "male": "m", "man": "m", "men": "m",
}
_COUNTRY_ALIASES: dict[str, str] = {
    # Common non-ISO names that pycountry's lookup does not know; "uk" is not ISO 3166 (gb is).
    "uk": "gb", "greatbritain": "gb", "britain": "gb", "england": "gb", "scotland": "gb",
    "wales": "gb", "northernireland": "gb", "unitedstatesofamerica": "us", "america": "us",
    "holland": "nl", "southkorea": "kr", "korea": "kr", "russia": "ru", "vietnam": "vn",
    "czechia": "cz", "turkey": "tr", "iran": "ir", "syria": "sy", "laos": "la",
    "bolivia": "bo", "venezuela": "ve", "tanzania": "tz", "moldova": "md",
}

MIN_BIRTH_YEAR = 1900
"""Meta's documented lower bound for the year of birth (``db``); the upper bound is this year."""


class UnknownFieldError(CapiDiagError):
    """``normalize`` was called with a key that is not a hashed ``user_data`` key."""

    title = "Unknown user_data field"


@dataclass(frozen=True)
class _Outcome:
    value: str | None
    reason: str | None = None


def _ok(value: str) -> _Outcome:
    return _Outcome(value, None)


def _bad(reason: str) -> _Outcome:
    return _Outcome(None, reason)


def _strip_marks_keep_letters(text: str, keep: Callable[[str], bool]) -> str:
    return "".join(ch for ch in text if keep(ch))


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith(("L", "M"))


def _prep(value: str) -> str:
    """NFC so that ``é`` typed as ``e`` + combining accent hashes like the precomposed ``é``."""
    return unicodedata.normalize("NFC", value).strip()


def _region(region: str | None) -> str | None:
    if region is None:
        return None
    code = region.strip().upper()
    return code or None


# ---------------------------------------------------------------------------------------------
# One function per field kind. Each returns an _Outcome; none raises on bad data.


def _email(value: str, region: str | None) -> _Outcome:
    """``em``: trim and lowercase (docs). Must look like ``local@domain.tld``.

    Python SDK: same, but raises TypeError on a bad address; param-builder: returns null. Inner
    spaces make the address invalid here (the Python SDK keeps them and hashes a dead value).
    """
    text = value.lower()
    if _MD5_RE.match(text):
        return _bad("looks like an MD5 hash; Meta requires SHA-256 of the normalized email")
    if not _EMAIL_RE.match(text):
        return _bad("not an email address (expected local@domain.tld without spaces)")
    return _ok(text)


def _phone(value: str, region: str | None) -> _Outcome:
    """``ph``: digits only, country code included, no leading zeros (docs).

    * A trailing extension (``ext 5``, ``x5``, ``#5``) is dropped: it is not part of the number.
      (param-builder keeps its digits, ``16505551212 ext 5`` -> ``165055512125``; Python raises.)
    * International format (leading ``+`` or ``00``): parsed with ``phonenumbers`` so that the
      ``(0)`` trunk-prefix notation is dropped (``+44 (0)20 7946 0958`` -> ``442079460958``, the
      E.164 number; both SDKs keep the ``0`` and produce ``4402079460958``).
    * National format with ``region``: the region's calling code is added (``(650)555-1212``,
      ``US`` -> ``16505551212``, Meta's own example). Neither SDK adds it.
    * National format without ``region``: symbols and leading zeros removed, as in the docs; the
      caller must know that the number carries its country code.

    The result must have 7 to 15 digits (E.164 allows at most 15).
    """
    text = _EXTENSION_RE.sub("", value).strip()
    if not text:
        return _bad("no phone digits")
    if not _PHONE_ALLOWED_RE.match(text):
        return _bad("contains letters or symbols that are not part of a phone number")
    compact = re.sub(r"[\s().\-/]", "", text)
    international = compact.startswith("+") or compact.startswith("00")
    if "+" in compact[1:]:
        return _bad("a '+' may only start the number")
    if international:
        spelled = "+" + text.lstrip()[2:] if text.lstrip().startswith("00") else text
        try:
            parsed = phonenumbers.parse(spelled, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.is_possible_number(parsed):
            digits = f"{parsed.country_code}{parsed.national_number}"
        else:
            digits = compact.lstrip("+").lstrip("0")
    elif region is not None:
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            return _bad(f"not a phone number for region {region}")
        if not phonenumbers.is_possible_number(parsed):
            return _bad(f"not a possible phone number for region {region} (wrong length)")
        digits = f"{parsed.country_code}{parsed.national_number}"
    else:
        digits = compact.lstrip("0")
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        return _bad(f"{len(digits)} digits after normalization; a phone number with its country code "
                    "has 7 to 15")
    return _ok(digits)


def _name(value: str, region: str | None) -> _Outcome:
    """``fn`` / ``ln``: lowercase, no punctuation (docs); letters outside a-z are kept in UTF-8
    (``Valéry`` -> ``valéry``, ``정`` -> ``정``, Meta's examples).

    Whitespace, punctuation, symbols and digits are removed (``Mary-Ann`` -> ``maryann``,
    ``O'Brien`` -> ``obrien``, ``Mary Ann`` -> ``maryann``), as capi-param-builder and the Node SDK
    do. The Python SDK only lowercases and trims (``mary-ann``), which hashes differently.
    """
    text = _strip_marks_keep_letters(value.lower(), _is_letter)
    if not text:
        return _bad("no letters left after removing punctuation, digits and spaces")
    return _ok(text)


def _city(value: str, region: str | None) -> _Outcome:
    """``ct``: lowercase, no punctuation, no special characters, no spaces (docs: ``newyork``);
    letters outside a-z kept in UTF-8 as the docs allow (``São Paulo`` -> ``sãopaulo``).

    The Python SDK agrees on ``sãopaulo`` but keeps other punctuation (``st.-louis`` loses only the
    dot and dash); param-builder drops every non-ASCII letter (``sopaulo``, ``zrich``).
    """
    text = _strip_marks_keep_letters(value.lower(), _is_letter)
    if not text:
        return _bad("no letters left after removing digits, punctuation and spaces")
    return _ok(text)


def _us_state_codes() -> dict[str, str]:
    table: dict[str, str] = {}
    for sub in pycountry.subdivisions.get(country_code="US"):
        code = sub.code.split("-", 1)[1].lower()
        table[code] = code
        table[_strip_marks_keep_letters(sub.name.lower(), _is_letter)] = code
    table["washingtondc"] = "dc"
    return table


_US_STATES: dict[str, str] | None = None


def _state(value: str, region: str | None) -> _Outcome:
    """``st``: lowercase, no punctuation, no special characters, no spaces (docs). In the US the
    2-letter ANSI code (``ca``).

    With ``region="US"`` full state names map to their codes (``California`` -> ``ca``,
    ``N.Y.`` -> ``ny``) and anything that is not a US state, district or territory is invalid.
    Without a region the cleaned text is kept (``California`` -> ``california``), as the Python
    SDK does; param-builder maps US/Canadian names always and otherwise keeps the first two letters
    (``Bavaria`` -> ``ba``), which the docs do not describe.
    """
    global _US_STATES
    text = _strip_marks_keep_letters(value.lower(), _is_letter)
    if not text:
        return _bad("no letters left after removing punctuation and spaces")
    if region == "US":
        if _US_STATES is None:
            _US_STATES = _us_state_codes()
        code = _US_STATES.get(text)
        if code is None:
            return _bad("not a US state name or 2-letter code")
        return _ok(code)
    return _ok(text)


def _zip(value: str, region: str | None) -> _Outcome:
    """``zp``: lowercase, no spaces, the part before a ``-`` (docs; ``SW1A 1AA`` -> ``sw1a1aa``,
    ``94105-1234`` -> ``94105``). With ``region="US"`` the first 5 digits, which must be digits
    (a 4-digit value usually lost its leading zero in a spreadsheet: invalid).

    Python SDK: the same without the US cut; param-builder keeps inner spaces (``sw1a 1aa``).
    """
    text = value.lower().split("-", 1)[0]
    text = re.sub(r"\s+", "", text)
    if not text:
        return _bad("empty before the '-'")
    if region == "US":
        if not text.isdigit():
            return _bad("a US ZIP code has digits only")
        if len(text) < 5:
            return _bad(f"a US ZIP code has 5 digits, found {len(text)} (leading zero lost?)")
        return _ok(text[:5])
    if not text.isalnum():
        return _bad("a postal code has letters and digits only")
    return _ok(text)


def _country(value: str, region: str | None) -> _Outcome:
    """``country``: lowercase ISO 3166-1 alpha-2 (docs: ``us``); names, alpha-3 codes and a few
    common aliases map to it (``United States``, ``USA``, ``UK`` -> ``us``, ``us``, ``gb``).

    The Python SDK accepts only valid alpha-2 and raises on ``USA``/``UK``/names; param-builder maps
    names but turns ``UK`` into ``uk`` (not ISO).
    """
    letters = _strip_marks_keep_letters(value.lower(), lambda ch: "a" <= ch <= "z")
    if not letters:
        return _bad("no letters")
    if letters in _COUNTRY_ALIASES:
        return _ok(_COUNTRY_ALIASES[letters])
    candidates = [value.strip()]
    if len(letters) in (2, 3):
        candidates.insert(0, letters)
    for candidate in candidates:
        try:
            country = pycountry.countries.lookup(candidate)
        except LookupError:
            continue
        return _ok(country.alpha_2.lower())
    return _bad("not an ISO 3166 country code or a known country name")


def _gender(value: str, region: str | None) -> _Outcome:
    """``ge``: the lowercase initial, ``f`` or ``m`` (docs). ``Female``/``woman``/``M`` are mapped;
    anything else is invalid rather than guessed. (Python SDK takes only its ``Gender`` enum;
    param-builder has longer word lists, including honorifics.)"""
    text = _strip_marks_keep_letters(value.lower(), _is_letter)
    code = _GENDER_WORDS.get(text)
    if code is None:
        return _bad("not f/m (or female/male)")
    return _ok(code)


def _date_of_birth(value: str, region: str | None) -> _Outcome:
    """``db``: ``YYYYMMDD``, year 1900..this year, a real calendar date (docs; ``2/16/1997`` ->
    ``19970216``).

    Accepted inputs: ``YYYYMMDD``; ``YYYY-MM-DD`` (any of ``- / .`` or spaces between groups); and
    day/month/year orders with a 4-digit year last. When day and month are both <= 12 the order is
    ambiguous: it is read month first (as in Meta's example and param-builder) unless ``region`` is
    set to a country other than the US, or the separator is ``.``, which mean day first.
    The Python SDK does not reformat dates at all (``1997-02-16`` is hashed as is).
    """
    text = value.strip()
    if not _DATE_ALLOWED_RE.match(text):
        return _bad("a date of birth has digits and separators only")
    groups = _DATE_GROUPS_RE.findall(text)
    if len(groups) == 1 and len(groups[0]) == 8:
        g = groups[0]
        year, month, day = int(g[:4]), int(g[4:6]), int(g[6:])
    elif len(groups) == 3 and len(groups[0]) == 4:
        year, month, day = (int(g) for g in groups)
    elif len(groups) == 3 and len(groups[2]) == 4:
        a, b, year = (int(g) for g in groups)
        day_first = "." in text or (region is not None and region != "US")
        if a > 12 and b <= 12:
            day, month = a, b
        elif b > 12 and a <= 12:
            month, day = a, b
        elif day_first:
            day, month = a, b
        else:
            month, day = a, b
    else:
        return _bad("expected YYYYMMDD, YYYY-MM-DD or a day/month/year date with a 4-digit year")
    this_year = _dt.date.today().year
    if not MIN_BIRTH_YEAR <= year <= this_year:
        return _bad(f"year {year} outside {MIN_BIRTH_YEAR}..{this_year}")
    try:
        _dt.date(year, month, day)
    except ValueError:
        return _bad(f"{year:04d}-{month:02d}-{day:02d} is not a calendar date")
    return _ok(f"{year:04d}{month:02d}{day:02d}")


def _external_id(value: str, region: str | None) -> _Outcome:
    """``external_id``: trimmed, otherwise unchanged (docs: it must be identical across Pixel, CAPI
    and offline uploads, so nothing is lowercased). The Python SDK sends it raw and unhashed; the
    Node SDK (since 2026-06) lowercases, removes whitespace and hashes it."""
    return _ok(value)


_RULES: dict[str, Callable[[str, str | None], _Outcome]] = {
    "em": _email, "ph": _phone, "fn": _name, "ln": _name, "ge": _gender, "db": _date_of_birth,
    "ct": _city, "st": _state, "zp": _zip, "country": _country, "external_id": _external_id,
}


def _run(field: str, value: object, region: str | None) -> _Outcome:
    rule = _RULES.get(field)
    if rule is None:
        raise UnknownFieldError(
            f"normalize: unknown user_data field {field!r}; use one of {', '.join(FIELDS)}."
        )
    if value is None:
        return _bad("empty")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return _bad(f"expected text, found {type(value).__name__}")
    text = _prep(str(value))
    if not text:
        return _bad("empty")
    m = SHA256_RE.match(text)
    if m:
        return _ok(m.group(1).lower() + (m.group(2) or ""))
    try:
        return rule(text, _region(region))
    except Exception as e:  # a library surprise must not escape as a crash on user data
        return _bad(f"could not be normalized ({type(e).__name__})")


def normalize(field: str, value: str | None, *, region: str | None = None) -> str | None:
    """``value`` normalized by Meta's rule for ``field``; ``None`` if empty or invalid.

    A value that already is a SHA-256 hash is returned with its hex part lower-cased (it cannot be
    normalized any further). See :func:`explain_invalid` for the reason behind a ``None``.
    """
    return _run(field, value, region).value


def hash_value(field: str, value: str | None, *, region: str | None = None) -> str | None:
    """SHA-256 lowercase hex of the normalized value (UTF-8 bytes); ``None`` if empty or invalid.

    An already hashed value (64 hex, optional param-builder appendix) is passed through lower-cased
    instead of being hashed twice.
    """
    outcome = _run(field, value, region)
    if outcome.value is None:
        return None
    if SHA256_RE.match(outcome.value):
        return outcome.value
    return hashlib.sha256(outcome.value.encode("utf-8")).hexdigest()


def explain_invalid(field: str, value: str | None, *, region: str | None = None) -> str | None:
    """Why ``value`` normalizes to ``None`` for ``field`` (e.g. ``"not an email address ..."``),
    or ``None`` when it normalizes fine."""
    return _run(field, value, region).reason


def is_hashed(value: str | None) -> bool:
    """True if ``value`` is shaped like a SHA-256 hex digest (optionally with an appendix)."""
    return value is not None and SHA256_RE.match(value.strip()) is not None
