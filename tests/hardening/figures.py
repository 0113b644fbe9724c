"""Figures the hardening suite publishes: each test module records its counts here, and
``bench/hardening_report.py`` collates them into ``bench/results/hardening.json`` / ``.md`` and the
"Reliability and security" table of docs/reliability.md.

A figure is written to ``$CAPI_HARDENING_OUT/<group>.json`` (default ``bench/results/hardening/``),
one JSON object per group, merged key by key, so modules never overwrite each other.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_LOCK = threading.Lock()


def out_dir() -> Path:
    path = Path(os.environ.get("CAPI_HARDENING_OUT") or ROOT / "bench" / "results" / "hardening")
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(group: str, **figures: Any) -> None:
    """Merge ``figures`` into the group's JSON file (e.g. ``record("hostile_files", tried=1000)``)."""
    with _LOCK:
        path = out_dir() / f"{group}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(figures)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
