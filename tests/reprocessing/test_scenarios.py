"""Reprocessing scenarios against real PostgreSQL and MariaDB sources.

Each scenario breaks or changes something — a failure injected at a stage, a killed
process, a source that changes between runs, late rows, intervals re-run out of order,
a full refresh, a replay from the lake — then re-runs, and ends by comparing the
warehouse with the source (row count and a checksum over every value).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from lockgate import warehouse
from lockgate.errors import LakeError, SchemaDriftError, SourceError
from lockgate.faults import InjectedFault

from tests.conftest import WAREHOUSES
from tests.reprocessing.harness import SOURCE, day, naive

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
#: The scenarios that prove sealing, resuming, replay and retention run on both lakes.
BOTH_LAKES = pytest.mark.parametrize("lake_env", ["local", "s3"], indirect=True)
#: ... and on both warehouses (DuckDB, PostgreSQL).
BOTH_WAREHOUSES = pytest.mark.parametrize("lake_env", WAREHOUSES, indirect=True)
#: Every lake and warehouse.
EVERYWHERE = pytest.mark.parametrize("lake_env", ["local", "s3", "pg_warehouse"], indirect=True)
#: The PostgreSQL warehouse only.
PG_WAREHOUSE = pytest.mark.parametrize("lake_env", ["pg_warehouse"], indirect=True)


def sources_and_warehouses(lakes: tuple[str, ...] = ("local",)) -> pytest.MarkDecorator:
    """``any_source`` x the lakes on DuckDB, plus the PostgreSQL warehouse with the
    PostgreSQL source only: what the warehouse does does not depend on the source's
    engine, so one is enough there (and the suite's time stays in check)."""
    cases = [
        pytest.param(lake, engine, id=engine if lakes == ("local",) else f"{engine}-{lake}")
        for lake in lakes
        for engine in ("postgres", "mariadb")
    ]
    cases.append(pytest.param("pg_warehouse", "postgres", id="postgres-pg_warehouse"))
    return pytest.mark.parametrize(("lake_env", "any_source"), cases, indirect=True)


def _state(src, table):
    with warehouse.connect(src.settings, read_only=True) as conn:
        return warehouse.get_state(conn, SOURCE, table)


def _run_row(src, table, run_id):
    with warehouse.connect(src.settings, read_only=True) as conn:
        return warehouse.run_status(conn, SOURCE, table, run_id)


# 1 --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "point",
    [
        "extract.chunk_written",
        "extract.before_seal",
        "validate.before_report",
        "load.before_commit",
        "load.after_commit",
        "publish.before_commit",
    ],
)
@EVERYWHERE
def test_failure_at_each_stage_then_retry_gives_the_clean_result(pg_source, monkeypatch, point):
    src = pg_source
    src.create("events", chunk_rows=40)
    src.insert_events(1, 100, day(0), 13 * 60 * timedelta(seconds=1))  # spills into day 1
    src.run_interval("events", 0)
    run = src.run_info(1)
    monkeypatch.setenv("LOCKGATE_FAILPOINTS", f"{point}@events")
    with pytest.raises(InjectedFault, match=point):
        src.run("events", run)
    monkeypatch.delenv("LOCKGATE_FAILPOINTS")
    result = src.run("events", run)  # the retry: same run id, as an Airflow retry or clear
    src.assert_converged("events")
    row = _run_row(src, "events", run.run_id)
    assert row["status"] == "published" and row["rows_loaded"] == result["rows"]
    # Work finished before the failure is not redone.
    if point.startswith(("validate", "load", "publish")):
        assert result["extract"]["resumed"] is True  # the sealed extract was reused
    if point in ("load.after_commit", "publish.before_commit"):
        assert result["load"]["resumed"] is True  # the committed load was not repeated
    assert _state(src, "events").watermark == day(2)


