"""Reprocessing through Airflow reads the source again (the real scheduler, real CLI).

``airflow backfill create --reprocess-behavior completed`` and ``airflow tasks clear``
do not make a new run: they clear the existing one, which keeps its run id while
Airflow counts ``dag_run.clear_number`` up. After the source changed rows inside an
already loaded interval, such a run must read the source again into a new raw version
of the interval (a new sealed folder beside the old one, which stays intact) and leave
the warehouse equal to the source.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.reprocessing.airflow_harness import (
    SCENARIO_COLUMNS,
    AirflowStack,
    ScenarioSource,
    create_scenario_tables,
    file_digests,
    scenario_yaml,
    table_mismatch,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SOURCE = "rr"
DAG_ID = f"ingest_{SOURCE}"
DAY = datetime(2026, 5, 10, tzinfo=UTC)
DAY_TEXT = DAY.date().isoformat()
COLUMNS = SCENARIO_COLUMNS

# start_date far ahead: unpausing makes no scheduled run, only the backfill runs.
SOURCE_YAML = scenario_yaml(SOURCE, "Reprocessing scenario source", start_date="2099-01-01", max_active_runs=1, retries=0)


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def populate(conn) -> None:
    """Rows only inside [DAY, DAY + 1 day), its edges included."""
    create_scenario_tables(conn)
    day = naive(DAY)
    events = []
    for i in range(40):
        offset = timedelta(days=1, microseconds=-1) if i == 39 else timedelta(seconds=i * 2111)
        events.append((i + 1, i % 30 + 1, ["view", "click", "buy"][i % 3], (i * 37) % 1000, day + offset))
    accounts = [(a, f"account {a}", "active", a * 11, day + timedelta(seconds=a * 2503)) for a in range(1, 31)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s)", events)
        cur.executemany("INSERT INTO accounts VALUES (%s, %s, %s, %s, %s)", accounts)


def change_rows(conn, round_: int) -> None:
    """The source corrects rows of the loaded interval: new values under unchanged
    cursors, rows deleted and added (events), cursors moved later inside the day."""
    day = naive(DAY)
    conn.execute("UPDATE events SET amount = amount + %s, kind = %s WHERE event_id %% 7 = %s", (round_ * 100, f"fix{round_}", round_))
    conn.execute("DELETE FROM events WHERE event_id IN (%s, %s)", (10 + round_, 20 + round_))
    conn.execute(
        "INSERT INTO events VALUES (%s, 1, 'late', 5, %s), (%s, 2, 'late', 6, %s)",
        (1000 + round_ * 10, day + timedelta(hours=3), 1001 + round_ * 10, day + timedelta(hours=23, minutes=59)),
    )
    conn.execute("UPDATE accounts SET status = %s, balance = balance + 1 WHERE account_id %% 5 = %s", (f"rev{round_}", round_))
    conn.execute(
        "UPDATE accounts SET updated_at = updated_at + interval '1 minute', name = name || %s WHERE account_id %% 6 = 0",
        (f" r{round_}",),
    )
    conn.execute("INSERT INTO accounts VALUES (%s, %s, 'new', 1, %s)", (100 + round_, f"added {round_}", day + timedelta(hours=12)))


AIRFLOW_SOURCES = [ScenarioSource(SOURCE, SOURCE_YAML, populate)]


def sealed_versions(interval_dir: Path) -> list[Path]:
    """Sealed raw versions in one interval folder (a ``.tmp-*`` folder is still being written)."""
    return sorted(p.parent for p in interval_dir.glob("*/_manifest.json") if not p.parent.name.startswith(".tmp-"))


def test_reprocessing_a_loaded_interval_reads_the_changed_source_again(airflow_stack):
    import psycopg

    airflow: AirflowStack = airflow_stack.airflow
    dsn = airflow_stack.databases[SOURCE]
    table_dirs = {table: airflow_stack.lake_root / "raw" / SOURCE / table for table in COLUMNS}

    def mismatches() -> list[str]:
        return [
            message
            for table in COLUMNS
            if (message := table_mismatch(dsn, airflow_stack.warehouse, SOURCE, table, COLUMNS[table], COLUMNS[table][0]))
        ]

    def wait_cleared(clear_number: int, what: str) -> dict:
        runs = airflow.wait_runs(
            DAG_ID,
            lambda rs: any(r["clear_number"] >= clear_number and r["state"] in ("success", "failed") for r in rs),
            what=what,
            timeout=600,
        )
        assert len(runs) == 1, f"reprocessing made a new run instead of clearing the old one: {runs}"
        return runs[0]

    # 1. The interval is loaded once.
    airflow.create_backfill(DAG_ID, DAY_TEXT, DAY_TEXT, expected_runs=1)
    airflow.set_paused(DAG_ID, False)
    runs = airflow.wait_runs(
        DAG_ID, lambda rs: bool(rs) and all(r["state"] in ("success", "failed") for r in rs),
        what="the first backfill run", timeout=600,
    )  # fmt: skip
    assert [(r["run_type"], r["state"], r["clear_number"]) for r in runs] == [("backfill", "success", 0)], runs
    run_id = runs[0]["run_id"]
    assert not mismatches(), mismatches()
    interval_dirs = {}
    for table, table_dir in table_dirs.items():
        # Interval folders only: `_plans/` beside them holds each run version's extract plan.
        folders = [p for p in table_dir.iterdir() if p.is_dir() and not p.name.startswith("_")]
        assert len(folders) == 1, f"{table}: one interval was run, interval folders {folders}"
        interval_dirs[table] = folders[0]
        assert len(sealed_versions(folders[0])) == 1, list(folders[0].iterdir())
    first_versions = {
        version: file_digests(version) for table in COLUMNS for version in sealed_versions(interval_dirs[table])
    }

    problems: list[str] = []

    def check(stage: str, versions_expected: int, run: dict) -> None:
        if run["state"] != "success":
            errors = "; ".join(airflow.task_errors(DAG_ID, run["run_id"])) or "see the task logs"
            problems.append(f"{stage}: run {run['run_id']} ended {run['state']}: {errors}")
        for message in mismatches():
            problems.append(f"{stage}: warehouse differs from the source: {message}")
        for table, interval_dir in interval_dirs.items():
            versions = sealed_versions(interval_dir)
            if len(versions) != versions_expected:
                problems.append(
                    f"{stage}: {table}: {len(versions)} sealed raw version(s) in {interval_dir.name}, expected "
                    f"{versions_expected}: {[v.name[:60] for v in versions]}"
                )
        for version, digests in first_versions.items():
            if not version.exists() or file_digests(version) != digests:
                problems.append(f"{stage}: the first raw version {version} was changed or removed")

    # 2. (a) The source changes; a backfill reprocesses the completed interval.
    with psycopg.connect(**dsn, autocommit=True) as conn:
        change_rows(conn, 1)
    airflow.create_backfill(DAG_ID, DAY_TEXT, DAY_TEXT, expected_runs=1, reprocess="completed")
    run = wait_cleared(1, "the run cleared by `backfill create --reprocess-behavior completed`")
    assert run["run_id"] == run_id and run["clear_number"] == 1, run
    check("backfill --reprocess-behavior completed (clear_number 1)", 2, run)

    # 3. (b) The source changes again; `airflow tasks clear` re-runs the interval.
    with psycopg.connect(**dsn, autocommit=True) as conn:
        change_rows(conn, 2)
    airflow.cli("tasks", "clear", DAG_ID, "--start-date", DAY_TEXT, "--end-date", DAY_TEXT, "--yes")
    run = wait_cleared(2, "the run cleared by `airflow tasks clear`")
    assert run["run_id"] == run_id and run["clear_number"] == 2, run
    check("tasks clear (clear_number 2)", 3, run)

    assert not problems, "reprocessing did not re-read the source:\n" + "\n".join(problems)
