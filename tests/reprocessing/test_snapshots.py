"""What a batch counts is what it reads, and key snapshots only move forward.

The source changes while an extract runs — between planning and the chunk reads,
between two chunks, during one chunk's read, or in a transaction still open when the
keys are read — and the run must still end published with its checks passing, the
warehouse equal to the source once the next run has read, and no live row deleted
(or a deleted one revived) by delete propagation.

The changes are made from hooks around the extract's own steps (planning, the
reader writing a chunk, the ``extract.chunk_written`` point), so each one lands at a
precise moment of the read and the same test runs against the code before and after.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lockgate import faults, lake, warehouse
from lockgate.errors import SourceError
from lockgate.incremental import parse_time

from spark_jobs import arrow_reader, extract
from tests.reprocessing.harness import SOURCE, day, naive

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


# --- hooks -------------------------------------------------------------------------
def after_planning(monkeypatch, action) -> None:
    """Run ``action`` once, when the first extract's plan (counts, key bounds, chunks) is made."""
    real = extract.plan_extract
    done = []

    def planned(*args, **kwargs):
        plan = real(*args, **kwargs)
        if not done:
            done.append(True)
            action()
        return plan

    monkeypatch.setattr(extract, "plan_extract", planned)


def when_chunk_is_read(monkeypatch, index: int, action, times: int = 1) -> dict:
    """Run ``action`` when a reader starts writing chunk ``index`` (up to ``times``
    times): after the chunk's snapshot or first count, before its rows are read."""
    state = {"calls": 0, "enabled": True}

    def fire(folder) -> None:
        if state["enabled"] and Path(folder).name == f".chunk-{index:05d}.tmp" and state["calls"] < times:
            state["calls"] += 1
            action()

    real_arrow, real_jdbc = arrow_reader.write_ranges, extract._write_parquet

    def arrow(*args, **kwargs):
        fire(args[8] if len(args) > 8 else kwargs["folder"])
        return real_arrow(*args, **kwargs)

    def jdbc(df, folder):
        fire(folder)
        return real_jdbc(df, folder)

    monkeypatch.setattr(arrow_reader, "write_ranges", arrow)
    monkeypatch.setattr(extract, "_write_parquet", jdbc)
    return state


def at_point(monkeypatch, point: str, nth: int, action) -> None:
    """Run ``action`` at the ``nth`` hit of a fault-injection point."""
    real = faults.hit
    hits = {"n": 0}

    def hit(name, table=None):
        if name == point:
            hits["n"] += 1
            if hits["n"] == nth:
                action()
        return real(name, table)

    monkeypatch.setattr(faults, "hit", hit)


# --- helpers -----------------------------------------------------------------------
def _manifest(raw_path: str) -> dict:
    return lake.read_manifest(raw_path)


def _batch(raw_path: str) -> dict[int, datetime]:
    """order_id → updated_at of the rows in a sealed raw batch."""
    import pyarrow.parquet as pq

    table = pq.read_table(lake.data_files(raw_path, _manifest(raw_path)), columns=["order_id", "updated_at"])
    return dict(zip(table.column("order_id").to_pylist(), table.column("updated_at").to_pylist(), strict=True))


def _run_row(src, table: str, run_id: str) -> dict:
    with warehouse.connect(src.settings, read_only=True) as conn:
        return warehouse.run_status(conn, SOURCE, table, run_id)


def _finish(src, table: str, run, raw_path: str) -> None:
    src.stage("validate", table, run, raw_path)
    src.stage("load", table, run, raw_path)
    src.stage("publish", table, run, raw_path)


def _open_writer(src):
    """A second connection holding a transaction open after inserting order 9001, whose
    cursor is the transaction's (PostgreSQL) or statement's (MariaDB) start time."""
    if src.engine == "postgres":
        import psycopg

        conn = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=src.database)
        conn.execute("INSERT INTO orders VALUES (9001, 'late writer', 'placed', 1.00, now() AT TIME ZONE 'UTC')")
        return conn
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=src.database,
                           autocommit=False)  # fmt: skip
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("INSERT INTO orders VALUES (9001, 'late writer', 'placed', 1.00, UTC_TIMESTAMP(6))")
    return conn


