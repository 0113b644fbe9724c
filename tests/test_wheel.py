"""The built wheel, installed into a fresh virtual environment outside the checkout (``make test-wheel``).

The module builds the sdist and, from it, the wheel (``python -m build``), installs the wheel with pip
into a new venv under the temp folder, and runs the installed ``capi-diag`` from a folder that is not
the checkout, with no PYTHONPATH: the report on the packaged demo logs (exit 1, JSON valid against the
schema, the same report as the checkout's), ``sample``, and ``serve`` (health endpoint, the checklist
in headless Chromium, no traceback, a clean stop). The bundled files are compared byte for byte with
the checkout's. pip installs the pinned dependencies from the package index (its cache and any
``PIP_FIND_LINKS`` make repeated runs fast). Marked ``wheel``: ``make test`` leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import jsonschema
import pytest

import capi_diag
from capi_diag.core import resources
from tests.test_packaging import ROOT, differences, requirements_txt

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(1200)]

ARTIFACTS = ROOT / "tests" / "_artifacts"
WAIT_MS = 240_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path
    env: dict[str, str]

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "capi-diag"

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.command), *args], capture_output=True, text=True, cwd=self.elsewhere,
                              env=self.env, timeout=timeout)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT)
    dist = base / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], timeout=600)
    wheels = sorted(dist.glob("capi_diag-*.whl"))
    assert [w.name for w in wheels] == [f"capi_diag-{capi_diag.__version__}-py3-none-any.whl"]
    assert len(list(dist.glob("capi_diag-*.tar.gz"))) == 1
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", str(wheels[0])],
         timeout=1200)
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "CAPI_DEMO_DIR", "VIRTUAL_ENV") and not k.startswith("STREAMLIT_")}
    env.update(XDG_CACHE_HOME=str(base / "cache"), HOME=str(base / "home"),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    (base / "home").mkdir()
    yield Installed(wheels[0], venv, elsewhere, env)
    shutil.rmtree(venv, ignore_errors=True)  # ~700 MB; pytest keeps its last temp folders


def _site_packages(inst: Installed) -> Path:
    r = _run([str(inst.venv / "bin" / "python"), "-c", "import capi_diag, pathlib; "
              "print(pathlib.Path(capi_diag.__file__).resolve().parent.parent)"], cwd=inst.elsewhere, env=inst.env)
    return Path(r.stdout.strip())


def _tracked(folder: str) -> list[str]:
    """The checkout's files under ``folder`` (git's list, so ignored local files do not count)."""
    r = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--", folder], capture_output=True, text=True)
    if r.returncode == 0 and r.stdout.strip():
        return sorted(r.stdout.split())
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*") if p.is_file())


# -- the wheel's contents --------------------------------------------------------------------------------

def test_wheel_bundled_files_equal_the_checkouts(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        bundled = {n.removeprefix("capi_diag/_bundle/"): whl.read(n) for n in whl.namelist()
                   if n.startswith("capi_diag/_bundle/")}
        code = {n for n in whl.namelist() if n.startswith("capi_diag/") and not n.startswith("capi_diag/_bundle/")}
    expected: list[str] = []
    for name in resources.BUNDLED:
        expected += _tracked(name) if (ROOT / name).is_dir() else [name]
    assert sorted(bundled) == sorted(expected)
    for name in expected:
        assert bundled[name] == (ROOT / name).read_bytes(), f"the wheel's {name} differs from the checkout's"
    assert code == {str(p.relative_to(ROOT)) for p in (ROOT / "capi_diag").rglob("*.py")}
    assert not [n for n in code if "tests/" in n or n.endswith(".pyc")]


def test_wheel_metadata_requires_dist_equals_requirements_txt(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        meta = Parser().parsestr(whl.read(f"capi_diag-{capi_diag.__version__}.dist-info/METADATA").decode())
        entry_points = whl.read(f"capi_diag-{capi_diag.__version__}.dist-info/entry_points.txt").decode()
    assert meta["Name"] == "capi-diag" and meta["Version"] == capi_diag.__version__
    assert meta["Requires-Python"] == ">=3.11"
    requires = meta.get_all("Requires-Dist") or []
    core = [t for t in requires if "extra ==" not in t]
    problems = differences(requirements_txt(), core, "the wheel's Requires-Dist")
    assert problems == [], "\n".join(problems)
    # the one extra, `spark`, is exactly requirements-spark.txt's own pin
    spark = sorted(t.split(";")[0].replace(" ", "") for t in requires if "extra ==" in t)
    pins = sorted(line.strip() for line in (ROOT / "requirements-spark.txt").read_text().splitlines()
                  if line.strip() and not line.startswith(("#", "-r")))
    assert spark == pins and all("extra == 'spark'" in t or 'extra == "spark"' in t
                                 for t in requires if "extra ==" in t)
    assert "capi-diag = capi_diag.cli:main" in entry_points


def test_wheel_installed_package_is_the_one_imported_outside_the_checkout(installed: Installed) -> None:
    site = _site_packages(installed)
    assert site.is_relative_to(installed.venv.resolve())
    r = _run([str(installed.venv / "bin" / "python"), "-c",
              "from capi_diag.core import resources; print(resources.root())"],
             cwd=installed.elsewhere, env=installed.env)
    assert Path(r.stdout.strip()) == site / "capi_diag" / "_bundle"


# -- the commands ----------------------------------------------------------------------------------------

def test_wheel_version_and_report_help(installed: Installed) -> None:
    r = installed.run("--version")
    assert (r.returncode, r.stdout) == (0, f"capi-diag {capi_diag.__version__}\n")
    r = _run([str(installed.venv / "bin" / "python"), "-m", "capi_diag", "--version"], cwd=installed.elsewhere,
             env=installed.env)
    assert r.stdout == f"capi-diag {capi_diag.__version__}\n"
    r = installed.run("report", "--help")
    assert r.returncode == 0
    assert "examples:" in r.stdout and "capi-diag report --demo --format markdown" in r.stdout
    r = installed.run("--help")
    for command in ("report", "sample", "schema", "serve", "send-test", "watch", "fake-graph"):
        assert f"    {command} " in r.stdout or f"    {command}\n" in r.stdout, command


def test_wheel_report_on_packaged_demo_exit_1_valid_and_same_as_checkout(installed: Installed) -> None:
    r = installed.run("report", "--demo")
    assert r.returncode == 1, r.stderr
    assert r.stderr == ""
    report = json.loads(r.stdout)
    schema = json.loads(installed.run("schema").stdout)
    assert schema == json.loads((ROOT / "docs" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(report)
    assert "fail" in [i["status"] for i in report["checklist"]]
    assert "site-packages" not in r.stdout and str(installed.venv) not in r.stdout
    checkout = subprocess.run([sys.executable, "-m", "capi_diag", "report", "--browser", "browser_events.csv",
                               "--server", "server_events.csv", "--orders", "orders.csv",
                               "--send-log", "send_log.jsonl"], capture_output=True, text=True,
                              cwd=ROOT / "data", env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert checkout.returncode == 1, checkout.stderr
    same = json.loads(checkout.stdout)
    assert {k: v for k, v in report.items() if k != "generated_at"} == \
        {k: v for k, v in same.items() if k != "generated_at"}


def test_wheel_report_exit_codes_and_output_file(installed: Installed) -> None:
    r = installed.run("report", "--demo", "--format", "markdown", "--output", "report.md", "--fail-on", "fail")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    assert (installed.elsewhere / "report.md").read_text(encoding="utf-8").startswith("# ")
    r = installed.run("report", "--browser", "missing.csv", "--server", "missing.csv")
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "missing.csv" in r.stderr and "Traceback" not in r.stderr
    r = installed.run("report")
    assert r.returncode == 2
    assert "capi-diag report: the following arguments are required: --browser, --server" in r.stderr


def test_wheel_sample_writes_exactly_the_packaged_demo(installed: Installed) -> None:
    r = installed.run("sample", "--out", "sample")
    assert r.returncode == 0, r.stderr
    names = ["browser_events.csv", "server_events.csv", "manifest.json", "orders.csv", "send_log.jsonl"]
    assert r.stdout.split() == [f"sample/{n}" for n in names]
    bundle = _site_packages(installed) / "capi_diag" / "_bundle" / "data"
    for name in names:
        assert (installed.elsewhere / "sample" / name).read_bytes() == (bundle / name).read_bytes(), name


# -- serve -------------------------------------------------------------------------------------------------

@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(installed.command), "serve", "--port", str(port)], cwd=installed.elsewhere,
                                env=installed.env, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def test_wheel_serve_health_endpoint_answers(server: Server) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert server.proc.poll() is None, f"serve exited: {server.log.read_text()[-3000:]}"
        try:
            assert _get(f"{server.url}/_stcore/health") == (200, "ok")
            break
        except OSError:
            assert time.monotonic() < deadline, f"no health answer in 120 s: {server.log.read_text()[-3000:]}"
            time.sleep(0.2)
    status, html = _get(server.url + "/")
    assert status == 200 and "<title>Streamlit</title>" in html


@pytest.mark.browser
def test_wheel_serve_checklist_renders_in_chromium(server: Server, installed: Installed, chromium_path: str) -> None:
    from playwright.sync_api import sync_playwright

    from capi_diag.core import fmt
    from capi_diag.ui.layout import STATUS_LABELS
    from capi_diag.ui.navigation import BY_URL, SECTION_PAGE
    from capi_diag.verdict import checklist

    report = json.loads(installed.run("report", "--demo").stdout)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(server.url)
            page.wait_for_selector("h1:has-text('Pre-launch checklist')", timeout=WAIT_MS)
            page.wait_for_selector('[class*="st-key-check_"]', timeout=WAIT_MS)
            _settle(page)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "wheel_checklist.png"))
            _no_errors(page, "checklist")
            assert _metric(page, "Pairing rate") == fmt.share(report["dedup"]["pairing_rate"])
            assert _metric(page, "Server events") == fmt.count(report["inputs"]["server"]["rows"])
            # blockers, then warnings, then the rest (passing items sit in a collapsed expander)
            shown = page.locator('[class*="st-key-check_"] .capi-status').all_text_contents()
            assert [s.strip() for s in shown] == [STATUS_LABELS[i["status"]]
                                                  for i in checklist.grouped(report["checklist"])]
            assert "Demo data" in page.locator('[data-testid="stSidebar"]').inner_text()

            # an "Explain" link: st.page_link resolves its page path relative to the installed app.py
            item = next(i for i in report["checklist"] if i["page"] in SECTION_PAGE and i["status"] == "fail")
            target = BY_URL[SECTION_PAGE[item["page"]]]
            page.locator(f".st-key-check_{item['id']} a", has_text="Explain").click()
            page.wait_for_url(f"{server.url}/{target.url_path}", timeout=WAIT_MS)
            page.wait_for_selector("[data-testid='stMain'] h1", timeout=WAIT_MS)
            _settle(page)
            _no_errors(page, "explain link")
            current = page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]').inner_text()
            assert current.strip().splitlines()[-1] == target.title

            # the Import page names the demo files by name and shows the shipped upload limit (config.toml)
            page.locator('[data-testid="stSidebarNav"] a', has_text="Import").first.click()
            page.wait_for_selector("h1:has-text('Import your logs')", timeout=WAIT_MS)
            _settle(page)
            _no_errors(page, "import")
            main_text = page.locator("[data-testid='stMain']").inner_text()
            assert "browser_events.csv" in main_text and "server_events.csv" in main_text
            assert "site-packages" not in main_text and str(installed.venv) not in main_text
            limit = page.locator("[data-testid='stFileUploaderDropzoneInstructions']",
                                 has_text=re.compile(r"\S+ per file")).first
            limit.wait_for(timeout=WAIT_MS)
            assert limit.inner_text().startswith("1GB per file"), \
                "the bundled .streamlit/config.toml (server.maxUploadSize = 1024) is not in effect"
            page.close()
        finally:
            browser.close()


def test_wheel_serve_stops_on_sigterm_without_traceback(server: Server) -> None:
    assert server.proc.poll() is None, server.log.read_text()[-3000:]
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    text = server.log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "capi-diag dashboard on http://localhost:" in text.splitlines()[0]
    assert text.rstrip().endswith("capi-diag dashboard stopped")
    with socket.socket() as s:  # the Streamlit child stopped with it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))


def _settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)


def _no_errors(page, where: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where}: exception shown"
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, f"{where}: error box shown"


def _metric(page, label: str) -> str:
    m = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return m.locator('[data-testid="stMetricValue"]').inner_text().strip()
