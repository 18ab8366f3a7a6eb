"""Real engines end to end through the pipeline stages (Spark JDBC → lake → GX → DuckDB):
a table of the common types on PostgreSQL, MariaDB and SQLite arrives in the warehouse
row for row, and a broken source gets a clear error that never shows the password."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pytest
from lockgate import pipeline, warehouse
from lockgate.config import parse_source
from lockgate.errors import SourceError
from lockgate.pipeline import RunInfo

from tests.cursors.typecase import D1, D2, ingest

pytestmark = pytest.mark.integration

UTC = UTC
RUN_ID = "scheduled__2026-03-01"  # a scheduled run of the interval D1 .. D2

# (id, qty int, big bigint, amount numeric(12,2), label text, flag bool, day date,
#  local_at timestamp, zoned_at timestamptz/datetime, updated_at cursor)
ROWS = [
    (1, 7, 2**40 + 3, Decimal("1234567890.12"), "Zoë Ångström", True, date(1999, 12, 31),
     datetime(2026, 3, 1, 8, 30, 0, 123456), datetime(2026, 3, 1, 9, 0, tzinfo=UTC), datetime(2026, 3, 1, 10)),
    (2, -2147483648, -(2**62), Decimal("-0.01"), "山田 太郎 — «quotes» 'single' \\ backslash", False,
     date(2026, 2, 28), datetime(1970, 1, 1), datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
     datetime(2026, 3, 1, 11)),
    (3, None, None, None, None, None, None, None, None, datetime(2026, 3, 1, 23, 59, 59, 999999)),
    (4, 0, 0, Decimal("0.00"), "", True, date(2000, 2, 29), datetime(2026, 3, 1, 12), None,
     datetime(2026, 3, 1)),
    # Outside the interval: must not be read.
    (5, 1, 1, Decimal("1.00"), "tomorrow", True, date(2026, 3, 2), None, None, datetime(2026, 3, 2)),
    (6, 1, 1, Decimal("1.00"), "yesterday", True, date(2026, 2, 28), None, None, datetime(2026, 2, 28, 23, 59)),
]
IN_INTERVAL = [r for r in ROWS if D1.replace(tzinfo=None) <= r[-1] < D2.replace(tzinfo=None)]
COLUMNS = ["id", "qty", "big", "amount", "label", "flag", "day", "local_at", "zoned_at", "updated_at"]


def _config(name: str, connection: str, **table):
    return parse_source(
        {
            "source": name,
            "connection": connection,
            "start_date": "2026-03-01",
            "tables": [
                {
                    "name": "common_types",
                    "primary_key": ["id"],
                    "mode": "merge",
                    "cursor": "updated_at",
                    "partitions": 3,
                    **table,
                }
            ],
        },
        f"{name}.yml",
    )


def _warehouse_rows(settings, source: str):
    with warehouse.connect(settings, read_only=True) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = 'common_types'",
                [source],
            ).fetchall()
        )
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM {source}.common_types ORDER BY id").fetchall()
    return types, rows


def _normalise(row):
    """Compare instants as UTC and naive times as they are."""
    out = []
    for value in row:
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC)
        out.append(value)
    return tuple(out)


def _check(settings, source, expected_rows, expected_types):
    types, rows = _warehouse_rows(settings, source)
    assert {c: types[c] for c in COLUMNS} == expected_types
    assert [_normalise(r) for r in rows] == [_normalise(r) for r in expected_rows]
    with warehouse.connect(settings, read_only=True) as conn:
        run = conn.execute(
            "SELECT rows_extracted, rows_validated, rows_loaded, status, validation_status FROM lockgate.runs "
            "WHERE source = ?",
            [source],
        ).fetchall()
        watermark = warehouse.get_watermark(conn, source, "common_types")
    n = len(expected_rows)
    assert run == [(n, n, n, "published", "passed")]
    assert watermark == D2


TYPES = {
    "id": "INTEGER", "qty": "INTEGER", "big": "BIGINT", "amount": "DECIMAL(12,2)", "label": "VARCHAR",
    "flag": "BOOLEAN", "day": "DATE", "local_at": "TIMESTAMP", "zoned_at": "TIMESTAMP WITH TIME ZONE",
    "updated_at": "TIMESTAMP",
}  # fmt: skip


@pytest.mark.parametrize("reader", ["arrow", "jdbc"])
def test_postgres_common_types_row_for_row(pg_conn, pg_database, lake_env, spark, monkeypatch, reader):
    pg_conn.execute(
        "CREATE TABLE common_types (id integer PRIMARY KEY, qty integer, big bigint, amount numeric(12,2), "
        "label text, flag boolean, day date, local_at timestamp, zoned_at timestamptz, updated_at timestamp NOT NULL)"
    )
    with pg_conn.cursor() as cur:
        cur.executemany(f"INSERT INTO common_types VALUES ({', '.join(['%s'] * 10)})", ROWS)
    monkeypatch.setenv("AIRFLOW_CONN_IT_PG", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    extracted = ingest(_config("it_pg", "it_pg", reader=reader), lake_env, spark, RUN_ID)
    _check(lake_env, "it_pg", IN_INTERVAL, TYPES)
    from lockgate import lake

    assert lake.read_manifest(extracted["raw_path"])["reader"] == reader


def test_arrow_reader_matches_jdbc_on_more_postgres_types(pg_conn, pg_database, lake_env, spark, monkeypatch):
    """uuid, json, unconstrained numeric, smallint, real, bytea, varchar: the Arrow reader
    writes exactly what Spark's JDBC reader writes; an array column falls back to JDBC."""
    pg_conn.execute(
        "CREATE TABLE more_types (id bigint PRIMARY KEY, u uuid, j jsonb, n numeric, s smallint, r real, "
        "d double precision, b bytea, v varchar(20), updated_at timestamp NOT NULL)"
    )
    pg_conn.execute(
        "INSERT INTO more_types SELECT g, md5(g::text)::uuid, jsonb_build_object('k', g, 'é', 'ü'), "
        "round(g / 7.0, 18), (g % 30000)::smallint, g / 3.0, g / 9.0, decode(md5(g::text), 'hex'), 'v' || g, "
        "timestamp '2026-03-01' + g * interval '1 second' FROM generate_series(1, 20000) g"
    )
    pg_conn.execute("INSERT INTO more_types (id, updated_at) VALUES (20001, '2026-03-01 12:00')")
    monkeypatch.setenv("AIRFLOW_CONN_IT_MORE", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    from lockgate import lake

    run = RunInfo(run_id="r1", interval_start=D1, interval_end=D2)
    tables = {}
    for reader in ("arrow", "jdbc"):
        config = parse_source(
            {"source": f"it_more_{reader}", "connection": "it_more", "start_date": "2026-03-01",
             "tables": [{"name": "more_types", "primary_key": ["id"], "mode": "merge", "cursor": "updated_at",
                         "partitions": 3, "reader": reader}]},
            "it_more.yml",
        )  # fmt: skip
        extracted = pipeline.extract_stage(config, config.tables[0], run, settings=lake_env, spark=spark)
        manifest = lake.read_manifest(extracted["raw_path"])
        assert manifest["reader"] == reader and manifest["rows"] == manifest["source_rows"] == 20001
        tables[reader] = (manifest["schema"], extracted["raw_path"])
    assert tables["arrow"][0] == tables["jdbc"][0]
    with duckdb.connect() as conn:
        arrow, jdbc = (f"read_parquet('{tables[r][1]}/part-*.parquet')" for r in ("arrow", "jdbc"))
        assert conn.execute(f"DESCRIBE SELECT * FROM {arrow}").fetchall() == conn.execute(
            f"DESCRIBE SELECT * FROM {jdbc}"
        ).fetchall()
        differ = conn.execute(f"SELECT count(*) FROM ((FROM {arrow} EXCEPT ALL FROM {jdbc}) UNION ALL "
                              f"(FROM {jdbc} EXCEPT ALL FROM {arrow}))").fetchone()[0]  # fmt: skip
        assert differ == 0
        assert conn.execute(f"SELECT j FROM {arrow} WHERE id = 3").fetchone()[0] == '{"k": 3, "é": "ü"}'
    # A type the Arrow reader does not convert (an array): the JDBC reader takes over.
    pg_conn.execute("ALTER TABLE more_types ADD COLUMN tags integer[]")
    config = parse_source(
        {"source": "it_more_auto", "connection": "it_more", "start_date": "2026-03-01",
         "tables": [{"name": "more_types", "primary_key": ["id"], "mode": "merge", "cursor": "updated_at"}]},
        "it_more.yml",
    )  # fmt: skip
    extracted = pipeline.extract_stage(config, config.tables[0], run, settings=lake_env, spark=spark)
    assert lake.read_manifest(extracted["raw_path"])["reader"] == "jdbc"


def test_mariadb_common_types_row_for_row(mariadb_conn, mariadb_database, lake_env, spark, monkeypatch):
    with mariadb_conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(
            "CREATE TABLE common_types (id int PRIMARY KEY, qty int, big bigint, amount decimal(12,2), "
            "label text, flag boolean, day date, local_at datetime(6), zoned_at timestamp(6) NULL, "
            "updated_at datetime(6) NOT NULL) CHARACTER SET utf8mb4"
        )
        cur.executemany(
            f"INSERT INTO common_types VALUES ({', '.join(['%s'] * 10)})",
            [tuple(v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo else v for v in r)
             for r in ROWS],
        )
    monkeypatch.setenv("AIRFLOW_CONN_IT_MY", f"mysql://root@127.0.0.1:3306/{mariadb_database}")
    ingest(_config("it_my", "it_my"), lake_env, spark, RUN_ID)
    # MariaDB TIMESTAMP is an instant (stored as UTC), DATETIME a wall-clock value.
    _check(lake_env, "it_my", IN_INTERVAL, TYPES)


def test_sqlite_common_types_row_for_row(tmp_path, lake_env, spark, monkeypatch):
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE common_types (id INTEGER PRIMARY KEY, qty INTEGER, big BIGINT, amount NUMERIC(12,2), "
            "label TEXT, flag BOOLEAN, day DATE, local_at TIMESTAMP, zoned_at TIMESTAMP, updated_at TIMESTAMP NOT NULL)"
        )
        conn.executemany(
            f"INSERT INTO common_types VALUES ({', '.join(['?'] * 10)})",
            [
                tuple(
                    str(v) if isinstance(v, Decimal)
                    else v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime)
                    else v.isoformat() if isinstance(v, date)
                    else v
                    for v in r
                )
                for r in ROWS
            ],
        )
    monkeypatch.setenv("AIRFLOW_CONN_IT_LITE", f"sqlite:///{db}")
    ingest(_config("it_lite", "it_lite"), lake_env, spark, RUN_ID)
    # SQLite has no time zones and no 32-bit integers: INTEGER is read as BIGINT (never
    # truncated) and every TIMESTAMP is a UTC wall-clock value.
    expected = [
        tuple(v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo else v for v in r)
        for r in IN_INTERVAL
    ]
    types = {**TYPES, "id": "BIGINT", "qty": "BIGINT", "zoned_at": "TIMESTAMP"}
    _check(lake_env, "it_lite", expected, types)


