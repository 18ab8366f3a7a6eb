"""Which rows one run reads, and why: the incremental rules of a table in one place.

A run reads a *slice* of the table's cursor column, ``[lo, hi)``:

- a scheduled or backfill run reads its data interval, ``[interval_start − lookback,
  interval_end)``;
- **no hole**: when the table's watermark (how far every earlier read is known to be
  complete) is behind the interval start — a paused DAG, a scheduler outage, a
  ``catchup: false`` source whose scheduler skipped intervals — the slice reaches back
  to the watermark; a table's first run (no watermark yet) reaches back to the
  source's ``start_date`` (rows before it are outside every interval: a
  ``full_refresh`` run reads them);
- a manual run without a data interval reads from the watermark to when the run was
  created (never ``now()`` inside a task);
- a **re-read window** left by a read that a still-open source transaction could
  commit rows behind is added to the next slice that reaches past it;
- ``full`` tables and ``full_refresh`` runs read everything.

An ``id`` cursor (:mod:`lockgate.cursors`) has positions, not times: a run reads from
the watermark (an id) up to the highest id when the read is planned, and a reprocessed
interval reads again the id range its earlier read covered. Its watermark moves to the
read's end only when no source transaction was open: an id taken by a transaction that
is still open commits later *behind* the highest id. Ids come from a sequence, so such a
transaction's ids lie above every id an earlier read saw if it started after that read:
the watermark then moves to the end of the newest earlier read made before the oldest
open transaction started (:meth:`Incremental.safe_position`), never stalling for good on
a busy source.

After a read, the watermark moves to the read's *safe* high point: never past the
slice's end, the source's clock at read time, or the start of a source transaction
that was still open then (its rows may still appear behind the read). A replay from
the lake reads nothing from the source and changes none of this state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from lockgate import cursors
from lockgate.config import TableConfig

#: A slice bound or watermark: an instant, or the position of an ``id`` cursor.
Bound = datetime | int


def utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime; a naive value is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def bound(value: Bound | None) -> Bound | None:
    """A bound as stored: an ``id`` position stays a whole number, an instant is made UTC."""
    return value if value is None or isinstance(value, int) else utc(value)


def parse_bound(value: str | int | datetime | None) -> Bound | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else parse_time(value)


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return utc(value)
    return utc(datetime.fromisoformat(value.strip().replace(" ", "T", 1)))


def _iso(value: Bound | None) -> str | int | None:
    if isinstance(value, int):
        return value
    return value.isoformat() if value else None


@dataclass(frozen=True)
class Slice:
    """A half-open range ``[lo, hi)`` of the cursor column; ``None`` means unbounded.

    ``interval_start``/``interval_end`` name the lake folder of the read (the run's data
    interval, or for a manual run the slice itself); ``reason`` says why these bounds.
    """

    column: str | None
    lo: Bound | None
    hi: Bound | None
    interval_start: datetime | None
    interval_end: datetime | None
    full: bool = False
    reason: str = ""

    def as_dict(self) -> dict[str, str | int | bool | None]:
        return {
            "column": self.column,
            "lo": _iso(self.lo),
            "hi": _iso(self.hi),
            "interval_start": _iso(self.interval_start),
            "interval_end": _iso(self.interval_end),
            "full": self.full,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Slice:
        return cls(
            data.get("column"),
            parse_bound(data.get("lo")),
            parse_bound(data.get("hi")),
            parse_time(data.get("interval_start")),
            parse_time(data.get("interval_end")),
            bool(data.get("full")),
            str(data.get("reason") or ""),
        )


@dataclass(frozen=True)
class TableState:
    """A table's checkpoint in the warehouse (``lockgate.state``).

    ``watermark``: every row with a cursor below it has been read. ``reread_from`` ..
    ``reread_until``: a range behind the watermark that a still-open source transaction
    may yet fill; the next slice reaching past ``reread_until`` starts at ``reread_from``.
    """

    watermark: Bound | None = None
    reread_from: Bound | None = None
    reread_until: Bound | None = None
    cursor_max: str | None = None
    last_run_id: str | None = None


@dataclass(frozen=True)
class Incremental:
    """The incremental rules of one table (see the module docstring)."""

    table: TableConfig
    #: The source's ``start_date``: where a table's first scheduled run starts reading.
    start_date: datetime | None = None

    def window(
        self,
        state: TableState,
        *,
        interval_start: datetime | None,
        interval_end: datetime | None,
        run_created: datetime | None = None,
        full_refresh: bool = False,
        earlier: Slice | None = None,
    ) -> Slice:
        """The slice a run reads, given the table's state when the run is planned.

        ``earlier``: the slice an earlier read of the same interval covered (``id``
        cursors re-read it when the interval is reprocessed)."""
        table = self.table
        start, end = utc(interval_start), utc(interval_end)
        if not table.incremental or full_refresh:
            why = "full refresh requested" if full_refresh and table.incremental else f"mode {table.mode}"
            return Slice(table.cursor, None, None, start, end, full=True, reason=f"whole table ({why})")
        if table.cursor_kind == "id":
            if start is None or end is None or start >= end:
                start = end = utc(run_created) or end or start
            return self._id_window(state, start, end, earlier)
        if start is not None and end is not None and start < end:
            lo, reason = self._interval_lower(state, start)
            lo, reason = self._with_reread(state, lo, end, reason)
            return self._whole_days(Slice(table.cursor, lo, end, start, end, reason=reason))
        # A manual run: from the watermark (minus lookback) to when the run was created.
        upper = utc(run_created) or end or start
        watermark = utc(state.watermark)
        if watermark is None:
            lo, reason = None, "manual run, first read of the table: everything before the run was created"
        else:
            lo = watermark - table.lookback
            reason = f"manual run: from the watermark {watermark.isoformat()} − lookback to when the run was created"
        lo, reason = self._with_reread(state, lo, upper, reason)
        return self._whole_days(Slice(table.cursor, lo, upper, lo, upper, reason=reason))

    def _id_window(self, state: TableState, start: datetime | None, end: datetime | None, earlier: Slice | None) -> Slice:
        """An ``id`` cursor's slice: the id range read before for this interval, or
        from the watermark up to the highest id when the read is planned (``hi`` is
        left open here and fixed by the extract's plan)."""
        column = self.table.cursor
        if earlier is not None and not earlier.full and isinstance(earlier.hi, int):
            return Slice(column, earlier.lo, earlier.hi, start, end, reason=(
                f"reprocess: ids [{earlier.lo}, {earlier.hi}) as this interval read them before (rows committed "
                "into that range since are read too)"
            ))  # fmt: skip
        if state.watermark is None:
            return Slice(column, None, None, start, end, reason="first read of the table: every id up to the highest at read time")
        return Slice(column, state.watermark, None, start, end, reason=(
            f"from the watermark id {state.watermark} up to the highest id at read time"
        ))  # fmt: skip

    def _whole_days(self, window: Slice) -> Slice:
        """A ``date`` cursor reads whole days (midnights in ``cursor_timezone``): its
        slice is widened outwards, so the warehouse deletes exactly the days read."""
        if self.table.cursor_kind != "date":
            return window
        lo, hi = cursors.whole_days(window.lo, window.hi, cursors.zone(self.table.cursor_timezone))
        if (lo, hi) == (window.lo, window.hi):
            return window
        return replace(window, lo=lo, hi=hi, reason=f"{window.reason}; widened to whole days (date cursor)")

    def _interval_lower(self, state: TableState, start: datetime) -> tuple[datetime | None, str]:
        lookback = self.table.lookback
        watermark = utc(state.watermark)
        first = utc(self.start_date)
        if watermark is None and first is not None and first < start:
            return first - lookback, (
                f"first read of the table: from the source's start_date {first.isoformat()} (intervals before "
                "this run were skipped or have not run)"
            )
        if watermark is None:
            return start - lookback, f"first read of the table: interval − lookback {lookback}"
        if watermark < start:
            return watermark - lookback, (
                f"interval, widened back to the watermark {watermark.isoformat()}: nothing after it has been "
                "read yet (skipped or paused intervals)"
            )
        return start - lookback, f"interval − lookback {lookback}"

    def _with_reread(
        self, state: TableState, lo: datetime | None, hi: datetime | None, reason: str
    ) -> tuple[datetime | None, str]:
        pending, until = utc(state.reread_from), utc(state.reread_until)
        if lo is None or pending is None or pending >= lo:
            return lo, reason
        if until is not None and hi is not None and hi < until:
            return lo, reason
        return pending, f"{reason}; widened to the pending re-read window from {pending.isoformat()}"

    @staticmethod
    def safe_high(window: Slice, horizon: Iterable[datetime | None]) -> datetime | None:
        """How far the watermark may move after reading ``window``: never past the slice's
        end, the source's clock at read time, or the start of a transaction still open."""
        if window.full or window.hi is None:
            return None
        if isinstance(window.hi, int):  # an id: decided when the batch is published (safe_position)
            return None
        return min([window.hi, *(utc(t) for t in horizon if t is not None)])

    @staticmethod
    def safe_position(window: Slice, oldest_open: datetime | None, earlier: Iterable[tuple[int, datetime]]) -> int | None:
        """How far an ``id`` watermark may move after reading ``window``: to its end when
        no source transaction was open; else to the end of the newest ``earlier`` read
        (``(slice end, read time)``) made before the oldest open transaction started
        (that transaction's ids are above everything such a read saw); else nowhere."""
        if window.full or not isinstance(window.hi, int):
            return None
        if oldest_open is None:
            return window.hi
        seen = [hi for hi, read_at in earlier if read_at is not None and utc(read_at) <= utc(oldest_open)]
        return min(max(seen), window.hi) if seen else None

    @staticmethod
    def after_read(
        state: TableState, window: Slice, safe_hi: Bound | None, cursor_max: str | None, run_id: str
    ) -> TableState:
        """The state after a read of ``window`` from the source is published.

        The watermark only moves forward. When ``safe_hi`` is below the slice's end, a
        source transaction was still open during the read: rows it commits later may
        carry cursor values in ``[safe_hi, slice end)``, so that range is remembered as the
        re-read window until a later read covers it."""
        current = bound(state.watermark)
        reread_from, reread_until = bound(state.reread_from), bound(state.reread_until)
        lo, hi = bound(window.lo), bound(window.hi)
        if reread_from is not None and hi is not None and (lo is None or lo <= reread_from):
            if reread_until is None or hi >= reread_until:
                reread_from = reread_until = None  # this read covered the whole window again
        if safe_hi is not None and hi is not None and safe_hi < hi:
            reread_from = safe_hi if reread_from is None else min(reread_from, safe_hi)
            reread_until = hi if reread_until is None else max(reread_until, hi)
        watermark = current if safe_hi is None or (current is not None and current >= safe_hi) else safe_hi
        return replace(
            state,
            watermark=watermark,
            reread_from=reread_from,
            reread_until=reread_until,
            cursor_max=cursor_max if cursor_max is not None else state.cursor_max,
            last_run_id=run_id,
        )
