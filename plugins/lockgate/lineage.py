"""OpenLineage events for every table run.

One table run — a source table read for one Airflow run id into one raw version —
is one OpenLineage run of the job ``<dag_id>.<table>`` (e.g. ``ingest_shop.orders``)
in the ``[openlineage] namespace`` (default ``default``):

- ``START`` when its extract begins;
- ``COMPLETE`` when its publish returns;
- ``FAIL`` when any of its four stages raises.

The four stages run as separate tasks, so the OpenLineage run id is derived from the
table run's identity (source, table, Airflow run id, raw version): every event of the
table run carries the same id, and an automatic retry re-emits ``START`` for it.

Datasets, named by OpenLineage's naming conventions and never with credentials:

- input: the source table, ``postgres://host:port`` + ``db.schema.table`` (schema
  ``public`` when the table has none), ``mysql://host:port`` + ``db.table``, or
  ``sqlite://<file>`` + ``table``. A replay from the lake reads no source: its input
  is the stored raw version it replays (``file`` + its folder).
- outputs: the sealed raw version (``file`` + its folder path) and the warehouse
  table (``duckdb://<warehouse file>`` + ``<source>.<table>``).

Facets: ``schema`` (the batch's columns and Spark types) on every dataset;
``inputStatistics`` (rows read) and ``dataQualityAssertions`` (every rule of the
validation report: expectation, success, column, rule name) on the input — the
assertions are an input facet in the OpenLineage spec, and they hold for the slice
as read; ``outputStatistics`` on the outputs (raw: rows, bytes, files; warehouse:
rows loaded); run facets ``nominalTime`` (the data interval), ``tags`` (Airflow run
id, raw version, replay) and, on ``FAIL``, ``errorMessage`` (stage and error, with
the source's password masked).

Where the events go is Airflow's ``[openlineage]`` configuration, read as the provider
reads it (:mod:`airflow.providers.openlineage.conf`): ``disabled = True`` (or
``OPENLINEAGE_DISABLED``) sends nothing; ``transport`` (JSON), ``config_path`` or
``config_conn_id`` — or the client's ``OPENLINEAGE_URL`` / ``OPENLINEAGE__TRANSPORT__*``
variables — choose the backend, e.g. Marquez over HTTP. With nothing configured the
events are appended to ``<lake>/lineage/<YYYY-MM-DD>.jsonl`` (UTC date of the event,
one JSON event per line). Events are sent through the provider's adapter: Airflow's
secret masker redacts them and a failed emission is logged, never raised.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate import lake

if TYPE_CHECKING:
    from openlineage.client.event_v2 import InputDataset, OutputDataset, RunEvent

    from lockgate.config import SourceConfig, TableConfig
    from lockgate.observe import StageCall, StageFailure, StageResult
    from lockgate.settings import Settings

log = logging.getLogger("lockgate")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: How much of an error message a FAIL event carries.
MAX_ERROR_CHARS = 4000


# --- typed records ---------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetId:
    namespace: str
    name: str


@dataclass(frozen=True)
class SourceTable:
    """The source table as a dataset, and the password to mask in error messages."""

    dataset: DatasetId
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Check:
    """One rule of the validation report."""

    assertion: str  # the expectation type, e.g. expect_column_values_to_not_be_null
    success: bool
    column: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Batch:
    """What the run knows of its raw batch."""

    raw: DatasetId
    rows: int
    bytes: int
    files: int
    columns: tuple[Column, ...]
    replayed_from: str | None = None
    rows_loaded: int | None = None
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class TableRun:
    """The OpenLineage identity of one table run."""

    namespace: str
    job: str
    run_id: str
    airflow_run_id: str
    version: int
    interval_start: datetime | None
    interval_end: datetime | None
    replay_from_lake: str = ""


# --- identities --------------------------------------------------------------------------


def job_namespace() -> str:
    from airflow.providers.openlineage import conf

    return conf.namespace()


def table_run(call: StageCall) -> TableRun:
    from openlineage.client.uuid import generate_static_uuid

    run, namespace = call.run, job_namespace()
    job = f"{call.config.dag_id}.{call.table.name}"
    instant = run.interval_start or run.run_created or EPOCH
    identity = json.dumps([namespace, job, run.run_id, run.version]).encode()
    return TableRun(
        namespace=namespace,
        job=job,
        run_id=str(generate_static_uuid(instant=instant, data=identity)),
        airflow_run_id=run.run_id,
        version=run.version,
        interval_start=run.interval_start,
        interval_end=run.interval_end,
        replay_from_lake=run.replay_from_lake,
    )


def source_table(config: SourceConfig, table: TableConfig) -> SourceTable:
    """The source table's dataset id from its Airflow connection (host, port, database)."""
    from lockgate.sources import resolve_source

    if table.files is not None:  # the landing zone's files: the namespace is the zone
        landing = table.files.landing or config.landing or ""
        namespace = landing if "://" in landing else f"file://{landing}"
        return SourceTable(DatasetId(namespace, table.files.pattern))
    try:
        source = resolve_source(config.connection)
    except Exception:  # noqa: BLE001 - an unusable connection still names a dataset
        return SourceTable(DatasetId(f"airflow-connection://{config.connection}", table.source_name))
    parts = list(table.source_parts)  # the names as the source spells them, unquoted
    if source.engine == "postgres":
        schema_table = parts if len(parts) > 1 else ["public", *parts]
        name = ".".join([source.database or "", *schema_table])
        return SourceTable(DatasetId(f"postgres://{source.host}:{source.port}", name), source.password)
    if source.engine == "mariadb":
        name = ".".join(parts if len(parts) > 1 else [source.database or "", *parts])
        return SourceTable(DatasetId(f"mysql://{source.host}:{source.port}", name), source.password)
    return SourceTable(DatasetId(f"sqlite://{source.database}", table.source_name))