def test_a_small_slice_is_read_in_process_and_a_large_one_by_spark_tasks(
    pg_conn, pg_database, lake_env, spark, monkeypatch
):
    for name, rows in (("small", 100), ("large", 12000)):
        pg_conn.execute(
            f"CREATE TABLE {name} AS SELECT g AS id, 'r' || g AS label, "
            f"timestamp '2026-03-01' + g * interval '1 second' AS updated_at FROM generate_series(1, {rows}) g"
        )
    monkeypatch.setenv("AIRFLOW_CONN_IT_SIZE", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    config = parse_source(
        {"source": "it_size", "connection": "it_size", "start_date": "2026-03-01",
         "tables": [{"name": n, "primary_key": ["id"], "mode": "merge", "cursor": "updated_at", "partitions": 4}
                    for n in ("small", "large")]},
        "it_size.yml",
    )  # fmt: skip
    from lockgate import lake

    run = RunInfo(run_id="r1", interval_start=D1, interval_end=D2)
    tracker = spark.sparkContext.statusTracker()
    jobs = {}
    for table in config.tables:
        spark.sparkContext.setJobGroup(f"it_size_{table.name}", table.name)
        try:
            extracted = pipeline.extract_stage(config, table, run, settings=lake_env, spark=spark)
        finally:
            spark.sparkContext.setJobGroup(None, None)
        manifest = lake.read_manifest(extracted["raw_path"])
        assert manifest["reader"] == "arrow" and manifest["rows"] == manifest["source_rows"]
        jobs[table.name] = len(tracker.getJobIdsForGroup(f"it_size_{table.name}"))
    assert jobs["small"] == 0, "a 100-row slice should not start a Spark job"
    assert jobs["large"] >= 1, "a 12,000-row slice in 3 key ranges should run as Spark tasks"


def test_arrow_reader_balances_tasks_over_a_clustered_key(pg_conn, pg_database, lake_env, spark, monkeypatch):
    """Keys in two clusters far apart: the key ranges follow PostgreSQL's histogram of the
    key, so the 4 tasks read similar numbers of rows (equal-width ranges would give two
    tasks everything and two nothing), and every row arrives once."""
    pg_conn.execute(
        "CREATE TABLE clustered AS SELECT CASE WHEN g <= 8000 THEN g ELSE 1000000000 + g END AS id, "
        "'r' || g AS label, timestamp '2026-03-01' + g * interval '1 second' AS updated_at "
        "FROM generate_series(1, 16000) g"
    )
    pg_conn.execute("ALTER TABLE clustered ADD PRIMARY KEY (id)")
    pg_conn.execute("ANALYZE clustered")
    monkeypatch.setenv("AIRFLOW_CONN_IT_SKEW", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    config = parse_source(
        {"source": "it_skew", "connection": "it_skew", "start_date": "2026-03-01",
         "tables": [{"name": "clustered", "primary_key": ["id"], "mode": "full", "partitions": 4}]},
        "it_skew.yml",
    )  # fmt: skip
    import pyarrow.parquet as pq
    from lockgate import lake

    table = config.tables[0]
    extracted = pipeline.extract_stage(config, table, RunInfo(run_id="r1"), settings=lake_env, spark=spark)
    manifest = lake.read_manifest(extracted["raw_path"])
    files = lake.data_files(extracted["raw_path"], manifest)
    counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
    assert manifest["reader"] == "arrow" and len(files) == 4 and sum(counts) == 16000
    assert max(counts) <= 6000, f"unbalanced key ranges: {counts}"
    ids = pq.read_table(files, columns=["id"]).column("id").to_pylist()
    assert len(set(ids)) == 16000


def test_partitioned_read_covers_every_row_once(pg_conn, pg_database, lake_env, spark, monkeypatch):
    pg_conn.execute(
        "CREATE TABLE events AS SELECT g AS id, 'e' || g AS payload, "
        "timestamp '2026-03-01' + g * interval '1 second' AS updated_at FROM generate_series(1, 12000) g"
    )
    monkeypatch.setenv("AIRFLOW_CONN_IT_PART", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    config = parse_source(
        {
            "source": "it_part",
            "connection": "it_part",
            "start_date": "2026-03-01",
            "tables": [{"name": "events", "primary_key": ["id"], "mode": "append", "cursor": "updated_at",
                        "partitions": 4, "fetch_size": 500}],
        },
        "it_part.yml",
    )
    table = config.tables[0]
    run = RunInfo(run_id="r1", interval_start=D1, interval_end=D2)
    extracted = pipeline.extract_stage(config, table, run, settings=lake_env, spark=spark)
    from lockgate import lake

    manifest = lake.read_manifest(extracted["raw_path"])
    assert manifest["partitions"] == 3  # 12,000 rows at ≥5,000 rows per read, capped by partitions=4
    assert manifest["rows"] == manifest["source_rows"] == 12000
    assert manifest["cursor_min"].startswith("2026-03-01T00:00:01")
    pipeline.load_stage(config, table, run, extracted["raw_path"], settings=lake_env)
    with warehouse.connect(lake_env, read_only=True) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id), sum(id) FROM it_part.events").fetchone() == (
            12000, 12000, 12000 * 12001 // 2
        )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgres://postgres:{pw}@127.0.0.1:1/{db}", "the database is not reachable"),
        ("postgres://nobody_lockgate:{pw}@127.0.0.1:5432/{db}", "credentials were refused|role .* does not exist"),
        ("postgres://postgres:{pw}@127.0.0.1:5432/{db}", "table 'no_such_table' does not exist"),
    ],
)
def test_broken_source_gets_a_clear_error_without_the_password(
    pg_database, lake_env, spark, monkeypatch, uri, expected
):
    password = "Sup3r-Secret-pw"
    monkeypatch.setenv("AIRFLOW_CONN_IT_BAD", uri.format(pw=password, db=pg_database))
    config = parse_source(
        {"source": "it_bad", "connection": "it_bad", "start_date": "2026-03-01",
         "tables": [{"name": "no_such_table", "mode": "full"}]},
        "it_bad.yml",
    )
    run = RunInfo(run_id="r1", interval_start=D1, interval_end=D2)
    with pytest.raises(SourceError, match=expected) as info:
        pipeline.extract_stage(config, config.tables[0], run, settings=lake_env, spark=spark)
    assert password not in str(info.value)
    assert "no_such_table" in str(info.value) and "127.0.0.1" in str(info.value)
    # Nothing half-written: no sealed folder and no leftover temporary output; only the
    # lineage log, which records the failure (without the password).
    lineage = lake_env.lake_root / "lineage"
    assert not [p for p in lake_env.lake_root.rglob("*") if p.is_file() and lineage not in p.parents]
    events = [json.loads(line) for f in lineage.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "FAIL"], events
    assert password not in json.dumps(events)


