"""Spark's CSV reader without multi-line mode where a file allows it (no Spark needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from capi_diag.io.spark import has_quoted_newline

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("text", "want"), [
    ('a,b\n1,"x"\n2,"y ""q"" z"\n', False),
    ('a,b\r\n1,"x, y"\r\n', False),
    ('a,b\n1,"two\nlines"\n', True),
    ('a,b\n1,"two\r\nlines"\n', True),
    ('a,b\n1,"say ""hi""\nthere"\n', True),
    ("a,b\n1,2", False),
])
def test_has_quoted_newline(tmp_path, text, want):
    path = tmp_path / "log.csv"
    path.write_bytes(text.encode())
    assert has_quoted_newline(str(path)) is want
    # the same answer when the file is read in chunks of 3 bytes (quotes split across chunks)
    assert has_quoted_newline(str(path), chunk=3) is want


def test_has_quoted_newline_demo_logs_and_non_files(tmp_path):
    assert has_quoted_newline(str(ROOT / "data" / "server_events.csv")) is False
    assert has_quoted_newline(str(tmp_path)) is True
    assert has_quoted_newline("s3://bucket/logs/*.csv") is True
