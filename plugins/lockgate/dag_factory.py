"""Source configuration → one Airflow DAG per source.

Each table becomes a task group ``<table>`` with ``extract >> validate >> load >>
publish``. The graph is plain data first (the typed :class:`SourceConfig`), Airflow
objects last. Nothing heavy is imported and no database is touched at parse time:
Spark, GX and DuckDB are imported inside the tasks.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from airflow.sdk import DAG, Asset, Param, TaskGroup, task

from lockgate.config import SourceConfig, TableConfig, parse_duration

TAG_VOCABULARY = ("lockgate", "ingestion", "batch", "pull")
_T = TypeVar("_T")


def fail_fast(task_function: Callable[..., _T]) -> Callable[..., _T]:
    """The one place where Lockgate's errors meet Airflow's retries: an error no retry
    can heal (:data:`lockgate.errors.UNRECOVERABLE`: a bad configuration, a column type
    or value without a warehouse mapping, destructive schema drift) fails the task at
    once with its message; every other error is retried as configured."""

    @functools.wraps(task_function)
    def run(*args: Any, **kwargs: Any) -> _T:
        from airflow.sdk.exceptions import AirflowFailException

        from lockgate.errors import UNRECOVERABLE

        try:
            return task_function(*args, **kwargs)
        except UNRECOVERABLE as exc:
            raise AirflowFailException(f"{exc} [{type(exc).__name__}: not retried]") from exc

    return run


def timetable_for(schedule: str):
    """An *interval* timetable, so every scheduled run has a real data interval.

    Airflow 3's default for a cron string is a trigger timetable whose
    ``data_interval_start == data_interval_end``; slicing needs the interval.
    """
    from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    if re.fullmatch(r"\s*\d+\s*[smhdw]?\s*", schedule):
        return DeltaDataIntervalTimetable(parse_duration(schedule))
    return CronDataIntervalTimetable(schedule, timezone="UTC")


def table_asset(source: str, table: str) -> Asset:
    return Asset(name=f"lockgate.{source}.{table}", uri=f"lockgate://warehouse/{source}/{table}")


def _run_info(context: dict[str, Any]):
    """The run as the pipeline sees it. Scheduled and backfill runs carry a data
    interval; a manual run triggered without a logical date has none and reads from
    the stored watermark up to when it was created."""
    from lockgate.records import RunInfo

    params = context.get("params") or {}
    dag_run = context["dag_run"]
    created = getattr(dag_run, "run_after", None) or getattr(dag_run, "queued_at", None)
    return RunInfo(
        version=int(getattr(dag_run, "clear_number", 0) or 0),
        run_id=dag_run.run_id,
        interval_start=context.get("data_interval_start"),
        interval_end=context.get("data_interval_end"),
        run_created=created,
        full_refresh=bool(params.get("full_refresh")),
        replay_from_lake=str(params.get("replay_from_lake") or ""),
    )


def _selected(table: str, params: dict[str, Any]) -> bool:
    chosen = params.get("tables") or []
    return not chosen or table in chosen


def _table_group(config: SourceConfig, table: TableConfig) -> TaskGroup:
    source_name, table_name = config.source, table.name

    def load_config() -> tuple[SourceConfig, TableConfig]:
        # Re-read at run time so a task runs the configuration it was scheduled with
        # and never a copy captured in a closure at parse time.
        from lockgate.config import load_source
        from lockgate.settings import load_settings

        current = load_source(load_settings().sources_dir, source_name)
        return current, current.table(table_name)

    with TaskGroup(group_id=table_name, tooltip=f"{table.mode} load of {table.source_name}") as group:

        reads = (
            "Take the interval's landing files once each (lockgate.landed_files) and convert them to a sealed raw lake folder."
            if table.files is not None
            else "Read the run's slice from the source with Spark into a sealed raw lake folder."
        )

        @task(task_id="extract", doc_md=reads)
        @fail_fast
        def extract(**context) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowSkipException

            from lockgate.pipeline import extract_stage

            params = context["params"]
            if not _selected(table_name, params):
                raise AirflowSkipException(f"table {table_name} not in the run's 'tables' parameter")
            cfg, tbl = load_config()
            return extract_stage(cfg, tbl, _run_info(context))

        @task(task_id="validate", doc_md="Run the table's Great Expectations suite on the raw batch.")
        @fail_fast
        def validate(extracted: dict[str, Any], **context) -> dict[str, Any]:
            from lockgate.pipeline import validate_stage

            cfg, tbl = load_config()
            return validate_stage(cfg, tbl, _run_info(context), extracted["raw_path"])

        @task(task_id="load", doc_md="Load the verified batch into the warehouse in one transaction.")
        @fail_fast
        def load(extracted: dict[str, Any], validated: dict[str, Any], **context) -> dict[str, Any]:
            from lockgate.pipeline import load_stage

            cfg, tbl = load_config()
            return load_stage(cfg, tbl, _run_info(context), extracted["raw_path"])

        @task(
            task_id="publish",
            outlets=[table_asset(source_name, table_name)],
            doc_md="Advance the watermark, close the audit row, refresh the lake view, emit the asset event.",
        )
        @fail_fast
        def publish(extracted: dict[str, Any], loaded: dict[str, Any], **context) -> dict[str, Any]:
            from lockgate.pipeline import publish_stage

            cfg, tbl = load_config()
            return publish_stage(cfg, tbl, _run_info(context), extracted["raw_path"])

        extracted = extract()
        if table.files is not None and table.files.wait_for is not None:
            _wait_for_files(config, table, load_config) >> extracted
        validated = validate(extracted)
        loaded = load(extracted, validated)
        publish(extracted, loaded)
    return group


def _wait_for_files(config: SourceConfig, table: TableConfig, load_config: Callable[[], tuple[SourceConfig, TableConfig]]):
    """The sensor before a files table's extract: the Amazon provider's deferrable
    ``S3KeySensor`` for an S3 landing zone, a rescheduling sensor for a folder."""
    assert table.files is not None and table.files.wait_for is not None
    wait = table.files.wait_for
    landing = table.files.landing or config.landing or ""
    timing = {"timeout": wait.timeout.total_seconds(), "poke_interval": wait.poke_interval.total_seconds()}
    if landing.startswith("s3://"):
        from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

        from lockgate.settings import load_settings

        return S3KeySensor(
            task_id="wait_for_files", bucket_key=f"{landing.rstrip('/')}/{wait.key}", wildcard_match="*" in wait.key,
            aws_conn_id=config.landing_conn_id or load_settings().lake_conn_id, deferrable=True, **timing,
        )  # fmt: skip

    @task.sensor(task_id="wait_for_files", mode="reschedule", **timing)
    def wait_for_files(key: str) -> bool:
        from lockgate.landing.zone import key_present
        from lockgate.settings import load_settings

        cfg, tbl = load_config()
        return key_present(load_settings(), cfg, tbl, key)

    return wait_for_files(wait.key)


def build_dag(config: SourceConfig, *, doc_md: str | None = None) -> DAG:
    """The DAG ``ingest_<source>``: one task group per table, tables in parallel."""
    default_args = {
        "owner": config.owner,
        "retries": config.retries,
        "retry_delay": config.retry_delay,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": config.max_retry_delay,
        "execution_timeout": timedelta(hours=6),
    }
    tags = sorted({*TAG_VOCABULARY, f"source:{config.source}", *config.tags})
    table_names = [t.name for t in config.tables]
    with DAG(
        dag_id=config.dag_id,
        description=config.description or f"Ingest {config.source} into the warehouse",
        doc_md=doc_md or _doc(config),
        schedule=timetable_for(config.schedule),
        start_date=config.start_date,
        catchup=config.catchup,
        max_active_runs=config.max_active_runs,
        default_args=default_args,
        tags=tags,
        params=run_params(table_names),
    ) as dag:
        for table in config.tables:
            _table_group(config, table)
    return dag


def run_params(table_names: list[str]) -> dict[str, Param]:
    """The trigger form of an ingestion DAG.

    Every field accepts "nothing chosen" (``null``): the UI renders a field whose type
    excludes null as required and an empty default then blocks the Trigger button.
    Nothing chosen means the scheduled behaviour: all tables, read from the source.
    """
    return {
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Read whole tables from the source instead of the run's incremental slice.",
        ),
        "tables": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "enum": table_names},
            examples=table_names,  # the UI's multi-select takes its options from here
            title="Tables",
            description="Run only these tables. Nothing chosen: all of the source's tables.",
        ),
        "replay_from_lake": Param(
            None,
            type=["null", "string"],
            title="Replay from the lake",
            description="Reload a stored raw version instead of reading the source: 'latest', or the run id "
            "of a stored version. Empty: read the source.",
        ),
    }


def _doc(config: SourceConfig) -> str:
    lines = [
        f"# Ingest `{config.source}`",
        "",
        config.description or "",
        "",
        f"Connection `{config.connection}`, schedule `{config.schedule}` (interval timetable, UTC).",
        "",
        "| table | mode | cursor | lookback | key | suite | on failure |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in config.tables:
        lines.append(
            f"| {t.name} | {t.mode} | {t.cursor or '-'} | {t.lookback} | {', '.join(t.primary_key) or '-'} "
            f"| {t.expectations or 'built-in'} | {t.on_quality_failure} |"
        )
    lines += ["", "Each table: extract → validate → load → publish. Re-running any interval is idempotent."]
    return "\n".join(lines)
