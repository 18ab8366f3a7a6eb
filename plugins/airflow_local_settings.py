"""Airflow's local settings for a Lockgate deployment (Airflow imports this module in
every process; ``plugins/`` is on its path). The scheduler and Celery workers import
what Lockgate's tasks need once, before they fork task processes: see
:mod:`lockgate.preload`."""

from __future__ import annotations

import sys

from lockgate.preload import preload

preload(sys.argv)
