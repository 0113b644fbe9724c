"""Meta's own numbers beside ours: the Dataset Quality parser (Meta's documented examples), the
comparison with a real report's figures (exact), the causes, the tolerances, the stand-in's quality
endpoint over real HTTP on 127.0.0.1, the ``meta-quality`` command and the "Meta's view" page (AppTest)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from capi_diag.api import logs_context
from capi_diag.cli import main
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.engine.db import Database
from capi_diag.io.ingest import Source, import_logs
from capi_diag.meta.client import GraphClient, GraphConfig
from capi_diag.meta.quality import (
    DEFAULTS,
    PERMISSION_HINT,
    WEB_FIELDS,
    DatasetQuality,
    DedupeKey,
    Diagnostic,
    EventQuality,
    LogsContext,
    MatchKey,
    compare,
    compared,
    fetch_quality,
    freshness_bucket,
    label,
    parse_quality,
    quality_params,
    table_rows,
    to_markdown,
    tolerances,
)
from capi_diag.report import build_report
from capi_diag.standins import fake_quality
from capi_diag.standins.fake_server import FakeGraph
from capi_diag.testevents import sender
from capi_diag.ui import meta_view, session, state
from tests.conftest import clean_graph_env

ROOT = Path(__file__).resolve().parents[1]
PIXEL = "1234567890"
TOKEN = "test-token"
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
T0 = int(NOW) - 7200
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# Browser: 4 PageViews, 2 Purchases. Server: 3 of the PageViews (one with em/external_id), both Purchases
# (with em/external_id). So browser coverage PageView 3/4, Purchase 2/2; em valid coverage 1/3 and 2/2.
BROWSER_CSV = "\n".join(
    ["event_name,event_id,event_time,fbp,pixel_id"]
    + [f"PageView,pv-{i + 1},{T0 + 10 * i},fb.1.1799990000000.{i + 1},{PIXEL}" for i in range(4)]
    + [f"Purchase,ord-1,{T0 + 100},fb.1.1799990000000.1,{PIXEL}",
       f"Purchase,ord-2,{T0 + 200},fb.1.1799990000000.2,{PIXEL}"]
).encode()
SERVER_CSV = "\n".join([
    "event_name,event_id,event_time,action_source,em,client_ip_address,client_user_agent,fbp,external_id,sent_at,"
    "pixel_id,value,currency",
    f"PageView,pv-1,{T0 + 1},website,{_h('a@example.com')},93.184.216.34,\"{UA}\",fb.1.1799990000000.1,{_h('u1')},"
    f"{T0 + 3},{PIXEL},,",
    f"PageView,pv-2,{T0 + 11},website,,93.184.216.35,\"{UA}\",fb.1.1799990000000.2,,{T0 + 13},{PIXEL},,",
    f"PageView,pv-3,{T0 + 21},website,,93.184.216.36,\"{UA}\",fb.1.1799990000000.3,,{T0 + 23},{PIXEL},,",
    f"Purchase,ord-1,{T0 + 101},website,{_h('a@example.com')},93.184.216.34,\"{UA}\",fb.1.1799990000000.1,{_h('u1')},"
    f"{T0 + 103},{PIXEL},10.5,EUR",
    f"Purchase,ord-2,{T0 + 201},website,{_h('b@example.com')},93.184.216.35,\"{UA}\",fb.1.1799990000000.2,{_h('u2')},"
    f"{T0 + 203},{PIXEL},20,EUR",
]).encode()


@pytest.fixture(scope="module")
def tiny() -> tuple[dict, LogsContext]:
    """The report of the tiny logs, exactly as ``build_report`` returns it, and the logs' context."""
    with Database() as db:
        ds = import_logs(db, browser=[Source("b.csv", data=BROWSER_CSV)], server=[Source("s.csv", data=SERVER_CSV)])
        return build_report(ds, Config()), logs_context(ds)


@pytest.fixture
def fake():
    with FakeGraph(token=TOKEN, pixel_id=PIXEL, now=lambda: NOW) as fg:
        yield fg


@pytest.fixture
def env(monkeypatch, tmp_path):
    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setattr(sender, "CLOCK", lambda: NOW)
    monkeypatch.setattr(sender, "SLEEP", lambda s: None)
    monkeypatch.setenv("CAPI_ACCESS_TOKEN", TOKEN)
    return monkeypatch


def _rows(doc_rows: list[dict]) -> dict[str, dict]:
    return {r["metric"]: r for r in doc_rows}


def _ev(name: str, **kw) -> EventQuality:
    """An EventQuality whose sections are the ones given."""
    sections = []
    if "composite_score" in kw or "match_keys" in kw:
        sections.append("event_match_quality")
    if "event_coverage" in kw:
        sections.append("event_coverage")
    if "dedupe_keys" in kw:
        sections.append("dedupe_key_feedback")
    if "upload_frequency" in kw:
        sections.append("data_freshness")
    return EventQuality(name, tuple(sections), **kw)


# -- the request and the parser ----------------------------------------------------------------------

def test_quality_params_request_every_section_and_subfield():
    assert quality_params("42") == {"dataset_id": "42", "fields": WEB_FIELDS}
    web = fake_quality.parse_fields(WEB_FIELDS)["web"]
    assert set(web) == {"event_name", "event_match_quality", "event_coverage", "dedupe_key_feedback",
                        "data_freshness", "acr", "event_potential_aly_acr_increase"}
    assert set(web["event_match_quality"]) == {"composite_score", "match_key_feedback", "diagnostics"}
    assert web["event_match_quality"]["match_key_feedback"] == {
        "identifier": None, "coverage": {"percentage": None},
        "potential_aly_acr_increase": {"percentage": None, "description": None}}
    assert set(web["dedupe_key_feedback"]) == {"dedupe_key", "browser_events_with_dedupe_key",
                                               "server_events_with_dedupe_key",
                                               "overall_browser_coverage_from_dedupe_key"}
    assert set(web["event_coverage"]) == {"percentage", "goal_percentage", "description", "potential_aly_acr_increase"}
    assert web["data_freshness"] == {"upload_frequency": None, "description": None}


