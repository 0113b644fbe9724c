"""Masking raw PII for display.

Raw customer data found in logs is a finding (``match_keys`` counts it as ``unhashed``); wherever a
value is shown (report examples, the dashboard, exports of example rows) it passes through
:func:`mask` first. Hash-shaped values and browser context keys are shown as they are: they are not
personal data in the clear. Masking keeps just enough to recognise the value: ``j***@example.com``,
``***1212``, ``M***``.
"""

from __future__ import annotations

import re
from typing import Any

HASH_RE = re.compile(r"\A[0-9A-Fa-f]{64}(\.[A-Za-z0-9_-]{2}|\.[A-Za-z0-9_-]{8})?\Z")
PII_FIELDS = frozenset({"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "external_id"})
"""Fields whose raw (unhashed) values are personal data. ``country`` alone is not masked."""


def mask_value(field: str, value: Any) -> Any:
    """``value`` masked if ``field`` holds personal data and the value is not hash-shaped."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [mask_value(field, v) for v in value]
    text = str(value)
    if field not in PII_FIELDS or HASH_RE.match(text.strip()) or not text.strip():
        return value
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
