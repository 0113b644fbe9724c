"""``capi-diag compare``: the demo report against the demo logs with a planted regression (email dropped
from the server's Purchase, the server's Purchase ``event_id`` renamed), and the same logs with the
regression planted after a deploy, split with ``--split-at``. The planted logs are written by DuckDB
SQL over the demo files."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from capi_diag import api
from capi_diag.cli import main
from capi_diag.core import resources
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError, UsageError
from capi_diag.monitor import compare

PLANTED_WORSE = [
    ("checklist.pairing_rate.status", None),
    ("match_keys.em.valid_coverage", "Purchase"),
    ("dedup.server_coverage", "Purchase"),
    ("dedup.browser_coverage", "Purchase"),
    ("dedup.pairing_rate", "Purchase"),
    ("emq.estimate", "Purchase"),
    ("dedup.pairing_rate", None),
    ("match_keys.em.coverage", None),
    ("match_keys.em.valid_coverage", None),
    ("dedup.browser_coverage", None),
    ("dedup.server_coverage", None),
]
"""Every figure the plant moves beyond tolerance: Purchase's email (its key coverage, EMQ, and the
overall email coverage), Purchase's pairing (ids no longer match: pairing rate and both coverages, per
event and overall) and the pairing-rate checklist item."""

PLANT = """CASE WHEN event_name = 'Purchase' THEN NULL ELSE "user_data.em" END AS "user_data.em",
           CASE WHEN event_name = 'Purchase' THEN 'srv-' || event_id ELSE event_id END AS event_id"""


def _demo() -> dict[str, Path]:
    paths = resources.demo_paths()
    assert paths is not None
    return {**paths, **resources.demo_extra_paths()}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("planted")
    demo = _demo()
    con = duckdb.connect()
    server = f"read_csv('{demo['server']}', all_varchar = true, header = true)"
    browser = f"read_csv('{demo['browser']}', all_varchar = true, header = true)"
    con.execute(f"COPY (SELECT * REPLACE ({PLANT}) FROM {server}) TO '{out / 'server.csv'}' (HEADER)")
    con.execute(f"COPY (SELECT * FROM {server}) TO '{out / 'server_copy.csv'}' (HEADER)")
    # the deploy: the demo logs as they are, then the same traffic again (planted) after the demo's period
    norm = "CASE WHEN CAST(event_time AS BIGINT) > 100000000000 THEN CAST(event_time AS BIGINT) // 1000 " \
           "ELSE CAST(event_time AS BIGINT) END"
    lo, hi = con.execute(f"SELECT min(t), max(t) FROM (SELECT {norm} AS t FROM {server} UNION ALL "
                         f"SELECT epoch(CAST(timestamp AS TIMESTAMPTZ))::BIGINT FROM {browser})").fetchone()
    split = hi + 1
    shift = ((hi - lo) // 86_400 + 2) * 86_400
    shifted_server = f"""SELECT * REPLACE ({PLANT}) FROM (
        SELECT * REPLACE (
          CAST(CASE WHEN CAST(event_time AS BIGINT) > 100000000000 THEN CAST(event_time AS BIGINT) + {shift} * 1000
               ELSE CAST(event_time AS BIGINT) + {shift} END AS VARCHAR) AS event_time,
          CAST(CAST(sent_at AS BIGINT) + {shift} AS VARCHAR) AS sent_at) FROM {server})"""
    con.execute(f"COPY (SELECT * FROM {server} UNION ALL {shifted_server}) TO '{out / 'deploy_server.csv'}' (HEADER)")
    shifted_browser = f"""SELECT * REPLACE (strftime(CAST(timestamp AS TIMESTAMPTZ) AT TIME ZONE 'UTC'
        + INTERVAL ({shift}) SECOND, '%Y-%m-%dT%H:%M:%SZ') AS timestamp) FROM {browser}"""
    con.execute(f"COPY (SELECT * FROM {browser} UNION ALL {shifted_browser}) TO '{out / 'deploy_browser.csv'}' "
                "(HEADER)")
    con.close()
    (out / "split_at").write_text(str(split))
    return {"dir": out, "server": out / "server.csv", "server_copy": out / "server_copy.csv",
            "deploy_browser": out / "deploy_browser.csv", "deploy_server": out / "deploy_server.csv",
            "split": split}


@pytest.fixture(scope="module")
def reports(planted, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    demo = _demo()
    found = {}
    for name, server in (("demo", demo["server"]), ("copy", planted["server_copy"]), ("planted", planted["server"])):
        report = api.analyze(api.Inputs(browser=[demo["browser"]], server=[server], orders=[demo["orders"]],
                                        send_log=[demo["send_log"]]))
        found[name] = out / f"{name}.json"
        found[name].write_text(json.dumps(report, default=str))
    return found


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["compare", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_compare_planted_regression_lists_every_affected_figure_worse_first(reports, capsys):
    code, out, _ = _run(capsys, str(reports["demo"]), str(reports["planted"]))
    doc = json.loads(out)
    assert code == 1
    assert doc["worse"] == 11
    worse = [(c["metric"], c["event_name"]) for c in doc["changes"] if c["worse"]]
    assert worse == PLANTED_WORSE
    # worse first, then the changes that are not worse
    assert [c["worse"] for c in doc["changes"]] == [True] * 11 + [False] * 3
    assert [(c["metric"], c["event_name"], c["before"], c["after"]) for c in doc["changes"][11:]] == [
        ("timing.skew_p50_s", "Purchase", 1.0, None), ("timing.skew_p95_abs_s", "Purchase", 2.0, None),
        ("checklist.purchase_value_match.status", None, "pass", "not_evaluated")]
    first = doc["changes"][1]
    assert first == {"metric": "match_keys.em.valid_coverage", "event_name": "Purchase", "before": 0.9649122807017544,
                     "after": 0.0, "delta": -0.964912, "worse": True, "path": "match_keys.em.by_event_name.Purchase"}
    em = next(c for c in doc["changes"] if c["metric"] == "match_keys.em.valid_coverage" and c["event_name"] is None)
    assert (em["before"], em["after"]) == (875 / 4490, 820 / 4490)
    assert doc["changes"][0] == {"metric": "checklist.pairing_rate.status", "event_name": None, "before": "pass",
                                 "after": "warn", "delta": -1, "worse": True, "path": "checklist.pairing_rate.status"}


def test_compare_identical_logs_nothing_changed(reports, capsys):
    code, out, _ = _run(capsys, str(reports["demo"]), str(reports["copy"]))
    doc = json.loads(out)
    assert (code, doc["changes"], doc["worse"], doc["unchanged"]) == (0, [], 0, 261)  # issue 24: +1 item


def test_compare_split_at_a_planted_deploy_finds_the_same(planted, reports, capsys, tmp_path):
    out_file = tmp_path / "cmp.json"
    code, out, err = _run(capsys, "--browser", str(planted["deploy_browser"]), "--server",
                          str(planted["deploy_server"]), "--split-at", str(planted["split"]), "--output", str(out_file))
    assert (code, out) == (1, ""), err
    doc = json.loads(out_file.read_text())
    worse = [(c["metric"], c["event_name"]) for c in doc["changes"] if c["worse"]]
    assert worse == PLANTED_WORSE
    # the same changes, with the same figures, as the two reports (the halves are those logs exactly)
    _, two, _ = _run(capsys, str(reports["demo"]), str(reports["planted"]))
    assert doc["changes"] == json.loads(two)["changes"]
    # the same split given as ISO-8601
    import datetime as dt

    iso = dt.datetime.fromtimestamp(planted["split"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, _ = _run(capsys, "--browser", str(planted["deploy_browser"]), "--server",
                        str(planted["deploy_server"]), "--split-at", iso)
    assert code == 1 and json.loads(out)["changes"] == doc["changes"]


def test_compare_markdown_and_html(reports, capsys, tmp_path):
    code, out, _ = _run(capsys, str(reports["demo"]), str(reports["planted"]), "--format", "markdown")
    assert code == 1
    lines = out.splitlines()
    assert lines[2] == "11 figure(s) worse beyond tolerance; 14 changed, 247 unchanged."  # issue 24: +1
    assert lines[6] == "| yes | checklist.pairing_rate.status | (overall) | pass | warn | -1 |"
    assert lines[7] == "| yes | match_keys.em.valid_coverage | Purchase | 0.9649 | 0 | -0.9649 |"
    page = tmp_path / "c.html"
    assert main(["compare", str(reports["demo"]), str(reports["planted"]), "--format", "html",
                 "--output", str(page)]) == 1
    text = page.read_text()
    assert text.count('<tr class="worse">') == 11
    assert "<td>match_keys.em.valid_coverage</td><td>Purchase</td><td>0.9649</td><td>0</td>" in text


def test_compare_tolerances_from_config(reports, capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[compare]\nshare_pp = 2.0\nemq_points = 2.0\n")
    code, out, _ = _run(capsys, str(reports["demo"]), str(reports["planted"]), "--config", str(cfg))
    worse = [(c["metric"], c["event_name"]) for c in json.loads(out)["changes"] if c["worse"]]
    assert code == 1
    assert worse == [("checklist.pairing_rate.status", None), ("match_keys.em.valid_coverage", "Purchase"),
                     ("dedup.server_coverage", "Purchase"), ("dedup.browser_coverage", "Purchase"),
                     ("dedup.pairing_rate", "Purchase")]
    with pytest.raises(ConfigError):
        compare.tolerances(Config.from_text("[compare]\nskew_s = -1\n"))


def test_compare_unusable_input_exit_2(reports, planted, capsys, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"a": 1}')
    cases = [
        [str(reports["demo"])],
        [str(reports["demo"]), str(bad)],
        [str(reports["demo"]), str(tmp_path / "missing.json")],
        ["--browser", str(planted["deploy_browser"]), "--server", str(planted["deploy_server"])],
        ["--browser", str(planted["deploy_browser"]), "--server", str(planted["deploy_server"]), "--split-at", "soon"],
        ["--browser", str(planted["deploy_browser"]), "--server", str(planted["deploy_server"]), "--split-at", "1"],
    ]
    for args in cases:
        code, out, err = _run(capsys, *args)
        assert (code, out) == (2, ""), args
        assert len(err.strip().splitlines()) == 1
    assert compare.parse_split("2026-11-18T12:00:00Z") == 1795003200
    assert compare.parse_split("2026-11-18T13:00:00", "Europe/Berlin") == 1795003200
    assert compare.parse_split("1795003200") == 1795003200
    with pytest.raises(UsageError, match="no event before --split-at"):
        compare.split_reports(api.Inputs(browser=[planted["deploy_browser"]], server=[planted["deploy_server"]]), 1,
                              Config())