DOC_BODY = {"web": [  # docs/meta-examples.md §D, one entry per documented section
    {"event_match_quality": {"composite_score": 6.2, "match_key_feedback": [
        {"identifier": "user_agent", "coverage": {"percentage": 100}},
        {"identifier": "external_id", "coverage": {"percentage": 100}}]}, "event_name": "pLTVPurchase"},
    {"event_match_quality": {"composite_score": 7.2, "match_key_feedback": [
        {"identifier": "email", "coverage": {"percentage": 100}},
        {"identifier": "ip_address", "coverage": {"percentage": 99.9}}]}, "event_name": "CompleteRegistration"},
    {"event_name": "Purchase", "event_match_quality": {"match_key_feedback": [
        {"identifier": "email", "potential_aly_acr_increase": {
            "percentage": 58.96, "description": "Similar advertisers who sent valid Email for Purchase saw a 58.96% "
                                                "median increase in their existing additional conversions reported."}}],
        "diagnostics": [{"name": "Server sending mismatched IP addresses", "description": "Your server is sending ...",
                         "solution": "In your server payload, send the client_ip_address ...", "percentage": 61.5,
                         "affected_event_count": 19567, "total_event_count": 31830}]}},
    {"event_coverage": {"percentage": 34.1, "goal_percentage": 75, "description": "The percentage of events ..."},
     "event_name": "B2B Purchase"},
    {"event_coverage": {"potential_aly_acr_increase": {"percentage": 35.8, "description": "Similar ..."}},
     "event_name": "AddToCart",
     "dedupe_key_feedback": [
         {"dedupe_key": "event_id", "browser_events_with_dedupe_key": {"percentage": 100},
          "server_events_with_dedupe_key": {"percentage": 100},
          "overall_browser_coverage_from_dedupe_key": {"percentage": 14.8}},
         {"dedupe_key": "external_id", "browser_events_with_dedupe_key": {"percentage": 100},
          "server_events_with_dedupe_key": {"percentage": 100},
          "overall_browser_coverage_from_dedupe_key": {"percentage": 15.96}},
         {"dedupe_key": "fbp", "browser_events_with_dedupe_key": {"percentage": 0},
          "server_events_with_dedupe_key": {"percentage": 0},
          "overall_browser_coverage_from_dedupe_key": {"percentage": 0}}]},
    {"data_freshness": {"upload_frequency": "real_time", "description": "..."}, "event_name": "ViewContent"},
    {"acr": {"description": "In the last 7 days, you saw about 37.9% more conversions ...", "percentage": 37.9},
     "event_potential_aly_acr_increase": {"description": "Similar advertisers ...", "percentage": 32.9},
     "event_name": "Search"},
]}


def test_parse_quality_meta_doc_examples_typed():
    q = parse_quality("42", DOC_BODY)
    assert q.notes == ()
    assert [e.event_name for e in q.events] == ["pLTVPurchase", "CompleteRegistration", "Purchase", "B2B Purchase",
                                                "AddToCart", "ViewContent", "Search"]
    assert q.event("CompleteRegistration").composite_score == 7.2
    assert q.event("CompleteRegistration").match_keys == (MatchKey("email", 100.0), MatchKey("ip_address", 99.9))
    purchase = q.event("Purchase")
    assert purchase.composite_score is None
    assert purchase.match_keys[0].acr_increase == 58.96 and purchase.match_keys[0].coverage is None
    assert purchase.match_keys[0].acr_description.startswith("Similar advertisers who sent valid Email")
    assert purchase.diagnostics == (Diagnostic("Server sending mismatched IP addresses", "Your server is sending ...",
                                               "In your server payload, send the client_ip_address ...", 61.5, 19567,
                                               31830),)
    b2b = q.event("B2B Purchase")
    assert (b2b.event_coverage, b2b.coverage_goal, b2b.coverage_acr_increase) == (34.1, 75.0, None)
    atc = q.event("AddToCart")
    assert atc.coverage_acr_increase == 35.8 and atc.event_coverage is None
    assert atc.dedupe_keys == (DedupeKey("event_id", 100.0, 100.0, 14.8), DedupeKey("external_id", 100.0, 100.0, 15.96),
                               DedupeKey("fbp", 0.0, 0.0, 0.0))
    assert atc.dedupe_spelling == "dedupe_key_feedback"
    assert q.event("ViewContent").upload_frequency == "real_time"
    search = q.event("Search")
    assert (search.acr, search.potential_acr_increase) == (37.9, 32.9)
    assert search.sections == ("acr", "event_potential_aly_acr_increase")
    assert search.missing_sections == ("event_match_quality", "event_coverage", "dedupe_key_feedback", "data_freshness")


def test_parse_quality_dedup_key_feedback_spelling_accepted():
    body = {"web": [{"event_name": "AddToCart", "dedup_key_feedback": [
        {"dedupe_key": "event_id", "browser_events_with_dedupe_key": {"percentage": 98},
         "server_events_with_dedupe_key": {"percentage": 97},
         "overall_browser_coverage_from_dedupe_key": {"percentage": 40}},
        {"dedup_key": "fbp", "browser_events_with_dedupe_key": {"percentage": 90}}]}]}
    ev = parse_quality("42", body).event("AddToCart")
    assert ev.dedupe_spelling == "dedup_key_feedback" and "dedupe_key_feedback" in ev.sections
    assert ev.dedupe_keys == (DedupeKey("event_id", 98.0, 97.0, 40.0), DedupeKey("fbp", 90.0, None, None))


def test_parse_quality_numeric_strings_edge_wrapper_and_unknown_frequency():
    body = {"web": {"data": [{"event_name": "Lead", "event_match_quality": {
        "composite_score": "6.5",
        "match_key_feedback": {"data": [{"identifier": "email", "coverage": {"percentage": "99.9"}}]}},
        "data_freshness": {"upload_frequency": "Every minute"}}]}}
    q = parse_quality("42", body)
    ev = q.event("Lead")
    assert ev.composite_score == 6.5 and ev.match_keys == (MatchKey("email", 99.9),)
    assert ev.upload_frequency == "every_minute"
    assert q.notes == ("Lead: data_freshness.upload_frequency 'Every minute' is not one of real_time, hourly, daily, "
                       "weekly; it is shown but not compared.",)


@pytest.mark.parametrize(("body", "notes"), [
    (None, ["Meta's answer has no web section: Meta reports no web events for this dataset (yet)."]),
    ({"data": []}, ["Meta's answer has no web section: Meta reports no web events for this dataset (yet)."]),
    ({"web": [1, {"event_name": "A", "event_match_quality": {"match_key_feedback": [{"coverage": 5}, "x"]}},
              {"event_name": "A"}]},
     ["web[0] is not an object; skipped.", "A: a match_key_feedback entry without an identifier was skipped.",
      "A: a match_key_feedback entry without an identifier was skipped.",
      "A: Meta listed this event name twice; the first entry is used."]),
])
def test_parse_quality_odd_bodies_become_notes(body, notes):
    q = parse_quality("42", body)
    assert list(q.notes) == notes


