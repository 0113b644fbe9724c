"""The journey file (TOML): what the browser does, step by step, and which Pixel event each step expects.

::

    base_url = "https://shop.example.com"
    [[step]]
    url = "/"
    expect = "PageView"
    [[step]]
    click = "button#add-to-cart"
    expect = "AddToCart"

Each step does, in order: ``url`` (absolute, or relative to ``base_url``; without it the step acts on
the current page), ``fill`` (a table: CSS selector = text), ``click`` (CSS selector), ``wait_for``
(CSS selector), ``wait_ms``; then the runner waits for its ``expect``ed event and for the network to go
idle. Every problem is a :class:`~capi_diag.core.errors.UsageError` naming the file and the step.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from capi_diag.core.errors import UsageError

STEP_KEYS = ("url", "fill", "click", "wait_for", "wait_ms", "expect")
TOP_KEYS = ("base_url", "step")


@dataclass(frozen=True)
class Step:
    number: int
    url: str | None = None
    fill: dict[str, str] = field(default_factory=dict)
    click: str | None = None
    wait_for: str | None = None
    wait_ms: int = 0
    expect: str | None = None


@dataclass(frozen=True)
class Journey:
    source: str
    steps: tuple[Step, ...]
    base_url: str | None = None

    @property
    def expected(self) -> list[str]:
        """The expected event names, in step order (a name may repeat)."""
        return [s.expect for s in self.steps if s.expect]


def _absolute(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def load(path: str | Path) -> Journey:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"journey file {p} not found; pass an existing TOML file to --journey.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"journey file {p} cannot be read ({getattr(e, 'strerror', None) or e}); "
                         "save it as UTF-8 TOML.") from None
    return parse(text, source=str(p))


def parse(text: str, *, source: str = "<journey>") -> Journey:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"journey file {source}: not valid TOML ({e}); fix the syntax there.") from None
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise UsageError(f"journey file {source}: unknown key {unknown[0]!r}; the file has base_url and "
                         "[[step]] tables only.")
    base = raw.get("base_url")
    if base is not None and (not isinstance(base, str) or not _absolute(base)):
        raise UsageError(f"journey file {source}: base_url {base!r} is not an absolute http(s) URL, "
                         "e.g. \"https://shop.example.com\".")
    steps_raw = raw.get("step")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise UsageError(f"journey file {source}: no [[step]] table; add at least one step with a url.")
    steps = []
    for i, s in enumerate(steps_raw, start=1):
        where = f"journey file {source}, step {i}"
        if not isinstance(s, dict):
            raise UsageError(f"{where}: must be a [[step]] table.")
        bad = sorted(set(s) - set(STEP_KEYS))
        if bad:
            raise UsageError(f"{where}: unknown key {bad[0]!r}; a step may have {', '.join(STEP_KEYS)}.")
        for key in ("url", "click", "wait_for", "expect"):
            if key in s and (not isinstance(s[key], str) or not s[key].strip()):
                raise UsageError(f"{where}: {key} must be a non-empty text.")
        url = s.get("url")
        if url is not None and not _absolute(url):
            if base is None:
                raise UsageError(f"{where}: url {url!r} is relative but the file has no base_url; add "
                                 "base_url or write the full URL.")
            url = urljoin(base, url)
        if i == 1 and url is None:
            raise UsageError(f"{where}: the first step needs a url (there is no page yet).")
        fill = s.get("fill", {})
        if not isinstance(fill, dict) or not all(isinstance(v, str) for v in fill.values()):
            raise UsageError(f"{where}: fill must be a table of CSS selector = \"text\".")
        wait_ms = s.get("wait_ms", 0)
        if isinstance(wait_ms, bool) or not isinstance(wait_ms, int) or wait_ms < 0:
            raise UsageError(f"{where}: wait_ms must be a whole number of milliseconds (0 or more).")
        if not any(k in s for k in ("url", "fill", "click", "wait_for", "wait_ms")):
            raise UsageError(f"{where}: does nothing; give it a url, fill, click, wait_for or wait_ms.")
        steps.append(Step(number=i, url=url, fill=dict(fill), click=s.get("click"),
                          wait_for=s.get("wait_for"), wait_ms=wait_ms, expect=s.get("expect")))
    return Journey(source=source, steps=tuple(steps), base_url=base)
