"""The server warehouse: PostgreSQL through an Airflow connection (the ``postgres``
provider's :class:`PostgresHook`).

A load stages the batch the Redshift way: DuckDB reads the sealed Parquet files (and
sets aside quarantined rows), writes them as N CSV parts, and N connections ``COPY …
FROM STDIN`` them in parallel into an unlogged staging table; the load's statements
then apply the staging table in the caller's one transaction. N is the table's
``load_parallelism`` (default: the cores), capped by the warehouse's connection budget
(``LOCKGATE_WAREHOUSE_MAX_CONNECTIONS``), which holds across processes: each copying
connection holds one of the budget's advisory-lock slots.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lockgate import faults
from lockgate.errors import ConfigError, TypeMappingError
from lockgate.identifiers import sql_ident, sql_text
from lockgate.warehouse.base import Batch, QueryError, Staged, Warehouse
from lockgate.warehouse.ddl import DDL
from lockgate.warehouse.duck import normalise
from lockgate.warehouse.stage import STAGE, stage_in_duckdb

log = logging.getLogger("lockgate")

STAGING_SCHEMA = "lockgate_staging"
#: advisory-lock key spaces (two-int form): DDL bootstrap, per-table loads, copy slots.
_DDL_LOCK, _TABLE_LOCK, _SLOT_LOCK = 0x4C47, 0x4C48, 0x4C49
_DDL_DIGEST = hashlib.sha256(DDL.encode()).hexdigest()[:16]

_TO_PG = {
    "BIGINT": "bigint", "INTEGER": "integer", "SMALLINT": "smallint", "TINYINT": "smallint", "VARCHAR": "text",
    "BOOLEAN": "boolean", "DOUBLE": "double precision", "FLOAT": "real", "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamptz", "TIMESTAMP": "timestamp", "BLOB": "bytea", "UUID": "uuid",
    "JSON": "jsonb",
}  # fmt: skip
_FROM_PG = {
    "bigint": "BIGINT", "integer": "INTEGER", "smallint": "SMALLINT", "text": "VARCHAR",
    "character varying": "VARCHAR", "boolean": "BOOLEAN", "double precision": "DOUBLE", "real": "FLOAT",
    "date": "DATE", "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "timestamp without time zone": "TIMESTAMP", "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "timestamp": "TIMESTAMP", "bytea": "BLOB", "uuid": "UUID", "jsonb": "JSON", "json": "JSON",
}  # fmt: skip


def pg_type(duck_type: str) -> str:
    """The PostgreSQL column type for a DuckDB-vocabulary type (lists become arrays)."""
    t = normalise(duck_type)
    if t.endswith("[]"):
        return pg_type(t[:-2]) + "[]"
    match = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t)
    if match:
        return f"numeric({match.group(1)},{match.group(2)})"
    if t not in _TO_PG:
        raise ConfigError(f"warehouse type {duck_type} has no PostgreSQL mapping")
    return _TO_PG[t]


def duck_vocabulary(pg: str) -> str:
    """A PostgreSQL ``format_type`` as the DuckDB-vocabulary type it holds."""
    if pg.endswith("[]"):
        return duck_vocabulary(pg[:-2]) + "[]"
    match = re.fullmatch(r"numeric\((\d+),(\d+)\)", pg)
    if match:
        return f"DECIMAL({match.group(1)},{match.group(2)})"
    return _FROM_PG.get(re.sub(r"\(\d+\)$", "", pg), pg.upper())


def placeholders(sql: str, params: Any) -> str:
    """``?`` placeholders (DuckDB's) as psycopg's ``%s``, outside quoted text; a literal
    ``%`` doubled when parameters are passed."""
    if params is None:
        return sql
    out, quote = [], None
    for ch in sql:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


def raw_connection(conn_id: str):
    """A new autocommit psycopg (3) connection in UTC, from the provider's hook (which
    uses psycopg 3 when it is installed); a failure names the connection id only."""
    try:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    except Exception as exc:  # AirflowNotFoundException, OperationalError (host, port, db; no password)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"the warehouse's Airflow connection '{conn_id}' cannot be used: {detail}") from None
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
    return conn


class PostgresWarehouse(Warehouse):
    kind = "postgres"

    def __init__(self, conn, conn_id: str, settings) -> None:
        self.conn = conn
        self.conn_id = conn_id
        self.settings = settings

    def execute(self, sql: str, params: list | tuple | None = None) -> Any:
        cur = self.conn.cursor()
        cur.execute(placeholders(sql, params), params)
        return cur

    def columns(self, schema: str, table: str) -> dict[str, str]:
        # format_type names every array `integer[]`; the declared dimensions (`integer[][]`
        # for INTEGER[][]) are in attndims, else a nested list column would be drift on every load.
        rows = self.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) || repeat('[]', greatest(a.attndims - 1, 0)) "
            "FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [schema, table],
        ).fetchall()
        return {name: duck_vocabulary(dtype) for name, dtype in rows}

    def native_type(self, duck_type: str) -> str:
        return pg_type(duck_type)

    def comparable(self, duck_type: str) -> str:
        return duck_vocabulary(pg_type(duck_type))

    def stage(self, batch: Batch) -> Staged:
        return ParallelCopy(self, batch).run()

    def unstage(self, staged: Staged) -> None:
        # In the load's transaction: a rolled-back load leaves it to the next load's sweep.
        self.execute(f"DROP TABLE IF EXISTS {staged.relation}")

    def show(self, query: str, *, max_rows: int) -> str:
        import psycopg

        try:
            cur = self.execute(query)
        except psycopg.Error as exc:
            raise QueryError(str(exc).strip()) from None
        if cur.description is None:
            return "(no rows)"
        names = [d[0] for d in cur.description]
        rows = [["NULL" if v is None else str(v) for v in row] for row in cur.fetchmany(max_rows)]
        widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
        lines = [" | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))]
        lines.append("-+-".join("-" * w for w in widths))
        lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join([*lines, f"({len(rows)} rows shown)"])

    def fingerprint(self, schema: str, table: str) -> tuple[int, str]:
        target = f"{sql_ident(schema)}.{sql_ident(table)}"
        count, digest = self.execute(
            "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0)::text "
            f"FROM {target} t"
        ).fetchone()
        return int(count), str(digest)

    def lake_view(self, name: str, query: str | None) -> None:
        """PostgreSQL cannot read Parquet: the lake is queried from DuckDB (see the README)."""

    def ensure_schema(self, name: str) -> None:
        """Two loads creating one schema at once would collide in PostgreSQL's catalog
        (``IF NOT EXISTS`` does not wait for the other): they take turns."""
        if self.execute("SELECT count(*) FROM pg_namespace WHERE nspname = ?", [name]).fetchone()[0]:
            return
        self.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", [_DDL_LOCK, name])
        super().ensure_schema(name)

    def lock_table(self, source: str, table: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", [_TABLE_LOCK, f"{source}.{table}"])

    @property
    def dataset_namespace(self) -> str:
        info = self.conn.info
        return f"postgres://{info.host}:{info.port}/{info.dbname}"


class ParallelCopy:
    """One batch into an unlogged staging table by N parallel ``COPY FROM STDIN``."""

    def __init__(self, wh: PostgresWarehouse, batch: Batch) -> None:
        self.wh, self.batch = wh, batch
        self.prefix = hashlib.sha256(f"{batch.source}\0{batch.table}".encode()).hexdigest()[:16]
        self.relation = f"{STAGING_SCHEMA}.{sql_ident(f'{self.prefix}_{uuid.uuid4().hex[:8]}')}"
        self.folder = wh.settings.stage_root / "pg_copy" / self.prefix / uuid.uuid4().hex[:8]

    def run(self) -> Staged:
        self._sweep()
        workers = copy_parallelism(self.wh.settings, self.batch.parallel)
        try:
            rows, quarantined, total, parts, keys = self._export(workers)
            self._create()
            copied = self._copy(parts, workers)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.folder.parent.rmdir()  # the table's folder, when no other load uses it
        if copied != rows - quarantined:
            raise ConfigError(
                f"{self.batch.source}.{self.batch.table}: PostgreSQL took {copied} rows from the COPY streams "
                f"but the batch has {rows - quarantined} to load; nothing was loaded"
            )
        return Staged(self.relation, rows, quarantined, total, parts=len(parts), distinct_keys=keys)

    def _sweep(self) -> None:
        """What a killed load of this table left (under the table lock): its staging
        tables, and its CSV parts when it ran on this machine."""
        shutil.rmtree(self.folder.parent, ignore_errors=True)
        stale = self.wh.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = ? AND tablename LIKE ?",
            [STAGING_SCHEMA, self.prefix + "\\_%"],
        ).fetchall()
        for (name,) in stale:
            self.wh.execute(f"DROP TABLE IF EXISTS {STAGING_SCHEMA}.{sql_ident(name)}")

    def _export(self, workers: int) -> tuple[int, int, str | None, list[Path], int | None]:
        import duckdb

        from lockgate.lake.duck import attach_lake

        self.folder.mkdir(parents=True, exist_ok=True)
        duck = duckdb.connect()
        try:
            duck.execute("SET TimeZone = 'UTC'")
            duck.execute(f"SET threads = {workers}")
            attach_lake(duck, self.wh.settings)
            staged = stage_in_duckdb(duck, self.batch)
            if staged.rows - staged.quarantined == 0:
                return staged.rows, staged.quarantined, staged.sum, [], staged.distinct_keys
            select = ", ".join(_csv_expr(c, self.batch.types[c]) for c in self.batch.columns)
            duck.execute(
                f"COPY (SELECT {select} FROM {STAGE}) TO {sql_text(str(self.folder))} "
                "(FORMAT csv, HEADER false, FORCE_QUOTE *, PER_THREAD_OUTPUT true)"
            )
        finally:
            duck.close()
        parts = sorted(p for p in self.folder.iterdir() if p.stat().st_size)
        return staged.rows, staged.quarantined, staged.sum, parts, staged.distinct_keys

    def _create(self) -> None:
        columns = ", ".join(f"{sql_ident(c)} {pg_type(self.batch.types[c])}" for c in self.batch.columns)
        conn = raw_connection(self.wh.conn_id)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE UNLOGGED TABLE {self.relation} ({columns})")
        finally:
            conn.close()

    def _copy(self, parts: list[Path], workers: int) -> int:
        """COPY the parts in parallel; returns the rows PostgreSQL took."""
        if not parts:
            return 0
        work: queue.Queue[Path] = queue.Queue()
        for part in parts:
            work.put(part)
        columns = ", ".join(sql_ident(c) for c in self.batch.columns)
        statement = f"COPY {self.relation} ({columns}) FROM STDIN (FORMAT csv)"
        errors: list[BaseException] = []
        copied: list[int] = []
        threads = [
            threading.Thread(target=self._copier, args=(work, statement, errors, copied), name=f"lockgate-copy-{i}")
            for i in range(min(workers, len(parts)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise self._explain(errors[0]) from errors[0]
        self.wh.execute(f"ANALYZE {self.relation}")
        return sum(copied)

    def _explain(self, exc: BaseException) -> BaseException:
        """A value PostgreSQL cannot store, named by table and column (not retried); any
        other failure as it came (a lost connection is worth a retry)."""
        columns = _nul_columns(self.batch) if "0x00" in str(exc) else {}
        if not columns:
            return exc
        named = ", ".join(f"'{c}' ({n} rows)" for c, n in columns.items())
        return TypeMappingError(
            f"source '{self.batch.source}', table '{self.batch.table}': column {named} holds text with a NUL "
            "character (0x00), which PostgreSQL text cannot store; nothing was loaded. Remove it in the source "
            "or a source view (e.g. replace(col, chr(0), '')) or exclude the column (exclude_columns)"
        )

    def _copier(self, work: queue.Queue, statement: str, errors: list[BaseException], copied: list[int]) -> None:
        try:
            with copy_slot(self.wh.conn_id, self.wh.settings.warehouse_max_connections) as conn:
                while not errors:
                    try:
                        part = work.get_nowait()
                    except queue.Empty:
                        return
                    with conn.cursor() as cur:
                        with cur.copy(statement) as copy, part.open("rb") as data:
                            while chunk := data.read(1 << 20):
                                copy.write(chunk)
                        copied.append(cur.rowcount)
                    faults.hit("load.copied_part", self.batch.table)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
            errors.append(exc)


def _nul_columns(batch: Batch) -> dict[str, int]:
    """Text (and text array) columns of the batch holding a NUL character, with counts."""
    import duckdb

    tests = {
        c: f"contains({sql_ident(c)}, chr(0))" if t == "VARCHAR"
        else f"list_bool_or(list_transform({sql_ident(c)}, lockgate_x -> contains(lockgate_x, chr(0))))"
        for c, t in ((c, normalise(batch.types[c])) for c in batch.columns) if t in ("VARCHAR", "VARCHAR[]")
    }  # fmt: skip
    if not tests or not batch.files:
        return {}
    counts = ", ".join(f"count(*) FILTER (WHERE {test})" for test in tests.values())
    files = "[" + ", ".join(sql_text(f) for f in batch.files) + "]"
    with duckdb.connect() as duck:
        from lockgate.lake.duck import attach_lake
        from lockgate.settings import load_settings

        attach_lake(duck, load_settings())
        found = duck.execute(f"SELECT {counts} FROM read_parquet({files})").fetchone()
    return {c: int(n) for c, n in zip(tests, found, strict=True) if n}


def copy_parallelism(settings, wanted: int | None) -> int:
    """N: the table's ``load_parallelism`` (default: the cores), within the budget."""
    return max(1, min(wanted or os.cpu_count() or 1, settings.warehouse_max_connections))