# -- the comparison: the report's own figures ---------------------------------------------------------

FULL_PAGEVIEW = _ev("PageView", composite_score=5.8,
                    match_keys=(MatchKey("email", 18.1), MatchKey("ip_address", 100.0), MatchKey("phone", 10.0),
                                MatchKey("lead_id", 3.5)),
                    event_coverage=93.2,
                    dedupe_keys=(DedupeKey("event_id", 98.9, 99.0, 93.2), DedupeKey("external_id", 18.0, 18.8, 0.4),
                                 DedupeKey("fbp", 97.5, 86.0, 0.1)),
                    upload_frequency="real_time")
FULL_PURCHASE = _ev("Purchase", composite_score=7.4,
                    match_keys=(MatchKey("email", 96.5), MatchKey("user_agent", 100.0)),
                    event_coverage=76.0, upload_frequency="hourly")


def test_compare_ours_are_the_reports_figures(tiny):
    report, ctx = tiny
    comp = compare(DatasetQuality(PIXEL, (FULL_PAGEVIEW, FULL_PURCHASE)), report, context=ctx, now=NOW)
    pv = _rows([r.as_dict() for r in comp.by_event_name["PageView"]])
    ours = {m: r["ours"] for m, r in pv.items()}
    assert ours == {
        "emq_composite_score": 5.6, "match_key_coverage:email": 33.33, "match_key_coverage:ip_address": 100.0,
        "match_key_coverage:phone": None, "match_key_coverage:lead_id": None, "event_coverage": 75.0,
        "dedupe_key_browser_events:event_id": 100.0, "dedupe_key_server_events:event_id": 100.0,
        "dedupe_key_browser_coverage:event_id": 75.0, "dedupe_key_browser_events:external_id": None,
        "dedupe_key_server_events:external_id": 33.33, "dedupe_key_browser_coverage:external_id": None,
        "dedupe_key_browser_events:fbp": None, "dedupe_key_server_events:fbp": 100.0,
        "dedupe_key_browser_coverage:fbp": None, "data_freshness": "real_time",
    }
    # the same numbers, read straight from the report (no second computation)
    assert ours["emq_composite_score"] == report["emq"]["by_event_name"]["PageView"]["estimate"]
    assert ours["match_key_coverage:email"] == round(report["match_keys"]["em"]["by_event_name"]["PageView"] * 100, 2)
    assert ours["event_coverage"] == round(report["dedup"]["by_event_name"]["PageView"]["browser_coverage"] * 100, 2)
    assert {m: r["difference"] for m, r in pv.items() if r["difference"] is not None} == {
        "emq_composite_score": -0.2, "match_key_coverage:email": 15.23, "match_key_coverage:ip_address": 0.0,
        "event_coverage": -18.2, "dedupe_key_browser_events:event_id": 1.1, "dedupe_key_server_events:event_id": 1.0,
        "dedupe_key_browser_coverage:event_id": -18.2, "dedupe_key_server_events:external_id": 14.53,
        "dedupe_key_server_events:fbp": 14.0, "data_freshness": 0,
    }
    purchase = _rows([r.as_dict() for r in comp.by_event_name["Purchase"]])
    assert purchase["emq_composite_score"]["ours"] == 8.3 and purchase["emq_composite_score"]["difference"] == 0.9
    assert purchase["match_key_coverage:user_agent"]["ours"] == 100.0
    assert purchase["data_freshness"] == {"metric": "data_freshness", "meta": "hourly", "ours": "real_time",
                                          "difference": -1, "cause": purchase["data_freshness"]["cause"]}
    assert comp.with_logs and comp.unknown_identifiers == ["lead_id"]


def test_compare_rows_have_exactly_the_five_keys(tiny):
    report, ctx = tiny
    doc = compare(DatasetQuality(PIXEL, (FULL_PAGEVIEW,)), report, context=ctx, now=NOW).as_dict()
    assert set(doc) == {"dataset_id", "source", "with_logs", "logs", "tolerances", "beyond_tolerance",
                        "by_event_name", "overall", "diagnostics", "missing_sections", "only_in_logs",
                        "unknown_identifiers", "notes"}
    rows = doc["overall"] + [r for rs in doc["by_event_name"].values() for r in rs]
    assert rows and all(set(r) == {"metric", "meta", "ours", "difference", "cause"} for r in rows)
    assert doc["logs"] == {"period": "2027-01-15 to 2027-01-15", "pixel_ids": [PIXEL],
                           "files": {"browser": ["b.csv"], "server": ["s.csv"]}}
    json.dumps(doc)  # JSON-ready


def test_compare_without_logs_has_meta_only():
    comp = compare(DatasetQuality(PIXEL, (FULL_PAGEVIEW,)), None)
    rows = comp.by_event_name["PageView"]
    assert rows[0].as_dict() == {"metric": "emq_composite_score", "meta": 5.8, "ours": None, "difference": None,
                                 "cause": None}
    assert all(r.ours is None and r.difference is None and r.cause is None for r in rows)
    assert comp.overall == [] and comp.beyond_tolerance == 0 and not comp.with_logs


def test_compare_overall_meta_weighted_by_logs_counts(tiny):
    report, ctx = tiny
    q = DatasetQuality(PIXEL, (_ev("PageView", composite_score=6.0, event_coverage=80.0),
                               _ev("Purchase", composite_score=9.0, event_coverage=50.0)))
    overall = _rows([r.as_dict() for r in compare(q, report, context=ctx, now=NOW).overall])
    # EMQ weights: the EMQ scope's rows (3 PageView, 2 Purchase): (6*3 + 9*2) / 5 = 7.2
    assert overall["emq_composite_score"] == {"metric": "emq_composite_score", "meta": 7.2, "ours": 6.8,
                                              "difference": -0.4, "cause": None}
    # coverage weights: browser keys (4 PageView, 2 Purchase): (80*4 + 50*2) / 6 = 70
    assert overall["event_coverage"]["meta"] == 70.0 and overall["event_coverage"]["ours"] == 83.33
    assert overall["event_coverage"]["difference"] == 13.33