# chunk bounds ----------------------------------------------------------------------
def test_chunk_predicates_keep_keys_outside_the_planned_bounds_and_null_keys():
    """Keys inserted after planning below the first chunk, above the last one, or NULL
    belong to the slice: every key lands in exactly one chunk, and in exactly one of
    the Arrow reader's key ranges inside that chunk."""
    import duckdb
    from lockgate.config import TableConfig
    from lockgate.incremental import Slice
    from lockgate.records import Plan, SliceStats
    from lockgate.sources import JdbcSource

    source = JdbcSource("postgres", "jdbc:postgresql://h/db")
    table = TableConfig(name="t", primary_key=["k"], mode="full", chunk_rows=30)
    whole = Slice(None, None, None, None, None, full=True)
    keys = [*range(-20, 0), *range(1, 101), *range(101, 130)]  # planned bounds: 1..100
    for chunks in ([[1, 26], [26, 51], [51, 76], [76, 101]], [[1, 101]], [None]):
        plan = Plan("r", 0, whole, "1=1", "arrow", SliceStats(rows=100, lo=1, hi=100), chunks)
        seen = []
        with duckdb.connect() as conn:
            conn.execute("CREATE TABLE t (k BIGINT)")
            conn.executemany("INSERT INTO t VALUES (?)", [[k] for k in [*keys, None, None]])
            for index in range(len(chunks)):
                bounds = extract._chunk_bounds(source, table, plan, index)
                ranges = arrow_reader.key_ranges(
                    '"k"', bounds.lo, bounds.hi, 3, nulls=bounds.nulls, ceiling=bounds.ceiling
                )
                whole_chunk = conn.execute(f"SELECT k FROM t WHERE {bounds.predicate}").fetchall()
                parts = [conn.execute(f"SELECT k FROM t WHERE ({bounds.predicate}) AND {r}").fetchall() for r in ranges]
                assert sorted(whole_chunk, key=str) == sorted((k for p in parts for k in p), key=str)
                seen += [k for (k,) in whole_chunk]
        assert sorted(seen, key=lambda v: (v is None, v)) == [*keys, None, None], chunks


# (a) ------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", ["arrow", "jdbc"])
def test_changes_after_planning_and_between_chunk_reads_keep_the_counts_true(pg_source, monkeypatch, reader):
    """PostgreSQL, 4 chunks, a reconcile_sum column. After planning a row arrives below
    the planned key bounds; once chunk 2 has its snapshot a row of it moves out of the
    slice and another is deleted; after chunk 2 is written rows of chunks 3 and 4 move
    out or are deleted, a row arrives above the key bounds, and a row of chunk 1
    (already read) changes. Every chunk is counted and read in one exported snapshot
    (also by parallel tasks: two per chunk here), so the run ends published with the row
    count and sum checks passing, and after the next run the warehouse equals the source."""
    src = pg_source
    monkeypatch.setattr(extract, "MIN_ROWS_PER_PARTITION", 5)  # two reader tasks per chunk
    src.create("orders", chunk_rows=30, reconcile_sum="amount", reader=reader, delete_propagation="delete")
    src.insert_orders(1, 100, day(1), 10 * MINUTE)  # keys 1..100 in day 1: chunks of 25 keys

    after_planning(monkeypatch, lambda: src.insert_orders(-5, 1, day(1) + 30 * MINUTE, MINUTE))

    def during_chunk_2():
        src.sql("UPDATE orders SET updated_at = %s, amount = amount + 1000 WHERE order_id = 30",
                (naive(day(2) + HOUR),))  # fmt: skip
        src.sql("DELETE FROM orders WHERE order_id = 40")

    when_chunk_is_read(monkeypatch, 1, during_chunk_2)

    def between_chunks():
        src.sql("UPDATE orders SET updated_at = %s WHERE order_id = 60", (naive(day(2) + 2 * HOUR),))
        src.sql("DELETE FROM orders WHERE order_id = 90")
        src.insert_orders(500, 1, day(1) + 5 * HOUR, MINUTE)
        src.sql("UPDATE orders SET amount = amount + 5, updated_at = %s WHERE order_id = 10",
                (naive(day(2) + 3 * HOUR),))  # fmt: skip

    at_point(monkeypatch, "extract.chunk_written", 2, between_chunks)
    run = src.run_info(1)
    result = src.run("orders", run)

    manifest = _manifest(result["raw_path"])
    assert manifest["reader"] == reader
    assert [c["source_rows"] for c in manifest["chunks"]] == [26, 25, 24, 25]
    assert manifest["rows"] == manifest["source_rows"] == 100
    assert {c["consistency"] for c in manifest["chunks"]} == {"exported snapshot"}
    rows = _batch(result["raw_path"])
    assert {-5, 30, 40, 500} <= set(rows) and not {60, 90} & set(rows)
    assert rows[30] == naive(day(1) + 290 * MINUTE)  # chunk 2's own snapshot: the old version
    # The batch is as new as its earliest chunk; the keys were read in the last chunk's snapshot.
    assert manifest["read_at"] == min(c["read_at"] for c in manifest["chunks"]) == manifest["chunks"][0]["read_at"]
    assert manifest["keys"]["read_at"] == manifest["chunks"][-1]["read_at"]
    assert parse_time(manifest["safe_hi"]) == day(2)
    row = _run_row(src, "orders", run.run_id)
    assert row["status"] == "published" and row["rules_failed"] == 0 and row["rows_loaded"] == 100
    # The next run reads the rows that moved into day 2 and removes the deleted one.
    src.run_interval("orders", 2)
    src.assert_converged("orders")


