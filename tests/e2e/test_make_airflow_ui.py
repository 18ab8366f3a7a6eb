"""`make airflow-ui` as the README documents it, from a shell without the venv on PATH:
the UI listens on 127.0.0.1 only, serves the Lockgate page behind a login, and the
README's Airflow CLI commands (`airflow backfill create`, `airflow dags trigger
--conf`) work beside its scheduler, with the environment `lockgate airflow-env` writes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(root: Path, port: int, spark_port: int) -> dict[str, str]:
    """A new user's shell: no venv on PATH, no Lockgate/Airflow variables, own state
    (and ports of its own, so that a developer's running stack does not interfere)."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOCKGATE_", "VIRTUAL_ENV"))}
    return {
        **env, "PATH": path, "LOCKGATE_STATE_DIR": str(root / "state"), "AIRFLOW__API__PORT": str(port),
        "LOCKGATE_LAKE_ROOT": str(root / "lake"), "LOCKGATE_WAREHOUSE": str(root / "warehouse" / "w.duckdb"),
        "LOCKGATE_LANDING_ROOT": str(root / "landing"),
        "LOCKGATE_SPARK_CONNECT_PORT": str(spark_port),
    }  # fmt: skip


def listening_on(port: int) -> set[str]:
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return {line.split()[3] for line in listening.stdout.splitlines()}


def http(url: str, *, data: dict | None = None, token: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"make airflow-ui exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if http(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"nothing answered {url} within {timeout}s:\n{log.read_text()[-3000:]}")


def in_airflow_env(env: dict[str, str], command: str) -> subprocess.CompletedProcess:
    """A README command, run as the README says: after loading `lockgate airflow-env`."""
    script = f'set -a; . "$(.venv/bin/lockgate airflow-env 2>/dev/null)"; set +a; {command}'
    return subprocess.run(["bash", "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    from lockgate.demo.shop_db import create_shop_db

    root = tmp_path_factory.mktemp("airflow-ui")
    port = free_port()
    env = clean_env(root, port, free_port())
    create_shop_db(root / "state" / "demo" / "shop.db", scale=0.02, start=date(2026, 1, 1), days=1)
    log = root / "make-airflow-ui.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(["make", "airflow-ui"], cwd=PROJECT_ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v2/version", process, log)
        yield root, port, env, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_ui_listens_on_loopback_only_and_serves_the_page_behind_a_login(standalone):
    root, port, env, _ = standalone
    addresses = listening_on(port)
    assert addresses == {f"127.0.0.1:{port}"}, f"the API server listens on {addresses}"
    spark_port = int(env["LOCKGATE_SPARK_CONNECT_PORT"])
    spark = listening_on(spark_port)  # a JVM reports 127.0.0.1 as an IPv4-mapped address
    assert spark and spark <= {f"127.0.0.1:{spark_port}", f"[::ffff:127.0.0.1]:{spark_port}"}, spark
    base = f"http://127.0.0.1:{port}"
    assert http(f"{base}/lockgate/")[0] == 401
    passwords = json.loads(
        (root / "state" / "airflow" / "simple_auth_manager_passwords.json.generated").read_text(encoding="utf-8")
    )
    status, body = http(f"{base}/auth/token", data={"username": "admin", "password": passwords["admin"]})
    assert status == 201, body
    token = json.loads(body)["access_token"]
    status, page = http(f"{base}/lockgate/", token=token)
    assert status == 200 and "data-source='shop'" in page, page[:500]


def test_a_triggered_run_executes_its_extract_on_the_spark_connect_server(standalone):
    """Tasks are Spark Connect clients of the server `make airflow-ui` started: no JVM per task."""
    root, _, env, _ = standalone
    wait_parsed(env)
    trigger = in_airflow_env(
        env, """airflow dags trigger ingest_shop --run-id manual__orders --conf '{"tables": ["orders"]}'"""
    )
    assert trigger.returncode == 0, trigger.stdout[-2000:] + trigger.stderr[-2000:]
    assert in_airflow_env(env, "airflow dags unpause ingest_shop").returncode == 0
    try:
        state = wait_run_state(env, "manual__orders", timeout=600)
    finally:
        in_airflow_env(env, "airflow dags pause ingest_shop")
    assert state == "success", state
    logs = list((root / "state" / "airflow" / "logs").rglob("*.log"))
    extract = [p for p in logs if "run_id=manual__orders" in str(p) and "task_id=orders.extract" in str(p)]
    assert extract, [str(p) for p in logs][:20]
    text = extract[0].read_text(encoding="utf-8")
    assert f"Spark Connect session at sc://127.0.0.1:{env['LOCKGATE_SPARK_CONNECT_PORT']}" in text, text[-3000:]


def wait_parsed(env: dict[str, str], timeout: float = 240) -> None:
    """The dag-processor of `airflow standalone` parses the DAG first."""
    deadline = time.monotonic() + timeout
    while True:
        listed = in_airflow_env(env, "airflow dags list -o plain")
        if "ingest_shop" in listed.stdout:
            return
        assert time.monotonic() < deadline, listed.stdout + listed.stderr
        time.sleep(5)


def wait_run_state(env: dict[str, str], run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        runs = in_airflow_env(env, "airflow dags list-runs ingest_shop -o json")
        line = next((x for x in runs.stdout.splitlines() if x.startswith("[{")), "[]")
        state = next((r["state"] for r in json.loads(line) if r["run_id"] == run_id), None)
        if state in ("success", "failed") or time.monotonic() > deadline:
            return state
        time.sleep(5)


@contextlib.contextmanager
def busy_writer(database: Path):
    """Commits to the metadata database several hundred times a second, as a busy
    scheduler does, while the block runs (in its own table)."""
    stop = threading.Event()

    def write() -> None:
        with sqlite3.connect(database, timeout=60, isolation_level=None) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS lockgate_test_writer (n INTEGER)")
            while not stop.is_set():
                conn.execute("INSERT INTO lockgate_test_writer VALUES (1)")
                time.sleep(0.002)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join(timeout=60)


def test_readme_cli_commands_work_beside_the_scheduler(standalone):
    """Beside a scheduler that commits at the moment a command writes: SQLite refuses a
    transaction that read before another connection's commit, so these commands failed
    with "database is locked" after creating part of the backfill."""
    root, port, env, log = standalone
    wait_parsed(env)
    # Paused: the runs are created (what the commands must do) but not executed.
    with busy_writer(root / "state" / "airflow" / "airflow.db"):
        backfill = in_airflow_env(
            env, "airflow backfill create --dag-id ingest_shop --from-date 2026-01-01 --to-date 2026-01-03 --max-active-runs 4"
        )
        assert backfill.returncode == 0, backfill.stdout[-2000:] + backfill.stderr[-2000:]
        trigger = in_airflow_env(env, """airflow dags trigger ingest_shop --conf '{"tables": ["orders"], "full_refresh": true}'""")
    assert trigger.returncode == 0, trigger.stdout[-2000:] + trigger.stderr[-2000:]
    runs = in_airflow_env(env, "airflow dags list-runs ingest_shop -o json")
    assert runs.returncode == 0, runs.stderr[-2000:]
    listed_runs = json.loads(next(line for line in runs.stdout.splitlines() if line.startswith("[{")))
    kinds = sorted(r["run_id"].split("__")[0] for r in listed_runs)
    # One manual run and possibly the newest scheduled one come from the test above (unpaused for a while).
    assert [k for k in kinds if k != "scheduled"] == ["backfill", "backfill", "backfill", "manual", "manual"], listed_runs
    assert kinds.count("scheduled") <= 1, listed_runs
    assert "database is locked" not in log.read_text(encoding="utf-8")