def test_compare_overall_without_meta_when_reported_names_hold_few_events(tiny):
    report, ctx = tiny
    q = DatasetQuality(PIXEL, (_ev("PageView", match_keys=(MatchKey("email", 30.0),)),))  # 3 of 5 server rows
    overall = _rows([r.as_dict() for r in compare(q, report, context=ctx, now=NOW).overall])
    assert overall["match_key_coverage:email"] == {"metric": "match_key_coverage:email", "meta": None,
                                                   "ours": 60.0, "difference": None, "cause": None}


def test_compare_names_only_in_logs_and_unknown_identifiers_noted(tiny):
    report, ctx = tiny
    comp = compare(DatasetQuality(PIXEL, (FULL_PAGEVIEW,)), report, context=ctx, now=NOW)
    assert comp.only_in_logs == {"Purchase": 2}
    assert comp.notes == [
        "Meta reports no figures for Purchase (2 server events): Meta received none in its window, or under another "
        "name (names are case-sensitive), or the events went to another dataset.",
        "Identifiers capi-diag does not know are shown under Meta's name, without our figure: lead_id.",
    ]


def test_compare_tolerance_boundary_exact(tiny):
    report, ctx = tiny
    at = compare(DatasetQuality(PIXEL, (_ev("PageView", composite_score=6.6),)), report, context=ctx, now=NOW)
    beyond = compare(DatasetQuality(PIXEL, (_ev("PageView", composite_score=6.7),)), report, context=ctx, now=NOW)
    assert at.by_event_name["PageView"][0].difference == -1.0 and at.by_event_name["PageView"][0].cause is None
    assert beyond.by_event_name["PageView"][0].difference == -1.1 and beyond.by_event_name["PageView"][0].cause
    tight = compare(DatasetQuality(PIXEL, (_ev("PageView", composite_score=6.6),)), report, context=ctx, now=NOW,
                    tolerances={**DEFAULTS, "emq_score": 0.5})
    # one: the overall row has no Meta figure (PageView holds 3 of the 5 server events, under 95 %)
    assert tight.by_event_name["PageView"][0].cause is not None and tight.beyond_tolerance == 1


# -- the causes ------------------------------------------------------------------------------------------

def _cause(report: dict, ctx: LogsContext, ev: EventQuality, metric: str, *, now: float = NOW) -> str | None:
    comp = compare(DatasetQuality(PIXEL, (ev,)), report, context=ctx, now=now)
    return _rows([r.as_dict() for r in comp.by_event_name[ev.event_name]])[metric]["cause"]


def _big(report: dict) -> dict:
    """The report with PageView counts scaled up, so chance cannot explain a difference."""
    r = copy.deepcopy(report)
    pv = r["dedup"]["by_event_name"]["PageView"]
    for key in ("paired", "browser_only", "browser_rows", "server_rows"):
        pv[key] *= 1000
    r["contract"]["by_event_name"]["PageView"]["rows"] = 3000
    return r


def test_cause_different_dataset_from_logs_pixel_ids(tiny):
    report, ctx = tiny
    other = LogsContext(ctx.first_time, ctx.last_time, ("999",))
    assert _cause(report, other, _ev("PageView", composite_score=9.9), "emq_composite_score") == (
        "The logs hold events for Pixel 999, not dataset 1234567890: Meta's figures describe a different dataset "
        "than the logs.")
    mixed = LogsContext(ctx.first_time, ctx.last_time, (PIXEL, "999"))
    assert _cause(report, mixed, _ev("PageView", composite_score=9.9), "emq_composite_score").startswith(
        "The logs mix Pixels 1234567890, 999 while Meta's figures cover dataset 1234567890 only")


def test_cause_emq_model(tiny):
    report, ctx = tiny
    assert _cause(report, ctx, _ev("PageView", composite_score=9.0), "emq_composite_score").startswith(
        "Meta publishes no EMQ formula and its score also reflects how many events it matched")


def test_cause_freshness_names_the_logs_delay(tiny):
    report, ctx = tiny
    cause = _cause(report, ctx, _ev("PageView", upload_frequency="daily"), "data_freshness")
    assert cause.startswith("Meta's bucket is how often events reached it over its last 7 days, while the logs' "
                            "median delay from event_time to sent_at is 2 s")


def test_cause_sampling_on_few_events(tiny):
    report, ctx = tiny
    assert _cause(report, ctx, _ev("PageView", event_coverage=93.2), "event_coverage") == (
        "The logs hold only 4 events of PageView for this figure: a share measured on so few can differ from Meta's "
        "by 18.2 points by chance (sampling).")


def test_cause_test_events_in_logs(tiny):
    report, ctx = tiny
    r = _big(report)
    r["contract"]["by_event_name"]["PageView"]["test_event_code_present"] = 900
    assert _cause(r, ctx, _ev("PageView", match_keys=(MatchKey("email", 70.0),)), "match_key_coverage:email") == (
        "900 of 3,000 server events of PageView in the logs carry a test_event_code: that test traffic counts fully "
        "in the logs, while Meta may discard test events whose made-up customer data matches no account.")


def test_cause_events_meta_drops_as_invalid(tiny):
    report, ctx = tiny
    r = _big(report)
    r["timing"]["by_event_name"]["PageView"]["stale_over_7d"] = 500
    r["contract"]["by_event_name"]["PageView"]["insufficient_user_data"] = 100
    assert _cause(r, ctx, _ev("PageView", event_coverage=55.0), "event_coverage") == (
        "600 of 3,000 server events of PageView in the logs are older than 7 days when sent or carry too little "
        "customer information: Meta drops such events as invalid, the logs count them.")


def test_cause_meta_pairs_almost_nothing(tiny):
    report, ctx = tiny
    cause = _cause(_big(report), ctx, _ev("PageView", event_coverage=0.0), "event_coverage")
    assert cause.startswith("Meta pairs almost no browser events with server events while the logs pair most: the "
                            "server most likely sends to another dataset than this Pixel")


def test_cause_logs_older_than_metas_window(tiny):
    report, ctx = tiny
    later = NOW + 9 * 86_400
    assert _cause(_big(report), ctx, _ev("PageView", event_coverage=60.0), "event_coverage", now=later) == (
        "The logs end on 2027-01-15, more than 7 days before Meta's figures were read, while Meta's figures cover "
        "only its last 7 days: the two describe different traffic.")