@contextmanager
def copy_slot(conn_id: str, budget: int, *, poll: float = 0.2) -> Iterator[Any]:
    """A connection holding one of the warehouse's ``budget`` copy slots (waits for one)."""
    conn = raw_connection(conn_id)
    try:
        with conn.cursor() as cur:
            while True:
                for slot in range(budget):
                    cur.execute("SELECT pg_try_advisory_lock(%s, %s)", [_SLOT_LOCK, slot])
                    if cur.fetchone()[0]:
                        yield conn
                        return
                time.sleep(poll)
    finally:
        conn.close()  # ends the session: its slot lock goes with it


def _csv_expr(column: str, duck_type: str) -> str:
    """The column as PostgreSQL's CSV input reads it (``bytea`` hex, array literals)."""
    return f"{_pg_text(sql_ident(column), normalise(duck_type), 0)} AS {sql_ident(column)}"


def _pg_text(expr: str, duck_type: str, depth: int) -> str:
    if duck_type == "BLOB":
        return f"('\\x' || hex({expr}))"
    if not duck_type.endswith("[]"):
        return expr
    var = f"lockgate_x{depth}"
    inner = duck_type[:-2]
    if inner.endswith("[]"):
        element = _pg_text(var, inner, depth + 1)
    elif inner == "BLOB":
        element = f"('\"\\\\x' || hex({var}) || '\"')"
    else:
        escaped = f"replace(replace(CAST({var} AS VARCHAR), '\\', '\\\\'), '\"', '\\\"')"
        element = f"('\"' || {escaped} || '\"')"
    items = f"list_transform({expr}, {var} -> CASE WHEN {var} IS NULL THEN 'NULL' ELSE {element} END)"
    return f"(CASE WHEN {expr} IS NULL THEN NULL ELSE '{{' || array_to_string({items}, ',') || '}}' END)"


