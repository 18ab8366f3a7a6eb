"""A real Airflow 3 deployment for the test session, and a direct interval runner.

:class:`AirflowStack` runs ``airflow db migrate`` in a private AIRFLOW_HOME (SQLite
metadata, LocalExecutor), then the api-server (its execution API is what task
processes talk to), the scheduler and the dag-processor as subprocesses, each in its
own process group with its own log file. ``stop()`` ends every group; ``log_tails()``
shows what each process said last, for failure messages. On top of that it polls the
metadata database for runs (``dag_runs``, ``wait_runs``), creates backfills that are
verified to exist (``create_backfill``) and talks to the REST API (``api``).

A test module that runs DAGs through the shared stack declares its sources as
``AIRFLOW_SOURCES = [ScenarioSource(...)]``; the session fixture in ``conftest.py``
gives each one its own PostgreSQL database, connection and source file.

Run as a script (``python airflow_harness.py run-interval ...``) it runs Lockgate's four
stages for every table of a source for one interval with a given run id, outside
Airflow, after waiting for a start signal file, so that two such processes start the
same interval at the same moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from lockgate import airflow_metadata

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: The stack's users (simple auth manager): name -> (role, password). ``outsider`` has no
#: role, hence no access to any DAG.
USERS = {
    "admin": ("admin", secrets.token_urlsafe(12)),
    "viewer": ("viewer", secrets.token_urlsafe(12)),
    "outsider": ("", secrets.token_urlsafe(12)),
}


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


def utc(value: str | datetime | None) -> datetime | None:
    """A timestamp of the SQLite metadata (naive UTC text) as an aware UTC datetime."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# The default task log path holds ``run_id=<run id>`` as one folder name: a 250-character
# run id (Airflow's longest) would not fit a file name, so long ids are shortened there.
LOG_FILENAME_TEMPLATE = (
    "dag_id={{ ti.dag_id }}/run_id={{ ti.run_id if ti.run_id|length <= 200 "
    "else ti.run_id[:100] ~ '~' ~ ti.run_id[-99:] }}/task_id={{ ti.task_id }}/"
    "{% if ti.map_index >= 0 %}map_index={{ ti.map_index }}/{% endif %}"
    "attempt={{ try_number|default(ti.try_number) }}.log"
)


# -- the events/accounts schema the Airflow-through scenarios share ---------------------

#: Columns per table (the key first).
SCENARIO_COLUMNS = {
    "events": ["event_id", "account_id", "kind", "amount", "created_at"],
    "accounts": ["account_id", "name", "status", "balance", "updated_at"],
}
SCENARIO_DDL = {
    "events": "CREATE TABLE events (event_id BIGINT PRIMARY KEY, account_id INTEGER NOT NULL, "
    "kind VARCHAR(20) NOT NULL, amount NUMERIC(12,2), created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL)",
    "accounts": "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, "
    "status VARCHAR(20), balance NUMERIC(12,2), updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL)",
}
_SCENARIO_TABLES = {
    "events": "  - name: events\n    mode: append\n    cursor: created_at\n    primary_key: [event_id]\n",
    "accounts": "  - name: accounts\n    mode: merge\n    cursor: updated_at\n    primary_key: [account_id]\n",
}


def scenario_yaml(source: str, description: str, *, start_date: str, tables=("events", "accounts"), **settings) -> str:
    """A source file over the shared schema; ``settings`` are further top-level keys
    (``max_active_runs=2``, ``retries=0``, ...), written as given."""
    lines = [f"source: {source}", f"description: {description}", "connection: {connection}", 'schedule: "@daily"',
             f"start_date: {start_date}", *(f"{key}: {value}" for key, value in settings.items()), "tables:"]  # fmt: skip
    return "\n".join(lines) + "\n" + "".join(_SCENARIO_TABLES[t] for t in tables)


def create_scenario_tables(conn, tables=("events", "accounts")) -> None:
    for table in tables:
        conn.execute(SCENARIO_DDL[table])