def test_rerun_of_the_same_interval_changes_nothing(pg_conn, pg_database, lake_env, spark, monkeypatch):
    pg_conn.execute("CREATE TABLE common_types (id integer PRIMARY KEY, qty integer, big bigint, amount numeric(12,2), "
                    "label text, flag boolean, day date, local_at timestamp, zoned_at timestamptz, "
                    "updated_at timestamp NOT NULL)")
    with pg_conn.cursor() as cur:
        cur.executemany(f"INSERT INTO common_types VALUES ({', '.join(['%s'] * 10)})", ROWS)
    monkeypatch.setenv("AIRFLOW_CONN_IT_RERUN", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    config = _config("it_rerun", "it_rerun")
    ingest(config, lake_env, spark, run_id="first")
    with warehouse.connect(lake_env, read_only=True) as conn:
        before = warehouse.table_fingerprint(conn, "it_rerun", "common_types")
    again = ingest(config, lake_env, spark, run_id="second")
    assert not again["resumed"]
    resumed = ingest(config, lake_env, spark, run_id="second")  # a retried task reuses its sealed extract
    assert resumed["resumed"]
    with warehouse.connect(lake_env, read_only=True) as conn:
        assert warehouse.table_fingerprint(conn, "it_rerun", "common_types") == before
        assert before[0] == len(IN_INTERVAL)
