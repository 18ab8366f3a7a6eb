"""A backfill through a real Airflow 3 scheduler: 30 daily intervals of a PostgreSQL
source, four runs at a time, newest first; then one interval run twice at the same
moment. After each, the warehouse must equal the source row for row.

One Spark Connect server serves every task process (a local JVM per task is slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.reprocessing.airflow_harness import AirflowStack, tail

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "ingest_bf"
FIRST_DAY = datetime(2026, 2, 1, tzinfo=UTC)
DAYS = 30  # 2026-02-01 .. 2026-03-02
EVENTS_PER_DAY = 40
ACCOUNTS = 300
BACKFILL_TIMEOUT = 25 * 60

SOURCE_YAML = """\
source: bf
description: Backfill scenario source
connection: bf_pg
schedule: "@daily"
start_date: 2026-02-01
max_active_runs: 4
retries: 1
retry_delay: 1s
tables:
  - name: events
    mode: append
    cursor: created_at
    primary_key: [event_id]
  - name: accounts
    mode: merge
    cursor: updated_at
    primary_key: [account_id]
"""

COLUMNS = {
    "events": ["event_id", "account_id", "kind", "amount", "created_at"],
    "accounts": ["account_id", "name", "status", "balance", "updated_at"],
}
KEYS = {"events": "event_id", "accounts": "account_id"}


def naive_utc(day: datetime) -> datetime:
    return day.astimezone(UTC).replace(tzinfo=None)


def populate(conn) -> None:
    """Rows spread over the 30 days, including rows exactly at midnight (an interval edge)."""
    conn.execute(
        "CREATE TABLE events (event_id BIGINT PRIMARY KEY, account_id INTEGER NOT NULL, kind VARCHAR(20) NOT NULL, "
        "amount NUMERIC(12,2), created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, status VARCHAR(20), "
        "balance NUMERIC(12,2), updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL)"
    )
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


def norm(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, Decimal | float):
        return Decimal(str(value)).quantize(Decimal("0.01"))
    return value


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


@pytest.fixture(scope="module")
def bf_database():
    """A fresh PostgreSQL database for this module, filled with the scenario's rows."""
    import psycopg

    from tests.conftest import PG_HOST, PG_PORT, PG_USER, _unavailable

    name = f"lockgate_bf_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True,
                                connect_timeout=5)
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": name}
    with psycopg.connect(**dsn, autocommit=True) as conn:
        populate(conn)
    yield dsn
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def stack(bf_database, tmp_path_factory, request):
    """Spark Connect server + Airflow api-server and dag-processor (the test starts the
    scheduler once its backfill exists)."""
    from lockgate import spark_server
    from lockgate.settings import load_settings

    root = tmp_path_factory.mktemp("backfill")
    sources = root / "sources"
    sources.mkdir()
    (sources / "bf.yml").write_text(SOURCE_YAML, encoding="utf-8")
    (root / "expectations").mkdir()
    dags = root / "dags"
    dags.mkdir()
    shutil.copy(PROJECT_ROOT / "dags" / "lockgate_dags.py", dags / "lockgate_dags.py")
    warehouse_path = str(root / "warehouse" / "warehouse.duckdb")
    spark_port, api_port = spark_server.free_port(), spark_server.free_port()
    while api_port == spark_port:
        api_port = spark_server.free_port()
    lockgate_env = {
        "LOCKGATE_HOME": str(PROJECT_ROOT),
        "LOCKGATE_SOURCES_DIR": str(sources),
        "LOCKGATE_EXPECTATIONS_DIR": str(root / "expectations"),
        "LOCKGATE_LAKE_ROOT": str(root / "lake"),
        "LOCKGATE_WAREHOUSE": warehouse_path,
        "LOCKGATE_STATE_DIR": str(root / "state"),
        "LOCKGATE_SPARK_REMOTE": f"sc://127.0.0.1:{spark_port}",
        "AIRFLOW_CONN_BF_PG": "postgres://{user}@{host}:{port}/{dbname}".format(**bf_database),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }
    airflow = AirflowStack.create(root / "airflow", api_port, lockgate_env, parallelism=4)
    migrate = airflow.start_migrate()  # meanwhile the Spark Connect server starts
    server = None
    failures_before = request.session.testsfailed
    failed = True
    try:
        server = spark_server.start_connect_server(spark_port, settings=load_settings(), log_dir=root / "spark")
        code = migrate.wait(timeout=600)
        assert code == 0, f"airflow db migrate failed:\n{tail(airflow.home / 'logs' / 'db-migrate.log')}"
        airflow.use_wal()
        airflow.start_api_server()
        airflow.start_dag_processor()
        airflow.wait_api_ready()
        airflow.wait_dag_parsed(DAG_ID)
        yield {
            "root": root,
            "airflow": airflow,
            "spark": server,
            "env": lockgate_env,
            "pg_dsn": bf_database,
            "warehouse": warehouse_path,
        }
        failed = request.session.testsfailed > failures_before
    finally:
        if migrate.poll() is None:
            migrate.kill()
        airflow.stop()
        if server is not None:
            spark_server.stop(server)
        if failed:
            print("\n===== Airflow logs (tails) =====\n" + airflow.log_tails(60), file=sys.stderr)
            if server is not None:
                print(f"===== Spark Connect log =====\n{tail(server.log_path, 40)}", file=sys.stderr)
            for log in sorted((airflow.home / "logs").rglob("attempt=*.log"))[-4:]:
                print(f"===== task log {log} =====\n{tail(log, 30)}", file=sys.stderr)