def test_a_reader_outside_the_chunk_snapshot_fails_the_chunk_and_the_retry_reads_it(pg_source, monkeypatch):
    """The negative control of (a): a reader that does not import the chunk's snapshot
    sees a DELETE made after the chunk was counted; the extract fails that chunk with a
    clear error instead of sealing a batch whose count is wrong, and does not keep it."""
    src = pg_source
    src.create("orders", chunk_rows=30, reconcile_sum="amount", reader="arrow")
    src.insert_orders(1, 100, day(1), 10 * MINUTE)
    real_import = getattr(arrow_reader, "snapshot_import", None)
    monkeypatch.setattr(arrow_reader, "snapshot_import", lambda snapshot_id: [], raising=False)
    when_chunk_is_read(monkeypatch, 1, lambda: src.sql("DELETE FROM orders WHERE order_id = 40"))
    run = src.run_info(1)
    with pytest.raises(SourceError, match=r"chunk 2 of 4: the arrow reader wrote 24 rows where the source counts 25"):
        src.stage("extract", "orders", run)
    monkeypatch.setattr(arrow_reader, "snapshot_import", real_import, raising=False)
    extracted = src.stage("extract", "orders", run)  # the retry reads chunk 2 again
    manifest = _manifest(extracted["raw_path"])
    assert [c["resumed"] for c in manifest["chunks"]] == [True, False, False, False]
    assert manifest["rows"] == manifest["source_rows"] == 99
    _finish(src, "orders", run, extracted["raw_path"])
    src.assert_converged("orders")


# (b) ------------------------------------------------------------------------------
def test_mariadb_change_during_a_chunk_read_is_detected_and_the_chunk_read_again(maria_source, monkeypatch):
    """MariaDB has no snapshot to share: a chunk is counted just before and just after
    its read. A row moving out of the slice and a DELETE during chunk 2's read change
    the count, so chunk 2 is read again; the batch holds the stable count."""
    src = maria_source
    src.create("orders", chunk_rows=30, reconcile_sum="amount")
    src.insert_orders(1, 100, day(1), 10 * MINUTE)

    def during_chunk_2():
        src.sql("UPDATE orders SET updated_at = %s WHERE order_id = 30", (naive(day(2) + HOUR),))
        src.sql("DELETE FROM orders WHERE order_id = 40")

    when_chunk_is_read(monkeypatch, 1, during_chunk_2)
    run = src.run_info(1)
    result = src.run("orders", run)
    manifest = _manifest(result["raw_path"])
    assert [c["attempts"] for c in manifest["chunks"]] == [1, 2, 1, 1]
    assert {c["consistency"] for c in manifest["chunks"]} == {"stable count"}
    assert manifest["rows"] == manifest["source_rows"] == 98
    assert not {30, 40} & set(_batch(result["raw_path"]))
    assert _run_row(src, "orders", run.run_id)["status"] == "published"
    src.run_interval("orders", 2)
    src.assert_converged("orders")