def test_cause_windows_by_sign(tiny):
    report, ctx = tiny
    higher = _cause(_big(report), ctx, _ev("PageView", event_coverage=60.0), "event_coverage")
    lower = _cause(_big(report), ctx, _ev("PageView", event_coverage=90.0), "event_coverage")
    assert higher.startswith("Meta's figure covers its last 7 days and the logs cover 2027-01-15 to 2027-01-15: the "
                             "traffic or setup in Meta's window may differ")
    assert lower.startswith("Meta's figure covers its last 7 days and the logs cover 2027-01-15 to 2027-01-15: "
                            "Meta's window may hold traffic the logs do not")


def test_cause_key_present_but_invalid_in_logs(tiny):
    report, ctx = tiny
    r = copy.deepcopy(report)
    r["match_keys"]["em"].update(coverage=0.9, valid_coverage=0.6, defects={"unhashed": 2, "uppercase_hash": 0})
    for name in ("PageView", "Purchase"):
        r["dedup"]["by_event_name"][name]["server_rows"] *= 1000
    r["dedup"]["server_rows"] *= 1000
    q = DatasetQuality(PIXEL, (_ev("PageView", match_keys=(MatchKey("email", 90.0),)),
                               _ev("Purchase", match_keys=(MatchKey("email", 90.0),))))
    overall = _rows([x.as_dict() for x in compare(q, r, context=ctx, now=NOW).overall])
    assert overall["match_key_coverage:email"]["cause"] == (
        "Meta's figure is close to the share of events that carry em at all (90.0 %): capi-diag counts only valid "
        "values, and 2 rows send it invalid (unhashed 2).")


# -- tolerances, freshness, rendering --------------------------------------------------------------------

def test_tolerances_from_config_section():
    opts = tolerances(Config.from_text("[meta_quality]\nemq_score = 0.5\nevent_coverage_pp = 10\n"))
    assert opts == {**DEFAULTS, "emq_score": 0.5, "event_coverage_pp": 10}
    assert tolerances() == DEFAULTS


@pytest.mark.parametrize(("text", "message"), [
    ("[meta_quality]\nemq_scor = 1\n", "unknown key 'emq_scor' in [meta_quality]. Did you mean 'emq_score'?"),
    ("[meta_quality]\ndedupe_key_pp = -1\n", "[meta_quality] dedupe_key_pp must be a number >= 0, found -1."),
    ("[meta_quality]\nfreshness_steps = 0.5\n", "freshness_steps must be a whole number of buckets"),
    ("[meta_quality]\nfreshness_hourly_max_s = 100\n", "freshness_real_time_max_s < freshness_hourly_max_s"),
])
def test_tolerances_invalid_config_names_the_key(text, message):
    with pytest.raises(ConfigError) as e:
        tolerances(Config.from_text(text))
    assert message in str(e.value)


@pytest.mark.parametrize(("delay", "bucket"), [
    (None, None), (0, "real_time"), (900, "real_time"), (901, "hourly"), (21_600, "hourly"), (21_601, "daily"),
    (172_800, "daily"), (172_801, "weekly"),
])
def test_freshness_bucket_bounds(delay, bucket):
    assert freshness_bucket(delay, DEFAULTS) == bucket


def test_labels_and_table_rows_in_metas_units():
    assert label("match_key_coverage:email") == "Match key coverage: email"
    assert label("dedupe_key_browser_coverage:fbp") == "Browser coverage from fbp"
    rows = [{"metric": "event_coverage", "meta": 34.1, "ours": 73.75, "difference": 39.65, "cause": "why"},
            {"metric": "emq_composite_score", "meta": 6.2, "ours": 5.3, "difference": -0.9, "cause": None},
            {"metric": "data_freshness", "meta": "hourly", "ours": "real_time", "difference": -1, "cause": None},
            {"metric": "acr", "meta": 37.9, "ours": None, "difference": None, "cause": None}]
    assert table_rows(rows) == [
        {"metric": "Event coverage (CAPI vs Pixel)", "Meta": "34.1 %", "ours": "73.75 %", "difference": "+39.65 pp",
         "likely cause": "why"},
        {"metric": "Event Match Quality (0-10)", "Meta": "6.2", "ours": "5.3", "difference": "-0.9",
         "likely cause": ""},
        {"metric": "Data freshness", "Meta": "hourly", "ours": "real time", "difference": "-1 bucket",
         "likely cause": ""},
        {"metric": "Additional conversions reported (ACR)", "Meta": "37.9 %", "ours": "-", "difference": "-",
         "likely cause": ""},
    ]


def test_markdown_with_and_without_logs(tiny):
    report, ctx = tiny
    q = DatasetQuality(PIXEL, (FULL_PAGEVIEW, FULL_PURCHASE))
    md = to_markdown(compare(q, report, context=ctx, now=NOW).as_dict())
    assert md.startswith("# Meta's view of dataset 1234567890\n\nMeta's figures beside capi-diag's from the logs "
                         "(2027-01-15 to 2027-01-15). Difference = ours - Meta;")
    assert "| Event coverage (CAPI vs Pixel) | 93.2 % | 75 % | -18.2 pp | The logs hold only 4 events of PageView" in md
    alone = to_markdown(compare(q, None).as_dict())
    assert "| metric | Meta |\n| --- | ---: |\n| Event Match Quality (0-10) | 5.8 |" in alone
    assert "## Overall" not in alone and "ours" not in alone.split("## PageView")[1]


# -- the stand-in's quality endpoint over real HTTP ------------------------------------------------------

def _get(fg: FakeGraph, query: str, token: str = TOKEN) -> httpx.Response:
    return httpx.get(f"{fg.url}/v26.0/dataset_quality?{query}", headers={"Authorization": f"Bearer {token}"})


def test_fake_graph_quality_honours_fields(fake):
    r = _get(fake, f"dataset_id={PIXEL}&fields=web{{event_name,acr{{percentage}}}}")
    assert r.status_code == 200
    web = r.json()["web"]
    assert [e["event_name"] for e in web] == ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]
    assert web[0] == {"event_name": "PageView", "acr": {"percentage": 4.2}}
    assert web[3] == {"event_name": "InitiateCheckout"}


