"""Meta's own numbers beside ours: the Dataset Quality API, and a comparison with the report's figures.

No log analysis can say what Meta itself sees. The Dataset Quality API does (docs/facts.md §3, §6, §8;
docs/meta-examples.md §D): ``GET {graph_url}/{version}/dataset_quality?dataset_id=ID&fields=web{...}`` answers per
event name with Event Match Quality (``composite_score``, ``match_key_feedback`` per identifier with
its coverage and ACR uplift, ``diagnostics``), ``event_coverage``, ``dedupe_key_feedback`` (the
field table also spells it ``dedup_key_feedback``: both are read), ``data_freshness``, ``acr`` and
``event_potential_aly_acr_increase``. Any section may be absent; identifiers capi-diag does not know
are kept under their own name.

Three pure steps, so each is tested on its own:

* :func:`quality_params` builds the query; :func:`parse_quality` turns Meta's JSON into a typed
  :class:`DatasetQuality` (never raises on an odd body: what it cannot read becomes a note);
* :func:`compare` puts Meta's figures beside the **report's own figures** (the dict
  :func:`capi_diag.report.build_report` returns; nothing is measured again) as rows
  ``{metric, meta, ours, difference, cause}`` per event name and overall. ``meta`` and ``ours`` are in
  Meta's unit (percent 0-100 for coverage, 0-10 for scores, Meta's frequency word for freshness);
  ``ours`` is ``null`` where logs cannot give the figure (ACR, browser-side fbp/external_id);
  ``difference`` is ``ours - meta`` (freshness: buckets, positive when the logs look slower). Every
  difference beyond the metric's tolerance (:data:`DEFAULTS`, ``[meta_quality]`` in the config TOML)
  gets one sentence on its likely cause, chosen from the evidence in the report.

What is compared with what (the report's section and key):

==============================================  ==========================================================
Meta                                            ours
==============================================  ==========================================================
``composite_score`` (0-10)                      ``emq.estimate`` / ``emq.by_event_name[n].estimate``
``match_key_feedback[k].coverage``              ``match_keys[f].valid_coverage`` / ``.by_event_name[n]``
``event_coverage.percentage``                   ``dedup.browser_coverage`` (paired / keys the browser sent)
``dedupe_key_feedback[event_id]`` browser/      share of browser/server rows with an ``event_id``
server events with the key                      (``dedup.*_missing_event_id`` / ``*_rows``)
``... [event_id].overall_browser_coverage``     ``dedup.browser_coverage``
``... [fbp | external_id]`` server events       ``match_keys[fbp | external_id]`` valid coverage
``data_freshness.upload_frequency``             bucket of ``timing.delivery_delay_p50_s`` (bounds below)
==============================================  ==========================================================

Meta publishes figures per event name only. The **overall** Meta figure is the mean of Meta's
per-event figures weighted by the logs' event counts for those names (server rows for EMQ and keys,
browser keys for coverage), so it describes the same mix of events as our overall figure. It is left
out (``meta`` null) when the names Meta reports it for hold less than 95 % of the logs' events, and
without logs there is none. ACR figures have no overall row: an uplift does not average over counts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.meta.client import Attempt, GraphClient
from capi_diag.meta.connect import check_pixel_id
from capi_diag.meta.errors import GraphAPIError

SECTION = "meta_quality"

DEFAULTS: dict[str, Any] = {
    "emq_score": 1.0,
    "match_key_coverage_pp": 5.0,
    "event_coverage_pp": 5.0,
    "dedupe_key_pp": 5.0,
    "freshness_steps": 0,
    "freshness_real_time_max_s": 900,
    "freshness_hourly_max_s": 21_600,
    "freshness_daily_max_s": 172_800,
}
"""Tolerances, overridable in the config TOML's ``[meta_quality]`` table.

* ``emq_score``: points on Meta's 0-10 scale. Meta publishes no EMQ formula and scores how many events
  it matched, which logs cannot show; our estimate is a model, so a point either way is expected.
* ``match_key_coverage_pp``, ``event_coverage_pp``, ``dedupe_key_pp``: percentage points. Meta's
  windows (7 days, about 48 hours for EMQ) rarely equal the logs' period, so a few points of drift
  are normal traffic mix, not a defect.
* ``freshness_steps``: buckets of the ordered scale real_time < hourly < daily < weekly.
* ``freshness_*_max_s``: the median delivery delay (seconds, ``timing.delivery_delay_p50_s``) up to
  which the logs count as real_time / hourly / daily, beyond which weekly. Meta does not publish its
  bucket bounds (docs/facts.md §8); these are capi-diag's: 15 minutes, 6 hours, 2 days.
"""

FRESHNESS_ORDER: tuple[str, ...] = ("real_time", "hourly", "daily", "weekly")

OVERALL_MIN_SHARE = 0.95
"""The overall Meta figure is given only when the event names Meta reports it for hold at least this
share of the logs' events (by the metric's weight); otherwise the overall row shows ours alone."""

SECTIONS: tuple[str, ...] = (
    "event_match_quality", "event_coverage", "dedupe_key_feedback", "data_freshness", "acr",
    "event_potential_aly_acr_increase",
)
"""The per-event sections of Meta's answer (``dedup_key_feedback`` is read as ``dedupe_key_feedback``)."""

DEDUPE_SPELLINGS: tuple[str, ...] = ("dedupe_key_feedback", "dedup_key_feedback")

