"""Where the files that ship with capi-diag are: the demo logs, the report's JSON Schema, the
Streamlit app and its config.

In a clone they are the checkout's own files (``data/``, ``docs/report.schema.json``, ``app.py``,
``.streamlit/config.toml``), the single source. The wheel carries copies of exactly those files in
the same relative layout under ``capi_diag/_bundle/`` (``[tool.hatch.build.targets.wheel.force-include]``
in pyproject.toml), so one relative name finds a file in both places and nothing else needs to know
how capi-diag was installed. The bundle wins when it is there: an installed package never reads files
from whatever folder happens to sit next to ``site-packages``.

Paths from here are for opening files; what a person sees (the import report, the pages, the CLI's
messages) names a file by its name only, never by a path into a checkout or an installation.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
BUNDLE_DIR = PACKAGE_DIR / "_bundle"
CHECKOUT_DIR = PACKAGE_DIR.parent

APP = "app.py"
STREAMLIT_CONFIG = ".streamlit/config.toml"
REPORT_SCHEMA = "docs/report.schema.json"
DEMO_DIR = "data"
DEMO_FILES = {"browser": "browser_events.csv", "server": "server_events.csv"}
DEMO_EXTRAS = {"orders": "orders.csv", "send_log": "send_log.jsonl"}
"""The demo's optional inputs: the shop's orders export and the server's send log."""

BUNDLED = (APP, STREAMLIT_CONFIG, REPORT_SCHEMA, DEMO_DIR)
"""What the wheel carries (files, and the ``data/`` folder whole); the wheel test compares each with the checkout."""


def root() -> Path:
    """The folder the bundled files are relative to: the installed bundle, else the checkout."""
    return BUNDLE_DIR if (BUNDLE_DIR / APP).is_file() else CHECKOUT_DIR


def path(name: str) -> Path:
    """The file (or folder) ``name``, one of :data:`BUNDLED` or a file under them, e.g. ``data/manifest.json``."""
    return root() / name


def demo_dir() -> Path:
    """The demo logs' folder; ``CAPI_DEMO_DIR`` overrides it (tests, or a team's own demo set)."""
    return Path(os.environ.get("CAPI_DEMO_DIR") or path(DEMO_DIR))


def demo_paths() -> dict[str, Path] | None:
    """The demo logs by role, or ``None`` when either is missing."""
    found = {role: demo_dir() / name for role, name in DEMO_FILES.items()}
    return found if all(p.is_file() for p in found.values()) else None


def demo_extra_paths() -> dict[str, Path]:
    """The demo's orders export and send log that exist (by input name)."""
    found = {name: demo_dir() / file for name, file in DEMO_EXTRAS.items()}
    return {name: p for name, p in found.items() if p.is_file()}