# 2 --------------------------------------------------------------------------------
def _load_in_a_process(src, tmp_path: Path, run, raw_path: str, failpoints: str) -> subprocess.CompletedProcess:
    """The load stage of ``events`` in a process of its own, with ``LOCKGATE_FAILPOINTS``
    set (the settings, warehouse included, come from this process's environment)."""
    sources_dir = tmp_path / "sources"
    sources_dir.mkdir(exist_ok=True)
    (sources_dir / f"{SOURCE}.yml").write_text(
        yaml.safe_dump({"source": SOURCE, "connection": "rp_src", "start_date": "2026-04-01",
                        "tables": list(src.tables.values())})
    )
    script = textwrap.dedent(
        f"""
        from datetime import datetime
        from lockgate.config import load_source
        from lockgate.pipeline import RunInfo, load_stage
        from lockgate.settings import load_settings
        config = load_source({str(sources_dir)!r}, {SOURCE!r})
        run = RunInfo(run_id={run.run_id!r}, interval_start=datetime.fromisoformat({run.interval_start.isoformat()!r}),
                      interval_end=datetime.fromisoformat({run.interval_end.isoformat()!r}))
        load_stage(config, config.table("events"), run, {raw_path!r}, settings=load_settings())
        """
    )
    env = {**os.environ, "LOCKGATE_FAILPOINTS": failpoints}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)


@BOTH_WAREHOUSES
def test_process_killed_in_the_middle_of_a_load(pg_source, tmp_path):
    src = pg_source
    src.create("events")
    src.insert_events(1, 60, day(0), HOUR)  # 60 hours: days 0, 1, 2
    src.run_interval("events", 0)
    before = src.fingerprint("events")
    run = src.run_info(1)
    extracted = src.stage("extract", "events", run)
    src.stage("validate", "events", run, extracted["raw_path"])
    proc = _load_in_a_process(src, tmp_path, run, extracted["raw_path"], "load.before_commit@events=kill")
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL with the transaction open
    assert src.fingerprint("events") == before  # nothing of the killed load is visible
    src.stage("load", "events", run, extracted["raw_path"])
    src.stage("publish", "events", run, extracted["raw_path"])
    src.run_interval("events", 2)
    src.assert_converged("events")


def _staging_tables(src) -> list[tuple[str, int]]:
    """The PostgreSQL warehouse's staging tables and their rows."""
    from lockgate.warehouse.postgres import STAGING_SCHEMA

    with warehouse.connect(src.settings, read_only=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = ? ORDER BY tablename", [STAGING_SCHEMA]
        ).fetchall()]  # fmt: skip
        return [
            (name, conn.execute(f"SELECT count(*) FROM {STAGING_SCHEMA}.{warehouse.q(name)}").fetchone()[0])
            for name in names
        ]


@PG_WAREHOUSE
def test_process_killed_during_the_parallel_copy_of_a_postgres_load(pg_source, tmp_path):
    """SIGKILL once the first CSV part is in PostgreSQL's staging table, the others not:
    the table keeps its previous contents, the half-filled staging table is left behind,
    and the re-run sweeps it (and the killed load's CSV parts) away and converges."""
    from lockgate.warehouse import postgres

    src = pg_source
    # Day 1: 40,000 rows in 4 chunks of 2 Parquet files each, split into up to 4 CSV
    # parts (one per DuckDB thread) for up to 4 copying connections.
    src.create("events", chunk_rows=10_000, load_parallelism=4)
    src.insert_events(1, 24, day(0), HOUR)
    src.insert_events(1001, 40_000, day(1), 2 * timedelta(seconds=1))
    src.run_interval("events", 0)
    before = src.fingerprint("events")
    assert _staging_tables(src) == []
    run = src.run_info(1)
    extracted = src.stage("extract", "events", run)
    src.stage("validate", "events", run, extracted["raw_path"])
    budget = src.settings.warehouse_max_connections
    assert budget == 4
    with ExitStack() as others:
        # Another load holds all but one of the warehouse's copy slots: the parts go
        # through one connection, one after the other, and the kill comes after the first.
        for _ in range(budget - 1):
            others.enter_context(postgres.copy_slot(src.settings.warehouse_conn_id, budget))
        proc = _load_in_a_process(src, tmp_path, run, extracted["raw_path"], "load.copied_part@events=kill")
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL in a copying thread
    # The killed load's CSV parts are still on disk (nothing ran its clean-up).
    parts = [p for p in (src.settings.stage_root / "pg_copy").rglob("*") if p.is_file() and p.stat().st_size]
    part_rows = [sum(1 for _ in p.open("rb")) for p in parts]  # one line per row
    assert len(parts) > 1 and sum(part_rows) == 40_000, part_rows
    assert src.fingerprint("events") == before  # nothing of the killed load is visible
    [(_name, copied)] = _staging_tables(src)  # the staging table outlived its load...
    assert copied in part_rows  # ... with the one part copied before the kill
    loaded = src.stage("load", "events", run, extracted["raw_path"])
    assert loaded["resumed"] is False and loaded["rows_loaded"] == 40_000
    assert _staging_tables(src) == []  # the stale one swept, the load's own dropped
    assert not any(p.exists() for p in parts), "the killed load's CSV parts are still there"
    src.stage("publish", "events", run, extracted["raw_path"])
    assert _run_row(src, "events", run.run_id)["status"] == "published"
    src.run_interval("events", 2)
    src.assert_converged("events")


# 3 --------------------------------------------------------------------------------
@sources_and_warehouses()
def test_source_updated_between_runs(lake_env, any_source):
    src = any_source
    src.create("orders")
    src.insert_orders(1, 50, day(0), 25 * timedelta(minutes=1))
    src.run_interval("orders", 0)
    # Rows change: new status and cursor in day 1; new orders arrive; then day 1 runs.
    src.sql("UPDATE orders SET status = 'paid', amount = amount + 1, updated_at = %s WHERE order_id <= 20",
            (naive(day(1) + 2 * HOUR),))
    src.insert_orders(51, 30, day(1) + 3 * HOUR, timedelta(minutes=7))
    src.run_interval("orders", 1)
    src.assert_converged("orders")
    # Re-running day 0 now reads only the rows still in day 0: the newer day-1 versions win.
    src.run_interval("orders", 0)
    src.assert_converged("orders")


# 4 --------------------------------------------------------------------------------
@sources_and_warehouses()
def test_late_arriving_rows_within_the_lookback(lake_env, any_source):
    src = any_source
    src.create("orders", lookback="2h")
    src.insert_orders(1, 40, day(0), 30 * timedelta(minutes=1))
    src.run_interval("orders", 0)
    # Committed after day 0 ran, with a cursor in day 0's last hour.
    src.insert_orders(500, 3, day(1) - 50 * timedelta(minutes=1), 10 * timedelta(minutes=1))
    src.insert_orders(600, 5, day(1) + HOUR, HOUR)
    src.run_interval("orders", 1)
    src.assert_converged("orders")


# 5 --------------------------------------------------------------------------------
def _open_writer(src):
    """A second connection holding a transaction open after inserting one row whose cursor
    is the transaction's (PostgreSQL) or statement's (MariaDB) start time."""
    if src.engine == "postgres":
        import psycopg

        conn = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=src.database)
        conn.execute("INSERT INTO orders VALUES (9001, 'late writer', 'placed', 1.00, now() AT TIME ZONE 'UTC')")
        return conn
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=src.database,
                           autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("INSERT INTO orders VALUES (9001, 'late writer', 'placed', 1.00, UTC_TIMESTAMP(6))")
    return conn


def test_long_transaction_commits_behind_the_read_and_the_next_run_picks_it_up(any_source):
    src = any_source
    src.create("orders")
    now = datetime.now(UTC)
    src.insert_orders(1, 10, now - 5 * HOUR, 20 * timedelta(minutes=1))
    writer = _open_writer(src)
    time.sleep(1.0)
    end = datetime.now(UTC)
    first = src.run_info(None, run_id="scheduled__a", interval_start=end - 6 * HOUR, interval_end=end)
    result = src.run("orders", first)
    assert result["rows"] == 10  # the open transaction's row is invisible to this read
    writer.commit()
    writer.close()
    late_cursor = src.sql("SELECT updated_at FROM orders WHERE order_id = 9001")[0][0]
    assert late_cursor < naive(end), "the late row belongs to the first run's interval"
    # The classic miss: the next interval starts at `end`; the row's cursor is behind it.
    state = _state(src, "orders")
    assert state.watermark < end and state.reread_from is not None
    assert abs((state.watermark.replace(tzinfo=None) - late_cursor).total_seconds()) < 5
    time.sleep(0.5)
    # The next interval has ended when it runs (an interval still open would cap the
    # watermark at the source's clock, and rightly so).
    second = src.run_info(None, run_id="scheduled__b", interval_start=end, interval_end=datetime.now(UTC))
    src.run("orders", second)
    src.assert_converged("orders")
    state = _state(src, "orders")
    assert state.reread_from is None  # the window was read again and closed


