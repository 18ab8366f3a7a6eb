"""Per-stage metrics through Airflow's metrics facade (StatsD, DogStatsD or OpenTelemetry).

Every stage of every table run reports what it did. Plain StatsD has no tags, so the
source and table are part of each name; the same values also carry the tags
``source``, ``table`` and ``stage`` for backends that keep tags (DogStatsD, InfluxDB
tags, OpenTelemetry). Airflow adds its ``[metrics] statsd_prefix`` (default
``airflow``) in front of every name:

=============================================  =======  =========================================
``lockgate.<stage>.rows.<source>.<table>``      counter  rows extracted, validated or loaded
``lockgate.<stage>.bytes.<source>.<table>``     counter  Parquet bytes of the batch the stage handled
``lockgate.<stage>.duration.<source>.<table>``  timer    wall time of the stage (milliseconds)
``lockgate.load.rows_quarantined.<s>.<t>``      counter  rows set aside by the quarantine policy
``lockgate.publish.lag_seconds.<s>.<t>``        gauge    now − newest cursor value just published
``lockgate.<stage>.failures.<source>.<table>``  counter  the stage raised
=============================================  =======  =========================================

``<stage>`` is ``extract``, ``validate``, ``load`` or ``publish``. A stage that found
its work already done (a retry resuming a sealed extract, an already loaded batch)
reports its duration but no rows, so counters never count a batch twice. A batch
replayed from the lake moves no lag gauge: it says nothing about the source.

Metrics are off unless Airflow's ``[metrics]`` section turns a backend on
(``statsd_on = True`` with ``statsd_host``/``statsd_port``, or ``statsd_datadog_enabled``,
or ``otel_on``). Inside a task Airflow's task runner sets the backend up; elsewhere
(CLI, tests) this module does it once from the same configuration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lockgate import lake
from lockgate.incremental import parse_time

if TYPE_CHECKING:
    from lockgate.observe import StageFailure, StageResult

log = logging.getLogger("lockgate")

PREFIX = "lockgate"


@dataclass(frozen=True)
class StageMetrics:
    """What one stage of one table run reports (``None``: not reported)."""

    stage: str
    source: str
    table: str
    seconds: float
    rows: int | None = None
    bytes: int | None = None
    rows_quarantined: int | None = None
    lag_seconds: float | None = None
    failed: bool = False


def metric_name(stage: str, measure: str, source: str, table: str) -> str:
    """``lockgate.<stage>.<measure>.<source>.<table>``, with characters StatsD refuses replaced."""
    from airflow.sdk.observability.stats import normalize_name_for_stats

    parts = [PREFIX, stage, measure, source, table]
    return ".".join(normalize_name_for_stats(p.replace(".", "_"), log_warning=False) for p in parts)


def _stats():
    """Airflow's stats module, set up from ``[metrics]`` if no task runner did it."""
    from airflow.sdk._shared.observability.metrics import stats as shared
    from airflow.sdk.observability import stats

    if shared._factory is None:  # not inside a task: configure it as the task runner would
        from airflow.sdk.configuration import conf
        from airflow.sdk.observability.metrics import stats_utils

        stats.initialize(
            factory=stats_utils.get_stats_factory(),
            export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True),
        )
    return stats


def emit(m: StageMetrics) -> None:
    """Send one stage's metrics (no-op when no metrics backend is configured)."""
    stats = _stats()
    tags = {"source": m.source, "table": m.table, "stage": m.stage}

    def name(measure: str) -> str:
        return metric_name(m.stage, measure, m.source, m.table)

    stats.timing(name("duration"), timedelta(seconds=m.seconds), tags=tags)
    if m.failed:
        stats.incr(name("failures"), tags=tags)
    for measure, value in (("rows", m.rows), ("bytes", m.bytes), ("rows_quarantined", m.rows_quarantined)):
        if value is not None:
            stats.incr(name(measure), int(value), tags=tags)
    if m.lag_seconds is not None:
        stats.gauge(name("lag_seconds"), round(m.lag_seconds, 3), tags=tags)


def batch_bytes(manifest: dict[str, Any]) -> int:
    return sum(int(f.get("bytes") or 0) for f in manifest.get("files") or [])


def lag_seconds(manifest: dict[str, Any], now: datetime | None = None) -> float | None:
    """Now − the newest cursor value of a batch read from the source (None for a replay
    or a table without a cursor)."""
    newest = manifest.get("cursor_max") if not manifest.get("replayed_from") else None
    newest = parse_time(newest) if isinstance(newest, str) else None  # an id cursor has no lag
    if newest is None:
        return None
    return ((now or datetime.now(UTC)) - newest).total_seconds()


def from_result(done: StageResult) -> StageMetrics:
    """The metrics of a stage that returned, from its result and the batch's manifest."""
    call, result = done.call, done.result
    base = StageMetrics(call.stage, call.config.source, call.table.name, done.seconds)
    raw_path = done.raw_path
    if result.get("resumed") or raw_path is None:
        return base
    manifest = lake.read_manifest(raw_path)
    if call.stage == "extract":
        return _replace(base, rows=int(result["rows"]), bytes=batch_bytes(manifest))
    if call.stage == "validate":
        return _replace(base, rows=int(manifest["rows"]), bytes=batch_bytes(manifest))
    if call.stage == "load":
        return _replace(
            base,
            rows=int(result.get("rows_loaded") or 0),
            bytes=batch_bytes(manifest),
            rows_quarantined=int(result.get("rows_quarantined") or 0),
        )
    return _replace(base, lag_seconds=lag_seconds(manifest))


def _replace(base: StageMetrics, **values: Any) -> StageMetrics:
    from dataclasses import replace

    return replace(base, **values)


def stage_done(done: StageResult) -> None:
    emit(from_result(done))


def stage_failed(failure: StageFailure) -> None:
    call = failure.call
    emit(StageMetrics(call.stage, call.config.source, call.table.name, failure.seconds, failed=True))
