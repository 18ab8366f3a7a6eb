"""Extract one table's slice over JDBC into a sealed raw lake folder.

Runnable inside an Airflow task (``run_extract``) or on its own::

    spark-submit spark_jobs/extract.py --source shop --table orders \\
        --interval-start 2026-01-01T00:00:00+00:00 --interval-end 2026-01-02T00:00:00+00:00 \\
        --run-id manual_1

Steps: ask the source for the slice's key bounds and row count, read the slice with
partitioned parallel JDBC reads (``partitionColumn`` between those bounds, ``fetchsize``),
fix types the engine would map lossily, write Parquet to a temporary folder, then seal
it with a manifest (rows, schema, cursor range, SHA-256 per file).

Each key-range chunk is counted and read in one consistent view of the source (an
exported snapshot on PostgreSQL, a count that is stable across the read elsewhere: see
:mod:`lockgate.snapshot`), so the manifest's ``source_rows``/``source_sum`` describe
exactly the rows in the folder, however long the chunks took or how far apart they ran.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from lockgate import cursors, faults, lake, snapshot
from lockgate.config import SourceConfig, TableConfig, load_source
from lockgate.cursors import Cursor
from lockgate.errors import SourceError
from lockgate.incremental import Incremental, Slice, TableState, parse_time
from lockgate.lake import s3
from lockgate.records import Plan, SliceStats
from lockgate.settings import Settings, load_settings
from lockgate.sources import JdbcSource, resolve_source
from lockgate.typemap import spark_name

from spark_jobs import arrow_reader
from spark_jobs.columns import ReadSetup, hash_in_spark, prepare_read, relation
from spark_jobs.transforms import apply_casts

#: A partition should carry at least this many rows; smaller slices use fewer reads.
MIN_ROWS_PER_PARTITION = 5_000
#: Modules whose exceptions are the source's (or the reader's) errors, to be explained.
_CLIENT_ERRORS = ("py4j", "pyspark", "adbc_driver", "psycopg")
_PY_ERROR = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning|Exit)\b.*:")
_NUMERIC = ("bigint", "int", "smallint", "tinyint", "decimal")

log = logging.getLogger("lockgate")


def slice_predicate(source: JdbcSource, window: Slice, cursor: Cursor | None = None) -> str:
    """The slice on the source (:mod:`lockgate.cursors`: kinds, zones, NULL policy)."""
    cursor = cursor or Cursor.named(window.column)
    if window.full or cursor is None:
        return "1=1"
    return cursor.source_predicate(source, window.lo, window.hi)


def null_cursor_rows(spark, source: JdbcSource, table: TableConfig, window: Slice) -> int:
    """Rows whose cursor is NULL (in no slice): ``fail`` raises naming the table and the
    count; ``include`` reads them with every slice; ``exclude`` skips them (counted)."""
    cursor = Cursor.of(table)
    if window.full or cursor is None:
        return 0
    sql = f"SELECT COUNT(*) AS n FROM {source.table_ref(table.source_name)} WHERE {cursor.null_predicate(source)}"
    count = int(_query(spark, source, sql, ["n"])[0]["n"])
    if count and cursor.null_policy == "fail":
        unreadable = " or SQLite cannot read as a time" if source.engine == "sqlite" and not cursor.epoch else ""
        raise SourceError(
            f"source {source.describe()}, table '{table.source_name}': {count} rows have a NULL cursor "
            f"({cursor.name}{unreadable}); they are in no slice and would never be read. Fix them, or set "
            "null_cursor: include (merge tables: read on every run) or exclude (skipped and counted)"
        )
    if count:
        log.warning("%s: %d rows with a NULL cursor (%s) are %sd (null_cursor)", table.source_name, count,
                    cursor.name, cursor.null_policy)  # fmt: skip
    return count


def id_ceiling(spark, source: JdbcSource, table: TableConfig, window: Slice) -> Slice:
    """An ``id`` cursor's slice gets its end when the read is planned: one above the
    highest id at or after its start (an empty slice ``[lo, lo)`` when there is none).
    The plan keeps it, so retries and the warehouse's delete window use the same range."""
    cursor = Cursor.of(table)
    if window.full or cursor is None or not cursor.ordinal or window.hi is not None:
        return window
    expr = cursor.source_expr(source)
    where = "" if window.lo is None else f" WHERE {expr} >= {cursor.source_literal(source, window.lo)}"
    sql = f"SELECT {_text(source, f'MAX({expr})')} AS top FROM {source.table_ref(table.source_name)}{where}"
    top = _query(spark, source, sql, ["top"])[0]["top"]
    if top is None:
        empty = cursors.FIRST_ID if window.lo is None else window.lo
        return replace(window, lo=empty, hi=empty, reason=f"{window.reason}; no ids there yet")
    return replace(window, hi=cursors.position(top) + 1, reason=f"{window.reason}; highest id at read time {top}")


def _text(source: JdbcSource, expression: str) -> str:
    return f"CAST({expression} AS {'CHAR' if source.engine == 'mariadb' else 'TEXT'})"


