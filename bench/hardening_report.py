"""Collates the hardening suite's figures (``make hardening``) into one table.

Reads ``bench/results/hardening/*.json`` (written by ``tests/hardening/figures.record``), writes
``bench/results/hardening.json`` and ``bench/results/hardening.md`` and prints the Markdown table
that docs/reliability.md quotes. Exits 1 when a figure that must be
zero (crashes, hangs, silent losses, leaks) is not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "results" / "hardening"
MUST_BE_ZERO = ("crashes", "hangs", "silent_losses", "token_leaks", "pii_leaks", "failures", "leaks")


def collate(src: Path = SRC) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(src.glob("*.json"))}


def to_markdown(groups: dict[str, dict]) -> str:
    lines = ["| group | figure | value |", "|---|---|---|"]
    for group, figures in groups.items():
        for name, value in figures.items():
            shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            lines.append(f"| {group} | {name} | {shown} |")
    return "\n".join(lines) + "\n"


def bad_figures(groups: dict[str, dict]) -> list[str]:
    return [f"{g}.{k} = {v}" for g, figs in groups.items() for k, v in figs.items()
            if any(k == z or k.endswith("_" + z) for z in MUST_BE_ZERO) and v]


def main() -> int:
    groups = collate()
    if not groups:
        print(f"no hardening figures under {SRC}: run `make hardening`", file=sys.stderr)
        return 1
    (ROOT / "results" / "hardening.json").write_text(json.dumps(groups, indent=2, sort_keys=True) + "\n")
    md = to_markdown(groups)
    (ROOT / "results" / "hardening.md").write_text(md)
    print(md)
    bad = bad_figures(groups)
    for line in bad:
        print(f"hardening: must be 0: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