_SHARE = "{percentage,description}"
WEB_FIELDS: str = (
    "web{event_name,"
    "event_match_quality{composite_score,"
    "match_key_feedback{identifier,coverage{percentage},potential_aly_acr_increase" + _SHARE + "},"
    "diagnostics},"
    "event_coverage{percentage,goal_percentage,description,potential_aly_acr_increase" + _SHARE + "},"
    "dedupe_key_feedback{dedupe_key,browser_events_with_dedupe_key" + _SHARE + ","
    "server_events_with_dedupe_key" + _SHARE + ",overall_browser_coverage_from_dedupe_key" + _SHARE + "},"
    "data_freshness{upload_frequency,description},"
    "acr" + _SHARE + ","
    "event_potential_aly_acr_increase" + _SHARE + "}"
)
"""The ``fields`` of the request: every section the facts list, with its documented sub-fields."""

IDENTIFIER_FIELDS: dict[str, str] = {
    "email": "em", "ip_address": "client_ip_address", "user_agent": "client_user_agent",
    "external_id": "external_id",
    "phone": "ph", "phone_number": "ph", "first_name": "fn", "last_name": "ln", "gender": "ge",
    "date_of_birth": "db", "birthday": "db", "city": "ct", "state": "st", "zip": "zp", "zip_code": "zp",
    "postal_code": "zp", "country": "country", "fbp": "fbp", "browser_id": "fbp", "fbc": "fbc",
    "click_id": "fbc",
    "em": "em", "ph": "ph", "fn": "fn", "ln": "ln", "ge": "ge", "db": "db", "ct": "ct", "st": "st",
    "zp": "zp", "client_ip_address": "client_ip_address", "client_user_agent": "client_user_agent",
}
"""Meta's ``match_key_feedback`` identifier -> the report's ``match_keys`` field. Meta's docs show
``email``, ``ip_address``, ``user_agent`` and ``external_id``; the other names are capi-diag's reading of
Meta's naming (unconfirmed), and the ``user_data`` short names are accepted too. Any other identifier
is kept and shown under its own name, with ``ours`` null."""

PERMISSION_HINT = (
    "The Dataset Quality API also needs the user permission 'Use events dataset' on the dataset and the app "
    "permissions ads_read plus ads_management or business_management; a token made through the client "
    "system user onboarding route does not work with it, and a token generated in Events Manager before "
    "July 2025 needs the advertiser's opt-in."
)

UNITS: dict[str, str] = {
    "emq_composite_score": "score", "match_key_coverage": "percent", "match_key_acr_increase": "percent",
    "event_coverage": "percent", "event_coverage_acr_increase": "percent",
    "dedupe_key_browser_events": "percent", "dedupe_key_server_events": "percent",
    "dedupe_key_browser_coverage": "percent", "data_freshness": "frequency", "acr": "percent",
    "event_potential_acr_increase": "percent",
}
"""Each metric family's unit: ``score`` 0-10, ``percent`` 0-100, ``frequency`` Meta's word."""

_TOLERANCE_KEY: dict[str, str] = {
    "emq_composite_score": "emq_score", "match_key_coverage": "match_key_coverage_pp",
    "event_coverage": "event_coverage_pp", "dedupe_key_browser_events": "dedupe_key_pp",
    "dedupe_key_server_events": "dedupe_key_pp", "dedupe_key_browser_coverage": "dedupe_key_pp",
    "data_freshness": "freshness_steps",
}

_ACR_FAMILIES = frozenset({"match_key_acr_increase", "event_coverage_acr_increase", "acr",
                           "event_potential_acr_increase"})

_LABELS: dict[str, str] = {
    "emq_composite_score": "Event Match Quality (0-10)",
    "match_key_coverage": "Match key coverage: {}",
    "match_key_acr_increase": "Potential ACR increase with {}",
    "event_coverage": "Event coverage (CAPI vs Pixel)",
    "event_coverage_acr_increase": "Potential ACR increase with full coverage",
    "dedupe_key_browser_events": "Browser events with {}",
    "dedupe_key_server_events": "Server events with {}",
    "dedupe_key_browser_coverage": "Browser coverage from {}",
    "data_freshness": "Data freshness",
    "acr": "Additional conversions reported (ACR)",
    "event_potential_acr_increase": "Potential ACR increase with CAPI",
}


# -- Meta's answer, typed ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MatchKey:
    """One ``match_key_feedback`` entry."""

    identifier: str
    coverage: float | None
    acr_increase: float | None = None
    acr_description: str | None = None


@dataclass(frozen=True)
class Diagnostic:
    """One ``event_match_quality.diagnostics`` entry: a problem Meta sees, and its solution."""

    name: str
    description: str | None = None
    solution: str | None = None
    percentage: float | None = None
    affected_event_count: int | None = None
    total_event_count: int | None = None


@dataclass(frozen=True)
class DedupeKey:
    """One ``dedupe_key_feedback`` entry (percentages)."""

    key: str
    browser_events: float | None
    server_events: float | None
    browser_coverage: float | None


