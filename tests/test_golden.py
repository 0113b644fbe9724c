"""Golden reports: the figures of the commit before the package was restructured, held on every engine.

``tests/golden/`` holds the reports that commit produced (its README lists the commands). Each test
rebuilds one report the same way, through the CLI, and compares the parsed JSON without
``generated_at``. The demo cases run in ``make test``; the 100k-event cases (the benchmark's logs,
regenerated and checked by SHA-256) and every Spark case run in ``make test-golden``.
"""

from __future__ import annotations

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


def _report(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "report.json"
    assert main(["report", *args, "--format", "json", "--output", str(out)]) == 1  # the logs have failures
    doc = json.loads(out.read_text(encoding="utf-8"))
    doc.pop("generated_at")
    return doc


def _golden(name: str) -> dict:
    doc = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    doc.pop("generated_at")
    return doc


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
