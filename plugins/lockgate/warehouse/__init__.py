"""The warehouse: DuckDB (a file, the default) or PostgreSQL (``LOCKGATE_WAREHOUSE_CONN_ID``),
behind one interface (:class:`~lockgate.warehouse.base.Warehouse`).

The stages call the functions re-exported here with the session :func:`connect` yields;
nothing outside this package knows which warehouse it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lockgate.identifiers import sql_ident as q
from lockgate.warehouse.audit import (
    get_state,
    get_watermark,
    newer_reads,
    read_positions,
    recent_profiles,
    record_run,
    run_status,
    save_state,
)
from lockgate.warehouse.base import Batch, QueryError, Staged, Warehouse
from lockgate.warehouse.duck import LOCK_WAIT_SECONDS, RESERVED_SCHEMAS, open_duckdb
from lockgate.warehouse.load import load_files, propagate_deletes
from lockgate.warehouse.schema import check_schema, reconcile_schema, table_columns

__all__ = [
    "LOCK_WAIT_SECONDS", "RESERVED_SCHEMAS", "Batch", "QueryError", "Staged", "Warehouse", "check_schema", "connect",
    "get_state", "get_watermark", "load_files", "newer_reads", "propagate_deletes", "read_positions", "recent_profiles",
    "reconcile_schema", "record_run", "refresh_lake_view", "run_status", "save_state", "table_columns",
    "table_fingerprint", "exists", "lake_catalog", "q",
]  # fmt: skip


@contextmanager
def connect(target, *, read_only: bool = False, wait: float = LOCK_WAIT_SECONDS) -> Iterator[Warehouse]:
    """Open the warehouse: ``target`` is the :class:`~lockgate.settings.Settings` (DuckDB
    or PostgreSQL, as configured) or a DuckDB file's path."""
    if isinstance(target, str | Path):
        with open_duckdb(target, read_only=read_only, wait=wait) as wh:
            yield wh
    elif target.warehouse_conn_id:
        from lockgate.warehouse.postgres import open_postgres

        with open_postgres(target, read_only=read_only) as wh:
            yield wh
    else:
        with open_duckdb(target.warehouse, read_only=read_only, wait=wait) as wh:
            yield wh


@contextmanager
def lake_catalog(settings) -> Iterator[Warehouse]:
    """An in-memory DuckDB holding every source table's ``lake.<source>__<table>`` view:
    the lake queried with SQL, whichever warehouse loads it."""
    import duckdb

    from lockgate.config import load_sources
    from lockgate.lake.catalog import current_partitions
    from lockgate.lake.duck import attach_lake
    from lockgate.warehouse.duck import DuckWarehouse

    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        attach_lake(conn, settings)
        wh = DuckWarehouse(conn, Path(":memory:"))
        for config in load_sources(settings.sources_dir).values():
            for table in config.tables:
                partitions = current_partitions(settings.lake_root, config.source, table.name, table.incremental)
                refresh_lake_view(wh, config.source, table.name, partitions)
        yield wh
    finally:
        conn.close()


def exists(settings) -> bool:
    """Whether there is a warehouse to read (a server always is; a file once created)."""
    return bool(settings.warehouse_conn_id) or Path(settings.warehouse).exists()


def table_fingerprint(wh: Warehouse, schema: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent checksum of every row's values."""
    return wh.fingerprint(schema, table)


def refresh_lake_view(wh: Warehouse, source: str, table: str, partitions) -> None:
    """Point ``lake.<source>__<table>`` at the lake's current raw files, partitioned by
    interval (:mod:`lockgate.lake.catalog`): query the lake directly."""
    from lockgate.lake.catalog import view_sql

    wh.lake_view(f"{source}__{table}", view_sql(partitions))
