"""Local validation of a test payload with the diagnostics' own rules, before it is sent.

A rule is written once: the payload's events become canonical server records
(:func:`event_to_record`), :meth:`capi_diag.engine.dataset.Dataset.from_records` loads them into DuckDB,
and each analysis of :data:`SECTIONS` reports its ``failing_rows`` exactly as it does for a log
file. Findings of severity ``error`` block the send (Meta would reject the batch, or the data would
be useless); ``warning`` findings are shown and make the send unclean for the promotion window.

On top of the analyses, every event must carry ``event_id`` (dedup), ``fbp`` (browser ID) and client
context (``client_ip_address`` and ``client_user_agent``): the promotion window's definition of a clean
send requires them (:func:`missing_context`).

Sections that need browser logs (pairing, dedup against the Pixel) have nothing to compare here:
the test journeys are server events only. That is the gate's blind spot, said plainly in the CLI
and on the page (:data:`capi_diag.verdict.promotion.BLIND_SPOT`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from capi_diag import diagnostics
from capi_diag.core.config import Config
from capi_diag.core.patterns import USER_DATA_KEYS
from capi_diag.core.schema import CUSTOM_DATA_KEYS, TOP_LEVEL_FIELDS
from capi_diag.diagnostics import FAILING_ROW_COLUMNS
from capi_diag.engine.dataset import Dataset
from capi_diag.engine.db import Database

SECTIONS: tuple[str, ...] = ("match_keys", "contract")
"""Analyses whose rules apply to a server-only batch. ``dedup``/``timing`` compare browser and
server logs or whole-log timelines, which a five-event test journey cannot exercise."""

IGNORED_FINDINGS: frozenset[tuple[str, str]] = frozenset({("contract", "test_event_code_present")})
"""A test send carries its test code on purpose; the check is for production logs."""

CONTEXT_FIELDS: tuple[str, ...] = ("event_id", "fbp", "client_ip_address", "client_user_agent")
SOURCE = "payload"
"""``source_file`` of the records; ``line`` is the event's 1-based position in the batch."""


@dataclass(frozen=True)
class Finding:
    """One local validation finding on one event of the batch."""

    section: str
    finding: str
    severity: str
    position: int
    event_name: str | None
    event_id: str | None
    detail: str | None

    @property
    def label(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.event_name or 'event'} #{self.position}: {self.section}.{self.finding}{detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"section": self.section, "finding": self.finding, "severity": self.severity,
                "position": self.position, "event_name": self.event_name, "event_id": self.event_id,
                "detail": self.detail}


@dataclass
class Validation:
    """The outcome of :func:`validate_events`."""

    findings: list[Finding] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    sections: tuple[str, ...] = ()
    unavailable: tuple[str, ...] = ()

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != "error"]

    @property
    def blocks_send(self) -> bool:
        return bool(self.errors)

    def for_event(self, position: int) -> list[Finding]:
        return [f for f in self.findings if f.position == position]


def event_to_record(event: Mapping[str, Any], position: int) -> dict[str, Any]:
    """The canonical server record of one CAPI event object (the import's JSON mapping, in small)."""
    rec: dict[str, Any] = {"source_file": SOURCE, "line": position}
    for key in ("event_name", "event_id"):
        if event.get(key) is not None:
            rec[key] = str(event[key])
    if event.get("event_time") is not None:
        rec["event_time"] = int(event["event_time"])
    for key in TOP_LEVEL_FIELDS:
        value = event.get(key)
        if value is not None:
            rec[key] = value if isinstance(value, str) else json.dumps(value)
    user = event.get("user_data") or {}
    for key in USER_DATA_KEYS:
        value = user.get(key)
        if value in (None, "", []):
            continue
        values = value if isinstance(value, list) else [value]
        kept = [str(v) for v in values if v not in (None, "")]
        if kept:
            rec[key] = kept
    custom = dict(event.get("custom_data") or {})
    for key in CUSTOM_DATA_KEYS:
        value = custom.pop(key, None)
        if value is None:
            continue
        rec[key] = value if isinstance(value, str) else json.dumps(value)
    if custom:
        rec["custom_data_extra"] = json.dumps(custom, sort_keys=True)
    return rec


def missing_context(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """``"<event_name> #<position>: <field>"`` for each event lacking a field of :data:`CONTEXT_FIELDS`."""
    out = []
    for i, ev in enumerate(events, start=1):
        user = ev.get("user_data") or {}
        for name in CONTEXT_FIELDS:
            value = ev.get(name) if name == "event_id" else user.get(name)
            if value in (None, "", []):
                out.append(f"{ev.get('event_name') or 'event'} #{i}: {name}")
    return out


def validate_events(events: Sequence[Mapping[str, Any]], *, config: Config | None = None,
                    sections: Sequence[str] | None = None) -> Validation:
    """Run the analyses' ``failing_rows`` over ``events``.

    ``sections`` defaults to :data:`SECTIONS`; see :class:`BatchRunner` for why each batch compiles
    the analyses afresh.
    """
    config = config or Config()
    sections = SECTIONS if sections is None else sections
    records = [event_to_record(ev, i) for i, ev in enumerate(events, start=1)]
    findings: list[Finding] = []
    ran: list[str] = []
    unavailable: list[str] = []
    rows_by_section = batch_runner().run(records, config, sections)
    for section in sections:
        rows = rows_by_section.get(section)
        if rows is None:
            unavailable.append(section)
            continue
        ran.append(section)
        for row in rows:
            if (row["section"], row["finding"]) in IGNORED_FINDINGS:
                continue
            findings.append(Finding(
                section=str(row["section"]), finding=str(row["finding"]),
                severity="error" if row["severity"] == "error" else "warning",
                position=int(row["line"]) if row["line"] is not None else 0,
                event_name=row["event_name"], event_id=row["event_id"], detail=row["detail"],
            ))
    findings.sort(key=lambda f: (f.position, f.severity != "error", f.section, f.finding, f.detail or ""))
    return Validation(findings, missing_context(events), tuple(ran), tuple(unavailable))


class BatchRunner:
    """One in-memory DuckDB per process holding the batch under validation.

    Each batch replaces the canonical tables' contents (which drops every measure built from the
    previous batch: :meth:`capi_diag.engine.db.Database.tables_changed`) and runs each section's
    ``failing_rows`` query. The query's SQL is compiled once and reused for every batch: it names
    the tables and holds no rows, so a batch always reads its own rows. The lock keeps concurrent
    page sessions apart.
    """

    def __init__(self) -> None:
        self.db = Database()
        self.lock = threading.Lock()

    def run(self, records: list[dict[str, Any]], config: Config,
            sections: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        with self.lock:
            ds = Dataset.from_records(server=records, db=self.db).using(config)
            for section in sections:
                if section not in diagnostics.ORDER:
                    continue
                mod = diagnostics.module(section)
                if not hasattr(mod, "failing_rows"):
                    continue

                def build(mod: Any = mod) -> Any:
                    table = mod.failing_rows(ds, config).select(*FAILING_ROW_COLUMNS)
                    return table.filter(table.role == "server")

                out[section] = ds.fetch(f"validate.{section}.failing_rows", build)
        return out


_RUNNER: BatchRunner | None = None
_RUNNER_LOCK = threading.Lock()


def batch_runner() -> BatchRunner:
    """The process's one batch runner, made on first use."""
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            _RUNNER = BatchRunner()
        return _RUNNER
