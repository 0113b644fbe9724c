"""The one number format (capi_diag.core.fmt), the one label table (capi_diag.core.labels), the plain-words
guide, the checklist verdict, and the charts' honesty (gaps, whole-number count axes, the skew
threshold drawn as a line)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from capi_diag.core import fmt, labels
from capi_diag.core.config import Config
from capi_diag.engine.dataset import Filters
from capi_diag.report import describe_filters, entry_value, example_cell, filters_record, guide
from capi_diag.ui import charts, views
from capi_diag.verdict import checklist


@pytest.mark.parametrize(("value", "text"), [
    (0.715, "71.5 %"), (0.7054, "70.5 %"), (1, "100.0 %"), (0, "0.0 %"), (None, "n/a"), (float("nan"), "n/a"),
])
def test_fmt_share_is_a_percentage_with_a_space(value, text):
    assert fmt.share(value) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (2.0, "2 s"), (2.5, "2.5 s"), (60, "60 s"), (119, "119 s"), (300, "5 min"), (362.6, "6 min"),
    (600, "10 min"), (3_600, "1 h"), (5_400, "1.5 h"), (172_800, "48 h"), (604_800, "7 days"), (86_400 * 8, "8 days"),
    (-3_599, "-60 min"), (-12, "-12 s"), (None, "n/a"),
])
def test_fmt_duration_in_the_unit_people_say(seconds, text):
    assert fmt.duration(seconds) == text


@pytest.mark.parametrize(("value", "text"), [(5.4, "5.4 / 10"), (5.96, "5.9 / 10"), (6.0, "6.0 / 10"),
                                             (0.7, "0.7 / 10"), (None, "n/a")])
def test_fmt_score_rounds_down_so_a_miss_never_reads_as_the_target(value, text):
    assert fmt.score(value) == text


def test_fmt_counts_times_and_units():
    assert fmt.count(10_756) == "10,756"
    assert fmt.counted(1, "dedup key") == "1 dedup key" and fmt.counted(12, "server row") == "12 server rows"
    assert fmt.timestamp(1_794_906_843) == "2026-11-17 09:14:03 UTC"
    assert fmt.timestamp("not a time") == "not a time"
    assert fmt.value(0.5, "share") == "50.0 %" and fmt.value(300, "seconds") == "5 min"
    assert fmt.value(1234, None) == "1,234" and fmt.value(True) == "yes"


def test_labels_ids_become_the_analysts_words():
    assert labels.label("stale_over_7d") == "Sent more than 7 days late"
    assert labels.label("em.unhashed") == "Email sent unhashed"
    assert labels.label("client_user_agent.non_browser") == "User agent not from a browser"
    assert labels.label("test_event_code_present") == "Test event code in the log"
    assert labels.label("name_case_mismatch") == "Event name differs only in case"
    assert labels.label("not_evaluated") == "Not evaluated"
    assert labels.label("match_keys") == "Match keys"
    assert labels.label("event_time_empty") == "event_time empty"
    assert labels.label("freshness_stale", section="checklist") == "No event sent more than 7 days late"
    assert labels.field_with_code("em") == "Email (em)" and labels.field_with_code("country") == "Country"
    assert labels.unit("name_case_mismatch") == "dedup key" and labels.unit("duplicate_server_rows") == "server row"
    assert "em = email" in labels.field_legend() and "db = date of birth" in labels.field_legend()


def test_labels_every_finding_the_analyses_report_has_a_label():
    from capi_diag.diagnostics import contract, dedup
    from capi_diag.engine import rules

    for ident in [*contract.RULES, *dedup.SEVERITY, "below_emq_target", "forwarded_without_consent",
                  "consent_unknown", *labels.REJECTIONS]:
        assert ident in labels.FINDINGS or ident in labels.REJECTIONS, ident
    for field, defects in rules.DEFECTS.items():
        for d in defects:
            assert d in labels.DEFECTS, d
            assert labels.label(f"{field}.{d}").startswith(labels.field(field))
    for item in checklist.ITEMS:
        assert labels.label(item.id, section="checklist") == item.title.format(**checklist.limits(None))


def test_checklist_verdict_one_line_first():
    def items(*statuses):
        return [{"id": str(i), "status": s} for i, s in enumerate(statuses)]
    assert checklist.verdict(items("pass", "fail", "warn", "fail")) == ("fail", "Not ready to go live: 2 blockers")
    assert checklist.verdict(items("pass", "fail")) == ("fail", "Not ready to go live: 1 blocker")
    assert checklist.verdict(items("pass", "warn", "warn")) == ("warn", "Ready with 2 warnings")
    assert checklist.verdict(items("pass", "not_evaluated")) == ("pass", "Ready")
    assert checklist.verdict_note(items("pass", "not_evaluated")) == \
        "1 item could not be evaluated on these logs; 1 passed"
    assert checklist.verdict(items("not_evaluated"))[0] == "not_evaluated"
    assert [i["status"] for i in checklist.grouped(items("pass", "warn", "not_evaluated", "fail", "warn"))] == \
        ["fail", "warn", "warn", "not_evaluated", "pass"]


def test_checklist_texts_quote_the_configured_limits():
    config = Config.from_text("[timing]\nstale_s = 259200\nfuture_s = 120\n")
    sections = {"timing": {"status": "evaluated", "stale_over_7d": 3, "future": 1, "event_time_in_ms": 0,
                           "event_time_in_us": 0, "server_rows": 10, "browser_rows": 10}}
    items = {i["id"]: i for i in checklist.build(sections, config)}
    assert items["freshness_stale"]["title"] == "No event sent more than 72 h late"
    assert "more than 72 h after event_time" in items["freshness_stale"]["explanation"]
    assert "more than 2 min after sent_at" in items["freshness_future"]["explanation"]
    from capi_diag.diagnostics import timing

    texts = " ".join(e["text"] for e in timing.explain({"status": "evaluated", "sent_at_column": True}, config))
    assert "more than 72 h after their event_time" in texts and "more than 2 min after sent_at" in texts
    assert "5 min" in texts and "300 s" not in texts and "60 s" not in texts


def test_guide_texts_quote_the_configured_thresholds():
    text = " ".join(guide.about("timing", Config.from_text("[timing]\nskew_threshold_s = 90\n")).split())
    assert "flagged beyond 90 s" in text
    assert guide.about("dedup").count("48 h") >= 2
    assert all(guide.about(s) for s in guide.SECTIONS) and guide.about("nope") is None


def test_report_filters_record_and_words():
    assert filters_record(None) == {"active": False, "description": "none", "start": None, "end": None,
                                    "event_names": [], "pixel_ids": []}
    f = Filters(start=1_794_873_600, end=1_794_960_000, event_names=("Purchase",))
    assert describe_filters(f) == "event dates 2026-11-17 to 2026-11-17 (UTC); event names Purchase"
    assert filters_record(f)["active"] is True


def test_report_entry_values_say_what_they_count():
    assert entry_value({"label": "x", "value": 12, "unit": "dedup key"}) == "12 dedup keys"
    assert entry_value({"label": "Pairing rate", "value": 0.5}) == "50.0 %"
    assert entry_value({"label": "x", "value": 362.6, "unit": "seconds"}) == "6 min"
    assert example_cell("browser_time", 1_794_906_843) == "2026-11-17 09:14:03 UTC"
    assert example_cell("reason", "browser_only_unexplained") == "Browser only, never sent by the server"
    assert example_cell("server_line", 4467) == "4467" and example_cell("skew_s", 3600) == "1 h"
    assert example_cell("source_file", "/srv/logs/server.csv") == "server.csv"


def test_charts_pairing_line_has_gaps_where_no_keys():
    raw = pd.DataFrame({"hour": [0, 3_600, 4 * 3_600], "keys": [4, 2, 5], "paired": [3, 2, 1]})
    df = views.pairing_over_time(raw)
    assert df["keys"].tolist() == [4, 2, 0, 0, 5]
    assert df["rate"].isna().tolist() == [False, False, True, True, False]
    fig = charts.pairing_over_time(df)
    line = next(t for t in fig.data if t.type == "scatter")
    assert line.connectgaps is False and pd.isna(line.y[2]) and pd.isna(line.y[3])


def test_charts_count_axes_have_whole_number_ticks():
    small = charts.counts_bar(pd.DataFrame({"name": ["A", "B"], "rows": [1, 2]}), "t", "Server rows", "Rule")
    assert small.layout.xaxis.tickformat == ",d" and small.layout.xaxis.dtick == 1
    big = charts.counts_bar(pd.DataFrame({"name": ["A"], "rows": [1_000]}), "t", "Server rows", "Rule")
    assert big.layout.xaxis.tickformat == ",d" and big.layout.xaxis.dtick is None
    bins = pd.DataFrame({"label": ["a", "b"], "rows": [3, 0]})
    assert charts.delay_histogram(bins).layout.yaxis.tickformat == ",d"


def test_charts_skew_threshold_drawn_as_a_line_at_its_bin_edge():
    hist = [{"label": "", "min_s": lo, "max_s": hi, "keys": k} for lo, hi, k in (
        (None, -301, 1), (-300, -61, 0), (-60, 60, 5), (61, 300, 2), (301, None, 1))]
    bins = views.skew_bins({"skew_histogram": hist})
    assert bins["label"].tolist() == ["below -5 min", "-5 min to -60 s", "-60 s to +60 s", "+60 s to +5 min",
                                      "above +5 min"]
    fig = charts.skew_histogram(bins, 300)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.x0 for s in lines) == [0.5, 3.5], "between -301 | -300 and between 300 | 301"
    assert charts.threshold_position(bins, 120) == pytest.approx(3 - 0.5 + (120.5 - 60.5) / 240)


def test_core_modules_import_without_streamlit():
    code = ("import sys; import capi_diag.core.labels, capi_diag.core.fmt, capi_diag.report.guide, capi_diag.report, "
            "capi_diag.verdict.checklist, capi_diag.cli; assert 'streamlit' not in sys.modules, 'streamlit imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
