"""Import what Lockgate's tasks need once, in the long-lived Airflow processes that
fork the task processes, instead of once in every task.

On Linux, Airflow's LocalExecutor forks its workers from the scheduler, and each task
process is forked from a worker (Celery workers fork theirs too). A module imported
before those forks is already in every task process: Great Expectations alone costs
about 7 s of imports per validating task, the task SDK and the lineage adapter about
4 s per task. :mod:`airflow_local_settings` (beside this package in ``plugins/``, which
Airflow puts on ``sys.path``) calls :func:`preload` in every Airflow process; only the
scheduler and Celery workers import anything. None of these modules starts a thread at
import (checked by a test), so forking after them is safe. ``LOCKGATE_PRELOAD=0``
turns it off.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Sequence

log = logging.getLogger("lockgate")

#: What the four stages import, heaviest first (GX, its pandas engine, Spark's Python
#: side, DuckDB and its SQLAlchemy dialect for GX, the lineage adapter), and the DAG
#: factory that every task parses.
MODULES = (
    "great_expectations",
    "great_expectations.expectations",
    "great_expectations.checkpoint",
    "pandas",
    "pyarrow.parquet",
    "pyspark.sql",
    "duckdb",
    "airflow.sdk",
    "airflow.providers.openlineage.plugins.adapter",
    "lockgate.dag_factory",
    "lockgate.pipeline",
    "lockgate.quality",
    "lockgate.gx_duckdb",
    "lockgate.lineage",
    "spark_jobs.extract",
)


def forks_tasks(argv: Sequence[str]) -> bool:
    """Is this the Airflow process that forks task processes (``airflow scheduler`` with
    the LocalExecutor, ``airflow celery worker``)?"""
    args = [a for a in argv[1:] if not a.startswith("-")]
    return args[:1] == ["scheduler"] or args[:2] == ["celery", "worker"]


def preload(argv: Sequence[str], modules: Sequence[str] = MODULES) -> list[str]:
    """Import ``modules`` when this process forks tasks; returns those imported. A
    module that fails to import is skipped with a warning: the task imports it itself
    and reports the error where it belongs."""
    if os.environ.get("LOCKGATE_PRELOAD", "1") == "0" or not forks_tasks(argv):
        return []
    started, done = time.monotonic(), []
    for name in modules:
        try:
            importlib.import_module(name)
            done.append(name)
        except Exception as exc:  # noqa: BLE001 - never stop the scheduler for a preload
            log.warning("lockgate: not preloading %s: %s", name, exc)
    log.info("lockgate: preloaded %d modules for task processes in %.1f s", len(done), time.monotonic() - started)
    return done
