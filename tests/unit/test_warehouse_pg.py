"""What only the PostgreSQL warehouse has: the split into parallel COPY streams, the
connection budget shared across processes, placeholders, and failures that name the
connection without printing its password."""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lockgate import warehouse
from lockgate.errors import ConfigError
from lockgate.settings import load_settings
from lockgate.warehouse import postgres

SCHEMA = [{"name": "id", "type": "bigint"}, {"name": "note", "type": "string"}]


@pytest.fixture
def settings(pg_warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_LAKE_ROOT", str(tmp_path / "lake"))
    return load_settings()


def _batch(tmp_path, rows: int, row_group: int = 10_000) -> list[str]:
    path = tmp_path / "batch.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "note": pa.array([f"n{i}" for i in range(rows)])})
    pq.write_table(table, path, row_group_size=row_group)
    return [str(path)]


def _load(settings, files, parallel=None, run="r1"):
    with warehouse.connect(settings) as wh:
        wh.execute("BEGIN TRANSACTION")
        result = warehouse.load_files(
            wh, source="src", table="t", mode="full", files=files, schema=SCHEMA, primary_key=["id"],
            cursor=None, slice_lo=None, slice_hi=None, full_slice=True, run_id=run, parallel=parallel,
        )  # fmt: skip
        wh.execute("COMMIT")
        return result


def test_a_batch_is_split_into_as_many_copy_streams_as_the_table_asks(settings, tmp_path):
    files = _batch(tmp_path, 200_000)
    two = _load(settings, files, parallel=2)
    one = _load(settings, files, parallel=1, run="r2")
    assert (two["parts"], one["parts"]) == (2, 1)
    assert two["rows_loaded"] == one["rows_loaded"] == one["rows_after"] == 200_000
    with warehouse.connect(settings, read_only=True) as wh:
        assert wh.execute("SELECT count(DISTINCT id), min(id), max(id) FROM src.t").fetchone() == (200_000, 0, 199_999)
        # Nothing staged stays behind.
        assert wh.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'lockgate_staging'").fetchone()[0] == 0


def test_the_split_is_capped_by_the_warehouse_connection_budget(settings, monkeypatch):
    monkeypatch.setenv("LOCKGATE_WAREHOUSE_MAX_CONNECTIONS", "3")
    capped = load_settings()
    assert postgres.copy_parallelism(capped, 8) == 3
    assert postgres.copy_parallelism(capped, 2) == 2
    assert postgres.copy_parallelism(capped, None) == min(3, __import__("os").cpu_count() or 1)


def test_copies_wait_while_other_processes_hold_the_whole_budget(settings, tmp_path, monkeypatch):
    """The budget holds across processes: connections holding every slot (as another
    task's copies would) keep a load waiting until one is free."""
    monkeypatch.setenv("LOCKGATE_WAREHOUSE_MAX_CONNECTIONS", "2")
    capped = load_settings()
    files = _batch(tmp_path, 1_000)
    holders = [postgres.raw_connection(capped.warehouse_conn_id) for _ in range(2)]
    for slot, conn in enumerate(holders):
        assert conn.execute("SELECT pg_try_advisory_lock(%s, %s)", [postgres._SLOT_LOCK, slot]).fetchone()[0]
    done = threading.Event()
    thread = threading.Thread(target=lambda: (_load(capped, files), done.set()))
    thread.start()
    try:
        assert not done.wait(2.0), "the load copied although every slot of the budget was taken"
        holders[1].close()  # another process's copy ends
        assert done.wait(60), "the load did not go on once a slot was free"
    finally:
        holders[0].close()
        thread.join(60)
    with warehouse.connect(capped, read_only=True) as wh:
        assert wh.execute("SELECT count(*) FROM src.t").fetchone()[0] == 1_000


def test_placeholders_outside_quotes_become_psycopg_ones():
    sql = "SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE 'a%' AND z = ?"
    assert postgres.placeholders(sql, [1, 2]) == "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE 'a%%' AND z = %s"
    assert postgres.placeholders("SELECT 'a%'", None) == "SELECT 'a%'"


def test_an_unreachable_warehouse_names_the_connection_not_its_password(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCKGATE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LOCKGATE_WAREHOUSE_CONN_ID", "lockgate_warehouse")
    monkeypatch.setenv("AIRFLOW_CONN_LOCKGATE_WAREHOUSE", "postgresql://someone:pw-9f2c1e@127.0.0.1:1/nowhere")
    with pytest.raises(ConfigError) as caught, warehouse.connect(load_settings()):
        pass
    assert "'lockgate_warehouse'" in str(caught.value) and "pw-9f2c1e" not in str(caught.value)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_connection_budget_is_named(monkeypatch, value):
    monkeypatch.setenv("LOCKGATE_WAREHOUSE_MAX_CONNECTIONS", value)
    with pytest.raises(ConfigError, match="LOCKGATE_WAREHOUSE_MAX_CONNECTIONS"):
        load_settings()


def test_lockgate_sql_and_fingerprint_read_the_postgres_warehouse(settings, tmp_path, capsys):
    from lockgate import cli

    _load(settings, _batch(tmp_path, 10))
    assert cli.cmd_sql(argparse.Namespace(query="SELECT count(*) AS n FROM src.t", max_rows=10)) == 0
    shown = capsys.readouterr().out.split()
    assert shown[:4] == ["n", "--", "10", "(1"], shown
    assert cli.cmd_sql(argparse.Namespace(query="SELECT * FROM src.missing", max_rows=10)) == 2
    assert "src.missing" in capsys.readouterr().err
    count, digest = cli.fingerprints(settings, "src")["t"]
    assert count == 10 and digest != "0"
    assert cli.fingerprints(settings, "src")["t"] == (count, digest)  # the same rows, the same print
    with warehouse.connect(settings) as wh:
        wh.execute("UPDATE src.t SET note = 'changed' WHERE id = 3")
    changed = cli.fingerprints(settings, "src")["t"]
    assert changed[0] == count and changed[1] != digest


def test_a_load_records_no_row_when_its_transaction_rolls_back(settings, tmp_path):
    files = _batch(tmp_path, 100)
    _load(settings, files)
    with warehouse.connect(settings) as wh:
        wh.execute("BEGIN TRANSACTION")
        warehouse.load_files(
            wh, source="src", table="t", mode="full", files=_batch(tmp_path / "b", 5), schema=SCHEMA,
            primary_key=["id"], cursor=None, slice_lo=None, slice_hi=None, full_slice=True, run_id="r9",
        )  # fmt: skip
        warehouse.record_run(wh, "src", "t", "r9", status="loaded", read_at=datetime.now(UTC))
        wh.execute("ROLLBACK")
    with warehouse.connect(settings, read_only=True) as wh:
        assert wh.execute("SELECT count(*) FROM src.t").fetchone()[0] == 100
        assert warehouse.run_status(wh, "src", "t", "r9") is None


def test_lineage_names_the_postgres_table_by_host_database_and_schema_not_the_password(monkeypatch):
    from lockgate import lineage
    from lockgate.config import parse_source

    monkeypatch.setenv("LOCKGATE_WAREHOUSE_CONN_ID", "wh")
    monkeypatch.setenv("AIRFLOW_CONN_WH", "postgresql://u:pw-71ab@dbhost:5433/whdb")
    config = parse_source({"source": "s", "connection": "x", "start_date": "2026-01-01",
                           "tables": [{"name": "t", "mode": "full"}]}, "x")  # fmt: skip
    dataset = lineage.warehouse_table(load_settings(), config, config.tables[0])
    assert (dataset.namespace, dataset.name) == ("postgres://dbhost:5433", "whdb.s.t")
    assert "pw-71ab" not in repr(dataset)


def test_text_with_a_nul_character_is_named_by_column_and_not_retried(settings, tmp_path):
    from lockgate.errors import UNRECOVERABLE

    _load(settings, _batch(tmp_path, 10))
    bad = tmp_path / "bad" / "batch.parquet"
    bad.parent.mkdir()
    pq.write_table(pa.table({"id": pa.array([1, 2, 3], pa.int64()), "note": ["ok", "a\x00b", "\x00"]}), bad)
    with pytest.raises(UNRECOVERABLE, match=r"column 'note' \(2 rows\) holds text with a NUL character"):
        _load(settings, [str(bad)], run="r2")
    with warehouse.connect(settings, read_only=True) as wh:
        assert wh.execute("SELECT count(*) FROM src.t").fetchone()[0] == 10  # the table as it was
    _load(settings, _batch(tmp_path / "again", 20), run="r3")  # the next load sweeps the staging left behind
    with warehouse.connect(settings, read_only=True) as wh:
        assert wh.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'lockgate_staging'").fetchone()[0] == 0
