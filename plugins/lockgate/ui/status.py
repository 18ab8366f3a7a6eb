"""What the Lockgate page shows, read from the warehouse's audit trail and the lake.

One :class:`SourceStatus` per source: per table its checkpoint (watermark, pending
re-read window, newest cursor loaded), its recent runs (rows extracted / loaded /
quarantined, validation outcome and failed rules), its raw lake versions per
interval, its schema history and its last error. Everything is read-only: the
warehouse is opened read-only for a moment (waiting briefly for a loading task's
lock), the lake is listed, never written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate import lake
from lockgate.config import SourceConfig, TableConfig
from lockgate.incremental import TableState
from lockgate.settings import Settings

#: Runs per table shown on the page (newest last in charts).
RUNS_SHOWN = 60
#: Intervals per table listed with their lake versions (newest first).
INTERVALS_SHOWN = 20


@dataclass(frozen=True)
class RunPoint:
    """One table run version as the audit trail recorded it."""

    run_id: str
    version: int
    started_at: datetime | None
    interval_start: datetime | None
    interval_end: datetime | None
    status: str
    rows_extracted: int
    rows_loaded: int
    rows_quarantined: int
    validation_status: str | None
    rules_failed: int
    error: str | None
    replayed_from: str | None
    seconds: float
    #: Checks across runs (:mod:`lockgate.cross_run`): the outcome and each anomaly's line.
    cross_run_status: str | None = None
    cross_run_notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.run_id if self.version == 0 else f"{self.run_id} (v{self.version})"


@dataclass(frozen=True)
class LakeVersion:
    """A sealed raw folder: one version of one interval."""

    folder: str
    run_id: str
    version: int
    rows: int
    sealed_at: str
    replayed_from: str | None


@dataclass(frozen=True)
class IntervalVersions:
    interval: str
    versions: list[LakeVersion]


@dataclass(frozen=True)
class SchemaChange:
    column: str
    change: str
    old_type: str | None
    new_type: str | None
    run_id: str | None
    changed_at: datetime | None


@dataclass(frozen=True)
class TableStatus:
    """Everything the page says about one table."""

    name: str
    mode: str
    cursor: str | None
    state: TableState
    runs: list[RunPoint]
    failed_rules: list[str]
    lake_versions: list[IntervalVersions]
    schema_history: list[SchemaChange]
    last_error: str | None
    now: datetime

    @property
    def last_run(self) -> RunPoint | None:
        return self.runs[-1] if self.runs else None

    @property
    def newest_cursor(self) -> datetime | None:
        return _parse_cursor(self.state.cursor_max)

    @property
    def freshness_basis(self) -> datetime | None:
        """What freshness is measured from: the newest cursor value loaded; for a table
        without a cursor (``full``), when its newest published snapshot was read."""
        if self.cursor:
            return self.newest_cursor
        published = [r.started_at for r in self.runs if r.status == "published" and r.started_at]
        return max(published) if published else None

    @property
    def lag_seconds(self) -> float | None:
        """Freshness: how far :attr:`freshness_basis` is behind now."""
        basis = self.freshness_basis
        return None if basis is None else max(0.0, (self.now - basis).total_seconds())

    @property
    def rows_in_last_run(self) -> int:
        return self.last_run.rows_loaded if self.last_run else 0


@dataclass(frozen=True)
class SourceStatus:
    source: str
    dag_id: str
    description: str
    schedule: str
    tables: list[TableStatus] = field(default_factory=list)
    warehouse_note: str | None = None


def _parse_cursor(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def source_status(settings: Settings, config: SourceConfig, *, now: datetime | None = None) -> SourceStatus:
    """Read one source's status; a warehouse that is missing or busy leaves a note."""
    now = now or datetime.now(UTC)
    audit, note = _read_audit(settings, config.source)
    tables = [_table_status(settings, config.source, table, audit, now) for table in config.tables]
    return SourceStatus(
        source=config.source,
        dag_id=config.dag_id,
        description=config.description or "",
        schedule=config.schedule,
        tables=tables,
        warehouse_note=note,
    )


@dataclass
class _Audit:
    states: dict[str, TableState] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    schema: dict[str, list[SchemaChange]] = field(default_factory=dict)


def _read_audit(settings: Settings, source: str) -> tuple[_Audit, str | None]:
    from lockgate import warehouse

    if not warehouse.exists(settings):
        return _Audit(), "no warehouse yet: nothing has been loaded"
    try:
        with warehouse.connect(settings, read_only=True, wait=10) as conn:
            return _audit_rows(conn, source), None
    except Exception as exc:  # noqa: BLE001 - a busy or older warehouse: say so on the page
        return _Audit(), f"the warehouse could not be read just now ({type(exc).__name__}); reload in a moment"


