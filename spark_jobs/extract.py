"""Extract one table's slice over JDBC into a sealed raw lake folder.

Runnable inside an Airflow task (``run_extract``) or on its own::

    spark-submit spark_jobs/extract.py --source shop --table orders \\
        --interval-start 2026-01-01T00:00:00+00:00 --interval-end 2026-01-02T00:00:00+00:00 \\
        --run-id manual_1

Steps: ask the source for the slice's key bounds and row count, read the slice with
partitioned parallel JDBC reads (``partitionColumn`` between those bounds, ``fetchsize``),
fix types the engine would map lossily, write Parquet to a temporary folder, then seal
it with a manifest (rows, schema, cursor range, SHA-256 per file).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate import faults, lake
from lockgate.config import SourceConfig, TableConfig, load_source
from lockgate.errors import SourceError
from lockgate.settings import Settings, load_settings
from lockgate.slices import Slice, compute_slice
from lockgate.sources import JdbcSource, resolve_source

from spark_jobs import arrow_reader
from spark_jobs.transforms import apply_casts, sqlite_type_plan

#: A partition should carry at least this many rows; smaller slices use fewer reads.
MIN_ROWS_PER_PARTITION = 5_000
#: Modules whose exceptions are the source's (or the reader's) errors, to be explained.
_CLIENT_ERRORS = ("py4j", "pyspark", "adbc_driver")
_PY_ERROR = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning|Exit)\b.*:")
_NUMERIC = ("bigint", "int", "smallint", "tinyint", "decimal")


def slice_predicate(source: JdbcSource, window: Slice) -> str:
    if window.full or not window.column:
        return "1=1"
    column = source.quote(window.column)
    terms = []
    if window.lo is not None:
        terms.append(f"{column} >= {source.timestamp_literal(window.lo)}")
    if window.hi is not None:
        terms.append(f"{column} < {source.timestamp_literal(window.hi)}")
    return " AND ".join(terms) or "1=1"


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
    if source.password:
        reason = reason.replace(source.password, "***")
    return SourceError(f"{where}, table '{table}': {reason}")


def table_plan(spark, source: JdbcSource, table: TableConfig) -> tuple[str | None, dict[str, str]]:
    """customSchema and casts needed to read the table without loss."""
    if source.engine != "sqlite":
        return None, {}
    name = table.source_name.split(".")[-1].replace("'", "''")
    rows = _query(spark, source, f"SELECT name, type FROM pragma_table_info('{name}')", ["name", "type"])
    if not rows:
        raise SourceError(f"source {source.describe()}: table '{table.source_name}' does not exist")
    return sqlite_type_plan([(row["name"], row["type"]) for row in rows])


def slice_stats(spark, source: JdbcSource, table: TableConfig, predicate: str) -> dict[str, Any]:
    """Row count and partition-column bounds of the slice, computed by the source."""
    relation = source.table_ref(table.source_name)
    split = table.split_column
    select = ["COUNT(*) AS n"]
    if split:
        column = source.quote(split)
        select += [f"{_text(source, f'MIN({column})')} AS lo", f"{_text(source, f'MAX({column})')} AS hi"]
    names = ["n", "lo", "hi"] if split else ["n"]
    if table.reconcile_sum:
        select.append(f"{_text(source, f'SUM({source.quote(table.reconcile_sum)})')} AS total")
        names.append("total")
    sql = f"SELECT {', '.join(select)} FROM {relation} WHERE {predicate}"
    row = _query(spark, source, sql, names)[0]
    stats = {"rows": int(row["n"]), "lo": None, "hi": None, "sum": row["total"] if table.reconcile_sum else None}
    if split and row["lo"] is not None:
        try:
            stats["lo"], stats["hi"] = int(row["lo"]), int(row["hi"])
        except ValueError:  # not an integer column: read in one partition
            pass
    return stats


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


def source_horizon(spark, source: JdbcSource) -> dict[str, str | None]:
    """The source's clock and the start of its oldest open transaction, in UTC.

    A row written by a transaction that is still open is invisible to this read but
    may carry a cursor value older than the read; when that transaction commits, the
    row appears *behind* the slice. The watermark must not pass such a point.
    PostgreSQL: ``pg_stat_activity.xact_start`` (needs ``pg_read_all_stats`` to see
    other roles' sessions); MariaDB/MySQL: ``information_schema.innodb_trx`` (needs
    ``PROCESS``). SQLite has one writer at a time and no server clock: the local clock.
    """
    if source.engine == "postgres":
        sql = (
            "SELECT CAST(now() AT TIME ZONE 'UTC' AS TEXT) AS now_utc, "
            "CAST(MIN(xact_start) AT TIME ZONE 'UTC' AS TEXT) AS oldest FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
            "AND backend_type = 'client backend'"
        )
    elif source.engine == "mariadb":
        sql = (
            "SELECT CAST(UTC_TIMESTAMP(6) AS CHAR) AS now_utc, CAST(MIN(trx_started) AS CHAR) AS oldest "
            "FROM information_schema.innodb_trx WHERE trx_mysql_thread_id <> CONNECTION_ID()"
        )
    else:
        return {"source_now": datetime.now(UTC).isoformat(), "oldest_open_transaction": None}
    row = _query(spark, source, sql, ["now_utc", "oldest"])[0]
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


def safe_high(window: Slice, horizon: dict[str, str | None]) -> datetime | None:
    """How far the watermark may move after this read: never past the slice's end, the
    source's clock at read time, or the start of a transaction that was still open."""
    if window.full or window.hi is None:
        return None
    bounds = [window.hi] + [_parse_source_time(v) for v in horizon.values() if v]
    return min(b for b in bounds if b is not None)


