"""Lockgate's table-level checks of a batch: row count against the source, freshness."""

from __future__ import annotations

from datetime import UTC, datetime

from lockgate.config import TableConfig
from lockgate.pipeline import table_checks

D1 = datetime(2026, 1, 1, tzinfo=UTC)
D2 = datetime(2026, 1, 2, tzinfo=UTC)
SLICE = {"column": "updated_at", "lo": D1.isoformat(), "hi": D2.isoformat(), "interval_start": D1.isoformat(),
         "interval_end": D2.isoformat(), "full": False}  # fmt: skip


def table(**kw) -> TableConfig:
    return TableConfig.model_validate({"name": "t", "primary_key": ["id"], "cursor": "updated_at", **kw})


def manifest(**kw):
    return {"slice": SLICE, "rows": 10, "source_rows": 10, "safe_hi": D2.isoformat(), "cursor_max": None, **kw}


def test_row_count_must_match_the_source_count_of_a_stable_slice():
    (check,) = table_checks(table(), manifest())
    assert check.success and check.expectation == "lockgate_row_count_matches_source"
    (check,) = table_checks(table(), manifest(rows=9))
    assert not check.success and check.row_predicate is None  # table-level: cannot be quarantined
    assert "9" in check.describe()


def test_row_count_is_compared_even_with_open_source_transactions_but_not_on_replay():
    # Counts are taken per chunk in the rows' own snapshot: an open transaction changes nothing.
    (check,) = table_checks(table(), manifest(rows=9, safe_hi=datetime(2026, 1, 1, 12, tzinfo=UTC).isoformat()))
    assert not check.success
    assert table_checks(table(), manifest(rows=9, replayed_from="/lake/x")) == []


def test_freshness_of_the_newest_cursor():
    fresh = manifest(cursor_max="2026-01-01T23:30:00")
    stale = manifest(cursor_max="2026-01-01T06:00:00")
    assert all(c.success for c in table_checks(table(freshness="1h"), fresh))
    checks = {c.expectation: c for c in table_checks(table(freshness="1h"), stale)}
    assert not checks["lockgate_cursor_is_fresh"].success
    empty = {c.expectation: c for c in table_checks(table(freshness="1h"), manifest(rows=0, source_rows=0))}
    assert not empty["lockgate_cursor_is_fresh"].success  # nothing arrived at all
