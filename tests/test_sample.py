"""The demo-data generator: reproducible bytes, parseable formats, a manifest that tells the truth,
the documented defect mix, and demo files the import loads without surprises."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import duckdb
import pytest

from capi_diag.cli import main
from capi_diag.core.errors import UsageError
from capi_diag.io import sample

ROOT = Path(__file__).resolve().parent.parent
HASH64 = re.compile(r"\A[0-9a-f]{64}\Z")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, list[Path]]:
    """The same 400 sessions in every format."""
    out = {}
    for fmt in sample.FORMATS:
        out[fmt] = sample.write_sample(tmp_path_factory.mktemp(fmt), sessions=400, seed=3, fmt=fmt)
    return out


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> list[Path]:
    """Enough sessions for the rates of the mix to be measurable."""
    return sample.write_sample(tmp_path_factory.mktemp("large"), sessions=8000, seed=5)


def _manifest(paths: list[Path]) -> dict:
    return json.loads(paths[2].read_text(encoding="utf-8"))


def _digest(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def _csv(con: duckdb.DuckDBPyConnection, path: Path, name: str) -> None:
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', all_varchar = true, header = true)")


# -- determinism -----------------------------------------------------------------------------------

def test_write_sample_same_seed_identical_bytes_any_thread_count(tmp_path, small):
    for fmt in sample.FORMATS:
        again = sample.write_sample(tmp_path / fmt, sessions=400, seed=3, fmt=fmt, threads=1)
        assert _digest(again) == _digest(small[fmt]), fmt


def test_write_sample_other_seed_different_data(tmp_path, small):
    other = sample.write_sample(tmp_path, sessions=400, seed=4)
    assert _digest(other)[:2] != _digest(small["csv"])[:2]


def test_write_sample_times_fixed_window_not_wall_clock(small):
    m = _manifest(small["csv"])
    assert m["generator"]["window_start"] == "2026-11-17T00:00:00Z"
    assert m["generator"]["window_end"] == "2026-11-20T00:00:00Z"
    con = duckdb.connect()
    _csv(con, small["csv"][0], "b")
    lo, hi = con.execute("SELECT min(timestamp), max(timestamp) FROM b "
                         "WHERE timestamp IS NOT NULL").fetchone()
    assert lo >= "2026-11-17T00:00:00Z" and hi < "2026-11-20T01:00:00Z"


# -- formats and row counts ------------------------------------------------------------------------

def test_write_sample_each_format_parses_same_rows(small):
    con = duckdb.connect()
    counts = {}
    for fmt, paths in small.items():
        reader = {"csv": "read_csv({p!r}, all_varchar = true)",
                  "jsonl": "read_json({p!r}, format = 'newline_delimited')",
                  "parquet": "read_parquet({p!r})"}[fmt]
        counts[fmt] = tuple(con.execute(f"SELECT count(*) FROM {reader.format(p=str(p))}").fetchone()[0]
                            for p in paths[:2])
        m = _manifest(paths)
        assert counts[fmt] == (m["rows"]["browser"]["written"], m["rows"]["server"]["written"]), fmt
    assert len(set(counts.values())) == 1


def test_write_sample_csv_headers_in_accepted_forms(small):
    from capi_diag.core.schema import canonical_name

    for path in small["csv"][:2]:
        header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
        assert all(canonical_name(h) is not None for h in header), header
    server_header = small["csv"][1].read_text(encoding="utf-8").splitlines()[0]
    assert server_header.startswith("event_name,event_id,event_time,action_source,event_source_url,"
                                    "user_data.em,")
    assert server_header.endswith("consent.ad_storage,consent.ad_user_data,consent.region,sent_at,"
                                  "test_event_code,pixel_id")


def test_write_sample_jsonl_nested_capi_shape(small):
    lines = small["jsonl"][1].read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert all(isinstance(e["user_data"], dict) and isinstance(e["event_time"], int) for e in events)
    assert all(None not in e.values() for e in events)  # absent keys are omitted, as in a payload
    purchases = [e for e in events if e["event_name"] == "Purchase" and "value" in e.get("custom_data", {})]
    assert purchases and all(isinstance(e["custom_data"]["value"], (int, float, str)) for e in purchases)
    with_em = [e for e in events if "em" in e["user_data"]]
    assert with_em and all(isinstance(e["user_data"]["em"], list) for e in with_em)


def test_write_sample_multi_valued_cells_are_json_arrays(small):
    con = duckdb.connect()
    _csv(con, small["csv"][1], "s")
    arrays = con.execute("""SELECT "user_data.em" FROM s WHERE starts_with("user_data.em", '[')""").fetchall()
    assert len(arrays) == _manifest(small["csv"])["match_keys"]["em"]["multi_valued"] > 0
    assert all(len(json.loads(v)) == 2 for (v,) in arrays)


# -- value formats ---------------------------------------------------------------------------------

def test_write_sample_values_in_documented_formats(small):
    con = duckdb.connect()
    _csv(con, small["csv"][0], "b")
    _csv(con, small["csv"][1], "s")
    m = _manifest(small["csv"])
    fbp = r"fb\.1\.[0-9]{13}\.[0-9]{10}"
    assert con.execute(f"SELECT count(*) FROM b WHERE NOT regexp_full_match(fbp, '{fbp}')").fetchone()[0] == 0
    assert con.execute(f"""SELECT count(*) FROM s WHERE "user_data.fbp" IS NOT NULL
        AND NOT regexp_full_match("user_data.fbp",
            '{fbp}')""").fetchone()[0] == m["match_keys"]["fbp"]["hashed"]
    # fbc = fb.1.<ms>.<fbclid>, and the fbclid is the one in the landing URL
    bad_fbc = con.execute(r"""SELECT count(*) FROM b WHERE fbc IS NOT NULL
        AND NOT regexp_full_match(fbc, 'fb\.1\.[0-9]{13}\.IwAR[A-Za-z0-9_-]{43}')""").fetchone()[0]
    assert bad_fbc == 0
    clicks = con.execute(r"""SELECT count(*), count(*) FILTER (WHERE ends_with(event_source_url,
        'fbclid=' || regexp_extract(fbc, '\.(IwAR.*)$', 1))) FROM b WHERE contains(event_source_url,
            'fbclid=')""")
    total, matching = clicks.fetchone()
    assert total > 0 and matching == total
    # browser user agents are real browsers; server IPs public except the counted private ones
    assert con.execute("SELECT count(*) FROM b WHERE NOT starts_with(client_user_agent, 'Mozilla/5.0 (')"
                       ).fetchone()[0] == 0
    v4 = r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})"
    ips = con.execute(f"""SELECT count(*) FILTER (WHERE contains(ip, ':')),
        count(*) FILTER (WHERE regexp_full_match(ip, '{v4}')
            AND NOT regexp_matches(ip, '^(10\\.|127\\.|192\\.168\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.)')),
        count(*) FROM (SELECT "user_data.client_ip_address" AS ip FROM s)""").fetchone()
    assert ips[0] > 0 and ips[0] + ips[1] + m["match_keys"]["client_ip_address"]["private"] == ips[2]


def test_write_sample_hashes_are_sha256_of_normalized_values(small):
    con = duckdb.connect()
    _csv(con, small["csv"][1], "s")
    countries = {hashlib.sha256(c[0].lower().encode()).hexdigest() for c in sample.COUNTRIES}
    cities = {hashlib.sha256(c[1].encode()).hexdigest() for c in sample.CITIES}
    zips = {hashlib.sha256(z.encode()).hexdigest() for c in sample.CITIES for z in c[3]}
    got = con.execute("""SELECT list(DISTINCT "user_data.country"), list(DISTINCT "user_data.ct"),
        list(DISTINCT "user_data.zp") FROM s""").fetchone()
    got = [set(v) - {None} for v in got]
    assert got[0] <= countries and got[1] <= cities and got[2] <= zips
    assert hashlib.sha256(b"us").hexdigest() in got[0]
    # unhashed e-mails are real addresses, as typed by the customer (raw PII: the defect)
    raw = con.execute("""SELECT "user_data.em" FROM s WHERE "user_data.em" LIKE '%@%'
                         AND NOT starts_with("user_data.em", '[')""").fetchall()
    assert raw
    assert all(re.fullmatch(r"[A-Z][a-z]+\.[a-z]+([0-9]{2})?@[a-z.-]+\.[a-z]+", e) for (e,) in raw), raw
    for col in ("ph", "fn", "ln", "st", "external_id"):
        bad = con.execute(f"""SELECT count(*) FROM s WHERE "user_data.{col}" IS NOT NULL
            AND NOT regexp_full_match("user_data.{col}", '[0-9a-f]{{64}}')""").fetchone()[0]
        assert bad == 0, col


# -- manifest --------------------------------------------------------------------------------------

def test_manifest_counts_match_recount_from_written_files(small):
    """Count the defects again, independently, from the CSV files as written."""
    m = _manifest(small["csv"])
    con = duckdb.connect()
    _csv(con, small["csv"][0], "b")
    _csv(con, small["csv"][1], "s")
    n = con.execute(r"""SELECT
        count(*) FILTER (WHERE length(event_time) = 13),
        count(*) FILTER (WHERE sent_at::BIGINT - CASE WHEN length(event_time) = 13
            THEN event_time::BIGINT // 1000
                                                   ELSE event_time::BIGINT END > 604800),
        count(*) FILTER (WHERE CASE WHEN length(event_time) = 13 THEN event_time::BIGINT // 1000
                                    ELSE event_time::BIGINT END - sent_at::BIGINT > 60),
        count(*) FILTER (WHERE test_event_code IS NOT NULL),
        count(*) FILTER (WHERE contains("custom_data.value", ',')),
        count(*) FILTER (WHERE event_name = 'purchase'),
        count(*) FILTER (WHERE contains(event_source_url, 'fbclid=') AND "user_data.fbc" IS NULL),
        count(*) FILTER (WHERE "consent.ad_storage" = 'denied' OR "consent.ad_user_data" = 'denied'),
        count(*) FILTER (WHERE NOT starts_with("user_data.client_user_agent", 'Mozilla/')),
        count(*) FILTER (WHERE event_id IS NULL),
        count(*) FILTER (WHERE "user_data.ph" = ?),
        count(*) FILTER (WHERE "custom_data.currency" IN ('EURO', 'US$', '€'))
        FROM s""", [hashlib.sha256(b"").hexdigest()]).fetchone()
    assert n == (m["timing"]["event_time_in_ms"], m["timing"]["stale_over_7d"], m["timing"]["future"],
                 m["contract"]["test_event_code_present"], m["contract"]["value_not_numeric"],
                 m["contract"]["nonstandard_event_name"], m["match_keys"]["fbc"]["missing_with_fbclid"],
                 m["consent"]["forwarded_without_consent"],
                 m["match_keys"]["client_user_agent"]["non_browser"],
                 m["dedup"]["server_missing_event_id"], m["match_keys"]["ph"]["hashed_empty"],
                 m["contract"]["currency_invalid"])
    dup = con.execute("SELECT count(event_id) - count(DISTINCT (event_name, event_id)) FROM s "
                      "WHERE event_id IS NOT NULL").fetchone()[0]
    assert dup == m["dedup"]["duplicate_server_rows"] > 0
    # dedup keys: every key is exactly one of paired / outside_window / browser_only / server_only
    keys = con.execute("""
        WITH bk AS (SELECT DISTINCT event AS n, eventID AS i FROM b WHERE eventID IS NOT NULL
            AND timestamp IS NOT NULL),
             sk AS (SELECT DISTINCT event_name AS n, event_id AS i FROM s WHERE event_id IS NOT NULL)
        SELECT (SELECT count(*) FROM bk JOIN sk USING (n, i)), (SELECT count(*)
            FROM bk ANTI JOIN sk USING (n, i)),
               (SELECT count(*) FROM sk ANTI JOIN bk USING (n, i))""").fetchone()
    d = m["dedup"]
    assert keys == (d["paired"] + d["outside_window"], d["browser_only"], d["server_only"])
    explained = d["name_case_mismatch"] + d["different_ids_probable"]
    assert explained + d["server_only_unexplained"] == d["server_only"]
    assert m["rows"]["browser"]["written"] - m["rows"]["browser"]["loadable"] == sum(
        m["expected_rejected"]["browser"].values())


def test_manifest_journey_counts_exact_names_per_log(small):
    m = _manifest(small["csv"])
    con = duckdb.connect()
    _csv(con, small["csv"][1], "s")
    rows = con.execute("SELECT event_name, count(*) FROM s GROUP BY 1").fetchall()
    assert dict(rows) == m["journey"]["server"]


def test_sample_session_funnel_monotone(small, large):
    for m in (_manifest(small["csv"]), _manifest(large)):
        funnel = [m["sessions"]["funnel"][s] for s in sample.FUNNEL_STEPS]
        assert funnel[0] == m["sessions"]["total"]
        assert all(a >= b for a, b in zip(funnel, funnel[1:], strict=False)) and funnel[-1] > 0
        for role in ("browser", "server"):
            steps = [m["journey"][role].get(s, 0) for s in sample.FUNNEL_STEPS]
            assert all(a >= b for a, b in zip(steps, steps[1:], strict=False)), (role, steps)


def test_sample_mix_observed_rates_within_documented_mix(large):
    """Every documented rate is what actually happened, within 4.5 binomial standard deviations."""
    m = _manifest(large)
    assert set(m["mix_observed"]) == {r.name for r in sample.MIX}
    for r in sample.MIX:
        obs = m["mix_observed"][r.name]
        assert obs["of"] > 0, r.name
        expected = r.rate * obs["of"]
        tolerance = 4.5 * math.sqrt(obs["of"] * r.rate * (1 - r.rate)) + 2
        assert abs(obs["count"] - expected) <= tolerance, (r.name, obs, expected)


def test_sample_defects_all_present_in_demo_manifest():
    """The committed demo set shows every defect the diagnostics look for at least once."""
    m = json.loads((ROOT / "data" / "manifest.json").read_text(encoding="utf-8"))
    for value in (m["dedup"]["name_case_mismatch"], m["dedup"]["different_ids_probable"],
                  m["dedup"]["server_only_unexplained"], m["dedup"]["browser_only_unexplained"],
                  m["dedup"]["duplicate_server_rows"], m["timing"]["event_time_in_ms"],
                  m["timing"]["stale_over_7d"], m["timing"]["future"], m["timing"]["skew_over_threshold"],
                  m["match_keys"]["em"]["unhashed"],
                  m["match_keys"]["em"]["uppercase_hash"], m["match_keys"]["ph"]["hashed_empty"],
                  m["match_keys"]["fbp"]["hashed"], m["match_keys"]["fbc"]["missing_with_fbclid"],
                  m["match_keys"]["client_ip_address"]["private"],
                  m["match_keys"]["client_user_agent"]["non_browser"],
                  m["consent"]["forwarded_without_consent"], m["consent"]["consent_unknown"],
                  m["contract"]["currency_invalid"], m["contract"]["value_not_numeric"],
                  m["contract"]["purchase_missing_value"], m["contract"]["test_event_code_present"],
                  m["contract"]["nonstandard_event_name"]):
        assert value > 0


# -- the committed data and its documentation ------------------------------------------------------

def test_committed_data_is_what_make_sample_writes(tmp_path):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    args = re.search(r"capi_diag sample --out data --sessions (\d+) --seed (\d+)\s*$", makefile, re.M)
    assert args, "the Makefile's sample target changed: keep it, this test and docs/demo-data.md in sync"
    paths = sample.write_sample(tmp_path, sessions=int(args[1]), seed=int(args[2]))
    committed = [ROOT / "data" / p.name for p in paths]
    assert _digest(paths) == _digest(committed), "data/ is stale: run `make sample` and commit data/"
    assert sum(p.stat().st_size for p in committed) < 5 * 1024 * 1024


def test_docs_sample_table_lists_every_rate():
    text = (ROOT / "docs" / "demo-data.md").read_text(encoding="utf-8")
    for r in sample.MIX:
        row = re.search(rf"^\| `{r.name}` \| ([0-9.]+) ?% \|", text, re.M)
        assert row, f"docs/demo-data.md lacks a row for {r.name}"
        assert float(row[1]) == pytest.approx(r.rate * 100), r.name


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, fragment", [
    ({"fmt": "xml"}, "--format"), ({"sessions": 0}, "--sessions"), ({"seed": -1}, "--seed"),
])
def test_write_sample_bad_arguments_usage_error(tmp_path, kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        sample.write_sample(tmp_path, **kwargs)


def test_cli_sample_unwritable_out_exit_2_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["sample", "--out", str(blocker / "sub"), "--sessions", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "Traceback" not in err


def test_cli_sample_writes_files_and_prints_paths(tmp_path, capsys):
    argv = ["sample", "--out", str(tmp_path), "--sessions", "20", "--seed", "1", "--format", "jsonl"]
    assert main(argv) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == ["browser_events.jsonl", "server_events.jsonl", "manifest.json",
                                               "orders.csv", "send_log.jsonl"]


# -- the import ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", sample.FORMATS)
def test_import_logs_demo_files_rejects_only_documented_rows(small, fmt):
    ingest = pytest.importorskip("capi_diag.io.ingest")
    from capi_diag.engine.db import Database

    paths = small[fmt]
    m = _manifest(paths)
    with Database() as db:
        ds = ingest.import_logs(db, browser=[paths[0]], server=[paths[1]])
        for role in ("browser", "server"):
            info = ds.inputs[role]
            assert info["rows_read"] == m["rows"][role]["written"]
            assert info["rows"] == m["rows"][role]["loadable"]
            assert info["rejected_reasons"] == m["expected_rejected"][role]
            assert info["unknown_columns"] == []
        got = db.execute("""SELECT count(*) FILTER (WHERE event_time_raw_unit = 'ms'),
            count(*) FILTER (WHERE len(em) > 1), count(*) FILTER (WHERE test_event_code IS NOT NULL),
            count(*) FILTER (WHERE sent_at - event_time > 604800), count(*) FILTER (WHERE event_id IS NULL)
            FROM server_events""").fetchone()
        assert got == (m["timing"]["event_time_in_ms"], m["match_keys"]["em"]["multi_valued"],
                       m["contract"]["test_event_code_present"], m["timing"]["stale_over_7d"],
                       m["dedup"]["server_missing_event_id"])
        assert db.execute("SELECT count(*) FROM browser_events WHERE event_time_raw_unit = 'iso'"
                          ).fetchone()[0] == m["rows"]["browser"]["loadable"]


_GROUND_TRUTH = {
    "dedup": ("paired", "outside_window", "browser_only", "server_only", "name_case_mismatch",
              "different_ids_probable", "server_only_unexplained", "browser_only_unexplained",
              "browser_missing_event_id", "server_missing_event_id", "duplicate_server_rows",
              "duplicate_browser_rows", "reused_event_id"),
    "timing": ("skew_over_threshold", "event_time_in_ms", "stale_over_7d", "future", "sent_at_missing"),
    "consent": ("forwarded_without_consent", "consent_unknown"),
    "contract": ("purchase_missing_value", "purchase_missing_currency", "value_not_numeric",
                 "currency_invalid", "nonstandard_event_name", "test_event_code_present",
                 "action_source_invalid", "event_source_url_missing"),
}


def test_report_on_demo_files_matches_manifest_ground_truth(small):
    """The analyses that exist count exactly what the generator injected (sections not there yet skip)."""
    ingest = pytest.importorskip("capi_diag.io.ingest")
    from capi_diag.engine.db import Database
    from capi_diag.report import build_report

    paths = small["csv"]
    m = _manifest(paths)
    with Database() as db:
        report = build_report(ingest.import_logs(db, browser=[paths[0]], server=[paths[1]]))
    compared = 0
    for section, keys in _GROUND_TRUTH.items():
        if not isinstance(report.get(section), dict):
            continue
        for key in keys:
            if key in report[section]:
                assert report[section][key] == m[section][key], (section, key)
                compared += 1
    if isinstance(report.get("match_keys"), dict):
        for field, expected in m["match_keys"].items():
            defects = (report["match_keys"].get(field) or {}).get("defects") or {}
            for name, want in expected.items():
                if name in defects:
                    assert defects[name] == want, (field, name)
                    compared += 1
    if isinstance(report.get("journey"), dict):
        for role in ("browser", "server"):
            for step in sample.FUNNEL_STEPS:
                got = report["journey"].get(role, {}).get(step)
                if got is not None:
                    assert got == m["journey"][role].get(step, 0), (role, step)
                    compared += 1
    if not compared:
        pytest.skip("no analysis in the report yet")