@dataclass(frozen=True)
class EventQuality:
    """Meta's figures for one event name; ``sections`` lists the sections Meta sent."""

    event_name: str
    sections: tuple[str, ...] = ()
    composite_score: float | None = None
    match_keys: tuple[MatchKey, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    event_coverage: float | None = None
    coverage_goal: float | None = None
    coverage_acr_increase: float | None = None
    dedupe_keys: tuple[DedupeKey, ...] = ()
    dedupe_spelling: str | None = None
    upload_frequency: str | None = None
    acr: float | None = None
    acr_description: str | None = None
    potential_acr_increase: float | None = None

    @property
    def missing_sections(self) -> tuple[str, ...]:
        return tuple(s for s in SECTIONS if s not in self.sections)


@dataclass(frozen=True)
class DatasetQuality:
    """Meta's Dataset Quality answer for one dataset (Pixel). ``notes`` say what could not be read."""

    dataset_id: str
    events: tuple[EventQuality, ...] = ()
    notes: tuple[str, ...] = ()

    def event(self, name: str) -> EventQuality | None:
        return next((e for e in self.events if e.event_name == name), None)


def quality_params(dataset_id: str) -> dict[str, str]:
    """The query of the Dataset Quality request (the token is never in it)."""
    return {"dataset_id": dataset_id, "fields": WEB_FIELDS}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            f = float(value.strip().rstrip("%"))
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _int(value: Any) -> int | None:
    f = _num(value)
    return int(f) if f is not None and f == int(f) else None


def _pct(value: Any) -> float | None:
    """``{"percentage": 34.1, ...}`` (or a bare number) -> 34.1."""
    return _num(value.get("percentage")) if isinstance(value, Mapping) else _num(value)


def _desc(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("description"), str):
        return value["description"]
    return None


def _list(value: Any) -> list[Any]:
    """A Graph list: a plain JSON array, or an edge ``{"data": [...]}``."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("data"), list):
        return value["data"]
    return []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _parse_event(raw: Mapping[str, Any], index: int, notes: list[str]) -> EventQuality:
    name = _text(raw.get("event_name")) or f"(no event_name #{index + 1})"
    sections: list[str] = []
    kw: dict[str, Any] = {}
    emq = raw.get("event_match_quality")
    if isinstance(emq, Mapping):
        sections.append("event_match_quality")
        kw["composite_score"] = _num(emq.get("composite_score"))
        keys = []
        for item in _list(emq.get("match_key_feedback")):
            if not isinstance(item, Mapping) or _text(item.get("identifier")) is None:
                notes.append(f"{name}: a match_key_feedback entry without an identifier was skipped.")
                continue
            uplift = item.get("potential_aly_acr_increase")
            keys.append(MatchKey(str(item["identifier"]).strip(), _pct(item.get("coverage")), _pct(uplift),
                                 _desc(uplift)))
        kw["match_keys"] = tuple(keys)
        diags = []
        for item in _list(emq.get("diagnostics")):
            if not isinstance(item, Mapping):
                continue
            diags.append(Diagnostic(_text(item.get("name")) or "(unnamed diagnostic)", _text(item.get("description")),
                                    _text(item.get("solution")), _num(item.get("percentage")),
                                    _int(item.get("affected_event_count")), _int(item.get("total_event_count"))))
        kw["diagnostics"] = tuple(diags)
    cov = raw.get("event_coverage")
    if isinstance(cov, Mapping):
        sections.append("event_coverage")
        kw["event_coverage"] = _num(cov.get("percentage"))
        kw["coverage_goal"] = _num(cov.get("goal_percentage"))
        kw["coverage_acr_increase"] = _pct(cov.get("potential_aly_acr_increase"))
    spelling = next((s for s in DEDUPE_SPELLINGS if s in raw), None)
    if spelling is not None:
        sections.append("dedupe_key_feedback")
        kw["dedupe_spelling"] = spelling
        dks = []
        for item in _list(raw.get(spelling)):
            if not isinstance(item, Mapping) or _text(item.get("dedupe_key") or item.get("dedup_key")) is None:
                notes.append(f"{name}: a {spelling} entry without a dedupe_key was skipped.")
                continue
            dks.append(DedupeKey(str(item.get("dedupe_key") or item.get("dedup_key")).strip(),
                                 _pct(item.get("browser_events_with_dedupe_key")),
                                 _pct(item.get("server_events_with_dedupe_key")),
                                 _pct(item.get("overall_browser_coverage_from_dedupe_key"))))
        kw["dedupe_keys"] = tuple(dks)
    fresh = raw.get("data_freshness")
    if isinstance(fresh, Mapping):
        sections.append("data_freshness")
        freq = _text(fresh.get("upload_frequency"))
        kw["upload_frequency"] = freq.strip().lower().replace(" ", "_").replace("-", "_") if freq else None
        if freq and kw["upload_frequency"] not in FRESHNESS_ORDER:
            notes.append(f"{name}: data_freshness.upload_frequency {freq!r} is not one of "
                         f"{', '.join(FRESHNESS_ORDER)}; it is shown but not compared.")
    acr = raw.get("acr")
    if isinstance(acr, Mapping):
        sections.append("acr")
        kw["acr"] = _pct(acr)
        kw["acr_description"] = _desc(acr)
    potential = raw.get("event_potential_aly_acr_increase")
    if isinstance(potential, Mapping):
        sections.append("event_potential_aly_acr_increase")
        kw["potential_acr_increase"] = _pct(potential)
    return EventQuality(name, tuple(sections), **kw)


def parse_quality(dataset_id: str, body: Any) -> DatasetQuality:
    """A :class:`DatasetQuality` from Meta's decoded JSON (pure; any body shape, never raises)."""
    notes: list[str] = []
    web = body.get("web") if isinstance(body, Mapping) else None
    if web is None:
        notes.append("Meta's answer has no web section: Meta reports no web events for this dataset (yet).")
    events: list[EventQuality] = []
    seen: set[str] = set()
    for i, raw in enumerate(_list(web)):
        if not isinstance(raw, Mapping):
            notes.append(f"web[{i}] is not an object; skipped.")
            continue
        ev = _parse_event(raw, i, notes)
        if ev.event_name in seen:
            notes.append(f"{ev.event_name}: Meta listed this event name twice; the first entry is used.")
            continue
        seen.add(ev.event_name)
        events.append(ev)
    return DatasetQuality(dataset_id, tuple(events), tuple(notes))


# -- fetching ---------------------------------------------------------------------------------------

@dataclass
class QualityFetch:
    """The outcome of one Dataset Quality request: the parsed answer, or Meta's refusal explained."""

    dataset_id: str
    quality: DatasetQuality | None = None
    error: GraphAPIError | None = None
    attempts: list[Attempt] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.error is not None and self.error.entry.kind in ("config", "permission")


def _with_hint(error: GraphAPIError) -> GraphAPIError:
    """The error with the Dataset Quality API's own permission requirements added to the fix."""
    if error.entry.kind not in ("config", "permission") or error.code in (None, 190, 102, 104):
        return error
    entry = replace(error.entry, fix=f"{error.entry.fix} {PERMISSION_HINT}")
    return GraphAPIError(http_status=error.http_status, code=error.code, error_subcode=error.error_subcode,
                         type=error.type, message=error.meta_message, user_title=error.user_title,
                         user_msg=error.user_msg, fbtrace_id=error.fbtrace_id, is_transient=error.is_transient,
                         endpoint=error.endpoint, entry=entry, method=error.method)


def fetch_quality(client: GraphClient, dataset_id: str) -> QualityFetch:
    """Read Meta's Dataset Quality figures for ``dataset_id`` (the Pixel ID) with ``client``'s token."""
    dataset = check_pixel_id(dataset_id)
    got = client.get("dataset_quality", quality_params(dataset))
    if not got.ok or got.body is None:
        error = _with_hint(got.error) if got.error is not None else None
        return QualityFetch(dataset, error=error, attempts=got.attempts, findings=list(got.findings))
    return QualityFetch(dataset, quality=parse_quality(dataset, got.body), attempts=got.attempts,
                        findings=list(got.findings))


# -- tolerances -------------------------------------------------------------------------------------

def tolerances(config: Config | None = None) -> dict[str, Any]:
    """:data:`DEFAULTS` overridden by ``[meta_quality]``; each value >= 0, freshness bounds increasing."""
    config = config or Config()
    opts = config.options(SECTION, DEFAULTS)
    for key, value in opts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{config.source}: [{SECTION}] {key} must be a number >= 0, found {value!r}.")
    if not isinstance(opts["freshness_steps"], int):
        raise ConfigError(f"{config.source}: [{SECTION}] freshness_steps must be a whole number of buckets, "
                          f"found {opts['freshness_steps']!r}.")
    bounds = (opts["freshness_real_time_max_s"], opts["freshness_hourly_max_s"], opts["freshness_daily_max_s"])
    if not bounds[0] < bounds[1] < bounds[2]:
        raise ConfigError(f"{config.source}: [{SECTION}] freshness_real_time_max_s < freshness_hourly_max_s < "
                          f"freshness_daily_max_s must hold, found {bounds[0]}, {bounds[1]}, {bounds[2]}.")
    return opts


def freshness_bucket(delay_s: float | None, tol: Mapping[str, Any]) -> str | None:
    """The upload frequency word for a median delivery delay in seconds (capi-diag's bounds)."""
    if delay_s is None:
        return None
    if delay_s <= tol["freshness_real_time_max_s"]:
        return "real_time"
    if delay_s <= tol["freshness_hourly_max_s"]:
        return "hourly"
    if delay_s <= tol["freshness_daily_max_s"]:
        return "daily"
    return "weekly"


# -- the comparison ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogsContext:
    """What the logs cover, for the causes: their period (UTC seconds) and Pixel ids, and their files."""

    first_time: int | None = None
    last_time: int | None = None
    pixel_ids: tuple[str, ...] = ()
    files: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def period(self) -> str | None:
        if self.first_time is None or self.last_time is None:
            return None
        return f"{_day(self.first_time)} to {_day(self.last_time)}"


@dataclass(frozen=True)
class Row:
    """One line of the table: a metric, Meta's figure, ours, ``ours - meta``, and the likely cause."""

    metric: str
    meta: float | str | None
    ours: float | str | None
    difference: float | int | None
    cause: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "meta": self.meta, "ours": self.ours, "difference": self.difference,
                "cause": self.cause}


