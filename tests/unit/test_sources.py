"""Airflow connections → JDBC sources: engines, SQL dialect, and credentials that never leak."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from lockgate.errors import ConfigError
from lockgate.sources import JdbcSource, resolve_source, source_from_connection

SECRET = "s3cr3t-Pa55"


def test_postgres_connection_from_env(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SRC_PG", f"postgres://etl:{SECRET}@db.example:6543/sales")
    source = resolve_source("src_pg")
    assert source.engine == "postgres"
    assert source.url == "jdbc:postgresql://db.example:6543/sales"
    assert source.jdbc_options()["driver"] == "org.postgresql.Driver"
    assert source.jdbc_options()["password"] == SECRET
    assert SECRET not in repr(source) and SECRET not in source.describe()


def test_mariadb_connection_pins_the_session_time_zone(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SRC_MY", f"mysql://etl:{SECRET}@127.0.0.1/shop")
    source = resolve_source("src_my")
    options = source.jdbc_options()
    assert source.engine == "mariadb" and options["driver"] == "org.mariadb.jdbc.Driver"
    assert source.url == "jdbc:mysql://127.0.0.1:3306/shop?permitMysqlScheme"
    assert source.describe() == "jdbc:mysql://127.0.0.1:3306/shop"
    assert options["sessionInitStatement"] == "SET time_zone = '+00:00'"
    assert source.quote("order`s") == "`order``s`"


def test_sqlite_connection_needs_an_existing_file(tmp_path, monkeypatch):
    db = tmp_path / "shop.db"
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_X", f"sqlite:///{db}")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_source("shop_x")
    db.write_bytes(b"")
    assert resolve_source("shop_x").url == f"jdbc:sqlite:{db}"


def test_unknown_connection_type_and_missing_parts_are_named(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SRC_ORA", "oracle://u:p@h/db")
    with pytest.raises(ConfigError, match="connection 'src_ora': type 'oracle' is not supported"):
        resolve_source("src_ora")
    monkeypatch.setenv("AIRFLOW_CONN_SRC_NODB", f"postgres://u:{SECRET}@h:5432")
    with pytest.raises(ConfigError, match="database") as info:
        resolve_source("src_nodb")
    assert SECRET not in str(info.value)


def test_timestamp_literals_are_utc():
    cet = timezone(timedelta(hours=1))
    value = datetime(2026, 1, 2, 1, 0, 0, 250, tzinfo=cet)
    assert JdbcSource("postgres", "jdbc:postgresql://h/db").timestamp_literal(value) == "'2026-01-02 00:00:00.000250+00'"
    assert JdbcSource("sqlite", "jdbc:sqlite:x").timestamp_literal(value) == "'2026-01-02 00:00:00.000250'"


def test_source_from_connection_object_without_password_in_errors():
    class Conn:
        conn_type, host, schema, port, login, password, extra_dejson = "postgres", "", "db", None, "u", SECRET, {}

    with pytest.raises(ConfigError, match="host is missing") as info:
        source_from_connection(Conn(), "c")
    assert SECRET not in str(info.value)


def test_native_postgres_uri_quotes_credentials(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SRC_NATIVE", "postgres://etl%40corp:p%40ss%2Fw%3Ard@db.example:6543/sales")
    source = resolve_source("src_native")
    assert source.libpq_uri() == "postgresql://etl%40corp:p%40ss%2Fw%3Ard@db.example:6543/sales"
    assert "p@ss" not in repr(source)
    with pytest.raises(ConfigError, match="no native PostgreSQL address"):
        JdbcSource("sqlite", "jdbc:sqlite:/tmp/x.db").libpq_uri()


def test_arrow_reader_key_ranges_cover_every_key_once():
    import duckdb

    from spark_jobs.arrow_reader import key_ranges

    for lo, hi, parts in [(1, 100, 4), (1, 3, 8), (-50, 50, 3), (7, 7, 2), (1, 10, 1)]:
        predicates = key_ranges("k", lo, hi, parts)
        assert 1 <= len(predicates) <= max(1, parts)
        with duckdb.connect() as conn:
            conn.execute(f"CREATE TABLE t AS SELECT * FROM range({lo - 5}, {hi + 6}) r(k) UNION ALL SELECT NULL")
            hits = [conn.execute(f"SELECT k FROM t WHERE {p}").fetchall() for p in predicates]
        seen = sorted((k for part in hits for (k,) in part), key=lambda v: (v is None, v))
        assert seen == [*range(lo - 5, hi + 6), None]  # every key, NULL too, exactly once
        # Under a chunk's bounds (no NULL key), the first range is a plain index range.
        bounded = key_ranges("k", lo, hi, parts, nulls=False)
        assert all("NULL" not in p for p in bounded)
        with duckdb.connect() as conn:
            conn.execute(f"CREATE TABLE t AS SELECT * FROM range({lo - 5}, {hi + 6}) r(k)")
            hits = [conn.execute(f"SELECT k FROM t WHERE {p}").fetchall() for p in bounded]
        assert sorted(k for part in hits for (k,) in part) == list(range(lo - 5, hi + 6))


def test_arrow_reader_key_ranges_follow_a_sample_of_the_keys():
    """With the source's histogram of a clustered key, ranges hold similar numbers of
    keys (equal widths would put every key in the first and last range) and still
    cover every key, NULL too, exactly once."""
    import duckdb

    from spark_jobs.arrow_reader import key_ranges

    keys = [*range(1, 1001), *range(10**9, 10**9 + 1000)]
    sample = keys[::20]
    for predicates, expect_balanced in ((key_ranges("k", 1, keys[-1], 4, sample=sample), True),
                                        (key_ranges("k", 1, keys[-1], 4), False),
                                        (key_ranges("k", 1, keys[-1], 4, sample=sample[:2]), False)):  # fmt: skip
        with duckdb.connect() as conn:
            conn.execute("CREATE TABLE t (k BIGINT)")
            conn.executemany("INSERT INTO t VALUES (?)", [[k] for k in [*keys, None]])
            counts = [conn.execute(f"SELECT count(*) FROM t WHERE {p}").fetchone()[0] for p in predicates]
            assert conn.execute(
                "SELECT count(*) FROM t WHERE " + " OR ".join(f"({p})" for p in predicates)
            ).fetchone()[0] == len(keys) + 1
        assert sum(counts) == len(keys) + 1  # exactly once
        assert (max(counts) <= 0.3 * len(keys)) is expect_balanced, counts