_bootstrapped: set[str] = set()


def _bootstrap(conn, conn_id: str) -> None:
    """Lockgate's tables, created or upgraded once per warehouse and DDL version (the
    ``ALTER … IF NOT EXISTS`` statements lock ``lockgate.runs`` even when they do nothing)."""
    key = f"{conn_id}:{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    if key in _bootstrapped:
        return
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('lockgate.ddl_version') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute("SELECT count(*) FROM lockgate.ddl_version WHERE digest = %s", [_DDL_DIGEST])
            if cur.fetchone()[0]:
                _bootstrapped.add(key)
                return
        cur.execute("BEGIN")
        cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_DDL_LOCK])
        cur.execute(DDL)
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {STAGING_SCHEMA}")
        cur.execute("CREATE TABLE IF NOT EXISTS lockgate.ddl_version (digest VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
        cur.execute("INSERT INTO lockgate.ddl_version VALUES (%s, now()) ON CONFLICT DO NOTHING", [_DDL_DIGEST])
        cur.execute("COMMIT")
    _bootstrapped.add(key)


@contextmanager
def open_postgres(settings, *, read_only: bool = False) -> Iterator[PostgresWarehouse]:
    conn = raw_connection(settings.warehouse_conn_id)
    try:
        if read_only:
            with conn.cursor() as cur:
                cur.execute("SET default_transaction_read_only = on")
        else:
            _bootstrap(conn, settings.warehouse_conn_id)
        yield PostgresWarehouse(conn, settings.warehouse_conn_id, settings)
    finally:
        conn.close()
