"""Lockgate: one ingestion DAG per source file in ``dags/sources/``.

Each ``dags/sources/<source>.yml`` becomes the DAG ``ingest_<source>``. A malformed
file fails this module's import with a message naming the file, the table and the
field, so it shows up as an import error in the Airflow UI and in the integrity tests.
"""

from __future__ import annotations

from lockgate.config import load_sources
from lockgate.dag_factory import build_dag
from lockgate.settings import load_settings

for _config in load_sources(load_settings().sources_dir).values():
    globals()[_config.dag_id] = build_dag(_config)