@dataclass(frozen=True)
class ScenarioSource:
    """One Lockgate source served by the shared Airflow stack.

    ``yaml`` is the source file's text; ``{connection}`` in it is replaced by the
    connection id (``<name>_pg``). ``populate(conn)`` fills the source's own, fresh
    PostgreSQL database (an autocommit psycopg connection). A source that is not a
    PostgreSQL database gives ``connection_uri(folder)`` instead: it creates the source
    in that folder and returns its connection URI.
    """

    name: str
    yaml: str | Callable[[], str]
    populate: Callable[[Any], None] | None = None
    connection_uri: Callable[[Path], str] | None = None

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.name}"

    @property
    def connection_id(self) -> str:
        return f"{self.name}_pg"

    def source_file_text(self, text: str | None = None) -> str:
        """The source file: ``text`` (default: ``yaml``) with the connection id filled in."""
        if text is None:
            text = self.yaml() if callable(self.yaml) else self.yaml
        return text.replace("{connection}", self.connection_id)


@dataclass
class AirflowStack:
    home: Path
    env: dict[str, str]
    api_port: int
    processes: dict[str, tuple[subprocess.Popen, Path]] = field(default_factory=dict)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

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
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE": LOG_FILENAME_TEMPLATE,
            # Airflow 3.3 refuses ".." in run ids unless this is set (deployments with older
            # ids set it); Lockgate must keep such ids inside the lake either way.
            "AIRFLOW__CORE__ALLOW_DOUBLE_DOT_IN_IDS": "True",
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

    def cli(
        self, *args: str, timeout: float = 300, check: bool = True, retry_locked: bool = True
    ) -> subprocess.CompletedProcess:
        for attempt in range(6 if retry_locked else 1):
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
        from lockgate.cli import use_wal

        mode = use_wal(self.home / "airflow.db")
        if mode != "wal":
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
        return airflow_metadata.query(self.home, sql, params)

    def wait_dag_parsed(self, dag_id: str, timeout: float = 240) -> None:
        if not airflow_metadata.wait_parsed(self.home, dag_id, alive=self.check_alive, timeout=timeout, poll=2):
            errors = self.query("SELECT filename, stacktrace FROM import_error")
            raise TimeoutError(f"{dag_id} was not parsed within {timeout}s; import errors: {errors}\n{self.log_tails()}")

    def runs(self, dag_id: str) -> list[tuple[str, str, str]]:
        """(run_id, run_type, state) of every run of ``dag_id``."""
        return self.query("SELECT run_id, run_type, state FROM dag_run WHERE dag_id = ?", (dag_id,))

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id`` with its type, state, clear number and data interval."""
        rows = self.query(
            "SELECT run_id, run_type, state, clear_number, logical_date, data_interval_start, "
            "data_interval_end, backfill_id FROM dag_run WHERE dag_id = ? ORDER BY id",
            (dag_id,),
        )
        return [
            {
                "run_id": r[0], "run_type": r[1], "state": r[2], "clear_number": r[3],
                "logical_date": utc(r[4]), "data_interval_start": utc(r[5]), "data_interval_end": utc(r[6]),
                "backfill_id": r[7],
            }
            for r in rows
        ]  # fmt: skip

    def wait_runs(
        self,
        dag_id: str,
        done: Callable[[list[dict[str, Any]]], bool],
        *,
        what: str,
        timeout: float = 600,
        poll: float = 2,
    ) -> list[dict[str, Any]]:
        """Poll the metadata database until ``done(runs)``; on timeout raise with the runs
        and the log tails."""
        started = time.monotonic()
        deadline = started + timeout
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                runs = self.dag_runs(dag_id)
            except sqlite3.OperationalError:  # a writer holds the file for a moment
                runs = []
            else:
                if done(runs):
                    print(f"{dag_id}: {what}: {time.monotonic() - started:.0f}s", file=sys.stderr)
                    return runs
            time.sleep(poll)
        summary = [(r["run_id"][:60], r["run_type"], r["state"], r["clear_number"]) for r in runs]
        raise TimeoutError(
            f"{dag_id}: {what} did not happen within {timeout:.0f}s; runs: {summary}\n{self.diagnostics(dag_id)}"
        )

    def wait_until(self, predicate: Callable[[], Any], *, what: str, timeout: float = 300, poll: float = 2) -> Any:
        """Poll ``predicate()`` (read-only metadata queries) until it returns something true."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                value = predicate()
            except sqlite3.OperationalError:
                value = None
            if value:
                print(f"{what}: {time.monotonic() - started:.0f}s", file=sys.stderr)
                return value
            time.sleep(poll)
        raise TimeoutError(f"{what} did not happen within {timeout:.0f}s\n{self.diagnostics()}")

    def dag_state(self, dag_id: str) -> dict[str, Any]:
        row = self.query(
            "SELECT is_paused, next_dagrun, next_dagrun_data_interval_start, next_dagrun_data_interval_end "
            "FROM dag WHERE dag_id = ?",
            (dag_id,),
        )
        if not row:
            return {}
        paused, logical, start, end = row[0]
        return {"is_paused": bool(paused), "next_dagrun": utc(logical), "next_start": utc(start), "next_end": utc(end)}

    def create_backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        *,
        expected_runs: int,
        reprocess: str | None = None,
        max_active_runs: int | None = None,
        run_backwards: bool = False,
        attempts: int = 4,
    ) -> int:
        """``airflow backfill create`` and check in the metadata that it exists with a run
        for each of its ``expected_runs`` intervals; returns the backfill id.

        On SQLite a writer that waits too long for the lock makes Airflow delete the
        half-made backfill (``_cleanup_partial_backfill``) and the command fail: the
        backfill is then created again. Any other outcome fails with Airflow's output.
        """
        args = ["backfill", "create", "--dag-id", dag_id, "--from-date", from_date, "--to-date", to_date]
        if reprocess:
            args += ["--reprocess-behavior", reprocess]
        if max_active_runs:
            args += ["--max-active-runs", str(max_active_runs)]
        if run_backwards:
            args.append("--run-backwards")
        # One running backfill per DAG: the scheduler marks a finished one complete every 30 s.
        self.wait_until(
            lambda: not self.query("SELECT id FROM backfill WHERE dag_id = ? AND completed_at IS NULL", (dag_id,)),
            what=f"the earlier backfill of {dag_id} marked complete",
            timeout=120,
        )
        outputs = []
        for _ in range(attempts):
            before = self.query("SELECT coalesce(max(id), 0) FROM backfill WHERE dag_id = ?", (dag_id,))[0][0]
            result = self.cli(*args, check=False, retry_locked=False)
            outputs.append(f"exit {result.returncode}: {(result.stdout + result.stderr)[-1500:]}")
            made = self.query("SELECT id FROM backfill WHERE dag_id = ? AND id > ? ORDER BY id", (dag_id, before))
            if made:
                backfill_id = made[-1][0]
                links = self.query(
                    "SELECT dag_run_id, exception_reason FROM backfill_dag_run WHERE backfill_id = ?", (backfill_id,)
                )
                linked = [link for link in links if link[0] is not None and not link[1]]
                if len(linked) == expected_runs:
                    return backfill_id
                raise RuntimeError(
                    f"backfill {backfill_id} of {dag_id} has {len(linked)} runs, expected {expected_runs}: "
                    f"{links}\n{outputs[-1]}"
                )
            if "database is locked" not in outputs[-1]:
                break
            time.sleep(2)
        raise RuntimeError(f"airflow {' '.join(args)} made no backfill:\n" + "\n".join(outputs))

    # -- REST API -------------------------------------------------------------------

    def token(self, user: str = "admin") -> str:
        """A JWT for the public API: ``user`` (one of :data:`USERS`) logs in."""
        cached = self._tokens.get(user)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        body = json.dumps({"username": user, "password": USERS[user][1]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/auth/token", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            token = json.loads(response.read())["access_token"]
        self._tokens[user] = (token, time.monotonic() + 600)  # tokens live 24 h by default
        return token

    def api(self, method: str, path: str, body: dict | None = None, *, user: str = "admin") -> tuple[int, Any]:
        """Call ``/api/v2<path>`` as ``user``; returns (HTTP status, decoded JSON or text)."""
        return self.http(method, f"/api/v2{path}", body, token=self.token(user))

    def http(self, method: str, path: str, body: dict | None = None, *, token: str | None = None) -> tuple[int, Any]:
        """Call any path of the API server, with a bearer token or none."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return status, raw.decode("utf-8", "replace")

    def trigger_run(
        self, dag_id: str, run_id: str, *, logical_date: datetime, interval: tuple[datetime, datetime]
    ) -> dict[str, Any]:
        """POST /dags/{dag_id}/dagRuns: a manual run with this id, logical date and data interval."""
        status, body = self.api(
            "POST",
            f"/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns",
            {
                "dag_run_id": run_id,
                "logical_date": logical_date.isoformat(),
                "data_interval_start": interval[0].isoformat(),
                "data_interval_end": interval[1].isoformat(),
                "conf": {},
            },
        )
        if status != 200:
            raise RuntimeError(f"triggering {dag_id} with run id {run_id!r}: HTTP {status}: {body}")
        return body

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """PATCH /dags/{dag_id}: pause or unpause (what ``airflow dags pause`` does, faster)."""
        status, body = self.api("PATCH", f"/dags/{dag_id}", {"is_paused": paused})
        if status != 200:
            raise RuntimeError(f"PATCH /dags/{dag_id} is_paused={paused}: HTTP {status}: {body}")

    def request_reparse(self, dag_id: str) -> None:
        """Ask the dag-processor to parse the DAG's file now (PUT /parseDagFile/{file_token})."""
        status, details = self.api("GET", f"/dags/{dag_id}/details")
        if status != 200:
            raise RuntimeError(f"GET /dags/{dag_id}/details: HTTP {status}: {details}")
        status, body = self.api("PUT", f"/parseDagFile/{details['file_token']}")
        if status not in (200, 201):
            raise RuntimeError(f"PUT /parseDagFile: HTTP {status}: {body}")

    def wait_serialized(
        self, dag_id: str, check: Callable[[dict[str, Any]], bool], *, what: str, timeout: float = 240
    ) -> dict[str, Any]:
        """Wait until the DAG's details (read from its serialized form, which the scheduler
        makes runs from) pass ``check``, asking for a re-parse every 10 s: Airflow skips
        rewriting a DAG serialized less than 30 s before."""
        asked = [time.monotonic()]

        def details() -> dict[str, Any] | None:
            status, body = self.api("GET", f"/dags/{dag_id}/details")
            if status == 200 and check(body):
                return body
            if time.monotonic() - asked[0] >= 10:
                self.request_reparse(dag_id)
                asked[0] = time.monotonic()
            return None

        return self.wait_until(details, what=what, timeout=timeout)

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

    def task_log_tails(self, dag_id: str, *, logs: int = 4, lines: int = 30, failed_first: bool = True) -> str:
        """The last lines of the newest task logs of ``dag_id`` (logs with an error first)."""
        folder = self.home / "logs" / f"dag_id={dag_id}"
        found = sorted(folder.rglob("attempt=*.log"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        if failed_first:
            def failed(path: Path) -> bool:
                text = path.read_text(encoding="utf-8", errors="replace")
                return any(mark in text for mark in ('"level":"error"', "[error", "Traceback", "final_state=failed"))

            found = [p for p in found if not failed(p)] + [p for p in found if failed(p)]
        parts = [f"===== task log {p.relative_to(folder)} =====\n{tail(p, lines)}" for p in found[-logs:]]
        return "\n".join(parts) or f"(no task logs under {folder})"

    def task_errors(self, dag_id: str, run_id: str) -> list[str]:
        """``task: ExceptionType: message`` of every failed task attempt of one run, from
        the task logs (JSON lines; the folder follows ``LOG_FILENAME_TEMPLATE``)."""
        folder_name = run_id if len(run_id) <= 200 else f"{run_id[:100]}~{run_id[-99:]}"
        run_dir = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={folder_name}"
        errors = []
        for log in sorted(run_dir.glob("task_id=*/attempt=*.log")) if run_dir.is_dir() else []:
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if '"level":"error"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                for detail in entry.get("error_detail") or []:
                    errors.append(
                        f"{log.parent.name.removeprefix('task_id=')}: {detail.get('exc_type')}: "
                        f"{str(detail.get('exc_value'))[:300]}"
                    )
        return list(dict.fromkeys(errors))

    def diagnostics(self, dag_id: str | None = None) -> str:
        text = "===== Airflow processes (tails) =====\n" + self.log_tails(30)
        if dag_id:
            text += f"\n===== task logs of {dag_id} =====\n" + self.task_log_tails(dag_id)
        return text


# -- the source against the warehouse, and the lake --------------------------------------


def norm(value):
    """A value as both databases should agree on it: naive UTC timestamps, 2-place decimals."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, Decimal | float):
        return Decimal(str(value)).quantize(Decimal("0.01"))
    return value


def source_rows(dsn: dict, table: str, columns: list[str], key: str, where: str = "", params: tuple = ()) -> list:
    import psycopg

    sql = f"SELECT {', '.join(columns)} FROM {table} {('WHERE ' + where) if where else ''} ORDER BY {key}"
    with psycopg.connect(**dsn) as conn:
        rows = conn.execute(sql, params).fetchall()
    return [tuple(norm(v) for v in row) for row in rows]


def warehouse_rows(warehouse_path: str, schema: str, table: str, columns: list[str], key: str) -> list:
    from lockgate import warehouse

    with warehouse.connect(warehouse_path, read_only=True) as conn:
        exists = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
        ).fetchone()[0]
        if not exists:
            return []
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM {schema}.{table} ORDER BY {key}").fetchall()
    return [tuple(norm(v) for v in row) for row in rows]


def table_mismatch(
    dsn: dict, warehouse_path: str, schema: str, table: str, columns: list[str], key: str,
    *, where: str = "", params: tuple = (),
) -> str | None:  # fmt: skip
    """None when ``<schema>.<table>`` in the warehouse equals the source rows (``where``
    selects them); otherwise what differs: missing, extra and changed rows."""
    expected = source_rows(dsn, table, columns, key, where, params)
    actual = warehouse_rows(warehouse_path, schema, table, columns, key)
    if actual == expected:
        return None
    keys = [row[0] for row in actual]
    want, have = {r[0]: r for r in expected}, {r[0]: r for r in actual}
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    changed = [(want[k], have[k]) for k in sorted(set(want) & set(have)) if want[k] != have[k]]
    parts = [f"{schema}.{table}: {len(actual)} warehouse rows vs {len(expected)} source rows"]
    if len(keys) != len(set(keys)):
        parts.append(f"{len(keys) - len(set(keys))} duplicate keys in the warehouse")
    if missing:
        parts.append(f"{len(missing)} source rows missing, e.g. keys {missing[:8]}")
    if extra:
        parts.append(f"{len(extra)} rows not in the source, e.g. keys {extra[:8]}")
    if changed:
        parts.append(f"{len(changed)} rows with other values, e.g. (source, warehouse) {changed[:2]}")
    return "; ".join(parts)


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by path relative to it."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digests[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def sealed_folders(lake_root: Path, source: str) -> list[Path]:
    """Every folder holding a ``_manifest.json`` anywhere under ``lake/raw/<source>``, except
    a folder still being written (``.tmp-*``): sealed raw versions, wherever they ended up."""
    base = Path(lake_root) / "raw" / source
    if not base.exists():
        return []
    return sorted(p.parent for p in base.rglob("_manifest.json") if not p.parent.name.startswith(".tmp-"))


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
