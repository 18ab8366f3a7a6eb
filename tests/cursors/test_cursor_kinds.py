"""Every kind of cursor end to end (extract → load → re-run) on every engine where it
exists: ``timestamptz``; naive ``timestamp``/``DATETIME``/SQLite text in a
``cursor_timezone`` across both DST transitions; SQLite text in its common formats
compared as times; ``DATE`` cursors on whole days; epoch numbers; ``COALESCE`` cursors.
Each scenario checks which rows every run read and ends with warehouse == source."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from lockgate import warehouse
from lockgate.errors import ConfigError
from lockgate.incremental import parse_time

from tests.cursors.helpers import batch_ids, create, run_between
from tests.reprocessing.harness import SOURCE, day, naive

pytestmark = pytest.mark.integration

EVENTS = "CREATE TABLE {name} (id BIGINT PRIMARY KEY, note VARCHAR(40), at {ts} NOT NULL)"


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_timestamptz_cursor_with_values_written_in_other_offsets(pg_source):
    src = pg_source
    create(src, "tz", "CREATE TABLE {name} (id BIGINT PRIMARY KEY, at TIMESTAMPTZ NOT NULL)",
           primary_key=["id"], mode="append", cursor="at", lookback="1h")  # fmt: skip
    plus5, minus3 = (datetime.now().astimezone().tzinfo.__class__(timedelta(hours=h)) for h in (5, -3))
    values = {1: datetime(2026, 4, 2, 4, 59, 59, 999999, tzinfo=plus5),  # 23:59:59.999999 UTC, day 0
              2: datetime(2026, 4, 2, 5, 0, tzinfo=plus5),  # exactly day 1 00:00 UTC
              3: datetime(2026, 4, 1, 21, 0, tzinfo=minus3)}  # day 1 00:00 UTC  # fmt: skip
    src.many("INSERT INTO tz (id, at) VALUES (%s, %s)", sorted(values.items()))
    assert batch_ids(src.run_interval("tz", 0)) == {1}
    assert batch_ids(src.run_interval("tz", 1)) == {1, 2, 3}
    assert batch_ids(src.run_interval("tz", 0)) == {1}
    src.assert_converged("tz")


def test_naive_wall_clock_in_a_zone_across_both_dst_transitions(src):
    """Europe/Berlin: 2026-03-29 02:00 → 03:00 (skipped hour), 2026-10-25 03:00 → 02:00
    (repeated hour). A value in the repeated hour is its first occurrence; a value in
    the skipped hour is read by the slice that ends at the transition."""
    create(src, "ev", EVENTS, primary_key=["id"], mode="append", cursor="at", cursor_timezone="Europe/Berlin")
    walls = {11: datetime(2026, 3, 29, 1, 30), 12: datetime(2026, 3, 29, 2, 30), 13: datetime(2026, 3, 29, 3, 0),
             14: datetime(2026, 3, 29, 3, 30), 1: datetime(2026, 10, 25, 1, 30), 2: datetime(2026, 10, 25, 2, 15),
             3: datetime(2026, 10, 25, 2, 45), 5: datetime(2026, 10, 25, 2, 59, 59, 999999),
             4: datetime(2026, 10, 25, 3, 10)}  # fmt: skip
    src.many("INSERT INTO ev (id, note, at) VALUES (%s, %s, %s)", [(i, f"e{i}", w) for i, w in sorted(walls.items())])
    spring = [(_utc(2026, 3, 29, 0), _utc(2026, 3, 29, 1), {11, 12}), (_utc(2026, 3, 29, 1), _utc(2026, 3, 29, 2), {13, 14})]
    autumn = [(_utc(2026, 10, 24, 23), _utc(2026, 10, 25, 0, 30), {1, 2}),
              (_utc(2026, 10, 25, 0, 30), _utc(2026, 10, 25, 1, 30), {3, 5}),  # ends in the second 02:30
              (_utc(2026, 10, 25, 1, 30), _utc(2026, 10, 25, 3), {4})]  # fmt: skip
    for start, end, ids in [*spring, *autumn, autumn[1], spring[0]]:  # then two intervals again
        assert batch_ids(run_between(src, "ev", start, end)) == ids, (start, end)
    src.assert_converged("ev")


def test_sqlite_text_timestamps_compare_as_times_not_as_strings(sqlite_source):
    src = sqlite_source
    create(src, "ev", "CREATE TABLE {name} (id INTEGER PRIMARY KEY, note TEXT, at DATETIME NOT NULL)",
           primary_key=["id"], mode="append", cursor="at", lookback="10h")  # fmt: skip
    texts = {1: "2026-04-01T08:00", 2: "2026-04-01 23:00:00", 3: "2026-04-02T01:30:00+02:00",
             4: "2026-04-01T23:30:00-02:00", 5: "2026-04-02 12:00:00.5", 6: "2026-04-02T00:00:00Z"}  # fmt: skip
    src.many("INSERT INTO ev (id, note, at) VALUES (%s, %s, %s)", [(i, f"e{i}", t) for i, t in texts.items()])
    assert batch_ids(src.run_interval("ev", 0)) == {1, 2, 3}
    # Day 1 reaches back 10h (from 04-01 14:00): '2026-04-01T08:00' is not in it.
    assert batch_ids(src.run_interval("ev", 1)) == {2, 3, 4, 5, 6}
    assert batch_ids(src.run_interval("ev", 0)) == {1, 2, 3}
    src.assert_converged("ev")


@pytest.mark.parametrize("kind", ["epoch_seconds", "epoch_millis"])
def test_epoch_number_cursor(src, kind):
    create(src, "ep", "CREATE TABLE {name} (id BIGINT PRIMARY KEY, note VARCHAR(40), at_epoch BIGINT NOT NULL)",
           primary_key=["id"], mode="append", cursor="at_epoch", cursor_kind=kind, lookback="1h")  # fmt: skip
    scale = 1 if kind == "epoch_seconds" else 1000
    times = {i: day(0) + timedelta(minutes=37 * i) for i in range(80)} | {100: day(1), 101: day(1) - timedelta(seconds=1)}
    rows = [(i, f"e{i}", int(t.timestamp() * scale)) for i, t in times.items()]
    src.many("INSERT INTO ep (id, note, at_epoch) VALUES (%s, %s, %s)", rows)

    def between(lo, hi):
        return {i for i, t in times.items() if lo <= t < hi}

    assert batch_ids(src.run_interval("ep", 0)) == between(day(0), day(1))
    assert batch_ids(src.run_interval("ep", 1)) == between(day(1) - timedelta(hours=1), day(2))
    assert batch_ids(src.run_interval("ep", 0)) == between(day(0), day(1))
    assert batch_ids(src.run_interval("ep", 2)) == between(day(2) - timedelta(hours=1), day(3))
    src.assert_converged("ep")
    with warehouse.connect(src.settings, read_only=True) as conn:
        state = warehouse.get_state(conn, SOURCE, "ep")
    assert parse_time(state.cursor_max) == max(times.values())  # the newest cursor, as a time


def test_date_cursor_reads_and_deletes_whole_days(src):
    create(src, "bk", "CREATE TABLE {name} (id BIGINT PRIMARY KEY, note VARCHAR(40), booked DATE NOT NULL)",
           primary_key=["id"], mode="append", cursor="booked", lookback="1h")  # fmt: skip
    days = {i: date(2026, 4, 1) + timedelta(days=i % 3) for i in range(1, 31)}
    src.many("INSERT INTO bk (id, note, booked) VALUES (%s, %s, %s)", [(i, f"b{i}", d) for i, d in days.items()])
    # A timestamp bound (day 1 − 1h) would cut day 0 in two: the source and the warehouse
    # disagreed on which side 2026-04-01 falls, and a day was deleted but not re-read.
    with pytest.raises(ConfigError, match="cursor_kind: date"):
        src.run_interval("bk", 0)
    src.tables["bk"]["cursor_kind"] = "date"
    src.run_interval("bk", 0)
    # Day 1 reaches back 1h into day 0: whole days, so day 0 is read and replaced again.
    assert batch_ids(src.run_interval("bk", 1)) == {i for i, d in days.items() if d <= date(2026, 4, 2)}
    src.run_interval("bk", 0)
    src.run_interval("bk", 2)
    src.assert_converged("bk")


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_coalesce_cursor(src, mode):
    ddl = ("CREATE TABLE {name} (id BIGINT PRIMARY KEY, note VARCHAR(40), created_at {ts} NOT NULL, "
           "updated_at {ts})")  # fmt: skip
    create(src, "cx", ddl, primary_key=["id"], mode=mode, cursor={"coalesce": ["updated_at", "created_at"]})
    rows = [(i, f"c{i}", naive(day(0) + timedelta(minutes=40 * i)), None) for i in range(1, 31)]
    src.many("INSERT INTO cx (id, note, created_at, updated_at) VALUES (%s, %s, %s, %s)", rows)
    src.sql("UPDATE cx SET updated_at = %s, note = 'late' WHERE id IN (3, 4)", (naive(day(1) + timedelta(hours=2)),))
    assert batch_ids(src.run_interval("cx", 0)) == {i for i in range(1, 31) if 40 * i < 24 * 60 and i not in (3, 4)}
    assert batch_ids(src.run_interval("cx", 1)) == {3, 4} | {i for i in range(1, 31) if 40 * i >= 24 * 60}
    src.run_interval("cx", 0)
    src.run_interval("cx", 1)
    src.assert_converged("cx")
