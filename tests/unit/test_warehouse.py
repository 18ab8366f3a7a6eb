"""Load semantics of the DuckDB warehouse: append, merge and full are idempotent, schema
drift is followed when additive and refused when destructive, and fingerprints see
every value."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lockgate import warehouse
from lockgate.errors import SchemaDriftError

from tests.conftest import WAREHOUSES

UTC = UTC
SCHEMA = [
    {"name": "id", "type": "bigint"},
    {"name": "name", "type": "string"},
    {"name": "amount", "type": "decimal(12,2)"},
    {"name": "updated_at", "type": "timestamp"},
]


def ts(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def parquet(path, rows, extra: dict | None = None) -> str:
    columns = {
        "id": pa.array([r[0] for r in rows], pa.int64()),
        "name": pa.array([r[1] for r in rows], pa.string()),
        "amount": pa.array([Decimal(r[2]) if r[2] is not None else None for r in rows], pa.decimal128(12, 2)),
        "updated_at": pa.array([r[3] for r in rows], pa.timestamp("us", tz="UTC")),
    }
    columns.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return str(path)


def load(conn, mode, files, lo=None, hi=None, schema=SCHEMA, full=False, run="r1"):
    conn.execute("BEGIN TRANSACTION")
    result = warehouse.load_files(
        conn, source="src", table="t", mode=mode, files=files, schema=schema, primary_key=["id"],
        cursor="updated_at", slice_lo=lo, slice_hi=hi, full_slice=full, run_id=run,
    )
    conn.execute("COMMIT")
    return result


def rows(conn):
    return conn.execute("SELECT id, name, amount::VARCHAR, updated_at FROM src.t ORDER BY id").fetchall()


DAY1 = [(1, "Zoë", "10.00", ts(1, 1)), (2, "José", "20.50", ts(1, 2))]
DAY2 = [(3, "Łukasz", "5.25", ts(2, 3)), (4, "山田", None, ts(2, 4))]


def test_append_replaces_the_slice_so_reruns_do_not_duplicate(conn, tmp_path):
    f1 = parquet(tmp_path / "d1.parquet", DAY1)
    f2 = parquet(tmp_path / "d2.parquet", DAY2)
    load(conn, "append", [f1], ts(1), ts(2))
    load(conn, "append", [f2], ts(2), ts(3))
    first = rows(conn)
    load(conn, "append", [f1], ts(1), ts(2))  # re-run of day 1
    load(conn, "append", [f2], ts(2), ts(3))
    assert rows(conn) == first and len(first) == 4
    # A corrected re-extract of day 1 replaces day 1 only.
    fixed = parquet(tmp_path / "d1b.parquet", [(1, "Zoë", "11.00", ts(1, 1))])
    result = load(conn, "append", [fixed], ts(1), ts(2))
    assert result["rows_staged"] == 1
    assert [r[0] for r in rows(conn)] == [1, 3, 4]


def test_merge_newest_cursor_wins_in_any_order(conn, tmp_path):
    old = parquet(tmp_path / "old.parquet", [(1, "old", "1.00", ts(1, 1)), (2, "keep", "2.00", ts(1, 2))])
    new = parquet(tmp_path / "new.parquet", [(1, "new", "9.99", ts(2, 5))])
    load(conn, "merge", [old], ts(1), ts(2))
    load(conn, "merge", [new], ts(2), ts(3))
    expected = rows(conn)
    assert [r[1] for r in expected] == ["new", "keep"]
    load(conn, "merge", [old], ts(1), ts(2))  # late re-run of the older interval
    load(conn, "merge", [new], ts(2), ts(3))
    assert rows(conn) == expected


def test_merge_keeps_one_row_per_key_when_the_batch_has_versions(conn, tmp_path):
    batch = parquet(tmp_path / "b.parquet", [(1, "v1", "1.00", ts(1, 1)), (1, "v2", "2.00", ts(1, 3))])
    load(conn, "merge", [batch])
    assert rows(conn) == [(1, "v2", "2.00", ts(1, 3))]


def test_merge_into_a_loaded_table_mixes_newer_older_new_and_repeated_keys(conn, tmp_path):
    base = parquet(tmp_path / "base.parquet", [(1, "t1", "1.00", ts(1, 1)), (2, "t2", "2.00", ts(5, 1)), (3, "t3", "3.00", ts(1, 1))])
    load(conn, "merge", [base])
    batch = parquet(tmp_path / "batch.parquet", [
        (1, "b1-old", "1.10", ts(1, 2)), (1, "b1-new", "1.20", ts(1, 4)),  # repeated key, newer than the table
        (2, "b2", "2.10", ts(2, 1)),  # older than the table's row: the table's stays
        (4, "b4", "4.00", ts(1, 1)),  # a new key
    ])
    load(conn, "merge", [batch])
    assert rows(conn) == [
        (1, "b1-new", "1.20", ts(1, 4)), (2, "t2", "2.00", ts(5, 1)), (3, "t3", "3.00", ts(1, 1)), (4, "b4", "4.00", ts(1, 1)),
    ]
    # Nothing staged is left behind (temporary tables; PostgreSQL's staging tables).
    assert not conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE (table_type = 'LOCAL TEMPORARY' "
        "AND table_name LIKE 'lockgate%') OR table_schema = 'lockgate_staging'"
    ).fetchone()[0]


def test_full_replaces_the_table(conn, tmp_path):
    load(conn, "full", [parquet(tmp_path / "a.parquet", DAY1 + DAY2)], full=True)
    load(conn, "full", [parquet(tmp_path / "b.parquet", DAY2)], full=True)
    assert [r[0] for r in rows(conn)] == [3, 4]


def test_failed_load_rolls_back_completely(conn, tmp_path):
    load(conn, "append", [parquet(tmp_path / "d1.parquet", DAY1)], ts(1), ts(2))
    before = warehouse.table_fingerprint(conn, "src", "t")
    conn.execute("BEGIN TRANSACTION")
    with pytest.raises(Exception, match="No files found|does not exist"):
        warehouse.load_files(
            conn, source="src", table="t", mode="append", files=[str(tmp_path / "missing.parquet")], schema=SCHEMA,
            primary_key=["id"], cursor="updated_at", slice_lo=ts(1), slice_hi=ts(2), full_slice=False, run_id="r2",
        )
    conn.execute("ROLLBACK")
    assert warehouse.table_fingerprint(conn, "src", "t") == before


def test_added_column_is_followed_and_recorded(conn, tmp_path):
    load(conn, "merge", [parquet(tmp_path / "a.parquet", DAY1)])
    extra = {"tier": pa.array(["gold", None], pa.string())}
    schema = [*SCHEMA, {"name": "tier", "type": "string"}]
    result = load(conn, "merge", [parquet(tmp_path / "b.parquet", DAY2, extra)], schema=schema, run="r2")
    assert result["schema_changes"] == ["added tier VARCHAR"]
    assert conn.execute("SELECT id, tier FROM src.t ORDER BY id").fetchall() == [
        (1, None), (2, None), (3, "gold"), (4, None)
    ]
    history = conn.execute("SELECT column_name, change, new_type, run_id FROM lockgate.schema_history").fetchall()
    assert history == [("tier", "added", "VARCHAR", "r2")]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([c for c in SCHEMA if c["name"] != "name"], "column 'name' was dropped in the source (old type VARCHAR, new type: none)"),
        ([{**c, "type": "bigint"} if c["name"] == "amount" else c for c in SCHEMA], "column 'amount' changed type"),
    ],
)
def test_destructive_drift_is_refused_and_nothing_is_loaded(conn, tmp_path, schema, message):
    load(conn, "merge", [parquet(tmp_path / "a.parquet", DAY1)])
    before = warehouse.table_fingerprint(conn, "src", "t")
    conn.execute("BEGIN TRANSACTION")
    with pytest.raises(SchemaDriftError, match=re.escape(message)) as info:
        warehouse.load_files(
            conn, source="src", table="t", mode="merge", files=[], schema=schema, primary_key=["id"],
            cursor="updated_at", slice_lo=None, slice_hi=None, full_slice=False, run_id="r2",
        )
    conn.execute("ROLLBACK")
    assert "src.t" in str(info.value) and "nothing was loaded" in str(info.value)
    assert warehouse.table_fingerprint(conn, "src", "t") == before


def test_fingerprint_sees_every_value_and_ignores_row_order(conn, tmp_path):
    load(conn, "full", [parquet(tmp_path / "a.parquet", DAY1 + DAY2)], full=True)
    base = warehouse.table_fingerprint(conn, "src", "t")
    load(conn, "full", [parquet(tmp_path / "b.parquet", list(reversed(DAY1 + DAY2)))], full=True)
    assert warehouse.table_fingerprint(conn, "src", "t") == base
    changed = [*DAY1, DAY2[0], (4, "山田", "0.01", ts(2, 4))]
    load(conn, "full", [parquet(tmp_path / "c.parquet", changed)], full=True)
    count, digest = warehouse.table_fingerprint(conn, "src", "t")
    assert count == base[0] and digest != base[1]


def test_state_round_trips_and_stays_one_row(conn):
    from lockgate.incremental import TableState

    assert warehouse.get_watermark(conn, "src", "t") is None
    assert warehouse.get_state(conn, "src", "t") == TableState()
    state = TableState(watermark=ts(3), reread_from=ts(2), reread_until=ts(3), cursor_max="x", last_run_id="r1")
    warehouse.save_state(conn, "src", "t", state)
    warehouse.save_state(conn, "src", "t", state)
    assert warehouse.get_state(conn, "src", "t") == state
    assert conn.execute("SELECT count(*) FROM lockgate.state").fetchone()[0] == 1


def test_record_run_rejects_unknown_fields_and_updates_in_place(conn):
    warehouse.record_run(conn, "src", "t", "r1", mode="merge", rows_extracted=5)
    warehouse.record_run(conn, "src", "t", "r1", rows_loaded=5, status="loaded")
    status = warehouse.run_status(conn, "src", "t", "r1")
    assert (status["rows_extracted"], status["rows_loaded"], status["status"]) == (5, 5, "loaded")
    with pytest.raises(ValueError, match="unknown run fields"):
        warehouse.record_run(conn, "src", "t", "r1", rows_lost=1)


@pytest.mark.parametrize("lake_env", WAREHOUSES, indirect=True)
def test_lockgate_sql_prints_the_rows_and_names_what_is_wrong_with_a_query(lake_env, capsys):
    """The README's `lockgate sql '<query>'` on each warehouse (its own SQL dialect)."""
    from lockgate import cli

    with warehouse.connect(lake_env) as wh:
        wh.execute("CREATE TABLE lockgate.sql_probe AS SELECT 41 + 1 AS answer")
    assert cli.main(["sql", "SELECT answer FROM lockgate.sql_probe"]) == 0
    shown = capsys.readouterr().out
    assert "answer" in shown and "42" in shown.replace("│", " ").split(), shown
    assert cli.main(["sql", "SELECT * FROM lockgate.no_such_table"]) == 2
    assert "no_such_table" in capsys.readouterr().err