def plan_extract(spark, source: JdbcSource, table: TableConfig, window: Slice) -> dict[str, Any]:
    """What to read, decided once per run: predicate, types, counts, key-range chunks."""
    horizon = source_horizon(spark, source) if not window.full else {}
    predicate = slice_predicate(source, window)
    custom_schema, casts = table_plan(spark, source, table)
    stats = slice_stats(spark, source, table, predicate)
    chunks: list[list[int] | None] = [None]
    if stats["lo"] is not None and stats["rows"] > table.chunk_rows:
        count = min(math.ceil(stats["rows"] / table.chunk_rows), stats["hi"] - stats["lo"] + 1)
        width = math.ceil((stats["hi"] + 1 - stats["lo"]) / count)
        chunks = [
            [stats["lo"] + i * width, min(stats["lo"] + (i + 1) * width, stats["hi"] + 1)] for i in range(count)
        ]
    reason = arrow_reader.unavailable_reason(source, table)
    if reason and table.reader == "arrow":
        raise SourceError(f"source {source.describe()}, table '{table.source_name}': reader 'arrow' is not possible: {reason}")
    if not reason and stats["lo"] is not None and _partitions(table, stats["rows"], stats["lo"], stats["hi"]) > 1:
        stats["key_sample"] = key_histogram(spark, source, table)
    return {
        "reader": "jdbc" if reason else "arrow",
        "predicate": predicate,
        "custom_schema": custom_schema,
        "casts": casts,
        "stats": stats,
        "chunks": chunks,
        "horizon": horizon,
        "safe_hi": (lambda v: v.isoformat() if v else None)(safe_high(window, horizon)),
    }


def _chunk_bounds(source: JdbcSource, table: TableConfig, plan: dict[str, Any], key_range: list[int] | None):
    """Predicate, key bounds and an upper estimate of the rows of one chunk."""
    predicate = plan["predicate"]
    stats = plan["stats"]
    lo, hi, rows = stats["lo"], stats["hi"], stats["rows"]
    if key_range is not None:
        column = source.quote(table.split_column)
        predicate = f"({predicate}) AND {column} >= {key_range[0]} AND {column} < {key_range[1]}"
        lo, hi = key_range[0], key_range[1] - 1
        rows = min(rows, table.chunk_rows)
    return predicate, lo, hi, rows


def read_chunk(spark, source: JdbcSource, table: TableConfig, plan: dict[str, Any], key_range: list[int] | None):
    """One chunk of the slice as a lazy DataFrame, read with partitioned parallel JDBC reads."""
    predicate, lo, hi, rows = _chunk_bounds(source, table, plan, key_range)
    partitions = _partitions(table, rows, lo, hi)
    options = {
        **source.jdbc_options(),
        "dbtable": f"(SELECT * FROM {source.table_ref(table.source_name)} WHERE {predicate}) lockgate_slice",
        "fetchsize": str(table.fetch_size),
        "preferTimestampNTZ": "true",
    }
    if plan["custom_schema"]:
        options["customSchema"] = plan["custom_schema"]
    if partitions > 1:
        options.update(
            partitionColumn=table.split_column,
            lowerBound=str(lo),
            upperBound=str(hi + 1),
            numPartitions=str(partitions),
        )
    df = spark.read.format("jdbc").options(**options).load()
    return apply_casts(df, plan["casts"]), partitions


