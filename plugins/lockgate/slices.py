"""Which rows one run reads: the slice of the cursor column.

Scheduled and backfill runs read ``cursor ∈ [interval_start − lookback, interval_end)``.
Airflow 3 gives a manual run no interval (``data_interval_start == data_interval_end``
or no logical date at all); such a run reads from the table's stored watermark up to
the moment the run was created, never using ``now()`` inside a task. ``full`` tables
and ``full_refresh`` runs read everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lockgate.config import TableConfig


@dataclass(frozen=True)
class Slice:
    """A half-open range ``[lo, hi)`` of the cursor column; ``None`` means unbounded."""

    column: str | None
    lo: datetime | None
    hi: datetime | None
    interval_start: datetime | None
    interval_end: datetime | None
    full: bool = False

    def as_dict(self) -> dict[str, str | bool | None]:
        return {
            "column": self.column,
            "lo": self.lo.isoformat() if self.lo else None,
            "hi": self.hi.isoformat() if self.hi else None,
            "interval_start": self.interval_start.isoformat() if self.interval_start else None,
            "interval_end": self.interval_end.isoformat() if self.interval_end else None,
            "full": self.full,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Slice:
        def parse(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(
            data.get("column"),
            parse(data.get("lo")),
            parse(data.get("hi")),
            parse(data.get("interval_start")),
            parse(data.get("interval_end")),
            bool(data.get("full")),
        )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def compute_slice(
    table: TableConfig,
    *,
    interval_start: datetime | None,
    interval_end: datetime | None,
    run_created: datetime | None = None,
    watermark: datetime | None = None,
    full_refresh: bool = False,
    reread_from: datetime | None = None,
    reread_until: datetime | None = None,
) -> Slice:
    """The slice a run of ``table`` reads.

    Args:
        interval_start, interval_end: the run's data interval (may be missing or equal).
        run_created: when the run was created; the upper bound of a manual run.
        watermark: the table's stored watermark, the lower bound of a manual run.
        full_refresh: read the whole table whatever its mode.
        reread_from, reread_until: a window an earlier run may have missed because a
            source transaction was still open; a run whose slice reaches past
            ``reread_until`` starts at ``reread_from`` instead, and so picks those rows up.
    """
    start, end = _utc(interval_start), _utc(interval_end)
    if not table.incremental or full_refresh:
        return Slice(table.cursor, None, None, start, end, full=True)
    pending, until = _utc(reread_from), _utc(reread_until)
    if start is not None and end is not None and start < end:
        lower = start - table.lookback
        if pending is not None and pending < lower and (until is None or end >= until):
            lower = pending
        return Slice(table.cursor, lower, end, start, end)
    # A manual run: from the watermark (minus lookback) to when the run was created.
    upper = _utc(run_created) or end or start
    lower = _utc(watermark) - table.lookback if watermark else None
    if lower is not None and pending is not None and pending < lower:
        lower = pending
    return Slice(table.cursor, lower, upper, lower, upper)
