"""One number format for the dashboard, its charts and tables, and the Markdown/HTML reports.

Every number a person reads goes through here, so a share is always ``71.5 %`` (never ``0.715``),
a count always has thousands separators, a duration always carries its unit (``45 s``, ``5 min``,
``48 h``, ``7 days``; ``µs`` for microseconds), a time is always ``2026-11-17 09:14:03 UTC``, and
an EMQ score is ``5.4 / 10``. The JSON report keeps raw numbers; only what is shown is formatted.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

NA = "n/a"
"""What an undefined number reads as (a share of nothing, a quantile of no values)."""

_MINUTE, _HOUR, _DAY = 60, 3_600, 86_400


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _trim(value: float, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals and thousands separators, without a trailing ``.0``."""
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def share(value: Any, digits: int = 1) -> str:
    """A share 0..1 as a percentage: ``0.715`` -> ``71.5 %`` (a space before the sign)."""
    if _missing(value):
        return NA
    return f"{float(value) * 100:,.{digits}f} %"


def count(value: Any) -> str:
    """A count with thousands separators: ``10756`` -> ``10,756``."""
    if _missing(value):
        return NA
    return f"{int(value):,}"


def counted(value: Any, unit: str) -> str:
    """A count and what it counts, singular when one: ``(1, "row")`` -> ``1 row``, ``(12, "row")`` ->
    ``12 rows``; ``unit`` may name a phrase (``"dedup key"``)."""
    if _missing(value):
        return NA
    n = int(value)
    return f"{n:,} {unit if n == 1 else plural(unit)}"


def plural(unit: str) -> str:
    """``row`` -> ``rows``, ``dedup key`` -> ``dedup keys`` (the last word takes the s)."""
    return unit if unit.endswith("s") else unit + "s"


def number(value: Any, digits: int = 2) -> str:
    """A plain number: integers with separators, others with up to ``digits`` decimals."""
    if _missing(value):
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return _trim(float(value), digits)


def duration(seconds: Any) -> str:
    """Seconds in the unit a person would say: ``45 s``, ``90 s``, ``5 min``, ``1.5 h``, ``48 h``,
    ``7 days`` (under 2 minutes in seconds, under an hour in minutes, under 7 days in hours)."""
    if _missing(seconds):
        return NA
    v = float(seconds)
    a = abs(v)
    if a < 2 * _MINUTE:
        return f"{_trim(v)} s"
    if a < _HOUR:
        return f"{_trim(v / _MINUTE)} min"
    if a < 7 * _DAY:
        return f"{_trim(v / _HOUR)} h"
    days = _trim(v / _DAY)
    return f"{days} day" if days in ("1", "-1") else f"{days} days"


def seconds(value: Any) -> str:
    """A duration measured in whole or fractional seconds, always in seconds: ``3,600 s``.

    For a table column of durations whose rows must compare at a glance (one unit per column)."""
    if _missing(value):
        return NA
    return f"{_trim(float(value))} s"


def score(value: Any, *, scale: bool = True) -> str:
    """An EMQ estimate out of 10, rounded *down* to one decimal so that a score under a target
    never reads as the target itself (5.96 is ``5.9 / 10``, below a 6.0 target); without the
    ``/ 10`` when ``scale`` is false (on a chart whose axis says it)."""
    if _missing(value):
        return NA
    text = f"{math.floor(round(float(value), 6) * 10) / 10:.1f}"
    return f"{text} / 10" if scale else text


def timestamp(value: Any) -> str:
    """Unix seconds (int, float or digits) as ``2026-11-17 09:14:03 UTC``; other text unchanged."""
    if _missing(value) or value == "":
        return NA
    try:
        secs = float(value)
    except (TypeError, ValueError):
        return str(value)
    try:
        return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return str(value)


def date(value: dt.date | int | float | None) -> str:
    """A day as ``2026-11-17``; Unix seconds are read as UTC."""
    if value is None:
        return NA
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, dt.UTC).date()
    return value.isoformat()


def value(v: Any, unit: str | None = None) -> str:
    """A number in its unit: ``share`` as a percentage, ``seconds`` as a duration, ``score`` out of 10,
    ``count`` and plain numbers with separators; text unchanged; ``None`` as ``n/a``."""
    if _missing(v):
        return NA
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        if unit == "share":
            return share(v)
        if unit == "seconds":
            return duration(v)
        if unit == "score":
            return score(v)
        return number(v)
    return str(v)