@dataclass
class Comparison:
    """Meta's figures beside ours, per event name (Meta's order) and overall."""

    dataset_id: str
    tolerances: dict[str, Any]
    by_event_name: dict[str, list[Row]]
    overall: list[Row]
    diagnostics: dict[str, list[dict[str, Any]]]
    missing_sections: dict[str, list[str]]
    only_in_logs: dict[str, int]
    unknown_identifiers: list[str]
    notes: list[str]
    with_logs: bool
    logs: dict[str, Any] | None = None
    source: dict[str, Any] | None = None

    @property
    def beyond_tolerance(self) -> int:
        """Rows (per event name and overall) whose difference is beyond tolerance."""
        rows = [r for rs in self.by_event_name.values() for r in rs] + self.overall
        return sum(1 for r in rows if r.cause is not None)

    def as_dict(self) -> dict[str, Any]:
        """The JSON document (the same dict feeds JSON, Markdown and the page)."""
        return {
            "dataset_id": self.dataset_id,
            "source": self.source,
            "with_logs": self.with_logs,
            "logs": self.logs,
            "tolerances": dict(self.tolerances),
            "beyond_tolerance": self.beyond_tolerance,
            "by_event_name": {n: [r.as_dict() for r in rows] for n, rows in self.by_event_name.items()},
            "overall": [r.as_dict() for r in self.overall],
            "diagnostics": self.diagnostics,
            "missing_sections": self.missing_sections,
            "only_in_logs": self.only_in_logs,
            "unknown_identifiers": self.unknown_identifiers,
            "notes": self.notes,
        }


