"""One consistent view of the source per chunk: what is counted is what is read.

An extract counts a chunk's rows (and sums its ``reconcile_sum`` column) and reads
them over other connections — Spark's JDBC tasks or the Arrow reader's tasks. Unless
all of them see the same state of the source, an UPDATE or DELETE committed in
between makes the count disagree with the rows, and the sealed batch would fail its
checks on every retry. So each chunk is read in one of two ways:

- **PostgreSQL: an exported snapshot.** A driver-side connection opens
  ``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY``, exports its snapshot
  (``pg_export_snapshot()``) and, in that same transaction, counts and sums the chunk
  and reads the source's clock and its oldest open transaction. Every reader of the
  chunk starts its own transaction with ``SET TRANSACTION ISOLATION LEVEL REPEATABLE
  READ`` and ``SET TRANSACTION SNAPSHOT '<id>'`` (the Arrow reader's tasks directly,
  Spark's JDBC reader through ``sessionInitStatement``: its PostgreSQL dialect turns
  autocommit off when ``fetchsize`` > 0, before running that statement), so they see
  exactly the counted rows. The exporting transaction stays open until the chunk is on
  disk (a snapshot can only be imported while it is), then ends. It holds back VACUUM
  for that long, like any long read; chunks bound it.
- **Other engines (MariaDB/MySQL, SQLite): a stable count.** No snapshot can be shared
  between connections, so the chunk is counted (and summed) just before and just after
  it is read; if the two differ, or the rows read are not that count, the source
  changed during the read and the chunk is read again (a bounded number of times).

Lockgate's own read sessions on PostgreSQL carry the application name
:data:`APPLICATION_NAME`; they never write, so the read horizon (the oldest open
transaction, whose rows may still appear behind a read) leaves them out.
"""

from __future__ import annotations

import importlib.util
import re
from contextlib import suppress
from typing import Any

from lockgate.errors import SourceError
from lockgate.sources import JdbcSource

#: ``application_name`` of Lockgate's read-only PostgreSQL sessions.
APPLICATION_NAME = "lockgate-read"
#: How often a chunk of a source without shareable snapshots is read before the
#: extract gives up (the next attempt of the task reads it again).
STABLE_READ_ATTEMPTS = 3

_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$")


class ChunkReadError(SourceError):
    """A chunk's rows do not match the source's count for it; the chunk is not kept."""


def unavailable_reason(source: JdbcSource) -> str | None:
    """Why the chunks of this source cannot share an exported snapshot (``None``: they can)."""
    if source.engine != "postgres":
        return f"{source.engine} has no snapshot that other connections can share"
    if not source.host:
        return "the connection has no host for a native PostgreSQL connection"
    if source.properties:
        # sslmode, currentSchema, ...: a libpq connection would not apply them, and could
        # count another table or refuse to connect where the JDBC readers do not.
        return "the connection sets JDBC properties a native PostgreSQL connection would not apply"
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed"
    return None


def import_statements(snapshot_id: str) -> list[str]:
    """What a reader runs first in its transaction to see the exported snapshot."""
    if not _SNAPSHOT_ID.match(snapshot_id):
        raise ValueError(f"not a PostgreSQL snapshot id: {snapshot_id!r}")
    return ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", f"SET TRANSACTION SNAPSHOT '{snapshot_id}'"]


def session_init_statement(snapshot_id: str) -> str:
    """The JDBC reader's ``sessionInitStatement`` that imports the snapshot."""
    return "; ".join(import_statements(snapshot_id))


def reader_uri(source: JdbcSource) -> str:
    """The libpq URI of a Lockgate read session (holds the password: never log it)."""
    return f"{source.libpq_uri()}?application_name={APPLICATION_NAME}"


class ExportedSnapshot:
    """A driver-side read-only transaction whose snapshot the chunk's readers import.

    Use as a context manager; the transaction ends (and the snapshot with it) on exit."""

    def __init__(self, source: JdbcSource) -> None:
        import psycopg

        self._conn = psycopg.connect(source.libpq_uri(), autocommit=True, application_name=APPLICATION_NAME)
        try:
            # The session must outlive the chunk's read, however long: a server-side
            # idle-in-transaction timeout would end the snapshot under the readers.
            self._conn.execute("SET idle_in_transaction_session_timeout = 0")
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self.id: str = self._conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        except BaseException:
            self._conn.close()
            raise

    def query(self, sql: str, names: list[str]) -> list[dict[str, Any]]:
        """Rows of ``sql`` in the snapshot, every value as text (or ``None``)."""
        rows = self._conn.execute(sql).fetchall()
        return [{n: None if v is None else str(v) for n, v in zip(names, row, strict=True)} for row in rows]

    def close(self) -> None:
        if self._conn.closed:
            return
        with suppress(Exception):  # a broken session has ended its transaction already
            self._conn.execute("ROLLBACK")
        self._conn.close()

    def __enter__(self) -> ExportedSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
