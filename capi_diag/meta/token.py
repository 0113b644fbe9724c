"""Where the access token and the Graph URL come from, and how the token is kept out of sight.

The token is read, in this order, from:

1. the ``CAPI_ACCESS_TOKEN`` environment variable,
2. ``CAPI_ACCESS_TOKEN`` in ``.streamlit/secrets.toml`` (the working directory's, then the
   user's ``~/.streamlit/secrets.toml``), read with :mod:`tomllib` so the core never needs Streamlit,
3. a value typed into the Test Events page's password field, kept only in that browser session's
   memory (the page passes it in as ``session=``).

It is wrapped in :class:`Secret`, whose ``repr``/``str`` never show it; only the Graph client's
``Authorization`` header sees :meth:`Secret.reveal`. :func:`scrub` removes it from any text or
structure before it is printed or stored, as a second line of defence.

The Graph URL can only be changed by configuration, ``CAPI_GRAPH_URL`` or ``--graph-url``, never
from the web page, so the app cannot be used to send a token to another host
(:meth:`capi_diag.meta.client.GraphConfig.from_env` reads and checks it).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from capi_diag.core.errors import CapiDiagError

ENV_TOKEN = "CAPI_ACCESS_TOKEN"
ENV_GRAPH_URL = "CAPI_GRAPH_URL"
SECRETS_KEY = "CAPI_ACCESS_TOKEN"

TOKEN_FIX = (
    f"set the {ENV_TOKEN} environment variable, or add {SECRETS_KEY} = \"...\" to "
    ".streamlit/secrets.toml (a system user token of your Business Manager with access to the Pixel; "
    "Events Manager > Settings > Conversions API > Generate access token)"
)


class TokenError(CapiDiagError):
    """No usable access token."""

    title = "Missing access token"


class Secret:
    """A token that does not show itself: ``repr``/``str``/format print ``***``."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The token itself: only for the request's ``Authorization`` header."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(***, source={self.source!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def secrets_paths(cwd: str | Path | None = None, home: str | Path | None = None) -> list[Path]:
    """The ``secrets.toml`` files Streamlit reads, in its order of precedence for us."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    user = Path(home) if home is not None else Path.home()
    return [base / ".streamlit" / "secrets.toml", user / ".streamlit" / "secrets.toml"]


def token_from_secrets(paths: Sequence[Path]) -> tuple[str, Path] | None:
    """The first ``CAPI_ACCESS_TOKEN`` found in ``paths`` (missing files are skipped)."""
    for path in paths:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise TokenError(f"{path}: cannot read the secrets file ({e.strerror}).") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            # The parser's message can quote the offending line, which may hold the token.
            raise TokenError(f"{path}: not valid TOML; fix the file (for example "
                             f'{SECRETS_KEY} = "...").') from None
        value = data.get(SECRETS_KEY)
        if value is None:
            continue
        if not isinstance(value, str):
            raise TokenError(f"{path}: {SECRETS_KEY} must be a string.")
        return value, path
    return None


def configured_token(*, env: Mapping[str, str] | None = None,
                     paths: Sequence[Path] | None = None) -> Secret | None:
    """The token from the environment or a secrets file, or ``None`` when neither has one."""
    env = os.environ if env is None else env
    value = env.get(ENV_TOKEN)
    if value is not None and value.strip():
        return _checked(value, f"environment variable {ENV_TOKEN}")
    found = token_from_secrets(secrets_paths() if paths is None else paths)
    if found is not None and found[0].strip():
        return _checked(found[0], f"{found[1]}")
    return None


def resolve_token(*, env: Mapping[str, str] | None = None, paths: Sequence[Path] | None = None,
                  session: str | None = None) -> Secret:
    """The token to send with: configured first, then the page's session value; else :class:`TokenError`."""
    configured = configured_token(env=env, paths=paths)
    if configured is not None:
        return configured
    if session is not None and session.strip():
        return _checked(session, "this browser session")
    raise TokenError(f"no access token configured: {TOKEN_FIX}.")


def _checked(value: str, source: str) -> Secret:
    token = value.strip()
    if any(c.isspace() for c in token) or not token.isprintable():
        raise TokenError(f"the access token from {source} contains spaces or control characters; "
                         "paste it again as one line.")
    return Secret(token, source)


def scrub(obj: Any, secret: Secret | str | None) -> Any:
    """``obj`` (text, or lists/dicts of them) with every occurrence of the token replaced by ``***``."""
    token = secret.reveal() if isinstance(secret, Secret) else secret
    if not token:
        return obj
    if isinstance(obj, str):
        return obj.replace(token, "***")
    if isinstance(obj, Mapping):
        return {scrub(k, token): scrub(v, token) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(scrub(v, token) for v in obj)
    return obj
