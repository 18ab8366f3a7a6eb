"""Which rows a run reads: interval slices, lookback, manual runs, full refreshes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lockgate.config import TableConfig
from lockgate.slices import Slice, compute_slice

UTC = UTC
D1 = datetime(2026, 1, 1, tzinfo=UTC)
D2 = datetime(2026, 1, 2, tzinfo=UTC)


def table(**kw) -> TableConfig:
    base = {"name": "orders", "primary_key": ["order_id"], "mode": "merge", "cursor": "updated_at"}
    return TableConfig.model_validate({**base, **kw})


def test_interval_slice_is_half_open_and_reaches_back_by_lookback():
    s = compute_slice(table(lookback="1h"), interval_start=D1, interval_end=D2)
    assert (s.lo, s.hi) == (D1 - timedelta(hours=1), D2)
    assert (s.interval_start, s.interval_end) == (D1, D2)
    assert not s.full and s.column == "updated_at"


def test_naive_times_are_utc_and_aware_times_are_converted():
    cet = timezone(timedelta(hours=1))
    s = compute_slice(table(), interval_start=datetime(2026, 1, 1, 1, tzinfo=cet), interval_end=D2.replace(tzinfo=None))
    assert s.lo == D1 and s.hi == D2 and s.lo.tzinfo == UTC


@pytest.mark.parametrize("end", [None, D1])
def test_manual_run_reads_from_the_watermark_to_run_creation(end):
    created = datetime(2026, 1, 5, 12, tzinfo=UTC)
    s = compute_slice(table(lookback="30m"), interval_start=D1, interval_end=end, run_created=created, watermark=D2)
    assert (s.lo, s.hi) == (D2 - timedelta(minutes=30), created)
    assert not s.full


def test_manual_run_without_watermark_reads_everything_up_to_creation():
    created = datetime(2026, 1, 5, tzinfo=UTC)
    s = compute_slice(table(), interval_start=None, interval_end=None, run_created=created)
    assert s.lo is None and s.hi == created


def test_full_tables_and_full_refresh_read_everything():
    assert compute_slice(table(mode="full", cursor=None), interval_start=D1, interval_end=D2).full
    s = compute_slice(table(), interval_start=D1, interval_end=D2, full_refresh=True)
    assert s.full and s.lo is None and s.hi is None


def test_slice_round_trips_through_the_manifest_dict():
    s = compute_slice(table(lookback="1h"), interval_start=D1, interval_end=D2)
    assert Slice.from_dict(s.as_dict()) == s


def test_pending_reread_window_widens_the_run_that_reaches_past_it():
    t0 = D1 + timedelta(hours=20)  # a source transaction open since then may commit later
    d3 = D2 + timedelta(days=1)
    s = compute_slice(table(), interval_start=D2, interval_end=d3, reread_from=t0, reread_until=D2)
    assert (s.lo, s.hi) == (t0, d3)
    # An older interval (a backfill) that ends before the window does not widen.
    older = compute_slice(
        table(), interval_start=D1 - timedelta(days=1), interval_end=D1, reread_from=t0, reread_until=D2
    )
    assert older.lo == D1 - timedelta(days=1)
    # A manual run from the watermark widens too.
    manual = compute_slice(table(), interval_start=None, interval_end=None, run_created=d3, watermark=t0 + timedelta(hours=1), reread_from=t0, reread_until=D2)
    assert manual.lo == t0
