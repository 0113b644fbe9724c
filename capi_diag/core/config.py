"""Configuration: the ``--config`` TOML file, with module-level defaults living beside each analysis.

Each analysis owns its defaults (a ``DEFAULTS`` dict in its module) and reads its table of the
TOML through :meth:`Config.options`, which merges the user's values over the defaults and rejects
unknown keys with the closest valid one suggested. Example::

    [timing]
    skew_threshold_s = 600

    [consent]
    required = ["ad_storage", "ad_user_data"]
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capi_diag.core.errors import ConfigError


@dataclass(frozen=True)
class Config:
    raw: Mapping[str, Any] = field(default_factory=dict)
    source: str = "defaults"

    @classmethod
    def load(cls, path: str | Path | None) -> Config:
        if path is None:
            return cls()
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found; pass an existing TOML file to --config.") from None
        except OSError as e:
            raise ConfigError(f"{p}: cannot read the config file ({e.strerror}).") from None
        return cls.from_text(text, source=str(p))

    @classmethod
    def from_text(cls, text: str, *, source: str = "<config>") -> Config:
        import tomllib  # only when a config file is read (its import is 4 ms of every start)

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML ({e}); fix the syntax at that line.") from None
        return cls(raw, source)

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.source}: [{name}] must be a table, found {type(value).__name__}.")
        return value

    def options(self, name: str, defaults: Mapping[str, Any], *, open_keys: bool = False) -> dict[str, Any]:
        """``defaults`` overridden by the ``[name]`` table; unknown keys are an error unless ``open_keys``."""
        user = self.section(name)
        if not open_keys:
            for key in user:
                if key not in defaults:
                    close = difflib.get_close_matches(key, list(defaults), n=1)
                    hint = f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(sorted(defaults))}."
                    raise ConfigError(f"{self.source}: unknown key '{key}' in [{name}].{hint}")
        merged = dict(defaults)
        for key, value in user.items():
            default = defaults.get(key)
            if default is not None and not _same_kind(default, value):
                raise ConfigError(
                    f"{self.source}: [{name}] {key} must be {type(default).__name__}, "
                    f"found {value!r}."
                )
            merged[key] = value
        return merged


def whole_numbers(config: Config, name: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """:meth:`Config.options` for a table whose every option is a whole number >= 0 (windows and
    thresholds in seconds, example counts)."""
    opts = config.options(name, defaults)
    for key in defaults:
        value = opts[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{config.source}: [{name}] {key} must be a whole number >= 0, found {value!r}.")
    return opts


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))
