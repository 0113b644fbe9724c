from __future__ import annotations

import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def browser_tests_enabled() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("CAPI_BROWSER_TESTS") == "1"


def pytest_collection_modifyitems(config, items):
    """Browser tests run under CI=true (CI installs Debian's chromium) and must not skip there;
    elsewhere they skip unless CAPI_BROWSER_TESTS=1."""
    if browser_tests_enabled():
        return
    skip = pytest.mark.skip(
        reason="browser test: set CAPI_BROWSER_TESTS=1 (or CI=true) and install Debian's chromium to run it"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium not found on PATH: `apt-get install chromium` (CI's .ci/run does this)")
    return path


def clean_graph_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> pytest.MonkeyPatch:
    """No token, Graph URL or API version from the developer's machine; the working folder and HOME
    inside ``tmp_path``, so no secrets file of the machine is read (the Graph command tests)."""
    for name in ("CAPI_ACCESS_TOKEN", "CAPI_GRAPH_URL", "CAPI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch
