"""Typed records passed between the stages of one table in one run.

- :class:`RunInfo`: what a stage knows of the Airflow run (or CLI run).
- :class:`Plan`: what an extract reads — slice, predicate, reader, key-range chunks —
  decided once per run version and stored in the lake before the first row is read;
  every retry of that version reuses it verbatim, so the rows, the counts and the
  manifest always describe the same slice.
- :class:`Manifest`: the sealed raw batch as later stages see it (the JSON on disk
  stays the lake's contract; this is its typed view).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from lockgate.incremental import Slice, parse_time


@dataclass(frozen=True)
class RunInfo:
    """What a stage needs to know about the Airflow run (or a CLI run)."""

    run_id: str
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    run_created: datetime | None = None
    full_refresh: bool = False
    #: "" (read the source), "latest" or a stored run id: reload a raw version from the lake.
    replay_from_lake: str = ""
    #: Airflow's ``dag_run.clear_number``: 0 for the run as scheduled (and its automatic
    #: retries); each clear of the run — a UI clear, ``airflow tasks clear``, a backfill
    #: with a reprocess behaviour — is a deliberate reprocess that reads the source again
    #: into a new raw version.
    version: int = 0

    @property
    def has_interval(self) -> bool:
        return bool(self.interval_start and self.interval_end and self.interval_start < self.interval_end)


@dataclass(frozen=True)
class SliceStats:
    """What the source said about the slice when it was planned."""

    rows: int
    lo: int | None = None
    hi: int | None = None
    total: str | None = None  # the reconcile_sum column's sum, as exact text


@dataclass
class Plan:
    """One extract's plan (see the module docstring). Stored as JSON in the lake."""

    run_id: str
    version: int
    slice: Slice
    predicate: str
    reader: str
    stats: SliceStats
    chunks: list[list[int] | None]
    custom_schema: str | None = None
    casts: dict[str, str] = field(default_factory=dict)
    horizon: dict[str, str | None] = field(default_factory=dict)
    safe_hi: datetime | None = None
    key_sample: list[int] = field(default_factory=list)
    planned_at: str = ""
    #: The SELECT list pushed to the source (column selection, type casts, hashing;
    #: the hash salt is a token here); None: every column as it is.
    select: str | None = None
    #: Columns hashed by Spark right after reading (SQLite has no SHA-256).
    spark_hashed: list[str] = field(default_factory=list)
    #: Rows whose cursor was NULL when the plan was made (``null_cursor``).
    null_cursor_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["slice"] = self.slice.as_dict()
        data["safe_hi"] = self.safe_hi.isoformat() if self.safe_hi else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            run_id=data["run_id"],
            version=int(data.get("version") or 0),
            slice=Slice.from_dict(data["slice"]),
            predicate=data["predicate"],
            reader=data["reader"],
            stats=SliceStats(**data["stats"]),
            chunks=data["chunks"],
            custom_schema=data.get("custom_schema"),
            casts=data.get("casts") or {},
            horizon=data.get("horizon") or {},
            safe_hi=parse_time(data.get("safe_hi")),
            key_sample=data.get("key_sample") or [],
            planned_at=data.get("planned_at") or "",
            null_cursor_rows=int(data.get("null_cursor_rows") or 0),
        )


@dataclass(frozen=True)
class Manifest:
    """The typed view of a sealed raw folder's ``_manifest.json``."""

    source: str
    table: str
    run_id: str
    version: int
    slice: Slice
    rows: int
    source_rows: int | None
    source_sum: str | None
    safe_hi: datetime | None
    read_at: datetime | None
    cursor_max: str | None
    schema: list[dict[str, Any]]
    replayed_from: str | None
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            source=data["source"],
            table=data["table"],
            run_id=data["run_id"],
            version=int(data.get("version") or 0),
            slice=Slice.from_dict(data["slice"]),
            rows=int(data["rows"]),
            source_rows=data.get("source_rows"),
            source_sum=data.get("source_sum"),
            safe_hi=parse_time(data.get("safe_hi")),
            # Batches sealed before read times were recorded: their extract time.
            read_at=parse_time(data.get("read_at") or data.get("extracted_at")),
            cursor_max=None if data.get("cursor_max") is None else str(data["cursor_max"]),
            schema=data["schema"],
            replayed_from=data.get("replayed_from"),
            raw=data,
        )

    @property
    def replayed(self) -> bool:
        return bool(self.replayed_from)

    @property
    def oldest_open(self) -> datetime | None:
        """The start of the oldest source transaction open while the batch was planned
        or any of its chunks was read (``None``: none was)."""
        horizons = [self.raw.get("horizon") or {}, *((c.get("horizon") or {}) for c in self.raw.get("chunks") or [])]
        starts = [parse_time(h.get("oldest_open_transaction")) for h in horizons]
        return min((s for s in starts if s is not None), default=None)
