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
import math
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate import lake
from lockgate.config import SourceConfig, TableConfig, load_source
from lockgate.errors import SourceError
from lockgate.settings import Settings, load_settings
from lockgate.slices import Slice, compute_slice
from lockgate.sources import JdbcSource, resolve_source

from spark_jobs.transforms import apply_casts, sqlite_type_plan

#: A partition should carry at least this many rows; smaller slices use fewer reads.
MIN_ROWS_PER_PARTITION = 5_000
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


def _query(spark, source: JdbcSource, sql: str, text_columns: list[str]):
    """Run a small metadata query; every column is read as text (SQLite reports no
    usable types for expressions, and text converts exactly everywhere)."""
    schema = ", ".join(f"{c} STRING" for c in text_columns)
    return spark.read.format("jdbc").options(**source.jdbc_options(), query=sql, customSchema=schema).load()


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
    # Add the driver's innermost message: it is what a DBA would search for.
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
    rows = _query(spark, source, f"SELECT name, type FROM pragma_table_info('{name}')", ["name", "type"]).collect()
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
    sql = f"SELECT {', '.join(select)} FROM {relation} WHERE {predicate}"
    row = _query(spark, source, sql, ["n", "lo", "hi"] if split else ["n"]).collect()[0]
    stats = {"rows": int(row["n"]), "lo": None, "hi": None}
    if split and row["lo"] is not None:
        try:
            stats["lo"], stats["hi"] = int(row["lo"]), int(row["hi"])
        except ValueError:  # not an integer column: read in one partition
            pass
    return stats


def _partitions(table: TableConfig, stats: dict[str, Any]) -> int:
    if stats["lo"] is None or stats["rows"] == 0:
        return 1
    wanted = math.ceil(stats["rows"] / MIN_ROWS_PER_PARTITION)
    return max(1, min(table.partitions, wanted, stats["hi"] - stats["lo"] + 1))


def read_slice(spark, source: JdbcSource, table: TableConfig, window: Slice):
    """The slice as a DataFrame (lazy) plus what was learned about it."""
    predicate = slice_predicate(source, window)
    custom_schema, casts = table_plan(spark, source, table)
    stats = slice_stats(spark, source, table, predicate)
    partitions = _partitions(table, stats)
    options = {
        **source.jdbc_options(),
        "dbtable": f"(SELECT * FROM {source.table_ref(table.source_name)} WHERE {predicate}) lockgate_slice",
        "fetchsize": str(table.fetch_size),
        "preferTimestampNTZ": "true",
    }
    if custom_schema:
        options["customSchema"] = custom_schema
    if partitions > 1:
        options.update(
            partitionColumn=table.split_column,
            lowerBound=str(stats["lo"]),
            upperBound=str(stats["hi"] + 1),
            numPartitions=str(partitions),
        )
    df = spark.read.format("jdbc").options(**options).load()
    return apply_casts(df, casts), {**stats, "partitions": partitions, "predicate": predicate}


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

    A run whose folder is already sealed and intact is not extracted again: that is the
    checkpoint a retried or cleared task resumes from.
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
    started = time.monotonic()
    try:
        df, stats = read_slice(spark, source, table, window)
        location.interval_dir.mkdir(parents=True, exist_ok=True)
        df.write.mode("overwrite").option("compression", "zstd").parquet(str(temp))
    except Exception as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if exc.__class__.__module__.startswith(("py4j", "pyspark")):
            raise _explain_source_error(exc, source, table.source_name) from None
        raise
    for junk in [*temp.glob(".*.crc"), *temp.glob("_SUCCESS")]:
        junk.unlink()
    files, rows, cursor_min, cursor_max = _parquet_summary(temp, window.column if table.incremental else None)
    manifest = {
        "source": config.source,
        "table": table.name,
        "source_table": table.source_name,
        "source_engine": source.engine,
        "source_location": source.describe(),
        "run_id": run_id,
        "mode": table.mode,
        "slice": window.as_dict(),
        "predicate": stats["predicate"],
        "source_rows": stats["rows"],
        "rows": rows,
        "partitions": stats["partitions"],
        "schema": [
            {"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable} for f in df.schema.fields
        ],
        "cursor_min": cursor_min.isoformat() if hasattr(cursor_min, "isoformat") else cursor_min,
        "cursor_max": cursor_max.isoformat() if hasattr(cursor_max, "isoformat") else cursor_max,
        "files": files,
        "extracted_at": datetime.now(UTC).isoformat(),
        "extract_seconds": round(time.monotonic() - started, 3),
    }
    folder = lake.seal(location, temp, manifest)
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
