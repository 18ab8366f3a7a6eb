"""The embedded warehouse: one DuckDB file.

DuckDB lets one process write a database file at a time; :func:`open_duckdb` waits for
the lock, so parallel Airflow tasks take turns instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError
from lockgate.identifiers import sql_ident
from lockgate.warehouse.base import Batch, QueryError, Staged, Warehouse
from lockgate.warehouse.ddl import DDL
from lockgate.warehouse.stage import drop_stage, stage_in_duckdb

LOCK_WAIT_SECONDS = 300

#: Schemas Lockgate owns in the warehouse (besides one per source).
RESERVED_SCHEMAS = ("lockgate", "lake")


def normalise(duck_type: str) -> str:
    """A DuckDB type name as ``information_schema`` spells it."""
    t = duck_type.upper()
    if t.endswith("[]"):
        return normalise(t[:-2]) + "[]"
    return {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "INT": "INTEGER", "TEXT": "VARCHAR", "REAL": "FLOAT"}.get(t, t)


class DuckWarehouse(Warehouse):
    kind = "duckdb"

    def __init__(self, conn, path: Path) -> None:
        self.conn = conn
        self.path = path

    def execute(self, sql: str, params: list | tuple | None = None) -> Any:
        return self.conn.execute(sql, params) if params is not None else self.conn.execute(sql)

    def columns(self, schema: str, table: str) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
        return {name: normalise(dtype) for name, dtype in rows}

    def native_type(self, duck_type: str) -> str:
        return duck_type

    def comparable(self, duck_type: str) -> str:
        return normalise(duck_type)

    def stage(self, batch: Batch) -> Staged:
        # Rows are inserted in no particular order: DuckDB then writes the new row groups
        # to the file in parallel as the transaction commits, instead of keeping them for
        # the checkpoint when the connection closes (6M-row TPC-H lineitem: 7.2 s → 4.8 s
        # to a closed file). Nothing reads the physical row order; the setting stays for
        # the rest of this connection.
        self.conn.execute("SET preserve_insertion_order = false")
        return stage_in_duckdb(self.conn, batch)

    def unstage(self, staged: Staged) -> None:
        drop_stage(self.conn, staged)

    def show(self, query: str, *, max_rows: int) -> str:
        import duckdb

        try:
            relation = self.conn.sql(query)
            return str(relation.limit(max_rows)) if relation is not None else "(no rows)"
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from None

    def fingerprint(self, schema: str, table: str) -> tuple[int, str]:
        target = f"{sql_ident(schema)}.{sql_ident(table)}"
        count, digest = self.conn.execute(
            f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR FROM {target} t"
        ).fetchone()
        return int(count), str(digest)

    def lake_view(self, name: str, query: str | None) -> None:
        self.conn.execute("CREATE SCHEMA IF NOT EXISTS lake")
        view = f"lake.{sql_ident(name)}"
        if query is None:
            self.conn.execute(f"DROP VIEW IF EXISTS {view}")
        else:
            self.conn.execute(f"CREATE OR REPLACE VIEW {view} AS {query}")

    def lock_table(self, source: str, table: str) -> None:
        """One writer per file already: nothing more to take."""

    @property
    def dataset_namespace(self) -> str:
        return f"duckdb://{self.path.resolve()}"


@contextmanager
def open_duckdb(path: str | Path, *, read_only: bool = False, wait: float = LOCK_WAIT_SECONDS) -> Iterator[DuckWarehouse]:
    """Open the warehouse file, waiting for another writer's lock to go away."""
    import duckdb

    path = Path(path)
    if path.stem in RESERVED_SCHEMAS:
        # DuckDB names the catalog after the file; `lockgate.runs` would then be ambiguous.
        raise ConfigError(
            f"warehouse file {path}: the name '{path.stem}' clashes with the '{path.stem}' schema; "
            "choose another file name (e.g. warehouse.duckdb)"
        )
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        conn.execute("SET TimeZone = 'UTC'")
        if not read_only:
            conn.execute(DDL)
        _attach_lake(conn)
        yield DuckWarehouse(conn, path)
    finally:
        conn.close()


def _attach_lake(conn) -> None:
    """An S3 lake is read (load, ``lake.*`` views, ``lockgate sql``) through httpfs."""
    from lockgate.lake.duck import attach_lake
    from lockgate.settings import load_settings

    attach_lake(conn, load_settings())