@pytest.mark.parametrize(("query", "message"), [
    (f"dataset_id={PIXEL}&fields=web{{event_name,secret_sauce}}",
     "(#100) Tried accessing nonexisting field (secret_sauce) on node type (AdsPixelCAPIIntegrationQuality)"),
    ("fields=web{event_name}", "(#100) The parameter dataset_id is required"),
    (f"dataset_id={PIXEL}&fields=web{{event_name", "(#100) Syntax error in the fields parameter: unbalanced '{'"),
])
def test_fake_graph_quality_refuses_bad_requests_with_100(fake, query, message):
    r = _get(fake, query)
    assert r.status_code == 400 and r.json()["error"]["code"] == 100 and r.json()["error"]["message"] == message


def test_fake_graph_quality_dedup_spelling_when_asked_dedupe(fake):
    r = _get(fake, f"dataset_id={fake_quality.DEDUP_SPELLING_ID}&fields=web{{event_name,dedupe_key_feedback}}")
    assert [set(e) for e in r.json()["web"]] == [{"event_name", "dedup_key_feedback"}] * 2


def _fetch(fg: FakeGraph, dataset: str, token: str = TOKEN):
    with GraphClient(token, config=GraphConfig(graph_url=fg.url)) as client:
        return fetch_quality(client, dataset)


def test_fetch_quality_all_sections(fake):
    got = _fetch(fake, PIXEL)
    assert got.error is None and got.quality.notes == ()
    pv = got.quality.event("PageView")
    assert pv.missing_sections == () and pv.composite_score == 5.8 and pv.event_coverage == 93.2
    assert pv.match_keys[-1] == MatchKey("browser_id", 86.0)
    purchase = got.quality.event("Purchase")
    assert [d.name for d in purchase.diagnostics] == ["Server sending mismatched IP addresses",
                                                      "Update your IPv4 IP addresses to IPv6 IP addresses"]
    assert (purchase.acr, purchase.potential_acr_increase, purchase.upload_frequency) == (37.9, 32.9, "hourly")
    (req,) = fake.received
    assert req["path"].startswith(f"/v26.0/dataset_quality?dataset_id={PIXEL}&fields=web%7Bevent_name%2C")


def test_fetch_quality_sections_missing(fake):
    q = _fetch(fake, fake_quality.PARTIAL_ID).quality
    assert {e.event_name: e.sections for e in q.events} == {
        "Purchase": ("event_match_quality",), "AddToCart": ("event_coverage",), "PageView": ("data_freshness",)}
    assert q.event("Purchase").diagnostics == () and q.event("AddToCart").coverage_goal == 75.0


def test_fetch_quality_dedup_key_feedback_spelling(fake):
    q = _fetch(fake, fake_quality.DEDUP_SPELLING_ID).quality
    purchase = q.event("Purchase")
    assert purchase.dedupe_spelling == "dedup_key_feedback"
    assert purchase.dedupe_keys[0] == DedupeKey("event_id", 100.0, 0.0, 0.0)


def test_fetch_quality_refusals(fake):
    denied = _fetch(fake, fake_quality.NO_PERMISSION_ID)
    assert denied.refused and denied.error.code == 10 and denied.error.fix.endswith(PERMISSION_HINT)
    unknown = _fetch(fake, "555")
    assert unknown.refused and (unknown.error.code, unknown.error.error_subcode) == (100, 33)
    assert PERMISSION_HINT in unknown.error.fix
    bad = _fetch(fake, PIXEL, token="wrong")
    assert bad.refused and bad.error.code == 190 and PERMISSION_HINT not in bad.error.fix


# -- the command -------------------------------------------------------------------------------------

def _logs(tmp_path: Path) -> list[str]:
    (tmp_path / "b.csv").write_bytes(BROWSER_CSV)
    (tmp_path / "s.csv").write_bytes(SERVER_CSV)
    return ["--browser", str(tmp_path / "b.csv"), "--server", str(tmp_path / "s.csv")]


def test_meta_quality_cli_meta_only_json_exit_0(env, fake, capsys):
    code = main(["meta-quality", "--pixel-id", PIXEL, "--graph-url", fake.url])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == 0 and err == ""
    assert doc["source"] == {"graph_url": fake.url, "api_version": "v26.0", "fetched_at": "2027-01-15T08:00:00+00:00"}
    assert list(doc["by_event_name"]) == ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]
    assert doc["with_logs"] is False and doc["overall"] == [] and doc["beyond_tolerance"] == 0
    assert _rows(doc["by_event_name"]["AddToCart"])["event_coverage"] == {
        "metric": "event_coverage", "meta": 34.1, "ours": None, "difference": None, "cause": None}
    assert doc["missing_sections"] == {"ViewContent": ["event_potential_aly_acr_increase"],
                                       "AddToCart": ["event_potential_aly_acr_increase"],
                                       "InitiateCheckout": ["acr", "event_potential_aly_acr_increase"]}
    assert [d["name"] for d in doc["diagnostics"]["Purchase"]][0] == "Server sending mismatched IP addresses"