def test_mariadb_source_that_keeps_changing_fails_the_chunk_until_it_is_stable(maria_source, monkeypatch):
    """A chunk whose sum changes during every read: after 3 reads the extract fails with
    a message that says what changed and why; the chunks already on disk are kept (each
    with its count, sum, read time and horizon in ``_chunk.json``), and the retry reads
    the unstable chunk again once the source is quiet."""
    src = maria_source
    src.create("orders", chunk_rows=30, reconcile_sum="amount")
    src.insert_orders(1, 100, day(1), 10 * MINUTE)
    hook = when_chunk_is_read(
        monkeypatch, 1, lambda: src.sql("UPDATE orders SET amount = amount + 1 WHERE order_id = 35"), times=99
    )
    run = src.run_info(1)
    with pytest.raises(SourceError, match="changed while the chunk was read") as info:
        src.stage("extract", "orders", run)
    message = str(info.value)
    assert "3 times in a row" in message and "sum of amount" in message and "counted just before and just after" in message
    assert hook["calls"] == 3
    partial = next((src.settings.lake_root / "raw" / SOURCE / "orders").glob("*/.partial-*"))
    first = json.loads((partial / "chunk-00000" / "_chunk.json").read_text(encoding="utf-8"))
    assert first["source_rows"] == 25 and first["source_sum"] is not None
    assert first["read_at"] and "oldest_open_transaction" in first["horizon"]
    assert not (partial / "chunk-00001").exists()
    hook["enabled"] = False
    extracted = src.stage("extract", "orders", run)
    manifest = _manifest(extracted["raw_path"])
    assert [c["resumed"] for c in manifest["chunks"]] == [True, False, False, False]
    assert manifest["rows"] == manifest["source_rows"] == 100
    _finish(src, "orders", run, extracted["raw_path"])
    src.assert_converged("orders")


# (c) ------------------------------------------------------------------------------
def test_an_open_transaction_during_the_key_snapshot_never_loses_its_row(any_source):
    """A writer holds a transaction open (its row has an older cursor) while run A takes
    its key snapshot. The writer commits; run B of the same interval loads the row; then
    A finishes. A's key snapshot time stops at the writer's start, and it is older than
    B's: the committed row is not deleted, and the next run still has it."""
    src = any_source
    src.create("orders", delete_propagation="delete")
    now = datetime.now(UTC)
    src.insert_orders(1, 10, now - 5 * HOUR, 20 * MINUTE)
    writer = _open_writer(src)
    time.sleep(1.0)
    end = datetime.now(UTC)
    first = src.run_info(None, run_id="scheduled__a", interval_start=end - 6 * HOUR, interval_end=end)
    extracted = src.stage("extract", "orders", first)
    writer.commit()
    writer.close()
    late_cursor = src.sql("SELECT updated_at FROM orders WHERE order_id = 9001")[0][0].replace(tzinfo=UTC)
    keys_read_at = parse_time(_manifest(extracted["raw_path"])["keys"]["read_at"])
    assert keys_read_at <= late_cursor, "the key snapshot's time must stop at the open transaction's start"
    second = src.run_info(None, run_id="scheduled__b", interval_start=end - 6 * HOUR, interval_end=end)
    src.run("orders", second)
    assert src.warehouse_rows("orders", ["order_id"], "order_id = 9001") == [(9001,)]
    _finish(src, "orders", first, extracted["raw_path"])  # A's load comes last
    assert src.warehouse_rows("orders", ["order_id"], "order_id = 9001") == [(9001,)]
    time.sleep(0.5)
    third = src.run_info(None, run_id="scheduled__c", interval_start=end, interval_end=datetime.now(UTC))
    src.run("orders", third)
    src.assert_converged("orders")


# (d) ------------------------------------------------------------------------------
def test_an_older_key_snapshot_never_unflags_a_row_deleted_since(any_source):
    """flag mode: run "late" takes its key snapshot (order 2 still there), order 2 is
    deleted, run "newer" flags it at its key snapshot's time; then "late" loads. Its
    older snapshot is skipped: order 2 stays flagged, with the newer snapshot's time."""
    src = any_source
    src.create("orders", delete_propagation="flag")
    src.insert_orders(1, 48, day(0), HOUR)
    src.run_interval("orders", 0)
    late = src.run_info(1, run_id="scheduled__late")
    late_extract = src.stage("extract", "orders", late)
    src.sql("DELETE FROM orders WHERE order_id = 2")
    newer = src.run_info(1, run_id="scheduled__newer")
    newer_result = src.run("orders", newer)
    flagged_at = parse_time(_manifest(newer_result["raw_path"])["keys"]["read_at"])
    assert src.warehouse_rows("orders", ["order_id", "_lockgate_deleted_at"], "_lockgate_deleted_at IS NOT NULL") == [
        (2, flagged_at.replace(tzinfo=None))
    ]
    _finish(src, "orders", late, late_extract["raw_path"])
    assert src.warehouse_rows("orders", ["order_id", "_lockgate_deleted_at"], "_lockgate_deleted_at IS NOT NULL") == [
        (2, flagged_at.replace(tzinfo=None))
    ]
    assert _run_row(src, "orders", late.run_id)["rows_deleted"] == 0
    src.assert_converged("orders", where="_lockgate_deleted_at IS NULL")
