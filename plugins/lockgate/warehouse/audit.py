"""The audit trail (``lockgate.runs``) and the checkpoints (``lockgate.state``): plain SQL
that both warehouses run the same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lockgate.incremental import Bound, TableState

_RUN_COLUMNS = {
    "mode", "interval_start", "interval_end", "slice_lo", "slice_hi", "raw_path", "source_rows",
    "rows_extracted", "rows_validated", "rows_loaded", "rows_quarantined", "rules_evaluated", "rules_failed",
    "validation_status", "quality_report", "status", "error", "extract_seconds", "validate_seconds",
    "load_seconds", "safe_hi", "rows_deleted", "rules_passed", "read_at", "replayed_from", "rows_null_cursor",
    "slice_lo_id", "slice_hi_id", "safe_hi_id", "freshness_lag_seconds", "null_counts", "cross_run_status",
    "cross_run_checks",
}  # fmt: skip
_ID_COLUMNS = {"slice_lo", "slice_hi", "safe_hi"}
_RUN_KEY = "source = ? AND table_name = ? AND run_id = ? AND coalesce(version, 0) = ?"


def record_run(conn, source: str, table: str, run_id: str, *, version: int = 0, **fields: Any) -> None:
    """Create or update the audit row of one table in one run version (an id cursor's
    slice bounds go to the ``*_id`` columns)."""
    unknown = set(fields) - _RUN_COLUMNS
    if unknown:
        raise ValueError(f"unknown run fields: {sorted(unknown)}")
    for name in _ID_COLUMNS & set(fields):
        value = fields[name]
        if isinstance(value, int) and not isinstance(value, bool):
            fields[name], fields[f"{name}_id"] = None, value
    now = datetime.now(UTC)
    key = [source, table, run_id, version]
    exists = conn.execute(f"SELECT count(*) FROM lockgate.runs WHERE {_RUN_KEY}", key).fetchone()[0]
    if exists:
        sets = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(
            f"UPDATE lockgate.runs SET {sets}{', ' if sets else ''}updated_at = ? WHERE {_RUN_KEY}",
            [*fields.values(), now, *key],
        )
    else:
        fields.setdefault("status", "started")
        names = ", ".join(["source", "table_name", "run_id", "version", *fields, "started_at", "updated_at"])
        marks = ", ".join("?" * (len(fields) + 6))
        conn.execute(f"INSERT INTO lockgate.runs ({names}) VALUES ({marks})", [*key, *fields.values(), now, now])


def run_status(conn, source: str, table: str, run_id: str, version: int = 0) -> dict[str, Any] | None:
    cursor = conn.execute(f"SELECT * FROM lockgate.runs WHERE {_RUN_KEY}", [source, table, run_id, version])
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def get_watermark(conn, source: str, table: str) -> datetime | None:
    return get_state(conn, source, table).watermark


def get_state(conn, source: str, table: str) -> TableState:
    """The table's checkpoint: watermark and the pending re-read window (if any)."""
    row = conn.execute(
        "SELECT watermark, watermark_id, reread_from, reread_from_id, reread_until, reread_until_id, cursor_max, "
        "last_run_id FROM lockgate.state WHERE source = ? AND table_name = ?",
        [source, table],
    ).fetchone()
    if row is None:
        return TableState()
    mark, mark_id, since, since_id, until, until_id, cursor_max, last_run = row
    return TableState(
        _either(mark_id, mark), _either(since_id, since), _either(until_id, until), cursor_max, last_run
    )


def save_state(conn, source: str, table: str, state: TableState) -> None:
    """Store the table's checkpoint (the rules that compute it live in :mod:`lockgate.incremental`)."""
    conn.execute("DELETE FROM lockgate.state WHERE source = ? AND table_name = ?", [source, table])
    mark, since, until = (_split(v) for v in (state.watermark, state.reread_from, state.reread_until))
    conn.execute(
        "INSERT INTO lockgate.state (source, table_name, watermark, watermark_id, cursor_max, last_run_id, "
        "updated_at, reread_from, reread_from_id, reread_until, reread_until_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [source, table, *mark, state.cursor_max, state.last_run_id, datetime.now(UTC), *since, *until],
    )  # fmt: skip


def _split(value: Bound | None) -> tuple[datetime | None, int | None]:
    """A bound as its two columns: ``(time, None)`` or ``(None, id)``."""
    return (None, value) if isinstance(value, int) else (value, None)


def _either(position: int | None, instant: datetime | None) -> Bound | None:
    return position if position is not None else instant



def newer_reads(
    conn, source: str, table: str, run_id: str, version: int, read_at: datetime | None
) -> list[tuple[datetime | None, datetime | None]]:
    """Slices of loaded batches of the table read from the source after ``read_at``
    (every loaded batch when ``read_at`` is unknown), other than this run version's."""
    rows = conn.execute(
        "SELECT slice_lo, slice_lo_id, slice_hi, slice_hi_id FROM lockgate.runs WHERE source = ? AND table_name = ? "
        "AND status IN ('loaded', 'published') AND read_at IS NOT NULL "
        "AND (CAST(? AS TIMESTAMPTZ) IS NULL OR read_at > CAST(? AS TIMESTAMPTZ)) "
        "AND NOT (run_id = ? AND coalesce(version, 0) = ?)",
        [source, table, read_at, read_at, run_id, version],
    ).fetchall()
    return [(_either(lo_id, lo), _either(hi_id, hi)) for lo, lo_id, hi, hi_id in rows]


def read_positions(conn, source: str, table: str) -> list[tuple[int, datetime]]:
    """``(slice end, read time)`` of the table's published reads of an ``id`` cursor
    (:meth:`lockgate.incremental.Incremental.safe_position`)."""
    return conn.execute(
        "SELECT slice_hi_id, read_at FROM lockgate.runs WHERE source = ? AND table_name = ? AND status = 'published' "
        "AND slice_hi_id IS NOT NULL AND read_at IS NOT NULL AND replayed_from IS NULL",
        [source, table],
    ).fetchall()




def recent_profiles(
    conn, source: str, table: str, run_id: str, before: datetime | None, limit: int
):
    """``(interval end or start time, rows, freshness lag, null counts JSON, slice lo,
    slice hi)`` of the
    table's published runs of other intervals (before ``before`` when given), newest
    first, one per interval: its newest version (:mod:`lockgate.cross_run`)."""
    rows = conn.execute(
        "SELECT coalesce(interval_end, started_at) AS moment, rows_extracted, freshness_lag_seconds, null_counts, "
        "slice_lo, slice_lo_id, slice_hi, slice_hi_id "
        "FROM lockgate.runs WHERE source = ? AND table_name = ? AND status = 'published' AND run_id <> ? "
        "AND rows_extracted IS NOT NULL "
        "AND (CAST(? AS TIMESTAMPTZ) IS NULL OR coalesce(interval_end, started_at) < CAST(? AS TIMESTAMPTZ)) "
        "ORDER BY moment DESC, updated_at DESC LIMIT ?",
        [source, table, run_id, before, before, 4 * limit],
    ).fetchall()
    seen: set[datetime] = set()
    newest = []
    for at, count, lag, nulls, lo, lo_id, hi, hi_id in rows:
        if at not in seen:
            seen.add(at)
            newest.append((at, count, lag, nulls, _either(lo_id, lo), _either(hi_id, hi)))
    return newest[:limit]