def warehouse_table(settings: Settings, config: SourceConfig, table: TableConfig) -> DatasetId:
    if settings.warehouse_conn_id:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        conn = PostgresHook.get_connection(settings.warehouse_conn_id)
        return DatasetId(f"postgres://{conn.host}:{conn.port or 5432}", f"{conn.schema}.{config.source}.{table.name}")
    return DatasetId(f"duckdb://{Path(settings.warehouse).resolve()}", f"{config.source}.{table.name}")


def raw_version(path: str | Path) -> DatasetId:
    return DatasetId("file", str(Path(path).resolve()))


# --- the batch ---------------------------------------------------------------------------


def read_checks(report_path: str | Path | None) -> tuple[Check, ...]:
    """The rules of a stored validation report (none if there is no report)."""
    if not report_path or not Path(report_path).exists():
        return ()
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    return tuple(_check(r) for r in report.get("results") or [])


def _check(result: dict[str, Any]) -> Check:
    kwargs = result.get("kwargs") or {}
    column = kwargs.get("column") or kwargs.get("column_list")
    if isinstance(column, list):
        column = ",".join(map(str, column))
    return Check(result["expectation"], bool(result["success"]), column, result.get("rule"))


#: How long an event waits for another writer's warehouse lock before it goes without
#: the audit row's counts (the event is still sent).
AUDIT_WAIT_SECONDS = 30


def _audit_row(settings: Settings, call: StageCall, version: int) -> dict[str, Any]:
    from lockgate import warehouse

    try:
        with warehouse.connect(settings, read_only=True, wait=AUDIT_WAIT_SECONDS) as conn:
            row = warehouse.run_status(conn, call.config.source, call.table.name, call.run.run_id, version)
    except Exception as exc:  # noqa: BLE001 - a busy warehouse costs the counts, not the event
        log.warning("%s.%s: lineage event without rows loaded (%s)", call.config.source, call.table.name, exc)
        return {}
    return row or {}


