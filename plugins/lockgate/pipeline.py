"""The four stages of one table in one run: extract → validate → load → publish.

Plain functions with no Airflow import, so tests and the CLI run them directly and
the DAG factory only wraps them. Each stage leaves a durable record (sealed lake
folder, quality report, audit row in ``lockgate.runs``) and checks for it first, so
a retried or cleared task resumes instead of redoing work, and a re-run of a
finished stage changes nothing.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate import faults, lake, observe, warehouse
from lockgate.config import SourceConfig, TableConfig
from lockgate.cursors import Cursor
from lockgate.errors import LakeError
from lockgate.incremental import Incremental, Slice, TableState, parse_time
from lockgate.lake.catalog import current_partitions
from lockgate.records import Manifest, RunInfo
from lockgate.settings import Settings, load_settings

__all__ = ["RunInfo", "extract_stage", "validate_stage", "load_stage", "publish_stage"]

log = logging.getLogger("lockgate")


def plan_slice(config: SourceConfig, table: TableConfig, run: RunInfo, settings: Settings) -> Slice:
    """The run's slice under the table's incremental rules (:mod:`lockgate.incremental`)."""
    state = TableState()
    if table.incremental and not run.full_refresh:
        with warehouse.connect(settings) as conn:
            state = warehouse.get_state(conn, config.source, table.name)
    rules = Incremental(table, config.start_date)
    window = rules.window(
        state,
        interval_start=run.interval_start,
        interval_end=run.interval_end,
        run_created=run.run_created,
        full_refresh=run.full_refresh,
    )
    earlier = _earlier_id_read(config, table, window, settings)
    if earlier is None:
        return window
    return rules.window(state, interval_start=window.interval_start, interval_end=window.interval_end, earlier=earlier)


def _earlier_id_read(config: SourceConfig, table: TableConfig, window: Slice, settings: Settings) -> Slice | None:
    """An ``id`` table's interval read before: the slice of its newest sealed read from
    the source (a reprocess reads that id range again)."""
    if table.cursor_kind != "id" or window.full:
        return None
    location = lake.RawLocation(
        settings.lake_root, config.source, table.name, window.interval_start, window.interval_end, "", 0
    )
    for folder in reversed(lake.sealed_versions(settings.lake_root, config.source, table.name, location.interval_dir.name)):
        batch = Manifest.from_dict(lake.read_manifest(folder))
        if not batch.replayed and not batch.slice.full and isinstance(batch.slice.hi, int):
            return batch.slice
    return None


def replay_version(
    config: SourceConfig, table: TableConfig, run: RunInfo, settings: Settings
) -> dict[str, Any]:
    """Seal this run's raw folder as a stored version of the same interval (hard links):
    the source is not touched. ``run.replay_from_lake`` is ``latest`` or a run id."""
    if table.incremental and not run.has_interval:
        raise LakeError(
            f"{config.source}.{table.name}: replay_from_lake needs a data interval; replay a range with "
            'a backfill: airflow backfill create --dag-id ... --dag-run-conf \'{"replay_from_lake": "latest"}\''
        )
    location = lake.RawLocation(
        settings.lake_root, config.source, table.name, run.interval_start, run.interval_end, run.run_id, run.version,
        stage_root=settings.stage_root,
    )  # fmt: skip
    if location.manifest_path.exists():
        return {**lake.verify(location.path), "path": str(location.path), "resumed": True}
    interval = location.interval_dir.name if table.incremental else None
    versions = [
        v
        for v in lake.sealed_versions(settings.lake_root, config.source, table.name, interval)
        if v != location.path
    ]
    wanted = run.replay_from_lake
    if wanted != "latest":
        versions = [v for v in versions if wanted in (v.name, lake.read_manifest(v).get("run_id"))]
    if not versions:
        where = f"interval {interval}" if interval else "any interval"
        raise LakeError(
            f"{config.source}.{table.name}: no stored raw version "
            f"{'' if wanted == 'latest' else repr(wanted) + ' '}for {where} in {location.table_dir}"
        )
    version = versions[-1]
    folder = lake.link_version(
        location,
        version,
        {
            "run_id": run.run_id,
            "version": run.version,
            "replayed_from": str(version),
            "replayed_at": datetime.now(UTC).isoformat(),
        },
    )
    return {**lake.read_manifest(folder), "path": str(folder), "resumed": False}


@observe.stage("extract")  # metrics and OpenLineage events (lockgate.observe)
def extract_stage(
    config: SourceConfig,
    table: TableConfig,
    run: RunInfo,
    *,
    settings: Settings | None = None,
    spark=None,
    source=None,
) -> dict[str, Any]:
    """Extract the run's slice into a sealed raw folder; returns its path and counts.

    The raw version is the run's clear number (:attr:`RunInfo.version`): an automatic
    retry keeps it and resumes from the stored plan and chunks; a cleared run reads the
    source again into a new version."""
    from spark_jobs.extract import run_extract, stored_plan

    settings = settings or load_settings()
    if run.replay_from_lake:
        manifest = replay_version(config, table, run, settings)
        log.info(
            "%s.%s: replaying %s from the lake", config.source, table.name, manifest.get("replayed_from")
        )
    elif table.files is not None:
        from lockgate.landing.extract import run_files_extract

        manifest = run_files_extract(config, table, run, settings)
    else:
        plan = stored_plan(settings, config.source, table.name, run.run_id, run.version)
        window = plan.slice if plan else plan_slice(config, table, run, settings)
        log.info(
            "%s.%s: %s slice %s (%s)",
            config.source,
            table.name,
            "resuming the stored plan of" if plan else "extracting",
            window.as_dict(),
            window.reason,
        )
        manifest = run_extract(
            config, table, window, run.run_id, version=run.version, source=source, settings=settings, spark=spark
        )
    batch = Manifest.from_dict(manifest)
    with warehouse.connect(settings) as conn:
        previous = warehouse.run_status(conn, config.source, table.name, run.run_id, batch.version)
        later_stage_done = (
            manifest.get("resumed")
            and previous is not None
            and previous["raw_path"] == manifest["path"]
            and previous["status"] in ("validated", "loaded", "published")
        )
        if not later_stage_done:  # a retry must not hide that later stages already finished
            warehouse.record_run(
                conn,
                config.source,
                table.name,
                run.run_id,
                version=batch.version,
                mode=table.mode,
                interval_start=batch.slice.interval_start,
                interval_end=batch.slice.interval_end,
                slice_lo=batch.slice.lo,
                slice_hi=batch.slice.hi,
                raw_path=manifest["path"],
                source_rows=batch.source_rows,
                rows_extracted=batch.rows,
                rows_null_cursor=manifest.get("rows_null_cursor"),
                extract_seconds=manifest["extract_seconds"],
                safe_hi=batch.safe_hi,
                read_at=batch.read_at,
                replayed_from=batch.replayed_from,
                status="extracted",
                error=None,
            )
    if batch.safe_hi and batch.slice.hi and batch.safe_hi < batch.slice.hi and not batch.replayed:
        log.warning(
            "%s.%s: a source transaction open since %s may still commit rows in this slice; the watermark "
            "stops there and the next run re-reads from it",
            config.source,
            table.name,
            batch.safe_hi.isoformat(),
        )
    verb = "reused sealed extract" if manifest.get("resumed") else "extracted"
    log.info("%s.%s: %s %d rows → %s", config.source, table.name, verb, batch.rows, manifest["path"])
    return {
        "raw_path": manifest["path"],
        "rows": batch.rows,
        "version": batch.version,
        "resumed": bool(manifest.get("resumed")),
    }


def _builtin_suite(table: TableConfig) -> dict[str, Any]:
    """Rules every table gets when it has no suite of its own: a usable primary key."""
    expectations = []
    for key in table.primary_key:
        expectations.append(
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": key}, "meta": {}}
        )
    if len(table.primary_key) == 1:
        expectations.append(
            {
                "type": "expect_column_values_to_be_unique",
                "kwargs": {"column": table.primary_key[0]},
                "meta": {},
            }
        )
    elif len(table.primary_key) > 1:
        expectations.append(
            {
                "type": "expect_compound_columns_to_be_unique",
                "kwargs": {"column_list": table.primary_key},
                "meta": {},
            }
        )
    return {"name": f"builtin.{table.name}", "expectations": expectations}


def quality_report_path(settings: Settings, source: str, table: str, run_id: str, version: int = 0) -> Path:
    return settings.lake_root / "quality" / source / table / f"{lake.run_folder(run_id, version)}.json"


def quarantine_path(settings: Settings, manifest: dict[str, Any], run_id: str) -> Path:
    """``lake/quarantine/<source>/<table>/<interval>/<run folder>/rows.parquet``."""
    window = Slice.from_dict(manifest["slice"])
    interval = f"{lake.stamp(window.interval_start)}_{lake.stamp(window.interval_end)}"
    return (
        settings.lake_root / "quarantine" / manifest["source"] / manifest["table"] / interval
        / lake.run_folder(run_id, int(manifest.get("version") or 0)) / "rows.parquet"
    )  # fmt: skip


def table_checks(table: TableConfig, manifest: dict[str, Any]) -> list[Any]:
    """Lockgate's own table-level checks of a batch: rows against the source's count for
    the slice, and the freshness of the cursor. (The sum reconciliation runs at load.)"""
    from lockgate.quality import RuleResult

    checks = []
    window = Slice.from_dict(manifest["slice"])
    if "source_rows" in manifest and not manifest.get("replayed_from"):
        # Each chunk's count is taken consistently with its rows (spark_jobs.extract), so
        # the batch must match the sum of the chunks' counts exactly.
        checks.append(
            RuleResult(
                expectation="lockgate_row_count_matches_source",
                kwargs={"source_rows": manifest["source_rows"]},
                rule="the batch has as many rows as the source counted for the slice",
                success=manifest["rows"] == manifest["source_rows"],
                observed_value=manifest["rows"],
            )
        )
    if table.freshness and window.interval_end and not window.full:
        newest = parse_time(manifest.get("cursor_max"))
        limit = window.interval_end - table.freshness
        checks.append(
            RuleResult(
                expectation="lockgate_cursor_is_fresh",
                kwargs={"column": table.cursor, "freshness": str(table.freshness)},
                rule=f"the newest {table.cursor} is at most {table.freshness} older than the interval end",
                success=newest is not None and newest >= limit,
                observed_value=manifest.get("cursor_max"),
            )
        )
    return checks


def _cross_run(table: TableConfig, manifest: dict[str, Any], files: list[str], window: Slice, history: list[tuple]):
    """The batch against the table's recent published intervals (:mod:`lockgate.cross_run`)."""
    from lockgate import cross_run

    interval = None
    if window.interval_start and window.interval_end:
        interval = (window.interval_end - window.interval_start).total_seconds()
    span = cross_run.slice_span(window.lo, window.hi, table.incremental)
    batch = cross_run.batch_profile(manifest, files, window.interval_end if table.incremental else None, span)
    return cross_run.evaluate(
        batch,
        window.interval_end or datetime.now(UTC),
        cross_run.past_runs(history, table.checks.history, table.incremental),
        table.checks,
        interval_seconds=interval,
        max_span=interval + table.lookback.total_seconds() if interval else None,
    )


