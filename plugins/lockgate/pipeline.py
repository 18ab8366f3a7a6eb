"""The four stages of one table in one run: extract → validate → load → publish.

Plain functions with no Airflow import, so tests and the CLI run them directly and
the DAG factory only wraps them. Each stage leaves a durable record (sealed lake
folder, quality report, audit row in ``lockgate.runs``) and checks for it first, so
a retried or cleared task resumes instead of redoing work, and a re-run of a
finished stage changes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lockgate import lake, warehouse
from lockgate.config import SourceConfig, TableConfig
from lockgate.errors import LakeError
from lockgate.settings import Settings, load_settings
from lockgate.slices import Slice, compute_slice

log = logging.getLogger("lockgate")


@dataclass(frozen=True)
class RunInfo:
    """What a stage needs to know about the Airflow run (or a CLI run)."""

    run_id: str
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    run_created: datetime | None = None
    full_refresh: bool = False


def plan_slice(config: SourceConfig, table: TableConfig, run: RunInfo, settings: Settings) -> Slice:
    watermark = None
    manual = not (run.interval_start and run.interval_end and run.interval_start < run.interval_end)
    if table.incremental and manual and not run.full_refresh:
        with warehouse.connect(settings.warehouse) as conn:
            watermark = warehouse.get_watermark(conn, config.source, table.name)
    return compute_slice(
        table,
        interval_start=run.interval_start,
        interval_end=run.interval_end,
        run_created=run.run_created,
        watermark=watermark,
        full_refresh=run.full_refresh,
    )


def extract_stage(
    config: SourceConfig,
    table: TableConfig,
    run: RunInfo,
    *,
    settings: Settings | None = None,
    spark=None,
    source=None,
) -> dict[str, Any]:
    """Extract the run's slice into a sealed raw folder; returns its path and counts."""
    from spark_jobs.extract import run_extract

    settings = settings or load_settings()
    window = plan_slice(config, table, run, settings)
    log.info("%s.%s: extracting slice %s", config.source, table.name, window.as_dict())
    manifest = run_extract(config, table, window, run.run_id, source=source, settings=settings, spark=spark)
    with warehouse.connect(settings.warehouse) as conn:
        warehouse.record_run(
            conn,
            config.source,
            table.name,
            run.run_id,
            mode=table.mode,
            interval_start=window.interval_start,
            interval_end=window.interval_end,
            slice_lo=window.lo,
            slice_hi=window.hi,
            raw_path=manifest["path"],
            source_rows=manifest["source_rows"],
            rows_extracted=manifest["rows"],
            extract_seconds=manifest["extract_seconds"],
            status="extracted",
            error=None,
        )
    verb = "reused sealed extract" if manifest.get("resumed") else "extracted"
    log.info("%s.%s: %s %d rows → %s", config.source, table.name, verb, manifest["rows"], manifest["path"])
    return {"raw_path": manifest["path"], "rows": manifest["rows"], "resumed": bool(manifest.get("resumed"))}