def family(metric: str) -> str:
    """``match_key_coverage:email`` -> ``match_key_coverage``."""
    return metric.split(":", 1)[0]


def unit(metric: str) -> str:
    return UNITS.get(family(metric), "percent")


def label(metric: str) -> str:
    """The analyst's words for a metric id."""
    fam, _, arg = metric.partition(":")
    text = _LABELS.get(fam, fam)
    return text.format(arg) if "{}" in text else text


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _evaluated(report: Mapping[str, Any] | None, section: str) -> Mapping[str, Any] | None:
    sec = report.get(section) if report is not None else None
    return sec if isinstance(sec, Mapping) and sec.get("status") == "evaluated" else None


def _share_pct(value: Any) -> float | None:
    f = _num(value)
    return f * 100 if f is not None else None


def _per(section: Mapping[str, Any] | None, name: str | None) -> Mapping[str, Any] | None:
    """The section itself (overall) or its ``by_event_name[name]`` entry."""
    if section is None:
        return None
    if name is None:
        return section
    entry = _get(section, "by_event_name", name)
    return entry if isinstance(entry, Mapping) else None


class _Ours:
    """The report's figures, in Meta's units (no measurement: lookups and unit changes only)."""

    def __init__(self, report: Mapping[str, Any] | None, tol: Mapping[str, Any]) -> None:
        self.report = report
        self.tol = tol
        self.dedup = _evaluated(report, "dedup")
        self.keys = _evaluated(report, "match_keys")
        self.emq = _evaluated(report, "emq")
        self.timing = _evaluated(report, "timing")
        self.contract = _evaluated(report, "contract")

    def emq_score(self, name: str | None) -> float | None:
        return _num(_get(_per(self.emq, name), "estimate"))

    def key_coverage(self, field_name: str | None, name: str | None) -> float | None:
        entry = _get(self.keys, field_name) if field_name else None
        if not isinstance(entry, Mapping) or entry.get("in_log") is False:
            return None
        if name is None:
            return _share_pct(entry.get("valid_coverage"))
        return _share_pct(_get(entry, "by_event_name", name))

    def event_coverage(self, name: str | None) -> float | None:
        return _share_pct(_get(_per(self.dedup, name), "browser_coverage"))

    def with_event_id(self, side: str, name: str | None) -> float | None:
        d = _per(self.dedup, name)
        rows, missing = _num(_get(d, f"{side}_rows")), _num(_get(d, f"{side}_missing_event_id"))
        if not rows or missing is None:
            return None
        return (rows - missing) / rows * 100

    def dedupe(self, key: str, part: str, name: str | None) -> float | None:
        if key == "event_id":
            if part == "browser_events":
                return self.with_event_id("browser", name)
            if part == "server_events":
                return self.with_event_id("server", name)
            return self.event_coverage(name)
        if key in ("fbp", "external_id") and part == "server_events":
            return self.key_coverage(key, name)
        return None  # browser-side fbp/external_id and their incremental coverage are not in the report

    def freshness(self, name: str | None) -> str | None:
        if self.timing is None or self.timing.get("sent_at_column") is False:
            return None
        return freshness_bucket(_num(_get(_per(self.timing, name), "delivery_delay_p50_s")), self.tol)

    # weights and denominators per event name (for the overall Meta figure and the sampling check)
    def server_rows(self, name: str | None) -> float | None:
        return _num(_get(_per(self.dedup, name), "server_rows"))

    def browser_rows(self, name: str | None) -> float | None:
        return _num(_get(_per(self.dedup, name), "browser_rows"))

    def browser_keys(self, name: str | None) -> float | None:
        d = _per(self.dedup, name)
        parts = [_num(_get(d, k)) for k in ("paired", "outside_window", "browser_only")]
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)

    def emq_rows(self, name: str | None) -> float | None:
        return _num(_get(_per(self.emq, name), "rows"))

    def names(self) -> list[str]:
        """Event names in the logs (both logs, then the EMQ scope), in the report's order."""
        found: list[str] = []
        for sec in (self.dedup, self.emq):
            for n in (_get(sec, "by_event_name") or {}):
                if n not in found:
                    found.append(n)
        return found


def _weight_of(ours: _Ours, metric: str) -> Callable[[str | None], float | None]:
    fam = family(metric)
    if fam == "emq_composite_score":
        return ours.emq_rows
    if fam in ("event_coverage", "dedupe_key_browser_coverage"):
        return ours.browser_keys
    if fam == "dedupe_key_browser_events":
        return ours.browser_rows
    return ours.server_rows


def _meta_rows(ev: EventQuality) -> list[tuple[str, float | str | None]]:
    """Meta's figures for one event, in table order, as (metric id, value)."""
    out: list[tuple[str, float | str | None]] = []
    if "event_match_quality" in ev.sections:
        out.append(("emq_composite_score", ev.composite_score))
        out += [(f"match_key_coverage:{k.identifier}", k.coverage) for k in ev.match_keys]
        out += [(f"match_key_acr_increase:{k.identifier}", k.acr_increase) for k in ev.match_keys
                if k.acr_increase is not None]
    if "event_coverage" in ev.sections:
        out.append(("event_coverage", ev.event_coverage))
        if ev.coverage_acr_increase is not None:
            out.append(("event_coverage_acr_increase", ev.coverage_acr_increase))
    for k in ev.dedupe_keys:
        out += [(f"dedupe_key_browser_events:{k.key}", k.browser_events),
                (f"dedupe_key_server_events:{k.key}", k.server_events),
                (f"dedupe_key_browser_coverage:{k.key}", k.browser_coverage)]
    if "data_freshness" in ev.sections:
        out.append(("data_freshness", ev.upload_frequency))
    if "acr" in ev.sections:
        out.append(("acr", ev.acr))
    if "event_potential_aly_acr_increase" in ev.sections:
        out.append(("event_potential_acr_increase", ev.potential_acr_increase))
    return out


