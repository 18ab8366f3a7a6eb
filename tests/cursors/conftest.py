"""Fixtures for the cursor scenarios: one real source database per engine (PostgreSQL,
MariaDB, SQLite), wrapped in the reprocessing harness."""

from __future__ import annotations

import sqlite3

import pytest

from tests.reprocessing.harness import Source


@pytest.fixture
def pg_src(pg_conn, pg_database, lake_env, spark, monkeypatch):
    source = Source("postgres", pg_conn, pg_database, lake_env, spark)
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", source.connection_uri)
    return source


@pytest.fixture
def maria_src(mariadb_conn, mariadb_database, lake_env, spark, monkeypatch):
    source = Source("mariadb", mariadb_conn, mariadb_database, lake_env, spark)
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", source.connection_uri)
    return source


@pytest.fixture
def sqlite_src(tmp_path, lake_env, spark, monkeypatch):
    path = tmp_path / "source.db"
    conn = sqlite3.connect(path, isolation_level=None)
    source = Source("sqlite", conn, str(path), lake_env, spark)
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", source.connection_uri)
    yield source
    conn.close()


@pytest.fixture(params=["postgres", "mariadb", "sqlite"])
def src(request):
    """The scenario runs against PostgreSQL, MariaDB and SQLite."""
    return request.getfixturevalue({"postgres": "pg_src", "mariadb": "maria_src", "sqlite": "sqlite_src"}[request.param])