def _query(spark, source: JdbcSource, sql: str, text_columns: list[str]) -> list[dict[str, Any]]:
    """Run a small metadata query and return its rows as dicts of text.

    PostgreSQL is asked directly through ADBC when it is installed (a few milliseconds,
    where a Spark JDBC job costs a few hundred); other engines go through Spark's JDBC
    reader, every column read as text (SQLite reports no usable types for expressions,
    and text converts exactly everywhere)."""
    if arrow_reader.native_unavailable_reason(source) is None:
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(source.libpq_uri()) as conn, conn.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
        return [{c: None if v is None else str(v) for c, v in zip(text_columns, row, strict=True)} for row in rows]
    schema = ", ".join(f"{c} STRING" for c in text_columns)
    df = spark.read.format("jdbc").options(**source.jdbc_options(), query=sql, customSchema=schema).load()
    return [row.asDict() for row in df.collect()]


def _jvm_causes(exc: Exception) -> list[str]:
    """The ``Caused by:`` chain of a Spark error: Spark 4 wraps the driver's own
    message (refused connection, unknown role, ...) in a generic FAILED_JDBC error."""
    trace = str(getattr(exc, "_stackTrace", "") or "")
    causes = [line.split("Caused by:", 1)[1].strip() for line in trace.splitlines() if "Caused by:" in line]
    return causes


def _explain_source_error(exc: Exception, source: JdbcSource, table: str) -> SourceError:
    causes = _jvm_causes(exc)
    text = "\n".join([str(exc), *causes])
    lowered = text.lower()
    where = f"source {source.describe()}"
    if (
        "password authentication failed" in lowered
        or "access denied" in lowered
        or ("role" in lowered and "does not exist" in lowered)
    ):
        reason = "the credentials were refused"
    elif (
        "connection refused" in lowered
        or "refused. check that the hostname" in lowered
        or "communications link failure" in lowered
        or "could not connect" in lowered
        or "unknownhostexception" in lowered
    ):
        reason = "the database is not reachable"
    elif "unknown database" in lowered or ("database" in lowered and "does not exist" in lowered):
        reason = "the database does not exist"
    elif "does not exist" in lowered or "doesn't exist" in lowered or "no such table" in lowered:
        reason = f"table '{table}' does not exist"
    else:
        reason = ""
    # Add the driver's innermost message: it is what a DBA would search for. An error
    # in a Python task (the Arrow reader) ends with the Python exception's own line.
    python_lines = [line.strip() for line in str(exc).splitlines() if _PY_ERROR.match(line.strip())]
    if python_lines:
        detail = python_lines[-1][:400]
    else:
        detail = (causes[-1] if causes else str(exc).strip().splitlines()[0])[:400]
    reason = f"{reason} ({detail})" if reason else detail
    # Drivers may echo the password in any form (raw, percent-encoded in a URI,
    # escaped): mask every spelling of it, not just the raw one.
    from lockgate.redact import mask

    return SourceError(mask(f"{where}, table '{table}': {reason}", source.password))


def _totals(source: JdbcSource, table: TableConfig) -> tuple[list[str], list[str]]:
    """SELECT items (and their names) of a row count and the ``reconcile_sum`` column's sum."""
    select, names = ["COUNT(*) AS n"], ["n"]
    if table.reconcile_sum:
        select.append(f"{_text(source, f'SUM({source.quote(table.reconcile_sum)})')} AS total")
        names.append("total")
    return select, names


def slice_stats(spark, source: JdbcSource, table: TableConfig, predicate: str) -> SliceStats:
    """Row count and partition-column bounds of the slice, computed by the source when
    the extract is planned (they size the chunks; each chunk is counted again when it
    is read, in the view of the source its rows are read in)."""
    relation = source.table_ref(table.source_name)
    split = table.split_column
    select, names = _totals(source, table)
    if split:
        column = source.quote(split)
        select += [f"{_text(source, f'MIN({column})')} AS lo", f"{_text(source, f'MAX({column})')} AS hi"]
        names += ["lo", "hi"]
    sql = f"SELECT {', '.join(select)} FROM {relation} WHERE {predicate}"
    row = _query(spark, source, sql, names)[0]
    lo = hi = None
    if split and row["lo"] is not None:
        try:
            lo, hi = int(row["lo"]), int(row["hi"])
        except ValueError:  # not an integer column: read in one partition
            pass
    return SliceStats(rows=int(row["n"]), lo=lo, hi=hi, total=row["total"] if table.reconcile_sum else None)


def _prepare_columns(spark, source: JdbcSource, table: TableConfig, predicate: str, label: str) -> ReadSetup:
    """Column selection, type plan and the checks of :func:`spark_jobs.columns.prepare_read`
    (``label``: ``<source>.<table>`` for messages)."""
    query = partial(_query, spark, source)
    return prepare_read(spark, query, source, table, predicate, label or f"?.{table.name}")