def _ours_for(ours: _Ours, metric: str, name: str | None) -> float | str | None:
    fam, _, arg = metric.partition(":")
    if fam == "emq_composite_score":
        return ours.emq_score(name)
    if fam == "match_key_coverage":
        return ours.key_coverage(IDENTIFIER_FIELDS.get(arg.lower()), name)
    if fam == "event_coverage":
        return ours.event_coverage(name)
    if fam.startswith("dedupe_key_"):
        return ours.dedupe(arg.lower(), fam.removeprefix("dedupe_key_"), name)
    if fam == "data_freshness":
        return ours.freshness(name)
    return None  # ACR figures: Meta's model of conversions, which no log holds


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value + 0.0, digits)


def _difference(metric: str, meta: Any, ours: Any) -> float | int | None:
    if meta is None or ours is None:
        return None
    if unit(metric) == "frequency":
        if meta not in FRESHNESS_ORDER or ours not in FRESHNESS_ORDER:
            return None
        return FRESHNESS_ORDER.index(ours) - FRESHNESS_ORDER.index(meta)
    return _round(float(ours) - float(meta))


def _beyond(metric: str, difference: float | int | None, tol: Mapping[str, Any]) -> bool:
    key = _TOLERANCE_KEY.get(family(metric))
    if difference is None or key is None:
        return False
    return abs(difference) > tol[key] + 1e-9


@dataclass
class _CauseInputs:
    dataset_id: str
    ctx: LogsContext | None
    now: float | None
    ours: _Ours
    tol: Mapping[str, Any]


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def _count(n: float) -> str:
    return f"{int(n):,}"


def _of_name(name: str | None) -> str:
    return f" of {name}" if name is not None else ""


def _cause(metric: str, name: str | None, meta: Any, ours: Any, diff: float | int, ci: _CauseInputs) -> str:
    """One sentence: the most likely cause of a difference beyond tolerance, from the report's evidence.

    Order: a different dataset (the logs' Pixel ids); what is specific to the metric (EMQ's unpublished
    model, freshness read from ``sent_at``, a key sent invalid); chance on few events (two standard
    errors of a share); test events; events Meta drops as invalid; Meta pairing almost nothing; logs
    older than Meta's 7 days; else the windows, by the sign of the difference."""
    fam, _, arg = metric.partition(":")
    ctx, o = ci.ctx, ci.ours
    if ctx is not None and ctx.pixel_ids:
        if ci.dataset_id not in ctx.pixel_ids:
            return (f"The logs hold events for Pixel {', '.join(ctx.pixel_ids)}, not dataset {ci.dataset_id}: "
                    "Meta's figures describe a different dataset than the logs.")
        if len(ctx.pixel_ids) > 1:
            return (f"The logs mix Pixels {', '.join(ctx.pixel_ids)} while Meta's figures cover dataset "
                    f"{ci.dataset_id} only: filter the logs to Pixel {ci.dataset_id} before comparing.")
    if fam == "emq_composite_score":
        return ("Meta publishes no EMQ formula and its score also reflects how many events it matched to "
                "Meta accounts over its recent window (about 48 hours), which logs cannot show; capi-diag's "
                "estimate scores only which keys are sent and valid, with its own published weights.")
    if fam == "data_freshness":
        p50 = _num(_get(_per(o.timing, name), "delivery_delay_p50_s"))
        return (f"Meta's bucket is how often events reached it over its last 7 days, while the logs' median "
                f"delay from event_time to sent_at is {p50:g} s: sent_at may record when your server queued "
                "the event rather than when Meta received it, and capi-diag's bucket bounds are its own "
                "(Meta does not publish them).")
    if fam == "match_key_coverage" and name is None:
        fld = IDENTIFIER_FIELDS.get(arg.lower())
        entry = _get(o.keys, fld) if fld else None
        present = _share_pct(_get(entry, "coverage"))
        defects = {k: v for k, v in (_get(entry, "defects") or {}).items() if isinstance(v, int) and v > 0}
        if present is not None and abs(present - float(meta)) <= ci.tol["match_key_coverage_pp"] and defects:
            listed = ", ".join(f"{k} {v:,}" for k, v in sorted(defects.items(), key=lambda kv: -kv[1]))
            return (f"Meta's figure is close to the share of events that carry {fld} at all ({present:.1f} %): "
                    f"capi-diag counts only valid values, and {sum(defects.values()):,} rows send it invalid "
                    f"({listed}).")
    if unit(metric) == "percent":
        n = _weight_of(o, metric)(name)
        if n:
            p = min(max((float(meta) + float(ours)) / 200, 0.0), 1.0)
            se_pp = 100 * math.sqrt(p * (1 - p) / n)
            if abs(diff) <= 2 * se_pp:
                return (f"The logs hold only {_count(n)} events{_of_name(name)} for this figure: a share measured "
                        f"on so few can differ from Meta's by {abs(diff):.1f} points by chance (sampling).")
        contract = _per(o.contract, name)
        rows = _num(_get(contract, "rows") if name is not None else _get(contract, "server_rows"))
        test = _num(_get(contract, "test_event_code_present"))
        if rows and test and 100 * test / rows >= abs(diff) / 2:
            return (f"{_count(test)} of {_count(rows)} server events{_of_name(name)} in the logs carry a "
                    "test_event_code: that test traffic counts fully in the logs, while Meta may discard test "
                    "events whose made-up customer data matches no account.")
        stale = _num(_get(_per(o.timing, name), "stale_over_7d")) or 0
        thin = _num(_get(contract, "insufficient_user_data")) or 0
        if rows and stale + thin and 100 * (stale + thin) / rows >= abs(diff) / 2:
            return (f"{_count(stale + thin)} of {_count(rows)} server events{_of_name(name)} in the logs are older "
                    "than 7 days when sent or carry too little customer information: Meta drops such events "
                    "as invalid, the logs count them.")
        if fam in ("event_coverage", "dedupe_key_browser_coverage") and float(meta) <= 1 and float(ours) >= 25:
            return ("Meta pairs almost no browser events with server events while the logs pair most: the server "
                    "most likely sends to another dataset than this Pixel (check the Pixel ID in its Conversions "
                    "API URL), or the ids the logs record are not where Meta reads them (CAPI: top-level "
                    "event_id; Pixel: the eventID option, fbq's fourth argument).")
    if ctx is not None and ctx.last_time is not None and ci.now is not None and ci.now - ctx.last_time > 7 * 86_400:
        return (f"The logs end on {_day(ctx.last_time)}, more than 7 days before Meta's figures were read, "
                "while Meta's figures cover only its last 7 days: the two describe different traffic.")
    window = "about 48 hours" if fam in ("emq_composite_score", "match_key_coverage") else "7 days"
    period = ctx.period() if ctx is not None else None
    logs = f"the logs cover {period}" if period else "the logs cover the period they were exported for"
    if diff > 0:
        return (f"Meta's figure covers its last {window} and {logs}: the traffic or setup in Meta's window may "
                "differ from the logs' period, and events Meta dropped as invalid or never received count in "
                "the logs but not at Meta.")
    return (f"Meta's figure covers its last {window} and {logs}: Meta's window may hold traffic the logs do not "
            "(another server or app sending to this dataset, or a partial log export).")