def _audit_rows(conn, source: str) -> _Audit:
    from lockgate import warehouse

    audit = _Audit()
    tables = {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lockgate'"
    ).fetchall()}  # fmt: skip
    if "state" in tables:
        for (name,) in conn.execute("SELECT table_name FROM lockgate.state WHERE source = ?", [source]).fetchall():
            audit.states[name] = warehouse.get_state(conn, source, name)
    if "runs" in tables:
        cursor = conn.execute(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY table_name ORDER BY started_at DESC) AS n "
            "FROM lockgate.runs WHERE source = ?) AS r WHERE n <= ? ORDER BY started_at",
            [source, RUNS_SHOWN],
        )
        names = [d[0] for d in cursor.description]
        for row in cursor.fetchall():
            record = dict(zip(names, row, strict=True))
            audit.runs.setdefault(record["table_name"], []).append(record)
    if "schema_history" in tables:
        for row in conn.execute(
            "SELECT table_name, column_name, change, old_type, new_type, run_id, changed_at "
            "FROM lockgate.schema_history WHERE source = ? ORDER BY changed_at",
            [source],
        ).fetchall():
            audit.schema.setdefault(row[0], []).append(SchemaChange(*row[1:]))
    return audit


def _run_point(record: dict[str, Any]) -> RunPoint:
    seconds = sum(float(record.get(k) or 0) for k in ("extract_seconds", "validate_seconds", "load_seconds"))
    return RunPoint(
        run_id=record["run_id"],
        version=int(record.get("version") or 0),
        started_at=record.get("started_at"),
        interval_start=record.get("interval_start"),
        interval_end=record.get("interval_end"),
        status=record["status"],
        rows_extracted=int(record.get("rows_extracted") or 0),
        rows_loaded=int(record.get("rows_loaded") or 0),
        rows_quarantined=int(record.get("rows_quarantined") or 0),
        validation_status=record.get("validation_status"),
        rules_failed=int(record.get("rules_failed") or 0),
        error=record.get("error"),
        replayed_from=record.get("replayed_from"),
        seconds=seconds,
        cross_run_status=record.get("cross_run_status"),
        cross_run_notes=_cross_run_notes(record.get("cross_run_checks")),
    )


def _cross_run_notes(text: str | None) -> tuple[str, ...]:
    """The anomalies' lines of a run's recorded cross-run checks."""
    try:
        checks = json.loads(text) if text else []
    except ValueError:
        return ()
    return tuple(
        f"{c['check']}{'(' + c['column'] + ')' if c.get('column') else ''} {c['status']}: {c['message']}"
        for c in checks
        if isinstance(c, dict) and c.get("status") in ("warned", "failed")
    )


def _table_status(settings: Settings, source: str, table: TableConfig, audit: _Audit, now: datetime) -> TableStatus:
    records = audit.runs.get(table.name, [])
    runs = [_run_point(r) for r in records]
    errors = [r.error for r in runs if r.error]
    last_error = runs[-1].error if runs and runs[-1].error else (errors[-1] if errors else None)
    return TableStatus(
        name=table.name,
        mode=table.mode,
        cursor=table.cursor,
        state=audit.states.get(table.name, TableState()),
        runs=runs,
        failed_rules=_failed_rules(records[-1].get("quality_report") if records else None),
        lake_versions=lake_versions(settings.lake_root, source, table.name),
        schema_history=audit.schema.get(table.name, []),
        last_error=last_error,
        now=now,
    )


def _failed_rules(report_path: str | None) -> list[str]:
    """The failed rules of a stored validation report, in words."""
    if not report_path:
        return []
    try:
        report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    failed = [r for r in report.get("results", []) if not r.get("success")]
    return [_rule_text(r) for r in failed]


def _rule_text(result: dict[str, Any]) -> str:
    name = result.get("rule") or result.get("expectation") or "rule"
    column = (result.get("kwargs") or {}).get("column")
    broke = result.get("unexpected_count")
    text = f"{name}" + (f" on {column}" if column else "")
    return text + (f": {broke} rows broke it" if broke else "")


def lake_versions(lake_root: Path, source: str, table: str) -> list[IntervalVersions]:
    """Sealed raw versions per interval, newest interval first."""
    by_interval: dict[str, list[LakeVersion]] = {}
    for folder in lake.sealed_runs(lake_root, source, table)[-INTERVALS_SHOWN * 4:]:
        try:
            manifest = lake.read_manifest(folder)
        except Exception:  # noqa: BLE001 - a folder being pruned right now
            continue
        by_interval.setdefault(folder.parent.name, []).append(
            LakeVersion(
                folder=folder.name,
                run_id=str(manifest.get("run_id", folder.name)),
                version=int(manifest.get("version") or 0),
                rows=int(manifest.get("rows") or 0),
                sealed_at=str(manifest.get("sealed_at", "")),
                replayed_from=manifest.get("replayed_from"),
            )
        )
    intervals = sorted(by_interval, reverse=True)[:INTERVALS_SHOWN]
    return [IntervalVersions(i, sorted(by_interval[i], key=lambda v: v.sealed_at)) for i in intervals]
