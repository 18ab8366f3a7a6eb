"""Intervals skipped while a DAG was paused are not lost (through the real scheduler).

Lockgate's DAGs use ``catchup=False``: after a pause of several intervals, unpausing makes
Airflow create only the newest run. That run must also read the rows of the intervals
nobody ran, from the table's watermark on.

The scenario: the source's first interval is ingested by a one-day ``airflow backfill
create`` (the source file's ``start_date`` lies far ahead then, so unpausing creates no
scheduled run). The DAG is paused, its ``start_date`` moved to a few days before today,
and unpaused: the scheduler makes exactly one scheduled run, for ``[yesterday, today)``,
several intervals after the ingested one. Afterwards the warehouse must hold exactly the
source rows from ``start_date`` to that run's interval end, the skipped days included
(a table's first run reads from the source's ``start_date``: older rows lie outside
every interval and only a ``full_refresh`` run reads them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.reprocessing.airflow_harness import (
    SCENARIO_COLUMNS,
    AirflowStack,
    ScenarioSource,
    create_scenario_tables,
    scenario_yaml,
    table_mismatch,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SOURCE = "gap"
DAG_ID = f"ingest_{SOURCE}"
# Computed when the tests are collected: the scenario is relative to today (UTC).
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START = TODAY - timedelta(days=6)  # the first interval [START, START + 1 day) is ingested
# Rows older than start_date exist as well: outside every interval, no run reads them.
FIRST_ROW_DAY = START - timedelta(days=2)
FAR_AHEAD = "2099-01-01"
EVENTS_PER_DAY = 12
ACCOUNTS = 60
COLUMNS = SCENARIO_COLUMNS
CURSOR = {"events": "created_at", "accounts": "updated_at"}

SOURCE_YAML = scenario_yaml(
    SOURCE, "Catch-up scenario source (a paused DAG, then unpaused)", start_date="{start_date}", max_active_runs=2,
    retries=0,
)


def source_yaml(start_date: str) -> str:
    return SOURCE_YAML.replace("{start_date}", start_date)


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def populate(conn) -> None:
    """Events on every day from two days before ``START`` to today's midnight and a little
    after it (interval edges included); accounts updated across the same days."""
    create_scenario_tables(conn)
    days = (TODAY - FIRST_ROW_DAY).days
    events = []
    for d in range(days):
        day = naive(FIRST_ROW_DAY + timedelta(days=d))
        for i in range(EVENTS_PER_DAY):
            event_id = d * 100 + i + 1
            offset = timedelta(days=1, microseconds=-1) if i == EVENTS_PER_DAY - 1 else timedelta(seconds=i * 7013)
            events.append((event_id, event_id % ACCOUNTS + 1, ["view", "buy"][i % 2], event_id % 997, day + offset))
    # Rows of today's interval: never part of a run that ends at today's midnight.
    events += [(99_001, 1, "view", 1, naive(TODAY)), (99_002, 2, "buy", 2, naive(TODAY) + timedelta(seconds=1))]
    accounts = []
    for a in range(1, ACCOUNTS + 1):
        moment = naive(FIRST_ROW_DAY) + timedelta(days=(a - 1) % days, seconds=(a * 1409) % 86400)
        accounts.append((a, f"account {a}", "active" if a % 3 else "closed", a * 10, moment))
    accounts.append((ACCOUNTS + 1, "today's account", "active", 1, naive(TODAY)))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s)", events)
        cur.executemany("INSERT INTO accounts VALUES (%s, %s, %s, %s, %s)", accounts)


AIRFLOW_SOURCES = [ScenarioSource(SOURCE, lambda: source_yaml(FAR_AHEAD), populate)]


def test_unpausing_after_skipped_intervals_ingests_every_missed_row(airflow_stack):
    airflow: AirflowStack = airflow_stack.airflow
    day = START.date().isoformat()

    # 1. The first interval, ingested by a one-day backfill.
    airflow.create_backfill(DAG_ID, day, day, expected_runs=1)
    airflow.set_paused(DAG_ID, False)
    runs = airflow.wait_runs(
        DAG_ID, lambda rs: bool(rs) and all(r["state"] in ("success", "failed") for r in rs),
        what="the one-day backfill", timeout=600,
    )  # fmt: skip
    assert [(r["run_type"], r["state"]) for r in runs] == [("backfill", "success")], runs

    # 2. Paused; meanwhile intervals pass: start_date moves to a few days before today.
    airflow.set_paused(DAG_ID, True)
    airflow_stack.write_source(AIRFLOW_SOURCES[0], source_yaml(day))
    airflow.request_reparse(DAG_ID)
    due = airflow.wait_until(
        lambda: (state := airflow.dag_state(DAG_ID)).get("next_start")
        and state["next_start"] < datetime(2099, 1, 1, tzinfo=UTC)
        and state,
        what=f"{DAG_ID} re-parsed with start_date {day}",
        timeout=240,
    )
    assert due["is_paused"], due
    # The scheduler makes runs from the serialized DAG, which Airflow rewrites at most every
    # [core] min_serialized_dag_update_interval (30 s) while the dag table follows every
    # parse: a run made from the previous serialization (start_date 2099) has no task
    # instances and "succeeds" at once. Wait until the serialized DAG has the new date.
    airflow.wait_serialized(DAG_ID, lambda details: str(details.get("start_date", "")).startswith(day),
                            what=f"{DAG_ID} serialized with start_date {day}")  # fmt: skip

    # 3. Unpaused under the real scheduler: catchup=False makes one run, the newest interval.
    airflow.cli("dags", "unpause", DAG_ID)
    runs = airflow.wait_runs(
        DAG_ID,
        lambda rs: any(r["run_type"] == "scheduled" for r in rs) and all(r["state"] in ("success", "failed") for r in rs),
        what="the scheduled run made at unpause",
        timeout=600,
    )
    scheduled = [r for r in airflow.dag_runs(DAG_ID) if r["run_type"] == "scheduled"]
    assert len(scheduled) == 1, f"Airflow made {len(scheduled)} scheduled runs, expected exactly one: {scheduled}"
    run = scheduled[0]
    assert run["state"] == "success", f"{run}\n{airflow.task_log_tails(DAG_ID)}"
    end = run["data_interval_end"]
    skipped = (run["data_interval_start"] - (START + timedelta(days=1))).days
    assert skipped >= 3, f"the scheduled run {run} follows the ingested interval too closely ({skipped} days)"

    # 4. Every source row from start_date to the scheduled run's interval end is in the warehouse.
    problems = [
        message
        for table in COLUMNS
        if (message := table_mismatch(
            airflow_stack.databases[SOURCE], airflow_stack.warehouse, SOURCE, table, COLUMNS[table],
            COLUMNS[table][0], where=f"{CURSOR[table]} >= %s AND {CURSOR[table]} < %s", params=(naive(START), naive(end)),
        ))
    ]  # fmt: skip
    assert not problems, (
        f"after {skipped} skipped intervals, the run for [{run['data_interval_start']:%Y-%m-%d}, {end:%Y-%m-%d}) "
        f"left the warehouse different from the source rows before {end:%Y-%m-%d}:\n" + "\n".join(problems)
    )