def compare(
    quality: DatasetQuality,
    report: Mapping[str, Any] | None,
    *,
    context: LogsContext | None = None,
    tolerances: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> Comparison:
    """Meta's figures beside the report's (pure). ``report`` is :func:`capi_diag.report.build_report`'s
    dict, or ``None`` for Meta's figures alone; ``now`` (UTC seconds) lets a cause say the logs are
    older than Meta's window."""
    tol = dict(DEFAULTS if tolerances is None else tolerances)
    ours = _Ours(report, tol)
    ci = _CauseInputs(quality.dataset_id, context, now, ours, tol)
    with_logs = report is not None
    by_name: dict[str, list[Row]] = {}
    diagnostics: dict[str, list[dict[str, Any]]] = {}
    missing: dict[str, list[str]] = {}
    unknown: list[str] = []
    metrics_seen: list[str] = []
    meta_values: dict[str, dict[str, float]] = {}
    for ev in quality.events:
        rows: list[Row] = []
        for metric, meta in _meta_rows(ev):
            if family(metric) == "match_key_coverage":
                ident = metric.partition(":")[2]
                if ident.lower() not in IDENTIFIER_FIELDS and ident not in unknown:
                    unknown.append(ident)
            value = _round(meta) if isinstance(meta, float) else meta
            our = _ours_for(ours, metric, ev.event_name) if with_logs else None
            our = _round(our) if isinstance(our, float) else our
            diff = _difference(metric, value, our)
            cause = _cause(metric, ev.event_name, value, our, diff, ci) if _beyond(metric, diff, tol) else None
            rows.append(Row(metric, value, our, diff, cause))
            if metric not in metrics_seen:
                metrics_seen.append(metric)
            if isinstance(value, float):
                meta_values.setdefault(metric, {})[ev.event_name] = value
        by_name[ev.event_name] = rows
        if ev.diagnostics:
            diagnostics[ev.event_name] = [vars(d).copy() for d in ev.diagnostics]
        if ev.missing_sections:
            missing[ev.event_name] = list(ev.missing_sections)
    overall: list[Row] = []
    only_in_logs: dict[str, int] = {}
    notes = list(quality.notes)
    if with_logs:
        for metric in metrics_seen:
            if family(metric) in _ACR_FAMILIES:
                continue  # an uplift of conversions does not average over event counts
            meta = _weighted(meta_values.get(metric, {}), _weight_of(ours, metric))
            our = _ours_for(ours, metric, None)
            our = _round(our) if isinstance(our, float) else our
            if meta is None and our is None:
                continue
            diff = _difference(metric, meta, our)
            cause = _cause(metric, None, meta, our, diff, ci) if _beyond(metric, diff, tol) else None
            overall.append(Row(metric, meta, our, diff, cause))
        for n in ours.names():
            if quality.event(n) is None:
                only_in_logs[n] = int(ours.server_rows(n) or 0)
        if only_in_logs:
            listed = ", ".join(f"{n} ({c:,} server events)" for n, c in only_in_logs.items())
            notes.append(f"Meta reports no figures for {listed}: Meta received none in its window, or under "
                         "another name (names are case-sensitive), or the events went to another dataset.")
    if unknown:
        notes.append(f"Identifiers capi-diag does not know are shown under Meta's name, without our figure: "
                     f"{', '.join(unknown)}.")
    if not quality.events:
        notes.append(f"Meta returned no event figures for dataset {quality.dataset_id}.")
    logs = None
    if context is not None:
        logs = {"period": context.period(), "pixel_ids": list(context.pixel_ids),
                "files": {k: list(v) for k, v in context.files.items()}}
    return Comparison(quality.dataset_id, tol, by_name, overall, diagnostics, missing, only_in_logs, unknown,
                      notes, with_logs, logs)


def _weighted(values: Mapping[str, float], weight: Callable[[str | None], float | None]) -> float | None:
    """Meta's per-event figures averaged with the logs' counts as weights; ``None`` unless the names
    Meta reports hold at least :data:`OVERALL_MIN_SHARE` of the logs' events (else Meta's figure would
    describe another mix of events than our overall one)."""
    total = sum((weight(n) or 0) for n in values)
    everything = weight(None) or 0
    if not total or not everything or total < OVERALL_MIN_SHARE * everything:
        return None
    return _round(sum(v * (weight(n) or 0) for n, v in values.items()) / total)


# -- rendering --------------------------------------------------------------------------------------

def fmt(metric: str, value: Any) -> str:
    """A figure in Meta's unit for people: ``96.5 %``, ``6.2``, ``real time``; ``-`` when absent."""
    if value is None:
        return "-"
    kind = unit(metric)
    if kind == "frequency":
        return str(value).replace("_", " ")
    if kind == "score":
        return f"{float(value):.1f}"
    return f"{float(value):.2f}".rstrip("0").rstrip(".") + " %"


def fmt_difference(metric: str, value: Any) -> str:
    if value is None:
        return "-"
    kind = unit(metric)
    if kind == "frequency":
        n = int(value)
        return ("0" if n == 0 else f"{n:+d}") + " bucket" + ("" if abs(n) == 1 else "s")
    if kind == "score":
        return "0.0" if float(value) == 0 else f"{float(value):+.1f}"
    if float(value) == 0:
        return "0 pp"
    return f"{float(value):+.2f}".rstrip("0").rstrip(".") + " pp"


def table_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows of the JSON as the analyst reads them (the page and the Markdown share this)."""
    return [{"metric": label(r["metric"]), "Meta": fmt(r["metric"], r["meta"]), "ours": fmt(r["metric"], r["ours"]),
             "difference": fmt_difference(r["metric"], r["difference"]), "likely cause": r["cause"] or ""}
            for r in rows]


def cause_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One Markdown line per row with a cause: the metric, its difference and the sentence (the page
    shows them under each table, where a sentence reads better than in a grid cell)."""
    return [f"**{label(r['metric'])}** ({fmt_difference(r['metric'], r['difference'])}): {r['cause']}"
            for r in rows if r.get("cause")]


def compared(doc: Mapping[str, Any]) -> int:
    """How many figures of the document have both Meta's and ours (per event name and overall)."""
    rows = list(doc.get("overall", [])) + [r for rs in doc.get("by_event_name", {}).values() for r in rs]
    return sum(1 for r in rows if r.get("difference") is not None)


def _md_table(rows: Sequence[Mapping[str, Any]], with_logs: bool) -> list[str]:
    shown = table_rows(rows)
    if with_logs:
        out = ["| metric | Meta | ours | difference | likely cause |", "| --- | ---: | ---: | ---: | --- |"]
        columns = ("metric", "Meta", "ours", "difference", "likely cause")
    else:
        out = ["| metric | Meta |", "| --- | ---: |"]
        columns = ("metric", "Meta")
    for r in shown:
        out.append("| " + " | ".join(r[c].replace("|", "\\|") for c in columns) + " |")
    return out


def to_markdown(doc: Mapping[str, Any]) -> str:
    """The comparison document (:meth:`Comparison.as_dict`) as Markdown."""
    lines = [f"# Meta's view of dataset {doc['dataset_id']}", ""]
    if doc.get("with_logs"):
        logs = doc.get("logs") or {}
        period = logs.get("period") or "unknown period"
        lines.append(f"Meta's figures beside capi-diag's from the logs ({period}). Difference = ours - Meta; "
                     f"{doc['beyond_tolerance']} beyond tolerance.")
    else:
        lines.append("Meta's figures only (no logs given: pass --browser and --server to compare).")
    tol = doc.get("tolerances") or {}
    lines += ["", "Tolerances (beyond them a difference gets its likely cause): EMQ {emq_score:g} point, match "
              "keys {match_key_coverage_pp:g} pp, event coverage {event_coverage_pp:g} pp, dedup keys "
              "{dedupe_key_pp:g} pp, freshness {freshness_steps} bucket(s).".format(**tol), ""]
    if doc.get("overall"):
        lines += ["## Overall", "", "Meta's overall figure: its per-event figures weighted by the logs' event "
                  "counts.", ""] + _md_table(doc["overall"], True) + [""]
    for name, rows in doc.get("by_event_name", {}).items():
        lines += [f"## {name}", ""]
        missing = doc.get("missing_sections", {}).get(name)
        if missing:
            lines += [f"Meta sent no {', '.join(missing)} for this event.", ""]
        if rows:
            lines += _md_table(rows, bool(doc.get("with_logs"))) + [""]
        for d in doc.get("diagnostics", {}).get(name, []):
            share = f" ({d['percentage']:g} %" if d.get("percentage") is not None else ""
            if share and d.get("affected_event_count") is not None and d.get("total_event_count") is not None:
                share += f", {d['affected_event_count']:,} of {d['total_event_count']:,} events"
            share += ")" if share else ""
            lines.append(f"- **Meta diagnostic: {d['name']}**{share}. {d.get('description') or ''} "
                         f"Solution: {d.get('solution') or '-'}".rstrip())
        if doc.get("diagnostics", {}).get(name):
            lines.append("")
    if doc.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    return "\n".join(lines).rstrip() + "\n"
