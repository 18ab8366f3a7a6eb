"""``lockgate airflow-standalone`` on a private deployment, as ``make airflow-ui`` runs it
(a Spark Connect server for the tasks; scheduler with the LocalExecutor, dag-processor,
api-server, triggerer; Airflow's defaults), bound
to 127.0.0.1 on a free port from 18793 up, plus the few REST calls and metadata queries
the benchmark needs. ``stop()`` ends the process group and any process still carrying
the deployment's AIRFLOW_HOME (task processes, Spark JVMs)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_home import AirflowHome
from lockgate import airflow_metadata

FIRST_PORT = 18793


def free_port(start: int = FIRST_PORT) -> int:
    for port in range(start, start + 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + 199}")


def service_env(port: int) -> dict[str, str]:
    """What differs from the README's ``make airflow-ui``: the port (8080 may be taken)."""
    return {
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    }


@dataclass
class Standalone:
    home: AirflowHome
    port: int
    #: Deployment settings that differ from the documented defaults (a lever turned off).
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    _token: str | None = None

    @property
    def log_path(self) -> Path:
        return self.home.logs / "standalone.log"

    def start(self) -> None:
        """``lockgate airflow-standalone``, the command ``make airflow-ui`` runs: Airflow's
        standalone plus the Spark Connect server its tasks use."""
        spark_port = str(free_port(self.port + 1))
        env = {**self.home.env, **service_env(self.port), "LOCKGATE_SPARK_CONNECT_PORT": spark_port, **self.extra_env}
        command = [str(Path(self.home.command()[0]).with_name("lockgate")), "airflow-standalone"]
        with open(self.log_path, "w", encoding="utf-8") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)  # fmt: skip

    def stop(self, timeout: float = 30) -> None:
        if self.process is not None:
            signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for pid in processes_of(self.home.home):  # anything that left the group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"airflow standalone exited; see {self.log_path}")

    # -- the REST API -------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_healthy(self, timeout: float = 300) -> None:
        """Until the API answers and reports a healthy scheduler and dag-processor."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(self.url("/api/v2/monitor/health"), timeout=5) as response:
                    health = json.loads(response.read())
                if all((health.get(part) or {}).get("status") == "healthy" for part in ("scheduler", "dag_processor")):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(f"airflow standalone not healthy within {timeout}s; see {self.log_path}")

    def token(self) -> str:
        """The admin's JWT; standalone writes the admin's password next to AIRFLOW_HOME."""
        if self._token is None:
            passwords = json.loads((self.home.home / "simple_auth_manager_passwords.json.generated").read_text())
            body = json.dumps({"username": "admin", "password": passwords["admin"]}).encode()
            request = urllib.request.Request(self.url("/auth/token"), data=body, method="POST",
                                             headers={"Content-Type": "application/json"})  # fmt: skip
            with urllib.request.urlopen(request, timeout=30) as response:
                self._token = json.loads(response.read())["access_token"]
        return self._token

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(
            self.url(f"/api/v2{path}"), data=json.dumps(body).encode() if body is not None else None, method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token()}"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None

    def trigger(self, dag_id: str, run_id: str, logical_date: datetime, interval: tuple[datetime, datetime]) -> None:
        self.api("POST", f"/dags/{dag_id}/dagRuns", {
            "dag_run_id": run_id, "logical_date": logical_date.isoformat(),
            "data_interval_start": interval[0].isoformat(), "data_interval_end": interval[1].isoformat(), "conf": {},
        })  # fmt: skip

    # -- the metadata database (read-only) ----------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return airflow_metadata.query(self.home.home, sql, params)

    def wait_parsed(self, dag_id: str, timeout: float = 300) -> None:
        if not airflow_metadata.wait_parsed(self.home.home, dag_id, alive=self.check_alive, timeout=timeout):
            raise TimeoutError(f"{dag_id} not parsed within {timeout}s; see {self.log_path}")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 1800, poll: float = 0.5) -> str:
        """The run's final state (``success`` or ``failed``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
            except sqlite3.Error:
                rows = []
            if rows and rows[0][0] in ("success", "failed"):
                return rows[0][0]
            time.sleep(poll)
        raise TimeoutError(f"{dag_id} run {run_id} not finished within {timeout}s; see {self.log_path}")


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def processes_of(airflow_home: Path) -> list[int]:
    """Ids of the processes whose environment has this AIRFLOW_HOME (all started here)."""
    marker = f"AIRFLOW_HOME={airflow_home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found