# 6 --------------------------------------------------------------------------------
@sources_and_warehouses()
def test_old_intervals_rerun_out_of_order(lake_env, any_source):
    src = any_source
    src.create("events")
    src.create("orders")
    src.insert_events(1, 72, day(0), HOUR)
    src.insert_orders(1, 72, day(0), HOUR)
    for n in (2, 0, 1, 1, 0, 2):
        src.run_interval("events", n)
        src.run_interval("orders", n)
    src.assert_converged("events")
    src.assert_converged("orders")
    with warehouse.connect(src.settings, read_only=True) as conn:
        runs = conn.execute("SELECT count(*) FROM lockgate.runs WHERE status = 'published'").fetchone()[0]
    assert runs == 12
    assert _state(src, "events").watermark == day(3)


# 7 --------------------------------------------------------------------------------
@sources_and_warehouses()
def test_full_refresh_after_incremental_runs_picks_up_silent_corrections(lake_env, any_source):
    src = any_source
    src.create("events")
    src.insert_events(1, 48, day(0), HOUR)
    src.run_interval("events", 0)
    src.run_interval("events", 1)
    # A correction that does not move the cursor: invisible to incremental runs.
    src.sql("UPDATE events SET payload = 'corrected', amount = 0 WHERE event_id IN (3, 30)")
    src.sql("DELETE FROM events WHERE event_id = 7")
    src.run_interval("events", 1)
    with pytest.raises(AssertionError):
        src.assert_converged("events")
    src.run_interval("events", 1, full_refresh=True)
    src.assert_converged("events")


# 8 --------------------------------------------------------------------------------
@EVERYWHERE
def test_replay_from_the_lake_without_touching_the_source(pg_source, monkeypatch):
    src = pg_source
    src.create("events")
    src.insert_events(1, 48, day(0), HOUR)
    first = src.run_info(0, run_id="scheduled__d0")
    src.run("events", first)
    src.run_interval("events", 1)
    before = src.fingerprint("events")
    # The warehouse table is damaged, and the source is down.
    with warehouse.connect(src.settings) as conn:
        conn.execute(f"DELETE FROM {SOURCE}.events WHERE event_id % 3 = 0")
        conn.execute(f"UPDATE {SOURCE}.events SET payload = 'damaged' WHERE event_id < 10")
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", "postgres://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(SourceError, match="not reachable"):
        src.run_interval("events", 0)
    src.run_interval("events", 0, replay_from_lake="latest")
    src.run_interval("events", 1, replay_from_lake="latest")
    assert src.fingerprint("events") == before
    replayed = src.run_interval("events", 0, replay_from_lake=first.run_id)
    assert replayed["rows"] == 24
    with pytest.raises(LakeError, match="no stored raw version 'nope'"):
        src.run_interval("events", 0, replay_from_lake="nope")
    with pytest.raises(LakeError, match="needs a data interval"):
        src.run("events", src.run_info(None, replay_from_lake="latest"))
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", src.connection_uri)
    src.assert_converged("events")


# 9 --------------------------------------------------------------------------------
@BOTH_LAKES
def test_large_full_load_resumes_at_the_first_incomplete_chunk(pg_source, monkeypatch):
    src = pg_source
    src.create("orders", mode="full", chunk_rows=250)
    src.insert_orders(1, 1000, day(0), timedelta(minutes=1))
    run = src.run_info(0)
    monkeypatch.setenv("LOCKGATE_FAILPOINTS", "extract.chunk_written@orders#3")
    with pytest.raises(InjectedFault):
        src.stage("extract", "orders", run)
    monkeypatch.delenv("LOCKGATE_FAILPOINTS")
    # Rows of the finished chunks change before the retry: they are not read again.
    src.sql("UPDATE orders SET status = 'changed' WHERE order_id <= 10")
    extracted = src.stage("extract", "orders", run)
    from lockgate import lake

    manifest = lake.read_manifest(extracted["raw_path"])
    assert [c["resumed"] for c in manifest["chunks"]] == [True, True, True, False]
    assert manifest["rows"] == 1000
    assert not list(Path(src.settings.stage_root).rglob(".partial-*")), "the checkpoint is gone once sealed"
    src.stage("validate", "orders", run, extracted["raw_path"])
    src.stage("load", "orders", run, extracted["raw_path"])
    src.stage("publish", "orders", run, extracted["raw_path"])
    assert src.warehouse_rows("orders", ["status"], "order_id <= 10") == [("placed",)] * 10
    src.run_interval("orders", 1)  # the next full load sees the change
    src.assert_converged("orders")