def read_batch(call: StageCall, raw_path: str, *, loaded: bool) -> Batch:
    """The batch's manifest, validation report and (``loaded``) audit row."""
    from lockgate.pipeline import quality_report_path

    manifest = lake.read_manifest(raw_path)
    version = int(manifest.get("version") or 0)
    audit = _audit_row(call.settings, call, version) if loaded else {}
    report = audit.get("quality_report") or quality_report_path(
        call.settings, call.config.source, call.table.name, call.run.run_id, version
    )
    return Batch(
        raw=raw_version(raw_path),
        rows=int(manifest["rows"]),
        bytes=sum(int(f.get("bytes") or 0) for f in manifest.get("files") or []),
        files=len(manifest.get("files") or []),
        columns=tuple(Column(c["name"], c["type"]) for c in manifest.get("schema") or []),
        replayed_from=manifest.get("replayed_from"),
        rows_loaded=audit.get("rows_loaded"),
        checks=read_checks(report),
    )


# --- events ------------------------------------------------------------------------------


def _schema_facets(batch: Batch | None) -> dict[str, Any]:
    from openlineage.client.facet_v2 import schema_dataset

    if batch is None or not batch.columns:
        return {}
    fields = [schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type) for c in batch.columns]
    return {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)}


def _input_facets(batch: Batch | None) -> dict[str, Any]:
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq
    from openlineage.client.facet_v2 import input_statistics_input_dataset as stats

    if batch is None:
        return {}
    facets: dict[str, Any] = {"inputStatistics": stats.InputStatisticsInputDatasetFacet(rowCount=batch.rows)}
    if batch.checks:
        facets["dataQualityAssertions"] = dq.DataQualityAssertionsDatasetFacet(
            assertions=[
                dq.Assertion(assertion=c.assertion, success=c.success, column=c.column, name=c.name)
                for c in batch.checks
            ]
        )
    return facets


def inputs(source: SourceTable, batch: Batch | None) -> list[InputDataset]:
    from openlineage.client.event_v2 import InputDataset

    dataset = source.dataset
    if batch is not None and batch.replayed_from:
        dataset = raw_version(batch.replayed_from)
    return [
        InputDataset(
            namespace=dataset.namespace,
            name=dataset.name,
            facets=_schema_facets(batch),
            inputFacets=_input_facets(batch),
        )
    ]


def outputs(call: StageCall, batch: Batch | None) -> list[OutputDataset]:
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    target = warehouse_table(call.settings, call.config, call.table)
    if batch is None:
        return [OutputDataset(namespace=target.namespace, name=target.name)]
    raw_stats = stats.OutputStatisticsOutputDatasetFacet(
        rowCount=batch.rows, size=batch.bytes, fileCount=batch.files
    )
    loaded = {} if batch.rows_loaded is None else {
        "outputStatistics": stats.OutputStatisticsOutputDatasetFacet(rowCount=int(batch.rows_loaded))
    }  # fmt: skip
    return [
        OutputDataset(
            namespace=batch.raw.namespace,
            name=batch.raw.name,
            facets=_schema_facets(batch),
            outputFacets={"outputStatistics": raw_stats},
        ),
        OutputDataset(
            namespace=target.namespace, name=target.name, facets=_schema_facets(batch), outputFacets=loaded
        ),
    ]


def _run_facets(run: TableRun) -> dict[str, Any]:
    from openlineage.client.facet_v2 import nominal_time_run, tags_run

    tags = [("airflow_run_id", run.airflow_run_id), ("raw_version", str(run.version))]
    if run.replay_from_lake:
        tags.append(("replay_from_lake", run.replay_from_lake))
    facets: dict[str, Any] = {
        "tags": tags_run.TagsRunFacet(
            tags=[tags_run.TagsRunFacetFields(key=k, value=v, source="LOCKGATE") for k, v in tags]
        )
    }
    if run.interval_start and run.interval_end:
        facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=run.interval_start.isoformat(), nominalEndTime=run.interval_end.isoformat()
        )
    return facets


