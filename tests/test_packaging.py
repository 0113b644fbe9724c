"""The package definition and the commands it adds, checked from the checkout (fast; no wheel built).

requirements.txt and pyproject.toml list the same pinned runtime dependencies; the files the wheel
bundles are the ones :mod:`capi_diag.core.resources` looks up; ``--version``, ``report --help``,
``report --demo``, ``schema`` and ``serve`` behave as documented. tests/test_wheel.py (``make
test-wheel``) checks the built and installed wheel itself.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import capi_diag
from capi_diag.cli import build_parser, main, serve
from capi_diag.core import resources
from capi_diag.ui import navigation

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# -- helpers shared with tests/test_wheel.py -------------------------------------------------------

def requirement_key(text: str) -> tuple[str, tuple[str, ...], str, str]:
    """A requirement as comparable parts: normalized name, extras, version specifier, marker."""
    r = Requirement(text)
    return canonicalize_name(r.name), tuple(sorted(r.extras)), str(r.specifier), str(r.marker or "")


def requirements_txt(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """requirements.txt's requirements (comments and blank lines skipped), by normalized name."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        assert not text.startswith("-"), f"requirements.txt: options ({text}) cannot be package metadata"
        out[requirement_key(text)[0]] = text
    return out


def differences(requirements: dict[str, str], metadata: Iterable[str], where: str) -> list[str]:
    """Every way the two lists differ, in words; empty when they hold the same requirements."""
    meta = {requirement_key(t)[0]: t for t in metadata}
    problems = [f"{text} is in requirements.txt but not in {where}"
                for name, text in requirements.items() if name not in meta]
    problems += [f"{text} is in {where} but not in requirements.txt"
                 for name, text in meta.items() if name not in requirements]
    problems += [f"{requirements[name]} (requirements.txt) differs from {meta[name]} ({where})"
                 for name in requirements.keys() & meta.keys()
                 if requirement_key(requirements[name]) != requirement_key(meta[name])]
    return problems


# -- dependencies ------------------------------------------------------------------------------------

def test_packaging_requirements_txt_equals_pyproject_dependencies() -> None:
    problems = differences(requirements_txt(), PYPROJECT["project"]["dependencies"],
                           "pyproject.toml [project].dependencies")
    assert problems == [], "keep requirements.txt and pyproject.toml in step:\n" + "\n".join(problems)


def test_packaging_differences_names_each_side_and_version(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# pins\nstreamlit==1.67.0\nduckdb==2.0.1  # engine\nibis-framework[duckdb]==12.0.0\n")
    problems = differences(requirements_txt(req), ["streamlit==1.67.0", "duckdb==2.0.2", "ibis-framework==12.0.0",
                                                   "httpx==0.28.1"], "the wheel")
    assert sorted(problems) == sorted([
        "duckdb==2.0.1 (requirements.txt) differs from duckdb==2.0.2 (the wheel)",
        "ibis-framework[duckdb]==12.0.0 (requirements.txt) differs from ibis-framework==12.0.0 (the wheel)",
        "httpx==0.28.1 is in the wheel but not in requirements.txt",
    ])
    assert differences(requirements_txt(req), ["streamlit==1.67.0", "duckdb==2.0.1"], "the wheel") == [
        "ibis-framework[duckdb]==12.0.0 is in requirements.txt but not in the wheel"]


def test_packaging_every_runtime_dependency_is_pinned_exactly() -> None:
    for text in requirements_txt().values():
        spec = list(Requirement(text).specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{text}: pin with == (conventions)"


# -- the bundled files -------------------------------------------------------------------------------

def test_packaging_force_include_is_exactly_the_bundled_resources() -> None:
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"] == {name: f"capi_diag/_bundle/{name}" for name in resources.BUNDLED}
    assert wheel["packages"] == ["capi_diag"]
    assert PYPROJECT["project"]["scripts"] == {"capi-diag": "capi_diag.cli:main"}


def test_resources_checkout_every_bundled_file_found() -> None:
    assert not resources.BUNDLE_DIR.exists(), "capi_diag/_bundle only exists inside the wheel"
    assert resources.root() == ROOT
    for name in resources.BUNDLED:
        assert resources.path(name).exists(), name
    assert resources.demo_paths() == {"browser": ROOT / "data" / "browser_events.csv",
                                      "server": ROOT / "data" / "server_events.csv"}


def test_resources_installed_bundle_wins_over_the_folder_around_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "_bundle"
    (bundle / "data").mkdir(parents=True)
    (bundle / "app.py").write_text("")
    for name in resources.DEMO_FILES.values():
        (bundle / "data" / name).write_text("event_name,event_time\n")
    monkeypatch.setattr(resources, "BUNDLE_DIR", bundle)
    monkeypatch.delenv("CAPI_DEMO_DIR", raising=False)
    assert resources.root() == bundle
    assert resources.path(resources.REPORT_SCHEMA) == bundle / "docs" / "report.schema.json"
    assert resources.demo_paths() == {"browser": bundle / "data" / "browser_events.csv",
                                      "server": bundle / "data" / "server_events.csv"}
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "elsewhere"))
    assert resources.demo_paths() is None