def _builtin_suite(table: TableConfig) -> dict[str, Any]:
    """Rules every table gets when it has no suite of its own: a usable primary key."""
    expectations = []
    for key in table.primary_key:
        expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": key}, "meta": {}})
    if len(table.primary_key) == 1:
        expectations.append(
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": table.primary_key[0]}, "meta": {}}
        )
    elif len(table.primary_key) > 1:
        expectations.append(
            {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": table.primary_key}, "meta": {}}
        )
    return {"name": f"builtin.{table.name}", "expectations": expectations}


def quality_report_path(settings: Settings, source: str, table: str, run_id: str) -> Path:
    return settings.lake_root / "quality" / source / table / f"{lake.safe_name(run_id)}.json"


def validate_stage(
    config: SourceConfig,
    table: TableConfig,
    run: RunInfo,
    raw_path: str,
    *,
    settings: Settings | None = None,
    spark=None,
) -> dict[str, Any]:
    """Run the table's Great Expectations suite on the raw batch.

    ``fail`` (and, until row-level quarantine exists, ``quarantine``) raises
    :class:`~lockgate.quality.QualityError` naming the table and the broken rules,
    which stops the load; ``warn`` records the failure and lets the batch through.
    """
    from lockgate import quality

    settings = settings or load_settings()
    manifest = lake.verify(raw_path, checksums=False)
    suite = (
        quality.load_suite(settings.expectations_dir, table.expectations)
        if table.expectations
        else _builtin_suite(table)
    )
    started = time.monotonic()
    files = lake.data_files(raw_path, manifest)
    if files and suite["expectations"]:
        if spark is None:
            from lockgate.spark import get_spark

            spark = get_spark(f"lockgate-validate-{config.source}")
        df = spark.read.parquet(*files).cache()
        try:
            report = quality.validate_spark_dataframe(
                df, suite, table=f"{config.source}.{table.name}", row_count=manifest["rows"]
            )
        finally:
            df.unpersist()
        evaluated, failed, success = report.evaluated, report.failed, report.success
        path = quality_report_path(settings, config.source, table.name, run.run_id)
        quality.write_report(report, path)
    else:
        report, evaluated, failed, success, path = None, 0, 0, True, None
    seconds = round(time.monotonic() - started, 3)
    status = "passed" if success else ("warned" if table.on_quality_failure == "warn" else "failed")
    with warehouse.connect(settings.warehouse) as conn:
        warehouse.record_run(
            conn,
            config.source,
            table.name,
            run.run_id,
            rules_evaluated=evaluated,
            rules_failed=failed,
            rows_validated=manifest["rows"] if success else 0,
            rows_quarantined=0,
            validation_status=status,
            quality_report=str(path) if path else None,
            validate_seconds=seconds,
            status="validated" if status != "failed" else "failed",
            error=report.failure_message() if report is not None and not success else None,
        )
    if path:
        log.info("%s.%s: quality report %s", config.source, table.name, path)
    if not success:
        if table.on_quality_failure == "warn":
            log.warning("%s", report.failure_message())
        else:
            raise quality.QualityError(report.failure_message())
    return {"status": status, "rules_evaluated": evaluated, "rules_failed": failed, "report": str(path) if path else None}


def load_stage(
    config: SourceConfig, table: TableConfig, run: RunInfo, raw_path: str, *, settings: Settings | None = None
) -> dict[str, Any]:
    """Load the verified raw batch into the warehouse in one transaction."""
    settings = settings or load_settings()
    manifest = lake.verify(raw_path)
    window = Slice.from_dict(manifest["slice"])
    started = time.monotonic()
    with warehouse.connect(settings.warehouse) as conn:
        previous = warehouse.run_status(conn, config.source, table.name, run.run_id)
        if previous and previous["status"] in ("failed",) and previous["validation_status"] == "failed":
            raise LakeError(
                f"{config.source}.{table.name}: run {run.run_id} failed validation; it cannot be loaded"
            )
        if previous and previous["status"] in ("loaded", "published") and previous["raw_path"] == raw_path:
            log.info("%s.%s: already loaded by this run; nothing to do", config.source, table.name)
            return {"rows_loaded": previous["rows_loaded"], "resumed": True}
        conn.execute("BEGIN TRANSACTION")
        try:
            result = warehouse.load_files(
                conn,
                source=config.source,
                table=table.name,
                mode=table.mode,
                files=lake.data_files(raw_path, manifest),
                schema=manifest["schema"],
                primary_key=table.primary_key,
                cursor=table.cursor,
                slice_lo=window.lo,
                slice_hi=window.hi,
                full_slice=window.full,
                run_id=run.run_id,
            )
            if result["rows_staged"] != manifest["rows"]:
                raise LakeError(
                    f"{raw_path}: staged {result['rows_staged']} rows but the manifest lists {manifest['rows']}"
                )
            warehouse.record_run(
                conn,
                config.source,
                table.name,
                run.run_id,
                rows_loaded=result["rows_staged"],
                load_seconds=round(time.monotonic() - started, 3),
                status="loaded",
                error=None,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    for change in result["schema_changes"]:
        log.info("%s.%s: schema %s", config.source, table.name, change)
    log.info(
        "%s.%s: loaded %d rows (%s); table now has %d rows",
        config.source,
        table.name,
        result["rows_staged"],
        table.mode,
        result["rows_after"],
    )
    return {"rows_loaded": result["rows_staged"], "rows_after": result["rows_after"], "resumed": False}


def publish_stage(
    config: SourceConfig, table: TableConfig, run: RunInfo, raw_path: str, *, settings: Settings | None = None
) -> dict[str, Any]:
    """Advance the watermark, close the audit row and refresh the lake catalog view."""
    settings = settings or load_settings()
    manifest = lake.read_manifest(raw_path)
    window = Slice.from_dict(manifest["slice"])
    if table.incremental:
        current = lake.latest_per_interval(settings.lake_root, config.source, table.name)
    else:
        sealed = lake.sealed_runs(settings.lake_root, config.source, table.name)
        current = sorted(sealed, key=lambda p: lake.read_manifest(p).get("sealed_at", ""))[-1:]
    files = [f for folder in current for f in lake.data_files(folder, lake.read_manifest(folder))]
    with warehouse.connect(settings.warehouse) as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            watermark = warehouse.advance_watermark(
                conn, config.source, table.name, window.hi, manifest.get("cursor_max"), run.run_id
            )
            warehouse.refresh_lake_view(conn, config.source, table.name, files)
            warehouse.record_run(conn, config.source, table.name, run.run_id, status="published")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    log.info("%s.%s: published; watermark %s", config.source, table.name, watermark)
    return {"watermark": watermark.isoformat() if watermark else None}