def test_meta_quality_cli_sections_missing_markdown(env, fake, capsys):
    env.setenv("CAPI_GRAPH_URL", fake.url)
    assert main(["meta-quality", "--pixel-id", fake_quality.PARTIAL_ID, "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert ("## Purchase\n\nMeta sent no event_coverage, dedupe_key_feedback, data_freshness, acr, "
            "event_potential_aly_acr_increase for this event.\n\n| metric | Meta |\n| --- | ---: |\n"
            "| Event Match Quality (0-10) | 6.9 |\n| Match key coverage: email | 95 % |") in md
    assert "## PageView\n\nMeta sent no event_match_quality, event_coverage, dedupe_key_feedback, acr, " in md
    assert "| Data freshness | hourly |" in md


def test_meta_quality_cli_dedup_spelling(env, fake, capsys):
    env.setenv("CAPI_GRAPH_URL", fake.url)
    assert main(["meta-quality", "--pixel-id", fake_quality.DEDUP_SPELLING_ID]) == 0
    rows = _rows(json.loads(capsys.readouterr().out)["by_event_name"]["AddToCart"])
    assert rows["dedupe_key_browser_coverage:external_id"]["meta"] == 15.96
    assert rows["dedupe_key_server_events:fbp"]["meta"] == 0.0


@pytest.mark.parametrize(("pixel", "token", "start"), [
    (fake_quality.NO_PERMISSION_ID, TOKEN, "capi-diag: Permission denied: Graph API error 10 (HTTP 400) from GET "),
    ("555", TOKEN, "capi-diag: Unknown Pixel or no access: Graph API error 100/33 (HTTP 400) from GET "),
    (PIXEL, "wrong", "capi-diag: Invalid or expired access token: Graph API error 190 (HTTP 401) from GET "),
])
def test_meta_quality_cli_refused_exit_2_one_line(env, fake, capsys, pixel, token, start):
    env.setenv("CAPI_ACCESS_TOKEN", token)
    env.setenv("CAPI_GRAPH_URL", fake.url)
    code = main(["meta-quality", "--pixel-id", pixel])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith(start)
    assert (PERMISSION_HINT in err) == (token == TOKEN)


def test_meta_quality_cli_with_logs_side_by_side_exit_1(env, fake, capsys, tmp_path, tiny):
    report, _ = tiny
    out_file = tmp_path / "meta.json"
    code = main(["meta-quality", "--pixel-id", PIXEL, "--graph-url", fake.url, *_logs(tmp_path),
                 "--output", str(out_file)])
    assert code == 1 and capsys.readouterr().out == ""
    doc = json.loads(out_file.read_text())
    assert doc["with_logs"] and doc["logs"]["pixel_ids"] == [PIXEL]
    pv = _rows(doc["by_event_name"]["PageView"])
    assert pv["emq_composite_score"]["ours"] == report["emq"]["by_event_name"]["PageView"]["estimate"] == 5.6
    assert pv["event_coverage"] == {
        "metric": "event_coverage", "meta": 93.2, "ours": 75.0, "difference": -18.2,
        "cause": "The logs hold only 4 events of PageView for this figure: a share measured on so few can differ "
                 "from Meta's by 18.2 points by chance (sampling)."}
    overall = _rows(doc["overall"])
    assert overall["event_coverage"]["ours"] == round(report["dedup"]["browser_coverage"] * 100, 2) == 83.33
    assert overall["emq_composite_score"]["ours"] == report["emq"]["estimate"] == 6.8
    assert doc["only_in_logs"] == {}
    assert doc["beyond_tolerance"] == sum(1 for rows in [doc["overall"], *doc["by_event_name"].values()]
                                          for r in rows if r["cause"]) > 0


def test_meta_quality_cli_with_wide_tolerances_exit_0_markdown(env, fake, capsys, tmp_path):
    cfg = tmp_path / "wide.toml"
    cfg.write_text("[meta_quality]\nemq_score = 10\nmatch_key_coverage_pp = 100\nevent_coverage_pp = 100\n"
                   "dedupe_key_pp = 100\nfreshness_steps = 3\n")
    code = main(["meta-quality", "--pixel-id", PIXEL, "--graph-url", fake.url, *_logs(tmp_path), "--config", str(cfg),
                 "--format", "markdown"])
    md = capsys.readouterr().out
    assert code == 0
    assert "0 beyond tolerance." in md and "Tolerances (beyond them a difference gets its likely cause): EMQ 10 " in md
    assert "| Event Match Quality (0-10) | 5.8 | 5.6 | -0.2 |  |" in md


def test_meta_quality_cli_usage_errors_before_any_request(env, fake, capsys, tmp_path):
    env.setenv("CAPI_GRAPH_URL", fake.url)
    logs = _logs(tmp_path)
    assert main(["meta-quality", "--pixel-id", PIXEL, *logs[:2]]) == 2
    assert "--browser and --server go together" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[meta_quality]\nemq_scores = 1\n")
    assert main(["meta-quality", "--pixel-id", PIXEL, "--config", str(bad)]) == 2
    assert "Did you mean 'emq_score'?" in capsys.readouterr().err
    assert main(["meta-quality", "--pixel-id", "x1"]) == 2
    assert main(["meta-quality", "--pixel-id", PIXEL, "--format", "html"]) == 2
    assert fake.received == []


# -- the page --------------------------------------------------------------------------------------------

APP = str(ROOT / "app.py")


@pytest.fixture
def page(monkeypatch, tmp_path):
    clean_graph_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "no-demo-here"))
    monkeypatch.setattr(meta_view, "CLOCK", lambda: NOW)
    fg = FakeGraph(token=TOKEN, pixel_id=PIXEL, now=lambda: NOW)
    monkeypatch.setenv("CAPI_GRAPH_URL", fg.start())
    yield fg
    fg.stop()


def _page(ws: session.Workspace | None = None, **session) -> AppTest:
    """The app, on the "Meta's view" page (through the navigation, as a user gets there)."""
    at = AppTest.from_file(APP, default_timeout=120)
    if ws is not None:
        at.session_state[state.WORKSPACE_KEY] = ws
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    return at.switch_page("capi_diag/ui/pages/meta_view.py").run()


def test_page_no_data_fetch_shows_metas_figures_alone(page):
    at = _page()
    assert any("No data in this session" in i.value for i in at.info)
    assert at.button(key="mq_fetch").disabled
    at.text_input(key="mq_pixel_id").input(PIXEL)
    at.text_input(key="mq_token").input(TOKEN).run()
    assert not at.exception and not at.button(key="mq_fetch").disabled and page.received == []
    at.button(key="mq_fetch").click().run()
    assert not at.exception and not at.error
    assert [e.label for e in at.expander] == ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase"]
    first = at.dataframe[0].value
    assert list(first.columns) == ["metric", "Meta"]
    assert list(first.iloc[0]) == ["Event Match Quality (0-10)", "5.8"]
    assert any("Meta diagnostic: Server sending mismatched IP addresses" in w.value for w in at.warning)
    assert len([r for r in page.received if r["path"].startswith("/v26.0/dataset_quality?")]) == 1


def test_page_with_logs_side_by_side_uses_session_report(page):
    ws = session.import_workspace([Source("b.csv", data=BROWSER_CSV)], [Source("s.csv", data=SERVER_CSV)])
    report = ws.analysis().report
    at = _page(ws, **{meta_view.TOKEN_KEY: TOKEN})
    assert at.text_input(key="mq_pixel_id").value == PIXEL  # the logs' only Pixel
    at.button(key="mq_fetch").click().run()
    assert not at.exception and not at.error
    overall = at.dataframe[0].value
    assert list(overall.columns) == ["metric", "Meta", "ours", "difference", "likely cause"]
    row = overall[overall["metric"] == "Event coverage (CAPI vs Pixel)"].iloc[0]
    assert row["ours"] == f"{round(report['dedup']['browser_coverage'] * 100, 2)} %" == "83.33 %"
    doc = meta_view.comparison(at.session_state["mq_fetched"], ws.analysis(), Config())  # what the page shows
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Event names Meta reports": "5", "Figures compared": str(compared(doc)),
                       "Differences beyond tolerance": str(doc["beyond_tolerance"])}
    assert compared(doc) > doc["beyond_tolerance"] > 0
    assert any(c.value.startswith("Logs' period: 2027-01-15 to 2027-01-15.") for c in at.caption)
    assert any(m.value.startswith("- **Event coverage (CAPI vs Pixel)** (-18.2 pp): The logs hold only 4 events of "
                                  "PageView") for m in at.markdown)
    labels = [e.label for e in at.expander]
    assert labels[0].startswith("PageView (") and labels[0].endswith(" beyond tolerance)")
    assert any(d.label == "Markdown" for d in at.get("download_button"))