def _cross_run_fields(outcome) -> dict[str, Any]:
    batch = outcome.batch
    return {
        "freshness_lag_seconds": batch.freshness_lag,
        "null_counts": json.dumps(batch.null_counts, sort_keys=True),
        "cross_run_status": outcome.status,
        "cross_run_checks": outcome.to_json(),
    }


def _batch_for(engine: str, files: list[str], local: list[str], suite: dict[str, Any], settings: Settings, spark):
    """The batch as the chosen GX engine reads it."""
    from lockgate import quality

    if engine == "pandas":
        return quality.read_batch_pandas(files)
    if engine == "duckdb":
        from lockgate import gx_duckdb

        return gx_duckdb.batch(files, quality.columns_read(suite), settings)
    # Every scan reads only the Parquet columns the rules use. Not cached: building
    # Spark's in-memory cache costs about three such scans (measured on the benchmark
    # table), more than the scans GX's bundled metrics make.
    return quality.prune_for_rules(spark.read.parquet(*local), suite)


@observe.stage("validate")  # metrics and OpenLineage events (lockgate.observe)
def validate_stage(
    config: SourceConfig,
    table: TableConfig,
    run: RunInfo,
    raw_path: str,
    *,
    settings: Settings | None = None,
    spark=None,
) -> dict[str, Any]:
    """Run the table's Great Expectations suite and Lockgate's table checks on the batch.

    Policy (``on_quality_failure``): ``fail`` raises :class:`~lockgate.quality.QualityError`
    naming the table and the broken rules, which stops the load; ``warn`` records the
    failure and loads everything; ``quarantine`` lets the load set aside the rows that
    break row-level rules (a broken table-level rule still fails the batch).
    """
    from lockgate import quality

    settings = settings or load_settings()
    manifest = lake.verify(raw_path, checksums=False)
    version = int(manifest.get("version") or 0)
    with warehouse.connect(settings) as conn:
        previous = warehouse.run_status(conn, config.source, table.name, run.run_id, version)
        if (
            previous
            and previous["raw_path"] == raw_path
            and previous["validation_status"] in ("passed", "warned", "quarantine")
            and (previous["quality_report"] is None or lake.lake_path(previous["quality_report"]).exists())
        ):
            log.info(
                "%s.%s: this batch was already validated (%s); not again",
                config.source,
                table.name,
                previous["validation_status"],
            )
            return {
                "status": previous["validation_status"],
                "rules_evaluated": previous["rules_evaluated"],
                "rules_failed": previous["rules_failed"],
                "report": previous["quality_report"],
                "resumed": True,
            }
        # Destructive schema drift is reported before any rule runs (nothing is loaded).
        warehouse.check_schema(conn, config.source, table.name, manifest["schema"])
        window = Slice.from_dict(manifest["slice"])
        history = warehouse.recent_profiles(
            conn, config.source, table.name, run.run_id, window.interval_end, table.checks.history
        )
    suite = (
        quality.load_suite(settings.expectations_dir, table.expectations)
        if table.expectations
        else _builtin_suite(table)
    )
    started = time.monotonic()
    files = lake.data_files(raw_path, manifest)
    report = None
    if files and suite["expectations"]:
        engine, why = quality.choose_engine(suite, manifest["schema"], manifest["rows"], settings.validation_engine)
        log.info("%s.%s: validated by GX on %s (%s)", config.source, table.name, engine, why)
        if engine == "spark" and spark is None:
            from lockgate.spark import get_spark

            spark = get_spark(f"lockgate-validate-{config.source}")
        spark_files = files if engine == "spark" else []  # Spark reads local copies of S3 objects
        with lake.local_copies(spark_files, settings.stage_root / "validate" / lake.run_folder(run.run_id, version)) as local:
            df = _batch_for(engine, files, local, suite, settings, spark)
            report = quality.validate_dataframe(
                df,
                suite,
                table=f"{config.source}.{table.name}",
                row_count=manifest["rows"],
                docs_dir=settings.lake_root / "quality" / config.source / "docs",
                run_name=run.run_id,
            )
    checks = table_checks(table, manifest)
    across = _cross_run(table, manifest, files, window, history)
    if report is None and checks:
        report = quality.ValidationReport(
            table=f"{config.source}.{table.name}", suite="lockgate", success=True, evaluated=0, passed=0,
            failed=0, row_count=manifest["rows"], results=[], validated_at=datetime.now(UTC).isoformat(),
            gx_version="-",
        )  # fmt: skip
    for check in checks:
        report.add(check)
    path = None
    success = report is None or report.success
    broken = report.failed_rules() if report else []
    row_level = all(r.row_predicate and not r.exception for r in broken)
    if across.status == "failed":
        status = "failed"
    elif success:
        status = "passed"
    elif table.on_quality_failure == "warn":
        status = "warned"
    elif table.on_quality_failure == "quarantine" and row_level:
        status = "quarantine"
    else:
        status = "failed"
    if report is not None:
        path = quality_report_path(settings, config.source, table.name, run.run_id, version)
        faults.hit("validate.before_report", table.name)
        extra = {"status": status, "policy": table.on_quality_failure, "cross_run": json.loads(across.to_json())}
        quality.write_report(report, path, extra=extra)
    seconds = round(time.monotonic() - started, 3)
    message = None
    if not success:
        message = report.failure_message()
    if across.status == "failed":
        message = "\n".join(filter(None, [message, f"{config.source}.{table.name}: {across.message()}"]))
    if message:
        if status == "failed":
            message += "\nthe batch was not loaded"
            if table.on_quality_failure == "quarantine" and not success:
                message += " (a table-level rule failed: rows cannot be set aside)"
        elif status == "quarantine":
            message += "\nrows breaking these rules are quarantined; the rest loads"
        else:
            message += "\nloaded anyway (policy warn)"
    with warehouse.connect(settings) as conn:
        warehouse.record_run(
            conn,
            config.source,
            table.name,
            run.run_id,
            version=version,
            rules_evaluated=report.evaluated if report else 0,
            rules_passed=report.passed if report else 0,
            rules_failed=report.failed if report else 0,
            rows_validated=manifest["rows"] if status != "failed" else 0,
            rows_quarantined=0,
            validation_status=status,
            quality_report=str(path) if path else None,
            validate_seconds=seconds,
            status="validated" if status != "failed" else "failed",
            error=message,
            **_cross_run_fields(across),
        )
    if path:
        log.info("%s.%s: quality report %s", config.source, table.name, path)
    if report is not None and report.docs_page:
        log.info("%s.%s: Data Docs page %s", config.source, table.name, report.docs_page)
    if status == "failed":
        raise quality.QualityError(message, report)
    if message:
        log.warning("%s", message)
    if across.status == "warned":
        log.warning("%s.%s: %s\nloaded anyway (policy warn)", config.source, table.name, across.message())
    return {
        "status": status,
        "rules_evaluated": report.evaluated if report else 0,
        "rules_failed": report.failed if report else 0,
        "report": str(path) if path else None,
        "docs_page": report.docs_page if report else None,
    }


