"""The cursor rules without a database (lockgate.cursors): what a cursor may name,
wall-clock bounds across DST, whole days, epoch bounds and SQLite's time normalisation."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from lockgate.config import TableConfig
from lockgate.cursors import Cursor, epoch_bound, parse_columns, sqlite_time, wall_bound, whole_days
from lockgate.sources import JdbcSource

BERLIN = ZoneInfo("Europe/Berlin")


def table(**kw) -> TableConfig:
    return TableConfig.model_validate({"name": "t", "primary_key": ["id"], "mode": "merge", "cursor": "at", **kw})


@pytest.mark.parametrize(
    "value", ["COALESCE(a, b); DROP TABLE x", "a + b", "COALESCE(a, b + 1)", {"coalesce": ["a", ""]}, {"max": ["a"]},
              "COALESCE(a, a)"]
)
def test_a_cursor_names_only_column_identifiers(value):
    with pytest.raises(ValueError):
        table(cursor=value)


def test_expression_cursors_are_kept_in_one_canonical_form():
    assert table(cursor={"coalesce": ["updated_at", "created_at"]}).cursor == "COALESCE(updated_at, created_at)"
    assert table(cursor="coalesce( updated_at ,created_at )").cursor_columns == ("updated_at", "created_at")
    assert parse_columns("at") == ("at",)


def test_config_checks_the_zone_and_the_policies():
    with pytest.raises(ValueError, match="unknown time zone"):
        table(cursor_timezone="Mars/Olympus")
    with pytest.raises(ValueError):
        table(cursor_kind="integer")
    assert table(null_cursor="include").null_cursor == "include"


def test_wall_bounds_across_dst():
    # Spring: instants map to wall clocks that skip 02:00-03:00.
    assert wall_bound(datetime(2026, 3, 29, 1, tzinfo=UTC), BERLIN) == datetime(2026, 3, 29, 3)
    # Autumn: the first occurrence of 02:30, then the second maps to the end of the repeated hour.
    assert wall_bound(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), BERLIN) == datetime(2026, 10, 25, 2, 30)
    assert wall_bound(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), BERLIN) == datetime(2026, 10, 25, 3)
    assert wall_bound(datetime(2026, 10, 25, 2, 0, tzinfo=UTC), BERLIN) == datetime(2026, 10, 25, 3)


def test_date_slices_are_whole_days_and_epoch_bounds_round_up():
    lo, hi = whole_days(datetime(2026, 4, 1, 23, tzinfo=UTC), datetime(2026, 4, 3, 0, 0, 1, tzinfo=UTC), ZoneInfo("UTC"))
    assert (lo, hi) == (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 4, tzinfo=UTC))
    instant = datetime(2026, 4, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert epoch_bound(instant, "epoch_seconds") == int(datetime(2026, 4, 1, tzinfo=UTC).timestamp()) + 1
    assert epoch_bound(instant.replace(microsecond=0), "epoch_millis") == int(instant.timestamp()) * 1000


@pytest.mark.parametrize(
    "text, normal",
    [
        ("2026-01-01T08:00", "2026-01-01 08:00:00.000000"),
        ("2026-01-01 08:00:00.5", "2026-01-01 08:00:00.500000"),
        ("2026-01-01 08:00:59.9999996", "2026-01-01 08:00:59.999999"),
        ("2026-01-01T08:00:00.123456+02:00", "2026-01-01 06:00:00.123456"),
        ("2026-01-01T23:30:00-02:00", "2026-01-02 01:30:00.000000"),
        ("2026-01-01 08:00:00Z", "2026-01-01 08:00:00.000000"),
        ("2026-01-01 08:00:00.25Z", "2026-01-01 08:00:00.250000"),
        ("not a time", None),
    ],
)
def test_sqlite_text_times_are_normalised(text, normal):
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE TABLE v (x TEXT)")
        conn.execute("INSERT INTO v VALUES (?)", (text,))
        assert conn.execute(f"SELECT {sqlite_time('x')} FROM v").fetchone()[0] == normal


def test_source_predicates_per_engine():
    at = Cursor(("at",), timezone="Europe/Berlin")
    lo, hi = datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 7, 2, tzinfo=UTC)
    pg = JdbcSource("postgres", "jdbc:postgresql://h/db")
    assert at.source_range(pg, lo, hi) == "\"at\" >= '2026-07-01 02:00:00+02:00' AND \"at\" < '2026-07-02 02:00:00+02:00'"
    both = Cursor(("u", "c"), null_policy="include")
    maria = JdbcSource("mariadb", "jdbc:mysql://h/db")
    assert both.source_predicate(maria, lo, None) == "((COALESCE(`u`, `c`) >= '2026-07-01 00:00:00') OR COALESCE(`u`, `c`) IS NULL)"
    assert both.duck_expr("t.") == 'COALESCE(t."u", t."c")'


def test_an_id_watermark_waits_for_open_transactions_but_never_stalls_for_good():
    """safe_position: the newest earlier read made before the oldest open transaction
    began bounds the watermark; with no open transaction it moves to the read's end."""
    from datetime import timedelta

    from lockgate.incremental import Incremental, Slice, TableState

    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    window = Slice("id", 300, 400, t0, t0)
    earlier = [(100, t0), (200, t0 + timedelta(hours=1)), (300, t0 + timedelta(hours=2))]
    assert Incremental.safe_position(window, None, earlier) == 400
    assert Incremental.safe_position(window, t0 + timedelta(hours=1, minutes=30), earlier) == 200
    assert Incremental.safe_position(window, t0 + timedelta(days=1), earlier) == 300
    assert Incremental.safe_position(window, t0 - timedelta(hours=1), earlier) is None  # older than every read
    moved = Incremental.after_read(TableState(watermark=250), window, 200, "399", "r")
    assert moved.watermark == 250  # never backwards
    rules = Incremental(table(cursor="id", cursor_kind="id", mode="append"))
    first = rules.window(TableState(), interval_start=t0, interval_end=t0 + timedelta(days=1))
    assert (first.lo, first.hi) == (None, None)  # to the highest id, fixed by the extract's plan
    later = rules.window(TableState(watermark=400), interval_start=t0, interval_end=t0 + timedelta(days=1))
    assert (later.lo, later.hi) == (400, None)
    again = rules.window(TableState(watermark=900), interval_start=t0, interval_end=t0, earlier=window,
                         run_created=t0)  # fmt: skip
    assert (again.lo, again.hi) == (300, 400)
    assert Slice.from_dict(again.as_dict()) == again