def _error_facet(failure: StageFailure, source: SourceTable) -> dict[str, Any]:
    from openlineage.client.facet_v2 import error_message_run

    from lockgate import redact

    text = f"{failure.call.stage} failed: {type(failure.error).__name__}: {failure.error}"
    text = redact.mask(text, source.password)[:MAX_ERROR_CHARS]
    return {
        "errorMessage": error_message_run.ErrorMessageRunFacet(message=text, programmingLanguage="python")
    }


def build_event(
    state: str,
    run: TableRun,
    ins: list[InputDataset],
    outs: list[OutputDataset],
    extra_run_facets: dict[str, Any] | None = None,
) -> RunEvent:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import job_type_job

    job_facets = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="LOCKGATE", jobType="TABLE_RUN"
        )
    }
    return RunEvent(
        eventType=RunState[state],
        eventTime=datetime.now(UTC).isoformat(),
        run=Run(runId=run.run_id, facets={**_run_facets(run), **(extra_run_facets or {})}),
        job=Job(namespace=run.namespace, name=run.job, facets=job_facets),
        inputs=ins,
        outputs=outs,
    )


# --- where events go ---------------------------------------------------------------------


def is_disabled() -> bool:
    """``[openlineage] disabled`` (or the legacy ``OPENLINEAGE_DISABLED``) is set."""
    from airflow.providers.common.compat.sdk import conf as airflow_conf

    if airflow_conf.getboolean("openlineage", "disabled", fallback=False):
        return True
    return os.getenv("OPENLINEAGE_DISABLED", "").strip().lower() in ("true", "1", "t")


def default_file(settings: Settings, when: datetime | None = None) -> Path:
    """``<lake>/lineage/<YYYY-MM-DD>.jsonl``: where events go when nothing is configured
    (an S3 lake's local staging folder: a file transport appends, which S3 cannot)."""
    return settings.stage_root / "lineage" / f"{(when or datetime.now(UTC)).date().isoformat()}.jsonl"


def client(settings: Settings):
    """The OpenLineage client for Airflow's configuration, or the default file transport.

    ``None`` when lineage is disabled."""
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    if is_disabled():
        return None
    if not conf.is_disabled():  # the provider finds a configuration: use it, as the provider does
        config = OpenLineageAdapter().get_openlineage_config()
        return OpenLineageClient(config=config) if config else OpenLineageClient()
    path = default_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True)))


def emit(event: RunEvent, settings: Settings) -> None:
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    ol_client = client(settings)
    if ol_client is None:
        return
    OpenLineageAdapter(client=ol_client).emit(event)  # redacts secrets; logs (never raises) a failure


# --- the observer hooks (lockgate.observe) -------------------------------------------------


def stage_started(call: StageCall) -> None:
    """``START`` when the table run's extract begins."""
    if call.stage != "extract" or is_disabled():
        return
    ins = [] if call.run.replay_from_lake else inputs(source_table(call.config, call.table), None)
    emit(build_event("START", table_run(call), ins, outputs(call, None)), call.settings)


def stage_done(done: StageResult) -> None:
    """``COMPLETE`` when the table run's publish returns."""
    call = done.call
    if call.stage != "publish" or is_disabled() or done.raw_path is None:
        return
    batch = read_batch(call, done.raw_path, loaded=True)
    source = source_table(call.config, call.table)
    emit(build_event("COMPLETE", table_run(call), inputs(source, batch), outputs(call, batch)), call.settings)


def stage_failed(failure: StageFailure) -> None:
    """``FAIL`` when any stage raises (with what is known of the batch by then)."""
    call = failure.call
    if is_disabled():
        return
    batch = None
    if call.raw_path and (lake.lake_path(call.raw_path) / lake.MANIFEST).exists():
        batch = read_batch(call, call.raw_path, loaded=call.stage == "publish")
    source = source_table(call.config, call.table)
    event = build_event(
        "FAIL", table_run(call), inputs(source, batch), outputs(call, batch), _error_facet(failure, source)
    )
    emit(event, call.settings)
