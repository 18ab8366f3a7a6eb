"""Re-run rules that must hold whatever order runs finish in (issue 11, defects 3 and 6).

- A retry reuses its first attempt's plan verbatim: the slice it loads is the slice its
  rows were read for, even when the table's state moved in between.
- A replay from the lake changes no source-reading state (watermark, re-read window),
  and an older raw version never overwrites rows a newer read loaded.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from lockgate import warehouse
from lockgate.faults import InjectedFault

from tests.reprocessing.harness import SOURCE, day

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)


def _state_row(src, table: str) -> tuple:
    with warehouse.connect(src.settings, read_only=True) as conn:
        return conn.execute(
            "SELECT watermark, reread_from, reread_until FROM lockgate.state WHERE source = ? AND table_name = ?",
            [SOURCE, table],
        ).fetchone()


def _manifest_slice(raw_path: str) -> dict:
    from lockgate import lake

    return lake.read_manifest(raw_path)["slice"]


def test_a_retry_loads_the_slice_its_first_attempt_planned(pg_source, monkeypatch):
    src = pg_source
    src.create("events", chunk_rows=10)
    src.insert_events(1, 72, day(0), HOUR)  # days 0, 1, 2
    src.run_interval("events", 0)
    manual = src.run_info(None, run_id="manual__retry", run_created=day(3))
    monkeypatch.setenv("LOCKGATE_FAILPOINTS", "extract.chunk_written@events")
    with pytest.raises(InjectedFault):
        src.stage("extract", "events", manual)
    monkeypatch.delenv("LOCKGATE_FAILPOINTS")
    # Meanwhile scheduled runs move the watermark past what the manual run planned.
    src.run_interval("events", 1)
    src.run_interval("events", 2)
    assert _state_row(src, "events")[0] == day(3)
    retried = src.run("events", manual)  # the automatic retry: same run id, same version
    window = _manifest_slice(retried["raw_path"])
    # The plan of attempt 1 ([watermark day 1, run creation day 3)), not a recomputed one.
    assert (window["lo"], window["hi"]) == (day(1).isoformat(), day(3).isoformat())
    assert retried["rows"] == 48
    src.assert_converged("events")


def _open_writer(src):
    import psycopg

    conn = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=src.database)
    conn.execute("INSERT INTO orders VALUES (9001, 'late writer', 'placed', 1.00, now() AT TIME ZONE 'UTC')")
    return conn


def test_a_replay_leaves_the_reread_window_and_the_watermark_alone(pg_source):
    src = pg_source
    src.create("orders")
    now = datetime.now(UTC)
    src.insert_orders(1, 10, now - 5 * HOUR, 20 * timedelta(minutes=1))
    writer = _open_writer(src)
    try:
        time.sleep(1.0)
        end = datetime.now(UTC)
        first = src.run_info(None, run_id="scheduled__a", interval_start=end - 6 * HOUR, interval_end=end)
        src.run("orders", first)
    finally:
        writer.commit()
        writer.close()
    before = _state_row(src, "orders")
    assert before[1] is not None, "the open transaction left a re-read window"
    # Replaying the same interval reads nothing from the source: the late row is still
    # unread, so the window must stay open and the watermark where it was.
    replay = src.run_info(None, run_id="replay__a", interval_start=end - 6 * HOUR, interval_end=end,
                          replay_from_lake="latest")
    src.run("orders", replay)
    assert _state_row(src, "orders") == before
    later = src.run_info(None, run_id="scheduled__b", interval_start=end, interval_end=datetime.now(UTC))
    src.run("orders", later)
    src.assert_converged("orders")


def test_a_warehouse_rebuilt_by_replays_gets_no_watermark_from_them(pg_source, monkeypatch, tmp_path):
    src = pg_source
    src.create("orders")
    src.insert_orders(1, 48, day(0), HOUR)
    src.run_interval("orders", 0)
    src.run_interval("orders", 1)
    # The warehouse is lost; the lake is not. Replays rebuild the tables without reading
    # the source, so they cannot vouch for what the source holds: no watermark.
    monkeypatch.setenv("LOCKGATE_WAREHOUSE", str(tmp_path / "rebuilt" / "warehouse.duckdb"))
    from lockgate.settings import load_settings

    src.settings = load_settings()
    src.sql("INSERT INTO orders VALUES (700, 'late', 'placed', 7.00, %s)", ((day(1) - HOUR).replace(tzinfo=None),))
    src.run_interval("orders", 0, replay_from_lake="latest")
    src.run_interval("orders", 1, replay_from_lake="latest")
    assert _state_row(src, "orders") in (None, (None, None, None))
    # The next scheduled run is then a first read: it finds the row the lake never had.
    src.run_interval("orders", 2)
    src.assert_converged("orders")


def test_replaying_an_older_append_read_keeps_rows_a_later_read_added(any_source):
    src = any_source
    src.create("events", lookback="2h")
    src.insert_events(1, 20, day(0), HOUR)
    first = src.run_info(0, run_id="scheduled__d0")
    src.run("events", first)
    # Committed after day 0 was read, with a cursor in day 0's last hours: day 1's run
    # reads it through its lookback.
    src.insert_events(500, 2, day(1) - 90 * timedelta(minutes=1), 30 * timedelta(minutes=1))
    src.insert_events(600, 5, day(1) + HOUR, HOUR)
    src.run_interval("events", 1)
    src.assert_converged("events")
    # Day 0's stored version predates those rows: replaying it must not delete them.
    src.run_interval("events", 0, replay_from_lake="latest")
    src.assert_converged("events")
    # A deliberate re-read of day 0 (newer than every load) replaces its whole slice.
    src.sql("UPDATE events SET payload = 'corrected' WHERE event_id IN (2, 500)")
    src.run("events", src.run_info(0, run_id=first.run_id, version=1))
    src.assert_converged("events")
