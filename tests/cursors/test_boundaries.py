"""Slice boundaries on PostgreSQL, MariaDB and SQLite: many rows sharing one cursor
value on a boundary, values exactly at an interval's start and end, microseconds.
Every row is read by exactly one interval (plus its lookback), ``append`` never holds
a row twice, and the warehouse ends equal to the source value by value."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.cursors.helpers import batch_ids, create
from tests.reprocessing.harness import day, naive

pytestmark = pytest.mark.integration

US = timedelta(microseconds=1)
DDL = "CREATE TABLE {name} (id BIGINT PRIMARY KEY, note VARCHAR(40), at {ts} NOT NULL)"


def _rows(engine: str) -> list[tuple[int, str, object]]:
    """(id, note, cursor value): SQLite gets its text formats, the others datetimes."""
    at = {41: day(0), 42: day(1) - US, 43: day(1) + US, 44: day(2), 61: day(2) - US}
    at |= {i: day(1) for i in range(1, 41)} | {i: day(0) + timedelta(hours=12) for i in range(45, 61)}
    rows = [(i, f"row {i}", naive(v)) for i, v in sorted(at.items())]
    if engine != "sqlite":
        return rows
    texts = {1: "2026-04-02T00:00", 2: "2026-04-02 00:00:00.000", 3: "2026-04-02T02:00:00+02:00",
             4: "2026-04-02T00:00:00Z", 42: "2026-04-01 23:59:59.999999", 43: "2026-04-02T00:00:00.000001",
             45: "2026-04-01T12:00:00.000000", 61: "2026-04-02 23:59:59.999999"}  # fmt: skip
    return [(i, note, texts.get(i, v.isoformat(sep=" "))) for i, note, v in rows]


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_rows_on_the_boundaries_are_read_by_exactly_one_interval(src, mode):
    create(src, "ev", DDL, primary_key=["id"], mode=mode, cursor="at", lookback="1h")
    src.many("INSERT INTO ev (id, note, at) VALUES (%s, %s, %s)", _rows(src.engine))
    day0 = {41, 42, *range(45, 61)}
    day1 = {*range(1, 41), 43, 61}
    assert batch_ids(src.run_interval("ev", 0)) == day0
    # The lookback (1h) re-reads the end of day 0: 42 (23:59:59.999999), not 41 or 45..60.
    assert batch_ids(src.run_interval("ev", 1)) == day1 | {42}
    assert batch_ids(src.run_interval("ev", 2)) == {44, 61}
    src.assert_converged("ev")
    # Intervals run again, out of order: the warehouse ends the same (no row twice).
    assert batch_ids(src.run_interval("ev", 1)) == day1 | {42}
    assert batch_ids(src.run_interval("ev", 0)) == day0
    src.assert_converged("ev")
