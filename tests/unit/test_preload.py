"""Preloading Lockgate's task imports into the processes that fork Airflow tasks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lockgate.preload import MODULES, forks_tasks, preload

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["airflow", "scheduler"], True),
        (["airflow", "scheduler", "--skip-serve-logs"], True),
        (["airflow", "celery", "worker", "-q", "default"], True),
        (["airflow", "dags", "test", "ingest_shop"], False),
        (["airflow", "standalone"], False),  # starts `airflow scheduler` itself
        (["airflow", "api-server"], False),
        (["airflow", "dag-processor"], False),
        (["airflow", "celery", "flower"], False),
        (["pytest"], False),
    ],
)
def test_only_the_processes_that_fork_tasks_preload(argv, expected):
    assert forks_tasks(argv) is expected


def test_preload_imports_for_a_scheduler_and_skips_what_fails(monkeypatch):
    monkeypatch.delenv("LOCKGATE_PRELOAD", raising=False)
    assert preload(["airflow", "api-server"], ["json"]) == []
    assert preload(["airflow", "scheduler"], ["json", "no_such_module_here"]) == ["json"]
    monkeypatch.setenv("LOCKGATE_PRELOAD", "0")
    assert preload(["airflow", "scheduler"], ["json"]) == []


def test_the_preloaded_modules_import_and_start_no_thread():
    """Forking after these imports is only safe while none of them starts a thread."""
    code = (
        "import json, sys, threading; from lockgate.preload import preload; "
        "done = preload(['airflow', 'scheduler']); "
        "print(json.dumps({'done': done, 'threads': [t.name for t in threading.enumerate()]}))"
    )
    env = {"PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}", "PATH": "/usr/bin:/bin", "GX_ANALYTICS_ENABLED": "false"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["done"] == list(MODULES), out.stderr[-2000:]
    assert result["threads"] == ["MainThread"]
