"""Fixtures for the reprocessing scenarios: a real source database per engine. (The
Airflow stack shared by every test that runs DAGs through Airflow is in
``tests/airflow_stack.py``.)"""

from __future__ import annotations

import sqlite3

import pytest

from tests.reprocessing.harness import Source


@pytest.fixture
def pg_source(pg_conn, pg_database, lake_env, spark, monkeypatch):
    source = Source("postgres", pg_conn, pg_database, lake_env, spark)
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", source.connection_uri)
    return source


@pytest.fixture
def maria_source(mariadb_conn, mariadb_database, lake_env, spark, monkeypatch):
    source = Source("mariadb", mariadb_conn, mariadb_database, lake_env, spark)
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", source.connection_uri)
    return source


@pytest.fixture
def sqlite_source(tmp_path, lake_env, spark, monkeypatch):
    path = tmp_path / "source.db"
    conn = sqlite3.connect(path, isolation_level=None)
    source = Source("sqlite", conn, str(path), lake_env, spark)
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", source.connection_uri)
    yield source
    conn.close()


@pytest.fixture(params=["postgres", "mariadb"])
def any_source(request):
    """The scenario runs once against PostgreSQL and once against MariaDB."""
    return request.getfixturevalue("pg_source" if request.param == "postgres" else "maria_source")
