"""The database's limits: memory_limit and the spill folder from flag, environment or config, and one
clear error when DuckDB runs out of memory."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from capi_diag.cli import main
from capi_diag.core.config import Config
from capi_diag.core.errors import ConfigError
from capi_diag.engine.db import CONFIG_DEFAULTS, CONFIG_SECTION, DEFAULT_MEMORY_LIMIT, Database, Limits


def test_limits_flag_beats_environment_beats_config(monkeypatch, tmp_path):
    cfg = Config.from_text('[database]\nmemory_limit = "3GB"\ntemp_directory = "/cfg"\n')
    table = cfg.options(CONFIG_SECTION, CONFIG_DEFAULTS)
    monkeypatch.delenv("CAPI_DIAG_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("CAPI_DIAG_TEMP_DIR", raising=False)
    assert Limits.resolve(config=table) == Limits("3GB", "/cfg")
    monkeypatch.setenv("CAPI_DIAG_MEMORY_LIMIT", "2GB")
    monkeypatch.setenv("CAPI_DIAG_TEMP_DIR", "/env")
    assert Limits.resolve(config=table) == Limits("2GB", "/env")
    assert Limits.resolve(memory_limit="1GB", temp_dir="/flag", config=table) == Limits("1GB", "/flag")
    assert Limits.resolve() == Limits("2GB", "/env")


def test_database_applies_memory_limit_and_temp_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("CAPI_DIAG_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("CAPI_DIAG_TEMP_DIR", raising=False)
    spill = tmp_path / "spill" / "here"
    with Database(memory_limit="300MB", temp_dir=spill) as db:
        assert db.fetchone("SELECT current_setting('memory_limit')")[0] == "286.1 MiB"
        assert db.fetchone("SELECT current_setting('temp_directory')")[0] == str(spill)
        assert spill.is_dir()


def test_ordinary_inputs_get_the_default_limit_and_a_private_spill_folder(monkeypatch, tmp_path):
    # the report's own default (1GB): DuckDB's (80% of RAM) let a 1M-event report reach 4 GB
    monkeypatch.delenv("CAPI_DIAG_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("CAPI_DIAG_TEMP_DIR", raising=False)
    log = tmp_path / "server.csv"
    log.write_text("event_name,event_time\nPurchase,1700000000\n")
    db = Database.for_inputs([log])
    spill = Path(db.fetchone("SELECT current_setting('temp_directory')")[0])
    assert db.path == ":memory:" and DEFAULT_MEMORY_LIMIT == "1GB"
    assert db.fetchone("SELECT current_setting('memory_limit')")[0] == "953.6 MiB"
    assert spill.name == "spill" and spill.parent.name.startswith("capi-diag-") and spill.parent.is_dir()
    db.close()
    assert not spill.parent.exists()
    # a limit of one's own still spills to a private folder, under --temp-dir when given
    db = Database.for_inputs([log], limits=Limits("300MB", None))
    assert db.fetchone("SELECT current_setting('memory_limit')")[0] == "286.1 MiB"
    assert Path(db.fetchone("SELECT current_setting('temp_directory')")[0]).parent.name.startswith("capi-diag-")
    db.close()
    db = Database.for_inputs([log], limits=Limits(None, str(tmp_path / "scratch")))
    spill = Path(db.fetchone("SELECT current_setting('temp_directory')")[0])
    assert spill.parent.parent == tmp_path / "scratch"
    assert db.fetchone("SELECT current_setting('memory_limit')")[0] == "953.6 MiB"
    db.close()
    assert list((tmp_path / "scratch").iterdir()) == []
    # both given: used as they are
    with Database.for_inputs([log], limits=Limits("300MB", str(tmp_path / "mine"))) as db:
        assert db.fetchone("SELECT current_setting('temp_directory')")[0] == str(tmp_path / "mine")


def test_out_of_memory_under_the_default_limit_lifts_it_once_but_never_a_users_limit(monkeypatch, tmp_path):
    # the default keeps ordinary reports small; a file of unusual shape (JSON Lines with 5,000 keys
    # needs more than 1GB to read) runs again under DuckDB's own default instead of failing
    monkeypatch.delenv("CAPI_DIAG_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("CAPI_DIAG_TEMP_DIR", raising=False)
    log = tmp_path / "server.csv"
    log.write_text("event_name,event_time\nPurchase,1700000000\n")
    big = "SELECT count(DISTINCT i::VARCHAR || 'x') FROM range(3000000) t(i)"
    with Database.for_inputs([log]) as db:
        assert db.soft_limit
        db.con.execute("SET memory_limit = '2MB'")  # stands in for the default, small enough to hit
        db.con.execute("SET temp_directory = ''")  # nowhere to spill
        assert db.fetchone(big) == (3000000,)
        assert not db.soft_limit
        assert db.fetchone("SELECT current_setting('memory_limit')")[0] not in ("1.9 MiB", "953.6 MiB")
    with Database.for_inputs([log], limits=Limits("2MB", None)) as db:
        assert not db.soft_limit
        db.con.execute("SET temp_directory = ''")
        with pytest.raises(duckdb.OutOfMemoryException):
            db.fetchone(big)
        assert db.fetchone("SELECT current_setting('memory_limit')")[0] == "1.9 MiB"


def test_database_bad_memory_limit_is_a_config_error(monkeypatch):
    monkeypatch.delenv("CAPI_DIAG_MEMORY_LIMIT", raising=False)
    with pytest.raises(ConfigError, match=r"memory limit 'lots' is not a size DuckDB understands"):
        Database(memory_limit="lots")


def test_report_bad_limits_exit_2_with_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("CAPI_DIAG_MEMORY_LIMIT", raising=False)
    assert main(["report", "--demo", "--memory-limit", "lots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--memory-limit" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["report", "--demo", "--temp-dir", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "temp directory" in err and "--temp-dir" in err
    cfg = tmp_path / "c.toml"
    cfg.write_text("[database]\nmemory_limit = 512\n")
    assert main(["report", "--demo", "--config", str(cfg)]) == 2
    assert "[database] memory_limit must be str" in capsys.readouterr().err


def test_report_out_of_memory_exits_2_with_the_limit_named(capsys, monkeypatch):
    monkeypatch.delenv("CAPI_DIAG_MEMORY_LIMIT", raising=False)
    assert main(["report", "--demo", "--memory-limit", "1MB"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith("capi-diag: Memory limit reached: the import or report needed more memory than "
                              "DuckDB's memory_limit (976.5 KiB)")
    assert "Raise --memory-limit" in out.err


def test_report_demo_completes_at_a_memory_limit_below_the_csv_buffer(capsys, monkeypatch):
    # DuckDB's default CSV buffer (16 x max_line_size = 512 MiB) alone broke any smaller memory_limit
    monkeypatch.delenv("CAPI_DIAG_MEMORY_LIMIT", raising=False)
    assert main(["report", "--demo", "--memory-limit", "300MB"]) in (0, 1)
    assert capsys.readouterr().err == ""


def test_an_upload_is_read_from_its_own_bytes_never_copied():
    """An upload (a Source with data) is put in the in-memory filesystem without a copy: DuckDB reads
    the bytes object itself, so a large upload is held once while it is imported, and asking its
    size (fsspec's own memory file copies the buffer for that) copies nothing either."""
    from capi_diag.io.ingest import Source, import_logs

    header = "event_name,event_id,event_time,action_source\n"
    data = (header + "".join(f"Purchase,e{i},1700000{i:03d},website\n" for i in range(500))).encode()
    with Database() as db:
        db.add_memory_file("/t/server.csv", data)
        fs = db.memory_fs
        assert fs.info("/t/server.csv")["size"] == len(data)
        read = "SELECT count(*), count(DISTINCT event_id) FROM read_csv('memory:///t/server.csv')"
        assert db.fetchone(read) == (500, 500)
        held = fs.store["/t/server.csv"]
        assert held.getvalue() is data  # still the caller's object: neither the read nor the size copied it
        fs.rm("/t/server.csv")
        assert "/t/server.csv" not in fs.store
        ds = import_logs(db, browser=[Source("b.csv", data=data)], server=[Source("s.csv", data=data)])
        assert db.fetchone("SELECT count(*) FROM server_events")[0] == 500
        assert ds.db is db
        assert not [k for k in fs.store if k.startswith("/capi-diag/")]  # removed after the import
