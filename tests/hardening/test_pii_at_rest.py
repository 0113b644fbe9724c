"""Raw PII never at rest, never shown: raw emails and phones planted in the logs (CSV, JSON
Lines and Parquet, flat and nested, single and in JSON arrays) are searched for in every output: the
report in JSON, Markdown and HTML, the CLI's stdout and stderr, the bytes of the ``--db`` DuckDB file
(and anything beside it), and what the dashboard builds headlessly: the CSV download of every finding,
example tables of every section, the row look-up. The figures go to ``bench/results/hardening/pii.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from capi_diag.cli import main
from capi_diag.core.config import Config
from capi_diag.engine.db import Database
from capi_diag.io.ingest import import_logs
from capi_diag.report import build_report, render
from tests.hardening.figures import record

pytestmark = pytest.mark.hardening

EMAILS = [f"planted.person{i}@example-{i}.org" for i in range(12)] + ["Mixed.Case@Example.COM", " spaced@x.io "]
CANARY = "control-canary-kept-raw-"
"""Planted in an unknown column, which is stored as found: the search must find it in the database
bytes, or it could not see a leak either (DuckDB may compress strings)."""
PHONES = [f"+33 6 {i:02d} 45 67 {i + 10:02d}" for i in range(12)] + ["(555) 867-5309", "0044 20 7946 0958"]
NAMES = [f"Plantedfirst{i}" for i in range(14)]
"""Raw first and last names (issue 24: ``fn`` / ``ln`` are stored masked too)."""


def _needles() -> list[bytes]:
    """Every planted value, and forms an output could carry it in: trimmed, lowercased, JSON-escaped,
    UTF-16; for phones the digits alone."""
    out: set[bytes] = set()
    for v in EMAILS + PHONES + NAMES + [f"Plantedlast{i}" for i in range(14)]:
        for form in {v, v.strip(), v.strip().lower(), json.dumps(v.strip())[1:-1], v.strip().replace("@", "%40")}:
            out.add(form.encode("utf-8"))
            out.add(form.encode("utf-16-le"))
    for p in PHONES:
        out.add(re.sub(r"\D", "", p).encode())
    return sorted(out)


def _logs(folder: Path) -> tuple[list[Path], list[Path]]:
    """A browser CSV and a server CSV, JSON Lines and Parquet log, every one carrying the planted values
    (paired event ids, so they also reach the browser/server comparisons)."""
    n = len(EMAILS)
    ids = [f"ev-{i}" for i in range(n)]
    b = folder / "browser.csv"
    # issue 24: the same values where Meta forbids them (the Pixel's cd[user_data], the page URL, an
    # unmapped column), and raw first / last names
    b.write_text("event_name,eventID,timestamp,em,ph,fn,ln,cd[user_data],dl,contact\n" + "".join(
        f'Purchase,{ids[i]},{1794873602 + i},"{EMAILS[i]}","{PHONES[i]}",{NAMES[i]},Plantedlast{i},'
        + '"' + json.dumps({"em": EMAILS[i].strip(), "ph": PHONES[i]}).replace('"', '""') + '",'
        + f'https://shop.example/thanks?email={EMAILS[i].strip().replace("@", "%40")}'
        + f'&tel={PHONES[i].replace(" ", "%20")},'
        + f'"{EMAILS[(i + 3) % n]}"\n' for i in range(n)), encoding="utf-8")
    s_csv = folder / "server.csv"
    s_csv.write_text("event_name,event_id,event_time,user_data.em,user_data.ph,action_source,note\n" + "".join(
        f'Purchase,{ids[i]},{1794873602 + i},"[""{EMAILS[i]}"", ""{EMAILS[(i + 1) % n]}""]",'
        f'"{PHONES[i]}",website,{CANARY}{i}\n' for i in range(n)), encoding="utf-8")
    s_jsonl = folder / "server.jsonl"
    s_jsonl.write_text("".join(json.dumps({"data": [{"event_name": "Lead", "event_id": f"j{i}",
                                                     "event_time": 1794873602 + i, "action_source": "website",
                                                     "event_source_url": f"https://shop.example/?e={EMAILS[i].strip()}",
                                                     "user_data": {"em": [EMAILS[i]], "ph": [PHONES[i]],
                                                                   "fn": NAMES[i], "ln": f"Plantedlast{i}"},
                                                     "custom_data": {"billing_email": EMAILS[i],
                                                                     "billing_phone": PHONES[i]}}]}, indent=2)
                               + "\n" for i in range(n)), encoding="utf-8")  # pretty-printed bodies
    s_pq = folder / "server.parquet"
    pq.write_table(pa.table({
        "event_name": ["Lead"] * n, "event_id": [f"p{i}" for i in range(n)],
        "event_time": pa.array([1794873602 + i for i in range(n)], pa.int64()),
        "user_data": pa.array([{"em": [EMAILS[i]], "ph": PHONES[i]} for i in range(n)],
                              pa.struct([("em", pa.list_(pa.string())), ("ph", pa.string())])),
    }), s_pq)
    return [b], [s_csv, s_jsonl, s_pq]


def _find(blob: bytes, needles: list[bytes]) -> list[str]:
    return [n.decode("utf-8", errors="replace") for n in needles if n in blob]


def test_pii_planted_emails_and_phones_appear_in_no_output(tmp_path):
    browser, server = _logs(tmp_path)
    needles = _needles()
    outputs: dict[str, bytes] = {}
    dbfile = tmp_path / "db" / "kept.duckdb"
    for fmt in ("json", "markdown", "html"):
        out = tmp_path / f"report.{fmt}"
        stdout, stderr = io.StringIO(), io.StringIO()
        args = ["report", *sum((["--browser", str(p)] for p in browser), []),
                *sum((["--server", str(p)] for p in server), []), "--format", fmt, "--output", str(out)]
        if fmt == "json":
            args += ["--db", str(dbfile)]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = main(args)
        assert rc in (0, 1), stderr.getvalue()
        outputs[f"report.{fmt}"] = out.read_bytes()
        outputs[f"stdout.{fmt}"] = stdout.getvalue().encode()
        outputs[f"stderr.{fmt}"] = stderr.getvalue().encode()
    # to stdout too (the default)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        main(["report", "--browser", str(browser[0]), "--server", str(server[0]), "--format", "markdown"])
    outputs["stdout.markdown.default"] = stdout.getvalue().encode()
    for f in dbfile.parent.iterdir():  # the database file and anything DuckDB left beside it (wal)
        outputs[f"db:{f.name}"] = f.read_bytes()

    # the dashboard's headless builders: CSV downloads, example tables, the row look-up
    from capi_diag.ui import findings, views

    with Database() as db:
        ds = import_logs(db, browser=[str(p) for p in browser], server=[str(p) for p in server])
        config = Config()
        report = build_report(ds, config)
        outputs["ui:render.html"] = render(report, "html", config).encode()
        counts = findings.finding_counts(ds, config)
        outputs["ui:csv.all"] = findings.finding_csv(ds, config)
        for choice in counts["choice"]:
            outputs[f"ui:csv.{'.'.join(choice)}"] = findings.finding_csv(ds, config, choice)
        for section in ("dedup", "timing", "match_keys", "contract", "consent", "emq", "privacy"):
            for name, df in views.example_tables(report.get(section)).items():
                outputs[f"ui:examples.{section}.{name}"] = df.to_csv().encode()
        for key in ("ev-0", "ev-5", "j3", "p7"):
            found = findings.lookup(ds, config, key)
            for role in ("browser", "server"):
                outputs[f"ui:lookup.{key}.{role}"] = findings.side_by_side(getattr(found, role)).to_csv().encode()
            outputs[f"ui:lookup.{key}.findings"] = findings.findings_table(found.findings).to_csv().encode()
        stored = db.fetchone("SELECT count(*) FROM server_events WHERE len(em) > 0")[0]

    db_bytes = b"".join(blob for name, blob in outputs.items() if name.startswith("db:"))
    assert f"{CANARY}0".encode() in db_bytes, "the database bytes are not searchable as text"
    leaks = {name: _find(blob, needles) for name, blob in outputs.items()}
    leaks = {k: v for k, v in leaks.items() if v}
    masked_shown = sum(blob.count(b"p***@example-") for blob in outputs.values())
    record("pii", planted_values=len(EMAILS) + len(PHONES), outputs_searched=len(outputs),
           bytes_searched=sum(len(b) for b in outputs.values()), pii_leaks=sum(len(v) for v in leaks.values()),
           masked_values_shown=masked_shown, server_rows_with_em=int(stored))
    assert not leaks, leaks
    assert masked_shown > 0  # the masked forms are what is shown
    # every count stays exact: the report counts each planted email as unhashed, on every server row
    em = json.loads(outputs["report.json"])["match_keys"]
    assert json.dumps(em).count("p***@example-") > 0