@observe.stage("load")  # metrics and OpenLineage events (lockgate.observe)
def load_stage(
    config: SourceConfig, table: TableConfig, run: RunInfo, raw_path: str, *, settings: Settings | None = None
) -> dict[str, Any]:
    """Load the verified raw batch into the warehouse in one transaction."""
    settings = settings or load_settings()
    manifest = lake.verify(raw_path)
    batch = Manifest.from_dict(manifest)
    window = batch.slice
    started = time.monotonic()
    with warehouse.connect(settings) as conn:
        previous = warehouse.run_status(conn, config.source, table.name, run.run_id, batch.version)
        if previous and previous["status"] in ("failed",) and previous["validation_status"] == "failed":
            raise LakeError(
                f"{config.source}.{table.name}: run {run.run_id} failed validation; it cannot be loaded"
            )
        if previous and previous["status"] in ("loaded", "published") and previous["raw_path"] == raw_path:
            log.info("%s.%s: already loaded by this run; nothing to do", config.source, table.name)
            return {"rows_loaded": previous["rows_loaded"], "resumed": True}
        conn.execute("BEGIN TRANSACTION")
        try:
            rules = _quarantine_rules(previous, config.source, table.name)
            result = warehouse.load_files(
                conn,
                quarantine=rules,
                quarantine_file=quarantine_path(settings, manifest, run.run_id) if rules else None,
                sum_column=table.reconcile_sum,
                source=config.source,
                table=table.name,
                mode=table.mode,
                files=lake.data_files(raw_path, manifest),
                schema=manifest["schema"],
                primary_key=table.primary_key,
                cursor=table.cursor,
                cursor_rules=Cursor.of(table),
                slice_lo=window.lo,
                slice_hi=window.hi,
                full_slice=window.full,
                run_id=run.run_id,
                version=batch.version,
                read_at=batch.read_at,
                replace_files=_landing_keys(table, manifest),
                parallel=table.load_parallelism,
            )
            if result["rows_staged"] != manifest["rows"]:
                raise LakeError(
                    f"{raw_path}: staged {result['rows_staged']} rows but the manifest lists {manifest['rows']}"
                )
            if table.reconcile_sum and manifest.get("source_sum") is not None:
                from decimal import Decimal

                loaded_sum = Decimal(result["staged_sum"] or 0)
                if loaded_sum != Decimal(manifest["source_sum"]):
                    from lockgate.quality import QualityError

                    raise QualityError(
                        f"{config.source}.{table.name}: sum of {table.reconcile_sum} does not reconcile: "
                        f"the source counted {manifest['source_sum']} for the slice, the batch has {loaded_sum} "
                        "(loaded + quarantined); nothing was loaded"
                    )
            deleted = None
            if table.delete_propagation != "none" and manifest.get("keys"):
                deleted = warehouse.propagate_deletes(
                    conn,
                    source=config.source,
                    table=table.name,
                    policy=table.delete_propagation,
                    key_files=lake.key_files(raw_path, manifest),
                    primary_key=table.primary_key,
                    cursor=table.cursor,
                    cursor_rules=Cursor.of(table),
                    keys_read_at=parse_time(manifest["keys"].get("read_at")),
                    read_up_to=batch.slice.hi if table.cursor_kind == "id" else None,
                )
            faults.hit("load.before_commit", table.name)
            warehouse.record_run(
                conn,
                config.source,
                table.name,
                run.run_id,
                version=batch.version,
                rows_loaded=result["rows_loaded"],
                rows_quarantined=result["rows_quarantined"] + int(manifest.get("rows_rejected") or 0),
                rows_deleted=deleted,
                load_seconds=round(time.monotonic() - started, 3),
                status="loaded",
                # Keep why a warned or quarantined batch was let through; clear old failures.
                error=previous["error"] if previous and previous["validation_status"] in ("warned", "quarantine") else None,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            # Rows set aside by a load that did not commit are not quarantined either.
            quarantine_path(settings, manifest, run.run_id).unlink(missing_ok=True)
            raise
    faults.hit("load.after_commit", table.name)
    if deleted:
        verb = "deleted" if table.delete_propagation == "delete" else "flagged as deleted"
        log.info("%s.%s: %d rows %s (keys gone from the source)", config.source, table.name, deleted, verb)
    for change in result["schema_changes"]:
        log.info("%s.%s: schema %s", config.source, table.name, change)
    log.info(
        "%s.%s: loaded %d rows (%s), quarantined %d; table now has %d rows",
        config.source,
        table.name,
        result["rows_loaded"],
        table.mode,
        result["rows_quarantined"],
        result["rows_after"],
    )
    return {
        "rows_loaded": result["rows_loaded"],
        "rows_quarantined": result["rows_quarantined"],
        "rows_after": result["rows_after"],
        "resumed": False,
    }


def _landing_keys(table: TableConfig, manifest: dict[str, Any]) -> list[str] | None:
    """The landing files of a files table's ``append`` batch: their rows are replaced."""
    if table.files is None or table.mode != "append":
        return None
    return [f["key"] for f in (manifest.get("landing") or {}).get("files", [])]


def _quarantine_rules(previous: dict[str, Any] | None, source: str, table: str) -> list[tuple[str, str]]:
    """The row-level rules this batch broke, when its validation chose ``quarantine``."""
    if not previous or previous.get("validation_status") != "quarantine":
        return []
    import json

    report = json.loads(lake.lake_path(previous["quality_report"]).read_text(encoding="utf-8"))
    rules = [(r.get("rule") or r["expectation"], r["row_predicate"]) for r in report["results"] if not r["success"]]
    if not rules or any(not sql for _, sql in rules):
        raise LakeError(f"{source}.{table}: the quality report {previous['quality_report']} has no row-level rules")
    return rules


@observe.stage("publish")  # metrics and OpenLineage events (lockgate.observe)
def publish_stage(
    config: SourceConfig, table: TableConfig, run: RunInfo, raw_path: str, *, settings: Settings | None = None
) -> dict[str, Any]:
    """Advance the watermark, close the audit row and refresh the lake catalog view.

    A replayed batch read nothing from the source: it moves no watermark and leaves
    the re-read window as it is."""
    settings = settings or load_settings()
    batch = Manifest.from_dict(lake.read_manifest(raw_path))
    partitions = current_partitions(settings.lake_root, config.source, table.name, table.incremental)
    with warehouse.connect(settings) as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            state = warehouse.get_state(conn, config.source, table.name)
            if table.incremental and not batch.replayed:
                safe = _safe_high(conn, config, table, batch)
                state = Incremental.after_read(state, batch.slice, safe, batch.cursor_max, run.run_id)
                warehouse.save_state(conn, config.source, table.name, state)
            warehouse.refresh_lake_view(conn, config.source, table.name, partitions)
            faults.hit("publish.before_commit", table.name)
            warehouse.record_run(conn, config.source, table.name, run.run_id, version=batch.version, status="published")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    log.info("%s.%s: published; watermark %s", config.source, table.name, state.watermark)
    mark = state.watermark
    return {"watermark": mark if isinstance(mark, int) or mark is None else mark.isoformat()}


def _safe_high(conn, config: SourceConfig, table: TableConfig, batch: Manifest):
    """How far the watermark may move after this batch (:mod:`lockgate.incremental`)."""
    if table.cursor_kind != "id":
        return batch.safe_hi if "safe_hi" in batch.raw else batch.slice.hi
    earlier = warehouse.read_positions(conn, config.source, table.name)
    safe = Incremental.safe_position(batch.slice, batch.oldest_open, earlier)
    if safe != batch.slice.hi and not batch.slice.full:
        log.warning(
            "%s.%s: a source transaction open since %s may still commit ids below %s; the watermark stops at "
            "%s and the next run reads from there",
            config.source, table.name, batch.oldest_open, batch.slice.hi, safe,
        )  # fmt: skip
    return safe
