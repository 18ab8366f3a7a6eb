"""Read-only looks into a local Airflow's SQLite metadata database (cheap polling for
the test stack and the benchmark, which run Airflow as a user does and wait on it)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path


def query(airflow_home: Path, sql: str, params: tuple = ()) -> list[tuple]:
    uri = f"file:{Path(airflow_home) / 'airflow.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def wait_parsed(airflow_home: Path, dag_id: str, *, alive: Callable[[], None], timeout: float, poll: float = 1.0) -> bool:
    """Until the dag-processor has stored ``dag_id`` (``True``) or ``timeout`` passes
    (``False``); ``alive()`` raises when the Airflow processes are gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        try:
            if query(airflow_home, "SELECT 1 FROM serialized_dag WHERE dag_id = ?", (dag_id,)):
                return True
        except sqlite3.Error:
            pass
        time.sleep(poll)
    return False