def test_page_refused_shows_fix(page):
    at = _page(**{meta_view.TOKEN_KEY: TOKEN})
    at.text_input(key="mq_pixel_id").input(fake_quality.NO_PERMISSION_ID).run()
    at.button(key="mq_fetch").click().run()
    (err,) = at.error
    assert err.value.startswith("**Permission denied** (10, HTTP 400): (#10) Application does not have permission")
    assert "**Fix:** Give the token's system user" in err.value and PERMISSION_HINT in err.value
    assert len(at.dataframe) == 0


# -- the documents -----------------------------------------------------------------------------------

def test_meta_quality_json_matches_its_schema(env, fake, capsys, tmp_path, tiny):
    import jsonschema

    schema = json.loads((ROOT / "docs" / "meta-quality.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    docs = []
    for pixel in (PIXEL, fake_quality.PARTIAL_ID, fake_quality.DEDUP_SPELLING_ID):
        main(["meta-quality", "--pixel-id", pixel, "--graph-url", fake.url])
        docs.append(json.loads(capsys.readouterr().out))
    report, ctx = tiny
    docs.append(compare(DatasetQuality(PIXEL, (FULL_PAGEVIEW, FULL_PURCHASE)), report, context=ctx, now=NOW).as_dict())
    for doc in docs:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == []


def test_config_example_meta_quality_section_is_the_defaults():
    assert tolerances(Config.load(ROOT / "docs" / "config.example.toml")) == DEFAULTS


# -- in a real headless Chromium -------------------------------------------------------------------------

DEMO_PIXEL = "731845026493175"  # the demo logs' Pixel


@pytest.mark.browser
def test_browser_connect_then_metas_view_on_demo_data(chromium_path, tmp_path):
    """`streamlit run app.py` on the demo data, Graph pointed at the stand-in: the Test Events page
    names the Pixel before any send, and "Meta's view" fetches and shows the report's own figures."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from playwright.sync_api import sync_playwright

    sentinel = "EAAB-BROWSER-SENTINEL-5d1e"
    artifacts = ROOT / "tests" / "_artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    with Database() as db:
        ds = import_logs(db, browser=[ROOT / "data" / "browser_events.csv"],
                         server=[ROOT / "data" / "server_events.csv"])
        coverage = f"{round(build_report(ds, Config())['dedup']['browser_coverage'] * 100, 2)} %"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with FakeGraph(token=sentinel, pixel_id=DEMO_PIXEL) as fg:
        env = {k: v for k, v in os.environ.items() if k != "CAPI_ACCESS_TOKEN"}
        env.update(CAPI_GRAPH_URL=fg.url, HOME=str(tmp_path), CAPI_DIAG_HOME=str(tmp_path / "capi-home"),
                   CAPI_DEMO_DIR=str(ROOT / "data"))
        log = tmp_path / "streamlit.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                     "--server.headless", "true", "--server.fileWatcherType", "none",
                                     "--browser.gatherUsageStats", "false"], cwd=ROOT,
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                assert proc.poll() is None, log.read_text()[-2000:]
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                        break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium_path,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1400, "height": 2400})
                page.goto(f"{url}/test-events")
                page.wait_for_selector("h1:has-text('Test Events')", timeout=240_000)
                page.locator(".st-key-te_pixel_id input").fill(DEMO_PIXEL)
                page.locator(".st-key-te_pixel_id input").press("Enter")
                page.locator(".st-key-te_test_code input").fill("TEST123")
                page.locator(".st-key-te_test_code input").press("Enter")
                page.locator(".st-key-te_token input").fill(sentinel)
                page.locator(".st-key-te_token input").press("Enter")
                page.wait_for_selector("text=Connected to Pixel capi-diag demo Pixel (731845026493175)",
                                       timeout=240_000)
                assert [r["method"] for r in fg.received] == ["GET"]  # named before any send
                page.screenshot(path=str(artifacts / "browser_test_events_connected.png"))
                shown = [page.locator("[data-testid='stMain']").inner_text()]
                page.locator('[data-testid="stSidebarNav"] a', has_text="Meta's view").first.click()
                page.wait_for_selector("h1:has-text(\"Meta's view\")", timeout=240_000)
                page.wait_for_selector(".st-key-mq_fetch button:not([disabled])", timeout=240_000)
                page.locator(".st-key-mq_fetch button").click()
                page.wait_for_selector("h3:has-text('Overall')", timeout=240_000)
                page.wait_for_selector("[data-testid='stDataFrame']", timeout=240_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(artifacts / "browser_meta_view_fetched.png"), full_page=True)
                main_text = page.locator("[data-testid='stMain']").inner_text()
                shown.append(main_text)
                assert page.locator('[data-testid="stException"]').count() == 0
                assert "Differences beyond tolerance" in main_text
                assert "Logs' period: 2026-11-17 to 2026-11-19" in main_text
                assert page.locator("[data-testid='stDataFrame']").count() == 6  # overall + 5 event names
                with page.expect_download() as download:  # the grid is a canvas: read the same table's JSON
                    page.locator(".st-key-mq_download_json button").click()
                doc = json.loads(Path(download.value.path()).read_text())
                shown.append(json.dumps(doc))
                overall = _rows(doc["overall"])
                assert f"{overall['event_coverage']['ours']} %" == coverage
                assert overall["emq_composite_score"]["ours"] == 5.4 and doc["dataset_id"] == DEMO_PIXEL
                browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        recorded = list(fg.received)
    assert sentinel not in "\n".join(shown)
    assert [r["method"] for r in recorded] == ["GET", "GET"]
    assert recorded[1]["path"].startswith(f"/v26.0/dataset_quality?dataset_id={DEMO_PIXEL}&fields=")
    assert all(sentinel not in r["path"] for r in recorded)
    assert coverage == "94.54 %"