def test_backfill_of_30_days_through_the_scheduler_equals_the_source(stack):
    airflow: AirflowStack = stack["airflow"]
    airflow.cli("dags", "unpause", DAG_ID)
    started = time.monotonic()
    airflow.cli(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", "2026-02-01", "--to-date", "2026-03-02",
        "--run-backwards", "--max-active-runs", "4",
    )
    # The scheduler starts once the backfill exists: creating a backfill commits its runs
    # one by one, and on SQLite a lock conflict with a running scheduler makes Airflow
    # delete the half-made backfill under the scheduler's feet.
    airflow.start_scheduler()
    deadline = started + BACKFILL_TIMEOUT
    runs: list[tuple[str, str, str]] = []
    while time.monotonic() < deadline:
        airflow.check_alive()
        runs = airflow.runs(DAG_ID)
        backfill = [r for r in runs if r[1] == "backfill"]
        if len(backfill) >= DAYS and all(r[2] in ("success", "failed") for r in runs):
            break
        time.sleep(10)
    else:
        pytest.fail(f"the backfill did not finish within {BACKFILL_TIMEOUT}s: {runs}\n{airflow.log_tails()}")
    print(f"backfill of {DAYS} runs took {time.monotonic() - started:.0f}s", file=sys.stderr)

    listed = airflow.cli_json("dags", "list-runs", DAG_ID)
    backfill = [r for r in listed if r["run_id"].startswith("backfill__")]
    assert len(backfill) == DAYS, [r["run_id"] for r in listed]
    failed = [r for r in listed if r["state"] != "success"]
    assert not failed, f"runs not successful: {failed}\n{airflow.log_tails()}"
    # Unpausing a catchup=False DAG makes the scheduler run its latest interval as well;
    # that is the only other run, and it lies after the backfilled range.
    others = [r for r in listed if not r["run_id"].startswith("backfill__")]
    assert all(r["run_id"].startswith("scheduled__") for r in others), others
    assert len(others) <= 1, others

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
        scheduled = [r for r in audit if r[0] == table and not r[4].startswith("backfill__")]
        assert all(norm(r[1]) >= naive_utc(days[-1] + timedelta(days=1)) for r in scheduled), scheduled
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
            "SELECT run_id, table_name, interval_start, status, rows_loaded FROM lockgate.runs "
            "WHERE run_id LIKE 'concurrent__%' ORDER BY run_id, table_name"
        ).fetchall()
    assert len(audit) == 4, audit
    assert {r[3] for r in audit} == {"published"}
    assert {norm(r[2]) for r in audit} == {naive_utc(start)}
    loaded = {(r[0], r[1]): r[4] for r in audit}
    assert loaded[("concurrent__twice-a", "events")] == EVENTS_PER_DAY
    assert loaded[("concurrent__twice-b", "events")] == EVENTS_PER_DAY
    assert_warehouse_equals_source(stack)
