"""``lockgate.landed_files``: every landing file a run took (key, size, time, ETag,
checksum, interval, run, rows), in the warehouse.

- A file is taken once: a run claims, in one warehouse transaction, the ready files
  whose upload (key, size, time or ETag) no run has claimed; DuckDB lets one writer in at
  a time, so two runs never claim the same upload.
- A re-uploaded file is a new upload: the next run takes it again as a new version.
- Re-running an interval (a retry, a clear, a backfill with reprocess) re-reads exactly
  the uploads that interval claimed, and claims nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lockgate.landing.zone import LandedFile


@dataclass(frozen=True)
class Claim:
    """The files one run version reads, and whether they were claimed before."""

    files: list[LandedFile]
    rerun: bool  # the interval had claimed these files already


@dataclass(frozen=True)
class FileResult:
    """What reading one file gave (recorded once the batch is sealed)."""

    key: str
    sha256: str
    rows_in: int
    rows_parsed: int
    rows_rejected: int


def claim(conn, source: str, table: str, interval: tuple[datetime | None, datetime | None], run_id: str,
          version: int, candidates: list[LandedFile]) -> Claim:  # fmt: skip
    """The files of this interval: those it claimed before, or else the ready
    ``candidates`` not claimed by any run, claimed now for this run."""
    start, end = interval
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.lock_table(source, table)  # two runs of the table never claim the same file
        before = _claimed_in(conn, source, table, start, end)
        if before:
            conn.execute("COMMIT")
            return Claim(before, rerun=True)
        taken = _claimed_identities(conn, source, table)
        new = [f for f in candidates if f.identity() not in taken]
        now = datetime.now(UTC)
        for f in new:
            conn.execute(
                "INSERT INTO lockgate.landed_files (source, table_name, file_key, size, modified, etag, interval_start, "
                "interval_end, run_id, version, status, taken_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'claimed', ?)",
                [source, table, f.key, f.size, f.modified, f.etag, start, end, run_id, version, now],
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return Claim(new, rerun=False)


def _interval_sql(start: datetime | None, end: datetime | None) -> tuple[str, list]:
    parts, params = [], []
    for column, value in (("interval_start", start), ("interval_end", end)):
        parts.append(f"{column} IS NULL" if value is None else f"{column} = ?")
        params += [] if value is None else [value]
    return " AND ".join(parts), params


def _claimed_in(conn, source: str, table: str, start, end) -> list[LandedFile]:
    where, params = _interval_sql(start, end)
    rows = conn.execute(
        f"SELECT DISTINCT file_key, size, modified, etag FROM lockgate.landed_files "
        f"WHERE source = ? AND table_name = ? AND {where} ORDER BY modified, file_key",
        [source, table, *params],
    ).fetchall()
    return [LandedFile(k, int(s), m.astimezone(UTC), e) for k, s, m, e in rows]


def _claimed_identities(conn, source: str, table: str) -> set[tuple[str, int, str]]:
    rows = conn.execute(
        "SELECT file_key, size, modified, etag FROM lockgate.landed_files WHERE source = ? AND table_name = ?",
        [source, table],
    ).fetchall()
    return {LandedFile(k, int(s), m.astimezone(UTC), e).identity() for k, s, m, e in rows}


def record(conn, source: str, table: str, interval: tuple[datetime | None, datetime | None], run_id: str,
           version: int, results: list[FileResult]) -> None:  # fmt: skip
    """The rows and checksum of each file this run version read, once its batch is sealed."""
    where, params = _interval_sql(*interval)
    for r in results:
        conn.execute(
            "UPDATE lockgate.landed_files SET sha256 = ?, rows_in = ?, rows_parsed = ?, rows_rejected = ?, "
            f"status = 'taken', run_id = ?, version = ? WHERE source = ? AND table_name = ? AND file_key = ? AND {where}",
            [r.sha256, r.rows_in, r.rows_parsed, r.rows_rejected, run_id, version, source, table, r.key, *params],
        )
