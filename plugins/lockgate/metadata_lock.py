"""Airflow CLI commands beside a running scheduler on SQLite metadata: take the write
lock when a transaction begins, so that a command waits for the scheduler instead of
failing with "database is locked".

SQLite (write-ahead log) lets a transaction that began by reading write only if no
other connection committed since its first read; otherwise the write fails at once,
without the busy timeout's wait. ``airflow backfill create`` reads the latest run of a
date and then inserts it, in a savepoint that opens the transaction, while the
scheduler commits several times a second: it failed that way, with the backfill and
its first runs already committed. A transaction begun with ``BEGIN IMMEDIATE`` holds
the write lock from its start, and waiting for that lock does honour the busy timeout.

Only short CLI commands do this (``airflow dags trigger``, ``backfill create``,
``tasks clear``, …). The long-running services and the commands that run tasks in
their own process keep SQLite's default: holding the write lock through them would
stall the scheduler. :mod:`airflow_local_settings` calls :func:`install` in every
Airflow process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool

#: Commands that keep SQLite's deferred transactions: the services, the commands that
#: run tasks (``dags test``, ``tasks test``) and the schema migrations.
KEEP_DEFERRED = {
    "api-server",
    "celery",
    "dag-processor",
    "db",
    "scheduler",
    "standalone",
    "triggerer",
    "webserver",
}
RUNS_TASKS = {("dags", "test"), ("tasks", "test")}

_immediate: set[int] = set()  # connections of this process holding the write lock


def takes_write_lock_first(argv: Sequence[str], metadata_url: str) -> bool:
    """Is this an ``airflow`` CLI command on SQLite metadata that should begin its
    transactions with the write lock?"""
    if not metadata_url.startswith("sqlite") or os.path.basename(argv[0]) != "airflow":
        return False
    words = [a for a in argv[1:] if not a.startswith("-")]
    return bool(words) and words[0] not in KEEP_DEFERRED and tuple(words[:2]) not in RUNS_TASKS


def install(argv: Sequence[str], metadata_url: str) -> bool:
    """Make this process's SQLite transactions begin with ``BEGIN IMMEDIATE`` when
    :func:`takes_write_lock_first`; returns whether it did."""
    if not takes_write_lock_first(argv, metadata_url):
        return False
    if event.contains(Engine, "begin", _begin_immediate):  # Airflow's plugin loader imports
        return True  # airflow_local_settings a second time
    event.listen(Pool, "connect", _driver_leaves_transactions_to_sqlalchemy)
    event.listen(Engine, "begin", _begin_immediate)
    event.listen(Engine, "commit", _released)
    event.listen(Engine, "rollback", _released)
    return True


def _driver_leaves_transactions_to_sqlalchemy(dbapi_connection, _record) -> None:
    # pysqlite would otherwise emit its own deferred BEGIN before the first write.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.isolation_level = None


def _begin_immediate(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    # A second session of the same process (one nested in another) must not wait for
    # the lock its own process holds: it begins deferred, as before.
    if _immediate:
        conn.exec_driver_sql("BEGIN")
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    _immediate.add(id(conn.connection.dbapi_connection))


def _released(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        _immediate.discard(id(conn.connection.dbapi_connection))
