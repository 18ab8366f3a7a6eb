"""Airflow's local settings for a Lockgate deployment (Airflow imports this module in
every process; ``plugins/`` is on its path). The scheduler and Celery workers import
what Lockgate's tasks need once, before they fork task processes: see
:mod:`lockgate.preload`. Short CLI commands on SQLite metadata take the write lock when
a transaction begins, so that they wait for the scheduler instead of failing: see
:mod:`lockgate.metadata_lock`."""

from __future__ import annotations

import sys

from airflow.configuration import conf
from lockgate.metadata_lock import install
from lockgate.preload import preload

install(sys.argv, conf.get("database", "sql_alchemy_conn"))
preload(sys.argv)
