"""A real Airflow 3 deployment for one test module, and a direct interval runner.

:class:`AirflowStack` runs ``airflow db migrate`` in a private AIRFLOW_HOME (SQLite
metadata, LocalExecutor), then the api-server (its execution API is what task
processes talk to), the scheduler and the dag-processor as subprocesses, each in its
own process group with its own log file. ``stop()`` ends every group; ``log_tails()``
shows what each process said last, for failure messages.

Run as a script (``python airflow_harness.py run-interval ...``) it runs Lockgate's four
stages for every table of a source for one interval with a given run id, outside
Airflow, after waiting for a start signal file, so that two such processes start the
same interval at the same moment.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def last_json(stdout: str):
    """The JSON document an ``airflow ... -o json`` command printed (log lines may precede it)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith(("[", "{")):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON document in the output:\n{stdout[-2000:]}")


@dataclass
class AirflowStack:
    home: Path
    env: dict[str, str]
    api_port: int
    processes: dict[str, tuple[subprocess.Popen, Path]] = field(default_factory=dict)

    @classmethod
    def create(cls, home: Path, api_port: int, extra_env: dict[str, str], *, parallelism: int = 4) -> AirflowStack:
        home.mkdir(parents=True, exist_ok=True)
        (home / "logs").mkdir(exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOCKGATE_"))}
        python_path = os.pathsep.join([str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT)])
        env = {
            **base,
            "PYTHONPATH": python_path + (os.pathsep + base["PYTHONPATH"] if base.get("PYTHONPATH") else ""),
            "AIRFLOW_HOME": str(home),
            # SQLite allows one writer; wait for it instead of failing at once.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "TZ": "UTC",
            **extra_env,
        }
        return cls(home=home, env=env, api_port=api_port)

    # -- commands -------------------------------------------------------------------

    def airflow_command(self) -> str:
        binary = Path(sys.executable).with_name("airflow")
        return str(binary) if binary.exists() else "airflow"

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        for attempt in range(6):
            result = subprocess.run(
                [self.airflow_command(), *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                check=False,
            )
            # SQLite metadata: another process may hold the write lock for a while.
            if result.returncode == 0 or "database is locked" not in result.stdout + result.stderr or attempt == 5:
                break
            time.sleep(3)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def cli_json(self, *args: str, timeout: float = 300):
        return last_json(self.cli(*args, "-o", "json", timeout=timeout).stdout)

    def start_migrate(self) -> subprocess.Popen:
        log = open(self.home / "logs" / "db-migrate.log", "w", encoding="utf-8")  # noqa: SIM115
        try:
            return subprocess.Popen(
                [self.airflow_command(), "db", "migrate"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def start(self, name: str, *args: str) -> None:
        log_path = self.home / "logs" / f"{name}.log"
        log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115
        try:
            process = subprocess.Popen(
                [self.airflow_command(), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        self.processes[name] = (process, log_path)

    def use_wal(self) -> None:
        """Switch the (migrated) SQLite metadata to write-ahead logging, which is kept in the
        file: readers then never block the writer, so far fewer "database is locked"."""
        with sqlite3.connect(self.home / "airflow.db", timeout=60) as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode ({mode})")

    def start_api_server(self) -> None:
        self.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1")

    def start_scheduler(self) -> None:
        self.start("scheduler", "scheduler")

    def start_dag_processor(self) -> None:
        self.start("dag-processor", "dag-processor")

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, (p, _) in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow process(es) exited: {dead}\n{self.log_tails()}")

    def wait_api_ready(self, timeout: float = 180) -> None:
        url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"the api-server did not answer {url} within {timeout}s\n{self.log_tails()}")

    # -- metadata (read-only SQLite queries: cheap polling) ---------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        uri = f"file:{self.home / 'airflow.db'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def wait_dag_parsed(self, dag_id: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if self.query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", (dag_id,)):
                    return
            except sqlite3.Error:
                pass
            time.sleep(2)
        errors = self.query("SELECT filename, stacktrace FROM import_error")
        raise TimeoutError(f"{dag_id} was not parsed within {timeout}s; import errors: {errors}\n{self.log_tails()}")

    def runs(self, dag_id: str) -> list[tuple[str, str, str]]:
        """(run_id, run_type, state) of every run of ``dag_id``."""
        return self.query("SELECT run_id, run_type, state FROM dag_run WHERE dag_id = ?", (dag_id,))

    # -- teardown -------------------------------------------------------------------

    def stop(self, timeout: float = 30) -> None:
        for _, (process, _) in self.processes.items():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for _, (process, _) in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group (task processes)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for name, (_, log_path) in self.processes.items():
            parts.append(f"----- {name} ({log_path}) -----\n{tail(log_path, lines)}")
        return "\n".join(parts)


# -- direct interval runner -----------------------------------------------------------


def run_interval(source: str, interval_start: str, interval_end: str, run_id: str, start_signal: str) -> int:
    """Lockgate's four stages for every table of ``source`` and one interval, as the DAG's
    tasks would run them, with ``run_id``; waits for ``start_signal`` to exist first."""
    from datetime import datetime

    from lockgate.config import load_source
    from lockgate.pipeline import RunInfo, extract_stage, load_stage, publish_stage, validate_stage
    from lockgate.settings import load_settings

    settings = load_settings()
    config = load_source(settings.sources_dir, source)
    start, end = datetime.fromisoformat(interval_start), datetime.fromisoformat(interval_end)
    run = RunInfo(run_id=run_id, interval_start=start, interval_end=end, run_created=end)
    deadline = time.monotonic() + 300
    while not Path(start_signal).exists():
        if time.monotonic() > deadline:
            print(f"no start signal {start_signal}", file=sys.stderr)
            return 3
        time.sleep(0.05)
    for table in config.tables:
        extracted = extract_stage(config, table, run, settings=settings)
        validate_stage(config, table, run, extracted["raw_path"], settings=settings)
        loaded = load_stage(config, table, run, extracted["raw_path"], settings=settings)
        publish_stage(config, table, run, extracted["raw_path"], settings=settings)
        print(f"{run_id} {table.name}: extracted {extracted['rows']} loaded {loaded['rows_loaded']}", flush=True)
    return 0


if __name__ == "__main__":
    import argparse
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run-interval")
    for name in ("source", "interval_start", "interval_end", "run_id", "start_signal"):
        runner.add_argument(name)
    ns = parser.parse_args()
    raise SystemExit(run_interval(ns.source, ns.interval_start, ns.interval_end, ns.run_id, ns.start_signal))