def _partitions(table: TableConfig, rows: int, lo: int | None, hi: int | None) -> int:
    if lo is None or hi is None or rows == 0:
        return 1
    wanted = math.ceil(rows / MIN_ROWS_PER_PARTITION)
    return max(1, min(table.partitions, wanted, hi - lo + 1))


def _parse_source_time(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def source_horizon(spark, source: JdbcSource, query=None) -> dict[str, str | None]:
    """The source's clock and the start of its oldest open transaction, in UTC.

    A row written by a transaction that is still open is invisible to this read but
    may carry a cursor value older than the read; when that transaction commits, the
    row appears *behind* the slice. The watermark must not pass such a point.
    PostgreSQL: ``pg_stat_activity.xact_start`` (needs ``pg_read_all_stats`` to see
    other roles' sessions), leaving out Lockgate's own read-only sessions; MariaDB/MySQL:
    ``information_schema.innodb_trx`` (needs ``PROCESS``). SQLite has one writer at a
    time and no server clock: the local clock.

    ``query(sql, names)`` runs the statement (default: a metadata query of its own); in
    a chunk's exported snapshot, ``now()`` is that transaction's start, i.e. the
    snapshot's time, and the open transactions are those the snapshot cannot see.
    """
    if source.engine == "postgres":
        sql = (
            "SELECT CAST(now() AT TIME ZONE 'UTC' AS TEXT) AS now_utc, "
            "CAST(MIN(xact_start) AT TIME ZONE 'UTC' AS TEXT) AS oldest FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
            f"AND backend_type = 'client backend' AND application_name IS DISTINCT FROM '{snapshot.APPLICATION_NAME}'"
        )
    elif source.engine == "mariadb":
        sql = (
            "SELECT CAST(UTC_TIMESTAMP(6) AS CHAR) AS now_utc, CAST(MIN(trx_started) AS CHAR) AS oldest "
            "FROM information_schema.innodb_trx WHERE trx_mysql_thread_id <> CONNECTION_ID()"
        )
    else:
        return {"source_now": datetime.now(UTC).isoformat(), "oldest_open_transaction": None}
    run = query or (lambda text, names: _query(spark, source, text, names))
    row = run(sql, ["now_utc", "oldest"])[0]
    now, oldest = _parse_source_time(row["now_utc"]), _parse_source_time(row["oldest"])
    return {
        "source_now": now.isoformat() if now else None,
        "oldest_open_transaction": oldest.isoformat() if oldest else None,
    }


def key_histogram(spark, source: JdbcSource, table: TableConfig) -> list[int]:
    """PostgreSQL's histogram bounds of the table's integer split column (``pg_stats``,
    kept by ANALYZE; about 100 values, read without touching the table), or ``[]``."""
    relation = source.table_ref(table.source_name).replace("'", "''")
    column = table.split_column.replace("'", "''")
    sql = (
        "SELECT CAST(s.histogram_bounds AS TEXT) AS bounds FROM pg_stats s "
        "JOIN pg_namespace n ON n.nspname = s.schemaname "
        "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename "
        f"WHERE c.oid = to_regclass('{relation}') AND s.attname = '{column}'"
    )
    rows = _query(spark, source, sql, ["bounds"])
    if not rows or not rows[0]["bounds"]:
        return []
    try:
        return sorted(int(v) for v in rows[0]["bounds"].strip("{}").split(","))
    except ValueError:  # not an integer column
        return []


def plan_extract(
    spark, source: JdbcSource, table: TableConfig, window: Slice, run_id: str, version: int, *, label: str = ""
) -> Plan:
    """What to read, decided once per run version: predicate, types, counts, key-range chunks."""
    horizon = source_horizon(spark, source)
    window = id_ceiling(spark, source, table, window)
    null_rows = null_cursor_rows(spark, source, table, window)
    predicate = slice_predicate(source, window, Cursor.of(table))
    # Columns whose type or values the warehouse cannot hold fail here, before any read.
    columns = _prepare_columns(spark, source, table, predicate, label)
    stats = slice_stats(spark, source, table, predicate)
    chunks: list[list[int] | None] = [None]
    if stats.lo is not None and stats.rows > table.chunk_rows:
        count = min(math.ceil(stats.rows / table.chunk_rows), stats.hi - stats.lo + 1)
        width = math.ceil((stats.hi + 1 - stats.lo) / count)
        chunks = [[stats.lo + i * width, min(stats.lo + (i + 1) * width, stats.hi + 1)] for i in range(count)]
    reason = arrow_reader.unavailable_reason(source, table)
    if reason and table.reader == "arrow":
        raise SourceError(f"source {source.describe()}, table '{table.source_name}': reader 'arrow' is not possible: {reason}")
    sample: list[int] = []
    if not reason and stats.lo is not None and _partitions(table, stats.rows, stats.lo, stats.hi) > 1:
        sample = key_histogram(spark, source, table)
    return Plan(
        run_id=run_id,
        version=version,
        slice=window,
        predicate=predicate,
        reader="jdbc" if reason else "arrow",
        stats=stats,
        chunks=chunks,
        custom_schema=columns.custom_schema,
        casts=columns.casts,
        horizon=horizon,
        safe_hi=Incremental.safe_high(window, [parse_time(v) for v in horizon.values()]),
        key_sample=sample,
        planned_at=datetime.now(UTC).isoformat(),
        select=columns.select,
        spark_hashed=columns.spark_hashed,
        null_cursor_rows=null_rows,
    )


class ChunkBounds(NamedTuple):
    """What one chunk of a plan reads."""

    predicate: str  # the slice's predicate and the chunk's key bounds
    lo: int | None  # key bounds that place the partitions' cuts
    hi: int | None
    rows: int  # an upper estimate of the chunk's rows
    nulls: bool  # rows with a NULL key belong to this chunk (the first one)
    ceiling: int | None  # the chunk's exclusive upper key bound (None: open above)


def _chunk_bounds(source: JdbcSource, table: TableConfig, plan: Plan, index: int) -> ChunkBounds:
    """Predicate, key bounds and an upper estimate of the rows of chunk ``index``.

    The key bounds were planned from the slice's smallest and largest key at plan time;
    rows inserted later outside them, or with a NULL key, still belong to the slice: the
    first chunk is open below (``< b1 OR key IS NULL``), the last one open above (``>= bn``)."""
    predicate = plan.predicate
    lo, hi, rows = plan.stats.lo, plan.stats.hi, plan.stats.rows
    key_range = plan.chunks[index]
    if key_range is None:
        return ChunkBounds(predicate, lo, hi, rows, True, None)
    first, last = index == 0, index == len(plan.chunks) - 1
    column = source.quote(table.split_column)
    terms = []
    if not first:
        terms.append(f"{column} >= {key_range[0]}")
    if not last:
        terms.append(f"{column} < {key_range[1]}" if not first else f"({column} < {key_range[1]} OR {column} IS NULL)")
    if terms:
        predicate = f"({predicate}) AND {' AND '.join(terms)}"
    return ChunkBounds(
        predicate, key_range[0], key_range[1] - 1, min(rows, table.chunk_rows), first, None if last else key_range[1]
    )


def read_chunk(
    spark, source: JdbcSource, table: TableConfig, plan: Plan, bounds: ChunkBounds, snapshot_id: str | None = None
):
    """One chunk of the slice as a lazy DataFrame, read with partitioned parallel JDBC
    reads; ``snapshot_id``: every read imports that exported PostgreSQL snapshot."""
    partitions = _partitions(table, bounds.rows, bounds.lo, bounds.hi)
    options = {
        **source.jdbc_options(),
        "dbtable": f"(SELECT * FROM {relation(source, table, plan.select)} WHERE {bounds.predicate}) lockgate_slice",
        "fetchsize": str(table.fetch_size),
        "preferTimestampNTZ": "true",
    }
    if snapshot_id:
        options.update(_snapshot_options(snapshot_id))
    if plan.custom_schema:
        options["customSchema"] = plan.custom_schema
    if partitions > 1:
        options.update(
            partitionColumn=table.split_column,
            lowerBound=str(bounds.lo),
            upperBound=str(bounds.hi + 1),
            numPartitions=str(partitions),
        )
    df = spark.read.format("jdbc").options(**options).load()
    return hash_in_spark(apply_casts(df, plan.casts), plan.spark_hashed), partitions


def _snapshot_options(snapshot_id: str) -> dict[str, str]:
    """JDBC options of a PostgreSQL read in an exported snapshot. Spark's PostgreSQL
    dialect turns autocommit off when ``fetchsize`` > 0 (``beforeFetch``), before it runs
    ``sessionInitStatement``: the import is then the first statement of the read's
    transaction, as PostgreSQL requires."""
    return {"sessionInitStatement": snapshot.session_init_statement(snapshot_id), "ApplicationName": snapshot.APPLICATION_NAME}


def _write_parquet(df, folder: Path) -> list[Path]:
    """Write a DataFrame as Parquet into ``folder`` (created by the write) and list its parts."""
    df.write.mode("overwrite").option("compression", "zstd").parquet(str(folder))
    for junk in [*folder.glob(".*.crc"), *folder.glob("_SUCCESS")]:
        junk.unlink()
    return sorted(folder.glob("part-*.parquet"))


def _parquet_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


def _parquet_summary(folder: Path, cursor: Cursor | None) -> tuple[list[dict[str, Any]], int, Any, Any]:
    """Files, rows and the cursor's min and max over the batch, as UTC instants."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files, total, lo, hi = [], 0, None, None
    for path in sorted(folder.glob("part-*.parquet")):
        meta = pq.ParquetFile(path).metadata
        files.append(
            {"path": path.name, "rows": meta.num_rows, "bytes": path.stat().st_size, "sha256": lake.sha256_file(path)}
        )
        total += meta.num_rows
        if cursor and meta.num_rows:
            data = pq.read_table(path, columns=list(cursor.columns))
            column = pc.coalesce(*data.columns) if len(cursor.columns) > 1 else data.column(0)
            bounds = pc.min_max(column)
            f_lo, f_hi = cursor.instant(bounds["min"].as_py()), cursor.instant(bounds["max"].as_py())
            lo = f_lo if lo is None or (f_lo is not None and f_lo < lo) else lo
            hi = f_hi if hi is None or (f_hi is not None and f_hi > hi) else hi
    return files, total, lo, hi


def _chunk_totals(query, source: JdbcSource, table: TableConfig, predicate: str) -> tuple[int, str | None]:
    """The source's row count (and ``reconcile_sum`` sum, as exact text) of a chunk."""
    select, names = _totals(source, table)
    row = query(f"SELECT {', '.join(select)} FROM {source.table_ref(table.source_name)} WHERE {predicate}", names)[0]
    return int(row["n"]), row.get("total")


class ChunkFiles(NamedTuple):
    files: list[Path]
    partitions: int
    schema: list[dict[str, Any]]
    #: The Spark tasks also put the files into the S3 lake's run folder themselves.
    uploaded: bool


def _read_chunk_files(
    spark, source: JdbcSource, table: TableConfig, plan: Plan, plan_path: Path, bounds: ChunkBounds, temp: Path,
    snapshot_id: str | None, upload: tuple[dict[str, Any], str] | None = None,
) -> ChunkFiles:  # fmt: skip
    """Read one chunk into ``temp``; ``upload``: the Arrow reader's tasks also put their
    files into the S3 lake (options and the chunk's key prefix)."""
    shutil.rmtree(temp, ignore_errors=True)
    df, partitions = read_chunk(spark, source, table, plan, bounds, snapshot_id)
    files = None
    if plan.reader == "arrow":
        files = arrow_reader.write_ranges(
            spark, source, relation(source, table, plan.select), bounds.predicate, df.schema, table.split_column,
            None if bounds.lo is None else (bounds.lo, bounds.hi), partitions, temp, rows=bounds.rows,
            nulls=bounds.nulls, sample=plan.key_sample, ceiling=bounds.ceiling, snapshot=snapshot_id, upload=upload,
        )  # fmt: skip
        if files is None:  # a column type the Arrow reader does not convert: JDBC for the rest
            plan.reader = "jdbc"
            lake.write_json_atomic(plan_path, plan.to_json())
    uploaded = files is not None and upload is not None
    if files is None:
        files = _write_parquet(df, temp)
    schema = [{"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable} for f in df.schema.fields]
    return ChunkFiles(files, partitions, schema, uploaded)


def _chunk_upload(upload: tuple[dict[str, Any], str] | None, index: int) -> tuple[dict[str, Any], str] | None:
    """The key prefix of chunk ``index``'s files in the run folder (their sealed names)."""
    return None if upload is None else (upload[0], f"{upload[1]}/part-{index:05d}-")


def _where(source: JdbcSource, table: TableConfig, index: int, plan: Plan) -> str:
    return f"source {source.describe()}, table '{table.source_name}', chunk {index + 1} of {len(plan.chunks)}"


def _read_in_snapshot(
    spark, source: JdbcSource, table: TableConfig, plan: Plan, plan_path: Path, index: int, temp: Path,
    snap: snapshot.ExportedSnapshot, upload: tuple[dict[str, Any], str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """PostgreSQL: count, sum, horizon and rows of a chunk, all in the exported snapshot."""
    bounds = _chunk_bounds(source, table, plan, index)
    horizon = source_horizon(spark, source, snap.query)
    count, total = _chunk_totals(snap.query, source, table, bounds.predicate)
    faults.hit("extract.chunk_snapshot", table.name)
    files, partitions, schema, uploaded = _read_chunk_files(
        spark, source, table, plan, plan_path, bounds, temp, snap.id, _chunk_upload(upload, index)
    )
    rows = _parquet_rows(files)
    if rows != count:
        shutil.rmtree(temp, ignore_errors=True)
        raise snapshot.ChunkReadError(
            f"{_where(source, table, index, plan)}: the {plan.reader} reader wrote {rows} rows where the source "
            f"counts {count} in the same snapshot (exported snapshot {snap.id}); the readers did not see what was "
            "counted, a reader defect, not a change in the source; the chunk is not kept"
        )
    return {
        "files": [f.name for f in files], "partitions": partitions, "key_range": plan.chunks[index], "schema": schema,
        "source_rows": count, "source_sum": total, "read_at": horizon["source_now"], "horizon": horizon,
        "consistency": "exported snapshot", "attempts": 1, "uploaded": uploaded,
    }  # fmt: skip


def _read_stable(
    spark, source: JdbcSource, table: TableConfig, plan: Plan, plan_path: Path, index: int, temp: Path,
    upload: tuple[dict[str, Any], str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Engines without a shareable snapshot: the chunk is counted (and summed) just
    before and just after it is read, and kept only when both agree and the rows read
    are that count; otherwise the source changed during the read and it is read again."""
    bounds = _chunk_bounds(source, table, plan, index)

    def query(sql: str, names: list[str]) -> list[dict[str, Any]]:
        return _query(spark, source, sql, names)

    seen = []
    for attempt in range(1, snapshot.STABLE_READ_ATTEMPTS + 1):
        horizon = source_horizon(spark, source)
        before = _chunk_totals(query, source, table, bounds.predicate)
        faults.hit("extract.chunk_snapshot", table.name)
        files, partitions, schema, uploaded = _read_chunk_files(
            spark, source, table, plan, plan_path, bounds, temp, None, _chunk_upload(upload, index)
        )
        rows = _parquet_rows(files)
        after = _chunk_totals(query, source, table, bounds.predicate)
        if before == after and rows == before[0]:
            return {
                "files": [f.name for f in files], "partitions": partitions, "key_range": plan.chunks[index],
                "schema": schema, "source_rows": before[0], "source_sum": before[1], "read_at": horizon["source_now"],
                "horizon": horizon, "consistency": "stable count", "attempts": attempt, "uploaded": uploaded,
            }  # fmt: skip
        shutil.rmtree(temp, ignore_errors=True)
        sums = f" (sum of {table.reconcile_sum} {before[1]} → {after[1]})" if table.reconcile_sum else ""
        seen.append(f"{before[0]} rows before the read, {rows} read, {after[0]} after{sums}")
        log.warning(
            "%s: the source changed while the chunk was read (%s); %s", _where(source, table, index, plan), seen[-1],
            "reading it again" if attempt < snapshot.STABLE_READ_ATTEMPTS else "giving up for this attempt",
        )  # fmt: skip
    raise snapshot.ChunkReadError(
        f"{_where(source, table, index, plan)}: the source changed while the chunk was read, "
        f"{snapshot.STABLE_READ_ATTEMPTS} times in a row ({'; '.join(seen)}). {source.engine} has no snapshot that "
        "the count and the reads could share, so a chunk is counted just before and just after it is read and is "
        "kept only when both counts (and sums) agree and the rows read are that count. The chunk is not kept; the "
        "task's next attempt reads it again"
    )


def _log_progress(label: str, plan: Plan, done: list[dict[str, Any]], seconds: float) -> None:
    """``extract shop.orders: chunk 3/10 done in 4.2 s, 1,234,000 / 4,100,000 rows (30%)``;
    the total is the count the plan was made with (each chunk is counted again when read)."""
    rows, total = sum(int(c["source_rows"]) for c in done), plan.stats.rows
    share = min(100, rows * 100 // total) if total else 100
    log.info("extract %s: chunk %d/%d done in %.1f s, %s / %s rows (%d%%)", label, len(done), len(plan.chunks),
             seconds, f"{rows:,}", f"{total:,}", share)  # fmt: skip


def _extract_chunks(
    spark, source: JdbcSource, table: TableConfig, plan: Plan, plan_path: Path, partial: Path,
    keys_folder: Path | None = None, label: str = "", upload: tuple[dict[str, Any], str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:  # fmt: skip
    """Read every chunk not yet on disk; a chunk is complete once its ``_chunk.json`` exists.

    Each chunk is read in one consistent view of the source (:mod:`lockgate.snapshot`);
    its ``_chunk.json`` records its count and sum in that view, when the view was taken
    (``read_at``) and the source's read horizon then. On PostgreSQL the chunk's exported
    snapshot ends once the chunk is on disk. With ``keys_folder`` the table's primary
    keys are read too (delete propagation), in the last chunk's snapshot when that
    chunk is read in this attempt. Returns the chunks and the keys (or ``None``)."""
    partial.mkdir(parents=True, exist_ok=True)
    shared = snapshot.unavailable_reason(source) is None
    done: list[dict[str, Any]] = []
    keys = None
    for index, _key_range in enumerate(plan.chunks):
        folder = partial / f"chunk-{index:05d}"
        marker = folder / "_chunk.json"
        if marker.exists():
            info = json.loads(marker.read_text(encoding="utf-8"))
            # A chunk written before counts were kept per chunk is read again.
            if "source_rows" in info and all((folder / name).exists() for name in info["files"]):
                done.append({**info, "index": index, "resumed": True})
                continue
        shutil.rmtree(folder, ignore_errors=True)
        temp = partial / f".chunk-{index:05d}.tmp"
        faults.hit("extract.chunk_start", table.name)
        chunk_started = time.monotonic()
        if shared:
            with snapshot.ExportedSnapshot(source) as snap:
                info = _read_in_snapshot(spark, source, table, plan, plan_path, index, temp, snap, upload)
                os.rename(temp, folder)
                lake.write_json_atomic(marker, info)
                if keys_folder is not None and index == len(plan.chunks) - 1:
                    keys = _extract_keys(spark, source, table, keys_folder, snap)
        else:
            info = _read_stable(spark, source, table, plan, plan_path, index, temp, upload)
            os.rename(temp, folder)
            lake.write_json_atomic(marker, info)
        done.append({**info, "index": index, "resumed": False})
        _log_progress(label or table.name, plan, done, time.monotonic() - chunk_started)
        faults.hit("extract.chunk_written", table.name)
    if keys_folder is not None and keys is None:
        keys = _extract_keys(spark, source, table, keys_folder)
    return done, keys


def _extract_keys(
    spark, source: JdbcSource, table: TableConfig, folder: Path, snap: snapshot.ExportedSnapshot | None = None
) -> dict[str, Any]:
    """Every primary key currently in the source (for delete propagation), and the key
    snapshot's time: the source's clock, capped by the start of the oldest transaction
    still open then (it may later commit rows with older cursors that the keys cannot
    show). Warehouse rows with a cursor at or after that time are never judged deleted.

    PostgreSQL: the keys are read in an exported snapshot — ``snap``, the last chunk's,
    so they describe the source exactly as the batch's last rows were read, or else one
    of their own. MariaDB/MySQL and SQLite share no snapshot with a reader: the clock and
    the open transactions are read first, then the keys in one statement (one
    consistent read on InnoDB); a key deleted in between is rightly missing, and a row
    committed in between by a transaction open before the clock is covered by the cap.
    """
    own = None
    if snap is None and snapshot.unavailable_reason(source) is None:
        snap = own = snapshot.ExportedSnapshot(source)
    try:
        horizon = source_horizon(spark, source, snap.query if snap else None)
        keys = ", ".join(source.quote(k) for k in table.primary_key)
        options = {
            **source.jdbc_options(),
            "dbtable": f"(SELECT {keys} FROM {source.table_ref(table.source_name)}) lockgate_keys",
            "fetchsize": str(max(table.fetch_size, 50_000)),
        }
        if snap is not None:
            options.update(_snapshot_options(snap.id))
        if source.engine == "sqlite":
            options["customSchema"] = ", ".join(f"{spark_name(k)} BIGINT" for k in table.primary_key)
        files = _write_parquet(spark.read.format("jdbc").options(**options).load(), folder)
    finally:
        if own is not None:
            own.close()
    times = [parse_time(v) for v in horizon.values() if v]
    read_at = min(times) if times else None
    return {"files": files, "read_at": read_at.isoformat() if read_at else None, "horizon": horizon}


def _sum_text(totals: list[str | None]) -> str | None:
    """The exact sum of the chunks' sums (text from the source), ``None`` if none has one."""
    values = [t for t in totals if t is not None]
    if len(values) <= 1:
        return values[0] if values else None
    with localcontext() as exact:
        exact.prec = 1000
        return str(sum((Decimal(v) for v in values), Decimal(0)))


def stored_plan(settings: Settings, source: str, table: str, run_id: str, version: int) -> Plan | None:
    """The plan an earlier attempt of this run version stored, if any."""
    path = lake.plan_path(settings.lake_root, source, table, run_id, version)
    return Plan.from_json(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None


def run_extract(
    config: SourceConfig,
    table: TableConfig,
    window: Slice,
    run_id: str,
    *,
    version: int = 0,
    source: JdbcSource | None = None,
    settings: Settings | None = None,
    spark=None,
) -> dict[str, Any]:
    """Extract one slice into the lake; returns the manifest (with its folder as ``path``).

    Checkpoints: the plan of a run version is stored before the first row is read and
    every retry of that version reuses it verbatim (``window`` is then ignored); a run
    whose folder is already sealed and intact is not extracted again; and a large slice
    is read in key-range chunks kept in ``.partial-<run>/`` until the folder is sealed,
    so a retry after a failure half-way starts at the first chunk that is not on disk.
    """
    settings = settings or load_settings()
    plan = stored_plan(settings, config.source, table.name, run_id, version)
    window = plan.slice if plan else window
    location = lake.RawLocation(
        settings.lake_root, config.source, table.name, window.interval_start, window.interval_end, run_id, version,
        stage_root=settings.stage_root,
    )  # fmt: skip
    if location.manifest_path.exists():
        try:
            manifest = lake.verify(location.path)
            return {**manifest, "path": str(location.path), "resumed": True}
        except Exception:  # damaged: extract again into a fresh folder
            lake.remove(location.path)
    source = source or resolve_source(config.connection)
    if spark is None:
        from lockgate.spark import get_spark

        spark = get_spark(f"lockgate-extract-{config.source}")
    lake.clean_temp(location)
    temp = location.temp_path()
    partial = location.partial_path
    started = time.monotonic()
    plan_file = lake.plan_path(settings.lake_root, config.source, table.name, run_id, version)
    try:
        if plan is None:
            plan = plan_extract(spark, source, table, window, run_id, version, label=f"{config.source}.{table.name}")
            lake.write_json_atomic(plan_file, plan.to_json())
            log.info("extract %s.%s: planned in %.1f s: %s rows, %d chunk(s), %s reader", config.source, table.name,
                     time.monotonic() - started, f"{plan.stats.rows:,}", len(plan.chunks), plan.reader)  # fmt: skip
        keys_folder = partial / ".keys.tmp" if table.delete_propagation != "none" else None
        # An S3 lake: the Arrow reader's tasks put their files into the run folder themselves.
        upload = None if lake.is_local(location.path) else s3.task_upload(location.path, settings.lake_conn_id)
        done, keys = _extract_chunks(
            spark, source, table, plan, plan_file, partial, keys_folder, label=f"{config.source}.{table.name}",
            upload=upload,
        )  # fmt: skip
    except Exception as exc:
        shutil.rmtree(partial / ".keys.tmp", ignore_errors=True)
        if exc.__class__.__module__.startswith(_CLIENT_ERRORS):
            raise _explain_source_error(exc, source, table.source_name) from None
        raise
    # Assemble the sealed folder from hard links: the chunks stay intact until it is sealed.
    temp.mkdir(parents=True)
    for chunk in done:
        for number, name in enumerate(chunk["files"]):
            os.link(partial / f"chunk-{chunk['index']:05d}" / name, temp / f"part-{chunk['index']:05d}-{number:05d}.parquet")
    keys_manifest = None
    if keys is not None:
        (temp / "keys").mkdir()
        for number, path in enumerate(keys["files"]):
            os.link(path, temp / "keys" / f"part-{number:05d}.parquet")
        key_files = sorted((temp / "keys").glob("*.parquet"))
        keys_manifest = {
            "columns": list(table.primary_key),
            "read_at": keys["read_at"],
            "horizon": keys["horizon"],
            "files": [
                {"path": f"keys/{f.name}", "bytes": f.stat().st_size, "sha256": lake.sha256_file(f)} for f in key_files
            ],
        }
    faults.hit("extract.before_seal", table.name)
    summarised = time.monotonic()
    files, rows, cursor_min, cursor_max = _parquet_summary(temp, Cursor.of(table) if table.incremental else None)
    log.info("extract %s.%s: %d file(s) checksummed in %.1f s", config.source, table.name, len(files),
             time.monotonic() - summarised)  # fmt: skip
    schema = done[0]["schema"]
    # Counts, sums and read horizons are the chunks' own, each from the view of the
    # source its rows were read in: the batch is as new as its earliest chunk, and the
    # watermark stops before any transaction open while some chunk was read.
    source_rows = sum(int(c["source_rows"]) for c in done)
    source_sum = _sum_text([c.get("source_sum") for c in done]) if table.reconcile_sum else None
    read_at = min((t for t in (parse_time(c["read_at"]) for c in done) if t is not None), default=None)
    safe_hi = Incremental.safe_high(plan.slice, [parse_time(v) for c in done for v in c["horizon"].values()])
    manifest = {
        "source": config.source,
        "table": table.name,
        "source_table": table.source_name,
        "source_engine": source.engine,
        "source_location": source.describe(),
        "run_id": run_id,
        "version": version,
        "mode": table.mode,
        "slice": plan.slice.as_dict(),
        "predicate": plan.predicate,
        "source_rows": source_rows,
        "source_sum": source_sum,
        "rows_null_cursor": plan.null_cursor_rows,
        "rows": rows,
        "reader": plan.reader,
        "partitions": max(c["partitions"] for c in done),
        "chunks": [
            {
                "index": c["index"], "key_range": c["key_range"], "files": len(c["files"]), "resumed": c["resumed"],
                "source_rows": c["source_rows"], "source_sum": c.get("source_sum"), "read_at": c["read_at"],
                "horizon": c["horizon"], "consistency": c.get("consistency"), "attempts": c.get("attempts", 1),
            }  # fmt: skip
            for c in done
        ],
        "horizon": plan.horizon,
        "safe_hi": safe_hi.isoformat() if safe_hi else None,
        "read_at": read_at.isoformat() if read_at else None,
        "schema": schema,
        "cursor_min": cursor_min.isoformat() if hasattr(cursor_min, "isoformat") else cursor_min,
        "cursor_max": cursor_max.isoformat() if hasattr(cursor_max, "isoformat") else cursor_max,
        "files": files,
        "extracted_at": datetime.now(UTC).isoformat(),
        "extract_seconds": round(time.monotonic() - started, 3),
    }
    if keys_manifest:
        manifest["keys"] = keys_manifest
    uploaded = {
        f"part-{c['index']:05d}-{number:05d}.parquet" for c in done if c.get("uploaded") for number in range(len(c["files"]))
    }
    folder = lake.seal(location, temp, manifest, uploaded=uploaded)
    shutil.rmtree(partial, ignore_errors=True)
    return {**lake.read_manifest(folder), "path": str(folder), "resumed": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--interval-start", type=datetime.fromisoformat)
    parser.add_argument("--interval-end", type=datetime.fromisoformat)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--full-refresh", action="store_true")
    args = parser.parse_args(argv)
    settings = load_settings()
    config = load_source(settings.sources_dir, args.source)
    table = config.table(args.table)
    # Run on its own, the job reads just the given interval (no stored state to widen it).
    window = Incremental(table).window(
        TableState(watermark=args.interval_start), interval_start=args.interval_start, interval_end=args.interval_end, full_refresh=args.full_refresh
    )
    manifest = run_extract(config, table, window, args.run_id, settings=settings)
    print(f"{config.source}.{table.name}: {manifest['rows']} rows → {manifest['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
