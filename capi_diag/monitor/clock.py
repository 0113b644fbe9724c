"""The monitor's wall clock and wait: :data:`CLOCK` and :data:`SLEEP`, read at each call through
:func:`now` and :func:`sleep`, so tests replace them with a virtual clock (a 48-hour monitor then
runs in seconds, its sleep advancing the clock)."""

from __future__ import annotations

import time
from collections.abc import Callable

CLOCK: Callable[[], float] = time.time
SLEEP: Callable[[float], None] = time.sleep


def now() -> float:
    """The time by :data:`CLOCK`, looked up at each call so a replaced clock takes effect."""
    return CLOCK()


def sleep(seconds: float) -> None:
    """Wait by :data:`SLEEP`, looked up at each call like :func:`now`."""
    SLEEP(seconds)
