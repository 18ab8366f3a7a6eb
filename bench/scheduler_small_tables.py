"""``scheduler_small_tables``: one interval of a source with 20 tables of 100 rows, run by
a real scheduler (``airflow standalone``: LocalExecutor, Airflow's default parallelism),
timed from the REST trigger to the DAG run's success; reported per table. Where the time
goes comes from the metadata (each task instance's scheduled, queued, start and end
times) and from the task logs' timestamps."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import task_logs
from airflow_home import AirflowHome
from airflow_services import Standalone, free_port
from benchlib import AS_USERS_RUN, CONNECTION_URI, log, pg_connect, project_path
from task_logs import Marker, Segment

SOURCE = "sched"
DAG_ID = f"ingest_{SOURCE}"
ROWS = 100

#: A task log from its first line (the supervisor has started the task process) to
#: Lockgate's code, then the stage's own markers, then the return value.
_HEAD = [
    Marker("task process start-up: imports, DAG file parse", r"Worker startup parse complete"),
    Marker("pre-execute (rendered fields)", r"::endgroup::"),
]
_REST = "post-execute: XCom push, TI success"
_QUEUED = "queued → first log line (executor, supervisor, task process start)"


@dataclass
class TaskTiming:
    task_id: str
    stage: str
    scheduled: datetime | None
    queued: datetime | None
    start: datetime | None
    end: datetime | None


@dataclass
class StageTiming:
    """Medians over the tables of one stage's tasks, in seconds."""

    tasks: int
    scheduled_to_queued: float | None
    queued_to_start: float | None  # executor pick-up, supervisor fork, task process start, DAG parse
    start_to_end: float | None
    start_to_end_total: float
    log_segments: list[Segment] = field(default_factory=list)


@dataclass
class SchedulerSmallTables:
    tables: int
    rows_per_table: int
    seconds: float
    seconds_per_table: float
    state: str
    trigger_to_first_task_start: float | None
    last_task_end_to_success: float | None
    max_concurrent_tasks: int  # with Airflow's defaults (parallelism 32, 16 tasks per DAG)
    stages: dict[str, StageTiming] = field(default_factory=dict)
    log: str = ""
    kind: str = AS_USERS_RUN


def create_tables(count: int, day: datetime) -> None:
    """``sched_00``… with ``ROWS`` rows each, all updated within ``day``."""
    with pg_connect() as conn:
        for i in range(count):
            conn.execute(f"DROP TABLE IF EXISTS sched_{i:02d}")
            conn.execute(
                f"CREATE TABLE sched_{i:02d} (id BIGINT PRIMARY KEY, label TEXT NOT NULL, updated_at TIMESTAMP NOT NULL)"
            )
            conn.execute(
                f"INSERT INTO sched_{i:02d} SELECT g, 'row ' || g, %s::timestamp + g * INTERVAL '1 minute' "
                f"FROM generate_series(1, {ROWS}) g", (day.replace(tzinfo=None),)
            )  # fmt: skip


def source_yaml(count: int, start_date: str) -> str:
    tables = "".join(
        f"  - name: sched_{i:02d}\n    primary_key: [id]\n    mode: merge\n    cursor: updated_at\n" for i in range(count)
    )
    return (f"source: {SOURCE}\ndescription: {count} small tables (make bench)\nconnection: bench_pg\n"
            f'schedule: "@daily"\nstart_date: {start_date}\nretries: 0\ntables:\n{tables}')  # fmt: skip


def bench_scheduler_small_tables(root: Path, count: int, extra_env: dict[str, str] | None = None) -> SchedulerSmallTables:
    # The DAG starts today: unpausing it makes no scheduled run (its first interval ends
    # tomorrow), and a manual run of yesterday's interval, logically dated today, is allowed.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    create_tables(count, today - timedelta(days=1))
    home = AirflowHome.create(root / "airflow-scheduler", root / "expectations", {"bench_pg": CONNECTION_URI})
    home.write_source(SOURCE, source_yaml(count, today.date().isoformat()))
    home.migrate()
    airflow = Standalone(home, free_port(), extra_env or {})
    log(f"airflow standalone on 127.0.0.1:{airflow.port} (log: {airflow.log_path})")
    try:
        airflow.start()
        airflow.wait_healthy()
        airflow.wait_parsed(DAG_ID)
        airflow.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        run_id = f"bench__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
        triggered = datetime.now(UTC)
        started = time.perf_counter()
        airflow.trigger(DAG_ID, run_id, today, (today - timedelta(days=1), today))
        state = airflow.wait_run(DAG_ID, run_id)
        seconds = time.perf_counter() - started
        finished = triggered + timedelta(seconds=seconds)
        timings = task_timings(airflow, run_id)
    finally:
        airflow.stop()
    if state != "success":
        raise RuntimeError(f"{DAG_ID} run {run_id} ended {state}; see the task logs under {home.home / 'logs'}")
    return summarise(count, seconds, state, triggered, finished, timings, home, run_id)


