"""The type matrix: every source type Lockgate reads either arrives in the warehouse
with the source's value, typed as the README's "Type mapping" tables say, or fails the
extract *before a row is read* with an error naming source, table, column and type.

Real PostgreSQL (both readers), MariaDB and SQLite; values are compared with what the
source's own client returns.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal

import pytest
from lockgate.errors import TypeMappingError

from tests.cursors.typecase import config, ingest, lake_files, warehouse_table

pytestmark = pytest.mark.integration

PG_DDL = """
CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
CREATE DOMAIN year AS integer CHECK (VALUE >= 1901 AND VALUE <= 2155);
CREATE TABLE t (
    id integer PRIMARY KEY,
    special_features text[],
    scores integer[],
    prices numeric(10,2)[],
    grid integer[][],
    rating mpaa_rating,
    release_year year,
    fulltext tsvector,
    doc jsonb,
    raw bytea,
    u uuid,
    n numeric,
    price money,
    span interval,
    code char(5),
    at_time time,
    bits bit(4),
    updated_at timestamp NOT NULL
);
"""
PG_ROWS = """
INSERT INTO t VALUES
 (1, '{"Trailers","Deleted Scenes"}', '{1,2,3}', '{1.50,NULL}', '{{1,2},{3,4}}', 'PG-13', 2006,
  to_tsvector('english', 'A Epic Drama of a Feminist'), '{"k": [1, "é"]}', '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  123456789.123456789012345678, 12.34, '1 day 02:03:04.5', 'ab', '12:34:56.789', B'1010', '2026-03-01 10:00'),
 (2, '{}', '{}', '{}', '{}', 'R', 2155, to_tsvector(''), '[]', '\\x', '00000000-0000-0000-0000-000000000000',
  -0.000000000000000001, -92233720368547758.08, '-3 mons', 'abcde', '00:00', B'0000', '2026-03-01 11:00'),
 (3, '{NULL,"😀 emoji"}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '2026-03-01 12:00');
"""
PG_TYPES = {
    "id": "INTEGER", "special_features": "VARCHAR[]", "scores": "INTEGER[]", "prices": "DECIMAL(10,2)[]",
    "grid": "INTEGER[][]", "rating": "VARCHAR", "release_year": "INTEGER", "fulltext": "VARCHAR", "doc": "VARCHAR",
    "raw": "BLOB", "u": "VARCHAR", "n": "DECIMAL(38,18)", "price": "DECIMAL(23,4)", "span": "VARCHAR",
    "code": "VARCHAR", "at_time": "VARCHAR", "bits": "VARCHAR", "updated_at": "TIMESTAMP",
}  # fmt: skip


def _pg_source_rows(pg_conn) -> list[dict]:
    """The source's values as psycopg returns them, in the warehouse's representation."""
    cur = pg_conn.execute(
        "SELECT id, special_features, scores, prices, grid, rating::text, release_year, fulltext::text, doc::text, raw, "
        "u::text, n, price::numeric, span::text, code, at_time::text, bits::text, updated_at FROM t ORDER BY id"
    )
    names = [d.name for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for row in rows:
        row["raw"] = None if row["raw"] is None else bytes(row["raw"])
    return rows


@pytest.mark.parametrize("reader", ["arrow", "jdbc"])
def test_postgres_types_arrive_as_the_source_has_them(pg_conn, pg_database, lake_env, spark, monkeypatch, reader):
    pg_conn.execute(PG_DDL)
    pg_conn.execute(PG_ROWS)
    monkeypatch.setenv("AIRFLOW_CONN_TM_PG", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    ingest(config("tm_pg", "tm_pg", reader=reader), lake_env, spark)
    types, rows = warehouse_table(lake_env, "tm_pg")
    assert types == PG_TYPES
    expected = _pg_source_rows(pg_conn)
    for got, want in zip(rows, expected, strict=True):
        got = {**got, "raw": None if got["raw"] is None else bytes(got["raw"])}
        assert got == want


def test_postgres_readers_agree_on_every_type(pg_conn, pg_database, lake_env, spark, monkeypatch):
    import duckdb

    pg_conn.execute(PG_DDL)
    pg_conn.execute(PG_ROWS)
    monkeypatch.setenv("AIRFLOW_CONN_TM_PGR", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    paths = {}
    for reader in ("arrow", "jdbc"):
        from lockgate import pipeline
        from lockgate.pipeline import RunInfo

        cfg = config(f"tm_pgr_{reader}", "tm_pgr", reader=reader)
        paths[reader] = pipeline.extract_stage(cfg, cfg.tables[0], RunInfo(run_id="r1"), settings=lake_env, spark=spark)[
            "raw_path"
        ]
    with duckdb.connect() as conn:
        arrow, jdbc = (f"read_parquet('{paths[r]}/part-*.parquet')" for r in ("arrow", "jdbc"))
        assert conn.execute(f"DESCRIBE FROM {arrow}").fetchall() == conn.execute(f"DESCRIBE FROM {jdbc}").fetchall()
        assert conn.execute(f"FROM {arrow} ORDER BY id").fetchall() == conn.execute(f"FROM {jdbc} ORDER BY id").fetchall()


def test_postgres_partitioned_table(pg_conn, pg_database, lake_env, spark, monkeypatch):
    pg_conn.execute(
        "CREATE TABLE t (id integer, tags text[], updated_at timestamp NOT NULL) PARTITION BY RANGE (updated_at)"
    )
    pg_conn.execute("CREATE TABLE t_a PARTITION OF t FOR VALUES FROM ('2026-01-01') TO ('2026-03-01 12:00')")
    pg_conn.execute("CREATE TABLE t_b PARTITION OF t FOR VALUES FROM ('2026-03-01 12:00') TO ('2026-04-01')")
    pg_conn.execute("INSERT INTO t VALUES (1, '{a}', '2026-03-01 10:00'), (2, '{b,c}', '2026-03-01 13:00')")
    monkeypatch.setenv("AIRFLOW_CONN_TM_PART", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    ingest(config("tm_part", "tm_part", mode="merge", cursor="updated_at"), lake_env, spark)
    types, rows = warehouse_table(lake_env, "tm_part")
    assert types["tags"] == "VARCHAR[]"
    assert [(r["id"], r["tags"]) for r in rows] == [(1, ["a"]), (2, ["b", "c"])]


@pytest.mark.parametrize("reader", ["arrow", "jdbc"])
def test_postgres_numeric_that_the_warehouse_cannot_hold_fails_before_reading(
    pg_conn, pg_database, lake_env, spark, monkeypatch, reader
):
    """Unconstrained numeric is DECIMAL(38,18): a value with more fractional digits (or
    20+ integer digits) would be rounded, so the extract fails naming it."""
    pg_conn.execute("CREATE TABLE t (id integer PRIMARY KEY, n numeric, big numeric(50,2))")
    pg_conn.execute("INSERT INTO t VALUES (1, 1.5, 1.25), (2, 0.1234567890123456789012, 2.50)")
    monkeypatch.setenv("AIRFLOW_CONN_TM_NUM", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    with pytest.raises(TypeMappingError) as info:
        ingest(config("tm_num", "tm_num", reader=reader), lake_env, spark)
    message = str(info.value)
    assert "tm_num" in message and "table 't'" in message and "column 'n'" in message and "numeric" in message
    assert "1 row" in message and "0.1234567890123456789012" in message
    assert "big" not in message  # numeric(50,2) values that fit DECIMAL(38,2) are fine
    assert not [p for p in lake_files(lake_env) if p.suffix == ".parquet"]
    pg_conn.execute("UPDATE t SET n = 0.123456789012345678 WHERE id = 2")
    ingest(config("tm_num", "tm_num", reader=reader), lake_env, spark, run_id="r2")
    types, rows = warehouse_table(lake_env, "tm_num")
    assert types == {"id": "INTEGER", "n": "DECIMAL(38,18)", "big": "DECIMAL(38,2)"}
    assert [(r["n"], r["big"]) for r in rows] == [
        (Decimal("1.5"), Decimal("1.25")), (Decimal("0.123456789012345678"), Decimal("2.5"))
    ]


MARIA_DDL = """
CREATE TABLE t (
    id INT PRIMARY KEY,
    rating ENUM('G','PG','PG-13','R','NC-17'),
    features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'),
    code CHAR(20),
    release_year YEAR,
    flag TINYINT(1),
    small TINYINT UNSIGNED,
    huge BIGINT UNSIGNED,
    mask BIT(8),
    wide BIT(64),
    one_bit BIT(1),
    doc JSON,
    note VARCHAR(50),
    at_time TIME(3),
    day DATE,
    updated_at DATETIME(6) NOT NULL
) CHARACTER SET utf8mb4
"""
MARIA_ROWS = [
    (1, "R", "Trailers,Deleted Scenes", "ab", 2011, 1, 255, 18446744073709551615, 0b10101010, 2**64 - 1, 1,
     '{"k": [1, "é"]}', "😀 emoji ü", "12:34:56.789", date(2006, 1, 2), datetime(2026, 3, 1, 10)),
    (2, "PG-13", "", "  lead", 1901, 0, 0, 9223372036854775808, 0, 0, 0, "[]", "", "-838:59:59", date(1000, 1, 1),
     datetime(2026, 3, 1, 11)),
    (3, None, None, None, None, None, None, None, None, None, None, None, None, None, None, datetime(2026, 3, 1, 12)),
]


def _maria_source_rows(conn) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, rating, features, code, release_year, flag, small, huge, CAST(mask AS UNSIGNED) AS mask, "
            "CAST(wide AS UNSIGNED) AS wide, one_bit = 1 AS one_bit, doc, note, CAST(at_time AS CHAR) AS at_time, day, "
            "updated_at FROM t ORDER BY id"
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for row in rows:
        row["flag"] = None if row["flag"] is None else bool(row["flag"])
        row["one_bit"] = None if row["one_bit"] is None else bool(row["one_bit"])
        row["huge"] = None if row["huge"] is None else Decimal(row["huge"])
        row["wide"] = None if row["wide"] is None else Decimal(row["wide"])
    return rows


MARIA_TYPES = {
    "id": "INTEGER", "rating": "VARCHAR", "features": "VARCHAR", "code": "VARCHAR", "release_year": "INTEGER",
    "flag": "BOOLEAN", "small": "SMALLINT", "huge": "DECIMAL(20,0)", "mask": "INTEGER", "wide": "DECIMAL(20,0)",
    "one_bit": "BOOLEAN", "doc": "VARCHAR", "note": "VARCHAR", "at_time": "VARCHAR", "day": "DATE",
    "updated_at": "TIMESTAMP",
}  # fmt: skip


def test_mariadb_types_arrive_as_the_source_has_them(mariadb_conn, mariadb_database, lake_env, spark, monkeypatch):
    with mariadb_conn.cursor() as cur:
        cur.execute(MARIA_DDL)
        cur.executemany(f"INSERT INTO t VALUES ({', '.join(['%s'] * 16)})", MARIA_ROWS)
    monkeypatch.setenv("AIRFLOW_CONN_TM_MY", f"mysql://root@127.0.0.1:3306/{mariadb_database}")
    ingest(config("tm_my", "tm_my"), lake_env, spark)
    types, rows = warehouse_table(lake_env, "tm_my")
    assert types == MARIA_TYPES
    assert rows == _maria_source_rows(mariadb_conn)
    assert rows[0]["rating"] == "R" and rows[0]["code"] == "ab" and rows[0]["release_year"] == 2011


@pytest.mark.parametrize(
    ("ddl", "value", "column", "words"),
    [
        ("d DATE", "0000-00-00", "d", "zero date"),
        ("d DATETIME", "2020-00-15 00:00:00", "d", "zero date"),
        ("d TINYINT(1)", 2, "d", "BOOLEAN"),
    ],
)
def test_mariadb_values_that_would_be_read_wrongly_fail_before_reading(
    mariadb_conn, mariadb_database, lake_env, spark, monkeypatch, ddl, value, column, words
):
    with mariadb_conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(f"CREATE TABLE t (id INT PRIMARY KEY, {ddl})")
        cur.execute("INSERT INTO t VALUES (1, NULL), (2, %s)", (value,))
    monkeypatch.setenv("AIRFLOW_CONN_TM_MYBAD", f"mysql://root@127.0.0.1:3306/{mariadb_database}")
    with pytest.raises(TypeMappingError) as info:
        ingest(config("tm_mybad", "tm_mybad"), lake_env, spark)
    message = str(info.value)
    assert "table 't'" in message and f"column '{column}'" in message and words in message and "1 row" in message
    assert not [p for p in lake_files(lake_env) if p.suffix == ".parquet"]


def test_sqlite_affinity_surprises_fail_before_reading(tmp_path, lake_env, spark, monkeypatch):
    """SQLite stores any value in any column: text in an INTEGER column would be read as 0."""
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER, ratio REAL, label TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(1, 5, 0.5, "a"), (2, "five", 1, "b")])
    monkeypatch.setenv("AIRFLOW_CONN_TM_LITE", f"sqlite:///{db}")
    with pytest.raises(TypeMappingError) as info:
        ingest(config("tm_lite", "tm_lite"), lake_env, spark)
    message = str(info.value)
    assert "column 'qty'" in message and "INTEGER" in message and "'five'" in message and "ratio" not in message
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE t SET qty = 5 WHERE id = 2")
    ingest(config("tm_lite", "tm_lite"), lake_env, spark, run_id="r2")
    types, rows = warehouse_table(lake_env, "tm_lite")
    assert types == {"id": "BIGINT", "qty": "BIGINT", "ratio": "DOUBLE", "label": "VARCHAR"}
    assert [(r["qty"], r["ratio"]) for r in rows] == [(5, 0.5), (5, 1.0)]


def test_an_unsupported_type_fails_before_reading_naming_table_column_and_type(lake_env):
    """The mapping itself: a type without a warehouse mapping names where it is."""
    from lockgate.typemap import warehouse_type

    with pytest.raises(TypeMappingError, match=r"source 'src', table 'orders': column 'm' \(hstore, read as map<string,int>\)"):
        warehouse_type("map<string,int>", where="src.orders", column="m", native="hstore")
    assert warehouse_type("array<array<decimal(10,2)>>", where="s.t", column="c") == "DECIMAL(10,2)[][]"
