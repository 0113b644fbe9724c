"""Golden reports: the figures of the commit before the package was restructured, held on every engine.

``tests/golden/`` holds the reports that commit produced (its README lists the commands). Each test
rebuilds one report the same way, through the CLI, and compares the parsed JSON without
``generated_at``. The demo cases run in ``make test``; the 100k-event cases (the benchmark's logs,
regenerated and checked by SHA-256) and every Spark case run in ``make test-golden``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import pytest

from capi_diag.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
DATA = ROOT / "data"
BENCH_SHA256 = {
    "browser.csv": "c92c8f8a8d3a37a270f4cd8705a53637ae897d27dbd79f35274053fed34adeb3",
    "server.csv": "c9f5c6c19ae0ff100546bc38efd04975f74f8129ae124bd1a645a27a9c0b8b00",
}
SPARK = ["--engine", "spark", "--spark-master", "local[2]"]


def comparable(doc: dict) -> dict:
    """A report as the golden files hold it: without ``generated_at`` and without what was added to
    the report after they were made, each addition checked where it is made (issue 24: the
    ``privacy`` section and its checklist item, tests/test_privacy.py; the per-pair gap counts
    ``browser_only`` / ``server_only`` of ``match_keys.paired_mismatch`` and the ``fbp.paired_gap``
    examples, tests/test_match_keys.py). Everything else must be equal."""
    doc = copy.deepcopy(doc)
    doc.pop("generated_at", None)
    doc.pop("privacy", None)
    doc["checklist"] = [i for i in doc.get("checklist", []) if i.get("id") != "no_personal_data_outside_user_data"]
    mk = doc.get("match_keys") or {}
    for entry in ((mk.get("paired_mismatch") or {}).get("fields") or {}).values():
        entry.pop("browser_only", None)
        entry.pop("server_only", None)
    (mk.get("examples") or {}).pop("fbp.paired_gap", None)
    return doc


def _report(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "report.json"
    assert main(["report", *args, "--format", "json", "--output", str(out)]) == 1  # the logs have failures
    doc = json.loads(out.read_text(encoding="utf-8"))
    # the additions, on logs without personal data outside user_data
    assert doc["privacy"]["personal_data_rows"] == 0
    assert {i["id"]: i["status"] for i in doc["checklist"]}["no_personal_data_outside_user_data"] == "pass"
    return comparable(doc)


def _golden(name: str) -> dict:
    return comparable(json.loads((GOLDEN / name).read_text(encoding="utf-8")))


def _demo_logs() -> list[str]:
    return ["--browser", str(DATA / "browser_events.csv"), "--server", str(DATA / "server_events.csv")]


@pytest.fixture(scope="module")
def bench_100k(tmp_path_factory) -> list[str]:
    """The benchmark's 100k logs (seed 7), generated here and checked byte for byte."""
    sys.path.insert(0, str(ROOT))
    try:
        from bench import datagen
    finally:
        sys.path.remove(str(ROOT))
    logs = datagen.ensure_logs("100k", 7, sys.executable, tmp_path_factory.mktemp("bench"), log=lambda _: None)
    for name, digest in BENCH_SHA256.items():
        assert hashlib.sha256((logs.folder / name).read_bytes()).hexdigest() == digest, name
    return ["--browser", str(logs.folder / "browser.csv"), "--server", str(logs.folder / "server.csv")]


def test_golden_demo_report(tmp_path: Path) -> None:
    assert _report(tmp_path, "--demo") == _golden("demo.json")


def test_golden_demo_logs_duckdb(tmp_path: Path) -> None:
    assert _report(tmp_path, *_demo_logs()) == _golden("demo_logs_duckdb.json")


@pytest.mark.golden
def test_golden_bench_100k_duckdb(tmp_path: Path, bench_100k: list[str]) -> None:
    assert _report(tmp_path, *bench_100k) == _golden("bench100k_duckdb.json")


@pytest.mark.golden
@pytest.mark.spark
def test_golden_demo_logs_spark(tmp_path: Path) -> None:
    assert _report(tmp_path, *_demo_logs(), *SPARK) == _golden("demo_logs_spark.json")


@pytest.mark.golden
@pytest.mark.spark
def test_golden_bench_100k_spark(tmp_path: Path, bench_100k: list[str]) -> None:
    assert _report(tmp_path, *bench_100k, *SPARK) == _golden("bench100k_spark.json")
