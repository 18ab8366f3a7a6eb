"""Short Airflow CLI commands on SQLite metadata take the write lock when a transaction
begins (the end-to-end case, beside a real scheduler: tests/e2e/test_make_airflow_ui.py)."""

from __future__ import annotations

import sqlite3

import pytest
from lockgate import metadata_lock
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

SQLITE = "sqlite:////tmp/airflow.db?timeout=60"


@pytest.mark.parametrize(
    ("argv", "url", "expected"),
    [
        (["/x/.venv/bin/airflow", "backfill", "create", "--dag-id", "d"], SQLITE, True),
        (["airflow", "dags", "trigger", "d"], SQLITE, True),
        (["airflow", "tasks", "clear", "d"], SQLITE, True),
        (["airflow", "dags", "test", "d"], SQLITE, False),  # runs tasks in its own process
        (["airflow", "tasks", "test", "d", "t"], SQLITE, False),
        (["airflow", "scheduler"], SQLITE, False),
        (["airflow", "api-server", "--port", "8080"], SQLITE, False),
        (["airflow", "dag-processor"], SQLITE, False),
        (["airflow", "standalone"], SQLITE, False),
        (["airflow", "db", "migrate"], SQLITE, False),
        (["airflow"], SQLITE, False),
        (["airflow", "dags", "trigger", "d"], "postgresql://airflow@db/airflow", False),
        (["pytest", "dags", "trigger"], SQLITE, False),
    ],
)
def test_which_processes_take_the_write_lock_first(argv, url, expected):
    assert metadata_lock.takes_write_lock_first(argv, url) is expected


@pytest.fixture
def installed():
    assert metadata_lock.install(["airflow", "dags", "trigger", "d"], SQLITE)
    assert metadata_lock.install(["airflow", "dags", "trigger", "d"], SQLITE)  # a second import: once
    yield
    event.remove(Pool, "connect", metadata_lock._driver_leaves_transactions_to_sqlalchemy)
    for name, listener in (("begin", metadata_lock._begin_immediate), ("commit", metadata_lock._released),
                           ("rollback", metadata_lock._released)):  # fmt: skip
        event.remove(Engine, name, listener)
    metadata_lock._immediate.clear()


def test_a_transaction_holds_the_write_lock_from_its_first_read(installed, tmp_path):
    """The scheduler (another connection) cannot commit between this transaction's read
    and its write, which SQLite would otherwise answer with "database is locked"."""
    database = tmp_path / "airflow.db"
    engine = create_engine(f"sqlite:///{database}?timeout=60")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # as Airflow sets it: readers do not block
        conn.execute(text("CREATE TABLE dag_run (id INTEGER)"))
        conn.commit()
    scheduler = sqlite3.connect(database, timeout=0.2, isolation_level=None)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dag_run")).scalar() == 0
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            scheduler.execute("INSERT INTO dag_run VALUES (99)")
        # A second session of the same process begins deferred instead of waiting for
        # the lock its own process holds.
        with engine.connect() as nested:
            assert nested.execute(text("SELECT count(*) FROM dag_run")).scalar() == 0
        conn.execute(text("INSERT INTO dag_run VALUES (1)"))
        conn.commit()
    scheduler.execute("INSERT INTO dag_run VALUES (2)")  # released at commit
    assert [r[0] for r in scheduler.execute("SELECT id FROM dag_run ORDER BY id")] == [1, 2]
    engine.dispose()


def test_without_it_a_read_then_write_fails_when_another_connection_commits(tmp_path):
    """What the CLI met beside a busy scheduler: the busy timeout does not help."""
    database = tmp_path / "airflow.db"
    engine = create_engine(f"sqlite:///{database}?timeout=60")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.execute(text("CREATE TABLE dag_run (id INTEGER)"))
        conn.commit()
    scheduler = sqlite3.connect(database, timeout=60, isolation_level=None)
    with engine.connect() as conn:
        conn.exec_driver_sql("SAVEPOINT sp")  # Airflow's begin_nested opens the transaction
        conn.execute(text("SELECT count(*) FROM dag_run")).scalar()
        scheduler.execute("INSERT INTO dag_run VALUES (99)")
        with pytest.raises(Exception, match="database is locked"):
            conn.execute(text("INSERT INTO dag_run VALUES (1)"))
    engine.dispose()