def test_navigation_page_paths_from_the_installed_bundle_reach_the_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    assert navigation.PAGES[0].path == "capi_diag/ui/pages/checklist.py"
    monkeypatch.setattr(navigation, "APP_ROOT", resources.BUNDLE_DIR)
    for page in navigation.PAGES:
        assert page.path == f"../ui/pages/{page.file}"
        assert (resources.BUNDLE_DIR / page.path).resolve() == (navigation.PAGES_DIR / page.file).resolve()


# -- the commands ------------------------------------------------------------------------------------

def test_cli_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"capi-diag {capi_diag.__version__}\n"


def test_cli_report_help_shows_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["report", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  # try it on the bundled demo logs" in out
    assert "capi-diag report --demo --format markdown" in out
    assert "capi-diag report --browser pixel.csv --server capi.jsonl --fail-on fail" in out
    assert "exit codes: 0 nothing at or above --fail-on; 1 checklist items at or above --fail-on;" in out


def test_cli_report_demo_exit_1_files_named_by_name_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--demo`` is exactly ``--browser browser_events.csv --server server_events.csv --orders orders.csv
    --send-log send_log.jsonl`` run inside data/."""
    out = tmp_path / "demo.json"
    assert main(["report", "--demo", "--output", str(out)]) == 1
    report = json.loads(out.read_text(encoding="utf-8"))
    for role, name in {**resources.DEMO_FILES, "orders": "orders.csv", "sends": "send_log.jsonl"}.items():
        assert report["inputs"][role]["files"] == [name]
        assert [f["name"] for f in report["inputs"][role]["file_reports"]] == [name]
    assert str(ROOT) not in out.read_text(encoding="utf-8")
    assert report["inputs"]["browser"]["rows"] == 3699 and report["inputs"]["server"]["rows"] == 4490
    explicit = tmp_path / "explicit.json"
    monkeypatch.chdir(ROOT / "data")
    assert main(["report", "--browser", "browser_events.csv", "--server", "server_events.csv",
                 "--orders", "orders.csv", "--send-log", "send_log.jsonl", "--output", str(explicit)]) == 1
    same = json.loads(explicit.read_text(encoding="utf-8"))
    assert report["checklist"] == same["checklist"]
    assert {k: v for k, v in report.items() if k != "generated_at"} == \
        {k: v for k, v in same.items() if k != "generated_at"}


@pytest.mark.parametrize("argv, message", [
    (["report"], "capi-diag report: the following arguments are required: --browser, --server (or --demo"),
    (["report", "--browser", "b.csv"], "the following arguments are required: --server (or --demo"),
    (["report", "--demo", "--server", "s.csv"], "capi-diag report: --demo replaces --browser and --server"),
])
def test_cli_report_inputs_missing_or_contradictory_exit_2(argv: list[str], message: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_report_demo_missing_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CAPI_DEMO_DIR", str(tmp_path / "no-demo"))
    assert main(["report", "--demo"]) == 2
    err = capsys.readouterr().err
    assert "the demo logs (browser_events.csv, server_events.csv) are not in no-demo/" in err
    assert str(tmp_path) not in err


def test_cli_schema_prints_the_published_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "report.schema.json").read_text(encoding="utf-8")


def test_cli_python_m_and_installed_names_in_usage_errors(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "capi_diag", "report", "--demo", "--browser", "b.csv"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("capi-diag: Usage error: python -m capi_diag report: --demo replaces")


def test_cli_report_reader_closes_stdout_early_exit_code_kept_no_error() -> None:
    """``capi-diag report ... | head``: the report's own exit code, and no "internal error" line."""
    proc = subprocess.Popen([sys.executable, "-m", "capi_diag", "report", "--demo", "--format", "markdown"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # the reader is gone before the report is written
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 1
    assert err == b""


# -- serve ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_runs_this_interpreters_streamlit_on_the_found_app() -> None:
    cmd = serve.streamlit_command(8600, "127.0.0.1")
    assert cmd == [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", "8600",
                   "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
                   "--runner.postScriptGC", "false"]


def test_serve_port_in_use_exit_2_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (f"capi-diag: Usage error: port {port} on 127.0.0.1 is already in use (another dashboard?); "
                   "stop it or choose another port with --port.\n")


@pytest.mark.parametrize("argv, message", [
    (["--port", "0"], "--port 0 is not a TCP port (1-65535)."),
    (["--port", "70000"], "--port 70000 is not a TCP port (1-65535)."),
    (["--address", "192.0.2.1"], "--address 192.0.2.1 port 8501: cannot listen there"),
])
def test_serve_bad_port_or_address_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def test_serve_from_another_folder_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    """``python -m capi_diag serve`` with the checkout on PYTHONPATH, from a folder that is not the checkout."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "capi_diag", "serve", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        health = _wait_for_health(proc, port, log)
        assert health == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert text.startswith(f"capi-diag dashboard on http://localhost:{port} (demo data: browser_events.csv, "
                           "server_events.csv); Ctrl-C stops it\n")
    assert text.rstrip().endswith("capi-diag dashboard stopped")
    assert "Traceback" not in text
    with socket.socket() as s:  # the Streamlit child is gone with it: the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def _wait_for_health(proc: subprocess.Popen, port: int, log: Path, seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                return r.read().decode()
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the dashboard did not answer /_stcore/health within {seconds:.0f} s: {log.read_text()[-2000:]}")


# -- the dashboard's demo ------------------------------------------------------------------------------

def test_state_demo_workspace_names_files_by_name_only() -> None:
    from capi_diag.ui import session, state

    paths = session.demo_paths()
    assert paths is not None
    ws = state.demo_workspace(paths)
    try:
        for role, name in resources.DEMO_FILES.items():
            assert ws.dataset.inputs[role]["files"] == [name]
            assert [f["name"] for f in ws.dataset.inputs[role]["file_reports"]] == [name]
    finally:
        ws.close()


# -- the documented commands (README.md and docs/*.md) ----------------------------------------------------

DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLI_PAGE = ROOT / "docs" / "cli.md"


def _page_section(page: Path, heading: str) -> str:
    text = page.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    nxt = text.find("\n### ", start + 1)
    return text[start:min(x for x in (end, nxt) if x != -1)]


def test_readme_capi_diag_commands_parse() -> None:
    """Every concrete ``capi-diag ...`` line of the README and docs/*.md (not the synopses) is a valid command line."""
    code = "\n".join(block for page in DOC_PAGES
                     for block in re.findall(r"^```(?:sh|yaml)\n(.*?)^```", page.read_text(encoding="utf-8"),
                                             re.M | re.S))
    lines = re.findall(r"^\s*(?:run: )?capi-diag (.+)$", code, re.M)
    checked = 0
    for rest in lines:
        if any(mark in rest for mark in ("[", "|", "...")):
            continue  # a synopsis, not a command
        argv = shlex.split(rest.split("  #")[0].split(" > ")[0].split(" >> ")[0])
        if argv[0] in ("--version", "--help") or argv[-1] == "--help":
            continue
        args = build_parser().parse_args(argv)
        assert args.command in ("report", "sample", "schema", "serve", "send-test", "watch", "fake-graph",
                                "rehearse", "demo-shop", "monitor", "compare"), rest
        checked += 1
    assert checked >= 8


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed (apt-get install jq)")
def test_readme_jq_examples_run_on_a_real_report(tmp_path: Path) -> None:
    block = re.search(r"```sh\n(.*?)```", _page_section(CLI_PAGE, "### Reading the JSON report with jq"), re.S)
    assert block
    commands = [line.split("   #")[0].strip() for line in block[1].splitlines() if line.startswith("jq ")]
    assert len(commands) >= 8
    assert main(["report", "--demo", "--output", str(tmp_path / "report.json")]) == 1
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    outputs = {}
    for command in commands:
        r = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert r.stderr == "", f"{command}: {r.stderr}"
        assert r.returncode == (1 if command.startswith("jq -e") else 0), command
        assert r.stdout.strip() not in ("", "null"), f"{command} printed nothing"
        outputs[command] = r.stdout
    fails = [i["id"] for i in report["checklist"] if i["status"] == "fail"]
    assert outputs[commands[0]].split() == fails
    counts = json.loads(outputs[commands[1]])
    assert counts == {s: [i["status"] for i in report["checklist"]].count(s) for s in counts}
    assert sum(counts.values()) == len(report["checklist"])
    assert json.loads(outputs[commands[3]])["pairing_rate"] == report["dedup"]["pairing_rate"]
    assert "null" not in outputs[commands[3]] + outputs[commands[6]], "a key in docs/cli.md's jq does not exist"