def _write_parquet(df, folder: Path) -> list[Path]:
    """Write a DataFrame as Parquet into ``folder`` (created by the write) and list its parts."""
    df.write.mode("overwrite").option("compression", "zstd").parquet(str(folder))
    for junk in [*folder.glob(".*.crc"), *folder.glob("_SUCCESS")]:
        junk.unlink()
    return sorted(folder.glob("part-*.parquet"))


def _parquet_summary(folder: Path, cursor: str | None) -> tuple[list[dict[str, Any]], int, Any, Any]:
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
            column = pq.read_table(path, columns=[cursor]).column(0)
            bounds = pc.min_max(column)
            f_lo, f_hi = bounds["min"].as_py(), bounds["max"].as_py()
            lo = f_lo if lo is None or (f_lo is not None and f_lo < lo) else lo
            hi = f_hi if hi is None or (f_hi is not None and f_hi > hi) else hi
    return files, total, lo, hi


def _extract_chunks(spark, source: JdbcSource, table: TableConfig, window: Slice, partial: Path) -> dict[str, Any]:
    """Read every chunk not yet on disk; a chunk is complete once its ``_chunk.json`` exists."""
    partial.mkdir(parents=True, exist_ok=True)
    plan_path = partial / "_plan.json"
    if plan_path.exists():
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    else:
        plan = plan_extract(spark, source, table, window)
        lake.write_json_atomic(plan_path, plan)
    done = []
    for index, key_range in enumerate(plan["chunks"]):
        folder = partial / f"chunk-{index:05d}"
        marker = folder / "_chunk.json"
        if marker.exists():
            info = json.loads(marker.read_text(encoding="utf-8"))
            if all((folder / name).exists() for name in info["files"]):
                done.append({**info, "index": index, "resumed": True})
                continue
        shutil.rmtree(folder, ignore_errors=True)
        temp = partial / f".chunk-{index:05d}.tmp"
        shutil.rmtree(temp, ignore_errors=True)
        df, partitions = read_chunk(spark, source, table, plan, key_range)
        files = None
        if plan.get("reader") == "arrow":
            predicate, lo, hi, rows = _chunk_bounds(source, table, plan, key_range)
            files = arrow_reader.write_ranges(
                spark, source, source.table_ref(table.source_name), predicate, df.schema, table.split_column,
                None if lo is None else (lo, hi), partitions, temp, rows=rows, nulls=key_range is None,
                sample=plan["stats"].get("key_sample"),
            )  # fmt: skip
            if files is None:  # a column type the Arrow reader does not convert: JDBC for the rest
                plan["reader"] = "jdbc"
                lake.write_json_atomic(plan_path, plan)
        if files is None:
            files = _write_parquet(df, temp)
        os.rename(temp, folder)
        schema = [{"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable} for f in df.schema.fields]
        info = {"files": [f.name for f in files], "partitions": partitions, "key_range": key_range, "schema": schema}
        lake.write_json_atomic(marker, info)
        done.append({**info, "index": index, "resumed": False})
        faults.hit("extract.chunk_written", table.name)
    return {**plan, "done": done}


def _extract_keys(spark, source: JdbcSource, table: TableConfig, folder: Path) -> dict[str, Any]:
    """Every primary key currently in the source (for delete propagation), plus the
    source clock when they were read: rows newer than that are never judged deleted."""
    horizon = source_horizon(spark, source)
    keys = ", ".join(source.quote(k) for k in table.primary_key)
    options = {
        **source.jdbc_options(),
        "dbtable": f"(SELECT {keys} FROM {source.table_ref(table.source_name)}) lockgate_keys",
        "fetchsize": str(max(table.fetch_size, 50_000)),
    }
    if source.engine == "sqlite":
        options["customSchema"] = ", ".join(f"`{k}` BIGINT" for k in table.primary_key)
    files = _write_parquet(spark.read.format("jdbc").options(**options).load(), folder)
    return {"files": files, "read_at": horizon["source_now"]}


def sample_table(spark, source: JdbcSource, table: TableConfig, rows: int):
    """Up to ``rows`` rows of the table, typed as an extract would type them."""
    try:
        custom_schema, casts = table_plan(spark, source, table)
        options = {
            **source.jdbc_options(),
            "dbtable": f"(SELECT * FROM {source.table_ref(table.source_name)} LIMIT {int(rows)}) lockgate_sample",
            "fetchsize": str(table.fetch_size),
            "preferTimestampNTZ": "true",
        }
        if custom_schema:
            options["customSchema"] = custom_schema
        return apply_casts(spark.read.format("jdbc").options(**options).load(), casts).cache()
    except Exception as exc:
        if exc.__class__.__module__.startswith(_CLIENT_ERRORS):
            raise _explain_source_error(exc, source, table.source_name) from None
        raise


def run_extract(
    config: SourceConfig,
    table: TableConfig,
    window: Slice,
    run_id: str,
    *,
    source: JdbcSource | None = None,
    settings: Settings | None = None,
    spark=None,
) -> dict[str, Any]:
    """Extract one slice into the lake; returns the manifest (with its folder as ``path``).

    Checkpoints: a run whose folder is already sealed and intact is not extracted again,
    and a large slice is read in key-range chunks kept in ``.partial-<run_id>/`` until
    the folder is sealed, so a retry after a failure half-way starts at the first
    chunk that is not on disk.
    """
    settings = settings or load_settings()
    location = lake.RawLocation(
        settings.lake_root, config.source, table.name, window.interval_start, window.interval_end, run_id
    )
    if location.manifest_path.exists():
        try:
            manifest = lake.verify(location.path)
            return {**manifest, "path": str(location.path), "resumed": True}
        except Exception:  # damaged: extract again into a fresh folder
            shutil.rmtree(location.path, ignore_errors=True)
    source = source or resolve_source(config.connection)
    if spark is None:
        from lockgate.spark import get_spark

        spark = get_spark(f"lockgate-extract-{config.source}")
    lake.clean_temp(location)
    temp = location.temp_path()
    partial = location.partial_path
    started = time.monotonic()
    try:
        result = _extract_chunks(spark, source, table, window, partial)
        keys = None
        if table.delete_propagation != "none":
            keys = _extract_keys(spark, source, table, partial / ".keys.tmp")
    except Exception as exc:
        shutil.rmtree(partial / ".keys.tmp", ignore_errors=True)
        if exc.__class__.__module__.startswith(_CLIENT_ERRORS):
            raise _explain_source_error(exc, source, table.source_name) from None
        raise
    # Assemble the sealed folder from hard links: the chunks stay intact until it is sealed.
    temp.mkdir(parents=True)
    for chunk in result["done"]:
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
            "files": [
                {"path": f"keys/{f.name}", "bytes": f.stat().st_size, "sha256": lake.sha256_file(f)} for f in key_files
            ],
        }
    faults.hit("extract.before_seal", table.name)
    files, rows, cursor_min, cursor_max = _parquet_summary(temp, window.column if table.incremental else None)
    schema = result["done"][0]["schema"]
    manifest = {
        "source": config.source,
        "table": table.name,
        "source_table": table.source_name,
        "source_engine": source.engine,
        "source_location": source.describe(),
        "run_id": run_id,
        "mode": table.mode,
        "slice": window.as_dict(),
        "predicate": result["predicate"],
        "source_rows": result["stats"]["rows"],
        "source_sum": result["stats"].get("sum"),
        "rows": rows,
        "reader": result.get("reader", "jdbc"),
        "partitions": max(c["partitions"] for c in result["done"]),
        "chunks": [
            {"index": c["index"], "key_range": c["key_range"], "files": len(c["files"]), "resumed": c["resumed"]}
            for c in result["done"]
        ],
        "horizon": result["horizon"],
        "safe_hi": result["safe_hi"],
        "schema": schema,
        "cursor_min": cursor_min.isoformat() if hasattr(cursor_min, "isoformat") else cursor_min,
        "cursor_max": cursor_max.isoformat() if hasattr(cursor_max, "isoformat") else cursor_max,
        "files": files,
        "extracted_at": datetime.now(UTC).isoformat(),
        "extract_seconds": round(time.monotonic() - started, 3),
    }
    if keys_manifest:
        manifest["keys"] = keys_manifest
    folder = lake.seal(location, temp, manifest)
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
    window = compute_slice(
        table, interval_start=args.interval_start, interval_end=args.interval_end, full_refresh=args.full_refresh
    )
    manifest = run_extract(config, table, window, args.run_id, settings=settings)
    print(f"{config.source}.{table.name}: {manifest['rows']} rows → {manifest['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
