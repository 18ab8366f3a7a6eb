"""NULL cursors and NULL partition keys, on PostgreSQL, MariaDB and SQLite.

A row whose cursor is NULL is in no slice: it used to be skipped without a word (the
count check uses the same predicate, so it could not notice). ``null_cursor`` decides:
``fail`` (default) stops the run naming the table and the count, ``include`` reads
such rows on every run (merge), ``exclude`` skips them and records how many. Rows whose
``partition_column`` is NULL must be read by chunked and partitioned reads alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lockgate import warehouse
from lockgate.config import TableConfig
from lockgate.errors import ConfigError, SourceError

from tests.cursors.helpers import batch_ids, create
from tests.reprocessing.harness import SOURCE, day, naive

pytestmark = pytest.mark.integration

DDL = "CREATE TABLE {name} (id BIGINT PRIMARY KEY, note VARCHAR(40), updated_at {ts})"


def _orders(src, policy: str | None) -> None:
    extra = {"null_cursor": policy} if policy else {}
    create(src, "orders", DDL, primary_key=["id"], mode="merge", cursor="updated_at", **extra)
    rows = [(i, f"order {i}", None if i % 5 == 0 else naive(day(0) + timedelta(minutes=7 * i))) for i in range(1, 41)]
    src.many("INSERT INTO orders (id, note, updated_at) VALUES (%s, %s, %s)", rows)


def test_null_cursor_rows_fail_the_run_by_default(src):
    _orders(src, None)
    with pytest.raises(SourceError, match=r"table 'orders': 8 rows have a NULL cursor \(updated_at"):
        src.run_interval("orders", 0)
    src.sql("UPDATE orders SET updated_at = %s WHERE updated_at IS NULL", (naive(day(0)),))
    src.run_interval("orders", 0)  # fixed in the source: the run goes through
    src.assert_converged("orders")


def test_null_cursor_rows_included_on_every_run(src):
    _orders(src, "include")
    assert {i for i in range(5, 41, 5)} <= batch_ids(src.run_interval("orders", 0))
    src.sql("UPDATE orders SET note = 'changed' WHERE id = 10")  # its cursor stays NULL
    assert batch_ids(src.run_interval("orders", 1)) == set(range(5, 41, 5))
    src.assert_converged("orders")


def test_null_cursor_rows_excluded_and_counted(src):
    _orders(src, "exclude")
    result = src.run_interval("orders", 0)
    assert batch_ids(result) == {i for i in range(1, 41) if i % 5}
    src.sql("DELETE FROM orders WHERE updated_at IS NULL")  # what the warehouse must equal
    src.assert_converged("orders")
    with warehouse.connect(src.settings, read_only=True) as conn:
        (count,) = conn.execute(
            "SELECT rows_null_cursor FROM lockgate.runs WHERE source = ? AND table_name = 'orders'", [SOURCE]
        ).fetchone()
    assert count == 8


def test_include_is_refused_where_rows_would_be_loaded_twice():
    with pytest.raises(ValueError, match="only mode 'merge'"):
        TableConfig.model_validate({"name": "e", "mode": "append", "cursor": "at", "null_cursor": "include"})
    with pytest.raises(ValueError):
        TableConfig.model_validate({"name": "e", "mode": "append", "cursor": "at", "null_cursor": "skip"})
    assert isinstance(ConfigError("x"), Exception)


@pytest.mark.parametrize("chunk_rows", [4_000, 10_000_000], ids=["chunked", "partitioned"])
def test_rows_with_a_null_partition_column_are_read(src, chunk_rows):
    ddl = "CREATE TABLE {name} (id BIGINT PRIMARY KEY, shard BIGINT, note VARCHAR(40), updated_at {ts} NOT NULL)"
    create(src, "items", ddl, primary_key=["id"], mode="merge", cursor="updated_at", partition_column="shard",
           partitions=4, chunk_rows=chunk_rows)  # fmt: skip
    rows = [(i, None if i % 7 == 0 else i, f"item {i}", naive(day(0) + timedelta(seconds=6 * i))) for i in range(1, 12_001)]
    src.many("INSERT INTO items (id, shard, note, updated_at) VALUES (%s, %s, %s, %s)", rows)
    assert len(batch_ids(src.run_interval("items", 0))) == 12_000
    src.assert_converged("items")
