"""Give the demo's ``airflow dags test`` runs the start time they really had.

``airflow dags test DAG LOGICAL_DATE`` creates its run with ``start_date = logical_date``
(``Dag.test()``: ``start_date=logical_date or run_after``; the CLI has no option to
change it), so a demo run over 2026-01-01 shows in the Airflow UI as having started on
2026-01-02 and lasted for months. This module sets each such run's ``start_date`` to when
it really started: its ``run_after`` (the wall clock at which ``dags test`` created it),
or its first task instance's start if that is earlier. Data intervals, logical dates,
run ids and task instances are left as they are.

It runs inside the project's Airflow environment (``lockgate.cli.airflow_env``) and uses
Airflow's own ORM, so the metadata database may be SQLite or PostgreSQL::

    python -m lockgate.demo.airflow_runs ingest_shop --since 2026-01-05T10:00:00+00:00 \\
        2026-01-02T00:00:00+00:00 2026-01-03T00:00:00+00:00

Only runs created at or after ``--since`` (``run_after >= since``) are touched, so an
older run of the same logical date (left by a ``dags test`` that crashed before creating
its own) is never rewritten. Prints one line per logical date; exits 1 when one has no
such run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class FixedRun:
    logical_date: datetime
    run_id: str | None  # None: no run of this logical date was created since ``since``
    start_date: datetime | None = None
    end_date: datetime | None = None
    previous_start: datetime | None = None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fix_start_dates(dag_id: str, logical_dates: list[datetime], since: datetime) -> list[FixedRun]:
    """Set ``start_date`` of the runs of ``dag_id`` at ``logical_dates`` created since ``since``."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    since = _aware(since)
    fixed = []
    with create_session() as session:  # commits on exit
        for logical_date in logical_dates:
            logical_date = _aware(logical_date)
            run = session.scalar(
                select(DagRun).where(
                    DagRun.dag_id == dag_id,
                    DagRun.logical_date == logical_date,
                    DagRun.run_after >= since,
                )
            )
            if run is None:
                fixed.append(FixedRun(logical_date, None))
                continue
            first_task = session.scalar(
                select(func.min(TaskInstance.start_date)).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id
                )
            )
            started = min(d for d in (run.run_after, first_task) if d is not None)
            if run.end_date is not None:
                started = min(started, run.end_date)
            previous = run.start_date
            run.start_date = started
            fixed.append(FixedRun(logical_date, run.run_id, started, run.end_date, previous))
    return fixed


PREFIX = "dag run "  # the lines meant for the demo's output start with this


def describe(run: FixedRun) -> str:
    if run.run_id is None or run.start_date is None:
        return f"{PREFIX}at {run.logical_date.isoformat()}: none created by this demo; start_date not set"
    took = f"took {round((run.end_date - run.start_date).total_seconds())}s" if run.end_date else "not finished"
    was = run.previous_start.isoformat() if run.previous_start else "-"
    return f"{PREFIX}{run.run_id}: started {run.start_date.isoformat()} (start_date was {was}), {took}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockgate.demo.airflow_runs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dag_id")
    parser.add_argument("logical_dates", nargs="+", type=datetime.fromisoformat)
    parser.add_argument("--since", required=True, type=datetime.fromisoformat, help="when the demo started")
    args = parser.parse_args(argv)
    runs = fix_start_dates(args.dag_id, args.logical_dates, args.since)
    for run in runs:
        print(describe(run), flush=True)
    return 0 if all(r.run_id for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
