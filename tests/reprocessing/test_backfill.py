"""A backfill through a real Airflow 3 scheduler: 30 daily intervals of a PostgreSQL
source, four runs at a time, newest first; then one interval run twice at the same
moment. After each, the warehouse must equal the source row for row.

The Airflow stack and its Spark Connect server are the session's (``airflow_stack`` in
conftest.py): this module declares its source in ``AIRFLOW_SOURCES``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.reprocessing.airflow_harness import (
    SCENARIO_COLUMNS,
    AirflowStack,
    ScenarioSource,
    create_scenario_tables,
    norm,
    scenario_yaml,
    tail,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

DAG_ID = "ingest_bf"
FIRST_DAY = datetime(2026, 2, 1, tzinfo=UTC)
DAYS = 30  # 2026-02-01 .. 2026-03-02
EVENTS_PER_DAY = 40
ACCOUNTS = 300
BACKFILL_TIMEOUT = 25 * 60

SOURCE_YAML = scenario_yaml(
    "bf", "Backfill scenario source", start_date="2026-02-01", max_active_runs=4, retries=1, retry_delay="1s"
)

COLUMNS = SCENARIO_COLUMNS
KEYS = {"events": "event_id", "accounts": "account_id"}


def naive_utc(day: datetime) -> datetime:
    return day.astimezone(UTC).replace(tzinfo=None)


def populate(conn) -> None:
    """Rows spread over the 30 days, including rows exactly at midnight (an interval edge)."""
    create_scenario_tables(conn)
    kinds = ["view", "click", "purchase", "refund"]
    events = []
    for d in range(DAYS):
        day = naive_utc(FIRST_DAY + timedelta(days=d))
        for i in range(EVENTS_PER_DAY):
            event_id = d * EVENTS_PER_DAY + i + 1
            # i == 0 lands exactly on midnight; the last one a microsecond before the next.
            offset = timedelta(days=1, microseconds=-1) if i == EVENTS_PER_DAY - 1 else timedelta(seconds=i * 2131)
            amount = None if event_id % 17 == 0 else Decimal(event_id * 37 % 10000) / 100
            events.append((event_id, event_id % ACCOUNTS + 1, kinds[event_id % 4], amount, day + offset))
    accounts = []
    for a in range(1, ACCOUNTS + 1):
        moment = naive_utc(FIRST_DAY) + timedelta(days=(a - 1) % DAYS, seconds=(a * 997) % 86400)
        status = None if a % 23 == 0 else ("active" if a % 3 else "closed")
        accounts.append((a, f"account {a} ü", status, Decimal(a * 1234 % 100000) / 100, moment))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s)", events)
        cur.executemany("INSERT INTO accounts VALUES (%s, %s, %s, %s, %s)", accounts)


def source_rows(pg_dsn: dict, table: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(**pg_dsn) as conn:
        rows = conn.execute(f"SELECT {', '.join(COLUMNS[table])} FROM {table} ORDER BY {KEYS[table]}").fetchall()
    return [tuple(norm(v) for v in row) for row in rows]


def warehouse_rows(warehouse_path: str, table: str) -> list[tuple]:
    from lockgate import warehouse

    with warehouse.connect(warehouse_path, read_only=True) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(COLUMNS[table])} FROM bf.{table} ORDER BY {KEYS[table]}"
        ).fetchall()
    return [tuple(norm(v) for v in row) for row in rows]


def assert_warehouse_equals_source(env: dict) -> None:
    for table in COLUMNS:
        expected = source_rows(env["pg_dsn"], table)
        actual = warehouse_rows(env["warehouse"], table)
        keys = [row[0] for row in actual]
        assert len(keys) == len(set(keys)), f"bf.{table}: duplicate keys in the warehouse"
        missing = sorted({r[0] for r in expected} - set(keys))
        assert not missing, f"bf.{table}: {len(missing)} source keys missing from the warehouse, e.g. {missing[:5]}"
        if actual != expected:
            diff = [(e, a) for e, a in zip(expected, actual, strict=False) if e != a][:3]
            pytest.fail(f"bf.{table}: {len(actual)} warehouse rows vs {len(expected)} source rows; first diffs {diff}")


AIRFLOW_SOURCES = [ScenarioSource("bf", SOURCE_YAML, populate)]


@pytest.fixture(scope="module")
def stack(airflow_stack):
    """The session's Airflow stack, seen from this module's source ``bf``."""
    return {
        "root": airflow_stack.root,
        "airflow": airflow_stack.airflow,
        "spark": airflow_stack.spark,
        "env": airflow_stack.env,
        "pg_dsn": airflow_stack.databases["bf"],
        "warehouse": airflow_stack.warehouse,
    }


def test_backfill_of_30_days_through_the_scheduler_equals_the_source(stack):
    airflow: AirflowStack = stack["airflow"]
    started = time.monotonic()
    # Created while the DAG is still paused (its runs wait queued), and checked to exist:
    # on SQLite a lock conflict with the running scheduler can make Airflow delete a
    # half-made backfill, which create_backfill then creates again.
    airflow.create_backfill(
        DAG_ID, "2026-02-01", "2026-03-02", expected_runs=DAYS, run_backwards=True, max_active_runs=4
    )
    airflow.cli("dags", "unpause", DAG_ID)
    airflow.wait_runs(
        DAG_ID,
        lambda runs: len([r for r in runs if r["run_type"] == "backfill"]) >= DAYS
        and all(r["state"] in ("success", "failed") for r in runs),
        what=f"the backfill of {DAYS} days",
        timeout=BACKFILL_TIMEOUT,
        poll=5,
    )
    print(f"backfill of {DAYS} runs took {time.monotonic() - started:.0f}s", file=sys.stderr)

    listed = airflow.cli_json("dags", "list-runs", DAG_ID)
    backfill = [r for r in listed if r["run_id"].startswith("backfill__")]
    assert len(backfill) == DAYS, [r["run_id"] for r in listed]
    failed = [r for r in listed if r["state"] != "success"]
    assert not failed, f"runs not successful: {failed}\n{airflow.log_tails()}"
    # Unpausing a catchup=False DAG makes the scheduler run its latest interval as well;
    # that is the only other run, and its data interval lies after the backfilled range
    # (what it reads may reach back to the watermark: the audit's slice is not checked).
    others = [r for r in listed if not r["run_id"].startswith("backfill__")]
    assert all(r["run_id"].startswith("scheduled__") for r in others), others
    assert len(others) <= 1, others
    days_end = FIRST_DAY + timedelta(days=DAYS)
    scheduled_runs = [r for r in airflow.dag_runs(DAG_ID) if r["run_type"] == "scheduled"]
    assert all(r["data_interval_start"] >= days_end for r in scheduled_runs), scheduled_runs

    # Every backfill run covered [D, D + 1 day): the audit table shows exactly the 30 days, per table.
    from lockgate import warehouse

    days = [FIRST_DAY + timedelta(days=d) for d in range(DAYS)]
    with warehouse.connect(stack["warehouse"], read_only=True) as conn:
        audit = conn.execute(
            "SELECT table_name, interval_start, interval_end, status, run_id FROM lockgate.runs WHERE source = 'bf'"
        ).fetchall()
    assert {r[4] for r in audit} == {r["run_id"] for r in listed}
    for table in COLUMNS:
        rows = [r for r in audit if r[0] == table and r[4].startswith("backfill__")]
        assert len(rows) == DAYS, rows
        assert sorted(norm(r[1]) for r in rows) == [naive_utc(d) for d in days]
        assert all(norm(r[2]) - norm(r[1]) == timedelta(days=1) for r in rows)
        assert {r[3] for r in audit if r[0] == table} == {"published"}
    assert_warehouse_equals_source(stack)


def test_one_interval_run_twice_at_the_same_time_leaves_the_warehouse_equal_to_the_source(stack):
    root: Path = stack["root"]
    start, end = FIRST_DAY + timedelta(days=13), FIRST_DAY + timedelta(days=14)
    signal_file = root / "go"
    env = {**stack["airflow"].env}
    harness = Path(__file__).with_name("airflow_harness.py")
    processes = []
    for name in ("twice-a", "twice-b"):
        log = open(root / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115
        processes.append(
            (
                name,
                subprocess.Popen(
                    [sys.executable, str(harness), "run-interval", "bf", start.isoformat(), end.isoformat(),
                     f"concurrent__{name}", str(signal_file)],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                ),
            )
        )
        log.close()
    time.sleep(3)  # both import Lockgate, then start on the same signal
    signal_file.touch()
    try:
        for name, process in processes:
            code = process.wait(timeout=600)
            assert code == 0, f"{name} exited with {code}:\n{tail(root / f'{name}.log', 60)}"
    finally:
        for _, process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()

    from lockgate import warehouse

    with warehouse.connect(stack["warehouse"], read_only=True) as conn:
        audit = conn.execute(
            "SELECT run_id, table_name, interval_start, status, rows_loaded, read_at FROM lockgate.runs "
            "WHERE run_id LIKE 'concurrent__%' ORDER BY run_id, table_name"
        ).fetchall()
    assert len(audit) == 4, audit
    assert {r[3] for r in audit} == {"published"}
    assert {norm(r[2]) for r in audit} == {naive_utc(start)}
    # The newest read wins: the batch read later loads the whole day; the other loads it
    # too, unless it was loaded after the newer one, which then supersedes it (0 rows).
    events = sorted((r[5], r[4], r[0]) for r in audit if r[1] == "events")
    (older_read, older_loaded, _), (_, newer_loaded, _) = events
    assert newer_loaded == EVENTS_PER_DAY, events
    assert older_loaded in (0, EVENTS_PER_DAY), events
    assert_warehouse_equals_source(stack)
