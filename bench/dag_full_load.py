"""``dag_full_load``: a fresh ``airflow dags test ingest_tpch <date>`` process running a full
load of TPC-H ``lineitem`` SF1, as a user runs a DAG by hand in the README's deployment:
``lockgate airflow-env`` settings, metadata migrated beforehand, and the Spark Connect
server ``make airflow-ui`` keeps beside Airflow (started fresh before the runs, not warmed
up: the first run pays its Python workers' start, the runs after it find them, as the
tables and runs that follow each other in a deployment do), which the DAG's process
finds on ``LOCKGATE_SPARK_CONNECT_PORT``. ``in_process=True`` is the lever turned off: no server,
Spark starts in the ``dags test`` process. Wall time from launch to exit, the stage seconds
Lockgate records in ``lockgate.runs``, and where the time went, from the log's timestamps."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import task_logs
import tpch_lineitem
from airflow_home import AirflowHome
from airflow_services import free_port
from benchlib import AS_USERS_RUN, CONNECTION_URI, log, project_path
from task_logs import Marker, Segment, TaskBreakdown

DAG_ID = "ingest_tpch"
START_DATE = "2026-01-01"
LOGICAL_DATE = "2026-01-02T00:00:00+00:00"

_TASK_START = r"\[DAG TEST\] starting task_id={task}"
_TASK_END = r"\[DAG TEST\] end task task_id={task}"
_COMMON_HEAD = [
    Marker("execution API up, TI running (in-process supervisor)", r"Task started"),
    Marker("pre-execute (rendered fields)", r"::endgroup::"),
]
_COMMON_TAIL = [
    task_logs.RETURNED,
    Marker("XCom push, TI success", r"\[DAG TEST\] end task"),
]


@dataclass
class StageSeconds:
    """The seconds Lockgate records per stage in ``lockgate.runs``."""

    extract: float | None
    validate: float | None
    load: float | None


@dataclass
class DagRun:
    """One ``airflow dags test`` process: its wall time, what it loaded, where the time went."""

    seconds: float
    exit_code: int
    rows: int
    stages: StageSeconds
    process: list[Segment] = field(default_factory=list)
    tasks: list[TaskBreakdown] = field(default_factory=list)
    log: str = ""


@dataclass
class DagFullLoad:
    """The median run (its breakdown) and every run's seconds. With the server, the first
    run after it started is kept apart: it pays the server's cold start (Python workers,
    JIT), which a deployment pays once, not per DAG run."""

    seconds: float
    samples_s: list[float]
    first_run_seconds: float | None
    table_bytes: int
    median_run: DagRun
    spark: str
    kind: str = AS_USERS_RUN

    @property
    def stages(self) -> StageSeconds:
        return self.median_run.stages


def prepare(root: Path) -> AirflowHome:
    """The deployment: the tpch source, its suite, a migrated metadata database."""
    expectations = root / "expectations"
    home = AirflowHome.create(root / "airflow-home", expectations, {"bench_pg": CONNECTION_URI})
    (expectations / "tpch").mkdir(parents=True, exist_ok=True)
    (expectations / "tpch" / "lineitem.json").write_text(json.dumps(tpch_lineitem.SUITE), encoding="utf-8")
    home.write_source("tpch", tpch_lineitem.source_yaml("bench_pg", START_DATE))
    home.migrate()
    return home


def bench_dag_full_load(root: Path, table_bytes: int, *, repeats: int = 3, in_process: bool = False) -> DagFullLoad:
    """``repeats`` runs of the DAG, each a fresh ``airflow dags test`` process; with the
    server (the default), one more run first, right after the server started."""
    from lockgate import spark_server

    home = prepare(root)
    server = None if in_process else spark_server.start_connect_server(free_port(15100), log_dir=home.logs / "spark")
    extra = {"LOCKGATE_SPARK_CONNECT_PORT": str(server.port) if server else "off"}
    try:
        first = one_run(home, extra, "first") if server else None
        runs = [one_run(home, extra, str(i + 1)) for i in range(repeats)]
    finally:
        if server is not None:
            spark_server.stop(server)
        drop_data(home)
    chosen = sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]
    return DagFullLoad(
        seconds=chosen.seconds, samples_s=[run.seconds for run in runs],
        first_run_seconds=first.seconds if first else None, table_bytes=table_bytes, median_run=chosen,
        spark="Spark in the dags test process" if in_process else "Spark Connect server beside Airflow",
    )  # fmt: skip


def one_run(home: AirflowHome, extra: dict[str, str], name: str) -> DagRun:
    log_path = home.logs / f"dags-test-{name}.log"
    log(f"airflow dags test {DAG_ID} {LOGICAL_DATE} (log: {project_path(log_path)})")
    launched = datetime.now(UTC)
    started = time.perf_counter()
    proc = home.run("dags", "test", DAG_ID, LOGICAL_DATE, log_name=log_path.name, extra_env=extra)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"airflow dags test {DAG_ID} failed ({proc.returncode}); see {project_path(log_path)}")
    lines = task_logs.read_console_log(log_path)
    stages, rows = stage_seconds(home.warehouse)
    return DagRun(
        seconds=round(seconds, 3), exit_code=proc.returncode, rows=rows, stages=stages,
        process=process_segments(lines, launched, seconds), tasks=task_breakdowns(lines), log=project_path(log_path),
    )  # fmt: skip


def stage_seconds(warehouse_path: str) -> tuple[StageSeconds, int]:
    import duckdb

    if not Path(warehouse_path).exists():
        return StageSeconds(None, None, None), 0
    with duckdb.connect(warehouse_path, read_only=True) as conn:
        row = conn.execute(
            "SELECT extract_seconds, validate_seconds, load_seconds, rows_loaded FROM lockgate.runs "
            "WHERE source = 'tpch' ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return StageSeconds(None, None, None), 0
    return StageSeconds(*row[:3]), int(row[3] or 0)


def process_segments(lines: list[task_logs.LogLine], launched: datetime, seconds: float) -> list[Segment]:
    """The process around its tasks: start-up, DAG parse and run creation, the tasks, exit."""
    if not lines:
        return []
    first_task = task_logs.first_match(lines, r"\[DAG TEST\] starting task_id=")
    last_task = max((line.at for line in lines if "[DAG TEST] end task" in line.text), default=None)
    if first_task is None or last_task is None:
        return []
    ended = launched.timestamp() + seconds
    parts = [
        ("interpreter start + import Airflow (to its first log line)", lines[0].at.timestamp() - launched.timestamp()),
        ("parse the DAG file, sync it, create the run", first_task.timestamp() - lines[0].at.timestamp()),
        ("the tasks (see tasks)", last_task.timestamp() - first_task.timestamp()),
        ("finish the run, stop Spark, exit", ended - last_task.timestamp()),
    ]
    return [Segment(label, round(value, 3)) for label, value in parts]


def task_breakdowns(lines: list[task_logs.LogLine]) -> list[TaskBreakdown]:
    out = []
    for stage, markers in task_logs.STAGE_MARKERS.items():
        task = f"{tpch_lineitem.TABLE}.{stage}"
        own = task_logs.between(lines, _TASK_START.format(task=task), _TASK_END.format(task=task))
        if not own:
            continue
        parts = task_logs.segments(own, [*_COMMON_HEAD, *markers, *_COMMON_TAIL])
        out.append(TaskBreakdown(task, round((own[-1].at - own[0].at).total_seconds(), 3), parts))
    return out


def drop_data(home: AirflowHome) -> None:
    """The lake and warehouse of the run are large; the logs stay for a closer look."""
    shutil.rmtree(home.root / "lake", ignore_errors=True)
    shutil.rmtree(Path(home.warehouse).parent, ignore_errors=True)