def task_timings(airflow: Standalone, run_id: str) -> list[TaskTiming]:
    rows = airflow.query(
        "SELECT task_id, scheduled_dttm, queued_dttm, start_date, end_date FROM task_instance "
        "WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id),
    )  # fmt: skip
    return [TaskTiming(r[0], r[0].rsplit(".", 1)[-1], *(utc(v) for v in r[1:])) for r in rows]


def utc(value) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def summarise(count: int, seconds: float, state: str, triggered: datetime, finished: datetime,
              timings: list[TaskTiming], home: AirflowHome, run_id: str) -> SchedulerSmallTables:  # fmt: skip
    starts = [t.start for t in timings if t.start]
    ends = [t.end for t in timings if t.end]
    return SchedulerSmallTables(
        tables=count, rows_per_table=ROWS, seconds=round(seconds, 2), seconds_per_table=round(seconds / count, 3),
        state=state,
        trigger_to_first_task_start=round((min(starts) - triggered).total_seconds(), 3) if starts else None,
        last_task_end_to_success=round((finished - max(ends)).total_seconds(), 3) if ends else None,
        max_concurrent_tasks=max_concurrent(timings),
        stages={stage: stage_timing(stage, timings, home, run_id)
                for stage in task_logs.STAGE_MARKERS},
        log=project_path(home.home / "logs" / f"dag_id={DAG_ID}"),
    )  # fmt: skip


def gap(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def max_concurrent(timings: list[TaskTiming]) -> int:
    events = sorted([(t.start, 1) for t in timings if t.start and t.end] + [(t.end, -1) for t in timings if t.start and t.end])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def stage_timing(stage: str, timings: list[TaskTiming], home: AirflowHome, run_id: str) -> StageTiming:
    own = [t for t in timings if t.stage == stage]
    runs = [gap(t.start, t.end) for t in own]
    return StageTiming(
        tasks=len(own),
        scheduled_to_queued=median([gap(t.scheduled, t.queued) for t in own]),
        queued_to_start=median([gap(t.queued, t.start) for t in own]),
        start_to_end=median(runs),
        start_to_end_total=round(sum(r for r in runs if r is not None), 3),
        log_segments=log_segments(stage, own, home, run_id),
    )


def log_segments(stage: str, own: list[TaskTiming], home: AirflowHome, run_id: str) -> list[Segment]:
    """Medians, over the stage's tasks, of the segments of each task: from queued to the
    first line of its log, then the log's segments."""
    per_task = [task_segments(stage, timing, home, run_id) for timing in own]
    labels = [_QUEUED, *(marker.label for marker in markers_of(stage)), _REST]
    medians = {label: median([s.seconds for parts in per_task for s in parts if s.label == label]) for label in labels}
    return [Segment(label, value) for label, value in medians.items() if value is not None]


def markers_of(stage: str) -> list[Marker]:
    return [*_HEAD, *task_logs.STAGE_MARKERS[stage], task_logs.RETURNED]


def task_segments(stage: str, timing: TaskTiming, home: AirflowHome, run_id: str) -> list[Segment]:
    folder = home.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={timing.task_id}"
    files = sorted(folder.glob("attempt=*.log"))
    lines = task_logs.read_json_log(files[-1]) if files else []
    if not lines or timing.queued is None:
        return []
    parts = task_logs.segments(lines, markers_of(stage), _REST)
    return [Segment(_QUEUED, gap(timing.queued, lines[0].at) or 0.0), *parts]
