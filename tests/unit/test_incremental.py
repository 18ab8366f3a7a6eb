"""Which rows a run reads (lockgate.incremental): interval slices, lookback, gaps after
skipped intervals, first runs, manual runs, re-read windows, full refreshes, and how the
state moves after a read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lockgate.config import TableConfig
from lockgate.incremental import Incremental, Slice, TableState

D1 = datetime(2026, 1, 1, tzinfo=UTC)
D2 = datetime(2026, 1, 2, tzinfo=UTC)
D3 = datetime(2026, 1, 3, tzinfo=UTC)
DAY = timedelta(days=1)


def table(**kw) -> TableConfig:
    base = {"name": "orders", "primary_key": ["order_id"], "mode": "merge", "cursor": "updated_at"}
    return TableConfig.model_validate({**base, **kw})


AT_D1 = TableState(watermark=D1)


def window(tbl=None, state=AT_D1, **kw) -> Slice:
    return Incremental(tbl or table()).window(state, **kw)


def test_interval_slice_is_half_open_and_reaches_back_by_lookback():
    s = window(table(lookback="1h"), interval_start=D1, interval_end=D2)
    assert (s.lo, s.hi) == (D1 - timedelta(hours=1), D2)
    assert (s.interval_start, s.interval_end) == (D1, D2)
    assert not s.full and s.column == "updated_at" and "lookback" in s.reason


def test_naive_times_are_utc_and_aware_times_are_converted():
    cet = timezone(timedelta(hours=1))
    s = window(interval_start=datetime(2026, 1, 1, 1, tzinfo=cet), interval_end=D2.replace(tzinfo=None))
    assert s.lo == D1 and s.hi == D2 and s.lo.tzinfo == UTC


def test_a_run_after_skipped_intervals_reads_back_to_the_watermark():
    # Paused for three days: the watermark is at D1, Airflow runs only [D1 + 3d, D1 + 4d).
    start = D1 + 3 * DAY
    s = window(table(lookback="1h"), TableState(watermark=D1), interval_start=start, interval_end=start + DAY)
    assert (s.lo, s.hi) == (D1 - timedelta(hours=1), start + DAY)
    assert (s.interval_start, s.interval_end) == (start, start + DAY)  # the lake folder is still the interval's
    assert "watermark" in s.reason


def test_an_old_interval_behind_the_watermark_reads_only_itself():
    s = window(state=TableState(watermark=D3), interval_start=D1, interval_end=D2)
    assert (s.lo, s.hi) == (D1, D2)


def test_the_first_run_of_a_table_reads_from_the_source_start_date():
    later = Incremental(table(lookback="1h"), start_date=D1).window(TableState(), interval_start=D3, interval_end=D3 + DAY)
    assert (later.lo, later.hi) == (D1 - timedelta(hours=1), D3 + DAY) and "start_date" in later.reason
    first = Incremental(table(), start_date=D1).window(TableState(), interval_start=D1, interval_end=D2)
    assert (first.lo, first.hi) == (D1, D2)


@pytest.mark.parametrize("end", [None, D1])
def test_manual_run_reads_from_the_watermark_to_run_creation(end):
    created = datetime(2026, 1, 5, 12, tzinfo=UTC)
    s = window(table(lookback="30m"), TableState(watermark=D2), interval_start=D1, interval_end=end, run_created=created)
    assert (s.lo, s.hi) == (D2 - timedelta(minutes=30), created)
    assert not s.full


def test_manual_run_without_watermark_reads_everything_up_to_creation():
    created = datetime(2026, 1, 5, tzinfo=UTC)
    s = window(state=TableState(), interval_start=None, interval_end=None, run_created=created)
    assert s.lo is None and s.hi == created


def test_full_tables_and_full_refresh_read_everything():
    assert window(table(mode="full", cursor=None), interval_start=D1, interval_end=D2).full
    s = window(interval_start=D1, interval_end=D2, full_refresh=True)
    assert s.full and s.lo is None and s.hi is None


def test_slice_round_trips_through_the_manifest_dict():
    s = window(table(lookback="1h"), interval_start=D1, interval_end=D2)
    assert Slice.from_dict(s.as_dict()) == s


def test_pending_reread_window_widens_the_run_that_reaches_past_it():
    t0 = D1 + timedelta(hours=20)  # a source transaction open since then may commit later
    state = TableState(watermark=D2, reread_from=t0, reread_until=D2)
    s = window(state=state, interval_start=D2, interval_end=D3)
    assert (s.lo, s.hi) == (t0, D3) and "re-read" in s.reason
    # An older interval (a backfill) that ends before the window does not widen.
    older = window(state=state, interval_start=D1 - DAY, interval_end=D1)
    assert older.lo == D1 - DAY
    # A manual run from the watermark widens too.
    manual_state = TableState(watermark=t0 + timedelta(hours=1), reread_from=t0, reread_until=D2)
    manual = window(state=manual_state, interval_start=None, interval_end=None, run_created=D3)
    assert manual.lo == t0


def ts(hour: int) -> datetime:
    return D1 + timedelta(hours=hour)


def read(lo, hi) -> Slice:
    return Slice("updated_at", lo, hi, lo, hi)


def test_watermark_only_moves_forward():
    state = Incremental.after_read(TableState(), read(ts(0), ts(3)), ts(3), "x", "r1")
    assert state.watermark == ts(3)
    state = Incremental.after_read(state, read(ts(0), ts(2)), ts(2), "y", "r0")
    assert state.watermark == ts(3)
    state = Incremental.after_read(state, read(ts(3), ts(4)), ts(4), "z", "r2")
    assert state.watermark == ts(4) and state.last_run_id == "r2"


def test_capped_watermark_opens_a_reread_window_that_a_covering_run_closes():
    # A read of [2, 4) with a transaction open since 3: the watermark stops at 3.
    state = Incremental.after_read(TableState(), read(ts(2), ts(4)), ts(3), None, "r1")
    assert (state.watermark, state.reread_from, state.reread_until) == (ts(3), ts(3), ts(4))
    # An older interval that does not cover the window leaves it open.
    state = Incremental.after_read(state, read(ts(1), ts(2)), ts(2), None, "r0")
    assert state.reread_from == ts(3)
    # The next run read [3, 5) completely: the window closes, the watermark moves on.
    state = Incremental.after_read(state, read(ts(3), ts(5)), ts(5), None, "r2")
    assert state.watermark == ts(5) and state.reread_from is None and state.reread_until is None