@pytest.mark.parametrize("lake_env", ["s3"], indirect=True)
def test_in_an_s3_lake_the_reader_tasks_put_their_files_there_themselves(lake_env, pg_source, monkeypatch):
    """PostgreSQL's Arrow reader: each Spark task puts the file it wrote into the run's
    S3 folder; the seal uploads none of them, only records each object's ETag and version."""
    from lockgate import lake
    from lockgate.lake import storage

    src = pg_source
    src.create("orders", mode="full", chunk_rows=250, partitions=2)
    src.insert_orders(1, 1000, day(0), timedelta(minutes=1))
    uploads: list[str] = []
    real_upload = storage.upload
    monkeypatch.setattr(storage, "upload", lambda files: (uploads.extend(str(t) for _, t in files), real_upload(files)))
    extracted = src.stage("extract", "orders", src.run_info(0))
    manifest = lake.verify(extracted["raw_path"])
    assert manifest["reader"] == "arrow" and len(manifest["chunks"]) == 4 and manifest["rows"] == 1000
    assert uploads == [], "the driver uploaded files the tasks should have put there"
    assert all(f["etag"] and f["version_id"] for f in manifest["files"])
    src.run_interval("orders", 1)
    src.assert_converged("orders")


# 10 -------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["delete", "flag"])
@sources_and_warehouses(("local", "s3"))
def test_deletes_in_the_source_reach_the_warehouse(lake_env, any_source, policy):
    src = any_source
    src.create("orders", delete_propagation=policy)
    src.insert_orders(1, 48, day(0), HOUR)
    src.run_interval("orders", 0)
    src.sql("DELETE FROM orders WHERE order_id IN (2, 5, 40)")  # 40 is not loaded yet
    src.run_interval("orders", 1)
    if policy == "delete":
        src.assert_converged("orders")
    else:
        src.assert_converged("orders", where="_lockgate_deleted_at IS NULL")
        flagged = src.warehouse_rows("orders", ["order_id"], "_lockgate_deleted_at IS NOT NULL")
        assert flagged == [(2,), (5,)]
    row = _run_row(src, "orders", f"scheduled__{day(1).date()}__{src.runs}")
    assert row["rows_deleted"] == 2


# 11 -------------------------------------------------------------------------------
@sources_and_warehouses()
def test_new_nullable_source_column_is_added_and_recorded(lake_env, any_source):
    src = any_source
    src.create("orders")
    src.insert_orders(1, 24, day(0), HOUR)
    src.run_interval("orders", 0)
    src.sql("ALTER TABLE orders ADD COLUMN coupon VARCHAR(20)")
    src.sql("UPDATE orders SET coupon = 'WINTER', updated_at = %s WHERE order_id = 3", (naive(day(1) + HOUR),))
    src.insert_orders(100, 5, day(1), HOUR)
    src.run_interval("orders", 1)
    src.assert_converged("orders")
    with warehouse.connect(src.settings, read_only=True) as conn:
        history = conn.execute(
            "SELECT table_name, column_name, change, new_type FROM lockgate.schema_history"
        ).fetchall()
    assert history == [("orders", "coupon", "added", "VARCHAR")]


# 12 -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ALTER TABLE orders {alter} status {text_type}", "column 'status' changed type from VARCHAR to "),
        ("ALTER TABLE orders DROP COLUMN amount", "column 'amount' was dropped in the source (old type DECIMAL(12,2)"),
    ],
)
@sources_and_warehouses()
def test_destructive_schema_change_fails_and_loads_nothing(lake_env, any_source, change, message):
    src = any_source
    src.create("orders")
    src.insert_orders(1, 24, day(0), HOUR)
    src.run_interval("orders", 0)
    before = src.fingerprint("orders")
    alter = "ALTER COLUMN" if src.engine == "postgres" else "MODIFY"
    text_type = "TYPE INTEGER USING 0" if src.engine == "postgres" else "INTEGER"
    if "{alter}" in change:
        src.sql("UPDATE orders SET status = NULL")
    src.sql(change.format(alter=alter, text_type=text_type))
    status = "7" if "{alter}" in change else "'placed'"
    src.sql(
        f"INSERT INTO orders (order_id, customer, status, updated_at) VALUES (100, 'x', {status}, %s)",
        (naive(day(1) + HOUR),),
    )
    with pytest.raises(SchemaDriftError) as info:
        src.run_interval("orders", 1)
    assert f"{SOURCE}.orders" in str(info.value) and message in str(info.value)
    assert src.fingerprint("orders") == before  # nothing half-loaded
